//! Admin writes are audited in their own transaction (secrets redacted, a
//! refused write leaves nothing), and the hash chains name the first row
//! changed behind the API's back.

use crate::audit_ingest::{event, gateway, ship, TEST_001};
use crate::binary::{run, urls};
use crate::common::*;
use axum::http::StatusCode;
use sentinel_admin::audit::chain;
use serde_json::{json, Value};

async fn admin_events(t: &TestApp) -> Vec<Value> {
    let rows: Vec<(Value,)> = sqlx::query_as(
        "SELECT to_jsonb(a) - 'hash' FROM sentinel.audit_logs a WHERE source = 'admin' ORDER BY time, chain_seq",
    )
    .fetch_all(&t.db.owner)
    .await
    .unwrap();
    rows.into_iter().map(|r| r.0).collect()
}

#[tokio::test]
async fn a_write_records_who_what_before_and_after() {
    let t = TestApp::new().await;
    let alice = t.admin("TEST-001").await;
    let alice_id = "aaaaaaaa-0000-4000-8000-000000000001";
    assert!(admin_events(&t).await.is_empty(), "logins are not writes");
    let (s, role) = t
        .post(
            "/api/v1/roles",
            &alice,
            json!({"name": "audited", "scopes": ["user:read"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{role}");
    let (s, v) = t
        .patch(
            &format!("/api/v1/roles/{}", role["id"].as_str().unwrap()),
            &alice,
            json!({"description": "now described"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let events = admin_events(&t).await;
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, vec!["role.create", "role.update"], "{events:#?}");
    let (create, update) = (&events[0], &events[1]);
    assert_eq!(create["principal_id"], alice_id);
    assert_eq!(create["principal_kind"], "user");
    assert_eq!(create["tenant_id"], TEST_001);
    assert_eq!(create["resource"], "role");
    assert_eq!(create["resource_id"], role["id"]);
    assert_eq!(create["method"], "POST");
    assert_eq!(create["path"], "/api/v1/roles");
    assert!(create["request_id"].is_string());
    assert!(create["before"].is_null());
    assert_eq!(create["after"]["name"], "audited");
    assert_eq!(update["before"]["description"], "");
    assert_eq!(update["after"]["description"], "now described");
    // The tenant's auditor reads them through the API.
    let axel = t.nordic(AXEL).await;
    let (s, v) = t
        .get(
            "/api/v1/audit/events?source=admin&action=role.update",
            &axel,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["items"].as_array().unwrap().len(), 1);
    assert_eq!(v["items"][0]["after"]["description"], "now described");
}

#[tokio::test]
async fn secrets_never_reach_the_trail() {
    let t = TestApp::new().await;
    let alice = t.admin("TEST-001").await;
    let (s, user) = t
        .post(
            "/api/v1/users",
            &alice,
            json!({"email": "new@nordic.example", "name": "New", "password": "Fresh-Passw0rd!"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{user}");
    let (s, sa) = t
        .post("/api/v1/service-accounts", &alice, json!({"name": "robot"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{sa}");
    let events = admin_events(&t).await;
    let text = serde_json::to_string(&events).unwrap();
    let secrets: Vec<(String, String)> = sqlx::query_as(
        "SELECT coalesce(password_hash, ''), coalesce(api_key_hash, '') FROM sentinel.users
          WHERE email = 'new@nordic.example' OR name = 'robot'",
    )
    .fetch_all(&t.db.owner)
    .await
    .unwrap();
    assert_eq!(secrets.len(), 2);
    for (pw, key) in secrets {
        for s in [pw, key].iter().filter(|s| !s.is_empty()) {
            assert!(!text.contains(s.as_str()), "a secret is in the trail");
        }
    }
    assert!(!text.contains("$argon2"), "a password hash is in the trail");
    assert!(!text.contains("Fresh-Passw0rd!"));
    let created: Vec<&Value> = events
        .iter()
        .filter(|e| e["action"] == "user.create" || e["action"] == "service_account.create")
        .collect();
    assert_eq!(created.len(), 2, "{events:#?}");
    assert!(created
        .iter()
        .any(|e| e["after"]["password_hash"] == "[redacted]"));
    assert!(created
        .iter()
        .any(|e| e["after"]["api_key_hash"] == "[redacted]"));
}

#[tokio::test]
async fn a_refused_or_failed_write_leaves_no_event() {
    let t = TestApp::new().await;
    let alice = t.admin("TEST-001").await;
    // Refused: a scope alice does not hold.
    let (s, v) = t
        .post(
            "/api/v1/roles",
            &alice,
            json!({"name": "too-strong", "scopes": ["tenant:admin"]}),
        )
        .await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    // Failed half way: the role row is written, then a permission id that
    // does not exist rolls everything back.
    let (s, v) = t
        .post(
            "/api/v1/roles",
            &alice,
            json!({"name": "half", "permission_ids": [uuid::Uuid::new_v4()]}),
        )
        .await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    assert!(admin_events(&t).await.is_empty());
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM sentinel.audit_pending")
        .fetch_one(&t.db.owner)
        .await
        .unwrap();
    assert_eq!(pending, 0);
    // A read leaves nothing either.
    let (s, _) = t.get("/api/v1/roles", &alice).await;
    assert_eq!(s, StatusCode::OK);
    assert!(admin_events(&t).await.is_empty());
}

#[tokio::test]
async fn verify_names_the_first_row_changed_behind_the_apis_back() {
    let t = TestApp::new().await;
    let key = gateway(&t, "gw").await;
    let batch: Vec<Value> = (0..20)
        .map(|i| event(Some(TEST_001), &format!("r-{i}")))
        .collect();
    let (s, _) = ship(&t, &key, &batch).await;
    assert_eq!(s, StatusCode::OK);
    let more: Vec<Value> = (0..5).map(|i| event(None, &format!("n-{i}"))).collect();
    let (s, _) = ship(&t, &key, &more).await;
    assert_eq!(s, StatusCode::OK);
    let alice = t.admin("TEST-001").await;
    let (s, _) = t
        .post("/api/v1/groups", &alice, json!({"name": "chained"}))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let report = chain::verify(&t.db.owner, None, None).await.unwrap();
    assert!(report.broken.is_none(), "{:?}", report.broken);
    assert_eq!(report.events, 26);
    assert_eq!(report.chains, 2);
    let (owner_url, _) = urls(&t.db.name);
    let (ok, out) = run(&owner_url, &["audit", "verify"], &[]).await;
    assert!(ok, "{out}");
    assert!(out.contains("intact"), "{out}");
    // A day range: today's chains only; a day without events is intact too.
    let today = chrono::Utc::now().date_naive().to_string();
    let (ok, out) = run(
        &owner_url,
        &["audit", "verify", "--from", &today, "--to", &today],
        &[],
    )
    .await;
    assert!(ok && out.contains("2 chains, 26 events"), "{out}");
    let (ok, out) = run(&owner_url, &["audit", "verify", "--to", "2000-01-01"], &[]).await;
    assert!(ok && out.contains("0 chains, 0 events"), "{out}");

    // Someone with the owner's rights rewrites one reason.
    let victim = batch[7]["id"].as_str().unwrap();
    sqlx::query("UPDATE sentinel.audit_logs SET reason = 'nothing to see' WHERE id = $1::uuid")
        .bind(victim)
        .execute(&t.db.owner)
        .await
        .unwrap();
    let report = chain::verify(&t.db.owner, None, None).await.unwrap();
    let broken = report.broken.expect("the change is found");
    assert_eq!(broken.id.map(|i| i.to_string()).as_deref(), Some(victim));
    assert!(broken.problem.contains("changed"), "{broken}");
    let (ok, out) = run(&owner_url, &["audit", "verify"], &[]).await;
    assert!(!ok, "{out}");
    assert!(out.contains(victim), "{out}");

    // Deleting a row is a gap; cutting the end is caught by the head.
    sqlx::query("UPDATE sentinel.audit_logs SET reason = $2 WHERE id = $1::uuid")
        .bind(victim)
        .bind(batch[7]["reason"].as_str().unwrap())
        .execute(&t.db.owner)
        .await
        .unwrap();
    assert!(chain::verify(&t.db.owner, None, None)
        .await
        .unwrap()
        .broken
        .is_none());
    sqlx::query(
        "DELETE FROM sentinel.audit_logs WHERE tenant_id IS NULL AND chain_seq = (
             SELECT max(chain_seq) FROM sentinel.audit_logs WHERE tenant_id IS NULL)",
    )
    .execute(&t.db.owner)
    .await
    .unwrap();
    let broken = chain::verify(&t.db.owner, None, None)
        .await
        .unwrap()
        .broken
        .expect("the cut end is found");
    assert!(broken.problem.contains("end cut off"), "{broken}");
    assert_eq!(broken.tenant, chain::NO_TENANT);
    sqlx::query("DELETE FROM sentinel.audit_logs WHERE tenant_id = $1::uuid AND chain_seq = 3")
        .bind(TEST_001)
        .execute(&t.db.owner)
        .await
        .unwrap();
    let broken = chain::verify(&t.db.owner, None, None)
        .await
        .unwrap()
        .broken
        .expect("the gap is found");
    assert_eq!(broken.seq, 4, "{broken}");
    assert!(broken.problem.contains("deleted"), "{broken}");
}

#[tokio::test]
async fn retention_deletes_a_tenants_old_days_and_drops_old_partitions() {
    let t = TestApp::with_config(sentinel_admin::config::Config {
        audit_retention_days: 100,
        ..test_config()
    })
    .await;
    let key = gateway(&t, "gw").await;
    let at = |days: i64, tenant: &str, rid: &str| {
        let mut e = event(Some(tenant), rid);
        let when = chrono::Utc::now() - chrono::Duration::days(days);
        e["time"] = json!(when.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        e
    };
    let test_002 = crate::audit_ingest::TEST_002;
    let batch = vec![
        at(200, TEST_001, "a-200"),
        at(50, TEST_001, "a-50"),
        at(0, TEST_001, "a-0"),
        at(200, test_002, "b-200"),
        at(50, test_002, "b-50"),
        at(0, test_002, "b-0"),
    ];
    let (s, v) = ship(&t, &key, &batch).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // TEST-001 keeps 300 days, TEST-002 30: the 200-day partition stays for TEST-001.
    set_retention(&t, TEST_001, 300).await;
    set_retention(&t, test_002, 30).await;
    sentinel_admin::audit::maintain(&t.state).await.unwrap();
    assert_eq!(
        gateway_request_ids(&t).await,
        vec!["a-0", "a-200", "a-50", "b-0"]
    );
    assert!(chain::verify(&t.db.owner, None, None)
        .await
        .unwrap()
        .broken
        .is_none());
    // Now nobody keeps more than 100 days: the old partition goes whole.
    let old = format!(
        "audit_logs_p{}",
        (chrono::Utc::now() - chrono::Duration::days(200)).format("%Y%m")
    );
    set_retention(&t, TEST_001, 30).await;
    sentinel_admin::audit::maintain(&t.state).await.unwrap();
    assert_eq!(gateway_request_ids(&t).await, vec!["a-0", "b-0"]);
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('sentinel.' || $1) IS NOT NULL")
        .bind(&old)
        .fetch_one(&t.db.owner)
        .await
        .unwrap();
    assert!(!exists, "{old} was not dropped");
    let report = chain::verify(&t.db.owner, None, None).await.unwrap();
    assert!(report.broken.is_none(), "{:?}", report.broken);
    assert_eq!(report.events, 2);
}

async fn set_retention(t: &TestApp, tenant: &str, days: i32) {
    sqlx::query(
        "UPDATE sentinel.tenants SET settings = settings || jsonb_build_object('audit_retention_days', $2::int)
          WHERE id = $1::uuid",
    )
    .bind(tenant)
    .bind(days)
    .execute(&t.db.owner)
    .await
    .unwrap();
}

async fn gateway_request_ids(t: &TestApp) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT request_id FROM sentinel.audit_logs WHERE source = 'gateway' ORDER BY request_id",
    )
    .fetch_all(&t.db.owner)
    .await
    .unwrap()
}
