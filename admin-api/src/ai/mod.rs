//! AI-assisted administration (issue 23, docs/ai.md): advice computed from
//! the policy and the audit trail, explainable and checkable, that never
//! changes policy by itself.
//!
//! - [`facts`]: what the features read about one tenant (the compiled
//!   policy, the accounts, the uses of each permission in the audit trail).
//! - [`optimizer`]: the permission optimizer's analysis (pure); its routes,
//!   storage and the admin's `apply` are in `routes/ai_optimizer.rs`.
//! - [`compliance`]: the compliance monitor's check sets, runs (on demand
//!   and from a leader-elected worker) and reports; routes in
//!   `routes/ai_compliance.rs`.
//! - [`fixture`]: a generated tenant with planted problems, for the tests
//!   and the run-time measurement.
//! - [`query`]: questions in plain language (a `nom` grammar → a typed
//!   query → the evaluator or the audit trail); routes in `routes/ai_query.rs`.
//! - [`models`]: the anomaly model registry (platform-level ONNX models
//!   the gateways load through the snapshot path); routes in `models_api.rs`.
//! - [`predict`]: predictive access (collaborative filtering over peers and
//!   the audit trail); routes in `routes/ai_predict.rs`.

pub mod compliance;
pub mod facts;
pub mod fixture;
pub mod models;
pub mod models_api;
pub mod optimizer;
pub mod predict;
pub mod query;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::openapi::routes::Routes;
use crate::state::AppState;

/// Every `/api/v1/ai` route.
pub fn router() -> Routes {
    Routes::new()
        .nest("/optimizer", crate::routes::ai_optimizer::router())
        .nest("/compliance", crate::routes::ai_compliance::router())
        .nest("/query", crate::routes::ai_query::router())
        .nest("/predictions", crate::routes::ai_predict::router())
        .nest("/models", models_api::router())
}

/// The features are on, and the caller may read their results.
pub fn require_read(state: &AppState, caller: &Caller) -> ApiResult<()> {
    if !state.config.ai_enabled {
        return Err(ApiError::NotFoundBecause(
            "AI-assisted administration is turned off",
        ));
    }
    if !caller.scopes.can_read_ai() {
        return Err(ApiError::denied("scope `ai:read` required"));
    }
    Ok(())
}

/// The features are on, and the caller may apply or dismiss findings.
pub fn require_apply(state: &AppState, caller: &Caller) -> ApiResult<()> {
    require_read(state, caller)?;
    if !caller.scopes.can_apply_ai() {
        return Err(ApiError::denied("scope `ai:apply` required"));
    }
    Ok(())
}

/// A transaction of one tenant that records no audit events: the analyses
/// store advice, never policy, and a refresh of advice is no admin write.
/// Deciding on a finding (apply, dismiss) goes through `db::begin` and is
/// audited.
pub async fn begin_analysis(
    pool: &sqlx::PgPool,
    tenant: uuid::Uuid,
) -> Result<crate::db::Tx, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT set_config('sentinel.tenant_id', $1, true)")
        .bind(tenant.to_string())
        .execute(&mut *tx)
        .await?;
    Ok(crate::db::Tx::from(tx))
}
