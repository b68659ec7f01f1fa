//! Notifications: a transactional outbox of tenant events, delivered to the
//! tenant's webhooks (docs/webhooks.md).
//!
//! A domain write that should notify calls [`enqueue`] inside its own
//! transaction, so the event commits or rolls back with the change it
//! announces. The delivery worker ([`deliver`]) picks due rows up later and
//! never makes a network call while a caller's transaction is open;
//! [`target`] decides where a webhook may point.

pub mod deliver;
pub mod target;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use std::sync::Mutex;
use uuid::Uuid;

pub use deliver::{spawn, DeliveryConfig, Worker};

/// The time the worker lives by: the system's, or one a test moves.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told (tests: retries without waiting).
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(at: DateTime<Utc>) -> Self {
        ManualClock(Mutex::new(at))
    }

    pub fn advance(&self, by: chrono::Duration) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *t += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The idempotency key of an event: `event:subject_id`, plus the `level`
/// and/or `version` the payload names (an approval at level 1 and at level 2
/// of the same request are two events; the same approval enqueued twice is
/// one). A `level` or `version` is a number or a short string of letters,
/// digits, `.`, `_` and `-` (the key travels in a header); anything else is
/// left out of the key.
pub fn idempotency_key(event: &str, subject_id: Uuid, payload: &serde_json::Value) -> String {
    let mut key = format!("{event}:{subject_id}");
    for part in ["level", "version"] {
        match payload.get(part) {
            Some(serde_json::Value::Number(n)) => key.push_str(&format!(":{part}={n}")),
            Some(serde_json::Value::String(s))
                if !s.is_empty()
                    && s.len() <= 64
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) =>
            {
                key.push_str(&format!(":{part}={s}"))
            }
            _ => {}
        }
    }
    key
}

/// Queues `event` about `subject_id` for delivery to the tenant's webhooks.
///
/// Runs on the caller's connection, inside its transaction (whose tenant
/// must be `tenant_id`, or all tenants: row-level security checks it). A
/// second enqueue of the same idempotency key ([`idempotency_key`]) is a
/// no-op. `event` is lowercase dotted words (`access_request.approved`).
pub async fn enqueue(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    event: &str,
    subject_id: Uuid,
    payload: &serde_json::Value,
) -> Result<(), sqlx::Error> {
    let key = idempotency_key(event, subject_id, payload);
    sqlx::query(
        "INSERT INTO sentinel.outbox (tenant_id, event, subject_id, payload, idempotency_key)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (tenant_id, idempotency_key) DO NOTHING",
    )
    .bind(tenant_id)
    .bind(event)
    .bind(subject_id)
    .bind(payload)
    .bind(key)
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_name_level_and_version_when_the_payload_does() {
        let id = Uuid::nil();
        let z = "00000000-0000-0000-0000-000000000000";
        for (payload, want) in [
            (json!({}), format!("a.b:{z}")),
            (json!({"level": 2}), format!("a.b:{z}:level=2")),
            (json!({"version": "7"}), format!("a.b:{z}:version=7")),
            (
                json!({"level": 1, "version": 3}),
                format!("a.b:{z}:level=1:version=3"),
            ),
            (json!({"level": null, "version": []}), format!("a.b:{z}")),
            (json!({"level": "a\r\nx: y"}), format!("a.b:{z}")),
        ] {
            assert_eq!(idempotency_key("a.b", id, &payload), want, "{payload}");
        }
    }
}
