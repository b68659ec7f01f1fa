//! Opening an access request: the chain it names (or the one that covers
//! it), the checks against that chain and the policy compiler, the insert,
//! and auto-approval when the chain allows it and every condition holds.

use super::model::{self, Next};
use super::notify;
use super::workflow::{apply, get, lock, who, AccessRequest, Outcome};
use crate::db::Tx;
use crate::error::{ApiError, ApiResult, FieldErrors};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

/// What a requester asks for (the body the gateway's `403 APPROVAL_REQUIRED`
/// hands out, plus justification and duration).
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenRequest {
    /// The chain's name (as routes name it) or id; optional when exactly
    /// one active chain of the tenant covers the resource and action.
    #[serde(default)]
    pub approval_chain_id: Option<String>,
    /// `type:id` (`voyage:voy-a1`; `voyage:*` for a whole type).
    pub resource: String,
    pub action: String,
    #[serde(default)]
    pub justification: Option<String>,
    /// Seconds, or `"90s"`, `"30m"`, `"2h"`, `"1d"`; the chain's default
    /// when absent, never more than its maximum.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub duration: Option<Value>,
}

type ChainRow = (
    Uuid,
    String,
    String,
    String,
    String,
    Value,
    i32,
    i32,
    bool,
    Value,
);

/// The chain a request names, or the one that covers it.
async fn find_chain(
    tx: &mut Tx,
    tenant: Uuid,
    named: Option<&str>,
    rtype: &str,
    rid: &str,
    action: &str,
) -> ApiResult<ChainRow> {
    const COLS: &str = "id, name, resource_type, resource_pattern, action, levels,
        default_duration_seconds, max_duration_seconds, auto_approve_enabled, auto_approve_conditions";
    let rows: Vec<ChainRow> = match named {
        Some(n) => {
            let by_id = Uuid::parse_str(n).ok();
            sqlx::query_as(&format!(
                "SELECT {COLS} FROM sentinel.approval_chains
                  WHERE tenant_id = $1 AND is_active AND (name = $2 OR id = $3)"
            ))
            .bind(tenant)
            .bind(n)
            .bind(by_id)
            .fetch_all(&mut **tx)
            .await?
        }
        None => sqlx::query_as(&format!(
            "SELECT {COLS} FROM sentinel.approval_chains
              WHERE tenant_id = $1 AND is_active AND resource_type = $2 AND action = $3 ORDER BY name"
        ))
        .bind(tenant)
        .bind(rtype)
        .bind(action)
        .fetch_all(&mut **tx)
        .await?
        .into_iter()
        .filter(|c: &ChainRow| model::within(&c.3, rid))
        .collect(),
    };
    match (named, rows.len()) {
        (_, 1) => Ok(rows.into_iter().next().ok_or(ApiError::NotFound)?),
        (Some(n), _) => Err(FieldErrors::one(
            "approval_chain_id",
            format!("no active approval chain `{n}` in this tenant"),
        )),
        (None, 0) => Err(FieldErrors::one(
            "approval_chain_id",
            "no active approval chain covers this resource and action",
        )),
        (None, _) => Err(FieldErrors::one(
            "approval_chain_id",
            "several chains cover this resource and action: name one",
        )),
    }
}

/// Opens a request by `requester` of `tenant`; approves it at once when the
/// chain's auto-approval is on and every condition holds.
pub async fn open(
    tx: &mut Tx,
    tenant: Uuid,
    requester: Uuid,
    body: &OpenRequest,
    now: DateTime<Utc>,
) -> ApiResult<(AccessRequest, Vec<Outcome>)> {
    let mut errs = FieldErrors::new();
    let (rtype, rid) = match body.resource.split_once(':') {
        Some((t, i)) if crate::routes::valid_ident(t) && !i.is_empty() && i.len() <= 200 => {
            (t.to_owned(), i.to_owned())
        }
        _ => {
            errs.add(
                "resource",
                "must be `type:id` (a lowercase type, an id of 1-200 characters)",
            );
            (String::new(), String::new())
        }
    };
    if !crate::routes::valid_ident(&body.action) {
        errs.add("action", "must be lowercase letters, digits and `_`");
    }
    let justification = body.justification.clone().unwrap_or_default();
    if justification.chars().count() > 2000 {
        errs.add("justification", "must be at most 2000 characters");
    }
    let duration = match &body.duration {
        None => None,
        Some(v) => match model::parse_duration(v) {
            Some(d) if d > 0 => Some(d),
            _ => {
                errs.add(
                    "duration",
                    "must be a positive number of seconds or `<n>s|m|h|d`",
                );
                None
            }
        },
    };
    let mut errs = {
        errs.into_result()?;
        FieldErrors::new()
    };
    let chain = find_chain(
        tx,
        tenant,
        body.approval_chain_id.as_deref(),
        &rtype,
        &rid,
        &body.action,
    )
    .await?;
    let (chain_id, _, ctype, cpattern, caction, levels, default_d, max_d, auto, conditions) = chain;
    if ctype != rtype || !model::within(&cpattern, &rid) {
        errs.add(
            "resource",
            format!(
                "the chain covers `{ctype}:{cpattern}`, not `{}`",
                body.resource
            ),
        );
    }
    if caction != body.action {
        errs.add("action", format!("the chain covers `{caction}`"));
    }
    let duration = duration.unwrap_or(i64::from(default_d));
    if duration > i64::from(max_d) {
        errs.add(
            "duration",
            format!("at most {max_d} seconds for this chain"),
        );
    }
    // What the grant will carry must compile as the gateways compile it.
    let probe = sentinel_policy::source::PolicySource {
        permissions: vec![sentinel_policy::source::PermissionSource {
            id: "grant".to_owned(),
            effect: Default::default(),
            resource_type: rtype.clone(),
            resource: rid.clone(),
            actions: vec![body.action.clone()],
            conditions: Vec::new(),
            tenant_scope: Default::default(),
            fields: Default::default(),
            description: String::new(),
            mode: Default::default(),
        }],
        ..Default::default()
    };
    if let Err(list) = sentinel_policy::compile(&probe) {
        for e in list {
            errs.add("resource", e.message);
        }
    }
    errs.into_result()?;
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO sentinel.access_requests
            (tenant_id, chain_id, requester_id, resource_type, resource_id, action, justification,
             duration_seconds, levels)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
    )
    .bind(tenant)
    .bind(chain_id)
    .bind(requester)
    .bind(&rtype)
    .bind(&rid)
    .bind(&body.action)
    .bind(&justification)
    .bind(i32::try_from(duration).unwrap_or(i32::MAX))
    .bind(&levels)
    .fetch_one(&mut **tx)
    .await
    .map_err(|e| {
        let dup = e
            .as_database_error()
            .and_then(|d| d.constraint())
            .is_some_and(|c| c == "access_requests_one_pending");
        if dup {
            FieldErrors::one(
                "resource",
                "you have a pending request for this resource and action already",
            )
        } else {
            ApiError::from(e)
        }
    })?;
    let r = get(tx, tenant, id).await?;
    notify::emit(
        tx,
        "access_request.requested",
        &r.subject(),
        json!({"justification": justification, "duration_seconds": duration}),
    )
    .await?;
    let mut out = vec![Outcome {
        action: r.action.clone(),
        status: "requested",
        auto_approved: false,
        cycle_seconds: None,
    }];
    if auto && auto_approves(tx, &r, &conditions, now).await? {
        sqlx::query("UPDATE sentinel.access_requests SET auto_approved = true WHERE id = $1")
            .bind(id)
            .execute(&mut **tx)
            .await?;
        let r = lock(tx, tenant, id).await?;
        out.extend(apply(tx, &r, Next::Granted, json!({}), now).await?);
    }
    Ok((get(tx, tenant, id).await?, out))
}

/// Whether every auto-approval condition of the chain holds for `r` at `now`
/// (an empty or unreadable list never auto-approves).
async fn auto_approves(
    tx: &mut Tx,
    r: &AccessRequest,
    conditions: &Value,
    now: DateTime<Utc>,
) -> ApiResult<bool> {
    let Ok(conds) = serde_json::from_value::<Vec<model::AutoCondition>>(conditions.clone()) else {
        return Ok(false);
    };
    if conds.is_empty() {
        return Ok(false);
    }
    let roles = who(tx, r.requester_id).await?.roles;
    // The latest end of a grant of this chain, resource and action the
    // requester held (expired or still running).
    let last_end: Option<DateTime<Utc>> = sqlx::query_scalar(
        "SELECT max(coalesce(revoked_at, expires_at)) FROM sentinel.access_grants
          WHERE principal_id = $1 AND approval_chain = $2 AND resource_id = $3
            AND $4 = ANY(actions) AND status <> 'revoked'",
    )
    .bind(r.requester_id)
    .bind(&r.approval_chain)
    .bind(&r.resource_id)
    .bind(&r.action)
    .fetch_one(&mut **tx)
    .await?;
    Ok(conds.iter().all(|c| {
        model::auto_condition_holds(c, &roles, now, |within| {
            last_end.is_some_and(|end| {
                end <= now + chrono::Duration::seconds(60) && (now - end).num_seconds() <= within
            })
        })
    }))
}
