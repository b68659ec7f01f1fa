//! Permissions: write-time validation by the shared compiler, and decisions by
//! the shared evaluator (`/permissions/check`, `/navigation/menu`).

use crate::common::*;
use axum::http::StatusCode;
use serde_json::json;

#[tokio::test]
async fn permission_crud_and_validation() {
    let t = TestApp::new().await;
    let admin = t.admin("TEST-001").await;
    let (s, p) = t
        .post(
            "/api/v1/permissions",
            &admin,
            json!({"name": "berth-office-hours", "resource_type": "port_call", "resource_pattern": "pc-*",
                   "actions": ["update"], "effect": "allow", "tenant_scope": "own_and_children",
                   "conditions": [{"type": "client_ip", "cidrs": ["10.0.0.0/8"]}, {"type": "mfa"}],
                   "field_rules": {"core": {"berth": "write"}}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let id = p["id"].as_str().unwrap().to_owned();
    let (s, got) = t.get(&format!("/api/v1/permissions/{id}"), &admin).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got["conditions"][0]["type"], "client_ip");
    let (s, up) = t
        .patch(
            &format!("/api/v1/permissions/{id}"),
            &admin,
            json!({"actions": ["update", "approve"], "is_active": false}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{up}");
    assert_eq!(up["actions"], json!(["update", "approve"]));
    let (_, list) = t
        .get(
            "/api/v1/permissions?resource_type=port_call&is_active=false",
            &admin,
        )
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);

    // Every problem at once, each on its field.
    let (s, v) = t
        .post(
            "/api/v1/permissions",
            &admin,
            json!({"name": "", "resource_type": "Bad Type", "actions": [], "effect": "maybe",
                   "conditions": [{"type": "client_ip", "cidrs": ["not-a-cidr"]}],
                   "field_rules": {"core": {"x": "sometimes"}}, "tenant_scope": "galaxy"}),
        )
        .await;
    let d = assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    for f in [
        "name",
        "resource_type",
        "actions",
        "effect",
        "field_rules",
        "tenant_scope",
    ] {
        assert!(d[f].is_array(), "{f}: {d}");
    }
    // A syntactically fine condition the compiler rejects.
    let (s, v) = t
        .post(
            "/api/v1/permissions",
            &admin,
            json!({"name": "bad-cidr", "resource_type": "vessel", "actions": ["read"],
                   "conditions": [{"type": "client_ip", "cidrs": ["300.1.1.1/8"]}]}),
        )
        .await;
    let d = assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    assert!(d["conditions"].is_array(), "{d}");
    let (s, v) = t
        .post(
            "/api/v1/permissions",
            &admin,
            json!({"name": "vessel-read", "resource_type": "vessel", "actions": ["read"]}),
        )
        .await;
    let d = assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    assert!(d["name"].is_array(), "{d}");
    let (s, _) = t.delete(&format!("/api/v1/permissions/{id}"), &admin).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = t.delete(&format!("/api/v1/permissions/{id}"), &admin).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn check_uses_the_shared_evaluator() {
    let t = TestApp::new().await;
    let alice = t.admin("TEST-001").await;
    let victor = t.nordic(VICTOR).await;
    let olga = t.nordic(OLGA).await;
    // (caller, request, allowed, reason): the gateway demo policy, decided by the shared evaluator.
    let table = [
        (
            &victor,
            json!({"resource_type": "vessel", "resource_id": "v-a1", "action": "read"}),
            true,
            "allowed",
        ),
        (
            &victor,
            json!({"resource_type": "vessel", "resource_id": "v-a1", "action": "update"}),
            false,
            "no_matching_permission",
        ),
        (
            &olga,
            json!({"resource_type": "vessel", "resource_id": "v-a1", "action": "update"}),
            true,
            "allowed",
        ),
        (
            &alice,
            json!({"resource_type": "vessel", "resource_id": "v-a2", "action": "delete"}),
            true,
            "allowed",
        ),
        (
            &alice,
            json!({"resource_type": "vessel", "resource_id": "v-a1", "action": "delete"}),
            false,
            "explicit_deny",
        ),
        (
            &olga,
            json!({"resource_type": "vessel", "action": "read", "target_tenant_id": "22222222-2222-2222-2222-222222222222"}),
            false,
            "tenant_out_of_scope",
        ),
        (
            &alice,
            json!({"resource_type": "port_call", "action": "read", "target_tenant_id": "33333333-3333-3333-3333-333333333333"}),
            true,
            "allowed",
        ),
        (
            &alice,
            json!({"resource_type": "port_call", "resource_id": "pc-a1", "action": "update", "context": {"client_ip": "10.1.2.3"}}),
            true,
            "allowed",
        ),
        (
            &alice,
            json!({"resource_type": "port_call", "resource_id": "pc-a1", "action": "update", "context": {"client_ip": "192.0.2.1"}}),
            false,
            "condition_not_met",
        ),
        (
            &victor,
            json!({"resource_type": "port_call", "resource_id": "pc-a1", "action": "update", "context": {"client_ip": "10.1.2.3"}}),
            false,
            "condition_not_met",
        ),
        (
            &victor,
            json!({"resource_type": "crew", "action": "read"}),
            false,
            "no_matching_permission",
        ),
    ];
    for (tok, req, allowed, reason) in table {
        let (s, v) = t.post("/api/v1/permissions/check", tok, req.clone()).await;
        assert_eq!(s, StatusCode::OK, "{req}: {v}");
        assert_eq!(v["allowed"], allowed, "{req}: {v}");
        assert_eq!(v["reason"], reason, "{req}: {v}");
        if allowed {
            assert!(!v["rule_ids"].as_array().unwrap().is_empty(), "{v}");
        }
    }
    let (_, v) = t
        .post(
            "/api/v1/permissions/check",
            &victor,
            json!({"resource_type": "vessel", "resource_id": "v-a1", "action": "read"}),
        )
        .await;
    assert_eq!(
        v["field_rules"]["platform_dynamic"]["crew_count"], "masked",
        "{v}"
    );
    assert_eq!(
        v["field_rules"]["tenant_specific"]["crew_salary_budget"], "hidden",
        "{v}"
    );
    assert_eq!(v["field_rules"]["core"]["*"], "read", "{v}");

    // Checking someone else needs permission:read; the admin has it.
    let (_, me) = t.get("/api/v1/auth/me", &victor).await;
    let victor_id = me["user_id"].as_str().unwrap();
    let (s, v) = t
        .post(
            "/api/v1/permissions/check",
            &alice,
            json!({"user_id": victor_id, "resource_type": "vessel", "action": "read"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["allowed"], true);
    let (s, v) = t
        .post("/api/v1/permissions/check", &victor, json!({"user_id": "aaaaaaaa-0000-4000-8000-000000000005", "resource_type": "vessel", "action": "read"}))
        .await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    // The locked account is decided as locked; another tenant's principal is a missing one.
    let (s, v) = t
        .post("/api/v1/permissions/check", &alice, json!({"user_id": "aaaaaaaa-0000-4000-8000-000000000004", "resource_type": "vessel", "action": "read"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["reason"], "account_locked", "{v}");
    let (s, v) = t
        .post("/api/v1/permissions/check", &alice, json!({"user_id": "bbbbbbbb-0000-4000-8000-000000000001", "resource_type": "vessel", "action": "read"}))
        .await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND");
    let (s, v) = t
        .post(
            "/api/v1/permissions/check",
            &alice,
            json!({"resource_type": "", "action": ""}),
        )
        .await;
    let d = assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    assert!(d["resource_type"].is_array() && d["action"].is_array());
}

#[tokio::test]
async fn navigation_menu_is_filtered_by_permission() {
    let t = TestApp::new().await;
    let victor = t.nordic(VICTOR).await;
    let alice = t.admin("TEST-001").await;
    let axel = t.nordic(AXEL).await;
    let labels = |v: &serde_json::Value| -> Vec<String> {
        let mut out = Vec::new();
        fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
            for i in v.as_array().unwrap() {
                out.push(i["label"].as_str().unwrap().to_owned());
                walk(&i["children"], out);
            }
        }
        walk(&v["items"], &mut out);
        out
    };
    let (s, m) = t.get("/api/v1/navigation/menu", &victor).await;
    assert_eq!(s, StatusCode::OK, "{m}");
    let l = labels(&m);
    assert!(
        l.contains(&"Vessels".to_owned()) && l.contains(&"Port calls".to_owned()),
        "{l:?}"
    );
    assert!(!l.contains(&"New vessel".to_owned()), "{l:?}");
    let (_, m) = t.get("/api/v1/navigation/menu", &alice).await;
    let l = labels(&m);
    assert!(l.contains(&"New vessel".to_owned()), "{l:?}");
    // Needs the office network, which a menu request does not prove.
    assert!(!l.contains(&"MSW declarations".to_owned()), "{l:?}");
    // No permissions: only the item that needs none.
    let (_, m) = t.get("/api/v1/navigation/menu", &axel).await;
    assert_eq!(labels(&m), vec!["Fleet".to_owned()]);
}
