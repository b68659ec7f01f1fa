//! Sentinel gateway library.
#![forbid(unsafe_code)]

pub mod assertion;
pub mod audit;
pub mod auth;
pub mod clock;
pub mod config;
pub mod conn;
pub mod cors;
pub mod demo;
pub mod drain;
pub mod errors;
pub mod fields;
pub mod headers;
pub mod live;
pub mod logging;
pub mod metrics;
pub mod ops;
pub mod otel;
pub mod policy_store;
pub mod proxy;
pub mod ratelimit;
pub mod request;
pub mod risk;
pub mod routes;
pub mod server;
pub mod tls;
pub mod whatif;
