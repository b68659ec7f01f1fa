//! The approval workflow as plain data and pure functions: a chain's levels
//! and auto-approval conditions as written (serde), their validation, who may
//! decide a level, and the one state machine of a request
//! ([`transition`]). No I/O and no clock: callers pass the facts and `now`.

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use uuid::Uuid;

/// `max_approval_levels` of the seeds.
pub const MAX_LEVELS: usize = 5;
/// `APPROVAL_TIMEOUT_HOURS` of the seeds: 48 h.
pub const DEFAULT_TIMEOUT_SECONDS: i64 = 48 * 3600;
/// At most this many approvals for one level.
pub const MAX_REQUIRED: u32 = 20;
/// Grant durations: default and maximum when a chain names none.
pub const DEFAULT_DURATION_SECONDS: i32 = 3600;
pub const DEFAULT_MAX_DURATION_SECONDS: i32 = 8 * 3600;
/// No grant outlives 30 days, nor waits longer than that for a level.
pub const LONGEST_SECONDS: i64 = 30 * 24 * 3600;

/// Who may decide a level (or take it over on escalation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Approvers {
    /// Every holder of this role of the tenant (directly, through a group,
    /// or through a role that inherits it).
    Role { role: String },
    /// These users of the tenant.
    Users { user_ids: Vec<Uuid> },
    /// The user the requester's attribute names (by id or email).
    Manager {
        #[serde(default = "manager_attribute")]
        attribute: String,
    },
}

fn manager_attribute() -> String {
    "manager".to_owned()
}

fn one() -> u32 {
    1
}

fn default_timeout() -> i64 {
    DEFAULT_TIMEOUT_SECONDS
}

/// One level of a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LevelSpec {
    pub approvers: Approvers,
    /// Distinct approvals the level needs.
    #[serde(default = "one")]
    pub required_approvals: u32,
    /// After this long without enough approvals the level escalates (its
    /// `escalate_to` may decide too); after as long again, the request expires.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: i64,
    #[serde(default)]
    pub escalate_to: Option<Approvers>,
}

/// A condition under which a request is approved at once (all must hold,
/// and only with the chain's `auto_approve_enabled`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AutoCondition {
    /// The requester holds this role.
    Role { role: String },
    /// The request is made within these UTC hours (`[from, to)`) and weekdays
    /// (`mon`..`sun`); the policy's `time` condition, compiled the same way.
    Time {
        #[serde(default)]
        hours_utc: Option<[u8; 2]>,
        #[serde(default)]
        #[schema(value_type = Option<Vec<String>>)]
        weekdays: Option<Vec<sentinel_policy::source::Weekday>>,
    },
    /// The requester held a grant of this chain for the same resource and
    /// action that ended (expired) at most this long ago.
    Renewal { within_seconds: i64 },
}

/// The facts about one person that decide whether they may approve.
#[derive(Debug, Clone, Default)]
pub struct Who {
    pub id: Uuid,
    pub email: Option<String>,
    /// Names of every role held now (direct, groups, ancestors).
    pub roles: HashSet<String>,
}

impl Approvers {
    /// Whether `who` is one of these approvers of a request by a requester
    /// with `requester_attrs`.
    pub fn includes(&self, who: &Who, requester_attrs: &BTreeMap<String, Value>) -> bool {
        match self {
            Approvers::Role { role } => who.roles.contains(role),
            Approvers::Users { user_ids } => user_ids.contains(&who.id),
            Approvers::Manager { attribute } => match requester_attrs.get(attribute) {
                Some(Value::String(s)) => {
                    Uuid::parse_str(s).is_ok_and(|u| u == who.id)
                        || who
                            .email
                            .as_deref()
                            .is_some_and(|e| e.eq_ignore_ascii_case(s))
                }
                _ => false,
            },
        }
    }
}

impl LevelSpec {
    /// Whether `who` may decide this level now (`escalated`: its escalation
    /// target may too).
    pub fn may_decide(
        &self,
        escalated: bool,
        who: &Who,
        requester_attrs: &BTreeMap<String, Value>,
    ) -> bool {
        self.approvers.includes(who, requester_attrs)
            || (escalated
                && self
                    .escalate_to
                    .as_ref()
                    .is_some_and(|e| e.includes(who, requester_attrs)))
    }
}

/// The state of a request as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    Approved,
    Denied,
    Cancelled,
    Expired,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Denied => "denied",
            Status::Cancelled => "cancelled",
            Status::Expired => "expired",
        }
    }
}

/// What happens to a pending request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// One more approval at the current level, which then has `approvals`.
    Approve {
        approvals: u32,
    },
    Deny,
    Cancel,
    /// The current level's timeout passed.
    Timeout,
}

/// Where a pending request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Still waiting at the same level (more approvals needed).
    Wait,
    /// The level is done; the next one starts.
    Advance {
        level: u16,
    },
    /// The last level is done: grant.
    Granted,
    Denied,
    Cancelled,
    /// The level may now also be decided by its escalation target.
    Escalated,
    Expired,
}

impl Next {
    /// The notification event of this transition (`None`: nothing to say).
    pub fn event_name(self) -> Option<&'static str> {
        match self {
            Next::Wait => None,
            Next::Advance { .. } => Some("approval.level_approved"),
            Next::Granted => Some("approval.granted"),
            Next::Denied => Some("approval.denied"),
            Next::Cancelled => Some("approval.cancelled"),
            Next::Escalated => Some("approval.escalated"),
            Next::Expired => Some("approval.expired"),
        }
    }
}

/// The one place a pending request's transitions are decided.
/// `level` is 1-based; `escalated` says whether the current level has
/// escalated already.
pub fn transition(levels: &[LevelSpec], level: u16, escalated: bool, event: Event) -> Next {
    let Some(spec) = levels.get(usize::from(level).wrapping_sub(1)) else {
        // A level the chain does not have: nothing can approve it.
        return Next::Expired;
    };
    match event {
        Event::Approve { approvals } if approvals >= spec.required_approvals => {
            if usize::from(level) >= levels.len() {
                Next::Granted
            } else {
                Next::Advance { level: level + 1 }
            }
        }
        Event::Approve { .. } => Next::Wait,
        Event::Deny => Next::Denied,
        Event::Cancel => Next::Cancelled,
        Event::Timeout if !escalated && spec.escalate_to.is_some() => Next::Escalated,
        Event::Timeout => Next::Expired,
    }
}

/// Whether a level whose clock started at `started` has timed out at `now`.
pub fn timed_out(spec: &LevelSpec, started: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    (now - started).num_seconds() >= spec.timeout_seconds
}

/// Whether `c` holds for a requester holding `roles` at `now`
/// (`renewal`: whether a matching grant ended within the window; the caller
/// looks that up).
pub fn auto_condition_holds(
    c: &AutoCondition,
    roles: &HashSet<String>,
    now: DateTime<Utc>,
    recently_expired: impl Fn(i64) -> bool,
) -> bool {
    match c {
        AutoCondition::Role { role } => roles.contains(role),
        AutoCondition::Time {
            hours_utc,
            weekdays,
        } => {
            let hour_ok = hours_utc.is_none_or(|[from, to]| {
                let h = now.hour() as u8;
                if from <= to {
                    (from..to).contains(&h)
                } else {
                    h >= from || h < to
                }
            });
            let day_ok = weekdays.as_ref().is_none_or(|days| {
                use sentinel_policy::source::Weekday as W;
                let today = match now.weekday() {
                    chrono::Weekday::Mon => W::Mon,
                    chrono::Weekday::Tue => W::Tue,
                    chrono::Weekday::Wed => W::Wed,
                    chrono::Weekday::Thu => W::Thu,
                    chrono::Weekday::Fri => W::Fri,
                    chrono::Weekday::Sat => W::Sat,
                    chrono::Weekday::Sun => W::Sun,
                };
                days.contains(&today)
            });
            hour_ok && day_ok
        }
        AutoCondition::Renewal { within_seconds } => recently_expired(*within_seconds),
    }
}

/// A resource pattern (`*`, an exact id, a prefix ending in `*`) and whether
/// it lies within another (a request must lie within its chain's pattern).
pub fn within(chain_pattern: &str, requested: &str) -> bool {
    if chain_pattern == "*" {
        return true;
    }
    match chain_pattern.strip_suffix('*') {
        Some(prefix) => requested.starts_with(prefix),
        None => chain_pattern == requested,
    }
}

/// Parses a requested duration: seconds as a number, or `"90s"`, `"30m"`,
/// `"2h"`, `"1d"`.
pub fn parse_duration(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => {
            let s = s.trim();
            let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
            let n: i64 = num.parse().ok()?;
            let mult = match unit {
                "s" => 1,
                "m" => 60,
                "h" => 3600,
                "d" => 86_400,
                _ => return None,
            };
            n.checked_mul(mult)
        }
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    fn level(required: u32, escalate: bool) -> LevelSpec {
        LevelSpec {
            approvers: Approvers::Users {
                user_ids: vec![Uuid::nil()],
            },
            required_approvals: required,
            timeout_seconds: 60,
            escalate_to: escalate.then(|| Approvers::Role {
                role: "boss".into(),
            }),
        }
    }

    #[test]
    fn transitions() {
        let two = [level(2, true), level(1, false)];
        // (level, escalated, event, expected)
        let table = [
            (1, false, Event::Approve { approvals: 1 }, Next::Wait),
            (
                1,
                false,
                Event::Approve { approvals: 2 },
                Next::Advance { level: 2 },
            ),
            (2, false, Event::Approve { approvals: 1 }, Next::Granted),
            (1, false, Event::Deny, Next::Denied),
            (2, true, Event::Cancel, Next::Cancelled),
            (1, false, Event::Timeout, Next::Escalated),
            (1, true, Event::Timeout, Next::Expired),
            // No escalation target: a timeout expires the request.
            (2, false, Event::Timeout, Next::Expired),
            // A level the chain lacks.
            (3, false, Event::Approve { approvals: 9 }, Next::Expired),
            (0, false, Event::Approve { approvals: 9 }, Next::Expired),
        ];
        for (lvl, esc, ev, want) in table {
            assert_eq!(transition(&two, lvl, esc, ev), want, "{lvl} {esc} {ev:?}");
        }
    }

    #[test]
    fn who_may_decide() {
        let me = Who {
            id: Uuid::from_u128(7),
            email: Some("Boss@x.example".into()),
            roles: ["boss".to_owned()].into(),
        };
        let attrs: BTreeMap<String, Value> =
            [("manager".to_owned(), json!("boss@x.example"))].into();
        let l = level(1, true);
        assert!(!l.may_decide(false, &me, &attrs));
        assert!(l.may_decide(true, &me, &attrs));
        let m = Approvers::Manager {
            attribute: "manager".into(),
        };
        assert!(m.includes(&me, &attrs));
        let by_id: BTreeMap<String, Value> =
            [("manager".to_owned(), json!(Uuid::from_u128(7).to_string()))].into();
        assert!(m.includes(&me, &by_id));
        assert!(!m.includes(&me, &BTreeMap::new()));
    }

    #[test]
    fn patterns_and_durations() {
        assert!(within("*", "voy-1"));
        assert!(within("voy-*", "voy-1"));
        assert!(within("voy-*", "voy-a*"));
        assert!(!within("voy-*", "ves-1"));
        assert!(!within("voy-1", "voy-*"));
        assert_eq!(parse_duration(&json!(90)), Some(90));
        assert_eq!(parse_duration(&json!("2h")), Some(7200));
        assert_eq!(parse_duration(&json!("30m")), Some(1800));
        assert_eq!(parse_duration(&json!("h")), None);
        assert_eq!(parse_duration(&json!("5w")), None);
        assert_eq!(parse_duration(&json!(true)), None);
    }

    #[test]
    fn business_hours() {
        let roles = HashSet::new();
        let c = AutoCondition::Time {
            hours_utc: Some([9, 17]),
            weekdays: Some(vec![sentinel_policy::source::Weekday::Mon]),
        };
        // 2026-12-07 is a Monday.
        let at = |h| {
            DateTime::parse_from_rfc3339(&format!("2026-12-07T{h:02}:30:00Z"))
                .unwrap()
                .with_timezone(&Utc)
        };
        assert!(auto_condition_holds(&c, &roles, at(10), |_| false));
        assert!(!auto_condition_holds(&c, &roles, at(18), |_| false));
        let tue = at(10) + chrono::Duration::days(1);
        assert!(!auto_condition_holds(&c, &roles, tue, |_| false));
    }
}
