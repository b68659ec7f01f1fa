//! Live policy: the publisher that turns committed policy changes into signed
//! snapshots, and the in-memory copy of the latest snapshot that
//! `GET /api/v1/snapshots/latest` serves and long-polls on.
//!
//! Every policy write bumps `sentinel.policy_revision` at commit and sends
//! `NOTIFY sentinel_policy` (migration 0002). The publisher LISTENs, waits for
//! a quiet moment (debounce), and publishes through [`crate::snapshot::publish`];
//! it also ticks, so a notification lost with a dropped connection delays a
//! change by one tick at most, never loses it. Each published version is
//! announced with `NOTIFY sentinel_snapshot`, which wakes the long-polls of
//! every admin replica.
//!
//! Must never publish a policy that does not compile, and never serve
//! anything but stored, signed bytes.

use crate::snapshot::{self, Outcome, Published};
use crate::state::AppState;
use sqlx::postgres::PgListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};

/// Channel of committed policy changes (migration 0002).
pub const POLICY_CHANNEL: &str = "sentinel_policy";
/// Channel of published snapshot versions.
pub const SNAPSHOT_CHANNEL: &str = "sentinel_snapshot";

/// The shared live-policy state of one admin process.
pub struct Live {
    latest: watch::Sender<Option<Arc<Published>>>,
    /// A policy change was announced (or may have been missed).
    poke: Notify,
    /// The listener holds a live LISTEN connection: the cached latest is then
    /// kept current by notifications, else requests read the database.
    listening: AtomicBool,
    /// The JWKS of the snapshot keys (public), reloaded with the keys.
    jwks: Mutex<Arc<serde_json::Value>>,
    /// The process is shutting down: long-polls answer now.
    closing: watch::Sender<bool>,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            latest: watch::channel(None).0,
            poke: Notify::new(),
            listening: AtomicBool::new(false),
            jwks: Mutex::new(Arc::new(serde_json::json!({ "keys": [] }))),
            closing: watch::channel(false).0,
        }
    }
}

impl Live {
    /// The cached latest snapshot.
    pub fn cached(&self) -> Option<Arc<Published>> {
        self.latest.borrow().clone()
    }

    pub fn is_listening(&self) -> bool {
        self.listening.load(Ordering::Acquire)
    }

    /// Stores `p` as the latest when it is newer than the cached one.
    pub fn offer(&self, p: Published) -> bool {
        self.latest.send_if_modified(|cur| {
            if cur.as_ref().is_some_and(|c| c.version >= p.version) {
                false
            } else {
                *cur = Some(Arc::new(p));
                true
            }
        })
    }

    /// A receiver that sees every newer snapshot.
    pub fn subscribe(&self) -> watch::Receiver<Option<Arc<Published>>> {
        self.latest.subscribe()
    }

    pub fn closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// Makes pending long-polls answer (graceful shutdown).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Asks the publisher to check for changes now.
    pub fn poke(&self) {
        self.poke.notify_one();
    }

    pub fn jwks(&self) -> Arc<serde_json::Value> {
        match self.jwks.lock() {
            Ok(g) => Arc::clone(&g),
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }

    /// Reloads the published snapshot keys from the database.
    pub async fn reload_jwks(&self, pool: &sqlx::PgPool) -> Result<(), sqlx::Error> {
        let mut conn = pool.acquire().await?;
        let v = Arc::new(crate::snapshot_keys::jwks(&mut conn).await?);
        match self.jwks.lock() {
            Ok(mut g) => *g = v,
            Err(p) => *p.into_inner() = v,
        }
        Ok(())
    }

    /// The latest snapshot: the cache when notifications keep it current,
    /// else the database (which also refreshes the cache).
    pub async fn latest(&self, pool: &sqlx::PgPool) -> Result<Option<Arc<Published>>, sqlx::Error> {
        if self.is_listening() {
            if let Some(p) = self.cached() {
                return Ok(Some(p));
            }
        }
        self.refresh(pool).await?;
        Ok(self.cached())
    }

    /// Loads the newest stored version into the cache when it is newer than
    /// the cached one. Asks for the version first: payloads can be hundreds
    /// of megabytes, and are only read when they are new. Returns whether the
    /// cache changed.
    pub async fn refresh(&self, pool: &sqlx::PgPool) -> Result<bool, sqlx::Error> {
        let newest: Option<i64> = sqlx::query_scalar(
            "SELECT max(version) FROM sentinel.policy_snapshots WHERE payload IS NOT NULL",
        )
        .fetch_one(pool)
        .await?;
        let Some(newest) = newest.and_then(|v| u64::try_from(v).ok()) else {
            return Ok(false);
        };
        if self.cached().is_some_and(|c| c.version >= newest) {
            return Ok(false);
        }
        Ok(match snapshot::load_published(pool, Some(newest)).await? {
            Some(p) => self.offer(p),
            // Pruned in between: the next call sees the newer one.
            None => false,
        })
    }
}

/// Starts the publisher and the listener of `state` (what `serve` runs).
pub fn spawn(state: &AppState) -> Vec<tokio::task::JoinHandle<()>> {
    vec![
        tokio::spawn(listen(state.clone())),
        tokio::spawn(publish_loop(state.clone())),
    ]
}

/// LISTENs on both channels; reconnects (and re-checks everything, since
/// notifications sent while disconnected are lost) when the connection drops.
async fn listen(state: AppState) {
    let live = &state.live;
    let mut closing = live.closing();
    loop {
        let mut listener = match PgListener::connect_with(&state.pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "snapshot listener cannot connect; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = closing.changed() => return,
                }
            }
        };
        if let Err(e) = listener
            .listen_all([POLICY_CHANNEL, SNAPSHOT_CHANNEL])
            .await
        {
            tracing::warn!(error = %e, "snapshot listener cannot LISTEN; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        // Anything may have happened while not listening.
        refresh_latest(&state).await;
        live.listening.store(true, Ordering::Release);
        live.poke();
        loop {
            let next = tokio::select! {
                n = listener.try_recv() => n,
                _ = closing.changed() => return,
            };
            match next {
                Ok(Some(n)) if n.channel() == POLICY_CHANNEL => live.poke(),
                Ok(Some(_)) => refresh_latest(&state).await,
                Ok(None) | Err(_) => {
                    live.listening.store(false, Ordering::Release);
                    tracing::warn!("snapshot listener lost its connection; reconnecting");
                    break;
                }
            }
        }
    }
}

async fn refresh_latest(state: &AppState) {
    match state.live.refresh(&state.pool).await {
        Ok(true) => {
            if let Some(c) = state.live.cached() {
                state.metrics.snapshot_version.set(c.version as i64);
            }
        }
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, "cannot load the latest snapshot"),
    }
}

/// Waits for a change (or a tick), debounces, publishes.
async fn publish_loop(state: AppState) {
    let cfg = &state.config;
    let debounce = Duration::from_millis(cfg.snapshot_debounce_ms);
    let max_delay = Duration::from_millis(cfg.snapshot_max_delay_ms.max(cfg.snapshot_debounce_ms));
    let mut tick = tokio::time::interval(Duration::from_secs(cfg.snapshot_tick_seconds.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut closing = state.live.closing();
    // The revision that last failed to compile: not retried until it changes.
    let mut failed: Option<i64> = None;
    loop {
        tokio::select! {
            _ = state.live.poke.notified() => {
                // Debounce: publish after `debounce` without a new change, or
                // `max_delay` after the first one, whichever comes first.
                let deadline = Instant::now() + max_delay;
                loop {
                    let quiet = tokio::time::sleep(debounce);
                    let hard = tokio::time::sleep_until(deadline.into());
                    tokio::select! {
                        _ = state.live.poke.notified() => {
                            if Instant::now() >= deadline { break; }
                        }
                        _ = quiet => break,
                        _ = hard => break,
                    }
                }
            }
            _ = tick.tick() => {}
            _ = closing.changed() => return,
        }
        publish_now(&state, &mut failed).await;
    }
}

async fn publish_now(state: &AppState, failed: &mut Option<i64>) {
    let m = &state.metrics;
    if let Some(f) = *failed {
        match sqlx::query_scalar::<_, i64>("SELECT revision FROM sentinel.policy_revision")
            .fetch_one(&state.pool)
            .await
        {
            Ok(r) if r == f => return,
            _ => {}
        }
    }
    match snapshot::publish(&state.pool, None, false).await {
        Ok(Outcome::Published {
            snapshot,
            compile,
            sign,
        }) => {
            *failed = None;
            let v = snapshot.version;
            m.snapshot_publish_total.inc();
            m.snapshot_compile_seconds.observe(compile.as_secs_f64());
            m.snapshot_sign_seconds.observe(sign.as_secs_f64());
            m.snapshot_payload_bytes.set(snapshot.payload.len() as i64);
            m.snapshot_version.set(v as i64);
            tracing::info!(
                version = v,
                bytes = snapshot.payload.len(),
                compile_ms = compile.as_millis() as u64,
                "policy snapshot published"
            );
            state.live.offer(snapshot);
            if let Err(e) = state.live.reload_jwks(&state.pool).await {
                tracing::warn!(error = %e, "cannot reload the snapshot JWKS");
            }
            match snapshot::prune(&state.pool, state.config.snapshot_retain).await {
                Ok(n) if n > 0 => tracing::debug!(deleted = n, "old snapshots pruned"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot prune old snapshots"),
            }
        }
        Ok(Outcome::Unchanged(_)) => {}
        Ok(Outcome::Invalid { revision, errors }) => {
            *failed = Some(revision);
            m.snapshot_publish_failures
                .with_label_values(&["compile"])
                .inc();
            tracing::error!(
                revision,
                errors = ?errors,
                "stored policy does not compile; the last snapshot stays published"
            );
        }
        Err(e) => {
            m.snapshot_publish_failures
                .with_label_values(&["error"])
                .inc();
            tracing::warn!(error = %e, "cannot publish a policy snapshot; will retry");
        }
    }
}
