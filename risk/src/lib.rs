//! Sentinel's risk signals: features and scores for behavioural biometrics
//! (how a session's user moves the mouse and types) and request anomalies
//! (how a request compares with what its principal normally does).
//!
//! Plain data and pure functions, like `sentinel-policy`: no I/O, no clocks
//! (the caller passes times), no Pingora. The gateway feeds it what browsers
//! post and what requests look like, and keeps the state it returns.
#![forbid(unsafe_code)]

pub mod anomaly;
pub mod biometrics;
