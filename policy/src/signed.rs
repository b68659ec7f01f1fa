//! Signed policy snapshots: the contract between the admin API, which
//! publishes them, and the gateways, which verify them before compiling.
//!
//! A published snapshot is two things kept side by side:
//!
//! - the **payload**: the exact bytes of a [`crate::PolicySource`] as JSON;
//! - the **signature**: a compact JWS (ES256 or EdDSA, with a `kid`) whose
//!   claims are [`SnapshotClaims`]: the version, when it was issued, and the
//!   SHA-256 of the payload bytes.
//!
//! Verification checks the JWS with the key its `kid` names (and only with
//! that key's own algorithm), then the payload hash, so a tampered, truncated
//! or re-ordered payload is refused before anything parses it. Whether the
//! version is newer than the one already held is the caller's check
//! ([`verify`] returns the version for that).
//!
//! Pure: no I/O, no clock.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// The `typ` of a snapshot signature, so an access token can never pass for one.
pub const SNAPSHOT_TYP: &str = "sentinel-snapshot+jwt";

/// What a snapshot signature asserts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotClaims {
    /// Monotonic snapshot version.
    pub ver: u64,
    /// Unix seconds when the snapshot was published.
    pub iat: i64,
    /// Lowercase hex SHA-256 of the payload bytes.
    pub sha256: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("signing key: {0}")]
    Key(String),
    #[error("signing failed: {0}")]
    Sign(String),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("snapshot signature is malformed")]
    Malformed,
    #[error("snapshot signature has no `kid`")]
    MissingKid,
    #[error("snapshot signed with unknown key `{0}`")]
    UnknownKey(String),
    #[error("snapshot signature uses the wrong algorithm for key `{0}`")]
    WrongAlgorithm(String),
    #[error("snapshot signature is not a snapshot signature")]
    WrongType,
    #[error("snapshot signature does not verify")]
    BadSignature,
    #[error("snapshot payload does not match its signature (tampered or truncated)")]
    PayloadMismatch,
}

/// Lowercase hex SHA-256 of `payload`.
pub fn payload_sha256(payload: &[u8]) -> String {
    let digest = Sha256::digest(payload);
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        out.push(char::from_digit(u32::from(b & 0xf), 16).unwrap_or('0'));
    }
    out
}

/// A key that signs snapshots.
pub struct SnapshotSigner {
    kid: String,
    alg: Algorithm,
    key: EncodingKey,
}

impl SnapshotSigner {
    /// From a PKCS#8 PEM private key: ES256 (P-256) or EdDSA (Ed25519).
    pub fn from_pem(kid: &str, alg: Algorithm, pem: &[u8]) -> Result<SnapshotSigner, SignError> {
        let key = match alg {
            Algorithm::ES256 => EncodingKey::from_ec_pem(pem),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(pem),
            other => return Err(SignError::Key(format!("unsupported algorithm {other:?}"))),
        }
        .map_err(|e| SignError::Key(e.to_string()))?;
        Ok(SnapshotSigner {
            kid: kid.to_owned(),
            alg,
            key,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Signs `payload` as snapshot `version`, issued at `iat` (unix seconds).
    pub fn sign(&self, payload: &[u8], version: u64, iat: i64) -> Result<String, SignError> {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        header.typ = Some(SNAPSHOT_TYP.to_owned());
        let claims = SnapshotClaims {
            ver: version,
            iat,
            sha256: payload_sha256(payload),
        };
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| SignError::Sign(e.to_string()))
    }
}

/// The keys a gateway trusts for snapshots, by `kid`. Each key is only ever
/// used with its own algorithm.
#[derive(Default, Clone)]
pub struct SnapshotVerifier {
    keys: HashMap<String, (Algorithm, DecodingKey)>,
}

impl SnapshotVerifier {
    pub fn new() -> SnapshotVerifier {
        SnapshotVerifier::default()
    }

    /// Adds a trusted public key (SPKI PEM) under `kid`.
    pub fn add_pem(&mut self, kid: &str, alg: Algorithm, pem: &[u8]) -> Result<(), SignError> {
        let key = match alg {
            Algorithm::ES256 => DecodingKey::from_ec_pem(pem),
            Algorithm::EdDSA => DecodingKey::from_ed_pem(pem),
            other => return Err(SignError::Key(format!("unsupported algorithm {other:?}"))),
        }
        .map_err(|e| SignError::Key(e.to_string()))?;
        self.keys.insert(kid.to_owned(), (alg, key));
        Ok(())
    }

    /// Adds a trusted public key from a JWK (as published in a JWKS).
    pub fn add_jwk(&mut self, jwk: &jsonwebtoken::jwk::Jwk) -> Result<(), SignError> {
        let kid = jwk
            .common
            .key_id
            .clone()
            .ok_or_else(|| SignError::Key("jwk has no `kid`".to_owned()))?;
        let alg = match &jwk.algorithm {
            jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(p)
                if p.curve == jsonwebtoken::jwk::EllipticCurve::P256 =>
            {
                Algorithm::ES256
            }
            jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(p)
                if p.curve == jsonwebtoken::jwk::EllipticCurve::Ed25519 =>
            {
                Algorithm::EdDSA
            }
            _ => {
                return Err(SignError::Key(format!(
                    "jwk `{kid}`: only P-256 and Ed25519 keys sign snapshots"
                )))
            }
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|e| SignError::Key(e.to_string()))?;
        self.keys.insert(kid, (alg, key));
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Verifies `signature` and that it covers exactly `payload`.
    pub fn verify(&self, payload: &[u8], signature: &str) -> Result<SnapshotClaims, VerifyError> {
        let header = jsonwebtoken::decode_header(signature).map_err(|_| VerifyError::Malformed)?;
        if header.typ.as_deref() != Some(SNAPSHOT_TYP) {
            return Err(VerifyError::WrongType);
        }
        let kid = header.kid.ok_or(VerifyError::MissingKid)?;
        let (alg, key) = self
            .keys
            .get(&kid)
            .ok_or_else(|| VerifyError::UnknownKey(kid.clone()))?;
        if header.alg != *alg {
            return Err(VerifyError::WrongAlgorithm(kid));
        }
        let mut validation = Validation::new(*alg);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        let data = jsonwebtoken::decode::<SnapshotClaims>(signature, key, &validation)
            .map_err(|_| VerifyError::BadSignature)?;
        let expected = payload_sha256(payload);
        // Constant time is not needed (the hash is public), but it costs nothing.
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            expected.as_bytes(),
            data.claims.sha256.as_bytes(),
        )) {
            return Err(VerifyError::PayloadMismatch);
        }
        Ok(data.claims)
    }
}
