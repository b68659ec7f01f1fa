//! Builds a [`PolicySource`] from the database: every tenant, principal, role,
//! group, permission, revoked token and field definition the transaction can
//! see. Under a one-tenant context (RLS) that is that tenant's policy; under
//! the all-tenants context it is the whole policy the gateway enforces, which
//! is what the live-policy publisher compiles, signs and ships.
//!
//! Must never write; must never widen what the transaction may see.

use crate::db::Tx;
use chrono::{DateTime, Utc};
use sentinel_policy::source::{
    ApiKeySource, ConditionSource, Effect, FieldDefinitionSource, FieldRulesSource, GroupSource,
    MaskStyle, PermissionSource, PolicySource, PrincipalSource, PrincipalStatus,
    RevokedTokenSource, RoleSource, TenantScope, TenantSource, TenantStatus, Tier,
};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("stored {what} `{id}` is not valid policy: {message}")]
    Stored {
        what: &'static str,
        id: String,
        message: String,
    },
}

fn stored(what: &'static str, id: impl ToString, e: impl ToString) -> SnapshotError {
    SnapshotError::Stored {
        what,
        id: id.to_string(),
        message: e.to_string(),
    }
}

fn to_map(v: Value) -> BTreeMap<String, Value> {
    match v {
        Value::Object(m) => m.into_iter().collect(),
        _ => BTreeMap::new(),
    }
}

pub fn parse_enum<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, serde_json::Error> {
    serde_json::from_value(Value::String(s.to_owned()))
}

type TenantRow = (Uuid, String, String, Option<Uuid>, String, Value);
type UserRow = (
    Uuid,
    Uuid,
    Option<String>,
    String,
    bool,
    bool,
    bool,
    Option<DateTime<Utc>>,
    Value,
    Option<String>,
    Option<String>,
    Option<DateTime<Utc>>,
);
type PermRow = (
    Uuid,
    String,
    String,
    String,
    Vec<String>,
    Value,
    String,
    Value,
    String,
);
type FieldRow = (
    Option<Uuid>,
    String,
    String,
    String,
    String,
    String,
    String,
    Option<i16>,
);

/// Loads everything visible to `tx` as a policy source (version 0).
pub async fn load_source(tx: &mut Tx) -> Result<PolicySource, SnapshotError> {
    let tenants: Vec<TenantRow> = sqlx::query_as(
        "SELECT id, code, name, parent_id, status, settings FROM sentinel.tenants ORDER BY code",
    )
    .fetch_all(&mut **tx)
    .await?;
    let visible: HashSet<Uuid> = tenants.iter().map(|t| t.0).collect();
    let mut out = PolicySource::default();
    for (id, code, name, parent, status, settings) in tenants {
        out.tenants.push(TenantSource {
            id,
            code,
            name,
            // A parent outside what this transaction sees is cut off (one-tenant views).
            parent: parent.filter(|p| visible.contains(p)),
            status: parse_enum::<TenantStatus>(&status).map_err(|e| stored("tenant", id, e))?,
            settings: to_map(settings),
        });
    }

    let mut roles_of: HashMap<Uuid, Vec<String>> = HashMap::new();
    let user_roles: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT user_id, role_id FROM sentinel.user_roles
          WHERE is_active AND (valid_from IS NULL OR valid_from <= now())
            AND (valid_until IS NULL OR valid_until > now())
          ORDER BY user_id, role_id",
    )
    .fetch_all(&mut **tx)
    .await?;
    for (u, r) in user_roles {
        roles_of.entry(u).or_default().push(r.to_string());
    }
    let mut groups_of: HashMap<Uuid, Vec<String>> = HashMap::new();
    let user_groups: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT user_id, group_id FROM sentinel.user_groups ORDER BY user_id, group_id",
    )
    .fetch_all(&mut **tx)
    .await?;
    for (u, g) in user_groups {
        groups_of.entry(u).or_default().push(g.to_string());
    }

    let users: Vec<UserRow> = sqlx::query_as(
        "SELECT id, tenant_id, email, name, is_service_account, is_active, is_locked, locked_until, attributes,
                api_key_prefix, api_key_hash, api_key_expires_at
           FROM sentinel.users ORDER BY id",
    )
    .fetch_all(&mut **tx)
    .await?;
    for (id, tenant, email, name, sa, active, locked, locked_until, attrs, prefix, hash, key_exp) in
        users
    {
        let api_keys = match (sa, prefix, hash) {
            (true, Some(prefix), Some(sha256)) => vec![ApiKeySource {
                prefix,
                sha256,
                expires_at: key_exp.map(|t| t.timestamp()),
            }],
            _ => Vec::new(),
        };
        out.principals.push(PrincipalSource {
            id,
            tenant,
            name: if sa { name } else { email.unwrap_or(name) },
            service_account: sa,
            status: if active {
                PrincipalStatus::Active
            } else {
                PrincipalStatus::Inactive
            },
            locked,
            locked_until: locked_until.map(|t| t.timestamp()),
            attributes: to_map(attrs),
            roles: roles_of.remove(&id).unwrap_or_default(),
            groups: groups_of.remove(&id).unwrap_or_default(),
            api_keys,
        });
    }

    let mut perms_of: HashMap<Uuid, Vec<String>> = HashMap::new();
    let role_perms: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT rp.role_id, rp.permission_id FROM sentinel.role_permissions rp
           JOIN sentinel.permissions p ON p.id = rp.permission_id
          WHERE p.is_active ORDER BY rp.role_id, rp.permission_id",
    )
    .fetch_all(&mut **tx)
    .await?;
    for (r, p) in role_perms {
        perms_of.entry(r).or_default().push(p.to_string());
    }
    let roles: Vec<(Uuid, String, Uuid, Option<Uuid>)> = sqlx::query_as(
        "SELECT id, name, tenant_id, parent_role_id FROM sentinel.roles ORDER BY id",
    )
    .fetch_all(&mut **tx)
    .await?;
    for (id, name, tenant, parent) in roles {
        out.roles.push(RoleSource {
            id: id.to_string(),
            name,
            tenant: Some(tenant),
            parent: parent.map(|p| p.to_string()),
            permissions: perms_of.remove(&id).unwrap_or_default(),
        });
    }

    let mut roles_of_group: HashMap<Uuid, Vec<String>> = HashMap::new();
    let group_roles: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT group_id, role_id FROM sentinel.group_roles ORDER BY group_id, role_id",
    )
    .fetch_all(&mut **tx)
    .await?;
    for (g, r) in group_roles {
        roles_of_group.entry(g).or_default().push(r.to_string());
    }
    let groups: Vec<(Uuid, String, Uuid)> =
        sqlx::query_as("SELECT id, name, tenant_id FROM sentinel.groups ORDER BY id")
            .fetch_all(&mut **tx)
            .await?;
    for (id, name, tenant) in groups {
        out.groups.push(GroupSource {
            id: id.to_string(),
            name,
            tenant,
            roles: roles_of_group.remove(&id).unwrap_or_default(),
        });
    }

    let perms: Vec<PermRow> = sqlx::query_as(
        "SELECT id, effect, resource_type, resource_pattern, actions, conditions, tenant_scope, field_rules, description
           FROM sentinel.permissions WHERE is_active ORDER BY id",
    )
    .fetch_all(&mut **tx)
    .await?;
    for (id, effect, rtype, pattern, actions, conditions, scope, fields, description) in perms {
        out.permissions.push(PermissionSource {
            id: id.to_string(),
            effect: parse_enum::<Effect>(&effect).map_err(|e| stored("permission", id, e))?,
            resource_type: rtype,
            resource: pattern,
            actions,
            conditions: serde_json::from_value::<Vec<ConditionSource>>(conditions)
                .map_err(|e| stored("permission", id, e))?,
            tenant_scope: parse_enum::<TenantScope>(&scope)
                .map_err(|e| stored("permission", id, e))?,
            fields: serde_json::from_value::<FieldRulesSource>(fields)
                .map_err(|e| stored("permission", id, e))?,
            description,
        });
    }

    let revoked: Vec<(String, DateTime<Utc>)> =
        sqlx::query_as("SELECT jti, expires_at FROM sentinel.token_blacklist WHERE expires_at > now() ORDER BY jti")
            .fetch_all(&mut **tx)
            .await?;
    out.revoked_tokens = revoked
        .into_iter()
        .map(|(jti, exp)| RevokedTokenSource {
            jti,
            expires_at: Some(exp.timestamp()),
        })
        .collect();

    let fields: Vec<FieldRow> = sqlx::query_as(
        "SELECT tenant_id, entity_type, field_name, tier, data_type, sensitivity, mask_style, mask_keep
           FROM sentinel.field_definitions WHERE is_active ORDER BY entity_type, field_name, tenant_id",
    )
    .fetch_all(&mut **tx)
    .await?;
    for (tenant, entity, field, tier, data_type, sensitivity, mask, keep) in fields {
        if tenant.is_some_and(|t| !visible.contains(&t)) {
            continue;
        }
        out.field_definitions.push(FieldDefinitionSource {
            tier: parse_enum::<Tier>(&tier).map_err(|e| stored("field definition", &field, e))?,
            mask: parse_enum::<MaskStyle>(&mask)
                .map_err(|e| stored("field definition", &field, e))?,
            entity,
            field,
            tenant,
            data_type: Some(data_type),
            sensitivity: Some(sensitivity),
            mask_keep: keep.and_then(|k| u8::try_from(k).ok()),
        });
    }
    Ok(out)
}

/// A signed snapshot as stored and served: the exact payload bytes and their
/// compact-JWS signature.
#[derive(Debug, Clone)]
pub struct Published {
    pub version: u64,
    pub payload: axum::body::Bytes,
    pub signature: String,
}

/// What one publishing attempt did.
#[derive(Debug)]
pub enum Outcome {
    /// A new version was stored (and announced on `sentinel_snapshot`).
    Published {
        snapshot: Published,
        /// Time to compile the policy and to sign the payload.
        compile: std::time::Duration,
        sign: std::time::Duration,
    },
    /// Nothing changed since the latest version (returned).
    Unchanged(u64),
    /// The policy does not compile: nothing was stored; every error.
    Invalid { revision: i64, errors: Vec<String> },
}

type LastRow = (i64, Option<i64>, Option<DateTime<Utc>>);

/// Loads the whole policy (all tenants) and, when it changed since the latest
/// snapshot (or `force`), compiles, signs and stores it as the next version
/// in `sentinel.policy_snapshots`, then announces it with
/// `pg_notify('sentinel_snapshot', version)`.
///
/// Safe with several publishers (admin replicas, the CLI): the policy is read
/// in one REPEATABLE READ snapshot together with the revision counter and the
/// latest version; the version is the primary key, so a concurrent publisher
/// of the same version makes this one retry with a fresh snapshot (which then
/// usually finds nothing changed). A version is therefore always built from a
/// database state at least as new as every lower version's.
pub async fn publish(
    pool: &sqlx::PgPool,
    by: Option<Uuid>,
    force: bool,
) -> anyhow::Result<Outcome> {
    publish_at_least(pool, by, force, 0).await
}

/// [`publish`], with the new version at least `min_version`: after restoring
/// the database from a backup, versions must jump past the highest one any
/// gateway holds, or gateways refuse them as replays.
pub async fn publish_at_least(
    pool: &sqlx::PgPool,
    by: Option<Uuid>,
    force: bool,
    min_version: u64,
) -> anyhow::Result<Outcome> {
    for _ in 0..5 {
        match publish_once(pool, by, force, min_version).await {
            Err(e) if is_retryable(&e) => continue,
            other => return other,
        }
    }
    anyhow::bail!("could not publish: five concurrent publishers won in a row")
}

fn is_retryable(e: &anyhow::Error) -> bool {
    e.downcast_ref::<sqlx::Error>()
        .and_then(|e| e.as_database_error())
        .and_then(|d| d.code())
        // unique_violation (a concurrent publisher took the version), serialization_failure
        .is_some_and(|c| c == "23505" || c == "40001")
}

async fn publish_once(
    pool: &sqlx::PgPool,
    by: Option<Uuid>,
    force: bool,
    min_version: u64,
) -> anyhow::Result<Outcome> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .execute(&mut *tx)
        .await?;
    sqlx::query("SELECT set_config('sentinel.all_tenants', 'on', true)")
        .execute(&mut *tx)
        .await?;
    let revision: i64 = sqlx::query_scalar("SELECT revision FROM sentinel.policy_revision")
        .fetch_one(&mut *tx)
        .await?;
    let last: Option<LastRow> = sqlx::query_as(
        "SELECT version, source_revision, refresh_after FROM sentinel.policy_snapshots
          ORDER BY version DESC LIMIT 1",
    )
    .fetch_optional(&mut *tx)
    .await?;
    if let Some((version, Some(rev), refresh_after)) = &last {
        let window_passed = refresh_after.is_some_and(|t| t <= Utc::now());
        if !force && *rev == revision && !window_passed {
            return Ok(Outcome::Unchanged(u64::try_from(*version)?));
        }
    }
    let version = (last.as_ref().map_or(0, |l| l.0) + 1).max(i64::try_from(min_version)?);
    let mut src = load_source(&mut tx).await?;
    src.version = u64::try_from(version)?;
    let started = std::time::Instant::now();
    if let Err(errs) = sentinel_policy::compile(&src) {
        return Ok(Outcome::Invalid {
            revision,
            errors: errs.iter().map(ToString::to_string).collect(),
        });
    }
    let compile = started.elapsed();
    let payload = serde_json::to_vec(&src)?;
    let signer = crate::snapshot_keys::current_signer(&mut tx)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no current snapshot signing key"))?;
    let started = std::time::Instant::now();
    let iat = Utc::now().timestamp();
    let signature = signer
        .sign(&payload, src.version, iat)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let sign = started.elapsed();
    // The next moment a role assignment's validity window opens or closes.
    let refresh_after: Option<DateTime<Utc>> = sqlx::query_scalar(
        "SELECT min(t) FROM (
             SELECT valid_from AS t FROM sentinel.user_roles WHERE is_active AND valid_from > now()
             UNION ALL
             SELECT valid_until FROM sentinel.user_roles WHERE is_active AND valid_until > now()) w",
    )
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO sentinel.policy_snapshots
                (version, payload, sha256, kid, signature, created_by, source_revision, refresh_after)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(version)
    .bind(&payload)
    .bind(sentinel_policy::signed::payload_sha256(&payload))
    .bind(signer.kid())
    .bind(&signature)
    .bind(by)
    .bind(revision)
    .bind(refresh_after)
    .execute(&mut *tx)
    .await?;
    sqlx::query("SELECT pg_notify('sentinel_snapshot', $1)")
        .bind(version.to_string())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Outcome::Published {
        snapshot: Published {
            version: src.version,
            payload: payload.into(),
            signature,
        },
        compile,
        sign,
    })
}

/// Deletes all but the newest `keep` snapshot versions; returns how many went.
pub async fn prune(pool: &sqlx::PgPool, keep: u32) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT sentinel.prune_policy_snapshots($1)")
        .bind(i32::try_from(keep).unwrap_or(i32::MAX))
        .fetch_one(pool)
        .await
}

/// The newest signed snapshot, or a given version.
pub async fn load_published(
    pool: &sqlx::PgPool,
    version: Option<u64>,
) -> Result<Option<Published>, sqlx::Error> {
    let row: Option<(i64, Vec<u8>, String)> = match version {
        None => {
            sqlx::query_as(
                "SELECT version, payload, signature FROM sentinel.policy_snapshots
                  WHERE payload IS NOT NULL ORDER BY version DESC LIMIT 1",
            )
            .fetch_optional(pool)
            .await?
        }
        Some(v) => {
            sqlx::query_as(
                "SELECT version, payload, signature FROM sentinel.policy_snapshots
                  WHERE payload IS NOT NULL AND version = $1",
            )
            .bind(i64::try_from(v).unwrap_or(i64::MAX))
            .fetch_optional(pool)
            .await?
        }
    };
    Ok(row.and_then(|(v, payload, signature)| {
        Some(Published {
            version: u64::try_from(v).ok()?,
            payload: payload.into(),
            signature,
        })
    }))
}
