//! Lowering of `sentinel.toml`: [`load`] reads the main file and every file
//! it names and turns them into [`Config`] in one pass that collects every
//! problem with its location.

use super::file::*;
use super::problems::{route_line, route_problem, Problem, SourceText};
use super::route::load_route_file;
use super::types::*;
use crate::routes::{Route, RouteTable};
use ipnet::IpNet;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;
use uuid::Uuid;

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

pub(super) struct Lowering<'a> {
    pub(super) src: SourceText<'a>,
    pub(super) dir: PathBuf,
    pub(super) problems: Vec<Problem>,
}

impl Lowering<'_> {
    pub(super) fn err(&mut self, span: std::ops::Range<usize>, msg: impl Into<String>) {
        let p = self.src.problem(span.start, msg);
        self.problems.push(p);
    }

    pub(super) fn duration(&mut self, v: &Option<Spanned<String>>, default: Duration) -> Duration {
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

    pub(super) fn addr(&mut self, v: &Option<Spanned<String>>, default: &str) -> SocketAddr {
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

    pub(super) fn path(&self, p: &str) -> PathBuf {
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
    let drain_timeout = lw.duration(&parsed.listen.drain_timeout, Duration::from_secs(25));
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
        request_header_timeout: lw.duration(
            &parsed.limits.request_header_timeout,
            Duration::from_secs(10),
        ),
        client_idle_timeout: lw
            .duration(&parsed.limits.client_idle_timeout, Duration::from_secs(60)),
        max_connections_per_client: limit(
            &mut lw,
            &parsed.limits.max_connections_per_client,
            256,
            "max_connections_per_client",
        ),
    };
    for (value, set, name) in [
        (
            &parsed.limits.request_header_timeout,
            limits.request_header_timeout,
            "request_header_timeout",
        ),
        (
            &parsed.limits.client_idle_timeout,
            limits.client_idle_timeout,
            "client_idle_timeout",
        ),
    ] {
        if let (Some(t), true) = (value, set.is_zero()) {
            lw.err(t.span(), format!("`{name}` must be greater than 0"));
        }
    }

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
    let policy = super::policy_source::lower_policy(&mut lw, &parsed.policy);
    let audit = super::audit::lower_audit(&mut lw, &parsed.audit, &policy);
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
    let client_headers = crate::headers::ClientHeaders {
        underscores: match parsed.client_headers.underscores.as_ref() {
            None => crate::headers::Underscores::Drop,
            Some(u) => match u.get_ref().as_str() {
                "drop" => crate::headers::Underscores::Drop,
                "reject" => crate::headers::Underscores::Reject,
                "allow" => crate::headers::Underscores::Allow,
                other => {
                    lw.err(
                        u.span(),
                        format!("`underscores` is `drop`, `reject` or `allow`, not `{other}`"),
                    );
                    crate::headers::Underscores::Drop
                }
            },
        },
    };
    let security_headers = lower_security_headers(&mut lw, &parsed.security_headers);
    let rate_limits = parsed
        .rate_limits
        .as_ref()
        .map(|r| super::ratelimits::lower_rate_limits(&mut lw, r));
    let risk = lw.risk(&parsed.risk);
    let log_format = lw.log_format(&parsed.logging);
    let otel = parsed.otel.as_ref().and_then(|o| lw.otel(o));
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
    // Not a problem (the gateway starts), but a slot that can never see a
    // score asks every request on its route for a step-up (`risk::enforce`).
    let mut warnings = Vec::new();
    if !risk.enabled {
        for (r, file, offset) in &all_routes {
            if r.risk.is_some() {
                warnings.push(route_problem(
                    file,
                    *offset,
                    format!(
                        "warning: route `{}` has a `risk` slot but `[risk] enabled = false` gives no request a score: unknown risk fails closed, so every request on it must step up (fresh MFA)",
                        r.id
                    ),
                ));
            }
        }
    }
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
            drain_timeout,
            tls,
            limits,
            upstreams,
            issuers,
            policy,
            assertion,
            explain,
            trusted_proxies,
            client_headers,
            security_headers,
            routes: std::sync::Arc::new(table),
            rate_limits,
            audit,
            risk,
            log_format,
            otel,
            files,
            route_patterns,
            warnings,
        }),
        _ => Err(lw.problems),
    }
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
            match crate::auth::jwt::algorithm_named(a.get_ref()) {
                Some(alg) => algorithms.push(alg),
                None => lw.err(
                    a.span(),
                    format!(
                        "unsupported algorithm `{}` (allowed: {})",
                        a.get_ref(),
                        crate::auth::jwt::SUPPORTED_NAMES
                    ),
                ),
            }
        }
        if i.algorithms.is_empty() {
            lw.err(span.clone(), "an issuer needs at least one algorithm");
        }
        let discovery = i.discovery == Some(true);
        let sources = [
            i.jwks_file.is_some(),
            i.jwks_url.is_some(),
            i.hmac_secret_env.is_some(),
            discovery,
        ];
        let leeway = lw.duration(&i.leeway, Duration::from_secs(30));
        let keys = if sources.iter().filter(|b| **b).count() != 1 {
            lw.err(
                span.clone(),
                "an issuer needs exactly one of `jwks_file`, `jwks_url`, `hmac_secret_env`, `discovery = true`",
            );
            continue;
        } else if discovery {
            if !(i.issuer.starts_with("https://") || i.issuer.starts_with("http://")) {
                lw.err(
                    span.clone(),
                    format!(
                        "`discovery` needs an http(s) issuer URL, not `{}`",
                        i.issuer
                    ),
                );
            }
            IssuerKeys::Discovery {
                refresh_every: lw.duration(&i.refresh_every, Duration::from_secs(300)),
                min_refetch_interval: lw.duration(&i.min_refetch_interval, Duration::from_secs(10)),
            }
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
            require_low_s: i.require_low_s.unwrap_or(true),
        });
    }
    out
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
