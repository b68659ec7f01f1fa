//! The admin API's log lines (docs/operations.md, "Logs"): JSON when asked
//! (and by default off a terminal), a compact line with `pretty`, never a
//! source path of the build machine.

use crate::binary::{admin_cmd, run, urls};
use crate::common::*;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

/// `serve` as the owner role with `--allow-privileged-role` logs one warning
/// at start; answers that line.
async fn warning_line(url: &str, format: Option<&str>) -> String {
    let mut cmd = admin_cmd(url);
    cmd.arg("serve")
        .args(["--listen", "127.0.0.1:0", "--allow-privileged-role"]);
    if let Some(f) = format {
        cmd.args(["--log-format", f]);
    }
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("no log line within 20 s")
        .unwrap()
        .expect("stderr closed without a log line");
    child.kill().await.unwrap();
    for bad in ["/.cargo/registry", "/root/", ".rs:"] {
        assert!(!line.contains(bad), "`{bad}` in {line}");
    }
    assert!(line.contains("row-level security"), "{line}");
    line
}

#[tokio::test]
async fn serve_logs_json_or_pretty_lines() {
    let db = TestDb::new().await;
    let (owner, _) = urls(&db.name);
    let (ok, out) = run(&owner, &["migrate"], &[]).await;
    assert!(ok, "{out}");
    // stderr is a pipe here: JSON without a flag, and with `json`.
    for format in [None, Some("json")] {
        let line = warning_line(&owner, format).await;
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert_eq!(v["level"], "WARN", "{line}");
        assert!(v["fields"]["message"].is_string(), "{line}");
    }
    let line = warning_line(&owner, Some("pretty")).await;
    assert!(
        serde_json::from_str::<serde_json::Value>(&line).is_err(),
        "{line}"
    );
    assert!(line.contains(" WARN "), "{line}");
}
