#!/usr/bin/env python3
"""Anomaly scoring on generated traffic: detection rate per attack scenario
and false-positive rate on normal requests (docs/anomaly.md, "Evaluation").

    # generate, replay through the Rust features and the committed model, score:
    python3 benches/anomaly_eval.py --traffic /tmp/traffic.csv
    python3 benches/anomaly_eval.py --traffic /tmp/traffic.csv --rules
    # or read scores a replay already wrote:
    python3 benches/anomaly_eval.py --scores /tmp/scores.csv
    # and record them in the model's evaluation.json (`replay`):
    python3 benches/anomaly_eval.py --scores /tmp/scores.csv --record models/anomaly/evaluation.json

With --traffic missing, it generates the default held-out traffic
(models/anomaly/traffic.py --seed 7) first. Standard library only.

Detection: the share of attack sessions with at least one request stepped up
or blocked (score > step-up threshold). False positives: the share of normal
requests with a score above the step-up threshold. Both on the `test` split
(held-out principals, held-out days) unless --split says otherwise.

Replay source. `replay_local` runs the `anomaly_replay` example (the gateway's
feature and scoring code, in process). The same traffic through a running
gateway, read from its answers (`401 STEP_UP_REQUIRED`, `403 RISK_BLOCKED`):
benches/anomaly_endpoint.py.
"""

import argparse
import collections
import csv
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "models", "anomaly", "model.onnx")
STEP_UP = 0.85
BLOCK = 0.95
ANOMALY = 0.7


def replay_local(traffic, model, out):
    cmd = ["cargo", "run", "--quiet", "-p", "sentinel-risk", "--example", "anomaly_replay",
           "--", "--traffic", traffic, "--out", out]
    if model:
        cmd += ["--model", model]
    subprocess.run(cmd, check=True, cwd=ROOT)


def evaluate(scores, split):
    sessions = collections.defaultdict(dict)
    normal = collections.Counter()
    by = collections.Counter()
    for row in csv.DictReader(open(scores)):
        if split != "all" and row["split"] != split:
            continue
        s = float(row["score"])
        by[row["by"]] += 1
        if row["label"] == "1":
            hit = s > STEP_UP
            key = row["session"]
            sessions[row["scenario"]][key] = sessions[row["scenario"]].get(key, False) or hit
        else:
            normal["requests"] += 1
            normal["anomalous"] += s > ANOMALY
            normal["step_up"] += s > STEP_UP
            normal["block"] += s > BLOCK
    return sessions, normal, by


def record(path, sessions, normal, by, split):
    """Writes the figures into an evaluation.json under `replay`."""
    with open(path) as f:
        data = json.load(f)
    n = max(normal["requests"], 1)
    data["replay"] = {
        "split": split,
        "scored_by": dict(sorted(by.items())),
        "sessions_detected": {k: {"sessions": len(v), "detected": sum(v.values())}
                              for k, v in sorted(sessions.items())},
        "normal_requests": normal["requests"],
        "normal_above_anomaly": normal["anomalous"] / n,
        "normal_above_step_up": normal["step_up"] / n,
        "normal_above_block": normal["block"] / n,
    }
    with open(path, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")


def report(sessions, normal, by):
    print("scored by: %s" % ", ".join("%s %d" % kv for kv in sorted(by.items())))
    print("%-22s %9s %9s" % ("scenario", "sessions", "detected"))
    total = hit = 0
    for scenario in sorted(sessions):
        s = sessions[scenario]
        d = sum(s.values())
        total += len(s)
        hit += d
        print("%-22s %9d %8.1f%%" % (scenario, len(s), 100.0 * d / max(len(s), 1)))
    print("%-22s %9d %8.1f%%" % ("all attacks", total, 100.0 * hit / max(total, 1)))
    n = max(normal["requests"], 1)
    print("normal requests: %d; above anomaly (0.7) %.3f%%, stepped up (>0.85) %.3f%%, "
          "blocked (>0.95) %.3f%%" % (normal["requests"], 100.0 * normal["anomalous"] / n,
                                      100.0 * normal["step_up"] / n, 100.0 * normal["block"] / n))
    worst = min((sum(s.values()) / max(len(s), 1) for s in sessions.values()), default=0.0)
    fpr = normal["step_up"] / n
    ok = worst >= 0.9 and fpr < 0.01
    print("aim (every scenario >= 90 %% detected, < 1 %% of normal requests stepped up): %s"
          % ("met" if ok else "NOT met"))
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--traffic", help="traffic CSV (models/anomaly/traffic.py)")
    ap.add_argument("--scores", help="scores CSV already written by anomaly_replay")
    ap.add_argument("--model", default=MODEL)
    ap.add_argument("--rules", action="store_true", help="score with the rule fallback")
    ap.add_argument("--split", default="test", choices=["train", "test", "all"])
    ap.add_argument("--endpoint", help="replay through a running gateway (not built yet)")
    ap.add_argument("--record", metavar="EVALUATION_JSON",
                    help="also write the figures into this file's `replay` section")
    args = ap.parse_args()
    if args.endpoint:
        sys.exit("--endpoint: replay through a gateway is not built yet (see this file's doc)")
    scores = args.scores
    if not scores:
        tmp = tempfile.mkdtemp(prefix="anomaly-eval-")
        traffic = args.traffic
        if not traffic:
            traffic = os.path.join(tmp, "traffic.csv")
            subprocess.run([sys.executable, os.path.join(ROOT, "models", "anomaly", "traffic.py"),
                            "--seed", "7", "--out", traffic], check=True)
        scores = os.path.join(tmp, "scores.csv")
        replay_local(traffic, None if args.rules else args.model, scores)
    figures = evaluate(scores, args.split)
    ok = report(*figures)
    if args.record:
        record(args.record, *figures, args.split)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
