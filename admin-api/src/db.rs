//! Database access: connection pools and tenant-scoped transactions.
//!
//! Every query of a request runs in a transaction whose tenant is set with
//! `set_config('sentinel.tenant_id', ..., true)`, so row-level security is the
//! second wall behind the API's own checks.
//!
//! Two pools, two login roles (migration 0013): `sentinel_api` serves tenant
//! requests and can never see across tenants, whatever it sets;
//! `sentinel_platform` does the platform-wide work ([`TenantCtx::All`], the
//! publisher, the signing keys). A platform transaction begun on the API
//! pool is an error, not an empty result ([`enter_all_tenants`]).

use crate::audit::record::{self, Actor};
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};
use std::ops::{Deref, DerefMut};
use uuid::Uuid;

/// A request's transaction. Derefs to the connection (`&mut *tx` is an
/// executor, as with sqlx's own transaction). When the request has an
/// authenticated caller (its *actor*), the rows it writes are captured for
/// the audit trail, and [`Tx::commit`] records them as events in this same
/// transaction before committing (audit/record.rs): the one place admin
/// writes are audited.
pub struct Tx {
    inner: Transaction<'static, Postgres>,
    actor: Option<Actor>,
}

impl Deref for Tx {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.inner
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.inner
    }
}

/// A transaction begun without [`begin`] (its own isolation level, no
/// tenant): never audited.
impl From<Transaction<'static, Postgres>> for Tx {
    fn from(inner: Transaction<'static, Postgres>) -> Self {
        Tx { inner, actor: None }
    }
}

impl Tx {
    /// Records the audit events of the writes made (if there is an actor),
    /// then commits both together.
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        if let Some(actor) = self.actor {
            record::flush(&mut self, actor).await?;
        }
        self.inner.commit().await
    }

    /// Rolls back the writes and their captured audit rows.
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.inner.rollback().await
    }
}

/// Which rows a transaction may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantCtx {
    /// One tenant's rows (and, for `tenants`, its direct sub-tenants).
    One(Uuid),
    /// Every tenant: platform superadmin work and the operator commands only.
    All,
}

/// Begins a transaction with the tenant context set for its whole life
/// (and, inside a request with an authenticated caller, the audit actor).
pub async fn begin(pool: &PgPool, ctx: TenantCtx) -> Result<Tx, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let actor = record::current_actor();
    let actor_id = actor.map(|a| a.user_id.to_string()).unwrap_or_default();
    match ctx {
        TenantCtx::One(t) => {
            sqlx::query(
                "SELECT set_config('sentinel.tenant_id', $1, true), set_config('sentinel.audit_actor', $2, true)",
            )
            .bind(t.to_string())
            .bind(actor_id)
            .execute(&mut *tx)
            .await?;
        }
        TenantCtx::All => {
            sqlx::query("SELECT set_config('sentinel.audit_actor', $1, true)")
                .bind(actor_id)
                .execute(&mut *tx)
                .await?;
            enter_all_tenants(&mut tx).await?;
        }
    }
    Ok(Tx { inner: tx, actor })
}

/// Makes the current transaction see every tenant. Only the platform role
/// (and the schema's owner) is believed when it asks (`sentinel.all_tenants()`,
/// migration 0013): on a connection of another role this is an error, so
/// that platform work handed the API pool by mistake fails loudly instead
/// of finding every table empty.
pub async fn enter_all_tenants(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT set_config('sentinel.all_tenants', 'on', true)")
        .execute(&mut *conn)
        .await?;
    let honoured: bool = sqlx::query_scalar("SELECT sentinel.all_tenants()")
        .fetch_one(&mut *conn)
        .await?;
    if honoured {
        Ok(())
    } else {
        Err(sqlx::Error::Configuration(
            "a platform-wide transaction needs the platform role (SENTINEL_PLATFORM_DATABASE_URL, \
             docs/admin-api.md)"
                .into(),
        ))
    }
}

/// Begins a platform-wide transaction outside any request (never audited):
/// the publisher, the key stores, the fixtures.
pub async fn begin_platform(pool: &PgPool) -> Result<Tx, sqlx::Error> {
    let mut tx = pool.begin().await?;
    enter_all_tenants(&mut tx).await?;
    Ok(Tx::from(tx))
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
/// when it is a superuser, bypasses RLS, owns the `sentinel` schema, or is
/// believed when it asks to see every tenant (the platform role).
pub async fn role_problem(pool: &PgPool) -> Result<Option<String>, sqlx::Error> {
    let (name, sup, bypass, owner, platform) = role_facts(pool).await?;
    Ok(if sup || bypass || owner || platform {
        Some(format!(
            "database role `{name}` is a superuser, bypasses row-level security, owns the schema \
             or is the platform role; connect as `sentinel_api` (see docs/admin-api.md)"
        ))
    } else {
        None
    })
}

/// The same for the platform pool: it must be the platform role, and
/// neither a superuser nor a role that bypasses row-level security.
pub async fn platform_role_problem(pool: &PgPool) -> Result<Option<String>, sqlx::Error> {
    let (name, sup, bypass, owner, platform) = role_facts(pool).await?;
    Ok(if sup || bypass || owner || !platform {
        Some(format!(
            "platform database role `{name}` is not `sentinel_platform`, is a superuser, bypasses \
             row-level security or owns the schema; set SENTINEL_PLATFORM_DATABASE_URL to connect \
             as `sentinel_platform` (see docs/admin-api.md)"
        ))
    } else {
        None
    })
}

/// (name, superuser, bypasses RLS, owns the schema, believed across tenants).
async fn role_facts(pool: &PgPool) -> Result<(String, bool, bool, bool, bool), sqlx::Error> {
    sqlx::query_as(
        "SELECT current_user::text, r.rolsuper, r.rolbypassrls,
                coalesce((SELECT n.nspowner = r.oid FROM pg_namespace n WHERE n.nspname = 'sentinel'), false),
                sentinel.platform_role()
           FROM pg_roles r WHERE r.rolname = current_user",
    )
    .fetch_one(pool)
    .await
}
