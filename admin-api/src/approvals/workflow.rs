//! The approval workflow over the database: opening a request, deciding it,
//! and applying a transition of [`model::transition`] (advance, grant,
//! deny, cancel, escalate, expire) together with its grant row and its
//! notification, inside the caller's transaction. Handlers and the worker
//! call these; nothing else writes requests or grants.
//!
//! Concurrency: every change of a request first takes its row lock
//! ([`lock`]), so two approvers deciding the same level at the same instant
//! are serialized, and the second sees the level the first left.

use super::model::{self, Event, LevelSpec, Next, Status, Who};
use super::notify::{self, Subject};
use crate::db::Tx;
use crate::error::{ApiError, ApiResult, FieldErrors};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use uuid::Uuid;

/// A request as stored, with its chain's name.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AccessRequest {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub chain_id: Uuid,
    /// The chain's name (what the route and the grant name).
    pub approval_chain: String,
    pub requester_id: Uuid,
    pub resource_type: String,
    pub resource_id: String,
    pub action: String,
    pub justification: String,
    pub duration_seconds: i32,
    #[schema(value_type = Vec<super::model::LevelSpec>)]
    pub levels: Value,
    /// `pending`, `approved`, `denied`, `cancelled` or `expired`.
    pub status: String,
    pub current_level: i16,
    pub level_started_at: DateTime<Utc>,
    pub escalated: bool,
    pub auto_approved: bool,
    pub grant_id: Option<Uuid>,
    pub decided_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}
crate::sortable!(AccessRequest);

pub const REQUEST_COLS: &str = "r.id, r.tenant_id, r.chain_id, c.name AS approval_chain, r.requester_id,
    r.resource_type, r.resource_id, r.action, r.justification, r.duration_seconds, r.levels, r.status,
    r.current_level, r.level_started_at, r.escalated, r.auto_approved, r.grant_id, r.decided_at,
    r.created_at, r.updated_at";

pub const REQUEST_FROM: &str =
    "FROM sentinel.access_requests r JOIN sentinel.approval_chains c ON c.id = r.chain_id";

impl AccessRequest {
    pub fn levels(&self) -> Vec<LevelSpec> {
        serde_json::from_value(self.levels.clone()).unwrap_or_default()
    }

    pub fn level(&self) -> u16 {
        u16::try_from(self.current_level).unwrap_or(0)
    }

    pub fn is_pending(&self) -> bool {
        self.status == Status::Pending.as_str()
    }

    pub(crate) fn subject(&self) -> Subject<'_> {
        Subject {
            tenant: self.tenant_id,
            request: self.id,
            requester: self.requester_id,
            chain: &self.approval_chain,
            resource: &self.resource_id,
            action: &self.action,
            level: self.level(),
        }
    }
}

/// A state change that committed, for the metrics (counted after commit).
#[derive(Debug, Clone)]
pub struct Outcome {
    pub action: String,
    /// `requested`, `level_approved`, `approved`, `denied`, `cancelled`,
    /// `escalated`, `expired`.
    pub status: &'static str,
    pub auto_approved: bool,
    /// Seconds from opening to the final decision (approved or denied).
    pub cycle_seconds: Option<f64>,
}

/// Reads a request of `tenant` (no lock).
pub async fn get(tx: &mut Tx, tenant: Uuid, id: Uuid) -> ApiResult<AccessRequest> {
    sqlx::query_as(&format!(
        "SELECT {REQUEST_COLS} {REQUEST_FROM} WHERE r.id = $1 AND r.tenant_id = $2"
    ))
    .bind(id)
    .bind(tenant)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(ApiError::NotFound)
}

/// Reads a request of `tenant` and holds its row lock until the transaction ends.
pub async fn lock(tx: &mut Tx, tenant: Uuid, id: Uuid) -> ApiResult<AccessRequest> {
    sqlx::query_as(&format!(
        "SELECT {REQUEST_COLS} {REQUEST_FROM} WHERE r.id = $1 AND r.tenant_id = $2 FOR UPDATE OF r"
    ))
    .bind(id)
    .bind(tenant)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(ApiError::NotFound)
}

/// The facts about `user` that decide whether they may approve.
pub async fn who(tx: &mut Tx, user: Uuid) -> ApiResult<Who> {
    let email: Option<Option<String>> =
        sqlx::query_scalar("SELECT email FROM sentinel.users WHERE id = $1")
            .bind(user)
            .fetch_optional(&mut **tx)
            .await?;
    let roles = crate::auth::effective_role_names(tx, user).await?;
    Ok(Who {
        id: user,
        email: email.flatten(),
        roles: roles.into_iter().collect(),
    })
}

/// A user's ABAC attributes (the manager attribute lives there).
pub async fn attributes(tx: &mut Tx, user: Uuid) -> ApiResult<BTreeMap<String, Value>> {
    let v: Option<Value> =
        sqlx::query_scalar("SELECT attributes FROM sentinel.users WHERE id = $1")
            .bind(user)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(match v {
        Some(Value::Object(m)) => m.into_iter().collect(),
        _ => BTreeMap::new(),
    })
}

/// Users who delegated their approvals to `delegate` for a window that holds now.
pub async fn delegators(tx: &mut Tx, delegate: Uuid) -> ApiResult<Vec<Uuid>> {
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT delegator_id FROM sentinel.approval_delegations
          WHERE delegate_id = $1 AND starts_at <= now() AND ends_at > now()
          ORDER BY delegator_id",
    )
    .bind(delegate)
    .fetch_all(&mut **tx)
    .await?)
}

/// Everyone who decided `request` so far, themselves or through a delegate.
async fn deciders(tx: &mut Tx, request: Uuid) -> ApiResult<Vec<Uuid>> {
    let rows: Vec<(Uuid, Option<Uuid>)> = sqlx::query_as(
        "SELECT approver_id, on_behalf_of FROM sentinel.approval_decisions WHERE request_id = $1",
    )
    .bind(request)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows
        .into_iter()
        .flat_map(|(a, b)| std::iter::once(a).chain(b))
        .collect())
}

/// The facts about a would-be decider read once: themselves and everyone
/// who delegated to them for a window that holds now (an inbox checks many
/// requests against the same facts).
pub struct Decider {
    pub me: Who,
    pub delegators: Vec<Who>,
}

impl Decider {
    pub async fn load(tx: &mut Tx, user: Uuid) -> ApiResult<Decider> {
        let me = who(tx, user).await?;
        let mut delegators_of = Vec::new();
        for d in delegators(tx, user).await? {
            delegators_of.push(who(tx, d).await?);
        }
        Ok(Decider {
            me,
            delegators: delegators_of,
        })
    }
}

/// In whose name `user` may decide the current level of `r` now: themselves
/// (`Some(None)`), a delegator (`Some(Some(id))`), or not at all (`None`).
/// Never the requester, never someone who decided already.
pub async fn decides_as(
    tx: &mut Tx,
    r: &AccessRequest,
    user: Uuid,
) -> ApiResult<Option<Option<Uuid>>> {
    if !r.is_pending() || user == r.requester_id {
        return Ok(None);
    }
    let d = Decider::load(tx, user).await?;
    decides_as_with(tx, r, &d).await
}

/// [`decides_as`] with the decider's facts read beforehand.
pub async fn decides_as_with(
    tx: &mut Tx,
    r: &AccessRequest,
    d: &Decider,
) -> ApiResult<Option<Option<Uuid>>> {
    let user = d.me.id;
    if !r.is_pending() || user == r.requester_id {
        return Ok(None);
    }
    let levels = r.levels();
    let Some(spec) = levels.get(usize::from(r.level()).wrapping_sub(1)) else {
        return Ok(None);
    };
    let done = deciders(tx, r.id).await?;
    if done.contains(&user) {
        return Ok(None);
    }
    let attrs = attributes(tx, r.requester_id).await?;
    if spec.may_decide(r.escalated, &d.me, &attrs) {
        return Ok(Some(None));
    }
    for del in &d.delegators {
        if del.id == r.requester_id || done.contains(&del.id) {
            continue;
        }
        if spec.may_decide(r.escalated, del, &attrs) {
            return Ok(Some(Some(del.id)));
        }
    }
    Ok(None)
}

/// Approve or deny: the caller's decision on the current level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Approve,
    Deny,
}

/// Records `user`'s decision on request `id` and applies what follows.
/// Refuses self-approval, a second decision, and anyone not an approver of
/// the current level (also the loser of a race whose level moved on).
pub async fn decide(
    tx: &mut Tx,
    tenant: Uuid,
    id: Uuid,
    user: Uuid,
    verdict: Verdict,
    comment: &str,
) -> ApiResult<(AccessRequest, Vec<Outcome>)> {
    let r = lock(tx, tenant, id).await?;
    if !r.is_pending() {
        return Err(FieldErrors::one(
            "status",
            format!("the request is {}, not pending", r.status),
        ));
    }
    if user == r.requester_id {
        return Err(ApiError::denied("you may not decide your own request"));
    }
    if deciders(tx, r.id).await?.contains(&user) {
        return Err(ApiError::denied("you already decided this request"));
    }
    let Some(on_behalf) = decides_as(tx, &r, user).await? else {
        return Err(ApiError::denied(
            "you are not an approver of this request's current level",
        ));
    };
    sqlx::query(
        "INSERT INTO sentinel.approval_decisions
            (tenant_id, request_id, level, approver_id, on_behalf_of, decision, comment)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(tenant)
    .bind(r.id)
    .bind(r.current_level)
    .bind(user)
    .bind(on_behalf)
    .bind(match verdict {
        Verdict::Approve => "approve",
        Verdict::Deny => "deny",
    })
    .bind(comment)
    .execute(&mut **tx)
    .await?;
    let event = match verdict {
        Verdict::Deny => Event::Deny,
        Verdict::Approve => {
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM sentinel.approval_decisions
                  WHERE request_id = $1 AND level = $2 AND decision = 'approve'",
            )
            .bind(r.id)
            .bind(r.current_level)
            .fetch_one(&mut **tx)
            .await?;
            Event::Approve {
                approvals: u32::try_from(n).unwrap_or(u32::MAX),
            }
        }
    };
    let next = model::transition(&r.levels(), r.level(), r.escalated, event);
    let extra = json!({"decided_by": user, "on_behalf_of": on_behalf, "comment": comment});
    let outcomes = apply(tx, &r, next, extra, Utc::now()).await?;
    Ok((get(tx, tenant, id).await?, outcomes))
}

/// Applies `next` to the locked pending request `r`: the row, the grant on
/// the last approval, the notifications. Returns what to count.
pub async fn apply(
    tx: &mut Tx,
    r: &AccessRequest,
    next: Next,
    extra: Value,
    now: DateTime<Utc>,
) -> ApiResult<Vec<Outcome>> {
    let mut out = Vec::new();
    let outcome = |status: &'static str, cycle: bool| Outcome {
        action: r.action.clone(),
        status,
        auto_approved: r.auto_approved,
        cycle_seconds: cycle
            .then(|| (now - r.created_at).num_milliseconds().max(0) as f64 / 1000.0),
    };
    let subject = r.subject();
    match next {
        Next::Wait => {}
        Next::Advance { level } => {
            sqlx::query(
                "UPDATE sentinel.access_requests
                    SET current_level = $2, level_started_at = $3, escalated = false
                  WHERE id = $1",
            )
            .bind(r.id)
            .bind(i16::try_from(level).unwrap_or(i16::MAX))
            .bind(now)
            .execute(&mut **tx)
            .await?;
            notify::emit(tx, "access_request.level_approved", &subject, extra).await?;
            out.push(outcome("level_approved", false));
        }
        Next::Granted => {
            if !r.auto_approved {
                notify::emit(tx, "access_request.level_approved", &subject, extra.clone()).await?;
            }
            let grant = create_grant(tx, r).await?;
            sqlx::query(
                "UPDATE sentinel.access_requests
                    SET status = 'approved', decided_at = $3, grant_id = $2
                  WHERE id = $1",
            )
            .bind(r.id)
            .bind(grant.0)
            .bind(now)
            .execute(&mut **tx)
            .await?;
            let mut e = extra;
            e["grant_id"] = json!(grant.0);
            e["expires_at"] = json!(grant.1);
            e["auto_approved"] = json!(r.auto_approved);
            notify::emit(tx, "access_request.granted", &subject, e).await?;
            out.push(outcome("approved", true));
        }
        Next::Denied | Next::Cancelled | Next::Expired => {
            let (status, event) = match next {
                Next::Denied => (Status::Denied, "access_request.denied"),
                Next::Cancelled => (Status::Cancelled, "access_request.cancelled"),
                _ => (Status::Expired, "access_request.expired"),
            };
            sqlx::query(
                "UPDATE sentinel.access_requests SET status = $2, decided_at = $3 WHERE id = $1",
            )
            .bind(r.id)
            .bind(status.as_str())
            .bind(now)
            .execute(&mut **tx)
            .await?;
            notify::emit(tx, event, &subject, extra).await?;
            out.push(outcome(status.as_str(), status == Status::Denied));
        }
        Next::Escalated => {
            sqlx::query(
                "UPDATE sentinel.access_requests SET escalated = true, level_started_at = $2
                  WHERE id = $1",
            )
            .bind(r.id)
            .bind(now)
            .execute(&mut **tx)
            .await?;
            notify::emit(tx, "access_request.escalated", &subject, extra).await?;
            out.push(outcome("escalated", false));
        }
    }
    Ok(out)
}

/// The time-bound grant of an approved request: its id and expiry.
async fn create_grant(tx: &mut Tx, r: &AccessRequest) -> ApiResult<(Uuid, DateTime<Utc>)> {
    let row: (Uuid, DateTime<Utc>) = sqlx::query_as(
        "INSERT INTO sentinel.access_grants
            (tenant_id, request_id, principal_id, resource_type, resource_id, actions, approval_chain,
             expires_at)
         VALUES ($1, $2, $3, $4, $5, ARRAY[$6], $7, now() + make_interval(secs => $8))
         RETURNING id, expires_at",
    )
    .bind(r.tenant_id)
    .bind(r.id)
    .bind(r.requester_id)
    .bind(&r.resource_type)
    .bind(&r.resource_id)
    .bind(&r.action)
    .bind(&r.approval_chain)
    .bind(f64::from(r.duration_seconds))
    .fetch_one(&mut **tx)
    .await?;
    Ok(row)
}
