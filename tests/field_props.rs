#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests fail loudly, in their helpers too"
)]
//! Property tests of the field filter against an independent model.
//!
//! Documents are generated as trees whose leaves keep their exact JSON text
//! (numbers like `1.50` and `-0.0`, strings with escapes, keys written with
//! `\u` escapes), so the expected output can be written byte for byte. The
//! model re-derives every field's access from the permissions directly (not
//! through `FieldPlan`) and renders masks from the documented rules.

use proptest::prelude::*;
use sentinel::fields::{
    check_write, filter_response, strip_unwritable, Binding, FieldPlan, Step, UnknownFields,
};
use sentinel_policy::model::{
    tier_index, Actions, EntityFields, FieldDef, Permission, ResourcePattern,
};
use sentinel_policy::source::{Effect, FieldRule, MaskStyle, TenantScope, Tier};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

const TENANT_A: Uuid = Uuid::from_u128(0xA);
const TENANT_B: Uuid = Uuid::from_u128(0xB);

/// (name, tier, owning tenant, mask, keep)
const DEFS: &[(&str, Tier, Option<Uuid>, MaskStyle, u8)] = &[
    ("id", Tier::Core, None, MaskStyle::Full, 4),
    ("name", Tier::Core, None, MaskStyle::Last, 3),
    ("imo", Tier::Core, None, MaskStyle::Last, 0),
    ("crew", Tier::PlatformDynamic, None, MaskStyle::Hash, 4),
    ("email", Tier::PlatformDynamic, None, MaskStyle::Null, 4),
    (
        "budget",
        Tier::TenantSpecific,
        Some(TENANT_A),
        MaskStyle::Full,
        4,
    ),
    (
        "code",
        Tier::TenantSpecific,
        Some(TENANT_A),
        MaskStyle::Last,
        2,
    ),
    (
        "secret",
        Tier::TenantSpecific,
        Some(TENANT_B),
        MaskStyle::Hash,
        4,
    ),
];

/// Keys of generated objects: defined fields, undefined ones, and the binding keys.
const KEYS: &[&str] = &[
    "id", "name", "imo", "crew", "email", "budget", "code", "secret", "zz", "data", "items",
    "vessel",
];

const BINDINGS: &[&str] = &["$", "$.data[*]", "$.items[*].vessel", "$.data"];

fn entity() -> EntityFields {
    let mut e = EntityFields::default();
    for (name, tier, tenant, mask, keep) in DEFS {
        let def = FieldDef {
            tier: *tier,
            tenant: *tenant,
            mask: *mask,
            mask_keep: *keep,
        };
        match tenant {
            Some(t) => {
                e.by_tenant
                    .entry(*t)
                    .or_default()
                    .insert((*name).into(), def);
            }
            None => {
                e.shared.insert((*name).into(), def);
            }
        }
    }
    e
}

// ---------------------------------------------------------------- documents

#[derive(Debug, Clone)]
enum J {
    Null,
    Bool(bool),
    /// Exact number text.
    Num(String),
    /// Exact string content (between the quotes).
    Str(String),
    Arr(Vec<J>),
    /// (raw key content, decoded key, value)
    Obj(Vec<(String, String, J)>),
}

fn key_strategy() -> impl Strategy<Value = (String, String)> {
    (0..KEYS.len(), any::<bool>()).prop_map(|(i, escape)| {
        let k = KEYS[i];
        let raw = if escape {
            // First character as a `\u` escape: same key once unescaped.
            let mut cs = k.chars();
            let c = cs.next().unwrap();
            format!("\\u{:04x}{}", c as u32, cs.as_str())
        } else {
            k.to_owned()
        };
        (raw, k.to_owned())
    })
}

fn num_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "0",
            "-0",
            "-0.0",
            "1.50",
            "1e10",
            "1E-7",
            "-12.5e+3",
            "123456789012345678901234567890",
            "3",
            "0.1",
        ])
        .prop_map(str::to_owned),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| format!("{f:e}")),
    ]
}

fn str_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "",
            "plain",
            r#"a\"b"#,
            r"back\\slash",
            r"\u00e9t\u00e9",
            r"\ud83d\ude00 smile",
            "日本語",
            r"line\nbreak\t\r\b\f\/",
            r"\u0000nul",
            "9811000",
        ])
        .prop_map(str::to_owned),
        "[a-zA-Z0-9 éß€]{0,12}",
    ]
}

fn leaf() -> impl Strategy<Value = J> {
    prop_oneof![
        Just(J::Null),
        any::<bool>().prop_map(J::Bool),
        num_strategy().prop_map(J::Num),
        str_strategy().prop_map(J::Str),
    ]
}

fn tree() -> impl Strategy<Value = J> {
    leaf().prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(J::Arr),
            prop::collection::vec((key_strategy(), inner), 0..6)
                .prop_map(|m| J::Obj(m.into_iter().map(|((r, d), v)| (r, d, v)).collect())),
        ]
    })
}

/// An entity: members with field keys, sometimes a duplicate.
fn entity_obj() -> impl Strategy<Value = J> {
    (
        prop::collection::vec((key_strategy(), tree()), 0..8),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(m, dup)| {
            let mut seen = BTreeSet::new();
            J::Obj(
                m.into_iter()
                    .filter(|((_, d), _)| dup || seen.insert(d.clone()))
                    .map(|((r, d), v)| (r, d, v))
                    .collect(),
            )
        })
}

/// A document shaped like `binding`, with extra members around and
/// occasionally a missing path, a `null` or a wrong shape.
fn shaped(binding: &'static str) -> BoxedStrategy<J> {
    let entities = prop::collection::vec(
        prop_oneof![8 => entity_obj(), 1 => Just(J::Null), 1 => tree()],
        0..5,
    );
    let extra = prop::collection::vec((key_strategy(), tree()), 0..3);
    match binding {
        "$" => prop_oneof![9 => entity_obj(), 1 => tree()].boxed(),
        "$.data[*]" => (entities, extra)
            .prop_map(|(es, extra)| wrap("data", J::Arr(es), extra))
            .boxed(),
        "$.data" => (prop_oneof![8 => entity_obj(), 1 => tree()], extra)
            .prop_map(|(e, extra)| wrap("data", e, extra))
            .boxed(),
        _ => (entities, extra)
            .prop_map(|(es, extra)| {
                let items = es.into_iter().map(|e| wrap("vessel", e, vec![])).collect();
                wrap("items", J::Arr(items), extra)
            })
            .boxed(),
    }
}

fn wrap(key: &str, v: J, extra: Vec<((String, String), J)>) -> J {
    let mut members: Vec<(String, String, J)> = extra
        .into_iter()
        .filter(|((_, d), _)| d != key)
        .map(|((r, d), v)| (r, d, v))
        .collect();
    let at = members.len() / 2;
    members.insert(at, (key.to_owned(), key.to_owned(), v));
    J::Obj(members)
}

fn write_json(j: &J, pretty: bool, out: &mut String) {
    let ws = |out: &mut String| {
        if pretty {
            out.push_str("\n  ");
        }
    };
    match j {
        J::Null => out.push_str("null"),
        J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        J::Num(n) => out.push_str(n),
        J::Str(s) => {
            out.push('"');
            out.push_str(s);
            out.push('"');
        }
        J::Arr(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                ws(out);
                write_json(v, pretty, out);
            }
            ws(out);
            out.push(']');
        }
        J::Obj(members) => {
            out.push('{');
            for (i, (k, _, v)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                ws(out);
                out.push('"');
                out.push_str(k);
                out.push_str(if pretty { "\" : " } else { "\":" });
                write_json(v, pretty, out);
            }
            ws(out);
            out.push('}');
        }
    }
}

fn to_text(j: &J, pretty: bool) -> String {
    let mut s = String::new();
    write_json(j, pretty, &mut s);
    s
}

/// Removes whitespace outside strings.
fn minify(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let (mut in_str, mut esc) = (false, false);
    for c in s.chars() {
        if in_str {
            out.push(c);
            if esc {
                esc = false;
            } else if c == '\\' {
                esc = true;
            } else if c == '"' {
                in_str = false;
            }
        } else if c == '"' {
            in_str = true;
            out.push(c);
        } else if !c.is_ascii_whitespace() {
            out.push(c);
        }
    }
    out
}

// ---------------------------------------------------------------- rules

#[derive(Debug, Clone)]
struct Rules {
    perms: Vec<[Vec<(String, FieldRule)>; 3]>,
    tenant: Uuid,
    unknown: UnknownFields,
}

fn rule_strategy() -> impl Strategy<Value = FieldRule> {
    prop::sample::select(vec![
        FieldRule::Read,
        FieldRule::Write,
        FieldRule::Masked,
        FieldRule::Hidden,
    ])
}

fn rules_strategy() -> impl Strategy<Value = Rules> {
    fn tier() -> impl Strategy<Value = Vec<(String, FieldRule)>> {
        let names = prop::sample::select(vec![
            "*", "*", "*", "id", "name", "imo", "crew", "email", "budget", "code", "secret", "zz",
        ]);
        prop::collection::vec((names, rule_strategy()), 0..5).prop_map(|v| {
            v.into_iter()
                .map(|(n, r)| (n.to_owned(), r))
                .collect::<Vec<_>>()
        })
    }
    let perm = (tier(), tier(), tier()).prop_map(|(a, b, c)| [a, b, c]);
    (
        prop::collection::vec(perm, 0..4),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(perms, b, keep)| Rules {
            perms,
            tenant: if b { TENANT_B } else { TENANT_A },
            unknown: if keep {
                UnknownFields::Keep
            } else {
                UnknownFields::Remove
            },
        })
}

impl Rules {
    fn permissions(&self) -> Vec<Permission> {
        self.perms
            .iter()
            .map(|tiers| Permission {
                id: "p".into(),
                effect: Effect::Allow,
                resource_type: "vessel".into(),
                resource: ResourcePattern::Any,
                actions: Actions::All,
                conditions: Box::new([]),
                tenant_scope: TenantScope::Own,
                fields: tiers.clone().map(|t| {
                    t.into_iter()
                        .map(|(n, r)| (n.into_boxed_str(), r))
                        .collect::<BTreeMap<_, _>>()
                }),
                shadow: false,
            })
            .collect()
    }

    /// The model: what the caller may do with key `k`, from the rules directly.
    fn model(&self, k: &str) -> Model {
        let def = DEFS
            .iter()
            .find(|(n, _, owner, _, _)| *n == k && owner.is_none_or(|o| o == self.tenant));
        let Some((_, tier, _, mask, keep)) = def else {
            return match self.unknown {
                UnknownFields::Remove => Model::Hidden,
                UnknownFields::Keep => Model::Write,
            };
        };
        // Later entries of a map win, as when collected into a BTreeMap.
        let mut best: Option<FieldRule> = None;
        let rank = |r: FieldRule| match r {
            FieldRule::Read => 1,
            FieldRule::Write => 2,
            FieldRule::Masked => 3,
            FieldRule::Hidden => 4,
        };
        for p in &self.perms {
            let rules = &p[tier_index(*tier)];
            let by_name = rules.iter().rev().find(|(n, _)| n == k).map(|(_, r)| *r);
            let star = rules.iter().rev().find(|(n, _)| n == "*").map(|(_, r)| *r);
            if let Some(r) = by_name.or(star) {
                if best.is_none_or(|b| rank(r) > rank(b)) {
                    best = Some(r);
                }
            }
        }
        match best {
            None | Some(FieldRule::Hidden) => Model::Hidden,
            Some(FieldRule::Read) => Model::Read,
            Some(FieldRule::Write) => Model::Write,
            Some(FieldRule::Masked) => Model::Masked(*mask, *keep),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Model {
    Hidden,
    Read,
    Write,
    Masked(MaskStyle, u8),
}

fn json_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fn decode(raw: &str) -> String {
    serde_json::from_str::<String>(&format!("\"{raw}\"")).unwrap()
}

/// The documented masks, written independently of the library.
fn expected_mask(style: MaskStyle, keep: u8, v: &J, pretty: bool) -> String {
    const FULL: &str = "\"********\"";
    if matches!(v, J::Null) || style == MaskStyle::Null {
        return "null".into();
    }
    match style {
        MaskStyle::Null => "null".into(),
        MaskStyle::Full => FULL.into(),
        MaskStyle::Last => {
            let text = match v {
                J::Str(s) => decode(s),
                J::Num(n) => n.clone(),
                _ => return FULL.into(),
            };
            let chars: Vec<char> = text.chars().collect();
            if keep == 0 || chars.len() <= keep as usize {
                return FULL.into();
            }
            let tail: String = chars[chars.len() - keep as usize..].iter().collect();
            format!("\"****{}\"", json_escape(&tail))
        }
        MaskStyle::Hash => {
            let bytes = match v {
                J::Str(s) => decode(s).into_bytes(),
                // Any other value: its JSON text as sent.
                other => to_text(other, pretty).into_bytes(),
            };
            let d = Sha256::digest(&bytes);
            let hex: String = d.iter().take(8).map(|b| format!("{b:02x}")).collect();
            format!("\"{hex}\"")
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fail {
    Duplicate,
    Shape,
}

#[derive(Clone, Copy, PartialEq)]
enum Purpose {
    Read,
    Strip,
}

struct Expect {
    text: String,
    denied: BTreeSet<String>,
    dup: bool,
    shape: bool,
    pretty: bool,
}

/// Writes the expected output of `j` (compact) following `steps`.
fn expect(j: &J, steps: &[Step], rules: &Rules, purpose: Purpose, e: &mut Expect) {
    match (steps.split_first(), j) {
        (_, J::Null) => e.text.push_str("null"),
        (None, J::Obj(members)) => {
            let mut seen = BTreeSet::new();
            e.text.push('{');
            let mut first = true;
            for (raw, k, v) in members {
                if !seen.insert(k.clone()) {
                    e.dup = true;
                }
                let m = rules.model(k);
                if !matches!(m, Model::Write) {
                    e.denied.insert(k.clone());
                }
                let shown = match (purpose, m) {
                    (Purpose::Read, Model::Hidden) => None,
                    (Purpose::Read, Model::Masked(style, keep)) => {
                        Some(expected_mask(style, keep, v, e.pretty))
                    }
                    (Purpose::Read, _) => Some(to_text(v, false)),
                    (Purpose::Strip, Model::Write) => Some(to_text(v, false)),
                    (Purpose::Strip, _) => None,
                };
                if let Some(text) = shown {
                    if !first {
                        e.text.push(',');
                    }
                    first = false;
                    e.text.push_str(&format!("\"{raw}\":{text}"));
                }
            }
            e.text.push('}');
        }
        (Some((Step::Key(key), rest)), J::Obj(members)) => {
            e.text.push('{');
            let mut seen = false;
            for (i, (raw, k, v)) in members.iter().enumerate() {
                if i > 0 {
                    e.text.push(',');
                }
                e.text.push_str(&format!("\"{raw}\":"));
                if **key == **k {
                    if seen {
                        e.dup = true;
                    }
                    seen = true;
                    expect(v, rest, rules, purpose, e);
                } else {
                    e.text.push_str(&to_text(v, false));
                }
            }
            e.text.push('}');
        }
        (Some((Step::Each, rest)), J::Arr(items)) => {
            e.text.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    e.text.push(',');
                }
                expect(v, rest, rules, purpose, e);
            }
            e.text.push(']');
        }
        (_, other) => {
            e.shape = true;
            e.text.push_str(&to_text(other, false));
        }
    }
}

fn expected(
    j: &J,
    binding: &Binding,
    rules: &Rules,
    purpose: Purpose,
    pretty: bool,
) -> Result<(String, BTreeSet<String>), Fail> {
    let mut e = Expect {
        text: String::new(),
        denied: BTreeSet::new(),
        dup: false,
        shape: false,
        pretty,
    };
    expect(j, binding.steps(), rules, purpose, &mut e);
    if e.dup {
        Err(Fail::Duplicate)
    } else if e.shape {
        Err(Fail::Shape)
    } else {
        Ok((e.text, e.denied))
    }
}

fn fail_of(e: &sentinel::fields::FilterError) -> Fail {
    match e.reason() {
        "duplicate_key" => Fail::Duplicate,
        "unexpected_shape" => Fail::Shape,
        other => panic!("unexpected error kind {other}: {e}"),
    }
}

/// The entity objects at `steps` in a parsed document.
fn entities<'v>(v: &'v Value, steps: &[Step], out: &mut Vec<&'v serde_json::Map<String, Value>>) {
    match (steps.split_first(), v) {
        (None, Value::Object(m)) => out.push(m),
        (Some((Step::Key(k), rest)), Value::Object(m)) => {
            if let Some(v) = m.get(&**k) {
                entities(v, rest, out);
            }
        }
        (Some((Step::Each, rest)), Value::Array(items)) => {
            for v in items {
                entities(v, rest, out);
            }
        }
        _ => {}
    }
}

fn is_mask(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => {
            s == "********"
                || s.starts_with("****")
                || (s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        }
        _ => false,
    }
}

/// Does serde_json reject `bytes` as JSON text? Numbers beyond `f64` (`1e400`)
/// are valid JSON that serde_json refuses to hold; the filter copies their text.
fn serde_rejects(bytes: &[u8]) -> bool {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(_) => false,
        Err(e) => !e.to_string().starts_with("number out of range"),
    }
}

fn doc_strategy() -> impl Strategy<Value = (&'static str, J, bool)> {
    prop::sample::select(BINDINGS.to_vec()).prop_flat_map(|b| {
        (
            Just(b),
            prop_oneof![4 => shaped(b), 1 => tree()],
            any::<bool>(),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    /// Responses: exactly the model's output; nothing unreadable at any entity;
    /// readable values byte-identical; masked ones only masks; valid JSON.
    #[test]
    fn response_matches_model((at, doc, pretty) in doc_strategy(), rules in rules_strategy()) {
        let binding = Binding::parse(at).unwrap();
        let perms = rules.permissions();
        let refs: Vec<&Permission> = perms.iter().collect();
        let plan = FieldPlan::build(Some(&entity()), &rules.tenant, &refs, rules.unknown);
        let input = to_text(&doc, pretty);
        let mut out = Vec::new();
        let got = filter_response(input.as_bytes(), &binding, &plan, &mut out);
        match (expected(&doc, &binding, &rules, Purpose::Read, pretty), got) {
            (Ok((want, _)), Ok(_)) => {
                let text = std::str::from_utf8(&out).unwrap();
                if pretty {
                    prop_assert_eq!(minify(text), want);
                } else {
                    prop_assert_eq!(text, want);
                }
                let v: Value = serde_json::from_slice(&out).unwrap();
                let mut found = Vec::new();
                entities(&v, binding.steps(), &mut found);
                for obj in found {
                    for (k, v) in obj {
                        match rules.model(k) {
                            Model::Hidden => prop_assert!(false, "unreadable `{}` in the output", k),
                            Model::Masked(..) => prop_assert!(is_mask(v), "`{}` = {} is not a mask", k, v),
                            Model::Read | Model::Write => {}
                        }
                    }
                }
            }
            (Err(f), Err(e)) => {
                prop_assert_eq!(f, fail_of(&e));
                prop_assert!(out.is_empty());
            }
            (want, got) => prop_assert!(false, "model {:?} vs filter {:?}\n{}", want.map(|w| w.0), got, input),
        }
    }

    /// Requests: the denied list and the stripped body match the model.
    #[test]
    fn writes_match_model((at, doc, pretty) in doc_strategy(), rules in rules_strategy()) {
        let binding = Binding::parse(at).unwrap();
        let perms = rules.permissions();
        let refs: Vec<&Permission> = perms.iter().collect();
        let plan = FieldPlan::build(Some(&entity()), &rules.tenant, &refs, rules.unknown);
        let input = to_text(&doc, pretty);
        let check = check_write(input.as_bytes(), &binding, &plan);
        let mut out = Vec::new();
        let strip = strip_unwritable(input.as_bytes(), &binding, &plan, &mut out);
        match expected(&doc, &binding, &rules, Purpose::Strip, pretty) {
            Ok((want, denied)) => {
                let check = check.unwrap();
                prop_assert_eq!(check.denied, denied.into_iter().collect::<Vec<_>>());
                strip.unwrap();
                let text = std::str::from_utf8(&out).unwrap();
                prop_assert_eq!(if pretty { minify(text) } else { text.to_owned() }, want);
            }
            Err(f) => {
                prop_assert_eq!(f, fail_of(&check.unwrap_err()));
                prop_assert_eq!(f, fail_of(&strip.unwrap_err()));
            }
        }
    }

    /// Broken documents: whatever serde_json rejects, the filter rejects
    /// (and nothing panics).
    #[test]
    fn malformed_is_rejected(
        (at, doc, pretty) in doc_strategy(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..4, prop::sample::select(b"{}[]\",:\\ 0a-e.\x01".to_vec())), 1..4),
    ) {
        let mut bytes = to_text(&doc, pretty).into_bytes();
        for (at, op, b) in edits {
            if bytes.is_empty() {
                break;
            }
            let i = at.index(bytes.len());
            match op {
                0 => { bytes.remove(i); }
                1 => bytes.insert(i, b),
                2 => bytes[i] = b,
                _ => bytes.truncate(i),
            }
        }
        let binding = Binding::parse(at).unwrap();
        let plan = FieldPlan::build(Some(&entity()), &TENANT_A, &[], UnknownFields::Keep);
        let mut out = Vec::new();
        let got = filter_response(&bytes, &binding, &plan, &mut out);
        if !bytes.is_empty() && serde_rejects(&bytes) {
            prop_assert!(got.is_err(), "accepted {:?}", String::from_utf8_lossy(&bytes));
            prop_assert!(check_write(&bytes, &binding, &plan).is_err());
        }
        if got.is_ok() {
            // Keep-all plan over valid input: the output is valid JSON.
            prop_assert!(bytes.is_empty() || !serde_rejects(&out));
        }
    }

    /// Arbitrary bytes never panic, and never pass where serde_json fails.
    #[test]
    fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..64), b in 0..BINDINGS.len()) {
        let binding = Binding::parse(BINDINGS[b]).unwrap();
        let plan = FieldPlan::build(Some(&entity()), &TENANT_A, &[], UnknownFields::Remove);
        let mut out = Vec::new();
        let got = filter_response(&bytes, &binding, &plan, &mut out);
        if !bytes.is_empty() && serde_rejects(&bytes) {
            prop_assert!(got.is_err());
        }
    }

    /// Binding paths: parse ∘ display is the identity, and parsing never panics
    /// (`binding_sources_parse` shows the generator reaches valid bindings).
    #[test]
    fn binding_round_trip(src in BINDING_SOURCE) {
        if let Ok(b) = Binding::parse(&src) {
            prop_assert_eq!(Binding::parse(&b.to_string()).unwrap(), b);
        }
    }

    #[test]
    fn binding_never_panics(src in "\\PC{0,20}") {
        let _ = Binding::parse(&src);
    }
}

#[test]
fn model_sanity() {
    // The generators reach every interesting case at least sometimes.
    let rules = Rules {
        perms: vec![[
            vec![
                ("*".into(), FieldRule::Read),
                ("name".into(), FieldRule::Masked),
            ],
            vec![],
            vec![],
        ]],
        tenant: TENANT_A,
        unknown: UnknownFields::Remove,
    };
    assert_eq!(rules.model("id"), Model::Read);
    assert_eq!(rules.model("name"), Model::Masked(MaskStyle::Last, 3));
    assert_eq!(rules.model("budget"), Model::Hidden);
    assert_eq!(rules.model("secret"), Model::Hidden);
}

/// What `binding_round_trip` parses: keys, `[*]` and quoted keys.
const BINDING_SOURCE: &str = "\\$(\\.[a-z_é]{1,6}|\\[\\*\\]|\\[\"[a-z. \\\\\"]{0,5}\"\\]){0,5}";

/// Control for `binding_round_trip`, which checks only what parses: most
/// generated sources do, so the round trip is not vacuous.
#[test]
fn binding_sources_parse() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let n = 500;
    let parsed = (0..n)
        .filter(|_| {
            let src = BINDING_SOURCE.new_tree(&mut runner).unwrap().current();
            Binding::parse(&src).is_ok()
        })
        .count();
    assert!(
        parsed * 2 > n,
        "only {parsed} of {n} generated bindings parse"
    );
}

/// The generators reach every interesting case often enough.
#[test]
fn generator_coverage() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut ok, mut removed, mut masked, mut dup, mut shape, mut escaped_keys) =
        (0, 0, 0, 0, 0, 0);
    let n = 2000;
    for _ in 0..n {
        let (at, doc, pretty) = doc_strategy().new_tree(&mut runner).unwrap().current();
        let rules = rules_strategy().new_tree(&mut runner).unwrap().current();
        let binding = Binding::parse(at).unwrap();
        let perms = rules.permissions();
        let refs: Vec<&Permission> = perms.iter().collect();
        let plan = FieldPlan::build(Some(&entity()), &rules.tenant, &refs, rules.unknown);
        let input = to_text(&doc, pretty);
        escaped_keys += usize::from(input.contains("\\u00"));
        match filter_response(input.as_bytes(), &binding, &plan, &mut Vec::new()) {
            Ok(s) => {
                ok += 1;
                removed += usize::from(s.removed > 0);
                masked += usize::from(s.masked > 0);
            }
            Err(e) if e.reason() == "duplicate_key" => dup += 1,
            Err(e) if e.reason() == "unexpected_shape" => shape += 1,
            Err(e) => panic!("{e}"),
        }
    }
    eprintln!("ok {ok} removed {removed} masked {masked} dup {dup} shape {shape} escaped {escaped_keys} of {n}");
    for (what, count) in [
        ("ok", ok),
        ("removed", removed),
        ("masked", masked),
        ("dup", dup),
        ("shape", shape),
    ] {
        assert!(count * 20 > n, "{what}: only {count} of {n}");
    }
}
