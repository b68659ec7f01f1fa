//! Local GCRA limits: one `governor` limiter per distinct quota, keyed by a
//! 64-bit keyed hash of (limit, subject, quota), over a store that lets a denied request hand back the
//! tokens it took from the other limits.
//!
//! Why a custom store: `governor` decides and consumes in one atomic step per key, and has no
//! way to undo. A request checked against tenant, principal and route limits that is denied
//! by the principal limit must not eat the tenant's budget (else one principal's flood
//! starves its whole tenant). So every limit is checked with `governor` as usual and, when
//! any of them denies, the tokens taken by the others are refunded (their theoretical arrival
//! time moved back by one period) through the store we own. Between the take and the refund
//! a concurrent request on the same subject sees one token fewer: the error is strictly on
//! the safe side and lasts nanoseconds.
//!
//! Memory: an entry is an 8-byte id and an 8-byte state. The housekeeping sweep drops every
//! entry whose limit is full again (its state is then the same as a missing entry), so memory
//! follows the subjects active within the last refill window, not all subjects ever seen.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use dashmap::DashMap;
use governor::clock::{Clock, QuantaClock, QuantaInstant, Reference};
use governor::middleware::{NoOpMiddleware, StateInformationMiddleware};
use governor::nanos::Nanos;
use governor::state::keyed::ShrinkableKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed, StateStore};
use governor::RateLimiter;

use super::{KeyResult, LimitKey, Outcome, Quota, Source, Tightest};
use crate::clock::ManualClock;

/// The clock of the GCRA maths: the process's monotonic clock (quanta), or a
/// test's [`ManualClock`], so tests can move time instead of sleeping.
#[derive(Clone)]
pub(crate) enum GcraClock {
    System {
        clock: QuantaClock,
        start: QuantaInstant,
    },
    Manual(Arc<ManualClock>),
}

impl GcraClock {
    pub(crate) fn system() -> Self {
        let clock = QuantaClock::default();
        let start = clock.now();
        GcraClock::System { clock, start }
    }
}

impl Clock for GcraClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        match self {
            GcraClock::System { clock, start } => clock.now().duration_since(*start),
            GcraClock::Manual(m) => Nanos::from(m.nanos()),
        }
    }
}

/// A (limit, subject, quota) identity.
pub(crate) type KeyId = u64;

/// Maps (limit, subject, quota) to a [`KeyId`] with SipHash under a random per-process key:
/// no allocation per check and fixed-size entries. Collisions cannot be crafted by a client
/// (the key is secret) and are negligible by chance (about 3 in 100 million for a million
/// subjects active at once under one quota); one would merely make two subjects share a
/// bucket.
pub(crate) struct KeyHasher(RandomState);

impl KeyHasher {
    pub(crate) fn new() -> Self {
        Self(RandomState::new())
    }

    pub(crate) fn id(&self, key: &LimitKey<'_>) -> KeyId {
        let mut h = self.0.build_hasher();
        // 0xff never occurs in UTF-8, so (limit, subject) pairs cannot run together.
        h.write(key.limit.as_bytes());
        h.write_u8(0xff);
        h.write(key.subject.as_bytes());
        h.write_u8(0xff);
        h.write_u32(key.quota.burst);
        h.write_u128(key.quota.period.as_nanos());
        h.finish()
    }
}

/// The ids are already uniformly random: use them as their own hash.
#[derive(Clone, Copy, Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only reached for keys other than `u64`, which this module never uses.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, i: u64) {
        self.0 = i;
    }
}

pub(crate) type IdMap<V> = DashMap<KeyId, V, BuildHasherDefault<IdHasher>>;

/// The keyed state store: shared between the `governor` limiter and this module (for
/// refunds), hence the `Arc`.
#[derive(Clone, Default)]
struct Store(Arc<IdMap<InMemoryState>>);

fn read_tat(state: &InMemoryState) -> Option<Nanos> {
    // A closure that refuses to write is a plain atomic read.
    state
        .measure_and_replace(&NotKeyed::NonKey, Err::<((), Nanos), _>)
        .err()
        .flatten()
}

impl StateStore for Store {
    type Key = KeyId;

    fn measure_and_replace<T, F, E>(&self, key: &KeyId, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        if let Some(state) = self.0.get(key) {
            return state.measure_and_replace(&NotKeyed::NonKey, f);
        }
        let state = self.0.entry(*key).or_default();
        state.measure_and_replace(&NotKeyed::NonKey, f)
    }
}

impl ShrinkableKeyedStateStore<KeyId> for Store {
    fn retain_recent(&self, drop_below: Nanos) {
        self.0
            .retain(|_, state| read_tat(state).is_some_and(|tat| tat > drop_below));
    }

    fn shrink_to_fit(&self) {
        self.0.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

type Gcra = RateLimiter<KeyId, Store, GcraClock, StateInformationMiddleware>;

/// Every subject of one quota.
struct QuotaLimiter {
    gcra: Gcra,
    store: Store,
    period: Duration,
    burst: u32,
}

impl QuotaLimiter {
    fn new(quota: Quota, clock: GcraClock) -> Self {
        let period = quota.period_clamped();
        let burst = quota.burst_clamped();
        let store = Store::default();
        // INVARIANT: `period` is at least 1 µs and `burst` at least 1 (clamped above), so
        // both conversions succeed; the fallback only satisfies the type checker.
        let gq = governor::Quota::with_period(period)
            .unwrap_or_else(|| governor::Quota::per_second(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
        let plain: RateLimiter<KeyId, Store, GcraClock, NoOpMiddleware<Nanos>> =
            RateLimiter::new(gq, store.clone(), clock);
        let gcra = plain.with_middleware::<StateInformationMiddleware>();
        Self {
            gcra,
            store,
            period,
            burst,
        }
    }

    fn check(&self, id: KeyId) -> KeyResult {
        match self.gcra.check_key(&id) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                KeyResult {
                    allowed: true,
                    remaining,
                    retry_after: Duration::ZERO,
                    reset: self
                        .period
                        .saturating_mul(self.burst.saturating_sub(remaining)),
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.gcra.clock().now());
                let tau = self.period.saturating_mul(self.burst - 1);
                KeyResult {
                    allowed: false,
                    remaining: 0,
                    retry_after: wait,
                    reset: wait.saturating_add(tau),
                }
            }
        }
    }

    /// Gives back the token an allowed check took.
    fn refund(&self, id: KeyId) {
        let period = u64::try_from(self.period.as_nanos()).unwrap_or(u64::MAX);
        if let Some(state) = self.store.0.get(&id) {
            let _ = state.measure_and_replace(&NotKeyed::NonKey, |old| match old {
                Some(tat) => Ok(((), Nanos::from(tat.as_u64().saturating_sub(period)))),
                None => Err(()),
            });
        }
    }

    fn sweep(&self) -> usize {
        self.gcra.retain_recent();
        self.gcra.shrink_to_fit();
        self.gcra.len()
    }
}

/// Local limits for every quota in use.
pub(crate) struct LocalLimiter {
    /// Read on every check, written when a quota is seen for the first time. Limiters are
    /// never removed: their number is bounded by the quotas in config and snapshot, and an
    /// empty one costs a few hundred bytes.
    limiters: ArcSwap<HashMap<Quota, Arc<QuotaLimiter>>>,
    ids: KeyHasher,
    clock: GcraClock,
}

impl LocalLimiter {
    pub(crate) fn new(clock: GcraClock) -> Self {
        Self {
            limiters: ArcSwap::from_pointee(HashMap::new()),
            ids: KeyHasher::new(),
            clock,
        }
    }

    fn insert(&self, quota: Quota) -> Arc<QuotaLimiter> {
        let fresh = Arc::new(QuotaLimiter::new(quota, self.clock.clone()));
        self.limiters.rcu(|map| {
            let mut map = HashMap::clone(map);
            map.entry(quota).or_insert_with(|| Arc::clone(&fresh));
            map
        });
        self.limiters.load().get(&quota).cloned().unwrap_or(fresh)
    }

    /// Checks every key; when any denies, refunds the tokens the others took.
    pub(crate) fn check(&self, keys: &[LimitKey<'_>], source: Source) -> Outcome {
        let map = self.limiters.load();
        let mut tightest = Tightest::default();
        // Bit i set: key i was allowed (and took a token). INVARIANT: requests carry a handful
        // of limits; past 64 a denial leaves the extra limits' tokens taken.
        let mut taken: u64 = 0;
        let mut denied = false;
        for (i, key) in keys.iter().enumerate() {
            let id = self.ids.id(key);
            let result = match map.get(&key.quota) {
                Some(limiter) => limiter.check(id),
                None => self.insert(key.quota).check(id),
            };
            if result.allowed {
                taken |= 1u64.checked_shl(i as u32).unwrap_or(0);
            } else {
                denied = true;
            }
            tightest.push(i, result);
        }
        if denied && taken != 0 {
            let map = self.limiters.load();
            for (i, key) in keys.iter().enumerate().take(64) {
                if taken & (1u64 << i) != 0 {
                    if let Some(limiter) = map.get(&key.quota) {
                        limiter.refund(self.ids.id(key));
                    }
                }
            }
        }
        tightest.finish(keys, source)
    }

    /// Drops every key whose limit is full again; answers the keys left.
    pub(crate) fn sweep(&self) -> usize {
        self.limiters.load().values().map(|l| l.sweep()).sum()
    }

    pub(crate) fn key_count(&self) -> usize {
        self.limiters.load().values().map(|l| l.gcra.len()).sum()
    }
}
