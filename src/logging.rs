//! The gateway's logs: `sentinel_telemetry::logging` with the level from
//! `SENTINEL_LOG` (default `info`). JSON lines unless a person is watching
//! (docs/operations.md, "Logs"); nothing per request at info.

pub use sentinel_telemetry::logging::LogFormat;

/// Installs the log subscriber in `format`.
pub fn init(format: LogFormat) {
    sentinel_telemetry::logging::init("SENTINEL_LOG", format);
}
