//! The audit trail's fault test (issue 18) with the real binaries: the
//! `sentinel-admin` API on a throwaway PostgreSQL database and two gateways
//! shipping to it. 20,000 requests are answered by the gateways while the admin
//! API is killed (SIGKILL) and restarted twice and one gateway is killed
//! with SIGKILL and restarted; afterwards every request a gateway answered
//! is in `sentinel.audit_logs` exactly once (ids compared), none lost, none
//! doubled.
//!
//! Run: `cargo test --workspace --test audit_e2e` (needs `psql`, PostgreSQL
//! at `DATABASE_URL` and the `sentinel-admin` binary; `SENTINEL_ADMIN_BIN`
//! names another build of it).
#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

mod common;

use common::admin::*;
use common::*;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const REQUESTS: usize = 20_000;
const WORKERS: usize = 16;
const GATEWAY_KEY_ENV: &str = "SENTINEL_AUDIT_E2E_KEY";

/// The load: `WORKERS` tasks send requests over both gateways until
/// `REQUESTS` were answered; every answer's request id is kept (an answer is
/// anything with one).
struct Load {
    urls: Mutex<[String; 2]>,
    next: AtomicUsize,
    /// Requests sent (answered or not): the faults are placed by this.
    done: AtomicUsize,
    answered_n: AtomicUsize,
    answered: Mutex<Vec<String>>,
    failed: AtomicUsize,
}

async fn worker(load: Arc<Load>, token: String) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    loop {
        if load.answered_n.load(Ordering::SeqCst) >= REQUESTS {
            return;
        }
        let i = load.next.fetch_add(1, Ordering::SeqCst);
        let base = load.urls.lock().unwrap()[i % 2].clone();
        // Mostly allowed reads, some denials.
        let req = if i.is_multiple_of(10) {
            client.patch(format!("{base}/slow/1"))
        } else {
            client.get(format!("{base}/slow/1"))
        };
        match req.bearer_auth(&token).send().await {
            Ok(resp) => match resp.headers().get("x-sentinel-request-id") {
                Some(id) => {
                    let id = id.to_str().unwrap().to_owned();
                    let _ = resp.bytes().await;
                    load.answered.lock().unwrap().push(id);
                    load.answered_n.fetch_add(1, Ordering::SeqCst);
                }
                None => {
                    load.failed.fetch_add(1, Ordering::SeqCst);
                }
            },
            // A killed gateway: not answered, so not expected in the trail.
            Err(_) => {
                load.failed.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        load.done.fetch_add(1, Ordering::SeqCst);
    }
}

async fn wait_done(load: &Load, at_least: usize) {
    let start = Instant::now();
    while load.done.load(Ordering::SeqCst) < at_least {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the load stalled at {}",
            load.done.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// request id → rows in `audit_logs` (gateway events).
fn stored(owner: &str) -> HashMap<String, usize> {
    psql(
        owner,
        "SELECT request_id, count(*) FROM sentinel.audit_logs WHERE source = 'gateway' GROUP BY request_id",
    )
    .lines()
    .filter_map(|l| l.split_once('|'))
    .map(|(id, n)| (id.to_owned(), n.parse().unwrap()))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_answered_request_is_stored_once_through_admin_and_gateway_kills() {
    let started = Instant::now();
    let db = Db::new("sentinel_audit_e2e");
    let (owner, api_role) = db.urls();
    admin(&owner, &["migrate"]);
    psql(
        &owner,
        "ALTER ROLE sentinel_api PASSWORD 'sentinel-api-test'",
    );
    admin(
        &owner,
        &["bootstrap", "--email", "root@platform.example.com"],
    );
    admin(&owner, &["seed-demo"]);
    let key = admin(&owner, &["gateway-key", "create", "--name", "gw-audit-e2e"])
        .trim()
        .to_owned();
    let pinned = admin(&owner, &["snapshot-jwks"]);
    admin(&owner, &["publish"]);
    let mut server = AdminServer::start(&api_role);
    let api = server.url();

    let mut gws = Vec::new();
    let mut dirs = Vec::new();
    for _ in 0..2 {
        let dir = std::env::temp_dir().join(format!("sentinel-audit-e2e-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("snapshot.jwks.json"), &pinned).unwrap();
        let section = format!(
            "[policy]\nsource = \"admin\"\nadmin_url = \"{api}\"\nkeys_file = \"{}\"\napi_key_env = \"{GATEWAY_KEY_ENV}\"\nwait = \"30s\"\ncache_file = \"{}\"\nbackoff_min = \"100ms\"\nbackoff_max = \"500ms\"\n",
            dir.join("snapshot.jwks.json").display(),
            dir.join("snapshot.cache").display(),
        );
        gws.push(start(Options {
            policy_section: Some(section),
            extra_config: "[audit]\nflush_ms = 100\nbatch_events = 2000\n".to_owned(),
            env: vec![(GATEWAY_KEY_ENV.to_owned(), key.clone())],
            capture_log: true,
            ..Options::default()
        }));
        dirs.push(dir);
    }
    let load = Arc::new(Load {
        urls: Mutex::new([gws[0].url(""), gws[1].url("")]),
        next: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
        answered_n: AtomicUsize::new(0),
        answered: Mutex::new(Vec::new()),
        failed: AtomicUsize::new(0),
    });
    let token = token(VICTOR, NORDIC);
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| tokio::spawn(worker(load.clone(), token.clone())))
        .collect();

    // The faults, at fixed points of the load.
    wait_done(&load, REQUESTS * 15 / 100).await;
    server.kill();
    wait_done(&load, REQUESTS * 25 / 100).await;
    server.restart();
    wait_done(&load, REQUESTS * 40 / 100).await;
    gws[0].stop(); // SIGKILL
    wait_done(&load, REQUESTS * 45 / 100).await;
    gws[0].restart(true);
    *load.urls.lock().unwrap() = [gws[0].url(""), gws[1].url("")];
    wait_done(&load, REQUESTS * 60 / 100).await;
    server.kill();
    wait_done(&load, REQUESTS * 70 / 100).await;
    server.restart();
    for w in workers {
        w.await.unwrap();
    }
    let answered: Vec<String> = load.answered.lock().unwrap().clone();
    let unique: HashSet<&String> = answered.iter().collect();
    assert_eq!(unique.len(), answered.len(), "request ids are unique");
    println!(
        "audit e2e: {} requests answered, {} not (gateway down) in {:.1} s",
        answered.len(),
        load.failed.load(Ordering::SeqCst),
        started.elapsed().as_secs_f64()
    );
    assert!(answered.len() >= REQUESTS);

    // Everything arrives: the spools drain once the admin API answers.
    let wait = Instant::now();
    let rows = loop {
        let rows = stored(&owner);
        if unique.iter().all(|id| rows.contains_key(*id)) {
            break rows;
        }
        assert!(
            wait.elapsed() < Duration::from_secs(60),
            "{} of {} answered requests are not in audit_logs; gateway logs:\n{}\n{}",
            unique.iter().filter(|id| !rows.contains_key(**id)).count(),
            unique.len(),
            gws[0].log(),
            gws[1].log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let doubled: Vec<_> = rows.iter().filter(|(_, n)| **n != 1).collect();
    assert!(doubled.is_empty(), "stored more than once: {doubled:?}");
    // Rows for requests the client never saw answered: in flight when the
    // gateway was killed (its event was written before the answer).
    let extra = rows.len() - unique.len();
    println!(
        "audit e2e: {} rows, every answered request exactly once, {extra} more for requests cut by the kill; {:.1} s in all",
        rows.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(extra <= WORKERS, "{extra} rows for requests nobody sent");
    // The outages were seen: deliveries failed and were retried.
    let failures = gws[0].metric("sentinel_audit_ship_failures_total").await
        + gws[1].metric("sentinel_audit_ship_failures_total").await;
    assert!(
        failures > 0.0,
        "no delivery failed: the faults missed the shipping"
    );
    for d in dirs {
        let _ = std::fs::remove_dir_all(d);
    }
}
