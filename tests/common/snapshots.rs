//! Signed snapshots for tests: the pinned test key (Ed25519, from
//! `policy/tests/keys`), a rogue key, the demo policy as a `PolicySource`,
//! bundles built from it (`sentinel_policy::bundle`), and a small snapshot
//! server speaking the admin API's wire contract
//! (`GET /api/v1/snapshots/latest`) that a test scripts, hostile or not. The
//! server always answers whole bundles (every part), which a gateway must
//! accept whatever it holds. It also takes audit batches
//! (`POST /api/v1/audit/events`, gzipped ndjson) with a scripted status.

use jsonwebtoken::Algorithm;
use sentinel_policy::bundle::{self, Manifest, PartRef, FORMAT};
use sentinel_policy::signed::{payload_sha256, SnapshotSigner};
use sentinel_policy::PolicySource;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const PINNED_KID: &str = "snap-test-1";
pub const API_KEY: &str = "sk_test_gatewaykey";
pub const API_KEY_ENV: &str = "SENTINEL_TEST_ADMIN_KEY";

fn keys_dir() -> std::path::PathBuf {
    super::repo().join("policy/tests/keys")
}

/// The key gateways pin.
pub fn signer() -> SnapshotSigner {
    let pem = std::fs::read(keys_dir().join("snap-ed.pem")).unwrap();
    SnapshotSigner::from_pem(PINNED_KID, Algorithm::EdDSA, &pem).unwrap()
}

/// A key nobody pinned, under any `kid`.
pub fn rogue(kid: &str) -> SnapshotSigner {
    let pem = std::fs::read(keys_dir().join("other-ed.pem")).unwrap();
    SnapshotSigner::from_pem(kid, Algorithm::EdDSA, &pem).unwrap()
}

/// The pinned JWKS (the public half of [`signer`]).
pub fn pinned_jwks() -> String {
    jwks_of(&[("snap-ed.pub.pem", PINNED_KID)])
}

/// A JWKS of Ed25519 public keys of `policy/tests/keys` under the given kids
/// (`other-ed.pub.pem` is the public half of [`rogue`]).
pub fn jwks_of(keys: &[(&str, &str)]) -> String {
    use base64::Engine;
    let keys: Vec<serde_json::Value> = keys
        .iter()
        .map(|(file, kid)| {
            let pem = std::fs::read_to_string(keys_dir().join(file)).unwrap();
            let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
            let der = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap();
            // An Ed25519 SPKI ends with the 32-byte public key.
            let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&der[der.len() - 32..]);
            serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig"})
        })
        .collect();
    serde_json::json!({ "keys": keys }).to_string()
}

/// The demo policy as a source at `version`.
pub fn demo_source(version: u64) -> PolicySource {
    let text = std::fs::read_to_string(super::repo().join("config/policy/demo.toml")).unwrap();
    let mut src: PolicySource = toml::from_str(&text).unwrap();
    src.version = version;
    src
}

/// The demo policy at `version`, also revoking the token ids in `revoked`.
pub fn payload(version: u64, revoked: &[&str]) -> Vec<u8> {
    let mut src = demo_source(version);
    for jti in revoked {
        src.revoked_tokens
            .push(serde_json::from_value(serde_json::json!({ "jti": jti })).unwrap());
    }
    serde_json::to_vec(&src).unwrap()
}

/// A whole bundle of a policy, before it is signed: the manifest (every part
/// `since = version`) and the parts.
pub struct Parts {
    pub manifest: Manifest,
    pub parts: Vec<(String, Vec<u8>)>,
}

impl Parts {
    /// Splits the policy source in `payload` (JSON) into parts for `version`.
    pub fn of(version: u64, payload: &[u8]) -> Parts {
        let src: PolicySource = serde_json::from_slice(payload).unwrap();
        let (global, shards) = bundle::split(&src).unwrap();
        let mut parts = Vec::new();
        let mut part = |p: &PolicySource| {
            let bytes = bundle::part_bytes(p);
            let sha256 = payload_sha256(&bytes);
            parts.push((sha256.clone(), bytes));
            PartRef::next(None, sha256, version)
        };
        let global = part(&global);
        let shards = shards.iter().map(|(t, s)| (*t, part(s))).collect();
        Parts {
            manifest: Manifest {
                format: FORMAT.into(),
                version,
                global,
                shards,
                anomaly_model: None,
            },
            parts,
        }
    }

    pub fn manifest_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.manifest).unwrap()
    }

    /// The bundle body with `signature` over the manifest bytes.
    pub fn body(&self, signature: &str) -> Vec<u8> {
        let list: Vec<(&str, &[u8])> = self
            .parts
            .iter()
            .map(|(h, b)| (h.as_str(), b.as_slice()))
            .collect();
        bundle::encode(signature, &self.manifest_bytes(), &list)
    }

    /// Signed by the pinned key as `version`.
    pub fn signed_body(&self, version: u64) -> Vec<u8> {
        let sig = signer()
            .sign(&self.manifest_bytes(), version, super::now())
            .unwrap();
        self.body(&sig)
    }
}

/// What the server answers to a request that does not already hold `version`.
#[derive(Clone)]
pub struct Reply {
    pub version: u64,
    /// The bundle body.
    pub body: Vec<u8>,
    /// Announce this `Content-Length` but send only `body` (then close).
    pub declared_len: Option<usize>,
    /// Send it even to a gateway that says it holds `version` (an attacker
    /// replaying a same-version snapshot with other content).
    pub force: bool,
}

impl Reply {
    /// A correctly signed whole bundle of the policy source in `payload`.
    pub fn signed(version: u64, payload: Vec<u8>) -> Reply {
        Reply::body(version, Parts::of(version, &payload).signed_body(version))
    }

    /// A reply carrying `body` as it is.
    pub fn body(version: u64, body: Vec<u8>) -> Reply {
        Reply {
            version,
            body,
            declared_len: None,
            force: false,
        }
    }
}

#[derive(Default)]
struct Script {
    reply: Mutex<Option<Reply>>,
    down: AtomicBool,
    requests: AtomicU64,
    bad_auth: AtomicU64,
    /// The status audit batches get (0: 200, keep the events).
    audit_status: std::sync::atomic::AtomicU16,
    audit_batches: AtomicU64,
    audit_events: Mutex<Vec<serde_json::Value>>,
}

/// A scripted snapshot server on 127.0.0.1.
pub struct SnapshotServer {
    pub addr: SocketAddr,
    script: Arc<Script>,
}

impl SnapshotServer {
    /// Starts on its own thread and runtime.
    pub fn start() -> SnapshotServer {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap();
        let script = Arc::new(Script::default());
        let s = script.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let l = tokio::net::TcpListener::from_std(l).unwrap();
                loop {
                    let Ok((conn, _)) = l.accept().await else {
                        continue;
                    };
                    tokio::spawn(serve(conn, s.clone()));
                }
            });
        });
        SnapshotServer { addr, script }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set(&self, reply: Reply) {
        *self.script.reply.lock().unwrap() = Some(reply);
    }

    /// Down: every connection is closed at once (as if the API were stopped).
    pub fn set_down(&self, down: bool) {
        self.script.down.store(down, Ordering::SeqCst);
    }

    pub fn requests(&self) -> u64 {
        self.script.requests.load(Ordering::SeqCst)
    }

    pub fn bad_auth(&self) -> u64 {
        self.script.bad_auth.load(Ordering::SeqCst)
    }

    /// What audit batches are answered (200 keeps them).
    pub fn set_audit_status(&self, status: u16) {
        self.script.audit_status.store(status, Ordering::SeqCst);
    }

    /// Audit batches received (any answer).
    pub fn audit_batches(&self) -> u64 {
        self.script.audit_batches.load(Ordering::SeqCst)
    }

    /// Every audit event of every batch answered 200, in arrival order.
    pub fn audit_events(&self) -> Vec<serde_json::Value> {
        self.script.audit_events.lock().unwrap().clone()
    }
}

/// `POST /api/v1/audit/events`: checks the key and the encoding, answers
/// the scripted status, keeps the events of a batch answered 200.
async fn ingest(conn: &mut tokio::net::TcpStream, mut buf: Vec<u8>, script: &Script) {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut chunk = [0u8; 65536];
    while buf.len() < end + len {
        match conn.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    script.audit_batches.fetch_add(1, Ordering::SeqCst);
    let answer = |status: u16, body: &str| {
        format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let authorized = head.contains(&format!(
        "authorization: apikey {}\r\n",
        API_KEY.to_ascii_lowercase()
    ));
    let gzip = head.contains("content-encoding: gzip\r\n")
        && head.contains("content-type: application/x-ndjson\r\n");
    let status = script.audit_status.load(Ordering::SeqCst);
    let reply = if !authorized {
        script.bad_auth.fetch_add(1, Ordering::SeqCst);
        answer(401, "{}")
    } else if !gzip {
        answer(415, "{}")
    } else if status != 0 && status != 200 {
        answer(
            status,
            r#"{"error":{"code":"SCRIPTED","message":"scripted","details":{}}}"#,
        )
    } else {
        use std::io::Read;
        let mut text = String::new();
        flate2::read::GzDecoder::new(&buf[end..end + len])
            .read_to_string(&mut text)
            .unwrap();
        let events: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let n = events.len();
        script.audit_events.lock().unwrap().extend(events);
        answer(200, &format!("{{\"accepted\":{n},\"duplicates\":0}}"))
    };
    let _ = conn.write_all(reply.as_bytes()).await;
}

async fn serve(mut conn: tokio::net::TcpStream, script: Arc<Script>) {
    if script.down.load(Ordering::SeqCst) {
        return;
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    script.requests.fetch_add(1, Ordering::SeqCst);
    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    if head.starts_with("post /api/v1/audit/events ") {
        return ingest(&mut conn, buf, &script).await;
    }
    if !head.starts_with("get /api/v1/snapshots/latest?wait=") {
        let _ = conn
            .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .await;
        return;
    }
    if !head.contains(&format!(
        "authorization: apikey {}\r\n",
        API_KEY.to_ascii_lowercase()
    )) {
        script.bad_auth.fetch_add(1, Ordering::SeqCst);
        let _ = conn
            .write_all(
                b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            )
            .await;
        return;
    }
    let held = head
        .lines()
        .find_map(|l| l.strip_prefix("if-none-match: "))
        .map(|v| v.trim().trim_matches('"').to_owned());
    // Long poll, shortened to 300 ms: answer as soon as something newer is set.
    let mut reply = script.reply.lock().unwrap().clone();
    for _ in 0..30 {
        let same = matches!((&reply, &held), (Some(r), Some(h)) if !r.force && r.version.to_string() == *h);
        if !same {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        reply = script.reply.lock().unwrap().clone();
    }
    let Some(reply) = reply else {
        let body = br#"{"error":{"code":"POLICY_UNAVAILABLE","message":"nothing published","details":{}},"request_id":""}"#;
        let _ = conn
            .write_all(format!("HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len()).as_bytes())
            .await;
        let _ = conn.write_all(body).await;
        return;
    };
    if !reply.force && held.as_deref() == Some(reply.version.to_string().as_str()) {
        let _ = conn
            .write_all(
                format!(
                    "HTTP/1.1 304 Not Modified\r\netag: \"{}\"\r\nconnection: close\r\n\r\n",
                    reply.version
                )
                .as_bytes(),
            )
            .await;
        return;
    }
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\netag: \"{v}\"\r\nx-sentinel-snapshot-version: {v}\r\nconnection: close\r\n\r\n",
        reply.declared_len.unwrap_or(reply.body.len()),
        v = reply.version
    );
    let _ = conn.write_all(head.as_bytes()).await;
    let _ = conn.write_all(&reply.body).await;
    let _ = conn.flush().await;
}

/// The `[policy]` section for an admin source at `url`, with short waits and
/// backoffs for tests. `extra` is appended (e.g. `max_age`).
pub fn admin_policy_section(dir_keys: &Path, url: &str, extra: &str) -> String {
    std::fs::create_dir_all(dir_keys).unwrap();
    std::fs::write(dir_keys.join("snapshot.jwks.json"), pinned_jwks()).unwrap();
    format!(
        "[policy]\nsource = \"admin\"\nadmin_url = \"{url}\"\nkeys_file = \"{}\"\napi_key_env = \"{API_KEY_ENV}\"\nwait = \"1s\"\ncache_file = \"{}\"\ntimeout = \"2s\"\nbackoff_min = \"100ms\"\nbackoff_max = \"400ms\"\nwatch_interval = \"200ms\"\n{extra}",
        dir_keys.join("snapshot.jwks.json").display(),
        dir_keys.join("snapshot.cache").display(),
    )
}

/// The environment carrying the gateway's API key.
pub fn admin_env() -> Vec<(String, String)> {
    vec![(API_KEY_ENV.to_owned(), API_KEY.to_owned())]
}
