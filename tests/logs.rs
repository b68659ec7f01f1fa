//! Log lines a person and a machine can read (docs/operations.md, "Logs"):
//! the real `sentinel` binary in each format, by flag, by `[logging]`, and
//! in `sentinel demo`; neither format carries a build machine's paths (the
//! `log` records of Pingora used to name the cargo registry's files).
//!
//! Run: `cargo test --test logs`
#![expect(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]

mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// No source path of the build machine (`/root/.cargo/registry/src/…`), in any line.
fn assert_no_build_paths(log: &str) {
    for bad in ["/.cargo/registry", "/root/", ".rs:", "log.file", "log.line"] {
        assert!(!log.contains(bad), "`{bad}` in the log:\n{log}");
    }
}

/// Every line is a JSON object with `timestamp`, `level`, `fields`, `target`.
fn assert_json(log: &str) {
    let mut lines = 0;
    for l in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        for key in ["timestamp", "level", "fields", "target"] {
            assert!(v.get(key).is_some(), "no `{key}`: {l}");
        }
        assert!(l.starts_with("{\"timestamp\":"), "timestamp first: {l}");
        lines += 1;
    }
    assert!(lines > 0, "no log line");
}

/// No line is JSON, and each names its level.
fn assert_pretty(log: &str) {
    let mut lines = 0;
    for l in log.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            serde_json::from_str::<serde_json::Value>(l).is_err(),
            "a JSON line in the pretty log: {l}"
        );
        assert!(
            ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]
                .iter()
                .any(|lvl| l.contains(lvl)),
            "no level: {l}"
        );
        lines += 1;
    }
    assert!(lines > 0, "no log line");
}

/// Starts a gateway with its log captured and waits for Pingora's own start-up
/// lines (`log` records) to be written; answers the log.
fn gateway_log(extra_args: &[&str], extra_config: &str) -> String {
    let gw = start(Options {
        extra_args: extra_args.iter().map(|a| (*a).to_owned()).collect(),
        extra_config: extra_config.to_owned(),
        capture_log: true,
        ..Options::default()
    });
    let start = Instant::now();
    while !gw.log().contains("pingora") {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no Pingora line in the log:\n{}",
            gw.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    gw.log()
}

#[test]
fn the_gateway_logs_json_by_default_and_without_build_paths() {
    // stderr is a file here, not a terminal: JSON.
    for args in [&[][..], &["--log-format", "json"][..]] {
        let log = gateway_log(args, "");
        assert_json(&log);
        assert_no_build_paths(&log);
    }
}

#[test]
fn the_gateway_logs_pretty_by_flag_or_config() {
    for (args, config) in [
        (&["--log-format", "pretty"][..], ""),
        (&[][..], "\n[logging]\nformat = \"pretty\"\n"),
    ] {
        let log = gateway_log(args, config);
        assert_pretty(&log);
        assert_no_build_paths(&log);
    }
    // The flag wins over the config.
    let log = gateway_log(
        &["--log-format", "json"],
        "\n[logging]\nformat = \"pretty\"\n",
    );
    assert_json(&log);
}

#[test]
fn an_unknown_log_format_is_a_config_problem_and_a_usage_error() {
    let dir = bundled_config_copy("log-format");
    let config = dir.join("sentinel.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{text}\n[logging]\nformat = \"xml\"\n")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sentinel"))
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains("unknown log format `xml`: expected `json` or `pretty`"),
        "{stdout}"
    );
    assert!(stdout.contains("sentinel.toml:"), "{stdout}");
    let out = Command::new(env!("CARGO_BIN_EXE_sentinel"))
        .args(["run", "--log-format", "xml", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "clap's usage error");
    let _ = std::fs::remove_dir_all(dir);
}

/// `sentinel demo` (pretty unless told otherwise): its stderr until Pingora's
/// start-up lines are in.
fn demo_log(args: &[&str]) -> String {
    let dir = std::env::temp_dir().join(format!("sentinel-logs-demo-{}", uuid::Uuid::new_v4()));
    let mut demo = Command::new(env!("CARGO_BIN_EXE_sentinel"))
        .arg("demo")
        .args(["--listen", &free_addr().to_string()])
        .args(["--ops", &free_addr().to_string()])
        .arg("--dir")
        .arg(&dir)
        .args(args)
        .env("SENTINEL_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stderr = demo.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let mut log = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !log.contains("pingora") {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(l) = rx.recv_timeout(left) else {
            let _ = demo.kill();
            panic!("the demo logged no Pingora line:\n{log}");
        };
        log.push_str(&l);
        log.push('\n');
    }
    // A little more of the start-up, then stop.
    while let Ok(l) = rx.recv_timeout(Duration::from_millis(300)) {
        log.push_str(&l);
        log.push('\n');
    }
    let _ = demo.kill();
    let _ = demo.wait();
    let _ = std::fs::remove_dir_all(dir);
    log
}

#[test]
fn the_demo_logs_pretty_lines_or_json_on_request() {
    let log = demo_log(&[]);
    assert_pretty(&log);
    assert_no_build_paths(&log);
    let log = demo_log(&["--log-format", "json"]);
    assert_json(&log);
    assert_no_build_paths(&log);
}
