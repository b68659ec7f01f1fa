//! The internal configuration types `load` produces. Never the file format
//! (that is [`super::file`]).

use crate::ratelimit::RateLimitConfig;
use crate::routes::RouteTable;
use ipnet::IpNet;
use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub proxy_addr: SocketAddr,
    pub ops_addr: SocketAddr,
    pub threads: usize,
    /// How long a graceful stop waits for requests in flight.
    pub drain_timeout: Duration,
    pub tls: Option<TlsConfig>,
    pub limits: Limits,
    pub upstreams: Vec<Upstream>,
    pub issuers: Vec<IssuerConfig>,
    pub policy: PolicyConfig,
    pub assertion: AssertionConfig,
    pub explain: HashSet<Uuid>,
    pub trusted_proxies: Vec<IpNet>,
    pub client_headers: crate::headers::ClientHeaders,
    pub security_headers: Vec<(http::HeaderName, http::HeaderValue)>,
    pub routes: std::sync::Arc<RouteTable>,
    pub rate_limits: Option<RateLimitConfig>,
    /// `None`: no audit trail (no `[audit]` section and no admin API).
    pub audit: Option<AuditConfig>,
    /// `[risk]`: anomaly and biometric scoring.
    pub risk: super::RiskConfig,
    /// `[logging] format`; `None`: chosen at start (`LogFormat::auto`).
    pub log_format: Option<crate::logging::LogFormat>,
    /// `[otel]`: where request traces go; `None`: tracing is off.
    pub otel: Option<sentinel_telemetry::otel::Settings>,
    /// Every file the config was read from (for reload on change).
    pub files: Vec<PathBuf>,
    /// The route-file patterns (absolute), re-expanded to notice new files.
    pub route_patterns: Vec<PathBuf>,
    /// What `sentinel check` prints without failing (messages start with
    /// `warning:`), e.g. a route `risk` slot with risk scoring off.
    pub warnings: Vec<super::Problem>,
}

#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub address: SocketAddr,
    pub certificates: Vec<CertConfig>,
}

#[derive(Debug, Clone)]
pub struct CertConfig {
    pub server_names: Vec<String>,
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_header_bytes: usize,
    pub max_body_bytes: usize,
    pub max_token_bytes: usize,
    pub token_cache_capacity: u64,
    /// Total time a client has to send one request head (slowloris).
    pub request_header_timeout: std::time::Duration,
    /// Silence allowed between requests on a kept-alive connection.
    pub client_idle_timeout: std::time::Duration,
    /// Concurrent connections per client address (trusted proxies exempt).
    pub max_connections_per_client: usize,
}

#[derive(Debug, Clone)]
pub struct Upstream {
    pub name: String,
    pub addresses: Vec<SocketAddr>,
    pub tls: bool,
    pub sni: String,
    pub verify: bool,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    pub idle_timeout: Duration,
    pub health_interval: Option<Duration>,
}

#[derive(Debug, Clone)]
pub enum IssuerKeys {
    JwksFile(PathBuf),
    JwksUrl {
        url: String,
        refresh_every: Duration,
        min_refetch_interval: Duration,
    },
    /// `discovery = true`: the JWKS named by the issuer's OpenID Connect
    /// discovery document.
    Discovery {
        refresh_every: Duration,
        min_refetch_interval: Duration,
    },
    Hmac {
        kid: Option<String>,
        secret: Vec<u8>,
    },
}

#[derive(Debug, Clone)]
pub struct IssuerConfig {
    pub issuer: String,
    pub audiences: Vec<String>,
    pub algorithms: Vec<jsonwebtoken::Algorithm>,
    pub keys: IssuerKeys,
    pub leeway: Duration,
    pub require_low_s: bool,
}

#[derive(Debug, Clone)]
pub struct PolicyConfig {
    /// Policy file patterns (absolute), re-expanded on every reload. Empty
    /// with the admin source.
    pub patterns: Vec<PathBuf>,
    pub watch_interval: Duration,
    /// `source = "admin"`: where signed snapshots come from.
    pub admin: Option<AdminSource>,
}

/// The admin snapshot source (`[policy] source = "admin"`).
#[derive(Debug, Clone)]
pub struct AdminSource {
    /// Base URL without a trailing slash.
    pub url: String,
    pub keys_file: PathBuf,
    /// The pinned snapshot keys, read from `keys_file`.
    pub keys: PinnedKeys,
    pub api_key: Secret,
    pub wait: Duration,
    pub cache_file: Option<PathBuf>,
    pub max_age: Option<Duration>,
    pub on_stale: OnStale,
    pub timeout: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

/// What a gateway does once its snapshot is older than `max_age`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStale {
    /// Keep enforcing the last snapshot, raise the staleness alarm (default).
    Keep,
    /// Answer `503 POLICY_UNAVAILABLE` and report not ready.
    Refuse,
}

/// A credential that never shows in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Snapshot-signing public keys pinned from a JWKS file.
#[derive(Clone)]
pub struct PinnedKeys(pub std::sync::Arc<sentinel_policy::signed::SnapshotVerifier>);

impl fmt::Debug for PinnedKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PinnedKeys(..)")
    }
}

#[derive(Debug, Clone)]
pub struct AssertionConfig {
    pub issuer: String,
    pub audience: String,
    pub ttl: Duration,
    pub key_pem: String,
    pub kid: String,
}

/// `[audit]`: the spool and how events are shipped (docs/audit-gateway.md).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditConfig {
    pub spool_dir: PathBuf,
    pub max_spool_bytes: u64,
    pub segment_bytes: u64,
    pub batch_events: usize,
    pub flush: Duration,
    pub fsync: Fsync,
}

/// When spooled audit events reach the disk, not only the page cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// `fdatasync` after every event, on the request path.
    Always,
    /// `fdatasync` about once a second in the background (default).
    Interval,
    /// Left to the kernel's write-back.
    Never,
}
