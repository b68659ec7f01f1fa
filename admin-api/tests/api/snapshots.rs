//! Live policy, admin side: every committed change publishes a new signed
//! snapshot version; `GET /api/v1/snapshots/latest` serves it (ETag, 304,
//! long-poll) only to platform service accounts holding `snapshot:read`.
//! (Which parts a change re-publishes, `since=`, storage: `deltas.rs`.)

use crate::binary::{admin_cmd, run, urls};
use crate::bundle_util::{decode, full_policy};
use crate::common::*;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use sentinel_admin::seed;
use sentinel_policy::signed::SnapshotVerifier;
use sentinel_policy::source::PolicySource;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::process::Command;
use tower::ServiceExt;

const LATEST: &str = "/api/v1/snapshots/latest";

struct Resp {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    fn version(&self) -> u64 {
        self.headers["x-sentinel-snapshot-version"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    }
}

async fn raw(t: &TestApp, path: &str, headers: &[(&str, &str)]) -> Resp {
    let mut b = Request::builder().method("GET").uri(path);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let resp = t
        .app
        .clone()
        .oneshot(b.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Resp {
        status,
        headers,
        body,
    }
}

fn apikey(key: &str) -> String {
    format!("ApiKey {key}")
}

/// A test app whose publisher and listener run, with a gateway key.
async fn live_app() -> (TestApp, String) {
    live_app_with(test_config()).await
}

async fn live_app_with(cfg: sentinel_admin::config::Config) -> (TestApp, String) {
    let t = TestApp::with_config(cfg).await;
    // The key first, so that the first published version already holds it.
    let g = seed::gateway_key(&t.db.owner, &test_config(), "gw-test", false, None)
        .await
        .unwrap();
    sentinel_admin::live::spawn(&t.state);
    (t, g.key)
}

/// Long-polls until a version newer than `after` is served (panics after `within`).
async fn next_after(t: &TestApp, key: &str, after: Option<u64>, within: Duration) -> Resp {
    let auth = apikey(key);
    let deadline = Instant::now() + within;
    loop {
        let etag = after.map(|v| format!("\"{v}\""));
        let mut h = vec![("authorization", auth.as_str())];
        if let Some(e) = &etag {
            h.push(("if-none-match", e.as_str()));
        }
        let r = raw(t, &format!("{LATEST}?wait=5"), &h).await;
        if r.status == StatusCode::OK && after.is_none_or(|a| r.version() > a) {
            return r;
        }
        assert!(
            r.status == StatusCode::NOT_MODIFIED || r.status == StatusCode::SERVICE_UNAVAILABLE,
            "unexpected {}: {:?}",
            r.status,
            r.json()
        );
        assert!(Instant::now() < deadline, "no snapshot after {after:?}");
        if r.status == StatusCode::SERVICE_UNAVAILABLE {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn verifier(t: &TestApp) -> SnapshotVerifier {
    let r = raw(t, "/api/v1/snapshots/jwks", &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_slice(&r.body).unwrap();
    assert!(!jwks.keys.is_empty());
    let mut v = SnapshotVerifier::new();
    for k in &jwks.keys {
        v.add_jwk(k).unwrap();
    }
    v
}

/// Checks the signature, every part's hash and the version of a bundle with
/// every part; returns the whole policy.
fn verified(v: &SnapshotVerifier, r: &Resp) -> PolicySource {
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(
        r.headers["etag"].to_str().unwrap(),
        format!("\"{}\"", r.version())
    );
    assert!(!r.headers.contains_key("x-sentinel-snapshot-signature"));
    let src = full_policy(v, &r.body);
    assert_eq!(src.version, r.version());
    src
}

async fn revision(t: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT revision FROM sentinel.policy_revision")
        .fetch_one(&t.db.owner)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_publishes_a_signed_version_served_with_etag_and_304() {
    let (t, key) = live_app().await;
    let v = verifier(&t).await;
    let first = next_after(&t, &key, None, Duration::from_secs(20)).await;
    let src = verified(&v, &first);
    assert!(src.principals.iter().any(|p| p.name == ALICE));
    let v1 = first.version();

    // ETag: the same version answers 304 at once (wait 0) and after a short wait.
    let etag = format!("\"{v1}\"");
    let auth = apikey(&key);
    let r = raw(
        &t,
        LATEST,
        &[("authorization", &auth), ("if-none-match", &etag)],
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    assert_eq!(r.headers["etag"].to_str().unwrap(), etag);
    assert!(r.body.is_empty());
    let r = raw(
        &t,
        &format!("{LATEST}?wait=1"),
        &[("x-api-key", &key), ("if-none-match", &etag)],
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    // Another (older) ETag gets the full snapshot.
    let r = raw(
        &t,
        LATEST,
        &[("x-api-key", &key), ("if-none-match", "\"0\"")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, first.body, "the same version is the same bytes");
    let (s, body) = t
        .request(
            "GET",
            &format!("{LATEST}?wait=soon"),
            None,
            None,
            &[("x-api-key", &key)],
        )
        .await;
    assert_error(
        s,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    );

    // A permission written through the API is in the next version.
    let admin = t.admin("TEST-001").await;
    let (s, p) = t
        .post(
            "/api/v1/permissions",
            &admin,
            json!({"name": "live-grant", "resource_type": "vessel", "resource_pattern": "v-*",
                   "actions": ["read"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let id = p["id"].as_str().unwrap().to_owned();
    let next = next_after(&t, &key, Some(v1), Duration::from_secs(20)).await;
    assert!(next.version() > v1);
    let src = verified(&v, &next);
    assert!(src.permissions.iter().any(|p| p.id == id));

    // The manifest and the parts as stored are exactly the bytes served.
    let b = decode(&next.body);
    let (stored, sha, sig): (Vec<u8>, String, String) = sqlx::query_as(
        "SELECT manifest, sha256, signature FROM sentinel.policy_snapshots WHERE version = $1",
    )
    .bind(next.version() as i64)
    .fetch_one(&t.db.owner)
    .await
    .unwrap();
    assert_eq!(stored, b.manifest_bytes);
    assert_eq!(sig, b.signature);
    assert_eq!(
        sha,
        sentinel_policy::signed::payload_sha256(&b.manifest_bytes)
    );
    for (sha, bytes) in &b.parts {
        let body: Vec<u8> =
            sqlx::query_scalar("SELECT body FROM sentinel.policy_parts WHERE sha256 = $1")
                .bind(sha)
                .fetch_one(&t.db.owner)
                .await
                .unwrap();
        assert_eq!(&body, bytes);
    }

    // A tampered manifest does not verify.
    let mut tampered = b.manifest_bytes.clone();
    tampered.push(b' ');
    assert!(v.verify(&tampered, &b.signature).is_err());

    // Metrics name the version.
    let r = raw(&t, "/metrics", &[]).await;
    let text = String::from_utf8(r.body).unwrap();
    assert!(
        text.contains("sentinel_admin_snapshot_publish_total"),
        "{text}"
    );
    assert!(text.contains("sentinel_admin_snapshot_payload_bytes"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_coalesces_and_versions_strictly_increase() {
    let (t, key) = live_app().await;
    let first = next_after(&t, &key, None, Duration::from_secs(20)).await;
    let v0 = first.version();
    let admin = t.admin("TEST-001").await;
    const N: usize = 12;
    let mut ids = Vec::new();
    for i in 0..N {
        let (s, p) = t
            .post(
                "/api/v1/permissions",
                &admin,
                json!({"name": format!("burst-{i}"), "resource_type": "vessel",
                       "resource_pattern": format!("b{i}-*"), "actions": ["read"]}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{p}");
        ids.push(p["id"].as_str().unwrap().to_owned());
    }
    let v = verifier(&t).await;
    let mut seen = vec![v0];
    let deadline = Instant::now() + Duration::from_secs(20);
    let last = loop {
        let r = next_after(&t, &key, seen.last().copied(), Duration::from_secs(20)).await;
        seen.push(r.version());
        let src = verified(&v, &r);
        if ids
            .iter()
            .all(|id| src.permissions.iter().any(|p| &p.id == id))
        {
            break r;
        }
        assert!(Instant::now() < deadline, "burst never fully published");
    };
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    let published = last.version() - v0;
    println!("{N} writes published as {published} version(s): {seen:?}");
    assert!(
        (published as usize) < N,
        "{N} writes made {published} versions"
    );
    // Versions in the table are strictly increasing and unique by construction (PK).
    let versions: Vec<i64> = sqlx::query_scalar(
        "SELECT version FROM sentinel.policy_snapshots ORDER BY created_at, version",
    )
    .fetch_all(&t.db.owner)
    .await
    .unwrap();
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_returns_soon_after_a_change() {
    let (t, key) = live_app().await;
    let first = next_after(&t, &key, None, Duration::from_secs(20)).await;
    let v1 = first.version();
    let app = t.app.clone();
    let etag = format!("\"{v1}\"");
    let k = key.clone();
    let poll = tokio::spawn(async move {
        let req = Request::builder()
            .uri(format!("{LATEST}?wait=30"))
            .header("x-api-key", k)
            .header("if-none-match", etag)
            .body(Body::empty())
            .unwrap();
        let resp = app.oneshot(req).await.unwrap();
        let at = Instant::now();
        let status = resp.status();
        let ver = resp
            .headers()
            .get("x-sentinel-snapshot-version")
            .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
        (status, ver, at)
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !poll.is_finished(),
        "the long-poll answered before any change"
    );
    let admin = t.admin("TEST-001").await;
    let (s, p) = t
        .post(
            "/api/v1/permissions",
            &admin,
            json!({"name": "poll-me", "resource_type": "vessel", "actions": ["read"]}),
        )
        .await;
    let returned = Instant::now();
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let (status, ver, at) = poll.await.unwrap();
    let took = at.saturating_duration_since(returned);
    println!("long-poll answered {took:?} after the write returned");
    assert_eq!(status, StatusCode::OK);
    assert!(ver.unwrap() > v1);
    // Generous bound (a lone change is published at once, see `live::Pacer`).
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_platform_snapshot_readers_may_read() {
    let (t, key) = live_app().await;
    next_after(&t, &key, None, Duration::from_secs(20)).await;

    // No credentials, garbage, an unknown key.
    let r = raw(&t, LATEST, &[]).await;
    assert_error(
        r.status,
        &r.json(),
        StatusCode::UNAUTHORIZED,
        "AUTH_REQUIRED",
    );
    for h in [
        ("authorization", "ApiKey nonsense".to_owned()),
        ("authorization", "Basic Zm9vOmJhcg==".to_owned()),
        (
            "x-api-key",
            "sk_AAAAAAAA_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned(),
        ),
        ("authorization", "Bearer not-a-jwt".to_owned()),
    ] {
        let r = raw(&t, LATEST, &[(h.0, &h.1)]).await;
        assert_error(
            r.status,
            &r.json(),
            StatusCode::UNAUTHORIZED,
            "AUTH_INVALID",
        );
    }
    // A wrong secret with a real prefix.
    let prefix = &key[..12];
    let forged = format!("{prefix}{}", "x".repeat(key.len() - 12));
    let r = raw(&t, LATEST, &[("x-api-key", &forged)]).await;
    assert_error(
        r.status,
        &r.json(),
        StatusCode::UNAUTHORIZED,
        "AUTH_INVALID",
    );

    // A tenant admin, a tenant user and a tenant service account: 403.
    for tok in [t.admin("TEST-001").await, t.nordic(VICTOR).await] {
        let r = raw(&t, LATEST, &[("authorization", &format!("Bearer {tok}"))]).await;
        assert_error(
            r.status,
            &r.json(),
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
        );
    }
    let r = raw(&t, LATEST, &[("x-api-key", seed::DEMO_API_KEY)]).await;
    assert_error(
        r.status,
        &r.json(),
        StatusCode::FORBIDDEN,
        "PERMISSION_DENIED",
    );

    // The platform superadmin may (bearer).
    let root = t.root().await;
    let r = raw(&t, LATEST, &[("authorization", &format!("Bearer {root}"))]).await;
    assert_eq!(r.status, StatusCode::OK);

    // A platform service account without the scope: 403.
    let (s, sa) = t
        .post(
            "/api/v1/service-accounts",
            &root,
            json!({"name": "no-scope"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{sa}");
    let plain = sa["api_key"].as_str().unwrap();
    let r = raw(&t, LATEST, &[("authorization", &apikey(plain))]).await;
    assert_error(
        r.status,
        &r.json(),
        StatusCode::FORBIDDEN,
        "PERMISSION_DENIED",
    );

    // A tenant admin cannot give a tenant role the scope (nor can anyone in a tenant).
    let admin = t.admin("TEST-001").await;
    let (s, body) = t
        .post(
            "/api/v1/roles",
            &admin,
            json!({"name": "sneaky", "scopes": ["snapshot:read"]}),
        )
        .await;
    assert!(
        s == StatusCode::UNPROCESSABLE_ENTITY || s == StatusCode::FORBIDDEN,
        "{s} {body}"
    );
    let (s, body) = t
        .request(
            "POST",
            "/api/v1/roles",
            Some(&root),
            Some(json!({"name": "sneaky", "scopes": ["snapshot:read"]})),
            &[("x-tenant-id", "11111111-1111-1111-1111-111111111111")],
        )
        .await;
    assert_error(
        s,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    );

    // A rotated gateway key: the old one is refused, the new one works.
    let g = seed::gateway_key(&t.db.owner, &test_config(), "gw-test", true, None)
        .await
        .unwrap();
    let r = raw(&t, LATEST, &[("x-api-key", &key)]).await;
    assert_error(
        r.status,
        &r.json(),
        StatusCode::UNAUTHORIZED,
        "AUTH_INVALID",
    );
    let r = raw(&t, LATEST, &[("x-api-key", &g.key)]).await;
    assert_eq!(r.status, StatusCode::OK);

    // A deactivated or expired gateway account: 401.
    sqlx::query(
        "UPDATE sentinel.users SET api_key_expires_at = now() - interval '1 second' WHERE id = $1",
    )
    .bind(g.user_id)
    .execute(&t.db.owner)
    .await
    .unwrap();
    let r = raw(&t, LATEST, &[("x-api-key", &g.key)]).await;
    assert_error(
        r.status,
        &r.json(),
        StatusCode::UNAUTHORIZED,
        "TOKEN_EXPIRED",
    );
    sqlx::query(
        "UPDATE sentinel.users SET api_key_expires_at = NULL, is_active = false WHERE id = $1",
    )
    .bind(g.user_id)
    .execute(&t.db.owner)
    .await
    .unwrap();
    let r = raw(&t, LATEST, &[("x-api-key", &g.key)]).await;
    assert_error(
        r.status,
        &r.json(),
        StatusCode::UNAUTHORIZED,
        "AUTH_INVALID",
    );

    // The JWKS is public and holds only public keys.
    let r = raw(&t, "/api/v1/snapshots/jwks", &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    let text = String::from_utf8(r.body).unwrap();
    assert!(!text.contains("\"d\""), "{text}");
}

#[tokio::test]
async fn no_snapshot_yet_is_503() {
    // The publisher is not running: nothing is published.
    let t = TestApp::new().await;
    let g = seed::gateway_key(&t.db.owner, &test_config(), "gw", false, None)
        .await
        .unwrap();
    let r = raw(&t, LATEST, &[("x-api-key", &g.key)]).await;
    assert_error(
        r.status,
        &r.json(),
        StatusCode::SERVICE_UNAVAILABLE,
        "POLICY_UNAVAILABLE",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_logout_and_key_rotation_each_publish() {
    let (t, key) = live_app().await;
    let v = verifier(&t).await;
    let mut cur = next_after(&t, &key, None, Duration::from_secs(20)).await;
    let admin = t.admin("TEST-001").await;

    // Lock.
    let olga_id = {
        let src = verified(&v, &cur);
        let p = src.principals.iter().find(|p| p.name == OLGA).unwrap();
        assert!(!p.locked);
        p.id
    };
    let (s, b) = t
        .post(&format!("/api/v1/users/{olga_id}/lock"), &admin, json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    cur = next_after(&t, &key, Some(cur.version()), Duration::from_secs(20)).await;
    let src = verified(&v, &cur);
    assert!(
        src.principals
            .iter()
            .find(|p| p.id == olga_id)
            .unwrap()
            .locked
    );

    // Logout: the token's jti is revoked in the next version.
    let victor = t.nordic(VICTOR).await;
    let jti = {
        let claims = victor.split('.').nth(1).unwrap();
        use base64::Engine;
        let c: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(claims)
                .unwrap(),
        )
        .unwrap();
        c["jti"].as_str().unwrap().to_owned()
    };
    let (s, b) = t
        .request("POST", "/api/v1/auth/logout", Some(&victor), None, &[])
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    cur = next_after(&t, &key, Some(cur.version()), Duration::from_secs(20)).await;
    let src = verified(&v, &cur);
    assert!(src.revoked_tokens.iter().any(|r| r.jti == jti));

    // API key rotation: the new prefix is in, the old one out.
    let src = verified(&v, &cur);
    let sa = src
        .principals
        .iter()
        .find(|p| p.name == "fleet-sync")
        .unwrap();
    let old_prefix = sa.api_keys[0].prefix.clone();
    let (s, b) = t
        .post(
            &format!("/api/v1/service-accounts/{}/rotate-credentials", sa.id),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let new_prefix = b["api_key_prefix"].as_str().unwrap().to_owned();
    cur = next_after(&t, &key, Some(cur.version()), Duration::from_secs(20)).await;
    let src = verified(&v, &cur);
    let keys: Vec<&str> = src
        .principals
        .iter()
        .flat_map(|p| p.api_keys.iter().map(|k| k.prefix.as_str()))
        .collect();
    assert!(keys.contains(&new_prefix.as_str()));
    assert!(!keys.contains(&old_prefix.as_str()));

    // A login is not a policy change (it writes last_login, login_count).
    let before = revision(&t).await;
    t.nordic(AXEL).await;
    let (s, _) = t.login_full(AXEL, "Wrong-Passw0rd!", "TEST-001").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(revision(&t).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uncompilable_policy_is_not_published_and_counted() {
    let (t, key) = live_app().await;
    let cur = next_after(&t, &key, None, Duration::from_secs(20)).await;
    // Written behind the API's back (the API refuses it): an invalid CIDR.
    sqlx::query(
        "INSERT INTO sentinel.permissions (tenant_id, name, resource_type, actions, conditions)
         VALUES ('11111111-1111-1111-1111-111111111111', 'broken', 'vessel', '{read}',
                 '[{\"type\": \"client_ip\", \"cidrs\": [\"not-a-cidr\"]}]')",
    )
    .execute(&t.db.owner)
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = raw(&t, "/metrics", &[]).await;
        let text = String::from_utf8(r.body).unwrap();
        if text.contains("sentinel_admin_snapshot_publish_failures_total{reason=\"compile\"} 1") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no compile failure counted: {text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The last good version keeps being served.
    let r = raw(&t, LATEST, &[("x-api-key", &key)]).await;
    assert_eq!(r.version(), cur.version());
    assert_eq!(r.body, cur.body);
    // Fixed: the next version is published.
    sqlx::query("DELETE FROM sentinel.permissions WHERE name = 'broken'")
        .execute(&t.db.owner)
        .await
        .unwrap();
    let next = next_after(&t, &key, Some(cur.version()), Duration::from_secs(20)).await;
    assert!(next.version() > cur.version());
}

#[tokio::test]
async fn concurrent_publishers_and_retention() {
    let t = TestApp::new().await;
    let pool = t.db.platform.clone();
    // Several publishers at once (admin replicas): distinct, gap-free versions.
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let p = pool.clone();
        tasks.push(tokio::spawn(async move {
            sentinel_admin::snapshot::publish(&p, None, true).await
        }));
    }
    let mut versions = Vec::new();
    for task in tasks {
        match task.await.unwrap().unwrap() {
            sentinel_admin::snapshot::Outcome::Published { snapshot, .. } => {
                versions.push(snapshot.version)
            }
            other => panic!("{other:?}"),
        }
    }
    versions.sort();
    assert_eq!(versions, vec![1, 2, 3, 4]);
    // Without a change, an unforced publish does nothing.
    assert!(matches!(
        sentinel_admin::snapshot::publish(&pool, None, false)
            .await
            .unwrap(),
        sentinel_admin::snapshot::Outcome::Unchanged(4)
    ));
    // The API role may not delete snapshots itself, only prune old ones.
    assert!(sqlx::query("DELETE FROM sentinel.policy_snapshots")
        .execute(&pool)
        .await
        .is_err());
    assert!(
        sqlx::query("UPDATE sentinel.policy_revision SET revision = 0")
            .execute(&pool)
            .await
            .is_err()
    );
    let gone = sentinel_admin::snapshot::prune(&pool, 2).await.unwrap();
    assert_eq!(gone, 2);
    let left: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM sentinel.policy_snapshots ORDER BY version")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(left, vec![3, 4]);
}

#[tokio::test]
async fn the_cli_sets_up_a_gateway_and_exports_the_jwks() {
    let db = TestDb::new().await;
    let (owner, api) = urls(&db.name);
    let (ok, out) = run(&owner, &["migrate"], &[]).await;
    assert!(ok, "{out}");
    // Without a platform tenant there is nobody to hold the key.
    let (ok, out) = run(&owner, &["gateway-key", "create", "--name", "gw-1"], &[]).await;
    assert!(!ok && out.contains("bootstrap"), "{out}");
    let (ok, out) = run(
        &owner,
        &["bootstrap", "--email", ROOT_EMAIL],
        &[("SENTINEL_BOOTSTRAP_PASSWORD", ROOT_PASSWORD)],
    )
    .await;
    assert!(ok, "{out}");
    let (ok, out) = run(&owner, &["seed-demo"], &[]).await;
    assert!(ok, "{out}");
    let out = admin_cmd(&owner)
        .args(["gateway-key", "create", "--name", "gw-1"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(key.starts_with("sk_") && !key.contains('\n'), "{key}");
    let (ok, out) = run(&owner, &["gateway-key", "create", "--name", "gw-1"], &[]).await;
    assert!(!ok && out.contains("already exists"), "{out}");

    let jwks_of = |out: &std::process::Output| -> jsonwebtoken::jwk::JwkSet {
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let out = admin_cmd(&owner)
        .arg("snapshot-jwks")
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    let first = jwks_of(&out);
    assert_eq!(first.keys.len(), 1);

    // Serve: the publisher publishes on start; the key reads; the CLI's JWKS verifies.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let listen = format!("127.0.0.1:{port}");
    let mut child = admin_cmd(&api)
        .args(["serve", "--listen", &listen])
        .spawn()
        .unwrap();
    let base = format!("http://{listen}");
    let c = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let resp = loop {
        if let Ok(r) = c
            .get(format!("{base}{LATEST}"))
            .header("authorization", format!("ApiKey {key}"))
            .send()
            .await
        {
            if r.status() == 200 {
                break r;
            }
        }
        assert!(Instant::now() < deadline, "no snapshot served");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let b = decode(&resp.bytes().await.unwrap());
    let mut v = SnapshotVerifier::new();
    for k in &first.keys {
        v.add_jwk(k).unwrap();
    }
    let claims = v.verify(&b.manifest_bytes, &b.signature).unwrap();

    // Stage + rotate: the JWKS holds current and previous; a new version is
    // signed by the new key (the rotation counts as a change).
    // After a database restore, versions can jump past what gateways hold.
    let (ok, out) = run(&owner, &["publish", "--min-version", "1000"], &[]).await;
    assert!(ok && out.contains("version 1000"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let claims = loop {
        let r = c
            .get(format!("{base}{LATEST}?wait=5"))
            .header("x-api-key", &key)
            .header("if-none-match", format!("\"{}\"", claims.ver))
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            let b = decode(&r.bytes().await.unwrap());
            let c = v.verify(&b.manifest_bytes, &b.signature).unwrap();
            assert_eq!(c.ver, 1000);
            break c;
        }
        assert!(Instant::now() < deadline, "version 1000 not served");
    };
    let (ok, out) = run(&owner, &["stage-snapshot-key"], &[]).await;
    assert!(ok, "{out}");
    let out = admin_cmd(&owner)
        .arg("snapshot-jwks")
        .output()
        .await
        .unwrap();
    let staged = jwks_of(&out);
    assert_eq!(staged.keys.len(), 2, "current and next");
    let (ok, out) = run(&owner, &["rotate-snapshot-key"], &[]).await;
    assert!(ok, "{out}");
    let mut v2 = SnapshotVerifier::new();
    for k in &staged.keys {
        v2.add_jwk(k).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = c
            .get(format!("{base}{LATEST}?wait=5"))
            .header("x-api-key", &key)
            .header("if-none-match", format!("\"{}\"", claims.ver))
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            let b = decode(&r.bytes().await.unwrap());
            let c2 = v2.verify(&b.manifest_bytes, &b.signature).unwrap();
            assert!(c2.ver > claims.ver);
            // Signed with the new key: the old verifier (first JWKS) does not know it.
            assert!(v.verify(&b.manifest_bytes, &b.signature).is_err());
            break;
        }
        assert!(Instant::now() < deadline, "no version after rotation");
    }
    let jwks: Value = c
        .get(format!("{base}/api/v1/snapshots/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(jwks["keys"].as_array().unwrap().len() >= 2, "{jwks}");
    // The access-token JWKS holds none of the snapshot keys.
    let tok_jwks: Value = c
        .get(format!("{base}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for k in jwks["keys"].as_array().unwrap() {
        assert!(!tok_jwks.to_string().contains(k["kid"].as_str().unwrap()));
    }

    // SIGTERM with a long-poll pending: it answers 304 and the server exits
    // at once instead of holding shutdown for the poll's 60 s.
    let latest = c
        .get(format!("{base}{LATEST}"))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    let etag = latest.headers()["etag"].to_str().unwrap().to_owned();
    let poll = tokio::spawn({
        let c = c.clone();
        let url = format!("{base}{LATEST}?wait=60");
        let key = key.clone();
        async move {
            c.get(url)
                .header("x-api-key", key)
                .header("if-none-match", etag)
                .send()
                .await
                .map(|r| r.status().as_u16())
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = child.id().unwrap();
    let term = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await
        .unwrap();
    assert!(term.success());
    let exited = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("serve did not stop on SIGTERM")
        .unwrap();
    assert!(exited.success(), "{exited:?}");
    let status = tokio::time::timeout(Duration::from_secs(5), poll)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.unwrap(), 304);
}

#[tokio::test]
async fn writes_that_would_not_compile_are_refused_and_change_nothing() {
    let t = TestApp::new().await;
    let admin = t.admin("TEST-001").await;
    let (s, a) = t
        .post("/api/v1/roles", &admin, json!({"name": "cyc-a"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{a}");
    let a = a["id"].as_str().unwrap().to_owned();
    let (s, b) = t
        .post(
            "/api/v1/roles",
            &admin,
            json!({"name": "cyc-b", "parent_role_id": a}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let b = b["id"].as_str().unwrap().to_owned();
    let bob = t.admin("TEST-002").await;
    let (s, other) = t
        .post("/api/v1/roles", &bob, json!({"name": "elsewhere"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{other}");
    let other = other["id"].as_str().unwrap().to_owned();
    let (_, me) = t.get("/api/v1/auth/me", &t.nordic(VICTOR).await).await;
    let victor = me["user_id"].as_str().unwrap().to_owned();

    let perm = |extra: Value| {
        let mut p = json!({"name": "bad", "resource_type": "vessel", "actions": ["read"]});
        for (k, v) in extra.as_object().unwrap() {
            p[k] = v.clone();
        }
        p
    };
    // (method, path, body, field the error names)
    let cases: Vec<(&str, String, Value, &str)> = vec![
        (
            "POST",
            "/api/v1/permissions".into(),
            perm(json!({"conditions": [{"type": "client_ip", "cidrs": ["not-a-cidr"]}]})),
            "conditions",
        ),
        (
            "POST",
            "/api/v1/permissions".into(),
            perm(json!({"conditions": [{"type": "time", "hours_utc": [9, 9]}]})),
            "conditions",
        ),
        (
            "POST",
            "/api/v1/permissions".into(),
            perm(json!({"actions": ["read everything"]})),
            "actions",
        ),
        (
            "POST",
            "/api/v1/permissions".into(),
            perm(json!({"resource_pattern": "a*b"})),
            "resource_pattern",
        ),
        (
            "POST",
            "/api/v1/permissions".into(),
            perm(json!({"tenant_scope": "any"})),
            "tenant_scope",
        ),
        (
            "POST",
            "/api/v1/permissions".into(),
            perm(
                json!({"field_rules": {"core": {"x": "read"}, "platform_dynamic": {"x": "hidden"}}}),
            ),
            "field_rules",
        ),
        (
            "PATCH",
            format!("/api/v1/roles/{a}"),
            json!({"parent_role_id": b}),
            "parent_role_id",
        ),
        (
            "POST",
            "/api/v1/roles".into(),
            json!({"name": "x", "parent_role_id": other}),
            "parent_role_id",
        ),
        (
            "POST",
            "/api/v1/roles".into(),
            json!({"name": "x", "scopes": ["snapshot:read"]}),
            "scopes",
        ),
        (
            "POST",
            format!("/api/v1/users/{victor}/roles"),
            json!({"role_id": other}),
            "role_id",
        ),
    ];
    for (method, path, body, field) in cases {
        let before = revision(&t).await;
        let (s, v) = t
            .request(method, &path, Some(&admin), Some(body.clone()), &[])
            .await;
        let details = assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
        assert!(
            details.get(field).is_some(),
            "{method} {path} {body}: {details}"
        );
        assert_eq!(
            revision(&t).await,
            before,
            "{method} {path} changed the policy"
        );
    }
    // And what is stored still compiles.
    assert!(matches!(
        sentinel_admin::snapshot::publish(&t.db.platform, None, true)
            .await
            .unwrap(),
        sentinel_admin::snapshot::Outcome::Published { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_window_opening_publishes_without_a_write() {
    let cfg = sentinel_admin::config::Config {
        snapshot_tick_seconds: 1,
        ..test_config()
    };
    let (t, key) = live_app_with(cfg).await;
    let v = verifier(&t).await;
    let admin = t.admin("TEST-001").await;
    let (s, role) = t
        .post("/api/v1/roles", &admin, json!({"name": "night-shift"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{role}");
    let role = role["id"].as_str().unwrap().to_owned();
    let (_, me) = t.get("/api/v1/auth/me", &t.nordic(VICTOR).await).await;
    let victor: uuid::Uuid = me["user_id"].as_str().unwrap().parse().unwrap();
    let from = chrono::Utc::now() + chrono::Duration::seconds(3);
    let (s, b) = t
        .post(
            &format!("/api/v1/users/{victor}/roles"),
            &admin,
            json!({"role_id": role, "valid_from": from}),
        )
        .await;
    assert!(s.is_success(), "{s} {b}");
    let has_role = |src: &PolicySource| {
        src.principals
            .iter()
            .find(|p| p.id == victor)
            .unwrap()
            .roles
            .contains(&role)
    };
    let mut cur = next_after(&t, &key, None, Duration::from_secs(20)).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let src = verified(&v, &cur);
        if has_role(&src) {
            assert!(
                chrono::Utc::now() >= from,
                "role published before its window"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the window opened but nothing was published"
        );
        cur = next_after(&t, &key, Some(cur.version()), Duration::from_secs(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_long_polls_answer_on_shutdown() {
    let (t, key) = live_app().await;
    let first = next_after(&t, &key, None, Duration::from_secs(20)).await;
    let app = t.app.clone();
    let etag = format!("\"{}\"", first.version());
    let poll = tokio::spawn(async move {
        let req = Request::builder()
            .uri(format!("{LATEST}?wait=60"))
            .header("x-api-key", key)
            .header("if-none-match", etag)
            .body(Body::empty())
            .unwrap();
        app.oneshot(req).await.unwrap().status()
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!poll.is_finished());
    let closed = Instant::now();
    t.state.live.close();
    let status = tokio::time::timeout(Duration::from_secs(10), poll)
        .await
        .expect("the long-poll did not answer on shutdown")
        .unwrap();
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(closed.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn without_a_listener_requests_read_the_database() {
    // No publisher or listener runs (as when LISTEN is down): the endpoint
    // still serves the newest stored version and long-polls poll for it.
    let t = TestApp::new().await;
    let g = seed::gateway_key(&t.db.owner, &test_config(), "gw", false, None)
        .await
        .unwrap();
    let publish = || async {
        match sentinel_admin::snapshot::publish(&t.db.owner, None, true)
            .await
            .unwrap()
        {
            sentinel_admin::snapshot::Outcome::Published { snapshot, .. } => snapshot.version,
            other => panic!("{other:?}"),
        }
    };
    let v1 = publish().await;
    let r = raw(&t, LATEST, &[("x-api-key", &g.key)]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.version(), v1);
    let app = t.app.clone();
    let key = g.key.clone();
    let poll = tokio::spawn(async move {
        let req = Request::builder()
            .uri(format!("{LATEST}?wait=10"))
            .header("x-api-key", key)
            .header("if-none-match", format!("\"{v1}\""))
            .body(Body::empty())
            .unwrap();
        let resp = app.oneshot(req).await.unwrap();
        (
            resp.status(),
            resp.headers()
                .get("x-sentinel-snapshot-version")
                .map(|v| v.to_str().unwrap().to_owned()),
        )
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let v2 = publish().await;
    let (status, ver) = poll.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ver.unwrap(), v2.to_string());
}
