//! `POST /api/v1/ai/query`: a question in plain language, answered with the
//! typed query it ran (docs/ai.md). The rules are in `ai::query`.

use crate::ai::query::{self, QueryRequest, QueryResponse};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::Json;
use crate::openapi::routes::{doc, Routes};
use crate::state::AppState;
use axum::extract::State;

pub fn router() -> Routes {
    Routes::new().post(
        "/",
        ask,
        doc(
            "ai:read",
            "Answer a question in plain language (the answer carries the typed query it ran; \
             each kind of question also needs the scope of the data it reads)",
        )
        .body::<QueryRequest>()
        .ok::<QueryResponse>()
        .error(
            404,
            "ROUTE_NOT_FOUND: AI-assisted administration is turned off",
        ),
    )
}

/// `404` when `ai_enabled` is off.
pub fn enabled(state: &AppState) -> ApiResult<()> {
    if state.config.ai_enabled {
        Ok(())
    } else {
        Err(ApiError::RouteNotFound)
    }
}

async fn ask(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<QueryRequest>,
) -> ApiResult<axum::Json<QueryResponse>> {
    enabled(&state)?;
    Ok(axum::Json(
        query::ask(&state, &caller, &req.question).await?,
    ))
}
