//! The registry's anomaly model at the edge (docs/anomaly.md, "Registry"):
//! the signed snapshot manifest names the active model by SHA-256
//! (`Manifest::anomaly_model`); this task fetches its bytes from the admin
//! API with the gateway's key, checks size and hash against the manifest,
//! loads it with the same loader as `[risk] model` (tract, probes) on a
//! blocking thread, and swaps it into the anomaly store — never on the
//! request path, never without a restart.
//!
//! A model whose bytes do not hash to the manifest's, or that the loader
//! refuses, is never put in force: the scorer in force keeps serving, the
//! refusal is counted (`sentinel_anomaly_model_updates_total{outcome}`) and
//! logged once, and that hash is not fetched again until the manifest names
//! another. A fetch that fails (admin API away) is retried with backoff. A
//! manifest naming no model puts `[risk] model` (or the rules) back.
//!
//! With `cache_file`, the bytes in force are kept beside it
//! (`<cache file>.model`) so a gateway restarted while the admin API is away
//! loads the model its cached manifest names; they are checked like fetched
//! bytes.

use crate::config::AdminSource;
use crate::risk::Risk;
use sentinel_policy::bundle::ModelRef;
use sentinel_risk::anomaly::{ModelError, OnnxModel, Scorer, MAX_MODEL_BYTES};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// What the manifest's model asks of this gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing to do: it is in force, or was refused already.
    Keep,
    /// The manifest names no model: the scorer of `[risk] model` again.
    Restore,
    /// Fetch, check and load this one.
    Load(ModelRef),
}

/// The step for `wanted` given the registry model in force and the last one
/// refused (hashes). Pure.
pub fn next_step(in_force: Option<&str>, refused: Option<&str>, wanted: Option<&ModelRef>) -> Step {
    match wanted {
        None if in_force.is_some() => Step::Restore,
        None => Step::Keep,
        Some(w) if Some(w.sha256.as_str()) == in_force => Step::Keep,
        Some(w) if Some(w.sha256.as_str()) == refused => Step::Keep,
        Some(w) => Step::Load(w.clone()),
    }
}

/// Why a model the manifest names is not in force.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("model bytes hash to `{found}`, the snapshot names `{expected}`")]
    HashMismatch { expected: String, found: String },
    #[error("model is larger than {MAX_MODEL_BYTES} bytes")]
    TooLarge,
    #[error(transparent)]
    Invalid(#[from] ModelError),
    #[error("cannot fetch the model: {0}")]
    Fetch(String),
}

impl Refused {
    /// The `outcome` label of `sentinel_anomaly_model_updates_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            Refused::HashMismatch { .. } => "hash_mismatch",
            Refused::TooLarge => "too_large",
            Refused::Invalid(_) => "invalid",
            Refused::Fetch(_) => "fetch_failed",
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks `bytes` against the manifest's reference (hash first: nothing
/// unverified reaches the parser), then loads them. CPU work: call it off
/// the reactor.
pub fn verify(wanted: &ModelRef, bytes: &[u8]) -> Result<Scorer, Refused> {
    if bytes.len() > MAX_MODEL_BYTES {
        return Err(Refused::TooLarge);
    }
    let found = hex(&Sha256::digest(bytes));
    if found != wanted.sha256 {
        return Err(Refused::HashMismatch {
            expected: wanted.sha256.clone(),
            found,
        });
    }
    Ok(Scorer::with_model(OnnxModel::from_bytes(bytes)?))
}

fn count(outcome: &str) {
    if let Some(m) = crate::metrics::get() {
        m.risk
            .anomaly_model_updates
            .with_label_values(&[outcome])
            .inc();
    }
}

/// Follows the model the manifest names until the poller goes away.
pub struct ModelFollower {
    risk: Arc<Risk>,
    src: AdminSource,
    wanted: watch::Receiver<Option<ModelRef>>,
    in_force: Option<String>,
    refused: Option<String>,
}

impl ModelFollower {
    /// The follower and the sender the poller announces each manifest's
    /// model on.
    pub fn new(risk: Arc<Risk>, src: AdminSource) -> (Self, watch::Sender<Option<ModelRef>>) {
        let (tx, rx) = watch::channel(None);
        (
            ModelFollower {
                risk,
                src,
                wanted: rx,
                in_force: None,
                refused: None,
            },
            tx,
        )
    }

    /// The bytes kept for a restart: `<cache file>.model`.
    fn cache_path(&self) -> Option<PathBuf> {
        let c = self.src.cache_file.as_ref()?;
        let name = c.file_name()?.to_string_lossy().into_owned();
        Some(c.with_file_name(format!("{name}.model")))
    }

    pub async fn run(mut self) {
        let client = match reqwest::Client::builder()
            .connect_timeout(self.src.timeout)
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "cannot build the admin API client; registry models are off");
                return;
            }
        };
        let mut failures: u32 = 0;
        loop {
            let wanted = self.wanted.borrow_and_update().clone();
            let retry = match next_step(
                self.in_force.as_deref(),
                self.refused.as_deref(),
                wanted.as_ref(),
            ) {
                Step::Keep => false,
                Step::Restore => {
                    self.risk.anomaly.restore_file_scorer();
                    self.in_force = None;
                    self.refused = None;
                    count("restored");
                    tracing::info!("the registry names no anomaly model; `[risk] model` (or the rules) scores again");
                    false
                }
                Step::Load(w) => match self.load(&client, &w).await {
                    Ok(()) => {
                        failures = 0;
                        false
                    }
                    Err(e @ Refused::Fetch(_)) => {
                        count(e.reason());
                        if failures == 0 {
                            tracing::warn!(sha256 = %w.sha256, error = %e, "cannot fetch the registry's anomaly model; retrying, the scorer in force keeps serving");
                        }
                        failures = failures.saturating_add(1);
                        true
                    }
                    Err(e) => {
                        count(e.reason());
                        tracing::error!(
                            name = %w.name,
                            version = %w.version,
                            sha256 = %w.sha256,
                            reason = e.reason(),
                            error = %e,
                            "anomaly model refused; the scorer in force keeps serving"
                        );
                        self.refused = Some(w.sha256.clone());
                        failures = 0;
                        false
                    }
                },
            };
            if retry {
                let exp = failures.saturating_sub(1).min(10);
                let pause = self
                    .src
                    .backoff_min
                    .saturating_mul(1u32 << exp)
                    .min(self.src.backoff_max);
                tokio::select! {
                    changed = self.wanted.changed() => if changed.is_err() { return },
                    _ = tokio::time::sleep(pause) => {}
                }
            } else if self.wanted.changed().await.is_err() {
                return;
            }
        }
    }

    /// Loads `w` from the local copy if it is that model, else from the admin
    /// API; swaps it in.
    async fn load(&mut self, client: &reqwest::Client, w: &ModelRef) -> Result<(), Refused> {
        let cached = self
            .cache_path()
            .and_then(|p| std::fs::read(p).ok())
            .filter(|b| hex(&Sha256::digest(b)) == w.sha256);
        let fetched = cached.is_none();
        let bytes = match cached {
            Some(b) => b,
            None => self.fetch(client, w).await?,
        };
        let wanted = w.clone();
        let (scorer, bytes) = tokio::task::spawn_blocking(move || (verify(&wanted, &bytes), bytes))
            .await
            .map_err(|e| Refused::Fetch(format!("load task failed: {e}")))?;
        let scorer = scorer?;
        self.risk.anomaly.swap_scorer(Arc::new(scorer));
        self.in_force = Some(w.sha256.clone());
        self.refused = None;
        count("loaded");
        tracing::info!(
            name = %w.name,
            version = %w.version,
            sha256 = %w.sha256,
            from = if fetched { "admin API" } else { "cache" },
            "registry anomaly model in force"
        );
        if let (true, Some(path)) = (fetched, self.cache_path()) {
            if let Err(e) = crate::live::snapshot::write_atomic(&path, &[&bytes]) {
                tracing::warn!(error = %e, "cannot keep the anomaly model beside the snapshot cache");
            }
        }
        Ok(())
    }

    async fn fetch(&self, client: &reqwest::Client, w: &ModelRef) -> Result<Vec<u8>, Refused> {
        // The hash is the manifest's (signed); checked anyway before it goes
        // into a URL.
        if w.sha256.len() != 64 || !w.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Refused::HashMismatch {
                expected: w.sha256.clone(),
                found: String::new(),
            });
        }
        let url = format!("{}/api/v1/ai/models/content/{}", self.src.url, w.sha256);
        let mut resp = client
            .get(url)
            .header(
                http::header::AUTHORIZATION,
                format!("ApiKey {}", self.src.api_key.0),
            )
            .timeout(self.src.timeout + Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| Refused::Fetch(e.without_url().to_string()))?;
        if !resp.status().is_success() {
            return Err(Refused::Fetch(format!(
                "admin API answered {}",
                resp.status().as_u16()
            )));
        }
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_MODEL_BYTES as u64)
        {
            return Err(Refused::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| Refused::Fetch(e.without_url().to_string()))?
        {
            if body.len() + chunk.len() > MAX_MODEL_BYTES {
                return Err(Refused::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(sha: char) -> ModelRef {
        ModelRef {
            id: uuid::Uuid::nil(),
            sha256: sha.to_string().repeat(64),
            size: 1,
            name: "m".into(),
            version: "1".into(),
        }
    }

    #[test]
    fn steps() {
        let a = model('a');
        let a_hash = a.sha256.clone();
        assert_eq!(next_step(None, None, None), Step::Keep);
        assert_eq!(next_step(Some(&a_hash), None, None), Step::Restore);
        assert_eq!(next_step(None, None, Some(&a)), Step::Load(a.clone()));
        assert_eq!(next_step(Some(&a_hash), None, Some(&a)), Step::Keep);
        // A refused hash is not fetched again; another one is.
        assert_eq!(next_step(None, Some(&a_hash), Some(&a)), Step::Keep);
        let b = model('b');
        assert_eq!(
            next_step(Some(&a_hash), Some(&a_hash), Some(&b)),
            Step::Load(b)
        );
    }

    #[test]
    fn bytes_that_do_not_hash_to_the_manifest_never_reach_the_loader() {
        let a = model('a');
        let e = verify(&a, b"not the model").err();
        assert!(matches!(e, Some(Refused::HashMismatch { .. })), "{e:?}");
        let junk = b"junk that hashes right";
        let r = ModelRef {
            sha256: hex(&Sha256::digest(junk)),
            ..a
        };
        let e = verify(&r, junk).err();
        assert_eq!(e.map(|e| e.reason()), Some("invalid"));
    }
}
