//! Request anomaly scoring: per-principal features and the model that scores them.
//!
//! How a request compares with what its principal normally does, as plain data
//! and pure functions. The gateway owns the state and the clock; per request it
//! calls, in this order:
//!
//! 1. [`AddressState::observe`] for the client address (failed authentications
//!    from it, principals seen on it) → [`AddressSignals`], put into the
//!    request's [`RequestFacts`];
//! 2. [`observe`]`(state, &facts, now, &config)` → the principal's next state
//!    and the request's [`Features`];
//! 3. [`Scorer::score`] → a [`Score`] in `[0, 1]`, and
//!    [`Thresholds::verdict`] → allow, step up or block;
//! 4. [`settle`] with what the gateway answered ([`Outcome`]): a denial is
//!    counted, and only a served, unsuspicious (or freshly MFA-verified)
//!    request teaches the principal's baseline, so an attacker's stepped-up
//!    requests never do.
//!
//! Failed authentications go to [`record_auth_failure`] (when the principal
//! is known) and [`AddressState::record_auth_failure`].
//!
//! State has two lifetimes (docs/anomaly.md): the *window* (the seeds'
//! feature store, `feature_store_ttl` = 3600 s) holds what happened in the last
//! hour; the *baseline* (the seeds' behaviour profile) holds what the
//! principal usually does and lives for `profile_ttl` without requests. Both
//! are bounded in size whatever the traffic.

mod features;
mod forest;
mod model;
mod rules;
mod scorer;
mod state;

pub use features::{
    observe, record_auth_failure, settle, Features, Method, Outcome, RequestFacts, Sensitivity,
    FEATURE_COUNT, FEATURE_NAMES,
};
pub use model::{Calibration, Engine, ModelError, ModelInfo, OnnxModel, MAX_MODEL_BYTES};
pub use rules::rule_score;
pub use scorer::{Score, Scorer, ScorerKind, Thresholds, Verdict};
pub use state::{AddressSignals, AddressState, PrincipalState};

/// How long state lives and when a baseline counts.
#[derive(Debug, Clone, PartialEq)]
pub struct AnomalyConfig {
    /// Length of the sliding window of recent activity, in seconds (the seeds'
    /// `feature_store_ttl`). Window counts older than this are forgotten, and
    /// an address's state expires after this long without events.
    pub window_ttl: u64,
    /// A principal's whole state (baseline included) is forgotten after this
    /// many seconds without a request.
    pub profile_ttl: u64,
    /// Requests a principal's baseline must have learned before it is mature
    /// (SPEC: "usable after about 30 of its requests").
    pub baseline_requests: u32,
    /// A served request teaches the baseline only when its score is at most
    /// this (the anomaly threshold), unless it carried a fresh MFA.
    pub learn_below: f32,
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        Self {
            window_ttl: 3600,
            profile_ttl: 30 * 24 * 3600,
            baseline_requests: 30,
            learn_below: 0.7,
        }
    }
}
