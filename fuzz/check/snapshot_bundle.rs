// The fuzz property check of signed snapshot bundles
// (`sentinel_policy::bundle::{open, apply}`), shared by the cargo-fuzz
// target (fuzz/fuzz_targets/snapshot_bundle.rs) and the corpus replay in
// `cargo test` (tests/fuzz_corpus.rs), through `include!`.
//
// Input layout: byte 0, bit 0 clear: the rest is the HTTP body as a gateway
// receives it. Bit 0 set: the rest is segments separated by 0xFF: the
// manifest text, then the parts. In the manifest, `#0`..`#9` stand for the
// SHA-256 of part 0..9, so the fuzzer can name parts it carries. The check
// signs the manifest with the pinned key at the version the manifest states
// (bit 1: one more, a version mismatch) and sends every part under its hash
// (bit 2: part 0 under the hash of other bytes).
//
// Checks: no panic; an opened bundle has the known format, the signed
// version, parts that match their hashes and a manifest that is the signed
// bytes; applying it either fails or yields a policy at the manifest's
// version with one compiled shard per manifest shard, every part present;
// the same bundle applied on top of its own result is refused as a replay.
use sentinel_policy::bundle::{self, BundleError, Manifest, FORMAT};
use sentinel_policy::signed::{payload_sha256, SnapshotSigner, SnapshotVerifier};
use std::sync::OnceLock;

pub const KID: &str = "snap-fuzz";

fn key_file(name: &str) -> Vec<u8> {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    // The fuzz crate lives in `fuzz/`; the policy test keys under the root.
    let root = if manifest.join("fuzz/check").is_dir() {
        manifest
    } else {
        manifest.parent().unwrap()
    };
    std::fs::read(root.join("policy/tests/keys").join(name)).unwrap()
}

fn keys() -> &'static (SnapshotSigner, SnapshotVerifier) {
    static KEYS: OnceLock<(SnapshotSigner, SnapshotVerifier)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let alg = jsonwebtoken::Algorithm::EdDSA;
        let signer = SnapshotSigner::from_pem(KID, alg, &key_file("snap-ed.pem")).unwrap();
        let mut verifier = SnapshotVerifier::new();
        verifier
            .add_pem(KID, alg, &key_file("snap-ed.pub.pem"))
            .unwrap();
        (signer, verifier)
    })
}

/// The body of a structured input (see the layout above).
pub fn body(flags: u8, rest: &[u8]) -> Vec<u8> {
    let mut segments = rest.split(|&b| b == 0xFF);
    let manifest = segments.next().unwrap_or_default();
    let parts: Vec<&[u8]> = segments.collect();
    let hashes: Vec<String> = parts.iter().map(|p| payload_sha256(p)).collect();
    let mut text = Vec::with_capacity(manifest.len() + 64 * hashes.len());
    let mut i = 0;
    while i < manifest.len() {
        let n = manifest.get(i + 1).and_then(|d| d.checked_sub(b'0'));
        match (manifest[i], n.and_then(|n| hashes.get(n as usize))) {
            (b'#', Some(h)) => {
                text.extend_from_slice(h.as_bytes());
                i += 2;
            }
            (b, _) => {
                text.push(b);
                i += 1;
            }
        }
    }
    let version = serde_json::from_slice::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("version").and_then(|v| v.as_u64()))
        .unwrap_or(0);
    let signed = if flags & 2 == 0 {
        version
    } else {
        version.wrapping_add(1)
    };
    let signature = keys().0.sign(&text, signed, 1_700_000_000).unwrap();
    let mut named: Vec<(String, &[u8])> = hashes.into_iter().zip(parts).collect();
    if flags & 4 != 0 {
        if let Some(first) = named.first_mut() {
            first.0 = payload_sha256(&[first.1, &b" "[..]].concat());
        }
    }
    let refs: Vec<(&str, &[u8])> = named.iter().map(|(h, b)| (h.as_str(), *b)).collect();
    bundle::encode(&signature, &text, &refs)
}

/// Runs one fuzz input (see the layout above); panics on a violated
/// property. Returns whether the bundle was opened and applied.
pub fn check(data: &[u8]) -> bool {
    let Some((&mode, rest)) = data.split_first() else {
        return false;
    };
    let body = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        body(mode, rest)
    };
    let Ok(opened) = bundle::open(&keys().1, &body) else {
        return false;
    };
    let m = &opened.manifest;
    assert_eq!(m.format, FORMAT);
    assert_eq!(opened.claims.ver, m.version, "version not the signed one");
    assert_eq!(opened.claims.sha256, payload_sha256(opened.manifest_bytes()));
    let reread: Manifest = serde_json::from_slice(opened.manifest_bytes()).unwrap();
    assert_eq!(&reread, m, "the manifest is not the signed bytes");
    for (hash, part) in opened.parts() {
        assert_eq!(payload_sha256(part), hash, "a part does not match its hash");
    }
    let Ok((held, applied)) = bundle::apply(None, &opened) else {
        return false;
    };
    assert_eq!(held.manifest, *m);
    assert_eq!(applied.shards_compiled, m.shards.len());
    assert_eq!(applied.shards_kept, 0);
    let carried: std::collections::HashSet<&str> = opened.parts().map(|(h, _)| h).collect();
    for hash in m.part_hashes() {
        assert!(carried.contains(hash), "applied without part {hash}");
    }
    assert!(
        matches!(
            bundle::apply(Some(&held), &opened),
            Err(BundleError::NotNewer { .. })
        ),
        "a replayed bundle was applied"
    );
    true
}
