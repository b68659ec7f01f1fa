//! Users: CRUD, validation, passwords, bulk, effective permissions; service accounts.

use crate::common::*;
use axum::http::StatusCode;
use serde_json::json;

#[tokio::test]
async fn user_crud_and_passwords() {
    let t = TestApp::new().await;
    let admin = t.admin("TEST-001").await;
    let (_, roles) = t.get("/api/v1/roles?name=viewer", &admin).await;
    let viewer_role = roles["items"][0]["id"].as_str().unwrap().to_owned();
    let (s, u) = t
        .post(
            "/api/v1/users",
            &admin,
            json!({"email": "New.User@Test-001.example.com", "name": "New User", "password": "Start-Passw0rd",
                   "attributes": {"department": "ops"}, "role_ids": [viewer_role]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{u}");
    assert_eq!(u["email"], "new.user@test-001.example.com");
    assert!(u.get("password_hash").is_none());
    let id = u["id"].as_str().unwrap().to_owned();
    let (s, d) = t.get(&format!("/api/v1/users/{id}"), &admin).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(d["roles"][0]["name"], "viewer");

    let (s, p) = t
        .get(&format!("/api/v1/users/{id}/permissions"), &admin)
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    let names: Vec<&str> = p["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"vessel-read"), "{names:?}");

    let (s, u2) = t
        .patch(
            &format!("/api/v1/users/{id}"),
            &admin,
            json!({"name": "Renamed", "attributes": {"department": "fleet"}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{u2}");
    assert_eq!(u2["name"], "Renamed");

    // The user changes their own password (current one needed).
    let tok = t
        .login(
            "new.user@test-001.example.com",
            "Start-Passw0rd",
            "TEST-001",
        )
        .await;
    let (s, v) = t
        .post(
            &format!("/api/v1/users/{id}/change-password"),
            &tok,
            json!({"new_password": "Next-Passw0rd"}),
        )
        .await;
    let d = assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    assert!(d["current_password"].is_array());
    let (s, v) = t
        .post(
            &format!("/api/v1/users/{id}/change-password"),
            &tok,
            json!({"current_password": "Wrong-Passw0rd", "new_password": "Next-Passw0rd"}),
        )
        .await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    let (s, v) = t
        .post(
            &format!("/api/v1/users/{id}/change-password"),
            &tok,
            json!({"current_password": "Start-Passw0rd", "new_password": "weak"}),
        )
        .await;
    let d = assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    assert!(d["new_password"].as_array().unwrap().len() >= 2, "{d}");
    let (s, _) = t
        .post(
            &format!("/api/v1/users/{id}/change-password"),
            &tok,
            json!({"current_password": "Start-Passw0rd", "new_password": "Next-Passw0rd"}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    t.login("new.user@test-001.example.com", "Next-Passw0rd", "TEST-001")
        .await;
    // Admin reset.
    let (s, _) = t
        .post(
            &format!("/api/v1/users/{id}/reset-password"),
            &admin,
            json!({"new_password": "Reset-Passw0rd"}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    t.login(
        "new.user@test-001.example.com",
        "Reset-Passw0rd",
        "TEST-001",
    )
    .await;
    // A plain user cannot list users.
    let (s, v) = t.get("/api/v1/users", &tok).await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "PERMISSION_DENIED");

    let (s, _) = t.delete(&format!("/api/v1/users/{id}"), &admin).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) = t.get(&format!("/api/v1/users/{id}"), &admin).await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND");
}

#[tokio::test]
async fn user_validation_errors() {
    let t = TestApp::new().await;
    let admin = t.admin("TEST-001").await;
    let (s, v) = t
        .post(
            "/api/v1/users",
            &admin,
            json!({"email": "not-an-email", "password": "short", "attributes": "x"}),
        )
        .await;
    let d = assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    for f in ["email", "password", "attributes"] {
        assert!(d[f].is_array(), "{f}: {d}");
    }
    let (s, v) = t
        .post("/api/v1/users", &admin, json!({"email": VICTOR}))
        .await;
    let d = assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    assert!(
        d["email"][0].as_str().unwrap().contains("already exists"),
        "{d}"
    );
    let (s, v) = t.post("/api/v1/users", &admin, json!({"email": "a@b.example.com", "role_ids": ["44444444-4444-4444-4444-444444444444"]})).await;
    let d = assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    assert!(d["role_id"].is_array(), "{d}");
    let (s, v) = t.get("/api/v1/users?is_active=maybe", &admin).await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    let (s, v) = t
        .post(
            "/api/v1/users/bulk",
            &admin,
            json!({"action": "explode", "user_ids": []}),
        )
        .await;
    let d = assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    assert!(d["action"].is_array() && d["user_ids"].is_array(), "{d}");
}

#[tokio::test]
async fn bulk_operations_report_per_user() {
    let t = TestApp::new().await;
    let admin = t.admin("TEST-001").await;
    let (_, list) = t.get("/api/v1/users?email=victor@", &admin).await;
    let viewer = list["items"][0]["id"].as_str().unwrap().to_owned();
    let other_tenant_user = {
        let a2 = t.admin("TEST-002").await;
        let (_, l) = t.get("/api/v1/users?email=pia@", &a2).await;
        l["items"][0]["id"].as_str().unwrap().to_owned()
    };
    let (s, v) = t
        .post(
            "/api/v1/users/bulk",
            &admin,
            json!({"action": "deactivate", "user_ids": [viewer, other_tenant_user]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["results"][0]["status"], "ok");
    assert_eq!(v["results"][1]["status"], "not_found");
    let (s, v) = t.login_full(VICTOR, DEMO_PASSWORD, "TEST-001").await;
    assert_error(s, &v, StatusCode::UNAUTHORIZED, "AUTH_INVALID");
    let (_, v) = t
        .post(
            "/api/v1/users/bulk",
            &admin,
            json!({"action": "activate", "user_ids": [viewer]}),
        )
        .await;
    assert_eq!(v["results"][0]["status"], "ok");
    t.login(VICTOR, DEMO_PASSWORD, "TEST-001").await;
}

#[tokio::test]
async fn service_account_crud_and_validation() {
    let t = TestApp::new().await;
    let admin = t.admin("TEST-001").await;
    let (s, v) = t
        .post(
            "/api/v1/service-accounts",
            &admin,
            json!({"name": "", "expires_in_days": -1}),
        )
        .await;
    let d = assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    assert!(
        d["name"].is_array() && d["expires_in_days"].is_array(),
        "{d}"
    );
    let (s, v) = t
        .post(
            "/api/v1/service-accounts",
            &admin,
            json!({"name": "fleet-sync"}),
        )
        .await;
    let d = assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    assert!(d["name"].is_array(), "{d}");
    let (s, sa) = t
        .post(
            "/api/v1/service-accounts",
            &admin,
            json!({"name": "etl", "expires_in_days": 30, "attributes": {"system": "etl"}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{sa}");
    let id = sa["id"].as_str().unwrap().to_owned();
    let (s, l) = t.get("/api/v1/service-accounts?name=etl", &admin).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(l["items"].as_array().unwrap().len(), 1);
    // Service accounts are not users.
    let (s, _) = t.get(&format!("/api/v1/users/{id}"), &admin).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = t
        .patch(
            &format!("/api/v1/service-accounts/{id}"),
            &admin,
            json!({"is_active": false}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, v) = t
        .get(&format!("/api/v1/service-accounts/{id}/validate"), &admin)
        .await;
    assert_eq!(v["valid"], false);
    let key = sa["api_key"].as_str().unwrap();
    let (s, v) = t
        .request(
            "POST",
            "/api/v1/auth/token",
            None,
            Some(json!({"api_key": key})),
            &[],
        )
        .await;
    assert_error(s, &v, StatusCode::UNAUTHORIZED, "AUTH_INVALID");
    let (s, _) = t
        .delete(&format!("/api/v1/service-accounts/{id}"), &admin)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = t
        .get(&format!("/api/v1/service-accounts/{id}"), &admin)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}
