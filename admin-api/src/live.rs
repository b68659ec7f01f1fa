//! Live policy: the publisher that turns committed policy changes into signed
//! snapshots, and the in-memory copy of the latest snapshot that
//! `GET /api/v1/snapshots/latest` serves and long-polls on.
//!
//! Every policy write bumps `sentinel.policy_revision` at commit and sends
//! `NOTIFY sentinel_policy` (migration 0002). The publisher LISTENs and
//! publishes through [`crate::snapshot::publish`]: a change after a quiet
//! spell at once, further ones at most one publication per debounce
//! interval, and bursts at most one per `max_delay` ([`Pacer`]); it also ticks, so a notification lost with a dropped connection delays a
//! change by one tick at most, never loses it. Each published version is
//! announced with `NOTIFY sentinel_snapshot`, which wakes the long-polls of
//! every admin replica.
//!
//! The latest snapshot is a signed manifest; the parts it lists are served
//! from an in-memory cache keyed by SHA-256 (loaded from the database on a
//! miss), holding only the parts of the latest manifest.
//!
//! Must never publish a policy that does not compile, and never serve
//! anything but stored, signed bytes.

use crate::snapshot::{self, Outcome, Published};
use crate::state::AppState;
use axum::body::Bytes;
use sqlx::postgres::PgListener;
use std::collections::HashMap;
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
    /// The snapshot JWKS, with the ticket of the load that read it.
    jwks: Mutex<(u64, Arc<serde_json::Value>)>,
    /// Tickets of JWKS loads, in the order they began.
    jwks_loads: std::sync::atomic::AtomicU64,
    /// The process is shutting down: long-polls answer now.
    closing: watch::Sender<bool>,
    /// Part bytes by SHA-256: only parts of the cached latest manifest.
    parts: Mutex<HashMap<String, Bytes>>,
    /// Held while loading missing parts, so that concurrent full fetches
    /// (gateways restarting together) read them from the database once.
    part_loader: tokio::sync::Mutex<()>,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            latest: watch::channel(None).0,
            poke: Notify::new(),
            listening: AtomicBool::new(false),
            jwks: Mutex::new((0, Arc::new(serde_json::json!({ "keys": [] })))),
            jwks_loads: std::sync::atomic::AtomicU64::new(0),
            closing: watch::channel(false).0,
            parts: Mutex::new(HashMap::new()),
            part_loader: tokio::sync::Mutex::new(()),
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

    /// Stores `p` as the latest when it is newer than the cached one, and
    /// drops cached parts it does not list.
    pub fn offer(&self, p: Published) -> bool {
        let p = Arc::new(p);
        let changed = self.latest.send_if_modified(|cur| {
            if cur.as_ref().is_some_and(|c| c.version >= p.version) {
                false
            } else {
                *cur = Some(Arc::clone(&p));
                true
            }
        });
        if changed {
            let mut parts = lock(&self.parts);
            // A newer version may have been offered in between: keep its parts.
            let current = self.cached();
            parts.retain(|sha, _| current.as_ref().is_some_and(|c| c.lists(sha)));
        }
        changed
    }

    /// Caches part bytes the latest manifest lists (a publisher hands over
    /// the parts it just stored).
    pub fn offer_parts(&self, new: impl IntoIterator<Item = (String, Bytes)>) {
        let Some(current) = self.cached() else {
            return;
        };
        let mut parts = lock(&self.parts);
        for (sha, body) in new {
            if current.lists(&sha) {
                parts.insert(sha, body);
            }
        }
    }

    /// The bytes of `p`'s parts whose `since` is above `since` (see
    /// [`Published::parts_since`]): from the cache, missing ones from the
    /// database. An error when a listed part is not stored.
    pub async fn parts(
        &self,
        pool: &sqlx::PgPool,
        p: &Published,
        since: u64,
    ) -> anyhow::Result<Vec<(String, Bytes)>> {
        let wanted = p.parts_since(since);
        let missing = |parts: &HashMap<String, Bytes>| -> Vec<&str> {
            wanted
                .iter()
                .copied()
                .filter(|s| !parts.contains_key(*s))
                .collect()
        };
        let mut loaded: HashMap<String, Bytes> = HashMap::new();
        if !missing(&lock(&self.parts)).is_empty() {
            let _loading = self.part_loader.lock().await;
            let todo = missing(&lock(&self.parts));
            if !todo.is_empty() {
                for (sha, body) in snapshot::load_parts(pool, &todo).await? {
                    loaded.insert(sha, body);
                }
                let current = self.cached();
                let mut parts = lock(&self.parts);
                for (sha, body) in &loaded {
                    if current.as_ref().is_some_and(|c| c.lists(sha)) {
                        parts.insert(sha.clone(), body.clone());
                    }
                }
            }
        }
        let parts = lock(&self.parts);
        wanted
            .iter()
            .map(|sha| {
                parts
                    .get(*sha)
                    .or_else(|| loaded.get(*sha))
                    .map(|b| ((*sha).to_owned(), b.clone()))
                    .ok_or_else(|| {
                        anyhow::anyhow!("part {sha} of version {} is not stored", p.version)
                    })
            })
            .collect()
    }

    /// How many part bytes are cached.
    pub fn cached_part_bytes(&self) -> usize {
        lock(&self.parts).values().map(Bytes::len).sum()
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
            Ok(g) => Arc::clone(&g.1),
            Err(p) => Arc::clone(&p.into_inner().1),
        }
    }

    /// Reloads the published snapshot keys from the database.
    ///
    /// Loads may overlap (the periodic key reload and the publisher's reload
    /// before it offers a version): a load that began earlier never replaces
    /// the result of one that began later, so a slow read from before a
    /// rotation cannot hide the rotated key again.
    pub async fn reload_jwks(&self, pool: &sqlx::PgPool) -> Result<(), sqlx::Error> {
        let ticket = self
            .jwks_loads
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        let mut conn = pool.acquire().await?;
        let v = Arc::new(crate::snapshot_keys::jwks(&mut conn).await?);
        let mut g = match self.jwks.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if ticket > g.0 {
            *g = (ticket, v);
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

    /// Loads the newest stored manifest into the cache when it is newer than
    /// the cached one (parts are read when a request needs them). Asks for
    /// the version first: manifests are read only when they are new. Returns
    /// whether the cache changed.
    pub async fn refresh(&self, pool: &sqlx::PgPool) -> Result<bool, sqlx::Error> {
        let newest: Option<i64> = sqlx::query_scalar(
            "SELECT max(version) FROM sentinel.policy_snapshots WHERE manifest IS NOT NULL",
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
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
    match state.live.refresh(&state.platform).await {
        Ok(true) => {
            if let Some(c) = state.live.cached() {
                state.metrics.snapshot_version.set(c.version as i64);
            }
        }
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, "cannot load the latest snapshot"),
    }
}

/// When the publisher may start its next publication. Publishing at once
/// is what makes a change reach the gateways quickly; spacing publications
/// is what keeps a bulk change from becoming a publication (and a delta to
/// every gateway) per row:
///
/// - a change after a quiet spell (no publication started within the
///   interval below) is published at once (leading edge);
/// - while changes come one at a time, publications start at least
///   `debounce` apart; changes in between are taken in by the next one;
/// - once a publication took in more than one committed change (a burst),
///   the next starts at least `max_delay` after it, until one takes in a
///   single change again.
#[derive(Debug, Clone)]
pub struct Pacer {
    debounce: Duration,
    max_delay: Duration,
    /// Start of the last publication and whether it took in a burst.
    last: Option<(Instant, bool)>,
}

impl Pacer {
    pub fn new(debounce: Duration, max_delay: Duration) -> Pacer {
        Pacer {
            debounce,
            max_delay: max_delay.max(debounce),
            last: None,
        }
    }

    /// The earliest moment a publication for a change seen at `now` may start.
    pub fn next_start(&self, now: Instant) -> Instant {
        match self.last {
            None => now,
            Some((at, burst)) => {
                let gap = if burst { self.max_delay } else { self.debounce };
                (at + gap).max(now)
            }
        }
    }

    /// Records a publication that started at `at` and took in `changes`
    /// committed changes.
    pub fn published(&mut self, at: Instant, changes: u64) {
        self.last = Some((at, changes > 1));
    }
}

/// Waits for a change (or a tick), paces ([`Pacer`]), publishes.
async fn publish_loop(state: AppState) {
    let cfg = &state.config;
    let mut pacer = Pacer::new(
        Duration::from_millis(cfg.snapshot_debounce_ms),
        Duration::from_millis(cfg.snapshot_max_delay_ms),
    );
    let mut tick = tokio::time::interval(Duration::from_secs(cfg.snapshot_tick_seconds.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut closing = state.live.closing();
    // The revision that last failed to compile: not retried until it changes.
    let mut failed: Option<i64> = None;
    loop {
        tokio::select! {
            _ = state.live.poke.notified() => {
                // Changes committed while this waits are taken in by the
                // publication (their pokes leave one permit: a check after).
                let at = pacer.next_start(Instant::now());
                tokio::select! {
                    _ = tokio::time::sleep_until(at.into()) => {}
                    _ = closing.changed() => return,
                }
            }
            _ = tick.tick() => {}
            _ = closing.changed() => return,
        }
        let started = Instant::now();
        if let Some(changes) = publish_now(&state, &mut failed).await {
            pacer.published(started, changes);
        }
    }
}

/// Publishes if the policy changed; the changes a publication took in
/// (`None`: nothing was published, so the next change need not wait; an
/// attempt that failed counts as a burst, so a retry is not immediate).
async fn publish_now(state: &AppState, failed: &mut Option<i64>) -> Option<u64> {
    let m = &state.metrics;
    if let Some(f) = *failed {
        match sqlx::query_scalar::<_, i64>("SELECT revision FROM sentinel.policy_revision")
            .fetch_one(&state.platform)
            .await
        {
            Ok(r) if r == f => return None,
            _ => {}
        }
    }
    let started = Instant::now();
    match snapshot::publish(&state.platform, None, false).await {
        Ok(Outcome::Published {
            snapshot,
            new_parts,
            shards_built,
            changes,
            compile,
            sign,
        }) => {
            *failed = None;
            let v = snapshot.version;
            let bytes = snapshot.manifest_bytes.len()
                + new_parts.iter().map(|(_, b)| b.len()).sum::<usize>();
            m.snapshot_publish_total.inc();
            m.snapshot_compile_seconds.observe(compile.as_secs_f64());
            m.snapshot_sign_seconds.observe(sign.as_secs_f64());
            m.snapshot_payload_bytes.set(bytes as i64);
            m.snapshot_version.set(v as i64);
            tracing::info!(
                version = v,
                bytes,
                shards_built,
                new_parts = new_parts.len(),
                compile_ms = compile.as_millis() as u64,
                publish_ms = started.elapsed().as_millis() as u64,
                "policy snapshot published"
            );
            // The JWKS first: a gateway that sees a version signed by a newly
            // rotated key must find that key when it asks for it.
            if let Err(e) = state.live.reload_jwks(&state.platform).await {
                tracing::warn!(error = %e, "cannot reload the snapshot JWKS");
            }
            state.live.offer(snapshot);
            state.live.offer_parts(new_parts);
            match snapshot::prune(&state.platform, state.config.snapshot_retain).await {
                Ok(n) if n > 0 => tracing::debug!(deleted = n, "old snapshots pruned"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot prune old snapshots"),
            }
            Some(changes)
        }
        Ok(Outcome::Unchanged(_)) => None,
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
            Some(2)
        }
        Err(e) => {
            m.snapshot_publish_failures
                .with_label_values(&["error"])
                .inc();
            tracing::warn!(error = %e, "cannot publish a policy snapshot; will retry");
            Some(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Pacer;
    use std::time::{Duration, Instant};

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_change_after_a_quiet_spell_is_published_at_once() {
        let t0 = Instant::now();
        let mut p = Pacer::new(100 * MS, 500 * MS);
        assert_eq!(p.next_start(t0), t0, "the very first change");
        p.published(t0, 1);
        let later = t0 + 150 * MS;
        assert_eq!(p.next_start(later), later, "quiet for longer than debounce");
        // Even after a burst, once `max_delay` has passed.
        p.published(later, 7);
        let quiet = later + 600 * MS;
        assert_eq!(p.next_start(quiet), quiet);
    }

    #[test]
    fn single_changes_are_spaced_by_debounce_and_bursts_by_max_delay() {
        let t0 = Instant::now();
        let mut p = Pacer::new(100 * MS, 500 * MS);
        p.published(t0, 1);
        assert_eq!(p.next_start(t0 + 30 * MS), t0 + 100 * MS);
        let t1 = t0 + 100 * MS;
        p.published(t1, 3);
        assert_eq!(p.next_start(t1 + 30 * MS), t1 + 500 * MS, "in a burst");
        let t2 = t1 + 500 * MS;
        p.published(t2, 1);
        assert_eq!(
            p.next_start(t2 + 10 * MS),
            t2 + 100 * MS,
            "the burst is over"
        );
    }

    #[test]
    fn max_delay_is_never_below_debounce() {
        let t0 = Instant::now();
        let mut p = Pacer::new(300 * MS, 100 * MS);
        p.published(t0, 5);
        assert_eq!(p.next_start(t0), t0 + 300 * MS);
    }
}
