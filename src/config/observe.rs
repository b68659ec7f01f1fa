//! Lowering of the sections about the gateway itself: `[logging]` and `[otel]`.

use super::file::{LoggingFile, OtelFile};
use super::lowering::Lowering;
use crate::logging::LogFormat;
use sentinel_telemetry::otel::{traces_url, Settings};
use std::time::Duration;
use toml::Spanned;

/// `service.name` of the gateway's spans unless `[otel] service_name` says otherwise.
pub const DEFAULT_SERVICE_NAME: &str = "sentinel-gateway";
/// Share of new traces recorded unless `[otel] sample_ratio` says otherwise.
pub const DEFAULT_SAMPLE_RATIO: f64 = 0.1;

impl Lowering<'_> {
    /// `[logging] format`: `json` or `pretty`; `None` when not set.
    pub(super) fn log_format(&mut self, file: &LoggingFile) -> Option<LogFormat> {
        let format = file.format.as_ref()?;
        match format.get_ref().parse() {
            Ok(f) => Some(f),
            Err(e) => {
                self.err(format.span(), format!("{e}"));
                None
            }
        }
    }

    /// `[otel]`: `None` when `enabled = false` (or on a problem, reported).
    pub(super) fn otel(&mut self, section: &Spanned<OtelFile>) -> Option<Settings> {
        let file = section.get_ref();
        let timeout = self.duration(&file.timeout, Duration::from_secs(10));
        if let (Some(t), true) = (&file.timeout, timeout.is_zero()) {
            self.err(t.span(), "`timeout` must be greater than 0");
        }
        let sample_ratio = match &file.sample_ratio {
            Some(r) if !(0.0..=1.0).contains(r.get_ref()) => {
                self.err(r.span(), "`sample_ratio` must be between 0.0 and 1.0");
                DEFAULT_SAMPLE_RATIO
            }
            Some(r) => *r.get_ref(),
            None => DEFAULT_SAMPLE_RATIO,
        };
        let service_name = match &file.service_name {
            Some(n) if n.get_ref().trim().is_empty() => {
                self.err(n.span(), "`service_name` must not be empty");
                DEFAULT_SERVICE_NAME.to_owned()
            }
            Some(n) => n.get_ref().clone(),
            None => DEFAULT_SERVICE_NAME.to_owned(),
        };
        if file.enabled == Some(false) {
            return None;
        }
        let endpoint = match &file.endpoint {
            None => {
                self.err(
                    section.span(),
                    "`[otel]` needs `endpoint`, the collector's OTLP/HTTP URL (e.g. `http://127.0.0.1:4318`)",
                );
                return None;
            }
            Some(e) => match traces_url(e.get_ref()) {
                Ok(_) => e.get_ref().clone(),
                Err(err) => {
                    self.err(e.span(), err.to_string());
                    return None;
                }
            },
        };
        Some(Settings {
            endpoint,
            service_name,
            sample_ratio,
            timeout,
        })
    }
}
