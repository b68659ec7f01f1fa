//! The one place a request's audit event is made: [`Gateway::record`],
//! called by `finish_response` just before any response header (upstream
//! answer, bound exchange, denial, preflight) is written, so the event is in
//! the spool before the client sees a byte. `Facts` is what admission
//! learned on the way (principal, decision, resource id).

use super::{Ctx, Gateway};
use crate::audit::event::ShadowDecision;
use crate::audit::event::{text, MAX_PATH, MAX_REASON, MAX_TEXT, MAX_USER_AGENT};
use crate::audit::{Event, Outcome, PrincipalKind, Rules, Time};
use crate::errors::ErrorCode;
use pingora::http::RequestHeader;
use sentinel_policy::{default_action, RuleIds, Snapshot};
use std::borrow::Cow;
use uuid::Uuid;

/// What admission learned about a request, for its audit event.
#[derive(Default)]
pub(super) struct Facts {
    /// (principal, tenant, service account)
    pub principal: Option<(Uuid, Uuid, bool)>,
    /// The caller's snapshot view (rule ids, version); kept only with audit on.
    pub snapshot: Option<Snapshot>,
    /// The policy version when no caller was authenticated.
    pub version: Option<u64>,
    pub resource_id: Option<Box<str>>,
    /// The decision's reason and rules (authorization ran).
    pub reason: Option<&'static str>,
    pub rules: RuleIds,
    /// The shadow decision, when it disagreed with the live one: (allowed,
    /// reason, rules).
    pub shadow: Option<(bool, &'static str, RuleIds)>,
    /// The denial's message when the request was refused.
    pub message: Option<Cow<'static, str>>,
    /// The event was recorded (one per request, even if a later error
    /// tries to answer again).
    pub recorded: bool,
}

/// The audit outcome of an answer. `refused`: the gateway itself answered
/// an error status without a code (a CORS preflight it turned down).
fn outcome(code: Option<ErrorCode>, refused: bool) -> Outcome {
    use ErrorCode::*;
    match code {
        None if refused => Outcome::Denied,
        None => Outcome::Allowed,
        Some(RateLimited) => Outcome::RateLimited,
        // A risk score above the route's step-up threshold; a block
        // (`BIOMETRIC_AUTH_FAILED`, `RISK_BLOCKED`) is a denial.
        Some(StepUpRequired) => Outcome::StepUp,
        Some(RouteNotFound | BadRequest | BodyTooLarge | HeadersTooLarge) => Outcome::Error,
        Some(c) if c.status() >= 500 => Outcome::Error,
        Some(_) => Outcome::Denied,
    }
}

/// A request's place in [0, 1), from the random hex digits that end its
/// UUID v4 request id: the same request is always sampled the same way.
fn sample_point(request_id: &str) -> f64 {
    let tail = request_id.get(request_id.len().saturating_sub(12)..);
    let n = tail
        .and_then(|t| u64::from_str_radix(t, 16).ok())
        .unwrap_or(0);
    n as f64 / (1u64 << 48) as f64
}

impl Gateway {
    /// Records the request's one audit event (if audit is on and no event
    /// was recorded yet). Sampled only when allowed and a read on a route
    /// with `audit_sample_allowed_reads`.
    pub(super) fn record(&self, req: &RequestHeader, ctx: &mut Ctx, status: u16, by_gateway: bool) {
        let Some(audit) = &self.state.audit else {
            return;
        };
        if std::mem::replace(&mut ctx.audit.recorded, true) {
            return;
        }
        let method = req.method.as_str();
        let route = ctx.route.as_deref();
        let action = route.map(|r| {
            r.action
                .as_deref()
                .or_else(|| default_action(method))
                .unwrap_or("read")
        });
        let outcome = outcome(ctx.code, by_gateway && status >= 400);
        if let (Outcome::Allowed, Some("read"), Some(p)) = (
            outcome,
            action,
            route.and_then(|r| r.audit_sample_allowed_reads),
        ) {
            if sample_point(ctx.request_id()) >= p {
                return;
            }
        }
        let facts = &ctx.audit;
        let user_agent = req
            .headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| text(s, MAX_USER_AGENT));
        let snapshot = facts.snapshot.as_ref();
        let event = Event {
            id: Uuid::now_v7(),
            time: Time(crate::clock::now_ms()),
            source: "gateway",
            request_id: Some(ctx.request_id()),
            tenant_id: facts.principal.map(|p| p.1),
            principal_id: facts.principal.map(|p| p.0),
            principal_kind: facts.principal.map(|p| {
                if p.2 {
                    PrincipalKind::ServiceAccount
                } else {
                    PrincipalKind::User
                }
            }),
            method: Some(text(method, MAX_TEXT)),
            route: route.map(|r| text(&r.id, MAX_TEXT)),
            path: Some(text(req.uri.path(), MAX_PATH)),
            resource: route
                .and_then(|r| r.resource.as_ref())
                .map(|r| text(&r.resource_type, MAX_TEXT)),
            resource_id: facts.resource_id.as_deref().map(|s| text(s, MAX_TEXT)),
            action: action.map(|a| text(a, MAX_TEXT)),
            outcome,
            code: ctx.code.map(ErrorCode::as_str),
            reason: facts
                .reason
                .or(facts.message.as_deref())
                .map(|s| text(s, MAX_REASON)),
            rules: Rules(snapshot.map(|s| (s, &facts.rules))),
            client_ip: ctx.client_ip,
            user_agent,
            status: Some(status),
            latency_ms: Some(ctx.started.elapsed().as_micros() as f64 / 1000.0),
            risk_score: ctx.risk_score.map(f64::from),
            snapshot_version: snapshot.map(Snapshot::version).or(facts.version),
            after: facts
                .shadow
                .as_ref()
                .map(|(allowed, reason, rules)| ShadowDecision {
                    allowed: *allowed,
                    reason,
                    rules: Rules(snapshot.map(|s| (s, rules))),
                }),
        };
        audit.record(&event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes() {
        assert_eq!(outcome(None, false), Outcome::Allowed);
        assert_eq!(outcome(None, true), Outcome::Denied, "a refused preflight");
        assert_eq!(
            outcome(Some(ErrorCode::RateLimited), false),
            Outcome::RateLimited
        );
        assert_eq!(
            outcome(Some(ErrorCode::PermissionDenied), true),
            Outcome::Denied
        );
        assert_eq!(outcome(Some(ErrorCode::AuthInvalid), true), Outcome::Denied);
        assert_eq!(
            outcome(Some(ErrorCode::RouteNotFound), true),
            Outcome::Error
        );
        assert_eq!(
            outcome(Some(ErrorCode::UpstreamTimeout), true),
            Outcome::Error
        );
        assert_eq!(
            outcome(Some(ErrorCode::StepUpRequired), true),
            Outcome::StepUp
        );
        assert_eq!(outcome(Some(ErrorCode::RiskBlocked), true), Outcome::Denied);
        assert_eq!(
            outcome(Some(ErrorCode::BiometricAuthFailed), true),
            Outcome::Denied
        );
    }

    #[test]
    fn sample_points_spread_over_the_unit_interval() {
        assert_eq!(sample_point("x-000000000000"), 0.0);
        assert!(sample_point("0f0e-ffffffffffff") < 1.0);
        assert!((sample_point("a-800000000000") - 0.5).abs() < 1e-9);
    }
}
