//! The file policy source: reads, merges and compiles policy files (TOML or
//! JSON) with `path:line:col` problems, and watches them. A policy that fails
//! to parse or compile is rejected whole; the previous snapshot keeps serving.

use crate::config::{expand_pattern, Problem, SourceText};
use crate::policy_store::PolicyStore;
use sentinel_policy::{compile, CompileError, PolicySource, Snapshot};
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

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
