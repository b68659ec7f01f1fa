//! Admin writes become audit events, in the transaction that made them.
//!
//! The one place: every request transaction ([`crate::db::begin`]) of an
//! authenticated caller carries the caller as its *actor*
//! (`sentinel.audit_actor`); triggers on every admin table
//! (`sentinel.audit_capture`, migration 0004) copy each changed row, with
//! secrets replaced by `"[redacted]"`, into `sentinel.audit_pending`; and
//! [`crate::db::Tx::commit`] turns those rows into `source = "admin"` events
//! ([`flush`]) just before it commits. A write that is refused or rolled
//! back leaves no event, because its captured rows go with it; a handler
//! cannot forget to record, because it writes through the same tables.
//!
//! One event per changed row: `role.update`, `user.create`,
//! `role.assign` (a row of `user_roles`), … (docs/audit.md lists them).

use super::event::Event;
use super::store;
use crate::db::Tx;
use chrono::{DateTime, SubsecRound, Utc};
use serde_json::Value;
use std::cell::RefCell;
use uuid::Uuid;

/// Who is writing: the authenticated caller of the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor {
    pub user_id: Uuid,
    /// The tenant acted on: the event's tenant when the transaction spans
    /// all tenants (else the transaction's own tenant is).
    pub tenant: Uuid,
    pub service_account: bool,
}

/// What the request middleware knows of the request, and its actor once
/// the caller is authenticated.
#[derive(Debug, Default)]
pub struct RequestCtx {
    pub method: String,
    pub path: String,
    pub actor: Option<Actor>,
}

tokio::task_local! {
    /// Set for every request by the request-id middleware (lib.rs).
    pub static REQUEST: RefCell<RequestCtx>;
}

/// Records the authenticated caller of the current request (the `Caller`
/// extractor calls this).
pub fn set_actor(actor: Actor) {
    let _ = REQUEST.try_with(|r| r.borrow_mut().actor = Some(actor));
}

/// The current request's actor, if a caller was authenticated.
pub fn current_actor() -> Option<Actor> {
    REQUEST.try_with(|r| r.borrow().actor).ok().flatten()
}

fn current_request() -> (Option<String>, Option<String>) {
    REQUEST
        .try_with(|r| {
            let r = r.borrow();
            (Some(r.method.clone()), Some(r.path.clone()))
        })
        .unwrap_or((None, None))
}

#[derive(sqlx::FromRow)]
struct Pending {
    seq: i64,
    /// The transaction's tenant when the row was captured (NULL: all tenants).
    tenant_id: Option<Uuid>,
    entity: String,
    action: String,
    resource_id: Option<String>,
    before: Option<Value>,
    after: Option<Value>,
}

/// Turns the rows captured in this transaction into events and stores them
/// (chained like every event). Called by `Tx::commit` for actor transactions.
pub async fn flush(tx: &mut Tx, actor: Actor) -> Result<u64, sqlx::Error> {
    let mut rows: Vec<Pending> = sqlx::query_as(
        "DELETE FROM sentinel.audit_pending WHERE xid = txid_current_if_assigned()
         RETURNING seq, tenant_id, entity, action, resource_id, before, after",
    )
    .fetch_all(&mut **tx)
    .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    rows.sort_by_key(|r| r.seq);
    let time: DateTime<Utc> = Utc::now().trunc_subsecs(3);
    let request_id = Some(crate::error::request_id()).filter(|r| r != "-");
    let (method, path) = current_request();
    let events: Vec<Event> = rows
        .into_iter()
        .map(|r| Event {
            id: super::event::new_v7(),
            time,
            source: "admin".to_owned(),
            request_id: request_id.clone(),
            // The transaction's tenant (row-level security admits no other);
            // across tenants, the tenant the caller acts on.
            tenant_id: r.tenant_id.or(Some(actor.tenant)),
            principal_id: Some(actor.user_id.to_string()),
            principal_kind: Some(
                if actor.service_account {
                    "service_account"
                } else {
                    "user"
                }
                .to_owned(),
            ),
            method: method.clone(),
            route: None,
            path: path.clone(),
            resource: Some(r.entity),
            resource_id: r.resource_id,
            action: Some(r.action),
            outcome: "allowed".to_owned(),
            code: None,
            reason: None,
            rules: Vec::new(),
            client_ip: None,
            user_agent: None,
            status: None,
            latency_ms: None,
            risk_score: None,
            snapshot_version: None,
            gateway: None,
            before: r.before,
            after: r.after,
        })
        .collect();
    Ok(store::append(tx, events).await?.accepted)
}
