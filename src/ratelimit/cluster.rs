//! Cluster limits: the same GCRA limits shared by every gateway through one Redis, with a
//! local fast path for subjects known to be over a limit and an explicit failure mode.
//!
//! One check is one `EVALSHA` of [`GCRA_SCRIPT`] over every applicable limit: the script
//! reads all of them, and writes new states only when all of them allow, so a denied request
//! takes no tokens from the others (atomically: Redis runs a script alone). Time is Redis's
//! own (`TIME`), so gateway clocks need not agree. Keys expire once their limit is full
//! again, so Redis memory follows active subjects too.
//!
//! Redis is reached through one multiplexed `ConnectionManager` (pipelining concurrent
//! checks on one socket, reconnecting by itself); every call is bounded by the configured
//! timeout. A failed or late call is counted, flips the health state (logged once per
//! transition), and the check is answered by the failure mode. While Redis is down, only one
//! probe per [`PROBE_INTERVAL`] goes to Redis; the other checks take the failure mode at once
//! instead of each waiting out the timeout. The first successful probe resumes shared limits.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, Script};
use tracing::{info, warn};

use super::local::{GcraClock, IdMap, KeyHasher, KeyId, LocalLimiter};
use super::{FailureMode, KeyResult, LimitKey, Outcome, SetupError, Source, Stats, Tightest};

/// While Redis is down, how often one check tries it again.
pub(crate) const PROBE_INTERVAL: Duration = Duration::from_millis(500);

/// Most subjects remembered as over a limit; past this the fast path stops growing (checks
/// still go to Redis, so this only costs round trips).
const FAST_PATH_MAX: usize = 100_000;

/// GCRA over every key at once. KEYS[i] is a limit's state (its theoretical arrival time in
/// µs since the epoch); ARGV[2i-1], ARGV[2i] are its period (µs) and burst. Answers
/// `{allowed, then per key: allowed, remaining, retry_after_us, reset_us}`.
pub(crate) const GCRA_SCRIPT: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local out = {1}
local tats = {}
local allowed = 1
for i = 1, #KEYS do
  local period = tonumber(ARGV[2 * i - 1])
  local tau = period * (tonumber(ARGV[2 * i]) - 1)
  local tat = tonumber(redis.call('GET', KEYS[i]))
  if tat == nil or tat < now then tat = now end
  if now < tat - tau then
    allowed = 0
    out[#out + 1] = 0
    out[#out + 1] = 0
    out[#out + 1] = tat - tau - now
    out[#out + 1] = tat - now
  else
    local next = tat + period
    tats[i] = next
    out[#out + 1] = 1
    out[#out + 1] = math.floor((now + tau + period - next) / period)
    out[#out + 1] = 0
    out[#out + 1] = next - now
  end
end
if allowed == 1 then
  for i = 1, #KEYS do
    local ttl = math.ceil((tats[i] - now) / 1000) + 1
    redis.call('SET', KEYS[i], string.format('%.0f', tats[i]), 'PX', ttl)
  end
end
out[1] = allowed
return out
";

/// A subject known to be over a shared limit. GCRA states only move forward (nothing but a
/// newer request ever changes them, and only to a later time), so no gateway can be allowed
/// through this limit before `until`: answering from here is exact, not a guess.
struct Denied {
    until: Instant,
    full_at: Instant,
}

const UNKNOWN: u8 = 0;
const UP: u8 = 1;
const DOWN: u8 = 2;

pub(crate) struct ClusterLimiter {
    conn: ConnectionManager,
    script: Script,
    failure: FailureMode,
    timeout: Duration,
    prefix: String,
    ids: KeyHasher,
    denied: IdMap<Denied>,
    fallback: LocalLimiter,
    epoch: Instant,
    /// [`UNKNOWN`], [`UP`] or [`DOWN`]: whether the last Redis call succeeded.
    health: AtomicU8,
    /// Milliseconds since `epoch` before which no check tries Redis while it is down.
    next_probe: AtomicU64,
    cluster_errors: AtomicU64,
    fallbacks: AtomicU64,
    fail_closed: AtomicU64,
    fast_path_denials: AtomicU64,
}

impl ClusterLimiter {
    pub(crate) async fn connect(
        url: &str,
        failure: FailureMode,
        timeout: Duration,
        prefix: String,
    ) -> Result<Self, SetupError> {
        if timeout.is_zero() {
            return Err(SetupError::ZeroTimeout);
        }
        let client = Client::open(url).map_err(|_| SetupError::RedisUrl)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout.max(Duration::from_millis(250))))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(PROBE_INTERVAL);
        // Lazy: a Redis that is down at startup is a degraded state, not a setup error.
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|_| SetupError::RedisUrl)?;
        let this = Self {
            conn,
            script: Script::new(GCRA_SCRIPT),
            failure,
            timeout,
            prefix,
            ids: KeyHasher::new(),
            denied: IdMap::default(),
            fallback: LocalLimiter::new(GcraClock::system()),
            epoch: Instant::now(),
            health: AtomicU8::new(UNKNOWN),
            next_probe: AtomicU64::new(0),
            cluster_errors: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
            fail_closed: AtomicU64::new(0),
            fast_path_denials: AtomicU64::new(0),
        };
        // Learn the initial state (and load the script) on a throwaway connection: the managed
        // one connects on first use, so its driver task runs on the serving runtime even when
        // this is called from a short-lived setup runtime.
        let probe = async {
            let mut conn = client.get_multiplexed_async_connection().await?;
            this.script.load_async(&mut conn).await
        };
        match tokio::time::timeout(timeout, probe).await {
            Ok(Ok(_)) => {
                this.health.store(UP, Ordering::Relaxed);
                info!(prefix = %this.prefix, "rate limits shared through redis");
            }
            Ok(Err(e)) => this.failed_call(&e.to_string()),
            Err(_) => this.failed_call("timed out"),
        }
        Ok(this)
    }

    pub(crate) async fn check(&self, keys: &[LimitKey<'_>]) -> Outcome {
        let now = Instant::now();
        let ids: Vec<KeyId> = keys.iter().map(|k| self.ids.id(k)).collect();

        // Fast path: a subject over a shared limit stays over it until its retry time.
        let mut tightest = Tightest::default();
        let mut known_denied = false;
        for (i, id) in ids.iter().enumerate() {
            if let Some(d) = self.denied.get(id) {
                if d.until > now {
                    known_denied = true;
                    tightest.push(
                        i,
                        KeyResult {
                            allowed: false,
                            remaining: 0,
                            retry_after: d.until - now,
                            reset: d.full_at.saturating_duration_since(now),
                        },
                    );
                }
            }
        }
        if known_denied {
            self.fast_path_denials.fetch_add(1, Ordering::Relaxed);
            return tightest.finish(keys, Source::FastPath);
        }

        if !self.should_try_redis(now) {
            return self.degraded(keys);
        }

        let mut invocation = self.script.prepare_invoke();
        for key in keys {
            invocation.key(self.redis_key(key));
            let period_us =
                u64::try_from(key.quota.period_clamped().as_micros()).unwrap_or(u64::MAX);
            invocation.arg(period_us).arg(key.quota.burst_clamped());
        }
        let mut conn = self.conn.clone();
        let reply =
            tokio::time::timeout(self.timeout, invocation.invoke_async::<Vec<i64>>(&mut conn))
                .await;
        let reply = match reply {
            Ok(Ok(reply)) if reply.len() == 1 + 4 * keys.len() => reply,
            Ok(Ok(_)) => return self.failed(keys, "unexpected reply from the rate-limit script"),
            Ok(Err(e)) => return self.failed(keys, &e.to_string()),
            Err(_) => return self.failed(keys, "timed out"),
        };
        self.came_up();

        let mut tightest = Tightest::default();
        for (i, (fields, id)) in reply[1..].chunks_exact(4).zip(&ids).enumerate() {
            let micros = |v: i64| Duration::from_micros(u64::try_from(v).unwrap_or(0));
            let result = KeyResult {
                allowed: fields[0] == 1,
                remaining: u32::try_from(fields[1]).unwrap_or(0),
                retry_after: micros(fields[2]),
                reset: micros(fields[3]),
            };
            if !result.allowed && self.denied.len() < FAST_PATH_MAX {
                self.denied.insert(
                    *id,
                    Denied {
                        until: now + result.retry_after,
                        full_at: now + result.reset,
                    },
                );
            }
            tightest.push(i, result);
        }
        tightest.finish(keys, Source::Cluster)
    }

    /// `{prefix}:{limit}|{subject}`; a `|` in a limit name becomes `_` so the split is
    /// unambiguous whatever the subject holds.
    fn redis_key(&self, key: &LimitKey<'_>) -> String {
        let mut s =
            String::with_capacity(self.prefix.len() + key.limit.len() + key.subject.len() + 2);
        s.push_str(&self.prefix);
        s.push(':');
        s.extend(key.limit.chars().map(|c| if c == '|' { '_' } else { c }));
        s.push('|');
        s.push_str(key.subject);
        s
    }

    fn millis_since_epoch(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    /// While up, every check goes to Redis; while down, one check per probe interval does.
    fn should_try_redis(&self, now: Instant) -> bool {
        if self.health.load(Ordering::Relaxed) == UP {
            return true;
        }
        let now_ms = self.millis_since_epoch(now);
        let next = self.next_probe.load(Ordering::Relaxed);
        now_ms >= next
            && self
                .next_probe
                .compare_exchange(
                    next,
                    now_ms.saturating_add(PROBE_INTERVAL.as_millis() as u64),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    fn came_up(&self) {
        // Load first: a swap on every successful check would bounce the cache line.
        if self.health.load(Ordering::Relaxed) != UP
            && self.health.swap(UP, Ordering::Relaxed) != UP
        {
            info!(prefix = %self.prefix, "redis answers again: shared rate limits resumed");
        }
    }

    fn went_down(&self, reason: &str) {
        let next = self
            .millis_since_epoch(Instant::now())
            .saturating_add(PROBE_INTERVAL.as_millis() as u64);
        self.next_probe.store(next, Ordering::Relaxed);
        if self.health.swap(DOWN, Ordering::Relaxed) != DOWN {
            let mode = match self.failure {
                FailureMode::FailOpen => "failing open: local limits only",
                FailureMode::FailClosed => "failing closed: limited requests denied",
            };
            warn!(reason, prefix = %self.prefix, "redis unreachable for rate limits, {mode}");
        }
    }

    fn failed_call(&self, reason: &str) {
        self.cluster_errors.fetch_add(1, Ordering::Relaxed);
        self.went_down(reason);
    }

    fn failed(&self, keys: &[LimitKey<'_>], reason: &str) -> Outcome {
        self.failed_call(reason);
        self.degraded(keys)
    }

    fn degraded(&self, keys: &[LimitKey<'_>]) -> Outcome {
        match self.failure {
            FailureMode::FailOpen => {
                self.fallbacks.fetch_add(1, Ordering::Relaxed);
                self.fallback.check(keys, Source::Fallback)
            }
            FailureMode::FailClosed => {
                self.fail_closed.fetch_add(1, Ordering::Relaxed);
                let mut tightest = Tightest::default();
                for (i, key) in keys.iter().enumerate() {
                    tightest.push(
                        i,
                        KeyResult {
                            allowed: false,
                            remaining: 0,
                            retry_after: PROBE_INTERVAL,
                            reset: key.quota.window(),
                        },
                    );
                }
                tightest.finish(keys, Source::FailClosed)
            }
        }
    }

    pub(crate) fn sweep(&self) -> usize {
        let now = Instant::now();
        self.denied.retain(|_, d| d.until > now);
        self.denied.shrink_to_fit();
        self.fallback.sweep()
    }

    pub(crate) fn stats(&self) -> Stats {
        Stats {
            cluster_errors: self.cluster_errors.load(Ordering::Relaxed),
            fallbacks: self.fallbacks.load(Ordering::Relaxed),
            fail_closed: self.fail_closed.load(Ordering::Relaxed),
            fast_path_denials: self.fast_path_denials.load(Ordering::Relaxed),
            cluster_up: self.health.load(Ordering::Relaxed) == UP,
            local_keys: self.fallback.key_count(),
            fast_path_entries: self.denied.len(),
        }
    }
}
