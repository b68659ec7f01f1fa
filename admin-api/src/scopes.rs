//! The API's own authorization: scopes carried by roles.
//!
//! A scope is `<area>:<level>` with `admin > write > read` per area, plus
//! `platform:admin` (platform superadmin: every scope, in every tenant; only
//! honoured for principals of the platform tenant) and `snapshot:read` (may
//! read the whole platform's signed policy snapshots: gateways; likewise only
//! honoured in the platform tenant, and never part of a tenant admin's set).
//!
//! The audit trail has scopes of its own, not levels of one area:
//! `audit:read` (search events), `audit:export` (stream them out) and
//! `audit:write` (ship events: gateway service accounts; like
//! `snapshot:read`, only honoured in the platform tenant and never part of a
//! tenant admin's set).
//!
//! AI-assisted administration (docs/ai.md) has two rights of its own:
//! `ai:read` (ask questions, see predictions, findings and compliance
//! reports, run the analyses) and `ai:apply` (apply or dismiss a finding;
//! implies `ai:read`). Neither is more than a door: each answer also needs
//! the scope the ordinary endpoint for the same data needs, and applying a
//! finding needs the scopes of the calls it makes.
//!
//! The anomaly model registry (docs/anomaly.md, "Registry") is the
//! platform's, not a tenant's: `ai:models:read` (list, get) and
//! `ai:models:write` (upload, activate, roll back; implies read), honoured
//! only in the platform tenant and never part of a tenant admin's set, like
//! `snapshot:read`. Gateways download the active model's bytes with their
//! `snapshot:read` key.
//!
//! Approvals (docs/approvals.md) are one area whose levels are named for what
//! they let a person do: `approvals:request` (ask for access, see chains) <
//! `approvals:decide` (approve or deny what one is assigned, delegate) <
//! `approvals:admin` (manage chains, see every request, revoke grants).

use std::collections::BTreeMap;

pub const AREAS: &[&str] = &[
    "tenant",
    "user",
    "service_account",
    "role",
    "group",
    "permission",
    "resource",
    "field_definition",
    "navigation",
    "policy",
    "webhook",
];

pub const PLATFORM_ADMIN: &str = "platform:admin";
/// Reading the whole platform's policy snapshots (gateway service accounts).
pub const SNAPSHOT_READ: &str = "snapshot:read";
/// Searching the audit trail (a tenant's; the platform tenant's: every tenant's).
pub const AUDIT_READ: &str = "audit:read";
/// Exporting the audit trail (CSV, JSON lines).
pub const AUDIT_EXPORT: &str = "audit:export";
/// Shipping gateway events to the audit trail (platform service accounts).
pub const AUDIT_WRITE: &str = "audit:write";
/// Seeing the AI features' findings and reports, running the analyses.
pub const AI_READ: &str = "ai:read";
/// Applying or dismissing an AI finding (implies [`AI_READ`]).
pub const AI_APPLY: &str = "ai:apply";
/// Listing and reading the anomaly model registry (platform tenant only).
pub const AI_MODELS_READ: &str = "ai:models:read";
/// Uploading, activating and rolling back anomaly models (platform tenant
/// only; implies [`AI_MODELS_READ`]).
pub const AI_MODELS_WRITE: &str = "ai:models:write";
/// The approvals area and its level names (request < decide < admin).
pub const APPROVALS: &str = "approvals";
pub const APPROVALS_REQUEST: &str = "approvals:request";
pub const APPROVALS_DECIDE: &str = "approvals:decide";
pub const APPROVALS_ADMIN: &str = "approvals:admin";

/// The name of a level of the approvals area.
pub fn approvals_level_name(level: Level) -> &'static str {
    match level {
        Level::Read => "request",
        Level::Write => "decide",
        Level::Admin => "admin",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Read = 1,
    Write = 2,
    Admin = 3,
}

impl Level {
    fn parse(s: &str) -> Option<Level> {
        match s {
            "read" => Some(Level::Read),
            "write" => Some(Level::Write),
            "admin" => Some(Level::Admin),
            _ => None,
        }
    }
}

/// Parses one scope; `None` when it is not a known scope.
pub fn parse(scope: &str) -> Option<(&'static str, Level)> {
    let (area, level) = scope.split_once(':')?;
    if area == "audit" {
        // Not a hierarchy: each is its own right.
        return match level {
            "read" => Some(("audit", Level::Read)),
            "export" => Some(("audit_export", Level::Read)),
            "write" => Some(("audit_write", Level::Write)),
            _ => None,
        };
    }
    if area == APPROVALS {
        return match level {
            "request" => Some((APPROVALS, Level::Read)),
            "decide" => Some((APPROVALS, Level::Write)),
            "admin" => Some((APPROVALS, Level::Admin)),
            _ => None,
        };
    }
    if area == "ai" {
        return match level {
            "read" => Some(("ai", Level::Read)),
            "apply" => Some(("ai_apply", Level::Write)),
            "models:read" => Some(("ai_models", Level::Read)),
            "models:write" => Some(("ai_models", Level::Write)),
            _ => None,
        };
    }
    let level = Level::parse(level)?;
    if area == "platform" {
        return (level == Level::Admin).then_some(("platform", Level::Admin));
    }
    if area == "snapshot" {
        return (level == Level::Read).then_some(("snapshot", Level::Read));
    }
    AREAS.iter().find(|a| **a == area).map(|a| (*a, level))
}

/// The scopes a principal holds, reduced to the highest level per area.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeSet {
    platform_admin: bool,
    snapshot_read: bool,
    audit_read: bool,
    audit_export: bool,
    audit_write: bool,
    ai_read: bool,
    ai_apply: bool,
    /// The model registry's level (platform tenant only).
    ai_models: Option<Level>,
    levels: BTreeMap<&'static str, Level>,
}

impl ScopeSet {
    /// Unknown scope strings are ignored; `platform:admin` counts only when
    /// `platform_tenant` is true.
    pub fn from_scopes<'a>(
        scopes: impl IntoIterator<Item = &'a str>,
        platform_tenant: bool,
    ) -> Self {
        let mut set = ScopeSet::default();
        for s in scopes {
            match parse(s) {
                Some(("platform", _)) => set.platform_admin = platform_tenant,
                Some(("snapshot", _)) => set.snapshot_read = platform_tenant,
                Some(("audit", _)) => set.audit_read = true,
                Some(("audit_export", _)) => set.audit_export = true,
                Some(("audit_write", _)) => set.audit_write = platform_tenant,
                Some(("ai", _)) => set.ai_read = true,
                Some(("ai_apply", _)) => set.ai_apply = true,
                Some(("ai_models", level)) => {
                    set.ai_models = if platform_tenant {
                        set.ai_models.max(Some(level))
                    } else {
                        None
                    };
                }
                Some((area, level)) => {
                    let e = set.levels.entry(area).or_insert(level);
                    if level > *e {
                        *e = level;
                    }
                }
                None => {}
            }
        }
        set
    }

    pub fn is_platform_admin(&self) -> bool {
        self.platform_admin
    }

    /// May read the whole platform's policy snapshots.
    pub fn can_read_snapshots(&self) -> bool {
        self.platform_admin || self.snapshot_read
    }

    /// May search the audit trail.
    pub fn can_read_audit(&self) -> bool {
        self.platform_admin || self.audit_read
    }

    /// May export the audit trail.
    pub fn can_export_audit(&self) -> bool {
        self.platform_admin || self.audit_export
    }

    /// May ship events into the audit trail (platform tenant only).
    pub fn can_write_audit(&self) -> bool {
        self.platform_admin || self.audit_write
    }

    /// May ask questions, see predictions, findings and reports, run the analyses.
    pub fn can_read_ai(&self) -> bool {
        self.platform_admin || self.ai_read || self.ai_apply
    }

    /// May apply or dismiss AI findings.
    pub fn can_apply_ai(&self) -> bool {
        self.platform_admin || self.ai_apply
    }

    /// May list and read the anomaly model registry.
    pub fn can_read_models(&self) -> bool {
        self.platform_admin || self.ai_models.is_some()
    }

    /// May upload, activate and roll back anomaly models.
    pub fn can_write_models(&self) -> bool {
        self.platform_admin || self.ai_models == Some(Level::Write)
    }

    pub fn allows(&self, area: &str, level: Level) -> bool {
        self.platform_admin || self.levels.get(area).is_some_and(|l| *l >= level)
    }

    /// Whether holding `scope` grants nothing beyond this set.
    pub fn covers(&self, scope: &str) -> bool {
        match parse(scope) {
            Some(("platform", _)) => self.platform_admin,
            Some(("snapshot", _)) => self.can_read_snapshots(),
            Some(("audit", _)) => self.can_read_audit(),
            Some(("audit_export", _)) => self.can_export_audit(),
            Some(("audit_write", _)) => self.can_write_audit(),
            Some(("ai", _)) => self.can_read_ai(),
            Some(("ai_apply", _)) => self.can_apply_ai(),
            Some(("ai_models", Level::Read)) => self.can_read_models(),
            Some(("ai_models", _)) => self.can_write_models(),
            Some((area, level)) => self.allows(area, level),
            None => false,
        }
    }

    /// The scopes of `others` this set does not cover (escalation attempts).
    pub fn missing<'a>(&self, others: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        let mut out: Vec<String> = others
            .into_iter()
            .filter(|s| !self.covers(s))
            .map(str::to_owned)
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The held scopes as strings (highest level per area).
    pub fn to_strings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.platform_admin {
            out.push(PLATFORM_ADMIN.to_owned());
        }
        if self.snapshot_read {
            out.push(SNAPSHOT_READ.to_owned());
        }
        if self.audit_read {
            out.push(AUDIT_READ.to_owned());
        }
        if self.audit_export {
            out.push(AUDIT_EXPORT.to_owned());
        }
        if self.audit_write {
            out.push(AUDIT_WRITE.to_owned());
        }
        if self.ai_read {
            out.push(AI_READ.to_owned());
        }
        if self.ai_apply {
            out.push(AI_APPLY.to_owned());
        }
        match self.ai_models {
            Some(Level::Read) => out.push(AI_MODELS_READ.to_owned()),
            Some(_) => out.push(AI_MODELS_WRITE.to_owned()),
            None => {}
        }
        for (area, level) in &self.levels {
            if *area == APPROVALS {
                out.push(format!("{area}:{}", approvals_level_name(*level)));
                continue;
            }
            let l = match level {
                Level::Read => "read",
                Level::Write => "write",
                Level::Admin => "admin",
            };
            out.push(format!("{area}:{l}"));
        }
        out
    }
}

/// Every scope a tenant administrator gets in the seeded `tenant-admin` role.
pub fn tenant_admin_scopes() -> Vec<String> {
    let mut out = vec!["tenant:read".to_owned()];
    for a in AREAS.iter().filter(|a| **a != "tenant") {
        out.push(format!("{a}:admin"));
    }
    out.push(AUDIT_READ.to_owned());
    out.push(AUDIT_EXPORT.to_owned());
    out.push(AI_READ.to_owned());
    out.push(APPROVALS_ADMIN.to_owned());
    out.push(AI_APPLY.to_owned());
    out
}

/// The seeded `auditor` role: every area read, and the audit trail.
pub fn auditor_scopes() -> Vec<String> {
    let mut out: Vec<String> = AREAS.iter().map(|a| format!("{a}:read")).collect();
    out.push(AUDIT_READ.to_owned());
    out.push(AUDIT_EXPORT.to_owned());
    out.push(AI_READ.to_owned());
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn hierarchy() {
        let s = ScopeSet::from_scopes(["user:write", "role:read", "bogus", "user:read"], false);
        assert!(s.allows("user", Level::Read));
        assert!(s.allows("user", Level::Write));
        assert!(!s.allows("user", Level::Admin));
        assert!(s.allows("role", Level::Read));
        assert!(!s.allows("role", Level::Write));
        assert_eq!(
            s.missing(["user:read", "user:admin", "group:read", "nope"]),
            vec!["group:read", "nope", "user:admin"]
        );
    }

    #[test]
    fn platform_admin_only_in_platform_tenant() {
        assert!(!ScopeSet::from_scopes(["platform:admin"], false).is_platform_admin());
        let p = ScopeSet::from_scopes(["platform:admin"], true);
        assert!(p.is_platform_admin());
        assert!(p.covers("tenant:admin"));
        assert!(p.covers("platform:admin"));
        assert!(parse("platform:read").is_none());
    }

    #[test]
    fn snapshot_read_only_in_platform_tenant() {
        assert!(!ScopeSet::from_scopes(["snapshot:read"], false).can_read_snapshots());
        assert!(ScopeSet::from_scopes(["snapshot:read"], true).can_read_snapshots());
        assert!(ScopeSet::from_scopes(["platform:admin"], true).can_read_snapshots());
        // A tenant admin's full set never includes it.
        let admin = tenant_admin_scopes();
        let t = ScopeSet::from_scopes(admin.iter().map(String::as_str), true);
        assert!(!t.can_read_snapshots());
        assert!(!t.covers("snapshot:read"));
        assert!(parse("snapshot:write").is_none());
    }

    #[test]
    fn audit_scopes_are_separate_rights() {
        let r = ScopeSet::from_scopes(["audit:read"], false);
        assert!(r.can_read_audit());
        assert!(!r.can_export_audit());
        assert!(!r.covers("audit:export"));
        assert!(r.covers("audit:read"));
        // Shipping events only counts in the platform tenant.
        assert!(!ScopeSet::from_scopes(["audit:write"], false).can_write_audit());
        assert!(ScopeSet::from_scopes(["audit:write"], true).can_write_audit());
        let admin = tenant_admin_scopes();
        let t = ScopeSet::from_scopes(admin.iter().map(String::as_str), true);
        assert!(t.can_read_audit() && t.can_export_audit());
        assert!(!t.can_write_audit());
        assert!(parse("audit:admin").is_none());
        assert!(!r.can_read_ai());
        assert!(ScopeSet::from_scopes(["ai:read"], false).can_read_ai());
        assert!(parse("ai:write").is_none());
        assert_eq!(
            ScopeSet::from_scopes(["audit:export", "audit:read"], false).to_strings(),
            vec!["audit:read", "audit:export"]
        );
    }

    #[test]
    fn model_registry_scopes_only_in_platform_tenant() {
        // A tenant's role cannot carry them into effect.
        let t = ScopeSet::from_scopes(["ai:models:write", "ai:models:read"], false);
        assert!(!t.can_read_models() && !t.can_write_models());
        assert!(!t.covers("ai:models:read"));
        let r = ScopeSet::from_scopes(["ai:models:read"], true);
        assert!(r.can_read_models() && !r.can_write_models());
        assert!(!r.covers("ai:models:write"));
        let w = ScopeSet::from_scopes(["ai:models:write"], true);
        assert!(w.can_read_models() && w.can_write_models());
        assert_eq!(w.to_strings(), vec!["ai:models:write"]);
        assert!(ScopeSet::from_scopes(["platform:admin"], true).can_write_models());
        // Neither a tenant admin's set nor `ai:apply` reaches the registry.
        let admin = tenant_admin_scopes();
        let a = ScopeSet::from_scopes(admin.iter().map(String::as_str), true);
        assert!(!a.can_read_models());
        assert!(parse("ai:models:admin").is_none());
        assert!(parse("ai:models").is_none());
    }

    #[test]
    fn approvals_levels() {
        let d = ScopeSet::from_scopes(["approvals:decide"], false);
        assert!(d.covers("approvals:request"));
        assert!(d.covers("approvals:decide"));
        assert!(!d.covers("approvals:admin"));
        assert_eq!(d.to_strings(), vec!["approvals:decide"]);
        assert!(parse("approvals:read").is_none());
        assert!(parse("approvals:write").is_none());
        let admin = tenant_admin_scopes();
        let t = ScopeSet::from_scopes(admin.iter().map(String::as_str), false);
        assert!(t.covers("approvals:admin"));
    }

    #[test]
    fn ai_scopes_are_separate_rights() {
        let r = ScopeSet::from_scopes(["ai:read"], false);
        assert!(r.can_read_ai());
        assert!(!r.can_apply_ai());
        assert!(!r.covers("ai:apply"));
        let a = ScopeSet::from_scopes(["ai:apply"], false);
        assert!(a.can_apply_ai() && a.can_read_ai());
        assert!(a.covers("ai:read"));
        assert!(!ScopeSet::default().can_read_ai());
        assert!(parse("ai:admin").is_none());
        let admin = tenant_admin_scopes();
        let t = ScopeSet::from_scopes(admin.iter().map(String::as_str), false);
        assert!(t.can_apply_ai());
        let aud = auditor_scopes();
        let t = ScopeSet::from_scopes(aud.iter().map(String::as_str), false);
        assert!(t.can_read_ai() && !t.can_apply_ai());
        assert_eq!(
            ScopeSet::from_scopes(["ai:apply", "ai:read"], false).to_strings(),
            vec!["ai:read", "ai:apply"]
        );
    }
}
