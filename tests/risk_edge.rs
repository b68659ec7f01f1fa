//! Risk signals at the edge, through the real gateway binary: the
//! telemetry endpoints (`/.sentinel/telemetry.js`, `/.sentinel/telemetry/key`,
//! `POST /.sentinel/biometrics`), route `risk` slots answering step-up and
//! blocks by signal, and ABAC `risk` conditions failing closed.
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests fail loudly, in their helpers too"
)]

mod common;

use common::{client, expect_error, start, token, token_with, Options, ALICE, NORDIC, VICTOR};
use serde_json::{json, Value};

/// Test routes with low thresholds (the demo routes carry the seeds' 0.85/0.95).
const RISK_ROUTES: &str = r#"
[[routes]]
id = "risky-step"
path = "/risky/step"
methods = ["GET"]
upstream = "msw"
auth = "any"
resource = "vessel"
risk = { step_up_above = 0.5, block_above = 0.95 }

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

/// Enrolment small enough for a test: 2 samples of 20 mouse actions.
const SMALL_ENROLMENT: &str = r#"
[risk.biometrics.scoring]
baseline_samples = 2
sample_mouse_actions = 20
forest_trees = 20
"#;

fn gateway(extra_config: &str) -> common::Gateway {
    start(Options {
        extra_routes: RISK_ROUTES.into(),
        extra_config: extra_config.into(),
        ..Options::default()
    })
}

async fn post(gw: &common::Gateway, bearer: &str, body: &str) -> reqwest::Response {
    client()
        .post(gw.url("/.sentinel/biometrics"))
        .header("authorization", format!("Bearer {bearer}"))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

async fn post_ok(gw: &common::Gateway, bearer: &str, body: &Value) -> Value {
    let r = post(gw, bearer, &body.to_string()).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    r.json().await.unwrap()
}

/// One mouse action in a style: a move of `n` points then a click.
/// `fast`: another user's hand (quick, jerky, short clicks).
fn action(t0: f64, x0: i64, y0: i64, fast: bool, k: usize) -> (Vec<Value>, f64) {
    let mut ev = Vec::new();
    let (n, dt, step, click) = if fast {
        (6, 8.0, 45.0, 35.0)
    } else {
        (14, 20.0, 9.0, 140.0)
    };
    let mut t = t0;
    let dir = if k.is_multiple_of(2) { 1 } else { -1 };
    for i in 0..n {
        let wobble = if fast {
            ((i * 37 + k * 11) % 23) as i64 - 11
        } else {
            0
        };
        let x = x0 + dir * (i as f64 * step) as i64;
        let y = y0 + (i as f64 * step * 0.4) as i64 + wobble;
        ev.push(json!({"t": t, "x": x, "y": y, "button": "none", "state": "move"}));
        t += dt;
    }
    let (x, y) = (
        ev.last().unwrap()["x"].as_i64().unwrap(),
        ev.last().unwrap()["y"].as_i64().unwrap(),
    );
    ev.push(json!({"t": t, "x": x, "y": y, "button": "left", "state": "pressed"}));
    t += click;
    ev.push(json!({"t": t, "x": x, "y": y, "button": "left", "state": "released"}));
    t += if fast { 150.0 } else { 600.0 };
    (ev, t)
}

/// A session's mouse events: `actions` actions in one style, from `t0`.
fn mouse(actions: usize, fast: bool, t0: f64) -> (Vec<Value>, f64) {
    let mut all = Vec::new();
    let mut t = t0;
    for k in 0..actions {
        let (ev, next) = action(t, 400 + (k as i64 % 5) * 30, 300, fast, k);
        all.extend(ev);
        t = next;
    }
    (all, t)
}

/// Posts a whole session in batches of at most 200 events; the last answer.
async fn session(
    gw: &common::Gateway,
    bearer: &str,
    id: &str,
    actions: usize,
    fast: bool,
) -> Value {
    let (events, _) = mouse(actions, fast, 0.0);
    let mut last = Value::Null;
    for (seq, chunk) in events.chunks(200).enumerate() {
        last = post_ok(
            gw,
            bearer,
            &json!({"session_id": id, "seq": seq, "mouse": chunk}),
        )
        .await;
    }
    last
}

#[tokio::test]
async fn collector_is_public_cacheable_and_small() {
    let gw = gateway("");
    let r = client()
        .get(gw.url("/.sentinel/telemetry.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert!(h["content-type"].to_str().unwrap().contains("javascript"));
    assert!(h["cache-control"].to_str().unwrap().contains("public"));
    let etag = h["etag"].to_str().unwrap().to_owned();
    let js = r.text().await.unwrap();
    // The budget (docs/biometrics.md): 8 KiB before minification or compression.
    assert!(js.len() < 8 * 1024, "collector is {} bytes", js.len());
    // It reads key codes to hash them, never what was typed.
    assert!(!js.contains(".value") && !js.contains("e.key ") && !js.contains("e.key)"));
    let again = client()
        .get(gw.url("/.sentinel/telemetry.js"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    // The key-id secret is per user and needs the user's credential.
    let key = |who: &'static str| {
        let gw = &gw;
        async move {
            let r = client()
                .get(gw.url("/.sentinel/telemetry/key"))
                .header("authorization", format!("Bearer {}", token(who, NORDIC)))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()["key"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let (a1, a2, v) = (key(ALICE).await, key(ALICE).await, key(VICTOR).await);
    assert_eq!(a1, a2, "stable for one user");
    assert_ne!(a1, v, "different per user");
    let anon = client()
        .get(gw.url("/.sentinel/telemetry/key"))
        .send()
        .await
        .unwrap();
    expect_error(anon, 401, "AUTH_REQUIRED").await;
}

#[tokio::test]
async fn bad_batches_are_refused_and_store_nothing() {
    let gw = gateway("");
    let victor = token(VICTOR, NORDIC);
    let first = json!({"session_id": "s-val", "seq": 0,
        "mouse": [{"t": 100.0, "x": 10, "y": 20, "button": "none", "state": "move"},
                  {"t": 120.0, "x": 12, "y": 22, "button": "none", "state": "move"}],
        "keys": [{"field": "f1", "key": "k9", "down": 200.0, "up": 260.5}]});
    let accepted = post_ok(&gw, &victor, &first).await;
    assert_eq!(accepted["status"], "enrolling");
    assert_eq!(accepted["score"], Value::Null);
    assert_eq!(accepted["samples"], json!({"mouse": 2, "keys": 1}));

    let ev = |t: Value, x: Value, button: &str, state: &str| {
        json!({"session_id": "s-val", "mouse": [{"t": t, "x": x, "y": 1, "button": button, "state": state}]})
            .to_string()
    };
    let many: Vec<Value> = (0..1001)
        .map(|i| json!({"t": 1000.0 + f64::from(i), "x": 1, "y": 1, "button": "none", "state": "move"}))
        .collect();
    let rows: Vec<(&str, String, u16, &str)> = vec![
        ("malformed JSON", "{\"session_id\": ".into(), 400, "BAD_REQUEST"),
        ("number out of range", ev(json!(1), json!(1), "none", "move").replace("\"t\":1", "\"t\":1e999"), 400, "BAD_REQUEST"),
        ("not an object", "[]".into(), 422, "VALIDATION_ERROR"),
        ("wrong type", ev(json!("soon"), json!(1), "none", "move"), 422, "VALIDATION_ERROR"),
        ("huge time", ev(json!(1e300), json!(1), "none", "move"), 422, "VALIDATION_ERROR"),
        ("negative time", ev(json!(-1.0), json!(1), "none", "move"), 422, "VALIDATION_ERROR"),
        ("time goes back across batches", ev(json!(50.0), json!(1), "none", "move"), 422, "VALIDATION_ERROR"),
        ("coordinate out of range", ev(json!(500.0), json!(70000), "none", "move"), 422, "VALIDATION_ERROR"),
        ("fractional coordinate", ev(json!(500.0), json!(1.5), "none", "move"), 422, "VALIDATION_ERROR"),
        ("unknown button", ev(json!(500.0), json!(1), "thumb", "move"), 422, "VALIDATION_ERROR"),
        ("scroll with move", ev(json!(500.0), json!(1), "scroll", "move"), 422, "VALIDATION_ERROR"),
        ("up before down", json!({"session_id": "s-val", "keys": [{"field": "f", "key": "k", "down": 900.0, "up": 800.0}]}).to_string(), 422, "VALIDATION_ERROR"),
        ("over 1,000 events", json!({"session_id": "s-val", "mouse": many}).to_string(), 422, "VALIDATION_ERROR"),
        ("bad session id", json!({"session_id": "s val", "mouse": []}).to_string(), 422, "VALIDATION_ERROR"),
        ("unknown field", json!({"session_id": "s-val", "mouse": [], "extra": 1}).to_string(), 422, "VALIDATION_ERROR"),
        ("negative seq", json!({"session_id": "s-val", "seq": -1, "mouse": []}).to_string(), 422, "VALIDATION_ERROR"),
        ("oversize body", format!("{{\"session_id\": \"s-val\", \"pad\": \"{}\"}}", "x".repeat(600 * 1024)), 413, "BODY_TOO_LARGE"),
    ];
    for (what, body, status, code) in rows {
        let r = post(&gw, &victor, &body).await;
        let got = r.status().as_u16();
        assert_eq!(got, status, "{what}");
        let b = expect_error(r, status, code).await;
        if status == 422 {
            assert!(
                !b["error"]["details"].as_object().unwrap().is_empty(),
                "{what}: per-field details"
            );
        }
    }
    // Wrong content type.
    let r = client()
        .post(gw.url("/.sentinel/biometrics"))
        .header("authorization", format!("Bearer {victor}"))
        .header("content-type", "text/plain")
        .body(first.to_string())
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "BAD_REQUEST").await;
    // Nothing stored: the retried first batch answers exactly as before.
    assert_eq!(post_ok(&gw, &victor, &first).await, accepted);
}

#[tokio::test]
async fn a_retried_seq_is_not_counted_twice() {
    let gw = gateway("");
    let victor = token(VICTOR, NORDIC);
    let (events, _) = mouse(3, false, 0.0);
    let b0 = json!({"session_id": "s-seq", "seq": 0, "mouse": events[..10]});
    let b1 = json!({"session_id": "s-seq", "seq": 1, "mouse": events[10..15]});
    assert_eq!(post_ok(&gw, &victor, &b0).await["samples"]["mouse"], 10);
    assert_eq!(post_ok(&gw, &victor, &b0).await["samples"]["mouse"], 10);
    assert_eq!(post_ok(&gw, &victor, &b1).await["samples"]["mouse"], 15);
    assert_eq!(post_ok(&gw, &victor, &b0).await["samples"]["mouse"], 15);
    // Another user's session of the same name is another session.
    let alice = token(ALICE, NORDIC);
    assert_eq!(post_ok(&gw, &alice, &b1).await["samples"]["mouse"], 5);
}

#[tokio::test]
async fn only_users_post_telemetry() {
    let gw = gateway("");
    let body = json!({"session_id": "s-sa", "mouse": []}).to_string();
    let sa = client()
        .post(gw.url("/.sentinel/biometrics"))
        .header("x-api-key", sentinel::demo::DEMO_API_KEY)
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    expect_error(sa, 403, "PERMISSION_DENIED").await;
    let anon = client()
        .post(gw.url("/.sentinel/biometrics"))
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    expect_error(anon, 401, "AUTH_REQUIRED").await;
    let forged = post(&gw, "not-a-token", &body).await;
    expect_error(forged, 401, "AUTH_INVALID").await;
}

#[tokio::test]
async fn the_endpoint_admits_20_batches_a_second_then_limits() {
    let gw = gateway("");
    let victor = token(VICTOR, NORDIC);
    // The default burst (50) admits a second's worth of 20 batches at once.
    for seq in 0..20 {
        let b = json!({"session_id": "s-rate", "seq": seq, "mouse": []});
        post_ok(&gw, &victor, &b).await;
    }
    let mut limited = None;
    for seq in 20..200 {
        let b = json!({"session_id": "s-rate", "seq": seq, "mouse": []});
        let r = post(&gw, &victor, &b.to_string()).await;
        if r.status() == 429 {
            limited = Some(r);
            break;
        }
    }
    let Some(r) = limited else {
        panic!("the per-session limit never answered 429");
    };
    assert!(r.headers().contains_key("retry-after"));
    expect_error(r, 429, "RATE_LIMITED").await;
}

#[tokio::test]
async fn an_impostor_session_fails_and_a_risk_route_refuses_it() {
    let gw = gateway(SMALL_ENROLMENT);
    let (alice, victor) = (token(ALICE, NORDIC), token(VICTOR, NORDIC));
    // Alice enrols with a quick hand, Victor with a slow one (two sessions
    // each; a session counts for at most half the baseline).
    for id in ["a-1", "a-2"] {
        session(&gw, &alice, id, 30, true).await;
    }
    let first = session(&gw, &victor, "v-1", 30, false).await;
    assert_eq!(first["status"], "enrolling", "{first}");
    // The second session completes enrolment part-way; its later batches are scored.
    session(&gw, &victor, "v-2", 30, false).await;
    // The owner's own hand.
    let owner = token(VICTOR, NORDIC);
    let mine = session(&gw, &owner, "v-3", 12, false).await;
    assert!(mine["score"].is_number(), "scored once enrolled: {mine}");
    // Someone else at Victor's keyboard: another credential of Victor's,
    // Alice's quick hand.
    let stolen = token(VICTOR, NORDIC);
    let theirs = session(&gw, &stolen, "v-x", 12, true).await;
    assert_eq!(theirs["status"], "failed", "{theirs}");
    assert!(theirs["score"].as_f64().unwrap() > mine["score"].as_f64().unwrap());
    // Every request with that credential now carries the biometric score.
    let r = client()
        .get(gw.url("/risky/block"))
        .header("authorization", format!("Bearer {stolen}"))
        .send()
        .await
        .unwrap();
    let b = expect_error(r, 401, "BIOMETRIC_AUTH_FAILED").await;
    assert_eq!(b["error"]["details"]["signal"], "biometric");
    assert!(b["error"]["details"]["score"].as_f64().unwrap() >= 0.7);
    // A route without a slot never refuses on a score.
    let r = client()
        .get(gw.url("/noslot"))
        .header("authorization", format!("Bearer {stolen}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Fits: one per enrolment (Alice's refit waits for her next batch), not
    // one per batch: a refit is due only when more users can lend to it.
    let fits = gw.metric_sum("sentinel_biometric_fits_total", &[]).await;
    assert!((2.0..=5.0).contains(&fits), "{fits} fits");
    // The owner's credential is not touched by the impostor's session.
    if mine["status"] == "ok" {
        let r = client()
            .get(gw.url("/risky/block"))
            .header("authorization", format!("Bearer {owner}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
}

#[tokio::test]
async fn credential_stuffing_from_one_address_steps_up_then_blocks() {
    let gw = gateway("");
    let victor = token(VICTOR, NORDIC);
    let get = |path: &'static str, bearer: String| {
        let url = gw.url(path);
        async move {
            client()
                .get(url)
                .header("authorization", format!("Bearer {bearer}"))
                .send()
                .await
                .unwrap()
        }
    };
    // Before: nothing unusual.
    assert_eq!(get("/risky/step", victor.clone()).await.status(), 200);
    // Stuffing: failed logins from this address.
    for i in 0..25 {
        let r = get("/msw/vessels", format!("forged.{i}.token")).await;
        assert_eq!(r.status(), 401);
    }
    let r = get("/risky/step", victor.clone()).await;
    // Victor is in the demo's [explain]: the header says which signal decided.
    let explain = r.headers()["x-sentinel-decision"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        explain.starts_with("deny; reason=step_up_required; signal=anomaly; score="),
        "{explain}"
    );
    let b = expect_error(r, 401, "STEP_UP_REQUIRED").await;
    assert_eq!(b["error"]["details"]["signal"], "anomaly");
    let score = b["error"]["details"]["score"].as_f64().unwrap();
    assert!(score > 0.5, "{score}");
    let r = get("/risky/block", victor.clone()).await;
    let b = expect_error(r, 403, "RISK_BLOCKED").await;
    assert_eq!(b["error"]["details"]["signal"], "anomaly");
    // The same request on a route without a slot is served (and scored).
    assert_eq!(get("/noslot", victor.clone()).await.status(), 200);
    // The demo routes' seeds' thresholds (0.85/0.95) are not crossed by this alone.
    assert_eq!(get("/msw/vessels", victor).await.status(), 200);
}

#[tokio::test]
async fn the_committed_model_loads_and_scores() {
    let model = common::repo().join("models/anomaly/model.onnx");
    let gw = start(Options {
        extra_routes: RISK_ROUTES.into(),
        extra_config: format!("[risk]\nmodel = \"{}\"\n", model.display()),
        capture_log: true,
        ..Options::default()
    });
    let victor = token(VICTOR, NORDIC);
    let r = client()
        .get(gw.url("/noslot"))
        .header("authorization", format!("Bearer {victor}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(gw.log().contains("anomaly model loaded"), "{}", gw.log());
    assert!(
        gw.metric("sentinel_anomaly_score_count").await >= 1.0,
        "every authenticated request is scored"
    );
}

#[tokio::test]
async fn a_refused_model_leaves_the_rule_fallback_serving() {
    let dir = std::env::temp_dir().join(format!("sentinel-bad-model-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("model.onnx");
    std::fs::write(&bad, b"not an onnx model").unwrap();
    let gw = start(Options {
        extra_routes: RISK_ROUTES.into(),
        extra_config: format!("[risk]\nmodel = \"{}\"\n", bad.display()),
        capture_log: true,
        ..Options::default()
    });
    let r = client()
        .get(gw.url("/risky/step"))
        .header("authorization", format!("Bearer {}", token(VICTOR, NORDIC)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(gw.log().contains("rule fallback"), "{}", gw.log());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A permission whose condition needs a risk score (`{on_missing}` is
/// replaced by the test).
const RISK_POLICY: &str = r#"
[[roles]]
id = "risk-reader"
name = "risk-reader"
permissions = ["doc-low-risk"]

[[permissions]]
id = "doc-low-risk"
resource_type = "riskdoc"
actions = ["read"]
conditions = [{ type = "risk", max = 0.5{on_missing} }]

[[principals]]
id = "dddddddd-0000-4000-8000-000000000001"
tenant = "11111111-1111-1111-1111-111111111111"
name = "Risk Reader"
roles = ["risk-reader"]
"#;

const RISK_DOC_ROUTE: &str = r#"
[[routes]]
id = "riskdoc"
path = "/riskdoc"
methods = ["GET"]
upstream = "msw"
auth = "any"
resource = "riskdoc"
"#;

async fn riskdoc_status(extra_config: &str, on_missing: &str) -> u16 {
    let gw = start(Options {
        extra_routes: RISK_DOC_ROUTE.into(),
        extra_config: extra_config.into(),
        ..Options::default()
    });
    std::fs::write(
        gw.dir.join("policy/zz-risk.toml"),
        RISK_POLICY.replace("{on_missing}", on_missing),
    )
    .unwrap();
    let reader = token("dddddddd-0000-4000-8000-000000000001", NORDIC);
    // The policy file is picked up live; wait (bounded) until the principal exists.
    for _ in 0..100 {
        let r = client()
            .get(gw.url("/riskdoc"))
            .header("authorization", format!("Bearer {reader}"))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        if status != 401 {
            if status == 403 {
                assert_eq!(body["error"]["code"], "PERMISSION_DENIED");
            }
            return status;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the risk policy was never loaded");
}

#[tokio::test]
async fn a_risk_condition_without_a_score_denies() {
    // Scoring on: a fresh principal scores low and the condition holds.
    assert_eq!(riskdoc_status("", "").await, 200);
    // Scoring off: no score, and the condition fails closed.
    assert_eq!(riskdoc_status("[risk]\nenabled = false\n", "").await, 403);
}

#[tokio::test]
async fn on_missing_allow_is_the_only_way_an_unscored_request_meets_a_risk_condition() {
    let lenient = ", on_missing = \"allow\"";
    assert_eq!(
        riskdoc_status("[risk]\nenabled = false\n", lenient).await,
        200
    );
    // Scored, the condition still reads the score (a fresh principal: low).
    assert_eq!(riskdoc_status("", lenient).await, 200);
}

#[tokio::test]
async fn a_risk_slot_without_a_score_asks_for_a_step_up() {
    // Scoring off: no request has a score. A slot must not read that as
    // low risk (the route was served before).
    let gw = gateway("[risk]\nenabled = false\n");
    let get = |path: &'static str, bearer: String| {
        let url = gw.url(path);
        async move { client().get(url).bearer_auth(bearer).send().await.unwrap() }
    };
    for path in ["/risky/step", "/risky/block"] {
        let r = get(path, token(VICTOR, NORDIC)).await;
        // Victor is in the demo's [explain].
        assert_eq!(
            r.headers()["x-sentinel-decision"],
            "deny; reason=step_up_required; signal=none"
        );
        let b = expect_error(r, 401, "STEP_UP_REQUIRED").await;
        assert_eq!(b["error"]["details"]["signal"], "none");
        assert!(b["error"]["details"]["score"].is_null());
    }
    // A fresh MFA is what a step-up produces: served.
    let stepped_up = token_with(VICTOR, NORDIC, true, None);
    assert_eq!(get("/risky/step", stepped_up).await.status(), 200);
    // A route without a slot is never refused by a score.
    assert_eq!(get("/noslot", token(VICTOR, NORDIC)).await.status(), 200);
}

#[test]
fn check_warns_on_a_risk_slot_with_scoring_off() {
    let dir = common::bundled_config_copy("risk-warn");
    let mut main = std::fs::read_to_string(dir.join("sentinel.toml")).unwrap();
    main.push_str("\n[risk]\nenabled = false\n");
    std::fs::write(dir.join("sentinel.toml"), main).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sentinel"))
        .args(["check", "--config"])
        .arg(dir.join("sentinel.toml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // A warning, not a problem: the configuration is valid.
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains(": ok"), "{text}");
    // The bundled demo routes carry slots: each is named, placed in its file.
    let warning = text
        .lines()
        .find(|l| l.contains("warning: route `msw-vessels-list`"))
        .unwrap_or_else(|| panic!("no warning for msw-vessels-list in:\n{text}"));
    assert!(warning.contains("routes/"), "{warning}");
    assert!(warning.contains("has a `risk` slot"), "{warning}");
    // With scoring on (the default) there is nothing to warn about.
    let main = std::fs::read_to_string(dir.join("sentinel.toml"))
        .unwrap()
        .replace("[risk]\nenabled = false\n", "");
    std::fs::write(dir.join("sentinel.toml"), main).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sentinel"))
        .args(["check", "--config"])
        .arg(dir.join("sentinel.toml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(!text.contains("warning:"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// 25 failed logins claiming replay time `failures_at`, then Victor's
/// request claiming `request_at`: the status of that request.
async fn stuffing_then_request(gw: &common::Gateway, failures_at: i64, request_at: i64) -> u16 {
    for i in 0..25 {
        let r = client()
            .get(gw.url("/msw/vessels"))
            .header("authorization", format!("Bearer forged.{i}.token"))
            .header("sentinel-replay-time", failures_at.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    client()
        .get(gw.url("/risky/step"))
        .header("authorization", format!("Bearer {}", token(VICTOR, NORDIC)))
        .header("sentinel-replay-time", request_at.to_string())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn the_replay_clock_header_is_ignored_unless_configured() {
    let now = common::now();
    // Off (the default): a client cannot move its failures out of the window.
    let gw = gateway("");
    assert_eq!(stuffing_then_request(&gw, 1, now).await, 401);
    // On (benchmarks only): the failures happened two hours before the request.
    let gw = gateway("[risk]\nreplay_clock = true\n");
    assert_eq!(stuffing_then_request(&gw, now - 7200, now).await, 200);
}

#[test]
fn check_reports_every_risk_problem() {
    let dir = common::bundled_config_copy("risk-check");
    let mut main = std::fs::read_to_string(dir.join("sentinel.toml")).unwrap();
    main.push_str(
        "\n[risk]\nwindow = \"10s\"\nlearn_below = 1.5\n\n[risk.biometrics]\nbatches_per_second = 5\n\n[risk.biometrics.scoring]\nok_below = 0.9\nfailed_at = 0.5\n",
    );
    std::fs::write(dir.join("sentinel.toml"), main).unwrap();
    std::fs::write(
        dir.join("routes/zz-bad.toml"),
        r#"[[routes]]
id = "bad-risk"
path = "/bad/risk"
upstream = "msw"
auth = "public"
risk = { step_up_above = 0.9, block_above = 0.5 }
sensitivity = "extreme"
"#,
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sentinel"))
        .args(["check", "--config"])
        .arg(dir.join("sentinel.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "`window` must be at least 1m",
        "`learn_below` is between 0 and 1",
        "admit at least 20 batches a second",
        "`risk.biometrics.scoring.ok_below`",
        "`step_up_above` must not exceed `block_above`",
        "a public route has no risk score to act on",
        "unknown sensitivity `extreme`",
    ] {
        assert!(text.contains(want), "missing `{want}` in:\n{text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
