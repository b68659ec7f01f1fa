//! `/api/v1/access-grants` (the time-bound grants approved requests made:
//! one's own, or every grant of the tenant for approvals:admin; revocation)
//! and `/api/v1/approval-delegations` (an approver names a delegate for a
//! time window). A grant row is policy: its writes mark the tenant's shard
//! dirty, and the publisher ships it to the gateways like any policy write.

use super::notify::{self, Subject};
use super::{require, Right};
use crate::auth::Caller;
use crate::domain::rows;
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::extract::{Json, Path, Query};
use crate::openapi::routes::{doc, Routes};
use crate::pagination::{filter_eq, ListResponse, Page, CREATED_AT};
use crate::routes::created;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

pub fn grants_router() -> Routes {
    Routes::new()
        .get(
            "/",
            list_grants,
            doc(
                "approvals:request",
                "Own grants; `all=true`: every grant of the tenant (approvals:admin)",
            )
            .list::<AccessGrant>(),
        )
        .post(
            "/{id}/revoke",
            revoke,
            doc(
                "approvals:admin",
                "Revoke a grant (gateways deny again within a second)",
            )
            .ok::<AccessGrant>(),
        )
}

pub fn delegations_router() -> Routes {
    Routes::new()
        .post(
            "/",
            delegate,
            doc(
                "approvals:decide",
                "Name a delegate who decides in the caller's place for a time window",
            )
            .body::<NewDelegation>()
            .created::<Delegation>(),
        )
        .get(
            "/",
            list_delegations,
            doc(
                "approvals:decide",
                "Delegations the caller gave or received (approvals:admin: all)",
            )
            .list::<Delegation>(),
        )
        .delete(
            "/{id}",
            end_delegation,
            doc("approvals:decide", "Withdraw a delegation one gave").no_content(),
        )
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AccessGrant {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub request_id: Option<Uuid>,
    pub principal_id: Uuid,
    pub resource_type: String,
    pub resource_id: String,
    pub actions: Vec<String>,
    pub approval_chain: String,
    pub expires_at: DateTime<Utc>,
    /// `active`, `revoked` or `expired`.
    pub status: String,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}
crate::sortable!(AccessGrant);

const GRANT_COLS: &str =
    "id, tenant_id, request_id, principal_id, resource_type, resource_id, actions,
    approval_chain, expires_at, status, revoked_at, revoked_by, created_at, updated_at";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantParams {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    pub all: Option<bool>,
    pub status: Option<String>,
}

async fn list_grants(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<GrantParams>,
) -> ApiResult<axum::Json<ListResponse<AccessGrant>>> {
    require(&caller, Right::Request)?;
    let all = q.all.unwrap_or(false);
    if all {
        require(&caller, Right::Admin)?;
    }
    let page = Page::parse(q.limit, q.cursor.as_deref(), None, &[CREATED_AT])?;
    let me = caller.user_id;
    rows::list_page::<AccessGrant>(
        &state,
        &caller,
        &page,
        format!("SELECT {GRANT_COLS} FROM sentinel.access_grants WHERE tenant_id = "),
        |qb| {
            if !all {
                filter_eq(qb, "principal_id", Some(me));
            }
            filter_eq(qb, "status", q.status);
        },
    )
    .await
}

async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<AccessGrant>> {
    require(&caller, Right::Admin)?;
    let mut tx = state.begin(caller.ctx()).await?;
    let g: AccessGrant = sqlx::query_as(&format!(
        "SELECT {GRANT_COLS} FROM sentinel.access_grants WHERE id = $1 AND tenant_id = $2 FOR UPDATE"
    ))
    .bind(id)
    .bind(caller.target)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(ApiError::NotFound)?;
    if g.status != "active" {
        return Err(FieldErrors::one(
            "status",
            format!("the grant is {}, not active", g.status),
        ));
    }
    let g: AccessGrant = sqlx::query_as(&format!(
        "UPDATE sentinel.access_grants SET status = 'revoked', revoked_at = now(), revoked_by = $2
          WHERE id = $1 RETURNING {GRANT_COLS}"
    ))
    .bind(id)
    .bind(caller.user_id)
    .fetch_one(&mut *tx)
    .await?;
    announce(&mut tx, &g, "access_grant.revoked").await?;
    tx.commit().await?;
    Ok(axum::Json(g))
}

/// Queues the notification of a grant's end (revoked or expired).
pub async fn announce(
    conn: &mut sqlx::PgConnection,
    g: &AccessGrant,
    event: &str,
) -> Result<(), sqlx::Error> {
    let action = g.actions.first().map(String::as_str).unwrap_or("");
    notify::emit(
        conn,
        event,
        &Subject {
            tenant: g.tenant_id,
            request: g.request_id.unwrap_or(g.id),
            requester: g.principal_id,
            chain: &g.approval_chain,
            resource: &g.resource_id,
            action,
            level: 0,
        },
        json!({"grant_id": g.id, "expires_at": g.expires_at, "revoked_by": g.revoked_by}),
    )
    .await
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Delegation {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub delegator_id: Uuid,
    pub delegate_id: Uuid,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub reason: String,
    pub created_at: DateTime<Utc>,
}
crate::sortable!(Delegation);

const DELEGATION_COLS: &str =
    "id, tenant_id, delegator_id, delegate_id, starts_at, ends_at, reason, created_at";

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDelegation {
    pub delegate_id: Uuid,
    /// Default: now.
    #[serde(default)]
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: DateTime<Utc>,
    #[serde(default)]
    pub reason: Option<String>,
}

async fn delegate(
    State(state): State<AppState>,
    caller: Caller,
    Json(d): Json<NewDelegation>,
) -> ApiResult<(StatusCode, axum::Json<Delegation>)> {
    require(&caller, Right::Decide)?;
    if caller.target != caller.tenant_id {
        return Err(ApiError::denied("delegations are made in one's own tenant"));
    }
    let starts = d.starts_at.unwrap_or_else(Utc::now);
    let mut errs = FieldErrors::new();
    if d.delegate_id == caller.user_id {
        errs.add("delegate_id", "one cannot delegate to oneself");
    }
    if d.ends_at <= starts {
        errs.add("ends_at", "must be after `starts_at`");
    }
    if d.ends_at > starts + chrono::Duration::seconds(super::model::LONGEST_SECONDS) {
        errs.add("ends_at", "a delegation lasts at most 30 days");
    }
    let reason = d.reason.unwrap_or_default();
    if reason.chars().count() > 500 {
        errs.add("reason", "must be at most 500 characters");
    }
    errs.into_result()?;
    let mut tx = state.begin(caller.ctx()).await?;
    let ok: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sentinel.users
                         WHERE id = $1 AND tenant_id = $2 AND is_active AND NOT is_service_account)",
    )
    .bind(d.delegate_id)
    .bind(caller.target)
    .fetch_one(&mut *tx)
    .await?;
    if !ok {
        return Err(FieldErrors::one(
            "delegate_id",
            "must be an active user (not a service account) of this tenant",
        ));
    }
    let row: Delegation = sqlx::query_as(&format!(
        "INSERT INTO sentinel.approval_delegations (tenant_id, delegator_id, delegate_id, starts_at, ends_at, reason)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {DELEGATION_COLS}"
    ))
    .bind(caller.target)
    .bind(caller.user_id)
    .bind(d.delegate_id)
    .bind(starts)
    .bind(d.ends_at)
    .bind(reason)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(created(row))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DelegationParams {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    pub all: Option<bool>,
}

async fn list_delegations(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<DelegationParams>,
) -> ApiResult<axum::Json<ListResponse<Delegation>>> {
    require(&caller, Right::Decide)?;
    let all = q.all.unwrap_or(false);
    if all {
        require(&caller, Right::Admin)?;
    }
    let page = Page::parse(q.limit, q.cursor.as_deref(), None, &[CREATED_AT])?;
    let me = caller.user_id;
    rows::list_page::<Delegation>(
        &state,
        &caller,
        &page,
        format!("SELECT {DELEGATION_COLS} FROM sentinel.approval_delegations WHERE tenant_id = "),
        |qb| {
            if !all {
                qb.push(" AND (delegator_id = ");
                qb.push_bind(me);
                qb.push(" OR delegate_id = ");
                qb.push_bind(me);
                qb.push(")");
            }
        },
    )
    .await
}

async fn end_delegation(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    require(&caller, Right::Decide)?;
    let admin = super::allows(&caller, Right::Admin);
    let mut tx = state.begin(caller.ctx()).await?;
    let n = sqlx::query(
        "DELETE FROM sentinel.approval_delegations
          WHERE id = $1 AND tenant_id = $2 AND (delegator_id = $3 OR $4)",
    )
    .bind(id)
    .bind(caller.target)
    .bind(caller.user_id)
    .bind(admin)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n == 0 {
        return Err(ApiError::NotFound);
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
