//! Service-account API keys: `sk_<prefix>_<secret>`, stored only as SHA-256
//! hashes, found by their public 8-character prefix and compared in constant time.
//!
//! SHA-256 rather than argon2: keys carry ≥ 190 bits of randomness, so a slow
//! hash adds no protection and would cost milliseconds per request.

use crate::model::{Principal, Snapshot};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Longest key the gateway will look at (longer input is rejected unhashed).
pub const MAX_KEY_LEN: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ApiKeyError {
    #[error("malformed API key")]
    Malformed,
    #[error("unknown or wrong API key")]
    Invalid,
    #[error("API key has expired")]
    Expired,
    #[error("API key does not belong to a service account")]
    NotServiceAccount,
}

/// Splits `sk_<prefix>_<secret>` and returns the prefix.
pub fn key_prefix(key: &str) -> Result<&str, ApiKeyError> {
    if key.len() > MAX_KEY_LEN {
        return Err(ApiKeyError::Malformed);
    }
    let rest = key.strip_prefix("sk_").ok_or(ApiKeyError::Malformed)?;
    let (prefix, secret) = rest.split_once('_').ok_or(ApiKeyError::Malformed)?;
    let alnum = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric());
    if prefix.len() != 8 || !alnum(prefix) || secret.len() < 32 || !alnum(secret) {
        return Err(ApiKeyError::Malformed);
    }
    Ok(prefix)
}

/// Lowercase hex SHA-256 of a key, as stored in the policy.
pub fn hash_api_key(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        out.push(char::from_digit(u32::from(b & 0xf), 16).unwrap_or('0'));
    }
    out
}

impl Snapshot {
    /// Authenticates a service account by API key.
    pub fn authenticate_api_key(&self, key: &str, now: i64) -> Result<&Principal, ApiKeyError> {
        let prefix = key_prefix(key)?;
        let digest = Sha256::digest(key.as_bytes());
        let Some(entry) = self.local.api_keys.get(prefix) else {
            return Err(ApiKeyError::Invalid);
        };
        if !bool::from(entry.sha256.ct_eq(&digest[..])) {
            return Err(ApiKeyError::Invalid);
        }
        if entry.expires_at.is_some_and(|e| now >= e) {
            return Err(ApiKeyError::Expired);
        }
        let principal = self
            .principal(&entry.principal)
            .ok_or(ApiKeyError::Invalid)?;
        // INVARIANT: the compiler only indexes keys of service accounts; checked again here.
        if !principal.service_account {
            return Err(ApiKeyError::NotServiceAccount);
        }
        Ok(principal)
    }
}
