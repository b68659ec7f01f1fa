//! Sentinel admin API: the policy plane over PostgreSQL (schema `sentinel`).
//!
//! Run: `DATABASE_URL=postgres://sentinel_api@127.0.0.1/sentinel sentinel-admin serve`
//! then `curl -s 127.0.0.1:8081/healthz`.
#![forbid(unsafe_code)]

pub mod auth;
pub mod config;
pub mod console;
pub mod db;
pub mod error;
pub mod extract;
pub mod keys;
pub mod live;
pub mod metrics;
pub mod openapi;
pub mod pagination;
pub mod password;
pub mod routes;
pub mod scopes;
pub mod seed;
pub mod snapshot;
pub mod snapshot_keys;
pub mod state;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use error::{ApiError, REQUEST_ID};
pub use state::AppState;

/// The whole HTTP application (tests drive it in-process with `oneshot`).
pub fn app(state: AppState) -> Router {
    Router::new()
        .nest("/api/v1", routes::api())
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .route("/.well-known/jwks.json", get(jwks))
        .merge(console::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(middleware::from_fn(request_id))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::RouteNotFound
}

/// Gives every request an id (a sane client `X-Request-ID`, or a new UUID),
/// available to error bodies and echoed in the response.
async fn request_id(req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let mut resp = REQUEST_ID.scope(id.clone(), next.run(req)).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

async fn healthz(State(state): State<AppState>) -> Response {
    match sqlx::query_scalar::<_, i32>("SELECT 1")
        .fetch_one(&state.pool)
        .await
    {
        Ok(_) => axum::Json(serde_json::json!({"status": "ok", "database": "ok"})).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "health check: database unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(serde_json::json!({"status": "unavailable", "database": "unreachable"})),
            )
                .into_response()
        }
    }
}

async fn metrics_text(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        state.metrics.render(),
    )
}

async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(axum::http::header::CACHE_CONTROL, "max-age=60")],
        axum::Json(state.keys.jwks()),
    )
}
