//! The gateway's audit trail (docs/audit-gateway.md) with the real binary:
//! every answer is exactly one event in the spool with the contract's
//! fields; allowed reads are sampled only where a route asks; a full spool
//! drops and counts while the gateway keeps serving; events reach an admin
//! API in order across its outages and a SIGKILL of the gateway; a batch
//! the admin API refuses is kept aside, not retried forever; bad `[audit]`
//! settings are config problems.
//!
//! Run: `cargo test --test audit`
#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

mod common;

use common::snapshots::{admin_env, admin_policy_section, payload, Reply, SnapshotServer};
use common::*;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

const LIMITED: &str = r#"
[[routes]]
id = "limited"
path = "/limited/*"
upstream = "msw"
auth = "any"
resource = "vessel"
rate_limit = "tiny"
"#;

const SAMPLED: &str = r#"
[[routes]]
id = "sampled"
path = "/sampled/*"
upstream = "msw"
auth = "any"
resource = "vessel"
audit_sample_allowed_reads = 0.25
"#;

const LIMITS: &str = r#"
[rate_limits]
mode = "local"
[rate_limits.classes.tiny]
rate = "3/h"
per = "principal"
"#;

/// Every event in the spool directory, oldest first.
fn spooled(dir: &Path) -> Vec<Value> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ndjson"))
        .collect();
    names.sort();
    names
        .iter()
        .flat_map(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn by_request(events: &[Value]) -> HashMap<String, Vec<Value>> {
    let mut m: HashMap<String, Vec<Value>> = HashMap::new();
    for e in events {
        m.entry(e["request_id"].as_str().unwrap().to_owned())
            .or_default()
            .push(e.clone());
    }
    m
}

async fn send(req: reqwest::RequestBuilder, status: u16) -> String {
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status().as_u16(), status);
    resp.headers()["x-sentinel-request-id"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn every_answer_is_one_event_with_the_contract_fields() {
    let gw = start(Options {
        extra_config: format!("{LIMITS}\n[audit]\nspool_dir = \"audit-spool\"\n"),
        extra_routes: LIMITED.to_owned(),
        ..Options::default()
    });
    // A client per request: an error answer closes the connection.
    let c = client;
    let victor = token(VICTOR, NORDIC);
    let alice = token(ALICE, NORDIC);
    let ua = "x".repeat(600);
    let allowed = send(
        c().get(gw.url("/slow/10?secret=1"))
            .bearer_auth(&victor)
            .header("user-agent", &ua),
        200,
    )
    .await;
    let denied = send(c().patch(gw.url("/slow/10")).bearer_auth(&victor), 403).await;
    let deny_rule = send(
        c().delete(gw.url("/msw/vessels/v-a1")).bearer_auth(&alice),
        403,
    )
    .await;
    let bad_token = send(c().get(gw.url("/slow/10")).bearer_auth("not-a-token"), 401).await;
    let no_route = send(c().get(gw.url("/nowhere")).bearer_auth(&victor), 404).await;
    let down = send(c().get(gw.url("/down/x")).bearer_auth(&victor), 502).await;
    let service = send(
        c().get(gw.url("/sync/vessels"))
            .header("x-api-key", sentinel::demo::DEMO_API_KEY),
        200,
    )
    .await;
    // A resource id longer than the admin API takes: cut, so it cannot
    // poison a batch.
    let long = c()
        .get(gw.url(&format!("/msw/vessels/{}", "v".repeat(600))))
        .bearer_auth(&victor)
        .send()
        .await
        .unwrap();
    let long = long.headers()["x-sentinel-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let preflight = send(
        c().request(reqwest::Method::OPTIONS, gw.url("/msw/vessels"))
            .header("origin", "http://elsewhere.example")
            .header("access-control-request-method", "GET"),
        403,
    )
    .await;
    let mut limited = Vec::new();
    for status in [200, 200, 200, 429] {
        limited.push(send(c().get(gw.url("/limited/a")).bearer_auth(&alice), status).await);
    }

    // Written before the answer left: readable at once.
    let events = spooled(&gw.dir.join("audit-spool"));
    let by = by_request(&events);
    assert_eq!(events.len(), 13, "one event per answer: {events:#?}");
    assert!(by.values().all(|v| v.len() == 1), "never two per request");
    let one = |id: &str| by[id][0].clone();

    let e = one(&allowed);
    assert_eq!(e.as_object().unwrap().len(), 23, "{e}");
    assert_eq!(e["source"], "gateway");
    assert_eq!(e["outcome"], "allowed");
    assert_eq!(e["status"], 200);
    assert_eq!(e["code"], Value::Null);
    assert_eq!(e["principal_id"], VICTOR);
    assert_eq!(e["tenant_id"], NORDIC);
    assert_eq!(e["principal_kind"], "user");
    assert_eq!(e["route"], "slow");
    assert_eq!(e["method"], "GET");
    assert_eq!(e["path"], "/slow/10", "the query is not kept");
    assert_eq!(e["resource"], "vessel");
    assert_eq!(e["action"], "read");
    assert_eq!(e["reason"], "allowed");
    assert!(!e["rules"].as_array().unwrap().is_empty(), "{e}");
    assert_eq!(e["client_ip"], "127.0.0.1");
    assert_eq!(e["user_agent"].as_str().unwrap().len(), 512);
    assert!(e["latency_ms"].as_f64().unwrap() >= 0.0);
    assert!(e["snapshot_version"].as_u64().is_some());
    // Every authenticated request is scored (SPEC "Request risk"): the
    // event carries the score the decision saw.
    let risk = e["risk_score"]
        .as_f64()
        .expect("an authenticated request has a risk score");
    assert!((0.0..=1.0).contains(&risk), "{e}");
    let id = uuid::Uuid::parse_str(e["id"].as_str().unwrap()).unwrap();
    assert_eq!(id.get_version_num(), 7);
    let time = e["time"].as_str().unwrap();
    assert!(time.len() == 24 && time.ends_with('Z') && time.as_bytes()[19] == b'.');

    let e = one(&denied);
    assert_eq!(
        (&e["outcome"], &e["code"], &e["status"], &e["action"]),
        (
            &"denied".into(),
            &"PERMISSION_DENIED".into(),
            &403.into(),
            &"update".into()
        )
    );
    assert_eq!(e["reason"], "no_matching_permission");
    assert_eq!(e["rules"], serde_json::json!([]));

    let e = one(&deny_rule);
    assert_eq!(e["reason"], "explicit_deny");
    assert_eq!(e["resource_id"], "v-a1");
    assert_eq!(e["rules"], serde_json::json!(["deny-delete-flagship"]));

    let e = one(&bad_token);
    assert_eq!(
        (&e["outcome"], &e["code"]),
        (&"denied".into(), &"AUTH_INVALID".into())
    );
    assert_eq!(e["principal_id"], Value::Null);
    assert_eq!(e["route"], "slow");

    let e = one(&no_route);
    assert_eq!(
        (&e["outcome"], &e["code"], &e["status"]),
        (&"error".into(), &"ROUTE_NOT_FOUND".into(), &404.into())
    );
    assert_eq!(e["route"], Value::Null);

    let e = one(&down);
    assert_eq!(
        (&e["outcome"], &e["code"], &e["status"]),
        (&"error".into(), &"UPSTREAM_UNAVAILABLE".into(), &502.into())
    );
    assert_eq!(
        e["principal_id"], VICTOR,
        "the caller was allowed, the upstream failed"
    );

    let e = one(&service);
    assert_eq!(e["principal_kind"], "service_account");
    assert_eq!(e["principal_id"], FLEET_SA);

    assert_eq!(one(&long)["resource_id"].as_str().unwrap().len(), 512);

    let e = one(&preflight);
    assert_eq!(
        (&e["outcome"], &e["code"], &e["status"], &e["method"]),
        (
            &"denied".into(),
            &Value::Null,
            &403.into(),
            &"OPTIONS".into()
        )
    );

    let e = one(&limited[3]);
    assert_eq!(
        (&e["outcome"], &e["code"], &e["status"]),
        (&"rate_limited".into(), &"RATE_LIMITED".into(), &429.into())
    );

    // Counted by outcome.
    for outcome in ["allowed", "denied", "rate_limited", "error"] {
        let n = events.iter().filter(|e| e["outcome"] == outcome).count();
        let series = format!("sentinel_audit_events_total{{outcome=\"{outcome}\"}}");
        assert_eq!(gw.metric(&series).await, n as f64, "{series}");
    }
    assert_eq!(
        gw.metric("sentinel_audit_events_total{outcome=\"rate_limited\"}")
            .await,
        1.0
    );
    assert_eq!(gw.metric("sentinel_audit_dropped_total").await, 0.0);
}

#[tokio::test]
async fn allowed_reads_are_sampled_where_asked_and_denials_never() {
    let gw = start(Options {
        // Also the `always` fsync policy: every event synced before its answer.
        extra_config: "[audit]\nspool_dir = \"audit-spool\"\nfsync = \"always\"\n".to_owned(),
        extra_routes: SAMPLED.to_owned(),
        ..Options::default()
    });
    // A client per request: an error answer closes the connection.
    let c = client;
    let victor = token(VICTOR, NORDIC);
    let mut reads = Vec::new();
    let mut denials = Vec::new();
    for _ in 0..200 {
        reads.push(send(c().get(gw.url("/sampled/x")).bearer_auth(&victor), 200).await);
    }
    for _ in 0..20 {
        denials.push(send(c().patch(gw.url("/sampled/x")).bearer_auth(&victor), 403).await);
    }
    let unsampled = send(c().get(gw.url("/slow/1")).bearer_auth(&victor), 200).await;
    let by = by_request(&spooled(&gw.dir.join("audit-spool")));
    let kept = reads.iter().filter(|r| by.contains_key(*r)).count();
    // 25 % of 200: far from both ends whatever the random request ids.
    assert!(
        (10..=90).contains(&kept),
        "kept {kept} of 200 sampled reads"
    );
    assert!(denials.iter().all(|d| by.contains_key(d)), "every denial");
    assert!(
        by.contains_key(&unsampled),
        "routes without sampling keep every read"
    );
}

#[tokio::test]
async fn without_an_admin_api_or_an_audit_section_there_is_no_trail() {
    let gw = start(Options::default());
    let victor = token(VICTOR, NORDIC);
    send(client().get(gw.url("/slow/1")).bearer_auth(&victor), 200).await;
    assert!(!gw.dir.join("audit-spool").exists());
    assert_eq!(gw.metric_sum("sentinel_audit_events_total", &[]).await, 0.0);
}

#[tokio::test]
async fn a_full_spool_drops_and_counts_while_the_gateway_keeps_serving() {
    let gw = start(Options {
        extra_config:
            "[audit]\nspool_dir = \"audit-spool\"\nmax_spool_bytes = 8192\nsegment_bytes = 4096\n"
                .to_owned(),
        ..Options::default()
    });
    // A client per request: an error answer closes the connection.
    let c = client;
    let victor = token(VICTOR, NORDIC);
    for _ in 0..60 {
        send(c().get(gw.url("/slow/1")).bearer_auth(&victor), 200).await;
    }
    let kept = spooled(&gw.dir.join("audit-spool")).len() as f64;
    let dropped = gw.metric("sentinel_audit_dropped_total").await;
    assert!(dropped > 0.0, "a full spool drops");
    assert_eq!(kept + dropped, 60.0, "every event is kept or counted");
    assert_eq!(
        gw.metric("sentinel_audit_events_total{outcome=\"allowed\"}")
            .await,
        kept
    );
    assert!(gw.metric("sentinel_audit_spool_bytes").await <= 8192.0);
}

/// Waits (bounded) until `cond` holds.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(30), "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_the_admin_api_in_order_across_outages_a_kill_and_poison() {
    let server = SnapshotServer::start();
    server.set(Reply::signed(1, payload(1, &[])));
    server.set_audit_status(503);
    let keys = std::env::temp_dir().join(format!("sentinel-audit-{}", uuid::Uuid::new_v4()));
    let mut gw = start(Options {
        policy_section: Some(admin_policy_section(&keys, &server.url(), "")),
        extra_config: "[audit]\nflush_ms = 20\nbatch_events = 40\n".to_owned(),
        env: admin_env(),
        capture_log: true,
        ..Options::default()
    });
    let spool = keys.join("audit");
    assert!(spool.is_dir(), "the default spool is beside the cache file");
    // A client per request: an error answer closes the connection.
    let c = client;
    let victor = token(VICTOR, NORDIC);

    // 1. The admin API fails: events wait in the spool, in order.
    let mut sent = Vec::new();
    for _ in 0..100 {
        sent.push(send(c().get(gw.url("/slow/1")).bearer_auth(&victor), 200).await);
    }
    until("a failed delivery", || server.audit_batches() >= 2).await;
    gw.wait_metric("sentinel_audit_ship_failures_total", 1.0)
        .await;
    assert!(server.audit_events().is_empty());

    // 2. It answers again: everything arrives, in the order answered.
    server.set_audit_status(0);
    until("the first 100 events", || {
        server.audit_events().len() >= 100
    })
    .await;
    let got: Vec<String> = server
        .audit_events()
        .iter()
        .map(|e| e["request_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got, sent, "replayed in order, none lost, none doubled");
    gw.wait_metric("sentinel_audit_shipped_total", 100.0).await;

    // 3. SIGKILL with events not yet shipped, then a restart: replayed.
    server.set_audit_status(503);
    for _ in 0..50 {
        sent.push(send(c().get(gw.url("/slow/1")).bearer_auth(&victor), 200).await);
    }
    gw.restart(true);
    server.set_audit_status(0);
    for _ in 0..10 {
        sent.push(send(c().get(gw.url("/slow/1")).bearer_auth(&victor), 200).await);
    }
    until("every event after the kill", || {
        let have: std::collections::HashSet<String> = server
            .audit_events()
            .iter()
            .map(|e| e["request_id"].as_str().unwrap().to_owned())
            .collect();
        sent.iter().all(|s| have.contains(s))
    })
    .await;

    // 4. A batch refused for good is kept aside and counted; the next ones go on.
    server.set_audit_status(422);
    for _ in 0..5 {
        send(c().get(gw.url("/slow/1")).bearer_auth(&victor), 200).await;
    }
    gw.wait_metric("sentinel_audit_rejected_total", 5.0).await;
    let rejected: usize = std::fs::read_dir(spool.join("rejected"))
        .unwrap()
        .map(|e| {
            std::fs::read_to_string(e.unwrap().path())
                .unwrap()
                .lines()
                .count()
        })
        .sum();
    assert_eq!(rejected, 5);
    server.set_audit_status(0);
    let last = send(c().get(gw.url("/slow/1")).bearer_auth(&victor), 200).await;
    until("the event after the poison batch", || {
        server
            .audit_events()
            .iter()
            .any(|e| e["request_id"] == last.as_str())
    })
    .await;
    assert_eq!(server.bad_auth(), 0, "batches carry the gateway key");
    let _ = std::fs::remove_dir_all(&keys);
}

#[test]
fn bad_audit_settings_are_config_problems() {
    let dir = bundled_config_copy("audit-check");
    let path = dir.join("sentinel.toml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    let first = text.lines().count() + 3;
    text.push_str("\n[audit]\nspool_dir = \"\"\nmax_spool_bytes = 5000\nsegment_bytes = 4096\nbatch_events = 20000\nflush_ms = 0\nfsync = \"sometimes\"\n");
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sentinel"))
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let file = path.display().to_string();
    for (line, message) in [
        (first, "`spool_dir` must not be empty"),
        (
            first + 1,
            "`max_spool_bytes` must be at least twice `segment_bytes`",
        ),
        (first + 3, "`batch_events` must be between 1 and 10000"),
        (first + 4, "`flush_ms` must be between 1 and 60000"),
        (first + 5, "unknown `fsync` `sometimes`"),
    ] {
        let prefix = format!("{file}:{line}:");
        assert!(
            text.lines()
                .any(|l| l.starts_with(&prefix) && l.contains(message)),
            "no `{prefix} … {message}` in:\n{text}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
