//! The compliance monitor on a generated tenant (`ai::fixture`): the
//! planted problems fail their checks and nothing else does; the report
//! comes as JSON and CSV; scheduled runs are leader-elected and due by
//! interval (with an injected clock); results stay in their tenant.

use crate::ai_optimizer::{fixture_admin, planted};
use crate::common::*;
use axum::http::StatusCode;
use sentinel_admin::ai::compliance;
use sentinel_admin::db::{self, TenantCtx};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

fn ids(list: &Value) -> BTreeSet<Uuid> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap().parse().unwrap())
        .collect()
}

#[tokio::test]
async fn planted_problems_fail_their_checks_and_nothing_else() {
    let t = TestApp::new().await;
    let p = planted(&t, "AI-COMP").await;
    let tok = fixture_admin(&t, &p, "AI-COMP").await;
    let (s, r) = t.post("/api/v1/ai/compliance/run", &tok, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["trigger"], "on_demand");
    let mut by: BTreeMap<(String, String), Value> = BTreeMap::new();
    for c in r["results"].as_array().unwrap() {
        by.insert(
            (
                c["regulation"].as_str().unwrap().to_owned(),
                c["check"].as_str().unwrap().to_owned(),
            ),
            c.clone(),
        );
    }
    assert_eq!(by.len(), 4 + 6 + 5 + 4, "{r:#}");
    for ((reg, check), c) in &by {
        let want = match check.as_str() {
            "sod_conflicts"
            | "dormant_accounts"
            | "stale_service_account_keys"
            | "audit_coverage" => "fail",
            "admin_mfa" => "not_modelled",
            "admin_count" | "audit_retention" => "pass",
            other => panic!("unexpected check {other}"),
        };
        assert_eq!(c["status"], want, "{reg} {check}: {c}");
    }
    let c = &by[&("SOX".to_owned(), "sod_conflicts".to_owned())];
    let who: BTreeSet<Uuid> = c["evidence"]["conflicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["principal"]["id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(who, BTreeSet::from([p.sod_user]));
    let c = &by[&("GDPR".to_owned(), "dormant_accounts".to_owned())];
    assert_eq!(
        ids(&c["evidence"]["accounts"]),
        p.dormant.iter().copied().collect()
    );
    let c = &by[&("ISPS".to_owned(), "stale_service_account_keys".to_owned())];
    assert_eq!(
        ids(&c["evidence"]["service_accounts"]),
        BTreeSet::from([p.stale_service_account])
    );
    let c = &by[&("HIPAA".to_owned(), "audit_coverage".to_owned())];
    assert_eq!(
        c["evidence"]["gaps"],
        json!([p.gap_day.unwrap().to_string()])
    );
    assert_eq!(r["non_compliant"], json!(["GDPR", "HIPAA", "ISPS", "SOX"]));

    // The latest report, as JSON and as CSV.
    let (s, latest) = t.get("/api/v1/ai/compliance", &tok).await;
    assert_eq!(s, StatusCode::OK, "{latest}");
    assert_eq!(latest["run_id"], r["run_id"]);
    assert_eq!(latest["results"].as_array().unwrap().len(), by.len());
    let (s, csv) = t.get("/api/v1/ai/compliance?format=csv", &tok).await;
    assert_eq!(s, StatusCode::OK);
    let csv = csv.as_str().unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "tenant_id,run_id,checked_at,regulation,check,status,severity,summary"
    );
    assert_eq!(lines.len(), by.len() + 1);
    assert!(
        lines
            .iter()
            .any(|l| l.contains(",SOX,sod_conflicts,fail,high,")),
        "{csv}"
    );
    let (s, b) = t.get("/api/v1/ai/compliance?format=xml", &tok).await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");

    // One regulation on demand.
    let (s, r) = t
        .post(
            "/api/v1/ai/compliance/run",
            &tok,
            json!({"regulations": ["ISPS"]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["results"].as_array().unwrap().len(), 4);
    let (s, b) = t
        .post(
            "/api/v1/ai/compliance/run",
            &tok,
            json!({"regulations": ["PCI"]}),
        )
        .await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
}

#[tokio::test]
async fn scheduled_runs_are_leader_elected_and_due_by_interval() {
    let t = TestApp::new().await;
    let p = planted(&t, "AI-SCHED").await;
    let now = chrono::Utc::now();
    let active: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sentinel.tenants WHERE status = 'active'")
            .fetch_one(&t.db.owner)
            .await
            .unwrap();

    // Another replica holds the lock: this one skips the round.
    let mut other = t.db.owner.acquire().await.unwrap();
    sqlx::query("SELECT pg_advisory_lock(hashtextextended('sentinel.ai.compliance', 0))")
        .execute(&mut *other)
        .await
        .unwrap();
    assert_eq!(compliance::run_due(&t.state, now).await.unwrap(), 0);
    sqlx::query("SELECT pg_advisory_unlock(hashtextextended('sentinel.ai.compliance', 0))")
        .execute(&mut *other)
        .await
        .unwrap();
    drop(other);

    // The leader runs every active tenant once per interval.
    let n = compliance::run_due(&t.state, now).await.unwrap();
    assert_eq!(n as i64, active);
    assert_eq!(
        compliance::run_due(&t.state, now + chrono::Duration::hours(1))
            .await
            .unwrap(),
        0
    );
    let later =
        now + chrono::Duration::seconds(t.state.config.compliance_interval_seconds as i64 + 1);
    assert_eq!(
        compliance::run_due(&t.state, later).await.unwrap() as i64,
        active
    );

    // The scheduled results are the fixture tenant's report, at the injected time.
    let tok = fixture_admin(&t, &p, "AI-SCHED").await;
    let (s, r) = t.get("/api/v1/ai/compliance", &tok).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["trigger"], "schedule");
    let at: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(r["checked_at"].clone()).unwrap();
    assert_eq!(at.timestamp(), later.timestamp());
}

#[tokio::test]
async fn reports_stay_in_their_tenant_and_need_ai_read() {
    let t = TestApp::new().await;
    let p = planted(&t, "AI-CISO").await;
    let tok = fixture_admin(&t, &p, "AI-CISO").await;
    let (s, r) = t.post("/api/v1/ai/compliance/run", &tok, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{r}");

    let alice = t.admin("TEST-001").await;
    let (s, b) = t.get("/api/v1/ai/compliance", &alice).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND");
    let victor = t.nordic(VICTOR).await;
    let (s, b) = t.get("/api/v1/ai/compliance", &victor).await;
    assert_error(s, &b, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    let (s, b) = t
        .post("/api/v1/ai/compliance/run", &victor, json!({}))
        .await;
    assert_error(s, &b, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    // The auditor reads (ai:read), and runs only for its own tenant.
    let axel = t.nordic(AXEL).await;
    let (s, b) = t.post("/api/v1/ai/compliance/run", &axel, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["tenant_id"], "11111111-1111-1111-1111-111111111111");
    // Naming the fixture tenant is refused: not a sub-tenant of TEST-001.
    let (s, b) = t
        .request(
            "GET",
            "/api/v1/ai/compliance",
            Some(&alice),
            None,
            &[("x-tenant-id", &p.tenant.to_string())],
        )
        .await;
    assert_error(s, &b, StatusCode::FORBIDDEN, "PERMISSION_DENIED");

    let test001: Uuid = "11111111-1111-1111-1111-111111111111".parse().unwrap();
    let mut tx = db::begin(&t.db.api, TenantCtx::One(test001)).await.unwrap();
    let foreign: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sentinel.compliance_monitoring WHERE tenant_id <> $1",
    )
    .bind(test001)
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert_eq!(foreign, 0);
    let owner_sees: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sentinel.compliance_monitoring WHERE tenant_id = $1",
    )
    .bind(p.tenant)
    .fetch_one(&t.db.owner)
    .await
    .unwrap();
    assert!(owner_sees > 0);
}
