//! `/api/v1/auth`: login with lockout, refresh with rotation and reuse
//! detection, logout, service-account token exchange, and `me`.

use crate::auth::{self, Caller};
use crate::db::{self, TenantCtx, Tx};
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::extract::{Json, MaybeJson, Path};
use crate::openapi::routes::{doc, Routes};
use crate::routes::NoStore;
use crate::state::AppState;
use crate::throttle::AuthThrottle;
use axum::extract::State;
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use rand::distributions::{Alphanumeric, DistString};
use sentinel_policy::apikey::hash_api_key;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

pub fn router() -> Routes {
    Routes::new()
        .post("/login", login, doc("none", "Log in with email, password and tenant; returns access and refresh tokens").body::<LoginRequest>().ok::<TokenPair>().error(401, "AUTH_INVALID, TOKEN_EXPIRED, TOKEN_REVOKED: the credentials presented are not valid").error(429, "RATE_LIMITED: too many auth requests from the client address; `Retry-After` says when to retry"))
        .post("/refresh", refresh, doc("none", "Rotate a refresh token (reuse revokes the whole family)").body::<RefreshRequest>().ok::<TokenPair>().error(401, "AUTH_INVALID, TOKEN_EXPIRED, TOKEN_REVOKED: the credentials presented are not valid").error(429, "RATE_LIMITED: too many auth requests from the client address; `Retry-After` says when to retry"))
        .post("/logout", logout, doc("authenticated", "Revoke the access token (jti blacklist) and optionally the refresh family").optional_body::<LogoutRequest>().no_content())
        .post("/token", token, doc("none", "Exchange a service-account API key for an access token").optional_body::<TokenRequest>().ok::<TokenPair>().error(401, "AUTH_INVALID, TOKEN_EXPIRED, TOKEN_REVOKED: the credentials presented are not valid").error(429, "RATE_LIMITED: too many auth requests from the client address; `Retry-After` says when to retry"))
        .get("/me", me, doc("authenticated", "The caller: tenant, roles, scopes"))
        .get("/validate", validate, doc("authenticated", "Whether the presented token is valid now"))
        .get("/me/tokens", my_sessions, doc("authenticated", "The caller's live sessions (refresh-token families)"))
        .delete("/me/tokens/{family_id}", end_session, doc("authenticated", "End one of the caller's sessions").no_content())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
    #[serde(default)]
    pub tenant_code: Option<String>,
    #[serde(default)]
    pub tenant_id: Option<Uuid>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenPair {
    pub access_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    pub token_type: &'static str,
    pub expires_in: i64,
}

/// Resolves a tenant before authentication (RLS: the narrow lookup function).
async fn resolve_tenant(
    state: &AppState,
    code: Option<&str>,
    id: Option<Uuid>,
) -> ApiResult<Option<(Uuid, String)>> {
    let mut conn = state.pool.acquire().await?;
    let row: Option<(Uuid, String)> = match (code, id) {
        (Some(c), _) => {
            sqlx::query_as("SELECT id, status FROM sentinel.tenant_by_code($1)")
                .bind(c)
                .fetch_optional(&mut *conn)
                .await?
        }
        (None, Some(id)) => {
            let mut tx = db::begin(&state.pool, TenantCtx::One(id)).await?;
            let r = sqlx::query_as("SELECT id, status FROM sentinel.tenants WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            tx.commit().await?;
            r
        }
        (None, None) => None,
    };
    Ok(row)
}

#[derive(sqlx::FromRow)]
struct LoginRow {
    id: Uuid,
    email: Option<String>,
    password_hash: Option<String>,
    is_active: bool,
    is_locked: bool,
    locked_until: Option<DateTime<Utc>>,
}

async fn login(
    State(state): State<AppState>,
    AuthThrottle(ip): AuthThrottle,
    Json(req): Json<LoginRequest>,
) -> ApiResult<NoStore<TokenPair>> {
    let mut errs = FieldErrors::new();
    if req.email.trim().is_empty() {
        errs.add("email", "is required");
    }
    if req.password.is_empty() {
        errs.add("password", "is required");
    }
    if req.tenant_code.is_none() && req.tenant_id.is_none() {
        errs.add("tenant_code", "`tenant_code` or `tenant_id` is required");
    }
    errs.into_result()?;

    let Some((tenant_id, tenant_status)) =
        resolve_tenant(&state, req.tenant_code.as_deref(), req.tenant_id).await?
    else {
        password_dummy(&state, &req.password).await;
        return Err(ApiError::AuthInvalid);
    };
    // Held back: this address failed too often for this account. The answer
    // and the work are those of a wrong password (docs/admin-api.md).
    let mut tx = db::begin(&state.pool, TenantCtx::One(tenant_id)).await?;
    let held = state
        .throttle
        .is_locked(&mut tx, tenant_id, &req.email, ip)
        .await?;
    let row: Option<LoginRow> = sqlx::query_as(
        "SELECT id, email, password_hash, is_active, is_locked, locked_until
           FROM sentinel.users
          WHERE tenant_id = $1 AND lower(email) = lower($2) AND NOT is_service_account
          FOR UPDATE",
    )
    .bind(tenant_id)
    .bind(req.email.trim())
    .fetch_optional(&mut *tx)
    .await?;
    let Some(user) = row else {
        password_dummy(&state, &req.password).await;
        if !held {
            state
                .throttle
                .failed(&mut tx, tenant_id, &req.email, ip)
                .await?;
            tx.commit().await?;
        }
        return Err(ApiError::AuthInvalid);
    };
    let ok = match user.password_hash.clone() {
        Some(h) => crate::password::verify_async(h, req.password.clone()).await,
        None => {
            password_dummy(&state, &req.password).await;
            false
        }
    };
    if held {
        return Err(ApiError::AuthInvalid);
    }
    if !ok {
        let failed = state
            .throttle
            .failed(&mut tx, tenant_id, &req.email, ip)
            .await?;
        // The account's counter is informational: it locks nothing.
        sqlx::query(
            "UPDATE sentinel.users SET failed_login_count = failed_login_count + 1 WHERE id = $1",
        )
        .bind(user.id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::info!(user_id = %user.id, %ip, failed, "failed login");
        return Err(ApiError::AuthInvalid);
    }
    // An administrator's lock (or one set behind the API's back) answers
    // like a wrong password too: the answer must not tell that the account exists.
    if user.is_locked || user.locked_until.is_some_and(|t| t > Utc::now()) {
        return Err(ApiError::AuthInvalid);
    }
    if !user.is_active {
        return Err(ApiError::AuthInvalid);
    }
    if tenant_status != "active" {
        return Err(ApiError::TenantSuspended);
    }
    sqlx::query(
        "UPDATE sentinel.users SET failed_login_count = 0, locked_until = NULL, last_login = now(),
                login_count = login_count + 1 WHERE id = $1",
    )
    .bind(user.id)
    .execute(&mut *tx)
    .await?;
    state
        .throttle
        .succeeded(&mut tx, tenant_id, &req.email, ip)
        .await?;
    let roles = auth::effective_role_names(&mut tx, user.id).await?;
    let (access, _) =
        auth::issue_access(&state, user.id, tenant_id, roles, false, user.email.clone())?;
    let refresh = new_refresh_token(&state, &mut tx, tenant_id, user.id, Uuid::new_v4()).await?;
    tx.commit().await?;
    Ok(NoStore(TokenPair {
        access_token: access,
        refresh_token: Some(refresh),
        token_type: "bearer",
        expires_in: state.config.access_ttl,
    }))
}

async fn password_dummy(state: &AppState, password: &str) {
    let _ = crate::password::verify_async(state.dummy_hash.clone(), password.to_owned()).await;
}

/// Refresh tokens: `rt_<tenant id, 32 hex>_<48 random alphanumerics>`; only
/// their SHA-256 is stored. The tenant part lets the lookup run under RLS.
async fn new_refresh_token(
    state: &AppState,
    tx: &mut Tx,
    tenant_id: Uuid,
    user_id: Uuid,
    family: Uuid,
) -> ApiResult<String> {
    let secret = Alphanumeric.sample_string(&mut rand::rngs::OsRng, 48);
    let token = format!("rt_{}_{}", tenant_id.simple(), secret);
    sqlx::query(
        "INSERT INTO sentinel.refresh_tokens (tenant_id, user_id, family_id, token_hash, expires_at)
         VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))",
    )
    .bind(tenant_id)
    .bind(user_id)
    .bind(family)
    .bind(hash_api_key(&token))
    .bind(state.config.refresh_ttl as f64)
    .execute(&mut **tx)
    .await?;
    Ok(token)
}

fn refresh_tenant(token: &str) -> Option<Uuid> {
    let rest = token.strip_prefix("rt_")?;
    let (tenant, secret) = rest.split_once('_')?;
    if secret.len() != 48 {
        return None;
    }
    Uuid::try_parse(tenant).ok()
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(sqlx::FromRow)]
struct RefreshRow {
    id: Uuid,
    user_id: Uuid,
    family_id: Uuid,
    expires_at: DateTime<Utc>,
    used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

async fn refresh(
    State(state): State<AppState>,
    _admitted: AuthThrottle,
    Json(req): Json<RefreshRequest>,
) -> ApiResult<NoStore<TokenPair>> {
    let tenant_id = refresh_tenant(&req.refresh_token).ok_or(ApiError::AuthInvalid)?;
    let mut tx = db::begin(&state.pool, TenantCtx::One(tenant_id)).await?;
    let row: Option<RefreshRow> = sqlx::query_as(
        "SELECT id, user_id, family_id, expires_at, used_at, revoked_at
           FROM sentinel.refresh_tokens WHERE token_hash = $1 FOR UPDATE",
    )
    .bind(hash_api_key(&req.refresh_token))
    .fetch_optional(&mut *tx)
    .await?;
    let Some(rt) = row else {
        return Err(ApiError::AuthInvalid);
    };
    if rt.revoked_at.is_some() {
        return Err(ApiError::TokenRevoked);
    }
    if rt.used_at.is_some() {
        // Reuse of a rotated token: someone holds a stolen copy. Revoke the whole family.
        sqlx::query("UPDATE sentinel.refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL")
            .bind(rt.family_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::warn!(user_id = %rt.user_id, family = %rt.family_id, "refresh token reuse: family revoked");
        return Err(ApiError::TokenRevoked);
    }
    if rt.expires_at <= Utc::now() {
        return Err(ApiError::TokenExpired);
    }
    let status = auth::principal_status(&mut tx, rt.user_id)
        .await?
        .ok_or(ApiError::AuthInvalid)?;
    status.check()?;
    sqlx::query("UPDATE sentinel.refresh_tokens SET used_at = now() WHERE id = $1")
        .bind(rt.id)
        .execute(&mut *tx)
        .await?;
    let email: Option<String> =
        sqlx::query_scalar("SELECT email FROM sentinel.users WHERE id = $1")
            .bind(rt.user_id)
            .fetch_one(&mut *tx)
            .await?;
    let roles = auth::effective_role_names(&mut tx, rt.user_id).await?;
    let (access, _) = auth::issue_access(&state, rt.user_id, tenant_id, roles, false, email)?;
    let refresh = new_refresh_token(&state, &mut tx, tenant_id, rt.user_id, rt.family_id).await?;
    tx.commit().await?;
    Ok(NoStore(TokenPair {
        access_token: access,
        refresh_token: Some(refresh),
        token_type: "bearer",
        expires_in: state.config.access_ttl,
    }))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogoutRequest {
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// Also revoke every refresh token of the caller.
    #[serde(default)]
    pub all_sessions: bool,
}

async fn logout(
    State(state): State<AppState>,
    caller: Caller,
    MaybeJson(body): MaybeJson<LogoutRequest>,
) -> ApiResult<axum::http::StatusCode> {
    let req = body.unwrap_or_default();
    let mut tx = db::begin(&state.pool, TenantCtx::One(caller.tenant_id)).await?;
    sqlx::query(
        "INSERT INTO sentinel.token_blacklist (jti, tenant_id, user_id, expires_at, reason)
         VALUES ($1, $2, $3, to_timestamp($4), 'logout') ON CONFLICT (jti) DO NOTHING",
    )
    .bind(&caller.jti)
    .bind(caller.tenant_id)
    .bind(caller.user_id)
    .bind(caller.exp as f64)
    .execute(&mut *tx)
    .await?;
    if let Some(rt) = req.refresh_token {
        sqlx::query(
            "UPDATE sentinel.refresh_tokens SET revoked_at = now()
              WHERE family_id = (SELECT family_id FROM sentinel.refresh_tokens WHERE token_hash = $1 AND user_id = $2)
                AND revoked_at IS NULL",
        )
        .bind(hash_api_key(&rt))
        .bind(caller.user_id)
        .execute(&mut *tx)
        .await?;
    }
    if req.all_sessions {
        sqlx::query("UPDATE sentinel.refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL")
            .bind(caller.user_id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    #[serde(default)]
    pub api_key: Option<String>,
}

/// The API key from `Authorization: ApiKey …`, `X-API-Key`, or the body.
fn api_key_from(headers: &HeaderMap, body: Option<TokenRequest>) -> Option<String> {
    if let Some(v) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        if let Some((scheme, key)) = v.split_once(' ') {
            if scheme.eq_ignore_ascii_case("apikey") {
                return Some(key.trim().to_owned());
            }
        }
    }
    if let Some(v) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(v.trim().to_owned());
    }
    body.and_then(|b| b.api_key)
}

/// Service-account token exchange: an API key for a short-lived access token.
async fn token(
    State(state): State<AppState>,
    _admitted: AuthThrottle,
    headers: HeaderMap,
    MaybeJson(body): MaybeJson<TokenRequest>,
) -> ApiResult<NoStore<TokenPair>> {
    let key = api_key_from(&headers, body).ok_or(ApiError::AuthRequired)?;
    let (user_id, tenant_id, mut tx) = crate::domain::api_keys::verify(&state, &key).await?;
    sqlx::query(
        "UPDATE sentinel.users SET last_login = now(), login_count = login_count + 1 WHERE id = $1",
    )
    .bind(user_id)
    .execute(&mut *tx)
    .await?;
    let roles = auth::effective_role_names(&mut tx, user_id).await?;
    let (access, _) = auth::issue_access(&state, user_id, tenant_id, roles, true, None)?;
    tx.commit().await?;
    Ok(NoStore(TokenPair {
        access_token: access,
        refresh_token: None,
        token_type: "bearer",
        expires_in: state.config.access_ttl,
    }))
}

async fn me(State(state): State<AppState>, caller: Caller) -> ApiResult<axum::Json<Value>> {
    let mut tx = db::begin(&state.pool, TenantCtx::One(caller.tenant_id)).await?;
    let row: (Option<String>, String) =
        sqlx::query_as("SELECT email, name FROM sentinel.users WHERE id = $1")
            .bind(caller.user_id)
            .fetch_one(&mut *tx)
            .await?;
    let roles = auth::effective_role_names(&mut tx, caller.user_id).await?;
    tx.commit().await?;
    Ok(axum::Json(json!({
        "user_id": caller.user_id,
        "tenant_id": caller.tenant_id,
        "email": row.0,
        "name": row.1,
        "is_service_account": caller.service_account,
        "roles": roles,
        "scopes": caller.scopes.to_strings(),
        "platform_admin": caller.is_platform_admin(),
    })))
}

/// Whether the presented token is valid now (the extractor did the checks).
async fn validate(caller: Caller) -> axum::Json<Value> {
    axum::Json(json!({
        "valid": true,
        "user_id": caller.user_id,
        "tenant_id": caller.tenant_id,
        "jti": caller.jti,
        "expires_at": caller.exp,
        "is_service_account": caller.service_account,
    }))
}

/// (family, started, last refreshed, expires).
type SessionRow = (Uuid, DateTime<Utc>, DateTime<Utc>, DateTime<Utc>);

/// The caller's live sessions: one per refresh-token family, with its newest token.
async fn my_sessions(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<Value>> {
    let mut tx = db::begin(&state.pool, TenantCtx::One(caller.tenant_id)).await?;
    let rows: Vec<SessionRow> = sqlx::query_as(
        "SELECT family_id, min(created_at), max(created_at), max(expires_at)
           FROM sentinel.refresh_tokens
          WHERE user_id = $1 AND tenant_id = $2
          GROUP BY family_id
         HAVING bool_and(revoked_at IS NULL) AND bool_or(used_at IS NULL AND expires_at > now())
          ORDER BY max(created_at) DESC",
    )
    .bind(caller.user_id)
    .bind(caller.tenant_id)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let items: Vec<Value> = rows
        .into_iter()
        .map(|(family, started, refreshed, expires)| {
            json!({"family_id": family, "started_at": started, "last_refreshed_at": refreshed, "expires_at": expires})
        })
        .collect();
    Ok(axum::Json(json!({ "items": items })))
}

/// Ends one of the caller's sessions (revokes its refresh-token family).
async fn end_session(
    State(state): State<AppState>,
    caller: Caller,
    Path(family): Path<Uuid>,
) -> ApiResult<axum::http::StatusCode> {
    let mut tx = db::begin(&state.pool, TenantCtx::One(caller.tenant_id)).await?;
    let n = sqlx::query(
        "UPDATE sentinel.refresh_tokens SET revoked_at = now()
          WHERE family_id = $1 AND user_id = $2 AND tenant_id = $3 AND revoked_at IS NULL",
    )
    .bind(family)
    .bind(caller.user_id)
    .bind(caller.tenant_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n == 0 {
        return Err(ApiError::NotFound);
    }
    tx.commit().await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn refresh_token_tenant() {
        let t = Uuid::new_v4();
        let tok = format!("rt_{}_{}", t.simple(), "a".repeat(48));
        assert_eq!(refresh_tenant(&tok), Some(t));
        assert_eq!(refresh_tenant("rt_nope_x"), None);
        assert_eq!(
            refresh_tenant(&format!("rt_{}_{}", t.simple(), "a".repeat(47))),
            None
        );
    }
}
