//! Builds a [`PolicySource`] from the database: every tenant, principal, role,
//! group, permission, revoked token and field definition the transaction can
//! see. Under a one-tenant context (RLS) that is that tenant's policy; under
//! the all-tenants context it is the whole policy the gateway enforces.
//!
//! Publishing (the live-policy publisher, `sentinel-admin publish`): the
//! policy ships as a sharded snapshot (`sentinel_policy::bundle`): one global
//! part (tenants, field definitions, revoked tokens), one shard per tenant
//! (its principals, roles, groups, permissions), and a signed manifest that
//! lists the SHA-256 of every part and the version that first published it
//! (`since`). A publication rebuilds the global part and the shards of the
//! tenants changed since the previous manifest (`sentinel.policy_dirty`,
//! migration 0003), carries every other shard over unchanged, and stores new
//! parts content-addressed in `sentinel.policy_parts`.
//!
//! The loaders must never write and never widen what the transaction may
//! see; a publication must never store a manifest whose parts do not all
//! compile.

use crate::db::Tx;
use axum::body::Bytes;
use bundle::{Manifest, PartRef};
use chrono::{DateTime, Utc};
use sentinel_policy::bundle;
use sentinel_policy::signed::payload_sha256;
use sentinel_policy::source::{
    ApiKeySource, ConditionSource, Effect, FieldDefinitionSource, FieldRulesSource, GroupSource,
    MaskStyle, PermissionSource, PolicySource, PrincipalSource, PrincipalStatus,
    RevokedTokenSource, RoleSource, TenantScope, TenantSource, TenantStatus, Tier,
};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
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
}

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
    Ok(out)
}

/// A signed sharded snapshot as stored and served: the exact manifest bytes,
/// the manifest they hold, and the compact-JWS signature over those bytes.
/// The parts it lists are stored apart, by SHA-256 (`sentinel.policy_parts`).
#[derive(Debug, Clone)]
pub struct Published {
    pub version: u64,
    pub manifest: Manifest,
    pub manifest_bytes: Bytes,
    pub signature: String,
}

impl Published {
    /// From stored bytes; `None` when they are not a manifest of `version`.
    pub fn from_stored(version: u64, manifest_bytes: Vec<u8>, signature: String) -> Option<Self> {
        let manifest: Manifest = serde_json::from_slice(&manifest_bytes).ok()?;
        (manifest.version == version && manifest.format == bundle::FORMAT).then(|| Published {
            version,
            manifest,
            manifest_bytes: manifest_bytes.into(),
            signature,
        })
    }

    /// The distinct parts whose `since` is above `since` (every part for
    /// 0 or a version above this one), global part first, then the shards in
    /// tenant order.
    pub fn parts_since(&self, since: u64) -> Vec<&str> {
        let all = since == 0 || since > self.version;
        let mut seen = HashSet::new();
        std::iter::once(&self.manifest.global)
            .chain(self.manifest.shards.values())
            .filter(|r| all || r.since > since)
            .map(|r| r.sha256.as_str())
            .filter(|s| seen.insert(*s))
            .collect()
    }

    /// Whether the manifest lists a part with this hash.
    pub fn lists(&self, sha256: &str) -> bool {
        self.manifest.global.sha256 == sha256
            || self.manifest.shards.values().any(|r| r.sha256 == sha256)
    }
}

/// What one publishing attempt did.
#[derive(Debug)]
pub enum Outcome {
    /// A new version was stored (and announced on `sentinel_snapshot`).
    Published {
        snapshot: Published,
        /// The parts this version stored that the previous manifest did not
        /// list (sha256, bytes).
        new_parts: Vec<(String, Bytes)>,
        /// Shards loaded and compiled (the others were carried over).
        shards_built: usize,
        /// Time to compile the parts built (not to load or serialize them)
        /// and to sign the manifest.
        compile: std::time::Duration,
        sign: std::time::Duration,
    },
    /// Nothing changed since the latest version (returned).
    Unchanged(u64),
    /// The policy does not compile: nothing was stored; every error.
    Invalid { revision: i64, errors: Vec<String> },
}

type LastRow = (
    i64,
    Option<i64>,
    Option<DateTime<Utc>>,
    Option<Vec<u8>>,
    Option<String>,
    DateTime<Utc>,
);

/// The manifest a publication extends.
struct Previous {
    manifest: Manifest,
    source_revision: i64,
    built_at: DateTime<Utc>,
}

/// Publishes the policy when it changed since the latest snapshot (or
/// `force`): compiles the parts that changed, signs a manifest listing every
/// part, and stores it as the next version in `sentinel.policy_snapshots`
/// (new parts in `sentinel.policy_parts`), then announces it with
/// `pg_notify('sentinel_snapshot', version)`.
///
/// Safe with several publishers (admin replicas, the CLI): the policy is read
/// in one REPEATABLE READ snapshot together with the revision counter, the
/// dirty parts and the latest version; the version is the primary key, so a
/// concurrent publisher of the same version makes this one retry with a fresh
/// snapshot (which then usually finds nothing changed). A version is
/// therefore always built from a database state at least as new as every
/// lower version's, and extends the manifest of the version just below it.
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
    publish_with(pool, by, force, min_version, false).await
}

/// [`publish_at_least`]; with `rebuild`, every shard is loaded and compiled
/// as on the first publication, not only the changed ones. The manifest is
/// the one an incremental publication makes: the same hashes, and a part
/// whose bytes did not change keeps its `since`.
pub async fn publish_with(
    pool: &sqlx::PgPool,
    by: Option<Uuid>,
    force: bool,
    min_version: u64,
    rebuild: bool,
) -> anyhow::Result<Outcome> {
    for _ in 0..5 {
        match publish_once(pool, by, force, min_version, rebuild).await {
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

/// The tenants whose shard changed since `prev` was built: dirty rows of
/// later revisions, and role assignments whose validity window opened or
/// closed since.
async fn changed_tenants(
    tx: &mut Tx,
    prev: &Previous,
    window_passed: bool,
) -> Result<BTreeSet<Uuid>, sqlx::Error> {
    let dirty: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT part FROM sentinel.policy_dirty WHERE revision > $1")
            .bind(prev.source_revision)
            .fetch_all(&mut **tx)
            .await?;
    let mut out: BTreeSet<Uuid> = dirty.iter().filter_map(|p| p.parse().ok()).collect();
    if window_passed {
        let windows: Vec<Uuid> = sqlx::query_scalar(
            "SELECT DISTINCT tenant_id FROM sentinel.user_roles
              WHERE is_active
                AND ((valid_from > $1 AND valid_from <= now())
                  OR (valid_until > $1 AND valid_until <= now()))",
        )
        .bind(prev.built_at)
        .fetch_all(&mut **tx)
        .await?;
        out.extend(windows);
    }
    Ok(out)
}

async fn publish_once(
    pool: &sqlx::PgPool,
    by: Option<Uuid>,
    force: bool,
    min_version: u64,
    rebuild: bool,
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
        "SELECT version, source_revision, refresh_after, manifest, signature, created_at
           FROM sentinel.policy_snapshots ORDER BY version DESC LIMIT 1",
    )
    .fetch_optional(&mut *tx)
    .await?;
    let window_passed = last
        .as_ref()
        .and_then(|l| l.2)
        .is_some_and(|t| t <= Utc::now());
    // Only a manifest is extended; a whole-policy row of migration 0002 (or
    // an unreadable manifest) means: build everything.
    let prev: Option<Previous> = match &last {
        Some((v, Some(rev), _, Some(bytes), Some(sig), at)) => {
            match Published::from_stored(u64::try_from(*v)?, bytes.clone(), sig.clone()) {
                Some(p) => Some(Previous {
                    manifest: p.manifest,
                    source_revision: *rev,
                    built_at: *at,
                }),
                None => {
                    tracing::warn!(
                        version = v,
                        "latest manifest unreadable; rebuilding every part"
                    );
                    None
                }
            }
        }
        _ => None,
    };
    if let (Some((version, ..)), Some(p)) = (&last, &prev) {
        if !force && p.source_revision == revision && !window_passed {
            return Ok(Outcome::Unchanged(u64::try_from(*version)?));
        }
    }
    let version = (last.as_ref().map_or(0, |l| l.0) + 1).max(i64::try_from(min_version)?);
    let uversion = u64::try_from(version)?;
    let phase = std::time::Instant::now();

    // The global part: small (tenants, field definitions, revoked tokens),
    // always rebuilt, so that expired revocations leave it too.
    let global_src = bundle::global_part(&load_global(&mut tx).await?);
    let tenants: BTreeSet<Uuid> = global_src.tenants.iter().map(|t| t.id).collect();
    let (to_build, mut sources) = match &prev {
        Some(p) if !rebuild => {
            let mut t = changed_tenants(&mut tx, p, window_passed).await?;
            // New tenants get a shard; deleted ones lose theirs.
            t.extend(
                tenants
                    .iter()
                    .filter(|t| !p.manifest.shards.contains_key(t)),
            );
            t.retain(|x| tenants.contains(x));
            let ids: Vec<Uuid> = t.iter().copied().collect();
            let sources = if ids.is_empty() {
                BTreeMap::new()
            } else {
                load_shards(&mut tx, Some(&ids)).await?
            };
            (t, sources)
        }
        // First publication, after migration 0003, or asked: every shard.
        _ => (tenants.clone(), load_shards(&mut tx, None).await?),
    };

    let load = phase.elapsed();
    let phase = std::time::Instant::now();
    let started = std::time::Instant::now();
    let global = match sentinel_policy::compile_global(&global_src) {
        Ok(g) => g,
        Err(errs) => {
            return Ok(Outcome::Invalid {
                revision,
                errors: errs.iter().map(|e| format!("global part: {e}")).collect(),
            })
        }
    };
    let mut compile = started.elapsed();
    let mut serialize = std::time::Duration::ZERO;
    let mut errors = Vec::new();
    let mut built: BTreeMap<Uuid, Bytes> = BTreeMap::new();
    for t in &to_build {
        // Already a shard part (only shard lists are loaded): moved, not copied.
        let loaded = sources.remove(t).unwrap_or_default();
        let src = PolicySource {
            version: 0,
            principals: loaded.principals,
            roles: loaded.roles,
            groups: loaded.groups,
            permissions: loaded.permissions,
            grants: loaded.grants,
            ..PolicySource::default()
        };
        let started = std::time::Instant::now();
        let compiled = sentinel_policy::compile_shard(&global, *t, uversion, &src);
        compile += started.elapsed();
        match compiled {
            Ok(_) => {
                let started = std::time::Instant::now();
                built.insert(*t, Bytes::from(bundle::part_bytes(&src)));
                serialize += started.elapsed();
            }
            Err(errs) => errors.extend(errs.iter().map(|e| format!("tenant {t}: {e}"))),
        }
    }
    if !errors.is_empty() {
        return Ok(Outcome::Invalid { revision, errors });
    }
    // Compiling, serializing and dropping the parts built.
    let build = phase.elapsed();

    let global_bytes = Bytes::from(bundle::part_bytes(&global_src));
    let prev_manifest = prev.as_ref().map(|p| &p.manifest);
    let prev_shas: HashSet<&str> = prev_manifest
        .map(|m| {
            std::iter::once(&m.global)
                .chain(m.shards.values())
                .map(|r| r.sha256.as_str())
                .collect()
        })
        .unwrap_or_default();
    // Parts the previous manifest did not list (so perhaps not stored).
    let mut new_parts: BTreeMap<String, Bytes> = BTreeMap::new();
    let listed = |sha: &str, bytes: &Bytes, new_parts: &mut BTreeMap<String, Bytes>| {
        if !prev_shas.contains(sha) && !new_parts.contains_key(sha) {
            new_parts.insert(sha.to_owned(), bytes.clone());
        }
    };
    let global_sha = payload_sha256(&global_bytes);
    listed(&global_sha, &global_bytes, &mut new_parts);
    let global_ref = PartRef::next(prev_manifest.map(|m| &m.global), global_sha, uversion);
    let mut shards = BTreeMap::new();
    for t in &tenants {
        let r = match built.get(t) {
            Some(bytes) => {
                let sha = payload_sha256(bytes);
                listed(&sha, bytes, &mut new_parts);
                PartRef::next(prev_manifest.and_then(|m| m.shards.get(t)), sha, uversion)
            }
            None => match prev_manifest.and_then(|m| m.shards.get(t)) {
                Some(r) => r.clone(),
                None => anyhow::bail!("tenant {t} has no shard (internal error)"),
            },
        };
        shards.insert(*t, r);
    }
    let manifest = Manifest {
        format: bundle::FORMAT.to_owned(),
        version: uversion,
        global: global_ref,
        shards,
    };
    let manifest_bytes = serde_json::to_vec(&manifest)?;

    let signer = crate::snapshot_keys::current_signer(&mut tx)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no current snapshot signing key"))?;
    let started = std::time::Instant::now();
    let iat = Utc::now().timestamp();
    let signature = signer
        .sign(&manifest_bytes, uversion, iat)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let sign = started.elapsed();

    let phase = std::time::Instant::now();
    store_parts(&mut tx, &new_parts).await?;
    // The next moment a role assignment's validity window opens or closes.
    let refresh_after: Option<DateTime<Utc>> = sqlx::query_scalar(
        "SELECT min(t) FROM (
             SELECT valid_from AS t FROM sentinel.user_roles WHERE is_active AND valid_from > now()
             UNION ALL
             SELECT valid_until FROM sentinel.user_roles WHERE is_active AND valid_until > now()) w",
    )
    .fetch_one(&mut *tx)
    .await?;
    let mut part_list: Vec<&str> = manifest.part_hashes().collect();
    part_list.sort_unstable();
    part_list.dedup();
    sqlx::query(
        "INSERT INTO sentinel.policy_snapshots
                (version, manifest, parts, sha256, kid, signature, created_by, source_revision, refresh_after)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(version)
    .bind(&manifest_bytes)
    .bind(&part_list)
    .bind(payload_sha256(&manifest_bytes))
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
    tracing::info!(
        version,
        shards_built = built.len(),
        new_parts = new_parts.len(),
        load_ms = load.as_millis() as u64,
        compile_ms = compile.as_millis() as u64,
        serialize_ms = serialize.as_millis() as u64,
        other_build_ms = build.saturating_sub(compile + serialize).as_millis() as u64,
        store_ms = phase.elapsed().as_millis() as u64,
        "publication built"
    );
    Ok(Outcome::Published {
        snapshot: Published {
            version: uversion,
            manifest,
            manifest_bytes: manifest_bytes.into(),
            signature,
        },
        new_parts: new_parts.into_iter().collect(),
        shards_built: built.len(),
        compile,
        sign,
    })
}

/// Inserts parts (content-addressed: an existing hash is the same bytes), in
/// statements of at most ~32 MiB.
async fn store_parts(tx: &mut Tx, parts: &BTreeMap<String, Bytes>) -> Result<(), sqlx::Error> {
    const BATCH_BYTES: usize = 32 << 20;
    let mut shas: Vec<&str> = Vec::new();
    let mut bodies: Vec<&[u8]> = Vec::new();
    let mut size = 0;
    let mut iter = parts.iter().peekable();
    while let Some((sha, body)) = iter.next() {
        shas.push(sha);
        bodies.push(body);
        size += body.len();
        if size >= BATCH_BYTES || iter.peek().is_none() {
            sqlx::query(
                "INSERT INTO sentinel.policy_parts (sha256, body)
                 SELECT * FROM unnest($1::text[], $2::bytea[]) ON CONFLICT (sha256) DO NOTHING",
            )
            .bind(&shas)
            .bind(&bodies)
            .execute(&mut **tx)
            .await?;
            shas.clear();
            bodies.clear();
            size = 0;
        }
    }
    Ok(())
}

/// Deletes all but the newest `keep` snapshot versions, and the parts no kept
/// manifest lists; returns how many versions went.
pub async fn prune(pool: &sqlx::PgPool, keep: u32) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT sentinel.prune_policy_snapshots($1)")
        .bind(i32::try_from(keep).unwrap_or(i32::MAX))
        .fetch_one(pool)
        .await
}

/// The newest sharded snapshot, or a given version. Whole-policy rows of
/// migration 0002 are never returned.
pub async fn load_published(
    pool: &sqlx::PgPool,
    version: Option<u64>,
) -> Result<Option<Published>, sqlx::Error> {
    let row: Option<(i64, Vec<u8>, String)> = match version {
        None => {
            sqlx::query_as(
                "SELECT version, manifest, signature FROM sentinel.policy_snapshots
                  WHERE manifest IS NOT NULL ORDER BY version DESC LIMIT 1",
            )
            .fetch_optional(pool)
            .await?
        }
        Some(v) => {
            sqlx::query_as(
                "SELECT version, manifest, signature FROM sentinel.policy_snapshots
                  WHERE manifest IS NOT NULL AND version = $1",
            )
            .bind(i64::try_from(v).unwrap_or(i64::MAX))
            .fetch_optional(pool)
            .await?
        }
    };
    Ok(row.and_then(|(v, bytes, signature)| {
        let p = Published::from_stored(u64::try_from(v).ok()?, bytes, signature);
        if p.is_none() {
            tracing::error!(version = v, "stored manifest is unreadable; not served");
        }
        p
    }))
}

/// The stored bytes of these parts (those found), by hash.
pub async fn load_parts(
    pool: &sqlx::PgPool,
    sha256: &[&str],
) -> Result<Vec<(String, Bytes)>, sqlx::Error> {
    let rows: Vec<(String, Vec<u8>)> =
        sqlx::query_as("SELECT sha256, body FROM sentinel.policy_parts WHERE sha256 = ANY($1)")
            .bind(sha256)
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().map(|(s, b)| (s, b.into())).collect())
}
