//! The admin API's error type and the one function that turns it into the
//! JSON error body of SPEC (`{"error": {...}, "request_id": ...}`).

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

tokio::task_local! {
    /// The id of the request being served (set by the request-id middleware).
    pub static REQUEST_ID: String;
}

/// The current request id, or `-` outside a request.
pub fn request_id() -> String {
    REQUEST_ID
        .try_with(Clone::clone)
        .unwrap_or_else(|_| "-".to_owned())
}

/// Per-field validation problems: field name to messages.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FieldErrors(pub Map<String, Value>);

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        let entry = self
            .0
            .entry(field.to_owned())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(list) = entry {
            list.push(Value::String(message.into()));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(())` when empty, else the validation error.
    pub fn into_result(self) -> Result<(), ApiError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self))
        }
    }

    pub fn one(field: &str, message: impl Into<String>) -> ApiError {
        let mut e = Self::new();
        e.add(field, message);
        ApiError::Validation(e)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("request validation failed")]
    Validation(FieldErrors),
    #[error("resource not found")]
    NotFound,
    #[error("route not found")]
    RouteNotFound,
    /// A 404 that says why (the admin console not built or turned off).
    #[error("{0}")]
    NotFoundBecause(&'static str),
    #[error("authentication required")]
    AuthRequired,
    #[error("invalid credentials")]
    AuthInvalid,
    #[error("token has expired")]
    TokenExpired,
    #[error("token has been revoked")]
    TokenRevoked,
    #[error("{0}")]
    PermissionDenied(String),
    #[error("account is locked")]
    AccountLocked {
        until: Option<chrono::DateTime<chrono::Utc>>,
    },
    #[error("tenant is suspended")]
    TenantSuspended,
    /// Too many requests from the client address (auth endpoints).
    #[error("too many requests; retry later")]
    RateLimited { retry_after: u64 },
    #[error("request body is too large")]
    BodyTooLarge,
    /// A body that cannot be read at all (a broken gzip stream): 400.
    #[error("{0}")]
    BadRequest(&'static str),
    #[error("policy is unavailable")]
    PolicyUnavailable,
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(e.into())
    }

    pub fn denied(message: impl Into<String>) -> Self {
        ApiError::PermissionDenied(message.into())
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Validation(_) => "VALIDATION_ERROR",
            ApiError::NotFound => "RESOURCE_NOT_FOUND",
            ApiError::RouteNotFound => "RESOURCE_NOT_FOUND",
            ApiError::NotFoundBecause(_) => "RESOURCE_NOT_FOUND",
            ApiError::AuthRequired => "AUTH_REQUIRED",
            ApiError::AuthInvalid => "AUTH_INVALID",
            ApiError::TokenExpired => "TOKEN_EXPIRED",
            ApiError::TokenRevoked => "TOKEN_REVOKED",
            ApiError::PermissionDenied(_) => "PERMISSION_DENIED",
            ApiError::AccountLocked { .. } => "ACCOUNT_LOCKED",
            ApiError::TenantSuspended => "TENANT_SUSPENDED",
            ApiError::RateLimited { .. } => "RATE_LIMITED",
            ApiError::BodyTooLarge => "BODY_TOO_LARGE",
            ApiError::BadRequest(_) => "VALIDATION_ERROR",
            ApiError::PolicyUnavailable => "POLICY_UNAVAILABLE",
            ApiError::Internal(_) => "INTERNAL_ERROR",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::NotFound | ApiError::RouteNotFound | ApiError::NotFoundBecause(_) => {
                StatusCode::NOT_FOUND
            }
            ApiError::AuthRequired
            | ApiError::AuthInvalid
            | ApiError::TokenExpired
            | ApiError::TokenRevoked => StatusCode::UNAUTHORIZED,
            ApiError::PermissionDenied(_)
            | ApiError::AccountLocked { .. }
            | ApiError::TenantSuspended => StatusCode::FORBIDDEN,
            ApiError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::PolicyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The one place an error becomes an HTTP response.
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let details = match &self {
            ApiError::Validation(fields) => Value::Object(fields.0.clone()),
            ApiError::AccountLocked { until: Some(t) } => json!({ "locked_until": t }),
            ApiError::RateLimited { retry_after } => json!({ "retry_after": retry_after }),
            _ => json!({}),
        };
        if let ApiError::Internal(e) = &self {
            tracing::error!(error = ?e, request_id = %request_id(), "internal error");
        }
        let body = json!({
            "error": { "code": self.code(), "message": self.to_string(), "details": details },
            "request_id": request_id(),
        });
        let mut resp = (status, axum::Json(body)).into_response();
        if let ApiError::RateLimited { retry_after } = &self {
            resp.headers_mut()
                .insert("retry-after", HeaderValue::from(*retry_after));
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert("www-authenticate", HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

/// Constraint names that a user's input can violate, with the field and message they mean.
const CONSTRAINTS: &[(&str, &str, &str)] = &[
    (
        "tenants_code_key",
        "code",
        "a tenant with this code already exists",
    ),
    (
        "tenants_code_check",
        "code",
        "must be 2-64 characters of A-Z, 0-9, `-`, `_`",
    ),
    (
        "tenants_parent_fkey",
        "parent_id",
        "tenant has sub-tenants or the parent does not exist",
    ),
    (
        "users_tenant_email_key",
        "email",
        "a user with this email already exists in the tenant",
    ),
    (
        "users_tenant_sa_name_key",
        "name",
        "a service account with this name already exists in the tenant",
    ),
    (
        "roles_tenant_name_key",
        "name",
        "a role with this name already exists in the tenant",
    ),
    (
        "roles_parent_fkey",
        "parent_role_id",
        "parent role does not exist in this tenant",
    ),
    (
        "groups_tenant_name_key",
        "name",
        "a group with this name already exists in the tenant",
    ),
    (
        "permissions_tenant_name_key",
        "name",
        "a permission with this name already exists in the tenant",
    ),
    (
        "resources_tenant_type_external_key",
        "external_id",
        "a resource of this type with this id already exists",
    ),
    (
        "resources_parent_fkey",
        "parent_id",
        "parent resource does not exist, or the resource has children",
    ),
    (
        "resources_type_check",
        "resource_type",
        "must be lowercase letters, digits and `_`",
    ),
    (
        "field_definitions_entity_field_key",
        "field_name",
        "this field is already defined for the entity",
    ),
    (
        "field_definitions_entity_check",
        "entity_type",
        "must be lowercase letters, digits and `_`",
    ),
    (
        "field_definitions_field_check",
        "field_name",
        "must be letters, digits and `_`",
    ),
    (
        "navigation_items_parent_fkey",
        "parent_id",
        "parent item does not exist in this tenant",
    ),
    (
        "user_roles_role_fkey",
        "role_id",
        "role does not exist in this tenant",
    ),
    (
        "user_roles_user_fkey",
        "user_id",
        "user does not exist in this tenant",
    ),
    (
        "user_groups_user_fkey",
        "user_id",
        "user does not exist in this tenant",
    ),
    (
        "user_groups_group_fkey",
        "group_id",
        "group does not exist in this tenant",
    ),
    (
        "group_roles_role_fkey",
        "role_id",
        "role does not exist in this tenant",
    ),
    (
        "group_roles_group_fkey",
        "group_id",
        "group does not exist in this tenant",
    ),
    (
        "role_permissions_permission_fkey",
        "permission_id",
        "permission does not exist in this tenant",
    ),
    (
        "role_permissions_role_fkey",
        "role_id",
        "role does not exist in this tenant",
    ),
];

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::RowNotFound = e {
            return ApiError::NotFound;
        }
        if let Some(db) = e.as_database_error() {
            if let Some(name) = db.constraint() {
                if let Some((_, field, msg)) = CONSTRAINTS.iter().find(|(c, _, _)| *c == name) {
                    return FieldErrors::one(field, *msg);
                }
            }
            // 23xxx: integrity constraint violations not listed above
            if db.code().is_some_and(|c| c.starts_with("23")) {
                let mut f = FieldErrors::new();
                f.add("body", "violates a data constraint");
                return ApiError::Validation(f);
            }
        }
        ApiError::Internal(e.into())
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
