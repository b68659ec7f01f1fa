// The fuzz property check over (body bytes × rule set), shared by the
// cargo-fuzz target (fuzz/fuzz_targets/field_filter.rs) and the corpus
// replay in `cargo test` (tests/fields_gateway.rs), through `include!`.
//
// Input layout: byte 0 picks the binding, the unknown-fields setting and the
// tenant; bytes 1..=8 are eight field rules (field, tier, rule) split over two
// permissions; the rest is the body. Checks: no panic; whatever serde_json
// rejects is rejected; accepted output is valid JSON with the input's
// entities, in order; each carries every field the caller may read,
// unchanged, no field the caller may not read, and each masked field as the
// mask of its input value (computed here from mask.rs's rules, not by the
// filter's code). The streamed filter, fed the body in several chunkings,
// must answer exactly as the buffered one: the same bytes, or an error.
use sentinel::fields::{
    check_write, filter_chunked, filter_response, strip_unwritable, Access, Binding, FieldPlan,
    Mask, Step, UnknownFields,
};
use sha2::{Digest, Sha256};
use sentinel_policy::model::{
    tier_index, Actions, EntityFields, FieldDef, Permission, ResourcePattern,
};
use sentinel_policy::source::{Effect, FieldRule, MaskStyle, TenantScope, Tier};
use serde_json::Value;
use std::collections::BTreeMap;
use uuid::Uuid;

const TENANT_A: Uuid = Uuid::from_u128(0xA);
const TENANT_B: Uuid = Uuid::from_u128(0xB);

const BINDINGS: [&str; 4] = ["$", "$.data[*]", "$.items[*].vessel", "$.data"];
const NAMES: [&str; 8] = ["*", "id", "name", "imo", "crew", "budget", "secret", "x"];

fn fields() -> EntityFields {
    let mut e = EntityFields::default();
    let shared: [(&str, Tier, MaskStyle, u8); 4] = [
        ("id", Tier::Core, MaskStyle::Full, 4),
        ("name", Tier::Core, MaskStyle::Last, 2),
        ("imo", Tier::PlatformDynamic, MaskStyle::Hash, 4),
        ("crew", Tier::PlatformDynamic, MaskStyle::Null, 4),
    ];
    for (n, tier, mask, keep) in shared {
        e.shared.insert(
            n.into(),
            FieldDef {
                tier,
                tenant: None,
                mask,
                mask_keep: keep,
            },
        );
    }
    for (n, t) in [("budget", TENANT_A), ("secret", TENANT_B)] {
        let def = FieldDef {
            tier: Tier::TenantSpecific,
            tenant: Some(t),
            mask: MaskStyle::Last,
            mask_keep: 3,
        };
        e.by_tenant.entry(t).or_default().insert(n.into(), def);
    }
    e
}

fn permission(rules: &[u8]) -> Permission {
    let mut fields: [BTreeMap<Box<str>, FieldRule>; 3] = Default::default();
    for &b in rules {
        let name = NAMES[(b & 7) as usize];
        let tier =
            [Tier::Core, Tier::PlatformDynamic, Tier::TenantSpecific][((b >> 3) & 3) as usize % 3];
        let rule = [
            FieldRule::Read,
            FieldRule::Write,
            FieldRule::Masked,
            FieldRule::Hidden,
        ][(b >> 6) as usize];
        if (b >> 5) & 1 == 0 {
            fields[tier_index(tier)].insert(name.into(), rule);
        }
    }
    Permission {
        id: "fuzz".into(),
        effect: Effect::Allow,
        resource_type: "vessel".into(),
        resource: ResourcePattern::Any,
        actions: Actions::All,
        conditions: Box::new([]),
        tenant_scope: TenantScope::Own,
        fields,
        shadow: false,
    }
}

fn entities<'v>(v: &'v Value, steps: &[Step], out: &mut Vec<&'v serde_json::Map<String, Value>>) {
    match (steps.split_first(), v) {
        (None, Value::Object(m)) => out.push(m),
        (Some((Step::Key(k), rest)), Value::Object(m)) => {
            if let Some(v) = m.get(&**k) {
                entities(v, rest, out);
            }
        }
        (Some((Step::Each, rest)), Value::Array(items)) => {
            items.iter().for_each(|v| entities(v, rest, out))
        }
        _ => {}
    }
}

/// Asserts that `got` is `was` masked with `mask` (see src/fields/mask.rs).
/// Numbers under `last` and non-strings under `hash` depend on the number's
/// text as sent, which serde_json does not keep: only their shape is checked.
fn assert_masked(mask: Mask, was: &Value, got: &Value, k: &str) {
    const FULL: &str = "********";
    let keep = mask.keep as usize;
    let want: Option<Value> = match (mask.style, was) {
        (_, Value::Null) | (MaskStyle::Null, _) => Some(Value::Null),
        (MaskStyle::Full, _) => Some(FULL.into()),
        (MaskStyle::Last, Value::String(s)) => {
            let n = s.chars().count();
            Some(if keep > 0 && n > keep {
                let tail: String = s.chars().skip(n - keep).collect();
                format!("****{tail}").into()
            } else {
                FULL.into()
            })
        }
        (MaskStyle::Last, Value::Number(_)) => None,
        (MaskStyle::Last, _) => Some(FULL.into()),
        (MaskStyle::Hash, Value::String(s)) => {
            let digest = Sha256::digest(s.as_bytes());
            let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
            Some(hex.into())
        }
        (MaskStyle::Hash, _) => None,
    };
    match want {
        Some(want) => assert_eq!(got, &want, "masked field `{k}` = {got}, input {was}"),
        None => {
            let s = got
                .as_str()
                .unwrap_or_else(|| panic!("masked field `{k}` = {got}, input {was}"));
            let shaped = match mask.style {
                MaskStyle::Hash => {
                    s.len() == 16
                        && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                }
                _ => {
                    s == FULL
                        || s.strip_prefix("****").is_some_and(|t| {
                            t.chars().count() == keep
                                && t.bytes().all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
                        })
                }
            };
            assert!(shaped, "masked field `{k}` = {got}, input {was}");
        }
    }
}

/// The streamed filter over `body` in chunks of 1, 2, 7 and 4096 bytes gives
/// the buffered filter's output, or fails where it fails.
fn streamed_matches_buffered(
    body: &[u8],
    binding: &Binding,
    plan: &FieldPlan,
    buffered: &Result<sentinel::fields::FilterStats, sentinel::fields::FilterError>,
    want: &[u8],
) {
    for size in [1, 2, 7, 4096] {
        let mut got = Vec::new();
        let streamed = filter_chunked(body, size, binding, plan, &mut got);
        match (buffered, streamed) {
            (Ok(a), Ok(b)) => {
                assert_eq!(*a, b, "stats differ, chunks of {size}");
                assert!(got == want, "streamed output differs, chunks of {size}");
            }
            (Err(_), Err(_)) => {}
            (a, b) => panic!("buffered {a:?}, streamed {b:?}, chunks of {size}"),
        }
    }
}

/// Runs one fuzz input (see the layout above); panics on a violated property.
pub fn check(data: &[u8]) {
    if data.len() < 9 {
        return;
    }
    let (head, body) = data.split_at(9);
    let binding = Binding::parse(BINDINGS[(head[0] & 3) as usize]).unwrap();
    let unknown = if head[0] & 4 == 0 {
        UnknownFields::Remove
    } else {
        UnknownFields::Keep
    };
    let t = if head[0] & 8 == 0 { TENANT_A } else { TENANT_B };
    let (p1, p2) = (permission(&head[1..5]), permission(&head[5..9]));
    let defs = fields();
    let plan = FieldPlan::build(Some(&defs), &t, &[&p1, &p2], unknown);

    // Numbers beyond f64 (`1e400`) are valid JSON that serde_json refuses to
    // hold; the filter copies their text, so they count as valid here.
    let serde_ok = body.is_empty()
        || match serde_json::from_slice::<Value>(body) {
            Ok(_) => true,
            Err(e) => e.to_string().starts_with("number out of range"),
        };
    let mut out = Vec::new();
    let filtered = filter_response(body, &binding, &plan, &mut out);
    streamed_matches_buffered(body, &binding, &plan, &filtered, &out);
    let check = check_write(body, &binding, &plan);
    let mut stripped = Vec::new();
    let strip = strip_unwritable(body, &binding, &plan, &mut stripped);
    if !serde_ok {
        assert!(
            filtered.is_err() && check.is_err() && strip.is_err(),
            "accepted what serde_json rejects"
        );
        assert!(out.is_empty() && stripped.is_empty());
        return;
    }
    assert_eq!(filtered.is_ok(), check.is_ok());
    assert_eq!(filtered.is_ok(), strip.is_ok());
    if filtered.is_err() || body.is_empty() {
        return;
    }
    let Ok(v) = serde_json::from_slice::<Value>(&out) else {
        // Only a number out of f64 range may make serde_json refuse the output.
        assert!(
            serde_json::from_slice::<Value>(body).is_err(),
            "filter output is not valid JSON"
        );
        return;
    };
    let input: Value = serde_json::from_slice(body).unwrap();
    let mut before = Vec::new();
    entities(&input, binding.steps(), &mut before);
    let mut found = Vec::new();
    entities(&v, binding.steps(), &mut found);
    assert_eq!(found.len(), before.len(), "entities lost or added");
    for (obj, orig) in found.into_iter().zip(before) {
        for (k, was) in orig {
            let got = obj.get(k);
            match plan.access(k) {
                Access::Hidden => assert!(got.is_none(), "unreadable field `{k}` in the output"),
                Access::Masked(mask) => {
                    let got = got.unwrap_or_else(|| panic!("masked field `{k}` removed"));
                    assert_masked(mask, was, got, k);
                }
                Access::Read | Access::Write => {
                    assert_eq!(got, Some(was), "readable field `{k}` changed or removed")
                }
            }
        }
        assert!(
            obj.keys().all(|k| orig.contains_key(k)),
            "the output entity has a field the input had not"
        );
    }
    let Ok(v) = serde_json::from_slice::<Value>(&stripped) else {
        assert!(
            serde_json::from_slice::<Value>(body).is_err(),
            "stripped output is not valid JSON"
        );
        return;
    };
    let mut found = Vec::new();
    entities(&v, binding.steps(), &mut found);
    for obj in found {
        for k in obj.keys() {
            assert!(plan.access(k).writable(), "unwritable field `{k}` kept");
        }
    }
    let denied = check.unwrap().denied;
    assert!(
        denied.windows(2).all(|w| w[0] < w[1]),
        "denied list sorted and unique"
    );
}
