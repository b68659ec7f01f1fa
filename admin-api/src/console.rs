//! The admin console's built files (`console/dist`) at `/console/`, and the
//! API docs page that loads Redoc from that build instead of a CDN.
//!
//! Read from a directory (`SENTINEL_CONSOLE_DIR`, default `console/dist`
//! relative to the working directory; empty turns the console off), not
//! embedded, so that `cargo build` needs no Node (docs/console.md, "Serving").
//! A request path is decoded segment by segment and refused (404) when a
//! segment is `.`/`..`, hidden, or hides a separator; the file it names is
//! canonicalized and refused unless it lies under the canonical directory,
//! so neither `..` (plain or encoded) nor a symlink leads out of it.
//! tower-http's `ServeDir` refuses `..` but follows symlinks wherever they
//! point, and would need the index fallback and cache rules wrapped around
//! it; this module is the whole of it, with no new dependency.
//!
//! Try: `curl -si 127.0.0.1:8081/console/` (the page) and
//! `curl -si 127.0.0.1:8081/console/assets/missing.js` (404).

use crate::error::ApiError;
use crate::AppState;
use axum::extract::{Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use std::path::{Path, PathBuf};

/// Where the console's pages live.
pub const PREFIX: &str = "/console/";

/// The Redoc bundle the console build copies from the pinned `redoc` npm package.
pub const REDOC_SCRIPT: &str = "/console/vendor/redoc.standalone.js";

/// The console's routes, merged into the app's router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/console", get(|| async { Redirect::permanent(PREFIX) }))
        .route("/console/", get(serve))
        .route("/console/{*path}", get(serve))
}

/// Content-Security-Policy of the console: its own origin only (the page
/// carries the same policy in a `<meta>`; `frame-ancestors` works only here).
/// Mantine writes CSS variables into a `<style>` element, hence the inline styles.
const CONSOLE_CSP: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self'; \
    connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; \
    frame-ancestors 'none'";

/// Content-Security-Policy of the docs page: Redoc from this origin, its
/// styles inline, its search index in a `blob:` worker.
const DOCS_CSP: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self'; \
    connect-src 'self'; worker-src 'self' blob:; object-src 'none'; \
    base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

/// Hashed names under `assets/` never change content: cached for a year.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Everything else (index.html, vendor files) is revalidated on every use.
const NO_CACHE: &str = "no-cache";

/// Content types by extension; anything else is served as bytes to download.
const TYPES: &[(&str, &str)] = &[
    ("html", "text/html; charset=utf-8"),
    ("js", "text/javascript; charset=utf-8"),
    ("mjs", "text/javascript; charset=utf-8"),
    ("css", "text/css; charset=utf-8"),
    ("json", "application/json"),
    ("map", "application/json"),
    ("svg", "image/svg+xml"),
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("ico", "image/x-icon"),
    ("webp", "image/webp"),
    ("woff2", "font/woff2"),
    ("woff", "font/woff"),
    ("txt", "text/plain; charset=utf-8"),
];

fn content_type(path: &Path) -> &'static str {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    TYPES
        .iter()
        .find(|(e, _)| e.eq_ignore_ascii_case(ext))
        .map_or("application/octet-stream", |(_, t)| t)
}

/// The headers every console and docs answer carries (errors included).
fn security_headers(h: &mut HeaderMap, csp: &'static str) {
    let set = [
        ("content-security-policy", csp),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("cross-origin-opener-policy", "same-origin"),
    ];
    for (name, value) in set {
        h.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
}

/// Why a console path is not served.
#[derive(Debug, PartialEq, Eq)]
enum Refused {
    /// `..`, `.`, hidden names, bad escapes, separators inside a segment.
    BadPath,
}

/// Decodes `rest` (the path after `/console/`, still percent-encoded) into
/// its segments; an empty last segment (a trailing `/`) is dropped.
fn segments(rest: &str) -> Result<Vec<String>, Refused> {
    let mut out = Vec::new();
    let parts: Vec<&str> = rest.split('/').collect();
    for (i, raw) in parts.iter().enumerate() {
        if raw.is_empty() {
            if i + 1 == parts.len() {
                break;
            }
            return Err(Refused::BadPath);
        }
        let seg = percent_decode(raw).ok_or(Refused::BadPath)?;
        // INVARIANT: a segment that names no parent, no hidden file and no
        // separator cannot move the joined path out of the directory.
        if seg.starts_with('.') || seg.contains(['/', '\\', '\0']) || seg.contains(':') {
            return Err(Refused::BadPath);
        }
        out.push(seg);
    }
    Ok(out)
}

/// `%XX` decoding; `None` for a malformed escape or a result that is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A path that names a static file (a known extension, or under `assets/`
/// or `vendor/`) is a 404 when missing; any other is a client route.
fn is_file_path(segs: &[String]) -> bool {
    let under_files = matches!(
        segs.first().map(String::as_str),
        Some("assets") | Some("vendor")
    );
    let known_ext = segs.last().is_some_and(|s| {
        Path::new(s)
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| TYPES.iter().any(|(t, _)| t.eq_ignore_ascii_case(e)))
    });
    under_files || known_ext
}

/// The file `segs` names, if it is a regular file inside `root` after every
/// symlink is resolved.
async fn resolve(root: &Path, segs: &[String]) -> Option<PathBuf> {
    let mut path = root.to_path_buf();
    for s in segs {
        path.push(s);
    }
    let real = tokio::fs::canonicalize(&path).await.ok()?;
    if !real.starts_with(root) {
        tracing::warn!(path = %path.display(), "console: a path leading out of the console directory was refused");
        return None;
    }
    let meta = tokio::fs::metadata(&real).await.ok()?;
    meta.is_file().then_some(real)
}

async fn serve(State(state): State<AppState>, req: Request) -> Response {
    let rest = req.uri().path().strip_prefix(PREFIX).unwrap_or("");
    let mut resp = match answer(state.config.console_dir.as_deref(), rest).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    security_headers(resp.headers_mut(), CONSOLE_CSP);
    resp
}

async fn answer(dir: Option<&Path>, rest: &str) -> Result<Response, ApiError> {
    let Some(dir) = dir else {
        return Err(ApiError::NotFoundBecause(
            "the admin console is turned off (SENTINEL_CONSOLE_DIR is empty)",
        ));
    };
    let segs = segments(rest).map_err(|_| ApiError::RouteNotFound)?;
    let root = match tokio::fs::canonicalize(dir).await {
        Ok(r) => r,
        Err(_) => return Err(not_built(dir)),
    };
    if let Some(file) = resolve(&root, &segs).await {
        let cache = if segs.first().map(String::as_str) == Some("assets") {
            IMMUTABLE
        } else {
            NO_CACHE
        };
        return file_response(&file, cache).await;
    }
    if is_file_path(&segs) {
        return Err(ApiError::RouteNotFound);
    }
    // A client route (`/console/t/<tenant>/users`): the page routes it.
    match resolve(&root, &["index.html".to_owned()]).await {
        Some(index) => file_response(&index, NO_CACHE).await,
        None => Err(not_built(dir)),
    }
}

fn not_built(dir: &Path) -> ApiError {
    tracing::warn!(
        dir = %dir.display(),
        "console: no index.html in SENTINEL_CONSOLE_DIR; build it with `npm ci && npm run build` in console/"
    );
    ApiError::NotFoundBecause(
        "the admin console is not built or not installed: build it (`npm ci && npm run build` in console/) \
         or point SENTINEL_CONSOLE_DIR at the build",
    )
}

async fn file_response(file: &Path, cache: &'static str) -> Result<Response, ApiError> {
    let body = tokio::fs::read(file).await.map_err(ApiError::internal)?;
    Ok((
        StatusCode::OK,
        [
            (CONTENT_TYPE, HeaderValue::from_static(content_type(file))),
            (CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        body,
    )
        .into_response())
}

/// The Redoc page of `/api/v1/docs`, with Redoc from the console build.
pub fn docs_page() -> Response {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Sentinel admin API</title></head>\
         <body><redoc spec-url=\"/api/v1/openapi.json\"></redoc>\
         <script src=\"{REDOC_SCRIPT}\"></script>\
         <noscript>The machine-readable document is at <a href=\"/api/v1/openapi.json\">/api/v1/openapi.json</a>.</noscript>\
         </body></html>"
    );
    let mut resp = Html(html).into_response();
    security_headers(resp.headers_mut(), DOCS_CSP);
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static(NO_CACHE));
    resp
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn segments_refuse_what_could_leave_the_directory() {
        for bad in [
            "..",
            "../etc/passwd",
            "assets/../../x",
            "%2e%2e/x",
            "%2E%2E%2Fetc",
            "a%2fb",
            "a%5cb",
            ".env",
            "%00",
            "a//b",
            "%zz",
            "%c3",
            "c:",
        ] {
            assert_eq!(segments(bad), Err(Refused::BadPath), "{bad}");
        }
        assert_eq!(segments("").unwrap(), Vec::<String>::new());
        assert_eq!(segments("t/x/users/").unwrap(), ["t", "x", "users"]);
        assert_eq!(segments("a%20b.js").unwrap(), ["a b.js"]);
    }

    #[test]
    fn files_and_client_routes() {
        let s = |p: &str| segments(p).unwrap();
        assert!(is_file_path(&s("assets/index-abc.js")));
        assert!(is_file_path(&s("assets/x")));
        assert!(is_file_path(&s("vendor/redoc.standalone.js")));
        assert!(is_file_path(&s("favicon.ico")));
        assert!(!is_file_path(&s(
            "t/11111111-1111-1111-1111-111111111111/users"
        )));
        assert!(!is_file_path(&s("login")));
        assert_eq!(
            content_type(Path::new("a.JS")),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type(Path::new("a")), "application/octet-stream");
    }
}
