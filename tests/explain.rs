//! Explain on request, through the real gateway binary: a caller holding
//! `policy:explain` (resource type `policy`, the route id as resource id,
//! action `explain`) who sends `x-sentinel-explain: 1` gets
//! `x-sentinel-decision` on that response; anyone else's header changes
//! nothing, and no upstream ever sees it.
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests fail loudly, in their helpers too"
)]

mod common;

use common::{client, start, token, token_with, Options, BOB, NORDIC, PACIFIC};
use serde_json::Value;

const ERIN: &str = "eeeeeeee-0000-4000-8000-000000000001";

/// Erin may explain on the `msw-*` routes only; she reads vessels as a
/// viewer, and `explaindoc` only with MFA.
const EXPLAIN_POLICY: &str = r#"
[[roles]]
id = "explainer"
name = "explainer"
tenant = "11111111-1111-1111-1111-111111111111"
permissions = ["policy-explain-msw", "explaindoc-mfa"]

[[permissions]]
id = "policy-explain-msw"
resource_type = "policy"
resource = "msw-*"
actions = ["explain"]

[[permissions]]
id = "explaindoc-mfa"
resource_type = "explaindoc"
actions = ["read"]
conditions = [{ type = "mfa" }]

[[principals]]
id = "eeeeeeee-0000-4000-8000-000000000001"
tenant = "11111111-1111-1111-1111-111111111111"
name = "Erin Explainer"
roles = ["explainer", "viewer"]
"#;

const EXPLAIN_ROUTES: &str = r#"
[[routes]]
id = "msw-explaindoc"
path = "/explaindoc"
methods = ["GET"]
upstream = "msw"
auth = "any"
resource = "explaindoc"

[[routes]]
id = "other-explaindoc"
path = "/other/explaindoc"
methods = ["GET"]
upstream = "msw"
auth = "any"
resource = "explaindoc"
"#;

async fn get(
    gw: &common::Gateway,
    path: &str,
    bearer: &str,
    ask: Option<&str>,
) -> reqwest::Response {
    let mut req = client().get(gw.url(path)).bearer_auth(bearer);
    if let Some(v) = ask {
        req = req.header("x-sentinel-explain", v);
    }
    req.send().await.unwrap()
}

fn decision(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get("x-sentinel-decision")
        .map(|v| v.to_str().unwrap().to_owned())
}

async fn gateway() -> common::Gateway {
    let gw = start(Options {
        extra_routes: EXPLAIN_ROUTES.into(),
        ..Options::default()
    });
    std::fs::write(gw.dir.join("policy/zz-explain.toml"), EXPLAIN_POLICY).unwrap();
    // The policy file is picked up live; wait (bounded) until Erin exists.
    let erin = token(ERIN, NORDIC);
    for _ in 0..100 {
        if get(&gw, "/msw/vessels/v-a1", &erin, None).await.status() != 401 {
            return gw;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the explain policy was never loaded");
}

#[tokio::test]
async fn a_holder_of_policy_explain_gets_the_decision_on_request() {
    let gw = gateway().await;
    let erin = token(ERIN, NORDIC);

    // Allowed: reason and the allowing rule; the upstream never sees the ask.
    let r = get(&gw, "/msw/vessels/v-a1", &erin, Some("1")).await;
    assert_eq!(
        decision(&r).as_deref(),
        Some("allow; reason=allowed; rules=vessel-read")
    );
    let body: Value = r.json().await.unwrap();
    let upstream = body["headers"].as_object().unwrap();
    assert!(
        !upstream.contains_key("x-sentinel-explain"),
        "forwarded: {upstream:?}"
    );
    assert!(!upstream.contains_key("x-sentinel-decision"));

    // Denied on a condition: which rule, and which of its conditions failed.
    let r = get(&gw, "/explaindoc", &erin, Some("1")).await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        decision(&r).as_deref(),
        Some("deny; reason=condition_not_met; rules=; failed=explaindoc-mfa:mfa")
    );
    // With MFA the same rule allows.
    let r = get(
        &gw,
        "/explaindoc",
        &token_with(ERIN, NORDIC, true, None),
        Some("1"),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        decision(&r).as_deref(),
        Some("allow; reason=allowed; rules=explaindoc-mfa")
    );

    // Not asked, or asked with anything but `1`: no header.
    assert_eq!(
        decision(&get(&gw, "/msw/vessels/v-a1", &erin, None).await),
        None
    );
    for other in ["true", "0", "yes", "11"] {
        let r = get(&gw, "/msw/vessels/v-a1", &erin, Some(other)).await;
        assert_eq!(decision(&r), None, "x-sentinel-explain: {other:?}");
    }
    // The permission names routes: `other-explaindoc` is not an `msw-*` route.
    let r = get(&gw, "/other/explaindoc", &erin, Some("1")).await;
    assert_eq!(r.status(), 403);
    assert_eq!(decision(&r), None);
}

#[tokio::test]
async fn anyone_else_asking_is_ignored_and_stripped() {
    let gw = gateway().await;
    let bob = token(BOB, PACIFIC);
    // Bob (tenant admin of another tenant) holds no `policy:explain`.
    let r = get(&gw, "/msw/vessels/v-a1", &bob, Some("1")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(decision(&r), None);
    let body: Value = r.json().await.unwrap();
    let upstream = body["headers"].as_object().unwrap();
    assert!(
        !upstream.keys().any(|k| k.contains("explain")),
        "forwarded: {upstream:?}"
    );
    // Nor on a denial.
    let r = client()
        .delete(gw.url("/msw/vessels/v-a1"))
        .bearer_auth(token(BOB, PACIFIC))
        .header("x-sentinel-explain", "1")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error());
    assert_eq!(decision(&r), None);
    // An unauthenticated caller cannot ask either.
    let r = client()
        .get(gw.url("/msw/vessels/v-a1"))
        .header("x-sentinel-explain", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(decision(&r), None);
}
