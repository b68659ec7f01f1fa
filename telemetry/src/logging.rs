//! Log lines through `tracing` (and the `log` records of Pingora and other
//! crates): one JSON object per line for machines, the production default,
//! or a compact line for a person at a terminal. Neither carries a source
//! file path or line: the `log` bridge's `log.file` fields name the build
//! machine's cargo registry (`/root/.cargo/registry/src/…/pingora-core-…`),
//! which says nothing to an operator and leaks the build host's layout.

use std::fmt;
use std::io::IsTerminal;
use std::str::FromStr;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// How log lines are written (`--log-format`, `[logging] format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line: `timestamp`, `level`, `fields`, `target`.
    Json,
    /// `2026-12-07T17:45:00.123456Z  INFO target: message key=value`.
    Pretty,
}

impl LogFormat {
    /// The format when nothing chose one: pretty when the log's stream
    /// (standard error) is a terminal, JSON otherwise (a service, a pipe, a file).
    pub fn auto() -> Self {
        if std::io::stderr().is_terminal() {
            LogFormat::Pretty
        } else {
            LogFormat::Json
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Json => "json",
            LogFormat::Pretty => "pretty",
        }
    }
}

/// An unknown `--log-format` or `format` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown log format `{0}`: expected `json` or `pretty`")]
pub struct UnknownFormat(pub String);

impl FromStr for LogFormat {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "json" => Ok(LogFormat::Json),
            "pretty" => Ok(LogFormat::Pretty),
            other => Err(UnknownFormat(other.to_owned())),
        }
    }
}

/// Installs the global subscriber: level filter from the environment
/// variable `filter_env` (default `info`), lines to standard error.
/// A second call does nothing.
pub fn init(filter_env: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env(filter_env)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.event_format(JsonLine).try_init(),
        LogFormat::Pretty => builder
            .compact()
            .with_ansi(std::io::stderr().is_terminal())
            .with_file(false)
            .with_line_number(false)
            .try_init(),
    };
}

/// The JSON line: the shape of `tracing-subscriber`'s JSON format
/// (`timestamp`, `level`, `fields`, `target`), minus the `log.*` fields it
/// copies from `log` records (file, line, module path, target again).
struct JsonLine;

impl<S, N> FormatEvent<S, N> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        let mut timestamp = String::new();
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        let mut fields = Fields(Map::new());
        event.record(&mut fields);
        let line = Line {
            timestamp: &timestamp,
            level: meta.level().as_str(),
            fields: &fields.0,
            target: meta.target(),
        };
        let text = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

/// One JSON line, its keys in this order (a `Map` would sort them).
#[derive(serde::Serialize)]
struct Line<'a> {
    timestamp: &'a str,
    level: &'a str,
    fields: &'a Map<String, Value>,
    target: &'a str,
}

/// An event's fields as JSON values, without the `log` bridge's `log.*`.
struct Fields(Map<String, Value>);

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        if !field.name().starts_with("log.") {
            self.0.insert(field.name().to_owned(), value);
        }
    }
}

impl Visit for Fields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::from(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, Value::from(format!("{value:?}")));
    }
}
