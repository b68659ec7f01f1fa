//! What the upstream learns about the caller: client-sent `x-sentinel-*`
//! headers and the consumed credential are removed, the gateway's identity
//! headers and assertion are set (both proxy paths), and an upstream's own
//! `x-sentinel-*` response headers are removed.

use super::Ctx;
use crate::headers::{
    self, H_ASSERTION, H_REQUEST_ID, H_ROLES, H_SERVICE_ACCOUNT, H_TENANT_ID, H_USER_ID,
    X_FORWARDED_FOR,
};
use http::{HeaderMap, HeaderName, HeaderValue};
use pingora::http::RequestHeader;
use pingora::Result;

/// How many headers [`apply`] may add without tracing.
const IDENTITY_HEADERS: usize = 7;

/// How many headers [`apply`] may add for this request: the trace context
/// takes two more only while tracing.
pub(super) fn room(ctx: &Ctx) -> usize {
    IDENTITY_HEADERS + if ctx.trace.is_some() { 2 } else { 0 }
}

/// Replaces client identity headers with the gateway's (the streamed path).
pub(super) fn set_identity(upstream_request: &mut RequestHeader, ctx: &Ctx) -> Result<()> {
    headers::edit_request(upstream_request, room(ctx), |h| apply(h, ctx))
}

/// [`set_identity`] on headers being edited already (the bound path edits
/// more in the same pass).
pub(super) fn apply(h: &mut HeaderMap, ctx: &Ctx) -> Result<()> {
    let forwarded_for = ctx.client_ip.map(headers::ip_value);
    strip_client_identity(h);
    // The credential the gateway consumed stays at the edge (a request
    // that authenticated carries exactly one of the two): the upstream
    // gets the signed assertion instead, so it can never replay the
    // caller's token or key against other routes.
    if ctx.identity.is_some() && !ctx.route.as_ref().is_some_and(|r| r.forward_credentials) {
        h.remove(http::header::AUTHORIZATION);
        h.remove(headers::X_API_KEY);
    }
    // Ready-made values: inserting clones them (a reference count), no copy.
    headers::insert(h, H_REQUEST_ID, ctx.request_id_header.clone())?;
    if let Some(identity) = &ctx.identity {
        headers::insert(h, H_USER_ID, identity.user_id.clone())?;
        headers::insert(h, H_TENANT_ID, identity.tenant_id.clone())?;
        headers::insert(h, H_ROLES, identity.roles.clone())?;
        headers::insert(h, H_SERVICE_ACCOUNT, identity.service_account.clone())?;
        headers::insert(h, H_ASSERTION, identity.assertion.clone())?;
    }
    if let Some(value) = forwarded_for {
        headers::insert(h, X_FORWARDED_FOR, value)?;
    }
    if let Some(t) = &ctx.trace {
        headers::set_trace_context(h, t.upstream_headers())?;
    }
    Ok(())
}

/// The reserved namespace, `_` read as `-` ([`headers::is_reserved`]).
fn is_sentinel(name: &str) -> bool {
    headers::is_reserved(name.as_bytes())
}

/// Removes every `x-sentinel-*` header.
pub fn strip_sentinel(headers: &mut HeaderMap) {
    if !headers.keys().any(|k| is_sentinel(k.as_str())) {
        return;
    }
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|k| is_sentinel(k.as_str()))
        .cloned()
        .collect();
    for n in names {
        headers.remove(&n);
    }
}

/// Removes every client-sent `x-sentinel-*` header, and every `x-sentinel-*`
/// token of `Connection` (so no next hop drops the gateway's own headers).
pub fn strip_client_identity(headers: &mut HeaderMap) {
    strip_sentinel(headers);
    let names_sentinel = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .any(|v| v.as_bytes().windows(11).any(headers::is_reserved));
    if !names_sentinel {
        return;
    }
    let kept: Vec<String> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty() && !is_sentinel(t))
        .collect();
    headers.remove(http::header::CONNECTION);
    if kept.is_empty() {
        return;
    }
    // The tokens came from a header value, lowercased: always a valid value.
    if let Ok(value) = HeaderValue::try_from(kept.join(", ")) {
        let _ = headers.try_insert(http::header::CONNECTION, value);
    }
}
