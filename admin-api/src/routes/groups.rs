//! `/api/v1/groups`: groups of users; every member receives the group's roles.

use crate::auth::Caller;
use crate::db::Tx;
use crate::domain::groups::{add_member, attach_role, group_scopes};
use crate::domain::roles::ensure_not_above;
use crate::domain::rows;
use crate::domain::safety::{self, AdminGuard};
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::extract::{Json, Path, Query};
use crate::openapi::routes::{doc, Routes};
use crate::pagination::{filter_contains, text, ListResponse, CREATED_AT};
use crate::routes::{check_text, created};
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
            doc("group:admin", "Create a group")
                .body::<CreateGroup>()
                .created::<Group>(),
        )
        .get("/", list, doc("group:read", "List groups").list::<Group>())
        .get(
            "/{id}",
            fetch,
            doc("group:read", "Get a group").ok::<Group>(),
        )
        .patch(
            "/{id}",
            update,
            doc("group:write", "Update a group")
                .body::<UpdateGroup>()
                .ok::<Group>(),
        )
        .delete(
            "/{id}",
            remove,
            doc("group:admin", "Delete a group").no_content(),
        )
        .get("/{id}/members", members, doc("group:read", "List members"))
        .post(
            "/{id}/members",
            add_members,
            doc("group:write", "Add members").body::<AddMembers>(),
        )
        .delete(
            "/{id}/members/{user_id}",
            remove_member,
            doc("group:write", "Remove a member").no_content(),
        )
        .get(
            "/{id}/roles",
            roles,
            doc("group:read", "The group's roles and the scopes they carry"),
        )
        .post(
            "/{id}/roles",
            add_roles,
            doc(
                "group:write",
                "Give the group roles (also needs role:write)",
            )
            .body::<AddRoles>(),
        )
        .delete(
            "/{id}/roles/{role_id}",
            remove_role,
            doc("group:write", "Take a role from the group").no_content(),
        )
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Group {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub description: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}
crate::sortable!(Group, "name" => name);

const COLS: &str = "id, tenant_id, name, description, created_at, updated_at";

crate::tenant_row!(
    Group,
    "group",
    "groups",
    "SELECT {COLS} FROM sentinel.groups WHERE id = $1 AND tenant_id = $2"
);

async fn get_group(tx: &mut Tx, tenant: Uuid, id: Uuid) -> ApiResult<Group> {
    rows::one(tx, tenant, id).await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGroup {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub role_ids: Vec<Uuid>,
    #[serde(default)]
    pub user_ids: Vec<Uuid>,
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<CreateGroup>,
) -> ApiResult<(StatusCode, axum::Json<Group>)> {
    let mut errs = FieldErrors::new();
    check_text(&mut errs, "name", &req.name, 100);
    errs.into_result()?;
    caller.require("group", Level::Admin)?;
    let mut tx = state.begin(caller.ctx()).await?;
    let g: Group = sqlx::query_as(&format!(
        "INSERT INTO sentinel.groups (tenant_id, name, description) VALUES ($1, $2, $3) RETURNING {COLS}"
    ))
    .bind(caller.target)
    .bind(req.name.trim())
    .bind(req.description.unwrap_or_default())
    .fetch_one(&mut *tx)
    .await?;
    for r in &req.role_ids {
        attach_role(&mut tx, &caller, g.id, *r).await?;
    }
    for u in &req.user_ids {
        add_member(&mut tx, &caller, g.id, *u).await?;
    }
    tx.commit().await?;
    Ok(created(g))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    pub sort: Option<String>,
    pub name: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListParams>,
) -> ApiResult<axum::Json<ListResponse<Group>>> {
    rows::list::<Group>(
        (&state, &caller),
        ("group", (q.limit, q.cursor.as_deref(), q.sort.as_deref())),
        &[CREATED_AT, text("name")],
        format!("SELECT {COLS} FROM sentinel.groups WHERE tenant_id = "),
        |qb| {
            filter_contains(qb, "name", q.name);
        },
    )
    .await
}

async fn fetch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<Value>> {
    caller.require("group", Level::Read)?;
    let mut tx = state.begin(caller.ctx()).await?;
    let g = get_group(&mut tx, caller.target, id).await?;
    let role_ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT role_id FROM sentinel.group_roles WHERE group_id = $1 ORDER BY role_id",
    )
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    let n: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sentinel.user_groups WHERE group_id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
    tx.commit().await?;
    let mut v = serde_json::to_value(g).map_err(ApiError::internal)?;
    v["role_ids"] = json!(role_ids);
    v["member_count"] = json!(n);
    Ok(axum::Json(v))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateGroup {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(req): Json<UpdateGroup>,
) -> ApiResult<axum::Json<Group>> {
    let mut errs = FieldErrors::new();
    if let Some(n) = &req.name {
        check_text(&mut errs, "name", n, 100);
    }
    errs.into_result()?;
    caller.require("group", Level::Write)?;
    let mut tx = state.begin(caller.ctx()).await?;
    let g: Option<Group> = sqlx::query_as(&format!(
        "UPDATE sentinel.groups SET name = coalesce($3, name), description = coalesce($4, description)
          WHERE id = $1 AND tenant_id = $2 RETURNING {COLS}"
    ))
    .bind(id)
    .bind(caller.target)
    .bind(req.name.as_deref().map(str::trim))
    .bind(req.description)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(axum::Json(g.ok_or(ApiError::NotFound)?))
}

async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    caller.require("group", Level::Admin)?;
    let mut tx = state.begin(caller.ctx()).await?;
    // Deleting a group takes its roles from every member.
    let scopes = group_scopes(&mut tx, id).await?;
    if !caller
        .scopes
        .missing(scopes.iter().map(String::as_str))
        .is_empty()
    {
        return Err(ApiError::denied(
            "the group's roles carry scopes you do not hold",
        ));
    }
    let guard = AdminGuard::take(&mut tx, caller.target).await?;
    let n = sqlx::query("DELETE FROM sentinel.groups WHERE id = $1 AND tenant_id = $2")
        .bind(id)
        .bind(caller.target)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if n == 0 {
        return Err(ApiError::NotFound);
    }
    guard.check(&mut tx).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn members(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<Value>> {
    caller.require("group", Level::Read)?;
    let mut tx = state.begin(caller.ctx()).await?;
    get_group(&mut tx, caller.target, id).await?;
    let rows: Vec<(Uuid, Option<String>, String, bool)> = sqlx::query_as(
        "SELECT u.id, u.email, u.name, u.is_service_account FROM sentinel.user_groups ug
           JOIN sentinel.users u ON u.id = ug.user_id WHERE ug.group_id = $1 ORDER BY u.email, u.name",
    )
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let items: Vec<Value> = rows
        .into_iter()
        .map(|(id, email, name, sa)| json!({"id": id, "email": email, "name": name, "is_service_account": sa}))
        .collect();
    Ok(axum::Json(json!({"group_id": id, "items": items})))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMembers {
    pub user_ids: Vec<Uuid>,
}

async fn add_members(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(req): Json<AddMembers>,
) -> ApiResult<axum::Json<Value>> {
    if req.user_ids.is_empty() || req.user_ids.len() > 500 {
        return Err(FieldErrors::one("user_ids", "must list 1 to 500 users"));
    }
    caller.require("group", Level::Write)?;
    let mut tx = state.begin(caller.ctx()).await?;
    get_group(&mut tx, caller.target, id).await?;
    for u in &req.user_ids {
        add_member(&mut tx, &caller, id, *u).await?;
    }
    tx.commit().await?;
    Ok(axum::Json(json!({"group_id": id, "added": req.user_ids})))
}

async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, user_id)): Path<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    caller.require("group", Level::Write)?;
    let mut tx = state.begin(caller.ctx()).await?;
    ensure_not_above(&mut tx, &caller, user_id).await?;
    let guard = AdminGuard::take(&mut tx, caller.target).await?;
    rows::unlink_in(
        &mut tx,
        &caller,
        "user_groups",
        ("group_id", id),
        ("user_id", user_id),
    )
    .await?;
    guard.check(&mut tx).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn roles(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<Value>> {
    caller.require("group", Level::Read)?;
    let mut tx = state.begin(caller.ctx()).await?;
    get_group(&mut tx, caller.target, id).await?;
    let rows: Vec<crate::routes::roles::Role> = sqlx::query_as(&format!(
        "SELECT {} FROM sentinel.roles WHERE id IN (SELECT role_id FROM sentinel.group_roles WHERE group_id = $1) ORDER BY name",
        crate::routes::roles::COLS
    ))
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    let scopes = group_scopes(&mut tx, id).await?;
    tx.commit().await?;
    Ok(axum::Json(
        json!({"group_id": id, "items": rows, "effective_scopes": scopes}),
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddRoles {
    pub role_ids: Vec<Uuid>,
}

async fn add_roles(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(req): Json<AddRoles>,
) -> ApiResult<axum::Json<Value>> {
    if req.role_ids.is_empty() || req.role_ids.len() > 100 {
        return Err(FieldErrors::one("role_ids", "must list 1 to 100 roles"));
    }
    caller.require("group", Level::Write)?;
    caller.require("role", Level::Write)?;
    let mut tx = state.begin(caller.ctx()).await?;
    get_group(&mut tx, caller.target, id).await?;
    for r in &req.role_ids {
        attach_role(&mut tx, &caller, id, *r).await?;
    }
    tx.commit().await?;
    Ok(axum::Json(json!({"group_id": id, "added": req.role_ids})))
}

async fn remove_role(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, role_id)): Path<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    caller.require("group", Level::Write)?;
    let mut tx = state.begin(caller.ctx()).await?;
    safety::ensure_role_not_above(&mut tx, &caller, role_id).await?;
    let guard = AdminGuard::take(&mut tx, caller.target).await?;
    rows::unlink_in(
        &mut tx,
        &caller,
        "group_roles",
        ("group_id", id),
        ("role_id", role_id),
    )
    .await?;
    guard.check(&mut tx).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
