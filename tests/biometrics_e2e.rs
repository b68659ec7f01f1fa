//! Biometric profiles across gateway restarts and replicas (issue 20), with
//! the real binaries: the `sentinel-admin` API on a throwaway PostgreSQL
//! database and gateways that keep profiles there through it. A user
//! enrols, the gateway is killed and started again, and the owner's next
//! session is scored without enrolling again; a reset through the admin API
//! reaches the gateway's cache within `profile_check`.
//!
//! Run: `cargo test --test biometrics_e2e` (needs `psql`, PostgreSQL at
//! `DATABASE_URL` and the `sentinel-admin` binary).
#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

mod common;

use common::admin::*;
use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const KEY_ENV: &str = "SENTINEL_BIO_E2E_KEY";

/// Small enrolment (2 samples of 20 actions), profiles checked every second
/// and written back 200 ms after they change.
const BIO_CONFIG: &str = r#"
[risk.biometrics]
profile_check = "1s"
profile_write_delay = "200ms"

[risk.biometrics.scoring]
baseline_samples = 2
sample_mouse_actions = 20
forest_trees = 20
"#;

/// One mouse action: a move then a click. `fast`: another user's hand.
fn action(t0: f64, x0: i64, fast: bool, k: usize) -> (Vec<Value>, f64) {
    let (n, dt, step, click) = if fast {
        (6, 8.0, 45.0, 35.0)
    } else {
        (14, 20.0, 9.0, 140.0)
    };
    let mut ev = Vec::new();
    let mut t = t0;
    let dir = if k.is_multiple_of(2) { 1 } else { -1 };
    let (mut x, mut y) = (x0, 300);
    for i in 0..n {
        let wobble = if fast {
            ((i * 37 + k * 11) % 23) as i64 - 11
        } else {
            0
        };
        x = x0 + dir * (i as f64 * step) as i64;
        y = 300 + (i as f64 * step * 0.4) as i64 + wobble;
        ev.push(json!({"t": t, "x": x, "y": y, "button": "none", "state": "move"}));
        t += dt;
    }
    ev.push(json!({"t": t, "x": x, "y": y, "button": "left", "state": "pressed"}));
    t += click;
    ev.push(json!({"t": t, "x": x, "y": y, "button": "left", "state": "released"}));
    t += if fast { 150.0 } else { 600.0 };
    (ev, t)
}

fn mouse(actions: usize, fast: bool) -> Vec<Value> {
    let mut all = Vec::new();
    let mut t = 0.0;
    for k in 0..actions {
        let (ev, next) = action(t, 400 + (k as i64 % 5) * 30, fast, k);
        all.extend(ev);
        t = next;
    }
    all
}

/// Posts a whole session in batches of 200 events; the last answer.
async fn session(gw: &Gateway, bearer: &str, id: &str, actions: usize, fast: bool) -> Value {
    let mut last = Value::Null;
    for (seq, chunk) in mouse(actions, fast).chunks(200).enumerate() {
        let r = client()
            .post(gw.url("/.sentinel/biometrics"))
            .header("authorization", format!("Bearer {bearer}"))
            .header("content-type", "application/json")
            .body(json!({"session_id": id, "seq": seq, "mouse": chunk}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        last = r.json().await.unwrap();
    }
    last
}

/// The stored row of a user: `status|size` (empty: no row).
fn stored(owner: &str, user: &str) -> String {
    psql(
        owner,
        &format!(
            "SELECT status || '|' || coalesce(octet_length(profile), 0) FROM sentinel.biometric_profiles WHERE user_id = '{user}'"
        ),
    )
    .trim()
    .to_owned()
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct Setup {
    owner: String,
    api: String,
    key: String,
    pinned: String,
    // Dropped in this order: the server before its database.
    _server: AdminServer,
    _db: Db,
}

fn setup(prefix: &str) -> Setup {
    let db = Db::new(prefix);
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
    let key = admin(&owner, &["gateway-key", "create", "--name", "gw-bio-e2e"])
        .trim()
        .to_owned();
    let pinned = admin(&owner, &["snapshot-jwks"]);
    admin(&owner, &["publish"]);
    let server = AdminServer::start(&api_role);
    let api = server.url();
    Setup {
        owner,
        api,
        key,
        pinned,
        _server: server,
        _db: db,
    }
}

fn gateway(s: &Setup) -> Gateway {
    let dir = std::env::temp_dir().join(format!("sentinel-bio-e2e-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("snapshot.jwks.json"), &s.pinned).unwrap();
    let section = format!(
        "[policy]\nsource = \"admin\"\nadmin_url = \"{}\"\nkeys_file = \"{}\"\napi_key_env = \"{KEY_ENV}\"\nwait = \"30s\"\nbackoff_min = \"100ms\"\nbackoff_max = \"500ms\"\n",
        s.api,
        dir.join("snapshot.jwks.json").display(),
    );
    start(Options {
        policy_section: Some(section),
        extra_config: BIO_CONFIG.to_owned(),
        env: vec![(KEY_ENV.to_owned(), s.key.clone())],
        capture_log: true,
        ..Options::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_survives_a_restart_and_a_reset_reaches_the_gateway() {
    let s = setup("sentinel_bio_e2e");
    let mut gw = gateway(&s);
    let (alice, victor) = (token(ALICE, NORDIC), token(VICTOR, NORDIC));
    // Alice enrols with a quick hand (background for Victor's fit), Victor
    // with a slow one.
    for id in ["a-1", "a-2"] {
        session(&gw, &alice, id, 30, true).await;
    }
    session(&gw, &victor, "v-1", 30, false).await;
    session(&gw, &victor, "v-2", 30, false).await;
    let before = session(&gw, &victor, "v-3", 12, false).await;
    assert!(
        before["score"].is_number(),
        "scored once enrolled: {before}"
    );
    // The fitted profile reaches PostgreSQL (written back off the request path).
    wait_for(
        "Victor's ready profile in PostgreSQL",
        Duration::from_secs(30),
        || stored(&s.owner, VICTOR).starts_with("ready|"),
    );
    let size: usize = stored(&s.owner, VICTOR)
        .split('|')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(size > 10_000, "features and models, {size} bytes");

    // Kill the gateway (SIGKILL) and start it again: nothing in memory.
    gw.stop();
    gw.restart(true);
    let after = session(&gw, &victor, "v-4", 12, false).await;
    assert_ne!(
        after["status"], "enrolling",
        "re-enrolling after a restart: {after}"
    );
    assert_eq!(after["status"], before["status"], "{before} / {after}");
    assert_eq!(
        after["score"], before["score"],
        "the same profile scores the same"
    );
    // An impostor on Victor's account still fails against the loaded profile.
    let stolen = session(&gw, &token(VICTOR, NORDIC), "v-x", 12, true).await;
    assert_eq!(stolen["status"], "failed", "{stolen}");

    // A reset through the admin API (Alice administers TEST-001) reaches the
    // gateway's cache within `profile_check` (1 s here).
    let http = client();
    let login: Value = http
        .post(format!("{}/api/v1/auth/login", s.api))
        .json(&json!({"email": "alice@nordic.example", "password": "Demo-Passw0rd!", "tenant_code": "TEST-001"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let admin_token = login["access_token"].as_str().unwrap().to_owned();
    let r = http
        .post(format!("{}/api/v1/users/{VICTOR}/biometrics/reset", s.api))
        .bearer_auth(&admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let reset = session(&gw, &victor, "v-5", 12, false).await;
    assert_eq!(
        reset["status"], "enrolling",
        "the reset reached the gateway: {reset}"
    );
    assert!(reset["score"].is_null());
    // And the gateway's stale copy did not undo it.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        stored(&s.owner, VICTOR).starts_with("enrolling|"),
        "{}",
        stored(&s.owner, VICTOR)
    );
    // Delete: the row is gone, and stays gone.
    let r = http
        .delete(format!("{}/api/v1/users/{VICTOR}/biometrics", s.api))
        .bearer_auth(&admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    session(&gw, &victor, "v-6", 3, false).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    // v-6 may start a new enrolment (a new profile), never the old one back.
    let now = stored(&s.owner, VICTOR);
    assert!(now.is_empty() || now.starts_with("enrolling|"), "{now}");
}

/// Routes that act on the score, and one that does not.
const RISK_ROUTES: &str = r#"
[[routes]]
id = "risky-block"
path = "/risky/block"
methods = ["GET"]
upstream = "msw"
auth = "any"
resource = "vessel"
risk = { step_up_above = 0.3, block_above = 0.55 }

[[routes]]
id = "no-slot"
path = "/noslot"
methods = ["GET"]
upstream = "msw"
auth = "any"
resource = "vessel"
"#;

async fn get(gw: &Gateway, path: &str, bearer: &str) -> reqwest::Response {
    client()
        .get(gw.url(path))
        .bearer_auth(bearer)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_see_one_session_score_and_fail_closed_without_redis() {
    let port = free_port();
    let mut redis = RedisServer::start(port);
    let prefix = format!("bio-e2e-{}:", uuid::Uuid::new_v4().simple());
    let config = format!(
        "{}\n",
        BIO_CONFIG.replace(
            "profile_write_delay = \"200ms\"\n",
            &format!(
                "profile_write_delay = \"200ms\"\nredis_url = \"redis://127.0.0.1:{port}\"\nredis_prefix = \"{prefix}\"\nredis_timeout = \"200ms\"\n"
            ),
        )
    );
    let opts = || Options {
        extra_routes: RISK_ROUTES.to_owned(),
        extra_config: config.clone(),
        capture_log: true,
        ..Options::default()
    };
    let (one, two) = (start(opts()), start(opts()));
    let (alice, victor) = (token(ALICE, NORDIC), token(VICTOR, NORDIC));
    // Everything posts to gateway one.
    for id in ["a-1", "a-2"] {
        session(&one, &alice, id, 30, true).await;
    }
    session(&one, &victor, "v-1", 30, false).await;
    session(&one, &victor, "v-2", 30, false).await;
    let owner = token(VICTOR, NORDIC);
    let mine = session(&one, &owner, "v-3", 12, false).await;
    assert!(mine["score"].is_number(), "{mine}");
    let stolen = token(VICTOR, NORDIC);
    let theirs = session(&one, &stolen, "v-x", 12, true).await;
    assert_eq!(theirs["status"], "failed", "{theirs}");

    // Gateway two never saw either session, and refuses the impostor.
    let r = get(&two, "/risky/block", &stolen).await;
    let b = expect_error(r, 401, "BIOMETRIC_AUTH_FAILED").await;
    assert_eq!(b["error"]["details"]["signal"], "biometric");
    // The error body rounds scores to 3 decimals.
    let (seen, posted) = (
        b["error"]["details"]["score"].as_f64().unwrap(),
        theirs["score"].as_f64().unwrap(),
    );
    assert!(
        (seen - posted).abs() < 1e-3,
        "the same session score: {seen} / {posted}"
    );
    // A credential that never posted is not refused by a biometric score.
    let fresh = token(VICTOR, NORDIC);
    assert_eq!(get(&two, "/risky/block", &fresh).await.status(), 200);
    if mine["status"] == "ok" {
        assert_eq!(get(&two, "/risky/block", &owner).await.status(), 200);
    }

    // Redis goes away: routes that need the score fail closed, the others serve.
    redis.stop();
    let r = get(&two, "/risky/block", &fresh).await;
    let b = expect_error(r, 401, "STEP_UP_REQUIRED").await;
    assert_eq!(b["error"]["details"]["signal"], "none");
    assert_eq!(get(&two, "/noslot", &stolen).await.status(), 200);
    assert_eq!(get(&two, "/noslot", &fresh).await.status(), 200);
    // Posting still answers (the score stays local to the gateway).
    let again = session(&one, &owner, "v-4", 3, false).await;
    assert_eq!(again["session_id"], "v-4");
    let errors = two
        .metric_sum(
            "sentinel_biometric_shared_errors_total",
            &["kind=\"redis\""],
        )
        .await;
    assert!(errors >= 1.0, "{errors}");
}
