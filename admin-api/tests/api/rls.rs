//! Row-level security, checked by connecting as the API role directly.

use crate::common::*;
use sqlx::{Connection, Row};

const TEST_001: &str = "11111111-1111-1111-1111-111111111111";

/// Gives TEST-002 rows in the tables the seed leaves empty for it (a
/// session, a revoked token), then checks that the owner role sees rows of
/// a tenant other than TEST-001 in every tenant table: the positive control
/// without which "the API role sees none" would prove nothing.
async fn foreign_rows_everywhere(t: &TestApp) {
    let (s, v) = t.login_full(BOB, DEMO_PASSWORD, "TEST-002").await;
    assert_eq!(s, axum::http::StatusCode::OK, "{v}");
    let (s, _) = t
        .request(
            "POST",
            "/api/v1/auth/logout",
            Some(v["access_token"].as_str().unwrap()),
            None,
            &[],
        )
        .await;
    assert!(s.is_success());
    t.login_full(BOB, DEMO_PASSWORD, "TEST-002").await;
    for table in TABLES {
        let col = if *table == "tenants" {
            "id"
        } else {
            "tenant_id"
        };
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM sentinel.{table} WHERE {col} <> '{TEST_001}'"
        ))
        .fetch_one(&t.db.owner)
        .await
        .unwrap();
        assert!(n > 0, "{table} has no rows of another tenant to hide");
    }
}

const TABLES: &[&str] = &[
    "tenants",
    "users",
    "refresh_tokens",
    "token_blacklist",
    "roles",
    "user_roles",
    "groups",
    "user_groups",
    "group_roles",
    "permissions",
    "role_permissions",
    "resources",
    "navigation_items",
];

#[tokio::test]
async fn api_role_is_unprivileged() {
    let t = TestApp::new().await;
    let row =
        sqlx::query("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
            .fetch_one(&t.db.api)
            .await
            .unwrap();
    assert!(!row.get::<bool, _>(0));
    assert!(!row.get::<bool, _>(1));
    let owned: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = 'sentinel' AND c.relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)",
    )
    .fetch_one(&t.db.api)
    .await
    .unwrap();
    assert_eq!(owned, 0);
    assert!(sentinel_admin::db::role_problem(&t.db.api)
        .await
        .unwrap()
        .is_none());
    assert!(sentinel_admin::db::role_problem(&t.db.owner)
        .await
        .unwrap()
        .is_some());
    // Every tenant-scoped table forces RLS.
    let forced: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = 'sentinel' AND c.relkind = 'r' AND c.relrowsecurity AND c.relforcerowsecurity",
    )
    .fetch_all(&t.db.owner)
    .await
    .unwrap();
    for table in TABLES.iter().chain(&["field_definitions"]) {
        assert!(
            forced.iter().any(|f| f == table),
            "{table} does not force RLS"
        );
    }
}

#[tokio::test]
async fn no_tenant_set_means_no_rows() {
    let t = TestApp::new().await;
    foreign_rows_everywhere(&t).await;
    let mut conn = t.db.api.acquire().await.unwrap();
    for table in TABLES {
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM sentinel.{table}"))
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(n, 0, "{table} leaked rows without a tenant");
        // And the owner sees that there is data.
    }
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM sentinel.users")
        .fetch_one(&t.db.owner)
        .await
        .unwrap();
    assert!(total > 10);
    // Platform-wide field definitions are readable by all; tenant-specific ones are not.
    let tenant_fields: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sentinel.field_definitions WHERE tenant_id IS NOT NULL",
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    assert_eq!(tenant_fields, 0);
}

#[tokio::test]
async fn a_tenant_sees_and_writes_only_its_rows() {
    let t = TestApp::new().await;
    foreign_rows_everywhere(&t).await;
    let mut tx = t.db.api.begin().await.unwrap();
    sqlx::query(
        "SELECT set_config('sentinel.tenant_id', '11111111-1111-1111-1111-111111111111', true)",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    for table in TABLES.iter().filter(|t| **t != "tenants") {
        let other: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM sentinel.{table} WHERE tenant_id <> '11111111-1111-1111-1111-111111111111'"
        ))
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        assert_eq!(other, 0, "{table}");
    }
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM sentinel.users")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert!(users >= 4);
    let err = sqlx::query(
        "INSERT INTO sentinel.groups (tenant_id, name) VALUES ('22222222-2222-2222-2222-222222222222', 'smuggled')",
    )
    .execute(&mut *tx)
    .await
    .unwrap_err();
    assert!(err.to_string().contains("row-level security"), "{err}");
    tx.rollback().await.unwrap();

    // UPDATE/DELETE of another tenant's rows touch nothing.
    let mut tx = t.db.api.begin().await.unwrap();
    sqlx::query(
        "SELECT set_config('sentinel.tenant_id', '11111111-1111-1111-1111-111111111111', true)",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    let n = sqlx::query(
        "DELETE FROM sentinel.users WHERE tenant_id = '22222222-2222-2222-2222-222222222222'",
    )
    .execute(&mut *tx)
    .await
    .unwrap()
    .rows_affected();
    assert_eq!(n, 0);
    let n = sqlx::query(
        "UPDATE sentinel.users SET name = 'pwned' WHERE tenant_id = '22222222-2222-2222-2222-222222222222'",
    )
    .execute(&mut *tx)
    .await
    .unwrap()
    .rows_affected();
    assert_eq!(n, 0);
    // Nor can an own row be moved into another tenant.
    sqlx::query(&format!(
        "INSERT INTO sentinel.groups (tenant_id, name) VALUES ('{TEST_001}', 'movable')"
    ))
    .execute(&mut *tx)
    .await
    .unwrap();
    let mut sp = tx.begin().await.unwrap();
    let err = sqlx::query(
        "UPDATE sentinel.groups SET tenant_id = '22222222-2222-2222-2222-222222222222' WHERE name = 'movable'",
    )
    .execute(&mut *sp)
    .await
    .unwrap_err();
    assert!(err.to_string().contains("row-level security"), "{err}");
    sp.rollback().await.unwrap();
    tx.commit().await.unwrap();
    let (pwned, bobs): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE name = 'pwned'), count(*) FROM sentinel.users
          WHERE tenant_id = '22222222-2222-2222-2222-222222222222'",
    )
    .fetch_one(&t.db.owner)
    .await
    .unwrap();
    assert_eq!(pwned, 0);
    assert!(bobs > 0);

    // The setting ends with its transaction on the same pooled connection.
    let mut pooled = t.db.api.acquire().await.unwrap();
    let mut tx = pooled.begin().await.unwrap();
    sqlx::query(&format!(
        "SELECT set_config('sentinel.tenant_id', '{TEST_001}', true)"
    ))
    .execute(&mut *tx)
    .await
    .unwrap();
    let inside: i64 = sqlx::query_scalar("SELECT count(*) FROM sentinel.users")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert!(inside >= 4, "the setting did not apply: {inside}");
    tx.commit().await.unwrap();
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM sentinel.users")
        .fetch_one(&mut *pooled)
        .await
        .unwrap();
    assert_eq!(after, 0, "the tenant setting outlived its transaction");
    let setting: Option<String> =
        sqlx::query_scalar("SELECT nullif(current_setting('sentinel.tenant_id', true), '')")
            .fetch_one(&mut *pooled)
            .await
            .unwrap();
    assert_eq!(setting, None);
    drop(pooled);

    // The setting is per transaction: the next transaction on a fresh connection sees nothing.
    let mut conn = sqlx::PgConnection::connect_with(&t.db.api_options)
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM sentinel.users")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 0);
}
