//! Tenants, sub-tenants, hierarchy, pagination.

use crate::common::*;
use axum::http::StatusCode;
use serde_json::json;

#[tokio::test]
async fn platform_admin_manages_tenants() {
    let t = TestApp::new().await;
    let root = t.root().await;
    let (s, v) = t.post("/api/v1/tenants", &root, json!({"code": "ACME", "name": "Acme Shipping", "settings": {"rate_limit_plan": "premium"}})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["type"], "root");
    let id = v["id"].as_str().unwrap().to_owned();
    let (s, v) = t.get(&format!("/api/v1/tenants/{id}"), &root).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["settings"]["rate_limit_plan"], "premium");
    let (s, v) = t.get("/api/v1/tenants/code/ACME", &root).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["id"], id.as_str());

    let (s, v) = t
        .patch(
            &format!("/api/v1/tenants/{id}"),
            &root,
            json!({"name": "Acme Shipping AS", "status": "suspended"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "suspended");
    let (s, v) = t
        .post(&format!("/api/v1/tenants/{id}/activate"), &root, json!({}))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["status"], "active");

    let (s, sub) = t
        .post(
            &format!("/api/v1/tenants/{id}/sub-tenants"),
            &root,
            json!({"code": "ACME-NO", "name": "Acme Norway"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{sub}");
    assert_eq!(sub["type"], "sub");
    assert_eq!(sub["parent_id"], id.as_str());
    let (s, h) = t
        .get(
            &format!("/api/v1/tenants/{}/hierarchy", sub["id"].as_str().unwrap()),
            &root,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["ancestors"][0]["code"], "ACME");
    let (_, h) = t
        .get(&format!("/api/v1/tenants/{id}/hierarchy"), &root)
        .await;
    assert_eq!(h["descendants"][0]["code"], "ACME-NO");

    // Delete refuses a tenant with sub-tenants, then works bottom-up.
    let (s, v) = t.delete(&format!("/api/v1/tenants/{id}"), &root).await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    let (s, _) = t
        .delete(
            &format!("/api/v1/tenants/{}", sub["id"].as_str().unwrap()),
            &root,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = t.delete(&format!("/api/v1/tenants/{id}"), &root).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) = t.get(&format!("/api/v1/tenants/{id}"), &root).await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND");
    // The platform tenant stays.
    let (s, v) = t
        .delete(
            "/api/v1/tenants/00000000-0000-0000-0000-000000000000",
            &root,
        )
        .await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
}

#[tokio::test]
async fn tenant_validation_errors() {
    let t = TestApp::new().await;
    let root = t.root().await;
    let (s, v) = t
        .post(
            "/api/v1/tenants",
            &root,
            json!({"code": "bad code", "name": "", "type": "weird", "settings": []}),
        )
        .await;
    let d = assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    for f in ["code", "name", "type", "settings"] {
        assert!(d[f].is_array(), "{f}: {d}");
    }
    let (s, v) = t
        .post(
            "/api/v1/tenants",
            &root,
            json!({"code": "TEST-001", "name": "Dup"}),
        )
        .await;
    let d = assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    assert!(
        d["code"][0].as_str().unwrap().contains("already exists"),
        "{d}"
    );
    let (s, v) = t
        .post(
            "/api/v1/tenants",
            &root,
            json!({"code": "X1", "name": "x", "parent_id": "55555555-5555-5555-5555-555555555555"}),
        )
        .await;
    let d = assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    assert!(d["parent_id"].is_array(), "{d}");
    let (s, v) = t
        .post(
            "/api/v1/tenants",
            &root,
            json!({"code": "X2", "name": "x", "unknown": 1}),
        )
        .await;
    let d = assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    assert!(d["unknown"].is_array(), "{d}");
    let (s, v) = t
        .request("POST", "/api/v1/tenants", Some(&root), None, &[])
        .await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    let (s, v) = t.get("/api/v1/tenants/not-a-uuid", &root).await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND");
    let (s, v) = t.get("/api/v1/tenants?limit=0", &root).await;
    let d = assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    assert!(d["limit"].is_array(), "{d}");
    let (s, v) = t.get("/api/v1/tenants?sort=password", &root).await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    let (s, v) = t.get("/api/v1/tenants?cursor=zzz", &root).await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    let (s, v) = t.get("/api/v1/nope", &root).await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND");
}

#[tokio::test]
async fn pagination_walks_every_row_once() {
    let t = TestApp::new().await;
    let root = t.root().await;
    for i in 0..7 {
        let (s, _) = t
            .post(
                "/api/v1/tenants",
                &root,
                json!({"code": format!("PG-{i}"), "name": format!("Page {i}")}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED);
    }
    for sort in ["created_at", "-created_at", "code", "-name"] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let url = match &cursor {
                Some(c) => format!("/api/v1/tenants?limit=3&sort={sort}&cursor={c}"),
                None => format!("/api/v1/tenants?limit=3&sort={sort}"),
            };
            let (s, page) = t.get(&url, &root).await;
            assert_eq!(s, StatusCode::OK, "{page}");
            for item in page["items"].as_array().unwrap() {
                seen.push(item["code"].as_str().unwrap().to_owned());
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        // PLATFORM + 4 demo tenants + 7.
        assert_eq!(seen.len(), 12, "{sort}: {seen:?}");
        let mut dedup = seen.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(dedup.len(), 12, "{sort}");
        if sort == "code" {
            let mut sorted = seen.clone();
            sorted.sort();
            assert_eq!(seen, sorted);
        }
    }
    let (_, v) = t.get("/api/v1/tenants?status=active&type=sub", &root).await;
    assert_eq!(v["items"].as_array().unwrap().len(), 1);
    assert_eq!(v["items"][0]["code"], "TEST-001-SUB");
}

#[tokio::test]
async fn tenant_admin_sees_own_tenant_and_children_only() {
    let t = TestApp::new().await;
    let admin = t.admin("TEST-001").await;
    let (s, v) = t.get("/api/v1/tenants", &admin).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let mut codes: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["code"].as_str().unwrap())
        .collect();
    codes.sort();
    assert_eq!(codes, vec!["TEST-001", "TEST-001-SUB"]);
    let (s, v) = t
        .get(
            "/api/v1/tenants/22222222-2222-2222-2222-222222222222",
            &admin,
        )
        .await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND");
    // Creating tenants needs tenant:admin, which tenant admins do not hold.
    let (s, v) = t
        .post(
            "/api/v1/tenants",
            &admin,
            json!({"code": "ROGUE", "name": "Rogue"}),
        )
        .await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    let (s, v) = t
        .patch(
            "/api/v1/tenants/11111111-1111-1111-1111-111111111111",
            &admin,
            json!({"name": "x"}),
        )
        .await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
}
