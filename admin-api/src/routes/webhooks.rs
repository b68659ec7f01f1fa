//! `/api/v1/webhooks`: where a tenant's notifications are delivered
//! (docs/webhooks.md), and the tenant's outbox of events with their
//! delivery state. A webhook's secret is written, never read back.

use crate::auth::Caller;
use crate::db::Tx;
use crate::domain::rows;
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::extract::{Json, Path, Query};
use crate::openapi::routes::{doc, Routes};
use crate::outbox::target::{self, AddressPolicy};
use crate::pagination::{filter_contains, filter_eq, text, ListResponse, CREATED_AT};
use crate::routes::created;
use crate::scopes::Level;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

pub fn router() -> Routes {
    Routes::new()
        .post(
            "/",
            create,
            doc(
                "webhook:admin",
                "Create a webhook (the secret is write-only: never returned)",
            )
            .body::<CreateWebhook>()
            .created::<Webhook>(),
        )
        .get(
            "/",
            list,
            doc("webhook:read", "List webhooks (filters: enabled, name)").list::<Webhook>(),
        )
        .get(
            "/events",
            list_events,
            doc(
                "webhook:read",
                "List the tenant's notification events and their delivery state (filters: status, event)",
            )
            .list::<OutboxEvent>(),
        )
        .post(
            "/events/{id}/retry",
            retry_event,
            doc(
                "webhook:admin",
                "Deliver a failed event (a dead letter) again, with a fresh set of retries",
            )
            .ok::<OutboxEvent>(),
        )
        .get(
            "/{id}",
            rows::fetch::<Webhook>,
            doc("webhook:read", "Get a webhook").ok::<Webhook>(),
        )
        .patch(
            "/{id}",
            update,
            doc(
                "webhook:write",
                "Update a webhook (changing `url` or `secret` needs webhook:admin)",
            )
            .body::<UpdateWebhook>()
            .ok::<Webhook>(),
        )
        .delete(
            "/{id}",
            rows::remove::<Webhook>,
            doc("webhook:admin", "Delete a webhook").no_content(),
        )
}

/// A webhook as the API shows it: everything but the secret.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Webhook {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub url: String,
    /// Events delivered (exact names or `prefix.*`); empty: every event.
    pub events: Vec<String>,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}
crate::sortable!(Webhook, "name" => name);

// INVARIANT: `secret` is never among the columns read back.
const COLS: &str = "id, tenant_id, name, url, events, enabled, created_at, updated_at";

/// An outbox event and how far its delivery got.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct OutboxEvent {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub event: String,
    pub subject_id: Uuid,
    pub payload: Value,
    pub idempotency_key: String,
    /// `pending`, `delivered` or `failed` (a dead letter).
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    /// Webhooks that accepted the event.
    pub delivered_to: Vec<Uuid>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub failed_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
}
crate::sortable!(OutboxEvent, "event" => event);

const EVENT_COLS: &str = "id, tenant_id, event, subject_id, payload, idempotency_key,
    CASE WHEN delivered_at IS NOT NULL THEN 'delivered'
         WHEN failed_at IS NOT NULL THEN 'failed' ELSE 'pending' END AS status,
    attempts, next_attempt_at, delivered_to, delivered_at, failed_at, last_error, created_at";

fn policy(state: &AppState) -> AddressPolicy {
    AddressPolicy {
        allow_loopback: state.config.webhook_allow_loopback,
        allowed_networks: state.config.webhook_allowed_networks.clone(),
    }
}

fn check_url(errs: &mut FieldErrors, state: &AppState, raw: &str) -> Option<String> {
    match target::check_url(raw, &policy(state)) {
        Ok(u) => Some(u.to_string()),
        Err(e) => {
            errs.add("url", e.to_string());
            None
        }
    }
}

/// The secret as stored: sealed with the key-encryption key, bound to the
/// webhook's id (docs/security.md, "Keys at rest").
fn seal_secret(id: Uuid, secret: &str) -> ApiResult<String> {
    crate::sealing::keyring()
        .and_then(|k| k.seal(&crate::sealing::row("webhooks", &id.to_string()), secret))
        .map_err(ApiError::internal)
}

fn check_secret(errs: &mut FieldErrors, s: &str) {
    let n = s.chars().count();
    if !(16..=256).contains(&n) {
        errs.add("secret", "must be 16-256 characters");
    } else if s.chars().any(char::is_control) {
        errs.add("secret", "must not contain control characters");
    }
}

/// Event filters: exact names (`access_request.approved`) or a prefix
/// (`access_request.*`); at most 50.
fn check_events(errs: &mut FieldErrors, events: &[String]) {
    if events.len() > 50 {
        errs.add("events", "at most 50 entries");
        return;
    }
    for e in events {
        let name = e.strip_suffix(".*").unwrap_or(e);
        let ok = !name.is_empty()
            && name.len() <= 64
            && name.as_bytes()[0].is_ascii_lowercase()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.');
        if !ok {
            errs.add(
                "events",
                format!("`{e}` is not an event name (lowercase words joined by `.`, optionally ending in `.*`)"),
            );
        }
    }
}

fn check_name(errs: &mut FieldErrors, n: &str) {
    if n.chars().count() > 200 {
        errs.add("name", "must be at most 200 characters");
    }
}

crate::tenant_row!(
    Webhook,
    "webhook",
    "webhooks",
    "SELECT {COLS} FROM sentinel.webhooks WHERE id = $1 AND tenant_id = $2"
);

async fn get_hook(tx: &mut Tx, tenant: Uuid, id: Uuid) -> ApiResult<Webhook> {
    rows::one(tx, tenant, id).await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    #[serde(default)]
    pub name: Option<String>,
    /// `http` or `https`; must not point at private, loopback or link-local
    /// addresses unless the operator allowed them.
    pub url: String,
    /// Keys the `sentinel-signature` HMAC; 16-256 characters; never returned.
    pub secret: String,
    #[serde(default)]
    pub events: Option<Vec<String>>,
    #[serde(default)]
    pub enabled: Option<bool>,
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<CreateWebhook>,
) -> ApiResult<(StatusCode, axum::Json<Webhook>)> {
    let mut errs = FieldErrors::new();
    let url = check_url(&mut errs, &state, &req.url);
    check_secret(&mut errs, &req.secret);
    let events = req.events.unwrap_or_default();
    check_events(&mut errs, &events);
    let name = req.name.unwrap_or_default().trim().to_owned();
    check_name(&mut errs, &name);
    errs.into_result()?;
    caller.require("webhook", Level::Admin)?;
    let id = Uuid::new_v4();
    let secret = seal_secret(id, &req.secret)?;
    let mut tx = state.begin(caller.ctx()).await?;
    let w: Webhook = sqlx::query_as(&format!(
        "INSERT INTO sentinel.webhooks (id, tenant_id, name, url, secret, events, enabled)
         VALUES ($7, $1, $2, $3, $4, $5, $6) RETURNING {COLS}"
    ))
    .bind(caller.target)
    .bind(name)
    .bind(url)
    .bind(&secret)
    .bind(&events)
    .bind(req.enabled.unwrap_or(true))
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(created(w))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    pub sort: Option<String>,
    pub enabled: Option<bool>,
    pub name: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListParams>,
) -> ApiResult<axum::Json<ListResponse<Webhook>>> {
    rows::list::<Webhook>(
        (&state, &caller),
        ("webhook", (q.limit, q.cursor.as_deref(), q.sort.as_deref())),
        &[CREATED_AT, text("name")],
        format!("SELECT {COLS} FROM sentinel.webhooks WHERE tenant_id = "),
        |qb| {
            filter_eq(qb, "enabled", q.enabled);
            filter_contains(qb, "name", q.name);
        },
    )
    .await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhook {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub events: Option<Vec<String>>,
    #[serde(default)]
    pub enabled: Option<bool>,
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(req): Json<UpdateWebhook>,
) -> ApiResult<axum::Json<Webhook>> {
    let mut errs = FieldErrors::new();
    let url = match &req.url {
        Some(u) => check_url(&mut errs, &state, u),
        None => None,
    };
    if let Some(s) = &req.secret {
        check_secret(&mut errs, s);
    }
    if let Some(e) = &req.events {
        check_events(&mut errs, e);
    }
    let name = req.name.as_deref().map(|n| n.trim().to_owned());
    if let Some(n) = &name {
        check_name(&mut errs, n);
    }
    errs.into_result()?;
    // Where notifications go, and what authenticates them, is an admin's
    // call; turning a webhook on or off or narrowing its events is not.
    let level = if req.url.is_some() || req.secret.is_some() {
        Level::Admin
    } else {
        Level::Write
    };
    caller.require("webhook", level)?;
    let secret = req
        .secret
        .as_deref()
        .map(|s| seal_secret(id, s))
        .transpose()?;
    let mut tx = state.begin(caller.ctx()).await?;
    get_hook(&mut tx, caller.target, id).await?;
    let w: Webhook = sqlx::query_as(&format!(
        "UPDATE sentinel.webhooks SET name = coalesce($3, name), url = coalesce($4, url),
                secret = coalesce($5, secret), events = coalesce($6, events), enabled = coalesce($7, enabled)
          WHERE id = $1 AND tenant_id = $2 RETURNING {COLS}"
    ))
    .bind(id)
    .bind(caller.target)
    .bind(name)
    .bind(url)
    .bind(secret)
    .bind(req.events)
    .bind(req.enabled)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(axum::Json(w))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventParams {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    pub sort: Option<String>,
    /// `pending`, `delivered` or `failed`.
    pub status: Option<String>,
    pub event: Option<String>,
}

async fn list_events(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<EventParams>,
) -> ApiResult<axum::Json<ListResponse<OutboxEvent>>> {
    let status = match q.status.as_deref() {
        None => None,
        Some("pending") => Some("delivered_at IS NULL AND failed_at IS NULL"),
        Some("delivered") => Some("delivered_at IS NOT NULL"),
        Some("failed") => Some("failed_at IS NOT NULL"),
        Some(_) => {
            return Err(FieldErrors::one(
                "status",
                "must be `pending`, `delivered` or `failed`",
            ))
        }
    };
    rows::list::<OutboxEvent>(
        (&state, &caller),
        ("webhook", (q.limit, q.cursor.as_deref(), q.sort.as_deref())),
        &[CREATED_AT, text("event")],
        format!("SELECT * FROM (SELECT {EVENT_COLS} FROM sentinel.outbox) o WHERE tenant_id = "),
        |qb| {
            if let Some(s) = status {
                qb.push(" AND ").push(s);
            }
            filter_eq(qb, "event", q.event);
        },
    )
    .await
}

async fn retry_event(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<OutboxEvent>> {
    caller.require("webhook", Level::Admin)?;
    let mut tx = state.begin(caller.ctx()).await?;
    // A failed event starts over; a pending or delivered one is left as it is.
    sqlx::query(
        "UPDATE sentinel.outbox SET attempts = 0, failed_at = NULL, next_attempt_at = now()
          WHERE id = $1 AND tenant_id = $2 AND failed_at IS NOT NULL",
    )
    .bind(id)
    .bind(caller.target)
    .execute(&mut *tx)
    .await?;
    let e: OutboxEvent = sqlx::query_as(&format!(
        "SELECT {EVENT_COLS} FROM sentinel.outbox WHERE id = $1 AND tenant_id = $2"
    ))
    .bind(id)
    .bind(caller.target)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(ApiError::NotFound)?;
    tx.commit().await?;
    Ok(axum::Json(e))
}
