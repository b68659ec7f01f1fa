//! The anomaly model registry end to end (docs/anomaly.md, "Registry"): the
//! real `sentinel-admin` binary on a real PostgreSQL, and a gateway pulling
//! signed snapshots. A model activated in the registry is named by the next
//! manifest, fetched with the gateway key, checked by hash, loaded off the
//! request path and put in force without a restart; a roll back puts the
//! previous one back; a corrupt or hash-mismatched model is refused and the
//! one in force keeps scoring; a restart while the admin API is away loads
//! the kept copy.
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests fail loudly, in their helpers too"
)]

mod common;

use common::admin::{admin, psql, AdminServer, Db, ROOT_PASSWORD};
use common::*;
use serde_json::Value;
use std::time::{Duration, Instant};

const MODEL: &[u8] = include_bytes!("../models/anomaly/model.onnx");
const KEY_ENV: &str = "SENTINEL_MODEL_TEST_KEY";

/// The committed model with another `sentinel.version` (one metadata byte;
/// protobuf lengths unchanged): a second valid model with the same trees.
fn variant(version: u8) -> Vec<u8> {
    let from = b"\x10sentinel.version\x12\x011";
    let at = MODEL.windows(from.len()).position(|w| w == from).unwrap();
    let mut out = MODEL.to_vec();
    out[at + from.len() - 1] = version;
    out
}

async fn root_token(api: &str) -> String {
    let r = client()
        .post(format!("{api}/api/v1/auth/login"))
        .json(&serde_json::json!({"email": "root@platform.example.com", "password": ROOT_PASSWORD, "tenant_code": "PLATFORM"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "root login");
    let v: Value = r.json().await.unwrap();
    v["access_token"].as_str().unwrap().to_owned()
}

async fn upload(api: &str, token: &str, bytes: Vec<u8>) -> Value {
    let r = client()
        .post(format!("{api}/api/v1/ai/models"))
        .bearer_auth(token)
        .header("content-type", "application/octet-stream")
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "upload");
    r.json().await.unwrap()
}

async fn post(api: &str, token: &str, path: &str) -> Value {
    let r = client()
        .post(format!("{api}/api/v1/ai/models{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{path}: {v}");
    v
}

/// Waits (up to 20 s) until the model in force is `version`.
async fn wait_in_force(gw: &Gateway, version: &str) {
    let start = Instant::now();
    let label = format!("version=\"{version}\"");
    while start.elapsed() < Duration::from_secs(20) {
        if gw.metric_sum("sentinel_anomaly_model", &[&label]).await == 1.0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("model version {version} never in force; log:\n{}", gw.log());
}

/// Waits until `sentinel_anomaly_model_updates_total{outcome}` reaches `n`.
async fn wait_outcome(gw: &Gateway, outcome: &str, n: f64) {
    gw.wait_metric(
        &format!("sentinel_anomaly_model_updates_total{{outcome=\"{outcome}\"}}"),
        n,
    )
    .await;
}

async fn scored_request(gw: &Gateway) {
    let before = gw.metric("sentinel_anomaly_score_count").await;
    let r = client()
        .get(gw.url("/msw/vessels"))
        .bearer_auth(token(VICTOR, NORDIC))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(gw.metric("sentinel_anomaly_score_count").await > before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activated_models_are_hot_swapped_and_bad_ones_refused() {
    let db = Db::new("sentinel_model_registry");
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
    let key = admin(&owner, &["gateway-key", "create", "--name", "gw-models"])
        .trim()
        .to_owned();
    let pinned = admin(&owner, &["snapshot-jwks"]);
    admin(&owner, &["publish"]);
    let mut server = AdminServer::start(&api_role);
    let api = server.url();

    let dir = std::env::temp_dir().join(format!("sentinel-models-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("snapshot.jwks.json"), &pinned).unwrap();
    let section = format!(
        "[policy]\nsource = \"admin\"\nadmin_url = \"{api}\"\nkeys_file = \"{}\"\napi_key_env = \"{KEY_ENV}\"\nwait = \"30s\"\ncache_file = \"{}\"\nbackoff_min = \"100ms\"\nbackoff_max = \"500ms\"\n",
        dir.join("snapshot.jwks.json").display(),
        dir.join("snapshot.cache").display(),
    );
    let mut gw = start(Options {
        policy_section: Some(section),
        env: vec![(KEY_ENV.to_owned(), key)],
        capture_log: true,
        ..Options::default()
    });
    // No `[risk] model` and nothing active: the rules score.
    wait_in_force(&gw, "rules").await;
    scored_request(&gw).await;

    let root = root_token(&api).await;
    let m2 = upload(&api, &root, variant(b'2')).await;
    let m3 = upload(&api, &root, variant(b'3')).await;
    let (id2, id3) = (m2["id"].as_str().unwrap(), m3["id"].as_str().unwrap());

    // Activate → the gateway scores with it, no restart.
    post(&api, &root, &format!("/{id2}/activate")).await;
    wait_in_force(&gw, "2").await;
    scored_request(&gw).await;
    post(&api, &root, &format!("/{id3}/activate")).await;
    wait_in_force(&gw, "3").await;
    // Roll back → the previous one again.
    post(&api, &root, "/rollback").await;
    wait_in_force(&gw, "2").await;
    assert!(
        gw.metric("sentinel_anomaly_model_updates_total{outcome=\"loaded\"}")
            .await
            >= 3.0
    );

    // A corrupt model (registered behind the API's back: the upload would
    // refuse it) is activated: refused, model 2 keeps scoring.
    let junk = "not an onnx model at all";
    let junk_sha = psql(
        &owner,
        &format!("SELECT encode(sha256(convert_to('{junk}', 'UTF8')), 'hex')"),
    )
    .trim()
    .to_owned();
    let junk_id = psql(
        &owner,
        &format!(
            "INSERT INTO sentinel.ai_model_blobs (sha256, bytes) VALUES ('{junk_sha}', convert_to('{junk}', 'UTF8'));
             INSERT INTO sentinel.ai_models (name, version, sha256, size) VALUES ('junk', '1', '{junk_sha}', {}) RETURNING id",
            junk.len()
        ),
    )
    .trim()
    .to_owned();
    post(&api, &root, &format!("/{junk_id}/activate")).await;
    wait_outcome(&gw, "invalid", 1.0).await;
    wait_in_force(&gw, "2").await;
    scored_request(&gw).await;
    assert!(gw.log().contains("anomaly model refused"), "{}", gw.log());

    // Bytes that do not hash to what the manifest names (a tampered store or
    // a man in the middle): refused before parsing, model 2 kept.
    psql(
        &owner,
        &format!(
            "ALTER TABLE sentinel.ai_model_blobs DROP CONSTRAINT ai_model_blobs_hash_check;
             UPDATE sentinel.ai_model_blobs SET bytes = (SELECT bytes FROM sentinel.ai_model_blobs WHERE sha256 = '{}')
              WHERE sha256 = '{}'",
            m2["sha256"].as_str().unwrap(),
            m3["sha256"].as_str().unwrap()
        ),
    );
    post(&api, &root, &format!("/{id3}/activate")).await;
    wait_outcome(&gw, "hash_mismatch", 1.0).await;
    wait_in_force(&gw, "2").await;
    scored_request(&gw).await;

    // Model 2 active again (it is in force already), then a restart while
    // the admin API is away: the cached manifest names model 2 and its kept
    // copy loads.
    post(&api, &root, &format!("/{id2}/activate")).await;
    let start = Instant::now();
    loop {
        let cache = std::fs::read_to_string(dir.join("snapshot.cache")).unwrap_or_default();
        if cache.contains(m2["sha256"].as_str().unwrap())
            && std::fs::read(dir.join("snapshot.cache.model")).is_ok_and(|b| b == variant(b'2'))
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "cache never named model 2"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.kill();
    let seen = gw.log().len();
    gw.restart(true);
    wait_in_force(&gw, "2").await;
    let after = gw.log()[seen..].to_owned();
    let line = after
        .lines()
        .find(|l| l.contains("registry anomaly model in force"))
        .unwrap_or_else(|| panic!("no model line after the restart: {after}"));
    assert!(line.contains("cache"), "{line}");
    server.restart();
    let _ = std::fs::remove_dir_all(&dir);
}
