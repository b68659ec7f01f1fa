//! Request extractors whose rejections are [`ApiError`]s, so that malformed
//! input gets the SPEC error body: JSON bodies and queries answer 422
//! `VALIDATION_ERROR`, a malformed id in a path answers like a missing object.
//!
//! This is also the one place hostile input is refused before any handler or
//! SQL sees it: a NUL character in any JSON string or key, query value or
//! path segment (PostgreSQL's `text` cannot hold one, so it would surface as
//! a 500), and a JSON body that is not an object (every body of this API is
//! one; serde would otherwise read `[null, null]` as a struct's fields).

use crate::error::{ApiError, FieldErrors};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

/// A JSON body.
pub struct Json<T>(pub T);

fn serde_problem(msg: &str) -> ApiError {
    // serde_json names the field in messages like "missing field `email`" and
    // "unknown field `x`, expected ..."; report those per field.
    let field = msg
        .split('`')
        .nth(1)
        .filter(|_| msg.starts_with("missing field") || msg.starts_with("unknown field"))
        .unwrap_or("body");
    let clean = msg.split(" at line ").next().unwrap_or(msg);
    FieldErrors::one(field, clean)
}

impl<S, T> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json") || v.contains("+json"));
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::BodyTooLarge
                } else {
                    FieldErrors::one("body", "cannot read the request body")
                }
            })?;
        if !is_json {
            return Err(FieldErrors::one(
                "body",
                "expected `Content-Type: application/json`",
            ));
        }
        parse_object(&bytes).map(Json)
    }
}

/// A JSON object body, refused when it holds a NUL anywhere.
fn parse_object<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| serde_problem(&e.to_string()))?;
    if !value.is_object() {
        return Err(FieldErrors::one("body", "expected a JSON object"));
    }
    if let Some(at) = nul_at(&value, "") {
        return Err(FieldErrors::one(
            if at.is_empty() { "body" } else { &at },
            "must not contain a NUL character",
        ));
    }
    serde_json::from_value(value).map_err(|e| serde_problem(&e.to_string()))
}

/// The dotted path of the first string or key holding a NUL character.
fn nul_at(v: &serde_json::Value, at: &str) -> Option<String> {
    use serde_json::Value;
    match v {
        Value::String(s) if s.contains('\0') => Some(at.to_owned()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, x)| nul_at(x, &format!("{at}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, x)| {
            let here = if at.is_empty() {
                k.clone()
            } else {
                format!("{at}.{k}")
            };
            if k.contains('\0') {
                Some(here)
            } else {
                nul_at(x, &here)
            }
        }),
        _ => None,
    }
}

/// `%00` in a raw path or query decodes to a NUL character.
fn has_encoded_nul(raw: &str) -> bool {
    raw.contains("%00")
}

/// Path parameters; an unparsable id is a missing object.
pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if has_encoded_nul(parts.uri.path()) {
            return Err(FieldErrors::one("path", "must not contain a NUL character"));
        }
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|_| ApiError::NotFound)
    }
}

/// Query parameters.
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        if has_encoded_nul(q) {
            return Err(FieldErrors::one(
                "query",
                "must not contain a NUL character",
            ));
        }
        serde_urlencoded_from_str(q).map(Query)
    }
}

fn serde_urlencoded_from_str<T: DeserializeOwned>(q: &str) -> Result<T, ApiError> {
    axum::extract::Query::<T>::try_from_uri(
        &format!("/?{q}")
            .parse()
            .map_err(|_| FieldErrors::one("query", "malformed query string"))?,
    )
    .map(|x| x.0)
    .map_err(|e| {
        let msg = e.body_text();
        let msg = msg
            .strip_prefix("Failed to deserialize query string: ")
            .unwrap_or(&msg)
            .to_owned();
        FieldErrors::one("query", msg)
    })
}

/// Deserializes a field that may be absent (`None`), `null` (`Some(None)`) or a value.
pub fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    use serde::Deserialize;
    Option::<T>::deserialize(d).map(Some)
}

/// An optional JSON body: empty means `None`.
pub struct MaybeJson<T>(pub Option<T>);

impl<S, T> FromRequest<S> for MaybeJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::BodyTooLarge
                } else {
                    FieldErrors::one("body", "cannot read the request body")
                }
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(MaybeJson(None));
        }
        parse_object(&bytes).map(|v| MaybeJson(Some(v)))
    }
}
