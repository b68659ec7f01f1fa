#!/usr/bin/env bash
# benches/instructions.sh: CPU instructions per request of each proxy, counted
# by callgrind. Unlike requests/s (benches/load.sh), the count does not move
# with what else the machine is doing, so it shows changes of a few percent.
#
# For each target, on 127.0.0.1: starts examples/upstream natively and the
# target under `valgrind --tool=callgrind` (release build, one worker thread),
# warms it up with wrk, zeroes the counters, applies a bounded load (wrk -t1
# -c4 for $DURATION), dumps the counters and divides the instructions (Ir) by
# the requests wrk completed. Every request must answer 200.
#
#   benches/instructions.sh                       # passthrough, public, gateway
#   TARGETS="gateway" benches/instructions.sh     # one target
#   SKIP_BUILD=1 DURATION=5s benches/instructions.sh
#
# Targets:
#   passthrough          examples/passthrough (bare Pingora, no timeouts)
#   passthrough-timeouts the same with the gateway's peer timeouts
#   public               the gateway, route `auth = "public"` (benches/load/gateway-public.toml)
#   gateway              the gateway, full enforcement (benches/load/gateway.toml)
#   config:PATH          the gateway with another config (its [listen] proxy port,
#                        upstream on 18081; e.g. config:benches/load/gateway-shadow.toml)
#
# Under valgrind sha2 cannot use the CPU's SHA extensions: until 2026-12-01
# the gateway hashed every bearer token with SHA-256 for its token-cache key,
# ~28k instructions under valgrind that the native binary did in well under a
# microsecond. The report still gives the count without `sha2::` functions,
# so that figures from before and after that change compare.
# CALLGRIND_KEEP=DIR keeps the dumps (for callgrind_annotate).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

TARGETS=${TARGETS:-passthrough public gateway}
UPSTREAM_PORT=${UPSTREAM_PORT:-18081}
PROXY_PORT=${PROXY_PORT:-18082}   # the passthrough's; the gateway's is in its config
REQUEST_PATH=${REQUEST_PATH:-/msw/vessels}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-5s}
READY_TIMEOUT=${READY_TIMEOUT:-90}
SKIP_BUILD=${SKIP_BUILD:-0}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
WRK=${WRK:-wrk}

die() { echo "instructions.sh: $*" >&2; exit 1; }
note() { echo "instructions.sh: $*" >&2; }

for tool in "$WRK" valgrind callgrind_control; do
    command -v "$tool" >/dev/null || die "$tool not found"
done
[[ $DURATION =~ ^[0-9]+[sm]?$ && $WARMUP =~ ^[0-9]+[sm]?$ ]] || die "DURATION and WARMUP take wrk durations such as 10s"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sentinel-instr.XXXXXX")
# shellcheck source=support/procs.sh
source "$ROOT/benches/support/procs.sh"
cleanup() {
    stop_all
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ $SKIP_BUILD != 1 ]]; then
    note "building: cargo build --release --examples --bin sentinel"
    cargo build --release --examples --bin sentinel >&2
fi
BIN=$TARGET_DIR/release
TOKEN=$("$BIN/sentinel" demo-token) || die "cannot mint a demo token"

for port in "$UPSTREAM_PORT" "$PROXY_PORT" 18083; do
    port_open "$port" && die "127.0.0.1:$port is already in use"
done
start upstream "$BIN/examples/upstream" --listen "127.0.0.1:$UPSTREAM_PORT"
wait_ready upstream "$UPSTREAM_PORT"

# wrk's completed requests ("N requests in 10.00s") with every answer a 200.
run_wrk() {
    local port=$1 duration=$2 out=$3
    "$WRK" -t1 -c4 -d"$duration" -H "Authorization: Bearer $TOKEN" \
        "http://127.0.0.1:$port$REQUEST_PATH" >"$out"
    if grep -q "Non-2xx" "$out"; then
        cat "$out" >&2
        die "non-200 answers"
    fi
    awk '/requests in/ { print $1 }' "$out"
}

printf '%-22s %10s %14s %14s\n' target requests "Ir/request" "without sha2"
for target in $TARGETS; do
    env=()
    # A file-name form of the target (config:PATH holds slashes).
    name=${target//[^A-Za-z0-9_.-]/_}
    case $target in
        passthrough | passthrough-timeouts)
            [[ $target == passthrough-timeouts ]] && env=(PASSTHROUGH_TIMEOUTS=1)
            cmd=("$BIN/examples/passthrough" --listen "127.0.0.1:$PROXY_PORT" --upstream "127.0.0.1:$UPSTREAM_PORT" --threads 1)
            port=$PROXY_PORT ;;
        public) cmd=("$BIN/sentinel" run --config benches/load/gateway-public.toml); port=18083 ;;
        gateway) cmd=("$BIN/sentinel" run --config benches/load/gateway.toml); port=18083 ;;
        # Any gateway config proxying on 127.0.0.1:18083 to the upstream on 18081.
        config:*)
            cmd=("$BIN/sentinel" run --config "${target#config:}")
            port=$(sed -nE 's/^proxy *= *"[^"]*:([0-9]+)".*/\1/p' "${target#config:}" | head -n 1)
            [[ -n $port ]] || die "no [listen] proxy port in ${target#config:}" ;;
        *) die "unknown target \`$target\`" ;;
    esac
    start proxy env "${env[@]}" valgrind --tool=callgrind \
        --callgrind-out-file="$WORK/cg.$name.%p" "${cmd[@]}"
    wait_ready proxy "$port"
    pid=$PID_proxy  # env execs valgrind, which keeps the pid
    run_wrk "$port" "$WARMUP" "$WORK/warmup.$name" >/dev/null
    # The counters of the process that runs the workers (valgrind's pid).
    callgrind_control -z "$pid" >/dev/null
    requests=$(run_wrk "$port" "$DURATION" "$WORK/run.$name")
    callgrind_control -d "$pid" >/dev/null
    sleep 1
    # `callgrind_control -d` writes the first dump as <out-file>.1.
    dump=$WORK/cg.$name.$pid.1
    [[ -s $dump ]] || die "no callgrind dump for $target at $dump"
    total=$(awk '/^(summary|totals):/ { print $2; exit }' "$dump")
    sha=$(callgrind_annotate --auto=no --threshold=100 "$dump" 2>/dev/null |
        awk '/sha2::/ { gsub(",", "", $1); s += $1 } END { print s + 0 }')
    [[ -n $total && $requests -gt 0 ]] || die "no count for $target"
    awk -v t="$target" -v n="$requests" -v ir="$total" -v sha="$sha" 'BEGIN {
        printf "%-22s %10d %14.0f %14.0f\n", t, n, ir / n, (ir - sha) / n
    }'
    [[ -n ${CALLGRIND_KEEP:-} ]] && mkdir -p "$CALLGRIND_KEEP" && cp "$dump" "$CALLGRIND_KEEP/$name.callgrind"
    stop proxy
done
