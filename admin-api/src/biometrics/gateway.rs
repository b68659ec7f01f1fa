//! `/api/v1/gateway/biometrics/{tenant}/{user}`: where gateways load and
//! store a user's encoded biometric profile (docs/biometrics.md, "Where
//! profiles live"). A gateway's key only (a platform service account
//! holding `snapshot:read` and `audit:write`, what `sentinel-admin
//! gateway-key create` makes); a person's token is refused.
//!
//! - `GET` answers `200` with the profile bytes (`application/octet-stream`)
//!   and `ETag: "{generation}.{version}"`, `304` when `If-None-Match` names
//!   that tag, `204` when the row exists without a profile (after a reset;
//!   the generation in `Sentinel-Profile-Generation`), `404` when there is
//!   no row (never enrolled, or deleted).
//! - `POST` stores the body as the profile, with the generation the gateway
//!   loaded (`?generation=`; none: create only if absent). A generation that
//!   is no longer the row's (the profile was reset or deleted since) stores
//!   nothing and answers `stored: false`: a cached copy never undoes a reset.

use crate::auth;
use crate::db::{self, TenantCtx};
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::extract::{Path, Query};
use crate::openapi::routes::{doc, Routes};
use crate::routes::snapshots::{credential, Credential};
use crate::scopes::ScopeSet;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Largest profile a gateway may store (the table's check says the same).
pub const MAX_PROFILE_BYTES: usize = 16 * 1024 * 1024;
/// The header naming a row's generation on `200` and `204`.
pub const GENERATION_HEADER: &str = "sentinel-profile-generation";

pub fn routes() -> Routes {
    Routes::new()
        .get(
            "/{tenant_id}/{user_id}",
            fetch,
            doc(
                "snapshot:read",
                "A user's encoded biometric profile (gateways; ETag, 304, 204 after a reset)",
            )
            .media("application/octet-stream")
            .error(304, "Not modified (If-None-Match)"),
        )
        .post(
            "/{tenant_id}/{user_id}",
            store,
            doc(
                "snapshot:read",
                "Store a user's encoded biometric profile (gateways; body application/octet-stream)",
            )
            .ok::<Stored>()
            .error(413, "Profile too large"),
        )
}

/// A gateway: a platform service account with `snapshot:read` and
/// `audit:write`, authenticated by its API key.
#[derive(Debug, Clone)]
pub struct Gateway {
    pub user_id: Uuid,
}

impl FromRequestParts<AppState> for Gateway {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let key = match credential(&parts.headers)? {
            Credential::ApiKey(k) => k.to_owned(),
            // Profiles move between gateways and the database only.
            Credential::Bearer => return Err(ApiError::denied("a gateway's API key is required")),
        };
        let (user_id, tenant_id, mut tx) = crate::domain::api_keys::verify(state, &key).await?;
        let scopes = auth::effective_scopes(&mut tx, user_id).await?;
        tx.commit().await?;
        let set = ScopeSet::from_scopes(
            scopes.iter().map(String::as_str),
            tenant_id == sentinel_policy::PLATFORM_TENANT,
        );
        if !(set.can_read_snapshots() && set.can_write_audit()) {
            return Err(ApiError::denied(
                "a gateway's key (`snapshot:read` and `audit:write` of the platform tenant) is required",
            ));
        }
        Ok(Gateway { user_id })
    }
}

fn etag(generation: Uuid, version: i64) -> String {
    format!("\"{generation}.{version}\"")
}

fn header_value(s: &str) -> ApiResult<HeaderValue> {
    HeaderValue::from_str(s).map_err(ApiError::internal)
}

async fn fetch(
    State(state): State<AppState>,
    _gateway: Gateway,
    Path((tenant, user)): Path<(Uuid, Uuid)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let mut tx = db::begin(&state.pool, TenantCtx::One(tenant)).await?;
    let row: Option<(Uuid, i64, Option<Vec<u8>>)> = if let Some(tag) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        // Revalidation: the bytes only when the tag moved.
        let head: Option<(Uuid, i64)> = sqlx::query_as(
            "SELECT generation, version FROM sentinel.biometric_profiles WHERE tenant_id = $1 AND user_id = $2",
        )
        .bind(tenant)
        .bind(user)
        .fetch_optional(&mut *tx)
        .await?;
        match head {
            Some((g, v)) if etag(g, v) == tag.trim() => {
                tx.commit().await?;
                let mut r = StatusCode::NOT_MODIFIED.into_response();
                r.headers_mut()
                    .insert(header::ETAG, header_value(&etag(g, v))?);
                return Ok(r);
            }
            Some(_) => full_row(&mut tx, tenant, user).await?,
            None => None,
        }
    } else {
        full_row(&mut tx, tenant, user).await?
    };
    tx.commit().await?;
    let Some((generation, version, profile)) = row else {
        return Err(ApiError::NotFound);
    };
    let mut r = match profile {
        Some(bytes) => {
            ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response()
        }
        None => StatusCode::NO_CONTENT.into_response(),
    };
    let h = r.headers_mut();
    h.insert(header::ETAG, header_value(&etag(generation, version))?);
    h.insert(GENERATION_HEADER, header_value(&generation.to_string())?);
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

async fn full_row(
    tx: &mut db::Tx,
    tenant: Uuid,
    user: Uuid,
) -> ApiResult<Option<(Uuid, i64, Option<Vec<u8>>)>> {
    Ok(sqlx::query_as(
        "SELECT generation, version, profile FROM sentinel.biometric_profiles WHERE tenant_id = $1 AND user_id = $2",
    )
    .bind(tenant)
    .bind(user)
    .fetch_optional(&mut **tx)
    .await?)
}

/// What the gateway says of the profile it stores (the admin API cannot
/// read the encoded profile; these fields are what people see).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreParams {
    /// The generation the gateway loaded; absent: create only if absent.
    pub generation: Option<Uuid>,
    pub status: String,
    pub samples: i32,
    pub mouse_actions: i32,
    pub key_observations: i32,
}

/// The answer of a store.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Stored {
    /// False when the generation given is not the row's any more (a reset
    /// or deletion since the gateway loaded it): nothing was written.
    pub stored: bool,
    /// The row's generation and version now (null: no row).
    pub generation: Option<Uuid>,
    pub version: Option<i64>,
}

async fn store(
    State(state): State<AppState>,
    _gateway: Gateway,
    Path((tenant, user)): Path<(Uuid, Uuid)>,
    Query(p): Query<StoreParams>,
    body: Body,
) -> ApiResult<axum::Json<Stored>> {
    let mut errs = FieldErrors::new();
    if !matches!(p.status.as_str(), "enrolling" | "ready") {
        errs.add("status", "must be `enrolling` or `ready`");
    }
    for (f, v) in [
        ("samples", p.samples),
        ("mouse_actions", p.mouse_actions),
        ("key_observations", p.key_observations),
    ] {
        if v < 0 {
            errs.add(f, "must not be negative");
        }
    }
    errs.into_result()?;
    let bytes = Limited::new(body, MAX_PROFILE_BYTES)
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
    if bytes.is_empty() {
        return Err(FieldErrors::one("body", "must hold the encoded profile"));
    }
    let mut tx = db::begin(&state.pool, TenantCtx::One(tenant)).await?;
    let human: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM sentinel.users WHERE id = $1 AND tenant_id = $2 AND NOT is_service_account",
    )
    .bind(user)
    .bind(tenant)
    .fetch_optional(&mut *tx)
    .await?;
    if human.is_none() {
        return Err(ApiError::NotFound);
    }
    let written: Option<(Uuid, i64)> = match p.generation {
        None => {
            sqlx::query_as(
                "INSERT INTO sentinel.biometric_profiles
                        (tenant_id, user_id, status, samples, mouse_actions, key_observations, profile)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (tenant_id, user_id) DO NOTHING
                 RETURNING generation, version",
            )
            .bind(tenant)
            .bind(user)
            .bind(&p.status)
            .bind(p.samples)
            .bind(p.mouse_actions)
            .bind(p.key_observations)
            .bind(bytes.as_ref())
            .fetch_optional(&mut *tx)
            .await?
        }
        Some(g) => {
            sqlx::query_as(
                "UPDATE sentinel.biometric_profiles
                    SET status = $4, samples = $5, mouse_actions = $6, key_observations = $7,
                        profile = $8, version = version + 1
                  WHERE tenant_id = $1 AND user_id = $2 AND generation = $3
                 RETURNING generation, version",
            )
            .bind(tenant)
            .bind(user)
            .bind(g)
            .bind(&p.status)
            .bind(p.samples)
            .bind(p.mouse_actions)
            .bind(p.key_observations)
            .bind(bytes.as_ref())
            .fetch_optional(&mut *tx)
            .await?
        }
    };
    let answer = match written {
        Some((g, v)) => Stored {
            stored: true,
            generation: Some(g),
            version: Some(v),
        },
        None => {
            let now: Option<(Uuid, i64)> = sqlx::query_as(
                "SELECT generation, version FROM sentinel.biometric_profiles WHERE tenant_id = $1 AND user_id = $2",
            )
            .bind(tenant)
            .bind(user)
            .fetch_optional(&mut *tx)
            .await?;
            Stored {
                stored: false,
                generation: now.map(|n| n.0),
                version: now.map(|n| n.1),
            }
        }
    };
    tx.commit().await?;
    Ok(axum::Json(answer))
}
