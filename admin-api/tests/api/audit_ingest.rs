//! `POST /api/v1/audit/events` (issue 18, docs/audit.md): gateway
//! batches, all or nothing, idempotent, and every bad input refused.

use crate::common::*;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use sentinel_admin::seed;
use serde_json::{json, Value};
use std::io::Write;
use tower::ServiceExt;

pub const TEST_001: &str = "11111111-1111-1111-1111-111111111111";
pub const TEST_002: &str = "22222222-2222-2222-2222-222222222222";

/// A valid gateway event (`denied`, with reason and rules).
pub fn event(tenant: Option<&str>, request_id: &str) -> Value {
    json!({
        "id": sentinel_admin::audit::event::new_v7().to_string(),
        "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "source": "gateway",
        "request_id": request_id,
        "tenant_id": tenant,
        "principal_id": "aaaaaaaa-0000-4000-8000-000000000002",
        "principal_kind": "user",
        "method": "DELETE",
        "route": "msw-vessels",
        "path": "/api/msw/vessels/42",
        "resource": "vessel",
        "resource_id": "42",
        "action": "delete",
        "outcome": "denied",
        "code": "PERMISSION_DENIED",
        "reason": "no permission allows `delete` on `vessel`",
        "rules": ["deny-delete", "viewer-read"],
        "client_ip": "203.0.113.7",
        "user_agent": "curl/8.0, \"quoted\"",
        "status": 403,
        "latency_ms": 0.25,
        "risk_score": 0.1,
        "snapshot_version": 7,
        "gateway": "whatever the gateway claims"
    })
}

pub fn ndjson(events: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in events {
        out.extend_from_slice(e.to_string().as_bytes());
        out.push(b'\n');
    }
    out
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// A gateway key (`gateway-key create`): holds `audit:write`.
pub async fn gateway(t: &TestApp, name: &str) -> String {
    seed::gateway_key(&t.db.owner, &test_config(), name, false, None)
        .await
        .unwrap()
        .key
}

/// Posts a raw body with headers; answers (status, JSON body).
pub async fn post_raw(
    t: &TestApp,
    key: Option<&str>,
    body: Vec<u8>,
    headers: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut b = Request::builder()
        .method("POST")
        .uri("/api/v1/audit/events");
    if let Some(k) = key {
        b = b.header("authorization", format!("ApiKey {k}"));
    }
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let resp = t
        .app
        .clone()
        .oneshot(b.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, v)
}

/// Ships a batch as ndjson; answers (status, body).
pub async fn ship(t: &TestApp, key: &str, events: &[Value]) -> (StatusCode, Value) {
    post_raw(
        t,
        Some(key),
        ndjson(events),
        &[("content-type", "application/x-ndjson")],
    )
    .await
}

pub async fn stored(t: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM sentinel.audit_logs WHERE source = 'gateway'")
        .fetch_one(&t.db.owner)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_batch_is_stored_once_and_a_replay_only_counts_duplicates() {
    let t = TestApp::new().await;
    let key = gateway(&t, "gw-a").await;
    let batch: Vec<Value> = (0..25)
        .map(|i| event(Some(TEST_001), &format!("req-{i}")))
        .collect();
    let (s, v) = ship(&t, &key, &batch).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v, json!({"accepted": 25, "duplicates": 0}));
    assert_eq!(stored(&t).await, 25);
    // The gateway column is the key's name, whatever the event said.
    let gateways: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT gateway FROM sentinel.audit_logs")
            .fetch_all(&t.db.owner)
            .await
            .unwrap();
    assert_eq!(gateways, vec!["gw-a"]);

    // The same batch again (a gateway that did not see the ack).
    let (s, v) = ship(&t, &key, &batch).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v, json!({"accepted": 0, "duplicates": 25}));
    assert_eq!(stored(&t).await, 25);

    // Another gateway replays those ids (and one new event): stored once,
    // and the first gateway's name stays.
    let other = gateway(&t, "gw-b").await;
    let mut replay = batch.clone();
    replay.push(event(Some(TEST_002), "req-new"));
    // Twice in the same batch counts once.
    replay.push(batch[0].clone());
    let (s, v) = ship(&t, &other, &replay).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v, json!({"accepted": 1, "duplicates": 26}));
    assert_eq!(stored(&t).await, 26);
    let by_gw: Vec<(String, i64)> = sqlx::query_as(
        "SELECT gateway, count(*) FROM sentinel.audit_logs GROUP BY gateway ORDER BY gateway",
    )
    .fetch_all(&t.db.owner)
    .await
    .unwrap();
    assert_eq!(by_gw, vec![("gw-a".to_owned(), 25), ("gw-b".to_owned(), 1)]);

    // Gzip is accepted.
    let more: Vec<Value> = (0..3).map(|i| event(None, &format!("anon-{i}"))).collect();
    let (s, v) = post_raw(
        &t,
        Some(&key),
        gzip(&ndjson(&more)),
        &[
            ("content-type", "application/x-ndjson"),
            ("content-encoding", "gzip"),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["accepted"], 3);
    // The stored event is the event sent (time to the millisecond).
    let sent = &batch[3];
    let row: (String, Vec<String>, Option<String>) = sqlx::query_as(
        "SELECT reason, rules, user_agent FROM sentinel.audit_logs WHERE id = $1::uuid",
    )
    .bind(sent["id"].as_str().unwrap())
    .fetch_one(&t.db.owner)
    .await
    .unwrap();
    assert_eq!(row.0, sent["reason"].as_str().unwrap());
    assert_eq!(row.1, vec!["deny-delete", "viewer-read"]);
    assert_eq!(row.2.as_deref(), sent["user_agent"].as_str());
    // The metrics count it.
    let (s, m) = t.request("GET", "/metrics", None, None, &[]).await;
    assert_eq!(s, StatusCode::OK);
    let m = m.as_str().unwrap();
    assert!(m.contains("sentinel_admin_audit_ingested_total 29"), "{m}");
    assert!(
        m.contains("sentinel_admin_audit_duplicates_total 51"),
        "{m}"
    );
}

#[tokio::test]
async fn a_bad_line_refuses_the_whole_batch_with_its_line_numbers() {
    let t = TestApp::new().await;
    let key = gateway(&t, "gw").await;
    let good = event(Some(TEST_001), "r1");
    let mut unknown = event(Some(TEST_001), "r2");
    unknown["rulez"] = json!([]);
    let mut bad_outcome = event(Some(TEST_001), "r3");
    bad_outcome["outcome"] = json!("maybe");
    let mut body = ndjson(std::slice::from_ref(&good));
    body.extend_from_slice(b"{not json\n");
    body.extend_from_slice(&ndjson(&[unknown, good.clone(), bad_outcome]));
    let (s, v) = post_raw(
        &t,
        Some(&key),
        body,
        &[("content-type", "application/x-ndjson")],
    )
    .await;
    let details = assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    let errors = details["errors"].as_array().unwrap();
    let lines: Vec<u64> = errors.iter().map(|e| e["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, vec![2, 3, 5], "{details}");
    assert!(errors[1]["message"]
        .as_str()
        .unwrap()
        .contains("unknown field `rulez`"));
    assert!(errors[2]["message"].as_str().unwrap().contains("`outcome`"));
    assert_eq!(stored(&t).await, 0, "nothing of a refused batch is stored");

    // At most 20 problems are listed.
    let many: Vec<u8> = (0..30).flat_map(|_| b"[]\n".to_vec()).collect();
    let (s, v) = post_raw(
        &t,
        Some(&key),
        many,
        &[("content-type", "application/x-ndjson")],
    )
    .await;
    let details = assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    assert_eq!(details["errors"].as_array().unwrap().len(), 20);
    assert_eq!(details["invalid_lines"], 30);

    // Not ndjson at all.
    let (s, v) = post_raw(
        &t,
        Some(&key),
        ndjson(&[good]),
        &[("content-type", "application/json")],
    )
    .await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    assert_eq!(stored(&t).await, 0);
}

#[tokio::test]
async fn oversize_batches_gzip_bombs_and_broken_gzip_are_refused() {
    let t = TestApp::new().await;
    let key = gateway(&t, "gw").await;
    let nd = [("content-type", "application/x-ndjson")];
    let gz = [
        ("content-type", "application/x-ndjson"),
        ("content-encoding", "gzip"),
    ];
    // More than 10,000 events.
    let line = event(Some(TEST_001), "r").to_string();
    let mut body = Vec::new();
    for _ in 0..10_001 {
        body.extend_from_slice(line.as_bytes());
        body.push(b'\n');
    }
    let (s, v) = post_raw(&t, Some(&key), body, &nd).await;
    assert_error(s, &v, StatusCode::PAYLOAD_TOO_LARGE, "BODY_TOO_LARGE");
    // More than 16 MiB as sent.
    let big = vec![b' '; 16 * 1024 * 1024 + 1];
    let (s, v) = post_raw(&t, Some(&key), big, &nd).await;
    assert_error(s, &v, StatusCode::PAYLOAD_TOO_LARGE, "BODY_TOO_LARGE");
    // A gzip bomb: 64 MiB of blanks in a few tens of KiB; stops at the cap.
    let bomb = gzip(&vec![b'\n'; 64 * 1024 * 1024]);
    assert!(bomb.len() < 1024 * 1024, "{}", bomb.len());
    let (s, v) = post_raw(&t, Some(&key), bomb, &gz).await;
    assert_error(s, &v, StatusCode::PAYLOAD_TOO_LARGE, "BODY_TOO_LARGE");
    // Broken gzip.
    let mut broken = gzip(&ndjson(&[event(Some(TEST_001), "r")]));
    broken.truncate(broken.len() / 2);
    let (s, v) = post_raw(&t, Some(&key), broken, &gz).await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    let (s, v) = post_raw(&t, Some(&key), b"not gzip at all".to_vec(), &gz).await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    assert_eq!(stored(&t).await, 0);
}

#[tokio::test]
async fn only_a_platform_key_holding_audit_write_may_ship() {
    let t = TestApp::new().await;
    let batch = [event(Some(TEST_001), "r")];
    let body = ndjson(&batch);
    let nd = [("content-type", "application/x-ndjson")];
    // No credential.
    let (s, v) = post_raw(&t, None, body.clone(), &nd).await;
    assert_error(s, &v, StatusCode::UNAUTHORIZED, "AUTH_REQUIRED");
    // A wrong key, a made-up key of a real prefix, garbage.
    let key = gateway(&t, "gw").await;
    let last = if key.ends_with('x') { 'y' } else { 'x' };
    let wrong = format!("{}{last}", &key[..key.len() - 1]);
    for k in [
        wrong.as_str(),
        "sk_nosuchpr_0000000000000000000000000000000000000000",
        "garbage",
    ] {
        let (s, v) = post_raw(&t, Some(k), body.clone(), &nd).await;
        assert_error(s, &v, StatusCode::UNAUTHORIZED, "AUTH_INVALID");
    }
    // A person's token is not a gateway key.
    let root = t.root().await;
    let (s, v) = t
        .request(
            "POST",
            "/api/v1/audit/events",
            Some(&root),
            None,
            &[("content-type", "application/x-ndjson")],
        )
        .await;
    assert_error(s, &v, StatusCode::UNAUTHORIZED, "AUTH_INVALID");
    // A tenant's service account (the demo `fleet-sync`) lacks the scope.
    let (s, v) = post_raw(&t, Some(seed::DEMO_API_KEY), body.clone(), &nd).await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    // So does a gateway whose role lost `audit:write`.
    sqlx::query(
        "UPDATE sentinel.roles SET scopes = array_remove(scopes, 'audit:write') WHERE name = 'snapshot-reader'",
    )
    .execute(&t.db.owner)
    .await
    .unwrap();
    let (s, v) = post_raw(&t, Some(&key), body.clone(), &nd).await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    assert_eq!(stored(&t).await, 0);
    // Given back, it ships.
    sqlx::query(
        "UPDATE sentinel.roles SET scopes = array_append(scopes, 'audit:write') WHERE name = 'snapshot-reader'",
    )
    .execute(&t.db.owner)
    .await
    .unwrap();
    let (s, v) = post_raw(&t, Some(&key), body, &nd).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn events_of_any_month_find_their_partition() {
    let t = TestApp::new().await;
    let key = gateway(&t, "gw").await;
    let mut old = event(Some(TEST_001), "old");
    let when = chrono::Utc::now() - chrono::Duration::days(200);
    old["time"] = json!(when.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    let (s, v) = ship(&t, &key, &[old]).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let part = format!("audit_logs_p{}", when.format("%Y%m"));
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('sentinel.' || $1) IS NOT NULL")
        .bind(&part)
        .fetch_one(&t.db.owner)
        .await
        .unwrap();
    assert!(exists, "{part}");
    // The API role cannot read a partition past the parent's policy.
    let err = sqlx::query(&format!("SELECT count(*) FROM sentinel.{part}"))
        .execute(&t.db.api)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("permission denied"), "{err}");
}

#[tokio::test]
async fn gateway_keys_made_before_the_migration_may_ship() {
    let t = TestApp::new().await;
    let key = gateway(&t, "old-gw").await;
    // The role as `gateway-key create` made it before migration 0004.
    sqlx::query(
        "UPDATE sentinel.roles SET scopes = ARRAY['snapshot:read'] WHERE name = 'snapshot-reader'",
    )
    .execute(&t.db.owner)
    .await
    .unwrap();
    let batch = [event(Some(TEST_001), "r")];
    let (s, v) = ship(&t, &key, &batch).await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    // The migration's own statement gives the existing role `audit:write`.
    let sql = include_str!("../../../migrations/0004_audit.sql");
    let stmt = sql
        .split("-- ---------------------------------------------------------------- gateway keys")
        .nth(1)
        .unwrap();
    sqlx::query(stmt).execute(&t.db.owner).await.unwrap();
    let (s, v) = ship(&t, &key, &batch).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let scopes: Vec<String> = sqlx::query_scalar(
        "SELECT unnest(scopes) FROM sentinel.roles WHERE name = 'snapshot-reader'",
    )
    .fetch_all(&t.db.owner)
    .await
    .unwrap();
    assert_eq!(scopes, vec!["snapshot:read", "audit:write"]);
}

#[tokio::test]
async fn two_gateways_shipping_the_same_events_at_once_store_them_once() {
    let t = TestApp::new().await;
    let (a, b) = (gateway(&t, "gw-a").await, gateway(&t, "gw-b").await);
    for round in 0..3 {
        let batch: Vec<Value> = (0..200)
            .map(|i| event(Some(TEST_001), &format!("c-{round}-{i}")))
            .collect();
        let ((s1, v1), (s2, v2)) = tokio::join!(ship(&t, &a, &batch), ship(&t, &b, &batch));
        assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK), "{v1} {v2}");
        let accepted = v1["accepted"].as_u64().unwrap() + v2["accepted"].as_u64().unwrap();
        let duplicates = v1["duplicates"].as_u64().unwrap() + v2["duplicates"].as_u64().unwrap();
        assert_eq!((accepted, duplicates), (200, 200), "{v1} {v2}");
    }
    assert_eq!(stored(&t).await, 600);
    let report = sentinel_admin::audit::chain::verify(&t.db.owner, None, None)
        .await
        .unwrap();
    assert!(report.broken.is_none(), "{:?}", report.broken);
    assert_eq!(report.events, 600);
}
