//! Which limits apply to a request, as [`LimitKey`]s: the tenant plan, the
//! principal's quota and the route class for a caller; the anonymous limit
//! and the route class per client IP on public routes. The subjects' text
//! (UUIDs, the IP) is written into a [`KeyText`] on the caller's stack: no
//! allocation per request.

use super::{explicit_quota, tenant_quota, LimitKey, Per, Quota, RateLimitConfig};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::IpAddr;
use uuid::Uuid;

/// The authenticated caller, as far as rate limits care.
pub struct Caller<'a> {
    pub tenant: Uuid,
    pub principal: Uuid,
    /// The tenant's settings (`rate_limit_plan`, `rate_limit`), if the tenant is known.
    pub tenant_settings: Option<&'a BTreeMap<String, serde_json::Value>>,
    /// The principal's `rate_limit` attribute, if any.
    pub principal_limit: Option<&'a serde_json::Value>,
}

/// Room for the subjects' text: two hyphenated UUIDs and an IP address.
pub struct KeyText {
    tenant: [u8; 45],
    principal: [u8; 45],
    /// Long enough for any IPv6 text (at most 45 bytes with an embedded IPv4).
    ip: [u8; 48],
}

impl Default for KeyText {
    fn default() -> KeyText {
        KeyText {
            tenant: Uuid::encode_buffer(),
            principal: Uuid::encode_buffer(),
            ip: [0; 48],
        }
    }
}

/// The keys of one request: at most four limits.
pub struct Keys<'a> {
    keys: [LimitKey<'a>; 4],
    n: usize,
}

impl<'a> Keys<'a> {
    pub fn as_slice(&self) -> &[LimitKey<'a>] {
        &self.keys[..self.n]
    }

    fn push(&mut self, key: LimitKey<'a>) {
        // INVARIANT: `build` pushes at most three keys.
        if let Some(slot) = self.keys.get_mut(self.n) {
            *slot = key;
            self.n += 1;
        }
    }
}

/// Every limit that applies to a request on a route of `class`, from
/// `client_ip` (empty subject when unknown), by `caller` (`None` on a public route).
pub fn build<'a>(
    cfg: &'a RateLimitConfig,
    class: Option<&str>,
    caller: Option<&Caller<'_>>,
    client_ip: Option<IpAddr>,
    text: &'a mut KeyText,
) -> Keys<'a> {
    let unused = LimitKey {
        limit: "",
        subject: "",
        quota: Quota {
            burst: 1,
            period: std::time::Duration::from_secs(1),
        },
    };
    let mut keys = Keys {
        keys: [unused; 4],
        n: 0,
    };
    let KeyText {
        tenant: tenant_buf,
        principal: principal_buf,
        ip: ip_buf,
    } = text;
    let ip: &'a str = match client_ip {
        Some(addr) => ip_text(addr, ip_buf),
        None => "",
    };
    let class = class.and_then(|c| cfg.classes.get(c));
    match caller {
        Some(c) => {
            let tenant: &'a str = c.tenant.hyphenated().encode_lower(tenant_buf);
            let me: &'a str = c.principal.hyphenated().encode_lower(principal_buf);
            if let Some(q) = c.tenant_settings.and_then(|s| tenant_quota(cfg, s)) {
                keys.push(LimitKey {
                    limit: "tenant",
                    subject: tenant,
                    quota: q,
                });
            }
            if let Some(q) = explicit_quota(c.principal_limit).or(cfg.principal) {
                keys.push(LimitKey {
                    limit: "principal",
                    subject: me,
                    quota: q,
                });
            }
            if let Some(class) = class {
                let subject = match class.per {
                    Per::Tenant => tenant,
                    Per::Principal => me,
                    Per::Ip => ip,
                };
                keys.push(LimitKey {
                    limit: &class.name,
                    subject,
                    quota: class.quota,
                });
            }
        }
        None => {
            if let Some(q) = cfg.anonymous {
                keys.push(LimitKey {
                    limit: "ip",
                    subject: ip,
                    quota: q,
                });
            }
            if let Some(class) = class {
                keys.push(LimitKey {
                    limit: &class.name,
                    subject: ip,
                    quota: class.quota,
                });
            }
        }
    }
    keys
}

/// `addr` as text in `buf` (its `Display` form).
fn ip_text(addr: IpAddr, buf: &mut [u8; 48]) -> &str {
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    // The longest IP text is 45 bytes: the write always fits.
    let written = match write!(cursor, "{addr}") {
        Ok(()) => usize::try_from(cursor.position()).unwrap_or(0),
        Err(_) => 0,
    };
    std::str::from_utf8(&buf[..written]).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::{ClassLimit, Mode};
    use std::collections::HashMap;

    fn cfg() -> RateLimitConfig {
        let q = Quota::per_minute(10, 10).unwrap();
        let mut classes = HashMap::new();
        for (name, per) in [("t", Per::Tenant), ("p", Per::Principal), ("i", Per::Ip)] {
            classes.insert(
                name.to_owned(),
                ClassLimit {
                    name: format!("route:{name}").into(),
                    quota: q,
                    per,
                },
            );
        }
        RateLimitConfig {
            mode: Mode::Local,
            plans: HashMap::new(),
            default_plan: Some(q),
            principal: Some(q),
            classes,
            anonymous: Some(q),
        }
    }

    fn subjects(keys: &Keys<'_>) -> Vec<(String, String)> {
        keys.as_slice()
            .iter()
            .map(|k| (k.limit.to_owned(), k.subject.to_owned()))
            .collect()
    }

    #[test]
    fn ip_text_reads_like_display() {
        let mut buf = [0; 48];
        for ip in [
            "10.0.0.1",
            "255.255.255.255",
            "::1",
            "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255",
            "0:0:0:0:0:ffff:1.2.3.4",
        ] {
            let addr: IpAddr = ip.parse().unwrap();
            assert_eq!(ip_text(addr, &mut buf), addr.to_string());
        }
    }

    #[test]
    fn a_caller_is_limited_per_tenant_principal_and_class_subject() {
        let cfg = cfg();
        let settings = BTreeMap::new();
        let caller = Caller {
            tenant: Uuid::from_u128(1),
            principal: Uuid::from_u128(2),
            tenant_settings: Some(&settings),
            principal_limit: None,
        };
        let ip = Some("192.0.2.7".parse().unwrap());
        let tenant = Uuid::from_u128(1).to_string();
        let me = Uuid::from_u128(2).to_string();
        for (class, subject) in [("t", &tenant), ("p", &me), ("i", &"192.0.2.7".to_owned())] {
            let mut text = KeyText::default();
            let keys = build(&cfg, Some(class), Some(&caller), ip, &mut text);
            assert_eq!(
                subjects(&keys),
                vec![
                    ("tenant".to_owned(), tenant.clone()),
                    ("principal".to_owned(), me.clone()),
                    (format!("route:{class}"), subject.clone()),
                ]
            );
        }
    }

    #[test]
    fn anonymous_requests_are_limited_per_ip() {
        let cfg = cfg();
        let mut text = KeyText::default();
        let keys = build(
            &cfg,
            Some("t"),
            None,
            Some("::1".parse().unwrap()),
            &mut text,
        );
        assert_eq!(
            subjects(&keys),
            vec![
                ("ip".to_owned(), "::1".to_owned()),
                ("route:t".to_owned(), "::1".to_owned()),
            ]
        );
        let mut text = KeyText::default();
        assert_eq!(
            subjects(&build(&cfg, None, None, None, &mut text)),
            vec![("ip".to_owned(), String::new())]
        );
    }
}
