//! Just-in-time access end to end (issue 19) with the real binaries: the
//! `sentinel-admin` API (and its approvals worker) on a throwaway PostgreSQL
//! database and a gateway pulling its snapshots. Alice gets `403
//! APPROVAL_REQUIRED` deleting a voyage, posts the `request_access` body the
//! denial carries, two levels approve (two approvers of level 1 at the same
//! instant advance it once; self- and double approval are refused), the
//! gateway allows within a second or so (polled, no timing assertion), the
//! short grant expires and the gateway denies again. Then a denial, an
//! escalation by the worker after a level's timeout, a delegate's approval
//! and an auto-approval, each seen at the gateway; a revocation denies
//! again; and the notifications of it all reach a local webhook receiver.
//!
//! Run: `cargo test --workspace --test approvals_e2e` (needs `psql`,
//! PostgreSQL at `DATABASE_URL` and the `sentinel-admin` binary;
//! `SENTINEL_ADMIN_BIN` names another build of it).
#![expect(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod common;

use common::*;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const GATEWAY_KEY_ENV: &str = "SENTINEL_APPROVALS_E2E_KEY";
const PW: &str = "Zq8!mV3#pLx2wR-appr";
/// The key-encryption key the admin binaries seal private keys with (tests only).
const KEK: &str = "c2VudGluZWwgdGVzdCBrZWssIDMyIGJ5dGVzIGxvbmc=";

fn admin_binary() -> PathBuf {
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
        "{} is missing: run `cargo build -p sentinel-admin` first",
        bin.display()
    );
    bin
}

fn database_base() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

fn psql(url: &str, sql: &str) -> String {
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

struct Db {
    name: String,
}

impl Db {
    fn new() -> Db {
        let name = format!("sentinel_approvals_e2e_{}", uuid::Uuid::new_v4().simple());
        psql(&database_base(), &format!("CREATE DATABASE {name}"));
        Db { name }
    }

    /// (owner URL, API-role URL)
    fn urls(&self) -> (String, String) {
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

fn admin(url: &str, args: &[&str]) -> String {
    let out = Command::new(admin_binary())
        .args(args)
        .env("DATABASE_URL", url)
        .env("SENTINEL_ARGON2_M_KIB", "256")
        .env("SENTINEL_ARGON2_T", "1")
        .env("SENTINEL_KEK", KEK)
        .env("SENTINEL_BOOTSTRAP_PASSWORD", "Root-Passw0rd!")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sentinel-admin {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

struct AdminServer {
    child: Child,
    listen: String,
}

impl AdminServer {
    fn start(db_url: &str) -> AdminServer {
        let listen = format!("127.0.0.1:{}", free_port());
        let child = Command::new(admin_binary())
            .args(["serve", "--listen", &listen])
            .env("DATABASE_URL", db_url)
            .env("SENTINEL_ARGON2_M_KIB", "256")
            .env("SENTINEL_ARGON2_T", "1")
            .env("SENTINEL_KEK", KEK)
            .env("SENTINEL_AUTH_RATE_PER_MINUTE", "10000")
            .env("SENTINEL_AUTH_RATE_BURST", "10000")
            // The worker every 200 ms: an escalation after a 2 s timeout shows quickly.
            .env("SENTINEL_APPROVALS_WORKER_MS", "200")
            // Notifications go to a receiver on loopback, polled often.
            .env("SENTINEL_WEBHOOK_ALLOW_LOOPBACK", "true")
            .env("SENTINEL_WEBHOOK_POLL_MS", "100")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while std::net::TcpStream::connect(&listen).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "admin API did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        AdminServer { child, listen }
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The admin API over HTTP.
struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .http
            .request(m, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.call("POST", path, token, Some(body)).await
    }

    async fn ok(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> Value {
        let (s, v) = self.call(method, path, token, body).await;
        assert!((200..300).contains(&s), "{method} {path}: {s} {v}");
        v
    }

    async fn login(&self, email: &str, password: &str) -> String {
        let resp = self
            .http
            .post(format!("{}/api/v1/auth/login", self.base))
            .json(&json!({"email": email, "password": password, "tenant_code": "TEST-001"}))
            .send()
            .await
            .unwrap();
        let v: Value = resp.json().await.unwrap();
        assert!(v["access_token"].is_string(), "login {email}: {v}");
        v["access_token"].as_str().unwrap().to_owned()
    }

    /// A user of TEST-001 with `role_id`; returns (token, id).
    async fn user(&self, admin: &str, email: &str, role_id: &str) -> (String, String) {
        let v = self
            .ok(
                "POST",
                "/api/v1/users",
                admin,
                Some(json!({"email": email, "password": PW, "role_ids": [role_id]})),
            )
            .await;
        (
            self.login(email, PW).await,
            v["id"].as_str().unwrap().to_owned(),
        )
    }

    async fn approve(&self, token: &str, id: &str) -> (u16, Value) {
        self.post(
            &format!("/api/v1/access-requests/{id}/approve"),
            token,
            json!({"comment": "ok"}),
        )
        .await
    }
}

/// DELETE /fleet/voyages/{voyage} as Alice at the gateway: the status and body.
async fn delete_voyage(gw: &Gateway, voyage: &str) -> (u16, Value) {
    let resp = client()
        .delete(gw.url(&format!("/fleet/voyages/{voyage}")))
        .bearer_auth(token(ALICE, NORDIC))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Polls the gateway until DELETE of `voyage` answers `want` (a grant
/// arrived: not 403; it left: 403 APPROVAL_REQUIRED). No timing assertion
/// beyond a generous limit.
async fn until(gw: &Gateway, voyage: &str, allowed: bool) -> Duration {
    let start = Instant::now();
    loop {
        let (s, v) = delete_voyage(gw, voyage).await;
        let denied = s == 403 && v["error"]["code"] == "APPROVAL_REQUIRED";
        if allowed && s != 403 {
            assert!(s < 400, "{s} {v}");
            return start.elapsed();
        }
        if !allowed && denied {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "voyage {voyage}: still {s} {v} (wanted allowed = {allowed})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A local webhook receiver: answers `200` to every POST and keeps the
/// `sentinel-event` header of each.
async fn receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let keep = keep.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n");
                    if let Some(end) = head_end {
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            if let Some(ev) =
                                head.lines().find_map(|l| l.strip_prefix("sentinel-event:"))
                            {
                                keep.lock().unwrap().push(ev.trim().to_owned());
                            }
                            let _ = sock
                                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                                .await;
                            return;
                        }
                    }
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    (url, seen)
}

async fn request_status(api: &Api, token: &str, id: &str) -> Value {
    api.ok("GET", &format!("/api/v1/access-requests/{id}"), token, None)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn approval_required_request_approve_allow_expire_and_the_rest() {
    let db = Db::new();
    let (owner, api_role) = db.urls();
    admin(&owner, &["migrate"]);
    psql(
        &owner,
        "ALTER ROLE sentinel_api PASSWORD 'sentinel-api-test'",
    );
    admin(
        &owner,
        &["bootstrap", "--email", "root@platform.example.com"],
    );
    admin(&owner, &["seed-demo"]);
    let key = admin(
        &owner,
        &["gateway-key", "create", "--name", "gw-approvals-e2e"],
    )
    .trim()
    .to_owned();
    let pinned = admin(&owner, &["snapshot-jwks"]);
    admin(&owner, &["publish"]);
    let server = AdminServer::start(&api_role);
    let api = Api {
        base: format!("http://{}", server.listen),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
    };
    let dir = std::env::temp_dir().join(format!("sentinel-approvals-e2e-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("snapshot.jwks.json"), &pinned).unwrap();
    let section = format!(
        "[policy]\nsource = \"admin\"\nadmin_url = \"{}\"\nkeys_file = \"{}\"\napi_key_env = \"{GATEWAY_KEY_ENV}\"\nwait = \"30s\"\ncache_file = \"{}\"\nbackoff_min = \"100ms\"\nbackoff_max = \"500ms\"\n",
        api.base,
        dir.join("snapshot.jwks.json").display(),
        dir.join("snapshot.cache").display(),
    );
    let gw = start(Options {
        policy_section: Some(section),
        env: vec![(GATEWAY_KEY_ENV.to_owned(), key)],
        capture_log: true,
        ..Options::default()
    });

    // People: Alice (tenant admin) asks; a1/a2 decide level 1, `security` level 2.
    let alice = api.login("alice@nordic.example", "Demo-Passw0rd!").await;
    let approver = api
        .ok(
            "POST",
            "/api/v1/roles",
            &alice,
            Some(json!({"name": "approver", "scopes": ["approvals:decide"]})),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let security = api
        .ok(
            "POST",
            "/api/v1/roles",
            &alice,
            Some(json!({"name": "security", "scopes": ["approvals:decide"]})),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (a1, a1_id) = api.user(&alice, "a1@nordic.example", &approver).await;
    let (a2, a2_id) = api.user(&alice, "a2@nordic.example", &approver).await;
    let (sec, _) = api.user(&alice, "sec@nordic.example", &security).await;
    let (del, del_id) = api.user(&alice, "del@nordic.example", &approver).await;
    let chain = api
        .ok(
            "POST",
            "/api/v1/approval-chains",
            &alice,
            Some(json!({
                "name": "voyage-deletion",
                "resource_type": "voyage",
                "action": "delete",
                "levels": [
                    {"approvers": {"type": "users", "user_ids": [a1_id, a2_id]}},
                    {"approvers": {"type": "role", "role": "security"}}
                ],
                "default_duration_seconds": 60,
                "max_duration_seconds": 3600
            })),
        )
        .await;
    let chain_path = format!("/api/v1/approval-chains/{}", chain["id"].as_str().unwrap());
    let (hook_url, seen) = receiver().await;
    api.ok(
        "POST",
        "/api/v1/webhooks",
        &alice,
        Some(
            json!({"url": hook_url, "secret": "approvals-e2e-secret-0123456789",
                    "events": ["access_request.*", "access_grant.*"]}),
        ),
    )
    .await;

    // 1. The gateway asks for approval and says how.
    let (s, denial) = delete_voyage(&gw, "voy-a1").await;
    assert_eq!(
        (s, denial["error"]["code"].as_str()),
        (403, Some("APPROVAL_REQUIRED")),
        "{denial}"
    );
    let how = &denial["error"]["details"]["request_access"];
    assert_eq!(
        denial["error"]["details"]["approval_chain_id"],
        "voyage-deletion"
    );
    assert_eq!(
        (how["method"].as_str(), how["path"].as_str()),
        (Some("POST"), Some("/api/v1/access-requests"))
    );
    // 2. Exactly that body, plus a justification and a short duration.
    let mut body = how["body"].clone();
    body["justification"] = json!("duplicate voyage");
    body["duration"] = json!(3);
    let (s, req) = api.post(how["path"].as_str().unwrap(), &alice, body).await;
    assert_eq!(s, 201, "{req}");
    let id = req["id"].as_str().unwrap().to_owned();
    // Nobody approves their own request.
    let (s, v) = api.approve(&alice, &id).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (403, Some("PERMISSION_DENIED")),
        "{v}"
    );
    // 3. Two approvers of level 1 at the same instant: the level advances once.
    let ((s1, v1), (s2, v2)) = tokio::join!(api.approve(&a1, &id), api.approve(&a2, &id));
    assert_eq!(
        [s1, s2].iter().filter(|s| **s == 200).count(),
        1,
        "{v1} {v2}"
    );
    let winner = if s1 == 200 { &a1 } else { &a2 };
    assert_eq!(request_status(&api, &alice, &id).await["current_level"], 2);
    // Nobody approves twice.
    let (s, v) = api.approve(winner, &id).await;
    assert_eq!(s, 403, "{v}");
    assert_eq!(
        delete_voyage(&gw, "voy-a1").await.0,
        403,
        "level 2 still open"
    );
    let (s, v) = api.approve(&sec, &id).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("approved")), "{v}");
    // 4. The gateway allows within about a second (polled), then the
    //    3-second grant expires and it asks for approval again.
    let took = until(&gw, "voy-a1", true).await;
    println!(
        "approvals e2e: grant enforced {} ms after the last approval",
        took.as_millis()
    );
    until(&gw, "voy-a1", false).await;

    // 5. A denial: still APPROVAL_REQUIRED.
    let (_, r) = api.post("/api/v1/access-requests", &alice, json!({"approval_chain_id": "voyage-deletion", "resource": "voyage:voy-b1", "action": "delete"})).await;
    let rid = r["id"].as_str().unwrap().to_owned();
    let (s, v) = api
        .post(
            &format!("/api/v1/access-requests/{rid}/deny"),
            &a1,
            json!({"comment": "no"}),
        )
        .await;
    assert_eq!((s, v["status"].as_str()), (200, Some("denied")), "{v}");
    let (s, v) = delete_voyage(&gw, "voy-b1").await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (403, Some("APPROVAL_REQUIRED"))
    );

    // 6. Escalation: one level, a1 alone, 2 s timeout, then `security` too.
    //    The admin API's own worker escalates it.
    api.ok(
        "PATCH",
        &chain_path,
        &alice,
        Some(
            json!({"levels": [{"approvers": {"type": "users", "user_ids": [a1_id]},
                                "timeout_seconds": 2,
                                "escalate_to": {"type": "role", "role": "security"}}]}),
        ),
    )
    .await;
    let (_, r) = api.post("/api/v1/access-requests", &alice, json!({"approval_chain_id": "voyage-deletion", "resource": "voyage:voy-c1", "action": "delete"})).await;
    let rid = r["id"].as_str().unwrap().to_owned();
    let (s, _) = api.approve(&sec, &rid).await;
    assert_eq!(s, 403, "not escalated yet");
    let start = Instant::now();
    while request_status(&api, &alice, &rid).await["escalated"] != true {
        assert!(start.elapsed() < Duration::from_secs(20), "never escalated");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (s, v) = api.approve(&sec, &rid).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("approved")), "{v}");
    until(&gw, "voy-c1", true).await;

    // 7. Delegation: a1 names del for the next hour; del approves in a1's place.
    let in_an_hour = psql(
        &owner,
        "SELECT to_char((now() AT TIME ZONE 'UTC') + interval '1 hour', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
    )
    .trim()
    .to_owned();
    api.ok(
        "POST",
        "/api/v1/approval-delegations",
        &a1,
        Some(json!({"delegate_id": del_id, "ends_at": in_an_hour})),
    )
    .await;
    let (_, r) = api.post("/api/v1/access-requests", &alice, json!({"approval_chain_id": "voyage-deletion", "resource": "voyage:voy-d1", "action": "delete"})).await;
    let rid = r["id"].as_str().unwrap().to_owned();
    let (s, v) = api.approve(&del, &rid).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("approved")), "{v}");
    assert_eq!(
        request_status(&api, &alice, &rid).await["decisions"][0]["on_behalf_of"],
        a1_id.as_str()
    );
    until(&gw, "voy-d1", true).await;

    // 8. Auto-approval: on, for holders of `tenant_admin`.
    api.ok(
        "PATCH",
        &chain_path,
        &alice,
        Some(json!({"auto_approve_enabled": true,
                    "auto_approve_conditions": [{"type": "role", "role": "tenant_admin"}]})),
    )
    .await;
    let (s, r) = api.post("/api/v1/access-requests", &alice, json!({"approval_chain_id": "voyage-deletion", "resource": "voyage:voy-e1", "action": "delete"})).await;
    assert_eq!(
        (s, r["status"].as_str(), r["auto_approved"].as_bool()),
        (201, Some("approved"), Some(true)),
        "{r}"
    );
    until(&gw, "voy-e1", true).await;

    // 9. Revocation: denied again.
    let grant = r["grant_id"].as_str().unwrap();
    api.ok(
        "POST",
        &format!("/api/v1/access-grants/{grant}/revoke"),
        &alice,
        Some(json!({})),
    )
    .await;
    until(&gw, "voy-e1", false).await;

    let metrics = api
        .http
        .get(format!("{}/metrics", api.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("sentinel_approval_chains_total{action=\"delete\",auto_approved=\"true\",status=\"approved\"} 1"), "{metrics}");

    // 10. Every kind of change reached the webhook (delivered by the outbox).
    let want = [
        "access_request.requested",
        "access_request.level_approved",
        "access_request.granted",
        "access_request.denied",
        "access_request.escalated",
        "access_grant.revoked",
    ];
    let start = Instant::now();
    loop {
        let got = seen.lock().unwrap().clone();
        if want.iter().all(|w| got.iter().any(|g| g == w)) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "webhook got only {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = std::fs::remove_dir_all(dir);
}
