//! Lowering of `[rate_limits]` into the quotas of [`crate::ratelimit`].

use super::file::RateLimitsFile;
use super::lowering::Lowering;
use crate::ratelimit::{plan_quota, ClassLimit, FailureMode, Mode, Per, Quota, RateLimitConfig};
use std::collections::HashMap;
use std::time::Duration;
use toml::Spanned;

fn quota(lw: &mut Lowering, rate: &Spanned<String>, burst: Option<u32>) -> Quota {
    Quota::parse(rate.get_ref(), burst).unwrap_or_else(|e| {
        lw.err(rate.span(), e.to_string());
        Quota {
            burst: 1,
            period: Duration::from_secs(1),
        }
    })
}

pub(super) fn lower_rate_limits(lw: &mut Lowering, r: &Spanned<RateLimitsFile>) -> RateLimitConfig {
    let span = r.span();
    let r = r.get_ref();
    let mode = match r.mode.as_ref().map(|m| m.get_ref().as_str()) {
        None | Some("local") => Mode::Local,
        Some("cluster") => {
            let c = r.cluster.as_ref().map(|c| c.get_ref());
            let url = std::env::var("SENTINEL_REDIS_URL")
                .ok()
                .or_else(|| c.and_then(|c| c.redis_url.clone()))
                .unwrap_or_default();
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                lw.err(span.clone(), "cluster mode needs `[rate_limits.cluster] redis_url` (or SENTINEL_REDIS_URL) as `redis://…`");
            }
            let timeout = c.map_or(Duration::from_millis(50), |c| {
                lw.duration(&c.timeout, Duration::from_millis(50))
            });
            if timeout.is_zero() {
                lw.err(
                    span.clone(),
                    "`rate_limits.cluster.timeout` must be greater than 0",
                );
            }
            let failure = match c.and_then(|c| c.failure.as_ref()) {
                None => FailureMode::FailOpen,
                Some(f) => match f.get_ref().as_str() {
                    "open" => FailureMode::FailOpen,
                    "closed" => FailureMode::FailClosed,
                    other => {
                        lw.err(
                            f.span(),
                            format!("unknown failure mode `{other}` (use `open` or `closed`)"),
                        );
                        FailureMode::FailOpen
                    }
                },
            };
            Mode::Cluster {
                url,
                failure,
                timeout,
                key_prefix: c
                    .and_then(|c| c.key_prefix.clone())
                    .unwrap_or_else(|| "sentinel:rl".into()),
            }
        }
        Some(other) => {
            if let Some(m) = &r.mode {
                lw.err(
                    m.span(),
                    format!("unknown rate-limit mode `{other}` (use `local` or `cluster`)"),
                );
            }
            Mode::Local
        }
    };
    let mut plans = HashMap::new();
    for (name, p) in &r.plans {
        match plan_quota(p.get_ref().per_minute, p.get_ref().per_hour) {
            Ok(q) => {
                plans.insert(name.clone(), q);
            }
            Err(e) => lw.err(p.span(), format!("plan `{name}`: {e}")),
        }
    }
    let default_plan = r
        .tenant
        .as_ref()
        .and_then(|t| t.default_plan.as_ref())
        .and_then(|d| {
            let q = plans.get(d.get_ref()).copied();
            if q.is_none() {
                lw.err(d.span(), format!("unknown plan `{}`", d.get_ref()));
            }
            q
        });
    let principal = r
        .principal
        .as_ref()
        .map(|p| quota(lw, &p.get_ref().rate, p.get_ref().burst));
    let anonymous = r
        .anonymous
        .as_ref()
        .map(|p| quota(lw, &p.get_ref().rate, p.get_ref().burst));
    let mut classes = HashMap::new();
    for (name, c) in &r.classes {
        if name.is_empty() || name.contains('|') {
            lw.err(c.span(), format!("invalid class name `{name}`"));
        }
        let cf = c.get_ref();
        let per = match cf.per.as_ref().map(|p| (p.get_ref().as_str(), p.span())) {
            None | Some(("tenant", _)) => Per::Tenant,
            Some(("principal", _)) => Per::Principal,
            Some(("ip", _)) => Per::Ip,
            Some((other, span)) => {
                lw.err(
                    span,
                    format!("unknown `per` `{other}` (use `tenant`, `principal` or `ip`)"),
                );
                Per::Tenant
            }
        };
        let quota = quota(lw, &cf.rate, cf.burst);
        classes.insert(
            name.clone(),
            ClassLimit {
                name: format!("route:{name}").into(),
                quota,
                per,
            },
        );
    }
    RateLimitConfig {
        mode,
        plans,
        default_plan,
        principal,
        classes,
        anonymous,
    }
}
