#!/usr/bin/env bash
# benches/ab.sh: CPU time per request of two gateway binaries, side by side.
#
#   benches/ab.sh OLD_BINARY NEW_BINARY             # 8 rounds of 5 s each
#   ROUNDS=4 DURATION=3s benches/ab.sh /tmp/sentinel.old target/release/sentinel
#
# Starts, all on 127.0.0.1: examples/upstream on CPU 0, and both gateways
# (the same config, benches/load/gateway.toml, the second one on other
# ports) on CPU 1. Each round runs `wrk -t1 -c32` (on CPU 0) against one
# gateway and then the other, alternating which goes first, and reads the
# CPU time the gateway spent per request (user + system of all its threads,
# /proc/PID/stat). Prints every run, then the mean and median per binary.
#
# Why: on the shared 2-vCPU machine requests/s moves by 10-20 % between
# rounds, while two binaries measured in the same minutes on the same core
# compare to within a few percent (docs/PERFORMANCE.md, "Timers,
# credentials and the token-cache key"). Needs taskset, two CPUs, wrk and
# a release build of the examples (cargo build --release --examples).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

die() { echo "ab.sh: $*" >&2; exit 1; }
(($# == 2)) || die "usage: benches/ab.sh OLD_BINARY NEW_BINARY"
OLD=$1 NEW=$2
for bin in "$OLD" "$NEW"; do
    [[ -x $bin ]] || die "\`$bin\` is not an executable"
done
ROUNDS=${ROUNDS:-8}
DURATION=${DURATION:-5s}
UPSTREAM_PORT=${UPSTREAM_PORT:-18081}
READY_TIMEOUT=${READY_TIMEOUT:-20}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
CONFIG=benches/load/gateway.toml
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive number, not \`$ROUNDS\`"
[[ $DURATION =~ ^[0-9]+[smh]?$ ]] || die "DURATION takes a wrk duration such as 5s"
command -v wrk >/dev/null || die "wrk not found"
command -v taskset >/dev/null || die "taskset not found"
(($(nproc) >= 2)) || die "needs two CPUs"
[[ -x $TARGET_DIR/release/examples/upstream ]] || die "missing $TARGET_DIR/release/examples/upstream"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sentinel-ab.XXXXXX")
# The second gateway's config sits beside the first (its paths are relative
# to it) and differs only in its listen ports.
SECOND=benches/load/.ab-second-$$.toml
# shellcheck source=support/procs.sh
source "$ROOT/benches/support/procs.sh"
cleanup() {
    stop_all
    rm -f "$SECOND"
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

sed 's/127\.0\.0\.1:18083/127.0.0.1:18093/; s/127\.0\.0\.1:18084/127.0.0.1:18094/' "$CONFIG" >"$SECOND"
grep -q '127.0.0.1:18093' "$SECOND" || die "\`$CONFIG\` no longer listens on 127.0.0.1:18083"
for port in "$UPSTREAM_PORT" 18083 18084 18093 18094; do
    port_open "$port" && die "127.0.0.1:$port is already in use"
done

start upstream taskset -c 0 "$TARGET_DIR/release/examples/upstream" --listen "127.0.0.1:$UPSTREAM_PORT"
wait_ready upstream "$UPSTREAM_PORT"
start old taskset -c 1 "$OLD" run --config "$CONFIG"
start new taskset -c 1 "$NEW" run --config "$SECOND"
wait_ready old 18083
wait_ready new 18093
TOKEN=$("$NEW" demo-token) || die "cannot mint a demo token"

HZ=$(getconf CLK_TCK)

# run PID PORT DURATION: prints "CPU_US_PER_REQUEST REQUESTS_PER_S", or
# "bad" when wrk saw non-2xx answers or no requests (the caller dies: this
# runs in a subshell).
run() {
    local c0 c1 out
    c0=$(cpu_ticks "$1")
    out=$(taskset -c 0 wrk -t1 -c32 -d"$3" -H "Authorization: Bearer $TOKEN" \
        "http://127.0.0.1:$2/msw/vessels")
    c1=$(cpu_ticks "$1")
    awk -v c=$((c1 - c0)) -v hz="$HZ" '
        / requests in / { n = $1 }
        /^Requests\/sec:/ { r = $2 }
        /Non-2xx/ { bad = 1 }
        END { if (bad || n == 0) print "bad"; else printf "%.2f %.0f\n", c / hz / n * 1e6, r }' <<<"$out"
}

run "$PID_old" 18083 2s >/dev/null
run "$PID_new" 18093 2s >/dev/null
printf '%-6s %-5s %14s %12s\n' round which "CPU µs/req" "requests/s"
: >"$WORK/cpu"
for ((round = 1; round <= ROUNDS; round++)); do
    if ((round % 2 == 1)); then order=(old new); else order=(new old); fi
    for which in "${order[@]}"; do
        pid_var="PID_$which"
        port=18083
        [[ $which == new ]] && port=18093
        read -r cpu rps < <(run "${!pid_var}" "$port" "$DURATION")
        [[ $cpu != bad ]] || die "$which answered non-2xx responses (or none)"
        printf '%-6s %-5s %14s %12s\n' "$round" "$which" "$cpu" "$rps"
        echo "$which $cpu" >>"$WORK/cpu"
    done
done
echo
for which in old new; do
    awk -v w="$which" '$1 == w { print $2 }' "$WORK/cpu" | sort -g | awk -v w="$which" '
        { v[NR] = $1; s += $1 }
        END {
            med = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            printf "%-4s mean %6.2f µs/req   median %6.2f µs/req   (%d runs)\n", w, s / NR, med, NR
        }'
done
awk '{ s[$1] += $2; n[$1]++ } END {
    printf "new/old (means): %.3f\n", (s["new"] / n["new"]) / (s["old"] / n["old"])
}' "$WORK/cpu"
