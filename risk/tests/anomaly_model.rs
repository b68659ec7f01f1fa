//! The committed anomaly model: the native walk of its trees (what serves
//! requests) and tract agree with scikit-learn on the inputs the training
//! script recorded, and a model file that is corrupt, was trained on other
//! features, has a broken calibration, the wrong input width or trees the
//! walk cannot read is refused, leaving the rule fallback in charge.
#![expect(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use sentinel_risk::anomaly::{
    rule_score, Engine, Features, ModelError, OnnxModel, Scorer, ScorerKind, FEATURE_COUNT,
    FEATURE_NAMES,
};

const MODEL: &[u8] = include_bytes!("../../models/anomaly/model.onnx");
const MODEL_SHA256: &str = include_str!("../../models/anomaly/model.onnx.sha256");
const FIXTURE: &str = include_str!("../../models/anomaly/fixture.json");
const WRONG_WIDTH: &[u8] = include_bytes!("../../models/anomaly/testdata/wrong_width.onnx");

#[derive(serde::Deserialize)]
struct Fixture {
    model_sha256: String,
    features: Vec<String>,
    inputs: Vec<Vec<f32>>,
    raw: Vec<f32>,
    score: Vec<f32>,
}

fn fixture() -> Fixture {
    serde_json::from_str(FIXTURE).unwrap()
}

fn features(row: &[f32]) -> Features {
    Features {
        values: row.try_into().unwrap(),
    }
}

/// `bytes` with the first `from` after `after` replaced by `to` (same length,
/// so the protobuf framing stays valid).
fn patched(bytes: &[u8], after: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let find = |hay: &[u8], needle: &[u8], start: usize| {
        hay[start..]
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|p| p + start)
    };
    let start = find(bytes, after, 0).expect("anchor in the model file");
    let at = find(bytes, from, start).expect("text in the model file");
    let mut out = bytes.to_vec();
    out[at..at + from.len()].copy_from_slice(to);
    out
}

#[test]
fn the_committed_model_loads_and_is_the_one_recorded() {
    let model = OnnxModel::from_bytes(MODEL).unwrap();
    let info = model.info();
    assert_eq!(info.sha256, MODEL_SHA256.split_whitespace().next().unwrap());
    assert_eq!(info.sha256, fixture().model_sha256);
    assert_eq!(info.bytes, MODEL.len());
    assert!(!info.name.is_empty() && !info.version.is_empty());
    assert!(MODEL.len() < 1024 * 1024, "the committed model stays small");
}

#[test]
fn tract_agrees_with_scikit_learn_on_the_recorded_inputs() {
    let fx = fixture();
    assert_eq!(fx.features, FEATURE_NAMES);
    assert!(fx.inputs.len() > 100);
    let model = OnnxModel::from_bytes(MODEL).unwrap();
    assert_eq!(model.engine(), Engine::Trees);
    let mut worst = (0.0f32, 0.0f32, 0.0f32);
    for ((row, raw), score) in fx.inputs.iter().zip(&fx.raw).zip(&fx.score) {
        assert_eq!(row.len(), FEATURE_COUNT);
        let f = features(row);
        let got_raw = model.raw(&f).unwrap();
        let got_score = model.score(&f).unwrap();
        let tract_raw = model.raw_tract(&f).unwrap();
        worst.0 = worst.0.max((got_raw - raw).abs());
        worst.1 = worst.1.max((got_score - score).abs());
        worst.2 = worst.2.max((got_raw - tract_raw).abs());
    }
    assert!(
        worst.0 < 1e-5,
        "raw probabilities differ by up to {}",
        worst.0
    );
    assert!(worst.1 < 1e-4, "scores differ by up to {}", worst.1);
    assert!(
        worst.2 < 1e-6,
        "the walk and tract differ by up to {}",
        worst.2
    );
    // The fixture holds both kinds of answer, so agreement is not trivial.
    assert!(fx.score.iter().any(|&s| s < 0.5) && fx.score.iter().any(|&s| s > 0.95));
}

#[test]
fn the_scorer_says_which_scorer_is_active() {
    let (scorer, error) = Scorer::load(None);
    assert_eq!((scorer.kind(), error), (ScorerKind::Rules, None));
    assert!(scorer.model().is_none());

    let (scorer, error) = Scorer::load(Some(MODEL));
    assert_eq!(error, None);
    assert_eq!(scorer.kind(), ScorerKind::Model);
    // The score is the larger of the model's and the rules'.
    let model = OnnxModel::from_bytes(MODEL).unwrap();
    let mut by_model = 0;
    for row in &fixture().inputs {
        let f = features(row);
        let (m, r) = (model.score(&f).unwrap(), rule_score(&f));
        let s = scorer.score(&f);
        assert_eq!(s.value, m.max(r));
        assert_eq!(
            s.by,
            if m >= r {
                ScorerKind::Model
            } else {
                ScorerKind::Rules
            }
        );
        by_model += usize::from(s.by == ScorerKind::Model);
    }
    assert!(by_model > 0);
}

#[test]
fn corrupt_model_files_are_refused_and_the_rules_score() {
    let mut flipped = MODEL.to_vec();
    for b in flipped.iter_mut().skip(40).step_by(97) {
        *b ^= 0x5a;
    }
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("truncated", MODEL[..MODEL.len() / 2].to_vec()),
        ("flipped bytes", flipped),
        ("not onnx", b"{\"model\": \"surely\"}".to_vec()),
        ("zeros", vec![0u8; 4096]),
    ];
    let f = features(&fixture().inputs[0]);
    for (name, bytes) in cases {
        let (scorer, error) = Scorer::load(Some(&bytes));
        assert!(error.is_some(), "{name} was accepted");
        assert_eq!(scorer.kind(), ScorerKind::Rules, "{name}");
        let score = scorer.score(&f);
        assert_eq!(score.by, ScorerKind::Rules);
        assert!((0.0..=1.0).contains(&score.value));
    }
}

#[test]
fn a_model_trained_on_other_features_is_refused() {
    let other = patched(MODEL, b"sentinel.features", b"maturity,", b"maturitx,");
    assert!(matches!(
        OnnxModel::from_bytes(&other),
        Err(ModelError::FeatureMismatch { .. })
    ));
}

#[test]
fn a_model_without_its_name_is_refused() {
    let other = patched(MODEL, b"sentinel.name", b"sentinel.name", b"sentinel.nane");
    assert_eq!(
        OnnxModel::from_bytes(&other).unwrap_err(),
        ModelError::MissingMetadata("sentinel.name")
    );
}

#[test]
fn a_model_with_a_broken_calibration_is_refused() {
    let other = patched(MODEL, b"sentinel.calibration", b"0:0,", b"0:2,");
    assert!(matches!(
        OnnxModel::from_bytes(&other),
        Err(ModelError::Calibration(_))
    ));
}

#[test]
fn a_model_of_the_wrong_input_width_is_refused() {
    let err = OnnxModel::from_bytes(WRONG_WIDTH).unwrap_err();
    assert!(matches!(err, ModelError::InputShape(_)), "{err}");
}

#[test]
fn the_walk_follows_tract_on_missing_and_extreme_values() {
    let model = OnnxModel::from_bytes(MODEL).unwrap();
    let rows = fixture().inputs;
    for (i, row) in rows.iter().enumerate().step_by(7) {
        let mut f = features(row);
        // NaN never leaves `observe`, but `Features` is plain data.
        f.values[i % FEATURE_COUNT] = f32::NAN;
        f.values[(i + 5) % FEATURE_COUNT] = f32::INFINITY;
        f.values[(i + 11) % FEATURE_COUNT] = f32::NEG_INFINITY;
        let (walk, tract) = (model.raw(&f).unwrap(), model.raw_tract(&f).unwrap());
        assert!((walk - tract).abs() < 1e-6, "row {i}: {walk} vs {tract}");
        assert!((0.0..=1.0).contains(&walk));
    }
}

#[test]
fn trees_the_walk_cannot_read_are_refused_not_run_through_tract() {
    // tract would run a forest whose branch modes differ, at milliseconds per
    // request; the walk reads one mode per forest and refuses the file.
    let mixed = patched(MODEL, b"nodes_modes", b"BRANCH_LEQ", b"BRANCH_GTE");
    let err = OnnxModel::from_bytes(&mixed).unwrap_err();
    assert!(matches!(err, ModelError::Trees(_)), "{err}");
    let (scorer, error) = Scorer::load(Some(&mixed));
    assert!(error.is_some());
    assert_eq!(scorer.kind(), ScorerKind::Rules);

    // A leaf weight on a node that is not a leaf.
    let misplaced = patched(MODEL, b"nodes_modes", b"LEAF", b"LEAG");
    let err = OnnxModel::from_bytes(&misplaced).unwrap_err();
    assert!(
        matches!(err, ModelError::Trees(_) | ModelError::Parse(_)),
        "{err}"
    );
}
