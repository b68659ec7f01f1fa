//! What was published: [`Published`] (a signed manifest as stored and
//! served), storing parts by hash, pruning old versions, and reading the
//! latest manifest and its parts back. Writes only `policy_snapshots` and
//! `policy_parts`.

use crate::db::Tx;
use axum::body::Bytes;
use sentinel_policy::bundle::{self, Manifest};
use std::collections::{BTreeMap, HashSet};

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

/// Inserts parts (content-addressed: an existing hash is the same bytes), in
/// statements of at most ~32 MiB.
pub(super) async fn store_parts(
    tx: &mut Tx,
    parts: &BTreeMap<String, Bytes>,
) -> Result<(), sqlx::Error> {
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
