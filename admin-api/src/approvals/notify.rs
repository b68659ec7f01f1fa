//! The one place the approval workflow announces a state change: a
//! notification queued in the outbox (docs/webhooks.md) inside the
//! transaction that makes the change, so it commits or rolls back with it.
//! The payload names the level, so "approved at level 1" and "at level 2"
//! are two events while a retried write is one (the outbox's idempotency
//! key).

use serde_json::{json, Value};
use sqlx::PgConnection;
use uuid::Uuid;

/// What a notification is about.
pub struct Subject<'a> {
    pub tenant: Uuid,
    pub request: Uuid,
    pub requester: Uuid,
    pub chain: &'a str,
    pub resource: &'a str,
    pub action: &'a str,
    pub level: u16,
}

/// Queues `event` (`access_request.requested`, `access_request.level_approved`,
/// `access_request.escalated`, `access_request.granted`,
/// `access_request.denied`, `access_request.expired`,
/// `access_request.cancelled`, `access_grant.expired`,
/// `access_grant.revoked`) about `s`, with `extra` merged into the payload.
pub async fn emit(
    conn: &mut PgConnection,
    event: &str,
    s: &Subject<'_>,
    extra: Value,
) -> Result<(), sqlx::Error> {
    let mut payload = json!({
        "request_id": s.request,
        "requester_id": s.requester,
        "approval_chain": s.chain,
        "resource": s.resource,
        "action": s.action,
        "level": s.level,
    });
    if let (Value::Object(p), Value::Object(e)) = (&mut payload, extra) {
        p.extend(e);
    }
    crate::outbox::enqueue(conn, s.tenant, event, s.request, &payload).await
}
