//! Group rules: a member receives every scope of the group's roles, so
//! adding a member or giving the group a role needs those scopes held.

use super::roles::check_role_grant;
use crate::auth::Caller;
use crate::db::Tx;
use crate::error::{ApiResult, FieldErrors};
use uuid::Uuid;

/// Scopes every member of the group receives through its roles' chains.
pub async fn group_scopes(tx: &mut Tx, group: Uuid) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "WITH RECURSIVE chain (id, depth) AS (
             SELECT role_id, 0 FROM sentinel.group_roles WHERE group_id = $1
             UNION
             SELECT r.parent_role_id, c.depth + 1 FROM chain c JOIN sentinel.roles r ON r.id = c.id
              WHERE r.parent_role_id IS NOT NULL AND c.depth < 64)
         SELECT DISTINCT s FROM sentinel.roles r, unnest(r.scopes) s WHERE r.id IN (SELECT id FROM chain)",
    )
    .bind(group)
    .fetch_all(&mut **tx)
    .await
}

/// Adds a member (idempotent); refused when the group's roles carry scopes the caller lacks.
pub async fn add_member(tx: &mut Tx, caller: &Caller, group: Uuid, user: Uuid) -> ApiResult<()> {
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sentinel.groups WHERE id = $1 AND tenant_id = $2)",
    )
    .bind(group)
    .bind(caller.target)
    .fetch_one(&mut **tx)
    .await?;
    if !exists {
        return Err(FieldErrors::one(
            "group_ids",
            format!("group `{group}` does not exist in this tenant"),
        ));
    }
    let user_exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sentinel.users WHERE id = $1 AND tenant_id = $2)",
    )
    .bind(user)
    .bind(caller.target)
    .fetch_one(&mut **tx)
    .await?;
    if !user_exists {
        return Err(FieldErrors::one(
            "user_ids",
            format!("user `{user}` does not exist in this tenant"),
        ));
    }
    let scopes = group_scopes(tx, group).await?;
    caller.ensure_holds(scopes.iter().map(String::as_str), "joining this group")?;
    sqlx::query("INSERT INTO sentinel.user_groups (user_id, group_id, tenant_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
        .bind(user)
        .bind(group)
        .bind(caller.target)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Gives the group a role (idempotent). The role's chain must carry only
/// scopes the caller holds, and so must the group's roles for every member.
pub async fn attach_role(tx: &mut Tx, caller: &Caller, group: Uuid, role: Uuid) -> ApiResult<()> {
    check_role_grant(tx, caller, role, "role_ids").await?;
    sqlx::query("INSERT INTO sentinel.group_roles (group_id, role_id, tenant_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
        .bind(group)
        .bind(role)
        .bind(caller.target)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
