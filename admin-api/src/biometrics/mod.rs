//! Behavioural-biometric profiles (issue 20, docs/biometrics.md): the
//! table `biometric_profiles` (migration 0011) behind two doors.
//!
//! - People: `/api/v1/users/{id}/biometrics` reads a user's profile status
//!   (`user:read`), `…/reset` starts enrolment again and `DELETE` erases it
//!   (a data-subject request; both `user:write`). Each is recorded as a
//!   `biometric_profile.read|reset|delete` audit event in its own
//!   transaction. The profile itself (features and models) never leaves
//!   through this door.
//! - Gateways: `/api/v1/gateway/biometrics/{tenant}/{user}` loads and
//!   stores the encoded profile ([`gateway`]), with a gateway's key only.

pub mod gateway;

use crate::auth::Caller;
use crate::db::Tx;
use crate::error::{ApiError, ApiResult};
use crate::extract::Path;
use crate::openapi::routes::{doc, Routes};
use crate::scopes::Level;
use crate::state::AppState;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

/// `/api/v1/users/{id}/biometrics`.
pub fn user_routes() -> Routes {
    Routes::new()
        .get(
            "/",
            read,
            doc("user:read", "A user's behavioural-biometric profile status").ok::<ProfileStatus>(),
        )
        .post(
            "/reset",
            reset,
            doc(
                "user:write",
                "Reset a user's biometric profile: enrolment starts again",
            )
            .ok::<ProfileStatus>(),
        )
        .delete(
            "/",
            remove,
            doc(
                "user:write",
                "Erase a user's biometric profile (data-subject request)",
            )
            .no_content(),
        )
}

/// What a person may see of a profile: its state, never its contents.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ProfileStatus {
    pub user_id: Uuid,
    /// `none` (nothing stored), `enrolling` or `ready`.
    pub status: String,
    /// Enrolment samples taken (a profile is ready at `baseline_samples`).
    pub samples: i32,
    /// Mouse actions and key timing observations the profile keeps.
    pub mouse_actions: i32,
    pub key_observations: i32,
    /// Size of the stored profile (features and models), bytes.
    pub size_bytes: i64,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct Row {
    status: String,
    samples: i32,
    mouse_actions: i32,
    key_observations: i32,
    size_bytes: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl ProfileStatus {
    fn of(user_id: Uuid, row: Option<Row>) -> Self {
        match row {
            Some(r) => ProfileStatus {
                user_id,
                status: r.status,
                samples: r.samples,
                mouse_actions: r.mouse_actions,
                key_observations: r.key_observations,
                size_bytes: r.size_bytes,
                created_at: Some(r.created_at),
                updated_at: Some(r.updated_at),
            },
            None => ProfileStatus {
                user_id,
                status: "none".to_owned(),
                samples: 0,
                mouse_actions: 0,
                key_observations: 0,
                size_bytes: 0,
                created_at: None,
                updated_at: None,
            },
        }
    }

    /// The audit event's view (no profile contents).
    fn summary(&self) -> Value {
        json!({
            "status": self.status,
            "samples": self.samples,
            "mouse_actions": self.mouse_actions,
            "key_observations": self.key_observations,
            "size_bytes": self.size_bytes,
        })
    }
}

/// A human user of the caller's target tenant, else `404` (another
/// tenant's user and a service account look the same as a missing one).
async fn ensure_user(tx: &mut Tx, tenant: Uuid, id: Uuid) -> ApiResult<()> {
    let found: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM sentinel.users WHERE id = $1 AND tenant_id = $2 AND NOT is_service_account",
    )
    .bind(id)
    .bind(tenant)
    .fetch_optional(&mut **tx)
    .await?;
    found.map(|_| ()).ok_or(ApiError::NotFound)
}

async fn load(tx: &mut Tx, tenant: Uuid, id: Uuid, lock: bool) -> ApiResult<ProfileStatus> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT status, samples, mouse_actions, key_observations,
                coalesce(octet_length(profile), 0)::bigint AS size_bytes, created_at, updated_at
           FROM sentinel.biometric_profiles WHERE tenant_id = $1 AND user_id = $2{}",
        if lock { " FOR UPDATE" } else { "" }
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(ProfileStatus::of(id, row))
}

/// Records `biometric_profile.{action}` in this transaction (the commit
/// turns it into an audit event, admin-api/src/audit/record.rs).
async fn record(
    tx: &mut Tx,
    action: &str,
    id: Uuid,
    before: Option<Value>,
    after: Option<Value>,
) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO sentinel.audit_pending (entity, action, resource_id, before, after)
         VALUES ('biometric_profile', $1, $2, $3, $4)",
    )
    .bind(format!("biometric_profile.{action}"))
    .bind(id.to_string())
    .bind(before)
    .bind(after)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<ProfileStatus>> {
    caller.require("user", Level::Read)?;
    let mut tx = state.begin(caller.ctx()).await?;
    ensure_user(&mut tx, caller.target, id).await?;
    let status = load(&mut tx, caller.target, id, false).await?;
    record(&mut tx, "read", id, None, Some(status.summary())).await?;
    tx.commit().await?;
    Ok(axum::Json(status))
}

async fn reset(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<ProfileStatus>> {
    caller.require("user", Level::Write)?;
    let mut tx = state.begin(caller.ctx()).await?;
    ensure_user(&mut tx, caller.target, id).await?;
    let before = load(&mut tx, caller.target, id, true).await?;
    // A new generation: no gateway's cached copy can be written back over
    // the reset, and each gateway drops its copy at its next check.
    sqlx::query(
        "UPDATE sentinel.biometric_profiles
            SET status = 'enrolling', samples = 0, mouse_actions = 0, key_observations = 0,
                profile = NULL, generation = gen_random_uuid(), version = version + 1
          WHERE tenant_id = $1 AND user_id = $2",
    )
    .bind(caller.target)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    let after = load(&mut tx, caller.target, id, false).await?;
    record(
        &mut tx,
        "reset",
        id,
        Some(before.summary()),
        Some(after.summary()),
    )
    .await?;
    tx.commit().await?;
    Ok(axum::Json(after))
}

async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::http::StatusCode> {
    caller.require("user", Level::Write)?;
    let mut tx = state.begin(caller.ctx()).await?;
    ensure_user(&mut tx, caller.target, id).await?;
    let before = load(&mut tx, caller.target, id, true).await?;
    sqlx::query("DELETE FROM sentinel.biometric_profiles WHERE tenant_id = $1 AND user_id = $2")
        .bind(caller.target)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    record(&mut tx, "delete", id, Some(before.summary()), None).await?;
    tx.commit().await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}
