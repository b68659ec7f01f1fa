//! `POST /api/v1/ai/query` (issue 23, docs/ai.md): a table of questions on
//! the demo policy with the typed query each maps to and its answer; what
//! is not understood gets suggestions; tenants, scopes and the switch.

use crate::audit_ingest::{event, gateway, ship, TEST_001, TEST_002};
use crate::common::*;
use axum::http::StatusCode;
use chrono::{Duration, Utc};
use serde_json::{json, Value};
use std::collections::BTreeSet;

const ALICE_ID: &str = "aaaaaaaa-0000-4000-8000-000000000001";
const VICTOR_ID: &str = "aaaaaaaa-0000-4000-8000-000000000002";
const BOB_ID: &str = "bbbbbbbb-0000-4000-8000-000000000001";

fn at(e: &mut Value, t: chrono::DateTime<Utc>, principal: &str, outcome: &str) {
    e["time"] = json!(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    e["principal_id"] = json!(principal);
    e["outcome"] = json!(outcome);
    if outcome == "allowed" {
        e["code"] = Value::Null;
        e["reason"] = Value::Null;
    }
}

/// Audit events: alice 5 allowed requests two days ago and one ten days
/// ago; victor denied twice today; bob (TEST-002) denied yesterday at 14:02
/// and at 09:00. The fleet-sync key is made 100 days old.
async fn world(t: &TestApp) {
    let key = gateway(t, "gw").await;
    let now = Utc::now();
    let today = now.date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc();
    let earlier_today = today + (now - today) / 2;
    let yesterday = today - Duration::days(1);
    let mut all = Vec::new();
    for i in 0..5 {
        let mut e = event(Some(TEST_001), &format!("alice-{i}"));
        at(&mut e, now - Duration::days(2), ALICE_ID, "allowed");
        all.push(e);
    }
    let mut e = event(Some(TEST_001), "alice-old");
    at(&mut e, now - Duration::days(10), ALICE_ID, "allowed");
    all.push(e);
    for i in 0..2 {
        let mut e = event(Some(TEST_001), &format!("victor-{i}"));
        at(&mut e, earlier_today, VICTOR_ID, "denied");
        all.push(e);
    }
    let mut e = event(Some(TEST_002), "bob-1402");
    at(
        &mut e,
        yesterday + Duration::hours(14) + Duration::minutes(2) + Duration::seconds(30),
        BOB_ID,
        "denied",
    );
    e["reason"] = json!("a deny permission matched");
    all.push(e);
    let mut e = event(Some(TEST_002), "bob-0900");
    at(&mut e, yesterday + Duration::hours(9), BOB_ID, "denied");
    all.push(e);
    let (s, v) = ship(t, &key, &all).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    sqlx::query(
        "UPDATE sentinel.users SET api_key_created_at = now() - interval '100 days' WHERE name = 'fleet-sync'",
    )
    .execute(&t.db.owner)
    .await
    .unwrap();
}

async fn ask(t: &TestApp, token: &str, q: &str) -> (StatusCode, Value) {
    t.post("/api/v1/ai/query", token, json!({ "question": q }))
        .await
}

/// What a row expects of the answer.
enum Want {
    /// The set of `key` of the items.
    Names(&'static str, &'static [&'static str]),
    /// The answer's count.
    Count(i64),
}

struct Row {
    asker: &'static str,
    question: &'static str,
    query: Value,
    want: Want,
}

fn row(asker: &'static str, question: &'static str, query: Value, want: Want) -> Row {
    Row {
        asker,
        question,
        query,
        want,
    }
}

const ALICE_E: &str = "alice@nordic.example";
const VICTOR_E: &str = "victor@nordic.example";
const OLGA_E: &str = "olga@nordic.example";
const LENA_E: &str = "lena@nordic.example";

fn table() -> Vec<Row> {
    use Want::*;
    let week = json!({"span": "last_days", "days": 7});
    let today = json!({"span": "today"});
    vec![
        row(
            "alice",
            "who can delete vessels in Nordic Shipping",
            json!({"kind": "who_can", "action": "delete", "resource_type": "vessel", "tenant": "nordic shipping"}),
            Names("name", &[ALICE_E]),
        ),
        row(
            "alice",
            "Who can read vessels?",
            json!({"kind": "who_can", "action": "read", "resource_type": "vessel"}),
            Names("name", &[ALICE_E, VICTOR_E, OLGA_E, "fleet-sync"]),
        ),
        row(
            "alice",
            "who can delete vessel v-a1",
            json!({"kind": "who_can", "action": "delete", "resource_type": "vessel", "resource_id": "v-a1"}),
            Names("name", &[]),
        ),
        row(
            "alice",
            "who can view port calls",
            json!({"kind": "who_can", "action": "read", "resource_type": "port_call"}),
            Names("name", &[ALICE_E, VICTOR_E, OLGA_E]),
        ),
        row(
            "alice",
            "who is allowed to update port calls",
            json!({"kind": "who_can", "action": "update", "resource_type": "port_call"}),
            Names("name", &[]),
        ),
        row(
            "alice",
            "which users can create voyages",
            json!({"kind": "who_can", "action": "create", "resource_type": "voyage"}),
            Names("name", &[ALICE_E, OLGA_E, "fleet-sync"]),
        ),
        row(
            "alice",
            "who can remove voyages in TEST-001",
            json!({"kind": "who_can", "action": "delete", "resource_type": "voyage", "tenant": "test-001"}),
            Names("name", &[ALICE_E]),
        ),
        row(
            "alice",
            "what can victor do on port calls",
            json!({"kind": "what_can", "principal": "victor", "resource_type": "port_call"}),
            Count(1),
        ),
        row(
            "alice",
            "what can olga do on vessels",
            json!({"kind": "what_can", "principal": "olga", "resource_type": "vessel"}),
            Count(2),
        ),
        row(
            "alice",
            "what can alice do with voyages",
            json!({"kind": "what_can", "principal": "alice", "resource_type": "voyage"}),
            Count(4),
        ),
        row(
            "alice",
            "what is axel allowed to do",
            json!({"kind": "what_can", "principal": "axel"}),
            Count(0),
        ),
        row(
            "alice",
            "what can fleet-sync do on vessels",
            json!({"kind": "what_can", "principal": "fleet-sync", "resource_type": "vessel"}),
            Count(1),
        ),
        row(
            "alice",
            "can victor update vessels",
            json!({"kind": "can", "principal": "victor", "action": "update", "resource_type": "vessel"}),
            Count(0),
        ),
        row(
            "alice",
            "can olga edit vessels",
            json!({"kind": "can", "principal": "olga", "action": "update", "resource_type": "vessel"}),
            Count(1),
        ),
        row(
            "alice",
            "can alice delete vessel v-a1",
            json!({"kind": "can", "principal": "alice", "action": "delete", "resource_type": "vessel", "resource_id": "v-a1"}),
            Count(0),
        ),
        row(
            "alice",
            "can alice delete vessel v-a2",
            json!({"kind": "can", "principal": "alice", "action": "delete", "resource_type": "vessel", "resource_id": "v-a2"}),
            Count(1),
        ),
        row(
            "alice",
            "can lena read vessels",
            json!({"kind": "can", "principal": "lena", "action": "read", "resource_type": "vessel"}),
            Count(0),
        ),
        row(
            "alice",
            "is fleet-sync allowed to create voyages",
            json!({"kind": "can", "principal": "fleet-sync", "action": "create", "resource_type": "voyage"}),
            Count(1),
        ),
        row(
            "alice",
            "may victor see port calls",
            json!({"kind": "can", "principal": "victor", "action": "read", "resource_type": "port_call"}),
            Count(1),
        ),
        row(
            "alice",
            "which roles does alice have",
            json!({"kind": "roles_of", "principal": "alice"}),
            Names("role", &["tenant_admin", "port_agent"]),
        ),
        row(
            "alice",
            "what roles does olga have",
            json!({"kind": "roles_of", "principal": "olga"}),
            Names("role", &["operator", "viewer"]),
        ),
        row(
            "alice",
            "roles of victor",
            json!({"kind": "roles_of", "principal": "victor"}),
            Names("role", &["viewer", "port_agent"]),
        ),
        row(
            "alice",
            "who has the role viewer",
            json!({"kind": "role_members", "role": "viewer"}),
            Names("name", &[VICTOR_E, LENA_E]),
        ),
        row(
            "alice",
            "who has the tenant_admin role",
            json!({"kind": "role_members", "role": "tenant_admin"}),
            Names("name", &[ALICE_E]),
        ),
        row(
            "alice",
            "who is an operator",
            json!({"kind": "role_members", "role": "operator"}),
            Names("name", &[OLGA_E]),
        ),
        row(
            "alice",
            "who is in the nordic-port-team group",
            json!({"kind": "group_members", "group": "nordic-port-team"}),
            Names("name", &[ALICE_E, VICTOR_E]),
        ),
        row(
            "alice",
            "which users are in group Nordic-Port-Team",
            json!({"kind": "group_members", "group": "nordic-port-team"}),
            Names("name", &[ALICE_E, VICTOR_E]),
        ),
        row(
            "alice",
            "which users are locked",
            json!({"kind": "locked_accounts"}),
            Names("name", &[LENA_E]),
        ),
        row(
            "alice",
            "who is locked out?",
            json!({"kind": "locked_accounts"}),
            Names("name", &[LENA_E]),
        ),
        row(
            "alice",
            "list service accounts",
            json!({"kind": "service_accounts"}),
            Names("name", &["fleet-sync"]),
        ),
        row(
            "alice",
            "which service accounts have keys older than 90 days",
            json!({"kind": "stale_keys", "older_than_days": 90}),
            Names("name", &["fleet-sync"]),
        ),
        row(
            "alice",
            "Which service accounts have API keys older than 365 days?",
            json!({"kind": "stale_keys", "older_than_days": 365}),
            Names("name", &[]),
        ),
        row(
            "alice",
            "how many requests did alice make last week",
            json!({"kind": "count_requests", "principal": "alice", "window": week}),
            Count(5),
        ),
        row(
            "alice",
            "how many requests did alice make in the last 30 days",
            json!({"kind": "count_requests", "principal": "alice", "window": {"span": "last_days", "days": 30}}),
            Count(6),
        ),
        row(
            "alice",
            "how many times was victor denied today",
            json!({"kind": "count_requests", "principal": "victor", "window": today, "outcome": "denied"}),
            Count(2),
        ),
        row(
            "alice",
            "how many requests has victor made in the past 2 days",
            json!({"kind": "count_requests", "principal": "victor", "window": {"span": "last_days", "days": 2}}),
            Count(2),
        ),
        row(
            "alice",
            "how many denials did olga get last week",
            json!({"kind": "count_requests", "principal": "olga", "window": week, "outcome": "denied"}),
            Count(0),
        ),
        row(
            "alice",
            "which requests were denied today",
            json!({"kind": "denials", "window": today}),
            Count(2),
        ),
        row(
            "alice",
            "show denied requests of victor today",
            json!({"kind": "denials", "principal": "victor", "window": today}),
            Count(2),
        ),
        row(
            "alice",
            "why was victor denied today",
            json!({"kind": "why_denied", "principal": "victor", "window": today}),
            Count(2),
        ),
        row(
            "alice",
            "which requests of victor were denied yesterday",
            json!({"kind": "denials", "principal": "victor", "window": {"span": "yesterday"}}),
            Count(0),
        ),
        row(
            "bob",
            "why was bob denied yesterday at 14:02",
            json!({"kind": "why_denied", "principal": "bob", "window": {"span": "yesterday", "at": "14:02"}}),
            Count(1),
        ),
        row(
            "bob",
            "why was bob denied yesterday",
            json!({"kind": "why_denied", "principal": "bob", "window": {"span": "yesterday"}}),
            Count(2),
        ),
        row(
            "bob",
            "who can delete vessels",
            json!({"kind": "who_can", "action": "delete", "resource_type": "vessel"}),
            Names("name", &["bob@pacific.example"]),
        ),
        row(
            "root",
            "who can delete vessels in Pacific Lines",
            json!({"kind": "who_can", "action": "delete", "resource_type": "vessel", "tenant": "pacific lines"}),
            Names("name", &["bob@pacific.example"]),
        ),
    ]
}

#[tokio::test]
async fn the_question_table_maps_to_typed_queries_and_answers() {
    let t = TestApp::new().await;
    world(&t).await;
    let alice = t.admin("TEST-001").await;
    let bob = t.admin("TEST-002").await;
    let root = t.root().await;
    let rows = table();
    assert!(rows.len() >= 40);
    for r in &rows {
        let token = match r.asker {
            "alice" => &alice,
            "bob" => &bob,
            _ => &root,
        };
        let (s, v) = ask(&t, token, r.question).await;
        assert_eq!(s, StatusCode::OK, "{}: {v}", r.question);
        assert_eq!(v["understood"], true, "{}: {v}", r.question);
        assert_eq!(v["query"], r.query, "{}: {v}", r.question);
        let a = &v["answer"];
        assert!(a["summary"].is_string(), "{}: {v}", r.question);
        match &r.want {
            Want::Names(key, names) => {
                let got: BTreeSet<&str> = a["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i[*key].as_str().unwrap())
                    .collect();
                let want: BTreeSet<&str> = names.iter().copied().collect();
                assert_eq!(got, want, "{}: {v}", r.question);
            }
            Want::Count(n) => assert_eq!(a["count"], *n, "{}: {v}", r.question),
        }
    }
    // The answer says why: bob's 14:02 denial carries its reason and rules.
    let (_, v) = ask(&t, &bob, "why was bob denied yesterday at 14:02").await;
    let item = &v["answer"]["items"][0];
    assert_eq!(item["request_id"], "bob-1402");
    assert_eq!(item["reason"], "a deny permission matched");
    assert_eq!(item["rules"], json!(["deny-delete", "viewer-read"]));
    // A decision names the rules that made it.
    let (_, v) = ask(&t, &alice, "can alice delete vessel v-a1").await;
    assert_eq!(v["answer"]["items"][0]["reason"], "explicit_deny");
    assert_eq!(
        v["answer"]["items"][0]["rules"][0]["name"],
        "deny-delete-flagship"
    );
    // Every question is logged, under the tenant it ran against.
    let logged: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sentinel.nlp_query_logs WHERE tenant_id = $1::uuid AND understood",
    )
    .bind(TEST_001)
    .fetch_one(&t.db.owner)
    .await
    .unwrap();
    let alice_rows = rows.iter().filter(|r| r.asker == "alice").count() as i64;
    assert_eq!(logged, alice_rows + 1);
    let decisions: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sentinel.ai_decision_logs WHERE feature = 'nlp_query'",
    )
    .fetch_one(&t.db.owner)
    .await
    .unwrap();
    assert_eq!(decisions, rows.len() as i64 + 2);
}

#[tokio::test]
async fn what_is_not_understood_gets_suggestions_never_a_guess() {
    let t = TestApp::new().await;
    let alice = t.admin("TEST-001").await;
    for q in [
        "make me a sandwich",
        "delete all vessels",
        "who can",
        "why was denied yesterday",
        "which service accounts have keys older than many days",
        "why was bob denied yesterday at 25:99",
    ] {
        let (s, v) = ask(&t, &alice, q).await;
        assert_eq!(s, StatusCode::OK, "{q}: {v}");
        assert_eq!(v["understood"], false, "{q}: {v}");
        assert!(v["query"].is_null(), "{q}: {v}");
        assert!(v["answer"].is_null(), "{q}: {v}");
        let sug = v["suggestions"].as_array().unwrap();
        assert_eq!(sug.len(), 3, "{q}: {v}");
    }
    // The nearest template comes first.
    let (_, v) = ask(&t, &alice, "which service accounts have old keys").await;
    assert_eq!(
        v["suggestions"][0],
        "which service accounts have keys older than 90 days"
    );
    // Understood, but a name that matches nothing: the names that exist.
    let (_, v) = ask(&t, &alice, "who can delete unicorns").await;
    assert_eq!(v["understood"], false);
    assert!(v["query"].is_object());
    assert!(v["problem"].as_str().unwrap().contains("`unicorn`"), "{v}");
    assert_eq!(v["suggestions"], json!(["port_call", "vessel", "voyage"]));
    let (_, v) = ask(&t, &alice, "what can zed do").await;
    assert_eq!(v["understood"], false);
    assert!(v["problem"].as_str().unwrap().contains("`zed`"), "{v}");
    // Bad input is a validation error.
    let (s, v) = ask(&t, &alice, "   ").await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    for bad in ["who can\u{0}read vessels", "who can\u{7}read vessels"] {
        let (s, v) = ask(&t, &alice, bad).await;
        assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    }
    let long = "who ".repeat(200);
    let (s, v) = ask(&t, &alice, &long).await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    let (s, v) = t
        .post(
            "/api/v1/ai/query",
            &alice,
            json!({"question": "x", "extra": 1}),
        )
        .await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    // Not-understood questions are logged too.
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sentinel.nlp_query_logs WHERE NOT understood AND query IS NULL",
    )
    .fetch_one(&t.db.owner)
    .await
    .unwrap();
    assert_eq!(n, 7);
}

#[tokio::test]
async fn a_tenant_never_reads_another_tenants_data_through_questions() {
    let t = TestApp::new().await;
    world(&t).await;
    let alice = t.admin("TEST-001").await;
    // Another tenant's principal answers like a missing one; its names are not offered.
    let (_, v) = ask(&t, &alice, "why was bob denied yesterday at 14:02").await;
    assert_eq!(v["understood"], false, "{v}");
    assert!(v["problem"]
        .as_str()
        .unwrap()
        .contains("no principal named `bob`"));
    assert!(!v.to_string().contains("pacific"), "{v}");
    // Another tenant by name or code answers like a missing one.
    for q in [
        "who can delete vessels in Pacific Lines",
        "who can delete vessels in TEST-002",
    ] {
        let (_, v) = ask(&t, &alice, q).await;
        assert_eq!(v["understood"], false, "{v}");
        assert!(v["problem"]
            .as_str()
            .unwrap()
            .starts_with("no tenant named"));
        assert_eq!(v["suggestions"], json!(["Nordic Shipping"]), "{v}");
    }
    // Counting another tenant's principal's requests: same.
    let (_, v) = ask(&t, &alice, "how many requests did bob make yesterday").await;
    assert_eq!(v["understood"], false, "{v}");
    // Logs are under row-level security like every tenant table.
    let mut tx = t.db.api.begin().await.unwrap();
    sqlx::query("SELECT set_config('sentinel.tenant_id', $1, true)")
        .bind(TEST_002)
        .execute(&mut *tx)
        .await
        .unwrap();
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM sentinel.nlp_query_logs")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(seen, 0);
    let r = sqlx::query("DELETE FROM sentinel.nlp_query_logs")
        .execute(&mut *tx)
        .await;
    assert!(r.is_err(), "the API role may not delete question logs");
}

#[tokio::test]
async fn questions_need_ai_read_and_the_scope_of_the_data_they_read() {
    let t = TestApp::new().await;
    let alice = t.admin("TEST-001").await;
    // Victor holds no scope at all.
    let victor = t.nordic(VICTOR).await;
    let (s, v) = ask(&t, &victor, "who can read vessels").await;
    let d = assert_error(s, &v, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    assert!(d.is_object() || d.is_null());
    // With `ai:read` only: policy and audit questions are refused, since
    // the ordinary endpoints for that data would refuse them too.
    let (s, role) = t
        .post(
            "/api/v1/roles",
            &alice,
            json!({"name": "ai-only", "scopes": ["ai:read"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{role}");
    let (s, v) = t
        .post(
            &format!("/api/v1/users/{VICTOR_ID}/roles"),
            &alice,
            json!({"role_id": role["id"]}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let victor = t.nordic(VICTOR).await;
    for (q, scope) in [
        ("who can read vessels", "permission:read"),
        ("why was victor denied today", "audit:read"),
        ("list service accounts", "service_account:read"),
        ("which users are locked", "user:read"),
    ] {
        let (s, v) = ask(&t, &victor, q).await;
        assert_error(s, &v, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(scope),
            "{v}"
        );
    }
    // An unparseable question reads nothing: it is answered with suggestions.
    let (s, v) = ask(&t, &victor, "hello there").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["understood"], false);
    // No token: 401.
    let (s, v) = t
        .request(
            "POST",
            "/api/v1/ai/query",
            None,
            Some(json!({"question": "who can read vessels"})),
            &[],
        )
        .await;
    assert_error(s, &v, StatusCode::UNAUTHORIZED, "AUTH_REQUIRED");
}

#[tokio::test]
async fn turned_off_the_ai_routes_answer_404() {
    let t = TestApp::with_config(sentinel_admin::config::Config {
        ai_enabled: false,
        ..test_config()
    })
    .await;
    let alice = t.admin("TEST-001").await;
    let (s, v) = ask(&t, &alice, "who can read vessels").await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND");
    let (s, v) = t
        .get(&format!("/api/v1/ai/predictions?user={VICTOR_ID}"), &alice)
        .await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND");
}
