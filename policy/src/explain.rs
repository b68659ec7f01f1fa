//! Why a request was denied, beyond the [`crate::Decision`]: which
//! conditions of which allow rules did not hold. Only the explain output
//! asks (a principal in `[explain]`, or a caller holding `policy:explain`
//! who sent `x-sentinel-explain: 1`), so this walks the rules a second
//! time instead of making [`Snapshot::authorize`] keep what it skipped.

use crate::eval::{holds, AccessRequest};
use crate::model::{Condition, Snapshot};
use crate::source::Effect;

/// The permission a resource type `policy`, action `explain` grant names:
/// holding it lets a caller ask for the decision header on a request
/// (docs/policy.md, "Explain on request"). The resource id is the route id.
pub const EXPLAIN_RESOURCE_TYPE: &str = "policy";
/// See [`EXPLAIN_RESOURCE_TYPE`].
pub const EXPLAIN_ACTION: &str = "explain";

/// An allow rule that covered the request but one of whose conditions did not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedCondition {
    /// The permission's index (as in [`crate::Decision::rules`]).
    pub rule: u32,
    /// The condition's kind (`risk`, `mfa`, `attribute.department`).
    pub condition: String,
}

impl Condition {
    /// The condition's kind as the explain header writes it.
    pub fn kind(&self) -> String {
        match self {
            Condition::Attribute { name, .. } => format!("attribute.{name}"),
            Condition::ClientIp(_) => "client_ip".into(),
            Condition::Mfa => "mfa".into(),
            Condition::Time { .. } => "time".into(),
            Condition::Risk { .. } => "risk".into(),
            Condition::Method(_) => "method".into(),
        }
    }
}

impl Snapshot {
    /// The first failing condition of every allow rule that covers the
    /// request's resource, action and tenant but whose conditions do not all
    /// hold, in rule order. Empty when no rule failed on a condition.
    pub fn failed_conditions(&self, req: &AccessRequest<'_>) -> Vec<FailedCondition> {
        let p = req.principal;
        let target = self.global.tenants.get(&req.target_tenant);
        let mut out: Vec<FailedCondition> = Vec::new();
        for &role in p.roles.iter() {
            let Some(role) = self.local.roles.get(role as usize) else {
                continue;
            };
            for ty in [req.resource_type, "*"] {
                let Some(rules) = role.by_type.get(ty) else {
                    continue;
                };
                let mut candidates: Vec<u32> = rules.wildcard.clone();
                if let Some(id) = req.resource_id {
                    if let Some(list) = rules.exact.get(id) {
                        candidates.extend(list);
                    }
                    candidates.extend(
                        rules
                            .prefix
                            .iter()
                            .filter(|(prefix, _)| id.starts_with(&**prefix))
                            .map(|(_, i)| *i),
                    );
                }
                for idx in candidates {
                    let Some(perm) = self.local.permissions.get(idx as usize) else {
                        continue;
                    };
                    if perm.effect != Effect::Allow
                        || perm.shadow
                        || !perm.actions.contains(req.action)
                        || !self.in_scope(perm.tenant_scope, p.tenant, target)
                        || out.iter().any(|f| f.rule == idx)
                    {
                        continue;
                    }
                    if let Some(c) = perm.conditions.iter().find(|c| !holds(c, p, &req.context)) {
                        out.push(FailedCondition {
                            rule: idx,
                            condition: c.kind(),
                        });
                    }
                }
            }
        }
        out
    }
}
