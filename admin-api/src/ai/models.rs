//! The anomaly model registry (issues 21 and 23; docs/anomaly.md,
//! "Registry"): platform-level ONNX models for the gateways' request anomaly
//! scoring, each validated by the loader the gateway runs before it is
//! accepted, with one active at a time.
//!
//! - [`validate`]: parses and checks a file with `sentinel_risk`'s loader
//!   (tract-onnx, feature names, calibration, probe): the registry never
//!   holds a file a gateway would refuse.
//! - [`upload`], [`list`], [`get`], [`activate`], [`rollback`]: the
//!   registry's writes and reads, in platform transactions (no tenant: the
//!   tables are `platform_only`, migration 0012). Writes run in
//!   `db::begin` transactions of the caller, so they are audited
//!   (`ai_model.create`, `ai_model.update`) like every admin write.
//! - [`active_ref`]: what the publisher writes into the signed manifest;
//!   changing the active model bumps the policy revision (a trigger of
//!   0012), so the next publication names it and gateways load it.
//! - [`content`]: the bytes of a registered model by hash, for gateways.
//!
//! Routes in `ai/models_api.rs`.

use crate::db::{self, TenantCtx};
use crate::error::{ApiError, ApiResult, FieldErrors};
use chrono::{DateTime, Utc};
use sentinel_policy::bundle::ModelRef;
use sentinel_risk::anomaly::{ModelError, OnnxModel, MAX_MODEL_BYTES};
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Largest model file accepted (the gateway's own limit).
pub const MAX_BYTES: usize = MAX_MODEL_BYTES;

/// A model of the registry (its bytes are fetched apart, by hash).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AiModel {
    pub id: Uuid,
    /// `sentinel.name` of the file's metadata.
    pub name: String,
    /// `sentinel.version` of the file's metadata.
    pub version: String,
    /// Lowercase hex SHA-256 of the file: what the snapshot names.
    pub sha256: String,
    /// The file's size in bytes.
    pub size: i64,
    /// What the loader found (engine, trees, nodes) when it was uploaded.
    #[schema(value_type = Object)]
    pub metrics: serde_json::Value,
    /// `staged`, `active` or `retired`.
    pub status: String,
    /// The model that was active when this one was activated: what a roll
    /// back returns to.
    pub previous_id: Option<Uuid>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub activated_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, name, version, sha256, size, metrics, status, previous_id, \
                       created_by, created_at, activated_at";

/// What a file that loads is: its name, version, hash and loader facts.
#[derive(Debug, Clone, PartialEq)]
pub struct Validated {
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub metrics: serde_json::Value,
}

/// Checks a model file with the gateway's loader. Too large: `413`;
/// anything the loader refuses: `422` on `model`, with its reason.
pub fn validate(bytes: &[u8]) -> ApiResult<Validated> {
    if bytes.is_empty() {
        return Err(FieldErrors::one("model", "must not be empty"));
    }
    let model = OnnxModel::from_bytes(bytes).map_err(|e| match e {
        ModelError::TooLarge(_) => ApiError::BodyTooLarge,
        other => FieldErrors::one("model", other.to_string()),
    })?;
    let info = model.info();
    let mut errs = FieldErrors::new();
    if info.name.trim().is_empty() || info.name.chars().count() > 200 {
        errs.add("model", "metadata `sentinel.name` must be 1-200 characters");
    }
    if info.version.trim().is_empty() || info.version.chars().count() > 100 {
        errs.add(
            "model",
            "metadata `sentinel.version` must be 1-100 characters",
        );
    }
    errs.into_result()?;
    Ok(Validated {
        name: info.name.clone(),
        version: info.version.clone(),
        sha256: hex(&Sha256::digest(bytes)),
        metrics: serde_json::json!({ "engine": model.engine().as_str() }),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Adds a validated model as `staged`. The same file twice, or a second
/// file with the same name and version, is a `422`.
pub async fn upload(
    pool: &sqlx::PgPool,
    by: Uuid,
    bytes: &[u8],
    model: &Validated,
) -> ApiResult<AiModel> {
    let mut tx = db::begin(pool, TenantCtx::All).await?;
    let dup: Option<(String, String, String)> = sqlx::query_as(
        "SELECT sha256, name, version FROM sentinel.ai_models
          WHERE sha256 = $1 OR (name = $2 AND version = $3) LIMIT 1",
    )
    .bind(&model.sha256)
    .bind(&model.name)
    .bind(&model.version)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some((sha, name, version)) = dup {
        return Err(if sha == model.sha256 {
            FieldErrors::one("model", "this model file is already in the registry")
        } else {
            FieldErrors::one(
                "model",
                format!("a model `{name}` version `{version}` is already in the registry"),
            )
        });
    }
    sqlx::query(
        "INSERT INTO sentinel.ai_model_blobs (sha256, bytes) VALUES ($1, $2)
         ON CONFLICT (sha256) DO NOTHING",
    )
    .bind(&model.sha256)
    .bind(bytes)
    .execute(&mut *tx)
    .await?;
    let row: AiModel = sqlx::query_as(&format!(
        "INSERT INTO sentinel.ai_models (name, version, sha256, size, metrics, created_by)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
    ))
    .bind(&model.name)
    .bind(&model.version)
    .bind(&model.sha256)
    .bind(i64::try_from(bytes.len()).unwrap_or(i64::MAX))
    .bind(&model.metrics)
    .bind(by)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(row)
}

/// Every model, newest first (the registry is small: one row per upload).
pub async fn list(pool: &sqlx::PgPool) -> ApiResult<Vec<AiModel>> {
    let mut tx = db::begin(pool, TenantCtx::All).await?;
    let rows = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM sentinel.ai_models ORDER BY created_at DESC, id"
    ))
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows)
}

pub async fn get(pool: &sqlx::PgPool, id: Uuid) -> ApiResult<AiModel> {
    let mut tx = db::begin(pool, TenantCtx::All).await?;
    let row = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM sentinel.ai_models WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(ApiError::NotFound)?;
    tx.commit().await?;
    Ok(row)
}

/// Makes `id` the active model; the one active before is `retired` and
/// becomes the new one's `previous_id`. Activating the active model
/// changes nothing.
pub async fn activate(pool: &sqlx::PgPool, id: Uuid) -> ApiResult<AiModel> {
    let mut tx = db::begin(pool, TenantCtx::All).await?;
    // One activation at a time: the active row (if any) and the target are
    // locked in a fixed order (the table lock serialises concurrent
    // activations, which are rare, without deadlocks).
    sqlx::query("LOCK TABLE sentinel.ai_models IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await?;
    let target: AiModel = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM sentinel.ai_models WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(ApiError::NotFound)?;
    if target.status == "active" {
        tx.commit().await?;
        return Ok(target);
    }
    let current: Option<Uuid> = sqlx::query_scalar(
        "UPDATE sentinel.ai_models SET status = 'retired' WHERE status = 'active' RETURNING id",
    )
    .fetch_optional(&mut *tx)
    .await?;
    let row = sqlx::query_as(&format!(
        "UPDATE sentinel.ai_models
            SET status = 'active', activated_at = now(), previous_id = $2
          WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(current)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(row)
}

/// Returns to the model that was active before the active one: the active
/// one is `retired`, its `previous_id` active again (keeping its own
/// `previous_id`, so roll backs walk back through the history). `422` when
/// nothing is active or the active model has no previous one.
pub async fn rollback(pool: &sqlx::PgPool) -> ApiResult<AiModel> {
    let mut tx = db::begin(pool, TenantCtx::All).await?;
    sqlx::query("LOCK TABLE sentinel.ai_models IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await?;
    let current: Option<(Uuid, Option<Uuid>)> =
        sqlx::query_as("SELECT id, previous_id FROM sentinel.ai_models WHERE status = 'active'")
            .fetch_optional(&mut *tx)
            .await?;
    let Some((current, previous)) = current else {
        return Err(FieldErrors::one("model", "no model is active"));
    };
    let Some(previous) = previous else {
        return Err(FieldErrors::one(
            "model",
            "the active model has no previous model to roll back to",
        ));
    };
    sqlx::query("UPDATE sentinel.ai_models SET status = 'retired' WHERE id = $1")
        .bind(current)
        .execute(&mut *tx)
        .await?;
    let row = sqlx::query_as(&format!(
        "UPDATE sentinel.ai_models SET status = 'active', activated_at = now()
          WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(previous)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(row)
}

/// The active model as the manifest names it, read in the publisher's
/// transaction (platform, no tenant).
pub async fn active_ref(conn: &mut sqlx::PgConnection) -> Result<Option<ModelRef>, sqlx::Error> {
    let row: Option<(Uuid, String, i64, String, String)> = sqlx::query_as(
        "SELECT id, sha256, size, name, version FROM sentinel.ai_models WHERE status = 'active'",
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(id, sha256, size, name, version)| ModelRef {
        id,
        sha256,
        size: u64::try_from(size).unwrap_or(0),
        name,
        version,
    }))
}

/// The bytes of a registered model by hash (`None`: no such model).
pub async fn content(pool: &sqlx::PgPool, sha256: &str) -> ApiResult<Option<Vec<u8>>> {
    if sha256.len() != 64
        || !sha256
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Ok(None);
    }
    let mut tx = db::Tx::from(pool.begin().await?);
    let bytes = sqlx::query_scalar(
        "SELECT b.bytes FROM sentinel.ai_model_blobs b
           JOIN sentinel.ai_models m ON m.sha256 = b.sha256
          WHERE b.sha256 = $1",
    )
    .bind(sha256)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(bytes)
}
