//! `/api/v1/navigation`: a tenant's menu items, each naming the permission it
//! needs (an action on a resource type), and `GET /navigation/menu`: the
//! caller's menu, filtered by the shared evaluator.

use crate::auth::Caller;
use crate::db::{self, Tx};
use crate::domain::rows;
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::extract::{double_option, Json, Path, Query};
use crate::openapi::routes::{doc, Routes};
use crate::pagination::{filter_eq, text, ListResponse, CREATED_AT};
use crate::routes::{check_text, created, valid_ident};
use crate::scopes::Level;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use sentinel_policy::{AccessRequest, RequestContext};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

pub fn router() -> Routes {
    Routes::new()
        .post("/", create, doc("navigation:admin", "Create a menu item").body::<CreateItem>().created::<NavItem>())
        .get("/", list, doc("navigation:read", "List menu items").list::<NavItem>())
        .get("/menu", menu, doc("authenticated", "The caller's menu, filtered by permission")
                .json(json!({
                    "type": "object",
                    "required": ["items"],
                    "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/MenuEntry"}}}
                }))
                .component("MenuEntry", json!({
                    "type": "object",
                    "description": "A menu item the caller may open, with the ones below it",
                    "required": ["id", "label", "path", "icon", "children"],
                    "properties": {
                        "id": {"type": "string", "format": "uuid"},
                        "label": {"type": "string"},
                        "path": {"type": "string"},
                        "icon": {"type": ["string", "null"]},
                        "children": {"type": "array", "items": {"$ref": "#/components/schemas/MenuEntry"}}
                    }
                })),)
        .get("/{id}", rows::fetch::<NavItem>, doc("navigation:read", "Get a menu item").ok::<NavItem>())
        .patch("/{id}", update, doc("navigation:write", "Update a menu item").body::<UpdateItem>().ok::<NavItem>())
        .delete("/{id}", rows::remove::<NavItem>, doc("navigation:admin", "Delete a menu item (and its children)").no_content())
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct NavItem {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub parent_id: Option<Uuid>,
    pub label: String,
    pub path: String,
    pub icon: Option<String>,
    pub sort_order: i32,
    pub resource_type: Option<String>,
    pub action: Option<String>,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}
crate::sortable!(NavItem, "label" => label, "path" => path);

const COLS: &str =
    "id, tenant_id, parent_id, label, path, icon, sort_order, resource_type, action, is_active, \
                    created_at, updated_at";

fn validate_path(errs: &mut FieldErrors, p: &str) {
    if !p.starts_with('/') || p.len() > 300 || p.chars().any(char::is_whitespace) {
        errs.add(
            "path",
            "must be an absolute path without spaces, at most 300 characters",
        );
    }
}

fn validate_permission(errs: &mut FieldErrors, rt: &Option<String>, action: &Option<String>) {
    match (rt, action) {
        (None, None) => {}
        (Some(r), Some(a)) => {
            if !valid_ident(r) {
                errs.add(
                    "resource_type",
                    "must be lowercase letters, digits and `_`, starting with a letter",
                );
            }
            if a.trim().is_empty() || a.len() > 64 {
                errs.add("action", "must be 1-64 characters");
            }
        }
        _ => errs.add("action", "`resource_type` and `action` go together"),
    }
}

crate::tenant_row!(
    NavItem,
    "navigation",
    "navigation_items",
    "SELECT {COLS} FROM sentinel.navigation_items WHERE id = $1 AND tenant_id = $2"
);

async fn get_item(tx: &mut Tx, tenant: Uuid, id: Uuid) -> ApiResult<NavItem> {
    rows::one(tx, tenant, id).await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateItem {
    pub label: String,
    pub path: String,
    #[serde(default)]
    pub icon: Option<String>,
    #[serde(default)]
    pub sort_order: Option<i32>,
    #[serde(default)]
    pub parent_id: Option<Uuid>,
    #[serde(default)]
    pub resource_type: Option<String>,
    #[serde(default)]
    pub action: Option<String>,
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<CreateItem>,
) -> ApiResult<(StatusCode, axum::Json<NavItem>)> {
    let mut errs = FieldErrors::new();
    check_text(&mut errs, "label", &req.label, 100);
    validate_path(&mut errs, &req.path);
    validate_permission(&mut errs, &req.resource_type, &req.action);
    errs.into_result()?;
    caller.require("navigation", Level::Admin)?;
    let mut tx = state.begin(caller.ctx()).await?;
    if let Some(p) = req.parent_id {
        if get_item(&mut tx, caller.target, p).await.is_err() {
            return Err(FieldErrors::one(
                "parent_id",
                "parent item does not exist in this tenant",
            ));
        }
    }
    let item: NavItem = sqlx::query_as(&format!(
        "INSERT INTO sentinel.navigation_items (tenant_id, parent_id, label, path, icon, sort_order, resource_type, action)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLS}"
    ))
    .bind(caller.target)
    .bind(req.parent_id)
    .bind(req.label.trim())
    .bind(&req.path)
    .bind(req.icon)
    .bind(req.sort_order.unwrap_or(0))
    .bind(req.resource_type)
    .bind(req.action)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(created(item))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    pub sort: Option<String>,
    pub parent_id: Option<Uuid>,
    pub resource_type: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListParams>,
) -> ApiResult<axum::Json<ListResponse<NavItem>>> {
    rows::list::<NavItem>(
        (&state, &caller),
        (
            "navigation",
            (q.limit, q.cursor.as_deref(), q.sort.as_deref()),
        ),
        &[CREATED_AT, text("label"), text("path")],
        format!("SELECT {COLS} FROM sentinel.navigation_items WHERE tenant_id = "),
        |qb| {
            filter_eq(qb, "parent_id", q.parent_id);
            filter_eq(qb, "resource_type", q.resource_type);
        },
    )
    .await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateItem {
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    pub icon: Option<Option<String>>,
    #[serde(default)]
    pub sort_order: Option<i32>,
    #[serde(default)]
    pub is_active: Option<bool>,
    #[serde(default, deserialize_with = "double_option")]
    pub resource_type: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub action: Option<Option<String>>,
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(req): Json<UpdateItem>,
) -> ApiResult<axum::Json<NavItem>> {
    caller.require("navigation", Level::Write)?;
    let mut tx = state.begin(caller.ctx()).await?;
    let cur = get_item(&mut tx, caller.target, id).await?;
    let label = req.label.unwrap_or(cur.label);
    let path = req.path.unwrap_or(cur.path);
    let icon = req.icon.unwrap_or(cur.icon);
    let rt = req.resource_type.unwrap_or(cur.resource_type);
    let action = req.action.unwrap_or(cur.action);
    let mut errs = FieldErrors::new();
    check_text(&mut errs, "label", &label, 100);
    validate_path(&mut errs, &path);
    validate_permission(&mut errs, &rt, &action);
    errs.into_result()?;
    let item: NavItem = sqlx::query_as(&format!(
        "UPDATE sentinel.navigation_items SET label = $3, path = $4, icon = $5, sort_order = coalesce($6, sort_order),
                is_active = coalesce($7, is_active), resource_type = $8, action = $9
          WHERE id = $1 AND tenant_id = $2 RETURNING {COLS}"
    ))
    .bind(id)
    .bind(caller.target)
    .bind(label.trim())
    .bind(path)
    .bind(icon)
    .bind(req.sort_order)
    .bind(req.is_active)
    .bind(rt)
    .bind(action)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(axum::Json(item))
}

/// The caller's menu as a tree: items whose permission the caller holds (and
/// whose parents are shown), ordered by `sort_order` then label.
async fn menu(State(state): State<AppState>, caller: Caller) -> ApiResult<axum::Json<Value>> {
    let mut tx = db::begin(&state.pool, db::TenantCtx::One(caller.tenant_id)).await?;
    let items: Vec<NavItem> = sqlx::query_as(&format!(
        "SELECT {COLS} FROM sentinel.navigation_items WHERE tenant_id = $1 AND is_active ORDER BY sort_order, label"
    ))
    .bind(caller.tenant_id)
    .fetch_all(&mut *tx)
    .await?;
    let src = crate::snapshot::load_source(&mut tx)
        .await
        .map_err(ApiError::internal)?;
    tx.commit().await?;
    let snap = sentinel_policy::compile(&src).map_err(|errs| {
        tracing::error!(errors = ?errs, "stored policy does not compile");
        ApiError::PolicyUnavailable
    })?;
    let principal = snap
        .principal(&caller.user_id)
        .ok_or(ApiError::AuthInvalid)?;
    let now = Utc::now().timestamp();
    let allowed: HashSet<Uuid> = items
        .iter()
        .filter(|i| match (&i.resource_type, &i.action) {
            (Some(rt), Some(a)) => {
                snap.authorize(&AccessRequest {
                    principal,
                    resource_type: rt,
                    resource_id: None,
                    action: a,
                    target_tenant: caller.tenant_id,
                    approval_chain: None,
                    context: RequestContext {
                        now,
                        client_ip: None,
                        method: "GET",
                        mfa: false,
                        risk_score: None,
                    },
                })
                .allowed
            }
            _ => true,
        })
        .map(|i| i.id)
        .collect();
    let mut children: HashMap<Option<Uuid>, Vec<&NavItem>> = HashMap::new();
    for i in &items {
        if allowed.contains(&i.id) {
            children.entry(i.parent_id).or_default().push(i);
        }
    }
    fn build(
        parent: Option<Uuid>,
        children: &HashMap<Option<Uuid>, Vec<&NavItem>>,
        depth: usize,
    ) -> Vec<Value> {
        if depth > 16 {
            return Vec::new();
        }
        children
            .get(&parent)
            .map(|list| {
                list.iter()
                    .map(|i| {
                        json!({
                            "id": i.id, "label": i.label, "path": i.path, "icon": i.icon,
                            "children": build(Some(i.id), children, depth + 1),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
    Ok(axum::Json(json!({ "items": build(None, &children, 0) })))
}
