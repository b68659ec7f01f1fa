//! The admin console's files at `/console/` (admin-api/src/console.rs): the
//! page, client routes, assets and their cache rules, a missing asset, every
//! way out of the directory (`..`, encoded, backslashes, symlinks) refused,
//! a missing or turned-off build, and the docs page's local Redoc.

use crate::common::*;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

const SECRET: &str = "top-secret-outside-the-console";
const INDEX: &str = "<!doctype html><title>Sentinel console</title><div id=\"root\"></div>";
const ASSET: &str = "console.log('sentinel console');";

/// A temporary directory: `dist/` (a small console build) beside `secret.txt`
/// and `outside/`, which nothing under `/console/` may reach. Removed on drop.
struct Tree(PathBuf);

impl Tree {
    fn new() -> Tree {
        let root = std::env::temp_dir().join(format!(
            "sentinel-console-{}",
            uuid::Uuid::new_v4().simple()
        ));
        let dist = root.join("dist");
        std::fs::create_dir_all(dist.join("assets")).unwrap();
        std::fs::create_dir_all(dist.join("vendor")).unwrap();
        std::fs::create_dir_all(root.join("outside")).unwrap();
        std::fs::write(dist.join("index.html"), INDEX).unwrap();
        std::fs::write(dist.join("assets/index-AbC123.js"), ASSET).unwrap();
        std::fs::write(dist.join("assets/index-AbC123.css"), "body{}").unwrap();
        std::fs::write(dist.join("vendor/redoc.standalone.js"), "/* redoc */").unwrap();
        std::fs::write(root.join("secret.txt"), SECRET).unwrap();
        std::fs::write(root.join("outside/secret.js"), SECRET).unwrap();
        std::fs::write(dist.join(".env"), SECRET).unwrap();
        // Symlinks out of the directory: a file, and a directory under assets/.
        std::os::unix::fs::symlink(root.join("secret.txt"), dist.join("leak.txt")).unwrap();
        std::os::unix::fs::symlink(root.join("outside"), dist.join("assets/out")).unwrap();
        // A symlink that stays inside is followed.
        std::os::unix::fs::symlink(dist.join("assets/index-AbC123.js"), dist.join("inside.js"))
            .unwrap();
        Tree(root)
    }

    fn dist(&self) -> PathBuf {
        self.0.join("dist")
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn app_with(dir: Option<&Path>) -> TestApp {
    TestApp::with_config(sentinel_admin::config::Config {
        console_dir: dir.map(Path::to_path_buf),
        ..test_config()
    })
    .await
}

async fn get(app: &TestApp, method: &str, path: &str) -> (StatusCode, HeaderMap, String) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .body(Body::empty())
        .unwrap();
    let resp = app.app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn assert_security_headers(h: &HeaderMap, what: &str) {
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"), "{what}: {csp}");
    assert!(csp.contains("default-src 'self'"), "{what}: {csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    assert!(!csp.contains("http"), "{what}: no other host: {csp}");
    assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
    assert_eq!(h["x-frame-options"], "DENY", "{what}");
    assert_eq!(h["referrer-policy"], "no-referrer", "{what}");
}

/// A 404 in the SPEC error body; returns its message.
fn assert_not_found(status: StatusCode, h: &HeaderMap, body: &str, what: &str) -> String {
    assert_eq!(status, StatusCode::NOT_FOUND, "{what}: {body}");
    assert!(
        !body.contains(SECRET),
        "{what} leaked the file outside: {body}"
    );
    assert!(
        !body.contains("<!doctype"),
        "{what} answered the page: {body}"
    );
    assert!(
        h["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "{what}"
    );
    let v: Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["error"]["code"], "RESOURCE_NOT_FOUND", "{what}: {body}");
    assert!(v["request_id"].is_string(), "{what}");
    v["error"]["message"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_console_is_served_with_client_routes_assets_and_cache_rules() {
    let tree = Tree::new();
    let app = app_with(Some(&tree.dist())).await;

    let (status, h, body) = get(&app, "GET", "/console").await;
    assert_eq!(status, StatusCode::PERMANENT_REDIRECT, "{body}");
    assert_eq!(h["location"], "/console/");

    for path in [
        "/console/",
        "/console/login",
        "/console/t/11111111-1111-1111-1111-111111111111/users",
        "/console/t/11111111-1111-1111-1111-111111111111/users/",
        "/console/index.html",
    ] {
        let (status, h, body) = get(&app, "GET", path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_eq!(body, INDEX, "{path}");
        assert_eq!(h["content-type"], "text/html; charset=utf-8", "{path}");
        assert_eq!(h["cache-control"], "no-cache", "{path}");
        assert_security_headers(&h, path);
    }

    let (status, h, body) = get(&app, "GET", "/console/assets/index-AbC123.js").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, ASSET);
    assert_eq!(h["content-type"], "text/javascript; charset=utf-8");
    assert_eq!(h["cache-control"], "public, max-age=31536000, immutable");
    assert_security_headers(&h, "asset");
    let (_, h, _) = get(&app, "GET", "/console/assets/index-AbC123.css").await;
    assert_eq!(h["content-type"], "text/css; charset=utf-8");
    // Not hashed: revalidated.
    let (status, h, _) = get(&app, "GET", "/console/vendor/redoc.standalone.js").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h["cache-control"], "no-cache");
    // A symlink that stays inside the directory is followed.
    let (status, _, body) = get(&app, "GET", "/console/inside.js").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, ASSET));

    // HEAD: the headers, no body.
    let (status, h, body) = get(&app, "HEAD", "/console/assets/index-AbC123.js").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h["content-type"], "text/javascript; charset=utf-8");
    assert!(body.is_empty());

    // A missing asset is a 404, never the page (a browser would run HTML as script).
    for path in [
        "/console/assets/missing-123.js",
        "/console/assets/missing",
        "/console/vendor/nothing.js",
        "/console/favicon.ico",
        "/console/t/x/app.css",
    ] {
        let (status, h, body) = get(&app, "GET", path).await;
        assert_not_found(status, &h, &body, path);
        assert_security_headers(&h, path);
    }
    // Writes are not a thing here.
    let (status, h, body) = get(&app, "POST", "/console/").await;
    assert_not_found(status, &h, &body, "POST /console/");
}

#[tokio::test]
async fn no_path_leads_out_of_the_console_directory() {
    let tree = Tree::new();
    let app = app_with(Some(&tree.dist())).await;
    let attempts = [
        "/console/../secret.txt",
        "/console/assets/../../secret.txt",
        "/console/%2e%2e/secret.txt",
        "/console/%2E%2E/secret.txt",
        "/console/.%2e/secret.txt",
        "/console/%2e%2e%2fsecret.txt",
        "/console/..%2fsecret.txt",
        "/console/assets/..%2f..%2fsecret.txt",
        "/console/..%5csecret.txt",
        "/console/%252e%252e/secret.txt",
        "/console/%2e%2e/outside/secret.js",
        "/console/./../secret.txt",
        "/console//secret.txt",
        "/console/.env",
        "/console/%2eenv",
        "/console/secret.txt%00.js",
        // symlinks out of the directory
        "/console/leak.txt",
        "/console/assets/out/secret.js",
        "/console/assets/out/",
    ];
    for path in attempts {
        let (status, h, body) = get(&app, "GET", path).await;
        assert_not_found(status, &h, &body, path);
    }

    // The same over a real socket, bytes as sent (no client normalizes them).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = app.app.clone();
    let server = tokio::spawn(async move { axum::serve(listener, served).await });
    for path in [
        "/console/../secret.txt",
        "/console/%2e%2e/secret.txt",
        "/console/assets/out/secret.js",
        "/console/leak.txt",
    ] {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).await.unwrap();
        assert!(raw.starts_with("HTTP/1.1 404"), "{path}: {raw}");
        assert!(!raw.contains(SECRET), "{path}: {raw}");
    }
    server.abort();
}

#[tokio::test]
async fn a_missing_or_turned_off_console_says_so() {
    let tree = Tree::new();
    let missing = tree.0.join("not-built");
    let app = app_with(Some(&missing)).await;
    for path in [
        "/console/",
        "/console/t/x/users",
        "/console/assets/index-AbC123.js",
    ] {
        let (status, h, body) = get(&app, "GET", path).await;
        let message = assert_not_found(status, &h, &body, path);
        assert!(message.contains("not built"), "{path}: {message}");
        assert!(
            !message.contains("not-built"),
            "the directory is the operator's business: {message}"
        );
    }
    // A directory without index.html: assets are served, the page says it is not built.
    std::fs::create_dir_all(missing.join("assets")).unwrap();
    std::fs::write(missing.join("assets/a.js"), ASSET).unwrap();
    let (status, h, body) = get(&app, "GET", "/console/").await;
    assert!(assert_not_found(status, &h, &body, "no index").contains("not built"));
    let (status, _, _) = get(&app, "GET", "/console/assets/a.js").await;
    assert_eq!(status, StatusCode::OK);

    let off = app_with(None).await;
    let (status, h, body) = get(&off, "GET", "/console/").await;
    assert!(assert_not_found(status, &h, &body, "off").contains("turned off"));
    // The API itself does not care.
    let (status, _, _) = get(&off, "GET", "/healthz").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn the_docs_page_loads_redoc_from_this_origin() {
    let app = TestApp::new().await;
    let (status, h, body) = get(&app, "GET", "/api/v1/docs").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("<script src=\"/console/vendor/redoc.standalone.js\">"),
        "{body}"
    );
    assert!(
        !body.contains("http://") && !body.contains("https://") && !body.contains("//cdn"),
        "{body}"
    );
    assert_security_headers(&h, "docs");
    assert!(h["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("worker-src 'self' blob:"));
}
