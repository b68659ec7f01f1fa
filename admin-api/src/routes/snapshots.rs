//! `/api/v1/snapshots`: the signed policy snapshots gateways pull.
//!
//! - `GET /latest[?since=VERSION][&wait=SECONDS]` with
//!   `If-None-Match: "<version>"`: the newest snapshot as a bundle
//!   (`sentinel_policy::bundle::encode`: the signature, the exact signed
//!   manifest bytes, and the bytes of the parts first published after
//!   `since`; every part without `since`), its version (`ETag`,
//!   `X-Sentinel-Snapshot-Version`); `304` when the caller already holds it
//!   and nothing newer arrived within `wait` (0..=60, default 0) seconds;
//!   `503 POLICY_UNAVAILABLE` before the first snapshot. Callers: platform
//!   service accounts holding `snapshot:read` (API key), or platform
//!   superadmins (bearer token).
//! - `GET /jwks` (public): the keys that sign snapshots.
//!
//! The payload is the whole platform's policy: a tenant principal never
//! reads it.

use crate::auth::{self, Caller};
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::extract::Query;
use crate::openapi::routes::{doc, Routes};
use crate::scopes::ScopeSet;
use crate::snapshot::Published;
use crate::state::AppState;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sentinel_policy::bundle;
use sentinel_policy::PLATFORM_TENANT;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Longest long-poll, seconds.
pub const MAX_WAIT_SECONDS: u64 = 60;

pub fn router() -> Routes {
    Routes::new()
        .get("/latest", latest, doc("snapshot:read", "The latest signed policy snapshot as a bundle: signature, manifest, and the parts first published after ?since= (ETag, If-None-Match, ?wait= long-poll; platform service-account API key)").json(bundle_schema()))
        .get("/jwks", jwks, doc("none", "Public keys that sign policy snapshots (next, current, previous)"))
}

/// The bundle a gateway reads (`sentinel_policy::bundle`): the signed
/// manifest, its signature, and the parts the caller lacks (each a part's
/// JSON by SHA-256).
fn bundle_schema() -> serde_json::Value {
    serde_json::json!({
        "type": "object",
        "required": ["manifest", "signature"],
        "properties": {
            "manifest": {"type": "object", "description": "format, version, the global part and one part per tenant, each by SHA-256 and `since`"},
            "signature": {"type": "string"},
            "parts": {"type": "object", "additionalProperties": {"type": "object"}}
        }
    })
}

/// A principal allowed to read the whole policy.
#[derive(Debug, Clone)]
pub struct SnapshotReader {
    pub user_id: Uuid,
}

/// The credential of a machine caller.
pub(crate) enum Credential<'a> {
    ApiKey(&'a str),
    Bearer,
}

/// `Authorization: ApiKey …` / `X-API-Key`, or a bearer token.
pub(crate) fn credential(headers: &HeaderMap) -> ApiResult<Credential<'_>> {
    if let Some(v) = headers.get(header::AUTHORIZATION) {
        let s = v.to_str().map_err(|_| ApiError::AuthInvalid)?;
        let (scheme, rest) = s.split_once(' ').ok_or(ApiError::AuthInvalid)?;
        let rest = rest.trim();
        if rest.is_empty() {
            return Err(ApiError::AuthInvalid);
        }
        if scheme.eq_ignore_ascii_case("apikey") {
            return Ok(Credential::ApiKey(rest));
        }
        if scheme.eq_ignore_ascii_case("bearer") {
            return Ok(Credential::Bearer);
        }
        return Err(ApiError::AuthInvalid);
    }
    match headers.get("x-api-key") {
        Some(v) => {
            let k = v.to_str().map_err(|_| ApiError::AuthInvalid)?.trim();
            if k.is_empty() {
                Err(ApiError::AuthInvalid)
            } else {
                Ok(Credential::ApiKey(k))
            }
        }
        None => Err(ApiError::AuthRequired),
    }
}

/// Verifies a service-account API key and returns the scopes its roles carry.
async fn api_key_reader(state: &AppState, key: &str) -> ApiResult<SnapshotReader> {
    let (user_id, tenant_id, mut tx) = crate::domain::api_keys::verify(state, key).await?;
    let scopes = auth::effective_scopes(&mut tx, user_id).await?;
    tx.commit().await?;
    let set = ScopeSet::from_scopes(
        scopes.iter().map(String::as_str),
        tenant_id == PLATFORM_TENANT,
    );
    if !set.can_read_snapshots() {
        return Err(ApiError::denied(
            "scope `snapshot:read` of the platform tenant required",
        ));
    }
    Ok(SnapshotReader { user_id })
}

impl FromRequestParts<AppState> for SnapshotReader {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match credential(&parts.headers)? {
            Credential::ApiKey(k) => {
                let k = k.to_owned();
                api_key_reader(state, &k).await
            }
            Credential::Bearer => {
                let caller = Caller::from_request_parts(parts, state).await?;
                if caller.scopes.can_read_snapshots() {
                    Ok(SnapshotReader {
                        user_id: caller.user_id,
                    })
                } else {
                    Err(ApiError::denied(
                        "scope `snapshot:read` of the platform tenant required",
                    ))
                }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatestParams {
    pub wait: Option<String>,
    pub since: Option<String>,
}

/// `since`: the version the caller holds (0 or absent: none).
fn since_of(q: &LatestParams) -> ApiResult<u64> {
    let Some(s) = q.since.as_deref() else {
        return Ok(0);
    };
    s.trim().parse().map_err(|_| {
        FieldErrors::one(
            "since",
            "must be a snapshot version (a whole number, 0 or more)",
        )
    })
}

/// `wait` in seconds, clamped to 0..=60; a non-number is a validation error.
fn wait_of(q: &LatestParams) -> ApiResult<Duration> {
    let Some(w) = q.wait.as_deref() else {
        return Ok(Duration::ZERO);
    };
    let secs: i64 = w
        .trim()
        .parse()
        .map_err(|_| FieldErrors::one("wait", "must be a whole number of seconds (0-60)"))?;
    Ok(Duration::from_secs(
        u64::try_from(secs.max(0))
            .unwrap_or(0)
            .min(MAX_WAIT_SECONDS),
    ))
}

/// The versions named in `If-None-Match` (`"5"`, `W/"5"`, lists).
fn held_versions(headers: &HeaderMap) -> Vec<u64> {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| {
            let t = t.trim();
            let t = t.strip_prefix("W/").unwrap_or(t);
            t.strip_prefix('"')?.strip_suffix('"')?.parse().ok()
        })
        .collect()
}

fn etag(version: u64) -> HeaderValue {
    // INVARIANT: digits and quotes are always a valid header value.
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

fn version_header(version: u64) -> HeaderValue {
    HeaderValue::from(version)
}

fn not_modified(version: u64) -> Response {
    let mut r = StatusCode::NOT_MODIFIED.into_response();
    let h = r.headers_mut();
    h.insert(header::ETAG, etag(version));
    h.insert("x-sentinel-snapshot-version", version_header(version));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The bundle of `p` with the parts first published after `since`.
async fn full(state: &AppState, p: &Published, since: u64) -> ApiResult<Response> {
    let parts = state
        .live
        .parts(&state.platform, p, since)
        .await
        .map_err(ApiError::internal)?;
    let refs: Vec<(&str, &[u8])> = parts.iter().map(|(s, b)| (s.as_str(), &b[..])).collect();
    let body = bundle::encode(&p.signature, &p.manifest_bytes, &refs);
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::ETAG, etag(p.version));
    h.insert("x-sentinel-snapshot-version", version_header(p.version));
    // The parts carry API-key hashes and every tenant's policy.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

async fn latest(
    State(state): State<AppState>,
    _reader: SnapshotReader,
    headers: HeaderMap,
    Query(q): Query<LatestParams>,
) -> ApiResult<Response> {
    let wait = wait_of(&q)?;
    let since = since_of(&q)?;
    let held = held_versions(&headers);
    let live = &state.live;
    // Subscribe before reading, so a version published in between is not missed.
    let mut rx = live.subscribe();
    let mut closing = live.closing();
    let current: Option<Arc<Published>> = live.latest(&state.platform).await?;
    let Some(mut current) = current else {
        return Err(ApiError::PolicyUnavailable);
    };
    if !held.contains(&current.version) {
        return full(&state, &current, since).await;
    }
    if wait.is_zero() {
        return Ok(not_modified(current.version));
    }
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        // Without a live LISTEN connection nothing updates the cache: poll the database.
        let step = if live.is_listening() {
            deadline
        } else {
            deadline.min(tokio::time::Instant::now() + Duration::from_millis(250))
        };
        tokio::select! {
            changed = rx.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            _ = tokio::time::sleep_until(step) => {}
            _ = closing.changed() => break,
        }
        if let Some(p) = live.latest(&state.platform).await? {
            current = p;
        }
        if !held.contains(&current.version) {
            return full(&state, &current, since).await;
        }
        if tokio::time::Instant::now() >= deadline || *closing.borrow() {
            break;
        }
    }
    Ok(not_modified(current.version))
}

async fn jwks(State(state): State<AppState>) -> Response {
    (
        [(header::CACHE_CONTROL, "max-age=60")],
        axum::Json(state.live.jwks().as_ref().clone()),
    )
        .into_response()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_forms() {
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"7\""));
        assert_eq!(held_versions(&h), vec![7]);
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("W/\"3\", \"9\", bogus, \"x\""),
        );
        assert_eq!(held_versions(&h), vec![3, 9]);
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(held_versions(&h).is_empty());
    }

    #[test]
    fn wait_is_clamped() {
        let w = |s: &str| {
            wait_of(&LatestParams {
                wait: Some(s.to_owned()),
                since: None,
            })
        };
        assert_eq!(w("0").unwrap(), Duration::ZERO);
        assert_eq!(w("-5").unwrap(), Duration::ZERO);
        assert_eq!(w("30").unwrap(), Duration::from_secs(30));
        assert_eq!(w("3600").unwrap(), Duration::from_secs(60));
        assert!(w("soon").is_err());
        assert_eq!(
            wait_of(&LatestParams {
                wait: None,
                since: None
            })
            .unwrap(),
            Duration::ZERO
        );
    }
}
