//! Login abuse defences (issue 17, item 9): who the client is, the per-address
//! rate limit of the auth endpoints, and the failed-login backoff keyed by
//! (account, client address), kept in PostgreSQL so that every replica
//! counts the same failures. The rules and numbers are in docs/admin-api.md,
//! "Login throttling".

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};
use ipnet::IpNet;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::time::Duration;
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

/// A pair is forgotten an hour after its last failure.
const FORGET_AFTER_SECONDS: f64 = 3600.0;
/// At most this many addresses are remembered by the rate limiter before
/// it drops the ones it no longer limits.
const MAX_ADDRESSES: usize = 100_000;

/// The auth endpoints' rate limiter (per process) and the failed-login
/// backoff, shared by every replica through `sentinel.login_failures`
/// (migration 0013): the database's clock and rows decide, so failures
/// counted by one replica hold the pair back on all of them.
pub struct Throttle {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    threshold: u32,
    base: Duration,
    max: Duration,
}

/// The row key of (account, address): the SHA-256 of the lower-cased email
/// (unknown emails are keyed like real ones, so that their answers cannot
/// differ) and the address as text.
fn key(email: &str, ip: IpAddr) -> (Vec<u8>, String) {
    let account = Sha256::digest(email.trim().to_lowercase().as_bytes()).to_vec();
    (account, ip.to_string())
}

impl Throttle {
    pub fn new(cfg: &crate::config::Config) -> Self {
        let per_minute = NonZeroU32::new(cfg.auth_rate_per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(cfg.auth_rate_burst).unwrap_or(NonZeroU32::MIN);
        Throttle {
            limiter: DefaultKeyedRateLimiter::keyed(
                Quota::per_minute(per_minute).allow_burst(burst),
            ),
            threshold: u32::try_from(cfg.lockout_threshold.max(1)).unwrap_or(1),
            base: Duration::from_secs(u64::try_from(cfg.lockout_base_seconds.max(1)).unwrap_or(1)),
            max: Duration::from_secs(u64::try_from(cfg.lockout_seconds.max(1)).unwrap_or(1)),
        }
    }

    /// One request of `ip` to an auth endpoint.
    pub fn admit(&self, ip: IpAddr) -> Result<(), ApiError> {
        if self.limiter.len() > MAX_ADDRESSES {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(&ip).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.limiter.clock().now());
            ApiError::RateLimited {
                retry_after: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            }
        })
    }

    /// The wait after the `failures`-th failure in a row: none below the
    /// threshold, then `base · 2^(failures − threshold)`, at most `max`.
    pub fn backoff(&self, failures: u32) -> Option<Duration> {
        let doublings = failures.checked_sub(self.threshold)?.min(20);
        Some(self.base.saturating_mul(1 << doublings).min(self.max))
    }

    /// Whether logins of `email` from `ip` are held back now. `conn` is in
    /// a transaction of `tenant` (RLS).
    pub async fn is_locked(
        &self,
        conn: &mut PgConnection,
        tenant: Uuid,
        email: &str,
        ip: IpAddr,
    ) -> Result<bool, sqlx::Error> {
        let (account, address) = key(email, ip);
        let held: Option<bool> = sqlx::query_scalar(
            "SELECT coalesce(locked_until > now(), false) FROM sentinel.login_failures
              WHERE tenant_id = $1 AND account = $2 AND address = $3",
        )
        .bind(tenant)
        .bind(account)
        .bind(address)
        .fetch_optional(&mut *conn)
        .await?;
        Ok(held.unwrap_or(false))
    }

    /// Records a failed login and returns the pair's failures in a row (a
    /// pair quiet for an hour starts again from one); from the threshold on
    /// the pair is held back for [`Throttle::backoff`]. One statement, so
    /// that replicas failing the same pair at once both count.
    pub async fn failed(
        &self,
        conn: &mut PgConnection,
        tenant: Uuid,
        email: &str,
        ip: IpAddr,
    ) -> Result<u32, sqlx::Error> {
        let (account, address) = key(email, ip);
        sqlx::query(
            "DELETE FROM sentinel.login_failures
              WHERE tenant_id = $1 AND last_failure < now() - make_interval(secs => $2)",
        )
        .bind(tenant)
        .bind(FORGET_AFTER_SECONDS)
        .execute(&mut *conn)
        .await?;
        let failures: i32 = sqlx::query_scalar(
            "INSERT INTO sentinel.login_failures AS f (tenant_id, account, address, failures, last_failure)
             VALUES ($1, $2, $3, 1, now())
             ON CONFLICT (tenant_id, account, address) DO UPDATE
                SET failures = f.failures + 1, last_failure = now()
             RETURNING failures",
        )
        .bind(tenant)
        .bind(&account)
        .bind(&address)
        .fetch_one(&mut *conn)
        .await?;
        let failures = u32::try_from(failures).unwrap_or(u32::MAX);
        if let Some(wait) = self.backoff(failures) {
            sqlx::query(
                "UPDATE sentinel.login_failures SET locked_until = now() + make_interval(secs => $4)
                  WHERE tenant_id = $1 AND account = $2 AND address = $3",
            )
            .bind(tenant)
            .bind(&account)
            .bind(&address)
            .bind(wait.as_secs_f64())
            .execute(&mut *conn)
            .await?;
        }
        Ok(failures)
    }

    /// A successful login clears its own pair only.
    pub async fn succeeded(
        &self,
        conn: &mut PgConnection,
        tenant: Uuid,
        email: &str,
        ip: IpAddr,
    ) -> Result<(), sqlx::Error> {
        let (account, address) = key(email, ip);
        sqlx::query(
            "DELETE FROM sentinel.login_failures WHERE tenant_id = $1 AND account = $2 AND address = $3",
        )
        .bind(tenant)
        .bind(account)
        .bind(address)
        .execute(&mut *conn)
        .await?;
        Ok(())
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
    fn backoff_doubles_from_the_threshold_up_to_the_maximum() {
        let cfg = crate::config::Config {
            lockout_threshold: 2,
            lockout_base_seconds: 10,
            lockout_seconds: 25,
            ..Default::default()
        };
        let t = Throttle::new(&cfg);
        let secs = |n| t.backoff(n).map(|d| d.as_secs());
        assert_eq!(secs(1), None);
        assert_eq!(secs(2), Some(10));
        assert_eq!(secs(3), Some(20));
        assert_eq!(secs(4), Some(25), "capped at max");
        assert_eq!(secs(u32::MAX), Some(25));
    }

    #[test]
    fn the_account_key_ignores_case_and_spaces_and_keeps_no_email() {
        let ip = IpAddr::from([1, 1, 1, 1]);
        assert_eq!(key(" X@Example.com ", ip), key("x@example.com", ip));
        assert_ne!(
            key("x@example.com", ip),
            key("x@example.com", IpAddr::from([2, 2, 2, 2]))
        );
        assert_eq!(key("x@example.com", ip).0.len(), 32);
    }
}
