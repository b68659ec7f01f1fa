//! Field security through the real gateway binary and the demo apps: what
//! each persona sees of vessels, voyages and port calls (three tiers, two
//! tenants), write checks (refuse and drop), body limits, compressed and
//! chunked upstreams, and upstream answers that cannot be filtered (502,
//! and the secret bytes never reach the client).
//!
//! Run: `cargo test --test fields_gateway`
#![expect(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]

mod common;

use common::*;
use sentinel_demo_apps::{demo_records, App, LAB_SECRET};
use serde_json::{json, Value};
use std::io::{Read, Write};

const PIA: &str = "bbbbbbbb-0000-4000-8000-000000000002";
const FLEET_KEY: &str = "sk_fleetsy1_Q7wN2kR9pX4mT6vB8cJ3hL5dF1gS0aZeYu";

const LAB_ROUTES: &str = r#"
[[routes]]
id = "lab"
path = "/fields-lab/{kind}"
methods = ["GET", "HEAD"]
upstream = "lab"
auth = "any"
resource = "vessel"
fields = { entity = "vessel", at = "$.data[*]", max_response_bytes = 262144 }

# The echo app answers with what it received (under `body`, an undefined key
# that `keep` lets through): proof of what the upstream got.
[[routes]]
id = "lab-echo-drop"
path = "/echo/port-calls/{id}"
methods = ["PATCH"]
upstream = "lab"
auth = "any"
resource = "port_call:{id}"
fields = { entity = "port_call", at = "$", unknown_fields = "keep", on_write_denied = "drop" }
"#;

#[derive(Clone, Copy, Debug)]
enum Who {
    Alice,
    Victor,
    FleetSync,
    Bob,
    Pia,
}

fn auth(req: reqwest::RequestBuilder, who: Who) -> reqwest::RequestBuilder {
    match who {
        Who::Alice => req.bearer_auth(token_with(ALICE, NORDIC, true, None)),
        Who::Victor => req.bearer_auth(token(VICTOR, NORDIC)),
        Who::Bob => req.bearer_auth(token(BOB, PACIFIC)),
        Who::Pia => req.bearer_auth(token(PIA, PACIFIC)),
        Who::FleetSync => req.header("x-api-key", FLEET_KEY),
    }
}

/// What a persona must see of one field.
#[derive(Clone, Copy, Debug)]
enum Exp {
    /// Exactly the upstream's value.
    Same,
    /// Not there at all.
    Gone,
    /// `"********"`.
    Full,
    /// `"****"` and the last N characters of the value's text.
    Last(usize),
    /// 16 hex digits.
    Hash,
    /// `null`.
    Null,
}

use Exp::*;

type Fields = &'static [(&'static str, Exp)];

const VESSEL_VIEWER: Fields = &[
    ("id", Same),
    ("tenant_id", Same),
    ("name", Same),
    ("imo", Last(4)),
    ("flag", Same),
    ("vessel_type", Same),
    ("gross_tonnage", Same),
    ("eco_score", Same),
    ("ais_last_position", Same),
    ("crew_count", Full),
    ("charter_rate_usd", Hash),
    ("crew_salary_budget", Gone),
    ("insurance_policy_no", Last(4)),
    ("sire_inspection_due", Gone),
];

const VESSEL_ADMIN: Fields = &[
    ("id", Same),
    ("tenant_id", Same),
    ("name", Same),
    ("imo", Same),
    ("flag", Same),
    ("vessel_type", Same),
    ("gross_tonnage", Same),
    ("eco_score", Same),
    ("ais_last_position", Same),
    ("crew_count", Same),
    ("charter_rate_usd", Same),
    ("crew_salary_budget", Same),
    ("insurance_policy_no", Same),
    ("sire_inspection_due", Gone),
];

const VOYAGE_VIEWER: Fields = &[
    ("id", Same),
    ("tenant_id", Same),
    ("vessel_id", Same),
    ("origin", Same),
    ("destination", Same),
    ("departure", Same),
    ("status", Same),
    ("eta_confidence", Same),
    ("fuel_estimate_t", Full),
    ("cargo_value_usd", Null),
    ("customer_ref", Last(4)),
    ("charterer", Gone),
];

const VOYAGE_ADMIN: Fields = &[
    ("id", Same),
    ("tenant_id", Same),
    ("vessel_id", Same),
    ("origin", Same),
    ("destination", Same),
    ("departure", Same),
    ("status", Same),
    ("eta_confidence", Same),
    ("fuel_estimate_t", Same),
    ("cargo_value_usd", Same),
    ("customer_ref", Same),
    ("charterer", Gone),
];

const PORT_CALL_VIEWER: Fields = &[
    ("id", Same),
    ("tenant_id", Same),
    ("vessel_id", Same),
    ("port_code", Same),
    ("eta", Same),
    ("etd", Same),
    ("berth", Same),
    ("congestion_index", Same),
    ("agent_contact", Hash),
    ("pilot_notes", Gone),
    ("bunker_order_ref", Gone),
];

const PORT_CALL_ADMIN: Fields = &[
    ("id", Same),
    ("tenant_id", Same),
    ("vessel_id", Same),
    ("port_code", Same),
    ("eta", Same),
    ("etd", Same),
    ("berth", Same),
    ("congestion_index", Same),
    ("agent_contact", Same),
    ("pilot_notes", Same),
    // Nordic Tankers' own field is not a field for Nordic Shipping's admin.
    ("bunker_order_ref", Gone),
];

/// (persona, path, the app whose seed data is expected, expected ids, fields)
const VIEWS: &[(Who, &str, App, &[&str], Fields)] = &[
    (
        Who::Victor,
        "/msw/vessels",
        App::Msw,
        &["v-a1", "v-a2", "v-a3"],
        VESSEL_VIEWER,
    ),
    (
        Who::Victor,
        "/msw/vessels/v-a1",
        App::Msw,
        &["v-a1"],
        VESSEL_VIEWER,
    ),
    (
        Who::FleetSync,
        "/msw/vessels",
        App::Msw,
        &["v-a1", "v-a2", "v-a3"],
        VESSEL_VIEWER,
    ),
    (
        Who::Alice,
        "/msw/vessels",
        App::Msw,
        &["v-a1", "v-a2", "v-a3"],
        VESSEL_ADMIN,
    ),
    (
        Who::Alice,
        "/msw/vessels/v-a2",
        App::Msw,
        &["v-a2"],
        VESSEL_ADMIN,
    ),
    (
        Who::Pia,
        "/msw/vessels",
        App::Msw,
        &["v-b1", "v-b2"],
        VESSEL_VIEWER,
    ),
    (
        Who::Bob,
        "/msw/vessels",
        App::Msw,
        &["v-b1", "v-b2"],
        VESSEL_ADMIN,
    ),
    (
        Who::Bob,
        "/msw/vessels/v-b1",
        App::Msw,
        &["v-b1"],
        VESSEL_ADMIN,
    ),
    (
        Who::Victor,
        "/fleet/voyages",
        App::Fleet,
        &["voy-a1", "voy-a2"],
        VOYAGE_VIEWER,
    ),
    (
        Who::FleetSync,
        "/fleet/voyages",
        App::Fleet,
        &["voy-a1", "voy-a2"],
        VOYAGE_VIEWER,
    ),
    (
        Who::Alice,
        "/fleet/voyages",
        App::Fleet,
        &["voy-a1", "voy-a2"],
        VOYAGE_ADMIN,
    ),
    (
        Who::Alice,
        "/fleet/voyages/voy-a1",
        App::Fleet,
        &["voy-a1"],
        VOYAGE_ADMIN,
    ),
    (
        Who::Pia,
        "/fleet/voyages",
        App::Fleet,
        &["voy-b1", "voy-b2"],
        VOYAGE_VIEWER,
    ),
    (
        Who::Pia,
        "/fleet/voyages/voy-b2",
        App::Fleet,
        &["voy-b2"],
        VOYAGE_VIEWER,
    ),
    (
        Who::Bob,
        "/fleet/voyages",
        App::Fleet,
        &["voy-b1", "voy-b2"],
        VOYAGE_ADMIN,
    ),
    (
        Who::Victor,
        "/port/port-calls",
        App::Port,
        &["pc-a1", "pc-a2"],
        PORT_CALL_VIEWER,
    ),
    (
        Who::Victor,
        "/port/port-calls/pc-a2",
        App::Port,
        &["pc-a2"],
        PORT_CALL_VIEWER,
    ),
    (
        Who::Alice,
        "/port/port-calls",
        App::Port,
        &["pc-a1", "pc-a2"],
        PORT_CALL_ADMIN,
    ),
    (
        Who::Alice,
        "/port/tenants/33333333-3333-3333-3333-333333333333/port-calls",
        App::Port,
        &["pc-s1", "pc-s2"],
        PORT_CALL_ADMIN,
    ),
    (
        Who::Pia,
        "/port/port-calls",
        App::Port,
        &["pc-b1", "pc-b2"],
        PORT_CALL_VIEWER,
    ),
    (
        Who::Bob,
        "/port/port-calls",
        App::Port,
        &["pc-b1", "pc-b2"],
        PORT_CALL_ADMIN,
    ),
];

/// What an unkeyed `hash` mask would show: 16 hex digits of SHA-256 of the
/// value's text.
fn unkeyed_hash(v: &Value) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text_of(v).as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Checks one entity against the seed record; returns the problems found.
fn check_entity(got: &Value, seed: &Value, fields: Fields) -> Vec<String> {
    let mut problems = Vec::new();
    let got = got.as_object().unwrap();
    for key in got.keys() {
        if !fields.iter().any(|(f, e)| f == key && !matches!(e, Gone)) {
            problems.push(format!("unexpected field `{key}`"));
        }
    }
    for (field, exp) in fields {
        let Some(original) = seed.get(*field) else {
            if got.contains_key(*field) {
                problems.push(format!("`{field}` appears but the record has none"));
            }
            continue;
        };
        let value = got.get(*field);
        let ok = match (exp, value) {
            (Gone, None) => true,
            (Gone, Some(_)) => false,
            (_, None) => false,
            (Same, Some(v)) => v == original,
            (Full, Some(v)) => v == "********",
            (Null, Some(v)) => v.is_null(),
            // Keyed: never the plain SHA-256 of the value, which anyone
            // could confirm by hashing guesses.
            (Hash, Some(v)) => v.as_str().is_some_and(|s| {
                s.len() == 16
                    && s.bytes().all(|b| b.is_ascii_hexdigit())
                    && s != unkeyed_hash(original)
            }),
            (Last(n), Some(v)) => {
                let text = text_of(original);
                let tail: String = text.chars().skip(text.chars().count() - n).collect();
                *v == Value::String(format!("****{tail}"))
            }
        };
        if !ok {
            problems.push(format!(
                "`{field}`: want {exp:?} of {original}, got {value:?}"
            ));
        }
        // A masked or hidden value never appears in the clear.
        if !matches!(exp, Same) {
            if let (Some(v), false) = (value, text_of(original).len() < 3) {
                if v == original {
                    problems.push(format!("`{field}` leaked in the clear"));
                }
            }
        }
    }
    problems
}

#[tokio::test]
async fn personas_see_their_fields_of_every_entity_in_both_tenants() {
    let gw = start_demo("", "");
    let c = client();
    let mut failures = Vec::new();
    for (who, path, app, ids, fields) in VIEWS {
        let resp = auth(c.get(gw.url(path)), *who).send().await.unwrap();
        let status = resp.status().as_u16();
        let len: usize = resp.headers()["content-length"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let bytes = resp.bytes().await.unwrap();
        assert_eq!(len, bytes.len(), "{who:?} {path}: content-length");
        if status != 200 {
            failures.push(format!("{who:?} {path}: status {status}"));
            continue;
        }
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        let entities: Vec<Value> = match body.get("data") {
            Some(Value::Array(items)) => items.clone(),
            _ => vec![body.clone()],
        };
        let got_ids: Vec<&str> = entities.iter().map(|e| e["id"].as_str().unwrap()).collect();
        if got_ids != *ids {
            failures.push(format!("{who:?} {path}: ids {got_ids:?}"));
        }
        let seeds = demo_records(*app);
        for e in &entities {
            let seed = seeds.iter().find(|s| s["id"] == e["id"]).unwrap();
            for p in check_entity(e, seed, fields) {
                failures.push(format!("{who:?} {path} {}: {p}", e["id"]));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "field view failures:\n{}",
        failures.join("\n")
    );
}

async fn expect_error_body(resp: reqwest::Response, status: u16, code: &str) -> Value {
    expect_error(resp, status, code).await
}

#[tokio::test]
async fn writes_of_forbidden_fields_are_refused_with_the_field_list() {
    let gw = start_demo("", "");
    let c = client();
    // fleet-sync may plan voyages, not set their commercial fields.
    let resp = auth(c.post(gw.url("/fleet/voyages")), Who::FleetSync)
        .json(
            &json!({"vessel_id": "v-a1", "origin": "NOOSL", "destination": "SEGOT",
                      "fuel_estimate_t": 10.5, "cargo_value_usd": 1, "status": "planned"}),
        )
        .send()
        .await
        .unwrap();
    let body = expect_error_body(resp, 403, "FIELD_WRITE_DENIED").await;
    assert_eq!(
        body["error"]["details"]["fields"],
        json!(["cargo_value_usd", "fuel_estimate_t"])
    );
    // Nothing was created.
    let list: Value = auth(c.get(gw.url("/fleet/voyages")), Who::Alice)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["count"], 2, "{list}");

    // The same write without them goes through; the answer is filtered too.
    let resp = auth(c.post(gw.url("/fleet/voyages")), Who::FleetSync)
        .json(&json!({"vessel_id": "v-a1", "origin": "NOOSL", "destination": "SEGOT", "status": "planned"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let created: Value = resp.json().await.unwrap();
    assert_eq!(created["origin"], "NOOSL");

    // Another tenant's custom field is not a field of this caller: refused.
    let resp = auth(c.post(gw.url("/fleet/voyages")), Who::FleetSync)
        .json(&json!({"origin": "NOOSL", "charterer": "X", "customer_ref": "Y"}))
        .send()
        .await
        .unwrap();
    let body = expect_error_body(resp, 403, "FIELD_WRITE_DENIED").await;
    assert_eq!(
        body["error"]["details"]["fields"],
        json!(["charterer", "customer_ref"])
    );
    // A core field the caller may only read.
    let resp = auth(c.post(gw.url("/fleet/voyages")), Who::FleetSync)
        .json(&json!({"origin": "NOOSL", "tenant_id": PACIFIC}))
        .send()
        .await
        .unwrap();
    let body = expect_error_body(resp, 403, "FIELD_WRITE_DENIED").await;
    assert_eq!(body["error"]["details"]["fields"], json!(["tenant_id"]));
    let series = r#"sentinel_field_writes_total{outcome="denied",route="fleet-voyages-create"}"#;
    assert_eq!(gw.metric(series).await, 3.0, "{series}");
}

#[tokio::test]
async fn drop_mode_forwards_the_write_without_the_forbidden_fields() {
    let gw = start_demo(LAB_ROUTES, "");
    let c = client();
    // Alice may update eta/etd/berth/agent_contact of port calls (port_agent), not the rest.
    let resp = auth(c.patch(gw.url("/port/port-calls/pc-a1")), Who::Alice)
        .json(&json!({"berth": "CTA-7", "congestion_index": 0.99, "port_code": "XXXXX"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let after: Value = auth(c.get(gw.url("/port/port-calls/pc-a1")), Who::Alice)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(after["berth"], "CTA-7");
    assert_eq!(
        after["congestion_index"], 0.42,
        "the app never saw the dropped field"
    );
    assert_eq!(after["port_code"], "DEHAM");
    let series = r#"sentinel_field_writes_total{outcome="dropped",route="port-call"}"#;
    assert_eq!(gw.metric(series).await, 1.0, "{series}");

    // The echo upstream shows the exact bytes it received.
    let sent = r#"{"berth":"B1", "congestion_index":0.99,"eta":"2026-12-01T00:00:00Z"}"#;
    let resp = auth(c.patch(gw.url("/echo/port-calls/pc-a1")), Who::Alice)
        .header("content-type", "application/json")
        .body(sent)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let echoed: Value = resp.json().await.unwrap();
    let received = echoed["body"].as_str().unwrap();
    assert_eq!(received, r#"{"berth":"B1","eta":"2026-12-01T00:00:00Z"}"#);
    assert_eq!(
        echoed["headers"]["content-length"],
        received.len().to_string(),
        "content-length matches the forwarded body"
    );
}

#[tokio::test]
async fn malformed_duplicate_and_oversized_request_bodies() {
    let gw = start_demo("", "");
    let c = client();
    for bad in [
        r#"{"name": "x""#,
        r#"{"name": "x", "name": "y"}"#,
        r#"{"n\u0061me": "x", "name": "y"}"#,
        "not json",
        r#"["name"]"#,
    ] {
        let resp = auth(c.patch(gw.url("/msw/vessels/v-a2")), Who::Alice)
            .header("content-type", "application/json")
            .body(bad)
            .send()
            .await
            .unwrap();
        let body = expect_error_body(resp, 400, "BAD_REQUEST").await;
        assert!(
            body["error"]["details"]["reason"].is_string(),
            "{bad}: {body}"
        );
    }
    // Nothing reached the app.
    let v: Value = auth(c.get(gw.url("/msw/vessels/v-a2")), Who::Alice)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["name"], "Nordic Fjord");

    // Over `limits.max_body_bytes` (1 MiB in the demo config), declared
    // (refused before the body is read) and chunked (refused as it arrives).
    let big = format!(r#"{{"name":"{}"}}"#, "x".repeat(1024 * 1024 + 10));
    let token = token_with(ALICE, NORDIC, true, None);
    for chunked in [false, true] {
        let framing = if chunked {
            "transfer-encoding: chunked".to_owned()
        } else {
            format!("content-length: {}", big.len())
        };
        let mut s = std::net::TcpStream::connect(gw.proxy).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let head = format!(
            "PATCH /msw/vessels/v-a2 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\ncontent-type: application/json\r\n{framing}\r\nconnection: close\r\n\r\n"
        );
        s.write_all(head.as_bytes()).unwrap();
        // A declared length is refused from the header alone: sending nothing
        // more keeps the kernel from resetting the connection over unread data.
        let body = if chunked { big.as_bytes() } else { &[][..] };
        for chunk in body.chunks(64 * 1024) {
            let sent = if chunked {
                s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                    .and_then(|_| s.write_all(chunk))
                    .and_then(|_| s.write_all(b"\r\n"))
            } else {
                s.write_all(chunk)
            };
            if sent.is_err() {
                break;
            }
        }
        if chunked {
            let _ = s.write_all(b"0\r\n\r\n");
        }
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with("HTTP/1.1 413"),
            "chunked={chunked}: {answer:.200}"
        );
        assert!(answer.contains("BODY_TOO_LARGE"), "chunked={chunked}");
    }
    let v: Value = auth(c.get(gw.url("/msw/vessels/v-a2")), Who::Alice)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["name"], "Nordic Fjord", "nothing reached the app");
}

async fn lab(gw: &Gateway, kind: &str, who: Who) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let resp = auth(client().get(gw.url(&format!("/fields-lab/{kind}"))), who)
        .header("accept-encoding", "gzip, br")
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.unwrap().to_vec();
    (status, headers, body)
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn compressed_and_chunked_upstreams_are_filtered() {
    let gw = start_demo(LAB_ROUTES, "");
    // The admin sees the secret: the viewer's negative below is not vacuous.
    let (status, _, body) = lab(&gw, "plain", Who::Alice).await;
    assert_eq!(status, 200);
    assert!(contains(&body, LAB_SECRET));
    for kind in ["plain", "gzip", "br", "chunked"] {
        let (status, headers, body) = lab(&gw, kind, Who::Victor).await;
        assert_eq!(status, 200, "{kind}");
        assert!(
            headers.get("content-encoding").is_none(),
            "{kind}: served identity"
        );
        assert!(headers.get("transfer-encoding").is_none(), "{kind}");
        assert_eq!(
            headers["content-length"],
            body.len().to_string().as_str(),
            "{kind}"
        );
        assert!(!contains(&body, LAB_SECRET), "{kind}: secret leaked");
        let v: Value = serde_json::from_slice(&body).unwrap();
        let vessel = &v["data"][0];
        assert_eq!(vessel["name"], "Lab Vessel", "{kind}");
        assert_eq!(vessel["imo"], "****5044", "{kind}");
        assert!(vessel.get("crew_salary_budget").is_none(), "{kind}");
        assert_eq!(v["count"], 1, "{kind}: outside the entities untouched");
    }
}

#[tokio::test]
async fn unfilterable_upstream_answers_fail_closed_with_502() {
    let gw = start_demo(LAB_ROUTES, "");
    for (kind, reason) in [
        ("not-json", "not_json"),
        ("broken", "malformed"),
        ("duplicate", "duplicate_key"),
        ("big", "too_large"),
    ] {
        let (status, headers, body) = lab(&gw, kind, Who::Victor).await;
        assert_eq!(status, 502, "{kind}");
        assert!(!contains(&body, LAB_SECRET), "{kind}: secret leaked");
        assert!(
            !contains(&body, "Lab Vessel"),
            "{kind}: upstream bytes leaked"
        );
        assert!(headers.contains_key("x-sentinel-request-id"));
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], "UPSTREAM_UNAVAILABLE", "{kind}");
        assert_eq!(v["error"]["details"]["reason"], reason, "{kind}");
    }
    // Counted, by route and reason.
    for reason in ["not_json", "malformed", "duplicate_key", "too_large"] {
        let series =
            format!("sentinel_field_filter_failures_total{{reason=\"{reason}\",route=\"lab\"}}");
        assert_eq!(gw.metric(&series).await, 1.0, "{series}");
    }
}

#[tokio::test]
async fn error_answers_are_filtered_like_any_other() {
    let gw = start_demo(LAB_ROUTES, "");
    // An error body without entities passes as the app sent it.
    let (status, _, body) = lab(&gw, "error", Who::Victor).await;
    assert_eq!(status, 404);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["code"], "NOT_FOUND");
    // An error body that carries entities at the binding is filtered.
    let (status, _, body) = lab(&gw, "error-entity", Who::Victor).await;
    assert_eq!(status, 409);
    assert!(!contains(&body, LAB_SECRET));
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["data"][0]["imo"], "****5044");
}

/// The fuzz target's property check (no unreadable field in the output, masks
/// only masks, whatever serde_json rejects is rejected), replayed over the
/// committed corpus on every `cargo test`.
mod fuzz_corpus {
    include!("../fuzz/check/field_filter.rs");

    #[test]
    fn committed_corpus_replays_without_a_leak() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/field_filter");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(
                outcome.is_ok(),
                "corpus input {} fails the check",
                path.display()
            );
            n += 1;
        }
        assert!(n >= 20, "corpus has {n} inputs");
    }
}

#[test]
fn check_reports_bad_field_bindings_with_their_position() {
    let dir = bundled_config_copy("fields-check");
    std::fs::write(
        dir.join("routes/zz-bad.toml"),
        r#"[[routes]]
id = "bad-at"
path = "/bad/a"
upstream = "msw"
auth = "any"
resource = "vessel"
fields = { entity = "vessel", at = "$.data[0]" }

[[routes]]
id = "bad-mode"
path = "/bad/b"
upstream = "msw"
auth = "any"
resource = "vessel"
fields = { entity = "vessel", on_write_denied = "ignore", unknown_fields = "pass", max_response_bytes = 0 }
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
        "zz-bad.toml:7:",
        "invalid `fields.at` `$.data[0]`",
        "zz-bad.toml:15:",
        "`fields.on_write_denied` is `reject` or `drop`, not `ignore`",
        "`fields.unknown_fields` is `remove` or `keep`, not `pass`",
        "`fields.max_response_bytes` must be greater than 0",
    ] {
        assert!(text.contains(want), "missing `{want}` in:\n{text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn head_on_a_bound_route_answers_without_a_body_or_the_unfiltered_length() {
    let gw = start_demo(LAB_ROUTES, "");
    let resp = auth(client().head(gw.url("/fields-lab/plain")), Who::Victor)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers().contains_key("x-sentinel-request-id"));
    let unfiltered =
        (r#"{"data":[],"count":1}"#.len() + sentinel_demo_apps::LAB_VESSEL.len()).to_string();
    assert_ne!(
        resp.headers()
            .get("content-length")
            .map(|v| v.to_str().unwrap().to_owned()),
        Some(unfiltered),
        "the upstream's length would reveal the size of the hidden fields"
    );
    assert!(resp.bytes().await.unwrap().is_empty());
}
