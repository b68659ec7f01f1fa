//! Password policy (issue 17, item 12): a password from the shipped list of
//! common (breached) passwords is refused even when it has every character
//! class (NIST SP 800-63B), wherever a password is set.

use crate::common::*;
use axum::http::StatusCode;
use serde_json::{json, Value};

/// In the list (as `password1234`) and has upper, lower and digits.
const COMMON: &str = "PassWord1234";
/// Not in the list: random, with every class.
const STRONG: &str = "vT8-qoplx-Wumbra";

fn names_common(s: StatusCode, v: &Value, field: &str) {
    let d = assert_error(s, v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    let msgs = d[field]
        .as_array()
        .unwrap_or_else(|| panic!("{field} not named: {v}"));
    assert!(
        msgs.iter().any(|m| m.as_str().unwrap().contains("common")),
        "{v}"
    );
}

#[tokio::test]
async fn a_common_password_is_refused_wherever_a_password_is_set() {
    let t = TestApp::new().await;
    let admin = t.admin("TEST-001").await;
    let user = |pw: &str| json!({"email": "pw.user@test-001.example.com", "name": "Pw User", "password": pw});
    let (s, v) = t.post("/api/v1/users", &admin, user(COMMON)).await;
    names_common(s, &v, "password");
    // Positive control: a strong one passes.
    let (s, u) = t.post("/api/v1/users", &admin, user(STRONG)).await;
    assert_eq!(s, StatusCode::CREATED, "{u}");
    let id = u["id"].as_str().unwrap().to_owned();

    let (s, v) = t
        .post(
            &format!("/api/v1/users/{id}/reset-password"),
            &admin,
            json!({"new_password": COMMON}),
        )
        .await;
    names_common(s, &v, "new_password");

    let own = t
        .login("pw.user@test-001.example.com", STRONG, "TEST-001")
        .await;
    let (s, v) = t
        .post(
            &format!("/api/v1/users/{id}/change-password"),
            &own,
            json!({"current_password": STRONG, "new_password": COMMON}),
        )
        .await;
    names_common(s, &v, "new_password");
    let (s, v) = t
        .post(
            &format!("/api/v1/users/{id}/change-password"),
            &own,
            json!({"current_password": STRONG, "new_password": "Kx4-brindle-Oomph"}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
}

#[tokio::test]
async fn bootstrap_refuses_a_common_password() {
    let db = TestDb::new().await;
    let cfg = test_config();
    let Err(err) = sentinel_admin::seed::bootstrap(&db.owner, &cfg, ROOT_EMAIL, COMMON).await
    else {
        panic!("bootstrap took a common password");
    };
    assert!(err.to_string().contains("common"), "{err}");
    assert!(
        sentinel_admin::seed::bootstrap(&db.owner, &cfg, ROOT_EMAIL, STRONG)
            .await
            .is_ok(),
        "positive control"
    );
}
