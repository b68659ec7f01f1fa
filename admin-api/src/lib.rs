//! Sentinel admin API: the policy plane over PostgreSQL (schema `sentinel`).
//!
//! Run: `DATABASE_URL=postgres://sentinel_api@127.0.0.1/sentinel sentinel-admin serve`
//! then `curl -s 127.0.0.1:8081/healthz`.
#![forbid(unsafe_code)]

pub mod ai;
pub mod approvals;
pub mod audit;
pub mod auth;
pub mod biometrics;
pub mod config;
pub mod console;
pub mod db;
pub mod domain;
pub mod error;
pub mod extract;
pub mod keys;
pub mod live;
pub mod metrics;
pub mod openapi;
pub mod otel;
pub mod outbox;
pub mod pagination;
pub mod password;
pub mod routes;
pub mod scopes;
pub mod sealing;
pub mod seed;
pub mod snapshot;
pub mod snapshot_keys;
pub mod state;
pub mod throttle;
pub mod whatif;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use error::{ApiError, REQUEST_ID};
use openapi::routes::{doc, Routes};
pub use state::AppState;

/// The whole HTTP application (tests drive it in-process with `oneshot`).
pub fn app(state: AppState) -> Router {
    let (router, _) = all_routes().into_parts();
    // The console's static files are no API operation: served beside the
    // documented routes, not in the OpenAPI document.
    router
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

/// Every route the app serves, with its documentation (the OpenAPI
/// document is generated from this).
pub fn all_routes() -> Routes {
    Routes::new()
        .nest("/api/v1", routes::api())
        .get(
            "/healthz",
            healthz,
            doc("none", "Liveness and database check").error(503, "the database is unreachable"),
        )
        .get(
            "/metrics",
            metrics_text,
            doc("none", "Prometheus metrics").media("text/plain; version=0.0.4"),
        )
        .get(
            "/.well-known/jwks.json",
            jwks,
            doc("none", "Token verification keys (current and previous)"),
        )
        .get(
            "/.well-known/openid-configuration",
            discovery,
            doc(
                "none",
                "OpenID Connect discovery document: the token issuer and its JWKS (for gateways configured with `discovery = true`)",
            )
            .error(404, "the issuer (`SENTINEL_ISSUER`) is not an http(s) URL"),
        )
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
    let ctx = audit::record::RequestCtx {
        method: req.method().as_str().to_owned(),
        path: req.uri().path().to_owned(),
        actor: None,
    };
    let run = audit::record::REQUEST.scope(std::cell::RefCell::new(ctx), next.run(req));
    let mut resp = REQUEST_ID.scope(id.clone(), run).await;
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

/// The discovery document of the tokens this API issues (OpenID Connect
/// Discovery 1.0 §3, the parts that concern verifying them): `issuer` is
/// exactly the tokens' `iss` and `jwks_uri` the JWKS beside it. Only an
/// issuer that is an http(s) URL can be discovered (§4: the document lives
/// under the issuer); any other answers 404.
async fn discovery(State(state): State<AppState>) -> Result<Response, ApiError> {
    let issuer = &state.config.issuer;
    if !(issuer.starts_with("https://") || issuer.starts_with("http://")) {
        return Err(ApiError::NotFoundBecause(
            "no discovery document: the token issuer (SENTINEL_ISSUER) is not an http(s) URL",
        ));
    }
    let doc = serde_json::json!({
        "issuer": issuer,
        "jwks_uri": format!("{}/.well-known/jwks.json", issuer.trim_end_matches('/')),
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "token_endpoint_auth_methods_supported": ["none"],
        "claims_supported": ["iss", "sub", "aud", "exp", "nbf", "iat", "jti", "tid"],
    });
    Ok((
        [(axum::http::header::CACHE_CONTROL, "max-age=300")],
        axum::Json(doc),
    )
        .into_response())
}

async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(axum::http::header::CACHE_CONTROL, "max-age=60")],
        axum::Json(state.keys.jwks()),
    )
}
