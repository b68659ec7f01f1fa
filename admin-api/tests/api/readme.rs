//! The README's admin-API quick start, run as the README writes it, so that
//! it cannot drift again (issue 25: it once exported a superuser URL for
//! `serve`, which refuses one).
//!
//! The commands are read from README.md's "The admin API" section and run by
//! bash with only these stand-ins, each of which must still be in the text:
//! `cargo run -p sentinel-admin --` is this test's binary (a shell function:
//! cargo cannot run inside `cargo test`), the database is a fresh one of the
//! test cluster instead of `sentinel`, and `serve` and the login go to an
//! ephemeral port instead of 8081. Argon2 is made cheap through its
//! environment variables (a debug build hashes slowly), as everywhere in the
//! tests.

use crate::binary::urls;
use crate::common::*;
use serde_json::Value;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::Command;

const README: &str = include_str!("../../../README.md");

/// The text of the `## {title}` section, up to the next `## `.
pub fn section<'a>(text: &'a str, title: &str) -> &'a str {
    let start = text
        .find(&format!("\n## {title}\n"))
        .unwrap_or_else(|| panic!("README.md has no `## {title}` section"));
    let body = &text[start + 1..];
    let end = body[3..].find("\n## ").map_or(body.len(), |i| i + 3);
    &body[..end]
}

/// The ```sh blocks of `text`, in order.
pub fn sh_blocks(text: &str) -> Vec<&str> {
    text.split("```sh\n")
        .skip(1)
        .map(|b| b.split("\n```").next().unwrap_or(""))
        .collect()
}

/// `text` with `from` replaced by `to`; `from` must be there.
fn stand_in(text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "the README's quick start no longer contains `{from}`: update it or this test\n{text}"
    );
    text.replace(from, to)
}

/// Runs README lines in bash: stops at the first failing command.
fn bash(script: &str) -> Command {
    let mut c = Command::new("bash");
    c.arg("-c")
        .arg(format!("set -euo pipefail\n{script}"))
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .env_remove("DATABASE_URL")
        .env("SENTINEL_ARGON2_M_KIB", "256")
        .env("SENTINEL_ARGON2_T", "1")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    c
}

/// The README's `cargo run -p sentinel-admin -- …`, with this test's binary;
/// `serve` moves to `$README_LISTEN` and replaces the shell, as it holds the
/// README's terminal.
const CARGO_SHIM: &str = r#"
cargo() {
  if [ "$#" -ge 4 ] && [ "$1 $2 $3 $4" = "run -p sentinel-admin --" ]; then
    shift 4
    if [ "${1:-}" = serve ]; then
      for a in "$@"; do [ "$a" != --listen ] || { echo "README test: serve names --listen" >&2; return 97; }; done
      exec "$README_ADMIN_BIN" "$@" --listen "$README_LISTEN"
    fi
    "$README_ADMIN_BIN" "$@"
  else
    echo "README test: a cargo command it does not know: cargo $*" >&2
    return 97
  fi
}
"#;

/// Drops the README's database (created by the README's own `createdb`).
struct Dropped(String);

impl Drop for Dropped {
    fn drop(&mut self) {
        drop_database(&self.0);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn the_readme_admin_api_quick_start_works_as_written() {
    let text = section(README, "The admin API");
    let blocks = sh_blocks(text);
    assert!(
        blocks.len() >= 2,
        "set-up and login blocks expected:\n{text}"
    );
    let (setup, login) = (blocks[0], blocks[1]);
    assert!(
        setup
            .trim_end()
            .lines()
            .last()
            .unwrap_or("")
            .contains("-- serve"),
        "the set-up block ends with `serve`, which holds the terminal:\n{setup}"
    );

    let db = format!("sentinel_readme_{}", uuid::Uuid::new_v4().simple());
    let _drop = Dropped(db.clone());
    let (owner, api) = urls(&db);
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");

    let mut script = stand_in(
        setup,
        "createdb -h 127.0.0.1 -U postgres sentinel",
        &format!("createdb --maintenance-db='{}' {db}", base_url()),
    );
    script = stand_in(
        &script,
        "postgres://postgres@127.0.0.1:5432/sentinel",
        &owner,
    );
    script = stand_in(
        &script,
        "postgres://sentinel_api@127.0.0.1:5432/sentinel",
        &api,
    );
    script = stand_in(
        &script,
        "postgres://sentinel_platform@127.0.0.1:5432/sentinel",
        &crate::binary::platform_url(&api),
    );
    // `api` carries the password the harness gives the API role (the role is
    // cluster-wide; a trust cluster ignores it).
    let mut cmd = bash(&format!("{CARGO_SHIM}\n{script}"));
    cmd.env("README_ADMIN_BIN", env!("CARGO_BIN_EXE_sentinel-admin"))
        .env("README_LISTEN", &listen)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut serve = cmd.spawn().unwrap();

    // Up when /healthz answers; if the script stops first, its output says why.
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = serve.try_wait().unwrap() {
            let out = serve.wait_with_output().await.unwrap();
            panic!(
                "the quick start stopped ({status}) before serving:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        if let Ok(r) = client.get(format!("http://{listen}/healthz")).send().await {
            if r.status() == 200 {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "serve did not come up on {listen}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The login, as the README writes it.
    let login = stand_in(login, "127.0.0.1:8081", &listen);
    let out = bash(&login).output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stdout)));
    let token = answer["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"));
    assert_eq!(answer["token_type"], "bearer");
    // The seeded demo is there, for the account the README bootstrapped.
    let tenants: Value = client
        .get(format!("http://{listen}/api/v1/tenants/code/TEST-001"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        tenants["id"], "11111111-1111-1111-1111-111111111111",
        "{tenants}"
    );

    // The console at /console/ from the default directory, as the README
    // says: the page when the set-up's build is there, else a 404 that says so.
    let built = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../console/dist/index.html"
    ))
    .is_file();
    let page = client
        .get(format!("http://{listen}/console/"))
        .send()
        .await
        .unwrap();
    let status = page.status();
    let body = page.text().await.unwrap();
    if built {
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("<div id=\"root\">"), "{body}");
    } else {
        assert_eq!(status, 404, "{body}");
        assert!(body.contains("not built"), "{body}");
    }
    serve.kill().await.unwrap();
}
