//! `sentinel-admin`: migrate, bootstrap, seed-demo, rotate-keys, publish,
//! snapshot keys and gateway keys, serve.
//!
//! Run: `DATABASE_URL=postgres://postgres@127.0.0.1/sentinel sentinel-admin migrate`, then
//! `SENTINEL_BOOTSTRAP_PASSWORD=... sentinel-admin bootstrap --email admin@example.com`, then
//! `DATABASE_URL=postgres://sentinel_api@127.0.0.1/sentinel
//! SENTINEL_PLATFORM_DATABASE_URL=postgres://sentinel_platform@127.0.0.1/sentinel sentinel-admin serve` and
//! `curl -s 127.0.0.1:8081/healthz`.

use anyhow::Context;
use clap::{Parser, Subcommand};
use sentinel_admin::{config::Config, db, keys, seed, snapshot, snapshot_keys, AppState};

#[derive(Parser)]
#[command(name = "sentinel-admin", version, about = "Sentinel admin API")]
struct Cli {
    /// PostgreSQL URL. `serve` must connect as the API role (`sentinel_api`);
    /// the other commands as the migration (owner) role.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    database_url: Option<String>,
    /// PostgreSQL URL of the platform role (`sentinel_platform`), which
    /// `serve` uses for platform-wide work (migration 0013, docs/admin-api.md).
    #[arg(
        long,
        env = "SENTINEL_PLATFORM_DATABASE_URL",
        global = true,
        hide_env_values = true
    )]
    platform_database_url: Option<String>,
    /// Log lines on standard error: `json` or `pretty` (default: pretty
    /// when standard error is a terminal, JSON otherwise). Level from `RUST_LOG`.
    #[arg(long, env = "SENTINEL_LOG_FORMAT", global = true)]
    log_format: Option<sentinel_telemetry::logging::LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply migrations/ to the database.
    Migrate,
    /// Run the admin API.
    Serve {
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: String,
        /// Allow a database role that bypasses row-level security (development only).
        #[arg(long)]
        allow_privileged_role: bool,
    },
    /// Create the platform tenant and a platform superuser (password from SENTINEL_BOOTSTRAP_PASSWORD).
    Bootstrap {
        #[arg(long)]
        email: String,
        /// Recovery: also give the account the superadmin role with no
        /// validity window, activate and unlock it, set its password from
        /// SENTINEL_BOOTSTRAP_PASSWORD and end its sessions (docs/security.md).
        #[arg(long)]
        recover: bool,
    },
    /// Load the demo tenants and data (password of demo users from SENTINEL_DEMO_PASSWORD).
    SeedDemo,
    /// Rotate the token signing key (the previous key keeps verifying until the next rotation).
    RotateKeys,
    /// Seal every private key stored in clear, and reseal those sealed with
    /// SENTINEL_KEK_PREVIOUS under SENTINEL_KEK (`serve` does this at start).
    SealKeys,
    /// Publish the next snapshot version now, even when nothing changed: the
    /// parts changed since the latest manifest are compiled and stored, a new
    /// manifest is signed (`serve` publishes every change by itself).
    Publish {
        /// The new version is at least this (after a database restore, jump
        /// past the highest version any gateway holds).
        #[arg(long, default_value_t = 0)]
        min_version: u64,
        /// Load and compile every part, not only the changed ones (the
        /// manifest is the same; parts whose bytes did not change keep
        /// their `since`).
        #[arg(long)]
        rebuild: bool,
    },
    /// Print the JWKS of the snapshot signing keys (for a gateway's pinned key file).
    SnapshotJwks,
    /// Add the next snapshot signing key to the JWKS without signing with it yet.
    StageSnapshotKey,
    /// Rotate the snapshot signing key (the staged one, else a new one); the
    /// previous key keeps verifying until the next rotation.
    RotateSnapshotKey,
    /// Gateway service accounts (platform tenant, scopes `snapshot:read` and `audit:write`).
    GatewayKey {
        #[command(subcommand)]
        action: GatewayKeyAction,
    },
    /// The audit trail.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
}

#[derive(Subcommand)]
enum AuditAction {
    /// Walk the hash chains (per tenant and UTC day) and name the first
    /// broken link; exits 1 when one is broken.
    Verify {
        /// First UTC day to check (YYYY-MM-DD); default: the oldest.
        #[arg(long)]
        from: Option<chrono::NaiveDate>,
        /// Last UTC day to check (YYYY-MM-DD); default: the newest.
        #[arg(long)]
        to: Option<chrono::NaiveDate>,
    },
    /// Create partitions ahead and apply retention once (`serve` does this hourly).
    Maintain,
}

#[derive(Subcommand)]
enum GatewayKeyAction {
    /// Create a gateway service account and print its API key (shown once).
    Create {
        #[arg(long)]
        name: String,
        /// Key lifetime in days; default SENTINEL_API_KEY_TTL_DAYS, 0 for none.
        #[arg(long)]
        expires_in_days: Option<i64>,
    },
    /// Replace a gateway's API key and print the new one (the old one stops working).
    Rotate {
        #[arg(long)]
        name: String,
        #[arg(long)]
        expires_in_days: Option<i64>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    sentinel_telemetry::logging::init(
        "RUST_LOG",
        cli.log_format
            .unwrap_or_else(sentinel_telemetry::logging::LogFormat::auto),
    );
    let url = cli.database_url.context("DATABASE_URL is not set")?;
    let cfg = Config::from_env()?;
    match cli.command {
        Command::Migrate => {
            let pool = db::connect(&url, 2).await?;
            db::migrate(&pool).await?;
            println!("migrations applied");
        }
        Command::Bootstrap { email, recover } => {
            let password = std::env::var("SENTINEL_BOOTSTRAP_PASSWORD")
                .context("SENTINEL_BOOTSTRAP_PASSWORD is not set")?;
            let pool = db::connect(&url, 2).await?;
            if recover {
                let r = seed::recover(&pool, &cfg, &email, &password).await?;
                println!(
                    "platform superuser {email} recovered ({}): superadmin role restored, \
                     account active and unlocked, password set, sessions ended",
                    r.user_id
                );
                return Ok(());
            }
            let r = seed::bootstrap(&pool, &cfg, &email, &password).await?;
            if r.created_user {
                println!("platform superuser {email} created ({})", r.user_id);
            } else {
                println!(
                    "platform superuser {email} already exists ({}); password unchanged",
                    r.user_id
                );
            }
        }
        Command::SeedDemo => {
            let password = std::env::var("SENTINEL_DEMO_PASSWORD")
                .unwrap_or_else(|_| seed::DEFAULT_DEMO_PASSWORD.to_owned());
            let pool = db::connect(&url, 2).await?;
            let r = seed::seed_demo(&pool, &cfg, &password).await?;
            for (tenant, email) in &r.users {
                println!("user {email} ({tenant}) created");
            }
            for (tenant, name, key) in &r.api_keys {
                println!("service account {name} ({tenant}) API key (shown once): {key}");
            }
            println!("demo data ready (tenants TEST-001, TEST-002, TEST-001-SUB)");
        }
        Command::SealKeys => {
            let pool = db::connect(&url, 2).await?;
            let n = keys::seal_all(&pool, false).await?;
            println!(
                "{n} private keys sealed with key-encryption key {}",
                sentinel_admin::sealing::keyring()?.current.id()
            );
        }
        Command::RotateKeys => {
            let pool = db::connect(&url, 2).await?;
            let kid = keys::rotate(&pool).await?;
            println!("new signing key {kid}; running servers pick it up within SENTINEL_KEY_RELOAD_SECONDS");
        }
        Command::Publish {
            min_version,
            rebuild,
        } => {
            let pool = db::connect(&url, 2).await?;
            snapshot_keys::ensure_key(&pool).await?;
            match snapshot::publish_with(&pool, None, true, min_version, rebuild).await? {
                snapshot::Outcome::Published {
                    snapshot,
                    new_parts,
                    shards_built,
                    compile,
                    sign,
                    ..
                } => {
                    println!(
                        "published policy snapshot version {} ({} shards; {} built, {} new parts, \
                         {} bytes new; manifest {} bytes; compile {} ms, sign {} ms)",
                        snapshot.version,
                        snapshot.manifest.shards.len(),
                        shards_built,
                        new_parts.len(),
                        new_parts.iter().map(|(_, b)| b.len()).sum::<usize>(),
                        snapshot.manifest_bytes.len(),
                        compile.as_millis(),
                        sign.as_millis()
                    );
                }
                snapshot::Outcome::Unchanged(v) => println!("policy unchanged (version {v})"),
                snapshot::Outcome::Invalid { errors, .. } => {
                    for e in errors {
                        eprintln!("{e}");
                    }
                    anyhow::bail!("policy does not compile; nothing published");
                }
            }
        }
        Command::SnapshotJwks => {
            let pool = db::connect(&url, 2).await?;
            snapshot_keys::ensure_key(&pool).await?;
            let mut conn = pool.acquire().await?;
            let jwks = snapshot_keys::jwks(&mut conn).await?;
            println!("{}", serde_json::to_string_pretty(&jwks)?);
        }
        Command::StageSnapshotKey => {
            let pool = db::connect(&url, 2).await?;
            let kid = snapshot_keys::stage(&pool).await?;
            println!("staged snapshot signing key {kid}; export the JWKS to pinned gateways, then rotate-snapshot-key");
        }
        Command::RotateSnapshotKey => {
            let pool = db::connect(&url, 2).await?;
            let kid = snapshot_keys::rotate(&pool).await?;
            println!("new snapshot signing key {kid}; the next snapshot is signed with it");
        }
        Command::GatewayKey { action } => {
            let pool = db::connect(&url, 2).await?;
            let (name, rotate, days) = match action {
                GatewayKeyAction::Create {
                    name,
                    expires_in_days,
                } => (name, false, expires_in_days),
                GatewayKeyAction::Rotate {
                    name,
                    expires_in_days,
                } => (name, true, expires_in_days),
            };
            let g = seed::gateway_key(&pool, &cfg, &name, rotate, days).await?;
            eprintln!(
                "gateway service account {name} ({}) in tenant PLATFORM; API key (shown once):",
                g.user_id
            );
            println!("{}", g.key);
        }
        Command::Audit {
            action: AuditAction::Verify { from, to },
        } => {
            let pool = db::connect(&url, 2).await?;
            let report = sentinel_admin::audit::chain::verify(&pool, from, to).await?;
            match report.broken {
                None => println!(
                    "audit trail intact: {} chains, {} events",
                    report.chains, report.events
                ),
                Some(b) => {
                    eprintln!("first broken link: {b}");
                    std::process::exit(1);
                }
            }
        }
        Command::Audit {
            action: AuditAction::Maintain,
        } => {
            // The owner role (DATABASE_URL) is believed across tenants too.
            let pool = db::connect(&url, 2).await?;
            let state = AppState::new(pool.clone(), pool, cfg.clone()).await?;
            sentinel_admin::audit::maintain(&state).await?;
            println!("audit partitions ready and retention applied");
        }
        Command::Serve {
            listen,
            allow_privileged_role,
        } => {
            let pool = db::connect(&url, 16).await?;
            if let Some(problem) = db::role_problem(&pool).await? {
                if allow_privileged_role {
                    tracing::warn!("{problem}");
                } else {
                    anyhow::bail!("{problem} (or pass --allow-privileged-role)");
                }
            }
            let platform = match cli
                .platform_database_url
                .as_deref()
                .filter(|u| !u.is_empty())
            {
                Some(u) => db::connect(u, 8).await?,
                // Development with a privileged role: it does both kinds of work.
                None if allow_privileged_role => pool.clone(),
                None => anyhow::bail!(
                    "SENTINEL_PLATFORM_DATABASE_URL is not set: `serve` needs the platform role \
                     `sentinel_platform` for platform-wide work (docs/admin-api.md)"
                ),
            };
            if let Some(problem) = db::platform_role_problem(&platform).await? {
                if allow_privileged_role {
                    tracing::warn!("{problem}");
                } else {
                    anyhow::bail!("{problem} (or pass --allow-privileged-role)");
                }
            }
            let state = AppState::new(pool.clone(), platform, cfg.clone()).await?;
            let mut live_tasks = sentinel_admin::live::spawn(&state);
            live_tasks.push(sentinel_admin::audit::spawn_maintenance(&state));
            live_tasks.push(sentinel_admin::approvals::worker::spawn(&state));
            live_tasks.push(sentinel_admin::outbox::spawn(&state)?);
            if cfg.ai_enabled && cfg.compliance_checks_enabled {
                live_tasks.push(sentinel_admin::ai::compliance::spawn_worker(&state));
            }
            let reload = state.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(std::time::Duration::from_secs(
                    cfg.key_reload_seconds.max(1),
                ));
                loop {
                    tick.tick().await;
                    if let Err(e) = reload.keys.reload(&reload.platform).await {
                        tracing::warn!(error = %e, "cannot reload signing keys");
                    }
                    if let Err(e) = reload.live.reload_jwks(&reload.platform).await {
                        tracing::warn!(error = %e, "cannot reload snapshot signing keys");
                    }
                }
            });
            // Traces only with SENTINEL_OTEL_ENDPOINT: otherwise no tracer and no layer.
            let traces = match sentinel_admin::otel::settings_from_env()? {
                Some(settings) => Some(std::sync::Arc::new(
                    // The exporter's blocking HTTP client must not be built on the runtime.
                    tokio::task::spawn_blocking(move || {
                        sentinel_telemetry::otel::Tracing::start(&settings)
                    })
                    .await??,
                )),
                None => None,
            };
            let mut app = sentinel_admin::app(state.clone());
            if let Some(t) = &traces {
                app = sentinel_admin::otel::layer(app, t.clone(), &cfg.trusted_proxies);
            }
            let listener = tokio::net::TcpListener::bind(&listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            tracing::info!(%listen, "sentinel-admin listening");
            let closing = state.clone();
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                shutdown_signal().await;
                // Pending long-polls answer 304 now instead of holding shutdown.
                closing.live.close();
            })
            .await?;
            for t in live_tasks {
                t.abort();
            }
            if let Some(t) = traces {
                let _ = tokio::task::spawn_blocking(move || t.shutdown()).await;
            }
        }
    }
    Ok(())
}

/// SIGINT or (on Unix) SIGTERM, what process managers send to stop a service.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; stopping on SIGINT only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
