//! One browser session's biometric state: the stream trackers, the evidence
//! scored so far, a bounded sample of its features (for adaptation and for
//! re-scoring after the profile changes), and the batches it accepted.
//! Everything here is bounded whatever a page sends.

use super::batch::{Batch, Clock};
use super::config::BiometricsConfig;
use super::keys::{KeyObs, KeyTracker};
use super::mouse::{ActionFeatures, MouseTracker};
use serde::{Deserialize, Serialize};

/// Actions kept per session for adaptation and re-scoring.
pub const KEPT_ACTIONS: usize = 128;
/// Key observations kept per session for adaptation and re-scoring.
pub const KEPT_KEY_OBS: usize = 512;

/// Where a session stands (SPEC `status`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Enrolling,
    Collecting,
    Ok,
    Suspicious,
    Failed,
}

impl Status {
    /// The SPEC's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Enrolling => "enrolling",
            Status::Collecting => "collecting",
            Status::Ok => "ok",
            Status::Suspicious => "suspicious",
            Status::Failed => "failed",
        }
    }
}

/// The sum and count of one kind's item values, for one model version.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub sum: f64,
    pub n: u64,
}

impl Evidence {
    pub fn mean(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum / self.n as f64)
    }
    pub fn add(&mut self, items: &[f64]) {
        for v in items.iter().filter(|v| v.is_finite()) {
            self.sum += v;
            self.n += 1;
        }
    }
}

/// A deterministic reservoir sample: every item offered so far has the same
/// chance to be kept, with no random generator (state must replay exactly).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reservoir<T> {
    pub items: Vec<T>,
    pub offered: u64,
}

impl<T> Default for Reservoir<T> {
    fn default() -> Self {
        Reservoir {
            items: Vec::new(),
            offered: 0,
        }
    }
}

fn mix(mut z: u64) -> u64 {
    // splitmix64's finaliser
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl<T> Reservoir<T> {
    pub fn offer(&mut self, item: T, cap: usize) {
        self.offered += 1;
        if self.items.len() < cap {
            self.items.push(item);
        } else {
            let j = mix(self.offered) % self.offered;
            if let Some(slot) = usize::try_from(j).ok().and_then(|j| self.items.get_mut(j)) {
                *slot = item;
            }
        }
    }
}

/// The batches a session accepted, by `seq`: the highest and a window of 64 below it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SeqWindow {
    max: Option<u64>,
    /// Bit `i` set: `max - 1 - i` was accepted.
    below: u64,
}

impl SeqWindow {
    /// Whether a batch with this `seq` was already accepted. A `seq` more than
    /// 64 below the highest counts as accepted: such a late retry is a replay.
    pub fn seen(&self, seq: u64) -> bool {
        match self.max {
            None => false,
            Some(m) if seq == m => true,
            Some(m) if seq > m => false,
            Some(m) => {
                let d = m - 1 - seq;
                d >= 64 || self.below & (1 << d) != 0
            }
        }
    }

    pub fn mark(&mut self, seq: u64) {
        match self.max {
            None => self.max = Some(seq),
            Some(m) if seq > m => {
                let shift = seq - m;
                self.below = if shift >= 64 {
                    0
                } else {
                    // The old max becomes bit shift-1.
                    (self.below << shift) | (1 << (shift - 1))
                };
                self.max = Some(seq);
            }
            Some(m) if seq < m => {
                let d = m - 1 - seq;
                if d < 64 {
                    self.below |= 1 << d;
                }
            }
            Some(_) => {}
        }
    }
}

/// A session's state; the gateway keeps it (in Redis) between batches.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionState {
    pub clock: Clock,
    pub seqs: SeqWindow,
    pub(crate) mouse: MouseTracker,
    pub(crate) keys: KeyTracker,
    /// Events accepted so far (SPEC `samples`).
    pub mouse_events: u64,
    pub key_events: u64,
    /// Mouse-use time so far (ms): the gaps between consecutive mouse
    /// events, each counted up to `action_pause_ms`, so time away from the
    /// mouse does not count. Bounds the wait for a first score.
    pub mouse_use_ms: f64,
    /// Actions and key observations extracted so far.
    pub actions: u64,
    pub key_observations: u64,
    /// The profile's tag for this session (set when it first contributes).
    pub(crate) tag: Option<u32>,
    /// Profile model version the evidence below was computed with.
    pub(crate) model_version: u32,
    pub(crate) mouse_evidence: Evidence,
    pub(crate) key_evidence: Evidence,
    pub(crate) kept_actions: Reservoir<ActionFeatures>,
    pub(crate) kept_keys: Reservoir<KeyObs>,
    /// Wall-clock ms (the gateway's) of the last accepted batch.
    pub last_seen_ms: u64,
    /// The last answer's status and scores.
    pub status: Status,
    pub score: Option<f64>,
    pub mouse_score: Option<f64>,
    pub keystroke_score: Option<f64>,
}

/// What one batch added to a session.
#[derive(Clone, Debug, Default)]
pub struct Fresh {
    pub actions: Vec<ActionFeatures>,
    pub keys: Vec<KeyObs>,
}

impl SessionState {
    /// Takes a validated batch's events into the trackers and returns the
    /// features they completed. Scoring is the profile's part.
    pub fn absorb(&mut self, cfg: &BiometricsConfig, batch: &Batch, now_ms: u64) -> Fresh {
        let mut fresh = Fresh::default();
        let mut prev = self.clock.mouse_t;
        for e in &batch.mouse {
            if let Some(p) = prev {
                self.mouse_use_ms += (e.t - p).clamp(0.0, cfg.action_pause_ms);
            }
            prev = Some(e.t);
        }
        self.mouse
            .absorb_with(&batch.mouse, cfg.action_pause_ms, &mut fresh.actions);
        self.keys.absorb(&batch.keys, &mut fresh.keys);
        self.clock = self.clock.after(batch);
        if let Some(seq) = batch.seq {
            self.seqs.mark(seq);
        }
        self.mouse_events += batch.mouse.len() as u64;
        self.key_events += batch.keys.len() as u64;
        self.actions += fresh.actions.len() as u64;
        self.key_observations += fresh.keys.len() as u64;
        for a in &fresh.actions {
            self.kept_actions.offer(*a, KEPT_ACTIONS);
        }
        for k in &fresh.keys {
            self.kept_keys.offer(*k, KEPT_KEY_OBS);
        }
        self.last_seen_ms = self.last_seen_ms.max(now_ms);
        fresh
    }

    /// Whether the session has ended: nothing posted for `interval_s`.
    pub fn ended(&self, now_ms: u64, interval_s: u64) -> bool {
        now_ms.saturating_sub(self.last_seen_ms) >= interval_s.saturating_mul(1000)
    }

    /// Points held by the mouse tracker (bounded).
    pub fn pending_points(&self) -> usize {
        self.mouse.pending_points()
    }

    /// The mouse evidence so far: mean item value and count (for evaluation tools).
    pub fn mouse_evidence(&self) -> (Option<f64>, u64) {
        (self.mouse_evidence.mean(), self.mouse_evidence.n)
    }

    /// Features kept (bounded).
    pub fn kept(&self) -> (usize, usize) {
        (self.kept_actions.items.len(), self.kept_keys.items.len())
    }
}
