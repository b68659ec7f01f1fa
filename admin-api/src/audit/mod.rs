//! The audit trail (docs/audit.md): every gateway decision and every admin
//! write, one event each in `sentinel.audit_logs`.
//!
//! - [`event`]: the event, its wire form and validation;
//! - [`ingest`]: `POST /audit/events`, batches from gateways;
//! - [`record`]: admin writes recorded in their own transaction;
//! - [`store`]: the one writer (idempotent, chained, partitions on demand);
//! - [`chain`]: the hash chains and `sentinel-admin audit verify`;
//! - [`query`]: search, "why was this request denied", export;
//! - [`maintenance`] here: partitions ahead and retention, on a timer.
//!
//! Never updates or deletes an event except through retention (the API
//! role may not; retention runs as the owner through a function).

pub mod chain;
pub mod event;
pub mod ingest;
pub mod query;
pub mod record;
pub mod store;

use crate::openapi::routes::{doc, Routes};
use crate::state::AppState;
use serde_json::json;

/// The `/api/v1/audit` routes.
pub fn router() -> Routes {
    Routes::new()
        .post(
            "/events",
            ingest::ingest,
            doc(
                "audit:write",
                "Ship a batch of gateway decisions: ndjson (Content-Type application/x-ndjson, \
                 Content-Encoding gzip or identity), at most 10,000 events and 16 MiB decompressed; \
                 all or nothing, idempotent by (time, id). Platform service-account API key.",
            )
            .json(json!({
                "type": "object",
                "required": ["accepted", "duplicates"],
                "properties": {
                    "accepted": {"type": "integer", "description": "events stored now"},
                    "duplicates": {"type": "integer", "description": "events already stored (skipped)"}
                }
            }))
            .error(400, "VALIDATION_ERROR: the body is not readable (broken gzip)")
            .error(413, "BODY_TOO_LARGE: more than 10,000 events or 16 MiB")
            .error(
                422,
                "VALIDATION_ERROR: details.errors = [{line, message}] (the first 20); nothing stored",
            ),
        )
        .get(
            "/events",
            query::list,
            doc(
                "audit:read",
                "Search events, newest first: filters tenant_id, principal_id, from, to (RFC 3339; \
                 to exclusive), outcome, code, route, resource, action, request_id, source; \
                 limit (1-1000, default 50), cursor",
            )
            .ok::<query::EventPage>(),
        )
        .get(
            "/requests/{request_id}",
            query::by_request,
            doc(
                "audit:read",
                "The events of one request (X-Request-Id): why it was allowed or denied, with reason and rules",
            )
            .ok::<query::RequestEvents>(),
        )
        .get(
            "/export",
            query::export,
            doc(
                "audit:export",
                "Export the events the filters select (as for search, without limit/cursor), \
                 newest first, streamed: ?format=csv (RFC 4180) or jsonl (one event per line)",
            )
            .media("text/csv"),
        )
}

/// Keeps partitions ahead and applies retention: at start, then every
/// `audit_maintenance_seconds`. Failures are logged and retried next time.
pub fn spawn_maintenance(state: &AppState) -> tokio::task::JoinHandle<()> {
    let state = state.clone();
    tokio::spawn(async move {
        let every = std::time::Duration::from_secs(state.config.audit_maintenance_seconds.max(1));
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            if let Err(e) = maintain(&state).await {
                tracing::warn!(error = %e, "audit maintenance failed; retrying next interval");
            }
        }
    })
}

/// One round of maintenance: partitions for this month and the next
/// `audit_partitions_ahead`, then retention.
pub async fn maintain(state: &AppState) -> Result<(), sqlx::Error> {
    let created =
        store::ensure_partitions(&state.pool, state.config.audit_partitions_ahead).await?;
    let (deleted, dropped): (i64, i32) = sqlx::query_as(
        "SELECT deleted_rows, dropped_partitions FROM sentinel.audit_apply_retention($1)",
    )
    .bind(state.config.audit_retention_days)
    .fetch_one(&state.pool)
    .await?;
    if created > 0 || deleted > 0 || dropped > 0 {
        tracing::info!(
            partitions_created = created,
            rows_deleted = deleted,
            partitions_dropped = dropped,
            "audit maintenance"
        );
    }
    Ok(())
}
