//! The audit event: its wire form (one ndjson line, docs/audit.md),
//! validated into [`Event`], the one typed form that is
//! stored, answered, exported and hashed into the chain.
//!
//! [`WireEvent`] is the file format (`deny_unknown_fields`, strings as sent);
//! [`WireEvent::lower`] checks every field and reports every problem of the
//! line, so that a batch is refused with all its reasons.

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;
use uuid::Uuid;

pub const OUTCOMES: &[&str] = &["allowed", "denied", "rate_limited", "step_up", "error"];
pub const SOURCES: &[&str] = &["gateway", "admin"];
pub const PRINCIPAL_KINDS: &[&str] = &["user", "service_account"];

/// Longest `path`, bytes (contract).
pub const MAX_PATH: usize = 2048;
/// Longest `user_agent`, bytes (contract).
pub const MAX_USER_AGENT: usize = 512;
/// Longest `reason`, bytes (the contract sets none: generous, so that a
/// gateway's explain text never poisons a batch).
pub const MAX_REASON: usize = 64 * 1024;
/// Longest other text field, bytes.
pub const MAX_TEXT: usize = 2048;
/// Most rule ids on one event.
pub const MAX_RULES: usize = 64;
/// Events may be this far in the future (gateway clocks drift), hours.
pub const MAX_FUTURE_HOURS: i64 = 24;
/// Events older than this are refused, days (longer than any retention).
pub const MAX_AGE_DAYS: i64 = 3660;

/// One event as stored and answered. Field order is the canonical order the
/// hash chain covers (chain.rs): never reorder, only append.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Event {
    pub id: Uuid,
    /// RFC 3339 UTC with milliseconds.
    #[serde(serialize_with = "millis")]
    pub time: DateTime<Utc>,
    /// `gateway` or `admin`.
    pub source: String,
    pub request_id: Option<String>,
    pub tenant_id: Option<Uuid>,
    pub principal_id: Option<String>,
    /// `user`, `service_account` or null.
    pub principal_kind: Option<String>,
    pub method: Option<String>,
    pub route: Option<String>,
    pub path: Option<String>,
    pub resource: Option<String>,
    pub resource_id: Option<String>,
    pub action: Option<String>,
    /// `allowed`, `denied`, `rate_limited`, `step_up` or `error`.
    pub outcome: String,
    pub code: Option<String>,
    pub reason: Option<String>,
    pub rules: Vec<String>,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub status: Option<i32>,
    pub latency_ms: Option<f64>,
    pub risk_score: Option<f64>,
    pub snapshot_version: Option<i64>,
    /// The name of the gateway key that shipped the event.
    pub gateway: Option<String>,
    /// Admin writes: the entity before the change, secrets `"[redacted]"`.
    #[schema(value_type = Option<Object>)]
    pub before: Option<Value>,
    /// Admin writes: the entity after the change, secrets `"[redacted]"`.
    #[schema(value_type = Option<Object>)]
    pub after: Option<Value>,
}

/// The columns of [`Event`], in its order.
pub const COLS: &str = "id, time, source, request_id, tenant_id, principal_id, principal_kind, method, route, \
     path, resource, resource_id, action, outcome, code, reason, rules, client_ip, user_agent, status, \
     latency_ms, risk_score, snapshot_version, gateway, before, after";

fn millis<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_time(t))
}

/// A new UUID v7 (time-ordered to the millisecond, 74 random bits), made
/// by hand so that the workspace's `uuid` keeps its features (a `v7`
/// feature would rebuild every crate that depends on it).
pub fn new_v7() -> Uuid {
    let ms = u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0);
    uuid::Builder::from_unix_timestamp_millis(ms, &rand::random::<[u8; 10]>()).into_uuid()
}

/// `2026-12-07T14:03:11.123Z`.
pub fn format_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// One line of an ingest batch, as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireEvent {
    pub id: String,
    pub time: String,
    pub source: String,
    #[serde(default)]
    pub request_id: Option<String>,
    #[serde(default)]
    pub tenant_id: Option<String>,
    #[serde(default)]
    pub principal_id: Option<String>,
    #[serde(default)]
    pub principal_kind: Option<String>,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub route: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub resource: Option<String>,
    #[serde(default)]
    pub resource_id: Option<String>,
    #[serde(default)]
    pub action: Option<String>,
    pub outcome: String,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub rules: Option<Vec<String>>,
    #[serde(default)]
    pub client_ip: Option<String>,
    #[serde(default)]
    pub user_agent: Option<String>,
    #[serde(default)]
    pub status: Option<i64>,
    #[serde(default)]
    pub latency_ms: Option<f64>,
    #[serde(default)]
    pub risk_score: Option<f64>,
    #[serde(default)]
    pub snapshot_version: Option<i64>,
    /// Ignored: the admin API stamps the shipping key's name.
    #[serde(default)]
    pub gateway: Option<String>,
    #[serde(default)]
    pub before: Option<Value>,
    #[serde(default)]
    pub after: Option<Value>,
}

/// Collects the problems of one line.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn add(&mut self, field: &str, msg: impl std::fmt::Display) {
        self.0.push(format!("`{field}`: {msg}"));
    }

    fn text(&mut self, field: &str, v: Option<String>, max: usize) -> Option<String> {
        let v = v?;
        if v.len() > max {
            self.add(field, format_args!("longer than {max} bytes"));
        } else if v.contains('\0') {
            self.add(field, "contains a NUL character");
        }
        Some(v)
    }

    fn one_of(&mut self, field: &str, v: &str, allowed: &[&str]) {
        if !allowed.contains(&v) {
            self.add(field, format_args!("must be one of {}", allowed.join(", ")));
        }
    }
}

impl WireEvent {
    /// The stored form, or every problem of the line. `now` bounds `time`;
    /// `gateway` is the shipping key's name.
    pub fn lower(self, now: DateTime<Utc>, gateway: &str) -> Result<Event, String> {
        let mut p = Problems::default();
        let id = match Uuid::parse_str(&self.id) {
            Ok(u) if u.get_version_num() == 7 => u,
            Ok(_) => {
                p.add("id", "must be a UUID v7");
                Uuid::nil()
            }
            Err(_) => {
                p.add("id", "must be a UUID");
                Uuid::nil()
            }
        };
        let time = match DateTime::parse_from_rfc3339(&self.time) {
            Ok(t) => {
                let t = t.with_timezone(&Utc).trunc_subsecs(3);
                if t > now + chrono::Duration::hours(MAX_FUTURE_HOURS) {
                    p.add(
                        "time",
                        format_args!("more than {MAX_FUTURE_HOURS} h in the future"),
                    );
                } else if t < now - chrono::Duration::days(MAX_AGE_DAYS) {
                    p.add("time", format_args!("older than {MAX_AGE_DAYS} days"));
                }
                t
            }
            Err(_) => {
                p.add("time", "must be an RFC 3339 time");
                now
            }
        };
        // Admin events are recorded by the admin API itself, never shipped.
        if self.source != "gateway" {
            p.add("source", "must be `gateway` (admin events are not shipped)");
        }
        let tenant_id = match self.tenant_id.as_deref().map(Uuid::parse_str) {
            None => None,
            Some(Ok(t)) => Some(t),
            Some(Err(_)) => {
                p.add("tenant_id", "must be a UUID or null");
                None
            }
        };
        if let Some(k) = &self.principal_kind {
            p.one_of("principal_kind", k, PRINCIPAL_KINDS);
        }
        p.one_of("outcome", &self.outcome, OUTCOMES);
        let status = match self.status {
            None => None,
            Some(s) if (100..=599).contains(&s) => i32::try_from(s).ok(),
            Some(_) => {
                p.add("status", "must be an HTTP status (100-599)");
                None
            }
        };
        if self.latency_ms.is_some_and(|l| l < 0.0 || !l.is_finite()) {
            p.add("latency_ms", "must be a number >= 0");
        }
        if self.risk_score.is_some_and(|r| !(0.0..=1.0).contains(&r)) {
            p.add("risk_score", "must be in [0, 1]");
        }
        if self.snapshot_version.is_some_and(|v| v < 0) {
            p.add("snapshot_version", "must be >= 0");
        }
        let rules = self.rules.unwrap_or_default();
        if rules.len() > MAX_RULES {
            p.add("rules", format_args!("more than {MAX_RULES} entries"));
        }
        if rules.iter().any(|r| r.len() > MAX_TEXT || r.contains('\0')) {
            p.add(
                "rules",
                format_args!("an entry is longer than {MAX_TEXT} bytes or contains NUL"),
            );
        }
        for (field, v) in [("before", &self.before), ("after", &self.after)] {
            if v.as_ref().is_some_and(|v| !v.is_object()) {
                p.add(field, "must be an object or null");
            } else if v
                .as_ref()
                .is_some_and(|v| v.to_string().contains("\\u0000"))
            {
                p.add(field, "contains a NUL character");
            }
        }
        let e = Event {
            id,
            time,
            source: self.source,
            request_id: p.text("request_id", self.request_id, MAX_TEXT),
            tenant_id,
            principal_id: p.text("principal_id", self.principal_id, MAX_TEXT),
            principal_kind: self.principal_kind,
            method: p.text("method", self.method, 32),
            route: p.text("route", self.route, MAX_TEXT),
            path: p.text("path", self.path, MAX_PATH),
            resource: p.text("resource", self.resource, MAX_TEXT),
            resource_id: p.text("resource_id", self.resource_id, MAX_TEXT),
            action: p.text("action", self.action, MAX_TEXT),
            outcome: self.outcome,
            code: p.text("code", self.code, 64),
            reason: p.text("reason", self.reason, MAX_REASON),
            rules,
            client_ip: p.text("client_ip", self.client_ip, 64),
            user_agent: p.text("user_agent", self.user_agent, MAX_USER_AGENT),
            status,
            latency_ms: self.latency_ms,
            risk_score: self.risk_score,
            snapshot_version: self.snapshot_version,
            gateway: Some(gateway.to_owned()),
            before: self.before,
            after: self.after,
        };
        if p.0.is_empty() {
            Ok(e)
        } else {
            Err(p.0.join("; "))
        }
    }
}

/// Parses and lowers one line (`Err`: the message for `details.errors`).
pub fn parse_line(line: &[u8], now: DateTime<Utc>, gateway: &str) -> Result<Event, String> {
    let wire: WireEvent = serde_json::from_slice(line).map_err(|e| {
        let msg = e.to_string();
        msg.split(" at line ").next().unwrap_or(&msg).to_owned()
    })?;
    wire.lower(now, gateway)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-07T14:03:11.123Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    const OK: &str = r#"{"id":"01939b3c-6a1e-7cc2-9a3f-0b1c2d3e4f50","time":"2026-12-07T14:03:11.123456Z","source":"gateway","outcome":"denied","rules":["r1"],"status":403}"#;

    #[test]
    fn a_valid_line_lowers_with_millisecond_time_and_the_gateway_stamped() {
        let e = parse_line(OK.as_bytes(), now(), "gw-1").unwrap();
        assert_eq!(format_time(&e.time), "2026-12-07T14:03:11.123Z");
        assert_eq!(e.gateway.as_deref(), Some("gw-1"));
        assert_eq!(e.rules, vec!["r1"]);
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["time"], "2026-12-07T14:03:11.123Z");
    }

    #[test]
    fn every_problem_of_a_line_is_named() {
        let bad = r#"{"id":"nope","time":"yesterday","source":"admin","outcome":"maybe","status":42,"risk_score":2}"#;
        let err = parse_line(bad.as_bytes(), now(), "gw").unwrap_err();
        for field in [
            "`id`",
            "`time`",
            "`source`",
            "`outcome`",
            "`status`",
            "`risk_score`",
        ] {
            assert!(err.contains(field), "{field} missing in {err}");
        }
        let unknown = OK.replace("\"rules\"", "\"rulez\"");
        let err = parse_line(unknown.as_bytes(), now(), "gw").unwrap_err();
        assert!(err.contains("unknown field `rulez`"), "{err}");
        let v4 = OK.replace("7cc2", "4cc2");
        assert!(parse_line(v4.as_bytes(), now(), "gw")
            .unwrap_err()
            .contains("UUID v7"));
        let nul = OK.replace("\"status\"", "\"path\":\"/a\\u0000\",\"status\"");
        assert!(parse_line(nul.as_bytes(), now(), "gw")
            .unwrap_err()
            .contains("NUL"));
    }
}
