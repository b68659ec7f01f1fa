//! The `/api/v1` routes, one module per area of the seeds.

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

use crate::state::AppState;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use serde::Serialize;

pub fn api() -> Router<AppState> {
    Router::new()
        .nest("/auth", auth::router())
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
        .route("/openapi.json", get(crate::openapi::openapi_json))
        .route("/docs", get(crate::openapi::docs_page))
}

/// `201 Created` with a JSON body.
pub fn created<T: Serialize>(v: T) -> (StatusCode, axum::Json<T>) {
    (StatusCode::CREATED, axum::Json(v))
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
