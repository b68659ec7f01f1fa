//! One audit event, serialized as one line of the contract's ndjson
//! (docs/audit.md, docs/audit-gateway.md): borrowed fields, no
//! intermediate `serde_json::Value`, written into a per-thread buffer that
//! is reused for every event.

use sentinel_policy::{RuleIds, Snapshot};
use serde::ser::{SerializeSeq, Serializer};
use serde::Serialize;
use std::cell::RefCell;
use std::net::IpAddr;
use uuid::Uuid;

/// `path` is cut to this many bytes (contract).
pub const MAX_PATH: usize = 2048;
/// `user_agent` is cut to this many bytes (contract).
pub const MAX_USER_AGENT: usize = 512;
/// The admin API refuses a line with a longer text field (or more rules):
/// client-controlled text is cut so no request can poison a batch.
pub const MAX_TEXT: usize = 512;
pub const MAX_REASON: usize = 4096;
pub const MAX_RULES: usize = 64;

/// What the gateway answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Allowed,
    Denied,
    RateLimited,
    StepUp,
    Error,
}

impl Outcome {
    pub const ALL: [Outcome; 5] = [
        Outcome::Allowed,
        Outcome::Denied,
        Outcome::RateLimited,
        Outcome::StepUp,
        Outcome::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Denied => "denied",
            Outcome::RateLimited => "rate_limited",
            Outcome::StepUp => "step_up",
            Outcome::Error => "error",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    User,
    ServiceAccount,
}

/// Unix milliseconds, serialized as RFC 3339 UTC with milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Time(pub i64);

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 24];
        s.serialize_str(rfc3339_ms(self.0, &mut buf))
    }
}

/// The rule ids that decided, read from the caller's snapshot view.
#[derive(Clone, Copy)]
pub struct Rules<'a>(pub Option<(&'a Snapshot, &'a RuleIds)>);

impl Serialize for Rules<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let Some((snapshot, ids)) = self.0 else {
            return s.serialize_seq(Some(0))?.end();
        };
        let mut seq = s.serialize_seq(None)?;
        for r in ids.iter().take(MAX_RULES) {
            seq.serialize_element(text(snapshot.rule_id(r), MAX_TEXT))?;
        }
        seq.end()
    }
}

/// One decision, in the contract's field order.
#[derive(Serialize)]
pub struct Event<'a> {
    pub id: Uuid,
    pub time: Time,
    pub source: &'static str,
    pub request_id: Option<&'a str>,
    pub tenant_id: Option<Uuid>,
    pub principal_id: Option<Uuid>,
    pub principal_kind: Option<PrincipalKind>,
    pub method: Option<&'a str>,
    pub route: Option<&'a str>,
    pub path: Option<&'a str>,
    pub resource: Option<&'a str>,
    pub resource_id: Option<&'a str>,
    pub action: Option<&'a str>,
    pub outcome: Outcome,
    pub code: Option<&'static str>,
    pub reason: Option<&'a str>,
    pub rules: Rules<'a>,
    pub client_ip: Option<IpAddr>,
    pub user_agent: Option<&'a str>,
    pub status: Option<u16>,
    pub latency_ms: Option<f64>,
    pub risk_score: Option<f64>,
    pub snapshot_version: Option<u64>,
    /// Only when a shadow rule disagreed with the live decision (the
    /// event's own `outcome`, `reason` and `rules`): the contract's `after`
    /// object (stored as sent) holding `{"shadow": {"outcome", "reason",
    /// "rules"}}`. Absent otherwise, so ordinary lines do not grow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<ShadowDecision<'a>>,
}

/// The decision the shadow rules would have made, written as `after`.
pub struct ShadowDecision<'a> {
    pub allowed: bool,
    pub reason: &'a str,
    pub rules: Rules<'a>,
}

impl Serialize for ShadowDecision<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        #[derive(Serialize)]
        struct Inner<'b> {
            outcome: &'static str,
            reason: &'b str,
            rules: Rules<'b>,
        }
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry(
            "shadow",
            &Inner {
                outcome: if self.allowed { "allowed" } else { "denied" },
                reason: self.reason,
                rules: self.rules,
            },
        )?;
        map.end()
    }
}

thread_local! {
    /// The line buffer of this thread: grows to the largest event once.
    static LINE: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(1024));
}

/// Serializes `event` as one ndjson line (with its `\n`) into this thread's
/// buffer and hands it to `write`. `None` if the event cannot be serialized
/// (it always can: every field is a string, number or null).
pub fn with_line<R>(event: &Event<'_>, write: impl FnOnce(&[u8]) -> R) -> Option<R> {
    LINE.with(|cell| {
        // A reentrant call (never happens: `write` does not record events)
        // gets its own buffer rather than a panic.
        let mut own;
        let mut guard = cell.try_borrow_mut();
        let buf: &mut Vec<u8> = match guard.as_deref_mut() {
            Ok(b) => b,
            Err(_) => {
                own = Vec::new();
                &mut own
            }
        };
        buf.clear();
        serde_json::to_writer(&mut *buf, event).ok()?;
        buf.push(b'\n');
        Some(write(buf))
    })
}

/// `s` cut before its first NUL (which the admin API refuses) and to at
/// most `max` bytes on a character boundary.
pub fn text(s: &str, max: usize) -> &str {
    let s = s.find('\0').map_or(s, |i| &s[..i]);
    truncate(s, max)
}

/// `s` cut to at most `max` bytes on a character boundary.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Formats unix milliseconds as `2026-12-07T14:03:11.123Z` into `buf`.
pub fn rfc3339_ms(ms: i64, buf: &mut [u8; 24]) -> &str {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let y = y.clamp(0, 9999);
    let mut put = |at: usize, v: i64, width: usize| {
        let mut v = v;
        for i in (0..width).rev() {
            buf[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, y, 4);
    put(5, m, 2);
    put(8, d, 2);
    put(11, sod / 3600, 2);
    put(14, sod % 3600 / 60, 2);
    put(17, sod % 60, 2);
    put(20, milli, 3);
    buf[4] = b'-';
    buf[7] = b'-';
    buf[10] = b'T';
    buf[13] = b':';
    buf[16] = b':';
    buf[19] = b'.';
    buf[23] = b'Z';
    // INVARIANT: only ASCII digits and separators were written.
    std::str::from_utf8(buf).unwrap_or("1970-01-01T00:00:00.000Z")
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 → (year, month, day).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        let mut b = [0u8; 24];
        assert_eq!(rfc3339_ms(0, &mut b), "1970-01-01T00:00:00.000Z");
        // 2026-12-07T14:03:11.123Z
        assert_eq!(
            rfc3339_ms(1_796_652_191_123, &mut b),
            "2026-12-07T14:03:11.123Z"
        );
        assert_eq!(
            rfc3339_ms(951_782_400_005, &mut b),
            "2000-02-29T00:00:00.005Z"
        );
        assert_eq!(rfc3339_ms(-1, &mut b), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("abcdef", 3), "abc");
        assert_eq!(truncate("aé", 2), "a");
        assert_eq!(text("ab\0cd", 10), "ab");
    }

    #[test]
    fn one_line_in_contract_form() {
        let e = Event {
            id: Uuid::nil(),
            time: Time(0),
            source: "gateway",
            request_id: Some("r1"),
            tenant_id: None,
            principal_id: None,
            principal_kind: Some(PrincipalKind::ServiceAccount),
            method: Some("GET"),
            route: None,
            path: Some("/a\"b"),
            resource: None,
            resource_id: None,
            action: None,
            outcome: Outcome::RateLimited,
            code: Some("RATE_LIMITED"),
            reason: None,
            rules: Rules(None),
            client_ip: Some(IpAddr::from([127, 0, 0, 1])),
            user_agent: None,
            status: Some(429),
            latency_ms: Some(1.5),
            risk_score: None,
            snapshot_version: Some(7),
            after: None,
        };
        let line = with_line(&e, |l| l.to_vec()).unwrap_or_default();
        assert_eq!(line.last(), Some(&b'\n'));
        assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap_or_default();
        assert_eq!(v["time"], "1970-01-01T00:00:00.000Z");
        assert_eq!(v["outcome"], "rate_limited");
        assert_eq!(v["principal_kind"], "service_account");
        assert_eq!(v["client_ip"], "127.0.0.1");
        assert_eq!(v["rules"], serde_json::json!([]));
        assert_eq!(v["path"], "/a\"b");
        assert_eq!(v["tenant_id"], serde_json::Value::Null);
        assert_eq!(v["snapshot_version"], 7);
        assert_eq!(v.as_object().map(|o| o.len()), Some(23));
    }
}
