//! Notifications: the outbox delivered to webhooks, against a real HTTP
//! receiver on an ephemeral port (an axum server inside the test), with the
//! worker's clock moved by hand so that retries need no waiting.

use crate::common::*;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use sentinel_admin::db::{self, TenantCtx};
use sentinel_admin::outbox::target::AddressPolicy;
use sentinel_admin::outbox::{self, Clock, DeliveryConfig, ManualClock, Worker};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;

const TEST_001: Uuid = uuid::uuid!("11111111-1111-1111-1111-111111111111");
const TEST_002: Uuid = uuid::uuid!("22222222-2222-2222-2222-222222222222");
const SECRET: &str = "whsec-0123456789abcdef";

// ------------------------------------------------------------------ receiver

#[derive(Default)]
struct Inbox {
    requests: Vec<(HeaderMap, Bytes)>,
    /// Idempotency keys whose effect was applied (a receiver that
    /// deduplicates, as docs/webhooks.md asks receivers to).
    effects: HashSet<String>,
    /// Effects a receiver without deduplication would have applied.
    applied: usize,
    fail_first: usize,
    always_fail: bool,
}

type Shared = Arc<Mutex<Inbox>>;

async fn receive(State(inbox): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let mut i = inbox.lock().unwrap();
    i.requests.push((headers.clone(), body));
    if i.always_fail || i.requests.len() <= i.fail_first {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    i.effects.insert(key);
    i.applied += 1;
    StatusCode::NO_CONTENT
}

/// A receiver at `http://127.0.0.1:PORT/hook` that answers 500 to its first
/// `fail_first` requests (to every request when `always_fail`), then 204.
async fn receiver(fail_first: usize, always_fail: bool) -> (String, Shared) {
    let inbox: Shared = Arc::new(Mutex::new(Inbox {
        fail_first,
        always_fail,
        ..Inbox::default()
    }));
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(inbox.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/hook"), inbox)
}

fn count(inbox: &Shared) -> usize {
    inbox.lock().unwrap().requests.len()
}

// ------------------------------------------------------------------ harness

fn loopback_config() -> sentinel_admin::config::Config {
    sentinel_admin::config::Config {
        webhook_allow_loopback: true,
        ..test_config()
    }
}

fn delivery(allow_loopback: bool) -> DeliveryConfig {
    DeliveryConfig {
        timeout: Duration::from_secs(5),
        retries: 3,
        backoff: Duration::from_secs(10),
        max_backoff: Duration::from_secs(3600),
        batch: 32,
        addresses: AddressPolicy {
            allow_loopback,
            allowed_networks: Vec::new(),
        },
    }
}

/// A worker whose clock starts a minute ahead (so rows enqueued now are due).
fn worker(t: &TestApp, allow_loopback: bool) -> (Worker, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(
        chrono::Utc::now() + chrono::Duration::minutes(1),
    ));
    let w = Worker::new(
        t.state.platform.clone(),
        &t.state.metrics,
        delivery(allow_loopback),
        clock.clone(),
    )
    .unwrap();
    (w, clock)
}

async fn enqueue(t: &TestApp, tenant: Uuid, event: &str, subject: Uuid, payload: Value) {
    let mut tx = db::begin(&t.db.api, TenantCtx::One(tenant)).await.unwrap();
    outbox::enqueue(&mut tx, tenant, event, subject, &payload)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

async fn hook(t: &TestApp, token: &str, url: &str, events: Value) -> Value {
    let (s, v) = t
        .post(
            "/api/v1/webhooks",
            token,
            json!({"name": "ops", "url": url, "secret": SECRET, "events": events}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v
}

fn metric(t: &TestApp, line_start: &str) -> f64 {
    let text = t.state.metrics.render();
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no `{line_start}` in\n{text}"))
}

fn delivered(t: &TestApp) -> f64 {
    metric(t, "sentinel_webhook_deliveries_total{result=\"delivered\"}")
}

// ------------------------------------------------------------------ tests

#[tokio::test]
async fn an_event_arrives_signed_and_once() {
    let t = TestApp::with_config(loopback_config()).await;
    let alice = t.admin("TEST-001").await;
    let (url, inbox) = receiver(0, false).await;
    hook(&t, &alice, &url, json!(["access_request.*"])).await;
    let (w, clock) = worker(&t, true);

    let subject = Uuid::new_v4();
    let payload = json!({"level": 1, "requester": "olga@nordic.example"});
    enqueue(
        &t,
        TEST_001,
        "access_request.approved",
        subject,
        payload.clone(),
    )
    .await;
    // Enqueued twice (a retried transaction): one event.
    enqueue(
        &t,
        TEST_001,
        "access_request.approved",
        subject,
        payload.clone(),
    )
    .await;
    // An event the filter does not select.
    enqueue(&t, TEST_001, "grant.expired", Uuid::new_v4(), json!({})).await;
    assert_eq!(metric(&t, "sentinel_outbox_pending"), 0.0);

    let round = w.run_once().await.unwrap();
    assert_eq!((round.claimed, round.delivered), (2, 2), "{round:?}");
    assert_eq!(count(&inbox), 1);
    let (headers, body) = inbox.lock().unwrap().requests[0].clone();
    let h = |name: &str| headers.get(name).unwrap().to_str().unwrap().to_owned();
    // The signature a receiver computes from the secret it was given.
    let ts = h("sentinel-timestamp");
    assert_eq!(ts, clock.now().timestamp().to_string());
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{ts}.").as_bytes());
    mac.update(&body);
    let want: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(h("sentinel-signature"), format!("sha256={want}"));
    // And a body changed in transit would not verify.
    let mut forged = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    forged.update(format!("{ts}.").as_bytes());
    forged.update(&body[1..]);
    assert!(forged
        .verify_slice(&hex_decode(&h("sentinel-signature")[7..]))
        .is_err());
    assert_eq!(h("sentinel-event"), "access_request.approved");
    assert_eq!(
        h("idempotency-key"),
        format!("access_request.approved:{subject}:level=1")
    );
    assert_eq!(h("content-type"), "application/json");
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["event"], "access_request.approved");
    assert_eq!(v["tenant_id"], TEST_001.to_string());
    assert_eq!(v["subject_id"], subject.to_string());
    assert_eq!(v["data"], payload);

    // Delivered rows are never sent again, however late it gets.
    clock.advance(chrono::Duration::days(1));
    assert_eq!(w.run_once().await.unwrap().claimed, 0);
    assert_eq!(count(&inbox), 1);
    assert_eq!(delivered(&t), 1.0);
    assert_eq!(metric(&t, "sentinel_outbox_pending"), 0.0);

    // The tenant sees its events and their state.
    let (s, v) = t
        .get("/api/v1/webhooks/events?status=delivered", &alice)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["items"].as_array().unwrap().len(), 2, "{v}");
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[tokio::test]
async fn a_receiver_that_recovers_gets_the_event_with_one_effect() {
    let t = TestApp::with_config(loopback_config()).await;
    let alice = t.admin("TEST-001").await;
    let (flaky_url, flaky) = receiver(2, false).await;
    let (steady_url, steady) = receiver(0, false).await;
    hook(&t, &alice, &flaky_url, json!([])).await;
    hook(&t, &alice, &steady_url, json!([])).await;
    let (w, clock) = worker(&t, true);
    enqueue(
        &t,
        TEST_001,
        "access_request.granted",
        Uuid::new_v4(),
        json!({}),
    )
    .await;

    let r = w.run_once().await.unwrap();
    assert_eq!((r.claimed, r.retrying), (1, 1), "{r:?}");
    assert_eq!((count(&flaky), count(&steady)), (1, 1));
    // Not due again before its backoff (10 s after the first failure).
    assert_eq!(w.run_once().await.unwrap().claimed, 0);
    assert_eq!(metric(&t, "sentinel_outbox_pending"), 1.0);
    assert!(metric(&t, "sentinel_outbox_oldest_pending_seconds") > 0.0);
    clock.advance(chrono::Duration::seconds(11));
    let r = w.run_once().await.unwrap();
    assert_eq!(r.retrying, 1, "{r:?}");
    // Doubled: 20 s after the second failure.
    clock.advance(chrono::Duration::seconds(11));
    assert_eq!(w.run_once().await.unwrap().claimed, 0);
    clock.advance(chrono::Duration::seconds(10));
    let r = w.run_once().await.unwrap();
    assert_eq!(r.delivered, 1, "{r:?}");
    clock.advance(chrono::Duration::hours(2));
    assert_eq!(w.run_once().await.unwrap().claimed, 0);

    // Three attempts reached the flaky receiver, one effect; the receiver
    // that accepted the first attempt was never sent the event again.
    let f = flaky.lock().unwrap();
    assert_eq!(f.requests.len(), 3);
    assert_eq!((f.effects.len(), f.applied), (1, 1));
    let keys: HashSet<_> = f
        .requests
        .iter()
        .map(|(h, _)| h.get("idempotency-key").unwrap().clone())
        .collect();
    assert_eq!(keys.len(), 1, "every attempt carries the same key");
    assert_eq!(count(&steady), 1);
    assert_eq!(delivered(&t), 2.0);
    assert_eq!(
        metric(&t, "sentinel_webhook_deliveries_total{result=\"retry\"}"),
        2.0
    );
}

#[tokio::test]
async fn a_receiver_that_never_recovers_ends_as_a_dead_letter_after_three_retries() {
    let t = TestApp::with_config(loopback_config()).await;
    let alice = t.admin("TEST-001").await;
    let (url, inbox) = receiver(0, true).await;
    hook(&t, &alice, &url, json!([])).await;
    let (w, clock) = worker(&t, true);
    enqueue(
        &t,
        TEST_001,
        "access_request.denied",
        Uuid::new_v4(),
        json!({}),
    )
    .await;

    let mut outcomes = Vec::new();
    for _ in 0..10 {
        let r = w.run_once().await.unwrap();
        if r.claimed > 0 {
            outcomes.push((r.retrying, r.failed));
        }
        clock.advance(chrono::Duration::hours(1));
    }
    assert_eq!(outcomes, vec![(1, 0), (1, 0), (1, 0), (0, 1)]);
    assert_eq!(count(&inbox), 4, "one attempt and three retries");
    assert_eq!(
        metric(
            &t,
            "sentinel_webhook_deliveries_total{result=\"dead_letter\"}"
        ),
        1.0
    );
    assert_eq!(metric(&t, "sentinel_outbox_pending"), 0.0);
    let (s, v) = t.get("/api/v1/webhooks/events?status=failed", &alice).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let e = &v["items"][0];
    assert_eq!(e["status"], "failed");
    assert_eq!(e["attempts"], 4);
    assert!(
        e["last_error"]
            .as_str()
            .unwrap()
            .contains("receiver answered 500"),
        "{e}"
    );

    // An admin sends the dead letter again: a fresh set of attempts.
    inbox.lock().unwrap().always_fail = false;
    let id = e["id"].as_str().unwrap();
    let (s, v) = t
        .post(
            &format!("/api/v1/webhooks/events/{id}/retry"),
            &alice,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["status"].as_str(), v["attempts"].as_i64()),
        (Some("pending"), Some(0))
    );
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sentinel.audit_logs WHERE action = 'outbox.update' AND resource_id = $1",
    )
    .bind(id)
    .fetch_one(&t.db.owner)
    .await
    .unwrap();
    assert_eq!(audited, 1, "the resend is an audited admin write");
    // A viewer may not.
    let victor = t.nordic(VICTOR).await;
    let (s, v) = t
        .post(
            &format!("/api/v1/webhooks/events/{id}/retry"),
            &victor,
            json!({}),
        )
        .await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    let r = w.run_once().await.unwrap();
    assert_eq!(r.delivered, 1, "{r:?}");
    assert_eq!(inbox.lock().unwrap().applied, 1);
}

#[tokio::test]
async fn a_tenant_s_events_never_reach_another_tenant_s_webhook() {
    let t = TestApp::with_config(loopback_config()).await;
    let alice = t.admin("TEST-001").await;
    let bob = t.admin("TEST-002").await;
    let (url_a, inbox_a) = receiver(0, false).await;
    let (url_b, inbox_b) = receiver(0, false).await;
    let hook_a = hook(&t, &alice, &url_a, json!([])).await;
    hook(&t, &bob, &url_b, json!([])).await;
    let (w, _) = worker(&t, true);

    let a_subject = Uuid::new_v4();
    enqueue(
        &t,
        TEST_001,
        "access_request.requested",
        a_subject,
        json!({"n": 1}),
    )
    .await;
    enqueue(
        &t,
        TEST_002,
        "access_request.requested",
        Uuid::new_v4(),
        json!({"n": 2}),
    )
    .await;
    // The same key in two tenants is two events.
    enqueue(
        &t,
        TEST_002,
        "access_request.requested",
        a_subject,
        json!({"n": 3}),
    )
    .await;
    let r = w.run_once().await.unwrap();
    assert_eq!(r.delivered, 3, "{r:?}");
    let tenants = |inbox: &Shared| -> Vec<String> {
        inbox
            .lock()
            .unwrap()
            .requests
            .iter()
            .map(|(_, b)| {
                let v: Value = serde_json::from_slice(b).unwrap();
                v["tenant_id"].as_str().unwrap().to_owned()
            })
            .collect()
    };
    assert_eq!(tenants(&inbox_a), vec![TEST_001.to_string()]);
    assert_eq!(tenants(&inbox_b), vec![TEST_002.to_string(); 2]);

    // Nor can a tenant's admin see or change the other's webhooks or events.
    let id = hook_a["id"].as_str().unwrap();
    for (method, body) in [
        ("GET", None),
        ("PATCH", Some(json!({"enabled": false}))),
        ("DELETE", None),
    ] {
        let (s, v) = t
            .request(
                method,
                &format!("/api/v1/webhooks/{id}"),
                Some(&bob),
                body,
                &[],
            )
            .await;
        assert_error(s, &v, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND");
    }
    let (_, v) = t.get("/api/v1/webhooks", &bob).await;
    assert_eq!(v["items"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["items"][0]["url"], url_b);
    let (_, v) = t.get("/api/v1/webhooks/events", &bob).await;
    assert!(
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["tenant_id"] == TEST_002.to_string()),
        "{v}"
    );
    // The API role cannot enqueue into another tenant than its transaction's.
    let mut tx = db::begin(&t.db.api, TenantCtx::One(TEST_002))
        .await
        .unwrap();
    let err = outbox::enqueue(&mut tx, TEST_001, "x.y", Uuid::new_v4(), &json!({}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("row-level security"), "{err}");
}

#[tokio::test]
async fn the_secret_is_written_never_read() {
    let t = TestApp::with_config(loopback_config()).await;
    let alice = t.admin("TEST-001").await;
    let v = hook(&t, &alice, "https://hooks.example.com/sentinel", json!([])).await;
    let id = v["id"].as_str().unwrap().to_owned();
    let mut answers = vec![v];
    answers.push(t.get(&format!("/api/v1/webhooks/{id}"), &alice).await.1);
    answers.push(t.get("/api/v1/webhooks", &alice).await.1);
    let (s, v) = t
        .patch(
            &format!("/api/v1/webhooks/{id}"),
            &alice,
            json!({"secret": "whsec-rotated-0123456789", "events": ["grant.*"]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["events"], json!(["grant.*"]));
    answers.push(v);
    for a in &answers {
        let text = a.to_string();
        assert!(!text.contains("whsec-"), "secret in {text}");
        assert!(!text.contains("\"secret\""), "secret field in {text}");
    }
    // Nor in the audit trail of those writes (which does record them).
    let trail: Vec<String> = sqlx::query_scalar(
        "SELECT coalesce(before::text, '') || coalesce(after::text, '') FROM sentinel.audit_logs
          WHERE action LIKE 'webhook.%'",
    )
    .fetch_all(&t.db.owner)
    .await
    .unwrap();
    assert_eq!(trail.len(), 2, "create and update are audited");
    assert!(trail.iter().all(|r| !r.contains("whsec-")), "{trail:?}");
    assert!(trail.iter().all(|r| r.contains("[redacted]")), "{trail:?}");
    // The rotated secret is the one deliveries sign with.
    let stored: String =
        sqlx::query_scalar("SELECT secret FROM sentinel.webhooks WHERE id = $1::uuid")
            .bind(&id)
            .fetch_one(&t.db.owner)
            .await
            .unwrap();
    assert!(
        stored.starts_with("sealed:v1:") && !stored.contains("whsec-"),
        "{stored}"
    );
    assert_eq!(
        test_keyring()
            .open(&sentinel_admin::sealing::row("webhooks", &id), &stored)
            .unwrap(),
        "whsec-rotated-0123456789"
    );
}

fn test_keyring() -> sentinel_admin::sealing::Keyring {
    sentinel_admin::sealing::Keyring {
        current: sentinel_admin::sealing::Kek::from_base64(TEST_KEK).unwrap(),
        previous: None,
    }
}

/// A webhook secret as the API stores it: sealed for its row.
fn sealed_secret(id: Uuid, secret: &str) -> String {
    test_keyring()
        .seal(
            &sentinel_admin::sealing::row("webhooks", &id.to_string()),
            secret,
        )
        .unwrap()
}

#[tokio::test]
async fn a_secret_moved_to_another_webhook_never_signs() {
    // Copying one webhook's sealed secret onto another (a database write
    // behind the API's back) does not make deliveries signed with it: the
    // secret is bound to its row, and the delivery fails instead.
    let t = TestApp::with_config(loopback_config()).await;
    let alice = t.admin("TEST-001").await;
    let (url, inbox) = receiver(0, false).await;
    let first = hook(&t, &alice, &url, json!([])).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let second = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO sentinel.webhooks (id, tenant_id, url, secret, enabled)
         SELECT $1, tenant_id, url, secret, true FROM sentinel.webhooks WHERE id = $2::uuid",
    )
    .bind(second)
    .bind(&first)
    .execute(&t.db.owner)
    .await
    .unwrap();
    sqlx::query("UPDATE sentinel.webhooks SET enabled = false WHERE id = $1::uuid")
        .bind(&first)
        .execute(&t.db.owner)
        .await
        .unwrap();
    let (w, clock) = worker(&t, true);
    enqueue(&t, TEST_001, "grant.expired", Uuid::new_v4(), json!({})).await;
    for _ in 0..5 {
        w.run_once().await.unwrap();
        clock.advance(chrono::Duration::hours(1));
    }
    assert_eq!(count(&inbox), 0, "a delivery went out with a moved secret");
    let error: Option<String> = sqlx::query_scalar("SELECT last_error FROM sentinel.outbox")
        .fetch_one(&t.db.owner)
        .await
        .unwrap();
    assert!(error.unwrap().contains("secret"));
}

#[tokio::test]
async fn webhook_writes_are_checked_and_need_their_scope() {
    let t = TestApp::new().await; // no loopback: the production default
    let alice = t.admin("TEST-001").await;
    for (url, why) in [
        ("ftp://hooks.example.com/x", "http or https"),
        ("http://127.0.0.1:9/hook", "127.0.0.1"),
        ("http://[::1]/hook", "::1"),
        ("http://localhost/hook", "localhost"),
        (
            "http://169.254.169.254/latest/meta-data/",
            "169.254.169.254",
        ),
        ("http://10.1.2.3/hook", "10.1.2.3"),
        ("http://2130706433/hook", "127.0.0.1"),
        ("https://user:pw@hooks.example.com/", "user name"),
        ("not a url", "absolute URL"),
    ] {
        let (s, v) = t
            .post(
                "/api/v1/webhooks",
                &alice,
                json!({"url": url, "secret": SECRET}),
            )
            .await;
        let d = assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
        assert!(d.to_string().contains(why), "{url}: {d}");
    }
    for body in [
        json!({"url": "https://hooks.example.com/", "secret": "short"}),
        json!({"url": "https://hooks.example.com/", "secret": SECRET, "events": ["Bad Event"]}),
        json!({"url": "https://hooks.example.com/", "secret": SECRET, "extra": 1}),
        json!({"url": "https://hooks.example.com/"}),
    ] {
        let (s, v) = t.post("/api/v1/webhooks", &alice, body.clone()).await;
        assert!(s.is_client_error(), "{body}: {s} {v}");
    }
    // Scopes: a viewer has none, an auditor reads only.
    let ok = json!({"url": "https://hooks.example.com/", "secret": SECRET});
    let victor = t.nordic(VICTOR).await;
    let (s, v) = t.post("/api/v1/webhooks", &victor, ok.clone()).await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    let (s, v) = t.get("/api/v1/webhooks", &victor).await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    let axel = t.nordic(AXEL).await;
    let (s, v) = t.post("/api/v1/webhooks", &axel, ok.clone()).await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    let (s, v) = t.post("/api/v1/webhooks", &alice, ok).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["id"].as_str().unwrap();
    let (s, _) = t.get(&format!("/api/v1/webhooks/{id}"), &axel).await;
    assert_eq!(s, StatusCode::OK);
    // A PATCH cannot move it somewhere private either.
    let (s, v) = t
        .patch(
            &format!("/api/v1/webhooks/{id}"),
            &alice,
            json!({"url": "http://192.168.0.10/"}),
        )
        .await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    let (s, _) = t.delete(&format!("/api/v1/webhooks/{id}"), &alice).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = t.get(&format!("/api/v1/webhooks/{id}"), &alice).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn deliveries_never_connect_where_the_policy_forbids() {
    // The write-time check could be bypassed (a row written before the
    // policy changed): the worker checks again and never connects.
    let t = TestApp::new().await;
    let (url, inbox) = receiver(0, false).await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    sqlx::query(
        "INSERT INTO sentinel.webhooks (id, tenant_id, url, secret) VALUES ($5, $1, $2, $3), ($6, $1, $4, $7)",
    )
    .bind(TEST_001)
    .bind(&url)
    .bind(sealed_secret(a, SECRET))
    .bind(url.replace("127.0.0.1", "localhost"))
    .bind(a)
    .bind(b)
    .bind(sealed_secret(b, SECRET))
    .execute(&t.db.owner)
    .await
    .unwrap();
    let (w, clock) = worker(&t, false);
    enqueue(
        &t,
        TEST_001,
        "access_request.requested",
        Uuid::new_v4(),
        json!({}),
    )
    .await;
    for _ in 0..5 {
        w.run_once().await.unwrap();
        clock.advance(chrono::Duration::hours(1));
    }
    assert_eq!(count(&inbox), 0);
    let (status, error): (Option<chrono::DateTime<chrono::Utc>>, Option<String>) =
        sqlx::query_as("SELECT failed_at, last_error FROM sentinel.outbox")
            .fetch_one(&t.db.owner)
            .await
            .unwrap();
    assert!(status.is_some());
    assert!(error.unwrap().contains("may not reach"));
}

#[tokio::test]
async fn two_workers_share_the_outbox_without_sending_twice() {
    let t = TestApp::with_config(loopback_config()).await;
    let alice = t.admin("TEST-001").await;
    let (url, inbox) = receiver(0, false).await;
    hook(&t, &alice, &url, json!([])).await;
    for _ in 0..20 {
        enqueue(&t, TEST_001, "grant.expired", Uuid::new_v4(), json!({})).await;
    }
    let (w1, _) = worker(&t, true);
    let (w2, _) = worker(&t, true);
    let (a, b) = tokio::join!(w1.run_once(), w2.run_once());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.claimed + b.claimed, 20, "{a:?} {b:?}");
    let i = inbox.lock().unwrap();
    assert_eq!(i.requests.len(), 20);
    assert_eq!(i.effects.len(), 20);
}

#[tokio::test]
async fn outbox_tables_force_row_level_security() {
    let t = TestApp::new().await;
    for table in ["webhooks", "outbox"] {
        let forced: bool = sqlx::query_scalar(
            "SELECT relrowsecurity AND relforcerowsecurity FROM pg_class
              WHERE oid = ('sentinel.' || $1)::regclass",
        )
        .bind(table)
        .fetch_one(&t.db.owner)
        .await
        .unwrap();
        assert!(forced, "{table}");
    }
    // Without a tenant, the API role sees no row.
    enqueue(&t, TEST_001, "grant.expired", Uuid::new_v4(), json!({})).await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM sentinel.outbox")
        .fetch_one(&t.db.api)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

/// A measurement, not a check (no timing assertion): how fast one worker
/// drains a backlog into one local receiver. Run with
/// `cargo test -p sentinel-admin --test api webhooks::drain_rate -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "a measurement (docs/webhooks.md), not a test: run by hand"]
async fn drain_rate() {
    let t = TestApp::with_config(loopback_config()).await;
    let alice = t.admin("TEST-001").await;
    let (url, inbox) = receiver(0, false).await;
    hook(&t, &alice, &url, json!([])).await;
    const N: usize = 2000;
    let mut tx = db::begin(&t.db.api, TenantCtx::One(TEST_001))
        .await
        .unwrap();
    let start = std::time::Instant::now();
    for i in 0..N {
        outbox::enqueue(
            &mut tx,
            TEST_001,
            "grant.expired",
            Uuid::new_v4(),
            &json!({"i": i}),
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    let enqueue = start.elapsed();
    let (w, _) = worker(&t, true);
    let start = std::time::Instant::now();
    let mut rounds = 0;
    while w.run_once().await.unwrap().claimed > 0 {
        rounds += 1;
    }
    let drain = start.elapsed();
    assert_eq!(count(&inbox), N);
    println!(
        "enqueue: {N} events in {:.0} ms ({:.0}/s, one transaction); \
         drain: {rounds} rounds in {:.0} ms ({:.0} deliveries/s)",
        enqueue.as_secs_f64() * 1e3,
        N as f64 / enqueue.as_secs_f64(),
        drain.as_secs_f64() * 1e3,
        N as f64 / drain.as_secs_f64()
    );
}

/// The real binary: `serve` runs the delivery worker with the settings of
/// its environment.
#[tokio::test]
async fn serve_delivers_what_is_enqueued() {
    let t = TestApp::new().await;
    let (_, api) = crate::binary::urls(&t.db.name);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let listen = format!("127.0.0.1:{port}");
    let mut child = crate::binary::admin_cmd(&api)
        .args(["serve", "--listen", &listen])
        .env("SENTINEL_WEBHOOK_ALLOW_LOOPBACK", "true")
        .env("SENTINEL_WEBHOOK_POLL_MS", "50")
        .spawn()
        .unwrap();
    let base = format!("http://{listen}");
    let c = reqwest::Client::new();
    let mut up = false;
    for _ in 0..100 {
        if let Ok(r) = c.get(format!("{base}/healthz")).send().await {
            up = r.status() == 200;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "server did not come up");
    let tok: Value = c
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": ALICE, "password": DEMO_PASSWORD, "tenant_code": "TEST-001"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tok = tok["access_token"].as_str().unwrap();
    let (url, inbox) = receiver(0, false).await;
    let r = c
        .post(format!("{base}/api/v1/webhooks"))
        .bearer_auth(tok)
        .json(&json!({"url": url, "secret": SECRET}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let subject = Uuid::new_v4();
    enqueue(
        &t,
        TEST_001,
        "access_request.granted",
        subject,
        json!({"level": 2}),
    )
    .await;
    // The worker counts a delivery after the receiver answered: wait for the count.
    let delivered = "sentinel_webhook_deliveries_total{result=\"delivered\"} 1";
    let mut text = String::new();
    for _ in 0..200 {
        text = c
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.contains(delivered) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(text.contains(delivered), "serve did not deliver: {text}");
    assert_eq!(count(&inbox), 1);
    child.kill().await.unwrap();
}
