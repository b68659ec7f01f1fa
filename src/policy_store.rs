//! Holds the live policy snapshot behind `ArcSwap` and loads it from policy
//! files (the standalone source). A policy that fails to parse or compile is
//! rejected whole; the previous snapshot keeps serving.

use crate::config::{expand_pattern, Problem, SourceText};
use arc_swap::ArcSwapOption;
use sentinel_policy::{compile, CompileError, Policy, PolicySource, Snapshot};
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The current snapshot, if any has ever loaded, and how fresh it is.
#[derive(Default)]
pub struct PolicyStore {
    current: ArcSwapOption<Policy>,
    /// Unix seconds of the last successful swap.
    loaded_at: AtomicI64,
    /// Unix seconds of the last successful exchange with the policy source
    /// (a swap, or the admin API answering "nothing newer").
    checked_at: AtomicI64,
    /// Unix seconds the snapshot in force was published (0: unknown).
    published_at: AtomicI64,
    /// `on_stale = "refuse"`: seconds since `checked_at` after which
    /// [`PolicyStore::load`] answers `None` (0: never).
    refuse_after: AtomicI64,
}

impl PolicyStore {
    pub fn new() -> PolicyStore {
        PolicyStore::default()
    }

    /// One consistent view for a whole request. `None` when no snapshot has
    /// loaded, or when it is older than `max_age` and the source says refuse.
    pub fn load(&self) -> Option<Arc<Policy>> {
        let snapshot = self.current.load_full()?;
        let refuse_after = self.refuse_after.load(Ordering::Relaxed);
        if refuse_after > 0 && unix_now() - self.checked_at.load(Ordering::Relaxed) > refuse_after {
            return None;
        }
        Some(snapshot)
    }

    /// The snapshot in force, stale or not (for metrics and the poller).
    pub fn current(&self) -> Option<Arc<Policy>> {
        self.current.load_full()
    }

    pub fn is_loaded(&self) -> bool {
        self.current.load().is_some()
    }

    /// Swaps in a policy compiled whole (policy files).
    pub fn swap(&self, snapshot: Snapshot) {
        self.swap_policy(Arc::new(Policy::whole(snapshot)));
    }

    pub fn swap_policy(&self, policy: Arc<Policy>) {
        let version = policy.version();
        self.current.store(Some(policy));
        let now = unix_now();
        self.loaded_at.store(now, Ordering::Relaxed);
        self.checked_at.store(now, Ordering::Relaxed);
        crate::metrics::snapshot_swapped(version);
    }

    /// Swaps in a signed snapshot published at `published_at`, last confirmed
    /// current by its source at `checked_at` (unix seconds).
    pub fn swap_published(&self, policy: Arc<Policy>, published_at: i64, checked_at: i64) {
        self.swap_policy(policy);
        self.published_at.store(published_at, Ordering::Relaxed);
        self.checked_at.store(checked_at, Ordering::Relaxed);
    }

    /// The source confirmed the snapshot in force is current.
    pub fn mark_checked(&self) {
        self.checked_at.store(unix_now(), Ordering::Relaxed);
    }

    /// Past `max_age` since the last successful check, [`PolicyStore::load`]
    /// answers `None`.
    pub fn refuse_when_older_than(&self, max_age: Duration) {
        self.refuse_after
            .store(max_age.as_secs().max(1) as i64, Ordering::Relaxed);
    }

    /// Seconds since the last successful swap (`None` before the first).
    pub fn age_secs(&self) -> Option<i64> {
        self.is_loaded()
            .then(|| unix_now() - self.loaded_at.load(Ordering::Relaxed))
    }

    /// Seconds since the source last confirmed the snapshot (`None` before the first).
    pub fn check_age_secs(&self) -> Option<i64> {
        self.is_loaded()
            .then(|| unix_now() - self.checked_at.load(Ordering::Relaxed))
    }

    /// Seconds since the snapshot in force was published (`None` if unknown).
    pub fn publication_age_secs(&self) -> Option<i64> {
        let at = self.published_at.load(Ordering::Relaxed);
        (self.is_loaded() && at > 0).then(|| unix_now() - at)
    }
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Where each object of a merged source came from.
struct Origin {
    file: PathBuf,
    text: String,
    json: bool,
    /// For each collection, how many entries came before this file.
    offsets: Counts,
}

#[derive(Default, Clone, Copy)]
struct Counts {
    tenants: usize,
    principals: usize,
    roles: usize,
    groups: usize,
    permissions: usize,
    grants: usize,
    revoked_tokens: usize,
    field_definitions: usize,
}

impl Counts {
    fn of(s: &PolicySource) -> Counts {
        Counts {
            tenants: s.tenants.len(),
            principals: s.principals.len(),
            roles: s.roles.len(),
            groups: s.groups.len(),
            permissions: s.permissions.len(),
            grants: s.grants.len(),
            revoked_tokens: s.revoked_tokens.len(),
            field_definitions: s.field_definitions.len(),
        }
    }

    fn get(&self, collection: &str) -> usize {
        match collection {
            "tenants" => self.tenants,
            "principals" => self.principals,
            "roles" => self.roles,
            "groups" => self.groups,
            "permissions" => self.permissions,
            "grants" => self.grants,
            "revoked_tokens" => self.revoked_tokens,
            "field_definitions" => self.field_definitions,
            _ => 0,
        }
    }
}

/// Spans of each entry of a TOML policy file, to place compile errors.
#[derive(Deserialize, Default)]
struct Spans {
    #[serde(default)]
    tenants: Vec<toml::Spanned<toml::Value>>,
    #[serde(default)]
    principals: Vec<toml::Spanned<toml::Value>>,
    #[serde(default)]
    roles: Vec<toml::Spanned<toml::Value>>,
    #[serde(default)]
    groups: Vec<toml::Spanned<toml::Value>>,
    #[serde(default)]
    permissions: Vec<toml::Spanned<toml::Value>>,
    #[serde(default)]
    grants: Vec<toml::Spanned<toml::Value>>,
    #[serde(default)]
    revoked_tokens: Vec<toml::Spanned<toml::Value>>,
    #[serde(default)]
    field_definitions: Vec<toml::Spanned<toml::Value>>,
}

impl Spans {
    fn start(&self, collection: &str, index: usize) -> Option<usize> {
        let list = match collection {
            "tenants" => &self.tenants,
            "principals" => &self.principals,
            "roles" => &self.roles,
            "groups" => &self.groups,
            "permissions" => &self.permissions,
            "grants" => &self.grants,
            "revoked_tokens" => &self.revoked_tokens,
            "field_definitions" => &self.field_definitions,
            _ => return None,
        };
        list.get(index).map(|s| s.span().start)
    }
}

/// Reads every policy file the patterns name and merges them.
fn read_sources(patterns: &[PathBuf]) -> Result<(PolicySource, Vec<Origin>), Vec<Problem>> {
    let mut problems = Vec::new();
    let mut merged = PolicySource::default();
    let mut origins = Vec::new();
    for pattern in patterns {
        let files = match expand_pattern(pattern) {
            Ok(f) => f,
            Err(e) => {
                problems.push(Problem {
                    file: pattern.clone(),
                    line: 1,
                    col: 1,
                    message: format!("cannot read: {e}"),
                });
                continue;
            }
        };
        for file in files {
            let text = match std::fs::read_to_string(&file) {
                Ok(t) => t,
                Err(e) => {
                    problems.push(Problem {
                        file: file.clone(),
                        line: 1,
                        col: 1,
                        message: format!("cannot read file: {e}"),
                    });
                    continue;
                }
            };
            let json = file.extension().is_some_and(|e| e == "json");
            let parsed: Result<PolicySource, Problem> = if json {
                serde_json::from_str(&text).map_err(|e| Problem {
                    file: file.clone(),
                    line: e.line().max(1),
                    col: e.column().max(1),
                    message: e.to_string(),
                })
            } else {
                toml::from_str(&text).map_err(|e| {
                    SourceText {
                        path: &file,
                        text: &text,
                    }
                    .toml_error(&e)
                })
            };
            match parsed {
                Ok(src) => {
                    origins.push(Origin {
                        file: file.clone(),
                        text,
                        json,
                        offsets: Counts::of(&merged),
                    });
                    merged.merge(src);
                }
                Err(p) => problems.push(p),
            }
        }
    }
    if problems.is_empty() {
        Ok((merged, origins))
    } else {
        Err(problems)
    }
}

fn place(errors: Vec<CompileError>, origins: &[Origin]) -> Vec<Problem> {
    let spans: Vec<Spans> = origins
        .iter()
        .map(|o| {
            if o.json {
                Spans::default()
            } else {
                toml::from_str(&o.text).unwrap_or_default()
            }
        })
        .collect();
    errors
        .into_iter()
        .map(|e| {
            let collection = e.location.collection;
            // The last file whose offset is <= index holds the entry.
            let owner = origins
                .iter()
                .enumerate()
                .rev()
                .find(|(_, o)| o.offsets.get(collection) <= e.location.index);
            match owner {
                Some((i, o)) => {
                    let local = e.location.index - o.offsets.get(collection);
                    let offset = spans[i].start(collection, local).unwrap_or(0);
                    let mut loc = e.location.clone();
                    loc.index = local;
                    SourceText {
                        path: &o.file,
                        text: &o.text,
                    }
                    .problem(offset, format!("{loc}: {}", e.message))
                }
                None => Problem {
                    file: PathBuf::from("<policy>"),
                    line: 1,
                    col: 1,
                    message: e.to_string(),
                },
            }
        })
        .collect()
}

/// Reads, merges and compiles the policy files. Every problem is reported.
pub fn load_policy(patterns: &[PathBuf]) -> Result<Snapshot, Vec<Problem>> {
    let (source, origins) = read_sources(patterns)?;
    compile(&source).map_err(|errors| place(errors, &origins))
}

/// The newest modification time over the files the patterns name now.
fn fingerprint(patterns: &[PathBuf]) -> Vec<(PathBuf, Option<SystemTime>)> {
    let mut out = Vec::new();
    for p in patterns {
        for f in expand_pattern(p).unwrap_or_default() {
            let m = std::fs::metadata(&f).and_then(|m| m.modified()).ok();
            out.push((f, m));
        }
    }
    out
}

/// Watches the policy files and swaps in each new policy that compiles.
/// Polls modification times (works on every filesystem, including bind mounts).
pub async fn watch(store: Arc<PolicyStore>, patterns: Vec<PathBuf>, interval: Duration) {
    let mut last = fingerprint(&patterns);
    let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(100)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let now = fingerprint(&patterns);
        if now == last {
            continue;
        }
        last = now;
        reload(&store, &patterns);
    }
}

/// Loads the policy once more; logs and counts a rejection, keeping the old snapshot.
pub fn reload(store: &PolicyStore, patterns: &[PathBuf]) -> bool {
    match load_policy(patterns) {
        Ok(snapshot) => {
            let stats = snapshot.stats();
            tracing::info!(
                version = snapshot.version(),
                tenants = stats.tenants,
                principals = stats.principals,
                permissions = stats.permissions,
                "policy snapshot loaded"
            );
            store.swap(snapshot);
            true
        }
        Err(problems) => {
            crate::metrics::snapshot_rejected("compile");
            for p in &problems {
                tracing::error!(problem = %p, "policy rejected; keeping the previous snapshot");
            }
            false
        }
    }
}

/// Used by `sentinel check`.
pub fn check(patterns: &[PathBuf]) -> Vec<Problem> {
    load_policy(patterns).err().unwrap_or_default()
}
