//! The real `sentinel-admin` binary: migrate, bootstrap, seed-demo, publish,
//! rotate-keys, and serve on an ephemeral port (refusing a privileged role).

use crate::common::*;
use serde_json::{json, Value};
use std::process::Stdio;
use tokio::process::Command;

/// (owner URL, API-role URL) of a database of the test cluster.
pub fn urls(db: &str) -> (String, String) {
    let base = base_url();
    let (scheme, rest) = base.split_once("://").unwrap();
    let auth_host = rest.split(['/', '?']).next().unwrap();
    let host = auth_host.rsplit_once('@').map_or(auth_host, |x| x.1);
    (
        format!("{scheme}://{auth_host}/{db}"),
        format!("{scheme}://sentinel_api:{API_ROLE_PASSWORD}@{host}/{db}"),
    )
}

/// The platform role's URL beside an API-role URL (the same database).
pub fn platform_url(api_url: &str) -> String {
    api_url.replace(
        &format!("sentinel_api:{API_ROLE_PASSWORD}@"),
        &format!("sentinel_platform:{PLATFORM_ROLE_PASSWORD}@"),
    )
}

pub fn admin_cmd(url: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sentinel-admin"));
    c.env("DATABASE_URL", url)
        .env("SENTINEL_PLATFORM_DATABASE_URL", platform_url(url))
        .env("SENTINEL_ARGON2_M_KIB", "256")
        .env("SENTINEL_ARGON2_T", "1")
        .env(
            "SENTINEL_KEK",
            "c2VudGluZWwgdGVzdCBrZWssIDMyIGJ5dGVzIGxvbmc=",
        )
        .env("RUST_LOG", "warn")
        .env_remove("RUST_BACKTRACE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    c
}

pub async fn run(url: &str, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut c = admin_cmd(url);
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().await.unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn the_binary_from_migrate_to_serve() {
    let db = TestDb::new().await;
    let (owner, api) = urls(&db.name);
    let (ok, out) = run(&owner, &["migrate"], &[]).await;
    assert!(ok, "{out}");
    let (ok, out) = run(&owner, &["bootstrap", "--email", ROOT_EMAIL], &[]).await;
    assert!(!ok && out.contains("SENTINEL_BOOTSTRAP_PASSWORD"), "{out}");
    let (ok, out) = run(
        &owner,
        &["bootstrap", "--email", ROOT_EMAIL],
        &[("SENTINEL_BOOTSTRAP_PASSWORD", "weak")],
    )
    .await;
    assert!(!ok, "{out}");
    let (ok, out) = run(
        &owner,
        &["bootstrap", "--email", ROOT_EMAIL],
        &[("SENTINEL_BOOTSTRAP_PASSWORD", ROOT_PASSWORD)],
    )
    .await;
    assert!(ok && out.contains("created"), "{out}");
    let (ok, out) = run(
        &owner,
        &["bootstrap", "--email", ROOT_EMAIL],
        &[("SENTINEL_BOOTSTRAP_PASSWORD", ROOT_PASSWORD)],
    )
    .await;
    assert!(ok && out.contains("already exists"), "{out}");
    let (ok, out) = run(&owner, &["seed-demo"], &[]).await;
    assert!(ok && out.contains("sk_fleetsy1_"), "{out}");
    let (ok, out) = run(&owner, &["seed-demo"], &[]).await;
    assert!(ok && !out.contains("sk_"), "{out}");
    let (ok, out) = run(&owner, &["publish"], &[]).await;
    assert!(ok && out.contains("version 1"), "{out}");
    let (ok, out) = run(&owner, &["rotate-keys"], &[]).await;
    assert!(ok, "{out}");

    // serve refuses the owner role.
    let (ok, out) = run(&owner, &["serve", "--listen", "127.0.0.1:0"], &[]).await;
    assert!(!ok && out.contains("sentinel_api"), "{out}");

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
    let mut up = false;
    for _ in 0..100 {
        if let Ok(r) = c.get(format!("{base}/healthz")).send().await {
            up = r.status() == 200;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(up, "server did not come up");
    let r = c
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": ALICE, "password": DEMO_PASSWORD, "tenant_code": "TEST-001"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let tok: Value = r.json().await.unwrap();
    let r = c
        .get(format!("{base}/api/v1/users"))
        .bearer_auth(tok["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let jwks: Value = c
        .get(format!("{base}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        jwks["keys"].as_array().unwrap().len(),
        2,
        "current and previous key: {jwks}"
    );
    child.kill().await.unwrap();
}
