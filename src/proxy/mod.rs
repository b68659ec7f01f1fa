//! The Pingora proxy: one method per phase, each short, calling named steps.
//! `request_filter` is the only place access is decided: it admits
//! ([`admit`]: route → authenticate → rate limit → authorize → identity) or
//! answers with a denial, and serves routes with a field binding itself
//! ([`bound`]); `upstream_peer`/`fail_to_connect` pick addresses from the
//! pool ([`upstream`]); `upstream_request_filter` replaces client identity
//! headers with the gateway's ([`identity`]); `response_filter` adds the
//! request id and security headers; `fail_to_proxy` turns upstream failures
//! into the SPEC error body; `logging` counts. Every answer's header goes
//! through `finish_response`, which records the request's one audit event
//! ([`audit`]) before the header is written.

mod admit;
mod audit;
mod bound;
mod bound_stream;
mod identity;
mod telemetry;
mod upstream;

pub use identity::strip_client_identity;
pub use upstream::Pool;

use crate::assertion::{IdentityHeaders, Signer};
use crate::auth::jwt::Verifier;
use crate::config::Limits;
use crate::errors::{self, Denial, ErrorCode};
use crate::fields::FieldPlan;
use crate::headers::{self, H_DECISION, H_REQUEST_ID};
use crate::policy_store::PolicyStore;
use crate::ratelimit::{Limiter, RateLimitConfig};
use crate::routes::{Route, RouteTable};
use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use ipnet::IpNet;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;

/// How long the unread body of a denied request is read and discarded so the
/// client gets the answer, not a reset (see `write_denial`).
const DENIAL_DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Everything the proxy reads; shared by every request.
pub struct GatewayState {
    /// Keys the `hash` field mask so masked values cannot be confirmed by
    /// hashing guesses (derived from the assertion signing key).
    pub field_hash_key: [u8; 32],
    /// Field plans per (snapshot, route, tenant, rule set).
    pub field_plans: crate::fields::PlanCache,
    pub routes: ArcSwap<RouteTable>,
    pub policy: Arc<PolicyStore>,
    pub verifier: Arc<Verifier>,
    pub signer: Arc<Signer>,
    pub pools: Vec<Pool>,
    pub limits: Limits,
    pub explain: HashSet<Uuid>,
    pub trusted_proxies: Vec<IpNet>,
    /// What clients may send in request headers (`headers::screen_request`).
    pub client_headers: crate::headers::ClientHeaders,
    /// Headers every response carries unless the upstream set them.
    pub security_headers: Vec<(HeaderName, HeaderValue)>,
    pub rate_limits: Option<(Limiter, RateLimitConfig)>,
    /// The audit trail; `None` when it is off.
    pub audit: Option<Arc<crate::audit::Audit>>,
    /// Risk scoring and the telemetry endpoints; `None` with `[risk] enabled = false`.
    pub risk: Option<Arc<crate::risk::Risk>>,
    /// Request traces; `None` (the default) when `[otel]` is off.
    pub tracing: Option<Arc<crate::otel::Tracing>>,
}

pub struct Gateway {
    pub state: Arc<GatewayState>,
}

/// Per-request state.
pub struct Ctx {
    /// The request id (a UUID v4), as the header value sent both ways.
    request_id_header: HeaderValue,
    started: Instant,
    route: Option<Arc<Route>>,
    /// The identity forwarded upstream (shared per principal and snapshot version).
    identity: Option<Arc<IdentityHeaders>>,
    explain: Option<String>,
    /// The client sent `x-sentinel-explain: 1` (read before it is stripped).
    explain_asked: bool,
    /// This response carries the decision header (`Gateway::explains`).
    explain_on: bool,
    cors_origin: Option<HeaderValue>,
    client_ip: Option<IpAddr>,
    body_bytes: usize,
    code: Option<ErrorCode>,
    /// `RateLimit-Policy` and `RateLimit` for the response.
    rate_headers: Option<[(HeaderName, HeaderValue); 2]>,
    /// The pool index of the address being tried, and how many were tried.
    peer: Option<usize>,
    tries: usize,
    /// The caller's field access on a bound route, built once from the decision.
    fields: Option<Arc<FieldPlan>>,
    /// In flight for the graceful stop; ends the connection's head deadline.
    conn: crate::conn::RequestMark,
    /// What the audit event says beyond the above.
    audit: audit::Facts,
    /// The request's risk score (the larger of anomaly and biometric), when
    /// it was scored: every authenticated request while risk scoring is on.
    pub risk_score: Option<f32>,
    /// The request's trace; `None` unless tracing is on (crate::otel).
    trace: Option<Box<crate::otel::RequestTrace>>,
}

impl Ctx {
    /// When tracing: the time a phase starts (no clock read otherwise).
    fn phase_start(&self) -> Option<std::time::SystemTime> {
        self.trace.as_ref().map(|_| std::time::SystemTime::now())
    }

    /// When tracing: the phase's span, from `started` to now.
    fn phase_end(
        &self,
        name: &'static str,
        started: Option<std::time::SystemTime>,
        denial: Option<&Denial>,
    ) {
        if let (Some(t), Some(started)) = (&self.trace, started) {
            t.phase(name, started, denial.map(|d| d.code.as_str()));
        }
    }

    /// The request id as text (logs, error bodies).
    fn request_id(&self) -> &str {
        self.request_id_header.to_str().unwrap_or("")
    }
}

/// Who wrote a response the gateway is about to send.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Author {
    /// An upstream's answer: its `x-sentinel-*` headers are removed.
    Upstream,
    /// The gateway's own (a denial, a preflight).
    Gateway,
}

enum Admission {
    Forward,
    /// A response (a preflight) has been written.
    Answered,
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        let mut id_buf = Uuid::encode_buffer();
        let request_id_header =
            HeaderValue::from_str(Uuid::new_v4().hyphenated().encode_lower(&mut id_buf))
                .unwrap_or_else(|_| HeaderValue::from_static(""));
        Ctx {
            request_id_header,
            started: Instant::now(),
            route: None,
            identity: None,
            explain: None,
            explain_asked: false,
            explain_on: false,
            cors_origin: None,
            client_ip: None,
            body_bytes: 0,
            code: None,
            rate_headers: None,
            peer: None,
            tries: 0,
            fields: None,
            conn: crate::conn::RequestMark::default(),
            audit: audit::Facts::default(),
            risk_score: None,
            trace: None,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        // Pingora boxes (allocates and copies) this whole future on every
        // request, and an async fn's future is as large as the largest future
        // it awaits. The bound exchange (~11 KiB), the denial writer and the
        // preflight writer (~1 KiB each) are therefore boxed where they are
        // used: the common path allocates under 1 KiB instead of 11 KiB
        // (docs/PERFORMANCE.md).
        match self.admit(session, ctx).await {
            Ok(Admission::Forward) if ctx.fields.is_some() => {
                match Box::pin(self.bound_exchange(session, ctx)).await {
                    Ok(()) => {}
                    Err(bound::BoundFailure::Denied(denial)) => {
                        Box::pin(self.write_denial(session, ctx, &denial)).await?;
                    }
                    // The downstream connection is shut down: an error keeps
                    // Pingora from finishing (and reusing) it.
                    Err(bound::BoundFailure::Aborted) => {
                        return Err(Error::explain(
                            ErrorType::ConnectionClosed,
                            "streamed bound-route answer aborted",
                        )
                        .into_down())
                    }
                }
                Ok(true)
            }
            Ok(Admission::Forward) => Ok(false),
            Ok(Admission::Answered) => Ok(true),
            Err(denial) => {
                Box::pin(self.write_denial(session, ctx, &denial)).await?;
                Ok(true)
            }
        }
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(b) = body {
            ctx.body_bytes += b.len();
            if ctx.body_bytes > self.state.limits.max_body_bytes {
                return Err(Error::new(ErrorType::HTTPStatus(413)));
            }
        }
        Ok(())
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        // INVARIANT: request_filter only forwards requests that matched a route.
        let route = ctx
            .route
            .as_ref()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no route in context"))?;
        let pool = self
            .state
            .pools
            .get(route.upstream)
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "unknown upstream"))?;
        let (idx, addr) = pool
            .pick()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "upstream has no address"))?;
        ctx.peer = Some(idx);
        ctx.tries += 1;
        Ok(Box::new(pool.peer(addr)))
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        // Passive health: skip this address for a while and try another one
        // (the pool's retry policy, shared with bound routes).
        if let (Some(route), Some(idx)) = (&ctx.route, ctx.peer) {
            if let Some(pool) = self.state.pools.get(route.upstream) {
                if pool.connect_failed(idx, ctx.tries) {
                    e.set_retry(true);
                }
            }
        }
        e
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(t) = ctx.trace.as_mut() {
            let upstream = ctx
                .route
                .as_ref()
                .and_then(|r| self.state.pools.get(r.upstream))
                .map_or("", |p| p.upstream.name.as_str());
            t.upstream_start(upstream);
        }
        identity::set_identity(upstream_request, ctx)
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        response: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(t) = ctx.trace.as_mut() {
            t.upstream_end(Some(response.status.as_u16()));
        }
        self.finish_response(session.req_header(), response, ctx, Author::Upstream)
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let code = errors::proxy_code(e);
        if let (Some(code), Some(route)) = (code, &ctx.route) {
            if matches!(
                code,
                ErrorCode::UpstreamTimeout | ErrorCode::UpstreamUnavailable
            ) {
                self.count_upstream_error(route, code);
            }
        }
        let Some(code) = code else {
            return FailToProxy {
                error_code: 0,
                can_reuse_downstream: false,
            };
        };
        if code == ErrorCode::InternalError {
            tracing::error!(request_id = ctx.request_id(), error = %e, "internal error while proxying");
        }
        let denial = Denial::new(code);
        // The response may have started already; then there is nothing left to say.
        let _ = self.write_denial(session, ctx, &denial).await;
        FailToProxy {
            error_code: code.status(),
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut Ctx) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        if let Some(t) = ctx.trace.as_mut() {
            t.finish(status, ctx.code.map(ErrorCode::as_str));
        }
        let Some(m) = crate::metrics::get() else {
            return;
        };
        let (outcome, code) = match ctx.code {
            Some(c) if c.status() < 500 => ("denied", c.as_str()),
            Some(c) => ("error", c.as_str()),
            None => ("allowed", if status >= 500 { "UPSTREAM_5XX" } else { "OK" }),
        };
        let elapsed = ctx.started.elapsed().as_secs_f64();
        let Some(route) = &ctx.route else {
            m.requests.with_label_values(&["none", outcome, code]).inc();
            m.latency.with_label_values(&["none"]).observe(elapsed);
            return;
        };
        // The common outcome and the latency use the route's own handles.
        if code == "OK" {
            route.series.allowed_ok(m, &route.id).inc();
        } else {
            m.requests
                .with_label_values(&[&route.id, outcome, code])
                .inc();
        }
        route.series.latency(m, &route.id).observe(elapsed);
    }
}

impl Gateway {
    /// Headers every response carries: request id, security headers, CORS,
    /// explain, rate limits. An upstream's answer first loses every
    /// `x-sentinel-*` header: upstreams cannot speak for the gateway. The
    /// request's audit event is recorded here, before the header is sent.
    fn finish_response(
        &self,
        req: &RequestHeader,
        response: &mut ResponseHeader,
        ctx: &mut Ctx,
        author: Author,
    ) -> Result<()> {
        self.record(
            req,
            ctx,
            response.status.as_u16(),
            author == Author::Gateway,
        );
        let cors = match (&ctx.cors_origin, &ctx.route) {
            (Some(origin), Some(route)) => route.cors.as_ref().map(|c| (c, origin)),
            _ => None,
        };
        let extra = 1
            + self.state.security_headers.len()
            + if cors.is_some() { 4 } else { 0 }
            + usize::from(ctx.explain.is_some())
            + if ctx.rate_headers.is_some() { 2 } else { 0 };
        headers::edit_response(response, extra, |h| {
            if author == Author::Upstream {
                identity::strip_sentinel(h);
            }
            headers::insert(h, H_REQUEST_ID, ctx.request_id_header.clone())?;
            for (name, value) in &self.state.security_headers {
                headers::insert_absent(h, name.clone(), value.clone())?;
            }
            if let Some((cors, origin)) = cors {
                crate::cors::apply_actual(cors, origin, h)?;
            }
            if let Some(explain) = &ctx.explain {
                let value = HeaderValue::from_str(explain)
                    .or_err(ErrorType::InvalidHTTPHeader, "invalid explain header")?;
                headers::insert(h, H_DECISION, value)?;
            }
            if let Some(rate) = &ctx.rate_headers {
                for (name, value) in rate {
                    headers::insert(h, name.clone(), value.clone())?;
                }
            }
            Ok(())
        })
    }

    async fn write_denial(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        denial: &Denial,
    ) -> Result<()> {
        ctx.code = Some(denial.code);
        ctx.audit.message = Some(denial.message.clone());
        // Answered before the request body was read (a 413 on the declared
        // length, a 401 on a POST): Pingora would close at once, and a client
        // still sending would see a reset instead of this answer. The body is
        // read and thrown away afterwards instead, for at most DENIAL_DRAIN
        // (nginx's lingering close does the same).
        if !session.is_body_done() {
            session.set_close_on_response_before_downstream_finish(false);
            session.set_total_drain_timeout(Some(DENIAL_DRAIN));
        }
        let (mut header, body) = errors::response(denial, ctx.request_id())?;
        self.finish_response(session.req_header(), &mut header, ctx, Author::Gateway)?;
        let head_only = session.req_header().method == http::Method::HEAD;
        session
            .write_response_header(Box::new(header), head_only)
            .await?;
        if !head_only {
            session.write_response_body(Some(body), true).await?;
        }
        Ok(())
    }

    async fn write_preflight(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        preflight: Option<ResponseHeader>,
    ) {
        let header = match preflight {
            Some(h) => Some(h),
            None => ResponseHeader::build(403, Some(4)).ok(),
        };
        if let Some(mut header) = header {
            if self
                .finish_response(session.req_header(), &mut header, ctx, Author::Gateway)
                .is_ok()
            {
                let _ = session.write_response_header(Box::new(header), true).await;
            }
        }
    }

    /// `sentinel_upstream_errors_total` for both proxy paths.
    fn count_upstream_error(&self, route: &Route, code: ErrorCode) {
        if let (Some(m), Some(pool)) = (crate::metrics::get(), self.state.pools.get(route.upstream))
        {
            m.upstream_errors
                .with_label_values(&[pool.upstream.name.as_str(), code.as_str()])
                .inc();
        }
    }
}
