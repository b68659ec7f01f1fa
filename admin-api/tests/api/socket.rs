//! A few tests over a real socket: the server as `serve` runs it.

use crate::common::*;
use serde_json::{json, Value};

async fn spawn(t: &TestApp) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = sentinel_admin::app(t.state.clone());
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn health_login_jwks_openapi_metrics_over_http() {
    let t = TestApp::new().await;
    let base = spawn(&t).await;
    let c = reqwest::Client::new();
    let r = c.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["database"], "ok");

    let r = c
        .post(format!("{base}/api/v1/auth/login"))
        .header("x-request-id", "req-123")
        .json(
            &json!({"email": ROOT_EMAIL, "password": "wrong-Passw0rd", "tenant_code": "PLATFORM"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["x-request-id"], "req-123");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["request_id"], "req-123");
    assert_eq!(body["error"]["code"], "AUTH_INVALID");

    let r = c
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": ROOT_EMAIL, "password": ROOT_PASSWORD, "tenant_code": "PLATFORM"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let tok: Value = r.json().await.unwrap();
    let r = c
        .get(format!("{base}/api/v1/tenants"))
        .bearer_auth(tok["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let jwks: Value = c
        .get(format!("{base}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["kty"], "EC");
    let doc: Value = c
        .get(format!("{base}/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/api/v1/users"]["get"].is_object(), "{doc}");
    let docs = c.get(format!("{base}/api/v1/docs")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    let metrics = c
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("sentinel_admin_requests_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains("route=\"/api/v1/auth/login\""),
        "{metrics}"
    );
    // Oversized bodies.
    let big = "x".repeat(2 * 1024 * 1024);
    let r = c
        .post(format!("{base}/api/v1/auth/login"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "BODY_TOO_LARGE"
    );
}
