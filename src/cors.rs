//! CORS per route: preflights are answered at the edge (they carry no
//! credentials, so they never reach authentication or the upstream); actual
//! responses get `Access-Control-Allow-*` headers for allowed origins only.

use crate::routes::Cors;
use http::HeaderValue;
use pingora::http::{RequestHeader, ResponseHeader};

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
    response: &mut ResponseHeader,
) -> pingora::Result<()> {
    let allow_origin = if cors.any_origin {
        HeaderValue::from_static("*")
    } else {
        origin.clone()
    };
    response.insert_header(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin)?;
    if cors.credentials {
        response.insert_header(http::header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true")?;
    }
    if !cors.expose_headers.is_empty() {
        response.insert_header(
            http::header::ACCESS_CONTROL_EXPOSE_HEADERS,
            &*cors.expose_headers,
        )?;
    }
    response.append_header(http::header::VARY, "Origin")?;
    Ok(())
}
