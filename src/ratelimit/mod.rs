//! Tenant-aware rate limiting: GCRA limits checked on one gateway (`governor`) or shared by
//! a cluster of gateways through Redis, with an explicit failure mode when Redis is slow or down.
//!
//! The gateway builds one [`Limiter`] at startup and, per request, calls
//! [`Limiter::check`] with every [`LimitKey`] that applies (tenant plan, principal override,
//! route class, client IP for anonymous routes). Every limit is checked; the tightest answer
//! wins, and a denied request takes no tokens from the other limits. The [`Outcome`] carries
//! what the 429 answer and the `RateLimit-Policy` / `RateLimit` headers need.
//!
//! This module knows nothing of Pingora or HTTP beyond header values.

mod cluster;
mod headers;
pub mod keys;
mod local;
mod quotas;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use self::cluster::ClusterLimiter;
use self::local::{GcraClock, LocalLimiter};

pub use self::headers::{RATELIMIT, RATELIMIT_POLICY};
pub use self::quotas::{
    explicit_quota, plan_quota, tenant_quota, ClassLimit, Per, RateLimitConfig,
};

/// By default, how often idle keys are dropped from the local stores (and expired entries from the
/// cluster fast-path cache).
const SWEEP_INTERVAL: Duration = Duration::from_secs(10);

/// A GCRA limit: up to `burst` requests at once, then one more every `period`.
///
/// `Quota::per_minute(100, 100)` allows 100 requests at once and refills one every 600 ms,
/// so no window of a minute ever sees more than about 200 (100 + 100 refilled), and a steady
/// client gets 100 a minute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Quota {
    /// Requests allowed back to back after an idle period (at least 1).
    pub burst: u32,
    /// Time to earn one request back (at least 1 µs).
    pub period: Duration,
}

/// Why a quota could not be built or parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuotaError {
    /// The rate or burst is zero.
    #[error("rate and burst must be at least 1")]
    Zero,
    /// One token per period shorter than a microsecond (more than 1,000,000 a second).
    #[error("rate is too high: at most 1000000 requests per second")]
    TooFast,
    /// The text is not of the form `N/UNIT`.
    #[error("invalid rate `{0}`: expected `N/UNIT` such as `100/m`, `10/s`, `5000/h` or `50/10s`")]
    Syntax(String),
    /// The unit after `/` is unknown.
    #[error("invalid rate unit `{0}`: expected `s`, `m`, `h` or `d`, optionally with a count such as `10s`")]
    Unit(String),
}

const MIN_PERIOD: Duration = Duration::from_micros(1);

impl Quota {
    /// `burst` requests at once, then one per `period`.
    pub fn new(burst: u32, period: Duration) -> Result<Self, QuotaError> {
        if burst == 0 || period.is_zero() {
            return Err(QuotaError::Zero);
        }
        if period < MIN_PERIOD {
            return Err(QuotaError::TooFast);
        }
        Ok(Self { burst, period })
    }

    /// `count` requests per `window` sustained, `burst` at once.
    pub fn per(count: u32, window: Duration, burst: u32) -> Result<Self, QuotaError> {
        if count == 0 {
            return Err(QuotaError::Zero);
        }
        let nanos = window.as_nanos() / u128::from(count);
        let period = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
        Self::new(burst, period)
    }

    /// `count` requests a second sustained, `burst` at once.
    pub fn per_second(count: u32, burst: u32) -> Result<Self, QuotaError> {
        Self::per(count, Duration::from_secs(1), burst)
    }

    /// `count` requests a minute sustained, `burst` at once.
    pub fn per_minute(count: u32, burst: u32) -> Result<Self, QuotaError> {
        Self::per(count, Duration::from_secs(60), burst)
    }

    /// `count` requests an hour sustained, `burst` at once.
    pub fn per_hour(count: u32, burst: u32) -> Result<Self, QuotaError> {
        Self::per(count, Duration::from_secs(3600), burst)
    }

    /// Parses `N/UNIT` (`100/m`, `10/s`, `5000/h`, `20000/d`, `50/10s`) with an optional
    /// burst; without one the burst is `N` (a full window at once).
    pub fn parse(rate: &str, burst: Option<u32>) -> Result<Self, QuotaError> {
        let syntax = || QuotaError::Syntax(rate.to_owned());
        let (count, unit) = rate.trim().split_once('/').ok_or_else(syntax)?;
        let count: u32 = count.trim().parse().map_err(|_| syntax())?;
        let unit = unit.trim();
        let digits = unit.bytes().take_while(u8::is_ascii_digit).count();
        let (multiplier, name) = unit.split_at(digits);
        let multiplier: u64 = if multiplier.is_empty() {
            1
        } else {
            multiplier.parse().map_err(|_| syntax())?
        };
        let seconds: u64 = match name {
            "s" | "sec" | "second" => 1,
            "m" | "min" | "minute" => 60,
            "h" | "hour" => 3600,
            "d" | "day" => 86_400,
            _ => return Err(QuotaError::Unit(unit.to_owned())),
        };
        if multiplier == 0 {
            return Err(QuotaError::Zero);
        }
        let window = Duration::from_secs(seconds.saturating_mul(multiplier));
        Self::per(count, window, burst.unwrap_or(count))
    }

    /// The period with the invariants enforced even for a struct built by hand.
    pub(crate) fn period_clamped(&self) -> Duration {
        self.period.max(MIN_PERIOD)
    }

    /// The burst with the invariants enforced even for a struct built by hand.
    pub(crate) fn burst_clamped(&self) -> u32 {
        self.burst.max(1)
    }

    /// The time a fully drained limit takes to refill: `burst × period`; this is the window
    /// advertised in `RateLimit-Policy`.
    pub fn window(&self) -> Duration {
        self.period_clamped().saturating_mul(self.burst_clamped())
    }
}

impl FromStr for Quota {
    type Err = QuotaError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s, None)
    }
}

impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "burst {} then 1 per {:?}", self.burst, self.period)
    }
}

/// One limit that applies to a request.
#[derive(Clone, Copy, Debug)]
pub struct LimitKey<'a> {
    /// The limit's name, e.g. `tenant`, `principal`, `route:standard`, `ip`; shown to clients
    /// as the policy name in the headers.
    pub limit: &'a str,
    /// Who is limited: tenant id, principal id, client IP.
    pub subject: &'a str,
    /// The quota for this subject under this limit.
    pub quota: Quota,
}

/// Where limits live.
#[derive(Clone, Debug)]
pub enum Mode {
    /// In this process only: each gateway enforces the full limit on its own.
    Local,
    /// Shared by every gateway pointing at the same Redis and `key_prefix`.
    Cluster {
        /// `redis://[user:password@]host:port[/db]` (or `rediss://`).
        url: String,
        /// What to do when Redis does not answer within `timeout`.
        failure: FailureMode,
        /// Longest a check waits for Redis.
        timeout: Duration,
        /// Prefix of every Redis key, e.g. `sentinel:rl`.
        key_prefix: String,
    },
}

/// What a cluster-mode check answers when Redis is slow or down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum FailureMode {
    /// Keep serving, limited by this gateway's local limits alone.
    FailOpen,
    /// Deny every limited request until Redis answers again.
    FailClosed,
}

/// Why a [`Limiter`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The Redis URL does not parse (the URL itself is not repeated: it may hold a password).
    #[error(
        "invalid redis url: expected `redis://[user:password@]host[:port][/db]` or `rediss://...`"
    )]
    RedisUrl,
    /// A zero timeout would deny or fall back on every request.
    #[error("cluster timeout must be greater than zero")]
    ZeroTimeout,
    /// Cluster mode needs a Tokio runtime.
    #[error("the cluster rate limiter must be created inside a tokio runtime")]
    NoRuntime,
    /// The housekeeping thread could not be started.
    #[error("cannot start the rate-limit housekeeping thread: {0}")]
    Housekeeping(String),
}

/// What decided an [`Outcome`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Source {
    /// No limit applied.
    Unlimited,
    /// This gateway's own limits (local mode).
    Local,
    /// The shared limits in Redis.
    Cluster,
    /// A subject already known to be over a shared limit until its retry time; Redis not asked.
    FastPath,
    /// Redis slow or down, fail open: this gateway's local limits.
    Fallback,
    /// Redis slow or down, fail closed: denied.
    FailClosed,
}

impl Source {
    /// A short lowercase label for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Unlimited => "unlimited",
            Source::Local => "local",
            Source::Cluster => "cluster",
            Source::FastPath => "fast_path",
            Source::Fallback => "fallback",
            Source::FailClosed => "fail_closed",
        }
    }
}

/// The answer to a check: the tightest of the applicable limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Whether the request may go on.
    pub allowed: bool,
    /// When denied: how long until every denied limit would allow a request.
    pub retry_after: Option<Duration>,
    /// The name of the tightest limit (the denying one with the longest wait, else the one
    /// with the fewest requests left); empty when no limit applied.
    pub limit: String,
    /// The tightest limit's quota (for `RateLimit-Policy`); `None` when no limit applied.
    pub quota: Option<Quota>,
    /// Requests left under the tightest limit after this one.
    pub remaining: u32,
    /// Time until the tightest limit is full again.
    pub reset: Duration,
    /// What decided.
    pub source: Source,
}

impl Outcome {
    pub(crate) fn unlimited() -> Self {
        Self {
            allowed: true,
            retry_after: None,
            limit: String::new(),
            quota: None,
            remaining: 0,
            reset: Duration::ZERO,
            source: Source::Unlimited,
        }
    }

    /// `Retry-After` in whole seconds (rounded up, at least 1) when denied.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after.map(|d| headers::ceil_secs(d).max(1))
    }

    /// `RateLimit-Policy` and `RateLimit` for the tightest limit, in the format of
    /// draft-ietf-httpapi-ratelimit-headers-09; `None` when no limit applied.
    pub fn headers(&self) -> Option<[(http::HeaderName, String); 2]> {
        headers::render(self)
    }
}

/// Per-limit result before the tightest one is picked.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeyResult {
    pub allowed: bool,
    pub remaining: u32,
    pub retry_after: Duration,
    pub reset: Duration,
}

/// Folds per-limit results into the tightest answer, one key at a time, without allocating.
#[derive(Default)]
pub(crate) struct Tightest {
    best: Option<(usize, KeyResult)>,
}

impl Tightest {
    pub fn push(&mut self, index: usize, r: KeyResult) {
        let replace = match &self.best {
            None => true,
            Some((_, b)) => match (b.allowed, r.allowed) {
                (true, false) => true,
                (false, true) => false,
                (false, false) => r.retry_after > b.retry_after,
                (true, true) => {
                    r.remaining < b.remaining || (r.remaining == b.remaining && r.reset > b.reset)
                }
            },
        };
        if replace {
            self.best = Some((index, r));
        }
    }

    pub fn finish(self, keys: &[LimitKey<'_>], source: Source) -> Outcome {
        let Some((index, r)) = self.best else {
            return Outcome::unlimited();
        };
        let Some(key) = keys.get(index) else {
            return Outcome::unlimited();
        };
        Outcome {
            allowed: r.allowed,
            retry_after: (!r.allowed).then_some(r.retry_after),
            limit: key.limit.to_owned(),
            quota: Some(key.quota),
            remaining: if r.allowed { r.remaining } else { 0 },
            reset: r.reset,
            source,
        }
    }
}

/// Counters for metrics and readiness.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Redis calls that failed or timed out.
    pub cluster_errors: u64,
    /// Checks answered by local limits because Redis was slow or down (fail open).
    pub fallbacks: u64,
    /// Checks denied because Redis was slow or down (fail closed).
    pub fail_closed: u64,
    /// Checks denied from the fast-path cache without asking Redis.
    pub fast_path_denials: u64,
    /// Whether the last Redis call succeeded (`true` in local mode).
    pub cluster_up: bool,
    /// Keys held by the local store (local limits or the fail-open fallback).
    pub local_keys: usize,
    /// Entries in the fast-path cache of subjects known to be over a shared limit.
    pub fast_path_entries: usize,
}

enum Backend {
    Local(LocalLimiter),
    Cluster(Box<ClusterLimiter>),
}

/// The rate limiter: build once, share behind an `Arc` (or clone: clones share state).
#[derive(Clone)]
pub struct Limiter {
    backend: Arc<Backend>,
}

impl fmt::Debug for Limiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match &*self.backend {
            Backend::Local(_) => "local",
            Backend::Cluster(_) => "cluster",
        };
        f.debug_struct("Limiter").field("mode", &mode).finish()
    }
}

impl Limiter {
    /// Builds the limiter and starts its housekeeping thread (sweeps every 10 s). In cluster mode a Redis that is
    /// down at startup is not an error: the limiter starts degraded (its failure mode) and
    /// switches to shared limits as soon as Redis answers.
    pub async fn new(mode: Mode) -> Result<Self, SetupError> {
        Self::with_sweep_interval(mode, SWEEP_INTERVAL).await
    }

    /// [`Limiter::new`] with another housekeeping interval (memory is held for up to one
    /// interval after a subject goes idle; each sweep visits every key).
    pub async fn with_sweep_interval(mode: Mode, every: Duration) -> Result<Self, SetupError> {
        let backend = match mode {
            Mode::Local => Backend::Local(LocalLimiter::new(GcraClock::system())),
            Mode::Cluster {
                url,
                failure,
                timeout,
                key_prefix,
            } => {
                tokio::runtime::Handle::try_current().map_err(|_| SetupError::NoRuntime)?;
                Backend::Cluster(Box::new(
                    ClusterLimiter::connect(&url, failure, timeout, key_prefix).await?,
                ))
            }
        };
        let backend = Arc::new(backend);
        // Housekeeping on its own thread, not a task: the limiter may be built on a
        // short-lived setup runtime and used on others, and sweeping is blocking work anyway.
        // The thread holds only a weak reference and ends once the limiter is dropped.
        let weak = Arc::downgrade(&backend);
        std::thread::Builder::new()
            .name("ratelimit-sweep".into())
            .spawn(move || loop {
                std::thread::sleep(every);
                let Some(backend) = weak.upgrade() else { break };
                sweep_backend(&backend);
            })
            .map_err(|e| SetupError::Housekeeping(e.to_string()))?;
        Ok(Self { backend })
    }

    /// A local limiter whose GCRA maths run on `clock` (tests: time moves
    /// when the test says so), swept only by [`Limiter::sweep`].
    pub fn local_with_clock(clock: Arc<crate::clock::ManualClock>) -> Self {
        Self {
            backend: Arc::new(Backend::Local(LocalLimiter::new(GcraClock::Manual(clock)))),
        }
    }

    /// Checks every limit in `keys` and answers with the tightest. A denied request takes no
    /// tokens from any limit. Never waits longer than the cluster timeout.
    pub async fn check(&self, keys: &[LimitKey<'_>]) -> Outcome {
        if keys.is_empty() {
            return Outcome::unlimited();
        }
        match &*self.backend {
            Backend::Local(local) => local.check(keys, Source::Local),
            // Boxed: the Redis exchange's future is large, and the proxy's
            // per-request future would otherwise carry it on every request,
            // local mode included (docs/PERFORMANCE.md).
            Backend::Cluster(cluster) => Box::pin(cluster.check(keys)).await,
        }
    }

    /// Drops idle keys now (the housekeeping thread does this every 10 s); answers how many
    /// local keys remain.
    pub fn sweep(&self) -> usize {
        sweep_backend(&self.backend)
    }

    /// Whether limits are shared through Redis (cluster mode).
    pub fn is_shared(&self) -> bool {
        matches!(&*self.backend, Backend::Cluster(_))
    }

    /// Counters and health for metrics and `/readyz`.
    pub fn stats(&self) -> Stats {
        match &*self.backend {
            Backend::Local(local) => Stats {
                cluster_up: true,
                local_keys: local.key_count(),
                ..Stats::default()
            },
            Backend::Cluster(cluster) => cluster.stats(),
        }
    }
}

fn sweep_backend(backend: &Backend) -> usize {
    match backend {
        Backend::Local(local) => local.sweep(),
        Backend::Cluster(cluster) => cluster.sweep(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn parses_rates() {
        type Row = (
            &'static str,
            Option<u32>,
            Result<(u32, Duration), QuotaError>,
        );
        let rows: &[Row] = &[
            ("100/m", None, Ok((100, Duration::from_millis(600)))),
            ("100/min", Some(20), Ok((20, Duration::from_millis(600)))),
            ("10/s", None, Ok((10, Duration::from_millis(100)))),
            ("3600/h", None, Ok((3600, Duration::from_secs(1)))),
            ("86400/d", Some(1), Ok((1, Duration::from_secs(1)))),
            ("50/10s", None, Ok((50, Duration::from_millis(200)))),
            (" 5 / 2m ", None, Ok((5, Duration::from_secs(24)))),
            ("0/m", None, Err(QuotaError::Zero)),
            ("10/m", Some(0), Err(QuotaError::Zero)),
            ("10/0s", None, Err(QuotaError::Zero)),
            ("2000000/s", None, Err(QuotaError::TooFast)),
            ("100", None, Err(QuotaError::Syntax("100".into()))),
            ("x/m", None, Err(QuotaError::Syntax("x/m".into()))),
            ("-1/m", None, Err(QuotaError::Syntax("-1/m".into()))),
            ("10/week", None, Err(QuotaError::Unit("week".into()))),
            ("10/", None, Err(QuotaError::Unit("".into()))),
        ];
        for (text, burst, expected) in rows {
            let got = Quota::parse(text, *burst).map(|q| (q.burst, q.period));
            assert_eq!(&got, expected, "{text:?} burst {burst:?}");
        }
        assert_eq!(
            "100/m".parse::<Quota>().unwrap(),
            Quota::per_minute(100, 100).unwrap()
        );
    }

    #[test]
    fn error_messages_name_the_input() {
        let err = Quota::parse("fast", None).unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid rate `fast`: expected `N/UNIT` such as `100/m`, `10/s`, `5000/h` or `50/10s`"
        );
    }

    #[test]
    fn tightest_prefers_denials_then_fewest_remaining() {
        let q = Quota::per_second(10, 10).unwrap();
        let keys = [
            LimitKey {
                limit: "tenant",
                subject: "t",
                quota: q,
            },
            LimitKey {
                limit: "principal",
                subject: "p",
                quota: q,
            },
            LimitKey {
                limit: "route:standard",
                subject: "t",
                quota: q,
            },
        ];
        let ok = |remaining| KeyResult {
            allowed: true,
            remaining,
            retry_after: Duration::ZERO,
            reset: Duration::from_millis(100),
        };
        let no = |ms| KeyResult {
            allowed: false,
            remaining: 0,
            retry_after: Duration::from_millis(ms),
            reset: Duration::from_secs(1),
        };
        let rows: &[(&[KeyResult], bool, &str)] = &[
            (&[ok(5), ok(2), ok(7)], true, "principal"),
            (&[ok(5), no(100), ok(0)], false, "principal"),
            (&[no(50), no(300), no(100)], false, "principal"),
            (&[ok(1), ok(3), no(10)], false, "route:standard"),
        ];
        for (results, allowed, limit) in rows {
            let mut t = Tightest::default();
            for (i, r) in results.iter().enumerate() {
                t.push(i, *r);
            }
            let o = t.finish(&keys, Source::Local);
            assert_eq!((o.allowed, o.limit.as_str()), (*allowed, *limit));
        }
    }
}
