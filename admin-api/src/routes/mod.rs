//! The `/api/v1` routes, one module per area of the seeds.

pub mod ai_compliance;
pub mod ai_optimizer;
pub mod ai_predict;
pub mod ai_query;
pub mod auth;
pub mod field_definitions;
pub mod groups;
pub mod navigation;
pub mod permissions;
pub mod resources;
pub mod roles;
pub mod service_accounts;
pub mod snapshots;
pub mod tenants;
pub mod users;
pub mod webhooks;

use crate::openapi::routes::{doc, Routes};
use axum::http::StatusCode;
use serde::Serialize;

/// Every `/api/v1` route with its documentation.
pub fn api() -> Routes {
    let mut r = Routes::new();
    for (prefix, routes) in crate::approvals::routers() {
        r = r.nest(prefix, routes);
    }
    r.nest("/auth", auth::router())
        .nest("/tenants", tenants::router())
        .nest("/users", users::router())
        .nest("/service-accounts", service_accounts::router())
        .nest("/roles", roles::router())
        .nest("/groups", groups::router())
        .nest("/permissions", permissions::router())
        .nest("/resources", resources::router())
        .nest("/field-definitions", field_definitions::router())
        .nest("/navigation", navigation::router())
        .nest("/snapshots", snapshots::router())
        .nest("/audit", crate::audit::router())
        .nest("/webhooks", webhooks::router())
        .nest("/ai", crate::ai::router())
        .nest("/policy", crate::whatif::router())
        .nest("/users/{id}/biometrics", crate::biometrics::user_routes())
        .nest("/gateway/biometrics", crate::biometrics::gateway::routes())
        .get(
            "/openapi.json",
            crate::openapi::openapi_json,
            doc("none", "This document"),
        )
        .get(
            "/docs",
            crate::openapi::docs_page,
            doc("none", "This document, browsable (ReDoc)").media("text/html"),
        )
}

/// A JSON body that must not be cached: it carries credentials.
pub struct NoStore<T>(pub T);

impl<T: Serialize> axum::response::IntoResponse for NoStore<T> {
    fn into_response(self) -> axum::response::Response {
        (
            [
                (axum::http::header::CACHE_CONTROL, "no-store"),
                (axum::http::header::PRAGMA, "no-cache"),
            ],
            axum::Json(self.0),
        )
            .into_response()
    }
}

/// `201 Created` with a JSON body.
pub fn created<T: Serialize>(v: T) -> (StatusCode, axum::Json<T>) {
    (StatusCode::CREATED, axum::Json(v))
}

/// A lower-case identifier (`port_call`): a resource type, action or entity.
pub fn valid_ident(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.as_bytes()[0].is_ascii_lowercase()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Checks a required, trimmed, length-bounded text field.
pub fn check_text(errs: &mut crate::error::FieldErrors, field: &str, v: &str, max: usize) {
    let t = v.trim();
    if t.is_empty() {
        errs.add(field, "must not be empty");
    } else if t.chars().count() > max {
        errs.add(field, format!("must be at most {max} characters"));
    }
}

/// Checks that a JSON value is an object.
pub fn check_object(errs: &mut crate::error::FieldErrors, field: &str, v: &serde_json::Value) {
    if !v.is_object() {
        errs.add(field, "must be a JSON object");
    }
}
