//! The anomaly model: an ONNX file (a scikit-learn tree ensemble exported by
//! `models/anomaly/train.py`) parsed, checked and optimised once with
//! `tract-onnx`, and run per request.
//!
//! A model file is accepted only whole: it parses, names exactly the features
//! of [`FEATURE_NAMES`] in its metadata, takes one `[1, FEATURE_COUNT]` f32
//! input, has a valid calibration, and answers a probe with a probability.
//! Anything else is a [`ModelError`] and the caller keeps what it had.
//!
//! Which engine runs it per request ([`Engine`]): a graph that is one ONNX-ML
//! tree ensemble is walked natively from its attributes (`forest.rs`: about
//! a microsecond where tract's own evaluation takes milliseconds), and only
//! if that walk agrees with tract on probe inputs; any other graph (an MLP,
//! say) runs through tract's plan.

use super::features::{Features, FEATURE_COUNT, FEATURE_NAMES};
use super::forest::{self, Forest};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;

/// Largest model file accepted (a tree ensemble of a few hundred small trees
/// is well under 1 MiB).
pub const MAX_MODEL_BYTES: usize = 16 * 1024 * 1024;

/// The ONNX output holding `[P(normal), P(attack)]` (skl2onnx, no ZipMap).
const OUTPUT: &str = "probabilities";
const META_FEATURES: &str = "onnx.metadata_props.sentinel.features";
const META_CALIBRATION: &str = "onnx.metadata_props.sentinel.calibration";
const META_NAME: &str = "onnx.metadata_props.sentinel.name";
const META_VERSION: &str = "onnx.metadata_props.sentinel.version";

/// Why a model file was refused (or, rarely, could not be run).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error("model file is {0} bytes, more than the {MAX_MODEL_BYTES} accepted")]
    TooLarge(usize),
    #[error("model file is not a readable ONNX model: {0}")]
    Parse(String),
    #[error("model metadata lacks `{0}`")]
    MissingMetadata(&'static str),
    #[error("model was trained on features `{found}`, this gateway computes `{expected}`")]
    FeatureMismatch { found: String, expected: String },
    #[error("model calibration is invalid: {0}")]
    Calibration(String),
    #[error("model input is not one f32 tensor of shape [N, {FEATURE_COUNT}]: {0}")]
    InputShape(String),
    #[error("model has no `probabilities` output of shape [1, 2]: {0}")]
    Output(String),
    #[error("model could not be optimised: {0}")]
    Optimise(String),
    #[error("model failed to run: {0}")]
    Run(String),
    #[error("model's tree ensemble cannot be walked natively: {0}")]
    Trees(String),
    #[error("model's native walk disagrees with tract: {0}")]
    Disagreement(String),
}

/// What evaluates the model per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// The tree ensemble walked natively (tract loaded it and is the
    /// reference it was checked against).
    Trees,
    /// tract-onnx's optimised plan.
    Tract,
}

impl Engine {
    /// `trees` or `tract`, for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trees => "trees",
            Self::Tract => "tract",
        }
    }
}

/// Largest difference between the native walk and tract on a probe (both
/// sum the same f32 weights in the same order, so they agree exactly).
const AGREEMENT: f32 = 1e-5;
/// Probe inputs the native walk is checked against tract on at load.
const PROBES: usize = 24;

/// Which model is loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    pub name: String,
    pub version: String,
    /// Lowercase hex SHA-256 of the model file, as the registry records it.
    pub sha256: String,
    pub bytes: usize,
}

/// The monotone, piecewise-linear map from the model's raw probability to the
/// score the thresholds read (docs/anomaly.md, "Calibration"). Stored in the
/// model file's metadata as `raw:score` knots, e.g. `0:0,0.2:0.7,1:1`.
#[derive(Debug, Clone, PartialEq)]
pub struct Calibration {
    knots: Vec<(f32, f32)>,
}

impl Calibration {
    /// The identity map (raw probability = score).
    pub fn identity() -> Self {
        Self {
            knots: vec![(0.0, 0.0), (1.0, 1.0)],
        }
    }

    /// Parses `raw:score,…`: at least two knots, raw strictly increasing from
    /// 0 to 1, scores non-decreasing in `[0, 1]`.
    pub fn parse(text: &str) -> Result<Self, ModelError> {
        let bad = |m: &str| ModelError::Calibration(m.to_owned());
        let mut knots = Vec::new();
        for part in text.split(',') {
            let (raw, score) = part
                .split_once(':')
                .ok_or_else(|| bad("a knot is not `raw:score`"))?;
            let raw: f32 = raw
                .trim()
                .parse()
                .map_err(|_| bad("a raw value is not a number"))?;
            let score: f32 = score
                .trim()
                .parse()
                .map_err(|_| bad("a score is not a number"))?;
            if !(0.0..=1.0).contains(&raw) || !(0.0..=1.0).contains(&score) {
                return Err(bad("a knot is outside [0, 1]"));
            }
            if let Some(&(r, s)) = knots.last() {
                if raw <= r || score < s {
                    return Err(bad("knots are not increasing"));
                }
            }
            knots.push((raw, score));
        }
        match (knots.first(), knots.last()) {
            (Some(&(first, _)), Some(&(last, _)))
                if knots.len() >= 2 && first == 0.0 && last == 1.0 =>
            {
                Ok(Self { knots })
            }
            _ => Err(bad("knots must run from raw 0 to raw 1")),
        }
    }

    /// The calibrated score of a raw probability (clamped to `[0, 1]`).
    pub fn apply(&self, raw: f32) -> f32 {
        let raw = if raw.is_nan() {
            1.0
        } else {
            raw.clamp(0.0, 1.0)
        };
        for pair in self.knots.windows(2) {
            if let [(r0, s0), (r1, s1)] = *pair {
                if raw <= r1 {
                    let t = if r1 > r0 { (raw - r0) / (r1 - r0) } else { 1.0 };
                    return s0 + t * (s1 - s0);
                }
            }
        }
        self.knots.last().map_or(raw, |&(_, s)| s)
    }
}

/// A loaded, optimised anomaly model.
#[derive(Debug, Clone)]
pub struct OnnxModel {
    plan: Arc<TypedSimplePlan>,
    forest: Option<Arc<Forest>>,
    info: ModelInfo,
    calibration: Calibration,
}

fn property(model: &InferenceModel, key: &'static str) -> Result<String, ModelError> {
    let tensor = model
        .properties
        .get(key)
        .ok_or(ModelError::MissingMetadata(
            key.trim_start_matches("onnx.metadata_props."),
        ))?;
    tensor
        .try_as_plain_ram()
        .and_then(|view| view.to_scalar::<String>().cloned())
        .map_err(|_| ModelError::MissingMetadata(key.trim_start_matches("onnx.metadata_props.")))
}

/// A probability, or the error that it is not one. A sum of f32 leaf weights
/// may overshoot 1 (or 0) by a rounding error: that is still a probability.
fn probability(p: f32) -> Result<f32, ModelError> {
    const ROUNDING: f32 = 1e-4;
    if p.is_finite() && (-ROUNDING..=1.0 + ROUNDING).contains(&p) {
        Ok(p.clamp(0.0, 1.0))
    } else {
        Err(ModelError::Output(format!("probability {p}")))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl OnnxModel {
    /// Checks, optimises and probes a model file. Expensive (milliseconds):
    /// done once per model, never per request.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ModelError> {
        if bytes.len() > MAX_MODEL_BYTES {
            return Err(ModelError::TooLarge(bytes.len()));
        }
        let mut reader = bytes;
        let onnx = tract_onnx::onnx();
        let proto = onnx
            .proto_model_for_read(&mut reader)
            .map_err(|e| ModelError::Parse(format!("{e:#}")))?;
        let model = onnx
            .model_for_proto_model(&proto)
            .map_err(|e| ModelError::Parse(format!("{e:#}")))?;

        let features = property(&model, META_FEATURES)?;
        let expected = FEATURE_NAMES.join(",");
        if features != expected {
            return Err(ModelError::FeatureMismatch {
                found: features,
                expected,
            });
        }
        let calibration = Calibration::parse(&property(&model, META_CALIBRATION)?)?;
        let name = property(&model, META_NAME)?;
        let version = property(&model, META_VERSION)?;

        if model.inputs.len() != 1 {
            return Err(ModelError::InputShape(format!(
                "{} inputs",
                model.inputs.len()
            )));
        }
        let declared = model
            .input_fact(0)
            .map_err(|e| ModelError::InputShape(format!("{e:#}")))?;
        let width = declared.shape.dims().nth(1).and_then(|d| d.concretize());
        match (
            declared.shape.rank().concretize(),
            width.and_then(|w| w.to_i64().ok()),
        ) {
            (Some(2), Some(w)) if w == FEATURE_COUNT as i64 => {}
            _ => return Err(ModelError::InputShape(format!("{declared:?}"))),
        }
        let plan = model
            .with_input_fact(0, f32::fact([1, FEATURE_COUNT]).into())
            .and_then(|m| m.with_outputs_by_name([OUTPUT]))
            .map_err(|e| ModelError::Output(format!("{e:#}")))?
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .map_err(|e| ModelError::Optimise(format!("{e:#}")))?;

        // A tree ensemble is walked natively or not at all: through tract it
        // would cost milliseconds per request.
        let forest = match forest::tree_node(&proto) {
            Some(_) => Some(Arc::new(
                Forest::from_proto(&proto).map_err(ModelError::Trees)?,
            )),
            None => None,
        };

        let loaded = Self {
            plan,
            forest,
            info: ModelInfo {
                name,
                version,
                sha256: hex(&Sha256::digest(bytes)),
                bytes: bytes.len(),
            },
            calibration,
        };
        // Probe: a model that cannot answer a plain request is refused now,
        // not on the first request.
        loaded.raw_tract(&Features {
            values: [0.0; FEATURE_COUNT],
        })?;
        loaded.check_agreement()?;
        Ok(loaded)
    }

    /// The native walk must give tract's answer on every probe: the zero
    /// vector and pseudo-random inputs over the features' ranges (fixed
    /// seed, so a model is accepted or refused the same way every time).
    fn check_agreement(&self) -> Result<(), ModelError> {
        let Some(forest) = &self.forest else {
            return Ok(());
        };
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 40) as f32 / (1u64 << 24) as f32
        };
        for probe in 0..PROBES {
            let mut values = [0.0f32; FEATURE_COUNT];
            if probe > 0 {
                for v in &mut values {
                    // Half in [0, 1] (bits, shares), a quarter in [0, 12]
                    // (log counts), a quarter in [-12, 0] (log ratios).
                    let (kind, u) = (next(), next());
                    *v = if kind < 0.5 {
                        u
                    } else if kind < 0.75 {
                        12.0 * u
                    } else {
                        -12.0 * u
                    };
                }
            }
            let f = Features { values };
            let (reference, native) = (self.raw_tract(&f)?, forest.eval(&values));
            if (reference - native).abs() > AGREEMENT || native.is_nan() {
                return Err(ModelError::Disagreement(format!(
                    "probe {probe}: tract {reference}, native {native}"
                )));
            }
        }
        Ok(())
    }

    /// What evaluates the model per request.
    pub fn engine(&self) -> Engine {
        if self.forest.is_some() {
            Engine::Trees
        } else {
            Engine::Tract
        }
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    pub fn calibration(&self) -> &Calibration {
        &self.calibration
    }

    /// The model's probability that the request is an attack, before
    /// calibration, from the engine that serves requests ([`Self::engine`]).
    pub fn raw(&self, features: &Features) -> Result<f32, ModelError> {
        match &self.forest {
            Some(forest) => probability(forest.eval(&features.values)),
            None => self.raw_tract(features),
        }
    }

    /// The same probability computed by tract-onnx's plan: the reference the
    /// native walk is checked against (milliseconds for a large forest; not
    /// for the request path).
    pub fn raw_tract(&self, features: &Features) -> Result<f32, ModelError> {
        let input = Tensor::from_shape(&[1, FEATURE_COUNT], &features.values)
            .map_err(|e| ModelError::Run(format!("{e:#}")))?;
        let outputs = self
            .plan
            .run(tvec![input.into()])
            .map_err(|e| ModelError::Run(format!("{e:#}")))?;
        let out = outputs
            .first()
            .ok_or_else(|| ModelError::Output("no output".to_owned()))?;
        if out.shape() != [1, 2] {
            return Err(ModelError::Output(format!("shape {:?}", out.shape())));
        }
        let view = out
            .try_as_plain_ram()
            .map_err(|e| ModelError::Output(format!("{e:#}")))?;
        let p = view
            .as_slice::<f32>()
            .map_err(|e| ModelError::Output(format!("{e:#}")))?
            .get(1)
            .copied()
            .ok_or_else(|| ModelError::Output("no attack probability".to_owned()))?;
        probability(p)
    }

    /// The calibrated anomaly score in `[0, 1]`.
    pub fn score(&self, features: &Features) -> Result<f32, ModelError> {
        Ok(self.calibration.apply(self.raw(features)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODEL: &[u8] = include_bytes!("../../../models/anomaly/model.onnx");

    #[test]
    fn a_walk_that_disagrees_with_tract_is_refused() -> Result<(), ModelError> {
        let mut model = OnnxModel::from_bytes(MODEL)?;
        assert_eq!(model.engine(), Engine::Trees);
        assert_eq!(model.check_agreement(), Ok(()));
        if let Some(forest) = model.forest.as_mut() {
            Arc::make_mut(forest).nudge(1e-3);
        }
        assert!(matches!(
            model.check_agreement(),
            Err(ModelError::Disagreement(_))
        ));
        Ok(())
    }
}
