//! `/api/v1/field-definitions`: the three-tier field model. `core` and
//! `platform_dynamic` fields are platform-wide (platform superadmins write
//! them, every tenant reads them); `tenant_specific` fields belong to one tenant.

use crate::auth::Caller;
use crate::db::{TenantCtx, Tx};
use crate::domain::rows;
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::extract::{Json, Path, Query};
use crate::openapi::routes::{doc, Routes};
use crate::pagination::{filter_eq, text, ListResponse, Page, CREATED_AT};
use crate::routes::{created, valid_ident};
use crate::scopes::Level;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub fn router() -> Routes {
    Routes::new()
        .post(
            "/",
            create,
            doc(
                "field_definition:admin",
                "Define a field (core/platform_dynamic: platform superadmin)",
            )
            .body::<CreateField>()
            .created::<FieldDefinition>(),
        )
        .get(
            "/",
            list,
            doc(
                "field_definition:read",
                "List platform-wide and own fields (filters: entity_type, tier, sensitivity)",
            )
            .list::<FieldDefinition>(),
        )
        .get(
            "/{id}",
            rows::fetch::<FieldDefinition>,
            doc("field_definition:read", "Get a field definition").ok::<FieldDefinition>(),
        )
        .patch(
            "/{id}",
            update,
            doc("field_definition:write", "Update a field definition")
                .body::<UpdateField>()
                .ok::<FieldDefinition>(),
        )
        .delete(
            "/{id}",
            remove,
            doc("field_definition:admin", "Delete a field definition").no_content(),
        )
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct FieldDefinition {
    pub id: Uuid,
    pub tenant_id: Option<Uuid>,
    pub entity_type: String,
    pub field_name: String,
    pub tier: String,
    pub data_type: String,
    pub sensitivity: String,
    pub mask_style: String,
    pub mask_keep: Option<i16>,
    pub description: String,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}
crate::sortable!(FieldDefinition, "field_name" => field_name, "entity_type" => entity_type);

const COLS: &str =
    "id, tenant_id, entity_type, field_name, tier, data_type, sensitivity, mask_style, mask_keep, \
                    description, is_active, created_at, updated_at";
const TIERS: &[&str] = &["core", "platform_dynamic", "tenant_specific"];
const DATA_TYPES: &[&str] = &[
    "string", "number", "integer", "boolean", "date", "datetime", "object", "array",
];
const SENSITIVITIES: &[&str] = &["public", "internal", "confidential", "restricted"];
const MASKS: &[&str] = &["full", "last", "hash", "null"];

fn one_of(errs: &mut FieldErrors, field: &str, v: &str, allowed: &[&str]) {
    if !allowed.contains(&v) {
        errs.add(field, format!("must be one of {}", allowed.join(", ")));
    }
}

fn valid_field_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.as_bytes()[0].is_ascii_digit()
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateField {
    pub entity_type: String,
    pub field_name: String,
    pub tier: String,
    #[serde(default)]
    pub data_type: Option<String>,
    #[serde(default)]
    pub sensitivity: Option<String>,
    #[serde(default)]
    pub mask_style: Option<String>,
    #[serde(default)]
    pub mask_keep: Option<i16>,
    #[serde(default)]
    pub description: Option<String>,
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<CreateField>,
) -> ApiResult<(StatusCode, axum::Json<FieldDefinition>)> {
    let mut errs = FieldErrors::new();
    if !valid_ident(&req.entity_type) {
        errs.add(
            "entity_type",
            "must be lowercase letters, digits and `_`, starting with a letter",
        );
    }
    if !valid_field_name(&req.field_name) {
        errs.add(
            "field_name",
            "must be letters, digits and `_`, not starting with a digit",
        );
    }
    one_of(&mut errs, "tier", &req.tier, TIERS);
    let data_type = req.data_type.clone().unwrap_or_else(|| "string".to_owned());
    one_of(&mut errs, "data_type", &data_type, DATA_TYPES);
    let sensitivity = req
        .sensitivity
        .clone()
        .unwrap_or_else(|| "internal".to_owned());
    one_of(&mut errs, "sensitivity", &sensitivity, SENSITIVITIES);
    let mask = req.mask_style.clone().unwrap_or_else(|| "full".to_owned());
    one_of(&mut errs, "mask_style", &mask, MASKS);
    if req.mask_keep.is_some_and(|k| !(0..=64).contains(&k)) {
        errs.add("mask_keep", "must be between 0 and 64");
    }
    errs.into_result()?;
    caller.require("field_definition", Level::Admin)?;
    let platform_wide = req.tier != "tenant_specific";
    if platform_wide && !caller.is_platform_admin() {
        return Err(ApiError::denied(
            "core and platform_dynamic fields are managed by platform administrators",
        ));
    }
    let ctx = if platform_wide {
        TenantCtx::All
    } else {
        caller.ctx()
    };
    let mut tx = state.begin(ctx).await?;
    // A field name is defined once per entity for a tenant: its own fields and the platform-wide ones.
    let clash: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sentinel.field_definitions
                         WHERE entity_type = $1 AND field_name = $2
                           AND (tenant_id IS NULL OR tenant_id = $3 OR $4))",
    )
    .bind(&req.entity_type)
    .bind(&req.field_name)
    .bind(caller.target)
    .bind(platform_wide)
    .fetch_one(&mut *tx)
    .await?;
    if clash {
        return Err(FieldErrors::one(
            "field_name",
            "this field is already defined for the entity",
        ));
    }
    let f: FieldDefinition = sqlx::query_as(&format!(
        "INSERT INTO sentinel.field_definitions (tenant_id, entity_type, field_name, tier, data_type, sensitivity,
                mask_style, mask_keep, description)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {COLS}"
    ))
    .bind((!platform_wide).then_some(caller.target))
    .bind(&req.entity_type)
    .bind(&req.field_name)
    .bind(&req.tier)
    .bind(&data_type)
    .bind(&sensitivity)
    .bind(&mask)
    .bind(req.mask_keep)
    .bind(req.description.unwrap_or_default())
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(created(f))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    pub sort: Option<String>,
    pub entity_type: Option<String>,
    pub tier: Option<String>,
    pub sensitivity: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListParams>,
) -> ApiResult<axum::Json<ListResponse<FieldDefinition>>> {
    caller.require("field_definition", Level::Read)?;
    let page = Page::parse(
        q.limit,
        q.cursor.as_deref(),
        q.sort.as_deref(),
        &[CREATED_AT, text("field_name"), text("entity_type")],
    )?;
    rows::list_page::<FieldDefinition>(&state, &caller, &page, format!("SELECT {COLS} FROM sentinel.field_definitions WHERE (tenant_id IS NULL OR tenant_id = "), |qb| {
        qb.push(")");
        filter_eq(qb, "entity_type", q.entity_type);
        filter_eq(qb, "tier", q.tier);
        filter_eq(qb, "sensitivity", q.sensitivity);
    })
    .await
}

crate::tenant_row!(FieldDefinition, "field_definition", "field_definitions", "SELECT {COLS} FROM sentinel.field_definitions WHERE id = $1 AND (tenant_id IS NULL OR tenant_id = $2)");

async fn get_field(tx: &mut Tx, tenant: Uuid, id: Uuid) -> ApiResult<FieldDefinition> {
    rows::one(tx, tenant, id).await
}

/// Loads the field and opens the context that may write it.
async fn writable(state: &AppState, caller: &Caller, id: Uuid) -> ApiResult<(Tx, FieldDefinition)> {
    let mut tx = state.begin(caller.ctx()).await?;
    let f = get_field(&mut tx, caller.target, id).await?;
    if f.tenant_id.is_none() {
        if !caller.is_platform_admin() {
            return Err(ApiError::denied(
                "core and platform_dynamic fields are managed by platform administrators",
            ));
        }
        tx.rollback().await?;
        let tx = state.begin(TenantCtx::All).await?;
        return Ok((tx, f));
    }
    Ok((tx, f))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateField {
    #[serde(default)]
    pub data_type: Option<String>,
    #[serde(default)]
    pub sensitivity: Option<String>,
    #[serde(default)]
    pub mask_style: Option<String>,
    #[serde(default)]
    pub mask_keep: Option<i16>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub is_active: Option<bool>,
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(req): Json<UpdateField>,
) -> ApiResult<axum::Json<FieldDefinition>> {
    let mut errs = FieldErrors::new();
    if let Some(v) = &req.data_type {
        one_of(&mut errs, "data_type", v, DATA_TYPES);
    }
    if let Some(v) = &req.sensitivity {
        one_of(&mut errs, "sensitivity", v, SENSITIVITIES);
    }
    if let Some(v) = &req.mask_style {
        one_of(&mut errs, "mask_style", v, MASKS);
    }
    if req.mask_keep.is_some_and(|k| !(0..=64).contains(&k)) {
        errs.add("mask_keep", "must be between 0 and 64");
    }
    errs.into_result()?;
    caller.require("field_definition", Level::Write)?;
    let (mut tx, _) = writable(&state, &caller, id).await?;
    let f: FieldDefinition = sqlx::query_as(&format!(
        "UPDATE sentinel.field_definitions SET data_type = coalesce($2, data_type),
                sensitivity = coalesce($3, sensitivity), mask_style = coalesce($4, mask_style),
                mask_keep = coalesce($5, mask_keep), description = coalesce($6, description),
                is_active = coalesce($7, is_active)
          WHERE id = $1 RETURNING {COLS}"
    ))
    .bind(id)
    .bind(req.data_type)
    .bind(req.sensitivity)
    .bind(req.mask_style)
    .bind(req.mask_keep)
    .bind(req.description)
    .bind(req.is_active)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(axum::Json(f))
}

async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    caller.require("field_definition", Level::Admin)?;
    let (mut tx, _) = writable(&state, &caller, id).await?;
    sqlx::query("DELETE FROM sentinel.field_definitions WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
