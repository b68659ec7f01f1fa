//! Pure helpers over request parts: path normalization, host, client IP.
//! Nothing here knows about Pingora.

use ipnet::IpNet;
use std::borrow::Cow;
use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path must start with `/`")]
    NotAbsolute,
    #[error("path has a dot segment or an empty segment")]
    DotSegment,
    #[error("path has an encoded `/`, `\\` or control character")]
    EncodedSeparator,
    #[error("path has an invalid percent-encoding")]
    BadEncoding,
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Decodes a request path and rejects what could make the gateway and the
/// upstream disagree about which resource is meant: dot segments, empty
/// segments, backslashes, and encoded separators or control characters.
/// Borrows when nothing is encoded.
pub fn normalize_path(raw: &str) -> Result<Cow<'_, str>, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let decoded: Cow<'_, str> = if raw.contains('%') {
        let bytes = raw.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                let (Some(h), Some(l)) = (
                    bytes.get(i + 1).copied().and_then(hex),
                    bytes.get(i + 2).copied().and_then(hex),
                ) else {
                    return Err(PathError::BadEncoding);
                };
                let b = h * 16 + l;
                if b == b'/' || b == b'\\' || b < 0x20 || b == 0x7f || b == b'%' {
                    return Err(PathError::EncodedSeparator);
                }
                out.push(b);
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        Cow::Owned(String::from_utf8(out).map_err(|_| PathError::BadEncoding)?)
    } else {
        Cow::Borrowed(raw)
    };
    if decoded.bytes().any(|b| b == b'\\' || b < 0x20 || b == 0x7f) {
        return Err(PathError::EncodedSeparator);
    }
    let inner = &decoded[1..];
    let inner = inner.strip_suffix('/').unwrap_or(inner);
    if !inner.is_empty()
        && inner
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(PathError::DotSegment);
    }
    Ok(decoded)
}

/// The host a request names, lower-cased, without a port.
pub fn host_of(host: &str) -> Cow<'_, str> {
    let h = if host.starts_with('[') {
        // IPv6 literal: `[::1]:8080`.
        host.split_once(']')
            .map_or(host, |(h, _)| &host[..h.len() + 1])
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    if h.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(h.to_ascii_lowercase())
    } else {
        Cow::Borrowed(h)
    }
}

/// The client's address: the peer, unless the peer is a trusted proxy, in
/// which case `X-Forwarded-For` is read from the right, skipping trusted
/// proxies, and the first untrusted address is the client.
pub fn client_ip(peer: IpAddr, xff: Option<&str>, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let Some(xff) = xff else { return peer };
    let mut client = peer;
    for part in xff.rsplit(',') {
        let Ok(ip) = part.trim().parse::<IpAddr>() else {
            // A malformed entry: stop at the last address we could trust.
            return client;
        };
        client = ip;
        if !is_trusted(&ip) {
            return ip;
        }
    }
    client
}

/// Credentials a request carries.
#[derive(Debug, PartialEq, Eq)]
pub enum Credential<'a> {
    None,
    Bearer(&'a str),
    ApiKey(&'a str),
    /// More than one credential, or an `Authorization` scheme we do not know.
    Malformed,
}

/// Reads `Authorization: Bearer`, `Authorization: ApiKey` and `X-API-Key`.
/// Two credentials in one request are refused, never resolved by precedence.
pub fn credential<'a>(
    authorization: Option<&'a [u8]>,
    api_key: Option<&'a [u8]>,
    several_auth_headers: bool,
) -> Credential<'a> {
    if several_auth_headers {
        return Credential::Malformed;
    }
    let auth = match authorization.map(std::str::from_utf8) {
        None => None,
        Some(Ok(s)) => Some(s),
        Some(Err(_)) => return Credential::Malformed,
    };
    let key = match api_key.map(std::str::from_utf8) {
        None => None,
        Some(Ok(s)) => Some(s.trim()),
        Some(Err(_)) => return Credential::Malformed,
    };
    match (auth, key) {
        (Some(_), Some(_)) => Credential::Malformed,
        (None, Some(k)) if !k.is_empty() => Credential::ApiKey(k),
        (None, Some(_)) => Credential::Malformed,
        (None, None) => Credential::None,
        (Some(a), None) => {
            let (scheme, rest) = a.trim().split_once(' ').unwrap_or((a.trim(), ""));
            let rest = rest.trim();
            if rest.is_empty() {
                return Credential::Malformed;
            }
            if scheme.eq_ignore_ascii_case("bearer") {
                Credential::Bearer(rest)
            } else if scheme.eq_ignore_ascii_case("apikey") {
                Credential::ApiKey(rest)
            } else {
                Credential::Malformed
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(normalize_path("/a/b").as_deref(), Ok("/a/b"));
        assert_eq!(normalize_path("/").as_deref(), Ok("/"));
        assert_eq!(normalize_path("/a/").as_deref(), Ok("/a/"));
        assert_eq!(normalize_path("/v/v%2Da1").as_deref(), Ok("/v/v-a1"));
        assert_eq!(normalize_path("/v/%C3%A9").as_deref(), Ok("/v/é"));
        assert_eq!(normalize_path("a"), Err(PathError::NotAbsolute));
        assert_eq!(normalize_path("/a/../b"), Err(PathError::DotSegment));
        assert_eq!(normalize_path("/a/%2e%2e/b"), Err(PathError::DotSegment));
        assert_eq!(normalize_path("/a/./b"), Err(PathError::DotSegment));
        assert_eq!(normalize_path("/a//b"), Err(PathError::DotSegment));
        assert_eq!(normalize_path("/a/%2Fb"), Err(PathError::EncodedSeparator));
        assert_eq!(normalize_path("/a/%5cb"), Err(PathError::EncodedSeparator));
        assert_eq!(normalize_path("/a/%00"), Err(PathError::EncodedSeparator));
        assert_eq!(normalize_path("/a/%252F"), Err(PathError::EncodedSeparator));
        assert_eq!(normalize_path("/a\\b"), Err(PathError::EncodedSeparator));
        assert_eq!(normalize_path("/a/%zz"), Err(PathError::BadEncoding));
        assert_eq!(normalize_path("/a/%e"), Err(PathError::BadEncoding));
        assert_eq!(normalize_path("/a/%ff"), Err(PathError::BadEncoding));
    }

    #[test]
    fn hosts() {
        assert_eq!(host_of("Example.COM:8080"), "example.com");
        assert_eq!(host_of("example.com"), "example.com");
        assert_eq!(host_of("[::1]:8080"), "[::1]");
    }

    #[test]
    fn client_ips() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let proxy: IpAddr = "10.1.1.1".parse().unwrap();
        let outsider: IpAddr = "203.0.113.9".parse().unwrap();
        // An untrusted peer's X-Forwarded-For is ignored.
        assert_eq!(client_ip(outsider, Some("1.2.3.4"), &trusted), outsider);
        // Through a trusted proxy: the rightmost untrusted address.
        assert_eq!(
            client_ip(proxy, Some("1.2.3.4, 198.51.100.7"), &trusted),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            client_ip(proxy, Some("1.2.3.4, 10.2.2.2"), &trusted),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_ip(proxy, None, &trusted), proxy);
        assert_eq!(client_ip(proxy, Some("garbage"), &trusted), proxy);
        assert_eq!(
            client_ip(proxy, Some("10.3.3.3"), &trusted),
            "10.3.3.3".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn credentials() {
        assert_eq!(
            credential(Some(b"Bearer abc"), None, false),
            Credential::Bearer("abc")
        );
        assert_eq!(
            credential(Some(b"bearer  abc "), None, false),
            Credential::Bearer("abc")
        );
        assert_eq!(
            credential(Some(b"ApiKey k"), None, false),
            Credential::ApiKey("k")
        );
        assert_eq!(credential(None, Some(b"k"), false), Credential::ApiKey("k"));
        assert_eq!(credential(None, None, false), Credential::None);
        assert_eq!(
            credential(Some(b"Bearer a"), Some(b"k"), false),
            Credential::Malformed
        );
        assert_eq!(
            credential(Some(b"Basic x"), None, false),
            Credential::Malformed
        );
        assert_eq!(
            credential(Some(b"Bearer"), None, false),
            Credential::Malformed
        );
        assert_eq!(
            credential(Some(b"Bearer a"), None, true),
            Credential::Malformed
        );
        assert_eq!(
            credential(Some(&[0xff, 0xfe]), None, false),
            Credential::Malformed
        );
    }
}
