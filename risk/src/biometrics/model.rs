//! The per-user models: a random forest (smartcore) that tells the owner's
//! mouse actions from other users', a scaled-Manhattan keystroke model, and
//! the calibration that turns a session's evidence into a score in `[0, 1]`.
//!
//! Both models produce one number per item (action or key timing); a session
//! keeps the sum and count of those numbers, and [`Calibration::map`] turns
//! their mean into a score by the configured [`ScoreMap`]: the model's own
//! scale (mouse default), or per-user maps built from what the model gave on
//! held-out owner and other-user data (keystroke default).

use super::config::ScoreMap;
use super::keys::KeyObs;
use super::mouse::{ActionFeatures, ACTION_FEATURES};
use serde::{Deserialize, Serialize};
use smartcore::ensemble::random_forest_regressor::{
    RandomForestRegressor, RandomForestRegressorParameters,
};
use smartcore::linalg::basic::matrix::DenseMatrix;

/// Why a model could not be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FitError {
    #[error("not enough data: {0}")]
    NotEnoughData(&'static str),
    #[error("the learner failed: {0}")]
    Learner(String),
}

/// Maps a session's mean item value and item count to a score: the
/// posterior probability (even prior) that the session is another user's,
/// under two normal laws of the mean with a pooled spread.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Mean item value on held-out owner data.
    pub owner_mean: f32,
    /// Mean item value on other users' data.
    pub other_mean: f32,
    /// Pooled standard deviation of one item's value.
    pub sd: f32,
}

impl Calibration {
    fn from_values(owner: &[f64], other: &[f64]) -> Option<Calibration> {
        let (om, ov) = mean_var(owner)?;
        let (xm, xv) = mean_var(other)?;
        let sd = ((ov + xv) / 2.0).sqrt().max(1e-3);
        Some(Calibration {
            owner_mean: om as f32,
            other_mean: xm as f32,
            sd: sd as f32,
        })
    }

    /// The score of a session whose `n` items have mean value `mean`, by `map`.
    pub fn map(
        &self,
        map: ScoreMap,
        mean: f64,
        n: u64,
        dependence: f64,
        steepness: f64,
        raw_offset: f64,
    ) -> f64 {
        let logistic = |x: f64| 1.0 / (1.0 + (-x.clamp(-50.0, 50.0)).exp());
        if !mean.is_finite() {
            return 0.5;
        }
        match map {
            ScoreMap::Posterior => self.score(mean, n, dependence),
            ScoreMap::Raw => logistic(mean - raw_offset),
            ScoreMap::Centred => {
                let (g, i) = (f64::from(self.owner_mean), f64::from(self.other_mean));
                let gap = i - g;
                if gap.is_nan() || gap <= 1e-6 {
                    return 0.5;
                }
                logistic(steepness * (2.0 * mean - g - i) / gap)
            }
        }
    }

    /// The score of a session whose `n` items have mean value `mean`;
    /// `dependence` ≥ 1 discounts items that are not independent.
    pub fn score(&self, mean: f64, n: u64, dependence: f64) -> f64 {
        let (g, i, sd) = (
            f64::from(self.owner_mean),
            f64::from(self.other_mean),
            f64::from(self.sd),
        );
        let gap = i - g;
        if gap.is_nan() || gap <= 1e-6 || !mean.is_finite() {
            // The model does not separate the owner from others: no evidence.
            return 0.5;
        }
        let n_eff = (n as f64 / dependence.max(1.0)).max(1.0);
        let llr = gap / (sd * sd) * (mean - (g + i) / 2.0) * n_eff;
        let s = 1.0 / (1.0 + (-llr.clamp(-50.0, 50.0)).exp());
        s.clamp(0.0, 1.0)
    }
}

fn mean_var(v: &[f64]) -> Option<(f64, f64)> {
    if v.len() < 2 {
        return None;
    }
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0);
    Some((m, var))
}

type Forest = RandomForestRegressor<f32, f64, DenseMatrix<f32>, Vec<f64>>;

/// Forest settings (from `BiometricsConfig`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForestSettings {
    pub trees: usize,
    pub max_depth: u16,
    pub min_leaf: usize,
}

/// One action's item value: the forest's "other user" probability, squeezed
/// away from 0 and 1 and put on the log-odds scale so that a session's mean
/// adds evidence up.
fn item(p: f64) -> f64 {
    let p = p.clamp(0.02, 0.98);
    (p / (1.0 - p)).ln()
}

fn matrix(rows: &[&ActionFeatures]) -> Result<DenseMatrix<f32>, FitError> {
    let data: Vec<f32> = rows.iter().flat_map(|r| r.0.iter().copied()).collect();
    DenseMatrix::new(rows.len(), ACTION_FEATURES, data, false)
        .map_err(|e| FitError::Learner(e.to_string()))
}

fn fit_forest(
    owner: &[&ActionFeatures],
    other: &[&ActionFeatures],
    seed: u64,
    settings: ForestSettings,
) -> Result<Forest, FitError> {
    let rows: Vec<&ActionFeatures> = owner.iter().chain(other.iter()).copied().collect();
    let y: Vec<f64> = std::iter::repeat_n(0.0, owner.len())
        .chain(std::iter::repeat_n(1.0, other.len()))
        .collect();
    let x = matrix(&rows)?;
    let params = RandomForestRegressorParameters::default()
        .with_n_trees(settings.trees.max(1))
        .with_max_depth(settings.max_depth.max(1))
        .with_min_samples_leaf(settings.min_leaf.max(1))
        .with_m((ACTION_FEATURES as f64).sqrt().ceil() as usize)
        .with_seed(seed);
    Forest::fit(&x, &y, params).map_err(|e| FitError::Learner(e.to_string()))
}

fn predict(forest: &Forest, rows: &[&ActionFeatures]) -> Result<Vec<f64>, FitError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let x = matrix(rows)?;
    forest
        .predict(&x)
        .map_err(|e| FitError::Learner(e.to_string()))
}

/// The rows of `rows` in half `h` (0 or 1): by group parity, or with one
/// group only by row parity.
fn half(rows: &[(u32, ActionFeatures)], h: u32) -> Vec<&ActionFeatures> {
    let groups = distinct_groups(rows);
    rows.iter()
        .enumerate()
        .filter(|(i, (g, _))| (if groups > 1 { *g } else { *i as u32 }) % 2 == h)
        .map(|(_, (_, f))| f)
        .collect()
}

/// The mouse model: a forest trained to tell the owner's actions (0) from
/// other users' (1), and its calibration.
#[derive(Debug, Serialize, Deserialize)]
pub struct MouseModel {
    forest: Forest,
    pub calibration: Calibration,
    /// `ln(other actions / owner actions)` of the fit: the log-odds the
    /// forest leans to before any evidence, from its class sizes.
    #[serde(default)]
    pub prior_log_odds: f32,
}

impl PartialEq for MouseModel {
    fn eq(&self, other: &Self) -> bool {
        self.forest == other.forest
            && self.calibration == other.calibration
            && self.prior_log_odds == other.prior_log_odds
    }
}

impl MouseModel {
    /// Fits on the owner's actions and other users' actions, each tagged
    /// with a group (session or user) so that calibration is measured on
    /// groups the forest did not see: two forests on halves, then the final
    /// forest on everything.
    pub fn fit(
        owner: &[(u32, ActionFeatures)],
        other: &[(u32, ActionFeatures)],
        settings: ForestSettings,
    ) -> Result<MouseModel, FitError> {
        if owner.len() < 20 || other.len() < 20 {
            return Err(FitError::NotEnoughData(
                "mouse model needs 20 actions of each side",
            ));
        }
        let mut owner_vals = Vec::new();
        let mut other_vals = Vec::new();
        for h in 0..2 {
            let (ot, oe) = (half(owner, h), half(owner, 1 - h));
            let (xt, xe) = (half(other, h), half(other, 1 - h));
            if ot.len() < 5 || xt.len() < 5 {
                continue;
            }
            let forest = fit_forest(&ot, &xt, 17 + u64::from(h), settings)?;
            owner_vals.extend(predict(&forest, &oe)?.into_iter().map(item));
            other_vals.extend(predict(&forest, &xe)?.into_iter().map(item));
        }
        let calibration = Calibration::from_values(&owner_vals, &other_vals).ok_or(
            FitError::NotEnoughData("no held-out actions for calibration"),
        )?;
        let all_owner: Vec<&ActionFeatures> = owner.iter().map(|(_, f)| f).collect();
        let all_other: Vec<&ActionFeatures> = other.iter().map(|(_, f)| f).collect();
        let forest = fit_forest(&all_owner, &all_other, 7, settings)?;
        Ok(MouseModel {
            forest,
            calibration,
            prior_log_odds: (other.len() as f64 / owner.len() as f64).ln() as f32,
        })
    }

    /// The item value of each action (see [`Calibration`]).
    pub fn items(&self, actions: &[ActionFeatures]) -> Vec<f64> {
        let rows: Vec<&ActionFeatures> = actions.iter().collect();
        // A failed prediction (it cannot fail on well-shaped rows) counts as
        // no evidence rather than as a verdict.
        predict(&self.forest, &rows)
            .map(|ps| ps.into_iter().map(item).collect())
            .unwrap_or_default()
    }
}

fn distinct_groups<T>(rows: &[(u32, T)]) -> usize {
    let mut g: Vec<u32> = rows.iter().map(|(g, _)| *g).collect();
    g.sort_unstable();
    g.dedup();
    g.len()
}

/// Per-feature statistics of the owner's key timings.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyStat {
    pub feature: u32,
    pub mean: f32,
    /// Mean absolute deviation from `mean`, floored.
    pub mad: f32,
    pub count: u32,
}

/// A feature needs this many observations in the profile to be compared.
pub const MIN_FEATURE_COUNT: usize = 3;
/// Largest per-observation deviation counted (one outlier cannot decide).
const MAX_DEVIATION: f64 = 6.0;

/// The keystroke model: scaled Manhattan distance (Killourhy and Maxion's
/// best classic detector on the CMU benchmark), per key and digraph.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyModel {
    /// Sorted by `feature`.
    stats: Vec<KeyStat>,
    pub calibration: Option<Calibration>,
}

impl KeyModel {
    /// Statistics of `obs` (feature, value) for every feature seen often enough.
    pub fn stats_of(obs: &[&KeyObs]) -> Vec<KeyStat> {
        let mut sorted: Vec<(u32, f32)> = obs.iter().map(|o| (o.feature, o.value)).collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        let mut stats = Vec::new();
        for run in sorted.chunk_by(|a, b| a.0 == b.0) {
            if run.len() < MIN_FEATURE_COUNT {
                continue;
            }
            let n = run.len() as f64;
            let mean = run.iter().map(|r| f64::from(r.1)).sum::<f64>() / n;
            let mad = run
                .iter()
                .map(|r| (f64::from(r.1) - mean).abs())
                .sum::<f64>()
                / n;
            stats.push(KeyStat {
                feature: run[0].0,
                mean: mean as f32,
                mad: mad.max(0.02) as f32,
                count: run.len() as u32,
            });
        }
        stats
    }

    fn deviation(stats: &[KeyStat], o: &KeyObs) -> Option<f64> {
        let i = stats.binary_search_by(|s| s.feature.cmp(&o.feature)).ok()?;
        let s = stats[i];
        Some(((f64::from(o.value) - f64::from(s.mean)).abs() / f64::from(s.mad)).min(MAX_DEVIATION))
    }

    /// Fits on the owner's tagged observations; other users' observations
    /// (if any) measure how far an impostor lands.
    pub fn fit(owner: &[(u32, KeyObs)], other: &[(u32, KeyObs)]) -> Result<KeyModel, FitError> {
        let all: Vec<&KeyObs> = owner.iter().map(|(_, o)| o).collect();
        let stats = Self::stats_of(&all);
        if stats.is_empty() {
            return Err(FitError::NotEnoughData("no key timing seen three times"));
        }
        // Owner's held-out deviations: statistics of one half, values of the other.
        let groups = distinct_groups(owner);
        let mut owner_vals = Vec::new();
        for h in 0..2u32 {
            let in_half = |i: usize, g: u32| (if groups > 1 { g } else { i as u32 }) % 2 == h;
            let train: Vec<&KeyObs> = owner
                .iter()
                .enumerate()
                .filter(|(i, (g, _))| in_half(*i, *g))
                .map(|(_, (_, o))| o)
                .collect();
            let half_stats = Self::stats_of(&train);
            owner_vals.extend(
                owner
                    .iter()
                    .enumerate()
                    .filter(|(i, (g, _))| !in_half(*i, *g))
                    .filter_map(|(_, (_, o))| Self::deviation(&half_stats, o)),
            );
        }
        let mut other_vals: Vec<f64> = other
            .iter()
            .filter_map(|(_, o)| Self::deviation(&stats, o))
            .collect();
        if other_vals.len() < 20 {
            // Nobody else to compare with: assume an impostor lands twice as
            // far as the owner (documented; replaced once others enrol).
            let (m, v) = mean_var(&owner_vals).unwrap_or((1.0, 0.5));
            other_vals = vec![2.0 * m - v.sqrt(), 2.0 * m + v.sqrt()];
        }
        let calibration = Calibration::from_values(&owner_vals, &other_vals);
        Ok(KeyModel { stats, calibration })
    }

    /// Deviation of each observation the model knows (unknown features are skipped).
    pub fn items(&self, obs: &[KeyObs]) -> Vec<f64> {
        obs.iter()
            .filter_map(|o| Self::deviation(&self.stats, o))
            .collect()
    }

    /// Features the model compares.
    pub fn features(&self) -> usize {
        self.stats.len()
    }
}
