#!/usr/bin/env bash
# benches/biometrics.sh: the biometric figures of docs/PERFORMANCE.md
# ("Risk signals") and docs/biometrics.md.
#
#   benches/biometrics.sh                   # Balabit impostor protocol + keystroke EER, in process
#   ONLY=balabit benches/biometrics.sh      # one of them (balabit | keystroke)
#   BALABIT_ARGS="--holdout 3" benches/biometrics.sh
#   CMU=/path/DSL-StrongPasswordData.csv benches/biometrics.sh   # real CMU keystroke data
#
# Unpacks ../shared/datasets/balabit-training.tar.gz into /tmp/balabit (never
# into the repository). The examples are built optimised but without the
# release profile's fat LTO (minutes saved; the figures do not depend on it),
# inside the shared build lock. The same protocol through a running
# gateway's POST /.sentinel/biometrics: benches/biometrics_endpoint.sh.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DATASET=${DATASET:-$ROOT/../shared/datasets/balabit-training.tar.gz}
DATA=${DATA:-/tmp/balabit}
ONLY=${ONLY:-}

if [[ -z "$ONLY" || "$ONLY" == balabit ]] && [[ ! -d "$DATA/training_files" ]]; then
    [[ -f "$DATASET" ]] || { echo "no data set at $DATASET (set DATASET=...)" >&2; exit 2; }
    mkdir -p "$DATA"
    tar -xzf "$DATASET" -C "$DATA"
fi

export CARGO_PROFILE_RELEASE_LTO=false
export CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
export CARGO_PROFILE_RELEASE_DEBUG=0
cd "$ROOT"
flock /tmp/cargo-build.lock cargo build --release -p sentinel-risk \
    --example balabit_eval --example keystroke_eval
BIN="$ROOT/target/release/examples"

if [[ -z "$ONLY" || "$ONLY" == balabit ]]; then
    echo "== Balabit Mouse Dynamics Challenge (training part), impostor protocol"
    # shellcheck disable=SC2086
    "$BIN/balabit_eval" --data "$DATA/training_files" ${BALABIT_ARGS:-}
fi
if [[ -z "$ONLY" || "$ONLY" == keystroke ]]; then
    echo "== Keystroke EER, CMU protocol"
    if [[ -n "${CMU:-}" ]]; then
        "$BIN/keystroke_eval" --cmu "$CMU"
    else
        "$BIN/keystroke_eval"
    fi
fi
