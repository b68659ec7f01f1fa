//! What a full policy snapshot costs at the live-policy scale target:
//! 1,000 tenants, 100,000 users, 10,000 roles, 1,000,000 permission rows.
//!
//! Measures, one step at a time, what the admin API does to publish a
//! snapshot (serialize, sign) and what a gateway does to enforce it (verify,
//! parse, compile, swap), the encoded size, and the gateway's resident memory
//! once the snapshot is compiled and the source dropped.
//!
//! Run: `cargo run --release --example snapshot_scale`
//! (about 1 GiB of memory; prints one line per step).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../benches/support/scale.rs"]
mod scale;

use jsonwebtoken::Algorithm;
use sentinel_policy::signed::{SnapshotSigner, SnapshotVerifier};
use sentinel_policy::{compile, PolicySource};
use std::time::Instant;

const KEY: &[u8] = include_bytes!("../policy/tests/keys/snap-ed.pem");
const KEY_PUB: &[u8] = include_bytes!("../policy/tests/keys/snap-ed.pub.pem");

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn step<T>(name: &str, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let out = f();
    println!(
        "{name:<34} {:>9.1} ms   rss {:>7.0} MiB",
        t.elapsed().as_secs_f64() * 1e3,
        rss_mib()
    );
    out
}

fn main() {
    println!(
        "scale: {} tenants, {} users, {} roles, {} permission rows",
        scale::TENANTS,
        scale::TENANTS * scale::USERS_PER_TENANT,
        scale::TENANTS * scale::ROLES_PER_TENANT,
        scale::TENANTS * scale::ROLES_PER_TENANT * scale::PERMS_PER_ROLE
    );
    let baseline = rss_mib();
    let source = step("generate source (not published)", scale::generate);

    // Admin API side.
    let payload = step("serialize payload (JSON)", || {
        serde_json::to_vec(&source).unwrap()
    });
    drop(source);
    let signer = SnapshotSigner::from_pem("scale-1", Algorithm::EdDSA, KEY).unwrap();
    let signature = step("sign (SHA-256 + Ed25519)", || {
        signer.sign(&payload, 1, 0).unwrap()
    });
    println!(
        "encoded size                       {:>9.1} MiB ({} bytes)",
        payload.len() as f64 / (1024.0 * 1024.0),
        payload.len()
    );

    // Gateway side.
    let mut verifier = SnapshotVerifier::new();
    verifier
        .add_pem("scale-1", Algorithm::EdDSA, KEY_PUB)
        .unwrap();
    let t_enforce = Instant::now();
    step("verify (SHA-256 + Ed25519)", || {
        verifier.verify(&payload, &signature).unwrap()
    });
    let source: PolicySource = step("parse payload", || {
        serde_json::from_slice(&payload).unwrap()
    });
    let snapshot = step("compile", || compile(&source).unwrap());
    step("drop source", || drop(source));
    let enforce = t_enforce.elapsed();
    drop(payload);
    let store = arc_swap::ArcSwap::from_pointee(sentinel_policy::Snapshot::empty());
    step("swap", || store.store(std::sync::Arc::new(snapshot)));
    println!(
        "verify + parse + compile + swap    {:>9.1} ms",
        enforce.as_secs_f64() * 1e3
    );
    println!(
        "resident after swap                {:>9.0} MiB (process baseline {:.0} MiB)",
        rss_mib(),
        baseline
    );
}
