//! Snapshot source `admin`: long-polls the admin API for signed policy
//! snapshots, verifies each against the pinned keys, refuses anything not
//! newer than the snapshot in force, compiles it and swaps it into the
//! [`PolicyStore`]. The last good snapshot (payload and signature) is kept in
//! a cache file so a gateway restarted while the admin API is down serves it.
//!
//! A snapshot that fails any check is rejected whole, counted by reason
//! (`sentinel_snapshot_rejected_total{reason}`), and the one in force keeps
//! serving. Failures back off with jitter; each change of health is logged
//! once, not each retry.

use crate::config::{AdminSource, OnStale};
use crate::policy_store::{unix_now, PolicyStore};
use sentinel_policy::signed::{SnapshotClaims, SnapshotVerifier, VerifyError};
use sentinel_policy::{compile, PolicySource, Snapshot};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Snapshots larger than this are refused before they are read whole.
pub const MAX_SNAPSHOT_BYTES: usize = 512 << 20;

/// The response header carrying the snapshot's compact JWS.
pub const SIGNATURE_HEADER: &str = "x-sentinel-snapshot-signature";

const CACHE_MAGIC: &[u8] = b"sentinel-snapshot-cache v1\n";

/// Why a snapshot was refused. The one in force keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum Rejected {
    #[error("snapshot response carries no `{SIGNATURE_HEADER}`")]
    Unsigned,
    #[error(transparent)]
    Signature(#[from] VerifyError),
    #[error("snapshot version {got} is not newer than version {held} in force (replayed)")]
    Replayed { got: u64, held: u64 },
    #[error("snapshot payload says version {payload} but is signed as version {signed}")]
    VersionMismatch { payload: u64, signed: u64 },
    #[error("snapshot payload is not a policy source: {0}")]
    Parse(String),
    #[error("snapshot does not compile: {0}")]
    Compile(String),
    #[error("snapshot body is incomplete: {0}")]
    Incomplete(String),
    #[error("snapshot body is larger than {MAX_SNAPSHOT_BYTES} bytes")]
    TooLarge,
}

impl Rejected {
    /// The `reason` label of `sentinel_snapshot_rejected_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejected::Unsigned => "unsigned",
            Rejected::Signature(VerifyError::Malformed) => "malformed_signature",
            Rejected::Signature(VerifyError::MissingKid) => "missing_kid",
            Rejected::Signature(VerifyError::UnknownKey(_)) => "unknown_key",
            Rejected::Signature(VerifyError::WrongAlgorithm(_)) => "wrong_algorithm",
            Rejected::Signature(VerifyError::WrongType) => "wrong_type",
            Rejected::Signature(VerifyError::BadSignature) => "bad_signature",
            Rejected::Signature(VerifyError::PayloadMismatch) => "payload_mismatch",
            Rejected::Replayed { .. } => "replayed",
            Rejected::VersionMismatch { .. } => "version_mismatch",
            Rejected::Parse(_) => "parse",
            Rejected::Compile(_) => "compile",
            Rejected::Incomplete(_) => "incomplete",
            Rejected::TooLarge => "too_large",
        }
    }
}

/// The snapshot in force: its version and payload hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub version: u64,
    pub sha256: String,
}

/// A verified, compiled snapshot, ready to swap in.
pub struct Accepted {
    pub snapshot: Snapshot,
    pub claims: SnapshotClaims,
}

/// Verifies `signature` over `payload` with the pinned keys, refuses a version
/// not newer than `held`, parses and compiles. `Ok(None)`: the very snapshot
/// in force, sent again (nothing to do).
pub fn accept(
    keys: &SnapshotVerifier,
    payload: &[u8],
    signature: &str,
    held: Option<&Held>,
) -> Result<Option<Accepted>, Rejected> {
    let claims = keys.verify(payload, signature)?;
    if let Some(held) = held {
        if claims.ver == held.version && claims.sha256 == held.sha256 {
            return Ok(None);
        }
        if claims.ver <= held.version {
            return Err(Rejected::Replayed {
                got: claims.ver,
                held: held.version,
            });
        }
    }
    let source: PolicySource =
        serde_json::from_slice(payload).map_err(|e| Rejected::Parse(e.to_string()))?;
    if source.version != claims.ver {
        return Err(Rejected::VersionMismatch {
            payload: source.version,
            signed: claims.ver,
        });
    }
    let snapshot = compile(&source).map_err(|errors| {
        let shown: Vec<String> = errors.iter().take(3).map(ToString::to_string).collect();
        let more = errors.len().saturating_sub(shown.len());
        let mut text = shown.join("; ");
        if more > 0 {
            text.push_str(&format!("; and {more} more"));
        }
        Rejected::Compile(text)
    })?;
    Ok(Some(Accepted { snapshot, claims }))
}

/// Writes the cache file atomically: a temporary file in the same directory,
/// synced, then renamed over the old one.
pub fn write_cache(path: &Path, signature: &str, payload: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "snapshot".to_owned());
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(CACHE_MAGIC)?;
        f.write_all(signature.as_bytes())?;
        f.write_all(b"\n")?;
        f.write_all(payload)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Reads a cache file: `(signature, payload)`, or `None` if there is none.
pub fn read_cache(path: &Path) -> std::io::Result<Option<(String, Vec<u8>)>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let invalid = || std::io::Error::new(std::io::ErrorKind::InvalidData, "not a snapshot cache");
    let rest = bytes.strip_prefix(CACHE_MAGIC).ok_or_else(invalid)?;
    let nl = rest.iter().position(|b| *b == b'\n').ok_or_else(invalid)?;
    let signature = std::str::from_utf8(&rest[..nl])
        .map_err(|_| invalid())?
        .to_owned();
    Ok(Some((signature, rest[nl + 1..].to_vec())))
}

/// At startup, before the first fetch: swaps in the cached snapshot if there
/// is one and it verifies and compiles. Its freshness is the cache file's
/// modification time (refreshed on every successful check).
pub fn load_cache(store: &PolicyStore, src: &AdminSource) -> Option<Held> {
    let path = src.cache_file.as_ref()?;
    let (signature, payload) = match read_cache(path) {
        Ok(Some(c)) => c,
        Ok(None) => {
            tracing::info!(cache = %path.display(), "no cached policy snapshot; waiting for the admin API");
            return None;
        }
        Err(e) => {
            crate::metrics::snapshot_rejected("cache_unreadable");
            tracing::error!(cache = %path.display(), error = %e, "cached policy snapshot is unreadable; ignoring it");
            return None;
        }
    };
    match accept(&src.keys.0, &payload, &signature, None) {
        Ok(Some(a)) => {
            let checked = std::fs::metadata(path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m| m.duration_since(SystemTime::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs() as i64);
            let held = Held {
                version: a.claims.ver,
                sha256: a.claims.sha256.clone(),
            };
            tracing::info!(
                version = held.version,
                cache = %path.display(),
                "policy snapshot loaded from the cache file"
            );
            crate::metrics::snapshot_published(a.claims.iat);
            store.swap_published(a.snapshot, a.claims.iat, checked);
            Some(held)
        }
        Ok(None) => None,
        Err(e) => {
            crate::metrics::snapshot_rejected(e.reason());
            tracing::error!(cache = %path.display(), error = %e, "cached policy snapshot rejected; ignoring it");
            None
        }
    }
}

/// What one long poll did.
enum Fetched {
    Updated,
    NotModified,
    /// `503`: nothing published yet.
    Unavailable,
}

#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("admin API unreachable: {0}")]
    Transport(String),
    #[error("admin API answered {0}")]
    Status(u16),
    #[error(transparent)]
    Rejected(#[from] Rejected),
}

/// Health of the source, for logging each change once.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Health {
    Starting,
    Ok,
    Unavailable,
    Failing(String),
    Rejecting(&'static str),
}

/// The pinned snapshot keys in force, replaced when the config reloads.
pub type Keys = Arc<arc_swap::ArcSwap<SnapshotVerifier>>;

/// The long-polling loop.
pub struct Poller {
    store: Arc<PolicyStore>,
    src: AdminSource,
    keys: Keys,
    held: Option<Held>,
    health: Health,
    stale: bool,
}

impl Poller {
    pub fn new(
        store: Arc<PolicyStore>,
        src: AdminSource,
        keys: Keys,
        held: Option<Held>,
    ) -> Poller {
        Poller {
            store,
            src,
            keys,
            held,
            health: Health::Starting,
            stale: false,
        }
    }

    /// Polls until the task is dropped.
    pub async fn run(mut self) {
        let client = match reqwest::Client::builder()
            .connect_timeout(self.src.timeout)
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "cannot build the admin API client; live policy is off");
                return;
            }
        };
        let mut failures: u32 = 0;
        loop {
            let started = Instant::now();
            let result = self.poll_once(&client).await;
            let pause = match result {
                Ok(fetched) => {
                    let outcome = match fetched {
                        Fetched::Updated => "updated",
                        Fetched::NotModified => "not_modified",
                        Fetched::Unavailable => "unavailable",
                    };
                    crate::metrics::snapshot_fetch(outcome);
                    if let Fetched::Unavailable = fetched {
                        self.set_health(Health::Unavailable, None);
                        failures = failures.saturating_add(1);
                        self.backoff(failures)
                    } else {
                        self.store.mark_checked();
                        if let Fetched::NotModified = fetched {
                            self.touch_cache();
                        }
                        self.set_health(Health::Ok, None);
                        failures = 0;
                        // A server that answers at once instead of waiting
                        // must not turn this loop into a busy one.
                        Duration::from_millis(200).saturating_sub(started.elapsed())
                    }
                }
                Err(e) => {
                    let health = match &e {
                        FetchError::Rejected(r) => {
                            crate::metrics::snapshot_rejected(r.reason());
                            crate::metrics::snapshot_fetch("rejected");
                            Health::Rejecting(r.reason())
                        }
                        FetchError::Transport(_) => {
                            crate::metrics::snapshot_fetch("error");
                            Health::Failing("transport".to_owned())
                        }
                        FetchError::Status(s) => {
                            crate::metrics::snapshot_fetch("error");
                            Health::Failing(format!("status {s}"))
                        }
                    };
                    self.set_health(health, Some(&e));
                    failures = failures.saturating_add(1);
                    self.backoff(failures)
                }
            };
            self.check_staleness();
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
        }
    }

    /// Exponential backoff from `backoff_min` to `backoff_max`, jittered to
    /// between half and all of the step so replicas do not retry in lockstep.
    fn backoff(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(20);
        let step = self
            .src
            .backoff_min
            .saturating_mul(1u32 << exp)
            .min(self.src.backoff_max);
        let jitter = (uuid::Uuid::new_v4().as_u128() as u64 % 1000) as u32;
        step / 2 + (step / 2) * jitter / 1000
    }

    fn set_health(&mut self, health: Health, error: Option<&FetchError>) {
        if health == self.health {
            return;
        }
        let version = self.held.as_ref().map(|h| h.version);
        match (&health, error) {
            (Health::Ok, _) => {
                tracing::info!(version, "admin API reachable; policy snapshot is current")
            }
            (Health::Unavailable, _) => tracing::warn!(
                version,
                "admin API has published no policy snapshot yet; retrying with backoff"
            ),
            (_, Some(e)) => tracing::error!(
                version,
                error = %e,
                "policy snapshot fetch failed; keeping the snapshot in force, retrying with backoff"
            ),
            _ => {}
        }
        self.health = health;
    }

    /// Raises (and logs once) the staleness alarm past `max_age`.
    fn check_staleness(&mut self) {
        let Some(max) = self.src.max_age else {
            return;
        };
        let stale = self
            .store
            .check_age_secs()
            .is_some_and(|age| age > max.as_secs() as i64);
        if stale == self.stale {
            return;
        }
        self.stale = stale;
        if let Some(m) = crate::metrics::get() {
            m.snapshot_stale.set(i64::from(stale));
        }
        match (stale, self.src.on_stale) {
            (true, OnStale::Keep) => tracing::warn!(
                max_age_seconds = max.as_secs(),
                "policy snapshot is older than `max_age`; still enforcing it (on_stale = keep)"
            ),
            (true, OnStale::Refuse) => tracing::error!(
                max_age_seconds = max.as_secs(),
                "policy snapshot is older than `max_age`; refusing requests with POLICY_UNAVAILABLE (on_stale = refuse)"
            ),
            (false, _) => tracing::info!("policy snapshot is fresh again"),
        }
    }

    /// Records the successful check in the cache file's modification time, so
    /// a restart knows how fresh the cached snapshot is.
    fn touch_cache(&self) {
        if let (Some(path), Some(_)) = (&self.src.cache_file, &self.held) {
            let _ = std::fs::File::options()
                .write(true)
                .open(path)
                .and_then(|f| f.set_modified(SystemTime::now()));
        }
    }

    async fn poll_once(&mut self, client: &reqwest::Client) -> Result<Fetched, FetchError> {
        let url = format!(
            "{}/api/v1/snapshots/latest?wait={}",
            self.src.url,
            self.src.wait.as_secs()
        );
        let mut req = client
            .get(url)
            .header(
                http::header::AUTHORIZATION,
                format!("ApiKey {}", self.src.api_key.0),
            )
            .timeout(self.src.wait + self.src.timeout);
        if let Some(held) = &self.held {
            req = req.header(http::header::IF_NONE_MATCH, format!("\"{}\"", held.version));
        }
        let resp = req
            .send()
            .await
            .map_err(|e| FetchError::Transport(without_url(&e)))?;
        match resp.status().as_u16() {
            304 => return Ok(Fetched::NotModified),
            503 => return Ok(Fetched::Unavailable),
            200 => {}
            other => return Err(FetchError::Status(other)),
        }
        let signature = resp
            .headers()
            .get(SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let payload = read_body(resp).await?;
        let signature = signature.ok_or(Rejected::Unsigned)?;
        let keys = self.keys.load_full();
        let held = self.held.clone();
        // Verifying and compiling a large snapshot is CPU work: keep it off the reactor.
        let checked = tokio::task::spawn_blocking(move || {
            let verdict = accept(&keys, &payload, &signature, held.as_ref());
            (verdict, payload, signature)
        })
        .await
        .map_err(|e| FetchError::Transport(format!("verification task failed: {e}")))?;
        let (verdict, payload, signature) = checked;
        let Some(accepted) = verdict? else {
            return Ok(Fetched::NotModified);
        };
        let Accepted { snapshot, claims } = accepted;
        let version = claims.ver;
        let stats = snapshot.stats();
        self.store.swap_published(snapshot, claims.iat, unix_now());
        crate::metrics::snapshot_published(claims.iat);
        tracing::info!(
            version,
            previous = self.held.as_ref().map(|h| h.version),
            tenants = stats.tenants,
            principals = stats.principals,
            permissions = stats.permissions,
            "policy snapshot swapped in"
        );
        self.held = Some(Held {
            version,
            sha256: claims.sha256,
        });
        if let Some(path) = self.src.cache_file.clone() {
            let written =
                tokio::task::spawn_blocking(move || write_cache(&path, &signature, &payload)).await;
            match written {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot write the policy snapshot cache file")
                }
                Err(e) => tracing::warn!(error = %e, "cache write task failed"),
            }
        }
        Ok(Fetched::Updated)
    }
}

/// Reads the body up to [`MAX_SNAPSHOT_BYTES`].
async fn read_body(mut resp: reqwest::Response) -> Result<Vec<u8>, Rejected> {
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_SNAPSHOT_BYTES as u64)
    {
        return Err(Rejected::TooLarge);
    }
    let mut body = Vec::with_capacity(resp.content_length().unwrap_or(0) as usize);
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_SNAPSHOT_BYTES {
                    return Err(Rejected::TooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => return Err(Rejected::Incomplete(without_url(&e))),
        }
    }
}

/// A reqwest error without its URL (which is harmless, but long).
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
