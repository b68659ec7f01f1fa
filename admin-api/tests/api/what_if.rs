//! `POST /api/v1/policy/what-if` (issue 22): a recorded set of gateway
//! decisions, shipped through the real ingest endpoint, replayed through a
//! proposed change; the answer names exactly the decisions that flip,
//! nothing is written, another tenant's events are never replayed, and bad
//! bodies and missing scopes are refused.

use crate::audit_ingest::{event, gateway, ship, TEST_001, TEST_002};
use crate::common::*;
use axum::http::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

const ALICE_ID: &str = "aaaaaaaa-0000-4000-8000-000000000001";
const VICTOR_ID: &str = "aaaaaaaa-0000-4000-8000-000000000002";
const PIA_ID: &str = "bbbbbbbb-0000-4000-8000-000000000002";
const PATH: &str = "/api/v1/policy/what-if";

/// A gateway decision of `principal` in `tenant`, `minutes_ago`.
fn decision(
    tenant: &str,
    principal: &str,
    (resource, id, action): (&str, &str, &str),
    reason: &str,
    rules: &[&str],
    minutes_ago: i64,
) -> Value {
    let mut e = event(
        Some(tenant),
        &format!("{principal}-{resource}-{id}-{action}"),
    );
    let time = chrono::Utc::now() - chrono::Duration::minutes(minutes_ago);
    e["time"] = json!(time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    e["principal_id"] = json!(principal);
    e["resource"] = json!(resource);
    e["resource_id"] = json!(id);
    e["action"] = json!(action);
    e["method"] = json!(match action {
        "read" => "GET",
        "delete" => "DELETE",
        _ => "PUT",
    });
    e["reason"] = json!(reason);
    e["rules"] = json!(rules);
    let allowed = reason == "allowed";
    e["outcome"] = json!(if allowed { "allowed" } else { "denied" });
    e["code"] = if allowed {
        Value::Null
    } else {
        json!("PERMISSION_DENIED")
    };
    e["status"] = json!(if allowed { 200 } else { 403 });
    e
}

async fn id_of(t: &TestApp, table: &str, tenant: &str, name: &str) -> Uuid {
    sqlx::query_scalar(&format!(
        "SELECT id FROM sentinel.{table} WHERE tenant_id = $1::uuid AND name = $2"
    ))
    .bind(tenant)
    .bind(name)
    .fetch_one(&t.db.owner)
    .await
    .unwrap_or_else(|e| panic!("{table} {name}: {e}"))
}

/// The recorded world: TEST-001's decisions (8 events, one of them not a
/// policy decision) and TEST-002's (3), all within the last hour, plus one
/// TEST-001 decision two days old.
async fn record(t: &TestApp) {
    let vessel_read = id_of(t, "permissions", TEST_001, "vessel-read")
        .await
        .to_string();
    let fleet_all = id_of(t, "permissions", TEST_001, "fleet-all")
        .await
        .to_string();
    let flagship = id_of(t, "permissions", TEST_001, "deny-delete-flagship")
        .await
        .to_string();
    let key = gateway(t, "gw-whatif").await;
    let mut events = vec![
        // Victor (viewer) read the flagship twice and another vessel once.
        decision(
            TEST_001,
            VICTOR_ID,
            ("vessel", "v-a1", "read"),
            "allowed",
            &[&vessel_read],
            5,
        ),
        decision(
            TEST_001,
            VICTOR_ID,
            ("vessel", "v-a1", "read"),
            "allowed",
            &[&vessel_read],
            6,
        ),
        decision(
            TEST_001,
            VICTOR_ID,
            ("vessel", "v-b7", "read"),
            "allowed",
            &[&vessel_read],
            7,
        ),
        // Victor may not update a vessel.
        decision(
            TEST_001,
            VICTOR_ID,
            ("vessel", "v-b7", "update"),
            "no_matching_permission",
            &[],
            8,
        ),
        // Alice (tenant admin) may not delete the flagship, may delete another.
        decision(
            TEST_001,
            ALICE_ID,
            ("vessel", "v-a1", "delete"),
            "explicit_deny",
            &[&flagship],
            9,
        ),
        decision(
            TEST_001,
            ALICE_ID,
            ("vessel", "v-c3", "delete"),
            "allowed",
            &[&fleet_all],
            10,
        ),
        // Alice read a vessel (fleet-all, not vessel-read).
        decision(
            TEST_001,
            ALICE_ID,
            ("vessel", "v-a1", "read"),
            "allowed",
            &[&fleet_all],
            11,
        ),
        // Not a policy decision (a rate limit): read, not replayed.
        decision(
            TEST_001,
            VICTOR_ID,
            ("vessel", "v-a1", "read"),
            "rate_limited",
            &[],
            12,
        ),
        // Outside the default window.
        decision(
            TEST_001,
            VICTOR_ID,
            ("vessel", "v-old", "read"),
            "allowed",
            &[&vessel_read],
            48 * 60,
        ),
    ];
    // TEST-002: Pia's reads, and an event that claims Victor while filed
    // under TEST-002: a TEST-001 what-if that replayed it would flip it.
    for (who, id) in [(PIA_ID, "p-1"), (PIA_ID, "p-2"), (VICTOR_ID, "v-a1")] {
        events.push(decision(
            TEST_002,
            who,
            ("vessel", id, "read"),
            "allowed",
            &["x"],
            3,
        ));
    }
    let (s, v) = ship(t, &key, &events).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["accepted"], 12, "{v}");
}

/// Every table a change or a publication would touch, as the owner sees it.
async fn fingerprint(t: &TestApp) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for table in [
        "permissions",
        "role_permissions",
        "roles",
        "user_roles",
        "user_groups",
        "groups",
        "group_roles",
        "users",
        "access_grants",
        "policy_dirty",
        "policy_revision",
        "policy_snapshots",
        "policy_parts",
        "outbox",
        "audit_logs",
    ] {
        let h: String = sqlx::query_scalar(&format!(
            "SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM sentinel.{table} t"
        ))
        .fetch_one(&t.db.owner)
        .await
        .unwrap();
        out.push((table.to_owned(), h));
    }
    out
}

/// One flipped group: rule, principal, flip, and the (request, count) pairs.
type Flip = (String, String, String, Vec<(String, u64)>);

fn flips(v: &Value) -> Vec<Flip> {
    v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["flip"].as_str().unwrap().to_owned(),
                g["rules"].as_str().unwrap().to_owned(),
                g["reason"].as_str().unwrap().to_owned(),
                g["principals"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| {
                        (
                            p["id"].as_str().unwrap().to_owned(),
                            p["count"].as_u64().unwrap(),
                        )
                    })
                    .collect(),
            )
        })
        .collect()
}

#[tokio::test]
async fn removing_a_permission_flips_exactly_the_reads_it_allowed_and_writes_nothing() {
    let t = TestApp::new().await;
    record(&t).await;
    let alice = t.admin("TEST-001").await;
    let viewer = id_of(&t, "roles", TEST_001, "viewer").await;
    let vessel_read = id_of(&t, "permissions", TEST_001, "vessel-read").await;
    let before = fingerprint(&t).await;
    let (s, v) = t
        .post(
            PATH,
            &alice,
            json!({"changes": [{"op": "remove_permission", "role_id": viewer, "permission_id": vessel_read}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // Eight events of TEST-001 in the window, seven of them decisions.
    assert_eq!(v["lines"], 8, "{v}");
    assert_eq!(v["replayed"], 7, "{v}");
    assert_eq!(v["skipped"], json!({"not a policy decision": 1}), "{v}");
    // Victor's three vessel reads, and nothing else (Alice reads through fleet-all).
    assert_eq!(v["flipped"], 3, "{v}");
    assert_eq!(v["allow_to_deny"], 3, "{v}");
    assert_eq!(v["deny_to_allow"], 0, "{v}");
    assert_eq!(
        flips(&v),
        vec![(
            "allow -> deny".to_owned(),
            vessel_read.to_string(),
            "no_matching_permission".to_owned(),
            vec![(VICTOR_ID.to_owned(), 3)]
        )]
    );
    assert_eq!(v["groups"][0]["principals"][0]["name"], VICTOR, "{v}");
    assert_eq!(v["truncated"], false);
    assert_eq!(v["changes"], 1);
    assert!(v["elapsed_ms"].as_f64().unwrap() >= 0.0);
    // Nothing written, published or queued.
    assert_eq!(fingerprint(&t).await, before);

    // A window that reaches back two days replays the old read too.
    let since = (chrono::Utc::now() - chrono::Duration::days(3)).to_rfc3339();
    let (s, v) = t
        .post(
            PATH,
            &alice,
            json!({"since": since, "changes": [{"op": "remove_permission", "role_id": viewer, "permission_id": vessel_read}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["lines"].as_u64(), v["flipped"].as_u64()),
        (Some(9), Some(4)),
        "{v}"
    );
    // A limit replays the newest events only, and says so.
    let (s, v) = t
        .post(
            PATH,
            &alice,
            json!({"limit": 2, "changes": [{"op": "remove_permission", "role_id": viewer, "permission_id": vessel_read}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["lines"].as_u64(), v["flipped"].as_u64()),
        (Some(2), Some(2)),
        "{v}"
    );
    assert_eq!(v["truncated"], true);
    assert_eq!(fingerprint(&t).await, before);
}

#[tokio::test]
async fn adding_grants_and_removing_a_deny_flip_the_expected_denials() {
    let t = TestApp::new().await;
    record(&t).await;
    let alice = t.admin("TEST-001").await;
    let viewer = id_of(&t, "roles", TEST_001, "viewer").await;
    let vessel_update = id_of(&t, "permissions", TEST_001, "vessel-update").await;
    let flagship = id_of(&t, "permissions", TEST_001, "deny-delete-flagship").await;
    let before = fingerprint(&t).await;
    let (s, v) = t
        .post(
            PATH,
            &alice,
            json!({"changes": [
                {"op": "add_permission", "role_id": viewer, "permission_id": vessel_update},
                {"op": "remove_deny", "permission_id": flagship},
                {"op": "add_deny", "role_id": viewer, "resource_type": "vessel", "resource": "v-a1", "actions": ["read"]}
            ]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["replayed"], 7, "{v}");
    assert_eq!(
        (v["allow_to_deny"].as_u64(), v["deny_to_allow"].as_u64()),
        (Some(2), Some(2)),
        "{v}"
    );
    let mut got = flips(&v);
    got.sort();
    let mut want = vec![
        // The new deny takes Victor's two flagship reads (not v-b7).
        (
            "allow -> deny".to_owned(),
            "proposed-deny-2".to_owned(),
            "explicit_deny".to_owned(),
            vec![(VICTOR_ID.to_owned(), 2)],
        ),
        // Victor's update is allowed by the permission added to his role.
        (
            "deny -> allow".to_owned(),
            vessel_update.to_string(),
            "allowed".to_owned(),
            vec![(VICTOR_ID.to_owned(), 1)],
        ),
        // Alice's flagship delete, once the deny is gone, by fleet-all.
        (
            "deny -> allow".to_owned(),
            id_of(&t, "permissions", TEST_001, "fleet-all")
                .await
                .to_string(),
            "allowed".to_owned(),
            vec![(ALICE_ID.to_owned(), 1)],
        ),
    ];
    want.sort();
    assert_eq!(got, want, "{v}");
    assert_eq!(fingerprint(&t).await, before);
}

#[tokio::test]
async fn another_tenants_events_and_objects_are_never_reached() {
    let t = TestApp::new().await;
    record(&t).await;
    let (alice, bob) = (t.admin("TEST-001").await, t.admin("TEST-002").await);
    let viewer_1 = id_of(&t, "roles", TEST_001, "viewer").await;
    let read_1 = id_of(&t, "permissions", TEST_001, "vessel-read").await;
    let viewer_2 = id_of(&t, "roles", TEST_002, "viewer").await;
    let read_2 = id_of(&t, "permissions", TEST_002, "vessel-read").await;
    // TEST-001's replay never reads the TEST-002 event that names Victor.
    let (s, v) = t
        .post(
            PATH,
            &alice,
            json!({"changes": [{"op": "remove_permission", "role_id": viewer_1, "permission_id": read_1}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["lines"].as_u64(), v["flipped"].as_u64()),
        (Some(8), Some(3)),
        "{v}"
    );
    // TEST-002's replay reads its three events only: Pia's two reads flip,
    // the event naming TEST-001's Victor is no principal of its policy.
    let (s, v) = t
        .post(
            PATH,
            &bob,
            json!({"changes": [{"op": "remove_permission", "role_id": viewer_2, "permission_id": read_2}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["lines"], 3, "{v}");
    assert_eq!(
        v["skipped"],
        json!({"principal in neither policy": 1}),
        "{v}"
    );
    assert_eq!(
        flips(&v)
            .iter()
            .flat_map(|g| g.3.clone())
            .collect::<Vec<_>>(),
        vec![(PIA_ID.to_owned(), 2)]
    );
    // Bob cannot name TEST-001's role or permission.
    let (s, v) = t
        .post(
            PATH,
            &bob,
            json!({"changes": [{"op": "remove_permission", "role_id": viewer_1, "permission_id": read_1}]}),
        )
        .await;
    let d = assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    assert!(
        d["changes[0].role_id"][0]
            .as_str()
            .unwrap()
            .contains("no role"),
        "{d}"
    );
    assert!(
        d["changes[0].permission_id"][0]
            .as_str()
            .unwrap()
            .contains("no active permission"),
        "{d}"
    );
    // Nor aim at TEST-001 through X-Tenant-ID (not a sub-tenant of his).
    let (s, v) = t
        .request(
            "POST",
            PATH,
            Some(&bob),
            Some(json!({"changes": [{"op": "remove_permission", "role_id": viewer_1, "permission_id": read_1}]})),
            &[("x-tenant-id", TEST_001)],
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
}

#[tokio::test]
async fn bad_bodies_are_refused_with_every_problem_named() {
    let t = TestApp::new().await;
    let alice = t.admin("TEST-001").await;
    let viewer = id_of(&t, "roles", TEST_001, "viewer").await;
    let vessel_read = id_of(&t, "permissions", TEST_001, "vessel-read").await;
    let allow = id_of(&t, "permissions", TEST_001, "fleet-all").await;
    let victor: Uuid = VICTOR_ID.parse().unwrap();
    let nobody = Uuid::new_v4();
    let cases: Vec<(Value, &str)> = vec![
        (json!({}), "changes"),
        (json!({"changes": []}), "changes"),
        (json!({"changes": [{"op": "rename_everything"}]}), "body"),
        (
            json!({"changes": [{"op": "remove_permission", "role_id": viewer}]}),
            "permission_id",
        ),
        (
            json!({"changes": [{"op": "remove_permission", "role_id": "not-a-uuid", "permission_id": vessel_read}]}),
            "body",
        ),
        (
            json!({"changes": [{"op": "remove_permission", "role_id": viewer, "permission_id": vessel_read, "x": 1}]}),
            "x",
        ),
        (
            json!({"changes": [{"op": "remove_permission", "role_id": nobody, "permission_id": vessel_read}]}),
            "changes[0].role_id",
        ),
        (
            json!({"changes": [{"op": "add_permission", "role_id": viewer, "permission_id": vessel_read}]}),
            "changes[0].permission_id",
        ),
        (
            json!({"changes": [{"op": "assign_role", "user_id": nobody, "role_id": viewer}]}),
            "changes[0].user_id",
        ),
        (
            json!({"changes": [{"op": "assign_role", "user_id": victor, "role_id": viewer}]}),
            "changes[0].role_id",
        ),
        (
            json!({"changes": [{"op": "add_member", "group_id": nobody, "user_id": victor}]}),
            "changes[0].group_id",
        ),
        (
            json!({"changes": [{"op": "remove_deny", "permission_id": allow}]}),
            "changes[0].permission_id",
        ),
        (
            json!({"changes": [{"op": "add_deny", "role_id": viewer, "resource_type": "Vessel", "actions": ["read"]}]}),
            "changes[0].resource_type",
        ),
        (
            json!({"changes": [{"op": "add_deny", "role_id": viewer, "resource_type": "vessel", "actions": []}]}),
            "changes[0].actions",
        ),
        (
            json!({"changes": [{"op": "remove_deny", "permission_id": nobody}], "since": "2026-12-08T00:00:00Z", "until": "2026-12-07T00:00:00Z"}),
            "until",
        ),
        (
            json!({"changes": [{"op": "remove_deny", "permission_id": nobody}], "limit": 0}),
            "limit",
        ),
        (
            json!({"changes": [{"op": "remove_deny", "permission_id": nobody}], "limit": 1_000_001}),
            "limit",
        ),
        (
            json!({"changes": [{"op": "remove_deny", "permission_id": nobody}], "since": "yesterday"}),
            "body",
        ),
    ];
    for (body, field) in cases {
        let (s, v) = t.post(PATH, &alice, body.clone()).await;
        let d = assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
        assert!(d.get(field).is_some(), "{body}: expected `{field}` in {d}");
    }
    // A second change's problems are named with the first's.
    let (s, v) = t
        .post(
            PATH,
            &alice,
            json!({"changes": [
                {"op": "remove_permission", "role_id": viewer, "permission_id": nobody},
                {"op": "unassign_role", "user_id": victor, "role_id": nobody}
            ]}),
        )
        .await;
    let d = assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    assert!(
        d.get("changes[0].permission_id").is_some() && d.get("changes[1].role_id").is_some(),
        "{d}"
    );
}

#[tokio::test]
async fn the_policy_and_audit_read_scopes_are_both_required() {
    let t = TestApp::new().await;
    let alice = t.admin("TEST-001").await;
    let body = json!({"changes": [{"op": "remove_deny", "permission_id": id_of(&t, "permissions", TEST_001, "deny-delete-flagship").await}]});
    // Olga gets `policy:read` only; Victor holds no scope at all.
    let (s, v) = t
        .post(
            "/api/v1/roles",
            &alice,
            json!({"name": "policy-reader", "scopes": ["policy:read"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let olga_id: String =
        sqlx::query_scalar("SELECT id::text FROM sentinel.users WHERE email = $1")
            .bind(OLGA)
            .fetch_one(&t.db.owner)
            .await
            .unwrap();
    let (s, v) = t
        .post(
            &format!("/api/v1/users/{olga_id}/roles"),
            &alice,
            json!({"role_id": v["id"]}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (s, v) = t.post(PATH, &t.nordic(OLGA).await, body.clone()).await;
    let _ = assert_error(s, &v, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("audit:read"),
        "{v}"
    );
    let (s, v) = t.post(PATH, &t.nordic(VICTOR).await, body.clone()).await;
    let _ = assert_error(s, &v, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    // No credential at all.
    let (s, v) = t.request("POST", PATH, None, Some(body.clone()), &[]).await;
    let _ = assert_error(s, &v, StatusCode::UNAUTHORIZED, "AUTH_REQUIRED");
    // The auditor holds both (every area read, and the audit trail).
    let (s, v) = t.post(PATH, &t.nordic(AXEL).await, body).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["lines"], 0, "{v}");
}

/// The replay rate of the endpoint at 100,000 stored events (docs/PERFORMANCE.md,
/// "What-if replay"): four request shapes of the demo personas, a quarter
/// of them flipping.
#[tokio::test]
#[ignore = "measurement: what-if replay rate at 100,000 audit events (docs/PERFORMANCE.md)"]
async fn measure_the_replay_rate_at_100000_events() {
    const N: i64 = 100_000;
    let t = TestApp::new().await;
    // One event through the ingest endpoint makes this month's partition.
    let key = gateway(&t, "gw-measure").await;
    let one = decision(
        TEST_001,
        ALICE_ID,
        ("vessel", "v-a1", "read"),
        "allowed",
        &[],
        1,
    );
    assert_eq!(ship(&t, &key, &[one]).await.0, StatusCode::OK);
    let mut tx = t.db.owner.begin().await.unwrap();
    sqlx::query("SELECT set_config('sentinel.all_tenants', 'on', true)")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO sentinel.audit_logs
           (time, id, source, request_id, tenant_id, principal_id, principal_kind, method, route, path,
            resource, resource_id, action, outcome, code, reason, rules, client_ip, user_agent, status,
            latency_ms, risk_score, snapshot_version, gateway, chain_seq, hash)
         SELECT now() - make_interval(secs => g / 10.0), gen_random_uuid(), 'gateway', 'req-' || g,
                $1::uuid,
                CASE WHEN g % 4 < 2 THEN 'aaaaaaaa-0000-4000-8000-000000000002' ELSE 'aaaaaaaa-0000-4000-8000-000000000001' END,
                'user',
                (ARRAY['GET', 'PUT', 'DELETE', 'GET'])[g % 4 + 1], 'msw-vessels', '/api/msw/vessels/v-a1',
                'vessel', 'v-a1', (ARRAY['read', 'update', 'delete', 'read'])[g % 4 + 1],
                (ARRAY['allowed', 'denied', 'denied', 'allowed'])[g % 4 + 1], NULL,
                (ARRAY['allowed', 'no_matching_permission', 'explicit_deny', 'allowed'])[g % 4 + 1],
                '{}', '203.0.113.7', 'curl/8.0', 200, 0.25, 0.1, 7, 'gw-measure', g, '\\x00'
           FROM generate_series(1, $2) g",
    )
    .bind(TEST_001)
    .bind(N)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let alice = t.admin("TEST-001").await;
    let viewer = id_of(&t, "roles", TEST_001, "viewer").await;
    let vessel_read = id_of(&t, "permissions", TEST_001, "vessel-read").await;
    let body = json!({"changes": [{"op": "remove_permission", "role_id": viewer, "permission_id": vessel_read}]});
    for run in 0..3 {
        let started = std::time::Instant::now();
        let (s, v) = t.post(PATH, &alice, body.clone()).await;
        let wall = started.elapsed().as_secs_f64();
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["replayed"], N + 1, "{v}");
        assert_eq!(v["flipped"], N / 4, "{v}");
        let ms = v["elapsed_ms"].as_f64().unwrap();
        eprintln!(
            "run {run}: {} events, {} flipped, handler {ms:.0} ms ({:.0} events/s), request {wall:.2} s",
            v["lines"],
            v["flipped"],
            v["lines"].as_f64().unwrap() / (ms / 1000.0),
        );
    }
}
