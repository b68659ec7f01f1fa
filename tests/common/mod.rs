//! Test harness: starts the real `sentinel` binary on free loopback ports in
//! front of the echo upstream, with the demo policy and routes plus test-only
//! routes, and mints tokens with the demo issuer's key.
#![expect(
    dead_code,
    reason = "each test crate includes this harness and uses a part of it"
)]
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly, in their helpers too"
)]

pub mod admin;
pub mod snapshots;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ALICE: &str = "aaaaaaaa-0000-4000-8000-000000000001";
pub const VICTOR: &str = "aaaaaaaa-0000-4000-8000-000000000002";
pub const FLEET_SA: &str = "aaaaaaaa-0000-4000-8000-000000000003";
pub const LENA: &str = "aaaaaaaa-0000-4000-8000-000000000004";
pub const BOB: &str = "bbbbbbbb-0000-4000-8000-000000000001";
pub const CARL: &str = "cccccccc-0000-4000-8000-000000000001";
pub const NORDIC: &str = "11111111-1111-1111-1111-111111111111";
pub const TANKERS: &str = "33333333-3333-3333-3333-333333333333";
pub const PACIFIC: &str = "22222222-2222-2222-2222-222222222222";
pub const SUSPENDED: &str = "44444444-4444-4444-4444-444444444444";

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A loopback address nothing listens on (yet).
pub fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// A port with nothing listening on it.
pub fn closed_port() -> u16 {
    free_port()
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh temporary copy of the bundled `config/` (sentinel.toml, routes,
/// policy, keys), for `sentinel check` tests that add a file to it.
pub fn bundled_config_copy(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sentinel-{name}-{}", uuid::Uuid::new_v4()));
    let root = repo().join("config");
    for sub in ["routes", "policy", "keys"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        for e in std::fs::read_dir(root.join(sub)).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), dir.join(sub).join(e.file_name())).unwrap();
        }
    }
    std::fs::copy(root.join("sentinel.toml"), dir.join("sentinel.toml")).unwrap();
    dir
}

/// Starts an app of `sentinel_demo_apps` on its own runtime thread.
pub fn start_app(app: fn() -> sentinel_demo_apps::App) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::from_std(l).unwrap();
            let _ = sentinel_demo_apps::serve(l, app()).await;
        });
    });
    addr
}

pub struct Gateway {
    child: Child,
    pub proxy: SocketAddr,
    pub ops: SocketAddr,
    pub dir: PathBuf,
    pub upstream: SocketAddr,
    env: Vec<(String, String)>,
    extra_args: Vec<String>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Gateway {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.proxy, path)
    }

    pub fn ops_url(&self, path: &str) -> String {
        format!("http://{}{}", self.ops, path)
    }

    pub fn policy_path(&self) -> PathBuf {
        self.dir.join("policy/demo.toml")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (`HUP`, `QUIT`, `TERM`) to the gateway process.
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{name} failed");
    }

    /// Waits up to `limit` for the process to exit; its status, if it did.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Rewrites `sentinel.toml` (each `(from, to)` replaced once) and starts
    /// the gateway again on it, for settings in sections the demo config has
    /// already (`[limits]`, `[listen]`).
    pub fn reconfigure(&mut self, edits: &[(&str, &str)]) {
        let path = self.dir.join("sentinel.toml");
        let mut text = std::fs::read_to_string(&path).unwrap();
        for (from, to) in edits {
            assert!(text.contains(from), "`{from}` not in sentinel.toml");
            text = text.replacen(from, to, 1);
        }
        std::fs::write(&path, text).unwrap();
        self.restart(true);
    }

    /// What the gateway wrote to stderr (its log) so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }

    /// Stops the process (keeping its directory).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops and starts the gateway again on the same config and ports.
    /// `ready`: wait for `/readyz` (else only for the ops port to listen).
    /// Should another test take a port while the gateway is down, the
    /// gateway refuses to start (`cannot listen on`) and it starts again on
    /// fresh ports, as [`start`] does.
    pub fn restart(&mut self, ready: bool) {
        self.stop();
        for _ in 0..3 {
            let seen = self.log().len();
            self.child = spawn(&self.dir, &self.env, &self.extra_args);
            if wait_up(self, Duration::from_secs(30), ready) {
                return;
            }
            assert!(
                self.log()[seen..].contains("cannot listen on"),
                "gateway did not come back: {}",
                self.log()
            );
            self.stop();
            let config = self.dir.join("sentinel.toml");
            let (proxy, ops) = (free_addr(), free_addr());
            let text = std::fs::read_to_string(&config)
                .unwrap()
                .replace(&format!("\"{}\"", self.proxy), &format!("\"{proxy}\""))
                .replace(&format!("\"{}\"", self.ops), &format!("\"{ops}\""));
            std::fs::write(&config, text).unwrap();
            (self.proxy, self.ops) = (proxy, ops);
        }
        panic!("gateway did not come back: {}", self.log());
    }

    /// Starts a second process on the same config (its stderr goes to the
    /// same log), e.g. `--upgrade` for a graceful upgrade.
    pub fn spawn_sibling(&self, args: &[&str]) -> Child {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        spawn(&self.dir, &self.env, &args)
    }

    /// The gateway's `/metrics` text. Tests read metrics through
    /// [`Gateway::metric`], [`Gateway::metric_sum`] and [`Gateway::wait_metric`].
    async fn metrics_text(&self) -> String {
        client()
            .get(self.ops_url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The value of one metric line (`name{labels}`, labels as the gateway
    /// prints them), 0 when absent.
    pub async fn metric(&self, series: &str) -> f64 {
        metric_value(&self.metrics_text().await, series)
    }

    /// The sum of every series of metric `name` whose labels contain each of
    /// `labels` (e.g. `source="cluster"`).
    pub async fn metric_sum(&self, name: &str, labels: &[&str]) -> f64 {
        metric_sum(&self.metrics_text().await, name, labels)
    }

    /// Waits (up to 10 s) until `series` is at least `at_least`.
    pub async fn wait_metric(&self, series: &str, at_least: f64) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if self.metric(series).await >= at_least {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{series} never reached {at_least}; log:\n{}", self.log());
    }
}

/// The value of `series` (`name` or `name{a="b"}`) in a Prometheus text exposition.
pub fn metric_value(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok())?
        })
        .unwrap_or(0.0)
}

/// The sum of the series of metric `name` whose labels contain every one of
/// `labels`, in a Prometheus text exposition.
pub fn metric_sum(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, rest) = series.split_once('{').unwrap_or((series, ""));
            (n == name && labels.iter().all(|want| rest.contains(want)))
                .then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

/// A throwaway `redis-server` on a loopback port (for Redis going away and
/// coming back); killed on drop.
pub struct RedisServer {
    child: Child,
    pub port: u16,
}

impl RedisServer {
    /// Starts `redis-server` on `port` and waits (up to 10 s) until it listens.
    pub fn start(port: u16) -> RedisServer {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "redis-server did not start on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        RedisServer { child, port }
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn spawn(dir: &Path, env: &[(String, String)], extra_args: &[String]) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("stderr.log"))
        .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sentinel"));
    cmd.args(["run", "--config"])
        .arg(dir.join("sentinel.toml"))
        .args(extra_args)
        .env("SENTINEL_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::from(log));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

pub struct Options {
    /// Extra text appended to sentinel.toml.
    pub extra_config: String,
    /// An extra route file (routes/zz-extra.toml), if not empty.
    pub extra_routes: String,
    pub slow_read_timeout: &'static str,
    /// Replaces the `[policy]` section of the demo config (e.g. an admin source).
    pub policy_section: Option<String>,
    /// Extra environment for the gateway process.
    pub env: Vec<(String, String)>,
    /// Extra arguments to `sentinel run`.
    pub extra_args: Vec<String>,
    /// Wait for `/readyz` (false: only for the listeners, e.g. no snapshot yet).
    pub require_ready: bool,
    /// Keep the gateway's stderr in `dir/stderr.log` (see [`Gateway::log`]).
    pub capture_log: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            extra_config: String::new(),
            extra_routes: String::new(),
            slow_read_timeout: "500ms",
            policy_section: None,
            env: Vec::new(),
            extra_args: Vec::new(),
            require_ready: true,
            capture_log: false,
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// Writes a config (demo policy and routes, echo upstream) and starts the gateway.
pub fn start(opts: Options) -> Gateway {
    let upstream = start_app(|| sentinel_demo_apps::App::Echo);
    for attempt in 0..3 {
        let dir = std::env::temp_dir().join(format!(
            "sentinel-test-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        let root = repo().join("config");
        copy_dir(&root.join("routes"), &dir.join("routes"));
        copy_dir(&root.join("policy"), &dir.join("policy"));
        copy_dir(&root.join("keys"), &dir.join("keys"));
        std::fs::copy(
            repo().join("tests/fixtures/extra-routes.toml"),
            dir.join("routes/extra.toml"),
        )
        .unwrap();
        if !opts.extra_routes.is_empty() {
            std::fs::write(dir.join("routes/zz-extra.toml"), &opts.extra_routes).unwrap();
        }
        let proxy = free_addr();
        let ops = free_addr();
        let config = std::fs::read_to_string(root.join("sentinel.toml"))
            .unwrap()
            .replace("127.0.0.1:8080", &proxy.to_string())
            .replace("127.0.0.1:9090", &ops.to_string())
            .replace("127.0.0.1:7101", &upstream.to_string())
            .replace("127.0.0.1:7102", &upstream.to_string())
            .replace("127.0.0.1:7103", &upstream.to_string())
            .replace("[listen]", "[listen]\nthreads = 1");
        let config = match &opts.policy_section {
            None => config,
            Some(section) => {
                let start = config.find("[policy]").unwrap();
                let end = start + config[start..].find("\n\n").unwrap();
                format!(
                    "{}{}{}",
                    &config[..start],
                    section.trim_end(),
                    &config[end..]
                )
            }
        };
        let config = format!(
            "{config}\n[upstreams.down]\naddresses = [\"127.0.0.1:{}\"]\nconnect_timeout = \"1s\"\n\n[upstreams.pool]\naddresses = [\"127.0.0.1:{}\", \"{upstream}\"]\n\n[upstreams.slow]\naddresses = [\"{upstream}\"]\nread_timeout = \"{}\"\n{}\n",
            closed_port(),
            closed_port(),
            opts.slow_read_timeout,
            opts.extra_config
        );
        std::fs::write(dir.join("sentinel.toml"), config).unwrap();
        let child = if opts.capture_log {
            spawn(&dir, &opts.env, &opts.extra_args)
        } else {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_sentinel"));
            cmd.args(["run", "--config"])
                .arg(dir.join("sentinel.toml"))
                .args(&opts.extra_args)
                .env("SENTINEL_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::inherit());
            for (k, v) in &opts.env {
                cmd.env(k, v);
            }
            cmd.spawn().unwrap()
        };
        let mut gw = Gateway {
            child,
            proxy,
            ops,
            dir,
            upstream,
            env: opts.env.clone(),
            extra_args: opts.extra_args.clone(),
        };
        if wait_up(&mut gw, Duration::from_secs(30), opts.require_ready) {
            return gw;
        }
        eprintln!("gateway did not become ready (attempt {attempt}); retrying on other ports");
    }
    panic!("gateway never became ready");
}

fn wait_up(gw: &mut Gateway, limit: Duration, ready: bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(Some(_)) = gw.child.try_wait() {
            return false;
        }
        if let Ok(mut s) = std::net::TcpStream::connect(gw.ops) {
            use std::io::{Read, Write};
            let _ = s.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut buf = String::new();
            let _ = s.read_to_string(&mut buf);
            if (!ready || buf.starts_with("HTTP/1.1 200"))
                && std::net::TcpStream::connect(gw.proxy).is_ok()
            {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A token from the demo issuer.
pub fn token(principal: &str, tenant: &str) -> String {
    sentinel::demo::mint(principal, tenant, false, None, 600).unwrap()
}

pub fn token_with(principal: &str, tenant: &str, mfa: bool, jti: Option<&str>) -> String {
    sentinel::demo::mint(principal, tenant, mfa, jti, 600).unwrap()
}

/// Signs arbitrary claims with the demo issuer's key (for hostile tokens).
pub fn sign_claims(claims: &serde_json::Value, kid: Option<&str>) -> String {
    let key =
        jsonwebtoken::EncodingKey::from_ec_pem(sentinel::demo::DEMO_ISSUER_KEY.as_bytes()).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = kid.map(str::to_owned);
    sentinel::auth::ecdsa::canonical_es256(jsonwebtoken::encode(&header, claims, &key).unwrap())
}

/// Unix seconds now: the one wall clock of the tests (token claims,
/// snapshot signatures).
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Asserts the SPEC error body and returns it.
pub async fn expect_error(resp: reqwest::Response, status: u16, code: &str) -> serde_json::Value {
    assert_eq!(resp.status().as_u16(), status, "status for expected {code}");
    assert!(
        resp.headers().contains_key("x-sentinel-request-id"),
        "request id on error responses"
    );
    let rid = resp.headers()["x-sentinel-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], code, "body: {body}");
    assert!(body["error"]["message"].is_string());
    assert!(body["error"]["details"].is_object());
    assert_eq!(body["request_id"], rid.as_str());
    body
}

/// Like [`start`], but with the real demo apps behind the demo routes (MSW,
/// fleet, port on their own ports) and the echo app as upstream `lab`, for
/// the field-security tests. `extra_routes` is written to
/// `routes/zz-extra.toml`; `extra_config` is appended to `sentinel.toml`.
pub fn start_demo(extra_routes: &str, extra_config: &str) -> Gateway {
    use sentinel_demo_apps::App;
    let msw = start_app(|| App::Msw);
    let fleet = start_app(|| App::Fleet);
    let port = start_app(|| App::Port);
    let lab = start_app(|| App::Echo);
    for attempt in 0..3 {
        let dir = std::env::temp_dir().join(format!(
            "sentinel-fields-test-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        let root = repo().join("config");
        copy_dir(&root.join("routes"), &dir.join("routes"));
        copy_dir(&root.join("policy"), &dir.join("policy"));
        copy_dir(&root.join("keys"), &dir.join("keys"));
        if !extra_routes.is_empty() {
            std::fs::write(dir.join("routes/zz-extra.toml"), extra_routes).unwrap();
        }
        let proxy = free_addr();
        let ops = free_addr();
        let config = std::fs::read_to_string(root.join("sentinel.toml"))
            .unwrap()
            .replace("127.0.0.1:8080", &proxy.to_string())
            .replace("127.0.0.1:9090", &ops.to_string())
            .replace("127.0.0.1:7101", &msw.to_string())
            .replace("127.0.0.1:7102", &fleet.to_string())
            .replace("127.0.0.1:7103", &port.to_string())
            .replace("[listen]", "[listen]\nthreads = 1");
        let config =
            format!("{config}\n[upstreams.lab]\naddresses = [\"{lab}\"]\n{extra_config}\n");
        std::fs::write(dir.join("sentinel.toml"), config).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_sentinel"))
            .args(["run", "--config"])
            .arg(dir.join("sentinel.toml"))
            .env("SENTINEL_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut gw = Gateway {
            child,
            proxy,
            ops,
            dir,
            upstream: lab,
            env: Vec::new(),
            extra_args: Vec::new(),
        };
        if wait_up(&mut gw, Duration::from_secs(30), true) {
            return gw;
        }
        eprintln!("gateway did not become ready (attempt {attempt}); retrying on other ports");
    }
    panic!("gateway never became ready");
}
