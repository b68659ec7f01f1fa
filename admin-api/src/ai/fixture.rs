//! A generated tenant with known problems, for the AI features' tests and
//! the optimizer's run-time measurement (docs/ai.md, "Testing"): a port
//! operator with a dozen roles over a score of permissions, users spread
//! over them, and gateway decisions for every day of a window, stored by the
//! audit trail's own writer (`audit::store::append`, what ingest uses).
//!
//! Planted, and nothing else wrong:
//! - two over-privileged users (`viewer` + `reporting`, using only `viewer`);
//! - a permission held and never used (`vessel.delete` in `fleet_manager`);
//! - a role nobody holds (`legacy_auditor`);
//! - a near-duplicate pair (`cargo_clerk` ⊂ `cargo_planner`, Jaccard 5/6);
//! - four users holding `port_agent` + `dispatcher`, which no role names;
//! - one user allowed to create and approve payments (SoD rule
//!   `payment-create-approve`);
//! - a service account whose key is 200 days old, and one rotated recently;
//! - two dormant users (last login 200 days ago, no decisions);
//! - one UTC day, five days back, without any audit event.
//!
//! Writes as the migration role (the caller's pool), with the all-tenants
//! context; never used by `serve`.

use crate::audit::event::Event;
use crate::config::Config;
use crate::db::Tx;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use sqlx::PgPool;
use std::collections::BTreeMap;
use uuid::Uuid;

/// What to generate.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Tenant code (unique in the database).
    pub code: String,
    /// Users with ordinary profiles, besides the planted ones (at least 11).
    pub users: usize,
    /// Days of audit events before `now`.
    pub days: i64,
    /// Allowed decisions per active user and day.
    pub events_per_user_day: usize,
    pub now: DateTime<Utc>,
    /// Password of the tenant's administrator (`admin@<code>.example`).
    pub admin_password: String,
}

/// Ids of what was generated and planted.
#[derive(Debug, Clone, Default)]
pub struct Planted {
    pub tenant: Uuid,
    pub admin: Uuid,
    pub admin_email: String,
    pub perms: BTreeMap<String, Uuid>,
    pub roles: BTreeMap<String, Uuid>,
    pub over_privileged: Vec<Uuid>,
    pub unused_permission: Uuid,
    pub unused_role: Uuid,
    /// (`cargo_clerk`, `cargo_planner`).
    pub near_duplicate: (Uuid, Uuid),
    pub mined_users: Vec<Uuid>,
    pub sod_user: Uuid,
    pub stale_service_account: Uuid,
    pub fresh_service_account: Uuid,
    pub dormant: Vec<Uuid>,
    pub gap_day: Option<NaiveDate>,
    pub events: u64,
}

const PERMS: &[(&str, &str)] = &[
    ("vessel", "read"),
    ("vessel", "update"),
    ("vessel", "delete"),
    ("crew", "read"),
    ("crew", "update"),
    ("port_call", "read"),
    ("port_call", "create"),
    ("port_call", "update"),
    ("berth", "read"),
    ("berth", "update"),
    ("berth", "assign"),
    ("cargo", "read"),
    ("cargo", "create"),
    ("cargo", "update"),
    ("cargo", "plan"),
    ("invoice", "read"),
    ("invoice", "create"),
    ("invoice", "approve"),
    ("payment", "read"),
    ("payment", "create"),
    ("payment", "approve"),
    ("report", "read"),
    ("report", "export"),
    ("audit_log", "read"),
];

const ROLES: &[(&str, &[&str])] = &[
    ("viewer", &["vessel.read", "port_call.read", "cargo.read"]),
    (
        "fleet_manager",
        &[
            "vessel.read",
            "vessel.update",
            "vessel.delete",
            "crew.read",
            "crew.update",
        ],
    ),
    (
        "port_agent",
        &[
            "port_call.read",
            "port_call.create",
            "port_call.update",
            "berth.read",
        ],
    ),
    (
        "dispatcher",
        &["berth.read", "berth.update", "berth.assign"],
    ),
    (
        "cargo_clerk",
        &[
            "cargo.read",
            "cargo.update",
            "cargo.create",
            "port_call.read",
            "berth.read",
        ],
    ),
    (
        "cargo_planner",
        &[
            "cargo.read",
            "cargo.update",
            "cargo.create",
            "port_call.read",
            "berth.read",
            "cargo.plan",
        ],
    ),
    ("invoice_clerk", &["invoice.read", "invoice.create"]),
    ("invoice_approver", &["invoice.read", "invoice.approve"]),
    ("payment_clerk", &["payment.read", "payment.create"]),
    ("payment_approver", &["payment.read", "payment.approve"]),
    ("reporting", &["report.read", "report.export"]),
    ("legacy_auditor", &["audit_log.read", "report.read"]),
];

/// The ordinary profiles users are spread over (one role each).
const PROFILES: &[&str] = &[
    "viewer",
    "fleet_manager",
    "port_agent",
    "dispatcher",
    "cargo_clerk",
    "cargo_planner",
    "invoice_clerk",
    "invoice_approver",
    "payment_clerk",
    "payment_approver",
    "reporting",
];

/// A principal that makes decisions: id, kind, the permissions it uses.
struct Actor {
    id: Uuid,
    service_account: bool,
    uses: Vec<(Uuid, &'static str, &'static str)>,
}

fn lookup(map: &BTreeMap<String, Uuid>, key: &str) -> anyhow::Result<Uuid> {
    map.get(key)
        .copied()
        .ok_or_else(|| anyhow::anyhow!("fixture names no `{key}`"))
}

async fn begin_all(pool: &PgPool) -> anyhow::Result<Tx> {
    Ok(crate::db::begin_platform(pool).await?)
}

async fn user(
    tx: &mut Tx,
    tenant: Uuid,
    email: &str,
    hash: Option<&str>,
    created: DateTime<Utc>,
    last_login: Option<DateTime<Utc>>,
) -> anyhow::Result<Uuid> {
    Ok(sqlx::query_scalar(
        "INSERT INTO sentinel.users (tenant_id, email, name, password_hash, created_at, last_login)
         VALUES ($1, $2, $2, $3, $4, $5) RETURNING id",
    )
    .bind(tenant)
    .bind(email)
    .bind(hash)
    .bind(created)
    .bind(last_login)
    .fetch_one(&mut **tx)
    .await?)
}

async fn service_account(
    tx: &mut Tx,
    tenant: Uuid,
    name: &str,
    key_created: DateTime<Utc>,
) -> anyhow::Result<Uuid> {
    let (_, prefix, hash) = crate::domain::api_keys::new_key();
    Ok(sqlx::query_scalar(
        "INSERT INTO sentinel.users (tenant_id, name, is_service_account, api_key_prefix, api_key_hash,
                api_key_created_at, created_at)
         VALUES ($1, $2, true, $3, $4, $5, $5) RETURNING id",
    )
    .bind(tenant)
    .bind(name)
    .bind(prefix)
    .bind(hash)
    .bind(key_created)
    .fetch_one(&mut **tx)
    .await?)
}

async fn grant(tx: &mut Tx, tenant: Uuid, user: Uuid, role: Uuid) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO sentinel.user_roles (user_id, role_id, tenant_id) VALUES ($1, $2, $3)",
    )
    .bind(user)
    .bind(role)
    .bind(tenant)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Generates the tenant and its audit trail; returns what was planted.
pub async fn generate(pool: &PgPool, cfg: &Config, spec: &Spec) -> anyhow::Result<Planted> {
    anyhow::ensure!(
        spec.users >= PROFILES.len(),
        "at least {} users",
        PROFILES.len()
    );
    let now = spec.now;
    let mut p = Planted::default();
    let mut tx = begin_all(pool).await?;
    let lower = spec.code.to_ascii_lowercase();
    p.tenant = sqlx::query_scalar(
        "INSERT INTO sentinel.tenants (code, name, settings)
         VALUES ($1, $2, '{\"audit_retention_days\": 2555}') RETURNING id",
    )
    .bind(&spec.code)
    .bind(format!("{} (generated)", spec.code))
    .fetch_one(&mut *tx)
    .await?;
    let t = p.tenant;
    for (rt, action) in PERMS {
        let name = format!("{rt}.{action}");
        let id: Uuid = sqlx::query_scalar(
            "INSERT INTO sentinel.permissions (tenant_id, name, resource_type, actions)
             VALUES ($1, $2, $3, ARRAY[$4]) RETURNING id",
        )
        .bind(t)
        .bind(&name)
        .bind(rt)
        .bind(action)
        .fetch_one(&mut *tx)
        .await?;
        p.perms.insert(name, id);
    }
    for (name, perms) in ROLES {
        let id: Uuid = sqlx::query_scalar(
            "INSERT INTO sentinel.roles (tenant_id, name) VALUES ($1, $2) RETURNING id",
        )
        .bind(t)
        .bind(name)
        .fetch_one(&mut *tx)
        .await?;
        for perm in *perms {
            sqlx::query(
                "INSERT INTO sentinel.role_permissions (role_id, permission_id, tenant_id) VALUES ($1, $2, $3)",
            )
            .bind(id)
            .bind(lookup(&p.perms, perm)?)
            .bind(t)
            .execute(&mut *tx)
            .await?;
        }
        p.roles.insert((*name).to_owned(), id);
    }
    let admin_role: Uuid = sqlx::query_scalar(
        "INSERT INTO sentinel.roles (tenant_id, name, scopes) VALUES ($1, 'tenant_admin', $2) RETURNING id",
    )
    .bind(t)
    .bind(crate::scopes::tenant_admin_scopes())
    .fetch_one(&mut *tx)
    .await?;
    p.roles.insert("tenant_admin".to_owned(), admin_role);
    p.unused_permission = lookup(&p.perms, "vessel.delete")?;
    p.unused_role = lookup(&p.roles, "legacy_auditor")?;
    p.near_duplicate = (
        lookup(&p.roles, "cargo_clerk")?,
        lookup(&p.roles, "cargo_planner")?,
    );

    let hash = crate::password::hash_async(cfg, spec.admin_password.clone()).await?;
    p.admin_email = format!("admin@{lower}.example");
    let year_ago = now - Duration::days(365);
    p.admin = user(&mut tx, t, &p.admin_email, Some(&hash), year_ago, Some(now)).await?;
    grant(&mut tx, t, p.admin, admin_role).await?;

    // Which permissions a set of roles allows, minus those nobody uses.
    let perms_of = |roles: &[&str]| -> Vec<(Uuid, &'static str, &'static str)> {
        let mut out: Vec<(Uuid, &'static str, &'static str)> = Vec::new();
        for r in roles {
            let (_, list) = ROLES
                .iter()
                .find(|(n, _)| n == r)
                .copied()
                .unwrap_or(("", &[]));
            for perm in list {
                let Some((rt, a)) = PERMS.iter().find(|(rt, a)| format!("{rt}.{a}") == *perm)
                else {
                    continue;
                };
                let Some(id) = p.perms.get(*perm).copied() else {
                    continue;
                };
                if *perm != "vessel.delete" && !out.iter().any(|x| x.0 == id) {
                    out.push((id, rt, a));
                }
            }
        }
        out
    };
    let recent = |i: usize| now - Duration::hours(1 + (i % 72) as i64);
    let mut actors = Vec::new();
    for i in 0..spec.users {
        let profile = PROFILES[i % PROFILES.len()];
        let id = user(
            &mut tx,
            t,
            &format!("user{i}@{lower}.example"),
            None,
            year_ago,
            Some(recent(i)),
        )
        .await?;
        grant(&mut tx, t, id, lookup(&p.roles, profile)?).await?;
        actors.push(Actor {
            id,
            service_account: false,
            uses: perms_of(&[profile]),
        });
    }
    for i in 0..2 {
        let id = user(
            &mut tx,
            t,
            &format!("overpriv{i}@{lower}.example"),
            None,
            year_ago,
            Some(recent(i)),
        )
        .await?;
        grant(&mut tx, t, id, lookup(&p.roles, "viewer")?).await?;
        grant(&mut tx, t, id, lookup(&p.roles, "reporting")?).await?;
        p.over_privileged.push(id);
        actors.push(Actor {
            id,
            service_account: false,
            uses: perms_of(&["viewer"]),
        });
    }
    for i in 0..4 {
        let id = user(
            &mut tx,
            t,
            &format!("mined{i}@{lower}.example"),
            None,
            year_ago,
            Some(recent(i)),
        )
        .await?;
        grant(&mut tx, t, id, lookup(&p.roles, "port_agent")?).await?;
        grant(&mut tx, t, id, lookup(&p.roles, "dispatcher")?).await?;
        p.mined_users.push(id);
        actors.push(Actor {
            id,
            service_account: false,
            uses: perms_of(&["port_agent", "dispatcher"]),
        });
    }
    p.sod_user = user(
        &mut tx,
        t,
        &format!("sod@{lower}.example"),
        None,
        year_ago,
        Some(recent(0)),
    )
    .await?;
    grant(&mut tx, t, p.sod_user, lookup(&p.roles, "payment_clerk")?).await?;
    grant(
        &mut tx,
        t,
        p.sod_user,
        lookup(&p.roles, "payment_approver")?,
    )
    .await?;
    actors.push(Actor {
        id: p.sod_user,
        service_account: false,
        uses: perms_of(&["payment_clerk", "payment_approver"]),
    });
    for i in 0..2 {
        let id = user(
            &mut tx,
            t,
            &format!("dormant{i}@{lower}.example"),
            None,
            now - Duration::days(400),
            Some(now - Duration::days(200)),
        )
        .await?;
        grant(&mut tx, t, id, lookup(&p.roles, "viewer")?).await?;
        p.dormant.push(id);
    }
    p.stale_service_account =
        service_account(&mut tx, t, "etl-feed", now - Duration::days(200)).await?;
    grant(
        &mut tx,
        t,
        p.stale_service_account,
        lookup(&p.roles, "viewer")?,
    )
    .await?;
    actors.push(Actor {
        id: p.stale_service_account,
        service_account: true,
        uses: perms_of(&["viewer"]),
    });
    p.fresh_service_account =
        service_account(&mut tx, t, "port-sync", now - Duration::days(10)).await?;
    grant(
        &mut tx,
        t,
        p.fresh_service_account,
        lookup(&p.roles, "port_agent")?,
    )
    .await?;
    actors.push(Actor {
        id: p.fresh_service_account,
        service_account: true,
        uses: perms_of(&["port_agent"]),
    });
    tx.commit().await?;

    p.gap_day = (spec.days > 6).then(|| (now - Duration::days(5)).date_naive());
    p.events = write_events(pool, t, &actors, spec, p.gap_day).await?;
    Ok(p)
}

/// Every actor's decisions over the window (cycling through what it uses,
/// and one denied request a day for the first actor), stored in batches.
async fn write_events(
    pool: &PgPool,
    tenant: Uuid,
    actors: &[Actor],
    spec: &Spec,
    gap: Option<NaiveDate>,
) -> anyhow::Result<u64> {
    let mut batch = Vec::new();
    let mut total = 0;
    let mut k: usize = 0;
    for d in 0..spec.days {
        for (ai, a) in actors.iter().enumerate() {
            for e in 0..spec.events_per_user_day {
                k += 1;
                let time = spec.now
                    - Duration::days(d)
                    - Duration::seconds(60 + ((k * 7919) % 80_000) as i64);
                if Some(time.date_naive()) == gap {
                    continue;
                }
                let n = d as usize * spec.events_per_user_day + e;
                let Some(&(perm, rt, action)) = a.uses.get(n % a.uses.len().max(1)) else {
                    continue;
                };
                let denied = ai == 0 && e == 0;
                batch.push(event(tenant, a, time, perm, rt, action, denied));
            }
        }
        if batch.len() >= 20_000 {
            total += flush(pool, std::mem::take(&mut batch)).await?;
        }
    }
    total += flush(pool, batch).await?;
    Ok(total)
}

fn event(
    tenant: Uuid,
    a: &Actor,
    time: DateTime<Utc>,
    perm: Uuid,
    rt: &str,
    action: &str,
    denied: bool,
) -> Event {
    let time = chrono::SubsecRound::trunc_subsecs(time, 3);
    let method = match action {
        "read" => "GET",
        "create" => "POST",
        "delete" => "DELETE",
        _ => "PUT",
    };
    Event {
        id: Uuid::new_v4(),
        time,
        source: "gateway".to_owned(),
        request_id: Some(Uuid::new_v4().to_string()),
        tenant_id: Some(tenant),
        principal_id: Some(a.id.to_string()),
        principal_kind: Some(
            if a.service_account {
                "service_account"
            } else {
                "user"
            }
            .to_owned(),
        ),
        method: Some(method.to_owned()),
        route: Some(format!("/api/{rt}s/{{id}}")),
        path: Some(format!("/api/{rt}s/42")),
        resource: Some(rt.to_owned()),
        resource_id: Some("42".to_owned()),
        action: Some(if denied { "delete" } else { action }.to_owned()),
        outcome: if denied { "denied" } else { "allowed" }.to_owned(),
        code: denied.then(|| "PERMISSION_DENIED".to_owned()),
        reason: Some(
            if denied {
                "no_matching_permission"
            } else {
                "allowed"
            }
            .to_owned(),
        ),
        rules: if denied {
            Vec::new()
        } else {
            vec![perm.to_string()]
        },
        client_ip: Some("10.1.2.3".to_owned()),
        user_agent: Some("fixture".to_owned()),
        status: Some(if denied { 403 } else { 200 }),
        latency_ms: Some(3.0),
        risk_score: Some(0.1),
        snapshot_version: Some(1),
        gateway: Some("fixture".to_owned()),
        before: None,
        after: None,
    }
}

async fn flush(pool: &PgPool, events: Vec<Event>) -> anyhow::Result<u64> {
    if events.is_empty() {
        return Ok(0);
    }
    let mut tx = begin_all(pool).await?;
    let done = crate::audit::store::append(&mut tx, events).await?;
    tx.commit().await?;
    Ok(done.accepted)
}
