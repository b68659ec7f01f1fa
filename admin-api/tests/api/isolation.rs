//! Tenant isolation: every tenant-scoped endpoint, called by TEST-002's admin
//! with TEST-001's ids, answers exactly as it does for ids that do not exist
//! (404 for lookups), and TEST-001's objects are untouched afterwards.

use crate::common::*;
use axum::http::StatusCode;
use serde_json::{json, Value};

struct Ids {
    tenant: String,
    sub_tenant: String,
    user: String,
    sa: String,
    role: String,
    group: String,
    permission: String,
    resource: String,
    field: String,
    nav: String,
}

async fn first(t: &TestApp, token: &str, url: &str) -> String {
    let (s, v) = t.get(url, token).await;
    assert_eq!(s, StatusCode::OK, "{url}: {v}");
    v["items"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{url}: {v}"))
        .to_owned()
}

async fn ids_of_test_001(t: &TestApp) -> Ids {
    let a = t.admin("TEST-001").await;
    Ids {
        tenant: "11111111-1111-1111-1111-111111111111".into(),
        sub_tenant: "33333333-3333-3333-3333-333333333333".into(),
        user: first(t, &a, "/api/v1/users?email=victor@").await,
        sa: first(t, &a, "/api/v1/service-accounts").await,
        role: first(t, &a, "/api/v1/roles?name=viewer").await,
        group: first(t, &a, "/api/v1/groups").await,
        permission: first(t, &a, "/api/v1/permissions?name=vessel-read").await,
        resource: first(t, &a, "/api/v1/resources?external_id=v-a1").await,
        field: first(t, &a, "/api/v1/field-definitions?tier=tenant_specific").await,
        nav: first(t, &a, "/api/v1/navigation").await,
    }
}

/// (method, path, body) for every endpoint that takes an id.
fn calls(i: &Ids, own_user: &str, own_role: &str) -> Vec<(&'static str, String, Option<Value>)> {
    let pw = json!({"new_password": "Other-Passw0rd"});
    vec![
        ("GET", format!("/api/v1/tenants/{}", i.tenant), None),
        ("GET", format!("/api/v1/tenants/{}", i.sub_tenant), None),
        (
            "GET",
            format!("/api/v1/tenants/{}/hierarchy", i.tenant),
            None,
        ),
        (
            "PATCH",
            format!("/api/v1/tenants/{}", i.tenant),
            Some(json!({"name": "pwned"})),
        ),
        ("DELETE", format!("/api/v1/tenants/{}", i.sub_tenant), None),
        (
            "POST",
            format!("/api/v1/tenants/{}/sub-tenants", i.tenant),
            Some(json!({"code": "EVIL", "name": "x"})),
        ),
        ("GET", format!("/api/v1/users/{}", i.user), None),
        (
            "PATCH",
            format!("/api/v1/users/{}", i.user),
            Some(json!({"name": "pwned"})),
        ),
        ("GET", format!("/api/v1/users/{}/permissions", i.user), None),
        (
            "POST",
            format!("/api/v1/users/{}/change-password", i.user),
            Some(pw.clone()),
        ),
        (
            "POST",
            format!("/api/v1/users/{}/reset-password", i.user),
            Some(pw),
        ),
        ("POST", format!("/api/v1/users/{}/lock", i.user), None),
        ("POST", format!("/api/v1/users/{}/unlock", i.user), None),
        (
            "POST",
            format!("/api/v1/users/{}/roles", i.user),
            Some(json!({"role_id": own_role})),
        ),
        (
            "DELETE",
            format!("/api/v1/users/{}/roles/{}", i.user, i.role),
            None,
        ),
        ("DELETE", format!("/api/v1/users/{}", i.user), None),
        ("GET", format!("/api/v1/service-accounts/{}", i.sa), None),
        (
            "PATCH",
            format!("/api/v1/service-accounts/{}", i.sa),
            Some(json!({"name": "pwned"})),
        ),
        (
            "POST",
            format!("/api/v1/service-accounts/{}/rotate-credentials", i.sa),
            None,
        ),
        (
            "GET",
            format!("/api/v1/service-accounts/{}/validate", i.sa),
            None,
        ),
        ("DELETE", format!("/api/v1/service-accounts/{}", i.sa), None),
        ("GET", format!("/api/v1/roles/{}", i.role), None),
        (
            "PATCH",
            format!("/api/v1/roles/{}", i.role),
            Some(json!({"description": "pwned"})),
        ),
        ("GET", format!("/api/v1/roles/{}/hierarchy", i.role), None),
        (
            "POST",
            format!("/api/v1/roles/{}/assign", i.role),
            Some(json!({"user_ids": [own_user]})),
        ),
        (
            "DELETE",
            format!("/api/v1/roles/{}/assign/{}", i.role, i.user),
            None,
        ),
        ("GET", format!("/api/v1/roles/{}/permissions", i.role), None),
        (
            "POST",
            format!("/api/v1/roles/{}/permissions", i.role),
            Some(json!({"permission_ids": [i.permission]})),
        ),
        (
            "DELETE",
            format!("/api/v1/roles/{}/permissions/{}", i.role, i.permission),
            None,
        ),
        ("DELETE", format!("/api/v1/roles/{}", i.role), None),
        ("GET", format!("/api/v1/groups/{}", i.group), None),
        (
            "PATCH",
            format!("/api/v1/groups/{}", i.group),
            Some(json!({"description": "pwned"})),
        ),
        ("GET", format!("/api/v1/groups/{}/members", i.group), None),
        (
            "POST",
            format!("/api/v1/groups/{}/members", i.group),
            Some(json!({"user_ids": [own_user]})),
        ),
        (
            "DELETE",
            format!("/api/v1/groups/{}/members/{}", i.group, i.user),
            None,
        ),
        ("GET", format!("/api/v1/groups/{}/roles", i.group), None),
        (
            "POST",
            format!("/api/v1/groups/{}/roles", i.group),
            Some(json!({"role_ids": [own_role]})),
        ),
        (
            "DELETE",
            format!("/api/v1/groups/{}/roles/{}", i.group, i.role),
            None,
        ),
        ("DELETE", format!("/api/v1/groups/{}", i.group), None),
        ("GET", format!("/api/v1/permissions/{}", i.permission), None),
        (
            "PATCH",
            format!("/api/v1/permissions/{}", i.permission),
            Some(json!({"description": "pwned"})),
        ),
        (
            "DELETE",
            format!("/api/v1/permissions/{}", i.permission),
            None,
        ),
        ("GET", format!("/api/v1/resources/{}", i.resource), None),
        (
            "GET",
            format!("/api/v1/resources/{}/children", i.resource),
            None,
        ),
        (
            "PATCH",
            format!("/api/v1/resources/{}", i.resource),
            Some(json!({"name": "pwned"})),
        ),
        ("DELETE", format!("/api/v1/resources/{}", i.resource), None),
        (
            "GET",
            format!("/api/v1/field-definitions/{}", i.field),
            None,
        ),
        (
            "PATCH",
            format!("/api/v1/field-definitions/{}", i.field),
            Some(json!({"description": "pwned"})),
        ),
        (
            "DELETE",
            format!("/api/v1/field-definitions/{}", i.field),
            None,
        ),
        ("GET", format!("/api/v1/navigation/{}", i.nav), None),
        (
            "PATCH",
            format!("/api/v1/navigation/{}", i.nav),
            Some(json!({"label": "pwned"})),
        ),
        ("DELETE", format!("/api/v1/navigation/{}", i.nav), None),
        (
            "POST",
            "/api/v1/permissions/check".to_owned(),
            Some(json!({"user_id": i.user, "resource_type": "vessel", "action": "read"})),
        ),
        (
            "POST",
            "/api/v1/groups".to_owned(),
            Some(json!({"name": "g-x", "user_ids": [i.user]})),
        ),
        (
            "POST",
            "/api/v1/users".to_owned(),
            Some(json!({"email": "x@y.example.com", "role_ids": [i.role]})),
        ),
        (
            "POST",
            "/api/v1/roles".to_owned(),
            Some(json!({"name": "r-x", "parent_role_id": i.role})),
        ),
    ]
}

fn missing(i: &Ids) -> Ids {
    let r = |_: &String| uuid::Uuid::new_v4().to_string();
    Ids {
        tenant: r(&i.tenant),
        sub_tenant: r(&i.sub_tenant),
        user: r(&i.user),
        sa: r(&i.sa),
        role: r(&i.role),
        group: r(&i.group),
        permission: r(&i.permission),
        resource: r(&i.resource),
        field: r(&i.field),
        nav: r(&i.nav),
    }
}

#[tokio::test]
async fn another_tenants_ids_answer_as_missing_ones() {
    let t = TestApp::new().await;
    let theirs = ids_of_test_001(&t).await;
    let nowhere = missing(&theirs);
    let intruder = t.admin("TEST-002").await;
    let own_user = first(&t, &intruder, "/api/v1/users?email=pia@").await;
    let own_role = first(&t, &intruder, "/api/v1/roles?name=auditor").await;
    let victim_url = format!("/api/v1/users/{}", theirs.user);
    let (s, victim_before) = t.get(&victim_url, &t.admin("TEST-001").await).await;
    assert_eq!(s, StatusCode::OK);
    let foreign = calls(&theirs, &own_user, &own_role);
    let absent = calls(&nowhere, &own_user, &own_role);
    assert!(foreign.len() >= 55);
    let mut not_found = 0;
    for ((m, p, b), (m2, p2, b2)) in foreign.into_iter().zip(absent) {
        // A unique name per pair so that duplicate-name checks do not differ.
        let (s1, v1) = t.request(m, &p, Some(&intruder), b, &[]).await;
        let (s2, v2) = t
            .request(
                m2,
                &p2,
                Some(&intruder),
                b2.map(|mut b| {
                    if let Some(n) = b.get_mut("name") {
                        *n = json!(format!("{}-2", n.as_str().unwrap_or("")));
                    }
                    b
                }),
                &[],
            )
            .await;
        assert_eq!(s1, s2, "{m} {p}: {v1} vs {v2}");
        assert_eq!(
            v1["error"]["code"], v2["error"]["code"],
            "{m} {p}: {v1} vs {v2}"
        );
        assert!(!s1.is_success(), "{m} {p} succeeded: {v1}");
        if s1 == StatusCode::NOT_FOUND {
            not_found += 1;
        }
    }
    assert!(not_found >= 45, "only {not_found} answered 404");

    // Nothing of TEST-001 changed.
    let a = t.admin("TEST-001").await;
    for url in [
        format!("/api/v1/users/{}", theirs.user),
        format!("/api/v1/service-accounts/{}", theirs.sa),
        format!("/api/v1/roles/{}", theirs.role),
        format!("/api/v1/groups/{}", theirs.group),
        format!("/api/v1/permissions/{}", theirs.permission),
        format!("/api/v1/resources/{}", theirs.resource),
        format!("/api/v1/field-definitions/{}", theirs.field),
        format!("/api/v1/navigation/{}", theirs.nav),
        format!("/api/v1/tenants/{}", theirs.sub_tenant),
    ] {
        let (s, v) = t.get(&url, &a).await;
        assert_eq!(s, StatusCode::OK, "{url}: {v}");
        assert!(!v.to_string().contains("pwned"), "{url}: {v}");
    }
    let (s, _) = t
        .get(&format!("/api/v1/users/{}/permissions", theirs.user), &a)
        .await;
    assert_eq!(s, StatusCode::OK);
    // The victim of the calls above (lock, delete, passwords, roles) is as
    // before: same account state and roles, and still logs in.
    let (_, victim) = t.get(&victim_url, &a).await;
    for key in [
        "is_active",
        "is_locked",
        "locked_until",
        "roles",
        "groups",
        "email",
        "name",
    ] {
        assert_eq!(
            victim[key], victim_before[key],
            "victim's `{key}` changed: {victim}"
        );
    }
    assert_eq!(victim["is_locked"], false);
    t.login(VICTOR, DEMO_PASSWORD, "TEST-001").await;
}

#[tokio::test]
async fn lists_show_only_the_callers_tenant() {
    let t = TestApp::new().await;
    let a2 = t.admin("TEST-002").await;
    for url in [
        "/api/v1/users",
        "/api/v1/service-accounts",
        "/api/v1/roles",
        "/api/v1/groups",
        "/api/v1/permissions",
        "/api/v1/resources",
        "/api/v1/navigation",
    ] {
        let (s, v) = t.get(&format!("{url}?limit=200"), &a2).await;
        assert_eq!(s, StatusCode::OK, "{url}: {v}");
        let items = v["items"].as_array().unwrap();
        assert!(!items.is_empty(), "{url}");
        for i in items {
            assert_eq!(
                i["tenant_id"], "22222222-2222-2222-2222-222222222222",
                "{url}: {i}"
            );
        }
    }
    let (_, v) = t.get("/api/v1/field-definitions?limit=200", &a2).await;
    for i in v["items"].as_array().unwrap() {
        assert!(
            i["tenant_id"].is_null() || i["tenant_id"] == "22222222-2222-2222-2222-222222222222",
            "{i}"
        );
    }
}

#[tokio::test]
async fn platform_admin_acts_on_a_tenant_with_x_tenant_id() {
    let t = TestApp::new().await;
    let root = t.root().await;
    let h = [("x-tenant-id", "22222222-2222-2222-2222-222222222222")];
    let (s, v) = t
        .request("GET", "/api/v1/users", Some(&root), None, &h)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|u| u["tenant_id"] == "22222222-2222-2222-2222-222222222222"));
    let (s, v) = t
        .request(
            "POST",
            "/api/v1/roles",
            Some(&root),
            Some(json!({"name": "from-platform", "scopes": ["user:read"]})),
            &h,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["tenant_id"], "22222222-2222-2222-2222-222222222222");
    // A tenant admin may act on a direct sub-tenant, not on a sibling.
    let a1 = t.admin("TEST-001").await;
    let (s, v) = t
        .request(
            "GET",
            "/api/v1/users",
            Some(&a1),
            None,
            &[("x-tenant-id", "33333333-3333-3333-3333-333333333333")],
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|u| u["tenant_id"] == "33333333-3333-3333-3333-333333333333"));
    let (s, v) = t
        .request(
            "GET",
            "/api/v1/users",
            Some(&a1),
            None,
            &[("x-tenant-id", "nope")],
        )
        .await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    // A sub-tenant's admin may not act on its parent: it answers as a
    // tenant that does not exist, for reads and writes alike.
    let sara = t.admin("TEST-001-SUB").await;
    let (s, v) = t.get("/api/v1/users", &sara).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let parent = [("x-tenant-id", "11111111-1111-1111-1111-111111111111")];
    let random = uuid::Uuid::new_v4().to_string();
    let nowhere = [("x-tenant-id", random.as_str())];
    for (m, p, b) in [
        ("GET", "/api/v1/users", None),
        ("POST", "/api/v1/roles", Some(json!({"name": "from-below"}))),
        (
            "POST",
            "/api/v1/users/bulk",
            Some(json!({"action": "lock", "user_ids": ["aaaaaaaa-0000-4000-8000-000000000001"]})),
        ),
    ] {
        let (s1, v1) = t.request(m, p, Some(&sara), b.clone(), &parent).await;
        let (s2, v2) = t.request(m, p, Some(&sara), b, &nowhere).await;
        assert!(!s1.is_success(), "{m} {p} on the parent: {v1}");
        assert_eq!(
            (s1, &v1["error"]["code"]),
            (s2, &v2["error"]["code"]),
            "{m} {p}"
        );
    }
    let (_, alice) = t.get("/api/v1/users?email=alice@", &a1).await;
    assert_eq!(alice["items"][0]["is_locked"], false);
}
