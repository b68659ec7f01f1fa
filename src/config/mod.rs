//! Gateway configuration: loads `sentinel.toml` and its route files, and lowers
//! the file format ([`file`]) into internal types in one step that collects
//! *every* problem as `path:line:col: message`.

pub mod file;

use crate::ratelimit::{FailureMode, Mode, Quota};
use crate::routes::{
    self, AuthRequirement, Cors, FieldBinding, ResourceTemplate, Route, RouteTable,
};
use file::*;
use ipnet::IpNet;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;
use uuid::Uuid;

/// One problem in a configuration or policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.col,
            self.message
        )
    }
}

/// A file's text, for turning byte offsets into `line:col`.
pub struct SourceText<'a> {
    pub path: &'a Path,
    pub text: &'a str,
}

impl SourceText<'_> {
    pub fn problem(&self, offset: usize, message: impl Into<String>) -> Problem {
        let (line, col) = line_col(self.text, offset);
        Problem {
            file: self.path.to_path_buf(),
            line,
            col,
            message: message.into(),
        }
    }

    pub fn toml_error(&self, e: &toml::de::Error) -> Problem {
        let offset = e.span().map_or(0, |s| s.start);
        self.problem(offset, e.message().trim_end_matches('\n').to_owned())
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub proxy_addr: SocketAddr,
    pub ops_addr: SocketAddr,
    pub threads: usize,
    pub tls: Option<TlsConfig>,
    pub limits: Limits,
    pub upstreams: Vec<Upstream>,
    pub issuers: Vec<IssuerConfig>,
    pub policy: PolicyConfig,
    pub assertion: AssertionConfig,
    pub explain: HashSet<Uuid>,
    pub trusted_proxies: Vec<IpNet>,
    pub security_headers: Vec<(http::HeaderName, http::HeaderValue)>,
    pub routes: std::sync::Arc<RouteTable>,
    pub rate_limits: Option<RateLimitConfig>,
    /// Every file the config was read from (for reload on change).
    pub files: Vec<PathBuf>,
    /// The route-file patterns (absolute), re-expanded to notice new files.
    pub route_patterns: Vec<PathBuf>,
}

/// Whose budget a route class counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Per {
    Tenant,
    Principal,
    Ip,
}

#[derive(Debug, Clone)]
pub struct ClassLimit {
    /// `route:<class>`: the limit's name in headers and metrics.
    pub name: Box<str>,
    pub quota: Quota,
    pub per: Per,
}

#[derive(Debug, Clone)]
pub struct RateLimitConfig {
    pub mode: crate::ratelimit::Mode,
    /// Tenant plans by name (burst = per minute, sustained = per hour).
    pub plans: HashMap<String, Quota>,
    pub default_plan: Option<Quota>,
    pub principal: Option<Quota>,
    pub classes: HashMap<String, ClassLimit>,
    pub anonymous: Option<Quota>,
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

/// Reads a JWKS file into a snapshot verifier. Every key must be a P-256 or
/// Ed25519 key with a `kid`; an empty set is refused.
pub fn read_pinned_keys(path: &Path) -> Result<sentinel_policy::signed::SnapshotVerifier, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&text)
        .map_err(|e| format!("`{}` is not a JWKS: {e}", path.display()))?;
    let mut verifier = sentinel_policy::signed::SnapshotVerifier::new();
    for jwk in &set.keys {
        verifier
            .add_jwk(jwk)
            .map_err(|e| format!("`{}`: {e}", path.display()))?;
    }
    if verifier.is_empty() {
        return Err(format!("`{}` holds no key", path.display()));
    }
    Ok(verifier)
}

#[derive(Debug, Clone)]
pub struct AssertionConfig {
    pub issuer: String,
    pub audience: String,
    pub ttl: Duration,
    pub key_pem: String,
    pub kid: String,
}

/// Parses `30s`, `500ms`, `2m`, `1h`, `1d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid duration `{s}` (write e.g. `30s`, `500ms`, `2m`)"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        "d" => Duration::from_secs(n.saturating_mul(86_400)),
        _ => return Err(format!("invalid duration `{s}` (units: ms, s, m, h, d)")),
    };
    Ok(d)
}

/// Expands a path whose last component may hold one `*` (`routes/*.toml`).
/// Matches are sorted; a pattern without `*` names one file, which must exist.
pub fn expand_pattern(pattern: &Path) -> std::io::Result<Vec<PathBuf>> {
    let name = pattern.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let Some((pre, post)) = name.split_once('*') else {
        std::fs::metadata(pattern)?;
        return Ok(vec![pattern.to_path_buf()]);
    };
    let dir = pattern.parent().unwrap_or(Path::new("."));
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let file_name = entry.file_name();
        let Some(n) = file_name.to_str() else {
            continue;
        };
        if n.len() >= pre.len() + post.len()
            && n.starts_with(pre)
            && n.ends_with(post)
            && !n.starts_with('.')
        {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

struct Lowering<'a> {
    src: SourceText<'a>,
    dir: PathBuf,
    problems: Vec<Problem>,
}

impl Lowering<'_> {
    fn err(&mut self, span: std::ops::Range<usize>, msg: impl Into<String>) {
        let p = self.src.problem(span.start, msg);
        self.problems.push(p);
    }

    fn duration(&mut self, v: &Option<Spanned<String>>, default: Duration) -> Duration {
        match v {
            None => default,
            Some(s) => match parse_duration(s.get_ref()) {
                Ok(d) => d,
                Err(e) => {
                    self.err(s.span(), e);
                    default
                }
            },
        }
    }

    fn addr(&mut self, v: &Option<Spanned<String>>, default: &str) -> SocketAddr {
        let fallback = SocketAddr::from(([127, 0, 0, 1], 0));
        match v {
            None => default.parse().unwrap_or(fallback),
            Some(s) => s.get_ref().parse().unwrap_or_else(|_| {
                self.err(
                    s.span(),
                    format!("invalid address `{}` (write `IP:PORT`)", s.get_ref()),
                );
                fallback
            }),
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        }
    }
}

/// Reads and validates a whole configuration: the main file, every route file,
/// and referenced key files. Returns every problem found.
pub fn load(path: &Path) -> Result<Config, Vec<Problem>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![Problem {
            file: path.to_path_buf(),
            line: 1,
            col: 1,
            message: format!("cannot read file: {e}"),
        }]
    })?;
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let src = SourceText { path, text: &text };
    let parsed: GatewayFile = toml::from_str(&text).map_err(|e| vec![src.toml_error(&e)])?;
    let mut lw = Lowering {
        src,
        dir,
        problems: Vec::new(),
    };
    let mut files = vec![path.to_path_buf()];

    let proxy_addr = lw.addr(&parsed.listen.proxy, "127.0.0.1:8080");
    let ops_addr = lw.addr(&parsed.listen.ops, "127.0.0.1:9090");
    let threads = match &parsed.listen.threads {
        Some(t) if *t.get_ref() == 0 || *t.get_ref() > 256 => {
            lw.err(t.span(), "`threads` must be between 1 and 256");
            1
        }
        Some(t) => *t.get_ref(),
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let tls = parsed.listen.tls.as_ref().map(|t| {
        let t = t.get_ref();
        let address = lw.addr(&Some(t.address.clone()), "127.0.0.1:8443");
        if t.certificates.is_empty() {
            lw.err(t.address.span(), "`tls` needs at least one certificate");
        }
        let certificates = t
            .certificates
            .iter()
            .map(|c| {
                let span = c.span();
                let c = c.get_ref();
                let cert = lw.path(&c.cert);
                let key = lw.path(&c.key);
                for f in [&cert, &key] {
                    if let Err(e) = std::fs::metadata(f) {
                        lw.err(span.clone(), format!("cannot read `{}`: {e}", f.display()));
                    }
                }
                if c.server_names.is_empty() {
                    lw.err(
                        span,
                        "a certificate needs at least one entry in `server_names`",
                    );
                }
                CertConfig {
                    server_names: c
                        .server_names
                        .iter()
                        .map(|s| s.to_ascii_lowercase())
                        .collect(),
                    cert,
                    key,
                }
            })
            .collect();
        TlsConfig {
            address,
            certificates,
        }
    });

    let limit = |lw: &mut Lowering, v: &Option<Spanned<usize>>, default: usize, name: &str| match v
    {
        Some(s) if *s.get_ref() == 0 => {
            lw.err(s.span(), format!("`{name}` must be greater than 0"));
            default
        }
        Some(s) => *s.get_ref(),
        None => default,
    };
    let limits = Limits {
        max_header_bytes: limit(
            &mut lw,
            &parsed.limits.max_header_bytes,
            32 * 1024,
            "max_header_bytes",
        ),
        max_body_bytes: limit(
            &mut lw,
            &parsed.limits.max_body_bytes,
            10 * 1024 * 1024,
            "max_body_bytes",
        ),
        max_token_bytes: limit(
            &mut lw,
            &parsed.limits.max_token_bytes,
            8 * 1024,
            "max_token_bytes",
        ),
        token_cache_capacity: parsed.limits.token_cache_capacity.unwrap_or(100_000),
    };

    let mut upstream_index: HashMap<&str, usize> = HashMap::new();
    let mut upstreams = Vec::new();
    for (name, u) in &parsed.upstreams {
        let span = u.span();
        let u = u.get_ref();
        let mut addresses = Vec::new();
        for a in &u.addresses {
            match a.get_ref().parse::<SocketAddr>() {
                Ok(sa) => addresses.push(sa),
                Err(_) => lw.err(
                    a.span(),
                    format!(
                        "invalid upstream address `{}` (write `IP:PORT`)",
                        a.get_ref()
                    ),
                ),
            }
        }
        if u.addresses.is_empty() {
            lw.err(
                span.clone(),
                format!("upstream `{name}` needs at least one address"),
            );
        }
        let sni = u.sni.clone().unwrap_or_else(|| {
            addresses
                .first()
                .map(|a| a.ip().to_string())
                .unwrap_or_default()
        });
        let connect_timeout = lw.duration(&u.connect_timeout, Duration::from_secs(2));
        let read_timeout = lw.duration(&u.read_timeout, Duration::from_secs(30));
        let write_timeout = lw.duration(&u.write_timeout, Duration::from_secs(30));
        let idle_timeout = lw.duration(&u.idle_timeout, Duration::from_secs(60));
        let health_interval = u
            .health_check
            .as_ref()
            .map(|h| lw.duration(&h.get_ref().interval, Duration::from_secs(5)));
        upstream_index.insert(name.as_str(), upstreams.len());
        upstreams.push(Upstream {
            name: name.clone(),
            addresses,
            tls: u.tls,
            sni,
            verify: u.verify,
            connect_timeout,
            read_timeout,
            write_timeout,
            idle_timeout,
            health_interval,
        });
    }

    let issuers = lower_issuers(&mut lw, &parsed.issuers);
    let policy = lower_policy(&mut lw, &parsed.policy);
    let assertion = match &parsed.assertion {
        None => {
            lw.problems.push(lw.src.problem(
                0,
                "missing `[assertion]` section (the key that signs `x-sentinel-assertion`)",
            ));
            None
        }
        Some(a) => {
            let a = a.get_ref();
            let key_path = lw.path(a.key_file.get_ref());
            let ttl = lw.duration(&a.ttl, Duration::from_secs(60));
            match std::fs::read_to_string(&key_path) {
                Ok(pem) => {
                    if jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes()).is_err() {
                        lw.err(
                            a.key_file.span(),
                            format!(
                                "`{}` is not a PKCS#8 PEM P-256 private key",
                                key_path.display()
                            ),
                        );
                    }
                    Some(AssertionConfig {
                        issuer: a.issuer.clone(),
                        audience: a.audience.clone(),
                        ttl,
                        key_pem: pem,
                        kid: a.kid.clone(),
                    })
                }
                Err(e) => {
                    lw.err(
                        a.key_file.span(),
                        format!("cannot read `{}`: {e}", key_path.display()),
                    );
                    None
                }
            }
        }
    };
    let mut explain = HashSet::new();
    for p in &parsed.explain.principals {
        match p.get_ref().parse::<Uuid>() {
            Ok(u) => {
                explain.insert(u);
            }
            Err(_) => lw.err(
                p.span(),
                format!("`{}` is not a principal id (UUID)", p.get_ref()),
            ),
        }
    }
    let mut trusted_proxies = Vec::new();
    for p in &parsed.client_ip.trusted_proxies {
        let s = p.get_ref();
        match s
            .parse::<IpNet>()
            .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        {
            Ok(n) => trusted_proxies.push(n.trunc()),
            Err(_) => lw.err(p.span(), format!("invalid CIDR `{s}`")),
        }
    }
    let security_headers = lower_security_headers(&mut lw, &parsed.security_headers);
    let rate_limits = parsed
        .rate_limits
        .as_ref()
        .map(|r| lower_rate_limits(&mut lw, r));
    let classes: HashSet<String> = rate_limits
        .as_ref()
        .map(|r| r.classes.keys().cloned().collect())
        .unwrap_or_default();

    // Route files.
    let mut all_routes: Vec<(Route, PathBuf, usize)> = Vec::new();
    let mut route_ids: HashMap<String, (PathBuf, usize)> = HashMap::new();
    let mut route_problems = Vec::new();
    if parsed.routes.is_empty() {
        lw.problems.push(
            lw.src
                .problem(0, "no route files: set `routes = [\"routes/*.toml\"]`"),
        );
    }
    let mut route_patterns = Vec::new();
    for pattern in &parsed.routes {
        let full = lw.path(pattern.get_ref());
        route_patterns.push(full.clone());
        match expand_pattern(&full) {
            Ok(found) if found.is_empty() => lw.err(
                pattern.span(),
                format!("`{}` matches no file", pattern.get_ref()),
            ),
            Ok(found) => {
                for f in found {
                    files.push(f.clone());
                    load_route_file(
                        &f,
                        &upstream_index,
                        &classes,
                        &mut all_routes,
                        &mut route_ids,
                        &mut route_problems,
                    );
                }
            }
            Err(e) => lw.err(
                pattern.span(),
                format!("cannot read `{}`: {e}", full.display()),
            ),
        }
    }
    lw.problems.extend(route_problems);
    let locations: Vec<(PathBuf, usize)> =
        all_routes.iter().map(|(_, f, o)| (f.clone(), *o)).collect();
    let table = match RouteTable::new(all_routes.into_iter().map(|(r, _, _)| r).collect()) {
        Ok(t) => t,
        Err(ties) => {
            for (a, b) in ties {
                let (fa, oa) = &locations[a];
                let (fb, ob) = &locations[b];
                let problem = route_problem(
                    fb,
                    *ob,
                    format!(
                        "route ties with the route at {}:{}: same host, path shape and methods",
                        fa.display(),
                        route_line(fa, *oa)
                    ),
                );
                lw.problems.push(problem);
            }
            RouteTable::default()
        }
    };

    match assertion {
        Some(assertion) if lw.problems.is_empty() => Ok(Config {
            path: path.to_path_buf(),
            proxy_addr,
            ops_addr,
            threads,
            tls,
            limits,
            upstreams,
            issuers,
            policy,
            assertion,
            explain,
            trusted_proxies,
            security_headers,
            routes: std::sync::Arc::new(table),
            rate_limits,
            files,
            route_patterns,
        }),
        _ => Err(lw.problems),
    }
}

fn quota(lw: &mut Lowering, rate: &Spanned<String>, burst: Option<u32>) -> Quota {
    Quota::parse(rate.get_ref(), burst).unwrap_or_else(|e| {
        lw.err(rate.span(), e.to_string());
        Quota {
            burst: 1,
            period: Duration::from_secs(1),
        }
    })
}

fn plan_quota(per_minute: u32, per_hour: u32) -> Result<Quota, String> {
    Quota::per_hour(per_hour, per_minute).map_err(|e| e.to_string())
}

fn lower_rate_limits(lw: &mut Lowering, r: &Spanned<RateLimitsFile>) -> RateLimitConfig {
    let span = r.span();
    let r = r.get_ref();
    let mode = match r.mode.as_ref().map(|m| m.get_ref().as_str()) {
        None | Some("local") => Mode::Local,
        Some("cluster") => {
            let c = r.cluster.as_ref().map(|c| c.get_ref());
            let url = std::env::var("SENTINEL_REDIS_URL")
                .ok()
                .or_else(|| c.and_then(|c| c.redis_url.clone()))
                .unwrap_or_default();
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                lw.err(span.clone(), "cluster mode needs `[rate_limits.cluster] redis_url` (or SENTINEL_REDIS_URL) as `redis://…`");
            }
            let timeout = c.map_or(Duration::from_millis(50), |c| {
                lw.duration(&c.timeout, Duration::from_millis(50))
            });
            if timeout.is_zero() {
                lw.err(
                    span.clone(),
                    "`rate_limits.cluster.timeout` must be greater than 0",
                );
            }
            let failure = match c.and_then(|c| c.failure.as_ref()) {
                None => FailureMode::FailOpen,
                Some(f) => match f.get_ref().as_str() {
                    "open" => FailureMode::FailOpen,
                    "closed" => FailureMode::FailClosed,
                    other => {
                        lw.err(
                            f.span(),
                            format!("unknown failure mode `{other}` (use `open` or `closed`)"),
                        );
                        FailureMode::FailOpen
                    }
                },
            };
            Mode::Cluster {
                url,
                failure,
                timeout,
                key_prefix: c
                    .and_then(|c| c.key_prefix.clone())
                    .unwrap_or_else(|| "sentinel:rl".into()),
            }
        }
        Some(other) => {
            if let Some(m) = &r.mode {
                lw.err(
                    m.span(),
                    format!("unknown rate-limit mode `{other}` (use `local` or `cluster`)"),
                );
            }
            Mode::Local
        }
    };
    let mut plans = HashMap::new();
    for (name, p) in &r.plans {
        match plan_quota(p.get_ref().per_minute, p.get_ref().per_hour) {
            Ok(q) => {
                plans.insert(name.clone(), q);
            }
            Err(e) => lw.err(p.span(), format!("plan `{name}`: {e}")),
        }
    }
    let default_plan = r
        .tenant
        .as_ref()
        .and_then(|t| t.default_plan.as_ref())
        .and_then(|d| {
            let q = plans.get(d.get_ref()).copied();
            if q.is_none() {
                lw.err(d.span(), format!("unknown plan `{}`", d.get_ref()));
            }
            q
        });
    let principal = r
        .principal
        .as_ref()
        .map(|p| quota(lw, &p.get_ref().rate, p.get_ref().burst));
    let anonymous = r
        .anonymous
        .as_ref()
        .map(|p| quota(lw, &p.get_ref().rate, p.get_ref().burst));
    let mut classes = HashMap::new();
    for (name, c) in &r.classes {
        if name.is_empty() || name.contains('|') {
            lw.err(c.span(), format!("invalid class name `{name}`"));
        }
        let cf = c.get_ref();
        let per = match cf.per.as_ref().map(|p| (p.get_ref().as_str(), p.span())) {
            None | Some(("tenant", _)) => Per::Tenant,
            Some(("principal", _)) => Per::Principal,
            Some(("ip", _)) => Per::Ip,
            Some((other, span)) => {
                lw.err(
                    span,
                    format!("unknown `per` `{other}` (use `tenant`, `principal` or `ip`)"),
                );
                Per::Tenant
            }
        };
        let quota = quota(lw, &cf.rate, cf.burst);
        classes.insert(
            name.clone(),
            ClassLimit {
                name: format!("route:{name}").into(),
                quota,
                per,
            },
        );
    }
    RateLimitConfig {
        mode,
        plans,
        default_plan,
        principal,
        classes,
        anonymous,
    }
}

/// The quota a tenant's settings ask for: `{"rate_limit_plan": "pro"}` or
/// `{"rate_limit": {"per_minute": 60, "per_hour": 1000}}`, else the default plan.
pub fn tenant_quota(
    cfg: &RateLimitConfig,
    settings: &std::collections::BTreeMap<String, serde_json::Value>,
) -> Option<Quota> {
    explicit_quota(settings.get("rate_limit"))
        .or_else(|| {
            settings
                .get("rate_limit_plan")
                .and_then(|p| p.as_str())
                .and_then(|p| cfg.plans.get(p).copied())
        })
        .or(cfg.default_plan)
}

/// `{"per_minute": N, "per_hour": M}` as a quota.
pub fn explicit_quota(v: Option<&serde_json::Value>) -> Option<Quota> {
    let v = v?;
    let per_minute = u32::try_from(v.get("per_minute")?.as_u64()?).ok()?;
    let per_hour = u32::try_from(v.get("per_hour")?.as_u64()?).ok()?;
    plan_quota(per_minute, per_hour).ok()
}

fn route_line(file: &Path, offset: usize) -> usize {
    std::fs::read_to_string(file).map_or(1, |t| line_col(&t, offset).0)
}

fn route_problem(file: &Path, offset: usize, message: String) -> Problem {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    SourceText {
        path: file,
        text: &text,
    }
    .problem(offset, message)
}

fn lower_issuers(lw: &mut Lowering, issuers: &[Spanned<IssuerFile>]) -> Vec<IssuerConfig> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for i in issuers {
        let span = i.span();
        let i = i.get_ref();
        if i.issuer.is_empty() {
            lw.err(span.clone(), "`issuer` must not be empty");
        } else if !seen.insert(i.issuer.clone()) {
            lw.err(
                span.clone(),
                format!("issuer `{}` is configured twice", i.issuer),
            );
        }
        if i.audiences.is_empty() {
            lw.err(
                span.clone(),
                "an issuer needs at least one audience (`aud` is always checked)",
            );
        }
        let mut algorithms = Vec::new();
        for a in &i.algorithms {
            use jsonwebtoken::Algorithm::*;
            match a.get_ref().as_str() {
                "HS256" => algorithms.push(HS256),
                "RS256" => algorithms.push(RS256),
                "ES256" => algorithms.push(ES256),
                "EdDSA" => algorithms.push(EdDSA),
                other => lw.err(
                    a.span(),
                    format!(
                        "unsupported algorithm `{other}` (allowed: HS256, RS256, ES256, EdDSA)"
                    ),
                ),
            }
        }
        if i.algorithms.is_empty() {
            lw.err(span.clone(), "an issuer needs at least one algorithm");
        }
        let sources = [
            i.jwks_file.is_some(),
            i.jwks_url.is_some(),
            i.hmac_secret_env.is_some(),
        ];
        let leeway = lw.duration(&i.leeway, Duration::from_secs(30));
        let keys = if sources.iter().filter(|b| **b).count() != 1 {
            lw.err(
                span.clone(),
                "an issuer needs exactly one of `jwks_file`, `jwks_url`, `hmac_secret_env`",
            );
            continue;
        } else if let Some(f) = &i.jwks_file {
            let p = lw.path(f);
            if let Err(e) = std::fs::metadata(&p) {
                lw.err(span.clone(), format!("cannot read `{}`: {e}", p.display()));
            }
            IssuerKeys::JwksFile(p)
        } else if let Some(url) = &i.jwks_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                lw.err(
                    span.clone(),
                    format!("`jwks_url` `{url}` must be an http(s) URL"),
                );
            }
            IssuerKeys::JwksUrl {
                url: url.clone(),
                refresh_every: lw.duration(&i.refresh_every, Duration::from_secs(300)),
                min_refetch_interval: lw.duration(&i.min_refetch_interval, Duration::from_secs(10)),
            }
        } else {
            let var = i.hmac_secret_env.clone().unwrap_or_default();
            let secret = std::env::var(&var).unwrap_or_default();
            if secret.len() < 32 {
                lw.err(span.clone(), format!("environment variable `{var}` must hold an HS256 secret of at least 32 bytes"));
            }
            if algorithms
                .iter()
                .any(|a| *a != jsonwebtoken::Algorithm::HS256)
            {
                lw.err(span.clone(), "an HMAC secret can only verify HS256");
            }
            IssuerKeys::Hmac {
                kid: i.kid.clone(),
                secret: secret.into_bytes(),
            }
        };
        out.push(IssuerConfig {
            issuer: i.issuer.clone(),
            audiences: i.audiences.clone(),
            algorithms,
            keys,
            leeway,
        });
    }
    out
}

fn lower_policy(lw: &mut Lowering, p: &Spanned<PolicyFile>) -> PolicyConfig {
    let span = p.span();
    let p = p.get_ref();
    let watch_interval = lw.duration(&p.watch_interval, Duration::from_secs(1));
    let admin_keys: [(&str, bool); 11] = [
        ("admin_url", p.admin_url.is_some()),
        ("keys_file", p.keys_file.is_some()),
        ("api_key_env", p.api_key_env.is_some()),
        ("api_key_file", p.api_key_file.is_some()),
        ("wait", p.wait.is_some()),
        ("cache_file", p.cache_file.is_some()),
        ("max_age", p.max_age.is_some()),
        ("on_stale", p.on_stale.is_some()),
        ("timeout", p.timeout.is_some()),
        ("backoff_min", p.backoff_min.is_some()),
        ("backoff_max", p.backoff_max.is_some()),
    ];
    match p.source.get_ref().as_str() {
        "file" => {
            for (key, set) in admin_keys {
                if set {
                    lw.err(
                        span.clone(),
                        format!("`{key}` belongs to `source = \"admin\"`, not `file`"),
                    );
                }
            }
        }
        "admin" => {
            if let Some(first) = p.paths.first() {
                lw.err(
                    first.span(),
                    "`paths` belongs to `source = \"file\"`, not `admin`",
                );
            }
            let admin = lower_admin_source(lw, span, p);
            return PolicyConfig {
                patterns: Vec::new(),
                watch_interval,
                admin,
            };
        }
        other => {
            lw.err(
                p.source.span(),
                format!("unknown policy source `{other}` (supported: `file`, `admin`)"),
            );
        }
    }
    if p.paths.is_empty() {
        lw.err(span, "the file policy source needs `paths`");
    }
    let mut patterns = Vec::new();
    for path in &p.paths {
        let full = lw.path(path.get_ref());
        match expand_pattern(&full) {
            Ok(f) if f.is_empty() => {
                lw.err(path.span(), format!("`{}` matches no file", path.get_ref()))
            }
            Ok(_) => {}
            Err(e) => lw.err(
                path.span(),
                format!("cannot read `{}`: {e}", full.display()),
            ),
        }
        patterns.push(full);
    }
    PolicyConfig {
        patterns,
        watch_interval,
        admin: None,
    }
}

/// The longest long-poll wait the admin API honours.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

fn lower_admin_source(
    lw: &mut Lowering,
    span: std::ops::Range<usize>,
    p: &PolicyFile,
) -> Option<AdminSource> {
    let url = match &p.admin_url {
        None => {
            lw.err(span.clone(), "the admin policy source needs `admin_url`");
            String::new()
        }
        Some(u) => {
            let text = u.get_ref().trim_end_matches('/').to_owned();
            let host = text
                .strip_prefix("https://")
                .or_else(|| text.strip_prefix("http://"));
            match host {
                Some(h) if !h.is_empty() && !h.contains('?') && !h.contains('#') => {}
                _ => lw.err(
                    u.span(),
                    format!(
                        "`admin_url` must be an `http://` or `https://` URL, not `{}`",
                        u.get_ref()
                    ),
                ),
            }
            text
        }
    };
    let (keys_file, keys) = match &p.keys_file {
        None => {
            lw.err(
                span.clone(),
                "the admin policy source needs `keys_file` (the pinned JWKS of the snapshot-signing keys, from `sentinel-admin snapshot-jwks`)",
            );
            (PathBuf::new(), None)
        }
        Some(k) => {
            let path = lw.path(k.get_ref());
            match read_pinned_keys(&path) {
                Ok(v) => (path, Some(v)),
                Err(e) => {
                    lw.err(k.span(), e);
                    (path, None)
                }
            }
        }
    };
    let api_key = match (&p.api_key_env, &p.api_key_file) {
        (Some(_), Some(f)) => {
            lw.err(
                f.span(),
                "set one of `api_key_env` and `api_key_file`, not both",
            );
            None
        }
        (None, None) => {
            lw.err(
                span.clone(),
                "the admin policy source needs `api_key_env` or `api_key_file` (the key of `sentinel-admin gateway-key create`)",
            );
            None
        }
        (Some(var), None) => match std::env::var(var.get_ref()) {
            Ok(v) if !v.trim().is_empty() => Some(v.trim().to_owned()),
            _ => {
                lw.err(
                    var.span(),
                    format!("environment variable `{}` is not set", var.get_ref()),
                );
                None
            }
        },
        (None, Some(f)) => {
            let path = lw.path(f.get_ref());
            match std::fs::read_to_string(&path) {
                Ok(v) if !v.trim().is_empty() => Some(v.trim().to_owned()),
                Ok(_) => {
                    lw.err(f.span(), format!("`{}` is empty", path.display()));
                    None
                }
                Err(e) => {
                    lw.err(f.span(), format!("cannot read `{}`: {e}", path.display()));
                    None
                }
            }
        }
    };
    if let Some(k) = &api_key {
        if http::HeaderValue::from_str(&format!("ApiKey {k}")).is_err() {
            lw.err(
                span.clone(),
                "the API key holds characters a header cannot carry",
            );
        }
    }
    let wait = lw.duration(&p.wait, Duration::from_secs(30));
    if let Some(w) = &p.wait {
        if wait < Duration::from_secs(1) || wait > MAX_WAIT {
            lw.err(w.span(), "`wait` must be between 1s and 60s");
        }
    }
    let cache_file = p.cache_file.as_ref().map(|c| {
        let path = lw.path(c.get_ref());
        let dir = path.parent().unwrap_or(Path::new("."));
        if !dir.is_dir() {
            lw.err(
                c.span(),
                format!("directory `{}` does not exist", dir.display()),
            );
        }
        path
    });
    let max_age = p.max_age.as_ref().map(|m| {
        let d = lw.duration(&Some(m.clone()), Duration::ZERO);
        if d < Duration::from_secs(1) {
            lw.err(m.span(), "`max_age` must be at least 1s");
        } else if d <= wait {
            // A healthy long poll confirms freshness only when it returns.
            lw.err(
                m.span(),
                "`max_age` must be longer than `wait` (a healthy long poll would look stale)",
            );
        }
        d
    });
    let on_stale = match &p.on_stale {
        None => OnStale::Keep,
        Some(o) => match o.get_ref().as_str() {
            "keep" => OnStale::Keep,
            "refuse" => {
                if max_age.is_none() {
                    lw.err(o.span(), "`on_stale = \"refuse\"` needs `max_age`");
                }
                OnStale::Refuse
            }
            other => {
                lw.err(
                    o.span(),
                    format!("unknown `on_stale` value `{other}` (use `keep` or `refuse`)"),
                );
                OnStale::Keep
            }
        },
    };
    let timeout = lw.duration(&p.timeout, Duration::from_secs(10));
    if let Some(t) = &p.timeout {
        if timeout.is_zero() {
            lw.err(t.span(), "`timeout` must be greater than 0");
        }
    }
    let backoff_min = lw.duration(&p.backoff_min, Duration::from_millis(500));
    let backoff_max = lw.duration(&p.backoff_max, Duration::from_secs(30));
    if let Some(b) = &p.backoff_min {
        if backoff_min.is_zero() {
            lw.err(b.span(), "`backoff_min` must be greater than 0");
        }
    }
    if let Some(b) = &p.backoff_max {
        if backoff_max < backoff_min {
            lw.err(b.span(), "`backoff_max` must be at least `backoff_min`");
        }
    }
    Some(AdminSource {
        url,
        keys_file,
        keys: PinnedKeys(std::sync::Arc::new(keys?)),
        api_key: Secret(api_key?),
        wait,
        cache_file,
        max_age,
        on_stale,
        timeout,
        backoff_min,
        backoff_max,
    })
}

const DEFAULT_SECURITY_HEADERS: &[(&str, &str)] = &[
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    (
        "strict-transport-security",
        "max-age=63072000; includeSubDomains",
    ),
];

fn lower_security_headers(
    lw: &mut Lowering,
    h: &Option<std::collections::BTreeMap<String, Spanned<String>>>,
) -> Vec<(http::HeaderName, http::HeaderValue)> {
    let mut out = Vec::new();
    match h {
        None => {
            for (n, v) in DEFAULT_SECURITY_HEADERS {
                out.push((
                    http::HeaderName::from_static(n),
                    http::HeaderValue::from_static(v),
                ));
            }
        }
        Some(map) => {
            for (name, value) in map {
                let n = http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes());
                let v = http::HeaderValue::from_str(value.get_ref());
                match (n, v) {
                    (Ok(n), Ok(v)) if !n.as_str().starts_with("x-sentinel-") => out.push((n, v)),
                    (Ok(_), Ok(_)) => lw.err(value.span(), "`x-sentinel-*` headers are reserved"),
                    _ => lw.err(value.span(), format!("invalid header `{name}`")),
                }
            }
        }
    }
    out
}

/// Lowers a route's `fields = { entity, at, on_write_denied, unknown_fields,
/// max_response_bytes }`, reporting every problem at its span.
fn lower_fields(
    f: &toml::Spanned<file::FieldsFile>,
    err: &mut dyn FnMut(std::ops::Range<usize>, String),
) -> Option<FieldBinding> {
    use crate::fields::{Binding, UnknownFields, WriteDenied};
    let fs = f.get_ref();
    let mut ok = true;
    if fs.entity.is_empty() {
        err(f.span(), "`fields.entity` must not be empty".into());
        ok = false;
    }
    let (at, binding) = match &fs.at {
        None => ("$", Binding::root()),
        Some(at) => match Binding::parse(at.get_ref()) {
            Ok(b) => (at.get_ref().as_str(), b),
            Err(e) => {
                // `+ 1`: the span starts at the opening quote.
                let col = at.span().start + e.column;
                err(
                    col..col,
                    format!("invalid `fields.at` `{}`: {e}", at.get_ref()),
                );
                ok = false;
                ("$", Binding::root())
            }
        },
    };
    let on_write_denied = match fs.on_write_denied.as_ref() {
        None => WriteDenied::Reject,
        Some(v) => match v.get_ref().as_str() {
            "reject" => WriteDenied::Reject,
            "drop" => WriteDenied::Drop,
            other => {
                err(
                    v.span(),
                    format!("`fields.on_write_denied` is `reject` or `drop`, not `{other}`"),
                );
                ok = false;
                WriteDenied::Reject
            }
        },
    };
    let unknown_fields = match fs.unknown_fields.as_ref() {
        None => UnknownFields::Remove,
        Some(v) => match v.get_ref().as_str() {
            "remove" => UnknownFields::Remove,
            "keep" => UnknownFields::Keep,
            other => {
                err(
                    v.span(),
                    format!("`fields.unknown_fields` is `remove` or `keep`, not `{other}`"),
                );
                ok = false;
                UnknownFields::Remove
            }
        },
    };
    let max_response_bytes = match &fs.max_response_bytes {
        Some(m) if *m.get_ref() == 0 => {
            err(
                m.span(),
                "`fields.max_response_bytes` must be greater than 0".into(),
            );
            ok = false;
            None
        }
        Some(m) => Some(*m.get_ref()),
        None => None,
    };
    ok.then(|| FieldBinding {
        entity: fs.entity.as_str().into(),
        at: at.into(),
        binding,
        on_write_denied,
        unknown_fields,
        max_response_bytes,
    })
}

fn load_route_file(
    path: &Path,
    upstreams: &HashMap<&str, usize>,
    classes: &HashSet<String>,
    out: &mut Vec<(Route, PathBuf, usize)>,
    ids: &mut HashMap<String, (PathBuf, usize)>,
    problems: &mut Vec<Problem>,
) {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            problems.push(Problem {
                file: path.to_path_buf(),
                line: 1,
                col: 1,
                message: format!("cannot read file: {e}"),
            });
            return;
        }
    };
    let src = SourceText { path, text: &text };
    let file: RoutesFile = match toml::from_str(&text) {
        Ok(f) => f,
        Err(e) => {
            problems.push(src.toml_error(&e));
            return;
        }
    };
    for r in &file.routes {
        let start = r.span().start;
        let r = r.get_ref();
        let mut errs: Vec<Problem> = Vec::new();
        let mut err =
            |span: std::ops::Range<usize>, m: String| errs.push(src.problem(span.start, m));
        let id = r.id.get_ref().clone();
        if id.is_empty() {
            err(r.id.span(), "route id must not be empty".into());
        } else if let Some((f, o)) = ids.get(&id) {
            err(
                r.id.span(),
                format!(
                    "duplicate route id `{id}` (first at {}:{})",
                    f.display(),
                    route_line(f, *o)
                ),
            );
        } else {
            ids.insert(id.clone(), (path.to_path_buf(), start));
        }
        let (segments, names) = match routes::parse_template(r.path.get_ref()) {
            Ok(x) => x,
            Err(e) => {
                err(
                    r.path.span(),
                    format!("invalid path `{}`: {e}", r.path.get_ref()),
                );
                (Vec::new(), Vec::new())
            }
        };
        let methods = r.methods.as_ref().map(|m| {
            let mut list: Vec<Box<str>> = Vec::new();
            for method in m.get_ref() {
                let up = method.to_ascii_uppercase();
                if http::Method::from_bytes(up.as_bytes()).is_err() || up.is_empty() {
                    err(m.span(), format!("invalid method `{method}`"));
                } else if !list.iter().any(|x| **x == *up) {
                    list.push(up.into());
                }
            }
            if list.is_empty() {
                err(
                    m.span(),
                    "`methods` must not be empty (omit it for every method)".into(),
                );
            }
            list.into_boxed_slice()
        });
        let upstream = match upstreams.get(r.upstream.get_ref().as_str()) {
            Some(u) => *u,
            None => {
                err(
                    r.upstream.span(),
                    format!("unknown upstream `{}`", r.upstream.get_ref()),
                );
                0
            }
        };
        let auth = match r.auth {
            AuthFile::Public => AuthRequirement::Public,
            AuthFile::Any => AuthRequirement::Any,
            AuthFile::Users => AuthRequirement::Users,
            AuthFile::ServiceAccounts => AuthRequirement::ServiceAccounts,
        };
        let resource = match &r.resource {
            Some(res) => match ResourceTemplate::parse(res.get_ref(), &names) {
                Ok(t) => Some(t),
                Err(e) => {
                    err(res.span(), e);
                    None
                }
            },
            None if auth != AuthRequirement::Public => {
                err(
                    r.path.span(),
                    "a route that is not public needs a `resource` (e.g. `vessel:{id}`)".into(),
                );
                None
            }
            None => None,
        };
        if let Some(a) = &r.action {
            let s = a.get_ref();
            if s.is_empty()
                || !s
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == ':')
            {
                err(a.span(), format!("invalid action `{s}`"));
            }
        }
        let tenant_param = r.tenant_param.as_ref().and_then(|t| {
            let idx = names.iter().position(|n| **n == **t.get_ref());
            if idx.is_none() {
                err(
                    t.span(),
                    format!(
                        "`tenant_param` `{}` is not a parameter of the path",
                        t.get_ref()
                    ),
                );
            }
            idx.map(|i| i as u8)
        });
        if auth == AuthRequirement::Public && (r.approval.is_some() || r.tenant_param.is_some()) {
            err(
                r.path.span(),
                "a public route cannot require approval or a tenant".into(),
            );
        }
        let forward = r.forward_credentials.as_ref().filter(|f| *f.get_ref());
        if let (Some(f), AuthRequirement::Public) = (forward, auth) {
            let why = "the gateway reads no credential there and forwards every header";
            err(
                f.span(),
                format!("`forward_credentials` has no effect on a public route ({why})"),
            );
        }
        let fields = r
            .fields
            .as_ref()
            .and_then(|f| lower_fields(f, &mut |span, msg| err(span, msg)));
        if let Some(class) = &r.rate_limit {
            if !classes.contains(class) {
                err(
                    r.id.span(),
                    format!("`rate_limit` names `{class}`, which `[rate_limits.classes]` does not define"),
                );
            }
        }
        if let Some(risk) = &r.risk {
            let rf = risk.get_ref();
            for v in [rf.step_up_above, rf.block_above].into_iter().flatten() {
                if !(0.0..=1.0).contains(&v) {
                    err(risk.span(), "risk thresholds are between 0 and 1".into());
                }
            }
        }
        let cors = r.cors.as_ref().map(|c| {
            let span = c.span();
            let c = c.get_ref();
            if c.origins.is_empty() {
                err(span.clone(), "`cors.origins` must not be empty".into());
            }
            let any_origin = c.origins.iter().any(|o| o == "*");
            if any_origin && c.credentials {
                err(
                    span.clone(),
                    "`cors.credentials` cannot be combined with origin `*`".into(),
                );
            }
            let max_age = match &c.max_age {
                Some(m) => parse_duration(m.get_ref()).unwrap_or_else(|e| {
                    err(m.span(), e);
                    Duration::ZERO
                }),
                None => Duration::from_secs(600),
            };
            let methods = if c.methods.is_empty() {
                r.methods.as_ref().map_or_else(
                    || "GET, HEAD, POST, PUT, PATCH, DELETE".to_owned(),
                    |m| m.get_ref().join(", "),
                )
            } else {
                c.methods.join(", ")
            };
            let headers = if c.headers.is_empty() {
                "authorization, content-type, x-api-key".to_owned()
            } else {
                c.headers.join(", ")
            };
            Cors {
                origins: c.origins.iter().map(|o| o.as_str().into()).collect(),
                any_origin,
                methods: methods.into(),
                headers: headers.into(),
                expose_headers: c.expose_headers.join(", ").into(),
                credentials: c.credentials,
                max_age_secs: max_age.as_secs(),
            }
        });
        if errs.is_empty() {
            out.push((
                Route {
                    id: id.into(),
                    host: r
                        .host
                        .as_ref()
                        .map(|h| h.get_ref().to_ascii_lowercase().into()),
                    segments: segments.into(),
                    param_names: names.into(),
                    methods,
                    upstream,
                    auth,
                    resource,
                    action: r.action.as_ref().map(|a| a.get_ref().as_str().into()),
                    tenant_param,
                    approval: r.approval.as_deref().map(Into::into),
                    rate_limit: r.rate_limit.as_deref().map(Into::into),
                    fields,
                    cors,
                    forward_credentials: forward.is_some(),
                    template: r.path.get_ref().as_str().into(),
                    series: Default::default(),
                },
                path.to_path_buf(),
                start,
            ));
        }
        problems.extend(errs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("2").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("1y").is_err());
    }

    #[test]
    fn line_cols() {
        let t = "a\nbc\néx";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 3), (2, 2));
        assert_eq!(line_col(t, 7), (3, 2));
        assert_eq!(line_col(t, 6), (3, 1));
        assert_eq!(line_col(t, 8), (3, 3));
        assert_eq!(line_col(t, 99), (3, 3));
    }
}
