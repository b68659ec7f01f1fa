//! The `x-sentinel-assertion` header: a short-lived ES256 JWT in which the
//! gateway vouches for the caller's identity to upstreams, verifiable with the
//! gateway's JWKS. Signing costs tens of microseconds, so assertions are cached
//! per (principal, snapshot version) for half their lifetime, together with
//! the other identity headers as ready-made header values ([`IdentityHeaders`]):
//! a request then clones five reference-counted values instead of copying and
//! validating about 700 bytes of header text.

use crate::config::AssertionConfig;
use http::HeaderValue;
use jsonwebtoken::{jwk::Jwk, Algorithm, EncodingKey, Header};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum AssertionError {
    #[error("assertion key is not a PKCS#8 PEM P-256 private key: {0}")]
    Key(jsonwebtoken::errors::Error),
    #[error("cannot sign assertion: {0}")]
    Sign(jsonwebtoken::errors::Error),
    #[error("identity header value is invalid: {0}")]
    Header(#[from] http::header::InvalidHeaderValue),
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: String,
    tid: String,
    roles: &'a str,
    sa: bool,
    iat: i64,
    exp: i64,
    ver: u64,
}

/// What the assertion says about the caller.
pub struct Subject<'a> {
    pub principal: Uuid,
    pub tenant: Uuid,
    pub roles: &'a str,
    pub service_account: bool,
    pub snapshot_version: u64,
}

/// The identity headers of one principal under one snapshot version, as
/// sent upstream (`x-sentinel-user-id`, `-tenant-id`, `-roles`,
/// `-service-account`, `-assertion`). Every field is derived from the same
/// [`Subject`] as the assertion, so they are cached with it.
pub struct IdentityHeaders {
    pub user_id: HeaderValue,
    pub tenant_id: HeaderValue,
    pub roles: HeaderValue,
    pub service_account: HeaderValue,
    pub assertion: HeaderValue,
    /// The snapshot version they were built under.
    version: u64,
    /// Reused until then (Unix seconds): the assertion keeps at least half its lifetime.
    fresh_until: i64,
}

/// The identity headers last built for one verified token, kept in the
/// token's cache entry: a request with a cached token takes them from there
/// while they are current (same snapshot version, still fresh) instead of
/// looking them up in the [`Signer`]'s cache. A token names one principal,
/// and the headers depend only on that principal under one version.
#[derive(Default)]
pub struct IdentityMemo(arc_swap::ArcSwapOption<IdentityHeaders>);

impl IdentityMemo {
    fn current(&self, version: u64, now: i64) -> Option<Arc<IdentityHeaders>> {
        match &*self.0.load() {
            Some(h) if h.version == version && now < h.fresh_until => Some(Arc::clone(h)),
            _ => None,
        }
    }
}

/// A memo is a cache slot, not part of what a token says: clones start
/// empty and every memo compares equal.
impl Clone for IdentityMemo {
    fn clone(&self) -> Self {
        IdentityMemo::default()
    }
}

impl PartialEq for IdentityMemo {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for IdentityMemo {}

impl std::fmt::Debug for IdentityMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdentityMemo")
    }
}

pub struct Signer {
    key: EncodingKey,
    header: Header,
    issuer: String,
    audience: String,
    ttl: Duration,
    /// Keyed by (principal, snapshot version): a fast hasher (foldhash), as
    /// only principals of the policy get an entry.
    cache: moka::sync::Cache<(Uuid, u64), Arc<IdentityHeaders>, foldhash::fast::RandomState>,
    jwks: bytes::Bytes,
}

impl Signer {
    pub fn new(cfg: &AssertionConfig) -> Result<Signer, AssertionError> {
        let key = EncodingKey::from_ec_pem(cfg.key_pem.as_bytes()).map_err(AssertionError::Key)?;
        let mut jwk =
            Jwk::from_encoding_key(&key, Algorithm::ES256).map_err(AssertionError::Key)?;
        jwk.common.key_id = Some(cfg.kid.clone());
        let jwks = serde_json::to_vec(&serde_json::json!({ "keys": [jwk] })).unwrap_or_default();
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(cfg.kid.clone());
        let ttl = cfg.ttl.max(Duration::from_secs(2));
        Ok(Signer {
            key,
            header,
            issuer: cfg.issuer.clone(),
            audience: cfg.audience.clone(),
            ttl,
            cache: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(ttl / 2)
                .build_with_hasher(foldhash::fast::RandomState::default()),
            jwks: jwks.into(),
        })
    }

    /// The gateway's public keys as a JWKS document.
    pub fn jwks(&self) -> bytes::Bytes {
        self.jwks.clone()
    }

    /// [`Signer::identity`], first asking `memo` (the caller's verified
    /// token's slot) and filling it.
    pub fn identity_with(
        &self,
        memo: Option<&IdentityMemo>,
        subject: &Subject<'_>,
        now: i64,
    ) -> Result<Arc<IdentityHeaders>, AssertionError> {
        let Some(memo) = memo else {
            return self.identity(subject, now);
        };
        if let Some(h) = memo.current(subject.snapshot_version, now) {
            return Ok(h);
        }
        let h = self.identity(subject, now)?;
        memo.0.store(Some(Arc::clone(&h)));
        Ok(h)
    }

    /// The identity headers for `subject` with a valid assertion, from the
    /// cache when one is fresh.
    pub fn identity(
        &self,
        subject: &Subject<'_>,
        now: i64,
    ) -> Result<Arc<IdentityHeaders>, AssertionError> {
        let key = (subject.principal, subject.snapshot_version);
        if let Some(a) = self.cache.get(&key) {
            return Ok(a);
        }
        let claims = Claims {
            iss: &self.issuer,
            aud: &self.audience,
            sub: subject.principal.to_string(),
            tid: subject.tenant.to_string(),
            roles: subject.roles,
            sa: subject.service_account,
            iat: now,
            exp: now + self.ttl.as_secs() as i64,
            ver: subject.snapshot_version,
        };
        // Low-s, so that upstreams requiring canonical ECDSA accept it.
        let token = crate::auth::ecdsa::canonical_es256(
            jsonwebtoken::encode(&self.header, &claims, &self.key).map_err(AssertionError::Sign)?,
        );
        let headers = Arc::new(IdentityHeaders {
            user_id: HeaderValue::try_from(claims.sub)?,
            tenant_id: HeaderValue::try_from(claims.tid)?,
            roles: HeaderValue::from_str(subject.roles)?,
            service_account: HeaderValue::from_static(if subject.service_account {
                "true"
            } else {
                "false"
            }),
            assertion: HeaderValue::try_from(token)?,
            version: subject.snapshot_version,
            fresh_until: now + (self.ttl / 2).as_secs() as i64,
        });
        self.cache.insert(key, headers.clone());
        Ok(headers)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use base64::Engine as _;

    fn signer(ttl: u64) -> Signer {
        Signer::new(&AssertionConfig {
            issuer: "sentinel".into(),
            audience: "upstreams".into(),
            ttl: Duration::from_secs(ttl),
            key_pem: crate::demo::DEMO_ISSUER_KEY.into(),
            kid: "k1".into(),
        })
        .unwrap()
    }

    fn subject(version: u64) -> Subject<'static> {
        Subject {
            principal: Uuid::from_u128(1),
            tenant: Uuid::from_u128(2),
            roles: "viewer",
            service_account: false,
            snapshot_version: version,
        }
    }

    fn exp_of(h: &IdentityHeaders) -> i64 {
        let token = h.assertion.to_str().unwrap();
        let payload = token.split('.').nth(1).unwrap();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap();
        let claims: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        claims["exp"].as_i64().unwrap()
    }

    #[test]
    fn the_memo_serves_one_version_for_half_the_assertion_lifetime() {
        let s = signer(60);
        let memo = IdentityMemo::default();
        assert!(memo.current(1, 1000).is_none(), "starts empty");
        let a = s.identity_with(Some(&memo), &subject(1), 1000).unwrap();
        assert_eq!(exp_of(&a), 1060);
        // The same headers (the memo, or the signer's cache behind it: the
        // `current` checks below tell them apart).
        let b = s.identity_with(Some(&memo), &subject(1), 1029).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        // At half the lifetime it is no longer current: the assertion it
        // holds would have less than half its lifetime left.
        assert!(memo.current(1, 1029).is_some());
        assert!(memo.current(1, 1030).is_none());
        // Another snapshot version: the roles may differ, so not current.
        assert!(memo.current(2, 1001).is_none());
        let c = s.identity_with(Some(&memo), &subject(2), 1001).unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(c.version, 2);
        assert!(memo.current(2, 1001).is_some_and(|h| Arc::ptr_eq(&h, &c)));
        assert!(memo.current(1, 1001).is_none(), "replaced");
    }

    #[test]
    fn a_cloned_token_does_not_share_the_memo() {
        let s = signer(60);
        let memo = IdentityMemo::default();
        s.identity_with(Some(&memo), &subject(1), 1000).unwrap();
        assert!(memo.clone().current(1, 1000).is_none());
        assert_eq!(memo.clone(), memo);
    }
}
