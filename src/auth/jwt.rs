//! JWT verification for bearer tokens: strict header and claim checks, per-issuer algorithm allow-lists, key selection bound to one algorithm per key, and a cache of verified tokens that never outlives `exp`.
//!
//! The order of checks is part of the security boundary: size, shape,
//! header (forbidden members, algorithm), unverified `iss` only to pick the
//! issuer, the issuer's allow-list, key selection, signature, and only then
//! the claims. Nothing in the token can introduce a key or an algorithm.
//!
//! Over 700 lines because that order is easiest to audit in one file: the
//! verifier, the issuer table and the JWKS refresh state it reads (the JWKS
//! parsing itself is `jwks.rs`, the ECDSA form `sentinel_policy::ecdsa`).

use crate::auth::jwks::{self, FetchError, KeySet, Origin, Selected, MAX_JWKS_BYTES};
use crate::clock::unix_now;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::Algorithm;
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime};

/// Algorithms a token may ever use, whatever an issuer allows.
pub const SUPPORTED: [Algorithm; 10] = [
    Algorithm::HS256,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The names of [`SUPPORTED`], for messages.
pub const SUPPORTED_NAMES: &str =
    "HS256, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA";

/// A supported algorithm by its exact, case-sensitive JOSE name.
pub fn algorithm_named(name: &str) -> Option<Algorithm> {
    SUPPORTED.into_iter().find(|a| jwks::alg_name(*a) == name)
}
/// How often a JWKS file's mtime is looked at, at most.
const FILE_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// First retry delay after a failed JWKS fetch; doubles up to `refresh_every`.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// One trusted issuer.
#[derive(Debug, Clone)]
pub struct IssuerSpec {
    /// Exact `iss` value.
    pub issuer: String,
    /// The token's `aud` (string or array) must contain at least one of these.
    pub audiences: Vec<String>,
    /// Allow-list; only the algorithms of [`SUPPORTED`] may appear.
    pub algorithms: Vec<Algorithm>,
    pub keys: KeySource,
    /// Clock skew tolerated for `exp`, `nbf` and `iat` (whole seconds).
    pub leeway: Duration,
    /// ES256 and ES384 signatures only in canonical low-s form (src/auth/ecdsa.rs).
    /// `false` for an issuer whose signer does not normalise `s`.
    pub require_low_s: bool,
}

/// Where an issuer's keys come from.
#[derive(Clone)]
pub enum KeySource {
    /// A JWKS JSON file, re-read when its mtime or size changes (looked at
    /// at most once per second, lazily and by the refresh task).
    JwksFile(PathBuf),
    /// A JWKS URL, fetched at start, every `refresh_every`, and on an unknown
    /// `kid` at most once per `min_refetch_interval`.
    JwksUrl {
        url: String,
        refresh_every: Duration,
        min_refetch_interval: Duration,
    },
    /// OpenID Connect discovery: `{issuer}/.well-known/openid-configuration`
    /// names the `jwks_uri` (re-read on every fetch, so a moved JWKS is
    /// followed); the document's `issuer` must equal the configured one.
    /// Fetched like [`KeySource::JwksUrl`].
    Discovery {
        refresh_every: Duration,
        min_refetch_interval: Duration,
    },
    /// Inline JWKS JSON.
    Jwks(String),
    /// An HS256 shared secret (at least 32 bytes).
    HmacSecret {
        kid: Option<String>,
        secret: Vec<u8>,
    },
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::JwksFile(p) => f.debug_tuple("JwksFile").field(p).finish(),
            Self::JwksUrl {
                url,
                refresh_every,
                min_refetch_interval,
            } => f
                .debug_struct("JwksUrl")
                .field("url", url)
                .field("refresh_every", refresh_every)
                .field("min_refetch_interval", min_refetch_interval)
                .finish(),
            Self::Discovery {
                refresh_every,
                min_refetch_interval,
            } => f
                .debug_struct("Discovery")
                .field("refresh_every", refresh_every)
                .field("min_refetch_interval", min_refetch_interval)
                .finish(),
            Self::Jwks(_) => f.write_str("Jwks(..)"),
            Self::HmacSecret { kid, .. } => f
                .debug_struct("HmacSecret")
                .field("kid", kid)
                .field("secret", &"[redacted]")
                .finish(),
        }
    }
}

/// Limits of the verifier as a whole.
#[derive(Debug, Clone)]
pub struct VerifierSettings {
    /// Longer tokens are refused before any decoding.
    pub max_token_bytes: usize,
    /// Verified tokens kept in memory; 0 disables the cache.
    pub cache_capacity: u64,
}

impl Default for VerifierSettings {
    fn default() -> Self {
        Self {
            max_token_bytes: 8192,
            cache_capacity: 100_000,
        }
    }
}

/// What a verified token says. Claims only identify: roles and status come
/// from the policy snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    pub issuer: String,
    pub subject: String,
    /// `subject` as a UUID (parsed once here, not per request); `None` if it is not one.
    pub subject_id: Option<uuid::Uuid>,
    pub jti: Option<String>,
    /// Claim `tid` (or `tenant_id`).
    pub tenant_id: Option<String>,
    /// `tenant_id` as a UUID; `None` if absent or not a UUID.
    pub tenant_uuid: Option<uuid::Uuid>,
    /// `mfa: true`, or `amr` containing `mfa`, `otp` or `hwk`.
    pub mfa: bool,
    pub expires_at: i64,
    pub issued_at: Option<i64>,
    /// `scope` (space-separated) and/or `scp` (array or string); informational.
    pub scopes: Vec<String>,
    /// The identity headers last sent upstream for this token's principal,
    /// kept with the cached token (not part of what the token says).
    pub identity: crate::assertion::IdentityMemo,
}

/// Why a token was refused. Messages never contain token content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("token is too large")]
    TooLarge,
    #[error("forbidden `{0}` header")]
    ForbiddenHeader(&'static str),
    #[error("algorithm not allowed")]
    AlgorithmNotAllowed,
    #[error("unknown issuer")]
    UnknownIssuer,
    #[error("token has no `kid` and the issuer has several keys")]
    MissingKid,
    #[error("unknown signing key")]
    UnknownKey,
    #[error("the signing key does not belong to the token's algorithm")]
    KeyAlgorithmMismatch,
    #[error("bad signature")]
    BadSignature,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token is not meant for this audience")]
    WrongAudience,
    #[error("invalid `{0}` claim")]
    InvalidClaim(&'static str),
}

impl TokenError {
    /// The SPEC error code: `TOKEN_EXPIRED` for an expired token,
    /// `AUTH_INVALID` for every other reason.
    pub fn code(&self) -> &'static str {
        crate::errors::ErrorCode::from(*self).as_str()
    }
}

/// A bad issuer specification or key material.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("an issuer must not be empty")]
    EmptyIssuer,
    #[error("issuer `{0}` is configured twice")]
    DuplicateIssuer(String),
    #[error("issuer `{0}` needs at least one audience")]
    NoAudience(String),
    #[error("issuer `{0}` needs at least one algorithm")]
    NoAlgorithm(String),
    #[error("algorithm `{alg}` is not supported for issuer `{issuer}` (allowed: HS256, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA)")]
    UnsupportedAlgorithm { issuer: String, alg: String },
    #[error("issuer `{0}`: an HMAC secret can only verify HS256")]
    HmacAlgorithm(String),
    #[error("issuer `{issuer}`: cannot read `{path}`: {source}")]
    ReadKeys {
        issuer: String,
        path: String,
        source: std::io::Error,
    },
    #[error("issuer `{issuer}`: `{path}` is larger than {MAX_JWKS_BYTES} bytes")]
    KeyFileTooLarge { issuer: String, path: String },
    #[error("issuer `{issuer}`: invalid keys in {origin}: {source}")]
    InvalidKeys {
        issuer: String,
        origin: String,
        source: jwks::JwksError,
    },
    #[error("issuer `{0}`: no key can verify any of its algorithms")]
    NoKeyForAlgorithms(String),
    #[error("issuer `{issuer}`: `{url}` is not an http(s) URL")]
    InvalidUrl { issuer: String, url: String },
    #[error("issuer `{issuer}`: `{field}` must be at least one second")]
    IntervalTooShort { issuer: String, field: &'static str },
    #[error("cannot build the JWKS HTTP client: {0}")]
    HttpClient(reqwest::Error),
}

/// Verifies bearer tokens against the configured issuers. `Send + Sync`;
/// share it behind an `Arc`.
pub struct Verifier {
    issuers: HashMap<String, Arc<Issuer>>,
    /// Keyed by the token itself, compared byte for byte on a hit (as
    /// Envoy's JWT cache does): no digest to compute per request, and no
    /// collision can ever return another token's claims. Only verified
    /// tokens go in, so a caller cannot choose the keys and a fast hasher
    /// (foldhash, seeded per process) is safe. Weighed by size
    /// ([`token_weight`]) so that long tokens cannot grow it unbounded.
    cache: Option<moka::sync::Cache<Box<str>, Arc<VerifiedToken>, foldhash::fast::RandomState>>,
    max_token_bytes: usize,
    http: Option<reqwest::Client>,
    /// Zero point of the millisecond clocks in [`FileSource`].
    started: Instant,
}

struct Issuer {
    issuer: String,
    audiences: Vec<String>,
    algorithms: Vec<Algorithm>,
    leeway: i64,
    require_low_s: bool,
    source: Source,
    /// INVARIANT: replaced as a whole, never mutated in place.
    keys: RwLock<Arc<KeySet>>,
    /// Bumped on every key set change; a verification that saw another
    /// generation is not cached.
    generation: AtomicU64,
    /// The last refresh failed (logged once per transition).
    failing: AtomicBool,
}

enum Source {
    Static,
    File(FileSource),
    Url(UrlSource),
}

struct FileSource {
    path: PathBuf,
    /// Milliseconds since `Verifier::started` of the last look at the file.
    last_check_ms: AtomicU64,
    stamp: std::sync::Mutex<FileStamp>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
}

struct UrlSource {
    /// The JWKS URL, or with `discover` the discovery document's URL.
    url: String,
    /// `url` is an OpenID Connect discovery document naming the JWKS.
    discover: bool,
    refresh_every: Duration,
    min_refetch_interval: Duration,
    /// Serializes fetches; holds the time of the last attempt so that a
    /// flood of unknown kids causes at most one fetch per interval.
    fetch: tokio::sync::Mutex<Option<Instant>>,
}

impl Verifier {
    /// Checks every issuer and loads its keys. JWKS files and inline sets
    /// must be valid; a JWKS URL that cannot be fetched now is only logged
    /// (its tokens fail with `UnknownKey` until a fetch succeeds).
    pub async fn new(
        issuers: Vec<IssuerSpec>,
        settings: VerifierSettings,
    ) -> Result<Verifier, SetupError> {
        let needs_http = issuers.iter().any(|s| {
            matches!(
                s.keys,
                KeySource::JwksUrl { .. } | KeySource::Discovery { .. }
            )
        });
        let http = if needs_http {
            Some(jwks::http_client().map_err(SetupError::HttpClient)?)
        } else {
            None
        };
        for (i, spec) in issuers.iter().enumerate() {
            if issuers[..i].iter().any(|s| s.issuer == spec.issuer) {
                return Err(SetupError::DuplicateIssuer(spec.issuer.clone()));
            }
        }
        let mut map = HashMap::with_capacity(issuers.len());
        for spec in issuers {
            let issuer = build_issuer(spec, http.as_ref()).await?;
            map.insert(issuer.issuer.clone(), Arc::new(issuer));
        }
        let cache = (settings.cache_capacity > 0).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(settings.cache_capacity)
                .weigher(weigh_token)
                .expire_after(UntilExp)
                .build_with_hasher(foldhash::fast::RandomState::default())
        });
        Ok(Verifier {
            issuers: map,
            cache,
            max_token_bytes: settings.max_token_bytes,
            http,
            started: Instant::now(),
        })
    }

    /// Verifies a compact JWS. A cache hit costs a hash of the token, a
    /// lookup (one comparison of the token) and an `exp` comparison.
    pub async fn verify(&self, token: &str) -> Result<Arc<VerifiedToken>, TokenError> {
        if token.len() > self.max_token_bytes {
            return Err(TokenError::TooLarge);
        }
        // The uncached path (signature check, maybe a JWKS fetch) is boxed: its
        // future is about 1 KiB, which every caller's future (the proxy's
        // per-request one) would otherwise carry on cache hits too.
        let Some(cache) = &self.cache else {
            return Box::pin(self.verify_uncached(token))
                .await
                .map(|(v, _)| Arc::new(v));
        };
        if let Some(hit) = cache.get(token) {
            // INVARIANT: a cached token is never returned at or after its exp,
            // whatever moka's expiry timer says.
            if unix_now() < hit.expires_at {
                return Ok(hit);
            }
            cache.invalidate(token);
        }
        let (verified, fresh) = Box::pin(self.verify_uncached(token)).await?;
        let verified = Arc::new(verified);
        if fresh && unix_now() < verified.expires_at {
            cache.insert(token.into(), Arc::clone(&verified));
        }
        Ok(verified)
    }

    /// Tokens currently cached (moka's estimate; expired entries may still
    /// count until its housekeeping runs).
    pub fn cache_len(&self) -> u64 {
        self.cache.as_ref().map_or(0, |c| {
            c.run_pending_tasks();
            c.entry_count()
        })
    }

    /// True when every issuer has at least one key (for `/readyz`).
    pub fn has_keys(&self) -> bool {
        self.issuers
            .values()
            .all(|i| !i.current_keys().keys.is_empty())
    }

    /// Starts the background refresh: JWKS URLs every `refresh_every`
    /// (after a failure: 1 s, doubling up to `refresh_every`, keeping the
    /// last good keys), JWKS files every second. Ends when the verifier is
    /// dropped; aborting the handle stops every loop.
    pub fn spawn_refresh(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        let issuers: Vec<Arc<Issuer>> = self
            .issuers
            .values()
            .filter(|i| !matches!(i.source, Source::Static))
            .cloned()
            .collect();
        tokio::spawn(async move {
            let mut loops = tokio::task::JoinSet::new();
            for issuer in issuers {
                loops.spawn(refresh_loop(weak.clone(), issuer));
            }
            while loops.join_next().await.is_some() {}
        })
    }

    /// Full verification. Returns whether the key set stayed the same while
    /// verifying (only then may the result be cached).
    async fn verify_uncached(&self, token: &str) -> Result<(VerifiedToken, bool), TokenError> {
        let parts = split(token)?;
        let header = parse_header(parts.header)?;
        let alg = header.alg;
        let claims = parse_claims(parts.payload)?;

        let iss = match &claims.iss {
            None => return Err(TokenError::UnknownIssuer),
            Some(Value::String(s)) => s.as_str(),
            Some(_) => return Err(TokenError::InvalidClaim("iss")),
        };
        let issuer = self.issuers.get(iss).ok_or(TokenError::UnknownIssuer)?;
        if !issuer.algorithms.contains(&alg) {
            return Err(TokenError::AlgorithmNotAllowed);
        }

        if let Source::File(file) = &issuer.source {
            self.maybe_reload_file(issuer, file).await;
        }
        let generation = issuer.generation.load(Ordering::Acquire);
        let mut keys = issuer.current_keys();
        let mut selected = select(&keys, header.kid.as_deref(), alg);
        if selected == Err(TokenError::UnknownKey) && self.refetch_for_unknown_kid(issuer).await {
            keys = issuer.current_keys();
            selected = select(&keys, header.kid.as_deref(), alg);
        }
        let key = keys.keys.get(selected?).ok_or(TokenError::UnknownKey)?;

        // INVARIANT: key.alg == alg (select only returns keys bound to alg).
        let signing_input = token
            .as_bytes()
            .get(..parts.signing_input_len)
            .ok_or(TokenError::Malformed)?;
        // A malleable (high-s) ECDSA signature is a second spelling of a
        // token: refused before the signature check (src/auth/ecdsa.rs).
        let malleable = match alg {
            Algorithm::ES256 => !super::ecdsa::es256_is_canonical(parts.signature),
            Algorithm::ES384 => !super::ecdsa::es384_is_canonical(parts.signature),
            _ => false,
        };
        if malleable && issuer.require_low_s {
            return Err(TokenError::BadSignature);
        }
        match jsonwebtoken::crypto::verify(parts.signature, signing_input, &key.key, key.alg) {
            Ok(true) => {}
            Ok(false) | Err(_) => return Err(TokenError::BadSignature),
        }

        let verified = validate_claims(issuer, claims, unix_now())?;
        let fresh = issuer.generation.load(Ordering::Acquire) == generation;
        Ok((verified, fresh))
    }

    /// On an unknown kid: re-read a changed JWKS file, or refetch a JWKS
    /// URL at most once per `min_refetch_interval` (shared by all requests).
    /// Returns whether the key set may have changed.
    async fn refetch_for_unknown_kid(&self, issuer: &Issuer) -> bool {
        match &issuer.source {
            Source::Static => false,
            Source::File(file) => self.maybe_reload_file(issuer, file).await,
            Source::Url(url) => {
                let seen = issuer.generation.load(Ordering::Acquire);
                let mut last = url.fetch.lock().await;
                if issuer.generation.load(Ordering::Acquire) != seen {
                    // Someone else fetched new keys while we waited.
                    return true;
                }
                if last.is_some_and(|t| t.elapsed() < url.min_refetch_interval) {
                    return false;
                }
                *last = Some(Instant::now());
                self.fetch_url(issuer, url).await.unwrap_or(false)
            }
        }
    }

    /// Fetches a JWKS URL and installs the result. The caller holds
    /// `url.fetch`. Returns whether the key set changed.
    async fn fetch_url(&self, issuer: &Issuer, url: &UrlSource) -> Result<bool, ()> {
        let Some(http) = &self.http else {
            return Err(());
        };
        match fetch_keys(http, url, &issuer.issuer).await {
            Ok(keys) => {
                issuer.note_success(&url.url);
                Ok(self.install(issuer, keys))
            }
            Err(e) => {
                issuer.note_failure(&url.url, &e);
                Err(())
            }
        }
    }

    /// Re-reads a JWKS file when its mtime or size changed; looks at most
    /// once per second. Returns whether the key set changed.
    async fn maybe_reload_file(&self, issuer: &Issuer, file: &FileSource) -> bool {
        let now_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = file.last_check_ms.load(Ordering::Relaxed);
        let interval_ms = FILE_CHECK_INTERVAL.as_millis() as u64;
        if now_ms < last.saturating_add(interval_ms) {
            return false;
        }
        if file
            .last_check_ms
            .compare_exchange(last, now_ms, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return false; // another request is looking right now
        }
        let origin = file.path.display().to_string();
        let stamp = match tokio::fs::metadata(&file.path).await {
            Ok(m) => FileStamp {
                modified: m.modified().ok(),
                len: m.len(),
            },
            Err(e) => {
                issuer.note_failure(&origin, &e);
                return false;
            }
        };
        if lock(&file.stamp).eq(&stamp) {
            return false;
        }
        match read_key_file(&file.path).await {
            Ok(keys) => {
                *lock_mut(&file.stamp) = stamp;
                issuer.note_success(&origin);
                self.install(issuer, keys)
            }
            Err(e) => {
                issuer.note_failure(&origin, &e);
                false
            }
        }
    }

    /// Replaces an issuer's key set if it differs. When a key disappeared,
    /// every cached token is dropped (they may have been signed by it).
    fn install(&self, issuer: &Issuer, keys: KeySet) -> bool {
        let mut current = issuer
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if current.same_keys(&keys) {
            return false;
        }
        let removed = current
            .keys
            .iter()
            .any(|old| !keys.keys.iter().any(|k| k.fingerprint == old.fingerprint));
        tracing::info!(
            issuer = %issuer.issuer,
            keys = %keys.describe(),
            previous = %current.describe(),
            "JWT signing keys changed"
        );
        *current = Arc::new(keys);
        issuer.generation.fetch_add(1, Ordering::AcqRel);
        drop(current);
        if removed {
            if let Some(cache) = &self.cache {
                cache.invalidate_all();
            }
        }
        true
    }
}

impl Issuer {
    fn current_keys(&self) -> Arc<KeySet> {
        Arc::clone(
            &self
                .keys
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    fn note_failure(&self, origin: &str, error: &dyn std::fmt::Display) {
        if !self.failing.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                issuer = %self.issuer,
                origin,
                error = %error,
                "cannot refresh JWT signing keys; keeping the last good set"
            );
        }
    }

    fn note_success(&self, origin: &str) {
        if self.failing.swap(false, Ordering::AcqRel) {
            tracing::info!(issuer = %self.issuer, origin, "JWT signing keys refresh recovered");
        }
    }
}

fn lock<T: Copy>(m: &std::sync::Mutex<T>) -> T {
    *m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn lock_mut<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn refresh_loop(verifier: Weak<Verifier>, issuer: Arc<Issuer>) {
    match &issuer.source {
        Source::Static => {}
        Source::File(file) => loop {
            tokio::time::sleep(FILE_CHECK_INTERVAL).await;
            let Some(v) = verifier.upgrade() else { return };
            v.maybe_reload_file(&issuer, file).await;
        },
        Source::Url(url) => {
            // Backoff: 1 s after the first failure, doubling up to
            // `refresh_every`; back to `refresh_every` after a success.
            let mut failing = issuer.failing.load(Ordering::Acquire);
            let mut delay = if failing {
                FIRST_BACKOFF
            } else {
                url.refresh_every
            };
            loop {
                tokio::time::sleep(delay).await;
                let Some(v) = verifier.upgrade() else { return };
                let ok = {
                    let mut last = url.fetch.lock().await;
                    *last = Some(Instant::now());
                    v.fetch_url(&issuer, url).await.is_ok()
                };
                drop(v);
                delay = match (ok, failing) {
                    (true, _) => url.refresh_every,
                    (false, false) => FIRST_BACKOFF.min(url.refresh_every),
                    (false, true) => delay.saturating_mul(2).min(url.refresh_every),
                };
                failing = !ok;
            }
        }
    }
}

async fn build_issuer(
    spec: IssuerSpec,
    http: Option<&reqwest::Client>,
) -> Result<Issuer, SetupError> {
    let name = spec.issuer;
    if name.is_empty() {
        return Err(SetupError::EmptyIssuer);
    }
    if spec.audiences.is_empty() || spec.audiences.iter().all(String::is_empty) {
        return Err(SetupError::NoAudience(name));
    }
    if spec.algorithms.is_empty() {
        return Err(SetupError::NoAlgorithm(name));
    }
    let mut algorithms = Vec::with_capacity(spec.algorithms.len());
    for alg in spec.algorithms {
        if !SUPPORTED.contains(&alg) {
            return Err(SetupError::UnsupportedAlgorithm {
                issuer: name,
                alg: format!("{alg:?}"),
            });
        }
        if !algorithms.contains(&alg) {
            algorithms.push(alg);
        }
    }
    let invalid = |origin: String, source| SetupError::InvalidKeys {
        issuer: name.clone(),
        origin,
        source,
    };
    let mut failing = false;
    let (source, keys) = match spec.keys {
        KeySource::HmacSecret { kid, secret } => {
            if algorithms.iter().any(|a| *a != Algorithm::HS256) {
                return Err(SetupError::HmacAlgorithm(name));
            }
            let keys = KeySet::from_hmac_secret(kid, &secret)
                .map_err(|e| invalid("the HMAC secret".into(), e))?;
            (Source::Static, keys)
        }
        KeySource::Jwks(json) => {
            let keys = jwks::parse_jwks(json.as_bytes(), Origin::Local)
                .map_err(|e| invalid("the inline JWKS".into(), e))?;
            (Source::Static, keys)
        }
        KeySource::JwksFile(path) => {
            let shown = path.display().to_string();
            let meta = tokio::fs::metadata(&path)
                .await
                .map_err(|source| SetupError::ReadKeys {
                    issuer: name.clone(),
                    path: shown.clone(),
                    source,
                })?;
            let keys = read_key_file(&path).await.map_err(|e| match e {
                KeyFileError::Io(source) => SetupError::ReadKeys {
                    issuer: name.clone(),
                    path: shown.clone(),
                    source,
                },
                KeyFileError::TooLarge => SetupError::KeyFileTooLarge {
                    issuer: name.clone(),
                    path: shown.clone(),
                },
                KeyFileError::Jwks(e) => invalid(format!("`{shown}`"), e),
            })?;
            let stamp = FileStamp {
                modified: meta.modified().ok(),
                len: meta.len(),
            };
            let file = FileSource {
                path,
                last_check_ms: AtomicU64::new(0),
                stamp: std::sync::Mutex::new(stamp),
            };
            (Source::File(file), keys)
        }
        KeySource::JwksUrl {
            url,
            refresh_every,
            min_refetch_interval,
        } => {
            let mut source = url_source(&name, url, false, refresh_every, min_refetch_interval)?;
            let keys = initial_url_keys(http, &source, &name, &mut failing).await;
            // The initial fetch counts against `min_refetch_interval` from its end.
            source.fetch = tokio::sync::Mutex::new(Some(Instant::now()));
            (Source::Url(source), keys)
        }
        KeySource::Discovery {
            refresh_every,
            min_refetch_interval,
        } => {
            let url = jwks::discovery_url(&name);
            let mut source = url_source(&name, url, true, refresh_every, min_refetch_interval)?;
            let keys = initial_url_keys(http, &source, &name, &mut failing).await;
            // The initial fetch counts against `min_refetch_interval` from its end.
            source.fetch = tokio::sync::Mutex::new(Some(Instant::now()));
            (Source::Url(source), keys)
        }
    };
    if !keys.keys.is_empty() && !keys.keys.iter().any(|k| algorithms.contains(&k.alg)) {
        return Err(SetupError::NoKeyForAlgorithms(name));
    }
    Ok(Issuer {
        issuer: name,
        audiences: spec.audiences,
        algorithms,
        leeway: i64::try_from(spec.leeway.as_secs()).unwrap_or(i64::MAX),
        require_low_s: spec.require_low_s,
        source,
        keys: RwLock::new(Arc::new(keys)),
        generation: AtomicU64::new(0),
        failing: AtomicBool::new(failing),
    })
}

/// A JWKS URL or discovery source, checked.
fn url_source(
    name: &str,
    url: String,
    discover: bool,
    refresh_every: Duration,
    min_refetch_interval: Duration,
) -> Result<UrlSource, SetupError> {
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(SetupError::InvalidUrl {
            issuer: name.to_owned(),
            url,
        });
    }
    for (field, d) in [
        ("refresh_every", refresh_every),
        ("min_refetch_interval", min_refetch_interval),
    ] {
        if d < Duration::from_secs(1) {
            return Err(SetupError::IntervalTooShort {
                issuer: name.to_owned(),
                field,
            });
        }
    }
    Ok(UrlSource {
        url,
        discover,
        refresh_every,
        min_refetch_interval,
        fetch: tokio::sync::Mutex::new(Some(Instant::now())),
    })
}

/// The keys of a URL source at start: a failed fetch is only logged (and
/// marks the issuer failing); the refresh task retries.
async fn initial_url_keys(
    http: Option<&reqwest::Client>,
    source: &UrlSource,
    name: &str,
    failing: &mut bool,
) -> KeySet {
    let Some(http) = http else {
        return KeySet::default();
    };
    match fetch_keys(http, source, name).await {
        Ok(keys) => keys,
        Err(e) => {
            warn_initial_fetch(name, &source.url, &e);
            *failing = true;
            KeySet::default()
        }
    }
}

/// One fetch of a URL source's keys: the JWKS URL, or the discovery
/// document and then the JWKS it names.
async fn fetch_keys(
    http: &reqwest::Client,
    url: &UrlSource,
    issuer: &str,
) -> Result<KeySet, FetchError> {
    if url.discover {
        let jwks_uri = jwks::discover(http, &url.url, issuer).await?;
        jwks::fetch_jwks(http, &jwks_uri).await
    } else {
        jwks::fetch_jwks(http, &url.url).await
    }
}

fn warn_initial_fetch(issuer: &str, url: &str, e: &FetchError) {
    tracing::warn!(
        issuer,
        url,
        error = %e,
        "cannot fetch JWT signing keys at start; retrying in the background"
    );
}

#[derive(Debug, thiserror::Error)]
enum KeyFileError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the key set is larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    #[error(transparent)]
    Jwks(#[from] jwks::JwksError),
}

async fn read_key_file(path: &std::path::Path) -> Result<KeySet, KeyFileError> {
    use tokio::io::AsyncReadExt as _;
    let file = tokio::fs::File::open(path).await?;
    let mut bytes = Vec::new();
    file.take(MAX_JWKS_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .await?;
    if bytes.len() > MAX_JWKS_BYTES {
        return Err(KeyFileError::TooLarge);
    }
    Ok(jwks::parse_jwks(&bytes, Origin::Local)?)
}

/// Key selection as an index into the key set.
fn select(keys: &KeySet, kid: Option<&str>, alg: Algorithm) -> Result<usize, TokenError> {
    match keys.select(kid, alg) {
        Selected::Key(i) => Ok(i),
        Selected::Unknown => Err(TokenError::UnknownKey),
        Selected::AlgorithmMismatch => Err(TokenError::KeyAlgorithmMismatch),
        Selected::Ambiguous => Err(TokenError::MissingKid),
    }
}

/// A cached token's share of `token_cache_capacity`: one per started KiB, so
/// the usual token (under 1 KiB) counts once and the cache holds at most
/// about `capacity` KiB of token text, however long the tokens.
fn token_weight(token: &str) -> u32 {
    u32::try_from(token.len() / 1024 + 1).unwrap_or(u32::MAX)
}

/// [`token_weight`] in the shape moka's weigher takes (`Fn(&K, &V) -> u32`).
#[allow(clippy::borrowed_box)]
fn weigh_token(token: &Box<str>, _: &Arc<VerifiedToken>) -> u32 {
    token_weight(token)
}

/// Moka expiry: an entry lives until the token's `exp`, never longer.
struct UntilExp;

impl moka::Expiry<Box<str>, Arc<VerifiedToken>> for UntilExp {
    fn expire_after_create(
        &self,
        _key: &Box<str>,
        value: &Arc<VerifiedToken>,
        _created_at: Instant,
    ) -> Option<Duration> {
        let left = value.expires_at.saturating_sub(unix_now()).max(0);
        Some(Duration::from_secs(u64::try_from(left).unwrap_or(0)))
    }

    fn expire_after_update(
        &self,
        key: &Box<str>,
        value: &Arc<VerifiedToken>,
        updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        self.expire_after_create(key, value, updated_at)
    }
}

// ---------------------------------------------------------------------------
// Parsing of untrusted bytes.

struct Parts<'t> {
    header: &'t str,
    payload: &'t str,
    signature: &'t str,
    /// Length of `header.payload`, the signed bytes.
    signing_input_len: usize,
}

/// Exactly three base64url segments (no padding, no other bytes).
fn split(token: &str) -> Result<Parts<'_>, TokenError> {
    let valid = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.';
    if !token.bytes().all(valid) {
        return Err(TokenError::Malformed);
    }
    let mut it = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (it.next(), it.next(), it.next(), it.next())
    else {
        return Err(TokenError::Malformed);
    };
    // An empty signature is left to the header check (`alg: none` tokens
    // carry one) and then fails signature verification.
    if header.is_empty() || payload.is_empty() {
        return Err(TokenError::Malformed);
    }
    Ok(Parts {
        header,
        payload,
        signature,
        signing_input_len: header.len() + 1 + payload.len(),
    })
}

/// A header member whose mere presence (even as `null`) matters.
#[derive(Default)]
struct Present(bool);

impl<'de> Deserialize<'de> for Present {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d)?;
        Ok(Present(true))
    }
}

/// The JOSE header members we act on. Unknown members are ignored; a
/// duplicated known member makes the header malformed (serde refuses it).
#[derive(Deserialize)]
struct RawHeader {
    alg: Option<String>,
    kid: Option<String>,
    #[serde(default)]
    jku: Present,
    #[serde(default)]
    jwk: Present,
    #[serde(default)]
    x5u: Present,
    #[serde(default)]
    x5c: Present,
    #[serde(default)]
    crit: Present,
    #[serde(default)]
    zip: Present,
}

struct Header {
    alg: Algorithm,
    kid: Option<String>,
}

fn decode_json_object(segment: &str) -> Result<Vec<u8>, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| TokenError::Malformed)?;
    // JSON text is UTF-8 (RFC 8259, 8.1). serde skips the members it does
    // not read without looking at their bytes, so check the whole segment.
    if std::str::from_utf8(&bytes).is_err() {
        return Err(TokenError::Malformed);
    }
    // Only an object; serde would also accept an array for a struct.
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => Ok(bytes),
        _ => Err(TokenError::Malformed),
    }
}

fn parse_header(segment: &str) -> Result<Header, TokenError> {
    let bytes = decode_json_object(segment)?;
    let raw: RawHeader = serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)?;
    // Key-bearing or key-pointing members would let the token choose its
    // own key; `crit` asks for extensions we do not implement; `zip` is JWE.
    for (present, name) in [
        (raw.jku.0, "jku"),
        (raw.jwk.0, "jwk"),
        (raw.x5u.0, "x5u"),
        (raw.x5c.0, "x5c"),
        (raw.crit.0, "crit"),
        (raw.zip.0, "zip"),
    ] {
        if present {
            return Err(TokenError::ForbiddenHeader(name));
        }
    }
    // Exact, case-sensitive names; `none` in any casing is simply not one.
    let alg = raw
        .alg
        .as_deref()
        .and_then(algorithm_named)
        .ok_or(TokenError::AlgorithmNotAllowed)?;
    Ok(Header { alg, kid: raw.kid })
}

/// Registered and Sentinel claims, kept as JSON values until the signature
/// has been checked; their types are checked in [`validate_claims`].
#[derive(Deserialize)]
struct RawClaims {
    iss: Option<Value>,
    sub: Option<Value>,
    aud: Option<Value>,
    exp: Option<Value>,
    nbf: Option<Value>,
    iat: Option<Value>,
    jti: Option<Value>,
    tid: Option<Value>,
    tenant_id: Option<Value>,
    mfa: Option<Value>,
    amr: Option<Value>,
    scope: Option<Value>,
    scp: Option<Value>,
}

fn parse_claims(segment: &str) -> Result<RawClaims, TokenError> {
    let bytes = decode_json_object(segment)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)
}

/// A NumericDate: a JSON integer. Strings, floats and values outside i64
/// are refused.
fn numeric_date(v: Option<&Value>, claim: &'static str) -> Result<Option<i64>, TokenError> {
    match v {
        None => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or(TokenError::InvalidClaim(claim)),
        Some(_) => Err(TokenError::InvalidClaim(claim)),
    }
}

fn opt_string(v: Option<Value>, claim: &'static str) -> Result<Option<String>, TokenError> {
    match v {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(TokenError::InvalidClaim(claim)),
    }
}

fn string_array<'v>(v: &'v Value, claim: &'static str) -> Result<Vec<&'v str>, TokenError> {
    match v {
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().ok_or(TokenError::InvalidClaim(claim)))
            .collect(),
        _ => Err(TokenError::InvalidClaim(claim)),
    }
}

fn validate_claims(issuer: &Issuer, c: RawClaims, now: i64) -> Result<VerifiedToken, TokenError> {
    let leeway = issuer.leeway;

    let exp = numeric_date(c.exp.as_ref(), "exp")?.ok_or(TokenError::InvalidClaim("exp"))?;
    let nbf = numeric_date(c.nbf.as_ref(), "nbf")?;
    let iat = numeric_date(c.iat.as_ref(), "iat")?;
    if now >= exp.saturating_add(leeway) {
        return Err(TokenError::Expired);
    }
    if nbf.is_some_and(|nbf| nbf > now.saturating_add(leeway)) {
        return Err(TokenError::NotYetValid);
    }
    if iat.is_some_and(|iat| iat > now.saturating_add(leeway)) {
        return Err(TokenError::InvalidClaim("iat"));
    }

    let aud_ok = match &c.aud {
        None => false,
        Some(Value::String(a)) => issuer.audiences.iter().any(|x| x == a),
        Some(v @ Value::Array(_)) => string_array(v, "aud")?
            .iter()
            .any(|a| issuer.audiences.iter().any(|x| x == a)),
        Some(_) => return Err(TokenError::InvalidClaim("aud")),
    };
    if !aud_ok {
        return Err(TokenError::WrongAudience);
    }

    let subject = match c.sub {
        Some(Value::String(s)) if !s.is_empty() => s,
        _ => return Err(TokenError::InvalidClaim("sub")),
    };
    let jti = opt_string(c.jti, "jti")?;
    let tid = opt_string(c.tid, "tid")?;
    let tenant_id = opt_string(c.tenant_id, "tenant_id")?;
    let tenant_id = match (tid, tenant_id) {
        (Some(a), Some(b)) if a != b => return Err(TokenError::InvalidClaim("tid")),
        (a, b) => a.or(b),
    };

    let mfa_claim = match c.mfa {
        None => false,
        Some(Value::Bool(b)) => b,
        Some(_) => return Err(TokenError::InvalidClaim("mfa")),
    };
    let amr_mfa = match &c.amr {
        None => false,
        Some(v) => string_array(v, "amr")?
            .iter()
            .any(|m| matches!(*m, "mfa" | "otp" | "hwk")),
    };

    let mut scopes: Vec<String> = Vec::new();
    match &c.scope {
        None => {}
        Some(Value::String(s)) => scopes.extend(s.split_ascii_whitespace().map(str::to_owned)),
        Some(_) => return Err(TokenError::InvalidClaim("scope")),
    }
    match &c.scp {
        None => {}
        Some(Value::String(s)) => scopes.extend(s.split_ascii_whitespace().map(str::to_owned)),
        Some(v) => scopes.extend(string_array(v, "scp")?.into_iter().map(str::to_owned)),
    }
    scopes.dedup();

    Ok(VerifiedToken {
        issuer: issuer.issuer.clone(),
        subject_id: uuid::Uuid::parse_str(&subject).ok(),
        subject,
        jti,
        tenant_uuid: tenant_id
            .as_deref()
            .and_then(|t| uuid::Uuid::parse_str(t).ok()),
        tenant_id,
        mfa: mfa_claim || amr_mfa,
        expires_at: exp,
        issued_at: iat,
        scopes,
        identity: crate::assertion::IdentityMemo::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::token_weight;

    #[test]
    fn long_tokens_weigh_more() {
        assert_eq!(token_weight(""), 1);
        assert_eq!(token_weight(&"a".repeat(600)), 1);
        assert_eq!(token_weight(&"a".repeat(1023)), 1);
        assert_eq!(token_weight(&"a".repeat(1024)), 2);
        assert_eq!(token_weight(&"a".repeat(8192)), 9);
    }
}
