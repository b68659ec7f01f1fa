//! Private keys at rest (issue 17, item 10): sealed with the key-encryption
//! key, refused in clear by the database, sealed on upgrade, out of reach of
//! a tenant's transaction; and the binary refuses to run without a KEK.

use crate::binary::{run, urls};
use crate::common::*;
use axum::http::StatusCode;
use sentinel_admin::sealing::{Kek, Keyring};

const TEST_001: &str = "11111111-1111-1111-1111-111111111111";

/// `run`, bounded: a `serve` that starts instead of refusing fails the test.
async fn refused(url: &str, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    tokio::time::timeout(std::time::Duration::from_secs(60), run(url, args, env))
        .await
        .unwrap_or_else(|_| panic!("`sentinel-admin {args:?}` did not exit"))
}

const KEY_TABLES: [&str; 2] = ["signing_keys", "snapshot_signing_keys"];
const PLATFORM_TABLES: [&str; 4] = [
    "signing_keys",
    "snapshot_signing_keys",
    "policy_snapshots",
    "policy_parts",
];

async fn stored(t: &TestApp, table: &str) -> Vec<(String, String)> {
    sqlx::query_as(&format!("SELECT kid, private_pem FROM sentinel.{table}"))
        .fetch_all(&t.db.owner)
        .await
        .unwrap()
}

#[tokio::test]
async fn private_keys_are_stored_sealed_and_open_only_with_the_kek() {
    let t = TestApp::new().await;
    let token = t.login(ALICE, DEMO_PASSWORD, "TEST-001").await;
    let (s, _) = t.get("/api/v1/auth/me", &token).await;
    assert_eq!(s, StatusCode::OK);
    let test_kek = Keyring {
        current: Kek::from_base64(TEST_KEK).unwrap(),
        previous: None,
    };
    let other_kek = Keyring {
        current: Kek::from_bytes(&[9; 32]).unwrap(),
        previous: None,
    };
    for table in KEY_TABLES {
        let rows = stored(&t, table).await;
        assert!(!rows.is_empty(), "{table} has no key");
        for (kid, value) in rows {
            assert!(value.starts_with("sealed:v1:"), "{table}/{kid}: {value}");
            assert!(!value.contains("PRIVATE KEY"), "{table}/{kid} is in clear");
            let row = sentinel_admin::sealing::row(table, &kid);
            let pem = test_kek.open(&row, &value).unwrap();
            assert!(pem.contains("BEGIN PRIVATE KEY"));
            // Another KEK cannot open it.
            assert!(other_kek.open(&row, &value).is_err());
        }
    }
}

#[tokio::test]
async fn the_database_refuses_a_key_in_clear() {
    let t = TestApp::new().await;
    let (_, pem, jwk) = sentinel_admin::keys::generate().unwrap();
    for table in KEY_TABLES {
        let e = sqlx::query(&format!(
            "INSERT INTO sentinel.{table} (kid, alg, private_pem, public_jwk, status)
             VALUES ('clear-one', 'ES256', $1, $2, 'retired')"
        ))
        .bind(&pem)
        .bind(&jwk)
        .execute(&t.db.owner)
        .await
        .unwrap_err();
        assert!(e.to_string().contains("private_sealed"), "{table}: {e}");
    }
}

#[tokio::test]
async fn keys_stored_in_clear_before_the_upgrade_are_sealed_at_start_and_keep_signing() {
    let t = TestApp::new().await;
    // A database from before sealing: the current token key in clear.
    let (kid, value) = sqlx::query_as::<_, (String, String)>(
        "SELECT kid, private_pem FROM sentinel.signing_keys WHERE status = 'current'",
    )
    .fetch_one(&t.db.owner)
    .await
    .unwrap();
    let keyring = Keyring {
        current: Kek::from_base64(TEST_KEK).unwrap(),
        previous: None,
    };
    let pem = keyring
        .open(&sentinel_admin::sealing::row("signing_keys", &kid), &value)
        .unwrap();
    for sql in [
        "ALTER TABLE sentinel.signing_keys DROP CONSTRAINT signing_keys_private_sealed",
        "UPDATE sentinel.signing_keys SET private_pem = $1 WHERE status = 'current'",
        "ALTER TABLE sentinel.signing_keys ADD CONSTRAINT signing_keys_private_sealed
           CHECK (private_pem LIKE 'sealed:v1:%') NOT VALID",
    ] {
        sqlx::query(sql)
            .bind(&pem)
            .execute(&t.db.owner)
            .await
            .unwrap();
    }
    // A clear key is not used as it is: the loader refuses it.
    let e = t.state.keys.reload(&t.state.platform).await.unwrap_err();
    assert!(e.to_string().contains("seal-keys"), "{e}");
    // A start seals it, and the same key signs again.
    let state =
        sentinel_admin::AppState::new(t.db.api.clone(), t.db.platform.clone(), test_config())
            .await
            .unwrap();
    let (kid2, value2) = sqlx::query_as::<_, (String, String)>(
        "SELECT kid, private_pem FROM sentinel.signing_keys WHERE status = 'current'",
    )
    .fetch_one(&t.db.owner)
    .await
    .unwrap();
    assert_eq!(kid2, kid);
    assert!(value2.starts_with("sealed:v1:") && !value2.contains("PRIVATE KEY"));
    let app = TestApp {
        app: sentinel_admin::app(state.clone()),
        state,
        db: t.db,
    };
    let token = app.login(ALICE, DEMO_PASSWORD, "TEST-001").await;
    let (s, _) = app.get("/api/v1/auth/me", &token).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn a_tenants_transaction_cannot_read_keys_or_snapshots() {
    let t = TestApp::new().await;
    sentinel_admin::snapshot::publish_with(&t.state.platform, None, true, 0, false)
        .await
        .unwrap();
    for table in PLATFORM_TABLES {
        // Outside a tenant, as the platform role (the publisher, the key
        // loader): rows are there.
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM sentinel.{table}"))
            .fetch_one(&t.db.platform)
            .await
            .unwrap();
        assert!(n > 0, "{table}: the positive control found no rows");
        // Inside a tenant's transaction: none, even for the platform role.
        let mut tx = sentinel_admin::db::begin(
            &t.db.platform,
            sentinel_admin::db::TenantCtx::One(TEST_001.parse().unwrap()),
        )
        .await
        .unwrap();
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM sentinel.{table}"))
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert_eq!(n, 0, "{table} is readable in a tenant's transaction");
        tx.rollback().await.unwrap();
        // The API role may not read them at all, in a tenant or outside
        // (migration 0013).
        let mut tx = sentinel_admin::db::begin(
            &t.db.api,
            sentinel_admin::db::TenantCtx::One(TEST_001.parse().unwrap()),
        )
        .await
        .unwrap();
        let e = sqlx::query_scalar::<_, i64>(&format!("SELECT count(*) FROM sentinel.{table}"))
            .fetch_one(&mut *tx)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("permission denied"), "{table}: {e}");
        tx.rollback().await.unwrap();
        let e = sqlx::query_scalar::<_, i64>(&format!("SELECT count(*) FROM sentinel.{table}"))
            .fetch_one(&t.db.api)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("permission denied"), "{table}: {e}");
    }
}

#[tokio::test]
async fn the_binary_refuses_to_serve_without_a_kek_or_with_the_wrong_one() {
    let db = TestDb::new().await;
    let (owner, api) = urls(&db.name);
    let (ok, out) = run(&owner, &["migrate"], &[]).await;
    assert!(ok, "{out}");
    let (ok, out) = run(
        &owner,
        &["bootstrap", "--email", ROOT_EMAIL],
        &[("SENTINEL_BOOTSTRAP_PASSWORD", ROOT_PASSWORD)],
    )
    .await;
    assert!(ok, "{out}");
    // No KEK: a clear refusal, before listening.
    let (ok, out) = refused(
        &api,
        &["serve", "--listen", "127.0.0.1:0"],
        &[("SENTINEL_KEK", "")],
    )
    .await;
    assert!(!ok && out.contains("SENTINEL_KEK"), "{out}");
    // A KEK of the wrong size.
    let (ok, out) = refused(
        &api,
        &["serve", "--listen", "127.0.0.1:0"],
        &[("SENTINEL_KEK", "c2hvcnQ=")],
    )
    .await;
    assert!(!ok && out.contains("32 bytes"), "{out}");
    // Another KEK than the one that sealed the keys: named, not "corrupt".
    let other = "b3RoZXIga2V5LWVuY3J5cHRpb24ga2V5LCAzMiBieXQ=";
    let (ok, out) = refused(
        &api,
        &["serve", "--listen", "127.0.0.1:0"],
        &[("SENTINEL_KEK", other)],
    )
    .await;
    assert!(!ok && out.contains("not configured"), "{out}");
    // Changing the KEK: the old one as previous, `seal-keys` reseals.
    let (ok, out) = run(
        &owner,
        &["seal-keys"],
        &[("SENTINEL_KEK", other), ("SENTINEL_KEK_PREVIOUS", TEST_KEK)],
    )
    .await;
    assert!(ok && out.contains("sealed"), "{out}");
    let (ok, out) = run(&owner, &["rotate-keys"], &[("SENTINEL_KEK", other)]).await;
    assert!(ok, "{out}");
    // The old KEK alone no longer opens them.
    let (ok, out) = run(&owner, &["seal-keys"], &[]).await;
    assert!(!ok && out.contains("not configured"), "{out}");
    // A lost KEK: rotating both keys under a new one is the way back; the
    // keys sealed under the lost one never sign again and are left alone.
    let third = "dGhpcmQga2V5LWVuY3J5cHRpb24ga2V5LCAzMiBieXQ=";
    for cmd in ["rotate-keys", "rotate-snapshot-key", "seal-keys"] {
        let (ok, out) = run(&owner, &[cmd], &[("SENTINEL_KEK", third)]).await;
        assert!(ok, "{cmd}: {out}");
    }
}
