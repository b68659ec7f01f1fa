//! Imports a policy source into the admin API's tables: the inverse of
//! `snapshot::load_source`, so that a policy file (the gateway's demo
//! policy) and the database describe one world. Idempotent: objects are
//! matched by their natural keys (tenant id, role/permission/group name in
//! a tenant, principal id or email, field name per entity and tenant) and
//! brought in line; nothing is removed and existing users keep their
//! passwords.
//!
//! How file objects map to rows: a role or permission without a tenant
//! (platform-wide in a file) exists by the same name in every non-platform
//! tenant; a file id that is not a UUID (roles, permissions, groups) is the
//! row's name. Grants are not imported: in the admin API a grant comes from an
//! approved access request (docs/approvals.md).

use super::demo::AdminOnly;
use super::{ensure_user, grant_role, upsert_role, upsert_tenant, SeedReport};
use crate::config::Config;
use crate::db::Tx;
use sentinel_policy::source::{PermissionSource, PolicySource, TenantStatus};
use sentinel_policy::PLATFORM_TENANT;
use serde_json::Value;
use std::collections::HashMap;
use uuid::Uuid;

/// The serde name of an enum value (`"own_and_children"`).
fn name_of<T: serde::Serialize>(v: &T) -> anyhow::Result<String> {
    match serde_json::to_value(v)? {
        Value::String(s) => Ok(s),
        other => anyhow::bail!("not a name: {other}"),
    }
}

/// Imports `src` (and `extra`) into the database `tx` sees (all tenants).
pub async fn import(
    tx: &mut Tx,
    cfg: &Config,
    src: &PolicySource,
    extra: &AdminOnly,
    password: &str,
    report: &mut SeedReport,
) -> anyhow::Result<()> {
    import_tenants(tx, src, extra).await?;
    for f in &src.field_definitions {
        let data_type = f.data_type.clone().unwrap_or_else(|| {
            extra
                .data_types
                .iter()
                .find(|(e, n, _)| *e == f.entity && *n == f.field)
                .map_or("string", |d| d.2)
                .to_owned()
        });
        let sensitivity = f.sensitivity.as_deref().unwrap_or("internal");
        let row = FieldRow {
            tenant: f.tenant,
            entity: &f.entity,
            field: &f.field,
            tier: &name_of(&f.tier)?,
            data_type: &data_type,
            sensitivity,
            mask: &name_of(&f.mask)?,
            keep: f.mask_keep.map(i16::from),
        };
        ensure_field(tx, &row).await?;
    }
    // Role names by file id; roles (and their permissions) per tenant.
    let role_names: HashMap<&str, &str> = src
        .roles
        .iter()
        .map(|r| (r.id.as_str(), r.name.as_str()))
        .collect();
    let mut roles: HashMap<(Uuid, &str), Uuid> = HashMap::new();
    for t in src.tenants.iter().filter(|t| t.id != PLATFORM_TENANT) {
        import_roles(tx, src, extra, t.id, &mut roles).await?;
    }
    let mut groups: HashMap<&str, Uuid> = HashMap::new();
    for g in &src.groups {
        let (name, description) = match g.id.parse::<Uuid>() {
            Ok(_) => (g.name.as_str(), ""),
            Err(_) => (g.id.as_str(), g.name.as_str()),
        };
        let id: Uuid = sqlx::query_scalar(
            "INSERT INTO sentinel.groups (tenant_id, name, description) VALUES ($1, $2, $3)
             ON CONFLICT (tenant_id, name) DO UPDATE SET description = EXCLUDED.description RETURNING id",
        )
        .bind(g.tenant)
        .bind(name)
        .bind(description)
        .fetch_one(&mut **tx)
        .await?;
        for r in &g.roles {
            let name = role_names.get(r.as_str()).copied().unwrap_or(r);
            if let Some(role) = roles.get(&(g.tenant, name)) {
                sqlx::query(
                    "INSERT INTO sentinel.group_roles (group_id, role_id, tenant_id) VALUES ($1, $2, $3)
                     ON CONFLICT DO NOTHING",
                )
                .bind(id)
                .bind(role)
                .bind(g.tenant)
                .execute(&mut **tx)
                .await?;
            }
        }
        groups.insert(g.id.as_str(), id);
    }
    let codes: HashMap<Uuid, &str> = src
        .tenants
        .iter()
        .map(|t| (t.id, t.code.as_str()))
        .collect();
    for p in &src.principals {
        let id = if p.service_account {
            import_service_account(tx, p, extra, &codes, report).await?
        } else {
            let email = extra
                .emails
                .iter()
                .find(|(id, _)| *id == p.id)
                .map(|(_, e)| *e)
                .unwrap_or(&p.name);
            let attributes = serde_json::to_value(&p.attributes)?;
            let (id, created) = ensure_user(
                tx,
                cfg,
                Some(p.id),
                p.tenant,
                email,
                &p.name,
                password,
                attributes,
            )
            .await?;
            if created {
                let code = codes.get(&p.tenant).copied().unwrap_or_default();
                report.users.push((code.to_owned(), email.to_owned()));
            }
            id
        };
        if p.locked {
            sqlx::query("UPDATE sentinel.users SET is_locked = true WHERE id = $1")
                .bind(id)
                .execute(&mut **tx)
                .await?;
        }
        for r in &p.roles {
            let name = role_names.get(r.as_str()).copied().unwrap_or(r);
            if let Some(role) = roles.get(&(p.tenant, name)) {
                grant_role(tx, p.tenant, id, *role).await?;
            }
        }
        let extra_groups = extra.memberships.iter().filter(|(_, u)| *u == p.id);
        let names = p
            .groups
            .iter()
            .map(String::as_str)
            .chain(extra_groups.map(|(g, _)| *g));
        for g in names {
            if let Some(group) = groups.get(g) {
                add_member(tx, p.tenant, *group, id).await?;
            }
        }
    }
    for r in &src.revoked_tokens {
        let expires = r.expires_at.unwrap_or(4_102_444_800); // 2100-01-01
        sqlx::query(
            "INSERT INTO sentinel.token_blacklist (jti, tenant_id, expires_at, reason)
             VALUES ($1, $2, to_timestamp($3), 'demo') ON CONFLICT (jti) DO NOTHING",
        )
        .bind(&r.jti)
        .bind(extra.revoked_tenant)
        .bind(expires as f64)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Tenants, parents first; a status other than active is applied, settings
/// are the policy's plus the admin API's own.
async fn import_tenants(tx: &mut Tx, src: &PolicySource, extra: &AdminOnly) -> anyhow::Result<()> {
    let mut order: Vec<_> = src.tenants.iter().collect();
    order.sort_by_key(|t| t.parent.is_some());
    for t in order {
        let kind = match (t.id == PLATFORM_TENANT, t.parent) {
            (true, _) => "platform",
            (false, Some(_)) => "sub",
            (false, None) => "root",
        };
        let mut settings = serde_json::Map::new();
        for (k, v) in &t.settings {
            settings.insert(k.clone(), v.clone());
        }
        for (_, k, v) in extra.tenant_settings.iter().filter(|s| s.0 == t.id) {
            settings.insert((*k).to_owned(), Value::from(*v));
        }
        let name = if t.id == PLATFORM_TENANT {
            "Sentinel Platform"
        } else {
            &t.name
        };
        upsert_tenant(
            tx,
            t.id,
            &t.code,
            name,
            kind,
            t.parent,
            Value::Object(settings),
        )
        .await?;
        if t.status != TenantStatus::Active {
            sqlx::query("UPDATE sentinel.tenants SET status = $2 WHERE id = $1")
                .bind(t.id)
                .bind(name_of(&t.status)?)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

/// The roles of one tenant (its own and the platform-wide ones), parents
/// first, with their permissions.
async fn import_roles<'a>(
    tx: &mut Tx,
    src: &'a PolicySource,
    extra: &AdminOnly,
    tenant: Uuid,
    ids: &mut HashMap<(Uuid, &'a str), Uuid>,
) -> anyhow::Result<()> {
    let perms: HashMap<&str, &PermissionSource> =
        src.permissions.iter().map(|p| (p.id.as_str(), p)).collect();
    let mut perm_ids: HashMap<&str, Uuid> = HashMap::new();
    for p in &src.permissions {
        perm_ids.insert(p.id.as_str(), upsert_permission(tx, tenant, p).await?);
    }
    let mine: Vec<_> = src
        .roles
        .iter()
        .filter(|r| r.tenant.is_none_or(|t| t == tenant))
        .collect();
    let by_id: HashMap<&str, &str> = mine
        .iter()
        .map(|r| (r.id.as_str(), r.name.as_str()))
        .collect();
    let mut todo = mine;
    while !todo.is_empty() {
        let before = todo.len();
        let mut later = Vec::new();
        for r in todo {
            let parent = match r.parent.as_deref() {
                None => None,
                Some(p) => match by_id.get(p).and_then(|n| ids.get(&(tenant, *n))) {
                    Some(id) => Some(*id),
                    None => {
                        later.push(r);
                        continue;
                    }
                },
            };
            let (scopes, system) = (extra.role_scopes)(&r.name);
            let id = upsert_role(tx, tenant, &r.name, &scopes, parent, system).await?;
            for p in &r.permissions {
                if let (Some(pid), true) =
                    (perm_ids.get(p.as_str()), perms.contains_key(p.as_str()))
                {
                    sqlx::query(
                        "INSERT INTO sentinel.role_permissions (role_id, permission_id, tenant_id)
                         VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    )
                    .bind(id)
                    .bind(pid)
                    .bind(tenant)
                    .execute(&mut **tx)
                    .await?;
                }
            }
            ids.insert((tenant, r.name.as_str()), id);
        }
        if later.len() == before {
            anyhow::bail!(
                "roles with a missing parent or a cycle: {:?}",
                later.iter().map(|r| &r.id).collect::<Vec<_>>()
            );
        }
        todo = later;
    }
    Ok(())
}

/// A permission by name in a tenant, brought in line with the source.
async fn upsert_permission(
    tx: &mut Tx,
    tenant: Uuid,
    p: &PermissionSource,
) -> anyhow::Result<Uuid> {
    Ok(sqlx::query_scalar(
        "INSERT INTO sentinel.permissions (tenant_id, name, effect, resource_type, resource_pattern, actions, conditions,
                                            tenant_scope, description, field_rules)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (tenant_id, name) DO UPDATE SET effect = EXCLUDED.effect, resource_type = EXCLUDED.resource_type,
             resource_pattern = EXCLUDED.resource_pattern, actions = EXCLUDED.actions,
             conditions = EXCLUDED.conditions, tenant_scope = EXCLUDED.tenant_scope,
             description = EXCLUDED.description, field_rules = EXCLUDED.field_rules
         RETURNING id",
    )
    .bind(tenant)
    .bind(&p.id)
    .bind(name_of(&p.effect)?)
    .bind(&p.resource_type)
    .bind(&p.resource)
    .bind(&p.actions)
    .bind(serde_json::to_value(&p.conditions)?)
    .bind(name_of(&p.tenant_scope)?)
    .bind(&p.description)
    .bind(serde_json::to_value(&p.fields)?)
    .fetch_one(&mut **tx)
    .await?)
}

/// A service account by id: created with the source's key hash (or a fresh
/// key) when missing, left as it is otherwise.
async fn import_service_account(
    tx: &mut Tx,
    p: &sentinel_policy::source::PrincipalSource,
    extra: &AdminOnly,
    codes: &HashMap<Uuid, &str>,
    report: &mut SeedReport,
) -> anyhow::Result<Uuid> {
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM sentinel.users WHERE id = $1)")
            .bind(p.id)
            .fetch_one(&mut **tx)
            .await?;
    if exists {
        return Ok(p.id);
    }
    let known = extra
        .known_keys
        .iter()
        .find(|(id, _)| *id == p.id)
        .map(|(_, k)| *k);
    let (key, prefix, hash) = match (p.api_keys.first(), known) {
        (Some(k), known) => (known.map(str::to_owned), k.prefix.clone(), k.sha256.clone()),
        (None, _) => {
            let (key, prefix, hash) = crate::domain::api_keys::new_key();
            (Some(key), prefix, hash)
        }
    };
    sqlx::query(
        "INSERT INTO sentinel.users (id, tenant_id, name, is_service_account, api_key_prefix, api_key_hash, api_key_created_at)
         VALUES ($1, $2, $3, true, $4, $5, now())",
    )
    .bind(p.id)
    .bind(p.tenant)
    .bind(&p.name)
    .bind(prefix)
    .bind(hash)
    .execute(&mut **tx)
    .await?;
    if let Some(key) = key {
        let code = codes.get(&p.tenant).copied().unwrap_or_default();
        report.api_keys.push((code.to_owned(), p.name.clone(), key));
    }
    Ok(p.id)
}

async fn add_member(tx: &mut Tx, tenant: Uuid, group: Uuid, user: Uuid) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO sentinel.user_groups (user_id, group_id, tenant_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(user)
    .bind(group)
    .bind(tenant)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// One field definition row.
struct FieldRow<'a> {
    tenant: Option<Uuid>,
    entity: &'a str,
    field: &'a str,
    tier: &'a str,
    data_type: &'a str,
    sensitivity: &'a str,
    mask: &'a str,
    keep: Option<i16>,
}

/// A field definition, inserted or brought in line.
async fn ensure_field(tx: &mut Tx, f: &FieldRow<'_>) -> anyhow::Result<()> {
    let updated = sqlx::query(
        "UPDATE sentinel.field_definitions SET tier = $4, data_type = $5, sensitivity = $6, mask_style = $7, mask_keep = $8
          WHERE entity_type = $2 AND field_name = $3 AND tenant_id IS NOT DISTINCT FROM $1
            AND (tier, data_type, sensitivity, mask_style, mask_keep) IS DISTINCT FROM ($4, $5, $6, $7, $8)",
    )
    .bind(f.tenant)
    .bind(f.entity)
    .bind(f.field)
    .bind(f.tier)
    .bind(f.data_type)
    .bind(f.sensitivity)
    .bind(f.mask)
    .bind(f.keep)
    .execute(&mut **tx)
    .await?;
    if updated.rows_affected() > 0 {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO sentinel.field_definitions (tenant_id, entity_type, field_name, tier, data_type, sensitivity, mask_style, mask_keep)
         SELECT $1, $2, $3, $4, $5, $6, $7, $8
          WHERE NOT EXISTS (SELECT 1 FROM sentinel.field_definitions
                             WHERE entity_type = $2 AND field_name = $3 AND tenant_id IS NOT DISTINCT FROM $1)",
    )
    .bind(f.tenant)
    .bind(f.entity)
    .bind(f.field)
    .bind(f.tier)
    .bind(f.data_type)
    .bind(f.sensitivity)
    .bind(f.mask)
    .bind(f.keep)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
