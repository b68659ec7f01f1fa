//! Approval chains and just-in-time access (docs/approvals.md): chains are
//! validated when written, requests walk their levels, nobody approves their
//! own request or twice, concurrent approvers advance a level once, the last
//! approval makes a grant the snapshot carries, and every table is
//! tenant-scoped. Time, auto-approval and delegation: `approvals_time.rs`.

use crate::common::*;
use axum::http::StatusCode;
use chrono::{Duration, Utc};
use sentinel_admin::db::Tx;
use serde_json::{json, Value};

pub const PW: &str = "Zq8!mV3#pLx2wR-appr";

/// TEST-001 with a requester, approvers and roles made through the API.
pub struct Setup {
    pub alice: String,
    pub req: String,
    pub req_id: String,
    pub a1: String,
    pub a1_id: String,
    pub a2: String,
    pub a2_id: String,
    pub sec: String,
    pub sec_id: String,
    pub mgr: String,
    pub del: String,
    pub del_id: String,
}

pub async fn role(t: &TestApp, alice: &str, name: &str, scopes: &[&str]) -> String {
    let (s, v) = t
        .post(
            "/api/v1/roles",
            alice,
            json!({"name": name, "scopes": scopes}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v["id"].as_str().unwrap().to_owned()
}

pub async fn user(
    t: &TestApp,
    alice: &str,
    email: &str,
    role_id: &str,
    attrs: Value,
) -> (String, String) {
    let (s, v) = t
        .post(
            "/api/v1/users",
            alice,
            json!({"email": email, "password": PW, "role_ids": [role_id], "attributes": attrs}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    (t.login(email, PW, "TEST-001").await, id)
}

pub async fn setup(t: &TestApp) -> Setup {
    let alice = t.admin("TEST-001").await;
    let requester = role(t, &alice, "requester", &["approvals:request"]).await;
    let approver = role(t, &alice, "approver", &["approvals:decide"]).await;
    let security = role(t, &alice, "security", &["approvals:decide"]).await;
    let (req, req_id) = user(
        t,
        &alice,
        "req@nordic.example",
        &requester,
        json!({"manager": "mgr@nordic.example"}),
    )
    .await;
    let (a1, a1_id) = user(t, &alice, "a1@nordic.example", &approver, json!({})).await;
    let (a2, a2_id) = user(t, &alice, "a2@nordic.example", &approver, json!({})).await;
    let (sec, sec_id) = user(t, &alice, "sec@nordic.example", &security, json!({})).await;
    let (mgr, _) = user(t, &alice, "mgr@nordic.example", &approver, json!({})).await;
    let (del, del_id) = user(t, &alice, "del@nordic.example", &approver, json!({})).await;
    Setup {
        alice,
        req,
        req_id,
        a1,
        a1_id,
        a2,
        a2_id,
        sec,
        sec_id,
        mgr,
        del,
        del_id,
    }
}

/// A two-level chain: a1 or a2, then the `security` role.
pub fn two_levels(s: &Setup, name: &str) -> Value {
    json!({
        "name": name,
        "resource_type": "voyage",
        "resource_pattern": "*",
        "action": "delete",
        "levels": [
            {"approvers": {"type": "users", "user_ids": [s.a1_id, s.a2_id]}, "required_approvals": 1},
            {"approvers": {"type": "role", "role": "security"}}
        ],
        "default_duration_seconds": 600,
        "max_duration_seconds": 3600
    })
}

pub async fn chain(t: &TestApp, s: &Setup, body: Value) -> Value {
    let (st, v) = t.post("/api/v1/approval-chains", &s.alice, body).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    v
}

/// The body the gateway's `403 APPROVAL_REQUIRED` hands out.
pub fn gateway_body(chain: &str, voyage: &str) -> Value {
    json!({"approval_chain_id": chain, "resource": format!("voyage:{voyage}"), "action": "delete"})
}

pub async fn open(t: &TestApp, token: &str, body: Value) -> Value {
    let (st, v) = t.post("/api/v1/access-requests", token, body).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    v
}

pub async fn act(t: &TestApp, token: &str, id: &Value, verb: &str) -> (StatusCode, Value) {
    t.post(
        &format!("/api/v1/access-requests/{}/{verb}", id.as_str().unwrap()),
        token,
        json!({"comment": format!("{verb} from test")}),
    )
    .await
}

pub async fn inbox(t: &TestApp, token: &str) -> Vec<String> {
    let (st, v) = t.get("/api/v1/access-requests?assigned=me", token).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

pub async fn grants_in_source(t: &TestApp) -> Vec<sentinel_policy::source::GrantSource> {
    let mut tx = Tx::from(t.db.owner.begin().await.unwrap());
    sqlx::query("SELECT set_config('sentinel.all_tenants', 'on', true)")
        .execute(&mut *tx)
        .await
        .unwrap();
    let src = sentinel_admin::snapshot::source::load_source(&mut tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    sentinel_policy::compile(&src).expect("the stored policy compiles with its grants");
    src.grants
}

#[tokio::test]
async fn chains_are_validated_whole_when_written() {
    let t = TestApp::new().await;
    let s = setup(&t).await;
    let ok = two_levels(&s, "voyage-deletion");
    let bad = |f: &dyn Fn(&mut Value)| {
        let mut v = ok.clone();
        f(&mut v);
        v
    };
    let cases: Vec<(Value, &str)> = vec![
        (bad(&|v| v["levels"] = json!([])), "levels"),
        (
            bad(&|v| v["levels"][0]["approvers"] = json!({"type": "users", "user_ids": []})),
            "levels[0].approvers",
        ),
        (
            bad(&|v| v["levels"][1]["approvers"] = json!({"type": "role", "role": "nobody"})),
            "levels[1].approvers",
        ),
        // Two approvals from a role one person holds: never satisfiable.
        (
            bad(&|v| v["levels"][1]["required_approvals"] = json!(2)),
            "levels[1].approvers",
        ),
        (
            bad(&|v| v["levels"][0]["required_approvals"] = json!(3)),
            "levels[0].approvers",
        ),
        (
            bad(&|v| {
                v["levels"][0]["approvers"] = json!({"type": "manager"});
                v["levels"][0]["required_approvals"] = json!(2);
            }),
            "levels[0].approvers",
        ),
        (
            bad(&|v| v["levels"] = Value::Array(vec![ok["levels"][0].clone(); 6])),
            "levels",
        ),
        (
            bad(&|v| v["resource_pattern"] = json!("v*x*")),
            "resource_pattern",
        ),
        (bad(&|v| v["action"] = json!("Delete!")), "action"),
        (bad(&|v| v["name"] = json!("Voyage Deletion")), "name"),
        (
            bad(&|v| v["default_duration_seconds"] = json!(7200)),
            "default_duration_seconds",
        ),
        (
            bad(&|v| v["auto_approve_enabled"] = json!(true)),
            "auto_approve_conditions",
        ),
        (
            bad(&|v| {
                v["auto_approve_conditions"] = json!([{"type": "time", "hours_utc": [9, 25]}])
            }),
            "auto_approve_conditions",
        ),
        (
            bad(&|v| v["auto_approve_conditions"] = json!([{"type": "risk", "max": 0.3}])),
            "auto_approve_conditions",
        ),
        (
            bad(&|v| v["levels"][0]["timeout_seconds"] = json!(0)),
            "levels[0].timeout_seconds",
        ),
    ];
    for (body, field) in cases {
        let (st, v) = t
            .post("/api/v1/approval-chains", &s.alice, body.clone())
            .await;
        let details = assert_error(st, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
        assert!(details.get(field).is_some(), "{field}: {v}\n{body}");
    }
    // A named approver of another tenant is not an approver here.
    let (st, v) = t
        .post(
            "/api/v1/approval-chains",
            &s.alice,
            bad(&|v| {
                v["levels"][0]["approvers"] = json!({"type": "users",
                    "user_ids": ["bbbbbbbb-0000-4000-8000-000000000001"]})
            }),
        )
        .await;
    assert_error(st, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");

    let c = chain(&t, &s, ok.clone()).await;
    assert_eq!(c["levels"][0]["required_approvals"], 1);
    assert_eq!(c["auto_approve_enabled"], false, "seeds: off");
    let (st, v) = t
        .post("/api/v1/approval-chains", &s.alice, ok.clone())
        .await;
    assert_error(st, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    // A patch is validated as the whole chain it makes.
    let path = format!("/api/v1/approval-chains/{}", c["id"].as_str().unwrap());
    let (st, v) = t
        .patch(&path, &s.alice, json!({"default_duration_seconds": 99999}))
        .await;
    assert_error(st, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    let (st, v) = t
        .patch(&path, &s.alice, json!({"description": "two eyes"}))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");

    // Scopes: a requester reads chains but may not write them; no scope, no read.
    let (st, _) = t.get(&path, &s.req).await;
    assert_eq!(st, StatusCode::OK);
    let (st, v) = t
        .post("/api/v1/approval-chains", &s.req, two_levels(&s, "x"))
        .await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    let victor = t.nordic(VICTOR).await;
    let (st, v) = t.get(&path, &victor).await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    // Another tenant's admin: like a missing chain.
    let bob = t.admin("TEST-002").await;
    let (st, v) = t.get(&path, &bob).await;
    assert_error(st, &v, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND");
    let (st, v) = t.delete(&path, &bob).await;
    assert_error(st, &v, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND");

    // Written by an admin: audited like every admin write.
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sentinel.audit_logs WHERE source = 'admin' AND action IN ('approval_chain.create', 'approval_chain.update')",
    )
    .fetch_one(&t.db.owner)
    .await
    .unwrap();
    assert_eq!(n, 2);
}

#[tokio::test]
async fn two_levels_approve_into_a_grant_the_snapshot_carries() {
    let t = TestApp::new().await;
    let s = setup(&t).await;
    chain(&t, &s, two_levels(&s, "voyage-deletion")).await;
    let r = open(&t, &s.req, gateway_body("voyage-deletion", "voy-a1")).await;
    assert_eq!(r["status"], "pending");
    assert_eq!(r["current_level"], 1);
    assert_eq!(r["duration_seconds"], 600, "the chain's default");
    let id = r["id"].clone();
    // A second open request for the same thing is refused.
    let (st, v) = t
        .post(
            "/api/v1/access-requests",
            &s.req,
            gateway_body("voyage-deletion", "voy-a1"),
        )
        .await;
    assert_error(st, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");

    assert_eq!(inbox(&t, &s.a1).await, vec![id.as_str().unwrap()]);
    assert!(inbox(&t, &s.sec).await.is_empty(), "level 2 waits");
    // The requester may not decide (no scope), the second level not yet.
    let (st, v) = act(&t, &s.req, &id, "approve").await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    let (st, v) = act(&t, &s.sec, &id, "approve").await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "PERMISSION_DENIED");

    let (st, v) = act(&t, &s.a1, &id, "approve").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["current_level"], 2);
    assert_eq!(v["status"], "pending");
    // Nobody approves twice, at any level.
    let (st, v) = act(&t, &s.a1, &id, "approve").await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    assert!(grants_in_source(&t).await.is_empty());

    assert_eq!(inbox(&t, &s.sec).await, vec![id.as_str().unwrap()]);
    let (st, v) = act(&t, &s.sec, &id, "approve").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "approved");
    let grant_id = v["grant_id"].as_str().unwrap().to_owned();
    let (st, v) = act(&t, &s.a2, &id, "approve").await;
    assert_error(st, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");

    // The grant: the requester's, time-bound, in the snapshot source.
    let (st, v) = t.get("/api/v1/access-grants", &s.req).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["items"][0]["id"], grant_id.as_str());
    assert_eq!(v["items"][0]["approval_chain"], "voyage-deletion");
    let grants = grants_in_source(&t).await;
    assert_eq!(grants.len(), 1);
    let g = &grants[0];
    assert_eq!(g.principal.to_string(), s.req_id);
    assert_eq!(
        (g.resource.as_str(), g.actions.as_slice()),
        ("voy-a1", &["delete".to_owned()][..])
    );
    assert_eq!(g.approval_chain.as_deref(), Some("voyage-deletion"));
    let left = g.expires_at - Utc::now().timestamp();
    assert!((590..=600).contains(&left), "{left}");
    // The grant marked its tenant's shard dirty: the publisher ships it.
    let dirty: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sentinel.policy_dirty WHERE part = '11111111-1111-1111-1111-111111111111'
           AND revision = (SELECT revision FROM sentinel.policy_revision)",
    )
    .fetch_one(&t.db.owner)
    .await
    .unwrap();
    assert_eq!(dirty, 1);

    // The request with its decisions, for its requester; not for an outsider.
    let (st, v) = t
        .get(
            &format!("/api/v1/access-requests/{}", id.as_str().unwrap()),
            &s.req,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["decisions"].as_array().unwrap().len(), 2);
    assert_eq!(v["decisions"][0]["comment"], "approve from test");
    let (st, v) = t
        .get(
            &format!("/api/v1/access-requests/{}", id.as_str().unwrap()),
            &s.del,
        )
        .await;
    assert_error(st, &v, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND");

    // Notifications queued with each change, once each.
    let events: Vec<String> = sqlx::query_scalar(
        "SELECT event FROM sentinel.outbox WHERE subject_id = $1::text::uuid ORDER BY created_at, event",
    )
    .bind(id.as_str().unwrap())
    .fetch_all(&t.db.owner)
    .await
    .unwrap();
    let mut sorted = events.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        vec![
            "access_request.granted",
            "access_request.level_approved",
            "access_request.level_approved",
            "access_request.requested"
        ],
        "{events:?}"
    );

    // Every write of the workflow is an admin audit event of its caller.
    let audited: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT action FROM sentinel.audit_logs WHERE source = 'admin' AND resource IN
            ('access_request', 'approval_decision', 'access_grant') ORDER BY 1",
    )
    .fetch_all(&t.db.owner)
    .await
    .unwrap();
    assert_eq!(
        audited,
        vec![
            "access_grant.create",
            "access_request.create",
            "access_request.update",
            "approval_decision.create"
        ]
    );

    // Revocation: gone from the next snapshot.
    let (st, v) = t
        .post(
            &format!("/api/v1/access-grants/{grant_id}/revoke"),
            &s.a1,
            json!({}),
        )
        .await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    let (st, v) = t
        .post(
            &format!("/api/v1/access-grants/{grant_id}/revoke"),
            &s.alice,
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "revoked");
    assert!(grants_in_source(&t).await.is_empty());

    let (_, m) = t.request("GET", "/metrics", None, None, &[]).await;
    let m = m.as_str().unwrap();
    assert!(
        m.contains(r#"sentinel_approval_chains_total{action="delete",auto_approved="false",status="approved"} 1"#),
        "{m}"
    );
    assert!(m.contains("sentinel_approval_cycle_seconds_count 1"), "{m}");
}

#[tokio::test]
async fn self_approval_denial_and_cancel() {
    let t = TestApp::new().await;
    let s = setup(&t).await;
    // a1 may approve level 1, and asks for access on the same chain.
    let mut c = two_levels(&s, "voyage-deletion");
    c["levels"][0]["approvers"] = json!({"type": "users", "user_ids": [s.a1_id, s.a2_id]});
    chain(&t, &s, c).await;
    let mine = open(&t, &s.a1, gateway_body("voyage-deletion", "voy-9")).await;
    assert!(
        inbox(&t, &s.a1).await.is_empty(),
        "one's own request is not in one's inbox"
    );
    let (st, v) = act(&t, &s.a1, &mine["id"], "approve").await;
    let d = assert_error(st, &v, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    assert!(d.is_object());
    assert!(
        v["error"]["message"].as_str().unwrap().contains("own"),
        "{v}"
    );
    // Deny with a comment ends it; no grant.
    let (st, v) = act(&t, &s.a2, &mine["id"], "deny").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "denied");
    assert!(v["grant_id"].is_null());
    assert!(grants_in_source(&t).await.is_empty());

    // Cancel: only by the requester, only while pending.
    let r = open(&t, &s.req, gateway_body("voyage-deletion", "voy-1")).await;
    let (st, v) = act(&t, &s.a1, &r["id"], "cancel").await;
    assert_error(st, &v, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    let (st, v) = act(&t, &s.req, &r["id"], "cancel").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "cancelled");
    let (st, v) = act(&t, &s.req, &r["id"], "cancel").await;
    assert_error(st, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    let (st, v) = act(&t, &s.a1, &r["id"], "approve").await;
    assert_error(st, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");

    // Requests outside the chain: wrong action, resource, duration.
    for body in [
        json!({"approval_chain_id": "voyage-deletion", "resource": "voyage:v1", "action": "read"}),
        json!({"approval_chain_id": "voyage-deletion", "resource": "vessel:v1", "action": "delete"}),
        json!({"approval_chain_id": "voyage-deletion", "resource": "voyage:v1", "action": "delete", "duration": "2d"}),
        json!({"approval_chain_id": "nope", "resource": "voyage:v1", "action": "delete"}),
        json!({"approval_chain_id": "voyage-deletion", "resource": "v1", "action": "delete"}),
    ] {
        let (st, v) = t
            .post("/api/v1/access-requests", &s.req, body.clone())
            .await;
        assert_error(st, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    }
    // The chain found without naming it; a duration within the maximum.
    let r = open(
        &t,
        &s.req,
        json!({"resource": "voyage:v2", "action": "delete", "duration": "30m", "justification": "cleanup"}),
    )
    .await;
    assert_eq!(r["approval_chain"], "voyage-deletion");
    assert_eq!(r["duration_seconds"], 1800);
    // Another tenant's user sees none of it.
    let bob = t.admin("TEST-002").await;
    let (st, v) = t
        .get(
            &format!("/api/v1/access-requests/{}", r["id"].as_str().unwrap()),
            &bob,
        )
        .await;
    assert_error(st, &v, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND");
    let (st, v) = act(&t, &bob, &r["id"], "approve").await;
    assert_error(st, &v, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND");
}

#[tokio::test]
async fn concurrent_approvers_advance_a_level_once() {
    let t = TestApp::new().await;
    let s = setup(&t).await;
    chain(&t, &s, two_levels(&s, "voyage-deletion")).await;
    // One approval needed, two approvers at the same instant: one advances
    // the level, the other finds level 2 (not theirs).
    for round in 0..5 {
        let r = open(
            &t,
            &s.req,
            gateway_body("voyage-deletion", &format!("voy-{round}")),
        )
        .await;
        let ((s1, v1), (s2, v2)) = tokio::join!(
            act(&t, &s.a1, &r["id"], "approve"),
            act(&t, &s.a2, &r["id"], "approve")
        );
        let oks = [s1, s2].iter().filter(|s| **s == StatusCode::OK).count();
        assert_eq!(oks, 1, "{v1} {v2}");
        let loser = if s1 == StatusCode::OK { &v2 } else { &v1 };
        assert_eq!(loser["error"]["code"], "PERMISSION_DENIED", "{loser}");
        let (lvl, n): (i16, i64) = sqlx::query_as(
            "SELECT r.current_level, (SELECT count(*) FROM sentinel.approval_decisions d WHERE d.request_id = r.id)
               FROM sentinel.access_requests r WHERE r.id = $1::text::uuid",
        )
        .bind(r["id"].as_str().unwrap())
        .fetch_one(&t.db.owner)
        .await
        .unwrap();
        assert_eq!((lvl, n), (2, 1));
    }
    // Two approvals needed from two approvers at once: both count, the level
    // advances exactly once (to 2, never 3).
    let mut c = two_levels(&s, "three");
    c["levels"][0]["required_approvals"] = json!(2);
    c["levels"]
        .as_array_mut()
        .unwrap()
        .push(json!({"approvers": {"type": "manager"}}));
    chain(&t, &s, c).await;
    for round in 0..5 {
        let r = open(&t, &s.req, gateway_body("three", &format!("voy-{round}"))).await;
        let ((s1, v1), (s2, v2)) = tokio::join!(
            act(&t, &s.a1, &r["id"], "approve"),
            act(&t, &s.a2, &r["id"], "approve")
        );
        assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK), "{v1} {v2}");
        let lvl: i16 = sqlx::query_scalar(
            "SELECT current_level FROM sentinel.access_requests WHERE id = $1::text::uuid",
        )
        .bind(r["id"].as_str().unwrap())
        .fetch_one(&t.db.owner)
        .await
        .unwrap();
        assert_eq!(lvl, 2);
    }
    // The manager level: the requester's `manager` attribute names mgr.
    let (st, v) = t.get("/api/v1/access-requests?assigned=me", &s.mgr).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["items"].as_array().unwrap().len(), 0, "level 2 first");
}

#[tokio::test]
async fn approval_tables_are_tenant_scoped_under_forced_rls() {
    let t = TestApp::new().await;
    let s = setup(&t).await;
    chain(&t, &s, two_levels(&s, "voyage-deletion")).await;
    let r = open(&t, &s.req, gateway_body("voyage-deletion", "voy-1")).await;
    act(&t, &s.a1, &r["id"], "approve").await;
    act(&t, &s.sec, &r["id"], "approve").await;
    t.post(
        "/api/v1/approval-delegations",
        &s.a1,
        json!({"delegate_id": s.del_id, "ends_at": Utc::now() + Duration::hours(1)}),
    )
    .await;
    let tables = [
        "approval_chains",
        "access_requests",
        "approval_decisions",
        "approval_delegations",
        "access_grants",
    ];
    let forced: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = 'sentinel' AND c.relrowsecurity AND c.relforcerowsecurity",
    )
    .fetch_all(&t.db.owner)
    .await
    .unwrap();
    for table in tables {
        assert!(
            forced.iter().any(|f| f == table),
            "{table} does not force RLS"
        );
        let owner: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM sentinel.{table}"))
            .fetch_one(&t.db.owner)
            .await
            .unwrap();
        assert!(owner > 0, "{table} has no rows to hide");
        // No tenant set: nothing. Another tenant: nothing, and no writes into ours.
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM sentinel.{table}"))
            .fetch_one(&t.db.api)
            .await
            .unwrap();
        assert_eq!(n, 0, "{table} leaked rows without a tenant");
        let mut tx = t.db.api.begin().await.unwrap();
        sqlx::query(
            "SELECT set_config('sentinel.tenant_id', '22222222-2222-2222-2222-222222222222', true)",
        )
        .execute(&mut *tx)
        .await
        .unwrap();
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM sentinel.{table}"))
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert_eq!(n, 0, "{table} leaked rows to another tenant");
        let n = sqlx::query(&format!("DELETE FROM sentinel.{table}"))
            .execute(&mut *tx)
            .await
            .unwrap()
            .rows_affected();
        assert_eq!(n, 0);
        tx.rollback().await.unwrap();
    }
    let mut tx = t.db.api.begin().await.unwrap();
    sqlx::query(
        "SELECT set_config('sentinel.tenant_id', '22222222-2222-2222-2222-222222222222', true)",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    let err = sqlx::query(
        "INSERT INTO sentinel.access_grants (tenant_id, principal_id, resource_type, resource_id, actions, approval_chain, expires_at)
         VALUES ('11111111-1111-1111-1111-111111111111', $1::text::uuid, 'voyage', '*', '{delete}', 'x', now() + interval '1 hour')",
    )
    .bind(&s.req_id)
    .execute(&mut *tx)
    .await
    .unwrap_err();
    assert!(err.to_string().contains("row-level security"), "{err}");
}
