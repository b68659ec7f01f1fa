//! Snapshot signing keys (ES256 with a `kid`), kept apart from the access-token
//! keys of [`crate::keys`] in `sentinel.snapshot_signing_keys`, so that a stolen
//! token key cannot sign policy. `next` is published before it signs,
//! `current` signs, `previous` still verifies until the next rotation.
//!
//! Must never hand out a private key beyond the publisher, and never sign
//! anything but snapshots.

use jsonwebtoken::Algorithm;
use sentinel_policy::signed::SnapshotSigner;
use serde_json::{json, Value};
use sqlx::{PgConnection, PgPool};

pub(crate) const TABLE: &str = "snapshot_signing_keys";

/// Inserts a current key when there is none. Returns whether it created one.
pub async fn ensure_key(pool: &PgPool) -> anyhow::Result<bool> {
    let mut tx = pool.begin().await?;
    sqlx::query("LOCK TABLE sentinel.snapshot_signing_keys IN EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await?;
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sentinel.snapshot_signing_keys WHERE status = 'current'",
    )
    .fetch_one(&mut *tx)
    .await?;
    if n > 0 {
        return Ok(false);
    }
    // A staged key becomes current first.
    let promoted = sqlx::query(
        "UPDATE sentinel.snapshot_signing_keys SET status = 'current', rotated_at = now() WHERE status = 'next'",
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if promoted == 0 {
        insert_new(&mut tx, "current").await?;
    }
    tx.commit().await?;
    Ok(true)
}

async fn insert_new(conn: &mut PgConnection, status: &str) -> anyhow::Result<String> {
    let (kid, pem, mut jwk) = crate::keys::generate()?;
    let kid = format!("snap-{kid}");
    let sealed = crate::sealing::keyring()?.seal(&crate::sealing::row(TABLE, &kid), &pem)?;
    if let Some(o) = jwk.as_object_mut() {
        o.insert("kid".to_owned(), Value::String(kid.clone()));
    }
    sqlx::query(
        "INSERT INTO sentinel.snapshot_signing_keys (kid, alg, private_pem, public_jwk, status)
         VALUES ($1, 'ES256', $2, $3, $4)",
    )
    .bind(&kid)
    .bind(&sealed)
    .bind(&jwk)
    .bind(status)
    .execute(&mut *conn)
    .await?;
    Ok(kid)
}

/// Stages a `next` key (published in the JWKS, not yet signing); returns its
/// `kid`. An already staged key is kept.
pub async fn stage(pool: &PgPool) -> anyhow::Result<String> {
    crate::keys::seal_all(pool, true).await?;
    let mut tx = pool.begin().await?;
    sqlx::query("LOCK TABLE sentinel.snapshot_signing_keys IN EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await?;
    let staged: Option<String> =
        sqlx::query_scalar("SELECT kid FROM sentinel.snapshot_signing_keys WHERE status = 'next'")
            .fetch_optional(&mut *tx)
            .await?;
    let kid = match staged {
        Some(k) => k,
        None => insert_new(&mut tx, "next").await?,
    };
    tx.commit().await?;
    Ok(kid)
}

/// Rotates: retires `previous`, demotes `current`, promotes the staged `next`
/// key (or a new one) to `current`, and bumps the policy revision so that the
/// next snapshot is signed with the new key. Returns the new current `kid`.
pub async fn rotate(pool: &PgPool) -> anyhow::Result<String> {
    crate::keys::seal_all(pool, true).await?;
    let mut tx = pool.begin().await?;
    sqlx::query("LOCK TABLE sentinel.snapshot_signing_keys IN EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE sentinel.snapshot_signing_keys SET status = 'retired', rotated_at = now() WHERE status = 'previous'")
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE sentinel.snapshot_signing_keys SET status = 'previous', rotated_at = now() WHERE status = 'current'")
        .execute(&mut *tx)
        .await?;
    let promoted: Option<String> = sqlx::query_scalar(
        "UPDATE sentinel.snapshot_signing_keys SET status = 'current', rotated_at = now()
          WHERE status = 'next' RETURNING kid",
    )
    .fetch_optional(&mut *tx)
    .await?;
    let kid = match promoted {
        Some(k) => k,
        None => insert_new(&mut tx, "current").await?,
    };
    sqlx::query("UPDATE sentinel.policy_revision SET revision = revision + 1, changed_at = now()")
        .execute(&mut *tx)
        .await?;
    sqlx::query("SELECT pg_notify('sentinel_policy', 'snapshot_signing_keys')")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(kid)
}

/// The public keys that sign or will sign snapshots (`next`, `current`,
/// `previous`), as a JWKS.
pub async fn jwks(conn: &mut PgConnection) -> Result<Value, sqlx::Error> {
    let keys: Vec<Value> = sqlx::query_scalar(
        "SELECT public_jwk FROM sentinel.snapshot_signing_keys
          WHERE status IN ('next', 'current', 'previous')
          ORDER BY CASE status WHEN 'current' THEN 0 WHEN 'next' THEN 1 ELSE 2 END, created_at DESC",
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(json!({ "keys": keys }))
}

/// The signer of the `current` key, if there is one.
pub async fn current_signer(conn: &mut PgConnection) -> anyhow::Result<Option<SnapshotSigner>> {
    let row: Option<(String, String, String)> = sqlx::query_as(
        "SELECT kid, alg, private_pem FROM sentinel.snapshot_signing_keys WHERE status = 'current'",
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some((kid, alg, pem)) = row else {
        return Ok(None);
    };
    let pem = crate::sealing::keyring()?.open(&crate::sealing::row(TABLE, &kid), &pem)?;
    let alg = match alg.as_str() {
        "ES256" => Algorithm::ES256,
        "EdDSA" => Algorithm::EdDSA,
        other => anyhow::bail!("snapshot key `{kid}` has unsupported algorithm `{other}`"),
    };
    let signer = SnapshotSigner::from_pem(&kid, alg, pem.as_bytes())
        .map_err(|e| anyhow::anyhow!("snapshot key `{kid}`: {e}"))?;
    Ok(Some(signer))
}
