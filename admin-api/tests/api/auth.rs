//! Login, lockout, refresh rotation and reuse detection, logout, API keys, JWKS.

use crate::common::*;
use axum::http::StatusCode;
use serde_json::json;

#[tokio::test]
async fn login_me_and_jwks() {
    let t = TestApp::new().await;
    let (s, v) = t.login_full(ROOT_EMAIL, ROOT_PASSWORD, "PLATFORM").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["token_type"], "bearer");
    assert_eq!(v["expires_in"], 900);
    assert!(v["refresh_token"].as_str().unwrap().starts_with("rt_"));
    let token = v["access_token"].as_str().unwrap();
    let (s, me) = t.get("/api/v1/auth/me", token).await;
    assert_eq!(s, StatusCode::OK, "{me}");
    assert_eq!(me["platform_admin"], true);
    assert_eq!(me["tenant_id"], "00000000-0000-0000-0000-000000000000");

    let (s, jwks) = t
        .request("GET", "/.well-known/jwks.json", None, None, &[])
        .await;
    assert_eq!(s, StatusCode::OK);
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["alg"], "ES256");
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.kid.as_deref(), keys[0]["kid"].as_str());
}

#[tokio::test]
async fn the_discovery_document_names_the_issuer_and_its_jwks() {
    // The default issuer (`sentinel-admin`) is not a URL: nothing to discover.
    let t = TestApp::new().await;
    let (s, v) = t
        .request("GET", "/.well-known/openid-configuration", None, None, &[])
        .await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("SENTINEL_ISSUER"));

    let t = TestApp::with_config(sentinel_admin::config::Config {
        issuer: "https://admin.example.test/".into(),
        ..test_config()
    })
    .await;
    let (s, doc) = t
        .request("GET", "/.well-known/openid-configuration", None, None, &[])
        .await;
    assert_eq!(s, StatusCode::OK, "{doc}");
    // `issuer` is exactly the tokens' `iss`, as a gateway checks it.
    assert_eq!(doc["issuer"], "https://admin.example.test/");
    assert_eq!(
        doc["jwks_uri"],
        "https://admin.example.test/.well-known/jwks.json"
    );
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        json!(["ES256"])
    );
    let (_, v) = t.login_full(ROOT_EMAIL, ROOT_PASSWORD, "PLATFORM").await;
    let token = v["access_token"].as_str().unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            token.split('.').nth(1).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["iss"], doc["issuer"]);
}

#[tokio::test]
async fn login_validation_and_bad_credentials() {
    let t = TestApp::new().await;
    let (s, v) = t
        .request(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"email": "", "password": ""})),
            &[],
        )
        .await;
    let d = assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    assert!(
        d["email"].is_array() && d["password"].is_array() && d["tenant_code"].is_array(),
        "{d}"
    );
    let (s, v) = t
        .request(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"password": "x"})),
            &[],
        )
        .await;
    let d = assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    assert!(d["email"].is_array(), "{d}");
    let (s, v) = t.login_full(ROOT_EMAIL, "Wrong-Passw0rd", "PLATFORM").await;
    assert_error(s, &v, StatusCode::UNAUTHORIZED, "AUTH_INVALID");
    let (s, v) = t
        .login_full("nobody@example.com", ROOT_PASSWORD, "PLATFORM")
        .await;
    assert_error(s, &v, StatusCode::UNAUTHORIZED, "AUTH_INVALID");
    let (s, v) = t.login_full(ROOT_EMAIL, ROOT_PASSWORD, "NO-SUCH").await;
    assert_error(s, &v, StatusCode::UNAUTHORIZED, "AUTH_INVALID");
    // The right password in the wrong tenant is no login.
    let (s, v) = t.login_full(ALICE, DEMO_PASSWORD, "TEST-002").await;
    assert_error(s, &v, StatusCode::UNAUTHORIZED, "AUTH_INVALID");
    // No token, garbage token.
    let (s, v) = t.request("GET", "/api/v1/users", None, None, &[]).await;
    assert_error(s, &v, StatusCode::UNAUTHORIZED, "AUTH_REQUIRED");
    let (s, v) = t.get("/api/v1/users", "not-a-jwt").await;
    assert_error(s, &v, StatusCode::UNAUTHORIZED, "AUTH_INVALID");
}

#[tokio::test]
async fn lockout_after_failures_and_unlock() {
    let t = TestApp::new().await;
    let email = VICTOR;
    for _ in 0..3 {
        let (s, v) = t.login_full(email, "Wrong-Passw0rd1", "TEST-001").await;
        assert_error(s, &v, StatusCode::UNAUTHORIZED, "AUTH_INVALID");
    }
    // Held back now (this address, this account): even the right password
    // is refused, and the answer is a wrong password's (tests/api/lockout.rs
    // shows another address is not held back).
    let (s, v) = t.login_full(email, DEMO_PASSWORD, "TEST-001").await;
    assert_error(s, &v, StatusCode::UNAUTHORIZED, "AUTH_INVALID");

    let admin = t.admin("TEST-001").await;
    let (_, users) = t.get("/api/v1/users?email=victor@", &admin).await;
    let id = users["items"][0]["id"].as_str().unwrap().to_owned();
    // No account-wide lock: a stranger's failures lock nobody out.
    assert!(users["items"][0]["locked_until"].is_null(), "{users}");
    let (s, v) = t
        .post(&format!("/api/v1/users/{id}/unlock"), &admin, json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["locked_until"].is_null());
    // A session from before the lock, working until then (from another
    // address: this one is still held back).
    let before = t
        .login_from("198.51.100.20:1", email, DEMO_PASSWORD, "TEST-001")
        .await;
    let access = before["access_token"].as_str().unwrap().to_owned();
    let (s, _) = t.get("/api/v1/auth/me", &access).await;
    assert_eq!(s, StatusCode::OK);

    // An admin lock holds until unlocked, and ends sessions.
    let (s, _) = t
        .post(&format!("/api/v1/users/{id}/lock"), &admin, json!({}))
        .await;
    assert_eq!(s, StatusCode::OK);
    // The lock answers like a wrong password (it must not tell that the account exists).
    let (s, v) = t
        .request(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"email": email, "password": DEMO_PASSWORD, "tenant_code": "TEST-001"})),
            &[],
        )
        .await;
    assert_error(s, &v, StatusCode::UNAUTHORIZED, "AUTH_INVALID");
    // The tokens issued before the lock: the access token is refused, the
    // refresh token is revoked (even after an unlock).
    let (s, v) = t.get("/api/v1/auth/me", &access).await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "ACCOUNT_LOCKED");
    let (s, _) = t
        .post(&format!("/api/v1/users/{id}/unlock"), &admin, json!({}))
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = t
        .request(
            "POST",
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": before["refresh_token"]})),
            &[],
        )
        .await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "a refresh token outlived the lock: {v}"
    );
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_family() {
    let t = TestApp::new().await;
    let (_, v) = t.login_full(OLGA, DEMO_PASSWORD, "TEST-001").await;
    let r1 = v["refresh_token"].as_str().unwrap().to_owned();
    let (s, v2) = t
        .request(
            "POST",
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": r1})),
            &[],
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v2}");
    let r2 = v2["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(r1, r2);
    let (s, _) = t
        .get("/api/v1/auth/me", v2["access_token"].as_str().unwrap())
        .await;
    assert_eq!(s, StatusCode::OK);
    // Reusing r1 (already rotated) revokes the family: r2 dies too.
    let (s, v) = t
        .request(
            "POST",
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": r1})),
            &[],
        )
        .await;
    assert_error(s, &v, StatusCode::UNAUTHORIZED, "TOKEN_REVOKED");
    let (s, v) = t
        .request(
            "POST",
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": r2})),
            &[],
        )
        .await;
    assert_error(s, &v, StatusCode::UNAUTHORIZED, "TOKEN_REVOKED");
    // Garbage.
    let (s, v) = t
        .request(
            "POST",
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": "rt_x"})),
            &[],
        )
        .await;
    assert_error(s, &v, StatusCode::UNAUTHORIZED, "AUTH_INVALID");
    let (s, v) = t
        .request("POST", "/api/v1/auth/refresh", None, Some(json!({})), &[])
        .await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
}

#[tokio::test]
async fn logout_blacklists_the_token() {
    let t = TestApp::new().await;
    let (_, v) = t.login_full(OLGA, DEMO_PASSWORD, "TEST-001").await;
    let token = v["access_token"].as_str().unwrap().to_owned();
    let rt = v["refresh_token"].as_str().unwrap().to_owned();
    let (s, _) = t
        .post("/api/v1/auth/logout", &token, json!({"refresh_token": rt}))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) = t.get("/api/v1/auth/me", &token).await;
    assert_error(s, &v, StatusCode::UNAUTHORIZED, "TOKEN_REVOKED");
    let (s, v) = t
        .request(
            "POST",
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": rt})),
            &[],
        )
        .await;
    assert_error(s, &v, StatusCode::UNAUTHORIZED, "TOKEN_REVOKED");
}

#[tokio::test]
async fn service_account_key_exchange_and_rotation() {
    let t = TestApp::new().await;
    let admin = t.admin("TEST-001").await;
    let (s, sa) = t
        .post(
            "/api/v1/service-accounts",
            &admin,
            json!({"name": "billing-bot"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{sa}");
    let key = sa["api_key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("sk_"));
    let id = sa["id"].as_str().unwrap().to_owned();
    // Never shown again.
    let (_, got) = t
        .get(&format!("/api/v1/service-accounts/{id}"), &admin)
        .await;
    assert!(got.get("api_key").is_none(), "{got}");
    assert!(!got.to_string().contains(&key));

    for headers in [vec![("x-api-key", key.as_str())]] {
        let (s, v) = t
            .request("POST", "/api/v1/auth/token", None, None, &headers)
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let tok = v["access_token"].as_str().unwrap();
        let (_, me) = t.get("/api/v1/auth/me", tok).await;
        assert_eq!(me["is_service_account"], true);
    }
    let auth = format!("ApiKey {key}");
    let (s, _) = t
        .request(
            "POST",
            "/api/v1/auth/token",
            None,
            None,
            &[("authorization", auth.as_str())],
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = t
        .request(
            "POST",
            "/api/v1/auth/token",
            None,
            Some(json!({"api_key": key})),
            &[],
        )
        .await;
    assert_eq!(s, StatusCode::OK);

    let (s, rotated) = t
        .post(
            &format!("/api/v1/service-accounts/{id}/rotate-credentials"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{rotated}");
    let new_key = rotated["api_key"].as_str().unwrap();
    let (s, v) = t
        .request(
            "POST",
            "/api/v1/auth/token",
            None,
            Some(json!({"api_key": key})),
            &[],
        )
        .await;
    assert_error(s, &v, StatusCode::UNAUTHORIZED, "AUTH_INVALID");
    let (s, _) = t
        .request(
            "POST",
            "/api/v1/auth/token",
            None,
            Some(json!({"api_key": new_key})),
            &[],
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = t
        .request(
            "POST",
            "/api/v1/auth/token",
            None,
            Some(json!({"api_key": "sk_short_x"})),
            &[],
        )
        .await;
    assert_error(s, &v, StatusCode::UNAUTHORIZED, "AUTH_INVALID");
    let (s, v) = t
        .get(&format!("/api/v1/service-accounts/{id}/validate"), &admin)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["valid"], true);
}

#[tokio::test]
async fn key_rotation_keeps_previous_key_valid() {
    let t = TestApp::new().await;
    let old = t.root().await;
    sentinel_admin::keys::rotate(&t.db.owner).await.unwrap();
    t.state.keys.reload(&t.state.platform).await.unwrap();
    let (_, jwks) = t
        .request("GET", "/.well-known/jwks.json", None, None, &[])
        .await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    let (s, _) = t.get("/api/v1/auth/me", &old).await;
    assert_eq!(s, StatusCode::OK);
    let new = t.root().await;
    assert_ne!(
        jsonwebtoken::decode_header(&old).unwrap().kid,
        jsonwebtoken::decode_header(&new).unwrap().kid
    );
    // A second rotation retires the first key.
    sentinel_admin::keys::rotate(&t.db.owner).await.unwrap();
    t.state.keys.reload(&t.state.platform).await.unwrap();
    let (s, v) = t.get("/api/v1/auth/me", &old).await;
    assert_error(s, &v, StatusCode::UNAUTHORIZED, "AUTH_INVALID");
}

#[tokio::test]
async fn suspended_tenant_expired_token_and_login_by_tenant_id() {
    let t = TestApp::new().await;
    // Login by tenant id.
    let (s, v) = t
        .request(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"email": BOB, "password": DEMO_PASSWORD,
                        "tenant_id": "22222222-2222-2222-2222-222222222222"})),
            &[],
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let a2 = v["access_token"].as_str().unwrap().to_owned();
    // Suspending the tenant stops its tokens and its logins.
    let root = t.root().await;
    let (s, _) = t
        .patch(
            "/api/v1/tenants/22222222-2222-2222-2222-222222222222",
            &root,
            json!({"status": "suspended"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = t.get("/api/v1/users", &a2).await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "TENANT_SUSPENDED");
    let (s, v) = t.login_full(BOB, DEMO_PASSWORD, "TEST-002").await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "TENANT_SUSPENDED");
    // The platform may not suspend itself.
    let (s, v) = t
        .patch(
            "/api/v1/tenants/00000000-0000-0000-0000-000000000000",
            &root,
            json!({"status": "suspended"}),
        )
        .await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "PERMISSION_DENIED");

    // An expired token (signed by the current key) answers TOKEN_EXPIRED.
    let (_, me) = t.get("/api/v1/auth/me", &root).await;
    let now = chrono::Utc::now().timestamp();
    let claims = sentinel_admin::keys::Claims {
        iss: t.state.config.issuer.clone(),
        aud: t.state.config.audience.clone(),
        sub: me["user_id"].as_str().unwrap().parse().unwrap(),
        tid: uuid::Uuid::nil(),
        jti: "expired-1".into(),
        iat: now - 7200,
        nbf: now - 7200,
        exp: now - 3600,
        roles: vec![],
        sa: false,
        email: None,
    };
    let expired = t.state.keys.sign(&claims).unwrap();
    let (s, v) = t.get("/api/v1/auth/me", &expired).await;
    assert_error(s, &v, StatusCode::UNAUTHORIZED, "TOKEN_EXPIRED");
    // Same claims, other audience: invalid.
    let wrong_aud = t
        .state
        .keys
        .sign(&sentinel_admin::keys::Claims {
            aud: "other".into(),
            exp: now + 600,
            ..claims
        })
        .unwrap();
    let (s, v) = t.get("/api/v1/auth/me", &wrong_aud).await;
    assert_error(s, &v, StatusCode::UNAUTHORIZED, "AUTH_INVALID");
}

#[tokio::test]
async fn published_snapshot_compiles_with_the_shared_compiler() {
    let t = TestApp::new().await;
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
    let v2 = publish().await;
    assert_eq!((v1, v2), (1, 2));
    // Version 2: its manifest, and every part it lists, stored by hash.
    let manifest: Vec<u8> =
        sqlx::query_scalar("SELECT manifest FROM sentinel.policy_snapshots WHERE version = 2")
            .fetch_one(&t.db.owner)
            .await
            .unwrap();
    let manifest: sentinel_policy::bundle::Manifest = serde_json::from_slice(&manifest).unwrap();
    assert_eq!(manifest.version, 2);
    let part = |sha: String| {
        let pool = t.db.owner.clone();
        async move {
            let body: Vec<u8> =
                sqlx::query_scalar("SELECT body FROM sentinel.policy_parts WHERE sha256 = $1")
                    .bind(&sha)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            assert_eq!(sentinel_policy::signed::payload_sha256(&body), sha);
            serde_json::from_slice::<sentinel_policy::PolicySource>(&body).unwrap()
        }
    };
    let mut src = part(manifest.global.sha256.clone()).await;
    for r in manifest.shards.values() {
        src.merge(part(r.sha256.clone()).await);
    }
    src.version = 2;
    assert_eq!(src.tenants.len(), 5);
    assert_eq!(manifest.shards.len(), 5);
    let snap = sentinel_policy::compile(&src).unwrap();
    // The demo service accounts authenticate at the gateway with their stored hashes.
    assert_eq!(
        src.principals.iter().filter(|p| p.service_account).count(),
        2
    );
    assert!(snap.tenant(&sentinel_admin::seed::TEST_001).is_some());
}

#[tokio::test]
async fn demo_principals_behave_as_in_the_gateway_demo() {
    let t = TestApp::new().await;
    // Locked: answered like a wrong password (issue 17, item 9).
    let (s, v) = t.login_full(LENA, DEMO_PASSWORD, "TEST-001").await;
    assert_error(s, &v, StatusCode::UNAUTHORIZED, "AUTH_INVALID");
    let (s, v) = t.login_full(CARL, DEMO_PASSWORD, "TEST-003").await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "TENANT_SUSPENDED");
    t.login(PIA, DEMO_PASSWORD, "TEST-002").await;
    // The public demo key of fleet-sync works here as at the gateway.
    let (s, v) = t
        .request(
            "POST",
            "/api/v1/auth/token",
            None,
            None,
            &[("x-api-key", sentinel_admin::seed::DEMO_API_KEY)],
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, me) = t
        .get("/api/v1/auth/me", v["access_token"].as_str().unwrap())
        .await;
    assert_eq!(me["user_id"], "aaaaaaaa-0000-4000-8000-000000000003");
    assert_eq!(me["roles"], json!(["fleet_sync"]));
    // Running seed-demo again changes nothing and shows no key.
    let again = sentinel_admin::seed::seed_demo(&t.db.owner, &test_config(), DEMO_PASSWORD)
        .await
        .unwrap();
    assert!(again.api_keys.is_empty() && again.users.is_empty());
}

#[tokio::test]
async fn sessions_can_be_listed_validated_and_ended() {
    let t = TestApp::new().await;
    let (_, first) = t.login_full(OLGA, DEMO_PASSWORD, "TEST-001").await;
    let (_, second) = t.login_full(OLGA, DEMO_PASSWORD, "TEST-001").await;
    let token = second["access_token"].as_str().unwrap();
    let (s, v) = t.get("/api/v1/auth/validate", token).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["valid"], true);
    let (s, v) = t.get("/api/v1/auth/me/tokens", token).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{v}");
    // End the first session: its refresh token dies, the second lives.
    let (_, first_family) = {
        let rt = first["refresh_token"].as_str().unwrap().to_owned();
        let fam: uuid::Uuid = sqlx::query_scalar(
            "SELECT family_id FROM sentinel.refresh_tokens WHERE token_hash = $1",
        )
        .bind(sentinel_policy::apikey::hash_api_key(&rt))
        .fetch_one(&t.db.owner)
        .await
        .unwrap();
        (rt, fam)
    };
    let (s, _) = t
        .delete(&format!("/api/v1/auth/me/tokens/{first_family}"), token)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = t
        .delete(&format!("/api/v1/auth/me/tokens/{first_family}"), token)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = t
        .request(
            "POST",
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": first["refresh_token"]})),
            &[],
        )
        .await;
    assert_error(s, &v, StatusCode::UNAUTHORIZED, "TOKEN_REVOKED");
    let (s, next) = t
        .request(
            "POST",
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": second["refresh_token"]})),
            &[],
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    // Another user's session id is a missing one.
    let alice = t.admin("TEST-001").await;
    let (s, _) = t
        .delete(&format!("/api/v1/auth/me/tokens/{first_family}"), &alice)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Also while it is live: the other user's session survives the attempt.
    let second_family: uuid::Uuid =
        sqlx::query_scalar("SELECT family_id FROM sentinel.refresh_tokens WHERE token_hash = $1")
            .bind(sentinel_policy::apikey::hash_api_key(
                next["refresh_token"].as_str().unwrap(),
            ))
            .fetch_one(&t.db.owner)
            .await
            .unwrap();
    let (s, v) = t
        .delete(&format!("/api/v1/auth/me/tokens/{second_family}"), &alice)
        .await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND");
    let (s, v) = t
        .request(
            "POST",
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": next["refresh_token"]})),
            &[],
        )
        .await;
    assert_eq!(s, StatusCode::OK, "the other user's session was ended: {v}");
}

/// Gateways refuse malleable (high-s) ES256 signatures (issue 17, item 5):
/// every access token the admin API signs is in canonical form. Without
/// normalising, each token is high-s with probability 1/2, so 64 canonical
/// tokens in a row would happen by chance once in 2^64.
#[tokio::test]
async fn access_tokens_are_signed_in_canonical_low_s_form() {
    let t = TestApp::new().await;
    for i in 0..64 {
        let (token, _) = sentinel_admin::auth::issue_access(
            &t.state,
            uuid::Uuid::new_v4(),
            uuid::Uuid::new_v4(),
            vec![format!("role-{i}")],
            false,
            None,
        )
        .unwrap();
        let sig = token.rsplit('.').next().unwrap();
        assert!(
            sentinel_policy::ecdsa::es256_is_canonical(sig),
            "token {i} is high-s: {token}"
        );
    }
}
