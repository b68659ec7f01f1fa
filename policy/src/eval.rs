//! Authorization: a total function from (snapshot, request) to a [`Decision`].
//!
//! Deny by default; a matching `deny` overrides any `allow`. A condition that
//! cannot be evaluated (a missing attribute, a type mismatch) counts as not
//! holding, for allow and deny rules alike (as Cedar does). Nothing here
//! allocates unless more than [`RuleIds::INLINE`] rules decide.

use crate::model::*;
use crate::source::{AttributeOp, Effect, TenantScope, TenantStatus};
use serde_json::Value;
use std::net::IpAddr;
use uuid::Uuid;

/// What the request carries besides the principal and the resource.
#[derive(Debug, Clone, Copy)]
pub struct RequestContext<'a> {
    /// Unix seconds.
    pub now: i64,
    pub client_ip: Option<IpAddr>,
    pub method: &'a str,
    pub mfa: bool,
    pub risk_score: Option<f64>,
}

#[derive(Debug, Clone, Copy)]
pub struct AccessRequest<'a> {
    pub principal: &'a Principal,
    pub resource_type: &'a str,
    /// `None` for the collection (only `*` patterns cover it).
    pub resource_id: Option<&'a str>,
    pub action: &'a str,
    /// The tenant the request acts on (the route's tenant parameter, or the caller's tenant).
    pub target_tenant: Uuid,
    /// Set when the route needs an approved, time-bound grant.
    pub approval_chain: Option<&'a str>,
    pub context: RequestContext<'a>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// At least one allow rule matched and no deny rule did.
    Allowed,
    /// A deny rule matched.
    ExplicitDeny,
    /// No rule covers this resource and action.
    NoMatchingPermission,
    /// Rules cover the resource and action but their conditions do not hold.
    ConditionNotMet,
    /// Rules cover the resource and action but not the target tenant.
    TenantOutOfScope,
    /// The caller's (or target) tenant is suspended or inactive.
    TenantSuspended,
    /// The principal is locked.
    AccountLocked,
    /// The principal is deactivated.
    AccountInactive,
    /// Allowed by policy, but the route needs an approved grant and none is valid now.
    ApprovalRequired,
}

impl Reason {
    /// A short, stable, human-readable text (used in explain headers and logs).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Allowed => "allowed by permission",
            Reason::ExplicitDeny => "denied by a deny permission",
            Reason::NoMatchingPermission => "no permission grants this action on this resource",
            Reason::ConditionNotMet => "a permission matches but its conditions do not hold",
            Reason::TenantOutOfScope => {
                "the target tenant is outside the permission's tenant scope"
            }
            Reason::TenantSuspended => "tenant is suspended",
            Reason::AccountLocked => "account is locked",
            Reason::AccountInactive => "account is inactive",
            Reason::ApprovalRequired => "an approved access grant is required",
        }
    }

    /// The stable machine name (`no_matching_permission`).
    pub fn name(self) -> &'static str {
        match self {
            Reason::Allowed => "allowed",
            Reason::ExplicitDeny => "explicit_deny",
            Reason::NoMatchingPermission => "no_matching_permission",
            Reason::ConditionNotMet => "condition_not_met",
            Reason::TenantOutOfScope => "tenant_out_of_scope",
            Reason::TenantSuspended => "tenant_suspended",
            Reason::AccountLocked => "account_locked",
            Reason::AccountInactive => "account_inactive",
            Reason::ApprovalRequired => "approval_required",
        }
    }
}

/// Indices of the permissions that decided, inline up to [`RuleIds::INLINE`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleIds {
    inline: [u32; RuleIds::INLINE],
    len: u8,
    spill: Vec<u32>,
}

impl RuleIds {
    pub const INLINE: usize = 6;

    fn push(&mut self, idx: u32) {
        if self.iter().any(|i| i == idx) {
            return;
        }
        if (self.len as usize) < Self::INLINE {
            self.inline[self.len as usize] = idx;
            self.len += 1;
        } else {
            self.spill.push(idx);
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.inline[..self.len as usize]
            .iter()
            .copied()
            .chain(self.spill.iter().copied())
    }

    pub fn len(&self) -> usize {
        self.len as usize + self.spill.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub reason: Reason,
    /// Deny: the deny rules that matched. Allow: every allow rule that matched
    /// (their field rules combine). Otherwise empty.
    pub rules: RuleIds,
    /// The grant that satisfied an approval requirement.
    pub grant: Option<u32>,
}

impl Decision {
    fn deny(reason: Reason) -> Decision {
        Decision {
            allowed: false,
            reason,
            rules: RuleIds::default(),
            grant: None,
        }
    }
}

impl Snapshot {
    /// Decides a request. Total: always returns a decision, never fails.
    /// Shadow rules take no part.
    pub fn authorize(&self, req: &AccessRequest<'_>) -> Decision {
        self.decide(req, false)
    }

    /// The decision the request would get if the shadow rules were live,
    /// or `None` when this shard has no shadow rule (then nothing is
    /// evaluated twice). Compare it with [`Snapshot::authorize`]'s.
    pub fn authorize_shadow(&self, req: &AccessRequest<'_>) -> Option<Decision> {
        self.local.has_shadow.then(|| self.decide(req, true))
    }

    /// Does this shard hold a shadow rule?
    pub fn has_shadow_rules(&self) -> bool {
        self.local.has_shadow
    }

    #[inline]
    fn decide(&self, req: &AccessRequest<'_>, with_shadow: bool) -> Decision {
        let p = req.principal;
        let now = req.context.now;
        // INVARIANT: principals reference tenants that exist (checked by the compiler).
        match self.global.tenants.get(&p.tenant).map(|t| t.status) {
            Some(TenantStatus::Active) => {}
            _ => return Decision::deny(Reason::TenantSuspended),
        }
        if p.locked || p.locked_until.is_some_and(|until| now < until) {
            return Decision::deny(Reason::AccountLocked);
        }
        if !p.active {
            return Decision::deny(Reason::AccountInactive);
        }
        // An unknown target tenant is evaluated like another tenant's: no rule is
        // in scope for it, so it answers exactly as a tenant the caller may not
        // reach (`no_matching_permission` or `tenant_out_of_scope`), never
        // revealing whether the tenant exists.
        let target = self.global.tenants.get(&req.target_tenant);

        let mut allow = RuleIds::default();
        let mut deny = RuleIds::default();
        let mut scope_miss = false;
        let mut condition_miss = false;
        for &role in p.roles.iter() {
            let Some(role) = self.local.roles.get(role as usize) else {
                continue;
            };
            for ty in [req.resource_type, "*"] {
                let Some(rules) = role.by_type.get(ty) else {
                    continue;
                };
                let mut visit = |idx: u32| {
                    let Some(perm) = self.local.permissions.get(idx as usize) else {
                        return;
                    };
                    if (perm.shadow && !with_shadow) || !perm.actions.contains(req.action) {
                        return;
                    }
                    // A deny rule that does not apply explains nothing: only allow
                    // rules that miss set the reason of a default deny.
                    let is_allow = perm.effect == Effect::Allow;
                    // Once a deny rule applies, allow rules cannot change the
                    // decision (nor its rule list): skip their scope and conditions.
                    if is_allow && !deny.is_empty() {
                        return;
                    }
                    if !self.in_scope(perm.tenant_scope, p.tenant, target) {
                        scope_miss |= is_allow;
                        return;
                    }
                    if !perm.conditions.iter().all(|c| holds(c, p, &req.context)) {
                        condition_miss |= is_allow;
                        return;
                    }
                    match perm.effect {
                        Effect::Allow => allow.push(idx),
                        Effect::Deny => deny.push(idx),
                    }
                };
                rules.wildcard.iter().for_each(|&i| visit(i));
                if let Some(id) = req.resource_id {
                    if let Some(list) = rules.exact.get(id) {
                        list.iter().for_each(|&i| visit(i));
                    }
                    for (prefix, i) in &rules.prefix {
                        if id.starts_with(&**prefix) {
                            visit(*i);
                        }
                    }
                }
            }
        }

        if !deny.is_empty() {
            return Decision {
                allowed: false,
                reason: Reason::ExplicitDeny,
                rules: deny,
                grant: None,
            };
        }
        if allow.is_empty() {
            let reason = if condition_miss {
                Reason::ConditionNotMet
            } else if scope_miss {
                Reason::TenantOutOfScope
            } else {
                Reason::NoMatchingPermission
            };
            return Decision::deny(reason);
        }
        // INVARIANT: an allow rule matched, so the target tenant is in scope and exists.
        if target.is_none_or(|t| t.status != TenantStatus::Active) {
            return Decision::deny(Reason::TenantSuspended);
        }
        let mut grant = None;
        if let Some(chain) = req.approval_chain {
            grant = self.find_grant(p.id, req, chain);
            if grant.is_none() {
                return Decision {
                    allowed: false,
                    reason: Reason::ApprovalRequired,
                    rules: allow,
                    grant: None,
                };
            }
        }
        Decision {
            allowed: true,
            reason: Reason::Allowed,
            rules: allow,
            grant,
        }
    }

    pub(crate) fn in_scope(
        &self,
        scope: TenantScope,
        caller: Uuid,
        target: Option<&Tenant>,
    ) -> bool {
        let Some(target) = target else {
            return false;
        };
        if target.id == caller {
            return true;
        }
        match scope {
            TenantScope::Own => false,
            TenantScope::OwnAndChildren => target.ancestors.contains(&caller),
            TenantScope::Any => caller == PLATFORM_TENANT,
        }
    }

    fn find_grant(&self, principal: Uuid, req: &AccessRequest<'_>, chain: &str) -> Option<u32> {
        let grants = self.local.grants.get(&principal)?;
        let now = req.context.now;
        grants
            .iter()
            .position(|g| {
                &*g.resource_type == req.resource_type
                    && g.resource.matches(req.resource_id)
                    && g.actions.contains(req.action)
                    && g.not_before.is_none_or(|nb| now >= nb)
                    && now < g.expires_at
                    && g.approval_chain.as_deref().is_none_or(|c| c == chain)
            })
            .map(|i| i as u32)
    }

    /// The grant at `idx` of `principal` (as found in a [`Decision`]).
    pub fn grant(&self, principal: &Uuid, idx: u32) -> Option<&Grant> {
        self.local.grants.get(principal)?.get(idx as usize)
    }
}

pub(crate) fn holds(c: &Condition, p: &Principal, ctx: &RequestContext<'_>) -> bool {
    match c {
        Condition::Attribute { name, op, value } => match p.attributes.get(&**name) {
            Some(actual) => compare(actual, *op, value),
            None => false,
        },
        Condition::ClientIp(nets) => ctx
            .client_ip
            .is_some_and(|ip| nets.iter().any(|n| n.contains(&canonical(ip)))),
        Condition::Mfa => ctx.mfa,
        Condition::Time { hours, weekdays } => {
            let secs = ctx.now.rem_euclid(86_400);
            let hour = (secs / 3600) as u8;
            // 1970-01-01 was a Thursday (bit 3 with Monday = bit 0).
            let weekday = ((ctx.now.div_euclid(86_400) + 3).rem_euclid(7)) as u8;
            let hour_ok = match hours {
                None => true,
                Some((from, to)) if from < to => hour >= *from && hour < *to,
                Some((from, to)) => hour >= *from || hour < *to,
            };
            hour_ok && weekdays & (1 << weekday) != 0
        }
        // Fail closed: a request without a risk score (unknown risk) does not
        // meet a risk condition unless the condition says `on_missing = "allow"`.
        Condition::Risk { max, allow_missing } => match ctx.risk_score {
            Some(r) => r <= *max,
            None => *allow_missing,
        },
        Condition::Method(methods) => methods.iter().any(|m| &**m == ctx.method),
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn compare(actual: &Value, op: AttributeOp, expected: &Value) -> bool {
    match op {
        AttributeOp::Eq => json_eq(actual, expected),
        AttributeOp::Ne => !json_eq(actual, expected),
        AttributeOp::In => expected
            .as_array()
            .is_some_and(|a| a.iter().any(|e| json_eq(actual, e))),
        AttributeOp::NotIn => expected
            .as_array()
            .is_some_and(|a| !a.iter().any(|e| json_eq(actual, e))),
        AttributeOp::Contains => match actual {
            Value::Array(items) => items.iter().any(|i| json_eq(i, expected)),
            Value::String(s) => expected.as_str().is_some_and(|e| s.contains(e)),
            _ => false,
        },
        AttributeOp::Gt | AttributeOp::Gte | AttributeOp::Lt | AttributeOp::Lte => {
            let (Some(a), Some(e)) = (actual.as_f64(), expected.as_f64()) else {
                return false;
            };
            match op {
                AttributeOp::Gt => a > e,
                AttributeOp::Gte => a >= e,
                AttributeOp::Lt => a < e,
                _ => a <= e,
            }
        }
    }
}

/// JSON equality where numbers compare by value: `3`, `3.0` and `3e0` are equal
/// (attributes come from TOML files and from the database, which may write a
/// number either way). Integers compare exactly; a float compares as `f64`.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            matches!((x.as_f64(), y.as_f64()), (Some(x), Some(y)) if x == y)
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_eq(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}
