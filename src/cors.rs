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
    let methods = HeaderValue::from_str(&cors.methods).ok()?;
    let allowed_headers = HeaderValue::from_str(&cors.headers).ok()?;
    crate::headers::edit_response(&mut h, 7, |m| {
        use crate::headers::insert;
        insert(m, header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin)?;
        insert(m, header::ACCESS_CONTROL_ALLOW_METHODS, methods)?;
        insert(m, header::ACCESS_CONTROL_ALLOW_HEADERS, allowed_headers)?;
        insert(
            m,
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from(cors.max_age_secs),
        )?;
        if cors.credentials {
            insert(
                m,
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            )?;
        }
        insert(
            m,
            header::VARY,
            HeaderValue::from_static(
                "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
            ),
        )?;
        insert(m, header::CONTENT_LENGTH, HeaderValue::from_static("0"))
    })
    .ok()?;
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
