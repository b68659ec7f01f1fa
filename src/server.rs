//! Assembles the Pingora server from a validated [`Config`]: the proxy
//! service, the ops service, and the background tasks (policy watch or the
//! admin snapshot poller, config reload, JWKS refresh, the audit shipper).

use crate::assertion::Signer;
use crate::auth::jwt::{IssuerSpec, KeySource, Verifier, VerifierSettings};
use crate::config::{Config, IssuerKeys};
use crate::live::files;
use crate::ops::Ops;
use crate::policy_store::PolicyStore;
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
                IssuerKeys::Discovery {
                    refresh_every,
                    min_refetch_interval,
                } => KeySource::Discovery {
                    refresh_every: *refresh_every,
                    min_refetch_interval: *min_refetch_interval,
                },
                IssuerKeys::Hmac { kid, secret } => KeySource::HmacSecret {
                    kid: kid.clone(),
                    secret: secret.clone(),
                },
            },
            leeway: i.leeway,
            require_low_s: i.require_low_s,
        })
        .collect()
}

/// Everything `run` needs, built and checked before any listener opens.
pub struct Prepared {
    pub config: Config,
    pub state: Arc<GatewayState>,
    /// The admin source's snapshot loaded from the cache file, if any.
    pub held: Option<crate::live::snapshot::Held>,
}

/// Loads the policy, keys and verifier. Fails (with every problem) rather than
/// start half-configured.
pub fn prepare(config: Config) -> anyhow::Result<Prepared> {
    let policy = Arc::new(PolicyStore::new());
    let mut held = None;
    match &config.policy.admin {
        // The admin source starts from its cache file (if any) and otherwise
        // stays not ready (503 POLICY_UNAVAILABLE) until the first fetch.
        Some(admin) => {
            if let (crate::config::OnStale::Refuse, Some(max_age)) = (admin.on_stale, admin.max_age)
            {
                policy.refuse_when_older_than(max_age);
            }
            held = crate::live::snapshot::load_cache(&policy, admin);
        }
        None => match files::load_policy(&config.policy.patterns) {
            Ok(snapshot) => policy.swap(snapshot),
            Err(problems) => {
                let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
                anyhow::bail!("policy is invalid:\n{}", text.join("\n"));
            }
        },
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
    // Opened before any listener: a spool that cannot be written refuses the start.
    let audit = match &config.audit {
        Some(cfg) => Some(Arc::new(crate::audit::Audit::open(
            cfg,
            config.policy.admin.as_ref(),
        )?)),
        None => None,
    };
    // Off unless `[otel]` is configured: then no tracer exists at all.
    let tracing = match &config.otel {
        Some(settings) => Some(Arc::new(
            crate::otel::Tracing::start(settings).context("cannot set up tracing")?,
        )),
        None => None,
    };
    let field_hash_key = crate::fields::hash_key_from_secret(config.assertion.key_pem.as_bytes());
    let state = Arc::new(GatewayState {
        field_hash_key,
        field_plans: crate::fields::PlanCache::new(),
        routes: ArcSwap::new(config.routes.clone()),
        policy,
        verifier: Arc::new(verifier),
        signer,
        pools: config.upstreams.iter().cloned().map(Pool::new).collect(),
        limits: config.limits,
        explain: config.explain.clone(),
        trusted_proxies: config.trusted_proxies.clone(),
        client_headers: config.client_headers,
        security_headers: config.security_headers.clone(),
        rate_limits,
        audit,
        risk: config.risk.enabled.then(|| {
            let secret = crate::risk::telemetry_secret(config.assertion.key_pem.as_bytes());
            let risk = crate::risk::Risk::new(&config.risk, secret);
            // Profiles live in the admin API when there is one (else in memory).
            if let (Some(b), Some(admin)) = (&risk.biometrics, &config.policy.admin) {
                b.attach(admin);
            }
            Arc::new(risk)
        }),
        tracing,
    });
    Ok(Prepared {
        config,
        state,
        held,
    })
}

struct Background {
    state: Arc<GatewayState>,
    tls: Option<Arc<crate::tls::SniResolver>>,
    config: Config,
    held: Option<crate::live::snapshot::Held>,
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
        let keys: Option<crate::live::snapshot::Keys> = self
            .config
            .policy
            .admin
            .as_ref()
            .map(|a| Arc::new(arc_swap::ArcSwap::new(a.keys.0.clone())));
        let reloader =
            crate::live::reload::Reloader::new(&self.config, self.state.clone(), keys.clone());
        let reload = tokio::spawn(reloader.run(self.config.policy.watch_interval));
        let policy = self.state.policy.clone();
        let policy_task = match (&self.config.policy.admin, keys) {
            (Some(admin), Some(keys)) => {
                let mut poller = crate::live::snapshot::Poller::new(
                    policy,
                    admin.clone(),
                    keys,
                    self.held.clone(),
                );
                // The registry's anomaly model follows the manifest (ends
                // with the poller, which holds the sender).
                if let Some(risk) = &self.state.risk {
                    let (follower, tx) =
                        crate::live::model::ModelFollower::new(Arc::clone(risk), admin.clone());
                    tokio::spawn(follower.run());
                    poller = poller.with_model_follower(tx);
                }
                tokio::spawn(poller.run())
            }
            _ => tokio::spawn(files::watch(
                policy,
                self.config.policy.patterns.clone(),
                self.config.policy.watch_interval,
            )),
        };
        let audit = self
            .state
            .audit
            .as_ref()
            .map(|a| a.spawn())
            .unwrap_or_default();
        let _ = shutdown.changed().await;
        for t in audit {
            t.abort();
        }
        if let Some(a) = &self.state.audit {
            a.sync();
        }
        policy_task.abort();
        reload.abort();
        refresh.abort();
        for h in health {
            h.abort();
        }
        if let Some(c) = certs {
            c.abort();
        }
    }
}

/// How `sentinel run` takes over from a running gateway (Pingora's graceful
/// upgrade): the old process hands its listening sockets over `upgrade_sock`
/// when it receives SIGQUIT.
#[derive(Debug, Clone, Default)]
pub struct Upgrade {
    /// Take the listeners of the running gateway instead of binding.
    pub upgrade: bool,
    /// The Unix socket the listeners are handed over on (both processes must agree).
    pub upgrade_sock: Option<PathBuf>,
}

/// Fails unless every listen address can be bound now. Pingora binds in each
/// service's own thread and, on an address in use, retries for 30 s and then
/// panics that thread while the others keep serving: a gateway whose ops
/// listener says ready while another process answers on its proxy port. So
/// `sentinel run` checks first and refuses to start (an upgrade takes the
/// sockets over instead, and skips this). All are held at once, so one
/// address given twice is caught too.
pub fn check_listen(addrs: &[(&str, std::net::SocketAddr)]) -> anyhow::Result<()> {
    let mut held = Vec::with_capacity(addrs.len());
    for (what, addr) in addrs {
        // std sets SO_REUSEADDR, as Pingora does: only a live listener conflicts.
        let l = std::net::TcpListener::bind(addr)
            .with_context(|| format!("cannot listen on {addr} ({what})"))?;
        held.push(l);
    }
    Ok(())
}

/// The other half of [`check_listen`]: should an address be taken between the
/// check and Pingora's bind, the panic of that service's thread ends the
/// process (exit 1) instead of leaving it half up. Other panics keep the
/// default behaviour.
pub fn exit_when_a_listener_fails() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        // pingora-core `services/listening.rs`: `.expect("Failed to build listeners")`.
        if msg.starts_with("Failed to build listeners") {
            tracing::error!("a listener could not be bound; exiting");
            std::process::exit(1);
        }
    }));
}

/// Builds the Pingora server. `run_forever` on the result never returns.
pub fn build(prepared: Prepared, upgrade: &Upgrade) -> anyhow::Result<Server> {
    let Prepared {
        config,
        state,
        held,
    } = prepared;
    let mut conf = ServerConf {
        threads: config.threads,
        // Pingora's own timers (`fast_timeout`) read the clock for every
        // upstream read and write they wrap, armed or not, and again to arm;
        // tokio's timer is created only when the I/O is pending and is
        // cancelled on drop. Every timeout of a second or more uses tokio's:
        // about 3 % less CPU per proxied request (docs/PERFORMANCE.md,
        // "Timers, credentials and the token-cache key").
        fast_timeout_to_tokio_threshold_seconds: Some(0),
        // A graceful stop ends as soon as nothing is in flight (`drain::Drain`);
        // Pingora's own grace period is only the fallback just past it.
        grace_period_seconds: Some(config.drain_timeout.as_secs() + 1),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    if let Some(sock) = &upgrade.upgrade_sock {
        conf.upgrade_sock = sock.to_string_lossy().into_owned();
    }
    let opt = pingora::server::configuration::Opt {
        upgrade: upgrade.upgrade,
        ..Default::default()
    };
    if !upgrade.upgrade {
        let mut addrs = vec![("proxy", config.proxy_addr), ("ops", config.ops_addr)];
        if let Some(tls) = &config.tls {
            addrs.push(("tls", tls.address));
        }
        check_listen(&addrs)?;
    }
    let mut server = Server::new_with_opt_and_conf(Some(opt), conf);
    server.bootstrap();

    // The proxy app behind the connection limits (conn.rs: head deadline,
    // connections per client).
    let mut app = pingora::proxy::HttpProxy::new(
        Gateway {
            state: state.clone(),
        },
        server.configuration.clone(),
    );
    app.handle_init_modules();
    let guarded = crate::conn::Guarded {
        app: Arc::new(app),
        limits: Arc::new(crate::conn::ConnLimits::new(
            config.limits.request_header_timeout,
            config.limits.client_idle_timeout,
            config.limits.max_connections_per_client,
            config.trusted_proxies.clone(),
        )),
    };
    let mut proxy = Service::new("sentinel proxy".to_owned(), guarded);
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
            max_age: config.policy.admin.as_ref().and_then(|a| a.max_age),
            limiter: state.rate_limits.as_ref().map(|(l, _)| l.clone()),
        }),
    );
    ops.add_tcp(&config.ops_addr.to_string());

    let audit = state.audit.clone();
    let tracing = state.tracing.clone();
    let background = background_service(
        "sentinel background",
        Background {
            state,
            tls: resolver,
            config: config.clone(),
            held,
        },
    );
    server.add_service(proxy);
    server.add_service(ops);
    server.add_service(background);
    server.add_service(background_service(
        "sentinel drain",
        crate::drain::Drain {
            timeout: config.drain_timeout,
            audit,
            tracing,
        },
    ));
    Ok(server)
}
