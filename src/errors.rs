//! Every way the gateway says no: the codes, the one mapping from token and
//! Pingora errors to codes, and the one function that turns a denial into
//! the SPEC's JSON error body.

use crate::auth::jwt::TokenError;
use crate::headers;
use bytes::Bytes;
use http::HeaderValue;
use pingora::http::ResponseHeader;
use pingora::{ErrorSource, ErrorType};
use sentinel_policy::Reason;
use std::borrow::Cow;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    AuthRequired,
    AuthInvalid,
    TokenExpired,
    TokenRevoked,
    PermissionDenied,
    ApprovalRequired,
    TenantSuspended,
    AccountLocked,
    FieldWriteDenied,
    RouteNotFound,
    BadRequest,
    BodyTooLarge,
    HeadersTooLarge,
    RateLimited,
    PolicyUnavailable,
    UpstreamUnavailable,
    UpstreamTimeout,
    InternalError,
}

impl ErrorCode {
    pub fn status(self) -> u16 {
        use ErrorCode::*;
        match self {
            AuthRequired | AuthInvalid | TokenExpired | TokenRevoked => 401,
            PermissionDenied | ApprovalRequired | TenantSuspended | AccountLocked
            | FieldWriteDenied => 403,
            RouteNotFound => 404,
            BadRequest => 400,
            BodyTooLarge => 413,
            HeadersTooLarge => 431,
            RateLimited => 429,
            UpstreamUnavailable => 502,
            PolicyUnavailable => 503,
            UpstreamTimeout => 504,
            InternalError => 500,
        }
    }

    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            AuthRequired => "AUTH_REQUIRED",
            AuthInvalid => "AUTH_INVALID",
            TokenExpired => "TOKEN_EXPIRED",
            TokenRevoked => "TOKEN_REVOKED",
            PermissionDenied => "PERMISSION_DENIED",
            ApprovalRequired => "APPROVAL_REQUIRED",
            TenantSuspended => "TENANT_SUSPENDED",
            AccountLocked => "ACCOUNT_LOCKED",
            FieldWriteDenied => "FIELD_WRITE_DENIED",
            RouteNotFound => "ROUTE_NOT_FOUND",
            BadRequest => "BAD_REQUEST",
            BodyTooLarge => "BODY_TOO_LARGE",
            HeadersTooLarge => "HEADERS_TOO_LARGE",
            RateLimited => "RATE_LIMITED",
            PolicyUnavailable => "POLICY_UNAVAILABLE",
            UpstreamUnavailable => "UPSTREAM_UNAVAILABLE",
            UpstreamTimeout => "UPSTREAM_TIMEOUT",
            InternalError => "INTERNAL_ERROR",
        }
    }

    fn default_message(self) -> &'static str {
        use ErrorCode::*;
        match self {
            AuthRequired => "authentication required",
            AuthInvalid => "invalid credentials",
            TokenExpired => "token has expired",
            TokenRevoked => "token has been revoked",
            PermissionDenied => "permission denied",
            ApprovalRequired => "this action needs an approved access request",
            TenantSuspended => "tenant is suspended",
            AccountLocked => "account is locked or inactive",
            FieldWriteDenied => "the request writes fields the caller may not write",
            RouteNotFound => "no route matches this request",
            BadRequest => "malformed request",
            BodyTooLarge => "request body is too large",
            HeadersTooLarge => "request headers are too large",
            RateLimited => "rate limit exceeded",
            PolicyUnavailable => "no policy loaded yet",
            UpstreamUnavailable => "upstream unavailable",
            UpstreamTimeout => "upstream timed out",
            InternalError => "internal error",
        }
    }
}

impl From<TokenError> for ErrorCode {
    /// `TOKEN_EXPIRED` for an expired token, `AUTH_INVALID` for every other reason.
    fn from(e: TokenError) -> ErrorCode {
        match e {
            TokenError::Expired => ErrorCode::TokenExpired,
            _ => ErrorCode::AuthInvalid,
        }
    }
}

/// The code for a failed exchange with an upstream (either proxy path):
/// a timeout, or the upstream is unavailable.
pub fn upstream_code(e: &pingora::Error) -> ErrorCode {
    match e.etype() {
        ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
            ErrorCode::UpstreamTimeout
        }
        _ => ErrorCode::UpstreamUnavailable,
    }
}

/// The code for an error Pingora reports while proxying; `None` when the
/// client went away (nothing left to answer).
pub fn proxy_code(e: &pingora::Error) -> Option<ErrorCode> {
    match e.etype() {
        ErrorType::HTTPStatus(413) => return Some(ErrorCode::BodyTooLarge),
        ErrorType::HTTPStatus(400) => return Some(ErrorCode::BadRequest),
        ErrorType::ConnectTimedout => return Some(ErrorCode::UpstreamTimeout),
        _ => {}
    }
    match e.esource() {
        ErrorSource::Upstream => Some(upstream_code(e)),
        ErrorSource::Downstream => match e.etype() {
            ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => None,
            _ => Some(ErrorCode::BadRequest),
        },
        ErrorSource::Internal | ErrorSource::Unset => Some(ErrorCode::InternalError),
    }
}

/// A refusal, with what the client may be told.
#[derive(Debug, Clone)]
pub struct Denial {
    pub code: ErrorCode,
    pub message: Cow<'static, str>,
    pub details: Option<serde_json::Value>,
    /// Seconds for `Retry-After` (rate limiting).
    pub retry_after: Option<u64>,
}

impl Denial {
    pub fn new(code: ErrorCode) -> Denial {
        Denial {
            code,
            message: Cow::Borrowed(code.default_message()),
            details: None,
            retry_after: None,
        }
    }

    pub fn with_message(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Denial {
        Denial {
            code,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    pub fn details(mut self, details: serde_json::Value) -> Denial {
        self.details = Some(details);
        self
    }

    /// The denial for a policy decision's reason.
    pub fn from_reason(reason: Reason) -> Denial {
        let code = match reason {
            Reason::TenantSuspended => ErrorCode::TenantSuspended,
            Reason::AccountLocked | Reason::AccountInactive => ErrorCode::AccountLocked,
            Reason::ApprovalRequired => ErrorCode::ApprovalRequired,
            _ => ErrorCode::PermissionDenied,
        };
        Denial::new(code)
    }
}

impl From<headers::HeaderProblem> for Denial {
    /// A refused request head (`Host`, header names): `400 BAD_REQUEST`.
    fn from(p: headers::HeaderProblem) -> Denial {
        let message = match p {
            headers::HeaderProblem::Underscore => "header names containing `_` are not accepted",
            headers::HeaderProblem::MissingHost => "an HTTP/1.1 request needs a `Host` header",
            headers::HeaderProblem::SeveralHosts => "a request may carry only one `Host` header",
        };
        Denial::with_message(ErrorCode::BadRequest, message)
    }
}

#[derive(serde::Serialize)]
struct Body<'a> {
    error: Inner<'a>,
    request_id: &'a str,
}

#[derive(serde::Serialize)]
struct Inner<'a> {
    code: &'static str,
    message: &'a str,
    details: &'a serde_json::Value,
}

/// The JSON body of a denial.
pub fn body(denial: &Denial, request_id: &str) -> Bytes {
    let empty = serde_json::Value::Object(serde_json::Map::new());
    let body = Body {
        error: Inner {
            code: denial.code.as_str(),
            message: &denial.message,
            details: denial.details.as_ref().unwrap_or(&empty),
        },
        request_id,
    };
    // Serializing these types cannot fail; fall back to a fixed body regardless.
    serde_json::to_vec(&body).map(Bytes::from).unwrap_or_else(|_| {
        Bytes::from_static(br#"{"error":{"code":"INTERNAL_ERROR","message":"internal error","details":{}},"request_id":""}"#)
    })
}

/// The whole response for a denial: status, headers and body. The one place
/// denials become HTTP.
pub fn response(denial: &Denial, request_id: &str) -> pingora::Result<(ResponseHeader, Bytes)> {
    let body = body(denial, request_id);
    let mut header = ResponseHeader::build(denial.code.status(), Some(6))?;
    let challenge = matches!(
        denial.code,
        ErrorCode::AuthRequired
            | ErrorCode::AuthInvalid
            | ErrorCode::TokenExpired
            | ErrorCode::TokenRevoked
    );
    headers::edit_response(&mut header, 5, |h| {
        headers::insert(
            h,
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )?;
        headers::insert(
            h,
            http::header::CONTENT_LENGTH,
            HeaderValue::from(body.len()),
        )?;
        headers::insert(
            h,
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        )?;
        if let Some(secs) = denial.retry_after {
            headers::insert(h, http::header::RETRY_AFTER, HeaderValue::from(secs))?;
        }
        if challenge {
            headers::insert(
                h,
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"sentinel\""),
            )?;
        }
        Ok(())
    })?;
    Ok((header, body))
}
