//! Test harness: a fresh PostgreSQL database per test (random name, dropped
//! afterwards), migrated and seeded as the owner, with the app connected as
//! the non-owner API role `sentinel_api` so that row-level security applies.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use sentinel_admin::config::Config;
use sentinel_admin::{db, seed, AppState};
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};
use std::str::FromStr;
use tower::ServiceExt;

pub const DEMO_PASSWORD: &str = "Demo-Passw0rd!";
pub const ROOT_EMAIL: &str = "root@platform.example.com";
pub const ROOT_PASSWORD: &str = "Root-Passw0rd!";
// Demo principals (`sentinel-admin seed-demo`, the same as the gateway's demo policy).
pub const ALICE: &str = "alice@nordic.example"; // TEST-001 tenant_admin, port-ops, in nordic-port-team
pub const VICTOR: &str = "victor@nordic.example"; // TEST-001 viewer, finance, in nordic-port-team
pub const OLGA: &str = "olga@nordic.example"; // TEST-001 operator
pub const AXEL: &str = "axel@nordic.example"; // TEST-001 auditor (read scopes, no permissions)
pub const LENA: &str = "lena@nordic.example"; // TEST-001, locked
pub const BOB: &str = "bob@pacific.example"; // TEST-002 tenant_admin
pub const PIA: &str = "pia@pacific.example"; // TEST-002 viewer
pub const SARA: &str = "sara@tankers.example"; // TEST-001-SUB tenant_admin
pub const CARL: &str = "carl@suspended.example"; // TEST-003 (suspended)

pub fn base_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Password the harness gives the API role, so that password-authenticating
/// clusters work too (trust clusters ignore it).
pub const API_ROLE_PASSWORD: &str = "sentinel-api-test";
/// The same for the platform role (`sentinel_platform`, migration 0013).
pub const PLATFORM_ROLE_PASSWORD: &str = "sentinel-platform-test";

static API_ROLE_READY: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

/// Sets the API and platform roles' passwords once per test process (the
/// roles are cluster-wide).
async fn prepare_api_role(owner: &PgPool) {
    API_ROLE_READY
        .get_or_init(|| async {
            for (role, password) in [
                ("sentinel_api", API_ROLE_PASSWORD),
                ("sentinel_platform", PLATFORM_ROLE_PASSWORD),
            ] {
                let mut done = false;
                for _ in 0..10 {
                    let r = sqlx::query(&format!("ALTER ROLE {role} PASSWORD '{password}'"))
                        .execute(owner)
                        .await;
                    if r.is_ok() {
                        done = true;
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                assert!(done, "cannot set the password of {role}");
            }
        })
        .await;
}

pub fn test_config() -> Config {
    Config {
        // Cheap argon2 so that tests stay fast; production defaults are in Config::default.
        argon2_m_kib: 256,
        argon2_t: 1,
        argon2_p: 1,
        lockout_threshold: 3,
        // Every in-process request comes from one address (no peer): the
        // tests that need the limit set it themselves (tests/api/lockout.rs).
        auth_rate_per_minute: 100_000,
        auth_rate_burst: 100_000,
        ..Config::default()
    }
}

/// A throwaway database; dropped (with its connections) when this goes out of scope.
pub struct TestDb {
    pub name: String,
    pub owner: PgPool,
    pub api: PgPool,
    pub api_options: PgConnectOptions,
    /// Connected as the platform role.
    pub platform: PgPool,
}

/// The key-encryption key of the tests (the binaries get it as `SENTINEL_KEK`).
pub const TEST_KEK: &str = "c2VudGluZWwgdGVzdCBrZWssIDMyIGJ5dGVzIGxvbmc=";

/// Installs [`TEST_KEK`] as the process's keyring (private keys are sealed with it).
pub fn install_test_kek() {
    sentinel_admin::sealing::install(sentinel_admin::sealing::Keyring {
        current: sentinel_admin::sealing::Kek::from_base64(TEST_KEK).unwrap(),
        previous: None,
    });
}

impl TestDb {
    pub async fn new() -> TestDb {
        install_test_kek();
        let base = PgConnectOptions::from_str(&base_url()).unwrap();
        let name = format!("sentinel_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = base.connect().await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        let owner = PgPoolOptions::new()
            .max_connections(2)
            .connect_with(base.clone().database(&name))
            .await
            .unwrap();
        db::migrate(&owner).await.unwrap();
        prepare_api_role(&owner).await;
        let api_options = base
            .clone()
            .database(&name)
            .username("sentinel_api")
            .password(API_ROLE_PASSWORD);
        let api = PgPoolOptions::new()
            .max_connections(4)
            .connect_with(api_options.clone())
            .await
            .unwrap();
        let platform = PgPoolOptions::new()
            .max_connections(4)
            .connect_with(
                base.clone()
                    .database(&name)
                    .username("sentinel_platform")
                    .password(PLATFORM_ROLE_PASSWORD),
            )
            .await
            .unwrap();
        TestDb {
            name,
            owner,
            api,
            api_options,
            platform,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        drop_database(&self.name);
    }
}

/// Drops database `name` of the test cluster (with its connections), from
/// sync code (a `Drop`), on a thread of its own.
pub fn drop_database(name: &str) {
    let name = name.to_owned();
    let _ = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async move {
            if let Ok(base) = PgConnectOptions::from_str(&base_url()) {
                if let Ok(mut conn) = base.connect().await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            }
        });
    })
    .join();
}

/// A migrated, bootstrapped and demo-seeded database with the app on top.
pub struct TestApp {
    pub db: TestDb,
    pub app: Router,
    pub state: AppState,
}

impl TestApp {
    pub async fn new() -> TestApp {
        TestApp::with_config(test_config()).await
    }

    pub async fn with_config(cfg: Config) -> TestApp {
        let db = TestDb::new().await;
        seed::bootstrap(&db.owner, &cfg, ROOT_EMAIL, ROOT_PASSWORD)
            .await
            .unwrap();
        seed::seed_demo(&db.owner, &cfg, DEMO_PASSWORD)
            .await
            .unwrap();
        let state = AppState::new(db.api.clone(), db.platform.clone(), cfg)
            .await
            .unwrap();
        let app = sentinel_admin::app(state.clone());
        TestApp { db, app, state }
    }

    pub async fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut b = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = match body {
            Some(v) => b
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(&v).unwrap()))
                .unwrap(),
            None => b.body(Body::empty()).unwrap(),
        };
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        (status, v)
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.request("GET", path, Some(token), None, &[]).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.request("POST", path, Some(token), Some(body), &[])
            .await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.request("PATCH", path, Some(token), Some(body), &[])
            .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.request("DELETE", path, Some(token), None, &[]).await
    }

    pub async fn login_full(
        &self,
        email: &str,
        password: &str,
        tenant_code: &str,
    ) -> (StatusCode, Value) {
        self.request(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"email": email, "password": password, "tenant_code": tenant_code})),
            &[],
        )
        .await
    }

    /// Logs in and returns the access token (panics on failure).
    pub async fn login(&self, email: &str, password: &str, tenant_code: &str) -> String {
        let (s, v) = self.login_full(email, password, tenant_code).await;
        assert_eq!(s, StatusCode::OK, "login {email}: {v}");
        v["access_token"].as_str().unwrap().to_owned()
    }

    /// Logs in from peer address `from` (as `serve` sees it) and returns the
    /// token pair (panics on failure).
    pub async fn login_from(&self, from: &str, email: &str, password: &str, code: &str) -> Value {
        let body = json!({"email": email, "password": password, "tenant_code": code});
        let mut req = Request::builder()
            .method("POST")
            .uri("/api/v1/auth/login")
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&body).unwrap()))
            .unwrap();
        let peer: std::net::SocketAddr = from.parse().unwrap();
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(status, StatusCode::OK, "login {email} from {from}: {v}");
        v
    }

    pub async fn root(&self) -> String {
        self.login(ROOT_EMAIL, ROOT_PASSWORD, "PLATFORM").await
    }

    /// The demo tenant admin of a tenant code.
    pub async fn admin(&self, code: &str) -> String {
        let email = match code {
            "TEST-001" => ALICE,
            "TEST-002" => BOB,
            "TEST-001-SUB" => SARA,
            other => panic!("no demo admin for {other}"),
        };
        self.login(email, DEMO_PASSWORD, code).await
    }

    /// A demo user of TEST-001 (`VICTOR`, `OLGA`, …).
    pub async fn nordic(&self, email: &str) -> String {
        self.login(email, DEMO_PASSWORD, "TEST-001").await
    }
}

/// Asserts the SPEC error body and returns its details.
pub fn assert_error(
    status: StatusCode,
    body: &Value,
    want_status: StatusCode,
    want_code: &str,
) -> Value {
    assert_eq!(status, want_status, "body: {body}");
    assert_eq!(body["error"]["code"], want_code, "body: {body}");
    assert!(body["error"]["message"].is_string(), "body: {body}");
    assert!(body["request_id"].is_string(), "body: {body}");
    body["error"]["details"].clone()
}
