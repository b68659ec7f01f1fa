//! Lowering of `[policy]`: the file source's patterns or the admin source
//! (URL, pinned snapshot keys, API key, cache, staleness, backoff).

use super::file::PolicyFile;
use super::lowering::{expand_pattern, Lowering};
use super::types::{AdminSource, OnStale, PinnedKeys, PolicyConfig, Secret};
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// Reads a JWKS file into a snapshot verifier. Every key must be a P-256 or
/// Ed25519 key with a `kid`; an empty set is refused.
pub fn read_pinned_keys(path: &Path) -> Result<sentinel_policy::signed::SnapshotVerifier, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&text)
        .map_err(|e| format!("`{}` is not a JWKS: {e}", path.display()))?;
    let mut verifier = sentinel_policy::signed::SnapshotVerifier::new();
    for jwk in &set.keys {
        verifier
            .add_jwk(jwk)
            .map_err(|e| format!("`{}`: {e}", path.display()))?;
    }
    if verifier.is_empty() {
        return Err(format!("`{}` holds no key", path.display()));
    }
    Ok(verifier)
}

pub(super) fn lower_policy(lw: &mut Lowering, p: &Spanned<PolicyFile>) -> PolicyConfig {
    let span = p.span();
    let p = p.get_ref();
    let watch_interval = lw.duration(&p.watch_interval, Duration::from_secs(1));
    let admin_keys: [(&str, bool); 11] = [
        ("admin_url", p.admin_url.is_some()),
        ("keys_file", p.keys_file.is_some()),
        ("api_key_env", p.api_key_env.is_some()),
        ("api_key_file", p.api_key_file.is_some()),
        ("wait", p.wait.is_some()),
        ("cache_file", p.cache_file.is_some()),
        ("max_age", p.max_age.is_some()),
        ("on_stale", p.on_stale.is_some()),
        ("timeout", p.timeout.is_some()),
        ("backoff_min", p.backoff_min.is_some()),
        ("backoff_max", p.backoff_max.is_some()),
    ];
    match p.source.get_ref().as_str() {
        "file" => {
            for (key, set) in admin_keys {
                if set {
                    lw.err(
                        span.clone(),
                        format!("`{key}` belongs to `source = \"admin\"`, not `file`"),
                    );
                }
            }
        }
        "admin" => {
            if let Some(first) = p.paths.first() {
                lw.err(
                    first.span(),
                    "`paths` belongs to `source = \"file\"`, not `admin`",
                );
            }
            let admin = lower_admin_source(lw, span, p);
            return PolicyConfig {
                patterns: Vec::new(),
                watch_interval,
                admin,
            };
        }
        other => {
            lw.err(
                p.source.span(),
                format!("unknown policy source `{other}` (supported: `file`, `admin`)"),
            );
        }
    }
    if p.paths.is_empty() {
        lw.err(span, "the file policy source needs `paths`");
    }
    let mut patterns = Vec::new();
    for path in &p.paths {
        let full = lw.path(path.get_ref());
        match expand_pattern(&full) {
            Ok(f) if f.is_empty() => {
                lw.err(path.span(), format!("`{}` matches no file", path.get_ref()))
            }
            Ok(_) => {}
            Err(e) => lw.err(
                path.span(),
                format!("cannot read `{}`: {e}", full.display()),
            ),
        }
        patterns.push(full);
    }
    PolicyConfig {
        patterns,
        watch_interval,
        admin: None,
    }
}

/// The longest long-poll wait the admin API honours.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

fn lower_admin_source(
    lw: &mut Lowering,
    span: std::ops::Range<usize>,
    p: &PolicyFile,
) -> Option<AdminSource> {
    let url = match &p.admin_url {
        None => {
            lw.err(span.clone(), "the admin policy source needs `admin_url`");
            String::new()
        }
        Some(u) => {
            let text = u.get_ref().trim_end_matches('/').to_owned();
            let host = text
                .strip_prefix("https://")
                .or_else(|| text.strip_prefix("http://"));
            match host {
                Some(h) if !h.is_empty() && !h.contains('?') && !h.contains('#') => {}
                _ => lw.err(
                    u.span(),
                    format!(
                        "`admin_url` must be an `http://` or `https://` URL, not `{}`",
                        u.get_ref()
                    ),
                ),
            }
            text
        }
    };
    let (keys_file, keys) = match &p.keys_file {
        None => {
            lw.err(
                span.clone(),
                "the admin policy source needs `keys_file` (the pinned JWKS of the snapshot-signing keys, from `sentinel-admin snapshot-jwks`)",
            );
            (PathBuf::new(), None)
        }
        Some(k) => {
            let path = lw.path(k.get_ref());
            match read_pinned_keys(&path) {
                Ok(v) => (path, Some(v)),
                Err(e) => {
                    lw.err(k.span(), e);
                    (path, None)
                }
            }
        }
    };
    let api_key = match (&p.api_key_env, &p.api_key_file) {
        (Some(_), Some(f)) => {
            lw.err(
                f.span(),
                "set one of `api_key_env` and `api_key_file`, not both",
            );
            None
        }
        (None, None) => {
            lw.err(
                span.clone(),
                "the admin policy source needs `api_key_env` or `api_key_file` (the key of `sentinel-admin gateway-key create`)",
            );
            None
        }
        (Some(var), None) => match std::env::var(var.get_ref()) {
            Ok(v) if !v.trim().is_empty() => Some(v.trim().to_owned()),
            _ => {
                lw.err(
                    var.span(),
                    format!("environment variable `{}` is not set", var.get_ref()),
                );
                None
            }
        },
        (None, Some(f)) => {
            let path = lw.path(f.get_ref());
            match std::fs::read_to_string(&path) {
                Ok(v) if !v.trim().is_empty() => Some(v.trim().to_owned()),
                Ok(_) => {
                    lw.err(f.span(), format!("`{}` is empty", path.display()));
                    None
                }
                Err(e) => {
                    lw.err(f.span(), format!("cannot read `{}`: {e}", path.display()));
                    None
                }
            }
        }
    };
    if let Some(k) = &api_key {
        if http::HeaderValue::from_str(&format!("ApiKey {k}")).is_err() {
            lw.err(
                span.clone(),
                "the API key holds characters a header cannot carry",
            );
        }
    }
    let wait = lw.duration(&p.wait, Duration::from_secs(30));
    if let Some(w) = &p.wait {
        if wait < Duration::from_secs(1) || wait > MAX_WAIT {
            lw.err(w.span(), "`wait` must be between 1s and 60s");
        }
    }
    let cache_file = p.cache_file.as_ref().map(|c| {
        let path = lw.path(c.get_ref());
        let dir = path.parent().unwrap_or(Path::new("."));
        if !dir.is_dir() {
            lw.err(
                c.span(),
                format!("directory `{}` does not exist", dir.display()),
            );
        }
        path
    });
    let max_age = p.max_age.as_ref().map(|m| {
        let d = lw.duration(&Some(m.clone()), Duration::ZERO);
        if d < Duration::from_secs(1) {
            lw.err(m.span(), "`max_age` must be at least 1s");
        } else if d <= wait {
            // A healthy long poll confirms freshness only when it returns.
            lw.err(
                m.span(),
                "`max_age` must be longer than `wait` (a healthy long poll would look stale)",
            );
        }
        d
    });
    let on_stale = match &p.on_stale {
        None => OnStale::Keep,
        Some(o) => match o.get_ref().as_str() {
            "keep" => OnStale::Keep,
            "refuse" => {
                if max_age.is_none() {
                    lw.err(o.span(), "`on_stale = \"refuse\"` needs `max_age`");
                }
                OnStale::Refuse
            }
            other => {
                lw.err(
                    o.span(),
                    format!("unknown `on_stale` value `{other}` (use `keep` or `refuse`)"),
                );
                OnStale::Keep
            }
        },
    };
    let timeout = lw.duration(&p.timeout, Duration::from_secs(10));
    if let Some(t) = &p.timeout {
        if timeout.is_zero() {
            lw.err(t.span(), "`timeout` must be greater than 0");
        }
    }
    let backoff_min = lw.duration(&p.backoff_min, Duration::from_millis(500));
    let backoff_max = lw.duration(&p.backoff_max, Duration::from_secs(30));
    if let Some(b) = &p.backoff_min {
        if backoff_min.is_zero() {
            lw.err(b.span(), "`backoff_min` must be greater than 0");
        }
    }
    if let Some(b) = &p.backoff_max {
        if backoff_max < backoff_min {
            lw.err(b.span(), "`backoff_max` must be at least `backoff_min`");
        }
    }
    Some(AdminSource {
        url,
        keys_file,
        keys: PinnedKeys(std::sync::Arc::new(keys?)),
        api_key: Secret(api_key?),
        wait,
        cache_file,
        max_age,
        on_stale,
        timeout,
        backoff_min,
        backoff_max,
    })
}
