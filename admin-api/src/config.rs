//! Runtime settings of the admin API, read from the environment with defaults.

use anyhow::Context;

#[derive(Debug, Clone)]
pub struct Config {
    /// `iss` of the tokens this API issues.
    pub issuer: String,
    /// `aud` of the tokens this API issues and accepts.
    pub audience: String,
    /// Access-token lifetime, seconds.
    pub access_ttl: i64,
    /// Refresh-token lifetime, seconds.
    pub refresh_ttl: i64,
    /// Failed logins in a row that lock an account.
    pub lockout_threshold: i32,
    /// Longest backoff of an (account, address) pair, seconds.
    pub lockout_seconds: i64,
    /// First backoff of an (account, address) pair, seconds (doubles per failure).
    pub lockout_base_seconds: i64,
    /// Auth endpoints: requests per minute and burst per client address.
    pub auth_rate_per_minute: u32,
    pub auth_rate_burst: u32,
    /// Proxies whose `X-Forwarded-For` names the client (docs/admin-api.md).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// argon2id cost: memory (KiB), iterations, parallelism.
    pub argon2_m_kib: u32,
    pub argon2_t: u32,
    pub argon2_p: u32,
    /// Default lifetime of service-account API keys, days (0: no expiry).
    pub api_key_ttl_days: i64,
    /// Largest accepted request body, bytes.
    pub max_body_bytes: usize,
    /// How often `serve` reloads signing keys from the database, seconds.
    pub key_reload_seconds: u64,
    /// Publisher: quiet time after a change before publishing, milliseconds.
    pub snapshot_debounce_ms: u64,
    /// Publisher: longest a change waits for quiet before it is published anyway, milliseconds.
    pub snapshot_max_delay_ms: u64,
    /// Publisher: how often it checks for changes without a notification, seconds.
    pub snapshot_tick_seconds: u64,
    /// How many snapshot versions are kept in `sentinel.policy_snapshots`.
    pub snapshot_retain: u32,
    /// The admin console's build, served at `/console/` (`None`: turned off).
    pub console_dir: Option<std::path::PathBuf>,
    /// Audit retention of a tenant without `settings.audit_retention_days`, days.
    pub audit_retention_days: i32,
    /// Audit partitions kept ready beyond this month.
    pub audit_partitions_ahead: i32,
    /// How often partitions and retention are seen to, seconds.
    pub audit_maintenance_seconds: u64,
    /// How often the approvals worker escalates and expires, milliseconds.
    pub approvals_worker_ms: u64,
    /// Webhooks (docs/webhooks.md): longest one delivery attempt, milliseconds.
    pub webhook_timeout_ms: u64,
    /// Retries after a failed first attempt (seeds: `agent_retry_count` = 3).
    pub webhook_retries: u32,
    /// Wait before the first retry, seconds (doubled for each further one).
    pub webhook_backoff_seconds: u64,
    /// Longest wait between two attempts, seconds.
    pub webhook_max_backoff_seconds: u64,
    /// How often the delivery worker looks for due events, milliseconds.
    pub webhook_poll_ms: u64,
    /// Delivered events and dead letters are kept this long, days.
    pub webhook_retention_days: i64,
    /// Webhooks may point at loopback addresses (tests, development).
    pub webhook_allow_loopback: bool,
    /// Non-public networks webhooks may point at (an internal receiver).
    pub webhook_allowed_networks: Vec<ipnet::IpNet>,
    /// AI-assisted administration (docs/ai.md): off answers `/ai/...` with 404.
    pub ai_enabled: bool,
    /// Predictive access shows suggestions at or above this confidence (seeds: 0.8).
    pub prediction_confidence_threshold: f64,
    /// Predictive access: how far back peers' use is read from the audit trail, days.
    pub prediction_window_days: i64,
    /// Optimizer: how far back the audit trail is read, days.
    pub ai_window_days: i64,
    /// Optimizer: Jaccard similarity from which two roles are near-duplicates.
    pub ai_jaccard_threshold: f64,
    /// Optimizer: fewest users with one permission set that role mining reports.
    pub ai_role_mining_min_users: usize,
    /// Separation-of-duties rules (a tenant's `settings.ai_sod_rules` replaces them).
    pub ai_sod_rules: Vec<SodRule>,
    /// Compliance: a service-account key older than this is stale, days
    /// (seeds: `service_account_rotation_days` = 90).
    pub service_account_rotation_days: i64,
    /// Compliance: a user without a login for this long is dormant, days.
    pub ai_dormant_days: i64,
    /// Compliance: most principals with an admin scope before the check fails.
    pub ai_max_admins: i64,
    /// Compliance: the scheduled worker runs (seeds: `compliance_checks_enabled`).
    pub compliance_checks_enabled: bool,
    /// Compliance: the regulations checked (seeds: GDPR, SOX, HIPAA, ISPS).
    pub compliance_regulations: Vec<String>,
    /// Compliance: a tenant's scheduled run is due this long after its last one, seconds.
    pub compliance_interval_seconds: u64,
}

/// A separation-of-duties rule: nobody may be allowed both `a` and `b`,
/// each a `(resource_type, action)`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SodRule {
    pub name: String,
    pub a: (String, String),
    pub b: (String, String),
}

/// `name=type:action+type:action;…` (the `SENTINEL_AI_SOD_RULES` format).
pub fn parse_sod_rules(list: &str) -> anyhow::Result<Vec<SodRule>> {
    fn side(s: &str) -> Option<(String, String)> {
        let (t, a) = s.trim().split_once(':')?;
        let ok = |x: &str| crate::routes::valid_ident(x) || x == "*";
        (crate::routes::valid_ident(t) && ok(a)).then(|| (t.to_owned(), a.to_owned()))
    }
    list.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|r| {
            let bad = || anyhow::anyhow!("invalid SENTINEL_AI_SOD_RULES entry {r:?}");
            let (name, pair) = r.split_once('=').ok_or_else(bad)?;
            let (a, b) = pair.split_once('+').ok_or_else(bad)?;
            Ok(SodRule {
                name: name.trim().to_owned(),
                a: side(a).ok_or_else(bad)?,
                b: side(b).ok_or_else(bad)?,
            })
        })
        .collect()
}

/// The built-in separation-of-duties rules: whoever raises a payment,
/// invoice or port call may not approve it.
pub const DEFAULT_SOD_RULES: &str = "payment-create-approve=payment:create+payment:approve;\
     invoice-create-approve=invoice:create+invoice:approve;\
     port-call-create-approve=port_call:create+port_call:approve";

impl Default for Config {
    fn default() -> Self {
        Config {
            issuer: "sentinel-admin".to_owned(),
            audience: "sentinel".to_owned(),
            access_ttl: 900,
            refresh_ttl: 7 * 24 * 3600,
            lockout_threshold: 5,
            lockout_seconds: 15 * 60,
            lockout_base_seconds: 30,
            auth_rate_per_minute: 20,
            auth_rate_burst: 10,
            trusted_proxies: Vec::new(),
            // OWASP's argon2id recommendation: m = 19 MiB, t = 2, p = 1.
            argon2_m_kib: 19 * 1024,
            argon2_t: 2,
            argon2_p: 1,
            api_key_ttl_days: 365,
            max_body_bytes: 1024 * 1024,
            key_reload_seconds: 60,
            snapshot_debounce_ms: 100,
            snapshot_max_delay_ms: 500,
            snapshot_tick_seconds: 5,
            snapshot_retain: 50,
            console_dir: Some("console/dist".into()),
            // 13 months: a year of history plus the month it is read in.
            audit_retention_days: 400,
            audit_partitions_ahead: 2,
            audit_maintenance_seconds: 3600,
            approvals_worker_ms: 2000,
            webhook_timeout_ms: 10_000,
            webhook_retries: 3,
            webhook_backoff_seconds: 30,
            webhook_max_backoff_seconds: 3600,
            webhook_poll_ms: 1000,
            webhook_retention_days: 14,
            webhook_allow_loopback: false,
            webhook_allowed_networks: Vec::new(),
            ai_enabled: true,
            prediction_confidence_threshold: 0.8,
            prediction_window_days: 90,
            ai_window_days: 90,
            ai_jaccard_threshold: 0.8,
            ai_role_mining_min_users: 3,
            ai_sod_rules: parse_sod_rules(DEFAULT_SOD_RULES).unwrap_or_default(),
            service_account_rotation_days: 90,
            ai_dormant_days: 90,
            ai_max_admins: 5,
            compliance_checks_enabled: true,
            compliance_regulations: ["GDPR", "SOX", "HIPAA", "ISPS"].map(str::to_owned).to_vec(),
            compliance_interval_seconds: 24 * 3600,
        }
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v.parse().with_context(|| format!("invalid {name}")),
        _ => Ok(default),
    }
}

/// A comma-separated list of networks (`10.1.0.0/16`) or addresses.
fn parse_networks(name: &str, list: &str) -> anyhow::Result<Vec<ipnet::IpNet>> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<ipnet::IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map(|n| n.trunc())
                .map_err(|_| anyhow::anyhow!("invalid {name} entry {s:?}"))
        })
        .collect()
}

impl Config {
    /// Reads `SENTINEL_*` variables; unset ones keep their defaults.
    pub fn from_env() -> anyhow::Result<Self> {
        let d = Config::default();
        Ok(Config {
            issuer: env_or("SENTINEL_ISSUER", d.issuer)?,
            audience: env_or("SENTINEL_AUDIENCE", d.audience)?,
            access_ttl: env_or("SENTINEL_ACCESS_TTL", d.access_ttl)?,
            refresh_ttl: env_or("SENTINEL_REFRESH_TTL", d.refresh_ttl)?,
            lockout_threshold: env_or("SENTINEL_LOCKOUT_THRESHOLD", d.lockout_threshold)?,
            lockout_seconds: env_or("SENTINEL_LOCKOUT_SECONDS", d.lockout_seconds)?,
            lockout_base_seconds: env_or("SENTINEL_LOCKOUT_BASE_SECONDS", d.lockout_base_seconds)?,
            auth_rate_per_minute: env_or("SENTINEL_AUTH_RATE_PER_MINUTE", d.auth_rate_per_minute)?,
            auth_rate_burst: env_or("SENTINEL_AUTH_RATE_BURST", d.auth_rate_burst)?,
            trusted_proxies: crate::throttle::parse_trusted(
                &std::env::var("SENTINEL_TRUSTED_PROXIES").unwrap_or_default(),
            )?,
            argon2_m_kib: env_or("SENTINEL_ARGON2_M_KIB", d.argon2_m_kib)?,
            argon2_t: env_or("SENTINEL_ARGON2_T", d.argon2_t)?,
            argon2_p: env_or("SENTINEL_ARGON2_P", d.argon2_p)?,
            api_key_ttl_days: env_or("SENTINEL_API_KEY_TTL_DAYS", d.api_key_ttl_days)?,
            max_body_bytes: env_or("SENTINEL_MAX_BODY_BYTES", d.max_body_bytes)?,
            key_reload_seconds: env_or("SENTINEL_KEY_RELOAD_SECONDS", d.key_reload_seconds)?,
            snapshot_debounce_ms: env_or("SENTINEL_SNAPSHOT_DEBOUNCE_MS", d.snapshot_debounce_ms)?,
            snapshot_max_delay_ms: env_or(
                "SENTINEL_SNAPSHOT_MAX_DELAY_MS",
                d.snapshot_max_delay_ms,
            )?,
            snapshot_tick_seconds: env_or(
                "SENTINEL_SNAPSHOT_TICK_SECONDS",
                d.snapshot_tick_seconds,
            )?,
            snapshot_retain: env_or("SENTINEL_SNAPSHOT_RETAIN", d.snapshot_retain)?,
            // Set but empty turns the console off.
            console_dir: match std::env::var_os("SENTINEL_CONSOLE_DIR") {
                Some(v) if v.is_empty() => None,
                Some(v) => Some(v.into()),
                None => d.console_dir,
            },
            audit_retention_days: env_or("SENTINEL_AUDIT_RETENTION_DAYS", d.audit_retention_days)?,
            audit_partitions_ahead: env_or(
                "SENTINEL_AUDIT_PARTITIONS_AHEAD",
                d.audit_partitions_ahead,
            )?,
            approvals_worker_ms: env_or("SENTINEL_APPROVALS_WORKER_MS", d.approvals_worker_ms)?,
            audit_maintenance_seconds: env_or(
                "SENTINEL_AUDIT_MAINTENANCE_SECONDS",
                d.audit_maintenance_seconds,
            )?,
            webhook_timeout_ms: env_or("SENTINEL_WEBHOOK_TIMEOUT_MS", d.webhook_timeout_ms)?,
            webhook_retries: env_or("SENTINEL_WEBHOOK_RETRIES", d.webhook_retries)?,
            webhook_backoff_seconds: env_or(
                "SENTINEL_WEBHOOK_BACKOFF_SECONDS",
                d.webhook_backoff_seconds,
            )?,
            webhook_max_backoff_seconds: env_or(
                "SENTINEL_WEBHOOK_MAX_BACKOFF_SECONDS",
                d.webhook_max_backoff_seconds,
            )?,
            webhook_poll_ms: env_or("SENTINEL_WEBHOOK_POLL_MS", d.webhook_poll_ms)?,
            webhook_retention_days: env_or(
                "SENTINEL_WEBHOOK_RETENTION_DAYS",
                d.webhook_retention_days,
            )?,
            webhook_allow_loopback: env_or(
                "SENTINEL_WEBHOOK_ALLOW_LOOPBACK",
                d.webhook_allow_loopback,
            )?,
            webhook_allowed_networks: parse_networks(
                "SENTINEL_WEBHOOK_ALLOWED_NETWORKS",
                &std::env::var("SENTINEL_WEBHOOK_ALLOWED_NETWORKS").unwrap_or_default(),
            )?,
            ai_enabled: env_or("SENTINEL_AI_ENABLED", d.ai_enabled)?,
            prediction_confidence_threshold: {
                let t: f64 = env_or(
                    "SENTINEL_PREDICTION_CONFIDENCE_THRESHOLD",
                    d.prediction_confidence_threshold,
                )?;
                anyhow::ensure!(
                    (0.0..=1.0).contains(&t),
                    "invalid SENTINEL_PREDICTION_CONFIDENCE_THRESHOLD: must be in [0, 1]"
                );
                t
            },
            prediction_window_days: env_or(
                "SENTINEL_PREDICTION_WINDOW_DAYS",
                d.prediction_window_days,
            )?,
            ai_window_days: env_or("SENTINEL_AI_WINDOW_DAYS", d.ai_window_days)?,
            ai_jaccard_threshold: env_or("SENTINEL_AI_JACCARD_THRESHOLD", d.ai_jaccard_threshold)?,
            ai_role_mining_min_users: env_or(
                "SENTINEL_AI_ROLE_MINING_MIN_USERS",
                d.ai_role_mining_min_users,
            )?,
            ai_sod_rules: match std::env::var("SENTINEL_AI_SOD_RULES") {
                Ok(v) => parse_sod_rules(&v)?,
                Err(_) => d.ai_sod_rules,
            },
            service_account_rotation_days: env_or(
                "SENTINEL_SERVICE_ACCOUNT_ROTATION_DAYS",
                d.service_account_rotation_days,
            )?,
            ai_dormant_days: env_or("SENTINEL_AI_DORMANT_DAYS", d.ai_dormant_days)?,
            ai_max_admins: env_or("SENTINEL_AI_MAX_ADMINS", d.ai_max_admins)?,
            compliance_checks_enabled: env_or(
                "SENTINEL_COMPLIANCE_CHECKS_ENABLED",
                d.compliance_checks_enabled,
            )?,
            compliance_regulations: match std::env::var("SENTINEL_COMPLIANCE_REGULATIONS") {
                Ok(v) if !v.trim().is_empty() => v
                    .split(',')
                    .map(|s| s.trim().to_ascii_uppercase())
                    .filter(|s| !s.is_empty())
                    .collect(),
                _ => d.compliance_regulations,
            },
            compliance_interval_seconds: env_or(
                "SENTINEL_COMPLIANCE_INTERVAL_SECONDS",
                d.compliance_interval_seconds,
            )?,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn sod_rules_parse_and_refuse() {
        let r = parse_sod_rules(DEFAULT_SOD_RULES).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].name, "payment-create-approve");
        assert_eq!(r[0].a, ("payment".to_owned(), "create".to_owned()));
        assert_eq!(r[2].b, ("port_call".to_owned(), "approve".to_owned()));
        assert!(parse_sod_rules("").unwrap().is_empty());
        assert_eq!(parse_sod_rules("x=a:*+b:read;").unwrap().len(), 1);
        for bad in ["x", "x=a:b", "x=a+b:c", "x=A:b+c:d", "x=a:b+c:"] {
            assert!(parse_sod_rules(bad).is_err(), "{bad}");
        }
    }
}
