//! The platform role (migration 0013, issue 17 item 10): the API role is
//! never believed when it asks to see every tenant, whatever it sets; the
//! platform role is, and the platform work (publishing, key rotation) runs
//! on it.

use crate::binary::{platform_url, urls};
use crate::common::*;
use sentinel_admin::db::{self, TenantCtx};
use sqlx::Connection;

/// `sentinel-admin` that must exit (a refusal), bounded so that a serve
/// that starts after all fails the test instead of hanging it.
async fn run(url: &str, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    tokio::time::timeout(
        std::time::Duration::from_secs(60),
        crate::binary::run(url, args, env),
    )
    .await
    .unwrap_or_else(|_| panic!("`sentinel-admin {args:?}` did not exit"))
}

const TEST_001: &str = "11111111-1111-1111-1111-111111111111";

/// Tenant tables that have rows of other tenants than TEST-001 after the seed.
const TABLES: &[&str] = &[
    "tenants",
    "users",
    "roles",
    "user_roles",
    "groups",
    "user_groups",
    "permissions",
    "role_permissions",
    "resources",
    "navigation_items",
];

/// Rows of tenants TEST-001 may not see (for `tenants`: neither itself nor
/// its sub-tenant, which a tenant sees by design).
fn foreign(table: &str) -> String {
    if table == "tenants" {
        format!(
            "SELECT count(*) FROM sentinel.tenants \
              WHERE id <> '{TEST_001}' AND parent_id IS DISTINCT FROM '{TEST_001}'"
        )
    } else {
        format!("SELECT count(*) FROM sentinel.{table} WHERE tenant_id <> '{TEST_001}'")
    }
}

#[tokio::test]
async fn the_api_role_setting_all_tenants_sees_no_other_tenant() {
    let t = TestApp::new().await;
    // Positive control: the owner, and the platform role asking for every
    // tenant, see other tenants' rows in each table.
    let mut platform = db::begin(&t.db.platform, TenantCtx::All).await.unwrap();
    for table in TABLES {
        let n: i64 = sqlx::query_scalar(&foreign(table))
            .fetch_one(&t.db.owner)
            .await
            .unwrap();
        assert!(n > 0, "{table}: no foreign rows to hide");
        let n: i64 = sqlx::query_scalar(&foreign(table))
            .fetch_one(&mut *platform)
            .await
            .unwrap();
        assert!(
            n > 0,
            "{table}: the platform role does not see across tenants"
        );
    }
    platform.rollback().await.unwrap();

    // The attack: a connection of the API role sets the setting itself, for
    // its session and for a transaction, with and without a tenant.
    let mut conn = sqlx::PgConnection::connect_with(&t.db.api_options)
        .await
        .unwrap();
    for setup in [
        "SELECT set_config('sentinel.all_tenants', 'on', false)",
        "SELECT set_config('sentinel.tenant_id', '', false)",
        "SET sentinel.all_tenants = 'on'",
    ] {
        sqlx::query(setup).execute(&mut conn).await.unwrap();
        for table in TABLES {
            let n: i64 = sqlx::query_scalar(&foreign(table))
                .fetch_one(&mut conn)
                .await
                .unwrap();
            assert_eq!(
                n, 0,
                "{table}: the API role read other tenants after `{setup}`"
            );
        }
    }
    let mut tx = conn.begin().await.unwrap();
    sqlx::query(&format!(
        "SELECT set_config('sentinel.tenant_id', '{TEST_001}', true), \
                set_config('sentinel.all_tenants', 'on', true)"
    ))
    .execute(&mut *tx)
    .await
    .unwrap();
    for table in TABLES {
        let n: i64 = sqlx::query_scalar(&foreign(table))
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert_eq!(n, 0, "{table}: a tenant transaction read other tenants");
    }
    // Nor can it write there.
    let changed = sqlx::query(&format!(
        "UPDATE sentinel.users SET name = 'owned' WHERE tenant_id <> '{TEST_001}'"
    ))
    .execute(&mut *tx)
    .await
    .unwrap()
    .rows_affected();
    assert_eq!(changed, 0);
    tx.rollback().await.unwrap();
    // It cannot become the platform role either.
    let e = sqlx::query("SET ROLE sentinel_platform")
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("permission denied"), "{e}");
    let untouched: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sentinel.users WHERE name = 'owned'")
            .fetch_one(&t.db.owner)
            .await
            .unwrap();
    assert_eq!(untouched, 0);
}

#[tokio::test]
async fn a_platform_transaction_on_the_api_pool_is_an_error() {
    let t = TestApp::new().await;
    let e = db::begin(&t.db.api, TenantCtx::All).await.err().unwrap();
    assert!(
        e.to_string().contains("SENTINEL_PLATFORM_DATABASE_URL"),
        "{e}"
    );
    assert!(db::begin_platform(&t.db.api).await.is_err());
    // The platform role without asking sees no tenant's rows.
    let n: i64 = sqlx::query_scalar(&foreign("users"))
        .fetch_one(&t.db.platform)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn the_platform_work_runs_on_the_platform_role() {
    let t = TestApp::new().await;
    // Publishing and key rotation: on the platform pool they work ...
    let before = t.root().await;
    sentinel_admin::snapshot::publish_with(&t.state.platform, None, true, 0, false)
        .await
        .unwrap();
    sentinel_admin::keys::rotate(&t.state.platform)
        .await
        .unwrap();
    t.state.keys.reload(&t.state.platform).await.unwrap();
    let after = t.root().await;
    assert_ne!(
        jsonwebtoken::decode_header(&before).unwrap().kid,
        jsonwebtoken::decode_header(&after).unwrap().kid
    );
    let (s, _) = t.get("/api/v1/auth/me", &before).await;
    assert_eq!(s, axum::http::StatusCode::OK);
    // ... a platform superadmin's cross-tenant request too ...
    let (s, v) = t.get("/api/v1/tenants", &after).await;
    assert_eq!(s, axum::http::StatusCode::OK, "{v}");
    assert!(v["items"].as_array().unwrap().len() > 1, "{v}");
    // ... and on the API pool they are refused.
    assert!(
        sentinel_admin::snapshot::publish_with(&t.state.pool, None, true, 0, false)
            .await
            .is_err()
    );
    assert!(sentinel_admin::keys::rotate(&t.state.pool).await.is_err());
    assert!(t.state.keys.reload(&t.state.pool).await.is_err());
}

#[tokio::test]
async fn serve_needs_the_platform_role_and_refuses_it_as_the_api_role() {
    let db = TestDb::new().await;
    let (owner, api) = urls(&db.name);
    let (ok, out) = run(&owner, &["migrate"], &[]).await;
    assert!(ok, "{out}");
    let serve = ["serve", "--listen", "127.0.0.1:0"];
    // Without the platform URL.
    let (ok, out) = run(&api, &serve, &[("SENTINEL_PLATFORM_DATABASE_URL", "")]).await;
    assert!(
        !ok && out.contains("SENTINEL_PLATFORM_DATABASE_URL"),
        "{out}"
    );
    // The platform URL naming the API role.
    let (ok, out) = run(&api, &serve, &[("SENTINEL_PLATFORM_DATABASE_URL", &api)]).await;
    assert!(!ok && out.contains("sentinel_platform"), "{out}");
    // The platform role as the API role.
    let platform = platform_url(&api);
    let (ok, out) = run(&platform, &serve, &[]).await;
    assert!(!ok && out.contains("platform role"), "{out}");
}
