//! Request traces of the admin API (docs/operations.md, "Traces"): a server
//! span per request, named `METHOD matched-route`, exported like the
//! gateway's (`sentinel_telemetry::otel`). Off unless
//! `SENTINEL_OTEL_ENDPOINT` is set; then [`layer`] wraps the app, and
//! without it the app has no tracing layer at all. A `traceparent` is
//! continued only from `SENTINEL_TRUSTED_PROXIES` (the list that lets
//! `X-Forwarded-For` through); anyone else's request starts a fresh trace.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use ipnet::IpNet;
use sentinel_telemetry::otel::opentelemetry::trace::{Span as _, SpanKind, Status, Tracer as _};
use sentinel_telemetry::otel::opentelemetry::{Context, KeyValue};
use sentinel_telemetry::otel::{self, Settings, Tracing};

/// `service.name` unless `SENTINEL_OTEL_SERVICE_NAME` says otherwise.
pub const DEFAULT_SERVICE_NAME: &str = "sentinel-admin";

/// The settings from the environment; `None` when `SENTINEL_OTEL_ENDPOINT`
/// is unset or empty (tracing off).
pub fn settings_from_env() -> anyhow::Result<Option<Settings>> {
    let endpoint = match std::env::var("SENTINEL_OTEL_ENDPOINT") {
        Ok(e) if !e.trim().is_empty() => e,
        _ => return Ok(None),
    };
    otel::traces_url(&endpoint).map_err(|e| anyhow::anyhow!("SENTINEL_OTEL_ENDPOINT: {e}"))?;
    let sample_ratio = match std::env::var("SENTINEL_OTEL_SAMPLE_RATIO") {
        Ok(r) => r
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|r| (0.0..=1.0).contains(r))
            .context("SENTINEL_OTEL_SAMPLE_RATIO must be a number between 0.0 and 1.0")?,
        Err(_) => 0.1,
    };
    let service_name = std::env::var("SENTINEL_OTEL_SERVICE_NAME")
        .ok()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_owned());
    Ok(Some(Settings {
        endpoint,
        service_name,
        sample_ratio,
        timeout: Duration::from_secs(10),
    }))
}

#[derive(Clone)]
struct Traces {
    tracing: Arc<Tracing>,
    trusted: Arc<[IpNet]>,
}

/// `app` with a span per request.
pub fn layer(app: Router, tracing: Arc<Tracing>, trusted: &[IpNet]) -> Router {
    let traces = Traces {
        tracing,
        trusted: trusted.into(),
    };
    app.layer(middleware::from_fn_with_state(traces, trace))
}

async fn trace(State(t): State<Traces>, req: Request, next: Next) -> Response {
    let trusted = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|c| t.trusted.iter().any(|n| n.contains(&c.0.ip())));
    let parent = if trusted {
        otel::remote_parent(req.headers())
    } else {
        Context::new()
    };
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str());
    let method = req.method().as_str();
    let tracer = t.tracing.tracer();
    let mut span = tracer
        .span_builder(format!("{method} {route}"))
        .with_kind(SpanKind::Server)
        .with_attributes([
            KeyValue::new("http.request.method", method.to_owned()),
            KeyValue::new("http.route", route.to_owned()),
        ])
        .start_with_context(tracer, &parent);
    let resp = next.run(req).await;
    let status = resp.status();
    span.set_attribute(KeyValue::new(
        "http.response.status_code",
        i64::from(status.as_u16()),
    ));
    if status.is_server_error() {
        span.set_status(Status::error(status.as_str().to_owned()));
    }
    span.end();
    resp
}
