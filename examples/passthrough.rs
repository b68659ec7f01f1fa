//! The bare Pingora passthrough: the baseline the gateway's overhead is
//! measured against (`benches/load.sh`). It forwards every request, unchanged,
//! to one plain-HTTP upstream; no auth, no policy, no header rewriting.
//!
//! ```text
//! cargo run --release --example upstream -- --listen 127.0.0.1:18081 &
//! cargo run --release --example passthrough -- --listen 127.0.0.1:18082 --upstream 127.0.0.1:18081 [--threads 1]
//! curl -si http://127.0.0.1:18082/anything
//! ```
//!
//! `SIGINT` or `SIGTERM` stop it at once (no grace period: it is a bench tool).
//!
//! `PASSTHROUGH_TIMEOUTS=1` gives its upstream peer the gateway's default
//! timeouts (connect 2 s, read and write 30 s, idle 60 s), to tell what those
//! Pingora options cost apart from what the gateway's own work costs.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use async_trait::async_trait;
use pingora::proxy::{http_proxy_service_with_name, ProxyHttp, Session};
use pingora::server::configuration::ServerConf;
use pingora::server::Server;
use pingora::upstreams::peer::HttpPeer;

const USAGE: &str =
    "usage: passthrough --listen 127.0.0.1:PORT --upstream 127.0.0.1:PORT [--threads N]";

/// Forwards everything to `upstream`.
struct Passthrough {
    upstream: SocketAddr,
    timeouts: bool,
}

#[async_trait]
impl ProxyHttp for Passthrough {
    type CTX = ();

    fn new_ctx(&self) -> Self::CTX {}

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut Self::CTX,
    ) -> pingora::Result<Box<HttpPeer>> {
        let mut peer = HttpPeer::new(self.upstream, false, String::new());
        if self.timeouts {
            peer.options.connection_timeout = Some(Duration::from_secs(2));
            peer.options.read_timeout = Some(Duration::from_secs(30));
            peer.options.write_timeout = Some(Duration::from_secs(30));
            peer.options.idle_timeout = Some(Duration::from_secs(60));
        }
        Ok(Box::new(peer))
    }
}

struct Args {
    listen: SocketAddr,
    upstream: SocketAddr,
    threads: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut listen = None;
    let mut upstream = None;
    let mut threads = 1;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            return Err(String::new());
        }
        let value = args
            .next()
            .ok_or_else(|| format!("`{flag}` needs a value"))?;
        match flag.as_str() {
            "--listen" => listen = Some(parse_addr(&flag, &value)?),
            "--upstream" => upstream = Some(parse_addr(&flag, &value)?),
            "--threads" => {
                threads =
                    value.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                        format!("`--threads` takes a positive number, not `{value}`")
                    })?;
            }
            _ => return Err(format!("unknown argument `{flag}`")),
        }
    }
    Ok(Args {
        listen: listen.ok_or("`--listen` is required")?,
        upstream: upstream.ok_or("`--upstream` is required")?,
        threads,
    })
}

fn parse_addr(flag: &str, value: &str) -> Result<SocketAddr, String> {
    value
        .parse()
        .map_err(|_| format!("`{flag}` takes IP:PORT, not `{value}`"))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(problem) => {
            if !problem.is_empty() {
                eprintln!("passthrough: {problem}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let conf = ServerConf {
        threads: args.threads,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = http_proxy_service_with_name(
        &server.configuration,
        Passthrough {
            upstream: args.upstream,
            timeouts: std::env::var_os("PASSTHROUGH_TIMEOUTS").is_some_and(|v| v == "1"),
        },
        "passthrough",
    );
    proxy.add_tcp(&args.listen.to_string());
    server.add_service(proxy);
    eprintln!(
        "passthrough: {} -> {} ({} thread(s))",
        args.listen, args.upstream, args.threads
    );
    server.run_forever()
}
