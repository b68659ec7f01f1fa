#!/usr/bin/env bash
# benches/biometrics_endpoint.sh: the Balabit impostor protocol of
# benches/biometrics.sh replayed THROUGH A RUNNING GATEWAY's
# POST /.sentinel/biometrics (docs/PERFORMANCE.md, "Risk signals").
#
#   benches/biometrics_endpoint.sh                     # dev build, every 4th test piece
#   PROFILE=release MAX_PIECES=100000 benches/biometrics_endpoint.sh   # the lead's full run
#   BALABIT_ARGS="--holdout 3" benches/biometrics_endpoint.sh
#
# Starts `sentinel run` on free loopback ports with the bundled config plus
# one principal per Balabit user (tokens from `sentinel demo-token`), and runs
# `balabit_eval --endpoint`: same splits, pieces and metrics as the in-process
# run, every batch an HTTP post. Unpacks the data set into /tmp/balabit,
# never into the repository.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DATASET=${DATASET:-$ROOT/../shared/datasets/balabit-training.tar.gz}
DATA=${DATA:-/tmp/balabit}
PROFILE=${PROFILE:-dev}
MAX_PIECES=${MAX_PIECES:-130}
NORDIC=11111111-1111-1111-1111-111111111111

if [[ ! -d "$DATA/training_files" ]]; then
    [[ -f "$DATASET" ]] || { echo "no data set at $DATASET (set DATASET=...)" >&2; exit 2; }
    mkdir -p "$DATA"
    tar -xzf "$DATASET" -C "$DATA"
fi

cd "$ROOT"
if [[ "$PROFILE" == release ]]; then
    export CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
    flock /tmp/cargo-build.lock cargo build --release -p sentinel --bin sentinel -p sentinel-risk --example balabit_eval
    BIN=$ROOT/target/release
else
    flock /tmp/cargo-build.lock cargo build -p sentinel --bin sentinel -p sentinel-risk --example balabit_eval
    BIN=$ROOT/target/debug
fi

WORK=$(mktemp -d /tmp/sentinel-bio-endpoint.XXXXXX)
GW_PID=
cleanup() { [[ -n "$GW_PID" ]] && kill "$GW_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
cp -r config/routes config/policy config/keys "$WORK/"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PROXY=127.0.0.1:$(port)
OPS=127.0.0.1:$(port)
sed -e "s/127.0.0.1:8080/$PROXY/" -e "s/127.0.0.1:9090/$OPS/" config/sentinel.toml > "$WORK/sentinel.toml"
cat >> "$WORK/sentinel.toml" <<TOML

[risk.biometrics]
# A replay posts faster than a page; the endpoint's own limit is not measured here.
batches_per_second = 100000
burst = 100000
TOML

: > "$WORK/tokens.txt"
: > "$WORK/policy/zz-balabit.toml"
i=0
for dir in "$DATA"/training_files/*/; do
    user=$(basename "$dir")
    i=$((i + 1))
    id=$(printf 'eeeeeeee-0000-4000-8000-%012d' "$i")
    cat >> "$WORK/policy/zz-balabit.toml" <<TOML
[[principals]]
id = "$id"
tenant = "$NORDIC"
name = "Balabit $user"
roles = ["viewer"]

TOML
    echo "$user $("$BIN/sentinel" demo-token --principal "$id" --tenant "$NORDIC" --ttl 86400)" >> "$WORK/tokens.txt"
done

SENTINEL_LOG=warn "$BIN/sentinel" run --config "$WORK/sentinel.toml" 2> "$WORK/gateway.log" &
GW_PID=$!
for _ in $(seq 200); do
    curl -fs "http://$OPS/readyz" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fs "http://$OPS/readyz" >/dev/null || { cat "$WORK/gateway.log" >&2; exit 1; }

echo "== Balabit impostor protocol through POST /.sentinel/biometrics ($PROFILE gateway at $PROXY)"
# shellcheck disable=SC2086
"$BIN/examples/balabit_eval" --data "$DATA/training_files" --endpoint "$PROXY" \
    --tokens "$WORK/tokens.txt" --max-pieces "$MAX_PIECES" ${BALABIT_ARGS:-}
