//! Sharded snapshots with deltas, admin side: a change re-publishes only the
//! parts it touched (one tenant's shard, or the global part), `since=` serves
//! exactly the parts changed after a version, a gateway-style consumer
//! rebuilds the whole policy from them, and publications never lose a change
//! or store anything that does not compile.

use crate::bundle_util::{changed, database_policy, decode, normalized, Bundle, Consumer, Part};
use crate::common::*;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use bundle::Manifest;
use http_body_util::BodyExt;
use sentinel_admin::seed::{self, TEST_001, TEST_002};
use sentinel_admin::snapshot::{self, Outcome, Published};
use sentinel_policy::bundle;
use sentinel_policy::signed::SnapshotVerifier;
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Duration;
use tower::ServiceExt;

const LATEST: &str = "/api/v1/snapshots/latest";

struct Pub {
    snapshot: Published,
    new_parts: Vec<String>,
    shards_built: usize,
}

fn published(o: Outcome) -> Pub {
    match o {
        Outcome::Published {
            snapshot,
            new_parts,
            shards_built,
            ..
        } => Pub {
            snapshot,
            new_parts: new_parts.into_iter().map(|(s, _)| s).collect(),
            shards_built,
        },
        other => panic!("not published: {other:?}"),
    }
}

/// Publishes (unforced: there must be a change).
async fn publish(t: &TestApp) -> Pub {
    published(
        snapshot::publish(&t.db.platform, None, false)
            .await
            .unwrap(),
    )
}

async fn publish_forced(t: &TestApp) -> Pub {
    published(snapshot::publish(&t.db.platform, None, true).await.unwrap())
}

/// Publishes and checks that exactly `expected` parts changed since `prev`:
/// their `since` is the new version, every other part is carried over as it
/// was (same hash, same `since`).
async fn step(t: &TestApp, prev: &Manifest, what: &str, expected: &[Part]) -> Manifest {
    let p = publish(t).await;
    let m = p.snapshot.manifest;
    assert_eq!(changed(prev, &m), expected, "{what}");
    let v = m.version;
    if expected.contains(&Part::Global) {
        assert_eq!(m.global.since, v, "{what}");
    } else {
        assert_eq!(m.global, prev.global, "{what}");
    }
    for (t, r) in &m.shards {
        if expected.contains(&Part::Shard(*t)) {
            assert_eq!(r.since, v, "{what}: shard {t}");
        } else {
            assert_eq!(Some(r), prev.shards.get(t), "{what}: shard {t}");
        }
    }
    let shards_changed = expected
        .iter()
        .filter(|p| matches!(p, Part::Shard(t) if m.shards.contains_key(t)))
        .count();
    assert_eq!(p.shards_built, shards_changed, "{what}: shards built");
    // Exactly the changed parts were new.
    assert_eq!(
        p.new_parts.len(),
        expected
            .iter()
            .filter(|p| match p {
                Part::Global => true,
                Part::Shard(t) => m.shards.contains_key(t),
            })
            .count(),
        "{what}: new parts"
    );
    m
}

async fn role_of(t: &TestApp, token: &str) -> String {
    let (s, roles) = t.get("/api/v1/roles", token).await;
    assert_eq!(s, StatusCode::OK, "{roles}");
    roles["items"][0]["id"].as_str().unwrap().to_owned()
}

async fn user_id(t: &TestApp, token: &str) -> String {
    let (_, me) = t.get("/api/v1/auth/me", token).await;
    me["user_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_change_in_one_tenant_republishes_only_its_shard() {
    let t = TestApp::new().await;
    let first = publish_forced(&t).await;
    let m1 = first.snapshot.manifest;
    // The first publication builds and stores every part, all `since` it.
    assert_eq!(m1.shards.len(), 5);
    assert_eq!(first.shards_built, 5);
    assert!(m1.shards.values().all(|r| r.since == m1.version));
    assert_eq!(m1.global.since, m1.version);
    assert!(m1.shards.contains_key(&TEST_001) && m1.shards.contains_key(&TEST_002));

    let admin = t.admin("TEST-001").await;
    let (s, p) = t
        .post(
            "/api/v1/permissions",
            &admin,
            json!({"name": "only-a", "resource_type": "vessel", "actions": ["read"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let m2 = step(&t, &m1, "permission in TEST-001", &[Part::Shard(TEST_001)]).await;
    assert_eq!(m2.shards[&TEST_002], m1.shards[&TEST_002]);
    // Nothing changed since: nothing to publish.
    assert!(matches!(
        snapshot::publish(&t.db.platform, None, false).await.unwrap(),
        Outcome::Unchanged(v) if v == m2.version
    ));
    // A forced publication (key rotation, --min-version) builds no shard.
    let forced = publish_forced(&t).await;
    assert_eq!(forced.shards_built, 0);
    assert!(forced.new_parts.is_empty());
    assert_eq!(forced.snapshot.manifest.shards, m2.shards);
    assert_eq!(forced.snapshot.manifest.global, m2.global);
}

#[tokio::test]
async fn each_kind_of_change_lands_in_its_part() {
    let t = TestApp::new().await;
    let mut m = publish_forced(&t).await.snapshot.manifest;
    let admin = t.admin("TEST-001").await;
    let bob = t.admin("TEST-002").await;
    let root = t.root().await;

    // User lock → the user's tenant.
    let olga = user_id(&t, &t.nordic(OLGA).await).await;
    let (s, b) = t
        .post(&format!("/api/v1/users/{olga}/lock"), &admin, json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    m = step(&t, &m, "lock", &[Part::Shard(TEST_001)]).await;

    // A login is no change (it writes last_login, login_count).
    t.nordic(AXEL).await;
    assert!(matches!(
        snapshot::publish(&t.db.platform, None, false)
            .await
            .unwrap(),
        Outcome::Unchanged(_)
    ));

    // API-key rotation → the service account's tenant.
    let (s, sas) = t.get("/api/v1/service-accounts", &admin).await;
    assert_eq!(s, StatusCode::OK, "{sas}");
    let sa = sas["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "fleet-sync")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, b) = t
        .post(
            &format!("/api/v1/service-accounts/{sa}/rotate-credentials"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    m = step(&t, &m, "key rotation", &[Part::Shard(TEST_001)]).await;

    // Role–permission edit in TEST-002 → TEST-002 only.
    let (s, p) = t
        .post(
            "/api/v1/permissions",
            &bob,
            json!({"name": "pacific-extra", "resource_type": "vessel", "actions": ["read"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    m = step(&t, &m, "permission in TEST-002", &[Part::Shard(TEST_002)]).await;
    let role = role_of(&t, &bob).await;
    let (s, b) = t
        .post(
            &format!("/api/v1/roles/{role}/permissions"),
            &bob,
            json!({"permission_ids": [p["id"]]}),
        )
        .await;
    assert!(s.is_success(), "{s} {b}");
    m = step(&t, &m, "role permission", &[Part::Shard(TEST_002)]).await;
    let (s, b) = t
        .delete(
            &format!(
                "/api/v1/roles/{role}/permissions/{}",
                p["id"].as_str().unwrap()
            ),
            &bob,
        )
        .await;
    assert!(s.is_success(), "{s} {b}");
    m = step(&t, &m, "role permission removed", &[Part::Shard(TEST_002)]).await;

    // Logout (token_blacklist) → the global part.
    let victor = t.nordic(VICTOR).await;
    let (s, b) = t
        .request("POST", "/api/v1/auth/logout", Some(&victor), None, &[])
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    m = step(&t, &m, "logout", &[Part::Global]).await;

    // Tenant suspended → the global part.
    let (s, b) = t
        .patch(
            &format!("/api/v1/tenants/{TEST_002}"),
            &root,
            json!({"status": "suspended"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    m = step(&t, &m, "suspend", &[Part::Global]).await;

    // Field definition → the global part.
    let (s, b) = t
        .post(
            "/api/v1/field-definitions",
            &admin,
            json!({"entity_type": "vessel", "field_name": "draft_m", "tier": "tenant_specific"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    m = step(&t, &m, "field definition", &[Part::Global]).await;

    // A new tenant: the global part and its (empty) shard; deleted: both go.
    let (s, b) = t
        .post(
            "/api/v1/tenants",
            &root,
            json!({"code": "DELTA-001", "name": "Delta"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let delta: uuid::Uuid = b["id"].as_str().unwrap().parse().unwrap();
    m = step(&t, &m, "new tenant", &[Part::Global, Part::Shard(delta)]).await;
    let (s, b) = t.delete(&format!("/api/v1/tenants/{delta}"), &root).await;
    assert!(s.is_success(), "{s} {b}");
    m = step(
        &t,
        &m,
        "tenant deleted",
        &[Part::Global, Part::Shard(delta)],
    )
    .await;
    assert!(!m.shards.contains_key(&delta));

    // After all that, a rebuild of every part yields the same manifest.
    let rebuilt = published(
        snapshot::publish_with(&t.db.platform, None, true, 0, true)
            .await
            .unwrap(),
    );
    assert_eq!(rebuilt.shards_built, m.shards.len());
    assert!(rebuilt.new_parts.is_empty());
    assert_eq!(rebuilt.snapshot.manifest.global, m.global);
    assert_eq!(rebuilt.snapshot.manifest.shards, m.shards);
}

/// Checks that the parts of `m` are the policy crate's `split` of the whole
/// policy. One difference, by design: a shard also keeps its tenant's
/// permissions no role holds (as a whole snapshot did, so that a broken one
/// is still refused), which `split` leaves out.
async fn assert_split_matches(t: &TestApp, m: &Manifest) {
    let mut tx = sentinel_admin::db::begin(&t.db.platform, sentinel_admin::db::TenantCtx::All)
        .await
        .unwrap();
    let whole = snapshot::load_source(&mut tx).await.unwrap();
    tx.commit().await.unwrap();
    let (global, shards) = bundle::split(&whole).unwrap();
    let sha = |src| sentinel_policy::signed::payload_sha256(&bundle::part_bytes(src));
    assert_eq!(sha(&bundle::global_part(&global)), m.global.sha256);
    assert_eq!(
        shards.keys().collect::<Vec<_>>(),
        m.shards.keys().collect::<Vec<_>>()
    );
    for (tenant, s) in &shards {
        let mut ours: sentinel_policy::PolicySource =
            serde_json::from_slice(&stored_part(t, &m.shards[tenant].sha256).await).unwrap();
        let held: BTreeSet<String> = ours
            .roles
            .iter()
            .flat_map(|r| r.permissions.iter().cloned())
            .collect();
        ours.permissions.retain(|p| held.contains(&p.id));
        assert_eq!(&ours, &bundle::shard_part(s), "{tenant}");
    }
}

async fn stored_part(t: &TestApp, sha: &str) -> Vec<u8> {
    sqlx::query_scalar("SELECT body FROM sentinel.policy_parts WHERE sha256 = $1")
        .bind(sha)
        .fetch_one(&t.db.owner)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_first_and_an_incremental_publication_agree() {
    let t = TestApp::new().await;
    let m1 = publish_forced(&t).await.snapshot.manifest;
    assert_split_matches(&t, &m1).await;
    // Changes in two tenants and the global part, published incrementally.
    let admin = t.admin("TEST-001").await;
    let bob = t.admin("TEST-002").await;
    for (tok, name) in [(&admin, "inc-a"), (&bob, "inc-b")] {
        let (s, p) = t
            .post(
                "/api/v1/permissions",
                tok,
                json!({"name": name, "resource_type": "vessel", "actions": ["read"]}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{p}");
    }
    let victor = t.nordic(VICTOR).await;
    t.request("POST", "/api/v1/auth/logout", Some(&victor), None, &[])
        .await;
    let inc = publish(&t).await;
    assert_eq!(inc.shards_built, 2);
    let m2 = inc.snapshot.manifest;
    assert_eq!(
        changed(&m1, &m2),
        vec![Part::Global, Part::Shard(TEST_001), Part::Shard(TEST_002)]
    );
    assert_split_matches(&t, &m2).await;

    // As after migration 0003: the latest row is a whole-policy row of 0002
    // (payload, no manifest). It is never served; the next publication
    // builds every part again, with a higher version, and the same hashes.
    sqlx::query(
        "UPDATE sentinel.policy_snapshots SET payload = manifest, manifest = NULL WHERE version = $1",
    )
    .bind(m2.version as i64)
    .execute(&t.db.owner)
    .await
    .unwrap();
    let g = seed::gateway_key(&t.db.owner, &test_config(), "gw", false, None)
        .await
        .unwrap();
    // (the gateway key is a change in the platform tenant's shard)
    let first = publish(&t).await;
    let m3 = first.snapshot.manifest;
    assert!(m3.version > m2.version);
    assert_eq!(first.shards_built, m3.shards.len());
    assert!(m3.shards.values().all(|r| r.since == m3.version));
    assert_eq!(m3.global.sha256, m2.global.sha256);
    assert_eq!(
        changed(&m2, &m3),
        vec![Part::Shard(sentinel_policy::PLATFORM_TENANT)]
    );
    let r = get(&t, &g.key, "", None).await;
    assert_eq!(r.0, StatusCode::OK);
    assert_eq!(decode(&r.1).manifest.version, m3.version);
}

/// GET /snapshots/latest with `query` (e.g. `?since=3`) and If-None-Match.
async fn get(t: &TestApp, key: &str, query: &str, held: Option<u64>) -> (StatusCode, Vec<u8>) {
    let mut b = Request::builder()
        .uri(format!("{LATEST}{query}"))
        .header("x-api-key", key);
    if let Some(v) = held {
        b = b.header("if-none-match", format!("\"{v}\""));
    }
    let resp = t
        .app
        .clone()
        .oneshot(b.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    if status == StatusCode::OK {
        assert_eq!(resp.headers()["content-type"], "application/json");
        assert_eq!(resp.headers()["cache-control"], "no-store");
    }
    (
        status,
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
}

async fn verifier(t: &TestApp) -> SnapshotVerifier {
    let mut conn = t.db.platform.acquire().await.unwrap();
    let jwks = sentinel_admin::snapshot_keys::jwks(&mut conn)
        .await
        .unwrap();
    let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks).unwrap();
    let mut v = SnapshotVerifier::new();
    for k in &jwks.keys {
        v.add_jwk(k).unwrap();
    }
    v
}

fn shas(b: &Bundle) -> BTreeSet<String> {
    b.parts.keys().cloned().collect()
}

#[tokio::test]
async fn since_serves_exactly_the_changed_parts_and_a_consumer_rebuilds_the_policy() {
    let t = TestApp::new().await;
    let g = seed::gateway_key(&t.db.owner, &test_config(), "gw", false, None)
        .await
        .unwrap();
    sentinel_admin::snapshot_keys::ensure_key(&t.db.owner)
        .await
        .unwrap();
    let v = verifier(&t).await;
    let m1 = publish_forced(&t).await.snapshot.manifest;

    // A gateway without a snapshot: every part (distinct hashes: empty shards share one).
    let mut gw = Consumer::default();
    let (s, body) = get(&t, &g.key, "", None).await;
    assert_eq!(s, StatusCode::OK);
    let b = decode(&body);
    let all: BTreeSet<String> = std::iter::once(&m1.global)
        .chain(m1.shards.values())
        .map(|r| r.sha256.clone())
        .collect();
    assert_eq!(shas(&b), all);
    gw.apply(&v, &body).unwrap();
    assert_eq!(gw.source().version, m1.version);
    assert_eq!(
        normalized(gw.source()),
        database_policy(&t.db.platform).await
    );
    // since=0 and a since above the latest are "everything" too.
    for q in [
        "?since=0".to_owned(),
        format!("?since={}", m1.version + 100),
    ] {
        let (s, body) = get(&t, &g.key, &q, None).await;
        assert_eq!(s, StatusCode::OK, "{q}");
        assert_eq!(shas(&decode(&body)), all, "{q}");
    }

    // Two versions: a lock in TEST-001, then a logout (global).
    let admin = t.admin("TEST-001").await;
    let olga = user_id(&t, &t.nordic(OLGA).await).await;
    let (s, b2) = t
        .post(&format!("/api/v1/users/{olga}/lock"), &admin, json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b2}");
    let m2 = step(&t, &m1, "lock", &[Part::Shard(TEST_001)]).await;
    let victor = t.nordic(VICTOR).await;
    t.request("POST", "/api/v1/auth/logout", Some(&victor), None, &[])
        .await;
    let m3 = step(&t, &m2, "logout", &[Part::Global]).await;

    // A gateway at v2 gets the global part only; at v1 also TEST-001's shard.
    let (s, body) = get(
        &t,
        &g.key,
        &format!("?since={}", m2.version),
        Some(m2.version),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        shas(&decode(&body)),
        BTreeSet::from([m3.global.sha256.clone()])
    );
    let (s, body) = get(
        &t,
        &g.key,
        &format!("?since={}", m1.version),
        Some(m1.version),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let b = decode(&body);
    assert_eq!(
        shas(&b),
        BTreeSet::from([
            m3.global.sha256.clone(),
            m3.shards[&TEST_001].sha256.clone()
        ])
    );
    let applied = gw.apply(&v, &body).unwrap();
    assert!(applied.global_changed);
    assert_eq!(applied.shards_compiled, 1);
    assert_eq!(applied.shards_kept, m3.shards.len() - 1);
    assert_eq!(gw.version, m3.version);
    let policy = normalized(gw.source());
    assert_eq!(policy, database_policy(&t.db.platform).await);
    assert!(policy
        .principals
        .iter()
        .any(|p| p.id.to_string() == olga && p.locked));
    // Held already: 304; since = latest: the manifest and no part.
    let (s, body) = get(
        &t,
        &g.key,
        &format!("?since={}", m3.version),
        Some(m3.version),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
    let (s, body) = get(&t, &g.key, &format!("?since={}", m3.version), None).await;
    assert_eq!(s, StatusCode::OK);
    let b = decode(&body);
    assert!(b.parts.is_empty());
    assert_eq!(b.manifest, m3);
    // A consumer missing a part it is not sent refuses the bundle and keeps its state.
    let mut fresh = Consumer::default();
    assert!(fresh.apply(&v, &body).is_err());
    assert_eq!(fresh.version, 0);
    // Bad input: the SPEC error body.
    for q in ["?since=abc", "?since=-1", "?since=1.5"] {
        let (s, body) = t
            .request(
                "GET",
                &format!("{LATEST}{q}"),
                None,
                None,
                &[("x-api-key", &g.key)],
            )
            .await;
        let details = assert_error(
            s,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        );
        assert!(details.get("since").is_some(), "{q}: {details}");
    }
}

#[tokio::test]
async fn an_invalid_change_is_refused_and_nothing_new_is_served() {
    let t = TestApp::new().await;
    let g = seed::gateway_key(&t.db.owner, &test_config(), "gw", false, None)
        .await
        .unwrap();
    let m1 = publish_forced(&t).await.snapshot.manifest;
    let count = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM sentinel.policy_parts")
            .fetch_one(&t.db.owner)
            .await
            .unwrap()
    };
    let parts = count().await;
    // Written behind the API's back (the API refuses it), in TEST-002.
    sqlx::query(
        "INSERT INTO sentinel.permissions (tenant_id, name, resource_type, actions, conditions)
         VALUES ($1, 'broken', 'vessel', '{read}',
                 '[{\"type\": \"client_ip\", \"cidrs\": [\"not-a-cidr\"]}]')",
    )
    .bind(TEST_002)
    .execute(&t.db.owner)
    .await
    .unwrap();
    match snapshot::publish(&t.db.platform, None, false)
        .await
        .unwrap()
    {
        Outcome::Invalid { errors, .. } => {
            assert!(
                errors.iter().any(|e| e.contains(&TEST_002.to_string())),
                "{errors:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(count().await, parts, "nothing stored");
    let latest: i64 = sqlx::query_scalar("SELECT max(version) FROM sentinel.policy_snapshots")
        .fetch_one(&t.db.owner)
        .await
        .unwrap();
    assert_eq!(latest as u64, m1.version);
    let (s, body) = get(&t, &g.key, "", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(decode(&body).manifest, m1);
    // Forced (the CLI): still refused.
    assert!(matches!(
        snapshot::publish(&t.db.platform, None, true).await.unwrap(),
        Outcome::Invalid { .. }
    ));
    // Fixed: the next version publishes; the shard is what it was, so it
    // keeps its hash and `since` (gateways fetch nothing but the manifest).
    sqlx::query("DELETE FROM sentinel.permissions WHERE name = 'broken'")
        .execute(&t.db.owner)
        .await
        .unwrap();
    let fixed = publish(&t).await;
    assert!(fixed.snapshot.version > m1.version);
    assert_eq!(fixed.snapshot.manifest.shards, m1.shards);
    assert!(fixed.new_parts.is_empty());
    assert_eq!(fixed.shards_built, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_committed_during_a_publication_is_not_lost() {
    let t = TestApp::new().await;
    let m1 = publish_forced(&t).await.snapshot.manifest;
    let admin = t.admin("TEST-001").await;
    let bob = t.admin("TEST-002").await;
    let (s, p) = t
        .post(
            "/api/v1/permissions",
            &admin,
            json!({"name": "before", "resource_type": "vessel", "actions": ["read"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");

    // Hold the publication after it took its snapshot: it blocks storing
    // its new part while this lock is held.
    let mut blocker = t.db.owner.begin().await.unwrap();
    sqlx::query("LOCK TABLE sentinel.policy_parts IN EXCLUSIVE MODE")
        .execute(&mut *blocker)
        .await
        .unwrap();
    let pool = t.db.platform.clone();
    let running = tokio::spawn(async move { snapshot::publish(&pool, None, false).await });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let waiting: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity
                             WHERE datname = current_database() AND wait_event_type = 'Lock'
                               AND query LIKE 'INSERT INTO sentinel.policy_parts%')",
        )
        .fetch_one(&t.db.owner)
        .await
        .unwrap();
        if waiting {
            break;
        }
        assert!(!running.is_finished(), "the publication did not block");
        assert!(std::time::Instant::now() < deadline, "never blocked");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Committed while the publication runs: in TEST-002.
    let (s, late) = t
        .post(
            "/api/v1/permissions",
            &bob,
            json!({"name": "during", "resource_type": "vessel", "actions": ["read"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{late}");
    blocker.commit().await.unwrap();
    let m2 = published(running.await.unwrap().unwrap()).snapshot.manifest;
    // That publication did not see it ...
    assert_eq!(changed(&m1, &m2), vec![Part::Shard(TEST_001)]);
    // ... the next one does.
    let m3 = step(&t, &m2, "the late write", &[Part::Shard(TEST_002)]).await;
    let body: Vec<u8> =
        sqlx::query_scalar("SELECT body FROM sentinel.policy_parts WHERE sha256 = $1")
            .bind(&m3.shards[&TEST_002].sha256)
            .fetch_one(&t.db.owner)
            .await
            .unwrap();
    let shard: sentinel_policy::PolicySource = serde_json::from_slice(&body).unwrap();
    let late_id = late["id"].as_str().unwrap();
    assert!(shard.permissions.iter().any(|p| p.id == late_id));
}

#[tokio::test]
async fn pruning_keeps_the_parts_kept_manifests_list() {
    let t = TestApp::new().await;
    let m1 = publish_forced(&t).await.snapshot.manifest;
    let admin = t.admin("TEST-001").await;
    let mut m = m1.clone();
    let mut old_a = vec![m1.shards[&TEST_001].sha256.clone()];
    for i in 0..3 {
        let (s, p) = t
            .post(
                "/api/v1/permissions",
                &admin,
                json!({"name": format!("prune-{i}"), "resource_type": "vessel", "actions": ["read"]}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{p}");
        m = step(&t, &m, "prune step", &[Part::Shard(TEST_001)]).await;
        old_a.push(m.shards[&TEST_001].sha256.clone());
    }
    let stored = || async {
        sqlx::query_scalar::<_, String>("SELECT sha256 FROM sentinel.policy_parts")
            .fetch_all(&t.db.owner)
            .await
            .unwrap()
            .into_iter()
            .collect::<BTreeSet<String>>()
    };
    let listed = |m: &Manifest| -> BTreeSet<String> {
        std::iter::once(&m.global)
            .chain(m.shards.values())
            .map(|r| r.sha256.clone())
            .collect()
    };
    // Keep 2 versions: the last two of TEST-001's shards, everything else
    // (still listed with `since` = the first version).
    let gone = snapshot::prune(&t.db.platform, 2).await.unwrap();
    assert_eq!(gone, 2);
    let kept = stored().await;
    assert!(kept.contains(&old_a[2]) && kept.contains(&old_a[3]));
    assert!(!kept.contains(&old_a[0]) && !kept.contains(&old_a[1]));
    assert!(listed(&m).is_subset(&kept));
    assert_eq!(m.shards[&TEST_002], m1.shards[&TEST_002]);
    // Keep 1: exactly the latest manifest's parts; dirty rows it absorbed are gone.
    snapshot::prune(&t.db.platform, 1).await.unwrap();
    assert_eq!(stored().await, listed(&m));
    let dirty: i64 = sqlx::query_scalar("SELECT count(*) FROM sentinel.policy_dirty")
        .fetch_one(&t.db.owner)
        .await
        .unwrap();
    assert_eq!(dirty, 0);
    // The API role may neither delete parts nor write dirty rows itself.
    assert!(sqlx::query("DELETE FROM sentinel.policy_parts")
        .execute(&t.db.api)
        .await
        .is_err());
    assert!(
        sqlx::query("INSERT INTO sentinel.policy_dirty VALUES (1, 'global')")
            .execute(&t.db.api)
            .await
            .is_err()
    );
    // And the next change still publishes and serves.
    let (s, p) = t
        .post(
            "/api/v1/permissions",
            &admin,
            json!({"name": "after-prune", "resource_type": "vessel", "actions": ["read"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    step(&t, &m, "after prune", &[Part::Shard(TEST_001)]).await;
}

#[tokio::test]
async fn the_part_cache_holds_only_the_latest_manifest() {
    let t = TestApp::new().await;
    let g = seed::gateway_key(&t.db.owner, &test_config(), "gw", false, None)
        .await
        .unwrap();
    let m1 = publish_forced(&t).await.snapshot.manifest;
    let (s, body) = get(&t, &g.key, "", None).await;
    assert_eq!(s, StatusCode::OK);
    let full: usize = decode(&body).parts.values().map(Vec::len).sum();
    assert_eq!(t.state.live.cached_part_bytes(), full);
    let admin = t.admin("TEST-001").await;
    let (s, p) = t
        .post(
            "/api/v1/permissions",
            &admin,
            json!({"name": "cache", "resource_type": "vessel", "actions": ["read"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let m2 = step(&t, &m1, "cache", &[Part::Shard(TEST_001)]).await;
    let (s, body) = get(&t, &g.key, &format!("?since={}", m1.version), None).await;
    assert_eq!(s, StatusCode::OK);
    let b = decode(&body);
    assert_eq!(b.manifest, m2);
    // TEST-001's old shard left the cache with its manifest.
    let (s, body) = get(&t, &g.key, "", None).await;
    assert_eq!(s, StatusCode::OK);
    let full: usize = decode(&body).parts.values().map(Vec::len).sum();
    assert_eq!(t.state.live.cached_part_bytes(), full);
}
