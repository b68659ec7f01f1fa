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
}

pub struct Signer {
    key: EncodingKey,
    header: Header,
    issuer: String,
    audience: String,
    ttl: Duration,
    cache: moka::sync::Cache<(Uuid, u64), Arc<IdentityHeaders>>,
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
                .build(),
            jwks: jwks.into(),
        })
    }

    /// The gateway's public keys as a JWKS document.
    pub fn jwks(&self) -> bytes::Bytes {
        self.jwks.clone()
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
        let token =
            jsonwebtoken::encode(&self.header, &claims, &self.key).map_err(AssertionError::Sign)?;
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
        });
        self.cache.insert(key, headers.clone());
        Ok(headers)
    }
}
