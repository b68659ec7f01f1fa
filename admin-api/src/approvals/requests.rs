//! `/api/v1/access-requests`: open a request (the body of the gateway's
//! `403 APPROVAL_REQUIRED`), the approver's inbox (`?assigned=me`), one's
//! own requests, approve / deny with a comment, cancel. Handlers parse,
//! check the scope and call [`super::workflow`].

use super::open::OpenRequest;
use super::workflow::{self, AccessRequest, Verdict, REQUEST_COLS, REQUEST_FROM};
use super::{record, require, Right};
use crate::auth::Caller;
use crate::db;
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::extract::{Json, MaybeJson, Path, Query};
use crate::openapi::routes::{doc, Routes};
use crate::pagination::{filter_eq, ListResponse, Page, CREATED_AT, MAX_LIMIT};
use crate::routes::created;
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
            open,
            doc(
                "approvals:request",
                "Ask for access (the body of a 403 APPROVAL_REQUIRED's `details.request_access`)",
            )
            .body::<OpenRequest>()
            .created::<AccessRequest>(),
        )
        .get(
            "/",
            list,
            doc(
                "approvals:request",
                "Own requests; `assigned=me`: the requests awaiting the caller's decision \
                 (approvals:decide); `all=true`: every request of the tenant (approvals:admin)",
            )
            .list::<AccessRequest>(),
        )
        .get(
            "/{id}",
            fetch,
            doc(
                "approvals:request",
                "A request with its decisions (its requester, its approvers, approvals:admin)",
            ),
        )
        .post(
            "/{id}/approve",
            approve,
            doc("approvals:decide", "Approve the current level")
                .optional_body::<Decision>()
                .ok::<AccessRequest>(),
        )
        .post(
            "/{id}/deny",
            deny,
            doc("approvals:decide", "Deny the request")
                .optional_body::<Decision>()
                .ok::<AccessRequest>(),
        )
        .post(
            "/{id}/cancel",
            cancel,
            doc("approvals:request", "Cancel one's own pending request").ok::<AccessRequest>(),
        )
}

/// Requests are made by a user of the tenant, in their own tenant.
fn own_tenant(caller: &Caller) -> ApiResult<()> {
    if caller.target == caller.tenant_id {
        Ok(())
    } else {
        Err(ApiError::denied(
            "access requests are made and decided in one's own tenant",
        ))
    }
}

async fn open(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<OpenRequest>,
) -> ApiResult<(StatusCode, axum::Json<AccessRequest>)> {
    require(&caller, Right::Request)?;
    own_tenant(&caller)?;
    let mut tx = state.begin(caller.ctx()).await?;
    let (r, outcomes) =
        super::open::open(&mut tx, caller.target, caller.user_id, &body, Utc::now()).await?;
    tx.commit().await?;
    record(&state, &outcomes);
    Ok(created(r))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    #[serde(default)]
    pub comment: Option<String>,
}

async fn decide(
    state: AppState,
    caller: Caller,
    id: Uuid,
    verdict: Verdict,
    body: Option<Decision>,
) -> ApiResult<axum::Json<AccessRequest>> {
    require(&caller, Right::Decide)?;
    own_tenant(&caller)?;
    let comment = body.and_then(|b| b.comment).unwrap_or_default();
    if comment.chars().count() > 2000 {
        return Err(FieldErrors::one(
            "comment",
            "must be at most 2000 characters",
        ));
    }
    let mut tx = state.begin(caller.ctx()).await?;
    let (r, outcomes) = workflow::decide(
        &mut tx,
        caller.target,
        id,
        caller.user_id,
        verdict,
        &comment,
    )
    .await?;
    tx.commit().await?;
    record(&state, &outcomes);
    Ok(axum::Json(r))
}

async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    MaybeJson(body): MaybeJson<Decision>,
) -> ApiResult<axum::Json<AccessRequest>> {
    decide(state, caller, id, Verdict::Approve, body).await
}

async fn deny(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    MaybeJson(body): MaybeJson<Decision>,
) -> ApiResult<axum::Json<AccessRequest>> {
    decide(state, caller, id, Verdict::Deny, body).await
}

async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<AccessRequest>> {
    require(&caller, Right::Request)?;
    let mut tx = state.begin(caller.ctx()).await?;
    let r = workflow::lock(&mut tx, caller.target, id).await?;
    if r.requester_id != caller.user_id {
        // Another's request: invisible unless one may see it anyway.
        return Err(if visible(&mut tx, &caller, &r).await? {
            ApiError::denied("only the requester may cancel a request")
        } else {
            ApiError::NotFound
        });
    }
    if !r.is_pending() {
        return Err(FieldErrors::one(
            "status",
            format!("the request is {}, not pending", r.status),
        ));
    }
    let next = super::model::transition(
        &r.levels(),
        r.level(),
        r.escalated,
        super::model::Event::Cancel,
    );
    let outcomes = workflow::apply(
        &mut tx,
        &r,
        next,
        json!({"cancelled_by": caller.user_id}),
        Utc::now(),
    )
    .await?;
    let r = workflow::get(&mut tx, caller.target, id).await?;
    tx.commit().await?;
    record(&state, &outcomes);
    Ok(axum::Json(r))
}

/// Whether the caller may see request `r`: its requester, an administrator,
/// someone who decided it, or someone who may decide it now.
async fn visible(tx: &mut db::Tx, caller: &Caller, r: &AccessRequest) -> ApiResult<bool> {
    if r.requester_id == caller.user_id || super::allows(caller, Right::Admin) {
        return Ok(true);
    }
    let decided: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sentinel.approval_decisions
                         WHERE request_id = $1 AND (approver_id = $2 OR on_behalf_of = $2))",
    )
    .bind(r.id)
    .bind(caller.user_id)
    .fetch_one(&mut **tx)
    .await?;
    Ok(decided
        || (super::allows(caller, Right::Decide)
            && workflow::decides_as(tx, r, caller.user_id).await?.is_some()))
}

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct DecisionRow {
    pub level: i16,
    pub approver_id: Uuid,
    pub on_behalf_of: Option<Uuid>,
    pub decision: String,
    pub comment: String,
    pub created_at: DateTime<Utc>,
}

async fn fetch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<Value>> {
    require(&caller, Right::Request)?;
    let mut tx = state.begin(caller.ctx()).await?;
    let r = workflow::get(&mut tx, caller.target, id).await?;
    if !visible(&mut tx, &caller, &r).await? {
        return Err(ApiError::NotFound);
    }
    let decisions: Vec<DecisionRow> = sqlx::query_as(
        "SELECT level, approver_id, on_behalf_of, decision, comment, created_at
           FROM sentinel.approval_decisions WHERE request_id = $1 ORDER BY created_at, id",
    )
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let mut v = serde_json::to_value(r).map_err(ApiError::internal)?;
    v["decisions"] = serde_json::to_value(decisions).map_err(ApiError::internal)?;
    Ok(axum::Json(v))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    pub sort: Option<String>,
    /// `me`: requests awaiting the caller's decision.
    pub assigned: Option<String>,
    /// Every request of the tenant (approvals:admin).
    pub all: Option<bool>,
    pub status: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListParams>,
) -> ApiResult<axum::Json<ListResponse<AccessRequest>>> {
    require(&caller, Right::Request)?;
    match q.assigned.as_deref() {
        None => {}
        Some("me") => return inbox(&state, &caller, q.limit).await,
        Some(_) => return Err(FieldErrors::one("assigned", "must be `me`")),
    }
    if let Some(s) = &q.status {
        if !["pending", "approved", "denied", "cancelled", "expired"].contains(&s.as_str()) {
            return Err(FieldErrors::one(
                "status",
                "must be pending, approved, denied, cancelled or expired",
            ));
        }
    }
    let all = q.all.unwrap_or(false);
    if all {
        require(&caller, Right::Admin)?;
    }
    let page = Page::parse(
        q.limit,
        q.cursor.as_deref(),
        q.sort.as_deref(),
        &[CREATED_AT],
    )?;
    let me = caller.user_id;
    crate::domain::rows::list_page::<AccessRequest>(
        &state,
        &caller,
        &page,
        // The page's tail orders by the bare column names: the chain's are
        // not selected under those names.
        format!("SELECT * FROM (SELECT {REQUEST_COLS} {REQUEST_FROM}) r WHERE tenant_id = "),
        |qb| {
            if !all {
                filter_eq(qb, "requester_id", Some(me));
            }
            filter_eq(qb, "status", q.status);
        },
    )
    .await
}

/// The pending requests of the tenant the caller may decide now (themselves
/// or for someone who delegated to them), oldest first.
async fn inbox(
    state: &AppState,
    caller: &Caller,
    limit: Option<i64>,
) -> ApiResult<axum::Json<ListResponse<AccessRequest>>> {
    require(caller, Right::Decide)?;
    let limit = limit.unwrap_or(MAX_LIMIT).clamp(1, MAX_LIMIT);
    let mut tx = state.begin(caller.ctx()).await?;
    let pending: Vec<AccessRequest> = sqlx::query_as(&format!(
        "SELECT {REQUEST_COLS} {REQUEST_FROM}
          WHERE r.tenant_id = $1 AND r.status = 'pending' AND r.requester_id <> $2
          ORDER BY r.created_at, r.id LIMIT 1000"
    ))
    .bind(caller.target)
    .bind(caller.user_id)
    .fetch_all(&mut *tx)
    .await?;
    let me = workflow::Decider::load(&mut tx, caller.user_id).await?;
    let mut items = Vec::new();
    for r in pending {
        if items.len() as i64 >= limit {
            break;
        }
        if workflow::decides_as_with(&mut tx, &r, &me).await?.is_some() {
            items.push(r);
        }
    }
    tx.commit().await?;
    Ok(axum::Json(ListResponse {
        items,
        next_cursor: None,
        limit,
    }))
}
