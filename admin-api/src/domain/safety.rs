//! Account-safety rules (issue 17, items 7 and 8):
//!
//! - **Nobody changes what is stronger than themselves**, taking away as
//!   well as giving: removing a role from an account, changing or deleting a
//!   role, or detaching its permissions needs every scope of the role's whole
//!   chain ([`ensure_role_not_above`]); removing an account from a role or a
//!   group needs every scope the account holds
//!   ([`super::roles::ensure_not_above`]).
//! - **A tenant keeps an administrator**: a change that would leave a tenant
//!   that had one without any *active administrator* is refused
//!   ([`AdminGuard`]). An active administrator is a human account of the
//!   tenant, active and not locked, whose roles in force now (direct within
//!   their validity window, or through a group, with parent chains) give
//!   `platform:admin` in the platform tenant, or `user:admin` and
//!   `role:admin` in any other tenant (enough to repair everybody's access).
//!   `sentinel-admin bootstrap --recover` is the documented way back for the
//!   platform when the rule was bypassed in the database itself.

use crate::auth::{self, Caller};
use crate::db::Tx;
use crate::error::{ApiError, ApiResult};
use crate::scopes::{Level, ScopeSet};
use sentinel_policy::PLATFORM_TENANT;
use uuid::Uuid;

/// The caller must hold every scope of the role's chain to take it away,
/// change it or delete it.
pub async fn ensure_role_not_above(tx: &mut Tx, caller: &Caller, role_id: Uuid) -> ApiResult<()> {
    let theirs = auth::role_chain_scopes(tx, role_id).await?;
    let missing = caller.scopes.missing(theirs.iter().map(String::as_str));
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ApiError::denied(format!(
            "the role carries scopes you do not hold: {}",
            missing
                .iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }
}

/// Every active account of `tenant` with the scopes its roles give it now.
const HOLDERS: &str = "
WITH RECURSIVE eligible AS (
    SELECT id FROM sentinel.users
     WHERE tenant_id = $1 AND NOT is_service_account AND is_active
       AND NOT (is_locked AND (locked_until IS NULL OR locked_until > now()))
), direct (user_id, role_id) AS (
    SELECT ur.user_id, ur.role_id FROM sentinel.user_roles ur JOIN eligible e ON e.id = ur.user_id
     WHERE ur.is_active
       AND (ur.valid_from IS NULL OR ur.valid_from <= now())
       AND (ur.valid_until IS NULL OR ur.valid_until > now())
    UNION
    SELECT ug.user_id, gr.role_id FROM sentinel.user_groups ug JOIN eligible e ON e.id = ug.user_id
      JOIN sentinel.group_roles gr ON gr.group_id = ug.group_id
), chain (user_id, id, depth) AS (
    SELECT user_id, role_id, 0 FROM direct
    UNION
    SELECT c.user_id, r.parent_role_id, c.depth + 1 FROM chain c JOIN sentinel.roles r ON r.id = c.id
     WHERE r.parent_role_id IS NOT NULL AND c.depth < 64
)
SELECT c.user_id, array_agg(DISTINCT s) FROM chain c JOIN sentinel.roles r ON r.id = c.id,
       unnest(r.scopes) s
 GROUP BY c.user_id";

/// How many active administrators `tenant` has (see the module docs).
pub async fn admin_count(tx: &mut Tx, tenant: Uuid) -> Result<usize, sqlx::Error> {
    let rows: Vec<(Uuid, Vec<String>)> = sqlx::query_as(HOLDERS)
        .bind(tenant)
        .fetch_all(&mut **tx)
        .await?;
    let platform = tenant == PLATFORM_TENANT;
    Ok(rows
        .iter()
        .filter(|(_, scopes)| {
            let set = ScopeSet::from_scopes(scopes.iter().map(String::as_str), platform);
            if platform {
                set.is_platform_admin()
            } else {
                set.allows("user", Level::Admin) && set.allows("role", Level::Admin)
            }
        })
        .count())
}

/// Taken before a change that can take administration away, checked after
/// it in the same transaction: a tenant that had an administrator keeps one.
pub struct AdminGuard {
    tenant: Uuid,
    before: usize,
}

impl AdminGuard {
    pub async fn take(tx: &mut Tx, tenant: Uuid) -> ApiResult<AdminGuard> {
        // Two concurrent changes must not each remove "the other" last
        // administrator: they take turns per tenant.
        sqlx::query(
            "SELECT pg_advisory_xact_lock(hashtextextended('sentinel.admins:' || $1::text, 0))",
        )
        .bind(tenant)
        .execute(&mut **tx)
        .await?;
        Ok(AdminGuard {
            tenant,
            before: admin_count(tx, tenant).await?,
        })
    }

    pub async fn check(self, tx: &mut Tx) -> ApiResult<()> {
        if self.before > 0 && admin_count(tx, self.tenant).await? == 0 {
            return Err(ApiError::denied(
                "the change would leave the tenant without an active administrator",
            ));
        }
        Ok(())
    }
}

/// Takes `role` away from `user` (`DELETE /users/{u}/roles/{r}` and
/// `DELETE /roles/{r}/assign/{u}`): the caller holds both the role's chain
/// and everything the account holds, and the tenant keeps an administrator.
pub async fn take_role(tx: &mut Tx, caller: &Caller, user: Uuid, role: Uuid) -> ApiResult<()> {
    ensure_role_not_above(tx, caller, role).await?;
    super::roles::ensure_not_above(tx, caller, user).await?;
    let guard = AdminGuard::take(tx, caller.target).await?;
    super::rows::unlink_in(
        tx,
        caller,
        "user_roles",
        ("user_id", user),
        ("role_id", role),
    )
    .await?;
    guard.check(tx).await
}
