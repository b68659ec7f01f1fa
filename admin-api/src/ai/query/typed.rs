//! The typed query a question is mapped to: plain data, what the executor
//! runs and what the answer shows so a person can check it. Names are kept
//! as the question wrote them (lower case); the executor resolves them and
//! reports what they resolved to.

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

/// One question, understood.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TypedQuery {
    /// Principals of a tenant the evaluator allows `action` on `resource_type`.
    WhoCan {
        action: String,
        resource_type: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resource_id: Option<String>,
        /// A tenant's name or code; none: the caller's target tenant.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tenant: Option<String>,
    },
    /// Every action the evaluator allows a principal (on one resource type).
    WhatCan {
        principal: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resource_type: Option<String>,
    },
    /// One decision of the evaluator.
    Can {
        principal: String,
        action: String,
        resource_type: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resource_id: Option<String>,
    },
    /// A principal's denied requests in a window, with reason and rules.
    WhyDenied { principal: String, window: Window },
    /// Denied requests in a window (of one principal, or everyone's).
    Denials {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        principal: Option<String>,
        window: Window,
    },
    /// Gateway requests of a principal in a window (one outcome, or all).
    CountRequests {
        principal: String,
        window: Window,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        outcome: Option<String>,
    },
    /// Service accounts whose API key was issued more than `older_than_days` ago.
    StaleKeys { older_than_days: u32 },
    /// A principal's roles: direct, through groups, inherited.
    RolesOf { principal: String },
    /// Principals holding a role (directly or through a group).
    RoleMembers { role: String },
    /// Members of a group.
    GroupMembers { group: String },
    /// Locked accounts.
    LockedAccounts,
    /// Service accounts.
    ServiceAccounts,
}

/// A time window, relative to when the question is asked (UTC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "span", rename_all = "snake_case", deny_unknown_fields)]
pub enum Window {
    /// Today (since 00:00 UTC), or one minute of it.
    Today {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<String>,
    },
    /// Yesterday (UTC), or one minute of it.
    Yesterday {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<String>,
    },
    /// One UTC day (`YYYY-MM-DD`), or one minute of it.
    Date {
        date: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<String>,
    },
    /// The last `hours` hours up to now.
    LastHours { hours: u32 },
    /// The last `days` days up to now ("last week" is 7).
    LastDays { days: u32 },
}

/// A window resolved to times: `from` inclusive, `to` exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Resolved {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl Window {
    /// The times this window covers when asked at `now`; `None` when a date
    /// or a time of day is not one.
    pub fn resolve(&self, now: DateTime<Utc>) -> Option<Resolved> {
        let today = now.date_naive();
        let day = |d: NaiveDate, at: &Option<String>| -> Option<Resolved> {
            let start = Utc.from_utc_datetime(&d.and_time(NaiveTime::MIN));
            match at {
                None => Some(Resolved {
                    from: start,
                    to: start + Duration::days(1),
                }),
                Some(hm) => {
                    let t = NaiveTime::parse_from_str(hm, "%H:%M").ok()?;
                    let from = Utc.from_utc_datetime(&d.and_time(t));
                    Some(Resolved {
                        from,
                        to: from + Duration::minutes(1),
                    })
                }
            }
        };
        match self {
            Window::Today { at } => day(today, at),
            Window::Yesterday { at } => day(today.pred_opt()?, at),
            Window::Date { date, at } => day(NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?, at),
            Window::LastHours { hours } => Some(Resolved {
                from: now - Duration::hours(i64::from(*hours)),
                to: now + Duration::seconds(1),
            }),
            Window::LastDays { days } => Some(Resolved {
                from: now - Duration::days(i64::from(*days)),
                to: now + Duration::seconds(1),
            }),
        }
    }
}

impl TypedQuery {
    /// The scope the ordinary endpoint for the same data needs (beyond `ai:read`).
    pub fn scope(&self) -> &'static str {
        match self {
            TypedQuery::WhoCan { .. } | TypedQuery::WhatCan { .. } | TypedQuery::Can { .. } => {
                "permission:read"
            }
            TypedQuery::WhyDenied { .. }
            | TypedQuery::Denials { .. }
            | TypedQuery::CountRequests { .. } => "audit:read",
            TypedQuery::StaleKeys { .. } | TypedQuery::ServiceAccounts => "service_account:read",
            TypedQuery::RolesOf { .. }
            | TypedQuery::RoleMembers { .. }
            | TypedQuery::GroupMembers { .. }
            | TypedQuery::LockedAccounts => "user:read",
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn windows_resolve_in_utc() {
        let now = Utc.with_ymd_and_hms(2026, 3, 10, 9, 30, 0).unwrap();
        let r = Window::Yesterday {
            at: Some("14:02".into()),
        }
        .resolve(now)
        .unwrap();
        assert_eq!(r.from, Utc.with_ymd_and_hms(2026, 3, 9, 14, 2, 0).unwrap());
        assert_eq!(r.to, Utc.with_ymd_and_hms(2026, 3, 9, 14, 3, 0).unwrap());
        let r = Window::Today { at: None }.resolve(now).unwrap();
        assert_eq!(r.from, Utc.with_ymd_and_hms(2026, 3, 10, 0, 0, 0).unwrap());
        let r = Window::LastDays { days: 7 }.resolve(now).unwrap();
        assert_eq!(r.from, Utc.with_ymd_and_hms(2026, 3, 3, 9, 30, 0).unwrap());
        assert!(Window::Date {
            date: "2026-02-30".into(),
            at: None
        }
        .resolve(now)
        .is_none());
        assert!(Window::Today {
            at: Some("25:00".into())
        }
        .resolve(now)
        .is_none());
    }

    #[test]
    fn the_json_form_is_tagged() {
        let q = TypedQuery::WhyDenied {
            principal: "bob".into(),
            window: Window::Yesterday {
                at: Some("14:02".into()),
            },
        };
        let v = serde_json::to_value(&q).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"kind": "why_denied", "principal": "bob",
                "window": {"span": "yesterday", "at": "14:02"}})
        );
        assert_eq!(serde_json::from_value::<TypedQuery>(v).unwrap(), q);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod schema_tests {
    /// The answer documents the typed query's shape, not just "an object".
    #[test]
    fn the_openapi_document_describes_the_typed_query() {
        let doc = crate::openapi::document();
        let s = &doc["components"]["schemas"]["TypedQuery"];
        let text = s.to_string();
        for kind in ["who_can", "why_denied", "stale_keys", "locked_accounts"] {
            assert!(text.contains(kind), "{kind}: {text}");
        }
        assert!(doc["components"]["schemas"]["Window"].is_object());
    }
}
