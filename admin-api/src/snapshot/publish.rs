//! Publishing: compile the parts that changed, sign a manifest listing every
//! part, store it as the next version and announce it. Never stores a
//! manifest whose parts do not all compile.

use super::source::{load_global, load_shards, SnapshotError};
use super::store::{store_parts, Published};
use crate::db::Tx;
use axum::body::Bytes;
use chrono::{DateTime, Utc};
use sentinel_policy::bundle::{self, Manifest, PartRef};
use sentinel_policy::signed::payload_sha256;
use sentinel_policy::source::PolicySource;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use uuid::Uuid;

/// Why a publication failed (an uncompilable policy is not an error: it is
/// [`Outcome::Invalid`]).
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Source(#[from] SnapshotError),
    #[error("snapshot version out of range")]
    Version(#[from] std::num::TryFromIntError),
    #[error("manifest: {0}")]
    Manifest(#[from] serde_json::Error),
    #[error("tenant {0} has no shard (internal error)")]
    MissingShard(Uuid),
    #[error("no current snapshot signing key")]
    NoSigningKey,
    #[error("snapshot signing key: {0}")]
    SigningKey(String),
    #[error("signing the manifest: {0}")]
    Sign(String),
    #[error("could not publish: five concurrent publishers won in a row")]
    Contended,
}

impl PublishError {
    /// A concurrent publisher took the version (unique_violation) or the
    /// snapshot could not be serialized: try again with a fresh snapshot.
    fn is_retryable(&self) -> bool {
        match self {
            PublishError::Db(e) => e
                .as_database_error()
                .and_then(|d| d.code())
                .is_some_and(|c| c == "23505" || c == "40001"),
            _ => false,
        }
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
        /// Committed policy transactions this version took in since the one
        /// it extends (1 for a first publication or a forced one): more
        /// than one means changes came in a burst.
        changes: u64,
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
) -> Result<Outcome, PublishError> {
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
) -> Result<Outcome, PublishError> {
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
) -> Result<Outcome, PublishError> {
    for _ in 0..5 {
        match publish_once(pool, by, force, min_version, rebuild).await {
            Err(e) if e.is_retryable() => continue,
            other => return other,
        }
    }
    Err(PublishError::Contended)
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
) -> Result<Outcome, PublishError> {
    let mut tx = Tx::from(pool.begin().await?);
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .execute(&mut *tx)
        .await?;
    crate::db::enter_all_tenants(&mut tx).await?;
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
    let changes = prev.as_ref().map_or(1, |p| {
        u64::try_from(revision.saturating_sub(p.source_revision)).unwrap_or(0)
    });
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
                None => return Err(PublishError::MissingShard(*t)),
            },
        };
        shards.insert(*t, r);
    }
    let manifest = Manifest {
        format: bundle::FORMAT.to_owned(),
        version: uversion,
        global: global_ref,
        shards,
        // The registry's active anomaly model (migration 0012): a change of
        // it bumps the revision, so it is published like a policy change.
        anomaly_model: crate::ai::models::active_ref(&mut tx).await?.map(Box::new),
    };
    let manifest_bytes = serde_json::to_vec(&manifest)?;

    let signer = crate::snapshot_keys::current_signer(&mut tx)
        .await
        .map_err(|e| PublishError::SigningKey(e.to_string()))?
        .ok_or(PublishError::NoSigningKey)?;
    let started = std::time::Instant::now();
    let iat = Utc::now().timestamp();
    let signature = signer
        .sign(&manifest_bytes, uversion, iat)
        .map_err(|e| PublishError::Sign(e.to_string()))?;
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
        changes,
        compile,
        sign,
    })
}
