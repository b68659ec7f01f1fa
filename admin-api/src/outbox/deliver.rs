//! The delivery worker: claims due outbox rows, POSTs each event to the
//! tenant's matching webhooks (HMAC-signed), and records the outcome:
//! delivered, retried later with exponential backoff, or failed for good
//! (the dead letter) after the last retry.
//!
//! Safe with several replicas: a claim (`FOR UPDATE SKIP LOCKED`, then a
//! lease written in the same statement) hands each due row to one worker;
//! a worker that dies mid-delivery leaves the row to be claimed again when
//! its lease ends (receivers deduplicate by `idempotency-key`). Delivery is
//! at least once; a row once delivered is never sent again.

use super::target::{self, AddressPolicy, GuardedResolver};
use super::Clock;
use crate::config::Config;
use crate::db::{self, TenantCtx};
use crate::metrics::Metrics;
use crate::state::AppState;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// How deliveries are made and retried.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// Longest one POST may take (connect to last byte of the answer head).
    pub timeout: Duration,
    /// Retries after the first attempt (seeds: `agent_retry_count` = 3).
    pub retries: u32,
    /// Wait before the first retry; doubled for each further one.
    pub backoff: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
    /// Rows claimed per round.
    pub batch: i64,
    /// Where deliveries may connect.
    pub addresses: AddressPolicy,
}

impl DeliveryConfig {
    pub fn from_config(c: &Config) -> Self {
        DeliveryConfig {
            timeout: Duration::from_millis(c.webhook_timeout_ms.max(1)),
            retries: c.webhook_retries,
            backoff: Duration::from_secs(c.webhook_backoff_seconds),
            max_backoff: Duration::from_secs(c.webhook_max_backoff_seconds),
            batch: 32,
            addresses: AddressPolicy {
                allow_loopback: c.webhook_allow_loopback,
                allowed_networks: c.webhook_allowed_networks.clone(),
            },
        }
    }

    /// Wait after failed attempt number `attempt` (1-based):
    /// `backoff * 2^(attempt-1)`, at most `max_backoff`.
    pub fn backoff_after(&self, attempt: i32) -> Duration {
        let exp = attempt.saturating_sub(1).clamp(0, 20) as u32;
        self.backoff
            .saturating_mul(1u32 << exp)
            .min(self.max_backoff)
    }

    /// A claimed row is someone else's to claim again after this: every
    /// POST of the row (they run side by side) has timed out by then.
    fn lease(&self) -> Duration {
        self.timeout + Duration::from_secs(30)
    }
}

/// What one round did (tests and logs).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    /// Rows claimed.
    pub claimed: usize,
    /// Rows now delivered to every matching webhook.
    pub delivered: usize,
    /// Rows that will be tried again.
    pub retrying: usize,
    /// Rows that failed for good (dead letters).
    pub failed: usize,
}

#[derive(Debug, sqlx::FromRow)]
struct Claimed {
    id: Uuid,
    tenant_id: Uuid,
    event: String,
    subject_id: Uuid,
    payload: Value,
    idempotency_key: String,
    attempts: i32,
    delivered_to: Vec<Uuid>,
    created_at: DateTime<Utc>,
}

#[derive(Debug, sqlx::FromRow)]
struct Target {
    id: Uuid,
    url: String,
    secret: String,
}

/// The delivery worker of one process.
pub struct Worker {
    pool: PgPool,
    client: reqwest::Client,
    clock: Arc<dyn Clock>,
    cfg: DeliveryConfig,
    deliveries: prometheus::IntCounterVec,
    pending: prometheus::IntGauge,
    oldest: prometheus::Gauge,
}

impl Worker {
    pub fn new(
        pool: PgPool,
        metrics: &Metrics,
        cfg: DeliveryConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(cfg.timeout)
            .timeout(cfg.timeout)
            .user_agent(concat!("sentinel-webhooks/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(GuardedResolver {
                policy: Arc::new(cfg.addresses.clone()),
            }))
            .build()?;
        Ok(Worker {
            pool,
            client,
            clock,
            cfg,
            deliveries: metrics.webhook_deliveries.clone(),
            pending: metrics.outbox_pending.clone(),
            oldest: metrics.outbox_oldest_pending_seconds.clone(),
        })
    }

    /// Claims the due rows (at most one batch), delivers them side by side,
    /// records each outcome, then refreshes the backlog gauges.
    pub async fn run_once(&self) -> Result<Round, sqlx::Error> {
        let now = self.clock.now();
        let lease = chrono::Duration::from_std(self.cfg.lease()).unwrap_or_default();
        let mut tx = db::begin(&self.pool, TenantCtx::All).await?;
        let rows: Vec<Claimed> = sqlx::query_as(
            "WITH due AS (
                 SELECT id FROM sentinel.outbox
                  WHERE delivered_at IS NULL AND failed_at IS NULL AND next_attempt_at <= $1
                  ORDER BY next_attempt_at
                  LIMIT $2
                  FOR UPDATE SKIP LOCKED)
             UPDATE sentinel.outbox o
                SET attempts = o.attempts + 1, next_attempt_at = $3
               FROM due WHERE o.id = due.id
             RETURNING o.id, o.tenant_id, o.event, o.subject_id, o.payload, o.idempotency_key,
                       o.attempts, o.delivered_to, o.created_at",
        )
        .bind(now)
        .bind(self.cfg.batch)
        .bind(now + lease)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut round = Round {
            claimed: rows.len(),
            ..Round::default()
        };
        let outcomes =
            futures_util::future::join_all(rows.into_iter().map(|r| self.deliver_row(r))).await;
        for o in outcomes {
            match o {
                Ok(Outcome::Delivered) => round.delivered += 1,
                Ok(Outcome::Retrying) => round.retrying += 1,
                Ok(Outcome::Failed) => round.failed += 1,
                Ok(Outcome::Lost) => {}
                Err(e) => {
                    // The lease brings the row back.
                    tracing::warn!(error = %e, "cannot record a webhook delivery");
                }
            }
        }
        self.refresh_gauges().await?;
        Ok(round)
    }

    /// One row: its targets, a POST to each side by side, the outcome.
    async fn deliver_row(&self, row: Claimed) -> Result<Outcome, sqlx::Error> {
        let mut tx = db::begin(&self.pool, TenantCtx::One(row.tenant_id)).await?;
        // INVARIANT: only the row's own tenant's webhooks (the query says so,
        // and row-level security holds the transaction to that tenant).
        let targets: Vec<Target> = sqlx::query_as(
            "SELECT id, url, secret FROM sentinel.webhooks
              WHERE tenant_id = $1 AND enabled AND NOT (id = ANY ($3))
                AND (cardinality(events) = 0 OR EXISTS (
                     SELECT 1 FROM unnest(events) e
                      WHERE e = $2 OR (right(e, 2) = '.*' AND starts_with($2, left(e, -1)))))
              ORDER BY id",
        )
        .bind(row.tenant_id)
        .bind(&row.event)
        .bind(&row.delivered_to)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;

        let body = envelope(&row);
        let sends = targets.iter().map(|t| self.post(t, &row, &body));
        let results = futures_util::future::join_all(sends).await;
        let mut delivered_to = row.delivered_to.clone();
        let mut errors = Vec::new();
        for (t, r) in targets.iter().zip(results) {
            match r {
                Ok(()) => delivered_to.push(t.id),
                Err(e) => errors.push(format!("{}: {e}", t.id)),
            }
        }
        let last = row.attempts > self.cfg.retries as i32;
        let label = |ok: bool| match (ok, last) {
            (true, _) => "delivered",
            (false, false) => "retry",
            (false, true) => "dead_letter",
        };
        self.deliveries
            .with_label_values(&[label(true)])
            .inc_by((targets.len() - errors.len()) as u64);
        self.deliveries
            .with_label_values(&[label(false)])
            .inc_by(errors.len() as u64);

        let now = self.clock.now();
        let (outcome, sql) = if errors.is_empty() {
            (
                Outcome::Delivered,
                "UPDATE sentinel.outbox SET delivered_to = $3, delivered_at = $4, last_error = NULL",
            )
        } else if last {
            (
                Outcome::Failed,
                "UPDATE sentinel.outbox SET delivered_to = $3, failed_at = $4, last_error = $5",
            )
        } else {
            (
                Outcome::Retrying,
                "UPDATE sentinel.outbox SET delivered_to = $3, next_attempt_at = $6, last_error = $5",
            )
        };
        let backoff =
            chrono::Duration::from_std(self.cfg.backoff_after(row.attempts)).unwrap_or_default();
        let mut error = errors.join("; ");
        truncate(&mut error, 1000);
        let mut tx = db::begin(&self.pool, TenantCtx::One(row.tenant_id)).await?;
        // Only while the claim is still ours: a row whose lease ended and was
        // claimed again (attempts moved on) belongs to that claim now.
        let n = sqlx::query(&format!(
            "{sql} WHERE id = $1 AND attempts = $2 AND delivered_at IS NULL AND failed_at IS NULL"
        ))
        .bind(row.id)
        .bind(row.attempts)
        .bind(&delivered_to)
        .bind(now)
        .bind(&error)
        .bind(now + backoff)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        if n == 0 {
            return Ok(Outcome::Lost);
        }
        match outcome {
            Outcome::Failed => tracing::warn!(
                outbox_id = %row.id, tenant_id = %row.tenant_id, event = %row.event,
                attempts = row.attempts, error = %error,
                "webhook delivery failed for good (dead letter)"
            ),
            Outcome::Retrying => tracing::info!(
                outbox_id = %row.id, attempts = row.attempts, error = %error,
                "webhook delivery failed; retrying"
            ),
            _ => {}
        }
        Ok(outcome)
    }

    /// One signed POST; `Ok` on a 2xx answer.
    async fn post(&self, t: &Target, row: &Claimed, body: &[u8]) -> Result<(), String> {
        let url = reqwest::Url::parse(&t.url).map_err(|_| "invalid url".to_owned())?;
        // Literal addresses never reach the resolver: judged here (the
        // policy may also have changed since the webhook was written).
        target::check_host(&url, &self.cfg.addresses).map_err(|e| format!("url {e}"))?;
        // Never an unsigned or wrongly signed delivery: a secret that does
        // not open (another KEK, a row copied from another webhook) fails it.
        let secret = crate::sealing::keyring()
            .and_then(|k| {
                k.open(
                    &crate::sealing::row("webhooks", &t.id.to_string()),
                    &t.secret,
                )
            })
            .map_err(|e| format!("secret: {e}"))?;
        let ts = self.clock.now().timestamp().to_string();
        let sig = sign(&secret, &ts, body);
        let resp = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("sentinel-signature", format!("sha256={sig}"))
            .header("sentinel-timestamp", &ts)
            .header("sentinel-event", &row.event)
            .header("idempotency-key", &row.idempotency_key)
            .body(body.to_vec())
            .send()
            .await
            .map_err(describe)?;
        let status = resp.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("receiver answered {}", status.as_u16()))
        }
    }

    /// `sentinel_outbox_pending` and `sentinel_outbox_oldest_pending_seconds`.
    pub async fn refresh_gauges(&self) -> Result<(), sqlx::Error> {
        let mut tx = db::begin(&self.pool, TenantCtx::All).await?;
        let (n, oldest): (i64, Option<DateTime<Utc>>) = sqlx::query_as(
            "SELECT count(*), min(created_at) FROM sentinel.outbox
              WHERE delivered_at IS NULL AND failed_at IS NULL",
        )
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        self.pending.set(n);
        let age = oldest.map_or(0.0, |o| {
            (self.clock.now() - o).num_milliseconds().max(0) as f64 / 1000.0
        });
        self.oldest.set(age);
        Ok(())
    }

    /// Deletes delivered rows and dead letters older than `days`.
    pub async fn prune(&self, days: i64) -> Result<u64, sqlx::Error> {
        let before = self.clock.now() - chrono::Duration::days(days.max(1));
        let mut tx = db::begin(&self.pool, TenantCtx::All).await?;
        let n = sqlx::query(
            "DELETE FROM sentinel.outbox
              WHERE coalesce(delivered_at, failed_at) < $1",
        )
        .bind(before)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n)
    }
}

enum Outcome {
    Delivered,
    Retrying,
    Failed,
    /// The claim ended before the outcome could be written.
    Lost,
}

/// The JSON a receiver gets (the same bytes at every attempt).
fn envelope(row: &Claimed) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id": row.id,
        "event": row.event,
        "tenant_id": row.tenant_id,
        "subject_id": row.subject_id,
        "idempotency_key": row.idempotency_key,
        "occurred_at": row.created_at,
        "data": row.payload,
    }))
    .unwrap_or_default()
}

/// Hex HMAC-SHA256 of `timestamp.body` under `secret`: what
/// `sentinel-signature` carries after `sha256=`.
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    // HMAC takes a key of any length: `new_from_slice` cannot fail for it.
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A transport error in a few words, without the URL (it may carry a token
/// in its query).
fn describe(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_request() {
        "request failed"
    } else {
        "transport error"
    };
    let mut src: &dyn std::error::Error = &e;
    let mut why = String::new();
    while let Some(s) = src.source() {
        why = s.to_string();
        src = s;
    }
    if why.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {why}")
    }
}

fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

/// Runs the worker of `serve`: a round every `webhook_poll_ms` (at once
/// again while rounds come back full), pruning old rows hourly.
pub fn spawn(state: &AppState) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    // Claims and prunes across tenants: the platform role.
    let worker = Worker::new(
        state.platform.clone(),
        &state.metrics,
        DeliveryConfig::from_config(&state.config),
        Arc::new(super::SystemClock),
    )?;
    let poll = Duration::from_millis(state.config.webhook_poll_ms.max(10));
    let keep_days = state.config.webhook_retention_days;
    Ok(tokio::spawn(async move {
        let mut last_prune = std::time::Instant::now();
        loop {
            match worker.run_once().await {
                Ok(r) if r.claimed as i64 >= worker.cfg.batch => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "webhook delivery round failed"),
            }
            if last_prune.elapsed() >= Duration::from_secs(3600) {
                last_prune = std::time::Instant::now();
                match worker.prune(keep_days).await {
                    Ok(n) if n > 0 => tracing::info!(rows = n, "outbox pruned"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "outbox pruning failed"),
                }
            }
            tokio::time::sleep(poll).await;
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Python: hmac.new(b"Jefe", b'1700000000.{"a":1}', hashlib.sha256).hexdigest()
        assert_eq!(
            sign("Jefe", "1700000000", br#"{"a":1}"#),
            "fa5f6481efc59da48b19c9dc10196c9953e5651f8304b3a318b6b87d70272e0a"
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let c = DeliveryConfig {
            timeout: Duration::from_secs(1),
            retries: 3,
            backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(35),
            batch: 1,
            addresses: AddressPolicy::default(),
        };
        let secs: Vec<u64> = (1..=5).map(|a| c.backoff_after(a).as_secs()).collect();
        assert_eq!(secs, vec![10, 20, 35, 35, 35]);
    }
}
