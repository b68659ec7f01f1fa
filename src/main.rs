//! `sentinel`: the gateway binary.
//!
//! ```text
//! sentinel demo                                  # gateway + demo apps, no database
//! sentinel run --config config/sentinel.toml     # run the gateway
//! sentinel check --config config/sentinel.toml   # validate, print every problem
//! sentinel what-if --policy new.toml --against audit.jsonl   # decisions that would flip
//! sentinel audit tail --spool DIR -n 5           # the last audit events in a spool
//! curl -s 127.0.0.1:9090/readyz
//! ```

// The allocator: docs/PERFORMANCE.md, "Allocator".
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use clap::{Parser, Subcommand};
use sentinel::logging::LogFormat;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "sentinel", version, about = "Sentinel access gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Run {
        #[arg(long, short)]
        config: PathBuf,
        /// Graceful upgrade: take over the listening sockets of the running
        /// gateway (send it SIGQUIT after starting this one; docs/operations.md).
        #[arg(long)]
        upgrade: bool,
        /// Unix socket the listening sockets are handed over on during an upgrade
        /// (old and new process must use the same path).
        #[arg(long, default_value = "/tmp/sentinel_upgrade.sock")]
        upgrade_sock: PathBuf,
        /// Log lines: `json` or `pretty` (default: `[logging] format`, else
        /// pretty when standard error is a terminal and JSON otherwise).
        #[arg(long)]
        log_format: Option<LogFormat>,
    },
    /// Validate the config, its route files and the file policy; print every problem.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run the gateway with demo upstream apps and a bundled demo policy (no database).
    Demo {
        /// Proxy address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// Ops address.
        #[arg(long, default_value = "127.0.0.1:9090")]
        ops: String,
        /// Where to write the demo's config, policy and keys (default: a temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Log lines: `pretty` (default) or `json`.
        #[arg(long, default_value = "pretty")]
        log_format: LogFormat,
    },
    /// Replay recorded requests (JSONL audit events or requests) through a
    /// proposed policy and print every decision that would flip, grouped by
    /// rule and principal (docs/policy.md, "What-if").
    WhatIf {
        /// The proposed policy files (paths or `*` globs, merged in order).
        #[arg(long, required = true, num_args = 1..)]
        policy: Vec<PathBuf>,
        /// The JSONL log to replay.
        #[arg(long)]
        against: PathBuf,
        /// The current policy files: compare with their decisions instead of
        /// the decisions recorded in the log.
        #[arg(long, num_args = 1..)]
        current: Vec<PathBuf>,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Read an audit spool (docs/audit-gateway.md).
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Print a token from the demo issuer (its key is public: demo and benchmarks only).
    DemoToken {
        /// Principal id (`sub`).
        #[arg(long, default_value = "aaaaaaaa-0000-4000-8000-000000000002")]
        principal: String,
        /// Tenant id (`tid`).
        #[arg(long, default_value = "11111111-1111-1111-1111-111111111111")]
        tenant: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: i64,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Print the last events of a spool directory (ndjson, oldest first).
    /// Events the admin API acknowledged may already be deleted.
    Tail {
        #[arg(long)]
        spool: PathBuf,
        /// How many events.
        #[arg(short, long, default_value_t = 10)]
        n: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => check(&config),
        Command::WhatIf {
            policy,
            against,
            current,
            json,
        } => match sentinel::whatif::run(&policy, &current, &against, json) {
            Ok(out) => {
                print!("{}", out.text);
                if json {
                    println!();
                }
                eprintln!(
                    "what-if: replayed {} lines in {:.3} s ({:.0} lines/s)",
                    out.lines,
                    out.seconds,
                    out.lines as f64 / out.seconds.max(1e-9)
                );
                ExitCode::SUCCESS
            }
            Err(problems) => {
                for p in problems {
                    eprintln!("{p}");
                }
                ExitCode::FAILURE
            }
        },
        Command::Run {
            config,
            upgrade,
            upgrade_sock,
            log_format,
        } => {
            // Before anything slow: a SIGHUP during start-up must not kill the process.
            sentinel::live::reload::install_hangup_handler();
            let upgrade = sentinel::server::Upgrade {
                upgrade,
                upgrade_sock: Some(upgrade_sock),
            };
            match sentinel::config::load(&config) {
                Ok(cfg) => {
                    sentinel::logging::init(
                        log_format
                            .or(cfg.log_format)
                            .unwrap_or_else(LogFormat::auto),
                    );
                    run(cfg, &upgrade, None)
                }
                Err(problems) => {
                    for p in problems {
                        eprintln!("{p}");
                    }
                    eprintln!("refusing to start: the configuration has problems");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Audit {
            command: AuditCommand::Tail { spool, n },
        } => match sentinel::audit::spool::tail(&spool, n) {
            Ok(lines) => {
                for l in lines {
                    println!("{l}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("audit tail: cannot read `{}`: {e}", spool.display());
                ExitCode::FAILURE
            }
        },
        Command::DemoToken {
            principal,
            tenant,
            ttl,
        } => match sentinel::demo::mint(&principal, &tenant, false, None, ttl) {
            Ok(t) => {
                println!("{t}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("demo-token: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Demo {
            listen,
            ops,
            dir,
            log_format,
        } => {
            sentinel::logging::init(log_format);
            // The demo apps are their own crate: only this command links them.
            let prepared = sentinel_demo_apps::start()
                .map_err(|e| anyhow::anyhow!("start the demo apps: {e}"))
                .and_then(|apps| sentinel::demo::prepare(&listen, &ops, dir, apps));
            match prepared {
                Ok((cfg, banner)) => run(cfg, &sentinel::server::Upgrade::default(), Some(&banner)),
                Err(e) => {
                    eprintln!("demo: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn check(path: &std::path::Path) -> ExitCode {
    let mut warnings = Vec::new();
    let mut problems = match sentinel::config::load(path) {
        Ok(cfg) => {
            warnings = cfg.warnings;
            sentinel::live::files::check(&cfg.policy.patterns)
        }
        Err(p) => p,
    };
    problems.dedup();
    // Warnings do not fail the check (exit 0); problems do.
    for w in &warnings {
        println!("{w}");
    }
    if problems.is_empty() {
        println!("{}: ok", path.display());
        ExitCode::SUCCESS
    } else {
        for p in &problems {
            println!("{p}");
        }
        ExitCode::FAILURE
    }
}

/// Prepares and builds the server (which checks every listen address), then
/// prints `banner`, if any, and runs: a gateway that refuses to start prints
/// no banner.
fn run(
    cfg: sentinel::config::Config,
    upgrade: &sentinel::server::Upgrade,
    banner: Option<&str>,
) -> ExitCode {
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    let prepared = match sentinel::server::prepare(cfg) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("refusing to start: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    match sentinel::server::build(prepared, upgrade) {
        Ok(server) => {
            if let Some(banner) = banner {
                println!("{banner}");
            }
            sentinel::server::exit_when_a_listener_fails();
            server.run_forever()
        }
        Err(e) => {
            eprintln!("refusing to start: {e:#}");
            ExitCode::FAILURE
        }
    }
}
