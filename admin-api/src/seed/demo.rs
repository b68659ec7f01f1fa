//! What only the admin API has of the demo world. The policy itself (tenants,
//! roles, permissions, principals, groups, field definitions, revoked
//! tokens) is the gateway's `config/policy/demo.toml`, imported as it is;
//! this file adds the rest: emails and passwords of humans, a few
//! admin-only principals, the scopes roles carry, tenant settings and field
//! data types the gateway does not read, and the demo fleet and menu.

use super::{TEST_001, TEST_001_SUB, TEST_002};
use crate::db::Tx;
use sentinel_policy::source::PolicySource;
use serde_json::{json, Value};
use uuid::{uuid, Uuid};

/// The gateway's demo policy, as `sentinel demo` loads it.
pub fn policy() -> anyhow::Result<PolicySource> {
    Ok(toml::from_str(include_str!(
        "../../../config/policy/demo.toml"
    ))?)
}

/// Principals, roles and groups only the admin API has, in the policy
/// format (imported the same way).
const ADMIN_ONLY_POLICY: &str = r#"
[[roles]]
id = "auditor"
name = "auditor"

[[groups]]
id = "pacific-ops"
name = "demo group"
tenant = "22222222-2222-2222-2222-222222222222"
roles = ["viewer"]

[[principals]]
id = "aaaaaaaa-0000-4000-8000-000000000005"
tenant = "11111111-1111-1111-1111-111111111111"
name = "Olga Operator"
roles = ["operator"]
attributes = { department = "fleet" }

[[principals]]
id = "aaaaaaaa-0000-4000-8000-000000000006"
tenant = "11111111-1111-1111-1111-111111111111"
name = "Axel Auditor"
roles = ["auditor"]
attributes = { department = "compliance" }

[[principals]]
id = "dddddddd-0000-4000-8000-000000000001"
tenant = "33333333-3333-3333-3333-333333333333"
name = "Sara (Nordic Tankers admin)"
roles = ["tenant_admin"]

[[principals]]
id = "bbbbbbbb-0000-4000-8000-000000000003"
tenant = "22222222-2222-2222-2222-222222222222"
name = "pacific-sync"
service_account = true
roles = ["fleet_sync"]
"#;

/// [`ADMIN_ONLY_POLICY`], parsed.
pub fn admin_only_policy() -> anyhow::Result<PolicySource> {
    Ok(toml::from_str(ADMIN_ONLY_POLICY)?)
}

/// What the importer needs beyond a policy source.
pub struct AdminOnly {
    /// Login email of each human principal (the policy names them for display).
    pub emails: &'static [(Uuid, &'static str)],
    /// Extra group memberships of principals the policy file lists.
    pub memberships: &'static [(&'static str, Uuid)],
    /// Scopes of roles by name, and whether the role is a system role.
    pub role_scopes: fn(&str) -> (Vec<String>, bool),
    /// Settings the admin API keeps for a tenant beyond the policy's.
    pub tenant_settings: &'static [(Uuid, &'static str, &'static str)],
    /// (entity, field, data type) of fields that are not strings.
    pub data_types: &'static [(&'static str, &'static str, &'static str)],
    /// API keys whose plain text is public (shown when the account is created).
    pub known_keys: &'static [(Uuid, &'static str)],
    /// The tenant a revoked token of the policy is recorded under.
    pub revoked_tenant: Uuid,
}

fn role_scopes(name: &str) -> (Vec<String>, bool) {
    match name {
        // Its own permissions only: an inherited masking rule would mask
        // what its own permissions show.
        "tenant_admin" => (crate::scopes::tenant_admin_scopes(), true),
        "auditor" => (crate::scopes::auditor_scopes(), false),
        _ => (Vec::new(), false),
    }
}

pub const ADMIN_ONLY: AdminOnly = AdminOnly {
    emails: &[
        (
            uuid!("aaaaaaaa-0000-4000-8000-000000000001"),
            "alice@nordic.example",
        ),
        (
            uuid!("aaaaaaaa-0000-4000-8000-000000000002"),
            "victor@nordic.example",
        ),
        (
            uuid!("aaaaaaaa-0000-4000-8000-000000000004"),
            "lena@nordic.example",
        ),
        (
            uuid!("aaaaaaaa-0000-4000-8000-000000000005"),
            "olga@nordic.example",
        ),
        (
            uuid!("aaaaaaaa-0000-4000-8000-000000000006"),
            "axel@nordic.example",
        ),
        (
            uuid!("bbbbbbbb-0000-4000-8000-000000000001"),
            "bob@pacific.example",
        ),
        (
            uuid!("bbbbbbbb-0000-4000-8000-000000000002"),
            "pia@pacific.example",
        ),
        (
            uuid!("cccccccc-0000-4000-8000-000000000001"),
            "carl@suspended.example",
        ),
        (
            uuid!("dddddddd-0000-4000-8000-000000000001"),
            "sara@tankers.example",
        ),
    ],
    memberships: &[("pacific-ops", uuid!("bbbbbbbb-0000-4000-8000-000000000002"))],
    role_scopes,
    tenant_settings: &[
        (TEST_001, "rate_limit_plan", "enterprise"),
        (TEST_001_SUB, "rate_limit_plan", "standard"),
        (TEST_002, "rate_limit_plan", "standard"),
        (super::TEST_003, "rate_limit_plan", "free"),
    ],
    data_types: &[
        ("vessel", "charter_rate_usd", "number"),
        ("vessel", "crew_salary_budget", "number"),
        ("vessel", "sire_inspection_due", "date"),
        ("voyage", "departure", "datetime"),
        ("voyage", "eta_confidence", "number"),
        ("voyage", "fuel_estimate_t", "number"),
        ("voyage", "cargo_value_usd", "number"),
        ("port_call", "eta", "datetime"),
        ("port_call", "etd", "datetime"),
        ("port_call", "congestion_index", "number"),
    ],
    known_keys: &[(
        uuid!("aaaaaaaa-0000-4000-8000-000000000003"),
        super::DEMO_API_KEY,
    )],
    revoked_tenant: TEST_001,
};

/// (external id, name, IMO, flag) of vessels; (id, vessel, route) of
/// voyages; (id, vessel, port) of port calls: the fleet of the gateway
/// demo's upstream apps, by tenant.
type Fleet = (
    Uuid,
    &'static [(&'static str, &'static str, &'static str, &'static str)],
    &'static [(&'static str, &'static str, &'static str)],
    &'static [(&'static str, &'static str, &'static str)],
);

const FLEET: &[Fleet] = &[
    (
        TEST_001,
        &[
            ("v-a1", "Nordic Aurora", "9395044", "NO"),
            ("v-a2", "Nordic Fjord", "9421087", "NO"),
            ("v-a3", "Nordic Star", "9512343", "DK"),
        ],
        &[
            ("voy-a1", "v-a1", "NOOSL - DEHAM"),
            ("voy-a2", "v-a2", "DEHAM - NLRTM"),
        ],
        &[("pc-a1", "v-a1", "DEHAM"), ("pc-a2", "v-a2", "NLRTM")],
    ),
    (
        TEST_002,
        &[
            ("v-b1", "Pacific Pearl", "9634567", "SG"),
            ("v-b2", "Pacific Horizon", "9701231", "PA"),
        ],
        &[
            ("voy-b1", "v-b1", "SGSIN - CNSHA"),
            ("voy-b2", "v-b2", "CNSHA - USLAX"),
        ],
        &[("pc-b1", "v-b1", "CNSHA"), ("pc-b2", "v-b2", "USLAX")],
    ),
    (
        TEST_001_SUB,
        &[
            ("v-s1", "Nordic Crude", "9456783", "MT"),
            ("v-s2", "Nordic Naphtha", "9567893", "MT"),
        ],
        &[
            ("voy-s1", "v-s1", "NLRTM - SEGOT"),
            ("voy-s2", "v-s2", "SEGOT - NOOSL"),
        ],
        &[("pc-s1", "v-s1", "SEGOT"), ("pc-s2", "v-s2", "NOOSL")],
    ),
];

/// (parent path, label, path, order, needed resource type and action) of
/// the menu every demo tenant gets.
type MenuItem = (
    Option<&'static str>,
    &'static str,
    &'static str,
    i32,
    Option<(&'static str, &'static str)>,
);

const MENU: &[MenuItem] = &[
    (None, "Fleet", "/fleet", 10, None),
    (
        Some("/fleet"),
        "Vessels",
        "/fleet/vessels",
        10,
        Some(("vessel", "read")),
    ),
    (
        Some("/fleet"),
        "Voyages",
        "/fleet/voyages",
        20,
        Some(("voyage", "read")),
    ),
    (
        Some("/fleet"),
        "New vessel",
        "/fleet/vessels/new",
        30,
        Some(("vessel", "create")),
    ),
    (
        None,
        "Port calls",
        "/port/calls",
        20,
        Some(("port_call", "read")),
    ),
    (
        None,
        "MSW declarations",
        "/msw/declarations",
        30,
        Some(("port_call", "update")),
    ),
];

/// The demo fleet as resources and the menu of every demo tenant.
pub async fn seed_catalog(tx: &mut Tx) -> anyhow::Result<()> {
    for (tenant, vessels, voyages, calls) in FLEET {
        let mut ids = std::collections::HashMap::new();
        for (ext, name, imo, flag) in *vessels {
            let id = upsert_resource(
                tx,
                *tenant,
                "vessel",
                ext,
                name,
                None,
                json!({"imo": imo, "flag": flag}),
            )
            .await?;
            ids.insert(*ext, id);
        }
        for (ext, vessel, route) in *voyages {
            upsert_resource(
                tx,
                *tenant,
                "voyage",
                ext,
                route,
                ids.get(vessel).copied(),
                json!({}),
            )
            .await?;
        }
        for (ext, vessel, port) in *calls {
            let attrs = json!({"port_code": port});
            upsert_resource(
                tx,
                *tenant,
                "port_call",
                ext,
                port,
                ids.get(vessel).copied(),
                attrs,
            )
            .await?;
        }
    }
    for tenant in [TEST_001, TEST_001_SUB, TEST_002, super::TEST_003] {
        let mut ids = std::collections::HashMap::new();
        for (parent, label, path, order, perm) in MENU {
            let parent = parent.and_then(|p| ids.get(p).copied());
            let id = ensure_nav(tx, tenant, parent, label, path, *order, *perm).await?;
            ids.insert(*path, id);
        }
    }
    Ok(())
}

async fn upsert_resource(
    tx: &mut Tx,
    tenant: Uuid,
    rtype: &str,
    ext: &str,
    name: &str,
    parent: Option<Uuid>,
    attrs: Value,
) -> anyhow::Result<Uuid> {
    Ok(sqlx::query_scalar(
        "INSERT INTO sentinel.resources (tenant_id, resource_type, external_id, name, parent_id, attributes)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (tenant_id, resource_type, external_id) DO UPDATE SET name = EXCLUDED.name RETURNING id",
    )
    .bind(tenant)
    .bind(rtype)
    .bind(ext)
    .bind(name)
    .bind(parent)
    .bind(attrs)
    .fetch_one(&mut **tx)
    .await?)
}

async fn ensure_nav(
    tx: &mut Tx,
    tenant: Uuid,
    parent: Option<Uuid>,
    label: &str,
    path: &str,
    order: i32,
    perm: Option<(&str, &str)>,
) -> anyhow::Result<Uuid> {
    let existing: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM sentinel.navigation_items WHERE tenant_id = $1 AND path = $2",
    )
    .bind(tenant)
    .bind(path)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(id) = existing {
        return Ok(id);
    }
    Ok(sqlx::query_scalar(
        "INSERT INTO sentinel.navigation_items (tenant_id, parent_id, label, path, sort_order, resource_type, action)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(tenant)
    .bind(parent)
    .bind(label)
    .bind(path)
    .bind(order)
    .bind(perm.map(|p| p.0))
    .bind(perm.map(|p| p.1))
    .fetch_one(&mut **tx)
    .await?)
}
