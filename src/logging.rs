//! Structured JSON logs through `tracing` (Pingora's `log` records included).
//! Level from `SENTINEL_LOG` (default `info`); nothing per request at info.

pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SENTINEL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
