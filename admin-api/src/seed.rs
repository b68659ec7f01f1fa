//! Operator commands that write as the migration role: `bootstrap` (platform
//! tenant and superuser) and `seed-demo` (demo tenants with MSW/fleet/port
//! data). Both are idempotent: running them again changes nothing.

use crate::config::Config;
use crate::db::{self, TenantCtx, Tx};
use crate::scopes;
use sentinel_policy::PLATFORM_TENANT;
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::{uuid, Uuid};

pub const TEST_001: Uuid = uuid!("11111111-1111-1111-1111-111111111111");
pub const TEST_002: Uuid = uuid!("22222222-2222-2222-2222-222222222222");
pub const TEST_001_SUB: Uuid = uuid!("33333333-3333-3333-3333-333333333333");
pub const TEST_003: Uuid = uuid!("44444444-4444-4444-4444-444444444444");

/// The public demo key of `fleet-sync` (TEST-001), the same as the gateway demo's.
pub const DEMO_API_KEY: &str = "sk_fleetsy1_Q7wN2kR9pX4mT6vB8cJ3hL5dF1gS0aZeYu";

/// Password of the demo users unless `SENTINEL_DEMO_PASSWORD` is set.
pub const DEFAULT_DEMO_PASSWORD: &str = "Demo-Passw0rd!";

pub struct BootstrapReport {
    pub user_id: Uuid,
    pub created_user: bool,
}

async fn upsert_tenant(
    tx: &mut Tx,
    id: Uuid,
    code: &str,
    name: &str,
    kind: &str,
    parent: Option<Uuid>,
    settings: Value,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO sentinel.tenants (id, code, name, type, parent_id, settings) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(code)
    .bind(name)
    .bind(kind)
    .bind(parent)
    .bind(settings)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn upsert_role(
    tx: &mut Tx,
    tenant: Uuid,
    name: &str,
    scopes: &[String],
    parent: Option<Uuid>,
    system: bool,
) -> anyhow::Result<Uuid> {
    Ok(sqlx::query_scalar(
        "INSERT INTO sentinel.roles (tenant_id, name, scopes, parent_role_id, is_system) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (tenant_id, name) DO UPDATE SET scopes = EXCLUDED.scopes, parent_role_id = EXCLUDED.parent_role_id
         RETURNING id",
    )
    .bind(tenant)
    .bind(name)
    .bind(scopes)
    .bind(parent)
    .bind(system)
    .fetch_one(&mut **tx)
    .await?)
}

/// Returns (id, created).
#[expect(
    clippy::too_many_arguments,
    reason = "one column each; only the seed tables call it"
)]
async fn ensure_user(
    tx: &mut Tx,
    cfg: &Config,
    fixed_id: Option<Uuid>,
    tenant: Uuid,
    email: &str,
    name: &str,
    password: &str,
    attributes: Value,
) -> anyhow::Result<(Uuid, bool)> {
    let existing: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM sentinel.users WHERE tenant_id = $1 AND lower(email) = lower($2) AND NOT is_service_account",
    )
    .bind(tenant)
    .bind(email)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(id) = existing {
        return Ok((id, false));
    }
    let hash = crate::password::hash_async(cfg, password.to_owned()).await?;
    let id = sqlx::query_scalar(
        "INSERT INTO sentinel.users (id, tenant_id, email, name, password_hash, attributes, password_changed_at)
         VALUES (coalesce($6, gen_random_uuid()), $1, lower($2), $3, $4, $5, now()) RETURNING id",
    )
    .bind(tenant)
    .bind(email)
    .bind(name)
    .bind(hash)
    .bind(attributes)
    .bind(fixed_id)
    .fetch_one(&mut **tx)
    .await?;
    Ok((id, true))
}

async fn grant_role(tx: &mut Tx, tenant: Uuid, user: Uuid, role: Uuid) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO sentinel.user_roles (user_id, role_id, tenant_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(user)
    .bind(role)
    .bind(tenant)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// `sentinel-admin bootstrap`: the platform tenant, the `platform-superadmin`
/// role and a superuser. An existing user keeps its password.
pub async fn bootstrap(
    pool: &PgPool,
    cfg: &Config,
    email: &str,
    password: &str,
) -> anyhow::Result<BootstrapReport> {
    let problems = crate::password::policy_problems(password);
    if !problems.is_empty() {
        anyhow::bail!("SENTINEL_BOOTSTRAP_PASSWORD {}", problems.join(", "));
    }
    let mut tx = db::begin(pool, TenantCtx::All).await?;
    upsert_tenant(
        &mut tx,
        PLATFORM_TENANT,
        "PLATFORM",
        "Sentinel Platform",
        "platform",
        None,
        json!({}),
    )
    .await?;
    let role = upsert_role(
        &mut tx,
        PLATFORM_TENANT,
        "platform-superadmin",
        &[scopes::PLATFORM_ADMIN.to_owned()],
        None,
        true,
    )
    .await?;
    let (user_id, created_user) = ensure_user(
        &mut tx,
        cfg,
        None,
        PLATFORM_TENANT,
        email,
        "Platform superuser",
        password,
        json!({}),
    )
    .await?;
    grant_role(&mut tx, PLATFORM_TENANT, user_id, role).await?;
    tx.commit().await?;
    crate::keys::ensure_key(pool).await?;
    Ok(BootstrapReport {
        user_id,
        created_user,
    })
}

struct Perm<'a> {
    name: &'a str,
    effect: &'a str,
    resource_type: &'a str,
    pattern: &'a str,
    actions: &'a [&'a str],
    conditions: Value,
    tenant_scope: &'a str,
    description: &'a str,
    fields: Value,
}

async fn upsert_permission(tx: &mut Tx, tenant: Uuid, p: &Perm<'_>) -> anyhow::Result<Uuid> {
    let actions: Vec<String> = p.actions.iter().map(|s| (*s).to_owned()).collect();
    Ok(sqlx::query_scalar(
        "INSERT INTO sentinel.permissions (tenant_id, name, effect, resource_type, resource_pattern, actions, conditions,
                                            tenant_scope, description, field_rules)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (tenant_id, name) DO UPDATE SET effect = EXCLUDED.effect, resource_type = EXCLUDED.resource_type,
             resource_pattern = EXCLUDED.resource_pattern, actions = EXCLUDED.actions,
             conditions = EXCLUDED.conditions, tenant_scope = EXCLUDED.tenant_scope,
             description = EXCLUDED.description, field_rules = EXCLUDED.field_rules
         RETURNING id",
    )
    .bind(tenant)
    .bind(p.name)
    .bind(p.effect)
    .bind(p.resource_type)
    .bind(p.pattern)
    .bind(actions)
    .bind(&p.conditions)
    .bind(p.tenant_scope)
    .bind(p.description)
    .bind(&p.fields)
    .fetch_one(&mut **tx)
    .await?)
}

async fn attach(tx: &mut Tx, tenant: Uuid, role: Uuid, perm: Uuid) -> anyhow::Result<()> {
    sqlx::query("INSERT INTO sentinel.role_permissions (role_id, permission_id, tenant_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
        .bind(role)
        .bind(perm)
        .bind(tenant)
        .execute(&mut **tx)
        .await?;
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

#[expect(
    clippy::too_many_arguments,
    reason = "one column each; called only from the seed table below"
)]
async fn ensure_field(
    tx: &mut Tx,
    tenant: Option<Uuid>,
    entity: &str,
    field: &str,
    tier: &str,
    data_type: &str,
    sensitivity: &str,
    mask: &str,
    keep: Option<i16>,
) -> anyhow::Result<()> {
    // An existing definition (an earlier seed) is brought in line; otherwise inserted.
    let updated = sqlx::query(
        "UPDATE sentinel.field_definitions SET tier = $4, data_type = $5, sensitivity = $6, mask_style = $7, mask_keep = $8
          WHERE entity_type = $2 AND field_name = $3 AND tenant_id IS NOT DISTINCT FROM $1
            AND (tier, data_type, sensitivity, mask_style, mask_keep) IS DISTINCT FROM ($4, $5, $6, $7, $8)",
    )
    .bind(tenant)
    .bind(entity)
    .bind(field)
    .bind(tier)
    .bind(data_type)
    .bind(sensitivity)
    .bind(mask)
    .bind(keep)
    .execute(&mut **tx)
    .await?;
    if updated.rows_affected() > 0 {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO sentinel.field_definitions (tenant_id, entity_type, field_name, tier, data_type, sensitivity, mask_style, mask_keep)
         SELECT $1, $2, $3, $4, $5, $6, $7, $8
          WHERE NOT EXISTS (SELECT 1 FROM sentinel.field_definitions
                             WHERE entity_type = $2 AND field_name = $3 AND tenant_id IS NOT DISTINCT FROM $1)",
    )
    .bind(tenant)
    .bind(entity)
    .bind(field)
    .bind(tier)
    .bind(data_type)
    .bind(sensitivity)
    .bind(mask)
    .bind(keep)
    .execute(&mut **tx)
    .await?;
    Ok(())
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

/// What `seed-demo` created that is shown only once.
#[derive(Debug, Default)]
pub struct SeedReport {
    /// (tenant code, account name, API key) of service accounts created by this run.
    pub api_keys: Vec<(String, String, String)>,
    /// (tenant code, email) of users created by this run.
    pub users: Vec<(String, String)>,
}

/// Every field of every tier writable (`fleet-all`, `voyage-admin`, `port-call-admin`).
fn all_fields_write() -> Value {
    json!({"core": {"*": "write"}, "platform_dynamic": {"*": "write"}, "tenant_specific": {"*": "write"}})
}

/// The permissions of the gateway's demo policy (`config/policy/demo.toml`),
/// by the same names and with the same descriptions, tenant scopes and field
/// rules, in every demo tenant.
fn demo_permissions() -> Vec<Perm<'static>> {
    vec![
        Perm {
            name: "vessel-read",
            effect: "allow",
            resource_type: "vessel",
            pattern: "*",
            actions: &["read"],
            conditions: json!([]),
            tenant_scope: "own",
            description: "Read every vessel of the own tenant; IMO number, crew size and charter rate masked, crew salary budget hidden",
            fields: json!({
                "core": {"*": "read", "imo": "masked"},
                "platform_dynamic": {"*": "read", "crew_count": "masked"},
                "tenant_specific": {
                    "*": "read",
                    "charter_rate_usd": "masked",
                    "crew_salary_budget": "hidden",
                    "insurance_policy_no": "masked"
                }
            }),
        },
        Perm {
            name: "voyage-read",
            effect: "allow",
            resource_type: "voyage",
            pattern: "*",
            actions: &["read"],
            conditions: json!([]),
            tenant_scope: "own",
            description: "Read voyages; fuel estimate and cargo value masked",
            fields: json!({
                "core": {"*": "read"},
                "platform_dynamic": {"*": "read", "fuel_estimate_t": "masked"},
                "tenant_specific": {"*": "read", "cargo_value_usd": "masked", "customer_ref": "masked"}
            }),
        },
        Perm {
            name: "port-call-read",
            effect: "allow",
            resource_type: "port_call",
            pattern: "*",
            actions: &["read"],
            conditions: json!([]),
            tenant_scope: "own",
            description: "Read port calls; agent contact masked, pilot notes hidden",
            fields: json!({
                "core": {"*": "read"},
                "platform_dynamic": {"*": "read"},
                "tenant_specific": {"*": "read", "agent_contact": "masked", "pilot_notes": "hidden"}
            }),
        },
        Perm {
            name: "vessel-update",
            effect: "allow",
            resource_type: "vessel",
            pattern: "*",
            actions: &["update"],
            conditions: json!([]),
            tenant_scope: "own",
            description: "Rename and re-flag vessels",
            fields: json!({
                "core": {"*": "read", "name": "write", "flag": "write"},
                "platform_dynamic": {"*": "read", "crew_count": "masked"}
            }),
        },
        Perm {
            name: "voyage-write",
            effect: "allow",
            resource_type: "voyage",
            pattern: "*",
            actions: &["create", "update"],
            conditions: json!([]),
            tenant_scope: "own",
            description: "Plan and update voyages (not their commercial fields)",
            fields: json!({
                "core": {
                    "*": "read",
                    "vessel_id": "write",
                    "origin": "write",
                    "destination": "write",
                    "departure": "write",
                    "status": "write"
                },
                "platform_dynamic": {"*": "read", "eta_confidence": "write"}
            }),
        },
        Perm {
            name: "fleet-all",
            effect: "allow",
            resource_type: "vessel",
            pattern: "*",
            actions: &["*"],
            conditions: json!([]),
            tenant_scope: "own",
            description: "",
            fields: all_fields_write(),
        },
        Perm {
            name: "voyage-admin",
            effect: "allow",
            resource_type: "voyage",
            pattern: "*",
            actions: &["read", "create", "update"],
            conditions: json!([]),
            tenant_scope: "own",
            description: "Every voyage field of the own tenant",
            fields: all_fields_write(),
        },
        Perm {
            name: "port-call-admin",
            effect: "allow",
            resource_type: "port_call",
            pattern: "*",
            actions: &["read"],
            conditions: json!([]),
            tenant_scope: "own",
            description: "Every port call field of the own tenant",
            fields: all_fields_write(),
        },
        Perm {
            name: "deny-delete-flagship",
            effect: "deny",
            resource_type: "vessel",
            pattern: "v-a1",
            actions: &["delete"],
            conditions: json!([]),
            tenant_scope: "own",
            description: "The flagship is never deleted through the API",
            fields: json!({}),
        },
        Perm {
            name: "voyage-delete",
            effect: "allow",
            resource_type: "voyage",
            pattern: "*",
            actions: &["delete"],
            conditions: json!([]),
            tenant_scope: "own",
            description: "Deleting a voyage; the route also needs an approved grant",
            fields: json!({}),
        },
        Perm {
            name: "port-call-subtenants",
            effect: "allow",
            resource_type: "port_call",
            pattern: "*",
            actions: &["read"],
            conditions: json!([]),
            tenant_scope: "own_and_children",
            description: "Tenant admins see the port calls of their sub-tenants",
            fields: json!({"core": {"*": "read"}, "platform_dynamic": {"*": "read"}, "tenant_specific": {"*": "read"}}),
        },
        Perm {
            name: "port-call-update-ops",
            effect: "allow",
            resource_type: "port_call",
            pattern: "*",
            actions: &["update"],
            conditions: json!([
                {"type": "attribute", "name": "department", "op": "eq", "value": "port-ops"},
                {"type": "client_ip", "cidrs": ["127.0.0.0/8", "::1/128", "10.0.0.0/8"]}
            ]),
            tenant_scope: "own",
            description: "Port operations staff may update port calls from the office network",
            fields: json!({
                "core": {"*": "read", "eta": "write", "etd": "write", "berth": "write"},
                "platform_dynamic": {"*": "read"},
                "tenant_specific": {"*": "read", "agent_contact": "write"}
            }),
        },
    ]
}

/// Roles, permissions, resources and navigation of one demo tenant; returns role ids by name.
async fn seed_policy(
    tx: &mut Tx,
    tenant: Uuid,
) -> anyhow::Result<std::collections::HashMap<&'static str, Uuid>> {
    let mut perm = std::collections::HashMap::new();
    for p in demo_permissions() {
        perm.insert(p.name, upsert_permission(tx, tenant, &p).await?);
    }

    let read_scopes: Vec<String> = scopes::AREAS.iter().map(|a| format!("{a}:read")).collect();
    let viewer = upsert_role(tx, tenant, "viewer", &[], None, false).await?;
    let operator = upsert_role(tx, tenant, "operator", &[], Some(viewer), false).await?;
    // As in the demo policy, tenant_admin inherits nothing: a masking rule
    // inherited from viewer would mask fields its own permissions show.
    let admin = upsert_role(
        tx,
        tenant,
        "tenant_admin",
        &scopes::tenant_admin_scopes(),
        None,
        true,
    )
    .await?;
    let port_agent = upsert_role(tx, tenant, "port_agent", &[], None, false).await?;
    let fleet_sync = upsert_role(tx, tenant, "fleet_sync", &[], None, false).await?;
    let auditor = upsert_role(tx, tenant, "auditor", &read_scopes, None, false).await?;
    let grants: [(Uuid, &[&str]); 5] = [
        (viewer, &["vessel-read", "voyage-read", "port-call-read"]),
        (operator, &["vessel-update", "voyage-write"]),
        (
            admin,
            &[
                "fleet-all",
                "voyage-admin",
                "port-call-admin",
                "deny-delete-flagship",
                "port-call-subtenants",
                "voyage-delete",
            ],
        ),
        (port_agent, &["port-call-update-ops"]),
        (fleet_sync, &["vessel-read", "voyage-read", "voyage-write"]),
    ];
    for (role, names) in grants {
        for n in names {
            if let Some(p) = perm.get(n) {
                attach(tx, tenant, role, *p).await?;
            }
        }
    }

    let fleet = ensure_nav(tx, tenant, None, "Fleet", "/fleet", 10, None).await?;
    ensure_nav(
        tx,
        tenant,
        Some(fleet),
        "Vessels",
        "/fleet/vessels",
        10,
        Some(("vessel", "read")),
    )
    .await?;
    ensure_nav(
        tx,
        tenant,
        Some(fleet),
        "Voyages",
        "/fleet/voyages",
        20,
        Some(("voyage", "read")),
    )
    .await?;
    ensure_nav(
        tx,
        tenant,
        Some(fleet),
        "New vessel",
        "/fleet/vessels/new",
        30,
        Some(("vessel", "create")),
    )
    .await?;
    ensure_nav(
        tx,
        tenant,
        None,
        "Port calls",
        "/port/calls",
        20,
        Some(("port_call", "read")),
    )
    .await?;
    ensure_nav(
        tx,
        tenant,
        None,
        "MSW declarations",
        "/msw/declarations",
        30,
        Some(("port_call", "update")),
    )
    .await?;
    Ok(std::collections::HashMap::from([
        ("viewer", viewer),
        ("operator", operator),
        ("tenant_admin", admin),
        ("port_agent", port_agent),
        ("fleet_sync", fleet_sync),
        ("auditor", auditor),
    ]))
}

/// The fleet of the gateway demo's upstream apps: vessels, their voyages and port calls.
async fn seed_fleet(
    tx: &mut Tx,
    tenant: Uuid,
    vessels: &[(&str, &str, &str, &str)],
    voyages: &[(&str, &str, &str)],
    calls: &[(&str, &str, &str)],
) -> anyhow::Result<()> {
    let mut ids = std::collections::HashMap::new();
    for (ext, name, imo, flag) in vessels {
        let id = upsert_resource(
            tx,
            tenant,
            "vessel",
            ext,
            name,
            None,
            json!({"imo": imo, "flag": flag}),
        )
        .await?;
        ids.insert(*ext, id);
    }
    for (ext, vessel, route) in voyages {
        upsert_resource(
            tx,
            tenant,
            "voyage",
            ext,
            route,
            ids.get(vessel).copied(),
            json!({}),
        )
        .await?;
    }
    for (ext, vessel, port) in calls {
        upsert_resource(
            tx,
            tenant,
            "port_call",
            ext,
            port,
            ids.get(vessel).copied(),
            json!({"port_code": port}),
        )
        .await?;
    }
    Ok(())
}

/// A demo field definition: (tenant, entity, field, tier, data type,
/// sensitivity, mask, mask_keep).
type DemoField = (
    Option<Uuid>,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Option<i16>,
);

struct DemoUser {
    id: Uuid,
    tenant: Uuid,
    code: &'static str,
    email: &'static str,
    name: &'static str,
    roles: &'static [&'static str],
    attributes: Value,
    locked: bool,
}

/// `sentinel-admin seed-demo`: the tenants, principals, roles, permissions,
/// fields and fleet of the gateway's demo policy (`config/policy/demo.toml`,
/// same ids and names), plus navigation, so that the admin API and `sentinel
/// demo` show the same world. Humans log in with `password`; `fleet-sync`
/// (TEST-001) uses the public demo key [`DEMO_API_KEY`].
pub async fn seed_demo(pool: &PgPool, cfg: &Config, password: &str) -> anyhow::Result<SeedReport> {
    let mut report = SeedReport::default();
    let mut tx = db::begin(pool, TenantCtx::All).await?;
    upsert_tenant(
        &mut tx,
        PLATFORM_TENANT,
        "PLATFORM",
        "Sentinel Platform",
        "platform",
        None,
        json!({}),
    )
    .await?;
    upsert_tenant(
        &mut tx,
        TEST_001,
        "TEST-001",
        "Nordic Shipping",
        "root",
        None,
        json!({"plan": "enterprise", "rate_limit_plan": "enterprise"}),
    )
    .await?;
    upsert_tenant(
        &mut tx,
        TEST_001_SUB,
        "TEST-001-SUB",
        "Nordic Tankers",
        "sub",
        Some(TEST_001),
        json!({"rate_limit_plan": "standard"}),
    )
    .await?;
    upsert_tenant(
        &mut tx,
        TEST_002,
        "TEST-002",
        "Pacific Lines",
        "root",
        None,
        json!({"rate_limit_plan": "standard"}),
    )
    .await?;
    upsert_tenant(
        &mut tx,
        TEST_003,
        "TEST-003",
        "Suspended Freight",
        "root",
        None,
        json!({"rate_limit_plan": "free"}),
    )
    .await?;
    sqlx::query("UPDATE sentinel.tenants SET status = 'suspended' WHERE id = $1")
        .bind(TEST_003)
        .execute(&mut *tx)
        .await?;

    // The field definitions of the demo policy.
    let fields: [DemoField; 37] = [
        (
            None, "vessel", "id", "core", "string", "internal", "full", None,
        ),
        (
            None,
            "vessel",
            "tenant_id",
            "core",
            "string",
            "internal",
            "full",
            None,
        ),
        (
            None, "vessel", "name", "core", "string", "internal", "full", None,
        ),
        (
            None,
            "vessel",
            "imo",
            "core",
            "string",
            "internal",
            "last",
            Some(4),
        ),
        (
            None, "vessel", "flag", "core", "string", "internal", "full", None,
        ),
        (
            None,
            "vessel",
            "vessel_type",
            "core",
            "string",
            "internal",
            "full",
            None,
        ),
        (
            None,
            "vessel",
            "gross_tonnage",
            "core",
            "string",
            "internal",
            "full",
            None,
        ),
        (
            None,
            "vessel",
            "eco_score",
            "platform_dynamic",
            "string",
            "internal",
            "full",
            None,
        ),
        (
            None,
            "vessel",
            "ais_last_position",
            "platform_dynamic",
            "string",
            "internal",
            "full",
            None,
        ),
        (
            None,
            "vessel",
            "crew_count",
            "platform_dynamic",
            "string",
            "internal",
            "full",
            None,
        ),
        (
            Some(TEST_001),
            "vessel",
            "charter_rate_usd",
            "tenant_specific",
            "number",
            "confidential",
            "hash",
            None,
        ),
        (
            Some(TEST_001),
            "vessel",
            "crew_salary_budget",
            "tenant_specific",
            "number",
            "restricted",
            "full",
            None,
        ),
        (
            Some(TEST_002),
            "vessel",
            "insurance_policy_no",
            "tenant_specific",
            "string",
            "internal",
            "last",
            Some(4),
        ),
        (
            Some(TEST_001_SUB),
            "vessel",
            "sire_inspection_due",
            "tenant_specific",
            "date",
            "internal",
            "full",
            None,
        ),
        (
            None, "voyage", "id", "core", "string", "internal", "full", None,
        ),
        (
            None,
            "voyage",
            "tenant_id",
            "core",
            "string",
            "internal",
            "full",
            None,
        ),
        (
            None,
            "voyage",
            "vessel_id",
            "core",
            "string",
            "internal",
            "full",
            None,
        ),
        (
            None, "voyage", "origin", "core", "string", "internal", "full", None,
        ),
        (
            None,
            "voyage",
            "destination",
            "core",
            "string",
            "internal",
            "full",
            None,
        ),
        (
            None,
            "voyage",
            "departure",
            "core",
            "datetime",
            "internal",
            "full",
            None,
        ),
        (
            None, "voyage", "status", "core", "string", "internal", "full", None,
        ),
        (
            None,
            "voyage",
            "eta_confidence",
            "platform_dynamic",
            "number",
            "internal",
            "full",
            None,
        ),
        (
            None,
            "voyage",
            "fuel_estimate_t",
            "platform_dynamic",
            "number",
            "internal",
            "full",
            None,
        ),
        (
            Some(TEST_001),
            "voyage",
            "cargo_value_usd",
            "tenant_specific",
            "number",
            "internal",
            "null",
            None,
        ),
        (
            Some(TEST_002),
            "voyage",
            "customer_ref",
            "tenant_specific",
            "string",
            "internal",
            "last",
            Some(4),
        ),
        (
            Some(TEST_001_SUB),
            "voyage",
            "charterer",
            "tenant_specific",
            "string",
            "internal",
            "full",
            None,
        ),
        (
            None,
            "port_call",
            "id",
            "core",
            "string",
            "internal",
            "full",
            None,
        ),
        (
            None,
            "port_call",
            "tenant_id",
            "core",
            "string",
            "internal",
            "full",
            None,
        ),
        (
            None,
            "port_call",
            "vessel_id",
            "core",
            "string",
            "internal",
            "full",
            None,
        ),
        (
            None,
            "port_call",
            "port_code",
            "core",
            "string",
            "internal",
            "full",
            None,
        ),
        (
            None,
            "port_call",
            "eta",
            "core",
            "datetime",
            "internal",
            "full",
            None,
        ),
        (
            None,
            "port_call",
            "etd",
            "core",
            "datetime",
            "internal",
            "full",
            None,
        ),
        (
            None,
            "port_call",
            "berth",
            "core",
            "string",
            "internal",
            "full",
            None,
        ),
        (
            None,
            "port_call",
            "congestion_index",
            "platform_dynamic",
            "number",
            "internal",
            "full",
            None,
        ),
        (
            Some(TEST_001),
            "port_call",
            "agent_contact",
            "tenant_specific",
            "string",
            "internal",
            "hash",
            None,
        ),
        (
            Some(TEST_002),
            "port_call",
            "pilot_notes",
            "tenant_specific",
            "string",
            "internal",
            "full",
            None,
        ),
        (
            Some(TEST_001_SUB),
            "port_call",
            "bunker_order_ref",
            "tenant_specific",
            "string",
            "internal",
            "full",
            None,
        ),
    ];
    for (tenant, entity, field, tier, data_type, sensitivity, mask, keep) in fields {
        ensure_field(
            &mut tx,
            tenant,
            entity,
            field,
            tier,
            data_type,
            sensitivity,
            mask,
            keep,
        )
        .await?;
    }

    let mut roles = std::collections::HashMap::new();
    for t in [TEST_001, TEST_001_SUB, TEST_002, TEST_003] {
        roles.insert(t, seed_policy(&mut tx, t).await?);
    }
    seed_fleet(
        &mut tx,
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
    )
    .await?;
    seed_fleet(
        &mut tx,
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
    )
    .await?;
    seed_fleet(
        &mut tx,
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
    )
    .await?;

    let users = [
        DemoUser {
            id: uuid!("aaaaaaaa-0000-4000-8000-000000000001"),
            tenant: TEST_001,
            code: "TEST-001",
            email: "alice@nordic.example",
            name: "Alice Admin",
            roles: &["tenant_admin"],
            attributes: json!({"department": "port-ops", "email": "alice@nordic.example"}),
            locked: false,
        },
        DemoUser {
            id: uuid!("aaaaaaaa-0000-4000-8000-000000000002"),
            tenant: TEST_001,
            code: "TEST-001",
            email: "victor@nordic.example",
            name: "Victor Viewer",
            roles: &["viewer"],
            attributes: json!({"department": "finance", "email": "victor@nordic.example"}),
            locked: false,
        },
        DemoUser {
            id: uuid!("aaaaaaaa-0000-4000-8000-000000000004"),
            tenant: TEST_001,
            code: "TEST-001",
            email: "lena@nordic.example",
            name: "Lena Locked",
            roles: &["viewer"],
            attributes: json!({}),
            locked: true,
        },
        DemoUser {
            id: uuid!("aaaaaaaa-0000-4000-8000-000000000005"),
            tenant: TEST_001,
            code: "TEST-001",
            email: "olga@nordic.example",
            name: "Olga Operator",
            roles: &["operator"],
            attributes: json!({"department": "fleet"}),
            locked: false,
        },
        DemoUser {
            id: uuid!("aaaaaaaa-0000-4000-8000-000000000006"),
            tenant: TEST_001,
            code: "TEST-001",
            email: "axel@nordic.example",
            name: "Axel Auditor",
            roles: &["auditor"],
            attributes: json!({"department": "compliance"}),
            locked: false,
        },
        DemoUser {
            id: uuid!("bbbbbbbb-0000-4000-8000-000000000001"),
            tenant: TEST_002,
            code: "TEST-002",
            email: "bob@pacific.example",
            name: "Bob (Pacific Lines admin)",
            roles: &["tenant_admin"],
            attributes: json!({}),
            locked: false,
        },
        DemoUser {
            id: uuid!("bbbbbbbb-0000-4000-8000-000000000002"),
            tenant: TEST_002,
            code: "TEST-002",
            email: "pia@pacific.example",
            name: "Pia (Pacific Lines viewer)",
            roles: &["viewer"],
            attributes: json!({}),
            locked: false,
        },
        DemoUser {
            id: uuid!("cccccccc-0000-4000-8000-000000000001"),
            tenant: TEST_003,
            code: "TEST-003",
            email: "carl@suspended.example",
            name: "Carl (suspended tenant)",
            roles: &["viewer"],
            attributes: json!({}),
            locked: false,
        },
        DemoUser {
            id: uuid!("dddddddd-0000-4000-8000-000000000001"),
            tenant: TEST_001_SUB,
            code: "TEST-001-SUB",
            email: "sara@tankers.example",
            name: "Sara (Nordic Tankers admin)",
            roles: &["tenant_admin"],
            attributes: json!({}),
            locked: false,
        },
    ];
    for u in &users {
        let (id, created) = ensure_user(
            &mut tx,
            cfg,
            Some(u.id),
            u.tenant,
            u.email,
            u.name,
            password,
            u.attributes.clone(),
        )
        .await?;
        if u.locked {
            sqlx::query("UPDATE sentinel.users SET is_locked = true WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        for r in u.roles {
            if let Some(role) = roles.get(&u.tenant).and_then(|m| m.get(r)) {
                grant_role(&mut tx, u.tenant, id, *role).await?;
            }
        }
        if created {
            report.users.push((u.code.to_owned(), u.email.to_owned()));
        }
    }

    // Groups: the port team of TEST-001 (as in the demo policy) and one in TEST-002.
    for (tenant, name, role, members) in [
        (
            TEST_001,
            "nordic-port-team",
            "port_agent",
            vec![
                uuid!("aaaaaaaa-0000-4000-8000-000000000001"),
                uuid!("aaaaaaaa-0000-4000-8000-000000000002"),
            ],
        ),
        (
            TEST_002,
            "pacific-ops",
            "viewer",
            vec![uuid!("bbbbbbbb-0000-4000-8000-000000000002")],
        ),
    ] {
        let group: Uuid = sqlx::query_scalar(
            "INSERT INTO sentinel.groups (tenant_id, name, description) VALUES ($1, $2, 'demo group')
             ON CONFLICT (tenant_id, name) DO UPDATE SET description = EXCLUDED.description RETURNING id",
        )
        .bind(tenant)
        .bind(name)
        .fetch_one(&mut *tx)
        .await?;
        if let Some(r) = roles.get(&tenant).and_then(|m| m.get(role)) {
            sqlx::query("INSERT INTO sentinel.group_roles (group_id, role_id, tenant_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                .bind(group)
                .bind(r)
                .bind(tenant)
                .execute(&mut *tx)
                .await?;
        }
        for m in members {
            sqlx::query("INSERT INTO sentinel.user_groups (user_id, group_id, tenant_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                .bind(m)
                .bind(group)
                .bind(tenant)
                .execute(&mut *tx)
                .await?;
        }
    }

    // Service accounts: fleet-sync with the public demo key; pacific-sync with a fresh one.
    for (id, tenant, code, name, key) in [
        (
            uuid!("aaaaaaaa-0000-4000-8000-000000000003"),
            TEST_001,
            "TEST-001",
            "fleet-sync",
            Some(DEMO_API_KEY),
        ),
        (
            uuid!("bbbbbbbb-0000-4000-8000-000000000003"),
            TEST_002,
            "TEST-002",
            "pacific-sync",
            None,
        ),
    ] {
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM sentinel.users WHERE id = $1)")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
        if exists {
            continue;
        }
        let (key, prefix, hash) = match key {
            Some(k) => {
                let prefix = sentinel_policy::apikey::key_prefix(k)
                    .map_err(|e| anyhow::anyhow!("demo key: {e}"))?;
                (
                    k.to_owned(),
                    prefix.to_owned(),
                    sentinel_policy::apikey::hash_api_key(k),
                )
            }
            None => crate::routes::service_accounts::new_key(),
        };
        sqlx::query(
            "INSERT INTO sentinel.users (id, tenant_id, name, is_service_account, api_key_prefix, api_key_hash, api_key_created_at)
             VALUES ($1, $2, $3, true, $4, $5, now())",
        )
        .bind(id)
        .bind(tenant)
        .bind(name)
        .bind(prefix)
        .bind(hash)
        .execute(&mut *tx)
        .await?;
        if let Some(r) = roles.get(&tenant).and_then(|m| m.get("fleet_sync")) {
            grant_role(&mut tx, tenant, id, *r).await?;
        }
        report
            .api_keys
            .push((code.to_owned(), name.to_owned(), key));
    }

    // The demo's logged-out token.
    sqlx::query(
        "INSERT INTO sentinel.token_blacklist (jti, tenant_id, expires_at, reason)
         VALUES ('demo-logged-out', $1, '2100-01-01T00:00:00Z', 'demo') ON CONFLICT (jti) DO NOTHING",
    )
    .bind(TEST_001)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(report)
}

/// The platform role that lets a service account read policy snapshots.
pub const GATEWAY_ROLE: &str = "snapshot-reader";

/// A gateway's service account and its API key (shown once).
pub struct GatewayKey {
    pub user_id: Uuid,
    pub key: String,
}

/// `sentinel-admin gateway-key create|rotate --name NAME`: a platform service
/// account holding `snapshot:read` (through the system role `snapshot-reader`)
/// with a fresh API key. `create` refuses an existing name; `rotate` replaces
/// the key of an existing one (the old key stops working at once).
pub async fn gateway_key(
    pool: &PgPool,
    cfg: &Config,
    name: &str,
    rotate: bool,
    expires_in_days: Option<i64>,
) -> anyhow::Result<GatewayKey> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        anyhow::bail!("--name must be 1-100 characters");
    }
    let days = expires_in_days.unwrap_or(cfg.api_key_ttl_days);
    if !(0..=3650).contains(&days) {
        anyhow::bail!("--expires-in-days must be between 0 (no expiry) and 3650");
    }
    let mut tx = db::begin(pool, TenantCtx::All).await?;
    let platform: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM sentinel.tenants WHERE id = $1)")
            .bind(PLATFORM_TENANT)
            .fetch_one(&mut *tx)
            .await?;
    if !platform {
        anyhow::bail!("no platform tenant: run `sentinel-admin bootstrap` first");
    }
    let role = upsert_role(
        &mut tx,
        PLATFORM_TENANT,
        GATEWAY_ROLE,
        &[scopes::SNAPSHOT_READ.to_owned()],
        None,
        true,
    )
    .await?;
    let existing: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM sentinel.users WHERE tenant_id = $1 AND is_service_account AND lower(name) = lower($2)",
    )
    .bind(PLATFORM_TENANT)
    .bind(name)
    .fetch_optional(&mut *tx)
    .await?;
    let (key, prefix, hash) = crate::routes::service_accounts::new_key();
    let expires = (days > 0).then(|| chrono::Utc::now() + chrono::Duration::days(days));
    let user_id = match (existing, rotate) {
        (Some(_), false) => anyhow::bail!(
            "a platform service account named `{name}` already exists; use `gateway-key rotate`"
        ),
        (None, true) => anyhow::bail!("no platform service account named `{name}`"),
        (Some(id), true) => {
            let has_role: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM sentinel.user_roles WHERE user_id = $1 AND role_id = $2)",
            )
            .bind(id)
            .bind(role)
            .fetch_one(&mut *tx)
            .await?;
            if !has_role {
                anyhow::bail!(
                    "`{name}` is not a gateway service account (no `{GATEWAY_ROLE}` role)"
                );
            }
            sqlx::query(
                "UPDATE sentinel.users SET api_key_prefix = $2, api_key_hash = $3, api_key_created_at = now(),
                        api_key_expires_at = $4 WHERE id = $1",
            )
            .bind(id)
            .bind(&prefix)
            .bind(&hash)
            .bind(expires)
            .execute(&mut *tx)
            .await?;
            id
        }
        (None, false) => {
            let id: Uuid = sqlx::query_scalar(
                "INSERT INTO sentinel.users (tenant_id, name, is_service_account, api_key_prefix, api_key_hash,
                        api_key_created_at, api_key_expires_at, attributes)
                 VALUES ($1, $2, true, $3, $4, now(), $5, '{\"kind\": \"gateway\"}') RETURNING id",
            )
            .bind(PLATFORM_TENANT)
            .bind(name)
            .bind(&prefix)
            .bind(&hash)
            .bind(expires)
            .fetch_one(&mut *tx)
            .await?;
            grant_role(&mut tx, PLATFORM_TENANT, id, role).await?;
            id
        }
    };
    tx.commit().await?;
    Ok(GatewayKey { user_id, key })
}
