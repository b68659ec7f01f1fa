//! The load test's upstream: `sentinel_demo_apps` serving
//! [`App::Static1K`] (every request -> `200`, the same prebuilt 1024-byte JSON
//! body), on a single-threaded runtime so it takes as little CPU as it can
//! from the proxy under test (`benches/load.sh`).
//!
//! ```text
//! cargo run --release --example upstream -- --listen 127.0.0.1:18081
//! curl -si http://127.0.0.1:18081/anything
//! ```

use std::net::SocketAddr;
use std::process::ExitCode;

use sentinel_demo_apps::{serve, App};
use tokio::net::TcpListener;

const USAGE: &str = "usage: upstream --listen 127.0.0.1:PORT";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let listen: SocketAddr = match (args.next().as_deref(), args.next(), args.next()) {
        (Some("--listen"), Some(addr), None) => match addr.parse() {
            Ok(addr) => addr,
            Err(_) => {
                eprintln!("upstream: `--listen` takes IP:PORT, not `{addr}`\n{USAGE}");
                return ExitCode::from(2);
            }
        },
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("upstream: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let listener = match TcpListener::bind(listen).await {
            Ok(listener) => listener,
            Err(e) => {
                eprintln!("upstream: cannot listen on {listen}: {e}");
                return ExitCode::FAILURE;
            }
        };
        eprintln!("upstream: listening on {listen}");
        match serve(listener, App::Static1K).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("upstream: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
