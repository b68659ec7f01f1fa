//! What a policy costs at the live-policy scale target (1,000 tenants,
//! 100,000 users, 10,000 roles, 1,000,000 permission rows), published as
//! sharded bundles (`sentinel_policy::bundle`):
//!
//! 1. the first, whole bundle: what the admin API does to publish it (split,
//!    serialize, hash, sign) and what a gateway does to enforce it (verify,
//!    parse and compile every part, swap), its size and the gateway's
//!    resident memory;
//! 2. a delta after one user is locked (one tenant shard changes);
//! 3. a delta after one token is revoked (the global part changes).
//!
//! The CPU work between an admin API write and enforcement, without the
//! network and database; the admin API's own publish path is measured in
//! docs/PERFORMANCE.md "Deltas: admin publish".
//!
//! Run: `cargo run --release --example snapshot_scale`
//! (about 1.5 GiB of memory; prints one line per step).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../benches/support/scale.rs"]
mod scale;

use jsonwebtoken::Algorithm;
use sentinel_policy::bundle::{self, Held, Manifest, PartRef};
use sentinel_policy::signed::{payload_sha256, SnapshotSigner, SnapshotVerifier};
use sentinel_policy::PolicySource;
use std::collections::HashMap;
use std::sync::Arc;
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

/// The admin API's side of a publish, in memory: parts by tenant.
struct Published {
    manifest: Manifest,
    parts: HashMap<String, Vec<u8>>,
}

fn part_ref(
    parts: &mut HashMap<String, Vec<u8>>,
    src: &PolicySource,
    version: u64,
    old: Option<&PartRef>,
) -> PartRef {
    let bytes = bundle::part_bytes(src);
    let sha256 = payload_sha256(&bytes);
    parts.insert(sha256.clone(), bytes);
    PartRef::next(old, sha256, version)
}

/// The bundle for a gateway holding `since`.
fn bundle_for(p: &Published, signer: &SnapshotSigner, since: u64) -> Vec<u8> {
    let manifest = serde_json::to_vec(&p.manifest).unwrap();
    let sig = signer.sign(&manifest, p.manifest.version, 0).unwrap();
    let list: Vec<(&str, &[u8])> = p
        .manifest
        .part_hashes()
        .zip(std::iter::once(&p.manifest.global).chain(p.manifest.shards.values()))
        .filter(|(_, r)| r.since > since)
        .map(|(h, _)| (h, p.parts[h].as_slice()))
        .collect();
    bundle::encode(&sig, &manifest, &list)
}

fn enforce(verifier: &SnapshotVerifier, held: Option<&Held>, body: &[u8], label: &str) -> Held {
    let t = Instant::now();
    let opened = step(&format!("{label}: verify"), || {
        bundle::open(verifier, body).unwrap()
    });
    let (next, applied) = step(&format!("{label}: parse + compile"), || {
        bundle::apply(held, &opened).unwrap()
    });
    let store = arc_swap::ArcSwapOption::<sentinel_policy::Policy>::empty();
    step(&format!("{label}: swap"), || {
        store.store(Some(Arc::clone(&next.policy)))
    });
    drop(opened);
    println!(
        "{label}: bundle {:.1} KiB, {} shard(s) compiled, {} kept, global {}; verify + compile + swap {:.1} ms",
        body.len() as f64 / 1024.0,
        applied.shards_compiled,
        applied.shards_kept,
        if applied.global_changed { "compiled" } else { "kept" },
        t.elapsed().as_secs_f64() * 1e3
    );
    next
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
    let signer = SnapshotSigner::from_pem("scale-1", Algorithm::EdDSA, KEY).unwrap();
    let mut verifier = SnapshotVerifier::new();
    verifier
        .add_pem("scale-1", Algorithm::EdDSA, KEY_PUB)
        .unwrap();

    // 1. The first publish: every part.
    let (global, mut shards) = step("admin: split into parts", || {
        bundle::split(&source).unwrap()
    });
    let mut published = step("admin: serialize + hash parts", || {
        let mut parts = HashMap::new();
        let global = part_ref(&mut parts, &global, 1, None);
        let shards = shards
            .iter()
            .map(|(t, s)| (*t, part_ref(&mut parts, s, 1, None)))
            .collect();
        Published {
            manifest: Manifest {
                format: bundle::FORMAT.into(),
                version: 1,
                global,
                shards,
                anomaly_model: None,
            },
            parts,
        }
    });
    let full = step("admin: manifest + sign + encode", || {
        bundle_for(&published, &signer, 0)
    });
    println!(
        "whole bundle                       {:>9.1} MiB ({} bytes, {} parts)",
        full.len() as f64 / (1024.0 * 1024.0),
        full.len(),
        published.parts.len()
    );
    drop(source);
    let held = enforce(&verifier, None, &full, "whole");
    drop(full);
    println!(
        "resident after swap                {:>9.0} MiB (process baseline {:.0} MiB, the admin-side parts still held)",
        rss_mib(),
        baseline
    );

    // 2. One user locked: one tenant's shard changes.
    let tenant = scale::tenant_id(17);
    let delta = step("admin: lock a user, re-serialize its shard", || {
        let shard = shards.get_mut(&tenant).unwrap();
        shard.principals[3].locked = true;
        let old = published.manifest.shards.get(&tenant).cloned();
        let r = part_ref(&mut published.parts, shard, 2, old.as_ref());
        published.manifest.shards.insert(tenant, r);
        published.manifest.version = 2;
        bundle_for(&published, &signer, 1)
    });
    let held = enforce(&verifier, Some(&held), &delta, "delta (user locked)");
    let (_, locked) = held.policy.principal(&scale::user_id(17, 3)).unwrap();
    assert!(locked.locked);

    // 3. One token revoked: the global part changes.
    let mut global = global;
    let delta = step("admin: revoke a token, re-serialize global", || {
        global
            .revoked_tokens
            .push(serde_json::from_value(serde_json::json!({"jti": "scale-jti"})).unwrap());
        let old = published.manifest.global.clone();
        published.manifest.global = part_ref(&mut published.parts, &global, 3, Some(&old));
        published.manifest.version = 3;
        bundle_for(&published, &signer, 2)
    });
    let held = enforce(&verifier, Some(&held), &delta, "delta (token revoked)");
    assert!(held.policy.is_revoked("scale-jti"));
    println!("resident at the end                {:>9.0} MiB", rss_mib());
}
