//! Behavioural biometrics: mouse and keystroke features and per-user scoring.
//!
//! What the gateway does with a `POST /.sentinel/biometrics` body, as pure
//! steps (SPEC "Behavioural telemetry"; docs/biometrics.md):
//!
//! 1. load the user's [`Profile`] and the session's [`SessionState`]
//!    (new ones if absent); if the body's `seq` was seen
//!    ([`SessionState::seqs`]), answer [`answer`] of the state as it is;
//! 2. [`validate`] the parsed body against the session's clock: every
//!    problem or a [`Batch`] (nothing is stored on a problem);
//! 3. [`accept`] the batch: features are extracted, the profile enrols or
//!    scores, and the answer comes back with whether the profile changed and
//!    whether a fit is due ([`Profile::fit`], off the request path, with
//!    other users' [`Profile::background_part`]s) before the next batch;
//! 4. when a session has [`SessionState::ended`], [`Profile::adapt`] takes it
//!    in if it ended `ok`.
//!
//! Profiles and session states are serde data; [`encode`]/[`decode`] give
//! their compact binary form. Raw events are never kept: a session holds at
//! most the action in progress (bounded) and features.

pub mod batch;
pub mod config;
pub mod keys;
pub mod model;
pub mod mouse;
pub mod profile;
pub mod session;

pub use batch::{validate, Batch, Clock, KeyEvent, MouseEvent, Problem};
pub use config::{BiometricsConfig, ScoreMap};
pub use profile::{BackgroundPart, Phase, Profile, Verdict};
pub use session::{SessionState, Status};

use serde::{Deserialize, Serialize};

/// Event counts of the answer (SPEC `samples`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Samples {
    pub mouse: u64,
    pub keys: u64,
}

/// The `200` answer body of `POST /.sentinel/biometrics` (SPEC shape).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    pub session_id: String,
    pub status: Status,
    pub score: Option<f64>,
    pub mouse_score: Option<f64>,
    pub keystroke_score: Option<f64>,
    pub samples: Samples,
}

/// The answer for a session as it stands (also for a replayed `seq`).
pub fn answer(session_id: &str, session: &SessionState) -> Answer {
    Answer {
        session_id: session_id.to_string(),
        status: session.status,
        score: session.score,
        mouse_score: session.mouse_score,
        keystroke_score: session.keystroke_score,
        samples: Samples {
            mouse: session.mouse_events,
            keys: session.key_events,
        },
    }
}

/// What accepting a batch did.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub answer: Answer,
    /// The profile took enrolment data: persist it.
    pub profile_changed: bool,
    /// Fit the profile ([`Profile::fit`]) before its next batch is scored.
    pub fit_due: bool,
}

/// Accepts a validated batch into the session and scores it against the
/// profile. `now_ms` is the gateway's wall clock.
pub fn accept(
    cfg: &BiometricsConfig,
    profile: &mut Profile,
    session: &mut SessionState,
    batch: &Batch,
    now_ms: u64,
) -> Outcome {
    let fresh = session.absorb(cfg, batch, now_ms);
    let enrolling = profile.phase != Phase::Ready;
    profile.observe(cfg, session, &fresh);
    Outcome {
        answer: answer(&batch.session_id, session),
        profile_changed: enrolling && !(fresh.actions.is_empty() && fresh.keys.is_empty()),
        fit_due: profile.phase == Phase::FitDue,
    }
}

/// Why stored state could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("cannot encode: {0}")]
    Encode(String),
    #[error("cannot decode: {0}")]
    Decode(String),
}

/// The compact binary form (MessagePack) of a profile or session state.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    rmp_serde::to_vec(value).map_err(|e| CodecError::Encode(e.to_string()))
}

/// Reads back what [`encode`] wrote; anything else is an error, never a panic.
pub fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, CodecError> {
    rmp_serde::from_slice(bytes).map_err(|e| CodecError::Decode(e.to_string()))
}
