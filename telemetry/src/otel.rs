//! OpenTelemetry traces exported over OTLP/HTTP (JSON bodies): the tracer
//! both binaries build when tracing is configured, the W3C trace-context
//! parsing of a trusted caller's `traceparent`, and the value a request
//! passes on. Off unless configured; a binary that never calls [`Tracing::start`]
//! creates no tracer, thread or span (callers hold an `Option<Tracing>`).

use std::time::Duration;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
#[cfg(test)]
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::Context;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use opentelemetry_sdk::Resource;

/// The API crate, for the spans callers make with [`Tracing::tracer`].
pub use opentelemetry;
pub use opentelemetry_sdk::trace::SdkTracer as Tracer;

/// Where and how much to trace.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// The collector's OTLP/HTTP base URL (`http://collector:4318`); spans
    /// are POSTed to `<endpoint>/v1/traces` (a URL that already ends with
    /// `/v1/traces` is used as is).
    pub endpoint: String,
    /// `service.name` of every span.
    pub service_name: String,
    /// Share of new traces recorded, `0.0..=1.0`. A trusted caller's
    /// `traceparent` decides for the traces it continues (parent-based).
    pub sample_ratio: f64,
    /// Longest one export may take.
    pub timeout: Duration,
}

/// Why tracing could not start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("invalid OTLP endpoint `{0}`: expected an http:// or https:// URL")]
    Endpoint(String),
    #[error("cannot build the OTLP exporter: {0}")]
    Exporter(String),
}

/// A running tracer: spans are batched and exported on the SDK's own thread.
pub struct Tracing {
    provider: SdkTracerProvider,
    tracer: Tracer,
}

/// `<endpoint>/v1/traces`.
pub fn traces_url(endpoint: &str) -> Result<String, SetupError> {
    let e = endpoint.trim();
    if !(e.starts_with("http://") || e.starts_with("https://")) || e.parse::<http::Uri>().is_err() {
        return Err(SetupError::Endpoint(endpoint.to_owned()));
    }
    if e.ends_with("/v1/traces") {
        Ok(e.to_owned())
    } else {
        Ok(format!("{}/v1/traces", e.trim_end_matches('/')))
    }
}

impl Tracing {
    /// Builds the exporter and the batching provider. Call outside an async
    /// context (the exporter's blocking HTTP client runs its own thread):
    /// `tokio::task::spawn_blocking` in an async `main`.
    pub fn start(settings: &Settings) -> Result<Self, SetupError> {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpJson)
            .with_endpoint(traces_url(&settings.endpoint)?)
            .with_timeout(settings.timeout)
            .build()
            .map_err(|e| SetupError::Exporter(e.to_string()))?;
        let ratio = settings.sample_ratio.clamp(0.0, 1.0);
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                ratio,
            ))))
            .with_resource(
                Resource::builder_empty()
                    .with_service_name(settings.service_name.clone())
                    .build(),
            )
            .build();
        let tracer = provider.tracer("sentinel");
        Ok(Self { provider, tracer })
    }

    pub fn tracer(&self) -> &Tracer {
        &self.tracer
    }

    /// Exports what is buffered and stops the export thread.
    pub fn shutdown(&self) {
        let _ = self.provider.shutdown();
    }
}

/// The remote parent named by `traceparent` (and `tracestate`) in `headers`;
/// an empty context when there is none or it does not parse. Only for
/// callers the deployment trusts: anyone else would choose our trace ids.
pub fn remote_parent(headers: &http::HeaderMap) -> Context {
    TraceContextPropagator::new().extract(&HeaderExtractor(headers))
}

/// `traceparent` (and `tracestate`, if the context has one) for `cx`'s span,
/// as (name, value) pairs for the caller to set.
pub fn outgoing(cx: &Context) -> Vec<(&'static str, String)> {
    let mut out = Outgoing(Vec::with_capacity(2));
    TraceContextPropagator::new().inject_context(cx, &mut out);
    out.0
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct Outgoing(Vec<(&'static str, String)>);

impl Injector for Outgoing {
    fn set(&mut self, key: &str, value: String) {
        // The propagator sets only these two.
        let name = match key {
            "traceparent" => "traceparent",
            "tracestate" => "tracestate",
            _ => return,
        };
        if !value.is_empty() {
            self.0.push((name, value));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn traces_urls() {
        assert_eq!(
            traces_url("http://c:4318").unwrap(),
            "http://c:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://c:4318/").unwrap(),
            "http://c:4318/v1/traces"
        );
        assert_eq!(
            traces_url("https://c/otlp/v1/traces").unwrap(),
            "https://c/otlp/v1/traces"
        );
        assert!(traces_url("c:4318").is_err());
        assert!(traces_url("grpc://c:4317").is_err());
    }

    #[test]
    fn a_traceparent_round_trips_and_garbage_is_no_parent() {
        let mut h = http::HeaderMap::new();
        h.insert(
            "traceparent",
            http::HeaderValue::from_static(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
        );
        let cx = remote_parent(&h);
        let sc = cx.span().span_context().clone();
        assert!(sc.is_valid() && sc.is_remote() && sc.is_sampled());
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        let out = outgoing(&cx);
        assert_eq!(
            out[0],
            (
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned()
            )
        );
        h.insert("traceparent", http::HeaderValue::from_static("00-zz-yy-01"));
        assert!(!remote_parent(&h).span().span_context().is_valid());
    }
}
