//! The Pingora proxy. Each phase method is short and calls named steps:
//! `request_filter` admits (route → authenticate → authorize) or answers with
//! a denial; `upstream_request_filter` replaces client identity headers with
//! the gateway's; `response_filter` adds the request id and security headers;
//! `fail_to_proxy` turns upstream failures into the SPEC error body.
//!
//! Routes with a field-security binding are not streamed by Pingora: Pingora
//! writes the response header downstream before any body filter runs, so a
//! body that turns out to be unfilterable could only be cut off after a
//! `200`. `request_filter` therefore answers them itself ([`Gateway::bound_exchange`]):
//! it reads and checks the request body, talks to the upstream through
//! Pingora's own connector (same pools, peers and timeouts), buffers and
//! filters the answer, and only then writes the header: a `502` is always
//! possible until the filtered body is known.

use crate::assertion::{IdentityHeaders, Signer, Subject};
use crate::auth::{self, jwt::Verifier};
use crate::config::{explicit_quota, tenant_quota, Limits, Per, RateLimitConfig, Upstream};
use crate::errors::{self, Denial, ErrorCode};
use crate::fields::{FieldPlan, WriteDenied};
use crate::headers::{
    self, H_ASSERTION, H_DECISION, H_REQUEST_ID, H_ROLES, H_SERVICE_ACCOUNT, H_TENANT_ID,
    H_USER_ID, X_API_KEY, X_FORWARDED_FOR,
};
use crate::policy_store::{unix_now, PolicyStore};
use crate::ratelimit::{LimitKey, Limiter, Quota};
use crate::request::{self, Credential};
use crate::routes::{AuthRequirement, Route, RouteTable};
use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;
use pingora::connectors::http::Connector;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::protocols::http::compression::Algorithm;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use sentinel_policy::{default_action, AccessRequest, Decision, RequestContext, Snapshot};
use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Instant;
use uuid::Uuid;

/// How long the unread body of a denied request is read and discarded so the
/// client gets the answer, not a reset (see `write_denial`).
const DENIAL_DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

/// How long an address that refused a connection is skipped (passive health).
const PASSIVE_DOWN_MS: i64 = 5_000;

/// An upstream pool: round-robin over its addresses, skipping those marked
/// down by a failed connection (passive) or by the health checker (active).
/// When every address is down, all are tried: better a slow failure than none.
pub struct Pool {
    pub upstream: Upstream,
    next: AtomicUsize,
    /// Per address: Unix milliseconds until which it counts as down.
    down_until: Box<[AtomicI64]>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Pool {
    pub fn new(upstream: Upstream) -> Pool {
        let down_until = upstream
            .addresses
            .iter()
            .map(|_| AtomicI64::new(0))
            .collect();
        Pool {
            upstream,
            next: AtomicUsize::new(0),
            down_until,
        }
    }

    /// The next address to try, preferring healthy ones.
    pub fn pick(&self) -> Option<(usize, std::net::SocketAddr)> {
        let n = self.upstream.addresses.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let now = now_ms();
        let idx = (0..n)
            .map(|i| (start + i) % n)
            .find(|&i| self.down_until[i].load(Ordering::Relaxed) <= now)
            .unwrap_or(start % n);
        Some((idx, self.upstream.addresses[idx]))
    }

    pub fn mark_down(&self, idx: usize, for_ms: i64) {
        if let Some(d) = self.down_until.get(idx) {
            d.store(now_ms() + for_ms, Ordering::Relaxed);
        }
    }

    pub fn mark_up(&self, idx: usize) {
        if let Some(d) = self.down_until.get(idx) {
            d.store(0, Ordering::Relaxed);
        }
    }

    /// Active health check: a TCP connect to every address each `interval`.
    pub async fn check_forever(&self, interval: std::time::Duration) {
        loop {
            for (i, addr) in self.upstream.addresses.iter().enumerate() {
                let ok = tokio::time::timeout(
                    self.upstream.connect_timeout,
                    tokio::net::TcpStream::connect(addr),
                )
                .await
                .is_ok_and(|r| r.is_ok());
                let was_down = self.down_until[i].load(Ordering::Relaxed) > now_ms();
                if ok {
                    self.mark_up(i);
                } else {
                    self.mark_down(i, interval.as_millis() as i64 * 2);
                }
                if ok == was_down {
                    tracing::warn!(upstream = %self.upstream.name, address = %addr, healthy = ok, "upstream address health changed");
                }
            }
            tokio::time::sleep(interval).await;
        }
    }
}

/// Everything the proxy reads; shared by every request.
pub struct GatewayState {
    /// Keys the `hash` field mask so masked values cannot be confirmed by
    /// hashing guesses (derived from the assertion signing key).
    pub field_hash_key: [u8; 32],
    pub routes: ArcSwap<RouteTable>,
    pub policy: Arc<PolicyStore>,
    pub verifier: Arc<Verifier>,
    pub signer: Arc<Signer>,
    pub pools: Vec<Pool>,
    pub limits: Limits,
    pub explain: HashSet<Uuid>,
    pub trusted_proxies: Vec<IpNet>,
    /// Headers every response carries unless the upstream set them.
    pub security_headers: Vec<(HeaderName, HeaderValue)>,
    pub rate_limits: Option<(Limiter, RateLimitConfig)>,
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
    fields: Option<FieldPlan>,
}

impl Ctx {
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
            cors_origin: None,
            client_ip: None,
            body_bytes: 0,
            code: None,
            rate_headers: None,
            peer: None,
            tries: 0,
            fields: None,
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
                if let Err(denial) = Box::pin(self.bound_exchange(session, ctx)).await {
                    Box::pin(self.write_denial(session, ctx, &denial)).await?;
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
        let up = &pool.upstream;
        let (idx, addr) = pool
            .pick()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "upstream has no address"))?;
        ctx.peer = Some(idx);
        ctx.tries += 1;
        Ok(Box::new(peer_for(up, addr)))
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        // Passive health: skip this address for a while and try another one.
        if let (Some(route), Some(idx)) = (&ctx.route, ctx.peer) {
            if let Some(pool) = self.state.pools.get(route.upstream) {
                pool.mark_down(idx, PASSIVE_DOWN_MS);
                if ctx.tries < pool.upstream.addresses.len() {
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
        set_identity(upstream_request, ctx)
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        response: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        self.finish_response(response, ctx, Author::Upstream)
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let code = match e.etype() {
            ErrorType::HTTPStatus(413) => Some(ErrorCode::BodyTooLarge),
            ErrorType::HTTPStatus(400) => Some(ErrorCode::BadRequest),
            ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout
                if e.esource() == &ErrorSource::Upstream
                    || matches!(e.etype(), ErrorType::ConnectTimedout) =>
            {
                Some(ErrorCode::UpstreamTimeout)
            }
            _ => match e.esource() {
                ErrorSource::Upstream => Some(ErrorCode::UpstreamUnavailable),
                ErrorSource::Downstream => match e.etype() {
                    ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => {
                        None
                    }
                    _ => Some(ErrorCode::BadRequest),
                },
                ErrorSource::Internal | ErrorSource::Unset => Some(ErrorCode::InternalError),
            },
        };
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
        let Some(m) = crate::metrics::get() else {
            return;
        };
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
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
    /// Route, authenticate and authorize a request.
    async fn admit(&self, session: &mut Session, ctx: &mut Ctx) -> Result<Admission, Denial> {
        let state = &*self.state;
        let req = session.req_header();
        check_limits(req, &state.limits)?;
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        if let Some(peer) = peer {
            let xff = req
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok());
            ctx.client_ip = Some(request::client_ip(peer, xff, &state.trusted_proxies));
        }
        let host = req
            .uri
            .host()
            .or_else(|| {
                req.headers
                    .get(http::header::HOST)
                    .and_then(|h| h.to_str().ok())
            })
            .map(request::host_of);
        let path = request::normalize_path(req.uri.path())
            .map_err(|e| Denial::with_message(ErrorCode::BadRequest, e.to_string()))?;
        let method = req.method.as_str();
        let routes = state.routes.load();

        if method == "OPTIONS"
            && req
                .headers
                .contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            if let Some(m) = routes.find_any_method(host.as_deref(), &path) {
                if let Some(cors) = &m.route.cors {
                    ctx.route = Some(m.route.clone());
                    let preflight = crate::cors::preflight(cors, req);
                    // Boxed like the denial writer (see `request_filter`).
                    Box::pin(self.write_preflight(session, ctx, preflight)).await;
                    return Ok(Admission::Answered);
                }
            }
        }

        let found = routes
            .find(host.as_deref(), method, &path)
            .ok_or_else(|| Denial::new(ErrorCode::RouteNotFound))?;
        let route = found.route;
        ctx.route = Some(route.clone());
        if let Some(cors) = &route.cors {
            ctx.cors_origin = crate::cors::allowed_origin(cors, req);
        }
        if route.auth == AuthRequirement::Public {
            self.rate_limit(route, None, None, ctx).await?;
            if let Some(fb) = &route.fields {
                // No decision, so no field rules: only undefined keys kept by
                // `unknown_fields = "keep"` can pass.
                let policy = state.policy.load();
                let entity = policy.as_deref().and_then(|s| s.entity(&fb.entity));
                ctx.fields = Some(
                    FieldPlan::build(entity, &Uuid::nil(), &[], fb.unknown_fields)
                        .with_hash_key(state.field_hash_key),
                );
            }
            return Ok(Admission::Forward);
        }

        let policy = state
            .policy
            .load()
            .ok_or_else(|| Denial::new(ErrorCode::PolicyUnavailable))?;
        let now = unix_now();
        let credential = read_credential(req);
        let who = auth::authenticate(&state.verifier, &policy, credential, now).await?;
        let principal = who.principal;
        let snapshot = who.snapshot;
        match route.auth {
            AuthRequirement::Users if principal.service_account => {
                return Err(Denial::with_message(
                    ErrorCode::PermissionDenied,
                    "this route is for users only",
                ))
            }
            AuthRequirement::ServiceAccounts if !principal.service_account => {
                return Err(Denial::with_message(
                    ErrorCode::PermissionDenied,
                    "this route is for service accounts only",
                ))
            }
            _ => {}
        }

        self.rate_limit(route, Some(principal), Some(snapshot), ctx)
            .await?;
        let req = session.req_header();
        let method = req.method.as_str();
        let Some(resource) = &route.resource else {
            return Err(Denial::new(ErrorCode::PermissionDenied));
        };
        let resource_id = resource.render(&found.params);
        let action = route
            .action
            .as_deref()
            .or_else(|| default_action(method))
            .unwrap_or("read");
        let target_tenant = match route.tenant_param.and_then(|i| found.params.get(i)) {
            // An unparsable tenant id is treated as an unknown tenant (denied like another tenant's).
            Some(t) => Uuid::parse_str(t).unwrap_or(Uuid::max()),
            None => principal.tenant,
        };
        let decision = snapshot.authorize(&AccessRequest {
            principal,
            resource_type: &resource.resource_type,
            resource_id: resource_id.as_deref(),
            action,
            target_tenant,
            approval_chain: route.approval.as_deref(),
            context: RequestContext {
                now,
                client_ip: ctx.client_ip,
                method,
                mfa: who.mfa,
                risk_score: None,
            },
        });
        if let Some(m) = crate::metrics::get() {
            if decision.allowed && decision.reason == sentinel_policy::Reason::Allowed {
                route.series.allowed_decision(m, &route.id).inc();
            } else {
                m.decisions
                    .with_label_values(&[
                        &*route.id,
                        if decision.allowed { "allow" } else { "deny" },
                        decision.reason.name(),
                    ])
                    .inc();
            }
        }
        if state.explain.contains(&principal.id) {
            ctx.explain = Some(explain(snapshot, &decision));
        }
        if !decision.allowed {
            let mut denial = Denial::from_reason(decision.reason);
            if let (Some(chain), sentinel_policy::Reason::ApprovalRequired) =
                (&route.approval, decision.reason)
            {
                denial = denial.details(serde_json::json!({
                    "approval_chain_id": &**chain,
                    "request_access": {
                        "method": "POST",
                        "path": "/api/v1/access-requests",
                        "body": {"approval_chain_id": &**chain, "resource": format!("{}:{}", resource.resource_type, resource_id.as_deref().unwrap_or("*")), "action": action}
                    }
                }));
            }
            return Err(denial);
        }

        let identity = state
            .signer
            .identity_with(
                who.token.as_deref().map(|t| &t.identity),
                &Subject {
                    principal: principal.id,
                    tenant: principal.tenant,
                    roles: &principal.role_names,
                    service_account: principal.service_account,
                    snapshot_version: snapshot.version(),
                },
                now,
            )
            .map_err(|e| {
                tracing::error!(error = %e, "cannot sign identity assertion");
                Denial::new(ErrorCode::InternalError)
            })?;
        if let Some(fb) = &route.fields {
            // The caller's field access: the union of the field rules of every
            // permission that allowed this request.
            let allowing: Vec<&sentinel_policy::model::Permission> = decision
                .rules
                .iter()
                .filter_map(|r| snapshot.permission(r))
                .collect();
            ctx.fields = Some(
                FieldPlan::build(
                    snapshot.entity(&fb.entity),
                    &principal.tenant,
                    &allowing,
                    fb.unknown_fields,
                )
                .with_hash_key(state.field_hash_key),
            );
        }
        ctx.identity = Some(identity);
        Ok(Admission::Forward)
    }

    /// Headers every response carries: request id, security headers, CORS,
    /// explain, rate limits. An upstream's answer first loses every
    /// `x-sentinel-*` header: upstreams cannot speak for the gateway.
    fn finish_response(
        &self,
        response: &mut ResponseHeader,
        ctx: &Ctx,
        author: Author,
    ) -> Result<()> {
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
                strip_sentinel(h);
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

    /// Checks every limit that applies (tenant plan, principal, route class;
    /// per client IP on public routes). The tightest answer wins.
    async fn rate_limit(
        &self,
        route: &Route,
        principal: Option<&sentinel_policy::Principal>,
        snapshot: Option<&Snapshot>,
        ctx: &mut Ctx,
    ) -> Result<(), Denial> {
        let Some((limiter, cfg)) = &self.state.rate_limits else {
            return Ok(());
        };
        let unused = LimitKey {
            limit: "",
            subject: "",
            quota: Quota {
                burst: 1,
                period: std::time::Duration::from_secs(1),
            },
        };
        let mut keys = [unused; 4];
        let mut n = 0;
        let mut tenant_buf = Uuid::encode_buffer();
        let mut principal_buf = Uuid::encode_buffer();
        let ip = ctx.client_ip.map(|ip| ip.to_string()).unwrap_or_default();
        let class = route.rate_limit.as_deref().and_then(|c| cfg.classes.get(c));
        match principal {
            Some(p) => {
                let tenant: &str = p.tenant.hyphenated().encode_lower(&mut tenant_buf);
                let me: &str = p.id.hyphenated().encode_lower(&mut principal_buf);
                if let Some(q) = snapshot
                    .and_then(|s| s.tenant(&p.tenant))
                    .and_then(|t| tenant_quota(cfg, &t.settings))
                {
                    keys[n] = LimitKey {
                        limit: "tenant",
                        subject: tenant,
                        quota: q,
                    };
                    n += 1;
                }
                if let Some(q) = explicit_quota(p.attributes.get("rate_limit")).or(cfg.principal) {
                    keys[n] = LimitKey {
                        limit: "principal",
                        subject: me,
                        quota: q,
                    };
                    n += 1;
                }
                if let Some(c) = class {
                    let subject = match c.per {
                        Per::Tenant => tenant,
                        Per::Principal => me,
                        Per::Ip => ip.as_str(),
                    };
                    keys[n] = LimitKey {
                        limit: &c.name,
                        subject,
                        quota: c.quota,
                    };
                    n += 1;
                }
            }
            None => {
                if let Some(q) = cfg.anonymous {
                    keys[n] = LimitKey {
                        limit: "ip",
                        subject: &ip,
                        quota: q,
                    };
                    n += 1;
                }
                if let Some(c) = class {
                    keys[n] = LimitKey {
                        limit: &c.name,
                        subject: &ip,
                        quota: c.quota,
                    };
                    n += 1;
                }
            }
        }
        if n == 0 {
            return Ok(());
        }
        let outcome = limiter.check(&keys[..n]).await;
        if let Some(m) = crate::metrics::get() {
            m.rate_limit_checks
                .with_label_values(&[
                    outcome.limit.as_str(),
                    if outcome.allowed {
                        "allowed"
                    } else {
                        "limited"
                    },
                    outcome.source.as_str(),
                ])
                .inc();
        }
        // The values are numbers and policy names, always valid header values.
        ctx.rate_headers = outcome.headers().and_then(|[(n1, v1), (n2, v2)]| {
            Some([
                (n1, HeaderValue::try_from(v1).ok()?),
                (n2, HeaderValue::try_from(v2).ok()?),
            ])
        });
        if outcome.allowed {
            return Ok(());
        }
        let retry = outcome.retry_after_secs().unwrap_or(1);
        let mut denial = Denial::new(ErrorCode::RateLimited)
            .details(serde_json::json!({"limit": outcome.limit, "retry_after": retry}));
        denial.retry_after = Some(retry);
        Err(denial)
    }

    async fn write_denial(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        denial: &Denial,
    ) -> Result<()> {
        ctx.code = Some(denial.code);
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
        self.finish_response(&mut header, ctx, Author::Gateway)?;
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
                .finish_response(&mut header, ctx, Author::Gateway)
                .is_ok()
            {
                let _ = session.write_response_header(Box::new(header), true).await;
            }
        }
    }
}

/// Pingora's HTTP client, shared by every bound-route exchange (it keeps the
/// connection pools).
static CONNECTOR: LazyLock<Connector> = LazyLock::new(|| Connector::new(None));

/// Why a bound route's upstream answer was refused (the metric label and the
/// `details.reason` of the 502).
#[derive(Debug)]
enum Unfilterable {
    NotJson,
    TooLarge,
    UnsupportedEncoding,
    BadEncoding,
    Filter(crate::fields::FilterError),
}

impl Unfilterable {
    fn reason(&self) -> &'static str {
        match self {
            Unfilterable::NotJson => "not_json",
            Unfilterable::TooLarge => "too_large",
            Unfilterable::UnsupportedEncoding => "unsupported_encoding",
            Unfilterable::BadEncoding => "bad_encoding",
            Unfilterable::Filter(e) => e.reason(),
        }
    }
}

/// Why the exchange with the upstream failed.
enum ExchangeError {
    /// Connecting failed: the address is marked down and another may be tried.
    Connect(Box<Error>),
    /// The exchange failed on a reused connection before an answer arrived:
    /// the upstream had closed it; retry once on a fresh one.
    Stale(Box<Error>),
    Failed(Box<Error>),
    Unfilterable(Unfilterable),
}

/// The upstream's answer, buffered and decoded.
struct Answer {
    header: ResponseHeader,
    body: Vec<u8>,
}

fn peer_for(up: &Upstream, addr: std::net::SocketAddr) -> HttpPeer {
    let mut peer = HttpPeer::new(addr, up.tls, up.sni.clone());
    peer.options.connection_timeout = Some(up.connect_timeout);
    peer.options.read_timeout = Some(up.read_timeout);
    peer.options.write_timeout = Some(up.write_timeout);
    peer.options.idle_timeout = Some(up.idle_timeout);
    peer.options.verify_cert = up.verify;
    peer.options.verify_hostname = up.verify;
    peer
}

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "expect",
];

fn is_json(header: &ResponseHeader) -> bool {
    let Some(ct) = header
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mime = ct.split(';').next().unwrap_or("").trim();
    let Some((kind, sub)) = mime.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (sub.eq_ignore_ascii_case("json")
            || sub.len() > 5 && sub[sub.len() - 5..].eq_ignore_ascii_case("+json"))
}

/// A bound route's request body after the write check: what to forward.
fn checked_write(body: Vec<u8>, route: &Route, plan: &FieldPlan) -> Result<Vec<u8>, Denial> {
    let Some(fb) = &route.fields else {
        return Ok(body);
    };
    let malformed = |e: crate::fields::FilterError| {
        Denial::with_message(ErrorCode::BadRequest, format!("request body: {e}"))
            .details(serde_json::json!({ "reason": e.reason() }))
    };
    let check = crate::fields::check_write(&body, &fb.binding, plan).map_err(malformed)?;
    if check.is_allowed() {
        return Ok(body);
    }
    let outcome = match fb.on_write_denied {
        WriteDenied::Reject => "denied",
        WriteDenied::Drop => "dropped",
    };
    if let Some(m) = crate::metrics::get() {
        m.field_writes
            .with_label_values(&[&*route.id, outcome])
            .inc();
    }
    match fb.on_write_denied {
        WriteDenied::Reject => Err(Denial::new(ErrorCode::FieldWriteDenied)
            .details(serde_json::json!({ "fields": check.denied }))),
        WriteDenied::Drop => {
            let mut out = Vec::with_capacity(body.len());
            crate::fields::strip_unwritable(&body, &fb.binding, plan, &mut out)
                .map_err(malformed)?;
            Ok(out)
        }
    }
}

/// Filters a buffered answer and builds the header the client gets.
fn filtered_answer(
    answer: Answer,
    route: &Route,
    plan: &FieldPlan,
    head: bool,
) -> Result<(ResponseHeader, Bytes), Unfilterable> {
    let Answer { mut header, body } = answer;
    for h in HOP_BY_HOP {
        header.remove_header(h);
    }
    header.remove_header(&http::header::CONTENT_ENCODING);
    let status = header.status.as_u16();
    if head || status == 204 || status == 304 {
        // No body: nothing to filter, and the upstream's length would be the
        // unfiltered one.
        header.remove_header(&http::header::CONTENT_LENGTH);
        header.remove_header(&http::header::ETAG);
        return Ok((header, Bytes::new()));
    }
    let out = if body.is_empty() {
        Vec::new()
    } else {
        if !is_json(&header) {
            return Err(Unfilterable::NotJson);
        }
        let Some(fb) = &route.fields else {
            return Err(Unfilterable::NotJson);
        };
        let mut out = Vec::with_capacity(body.len());
        crate::fields::filter_response(&body, &fb.binding, plan, &mut out)
            .map_err(Unfilterable::Filter)?;
        out
    };
    // The body now depends on the caller: its validator must not be shared
    // with other callers' views, nor may shared caches keep it.
    header.remove_header(&http::header::ETAG);
    let cacheable_shared = header
        .headers
        .get(http::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| {
            let v = v.to_ascii_lowercase();
            !v.contains("no-store") && !v.contains("private")
        });
    if cacheable_shared {
        let _ = header.insert_header(http::header::CACHE_CONTROL, "private");
    }
    let _ = header.insert_header(http::header::CONTENT_LENGTH, out.len().to_string());
    Ok((header, Bytes::from(out)))
}

/// Decodes `content-encoding` (identity, gzip, br) into at most `limit` bytes.
struct Decoder {
    inner: Option<Box<dyn pingora::protocols::http::compression::Encode + Send + Sync>>,
    out: Vec<u8>,
    limit: usize,
}

impl Decoder {
    fn for_header(header: &ResponseHeader, limit: usize) -> Result<Decoder, Unfilterable> {
        let coding = header
            .headers
            .get(http::header::CONTENT_ENCODING)
            .map(|v| v.to_str().map(str::trim));
        let inner = match coding {
            None => None,
            Some(Ok(c)) if c.is_empty() || c.eq_ignore_ascii_case("identity") => None,
            Some(Ok(c)) if c.eq_ignore_ascii_case("x-gzip") => Algorithm::Gzip.decompressor(true),
            Some(Ok(c)) => match Algorithm::from(c) {
                a @ (Algorithm::Gzip | Algorithm::Brotli) => a.decompressor(true),
                _ => return Err(Unfilterable::UnsupportedEncoding),
            },
            Some(Err(_)) => return Err(Unfilterable::UnsupportedEncoding),
        };
        if header
            .headers
            .get_all(http::header::CONTENT_ENCODING)
            .iter()
            .count()
            > 1
        {
            return Err(Unfilterable::UnsupportedEncoding);
        }
        Ok(Decoder {
            inner,
            out: Vec::new(),
            limit,
        })
    }

    fn push(&mut self, chunk: &[u8], end: bool) -> Result<(), Unfilterable> {
        match &mut self.inner {
            None => {
                if self.out.len() + chunk.len() > self.limit {
                    return Err(Unfilterable::TooLarge);
                }
                self.out.extend_from_slice(chunk);
            }
            Some(d) => {
                let decoded = d
                    .encode(chunk, end)
                    .map_err(|_| Unfilterable::BadEncoding)?;
                if self.out.len() + decoded.len() > self.limit {
                    return Err(Unfilterable::TooLarge);
                }
                self.out.extend_from_slice(&decoded);
            }
        }
        Ok(())
    }
}

impl Gateway {
    /// Serves a request on a bound route end to end (see the module docs):
    /// request body check → upstream exchange → filter → answer. Every
    /// failure is a denial; nothing of the upstream's body reaches the client
    /// unless it was filtered.
    async fn bound_exchange(&self, session: &mut Session, ctx: &mut Ctx) -> Result<(), Denial> {
        let internal = || Denial::new(ErrorCode::InternalError);
        let route = ctx.route.clone().ok_or_else(internal)?;
        let fb = route.fields.as_ref().ok_or_else(internal)?;
        let plan = ctx.fields.take().ok_or_else(internal)?;

        // 1. The whole request body, checked before any byte goes upstream.
        let body = self.read_request_body(session).await?;
        let method = session.req_header().method.clone();
        let body = if matches!(
            method,
            http::Method::POST | http::Method::PUT | http::Method::PATCH
        ) {
            if session
                .req_header()
                .headers
                .get(http::header::CONTENT_ENCODING)
                .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"))
            {
                return Err(Denial::with_message(
                    ErrorCode::BadRequest,
                    "encoded request bodies are not accepted on this route",
                ));
            }
            checked_write(body, &route, &plan)?
        } else {
            body
        };
        let body = Bytes::from(body);

        // 2. The upstream request.
        let mut req = session.req_header().clone();
        req.set_version(http::Version::HTTP_11);
        for h in HOP_BY_HOP {
            req.remove_header(h);
        }
        set_identity(&mut req, ctx).map_err(|_| internal())?;
        // Identity is what the filter reads; gzip and br are decoded if sent anyway.
        let _ = req.insert_header(http::header::ACCEPT_ENCODING, "identity");
        if body.is_empty() && matches!(method, http::Method::GET | http::Method::HEAD) {
            req.remove_header(&http::header::CONTENT_LENGTH);
        } else {
            let _ = req.insert_header(http::header::CONTENT_LENGTH, body.len().to_string());
        }
        let pool = self.state.pools.get(route.upstream).ok_or_else(internal)?;
        let limit = fb
            .max_response_bytes
            .unwrap_or(self.state.limits.max_body_bytes);

        // 3. The exchange: another address after a refused connection, a fresh
        // connection after a stale pooled one.
        let mut stale_retried = false;
        let mut tries = 0;
        let answer = loop {
            let (idx, addr) = pool.pick().ok_or_else(internal)?;
            tries += 1;
            let peer = peer_for(&pool.upstream, addr);
            match exchange(&peer, &pool.upstream, &req, &body, limit).await {
                Ok(a) => break a,
                Err(ExchangeError::Connect(e)) => {
                    pool.mark_down(idx, PASSIVE_DOWN_MS);
                    if tries < pool.upstream.addresses.len() {
                        continue;
                    }
                    return Err(self.upstream_failure(&route, &e));
                }
                Err(ExchangeError::Stale(e)) => {
                    if !stale_retried {
                        stale_retried = true;
                        continue;
                    }
                    return Err(self.upstream_failure(&route, &e));
                }
                Err(ExchangeError::Failed(e)) => return Err(self.upstream_failure(&route, &e)),
                Err(ExchangeError::Unfilterable(u)) => {
                    return Err(self.unfilterable(ctx, &route, u))
                }
            }
        };

        // 4. Filter, then answer.
        let head = method == http::Method::HEAD;
        let (mut header, out) = match filtered_answer(answer, &route, &plan, head) {
            Ok(x) => x,
            Err(u) => return Err(self.unfilterable(ctx, &route, u)),
        };
        self.finish_response(&mut header, ctx, Author::Upstream)
            .map_err(|_| internal())?;
        let empty = out.is_empty();
        // Errors from here on are the client's connection going away.
        if session
            .write_response_header(Box::new(header), empty)
            .await
            .is_ok()
            && !empty
        {
            let _ = session.write_response_body(Some(out), true).await;
        }
        Ok(())
    }

    /// Reads the whole request body, at most `limits.max_body_bytes`.
    async fn read_request_body(&self, session: &mut Session) -> Result<Vec<u8>, Denial> {
        let limit = self.state.limits.max_body_bytes;
        let mut body = Vec::new();
        loop {
            match session.read_request_body().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > limit {
                        return Err(Denial::new(ErrorCode::BodyTooLarge));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(body),
                Err(e) => {
                    return Err(match e.etype() {
                        ErrorType::ReadTimedout => Denial::new(ErrorCode::BadRequest),
                        _ => {
                            Denial::with_message(ErrorCode::BadRequest, "cannot read request body")
                        }
                    })
                }
            }
        }
    }

    fn upstream_failure(&self, route: &Route, e: &Error) -> Denial {
        let code = match e.etype() {
            ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
                ErrorCode::UpstreamTimeout
            }
            _ => ErrorCode::UpstreamUnavailable,
        };
        self.count_upstream_error(route, code);
        Denial::new(code)
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

    /// Counts, logs (once, without body bytes) and answers an unfilterable upstream answer.
    fn unfilterable(&self, ctx: &Ctx, route: &Route, u: Unfilterable) -> Denial {
        let reason = u.reason();
        if let Some(m) = crate::metrics::get() {
            m.field_filter_failures
                .with_label_values(&[&*route.id, reason])
                .inc();
        }
        match &u {
            Unfilterable::Filter(e) => {
                tracing::warn!(request_id = ctx.request_id(), route = %route.id, reason, error = %e, "upstream answer on a bound route cannot be filtered; answering 502")
            }
            _ => {
                tracing::warn!(request_id = ctx.request_id(), route = %route.id, reason, "upstream answer on a bound route cannot be filtered; answering 502")
            }
        }
        Denial::with_message(
            ErrorCode::UpstreamUnavailable,
            "the upstream answer cannot be filtered",
        )
        .details(serde_json::json!({ "reason": reason }))
    }
}

/// One request/response exchange with one upstream address through the
/// shared connector; the answer's body is buffered and decoded (bounded).
async fn exchange(
    peer: &HttpPeer,
    up: &Upstream,
    req: &RequestHeader,
    body: &Bytes,
    limit: usize,
) -> Result<Answer, ExchangeError> {
    let (mut s, reused) = CONNECTOR
        .get_http_session(peer)
        .await
        .map_err(ExchangeError::Connect)?;
    s.set_read_timeout(Some(up.read_timeout));
    s.set_write_timeout(Some(up.write_timeout));
    let early = |e: Box<Error>| {
        if reused
            && !matches!(
                e.etype(),
                ErrorType::ReadTimedout | ErrorType::WriteTimedout
            )
        {
            ExchangeError::Stale(e)
        } else {
            ExchangeError::Failed(e)
        }
    };
    s.write_request_header(Box::new(req.clone()))
        .await
        .map_err(early)?;
    if !body.is_empty() {
        s.write_request_body(body.clone(), true)
            .await
            .map_err(early)?;
    }
    s.finish_request_body().await.map_err(early)?;
    loop {
        s.read_response_header().await.map_err(early)?;
        match s.response_header() {
            // 100 Continue and other interim answers: wait for the final one.
            Some(h) if h.status.is_informational() && h.status.as_u16() != 101 => continue,
            _ => break,
        }
    }
    let header = s
        .response_header()
        .cloned()
        .ok_or_else(|| ExchangeError::Failed(Error::new(ErrorType::InvalidHTTPHeader)))?;
    let mut decoder = Decoder::for_header(&header, limit).map_err(ExchangeError::Unfilterable)?;
    loop {
        match s.read_response_body().await {
            Ok(Some(chunk)) => decoder
                .push(&chunk, false)
                .map_err(ExchangeError::Unfilterable)?,
            Ok(None) => break,
            Err(e) => return Err(ExchangeError::Failed(e)),
        }
    }
    decoder
        .push(&[], true)
        .map_err(ExchangeError::Unfilterable)?;
    if s.response_done() {
        CONNECTOR
            .release_http_session(s, peer, Some(up.idle_timeout))
            .await;
    } else {
        s.shutdown().await;
    }
    Ok(Answer {
        header,
        body: decoder.out,
    })
}

/// Replaces client identity headers with the gateway's (both proxy paths).
fn set_identity(upstream_request: &mut RequestHeader, ctx: &Ctx) -> Result<()> {
    let forwarded_for = ctx.client_ip.map(headers::ip_value);
    headers::edit_request(upstream_request, 7, |h| {
        strip_client_identity(h);
        // The credential the gateway consumed stays at the edge (a request
        // that authenticated carries exactly one of the two): the upstream
        // gets the signed assertion instead, so it can never replay the
        // caller's token or key against other routes.
        if ctx.identity.is_some() && !ctx.route.as_ref().is_some_and(|r| r.forward_credentials) {
            h.remove(http::header::AUTHORIZATION);
            h.remove(headers::X_API_KEY);
        }
        // Ready-made values: inserting clones them (a reference count), no copy.
        headers::insert(h, H_REQUEST_ID, ctx.request_id_header.clone())?;
        if let Some(identity) = &ctx.identity {
            headers::insert(h, H_USER_ID, identity.user_id.clone())?;
            headers::insert(h, H_TENANT_ID, identity.tenant_id.clone())?;
            headers::insert(h, H_ROLES, identity.roles.clone())?;
            headers::insert(h, H_SERVICE_ACCOUNT, identity.service_account.clone())?;
            headers::insert(h, H_ASSERTION, identity.assertion.clone())?;
        }
        if let Some(value) = forwarded_for {
            headers::insert(h, X_FORWARDED_FOR, value)?;
        }
        Ok(())
    })
}

/// `allow; reason=…; rules=a,b` for the explain header.
fn explain(snapshot: &Snapshot, d: &Decision) -> String {
    let mut s = String::with_capacity(64);
    s.push_str(if d.allowed { "allow" } else { "deny" });
    s.push_str("; reason=");
    s.push_str(d.reason.name());
    s.push_str("; rules=");
    for (i, r) in d.rules.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.extend(
            snapshot
                .rule_id(r)
                .chars()
                .filter(|c| c.is_ascii_graphic() && *c != ';' && *c != ','),
        );
    }
    s
}

fn check_limits(req: &RequestHeader, limits: &Limits) -> Result<(), Denial> {
    let header_bytes: usize = req
        .headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum::<usize>()
        + req.uri.path_and_query().map_or(0, |p| p.as_str().len());
    if header_bytes > limits.max_header_bytes {
        return Err(Denial::new(ErrorCode::HeadersTooLarge));
    }
    if let Some(len) = req.headers.get(http::header::CONTENT_LENGTH) {
        let len = len
            .to_str()
            .ok()
            .and_then(|l| l.trim().parse::<usize>().ok())
            .ok_or_else(|| Denial::with_message(ErrorCode::BadRequest, "invalid content-length"))?;
        if len > limits.max_body_bytes {
            return Err(Denial::new(ErrorCode::BodyTooLarge));
        }
    }
    Ok(())
}

fn read_credential(req: &RequestHeader) -> Credential<'_> {
    let mut auth = req.headers.get_all(http::header::AUTHORIZATION).iter();
    let mut keys = req.headers.get_all(X_API_KEY).iter();
    let (first, key) = (auth.next(), keys.next());
    let several = auth.next().is_some() || keys.next().is_some();
    request::credential(
        first.map(|v| v.as_bytes()),
        key.map(|v| v.as_bytes()),
        several,
    )
}

fn is_sentinel(name: &str) -> bool {
    name.len() >= 11 && name.as_bytes()[..11].eq_ignore_ascii_case(b"x-sentinel-")
}

/// Removes every `x-sentinel-*` header.
fn strip_sentinel(headers: &mut HeaderMap) {
    if !headers.keys().any(|k| is_sentinel(k.as_str())) {
        return;
    }
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|k| is_sentinel(k.as_str()))
        .cloned()
        .collect();
    for n in names {
        headers.remove(&n);
    }
}

/// Removes every client-sent `x-sentinel-*` header, and every `x-sentinel-*`
/// token of `Connection` (so no next hop drops the gateway's own headers).
pub fn strip_client_identity(headers: &mut HeaderMap) {
    strip_sentinel(headers);
    let names_sentinel = headers.get_all(http::header::CONNECTION).iter().any(|v| {
        v.as_bytes()
            .windows(11)
            .any(|w| w.eq_ignore_ascii_case(b"x-sentinel-"))
    });
    if !names_sentinel {
        return;
    }
    let kept: Vec<String> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty() && !is_sentinel(t))
        .collect();
    headers.remove(http::header::CONNECTION);
    if kept.is_empty() {
        return;
    }
    // The tokens came from a header value, lowercased: always a valid value.
    if let Ok(value) = HeaderValue::try_from(kept.join(", ")) {
        let _ = headers.try_insert(http::header::CONNECTION, value);
    }
}
