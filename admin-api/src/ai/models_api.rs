//! `/api/v1/ai/models`: the anomaly model registry's routes (docs/anomaly.md,
//! "Registry"). Platform scopes only (`ai:models:read`, `ai:models:write`);
//! the bytes by hash for gateways (`snapshot:read`). Handlers parse, call
//! one function of [`super::models`], answer.
//!
//! ```sh
//! curl -X POST "$ADMIN/api/v1/ai/models" -H "Authorization: Bearer $TOKEN" \
//!      -H 'Content-Type: application/octet-stream' --data-binary @models/anomaly/model.onnx
//! ```

use super::models::{self, AiModel, MAX_BYTES};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::extract::Path;
use crate::openapi::routes::{doc, Routes};
use crate::routes::snapshots::SnapshotReader;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Serialize;
use uuid::Uuid;

pub fn router() -> Routes {
    Routes::new()
        .get(
            "/",
            list,
            doc("ai:models:read", "Every anomaly model of the registry, newest first")
                .ok::<ModelList>(),
        )
        .post(
            "/",
            upload,
            doc(
                "ai:models:write",
                "Upload an ONNX anomaly model (the file's bytes); accepted as `staged` only if the gateway's loader accepts it",
            )
            .raw_body("application/octet-stream")
            .created::<AiModel>()
            .error(413, "BODY_TOO_LARGE: the file is larger than 16 MiB"),
        )
        .post(
            "/rollback",
            rollback,
            doc(
                "ai:models:write",
                "Make the model active before the active one active again (the active one is retired)",
            )
            .ok::<AiModel>(),
        )
        .get(
            "/content/{sha256}",
            content,
            doc(
                "snapshot:read",
                "The bytes of a registered model by SHA-256 (gateways fetch the model the snapshot names)",
            )
            .media("application/octet-stream"),
        )
        .get(
            "/{id}",
            get,
            doc("ai:models:read", "One anomaly model").ok::<AiModel>(),
        )
        .post(
            "/{id}/activate",
            activate,
            doc(
                "ai:models:write",
                "Make this model the active one; the next policy snapshot names it and gateways load it",
            )
            .ok::<AiModel>(),
        )
}

/// The registry's models.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModelList {
    pub items: Vec<AiModel>,
}

fn require_read(caller: &Caller) -> ApiResult<()> {
    if caller.scopes.can_read_models() {
        Ok(())
    } else {
        Err(ApiError::denied(
            "scope `ai:models:read` of the platform tenant required",
        ))
    }
}

fn require_write(caller: &Caller) -> ApiResult<()> {
    if caller.scopes.can_write_models() {
        Ok(())
    } else {
        Err(ApiError::denied(
            "scope `ai:models:write` of the platform tenant required",
        ))
    }
}

async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<axum::Json<ModelList>> {
    require_read(&caller)?;
    let items = models::list(&state.platform).await?;
    Ok(axum::Json(ModelList { items }))
}

/// The id is read before the caller: `GET /rollback` (a `POST` route) is a
/// missing object, as every unserved method is, not an auth question.
async fn get(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    caller: Caller,
) -> ApiResult<axum::Json<AiModel>> {
    require_read(&caller)?;
    models::get(&state.platform, id).await.map(axum::Json)
}

async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, axum::Json<AiModel>)> {
    require_write(&caller)?;
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    if media.as_deref() != Some("application/octet-stream") {
        return Err(FieldErrors::one(
            "Content-Type",
            "must be `application/octet-stream` (the model file's bytes)",
        ));
    }
    let bytes = Limited::new(body, MAX_BYTES)
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
    // Parsing, optimising and probing the model is CPU work.
    let (validated, bytes) = tokio::task::spawn_blocking(move || {
        let v = models::validate(&bytes);
        (v, bytes)
    })
    .await
    .map_err(ApiError::internal)?;
    let validated = validated?;
    let row = models::upload(&state.platform, caller.user_id, &bytes, &validated).await?;
    tracing::info!(
        id = %row.id,
        name = %row.name,
        version = %row.version,
        sha256 = %row.sha256,
        "anomaly model uploaded"
    );
    Ok(crate::routes::created(row))
}

async fn activate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<AiModel>> {
    require_write(&caller)?;
    let row = models::activate(&state.platform, id).await?;
    tracing::info!(id = %row.id, name = %row.name, version = %row.version, "anomaly model activated");
    Ok(axum::Json(row))
}

async fn rollback(State(state): State<AppState>, caller: Caller) -> ApiResult<axum::Json<AiModel>> {
    require_write(&caller)?;
    let row = models::rollback(&state.platform).await?;
    tracing::info!(id = %row.id, name = %row.name, version = %row.version, "anomaly model rolled back to");
    Ok(axum::Json(row))
}

async fn content(
    State(state): State<AppState>,
    _reader: SnapshotReader,
    Path(sha256): Path<String>,
) -> ApiResult<Response> {
    let bytes = models::content(&state.platform, &sha256)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::ETAG, format!("\"{sha256}\"")),
            (
                header::CACHE_CONTROL,
                "private, max-age=31536000, immutable".to_owned(),
            ),
        ],
        bytes,
    )
        .into_response())
}
