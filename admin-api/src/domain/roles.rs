//! Role rules: granting a role (its whole chain's scopes must be held by the
//! granter), assigning it with a validity window, attaching permissions, and
//! the rule that nobody changes an account stronger than themselves.

use super::rows::exists;
use crate::auth::{self, Caller};
use crate::db::Tx;
use crate::error::{ApiError, ApiResult, FieldErrors};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// The role must exist (visible in the tenant) and carry only scopes the caller holds.
pub async fn check_role_grant(
    tx: &mut Tx,
    caller: &Caller,
    role_id: Uuid,
    field: &str,
) -> ApiResult<()> {
    if !exists(tx, "roles", role_id).await? {
        return Err(FieldErrors::one(
            field,
            format!("role `{role_id}` does not exist in this tenant"),
        ));
    }
    let scopes = auth::role_chain_scopes(tx, role_id).await?;
    caller.ensure_holds(scopes.iter().map(String::as_str), "assigning this role")
}

/// The target user must not hold scopes the caller lacks (else changing their
/// password, status or roles would be a way up).
pub async fn ensure_not_above(tx: &mut Tx, caller: &Caller, user_id: Uuid) -> ApiResult<()> {
    let theirs = auth::effective_scopes(tx, user_id).await?;
    if caller
        .scopes
        .missing(theirs.iter().map(String::as_str))
        .is_empty()
    {
        Ok(())
    } else {
        Err(ApiError::denied("the account holds scopes you do not hold"))
    }
}

/// Gives `user_id` the role (idempotent; updates the validity window).
pub async fn assign(
    tx: &mut Tx,
    caller: &Caller,
    user_id: Uuid,
    role_id: Uuid,
    valid_from: Option<DateTime<Utc>>,
    valid_until: Option<DateTime<Utc>>,
) -> ApiResult<()> {
    check_role_grant(tx, caller, role_id, "role_id").await?;
    if !exists(tx, "users", user_id).await? {
        return Err(FieldErrors::one(
            "user_ids",
            format!("user `{user_id}` does not exist in this tenant"),
        ));
    }
    if let (Some(f), Some(u)) = (valid_from, valid_until) {
        if u <= f {
            return Err(FieldErrors::one(
                "valid_until",
                "must be after `valid_from`",
            ));
        }
    }
    sqlx::query(
        "INSERT INTO sentinel.user_roles (user_id, role_id, tenant_id, valid_from, valid_until, granted_by)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (user_id, role_id) DO UPDATE
            SET is_active = true, valid_from = EXCLUDED.valid_from, valid_until = EXCLUDED.valid_until,
                granted_by = EXCLUDED.granted_by",
    )
    .bind(user_id)
    .bind(role_id)
    .bind(caller.target)
    .bind(valid_from)
    .bind(valid_until)
    .bind(caller.user_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Attaches a permission to a role (idempotent).
pub async fn attach_permission(
    tx: &mut Tx,
    caller: &Caller,
    role_id: Uuid,
    permission_id: Uuid,
) -> ApiResult<()> {
    if !exists(tx, "permissions", permission_id).await? {
        return Err(FieldErrors::one(
            "permission_ids",
            format!("permission `{permission_id}` does not exist in this tenant"),
        ));
    }
    sqlx::query(
        "INSERT INTO sentinel.role_permissions (role_id, permission_id, tenant_id) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING",
    )
    .bind(role_id)
    .bind(permission_id)
    .bind(caller.target)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
