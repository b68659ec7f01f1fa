#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use sentinel_policy::model::Map;
use sentinel_policy::model::{Actions, FieldDef, ResourcePattern};
use sentinel_policy::source::{Effect, TenantScope};
use std::collections::BTreeMap;

const TENANT_A: Uuid = Uuid::from_u128(0xA);
const TENANT_B: Uuid = Uuid::from_u128(0xB);

type Rules<'a> = &'a [(&'a str, FieldRule)];

fn perm(core: Rules<'_>, pd: Rules<'_>, ts: Rules<'_>) -> Permission {
    let map = |r: Rules<'_>| {
        r.iter()
            .map(|(n, f)| (Box::<str>::from(*n), *f))
            .collect::<BTreeMap<_, _>>()
    };
    Permission {
        id: "p".into(),
        effect: Effect::Allow,
        resource_type: "vessel".into(),
        resource: ResourcePattern::Any,
        actions: Actions::All,
        conditions: Box::new([]),
        tenant_scope: TenantScope::Own,
        fields: [map(core), map(pd), map(ts)],
        shadow: false,
    }
}

fn def(tier: Tier, mask: MaskStyle, keep: u8) -> FieldDef {
    FieldDef {
        tier,
        tenant: None,
        mask,
        mask_keep: keep,
    }
}

fn vessel() -> EntityFields {
    let mut shared = Map::default();
    shared.insert("id".into(), def(Tier::Core, MaskStyle::Full, 4));
    shared.insert("name".into(), def(Tier::Core, MaskStyle::Full, 4));
    shared.insert("imo".into(), def(Tier::Core, MaskStyle::Last, 4));
    shared.insert("flag".into(), def(Tier::Core, MaskStyle::Full, 4));
    shared.insert(
        "crew_count".into(),
        def(Tier::PlatformDynamic, MaskStyle::Full, 4),
    );
    shared.insert(
        "owner_email".into(),
        def(Tier::PlatformDynamic, MaskStyle::Hash, 4),
    );
    shared.insert(
        "notes".into(),
        def(Tier::PlatformDynamic, MaskStyle::Null, 4),
    );
    let mut a = Map::default();
    a.insert(
        "budget".into(),
        def(Tier::TenantSpecific, MaskStyle::Full, 4),
    );
    a.insert("code".into(), def(Tier::TenantSpecific, MaskStyle::Full, 4));
    let mut b = Map::default();
    b.insert(
        "b_secret".into(),
        def(Tier::TenantSpecific, MaskStyle::Full, 4),
    );
    let mut by_tenant = Map::default();
    by_tenant.insert(TENANT_A, a);
    by_tenant.insert(TENANT_B, b);
    EntityFields { shared, by_tenant }
}

use FieldRule::{Hidden as H, Masked as M, Read as R, Write as W};

fn reader() -> Permission {
    perm(
        &[("*", R)],
        &[("*", R), ("crew_count", M)],
        &[("budget", H), ("code", R)],
    )
}

fn plan_for(perms: &[Permission], unknown: UnknownFields) -> FieldPlan {
    let refs: Vec<&Permission> = perms.iter().collect();
    FieldPlan::build(Some(&vessel()), &TENANT_A, &refs, unknown)
}

/// The streamed filter's answer must be the buffered one's: the same bytes
/// and counts, or an error of the same kind (a wrong shape may be reported
/// before a syntax error further on). Splits `body` at every point (two
/// chunks), and feeds it byte by byte and whole.
fn assert_streamed_same(
    binding: &Binding,
    plan: &FieldPlan,
    body: &[u8],
    buffered: &Result<FilterStats, FilterError>,
    want: &[u8],
) {
    let shown: String = String::from_utf8_lossy(body).chars().take(200).collect();
    let same = |got: Result<FilterStats, FilterError>, out: &[u8], how: &str| match (buffered, got)
    {
        (Ok(a), Ok(b)) => {
            assert_eq!(a, &b, "stats, {how}");
            assert_eq!(
                String::from_utf8_lossy(out),
                String::from_utf8_lossy(want),
                "output, {how}: {shown}"
            );
        }
        // The streamed filter reports a wrong shape at once; the buffered one
        // reports it only if nothing else is wrong further on.
        (Err(a), Err(b)) => assert!(
            a.reason() == b.reason() || b.reason() == "unexpected_shape",
            "{how}: buffered {a}, streamed {b}: {shown}"
        ),
        (a, b) => panic!("{how}: buffered {a:?}, streamed {b:?}: {shown}"),
    };
    let splits: Vec<usize> = if body.len() <= 512 {
        (0..=body.len()).collect()
    } else {
        vec![0, body.len() / 2, body.len()]
    };
    for at in splits {
        let (a, b) = body.split_at(at);
        let mut f = StreamFilter::new(binding, plan);
        let mut out = Vec::new();
        let got = f
            .push(a, &mut out)
            .and_then(|()| f.push(b, &mut out))
            .and_then(|()| f.finish(&mut out));
        same(got, &out, &format!("split at {at}"));
    }
    let mut out = Vec::new();
    let got = filter_chunked(body, 1, binding, plan, &mut out);
    same(got, &out, "byte by byte");
}

fn filter(at: &str, plan: &FieldPlan, body: &str) -> Result<String, FilterError> {
    let mut out = b"prefix:".to_vec();
    let binding = Binding::parse(at).unwrap();
    let r = filter_response(body.as_bytes(), &binding, plan, &mut out);
    assert_streamed_same(
        &binding,
        plan,
        body.as_bytes(),
        &r,
        out.strip_prefix(b"prefix:").unwrap_or_default(),
    );
    match r {
        Ok(_) => Ok(String::from_utf8(out)
            .unwrap()
            .strip_prefix("prefix:")
            .unwrap()
            .to_owned()),
        Err(e) => {
            assert_eq!(out, b"prefix:", "output restored on error");
            Err(e)
        }
    }
}

#[test]
fn precedence_table() {
    // (permissions as (core, pd, ts) rules, field, expected access)
    let full = Mask {
        style: MaskStyle::Full,
        keep: 4,
    };
    let rows: Vec<(Vec<Permission>, &str, Access)> = vec![
        // No rule in the tier: deny by default.
        (vec![perm(&[], &[], &[])], "name", Access::Hidden),
        (
            vec![perm(&[("*", R)], &[], &[])],
            "crew_count",
            Access::Hidden,
        ),
        (vec![perm(&[("*", R)], &[], &[])], "name", Access::Read),
        // A name rule beats the tier's `*` within a permission, both ways.
        (
            vec![perm(&[("*", R), ("name", H)], &[], &[])],
            "name",
            Access::Hidden,
        ),
        (
            vec![perm(&[("*", H), ("name", R)], &[], &[])],
            "name",
            Access::Read,
        ),
        (
            vec![perm(&[("*", H), ("name", R)], &[], &[])],
            "flag",
            Access::Hidden,
        ),
        // Across permissions the most restrictive contribution wins …
        (
            vec![perm(&[("*", R)], &[], &[]), perm(&[("name", H)], &[], &[])],
            "name",
            Access::Hidden,
        ),
        (
            vec![perm(&[("*", W)], &[], &[]), perm(&[("name", H)], &[], &[])],
            "name",
            Access::Hidden,
        ),
        (
            vec![perm(&[("name", R)], &[], &[]), perm(&[("*", M)], &[], &[])],
            "name",
            Access::Masked(full),
        ),
        (
            vec![
                perm(&[("name", M)], &[], &[]),
                perm(&[("name", H)], &[], &[]),
            ],
            "name",
            Access::Hidden,
        ),
        (
            vec![
                perm(&[("name", W)], &[], &[]),
                perm(&[("name", M)], &[], &[]),
            ],
            "name",
            Access::Masked(full),
        ),
        // … and write ⊇ read.
        (
            vec![perm(&[("name", R)], &[], &[]), perm(&[("*", W)], &[], &[])],
            "name",
            Access::Write,
        ),
        (vec![perm(&[("name", W)], &[], &[])], "name", Access::Write),
        // A permission that says nothing about a field does not restrict it.
        (
            vec![perm(&[("*", R)], &[], &[]), perm(&[], &[("*", H)], &[])],
            "name",
            Access::Read,
        ),
        // Tiers are separate: a core `*` does not cover platform_dynamic fields.
        (
            vec![perm(&[("*", W)], &[], &[])],
            "owner_email",
            Access::Hidden,
        ),
        (
            vec![perm(&[], &[("owner_email", M)], &[])],
            "owner_email",
            Access::Masked(Mask {
                style: MaskStyle::Hash,
                keep: 4,
            }),
        ),
        // Tenant-specific fields: own tenant's are defined, another tenant's are unknown.
        (vec![perm(&[], &[], &[("*", R)])], "budget", Access::Read),
        (
            vec![perm(&[], &[], &[("*", R)])],
            "b_secret",
            Access::Hidden,
        ),
        // Undefined keys: removed by default.
        (
            vec![perm(&[("*", W)], &[("*", W)], &[("*", W)])],
            "nope",
            Access::Hidden,
        ),
        // No allowing permission at all.
        (vec![], "name", Access::Hidden),
    ];
    for (i, (perms, field, want)) in rows.into_iter().enumerate() {
        let plan = plan_for(&perms, UnknownFields::Remove);
        assert_eq!(plan.access(field), want, "row {i}: {field}");
    }
    // Keep: undefined keys and other tenants' fields pass both ways.
    let plan = plan_for(&[perm(&[], &[], &[])], UnknownFields::Keep);
    assert_eq!(plan.access("nope"), Access::Write);
    assert_eq!(plan.access("b_secret"), Access::Write);
    assert_eq!(plan.access("name"), Access::Hidden);
    // No definitions for the entity type: everything is undefined.
    let p = reader();
    let plan = FieldPlan::build(None, &TENANT_A, &[&p], UnknownFields::Remove);
    assert!(plan.is_empty());
    assert_eq!(plan.access("name"), Access::Hidden);
    // Tenant B does not see tenant A's custom fields.
    let p = perm(&[], &[], &[("*", R)]);
    let plan = FieldPlan::build(Some(&vessel()), &TENANT_B, &[&p], UnknownFields::Remove);
    assert_eq!(plan.access("budget"), Access::Hidden);
    assert_eq!(plan.access("b_secret"), Access::Read);
    assert_eq!(plan.iter().count(), 8);
}

#[test]
fn effective_rule_basics() {
    let a = perm(&[("*", R)], &[], &[]);
    let b = perm(&[("x", H)], &[], &[]);
    assert_eq!(effective_rule(&[&a, &b], Tier::Core, "x"), Some(H));
    assert_eq!(effective_rule(&[&a, &b], Tier::Core, "y"), Some(R));
    assert_eq!(effective_rule(&[&a, &b], Tier::PlatformDynamic, "y"), None);
}

#[test]
fn response_table() {
    let plan = plan_for(&[reader()], UnknownFields::Remove);
    let rows: &[(&str, &str, &str)] = &[
        // Root entity; removed, masked, kept; order and number text kept.
        (
            "$",
            r#"{"id":"v1","budget":5,"name":"Ever Given","crew_count":25,"x":1,"flag":1.50e+3}"#,
            r#"{"id":"v1","name":"Ever Given","crew_count":"********","flag":1.50e+3}"#,
        ),
        // Only removed members at the start, middle and end; whitespace kept around kept ones.
        ("$", r#"{ "x" : 1 , "y":2 }"#, r#"{}"#),
        ("$", r#"{ "x" : 1 , "id" : -0.0 }"#, r#"{ "id" : -0.0 }"#),
        ("$", "{\n  \"id\": 1,\n  \"x\": 2\n}", "{\n  \"id\": 1}"),
        (
            "$",
            "{\n  \"id\": 1,\n  \"x\": 2,\n  \"name\": \"n\"\n}",
            "{\n  \"id\": 1,\n  \"name\": \"n\"\n}",
        ),
        ("$", r#"{}"#, r#"{}"#),
        ("$", " { } ", " { } "),
        // Values of kept fields are copied whole, escapes and nesting included.
        (
            "$",
            r#"{"name":"a\"b\\c\u00e9\ud83d\ude00","id":{"nested":[1,{"x":2}]}}"#,
            r#"{"name":"a\"b\\c\u00e9\ud83d\ude00","id":{"nested":[1,{"x":2}]}}"#,
        ),
        // Escaped keys are compared unescaped.
        (
            "$",
            r#"{"n\u0061me":"x","b\u0075dget":1,"\u0062_secret":2}"#,
            r#"{"n\u0061me":"x"}"#,
        ),
        // A masked non-string (an object) beside read fields of both tiers
        // (every mask style: `masks_in_bodies`).
        (
            "$",
            r#"{"imo":"9811000","owner_email":"a@b.c","crew_count":{"a":1},"notes":"n"}"#,
            r#"{"imo":"9811000","owner_email":"a@b.c","crew_count":"********","notes":"n"}"#,
        ),
        // Arrays of entities; everything outside the binding verbatim.
        (
            "$.data[*]",
            r#"{"x":1,"data":[{"id":1,"x":2},{"x":3},{"name":"b"}],"meta":{"x":{"budget":1}}}"#,
            r#"{"x":1,"data":[{"id":1},{},{"name":"b"}],"meta":{"x":{"budget":1}}}"#,
        ),
        ("$.data[*]", r#"{"data":[]}"#, r#"{"data":[]}"#),
        (
            "$.data[*]",
            r#"{"data":[null,{"x":1}]}"#,
            r#"{"data":[null,{}]}"#,
        ),
        // Missing path or null on the way: no entity, copied as is.
        (
            "$.data[*]",
            r#"{"error":{"budget":1}}"#,
            r#"{"error":{"budget":1}}"#,
        ),
        ("$.data[*]", r#"{"data":null}"#, r#"{"data":null}"#),
        (
            "$.items[*].vessel",
            r#"{"items":[{"n":1},{"vessel":null}]}"#,
            r#"{"items":[{"n":1},{"vessel":null}]}"#,
        ),
        ("$", "null", "null"),
        // Numbers are checked against the JSON grammar only: any magnitude is copied.
        (
            "$",
            r#"{"id":1e400,"name":-123456789012345678901234567890.5}"#,
            r#"{"id":1e400,"name":-123456789012345678901234567890.5}"#,
        ),
        ("$", "", ""),
        (
            "$.items[*].vessel",
            r#"{"items":[{"vessel":{"id":1,"budget":2},"budget":3},{"vessel":{"code":"c"}}]}"#,
            r#"{"items":[{"vessel":{"id":1},"budget":3},{"vessel":{"code":"c"}}]}"#,
        ),
        (
            "$.data",
            r#"{"data":{"id":1,"x":2}}"#,
            r#"{"data":{"id":1}}"#,
        ),
        (
            "$[\"d\"][*]",
            r#"{"\u0064":[{"x":1}]}"#,
            r#"{"\u0064":[{}]}"#,
        ),
    ];
    for (at, input, want) in rows {
        let got = filter(at, &plan, input).unwrap_or_else(|e| panic!("{at} {input}: {e}"));
        assert_eq!(got, *want, "{at} {input}");
        // Valid JSON (serde_json refuses numbers beyond f64, which JSON allows).
        if !got.is_empty() && !got.contains("1e400") {
            serde_json::from_str::<serde_json::Value>(&got).unwrap();
        }
    }
}

#[test]
fn masks_in_bodies() {
    let p = perm(&[("*", M)], &[("*", M)], &[]);
    let plan = plan_for(&[p], UnknownFields::Remove);
    let got = filter(
        "$",
        &plan,
        r#"{"imo":"9811000","owner_email":"a@b.c","crew_count":{"a":1},"notes":"n","id":12345678,"flag":null,"name":true}"#,
    )
    .unwrap();
    assert_eq!(
        got,
        r#"{"imo":"****1000","owner_email":"d648b243a3e817ea","crew_count":"********","notes":null,"id":"********","flag":null,"name":"********"}"#
    );
    let keyed =
        plan_for(&[perm(&[], &[("*", M)], &[])], UnknownFields::Remove).with_hash_key([1; 32]);
    let got = filter("$", &keyed, r#"{"owner_email":"a@b.c"}"#).unwrap();
    assert!(!got.contains("d648b243a3e817ea"));
    let stats = {
        let mut out = Vec::new();
        filter_response(
            br#"{"imo":"1","x":2,"id":3}"#,
            &Binding::root(),
            &plan_for(
                &[perm(&[("imo", M), ("id", R)], &[], &[])],
                UnknownFields::Remove,
            ),
            &mut out,
        )
        .unwrap()
    };
    assert_eq!(
        stats,
        FilterStats {
            entities: 1,
            removed: 1,
            masked: 1
        }
    );
}

#[test]
fn unknown_keep_passes_undefined_and_foreign_fields() {
    let plan = plan_for(&[perm(&[("*", R)], &[], &[])], UnknownFields::Keep);
    let got = filter("$", &plan, r#"{"id":1,"zzz":2,"b_secret":3,"budget":4}"#).unwrap();
    assert_eq!(got, r#"{"id":1,"zzz":2,"b_secret":3}"#);
}

#[test]
fn errors_fail_closed() {
    let plan = plan_for(&[reader()], UnknownFields::Remove);
    let rows: &[(&str, &str, &str)] = &[
        ("$", "{", "malformed"),
        ("$", "   ", "malformed"),
        ("$", r#"{"id":1,}"#, "malformed"),
        ("$", r#"{"id":01}"#, "malformed"),
        ("$", r#"{"id":1.}"#, "malformed"),
        ("$", r#"{"id":-}"#, "malformed"),
        ("$", r#"{"id":1e}"#, "malformed"),
        ("$", r#"{"id":tru}"#, "malformed"),
        ("$", r#"{"id":"a\x"}"#, "malformed"),
        ("$", r#"{"id":"\ud800"}"#, "malformed"),
        ("$", r#"{"id":"\udc00"}"#, "malformed"),
        ("$", r#"{"id":"\ud800\u0041"}"#, "malformed"),
        ("$", r#"{"id":"\u12"}"#, "malformed"),
        ("$", "{\"id\":\"a\nb\"}", "malformed"),
        ("$", r#"{"id":1} x"#, "malformed"),
        ("$", r#"{"id":1}{}"#, "malformed"),
        ("$", r#"{'id':1}"#, "malformed"),
        ("$", r#"{"id" 1}"#, "malformed"),
        ("$", r#"[1,2"#, "malformed"),
        ("$.data[*]", r#"{"other":[1,}"#, "malformed"),
        ("$.data[*]", r#"{"other":"x"} "#, "ok"),
        ("$", "\u{feff}{}", "malformed"),
        // Duplicates in entities, compared unescaped, defined and undefined keys alike.
        ("$", r#"{"id":1,"id":2}"#, "duplicate_key"),
        ("$", r#"{"id":1,"\u0069d":2}"#, "duplicate_key"),
        ("$", r#"{"x":1,"x":2}"#, "duplicate_key"),
        ("$", r#"{"x":1,"\u0078":2}"#, "duplicate_key"),
        ("$", r#"{"b_secret":1,"b_secret":2}"#, "duplicate_key"),
        // … and the binding key on the path (no second, unfiltered copy).
        (
            "$.data[*]",
            r#"{"data":[],"d\u0061ta":[{"budget":1}]}"#,
            "duplicate_key",
        ),
        // Duplicates inside a kept value or outside entities are the client's business.
        ("$", r#"{"id":{"a":1,"a":2}}"#, "ok"),
        ("$.data[*]", r#"{"meta":{"a":1,"a":2},"data":[]}"#, "ok"),
        // Wrong shapes on the path fail closed.
        ("$", r#"[{"id":1}]"#, "unexpected_shape"),
        ("$", r#""x""#, "unexpected_shape"),
        ("$.data[*]", r#"{"data":{"id":1}}"#, "unexpected_shape"),
        ("$.data[*]", r#"[{"id":1}]"#, "unexpected_shape"),
        ("$.data[*]", r#"{"data":[1]}"#, "unexpected_shape"),
        ("$.data", r#"{"data":[{"id":1}]}"#, "unexpected_shape"),
        ("$.data[*]", r#"{"data":[[1]]}"#, "unexpected_shape"),
        ("$.data[*]", r#"{"data":"x"}"#, "unexpected_shape"),
        ("$.data[*]", r#"{"data":[1,}"#, "malformed"),
    ];
    for (at, input, want) in rows {
        let got = filter(at, &plan, input);
        match (got, *want) {
            (Ok(_), "ok") => {}
            (Err(e), want) if e.reason() == want => {}
            (got, want) => panic!("{at} {input}: got {got:?}, want {want}"),
        }
    }
    // Invalid UTF-8.
    let mut out = Vec::new();
    let e = filter_response(b"{\"id\":\"\xff\"}", &Binding::root(), &plan, &mut out).unwrap_err();
    assert_eq!(e, FilterError::Utf8 { offset: 7 });
    assert!(out.is_empty());
    // Messages are lowercase and name the key.
    let e = filter("$", &plan, r#"{"id":1,"id":2}"#).unwrap_err();
    assert_eq!(e.to_string(), "duplicate key `id` at byte 8");
}

#[test]
fn depth_limit() {
    let plan = plan_for(&[reader()], UnknownFields::Remove);
    let ok = format!(
        "{{\"id\":{}{}}}",
        "[".repeat(MAX_DEPTH - 1),
        "]".repeat(MAX_DEPTH - 1)
    );
    assert!(filter("$", &plan, &ok).is_ok());
    let deep = format!(
        "{{\"id\":{}{}}}",
        "[".repeat(MAX_DEPTH),
        "]".repeat(MAX_DEPTH)
    );
    assert_eq!(filter("$", &plan, &deep).unwrap_err().reason(), "too_deep");
    let deep = "[".repeat(100_000);
    assert_eq!(
        filter("$.data[*]", &plan, &deep).unwrap_err().reason(),
        "too_deep"
    );
    assert_eq!(
        filter("$[*]", &plan, &deep).unwrap_err().reason(),
        "too_deep"
    );
    let deep = format!("{{\"x\":{}", "{\"a\":".repeat(100_000));
    assert_eq!(
        filter("$.data", &plan, &deep).unwrap_err().reason(),
        "too_deep"
    );
}

#[test]
fn many_unknown_keys_duplicate_detection() {
    let plan = plan_for(&[reader()], UnknownFields::Remove);
    let mut body: String = (0..100).map(|i| format!("\"k{i}\":{i},")).collect();
    body.insert(0, '{');
    body.push_str("\"id\":1}");
    assert_eq!(filter("$", &plan, &body).unwrap(), r#"{"id":1}"#);
    let dup = body.replace("\"id\":1}", "\"k\\u00350\":1}");
    let e = filter("$", &plan, &dup).unwrap_err();
    assert_eq!(e.reason(), "duplicate_key");
    assert!(e.to_string().contains("`k50`"), "{e}");
}

#[test]
fn write_check_and_strip() {
    let writer = perm(
        &[("*", W), ("id", R), ("flag", M)],
        &[("crew_count", W)],
        &[("*", W), ("budget", H)],
    );
    let plan = plan_for(&[writer], UnknownFields::Remove);
    let body = r#"{"name":"n","id":"v1","flag":"x","crew_count":3,"budget":1,"code":"c","zzz":0,"b_secret":1,"notes":null,"id2":{"id":1}}"#;
    let root = Binding::root();
    let check = check_write(body.as_bytes(), &root, &plan).unwrap();
    assert_eq!(
        check.denied,
        ["b_secret", "budget", "flag", "id", "id2", "notes", "zzz"]
    );
    assert!(!check.is_allowed());
    let mut out = Vec::new();
    let stats = strip_unwritable(body.as_bytes(), &root, &plan, &mut out).unwrap();
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        r#"{"name":"n","crew_count":3,"code":"c"}"#
    );
    assert_eq!(stats.removed, 7);
    // Bulk bodies: every entity, deduplicated list.
    let bulk = r#"{"data":[{"id":1,"name":"a"},{"\u0069d":2},{"name":"b"}]}"#;
    let check = check_write(
        bulk.as_bytes(),
        &Binding::parse("$.data[*]").unwrap(),
        &plan,
    )
    .unwrap();
    assert_eq!(check.denied, ["id"]);
    assert_eq!(check.entities, 3);
    let ok = check_write(br#"{"name":"x","code":"y"}"#, &root, &plan).unwrap();
    assert!(ok.is_allowed());
    // Same errors as responses.
    for bad in [r#"{"name":1,"name":2}"#, r#"{"name":1"#, r#"[{}]"#] {
        assert!(check_write(bad.as_bytes(), &root, &plan).is_err(), "{bad}");
        assert!(
            strip_unwritable(bad.as_bytes(), &root, &plan, &mut Vec::new()).is_err(),
            "{bad}"
        );
    }
    // Keep: undefined keys are writable.
    let plan = plan_for(&[perm(&[("*", W)], &[], &[])], UnknownFields::Keep);
    assert!(check_write(br#"{"name":1,"zzz":2}"#, &root, &plan)
        .unwrap()
        .is_allowed());
}

#[test]
fn streamed_raw_utf8_split_inside_characters() {
    let plan = plan_for(&[reader()], UnknownFields::Remove);
    // Every split point falls inside a multi-byte character somewhere.
    let got = filter(
        "$",
        &plan,
        "{\"name\":\"h\u{e9}llo w\u{f6} \u{1F600}\",\"x\":\"\u{20AC}\",\"imo\":\"\u{1F600}\u{1F601}\"}",
    )
    .unwrap();
    assert_eq!(
        got,
        "{\"name\":\"h\u{e9}llo w\u{f6} \u{1F600}\",\"imo\":\"\u{1F600}\u{1F601}\"}"
    );
    // Invalid UTF-8 is refused however it is split.
    let binding = Binding::root();
    for body in [
        &b"{\"id\":\"\xff\"}"[..],
        b"{\"id\":\"\xe2\x82\"}",
        b"{\"id\":\"a\"}\xc3",
    ] {
        for at in 0..=body.len() {
            let mut f = StreamFilter::new(&binding, &plan);
            let mut out = Vec::new();
            let r = f
                .push(&body[..at], &mut out)
                .and_then(|()| f.push(&body[at..], &mut out))
                .and_then(|()| f.finish(&mut out));
            assert_eq!(r.unwrap_err().reason(), "malformed", "{body:?} at {at}");
        }
    }
}

#[test]
fn streamed_filter_holds_bounded_memory_over_a_large_body() {
    let plan = plan_for(&[reader()], UnknownFields::Remove);
    let binding = Binding::parse("$.data[*]").unwrap();
    let entity = r#"{"id":"v1","budget":5,"name":"Ever Given","crew_count":25,"x":[1,{"y":2}],"imo":"9811000"}"#;
    let mut body = b"{\"data\":[".to_vec();
    while body.len() < 8 << 20 {
        body.extend_from_slice(entity.as_bytes());
        body.push(b',');
    }
    body.extend_from_slice(entity.as_bytes());
    body.extend_from_slice(b"],\"count\":1}");
    let mut want = Vec::new();
    let stats = filter_response(&body, &binding, &plan, &mut want).unwrap();
    let mut f = StreamFilter::new(&binding, &plan);
    let mut got = Vec::new();
    let mut chunk_out = Vec::new();
    for c in body.chunks(16 * 1024 + 7) {
        f.push(c, &mut chunk_out).unwrap();
        assert!(chunk_out.len() <= 32 * 1024, "output held back");
        got.extend_from_slice(&chunk_out);
        chunk_out.clear();
        assert!(f.held() < 4096, "holds {} bytes", f.held());
    }
    assert_eq!(f.finish(&mut got).unwrap(), stats);
    assert!(got == want, "streamed output differs from buffered");
}

#[test]
fn streamed_filter_refuses_to_hold_more_than_its_cap() {
    let plan = plan_for(&[reader()], UnknownFields::Remove);
    let binding = Binding::root();
    let long = "k".repeat(MAX_HELD + 1);
    let mut out = Vec::new();
    // A key, a masked value and an entity's undefined keys, each over the cap.
    for body in [
        format!("{{\"{long}\":1}}"),
        format!("{{\"crew_count\":\"{long}\"}}"),
        format!(
            "{{{}\"id\":1}}",
            (0..(MAX_HELD / 1000 + 1))
                .map(|i| format!("\"{i:0>1000}\":1,"))
                .collect::<String>()
        ),
    ] {
        let e = filter_chunked(body.as_bytes(), 64 * 1024, &binding, &plan, &mut out).unwrap_err();
        assert_eq!(e.reason(), "too_long");
        // The buffered filter has no such cap.
        assert!(filter_response(body.as_bytes(), &binding, &plan, &mut Vec::new()).is_ok());
    }
}

/// The fuzz target's property check, including its streamed-vs-buffered
/// comparison, over the committed corpus.
mod fuzz_corpus {
    use crate as sentinel;
    include!("../../fuzz/check/field_filter.rs");

    #[test]
    fn committed_corpus_streams_like_it_buffers() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/field_filter");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let data = std::fs::read(entry.unwrap().path()).unwrap();
            check(&data);
            n += 1;
        }
        assert!(n >= 20, "corpus has {n} inputs");
    }
}
