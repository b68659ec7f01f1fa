//! What-if: replays recorded requests through a proposed policy and
//! reports every decision that would flip, grouped by rule and principal
//! (`sentinel what-if`, docs/policy.md "What-if").
//!
//! A record is one JSON object per line with the audit event's field names
//! (docs/audit.md), so an export of `/api/v1/audit/export?format=jsonl`, a
//! gateway's spool and a hand-written list of requests all replay the same
//! way. Pure: the caller reads the file and hands over lines.

use crate::eval::{AccessRequest, Decision, Reason, RequestContext};
use crate::model::Snapshot;
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;
use uuid::Uuid;

/// One record: an audit event (`principal_id`, `tenant_id`, `resource`,
/// `resource_id`, `action`, `method`, `client_ip`, `risk_score`, `time`,
/// and the recorded `outcome`/`reason`/`rules`), or a request in the same
/// names with the optional `mfa`, `approval_chain` and `allowed`. Every
/// other field of a line is ignored. Callers that read records from
/// elsewhere (the admin API, from `audit_logs`) build one directly and hand
/// it to [`Replay::record`].
#[derive(Debug, Default, Deserialize)]
pub struct Recorded<'a> {
    #[serde(borrow)]
    pub principal_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub tenant_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub resource: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub resource_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub action: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub method: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub client_ip: Option<Cow<'a, str>>,
    pub risk_score: Option<f64>,
    /// RFC 3339 (`unix_seconds`).
    #[serde(borrow)]
    pub time: Option<Cow<'a, str>>,
    /// The time as Unix seconds, for callers that hold it parsed; takes
    /// precedence over `time`. Never read from a line.
    #[serde(skip)]
    pub unix_time: Option<i64>,
    pub mfa: Option<bool>,
    #[serde(borrow)]
    pub approval_chain: Option<Cow<'a, str>>,
    /// Requests: the decision recorded for them, if any.
    pub allowed: Option<bool>,
    /// Audit events: the live decision's reason (`allowed`, `explicit_deny`, …).
    #[serde(borrow)]
    pub reason: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub rules: Option<Vec<Cow<'a, str>>>,
}

/// Which way a decision flipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Flip {
    AllowToDeny,
    DenyToAllow,
}

impl Flip {
    pub fn as_str(self) -> &'static str {
        match self {
            Flip::AllowToDeny => "allow -> deny",
            Flip::DenyToAllow => "deny -> allow",
        }
    }
}

/// Why a line was not replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Skip {
    /// Not JSON, or not an object of the record's shape.
    Malformed,
    /// No principal, resource or action: a request that never reached the
    /// policy decision (unauthenticated, rate-limited, a public route).
    NotADecision,
    /// The recorded reason is not a decision's (an authentication failure,
    /// a risk step-up, a rate limit), so there is nothing to compare.
    NotAPolicyDecision,
    /// The principal is in neither policy.
    UnknownPrincipal,
    /// No `--current` policy and no decision recorded on the line.
    NoBaseline,
}

impl Skip {
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::Malformed => "malformed line",
            Skip::NotADecision => "no principal, resource or action",
            Skip::NotAPolicyDecision => "not a policy decision",
            Skip::UnknownPrincipal => "principal in neither policy",
            Skip::NoBaseline => "no recorded or current decision",
        }
    }
}

/// A group of flips: the direction, the rules that explain it (the new
/// decision's deciding rules, else the old one's) and the new reason.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Group {
    pub flip: Flip,
    /// Rule ids, comma-separated (`(none)` when no rule decided either way).
    pub rules: String,
    /// The proposed decision's reason (`Reason::name`, or `principal_removed`).
    pub reason: &'static str,
}

/// A group's flips: the group, its total, and its principals with theirs
/// (most first).
pub type GroupCount<'r> = (&'r Group, u64, Vec<(Uuid, u64)>);

/// What a replay found.
#[derive(Debug, Default)]
pub struct Report {
    pub lines: u64,
    pub replayed: u64,
    pub skipped: HashMap<Skip, u64>,
    /// Flips per group and principal.
    pub flips: HashMap<Group, HashMap<Uuid, u64>>,
}

impl Report {
    pub fn flipped(&self) -> u64 {
        self.flips.values().flat_map(|p| p.values()).sum()
    }

    /// Flips in one direction.
    pub fn flipped_to(&self, flip: Flip) -> u64 {
        self.flips
            .iter()
            .filter(|(g, _)| g.flip == flip)
            .flat_map(|(_, p)| p.values())
            .sum()
    }

    /// The report as one JSON object: `lines`, `replayed`, `flipped`,
    /// `allow_to_deny`, `deny_to_allow`, `skipped` (count by cause) and
    /// `groups[]` (`flip`, `rules`, `reason`, `count`, `principals[]` with
    /// `id`, `name`, `count`), in [`Report::groups`] order. The one shape of
    /// `sentinel what-if --json` and of the admin API's
    /// `POST /api/v1/policy/what-if`; `name_of` names a principal (empty
    /// when unknown).
    pub fn to_json(&self, name_of: impl Fn(&Uuid) -> String) -> serde_json::Value {
        let mut skipped = serde_json::Map::new();
        let mut causes: Vec<_> = self.skipped.iter().collect();
        causes.sort();
        for (why, n) in causes {
            skipped.insert(why.as_str().to_owned(), (*n).into());
        }
        let groups: Vec<serde_json::Value> = self
            .groups()
            .into_iter()
            .map(|(g, count, principals)| {
                serde_json::json!({
                    "flip": g.flip.as_str(),
                    "rules": g.rules,
                    "reason": g.reason,
                    "count": count,
                    "principals": principals.iter().map(|(p, n)| serde_json::json!({
                        "id": p, "name": name_of(p), "count": n
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        serde_json::json!({
            "lines": self.lines,
            "replayed": self.replayed,
            "flipped": self.flipped(),
            "allow_to_deny": self.flipped_to(Flip::AllowToDeny),
            "deny_to_allow": self.flipped_to(Flip::DenyToAllow),
            "skipped": skipped,
            "groups": groups,
        })
    }

    /// The groups, most flips first, each with its principals, most first.
    pub fn groups(&self) -> Vec<GroupCount<'_>> {
        let mut out: Vec<_> = self
            .flips
            .iter()
            .map(|(g, by)| {
                let mut ps: Vec<(Uuid, u64)> = by.iter().map(|(p, n)| (*p, *n)).collect();
                ps.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                (g, by.values().sum::<u64>(), ps)
            })
            .collect();
        out.sort_by(|a, b| {
            a.0.flip
                .cmp(&b.0.flip)
                .then(b.1.cmp(&a.1))
                .then(a.0.cmp(b.0))
        });
        out
    }
}

/// Replays lines through `proposed`, comparing each decision with the one
/// `current` makes (when given) or the one the line recorded.
pub struct Replay<'s> {
    proposed: &'s Snapshot,
    current: Option<&'s Snapshot>,
    report: Report,
}

impl<'s> Replay<'s> {
    pub fn new(proposed: &'s Snapshot, current: Option<&'s Snapshot>) -> Self {
        Replay {
            proposed,
            current,
            report: Report::default(),
        }
    }

    pub fn finish(self) -> Report {
        self.report
    }

    /// Replays one line (blank lines are not counted).
    pub fn line(&mut self, line: &[u8]) {
        let line = line.trim_ascii();
        if line.is_empty() {
            return;
        }
        self.report.lines += 1;
        let outcome = serde_json::from_slice::<Recorded<'_>>(line)
            .map_err(|_| Skip::Malformed)
            .and_then(|r| self.replay(&r));
        if let Err(skip) = outcome {
            *self.report.skipped.entry(skip).or_default() += 1;
        }
    }

    /// Replays one record (counted as a line).
    pub fn record(&mut self, r: &Recorded<'_>) {
        self.report.lines += 1;
        if let Err(skip) = self.replay(r) {
            *self.report.skipped.entry(skip).or_default() += 1;
        }
    }

    fn replay(&mut self, r: &Recorded<'_>) -> Result<(), Skip> {
        let (Some(principal), Some(resource_type), Some(action)) = (
            r.principal_id.as_deref(),
            r.resource.as_deref(),
            r.action.as_deref(),
        ) else {
            return Err(Skip::NotADecision);
        };
        let recorded: Option<bool> = match (r.allowed, r.reason.as_deref()) {
            (Some(a), _) => Some(a),
            (None, Some(reason)) => match reason_named(reason) {
                Some(reason) => Some(reason == Reason::Allowed),
                None => return Err(Skip::NotAPolicyDecision),
            },
            (None, None) => None,
        };
        let pid = Uuid::parse_str(principal).map_err(|_| Skip::UnknownPrincipal)?;
        let now = r
            .unix_time
            .or_else(|| r.time.as_deref().and_then(unix_seconds))
            .unwrap_or(0);
        let client_ip: Option<IpAddr> = r.client_ip.as_deref().and_then(|s| s.parse().ok());
        let target = |p: &crate::Principal| {
            r.tenant_id
                .as_deref()
                .and_then(|t| Uuid::parse_str(t).ok())
                .unwrap_or(p.tenant)
        };
        let decide = |snap: &Snapshot| -> Option<Decision> {
            let p = snap.principal(&pid)?;
            Some(snap.authorize(&AccessRequest {
                principal: p,
                resource_type,
                resource_id: r.resource_id.as_deref(),
                action,
                target_tenant: target(p),
                approval_chain: r.approval_chain.as_deref(),
                context: RequestContext {
                    now,
                    client_ip,
                    method: r.method.as_deref().unwrap_or("GET"),
                    mfa: r.mfa.unwrap_or(false),
                    risk_score: r.risk_score,
                },
            }))
        };
        let (before, before_rules): (bool, Vec<String>) = match self.current {
            Some(cur) => match decide(cur) {
                Some(d) => (d.allowed, rule_ids(cur, &d)),
                None if self.proposed.principal(&pid).is_none() => {
                    return Err(Skip::UnknownPrincipal)
                }
                // A principal the proposal adds could not call before.
                None => (false, Vec::new()),
            },
            None => match recorded {
                Some(a) => (
                    a,
                    r.rules
                        .iter()
                        .flatten()
                        .map(|s| s.clone().into_owned())
                        .collect(),
                ),
                None => return Err(Skip::NoBaseline),
            },
        };
        self.report.replayed += 1;
        let after = decide(self.proposed);
        let (allowed, reason, rules) = match &after {
            Some(d) => (d.allowed, d.reason.name(), rule_ids(self.proposed, d)),
            None => (false, "principal_removed", Vec::new()),
        };
        if allowed == before {
            return Ok(());
        }
        let flip = if allowed {
            Flip::DenyToAllow
        } else {
            Flip::AllowToDeny
        };
        // The new deciding rules explain a flip; an allow that lost its
        // rule is explained by the rules that allowed it before.
        let explaining = if rules.is_empty() {
            before_rules
        } else {
            rules
        };
        let group = Group {
            flip,
            rules: if explaining.is_empty() {
                "(none)".to_owned()
            } else {
                explaining.join(",")
            },
            reason,
        };
        *self
            .report
            .flips
            .entry(group)
            .or_default()
            .entry(pid)
            .or_default() += 1;
        Ok(())
    }
}

fn rule_ids(snap: &Snapshot, d: &Decision) -> Vec<String> {
    let mut ids: Vec<String> = d.rules.iter().map(|i| snap.rule_id(i).to_owned()).collect();
    ids.sort_unstable();
    ids
}

/// The reason with this machine name (`Reason::name`).
pub fn reason_named(name: &str) -> Option<Reason> {
    use Reason::*;
    [
        Allowed,
        ExplicitDeny,
        NoMatchingPermission,
        ConditionNotMet,
        TenantOutOfScope,
        TenantSuspended,
        AccountLocked,
        AccountInactive,
        ApprovalRequired,
    ]
    .into_iter()
    .find(|r| r.name() == name)
}

/// Unix seconds of an RFC 3339 UTC time (`2026-12-07T14:03:11.123Z`, or
/// with a `+00:00` offset); fractions are dropped. `None` when it is not one.
pub fn unix_seconds(t: &str) -> Option<i64> {
    let b = t.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { t.get(r)?.parse().ok() };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = t.get(19..)?;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" | "+00:00" | "-00:00" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let oh: i64 = rest.get(1..3)?.parse().ok()?;
            let om: i64 = rest.get(4..6)?.parse().ok()?;
            sign * (oh * 3600 + om * 60)
        }
    };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s - offset)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times() {
        assert_eq!(unix_seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(unix_seconds("1970-01-01T00:00:00.999Z"), Some(0));
        assert_eq!(
            unix_seconds("2026-12-07T14:03:11.123Z"),
            Some(1_796_652_191)
        );
        assert_eq!(
            unix_seconds("2026-12-07T15:03:11+01:00"),
            Some(1_796_652_191)
        );
        assert_eq!(unix_seconds("2000-02-29T00:00:00Z"), Some(951_782_400));
        assert_eq!(unix_seconds("2026-13-07T14:03:11Z"), None);
        assert_eq!(unix_seconds("yesterday"), None);
        assert_eq!(unix_seconds("2026-12-07T14:03:11"), None);
        assert_eq!(unix_seconds("2026-12-07T14:03:1éZ"), None);
    }

    #[test]
    fn reasons_by_name() {
        assert_eq!(reason_named("explicit_deny"), Some(Reason::ExplicitDeny));
        assert_eq!(reason_named("allowed"), Some(Reason::Allowed));
        assert_eq!(reason_named("invalid credentials"), None);
    }
}
