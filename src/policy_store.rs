//! Holds the live policy snapshot behind `ArcSwap` and its freshness. Where
//! the policy comes from is elsewhere: policy files in [`crate::live::files`],
//! signed snapshots in [`crate::live::snapshot`].

use crate::clock::unix_now;
use arc_swap::ArcSwapOption;
use sentinel_policy::{Policy, Snapshot};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The current snapshot, if any has ever loaded, and how fresh it is.
#[derive(Default)]
pub struct PolicyStore {
    current: ArcSwapOption<Policy>,
    /// Unix seconds of the last successful swap.
    loaded_at: AtomicI64,
    /// Unix seconds of the last successful exchange with the policy source
    /// (a swap, or the admin API answering "nothing newer").
    checked_at: AtomicI64,
    /// Unix seconds the snapshot in force was published (0: unknown).
    published_at: AtomicI64,
    /// `on_stale = "refuse"`: seconds since `checked_at` after which
    /// [`PolicyStore::load`] answers `None` (0: never).
    refuse_after: AtomicI64,
}

impl PolicyStore {
    pub fn new() -> PolicyStore {
        PolicyStore::default()
    }

    /// One consistent view for a whole request. `None` when no snapshot has
    /// loaded, or when it is older than `max_age` and the source says refuse.
    pub fn load(&self) -> Option<Arc<Policy>> {
        let snapshot = self.current.load_full()?;
        let refuse_after = self.refuse_after.load(Ordering::Relaxed);
        if refuse_after > 0 && unix_now() - self.checked_at.load(Ordering::Relaxed) > refuse_after {
            return None;
        }
        Some(snapshot)
    }

    /// The snapshot in force, stale or not (for metrics and the poller).
    pub fn current(&self) -> Option<Arc<Policy>> {
        self.current.load_full()
    }

    pub fn is_loaded(&self) -> bool {
        self.current.load().is_some()
    }

    /// Swaps in a policy compiled whole (policy files).
    pub fn swap(&self, snapshot: Snapshot) {
        self.swap_policy(Arc::new(Policy::whole(snapshot)));
    }

    pub fn swap_policy(&self, policy: Arc<Policy>) {
        let version = policy.version();
        self.current.store(Some(policy));
        let now = unix_now();
        self.loaded_at.store(now, Ordering::Relaxed);
        self.checked_at.store(now, Ordering::Relaxed);
        crate::metrics::snapshot_swapped(version);
    }

    /// Swaps in a signed snapshot published at `published_at`, last confirmed
    /// current by its source at `checked_at` (unix seconds).
    pub fn swap_published(&self, policy: Arc<Policy>, published_at: i64, checked_at: i64) {
        self.swap_policy(policy);
        self.published_at.store(published_at, Ordering::Relaxed);
        self.checked_at.store(checked_at, Ordering::Relaxed);
    }

    /// The source confirmed the snapshot in force is current.
    pub fn mark_checked(&self) {
        self.checked_at.store(unix_now(), Ordering::Relaxed);
    }

    /// Past `max_age` since the last successful check, [`PolicyStore::load`]
    /// answers `None`.
    pub fn refuse_when_older_than(&self, max_age: Duration) {
        self.refuse_after
            .store(max_age.as_secs().max(1) as i64, Ordering::Relaxed);
    }

    /// Seconds since the last successful swap (`None` before the first).
    pub fn age_secs(&self) -> Option<i64> {
        self.is_loaded()
            .then(|| unix_now() - self.loaded_at.load(Ordering::Relaxed))
    }

    /// Seconds since the source last confirmed the snapshot (`None` before the first).
    pub fn check_age_secs(&self) -> Option<i64> {
        self.is_loaded()
            .then(|| unix_now() - self.checked_at.load(Ordering::Relaxed))
    }

    /// Seconds since the snapshot in force was published (`None` if unknown).
    pub fn publication_age_secs(&self) -> Option<i64> {
        let at = self.published_at.load(Ordering::Relaxed);
        (self.is_loaded() && at > 0).then(|| unix_now() - at)
    }
}
