//! The biometric settings (the seeds' defaults) and their check.

use serde::{Deserialize, Serialize};

/// How a session's mean item value becomes a score (docs/biometrics.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScoreMap {
    /// Logistic in the mean, centred between the owner's and other users'
    /// held-out means, `steepness` halves of that gap per unit: the owner's
    /// typical session lands near `1 / (1 + e^steepness)`.
    Centred,
    /// Posterior probability under two normal laws of the mean, with the
    /// evidence of `n` items (`n / dependence` independent ones).
    Posterior,
    /// The model's own scale: logistic of the mean log-odds (mouse) or of
    /// the mean deviation less one (keys), the same for every user.
    Raw,
}

/// Settings of biometric scoring. Every field has the seeds' default or a
/// documented one (docs/biometrics.md, "Thresholds and how to tune them").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BiometricsConfig {
    /// Enrolment samples a profile needs before it scores (seeds: 10).
    pub baseline_samples: u32,
    /// Mouse actions that make one enrolment sample (about 2–3 minutes of use).
    pub sample_mouse_actions: u32,
    /// Key timing observations that make one enrolment sample (about 50 key presses).
    pub sample_key_observations: u32,
    /// A pause this long (ms) between two moves ends a mouse action.
    pub action_pause_ms: f64,
    /// Finished mouse actions a session needs before it has a mouse score.
    pub min_mouse_actions: u32,
    /// Mouse-use time (ms, see `SessionState::mouse_use_ms`) after which a
    /// session with at least one finished action has a mouse score, however
    /// few actions it has: the bound on the wait for a first score.
    pub mouse_use_for_score_ms: f64,
    /// Shrinks a session's mean action value toward 0 ("no evidence") as if
    /// this many neutral actions had been seen: early scores of short
    /// sessions stay near the middle instead of swinging.
    pub mouse_prior_actions: f64,
    /// Key timing observations (that the profile knows) a session needs
    /// before it has a keystroke score.
    pub min_key_observations: u32,
    /// A score below this is `ok` (seeds: 0.3).
    pub ok_below: f64,
    /// A score at or above this is `failed` (seeds: 0.7).
    pub failed_at: f64,
    /// A mouse score at or above this decides the session score alone (seeds: 0.6).
    pub mouse_threshold: f64,
    /// A keystroke score at or above this decides the session score alone (seeds: 0.7).
    pub keystroke_threshold: f64,
    /// A session that posted nothing for this long (seconds) has ended; if it
    /// ended `ok` its profile adapts from it (seeds: 300).
    pub continuous_auth_interval_s: u64,
    /// How strongly consecutive actions (key timings) of one session are
    /// taken to depend on each other: the evidence of `n` of them counts as
    /// `n / dependence` independent ones. Larger: scores move more slowly.
    pub mouse_dependence: f64,
    /// The same for key timing observations.
    pub key_dependence: f64,
    /// How a session's mean mouse value becomes its mouse score.
    pub mouse_score_map: ScoreMap,
    /// How a session's mean key deviation becomes its keystroke score.
    pub key_score_map: ScoreMap,
    /// Steepness of the `centred` map.
    pub steepness: f64,
    /// What the `raw` mouse map subtracts from the mean log-odds: larger
    /// values lower every mouse score (fewer false rejects, more accepts).
    pub mouse_raw_offset: f64,
    /// What the `raw` mouse map divides by after the offset: larger values
    /// widen the `suspicious` band (owner and impostor scores both move
    /// toward the middle).
    pub mouse_raw_scale: f64,
    /// Subtract each user's class-ratio log-odds (`MouseModel::prior_log_odds`)
    /// from the mouse evidence before the map.
    pub mouse_prior_correction: bool,
    /// What the `raw` keystroke map subtracts from the mean deviation.
    pub key_raw_offset: f64,
    /// Trees of each user's mouse forest (more: steadier scores, larger profile).
    pub forest_trees: u32,
    /// Deepest split of a tree.
    pub forest_max_depth: u32,
    /// Fewest actions in a leaf (larger: smaller profile, smoother output).
    pub forest_min_leaf: u32,
    /// Mouse actions a profile keeps for fitting (about 45 numbers each).
    pub pool_actions: u32,
}

impl Default for BiometricsConfig {
    fn default() -> Self {
        BiometricsConfig {
            baseline_samples: 10,
            sample_mouse_actions: 60,
            sample_key_observations: 150,
            action_pause_ms: 1_500.0,
            min_mouse_actions: 3,
            mouse_use_for_score_ms: 15_000.0,
            mouse_prior_actions: 0.0,
            min_key_observations: 30,
            ok_below: 0.3,
            failed_at: 0.7,
            mouse_threshold: 0.6,
            keystroke_threshold: 0.7,
            continuous_auth_interval_s: 300,
            mouse_dependence: 2.0,
            key_dependence: 3.0,
            mouse_score_map: ScoreMap::Raw,
            key_score_map: ScoreMap::Centred,
            steepness: 2.5,
            mouse_raw_offset: 0.8,
            key_raw_offset: 1.5,
            mouse_raw_scale: 1.0,
            mouse_prior_correction: true,
            forest_trees: 40,
            forest_max_depth: 12,
            forest_min_leaf: 8,
            pool_actions: 2_000,
        }
    }
}

impl BiometricsConfig {
    /// Every problem of the settings, as `(field, message)`.
    pub fn check(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let unit = |v: f64| v.is_finite() && (0.0..=1.0).contains(&v);
        for (name, v) in [
            ("ok_below", self.ok_below),
            ("failed_at", self.failed_at),
            ("mouse_threshold", self.mouse_threshold),
            ("keystroke_threshold", self.keystroke_threshold),
        ] {
            if !unit(v) {
                out.push((name, format!("must be in [0, 1], got {v}")));
            }
        }
        if self.ok_below > self.failed_at {
            out.push(("ok_below", "must not be above `failed_at`".to_string()));
        }
        for (name, v) in [
            ("baseline_samples", self.baseline_samples),
            ("sample_mouse_actions", self.sample_mouse_actions),
            ("sample_key_observations", self.sample_key_observations),
            ("min_mouse_actions", self.min_mouse_actions),
            ("min_key_observations", self.min_key_observations),
            ("forest_trees", self.forest_trees),
            ("forest_max_depth", self.forest_max_depth),
            ("forest_min_leaf", self.forest_min_leaf),
        ] {
            if v == 0 {
                out.push((name, "must be at least 1".to_string()));
            }
        }
        for (name, v) in [
            ("mouse_dependence", self.mouse_dependence),
            ("key_dependence", self.key_dependence),
            ("steepness", self.steepness),
        ] {
            if !(v.is_finite() && (1.0..=100.0).contains(&v)) {
                out.push((name, format!("must be in [1, 100], got {v}")));
            }
        }
        for (name, v) in [
            ("mouse_raw_offset", self.mouse_raw_offset),
            ("key_raw_offset", self.key_raw_offset),
        ] {
            if !(v.is_finite() && (-10.0..=10.0).contains(&v)) {
                out.push((name, format!("must be in [-10, 10], got {v}")));
            }
        }
        // Also keeps the `raw` map's divisor away from 0.
        if !(self.mouse_raw_scale.is_finite() && (0.1..=10.0).contains(&self.mouse_raw_scale)) {
            out.push(("mouse_raw_scale", "must be in [0.1, 10]".to_string()));
        }
        if !(self.action_pause_ms.is_finite() && (100.0..=60_000.0).contains(&self.action_pause_ms))
        {
            out.push(("action_pause_ms", "must be in [100, 60000]".to_string()));
        }
        if !(self.mouse_use_for_score_ms.is_finite()
            && (1_000.0..=3_600_000.0).contains(&self.mouse_use_for_score_ms))
        {
            out.push((
                "mouse_use_for_score_ms",
                "must be in [1000, 3600000]".to_string(),
            ));
        }
        if !(self.mouse_prior_actions.is_finite()
            && (0.0..=1_000.0).contains(&self.mouse_prior_actions))
        {
            out.push(("mouse_prior_actions", "must be in [0, 1000]".to_string()));
        }
        if self.forest_trees > 500 || self.forest_max_depth > 64 {
            out.push(("forest_trees", "at most 500 trees of depth 64".to_string()));
        }
        if !(100..=20_000).contains(&self.pool_actions) {
            out.push(("pool_actions", "must be in [100, 20000]".to_string()));
        }
        if self.continuous_auth_interval_s == 0 {
            out.push((
                "continuous_auth_interval_s",
                "must be at least 1".to_string(),
            ));
        }
        out
    }
}
