//! The OpenAPI document against the running app: every documented operation
//! is routed and guarded as documented, no other method is served on its
//! path, and the answers schemathesis found undocumented (issue 17, item
//! 11) are in the document with their real shape.

use crate::common::*;
use axum::http::StatusCode;
use serde_json::{json, Value};

/// The concrete path of a template: `{code}` a code, every other parameter
/// a random id.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|seg| match seg {
            "{code}" => "NO-SUCH-CODE".to_owned(),
            s if s.starts_with('{') => uuid::Uuid::new_v4().to_string(),
            s => s.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn responses<'a>(doc: &'a Value, method: &str, path: &str) -> &'a Value {
    let r = &doc["paths"][path][method.to_lowercase()]["responses"];
    assert!(r.is_object(), "{method} {path} is not documented");
    r
}

fn documents(doc: &Value, method: &str, path: &str, status: StatusCode) -> bool {
    responses(doc, method, path).get(status.as_str()).is_some()
}

#[tokio::test]
async fn every_documented_operation_is_routed_and_guarded_as_documented() {
    let t = TestApp::new().await;
    let doc = sentinel_admin::openapi::document();
    let mut checked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        let ops = ops.as_object().unwrap();
        for (method, op) in ops {
            let method = method.to_uppercase();
            let scope = op["x-required-scope"].as_str().unwrap();
            let (s, v) = t.request(&method, &concrete(path), None, None, &[]).await;
            if scope == "none" {
                // Routed: the fallback's 404 says `route not found`; a
                // documented 404 of the route itself says why (the
                // discovery document of an issuer that is not a URL).
                assert!(
                    s != StatusCode::NOT_FOUND || v["error"]["message"] != "route not found",
                    "{method} {path} is not routed: {v}"
                );
            } else {
                // Routed (the fallback would answer 404) and behind a credential.
                assert_error(s, &v, StatusCode::UNAUTHORIZED, "AUTH_REQUIRED");
            }
            assert!(
                documents(doc, &method, path, s),
                "{method} {path} answered {s} without credentials, not documented: {v}"
            );
            checked += 1;
        }
        // No method but the documented ones is served on the path.
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            if ops.contains_key(&method.to_lowercase()) {
                continue;
            }
            let (s, v) = t.request(method, &concrete(path), None, None, &[]).await;
            assert_error(s, &v, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND");
        }
    }
    assert!(checked > 80, "only {checked} operations");
}

#[tokio::test]
async fn the_answers_schemathesis_found_are_documented() {
    let t = TestApp::new().await;
    let doc = sentinel_admin::openapi::document();

    // 401 from the public credential endpoints.
    let (s, _) = t.login_full(ROOT_EMAIL, "Wrong-Passw0rd", "PLATFORM").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(documents(doc, "POST", "/api/v1/auth/login", s));
    let (s, _) = t
        .request(
            "POST",
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": "rt_nope"})),
            &[],
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(documents(doc, "POST", "/api/v1/auth/refresh", s));
    let (s, _) = t
        .request(
            "POST",
            "/api/v1/auth/token",
            None,
            None,
            &[(
                "x-api-key",
                "sk_nope0000_0000000000000000000000000000000000000000",
            )],
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(documents(doc, "POST", "/api/v1/auth/token", s));

    // 201 from sub-tenant creation.
    let root = t.root().await;
    let (s, v) = t
        .post(
            "/api/v1/tenants/11111111-1111-1111-1111-111111111111/sub-tenants",
            &root,
            json!({"code": "DOC-SUB", "name": "Doc Sub"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert!(documents(
        doc,
        "POST",
        "/api/v1/tenants/{id}/sub-tenants",
        s
    ));
    assert!(!documents(
        doc,
        "POST",
        "/api/v1/tenants/{id}/sub-tenants",
        StatusCode::OK
    ));

    // 404 from /permissions/check for a principal that does not exist.
    let alice = t.admin("TEST-001").await;
    let (s, v) = t
        .post(
            "/api/v1/permissions/check",
            &alice,
            json!({"user_id": uuid::Uuid::new_v4(), "resource_type": "vessel", "action": "read"}),
        )
        .await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND");
    assert!(documents(doc, "POST", "/api/v1/permissions/check", s));

    // The menu is an object with a list of items, each with its children.
    let (s, v) = t.get("/api/v1/navigation/menu", &alice).await;
    assert_eq!(s, StatusCode::OK);
    let items = v["items"].as_array().expect("items");
    assert!(!items.is_empty());
    assert!(items[0]["children"].is_array());
    let schema = &responses(doc, "GET", "/api/v1/navigation/menu")["200"]["content"]
        ["application/json"]["schema"];
    assert_eq!(schema["properties"]["items"]["type"], "array");
    let entry = &doc["components"]["schemas"]["MenuEntry"];
    for key in items[0].as_object().unwrap().keys() {
        assert!(
            entry["properties"].get(key).is_some(),
            "menu entry key `{key}` undocumented"
        );
    }

    // /metrics is Prometheus text, documented as such.
    let resp = {
        use tower::ServiceExt;
        let req = axum::http::Request::get("/metrics")
            .body(axum::body::Body::empty())
            .unwrap();
        t.app.clone().oneshot(req).await.unwrap()
    };
    let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/plain"), "{ct}");
    let content = responses(doc, "GET", "/metrics")["200"]["content"]
        .as_object()
        .unwrap();
    assert!(
        content.contains_key(&ct),
        "documented {content:?}, served {ct}"
    );
    assert!(!content.contains_key("application/json"));
}
