//! Graceful stop. On `SIGTERM` (and after a `SIGQUIT` hand-over) Pingora
//! closes the listeners and idle kept-alive connections at once, lets the
//! requests in flight finish, and then sleeps out its whole grace period
//! (5 minutes by default) even with nothing left to do. [`Drain`] counts the
//! requests in flight ([`InFlight`], held by each request's context) and ends
//! the process as soon as none is left, or when `drain_timeout` has passed
//! with some still running (they are cut then, as Kubernetes would cut them
//! at its own deadline). Pingora's grace period is set just past
//! `drain_timeout` as a fallback.
//!
//! Audit events are written before a response's first byte, so exiting here
//! loses none (docs/security.md, "Limits").

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// How often the count is looked at while draining.
const POLL: Duration = Duration::from_millis(20);

/// One request in flight, from its head being read to its context being
/// dropped (after the response and `logging`).
#[derive(Debug)]
pub struct InFlight(());

impl Default for InFlight {
    fn default() -> Self {
        IN_FLIGHT.fetch_add(1, Ordering::AcqRel);
        InFlight(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Requests in flight in this process.
pub fn in_flight() -> usize {
    IN_FLIGHT.load(Ordering::Acquire)
}

/// The background service that ends the process once a graceful stop has
/// nothing left in flight.
pub struct Drain {
    pub timeout: Duration,
    /// Synced before the exit (`fsync` policy permitting).
    pub audit: Option<std::sync::Arc<crate::audit::Audit>>,
    /// Its buffered spans are exported before the exit (at most the SDK's
    /// shutdown timeout, 5 s, when the collector does not answer). Only
    /// here: a second shutdown elsewhere would return at once and let the
    /// exit cut the first one's export short.
    pub tracing: Option<std::sync::Arc<crate::otel::Tracing>>,
}

#[async_trait]
impl BackgroundService for Drain {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                return;
            }
        }
        let started = Instant::now();
        while in_flight() > 0 && started.elapsed() < self.timeout {
            tokio::time::sleep(POLL).await;
        }
        let left = in_flight();
        if left > 0 {
            tracing::warn!(
                in_flight = left,
                waited_ms = started.elapsed().as_millis() as u64,
                "graceful stop: drain timeout reached, cutting the requests still in flight"
            );
        } else {
            tracing::info!(
                waited_ms = started.elapsed().as_millis() as u64,
                "graceful stop: no request in flight, exiting"
            );
        }
        if let Some(audit) = &self.audit {
            audit.sync();
        }
        if let Some(t) = self.tracing.clone() {
            let _ = tokio::task::spawn_blocking(move || t.shutdown()).await;
        }
        std::process::exit(0);
    }
}
