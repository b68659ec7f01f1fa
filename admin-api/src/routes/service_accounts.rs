//! `/api/v1/service-accounts`: machine principals (rows of `users` with
//! `is_service_account`) and their API keys: `sk_<8-char prefix>_<40 random
//! alphanumerics>`, stored as SHA-256 and shown once, at creation or rotation.

use crate::auth::Caller;
use crate::db::Tx;
use crate::domain::api_keys::new_key;
use crate::domain::roles::{assign, ensure_not_above};
use crate::domain::rows;
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::extract::{Json, MaybeJson, Path, Query};
use crate::openapi::routes::{doc, Routes};
use crate::pagination::{filter_contains, filter_eq, text, ListResponse, CREATED_AT};
use crate::routes::{check_object, check_text, NoStore};
use crate::scopes::Level;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

pub fn router() -> Routes {
    Routes::new()
        .post(
            "/",
            create,
            doc(
                "service_account:admin",
                "Create a service account; the API key is shown once",
            )
            .body::<CreateServiceAccount>()
            .created::<WithKey>(),
        )
        .get(
            "/",
            list,
            doc("service_account:read", "List service accounts").list::<ServiceAccount>(),
        )
        .get(
            "/{id}",
            rows::fetch::<ServiceAccount>,
            doc("service_account:read", "Get a service account").ok::<ServiceAccount>(),
        )
        .patch(
            "/{id}",
            update,
            doc("service_account:write", "Update a service account")
                .body::<UpdateServiceAccount>()
                .ok::<ServiceAccount>(),
        )
        .delete(
            "/{id}",
            remove,
            doc("service_account:admin", "Delete a service account").no_content(),
        )
        .post(
            "/{id}/rotate-credentials",
            rotate,
            doc(
                "service_account:admin",
                "New API key (shown once); the old one stops working",
            )
            .optional_body::<Rotate>()
            .ok::<WithKey>(),
        )
        .get(
            "/{id}/validate",
            validate,
            doc(
                "service_account:admin",
                "Whether the credentials work now, and why not",
            ),
        )
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ServiceAccount {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub is_active: bool,
    pub is_locked: bool,
    pub api_key_prefix: Option<String>,
    pub api_key_created_at: Option<DateTime<Utc>>,
    pub api_key_expires_at: Option<DateTime<Utc>>,
    pub attributes: Value,
    pub last_login: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}
crate::sortable!(ServiceAccount, "name" => name);

const COLS: &str = "id, tenant_id, name, is_active, is_locked, api_key_prefix, api_key_created_at, api_key_expires_at, \
                    attributes, last_login, created_at, updated_at";

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WithKey {
    #[serde(flatten)]
    pub account: ServiceAccount,
    /// Shown once; only its hash is stored.
    pub api_key: String,
}

crate::tenant_row!(
    ServiceAccount,
    "service_account",
    "users",
    "SELECT {COLS} FROM sentinel.users WHERE id = $1 AND tenant_id = $2 AND is_service_account"
);

async fn get_sa(tx: &mut Tx, tenant: Uuid, id: Uuid) -> ApiResult<ServiceAccount> {
    rows::one(tx, tenant, id).await
}

fn validate_ttl(errs: &mut FieldErrors, days: Option<i64>) {
    if days.is_some_and(|d| !(0..=3650).contains(&d)) {
        errs.add("expires_in_days", "must be between 0 (no expiry) and 3650");
    }
}

fn expiry(state: &AppState, days: Option<i64>) -> Option<DateTime<Utc>> {
    let d = days.unwrap_or(state.config.api_key_ttl_days);
    (d > 0).then(|| Utc::now() + Duration::days(d))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateServiceAccount {
    pub name: String,
    #[serde(default)]
    pub attributes: Option<Value>,
    #[serde(default)]
    pub role_ids: Vec<Uuid>,
    /// Key lifetime; default `SENTINEL_API_KEY_TTL_DAYS`, 0 for none.
    #[serde(default)]
    pub expires_in_days: Option<i64>,
}

/// Creates a service account with a fresh key inside `tx`.
pub async fn insert(
    state: &AppState,
    tx: &mut Tx,
    caller: &Caller,
    req: CreateServiceAccount,
) -> ApiResult<WithKey> {
    let mut errs = FieldErrors::new();
    check_text(&mut errs, "name", &req.name, 100);
    let attributes = req.attributes.clone().unwrap_or_else(|| json!({}));
    check_object(&mut errs, "attributes", &attributes);
    validate_ttl(&mut errs, req.expires_in_days);
    errs.into_result()?;
    let (key, prefix, hash) = new_key();
    let account: ServiceAccount = sqlx::query_as(&format!(
        "INSERT INTO sentinel.users (tenant_id, name, is_service_account, api_key_prefix, api_key_hash,
                api_key_created_at, api_key_expires_at, attributes)
         VALUES ($1, $2, true, $3, $4, now(), $5, $6) RETURNING {COLS}"
    ))
    .bind(caller.target)
    .bind(req.name.trim())
    .bind(&prefix)
    .bind(&hash)
    .bind(expiry(state, req.expires_in_days))
    .bind(&attributes)
    .fetch_one(&mut **tx)
    .await?;
    for r in &req.role_ids {
        assign(tx, caller, account.id, *r, None, None).await?;
    }
    Ok(WithKey {
        account,
        api_key: key,
    })
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<CreateServiceAccount>,
) -> ApiResult<(StatusCode, NoStore<WithKey>)> {
    caller.require("service_account", Level::Admin)?;
    let mut tx = state.begin(caller.ctx()).await?;
    let out = insert(&state, &mut tx, &caller, req).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, NoStore(out)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    pub sort: Option<String>,
    pub name: Option<String>,
    pub is_active: Option<bool>,
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListParams>,
) -> ApiResult<axum::Json<ListResponse<ServiceAccount>>> {
    rows::list::<ServiceAccount>(
        (&state, &caller),
        (
            "service_account",
            (q.limit, q.cursor.as_deref(), q.sort.as_deref()),
        ),
        &[CREATED_AT, text("name")],
        format!("SELECT {COLS} FROM sentinel.users WHERE is_service_account AND tenant_id = "),
        |qb| {
            filter_contains(qb, "name", q.name);
            filter_eq(qb, "is_active", q.is_active);
        },
    )
    .await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateServiceAccount {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub attributes: Option<Value>,
    #[serde(default)]
    pub is_active: Option<bool>,
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(req): Json<UpdateServiceAccount>,
) -> ApiResult<axum::Json<ServiceAccount>> {
    let mut errs = FieldErrors::new();
    if let Some(n) = &req.name {
        check_text(&mut errs, "name", n, 100);
    }
    if let Some(a) = &req.attributes {
        check_object(&mut errs, "attributes", a);
    }
    errs.into_result()?;
    caller.require("service_account", Level::Write)?;
    if id == caller.user_id {
        return Err(ApiError::denied("a service account may not change itself"));
    }
    let mut tx = state.begin(caller.ctx()).await?;
    get_sa(&mut tx, caller.target, id).await?;
    ensure_not_above(&mut tx, &caller, id).await?;
    let sa: ServiceAccount = sqlx::query_as(&format!(
        "UPDATE sentinel.users SET name = coalesce($3, name), attributes = coalesce($4, attributes),
                is_active = coalesce($5, is_active)
          WHERE id = $1 AND tenant_id = $2 AND is_service_account RETURNING {COLS}"
    ))
    .bind(id)
    .bind(caller.target)
    .bind(req.name.as_deref().map(str::trim))
    .bind(req.attributes)
    .bind(req.is_active)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(axum::Json(sa))
}

async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    caller.require("service_account", Level::Admin)?;
    let mut tx = state.begin(caller.ctx()).await?;
    get_sa(&mut tx, caller.target, id).await?;
    ensure_not_above(&mut tx, &caller, id).await?;
    sqlx::query(
        "DELETE FROM sentinel.users WHERE id = $1 AND tenant_id = $2 AND is_service_account",
    )
    .bind(id)
    .bind(caller.target)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rotate {
    #[serde(default)]
    pub expires_in_days: Option<i64>,
}

async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    MaybeJson(req): MaybeJson<Rotate>,
) -> ApiResult<NoStore<WithKey>> {
    let req = req.unwrap_or_default();
    let mut errs = FieldErrors::new();
    validate_ttl(&mut errs, req.expires_in_days);
    errs.into_result()?;
    caller.require("service_account", Level::Admin)?;
    let mut tx = state.begin(caller.ctx()).await?;
    get_sa(&mut tx, caller.target, id).await?;
    ensure_not_above(&mut tx, &caller, id).await?;
    let (key, prefix, hash) = new_key();
    let account: ServiceAccount = sqlx::query_as(&format!(
        "UPDATE sentinel.users SET api_key_prefix = $3, api_key_hash = $4, api_key_created_at = now(),
                api_key_expires_at = $5
          WHERE id = $1 AND tenant_id = $2 AND is_service_account RETURNING {COLS}"
    ))
    .bind(id)
    .bind(caller.target)
    .bind(&prefix)
    .bind(&hash)
    .bind(expiry(&state, req.expires_in_days))
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(NoStore(WithKey {
        account,
        api_key: key,
    }))
}

/// Whether the account's credentials work now, and why not.
async fn validate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<Value>> {
    caller.require("service_account", Level::Admin)?;
    let mut tx = state.begin(caller.ctx()).await?;
    let sa = get_sa(&mut tx, caller.target, id).await?;
    let tenant_status: String =
        sqlx::query_scalar("SELECT status FROM sentinel.tenants WHERE id = $1")
            .bind(sa.tenant_id)
            .fetch_one(&mut *tx)
            .await?;
    tx.commit().await?;
    let mut problems = Vec::new();
    if !sa.is_active {
        problems.push("account is inactive");
    }
    if sa.is_locked {
        problems.push("account is locked");
    }
    if sa.api_key_expires_at.is_some_and(|e| e <= Utc::now()) {
        problems.push("API key has expired");
    }
    if tenant_status != "active" {
        problems.push("tenant is not active");
    }
    Ok(axum::Json(json!({
        "id": sa.id,
        "valid": problems.is_empty(),
        "problems": problems,
        "api_key_prefix": sa.api_key_prefix,
        "api_key_expires_at": sa.api_key_expires_at,
    })))
}
