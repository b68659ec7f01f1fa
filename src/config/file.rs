//! The on-disk format of `sentinel.toml` and `routes/*.toml`: serde structs with
//! `deny_unknown_fields` and spans. Never used past [`super::load`], which lowers
//! them into the internal types.

use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayFile {
    #[serde(default)]
    pub listen: ListenFile,
    #[serde(default)]
    pub limits: LimitsFile,
    #[serde(default)]
    pub upstreams: BTreeMap<String, Spanned<UpstreamFile>>,
    #[serde(default)]
    pub issuers: Vec<Spanned<IssuerFile>>,
    pub policy: Spanned<PolicyFile>,
    #[serde(default)]
    pub assertion: Option<Spanned<AssertionFile>>,
    #[serde(default)]
    pub explain: ExplainFile,
    #[serde(default)]
    pub client_ip: ClientIpFile,
    #[serde(default)]
    pub client_headers: ClientHeadersFile,
    #[serde(default)]
    pub security_headers: Option<BTreeMap<String, Spanned<String>>>,
    /// Route files, as paths or `*` globs relative to this file.
    #[serde(default)]
    pub routes: Vec<Spanned<String>>,
    #[serde(default)]
    pub rate_limits: Option<Spanned<RateLimitsFile>>,
    /// Risk scoring (`super::risk`).
    #[serde(default)]
    pub risk: Option<super::risk::RiskSectionFile>,
    #[serde(default)]
    pub audit: Option<Spanned<AuditFile>>,
    #[serde(default)]
    pub logging: LoggingFile,
    #[serde(default)]
    pub otel: Option<Spanned<OtelFile>>,
}

/// `[otel]`: OpenTelemetry traces (docs/operations.md, "Traces").
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtelFile {
    /// Default: on whenever the section is present.
    pub enabled: Option<bool>,
    /// The collector's OTLP/HTTP base URL, e.g. `http://collector:4318`.
    pub endpoint: Option<Spanned<String>>,
    pub service_name: Option<Spanned<String>>,
    /// Share of new traces recorded, 0.0 to 1.0 (default 0.1).
    pub sample_ratio: Option<Spanned<f64>>,
    /// Longest one export may take (default `10s`).
    pub timeout: Option<Spanned<String>>,
}

/// `[logging]` (docs/operations.md, "Logs").
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingFile {
    /// `json` or `pretty`; default: pretty when standard error is a terminal.
    pub format: Option<Spanned<String>>,
}

/// `[audit]` (docs/audit-gateway.md).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditFile {
    /// Default: on when `[policy] source = "admin"` (shipped there), and on
    /// (spool only) whenever this section is present.
    pub enabled: Option<bool>,
    pub spool_dir: Option<Spanned<String>>,
    pub max_spool_bytes: Option<Spanned<u64>>,
    pub segment_bytes: Option<Spanned<u64>>,
    pub batch_events: Option<Spanned<usize>>,
    pub flush_ms: Option<Spanned<u64>>,
    /// `interval` (default), `always` or `never`.
    pub fsync: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitsFile {
    /// `local` (default) or `cluster`.
    pub mode: Option<Spanned<String>>,
    pub cluster: Option<Spanned<ClusterFile>>,
    #[serde(default)]
    pub plans: BTreeMap<String, Spanned<PlanFile>>,
    pub tenant: Option<TenantLimitFile>,
    pub principal: Option<Spanned<RateFile>>,
    #[serde(default)]
    pub classes: BTreeMap<String, Spanned<ClassFile>>,
    pub anonymous: Option<Spanned<RateFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    pub redis_url: Option<String>,
    pub key_prefix: Option<String>,
    pub timeout: Option<Spanned<String>>,
    /// `open` (default) or `closed`.
    pub failure: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanFile {
    pub per_minute: u32,
    pub per_hour: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantLimitFile {
    pub default_plan: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateFile {
    pub rate: Spanned<String>,
    pub burst: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassFile {
    pub rate: Spanned<String>,
    pub burst: Option<u32>,
    /// `tenant` (default), `principal` or `ip`.
    pub per: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenFile {
    pub proxy: Option<Spanned<String>>,
    pub ops: Option<Spanned<String>>,
    pub tls: Option<Spanned<TlsFile>>,
    pub threads: Option<Spanned<usize>>,
    /// How long a graceful stop waits for requests in flight (default `25s`).
    pub drain_timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    pub address: Spanned<String>,
    pub certificates: Vec<Spanned<CertificateFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateFile {
    /// SNI names this certificate serves; the first certificate is also the default.
    pub server_names: Vec<String>,
    pub cert: String,
    pub key: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    pub max_header_bytes: Option<Spanned<usize>>,
    pub max_body_bytes: Option<Spanned<usize>>,
    pub max_token_bytes: Option<Spanned<usize>>,
    pub token_cache_capacity: Option<u64>,
    /// Total time for one request head (default `10s`).
    pub request_header_timeout: Option<Spanned<String>>,
    /// Silence allowed between requests on a kept-alive connection (default `60s`).
    pub client_idle_timeout: Option<Spanned<String>>,
    /// Concurrent connections per client address (default 256).
    pub max_connections_per_client: Option<Spanned<usize>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamFile {
    pub addresses: Vec<Spanned<String>>,
    #[serde(default)]
    pub tls: bool,
    /// SNI and certificate name for TLS upstreams (default: the address host).
    pub sni: Option<String>,
    #[serde(default = "yes")]
    pub verify: bool,
    pub connect_timeout: Option<Spanned<String>>,
    pub read_timeout: Option<Spanned<String>>,
    pub write_timeout: Option<Spanned<String>>,
    pub idle_timeout: Option<Spanned<String>>,
    pub health_check: Option<Spanned<HealthCheckFile>>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckFile {
    pub interval: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerFile {
    pub issuer: String,
    /// ES256 only in canonical low-s form (default `true`).
    pub require_low_s: Option<bool>,
    pub audiences: Vec<String>,
    pub algorithms: Vec<Spanned<String>>,
    pub jwks_file: Option<String>,
    pub jwks_url: Option<String>,
    /// `true`: keys from the JWKS that `{issuer}/.well-known/openid-configuration`
    /// names (the document's `issuer` must be this one).
    pub discovery: Option<bool>,
    /// Name of an environment variable holding an HS256 secret.
    pub hmac_secret_env: Option<String>,
    pub kid: Option<String>,
    pub leeway: Option<Spanned<String>>,
    pub refresh_every: Option<Spanned<String>>,
    pub min_refetch_interval: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// `file` (standalone policy files) or `admin` (signed snapshots pulled
    /// from the admin API).
    pub source: Spanned<String>,
    /// Policy files (`.toml` or `.json`), as paths or `*` globs relative to this file.
    #[serde(default)]
    pub paths: Vec<Spanned<String>>,
    pub watch_interval: Option<Spanned<String>>,
    /// `source = "admin"`: the admin API's base URL (`http://127.0.0.1:8081`).
    pub admin_url: Option<Spanned<String>>,
    /// `source = "admin"`: the pinned JWKS whose keys may sign snapshots.
    pub keys_file: Option<Spanned<String>>,
    /// Name of the environment variable holding the gateway's API key.
    pub api_key_env: Option<Spanned<String>>,
    /// A file holding the gateway's API key (alternative to `api_key_env`).
    pub api_key_file: Option<Spanned<String>>,
    /// Long-poll wait asked of the admin API (1s..60s).
    pub wait: Option<Spanned<String>>,
    /// Where the last good snapshot is kept across restarts.
    pub cache_file: Option<Spanned<String>>,
    /// Staleness past which `on_stale` applies (absent: never stale).
    pub max_age: Option<Spanned<String>>,
    /// `keep` (default: keep enforcing, alarm) or `refuse` (503 `POLICY_UNAVAILABLE`).
    pub on_stale: Option<Spanned<String>>,
    /// Connect/read timeout on top of `wait`.
    pub timeout: Option<Spanned<String>>,
    pub backoff_min: Option<Spanned<String>>,
    pub backoff_max: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssertionFile {
    pub issuer: String,
    pub audience: String,
    pub ttl: Option<Spanned<String>>,
    /// PKCS#8 PEM of a P-256 key (ES256).
    pub key_file: Spanned<String>,
    pub kid: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplainFile {
    /// Principals whose responses carry `x-sentinel-decision`.
    #[serde(default)]
    pub principals: Vec<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientIpFile {
    #[serde(default)]
    pub trusted_proxies: Vec<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientHeadersFile {
    /// Client header names with `_`: `drop` (default), `reject` or `allow`.
    pub underscores: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutesFile {
    #[serde(default)]
    pub routes: Vec<Spanned<RouteFile>>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AuthFile {
    Public,
    Any,
    Users,
    ServiceAccounts,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    pub id: Spanned<String>,
    pub host: Option<Spanned<String>>,
    pub path: Spanned<String>,
    pub methods: Option<Spanned<Vec<String>>>,
    pub upstream: Spanned<String>,
    pub auth: AuthFile,
    /// `type:{param}`, `type:literal`, or `type` for the collection. Required unless `auth = "public"`.
    pub resource: Option<Spanned<String>>,
    pub action: Option<Spanned<String>>,
    pub tenant_param: Option<Spanned<String>>,
    /// Approval chain whose time-bound grant the caller needs.
    pub approval: Option<String>,
    /// Rate-limit class (enforced by the rate-limiting work).
    pub rate_limit: Option<String>,
    /// Field-security binding: responses filtered, writes checked (docs/field-security.md).
    pub fields: Option<Spanned<FieldsFile>>,
    /// Risk thresholds: step up or block above them (SPEC "Request risk").
    pub risk: Option<Spanned<RiskFile>>,
    /// `low`, `normal` (default), `high` or `critical`: a feature of anomaly scoring.
    pub sensitivity: Option<Spanned<String>>,
    pub cors: Option<Spanned<CorsFile>>,
    /// Keep only this fraction of the audit events of allowed reads (0 < f <= 1;
    /// default: every event). Denials are never sampled.
    pub audit_sample_allowed_reads: Option<Spanned<f64>>,
    /// Pass the caller's `Authorization` / `X-API-Key` on to the upstream
    /// (default: removed once the gateway has authenticated the request).
    pub forward_credentials: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldsFile {
    pub entity: String,
    /// Where the entities are: `$` (default), `$.data[*]`, `$.items[*].vessel`.
    pub at: Option<Spanned<String>>,
    /// `reject` (default: 403 `FIELD_WRITE_DENIED`) or `drop` (forward without them).
    pub on_write_denied: Option<Spanned<String>>,
    /// `remove` (default) or `keep`: keys with no field definition.
    pub unknown_fields: Option<Spanned<String>>,
    /// Largest upstream response body filtered (default: `limits.max_body_bytes`).
    pub max_response_bytes: Option<Spanned<usize>>,
    /// `true`: filter the answer as it streams, in bounded memory, with no
    /// size limit (default `false`: buffer up to `max_response_bytes`).
    pub stream: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskFile {
    pub step_up_above: Option<f64>,
    pub block_above: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsFile {
    pub origins: Vec<String>,
    #[serde(default)]
    pub methods: Vec<String>,
    #[serde(default)]
    pub headers: Vec<String>,
    #[serde(default)]
    pub expose_headers: Vec<String>,
    #[serde(default)]
    pub credentials: bool,
    pub max_age: Option<Spanned<String>>,
}
