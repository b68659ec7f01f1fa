//! Database access: connection pools and tenant-scoped transactions.
//!
//! Every query of a request runs in a transaction whose tenant is set with
//! `set_config('sentinel.tenant_id', ..., true)`, so row-level security is the
//! second wall behind the API's own checks.

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

pub type Tx = Transaction<'static, Postgres>;

/// Which rows a transaction may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantCtx {
    /// One tenant's rows (and, for `tenants`, its direct sub-tenants).
    One(Uuid),
    /// Every tenant: platform superadmin work and the operator commands only.
    All,
}

/// Begins a transaction with the tenant context set for its whole life.
pub async fn begin(pool: &PgPool, ctx: TenantCtx) -> Result<Tx, sqlx::Error> {
    let mut tx = pool.begin().await?;
    match ctx {
        TenantCtx::One(t) => {
            sqlx::query("SELECT set_config('sentinel.tenant_id', $1, true)")
                .bind(t.to_string())
                .execute(&mut *tx)
                .await?;
        }
        TenantCtx::All => {
            sqlx::query("SELECT set_config('sentinel.all_tenants', 'on', true)")
                .execute(&mut *tx)
                .await?;
        }
    }
    Ok(tx)
}

pub async fn connect(url: &str, max: u32) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(std::time::Duration::from_secs(5))
        .connect(url)
        .await
}

/// Applies `migrations/` (embedded at build time).
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    sqlx::migrate!("../migrations").run(pool).await
}

/// What the connected role may do that it should not: returns a description
/// when it is a superuser, bypasses RLS, or owns the `sentinel` schema.
pub async fn role_problem(pool: &PgPool) -> Result<Option<String>, sqlx::Error> {
    let row: (String, bool, bool, bool) = sqlx::query_as(
        "SELECT current_user::text, r.rolsuper, r.rolbypassrls,
                coalesce((SELECT n.nspowner = r.oid FROM pg_namespace n WHERE n.nspname = 'sentinel'), false)
           FROM pg_roles r WHERE r.rolname = current_user",
    )
    .fetch_one(pool)
    .await?;
    let (name, sup, bypass, owner) = row;
    Ok(if sup || bypass || owner {
        Some(format!(
            "database role `{name}` is a superuser, bypasses row-level security or owns the schema; \
             connect as `sentinel_api` (see docs/admin-api.md)"
        ))
    } else {
        None
    })
}
