//! `GET /api/v1/ai/predictions?user=`: predictive access, suggestions an
//! admin may turn into a role assignment or an access request (docs/ai.md).
//! The rules are in `ai::predict`.

use crate::ai::predict::{self, Predictions};
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::Query;
use crate::openapi::routes::{doc, Routes};
use crate::state::AppState;
use axum::extract::State;
use serde::Deserialize;
use uuid::Uuid;

pub fn router() -> Routes {
    Routes::new().get(
        "/",
        predictions,
        doc(
            "ai:read",
            "Permissions a user's peers hold and use, at or above the confidence threshold \
             (also needs user:read; never applied)",
        )
        .ok::<Predictions>()
        .error(
            404,
            "RESOURCE_NOT_FOUND: `user` names no principal of the tenant, or AI is turned off",
        ),
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    user: Uuid,
}

async fn predictions(
    State(state): State<AppState>,
    caller: Caller,
    Query(p): Query<Params>,
) -> ApiResult<axum::Json<Predictions>> {
    super::ai_query::enabled(&state)?;
    Ok(axum::Json(
        predict::suggestions(&state, &caller, p.user).await?,
    ))
}
