//! Hostile input is refused at the extractor (issue 17, item 6): a NUL
//! character anywhere in a JSON body, a query value or a path segment, and
//! a JSON body that is not an object, answer 422 in the SPEC error body on
//! every operation. Before the fix these reached PostgreSQL (`text` cannot
//! hold NUL: a 500) or were read as a struct's fields (`[null, null]` → 200).

use crate::common::*;
use axum::http::StatusCode;
use serde_json::{json, Value};

fn concrete(path: &str) -> String {
    path.split('/')
        .map(|seg| match seg {
            "{code}" => "TEST-001".to_owned(),
            s if s.starts_with('{') => uuid::Uuid::new_v4().to_string(),
            s => s.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Every documented operation that takes a JSON body.
fn body_operations() -> Vec<(String, String)> {
    let doc = sentinel_admin::openapi::document();
    let mut out = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            // JSON bodies only: a model upload's body is the file's bytes.
            if op["requestBody"]["content"]
                .get("application/json")
                .is_some()
            {
                out.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

#[tokio::test]
async fn a_nul_in_any_json_body_is_422_on_every_operation() {
    let t = TestApp::new().await;
    let root = t.root().await;
    let ops = body_operations();
    assert!(
        ops.len() >= 20,
        "only {} body operations documented",
        ops.len()
    );
    for (method, path) in &ops {
        let url = concrete(path);
        for body in [
            json!({"name": "a\u{0}b"}),
            json!({"attributes": {"k\u{0}": 1}}),
            json!({"scopes": ["role:read", "x\u{0}"]}),
        ] {
            let (s, v) = t
                .request(method, &url, Some(&root), Some(body.clone()), &[])
                .await;
            let d = assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
            assert!(d.to_string().contains("NUL"), "{method} {path} {body}: {v}");
        }
    }
}

#[tokio::test]
async fn realistic_writes_with_a_nul_are_422_and_store_nothing() {
    let t = TestApp::new().await;
    let admin = t.admin("TEST-001").await;
    // Positive control: the same body without the NUL is created.
    let ok =
        json!({"email": "clean@nordic.example", "name": "Clean", "password": "Str0ng-Passw0rd!x"});
    let (s, v) = t.post("/api/v1/users", &admin, ok).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let bad =
        json!({"email": "nul\u{0}@nordic.example", "name": "Nul", "password": "Str0ng-Passw0rd!x"});
    let (s, v) = t.post("/api/v1/users", &admin, bad).await;
    let d = assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    assert!(d.to_string().contains("email"), "{v}");
    let bad = json!({"name": "role\u{0}x"});
    let (s, v) = t.post("/api/v1/roles", &admin, bad).await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sentinel.users WHERE email LIKE 'nul%' \
         UNION ALL SELECT count(*) FROM sentinel.roles WHERE name LIKE 'role%x'",
    )
    .fetch_one(&t.db.owner)
    .await
    .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn login_with_a_nul_is_422_not_a_server_error() {
    let t = TestApp::new().await;
    for (email, code) in [
        ("alice\u{0}@nordic.example", "TEST-001"),
        (ALICE, "TEST\u{0}001"),
    ] {
        let (s, v) = t.login_full(email, DEMO_PASSWORD, code).await;
        assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    }
    // The real account is untouched by the probes (no failed-login count).
    t.login(ALICE, DEMO_PASSWORD, "TEST-001").await;
}

#[tokio::test]
async fn a_nul_in_a_query_or_path_is_422() {
    let t = TestApp::new().await;
    let root = t.root().await;
    let admin = t.admin("TEST-001").await;
    // Positive controls first: the same requests without the NUL answer.
    let (s, v) = t.get("/api/v1/users?email=ab", &admin).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = t.get("/api/v1/tenants/code/TEST-001", &root).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    for (path, token) in [
        ("/api/v1/users?email=a%00b", &admin),
        ("/api/v1/users?name=%00", &admin),
        ("/api/v1/tenants/code/a%00b", &root),
        ("/api/v1/roles?sort=name%00", &admin),
    ] {
        let (s, v) = t.get(path, token).await;
        let d = assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
        assert!(d.to_string().contains("NUL"), "{path}: {v}");
    }
}

#[tokio::test]
async fn a_body_that_is_not_an_object_is_422_and_changes_nothing() {
    let t = TestApp::new().await;
    let root = t.root().await;
    let (_, tenant) = t.get("/api/v1/tenants/code/TEST-002", &root).await;
    let id = tenant["id"].as_str().unwrap().to_owned();
    for body in [
        json!([null, null]),
        json!(["Renamed"]),
        json!("x"),
        json!(7),
        Value::Null,
    ] {
        let (s, v) = t
            .patch(&format!("/api/v1/tenants/{id}"), &root, body.clone())
            .await;
        assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    }
    let (_, after) = t.get("/api/v1/tenants/code/TEST-002", &root).await;
    assert_eq!(after, tenant);
    // Positive control: an object body is applied.
    let (s, v) = t
        .patch(
            &format!("/api/v1/tenants/{id}"),
            &root,
            json!({"name": "Pacific Renamed"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["name"], "Pacific Renamed");
}
