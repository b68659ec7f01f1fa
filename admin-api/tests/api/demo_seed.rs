//! `sentinel-admin seed-demo` writes the gateway's demo policy
//! (`config/policy/demo.toml`): the same roles, permissions, principals and
//! field definitions, compared by names since database ids are UUIDs.

use crate::common::{test_config, TestApp, DEMO_PASSWORD};
use sentinel_admin::db::{self, TenantCtx};
use sentinel_admin::seed::{self, TEST_001, TEST_001_SUB, TEST_002, TEST_003};
use sentinel_admin::snapshot::load_source;
use sentinel_policy::source::{PermissionSource, PolicySource};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use uuid::Uuid;

/// Roles only the admin API seeds (no gateway counterpart).
const ADMIN_ONLY_ROLES: &[&str] = &["auditor"];
/// Principals only the admin API seeds (no gateway counterpart).
const ADMIN_ONLY_PRINCIPALS: &[&str] = &[
    "Olga Operator",
    "Axel Auditor",
    "Sara (Nordic Tankers admin)",
    "pacific-sync",
];

fn demo_policy() -> PolicySource {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/policy/demo.toml");
    toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A permission without its id, comparable across the two sources.
fn content(p: &PermissionSource) -> String {
    let mut p = p.clone();
    p.id = String::new();
    serde_json::to_string(&p).unwrap()
}

/// role name -> (parent name, sorted permission contents) of the roles in `roles`.
type Roles = BTreeMap<String, (Option<String>, Vec<String>)>;

fn roles_by_name(src: &PolicySource, tenant: Option<Uuid>) -> Roles {
    let perms: HashMap<&str, &PermissionSource> =
        src.permissions.iter().map(|p| (p.id.as_str(), p)).collect();
    let names: HashMap<&str, &str> = src
        .roles
        .iter()
        .map(|r| (r.id.as_str(), r.name.as_str()))
        .collect();
    src.roles
        .iter()
        .filter(|r| r.tenant == tenant)
        .map(|r| {
            let mut contents: Vec<String> = r
                .permissions
                .iter()
                .map(|p| content(perms[p.as_str()]))
                .collect();
            contents.sort();
            let parent = r.parent.as_ref().map(|p| names[p.as_str()].to_owned());
            (r.name.clone(), (parent, contents))
        })
        .collect()
}

async fn seeded_source(app: &TestApp) -> PolicySource {
    let mut tx = db::begin(&app.db.owner, TenantCtx::All).await.unwrap();
    let src = load_source(&mut tx).await.unwrap();
    tx.rollback().await.unwrap();
    src
}

#[tokio::test]
async fn seed_demo_writes_the_demo_policy() {
    let app = TestApp::new().await;
    let demo = demo_policy();
    let db = seeded_source(&app).await;

    // Roles, their parents and their permissions, in every demo tenant.
    let expected = roles_by_name(&demo, None);
    for tenant in [TEST_001, TEST_001_SUB, TEST_002, TEST_003] {
        let mut seeded = roles_by_name(&db, Some(tenant));
        for r in ADMIN_ONLY_ROLES {
            assert!(seeded.remove(*r).is_some(), "{tenant}: no role {r}");
        }
        assert_eq!(seeded, expected, "roles of {tenant}");
    }

    // Principals (by display name; the snapshot names humans by email) and their role names.
    let display: HashMap<Uuid, String> = sqlx::query_as("SELECT id, name FROM sentinel.users")
        .fetch_all(&app.db.owner)
        .await
        .unwrap()
        .into_iter()
        .collect();
    let role_names: HashMap<&str, &str> = db
        .roles
        .iter()
        .chain(&demo.roles)
        .map(|r| (r.id.as_str(), r.name.as_str()))
        .collect();
    let principals = |src: &PolicySource, name: &dyn Fn(Uuid, &str) -> String| {
        src.principals
            .iter()
            .filter(|p| p.tenant != sentinel_policy::PLATFORM_TENANT)
            .map(|p| {
                let roles: BTreeSet<&str> =
                    p.roles.iter().map(|r| role_names[r.as_str()]).collect();
                (name(p.id, &p.name), (p.tenant, roles))
            })
            .collect::<BTreeMap<_, _>>()
    };
    let expected = principals(&demo, &|_, n| n.to_owned());
    let mut seeded = principals(&db, &|id, _| display[&id].clone());
    for p in ADMIN_ONLY_PRINCIPALS {
        assert!(seeded.remove(*p).is_some(), "no principal {p}");
    }
    assert_eq!(seeded, expected);

    // Field definitions: tier, tenant and masking.
    let fields = |src: &PolicySource| {
        src.field_definitions
            .iter()
            .map(|f| {
                let def = (f.tier, f.tenant, f.mask, f.mask_keep);
                (f.entity.clone(), f.field.clone(), format!("{def:?}"))
            })
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(fields(&db), fields(&demo));
}

#[tokio::test]
async fn seed_demo_twice_changes_nothing() {
    let app = TestApp::new().await;
    let first = seeded_source(&app).await;
    let report = seed::seed_demo(&app.db.owner, &test_config(), DEMO_PASSWORD)
        .await
        .unwrap();
    assert!(report.users.is_empty() && report.api_keys.is_empty());
    let second = seeded_source(&app).await;
    assert_eq!(
        serde_json::to_value(&second).unwrap(),
        serde_json::to_value(&first).unwrap()
    );
}

/// Every part of the latest publication, merged into one source.
async fn published_policy(app: &TestApp) -> PolicySource {
    let snapshot = match sentinel_admin::snapshot::publish(&app.db.owner, None, true)
        .await
        .unwrap()
    {
        sentinel_admin::snapshot::Outcome::Published { snapshot, .. } => snapshot,
        other => panic!("not published: {other:?}"),
    };
    let hashes: Vec<&str> = snapshot.parts_since(0);
    let parts = sentinel_admin::snapshot::load_parts(&app.db.owner, &hashes)
        .await
        .unwrap();
    assert_eq!(parts.len(), hashes.len());
    let mut whole = PolicySource::default();
    for (_, body) in parts {
        whole.merge(serde_json::from_slice(&body).unwrap());
    }
    whole
}

/// (principal, resource type, resource, action, target tenant, client IP)
/// → (allowed, reason) over a grid of requests of the demo's principals.
fn decisions(
    snap: &sentinel_policy::Snapshot,
    principals: &[(Uuid, Uuid)],
) -> BTreeMap<String, String> {
    use sentinel_policy::eval::{AccessRequest, RequestContext};
    let ips: [Option<std::net::IpAddr>; 2] = [None, Some("10.1.2.3".parse().unwrap())];
    let mut out = BTreeMap::new();
    for (id, own) in principals {
        let Some(principal) = snap.principal(id) else {
            out.insert(format!("{id}"), "no principal".to_owned());
            continue;
        };
        for rt in ["vessel", "voyage", "port_call"] {
            for res in [
                None,
                Some("v-a1"),
                Some("v-a2"),
                Some("voy-a2"),
                Some("pc-a1"),
            ] {
                for action in ["read", "create", "update", "delete"] {
                    for target in [*own, TEST_001_SUB, TEST_002] {
                        for ip in ips {
                            let d = snap.authorize(&AccessRequest {
                                principal,
                                resource_type: rt,
                                resource_id: res,
                                action,
                                target_tenant: target,
                                approval_chain: None,
                                context: RequestContext {
                                    now: 1_800_000_000,
                                    client_ip: ip,
                                    method: "GET",
                                    mfa: false,
                                    risk_score: None,
                                },
                            });
                            out.insert(
                                format!("{id} {rt} {res:?} {action} {target} {ip:?}"),
                                format!("{} {:?}", d.allowed, d.reason),
                            );
                        }
                    }
                }
            }
        }
    }
    out
}

/// The demo sync as a round trip: the demo policy file imported by
/// `seed-demo`, published by the admin API and read back from the stored
/// parts decides every request of the grid as the file itself does (grants
/// left aside: they are not imported).
#[tokio::test]
async fn import_publish_decides_as_the_demo_policy() {
    let app = TestApp::new().await;
    let mut file = demo_policy();
    file.grants.clear();
    let principals: Vec<(Uuid, Uuid)> = file.principals.iter().map(|p| (p.id, p.tenant)).collect();
    let want = decisions(&sentinel_policy::compile(&file).unwrap(), &principals);
    let got = decisions(
        &sentinel_policy::compile(&published_policy(&app).await).unwrap(),
        &principals,
    );
    // The grid means something: allows, denies and several reasons.
    let allowed = want.values().filter(|v| v.starts_with("true")).count();
    assert!(
        allowed > 100 && allowed < want.len() - 100,
        "{allowed} of {}",
        want.len()
    );
    let reasons: BTreeSet<&String> = want.values().collect();
    assert!(reasons.len() >= 4, "{reasons:?}");
    let differ: Vec<_> = want
        .iter()
        .filter(|(k, v)| got.get(*k) != Some(v))
        .take(10)
        .map(|(k, v)| format!("{k}: file {v}, published {:?}", got.get(k)))
        .collect();
    assert!(
        differ.is_empty(),
        "{} decisions differ, e.g. {differ:#?}",
        differ.len()
    );
}
