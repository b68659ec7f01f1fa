//! `GET /api/v1/ai/predictions?user=` (issue 23, docs/ai.md): suggestions
//! from peers that hold and use a permission, above the threshold only,
//! with the calls that would grant it; never applied; tenant-scoped.

use crate::audit_ingest::{event, gateway, ship, TEST_001};
use crate::common::*;
use axum::http::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

const OLGA_ID: &str = "aaaaaaaa-0000-4000-8000-000000000005";
const ALICE_ID: &str = "aaaaaaaa-0000-4000-8000-000000000001";

async fn id_of(t: &TestApp, sql: &str) -> Uuid {
    sqlx::query_scalar(sql)
        .bind(Uuid::parse_str(TEST_001).unwrap())
        .fetch_one(&t.db.owner)
        .await
        .unwrap()
}

/// Three operators of the fleet department like Olga who also hold a
/// `voyage-closer` role (voyage delete); returns their ids.
async fn peers(t: &TestApp, admin: &str) -> Vec<String> {
    let perm = id_of(
        t,
        "SELECT id FROM sentinel.permissions WHERE tenant_id = $1 AND name = 'voyage-delete'",
    )
    .await;
    let operator = id_of(
        t,
        "SELECT id FROM sentinel.roles WHERE tenant_id = $1 AND name = 'operator'",
    )
    .await;
    let (s, closer) = t
        .post(
            "/api/v1/roles",
            admin,
            json!({"name": "voyage-closer", "permission_ids": [perm]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{closer}");
    let mut out = Vec::new();
    for i in 0..3 {
        let (s, u) = t
            .post(
                "/api/v1/users",
                admin,
                json!({"email": format!("peer{i}@nordic.example"), "password": DEMO_PASSWORD,
                       "attributes": {"department": "fleet", "email": format!("peer{i}@nordic.example")},
                       "role_ids": [operator, closer["id"]]}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{u}");
        out.push(u["id"].as_str().unwrap().to_owned());
    }
    out
}

/// An allowed voyage deletion by `who`, two days ago.
fn used(who: &str, n: usize) -> Value {
    let mut e = event(Some(TEST_001), &format!("use-{who}-{n}"));
    e["time"] = json!((chrono::Utc::now() - chrono::Duration::days(2))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    e["principal_id"] = json!(who);
    e["outcome"] = json!("allowed");
    e["code"] = Value::Null;
    e["resource"] = json!("voyage");
    e["action"] = json!("delete");
    e
}

#[tokio::test]
async fn peers_who_hold_and_use_a_permission_make_a_suggestion() {
    let t = TestApp::new().await;
    let alice = t.admin("TEST-001").await;
    let ids = peers(&t, &alice).await;
    let key = gateway(&t, "gw").await;
    let path = format!("/api/v1/ai/predictions?user={OLGA_ID}");

    // One peer of three used it: (1 + 0.5 + 0.5) / 3 < 0.8, nothing shown.
    let (s, _) = ship(&t, &key, &[used(&ids[0], 0)]).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = t.get(&path, &alice).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["threshold"], 0.8);
    assert_eq!(v["suggestions"], json!([]), "{v}");

    // All three used it: confidence 1, with the role that grants it.
    let (s, _) = ship(&t, &key, &[used(&ids[1], 1), used(&ids[2], 2)]).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = t.get(&path, &alice).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let sug = v["suggestions"].as_array().unwrap();
    assert_eq!(sug.len(), 1, "{v}");
    let one = &sug[0];
    assert_eq!(one["resource_type"], "voyage");
    assert_eq!(one["action"], "delete");
    assert_eq!(one["confidence"], 1.0);
    assert_eq!(one["holders"], 3);
    assert_eq!(one["users"], 3);
    assert_eq!(one["grant"]["role"], "voyage-closer");
    assert_eq!(
        one["grant"]["path"],
        format!("/api/v1/users/{OLGA_ID}/roles")
    );
    assert_eq!(one["access_request"]["path"], "/api/v1/access-requests");
    // The access request is a body the approvals endpoint takes as it is
    // (Olga may ask once she holds `approvals:request`).
    let (s, req) = t
        .post(
            "/api/v1/roles",
            &alice,
            json!({"name": "requester", "scopes": ["approvals:request"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{req}");
    let (s, v) = t
        .post(
            &format!("/api/v1/users/{OLGA_ID}/roles"),
            &alice,
            json!({"role_id": req["id"]}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (s, v) = t
        .post(
            "/api/v1/approval-chains",
            &alice,
            json!({"name": "voyage-closing", "resource_type": "voyage", "resource_pattern": "*",
                   "action": "delete", "default_duration_seconds": 600, "max_duration_seconds": 3600,
                   "levels": [{"approvers": {"type": "users", "user_ids": [ALICE_ID]}}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let olga = t.nordic(OLGA).await;
    let (s, v) = t
        .post(
            "/api/v1/access-requests",
            &olga,
            one["access_request"]["body"].clone(),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");

    // Never applied: Olga still may not delete voyages.
    let (_, c) = t
        .post(
            "/api/v1/permissions/check",
            &alice,
            json!({"user_id": OLGA_ID, "resource_type": "voyage", "action": "delete"}),
        )
        .await;
    assert_eq!(c["allowed"], false, "{c}");
    // Applying the proposal is the ordinary call, and then it is held.
    let (s, v) = t
        .post(
            one["grant"]["path"].as_str().unwrap(),
            &alice,
            one["grant"]["body"].clone(),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (_, v) = t.get(&path, &alice).await;
    assert_eq!(v["suggestions"], json!([]), "{v}");

    // Stored and logged under the tenant.
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sentinel.permission_predictions WHERE tenant_id = $1::uuid",
    )
    .bind(TEST_001)
    .fetch_one(&t.db.owner)
    .await
    .unwrap();
    assert_eq!(stored, 1);
    let logged: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sentinel.ai_decision_logs WHERE feature = 'prediction'",
    )
    .fetch_one(&t.db.owner)
    .await
    .unwrap();
    assert_eq!(logged, 3);
}

#[tokio::test]
async fn predictions_are_tenant_scoped_and_need_their_scopes() {
    let t = TestApp::new().await;
    let bob = t.admin("TEST-002").await;
    let path = format!("/api/v1/ai/predictions?user={OLGA_ID}");
    // Another tenant's user answers as a missing one.
    let (s, v) = t.get(&path, &bob).await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND");
    let (s, v) = t
        .get(
            &format!("/api/v1/ai/predictions?user={}", Uuid::new_v4()),
            &bob,
        )
        .await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND");
    // No scopes: refused.
    let victor = t.nordic(VICTOR).await;
    let (s, v) = t.get(&path, &victor).await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    // A bad id is a validation error.
    let alice = t.admin("TEST-001").await;
    let (s, v) = t.get("/api/v1/ai/predictions?user=nope", &alice).await;
    assert!(s.is_client_error(), "{v}");
    let (s, v) = t.get(&path, &alice).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}
