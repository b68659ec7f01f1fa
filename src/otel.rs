//! Request traces (docs/operations.md, "Traces"): one server span per
//! request, a child span per admission phase (`authenticate`, `rate_limit`,
//! `authorize`), the upstream exchange (`upstream`, whose context goes
//! upstream as `traceparent`) and the field filter (`field_filter`).
//!
//! Off by default, and then free: the proxy holds `Option<Box<RequestTrace>>`
//! in its per-request context and every hook is one branch on that `None`;
//! no span, clock read or allocation happens. A caller's `traceparent` is
//! continued only from a trusted proxy (`[client_ip] trusted_proxies`, the
//! same list that lets forwarding headers through); anyone else starts a
//! fresh trace, and its `traceparent`/`tracestate` do not reach the upstream.

use sentinel_telemetry::otel::opentelemetry::trace::{
    Span as _, SpanKind, Status, TraceContextExt as _, Tracer as _,
};
use sentinel_telemetry::otel::opentelemetry::{Context, KeyValue};
use sentinel_telemetry::otel::{self, Tracer};
use std::time::SystemTime;

pub use sentinel_telemetry::otel::Tracing;

/// The trace of one request.
pub struct RequestTrace {
    tracer: Tracer,
    /// Holds the request's server span.
    cx: Context,
    /// The upstream exchange's span while it is open.
    upstream: Option<Context>,
    /// `traceparent` (and `tracestate`) for the upstream request.
    upstream_headers: Vec<(&'static str, String)>,
}

impl RequestTrace {
    /// Opens the request's span; `trusted`: the peer is a trusted proxy, whose
    /// `traceparent` this request continues.
    pub fn start(tracer: &Tracer, req: &http::request::Parts, trusted: bool) -> Box<Self> {
        let parent = if trusted {
            otel::remote_parent(&req.headers)
        } else {
            Context::new()
        };
        let span = tracer
            .span_builder(req.method.as_str().to_owned())
            .with_kind(SpanKind::Server)
            .with_attributes([
                KeyValue::new("http.request.method", req.method.as_str().to_owned()),
                KeyValue::new("url.path", req.uri.path().to_owned()),
            ])
            .start_with_context(tracer, &parent);
        Box::new(Self {
            tracer: tracer.clone(),
            cx: parent.with_span(span),
            upstream: None,
            upstream_headers: Vec::new(),
        })
    }

    /// The route matched: the span becomes `METHOD route-id`.
    pub fn route(&self, method: &str, route: &str) {
        let span = self.cx.span();
        span.update_name(format!("{method} {route}"));
        span.set_attribute(KeyValue::new("http.route", route.to_owned()));
    }

    /// A finished phase that began at `started`: a child span; `failed`
    /// names the error code it answered with.
    pub fn phase(&self, name: &'static str, started: SystemTime, failed: Option<&'static str>) {
        let mut span = self
            .tracer
            .span_builder(name)
            .with_start_time(started)
            .start_with_context(&self.tracer, &self.cx);
        if let Some(code) = failed {
            span.set_attribute(KeyValue::new("sentinel.code", code));
            span.set_status(Status::error(code));
        }
        span.end();
    }

    /// The upstream exchange begins (again, on a retry): its span opens, and
    /// [`RequestTrace::upstream_headers`] become its trace context.
    pub fn upstream_start(&mut self, upstream: &str) {
        self.upstream_end(None);
        let span = self
            .tracer
            .span_builder("upstream")
            .with_kind(SpanKind::Client)
            .with_attributes([KeyValue::new("sentinel.upstream", upstream.to_owned())])
            .start_with_context(&self.tracer, &self.cx);
        let cx = self.cx.with_span(span);
        self.upstream_headers = otel::outgoing(&cx);
        self.upstream = Some(cx);
    }

    /// The headers that carry the upstream span's context.
    pub fn upstream_headers(&self) -> &[(&'static str, String)] {
        &self.upstream_headers
    }

    /// The upstream answered with `status` (`None`: it did not answer).
    pub fn upstream_end(&mut self, status: Option<u16>) {
        if let Some(cx) = self.upstream.take() {
            let span = cx.span();
            match status {
                Some(s) => {
                    span.set_attribute(KeyValue::new("http.response.status_code", i64::from(s)))
                }
                None => span.set_status(Status::error("no answer")),
            }
            span.end();
        }
    }

    /// The request is answered: `status` and, for the gateway's own
    /// answers, the error code; the spans end.
    pub fn finish(&mut self, status: u16, code: Option<&'static str>) {
        self.upstream_end(None);
        let span = self.cx.span();
        span.set_attribute(KeyValue::new(
            "http.response.status_code",
            i64::from(status),
        ));
        if let Some(code) = code {
            span.set_attribute(KeyValue::new("sentinel.code", code));
            if status >= 500 {
                span.set_status(Status::error(code));
            }
        }
        span.end();
    }
}
