//! The README's set-up line `cargo run --release --bin sentinel -- demo`, run
//! as written (with this test's binary, on free ports), answers the first
//! curl line it prints and the first curl line of the README's tour, with
//! the tokens it prints. The admin API's quick start has its own test
//! (admin-api/tests/api/readme.rs).
//!
//! Run: `cargo test --test readme`
#![expect(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const README: &str = include_str!("../README.md");

/// The ```sh blocks of the README's `## {title}` section.
fn blocks(title: &str) -> Vec<&'static str> {
    let start = README
        .find(&format!("\n## {title}\n"))
        .unwrap_or_else(|| panic!("README.md has no `## {title}` section"));
    let body = &README[start + 4..];
    let body = &body[..body.find("\n## ").unwrap_or(body.len())];
    body.split("```sh\n")
        .skip(1)
        .map(|b| b.split("\n```").next().unwrap_or(""))
        .collect()
}

/// Runs `script` in bash (`set -euo pipefail`) and returns its standard output.
fn bash(script: &str) -> String {
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("set -euo pipefail\n{script}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The README's `cargo run --release --bin sentinel -- ARGS`: this test's
/// (debug) binary, on the test's ports and directory.
const CARGO_SHIM: &str = r#"
cargo() {
  if [ "$#" -ge 5 ] && [ "$1 $2 $3 $4 $5" = "run --release --bin sentinel --" ]; then
    shift 5
    exec "$README_SENTINEL_BIN" "$@" --listen "$README_LISTEN" --ops "$README_OPS" --dir "$README_DIR"
  fi
  echo "README test: a cargo command it does not know: cargo $*" >&2
  return 97
}
"#;

#[test]
fn the_readme_demo_line_starts_and_answers_its_curl_lines() {
    let setup = blocks("Set up");
    let line = setup
        .first()
        .and_then(|b| b.lines().find(|l| l.contains("-- demo")))
        .unwrap_or_else(|| panic!("no `-- demo` line in the README's set-up: {setup:?}"));
    let command = line.split('#').next().unwrap().trim();
    let listen = common::free_addr();
    let ops = common::free_addr();
    let dir = std::env::temp_dir().join(format!("sentinel-readme-demo-{}", uuid::Uuid::new_v4()));
    let mut demo = Command::new("bash")
        .arg("-c")
        .arg(format!("{CARGO_SHIM}\n{command}"))
        .env("README_SENTINEL_BIN", env!("CARGO_BIN_EXE_sentinel"))
        .env("README_LISTEN", listen.to_string())
        .env("README_OPS", ops.to_string())
        .env("README_DIR", &dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    // The banner: the export lines and the curl lines, read as printed.
    let (tx, rx) = mpsc::channel();
    let stdout = demo.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let mut exports = Vec::new();
    let mut printed_curl = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    while printed_curl.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(l) = rx.recv_timeout(left) else {
            let _ = demo.kill();
            panic!("the demo printed no curl line (exports so far: {exports:?})");
        };
        let l = l.trim().to_owned();
        if l.starts_with("export ") {
            exports.push(l.split('#').next().unwrap().trim().to_owned());
        } else if l.starts_with("curl ") {
            printed_curl = Some(l);
        }
    }
    let printed_curl = printed_curl.unwrap();
    assert!(
        printed_curl.contains(&format!("http://{listen}/")),
        "{printed_curl}"
    );
    let tour = blocks("A five-minute tour");
    let readme_curl = tour
        .first()
        .and_then(|b| b.lines().find(|l| l.starts_with("curl ")))
        .unwrap_or_else(|| panic!("no curl line in the README's tour: {tour:?}"));
    assert!(readme_curl.contains("localhost:8080"), "{readme_curl}");
    let readme_curl = readme_curl.replace("localhost:8080", &listen.to_string());

    for curl in [printed_curl.as_str(), readme_curl.as_str()] {
        // The banner comes when the listeners are bound; ready when /readyz says so.
        let ready = Instant::now() + Duration::from_secs(30);
        while !bash(&format!(
            "curl -s -o /dev/null -w '%{{http_code}}' http://{ops}/readyz || true"
        ))
        .starts_with("200")
        {
            assert!(
                Instant::now() < ready,
                "the demo's /readyz never answered 200"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let answer = bash(&format!("{}\n{curl}", exports.join("\n")));
        assert!(answer.starts_with("HTTP/1.1 200"), "{curl}\n{answer}");
        assert!(
            answer.contains("v-a1"),
            "Victor sees his tenant's vessels: {answer}"
        );
    }
    let _ = demo.kill();
    let _ = demo.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
