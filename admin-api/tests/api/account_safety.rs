//! Account safety (issue 17, items 7 and 8): a weaker account cannot demote
//! a stronger one by taking away (roles, role scopes, group membership), and
//! no change leaves a tenant — the platform above all — without an active
//! administrator; `bootstrap --recover` is the way back. Every refusal is
//! followed by a re-read showing nothing changed, and each rule has a
//! positive control showing the same call works where it should.

use crate::binary::{run, urls};
use crate::common::*;
use axum::http::StatusCode;
use serde_json::json;
use uuid::Uuid;

const NORDIC: &str = "11111111-1111-1111-1111-111111111111";
const PACIFIC: &str = "22222222-2222-2222-2222-222222222222";
const ALICE_ID: &str = "aaaaaaaa-0000-4000-8000-000000000001";
const BOB_ID: &str = "bbbbbbbb-0000-4000-8000-000000000001";

async fn role_id(t: &TestApp, tenant: &str, name: &str) -> Uuid {
    sqlx::query_scalar("SELECT id FROM sentinel.roles WHERE tenant_id = $1::uuid AND name = $2")
        .bind(tenant)
        .bind(name)
        .fetch_one(&t.db.owner)
        .await
        .unwrap()
}

async fn holds(t: &TestApp, user: &str, role: Uuid) -> bool {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sentinel.user_roles WHERE user_id = $1::uuid AND role_id = $2
           AND is_active AND (valid_until IS NULL OR valid_until > now()))",
    )
    .bind(user)
    .bind(role)
    .fetch_one(&t.db.owner)
    .await
    .unwrap()
}

/// A user of TEST-001 holding only the role (created by the tenant admin).
async fn user_with_scopes(t: &TestApp, admin: &str, name: &str, scopes: &[&str]) -> (Uuid, String) {
    let (s, role) = t
        .post(
            "/api/v1/roles",
            admin,
            json!({"name": format!("{name}-role"), "scopes": scopes}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{role}");
    let email = format!("{name}@nordic.example");
    let (s, u) = t
        .post(
            "/api/v1/users",
            admin,
            json!({"email": email, "name": name, "password": "Str0ng-Passw0rd!x",
                   "role_ids": [role["id"]]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{u}");
    let id = Uuid::parse_str(u["id"].as_str().unwrap()).unwrap();
    (id, t.login(&email, "Str0ng-Passw0rd!x", "TEST-001").await)
}

#[tokio::test]
async fn a_weaker_account_cannot_demote_a_stronger_one() {
    let t = TestApp::new().await;
    let alice = t.admin("TEST-001").await;
    let admin_role = role_id(&t, NORDIC, "tenant_admin").await;
    // An admins group holding the tenant-admin role, with alice in it.
    let (s, g) = t
        .post("/api/v1/groups", &alice, json!({"name": "admins"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{g}");
    let gid = g["id"].as_str().unwrap().to_owned();
    let (s, v) = t
        .post(
            &format!("/api/v1/groups/{gid}/roles"),
            &alice,
            json!({"role_ids": [admin_role]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = t
        .post(
            &format!("/api/v1/groups/{gid}/members"),
            &alice,
            json!({"user_ids": [ALICE_ID]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");

    let (_, weak) = user_with_scopes(
        &t,
        &alice,
        "weak",
        &["role:write", "user:read", "group:write"],
    )
    .await;
    let attempts = [
        (
            "DELETE",
            format!("/api/v1/users/{ALICE_ID}/roles/{admin_role}"),
            None,
        ),
        (
            "DELETE",
            format!("/api/v1/roles/{admin_role}/assign/{ALICE_ID}"),
            None,
        ),
        (
            "PATCH",
            format!("/api/v1/roles/{admin_role}"),
            Some(json!({"scopes": ["tenant:read"]})),
        ),
        (
            "DELETE",
            format!("/api/v1/groups/{gid}/members/{ALICE_ID}"),
            None,
        ),
        (
            "DELETE",
            format!("/api/v1/groups/{gid}/roles/{admin_role}"),
            None,
        ),
    ];
    for (method, path, body) in &attempts {
        let (s, v) = t
            .request(method, path, Some(&weak), body.clone(), &[])
            .await;
        assert_error(s, &v, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    }
    // Nothing changed: alice keeps the role, directly and through the group,
    // the role keeps its scopes, and she still administers.
    assert!(holds(&t, ALICE_ID, admin_role).await);
    let (_, role) = t.get(&format!("/api/v1/roles/{admin_role}"), &alice).await;
    assert!(role["scopes"].as_array().unwrap().len() > 5, "{role}");
    let (_, members) = t
        .get(&format!("/api/v1/groups/{gid}/members"), &alice)
        .await;
    assert!(members.to_string().contains(ALICE_ID), "{members}");
    let (_, roles) = t.get(&format!("/api/v1/groups/{gid}/roles"), &alice).await;
    assert!(
        roles.to_string().contains(&admin_role.to_string()),
        "{roles}"
    );
    let (s, _) = t.get("/api/v1/users", &alice).await;
    assert_eq!(s, StatusCode::OK);

    // Positive control: the same calls on an account and a role no stronger
    // than the caller succeed.
    let (intern, _) = user_with_scopes(&t, &alice, "intern", &["user:read"]).await;
    let intern_role = role_id(&t, NORDIC, "intern-role").await;
    let (s, v) = t
        .request(
            "DELETE",
            &format!("/api/v1/users/{intern}/roles/{intern_role}"),
            Some(&weak),
            None,
            &[],
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    assert!(!holds(&t, &intern.to_string(), intern_role).await);
    let (s, v) = t
        .patch(
            &format!("/api/v1/roles/{intern_role}"),
            &weak,
            json!({"scopes": []}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn the_last_superadmin_cannot_lock_the_platform_out() {
    let t = TestApp::new().await;
    let root = t.root().await;
    let root_id: Uuid = sqlx::query_scalar("SELECT id FROM sentinel.users WHERE email = $1")
        .bind(ROOT_EMAIL)
        .fetch_one(&t.db.owner)
        .await
        .unwrap();
    let superadmin = role_id(
        &t,
        sentinel_policy::PLATFORM_TENANT.to_string().as_str(),
        "platform-superadmin",
    )
    .await;
    let past = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let attempts = [
        (
            "POST",
            format!("/api/v1/users/{root_id}/roles"),
            Some(json!({"role_id": superadmin, "valid_until": past})),
        ),
        (
            "POST",
            format!("/api/v1/roles/{superadmin}/assign"),
            Some(json!({"user_ids": [root_id], "valid_until": past})),
        ),
        (
            "DELETE",
            format!("/api/v1/users/{root_id}/roles/{superadmin}"),
            None,
        ),
        (
            "DELETE",
            format!("/api/v1/roles/{superadmin}/assign/{root_id}"),
            None,
        ),
    ];
    for (method, path, body) in &attempts {
        let (s, v) = t
            .request(method, path, Some(&root), body.clone(), &[])
            .await;
        let d = assert_error(s, &v, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
        assert!(
            v.to_string().contains("administrator"),
            "{method} {path}: {v} {d}"
        );
    }
    assert!(holds(&t, &root_id.to_string(), superadmin).await);
    let root = t.root().await;
    let (s, _) = t.get("/api/v1/tenants", &root).await;
    assert_eq!(s, StatusCode::OK);

    // With a second superadmin the same self-removal is allowed.
    let (s, v) = t
        .post(
            "/api/v1/users",
            &root,
            json!({"email": "second@platform.example.com", "name": "Second",
                   "password": "Str0ng-Passw0rd!x", "role_ids": [superadmin]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = t
        .request(
            "DELETE",
            &format!("/api/v1/users/{root_id}/roles/{superadmin}"),
            Some(&root),
            None,
            &[],
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
}

#[tokio::test]
async fn a_tenant_keeps_an_administrator() {
    let t = TestApp::new().await;
    let bob = t.admin("TEST-002").await;
    let root = t.root().await;
    let admin_role = role_id(&t, PACIFIC, "tenant_admin").await;
    // Bob removing his own admin role, and the platform removing it, deactivating
    // or locking him through X-Tenant-ID: each would leave TEST-002 without one.
    let (s, v) = t
        .request(
            "DELETE",
            &format!("/api/v1/users/{BOB_ID}/roles/{admin_role}"),
            Some(&bob),
            None,
            &[],
        )
        .await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    let hdr = [("x-tenant-id", PACIFIC)];
    for (method, path, body) in [
        (
            "DELETE",
            format!("/api/v1/users/{BOB_ID}/roles/{admin_role}"),
            None,
        ),
        (
            "PATCH",
            format!("/api/v1/users/{BOB_ID}"),
            Some(json!({"is_active": false})),
        ),
        ("POST", format!("/api/v1/users/{BOB_ID}/lock"), None),
        (
            "POST",
            "/api/v1/users/bulk".to_owned(),
            Some(json!({"action": "delete", "user_ids": [BOB_ID]})),
        ),
        ("DELETE", format!("/api/v1/users/{BOB_ID}"), None),
    ] {
        let (s, v) = t.request(method, &path, Some(&root), body, &hdr).await;
        assert_error(s, &v, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    }
    assert!(holds(&t, BOB_ID, admin_role).await);
    t.login(BOB, DEMO_PASSWORD, "TEST-002").await;
    // Positive control: locking a non-admin of the tenant works.
    let pia: Uuid = sqlx::query_scalar("SELECT id FROM sentinel.users WHERE email = $1")
        .bind(PIA)
        .fetch_one(&t.db.owner)
        .await
        .unwrap();
    let (s, v) = t
        .request(
            "POST",
            &format!("/api/v1/users/{pia}/lock"),
            Some(&root),
            None,
            &hdr,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn bootstrap_recover_repairs_a_broken_superadmin() {
    let t = TestApp::new().await;
    // Broken behind the API's back: locked, deactivated, its assignment
    // ended, and a forgotten password.
    sqlx::query(
        "UPDATE sentinel.users SET is_locked = true, is_active = false, password_hash = 'x' WHERE email = $1",
    )
    .bind(ROOT_EMAIL)
    .execute(&t.db.owner)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE sentinel.user_roles SET valid_until = now() - interval '1 day'
                  WHERE user_id = (SELECT id FROM sentinel.users WHERE email = $1)",
    )
    .bind(ROOT_EMAIL)
    .execute(&t.db.owner)
    .await
    .unwrap();
    let (s, _) = t.login_full(ROOT_EMAIL, ROOT_PASSWORD, "PLATFORM").await;
    assert_ne!(s, StatusCode::OK);
    let (owner, _) = urls(&t.db.name);
    let new_password = "Rec0vered-Passw0rd!";
    // Without --recover, bootstrap leaves an existing account as it is.
    let (ok, out) = run(
        &owner,
        &["bootstrap", "--email", ROOT_EMAIL],
        &[("SENTINEL_BOOTSTRAP_PASSWORD", new_password)],
    )
    .await;
    assert!(ok, "{out}");
    let (s, _) = t.login_full(ROOT_EMAIL, new_password, "PLATFORM").await;
    assert_ne!(s, StatusCode::OK);
    let (ok, out) = run(
        &owner,
        &["bootstrap", "--email", ROOT_EMAIL, "--recover"],
        &[("SENTINEL_BOOTSTRAP_PASSWORD", new_password)],
    )
    .await;
    assert!(ok && out.contains("recovered"), "{out}");
    let root = t.login(ROOT_EMAIL, new_password, "PLATFORM").await;
    let (s, v) = t.get("/api/v1/tenants", &root).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}
