//! `sentinel what-if` on a log the real gateway recorded: the audit spool
//! of a few requests is replayed through a proposed change of the demo
//! policy, and the report names exactly the decisions that flip, grouped
//! by rule and principal.
#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

mod common;

use common::{client, start, token, Options, ALICE, BOB, NORDIC, PACIFIC, VICTOR};
use serde_json::{json, Value};
use std::path::Path;

/// The demo policy with two changes: the flagship may be deleted again
/// (tenant admins lose `deny-delete-flagship`), and viewers may no longer
/// read it (`deny-v-a1-read`).
fn proposed() -> String {
    let demo = std::fs::read_to_string(common::repo().join("config/policy/demo.toml")).unwrap();
    let changed = demo.replacen("\"deny-delete-flagship\", ", "", 1).replacen(
        "permissions = [\"vessel-read\", \"voyage-read\", \"port-call-read\"]",
        "permissions = [\"vessel-read\", \"voyage-read\", \"port-call-read\", \"deny-v-a1-read\"]",
        1,
    );
    assert_ne!(changed, demo);
    format!(
        "{changed}\n[[permissions]]\nid = \"deny-v-a1-read\"\neffect = \"deny\"\nresource_type = \"vessel\"\nresource = \"v-a1\"\nactions = [\"read\"]\n"
    )
}

/// Every line of the spool's segments, in order, as one JSONL file.
fn export(spool: &Path, to: &Path) -> usize {
    let mut names: Vec<_> = std::fs::read_dir(spool)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ndjson"))
        .collect();
    names.sort();
    let text: String = names
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    std::fs::write(to, &text).unwrap();
    text.lines().count()
}

fn what_if(args: &[&std::ffi::OsStr]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sentinel"))
        .arg("what-if")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_recorded_log_names_exactly_the_flipped_decisions() {
    let gw = start(Options {
        extra_config: "[audit]\nspool_dir = \"audit-spool\"\nfsync = \"always\"\n".into(),
        ..Options::default()
    });
    let call = |method: reqwest::Method, path: &str, bearer: Option<String>| {
        let mut r = client().request(method, gw.url(path));
        if let Some(b) = bearer {
            r = r.bearer_auth(b);
        }
        async move { r.send().await.unwrap().status().as_u16() }
    };
    use reqwest::Method;
    let (victor, alice, bob) = (
        token(VICTOR, NORDIC),
        token(ALICE, NORDIC),
        token(BOB, PACIFIC),
    );
    // Recorded today: the status each request got.
    let recorded = [
        call(Method::GET, "/msw/vessels/v-a1", Some(victor.clone())).await,
        call(Method::GET, "/msw/vessels/v-a1", Some(victor.clone())).await,
        call(Method::GET, "/msw/vessels", Some(victor.clone())).await,
        call(Method::DELETE, "/msw/vessels/v-a1", Some(alice.clone())).await,
        call(Method::DELETE, "/msw/vessels/v-a2", Some(alice)).await,
        call(Method::GET, "/msw/vessels/v-a1", Some(bob)).await,
        call(Method::GET, "/msw/vessels", None).await,
        call(Method::GET, "/msw/vessels", Some("forged".into())).await,
    ];
    assert_eq!(recorded, [200, 200, 200, 403, 200, 200, 401, 401]);

    let dir = &gw.dir;
    let log = dir.join("recorded.jsonl");
    assert_eq!(export(&dir.join("audit-spool"), &log), 8);
    std::fs::write(dir.join("proposed.toml"), proposed()).unwrap();
    let (code, out, err) = what_if(&[
        "--policy".as_ref(),
        dir.join("proposed.toml").as_os_str(),
        "--against".as_ref(),
        log.as_os_str(),
        "--json".as_ref(),
    ]);
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["lines"], 8);
    assert_eq!(report["replayed"], 6);
    assert_eq!(report["flipped"], 3);
    // The two unauthenticated requests never reached a decision.
    assert_eq!(
        report["skipped"],
        json!({"no principal, resource or action": 2})
    );
    assert_eq!(
        report["groups"],
        json!([
            {"flip": "allow -> deny", "rules": "deny-v-a1-read", "reason": "explicit_deny", "count": 2,
             "principals": [{"id": VICTOR, "name": "Victor Viewer", "count": 2}]},
            {"flip": "deny -> allow", "rules": "fleet-all", "reason": "allowed", "count": 1,
             "principals": [{"id": ALICE, "name": "Alice Admin", "count": 1}]},
        ])
    );

    // Against the current policy files instead of the recorded decisions:
    // the same flips. The text form names them too.
    let (code, out, err) = what_if(&[
        "--policy".as_ref(),
        dir.join("proposed.toml").as_os_str(),
        "--current".as_ref(),
        dir.join("policy/demo.toml").as_os_str(),
        "--against".as_ref(),
        log.as_os_str(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("8 lines, 6 replayed, 3 flipped, 2 skipped\n"),
        "{out}"
    );
    assert!(
        out.contains("allow -> deny  rules=deny-v-a1-read  reason=explicit_deny  2\n"),
        "{out}"
    );
    assert!(
        out.contains(&format!("    {VICTOR} (Victor Viewer)  2\n")),
        "{out}"
    );
    assert!(
        out.contains("deny -> allow  rules=fleet-all  reason=allowed  1\n"),
        "{out}"
    );
    assert!(err.contains("lines/s"), "{err}");

    // The unchanged policy flips nothing.
    let (code, out, _) = what_if(&[
        "--policy".as_ref(),
        dir.join("policy/demo.toml").as_os_str(),
        "--against".as_ref(),
        log.as_os_str(),
        "--json".as_ref(),
    ]);
    assert_eq!(code, 0);
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["flipped"], 0);
    assert_eq!(report["groups"], json!([]));

    // A proposal that does not compile is refused with its problems.
    std::fs::write(
        dir.join("broken.toml"),
        "[[roles]]\nid = \"x\"\nname = \"x\"\nparent = \"nope\"\n",
    )
    .unwrap();
    let (code, _, err) = what_if(&[
        "--policy".as_ref(),
        dir.join("broken.toml").as_os_str(),
        "--against".as_ref(),
        log.as_os_str(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("broken.toml"), "{err}");
}
