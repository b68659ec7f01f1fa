//! Rate-limit quotas as configured: tenant plans, the principal default, route
//! classes and the anonymous limit, and which quota a tenant's or principal's
//! settings ask for. Lowered from `[rate_limits]` by `config`.

use super::{Mode, Quota};
use std::collections::HashMap;

/// Whose budget a route class counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Per {
    Tenant,
    Principal,
    Ip,
}

#[derive(Debug, Clone)]
pub struct ClassLimit {
    /// `route:<class>`: the limit's name in headers and metrics.
    pub name: Box<str>,
    pub quota: Quota,
    pub per: Per,
}

#[derive(Debug, Clone)]
pub struct RateLimitConfig {
    pub mode: Mode,
    /// Tenant plans by name (burst = per minute, sustained = per hour).
    pub plans: HashMap<String, Quota>,
    pub default_plan: Option<Quota>,
    pub principal: Option<Quota>,
    pub classes: HashMap<String, ClassLimit>,
    pub anonymous: Option<Quota>,
}

/// A plan: `per_minute` at once, `per_hour` sustained.
pub fn plan_quota(per_minute: u32, per_hour: u32) -> Result<Quota, String> {
    Quota::per_hour(per_hour, per_minute).map_err(|e| e.to_string())
}

/// The quota a tenant's settings ask for: `{"rate_limit_plan": "pro"}` or
/// `{"rate_limit": {"per_minute": 60, "per_hour": 1000}}`, else the default plan.
pub fn tenant_quota(
    cfg: &RateLimitConfig,
    settings: &std::collections::BTreeMap<String, serde_json::Value>,
) -> Option<Quota> {
    explicit_quota(settings.get("rate_limit"))
        .or_else(|| {
            settings
                .get("rate_limit_plan")
                .and_then(|p| p.as_str())
                .and_then(|p| cfg.plans.get(p).copied())
        })
        .or(cfg.default_plan)
}

/// `{"per_minute": N, "per_hour": M}` as a quota.
pub fn explicit_quota(v: Option<&serde_json::Value>) -> Option<Quota> {
    let v = v?;
    let per_minute = u32::try_from(v.get("per_minute")?.as_u64()?).ok()?;
    let per_hour = u32::try_from(v.get("per_hour")?.as_u64()?).ok()?;
    plan_quota(per_minute, per_hour).ok()
}
