//! The anomaly model registry (`/api/v1/ai/models`, migration 0012): upload
//! validated by the gateway's loader (corrupt → 422, oversize → 413),
//! activate and roll back (audited, published in the signed manifest), the
//! bytes by hash for gateways, and the registry out of every tenant's reach.

use crate::common::*;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

const MODEL: &[u8] = include_bytes!("../../../models/anomaly/model.onnx");
const MODEL_SHA256: &str = include_str!("../../../models/anomaly/model.onnx.sha256");
const WRONG_WIDTH: &[u8] = include_bytes!("../../../models/anomaly/testdata/wrong_width.onnx");

/// The committed model with another `sentinel.version` (one byte of its
/// metadata changed; the protobuf lengths stay the same): a second, valid
/// model with the same trees.
pub fn variant(version: u8) -> Vec<u8> {
    let from = b"\x10sentinel.version\x12\x011";
    let at = MODEL
        .windows(from.len())
        .position(|w| w == from)
        .expect("the committed model names its version");
    let mut out = MODEL.to_vec();
    out[at + from.len() - 1] = version;
    out
}

async fn raw(
    t: &TestApp,
    method: &str,
    path: &str,
    token: Option<&str>,
    content_type: &str,
    body: Vec<u8>,
) -> (StatusCode, Vec<u8>) {
    let mut b = Request::builder().method(method).uri(path);
    if let Some(tok) = token {
        b = b.header("authorization", format!("Bearer {tok}"));
    }
    let req = b
        .header("content-type", content_type)
        .body(Body::from(body))
        .unwrap();
    let resp = t.app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
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

async fn upload(t: &TestApp, token: &str, bytes: &[u8]) -> (StatusCode, Value) {
    let (s, b) = raw(
        t,
        "POST",
        "/api/v1/ai/models",
        Some(token),
        "application/octet-stream",
        bytes.to_vec(),
    )
    .await;
    (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

async fn manifest_model(t: &TestApp) -> Value {
    match sentinel_admin::snapshot::publish(&t.state.platform, None, true)
        .await
        .unwrap()
    {
        sentinel_admin::snapshot::Outcome::Published { snapshot, .. } => {
            serde_json::to_value(&snapshot.manifest).unwrap()["anomaly_model"].clone()
        }
        other => panic!("nothing published: {other:?}"),
    }
}

#[tokio::test]
async fn upload_activate_and_roll_back_are_audited_and_published() {
    let t = TestApp::new().await;
    let root = t.root().await;

    let (s, m1) = upload(&t, &root, MODEL).await;
    assert_eq!(s, StatusCode::CREATED, "{m1}");
    assert_eq!(m1["name"], "anomaly-gbdt");
    assert_eq!(m1["version"], "1");
    assert_eq!(m1["status"], "staged");
    assert_eq!(
        m1["sha256"],
        MODEL_SHA256.split_whitespace().next().unwrap()
    );
    assert_eq!(m1["size"], MODEL.len());
    assert_eq!(m1["metrics"]["engine"], "trees");
    let v2 = variant(b'2');
    let (s, m2) = upload(&t, &root, &v2).await;
    assert_eq!(s, StatusCode::CREATED, "{m2}");
    assert_eq!(m2["version"], "2");
    let (id1, id2) = (m1["id"].as_str().unwrap(), m2["id"].as_str().unwrap());

    let (s, list) = t.get("/api/v1/ai/models", &root).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    let (s, got) = t.get(&format!("/api/v1/ai/models/{id2}"), &root).await;
    assert_eq!((s, &got["id"]), (StatusCode::OK, &m2["id"]));

    // Nothing active: the manifest names no model.
    assert_eq!(manifest_model(&t).await, Value::Null);

    let (s, a1) = t
        .post(
            &format!("/api/v1/ai/models/{id1}/activate"),
            &root,
            Value::Null,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{a1}");
    assert_eq!(a1["status"], "active");
    assert_eq!(a1["previous_id"], Value::Null);
    // The activation bumped the policy revision: the next version names it.
    let named = manifest_model(&t).await;
    assert_eq!(named["sha256"], m1["sha256"]);
    assert_eq!(named["id"], m1["id"]);
    assert_eq!(
        (&named["name"], &named["version"]),
        (&m1["name"], &m1["version"])
    );

    let (s, a2) = t
        .post(
            &format!("/api/v1/ai/models/{id2}/activate"),
            &root,
            Value::Null,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{a2}");
    assert_eq!(a2["previous_id"], m1["id"]);
    assert_eq!(manifest_model(&t).await["sha256"], m2["sha256"]);
    let (_, old) = t.get(&format!("/api/v1/ai/models/{id1}"), &root).await;
    assert_eq!(old["status"], "retired");

    // Roll back: model 1 again, model 2 retired.
    let (s, back) = t
        .post("/api/v1/ai/models/rollback", &root, Value::Null)
        .await;
    assert_eq!(s, StatusCode::OK, "{back}");
    assert_eq!(
        (&back["id"], &back["status"]),
        (&m1["id"], &Value::from("active"))
    );
    assert_eq!(manifest_model(&t).await["sha256"], m1["sha256"]);
    let (_, two) = t.get(&format!("/api/v1/ai/models/{id2}"), &root).await;
    assert_eq!(two["status"], "retired");
    // Model 1 had nothing before it.
    let (s, v) = t
        .post("/api/v1/ai/models/rollback", &root, Value::Null)
        .await;
    let d = assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    assert!(d["model"].is_array(), "{v}");

    // The gateway's download: the exact bytes, by hash.
    let sha = m2["sha256"].as_str().unwrap();
    let (s, bytes) = raw(
        &t,
        "GET",
        &format!("/api/v1/ai/models/content/{sha}"),
        Some(&root),
        "application/octet-stream",
        Vec::new(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(bytes, v2);
    let unknown = "0".repeat(64);
    let (s, _) = raw(
        &t,
        "GET",
        &format!("/api/v1/ai/models/content/{unknown}"),
        Some(&root),
        "application/octet-stream",
        Vec::new(),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Every write is an admin audit event.
    let (s, ev) = t
        .get("/api/v1/audit/events?resource=ai_model&limit=100", &root)
        .await;
    assert_eq!(s, StatusCode::OK, "{ev}");
    let actions: Vec<&str> = ev["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions.iter().filter(|a| **a == "ai_model.create").count(),
        2,
        "{actions:?}"
    );
    // activate 1 (1 row), activate 2 (2 rows), roll back (2 rows).
    assert_eq!(
        actions.iter().filter(|a| **a == "ai_model.update").count(),
        5,
        "{actions:?}"
    );
}

#[tokio::test]
async fn corrupt_oversize_and_duplicate_models_are_refused() {
    let t = TestApp::new().await;
    let root = t.root().await;

    let (s, v) = upload(&t, &root, b"not an onnx model").await;
    let d = assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    assert!(d["model"][0].as_str().unwrap().contains("ONNX"), "{v}");
    // Truncated: parses as nothing tract can use.
    let (s, v) = upload(&t, &root, &MODEL[..MODEL.len() / 2]).await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    // A real ONNX model trained on other features.
    let (s, v) = upload(&t, &root, WRONG_WIDTH).await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    let (s, v) = upload(&t, &root, &[]).await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    let big = vec![0u8; sentinel_admin::ai::models::MAX_BYTES + 1];
    let (s, v) = upload(&t, &root, &big).await;
    assert_error(s, &v, StatusCode::PAYLOAD_TOO_LARGE, "BODY_TOO_LARGE");
    // Not the file's bytes.
    let (s, b) = raw(
        &t,
        "POST",
        "/api/v1/ai/models",
        Some(&root),
        "application/json",
        MODEL.to_vec(),
    )
    .await;
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    // Nothing was stored by any of these.
    let (_, list) = t.get("/api/v1/ai/models", &root).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "{list}");

    let (s, _) = upload(&t, &root, MODEL).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, v) = upload(&t, &root, MODEL).await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    let (s, v) = t
        .post(
            &format!("/api/v1/ai/models/{}/activate", uuid::Uuid::new_v4()),
            &root,
            Value::Null,
        )
        .await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND");
    let (s, v) = t
        .post("/api/v1/ai/models/rollback", &root, Value::Null)
        .await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
}

#[tokio::test]
async fn the_registry_is_out_of_every_tenants_reach() {
    let t = TestApp::new().await;
    let root = t.root().await;
    let (s, m) = upload(&t, &root, MODEL).await;
    assert_eq!(s, StatusCode::CREATED);
    let id = m["id"].as_str().unwrap();
    let sha = m["sha256"].as_str().unwrap();

    // A tenant admin holds ai:read and ai:apply: neither reaches the registry.
    let alice = t.admin("TEST-001").await;
    let (s, v) = t.get("/api/v1/ai/models", &alice).await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    let (s, v) = t.get(&format!("/api/v1/ai/models/{id}"), &alice).await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    let (s, v) = upload(&t, &alice, &variant(b'3')).await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    let (s, v) = t
        .post(
            &format!("/api/v1/ai/models/{id}/activate"),
            &alice,
            Value::Null,
        )
        .await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    let (s, v) = t
        .post("/api/v1/ai/models/rollback", &alice, Value::Null)
        .await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    let (s, _) = raw(
        &t,
        "GET",
        &format!("/api/v1/ai/models/content/{sha}"),
        Some(&alice),
        "application/octet-stream",
        Vec::new(),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Without a credential.
    let (s, _) = upload_anonymous(&t).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // Row-level security: a transaction working for a tenant sees no model
    // and cannot write one, whatever the SQL.
    let mut tx = t.db.api.begin().await.unwrap();
    sqlx::query(
        "SELECT set_config('sentinel.tenant_id', '11111111-1111-1111-1111-111111111111', true)",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM sentinel.ai_models")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    let b: i64 = sqlx::query_scalar("SELECT count(*) FROM sentinel.ai_model_blobs")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!((n, b), (0, 0));
    let updated = sqlx::query("UPDATE sentinel.ai_models SET status = 'active'")
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(updated, 0);
    drop(tx);
    // The API role may not delete a model, nor rewrite a stored file.
    let mut tx = t.db.api.begin().await.unwrap();
    let e = sqlx::query("DELETE FROM sentinel.ai_models")
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("permission denied"), "{e}");
    drop(tx);
    let mut tx = t.db.api.begin().await.unwrap();
    let e = sqlx::query("UPDATE sentinel.ai_model_blobs SET bytes = 'x'")
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("permission denied"), "{e}");
}

async fn upload_anonymous(t: &TestApp) -> (StatusCode, Vec<u8>) {
    raw(
        t,
        "POST",
        "/api/v1/ai/models",
        None,
        "application/octet-stream",
        MODEL.to_vec(),
    )
    .await
}
