//! Token signing keys (ES256 with a `kid`), the JWKS, and access-token
//! issue/verify. Keys live in `sentinel.signing_keys`: one `current` key signs;
//! the `previous` one still verifies until the next rotation retires it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::{EncodePrivateKey, LineEnding};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use uuid::Uuid;

/// Claims of the access tokens this API issues.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: Uuid,
    /// Tenant of the principal.
    pub tid: Uuid,
    pub jti: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    /// Effective role names (informational; the API reloads scopes per request).
    #[serde(default)]
    pub roles: Vec<String>,
    /// Service account.
    #[serde(default)]
    pub sa: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token has expired")]
    Expired,
    #[error("token is invalid")]
    Invalid,
    #[error("no signing key is loaded")]
    NoKey,
    #[error("cannot sign token: {0}")]
    Sign(jsonwebtoken::errors::Error),
}

struct Ring {
    current: Option<(String, EncodingKey)>,
    verify: HashMap<String, DecodingKey>,
    jwks: Value,
}

/// The loaded keys, swapped whole on reload.
#[derive(Clone)]
pub struct KeyStore {
    ring: Arc<RwLock<Arc<Ring>>>,
}

impl Default for KeyStore {
    fn default() -> Self {
        KeyStore {
            ring: Arc::new(RwLock::new(Arc::new(Ring {
                current: None,
                verify: HashMap::new(),
                jwks: json!({ "keys": [] }),
            }))),
        }
    }
}

/// A freshly generated P-256 key: (kid, PKCS#8 PEM private key, public JWK).
pub fn generate() -> anyhow::Result<(String, String, Value)> {
    let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let pem = secret
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| anyhow::anyhow!("cannot encode key: {e}"))?;
    let point = secret.public_key().to_encoded_point(false);
    let (Some(x), Some(y)) = (point.x(), point.y()) else {
        anyhow::bail!("cannot encode public key");
    };
    let kid = format!("es256-{}", &Uuid::new_v4().simple().to_string()[..12]);
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
        "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
    });
    Ok((kid, pem.to_string(), jwk))
}

/// Inserts a current key when there is none. Returns whether it created one.
pub async fn ensure_key(pool: &PgPool) -> anyhow::Result<bool> {
    let mut tx = pool.begin().await?;
    sqlx::query("LOCK TABLE sentinel.signing_keys IN EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await?;
    let n: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sentinel.signing_keys WHERE status = 'current'")
            .fetch_one(&mut *tx)
            .await?;
    if n > 0 {
        return Ok(false);
    }
    insert_current(&mut tx).await?;
    tx.commit().await?;
    Ok(true)
}

/// Generates a key and stores it, sealed, as the current one. Returns its `kid`.
async fn insert_current(conn: &mut sqlx::PgConnection) -> anyhow::Result<String> {
    let keyring = crate::sealing::keyring()?;
    let (kid, pem, jwk) = generate()?;
    let sealed = keyring.seal(&crate::sealing::row(TABLE, &kid), &pem)?;
    sqlx::query("INSERT INTO sentinel.signing_keys (kid, alg, private_pem, public_jwk, status) VALUES ($1, 'ES256', $2, $3, 'current')")
        .bind(&kid)
        .bind(&sealed)
        .bind(&jwk)
        .execute(&mut *conn)
        .await?;
    Ok(kid)
}

const TABLE: &str = "signing_keys";

/// Where sealed values live: (table, id column, sealed column, whether a
/// value under an unknown KEK is fatal outside a rotation).
const SEALED: [(&str, &str, &str, &str); 3] = [
    (TABLE, "kid", "private_pem", "status IN ('current', 'next')"),
    (
        crate::snapshot_keys::TABLE,
        "kid",
        "private_pem",
        "status IN ('current', 'next')",
    ),
    // A webhook whose secret does not open fails its deliveries (and says
    // why); it does not stop the API.
    ("webhooks", "id::text", "secret", "false"),
];

/// Seals every private key stored in clear (a database from before keys were
/// sealed) and reseals the sealed values under `SENTINEL_KEK_PREVIOUS` with
/// the current KEK — signing keys, snapshot keys and webhook secrets — in
/// one transaction. Returns how many it changed. Runs at every start of
/// `serve` and before every rotation, so an upgraded database needs no
/// separate step; `sentinel-admin seal-keys` runs it alone.
///
/// A value sealed under a KEK that is not configured is left as it is when
/// it will never sign again (`previous`, `retired` keys); a `current` or
/// `next` key is an error unless `for_rotation`: a rotation replaces it,
/// which is the way back from a lost KEK (docs/security.md, "Keys at rest").
pub async fn seal_all(pool: &PgPool, for_rotation: bool) -> anyhow::Result<usize> {
    let keyring = crate::sealing::keyring()?;
    let mut tx = pool.begin().await?;
    // Webhooks are tenant rows: this maintenance pass reads every tenant's.
    crate::db::enter_all_tenants(&mut tx).await?;
    let mut changed = 0;
    for (table, id, column, needed) in SEALED {
        sqlx::query(&format!("LOCK TABLE sentinel.{table} IN EXCLUSIVE MODE"))
            .execute(&mut *tx)
            .await?;
        let rows: Vec<(String, String, bool)> = sqlx::query_as(&format!(
            "SELECT {id}, {column}, {needed} FROM sentinel.{table}"
        ))
        .fetch_all(&mut *tx)
        .await?;
        for (key, stored, needed) in rows {
            let sealed = match keyring.reseal(&crate::sealing::row(table, &key), &stored) {
                Ok(Some(sealed)) => sealed,
                Ok(None) => continue,
                Err(crate::sealing::SealError::UnknownKek { .. }) if for_rotation || !needed => {
                    tracing::warn!(
                        table,
                        key,
                        "sealed under a key-encryption key that is not configured: left as it is"
                    );
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            sqlx::query(&format!(
                "UPDATE sentinel.{table} SET {column} = $2 WHERE {id} = $1"
            ))
            .bind(&key)
            .bind(&sealed)
            .execute(&mut *tx)
            .await?;
            changed += 1;
        }
    }
    tx.commit().await?;
    Ok(changed)
}

/// Rotates: retires the previous key, demotes the current one, adds a new current key.
pub async fn rotate(pool: &PgPool) -> anyhow::Result<String> {
    seal_all(pool, true).await?;
    let mut tx = pool.begin().await?;
    sqlx::query("LOCK TABLE sentinel.signing_keys IN EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE sentinel.signing_keys SET status = 'retired', rotated_at = now() WHERE status = 'previous'")
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE sentinel.signing_keys SET status = 'previous', rotated_at = now() WHERE status = 'current'")
        .execute(&mut *tx)
        .await?;
    let kid = insert_current(&mut tx).await?;
    tx.commit().await?;
    Ok(kid)
}

impl KeyStore {
    /// Loads the current and previous keys from the database.
    pub async fn reload(&self, pool: &PgPool) -> anyhow::Result<()> {
        let rows: Vec<(String, String, Value, String)> = sqlx::query_as(
            "SELECT kid, private_pem, public_jwk, status FROM sentinel.signing_keys
              WHERE status IN ('current', 'previous') ORDER BY created_at DESC",
        )
        .fetch_all(pool)
        .await?;
        let mut current = None;
        let mut verify = HashMap::new();
        let mut jwks = Vec::new();
        for (kid, pem, jwk, status) in rows {
            let x = jwk.get("x").and_then(Value::as_str).unwrap_or_default();
            let y = jwk.get("y").and_then(Value::as_str).unwrap_or_default();
            let dec = DecodingKey::from_ec_components(x, y)
                .map_err(|e| anyhow::anyhow!("key `{kid}`: {e}"))?;
            if status == "current" {
                let pem =
                    crate::sealing::keyring()?.open(&crate::sealing::row(TABLE, &kid), &pem)?;
                let enc = EncodingKey::from_ec_pem(pem.as_bytes())
                    .map_err(|e| anyhow::anyhow!("key `{kid}`: {e}"))?;
                current = Some((kid.clone(), enc));
            }
            verify.insert(kid, dec);
            jwks.push(jwk);
        }
        let ring = Arc::new(Ring {
            current,
            verify,
            jwks: json!({ "keys": jwks }),
        });
        match self.ring.write() {
            Ok(mut g) => *g = ring,
            Err(p) => *p.into_inner() = ring,
        }
        Ok(())
    }

    fn ring(&self) -> Arc<Ring> {
        match self.ring.read() {
            Ok(g) => Arc::clone(&g),
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }

    pub fn jwks(&self) -> Value {
        self.ring().jwks.clone()
    }

    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        let ring = self.ring();
        let (kid, key) = ring.current.as_ref().ok_or(TokenError::NoKey)?;
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.clone());
        // Canonical (low-s) form: gateways refuse the malleable spelling.
        jsonwebtoken::encode(&header, claims, key)
            .map(sentinel_policy::ecdsa::canonical_es256)
            .map_err(TokenError::Sign)
    }

    /// Verifies signature (ES256 only, by `kid`), `exp`, `nbf`, `iss` and `aud`.
    pub fn verify(&self, token: &str, issuer: &str, audience: &str) -> Result<Claims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        if header.alg != Algorithm::ES256 {
            return Err(TokenError::Invalid);
        }
        let kid = header.kid.ok_or(TokenError::Invalid)?;
        let ring = self.ring();
        let key = ring.verify.get(&kid).ok_or(TokenError::Invalid)?;
        let mut v = Validation::new(Algorithm::ES256);
        v.leeway = 30;
        v.validate_nbf = true;
        v.set_issuer(&[issuer]);
        v.set_audience(&[audience]);
        v.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        match jsonwebtoken::decode::<Claims>(token, key, &v) {
            Ok(data) => Ok(data.claims),
            Err(e) => match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => Err(TokenError::Expired),
                _ => Err(TokenError::Invalid),
            },
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_signs_and_verifies() {
        let (kid, pem, jwk) = generate().unwrap();
        let store = KeyStore::default();
        let enc = EncodingKey::from_ec_pem(pem.as_bytes()).unwrap();
        let dec =
            DecodingKey::from_ec_components(jwk["x"].as_str().unwrap(), jwk["y"].as_str().unwrap())
                .unwrap();
        let ring = Ring {
            current: Some((kid.clone(), enc)),
            verify: HashMap::from([(kid, dec)]),
            jwks: json!({"keys": [jwk]}),
        };
        *store.ring.write().unwrap() = Arc::new(ring);
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            iss: "i".into(),
            aud: "a".into(),
            sub: Uuid::new_v4(),
            tid: Uuid::nil(),
            jti: "j".into(),
            iat: now,
            nbf: now,
            exp: now + 60,
            roles: vec![],
            sa: false,
            email: None,
        };
        let t = store.sign(&claims).unwrap();
        assert_eq!(store.verify(&t, "i", "a").unwrap().jti, "j");
        assert!(matches!(
            store.verify(&t, "other", "a"),
            Err(TokenError::Invalid)
        ));
        assert!(matches!(
            store.verify(&t, "i", "other"),
            Err(TokenError::Invalid)
        ));
        let expired = Claims {
            exp: now - 3600,
            nbf: now - 7200,
            ..claims
        };
        let t = store.sign(&expired).unwrap();
        assert!(matches!(
            store.verify(&t, "i", "a"),
            Err(TokenError::Expired)
        ));
    }
}
