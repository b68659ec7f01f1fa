//! Reading the audit trail: filters, the cursor walk, "why was this request
//! denied", the export formats, and tenant isolation (through the API and
//! in SQL as the API role).

use crate::audit_ingest::{event, gateway, ship, TEST_001, TEST_002};
use crate::common::*;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sqlx::Connection;
use std::collections::HashSet;
use tower::ServiceExt;

/// 30 events of TEST-001 (10 denied), 12 of TEST-002, 3 without a tenant.
async fn world(t: &TestApp) -> Vec<Value> {
    let key = gateway(t, "gw").await;
    let mut all = Vec::new();
    for i in 0..30u32 {
        let mut e = event(Some(TEST_001), &format!("a-{i}"));
        if !i.is_multiple_of(3) {
            e["outcome"] = json!("allowed");
            e["code"] = Value::Null;
            e["route"] = json!("port-calls");
        }
        all.push(e);
    }
    for i in 0..12 {
        all.push(event(Some(TEST_002), &format!("b-{i}")));
    }
    for i in 0..3 {
        all.push(event(None, &format!("anon-{i}")));
    }
    let (s, v) = ship(t, &key, &all).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    all
}

async fn get_text(t: &TestApp, path: &str, token: &str) -> (StatusCode, String, String) {
    let req = Request::builder()
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let resp = t.app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, ct, String::from_utf8(bytes.to_vec()).unwrap())
}

fn ids(v: &Value) -> Vec<String> {
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn filters_select_and_the_cursor_walks_every_row_once_newest_first() {
    let t = TestApp::new().await;
    world(&t).await;
    let root = t.root().await;
    // The platform sees every tenant's events and the tenantless ones.
    let (s, v) = t.get("/api/v1/audit/events?limit=1000", &root).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["items"].as_array().unwrap().len(), 45);
    assert!(v["next_cursor"].is_null());
    // Filters.
    for (q, n) in [
        (format!("tenant_id={TEST_001}"), 30),
        (format!("tenant_id={TEST_001}&outcome=denied"), 10),
        ("outcome=denied&code=PERMISSION_DENIED".to_owned(), 25),
        ("route=port-calls".to_owned(), 20),
        ("request_id=b-3".to_owned(), 1),
        (
            "source=gateway&resource=vessel&action=delete".to_owned(),
            45,
        ),
        (
            "principal_id=aaaaaaaa-0000-4000-8000-000000000002".to_owned(),
            45,
        ),
        ("source=admin&resource=vessel".to_owned(), 0),
        (
            "from=2000-01-01T00:00:00Z&to=2001-01-01T00:00:00Z".to_owned(),
            0,
        ),
    ] {
        let (s, v) = t
            .get(&format!("/api/v1/audit/events?limit=1000&{q}"), &root)
            .await;
        assert_eq!(s, StatusCode::OK, "{q}: {v}");
        assert_eq!(v["items"].as_array().unwrap().len(), n, "{q}");
    }
    // Bad filters.
    for q in [
        "outcome=maybe",
        "limit=0",
        "limit=1001",
        "cursor=nope",
        "bogus=1",
        "format=csv",
    ] {
        let (s, v) = t.get(&format!("/api/v1/audit/events?{q}"), &root).await;
        assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    }
    // The cursor walk: pages of 7, every row once, newest first.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/audit/events?limit=7&cursor={c}"),
            None => "/api/v1/audit/events?limit=7".to_owned(),
        };
        let (s, v) = t.get(&path, &root).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let items = v["items"].as_array().unwrap();
        assert!(items.len() <= 7);
        for e in items {
            seen.push((
                e["time"].as_str().unwrap().to_owned(),
                e["id"].as_str().unwrap().to_owned(),
            ));
        }
        pages += 1;
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
        assert!(pages < 20);
    }
    assert_eq!(seen.len(), 45);
    assert_eq!(
        seen.iter().collect::<HashSet<_>>().len(),
        45,
        "a row came twice"
    );
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted, "not newest first");
}

#[tokio::test]
async fn why_was_this_request_denied() {
    let t = TestApp::new().await;
    let all = world(&t).await;
    let root = t.root().await;
    let (s, v) = t.get("/api/v1/audit/requests/a-0", &root).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let e = &v["items"][0];
    assert_eq!(e["id"], all[0]["id"]);
    assert_eq!(e["outcome"], "denied");
    assert_eq!(e["reason"], all[0]["reason"]);
    assert_eq!(e["rules"], json!(["deny-delete", "viewer-read"]));
    assert_eq!(e["gateway"], "gw");
    assert_eq!(e["time"], all[0]["time"]);
    let (s, v) = t.get("/api/v1/audit/requests/no-such-request", &root).await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND");
}

#[tokio::test]
async fn a_tenants_auditor_sees_its_tenant_only() {
    let t = TestApp::new().await;
    world(&t).await;
    let axel = t.nordic(AXEL).await;
    let (s, v) = t.get("/api/v1/audit/events?limit=1000", &axel).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 30);
    assert!(items.iter().all(|e| e["tenant_id"] == TEST_001));
    // Asking for another tenant finds nothing; its request ids are missing.
    let (s, v) = t
        .get(&format!("/api/v1/audit/events?tenant_id={TEST_002}"), &axel)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(v["items"].as_array().unwrap().is_empty());
    for other in ["b-1", "anon-0"] {
        let (s, v) = t
            .get(&format!("/api/v1/audit/requests/{other}"), &axel)
            .await;
        assert_error(s, &v, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND");
    }
    let (s, _, body) = get_text(&t, "/api/v1/audit/export?format=jsonl", &axel).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body.lines().count(), 30);
    assert!(!body.contains(TEST_002));
    // Naming another tenant in X-Tenant-ID is refused outright.
    let (s, v) = t
        .request(
            "GET",
            "/api/v1/audit/events",
            Some(&axel),
            None,
            &[("x-tenant-id", TEST_002)],
        )
        .await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    // TEST-002's admin sees TEST-002's.
    let bob = t.admin("TEST-002").await;
    let (s, v) = t.get("/api/v1/audit/events?limit=1000", &bob).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ids(&v).len(), 12);
    // Without `audit:read` (a viewer): refused.
    let victor = t.nordic(VICTOR).await;
    let (s, v) = t.get("/api/v1/audit/events", &victor).await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    let (s, _, _) = get_text(&t, "/api/v1/audit/export", &victor).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_api_role_sees_a_tenants_events_only_in_sql_too() {
    let t = TestApp::new().await;
    world(&t).await;
    // Positive control: the owner sees them all.
    let all: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sentinel.audit_logs WHERE source = 'gateway'")
            .fetch_one(&t.db.owner)
            .await
            .unwrap();
    assert_eq!(all, 45);
    // No tenant set: nothing.
    let mut conn = sqlx::PgConnection::connect_with(&t.db.api_options)
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM sentinel.audit_logs")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 0);
    // TEST-001 set: its 30, none of another tenant or tenantless.
    let mut tx = conn.begin().await.unwrap();
    sqlx::query(&format!(
        "SELECT set_config('sentinel.tenant_id', '{TEST_001}', true)"
    ))
    .execute(&mut *tx)
    .await
    .unwrap();
    let (mine, other): (i64, i64) = sqlx::query_as(&format!(
        "SELECT count(*) FILTER (WHERE tenant_id = '{TEST_001}'),
                count(*) FILTER (WHERE tenant_id IS DISTINCT FROM '{TEST_001}') FROM sentinel.audit_logs"
    ))
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert_eq!((mine, other), (30, 0));
    // Cannot write another tenant's event, nor change or delete its own.
    let mut sp = tx.begin().await.unwrap();
    let err = sqlx::query(&format!(
        "INSERT INTO sentinel.audit_logs (time, id, source, tenant_id, outcome, chain_seq, hash)
         VALUES (now(), gen_random_uuid(), 'gateway', '{TEST_002}', 'allowed', 1, '\\x00')"
    ))
    .execute(&mut *sp)
    .await
    .unwrap_err();
    assert!(err.to_string().contains("row-level security"), "{err}");
    sp.rollback().await.unwrap();
    for stmt in [
        "UPDATE sentinel.audit_logs SET reason = 'rewritten'",
        "DELETE FROM sentinel.audit_logs",
    ] {
        let mut sp = tx.begin().await.unwrap();
        let err = sqlx::query(stmt).execute(&mut *sp).await.unwrap_err();
        assert!(
            err.to_string().contains("permission denied"),
            "{stmt}: {err}"
        );
        sp.rollback().await.unwrap();
    }
    tx.rollback().await.unwrap();
}

#[tokio::test]
async fn the_export_is_csv_or_json_lines() {
    let t = TestApp::new().await;
    let key = gateway(&t, "gw").await;
    let mut tricky = event(Some(TEST_001), "tricky");
    tricky["reason"] = json!("comma, \"quote\" and\nnew line");
    let plain = event(Some(TEST_001), "plain");
    let (s, _) = ship(&t, &key, &[tricky.clone(), plain]).await;
    assert_eq!(s, StatusCode::OK);
    let alice = t.admin("TEST-001").await;

    let (s, ct, body) = get_text(&t, "/api/v1/audit/export?format=jsonl", &alice).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(ct.starts_with("application/x-ndjson"), "{ct}");
    let lines: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &Value| e["source"] == "gateway")
        .collect();
    assert_eq!(lines.len(), 2);
    let back = lines.iter().find(|e| e["request_id"] == "tricky").unwrap();
    assert_eq!(back["reason"], tricky["reason"]);

    let (s, ct, body) =
        get_text(&t, "/api/v1/audit/export?format=csv&source=gateway", &alice).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(ct.starts_with("text/csv"), "{ct}");
    let rows = parse_csv(&body);
    assert_eq!(rows.len(), 3, "{body}");
    assert_eq!(rows[0][0], "id");
    let reason_col = rows[0].iter().position(|c| c == "reason").unwrap();
    let ua_col = rows[0].iter().position(|c| c == "user_agent").unwrap();
    let tricky_row = rows.iter().find(|r| r[3] == "tricky").unwrap();
    assert_eq!(tricky_row[reason_col], "comma, \"quote\" and\nnew line");
    assert_eq!(tricky_row[ua_col], "curl/8.0, \"quoted\"");
    assert!(rows.iter().all(|r| r.len() == rows[0].len()));

    let (s, v) = t.get("/api/v1/audit/export?format=xml", &alice).await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
}

/// A small RFC 4180 reader (quoted cells may hold commas, quotes, newlines).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut cell)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => cell.push(c),
        }
    }
    rows
}
