//! `/api/v1/approval-chains`: who approves access to what, level by level.
//! Every write is validated whole before it is stored: the resource
//! pattern, action and time conditions by the shared policy compiler (the
//! gateways' own), the approvers against the tenant (no level without
//! approvers, none it can never satisfy).

use super::model::{
    Approvers, AutoCondition, LevelSpec, DEFAULT_DURATION_SECONDS, DEFAULT_MAX_DURATION_SECONDS,
    LONGEST_SECONDS, MAX_LEVELS, MAX_REQUIRED,
};
use super::{require, Right};
use crate::auth::Caller;
use crate::db::Tx;
use crate::domain::rows;
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::extract::{Json, Path, Query};
use crate::openapi::routes::{doc, Routes};
use crate::pagination::{filter_eq, ListResponse, Page, CREATED_AT};
use crate::routes::{created, valid_ident};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use sentinel_policy::source::{ConditionSource, PermissionSource, PolicySource};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashSet;
use uuid::Uuid;

pub fn router() -> Routes {
    Routes::new()
        .post(
            "/",
            create,
            doc(
                "approvals:admin",
                "Create an approval chain (validated whole)",
            )
            .body::<ChainSpec>()
            .created::<ApprovalChain>(),
        )
        .get(
            "/",
            list,
            doc("approvals:request", "List approval chains").list::<ApprovalChain>(),
        )
        .get(
            "/{id}",
            fetch,
            doc("approvals:request", "Get an approval chain").ok::<ApprovalChain>(),
        )
        .patch(
            "/{id}",
            update,
            doc(
                "approvals:admin",
                "Update an approval chain (validated whole)",
            )
            .body::<ChainPatch>()
            .ok::<ApprovalChain>(),
        )
        .delete(
            "/{id}",
            remove,
            doc(
                "approvals:admin",
                "Delete an approval chain (and its requests)",
            )
            .no_content(),
        )
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ApprovalChain {
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// What routes name (`approval = "voyage-deletion"`).
    pub name: String,
    pub description: String,
    pub resource_type: String,
    pub resource_pattern: String,
    pub action: String,
    #[schema(value_type = Vec<LevelSpec>)]
    pub levels: Value,
    pub default_duration_seconds: i32,
    pub max_duration_seconds: i32,
    pub auto_approve_enabled: bool,
    #[schema(value_type = Vec<AutoCondition>)]
    pub auto_approve_conditions: Value,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}
crate::sortable!(ApprovalChain, "name" => name);

pub const COLS: &str =
    "id, tenant_id, name, description, resource_type, resource_pattern, action, levels,
    default_duration_seconds, max_duration_seconds, auto_approve_enabled, auto_approve_conditions,
    is_active, created_at, updated_at";

/// A whole chain as written (create), or the result of a patch.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChainSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub resource_type: String,
    #[serde(default = "star")]
    pub resource_pattern: String,
    pub action: String,
    #[schema(value_type = Vec<LevelSpec>)]
    pub levels: Value,
    #[serde(default = "default_duration")]
    pub default_duration_seconds: i32,
    #[serde(default = "default_max")]
    pub max_duration_seconds: i32,
    /// Seeds: off.
    #[serde(default)]
    pub auto_approve_enabled: bool,
    #[serde(default = "empty_list")]
    #[schema(value_type = Vec<AutoCondition>)]
    pub auto_approve_conditions: Value,
    #[serde(default = "yes")]
    pub is_active: bool,
}

fn star() -> String {
    "*".to_owned()
}
fn default_duration() -> i32 {
    DEFAULT_DURATION_SECONDS
}
fn default_max() -> i32 {
    DEFAULT_MAX_DURATION_SECONDS
}
fn empty_list() -> Value {
    Value::Array(Vec::new())
}
fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChainPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub resource_type: Option<String>,
    pub resource_pattern: Option<String>,
    pub action: Option<String>,
    #[schema(value_type = Option<Vec<LevelSpec>>)]
    pub levels: Option<Value>,
    pub default_duration_seconds: Option<i32>,
    pub max_duration_seconds: Option<i32>,
    pub auto_approve_enabled: Option<bool>,
    #[schema(value_type = Option<Vec<AutoCondition>>)]
    pub auto_approve_conditions: Option<Value>,
    pub is_active: Option<bool>,
}

/// Parses the levels of a chain, reporting each problem at `levels[i].…`.
pub fn parse_levels(v: &Value, errs: &mut FieldErrors) -> Vec<LevelSpec> {
    let Some(list) = v.as_array() else {
        errs.add("levels", "must be a list of levels");
        return Vec::new();
    };
    if list.is_empty() {
        errs.add("levels", "a chain needs at least one level");
    }
    if list.len() > MAX_LEVELS {
        errs.add("levels", format!("at most {MAX_LEVELS} levels"));
    }
    let mut out = Vec::new();
    for (i, l) in list.iter().enumerate() {
        match serde_json::from_value::<LevelSpec>(l.clone()) {
            Ok(spec) => out.push(spec),
            Err(e) => errs.add(&format!("levels[{i}]"), format!("invalid level: {e}")),
        }
    }
    out
}

/// Parses the auto-approval conditions.
pub fn parse_conditions(v: &Value, errs: &mut FieldErrors) -> Vec<AutoCondition> {
    match serde_json::from_value::<Vec<AutoCondition>>(v.clone()) {
        Ok(c) => c,
        Err(e) => {
            errs.add("auto_approve_conditions", format!("invalid condition: {e}"));
            Vec::new()
        }
    }
}

/// How many distinct users hold `role` of `tenant` now, counting roles that
/// inherit it (`None`: no such role).
async fn role_holders(tx: &mut Tx, tenant: Uuid, role: &str) -> ApiResult<Option<i64>> {
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sentinel.roles WHERE tenant_id = $1 AND name = $2)",
    )
    .bind(tenant)
    .bind(role)
    .fetch_one(&mut **tx)
    .await?;
    if !exists {
        return Ok(None);
    }
    let n: i64 = sqlx::query_scalar(
        "WITH RECURSIVE d (id, depth) AS (
             SELECT id, 0 FROM sentinel.roles WHERE tenant_id = $1 AND name = $2
             UNION
             SELECT r.id, d.depth + 1 FROM sentinel.roles r JOIN d ON r.parent_role_id = d.id WHERE d.depth < 64)
         SELECT count(DISTINCT u) FROM (
             SELECT ur.user_id AS u FROM sentinel.user_roles ur
              WHERE ur.role_id IN (SELECT id FROM d) AND ur.is_active
                AND (ur.valid_until IS NULL OR ur.valid_until > now())
             UNION
             SELECT ug.user_id FROM sentinel.user_groups ug
               JOIN sentinel.group_roles gr ON gr.group_id = ug.group_id
              WHERE gr.role_id IN (SELECT id FROM d)) h",
    )
    .bind(tenant)
    .bind(role)
    .fetch_one(&mut **tx)
    .await?;
    Ok(Some(n))
}

/// Checks that `a` names approvers that exist and can give `required` approvals.
async fn check_approvers(
    tx: &mut Tx,
    tenant: Uuid,
    a: &Approvers,
    required: u32,
    at: &str,
    errs: &mut FieldErrors,
) -> ApiResult<()> {
    match a {
        Approvers::Role { role } => match role_holders(tx, tenant, role).await? {
            None => errs.add(at, format!("no role `{role}` in this tenant")),
            Some(n) if n < i64::from(required) => errs.add(
                at,
                format!("role `{role}` has {n} holders; {required} approvals can never be given"),
            ),
            Some(_) => {}
        },
        Approvers::Users { user_ids } => {
            let distinct: HashSet<&Uuid> = user_ids.iter().collect();
            if distinct.is_empty() {
                errs.add(at, "names no approver");
            } else if distinct.len() < required as usize {
                errs.add(
                    at,
                    format!(
                        "names {} approvers; {required} approvals can never be given",
                        distinct.len()
                    ),
                );
            }
            let found: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM sentinel.users
                  WHERE tenant_id = $1 AND id = ANY($2) AND is_active AND NOT is_service_account",
            )
            .bind(tenant)
            .bind(distinct.iter().map(|u| **u).collect::<Vec<Uuid>>())
            .fetch_one(&mut **tx)
            .await?;
            if found != distinct.len() as i64 {
                errs.add(
                    at,
                    "every approver must be an active user (not a service account) of this tenant",
                );
            }
        }
        Approvers::Manager { attribute } => {
            if attribute.trim().is_empty() || attribute.len() > 64 {
                errs.add(at, "the manager attribute must be 1-64 characters");
            }
            if required != 1 {
                errs.add(
                    at,
                    "a requester has one manager: exactly 1 approval can be given",
                );
            }
        }
    }
    Ok(())
}

/// Validates a whole chain against the tenant; every problem at once.
pub async fn validate(tx: &mut Tx, tenant: Uuid, c: &ChainSpec) -> ApiResult<()> {
    let mut errs = FieldErrors::new();
    let name_ok = !c.name.is_empty()
        && c.name.len() <= 100
        && c.name.as_bytes()[0].is_ascii_alphanumeric()
        && c.name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-')
        });
    if !name_ok {
        errs.add(
            "name",
            "must be 1-100 characters of a-z, 0-9, `_`, `.`, `-` (what routes name)",
        );
    }
    if c.description.chars().count() > 1000 {
        errs.add("description", "must be at most 1000 characters");
    }
    if !valid_ident(&c.resource_type) {
        errs.add("resource_type", "must be lowercase letters, digits and `_`");
    }
    if !valid_ident(&c.action) {
        errs.add("action", "must be lowercase letters, digits and `_`");
    }
    let levels = parse_levels(&c.levels, &mut errs);
    for (i, l) in levels.iter().enumerate() {
        if l.required_approvals == 0 || l.required_approvals > MAX_REQUIRED {
            errs.add(
                &format!("levels[{i}].required_approvals"),
                format!("must be 1-{MAX_REQUIRED}"),
            );
        }
        if l.timeout_seconds < 1 || l.timeout_seconds > LONGEST_SECONDS {
            errs.add(
                &format!("levels[{i}].timeout_seconds"),
                format!("must be 1-{LONGEST_SECONDS}"),
            );
        }
        let req = l.required_approvals.clamp(1, MAX_REQUIRED);
        check_approvers(
            tx,
            tenant,
            &l.approvers,
            req,
            &format!("levels[{i}].approvers"),
            &mut errs,
        )
        .await?;
        if let Some(e) = &l.escalate_to {
            check_approvers(
                tx,
                tenant,
                e,
                req,
                &format!("levels[{i}].escalate_to"),
                &mut errs,
            )
            .await?;
        }
    }
    if c.max_duration_seconds < 1 || i64::from(c.max_duration_seconds) > LONGEST_SECONDS {
        errs.add(
            "max_duration_seconds",
            format!("must be 1-{LONGEST_SECONDS}"),
        );
    }
    if c.default_duration_seconds < 1 || c.default_duration_seconds > c.max_duration_seconds {
        errs.add(
            "default_duration_seconds",
            "must be at least 1 and at most `max_duration_seconds`",
        );
    }
    let conditions = parse_conditions(&c.auto_approve_conditions, &mut errs);
    let mut time_conditions = Vec::new();
    for (i, cond) in conditions.iter().enumerate() {
        let at = format!("auto_approve_conditions[{i}]");
        match cond {
            AutoCondition::Role { role } => {
                if role_holders(tx, tenant, role).await?.is_none() {
                    errs.add(&at, format!("no role `{role}` in this tenant"));
                }
            }
            AutoCondition::Time {
                hours_utc,
                weekdays,
            } => time_conditions.push(ConditionSource::Time {
                hours_utc: *hours_utc,
                weekdays: weekdays.clone(),
            }),
            AutoCondition::Renewal { within_seconds } => {
                if *within_seconds < 1 || *within_seconds > LONGEST_SECONDS {
                    errs.add(
                        &format!("{at}.within_seconds"),
                        format!("must be 1-{LONGEST_SECONDS}"),
                    );
                }
            }
        }
    }
    if c.auto_approve_enabled && conditions.is_empty() {
        errs.add(
            "auto_approve_conditions",
            "auto-approval needs at least one condition (or `auto_approve_enabled: false`)",
        );
    }
    // What the gateway will match: the shared compiler checks the resource
    // pattern, the action and the time conditions exactly as it does for
    // policy.
    let src = PolicySource {
        permissions: vec![PermissionSource {
            id: "chain".to_owned(),
            effect: Default::default(),
            resource_type: c.resource_type.clone(),
            resource: c.resource_pattern.clone(),
            actions: vec![c.action.clone()],
            conditions: time_conditions,
            tenant_scope: Default::default(),
            fields: Default::default(),
            description: String::new(),
            mode: Default::default(),
        }],
        ..PolicySource::default()
    };
    if let Err(list) = sentinel_policy::compile(&src) {
        for e in list {
            let field = match e.location.field {
                Some("resource") => "resource_pattern",
                Some("actions") => "action",
                Some("conditions") => "auto_approve_conditions",
                Some(f) => f,
                None => "body",
            };
            errs.add(field, e.message);
        }
    }
    errs.into_result()
}

pub async fn get_chain(tx: &mut Tx, tenant: Uuid, id: Uuid) -> ApiResult<ApprovalChain> {
    sqlx::query_as(&format!(
        "SELECT {COLS} FROM sentinel.approval_chains WHERE id = $1 AND tenant_id = $2"
    ))
    .bind(id)
    .bind(tenant)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(ApiError::NotFound)
}

async fn write(
    tx: &mut Tx,
    tenant: Uuid,
    id: Option<Uuid>,
    c: &ChainSpec,
) -> ApiResult<ApprovalChain> {
    validate(tx, tenant, c).await?;
    let sql = match id {
        None => format!(
            "INSERT INTO sentinel.approval_chains
                (tenant_id, name, description, resource_type, resource_pattern, action, levels,
                 default_duration_seconds, max_duration_seconds, auto_approve_enabled,
                 auto_approve_conditions, is_active)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING {COLS}"
        ),
        Some(_) => format!(
            "UPDATE sentinel.approval_chains SET name = $2, description = $3, resource_type = $4,
                    resource_pattern = $5, action = $6, levels = $7, default_duration_seconds = $8,
                    max_duration_seconds = $9, auto_approve_enabled = $10,
                    auto_approve_conditions = $11, is_active = $12
              WHERE tenant_id = $1 AND id = $13 RETURNING {COLS}"
        ),
    };
    let row: Option<ApprovalChain> = sqlx::query_as(&sql)
        .bind(tenant)
        .bind(&c.name)
        .bind(&c.description)
        .bind(&c.resource_type)
        .bind(&c.resource_pattern)
        .bind(&c.action)
        .bind(&c.levels)
        .bind(c.default_duration_seconds)
        .bind(c.max_duration_seconds)
        .bind(c.auto_approve_enabled)
        .bind(&c.auto_approve_conditions)
        .bind(c.is_active)
        .bind(id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(|e| {
            let dup = e
                .as_database_error()
                .and_then(|d| d.constraint())
                .is_some_and(|c| c == "approval_chains_tenant_name_key");
            if dup {
                FieldErrors::one(
                    "name",
                    "a chain with this name already exists in the tenant",
                )
            } else {
                ApiError::from(e)
            }
        })?;
    row.ok_or(ApiError::NotFound)
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(spec): Json<ChainSpec>,
) -> ApiResult<(StatusCode, axum::Json<ApprovalChain>)> {
    require(&caller, Right::Admin)?;
    let mut tx = state.begin(caller.ctx()).await?;
    let c = write(&mut tx, caller.target, None, &spec).await?;
    tx.commit().await?;
    Ok(created(c))
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(p): Json<ChainPatch>,
) -> ApiResult<axum::Json<ApprovalChain>> {
    require(&caller, Right::Admin)?;
    let mut tx = state.begin(caller.ctx()).await?;
    let cur = get_chain(&mut tx, caller.target, id).await?;
    let spec = ChainSpec {
        name: p.name.unwrap_or(cur.name),
        description: p.description.unwrap_or(cur.description),
        resource_type: p.resource_type.unwrap_or(cur.resource_type),
        resource_pattern: p.resource_pattern.unwrap_or(cur.resource_pattern),
        action: p.action.unwrap_or(cur.action),
        levels: p.levels.unwrap_or(cur.levels),
        default_duration_seconds: p
            .default_duration_seconds
            .unwrap_or(cur.default_duration_seconds),
        max_duration_seconds: p.max_duration_seconds.unwrap_or(cur.max_duration_seconds),
        auto_approve_enabled: p.auto_approve_enabled.unwrap_or(cur.auto_approve_enabled),
        auto_approve_conditions: p
            .auto_approve_conditions
            .unwrap_or(cur.auto_approve_conditions),
        is_active: p.is_active.unwrap_or(cur.is_active),
    };
    let c = write(&mut tx, caller.target, Some(id), &spec).await?;
    tx.commit().await?;
    Ok(axum::Json(c))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    pub sort: Option<String>,
    pub resource_type: Option<String>,
    pub action: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListParams>,
) -> ApiResult<axum::Json<ListResponse<ApprovalChain>>> {
    require(&caller, Right::Request)?;
    let page = Page::parse(
        q.limit,
        q.cursor.as_deref(),
        q.sort.as_deref(),
        &[CREATED_AT, crate::pagination::text("name")],
    )?;
    rows::list_page::<ApprovalChain>(
        &state,
        &caller,
        &page,
        format!("SELECT {COLS} FROM sentinel.approval_chains WHERE tenant_id = "),
        |qb| {
            filter_eq(qb, "resource_type", q.resource_type);
            filter_eq(qb, "action", q.action);
        },
    )
    .await
}

async fn fetch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<ApprovalChain>> {
    require(&caller, Right::Request)?;
    let mut tx = state.begin(caller.ctx()).await?;
    let c = get_chain(&mut tx, caller.target, id).await?;
    tx.commit().await?;
    Ok(axum::Json(c))
}

async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    require(&caller, Right::Admin)?;
    rows::delete_row(&state, &caller, "approval_chains", id).await
}
