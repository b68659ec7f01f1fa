//! `[risk]` of `sentinel.toml`: anomaly scoring (model file, state bounds,
//! window and baseline) and `[risk.biometrics]` (the telemetry endpoint's
//! bounds and rate limit, and the scoring settings of `sentinel-risk`).
//! The file format and its lowering into [`RiskConfig`]; every key is in
//! docs/configuration.md.

use super::lowering::Lowering;
use sentinel_risk::anomaly::AnomalyConfig;
use sentinel_risk::biometrics::BiometricsConfig;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;
use toml::Spanned;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskSectionFile {
    /// `false`: no risk scores at all (ABAC `risk` conditions then deny).
    pub enabled: Option<bool>,
    /// The anomaly model (ONNX); absent or refused: the rule fallback.
    pub model: Option<Spanned<String>>,
    pub max_principals: Option<u64>,
    pub max_addresses: Option<u64>,
    /// The window of recent activity (the seeds' `feature_store_ttl`), e.g. `1h`.
    pub window: Option<Spanned<String>>,
    /// A principal's state is forgotten after this long without a request, e.g. `30d`.
    pub profile_ttl: Option<Spanned<String>>,
    pub baseline_requests: Option<u32>,
    pub learn_below: Option<Spanned<f32>>,
    /// Benchmarks only: score at the time a request names in
    /// `sentinel-replay-time` (replays of recorded traffic). Never in production.
    pub replay_clock: Option<bool>,
    // Sub-tables are not `Spanned`: toml cannot span a table that is only
    // defined by a dotted header such as `[risk.biometrics.scoring]`.
    pub biometrics: Option<BiometricsFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BiometricsFile {
    /// `false`: `/.sentinel/biometrics` and `/.sentinel/telemetry*` answer 404.
    pub enabled: Option<bool>,
    pub max_profiles: Option<u64>,
    pub max_sessions: Option<u64>,
    pub batches_per_second: Option<Spanned<f64>>,
    pub burst: Option<Spanned<u32>>,
    pub max_body_bytes: Option<Spanned<usize>>,
    /// How often a cached profile is checked against the admin API's copy
    /// (a reset or deletion reaches the gateway within this), e.g. `30s`.
    pub profile_check: Option<Spanned<String>>,
    /// How long a changed profile waits before it is written back (changes
    /// in between are written once), e.g. `2s`.
    pub profile_write_delay: Option<Spanned<String>>,
    /// Live session scores shared by gateways through this Redis
    /// (`redis://…`); absent: each gateway knows its own sessions only.
    pub redis_url: Option<Spanned<String>>,
    /// Key prefix in that Redis (default `sentinel:bio:`).
    pub redis_prefix: Option<String>,
    /// Bound on every Redis call (default `100ms`).
    pub redis_timeout: Option<Spanned<String>>,
    /// Serve the collector's demo page at `/.sentinel/telemetry/demo`
    /// (`sentinel demo` turns it on; default off).
    pub demo_page: Option<bool>,
    /// `sentinel_risk::biometrics::BiometricsConfig`: thresholds and model settings.
    pub scoring: Option<BiometricsConfig>,
}

/// Risk scoring as configured.
#[derive(Debug, Clone)]
pub struct RiskConfig {
    pub enabled: bool,
    pub model: Option<PathBuf>,
    pub max_principals: u64,
    pub max_addresses: u64,
    pub anomaly: AnomalyConfig,
    /// `replay_clock = true`: anomaly time from `sentinel-replay-time` (benchmarks).
    pub replay_clock: bool,
    /// `None`: the telemetry endpoints are off.
    pub biometrics: Option<BiometricsSettings>,
}

/// `[risk.biometrics]` as configured.
#[derive(Debug, Clone)]
pub struct BiometricsSettings {
    pub max_profiles: u64,
    pub max_sessions: u64,
    pub batches_per_second: f64,
    pub burst: u32,
    pub max_body_bytes: usize,
    /// Revalidation interval of a cached profile (admin source only).
    pub profile_check: Duration,
    /// Debounce of profile write-backs (admin source only).
    pub profile_write_delay: Duration,
    /// Session scores shared through Redis (`redis_url`).
    pub redis: Option<SharedScoresConfig>,
    /// `GET /.sentinel/telemetry/demo` is served.
    pub demo_page: bool,
    pub scoring: BiometricsConfig,
}

/// `[risk.biometrics] redis_*`.
#[derive(Debug, Clone)]
pub struct SharedScoresConfig {
    pub url: String,
    pub prefix: String,
    pub timeout: Duration,
}

impl Default for BiometricsSettings {
    fn default() -> Self {
        BiometricsSettings {
            max_profiles: 10_000,
            max_sessions: 100_000,
            batches_per_second: 50.0,
            burst: 50,
            max_body_bytes: 512 * 1024,
            profile_check: Duration::from_secs(30),
            profile_write_delay: Duration::from_secs(2),
            redis: None,
            demo_page: false,
            scoring: BiometricsConfig::default(),
        }
    }
}

impl Default for RiskConfig {
    fn default() -> Self {
        RiskConfig {
            enabled: true,
            model: None,
            max_principals: 100_000,
            max_addresses: 100_000,
            anomaly: AnomalyConfig::default(),
            replay_clock: false,
            biometrics: Some(BiometricsSettings::default()),
        }
    }
}

impl Lowering<'_> {
    pub(super) fn risk(&mut self, file: &Option<RiskSectionFile>) -> RiskConfig {
        let mut out = RiskConfig::default();
        let Some(f) = file else {
            return out;
        };
        out.enabled = f.enabled.unwrap_or(true);
        out.model = f.model.as_ref().map(|m| self.path(m.get_ref()));
        out.replay_clock = f.replay_clock.unwrap_or(false);
        out.max_principals = f.max_principals.unwrap_or(out.max_principals);
        out.max_addresses = f.max_addresses.unwrap_or(out.max_addresses);
        let window = self.duration(&f.window, Duration::from_secs(out.anomaly.window_ttl));
        let profile = self.duration(&f.profile_ttl, Duration::from_secs(out.anomaly.profile_ttl));
        if window.as_secs() < 60 {
            if let Some(w) = &f.window {
                self.err(w.span(), "`window` must be at least 1m");
            }
        }
        if profile < window {
            if let Some(p) = &f.profile_ttl {
                self.err(p.span(), "`profile_ttl` must not be shorter than `window`");
            }
        }
        out.anomaly.window_ttl = window.as_secs().max(60);
        out.anomaly.profile_ttl = profile.as_secs().max(out.anomaly.window_ttl);
        out.anomaly.baseline_requests = f.baseline_requests.unwrap_or(30).max(1);
        if let Some(l) = &f.learn_below {
            if !(0.0..=1.0).contains(l.get_ref()) {
                self.err(l.span(), "`learn_below` is between 0 and 1");
            }
            out.anomaly.learn_below = l.get_ref().clamp(0.0, 1.0);
        }
        if let Some(b) = &f.biometrics {
            out.biometrics = self.biometrics(b);
        }
        out
    }

    fn biometrics(&mut self, f: &BiometricsFile) -> Option<BiometricsSettings> {
        if f.enabled == Some(false) {
            return None;
        }
        let mut out = BiometricsSettings::default();
        out.max_profiles = f.max_profiles.unwrap_or(out.max_profiles);
        out.max_sessions = f.max_sessions.unwrap_or(out.max_sessions);
        if let Some(r) = &f.batches_per_second {
            if !r.get_ref().is_finite() || *r.get_ref() < 20.0 {
                self.err(
                    r.span(),
                    "`batches_per_second` must admit at least 20 batches a second (SPEC)",
                );
            } else {
                out.batches_per_second = *r.get_ref();
            }
        }
        if let Some(b) = &f.burst {
            if *b.get_ref() == 0 {
                self.err(b.span(), "`burst` must be at least 1");
            }
            out.burst = (*b.get_ref()).max(1);
        }
        if let Some(m) = &f.max_body_bytes {
            out.max_body_bytes = *m.get_ref();
        }
        out.profile_check = self.duration(&f.profile_check, out.profile_check);
        if let Some(s) = &f.profile_check {
            if out.profile_check < Duration::from_secs(1)
                || out.profile_check > Duration::from_secs(3600)
            {
                self.err(s.span(), "`profile_check` must be between 1s and 1h");
            }
        }
        out.profile_write_delay = self.duration(&f.profile_write_delay, out.profile_write_delay);
        if let Some(s) = &f.profile_write_delay {
            if out.profile_write_delay > Duration::from_secs(60) {
                self.err(s.span(), "`profile_write_delay` must be at most 1m");
            }
        }
        out.demo_page = f.demo_page.unwrap_or(false);
        if let Some(u) = &f.redis_url {
            let url = u.get_ref().trim();
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                self.err(
                    u.span(),
                    "`redis_url` must be a `redis://` or `rediss://` URL",
                );
            }
            let timeout = self.duration(&f.redis_timeout, Duration::from_millis(100));
            if timeout.is_zero() || timeout > Duration::from_secs(5) {
                if let Some(t) = &f.redis_timeout {
                    self.err(t.span(), "`redis_timeout` must be between 1ms and 5s");
                }
            }
            out.redis = Some(SharedScoresConfig {
                url: url.to_owned(),
                prefix: f
                    .redis_prefix
                    .clone()
                    .unwrap_or_else(|| "sentinel:bio:".to_owned()),
                timeout,
            });
        }
        if let Some(s) = &f.scoring {
            // No span for a dotted table (see above): the problem names its key.
            for (field, message) in s.check() {
                self.err(
                    0..0,
                    format!("`risk.biometrics.scoring.{field}`: {message}"),
                );
            }
            out.scoring = s.clone();
        }
        Some(out)
    }
}
