//! Table-driven decision tests: one row per (principal, request) with the
//! expected decision, reason and deciding rule ids, against one small policy
//! written the way a security team would write it (TOML).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sentinel_policy::{
    compile, AccessRequest, Decision, PolicySource, Reason, RequestContext, Snapshot,
};
use std::collections::HashMap;
use std::net::IpAddr;
use uuid::Uuid;

const PLATFORM: Uuid = Uuid::from_u128(0);
const A: Uuid = Uuid::from_u128(0x11111111_1111_1111_1111_111111111111);
const B: Uuid = Uuid::from_u128(0x22222222_2222_2222_2222_222222222222);
/// Sub-tenant of A.
const S: Uuid = Uuid::from_u128(0x33333333_3333_3333_3333_333333333333);
/// A suspended tenant.
const X: Uuid = Uuid::from_u128(0x44444444_4444_4444_4444_444444444444);
/// A suspended sub-tenant of A.
const SS: Uuid = Uuid::from_u128(0x55555555_5555_5555_5555_555555555555);
/// No such tenant.
const UNKNOWN: Uuid = Uuid::from_u128(0x99999999_9999_9999_9999_999999999999);

/// Wednesday 2026-11-18 00:00:00 UTC.
const WED: i64 = 1_794_960_000;
const H: i64 = 3600;
const DAY: i64 = 86_400;
/// Wednesday 12:00 UTC: the default request time.
const NOW: i64 = WED + 12 * H;

const POLICY: &str = r#"
version = 7

[[tenants]]
id = "00000000-0000-0000-0000-000000000000"
code = "PLATFORM"

[[tenants]]
id = "11111111-1111-1111-1111-111111111111"
code = "TEST-001"

[[tenants]]
id = "33333333-3333-3333-3333-333333333333"
code = "TEST-001-SUB"
parent = "11111111-1111-1111-1111-111111111111"

[[tenants]]
id = "22222222-2222-2222-2222-222222222222"
code = "OTHER"

[[tenants]]
id = "44444444-4444-4444-4444-444444444444"
code = "SUSPENDED"
status = "suspended"

[[tenants]]
id = "55555555-5555-5555-5555-555555555555"
code = "TEST-001-SUSPENDED-SUB"
parent = "11111111-1111-1111-1111-111111111111"
status = "suspended"

# --- plain RBAC --------------------------------------------------------------

[[permissions]]
id = "vessel-read"
resource_type = "vessel"
resource = "*"
actions = ["read"]

[[permissions]]
id = "vessel-update-va"
resource_type = "vessel"
resource = "v-a*"
actions = ["update"]

[[permissions]]
id = "vessel-delete-va1"
resource_type = "vessel"
resource = "v-a1"
actions = ["delete"]

[[permissions]]
id = "any-audit"
resource_type = "*"
actions = ["audit"]

[[permissions]]
id = "deny-vessel-delete"
effect = "deny"
resource_type = "vessel"
actions = ["delete"]

[[permissions]]
id = "deny-classified"
effect = "deny"
resource_type = "vessel"
resource = "v-classified"
actions = ["read"]

# --- ABAC: one resource type per condition kind ------------------------------

[[permissions]]
id = "cond-eq"
resource_type = "doc-eq"
actions = ["read"]
conditions = [{ type = "attribute", name = "dept", op = "eq", value = "eng" }]

[[permissions]]
id = "cond-ne"
resource_type = "doc-ne"
actions = ["read"]
conditions = [{ type = "attribute", name = "dept", op = "ne", value = "sales" }]

[[permissions]]
id = "cond-in"
resource_type = "doc-in"
actions = ["read"]
conditions = [{ type = "attribute", name = "dept", op = "in", value = ["eng", "ops"] }]

[[permissions]]
id = "cond-not-in"
resource_type = "doc-not-in"
actions = ["read"]
conditions = [{ type = "attribute", name = "dept", op = "not_in", value = ["sales"] }]

[[permissions]]
id = "cond-gte"
resource_type = "doc-gte"
actions = ["read"]
conditions = [{ type = "attribute", name = "clearance", op = "gte", value = 3 }]

[[permissions]]
id = "cond-lt"
resource_type = "doc-lt"
actions = ["read"]
conditions = [{ type = "attribute", name = "clearance", op = "lt", value = 3 }]

[[permissions]]
id = "cond-num-eq"
resource_type = "doc-num-eq"
actions = ["read"]
conditions = [{ type = "attribute", name = "clearance", op = "eq", value = 3 }]

[[permissions]]
id = "cond-contains"
resource_type = "doc-contains"
actions = ["read"]
conditions = [{ type = "attribute", name = "tags", op = "contains", value = "a" }]

[[permissions]]
id = "cond-ip"
resource_type = "doc-ip"
actions = ["read"]
conditions = [{ type = "client_ip", cidrs = ["10.0.0.0/8", "2001:db8::/32"] }]

[[permissions]]
id = "cond-ip-mapped"
resource_type = "doc-ip-mapped"
actions = ["read"]
conditions = [{ type = "client_ip", cidrs = ["::ffff:192.168.0.0/112"] }]

[[permissions]]
id = "cond-mfa"
resource_type = "doc-mfa"
actions = ["read"]
conditions = [{ type = "mfa" }]

[[permissions]]
id = "cond-hours"
resource_type = "doc-hours"
actions = ["read"]
conditions = [{ type = "time", hours_utc = [9, 17] }]

[[permissions]]
id = "cond-night"
resource_type = "doc-night"
actions = ["read"]
conditions = [{ type = "time", hours_utc = [22, 6] }]

[[permissions]]
id = "cond-weekdays"
resource_type = "doc-weekdays"
actions = ["read"]
conditions = [{ type = "time", weekdays = ["mon", "tue", "wed", "thu", "fri"] }]

[[permissions]]
id = "cond-risk"
resource_type = "doc-risk"
actions = ["read"]
conditions = [{ type = "risk", max = 0.5 }]

[[permissions]]
id = "cond-risk-lenient"
resource_type = "doc-risk-lenient"
actions = ["read"]
conditions = [{ type = "risk", max = 0.5, on_missing = "allow" }]

# --- shadow rules: evaluated beside the live decision, never enforced ---------

[[permissions]]
id = "doc-shadow-live"
resource_type = "doc-shadow"
actions = ["read"]

[[permissions]]
id = "doc-shadow-deny"
effect = "deny"
mode = "shadow"
resource_type = "doc-shadow"
actions = ["read"]

[[permissions]]
id = "doc-shadow-new"
mode = "shadow"
resource_type = "doc-shadow"
actions = ["update"]

[[permissions]]
id = "cond-method"
resource_type = "doc-method"
actions = ["read"]
conditions = [{ type = "method", methods = ["GET", "HEAD"] }]

[[permissions]]
id = "cond-multi"
resource_type = "doc-multi"
actions = ["read"]
conditions = [{ type = "mfa" }, { type = "client_ip", cidrs = ["10.0.0.0/8"] }]

[[permissions]]
id = "report-read"
resource_type = "report"
actions = ["read"]

[[permissions]]
id = "deny-report-blocked-net"
effect = "deny"
resource_type = "report"
actions = ["read"]
conditions = [{ type = "client_ip", cidrs = ["203.0.113.0/24"] }]

[[permissions]]
id = "deny-ledger-mfa"
effect = "deny"
resource_type = "ledger"
actions = ["read"]
conditions = [{ type = "mfa" }]

# --- tenant scopes -------------------------------------------------------------

[[permissions]]
id = "site-read-children"
resource_type = "site"
actions = ["read"]
tenant_scope = "own_and_children"

[[permissions]]
id = "site-update-own"
resource_type = "site"
actions = ["update"]
tenant_scope = "own"

[[permissions]]
id = "all-any"
resource_type = "*"
actions = ["*"]
tenant_scope = "any"

[[permissions]]
id = "platform-vessel-own"
resource_type = "vessel"
actions = ["read"]

[[permissions]]
id = "gadget-any"
resource_type = "gadget"
actions = ["read"]
tenant_scope = "any"

# --- approvals -------------------------------------------------------------------

[[permissions]]
id = "payment-approve"
resource_type = "payment"
actions = ["approve"]

# --- roles and groups ----------------------------------------------------------

[[roles]]
id = "viewer"
name = "Viewer"
permissions = ["vessel-read"]

[[roles]]
id = "operator"
name = "Operator"
parent = "viewer"
permissions = ["vessel-update-va"]

[[roles]]
id = "admin"
name = "Admin"
parent = "operator"
permissions = ["vessel-delete-va1", "any-audit"]

[[roles]]
id = "restricted"
name = "Restricted"
tenant = "11111111-1111-1111-1111-111111111111"
permissions = ["deny-vessel-delete", "deny-classified"]

[[roles]]
id = "abac"
name = "ABAC"
tenant = "11111111-1111-1111-1111-111111111111"
permissions = [
  "cond-eq", "cond-ne", "cond-in", "cond-not-in", "cond-gte", "cond-lt", "cond-num-eq",
  "cond-contains", "cond-ip", "cond-ip-mapped", "cond-mfa", "cond-hours", "cond-night",
  "cond-weekdays", "cond-risk", "cond-risk-lenient", "cond-method", "cond-multi", "report-read",
  "doc-shadow-live", "doc-shadow-deny", "doc-shadow-new",
  "deny-report-blocked-net",
]

[[roles]]
id = "deny-only"
name = "Deny only"
tenant = "11111111-1111-1111-1111-111111111111"
permissions = ["deny-ledger-mfa"]

[[roles]]
id = "regional"
name = "Regional"
permissions = ["site-read-children", "site-update-own"]

[[roles]]
id = "platform-admin"
name = "Platform admin"
tenant = "00000000-0000-0000-0000-000000000000"
permissions = ["all-any"]

[[roles]]
id = "platform-own"
name = "Platform own"
tenant = "00000000-0000-0000-0000-000000000000"
permissions = ["platform-vessel-own"]

[[roles]]
id = "global-any"
name = "Global any"
permissions = ["gadget-any"]

[[roles]]
id = "payments"
name = "Payments"
tenant = "11111111-1111-1111-1111-111111111111"
permissions = ["payment-approve"]

[[groups]]
id = "ops"
name = "Operations"
tenant = "11111111-1111-1111-1111-111111111111"
roles = ["operator"]

# --- principals ------------------------------------------------------------------

[[principals]]
id = "a0000000-0000-0000-0000-000000000001"
tenant = "11111111-1111-1111-1111-111111111111"
name = "viewer"
roles = ["viewer"]

[[principals]]
id = "a0000000-0000-0000-0000-000000000002"
tenant = "11111111-1111-1111-1111-111111111111"
name = "operator"
roles = ["operator"]

[[principals]]
id = "a0000000-0000-0000-0000-000000000003"
tenant = "11111111-1111-1111-1111-111111111111"
name = "admin"
roles = ["admin"]

[[principals]]
id = "a0000000-0000-0000-0000-000000000004"
tenant = "11111111-1111-1111-1111-111111111111"
name = "grouped"
groups = ["ops"]

[[principals]]
id = "a0000000-0000-0000-0000-000000000005"
tenant = "11111111-1111-1111-1111-111111111111"
name = "norole"

[[principals]]
id = "a0000000-0000-0000-0000-000000000006"
tenant = "11111111-1111-1111-1111-111111111111"
name = "restricted-admin"
roles = ["admin", "restricted"]

[[principals]]
id = "a0000000-0000-0000-0000-000000000007"
tenant = "11111111-1111-1111-1111-111111111111"
name = "abac"
roles = ["abac"]
attributes = { dept = "eng", clearance = 3, tags = ["a", "b"] }

[[principals]]
id = "a0000000-0000-0000-0000-000000000008"
tenant = "11111111-1111-1111-1111-111111111111"
name = "abac-other"
roles = ["abac"]
attributes = { dept = "sales", clearance = 2, tags = ["c"] }

[[principals]]
id = "a0000000-0000-0000-0000-000000000009"
tenant = "11111111-1111-1111-1111-111111111111"
name = "noattr"
roles = ["abac"]

[[principals]]
id = "a0000000-0000-0000-0000-000000000010"
tenant = "11111111-1111-1111-1111-111111111111"
name = "regional"
roles = ["regional"]

[[principals]]
id = "a0000000-0000-0000-0000-000000000011"
tenant = "33333333-3333-3333-3333-333333333333"
name = "sub-user"
roles = ["regional"]

[[principals]]
id = "a0000000-0000-0000-0000-000000000012"
tenant = "00000000-0000-0000-0000-000000000000"
name = "platform"
roles = ["platform-admin"]

[[principals]]
id = "a0000000-0000-0000-0000-000000000013"
tenant = "00000000-0000-0000-0000-000000000000"
name = "platform-own"
roles = ["platform-own"]

[[principals]]
id = "a0000000-0000-0000-0000-000000000014"
tenant = "22222222-2222-2222-2222-222222222222"
name = "b-user"
roles = ["viewer"]

[[principals]]
id = "a0000000-0000-0000-0000-000000000015"
tenant = "44444444-4444-4444-4444-444444444444"
name = "suspended-user"
roles = ["viewer"]

[[principals]]
id = "a0000000-0000-0000-0000-000000000016"
tenant = "11111111-1111-1111-1111-111111111111"
name = "locked"
locked = true
roles = ["admin"]

[[principals]]
id = "a0000000-0000-0000-0000-000000000017"
tenant = "11111111-1111-1111-1111-111111111111"
name = "locked-until"
locked_until = 1795006800 # NOW + 1h
roles = ["admin"]

[[principals]]
id = "a0000000-0000-0000-0000-000000000018"
tenant = "11111111-1111-1111-1111-111111111111"
name = "lock-expired"
locked_until = 1794999600 # NOW - 1h
roles = ["viewer"]

[[principals]]
id = "a0000000-0000-0000-0000-000000000019"
tenant = "11111111-1111-1111-1111-111111111111"
name = "inactive"
status = "inactive"
roles = ["admin"]

[[principals]]
id = "a0000000-0000-0000-0000-000000000020"
tenant = "11111111-1111-1111-1111-111111111111"
name = "payer"
roles = ["payments"]

[[principals]]
id = "a0000000-0000-0000-0000-000000000021"
tenant = "11111111-1111-1111-1111-111111111111"
name = "deny-only"
roles = ["deny-only"]

[[principals]]
id = "a0000000-0000-0000-0000-000000000023"
tenant = "11111111-1111-1111-1111-111111111111"
name = "float-attr"
roles = ["abac"]
attributes = { clearance = 3.0 }

[[principals]]
id = "a0000000-0000-0000-0000-000000000024"
tenant = "11111111-1111-1111-1111-111111111111"
name = "any-holder"
roles = ["global-any"]

# --- grants (NOW = 1795003200) ---------------------------------------------------

[[grants]]
id = "g-valid"
principal = "a0000000-0000-0000-0000-000000000020"
resource_type = "payment"
resource = "pay-1"
actions = ["approve"]
not_before = 1794999600
expires_at = 1795006800
approval_chain = "pay-chain"

[[grants]]
id = "g-expired"
principal = "a0000000-0000-0000-0000-000000000020"
resource_type = "payment"
resource = "pay-2"
actions = ["approve"]
expires_at = 1795003199
approval_chain = "pay-chain"

[[grants]]
id = "g-future"
principal = "a0000000-0000-0000-0000-000000000020"
resource_type = "payment"
resource = "pay-3"
actions = ["approve"]
not_before = 1795006800
expires_at = 1795010400
approval_chain = "pay-chain"

[[grants]]
id = "g-wrong-chain"
principal = "a0000000-0000-0000-0000-000000000020"
resource_type = "payment"
resource = "pay-4"
actions = ["approve"]
expires_at = 1795006800
approval_chain = "other-chain"

[[grants]]
id = "g-any-chain"
principal = "a0000000-0000-0000-0000-000000000020"
resource_type = "payment"
resource = "pay-5"
actions = ["approve"]
expires_at = 1795006800
"#;

struct Policy {
    snap: Snapshot,
    by_name: HashMap<String, Uuid>,
}

fn policy() -> Policy {
    let src: PolicySource = toml::from_str(POLICY).expect("policy parses");
    let by_name = src
        .principals
        .iter()
        .map(|p| (p.name.clone(), p.id))
        .collect();
    let snap = match compile(&src) {
        Ok(s) => s,
        Err(errs) => panic!(
            "policy does not compile:\n{}",
            errs.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        ),
    };
    Policy { snap, by_name }
}

/// One row of the table.
struct Row {
    line: u32,
    principal: &'static str,
    resource_type: &'static str,
    resource_id: Option<&'static str>,
    action: &'static str,
    /// `None`: the principal's own tenant.
    tenant: Option<Uuid>,
    chain: Option<&'static str>,
    now: i64,
    ip: Option<&'static str>,
    method: &'static str,
    mfa: bool,
    risk: Option<f64>,
    expect: Option<(bool, Reason, &'static [&'static str])>,
    grant: Option<&'static str>,
    /// The decision with the shadow rules live; `None`: the same as `expect`.
    shadow: Option<(bool, Reason, &'static [&'static str])>,
}

#[track_caller]
fn req(
    principal: &'static str,
    resource_type: &'static str,
    resource_id: Option<&'static str>,
    action: &'static str,
) -> Row {
    Row {
        line: std::panic::Location::caller().line(),
        principal,
        resource_type,
        resource_id,
        action,
        tenant: None,
        chain: None,
        now: NOW,
        ip: None,
        method: "GET",
        mfa: false,
        risk: None,
        expect: None,
        grant: None,
        shadow: None,
    }
}

impl Row {
    fn on(mut self, tenant: Uuid) -> Row {
        self.tenant = Some(tenant);
        self
    }
    fn at(mut self, now: i64) -> Row {
        self.now = now;
        self
    }
    fn ip(mut self, ip: &'static str) -> Row {
        self.ip = Some(ip);
        self
    }
    fn mfa(mut self) -> Row {
        self.mfa = true;
        self
    }
    fn risk(mut self, risk: f64) -> Row {
        self.risk = Some(risk);
        self
    }
    fn method(mut self, method: &'static str) -> Row {
        self.method = method;
        self
    }
    fn chain(mut self, chain: &'static str) -> Row {
        self.chain = Some(chain);
        self
    }
    fn allow(mut self, rules: &'static [&'static str]) -> Row {
        self.expect = Some((true, Reason::Allowed, rules));
        self
    }
    fn allow_with_grant(mut self, rules: &'static [&'static str], grant: &'static str) -> Row {
        self.expect = Some((true, Reason::Allowed, rules));
        self.grant = Some(grant);
        self
    }
    fn deny(mut self, reason: Reason) -> Row {
        self.expect = Some((false, reason, &[]));
        self
    }
    fn deny_by(mut self, reason: Reason, rules: &'static [&'static str]) -> Row {
        self.expect = Some((false, reason, rules));
        self
    }
    /// What the shadow decision says where it differs from the live one.
    fn shadow(mut self, allowed: bool, reason: Reason, rules: &'static [&'static str]) -> Row {
        self.shadow = Some((allowed, reason, rules));
        self
    }
}

/// `(allowed, reason, sorted rule ids)` of a decision.
fn summary<'a>(snap: &'a Snapshot, d: &Decision) -> (bool, Reason, Vec<&'a str>) {
    let mut rules: Vec<&str> = d.rules.iter().map(|i| snap.rule_id(i)).collect();
    rules.sort_unstable();
    (d.allowed, d.reason, rules)
}

/// Runs every row and reports every mismatch at once.
fn check(rows: Vec<Row>) {
    let pol = policy();
    let mut failures = Vec::new();
    for row in &rows {
        let pid = pol.by_name[row.principal];
        let principal = pol.snap.principal(&pid).expect("principal compiled");
        let ip: Option<IpAddr> = row.ip.map(|s| s.parse().expect("test ip parses"));
        let request = AccessRequest {
            principal,
            resource_type: row.resource_type,
            resource_id: row.resource_id,
            action: row.action,
            target_tenant: row.tenant.unwrap_or(principal.tenant),
            approval_chain: row.chain,
            context: RequestContext {
                now: row.now,
                client_ip: ip,
                method: row.method,
                mfa: row.mfa,
                risk_score: row.risk,
            },
        };
        let d = pol.snap.authorize(&request);
        let (allowed, reason, rules) = row.expect.expect("row has an expectation");
        let mut got_rules: Vec<&str> = d.rules.iter().map(|i| pol.snap.rule_id(i)).collect();
        got_rules.sort_unstable();
        let mut want_rules = rules.to_vec();
        want_rules.sort_unstable();
        let got_grant = d
            .grant
            .and_then(|g| pol.snap.grant(&pid, g))
            .map(|g| &*g.id);
        // Every row also checks the shadow decision: the one the row names,
        // else the live one (shadow rules that do not apply change nothing).
        let shadow = pol
            .snap
            .authorize_shadow(&request)
            .expect("the policy has shadow rules");
        let (s_allowed, s_reason, s_rules) = row.shadow.unwrap_or((allowed, reason, rules));
        let mut s_want = s_rules.to_vec();
        s_want.sort_unstable();
        let got_shadow = summary(&pol.snap, &shadow);
        if got_shadow != (s_allowed, s_reason, s_want.clone()) {
            failures.push(format!(
                "line {}: shadow decision got {:?}, want {:?}",
                row.line,
                got_shadow,
                (s_allowed, s_reason, s_want)
            ));
        }
        if d.allowed != allowed
            || d.reason != reason
            || got_rules != want_rules
            || got_grant != row.grant
        {
            failures.push(format!(
                "line {}: {} {} {:?} {} -> got ({}, {}, {:?}, grant {:?}), want ({}, {}, {:?}, grant {:?})",
                row.line,
                row.principal,
                row.resource_type,
                row.resource_id,
                row.action,
                d.allowed,
                d.reason.name(),
                got_rules,
                got_grant,
                allowed,
                reason.name(),
                want_rules,
                row.grant,
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

use Reason::*;

#[test]
fn rbac_inheritance_and_groups() {
    check(vec![
        // Allow, deny by default.
        req("viewer", "vessel", Some("v-a1"), "read").allow(&["vessel-read"]),
        req("viewer", "vessel", None, "read").allow(&["vessel-read"]),
        req("viewer", "vessel", Some("v-a1"), "update").deny(NoMatchingPermission),
        req("viewer", "crane", Some("c1"), "read").deny(NoMatchingPermission),
        req("norole", "vessel", Some("v-a1"), "read").deny(NoMatchingPermission),
        req("norole", "vessel", None, "read").deny(NoMatchingPermission),
        // Inheritance: operator <- viewer; admin <- operator <- viewer.
        req("operator", "vessel", Some("v-a1"), "read").allow(&["vessel-read"]),
        req("operator", "vessel", Some("v-a1"), "update").allow(&["vessel-update-va"]),
        req("operator", "vessel", Some("v-a"), "update").allow(&["vessel-update-va"]),
        req("operator", "vessel", Some("v-b1"), "update").deny(NoMatchingPermission),
        req("operator", "vessel", Some("V-A1"), "update").deny(NoMatchingPermission),
        req("operator", "vessel", Some("v-a1"), "delete").deny(NoMatchingPermission),
        req("operator", "crane", Some("c1"), "audit").deny(NoMatchingPermission),
        req("admin", "vessel", Some("v-a1"), "read").allow(&["vessel-read"]),
        req("admin", "vessel", Some("v-a1"), "update").allow(&["vessel-update-va"]),
        req("admin", "vessel", Some("v-a1"), "delete").allow(&["vessel-delete-va1"]),
        req("admin", "vessel", Some("v-a10"), "delete").deny(NoMatchingPermission),
        req("admin", "vessel", Some("v-a"), "delete").deny(NoMatchingPermission),
        // Resource type `*`.
        req("admin", "crane", Some("c1"), "audit").allow(&["any-audit"]),
        req("admin", "vessel", Some("v-a1"), "audit").allow(&["any-audit"]),
        req("admin", "crane", None, "audit").allow(&["any-audit"]),
        // Groups: `ops` grants operator (and so viewer).
        req("grouped", "vessel", Some("v-a1"), "update").allow(&["vessel-update-va"]),
        req("grouped", "vessel", Some("v-a1"), "read").allow(&["vessel-read"]),
        req("grouped", "vessel", Some("v-a1"), "delete").deny(NoMatchingPermission),
        req("grouped", "crane", Some("c1"), "audit").deny(NoMatchingPermission),
    ]);
}

#[test]
fn collections_need_a_wildcard_pattern() {
    check(vec![
        req("viewer", "vessel", None, "read").allow(&["vessel-read"]),
        // Prefix and exact patterns never cover the collection.
        req("operator", "vessel", None, "update").deny(NoMatchingPermission),
        req("admin", "vessel", None, "delete").deny(NoMatchingPermission),
        // ... but a wildcard deny does.
        req("restricted-admin", "vessel", None, "delete")
            .deny_by(ExplicitDeny, &["deny-vessel-delete"]),
        // An exact deny does not cover the collection.
        req("restricted-admin", "vessel", None, "read").allow(&["vessel-read"]),
    ]);
}

#[test]
fn deny_overrides_allow() {
    check(vec![
        req("restricted-admin", "vessel", Some("v-a1"), "delete")
            .deny_by(ExplicitDeny, &["deny-vessel-delete"]),
        req("restricted-admin", "vessel", Some("v-classified"), "read")
            .deny_by(ExplicitDeny, &["deny-classified"]),
        req("restricted-admin", "vessel", Some("v-classifiedx"), "read").allow(&["vessel-read"]),
        req("restricted-admin", "vessel", Some("v-a1"), "read").allow(&["vessel-read"]),
        req("restricted-admin", "vessel", Some("v-a1"), "update").allow(&["vessel-update-va"]),
        // A deny whose condition holds wins; one whose condition fails is ignored.
        req("abac", "report", Some("r1"), "read")
            .ip("203.0.113.7")
            .deny_by(ExplicitDeny, &["deny-report-blocked-net"]),
        req("abac", "report", Some("r1"), "read")
            .ip("10.1.1.1")
            .allow(&["report-read"]),
        req("abac", "report", Some("r1"), "read").allow(&["report-read"]),
        // A deny rule that does not apply is not a reason: with no allow rule
        // the answer is "no permission", not "condition not met".
        req("deny-only", "ledger", Some("l1"), "read").deny(NoMatchingPermission),
        req("deny-only", "ledger", Some("l1"), "read")
            .mfa()
            .deny_by(ExplicitDeny, &["deny-ledger-mfa"]),
    ]);
}

#[test]
fn attribute_conditions() {
    let d = Some("d1");
    check(vec![
        // eq
        req("abac", "doc-eq", d, "read").allow(&["cond-eq"]),
        req("abac-other", "doc-eq", d, "read").deny(ConditionNotMet),
        req("noattr", "doc-eq", d, "read").deny(ConditionNotMet),
        // ne: a missing attribute does not hold, even for a negative operator.
        req("abac", "doc-ne", d, "read").allow(&["cond-ne"]),
        req("abac-other", "doc-ne", d, "read").deny(ConditionNotMet),
        req("noattr", "doc-ne", d, "read").deny(ConditionNotMet),
        // in / not_in
        req("abac", "doc-in", d, "read").allow(&["cond-in"]),
        req("abac-other", "doc-in", d, "read").deny(ConditionNotMet),
        req("noattr", "doc-in", d, "read").deny(ConditionNotMet),
        req("abac", "doc-not-in", d, "read").allow(&["cond-not-in"]),
        req("abac-other", "doc-not-in", d, "read").deny(ConditionNotMet),
        req("noattr", "doc-not-in", d, "read").deny(ConditionNotMet),
        // gte / lt on numbers; a non-number attribute does not hold.
        req("abac", "doc-gte", d, "read").allow(&["cond-gte"]),
        req("abac-other", "doc-gte", d, "read").deny(ConditionNotMet),
        req("noattr", "doc-gte", d, "read").deny(ConditionNotMet),
        req("float-attr", "doc-gte", d, "read").allow(&["cond-gte"]),
        req("abac-other", "doc-lt", d, "read").allow(&["cond-lt"]),
        req("abac", "doc-lt", d, "read").deny(ConditionNotMet),
        // eq on numbers compares values, not representations (3 == 3.0).
        req("abac", "doc-num-eq", d, "read").allow(&["cond-num-eq"]),
        req("float-attr", "doc-num-eq", d, "read").allow(&["cond-num-eq"]),
        req("abac-other", "doc-num-eq", d, "read").deny(ConditionNotMet),
        // contains on an array attribute
        req("abac", "doc-contains", d, "read").allow(&["cond-contains"]),
        req("abac-other", "doc-contains", d, "read").deny(ConditionNotMet),
        req("noattr", "doc-contains", d, "read").deny(ConditionNotMet),
    ]);
}

#[test]
fn request_context_conditions() {
    let d = Some("d1");
    let mon = WED - 2 * DAY;
    check(vec![
        // client_ip: IPv4, IPv6, v4-mapped IPv6 against a v4 CIDR, missing IP.
        req("abac", "doc-ip", d, "read")
            .ip("10.1.2.3")
            .allow(&["cond-ip"]),
        req("abac", "doc-ip", d, "read")
            .ip("11.1.2.3")
            .deny(ConditionNotMet),
        req("abac", "doc-ip", d, "read").deny(ConditionNotMet),
        req("abac", "doc-ip", d, "read")
            .ip("2001:db8::1")
            .allow(&["cond-ip"]),
        req("abac", "doc-ip", d, "read")
            .ip("2001:db9::1")
            .deny(ConditionNotMet),
        req("abac", "doc-ip", d, "read")
            .ip("::ffff:10.1.2.3")
            .allow(&["cond-ip"]),
        req("abac", "doc-ip", d, "read")
            .ip("::ffff:11.1.2.3")
            .deny(ConditionNotMet),
        // A CIDR written in v4-mapped form covers plain IPv4 clients too.
        req("abac", "doc-ip-mapped", d, "read")
            .ip("192.168.1.1")
            .allow(&["cond-ip-mapped"]),
        req("abac", "doc-ip-mapped", d, "read")
            .ip("::ffff:192.168.1.1")
            .allow(&["cond-ip-mapped"]),
        req("abac", "doc-ip-mapped", d, "read")
            .ip("192.169.1.1")
            .deny(ConditionNotMet),
        // mfa
        req("abac", "doc-mfa", d, "read").mfa().allow(&["cond-mfa"]),
        req("abac", "doc-mfa", d, "read").deny(ConditionNotMet),
        // hours [9, 17)
        req("abac", "doc-hours", d, "read").allow(&["cond-hours"]),
        req("abac", "doc-hours", d, "read")
            .at(WED + 9 * H)
            .allow(&["cond-hours"]),
        req("abac", "doc-hours", d, "read")
            .at(WED + 17 * H - 1)
            .allow(&["cond-hours"]),
        req("abac", "doc-hours", d, "read")
            .at(WED + 17 * H)
            .deny(ConditionNotMet),
        req("abac", "doc-hours", d, "read")
            .at(WED + 9 * H - 1)
            .deny(ConditionNotMet),
        // hours [22, 6): wraps past midnight
        req("abac", "doc-night", d, "read")
            .at(WED + 23 * H)
            .allow(&["cond-night"]),
        req("abac", "doc-night", d, "read")
            .at(WED + 22 * H)
            .allow(&["cond-night"]),
        req("abac", "doc-night", d, "read")
            .at(WED + 3 * H)
            .allow(&["cond-night"]),
        req("abac", "doc-night", d, "read")
            .at(WED)
            .allow(&["cond-night"]),
        req("abac", "doc-night", d, "read")
            .at(WED + 6 * H)
            .deny(ConditionNotMet),
        req("abac", "doc-night", d, "read")
            .at(WED + 22 * H - 1)
            .deny(ConditionNotMet),
        req("abac", "doc-night", d, "read").deny(ConditionNotMet),
        // weekdays mon..fri
        req("abac", "doc-weekdays", d, "read").allow(&["cond-weekdays"]),
        req("abac", "doc-weekdays", d, "read")
            .at(mon)
            .allow(&["cond-weekdays"]),
        req("abac", "doc-weekdays", d, "read")
            .at(mon - 1)
            .deny(ConditionNotMet),
        req("abac", "doc-weekdays", d, "read")
            .at(WED + 3 * DAY - 1)
            .allow(&["cond-weekdays"]),
        req("abac", "doc-weekdays", d, "read")
            .at(WED + 3 * DAY)
            .deny(ConditionNotMet),
        req("abac", "doc-weekdays", d, "read")
            .at(NOW + 3 * DAY)
            .deny(ConditionNotMet),
        req("abac", "doc-weekdays", d, "read")
            .at(NOW + 4 * DAY)
            .deny(ConditionNotMet),
        // risk: at most 0.5; a request without a score does not (fail closed)
        req("abac", "doc-risk", d, "read")
            .risk(0.2)
            .allow(&["cond-risk"]),
        req("abac", "doc-risk", d, "read")
            .risk(0.5)
            .allow(&["cond-risk"]),
        req("abac", "doc-risk", d, "read").deny(ConditionNotMet),
        req("abac", "doc-risk", d, "read")
            .risk(0.51)
            .deny(ConditionNotMet),
        req("abac", "doc-risk", d, "read")
            .risk(f64::NAN)
            .deny(ConditionNotMet),
        // `on_missing = "allow"`: only the absent score changes; a known score
        // still has to be low enough
        req("abac", "doc-risk-lenient", d, "read").allow(&["cond-risk-lenient"]),
        req("abac", "doc-risk-lenient", d, "read")
            .risk(0.5)
            .allow(&["cond-risk-lenient"]),
        req("abac", "doc-risk-lenient", d, "read")
            .risk(0.51)
            .deny(ConditionNotMet),
        req("abac", "doc-risk-lenient", d, "read")
            .risk(f64::NAN)
            .deny(ConditionNotMet),
        // shadow rules never decide; the shadow decision shows what they would do
        req("abac", "doc-shadow", d, "read")
            .allow(&["doc-shadow-live"])
            .shadow(false, ExplicitDeny, &["doc-shadow-deny"]),
        req("abac", "doc-shadow", d, "update")
            .deny(NoMatchingPermission)
            .shadow(true, Allowed, &["doc-shadow-new"]),
        req("abac", "doc-shadow", d, "delete").deny(NoMatchingPermission),
        // a principal without the role: no shadow rule applies to it
        req("viewer", "doc-shadow", d, "update").deny(NoMatchingPermission),
        // method
        req("abac", "doc-method", d, "read").allow(&["cond-method"]),
        req("abac", "doc-method", d, "read")
            .method("HEAD")
            .allow(&["cond-method"]),
        req("abac", "doc-method", d, "read")
            .method("POST")
            .deny(ConditionNotMet),
        req("abac", "doc-method", d, "read")
            .method("get")
            .deny(ConditionNotMet),
        // every condition must hold
        req("abac", "doc-multi", d, "read")
            .mfa()
            .ip("10.0.0.1")
            .allow(&["cond-multi"]),
        req("abac", "doc-multi", d, "read")
            .mfa()
            .deny(ConditionNotMet),
        req("abac", "doc-multi", d, "read")
            .ip("10.0.0.1")
            .deny(ConditionNotMet),
    ]);
}

#[test]
fn tenant_scopes() {
    check(vec![
        // own_and_children reaches the sub-tenant, own does not.
        req("regional", "site", Some("s1"), "read").allow(&["site-read-children"]),
        req("regional", "site", Some("s1"), "read")
            .on(S)
            .allow(&["site-read-children"]),
        req("regional", "site", Some("s1"), "update").allow(&["site-update-own"]),
        req("regional", "site", Some("s1"), "update")
            .on(S)
            .deny(TenantOutOfScope),
        // Never upwards, never sideways.
        req("sub-user", "site", Some("s1"), "read").allow(&["site-read-children"]),
        req("sub-user", "site", Some("s1"), "read")
            .on(A)
            .deny(TenantOutOfScope),
        req("regional", "site", Some("s1"), "read")
            .on(B)
            .deny(TenantOutOfScope),
        // Cross-tenant is denied.
        req("viewer", "vessel", Some("v1"), "read")
            .on(B)
            .deny(TenantOutOfScope),
        req("b-user", "vessel", Some("v1"), "read")
            .on(A)
            .deny(TenantOutOfScope),
        req("b-user", "vessel", Some("v1"), "read").allow(&["vessel-read"]),
        // An unknown tenant answers exactly like another tenant.
        req("viewer", "vessel", Some("v1"), "read")
            .on(UNKNOWN)
            .deny(TenantOutOfScope),
        req("norole", "vessel", Some("v1"), "read")
            .on(B)
            .deny(NoMatchingPermission),
        req("norole", "vessel", Some("v1"), "read")
            .on(UNKNOWN)
            .deny(NoMatchingPermission),
        req("regional", "site", Some("s1"), "update")
            .on(UNKNOWN)
            .deny(TenantOutOfScope),
        // Platform principals with `any` reach every tenant ...
        req("platform", "crane", Some("c1"), "delete")
            .on(A)
            .allow(&["all-any"]),
        req("platform", "crane", Some("c1"), "delete")
            .on(B)
            .allow(&["all-any"]),
        req("platform", "crane", Some("c1"), "delete")
            .on(S)
            .allow(&["all-any"]),
        req("platform", "crane", None, "delete").allow(&["all-any"]),
        req("platform", "crane", Some("c1"), "delete")
            .on(UNKNOWN)
            .deny(TenantOutOfScope),
        // ... a platform principal with `own` does not.
        req("platform-own", "vessel", Some("v1"), "read").allow(&["platform-vessel-own"]),
        req("platform-own", "vessel", Some("v1"), "read")
            .on(A)
            .deny(TenantOutOfScope),
        // `any` is honoured only for principals of the platform tenant.
        req("any-holder", "gadget", Some("g1"), "read").allow(&["gadget-any"]),
        req("any-holder", "gadget", Some("g1"), "read")
            .on(B)
            .deny(TenantOutOfScope),
    ]);
}

#[test]
fn suspended_locked_inactive() {
    check(vec![
        // The caller's tenant is suspended.
        req("suspended-user", "vessel", Some("v1"), "read").deny(TenantSuspended),
        // The target tenant is suspended.
        req("regional", "site", Some("s1"), "read")
            .on(SS)
            .deny(TenantSuspended),
        req("platform", "crane", Some("c1"), "read")
            .on(X)
            .deny(TenantSuspended),
        // Locked, locked until a time, inactive.
        req("locked", "vessel", Some("v1"), "read").deny(AccountLocked),
        req("locked-until", "vessel", Some("v1"), "read").deny(AccountLocked),
        req("locked-until", "vessel", Some("v1"), "read")
            .at(NOW + H - 1)
            .deny(AccountLocked),
        req("locked-until", "vessel", Some("v1"), "read")
            .at(NOW + H)
            .allow(&["vessel-read"]),
        req("lock-expired", "vessel", Some("v1"), "read").allow(&["vessel-read"]),
        req("inactive", "vessel", Some("v1"), "read").deny(AccountInactive),
    ]);
}

#[test]
fn approval_chains() {
    let c = "pay-chain";
    check(vec![
        // A valid grant for this chain.
        req("payer", "payment", Some("pay-1"), "approve")
            .chain(c)
            .allow_with_grant(&["payment-approve"], "g-valid"),
        // Without an approval requirement no grant is needed (nor reported).
        req("payer", "payment", Some("pay-1"), "approve").allow(&["payment-approve"]),
        req("payer", "payment", Some("pay-6"), "approve").allow(&["payment-approve"]),
        // Expired (also exactly at `expires_at`), not yet valid, wrong chain, none.
        req("payer", "payment", Some("pay-2"), "approve")
            .chain(c)
            .deny_by(ApprovalRequired, &["payment-approve"]),
        req("payer", "payment", Some("pay-1"), "approve")
            .chain(c)
            .at(NOW + H)
            .deny_by(ApprovalRequired, &["payment-approve"]),
        req("payer", "payment", Some("pay-3"), "approve")
            .chain(c)
            .deny_by(ApprovalRequired, &["payment-approve"]),
        req("payer", "payment", Some("pay-3"), "approve")
            .chain(c)
            .at(NOW + H)
            .allow_with_grant(&["payment-approve"], "g-future"),
        req("payer", "payment", Some("pay-4"), "approve")
            .chain(c)
            .deny_by(ApprovalRequired, &["payment-approve"]),
        req("payer", "payment", Some("pay-4"), "approve")
            .chain("other-chain")
            .allow_with_grant(&["payment-approve"], "g-wrong-chain"),
        req("payer", "payment", Some("pay-6"), "approve")
            .chain(c)
            .deny_by(ApprovalRequired, &["payment-approve"]),
        // A grant without a chain satisfies any chain.
        req("payer", "payment", Some("pay-5"), "approve")
            .chain(c)
            .allow_with_grant(&["payment-approve"], "g-any-chain"),
        // A grant on one id does not cover the collection.
        req("payer", "payment", None, "approve")
            .chain(c)
            .deny_by(ApprovalRequired, &["payment-approve"]),
        // A grant never replaces a permission.
        req("admin", "payment", Some("pay-1"), "approve")
            .chain(c)
            .deny(NoMatchingPermission),
    ]);
}

#[test]
fn snapshot_accessors() {
    let pol = policy();
    let snap = &pol.snap;
    assert_eq!(snap.version(), 7);
    let admin = snap.principal(&pol.by_name["admin"]).unwrap();
    let mut roles: Vec<&str> = snap.role_ids(admin).collect();
    roles.sort_unstable();
    assert_eq!(roles, ["admin", "operator", "viewer"]);
    assert_eq!(admin.role_names.split(',').count(), 3);
    let grouped = snap.principal(&pol.by_name["grouped"]).unwrap();
    let mut names: Vec<&str> = snap.role_names(grouped).collect();
    names.sort_unstable();
    assert_eq!(names, ["Operator", "Viewer"]);
    assert!(snap.is_same_or_descendant(&S, &A));
    assert!(snap.is_same_or_descendant(&A, &A));
    assert!(!snap.is_same_or_descendant(&A, &S));
    assert!(!snap.is_same_or_descendant(&B, &A));
    assert_eq!(snap.tenant(&S).unwrap().ancestors.as_ref(), [A]);
    assert_eq!(snap.tenant(&PLATFORM).unwrap().code.as_ref(), "PLATFORM");
    assert_eq!(snap.stats().grants, 5);
    assert_eq!(sentinel_policy::default_action("GET"), Some("read"));
    assert_eq!(sentinel_policy::default_action("HEAD"), Some("read"));
    assert_eq!(sentinel_policy::default_action("POST"), Some("create"));
    assert_eq!(sentinel_policy::default_action("PUT"), Some("update"));
    assert_eq!(sentinel_policy::default_action("PATCH"), Some("update"));
    assert_eq!(sentinel_policy::default_action("DELETE"), Some("delete"));
    assert_eq!(sentinel_policy::default_action("OPTIONS"), None);
}

#[test]
fn empty_snapshot_denies_everything() {
    let pol = policy();
    let principal = pol.snap.principal(&pol.by_name["admin"]).unwrap();
    let empty = Snapshot::empty();
    let d = empty.authorize(&AccessRequest {
        principal,
        resource_type: "vessel",
        resource_id: Some("v-a1"),
        action: "read",
        target_tenant: A,
        approval_chain: None,
        context: RequestContext {
            now: NOW,
            client_ip: None,
            method: "GET",
            mfa: false,
            risk_score: None,
        },
    });
    assert!(!d.allowed);
}

#[test]
fn many_deciding_rules_are_all_reported() {
    // More allow rules than RuleIds keeps inline: every one is reported once.
    let mut src = PolicySource::default();
    src.tenants.push(
        toml::from_str(
            r#"id = "11111111-1111-1111-1111-111111111111"
code = "A""#,
        )
        .unwrap(),
    );
    let mut role_perms = Vec::new();
    for i in 0..10 {
        src.permissions.push(
            toml::from_str(&format!(
                "id = \"p{i}\"\nresource_type = \"vessel\"\nactions = [\"read\"]"
            ))
            .unwrap(),
        );
        role_perms.push(format!("\"p{i}\""));
    }
    src.roles.push(
        toml::from_str(&format!(
            "id = \"r\"\nname = \"R\"\npermissions = [{}]",
            role_perms.join(",")
        ))
        .unwrap(),
    );
    // Two paths to the same role: directly and via inheritance.
    src.roles
        .push(toml::from_str("id = \"child\"\nname = \"C\"\nparent = \"r\"").unwrap());
    src.principals.push(
        toml::from_str(
            r#"id = "a0000000-0000-0000-0000-000000000001"
tenant = "11111111-1111-1111-1111-111111111111"
roles = ["r", "child"]"#,
        )
        .unwrap(),
    );
    let snap = compile(&src).unwrap();
    let p = snap
        .principal(&Uuid::from_u128(0xa0000000_0000_0000_0000_000000000001))
        .unwrap();
    let d = snap.authorize(&AccessRequest {
        principal: p,
        resource_type: "vessel",
        resource_id: Some("v1"),
        action: "read",
        target_tenant: A,
        approval_chain: None,
        context: RequestContext {
            now: NOW,
            client_ip: None,
            method: "GET",
            mfa: false,
            risk_score: None,
        },
    });
    assert!(d.allowed);
    let mut ids: Vec<&str> = d.rules.iter().map(|i| snap.rule_id(i)).collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        ["p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8", "p9"]
    );
    assert_eq!(d.rules.len(), 10);
    assert_eq!(snap.role_ids(p).count(), 2);
}

#[test]
fn a_shadow_file_makes_each_of_its_permissions_shadow() {
    let base: PolicySource = toml::from_str(
        r#"
[[tenants]]
id = "11111111-1111-1111-1111-111111111111"
code = "T"

[[roles]]
id = "r"
name = "r"
permissions = ["live", "proposed"]

[[permissions]]
id = "live"
resource_type = "doc"
actions = ["read"]

[[principals]]
id = "a0000000-0000-0000-0000-000000000001"
tenant = "11111111-1111-1111-1111-111111111111"
roles = ["r"]
"#,
    )
    .expect("base parses");
    let proposed: PolicySource = toml::from_str(
        r#"
mode = "shadow"

[[permissions]]
id = "proposed"
effect = "deny"
resource_type = "doc"
actions = ["read"]
"#,
    )
    .expect("shadow file parses");
    let mut merged = PolicySource::default();
    merged.merge(base.clone());
    merged.merge(proposed.clone());
    // The mode went to the file's permissions, not to the merged whole.
    assert!(merged.mode.is_enforce());
    let snap = compile(&merged).expect("compiles");
    let pid: Uuid = "a0000000-0000-0000-0000-000000000001".parse().unwrap();
    let principal = snap.principal(&pid).unwrap();
    let request = AccessRequest {
        principal,
        resource_type: "doc",
        resource_id: None,
        action: "read",
        target_tenant: principal.tenant,
        approval_chain: None,
        context: RequestContext {
            now: NOW,
            client_ip: None,
            method: "GET",
            mfa: false,
            risk_score: None,
        },
    };
    assert_eq!(
        summary(&snap, &snap.authorize(&request)),
        (true, Allowed, vec!["live"])
    );
    let shadow = snap.authorize_shadow(&request).unwrap();
    assert_eq!(
        summary(&snap, &shadow),
        (false, ExplicitDeny, vec!["proposed"])
    );
    // The same rule in an ordinary file is live.
    let mut live = proposed;
    live.mode = Default::default();
    let mut merged = PolicySource::default();
    merged.merge(base);
    merged.merge(live);
    let snap = compile(&merged).expect("compiles");
    let principal = snap.principal(&pid).unwrap();
    let request = AccessRequest {
        principal,
        ..request
    };
    assert!(!snap.authorize(&request).allowed);
    // No shadow rule: nothing is evaluated a second time.
    assert!(!snap.has_shadow_rules());
    assert!(snap.authorize_shadow(&request).is_none());
}

#[test]
fn explain_names_the_first_failing_condition_of_each_covering_allow_rule() {
    let pol = policy();
    let pid = pol.by_name["abac"];
    let principal = pol.snap.principal(&pid).unwrap();
    let failed = |resource_type: &'static str, mfa: bool, ip: Option<&str>| {
        let request = AccessRequest {
            principal,
            resource_type,
            resource_id: None,
            action: "read",
            target_tenant: principal.tenant,
            approval_chain: None,
            context: RequestContext {
                now: NOW,
                client_ip: ip.map(|s| s.parse().unwrap()),
                method: "GET",
                mfa,
                risk_score: None,
            },
        };
        pol.snap
            .failed_conditions(&request)
            .into_iter()
            .map(|f| format!("{}:{}", pol.snap.rule_id(f.rule), f.condition))
            .collect::<Vec<_>>()
    };
    // mfa first, then the client address.
    assert_eq!(failed("doc-multi", false, None), ["cond-multi:mfa"]);
    assert_eq!(failed("doc-multi", true, None), ["cond-multi:client_ip"]);
    assert!(failed("doc-multi", true, Some("10.1.2.3")).is_empty());
    assert_eq!(failed("doc-risk", false, None), ["cond-risk:risk"]);
    // Conditions that hold explain nothing either.
    assert!(failed("doc-eq", false, None).is_empty());
    // Shadow rules and deny rules explain nothing; no rule, nothing to say.
    assert!(failed("doc-shadow", false, None).is_empty());
    assert!(failed("no-such-type", false, None).is_empty());
}

#[test]
fn what_if_replays_records_and_groups_the_flips() {
    use sentinel_policy::whatif::{Flip, Replay, Skip};
    let pol = policy();
    let abac = pol.by_name["abac"];
    let viewer = pol.by_name["viewer"];
    let line = |who: Uuid, ty: &str, action: &str, extra: &str| {
        format!(
            r#"{{"principal_id":"{who}","resource":"{ty}","action":"{action}","time":"2026-12-09T12:00:00Z"{extra}}}"#
        )
    };
    // Against itself with recorded decisions that disagree: the recorded
    // side is what the log says, the proposed side is decided.
    let mut replay = Replay::new(&pol.snap, None);
    for l in [
        // recorded allowed, decided denied (no mfa): allow -> deny
        line(
            abac,
            "doc-mfa",
            "read",
            r#","reason":"allowed","rules":["cond-mfa"]"#,
        ),
        // recorded denied, decided allowed (mfa in the request form)
        line(abac, "doc-mfa", "read", r#","mfa":true,"allowed":false"#),
        // agreeing
        line(viewer, "vessel", "read", r#","reason":"allowed""#),
        // a principal the proposal lacks: every allowed record of it flips
        line(Uuid::nil(), "vessel", "read", r#","allowed":true"#),
        // not a policy decision, no baseline, malformed, no principal
        line(
            viewer,
            "vessel",
            "read",
            r#","reason":"invalid credentials""#,
        ),
        line(viewer, "vessel", "read", ""),
        "not json".to_owned(),
        r#"{"resource":"vessel","action":"read"}"#.to_owned(),
        String::new(),
    ] {
        replay.line(l.as_bytes());
    }
    let report = replay.finish();
    assert_eq!(report.lines, 8, "the blank line is not one");
    assert_eq!(report.replayed, 4);
    assert_eq!(report.flipped(), 3);
    let skipped = |s: Skip| report.skipped.get(&s).copied().unwrap_or(0);
    assert_eq!(skipped(Skip::NotAPolicyDecision), 1);
    assert_eq!(skipped(Skip::NoBaseline), 1);
    assert_eq!(skipped(Skip::Malformed), 1);
    assert_eq!(skipped(Skip::NotADecision), 1);
    // "In neither policy" needs a current policy to say so.
    assert_eq!(skipped(Skip::UnknownPrincipal), 0);
    let groups = report.groups();
    let summary: Vec<(Flip, &str, &str, u64)> = groups
        .iter()
        .map(|(g, n, _)| (g.flip, g.rules.as_str(), g.reason, *n))
        .collect();
    assert_eq!(
        summary,
        [
            (Flip::AllowToDeny, "(none)", "principal_removed", 1),
            // No deny rule decided: the recorded allowing rule explains it.
            (Flip::AllowToDeny, "cond-mfa", "condition_not_met", 1),
            (Flip::DenyToAllow, "cond-mfa", "allowed", 1),
        ]
    );
    assert_eq!(groups[1].2, [(abac, 1)]);

    // With a current policy, a principal in neither is skipped.
    let mut replay = Replay::new(&pol.snap, Some(&pol.snap));
    replay.line(line(Uuid::nil(), "vessel", "read", "").as_bytes());
    replay.line(line(abac, "doc-mfa", "read", "").as_bytes());
    let report = replay.finish();
    assert_eq!(report.skipped.get(&Skip::UnknownPrincipal), Some(&1));
    assert_eq!((report.replayed, report.flipped()), (1, 0));
}
