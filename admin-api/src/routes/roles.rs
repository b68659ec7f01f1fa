//! `/api/v1/roles`: roles with parent inheritance (cycles refused), the scopes
//! they carry, their permissions, and assignment to users.
//!
//! No privilege escalation: a caller may only put scopes it holds on a role,
//! give a role a parent whose chain carries only scopes it holds, and assign
//! roles (directly or through groups) whose chains carry only scopes it holds.

use crate::auth::{self, Caller};
use crate::db::Tx;
use crate::domain::roles::{assign, attach_permission};
use crate::domain::rows;
use crate::domain::safety::{self, AdminGuard};
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::extract::{double_option, Json, Path, Query};
use crate::openapi::routes::{doc, Routes};
use crate::pagination::{filter_contains, filter_eq, text, ListResponse, CREATED_AT};
use crate::routes::{check_text, created};
use crate::scopes::{self, Level};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use sentinel_policy::PLATFORM_TENANT;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

pub fn router() -> Routes {
    Routes::new()
        .post(
            "/",
            create,
            doc("role:admin", "Create a role (scopes, parent, permissions)")
                .body::<CreateRole>()
                .created::<Role>(),
        )
        .get("/", list, doc("role:read", "List roles").list::<Role>())
        .get(
            "/{id}",
            fetch,
            doc(
                "role:read",
                "Get a role with permission ids and inherited scopes",
            )
            .ok::<Role>(),
        )
        .patch(
            "/{id}",
            update,
            doc(
                "role:write",
                "Update a role (adding scopes: role:admin; cycles refused)",
            )
            .body::<UpdateRole>()
            .ok::<Role>(),
        )
        .delete(
            "/{id}",
            remove,
            doc("role:admin", "Delete a role").no_content(),
        )
        .get(
            "/{id}/hierarchy",
            hierarchy,
            doc("role:read", "Ancestors and descendants of a role").ok::<RoleHierarchy>(),
        )
        .post(
            "/{id}/assign",
            assign_users,
            doc("role:write", "Assign the role to users").body::<AssignUsers>(),
        )
        .delete(
            "/{id}/assign/{user_id}",
            unassign_user,
            doc("role:write", "Remove the role from a user").no_content(),
        )
        .get(
            "/{id}/permissions",
            list_permissions,
            doc("role:read", "The role's own permissions"),
        )
        .post(
            "/{id}/permissions",
            add_permissions,
            doc("role:write", "Attach permissions").body::<AddPermissions>(),
        )
        .delete(
            "/{id}/permissions/{permission_id}",
            remove_permission,
            doc("role:write", "Detach a permission").no_content(),
        )
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Role {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub description: String,
    pub parent_role_id: Option<Uuid>,
    pub scopes: Vec<String>,
    pub is_system: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}
crate::sortable!(Role, "name" => name);

pub const COLS: &str =
    "id, tenant_id, name, description, parent_role_id, scopes, is_system, created_at, updated_at";

fn validate_scopes(errs: &mut FieldErrors, list: &[String], tenant: Uuid) {
    for s in list {
        match scopes::parse(s) {
            None => errs.add("scopes", format!("unknown scope `{s}`")),
            Some(("platform", _)) if tenant != PLATFORM_TENANT => errs.add(
                "scopes",
                "`platform:admin` exists only in the platform tenant",
            ),
            Some(("snapshot", _)) if tenant != PLATFORM_TENANT => errs.add(
                "scopes",
                "`snapshot:read` exists only in the platform tenant",
            ),
            Some(("audit_write", _)) if tenant != PLATFORM_TENANT => {
                errs.add("scopes", "`audit:write` exists only in the platform tenant")
            }
            _ => {}
        }
    }
}

/// Refuses a parent that would close a cycle: walks up from `parent` and fails on `role`.
async fn check_parent(tx: &mut Tx, role: Option<Uuid>, parent: Uuid) -> ApiResult<()> {
    let chain: Vec<Uuid> = sqlx::query_scalar(
        "WITH RECURSIVE up (id, depth) AS (
             SELECT $1::uuid, 0
             UNION
             SELECT r.parent_role_id, u.depth + 1 FROM up u JOIN sentinel.roles r ON r.id = u.id
              WHERE r.parent_role_id IS NOT NULL AND u.depth < 64)
         SELECT id FROM up",
    )
    .bind(parent)
    .fetch_all(&mut **tx)
    .await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM sentinel.roles WHERE id = $1)")
            .bind(parent)
            .fetch_one(&mut **tx)
            .await?;
    if !exists {
        return Err(FieldErrors::one(
            "parent_role_id",
            "parent role does not exist in this tenant",
        ));
    }
    if let Some(r) = role {
        if chain.contains(&r) {
            return Err(FieldErrors::one(
                "parent_role_id",
                "this parent would make the role inherit from itself (cycle)",
            ));
        }
    }
    Ok(())
}

/// Serializes hierarchy edits of one tenant (cycle checks read then write).
async fn lock_hierarchy(tx: &mut Tx, tenant: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('sentinel.roles:' || $1::text))")
        .bind(tenant)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRole {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub parent_role_id: Option<Uuid>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub permission_ids: Vec<Uuid>,
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<CreateRole>,
) -> ApiResult<(StatusCode, axum::Json<Role>)> {
    let mut errs = FieldErrors::new();
    check_text(&mut errs, "name", &req.name, 100);
    validate_scopes(&mut errs, &req.scopes, caller.target);
    errs.into_result()?;
    caller.require("role", Level::Admin)?;
    caller.ensure_holds(req.scopes.iter().map(String::as_str), "this role")?;
    let mut tx = state.begin(caller.ctx()).await?;
    lock_hierarchy(&mut tx, caller.target).await?;
    if let Some(p) = req.parent_role_id {
        check_parent(&mut tx, None, p).await?;
        let inherited = auth::role_chain_scopes(&mut tx, p).await?;
        caller.ensure_holds(inherited.iter().map(String::as_str), "this parent role")?;
    }
    let mut scopes = req.scopes.clone();
    scopes.sort();
    scopes.dedup();
    let role: Role = sqlx::query_as(&format!(
        "INSERT INTO sentinel.roles (tenant_id, name, description, parent_role_id, scopes)
         VALUES ($1, $2, $3, $4, $5) RETURNING {COLS}"
    ))
    .bind(caller.target)
    .bind(req.name.trim())
    .bind(req.description.unwrap_or_default())
    .bind(req.parent_role_id)
    .bind(&scopes)
    .fetch_one(&mut *tx)
    .await?;
    for p in &req.permission_ids {
        attach_permission(&mut tx, &caller, role.id, *p).await?;
    }
    tx.commit().await?;
    Ok(created(role))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    pub sort: Option<String>,
    pub name: Option<String>,
    pub parent_role_id: Option<Uuid>,
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListParams>,
) -> ApiResult<axum::Json<ListResponse<Role>>> {
    rows::list::<Role>(
        (&state, &caller),
        ("role", (q.limit, q.cursor.as_deref(), q.sort.as_deref())),
        &[CREATED_AT, text("name")],
        format!("SELECT {COLS} FROM sentinel.roles WHERE tenant_id = "),
        |qb| {
            filter_contains(qb, "name", q.name);
            filter_eq(qb, "parent_role_id", q.parent_role_id);
        },
    )
    .await
}

crate::tenant_row!(
    Role,
    "role",
    "roles",
    "SELECT {COLS} FROM sentinel.roles WHERE id = $1 AND tenant_id = $2"
);

pub async fn get_role(tx: &mut Tx, tenant: Uuid, id: Uuid) -> ApiResult<Role> {
    rows::one(tx, tenant, id).await
}

async fn fetch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<Value>> {
    caller.require("role", Level::Read)?;
    let mut tx = state.begin(caller.ctx()).await?;
    let role = get_role(&mut tx, caller.target, id).await?;
    let perms: Vec<Uuid> = sqlx::query_scalar("SELECT permission_id FROM sentinel.role_permissions WHERE role_id = $1 ORDER BY permission_id")
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
    let inherited = auth::role_chain_scopes(&mut tx, id).await?;
    tx.commit().await?;
    let mut v = serde_json::to_value(role).map_err(ApiError::internal)?;
    v["permission_ids"] = json!(perms);
    v["effective_scopes"] = json!(inherited);
    Ok(axum::Json(v))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRole {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    pub parent_role_id: Option<Option<Uuid>>,
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(req): Json<UpdateRole>,
) -> ApiResult<axum::Json<Role>> {
    let mut errs = FieldErrors::new();
    if let Some(n) = &req.name {
        check_text(&mut errs, "name", n, 100);
    }
    if let Some(s) = &req.scopes {
        validate_scopes(&mut errs, s, caller.target);
    }
    errs.into_result()?;
    caller.require("role", Level::Write)?;
    let mut tx = state.begin(caller.ctx()).await?;
    lock_hierarchy(&mut tx, caller.target).await?;
    let current = get_role(&mut tx, caller.target, id).await?;
    if req.scopes.is_some() || req.parent_role_id.is_some() {
        // Taking scopes away from a role stronger than oneself is a demotion
        // of everybody holding it.
        safety::ensure_role_not_above(&mut tx, &caller, id).await?;
    }
    let guard = AdminGuard::take(&mut tx, caller.target).await?;
    if let Some(s) = &req.scopes {
        // Adding scopes needs `role:admin` and each scope held; removing needs only write.
        let added: Vec<&str> = s
            .iter()
            .filter(|x| !current.scopes.contains(x))
            .map(String::as_str)
            .collect();
        if !added.is_empty() {
            caller.require("role", Level::Admin)?;
            caller.ensure_holds(added, "this role")?;
        }
    }
    if let Some(Some(p)) = req.parent_role_id {
        check_parent(&mut tx, Some(id), p).await?;
        let inherited = auth::role_chain_scopes(&mut tx, p).await?;
        caller.ensure_holds(inherited.iter().map(String::as_str), "this parent role")?;
    }
    let scopes = req.scopes.map(|mut s| {
        s.sort();
        s.dedup();
        s
    });
    let role: Role = sqlx::query_as(&format!(
        "UPDATE sentinel.roles SET name = coalesce($2, name), description = coalesce($3, description),
                parent_role_id = CASE WHEN $4 THEN $5 ELSE parent_role_id END, scopes = coalesce($6, scopes)
          WHERE id = $1 RETURNING {COLS}"
    ))
    .bind(id)
    .bind(req.name.as_deref().map(str::trim))
    .bind(req.description)
    .bind(req.parent_role_id.is_some())
    .bind(req.parent_role_id.flatten())
    .bind(scopes)
    .fetch_one(&mut *tx)
    .await?;
    guard.check(&mut tx).await?;
    tx.commit().await?;
    Ok(axum::Json(role))
}

async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    caller.require("role", Level::Admin)?;
    let mut tx = state.begin(caller.ctx()).await?;
    let role = get_role(&mut tx, caller.target, id).await?;
    if role.is_system {
        return Err(ApiError::denied("system roles cannot be deleted"));
    }
    safety::ensure_role_not_above(&mut tx, &caller, id).await?;
    let guard = AdminGuard::take(&mut tx, caller.target).await?;
    sqlx::query("DELETE FROM sentinel.roles WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    guard.check(&mut tx).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RoleHierarchy {
    pub role: Role,
    /// Parent first.
    pub ancestors: Vec<Role>,
    pub descendants: Vec<Role>,
}

async fn hierarchy(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<RoleHierarchy>> {
    caller.require("role", Level::Read)?;
    let mut tx = state.begin(caller.ctx()).await?;
    let role = get_role(&mut tx, caller.target, id).await?;
    let ancestors: Vec<Role> = sqlx::query_as(&format!(
        "WITH RECURSIVE up (id, depth) AS (
             SELECT parent_role_id, 1 FROM sentinel.roles WHERE id = $1 AND parent_role_id IS NOT NULL
             UNION
             SELECT r.parent_role_id, u.depth + 1 FROM up u JOIN sentinel.roles r ON r.id = u.id
              WHERE r.parent_role_id IS NOT NULL AND u.depth < 64)
         SELECT {COLS} FROM sentinel.roles JOIN up USING (id) ORDER BY up.depth"
    ))
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    let descendants: Vec<Role> = sqlx::query_as(&format!(
        "WITH RECURSIVE down (id, depth) AS (
             SELECT id, 1 FROM sentinel.roles WHERE parent_role_id = $1
             UNION
             SELECT r.id, d.depth + 1 FROM down d JOIN sentinel.roles r ON r.parent_role_id = d.id WHERE d.depth < 64)
         SELECT {COLS} FROM sentinel.roles JOIN down USING (id) ORDER BY down.depth, name"
    ))
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(axum::Json(RoleHierarchy {
        role,
        ancestors,
        descendants,
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignUsers {
    pub user_ids: Vec<Uuid>,
    #[serde(default)]
    pub valid_from: Option<DateTime<Utc>>,
    #[serde(default)]
    pub valid_until: Option<DateTime<Utc>>,
}

async fn assign_users(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(req): Json<AssignUsers>,
) -> ApiResult<axum::Json<Value>> {
    if req.user_ids.is_empty() || req.user_ids.len() > 500 {
        return Err(FieldErrors::one("user_ids", "must list 1 to 500 users"));
    }
    caller.require("role", Level::Write)?;
    let mut tx = state.begin(caller.ctx()).await?;
    get_role(&mut tx, caller.target, id).await?;
    // Re-assigning with a window that has ended takes the role away.
    let guard = AdminGuard::take(&mut tx, caller.target).await?;
    for u in &req.user_ids {
        assign(&mut tx, &caller, *u, id, req.valid_from, req.valid_until).await?;
    }
    guard.check(&mut tx).await?;
    tx.commit().await?;
    Ok(axum::Json(
        json!({ "role_id": id, "assigned": req.user_ids }),
    ))
}

async fn unassign_user(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, user_id)): Path<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    caller.require("role", Level::Write)?;
    let mut tx = state.begin(caller.ctx()).await?;
    safety::take_role(&mut tx, &caller, user_id, id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddPermissions {
    pub permission_ids: Vec<Uuid>,
}

async fn add_permissions(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(req): Json<AddPermissions>,
) -> ApiResult<axum::Json<Value>> {
    if req.permission_ids.is_empty() || req.permission_ids.len() > 500 {
        return Err(FieldErrors::one(
            "permission_ids",
            "must list 1 to 500 permissions",
        ));
    }
    caller.require("role", Level::Write)?;
    caller.require("permission", Level::Read)?;
    let mut tx = state.begin(caller.ctx()).await?;
    get_role(&mut tx, caller.target, id).await?;
    for p in &req.permission_ids {
        attach_permission(&mut tx, &caller, id, *p).await?;
    }
    tx.commit().await?;
    Ok(axum::Json(
        json!({ "role_id": id, "attached": req.permission_ids }),
    ))
}

async fn list_permissions(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<Value>> {
    caller.require("role", Level::Read)?;
    let mut tx = state.begin(caller.ctx()).await?;
    get_role(&mut tx, caller.target, id).await?;
    let rows: Vec<crate::routes::permissions::Permission> = sqlx::query_as(&format!(
        "SELECT {} FROM sentinel.permissions p JOIN sentinel.role_permissions rp ON rp.permission_id = p.id
          WHERE rp.role_id = $1 ORDER BY p.name",
        crate::routes::permissions::COLS_P
    ))
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(axum::Json(json!({ "role_id": id, "items": rows })))
}

async fn remove_permission(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, pid)): Path<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    caller.require("role", Level::Write)?;
    let mut tx = state.begin(caller.ctx()).await?;
    safety::ensure_role_not_above(&mut tx, &caller, id).await?;
    rows::unlink_in(
        &mut tx,
        &caller,
        "role_permissions",
        ("role_id", id),
        ("permission_id", pid),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
