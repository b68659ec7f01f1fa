//! Operator commands that write as the migration role: `bootstrap` (platform
//! tenant and superuser), `seed-demo` (the demo world: [`import`] of the
//! gateway's demo policy plus [`demo`], what only the admin API has) and
//! `gateway-key`. All are idempotent: running them again changes nothing.

pub mod demo;
pub mod import;

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

pub(crate) async fn upsert_tenant(
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

pub(crate) async fn upsert_role(
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
pub(crate) async fn ensure_user(
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

pub(crate) async fn grant_role(
    tx: &mut Tx,
    tenant: Uuid,
    user: Uuid,
    role: Uuid,
) -> anyhow::Result<()> {
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

/// `sentinel-admin bootstrap --recover`: the way back when the platform has
/// no working superadmin (a lost password, a locked or deactivated account,
/// an assignment whose window ended, a role whose scopes were edited in the
/// database). Runs [`bootstrap`], then gives the account the
/// `platform-superadmin` role with no window, activates and unlocks it, sets
/// its password to `password` and ends its sessions. Needs the database
/// owner's credentials, as every CLI command does: whoever has them could do
/// this in SQL anyway.
pub async fn recover(
    pool: &PgPool,
    cfg: &Config,
    email: &str,
    password: &str,
) -> anyhow::Result<BootstrapReport> {
    let report = bootstrap(pool, cfg, email, password).await?;
    let hash = crate::password::hash_async(cfg, password.to_owned()).await?;
    let mut tx = db::begin(pool, TenantCtx::All).await?;
    sqlx::query(
        "UPDATE sentinel.users SET is_active = true, is_locked = false, locked_until = NULL,
                failed_login_count = 0, password_hash = $2, password_changed_at = now()
          WHERE id = $1",
    )
    .bind(report.user_id)
    .bind(hash)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE sentinel.user_roles SET is_active = true, valid_from = NULL, valid_until = NULL
          WHERE user_id = $1
            AND role_id = (SELECT id FROM sentinel.roles WHERE tenant_id = $2 AND name = 'platform-superadmin')",
    )
    .bind(report.user_id)
    .bind(PLATFORM_TENANT)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE sentinel.refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL")
        .bind(report.user_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(report)
}

/// What `seed-demo` created that is shown only once.
#[derive(Debug, Default)]
pub struct SeedReport {
    /// (tenant code, account name, API key) of service accounts created by this run.
    pub api_keys: Vec<(String, String, String)>,
    /// (tenant code, email) of users created by this run.
    pub users: Vec<(String, String)>,
}

/// `sentinel-admin seed-demo`: the gateway's demo policy
/// (`config/policy/demo.toml`: the same tenant, principal, role, permission
/// and field ids and names) imported with [`import::import`], then what only
/// the admin API has ([`demo`]: emails, admin-only principals, scopes, the
/// fleet as resources, a menu), so that the admin API and `sentinel demo`
/// show one world. Humans log in with `password`; `fleet-sync` (TEST-001)
/// uses the public demo key [`DEMO_API_KEY`].
pub async fn seed_demo(pool: &PgPool, cfg: &Config, password: &str) -> anyhow::Result<SeedReport> {
    let mut src = demo::policy()?;
    src.merge(demo::admin_only_policy()?);
    let mut report = SeedReport::default();
    let mut tx = db::begin(pool, TenantCtx::All).await?;
    import::import(&mut tx, cfg, &src, &demo::ADMIN_ONLY, password, &mut report).await?;
    demo::seed_catalog(&mut tx).await?;
    tx.commit().await?;
    Ok(report)
}

/// The platform role that lets a service account read policy snapshots and
/// ship audit events.
pub const GATEWAY_ROLE: &str = "snapshot-reader";

/// A gateway's service account and its API key (shown once).
pub struct GatewayKey {
    pub user_id: Uuid,
    pub key: String,
}

/// `sentinel-admin gateway-key create|rotate --name NAME`: a platform service
/// account holding `snapshot:read` and `audit:write` (through the system role `snapshot-reader`)
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
        &[
            scopes::SNAPSHOT_READ.to_owned(),
            scopes::AUDIT_WRITE.to_owned(),
        ],
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
    let (key, prefix, hash) = crate::domain::api_keys::new_key();
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
