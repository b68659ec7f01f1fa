//! Biometric profiles (issue 20): gateways load and store a user's encoded
//! profile with their key; people read its status, reset and delete it,
//! each audited; tenants and scopes hold.

use crate::audit_ingest::gateway;
use crate::common::*;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

const NORDIC: &str = "11111111-1111-1111-1111-111111111111";
const PACIFIC: &str = "22222222-2222-2222-2222-222222222222";
const VICTOR_ID: &str = "aaaaaaaa-0000-4000-8000-000000000002";
const BOB_ID: &str = "bbbbbbbb-0000-4000-8000-000000000001";

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    bytes: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or(Value::Null)
    }
}

/// A gateway-endpoint call with an `Authorization` value of our choosing.
async fn call(
    t: &TestApp,
    method: &str,
    path: &str,
    auth: Option<String>,
    body: Vec<u8>,
    headers: &[(&str, &str)],
) -> Answer {
    let mut b = Request::builder().method(method).uri(path);
    if let Some(a) = auth {
        b = b.header("authorization", a);
    }
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let resp = t
        .app
        .clone()
        .oneshot(b.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Answer {
        status,
        headers,
        bytes,
    }
}

fn profile_path(tenant: &str, user: &str) -> String {
    format!("/api/v1/gateway/biometrics/{tenant}/{user}")
}

async fn store(
    t: &TestApp,
    key: &str,
    tenant: &str,
    user: &str,
    generation: Option<&str>,
    body: &[u8],
) -> Answer {
    let mut q = "status=ready&samples=10&mouse_actions=600&key_observations=0".to_owned();
    if let Some(g) = generation {
        q.push_str(&format!("&generation={g}"));
    }
    call(
        t,
        "POST",
        &format!("{}?{q}", profile_path(tenant, user)),
        Some(format!("ApiKey {key}")),
        body.to_vec(),
        &[("content-type", "application/octet-stream")],
    )
    .await
}

async fn fetch(t: &TestApp, key: &str, tenant: &str, user: &str, etag: Option<&str>) -> Answer {
    let headers: Vec<(&str, &str)> = etag.map(|e| ("if-none-match", e)).into_iter().collect();
    call(
        t,
        "GET",
        &profile_path(tenant, user),
        Some(format!("ApiKey {key}")),
        Vec::new(),
        &headers,
    )
    .await
}

async fn events(t: &TestApp, action: &str) -> Vec<Value> {
    let rows: Vec<(Value,)> = sqlx::query_as(
        "SELECT to_jsonb(a) - 'hash' FROM sentinel.audit_logs a WHERE action = $1 ORDER BY time, chain_seq",
    )
    .bind(action)
    .fetch_all(&t.db.owner)
    .await
    .unwrap();
    rows.into_iter().map(|r| r.0).collect()
}

#[tokio::test]
async fn a_gateway_stores_loads_and_revalidates_a_profile() {
    let t = TestApp::new().await;
    let key = gateway(&t, "gw-bio").await;
    // Nothing yet.
    let a = fetch(&t, &key, NORDIC, VICTOR_ID, None).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    // Created (no generation: only if absent).
    let a = store(&t, &key, NORDIC, VICTOR_ID, None, b"profile-v1").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.json());
    let first = a.json();
    assert_eq!(first["stored"], true);
    let generation = first["generation"].as_str().unwrap().to_owned();
    // A second creation (another gateway's copy) stores nothing.
    let a = store(&t, &key, NORDIC, VICTOR_ID, None, b"other").await;
    assert_eq!(a.json()["stored"], false);
    assert_eq!(a.json()["generation"], first["generation"]);
    // Loaded as written, with its tag; the tag revalidates to 304.
    let a = fetch(&t, &key, NORDIC, VICTOR_ID, None).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.bytes, b"profile-v1");
    let etag = a.headers["etag"].to_str().unwrap().to_owned();
    assert_eq!(
        a.headers["sentinel-profile-generation"].to_str().unwrap(),
        generation
    );
    let a = fetch(&t, &key, NORDIC, VICTOR_ID, Some(&etag)).await;
    assert_eq!(a.status, StatusCode::NOT_MODIFIED);
    assert!(a.bytes.is_empty());
    // An update in the generation moves the tag.
    let a = store(
        &t,
        &key,
        NORDIC,
        VICTOR_ID,
        Some(&generation),
        b"profile-v2",
    )
    .await;
    assert_eq!(a.json()["stored"], true);
    let a = fetch(&t, &key, NORDIC, VICTOR_ID, Some(&etag)).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.bytes, b"profile-v2");
    // The row is the tenant's: another tenant's id for the same user is no user.
    let a = store(&t, &key, PACIFIC, VICTOR_ID, None, b"x").await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    let a = fetch(&t, &key, PACIFIC, VICTOR_ID, None).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    // Bad input.
    let bad = call(
        &t,
        "POST",
        &format!(
            "{}?status=sleepy&samples=-1&mouse_actions=0&key_observations=0",
            profile_path(NORDIC, VICTOR_ID)
        ),
        Some(format!("ApiKey {key}")),
        b"x".to_vec(),
        &[],
    )
    .await;
    let details = assert_error(
        bad.status,
        &bad.json(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    );
    assert!(
        details.get("status").is_some() && details.get("samples").is_some(),
        "{details}"
    );
    let empty = store(&t, &key, NORDIC, VICTOR_ID, Some(&generation), b"").await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    let huge = store(
        &t,
        &key,
        NORDIC,
        VICTOR_ID,
        Some(&generation),
        &vec![7u8; 16 * 1024 * 1024 + 1],
    )
    .await;
    assert_error(
        huge.status,
        &huge.json(),
        StatusCode::PAYLOAD_TOO_LARGE,
        "BODY_TOO_LARGE",
    );
    // Gateway writes are not admin events.
    assert!(events(&t, "biometric_profile.update").await.is_empty());
}

#[tokio::test]
async fn only_a_gateway_key_reaches_the_profiles() {
    let t = TestApp::new().await;
    let key = gateway(&t, "gw-bio").await;
    store(&t, &key, NORDIC, VICTOR_ID, None, b"secret-features").await;
    // A person's token, even the platform superadmin's: refused.
    let root = t.root().await;
    let a = call(
        &t,
        "GET",
        &profile_path(NORDIC, VICTOR_ID),
        Some(format!("Bearer {root}")),
        Vec::new(),
        &[],
    )
    .await;
    assert_error(
        a.status,
        &a.json(),
        StatusCode::FORBIDDEN,
        "PERMISSION_DENIED",
    );
    // A tenant's service account key (not a gateway): refused.
    let alice = t.admin("TEST-001").await;
    let (s, sa) = t
        .post(
            "/api/v1/service-accounts",
            &alice,
            serde_json::json!({"name": "bio-sa"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{sa}");
    let sa_key = sa["api_key"].as_str().unwrap();
    let a = fetch(&t, sa_key, NORDIC, VICTOR_ID, None).await;
    assert_error(
        a.status,
        &a.json(),
        StatusCode::FORBIDDEN,
        "PERMISSION_DENIED",
    );
    let a = store(&t, sa_key, NORDIC, VICTOR_ID, None, b"forged").await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    // No credential, a wrong key.
    let a = call(
        &t,
        "GET",
        &profile_path(NORDIC, VICTOR_ID),
        None,
        Vec::new(),
        &[],
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let a = fetch(&t, "sk_live_nope", NORDIC, VICTOR_ID, None).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    // Nothing was overwritten.
    let a = fetch(&t, &key, NORDIC, VICTOR_ID, None).await;
    assert_eq!(a.bytes, b"secret-features");
}

#[tokio::test]
async fn people_read_reset_and_delete_a_profile_audited() {
    let t = TestApp::new().await;
    let key = gateway(&t, "gw-bio").await;
    let alice = t.admin("TEST-001").await;
    let path = format!("/api/v1/users/{VICTOR_ID}/biometrics");
    // Nothing stored yet.
    let (s, v) = t.get(&path, &alice).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "none");
    let a = store(&t, &key, NORDIC, VICTOR_ID, None, b"features+models").await;
    let generation = a.json()["generation"].as_str().unwrap().to_owned();
    let (s, v) = t.get(&path, &alice).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["status"], "ready");
    assert_eq!(v["samples"], 10);
    assert_eq!(v["mouse_actions"], 600);
    assert_eq!(v["size_bytes"], 15);
    assert!(v.get("profile").is_none(), "the contents never leave: {v}");
    let read = events(&t, "biometric_profile.read").await;
    assert_eq!(read.len(), 2);
    assert_eq!(read[1]["resource_id"], VICTOR_ID);
    assert_eq!(read[1]["after"]["status"], "ready");

    // Reset: enrolment starts again, a new generation.
    let (s, v) = t
        .request("POST", &format!("{path}/reset"), Some(&alice), None, &[])
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "enrolling");
    assert_eq!(v["size_bytes"], 0);
    let reset = events(&t, "biometric_profile.reset").await;
    assert_eq!(reset.len(), 1, "{reset:?}");
    assert_eq!(reset[0]["before"]["status"], "ready");
    assert_eq!(reset[0]["after"]["status"], "enrolling");
    assert_eq!(reset[0]["tenant_id"], NORDIC);
    assert_eq!(
        reset[0]["principal_id"],
        "aaaaaaaa-0000-4000-8000-000000000001"
    );
    // A gateway's cached copy of the old generation cannot undo the reset.
    let a = store(&t, &key, NORDIC, VICTOR_ID, Some(&generation), b"stale").await;
    assert_eq!(a.json()["stored"], false);
    assert_ne!(a.json()["generation"].as_str().unwrap(), generation);
    let a = fetch(&t, &key, NORDIC, VICTOR_ID, None).await;
    assert_eq!(
        a.status,
        StatusCode::NO_CONTENT,
        "reset: a row without a profile"
    );
    let new_generation = a.headers["sentinel-profile-generation"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_generation, generation);
    let a = store(&t, &key, NORDIC, VICTOR_ID, Some(&new_generation), b"again").await;
    assert_eq!(a.json()["stored"], true);

    // Delete (a data-subject request): the row is gone.
    let (s, _) = t.delete(&path, &alice).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM sentinel.biometric_profiles")
        .fetch_one(&t.db.owner)
        .await
        .unwrap();
    assert_eq!(n, 0);
    let deleted = events(&t, "biometric_profile.delete").await;
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0]["before"]["size_bytes"], 5);
    assert!(deleted[0]["after"].is_null());
    let a = store(&t, &key, NORDIC, VICTOR_ID, Some(&new_generation), b"ghost").await;
    assert_eq!(a.json()["stored"], false, "a deleted profile stays deleted");
    let a = fetch(&t, &key, NORDIC, VICTOR_ID, None).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn other_tenants_and_missing_scopes_are_refused() {
    let t = TestApp::new().await;
    let key = gateway(&t, "gw-bio").await;
    store(&t, &key, NORDIC, VICTOR_ID, None, b"victor").await;
    store(&t, &key, PACIFIC, BOB_ID, None, b"bob").await;
    // Bob administers TEST-002: Victor (TEST-001) is not his to see or erase.
    let bob = t.admin("TEST-002").await;
    let victor_path = format!("/api/v1/users/{VICTOR_ID}/biometrics");
    let (s, v) = t.get(&victor_path, &bob).await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND");
    let (s, v) = t
        .request(
            "POST",
            &format!("{victor_path}/reset"),
            Some(&bob),
            None,
            &[],
        )
        .await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND");
    let (s, v) = t.delete(&victor_path, &bob).await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND");
    // Victor himself has no user scopes: 403 on read and on delete.
    let victor = t.nordic(VICTOR).await;
    let (s, v) = t.get(&victor_path, &victor).await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    let (s, v) = t.delete(&victor_path, &victor).await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    // A service account id is not a person with a profile.
    let alice = t.admin("TEST-001").await;
    let (s, v) = t
        .get(
            "/api/v1/users/aaaaaaaa-0000-4000-8000-000000000003/biometrics",
            &alice,
        )
        .await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND");
    // Both profiles are intact; nothing was recorded for the refusals.
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sentinel.biometric_profiles WHERE profile IS NOT NULL",
    )
    .fetch_one(&t.db.owner)
    .await
    .unwrap();
    assert_eq!(n, 2);
    assert!(events(&t, "biometric_profile.delete").await.is_empty());
    assert!(events(&t, "biometric_profile.reset").await.is_empty());
}
