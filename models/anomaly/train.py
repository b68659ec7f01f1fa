#!/usr/bin/env python3
"""Trains the anomaly model on features computed by the gateway's own feature
code, calibrates it, exports ONNX and records its evaluation
(docs/anomaly.md, "Retraining").

    python3 -m venv /tmp/venv-anomaly
    /tmp/venv-anomaly/bin/pip install -r models/anomaly/requirements.txt
    python3 models/anomaly/traffic.py --seed 7 --out /tmp/traffic.csv
    cargo run -p sentinel-risk --example anomaly_replay -- \
        --traffic /tmp/traffic.csv --out /tmp/features.csv --features
    /tmp/venv-anomaly/bin/python models/anomaly/train.py --features /tmp/features.csv

Writes, next to this file: model.onnx (with the feature names and the
calibration in its metadata), fixture.json (inputs and the scikit-learn
outputs the Rust test compares tract's with) and evaluation.json.
"""

import argparse
import csv
import hashlib
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime
import sklearn
import skl2onnx
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import roc_auc_score
from skl2onnx import to_onnx

HERE = os.path.dirname(os.path.abspath(__file__))

# +1: the score may only rise with the feature; -1: only fall; 0: free. Every
# novelty, rate, breadth, denial and failure feature is constrained, so the
# model cannot learn that more of an attack signal is safer: a property of the
# signal's meaning, not of the generator.
MONOTONE = {
    "maturity": 0, "hour_week_share": -1, "hour_day_share": -1, "network_new": 1,
    "networks_known": 0, "route_new": 1, "rate_1m": 1, "rate_ratio": 1, "requests_1h": 0,
    "breadth_1h": 1, "breadth_ratio": 1, "distinct_share_1h": 1, "denials_1h": 1, "denial_share_1h": 1,
    "auth_failures_principal_1h": 1, "auth_failures_address_1h": 1,
    "address_principals_1h": 0, "sensitivity": 0, "sensitive_share_1h": 0, "write": 0,
    "write_share_delta": 0, "biometric_present": 0, "biometric_score": 1,
    "service_account": 0,
}

# Calibration: the score at which a given share of (held-out) normal requests
# lies above. 0.7 (anomaly) ~ 1 in 200, 0.85 (step-up) ~ 1 in 333,
# 0.95 (block) ~ 1 in 2,000.
TAILS = [(0.5, 0.10), (0.1, 0.35), (0.02, 0.55), (0.005, 0.70), (0.003, 0.85), (0.0005, 0.95)]

# A random forest: scikit-learn's gradient boosting takes no monotone
# constraints (its histogram variant does, but skl2onnx 1.20 cannot export it),
# and tract runs a forest as one ONNX-ML TreeEnsembleClassifier.
PARAMS = dict(n_estimators=60, max_depth=8, min_samples_leaf=20, max_samples=0.3,
              max_features=0.5, random_state=0, n_jobs=2)


def load(path):
    with open(path) as f:
        r = csv.reader(f)
        header = next(r)
        names = header[9:]
        rows = list(r)
    x = np.array([[float(v) for v in row[9:]] for row in rows], dtype=np.float32)
    y = np.array([int(row[2]) for row in rows])
    split = np.array([row[5] for row in rows])
    principal = np.array([row[1] for row in rows])
    scenario = np.array([row[3] for row in rows])
    return names, x, y, split, principal, scenario


def calibration(raw_normal):
    knots = [(0.0, 0.0)]
    for tail, score in TAILS:
        q = float(np.quantile(raw_normal, 1.0 - tail))
        if q > knots[-1][0] + 1e-6 and q < 1.0 - 1e-6:
            knots.append((q, score))
    knots.append((1.0, 1.0))
    return knots


def apply(knots, raw):
    xs, ys = zip(*knots)
    return np.interp(raw, xs, ys)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--features", required=True, help="anomaly_replay --features output")
    ap.add_argument("--name", default="anomaly-gbdt")
    ap.add_argument("--version", default="1")
    ap.add_argument("--out", default=HERE)
    args = ap.parse_args()

    names, x, y, split, principal, scenario = load(args.features)
    unknown = set(names) - set(MONOTONE)
    if unknown:
        sys.exit("no monotone constraint for %s" % sorted(unknown))
    train = split == "train"
    # Calibrate on a quarter of the training principals the trees never see.
    held = np.array([int(hashlib.sha256(p.encode()).hexdigest(), 16) % 4 == 0 for p in principal])
    fit = train & ~held
    cal = train & held
    test = split == "test"

    model = RandomForestClassifier(monotonic_cst=[MONOTONE[n] for n in names], **PARAMS)
    model.fit(x[fit], y[fit])
    raw_cal = model.predict_proba(x[cal])[:, 1]
    knots = calibration(raw_cal[y[cal] == 0])

    onx = to_onnx(model, x[:1], options={id(model): {"zipmap": False}},
                  target_opset={"": 17, "ai.onnx.ml": 3})
    meta = {
        "sentinel.features": ",".join(names),
        "sentinel.calibration": ",".join("%.9g:%.9g" % k for k in knots),
        "sentinel.name": args.name,
        "sentinel.version": args.version,
    }
    for k, v in meta.items():
        p = onx.metadata_props.add()
        p.key, p.value = k, v
    data = onx.SerializeToString()
    path = os.path.join(args.out, "model.onnx")
    with open(path, "wb") as f:
        f.write(data)
    digest = hashlib.sha256(data).hexdigest()
    with open(path + ".sha256", "w") as f:
        f.write("%s  model.onnx\n" % digest)

    # A model with the right metadata and the wrong input width, for the test
    # that the gateway refuses it.
    sample = np.flatnonzero(fit)[::97]
    tiny = RandomForestClassifier(n_estimators=2, max_depth=2, random_state=0)
    tiny.fit(x[sample, :5], y[sample])
    bad = to_onnx(tiny, x[:1, :5], options={id(tiny): {"zipmap": False}},
                  target_opset={"": 17, "ai.onnx.ml": 3})
    for k, v in meta.items():
        p = bad.metadata_props.add()
        p.key, p.value = k, v
    os.makedirs(os.path.join(args.out, "testdata"), exist_ok=True)
    with open(os.path.join(args.out, "testdata", "wrong_width.onnx"), "wb") as f:
        f.write(bad.SerializeToString())

    # ONNX (onnxruntime) against scikit-learn on the held-out rows.
    sess = onnxruntime.InferenceSession(data)
    raw_test = model.predict_proba(x[test])[:, 1]
    ort_test = sess.run(["probabilities"], {sess.get_inputs()[0].name: x[test]})[0][:, 1]
    ort_diff = float(np.max(np.abs(ort_test - raw_test)))

    # Fixture for the Rust agreement test: held-out rows of every kind plus
    # the corners of the feature space.
    rng = np.random.default_rng(0)
    pick = []
    for s in sorted(set(scenario[test])):
        ix = np.flatnonzero(test & (scenario == s))
        pick += list(rng.choice(ix, size=min(40, len(ix)), replace=False))
    fx = np.concatenate([x[pick], np.zeros((1, x.shape[1]), np.float32),
                         np.full((1, x.shape[1]), 12.0, np.float32).clip(None, None)])
    fx[-1] = np.minimum(fx[-1], [1.0 if n in ("maturity", "hour_week_share", "hour_day_share",
                                               "network_new", "networks_known", "route_new",
                                               "denial_share_1h", "distinct_share_1h", "sensitivity",
                                               "sensitive_share_1h", "write", "write_share_delta",
                                               "biometric_present", "biometric_score",
                                               "service_account") else 12.0 for n in names])
    fraw = model.predict_proba(fx)[:, 1]
    fixture = {
        "model_sha256": digest,
        "features": names,
        "inputs": fx.tolist(),
        "raw": fraw.tolist(),
        "score": apply(knots, fraw).tolist(),
    }
    with open(os.path.join(args.out, "fixture.json"), "w") as f:
        json.dump(fixture, f, indent=None, separators=(",", ":"))
        f.write("\n")

    score_test = apply(knots, raw_test)
    normal, attack = y[test] == 0, y[test] == 1
    evaluation = {
        "model": {"name": args.name, "version": args.version, "sha256": digest,
                  "bytes": len(data), "type": "RandomForestClassifier", "params": PARAMS,
                  "monotone": MONOTONE},
        "packages": {"scikit-learn": sklearn.__version__, "skl2onnx": skl2onnx.__version__,
                     "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
                     "numpy": np.__version__},
        "rows": {"fit": int(fit.sum()), "calibration": int(cal.sum()), "test": int(test.sum()),
                 "fit_attacks": int(y[fit].sum()), "test_attacks": int(y[test].sum())},
        "calibration": {"tails": TAILS, "knots": knots},
        "onnxruntime_max_abs_diff": ort_diff,
        "held_out_requests": {
            "roc_auc": float(roc_auc_score(y[test], raw_test)),
            "normal_above_anomaly": float(np.mean(score_test[normal] > 0.7)),
            "normal_above_step_up": float(np.mean(score_test[normal] > 0.85)),
            "normal_above_block": float(np.mean(score_test[normal] > 0.95)),
            "attack_requests_above_step_up": float(np.mean(score_test[attack] > 0.85)),
        },
        "feature_importance": dict(sorted(zip(names, map(float, model.feature_importances_)),
                                          key=lambda kv: -kv[1])),
    }
    with open(os.path.join(args.out, "evaluation.json"), "w") as f:
        json.dump(evaluation, f, indent=2)
        f.write("\n")
    print(json.dumps({k: evaluation[k] for k in ("model", "rows", "held_out_requests")},
                     indent=2))
    print("onnxruntime vs scikit-learn max |diff|: %.2e" % ort_diff)


if __name__ == "__main__":
    main()
