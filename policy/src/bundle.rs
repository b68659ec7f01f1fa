//! Sharded snapshots and deltas: how the admin API publishes a policy of any
//! size so that a change costs what it touches, not what exists.
//!
//! A published policy is a set of **parts** and a signed **manifest**:
//!
//! - the *global part*: tenants, field definitions and revoked tokens
//!   (small; what every shard needs);
//! - one *shard per tenant*: its principals, roles, groups, permissions and
//!   grants;
//! - the *manifest*: the version, and for every part the SHA-256 of its exact
//!   bytes and the version that first published that content (`since`).
//!
//! The manifest is signed like a whole snapshot was ([`crate::signed`]: the
//! JWS covers the SHA-256 of the manifest bytes), so the signature covers
//! every part through its hash. A **bundle** (what a gateway downloads) is the
//! signature, the manifest and the parts the caller does not hold yet; a
//! gateway asks with the version it holds and receives only parts with a
//! newer `since`: a delta. What it keeps is decided by hashes, never by
//! trust in the server's choice: a part the gateway lacks and the bundle does
//! not carry fails the bundle ([`BundleError::MissingPart`]; fetch it whole).
//!
//! [`open`] verifies a bundle; [`apply`] compiles only the parts whose hash
//! changed and re-pairs the unchanged shards with the (new) global part.
//! Pure: no I/O, no clock.

use crate::compile::{compile_global, compile_shard, CompileError};
use crate::model::{Map, Snapshot};
use crate::sharded::{Layout, Policy};
use crate::signed::{payload_sha256, SnapshotClaims, SnapshotVerifier, VerifyError};
use crate::source::PolicySource;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use uuid::Uuid;

/// The manifest's `format`.
pub const FORMAT: &str = "sentinel-sharded-1";

/// What a signature covers: every part by hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub version: u64,
    pub global: PartRef,
    /// Tenant id → its shard.
    pub shards: BTreeMap<Uuid, PartRef>,
    /// The anomaly model the registry has active (docs/anomaly.md,
    /// "Registry"), named by hash: a gateway fetches its bytes apart and
    /// loads them only if they hash to this. Absent when none is active, and
    /// then not serialized, so a manifest without one is byte for byte what
    /// it was before the registry existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Boxed: most manifests have none, and the manifest travels by value.
    pub anomaly_model: Option<Box<ModelRef>>,
}

/// The active anomaly model, as the signed manifest names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelRef {
    /// The registry's id of the model.
    pub id: Uuid,
    /// Lowercase hex SHA-256 of the model file.
    pub sha256: String,
    /// The file's size in bytes.
    pub size: u64,
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartRef {
    /// Lowercase hex SHA-256 of the part's bytes.
    pub sha256: String,
    /// The version that first published this content.
    pub since: u64,
}

impl PartRef {
    /// The reference to a part with hash `sha256` in the manifest of
    /// `version`: `prev` (the same tenant's, or the global, reference in the
    /// previous manifest) carried over when the content is unchanged, so its
    /// `since` stays; otherwise first published now.
    pub fn next(prev: Option<&PartRef>, sha256: String, version: u64) -> PartRef {
        match prev {
            Some(p) if p.sha256 == sha256 => p.clone(),
            _ => PartRef {
                sha256,
                since: version,
            },
        }
    }
}

impl Manifest {
    /// Every part hash the manifest names (global first).
    pub fn part_hashes(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.global.sha256.as_str())
            .chain(self.shards.values().map(|r| r.sha256.as_str()))
    }
}

/// The bytes of a part: the JSON of a [`PolicySource`] (version 0).
pub fn part_bytes(src: &PolicySource) -> Vec<u8> {
    // Serializing plain data to a Vec cannot fail; an empty object is the
    // (never reached) fallback rather than a panic.
    serde_json::to_vec(src).unwrap_or_else(|_| b"{}".to_vec())
}

/// The global part of `src`: tenants, field definitions, revoked tokens.
pub fn global_part(src: &PolicySource) -> PolicySource {
    PolicySource {
        version: 0,
        tenants: src.tenants.clone(),
        field_definitions: src.field_definitions.clone(),
        revoked_tokens: src.revoked_tokens.clone(),
        ..PolicySource::default()
    }
}

/// The shard part of `src`: principals, roles, groups, permissions, grants.
pub fn shard_part(src: &PolicySource) -> PolicySource {
    PolicySource {
        version: 0,
        principals: src.principals.clone(),
        roles: src.roles.clone(),
        groups: src.groups.clone(),
        permissions: src.permissions.clone(),
        grants: src.grants.clone(),
        ..PolicySource::default()
    }
}

/// Splits a whole policy into its global part and one shard per tenant
/// (every tenant gets one, possibly empty). Objects keep their order. A
/// permission goes to the shard of every role that holds it; one no role
/// holds has no effect and is left out. A role of no tenant goes to every
/// shard.
pub fn split(src: &PolicySource) -> Result<(PolicySource, BTreeMap<Uuid, PolicySource>), String> {
    let mut shards: BTreeMap<Uuid, PolicySource> = src
        .tenants
        .iter()
        .map(|t| (t.id, PolicySource::default()))
        .collect();
    fn shard_of<'a>(
        shards: &'a mut BTreeMap<Uuid, PolicySource>,
        tenant: &Uuid,
        what: &str,
    ) -> Result<&'a mut PolicySource, String> {
        shards
            .get_mut(tenant)
            .ok_or_else(|| format!("{what} belongs to unknown tenant `{tenant}`"))
    }
    let mut principal_tenant: HashMap<Uuid, Uuid> = HashMap::with_capacity(src.principals.len());
    for p in &src.principals {
        principal_tenant.insert(p.id, p.tenant);
        shard_of(&mut shards, &p.tenant, &format!("principal `{}`", p.id))?
            .principals
            .push(p.clone());
    }
    let mut perm_tenants: HashMap<&str, Vec<Uuid>> = HashMap::new();
    let all: Vec<Uuid> = shards.keys().copied().collect();
    for r in &src.roles {
        // A role of no tenant (policy files only) is usable by every tenant:
        // every shard gets a copy (still of no tenant, so the compiler treats
        // it exactly as in the whole policy).
        let targets: Vec<Uuid> = match r.tenant {
            Some(t) => vec![t],
            None => all.clone(),
        };
        for tenant in targets {
            shard_of(&mut shards, &tenant, &format!("role `{}`", r.id))?
                .roles
                .push(r.clone());
            for p in &r.permissions {
                let ts = perm_tenants.entry(p.as_str()).or_default();
                if !ts.contains(&tenant) {
                    ts.push(tenant);
                }
            }
        }
    }
    for g in &src.groups {
        shard_of(&mut shards, &g.tenant, &format!("group `{}`", g.id))?
            .groups
            .push(g.clone());
    }
    for p in &src.permissions {
        for t in perm_tenants.get(p.id.as_str()).into_iter().flatten() {
            shard_of(&mut shards, t, &format!("permission `{}`", p.id))?
                .permissions
                .push(p.clone());
        }
    }
    for g in &src.grants {
        let t = principal_tenant.get(&g.principal).ok_or_else(|| {
            format!(
                "grant `{}` is for unknown principal `{}`",
                g.id, g.principal
            )
        })?;
        shard_of(&mut shards, t, &format!("grant `{}`", g.id))?
            .grants
            .push(g.clone());
    }
    Ok((global_part(src), shards))
}

/// The HTTP body of a bundle:
/// `{"signature":"<JWS>","manifest":<manifest bytes>,"parts":{"<sha256>":<part bytes>,…}}`.
/// `manifest` and every part must be JSON objects; they are written verbatim.
pub fn encode(signature: &str, manifest: &[u8], parts: &[(&str, &[u8])]) -> Vec<u8> {
    let len = manifest.len()
        + parts
            .iter()
            .map(|(h, b)| h.len() + b.len() + 4)
            .sum::<usize>();
    let mut out = Vec::with_capacity(len + signature.len() + 64);
    out.extend_from_slice(b"{\"signature\":");
    push_json_string(&mut out, signature);
    out.extend_from_slice(b",\"manifest\":");
    out.extend_from_slice(manifest);
    out.extend_from_slice(b",\"parts\":{");
    for (i, (hash, body)) in parts.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_json_string(&mut out, hash);
        out.push(b':');
        out.extend_from_slice(body);
    }
    out.extend_from_slice(b"}}");
    out
}

fn push_json_string(out: &mut Vec<u8>, s: &str) {
    // A `&str` always serializes; the fallback keeps the output valid JSON.
    if serde_json::to_writer(&mut *out, s).is_err() {
        out.extend_from_slice(b"\"\"");
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("snapshot bundle is malformed: {0}")]
    Malformed(String),
    #[error("snapshot bundle carries no signature")]
    Unsigned,
    #[error(transparent)]
    Signature(#[from] VerifyError),
    #[error("snapshot manifest says version {manifest} but is signed as version {signed}")]
    VersionMismatch { manifest: u64, signed: u64 },
    #[error("snapshot part `{0}` does not match its hash (tampered or truncated)")]
    PartMismatch(String),
    #[error("snapshot version {got} is not newer than the version held ({held})")]
    NotNewer { held: u64, got: u64 },
    #[error("snapshot part `{0}` is neither held nor in the bundle")]
    MissingPart(String),
    #[error("snapshot part `{part}` is not a valid policy part: {message}")]
    BadPart { part: String, message: String },
    #[error("snapshot does not compile: {0}")]
    Compile(String),
}

impl BundleError {
    /// A short label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            BundleError::Malformed(_) => "malformed",
            BundleError::Unsigned => "unsigned",
            BundleError::VersionMismatch { .. } => "version_mismatch",
            BundleError::Signature(VerifyError::PayloadMismatch) => "payload_mismatch",
            BundleError::Signature(VerifyError::UnknownKey(_)) => "unknown_key",
            BundleError::Signature(_) => "bad_signature",
            BundleError::PartMismatch(_) => "payload_mismatch",
            BundleError::NotNewer { .. } => "replay",
            BundleError::MissingPart(_) => "missing_part",
            BundleError::BadPart { .. } => "parse",
            BundleError::Compile(_) => "compile",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    signature: String,
    manifest: Box<RawValue>,
    parts: HashMap<String, Box<RawValue>>,
}

/// A bundle whose signature, manifest and part hashes have been checked.
pub struct Opened {
    pub claims: SnapshotClaims,
    pub manifest: Manifest,
    signature: String,
    manifest_bytes: Box<RawValue>,
    parts: HashMap<String, Box<RawValue>>,
}

impl Opened {
    pub fn signature(&self) -> &str {
        &self.signature
    }

    /// The signed manifest bytes, verbatim.
    pub fn manifest_bytes(&self) -> &[u8] {
        self.manifest_bytes.get().as_bytes()
    }

    /// The parts this bundle carries: (sha256, exact bytes).
    pub fn parts(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.parts
            .iter()
            .map(|(h, b)| (h.as_str(), b.get().as_bytes()))
    }
}

/// Verifies a bundle body: the signature over the manifest bytes, the
/// manifest's format and version, and the hash of every part it carries.
pub fn open(verifier: &SnapshotVerifier, body: &[u8]) -> Result<Opened, BundleError> {
    let wire: Wire =
        serde_json::from_slice(body).map_err(|e| BundleError::Malformed(e.to_string()))?;
    if wire.signature.is_empty() {
        return Err(BundleError::Unsigned);
    }
    let claims = verifier.verify(wire.manifest.get().as_bytes(), &wire.signature)?;
    let manifest: Manifest = serde_json::from_str(wire.manifest.get())
        .map_err(|e| BundleError::Malformed(format!("manifest: {e}")))?;
    if manifest.format != FORMAT {
        return Err(BundleError::Malformed(format!(
            "manifest format `{}` (expected `{FORMAT}`)",
            manifest.format
        )));
    }
    if manifest.version != claims.ver {
        return Err(BundleError::VersionMismatch {
            manifest: manifest.version,
            signed: claims.ver,
        });
    }
    for (hash, part) in &wire.parts {
        if payload_sha256(part.get().as_bytes()) != *hash {
            return Err(BundleError::PartMismatch(hash.clone()));
        }
    }
    Ok(Opened {
        claims,
        manifest,
        signature: wire.signature,
        manifest_bytes: wire.manifest,
        parts: wire.parts,
    })
}

/// A sharded policy as a gateway holds it between bundles.
#[derive(Debug, Clone)]
pub struct Held {
    pub manifest: Manifest,
    pub policy: Arc<Policy>,
}

/// What [`apply`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    pub global_changed: bool,
    /// Shards compiled from the bundle's parts.
    pub shards_compiled: usize,
    /// Shards carried over from the policy held.
    pub shards_kept: usize,
    pub shards_removed: usize,
}

fn part_source(opened: &Opened, hash: &str) -> Result<PolicySource, BundleError> {
    let raw = opened
        .parts
        .get(hash)
        .ok_or_else(|| BundleError::MissingPart(hash.to_owned()))?;
    serde_json::from_str(raw.get()).map_err(|e| BundleError::BadPart {
        part: hash.to_owned(),
        message: e.to_string(),
    })
}

fn compile_errors(what: &str, errs: &[CompileError]) -> String {
    let mut out = format!("{what}: ");
    for (i, e) in errs.iter().take(5).enumerate() {
        if i > 0 {
            out.push_str("; ");
        }
        out.push_str(&e.to_string());
    }
    if errs.len() > 5 {
        out.push_str(&format!(" (and {} more)", errs.len() - 5));
    }
    out
}

/// Builds the policy of `opened` on top of `held`: compiles the global part
/// and the shards whose hash changed, keeps the rest. All or nothing: any
/// error leaves `held` as it was (the caller keeps serving it).
pub fn apply(held: Option<&Held>, opened: &Opened) -> Result<(Held, Applied), BundleError> {
    let m = &opened.manifest;
    let version = m.version;
    if let Some(h) = held {
        if version <= h.manifest.version {
            return Err(BundleError::NotNewer {
                held: h.manifest.version,
                got: version,
            });
        }
    }
    let held_shards = held.and_then(|h| match &h.policy.layout {
        Layout::Sharded {
            shards,
            by_principal,
            by_key,
        } => Some((h, shards, by_principal, by_key)),
        Layout::Whole(_) => None,
    });
    let mut applied = Applied::default();

    let global = match held_shards {
        Some((h, ..)) if h.manifest.global.sha256 == m.global.sha256 => {
            Arc::clone(&h.policy.global)
        }
        _ => {
            applied.global_changed = true;
            let src = part_source(opened, &m.global.sha256)?;
            compile_global(&src)
                .map_err(|e| BundleError::Compile(compile_errors("global part", &e)))?
        }
    };

    let mut shards: Map<Uuid, Arc<Snapshot>> =
        Map::with_capacity_and_hasher(m.shards.len(), Default::default());
    let mut compiled: Vec<Uuid> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    for (tenant, r) in &m.shards {
        let kept = held_shards.and_then(|(h, old, ..)| {
            h.manifest
                .shards
                .get(tenant)
                .filter(|o| o.sha256 == r.sha256)
                .and_then(|_| old.get(tenant))
        });
        let snapshot = match kept {
            // The shard's only dependency on the global part is its tenant.
            Some(old) if global.tenant(tenant).is_some() => {
                applied.shards_kept += 1;
                Snapshot {
                    version,
                    global: Arc::clone(&global),
                    local: Arc::clone(&old.local),
                }
            }
            Some(_) => {
                errors.push(format!("shard of unknown tenant `{tenant}`"));
                continue;
            }
            None => {
                let src = part_source(opened, &r.sha256)?;
                match compile_shard(&global, *tenant, version, &src) {
                    Ok(s) => {
                        applied.shards_compiled += 1;
                        compiled.push(*tenant);
                        s
                    }
                    Err(e) => {
                        errors.push(compile_errors(&format!("shard `{tenant}`"), &e));
                        continue;
                    }
                }
            }
        };
        shards.insert(*tenant, Arc::new(snapshot));
    }

    // Principal and key indexes: copy the held ones, then replace the
    // entries of every shard that was recompiled or dropped.
    let (mut by_principal, mut by_key) = match held_shards {
        Some((_, old, old_principals, old_keys)) => {
            let mut bp = old_principals.clone();
            let mut bk = old_keys.clone();
            let recompiled: HashSet<&Uuid> = compiled.iter().collect();
            for (tenant, s) in old {
                let gone = !shards.contains_key(tenant);
                if gone {
                    applied.shards_removed += 1;
                }
                if gone || recompiled.contains(tenant) {
                    for p in s.local.principals.keys() {
                        bp.remove(p);
                    }
                    for k in s.local.api_keys.keys() {
                        bk.remove(k);
                    }
                }
            }
            (bp, bk)
        }
        None => (Map::default(), Map::default()),
    };
    for tenant in &compiled {
        let Some(s) = shards.get(tenant) else {
            continue;
        };
        for p in s.local.principals.keys() {
            if let Some(other) = by_principal.insert(*p, *tenant) {
                errors.push(format!(
                    "principal `{p}` is in the shards of both `{other}` and `{tenant}`"
                ));
            }
        }
        for k in s.local.api_keys.keys() {
            if let Some(other) = by_key.insert(k.clone(), *tenant) {
                errors.push(format!(
                    "API-key prefix `{k}` is in the shards of both `{other}` and `{tenant}`"
                ));
            }
        }
    }
    if !errors.is_empty() {
        errors.truncate(5);
        return Err(BundleError::Compile(errors.join("; ")));
    }
    let policy = Policy {
        version,
        global,
        layout: Layout::Sharded {
            shards,
            by_principal,
            by_key,
        },
    };
    Ok((
        Held {
            manifest: m.clone(),
            policy: Arc::new(policy),
        },
        applied,
    ))
}
