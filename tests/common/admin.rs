//! The real `sentinel-admin` binary beside the gateway, for the end-to-end
//! tests (tests/live_policy.rs, tests/audit_e2e.rs, tests/approvals_e2e.rs):
//! a throwaway PostgreSQL database, the binary's commands, and `serve` on a
//! loopback port. Needs `psql` and PostgreSQL at `DATABASE_URL`;
//! `SENTINEL_ADMIN_BIN` names another build of the binary.

use super::free_port;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The key-encryption key the admin binaries seal private keys with (tests only).
pub const TEST_KEK: &str = "c2VudGluZWwgdGVzdCBrZWssIDMyIGJ5dGVzIGxvbmc=";
/// The platform superuser's password `bootstrap` is given.
pub const ROOT_PASSWORD: &str = "Root-Passw0rd!";

/// `target/debug/sentinel-admin` (next to this test's `deps/`, built by
/// `cargo test --workspace`), or `SENTINEL_ADMIN_BIN`.
pub fn admin_binary() -> PathBuf {
    if let Ok(bin) = std::env::var("SENTINEL_ADMIN_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .join("sentinel-admin");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo test --workspace` (or `cargo build -p sentinel-admin`) first",
        bin.display()
    );
    bin
}

pub fn database_base() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Runs one statement with `psql`; returns its unaligned output.
pub fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .arg(url)
        .args(["-qAtc", sql])
        .output()
        .expect("psql (PostgreSQL client) is needed for this test");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A throwaway database, dropped with the value.
pub struct Db {
    pub name: String,
}

impl Db {
    pub fn new(prefix: &str) -> Db {
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        psql(&database_base(), &format!("CREATE DATABASE {name}"));
        Db { name }
    }

    /// (owner URL, API-role URL); the API role's password is set by the
    /// caller (`ALTER ROLE sentinel_api PASSWORD 'sentinel-api-test'`).
    pub fn urls(&self) -> (String, String) {
        let base = database_base();
        let (scheme, rest) = base.split_once("://").unwrap();
        let auth_host = rest.split(['/', '?']).next().unwrap();
        let host = auth_host.rsplit_once('@').map_or(auth_host, |x| x.1);
        (
            format!("{scheme}://{auth_host}/{}", self.name),
            format!(
                "{scheme}://sentinel_api:sentinel-api-test@{host}/{}",
                self.name
            ),
        )
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .arg(database_base())
            .args([
                "-qAtc",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
    }
}

/// The platform role's URL beside an API-role URL of [`Db::urls`] (the
/// same database); any other URL is returned as it is.
pub fn platform_url(api_url: &str) -> String {
    api_url.replace(
        "sentinel_api:sentinel-api-test@",
        "sentinel_platform:sentinel-platform-test@",
    )
}

/// Gives the platform role (migration 0013, cluster-wide) the tests'
/// password, once per test process.
fn prepare_platform_role() {
    static READY: std::sync::Once = std::sync::Once::new();
    READY.call_once(|| {
        let sql = "ALTER ROLE sentinel_platform PASSWORD 'sentinel-platform-test'";
        for _ in 0..10 {
            let ok = Command::new("psql")
                .arg(database_base())
                .args(["-qAtc", sql])
                .output()
                .is_ok_and(|o| o.status.success());
            if ok {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("cannot set the password of sentinel_platform");
    });
}

/// The binary with the tests' settings (cheap argon2, the test KEK, the
/// platform role beside the API role).
fn command(url: &str) -> Command {
    let mut c = Command::new(admin_binary());
    c.env("DATABASE_URL", url)
        .env("SENTINEL_PLATFORM_DATABASE_URL", platform_url(url))
        .env("SENTINEL_ARGON2_M_KIB", "256")
        .env("SENTINEL_ARGON2_T", "1")
        .env("SENTINEL_KEK", TEST_KEK)
        .env("SENTINEL_BOOTSTRAP_PASSWORD", ROOT_PASSWORD)
        .env("RUST_LOG", "warn");
    c
}

/// Runs a command of the binary; returns its standard output, failing the
/// test (with both outputs) when it fails.
pub fn admin(url: &str, args: &[&str]) -> String {
    let out = command(url).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "sentinel-admin {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `sentinel-admin serve` on a loopback port, killed with the value.
pub struct AdminServer {
    child: Child,
    pub listen: String,
    db_url: String,
    env: Vec<(String, String)>,
}

impl AdminServer {
    pub fn start(db_url: &str) -> AdminServer {
        AdminServer::start_with(db_url, None, &[])
    }

    /// On `listen` (a free port when `None`), with more environment.
    pub fn start_with(db_url: &str, listen: Option<String>, env: &[(&str, &str)]) -> AdminServer {
        let listen = listen.unwrap_or_else(|| format!("127.0.0.1:{}", free_port()));
        prepare_platform_role();
        let mut c = command(db_url);
        c.args(["serve", "--listen", &listen]).stdout(Stdio::null());
        for (k, v) in env {
            c.env(k, v);
        }
        let child = c.spawn().unwrap();
        let start = Instant::now();
        while std::net::TcpStream::connect(&listen).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "admin API did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        AdminServer {
            child,
            listen,
            db_url: db_url.to_owned(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.listen)
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills it and starts it again on the same port and database.
    pub fn restart(&mut self) {
        self.kill();
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        *self = AdminServer::start_with(&self.db_url.clone(), Some(self.listen.clone()), &env);
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.kill();
    }
}
