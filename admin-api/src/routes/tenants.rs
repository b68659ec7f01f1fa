//! `/api/v1/tenants`: tenants, sub-tenants and the tenant hierarchy.
//!
//! Platform superadmins see every tenant; anyone else sees their own tenant
//! and its direct sub-tenants (row-level security enforces the same).

use crate::auth::Caller;
use crate::db::TenantCtx;
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::extract::{Json, Path, Query};
use crate::openapi::routes::{doc, Routes};
use crate::pagination::{filter_eq, text, ListResponse, Page, CREATED_AT};
use crate::routes::{check_object, check_text, created};
use crate::scopes::Level;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use sentinel_policy::PLATFORM_TENANT;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::QueryBuilder;
use uuid::Uuid;

pub fn router() -> Routes {
    Routes::new()
        .post(
            "/",
            create,
            doc(
                "tenant:admin",
                "Create a tenant (root tenants: platform superadmin only)",
            )
            .body::<CreateTenant>()
            .created::<Tenant>(),
        )
        .get(
            "/",
            list,
            doc(
                "tenant:read",
                "List tenants (filters: status, type, parent_id; sort: created_at, name, code)",
            )
            .list::<Tenant>(),
        )
        .get(
            "/{id}",
            fetch,
            doc("tenant:read", "Get a tenant").ok::<Tenant>(),
        )
        .patch(
            "/{id}",
            update,
            doc(
                "tenant:write",
                "Update name/settings (status: tenant:admin)",
            )
            .body::<UpdateTenant>()
            .ok::<Tenant>(),
        )
        .delete(
            "/{id}",
            remove,
            doc("tenant:admin", "Delete a tenant without sub-tenants").no_content(),
        )
        .post(
            "/{id}/sub-tenants",
            create_sub,
            doc("tenant:admin", "Create a sub-tenant")
                .body::<CreateSub>()
                .created::<Tenant>(),
        )
        .get(
            "/{id}/hierarchy",
            hierarchy,
            doc("tenant:read", "Ancestors and descendants of a tenant").ok::<Hierarchy>(),
        )
        .post(
            "/{id}/activate",
            activate,
            doc("tenant:admin", "Set status active").ok::<Tenant>(),
        )
        .post(
            "/{id}/deactivate",
            deactivate,
            doc("tenant:admin", "Set status inactive").ok::<Tenant>(),
        )
        .get(
            "/code/{code}",
            by_code,
            doc("tenant:read", "Get a tenant by code").ok::<Tenant>(),
        )
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Tenant {
    pub id: Uuid,
    pub code: String,
    pub name: String,
    #[serde(rename = "type")]
    #[sqlx(rename = "type")]
    pub kind: String,
    pub parent_id: Option<Uuid>,
    pub status: String,
    pub settings: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}
crate::sortable!(Tenant, "name" => name, "code" => code);

const COLS: &str = "id, code, name, type, parent_id, status, settings, created_at, updated_at";
const STATUSES: &[&str] = &["active", "suspended", "inactive"];

fn ctx(caller: &Caller) -> TenantCtx {
    if caller.is_platform_admin() {
        TenantCtx::All
    } else {
        TenantCtx::One(caller.tenant_id)
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    pub code: String,
    pub name: String,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub parent_id: Option<Uuid>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub settings: Option<Value>,
}

fn validate_code(errs: &mut FieldErrors, code: &str) {
    let ok = (2..=64).contains(&code.len())
        && code.bytes().enumerate().all(|(i, b)| {
            b.is_ascii_uppercase() || b.is_ascii_digit() || (i > 0 && (b == b'-' || b == b'_'))
        });
    if !ok {
        errs.add(
            "code",
            "must be 2-64 characters of A-Z, 0-9, `-`, `_`, starting with a letter or digit",
        );
    }
}

fn validate_settings(errs: &mut FieldErrors, settings: &Value) {
    check_object(errs, "settings", settings);
    if let Some(plan) = settings.get("rate_limit_plan") {
        if !plan.is_string() {
            errs.add("settings.rate_limit_plan", "must be a string");
        }
    }
}

async fn insert(state: &AppState, caller: &Caller, req: CreateTenant) -> ApiResult<Tenant> {
    let mut errs = FieldErrors::new();
    validate_code(&mut errs, &req.code);
    check_text(&mut errs, "name", &req.name, 200);
    let kind = req.kind.clone().unwrap_or_else(|| {
        if req.parent_id.is_some() {
            "sub"
        } else {
            "root"
        }
        .to_owned()
    });
    match (kind.as_str(), req.parent_id) {
        ("root", None) | ("sub", Some(_)) => {}
        ("root", Some(_)) => errs.add("type", "a tenant with a parent is of type `sub`"),
        ("sub", None) => errs.add("parent_id", "is required for a sub-tenant"),
        _ => errs.add("type", "must be `root` or `sub`"),
    }
    let status = req.status.clone().unwrap_or_else(|| "active".to_owned());
    if !STATUSES.contains(&status.as_str()) {
        errs.add("status", "must be one of active, suspended, inactive");
    }
    let settings = req.settings.clone().unwrap_or_else(|| json!({}));
    validate_settings(&mut errs, &settings);
    errs.into_result()?;

    caller.require("tenant", Level::Admin)?;
    match req.parent_id {
        None if !caller.is_platform_admin() => {
            return Err(ApiError::denied(
                "only platform administrators create root tenants",
            ))
        }
        Some(p) if !caller.is_platform_admin() && p != caller.tenant_id => {
            return Err(ApiError::denied(
                "you may only create sub-tenants of your own tenant",
            ))
        }
        _ => {}
    }
    let mut tx = state.begin(ctx(caller)).await?;
    if let Some(p) = req.parent_id {
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM sentinel.tenants WHERE id = $1)")
                .bind(p)
                .fetch_one(&mut *tx)
                .await?;
        if !exists {
            return Err(FieldErrors::one(
                "parent_id",
                "parent tenant does not exist",
            ));
        }
    }
    let t: Tenant = sqlx::query_as(&format!(
        "INSERT INTO sentinel.tenants (code, name, type, parent_id, status, settings)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLS}"
    ))
    .bind(&req.code)
    .bind(req.name.trim())
    .bind(&kind)
    .bind(req.parent_id)
    .bind(&status)
    .bind(&settings)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(t)
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<CreateTenant>,
) -> ApiResult<(StatusCode, axum::Json<Tenant>)> {
    Ok(created(insert(&state, &caller, req).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSub {
    pub code: String,
    pub name: String,
    #[serde(default)]
    pub settings: Option<Value>,
}

async fn create_sub(
    State(state): State<AppState>,
    caller: Caller,
    Path(parent): Path<Uuid>,
    Json(req): Json<CreateSub>,
) -> ApiResult<(StatusCode, axum::Json<Tenant>)> {
    // The parent must be visible to the caller, else it is a missing object.
    get_one(&state, &caller, parent).await?;
    let t = insert(
        &state,
        &caller,
        CreateTenant {
            code: req.code,
            name: req.name,
            kind: Some("sub".to_owned()),
            parent_id: Some(parent),
            status: None,
            settings: req.settings,
        },
    )
    .await?;
    Ok(created(t))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    pub sort: Option<String>,
    pub status: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub parent_id: Option<Uuid>,
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListParams>,
) -> ApiResult<axum::Json<ListResponse<Tenant>>> {
    caller.require("tenant", Level::Read)?;
    let page = Page::parse(
        q.limit,
        q.cursor.as_deref(),
        q.sort.as_deref(),
        &[CREATED_AT, text("name"), text("code")],
    )?;
    let mut qb = QueryBuilder::new(format!("SELECT {COLS} FROM sentinel.tenants WHERE true"));
    filter_eq(&mut qb, "status", q.status);
    filter_eq(&mut qb, "type", q.kind);
    filter_eq(&mut qb, "parent_id", q.parent_id);
    page.push_tail(&mut qb);
    let mut tx = state.begin(ctx(&caller)).await?;
    let rows: Vec<Tenant> = qb.build_query_as().fetch_all(&mut *tx).await?;
    tx.commit().await?;
    Ok(axum::Json(page.finish(rows)))
}

async fn get_one(state: &AppState, caller: &Caller, id: Uuid) -> ApiResult<Tenant> {
    let mut tx = state.begin(ctx(caller)).await?;
    let t: Option<Tenant> = sqlx::query_as(&format!(
        "SELECT {COLS} FROM sentinel.tenants WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    t.ok_or(ApiError::NotFound)
}

async fn fetch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<Tenant>> {
    caller.require("tenant", Level::Read)?;
    Ok(axum::Json(get_one(&state, &caller, id).await?))
}

async fn by_code(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
) -> ApiResult<axum::Json<Tenant>> {
    caller.require("tenant", Level::Read)?;
    let mut tx = state.begin(ctx(&caller)).await?;
    let t: Option<Tenant> = sqlx::query_as(&format!(
        "SELECT {COLS} FROM sentinel.tenants WHERE code = $1"
    ))
    .bind(code)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(axum::Json(t.ok_or(ApiError::NotFound)?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTenant {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub settings: Option<Value>,
}

async fn set_fields(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    req: UpdateTenant,
) -> ApiResult<Tenant> {
    let mut errs = FieldErrors::new();
    if let Some(n) = &req.name {
        check_text(&mut errs, "name", n, 200);
    }
    if let Some(s) = &req.status {
        if !STATUSES.contains(&s.as_str()) {
            errs.add("status", "must be one of active, suspended, inactive");
        }
    }
    if let Some(s) = &req.settings {
        validate_settings(&mut errs, s);
    }
    errs.into_result()?;
    caller.require("tenant", Level::Write)?;
    if req.status.is_some() {
        caller.require("tenant", Level::Admin)?;
        if id == caller.tenant_id {
            return Err(ApiError::denied(
                "you may not change the status of your own tenant",
            ));
        }
    }
    let mut tx = state.begin(ctx(caller)).await?;
    let t: Option<Tenant> = sqlx::query_as(&format!(
        "UPDATE sentinel.tenants SET name = coalesce($2, name), status = coalesce($3, status),
                settings = coalesce($4, settings)
          WHERE id = $1 RETURNING {COLS}"
    ))
    .bind(id)
    .bind(req.name.as_deref().map(str::trim))
    .bind(req.status)
    .bind(req.settings)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    t.ok_or(ApiError::NotFound)
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(req): Json<UpdateTenant>,
) -> ApiResult<axum::Json<Tenant>> {
    Ok(axum::Json(set_fields(&state, &caller, id, req).await?))
}

async fn set_status(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    status: &str,
) -> ApiResult<Tenant> {
    if id == PLATFORM_TENANT {
        return Err(ApiError::denied(
            "the platform tenant's status cannot change",
        ));
    }
    set_fields(
        state,
        caller,
        id,
        UpdateTenant {
            name: None,
            status: Some(status.to_owned()),
            settings: None,
        },
    )
    .await
}

async fn activate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<Tenant>> {
    Ok(axum::Json(set_status(&state, &caller, id, "active").await?))
}

async fn deactivate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<Tenant>> {
    Ok(axum::Json(
        set_status(&state, &caller, id, "inactive").await?,
    ))
}

async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    caller.require("tenant", Level::Admin)?;
    if id == PLATFORM_TENANT || id == caller.tenant_id {
        return Err(ApiError::denied("this tenant cannot be deleted by you"));
    }
    let mut tx = state.begin(ctx(&caller)).await?;
    let visible: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM sentinel.tenants WHERE id = $1)")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
    if !visible {
        return Err(ApiError::NotFound);
    }
    let children: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM sentinel.tenants WHERE parent_id = $1)")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
    if children {
        return Err(FieldErrors::one(
            "id",
            "tenant has sub-tenants; delete them first",
        ));
    }
    sqlx::query("DELETE FROM sentinel.tenants WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Hierarchy {
    pub tenant: Tenant,
    /// Parent first, root last (only those visible to the caller).
    pub ancestors: Vec<Tenant>,
    /// Every tenant below, breadth-first (only those visible to the caller).
    pub descendants: Vec<Tenant>,
}

async fn hierarchy(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<Hierarchy>> {
    caller.require("tenant", Level::Read)?;
    let mut tx = state.begin(ctx(&caller)).await?;
    let tenant: Tenant = sqlx::query_as(&format!(
        "SELECT {COLS} FROM sentinel.tenants WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(ApiError::NotFound)?;
    let ancestors: Vec<Tenant> = sqlx::query_as(&format!(
        "WITH RECURSIVE up (id, depth) AS (
             SELECT parent_id, 1 FROM sentinel.tenants WHERE id = $1 AND parent_id IS NOT NULL
             UNION
             SELECT t.parent_id, u.depth + 1 FROM up u JOIN sentinel.tenants t ON t.id = u.id
              WHERE t.parent_id IS NOT NULL AND u.depth < 32)
         SELECT {COLS} FROM sentinel.tenants t JOIN up USING (id) ORDER BY up.depth"
    ))
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    let descendants: Vec<Tenant> = sqlx::query_as(&format!(
        "WITH RECURSIVE down (id, depth) AS (
             SELECT id, 1 FROM sentinel.tenants WHERE parent_id = $1
             UNION
             SELECT t.id, d.depth + 1 FROM down d JOIN sentinel.tenants t ON t.parent_id = d.id WHERE d.depth < 32)
         SELECT {COLS} FROM sentinel.tenants t JOIN down USING (id) ORDER BY down.depth, t.code"
    ))
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(axum::Json(Hierarchy {
        tenant,
        ancestors,
        descendants,
    }))
}
