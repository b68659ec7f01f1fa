//! Where a webhook may point: URL checks when a webhook is written, and the
//! address policy every delivery connects under (server-side request
//! forgery, docs/webhooks.md "Where webhooks may point").
//!
//! A URL is checked twice: when written (scheme, host, literal addresses)
//! and at every delivery, after DNS, on the addresses actually connected to
//! (so a name that later resolves to `169.254.169.254` or `127.0.0.1` is
//! refused then). Redirects are never followed.

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// Which addresses deliveries may reach beyond the public internet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    /// Loopback (`127.0.0.0/8`, `::1`, `localhost`): tests and development.
    pub allow_loopback: bool,
    /// Networks allowed although not public (an internal receiver).
    pub allowed_networks: Vec<IpNet>,
}

impl AddressPolicy {
    /// Whether a delivery may connect to `ip`.
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        if self.allowed_networks.iter().any(|n| n.contains(&ip)) {
            return true;
        }
        if ip.is_loopback() {
            return self.allow_loopback;
        }
        is_public(ip)
    }
}

/// An IPv4 address carried in IPv6 (`::ffff:a.b.c.d`) is judged as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// Routable on the public internet: not private, shared (CGNAT), link-local
/// (cloud metadata lives there), loopback, unspecified, multicast,
/// broadcast, documentation, benchmarking or reserved space.
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => is_public_v4(a),
        IpAddr::V6(a) => is_public_v6(a),
    }
}

fn is_public_v4(a: Ipv4Addr) -> bool {
    let o = a.octets();
    !(a.is_private()
        || a.is_loopback()
        || a.is_link_local()
        || a.is_unspecified()
        || a.is_multicast()
        || a.is_broadcast()
        || a.is_documentation()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64.0.0/10 shared
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // 192.0.0.0/24 protocol assignments
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // 198.18.0.0/15 benchmarking
        || o[0] >= 240) // reserved
}

fn is_public_v6(a: Ipv6Addr) -> bool {
    let s = a.segments();
    if (s[0] == 0x64 && s[1] == 0xff9b) || s[0] == 0x2002 {
        // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) carry an IPv4 address:
        // judged by it.
        let v4 = if s[0] == 0x2002 {
            Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8)
        } else {
            Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8)
        };
        return is_public_v4(v4);
    }
    !(a.is_loopback()
        || a.is_unspecified()
        || a.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0) // discard-only 100::/64
        || a.to_ipv4().is_some()) // IPv4-compatible (deprecated) ::a.b.c.d
}

/// Why a webhook URL is refused (a field error of the write).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidUrl {
    #[error("must be an absolute URL")]
    Unparsable,
    #[error("must use http or https")]
    Scheme,
    #[error("must name a host")]
    NoHost,
    #[error("must not carry a user name or password (the signature authenticates deliveries)")]
    Credentials,
    #[error("must not carry a fragment")]
    Fragment,
    #[error("must be at most 2048 characters")]
    TooLong,
    #[error("points at `{0}`, which deliveries may not reach (private, loopback, link-local or reserved address)")]
    Address(String),
}

/// Checks a webhook URL when it is written and returns it normalised.
/// Names are not resolved here (DNS may change): the delivery checks the
/// addresses it connects to.
pub fn check_url(raw: &str, policy: &AddressPolicy) -> Result<Url, InvalidUrl> {
    if raw.len() > 2048 {
        return Err(InvalidUrl::TooLong);
    }
    let url = Url::parse(raw.trim()).map_err(|_| InvalidUrl::Unparsable)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(InvalidUrl::Scheme);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(InvalidUrl::Credentials);
    }
    if url.fragment().is_some() {
        return Err(InvalidUrl::Fragment);
    }
    check_host(&url, policy)?;
    if url.as_str().len() > 2048 {
        return Err(InvalidUrl::TooLong);
    }
    Ok(url)
}

/// The host of a URL: an address the policy permits, or a name (not
/// `localhost` unless loopback is allowed).
pub fn check_host(url: &Url, policy: &AddressPolicy) -> Result<(), InvalidUrl> {
    let host = url.host_str().ok_or(InvalidUrl::NoHost)?;
    // The URL parser writes every spelling of an address (decimal, hex,
    // bracketed IPv6) in its canonical form.
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return permit(ip, policy);
    }
    let d = bare.trim_end_matches('.').to_ascii_lowercase();
    if d.is_empty() {
        Err(InvalidUrl::NoHost)
    } else if (d == "localhost" || d.ends_with(".localhost")) && !policy.allow_loopback {
        Err(InvalidUrl::Address(d))
    } else {
        Ok(())
    }
}

fn permit(ip: IpAddr, policy: &AddressPolicy) -> Result<(), InvalidUrl> {
    if policy.permits(ip) {
        Ok(())
    } else {
        Err(InvalidUrl::Address(ip.to_string()))
    }
}

/// The resolver of the delivery client: resolves with the system resolver
/// and keeps only the addresses the policy permits; none left is an error,
/// so the connection is never made.
pub struct GuardedResolver {
    pub policy: Arc<AddressPolicy>,
}

#[derive(Debug, thiserror::Error)]
#[error("`{0}` resolves only to addresses deliveries may not reach")]
struct Refused(String);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let ok: Vec<SocketAddr> = all.into_iter().filter(|a| policy.permits(a.ip())).collect();
            if ok.is_empty() {
                return Err(Box::new(Refused(host)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(ok.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> AddressPolicy {
        AddressPolicy::default()
    }

    #[test]
    fn addresses() {
        let loopback = AddressPolicy {
            allow_loopback: true,
            ..AddressPolicy::default()
        };
        let internal = AddressPolicy {
            allowed_networks: vec!["10.20.0.0/16".parse().unwrap()],
            ..AddressPolicy::default()
        };
        for (ip, strict_ok, loop_ok, internal_ok) in [
            ("93.184.216.34", true, true, true),
            ("2606:2800:220:1:248:1893:25c8:1946", true, true, true),
            ("127.0.0.1", false, true, false),
            ("127.9.9.9", false, true, false),
            ("::1", false, true, false),
            ("::ffff:127.0.0.1", false, true, false),
            ("10.20.1.1", false, false, true),
            ("10.21.1.1", false, false, false),
            ("::ffff:10.20.1.1", false, false, true),
            ("172.16.0.1", false, false, false),
            ("192.168.1.1", false, false, false),
            ("169.254.169.254", false, false, false),
            ("::ffff:169.254.169.254", false, false, false),
            ("100.64.0.1", false, false, false),
            ("0.0.0.0", false, false, false),
            ("255.255.255.255", false, false, false),
            ("224.0.0.1", false, false, false),
            ("198.18.0.1", false, false, false),
            ("fd00::1", false, false, false),
            ("fe80::1", false, false, false),
            ("::", false, false, false),
            ("64:ff9b::a9fe:a9fe", false, false, false),
            ("64:ff9b::5db8:d822", true, true, true),
            ("2002:a9fe:a9fe::1", false, false, false),
            ("::127.0.0.1", false, false, false),
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(strict().permits(ip), strict_ok, "strict {ip}");
            assert_eq!(loopback.permits(ip), loop_ok, "loopback {ip}");
            assert_eq!(internal.permits(ip), internal_ok, "internal {ip}");
        }
    }

    #[test]
    fn urls() {
        let p = strict();
        assert!(check_url("https://hooks.example.com/sentinel?x=1", &p).is_ok());
        assert!(check_url("http://93.184.216.34:8080/", &p).is_ok());
        for (raw, want) in [
            ("ftp://hooks.example.com/", InvalidUrl::Scheme),
            ("file:///etc/passwd", InvalidUrl::Scheme),
            ("javascript:alert(1)", InvalidUrl::Scheme),
            ("hooks.example.com/x", InvalidUrl::Unparsable),
            (
                "https://user:pw@hooks.example.com/",
                InvalidUrl::Credentials,
            ),
            ("https://hooks.example.com/#frag", InvalidUrl::Fragment),
            (
                "http://127.0.0.1:9000/",
                InvalidUrl::Address("127.0.0.1".into()),
            ),
            ("http://[::1]/", InvalidUrl::Address("::1".into())),
            (
                "http://169.254.169.254/latest/meta-data/",
                InvalidUrl::Address("169.254.169.254".into()),
            ),
            // Decimal and hex spellings are parsed as the address they are.
            (
                "http://2130706433/",
                InvalidUrl::Address("127.0.0.1".into()),
            ),
            ("http://0x7f.1/", InvalidUrl::Address("127.0.0.1".into())),
            (
                "http://localhost:8080/",
                InvalidUrl::Address("localhost".into()),
            ),
            (
                "http://api.LOCALHOST./",
                InvalidUrl::Address("api.localhost".into()),
            ),
        ] {
            assert_eq!(check_url(raw, &p).unwrap_err(), want, "{raw}");
        }
        let dev = AddressPolicy {
            allow_loopback: true,
            ..AddressPolicy::default()
        };
        assert!(check_url("http://127.0.0.1:9000/hook", &dev).is_ok());
        assert!(check_url("http://localhost:9000/hook", &dev).is_ok());
        assert!(check_url("http://10.0.0.1/", &dev).is_err());
        assert!(check_url(&format!("https://h.example/{}", "a".repeat(2100)), &p).is_err());
    }

    #[tokio::test]
    async fn the_resolver_drops_refused_addresses() {
        use std::str::FromStr;
        let strict = GuardedResolver {
            policy: Arc::new(AddressPolicy::default()),
        };
        let err = strict
            .resolve(Name::from_str("localhost").unwrap())
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains("may not reach"), "{err}");
        let dev = GuardedResolver {
            policy: Arc::new(AddressPolicy {
                allow_loopback: true,
                ..AddressPolicy::default()
            }),
        };
        let addrs: Vec<SocketAddr> = dev
            .resolve(Name::from_str("localhost").unwrap())
            .await
            .unwrap()
            .collect();
        assert!(!addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()));
    }
}
