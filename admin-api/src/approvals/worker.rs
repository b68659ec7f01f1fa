//! The approvals worker: moves the states that time moves. Each tick it
//! escalates pending levels past their timeout (and expires requests whose
//! escalated level timed out again, or that have no escalation target),
//! marks grants past their expiry `expired` (their tenant's shard is
//! republished, like any policy write), and sets the pending-by-age gauge.
//!
//! Several replicas may run it: a tick runs only in the replica that takes
//! the transaction-scoped advisory lock [`LOCK_KEY`] (the others skip that
//! tick), and every row it changes is locked and re-checked, so each due
//! change happens once. Its clock is injected ([`Clock`]) so tests move time
//! instead of waiting for it.

use super::grants::{announce, AccessGrant};
use super::model::{self, Event};
use super::workflow::{self, AccessRequest, Outcome, REQUEST_COLS, REQUEST_FROM};
use crate::db::{self, TenantCtx};
use crate::error::ApiError;
use crate::state::AppState;
use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;

/// `pg_try_advisory_xact_lock` key of the worker (one per database).
pub const LOCK_KEY: i64 = 0x5e47_1e1a_0001;

/// The worker's clock: the outbox's (one clock abstraction for the admin
/// API's workers).
pub use crate::outbox::{Clock, ManualClock, SystemClock};

/// What one tick did (`None` from [`tick`]: another replica held the lock).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub escalated: usize,
    pub expired_requests: usize,
    pub expired_grants: usize,
    /// Pending requests by age: under 1 h, 1-2 h, 2-24 h, over 24 h.
    pub pending_by_age: [i64; 4],
}

/// The age buckets of the pending gauge (the seeds' aim: approved within 2 h).
pub const AGE_BUCKETS: [&str; 4] = ["lt_1h", "1h_2h", "2h_24h", "gt_24h"];

/// One pass at `now`, as the leader; `None` when another replica holds the lock.
pub async fn tick(
    pool: &PgPool,
    now: DateTime<Utc>,
) -> Result<Option<(Report, Vec<Outcome>)>, ApiError> {
    let mut tx = db::begin(pool, TenantCtx::All).await?;
    let leader: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(LOCK_KEY)
        .fetch_one(&mut *tx)
        .await?;
    if !leader {
        tx.rollback().await?;
        return Ok(None);
    }
    let mut report = Report::default();
    let mut outcomes = Vec::new();

    // Levels past their timeout (the level's own, 48 h when unreadable).
    let due: Vec<AccessRequest> = sqlx::query_as(&format!(
        "SELECT {REQUEST_COLS} {REQUEST_FROM}
          WHERE r.status = 'pending'
            AND r.level_started_at + make_interval(secs => coalesce(
                    (r.levels -> (r.current_level - 1) ->> 'timeout_seconds')::float8, $2)) <= $1
          ORDER BY r.level_started_at, r.id
          LIMIT 500
          FOR UPDATE OF r SKIP LOCKED"
    ))
    .bind(now)
    .bind(model::DEFAULT_TIMEOUT_SECONDS as f64)
    .fetch_all(&mut *tx)
    .await?;
    for r in due {
        let next = model::transition(&r.levels(), r.level(), r.escalated, Event::Timeout);
        let done = workflow::apply(&mut tx, &r, next, json!({"by": "timeout"}), now).await?;
        for o in &done {
            match o.status {
                "escalated" => report.escalated += 1,
                "expired" => report.expired_requests += 1,
                _ => {}
            }
        }
        outcomes.extend(done);
    }

    // Grants past their expiry: out of the next snapshot (the gateways
    // already deny from `expires_at` on; this keeps the shard small and
    // tells the grantee).
    let ended: Vec<AccessGrant> = sqlx::query_as(
        "UPDATE sentinel.access_grants SET status = 'expired'
          WHERE id IN (SELECT id FROM sentinel.access_grants
                        WHERE status = 'active' AND expires_at <= $1
                        ORDER BY expires_at LIMIT 500 FOR UPDATE SKIP LOCKED)
          RETURNING id, tenant_id, request_id, principal_id, resource_type, resource_id, actions,
                    approval_chain, expires_at, status, revoked_at, revoked_by, created_at, updated_at",
    )
    .bind(now)
    .fetch_all(&mut *tx)
    .await?;
    for g in &ended {
        announce(&mut tx, g, "access_grant.expired").await?;
    }
    report.expired_grants = ended.len();

    let ages: (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE created_at > $1 - interval '1 hour'),
                count(*) FILTER (WHERE created_at <= $1 - interval '1 hour' AND created_at > $1 - interval '2 hours'),
                count(*) FILTER (WHERE created_at <= $1 - interval '2 hours' AND created_at > $1 - interval '24 hours'),
                count(*) FILTER (WHERE created_at <= $1 - interval '24 hours')
           FROM sentinel.access_requests WHERE status = 'pending'",
    )
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    report.pending_by_age = [ages.0, ages.1, ages.2, ages.3];
    tx.commit().await?;
    Ok(Some((report, outcomes)))
}

/// Runs [`tick`] every `approvals_worker_ms` with `clock` (what `serve` runs).
pub fn spawn_with(state: &AppState, clock: Arc<dyn Clock>) -> tokio::task::JoinHandle<()> {
    let state = state.clone();
    tokio::spawn(async move {
        let every = Duration::from_millis(state.config.approvals_worker_ms.max(100));
        let mut timer = tokio::time::interval(every);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut closing = state.live.closing();
        loop {
            tokio::select! {
                _ = timer.tick() => {}
                _ = closing.changed() => return,
            }
            match tick(&state.platform, clock.now()).await {
                Ok(Some((report, outcomes))) => {
                    super::record(&state, &outcomes);
                    for (b, n) in AGE_BUCKETS.iter().zip(report.pending_by_age) {
                        state
                            .metrics
                            .approval_pending
                            .with_label_values(&[b])
                            .set(n);
                    }
                    if report.escalated + report.expired_requests + report.expired_grants > 0 {
                        tracing::info!(
                            escalated = report.escalated,
                            expired_requests = report.expired_requests,
                            expired_grants = report.expired_grants,
                            "approvals worker"
                        );
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "approvals worker tick failed; will retry"),
            }
        }
    })
}

/// [`spawn_with`] the system clock.
pub fn spawn(state: &AppState) -> tokio::task::JoinHandle<()> {
    spawn_with(state, Arc::new(SystemClock))
}
