//! Prometheus metrics of the gateway, registered once in a private registry.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};
use std::sync::{LazyLock, Mutex, OnceLock};

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub decisions: IntCounterVec,
    /// Requests whose shadow decision differs from the live one, by shadow rule.
    pub shadow_disagreements: IntCounterVec,
    pub latency: HistogramVec,
    pub snapshot_version: IntGauge,
    pub snapshot_loaded_at: IntGauge,
    pub snapshot_age: IntGauge,
    pub snapshot_rejected: IntCounterVec,
    pub snapshot_published_at: IntGauge,
    pub snapshot_publication_age: IntGauge,
    pub snapshot_check_age: IntGauge,
    pub snapshot_stale: IntGauge,
    pub snapshot_fetches: IntCounterVec,
    pub snapshot_apply: Histogram,
    pub snapshot_bundle_bytes: IntGauge,
    pub snapshot_parts_compiled: IntCounterVec,
    pub config_reloads: IntCounterVec,
    pub upstream_errors: IntCounterVec,
    pub rate_limit_checks: IntCounterVec,
    pub field_filter_failures: IntCounterVec,
    pub field_stream_aborts: IntCounterVec,
    pub field_writes: IntCounterVec,
    pub audit_events: IntCounterVec,
    pub audit_dropped: IntCounter,
    pub audit_spool_bytes: IntGauge,
    pub audit_shipped: IntCounter,
    pub audit_ship_failures: IntCounter,
    pub audit_ship_seconds: Histogram,
    pub audit_rejected: IntCounter,
    pub audit_torn: IntCounter,
    /// Risk scores and decisions, telemetry batches (`crate::risk`).
    pub risk: crate::risk::RiskMetrics,
    /// The rate limiter's own counters, read from `Limiter::stats` at each scrape.
    limiter: LimiterMetrics,
}

/// The rate limiter's health and counters (docs/rate-limits.md, "Metrics").
/// Built with the registry but registered on the first scrape of a gateway
/// that has a limiter, and the Redis series only in cluster mode: a gateway
/// without Redis must not show `sentinel_rate_limit_redis_up 0`.
struct LimiterMetrics {
    redis_up: IntGauge,
    redis_errors: IntCounter,
    fallbacks: IntCounter,
    fail_closed: IntCounter,
    local_keys: IntGauge,
    /// Registered yet (and the mode it was registered for); also serialises
    /// the counters' catch-up so two scrapes never add the same delta twice.
    registered: Mutex<Option<bool>>,
}

impl LimiterMetrics {
    fn build() -> Result<Self, prometheus::Error> {
        Ok(Self {
            redis_up: IntGauge::new(
                "rate_limit_redis_up",
                "1 while the last Redis call of the cluster rate limiter succeeded (cluster mode only)",
            )?,
            redis_errors: IntCounter::new(
                "rate_limit_redis_errors_total",
                "Redis calls of the cluster rate limiter that failed or timed out",
            )?,
            fallbacks: IntCounter::new(
                "rate_limit_fallbacks_total",
                "Checks answered by this gateway's local limits because Redis was unavailable (failure = \"open\")",
            )?,
            fail_closed: IntCounter::new(
                "rate_limit_fail_closed_total",
                "Checks refused because Redis was unavailable (failure = \"closed\")",
            )?,
            local_keys: IntGauge::new(
                "rate_limit_local_keys",
                "Rate-limit subjects held in this gateway's memory (local limits or the fail-open fallback)",
            )?,
            registered: Mutex::new(None),
        })
    }

    /// Copies `stats` into the series, registering them first if needed.
    /// The limiter's counters only grow, so each counter catches up by the difference.
    fn observe(&self, registry: &Registry, stats: &crate::ratelimit::Stats, shared: bool) {
        let Ok(mut registered) = self.registered.lock() else {
            return;
        };
        if registered.is_none() {
            let mut series: Vec<Box<dyn prometheus::core::Collector>> =
                vec![Box::new(self.local_keys.clone())];
            if shared {
                series.push(Box::new(self.redis_up.clone()));
                series.push(Box::new(self.redis_errors.clone()));
                series.push(Box::new(self.fallbacks.clone()));
                series.push(Box::new(self.fail_closed.clone()));
            }
            for s in series {
                if let Err(e) = registry.register(s) {
                    tracing::error!(error = %e, "cannot register a rate-limit metric");
                }
            }
            *registered = Some(shared);
        }
        self.local_keys.set(stats.local_keys as i64);
        if *registered == Some(true) {
            self.redis_up.set(i64::from(stats.cluster_up));
            for (counter, value) in [
                (&self.redis_errors, stats.cluster_errors),
                (&self.fallbacks, stats.fallbacks),
                (&self.fail_closed, stats.fail_closed),
            ] {
                counter.inc_by(value.saturating_sub(counter.get()));
            }
        }
    }
}

fn build() -> Result<Metrics, prometheus::Error> {
    let registry = Registry::new_custom(Some("sentinel".into()), None)?;
    let requests = IntCounterVec::new(
        Opts::new(
            "requests_total",
            "Requests by route, outcome (allowed, denied, error) and code",
        ),
        &["route", "outcome", "code"],
    )?;
    let decisions = IntCounterVec::new(
        Opts::new(
            "decisions_total",
            "Authorization decisions by route, decision and reason",
        ),
        &["route", "decision", "reason"],
    )?;
    let shadow_disagreements = IntCounterVec::new(
        Opts::new(
            "shadow_disagreements_total",
            "Requests whose decision with the shadow rules live would differ from the live one (allowed vs denied), by shadow rule id",
        ),
        &["rule"],
    )?;
    let latency = HistogramVec::new(
        HistogramOpts::new(
            "request_duration_seconds",
            "Time from request to response end, by route",
        )
        .buckets(vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ]),
        &["route"],
    )?;
    let snapshot_version = IntGauge::new(
        "snapshot_version",
        "Version of the policy snapshot in force",
    )?;
    let snapshot_loaded_at = IntGauge::new(
        "snapshot_loaded_timestamp_seconds",
        "Unix time the snapshot in force was loaded (age = now - this)",
    )?;
    let snapshot_age = IntGauge::new(
        "snapshot_age_seconds",
        "Seconds since the snapshot in force was loaded",
    )?;
    let snapshot_rejected = IntCounterVec::new(
        Opts::new(
            "snapshot_rejected_total",
            "Policy snapshots rejected, by reason (compile, parse, unsigned, bad_signature, unknown_key, payload_mismatch, replayed, ...)",
        ),
        &["reason"],
    )?;
    let snapshot_published_at = IntGauge::new(
        "snapshot_published_timestamp_seconds",
        "Unix time the snapshot in force was published by the admin API (0: unknown)",
    )?;
    let snapshot_publication_age = IntGauge::new(
        "snapshot_publication_age_seconds",
        "Seconds since the snapshot in force was published (admin source)",
    )?;
    let snapshot_check_age = IntGauge::new(
        "snapshot_check_age_seconds",
        "Seconds since the policy source last confirmed the snapshot in force is current",
    )?;
    let snapshot_stale = IntGauge::new(
        "snapshot_stale",
        "1 while the snapshot is older than `max_age` since the last successful check (alarm)",
    )?;
    let snapshot_fetches = IntCounterVec::new(
        Opts::new(
            "snapshot_fetches_total",
            "Long polls of the admin API by outcome (updated, not_modified, unavailable, error, rejected)",
        ),
        &["outcome"],
    )?;
    let snapshot_apply = Histogram::with_opts(
        HistogramOpts::new(
            "snapshot_apply_seconds",
            "Time to verify a fetched bundle and compile its changed parts (before the swap)",
        )
        .buckets(vec![
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        ]),
    )?;
    let snapshot_bundle_bytes = IntGauge::new(
        "snapshot_bundle_bytes",
        "Size of the last bundle swapped in (a delta carries only the parts that changed)",
    )?;
    let snapshot_parts_compiled = IntCounterVec::new(
        Opts::new(
            "snapshot_parts_compiled_total",
            "Policy parts compiled from fetched bundles, by kind (global, shard)",
        ),
        &["kind"],
    )?;
    let config_reloads = IntCounterVec::new(
        Opts::new(
            "config_reloads_total",
            "Config and route-file reloads by outcome (applied, rejected)",
        ),
        &["outcome"],
    )?;
    let upstream_errors = IntCounterVec::new(
        Opts::new(
            "upstream_errors_total",
            "Failed upstream exchanges by upstream and kind",
        ),
        &["upstream", "kind"],
    )?;
    let rate_limit_checks = IntCounterVec::new(
        Opts::new(
            "rate_limit_checks_total",
            "Rate-limit checks by tightest limit, outcome and what decided (local, cluster, fast_path, fallback, fail_closed)",
        ),
        &["limit", "outcome", "source"],
    )?;
    let field_filter_failures = IntCounterVec::new(
        Opts::new(
            "field_filter_failures_total",
            "Bound-route upstream answers refused with 502 because they could not be filtered, by route and reason",
        ),
        &["route", "reason"],
    )?;
    let field_stream_aborts = IntCounterVec::new(
        Opts::new(
            "field_stream_aborts_total",
            "Streamed bound-route answers cut off (connection aborted) because the upstream's body could not be filtered after the status was sent, by route and reason",
        ),
        &["route", "reason"],
    )?;
    let field_writes = IntCounterVec::new(
        Opts::new(
            "field_writes_total",
            "Writes to bound routes that carried fields the caller may not write, by route and outcome (denied, dropped)",
        ),
        &["route", "outcome"],
    )?;
    let audit_events = IntCounterVec::new(
        Opts::new(
            "audit_events_total",
            "Audit events written to the spool, by outcome (allowed, denied, rate_limited, step_up, error)",
        ),
        &["outcome"],
    )?;
    let audit_dropped = IntCounter::new(
        "audit_dropped_total",
        "Audit events dropped because the spool was full (or could not be written)",
    )?;
    let audit_spool_bytes = IntGauge::new(
        "audit_spool_bytes",
        "Bytes of the audit spool's segment files on disk",
    )?;
    let audit_shipped = IntCounter::new(
        "audit_shipped_total",
        "Audit events acknowledged by the admin API",
    )?;
    let audit_ship_failures = IntCounter::new(
        "audit_ship_failures_total",
        "Audit batch deliveries that failed and will be retried (connect errors, timeouts, 5xx, 408, 429, 401, 403)",
    )?;
    let audit_ship_seconds = Histogram::with_opts(
        HistogramOpts::new(
            "audit_ship_seconds",
            "Time to deliver one acknowledged audit batch to the admin API",
        )
        .buckets(vec![
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ]),
    )?;
    let audit_rejected = IntCounter::new(
        "audit_rejected_total",
        "Audit events in batches the admin API refused for good (kept in the spool's rejected/)",
    )?;
    let audit_torn = IntCounter::new(
        "audit_torn_lines_total",
        "Torn or unreadable lines skipped while reading the audit spool (a crash mid-write)",
    )?;
    registry.register(Box::new(audit_events.clone()))?;
    registry.register(Box::new(audit_dropped.clone()))?;
    registry.register(Box::new(audit_spool_bytes.clone()))?;
    registry.register(Box::new(audit_shipped.clone()))?;
    registry.register(Box::new(audit_ship_failures.clone()))?;
    registry.register(Box::new(audit_ship_seconds.clone()))?;
    registry.register(Box::new(audit_rejected.clone()))?;
    registry.register(Box::new(audit_torn.clone()))?;
    registry.register(Box::new(field_filter_failures.clone()))?;
    registry.register(Box::new(field_stream_aborts.clone()))?;
    registry.register(Box::new(field_writes.clone()))?;
    registry.register(Box::new(rate_limit_checks.clone()))?;
    registry.register(Box::new(requests.clone()))?;
    registry.register(Box::new(decisions.clone()))?;
    registry.register(Box::new(shadow_disagreements.clone()))?;
    registry.register(Box::new(latency.clone()))?;
    registry.register(Box::new(snapshot_version.clone()))?;
    registry.register(Box::new(snapshot_loaded_at.clone()))?;
    registry.register(Box::new(snapshot_age.clone()))?;
    registry.register(Box::new(snapshot_rejected.clone()))?;
    registry.register(Box::new(snapshot_published_at.clone()))?;
    registry.register(Box::new(snapshot_publication_age.clone()))?;
    registry.register(Box::new(snapshot_check_age.clone()))?;
    registry.register(Box::new(snapshot_stale.clone()))?;
    registry.register(Box::new(snapshot_fetches.clone()))?;
    registry.register(Box::new(snapshot_apply.clone()))?;
    registry.register(Box::new(snapshot_bundle_bytes.clone()))?;
    registry.register(Box::new(snapshot_parts_compiled.clone()))?;
    registry.register(Box::new(config_reloads.clone()))?;
    registry.register(Box::new(upstream_errors.clone()))?;
    let risk = crate::risk::RiskMetrics::register(&registry)?;
    let limiter = LimiterMetrics::build()?;
    Ok(Metrics {
        registry,
        requests,
        decisions,
        shadow_disagreements,
        latency,
        snapshot_version,
        snapshot_loaded_at,
        snapshot_age,
        snapshot_rejected,
        snapshot_published_at,
        snapshot_publication_age,
        snapshot_check_age,
        snapshot_stale,
        snapshot_fetches,
        snapshot_apply,
        snapshot_bundle_bytes,
        snapshot_parts_compiled,
        config_reloads,
        upstream_errors,
        rate_limit_checks,
        field_filter_failures,
        field_stream_aborts,
        field_writes,
        audit_events,
        audit_dropped,
        audit_spool_bytes,
        audit_shipped,
        audit_ship_failures,
        audit_ship_seconds,
        audit_rejected,
        audit_torn,
        risk,
        limiter,
    })
}

static METRICS: LazyLock<Option<Metrics>> = LazyLock::new(|| match build() {
    Ok(m) => Some(m),
    Err(e) => {
        tracing::error!(error = %e, "metrics registry could not be built; metrics are off");
        None
    }
});

pub fn get() -> Option<&'static Metrics> {
    METRICS.as_ref()
}

pub fn snapshot_swapped(version: u64) {
    if let Some(m) = get() {
        m.snapshot_version.set(version as i64);
        m.snapshot_loaded_at.set(crate::clock::unix_now());
    }
}

pub fn snapshot_rejected(reason: &str) {
    if let Some(m) = get() {
        m.snapshot_rejected.with_label_values(&[reason]).inc();
    }
}

pub fn snapshot_fetch(outcome: &str) {
    if let Some(m) = get() {
        m.snapshot_fetches.with_label_values(&[outcome]).inc();
    }
}

pub fn snapshot_published(iat: i64) {
    if let Some(m) = get() {
        m.snapshot_published_at.set(iat);
    }
}

/// A bundle swapped in: its size, how long verify + compile took, and what it compiled.
pub fn snapshot_applied(bytes: usize, seconds: f64, global: bool, shards: usize) {
    if let Some(m) = get() {
        m.snapshot_bundle_bytes.set(bytes as i64);
        m.snapshot_apply.observe(seconds);
        if global {
            m.snapshot_parts_compiled
                .with_label_values(&["global"])
                .inc();
        }
        m.snapshot_parts_compiled
            .with_label_values(&["shard"])
            .inc_by(shards as u64);
    }
}

pub fn config_reload(outcome: &str) {
    if let Some(m) = get() {
        m.config_reloads.with_label_values(&[outcome]).inc();
    }
}

/// The rate limiter's health and counters, read at a scrape (`ops`): no
/// per-request work. `shared`: cluster mode (Redis).
pub fn rate_limiter(stats: &crate::ratelimit::Stats, shared: bool) {
    if let Some(m) = get() {
        m.limiter.observe(&m.registry, stats, shared);
    }
}

/// The text exposition of every metric.
pub fn render() -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(m) = get() {
        let _ = TextEncoder::new().encode(&m.registry.gather(), &mut out);
    }
    out
}

/// One route's per-request series, each resolved on its first use and kept
/// with the route: `with_label_values` hashes the labels and takes a read
/// lock on every call, which is per-request work the common outcomes do not
/// need. A series still appears in `/metrics` only once it was used. A
/// reloaded route table starts with fresh (empty) handles.
#[derive(Default)]
pub struct RouteSeries {
    allowed_ok: OnceLock<IntCounter>,
    latency: OnceLock<Histogram>,
    allowed_decision: OnceLock<IntCounter>,
}

impl RouteSeries {
    /// `requests_total{route, outcome="allowed", code="OK"}`.
    pub fn allowed_ok(&self, m: &Metrics, route: &str) -> &IntCounter {
        self.allowed_ok
            .get_or_init(|| m.requests.with_label_values(&[route, "allowed", "OK"]))
    }

    /// `request_duration_seconds{route}`.
    pub fn latency(&self, m: &Metrics, route: &str) -> &Histogram {
        self.latency
            .get_or_init(|| m.latency.with_label_values(&[route]))
    }

    /// `decisions_total{route, decision="allow", reason="allowed"}`.
    pub fn allowed_decision(&self, m: &Metrics, route: &str) -> &IntCounter {
        self.allowed_decision.get_or_init(|| {
            m.decisions.with_label_values(&[
                route,
                "allow",
                sentinel_policy::Reason::Allowed.name(),
            ])
        })
    }
}

/// Handles are a cache, not part of a route's identity.
impl PartialEq for RouteSeries {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Clone for RouteSeries {
    fn clone(&self) -> Self {
        RouteSeries::default()
    }
}

impl std::fmt::Debug for RouteSeries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RouteSeries")
    }
}
