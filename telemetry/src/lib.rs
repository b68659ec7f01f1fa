//! What both binaries report about themselves besides metrics: log lines
//! ([`logging`]) and OpenTelemetry traces ([`otel`]). Shared by the gateway (`sentinel`) and the admin API
//! (`sentinel-admin`) so both write the same format; depends on neither,
//! and never on Pingora.

#![forbid(unsafe_code)]

pub mod logging;
pub mod otel;
