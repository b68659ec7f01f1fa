//! Login abuse (issue 17, item 9): failed-login backoff per (account, client
//! address), locked answers that equal wrong-password answers, and the
//! per-address rate limit of the auth endpoints. The client address comes
//! from axum's `ConnectInfo`, set here as `serve` sets it.

use crate::common::*;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::net::SocketAddr;
use tower::ServiceExt;

const ATTACKER: &str = "203.0.113.9:40000";
const OWNER: &str = "198.51.100.7:50000";

/// One request from peer `from`, with a fixed request id so that whole
/// answers can be compared byte for byte.
async fn call(
    t: &TestApp,
    from: &str,
    path: &str,
    body: Value,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, Bytes) {
    let mut b = Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", "application/json")
        .header("x-request-id", "fixed-id");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let mut req = b
        .body(Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap();
    let peer: SocketAddr = from.parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(peer));
    let resp = t.app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, bytes)
}

async fn login(
    t: &TestApp,
    from: &str,
    email: &str,
    password: &str,
    code: &str,
) -> (StatusCode, HeaderMap, Bytes) {
    call(
        t,
        from,
        "/api/v1/auth/login",
        json!({"email": email, "password": password, "tenant_code": code}),
        &[],
    )
    .await
}

/// The parts of an answer a client can see, but the date.
fn seen(a: &(StatusCode, HeaderMap, Bytes)) -> (StatusCode, Vec<(String, String)>, Bytes) {
    let mut h: Vec<(String, String)> =
        a.1.iter()
            .filter(|(k, _)| *k != "date")
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
    h.sort();
    (a.0, h, a.2.clone())
}

#[tokio::test]
async fn an_attacker_address_does_not_lock_the_owner_out() {
    let t = TestApp::new().await;
    // test_config: 3 failures in a row start the backoff.
    for _ in 0..6 {
        let r = login(&t, ATTACKER, ROOT_EMAIL, "Wrong-Passw0rd1", "PLATFORM").await;
        assert_eq!(r.0, StatusCode::UNAUTHORIZED);
    }
    // The attacker's address is held back, even with the right password...
    let r = login(&t, ATTACKER, ROOT_EMAIL, ROOT_PASSWORD, "PLATFORM").await;
    assert_eq!(r.0, StatusCode::UNAUTHORIZED, "{:?}", r.2);
    // ...while the owner, from its own address, logs in.
    let r = login(&t, OWNER, ROOT_EMAIL, ROOT_PASSWORD, "PLATFORM").await;
    assert_eq!(r.0, StatusCode::OK, "{:?}", r.2);
    // And a few failures of the owner's do not hold the owner back.
    let r = login(&t, OWNER, ROOT_EMAIL, "Wrong-Passw0rd1", "PLATFORM").await;
    assert_eq!(r.0, StatusCode::UNAUTHORIZED);
    let r = login(&t, OWNER, ROOT_EMAIL, ROOT_PASSWORD, "PLATFORM").await;
    assert_eq!(r.0, StatusCode::OK, "{:?}", r.2);
}

#[tokio::test]
async fn a_locked_account_answers_like_a_wrong_password() {
    let t = TestApp::new().await;
    let wrong = seen(&login(&t, OWNER, VICTOR, "Wrong-Passw0rd1", "TEST-001").await);
    assert_eq!(wrong.0, StatusCode::UNAUTHORIZED);
    let body: Value = serde_json::from_slice(&wrong.2).unwrap();
    assert_eq!(body["error"]["code"], "AUTH_INVALID");

    // Held back by the backoff (the right password, from the attacker's address).
    for _ in 0..3 {
        login(&t, ATTACKER, VICTOR, "Wrong-Passw0rd1", "TEST-001").await;
    }
    let held = seen(&login(&t, ATTACKER, VICTOR, DEMO_PASSWORD, "TEST-001").await);
    assert_eq!(held, wrong, "held back");
    // Locked by an administrator (LENA in the demo seed), the right password.
    let locked = seen(&login(&t, OWNER, LENA, DEMO_PASSWORD, "TEST-001").await);
    assert_eq!(locked, wrong, "admin lock");
    // Positive control: the owner's address is not held back.
    let ok = login(&t, OWNER, VICTOR, DEMO_PASSWORD, "TEST-001").await;
    assert_eq!(ok.0, StatusCode::OK);
}

#[tokio::test]
async fn an_unknown_email_answers_like_a_wrong_password_every_time() {
    let t = TestApp::new().await;
    // More tries than the backoff threshold: a real account must not start
    // answering differently from one that does not exist.
    for i in 0..6 {
        let known = seen(&login(&t, ATTACKER, OLGA, "Wrong-Passw0rd1", "TEST-001").await);
        let unknown = seen(
            &login(
                &t,
                ATTACKER,
                "nobody@nordic.example",
                "Wrong-Passw0rd1",
                "TEST-001",
            )
            .await,
        );
        assert_eq!(known, unknown, "try {i}");
        assert_eq!(known.0, StatusCode::UNAUTHORIZED);
    }
    let ok = login(&t, OWNER, OLGA, DEMO_PASSWORD, "TEST-001").await;
    assert_eq!(ok.0, StatusCode::OK, "positive control");
}

fn limited_config() -> sentinel_admin::config::Config {
    sentinel_admin::config::Config {
        auth_rate_per_minute: 1,
        auth_rate_burst: 3,
        trusted_proxies: sentinel_admin::throttle::parse_trusted("10.0.0.1").unwrap(),
        ..test_config()
    }
}

fn assert_429(r: &(StatusCode, HeaderMap, Bytes)) {
    assert_eq!(r.0, StatusCode::TOO_MANY_REQUESTS, "{:?}", r.2);
    let body: Value = serde_json::from_slice(&r.2).unwrap();
    assert_error(r.0, &body, StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED");
    let after: u64 = r.1["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&after), "Retry-After {after}");
}

#[tokio::test]
async fn the_auth_endpoints_answer_429_past_the_per_address_limit() {
    let t = TestApp::with_config(limited_config()).await;
    for _ in 0..3 {
        let r = login(&t, ATTACKER, VICTOR, "Wrong-Passw0rd1", "TEST-001").await;
        assert_eq!(r.0, StatusCode::UNAUTHORIZED);
    }
    assert_429(&login(&t, ATTACKER, VICTOR, DEMO_PASSWORD, "TEST-001").await);
    // The same budget covers refresh and the API-key exchange.
    assert_429(
        &call(
            &t,
            ATTACKER,
            "/api/v1/auth/refresh",
            json!({"refresh_token": "x"}),
            &[],
        )
        .await,
    );
    assert_429(
        &call(
            &t,
            ATTACKER,
            "/api/v1/auth/token",
            json!({"api_key": "x"}),
            &[],
        )
        .await,
    );
    // Another address is not affected.
    let r = login(&t, OWNER, VICTOR, DEMO_PASSWORD, "TEST-001").await;
    assert_eq!(r.0, StatusCode::OK, "{:?}", r.2);
}

#[tokio::test]
async fn x_forwarded_for_counts_only_from_a_trusted_proxy() {
    let t = TestApp::with_config(limited_config()).await;
    // An untrusted peer rotating X-Forwarded-For is still one client.
    for i in 0..3 {
        let xff = format!("192.0.2.{i}");
        let r = call(
            &t,
            ATTACKER,
            "/api/v1/auth/login",
            json!({"email": VICTOR, "password": "Wrong-Passw0rd1", "tenant_code": "TEST-001"}),
            &[("x-forwarded-for", &xff)],
        )
        .await;
        assert_eq!(r.0, StatusCode::UNAUTHORIZED);
    }
    let r = call(
        &t,
        ATTACKER,
        "/api/v1/auth/login",
        json!({"email": VICTOR, "password": DEMO_PASSWORD, "tenant_code": "TEST-001"}),
        &[("x-forwarded-for", "192.0.2.99")],
    )
    .await;
    assert_429(&r);
    // Through the trusted proxy, each forwarded client has its own budget.
    for i in 0..5 {
        let xff = format!("192.0.2.{i}, 10.0.0.1");
        let r = call(
            &t,
            "10.0.0.1:1234",
            "/api/v1/auth/login",
            json!({"email": VICTOR, "password": DEMO_PASSWORD, "tenant_code": "TEST-001"}),
            &[("x-forwarded-for", &xff)],
        )
        .await;
        assert_eq!(r.0, StatusCode::OK, "client {i}: {:?}", r.2);
    }
}

/// The real binary: `serve` records each connection's peer address, so two
/// loopback addresses have two budgets, and a client's `X-Forwarded-For` is
/// not believed (no trusted proxy configured).
#[tokio::test]
async fn the_real_server_limits_per_peer_address() {
    let t = TestApp::new().await;
    let (_, api) = crate::binary::urls(&t.db.name);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let listen = format!("127.0.0.1:{port}");
    let mut child = crate::binary::admin_cmd(&api)
        .args(["serve", "--listen", &listen])
        .env("SENTINEL_AUTH_RATE_PER_MINUTE", "1")
        .env("SENTINEL_AUTH_RATE_BURST", "2")
        .env("SENTINEL_CONSOLE_DIR", "")
        .spawn()
        .unwrap();
    let base = format!("http://{listen}");
    let from = |ip: [u8; 4]| {
        reqwest::Client::builder()
            .local_address(Some(std::net::IpAddr::from(ip)))
            .build()
            .unwrap()
    };
    let (a, b) = (from([127, 0, 0, 1]), from([127, 0, 0, 2]));
    let mut up = false;
    for _ in 0..100 {
        if let Ok(r) = a.get(format!("{base}/healthz")).send().await {
            up = r.status() == 200;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(up, "server did not come up");
    let login = |c: &reqwest::Client, pw: &str, xff: &str| {
        c.post(format!("{base}/api/v1/auth/login"))
            .header("x-forwarded-for", xff)
            .json(&json!({"email": VICTOR, "password": pw, "tenant_code": "TEST-001"}))
            .send()
    };
    for i in 0..2 {
        let r = login(&a, "Wrong-Passw0rd1", &format!("192.0.2.{i}"))
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let r = login(&a, DEMO_PASSWORD, "192.0.2.77").await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "RATE_LIMITED", "{body}");
    // Another peer address has its own budget.
    let r = login(&b, DEMO_PASSWORD, "192.0.2.0").await.unwrap();
    assert_eq!(r.status(), 200);
    child.kill().await.unwrap();
}

/// `sentinel-admin serve` on a free loopback port (killed on drop), and its base URL.
async fn replica(api: &str, env: &[(&str, &str)]) -> (tokio::process::Child, String) {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let listen = format!("127.0.0.1:{port}");
    let mut cmd = crate::binary::admin_cmd(api);
    cmd.args(["serve", "--listen", &listen])
        .env("SENTINEL_CONSOLE_DIR", "");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().unwrap();
    let base = format!("http://{listen}");
    for _ in 0..200 {
        if let Ok(r) = reqwest::get(format!("{base}/healthz")).await {
            if r.status() == 200 {
                return (child, base);
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("replica on {listen} did not come up");
}

/// Two replicas of the real binary on one database: the failures counted by
/// one hold the (account, address) pair back on the other, as they would
/// behind a load balancer spreading an attacker's guesses.
#[tokio::test]
async fn failures_on_one_replica_hold_the_pair_back_on_another() {
    let t = TestApp::new().await;
    let (_, api) = crate::binary::urls(&t.db.name);
    let env = [
        ("SENTINEL_LOCKOUT_THRESHOLD", "3"),
        ("SENTINEL_AUTH_RATE_PER_MINUTE", "100000"),
        ("SENTINEL_AUTH_RATE_BURST", "100000"),
    ];
    let (_a, a) = replica(&api, &env).await;
    let (_b, b) = replica(&api, &env).await;
    let from = |ip: [u8; 4]| {
        reqwest::Client::builder()
            .local_address(Some(std::net::IpAddr::from(ip)))
            .build()
            .unwrap()
    };
    let (attacker, other) = (from([127, 0, 0, 1]), from([127, 0, 0, 3]));
    let login = |c: &reqwest::Client, base: &str, pw: &str| {
        c.post(format!("{base}/api/v1/auth/login"))
            .json(&json!({"email": VICTOR, "password": pw, "tenant_code": "TEST-001"}))
            .send()
    };
    // Two failures on A, one on B: three for the pair, the threshold.
    for base in [&a, &a, &b] {
        let r = login(&attacker, base, "Wrong-Passw0rd1").await.unwrap();
        assert_eq!(r.status(), 401);
    }
    // Held back on both replicas, even with the right password (A alone has
    // seen only two failures: per-replica counters would let it in).
    for base in [&a, &b] {
        let r = login(&attacker, base, DEMO_PASSWORD).await.unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, 401, "{base}: {body}");
        assert_eq!(body["error"]["code"], "AUTH_INVALID", "{body}");
    }
    // The control: the password is right, and another address is not held back.
    let r = login(&other, &a, DEMO_PASSWORD).await.unwrap();
    assert_eq!(r.status(), 200);
    // The pair's row is in the database, keyed without the email in clear.
    let mut tx = sentinel_admin::db::begin_platform(&t.db.platform)
        .await
        .unwrap();
    let rows: Vec<(String, i32)> =
        sqlx::query_as("SELECT address, failures FROM sentinel.login_failures ORDER BY address")
            .fetch_all(&mut *tx)
            .await
            .unwrap();
    assert_eq!(rows, vec![("127.0.0.1".to_owned(), 3)]);
}
