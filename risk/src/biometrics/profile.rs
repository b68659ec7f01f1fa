//! A user's biometric profile: the enrolment ledger, bounded pools of the
//! user's features (never raw events), the fitted models, and the rules for
//! when it is ready, how it scores a session, and when it adapts.

use super::config::BiometricsConfig;
use super::keys::KeyObs;
use super::model::{FitError, ForestSettings, KeyModel, MouseModel};
use super::mouse::ActionFeatures;
use super::session::{Evidence, Fresh, Reservoir, SessionState, Status};
use serde::{Deserialize, Serialize};

/// Most actions a profile keeps, whatever its settings say.
pub const POOL_ACTIONS: usize = 20_000;
/// Key observations kept in a profile.
pub const POOL_KEY_OBS: usize = 6_000;
/// Enrolment sessions remembered while enrolling.
const ENROL_SESSIONS: usize = 256;
/// What a profile lends as background to other users' models.
pub const BACKGROUND_ACTIONS: usize = 800;
pub const BACKGROUND_KEY_OBS: usize = 1_500;
/// Ok sessions that make a mouse refit due.
const REFIT_AFTER_ADAPTATIONS: u32 = 3;

/// Where a profile is in its life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Collecting enrolment samples.
    #[default]
    Enrolling,
    /// Enough samples; the models are to be fitted before the next batch.
    FitDue,
    /// Models fitted: sessions are scored.
    Ready,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
struct EnrolSession {
    tag: u32,
    actions: u32,
    key_obs: u32,
}

/// One user's profile; the gateway persists it (PostgreSQL, through the admin API).
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub phase: Phase,
    next_tag: u32,
    enrolment: Vec<EnrolSession>,
    mouse_pool: Reservoir<(u32, ActionFeatures)>,
    key_pool: Reservoir<(u32, KeyObs)>,
    mouse: Option<MouseModel>,
    keys: Option<KeyModel>,
    /// Bumped by every fit; sessions re-score when it moves.
    pub model_version: u32,
    /// Other users whose data the current models were fitted against.
    pub background_users: u32,
    /// Ok sessions taken in since the last fit.
    pub adapted_since_fit: u32,
}

/// What one profile lends to the fitting of other users' models: a bounded
/// sample of its features, with the session tags they came from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BackgroundPart {
    pub mouse: Vec<(u32, ActionFeatures)>,
    pub keys: Vec<(u32, KeyObs)>,
}

/// Status and scores of a session against a profile.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Verdict {
    pub status: Status,
    pub score: Option<f64>,
    pub mouse_score: Option<f64>,
    pub keystroke_score: Option<f64>,
}

impl Profile {
    /// Enrolment samples collected (see [`BiometricsConfig::baseline_samples`]):
    /// a session counts once per full sample it holds, and at most for half
    /// of the baseline, so a profile always comes from two sessions or more.
    pub fn samples(&self, cfg: &BiometricsConfig) -> u32 {
        let cap = (cfg.baseline_samples / 2).max(1);
        self.enrolment
            .iter()
            .map(|s| {
                (s.actions / cfg.sample_mouse_actions.max(1))
                    .max(s.key_obs / cfg.sample_key_observations.max(1))
                    .min(cap)
            })
            .sum()
    }

    fn tag_of(&mut self, session: &mut SessionState) -> u32 {
        *session.tag.get_or_insert_with(|| {
            let t = self.next_tag;
            self.next_tag = self.next_tag.wrapping_add(1);
            t
        })
    }

    /// Takes a batch's fresh features: while enrolling they join the pools
    /// (and may complete enrolment); once ready they are scored. Returns the
    /// session's verdict; the session keeps it for its next answer.
    pub fn observe(
        &mut self,
        cfg: &BiometricsConfig,
        session: &mut SessionState,
        fresh: &Fresh,
    ) -> Verdict {
        let verdict = match self.phase {
            Phase::Enrolling | Phase::FitDue => {
                self.enrol(cfg, session, fresh);
                Verdict {
                    status: Status::Enrolling,
                    score: None,
                    mouse_score: None,
                    keystroke_score: None,
                }
            }
            Phase::Ready => {
                self.update_evidence(session, fresh);
                self.verdict(cfg, session)
            }
        };
        session.status = verdict.status;
        session.score = verdict.score;
        session.mouse_score = verdict.mouse_score;
        session.keystroke_score = verdict.keystroke_score;
        verdict
    }

    fn enrol(&mut self, cfg: &BiometricsConfig, session: &mut SessionState, fresh: &Fresh) {
        let tag = self.tag_of(session);
        let cap = (cfg.pool_actions as usize).min(POOL_ACTIONS);
        for a in &fresh.actions {
            self.mouse_pool.offer((tag, *a), cap);
        }
        for k in &fresh.keys {
            self.key_pool.offer((tag, *k), POOL_KEY_OBS);
        }
        match self.enrolment.iter_mut().find(|s| s.tag == tag) {
            Some(s) => {
                s.actions = s.actions.saturating_add(fresh.actions.len() as u32);
                s.key_obs = s.key_obs.saturating_add(fresh.keys.len() as u32);
            }
            None => {
                if self.enrolment.len() >= ENROL_SESSIONS {
                    // Forget the session that counted least.
                    if let Some(i) = (0..self.enrolment.len())
                        .min_by_key(|&i| self.enrolment[i].actions + self.enrolment[i].key_obs)
                    {
                        self.enrolment.swap_remove(i);
                    }
                }
                self.enrolment.push(EnrolSession {
                    tag,
                    actions: fresh.actions.len() as u32,
                    key_obs: fresh.keys.len() as u32,
                });
            }
        }
        if self.phase == Phase::Enrolling && self.samples(cfg) >= cfg.baseline_samples {
            self.phase = Phase::FitDue;
        }
    }

    fn update_evidence(&self, session: &mut SessionState, fresh: &Fresh) {
        if session.model_version != self.model_version {
            // The profile changed since this session's evidence was scored:
            // score the session's kept sample again, standing for all of it.
            session.model_version = self.model_version;
            session.mouse_evidence = rescored(
                self.mouse
                    .as_ref()
                    .map(|m| m.items(&session.kept_actions.items)),
                session.actions.saturating_sub(fresh.actions.len() as u64),
            );
            session.key_evidence = rescored(
                self.keys
                    .as_ref()
                    .map(|m| m.items(&session.kept_keys.items)),
                session
                    .key_observations
                    .saturating_sub(fresh.keys.len() as u64),
            );
            // The kept sample already holds this batch's features.
            return;
        }
        if let Some(m) = &self.mouse {
            session.mouse_evidence.add(&m.items(&fresh.actions));
        }
        if let Some(m) = &self.keys {
            session.key_evidence.add(&m.items(&fresh.keys));
        }
    }

    /// Scores the session's evidence against this profile.
    pub fn verdict(&self, cfg: &BiometricsConfig, session: &SessionState) -> Verdict {
        if self.phase != Phase::Ready {
            return Verdict {
                status: Status::Enrolling,
                score: None,
                mouse_score: None,
                keystroke_score: None,
            };
        }
        let kind = |ev: &Evidence,
                    enough: bool,
                    prior: f64,
                    cal: Option<super::model::Calibration>,
                    map: super::config::ScoreMap,
                    dep: f64,
                    (offset, scale): (f64, f64)| {
            let cal = cal?;
            ev.mean()?;
            // The mean, shrunk toward 0 by `prior` neutral items.
            let mean = ev.sum / (ev.n as f64 + prior);
            // `raw`: logistic((mean - offset) / scale).
            enough.then(|| cal.map(map, mean / scale, ev.n, dep, cfg.steepness, offset / scale))
        };
        let mut mouse = session.mouse_evidence;
        if cfg.mouse_prior_correction {
            // Each item less the forest's class-ratio log-odds: the same
            // "no evidence" point for every user whatever their pool sizes.
            let prior = self
                .mouse
                .as_ref()
                .map_or(0.0, |m| f64::from(m.prior_log_odds));
            mouse.sum -= prior * mouse.n as f64;
        }
        let mouse_score = kind(
            &mouse,
            mouse.n >= u64::from(cfg.min_mouse_actions)
                || (mouse.n >= 1 && session.mouse_use_ms >= cfg.mouse_use_for_score_ms),
            cfg.mouse_prior_actions,
            self.mouse.as_ref().map(|m| m.calibration),
            cfg.mouse_score_map,
            cfg.mouse_dependence,
            (cfg.mouse_raw_offset, cfg.mouse_raw_scale),
        );
        let keystroke_score = kind(
            &session.key_evidence,
            session.key_evidence.n >= u64::from(cfg.min_key_observations),
            0.0,
            self.keys.as_ref().and_then(|m| m.calibration),
            cfg.key_score_map,
            cfg.key_dependence,
            (cfg.key_raw_offset, 1.0),
        );
        let score = combine(
            cfg,
            mouse_score.map(|s| (s, session.mouse_evidence.n as f64 / cfg.mouse_dependence)),
            keystroke_score.map(|s| (s, session.key_evidence.n as f64 / cfg.key_dependence)),
        );
        let status = match score {
            None => Status::Collecting,
            Some(s) if s < cfg.ok_below => Status::Ok,
            Some(s) if s < cfg.failed_at => Status::Suspicious,
            Some(_) => Status::Failed,
        };
        Verdict {
            status,
            score,
            mouse_score,
            keystroke_score,
        }
    }

    /// Fits the models from the pools, with other users' parts as impostor
    /// background (none: a synthetic background, see docs). CPU-bound (tens
    /// to a few hundred ms): the gateway runs it off the request path.
    pub fn fit(
        &mut self,
        cfg: &BiometricsConfig,
        background: &[BackgroundPart],
    ) -> Result<(), FitError> {
        let owner_mouse = &self.mouse_pool.items;
        let mut other_mouse: Vec<(u32, ActionFeatures)> = Vec::new();
        let mut other_keys: Vec<(u32, KeyObs)> = Vec::new();
        for (u, part) in background.iter().enumerate() {
            let u = u as u32;
            other_mouse.extend(part.mouse.iter().map(|(_, f)| (u, *f)));
            other_keys.extend(part.keys.iter().map(|(_, k)| (u, *k)));
        }
        if other_mouse.len() < 20 {
            other_mouse = synthetic_background(owner_mouse);
        }
        let mouse = if owner_mouse.len() >= 20 {
            let settings = ForestSettings {
                trees: cfg.forest_trees as usize,
                max_depth: cfg.forest_max_depth.min(u32::from(u16::MAX)) as u16,
                min_leaf: cfg.forest_min_leaf as usize,
            };
            Some(MouseModel::fit(owner_mouse, &other_mouse, settings)?)
        } else {
            None
        };
        let keys = KeyModel::fit(&self.key_pool.items, &other_keys).ok();
        if mouse.is_none() && keys.is_none() {
            return Err(FitError::NotEnoughData(
                "neither mouse nor keystroke data to fit",
            ));
        }
        self.mouse = mouse;
        self.keys = keys;
        self.phase = Phase::Ready;
        self.model_version = self.model_version.wrapping_add(1);
        self.background_users = background.len() as u32;
        self.adapted_since_fit = 0;
        self.enrolment.clear();
        Ok(())
    }

    /// Whether a refit is worth its cost: enrolment just completed, ok
    /// sessions have been taken in, or more users can serve as background.
    pub fn fit_due(&self, background_users: usize) -> bool {
        match self.phase {
            Phase::Enrolling => false,
            Phase::FitDue => true,
            Phase::Ready => {
                self.adapted_since_fit >= REFIT_AFTER_ADAPTATIONS
                    || background_users > self.background_users as usize
            }
        }
    }

    /// Takes an ended session into the profile if it ended `ok` (an impostor's
    /// session never teaches the profile). Its kept features replace pool
    /// entries, so the profile follows slow drift. Returns whether it did.
    pub fn adapt(&mut self, cfg: &BiometricsConfig, session: &mut SessionState) -> bool {
        if self.phase != Phase::Ready || session.status != Status::Ok {
            return false;
        }
        let tag = self.tag_of(session);
        let cap = (cfg.pool_actions as usize).min(POOL_ACTIONS);
        for a in &session.kept_actions.items {
            self.mouse_pool.offer((tag, *a), cap);
        }
        for k in &session.kept_keys.items {
            self.key_pool.offer((tag, *k), POOL_KEY_OBS);
        }
        // Keystroke statistics are cheap: refresh them now.
        if self.keys.is_some() {
            if let Ok(mut k) = KeyModel::fit(&self.key_pool.items, &[]) {
                k.calibration = self.keys.as_ref().and_then(|m| m.calibration);
                self.keys = Some(k);
                self.model_version = self.model_version.wrapping_add(1);
            }
        }
        self.adapted_since_fit = self.adapted_since_fit.saturating_add(1);
        // A session is taken in once.
        session.status = Status::Collecting;
        true
    }

    /// A bounded sample of this profile's features for other users' fits.
    pub fn background_part(&self) -> BackgroundPart {
        self.background_part_of(BACKGROUND_ACTIONS)
    }

    /// [`Profile::background_part`] with another number of actions (evaluation).
    pub fn background_part_of(&self, actions: usize) -> BackgroundPart {
        let pick = |n: usize, cap: usize| -> Vec<usize> {
            if n <= cap {
                (0..n).collect()
            } else {
                (0..cap).map(|i| i * n / cap).collect()
            }
        };
        BackgroundPart {
            mouse: pick(self.mouse_pool.items.len(), actions)
                .into_iter()
                .map(|i| self.mouse_pool.items[i])
                .collect(),
            keys: pick(self.key_pool.items.len(), BACKGROUND_KEY_OBS)
                .into_iter()
                .map(|i| self.key_pool.items[i])
                .collect(),
        }
    }

    /// Features held (bounded): actions and key observations.
    pub fn pooled(&self) -> (usize, usize) {
        (self.mouse_pool.items.len(), self.key_pool.items.len())
    }

    /// Whether each kind has a model.
    pub fn models(&self) -> (bool, bool) {
        (self.mouse.is_some(), self.keys.is_some())
    }
}

/// Evidence from re-scoring a kept sample, scaled to stand for `total` items.
fn rescored(items: Option<Vec<f64>>, total: u64) -> Evidence {
    let Some(items) = items else {
        return Evidence::default();
    };
    let mut e = Evidence::default();
    e.add(&items);
    if e.n > 0 && total > e.n {
        e.sum = e.sum / e.n as f64 * total as f64;
        e.n = total;
    }
    e
}

/// Combines the kinds that have a score: a kind at or above its own
/// threshold decides alone (the larger if both are); otherwise the mean
/// weighted by each kind's evidence. One kind: its score.
pub fn combine(
    cfg: &BiometricsConfig,
    mouse: Option<(f64, f64)>,
    keys: Option<(f64, f64)>,
) -> Option<f64> {
    let over = [
        mouse.filter(|(s, _)| *s >= cfg.mouse_threshold),
        keys.filter(|(s, _)| *s >= cfg.keystroke_threshold),
    ];
    if let Some(max) = over.iter().flatten().map(|(s, _)| *s).reduce(f64::max) {
        return Some(max);
    }
    match (mouse, keys) {
        (None, None) => None,
        (Some((s, _)), None) | (None, Some((s, _))) => Some(s),
        (Some((a, wa)), Some((b, wb))) => {
            let (wa, wb) = (wa.max(1e-9), wb.max(1e-9));
            Some(((a * wa + b * wb) / (wa + wb)).clamp(0.0, 1.0))
        }
    }
}

/// Stand-in impostors when no other user has enrolled yet: the owner's own
/// feature values with each column shuffled on its own, which keeps every
/// feature's range but breaks how the owner's features go together.
fn synthetic_background(owner: &[(u32, ActionFeatures)]) -> Vec<(u32, ActionFeatures)> {
    let n = owner.len();
    if n == 0 {
        return Vec::new();
    }
    (0..n)
        .map(|i| {
            let mut f = ActionFeatures::default();
            for (c, slot) in f.0.iter_mut().enumerate() {
                // A different stride per column: a fixed pseudo-shuffle.
                let j = (i * (2 * c + 3) + c * 7919) % n;
                *slot = owner[j].1 .0[c];
            }
            ((i % 2) as u32, f)
        })
        .collect()
}
