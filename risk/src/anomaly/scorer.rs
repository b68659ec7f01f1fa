//! The scorer the gateway holds (the model, or the rule fallback when there is
//! none or it cannot be loaded) and the thresholds that turn a score into a
//! verdict.

use super::features::Features;
use super::model::{ModelError, ModelInfo, OnnxModel};
use super::rules::rule_score;

/// Which scorer produced a score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScorerKind {
    Model,
    Rules,
}

impl ScorerKind {
    /// `model` or `rules`, for metrics and audit events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Model => "model",
            Self::Rules => "rules",
        }
    }
}

/// A request's anomaly score and what computed it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    /// In `[0, 1]`; 1 = surely not the principal's usual behaviour.
    pub value: f32,
    pub by: ScorerKind,
}

/// The model when one is loaded, the rules otherwise. Cheap to share behind
/// an `Arc`/`ArcSwap`; [`Scorer::score`] takes `&self` and never fails.
#[derive(Debug, Clone)]
pub struct Scorer {
    model: Option<OnnxModel>,
}

impl Scorer {
    /// The rule fallback alone.
    pub fn rules() -> Self {
        Self { model: None }
    }

    pub fn with_model(model: OnnxModel) -> Self {
        Self { model: Some(model) }
    }

    /// A scorer from an optional model file: the model when the file loads,
    /// the rules otherwise, with the reason it did not.
    pub fn load(bytes: Option<&[u8]>) -> (Self, Option<ModelError>) {
        match bytes.map(OnnxModel::from_bytes) {
            None => (Self::rules(), None),
            Some(Ok(model)) => (Self::with_model(model), None),
            Some(Err(e)) => (Self::rules(), Some(e)),
        }
    }

    /// Which scorer is active.
    pub fn kind(&self) -> ScorerKind {
        if self.model.is_some() {
            ScorerKind::Model
        } else {
            ScorerKind::Rules
        }
    }

    /// The active model, if any.
    pub fn model(&self) -> Option<&ModelInfo> {
        self.model.as_ref().map(OnnxModel::info)
    }

    /// Scores a request: the larger of the model's score and the rules'
    /// (the documented rules are a floor the model can only add to), and
    /// which of the two it was. Total: should the model fail on these
    /// features (a loaded model was probed, so this is not expected), the
    /// rules answer alone.
    pub fn score(&self, features: &Features) -> Score {
        let rules = rule_score(features);
        match self.model.as_ref().map(|m| m.score(features)) {
            Some(Ok(value)) if value >= rules => Score {
                value,
                by: ScorerKind::Model,
            },
            _ => Score {
                value: rules,
                by: ScorerKind::Rules,
            },
        }
    }
}

/// What a score means (the seeds' values by default). A score *above* a
/// threshold crosses it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Recorded as an anomaly; the baseline does not learn from it.
    pub anomaly: f32,
    /// `401 STEP_UP_REQUIRED` on routes with a `risk` slot.
    pub step_up: f32,
    /// `403 RISK_BLOCKED` on routes with a `risk` slot.
    pub block: f32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            anomaly: 0.7,
            step_up: 0.85,
            block: 0.95,
        }
    }
}

/// What a score calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Normal,
    Anomalous,
    StepUp,
    Block,
}

impl Thresholds {
    /// Thresholds in `[0, 1]` with `anomaly ≤ step_up ≤ block`.
    pub fn new(anomaly: f32, step_up: f32, block: f32) -> Option<Self> {
        let ok = (0.0..=1.0).contains(&anomaly)
            && (0.0..=1.0).contains(&step_up)
            && (0.0..=1.0).contains(&block)
            && anomaly <= step_up
            && step_up <= block;
        ok.then_some(Self {
            anomaly,
            step_up,
            block,
        })
    }

    pub fn verdict(&self, score: f32) -> Verdict {
        if score > self.block {
            Verdict::Block
        } else if score > self.step_up {
            Verdict::StepUp
        } else if score > self.anomaly {
            Verdict::Anomalous
        } else {
            Verdict::Normal
        }
    }
}
