//! Snapshot source `admin`: long-polls the admin API for signed policy
//! bundles (a manifest naming every part by hash, and the parts this gateway
//! does not hold yet; see `sentinel_policy::bundle`), verifies each against
//! the pinned keys, refuses anything not newer than the policy in force,
//! compiles only the parts that changed and swaps the result into the
//! [`PolicyStore`]. The last good manifest and its parts are kept in a cache
//! (the cache file and a `<cache file>.parts/` directory beside it) so a
//! gateway restarted while the admin API is down serves them.
//!
//! A bundle that fails any check is rejected whole, counted by reason
//! (`sentinel_snapshot_rejected_total{reason}`), and the policy in force keeps
//! serving. A delta that names a part this gateway does not hold is fetched
//! again whole at once. Failures back off with jitter; each change of health
//! is logged once, not each retry.

use crate::clock::unix_now;
use crate::config::{AdminSource, OnStale};
use crate::policy_store::PolicyStore;
pub use sentinel_policy::bundle::Held;
use sentinel_policy::bundle::{self, Applied, BundleError, Manifest, Opened};
use sentinel_policy::signed::{SnapshotVerifier, VerifyError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Bundles larger than this are refused before they are read whole.
pub const MAX_SNAPSHOT_BYTES: usize = 512 << 20;

/// While the admin API cannot be reached (connection refused, closed or
/// reset; a proxy in front answering 502 or 504), the next try is at most
/// this far away (jittered to half of it and more), whatever the backoff:
/// there is nothing to overload, and the gateway should catch up within a
/// second of the API's return. Answers that are errors keep the backoff.
pub const RECONNECT_MAX: Duration = Duration::from_millis(500);

const CACHE_MAGIC: &[u8] = b"sentinel-snapshot-cache v2\n";

/// Why a bundle was refused. The policy in force keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum Rejected {
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error("snapshot body is incomplete: {0}")]
    Incomplete(String),
    #[error("snapshot body is larger than {MAX_SNAPSHOT_BYTES} bytes")]
    TooLarge,
}

impl Rejected {
    /// The `reason` label of `sentinel_snapshot_rejected_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejected::Bundle(BundleError::Signature(e)) => match e {
                VerifyError::Malformed => "malformed_signature",
                VerifyError::MissingKid => "missing_kid",
                VerifyError::UnknownKey(_) => "unknown_key",
                VerifyError::WrongAlgorithm(_) => "wrong_algorithm",
                VerifyError::WrongType => "wrong_type",
                VerifyError::BadSignature => "bad_signature",
                VerifyError::PayloadMismatch => "payload_mismatch",
            },
            Rejected::Bundle(BundleError::Malformed(_)) => "malformed",
            Rejected::Bundle(BundleError::Unsigned) => "unsigned",
            Rejected::Bundle(BundleError::VersionMismatch { .. }) => "version_mismatch",
            Rejected::Bundle(BundleError::PartMismatch(_)) => "payload_mismatch",
            Rejected::Bundle(BundleError::NotNewer { .. }) => "replayed",
            Rejected::Bundle(BundleError::MissingPart(_)) => "missing_part",
            Rejected::Bundle(BundleError::BadPart { .. }) => "parse",
            Rejected::Bundle(BundleError::Compile(_)) => "compile",
            Rejected::Incomplete(_) => "incomplete",
            Rejected::TooLarge => "too_large",
        }
    }
}

/// A verified, compiled bundle, ready to swap in.
pub struct Accepted {
    pub held: Held,
    pub applied: Applied,
    /// The verified bundle itself: its claims, and what the cache keeps
    /// (signature, manifest bytes, the parts it brought).
    pub opened: Opened,
}

/// Verifies `body` with the pinned keys, refuses a version not newer than
/// `held`, and compiles the parts that changed on top of `held`. `Ok(None)`:
/// the very manifest in force, sent again (nothing to do).
pub fn accept(
    keys: &SnapshotVerifier,
    body: &[u8],
    held: Option<&Held>,
) -> Result<Option<Accepted>, Rejected> {
    let opened = bundle::open(keys, body)?;
    if held.is_some_and(|h| h.manifest == opened.manifest) {
        return Ok(None);
    }
    let (next, applied) = bundle::apply(held, &opened)?;
    Ok(Some(Accepted {
        held: next,
        applied,
        opened,
    }))
}

/// The directory of cached parts beside the cache file.
fn parts_dir(path: &Path) -> PathBuf {
    path.with_file_name(format!("{}.parts", file_name(path)))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "snapshot".to_owned())
}

/// Writes `chunks` to `path` atomically: a temporary file in the same
/// directory, synced, then renamed over the old one.
pub(crate) fn write_atomic(path: &Path, chunks: &[&[u8]]) -> std::io::Result<()> {
    let tmp = path.with_file_name(format!(".{}.tmp-{}", file_name(path), std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        for c in chunks {
            f.write_all(c)?;
        }
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Updates the cache: first the new parts, then (atomically) the cache file
/// naming the manifest, then the parts no manifest names any more. A crash at
/// any point leaves a cache that either loads whole or is refused whole.
pub fn write_cache(path: &Path, bundle: &Opened) -> std::io::Result<()> {
    let dir = parts_dir(path);
    std::fs::create_dir_all(&dir)?;
    for (hash, body) in bundle.parts() {
        // Hashes come from a verified bundle (hex); the check keeps a path out of it anyway.
        if !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        let file = dir.join(hash);
        if !file.exists() {
            write_atomic(&file, &[body])?;
        }
    }
    write_atomic(
        path,
        &[
            CACHE_MAGIC,
            bundle.signature().as_bytes(),
            b"\n",
            bundle.manifest_bytes(),
        ],
    )?;
    let keep: std::collections::HashSet<&str> = bundle.manifest.part_hashes().collect();
    for entry in std::fs::read_dir(&dir)?.flatten() {
        let name = entry.file_name();
        if !keep.contains(name.to_string_lossy().as_ref()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(())
}

/// Reads the cache back as a bundle body, or `None` if there is none.
pub fn read_cache(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let invalid = |what: &str| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not a snapshot cache: {what}"),
        )
    };
    let rest = bytes
        .strip_prefix(CACHE_MAGIC)
        .ok_or_else(|| invalid("header"))?;
    let nl = rest
        .iter()
        .position(|b| *b == b'\n')
        .ok_or_else(|| invalid("signature"))?;
    let signature = std::str::from_utf8(&rest[..nl]).map_err(|_| invalid("signature"))?;
    let manifest = &rest[nl + 1..];
    let m: Manifest = serde_json::from_slice(manifest).map_err(|_| invalid("manifest"))?;
    let dir = parts_dir(path);
    let mut parts: Vec<(String, Vec<u8>)> = Vec::new();
    for hash in m.part_hashes() {
        if parts.iter().any(|(h, _)| h == hash) {
            continue;
        }
        if !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid("part name"));
        }
        parts.push((hash.to_owned(), std::fs::read(dir.join(hash))?));
    }
    let list: Vec<(&str, &[u8])> = parts
        .iter()
        .map(|(h, b)| (h.as_str(), b.as_slice()))
        .collect();
    Ok(Some(bundle::encode(signature, manifest, &list)))
}

/// At startup, before the first fetch: swaps in the cached policy if there is
/// one and it verifies and compiles. Its freshness is the cache file's
/// modification time (refreshed on every successful check).
pub fn load_cache(store: &PolicyStore, src: &AdminSource) -> Option<Held> {
    let path = src.cache_file.as_ref()?;
    let body = match read_cache(path) {
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
    match accept(&src.keys.0, &body, None) {
        Ok(Some(a)) => {
            let checked = std::fs::metadata(path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m| m.duration_since(SystemTime::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs() as i64);
            tracing::info!(
                version = a.opened.claims.ver,
                shards = a.held.policy.shard_count(),
                cache = %path.display(),
                "policy snapshot loaded from the cache"
            );
            crate::metrics::snapshot_published(a.opened.claims.iat);
            store.swap_published(Arc::clone(&a.held.policy), a.opened.claims.iat, checked);
            Some(a.held)
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
    /// No answer: refused, closed or reset (or a proxy's 502 / 504).
    #[error("admin API unreachable: {0}")]
    Unreachable(String),
    /// A timeout, or the verification task failing.
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
    /// Bundles swapped in, written to the cache in order by their own task
    /// (see [`cache_writer`]).
    cache: Option<tokio::sync::mpsc::UnboundedSender<Opened>>,
    /// Where the manifest's anomaly model is announced (`live/model.rs`).
    model: Option<tokio::sync::watch::Sender<Option<sentinel_policy::bundle::ModelRef>>>,
}

/// Writes cache updates one after the other, so the poller never waits for
/// the disk (a whole bundle is a thousand synced files) before its next
/// long poll. In order: a later manifest may name parts an earlier bundle
/// brought. Ends when the poller goes.
async fn cache_writer(path: PathBuf, mut rx: tokio::sync::mpsc::UnboundedReceiver<Opened>) {
    while let Some(w) = rx.recv().await {
        let path = path.clone();
        let written = tokio::task::spawn_blocking(move || write_cache(&path, &w)).await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot write the policy snapshot cache"),
            Err(e) => tracing::warn!(error = %e, "cache write task failed"),
        }
    }
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
            cache: None,
            model: None,
        }
    }

    /// Announces each manifest's anomaly model on `tx` (the registry's model
    /// follower, `live/model.rs`).
    pub fn with_model_follower(
        mut self,
        tx: tokio::sync::watch::Sender<Option<sentinel_policy::bundle::ModelRef>>,
    ) -> Poller {
        self.model = Some(tx);
        self
    }

    /// Tells the model follower which model the manifest in force names.
    fn announce_model(&self) {
        if let Some(tx) = &self.model {
            let wanted = self
                .held
                .as_ref()
                .and_then(|h| h.manifest.anomaly_model.as_deref().cloned());
            tx.send_if_modified(|cur| {
                let changed = *cur != wanted;
                if changed {
                    *cur = wanted;
                }
                changed
            });
        }
    }

    /// Polls until the task is dropped.
    pub async fn run(mut self) {
        if let Some(path) = self.src.cache_file.clone() {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            tokio::spawn(cache_writer(path, rx));
            self.cache = Some(tx);
        }
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
            self.announce_model();
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
                        // A server that answers "not modified" at once
                        // instead of waiting must not turn this loop into a
                        // busy one. A new version asks again at once: each
                        // needs a newer signed version, so no busy loop, and
                        // a change right after another is not held back.
                        match fetched {
                            Fetched::Updated => Duration::ZERO,
                            _ => Duration::from_millis(200).saturating_sub(started.elapsed()),
                        }
                    }
                }
                Err(e) => {
                    let health = match &e {
                        FetchError::Rejected(r) => {
                            crate::metrics::snapshot_rejected(r.reason());
                            crate::metrics::snapshot_fetch("rejected");
                            Health::Rejecting(r.reason())
                        }
                        FetchError::Transport(_) | FetchError::Unreachable(_) => {
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
                    let backoff = self.backoff(failures);
                    if e.is_unreachable() {
                        backoff.min(jittered(RECONNECT_MAX))
                    } else {
                        backoff
                    }
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
        jittered(step)
    }

    fn set_health(&mut self, health: Health, error: Option<&FetchError>) {
        if health == self.health {
            return;
        }
        let version = self.held.as_ref().map(|h| h.manifest.version);
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
        match self.fetch(client, true).await {
            // A delta that names a part this gateway does not hold (its cache
            // and the server disagree): count it and fetch everything at once.
            Err(FetchError::Rejected(r @ Rejected::Bundle(BundleError::MissingPart(_)))) => {
                crate::metrics::snapshot_rejected(r.reason());
                tracing::warn!(error = %r, "policy delta does not fit the policy held; fetching it whole");
                self.fetch(client, false).await
            }
            other => other,
        }
    }

    /// One long poll. `delta`: ask only for the parts newer than the version held.
    async fn fetch(
        &mut self,
        client: &reqwest::Client,
        delta: bool,
    ) -> Result<Fetched, FetchError> {
        let mut url = format!(
            "{}/api/v1/snapshots/latest?wait={}",
            self.src.url,
            self.src.wait.as_secs()
        );
        let held_version = self.held.as_ref().map(|h| h.manifest.version);
        if let (true, Some(v)) = (delta, held_version) {
            url.push_str(&format!("&since={v}"));
        }
        let mut req = client
            .get(url)
            .header(
                http::header::AUTHORIZATION,
                format!("ApiKey {}", self.src.api_key.0),
            )
            .timeout(self.src.wait + self.src.timeout);
        if let Some(v) = held_version {
            req = req.header(http::header::IF_NONE_MATCH, format!("\"{v}\""));
        }
        let resp = req.send().await.map_err(|e| FetchError::of(&e))?;
        match resp.status().as_u16() {
            304 => return Ok(Fetched::NotModified),
            503 => return Ok(Fetched::Unavailable),
            200 => {}
            other => return Err(FetchError::Status(other)),
        }
        let body = read_body(resp).await?;
        let bytes = body.len();
        let keys = self.keys.load_full();
        let held = self.held.clone();
        // Verifying and compiling is CPU work (a whole policy can take
        // seconds): keep it off the reactor.
        let started = Instant::now();
        let verdict = tokio::task::spawn_blocking(move || accept(&keys, &body, held.as_ref()))
            .await
            .map_err(|e| FetchError::Transport(format!("verification task failed: {e}")))?;
        let Some(accepted) = verdict? else {
            return Ok(Fetched::NotModified);
        };
        crate::metrics::snapshot_applied(
            bytes,
            started.elapsed().as_secs_f64(),
            accepted.applied.global_changed,
            accepted.applied.shards_compiled,
        );
        let version = accepted.opened.claims.ver;
        let stats = accepted.held.policy.stats();
        self.store.swap_published(
            Arc::clone(&accepted.held.policy),
            accepted.opened.claims.iat,
            unix_now(),
        );
        crate::metrics::snapshot_published(accepted.opened.claims.iat);
        tracing::info!(
            version,
            previous = held_version,
            bytes,
            global_changed = accepted.applied.global_changed,
            shards_compiled = accepted.applied.shards_compiled,
            shards_kept = accepted.applied.shards_kept,
            shards_removed = accepted.applied.shards_removed,
            tenants = stats.tenants,
            principals = stats.principals,
            permissions = stats.permissions,
            "policy snapshot swapped in"
        );
        self.held = Some(accepted.held);
        self.announce_model();
        if let Some(cache) = &self.cache {
            let _ = cache.send(accepted.opened);
        }
        Ok(Fetched::Updated)
    }
}

impl FetchError {
    /// Nothing answered: try again soon ([`RECONNECT_MAX`]).
    fn is_unreachable(&self) -> bool {
        matches!(
            self,
            FetchError::Unreachable(_) | FetchError::Status(502) | FetchError::Status(504)
        )
    }

    /// A failed request: a timeout keeps the backoff (the API may be
    /// overloaded); anything else means nothing answered.
    fn of(e: &reqwest::Error) -> FetchError {
        if e.is_timeout() {
            FetchError::Transport(without_url(e))
        } else {
            FetchError::Unreachable(without_url(e))
        }
    }
}

/// Between half of `step` and all of it, so replicas do not retry in lockstep.
fn jittered(step: Duration) -> Duration {
    let jitter = (uuid::Uuid::new_v4().as_u128() as u64 % 1000) as u32;
    step / 2 + (step / 2) * jitter / 1000
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
