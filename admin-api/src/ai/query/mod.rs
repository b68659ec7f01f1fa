//! Questions in plain language (`POST /api/v1/ai/query`, docs/ai.md): the
//! [`parser`] maps a question to a [`typed::TypedQuery`] or to suggestions;
//! [`exec`] runs the typed query against one tenant with the shared
//! evaluator, the audit trail and the accounts table; [`ask`] ties them
//! together, checks scopes and tenants, and logs every question in
//! `sentinel.nlp_query_logs` (and what it produced in `ai_decision_logs`).
//!
//! What it never does: guess (an unparseable question or an unknown name
//! gets suggestions), answer about another tenant than the caller's (a
//! platform admin may name one), or change anything but its own logs.

pub mod exec;
pub mod log;
pub mod metrics;
pub mod parser;
pub mod suggest;
pub mod typed;

use crate::auth::Caller;
use crate::db::{self, TenantCtx};
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::state::AppState;
use chrono::Utc;
use exec::{Answer, Outcome, World};
use serde::{Deserialize, Serialize};
use serde_json::json;
use typed::TypedQuery;
use uuid::Uuid;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    /// The question, in English (at most 500 characters).
    pub question: String,
}

/// The answer to a question.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QueryResponse {
    pub question: String,
    /// Whether the question matched a template and every name in it resolved.
    pub understood: bool,
    /// The typed query the question was mapped to (what ran, when understood).
    pub query: Option<TypedQuery>,
    pub answer: Option<Answer>,
    /// Why it was not understood (no template matched, or a name is unknown).
    pub problem: Option<String>,
    /// Example questions of the nearest templates, or the names that exist.
    pub suggestions: Vec<String>,
    /// The row of `nlp_query_logs` that records this question.
    pub log_id: Uuid,
}

/// The tenant a question runs against: the one it names (platform admins:
/// any; everyone else: only their target tenant, so another tenant's name
/// answers as an unknown one), or the caller's target.
async fn tenant_of(
    state: &AppState,
    caller: &Caller,
    q: &TypedQuery,
) -> ApiResult<Result<(Uuid, String), (String, Vec<String>)>> {
    let named = match q {
        TypedQuery::WhoCan {
            tenant: Some(t), ..
        } => Some(t.to_lowercase()),
        _ => None,
    };
    let ctx = if named.is_some() && caller.is_platform_admin() {
        TenantCtx::All
    } else {
        caller.ctx()
    };
    let mut tx = state.begin(ctx).await?;
    let rows: Vec<(Uuid, String, String)> =
        sqlx::query_as("SELECT id, code, name FROM sentinel.tenants ORDER BY name")
            .fetch_all(&mut *tx)
            .await?;
    tx.commit().await?;
    let rows: Vec<_> = rows
        .into_iter()
        .filter(|(id, ..)| caller.is_platform_admin() || *id == caller.target)
        .collect();
    match named {
        None => Ok(rows
            .iter()
            .find(|(id, ..)| *id == caller.target)
            .map(|(id, _, name)| (*id, name.clone()))
            .ok_or_else(|| ("the caller's tenant is not readable".to_owned(), vec![]))),
        Some(n) => Ok(rows
            .iter()
            .find(|(_, code, name)| code.to_lowercase() == n || name.to_lowercase() == n)
            .map(|(id, _, name)| (*id, name.clone()))
            .ok_or_else(|| {
                (
                    format!("no tenant named `{n}`"),
                    rows.iter().map(|(_, _, name)| name.clone()).collect(),
                )
            })),
    }
}

/// Answers one question for `caller` (scope checks, tenant, run, log).
pub async fn ask(state: &AppState, caller: &Caller, question: &str) -> ApiResult<QueryResponse> {
    let started = std::time::Instant::now();
    if !caller.scopes.can_read_ai() {
        return Err(ApiError::denied("scope `ai:read` required"));
    }
    if question.trim().is_empty() {
        return Err(FieldErrors::one("question", "must not be empty"));
    }
    if question
        .chars()
        .any(|c| c.is_control() && !c.is_whitespace())
    {
        return Err(FieldErrors::one(
            "question",
            "must not contain control characters",
        ));
    }
    if question.chars().count() > parser::MAX_QUESTION {
        return Err(FieldErrors::one(
            "question",
            format!("must be at most {} characters", parser::MAX_QUESTION),
        ));
    }
    let parsed = parser::parse(question);
    let (tenant, outcome, query) = match parsed {
        Err(suggestions) => (
            caller.target,
            Err((
                "the question matches no template".to_owned(),
                suggestions.iter().map(|s| (*s).to_owned()).collect(),
            )),
            None,
        ),
        Ok(q) => {
            let scope = q.scope();
            if !caller.scopes.covers(scope) {
                return Err(ApiError::denied(format!("scope `{scope}` required")));
            }
            match tenant_of(state, caller, &q).await? {
                Err(e) => (caller.target, Err(e), Some(q)),
                Ok((tenant, name)) => {
                    let o = run(state, tenant, name, &q).await?;
                    (tenant, o, Some(q))
                }
            }
        }
    };
    let (answer, problem, suggestions) = match outcome {
        Ok(a) => (Some(a), None, Vec::new()),
        Err((p, s)) => (None, Some(p), s),
    };
    let result = match (&query, &answer) {
        (None, _) => "not_understood",
        (Some(_), None) => "unresolved",
        (Some(_), Some(_)) => "answered",
    };
    let elapsed = started.elapsed().as_secs_f64();
    let log_id = log(
        state,
        caller,
        tenant,
        question,
        query.as_ref(),
        answer.as_ref(),
        problem.as_deref(),
        elapsed,
    )
    .await?;
    state
        .metrics
        .ai_query
        .queries
        .with_label_values(&[result])
        .inc();
    state.metrics.ai_query.query_seconds.observe(elapsed);
    Ok(QueryResponse {
        question: question.to_owned(),
        understood: answer.is_some(),
        query,
        answer,
        problem,
        suggestions,
        log_id,
    })
}

type Ran = Result<Answer, (String, Vec<String>)>;

/// Loads the tenant's world and runs the query in one transaction.
async fn run(
    state: &AppState,
    tenant: Uuid,
    tenant_name: String,
    q: &TypedQuery,
) -> ApiResult<Ran> {
    let mut tx = db::begin(&state.pool, TenantCtx::One(tenant)).await?;
    let src = crate::snapshot::load_source(&mut tx)
        .await
        .map_err(ApiError::internal)?;
    let names: Vec<(Uuid, String)> = sqlx::query_as("SELECT id, name FROM sentinel.permissions")
        .fetch_all(&mut *tx)
        .await?;
    let snap = sentinel_policy::compile(&src).map_err(|errs| {
        tracing::error!(errors = ?errs, "stored policy does not compile");
        ApiError::PolicyUnavailable
    })?;
    let world = World {
        tenant,
        tenant_name,
        src,
        snap,
        permission_names: names.into_iter().map(|(i, n)| (i.to_string(), n)).collect(),
        now: Utc::now(),
    };
    let out = exec::run_db(&world, q, &mut tx).await?;
    tx.commit().await?;
    Ok(match out {
        Outcome::Answer(a) => Ok(a),
        Outcome::Unresolved(u) => Err((u.problem, u.candidates)),
    })
}

/// Records the question (`nlp_query_logs`) and what it produced
/// (`ai_decision_logs`) under the tenant it ran against.
#[allow(clippy::too_many_arguments)]
async fn log(
    state: &AppState,
    caller: &Caller,
    tenant: Uuid,
    question: &str,
    query: Option<&TypedQuery>,
    answer: Option<&Answer>,
    problem: Option<&str>,
    elapsed: f64,
) -> ApiResult<Uuid> {
    let query_json = query.map(|q| serde_json::to_value(q).unwrap_or_default());
    let mut tx = db::begin(&state.pool, TenantCtx::One(tenant)).await?;
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO sentinel.nlp_query_logs
             (tenant_id, user_id, question, understood, query, problem, answer_count, duration_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    )
    .bind(tenant)
    .bind(caller.user_id)
    .bind(question)
    .bind(answer.is_some())
    .bind(&query_json)
    .bind(problem)
    .bind(answer.map(|a| i32::try_from(a.count).unwrap_or(i32::MAX)))
    .bind(elapsed * 1000.0)
    .fetch_one(&mut *tx)
    .await?;
    log::decision_log(
        &mut tx,
        tenant,
        "nlp_query",
        caller.user_id,
        json!({"question": question, "log_id": id}),
        json!({"query": query_json, "summary": answer.map(|a| &a.summary),
               "count": answer.map(|a| a.count), "problem": problem}),
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}
