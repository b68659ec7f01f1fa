//! `/api/v1/ai/optimizer`: run the permission optimizer over a window,
//! list its findings, and let an admin apply or dismiss one
//! (docs/ai.md). Findings live in `sentinel.permission_optimizations`.
//!
//! Applying runs the finding's stored calls through this same application,
//! as the admin who applies, so every change is validated, scope-checked,
//! audited and published like the same call made by hand. Nothing else
//! ever changes policy here.

use crate::ai::optimizer::{self, ProposedCall, Settings};
use crate::ai::{self, facts};
use crate::auth::Caller;
use crate::db;
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::extract::{MaybeJson, Path, Query};
use crate::openapi::routes::{doc, Routes};
use crate::state::AppState;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use uuid::Uuid;

pub fn router() -> Routes {
    Routes::new()
        .post(
            "/run",
            run,
            doc(
                "ai:read",
                "Run the permission optimizer over a window of the audit trail; stores and answers the open findings (changes no policy)",
            )
            .optional_body::<OptimizerRunRequest>()
            .ok::<OptimizerRunReport>()
            .error(404, "RESOURCE_NOT_FOUND: AI features turned off")
            .error(503, "POLICY_UNAVAILABLE: the stored policy does not compile"),
        )
        .get(
            "/findings",
            list,
            doc("ai:read", "List optimizer findings (filters: status, kind)")
                .ok::<OptimizerFindingList>()
                .error(404, "RESOURCE_NOT_FOUND: AI features turned off"),
        )
        .get(
            "/findings/{id}",
            fetch,
            doc("ai:read", "Get one optimizer finding").ok::<OptimizerFinding>(),
        )
        .post(
            "/findings/{id}/apply",
            apply,
            doc(
                "ai:apply",
                "Apply an open finding: run its proposed calls through the normal handlers as the caller (who also needs their scopes), then mark it applied",
            )
            .ok::<OptimizerFinding>(),
        )
        .post(
            "/findings/{id}/dismiss",
            dismiss,
            doc("ai:apply", "Dismiss an open finding (later runs keep it dismissed)")
                .optional_body::<DismissFinding>()
                .ok::<OptimizerFinding>(),
        )
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OptimizerRunRequest {
    /// Days of audit trail to read, 1-3660 (default: the `ai_window_days` setting, 90).
    #[serde(default)]
    pub window_days: Option<i64>,
}

/// A stored finding.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct OptimizerFinding {
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// unused_permission, unused_role, over_privileged, near_duplicate_roles, role_mining, sod_conflict
    pub kind: String,
    pub fingerprint: String,
    /// open, applied or dismissed
    pub status: String,
    pub summary: String,
    #[schema(value_type = Object)]
    pub evidence: Value,
    /// The admin-API calls that carry the finding out, in order.
    #[schema(value_type = Vec<ProposedCall>)]
    pub proposal: Value,
    pub window_from: DateTime<Utc>,
    pub window_to: DateTime<Utc>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub decided_by: Option<Uuid>,
    pub decided_at: Option<DateTime<Utc>>,
    pub decision_note: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub applied_result: Option<Value>,
}

const COLS: &str =
    "id, tenant_id, kind, fingerprint, status, summary, evidence, proposal, window_from, window_to,
    first_seen, last_seen, decided_by, decided_at, decision_note, applied_result";

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OptimizerFindingList {
    pub items: Vec<OptimizerFinding>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OptimizerRunReport {
    pub tenant_id: Uuid,
    pub window_from: DateTime<Utc>,
    pub window_to: DateTime<Utc>,
    /// Time the analysis took (load, analyze, store), milliseconds.
    pub duration_ms: f64,
    /// Findings of this run, by kind.
    pub counts: BTreeMap<String, usize>,
    /// Every open finding of the tenant after the run.
    pub findings: Vec<OptimizerFinding>,
}

/// The settings a run uses: the tenant's `settings.ai_sod_rules` (a list
/// of `{name, a: [type, action], b: [type, action]}`) replace the
/// configured rules.
async fn settings(tx: &mut db::Tx, state: &AppState, tenant: Uuid) -> ApiResult<Settings> {
    let own: Option<Value> =
        sqlx::query_scalar("SELECT settings->'ai_sod_rules' FROM sentinel.tenants WHERE id = $1")
            .bind(tenant)
            .fetch_optional(&mut **tx)
            .await?
            .flatten();
    let sod_rules = match own {
        Some(v) => serde_json::from_value(v).unwrap_or_else(|e| {
            tracing::warn!(%tenant, error = %e, "tenant `ai_sod_rules` unreadable; using the configured rules");
            state.config.ai_sod_rules.clone()
        }),
        None => state.config.ai_sod_rules.clone(),
    };
    Ok(Settings {
        jaccard_threshold: state.config.ai_jaccard_threshold,
        role_mining_min_users: state.config.ai_role_mining_min_users,
        sod_rules,
    })
}

/// Runs the optimizer for `tenant` over the `days` before `now` and stores
/// the findings: a finding seen before is refreshed (a dismissed one stays
/// dismissed), open findings no longer found are removed, applied ones stay
/// as history. Changes no policy.
pub async fn run_for(
    state: &AppState,
    tenant: Uuid,
    days: i64,
    now: DateTime<Utc>,
) -> ApiResult<OptimizerRunReport> {
    let started = std::time::Instant::now();
    let from = now - Duration::days(days);
    let mut tx = ai::begin_analysis(&state.pool, tenant).await?;
    // One run per tenant at a time: a run removes the open findings it did
    // not see, which must not be another run's.
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtextextended('sentinel.ai.optimizer:' || $1, 0))",
    )
    .bind(tenant.to_string())
    .execute(&mut *tx)
    .await?;
    let s = settings(&mut tx, state, tenant).await?;
    let f = facts::load(&mut tx, tenant, from, now).await?;
    let found = optimizer::analyze(&f, &s);
    let mut counts: BTreeMap<String, usize> = optimizer::KINDS
        .iter()
        .map(|k| ((*k).to_owned(), 0))
        .collect();
    let run_at: DateTime<Utc> = sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(&mut *tx)
        .await?;
    for x in &found {
        *counts.entry(x.kind.to_owned()).or_default() += 1;
        state
            .metrics
            .ai_optimizer_findings
            .with_label_values(&[x.kind])
            .inc();
        sqlx::query(
            "INSERT INTO sentinel.permission_optimizations
                    (tenant_id, kind, fingerprint, summary, evidence, proposal, window_from, window_to, last_seen)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (tenant_id, fingerprint) WHERE status <> 'applied'
             DO UPDATE SET summary = EXCLUDED.summary, evidence = EXCLUDED.evidence,
                           proposal = EXCLUDED.proposal, window_from = EXCLUDED.window_from,
                           window_to = EXCLUDED.window_to, last_seen = EXCLUDED.last_seen",
        )
        .bind(tenant)
        .bind(x.kind)
        .bind(&x.fingerprint)
        .bind(&x.summary)
        .bind(&x.evidence)
        .bind(serde_json::to_value(&x.proposal).map_err(ApiError::internal)?)
        .bind(from)
        .bind(now)
        .bind(run_at)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "DELETE FROM sentinel.permission_optimizations
          WHERE tenant_id = $1 AND status = 'open' AND last_seen < $2",
    )
    .bind(tenant)
    .bind(run_at)
    .execute(&mut *tx)
    .await?;
    let findings: Vec<OptimizerFinding> = sqlx::query_as(&format!(
        "SELECT {COLS} FROM sentinel.permission_optimizations
          WHERE tenant_id = $1 AND status = 'open' ORDER BY kind, fingerprint"
    ))
    .bind(tenant)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let secs = started.elapsed().as_secs_f64();
    state.metrics.ai_optimizer_runs_total.inc();
    state.metrics.ai_optimizer_run_seconds.observe(secs);
    Ok(OptimizerRunReport {
        tenant_id: tenant,
        window_from: from,
        window_to: now,
        duration_ms: secs * 1000.0,
        counts,
        findings,
    })
}

async fn run(
    State(state): State<AppState>,
    caller: Caller,
    MaybeJson(req): MaybeJson<OptimizerRunRequest>,
) -> ApiResult<axum::Json<OptimizerRunReport>> {
    ai::require_read(&state, &caller)?;
    let days = req
        .unwrap_or_default()
        .window_days
        .unwrap_or(state.config.ai_window_days);
    if !(1..=3660).contains(&days) {
        return Err(FieldErrors::one("window_days", "must be 1-3660"));
    }
    run_for(&state, caller.target, days, Utc::now())
        .await
        .map(axum::Json)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    pub status: Option<String>,
    pub kind: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListParams>,
) -> ApiResult<axum::Json<OptimizerFindingList>> {
    ai::require_read(&state, &caller)?;
    let mut errs = FieldErrors::new();
    if q.status
        .as_deref()
        .is_some_and(|s| !["open", "applied", "dismissed"].contains(&s))
    {
        errs.add("status", "must be `open`, `applied` or `dismissed`");
    }
    if q.kind
        .as_deref()
        .is_some_and(|k| !optimizer::KINDS.contains(&k))
    {
        errs.add(
            "kind",
            format!("must be one of {}", optimizer::KINDS.join(", ")),
        );
    }
    errs.into_result()?;
    let mut tx = state.begin(caller.ctx()).await?;
    let items: Vec<OptimizerFinding> = sqlx::query_as(&format!(
        "SELECT {COLS} FROM sentinel.permission_optimizations
          WHERE tenant_id = $1 AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR kind = $3)
          ORDER BY kind, fingerprint, created_at LIMIT 1000"
    ))
    .bind(caller.target)
    .bind(q.status)
    .bind(q.kind)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(axum::Json(OptimizerFindingList { items }))
}

async fn get_finding(
    tx: &mut db::Tx,
    tenant: Uuid,
    id: Uuid,
    lock: bool,
) -> ApiResult<OptimizerFinding> {
    sqlx::query_as(&format!(
        "SELECT {COLS} FROM sentinel.permission_optimizations WHERE id = $1 AND tenant_id = $2{}",
        if lock { " FOR UPDATE" } else { "" }
    ))
    .bind(id)
    .bind(tenant)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(ApiError::NotFound)
}

async fn fetch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<OptimizerFinding>> {
    ai::require_read(&state, &caller)?;
    let mut tx = state.begin(caller.ctx()).await?;
    let f = get_finding(&mut tx, caller.target, id, false).await?;
    tx.commit().await?;
    Ok(axum::Json(f))
}

/// Only an open finding can be applied or dismissed.
fn ensure_open(f: &OptimizerFinding) -> ApiResult<()> {
    if f.status == "open" {
        Ok(())
    } else {
        Err(FieldErrors::one(
            "status",
            format!("the finding is `{}`, not open", f.status),
        ))
    }
}

/// A call with `{{N.id}}` replaced by the `id` the proposal's call `N`
/// answered (a role created by call 0, assigned by call 1).
fn resolve(c: &ProposedCall, ids: &[Option<String>]) -> ApiResult<ProposedCall> {
    let mut text = serde_json::to_string(c).map_err(ApiError::internal)?;
    for (i, id) in ids.iter().enumerate() {
        let mark = format!("{{{{{i}.id}}}}");
        if text.contains(&mark) {
            let id = id.as_deref().ok_or_else(|| {
                ApiError::internal(anyhow::anyhow!("proposal call {i} answered no id"))
            })?;
            text = text.replace(&mark, id);
        }
    }
    serde_json::from_str(&text).map_err(ApiError::internal)
}

/// One proposed call, made through the whole application (routing,
/// extractors, scope checks, audit) with the applying admin's credential.
async fn dispatch(
    state: &AppState,
    headers: &HeaderMap,
    c: &ProposedCall,
) -> ApiResult<(u16, Value)> {
    use tower::ServiceExt;
    // INVARIANT: a proposal only ever calls this API (stored by the
    // analysis, never by a client); checked again here.
    if !c.path.starts_with("/api/v1/") || c.path.starts_with("/api/v1/ai/") {
        return Err(ApiError::internal(anyhow::anyhow!(
            "stored proposal names a path outside the admin API: {}",
            c.path
        )));
    }
    let method = axum::http::Method::from_bytes(c.method.as_bytes()).map_err(ApiError::internal)?;
    let mut b = axum::http::Request::builder().method(method).uri(&c.path);
    for h in ["authorization", "x-tenant-id"] {
        if let Some(v) = headers.get(h) {
            b = b.header(h, v);
        }
    }
    let body = match &c.body {
        Some(v) => {
            b = b.header("content-type", "application/json");
            axum::body::Body::from(serde_json::to_vec(v).map_err(ApiError::internal)?)
        }
        None => axum::body::Body::empty(),
    };
    let req = b.body(body).map_err(ApiError::internal)?;
    let resp = crate::app(state.clone())
        .oneshot(req)
        .await
        .map_err(ApiError::internal)?;
    let status = resp.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .map_err(ApiError::internal)?
        .to_bytes();
    let v = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    };
    Ok((status, v))
}

async fn apply(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
) -> ApiResult<Response> {
    ai::require_apply(&state, &caller)?;
    let mut tx = state.begin(caller.ctx()).await?;
    // The row lock makes two admins applying at once run the calls once.
    let f = get_finding(&mut tx, caller.target, id, true).await?;
    ensure_open(&f)?;
    let calls: Vec<ProposedCall> =
        serde_json::from_value(f.proposal.clone()).map_err(ApiError::internal)?;
    if calls.is_empty() {
        return Err(FieldErrors::one(
            "proposal",
            "this finding has no call that carries it out; see its summary",
        ));
    }
    let mut results = Vec::new();
    let mut ids: Vec<Option<String>> = Vec::new();
    for c in &calls {
        let c = &resolve(c, &ids)?;
        let (status, answer) = dispatch(&state, &headers, c).await?;
        ids.push(answer["id"].as_str().map(str::to_owned));
        results
            .push(json!({"method": c.method, "path": c.path, "status": status, "answer": answer}));
        if !(200..300).contains(&status) {
            // Calls before this one took effect (each audited); the finding
            // stays open with what happened, and the caller gets the answer
            // that stopped it.
            sqlx::query(
                "UPDATE sentinel.permission_optimizations SET applied_result = $2 WHERE id = $1",
            )
            .bind(id)
            .bind(json!({"complete": false, "calls": results}))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            let code = axum::http::StatusCode::from_u16(status)
                .unwrap_or(axum::http::StatusCode::UNPROCESSABLE_ENTITY);
            return Ok((code, axum::Json(answer)).into_response());
        }
    }
    let done: OptimizerFinding = sqlx::query_as(&format!(
        "UPDATE sentinel.permission_optimizations
            SET status = 'applied', decided_by = $2, decided_at = now(), applied_result = $3
          WHERE id = $1 RETURNING {COLS}"
    ))
    .bind(id)
    .bind(caller.user_id)
    .bind(json!({"complete": true, "calls": results}))
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    state
        .metrics
        .ai_optimizer_decisions
        .with_label_values(&["applied"])
        .inc();
    Ok(axum::Json(done).into_response())
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DismissFinding {
    /// Why (kept with the finding), at most 1000 characters.
    #[serde(default)]
    pub note: Option<String>,
}

async fn dismiss(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    MaybeJson(req): MaybeJson<DismissFinding>,
) -> ApiResult<Response> {
    let note = req.unwrap_or_default().note;
    if note.as_ref().is_some_and(|n| n.chars().count() > 1000) {
        return Err(FieldErrors::one("note", "must be at most 1000 characters"));
    }
    ai::require_apply(&state, &caller)?;
    let mut tx = state.begin(caller.ctx()).await?;
    let f = get_finding(&mut tx, caller.target, id, true).await?;
    ensure_open(&f)?;
    let done: OptimizerFinding = sqlx::query_as(&format!(
        "UPDATE sentinel.permission_optimizations
            SET status = 'dismissed', decided_by = $2, decided_at = now(), decision_note = $3
          WHERE id = $1 RETURNING {COLS}"
    ))
    .bind(id)
    .bind(caller.user_id)
    .bind(note)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    state
        .metrics
        .ai_optimizer_decisions
        .with_label_values(&["dismissed"])
        .inc();
    Ok(axum::Json(done).into_response())
}
