//! Live reload of `sentinel.toml` and its route files, on SIGHUP and when a
//! file changes. A reload is validated whole by [`crate::config::load`] first;
//! the new route table is then applied with one `ArcSwap` store, so a request
//! sees either the old table or the new one, never a mix. A config with any
//! problem is rejected whole (every problem logged as `path:line:col`) and the
//! running one stays.
//!
//! Live: the route files, the `routes` list, and the admin source's pinned
//! snapshot keys (`[policy] keys_file` and the file's content, for key
//! rotation). Everything else in `sentinel.toml` is read at start only; a
//! change to it logs a warning naming the section, and takes effect on
//! restart (or a graceful upgrade).

use crate::config::{self, Config};
use crate::proxy::GatewayState;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The top-level keys of `sentinel.toml` applied without a restart.
pub const LIVE_KEYS: &[&str] = &["routes"];

/// Keys of `[policy]` applied without a restart.
const LIVE_POLICY_KEYS: &[&str] = &["keys_file"];

/// Why a reload was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("configuration has problems:\n{0}")]
    Invalid(String),
    #[error("upstreams were added, removed or renamed (`{0}`); the running upstreams stay until a restart, and routes must name them")]
    UpstreamsChanged(String),
    #[error("route `{route}` names rate-limit class `{class}`, which the running configuration does not have (rate limits change on restart)")]
    UnknownClass { route: String, class: String },
}

/// What a successful reload did.
#[derive(Debug, PartialEq, Eq)]
pub struct Applied {
    pub routes: usize,
    /// Restart-only sections whose text changed since the last reload.
    pub restart_needed: Vec<String>,
}

/// Modification time and size of every file a config reads.
type Fingerprint = Vec<(PathBuf, Option<(SystemTime, u64)>)>;

fn fingerprint(main: &Path, patterns: &[PathBuf]) -> Fingerprint {
    let stat = |f: &Path| {
        std::fs::metadata(f)
            .ok()
            .and_then(|m| m.modified().ok().map(|t| (t, m.len())))
    };
    let mut out = vec![(main.to_path_buf(), stat(main))];
    for p in patterns {
        for f in config::expand_pattern(p).unwrap_or_default() {
            let s = stat(&f);
            out.push((f, s));
        }
    }
    out
}

/// The top-level tables of `sentinel.toml`, as parsed TOML values (ordered).
fn sections(path: &Path) -> BTreeMap<String, toml::Value> {
    let mut out: BTreeMap<String, toml::Value> = std::fs::read_to_string(path)
        .ok()
        .and_then(|t| toml::from_str::<toml::Table>(&t).ok())
        .map(|t| t.into_iter().collect())
        .unwrap_or_default();
    if let Some(toml::Value::Table(policy)) = out.get_mut("policy") {
        for key in LIVE_POLICY_KEYS {
            policy.remove(*key);
        }
    }
    out
}

pub struct Reloader {
    path: PathBuf,
    state: Arc<GatewayState>,
    /// Upstream names in pool order, fixed at start.
    upstreams: Vec<String>,
    /// Rate-limit classes of the running configuration, fixed at start.
    classes: HashSet<String>,
    /// Route-file patterns of the last applied configuration.
    patterns: Vec<PathBuf>,
    /// Sections of the last file that loaded, to name what changed.
    last_sections: BTreeMap<String, toml::Value>,
    seen: Fingerprint,
    /// The admin source's pinned keys (shared with the poller) and their file.
    keys: Option<(PathBuf, crate::live::snapshot::Keys)>,
}

impl Reloader {
    pub fn new(
        config: &Config,
        state: Arc<GatewayState>,
        keys: Option<crate::live::snapshot::Keys>,
    ) -> Reloader {
        let keys = match (&config.policy.admin, keys) {
            (Some(a), Some(k)) => Some((a.keys_file.clone(), k)),
            _ => None,
        };
        let mut watched = config.route_patterns.clone();
        watched.extend(keys.as_ref().map(|(p, _)| p.clone()));
        Reloader {
            path: config.path.clone(),
            state,
            upstreams: config.upstreams.iter().map(|u| u.name.clone()).collect(),
            classes: config
                .rate_limits
                .as_ref()
                .map(|r| r.classes.keys().cloned().collect())
                .unwrap_or_default(),
            patterns: config.route_patterns.clone(),
            last_sections: sections(&config.path),
            seen: fingerprint(&config.path, &watched),
            keys,
        }
    }

    /// The route-file patterns and the pinned keys file.
    fn watched(&self) -> Vec<PathBuf> {
        let mut out = self.patterns.clone();
        out.extend(self.keys.as_ref().map(|(p, _)| p.clone()));
        out
    }

    /// Loads, validates and applies the configuration once.
    pub fn reload(&mut self) -> Result<Applied, ReloadError> {
        let new = config::load(&self.path).map_err(|problems| {
            let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
            ReloadError::Invalid(text.join("\n"))
        })?;
        let names: Vec<String> = new.upstreams.iter().map(|u| u.name.clone()).collect();
        if names != self.upstreams {
            return Err(ReloadError::UpstreamsChanged(names.join("`, `")));
        }
        for route in new.routes.routes() {
            if let Some(class) = &route.rate_limit {
                if !self.classes.contains(class.as_ref()) {
                    return Err(ReloadError::UnknownClass {
                        route: route.id.to_string(),
                        class: class.to_string(),
                    });
                }
            }
        }
        let now = sections(&self.path);
        let mut restart_needed = Vec::new();
        let keys: std::collections::BTreeSet<&String> =
            now.keys().chain(self.last_sections.keys()).collect();
        for key in keys {
            if LIVE_KEYS.contains(&key.as_str()) {
                continue;
            }
            if now.get(key) != self.last_sections.get(key) {
                restart_needed.push(key.clone());
            }
        }
        let routes = new.routes.len();
        // INVARIANT: one store; every request loads the table once.
        self.state.routes.store(new.routes.clone());
        if let (Some((path, keys)), Some(admin)) = (self.keys.as_mut(), &new.policy.admin) {
            // Validated by `config::load`: only a readable, non-empty JWKS gets here.
            keys.store(admin.keys.0.clone());
            *path = admin.keys_file.clone();
        }
        self.patterns = new.route_patterns.clone();
        self.last_sections = now;
        Ok(Applied {
            routes,
            restart_needed,
        })
    }

    /// Reloads, logs and counts the outcome.
    pub fn reload_and_log(&mut self, trigger: &str) {
        // Take the fingerprint first: an edit during the load is seen next time.
        self.seen = fingerprint(&self.path, &self.watched());
        match self.reload() {
            Ok(applied) => {
                crate::metrics::config_reload("applied");
                tracing::info!(
                    trigger,
                    routes = applied.routes,
                    "configuration reloaded; new route table in force"
                );
                for section in &applied.restart_needed {
                    tracing::warn!(
                        trigger,
                        section = %section,
                        "`{section}` changed in the configuration but is read only at start: restart (or upgrade) the gateway to apply it"
                    );
                }
            }
            Err(e) => {
                crate::metrics::config_reload("rejected");
                tracing::error!(trigger, error = %e, "configuration reload rejected; the running configuration stays");
            }
        }
    }

    /// Reloads on SIGHUP and whenever a config or route file changes (polled
    /// every `interval`: works on every filesystem, bind mounts included).
    pub async fn run(mut self, interval: Duration) {
        let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; reloading on file change only");
                None
            }
        };
        let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(100)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let hup = async {
                match hangup.as_mut() {
                    Some(s) => s.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = hup => self.reload_and_log("sighup"),
                _ = ticker.tick() => {
                    if fingerprint(&self.path, &self.watched()) != self.seen {
                        self.reload_and_log("file change");
                    }
                }
            }
        }
    }
}

/// Installs the SIGHUP handler early, so a SIGHUP sent while the gateway is
/// still starting reloads (or is ignored) rather than killing the process.
pub fn install_hangup_handler() {
    if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        rt.block_on(async {
            let _ = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
        });
    }
}
