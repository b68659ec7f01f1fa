//! Shadow rules through the real gateway binary: a policy file marked
//! `mode = "shadow"` is evaluated beside the live decision and never
//! enforced; every request where the two disagree is counted in
//! `sentinel_shadow_disagreements_total{rule}` and its audit event carries
//! the shadow decision beside the live one.
#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

mod common;

use common::{client, start, token, Options, NORDIC, VICTOR};
use serde_json::Value;
use std::path::Path;

const SAM: &str = "eeeeeeee-0000-4000-8000-000000000002";

/// Live: Sam is a viewer, and holds the trial role.
const LIVE: &str = r#"
[[roles]]
id = "shadow-trial"
name = "shadow-trial"
tenant = "11111111-1111-1111-1111-111111111111"
permissions = ["trial-deny-vessel-read", "trial-allow-vessel-update"]

[[principals]]
id = "eeeeeeee-0000-4000-8000-000000000002"
tenant = "11111111-1111-1111-1111-111111111111"
name = "Sam Shadowed"
roles = ["viewer", "shadow-trial"]
"#;

/// The proposal under trial: every permission of this file is a shadow rule.
const SHADOW: &str = r#"
mode = "shadow"

[[permissions]]
id = "trial-deny-vessel-read"
effect = "deny"
resource_type = "vessel"
resource = "v-a1"
actions = ["read"]

[[permissions]]
id = "trial-allow-vessel-update"
resource_type = "vessel"
actions = ["update"]
"#;

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

const SERIES: &str = "sentinel_shadow_disagreements_total";

#[tokio::test]
async fn shadow_rules_are_counted_and_recorded_never_enforced() {
    let gw = start(Options {
        extra_config: "[audit]\nspool_dir = \"audit-spool\"\nfsync = \"always\"\n".into(),
        ..Options::default()
    });
    // One write: both files are read by the same reload.
    std::fs::write(gw.dir.join("policy/zz-shadow.toml"), SHADOW).unwrap();
    std::fs::write(gw.dir.join("policy/zz-live.toml"), LIVE).unwrap();
    let sam = token(SAM, NORDIC);
    let get = |path: &str, bearer: &str| {
        client()
            .get(gw.url(path))
            .bearer_auth(bearer.to_owned())
            .send()
    };
    let mut loaded = false;
    for _ in 0..100 {
        if get("/msw/vessels/v-a2", &sam).await.unwrap().status() != 401 {
            loaded = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(loaded, "the shadow policy was never loaded");
    let deny_rule = format!("{SERIES}{{rule=\"trial-deny-vessel-read\"}}");
    let allow_rule = format!("{SERIES}{{rule=\"trial-allow-vessel-update\"}}");
    assert_eq!(gw.metric(&deny_rule).await, 0.0);

    // The shadow deny would refuse this read: served all the same, counted.
    let r = get("/msw/vessels/v-a1", &sam).await.unwrap();
    assert_eq!(r.status(), 200);
    let read_id = r.headers()["x-sentinel-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(gw.metric(&deny_rule).await, 1.0);

    // The shadow allow would admit this update: refused all the same, counted.
    let r = client()
        .patch(gw.url("/msw/vessels/v-a2"))
        .bearer_auth(sam.clone())
        .json(&serde_json::json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let update_id = r.headers()["x-sentinel-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(gw.metric(&allow_rule).await, 1.0);

    // Where both agree (another vessel), nothing is counted.
    assert_eq!(get("/msw/vessels/v-a2", &sam).await.unwrap().status(), 200);
    // Principals without the trial role are untouched.
    let r = get("/msw/vessels/v-a1", &token(VICTOR, NORDIC))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(gw.metric(&deny_rule).await, 1.0);
    assert_eq!(gw.metric(&allow_rule).await, 1.0);

    // The audit events: the live decision as always, the shadow one in `after`.
    let events = spooled(&gw.dir.join("audit-spool"));
    let event = |id: &str| {
        events
            .iter()
            .find(|e| e["request_id"] == id)
            .unwrap_or_else(|| panic!("no event for {id}"))
            .clone()
    };
    let read = event(&read_id);
    assert_eq!(read["outcome"], "allowed");
    assert_eq!(read["rules"], serde_json::json!(["vessel-read"]));
    assert_eq!(
        read["after"],
        serde_json::json!({"shadow": {"outcome": "denied", "reason": "explicit_deny", "rules": ["trial-deny-vessel-read"]}})
    );
    let update = event(&update_id);
    assert_eq!(update["outcome"], "denied");
    assert_eq!(
        update["after"]["shadow"],
        serde_json::json!({"outcome": "allowed", "reason": "allowed", "rules": ["trial-allow-vessel-update"]})
    );
    // Agreeing requests carry no `after` at all.
    assert!(events
        .iter()
        .filter(|e| e["request_id"] != read_id.as_str() && e["request_id"] != update_id.as_str())
        .all(|e| e.get("after").is_none()));
}
