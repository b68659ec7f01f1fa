//! `/api/v1/resources`: a tenant's protected objects (vessels, voyages, port
//! calls, …) in a hierarchy; permissions name them by type and external id.

use crate::auth::Caller;
use crate::db::Tx;
use crate::domain::rows;
use crate::error::{ApiResult, FieldErrors};
use crate::extract::{double_option, Json, Path, Query};
use crate::openapi::routes::{doc, Routes};
use crate::pagination::{filter_contains, filter_eq, text, ListResponse, CREATED_AT};
use crate::routes::{check_object, created, valid_ident};
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
            doc("resource:admin", "Create a resource")
                .body::<CreateResource>()
                .created::<Resource>(),
        )
        .get(
            "/",
            list,
            doc(
                "resource:read",
                "List resources (filters: resource_type, parent_id, external_id, name)",
            )
            .list::<Resource>(),
        )
        .get(
            "/{id}",
            rows::fetch::<Resource>,
            doc("resource:read", "Get a resource").ok::<Resource>(),
        )
        .patch(
            "/{id}",
            update,
            doc("resource:write", "Update a resource (cycles refused)")
                .body::<UpdateResource>()
                .ok::<Resource>(),
        )
        .delete(
            "/{id}",
            remove,
            doc("resource:admin", "Delete a resource without children").no_content(),
        )
        .get(
            "/{id}/children",
            children,
            doc("resource:read", "Direct children"),
        )
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Resource {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub resource_type: String,
    pub external_id: String,
    pub name: String,
    pub parent_id: Option<Uuid>,
    pub attributes: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}
crate::sortable!(Resource, "name" => name, "external_id" => external_id);

const COLS: &str = "id, tenant_id, resource_type, external_id, name, parent_id, attributes, created_at, updated_at";

crate::tenant_row!(
    Resource,
    "resource",
    "resources",
    "SELECT {COLS} FROM sentinel.resources WHERE id = $1 AND tenant_id = $2"
);

async fn get_res(tx: &mut Tx, tenant: Uuid, id: Uuid) -> ApiResult<Resource> {
    rows::one(tx, tenant, id).await
}

/// The parent must exist in the tenant and must not be `id` or below it.
async fn check_parent(tx: &mut Tx, tenant: Uuid, id: Option<Uuid>, parent: Uuid) -> ApiResult<()> {
    let chain: Vec<Uuid> = sqlx::query_scalar(
        "WITH RECURSIVE up (id, depth) AS (
             SELECT id, 0 FROM sentinel.resources WHERE id = $1 AND tenant_id = $2
             UNION
             SELECT r.parent_id, u.depth + 1 FROM up u JOIN sentinel.resources r ON r.id = u.id
              WHERE r.parent_id IS NOT NULL AND u.depth < 64)
         SELECT id FROM up",
    )
    .bind(parent)
    .bind(tenant)
    .fetch_all(&mut **tx)
    .await?;
    if chain.is_empty() {
        return Err(FieldErrors::one(
            "parent_id",
            "parent resource does not exist in this tenant",
        ));
    }
    if id.is_some_and(|i| chain.contains(&i)) {
        return Err(FieldErrors::one(
            "parent_id",
            "this parent would make the resource its own ancestor (cycle)",
        ));
    }
    Ok(())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateResource {
    pub resource_type: String,
    pub external_id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub parent_id: Option<Uuid>,
    #[serde(default)]
    pub attributes: Option<Value>,
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<CreateResource>,
) -> ApiResult<(StatusCode, axum::Json<Resource>)> {
    let mut errs = FieldErrors::new();
    if !valid_ident(&req.resource_type) {
        errs.add(
            "resource_type",
            "must be lowercase letters, digits and `_`, starting with a letter",
        );
    }
    let ext = req.external_id.trim();
    if ext.is_empty() || ext.len() > 200 {
        errs.add("external_id", "must be 1-200 characters");
    }
    let attributes = req.attributes.clone().unwrap_or_else(|| json!({}));
    check_object(&mut errs, "attributes", &attributes);
    errs.into_result()?;
    caller.require("resource", Level::Admin)?;
    let mut tx = state.begin(caller.ctx()).await?;
    if let Some(p) = req.parent_id {
        check_parent(&mut tx, caller.target, None, p).await?;
    }
    let r: Resource = sqlx::query_as(&format!(
        "INSERT INTO sentinel.resources (tenant_id, resource_type, external_id, name, parent_id, attributes)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLS}"
    ))
    .bind(caller.target)
    .bind(&req.resource_type)
    .bind(ext)
    .bind(req.name.unwrap_or_default())
    .bind(req.parent_id)
    .bind(&attributes)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(created(r))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    pub sort: Option<String>,
    pub resource_type: Option<String>,
    pub parent_id: Option<Uuid>,
    pub name: Option<String>,
    pub external_id: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListParams>,
) -> ApiResult<axum::Json<ListResponse<Resource>>> {
    rows::list::<Resource>(
        (&state, &caller),
        (
            "resource",
            (q.limit, q.cursor.as_deref(), q.sort.as_deref()),
        ),
        &[CREATED_AT, text("name"), text("external_id")],
        format!("SELECT {COLS} FROM sentinel.resources WHERE tenant_id = "),
        |qb| {
            filter_eq(qb, "resource_type", q.resource_type);
            filter_eq(qb, "parent_id", q.parent_id);
            filter_eq(qb, "external_id", q.external_id);
            filter_contains(qb, "name", q.name);
        },
    )
    .await
}

async fn children(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<Value>> {
    caller.require("resource", Level::Read)?;
    let mut tx = state.begin(caller.ctx()).await?;
    get_res(&mut tx, caller.target, id).await?;
    let rows: Vec<Resource> = sqlx::query_as(&format!(
        "SELECT {COLS} FROM sentinel.resources WHERE parent_id = $1 AND tenant_id = $2 ORDER BY resource_type, external_id"
    ))
    .bind(id)
    .bind(caller.target)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(axum::Json(json!({"parent_id": id, "items": rows})))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateResource {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    pub parent_id: Option<Option<Uuid>>,
    #[serde(default)]
    pub attributes: Option<Value>,
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(req): Json<UpdateResource>,
) -> ApiResult<axum::Json<Resource>> {
    let mut errs = FieldErrors::new();
    if let Some(a) = &req.attributes {
        check_object(&mut errs, "attributes", a);
    }
    errs.into_result()?;
    caller.require("resource", Level::Write)?;
    let mut tx = state.begin(caller.ctx()).await?;
    get_res(&mut tx, caller.target, id).await?;
    if let Some(Some(p)) = req.parent_id {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('sentinel.resources:' || $1::text))")
            .bind(caller.target)
            .execute(&mut *tx)
            .await?;
        check_parent(&mut tx, caller.target, Some(id), p).await?;
    }
    let r: Resource = sqlx::query_as(&format!(
        "UPDATE sentinel.resources SET name = coalesce($3, name),
                parent_id = CASE WHEN $4 THEN $5 ELSE parent_id END, attributes = coalesce($6, attributes)
          WHERE id = $1 AND tenant_id = $2 RETURNING {COLS}"
    ))
    .bind(id)
    .bind(caller.target)
    .bind(req.name)
    .bind(req.parent_id.is_some())
    .bind(req.parent_id.flatten())
    .bind(req.attributes)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(axum::Json(r))
}

async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    caller.require("resource", Level::Admin)?;
    let mut tx = state.begin(caller.ctx()).await?;
    get_res(&mut tx, caller.target, id).await?;
    let has_children: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM sentinel.resources WHERE parent_id = $1)")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
    if has_children {
        return Err(FieldErrors::one(
            "id",
            "resource has children; delete or move them first",
        ));
    }
    sqlx::query("DELETE FROM sentinel.resources WHERE id = $1 AND tenant_id = $2")
        .bind(id)
        .bind(caller.target)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
