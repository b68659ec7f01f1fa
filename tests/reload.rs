//! Config and route-file reload (file change and SIGHUP), restart-only keys,
//! a bounded loopback load test with route reloads and snapshot swaps during
//! steady traffic, and Pingora's graceful upgrade.
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests fail loudly, in their helpers too"
)]

mod common;

use common::snapshots::{admin_env, admin_policy_section, payload, Reply, SnapshotServer};
use common::*;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PROBE: &str =
    "[[routes]]\nid = \"probe\"\npath = \"/reload-probe\"\nupstream = \"msw\"\nauth = \"public\"\n";

/// Writes atomically (temporary dotfile, then rename), as deploy tools should.
fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn probe(gw: &Gateway) -> u16 {
    client()
        .get(gw.url("/reload-probe"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn wait_probe(gw: &Gateway, want: u16) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if probe(gw).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("/reload-probe never answered {want}; log:\n{}", gw.log());
}

const APPLIED: &str = "sentinel_config_reloads_total{outcome=\"applied\"}";
const REJECTED: &str = "sentinel_config_reloads_total{outcome=\"rejected\"}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_files_reload_on_change_and_broken_configs_are_rejected_whole() {
    let gw = start(Options {
        capture_log: true,
        ..Options::default()
    });
    let file = gw.dir.join("routes/zz-live.toml");
    assert_eq!(probe(&gw).await, 404);
    write_atomic(&file, PROBE);
    wait_probe(&gw, 200).await;

    // A syntax error: rejected whole with its location; the old table stays.
    write_atomic(&file, &format!("{PROBE}\n[[routes]\nid = \"x\"\n"));
    gw.wait_metric(REJECTED, 1.0).await;
    assert_eq!(probe(&gw).await, 200);
    let where_ = format!("{}:7:", file.display());
    assert!(
        gw.log().contains(&where_),
        "no `{where_}` in the log:\n{}",
        gw.log()
    );

    // A valid file with a wrong reference: rejected as well, with its location.
    write_atomic(
        &file,
        "[[routes]]\nid = \"probe\"\npath = \"/reload-probe\"\nupstream = \"nowhere\"\nauth = \"public\"\n",
    );
    gw.wait_metric(REJECTED, 2.0).await;
    assert_eq!(probe(&gw).await, 200);
    assert!(gw.log().contains(&format!("{}:4:", file.display())));

    // Restart-only keys: the routes apply, and the log says a restart is needed.
    let main = gw.dir.join("sentinel.toml");
    let text = std::fs::read_to_string(&main).unwrap();
    let limited = text.replace("max_body_bytes = 1048576", "max_body_bytes = 2048");
    assert_ne!(text, limited);
    let applied = gw.metric(APPLIED).await;
    std::fs::remove_file(&file).unwrap();
    write_atomic(&main, &limited);
    gw.wait_metric(APPLIED, applied + 1.0).await;
    assert_eq!(probe(&gw).await, 404, "the removed route is gone");
    let log = gw.log();
    assert!(
        log.contains("`limits` changed in the configuration but is read only at start"),
        "{log}"
    );

    // Added upstreams need a restart: the reload is rejected, nothing changes.
    write_atomic(&file, PROBE);
    let rejected = gw.metric(REJECTED).await;
    write_atomic(
        &main,
        &format!("{limited}\n[upstreams.extra]\naddresses = [\"127.0.0.1:1\"]\n"),
    );
    gw.wait_metric(REJECTED, rejected + 1.0).await;
    assert_eq!(probe(&gw).await, 404);
    assert!(gw
        .log()
        .contains("upstreams were added, removed or renamed"));
    // Undo: the pending route file applies.
    write_atomic(&main, &limited);
    wait_probe(&gw, 200).await;
}

/// A gateway whose files are polled every `interval`.
fn start_polling_every(interval: &str) -> Gateway {
    start(Options {
        capture_log: true,
        policy_section: Some(format!(
            "[policy]\nsource = \"file\"\npaths = [\"policy/*.toml\"]\nwatch_interval = \"{interval}\"\n"
        )),
        ..Options::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads() {
    // Control: with a short interval the same write is picked up by polling
    // alone, so its absence below is the interval's doing.
    let polled = start_polling_every("100ms");
    std::fs::write(polled.dir.join("routes/zz-live.toml"), PROBE).unwrap();
    wait_probe(&polled, 200).await;
    drop(polled);

    let gw = start_polling_every("1h");
    std::fs::write(gw.dir.join("routes/zz-live.toml"), PROBE).unwrap();
    // No event tells that nothing happened: wait fifteen of the control's
    // intervals, then check that nothing was reloaded.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(probe(&gw).await, 404, "no file polling with a 1h interval");
    assert_eq!(gw.metric(APPLIED).await, 0.0);
    gw.signal("HUP");
    wait_probe(&gw, 200).await;
    // A broken file on SIGHUP: rejected, the process lives on.
    std::fs::write(gw.dir.join("routes/zz-live.toml"), "[[routes]]\nid = 1\n").unwrap();
    gw.signal("HUP");
    gw.wait_metric(REJECTED, 1.0).await;
    assert_eq!(probe(&gw).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reloads_and_snapshot_swaps_under_load_fail_no_request() {
    let server = SnapshotServer::start();
    server.set(Reply::signed(1, payload(1, &[])));
    let keys = std::env::temp_dir().join(format!("sentinel-load-{}", uuid::Uuid::new_v4()));
    let gw = start(Options {
        policy_section: Some(
            admin_policy_section(&keys, &server.url(), "")
                .replace("watch_interval = \"200ms\"", "watch_interval = \"100ms\""),
        ),
        env: admin_env(),
        capture_log: true,
        ..Options::default()
    });
    let gw = Arc::new(gw);
    let victor = token(VICTOR, NORDIC);
    let ok = Arc::new(AtomicU64::new(0));
    let non_2xx = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let duration = Duration::from_secs(10);
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (gw, victor, ok, non_2xx, errors) = (
            gw.clone(),
            victor.clone(),
            ok.clone(),
            non_2xx.clone(),
            errors.clone(),
        );
        clients.push(tokio::spawn(async move {
            let c = client(); // keep-alive: reloads must not reset connections
            while started.elapsed() < duration {
                match c
                    .get(gw.url("/msw/vessels"))
                    .bearer_auth(&victor)
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => {
                        eprintln!(
                            "non-2xx: {} {}",
                            r.status(),
                            r.text().await.unwrap_or_default()
                        );
                        non_2xx.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        eprintln!("request error: {e:?}");
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    // Route files and snapshots change every 200 ms while the clients run.
    let file = gw.dir.join("routes/zz-live.toml");
    let mut version = 1;
    let mut writes = 0;
    while started.elapsed() < duration - Duration::from_millis(1000) {
        if writes % 2 == 0 {
            write_atomic(&file, PROBE);
        } else {
            write_atomic(&file, &PROBE.replace("/reload-probe", "/reload-probe-2"));
        }
        writes += 1;
        version += 1;
        let jti = format!("unrelated-{version}");
        server.set(Reply::signed(version, payload(version, &[&jti])));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for c in clients {
        c.await.unwrap();
    }
    let reloads = gw.metric(APPLIED).await;
    let rejected = gw.metric(REJECTED).await;
    let swaps = gw
        .metric("sentinel_snapshot_fetches_total{outcome=\"updated\"}")
        .await;
    let snapshot_rejected = gw.log().matches("snapshot fetch failed").count();
    println!(
        "load: {} ok, {} non-2xx, {} errors in {duration:?}; {writes} route writes -> {reloads} reloads applied, {rejected} rejected; {} snapshots published -> {swaps} swapped in",
        ok.load(Ordering::Relaxed),
        non_2xx.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed),
        version - 1,
    );
    assert_eq!(non_2xx.load(Ordering::Relaxed), 0, "non-2xx responses");
    assert_eq!(
        errors.load(Ordering::Relaxed),
        0,
        "connection errors or resets"
    );
    assert!(ok.load(Ordering::Relaxed) > 100);
    assert!(reloads >= 20.0, "only {reloads} route reloads");
    assert!(swaps >= 20.0, "only {swaps} snapshot swaps");
    assert_eq!(rejected, 0.0);
    assert_eq!(snapshot_rejected, 0);
    drop(gw);
    let _ = std::fs::remove_dir_all(&keys);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_upgrade_hands_over_the_listeners() {
    let sock = std::env::temp_dir().join(format!("sentinel-upgrade-{}.sock", uuid::Uuid::new_v4()));
    let sock_arg = sock.display().to_string();
    let mut old = start(Options {
        capture_log: true,
        extra_args: vec!["--upgrade-sock".into(), sock_arg.clone()],
        ..Options::default()
    });
    let victor = token(VICTOR, NORDIC);
    assert!(!sock.exists(), "only the new process creates the socket");
    let mut new = old.spawn_sibling(&["--upgrade", "--upgrade-sock", &sock_arg]);
    // Wait until the new process listens for the hand-over (it creates the
    // socket), then tell the old one to go.
    let waited = Instant::now();
    while !sock.exists() {
        assert!(
            waited.elapsed() < Duration::from_secs(10),
            "the new process never offered to take the listeners; log:\n{}",
            old.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    old.signal("QUIT");
    // Fresh connections throughout: every one must be answered by one of them.
    let start = Instant::now();
    let mut answered = 0;
    let mut failed = 0;
    let mut old_gone = false;
    while start.elapsed() < Duration::from_secs(8) {
        let c = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        match c
            .get(old.url("/msw/vessels"))
            .bearer_auth(&victor)
            .send()
            .await
        {
            Ok(r) if r.status() == 200 => answered += 1,
            other => {
                eprintln!("during upgrade: {other:?}");
                failed += 1;
            }
        }
        if !old_gone && start.elapsed() > Duration::from_secs(3) {
            // The old process may linger in its grace period; the new one serves.
            old.stop();
            old_gone = true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = old.log();
    let _ = new.kill();
    let _ = new.wait();
    let _ = std::fs::remove_file(&sock);
    println!("upgrade: {answered} answered, {failed} failed");
    assert!(old_gone);
    assert_eq!(failed, 0, "log:\n{log}");
    assert!(answered > 10);
}
