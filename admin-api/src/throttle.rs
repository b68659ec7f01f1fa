//! Login abuse defences (issue 17, item 9): who the client is, the per-address
//! rate limit of the auth endpoints, and the failed-login backoff keyed by
//! (account, client address). The rules and numbers are in docs/admin-api.md,
//! "Login throttling".

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};
use ipnet::IpNet;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The client's address: the TCP peer, unless the peer is a trusted proxy;
/// then `X-Forwarded-For` is read from the right, skipping trusted proxies,
/// and the first untrusted address is the client (the gateway's rule, SPEC
/// "Request risk"). Client-sent headers are never believed otherwise.
pub fn client_ip(peer: IpAddr, xff: Option<&str>, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let Some(xff) = xff else { return peer };
    let mut client = peer;
    for part in xff.rsplit(',') {
        let Ok(ip) = part.trim().parse::<IpAddr>() else {
            return client;
        };
        client = ip;
        if !is_trusted(&ip) {
            return ip;
        }
    }
    client
}

/// Parses `SENTINEL_TRUSTED_PROXIES`: comma-separated addresses or CIDR blocks.
pub fn parse_trusted(list: &str) -> anyhow::Result<Vec<IpNet>> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map(|n| n.trunc())
                .map_err(|_| anyhow::anyhow!("invalid SENTINEL_TRUSTED_PROXIES entry {s:?}"))
        })
        .collect()
}

/// The client address of a request, as [`client_ip`] decides it. Without a
/// peer address (in-process calls) it is `0.0.0.0`.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub IpAddr);

impl ClientAddr {
    fn of(parts: &Parts, trusted: &[IpNet]) -> Self {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        let xff = parts
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok());
        ClientAddr(client_ip(peer, xff, trusted))
    }
}

/// An auth endpoint's admission: the client address, after the per-address
/// rate limit (`429 RATE_LIMITED` with `Retry-After` past it).
#[derive(Debug, Clone, Copy)]
pub struct AuthThrottle(pub IpAddr);

impl FromRequestParts<AppState> for AuthThrottle {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let ClientAddr(ip) = ClientAddr::of(parts, &state.config.trusted_proxies);
        state.throttle.admit(ip)?;
        Ok(AuthThrottle(ip))
    }
}

/// Failures of one (account, address) pair.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

/// (tenant, lower-case email, client address): unknown emails are keyed
/// like real ones, so that their answers cannot differ.
type PairKey = (Uuid, String, IpAddr);

/// A pair is forgotten an hour after its last failure.
const FORGET_AFTER: Duration = Duration::from_secs(3600);
/// At most this many pairs are remembered (the rate limit still applies past it).
const MAX_PAIRS: usize = 100_000;

/// The auth endpoints' rate limiter and the failed-login backoff.
pub struct Throttle {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    pairs: Mutex<HashMap<PairKey, Failures>>,
    threshold: u32,
    base: Duration,
    max: Duration,
}

impl Throttle {
    pub fn new(cfg: &crate::config::Config) -> Self {
        let per_minute = NonZeroU32::new(cfg.auth_rate_per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(cfg.auth_rate_burst).unwrap_or(NonZeroU32::MIN);
        Throttle {
            limiter: DefaultKeyedRateLimiter::keyed(
                Quota::per_minute(per_minute).allow_burst(burst),
            ),
            pairs: Mutex::new(HashMap::new()),
            threshold: u32::try_from(cfg.lockout_threshold.max(1)).unwrap_or(1),
            base: Duration::from_secs(u64::try_from(cfg.lockout_base_seconds.max(1)).unwrap_or(1)),
            max: Duration::from_secs(u64::try_from(cfg.lockout_seconds.max(1)).unwrap_or(1)),
        }
    }

    /// One request of `ip` to an auth endpoint.
    pub fn admit(&self, ip: IpAddr) -> Result<(), ApiError> {
        if self.limiter.len() > MAX_PAIRS {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(&ip).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.limiter.clock().now());
            ApiError::RateLimited {
                retry_after: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            }
        })
    }

    fn key(tenant: Uuid, email: &str, ip: IpAddr) -> PairKey {
        (tenant, email.trim().to_lowercase(), ip)
    }

    fn pairs(&self) -> std::sync::MutexGuard<'_, HashMap<PairKey, Failures>> {
        self.pairs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether logins of `email` from `ip` are held back now.
    pub fn is_locked(&self, tenant: Uuid, email: &str, ip: IpAddr) -> bool {
        let now = Instant::now();
        self.pairs()
            .get(&Self::key(tenant, email, ip))
            .and_then(|f| f.locked_until)
            .is_some_and(|t| t > now)
    }

    /// Records a failed login; from the `threshold`-th failure in a row the
    /// pair waits `base · 2^(failures − threshold)`, at most `max`.
    pub fn failed(&self, tenant: Uuid, email: &str, ip: IpAddr) -> u32 {
        let now = Instant::now();
        let mut pairs = self.pairs();
        if pairs.len() >= MAX_PAIRS {
            pairs.retain(|_, f| now.duration_since(f.last) < FORGET_AFTER);
            if pairs.len() >= MAX_PAIRS {
                tracing::warn!("login backoff table full: failure not recorded");
                return 0;
            }
        }
        let f = pairs
            .entry(Self::key(tenant, email, ip))
            .or_insert(Failures {
                count: 0,
                last: now,
                locked_until: None,
            });
        if now.duration_since(f.last) >= FORGET_AFTER {
            f.count = 0;
        }
        f.count = f.count.saturating_add(1);
        f.last = now;
        if f.count >= self.threshold {
            let doublings = (f.count - self.threshold).min(20);
            let wait = self.base.saturating_mul(1 << doublings).min(self.max);
            f.locked_until = Some(now + wait);
        }
        f.count
    }

    /// A successful login clears its own pair only.
    pub fn succeeded(&self, tenant: Uuid, email: &str, ip: IpAddr) {
        self.pairs().remove(&Self::key(tenant, email, ip));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn client_address_rule() {
        let trusted = parse_trusted("10.0.0.0/8, 192.168.1.1").unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // An untrusted peer: its headers are ignored.
        assert_eq!(
            client_ip(ip("1.2.3.4"), Some("9.9.9.9"), &trusted),
            ip("1.2.3.4")
        );
        // A trusted proxy: the first untrusted address from the right.
        assert_eq!(
            client_ip(
                ip("10.1.1.1"),
                Some("6.6.6.6, 5.5.5.5, 192.168.1.1"),
                &trusted
            ),
            ip("5.5.5.5")
        );
        assert_eq!(client_ip(ip("10.1.1.1"), None, &trusted), ip("10.1.1.1"));
        assert_eq!(
            client_ip(ip("10.1.1.1"), Some("junk"), &trusted),
            ip("10.1.1.1")
        );
        assert!(parse_trusted("not-an-address").is_err());
    }

    #[test]
    fn backoff_doubles_and_is_per_address() {
        let cfg = crate::config::Config {
            lockout_threshold: 2,
            lockout_base_seconds: 10,
            lockout_seconds: 25,
            ..Default::default()
        };
        let t = Throttle::new(&cfg);
        let (tenant, a, b) = (
            Uuid::new_v4(),
            IpAddr::from([1, 1, 1, 1]),
            IpAddr::from([2, 2, 2, 2]),
        );
        t.failed(tenant, "X@example.com", a);
        assert!(!t.is_locked(tenant, "x@example.com", a));
        t.failed(tenant, "x@example.com", a);
        assert!(t.is_locked(tenant, "x@example.com", a));
        assert!(!t.is_locked(tenant, "x@example.com", b));
        let until = |t: &Throttle| t.pairs().values().next().unwrap().locked_until.unwrap();
        let first = until(&t) - Instant::now();
        t.failed(tenant, "x@example.com", a);
        let second = until(&t) - Instant::now();
        assert!(first <= Duration::from_secs(10) && second > Duration::from_secs(10));
        assert!(second <= Duration::from_secs(25), "capped at max");
        t.succeeded(tenant, "x@example.com", a);
        assert!(!t.is_locked(tenant, "x@example.com", a));
    }
}
