//! `/api/v1/groups`: groups of users; every member receives the group's roles.

use crate::auth::Caller;
use crate::db::{self, Tx};
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::extract::{Json, Path, Query};
use crate::pagination::{filter_contains, text, ListResponse, Page, CREATED_AT};
use crate::routes::roles::check_role_grant;
use crate::routes::{check_text, created};
use crate::scopes::Level;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::QueryBuilder;
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", post(create).get(list))
        .route("/{id}", get(fetch).patch(update).delete(remove))
        .route("/{id}/members", get(members).post(add_members))
        .route("/{id}/members/{user_id}", delete(remove_member))
        .route("/{id}/roles", get(roles).post(add_roles))
        .route("/{id}/roles/{role_id}", delete(remove_role))
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

async fn get_group(tx: &mut Tx, tenant: Uuid, id: Uuid) -> ApiResult<Group> {
    sqlx::query_as(&format!(
        "SELECT {COLS} FROM sentinel.groups WHERE id = $1 AND tenant_id = $2"
    ))
    .bind(id)
    .bind(tenant)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(ApiError::NotFound)
}

/// Scopes every member of the group receives through its roles' chains.
async fn group_scopes(tx: &mut Tx, group: Uuid) -> Result<Vec<String>, sqlx::Error> {
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
    let mut tx = db::begin(&state.pool, caller.ctx()).await?;
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
    caller.require("group", Level::Read)?;
    let page = Page::parse(
        q.limit,
        q.cursor.as_deref(),
        q.sort.as_deref(),
        &[CREATED_AT, text("name")],
    )?;
    let mut qb = QueryBuilder::new(format!(
        "SELECT {COLS} FROM sentinel.groups WHERE tenant_id = "
    ));
    qb.push_bind(caller.target);
    filter_contains(&mut qb, "name", q.name);
    page.push_tail(&mut qb);
    let mut tx = db::begin(&state.pool, caller.ctx()).await?;
    let rows: Vec<Group> = qb.build_query_as().fetch_all(&mut *tx).await?;
    tx.commit().await?;
    Ok(axum::Json(page.finish(rows)))
}

async fn fetch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<Value>> {
    caller.require("group", Level::Read)?;
    let mut tx = db::begin(&state.pool, caller.ctx()).await?;
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
    let mut tx = db::begin(&state.pool, caller.ctx()).await?;
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
    let mut tx = db::begin(&state.pool, caller.ctx()).await?;
    let n = sqlx::query("DELETE FROM sentinel.groups WHERE id = $1 AND tenant_id = $2")
        .bind(id)
        .bind(caller.target)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if n == 0 {
        return Err(ApiError::NotFound);
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn members(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<Value>> {
    caller.require("group", Level::Read)?;
    let mut tx = db::begin(&state.pool, caller.ctx()).await?;
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
    let mut tx = db::begin(&state.pool, caller.ctx()).await?;
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
    let mut tx = db::begin(&state.pool, caller.ctx()).await?;
    let n = sqlx::query(
        "DELETE FROM sentinel.user_groups WHERE group_id = $1 AND user_id = $2 AND tenant_id = $3",
    )
    .bind(id)
    .bind(user_id)
    .bind(caller.target)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n == 0 {
        return Err(ApiError::NotFound);
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Gives the group a role (idempotent). The role's chain must carry only
/// scopes the caller holds, and so must the group's roles for every member.
async fn attach_role(tx: &mut Tx, caller: &Caller, group: Uuid, role: Uuid) -> ApiResult<()> {
    check_role_grant(tx, caller, role, "role_ids").await?;
    sqlx::query("INSERT INTO sentinel.group_roles (group_id, role_id, tenant_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
        .bind(group)
        .bind(role)
        .bind(caller.target)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn roles(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<Value>> {
    caller.require("group", Level::Read)?;
    let mut tx = db::begin(&state.pool, caller.ctx()).await?;
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
    let mut tx = db::begin(&state.pool, caller.ctx()).await?;
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
    let mut tx = db::begin(&state.pool, caller.ctx()).await?;
    let n = sqlx::query(
        "DELETE FROM sentinel.group_roles WHERE group_id = $1 AND role_id = $2 AND tenant_id = $3",
    )
    .bind(id)
    .bind(role_id)
    .bind(caller.target)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n == 0 {
        return Err(ApiError::NotFound);
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
