//! The shipper: one task that reads unacknowledged lines from the spool in
//! order, sends them in gzipped ndjson batches to the admin API
//! (`POST /api/v1/audit/events`, the gateway's key) and commits the spool
//! position only on `200`. Connect errors, timeouts, `5xx`, `408`, `429`,
//! `401`, `403`, `404` and `405` are retried with capped backoff (the same
//! batch, so the order holds); any other `4xx` (`400`, `413`, `422`) is a
//! poison batch, kept in `rejected/` and counted, never retried forever.

use super::spool::{Batch, Position, Spool};
use super::Counters;
use crate::config::Secret;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The admin API's cap is 16 MiB decompressed per batch; stay well below.
pub const MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
const SEND_TIMEOUT: Duration = Duration::from_secs(15);

pub struct Shipper {
    pub spool: Arc<Spool>,
    pub counters: Arc<Counters>,
    /// `{admin}/api/v1/audit/events`.
    pub url: String,
    pub api_key: Secret,
    pub batch_events: usize,
    pub flush: Duration,
}

/// What the admin API made of a batch.
enum Sent {
    Acked,
    Retry(String),
    Poison(u16, String),
}

impl Shipper {
    pub async fn run(self) {
        let client = match reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(SEND_TIMEOUT)
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "cannot build the audit client; audit events stay in the spool");
                return;
            }
        };
        let mut cursor = self.spool.committed();
        let mut healthy = true;
        loop {
            let read = {
                let spool = self.spool.clone();
                let n = self.batch_events;
                tokio::task::spawn_blocking(move || read_gzipped(&spool, cursor, n)).await
            };
            let (batch, gz) = match read {
                Ok(Ok(x)) => x,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "cannot read the audit spool");
                    tokio::time::sleep(BACKOFF_MAX).await;
                    continue;
                }
                Err(e) => {
                    tracing::error!(error = %e, "audit spool reader failed");
                    tokio::time::sleep(BACKOFF_MAX).await;
                    continue;
                }
            };
            if batch.torn > 0 {
                self.counters.torn.inc_by(batch.torn);
                tracing::warn!(
                    lines = batch.torn,
                    "skipped torn or unreadable lines in the audit spool"
                );
            }
            if batch.events > 0 {
                self.deliver(&client, &batch, &gz, cursor, &mut healthy)
                    .await;
            }
            if batch.end != cursor {
                self.commit(batch.end).await;
                cursor = batch.end;
            }
            if batch.events < self.batch_events {
                tokio::time::sleep(self.flush).await;
            }
        }
    }

    /// Sends until the batch is acknowledged or refused for good.
    async fn deliver(
        &self,
        client: &reqwest::Client,
        batch: &Batch,
        gz: &[u8],
        from: Position,
        healthy: &mut bool,
    ) {
        let mut backoff = BACKOFF_MIN;
        loop {
            let started = Instant::now();
            match self.send(client, gz).await {
                Sent::Acked => {
                    self.counters
                        .ship_seconds
                        .observe(started.elapsed().as_secs_f64());
                    self.counters.shipped.inc_by(batch.events as u64);
                    if !*healthy {
                        tracing::info!("the admin API takes audit events again");
                        *healthy = true;
                    }
                    return;
                }
                Sent::Poison(status, body) => {
                    self.counters.rejected.inc_by(batch.events as u64);
                    let kept = self.spool.reject(batch, from);
                    tracing::error!(
                        status,
                        events = batch.events,
                        answer = %body,
                        kept = ?kept.as_ref().map(|p| p.display().to_string()),
                        "the admin API refused an audit batch; it is kept in the spool's rejected/ directory"
                    );
                    return;
                }
                Sent::Retry(why) => {
                    self.counters.ship_failures.inc();
                    if *healthy {
                        tracing::warn!(error = %why, "cannot deliver audit events; they stay in the spool and are retried");
                        *healthy = false;
                    }
                    tokio::time::sleep(jitter(backoff)).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    async fn send(&self, client: &reqwest::Client, gz: &[u8]) -> Sent {
        let resp = client
            .post(&self.url)
            .header(
                http::header::AUTHORIZATION,
                format!("ApiKey {}", self.api_key.0),
            )
            .header(http::header::CONTENT_TYPE, "application/x-ndjson")
            .header(http::header::CONTENT_ENCODING, "gzip")
            .body(gz.to_vec())
            .send()
            .await;
        let resp = match resp {
            Ok(r) => r,
            Err(e) => return Sent::Retry(e.without_url().to_string()),
        };
        let status = resp.status().as_u16();
        match status {
            200 => Sent::Acked,
            // 401/403: the key or its scope is wrong, 404/405: an admin API
            // without the endpoint yet; fixed by the operator, not the batch.
            401 | 403 | 404 | 405 | 408 | 429 | 500..=599 => {
                Sent::Retry(format!("status {status}"))
            }
            _ => {
                let body = resp.text().await.unwrap_or_default();
                let body = super::event::truncate(&body, 1024).to_owned();
                Sent::Poison(status, body)
            }
        }
    }

    async fn commit(&self, to: Position) {
        let spool = self.spool.clone();
        match tokio::task::spawn_blocking(move || spool.commit(to)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "cannot record the audit spool position"),
            Err(e) => tracing::error!(error = %e, "audit spool commit failed"),
        }
        self.counters.spool_bytes.set(self.spool.bytes() as i64);
    }
}

/// Reads a batch and gzips it (blocking work).
fn read_gzipped(
    spool: &Spool,
    from: Position,
    max_events: usize,
) -> std::io::Result<(Batch, Vec<u8>)> {
    let batch = spool.read_batch(from, max_events, MAX_BATCH_BYTES)?;
    if batch.events == 0 {
        return Ok((batch, Vec::new()));
    }
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(batch.body.len() / 4),
        flate2::Compression::fast(),
    );
    enc.write_all(&batch.body)?;
    let gz = enc.finish()?;
    Ok((batch, gz))
}

/// `d` less up to a quarter, so gateways that lost the admin API together
/// do not retry in step.
fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |t| t.subsec_nanos());
    d - d / 4 * (nanos % 1000) / 1000
}
