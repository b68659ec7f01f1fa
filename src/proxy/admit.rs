//! Admission, the access decision of `request_filter`, as named steps:
//! [`target`](Gateway::admit) (limits, client IP, host, path, route) →
//! [`authenticate`] → [`rate_limit`](Gateway::rate_limit) →
//! [`authorize`](Gateway::authorize) → [`identity`](Gateway::identity).
//! Every step answers with a [`Denial`] or hands on what the next one needs.
//!
//! Over 700 lines because the steps share one request's state and are read
//! in order: risk scoring, the route's risk slot, explain on request and the
//! shadow decision joined `authorize` this week, then the field-plan cache
//! lookups and the shared (Redis) biometric score read. Still one concern (the
//! decision to admit); the next step that grows it should move `authorize`
//! and its explain/shadow helpers into their own file.

use super::{Admission, Ctx, Gateway};
use crate::auth::{self, Authenticated};
use crate::clock::unix_now;
use crate::config::Limits;
use crate::errors::{Denial, ErrorCode};
use crate::fields::{FieldPlan, PlanKey};
use crate::headers::{self, X_API_KEY};
use crate::ratelimit::keys::{self, Caller, KeyText};
use crate::request::{self, Credential};
use crate::risk::anomaly::Observed;
use crate::risk::RequestRisk;
use crate::routes::{AuthRequirement, Params, Route};
use http::HeaderValue;
use pingora::http::RequestHeader;
use pingora::proxy::Session;
use sentinel_policy::{
    default_action, AccessRequest, Decision, Policy, Reason, RequestContext, Snapshot,
};
use sentinel_risk::anomaly::{Method, Outcome, RequestFacts};
use uuid::Uuid;

impl Gateway {
    /// Route, authenticate, rate-limit and authorize a request, and prepare
    /// what goes upstream (identity, field plan).
    pub(super) async fn admit(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
    ) -> Result<Admission, Denial> {
        let state = &*self.state;
        // The head is read: the connection's head deadline stops (conn.rs).
        ctx.conn.head_read(session);
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        if let Some(peer) = peer {
            let xff = session
                .req_header()
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok());
            ctx.client_ip = Some(request::client_ip(peer, xff, &state.trusted_proxies));
        }
        let trusted_peer =
            peer.is_some_and(|p| state.trusted_proxies.iter().any(|n| n.contains(&p)));
        if let Some(tracing) = &state.tracing {
            ctx.trace = Some(crate::otel::RequestTrace::start(
                tracing.tracer(),
                session.req_header(),
                trusted_peer,
            ));
        }
        // After the client address, so that the audit event of a refused
        // head names who sent it.
        check_limits(session.req_header(), &state.limits)?;
        // Asked for the decision header? Read before the reserved names go;
        // honoured only for holders of `policy:explain` (`explains`).
        ctx.explain_asked = session
            .req_header()
            .headers
            .get(headers::H_EXPLAIN)
            .is_some_and(|v| v.as_bytes() == b"1");
        // Hostile heads are refused or cleaned before anything reads them.
        headers::screen_request(
            session.req_header_mut(),
            &state.client_headers,
            trusted_peer,
        )?;
        let req = session.req_header();
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
        if path.starts_with("/.sentinel/") {
            let own = path.into_owned();
            if let Some(answer) = self.own_endpoint(session, ctx, &own).await {
                return answer;
            }
            return Err(Denial::new(ErrorCode::RouteNotFound));
        }
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
        if let Some(t) = &ctx.trace {
            t.route(method, &route.id);
        }
        if let Some(cors) = &route.cors {
            ctx.cors_origin = crate::cors::allowed_origin(cors, req);
        }
        if route.auth == AuthRequirement::Public {
            self.traced_rate_limit(route, None, ctx).await?;
            if let Some(fb) = &route.fields {
                // No decision, so no field rules: only undefined keys kept by
                // `unknown_fields = "keep"` can pass.
                let build = |entity| {
                    FieldPlan::build(entity, &Uuid::nil(), &[], fb.unknown_fields)
                        .with_hash_key(state.field_hash_key)
                };
                ctx.fields = Some(match state.policy.load() {
                    Some(policy) => {
                        let key = PlanKey::new(
                            &route.id,
                            &fb.entity,
                            fb.unknown_fields,
                            Uuid::nil(),
                            None,
                            std::iter::empty(),
                        );
                        state
                            .field_plans
                            .get_or_build(&policy, key, || build(policy.entity(&fb.entity)))
                    }
                    None => std::sync::Arc::new(build(None)),
                });
            }
            self.default_host(session, route);
            return Ok(Admission::Forward);
        }

        let policy = state
            .policy
            .load()
            .ok_or_else(|| Denial::new(ErrorCode::PolicyUnavailable))?;
        ctx.audit.version = Some(policy.version());
        let now = unix_now();
        let started = ctx.phase_start();
        let who = self.authenticate(req, &policy, route, now).await;
        ctx.phase_end("authenticate", started, who.as_ref().err());
        let who = match who {
            Ok(who) => who,
            Err(denial) => {
                self.auth_failed(req, &denial, ctx, now);
                return Err(denial);
            }
        };
        let p = who.principal;
        ctx.audit.principal = Some((p.id, p.tenant, p.service_account));
        if state.audit.is_some() {
            ctx.audit.snapshot = Some(who.snapshot.clone());
        }
        self.traced_rate_limit(route, Some(&who), ctx).await?;
        let req = session.req_header();
        let resource_id = route
            .resource
            .as_ref()
            .and_then(|r| r.render(&found.params));
        // A route that acts on the score reads the credential's session
        // score as every gateway sees it (Redis); unknown fails closed below.
        let shared = match (&route.risk, read_credential(req), &state.risk) {
            (Some(_), Credential::Bearer(token), Some(risk)) => match &risk.biometrics {
                Some(store) if store.shares_scores() => Some(store.shared_score(token).await),
                _ => None,
            },
            _ => None,
        };
        let scored = match shared {
            Some(Err(_)) => None,
            Some(Ok(b)) => self.score(req, route, resource_id.as_deref(), &who, now, Some(b), ctx),
            None => self.score(req, route, resource_id.as_deref(), &who, now, None, ctx),
        };
        ctx.explain_on = self.explains(req, route, &who, now, ctx);
        // Without a score (risk scoring off) a route's slot still applies:
        // unknown risk fails closed (`risk::enforce`).
        let risk = scored.as_ref().map(|(s, _, _)| s.score());
        if let Err((denial, outcome)) =
            crate::risk::enforce(route.risk.as_ref(), risk, fresh_mfa(&who, now))
        {
            if let Some((scored, facts, observed)) = &scored {
                self.count_risk(scored.score(), outcome);
                scored.settle(&who, facts, observed, outcome);
            }
            if ctx.explain_on {
                ctx.explain = Some(match risk {
                    Some(r) => format!(
                        "deny; reason={}; signal={}; score={:.3}",
                        denial.code.as_str().to_ascii_lowercase(),
                        r.signal.as_str(),
                        r.score
                    ),
                    None => format!(
                        "deny; reason={}; signal=none",
                        denial.code.as_str().to_ascii_lowercase()
                    ),
                });
            }
            return Err(denial);
        }
        let started = ctx.phase_start();
        let decision = self.authorize(req, route, &found.params, &who, now, ctx);
        ctx.phase_end("authorize", started, decision.as_ref().err());
        if let Some((risk, facts, observed)) = &scored {
            let outcome = if decision.is_ok() {
                Outcome::Served
            } else {
                Outcome::Denied
            };
            risk.settle(&who, facts, observed, outcome);
        }
        let decision = decision?;
        self.identity(route, &policy, &who, &decision, now, ctx)?;
        self.default_host(session, route);
        Ok(Admission::Forward)
    }

    /// An HTTP/1.0 request may come without `Host` (RFC 9112 §3.2); the
    /// upstream, spoken to in HTTP/1.1, gets the request target's host, else
    /// the route's, else the upstream's name.
    fn default_host(&self, session: &mut Session, route: &Route) {
        let req = session.req_header();
        if req.version > http::Version::HTTP_10 || req.headers.contains_key(http::header::HOST) {
            return;
        }
        let host = req
            .uri
            .authority()
            .map(|a| a.as_str())
            .or(route.host.as_deref())
            .or_else(|| {
                self.state
                    .pools
                    .get(route.upstream)
                    .map(|p| p.upstream.sni.as_str())
            })
            .and_then(|h| HeaderValue::from_str(h).ok());
        if let Some(host) = host {
            // Inserting into a request whose headers were just read cannot fail.
            let _ = headers::edit_request(session.req_header_mut(), 1, |h| {
                headers::insert(h, http::header::HOST, host)
            });
        }
    }

    /// A failed authentication raises the risk of the address's next
    /// authenticated requests (SPEC "Request risk"). A missing credential
    /// is not a failed one.
    fn auth_failed(&self, req: &RequestHeader, denial: &Denial, ctx: &Ctx, now: i64) {
        let failed = matches!(
            denial.code,
            ErrorCode::AuthInvalid | ErrorCode::TokenExpired | ErrorCode::TokenRevoked
        );
        if let (true, Some(risk), Some(ip)) = (failed, &self.state.risk, ctx.client_ip) {
            risk.anomaly
                .auth_failure(ip, risk.clock(replay_time(req), now));
        }
    }

    /// The request's risk score (SPEC: every authenticated request gets
    /// one): observed in the anomaly state, joined with the credential's
    /// biometric session score (`shared`: as read from Redis, else this
    /// gateway's), kept in `ctx.risk_score`.
    #[expect(
        clippy::too_many_arguments,
        reason = "the request's parts, each borrowed"
    )]
    fn score<'r>(
        &'r self,
        req: &RequestHeader,
        route: &'r Route,
        resource: Option<&'r str>,
        who: &Authenticated<'_>,
        now: i64,
        shared: Option<Option<f32>>,
        ctx: &mut Ctx,
    ) -> Option<(Scored<'r>, RequestFacts<'r>, Observed)> {
        let risk = self.state.risk.as_deref()?;
        let biometric = match (shared, read_credential(req), &risk.biometrics) {
            (Some(b), _, _) => b,
            (None, Credential::Bearer(token), Some(store)) => store.credential_score(token),
            _ => None,
        };
        let mut facts = RequestFacts {
            client: ctx
                .client_ip
                .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
            route: &route.id,
            resource,
            method: Method::from_http(req.method.as_str()),
            sensitivity: route.sensitivity,
            service_account: who.principal.service_account,
            biometric,
            mfa: fresh_mfa(who, now),
            address: Default::default(),
        };
        let at = risk.clock(replay_time(req), now);
        let observed = risk.anomaly.observe(&who.principal.id, &mut facts, at);
        let request = RequestRisk::of(observed.score.value, biometric);
        ctx.risk_score = Some(request.score);
        Some((Scored { risk, request, at }, facts, observed))
    }

    /// Does this response carry the decision header? For principals in
    /// `[explain]`, and for a request that sends `x-sentinel-explain: 1`
    /// from a caller holding `policy:explain` on this route (resource type
    /// `policy`, the route id as resource id, action `explain`; decided like
    /// any permission, conditions included). Anyone else's header was
    /// already removed by `screen_request` and changes nothing.
    fn explains(
        &self,
        req: &RequestHeader,
        route: &Route,
        who: &Authenticated<'_>,
        now: i64,
        ctx: &Ctx,
    ) -> bool {
        if self.state.explain.contains(&who.principal.id) {
            return true;
        }
        if !ctx.explain_asked {
            return false;
        }
        who.snapshot
            .authorize(&AccessRequest {
                principal: who.principal,
                resource_type: sentinel_policy::EXPLAIN_RESOURCE_TYPE,
                resource_id: Some(&route.id),
                action: sentinel_policy::EXPLAIN_ACTION,
                target_tenant: who.principal.tenant,
                approval_chain: None,
                context: RequestContext {
                    now,
                    client_ip: ctx.client_ip,
                    method: req.method.as_str(),
                    mfa: who.mfa,
                    risk_score: ctx.risk_score.map(f64::from),
                },
            })
            .allowed
    }

    fn count_risk(&self, risk: RequestRisk, outcome: Outcome) {
        if let Some(m) = crate::metrics::get() {
            let what = if outcome == Outcome::Blocked {
                "block"
            } else {
                "step_up"
            };
            m.risk
                .risk_decisions
                .with_label_values(&[risk.signal.as_str(), what])
                .inc();
        }
    }

    /// The caller's credential → a principal of the snapshot, who may use
    /// routes of this kind (users only, service accounts only).
    async fn authenticate<'p>(
        &self,
        req: &RequestHeader,
        policy: &'p Policy,
        route: &Route,
        now: i64,
    ) -> Result<Authenticated<'p>, Denial> {
        let credential = read_credential(req);
        let who = auth::authenticate(&self.state.verifier, policy, credential, now).await?;
        match route.auth {
            AuthRequirement::Users if who.principal.service_account => Err(Denial::with_message(
                ErrorCode::PermissionDenied,
                "this route is for users only",
            )),
            AuthRequirement::ServiceAccounts if !who.principal.service_account => {
                Err(Denial::with_message(
                    ErrorCode::PermissionDenied,
                    "this route is for service accounts only",
                ))
            }
            _ => Ok(who),
        }
    }

    /// [`Gateway::rate_limit`], with its span when tracing (and a limiter) is on.
    async fn traced_rate_limit(
        &self,
        route: &Route,
        who: Option<&Authenticated<'_>>,
        ctx: &mut Ctx,
    ) -> Result<(), Denial> {
        let started = ctx
            .phase_start()
            .filter(|_| self.state.rate_limits.is_some());
        let limited = self.rate_limit(route, who, ctx).await;
        ctx.phase_end("rate_limit", started, limited.as_ref().err());
        limited
    }

    /// Checks every limit that applies (tenant plan, principal, route class;
    /// per client IP on public routes). The tightest answer wins.
    async fn rate_limit(
        &self,
        route: &Route,
        who: Option<&Authenticated<'_>>,
        ctx: &mut Ctx,
    ) -> Result<(), Denial> {
        let Some((limiter, cfg)) = &self.state.rate_limits else {
            return Ok(());
        };
        let caller = who.map(|w| Caller {
            tenant: w.principal.tenant,
            principal: w.principal.id,
            tenant_settings: w.snapshot.tenant(&w.principal.tenant).map(|t| &t.settings),
            principal_limit: w.principal.attributes.get("rate_limit"),
        });
        let mut text = KeyText::default();
        let keys = keys::build(
            cfg,
            route.rate_limit.as_deref(),
            caller.as_ref(),
            ctx.client_ip,
            &mut text,
        );
        if keys.as_slice().is_empty() {
            return Ok(());
        }
        let outcome = limiter.check(keys.as_slice()).await;
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

    /// The decision for this request (counted, explained to principals in
    /// `[explain]`); a denial says what an approval would need.
    fn authorize(
        &self,
        req: &RequestHeader,
        route: &Route,
        params: &Params<'_>,
        who: &Authenticated<'_>,
        now: i64,
        ctx: &mut Ctx,
    ) -> Result<Decision, Denial> {
        let (principal, snapshot) = (who.principal, who.snapshot);
        let method = req.method.as_str();
        let Some(resource) = &route.resource else {
            return Err(Denial::new(ErrorCode::PermissionDenied));
        };
        let resource_id = resource.render(params);
        let action = route
            .action
            .as_deref()
            .or_else(|| default_action(method))
            .unwrap_or("read");
        let target_tenant = match route.tenant_param.and_then(|i| params.get(i)) {
            // An unparsable tenant id is treated as an unknown tenant (denied like another tenant's).
            Some(t) => Uuid::parse_str(t).unwrap_or(Uuid::max()),
            None => principal.tenant,
        };
        let access = AccessRequest {
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
                // None only with risk scoring off: a `risk` condition then
                // denies unless it says `on_missing = "allow"`.
                risk_score: ctx.risk_score.map(f64::from),
            },
        };
        let decision = snapshot.authorize(&access);
        // Only a shard holding shadow rules evaluates a second time.
        if let Some(shadow) = snapshot.authorize_shadow(&access) {
            if shadow.allowed != decision.allowed {
                self.shadow_disagreed(snapshot, shadow, ctx);
            }
        }
        ctx.audit.reason = Some(decision.reason.name());
        if self.state.audit.is_some() {
            ctx.audit.resource_id = resource_id.as_deref().map(Box::from);
            ctx.audit.rules = decision.rules.clone();
        }
        if let Some(m) = crate::metrics::get() {
            if decision.allowed && decision.reason == Reason::Allowed {
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
        if ctx.explain_on {
            ctx.explain = Some(explain(snapshot, &access, &decision));
        }
        if decision.allowed {
            return Ok(decision);
        }
        let mut denial = Denial::from_reason(decision.reason);
        if let (Some(chain), Reason::ApprovalRequired) = (&route.approval, decision.reason) {
            denial = denial.details(serde_json::json!({
                "approval_chain_id": &**chain,
                "request_access": {
                    "method": "POST",
                    "path": "/api/v1/access-requests",
                    "body": {"approval_chain_id": &**chain, "resource": format!("{}:{}", resource.resource_type, resource_id.as_deref().unwrap_or("*")), "action": action}
                }
            }));
        }
        Err(denial)
    }

    /// A shadow decision that differs from the live one: counted per
    /// shadow rule that made it (`sentinel_shadow_disagreements_total`) and
    /// kept for the audit event. Never changes the answer.
    fn shadow_disagreed(&self, snapshot: &Snapshot, shadow: Decision, ctx: &mut Ctx) {
        if let Some(m) = crate::metrics::get() {
            let mut counted = false;
            for r in shadow.rules.iter() {
                if snapshot.permission(r).is_some_and(|p| p.shadow) {
                    m.shadow_disagreements
                        .with_label_values(&[snapshot.rule_id(r)])
                        .inc();
                    counted = true;
                }
            }
            // INVARIANT: shadow rules only add allows or denies, so a
            // flipped decision always names one; the label is a fallback.
            if !counted {
                m.shadow_disagreements.with_label_values(&["unknown"]).inc();
            }
        }
        if self.state.audit.is_some() {
            ctx.audit.shadow = Some((shadow.allowed, shadow.reason.name(), shadow.rules));
        }
    }

    /// What goes upstream for an allowed caller: the identity headers and
    /// signed assertion, and on a bound route the caller's field plan (the
    /// union of the field rules of every permission that allowed the request).
    fn identity(
        &self,
        route: &Route,
        policy: &std::sync::Arc<sentinel_policy::Policy>,
        who: &Authenticated<'_>,
        decision: &Decision,
        now: i64,
        ctx: &mut Ctx,
    ) -> Result<(), Denial> {
        let state = &*self.state;
        let (principal, snapshot) = (who.principal, who.snapshot);
        let identity = state
            .signer
            .identity_with(
                who.token.as_deref().map(|t| &t.identity),
                &crate::assertion::Subject {
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
            let key = PlanKey::new(
                &route.id,
                &fb.entity,
                fb.unknown_fields,
                principal.tenant,
                Some(snapshot),
                decision.rules.iter(),
            );
            ctx.fields = Some(state.field_plans.get_or_build(policy, key, || {
                let allowing: Vec<&sentinel_policy::model::Permission> = decision
                    .rules
                    .iter()
                    .filter_map(|r| snapshot.permission(r))
                    .collect();
                FieldPlan::build(
                    snapshot.entity(&fb.entity),
                    &principal.tenant,
                    &allowing,
                    fb.unknown_fields,
                )
                .with_hash_key(state.field_hash_key)
            }));
        }
        ctx.identity = Some(identity);
        Ok(())
    }
}

/// The risk state and the request's risk, for settling.
struct Scored<'r> {
    risk: &'r crate::risk::Risk,
    request: RequestRisk,
    /// The anomaly clock of this request (unix seconds).
    at: u64,
}

impl Scored<'_> {
    fn score(&self) -> RequestRisk {
        self.request
    }

    fn settle(
        &self,
        who: &Authenticated<'_>,
        facts: &RequestFacts<'_>,
        observed: &Observed,
        outcome: Outcome,
    ) {
        self.risk
            .anomaly
            .settle(&who.principal.id, facts, observed, outcome, self.at);
    }
}

/// `sentinel-replay-time`, read only with `[risk] replay_clock` (benchmarks).
/// Not under the reserved `x-sentinel-` prefix: client headers there are
/// removed before admission reads anything (`headers::screen_request`).
fn replay_time(req: &RequestHeader) -> Option<&[u8]> {
    req.headers
        .get("sentinel-replay-time")
        .map(http::HeaderValue::as_bytes)
}

/// The credential carries an MFA done recently enough to count as a step-up.
fn fresh_mfa(who: &Authenticated<'_>, now: i64) -> bool {
    who.mfa
        && who
            .token
            .as_ref()
            .and_then(|t| t.issued_at)
            .is_some_and(|iat| now - iat <= crate::risk::FRESH_MFA_SECS)
}

/// `allow; reason=…; rules=a,b` for the explain header, and on a denial
/// `; failed=rule:condition,…` when allow rules failed on a condition.
fn explain(snapshot: &Snapshot, req: &AccessRequest<'_>, d: &Decision) -> String {
    let mut s = String::with_capacity(64);
    s.push_str(if d.allowed { "allow" } else { "deny" });
    s.push_str("; reason=");
    s.push_str(d.reason.name());
    s.push_str("; rules=");
    for (i, r) in d.rules.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        push_token(&mut s, snapshot.rule_id(r));
    }
    if !d.allowed {
        let failed = snapshot.failed_conditions(req);
        for (i, f) in failed.iter().enumerate() {
            s.push_str(if i == 0 { "; failed=" } else { "," });
            push_token(&mut s, snapshot.rule_id(f.rule));
            s.push(':');
            push_token(&mut s, &f.condition);
        }
    }
    s
}

/// Appends `text` as one token of the explain header: visible ASCII only,
/// without the separators `;`, `,` and `:`.
fn push_token(s: &mut String, text: &str) {
    s.extend(
        text.chars()
            .filter(|c| c.is_ascii_graphic() && !matches!(c, ';' | ',' | ':')),
    );
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

pub(super) fn read_credential(req: &RequestHeader) -> Credential<'_> {
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
