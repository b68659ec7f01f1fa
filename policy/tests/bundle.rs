//! Sharded snapshots and deltas: a policy split into parts and rebuilt from a
//! bundle decides exactly like the policy compiled whole; a delta recompiles
//! only what changed; every tampering, replay or gap is refused and leaves
//! the held policy as it was.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use jsonwebtoken::Algorithm;
use sentinel_policy::bundle::{
    self, apply, encode, open, part_bytes, split, BundleError, Held, Manifest, PartRef, FORMAT,
};
use sentinel_policy::signed::{payload_sha256, SnapshotSigner, SnapshotVerifier, VerifyError};
use sentinel_policy::source::{PrincipalSource, TenantStatus};
use sentinel_policy::{compile, AccessRequest, Policy, PolicySource, Reason, RequestContext};
use std::collections::BTreeMap;
use uuid::Uuid;

const ED: &[u8] = include_bytes!("keys/snap-ed.pem");
const ED_PUB: &[u8] = include_bytes!("keys/snap-ed.pub.pem");
const OTHER: &[u8] = include_bytes!("keys/other-ed.pem");
const NOW: i64 = 1_800_000_000;

fn tenant(n: u128) -> Uuid {
    Uuid::from_u128(0x1000 + n)
}
fn user(t: u128, n: u128) -> Uuid {
    Uuid::from_u128(0x10_0000 + t * 1000 + n)
}

/// Three tenants (C is a sub-tenant of A), a reader role and a user per
/// tenant, a deny rule in B, a service account with a key in A.
fn policy() -> PolicySource {
    let (a, b, c) = (tenant(1), tenant(2), tenant(3));
    let json = serde_json::json!({
        "tenants": [
            {"id": a, "code": "A"},
            {"id": b, "code": "B"},
            {"id": c, "code": "C", "parent": a},
        ],
        "roles": [
            {"id": "a-reader", "name": "reader", "tenant": a, "permissions": ["a-read"]},
            {"id": "a-admin", "name": "admin", "tenant": a, "parent": "a-reader", "permissions": ["a-write"]},
            {"id": "b-reader", "name": "reader", "tenant": b, "permissions": ["b-read", "b-deny"]},
            {"id": "c-reader", "name": "reader", "tenant": c, "permissions": ["c-read"]},
            {"id": "auditor", "name": "auditor", "permissions": ["audit-read"]},
        ],
        "permissions": [
            {"id": "a-read", "resource_type": "vessel", "actions": ["read"], "tenant_scope": "own_and_children"},
            {"id": "a-write", "resource_type": "vessel", "actions": ["update"]},
            {"id": "b-read", "resource_type": "vessel", "actions": ["read"]},
            {"id": "b-deny", "effect": "deny", "resource_type": "vessel", "resource": "secret-*", "actions": ["read"]},
            {"id": "c-read", "resource_type": "vessel", "actions": ["read"]},
            {"id": "audit-read", "resource_type": "audit", "actions": ["read"]},
        ],
        "groups": [
            {"id": "a-ops", "name": "ops", "tenant": a, "roles": ["a-admin"]},
        ],
        "principals": [
            {"id": user(1, 1), "tenant": a, "name": "ann", "roles": ["a-reader"]},
            {"id": user(1, 2), "tenant": a, "name": "adam", "groups": ["a-ops"]},
            {"id": user(1, 3), "tenant": a, "name": "sync", "service_account": true, "roles": ["a-reader"],
             "api_keys": [{"prefix": "AbCd1234", "sha256": sentinel_policy::apikey::hash_api_key(KEY)}]},
            {"id": user(2, 1), "tenant": b, "name": "bea", "roles": ["b-reader", "auditor"]},
            {"id": user(3, 1), "tenant": c, "name": "cid", "roles": ["c-reader"]},
        ],
        "revoked_tokens": [{"jti": "revoked-1"}],
    });
    serde_json::from_value(json).unwrap()
}

const KEY: &str = "sk_AbCd1234_0123456789abcdefghijklmnopqrstuvwxyzABCD";

fn who_tenant(u: Uuid) -> Uuid {
    tenant((u.as_u128() - 0x10_0000) / 1000)
}

fn signer() -> SnapshotSigner {
    SnapshotSigner::from_pem("ed-1", Algorithm::EdDSA, ED).unwrap()
}

fn verifier() -> SnapshotVerifier {
    let mut v = SnapshotVerifier::new();
    v.add_pem("ed-1", Algorithm::EdDSA, ED_PUB).unwrap();
    v
}

/// What the admin API keeps: the parts of the latest version.
struct Publisher {
    manifest: Option<Manifest>,
    parts: BTreeMap<String, Vec<u8>>,
}

impl Publisher {
    fn new() -> Publisher {
        Publisher {
            manifest: None,
            parts: BTreeMap::new(),
        }
    }

    /// Publishes `src` as `version`; returns the bundle for a caller holding `since`.
    fn publish(&mut self, src: &PolicySource, version: u64, since: u64) -> Vec<u8> {
        let (global, shards) = split(src).unwrap();
        let prev = self.manifest.take();
        let mut part = |p: &PolicySource, old: Option<&PartRef>| {
            let bytes = part_bytes(p);
            let sha256 = payload_sha256(&bytes);
            self.parts.insert(sha256.clone(), bytes);
            PartRef::next(old, sha256, version)
        };
        let global = part(&global, prev.as_ref().map(|m| &m.global));
        let shards = shards
            .iter()
            .map(|(t, s)| (*t, part(s, prev.as_ref().and_then(|m| m.shards.get(t)))))
            .collect();
        let manifest = Manifest {
            format: FORMAT.into(),
            version,
            global,
            shards,
            anomaly_model: None,
        };
        self.manifest = Some(manifest);
        self.bundle(since)
    }

    fn bundle(&self, since: u64) -> Vec<u8> {
        let m = self.manifest.as_ref().unwrap();
        let bytes = serde_json::to_vec(m).unwrap();
        let sig = signer().sign(&bytes, m.version, NOW).unwrap();
        let refs = std::iter::once(&m.global).chain(m.shards.values());
        let parts: Vec<(&str, &[u8])> = refs
            .filter(|r| r.since > since)
            .map(|r| (r.sha256.as_str(), self.parts[&r.sha256].as_slice()))
            .collect();
        encode(&sig, &bytes, &parts)
    }
}

fn read(policy: &Policy, who: Uuid, target: Uuid, resource: &str) -> (bool, Reason) {
    read_type(policy, who, target, "vessel", resource)
}

fn read_type(
    policy: &Policy,
    who: Uuid,
    target: Uuid,
    kind: &str,
    resource: &str,
) -> (bool, Reason) {
    let (shard, p) = policy.principal(&who).expect("principal");
    let d = shard.authorize(&AccessRequest {
        principal: p,
        resource_type: kind,
        resource_id: Some(resource),
        action: "read",
        target_tenant: target,
        approval_chain: None,
        context: RequestContext {
            now: NOW,
            client_ip: None,
            method: "GET",
            mfa: false,
            risk_score: None,
        },
    });
    (d.allowed, d.reason)
}

fn load(body: &[u8], held: Option<&Held>) -> Result<Held, BundleError> {
    let opened = open(&verifier(), body)?;
    apply(held, &opened).map(|(h, _)| h)
}

#[test]
fn sharded_policy_decides_like_the_whole_one() {
    let src = policy();
    let whole = Policy::whole(compile(&src).unwrap());
    let mut publisher = Publisher::new();
    let held = load(&publisher.publish(&src, 1, 0), None).unwrap();
    let sharded = &held.policy;
    assert_eq!(sharded.shard_count(), 3);
    let (s, w) = (sharded.stats(), whole.stats());
    assert_eq!(
        (s.tenants, s.principals, s.revoked_tokens),
        (w.tenants, w.principals, w.revoked_tokens)
    );
    // The tenantless `auditor` role is copied into every shard.
    assert_eq!(s.roles, w.roles + 2);
    let cases = [
        (user(1, 1), tenant(1), "v1"),
        (user(1, 1), tenant(3), "v1"), // sub-tenant through own_and_children
        (user(1, 1), tenant(2), "v1"), // cross-tenant
        (user(1, 2), tenant(1), "v1"), // through group + inheritance
        (user(2, 1), tenant(2), "v1"),
        (user(2, 1), tenant(2), "secret-1"), // deny overrides allow
        (user(3, 1), tenant(1), "v1"),       // sub-tenant user on parent
    ];
    for (who, target, res) in cases {
        assert_eq!(
            read(sharded, who, target, res),
            read(&whole, who, target, res),
            "{who} on {target}/{res}"
        );
    }
    for who in [user(2, 1), user(1, 1)] {
        assert_eq!(
            read_type(sharded, who, who_tenant(who), "audit", "a1"),
            read_type(&whole, who, who_tenant(who), "audit", "a1"),
        );
    }
    assert!(read_type(sharded, user(2, 1), tenant(2), "audit", "a1").0);
    assert!(sharded.is_revoked("revoked-1"));
    let (shard, p) = sharded.authenticate_api_key(KEY, NOW).expect("key");
    assert_eq!(p.id, user(1, 3));
    assert_eq!(shard.version(), 1);
    // A key whose prefix is known but whose secret is wrong is still refused.
    let wrong = "sk_AbCd1234_0123456789abcdefghijklmnopqrstuvwxyzABCE";
    assert!(sharded.authenticate_api_key(wrong, NOW).is_err());
    // A user never authenticates through another tenant's shard.
    assert!(sharded.principal(&Uuid::from_u128(7)).is_none());
}

#[test]
fn a_delta_recompiles_only_the_changed_shard() {
    let mut src = policy();
    let mut publisher = Publisher::new();
    let v1 = load(&publisher.publish(&src, 1, 0), None).unwrap();
    assert!(read(&v1.policy, user(2, 1), tenant(2), "v1").0);

    // Lock Bea: only tenant B's shard changes.
    src.principals
        .iter_mut()
        .find(|p| p.id == user(2, 1))
        .unwrap()
        .locked = true;
    let body = publisher.publish(&src, 2, 1);
    let opened = open(&verifier(), &body).unwrap();
    assert_eq!(opened.parts().count(), 1, "only B's shard travels");
    let (v2, applied) = apply(Some(&v1), &opened).unwrap();
    assert_eq!(applied.shards_compiled, 1);
    assert_eq!(applied.shards_kept, 2);
    assert!(!applied.global_changed);
    assert_eq!(
        read(&v2.policy, user(2, 1), tenant(2), "v1"),
        (false, Reason::AccountLocked)
    );
    // Everyone else is unchanged, and every view reports the new version.
    let (shard, _) = v2.policy.principal(&user(1, 1)).unwrap();
    assert_eq!(shard.version(), 2);
    assert!(read(&v2.policy, user(1, 1), tenant(3), "v1").0);
    // The held policy is untouched by the delta.
    assert!(read(&v1.policy, user(2, 1), tenant(2), "v1").0);
}

#[test]
fn a_global_change_keeps_every_shard_and_applies_to_all() {
    let mut src = policy();
    let mut publisher = Publisher::new();
    let v1 = load(&publisher.publish(&src, 1, 0), None).unwrap();
    src.tenants[0].status = TenantStatus::Suspended; // A
    src.revoked_tokens
        .push(serde_json::from_value(serde_json::json!({"jti": "j-2"})).unwrap());
    let (v2, applied) = apply(
        Some(&v1),
        &open(&verifier(), &publisher.publish(&src, 2, 1)).unwrap(),
    )
    .unwrap();
    assert!(applied.global_changed);
    assert_eq!((applied.shards_compiled, applied.shards_kept), (0, 3));
    assert_eq!(
        read(&v2.policy, user(1, 1), tenant(1), "v1"),
        (false, Reason::TenantSuspended)
    );
    assert!(v2.policy.is_revoked("j-2"));
    assert!(!v1.policy.is_revoked("j-2"));
}

#[test]
fn moving_a_principal_and_removing_a_tenant_update_the_indexes() {
    let mut src = policy();
    let mut publisher = Publisher::new();
    let v1 = load(&publisher.publish(&src, 1, 0), None).unwrap();
    // Remove tenant C and everything in it.
    src.tenants.retain(|t| t.id != tenant(3));
    src.principals.retain(|p| p.tenant != tenant(3));
    src.roles.retain(|r| r.tenant != Some(tenant(3)));
    // A new user in B.
    let mut nu: PrincipalSource = src.principals[3].clone();
    nu.id = user(2, 2);
    src.principals.push(nu);
    let (v2, applied) = apply(
        Some(&v1),
        &open(&verifier(), &publisher.publish(&src, 2, 1)).unwrap(),
    )
    .unwrap();
    assert_eq!(applied.shards_removed, 1);
    assert!(v2.policy.principal(&user(3, 1)).is_none());
    assert!(v2.policy.principal(&user(2, 2)).is_some());
    assert!(v1.policy.principal(&user(3, 1)).is_some());
    assert_eq!(v2.policy.shard_count(), 2);
}

#[test]
fn a_part_neither_held_nor_sent_fails_the_bundle() {
    let src = policy();
    let mut publisher = Publisher::new();
    publisher.publish(&src, 1, 0);
    // A gateway holding nothing is sent a delta (as if it held version 1).
    let body = publisher.bundle(1);
    assert!(matches!(
        load(&body, None),
        Err(BundleError::MissingPart(_))
    ));
}

#[test]
fn tampering_replay_and_truncation_are_refused() {
    let mut src = policy();
    let mut publisher = Publisher::new();
    let v1 = load(&publisher.publish(&src, 1, 0), None).unwrap();
    src.principals[0].locked = true;
    let body = publisher.publish(&src, 2, 1);
    let text = String::from_utf8(body.clone()).unwrap();

    // A part changed in flight (grant Ann an extra role): its hash no longer matches.
    let tampered = text.replacen("\"roles\":[\"a-reader\"]", "\"roles\":[\"a-admin\"]", 1);
    assert_ne!(tampered, text);
    assert!(matches!(
        load(tampered.as_bytes(), Some(&v1)),
        Err(BundleError::PartMismatch(_))
    ));
    // The manifest changed (point a shard at another part): the signature no longer covers it.
    let m = publisher.manifest.clone().unwrap();
    let b = m.shards[&tenant(2)].sha256.clone();
    let a = m.shards[&tenant(1)].sha256.clone();
    let swapped = text.replacen(&b, &a, 1);
    assert!(matches!(
        load(swapped.as_bytes(), Some(&v1)),
        Err(BundleError::Signature(VerifyError::PayloadMismatch))
    ));
    // Unsigned, or signed by a key the gateway does not trust.
    let bytes = serde_json::to_vec(&m).unwrap();
    let unsigned = encode("", &bytes, &[]);
    assert!(matches!(
        load(&unsigned, Some(&v1)),
        Err(BundleError::Unsigned)
    ));
    let other = SnapshotSigner::from_pem("ed-1", Algorithm::EdDSA, OTHER).unwrap();
    let forged = encode(&other.sign(&bytes, 2, NOW).unwrap(), &bytes, &[]);
    assert!(matches!(
        load(&forged, Some(&v1)),
        Err(BundleError::Signature(VerifyError::BadSignature))
    ));
    // Truncated anywhere.
    for cut in [1, body.len() / 3, body.len() / 2, body.len() - 1] {
        assert!(load(&body[..cut], Some(&v1)).is_err(), "cut at {cut}");
    }
    // Replayed: an older or equal version than the one held.
    let v2 = load(&body, Some(&v1)).unwrap();
    assert!(matches!(
        load(&body, Some(&v2)),
        Err(BundleError::NotNewer { held: 2, got: 2 })
    ));
    let old = {
        let mut p = Publisher::new();
        p.publish(&policy(), 1, 0)
    };
    assert!(matches!(
        load(&old, Some(&v2)),
        Err(BundleError::NotNewer { .. })
    ));
    // A signed version that differs from the manifest's.
    let lying = encode(&signer().sign(&bytes, 9, NOW).unwrap(), &bytes, &[]);
    assert!(matches!(
        load(&lying, Some(&v1)),
        Err(BundleError::VersionMismatch {
            manifest: 2,
            signed: 9
        })
    ));
}

#[test]
fn a_shard_that_does_not_compile_fails_the_whole_bundle() {
    let src = policy();
    let mut publisher = Publisher::new();
    let v1 = load(&publisher.publish(&src, 1, 0), None).unwrap();

    // Sign a manifest whose B shard holds a principal of tenant A.
    let (global, mut shards) = split(&src).unwrap();
    let stolen = shards[&tenant(1)].principals[0].clone();
    shards.get_mut(&tenant(2)).unwrap().principals.push(stolen);
    let mut parts = vec![(part_bytes(&global), None)];
    for (t, s) in &shards {
        parts.push((part_bytes(s), Some(*t)));
    }
    let hash = |b: &[u8]| payload_sha256(b);
    let manifest = Manifest {
        format: FORMAT.into(),
        version: 2,
        global: PartRef {
            sha256: hash(&parts[0].0),
            since: 2,
        },
        shards: parts[1..]
            .iter()
            .map(|(b, t)| {
                (
                    t.unwrap(),
                    PartRef {
                        sha256: hash(b),
                        since: 2,
                    },
                )
            })
            .collect(),
        anomaly_model: None,
    };
    let mb = serde_json::to_vec(&manifest).unwrap();
    let hashes: Vec<String> = parts.iter().map(|(b, _)| hash(b)).collect();
    let list: Vec<(&str, &[u8])> = parts
        .iter()
        .zip(&hashes)
        .map(|((b, _), h)| (h.as_str(), b.as_slice()))
        .collect();
    let body = encode(&signer().sign(&mb, 2, NOW).unwrap(), &mb, &list);
    let err = load(&body, Some(&v1)).unwrap_err();
    assert!(matches!(err, BundleError::Compile(_)), "{err}");
    assert_eq!(err.reason(), "compile");

    // A shard for a tenant the global part does not have.
    let mut manifest2 = manifest.clone();
    let b_ref = manifest2.shards[&tenant(2)].clone();
    manifest2.shards.insert(Uuid::from_u128(99), b_ref);
    manifest2.shards.insert(
        tenant(2),
        PartRef {
            sha256: hash(&part_bytes(&shards[&tenant(1)])),
            since: 2,
        },
    );
    let mb2 = serde_json::to_vec(&manifest2).unwrap();
    let body2 = encode(&signer().sign(&mb2, 2, NOW).unwrap(), &mb2, &list);
    assert!(load(&body2, Some(&v1)).is_err());
}

#[test]
fn split_refuses_what_has_no_shard() {
    let mut src = policy();
    src.principals[0].tenant = Uuid::from_u128(5);
    assert!(split(&src).is_err());
    // The global part refuses shard objects; a shard refuses global objects.
    let src = policy();
    assert!(sentinel_policy::compile_global(&src).is_err());
    let g = sentinel_policy::compile_global(&bundle::global_part(&src)).unwrap();
    assert!(sentinel_policy::compile_shard(&g, tenant(1), 1, &src).is_err());
}
