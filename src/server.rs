//! Assembles the Pingora server from a validated [`Config`]: the proxy
//! service, the ops service, and the background tasks (policy watch, JWKS
//! refresh).

use crate::assertion::Signer;
use crate::auth::jwt::{IssuerSpec, KeySource, Verifier, VerifierSettings};
use crate::config::{Config, IssuerKeys};
use crate::ops::Ops;
use crate::policy_store::{self, PolicyStore};
use crate::proxy::{Gateway, GatewayState, Pool};
use anyhow::Context;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::apps::http_app::HttpServer;
use pingora::server::configuration::ServerConf;
use pingora::server::{Server, ShutdownWatch};
use pingora::services::background::{background_service, BackgroundService};
use pingora::services::listening::Service;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The issuers of a config, in the verifier's terms.
pub fn issuer_specs(config: &Config) -> Vec<IssuerSpec> {
    config
        .issuers
        .iter()
        .map(|i| IssuerSpec {
            issuer: i.issuer.clone(),
            audiences: i.audiences.clone(),
            algorithms: i.algorithms.clone(),
            keys: match &i.keys {
                IssuerKeys::JwksFile(p) => KeySource::JwksFile(p.clone()),
                IssuerKeys::JwksUrl {
                    url,
                    refresh_every,
                    min_refetch_interval,
                } => KeySource::JwksUrl {
                    url: url.clone(),
                    refresh_every: *refresh_every,
                    min_refetch_interval: *min_refetch_interval,
                },
                IssuerKeys::Hmac { kid, secret } => KeySource::HmacSecret {
                    kid: kid.clone(),
                    secret: secret.clone(),
                },
            },
            leeway: i.leeway,
        })
        .collect()
}

/// Everything `run` needs, built and checked before any listener opens.
pub struct Prepared {
    pub config: Config,
    pub state: Arc<GatewayState>,
}

/// Loads the policy, keys and verifier. Fails (with every problem) rather than
/// start half-configured.
pub fn prepare(config: Config) -> anyhow::Result<Prepared> {
    let policy = Arc::new(PolicyStore::new());
    match policy_store::load_policy(&config.policy.patterns) {
        Ok(snapshot) => policy.swap(snapshot),
        Err(problems) => {
            let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
            anyhow::bail!("policy is invalid:\n{}", text.join("\n"));
        }
    }
    let signer = Arc::new(Signer::new(&config.assertion)?);
    let settings = VerifierSettings {
        max_token_bytes: config.limits.max_token_bytes,
        cache_capacity: config.limits.token_cache_capacity,
    };
    let specs = issuer_specs(&config);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start setup runtime")?;
    let verifier = runtime
        .block_on(Verifier::new(specs, settings))
        .context("cannot set up token verification")?;
    let rate_limits = match &config.rate_limits {
        Some(cfg) => {
            let limiter = runtime
                .block_on(crate::ratelimit::Limiter::new(cfg.mode.clone()))
                .context("cannot set up rate limiting")?;
            Some((limiter, cfg.clone()))
        }
        None => None,
    };
    let state = Arc::new(GatewayState {
        routes: ArcSwap::new(config.routes.clone()),
        policy,
        verifier: Arc::new(verifier),
        signer,
        pools: config.upstreams.iter().cloned().map(Pool::new).collect(),
        limits: config.limits,
        explain: config.explain.clone(),
        trusted_proxies: config.trusted_proxies.clone(),
        security_headers: config.security_headers.clone(),
        rate_limits,
    });
    Ok(Prepared { config, state })
}

struct Background {
    state: Arc<GatewayState>,
    tls: Option<Arc<crate::tls::SniResolver>>,
    policy_patterns: Vec<PathBuf>,
    watch_interval: Duration,
}

#[async_trait]
impl BackgroundService for Background {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let refresh = self.state.verifier.spawn_refresh();
        let health: Vec<_> = self
            .state
            .pools
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.upstream.health_interval.map(|every| (i, every)))
            .map(|(i, every)| {
                let state = self.state.clone();
                tokio::spawn(async move {
                    if let Some(pool) = state.pools.get(i) {
                        pool.check_forever(every).await;
                    }
                })
            })
            .collect();
        let certs = self
            .tls
            .clone()
            .map(|r| tokio::spawn(r.watch(Duration::from_secs(2))));
        let watch = policy_store::watch(
            self.state.policy.clone(),
            self.policy_patterns.clone(),
            self.watch_interval,
        );
        tokio::select! {
            _ = watch => {}
            _ = shutdown.changed() => {}
        }
        refresh.abort();
        for h in health {
            h.abort();
        }
        if let Some(c) = certs {
            c.abort();
        }
    }
}

/// Builds the Pingora server. `run_forever` on the result never returns.
pub fn build(prepared: Prepared) -> anyhow::Result<Server> {
    let Prepared { config, state } = prepared;
    let conf = ServerConf {
        threads: config.threads,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let mut proxy = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        Gateway {
            state: state.clone(),
        },
        "sentinel proxy",
    );
    proxy.add_tcp(&config.proxy_addr.to_string());
    let mut resolver = None;
    if let Some(tls) = &config.tls {
        let (settings, r) = crate::tls::settings(tls)?;
        proxy.add_tls_with_settings(&tls.address.to_string(), None, settings);
        resolver = Some(r);
    }

    let mut ops = Service::new(
        "sentinel ops".to_owned(),
        HttpServer::new_app(Ops {
            policy: state.policy.clone(),
            jwks: state.signer.jwks(),
        }),
    );
    ops.add_tcp(&config.ops_addr.to_string());

    let background = background_service(
        "sentinel background",
        Background {
            state,
            tls: resolver,
            policy_patterns: config.policy.patterns.clone(),
            watch_interval: config.policy.watch_interval,
        },
    );
    server.add_service(proxy);
    server.add_service(ops);
    server.add_service(background);
    Ok(server)
}
