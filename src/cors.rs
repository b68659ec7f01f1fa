//! CORS per route: preflights are answered at the edge (they carry no
//! credentials, so they never reach authentication or the upstream); actual
//! responses get `Access-Control-Allow-*` headers for allowed origins only.

use crate::routes::Cors;
use http::{header, HeaderMap, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::OrErr;

/// The request's `Origin`, if the route allows it.
pub fn allowed_origin(cors: &Cors, req: &RequestHeader) -> Option<HeaderValue> {
    let origin = req.headers.get(http::header::ORIGIN)?;
    let s = origin.to_str().ok()?;
    cors.allows_origin(s).then(|| origin.clone())
}

/// The answer to a preflight: `204` with the allow headers, or `None` when the
/// origin or the requested method is not allowed (the caller answers `403`).
pub fn preflight(cors: &Cors, req: &RequestHeader) -> Option<ResponseHeader> {
    let origin = allowed_origin(cors, req)?;
    let requested = req
        .headers
        .get(http::header::ACCESS_CONTROL_REQUEST_METHOD)?
        .to_str()
        .ok()?;
    if !cors
        .methods
        .split(',')
        .any(|m| m.trim().eq_ignore_ascii_case(requested.trim()))
    {
        return None;
    }
    let mut h = ResponseHeader::build(204, Some(8)).ok()?;
    let allow_origin = if cors.any_origin {
        HeaderValue::from_static("*")
    } else {
        origin
    };
    h.insert_header(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin)
        .ok()?;
    h.insert_header(http::header::ACCESS_CONTROL_ALLOW_METHODS, &*cors.methods)
        .ok()?;
    h.insert_header(http::header::ACCESS_CONTROL_ALLOW_HEADERS, &*cors.headers)
        .ok()?;
    h.insert_header(
        http::header::ACCESS_CONTROL_MAX_AGE,
        cors.max_age_secs.to_string(),
    )
    .ok()?;
    if cors.credentials {
        h.insert_header(http::header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true")
            .ok()?;
    }
    h.insert_header(
        http::header::VARY,
        "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
    )
    .ok()?;
    h.insert_header(http::header::CONTENT_LENGTH, "0").ok()?;
    Some(h)
}

/// Adds CORS headers to an actual (non-preflight) response.
pub fn apply_actual(
    cors: &Cors,
    origin: &HeaderValue,
    headers: &mut HeaderMap,
) -> pingora::Result<()> {
    use crate::headers::insert;
    let allow_origin = if cors.any_origin {
        HeaderValue::from_static("*")
    } else {
        origin.clone()
    };
    insert(headers, header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin)?;
    if cors.credentials {
        insert(
            headers,
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        )?;
    }
    if !cors.expose_headers.is_empty() {
        let expose = HeaderValue::from_str(&cors.expose_headers).or_err(
            pingora::ErrorType::InvalidHTTPHeader,
            "invalid expose headers",
        )?;
        insert(headers, header::ACCESS_CONTROL_EXPOSE_HEADERS, expose)?;
    }
    headers
        .try_append(header::VARY, HeaderValue::from_static("Origin"))
        .or_err(pingora::ErrorType::InvalidHTTPHeader, "too many headers")?;
    Ok(())
}
