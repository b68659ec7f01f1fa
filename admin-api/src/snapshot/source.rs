//! Builds a [`PolicySource`] from the database: every tenant, principal, role,
//! group, permission, grant, revoked token and field definition the transaction can
//! see. Under a one-tenant context (RLS) that is that tenant's policy; under
//! the all-tenants context it is the whole policy the gateway enforces.
//!
//! The loaders must never write and never widen what the transaction may
//! see.

use crate::db::Tx;
use chrono::{DateTime, Utc};
use sentinel_policy::source::{
    ApiKeySource, ConditionSource, Effect, FieldDefinitionSource, FieldRulesSource, GrantSource,
    GroupSource, MaskStyle, PermissionSource, PolicySource, PrincipalSource, PrincipalStatus,
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

/// Which tenants' shard rows to read.
#[derive(Debug, Clone, Copy)]
enum Filter<'a> {
    /// Everything the transaction may see.
    Visible,
    /// Only these tenants' rows (`tenant_id = ANY($1)`, index-backed).
    Tenants(&'a [Uuid]),
}

impl Filter<'_> {
    /// `WHERE`/`AND` clause on `col` (bound as `$1`), or nothing.
    fn clause(&self, joiner: &str, col: &str) -> String {
        match self {
            Filter::Visible => String::new(),
            Filter::Tenants(_) => format!(" {joiner} {col} = ANY($1)"),
        }
    }

    fn query_as<'q, O>(
        &self,
        sql: &'q str,
    ) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>
    where
        O: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
    {
        let q = sqlx::query_as(sql);
        match self {
            Filter::Visible => q,
            Filter::Tenants(t) => q.bind(t.to_vec()),
        }
    }
}

/// The shard objects of some tenants, each with its tenant, every list in
/// id order (so a tenant's sub-list is the same whether read alone or with
/// every other tenant).
#[derive(Default)]
struct ShardRows {
    principals: Vec<PrincipalSource>,
    roles: Vec<RoleSource>,
    groups: Vec<GroupSource>,
    permissions: Vec<(Uuid, PermissionSource)>,
    grants: Vec<(Uuid, GrantSource)>,
}

type GrantRow = (
    Uuid,
    Uuid,
    Uuid,
    String,
    String,
    Vec<String>,
    String,
    Option<DateTime<Utc>>,
    DateTime<Utc>,
);

/// Tenants (by code), and the set of their ids.
async fn load_tenants(tx: &mut Tx) -> Result<(Vec<TenantSource>, HashSet<Uuid>), SnapshotError> {
    let tenants: Vec<TenantRow> = sqlx::query_as(
        "SELECT id, code, name, parent_id, status, settings FROM sentinel.tenants ORDER BY code",
    )
    .fetch_all(&mut **tx)
    .await?;
    let visible: HashSet<Uuid> = tenants.iter().map(|t| t.0).collect();
    let mut out = Vec::with_capacity(tenants.len());
    for (id, code, name, parent, status, settings) in tenants {
        out.push(TenantSource {
            id,
            code,
            name,
            // A parent outside what this transaction sees is cut off (one-tenant views).
            parent: parent.filter(|p| visible.contains(p)),
            status: parse_enum::<TenantStatus>(&status).map_err(|e| stored("tenant", id, e))?,
            settings: to_map(settings),
        });
    }
    Ok((out, visible))
}

async fn load_shard_rows(tx: &mut Tx, filter: Filter<'_>) -> Result<ShardRows, SnapshotError> {
    let mut out = ShardRows::default();
    let mut roles_of: HashMap<Uuid, Vec<String>> = HashMap::new();
    let sql = format!(
        "SELECT user_id, role_id FROM sentinel.user_roles
          WHERE is_active AND (valid_from IS NULL OR valid_from <= now())
            AND (valid_until IS NULL OR valid_until > now()){}
          ORDER BY user_id, role_id",
        filter.clause("AND", "tenant_id")
    );
    let user_roles: Vec<(Uuid, Uuid)> = filter.query_as(&sql).fetch_all(&mut **tx).await?;
    for (u, r) in user_roles {
        roles_of.entry(u).or_default().push(r.to_string());
    }
    let mut groups_of: HashMap<Uuid, Vec<String>> = HashMap::new();
    let sql = format!(
        "SELECT user_id, group_id FROM sentinel.user_groups{} ORDER BY user_id, group_id",
        filter.clause("WHERE", "tenant_id")
    );
    let user_groups: Vec<(Uuid, Uuid)> = filter.query_as(&sql).fetch_all(&mut **tx).await?;
    for (u, g) in user_groups {
        groups_of.entry(u).or_default().push(g.to_string());
    }

    let sql = format!(
        "SELECT id, tenant_id, email, name, is_service_account, is_active, is_locked, locked_until, attributes,
                api_key_prefix, api_key_hash, api_key_expires_at
           FROM sentinel.users{} ORDER BY id",
        filter.clause("WHERE", "tenant_id")
    );
    let users: Vec<UserRow> = filter.query_as(&sql).fetch_all(&mut **tx).await?;
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

    // Active permissions first: role links to inactive ones are left out
    // (filtered here rather than joined, so one tenant's links are read by
    // the tenant index alone).
    let sql = format!(
        "SELECT id, tenant_id, effect, resource_type, resource_pattern, actions, conditions, tenant_scope, field_rules, description
           FROM sentinel.permissions WHERE is_active{} ORDER BY id",
        filter.clause("AND", "tenant_id")
    );
    let perms: Vec<PermRow> = filter.query_as(&sql).fetch_all(&mut **tx).await?;
    for (id, tenant, effect, rtype, pattern, actions, conditions, scope, fields, description) in
        perms
    {
        out.permissions.push((
            tenant,
            PermissionSource {
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
                // The admin API's permissions are always live; shadow rules
                // are a policy-file feature (docs/policy.md, "Shadow rules").
                mode: Default::default(),
            },
        ));
    }
    let active: HashSet<Uuid> = out
        .permissions
        .iter()
        .filter_map(|(_, p)| p.id.parse().ok())
        .collect();
    let mut perms_of: HashMap<Uuid, Vec<String>> = HashMap::new();
    let sql = format!(
        "SELECT role_id, permission_id FROM sentinel.role_permissions{} ORDER BY role_id, permission_id",
        filter.clause("WHERE", "tenant_id")
    );
    let role_perms: Vec<(Uuid, Uuid)> = filter.query_as(&sql).fetch_all(&mut **tx).await?;
    for (r, p) in role_perms {
        if active.contains(&p) {
            perms_of.entry(r).or_default().push(p.to_string());
        }
    }
    let sql = format!(
        "SELECT id, name, tenant_id, parent_role_id FROM sentinel.roles{} ORDER BY id",
        filter.clause("WHERE", "tenant_id")
    );
    let roles: Vec<(Uuid, String, Uuid, Option<Uuid>)> =
        filter.query_as(&sql).fetch_all(&mut **tx).await?;
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
    let sql = format!(
        "SELECT group_id, role_id FROM sentinel.group_roles{} ORDER BY group_id, role_id",
        filter.clause("WHERE", "tenant_id")
    );
    let group_roles: Vec<(Uuid, Uuid)> = filter.query_as(&sql).fetch_all(&mut **tx).await?;
    for (g, r) in group_roles {
        roles_of_group.entry(g).or_default().push(r.to_string());
    }
    let sql = format!(
        "SELECT id, name, tenant_id FROM sentinel.groups{} ORDER BY id",
        filter.clause("WHERE", "tenant_id")
    );
    let groups: Vec<(Uuid, String, Uuid)> = filter.query_as(&sql).fetch_all(&mut **tx).await?;
    for (id, name, tenant) in groups {
        out.groups.push(GroupSource {
            id: id.to_string(),
            name,
            tenant,
            roles: roles_of_group.remove(&id).unwrap_or_default(),
        });
    }

    // Grants of approved access requests (docs/approvals.md): active and
    // not yet expired. One that expires later is still enforced only until
    // its `expires_at` (the gateway checks the time); the approvals worker
    // marks it expired, which republishes the shard without it.
    let sql = format!(
        "SELECT id, tenant_id, principal_id, resource_type, resource_id, actions, approval_chain,
                not_before, expires_at
           FROM sentinel.access_grants WHERE status = 'active' AND expires_at > now(){} ORDER BY id",
        filter.clause("AND", "tenant_id")
    );
    let grants: Vec<GrantRow> = filter.query_as(&sql).fetch_all(&mut **tx).await?;
    for (id, tenant, principal, rtype, resource, actions, chain, not_before, expires) in grants {
        out.grants.push((
            tenant,
            GrantSource {
                id: id.to_string(),
                principal,
                resource_type: rtype,
                resource,
                actions,
                not_before: not_before.map(|t| t.timestamp()),
                expires_at: expires.timestamp(),
                approval_chain: Some(chain),
            },
        ));
    }

    Ok(out)
}

/// Revoked tokens not yet expired, and field definitions of the platform and
/// of the `visible` tenants.
async fn load_global_lists(
    tx: &mut Tx,
    visible: &HashSet<Uuid>,
    out: &mut PolicySource,
) -> Result<(), SnapshotError> {
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
    Ok(())
}

/// Loads everything visible to `tx` as a policy source (version 0).
pub async fn load_source(tx: &mut Tx) -> Result<PolicySource, SnapshotError> {
    let (tenants, visible) = load_tenants(tx).await?;
    let mut out = PolicySource {
        tenants,
        ..PolicySource::default()
    };
    let rows = load_shard_rows(tx, Filter::Visible).await?;
    out.principals = rows.principals;
    out.roles = rows.roles;
    out.groups = rows.groups;
    out.permissions = rows.permissions.into_iter().map(|(_, p)| p).collect();
    out.grants = rows.grants.into_iter().map(|(_, g)| g).collect();
    load_global_lists(tx, &visible, &mut out).await?;
    Ok(out)
}

/// The global part's objects (tenants, field definitions, revoked tokens)
/// visible to `tx` (under the all-tenants context: the whole platform's).
pub async fn load_global(tx: &mut Tx) -> Result<PolicySource, SnapshotError> {
    let (tenants, visible) = load_tenants(tx).await?;
    let mut out = PolicySource {
        tenants,
        ..PolicySource::default()
    };
    load_global_lists(tx, &visible, &mut out).await?;
    Ok(out)
}

/// The shard objects (principals, roles, groups, permissions) of `tenants`
/// (`None`: of every tenant `tx` sees), one source per tenant that has any.
/// Each object goes to the shard of its row's `tenant_id`, so a shard is the
/// same whether its tenant is read alone or together with every other one.
pub async fn load_shards(
    tx: &mut Tx,
    tenants: Option<&[Uuid]>,
) -> Result<BTreeMap<Uuid, PolicySource>, SnapshotError> {
    let filter = match tenants {
        None => Filter::Visible,
        Some(t) => Filter::Tenants(t),
    };
    let rows = load_shard_rows(tx, filter).await?;
    let mut out: BTreeMap<Uuid, PolicySource> = BTreeMap::new();
    for p in rows.principals {
        out.entry(p.tenant).or_default().principals.push(p);
    }
    for r in rows.roles {
        // INVARIANT: every stored role has a tenant (`roles.tenant_id NOT NULL`).
        let t = r.tenant.unwrap_or_default();
        out.entry(t).or_default().roles.push(r);
    }
    for g in rows.groups {
        out.entry(g.tenant).or_default().groups.push(g);
    }
    for (t, p) in rows.permissions {
        out.entry(t).or_default().permissions.push(p);
    }
    for (t, g) in rows.grants {
        out.entry(t).or_default().grants.push(g);
    }
    Ok(out)
}
