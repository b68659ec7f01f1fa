//! JWKS handling for the JWT verifier: parses key sets into keys bound to exactly one algorithm, and fetches them from files and URLs with hard limits.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// Largest JWKS document accepted, from a file or a URL.
pub const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// TCP/TLS connect timeout for JWKS URLs.
pub const FETCH_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Total timeout (connect, headers and body) for one JWKS fetch.
pub const FETCH_TOTAL_TIMEOUT: Duration = Duration::from_secs(5);
/// Smallest HS256 secret accepted (RFC 7518 §3.2: at least the hash size).
pub const MIN_HMAC_SECRET_BYTES: usize = 32;

const MIN_RSA_MODULUS_BYTES: usize = 256; // 2048 bits
const MAX_RSA_MODULUS_BYTES: usize = 512; // 4096 bits

/// One verification key. INVARIANT: `key` is only ever used with `alg`.
pub struct VerifyKey {
    pub kid: Option<String>,
    pub alg: Algorithm,
    pub key: DecodingKey,
    /// Identity of the key material (kid, alg and a digest of the public
    /// parameters); two key sets with the same fingerprints are the same.
    pub(crate) fingerprint: [u8; 32],
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// An immutable set of verification keys; replaced as a whole on refresh.
#[derive(Debug, Default)]
pub struct KeySet {
    pub keys: Vec<Arc<VerifyKey>>,
}

/// What [`KeySet::select`] found for a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selected {
    /// Index into [`KeySet::keys`].
    Key(usize),
    /// The kid names no key (or the token has no kid and there is no key at all).
    Unknown,
    /// The kid exists but is bound to another algorithm (or, without kid, only
    /// keys of other algorithms exist).
    AlgorithmMismatch,
    /// No kid in the token and more than one key could apply.
    Ambiguous,
}

impl KeySet {
    /// Picks the key for a token's `kid` and `alg`. INVARIANT: a returned
    /// key is bound to `alg`.
    pub fn select(&self, kid: Option<&str>, alg: Algorithm) -> Selected {
        if let Some(kid) = kid {
            let mut kid_seen = false;
            for (i, k) in self.keys.iter().enumerate() {
                if k.kid.as_deref() == Some(kid) {
                    if k.alg == alg {
                        return Selected::Key(i);
                    }
                    kid_seen = true;
                }
            }
            if kid_seen {
                return Selected::AlgorithmMismatch;
            }
            // A key published without a kid still verifies tokens that carry
            // one, but only when it is the single key for the algorithm.
            let mut for_alg = self.for_alg(alg);
            return match (for_alg.next(), for_alg.next()) {
                (Some((i, k)), None) if k.kid.is_none() => Selected::Key(i),
                _ => Selected::Unknown,
            };
        }
        let mut for_alg = self.for_alg(alg);
        match (for_alg.next(), for_alg.next()) {
            (Some((i, _)), None) => Selected::Key(i),
            (Some(_), Some(_)) => Selected::Ambiguous,
            (None, _) if self.keys.is_empty() => Selected::Unknown,
            (None, _) => Selected::AlgorithmMismatch,
        }
    }

    fn for_alg(&self, alg: Algorithm) -> impl Iterator<Item = (usize, &VerifyKey)> {
        self.keys
            .iter()
            .enumerate()
            .map(|(i, k)| (i, &**k))
            .filter(move |(_, k)| k.alg == alg)
    }

    /// True when both sets hold the same keys in the same order.
    pub fn same_keys(&self, other: &KeySet) -> bool {
        self.keys.len() == other.keys.len()
            && self
                .keys
                .iter()
                .zip(&other.keys)
                .all(|(a, b)| a.fingerprint == b.fingerprint)
    }

    /// `kid:alg` of every key, for logs.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for (i, k) in self.keys.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(k.kid.as_deref().unwrap_or("(no kid)"));
            out.push(':');
            out.push_str(alg_name(k.alg));
        }
        out
    }

    /// The key set of a single HS256 shared secret.
    pub fn from_hmac_secret(kid: Option<String>, secret: &[u8]) -> Result<KeySet, JwksError> {
        if secret.len() < MIN_HMAC_SECRET_BYTES {
            return Err(JwksError::WeakHmacSecret);
        }
        let fingerprint = fingerprint(kid.as_deref(), Algorithm::HS256, &[secret]);
        Ok(KeySet {
            keys: vec![Arc::new(VerifyKey {
                kid,
                alg: Algorithm::HS256,
                key: DecodingKey::from_secret(secret),
                fingerprint,
            })],
        })
    }
}

/// Why a JWKS document was refused.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("not a JWKS document: {0}")]
    NotJwks(String),
    #[error("the key set is larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    #[error("the key set holds no usable signing key ({skipped} skipped)")]
    NoUsableKeys { skipped: usize },
    #[error("an HMAC secret must be at least {MIN_HMAC_SECRET_BYTES} bytes")]
    WeakHmacSecret,
}

/// The fields of a JWK we look at; everything else is ignored.
#[derive(Deserialize)]
struct RawJwk {
    kty: Option<String>,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    key_ops: Option<Vec<String>>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
    k: Option<String>,
    d: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct RawJwks {
    keys: Vec<serde_json::Value>,
}

/// Where a key set comes from decides which key types it may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Operator-controlled (a file or inline JSON): `oct` keys are allowed.
    Local,
    /// Fetched over the network: symmetric keys are never taken from there.
    Remote,
}

/// Parses a JWKS document. Keys that cannot be used for one of the
/// supported algorithms (`jwt::SUPPORTED`) are skipped (and logged); a document without any
/// usable key is an error.
pub fn parse_jwks(bytes: &[u8], origin: Origin) -> Result<KeySet, JwksError> {
    if bytes.len() > MAX_JWKS_BYTES {
        return Err(JwksError::TooLarge);
    }
    let raw: RawJwks =
        serde_json::from_slice(bytes).map_err(|e| JwksError::NotJwks(e.to_string()))?;
    let mut keys: Vec<Arc<VerifyKey>> = Vec::with_capacity(raw.keys.len());
    let mut skipped = 0usize;
    for (index, value) in raw.keys.into_iter().enumerate() {
        let parsed = serde_json::from_value::<RawJwk>(value)
            .map_err(|e| e.to_string())
            .and_then(|jwk| parse_key(&jwk, origin));
        match parsed {
            Ok(Some(key)) => {
                let duplicate = keys
                    .iter()
                    .any(|k| k.kid.is_some() && k.kid == key.kid && k.alg == key.alg);
                if duplicate {
                    tracing::warn!(index, kid = ?key.kid, "JWKS key skipped: duplicate kid");
                    skipped += 1;
                } else {
                    keys.push(Arc::new(key));
                }
            }
            Ok(None) => skipped += 1,
            Err(reason) => {
                // An operator's file deserves a warning; a remote set is
                // re-read every refresh, so its broken keys are only debug.
                if origin == Origin::Local {
                    tracing::warn!(index, %reason, "JWKS key skipped");
                } else {
                    tracing::debug!(index, %reason, "JWKS key skipped");
                }
                skipped += 1;
            }
        }
    }
    if keys.is_empty() {
        return Err(JwksError::NoUsableKeys { skipped });
    }
    Ok(KeySet { keys })
}

/// `Ok(None)`: a key that is fine but not for us (encryption key, other
/// algorithm). `Err`: a key that claims to be for us but is broken.
fn parse_key(jwk: &RawJwk, origin: Origin) -> Result<Option<VerifyKey>, String> {
    if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
        return Ok(None);
    }
    if jwk
        .key_ops
        .as_ref()
        .is_some_and(|ops| !ops.iter().any(|o| o == "verify"))
    {
        return Ok(None);
    }
    let kid = jwk.kid.clone();
    let alg_is = |expected: &str| jwk.alg.as_deref().is_none_or(|a| a == expected);
    match jwk.kty.as_deref() {
        Some("RSA") => {
            // An RSA key is bound to the one algorithm its `alg` names; a key
            // without `alg` is bound to RS256 only (RS384/RS512/PS* keys must
            // say so: one key material is never tried with several algorithms).
            let alg = match jwk.alg.as_deref() {
                None | Some("RS256") => Algorithm::RS256,
                Some("RS384") => Algorithm::RS384,
                Some("RS512") => Algorithm::RS512,
                Some("PS256") => Algorithm::PS256,
                Some("PS384") => Algorithm::PS384,
                Some("PS512") => Algorithm::PS512,
                Some(_) => return Ok(None),
            };
            if jwk.d.is_some() {
                return Err("private RSA key in a JWKS".into());
            }
            let n = b64(jwk.n.as_deref(), "n")?;
            let e = b64(jwk.e.as_deref(), "e")?;
            let n_len = n.iter().skip_while(|b| **b == 0).count();
            if !(MIN_RSA_MODULUS_BYTES..=MAX_RSA_MODULUS_BYTES).contains(&n_len) {
                return Err(format!(
                    "RSA modulus of {} bits (allowed: 2048 to 4096)",
                    n_len * 8
                ));
            }
            if e.is_empty() || e.len() > 8 || e.last().is_none_or(|b| b & 1 == 0) {
                return Err("bad RSA exponent".into());
            }
            let fingerprint = fingerprint(kid.as_deref(), alg, &[&n, &e]);
            let key = DecodingKey::from_rsa_raw_components(&n, &e);
            Ok(Some(checked(kid, alg, key, fingerprint)?))
        }
        Some("EC") => {
            // The curve decides the algorithm (RFC 7518 §3.4): P-256 is
            // ES256, P-384 is ES384; an `alg` naming anything else skips it.
            let (alg, size, curve) = match jwk.crv.as_deref() {
                Some("P-256") if alg_is("ES256") => (Algorithm::ES256, 32, "P-256"),
                Some("P-384") if alg_is("ES384") => (Algorithm::ES384, 48, "P-384"),
                _ => return Ok(None),
            };
            if jwk.d.is_some() {
                return Err("private EC key in a JWKS".into());
            }
            let x = b64(jwk.x.as_deref(), "x")?;
            let y = b64(jwk.y.as_deref(), "y")?;
            if x.len() != size || y.len() != size {
                return Err(format!("{curve} coordinates must be {size} bytes"));
            }
            let mut sec1 = Vec::with_capacity(1 + 2 * size);
            sec1.push(0x04);
            sec1.extend_from_slice(&x);
            sec1.extend_from_slice(&y);
            let fingerprint = fingerprint(kid.as_deref(), alg, &[&sec1]);
            let key = DecodingKey::from_ec_der(&sec1);
            Ok(Some(checked(kid, alg, key, fingerprint)?))
        }
        Some("OKP") => {
            if jwk.crv.as_deref() != Some("Ed25519") || !alg_is("EdDSA") {
                return Ok(None);
            }
            if jwk.d.is_some() {
                return Err("private OKP key in a JWKS".into());
            }
            let x = b64(jwk.x.as_deref(), "x")?;
            // INVARIANT: Ed25519 keys are exactly 32 bytes; the crypto backend
            // slices `[..32]`, so a shorter key must never reach it.
            if x.len() != 32 {
                return Err("Ed25519 public key must be 32 bytes".into());
            }
            let fingerprint = fingerprint(kid.as_deref(), Algorithm::EdDSA, &[&x]);
            let key = DecodingKey::from_ed_der(&x);
            Ok(Some(checked(kid, Algorithm::EdDSA, key, fingerprint)?))
        }
        Some("oct") => {
            if !alg_is("HS256") {
                return Ok(None);
            }
            if origin == Origin::Remote {
                return Err("symmetric key served from a URL".into());
            }
            let k = b64(jwk.k.as_deref(), "k")?;
            if k.len() < MIN_HMAC_SECRET_BYTES {
                return Err(format!(
                    "HMAC key shorter than {MIN_HMAC_SECRET_BYTES} bytes"
                ));
            }
            let fingerprint = fingerprint(kid.as_deref(), Algorithm::HS256, &[&k]);
            Ok(Some(VerifyKey {
                kid,
                alg: Algorithm::HS256,
                key: DecodingKey::from_secret(&k),
                fingerprint,
            }))
        }
        _ => Ok(None),
    }
}

/// Makes sure the crypto backend accepts the key (a point on the curve, a
/// valid Ed25519 encoding) so that a broken key fails at load, not per token.
fn checked(
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
    fingerprint: [u8; 32],
) -> Result<VerifyKey, String> {
    // An all-zero signature of the right shape never verifies; an `Err` here
    // means the backend refused the key itself.
    let probe = match alg {
        Algorithm::ES256 | Algorithm::EdDSA => URL_SAFE_NO_PAD.encode([1u8; 64]),
        Algorithm::ES384 => URL_SAFE_NO_PAD.encode([1u8; 96]),
        _ => URL_SAFE_NO_PAD.encode([1u8; 32]),
    };
    match jsonwebtoken::crypto::verify(&probe, b"probe", &key, alg) {
        Ok(_) => Ok(VerifyKey {
            kid,
            alg,
            key,
            fingerprint,
        }),
        Err(e) => Err(format!("key refused by the crypto backend: {e}")),
    }
}

fn b64(value: Option<&str>, field: &'static str) -> Result<Vec<u8>, String> {
    let value = value.ok_or_else(|| format!("missing `{field}`"))?;
    URL_SAFE_NO_PAD
        .decode(value)
        .map_err(|_| format!("`{field}` is not base64url"))
}

fn fingerprint(kid: Option<&str>, alg: Algorithm, parts: &[&[u8]]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(kid.unwrap_or("").as_bytes());
    h.update([0, kid.is_some() as u8]);
    h.update(alg_name(alg).as_bytes());
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    h.finalize().into()
}

/// The JOSE name of the algorithms this module supports.
pub fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::EdDSA => "EdDSA",
        _ => "unsupported",
    }
}

/// Why a JWKS fetch failed (the last good key set stays in use).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("request failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("answered HTTP {0}")]
    Status(u16),
    #[error("the key set is larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    #[error(transparent)]
    Jwks(#[from] JwksError),
    #[error("discovery document refused: {0}")]
    Discovery(String),
}

/// Builds the HTTP client used for every JWKS URL of a verifier.
pub fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .connect_timeout(FETCH_CONNECT_TIMEOUT)
        .timeout(FETCH_TOTAL_TIMEOUT)
        // A JWKS URL is configured exactly; following redirects would let
        // whoever controls a redirect choose our keys (or downgrade to http).
        .redirect(reqwest::redirect::Policy::none())
        // Fetches are minutes apart, and a pooled connection belongs to the
        // runtime that opened it (the verifier may be built on another).
        .pool_max_idle_per_host(0)
        .user_agent("sentinel-gateway-jwks")
        .build()
}

/// Fetches and parses one JWKS URL, reading at most [`MAX_JWKS_BYTES`].
pub async fn fetch_jwks(client: &reqwest::Client, url: &str) -> Result<KeySet, FetchError> {
    let body = fetch_json(client, url).await?;
    Ok(parse_jwks(&body, Origin::Remote)?)
}

/// The OpenID Connect discovery document of `issuer` (OpenID Connect
/// Discovery 1.0 §4: the issuer without a trailing `/`, then
/// `/.well-known/openid-configuration`).
pub fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

/// Fetches `issuer`'s discovery document from `url` and returns its
/// `jwks_uri`. Refused (nothing from it is used) when the document's
/// `issuer` is not exactly the configured one (§4.3: a document may not
/// speak for another issuer), when `jwks_uri` is missing or not http(s),
/// and when an `https` issuer names a plain-`http` `jwks_uri` (a downgrade).
pub async fn discover(
    client: &reqwest::Client,
    url: &str,
    issuer: &str,
) -> Result<String, FetchError> {
    #[derive(Deserialize)]
    struct Document {
        issuer: Option<String>,
        jwks_uri: Option<String>,
    }
    let body = fetch_json(client, url).await?;
    let doc: Document = serde_json::from_slice(&body)
        .map_err(|e| FetchError::Discovery(format!("not a discovery document: {e}")))?;
    if doc.issuer.as_deref() != Some(issuer) {
        return Err(FetchError::Discovery(format!(
            "it names issuer `{}`, not `{issuer}`",
            doc.issuer.as_deref().unwrap_or("")
        )));
    }
    let jwks_uri = doc
        .jwks_uri
        .ok_or_else(|| FetchError::Discovery("no `jwks_uri`".into()))?;
    let secure = jwks_uri.starts_with("https://");
    if !(secure || jwks_uri.starts_with("http://")) {
        return Err(FetchError::Discovery(
            "`jwks_uri` is not an http(s) URL".into(),
        ));
    }
    if issuer.starts_with("https://") && !secure {
        return Err(FetchError::Discovery(
            "an https issuer's `jwks_uri` must be https".into(),
        ));
    }
    Ok(jwks_uri)
}

/// GETs `url` and reads at most [`MAX_JWKS_BYTES`] of a success answer.
async fn fetch_json(client: &reqwest::Client, url: &str) -> Result<Vec<u8>, FetchError> {
    let mut response = client
        .get(url)
        .header("accept", "application/json")
        .send()
        .await?;
    if !response.status().is_success() {
        return Err(FetchError::Status(response.status().as_u16()));
    }
    if response
        .content_length()
        .is_some_and(|l| l > MAX_JWKS_BYTES as u64)
    {
        return Err(FetchError::TooLarge);
    }
    let mut body: Vec<u8> = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(FetchError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ed25519_key_is_refused_not_a_panic() {
        let doc = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA"}]}"#;
        assert!(matches!(
            parse_jwks(doc.as_bytes(), Origin::Local),
            Err(JwksError::NoUsableKeys { skipped: 1 })
        ));
    }

    #[test]
    fn point_off_the_curve_is_refused() {
        let zero = URL_SAFE_NO_PAD.encode([0u8; 32]);
        let doc = format!(r#"{{"keys":[{{"kty":"EC","crv":"P-256","x":"{zero}","y":"{zero}"}}]}}"#);
        assert!(parse_jwks(doc.as_bytes(), Origin::Local).is_err());
    }

    #[test]
    fn remote_oct_keys_are_refused() {
        let k = URL_SAFE_NO_PAD.encode([7u8; 32]);
        let doc = format!(r#"{{"keys":[{{"kty":"oct","k":"{k}"}}]}}"#);
        assert!(parse_jwks(doc.as_bytes(), Origin::Remote).is_err());
        assert!(parse_jwks(doc.as_bytes(), Origin::Local).is_ok());
    }

    #[test]
    fn encryption_and_foreign_keys_are_skipped() {
        let k = URL_SAFE_NO_PAD.encode([7u8; 32]);
        let doc = format!(
            r#"{{"keys":[{{"kty":"oct","use":"enc","k":"{k}"}},{{"kty":"oct","alg":"HS512","k":"{k}"}},{{"kty":"oct","kid":"a","k":"{k}"}}]}}"#
        );
        let set = parse_jwks(doc.as_bytes(), Origin::Local);
        assert!(set.is_ok_and(|s| s.keys.len() == 1));
    }
}
