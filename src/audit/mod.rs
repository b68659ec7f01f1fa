//! The gateway's audit trail (docs/audit-gateway.md): every decision the
//! proxy answers becomes one [`Event`], appended to the local [`spool`]
//! before the response's first byte leaves, and shipped in order to the
//! admin API by [`ship`]. Knows nothing of Pingora: the proxy builds the
//! event (`proxy/audit.rs`) and calls [`Audit::record`].

pub mod event;
pub mod ship;
pub mod spool;

pub use event::{Event, Outcome, PrincipalKind, Rules, Time};

use crate::config::{AdminSource, AuditConfig, Fsync};
use prometheus::{Histogram, IntCounter, IntGauge};
use spool::{AppendError, Spool, SpoolOptions};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Drops are logged at most once per this many seconds (with the count since).
const DROP_LOG_SECS: i64 = 10;

/// The audit metrics, resolved once (no label hashing per event). Without a
/// metrics registry they count into handles nobody reads.
pub struct Counters {
    events: [IntCounter; 5],
    pub dropped: IntCounter,
    pub spool_bytes: IntGauge,
    pub shipped: IntCounter,
    pub ship_failures: IntCounter,
    pub ship_seconds: Histogram,
    pub rejected: IntCounter,
    pub torn: IntCounter,
}

impl Counters {
    fn new() -> Option<Counters> {
        let m = crate::metrics::get()?;
        let [a, d, r, s, e] = Outcome::ALL.map(|o| m.audit_events.with_label_values(&[o.as_str()]));
        Some(Counters {
            events: [a, d, r, s, e],
            dropped: m.audit_dropped.clone(),
            spool_bytes: m.audit_spool_bytes.clone(),
            shipped: m.audit_shipped.clone(),
            ship_failures: m.audit_ship_failures.clone(),
            ship_seconds: m.audit_ship_seconds.clone(),
            rejected: m.audit_rejected.clone(),
            torn: m.audit_torn.clone(),
        })
    }

    fn unregistered() -> Result<Counters, prometheus::Error> {
        let c = |n: &str| IntCounter::new(n, n);
        Ok(Counters {
            events: [c("a")?, c("d")?, c("r")?, c("s")?, c("e")?],
            dropped: c("dropped")?,
            spool_bytes: IntGauge::new("bytes", "bytes")?,
            shipped: c("shipped")?,
            ship_failures: c("failures")?,
            ship_seconds: Histogram::with_opts(prometheus::HistogramOpts::new("s", "s"))?,
            rejected: c("rejected")?,
            torn: c("torn")?,
        })
    }

    fn event(&self, o: Outcome) -> &IntCounter {
        &self.events[o as usize]
    }
}

/// Where events go beyond the spool.
#[derive(Clone)]
struct ShipTo {
    url: String,
    api_key: crate::config::Secret,
}

pub struct Audit {
    spool: Arc<Spool>,
    counters: Arc<Counters>,
    ship: Option<ShipTo>,
    batch_events: usize,
    flush: Duration,
    fsync: Fsync,
    drops_logged_at: AtomicI64,
    drops_unlogged: AtomicU64,
}

impl Audit {
    /// Opens the spool (creating its directory). Events are shipped to the
    /// admin API when `admin` is set; otherwise they stay in the spool.
    pub fn open(cfg: &AuditConfig, admin: Option<&AdminSource>) -> anyhow::Result<Audit> {
        let spool = Spool::open(SpoolOptions {
            dir: cfg.spool_dir.clone(),
            max_bytes: cfg.max_spool_bytes,
            segment_bytes: cfg.segment_bytes,
            fsync: cfg.fsync,
        })
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot open the audit spool `{}`: {e}",
                cfg.spool_dir.display()
            )
        })?;
        let counters = match Counters::new() {
            Some(c) => c,
            None => Counters::unregistered()?,
        };
        counters.spool_bytes.set(spool.bytes() as i64);
        Ok(Audit {
            spool: Arc::new(spool),
            counters: Arc::new(counters),
            ship: admin.map(|a| ShipTo {
                url: format!("{}/api/v1/audit/events", a.url),
                api_key: a.api_key.clone(),
            }),
            batch_events: cfg.batch_events,
            flush: cfg.flush,
            fsync: cfg.fsync,
            drops_logged_at: AtomicI64::new(0),
            drops_unlogged: AtomicU64::new(0),
        })
    }

    /// Appends one event to the spool (one `write(2)`; the caller answers
    /// only afterwards). A full spool or a failed write drops the event:
    /// counted, and logged at most once per interval.
    pub fn record(&self, event: &Event<'_>) {
        let written = event::with_line(event, |line| self.spool.append(line));
        match written {
            Some(Ok(())) => self.counters.event(event.outcome).inc(),
            Some(Err(e)) => self.dropped(&e),
            None => self.dropped(&AppendError::Full),
        }
    }

    fn dropped(&self, e: &AppendError) {
        self.counters.dropped.inc();
        let unlogged = self.drops_unlogged.fetch_add(1, Ordering::Relaxed) + 1;
        let now = crate::clock::unix_now();
        let last = self.drops_logged_at.load(Ordering::Relaxed);
        if now - last >= DROP_LOG_SECS
            && self
                .drops_logged_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.drops_unlogged.fetch_sub(unlogged, Ordering::Relaxed);
            tracing::error!(
                error = %e,
                dropped = unlogged,
                spool = %self.spool.dir().display(),
                "audit events dropped (sentinel_audit_dropped_total)"
            );
        }
    }

    /// Starts the shipper (when there is an admin API) and the task that
    /// syncs the spool once a second (`fsync = "interval"`) and updates the
    /// spool gauge.
    pub fn spawn(&self) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = Vec::new();
        if let Some(to) = &self.ship {
            let shipper = ship::Shipper {
                spool: self.spool.clone(),
                counters: self.counters.clone(),
                url: to.url.clone(),
                api_key: to.api_key.clone(),
                batch_events: self.batch_events,
                flush: self.flush,
            };
            tasks.push(tokio::spawn(shipper.run()));
        }
        let spool = self.spool.clone();
        let counters = self.counters.clone();
        let fsync = self.fsync;
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                if fsync == Fsync::Interval {
                    let s = spool.clone();
                    if let Ok(Err(e)) = tokio::task::spawn_blocking(move || s.sync_if_dirty()).await
                    {
                        tracing::warn!(error = %e, "cannot sync the audit spool");
                    }
                }
                counters.spool_bytes.set(spool.bytes() as i64);
            }
        }));
        tasks
    }

    /// On shutdown: what the page cache holds goes to disk.
    pub fn sync(&self) {
        if self.fsync != Fsync::Never {
            let _ = self.spool.sync_if_dirty();
        }
    }
}
