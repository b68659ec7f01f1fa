//! `/api/v1/users`: human users of a tenant (service accounts live in the same
//! table and have their own routes), passwords, lock/unlock, bulk operations,
//! role assignment and effective permissions.
//!
//! Over 700 lines (752) because its thirteen routes and their documented
//! registrations live together; the next change here should move the
//! password and lock handlers into `domain/` (as the grant rules were).

use crate::auth::{self, Caller};
use crate::db::Tx;
use crate::domain::roles::{assign, ensure_not_above};
use crate::domain::rows;
use crate::domain::safety::{self, AdminGuard};
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::extract::{Json, Path, Query};
use crate::openapi::routes::{doc, Routes};
use crate::pagination::{filter_contains, filter_eq, text, ListResponse, CREATED_AT};
use crate::routes::{check_object, created};
use crate::scopes::Level;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

pub fn router() -> Routes {
    Routes::new()
        .post(
            "/",
            create,
            doc(
                "user:admin",
                "Create a user (optional password, roles, groups)",
            )
            .body::<CreateUser>()
            .created::<User>(),
        )
        .get(
            "/",
            list,
            doc(
                "user:read",
                "List users (filters: email, name, is_active, role_id, group_id)",
            )
            .list::<User>(),
        )
        .post(
            "/bulk",
            bulk,
            doc(
                "user:admin",
                "Activate, deactivate, lock, unlock or delete many users",
            )
            .body::<Bulk>(),
        )
        .get(
            "/{id}",
            fetch,
            doc("user:read", "Get a user with roles and groups").ok::<User>(),
        )
        .patch(
            "/{id}",
            update,
            doc("user:write", "Update a user")
                .body::<UpdateUser>()
                .ok::<User>(),
        )
        .delete(
            "/{id}",
            remove,
            doc("user:admin", "Delete a user").no_content(),
        )
        .get(
            "/{id}/permissions",
            effective_permissions,
            doc(
                "user:read",
                "Effective roles, scopes and permissions (self: authenticated)",
            ),
        )
        .post(
            "/{id}/change-password",
            change_password,
            doc(
                "user:write",
                "Change a password (self: current password required)",
            )
            .body::<ChangePassword>()
            .no_content(),
        )
        .post(
            "/{id}/reset-password",
            reset_password,
            doc("user:admin", "Set a new password")
                .body::<ResetPassword>()
                .no_content(),
        )
        .post(
            "/{id}/lock",
            lock,
            doc("user:admin", "Lock an account until unlocked").ok::<User>(),
        )
        .post(
            "/{id}/unlock",
            unlock,
            doc("user:admin", "Unlock an account and reset failed logins").ok::<User>(),
        )
        .post(
            "/{id}/roles",
            add_role,
            doc("role:write", "Assign a role (optional validity window)")
                .body::<AddRole>()
                .no_content(),
        )
        .delete(
            "/{id}/roles/{role_id}",
            remove_role,
            doc("role:write", "Remove a role").no_content(),
        )
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct User {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub email: String,
    pub name: String,
    pub is_active: bool,
    pub is_locked: bool,
    pub locked_until: Option<DateTime<Utc>>,
    pub failed_login_count: i32,
    pub attributes: Value,
    pub last_login: Option<DateTime<Utc>>,
    pub login_count: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}
crate::sortable!(User, "email" => email, "name" => name);

/// (role id, name, active, valid from, valid until).
type RoleGrantRow = (
    Uuid,
    String,
    bool,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
);

const COLS: &str = "id, tenant_id, email, name, is_active, is_locked, locked_until, failed_login_count, attributes, \
                    last_login, login_count, created_at, updated_at";

pub fn validate_email(errs: &mut FieldErrors, email: &str) {
    let e = email.trim();
    let ok = e.len() <= 254
        && !e.chars().any(char::is_whitespace)
        && e.split_once('@').is_some_and(|(l, d)| {
            !l.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.')
        });
    if !ok {
        errs.add("email", "must be a valid email address");
    }
}

fn validate_password(errs: &mut FieldErrors, field: &str, pw: &str) {
    for p in crate::password::policy_problems(pw) {
        errs.add(field, p);
    }
}

crate::tenant_row!(
    User,
    "user",
    "users",
    "SELECT {COLS} FROM sentinel.users WHERE id = $1 AND tenant_id = $2 AND NOT is_service_account"
);

async fn get_user(tx: &mut Tx, tenant: Uuid, id: Uuid) -> ApiResult<User> {
    rows::one(tx, tenant, id).await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub email: String,
    #[serde(default)]
    pub name: Option<String>,
    /// Optional: users without a password sign in through an external IdP.
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub attributes: Option<Value>,
    #[serde(default)]
    pub is_active: Option<bool>,
    #[serde(default)]
    pub role_ids: Vec<Uuid>,
    #[serde(default)]
    pub group_ids: Vec<Uuid>,
}

pub async fn insert_user(
    state: &AppState,
    tx: &mut Tx,
    caller: &Caller,
    req: CreateUser,
) -> ApiResult<User> {
    let mut errs = FieldErrors::new();
    validate_email(&mut errs, &req.email);
    if let Some(pw) = &req.password {
        validate_password(&mut errs, "password", pw);
    }
    let attributes = req.attributes.clone().unwrap_or_else(|| json!({}));
    check_object(&mut errs, "attributes", &attributes);
    if req.name.as_ref().is_some_and(|n| n.chars().count() > 200) {
        errs.add("name", "must be at most 200 characters");
    }
    errs.into_result()?;
    let hash = match &req.password {
        Some(pw) => Some(
            crate::password::hash_async(&state.config, pw.clone())
                .await
                .map_err(ApiError::internal)?,
        ),
        None => None,
    };
    let user: User = sqlx::query_as(&format!(
        "INSERT INTO sentinel.users (tenant_id, email, name, password_hash, attributes, is_active, password_changed_at)
         VALUES ($1, lower($2), $3, $4, $5, $6, CASE WHEN $4 IS NULL THEN NULL ELSE now() END) RETURNING {COLS}"
    ))
    .bind(caller.target)
    .bind(req.email.trim())
    .bind(req.name.clone().unwrap_or_default())
    .bind(hash)
    .bind(&attributes)
    .bind(req.is_active.unwrap_or(true))
    .fetch_one(&mut **tx)
    .await?;
    for r in &req.role_ids {
        assign(tx, caller, user.id, *r, None, None).await?;
    }
    for g in &req.group_ids {
        crate::domain::groups::add_member(tx, caller, *g, user.id).await?;
    }
    Ok(user)
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<CreateUser>,
) -> ApiResult<(StatusCode, axum::Json<User>)> {
    caller.require("user", Level::Admin)?;
    let mut tx = state.begin(caller.ctx()).await?;
    let u = insert_user(&state, &mut tx, &caller, req).await?;
    tx.commit().await?;
    Ok(created(u))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    pub sort: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    pub is_active: Option<bool>,
    pub role_id: Option<Uuid>,
    pub group_id: Option<Uuid>,
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListParams>,
) -> ApiResult<axum::Json<ListResponse<User>>> {
    rows::list::<User>(
        (&state, &caller),
        ("user", (q.limit, q.cursor.as_deref(), q.sort.as_deref())),
        &[CREATED_AT, text("email"), text("name")],
        format!("SELECT {COLS} FROM sentinel.users WHERE NOT is_service_account AND tenant_id = "),
        |qb| {
            filter_contains(qb, "email", q.email);
            filter_contains(qb, "name", q.name);
            filter_eq(qb, "is_active", q.is_active);
            if let Some(r) = q.role_id {
                qb.push(" AND id IN (SELECT user_id FROM sentinel.user_roles WHERE role_id = ");
                qb.push_bind(r);
                qb.push(")");
            }
            if let Some(g) = q.group_id {
                qb.push(" AND id IN (SELECT user_id FROM sentinel.user_groups WHERE group_id = ");
                qb.push_bind(g);
                qb.push(")");
            }
        },
    )
    .await
}

async fn fetch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<Value>> {
    caller.require("user", Level::Read)?;
    let mut tx = state.begin(caller.ctx()).await?;
    let user = get_user(&mut tx, caller.target, id).await?;
    let roles: Vec<RoleGrantRow> = sqlx::query_as(
        "SELECT r.id, r.name, ur.is_active, ur.valid_from, ur.valid_until
           FROM sentinel.user_roles ur JOIN sentinel.roles r ON r.id = ur.role_id
          WHERE ur.user_id = $1 ORDER BY r.name",
    )
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    let groups: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT g.id, g.name FROM sentinel.user_groups ug JOIN sentinel.groups g ON g.id = ug.group_id
          WHERE ug.user_id = $1 ORDER BY g.name",
    )
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let mut v = serde_json::to_value(user).map_err(ApiError::internal)?;
    v["roles"] = roles
        .into_iter()
        .map(|(id, name, active, from, until)| {
            json!({"id": id, "name": name, "is_active": active, "valid_from": from, "valid_until": until})
        })
        .collect();
    v["groups"] = groups
        .into_iter()
        .map(|(id, name)| json!({"id": id, "name": name}))
        .collect();
    Ok(axum::Json(v))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub attributes: Option<Value>,
    #[serde(default)]
    pub is_active: Option<bool>,
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(req): Json<UpdateUser>,
) -> ApiResult<axum::Json<User>> {
    let mut errs = FieldErrors::new();
    if let Some(e) = &req.email {
        validate_email(&mut errs, e);
    }
    if let Some(a) = &req.attributes {
        check_object(&mut errs, "attributes", a);
    }
    if req.name.as_ref().is_some_and(|n| n.chars().count() > 200) {
        errs.add("name", "must be at most 200 characters");
    }
    errs.into_result()?;
    caller.require("user", Level::Write)?;
    if req.is_active == Some(false) && id == caller.user_id {
        return Err(ApiError::denied("you may not deactivate yourself"));
    }
    // ABAC conditions read attributes: setting one's own would be a way up.
    if req.attributes.is_some() && id == caller.user_id {
        return Err(ApiError::denied("you may not change your own attributes"));
    }
    let mut tx = state.begin(caller.ctx()).await?;
    get_user(&mut tx, caller.target, id).await?;
    if id != caller.user_id {
        ensure_not_above(&mut tx, &caller, id).await?;
    }
    let guard = AdminGuard::take(&mut tx, caller.target).await?;
    let u: User = sqlx::query_as(&format!(
        "UPDATE sentinel.users SET email = coalesce(lower($3), email), name = coalesce($4, name),
                attributes = coalesce($5, attributes), is_active = coalesce($6, is_active)
          WHERE id = $1 AND tenant_id = $2 AND NOT is_service_account RETURNING {COLS}"
    ))
    .bind(id)
    .bind(caller.target)
    .bind(req.email.as_deref().map(str::trim))
    .bind(req.name)
    .bind(req.attributes)
    .bind(req.is_active)
    .fetch_one(&mut *tx)
    .await?;
    guard.check(&mut tx).await?;
    tx.commit().await?;
    Ok(axum::Json(u))
}

async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    caller.require("user", Level::Admin)?;
    if id == caller.user_id {
        return Err(ApiError::denied("you may not delete yourself"));
    }
    let mut tx = state.begin(caller.ctx()).await?;
    get_user(&mut tx, caller.target, id).await?;
    ensure_not_above(&mut tx, &caller, id).await?;
    let guard = AdminGuard::take(&mut tx, caller.target).await?;
    sqlx::query("DELETE FROM sentinel.users WHERE id = $1 AND tenant_id = $2")
        .bind(id)
        .bind(caller.target)
        .execute(&mut *tx)
        .await?;
    guard.check(&mut tx).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    /// Required when changing one's own password.
    #[serde(default)]
    pub current_password: Option<String>,
    pub new_password: String,
}

async fn store_password(
    state: &AppState,
    tx: &mut Tx,
    tenant: Uuid,
    id: Uuid,
    pw: String,
) -> ApiResult<()> {
    let hash = crate::password::hash_async(&state.config, pw)
        .await
        .map_err(ApiError::internal)?;
    sqlx::query(
        "UPDATE sentinel.users SET password_hash = $3, password_changed_at = now(), failed_login_count = 0
          WHERE id = $1 AND tenant_id = $2 AND NOT is_service_account",
    )
    .bind(id)
    .bind(tenant)
    .bind(hash)
    .execute(&mut **tx)
    .await?;
    // Every session of the account ends with its old password.
    sqlx::query("UPDATE sentinel.refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn change_password(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(req): Json<ChangePassword>,
) -> ApiResult<StatusCode> {
    let mut errs = FieldErrors::new();
    validate_password(&mut errs, "new_password", &req.new_password);
    let own = id == caller.user_id && caller.target == caller.tenant_id;
    if own && req.current_password.is_none() {
        errs.add(
            "current_password",
            "is required to change your own password",
        );
    }
    errs.into_result()?;
    if !own {
        caller.require("user", Level::Write)?;
    }
    let mut tx = state.begin(caller.ctx()).await?;
    get_user(&mut tx, caller.target, id).await?;
    if own {
        let stored: Option<String> =
            sqlx::query_scalar("SELECT password_hash FROM sentinel.users WHERE id = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
        let ok = match (stored, req.current_password.clone()) {
            (Some(h), Some(p)) => crate::password::verify_async(h, p).await,
            _ => false,
        };
        if !ok {
            return Err(FieldErrors::one(
                "current_password",
                "is not the current password",
            ));
        }
        if req.current_password.as_deref() == Some(req.new_password.as_str()) {
            return Err(FieldErrors::one(
                "new_password",
                "must differ from the current password",
            ));
        }
    } else {
        ensure_not_above(&mut tx, &caller, id).await?;
    }
    store_password(&state, &mut tx, caller.target, id, req.new_password).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPassword {
    pub new_password: String,
}

async fn reset_password(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(req): Json<ResetPassword>,
) -> ApiResult<StatusCode> {
    let mut errs = FieldErrors::new();
    validate_password(&mut errs, "new_password", &req.new_password);
    errs.into_result()?;
    caller.require("user", Level::Admin)?;
    let mut tx = state.begin(caller.ctx()).await?;
    get_user(&mut tx, caller.target, id).await?;
    ensure_not_above(&mut tx, &caller, id).await?;
    store_password(&state, &mut tx, caller.target, id, req.new_password).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_lock(state: &AppState, caller: &Caller, id: Uuid, locked: bool) -> ApiResult<User> {
    caller.require("user", Level::Admin)?;
    if locked && id == caller.user_id {
        return Err(ApiError::denied("you may not lock yourself"));
    }
    let mut tx = state.begin(caller.ctx()).await?;
    get_user(&mut tx, caller.target, id).await?;
    ensure_not_above(&mut tx, caller, id).await?;
    let guard = AdminGuard::take(&mut tx, caller.target).await?;
    let u: User = sqlx::query_as(&format!(
        "UPDATE sentinel.users SET is_locked = $3,
                locked_until = CASE WHEN $3 THEN locked_until ELSE NULL END,
                failed_login_count = CASE WHEN $3 THEN failed_login_count ELSE 0 END
          WHERE id = $1 AND tenant_id = $2 RETURNING {COLS}"
    ))
    .bind(id)
    .bind(caller.target)
    .bind(locked)
    .fetch_one(&mut *tx)
    .await?;
    if locked {
        sqlx::query("UPDATE sentinel.refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL")
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    guard.check(&mut tx).await?;
    tx.commit().await?;
    Ok(u)
}

async fn lock(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<User>> {
    Ok(axum::Json(set_lock(&state, &caller, id, true).await?))
}

async fn unlock(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<User>> {
    Ok(axum::Json(set_lock(&state, &caller, id, false).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Bulk {
    pub action: String,
    pub user_ids: Vec<Uuid>,
}

async fn bulk(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<Bulk>,
) -> ApiResult<axum::Json<Value>> {
    let mut errs = FieldErrors::new();
    if !["activate", "deactivate", "lock", "unlock", "delete"].contains(&req.action.as_str()) {
        errs.add(
            "action",
            "must be one of activate, deactivate, lock, unlock, delete",
        );
    }
    if req.user_ids.is_empty() || req.user_ids.len() > 500 {
        errs.add("user_ids", "must list 1 to 500 users");
    }
    errs.into_result()?;
    caller.require("user", Level::Admin)?;
    let mut results = Vec::with_capacity(req.user_ids.len());
    let mut tx = state.begin(caller.ctx()).await?;
    let guard = AdminGuard::take(&mut tx, caller.target).await?;
    for id in &req.user_ids {
        let status = if *id == caller.user_id {
            "denied"
        } else if get_user(&mut tx, caller.target, *id).await.is_err() {
            "not_found"
        } else if ensure_not_above(&mut tx, &caller, *id).await.is_err() {
            "denied"
        } else {
            let sql = match req.action.as_str() {
                "activate" => "UPDATE sentinel.users SET is_active = true WHERE id = $1 AND tenant_id = $2",
                "deactivate" => "UPDATE sentinel.users SET is_active = false WHERE id = $1 AND tenant_id = $2",
                "lock" => "UPDATE sentinel.users SET is_locked = true WHERE id = $1 AND tenant_id = $2",
                "unlock" => {
                    "UPDATE sentinel.users SET is_locked = false, locked_until = NULL, failed_login_count = 0
                      WHERE id = $1 AND tenant_id = $2"
                }
                _ => "DELETE FROM sentinel.users WHERE id = $1 AND tenant_id = $2",
            };
            sqlx::query(sql)
                .bind(id)
                .bind(caller.target)
                .execute(&mut *tx)
                .await?;
            "ok"
        };
        results.push(json!({"id": id, "status": status}));
    }
    // All or nothing: a bulk change that would leave no administrator is refused whole.
    guard.check(&mut tx).await?;
    tx.commit().await?;
    Ok(axum::Json(
        json!({"action": req.action, "results": results}),
    ))
}

async fn effective_permissions(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<Value>> {
    if id != caller.user_id {
        caller.require("user", Level::Read)?;
    }
    let mut tx = state.begin(caller.ctx()).await?;
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sentinel.users WHERE id = $1 AND tenant_id = $2)",
    )
    .bind(id)
    .bind(caller.target)
    .fetch_one(&mut *tx)
    .await?;
    if !exists {
        return Err(ApiError::NotFound);
    }
    let roles: Vec<(Uuid, String)> = sqlx::query_as(&format!(
        "{} SELECT r.id, r.name FROM sentinel.roles r WHERE r.id IN (SELECT id FROM chain) ORDER BY r.name",
        auth::EFFECTIVE_ROLES_CTE
    ))
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    let perms: Vec<crate::routes::permissions::Permission> = sqlx::query_as(&format!(
        "{} SELECT DISTINCT {} FROM sentinel.permissions p
              JOIN sentinel.role_permissions rp ON rp.permission_id = p.id
             WHERE rp.role_id IN (SELECT id FROM chain) AND p.is_active ORDER BY p.name",
        auth::EFFECTIVE_ROLES_CTE,
        crate::routes::permissions::COLS_P
    ))
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    let scopes = auth::effective_scopes(&mut tx, id).await?;
    tx.commit().await?;
    Ok(axum::Json(json!({
        "user_id": id,
        "roles": roles.into_iter().map(|(id, name)| json!({"id": id, "name": name})).collect::<Vec<_>>(),
        "scopes": scopes,
        "permissions": perms,
    })))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddRole {
    pub role_id: Uuid,
    #[serde(default)]
    pub valid_from: Option<DateTime<Utc>>,
    #[serde(default)]
    pub valid_until: Option<DateTime<Utc>>,
}

async fn add_role(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(req): Json<AddRole>,
) -> ApiResult<StatusCode> {
    caller.require("role", Level::Write)?;
    let mut tx = state.begin(caller.ctx()).await?;
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sentinel.users WHERE id = $1 AND tenant_id = $2)",
    )
    .bind(id)
    .bind(caller.target)
    .fetch_one(&mut *tx)
    .await?;
    if !exists {
        return Err(ApiError::NotFound);
    }
    // Re-assigning with a window that has ended takes the role away.
    let guard = AdminGuard::take(&mut tx, caller.target).await?;
    assign(
        &mut tx,
        &caller,
        id,
        req.role_id,
        req.valid_from,
        req.valid_until,
    )
    .await?;
    guard.check(&mut tx).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove_role(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, role_id)): Path<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    caller.require("role", Level::Write)?;
    let mut tx = state.begin(caller.ctx()).await?;
    safety::take_role(&mut tx, &caller, id, role_id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
