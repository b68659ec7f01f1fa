//! Shared fixture of the field-filter bench and the throughput example:
//! vessel-like entities of 24 fields under `$.data[*]`, and a plan that
//! removes half of them and masks three (last 4, hash, full).
#![allow(dead_code)]

use sentinel::fields::{FieldPlan, UnknownFields};
use sentinel_policy::model::{Actions, EntityFields, FieldDef, Permission, ResourcePattern};
use sentinel_policy::source::{Effect, FieldRule, MaskStyle, TenantScope, Tier};
use std::collections::BTreeMap;
use uuid::Uuid;

pub const TENANT: Uuid = Uuid::from_u128(1);

/// (field, tier, rule, mask)
const FIELDS: &[(&str, Tier, Option<FieldRule>, MaskStyle)] = &[
    ("id", Tier::Core, Some(FieldRule::Read), MaskStyle::Full),
    ("name", Tier::Core, Some(FieldRule::Read), MaskStyle::Full),
    ("imo", Tier::Core, Some(FieldRule::Masked), MaskStyle::Last),
    ("mmsi", Tier::Core, None, MaskStyle::Full),
    (
        "call_sign",
        Tier::Core,
        Some(FieldRule::Read),
        MaskStyle::Full,
    ),
    ("flag", Tier::Core, Some(FieldRule::Read), MaskStyle::Full),
    (
        "vessel_type",
        Tier::Core,
        Some(FieldRule::Read),
        MaskStyle::Full,
    ),
    ("gross_tonnage", Tier::Core, None, MaskStyle::Full),
    ("deadweight", Tier::Core, None, MaskStyle::Full),
    (
        "length_m",
        Tier::Core,
        Some(FieldRule::Read),
        MaskStyle::Full,
    ),
    ("beam_m", Tier::Core, None, MaskStyle::Full),
    ("built_year", Tier::Core, None, MaskStyle::Full),
    ("status", Tier::Core, Some(FieldRule::Read), MaskStyle::Full),
    (
        "position",
        Tier::Core,
        Some(FieldRule::Read),
        MaskStyle::Full,
    ),
    (
        "owner_email",
        Tier::PlatformDynamic,
        Some(FieldRule::Masked),
        MaskStyle::Hash,
    ),
    ("operator", Tier::PlatformDynamic, None, MaskStyle::Full),
    (
        "crew_count",
        Tier::PlatformDynamic,
        Some(FieldRule::Masked),
        MaskStyle::Full,
    ),
    ("last_port", Tier::PlatformDynamic, None, MaskStyle::Full),
    (
        "eta",
        Tier::PlatformDynamic,
        Some(FieldRule::Read),
        MaskStyle::Full,
    ),
    ("insurance", Tier::PlatformDynamic, None, MaskStyle::Full),
    (
        "budget",
        Tier::TenantSpecific,
        Some(FieldRule::Hidden),
        MaskStyle::Full,
    ),
    ("internal_code", Tier::TenantSpecific, None, MaskStyle::Full),
    ("notes", Tier::TenantSpecific, None, MaskStyle::Full),
    ("tags", Tier::TenantSpecific, None, MaskStyle::Full),
];

pub fn entity() -> EntityFields {
    let mut e = EntityFields::default();
    for (name, tier, _, mask) in FIELDS {
        let def = FieldDef {
            tier: *tier,
            tenant: (*tier == Tier::TenantSpecific).then_some(TENANT),
            mask: *mask,
            mask_keep: 4,
        };
        if *tier == Tier::TenantSpecific {
            e.by_tenant
                .entry(TENANT)
                .or_default()
                .insert((*name).into(), def);
        } else {
            e.shared.insert((*name).into(), def);
        }
    }
    e
}

pub fn permission() -> Permission {
    let mut fields: [BTreeMap<Box<str>, FieldRule>; 3] = Default::default();
    for (name, tier, rule, _) in FIELDS {
        if let Some(rule) = rule {
            fields[sentinel_policy::model::tier_index(*tier)].insert((*name).into(), *rule);
        }
    }
    Permission {
        id: "vessel-read".into(),
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

pub fn vessel(i: usize) -> String {
    format!(
        r#"{{"id":"v-{i:06}","name":"MV Northern Star {i}","imo":"IMO9{i:06}","mmsi":"2442{i:05}","call_sign":"PD{i:04}","flag":"NL","vessel_type":"container","gross_tonnage":{gt},"deadweight":{dw}.5,"length_m":299.95,"beam_m":48.2,"built_year":2011,"status":"under_way","position":{{"lat":51.9{i},"lon":4.1{i},"ts":"2026-11-22T01:50:00Z"}},"owner_email":"owner{i}@example.com","operator":"Ocean \"Line\" B.V.","crew_count":{crew},"last_port":"NLRTM","eta":"2026-11-23T08:00:00Z","insurance":{{"policy":"P-{i}","insurer":"Lloyd's"}},"budget":125000.00,"internal_code":"X\u00e9-{i}","notes":"line\nbreak","tags":["a","b","c"]}}"#,
        gt = 50_000 + i,
        dw = 60_000 + i,
        crew = 20 + i % 7,
    )
}

pub fn document(target: usize) -> String {
    let mut s = String::from(r#"{"data":["#);
    let mut i = 0;
    while s.len() < target.saturating_sub(64) {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&vessel(i));
        i += 1;
    }
    s.push_str(&format!(
        r#"],"meta":{{"page":1,"count":{i},"next":null}}}}"#
    ));
    s
}

/// The bench plan and the permission it came from.
pub fn plan() -> (FieldPlan, Permission) {
    let perm = permission();
    let plan = FieldPlan::build(Some(&entity()), &TENANT, &[&perm], UnknownFields::Remove);
    (plan, perm)
}
