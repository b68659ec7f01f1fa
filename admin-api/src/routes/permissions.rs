//! `/api/v1/permissions`: allow/deny rules on resource types with ABAC
//! conditions, tenant scope and three-tier field rules, validated at write
//! time by the shared policy compiler; and `POST /permissions/check`, decided
//! by the same evaluator the gateway runs.

use crate::auth::Caller;
use crate::db::Tx;
use crate::domain::rows;
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::extract::{Json, Path, Query};
use crate::openapi::routes::{doc, Routes};
use crate::pagination::{filter_contains, filter_eq, text, ListResponse, CREATED_AT};
use crate::routes::{check_text, created};
use crate::scopes::Level;
use crate::snapshot;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use sentinel_policy::source::{
    ConditionSource, Effect, FieldRule, FieldRulesSource, PermissionSource, PolicySource,
    TenantScope,
};
use sentinel_policy::{AccessRequest, RequestContext, PLATFORM_TENANT};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use uuid::Uuid;

pub fn router() -> Routes {
    Routes::new()
        .post(
            "/",
            create,
            doc(
                "permission:admin",
                "Create a permission (validated by the shared compiler)",
            )
            .body::<CreatePermission>()
            .created::<Permission>(),
        )
        .get(
            "/",
            list,
            doc(
                "permission:read",
                "List permissions (filters: name, resource_type, effect, is_active)",
            )
            .list::<Permission>(),
        )
        .post(
            "/check",
            check,
            doc(
                "authenticated",
                "Decide a request with the shared evaluator (other principals: permission:read)",
            )
            .body::<CheckRequest>()
            .ok::<CheckResponse>()
            .error(
                404,
                "RESOURCE_NOT_FOUND: `user_id` names no principal of the tenant",
            ),
        )
        .get(
            "/{id}",
            rows::fetch::<Permission>,
            doc("permission:read", "Get a permission").ok::<Permission>(),
        )
        .patch(
            "/{id}",
            update,
            doc("permission:write", "Update a permission")
                .body::<UpdatePermission>()
                .ok::<Permission>(),
        )
        .delete(
            "/{id}",
            rows::remove::<Permission>,
            doc("permission:admin", "Delete a permission").no_content(),
        )
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Permission {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub description: String,
    pub effect: String,
    pub resource_type: String,
    pub resource_pattern: String,
    pub actions: Vec<String>,
    pub conditions: Value,
    pub tenant_scope: String,
    pub field_rules: Value,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}
crate::sortable!(Permission, "name" => name, "resource_type" => resource_type);

pub const COLS: &str = "id, tenant_id, name, description, effect, resource_type, resource_pattern, actions, conditions, \
                        tenant_scope, field_rules, is_active, created_at, updated_at";
pub const COLS_P: &str = "p.id, p.tenant_id, p.name, p.description, p.effect, p.resource_type, p.resource_pattern, \
                          p.actions, p.conditions, p.tenant_scope, p.field_rules, p.is_active, p.created_at, p.updated_at";

/// The writable fields of a permission, complete (after applying a patch).
#[derive(Debug, Clone)]
struct Spec {
    name: String,
    description: String,
    effect: Value,
    resource_type: String,
    resource_pattern: String,
    actions: Vec<String>,
    conditions: Value,
    tenant_scope: Value,
    field_rules: Value,
    is_active: bool,
}

/// Validates a permission the way the gateway will read it: serde into the
/// shared source types, then the shared compiler. Returns every problem.
fn validate(spec: &Spec, caller: &Caller) -> ApiResult<(Effect, TenantScope)> {
    let mut errs = FieldErrors::new();
    check_text(&mut errs, "name", &spec.name, 150);
    let rt = spec.resource_type.as_str();
    if !(rt == "*"
        || (!rt.is_empty()
            && rt.len() <= 64
            && rt
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')))
    {
        errs.add(
            "resource_type",
            "must be `*` or lowercase letters, digits and `_`",
        );
    }
    if spec.actions.is_empty() {
        errs.add("actions", "must list at least one action");
    }
    let effect = serde_json::from_value::<Effect>(spec.effect.clone());
    if effect.is_err() {
        errs.add("effect", "must be `allow` or `deny`");
    }
    let scope = serde_json::from_value::<TenantScope>(spec.tenant_scope.clone());
    match &scope {
        Err(_) => errs.add("tenant_scope", "must be `own`, `own_and_children` or `any`"),
        Ok(TenantScope::Any)
            if !(caller.is_platform_admin() && caller.target == PLATFORM_TENANT) =>
        {
            errs.add(
                "tenant_scope",
                "`any` is reserved to the platform tenant's administrators",
            )
        }
        _ => {}
    }
    let conditions = serde_json::from_value::<Vec<ConditionSource>>(spec.conditions.clone());
    if let Err(e) = &conditions {
        errs.add("conditions", format!("invalid condition: {e}"));
    }
    let fields = serde_json::from_value::<FieldRulesSource>(spec.field_rules.clone());
    if let Err(e) = &fields {
        errs.add("field_rules", format!("invalid field rules: {e}"));
    }
    if let (Ok(effect), Ok(scope), Ok(conditions), Ok(fields)) =
        (&effect, &scope, conditions, fields)
    {
        let src = PolicySource {
            permissions: vec![PermissionSource {
                id: "new".to_owned(),
                effect: *effect,
                resource_type: spec.resource_type.clone(),
                resource: spec.resource_pattern.clone(),
                actions: spec.actions.clone(),
                conditions,
                tenant_scope: *scope,
                fields,
                description: spec.description.clone(),
                mode: Default::default(),
            }],
            ..PolicySource::default()
        };
        if let Err(list) = sentinel_policy::compile(&src) {
            for e in list {
                let field = match e.location.field {
                    Some("resource") => "resource_pattern",
                    Some("fields") => "field_rules",
                    Some(f) => f,
                    None => "body",
                };
                errs.add(field, e.message);
            }
        }
    }
    errs.into_result()?;
    match (effect, scope) {
        (Ok(e), Ok(s)) => Ok((e, s)),
        _ => Err(FieldErrors::one("body", "invalid permission")),
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePermission {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub effect: Option<Value>,
    pub resource_type: String,
    #[serde(default)]
    pub resource_pattern: Option<String>,
    pub actions: Vec<String>,
    #[serde(default)]
    pub conditions: Option<Value>,
    #[serde(default)]
    pub tenant_scope: Option<Value>,
    #[serde(default)]
    pub field_rules: Option<Value>,
    #[serde(default)]
    pub is_active: Option<bool>,
}

async fn write(
    tx: &mut Tx,
    caller: &Caller,
    id: Option<Uuid>,
    spec: &Spec,
) -> ApiResult<Permission> {
    let q = match id {
        None => format!(
            "INSERT INTO sentinel.permissions (tenant_id, name, description, effect, resource_type, resource_pattern,
                actions, conditions, tenant_scope, field_rules, is_active)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING {COLS}"
        ),
        Some(_) => format!(
            "UPDATE sentinel.permissions SET name = $2, description = $3, effect = $4, resource_type = $5,
                resource_pattern = $6, actions = $7, conditions = $8, tenant_scope = $9, field_rules = $10,
                is_active = $11
              WHERE tenant_id = $1 AND id = $12 RETURNING {COLS}"
        ),
    };
    let as_str = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let p: Option<Permission> = sqlx::query_as(&q)
        .bind(caller.target)
        .bind(spec.name.trim())
        .bind(&spec.description)
        .bind(as_str(&spec.effect))
        .bind(&spec.resource_type)
        .bind(&spec.resource_pattern)
        .bind(&spec.actions)
        .bind(&spec.conditions)
        .bind(as_str(&spec.tenant_scope))
        .bind(&spec.field_rules)
        .bind(spec.is_active)
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    p.ok_or(ApiError::NotFound)
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<CreatePermission>,
) -> ApiResult<(StatusCode, axum::Json<Permission>)> {
    let spec = Spec {
        name: req.name,
        description: req.description.unwrap_or_default(),
        effect: req.effect.unwrap_or_else(|| json!("allow")),
        resource_type: req.resource_type,
        resource_pattern: req.resource_pattern.unwrap_or_else(|| "*".to_owned()),
        actions: req.actions,
        conditions: req.conditions.unwrap_or_else(|| json!([])),
        tenant_scope: req.tenant_scope.unwrap_or_else(|| json!("own")),
        field_rules: req.field_rules.unwrap_or_else(|| json!({})),
        is_active: req.is_active.unwrap_or(true),
    };
    validate(&spec, &caller)?;
    caller.require("permission", Level::Admin)?;
    let mut tx = state.begin(caller.ctx()).await?;
    let p = write(&mut tx, &caller, None, &spec).await?;
    tx.commit().await?;
    Ok(created(p))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    pub sort: Option<String>,
    pub name: Option<String>,
    pub resource_type: Option<String>,
    pub effect: Option<String>,
    pub is_active: Option<bool>,
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListParams>,
) -> ApiResult<axum::Json<ListResponse<Permission>>> {
    rows::list::<Permission>(
        (&state, &caller),
        (
            "permission",
            (q.limit, q.cursor.as_deref(), q.sort.as_deref()),
        ),
        &[CREATED_AT, text("name"), text("resource_type")],
        format!("SELECT {COLS} FROM sentinel.permissions WHERE tenant_id = "),
        |qb| {
            filter_contains(qb, "name", q.name);
            filter_eq(qb, "resource_type", q.resource_type);
            filter_eq(qb, "effect", q.effect);
            filter_eq(qb, "is_active", q.is_active);
        },
    )
    .await
}

crate::tenant_row!(
    Permission,
    "permission",
    "permissions",
    "SELECT {COLS} FROM sentinel.permissions WHERE id = $1 AND tenant_id = $2"
);

async fn get_perm(tx: &mut Tx, tenant: Uuid, id: Uuid) -> ApiResult<Permission> {
    rows::one(tx, tenant, id).await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePermission {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub effect: Option<Value>,
    #[serde(default)]
    pub resource_type: Option<String>,
    #[serde(default)]
    pub resource_pattern: Option<String>,
    #[serde(default)]
    pub actions: Option<Vec<String>>,
    #[serde(default)]
    pub conditions: Option<Value>,
    #[serde(default)]
    pub tenant_scope: Option<Value>,
    #[serde(default)]
    pub field_rules: Option<Value>,
    #[serde(default)]
    pub is_active: Option<bool>,
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(req): Json<UpdatePermission>,
) -> ApiResult<axum::Json<Permission>> {
    caller.require("permission", Level::Write)?;
    let mut tx = state.begin(caller.ctx()).await?;
    let cur = get_perm(&mut tx, caller.target, id).await?;
    let spec = Spec {
        name: req.name.unwrap_or(cur.name),
        description: req.description.unwrap_or(cur.description),
        effect: req.effect.unwrap_or(Value::String(cur.effect)),
        resource_type: req.resource_type.unwrap_or(cur.resource_type),
        resource_pattern: req.resource_pattern.unwrap_or(cur.resource_pattern),
        actions: req.actions.unwrap_or(cur.actions),
        conditions: req.conditions.unwrap_or(cur.conditions),
        tenant_scope: req.tenant_scope.unwrap_or(Value::String(cur.tenant_scope)),
        field_rules: req.field_rules.unwrap_or(cur.field_rules),
        is_active: req.is_active.unwrap_or(cur.is_active),
    };
    validate(&spec, &caller)?;
    let p = write(&mut tx, &caller, Some(id), &spec).await?;
    tx.commit().await?;
    Ok(axum::Json(p))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckContext {
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub client_ip: Option<std::net::IpAddr>,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub mfa: bool,
    #[serde(default)]
    pub risk_score: Option<f64>,
    /// Unix seconds; default now.
    #[serde(default)]
    pub now: Option<i64>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// Default: the caller.
    #[serde(default)]
    pub user_id: Option<Uuid>,
    pub resource_type: String,
    #[serde(default)]
    pub resource_id: Option<String>,
    pub action: String,
    /// The tenant acted on; default the principal's own.
    #[serde(default)]
    pub target_tenant_id: Option<Uuid>,
    #[serde(default)]
    pub approval_chain: Option<String>,
    #[serde(default)]
    pub context: CheckContext,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CheckResponse {
    pub allowed: bool,
    /// Stable machine name (`no_matching_permission`).
    pub reason: &'static str,
    pub reason_text: &'static str,
    /// Ids of the permissions that decided.
    pub rule_ids: Vec<String>,
    /// Field rules of the deciding allow rules, per tier (most permissive wins).
    #[schema(value_type = Object)]
    pub field_rules: BTreeMap<&'static str, BTreeMap<String, FieldRule>>,
}

fn rank(r: FieldRule) -> u8 {
    match r {
        FieldRule::Hidden => 0,
        FieldRule::Masked => 1,
        FieldRule::Read => 2,
        FieldRule::Write => 3,
    }
}

/// Decides one request for a principal of the caller's target tenant with the shared evaluator.
pub async fn decide(
    state: &AppState,
    caller: &Caller,
    req: &CheckRequest,
) -> ApiResult<CheckResponse> {
    let principal_id = req.user_id.unwrap_or(caller.user_id);
    let mut tx = state.begin(caller.ctx()).await?;
    let src = snapshot::load_source(&mut tx)
        .await
        .map_err(ApiError::internal)?;
    tx.commit().await?;
    let snap = sentinel_policy::compile(&src).map_err(|errs| {
        tracing::error!(errors = ?errs, "stored policy does not compile");
        ApiError::PolicyUnavailable
    })?;
    let principal = snap.principal(&principal_id).ok_or(ApiError::NotFound)?;
    let method = req
        .context
        .method
        .clone()
        .unwrap_or_else(|| "GET".to_owned());
    let decision = snap.authorize(&AccessRequest {
        principal,
        resource_type: &req.resource_type,
        resource_id: req.resource_id.as_deref(),
        action: &req.action,
        target_tenant: req.target_tenant_id.unwrap_or(principal.tenant),
        approval_chain: req.approval_chain.as_deref(),
        context: RequestContext {
            now: req.context.now.unwrap_or_else(|| Utc::now().timestamp()),
            client_ip: req.context.client_ip,
            method: &method,
            mfa: req.context.mfa,
            risk_score: req.context.risk_score,
        },
    });
    let rule_ids: Vec<String> = decision
        .rules
        .iter()
        .map(|i| snap.rule_id(i).to_owned())
        .collect();
    let mut field_rules: BTreeMap<&'static str, BTreeMap<String, FieldRule>> = BTreeMap::new();
    if decision.allowed {
        for id in &rule_ids {
            let Some(p) = src.permissions.iter().find(|p| &p.id == id) else {
                continue;
            };
            for (tier, rules) in [
                ("core", &p.fields.core),
                ("platform_dynamic", &p.fields.platform_dynamic),
                ("tenant_specific", &p.fields.tenant_specific),
            ] {
                let merged = field_rules.entry(tier).or_default();
                for (f, r) in rules {
                    let e = merged.entry(f.clone()).or_insert(*r);
                    if rank(*r) > rank(*e) {
                        *e = *r;
                    }
                }
            }
        }
    }
    Ok(CheckResponse {
        allowed: decision.allowed,
        reason: decision.reason.name(),
        reason_text: decision.reason.as_str(),
        rule_ids,
        field_rules,
    })
}

async fn check(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<CheckRequest>,
) -> ApiResult<axum::Json<CheckResponse>> {
    let mut errs = FieldErrors::new();
    check_text(&mut errs, "resource_type", &req.resource_type, 64);
    check_text(&mut errs, "action", &req.action, 64);
    errs.into_result()?;
    if req.user_id.is_some_and(|u| u != caller.user_id) || caller.target != caller.tenant_id {
        caller.require("permission", Level::Read)?;
    }
    Ok(axum::Json(decide(&state, &caller, &req).await?))
}
