//! Prometheus metrics of the admin API, served at `/metrics`.

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::state::AppState;

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    /// Latest snapshot version this process knows (published or seen).
    pub snapshot_version: IntGauge,
    /// Snapshots this process published.
    pub snapshot_publish_total: IntCounter,
    /// Publishing attempts that failed, by reason (`compile`, `error`).
    pub snapshot_publish_failures: IntCounterVec,
    pub snapshot_compile_seconds: Histogram,
    pub snapshot_sign_seconds: Histogram,
    /// Size of the last published payload.
    pub snapshot_payload_bytes: IntGauge,
    /// Audit events stored from gateway batches.
    pub audit_ingested_total: IntCounter,
    /// Audit events of gateway batches that were stored already (replays).
    pub audit_duplicates_total: IntCounter,
    /// Time to take one audit batch: read, check, store, commit.
    pub audit_ingest_seconds: Histogram,
    /// Access-request state changes by action, status and auto-approval.
    pub approval_total: IntCounterVec,
    /// From opening a request to its final decision (approved or denied).
    pub approval_cycle_seconds: Histogram,
    /// Pending requests by age bucket (set by the approvals worker).
    pub approval_pending: IntGaugeVec,
    /// Webhook delivery attempts by result (`delivered`, `retry`, `dead_letter`).
    pub webhook_deliveries: IntCounterVec,
    /// Outbox events neither delivered nor failed yet.
    pub outbox_pending: IntGauge,
    /// Age of the oldest such event, seconds.
    pub outbox_oldest_pending_seconds: Gauge,
    /// Questions and predictions (`sentinel_ai_query_*`, `sentinel_ai_prediction_*`).
    pub ai_query: crate::ai::query::metrics::QueryMetrics,
    /// Permission optimizer runs (docs/ai.md).
    pub ai_optimizer_runs_total: IntCounter,
    /// Time of one optimizer run: load, analyze, store.
    pub ai_optimizer_run_seconds: Histogram,
    /// Findings optimizer runs produced, by kind.
    pub ai_optimizer_findings: IntCounterVec,
    /// Findings admins decided, by decision (`applied`, `dismissed`).
    pub ai_optimizer_decisions: IntCounterVec,
    /// Compliance runs by trigger (`schedule`, `on_demand`).
    pub ai_compliance_runs: IntCounterVec,
    /// Failed compliance checks by regulation.
    pub ai_compliance_failed_checks: IntCounterVec,
}

impl Metrics {
    pub fn new() -> anyhow::Result<Self> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "sentinel_admin_requests_total",
                "admin API requests by route and status",
            ),
            &["method", "route", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "sentinel_admin_request_seconds",
                "admin API latency by route",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["method", "route"],
        )?;
        let secs = vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ];
        let snapshot_version = IntGauge::new(
            "sentinel_admin_snapshot_version",
            "latest policy snapshot version known to this process",
        )?;
        let snapshot_publish_total = IntCounter::new(
            "sentinel_admin_snapshot_publish_total",
            "policy snapshots published by this process",
        )?;
        let snapshot_publish_failures = IntCounterVec::new(
            Opts::new(
                "sentinel_admin_snapshot_publish_failures_total",
                "policy snapshot publishing failures by reason (compile, error)",
            ),
            &["reason"],
        )?;
        let snapshot_compile_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "sentinel_admin_snapshot_compile_seconds",
                "time to compile the parts a publication rebuilt (global part and changed shards)",
            )
            .buckets(secs.clone()),
        )?;
        let snapshot_sign_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "sentinel_admin_snapshot_sign_seconds",
                "time to hash and sign a snapshot manifest",
            )
            .buckets(secs),
        )?;
        let snapshot_payload_bytes = IntGauge::new(
            "sentinel_admin_snapshot_payload_bytes",
            "bytes the last publication added: the manifest and its new parts",
        )?;
        let audit_ingested_total = IntCounter::new(
            "sentinel_admin_audit_ingested_total",
            "audit events stored from gateway batches",
        )?;
        let audit_duplicates_total = IntCounter::new(
            "sentinel_admin_audit_duplicates_total",
            "audit events of gateway batches already stored (replays, skipped)",
        )?;
        let audit_ingest_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "sentinel_admin_audit_ingest_seconds",
                "time to take one audit batch: read, check, store, commit",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
        )?;
        let approval_total = IntCounterVec::new(
            Opts::new(
                "sentinel_approval_chains_total",
                "access-request state changes (requested, level_approved, approved, denied, cancelled, escalated, expired) by action",
            ),
            &["action", "status", "auto_approved"],
        )?;
        let approval_cycle_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "sentinel_approval_cycle_seconds",
                "time from opening an access request to its final decision",
            )
            .buckets(vec![
                1.0, 10.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0,
                172800.0,
            ]),
        )?;
        let approval_pending = IntGaugeVec::new(
            Opts::new(
                "sentinel_approval_pending_requests",
                "pending access requests by age (lt_1h, 1h_2h, 2h_24h, gt_24h)",
            ),
            &["age"],
        )?;
        registry.register(Box::new(approval_total.clone()))?;
        registry.register(Box::new(approval_cycle_seconds.clone()))?;
        registry.register(Box::new(approval_pending.clone()))?;
        for age in crate::approvals::worker::AGE_BUCKETS {
            approval_pending.with_label_values(&[age]);
        }
        let webhook_deliveries = IntCounterVec::new(
            Opts::new(
                "sentinel_webhook_deliveries_total",
                "webhook delivery attempts by result (delivered, retry, dead_letter)",
            ),
            &["result"],
        )?;
        let outbox_pending = IntGauge::new(
            "sentinel_outbox_pending",
            "notification events waiting for delivery (neither delivered nor failed)",
        )?;
        let outbox_oldest_pending_seconds = Gauge::new(
            "sentinel_outbox_oldest_pending_seconds",
            "age of the oldest notification event waiting for delivery",
        )?;
        let ai_optimizer_runs_total = IntCounter::new(
            "sentinel_ai_optimizer_runs_total",
            "permission optimizer runs",
        )?;
        let ai_optimizer_run_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "sentinel_ai_optimizer_run_seconds",
                "time of one permission optimizer run: load policy and audit uses, analyze, store",
            )
            .buckets(vec![
                0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            ]),
        )?;
        let ai_optimizer_findings = IntCounterVec::new(
            Opts::new(
                "sentinel_ai_optimizer_findings_total",
                "findings produced by permission optimizer runs, by kind",
            ),
            &["kind"],
        )?;
        let ai_optimizer_decisions = IntCounterVec::new(
            Opts::new(
                "sentinel_ai_optimizer_decisions_total",
                "optimizer findings applied or dismissed by an admin",
            ),
            &["decision"],
        )?;
        let ai_compliance_runs = IntCounterVec::new(
            Opts::new(
                "sentinel_ai_compliance_runs_total",
                "compliance monitor runs by trigger (schedule, on_demand)",
            ),
            &["trigger"],
        )?;
        let ai_compliance_failed_checks = IntCounterVec::new(
            Opts::new(
                "sentinel_ai_compliance_failed_checks_total",
                "failed compliance checks by regulation",
            ),
            &["regulation"],
        )?;
        registry.register(Box::new(ai_optimizer_runs_total.clone()))?;
        registry.register(Box::new(ai_optimizer_run_seconds.clone()))?;
        registry.register(Box::new(ai_optimizer_findings.clone()))?;
        registry.register(Box::new(ai_optimizer_decisions.clone()))?;
        registry.register(Box::new(ai_compliance_runs.clone()))?;
        registry.register(Box::new(ai_compliance_failed_checks.clone()))?;
        registry.register(Box::new(webhook_deliveries.clone()))?;
        registry.register(Box::new(outbox_pending.clone()))?;
        registry.register(Box::new(outbox_oldest_pending_seconds.clone()))?;
        for result in ["delivered", "retry", "dead_letter"] {
            webhook_deliveries.with_label_values(&[result]);
        }
        registry.register(Box::new(audit_ingested_total.clone()))?;
        registry.register(Box::new(audit_duplicates_total.clone()))?;
        registry.register(Box::new(audit_ingest_seconds.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(snapshot_version.clone()))?;
        registry.register(Box::new(snapshot_publish_total.clone()))?;
        registry.register(Box::new(snapshot_publish_failures.clone()))?;
        registry.register(Box::new(snapshot_compile_seconds.clone()))?;
        registry.register(Box::new(snapshot_sign_seconds.clone()))?;
        registry.register(Box::new(snapshot_payload_bytes.clone()))?;
        for reason in ["compile", "error"] {
            snapshot_publish_failures.with_label_values(&[reason]);
        }
        let ai_query = crate::ai::query::metrics::QueryMetrics::new(&registry)?;
        Ok(Metrics {
            ai_query,
            registry,
            requests,
            latency,
            snapshot_version,
            snapshot_publish_total,
            snapshot_publish_failures,
            snapshot_compile_seconds,
            snapshot_sign_seconds,
            snapshot_payload_bytes,
            audit_ingested_total,
            audit_duplicates_total,
            audit_ingest_seconds,
            approval_total,
            approval_cycle_seconds,
            approval_pending,
            webhook_deliveries,
            outbox_pending,
            outbox_oldest_pending_seconds,
            ai_optimizer_runs_total,
            ai_optimizer_run_seconds,
            ai_optimizer_findings,
            ai_optimizer_decisions,
            ai_compliance_runs,
            ai_compliance_failed_checks,
        })
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// Counts and times every request by its matched route (never the raw path).
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().as_str().to_owned();
    let start = std::time::Instant::now();
    let resp = next.run(req).await;
    let m = &state.metrics;
    m.latency
        .with_label_values(&[&method, &route])
        .observe(start.elapsed().as_secs_f64());
    m.requests
        .with_label_values(&[&method, &route, resp.status().as_str()])
        .inc();
    resp
}
