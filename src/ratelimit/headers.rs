//! `RateLimit-Policy` and `RateLimit` header values (draft-ietf-httpapi-ratelimit-headers-09).
//!
//! Both fields are Structured Field lists of one item: the policy name as an sf-string with
//! parameters. `RateLimit-Policy: "tenant";q=100;w=60` says the `tenant` policy allows
//! `q` requests per `w` seconds; `RateLimit: "tenant";r=42;t=12` says 42 are left and the
//! quota is full again in 12 s. For a GCRA limit `q` is the burst and `w` is
//! `burst × period` (the time a drained limit takes to refill), so a steady client sees the
//! sustained rate `q / w` it bought.

use http::HeaderName;
use std::fmt::Write as _;
use std::time::Duration;

use super::Outcome;

/// Header name of the policy field (`RateLimit-Policy`; names go out in lower case).
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// Header name of the live counters field (`RateLimit`).
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// Whole seconds, rounded up; a positive duration is never shown as 0.
pub(crate) fn ceil_secs(d: Duration) -> u64 {
    let secs = d.as_secs();
    if d.subsec_nanos() > 0 {
        secs.saturating_add(1)
    } else {
        secs
    }
}

pub(crate) fn render(outcome: &Outcome) -> Option<[(HeaderName, String); 2]> {
    let quota = outcome.quota?;
    let mut policy = String::with_capacity(outcome.limit.len() + 24);
    push_sf_string(&mut policy, &outcome.limit);
    let _ = write!(
        policy,
        ";q={};w={}",
        quota.burst_clamped(),
        ceil_secs(quota.window()).max(1)
    );
    let mut current = String::with_capacity(outcome.limit.len() + 24);
    push_sf_string(&mut current, &outcome.limit);
    let _ = write!(
        current,
        ";r={};t={}",
        outcome.remaining,
        ceil_secs(outcome.reset)
    );
    Some([(RATELIMIT_POLICY, policy), (RATELIMIT, current)])
}

/// An sf-string (RFC 8941 §3.3.3): printable ASCII, `"` and `\` escaped; anything else is
/// replaced by `_` (limit names come from config, which should keep them plain).
fn push_sf_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('_'),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::ratelimit::{Quota, Source};

    fn outcome(limit: &str, quota: Quota, remaining: u32, reset: Duration) -> Outcome {
        Outcome {
            allowed: true,
            retry_after: None,
            limit: limit.into(),
            quota: Some(quota),
            remaining,
            reset,
            source: Source::Local,
        }
    }

    #[test]
    fn renders_draft_09_fields() {
        let rows = [
            (
                outcome(
                    "tenant",
                    Quota::per_minute(100, 100).unwrap(),
                    42,
                    Duration::from_millis(34_800),
                ),
                "\"tenant\";q=100;w=60",
                "\"tenant\";r=42;t=35",
            ),
            (
                outcome(
                    "route:standard",
                    Quota::per_minute(100, 20).unwrap(),
                    0,
                    Duration::from_secs(12),
                ),
                "\"route:standard\";q=20;w=12",
                "\"route:standard\";r=0;t=12",
            ),
            (
                outcome("ip", Quota::per_second(10, 1).unwrap(), 0, Duration::ZERO),
                "\"ip\";q=1;w=1",
                "\"ip\";r=0;t=0",
            ),
            (
                outcome(
                    "we\"ird\\é",
                    Quota::per_hour(5000, 100).unwrap(),
                    3,
                    Duration::from_millis(1),
                ),
                "\"we\\\"ird\\\\_\";q=100;w=72",
                "\"we\\\"ird\\\\_\";r=3;t=1",
            ),
        ];
        for (o, policy, current) in rows {
            let [(pn, pv), (cn, cv)] = o.headers().unwrap();
            assert_eq!((pn, pv.as_str()), (RATELIMIT_POLICY, policy));
            assert_eq!((cn, cv.as_str()), (RATELIMIT, current));
        }
        assert!(Outcome::unlimited().headers().is_none());
    }

    #[test]
    fn retry_after_rounds_up() {
        let mut o = outcome("t", Quota::per_second(1, 1).unwrap(), 0, Duration::ZERO);
        o.allowed = false;
        o.retry_after = Some(Duration::from_millis(1));
        assert_eq!(o.retry_after_secs(), Some(1));
        o.retry_after = Some(Duration::from_millis(2000));
        assert_eq!(o.retry_after_secs(), Some(2));
    }
}
