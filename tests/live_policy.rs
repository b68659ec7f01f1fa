//! Live policy from the admin snapshot source, against a scripted (and
//! hostile) snapshot server: every forged, replayed, truncated or broken
//! snapshot is rejected, counted by reason, and the gateway keeps enforcing
//! the snapshot in force. Also: the cache file across restarts, staleness,
//! and `sentinel check` on an admin source.
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests fail loudly, in their helpers too"
)]

mod common;

use common::admin::{admin, psql, AdminServer, Db};
use common::snapshots::{
    admin_env, admin_policy_section, payload, rogue, signer, Parts, Reply, SnapshotServer,
    PINNED_KID,
};
use common::*;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const JTI: &str = "live-policy-victor-session";

fn scratch() -> PathBuf {
    let d = std::env::temp_dir().join(format!("sentinel-live-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

async fn status(gw: &Gateway, token: &str) -> u16 {
    client()
        .get(gw.url("/msw/vessels"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn readyz(gw: &Gateway) -> (u16, serde_json::Value) {
    let resp = client().get(gw.ops_url("/readyz")).send().await.unwrap();
    let code = resp.status().as_u16();
    (code, resp.json().await.unwrap())
}

/// Waits (up to 10 s) until the cache file holds `version`; returns its text.
/// The gateway writes it on its own task after the swap, so a restart right
/// after a swap may still find the previous one.
async fn wait_cache(path: &std::path::Path, version: u64) -> String {
    let start = Instant::now();
    let want = format!("\"version\":{version},");
    loop {
        if let Ok(bytes) = std::fs::read(path) {
            let text = String::from_utf8(bytes).unwrap();
            if text.contains(&want) {
                return text;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the cache never reached version {version}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_status(gw: &Gateway, token: &str, want: u16) -> Duration {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if status(gw, token).await == want {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("never answered {want}; log:\n{}", gw.log());
}

fn start_admin(
    server: &SnapshotServer,
    keys: &std::path::Path,
    extra: &str,
    ready: bool,
) -> Gateway {
    start(Options {
        policy_section: Some(admin_policy_section(keys, &server.url(), extra)),
        env: admin_env(),
        require_ready: ready,
        capture_log: true,
        ..Options::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_snapshots_are_rejected_and_the_current_one_keeps_serving() {
    let server = SnapshotServer::start();
    server.set(Reply::signed(10, payload(10, &[])));
    let keys = scratch();
    let gw = start_admin(&server, &keys, "", true);
    let victor = token_with(VICTOR, NORDIC, false, Some(JTI));
    assert_eq!(status(&gw, &victor).await, 200);
    assert_eq!(readyz(&gw).await.1["snapshot_version"], 10);
    assert_eq!(server.bad_auth(), 0, "the gateway sends its API key");

    // Every hostile snapshot below would revoke Victor's token if accepted:
    // his request answering 200 afterwards proves the old snapshot serves.
    let revoking = |v: u64| payload(v, &[JTI]);
    let parts = Parts::of(11, &revoking(11));
    let manifest = parts.manifest_bytes();
    let global = parts.manifest.global.sha256.clone();
    // A part changed after signing (its hash no longer matches its name).
    let tampered = {
        let mut p = Parts::of(11, &revoking(11));
        let g = p.parts.iter_mut().find(|(h, _)| *h == global).unwrap();
        let text = String::from_utf8(g.1.clone()).unwrap();
        g.1 = text.replacen(JTI, "not-victor", 1).into_bytes();
        assert_ne!(g.1, text.as_bytes(), "the global part revokes Victor's jti");
        Reply::body(11, p.signed_body(11))
    };
    // The manifest changed after signing (a part swapped for an older one).
    let manifest_swapped = {
        let old = Parts::of(10, &payload(10, &[]));
        let mut p = Parts::of(11, &revoking(11));
        let sig = signer().sign(&p.manifest_bytes(), 11, now()).unwrap();
        p.manifest.global.sha256 = old.manifest.global.sha256.clone();
        p.parts.extend(old.parts);
        Reply::body(11, p.body(&sig))
    };
    let unsigned = Reply::body(11, parts.body(""));
    let unpinned = Reply::body(
        11,
        parts.body(&rogue("rogue-1").sign(&manifest, 11, now()).unwrap()),
    );
    let pinned_kid_wrong_key = Reply::body(
        11,
        parts.body(&rogue(PINNED_KID).sign(&manifest, 11, now()).unwrap()),
    );
    let access_token_typ = {
        // A JWS by the pinned key that is not a snapshot signature.
        let pem = std::fs::read(repo().join("policy/tests/keys/snap-ed.pem")).unwrap();
        let key = jsonwebtoken::EncodingKey::from_ed_pem(&pem).unwrap();
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some(PINNED_KID.into());
        let claims = serde_json::json!({"ver": 11, "iat": now(),
            "sha256": sentinel_policy::signed::payload_sha256(&manifest)});
        Reply::body(
            11,
            parts.body(&jsonwebtoken::encode(&header, &claims, &key).unwrap()),
        )
    };
    let mut truncated_short = Reply::signed(11, revoking(11));
    truncated_short.declared_len = Some(truncated_short.body.len());
    truncated_short
        .body
        .truncate(truncated_short.body.len() / 2);
    let mut truncated_signed_len = Reply::signed(11, revoking(11));
    truncated_signed_len
        .body
        .truncate(truncated_signed_len.body.len() - 10);
    let uncompilable = {
        let text = String::from_utf8(revoking(11)).unwrap();
        let broken = text.replacen("\"parent\":\"viewer\"", "\"parent\":\"no-such-role\"", 1);
        assert_ne!(
            text, broken,
            "the demo policy has a role with parent `viewer`"
        );
        Reply::signed(11, broken.into_bytes())
    };
    let version_mismatch = Reply::body(12, parts.signed_body(12));
    // Signed and hashed, but a part is not a policy part.
    let not_policy = {
        let mut p = Parts::of(11, &revoking(11));
        let junk = br#"{"tenants": 5}"#.to_vec();
        let hash = sentinel_policy::signed::payload_sha256(&junk);
        p.manifest.global.sha256 = hash.clone();
        p.parts.push((hash, junk));
        Reply::body(11, p.signed_body(11))
    };
    // Signed, but a part the manifest names is neither held nor sent.
    let missing = {
        let mut p = Parts::of(11, &revoking(11));
        p.parts.retain(|(h, _)| *h != global);
        Reply::body(11, p.signed_body(11))
    };

    let cases: Vec<(&str, Reply)> = vec![
        ("payload_mismatch", tampered),
        ("payload_mismatch", manifest_swapped),
        ("unsigned", unsigned),
        ("unknown_key", unpinned),
        ("bad_signature", pinned_kid_wrong_key),
        ("wrong_type", access_token_typ),
        ("incomplete", truncated_short),
        ("malformed", truncated_signed_len),
        ("compile", uncompilable),
        ("version_mismatch", version_mismatch),
        ("parse", not_policy),
        ("missing_part", missing),
    ];
    for (reason, reply) in cases {
        let series = format!("sentinel_snapshot_rejected_total{{reason=\"{reason}\"}}");
        let before = gw.metric(&series).await;
        server.set(reply);
        gw.wait_metric(&series, before + 1.0).await;
        assert_eq!(
            status(&gw, &victor).await,
            200,
            "after a `{reason}` snapshot"
        );
        let (code, ready) = readyz(&gw).await;
        assert_eq!((code, ready["snapshot_version"].as_u64()), (200, Some(10)));
        println!("rejected as {reason}: ok");
    }

    // Replays: an older genuine snapshot, and the same version with other content.
    server.set(Reply::signed(20, payload(20, &[])));
    gw.wait_metric("sentinel_snapshot_version", 20.0).await;
    let replayed = "sentinel_snapshot_rejected_total{reason=\"replayed\"}";
    server.set(Reply::signed(10, revoking(10)));
    gw.wait_metric(replayed, 1.0).await;
    server.set(Reply {
        force: true,
        ..Reply::signed(20, revoking(20))
    });
    gw.wait_metric(replayed, 2.0).await;
    assert_eq!(status(&gw, &victor).await, 200, "after replays");
    assert_eq!(readyz(&gw).await.1["snapshot_version"], 20);

    // A genuine newer snapshot is enforced.
    let compiled_before = gw
        .metric("sentinel_snapshot_parts_compiled_total{kind=\"global\"}")
        .await;
    server.set(Reply::signed(21, revoking(21)));
    let took = wait_status(&gw, &victor, 401).await;
    // Its global part (the revocation) was compiled and measured.
    gw.wait_metric(
        "sentinel_snapshot_parts_compiled_total{kind=\"global\"}",
        compiled_before + 1.0,
    )
    .await;
    assert!(gw.metric("sentinel_snapshot_apply_seconds_count").await >= 1.0);
    assert!(gw.metric("sentinel_snapshot_bundle_bytes").await > 0.0);
    println!("genuine revocation enforced after {took:?}");
    let body = client()
        .get(gw.url("/msw/vessels"))
        .bearer_auth(&victor)
        .send()
        .await
        .unwrap();
    expect_error(body, 401, "TOKEN_REVOKED").await;

    // The cache holds the last good snapshot, never a rejected one. It is
    // written right after the swap, so the request above can see v21 first.
    wait_cache(&keys.join("snapshot.cache"), 21).await;
    let log = gw.log();
    let fetch_errors = log.matches("policy snapshot fetch failed").count();
    assert!(
        fetch_errors <= 13,
        "one log line per change of state, not per retry ({fetch_errors})"
    );
    drop(gw);
    let _ = std::fs::remove_dir_all(&keys);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_keys_reload_without_a_restart() {
    let server = SnapshotServer::start();
    server.set(Reply::signed(1, payload(1, &[])));
    let keys = scratch();
    let gw = start_admin(&server, &keys, "", true);
    let victor = token_with(VICTOR, NORDIC, false, Some(JTI));
    assert_eq!(status(&gw, &victor).await, 200);

    // Signed by a key the gateway does not pin (yet): refused.
    let next = Parts::of(2, &payload(2, &[JTI]));
    let sig = rogue("next-1")
        .sign(&next.manifest_bytes(), 2, now())
        .unwrap();
    server.set(Reply::body(2, next.body(&sig)));
    let unknown = "sentinel_snapshot_rejected_total{reason=\"unknown_key\"}";
    gw.wait_metric(unknown, 1.0).await;
    assert_eq!(status(&gw, &victor).await, 200);

    // A broken keys file is rejected with the reload; the pinned keys stay.
    let file = keys.join("snapshot.jwks.json");
    let applied = "sentinel_config_reloads_total{outcome=\"applied\"}";
    let rejected = "sentinel_config_reloads_total{outcome=\"rejected\"}";
    std::fs::write(&file, "{\"keys\": []}").unwrap();
    gw.wait_metric(rejected, 1.0).await;
    assert_eq!(status(&gw, &victor).await, 200);

    // The operator pins the next key (rotation): the same snapshot now verifies.
    let before = gw.metric(applied).await;
    std::fs::write(
        &file,
        common::snapshots::jwks_of(&[
            ("snap-ed.pub.pem", PINNED_KID),
            ("other-ed.pub.pem", "next-1"),
        ]),
    )
    .unwrap();
    gw.wait_metric(applied, before + 1.0).await;
    let took = wait_status(&gw, &victor, 401).await;
    println!("snapshot under the newly pinned key enforced after {took:?}");
    assert!(
        !gw.log().contains("read only at start"),
        "a keys change needs no restart"
    );
    drop(gw);
    let _ = std::fs::remove_dir_all(&keys);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_during_an_outage_serves_the_cache_and_catches_up() {
    let server = SnapshotServer::start();
    server.set(Reply::signed(5, payload(5, &[JTI])));
    let keys = scratch();
    let mut gw = start_admin(&server, &keys, "", true);
    let victor = token_with(VICTOR, NORDIC, false, Some(JTI));
    assert_eq!(status(&gw, &victor).await, 401);

    // The admin API goes away; the gateway keeps enforcing, then restarts.
    // (The cache is written after the swap, off the poller: wait for it.)
    wait_cache(&keys.join("snapshot.cache"), 5).await;
    server.set_down(true);
    gw.wait_metric("sentinel_snapshot_fetches_total{outcome=\"error\"}", 1.0)
        .await;
    assert_eq!(status(&gw, &victor).await, 401);
    gw.restart(true);
    let (code, ready) = readyz(&gw).await;
    assert_eq!((code, ready["snapshot_version"].as_u64()), (200, Some(5)));
    assert_eq!(
        status(&gw, &victor).await,
        401,
        "served from the cache file"
    );

    // The API is back with a newer snapshot: the gateway catches up.
    server.set(Reply::signed(6, payload(6, &[])));
    server.set_down(false);
    let took = wait_status(&gw, &victor, 200).await;
    println!("caught up after the outage in {took:?}");

    // A tampered cache file is refused at start: no snapshot, not ready,
    // requests refused with POLICY_UNAVAILABLE (fail closed).
    // Stop the gateway before touching the file so nothing rewrites it.
    server.set_down(true);
    let path = keys.join("snapshot.cache");
    let text = wait_cache(&path, 6).await;
    gw.stop();
    let tampered = text.replacen("\"version\":6", "\"version\":7", 1);
    assert_ne!(tampered, text);
    std::fs::write(&path, tampered).unwrap();
    gw.restart(false);
    let (code, _) = readyz(&gw).await;
    assert_eq!(code, 503);
    let resp = client()
        .get(gw.url("/msw/vessels"))
        .bearer_auth(&victor)
        .send()
        .await
        .unwrap();
    expect_error(resp, 503, "POLICY_UNAVAILABLE").await;
    assert!(
        gw.metric("sentinel_snapshot_rejected_total{reason=\"payload_mismatch\"}")
            .await
            >= 1.0
    );
    drop(gw);
    let _ = std::fs::remove_dir_all(&keys);
}

/// The `[policy]` section of [`start_admin`] with a long backoff (15–30 s
/// after the first failure).
fn long_backoff(server: &SnapshotServer, keys: &std::path::Path) -> String {
    let short = "backoff_min = \"100ms\"\nbackoff_max = \"400ms\"\n";
    let section = admin_policy_section(keys, &server.url(), "");
    assert!(section.contains(short));
    section.replace(short, "backoff_min = \"30s\"\nbackoff_max = \"60s\"\n")
}

/// An admin API that cannot be reached is tried again every 250–500 ms
/// whatever the backoff (there is nothing to overload), so a gateway catches
/// up within a second of its return, not a backoff step later. Fails on a
/// poller that backs off on an unreachable API as on an error answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_admin_api_is_tried_again_quickly_despite_a_long_backoff() {
    let server = SnapshotServer::start();
    server.set(Reply::signed(5, payload(5, &[JTI])));
    let keys = scratch();
    let gw = start(Options {
        policy_section: Some(long_backoff(&server, &keys)),
        env: admin_env(),
        require_ready: true,
        capture_log: true,
        ..Options::default()
    });
    let victor = token_with(VICTOR, NORDIC, false, Some(JTI));
    assert_eq!(status(&gw, &victor).await, 401);

    // The admin API goes away (connections are closed unanswered): the
    // gateway keeps enforcing what it holds.
    server.set_down(true);
    gw.wait_metric("sentinel_snapshot_fetches_total{outcome=\"error\"}", 1.0)
        .await;
    assert_eq!(status(&gw, &victor).await, 401, "kept during the outage");

    // Back with a newer snapshot. A backoff step would be 15–30 s here.
    server.set(Reply::signed(6, payload(6, &[])));
    server.set_down(false);
    let back = Instant::now();
    let took = wait_status(&gw, &victor, 200).await;
    println!(
        "caught up {:.0} ms after the admin API came back (backoff_min = 30s)",
        back.elapsed().as_secs_f64() * 1000.0
    );
    assert!(took < Duration::from_secs(10), "caught up after {took:?}");
    drop(gw);
    let _ = std::fs::remove_dir_all(&keys);
}

/// An admin API that answers with an error is not hammered: the backoff
/// holds for answers (here a 401 to a wrong API key), only an unreachable
/// API is tried again quickly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_answers_keep_the_backoff() {
    let server = SnapshotServer::start();
    server.set(Reply::signed(5, payload(5, &[])));
    let keys = scratch();
    let gw = start(Options {
        policy_section: Some(long_backoff(&server, &keys)),
        env: vec![(admin_env()[0].0.clone(), "sk_wrong_key".to_owned())],
        require_ready: false,
        capture_log: true,
        ..Options::default()
    });
    gw.wait_metric("sentinel_snapshot_fetches_total{outcome=\"error\"}", 1.0)
        .await;
    let first = server.bad_auth();
    assert!(first >= 1);
    // The next try is 15–30 s away; two seconds see none.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        server.bad_auth(),
        first,
        "an error answer was retried at once"
    );
    assert_eq!(readyz(&gw).await.0, 503);
    drop(gw);
    let _ = std::fs::remove_dir_all(&keys);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_published_yet_means_not_ready() {
    let server = SnapshotServer::start();
    let keys = scratch();
    let gw = start_admin(&server, &keys, "", false);
    gw.wait_metric(
        "sentinel_snapshot_fetches_total{outcome=\"unavailable\"}",
        1.0,
    )
    .await;
    assert_eq!(readyz(&gw).await.0, 503);
    let victor = token(VICTOR, NORDIC);
    let resp = client()
        .get(gw.url("/msw/vessels"))
        .bearer_auth(&victor)
        .send()
        .await
        .unwrap();
    expect_error(resp, 503, "POLICY_UNAVAILABLE").await;
    server.set(Reply::signed(1, payload(1, &[])));
    wait_status(&gw, &victor, 200).await;
    assert_eq!(readyz(&gw).await.0, 200);
    drop(gw);
    let _ = std::fs::remove_dir_all(&keys);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_age_keep_enforces_with_an_alarm_and_refuse_refuses() {
    let server = SnapshotServer::start();
    server.set(Reply::signed(3, payload(3, &[])));
    let (keep_keys, refuse_keys) = (scratch(), scratch());
    let keep = start_admin(&server, &keep_keys, "max_age = \"2s\"\n", true);
    let refuse = start_admin(
        &server,
        &refuse_keys,
        "max_age = \"2s\"\non_stale = \"refuse\"\n",
        true,
    );
    let victor = token(VICTOR, NORDIC);
    server.set_down(true);
    // Staleness is measured in whole seconds: > 2 s means 3 s or more.
    let start = Instant::now();
    loop {
        let (code, body) = readyz(&refuse).await;
        if code == 503 {
            assert!(body["reason"].as_str().unwrap().contains("max_age"));
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "refuse never went stale"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let resp = client()
        .get(refuse.url("/msw/vessels"))
        .bearer_auth(&victor)
        .send()
        .await
        .unwrap();
    expect_error(resp, 503, "POLICY_UNAVAILABLE").await;
    let start = Instant::now();
    loop {
        let (code, body) = readyz(&keep).await;
        assert_eq!(code, 200, "keep stays ready: {body}");
        if body["stale"] == true {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "keep never went stale"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(keep.metric("sentinel_snapshot_stale").await, 1.0);
    assert!(keep.metric("sentinel_snapshot_check_age_seconds").await >= 3.0);
    assert_eq!(status(&keep, &victor).await, 200, "keep keeps enforcing");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        keep.log().matches("older than `max_age`").count(),
        1,
        "the staleness alarm is logged once"
    );

    // The API is back: both are fresh again.
    server.set_down(false);
    wait_status(&refuse, &victor, 200).await;
    assert_eq!(readyz(&refuse).await.0, 200);
    let start = Instant::now();
    while readyz(&keep).await.1["stale"] != false {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "keep never fresh again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop((keep, refuse));
    let _ = std::fs::remove_dir_all(&keep_keys);
    let _ = std::fs::remove_dir_all(&refuse_keys);
}

#[test]
fn check_reports_admin_source_problems_with_locations() {
    let dir = scratch();
    std::fs::write(dir.join("keys.jwks.json"), "{\"keys\": []}").unwrap();
    std::fs::create_dir_all(dir.join("routes")).unwrap();
    std::fs::write(
        dir.join("routes/r.toml"),
        "[[routes]]\nid = \"s\"\npath = \"/s\"\nupstream = \"u\"\nauth = \"public\"\n",
    )
    .unwrap();
    std::fs::copy(
        repo().join("config/keys/gateway-assertion.pem"),
        dir.join("a.pem"),
    )
    .unwrap();
    let config = r#"routes = ["routes/*.toml"]

[upstreams.u]
addresses = ["127.0.0.1:1"]

[policy]
source = "admin"
admin_url = "ftp://admin"
keys_file = "keys.jwks.json"
api_key_env = "SENTINEL_TEST_UNSET_VARIABLE"
api_key_file = "key.txt"
wait = "2m"
on_stale = "maybe"
max_age = "20s"
backoff_min = "1s"
backoff_max = "10ms"
paths = ["policy.toml"]

[assertion]
issuer = "gw"
audience = "up"
key_file = "a.pem"
kid = "k"
"#;
    std::fs::write(dir.join("sentinel.toml"), config).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sentinel"))
        .args(["check", "--config"])
        .arg(dir.join("sentinel.toml"))
        .env_remove("SENTINEL_TEST_UNSET_VARIABLE")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert_eq!(out.status.code(), Some(1));
    let file = dir.join("sentinel.toml").display().to_string();
    for (line, message) in [
        (17, "`paths` belongs to `source = \"file\"`, not `admin`"),
        (8, "`admin_url` must be an `http://` or `https://` URL"),
        (9, "holds no key"),
        (11, "set one of `api_key_env` and `api_key_file`"),
        (12, "`wait` must be between 1s and 60s"),
        (13, "unknown `on_stale` value `maybe`"),
        (14, "`max_age` must be longer than `wait`"),
        (16, "`backoff_max` must be at least `backoff_min`"),
    ] {
        let prefix = format!("{file}:{line}:");
        assert!(
            text.lines()
                .any(|l| l.starts_with(&prefix) && l.contains(message)),
            "no `{prefix} … {message}` in:\n{text}"
        );
    }
    assert!(!text.contains(common::snapshots::API_KEY));
    let _ = std::fs::remove_dir_all(&dir);
}

// ------------------------------------------------------------------------
// End to end: the real `sentinel-admin` binary, real PostgreSQL, two gateways.

const DEMO_PASSWORD: &str = "Demo-Passw0rd!";
const GATEWAY_KEY_ENV: &str = "SENTINEL_E2E_ADMIN_KEY";

async fn login(api: &str, email: &str) -> String {
    let r = client()
        .post(format!("{api}/api/v1/auth/login"))
        .json(&serde_json::json!({"email": email, "password": DEMO_PASSWORD, "tenant_code": "TEST-001"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "login {email}");
    let body: serde_json::Value = r.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// The id of the item named `name` in a list endpoint.
async fn id_of(api: &str, token: &str, list: &str, name: &str) -> String {
    let body: serde_json::Value = client()
        .get(format!("{api}/api/v1/{list}?name={name}&limit=200"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == name)
        .unwrap_or_else(|| panic!("no {list} named {name}: {body}"))["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Sends `method path` with `token` through `gw` until it answers `want`;
/// the time that took from `since`.
async fn enforced(
    gw: &Gateway,
    method: reqwest::Method,
    path: &str,
    token: &str,
    want: u16,
    since: Instant,
) -> Duration {
    let c = client();
    loop {
        let status = c
            .request(method.clone(), gw.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if status == want {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < Duration::from_secs(10),
            "{method} {path} never answered {want} (last {status}); log:\n{}",
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Both gateways enforce the change within the generous bound; the two
/// latencies (printed when `verbose`).
#[expect(
    clippy::too_many_arguments,
    reason = "a test step, spelled out at each call"
)]
async fn both_enforce(
    what: &str,
    gws: [&Gateway; 2],
    method: reqwest::Method,
    path: &str,
    token: &str,
    want: u16,
    since: Instant,
    verbose: bool,
) -> [Duration; 2] {
    let (a, b) = tokio::join!(
        enforced(gws[0], method.clone(), path, token, want, since),
        enforced(gws[1], method.clone(), path, token, want, since)
    );
    if verbose {
        println!(
            "e2e: {what}: enforced by gateway 1 after {:.1} ms, gateway 2 after {:.1} ms (from the API call returning)",
            a.as_secs_f64() * 1000.0,
            b.as_secs_f64() * 1000.0
        );
    }
    let bound = Duration::from_secs(5);
    assert!(
        a < bound && b < bound,
        "{what}: {a:?} / {b:?} exceed {bound:?}"
    );
    [a, b]
}

/// Latencies of each kind of change, per gateway, over the rounds.
#[derive(Default)]
struct Samples(Vec<(&'static str, [Vec<Duration>; 2])>);

impl Samples {
    fn add(&mut self, what: &'static str, took: [Duration; 2]) {
        let i = match self.0.iter().position(|(w, _)| *w == what) {
            Some(i) => i,
            None => {
                self.0.push((what, [Vec::new(), Vec::new()]));
                self.0.len() - 1
            }
        };
        for (list, t) in self.0[i].1.iter_mut().zip(took) {
            list.push(t);
        }
    }

    /// One line per kind: p50 / p99 (nearest rank) and max per gateway.
    fn print(&self) {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        for (what, per_gw) in &self.0 {
            let cols: Vec<String> = per_gw
                .iter()
                .map(|v| {
                    let mut v = v.clone();
                    v.sort();
                    let rank = |p: f64| v[((p * v.len() as f64).ceil() as usize).max(1) - 1];
                    format!(
                        "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                        ms(rank(0.50)),
                        ms(rank(0.99)),
                        ms(v[v.len() - 1])
                    )
                })
                .collect();
            println!(
                "e2e summary: {what} (n = {}): gateway 1 {} | gateway 2 {}",
                per_gw[0].len(),
                cols[0],
                cols[1]
            );
        }
    }
}

/// `SENTINEL_E2E_SCALE=tenants,users,roles,perms` (per tenant, as
/// `admin-api/examples/scale_seed.sql` takes them) adds that synthetic policy
/// beside the demo one, so the same steps are measured at scale; run it with
/// `--release` (docs/PERFORMANCE.md, "Deltas: end to end at scale").
fn scale_seed() -> Option<[u32; 4]> {
    let v = std::env::var("SENTINEL_E2E_SCALE").ok()?;
    let n: Vec<u32> = v.split(',').map(|x| x.trim().parse().unwrap()).collect();
    Some([n[0], n[1], n[2], n[3]])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn end_to_end_with_the_admin_api_postgres_and_two_gateways() {
    let db = Db::new("sentinel_gw_e2e");
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
    let scale = scale_seed();
    if let Some([t, u, r, p]) = scale {
        let started = Instant::now();
        let out = std::process::Command::new("psql")
            .arg(&owner)
            .args([
                "-q",
                "-v",
                &format!("tenants={t}"),
                "-v",
                &format!("users={u}"),
            ])
            .args(["-v", &format!("roles={r}"), "-v", &format!("perms={p}")])
            .arg("-f")
            .arg(repo().join("admin-api/examples/scale_seed.sql"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        println!(
            "e2e at scale: seeded {t} tenants x ({u} users, {r} roles, {p} permissions) in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    let gateway_key = admin(&owner, &["gateway-key", "create", "--name", "gw-e2e"])
        .trim()
        .to_owned();
    let pinned = admin(&owner, &["snapshot-jwks"]);
    let started = Instant::now();
    admin(&owner, &["publish"]);
    if scale.is_some() {
        println!(
            "e2e at scale: first (whole) publish took {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    // Twenty rounds log in and out more often than the default auth rate allows.
    let mut server = AdminServer::start_with(
        &api_role,
        None,
        &[
            ("SENTINEL_AUTH_RATE_PER_MINUTE", "6000"),
            ("SENTINEL_AUTH_RATE_BURST", "1000"),
        ],
    );
    let api = server.url();

    // The gateways trust the admin API's tokens (JWKS written to a file, so a
    // restart during the outage needs nothing from it) and pin its snapshot keys.
    let jwks = client()
        .get(format!("{api}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut gws = Vec::new();
    let mut dirs = Vec::new();
    // A long backoff (10–20 s after the first failure): only the quick
    // retry of an unreachable admin API brings the gateways back within
    // the bound after the outage below.
    for _ in 0..2 {
        let dir = scratch();
        std::fs::write(dir.join("snapshot.jwks.json"), &pinned).unwrap();
        std::fs::write(dir.join("admin.jwks.json"), &jwks).unwrap();
        let section = format!(
            "[policy]\nsource = \"admin\"\nadmin_url = \"{api}\"\nkeys_file = \"{}\"\napi_key_env = \"{GATEWAY_KEY_ENV}\"\nwait = \"30s\"\ncache_file = \"{}\"\nbackoff_min = \"20s\"\nbackoff_max = \"30s\"\n",
            dir.join("snapshot.jwks.json").display(),
            dir.join("snapshot.cache").display(),
        );
        // Strict low-s (the default): the admin API writes the canonical form.
        // Risk scoring stays on (the routes' risk slots fail closed without
        // it). Many rounds of 5 ms polling (SENTINEL_E2E_ROUNDS) read as an
        // anomaly by design (RISK_BLOCKED): measure rounds in fresh runs.
        let issuer = format!(
            "\n[[issuers]]\nissuer = \"sentinel-admin\"\naudiences = [\"sentinel\"]\nalgorithms = [\"ES256\"]\njwks_file = \"{}\"\nleeway = \"30s\"\n",
            dir.join("admin.jwks.json").display()
        );
        let started = Instant::now();
        let gw = start(Options {
            policy_section: Some(section),
            extra_config: issuer,
            env: vec![(GATEWAY_KEY_ENV.to_owned(), gateway_key.clone())],
            capture_log: true,
            // At scale the first (whole) bundle takes longer than the usual wait.
            require_ready: scale.is_none(),
            ..Options::default()
        });
        if scale.is_some() {
            while readyz(&gw).await.0 != 200 {
                assert!(
                    started.elapsed() < Duration::from_secs(600),
                    "never ready at scale"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            println!(
                "e2e at scale: gateway ready (whole bundle fetched and compiled) after {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
        gws.push(gw);
        dirs.push(dir);
    }
    let (g1, g2) = (&gws[0], &gws[1]);

    let alice = login(&api, "alice@nordic.example").await;
    let victor = login(&api, "victor@nordic.example").await;
    let viewer = id_of(&api, &alice, "roles", "viewer").await;
    let update = id_of(&api, &alice, "permissions", "vessel-update").await;
    let patch = reqwest::Method::PATCH;
    let get = reqwest::Method::GET;
    both_enforce(
        "baseline",
        [g1, g2],
        patch.clone(),
        "/msw/vessels/v-a2",
        &victor,
        403,
        Instant::now(),
        true,
    )
    .await;

    // `SENTINEL_E2E_ROUNDS=20` repeats every kind of change for p50/p99
    // figures (docs/PERFORMANCE.md); one round by default.
    let rounds: usize = std::env::var("SENTINEL_E2E_ROUNDS")
        .ok()
        .map_or(1, |v| v.trim().parse().unwrap());
    let verbose = rounds == 1;
    let mut samples = Samples::default();
    let mut session = String::new();
    for _ in 0..rounds {
        // 1. A permission grant.
        let r = client()
            .post(format!("{api}/api/v1/roles/{viewer}/permissions"))
            .bearer_auth(&alice)
            .json(&serde_json::json!({ "permission_ids": [update] }))
            .send()
            .await
            .unwrap();
        let since = Instant::now();
        assert!(r.status().is_success(), "grant: {}", r.status());
        let took = both_enforce(
            "grant",
            [g1, g2],
            patch.clone(),
            "/msw/vessels/v-a2",
            &victor,
            200,
            since,
            verbose,
        )
        .await;
        samples.add("grant", took);

        // 2. Its revocation.
        let r = client()
            .delete(format!("{api}/api/v1/roles/{viewer}/permissions/{update}"))
            .bearer_auth(&alice)
            .send()
            .await
            .unwrap();
        let since = Instant::now();
        assert!(r.status().is_success(), "revoke: {}", r.status());
        let took = both_enforce(
            "revocation",
            [g1, g2],
            patch.clone(),
            "/msw/vessels/v-a2",
            &victor,
            403,
            since,
            verbose,
        )
        .await;
        samples.add("revocation", took);

        // 3. A user lock (then unlock).
        let victor_id = VICTOR;
        let r = client()
            .post(format!("{api}/api/v1/users/{victor_id}/lock"))
            .bearer_auth(&alice)
            .send()
            .await
            .unwrap();
        let since = Instant::now();
        assert!(r.status().is_success(), "lock: {}", r.status());
        let took = both_enforce(
            "user lock",
            [g1, g2],
            get.clone(),
            "/msw/vessels",
            &victor,
            403,
            since,
            verbose,
        )
        .await;
        samples.add("user lock", took);
        let body = client()
            .get(g2.url("/msw/vessels"))
            .bearer_auth(&victor)
            .send()
            .await
            .unwrap();
        expect_error(body, 403, "ACCOUNT_LOCKED").await;
        let r = client()
            .post(format!("{api}/api/v1/users/{victor_id}/unlock"))
            .bearer_auth(&alice)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "unlock: {}", r.status());
        let since = Instant::now();
        let took = both_enforce(
            "unlock",
            [g1, g2],
            get.clone(),
            "/msw/vessels",
            &victor,
            200,
            since,
            verbose,
        )
        .await;
        samples.add("unlock", took);

        // 4. A logout: the token's jti is revoked at both gateways.
        session = login(&api, "victor@nordic.example").await;
        both_enforce(
            "new session",
            [g1, g2],
            get.clone(),
            "/msw/vessels",
            &session,
            200,
            Instant::now(),
            verbose,
        )
        .await;
        let r = client()
            .post(format!("{api}/api/v1/auth/logout"))
            .bearer_auth(&session)
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap();
        let since = Instant::now();
        assert!(r.status().is_success(), "logout: {}", r.status());
        let took = both_enforce(
            "logout",
            [g1, g2],
            get.clone(),
            "/msw/vessels",
            &session,
            401,
            since,
            verbose,
        )
        .await;
        samples.add("logout", took);
    }
    samples.print();

    // Admin API stopped: both keep enforcing; a gateway restarted during the
    // outage serves from its cache file.
    server.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    for gw in [g1, g2] {
        assert_eq!(
            status(gw, &session).await,
            401,
            "still revoked during the outage"
        );
        assert_eq!(
            status(gw, &victor).await,
            200,
            "still serving during the outage"
        );
    }
    let version_before = readyz(g1).await.1["snapshot_version"].as_u64().unwrap();
    wait_cache(&dirs[0].join("snapshot.cache"), version_before).await;
    gws[0].restart(true);
    let (g1, g2) = (&gws[0], &gws[1]);
    let (code, ready) = readyz(g1).await;
    assert_eq!(
        (code, ready["snapshot_version"].as_u64()),
        (200, Some(version_before))
    );
    assert_eq!(
        status(g1, &session).await,
        401,
        "restarted gateway: revocation from the cache"
    );
    assert_eq!(status(g1, &victor).await, 200);

    // The API returns: both catch up with changes made after it came back.
    server.restart();
    let back = Instant::now();
    let r = client()
        .post(format!("{api}/api/v1/roles/{viewer}/permissions"))
        .bearer_auth(&alice)
        .json(&serde_json::json!({ "permission_ids": [update] }))
        .send()
        .await
        .unwrap();
    let since = Instant::now();
    assert!(
        r.status().is_success(),
        "grant after the outage: {}",
        r.status()
    );
    both_enforce(
        "grant after the outage",
        [g1, g2],
        patch.clone(),
        "/msw/vessels/v-a2",
        &victor,
        200,
        since,
        true,
    )
    .await;
    let back = back.elapsed();
    println!(
        "e2e: grant after the outage: both gateways enforced it {:.1} ms after the admin API accepted connections again",
        back.as_secs_f64() * 1000.0
    );
    let latest = client()
        .get(format!("{api}/api/v1/snapshots/latest"))
        .header("authorization", format!("ApiKey {gateway_key}"))
        .send()
        .await
        .unwrap();
    let latest_version: u64 = latest.headers()["x-sentinel-snapshot-version"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    for gw in [g1, g2] {
        let start = Instant::now();
        while readyz(gw).await.1["snapshot_version"].as_u64() != Some(latest_version) {
            assert!(start.elapsed() < Duration::from_secs(10), "never caught up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            gw.metric("sentinel_snapshot_rejected_total{reason=\"bad_signature\"}")
                .await,
            0.0
        );
    }
    drop(gws);
    drop(server);
    for d in dirs {
        let _ = std::fs::remove_dir_all(d);
    }
}
