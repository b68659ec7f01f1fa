//! `POST /api/v1/policy/what-if` (docs/policy.md, "What-if on a proposed
//! change"): which of a tenant's recorded gateway decisions a proposed
//! change would flip, before anyone makes it.
//!
//! One read-only transaction under the caller's target tenant (row-level
//! security, as every tenant read): the tenant's shard source and the
//! global part are loaded by the loaders the publisher uses
//! (snapshot/source.rs) and compiled as a gateway compiles them
//! (`compile_global`, `compile_shard`): that is the current policy. The
//! [`change`] is applied to a copy of the shard source in memory and
//! compiled the same way: the proposed policy. The tenant's gateway events
//! in the window are then streamed from `audit_logs`, newest first, through
//! `sentinel_policy::whatif::Replay` with the current policy as baseline,
//! so only the change can flip a decision. The transaction is rolled back;
//! nothing is written, published or sent.

pub mod change;

use crate::auth::Caller;
use crate::db::{self, TenantCtx};
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::extract::Json;
use crate::openapi::routes::{doc, Routes};
use crate::scopes::Level;
use crate::snapshot;
use crate::state::AppState;
use axum::extract::State;
use change::Change;
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use sentinel_policy::bundle;
use sentinel_policy::source::PolicySource;
use sentinel_policy::whatif::{Recorded, Replay};
use serde::Deserialize;
use serde_json::{json, Value};
use std::borrow::Cow;
use uuid::Uuid;

/// Most events one what-if replays (and the default).
pub const MAX_EVENTS: i64 = 1_000_000;
/// The default window: the last 24 hours.
pub const DEFAULT_WINDOW_HOURS: i64 = 24;

/// The `/api/v1/policy` routes.
pub fn router() -> Routes {
    Routes::new().post(
        "/what-if",
        what_if,
        doc(
            "policy:read",
            "Replay the tenant's recorded gateway decisions (audit events in [since, until), newest \
             first, at most `limit`) through the current policy and through the policy a proposed \
             change would make; answer the decisions that would flip, grouped by rule and principal. \
             Nothing is written. Also needs `audit:read`.",
        )
        .body::<WhatIfRequest>()
        .json(report_schema())
        .error(
            422,
            "VALIDATION_ERROR: details name each bad field (`changes[2].role_id`: unknown id, a \
             change that changes nothing; `since`/`until`/`limit`); `changes` lists the compiler's \
             problems of a proposal that does not compile",
        )
        .error(503, "POLICY_UNAVAILABLE: the stored policy does not compile"),
    )
}

/// A proposed change and the window to replay.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WhatIfRequest {
    /// The operations, applied in order (1-100).
    pub changes: Vec<Change>,
    /// Oldest event replayed (inclusive, RFC 3339); default `until` − 24 h.
    #[serde(default)]
    pub since: Option<DateTime<Utc>>,
    /// End of the window (exclusive); default now.
    #[serde(default)]
    pub until: Option<DateTime<Utc>>,
    /// Most events replayed, newest first (1-1,000,000; default 1,000,000).
    #[serde(default)]
    pub limit: Option<i64>,
}

/// The answer: the CLI's `--json` report plus the request's frame.
fn report_schema() -> Value {
    let count = json!({"type": "integer", "minimum": 0});
    json!({
        "type": "object",
        "required": ["lines", "replayed", "flipped", "allow_to_deny", "deny_to_allow", "skipped",
                     "groups", "since", "until", "limit", "truncated", "changes", "elapsed_ms"],
        "properties": {
            "lines": {"type": "integer", "description": "events read"},
            "replayed": {"type": "integer", "description": "events decided by both policies"},
            "flipped": count,
            "allow_to_deny": count,
            "deny_to_allow": count,
            "skipped": {"type": "object", "additionalProperties": {"type": "integer"},
                        "description": "events not replayed, by cause"},
            "groups": {"type": "array", "items": {
                "type": "object",
                "required": ["flip", "rules", "reason", "count", "principals"],
                "properties": {
                    "flip": {"type": "string", "enum": ["allow -> deny", "deny -> allow"]},
                    "rules": {"type": "string", "description": "rule ids, comma-separated; `(none)`"},
                    "reason": {"type": "string", "description": "the proposed decision's reason"},
                    "count": {"type": "integer"},
                    "principals": {"type": "array", "items": {
                        "type": "object",
                        "required": ["id", "name", "count"],
                        "properties": {
                            "id": {"type": "string", "format": "uuid"},
                            "name": {"type": "string"},
                            "count": {"type": "integer"}
                        }
                    }}
                }
            }},
            "since": {"type": "string", "format": "date-time"},
            "until": {"type": "string", "format": "date-time"},
            "limit": {"type": "integer"},
            "truncated": {"type": "boolean", "description": "more events in the window than `limit`"},
            "changes": {"type": "integer"},
            "elapsed_ms": {"type": "number"}
        }
    })
}

/// The window, checked.
fn window(
    req: &WhatIfRequest,
    now: DateTime<Utc>,
) -> ApiResult<(DateTime<Utc>, DateTime<Utc>, i64)> {
    let until = req.until.unwrap_or(now);
    let since = req
        .since
        .unwrap_or(until - chrono::Duration::hours(DEFAULT_WINDOW_HOURS));
    let limit = req.limit.unwrap_or(MAX_EVENTS);
    let mut errs = FieldErrors::new();
    if since >= until {
        errs.add("until", "must be after `since`");
    }
    if !(1..=MAX_EVENTS).contains(&limit) {
        errs.add("limit", format!("must be 1-{MAX_EVENTS}"));
    }
    errs.into_result()?;
    Ok((since, until, limit))
}

/// Only a shard's lists, as the publisher compiles them.
fn shard_only(loaded: PolicySource) -> PolicySource {
    PolicySource {
        version: 0,
        principals: loaded.principals,
        roles: loaded.roles,
        groups: loaded.groups,
        permissions: loaded.permissions,
        grants: loaded.grants,
        ..PolicySource::default()
    }
}

/// One event, as much of it as a replay reads.
#[derive(sqlx::FromRow)]
struct Row {
    principal_id: Option<String>,
    resource: Option<String>,
    resource_id: Option<String>,
    action: Option<String>,
    method: Option<String>,
    client_ip: Option<String>,
    risk_score: Option<f64>,
    time: DateTime<Utc>,
    reason: Option<String>,
    rules: Vec<String>,
}

async fn what_if(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<WhatIfRequest>,
) -> ApiResult<axum::Json<Value>> {
    caller.require("policy", Level::Read)?;
    if !caller.scopes.can_read_audit() {
        return Err(ApiError::denied("scope `audit:read` required"));
    }
    let started = std::time::Instant::now();
    let (since, until, limit) = window(&req, Utc::now())?;
    let tenant = caller.target;
    let mut tx = db::begin(&state.pool, TenantCtx::One(tenant)).await?;
    // Nothing below may write: PostgreSQL refuses any write from here on.
    sqlx::query("SET TRANSACTION READ ONLY")
        .execute(&mut *tx)
        .await?;

    let global_src = bundle::global_part(
        &snapshot::load_global(&mut tx)
            .await
            .map_err(ApiError::internal)?,
    );
    let loaded = snapshot::load_shards(&mut tx, Some(&[tenant]))
        .await
        .map_err(ApiError::internal)?
        .remove(&tenant)
        .unwrap_or_default();
    let current_src = shard_only(loaded);
    let unavailable = |errs: Vec<sentinel_policy::CompileError>| {
        tracing::error!(errors = ?errs, %tenant, "stored policy does not compile");
        ApiError::PolicyUnavailable
    };
    let global = sentinel_policy::compile_global(&global_src).map_err(unavailable)?;
    let current =
        sentinel_policy::compile_shard(&global, tenant, 0, &current_src).map_err(unavailable)?;
    let mut proposed_src = current_src.clone();
    change::apply(&mut proposed_src, &req.changes).map_err(ApiError::Validation)?;
    let proposed =
        sentinel_policy::compile_shard(&global, tenant, 0, &proposed_src).map_err(|errs| {
            let mut fe = FieldErrors::new();
            for e in errs {
                fe.add(
                    "changes",
                    format!("the proposed policy does not compile: {e}"),
                );
            }
            ApiError::Validation(fe)
        })?;

    // The tenant's own gateway decisions (row-level security says the
    // same; the condition lets the (tenant_id, time, id) index walk).
    sqlx::query("SELECT set_config('enable_sort', 'off', true), set_config('jit', 'off', true)")
        .execute(&mut *tx)
        .await?;
    let tenant_text = tenant.to_string();
    let mut replay = Replay::new(&proposed, Some(&current));
    let mut fetched: i64 = 0;
    {
        let mut rows = sqlx::query_as::<_, Row>(
            "SELECT principal_id, resource, resource_id, action, method, client_ip, risk_score,
                    time, reason, rules
               FROM sentinel.audit_logs
              WHERE tenant_id = $1 AND source = 'gateway' AND time >= $2 AND time < $3
              ORDER BY time DESC, id DESC LIMIT $4",
        )
        .bind(tenant)
        .bind(since)
        .bind(until)
        .bind(limit + 1)
        .fetch(&mut *tx);
        while let Some(row) = rows.try_next().await? {
            fetched += 1;
            if fetched > limit {
                break;
            }
            replay.record(&recorded(&row, &tenant_text));
        }
    }
    tx.rollback().await?;
    let report = replay.finish();
    let name_of = |id: &Uuid| {
        [&proposed, &current]
            .iter()
            .find_map(|s| s.principal(id))
            .map_or_else(String::new, |p| p.name.to_string())
    };
    let mut out = report.to_json(name_of);
    if let Value::Object(m) = &mut out {
        m.insert(
            "since".into(),
            crate::audit::event::format_time(&since).into(),
        );
        m.insert(
            "until".into(),
            crate::audit::event::format_time(&until).into(),
        );
        m.insert("limit".into(), limit.into());
        m.insert("truncated".into(), (fetched > limit).into());
        m.insert("changes".into(), req.changes.len().into());
        m.insert(
            "elapsed_ms".into(),
            json!((started.elapsed().as_secs_f64() * 1e6).round() / 1e3),
        );
    }
    Ok(axum::Json(out))
}

/// The replay's view of a stored event (borrowed, nothing parsed twice).
fn recorded<'a>(row: &'a Row, tenant: &'a str) -> Recorded<'a> {
    let b = |s: &'a Option<String>| s.as_deref().map(Cow::Borrowed);
    Recorded {
        principal_id: b(&row.principal_id),
        tenant_id: Some(Cow::Borrowed(tenant)),
        resource: b(&row.resource),
        resource_id: b(&row.resource_id),
        action: b(&row.action),
        method: b(&row.method),
        client_ip: b(&row.client_ip),
        risk_score: row.risk_score,
        time: None,
        unix_time: Some(row.time.timestamp()),
        mfa: None,
        approval_chain: None,
        allowed: None,
        reason: b(&row.reason),
        rules: Some(
            row.rules
                .iter()
                .map(|r| Cow::Borrowed(r.as_str()))
                .collect(),
        ),
    }
}
