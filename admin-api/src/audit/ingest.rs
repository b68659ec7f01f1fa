//! `POST /api/v1/audit/events`: gateways ship their decisions here, in
//! ndjson batches (`Content-Encoding: gzip` or identity), with the API key
//! of a platform service account holding `audit:write`.
//!
//! All or nothing: the body is read (at most [`MAX_BODY`] bytes, also
//! decompressed, so a gzip bomb stops at the cap), every line is checked,
//! and either every event is stored in one transaction or none is. Answers
//! `200 {"accepted", "duplicates"}` only after the commit; the sender treats
//! that as its acknowledgement.

use super::event::parse_line;
use super::store;
use crate::auth;
use crate::db::TenantCtx;
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::routes::snapshots::{credential, Credential};
use crate::scopes::ScopeSet;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use sentinel_policy::PLATFORM_TENANT;
use serde_json::{json, Map, Value};
use std::io::Read;
use uuid::Uuid;

/// Most events in one batch.
pub const MAX_EVENTS: usize = 10_000;
/// Largest batch, bytes, before and after decompression (16 MiB).
pub const MAX_BODY: usize = 16 * 1024 * 1024;
/// Line problems reported in one answer.
pub const MAX_REPORTED: usize = 20;

/// A gateway allowed to ship events: a platform service account holding
/// `audit:write`, authenticated by its API key.
#[derive(Debug, Clone)]
pub struct Shipper {
    pub user_id: Uuid,
    /// The service account's name, stamped on every event as `gateway`.
    pub name: String,
}

impl FromRequestParts<AppState> for Shipper {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let key = match credential(&parts.headers)? {
            Credential::ApiKey(k) => k.to_owned(),
            // Events are shipped with a gateway's key, never a person's token.
            Credential::Bearer => return Err(ApiError::AuthInvalid),
        };
        let (user_id, tenant_id, mut tx) = crate::domain::api_keys::verify(state, &key).await?;
        let scopes = auth::effective_scopes(&mut tx, user_id).await?;
        let name: String = sqlx::query_scalar("SELECT name FROM sentinel.users WHERE id = $1")
            .bind(user_id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        let set = ScopeSet::from_scopes(
            scopes.iter().map(String::as_str),
            tenant_id == PLATFORM_TENANT,
        );
        if !set.can_write_audit() {
            return Err(ApiError::denied(
                "scope `audit:write` of the platform tenant required",
            ));
        }
        Ok(Shipper { user_id, name })
    }
}

/// Reads the body: at most [`MAX_BODY`] bytes as sent and as decompressed.
async fn read_body(headers: &HeaderMap, body: Body) -> ApiResult<Vec<u8>> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase());
    let gzip = match encoding.as_deref() {
        None | Some("identity") | Some("") => false,
        Some("gzip") | Some("x-gzip") => true,
        Some(_) => {
            return Err(FieldErrors::one(
                "Content-Encoding",
                "must be `gzip` or `identity`",
            ))
        }
    };
    let raw = Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map_err(|e| {
            if e.downcast_ref::<LengthLimitError>().is_some() {
                ApiError::BodyTooLarge
            } else {
                ApiError::BadRequest("cannot read the request body")
            }
        })?
        .to_bytes();
    if !gzip {
        return Ok(raw.to_vec());
    }
    let mut out = Vec::with_capacity(raw.len().saturating_mul(4).min(MAX_BODY));
    let mut decoder = flate2::read::MultiGzDecoder::new(&raw[..]).take(MAX_BODY as u64 + 1);
    decoder
        .read_to_end(&mut out)
        .map_err(|_| ApiError::BadRequest("the gzip body is malformed"))?;
    if out.len() > MAX_BODY {
        return Err(ApiError::BodyTooLarge);
    }
    Ok(out)
}

fn check_content_type(headers: &HeaderMap) -> ApiResult<()> {
    let ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .is_some_and(|m| {
            matches!(
                m.as_str(),
                "application/x-ndjson" | "application/ndjson" | "application/jsonl"
            )
        });
    if ok {
        Ok(())
    } else {
        Err(FieldErrors::one(
            "Content-Type",
            "expected `application/x-ndjson`",
        ))
    }
}

/// The contract's 422: `details.errors = [{"line", "message"}]`.
fn line_errors(errors: Vec<(usize, String)>, total: usize) -> ApiError {
    let mut details = Map::new();
    details.insert(
        "errors".to_owned(),
        Value::Array(
            errors
                .into_iter()
                .map(|(line, message)| json!({"line": line, "message": message}))
                .collect(),
        ),
    );
    details.insert("invalid_lines".to_owned(), json!(total));
    ApiError::Validation(FieldErrors(details))
}

pub async fn ingest(
    State(state): State<AppState>,
    shipper: Shipper,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<axum::Json<Value>> {
    let started = std::time::Instant::now();
    check_content_type(&headers)?;
    let bytes = read_body(&headers, body).await?;
    let now = chrono::Utc::now();
    let mut events = Vec::new();
    let mut errors = Vec::new();
    let mut invalid = 0usize;
    for (n, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if events.len() + invalid >= MAX_EVENTS {
            return Err(ApiError::BodyTooLarge);
        }
        match parse_line(line, now, &shipper.name) {
            Ok(e) => events.push(e),
            Err(message) => {
                invalid += 1;
                if errors.len() < MAX_REPORTED {
                    errors.push((n + 1, message));
                }
            }
        }
    }
    if invalid > 0 {
        return Err(line_errors(errors, invalid));
    }
    let mut tx = state.begin(TenantCtx::All).await?;
    let done = store::append(&mut tx, events).await?;
    tx.commit().await?;
    let m = &state.metrics;
    m.audit_ingested_total.inc_by(done.accepted);
    m.audit_duplicates_total.inc_by(done.duplicates);
    m.audit_ingest_seconds
        .observe(started.elapsed().as_secs_f64());
    Ok(axum::Json(
        json!({"accepted": done.accepted, "duplicates": done.duplicates}),
    ))
}
