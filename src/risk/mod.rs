//! Risk signals at the edge (SPEC "Behavioural telemetry", "Request risk"):
//! the gateway's state for the pure `sentinel-risk` crate, the request's
//! risk score (the larger of its anomaly score and its credential's
//! biometric session score), and what a route's `risk` slot makes of it.
//!
//! [`biometrics`] holds profiles and sessions behind `POST /.sentinel/biometrics`;
//! [`anomaly`] holds per-principal and per-address state and the scorer.
//! Neither knows Pingora: `proxy::admit` and `proxy::telemetry` call them.

pub mod anomaly;
pub mod biometrics;
pub mod biometrics_shared;
pub mod biometrics_sync;

use crate::config::RiskConfig;
use crate::errors::{Denial, ErrorCode};
use crate::routes::RiskSlot;
use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGaugeVec, Opts, Registry};
use sentinel_risk::anomaly::Outcome;

/// The browser collector served at `GET /.sentinel/telemetry.js`.
pub const TELEMETRY_JS: &str = include_str!("telemetry.js");
/// The demo page at `GET /.sentinel/telemetry/demo` (`[risk.biometrics] demo_page`).
pub const TELEMETRY_DEMO_HTML: &str = include_str!("telemetry-demo.html");

/// Which signal a risk score came from (`details.signal`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Anomaly,
    Biometric,
}

impl Signal {
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Anomaly => "anomaly",
            Signal::Biometric => "biometric",
        }
    }
}

/// A request's risk: the larger of the two signals, and which one it was.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RequestRisk {
    pub score: f32,
    pub signal: Signal,
}

impl RequestRisk {
    /// SPEC: "the larger of its anomaly score and its session's biometric
    /// score"; on a tie the biometric signal is named.
    pub fn of(anomaly: f32, biometric: Option<f32>) -> Self {
        match biometric {
            Some(b) if b >= anomaly => RequestRisk {
                score: b,
                signal: Signal::Biometric,
            },
            _ => RequestRisk {
                score: anomaly,
                signal: Signal::Anomaly,
            },
        }
    }
}

/// What the route's `risk` slot answers, and how the anomaly state records it.
/// No slot: never refused by a score. A score *above* `block_above` blocks
/// (`401 BIOMETRIC_AUTH_FAILED` when the biometric score decided, `403
/// RISK_BLOCKED` when the anomaly score did); above `step_up_above` it asks
/// for a step-up (`401 STEP_UP_REQUIRED`) unless the credential carries a
/// fresh MFA (`fresh_mfa`), which is what a step-up produces.
///
/// `risk` is `None` when the request has no score (`[risk] enabled =
/// false`): unknown risk fails closed. A slot then asks every request for a
/// step-up (`details.signal` = `none`, `details.score` = `null`), which a
/// fresh MFA satisfies; it never lets an unscored request through as if
/// its risk were low (docs/policy.md, "Risk").
pub fn enforce(
    slot: Option<&RiskSlot>,
    risk: Option<RequestRisk>,
    fresh_mfa: bool,
) -> Result<(), (Denial, Outcome)> {
    let Some(slot) = slot else {
        return Ok(());
    };
    let Some(risk) = risk else {
        if fresh_mfa {
            return Ok(());
        }
        return Err((
            Denial::new(ErrorCode::StepUpRequired)
                .details(serde_json::json!({"signal": "none", "score": null})),
            Outcome::SteppedUp,
        ));
    };
    let details = || {
        // Three decimals: enough to read, no float noise in the body.
        let score = (f64::from(risk.score) * 1000.0).round() / 1000.0;
        serde_json::json!({"signal": risk.signal.as_str(), "score": score})
    };
    if slot.block_above.is_some_and(|b| risk.score > b) {
        let code = match risk.signal {
            Signal::Biometric => ErrorCode::BiometricAuthFailed,
            Signal::Anomaly => ErrorCode::RiskBlocked,
        };
        return Err((Denial::new(code).details(details()), Outcome::Blocked));
    }
    if slot.step_up_above.is_some_and(|s| risk.score > s) && !fresh_mfa {
        return Err((
            Denial::new(ErrorCode::StepUpRequired).details(details()),
            Outcome::SteppedUp,
        ));
    }
    Ok(())
}

/// A token's MFA counts as a step-up for this long after it was issued.
pub const FRESH_MFA_SECS: i64 = 900;

/// The risk state of one gateway.
pub struct Risk {
    pub anomaly: anomaly::AnomalyStore,
    /// `None` with `[risk.biometrics] enabled = false`: the endpoints answer 404.
    pub biometrics: Option<biometrics::BiometricStore>,
    /// Benchmarks only (`[risk] replay_clock`): see [`Risk::clock`].
    replay_clock: bool,
}

impl Risk {
    /// Builds the stores; reads the model file named by `[risk] model`
    /// (a file that cannot be read or is refused leaves the rule fallback).
    pub fn new(cfg: &RiskConfig, secret: [u8; 32]) -> Self {
        let bytes = cfg.model.as_ref().and_then(|p| match std::fs::read(p) {
            Ok(b) => Some(b),
            Err(e) => {
                tracing::warn!(path = %p.display(), error = %e, "cannot read the anomaly model; the rule fallback scores instead");
                None
            }
        });
        Risk {
            anomaly: anomaly::AnomalyStore::new(cfg, bytes.as_deref()),
            biometrics: cfg
                .biometrics
                .as_ref()
                .map(|b| biometrics::BiometricStore::new(b, secret)),
            replay_clock: cfg.replay_clock,
        }
    }

    /// The time (unix seconds) anomaly state is kept at: the wall clock, or
    /// with `[risk] replay_clock` (benchmarks replaying recorded traffic) the
    /// request's `sentinel-replay-time` when it sends one.
    pub fn clock(&self, replay_time: Option<&[u8]>, wall: i64) -> u64 {
        let replayed = self
            .replay_clock
            .then(|| std::str::from_utf8(replay_time?).ok()?.parse::<u64>().ok())
            .flatten();
        replayed.unwrap_or(wall.max(0) as u64)
    }
}

/// The telemetry key-id secret, derived from the gateway's signing key
/// material like the field-mask key (never the key itself).
pub fn telemetry_secret(material: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"sentinel telemetry key ids v1\0");
    h.update(material);
    h.finalize().into()
}

/// The risk metrics (registered with the gateway's registry).
pub struct RiskMetrics {
    pub anomaly_score: Histogram,
    /// 1 for the anomaly model in force (`name`, `version`, `sha256`).
    pub anomaly_model: IntGaugeVec,
    /// Registry models the gateway tried to put in force, by outcome
    /// (`loaded`, `restored`, `hash_mismatch`, `invalid`, `too_large`, `fetch_failed`).
    pub anomaly_model_updates: IntCounterVec,
    pub risk_decisions: IntCounterVec,
    pub biometric_score: Histogram,
    pub biometric_batches: IntCounterVec,
    pub biometric_fits: IntCounterVec,
    /// Failed calls of the biometric state shared with other gateways, by
    /// kind (`redis`, `profile_load`, `profile_write`).
    pub biometric_shared_errors: IntCounterVec,
}

impl RiskMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let buckets = vec![0.1, 0.2, 0.3, 0.5, 0.7, 0.85, 0.95, 1.0];
        let anomaly_score = Histogram::with_opts(
            HistogramOpts::new("anomaly_score", "Anomaly score of authenticated requests")
                .buckets(buckets.clone()),
        )?;
        let risk_decisions = IntCounterVec::new(
            Opts::new(
                "risk_decisions_total",
                "Requests refused by a route's risk slot, by signal (anomaly, biometric) and outcome (step_up, block)",
            ),
            &["signal", "outcome"],
        )?;
        let biometric_score = Histogram::with_opts(
            HistogramOpts::new(
                "biometric_deviation_score",
                "Biometric session scores answered by POST /.sentinel/biometrics",
            )
            .buckets(buckets),
        )?;
        let biometric_batches = IntCounterVec::new(
            Opts::new(
                "biometric_batches_total",
                "Telemetry batches accepted, by the session status answered",
            ),
            &["status"],
        )?;
        let biometric_fits = IntCounterVec::new(
            Opts::new(
                "biometric_fits_total",
                "Biometric profile fits (enrolment, adaptation, more users to compare with), by outcome",
            ),
            &["outcome"],
        )?;
        let biometric_shared_errors = IntCounterVec::new(
            Opts::new(
                "biometric_shared_errors_total",
                "Failed calls of the biometric state shared between gateways, by kind (redis, profile_load, profile_write)",
            ),
            &["kind"],
        )?;
        registry.register(Box::new(biometric_shared_errors.clone()))?;
        let anomaly_model = IntGaugeVec::new(
            Opts::new(
                "anomaly_model",
                "The anomaly model in force (1), by name, version and SHA-256 (`rules` without a model)",
            ),
            &["name", "version", "sha256"],
        )?;
        let anomaly_model_updates = IntCounterVec::new(
            Opts::new(
                "anomaly_model_updates_total",
                "Registry anomaly models the snapshot named, by outcome (loaded, restored, hash_mismatch, invalid, too_large, fetch_failed)",
            ),
            &["outcome"],
        )?;
        registry.register(Box::new(anomaly_model.clone()))?;
        registry.register(Box::new(anomaly_model_updates.clone()))?;
        registry.register(Box::new(biometric_fits.clone()))?;
        registry.register(Box::new(anomaly_score.clone()))?;
        registry.register(Box::new(risk_decisions.clone()))?;
        registry.register(Box::new(biometric_score.clone()))?;
        registry.register(Box::new(biometric_batches.clone()))?;
        Ok(RiskMetrics {
            anomaly_score,
            anomaly_model,
            anomaly_model_updates,
            risk_decisions,
            biometric_score,
            biometric_batches,
            biometric_fits,
            biometric_shared_errors,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(s: f32, b: f32) -> RiskSlot {
        RiskSlot {
            step_up_above: Some(s),
            block_above: Some(b),
        }
    }

    #[test]
    fn the_larger_signal_decides() {
        assert_eq!(RequestRisk::of(0.2, None).signal, Signal::Anomaly);
        assert_eq!(RequestRisk::of(0.2, Some(0.1)).signal, Signal::Anomaly);
        let r = RequestRisk::of(0.2, Some(0.9));
        assert_eq!((r.score, r.signal), (0.9, Signal::Biometric));
    }

    #[test]
    fn slots_answer_by_signal() {
        let code = |r: RequestRisk, mfa: bool| {
            enforce(Some(&slot(0.85, 0.95)), Some(r), mfa)
                .err()
                .map(|(d, _)| d.code)
        };
        assert_eq!(code(RequestRisk::of(0.85, None), false), None);
        assert_eq!(
            code(RequestRisk::of(0.9, None), false),
            Some(ErrorCode::StepUpRequired)
        );
        assert_eq!(code(RequestRisk::of(0.9, None), true), None);
        assert_eq!(
            code(RequestRisk::of(0.96, None), true),
            Some(ErrorCode::RiskBlocked)
        );
        assert_eq!(
            code(RequestRisk::of(0.1, Some(0.99)), false),
            Some(ErrorCode::BiometricAuthFailed)
        );
        // No slot: never refused.
        assert!(enforce(None, Some(RequestRisk::of(1.0, Some(1.0))), false).is_ok());
    }

    #[test]
    fn an_unscored_request_is_stepped_up_never_let_through() {
        let code = |s: RiskSlot, mfa: bool| enforce(Some(&s), None, mfa).err().map(|(d, _)| d.code);
        assert_eq!(
            code(slot(0.85, 0.95), false),
            Some(ErrorCode::StepUpRequired)
        );
        assert_eq!(code(slot(1.0, 1.0), false), Some(ErrorCode::StepUpRequired));
        // A fresh MFA is what a step-up produces.
        assert_eq!(code(slot(0.85, 0.95), true), None);
        // No slot: an unscored request is not refused by a score.
        assert!(enforce(None, None, false).is_ok());
    }
}
