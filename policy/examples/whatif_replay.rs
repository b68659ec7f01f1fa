//! Times `sentinel_policy::whatif::Replay` over 1,000,000 recorded
//! decisions (audit-event lines of the size the gateway writes) against a
//! proposed change of the demo policy; the figure in docs/PERFORMANCE.md.
//!
//! ```text
//! cargo run --release -p sentinel-policy --example whatif_replay [-- LINES]
//! ```
#![expect(clippy::unwrap_used, reason = "a benchmark fails loudly")]

use sentinel_policy::whatif::Replay;
use sentinel_policy::{compile, PolicySource};
use std::time::Instant;

const DEMO: &str = include_str!("../../config/policy/demo.toml");

/// (principal, tenant, resource id, action, method, recorded reason, rules)
const CALLS: [(&str, &str, &str, &str, &str, &str, &str); 6] = [
    (
        "aaaaaaaa-0000-4000-8000-000000000002",
        "11111111-1111-1111-1111-111111111111",
        "v-a1",
        "read",
        "GET",
        "allowed",
        "[\"vessel-read\"]",
    ),
    (
        "aaaaaaaa-0000-4000-8000-000000000002",
        "11111111-1111-1111-1111-111111111111",
        "v-a2",
        "read",
        "GET",
        "allowed",
        "[\"vessel-read\"]",
    ),
    (
        "aaaaaaaa-0000-4000-8000-000000000002",
        "11111111-1111-1111-1111-111111111111",
        "v-a2",
        "update",
        "PATCH",
        "no_matching_permission",
        "[]",
    ),
    (
        "aaaaaaaa-0000-4000-8000-000000000001",
        "11111111-1111-1111-1111-111111111111",
        "v-a1",
        "delete",
        "DELETE",
        "explicit_deny",
        "[\"deny-delete-flagship\"]",
    ),
    (
        "aaaaaaaa-0000-4000-8000-000000000001",
        "11111111-1111-1111-1111-111111111111",
        "v-a2",
        "update",
        "PATCH",
        "allowed",
        "[\"fleet-all\"]",
    ),
    (
        "bbbbbbbb-0000-4000-8000-000000000001",
        "22222222-2222-2222-2222-222222222222",
        "v-b1",
        "read",
        "GET",
        "allowed",
        "[\"fleet-all\"]",
    ),
];

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(1_000_000, |a| a.parse().unwrap());
    let current: PolicySource = toml::from_str(DEMO).unwrap();
    let proposed_text = DEMO.replacen("\"deny-delete-flagship\", ", "", 1).replacen(
        "permissions = [\"vessel-read\", \"voyage-read\", \"port-call-read\"]",
        "permissions = [\"vessel-read\", \"voyage-read\", \"port-call-read\", \"deny-v-a1-read\"]",
        1,
    ) + "\n[[permissions]]\nid = \"deny-v-a1-read\"\neffect = \"deny\"\nresource_type = \"vessel\"\nresource = \"v-a1\"\nactions = [\"read\"]\n";
    let proposed: PolicySource = toml::from_str(&proposed_text).unwrap();
    let proposed = compile(&proposed).unwrap();
    let current = compile(&current).unwrap();

    let mut log = Vec::with_capacity(n * 520);
    for i in 0..n {
        let (p, t, id, action, method, reason, rules) = CALLS[i % CALLS.len()];
        log.extend_from_slice(format!(
            "{{\"id\":\"0193a0f0-0000-7000-8000-{i:012x}\",\"time\":\"2026-12-07T14:03:11.123Z\",\"source\":\"gateway\",\"request_id\":\"5b0e9c1e-8a7e-4c43-9d0c-{i:012x}\",\"tenant_id\":\"{t}\",\"principal_id\":\"{p}\",\"principal_kind\":\"user\",\"method\":\"{method}\",\"route\":\"msw-vessel\",\"path\":\"/msw/vessels/{id}\",\"resource\":\"vessel\",\"resource_id\":\"{id}\",\"action\":\"{action}\",\"outcome\":\"allowed\",\"code\":null,\"reason\":\"{reason}\",\"rules\":{rules},\"client_ip\":\"10.1.2.3\",\"user_agent\":\"Mozilla/5.0 (X11; Linux x86_64)\",\"status\":200,\"latency_ms\":0.412,\"risk_score\":0.12,\"snapshot_version\":1}}\n"
        ).as_bytes());
    }
    for (label, baseline) in [
        ("recorded decisions", None),
        ("--current policy", Some(&current)),
    ] {
        let started = Instant::now();
        let mut replay = Replay::new(&proposed, baseline);
        for line in log.split(|b| *b == b'\n') {
            replay.line(line);
        }
        let report = replay.finish();
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{label}: {} lines ({} MiB) replayed in {secs:.3} s = {:.0} lines/s; {} flipped",
            report.lines,
            log.len() >> 20,
            report.lines as f64 / secs,
            report.flipped()
        );
    }
}
