//! Roles (hierarchy, cycles), groups, and privilege-escalation attempts.

use crate::common::*;
use axum::http::StatusCode;
use serde_json::{json, Value};

async fn role_id(t: &TestApp, token: &str, name: &str) -> String {
    let (_, v) = t.get(&format!("/api/v1/roles?name={name}"), token).await;
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn user_id(t: &TestApp, token: &str, email_part: &str) -> String {
    let (_, v) = t
        .get(&format!("/api/v1/users?email={email_part}"), token)
        .await;
    v["items"][0]["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn role_hierarchy_and_cycles() {
    let t = TestApp::new().await;
    let admin = t.admin("TEST-001").await;
    let (s, a) = t
        .post(
            "/api/v1/roles",
            &admin,
            json!({"name": "a", "scopes": ["user:read"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{a}");
    let a = a["id"].as_str().unwrap().to_owned();
    let (_, b) = t
        .post(
            "/api/v1/roles",
            &admin,
            json!({"name": "b", "parent_role_id": a}),
        )
        .await;
    let b = b["id"].as_str().unwrap().to_owned();
    let (_, c) = t
        .post(
            "/api/v1/roles",
            &admin,
            json!({"name": "c", "parent_role_id": b}),
        )
        .await;
    let c = c["id"].as_str().unwrap().to_owned();
    let (s, h) = t.get(&format!("/api/v1/roles/{c}/hierarchy"), &admin).await;
    assert_eq!(s, StatusCode::OK);
    let names: Vec<&str> = h["ancestors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["b", "a"]);
    let (_, got) = t.get(&format!("/api/v1/roles/{c}"), &admin).await;
    assert_eq!(got["effective_scopes"], json!(["user:read"]));

    // a -> c would close a cycle; so would a role being its own parent.
    let (s, v) = t
        .patch(
            &format!("/api/v1/roles/{a}"),
            &admin,
            json!({"parent_role_id": c}),
        )
        .await;
    let d = assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    assert!(
        d["parent_role_id"][0].as_str().unwrap().contains("cycle"),
        "{d}"
    );
    let (s, v) = t
        .patch(
            &format!("/api/v1/roles/{a}"),
            &admin,
            json!({"parent_role_id": a}),
        )
        .await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    // Dangling parent, duplicate name, unknown scope.
    let (s, v) = t
        .post(
            "/api/v1/roles",
            &admin,
            json!({"name": "d", "parent_role_id": "44444444-4444-4444-4444-444444444444"}),
        )
        .await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    let (s, v) = t.post("/api/v1/roles", &admin, json!({"name": "a"})).await;
    let d = assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    assert!(d["name"].is_array());
    let (s, v) = t
        .post(
            "/api/v1/roles",
            &admin,
            json!({"name": "e", "scopes": ["user:superpower"]}),
        )
        .await;
    let d = assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    assert!(d["scopes"].is_array());
    // Unset the parent, then delete.
    let (s, v) = t
        .patch(
            &format!("/api/v1/roles/{c}"),
            &admin,
            json!({"parent_role_id": null}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["parent_role_id"].is_null());
    let (s, _) = t.delete(&format!("/api/v1/roles/{b}"), &admin).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn roles_assign_and_permissions() {
    let t = TestApp::new().await;
    let admin = t.admin("TEST-001").await;
    let auditor = user_id(&t, &admin, "axel@").await;
    let mgr = role_id(&t, &admin, "operator").await;
    let (s, v) = t
        .post(
            &format!("/api/v1/roles/{mgr}/assign"),
            &admin,
            json!({"user_ids": [auditor]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, p) = t
        .get(&format!("/api/v1/users/{auditor}/permissions"), &admin)
        .await;
    let names: Vec<&str> = p["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"vessel-update") && names.contains(&"vessel-read"),
        "{names:?}"
    );
    let (s, _) = t
        .delete(&format!("/api/v1/roles/{mgr}/assign/{auditor}"), &admin)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = t
        .delete(&format!("/api/v1/roles/{mgr}/assign/{auditor}"), &admin)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let (_, perms) = t
        .get("/api/v1/permissions?name=port-call-update-ops", &admin)
        .await;
    let pid = perms["items"][0]["id"].as_str().unwrap().to_owned();
    let (s, _) = t
        .post(
            &format!("/api/v1/roles/{mgr}/permissions"),
            &admin,
            json!({"permission_ids": [pid]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, lp) = t
        .get(&format!("/api/v1/roles/{mgr}/permissions"), &admin)
        .await;
    assert!(lp["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["id"] == pid.as_str()));
    let (s, _) = t
        .delete(&format!("/api/v1/roles/{mgr}/permissions/{pid}"), &admin)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) = t
        .post(
            &format!("/api/v1/roles/{mgr}/permissions"),
            &admin,
            json!({"permission_ids": ["44444444-4444-4444-4444-444444444444"]}),
        )
        .await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");

    // Time-bound assignment via the user route.
    let viewer_role = role_id(&t, &admin, "viewer").await;
    let (s, v) = t.post(&format!("/api/v1/users/{auditor}/roles"), &admin,
        json!({"role_id": viewer_role, "valid_from": "2030-01-01T00:00:00Z", "valid_until": "2029-01-01T00:00:00Z"})).await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    let (s, _) = t
        .post(
            &format!("/api/v1/users/{auditor}/roles"),
            &admin,
            json!({"role_id": viewer_role, "valid_from": "2030-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    // Not valid yet: no vessel-read through it.
    let (_, p) = t
        .get(&format!("/api/v1/users/{auditor}/permissions"), &admin)
        .await;
    assert!(p["permissions"].as_array().unwrap().is_empty(), "{p}");
    let (s, _) = t
        .delete(
            &format!("/api/v1/users/{auditor}/roles/{viewer_role}"),
            &admin,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn groups_members_and_roles() {
    let t = TestApp::new().await;
    let admin = t.admin("TEST-001").await;
    let (s, v) = t.post("/api/v1/groups", &admin, json!({"name": ""})).await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    let (s, v) = t
        .post(
            "/api/v1/groups",
            &admin,
            json!({"name": "nordic-port-team"}),
        )
        .await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    let (s, g) = t
        .post(
            "/api/v1/groups",
            &admin,
            json!({"name": "night-shift", "description": "after hours"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{g}");
    let gid = g["id"].as_str().unwrap().to_owned();
    let auditor = user_id(&t, &admin, "axel@").await;
    let mgr = role_id(&t, &admin, "operator").await;
    let (s, v) = t
        .post(
            &format!("/api/v1/groups/{gid}/roles"),
            &admin,
            json!({"role_ids": [mgr]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = t
        .post(
            &format!("/api/v1/groups/{gid}/members"),
            &admin,
            json!({"user_ids": [auditor]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, m) = t
        .get(&format!("/api/v1/groups/{gid}/members"), &admin)
        .await;
    assert_eq!(m["items"][0]["id"], auditor.as_str());
    let (_, p) = t
        .get(&format!("/api/v1/users/{auditor}/permissions"), &admin)
        .await;
    let names: Vec<&str> = p["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"operator") && names.contains(&"viewer"),
        "{names:?}"
    );
    let (_, gr) = t.get(&format!("/api/v1/groups/{gid}/roles"), &admin).await;
    assert_eq!(gr["items"][0]["name"], "operator");
    let (s, g2) = t
        .patch(
            &format!("/api/v1/groups/{gid}"),
            &admin,
            json!({"name": "late-shift"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(g2["name"], "late-shift");
    let (_, got) = t.get(&format!("/api/v1/groups/{gid}"), &admin).await;
    assert_eq!(got["member_count"], 1);
    let (s, _) = t
        .delete(&format!("/api/v1/groups/{gid}/members/{auditor}"), &admin)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = t
        .delete(&format!("/api/v1/groups/{gid}/roles/{mgr}"), &admin)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = t.delete(&format!("/api/v1/groups/{gid}"), &admin).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = t.get(&format!("/api/v1/groups/{gid}"), &admin).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

/// A user with only `role:admin` + `user:read` (no `user:admin`) tries every way up.
#[tokio::test]
async fn escalation_attempts_are_refused() {
    let t = TestApp::new().await;
    let admin = t.admin("TEST-001").await;
    let (_, limited_role) = t
        .post(
            "/api/v1/roles",
            &admin,
            json!({"name": "role-manager", "scopes": ["role:admin", "user:read", "group:admin"]}),
        )
        .await;
    let limited_role = limited_role["id"].as_str().unwrap().to_owned();
    let (s, u) = t.post("/api/v1/users", &admin, json!({"email": "rm@test-001.example.com", "password": "Role-Passw0rd", "role_ids": [limited_role]})).await;
    assert_eq!(s, StatusCode::CREATED, "{u}");
    let me = u["id"].as_str().unwrap().to_owned();
    let rm = t
        .login("rm@test-001.example.com", "Role-Passw0rd", "TEST-001")
        .await;

    // 1. A role with a scope I lack.
    let (s, v) = t
        .post(
            "/api/v1/roles",
            &rm,
            json!({"name": "sneaky", "scopes": ["user:admin"]}),
        )
        .await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    // 2. Adding a scope I lack to my own role.
    let (s, v) = t
        .patch(
            &format!("/api/v1/roles/{limited_role}"),
            &rm,
            json!({"scopes": ["role:admin", "user:read", "user:admin"]}),
        )
        .await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    // 3. Inheriting from a stronger role.
    let tenant_admin = role_id(&t, &rm, "tenant_admin").await;
    let (s, v) = t
        .post(
            "/api/v1/roles",
            &rm,
            json!({"name": "child", "parent_role_id": tenant_admin}),
        )
        .await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    let (s, v) = t
        .patch(
            &format!("/api/v1/roles/{limited_role}"),
            &rm,
            json!({"parent_role_id": tenant_admin}),
        )
        .await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    // 4. Assigning myself a stronger role, directly or through a group.
    let (s, v) = t
        .post(
            &format!("/api/v1/roles/{tenant_admin}/assign"),
            &rm,
            json!({"user_ids": [me]}),
        )
        .await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    let (_, g) = t
        .post("/api/v1/groups", &rm, json!({"name": "ladder"}))
        .await;
    let gid = g["id"].as_str().unwrap().to_owned();
    let (s, v) = t
        .post(
            &format!("/api/v1/groups/{gid}/roles"),
            &rm,
            json!({"role_ids": [tenant_admin]}),
        )
        .await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    // 5. The platform scope from inside a tenant.
    let (s, v) = t
        .post(
            "/api/v1/roles",
            &admin,
            json!({"name": "fake-root", "scopes": ["platform:admin"]}),
        )
        .await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    // 6. A tenant admin resetting the password of a platform superuser is impossible
    //    (another tenant's id answers 404) and acting on another tenant is refused.
    let (s, v) = t
        .request(
            "GET",
            "/api/v1/users",
            Some(&admin),
            None,
            &[("x-tenant-id", "22222222-2222-2222-2222-222222222222")],
        )
        .await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    // 7. user:write cannot touch a stronger account (password reset = takeover).
    let (_, w) = t
        .post(
            "/api/v1/roles",
            &admin,
            json!({"name": "helpdesk", "scopes": ["user:write"]}),
        )
        .await;
    let (_, hd) = t.post("/api/v1/users", &admin, json!({"email": "hd@test-001.example.com", "password": "Help-Passw0rd", "role_ids": [w["id"]]})).await;
    assert!(hd["id"].is_string(), "{hd}");
    let hd_tok = t
        .login("hd@test-001.example.com", "Help-Passw0rd", "TEST-001")
        .await;
    let admin_id = {
        let (_, me) = t.get("/api/v1/auth/me", &admin).await;
        me["user_id"].as_str().unwrap().to_owned()
    };
    let (s, v) = t
        .post(
            &format!("/api/v1/users/{admin_id}/change-password"),
            &hd_tok,
            json!({"new_password": "Taken-Passw0rd"}),
        )
        .await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    let (s, v) = t
        .patch(
            &format!("/api/v1/users/{admin_id}"),
            &hd_tok,
            json!({"is_active": false}),
        )
        .await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    // 8. tenant_scope `any` is for the platform only.
    let (s, v) = t.post("/api/v1/permissions", &admin, json!({"name": "everything", "resource_type": "*", "actions": ["*"], "tenant_scope": "any"})).await;
    let d: Value = assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    assert!(d["tenant_scope"].is_array(), "{d}");
    // 9. ABAC attributes of oneself (conditions read them).
    let (_, me) = t.get("/api/v1/auth/me", &admin).await;
    let admin_id = me["user_id"].as_str().unwrap().to_owned();
    let (s, v) = t
        .patch(
            &format!("/api/v1/users/{admin_id}"),
            &admin,
            json!({"attributes": {"department": "port-ops", "clearance": "top"}}),
        )
        .await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    // Within bounds all of this works.
    let (s, v) = t
        .post(
            "/api/v1/roles",
            &rm,
            json!({"name": "reader", "scopes": ["user:read"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}
