//! The gateway's own header edits, done on the plain `http::HeaderMap`.
//!
//! Pingora's `insert_header` keeps two maps per message (the values, and the
//! original case of every name), parses the name again on every call
//! (allocating for every name it does not know, such as each `x-sentinel-*`),
//! and has no way to reserve room, so the twelve headers the gateway must add
//! to a proxied exchange grew maps ten times and cost about a fifth of the
//! gateway's instructions per request (docs/PERFORMANCE.md, "Where the gap
//! is"). [`edit_request`] and [`edit_response`] instead drop the case map of
//! the message (header names then go out in lower case, as Envoy sends
//! them; HTTP field names are case-insensitive, RFC 9110 §5.1), reserve room
//! once, and let the gateway insert pre-parsed names ([`H_REQUEST_ID`] and the
//! others are constants) into the one map left.
//!
//! Every header the gateway adds or removes goes through these two functions
//! (also on its own answers: denials, preflights, the bound exchange).
//!
//! Everything else about the message is kept: method, URI, version,
//! extensions, a request target the URI does not reproduce (absolute-form or
//! not UTF-8), HTTP/2 end-of-stream, a non-standard reason phrase.

use http::{HeaderMap, HeaderName};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::{Error, ErrorType, OrErr, Result};

pub const H_REQUEST_ID: HeaderName = HeaderName::from_static("x-sentinel-request-id");
pub const H_USER_ID: HeaderName = HeaderName::from_static("x-sentinel-user-id");
pub const H_TENANT_ID: HeaderName = HeaderName::from_static("x-sentinel-tenant-id");
pub const H_ROLES: HeaderName = HeaderName::from_static("x-sentinel-roles");
pub const H_SERVICE_ACCOUNT: HeaderName = HeaderName::from_static("x-sentinel-service-account");
pub const H_ASSERTION: HeaderName = HeaderName::from_static("x-sentinel-assertion");
pub const H_DECISION: HeaderName = HeaderName::from_static("x-sentinel-decision");
/// A client's request for [`H_DECISION`] (`1`); reserved, so never forwarded.
pub const H_EXPLAIN: HeaderName = HeaderName::from_static("x-sentinel-explain");
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// What the gateway does with a client request header whose name contains
/// `_` (`[client_headers] underscores`). CGI-style upstreams (WSGI, Rack,
/// PHP) read `_` and `-` as the same character, so `x_sentinel_user_id`
/// would reach them as the gateway's own `x-sentinel-user-id`; nginx
/// (`underscores_in_headers off`) and Envoy (`headers_with_underscores_action`)
/// drop such headers too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Underscores {
    /// Remove the header, serve the request (default).
    #[default]
    Drop,
    /// Answer `400 BAD_REQUEST`.
    Reject,
    /// Pass it on (reserved names are still removed, `_` read as `-`).
    Allow,
}

/// The gateway's rules for what a client may send in request headers.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientHeaders {
    pub underscores: Underscores,
}

/// Why a request head is refused before it is routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderProblem {
    #[error("header names containing `_` are not accepted")]
    Underscore,
    #[error("an HTTP/1.1 request needs a `Host` header")]
    MissingHost,
    #[error("a request may carry only one `Host` header")]
    SeveralHosts,
}

/// Whether `name` is in the gateway's reserved `x-sentinel-` namespace, in
/// any case and with `_` read as `-` (the spelling CGI-style upstreams see).
pub fn is_reserved(name: &[u8]) -> bool {
    const PREFIX: &[u8] = b"x-sentinel-";
    name.len() >= PREFIX.len()
        && name
            .iter()
            .zip(PREFIX)
            .all(|(b, p)| b.to_ascii_lowercase() == *p || (*b == b'_' && *p == b'-'))
}

/// Headers that say who the client is or where it came from (the standard
/// one, the de facto ones, and the client-address headers of CDNs and
/// frameworks). Believed (and passed on) only from a trusted proxy; the
/// gateway sets `x-forwarded-for` itself (SPEC, "Request risk").
fn is_forwarding(name: &str) -> bool {
    name.starts_with("x-forwarded-")
        || matches!(
            name,
            "forwarded"
                | "x-real-ip"
                | "client-ip"
                | "x-client-ip"
                | "x-cluster-client-ip"
                | "true-client-ip"
                | "cf-connecting-ip"
                | "fastly-client-ip"
                | "x-originating-ip"
        )
}

/// Headers that make some frameworks serve another method or path than the
/// one the gateway authorized. Never passed on.
fn is_override(name: &str) -> bool {
    matches!(
        name,
        "x-http-method-override"
            | "x-http-method"
            | "x-method-override"
            | "x-original-url"
            | "x-rewrite-url"
    )
}

/// Screens a client request head before anything reads it: the `Host`
/// rules of RFC 9112 §3.2 (HTTP/1.1 needs exactly one; HTTP/1.0 may have
/// none), header names with `_` per `rules`, and removes what an upstream
/// must never get from a client: reserved `x-sentinel-*` names (any case,
/// `_` for `-`), forwarding headers unless `trusted_peer`, and method or
/// path overrides. Nothing is copied unless something has to go.
pub fn screen_request(
    req: &mut RequestHeader,
    rules: &ClientHeaders,
    trusted_peer: bool,
) -> std::result::Result<(), HeaderProblem> {
    let mut hosts = req.headers.get_all(http::header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (_, Some(_)) => return Err(HeaderProblem::SeveralHosts),
        (None, None) if req.version == http::Version::HTTP_11 => {
            return Err(HeaderProblem::MissingHost)
        }
        _ => {}
    }
    let mut doomed = 0;
    for name in req.headers.keys() {
        let n = name.as_str();
        if n.contains('_') {
            match rules.underscores {
                Underscores::Reject => return Err(HeaderProblem::Underscore),
                Underscores::Drop => {
                    doomed += 1;
                    continue;
                }
                Underscores::Allow => {}
            }
        }
        if is_reserved(n.as_bytes()) || is_override(n) || (!trusted_peer && is_forwarding(n)) {
            doomed += 1;
        }
    }
    if doomed == 0 {
        return Ok(());
    }
    let drop_underscores = rules.underscores == Underscores::Drop;
    // The request is whole again afterwards; an edit that removes cannot fail.
    let _ = edit_request(req, 0, |h| {
        let names: Vec<HeaderName> = h
            .keys()
            .filter(|name| {
                let n = name.as_str();
                (drop_underscores && n.contains('_'))
                    || is_reserved(n.as_bytes())
                    || is_override(n)
                    || (!trusted_peer && is_forwarding(n))
            })
            .cloned()
            .collect();
        for name in names {
            h.remove(name);
        }
        Ok(())
    });
    Ok(())
}

/// Runs `edit` on the headers of `req` with room for `extra` more, after
/// dropping the case map. The request is whole again afterwards, also when
/// `edit` fails.
pub fn edit_request<R>(
    req: &mut RequestHeader,
    extra: usize,
    edit: impl FnOnce(&mut HeaderMap) -> Result<R>,
) -> Result<R> {
    // A target the URI does not reproduce byte for byte is put back as it was.
    let raw = match req.uri.path_and_query() {
        Some(pq) if req.raw_path_is_utf8() && pq.as_str().as_bytes() == req.raw_path() => None,
        _ => Some(req.raw_path().to_vec()),
    };
    let end_stream = req.send_end_stream();
    let placeholder = RequestHeader::from(http::Request::new(()).into_parts().0);
    let mut parts = http::request::Parts::from(std::mem::replace(req, placeholder));
    let edited = reserve(&mut parts.headers, extra).and_then(|()| edit(&mut parts.headers));
    *req = RequestHeader::from(parts);
    if let Some(raw) = raw {
        req.set_raw_path(&raw)?;
    }
    if let Some(end_stream) = end_stream {
        req.set_send_end_stream(end_stream);
    }
    edited
}

/// [`edit_request`] for a response; a non-standard reason phrase is kept.
pub fn edit_response<R>(
    resp: &mut ResponseHeader,
    extra: usize,
    edit: impl FnOnce(&mut HeaderMap) -> Result<R>,
) -> Result<R> {
    let reason = resp
        .get_reason_phrase()
        .filter(|r| Some(*r) != resp.status.canonical_reason())
        .map(str::to_owned);
    let placeholder = ResponseHeader::from(http::Response::new(()).into_parts().0);
    let mut parts = http::response::Parts::from(std::mem::replace(resp, placeholder));
    let edited = reserve(&mut parts.headers, extra).and_then(|()| edit(&mut parts.headers));
    *resp = ResponseHeader::from(parts);
    if reason.is_some() {
        resp.set_reason_phrase(reason.as_deref())?;
    }
    edited
}

/// Inserts `value` under `name`, replacing what was there (never panics: a
/// full map is an error).
/// W3C trace context for the upstream (tracing on): the caller's
/// `traceparent` and `tracestate` are replaced by the gateway's span's,
/// `pairs` as `crate::otel::RequestTrace::upstream_headers` gives them.
pub fn set_trace_context(headers: &mut HeaderMap, pairs: &[(&'static str, String)]) -> Result<()> {
    headers.remove(TRACEPARENT);
    headers.remove(TRACESTATE);
    for (name, value) in pairs {
        let name = match *name {
            "traceparent" => TRACEPARENT,
            "tracestate" => TRACESTATE,
            _ => continue,
        };
        let value = http::HeaderValue::from_str(value)
            .or_err(ErrorType::InvalidHTTPHeader, "invalid trace context header")?;
        insert(headers, name, value)?;
    }
    Ok(())
}

pub fn insert(headers: &mut HeaderMap, name: HeaderName, value: http::HeaderValue) -> Result<()> {
    headers
        .try_insert(name, value)
        .or_err(ErrorType::InvalidHTTPHeader, "too many headers")?;
    Ok(())
}

/// Inserts `value` under `name` unless the map has that name already (one
/// lookup, not two).
pub fn insert_absent(
    headers: &mut HeaderMap,
    name: HeaderName,
    value: http::HeaderValue,
) -> Result<()> {
    match headers.try_entry(name) {
        Ok(http::header::Entry::Vacant(slot)) => {
            slot.try_insert(value)
                .or_err(ErrorType::InvalidHTTPHeader, "too many headers")?;
        }
        Ok(http::header::Entry::Occupied(_)) => {}
        Err(_) => return Error::e_explain(ErrorType::InvalidHTTPHeader, "invalid header name"),
    }
    Ok(())
}

/// The hop-by-hop headers a buffered exchange must not pass on (RFC 9110
/// §7.6.1, plus `expect`, which the gateway has answered already).
pub const HOP_BY_HOP: [HeaderName; 8] = [
    http::header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    http::header::TE,
    http::header::TRAILER,
    http::header::TRANSFER_ENCODING,
    http::header::UPGRADE,
    http::header::EXPECT,
];

/// Removes every [`HOP_BY_HOP`] header.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

/// An IP address as a header value; IPv4 (the common case) without the
/// formatting machinery, which costs more than the rest of the header edit.
pub fn ip_value(ip: std::net::IpAddr) -> http::HeaderValue {
    let std::net::IpAddr::V4(v4) = ip else {
        return http::HeaderValue::try_from(ip.to_string())
            .unwrap_or_else(|_| http::HeaderValue::from_static("unknown"));
    };
    let mut text = [0u8; 15];
    let mut n = 0;
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            text[n] = b'.';
            n += 1;
        }
        if octet >= 100 {
            text[n] = b'0' + octet / 100;
            n += 1;
        }
        if octet >= 10 {
            text[n] = b'0' + octet / 10 % 10;
            n += 1;
        }
        text[n] = b'0' + octet % 10;
        n += 1;
    }
    http::HeaderValue::from_bytes(&text[..n])
        .unwrap_or_else(|_| http::HeaderValue::from_static("unknown"))
}

fn reserve(headers: &mut HeaderMap, extra: usize) -> Result<()> {
    headers
        .try_reserve(extra)
        .map_err(|_| Error::explain(ErrorType::InvalidHTTPHeader, "too many headers"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn wire_request(req: &RequestHeader) -> String {
        let mut buf = Vec::new();
        req.header_to_h1_wire(&mut buf);
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn request_keeps_method_target_and_headers() {
        let mut req = RequestHeader::build("POST", b"/a/b?c=d", None).unwrap();
        req.insert_header("X-Client", "1").unwrap();
        req.append_header("Accept", "a").unwrap();
        req.append_header("Accept", "b").unwrap();
        edit_request(&mut req, 2, |h| {
            insert(h, H_USER_ID, HeaderValue::from_static("u"))?;
            insert(h, H_REQUEST_ID, HeaderValue::from_static("r"))
        })
        .unwrap();
        assert_eq!(req.method, http::Method::POST);
        assert_eq!(req.raw_path(), b"/a/b?c=d");
        assert_eq!(req.headers["x-client"], "1");
        let accept: Vec<_> = req.headers.get_all("accept").iter().collect();
        assert_eq!(accept, ["a", "b"]);
        assert_eq!(req.headers["x-sentinel-user-id"], "u");
        assert!(!req.has_case());
        let wire = wire_request(&req);
        assert!(wire.contains("x-client: 1\r\n"), "{wire}");
        assert!(wire.contains("x-sentinel-request-id: r\r\n"), "{wire}");
    }

    #[test]
    fn request_replaces_existing_values() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.append_header("x-sentinel-user-id", "forged").unwrap();
        req.append_header("x-sentinel-user-id", "forged2").unwrap();
        edit_request(&mut req, 1, |h| {
            insert(h, H_USER_ID, HeaderValue::from_static("real"))
        })
        .unwrap();
        let all: Vec<_> = req.headers.get_all(H_USER_ID).iter().collect();
        assert_eq!(all, ["real"]);
    }

    #[test]
    fn request_keeps_a_target_the_uri_does_not_reproduce() {
        let mut req = RequestHeader::build("GET", b"/caf\xe9?x=\xff", None).unwrap();
        assert!(!req.raw_path_is_utf8());
        edit_request(&mut req, 1, |_| Ok(())).unwrap();
        assert_eq!(req.raw_path(), b"/caf\xe9?x=\xff");
        assert!(!req.raw_path_is_utf8());

        let mut req = RequestHeader::build("GET", b"http://example.com/p?q", None).unwrap();
        edit_request(&mut req, 1, |_| Ok(())).unwrap();
        assert_eq!(req.raw_path(), b"http://example.com/p?q");
    }

    #[test]
    fn request_keeps_h2_end_of_stream() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.set_version(http::Version::HTTP_2);
        req.set_send_end_stream(false);
        edit_request(&mut req, 1, |_| Ok(())).unwrap();
        assert_eq!(req.send_end_stream(), Some(false));
    }

    #[test]
    fn a_failed_edit_leaves_the_request_whole() {
        let mut req = RequestHeader::build("DELETE", b"/x", None).unwrap();
        req.insert_header("x-a", "1").unwrap();
        let err = edit_request(&mut req, 1, |h| {
            insert(h, H_ROLES, HeaderValue::from_static("r"))?;
            Err::<(), _>(Error::explain(ErrorType::InternalError, "boom"))
        });
        assert!(err.is_err());
        assert_eq!(req.method, http::Method::DELETE);
        assert_eq!(req.raw_path(), b"/x");
        assert_eq!(req.headers["x-a"], "1");
    }

    fn head(version: http::Version, headers: &[(&str, &str)]) -> RequestHeader {
        let mut req = RequestHeader::build("GET", b"/p", None).unwrap();
        req.set_version(version);
        for (n, v) in headers {
            req.append_header(n.to_string(), *v).unwrap();
        }
        req
    }

    #[test]
    fn reserved_names_read_underscores_as_dashes_in_any_case() {
        for name in [
            "x-sentinel-user-id",
            "X-Sentinel-Roles",
            "x_sentinel_user_id",
            "X_SENTINEL_TENANT_ID",
            "x-sentinel_roles",
            "x_Sentinel-assertion",
        ] {
            assert!(is_reserved(name.as_bytes()), "{name}");
        }
        for name in [
            "x-sentinel",
            "x-sentinelx-a",
            "y-sentinel-a",
            "x--sentinel-a",
        ] {
            assert!(!is_reserved(name.as_bytes()), "{name}");
        }
    }

    #[test]
    fn screening_drops_rejects_or_allows_underscores() {
        let hostile = [
            ("host", "h"),
            ("x_sentinel_user_id", "EVIL"),
            ("x_custom", "1"),
            ("x-sentinel-roles", "admin"),
            ("accept", "a"),
        ];
        let mut req = head(http::Version::HTTP_11, &hostile);
        screen_request(&mut req, &ClientHeaders::default(), false).unwrap();
        let mut names: Vec<_> = req.headers.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["accept", "host"]);

        let mut req = head(http::Version::HTTP_11, &hostile);
        let reject = ClientHeaders {
            underscores: Underscores::Reject,
        };
        assert_eq!(
            screen_request(&mut req, &reject, false),
            Err(HeaderProblem::Underscore)
        );

        let mut req = head(http::Version::HTTP_11, &hostile);
        let allow = ClientHeaders {
            underscores: Underscores::Allow,
        };
        screen_request(&mut req, &allow, false).unwrap();
        let mut names: Vec<_> = req.headers.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["accept", "host", "x_custom"]);
    }

    #[test]
    fn forwarding_headers_only_from_trusted_peers_overrides_never() {
        let sent = [
            ("host", "h"),
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
            ("forwarded", "for=1.2.3.4"),
            ("x-real-ip", "1.2.3.4"),
            ("client-ip", "1.2.3.4"),
            ("true-client-ip", "1.2.3.4"),
            ("x-http-method-override", "DELETE"),
            ("x-original-url", "/admin"),
        ];
        let mut req = head(http::Version::HTTP_11, &sent);
        screen_request(&mut req, &ClientHeaders::default(), false).unwrap();
        let names: Vec<_> = req.headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["host"]);

        let mut req = head(http::Version::HTTP_11, &sent);
        screen_request(&mut req, &ClientHeaders::default(), true).unwrap();
        let mut names: Vec<_> = req.headers.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "client-ip",
                "forwarded",
                "host",
                "true-client-ip",
                "x-forwarded-for",
                "x-forwarded-proto",
                "x-real-ip"
            ]
        );
    }

    #[test]
    fn host_rules_follow_rfc_9112() {
        let rules = ClientHeaders::default();
        let mut req = head(http::Version::HTTP_11, &[]);
        assert_eq!(
            screen_request(&mut req, &rules, false),
            Err(HeaderProblem::MissingHost)
        );
        let mut req = head(http::Version::HTTP_11, &[("host", "a"), ("host", "b")]);
        assert_eq!(
            screen_request(&mut req, &rules, false),
            Err(HeaderProblem::SeveralHosts)
        );
        let mut req = head(http::Version::HTTP_10, &[]);
        assert_eq!(screen_request(&mut req, &rules, false), Ok(()));
        let mut req = head(http::Version::HTTP_2, &[]);
        assert_eq!(screen_request(&mut req, &rules, false), Ok(()));
    }

    #[test]
    fn ip_values_read_like_display() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.30.40",
            "99.100.109.110",
            "255.255.255.255",
            "1.2.3.4",
            "::1",
            "2001:db8::8a2e:370:7334",
            "::ffff:192.0.2.1",
        ] {
            let parsed: std::net::IpAddr = ip.parse().unwrap();
            assert_eq!(ip_value(parsed), parsed.to_string().as_str(), "{ip}");
        }
    }

    #[test]
    fn insert_absent_keeps_what_is_there() {
        let mut h = HeaderMap::new();
        h.insert("x-frame-options", HeaderValue::from_static("SAMEORIGIN"));
        insert_absent(
            &mut h,
            http::header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        )
        .unwrap();
        insert_absent(
            &mut h,
            http::header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        )
        .unwrap();
        assert_eq!(h["x-frame-options"], "SAMEORIGIN");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h.len(), 2);
    }

    #[test]
    fn response_keeps_status_reason_and_headers() {
        let mut resp = ResponseHeader::build(299, None).unwrap();
        resp.set_reason_phrase(Some("Fine Really")).unwrap();
        resp.insert_header("Content-Type", "application/json")
            .unwrap();
        edit_response(&mut resp, 1, |h| {
            insert(h, H_REQUEST_ID, HeaderValue::from_static("r"))
        })
        .unwrap();
        assert_eq!(resp.status.as_u16(), 299);
        assert_eq!(resp.get_reason_phrase(), Some("Fine Really"));
        assert_eq!(resp.headers["content-type"], "application/json");
        assert_eq!(resp.headers["x-sentinel-request-id"], "r");

        let mut resp = ResponseHeader::build(404, None).unwrap();
        edit_response(&mut resp, 0, |_| Ok(())).unwrap();
        assert_eq!(resp.get_reason_phrase(), Some("Not Found"));
    }
}
