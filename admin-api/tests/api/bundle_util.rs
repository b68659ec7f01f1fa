//! A gateway-style consumer of sharded snapshot bundles, for tests: the
//! policy crate's `bundle::open` (signature over the exact manifest bytes,
//! every part against its hash) and `bundle::apply` (compiles the changed
//! parts, keeps the others), plus the bytes of the parts in force, so that a
//! `since=` response (only the parts changed after the version held)
//! rebuilds the whole policy, which tests compare with the database.

use bundle::Manifest;
use sentinel_policy::bundle;
use sentinel_policy::signed::SnapshotVerifier;
use sentinel_policy::source::PolicySource;
use std::collections::BTreeMap;
use uuid::Uuid;

/// A decoded bundle; every byte slice is verbatim from the body.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub signature: String,
    pub manifest_bytes: Vec<u8>,
    pub manifest: Manifest,
    pub parts: BTreeMap<String, Vec<u8>>,
}

/// End offset (exclusive) of the JSON value starting at `at` (after spaces).
fn value_end(buf: &[u8], at: usize) -> usize {
    let mut it =
        serde_json::Deserializer::from_slice(&buf[at..]).into_iter::<serde::de::IgnoredAny>();
    it.next().expect("a JSON value").expect("valid JSON");
    at + it.byte_offset()
}

fn skip_ws(buf: &[u8], mut at: usize) -> usize {
    while at < buf.len() && buf[at].is_ascii_whitespace() {
        at += 1;
    }
    at
}

fn expect(buf: &[u8], at: usize, what: &[u8]) -> usize {
    let at = skip_ws(buf, at);
    assert!(
        buf[at..].starts_with(what),
        "expected {:?} at {at}: {:?}",
        String::from_utf8_lossy(what),
        String::from_utf8_lossy(&buf[at..(at + 40).min(buf.len())])
    );
    at + what.len()
}

/// Splits a bundle body into its members (keeping their exact bytes).
pub fn decode(body: &[u8]) -> Bundle {
    let mut at = expect(body, 0, b"{");
    let mut signature = None;
    let mut manifest_bytes = None;
    let mut parts = BTreeMap::new();
    loop {
        at = skip_ws(body, at);
        let key_end = value_end(body, at);
        let key: String = serde_json::from_slice(&body[at..key_end]).unwrap();
        at = expect(body, key_end, b":");
        at = skip_ws(body, at);
        let end = value_end(body, at);
        match key.as_str() {
            "signature" => signature = Some(serde_json::from_slice(&body[at..end]).unwrap()),
            "manifest" => manifest_bytes = Some(body[at..end].to_vec()),
            "parts" => {
                let mut p = expect(body, at, b"{");
                loop {
                    p = skip_ws(body, p);
                    if body[p] == b'}' {
                        break;
                    }
                    let k_end = value_end(body, p);
                    let sha: String = serde_json::from_slice(&body[p..k_end]).unwrap();
                    p = skip_ws(body, expect(body, k_end, b":"));
                    let v_end = value_end(body, p);
                    assert!(
                        parts.insert(sha, body[p..v_end].to_vec()).is_none(),
                        "a part twice"
                    );
                    p = skip_ws(body, v_end);
                    if body[p] == b',' {
                        p += 1;
                    }
                }
            }
            other => panic!("unknown bundle member `{other}`"),
        }
        at = skip_ws(body, end);
        if body[at] == b',' {
            at += 1;
            continue;
        }
        expect(body, at, b"}");
        break;
    }
    let manifest_bytes: Vec<u8> = manifest_bytes.expect("a manifest");
    Bundle {
        signature: signature.expect("a signature"),
        manifest: serde_json::from_slice(&manifest_bytes).unwrap(),
        manifest_bytes,
        parts,
    }
}

/// Which part of a manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Part {
    Global,
    Shard(Uuid),
}

/// The parts whose content differs between two manifests (added, removed,
/// or another hash).
pub fn changed(a: &Manifest, b: &Manifest) -> Vec<Part> {
    let mut out = Vec::new();
    if a.global.sha256 != b.global.sha256 {
        out.push(Part::Global);
    }
    let tenants: std::collections::BTreeSet<&Uuid> =
        a.shards.keys().chain(b.shards.keys()).collect();
    for t in tenants {
        if a.shards.get(t).map(|r| &r.sha256) != b.shards.get(t).map(|r| &r.sha256) {
            out.push(Part::Shard(*t));
        }
    }
    out
}

/// What a gateway holds: the compiled policy in force and the bytes of
/// every part its manifest lists.
#[derive(Default)]
pub struct Consumer {
    pub version: u64,
    pub manifest: Option<Manifest>,
    pub held: Option<bundle::Held>,
    bytes: BTreeMap<String, Vec<u8>>,
}

impl Consumer {
    /// Opens, verifies and applies a bundle body; an error leaves the state
    /// as it was.
    pub fn apply(&mut self, v: &SnapshotVerifier, body: &[u8]) -> Result<bundle::Applied, String> {
        let opened = bundle::open(v, body).map_err(|e| e.to_string())?;
        // Every part listed: sent, or held from the manifest in force.
        let sent: BTreeMap<&str, &[u8]> = opened.parts().collect();
        let mut next = BTreeMap::new();
        for sha in opened.manifest.part_hashes() {
            let bytes = sent
                .get(sha)
                .map(|b| b.to_vec())
                .or_else(|| self.bytes.get(sha).cloned())
                .ok_or_else(|| format!("part {sha} neither sent nor held"))?;
            next.insert(sha.to_owned(), bytes);
        }
        let (held, applied) =
            bundle::apply(self.held.as_ref(), &opened).map_err(|e| e.to_string())?;
        self.bytes = next;
        self.version = opened.manifest.version;
        self.manifest = Some(opened.manifest.clone());
        self.held = Some(held);
        Ok(applied)
    }

    /// The whole policy the held parts make.
    pub fn source(&self) -> PolicySource {
        let m = self.manifest.as_ref().expect("a manifest");
        let part = |sha: &str| -> PolicySource {
            serde_json::from_slice(&self.bytes[sha]).expect("a part is a PolicySource")
        };
        let mut src = part(&m.global.sha256);
        for r in m.shards.values() {
            src.merge(part(&r.sha256));
        }
        src.version = self.version;
        src
    }
}

/// `src` with every list in a canonical order and version 0, to compare
/// policies regardless of how they were assembled.
pub fn normalized(mut src: PolicySource) -> PolicySource {
    src.version = 0;
    src.tenants.sort_by_key(|t| t.id);
    src.principals.sort_by_key(|p| p.id);
    src.roles.sort_by(|a, b| a.id.cmp(&b.id));
    src.groups.sort_by(|a, b| a.id.cmp(&b.id));
    src.permissions.sort_by(|a, b| a.id.cmp(&b.id));
    src.grants.sort_by(|a, b| a.id.cmp(&b.id));
    src.revoked_tokens.sort_by(|a, b| a.jti.cmp(&b.jti));
    src.field_definitions
        .sort_by(|a, b| (&a.entity, &a.field, a.tenant).cmp(&(&b.entity, &b.field, b.tenant)));
    src
}

/// The whole policy as the database holds it now (all tenants).
pub async fn database_policy(pool: &sqlx::PgPool) -> PolicySource {
    let mut tx = sentinel_admin::db::begin(pool, sentinel_admin::db::TenantCtx::All)
        .await
        .unwrap();
    let src = sentinel_admin::snapshot::load_source(&mut tx)
        .await
        .unwrap();
    // The expectation is the publisher's own loader: check it against the
    // tables read independently first.
    assert_eq!(facts_of(&src), facts_in_tables(&mut tx).await);
    tx.commit().await.unwrap();
    normalized(src)
}

/// The facts a policy decides with, as sorted text rows: tenants,
/// principals and their roles and groups, roles with parents and
/// permissions, groups with roles, revoked tokens, field definitions.
type Facts = Vec<std::collections::BTreeSet<String>>;

fn facts_of(src: &PolicySource) -> Facts {
    let set = |it: &mut dyn Iterator<Item = String>| it.collect::<std::collections::BTreeSet<_>>();
    vec![
        set(&mut src.tenants.iter().map(|t| {
            format!(
                "{} {} {}",
                t.id,
                t.code,
                format!("{:?}", t.status).to_lowercase()
            )
        })),
        set(&mut src
            .principals
            .iter()
            .map(|p| format!("{} {} {} {}", p.id, p.tenant, p.service_account, p.locked))),
        set(&mut src
            .principals
            .iter()
            .flat_map(|p| p.roles.iter().map(move |r| format!("{} {r}", p.id)))),
        set(&mut src
            .principals
            .iter()
            .flat_map(|p| p.groups.iter().map(move |g| format!("{} {g}", p.id)))),
        set(&mut src
            .roles
            .iter()
            .map(|r| format!("{} {} {:?} {:?}", r.id, r.name, r.tenant, r.parent))),
        set(&mut src
            .roles
            .iter()
            .flat_map(|r| r.permissions.iter().map(move |p| format!("{} {p}", r.id)))),
        set(&mut src.groups.iter().flat_map(|g| {
            g.roles
                .iter()
                .map(move |r| format!("{} {} {r}", g.id, g.tenant))
        })),
        set(&mut src
            .permissions
            .iter()
            .map(|p| format!("{} {} {}", p.id, p.resource_type, p.resource))),
        set(&mut src.revoked_tokens.iter().map(|r| r.jti.clone())),
        set(&mut src
            .field_definitions
            .iter()
            .map(|f| format!("{} {} {:?}", f.entity, f.field, f.tenant))),
    ]
}

/// [`facts_of`] read straight from the tables with SQL of its own.
async fn facts_in_tables(tx: &mut sentinel_admin::db::Tx) -> Facts {
    let queries = [
        "SELECT id || ' ' || code || ' ' || status FROM sentinel.tenants",
        "SELECT id || ' ' || tenant_id || ' ' || is_service_account || ' ' || is_locked FROM sentinel.users",
        "SELECT user_id || ' ' || role_id FROM sentinel.user_roles WHERE is_active
            AND coalesce(valid_from <= now(), true) AND coalesce(valid_until > now(), true)",
        "SELECT user_id || ' ' || group_id FROM sentinel.user_groups",
        "SELECT id || ' ' || name || ' Some(' || tenant_id || ') '
                || coalesce('Some(\"' || parent_role_id || '\")', 'None') FROM sentinel.roles",
        "SELECT rp.role_id || ' ' || rp.permission_id FROM sentinel.role_permissions rp
           JOIN sentinel.permissions p ON p.id = rp.permission_id WHERE p.is_active",
        "SELECT group_id || ' ' || tenant_id || ' ' || role_id FROM sentinel.group_roles",
        "SELECT id || ' ' || resource_type || ' ' || resource_pattern FROM sentinel.permissions WHERE is_active",
        "SELECT jti FROM sentinel.token_blacklist WHERE expires_at > now()",
        "SELECT entity_type || ' ' || field_name || ' ' || coalesce('Some(' || tenant_id || ')', 'None')
           FROM sentinel.field_definitions WHERE is_active",
    ];
    let mut out = Vec::new();
    for q in queries {
        let rows: Vec<String> = sqlx::query_scalar(q).fetch_all(&mut **tx).await.unwrap();
        out.push(rows.into_iter().collect());
    }
    out
}

/// The whole policy a bundle with every part holds (verified, compiled).
pub fn full_policy(v: &SnapshotVerifier, body: &[u8]) -> PolicySource {
    let mut c = Consumer::default();
    c.apply(v, body).unwrap();
    c.source()
}
