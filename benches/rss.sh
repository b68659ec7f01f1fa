#!/usr/bin/env bash
# benches/rss.sh: resident memory of gateway binaries as requests go through
# them, to see whether an allocator holds memory or grows with traffic.
#
#   benches/rss.sh BINARY...                              # 10,000,000 requests each
#   REQUESTS=2000000 CHUNK=30s benches/rss.sh /tmp/a /tmp/b
#
# For each binary, on 127.0.0.1: examples/upstream on CPU 0 and the gateway
# (benches/load/gateway.toml, full enforcement) on CPU 1; `wrk -t1 -c32` in
# chunks of $CHUNK with a demo token until $REQUESTS requests have been
# answered (bounded: at most MAX_CHUNKS chunks). After each chunk prints the
# requests so far, VmRSS and VmHWM of the gateway. Every answer must be 2xx.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

die() { echo "rss.sh: $*" >&2; exit 1; }
(($# >= 1)) || die "usage: benches/rss.sh BINARY..."
REQUESTS=${REQUESTS:-10000000}
CHUNK=${CHUNK:-30s}
MAX_CHUNKS=${MAX_CHUNKS:-60}
UPSTREAM_PORT=${UPSTREAM_PORT:-18081}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
CONFIG=benches/load/gateway.toml
[[ $REQUESTS =~ ^[1-9][0-9]*$ ]] || die "REQUESTS must be a positive number"
[[ $CHUNK =~ ^[0-9]+[smh]?$ ]] || die "CHUNK takes a wrk duration such as 30s"
command -v wrk >/dev/null || die "wrk not found"
command -v taskset >/dev/null || die "taskset not found"
[[ -x $TARGET_DIR/release/examples/upstream ]] || die "missing $TARGET_DIR/release/examples/upstream"
for bin in "$@"; do
    [[ -x $bin ]] || die "\`$bin\` is not an executable"
done

READY_TIMEOUT=${READY_TIMEOUT:-20}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sentinel-rss.XXXXXX")
# shellcheck source=support/procs.sh
source "$ROOT/benches/support/procs.sh"
trap 'stop_all; rm -rf "$WORK"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

start upstream taskset -c 0 "$TARGET_DIR/release/examples/upstream" --listen "127.0.0.1:$UPSTREAM_PORT"
wait_ready upstream "$UPSTREAM_PORT"
printf '%-40s %12s %12s %12s\n' binary requests "VmRSS KiB" "VmHWM KiB"
for bin in "$@"; do
    start gateway taskset -c 1 "$bin" run --config "$CONFIG"
    wait_ready gateway 18083
    token=$("$bin" demo-token) || die "cannot mint a demo token"
    printf '%-40s %12s %12s %12s\n' "$bin" 0 "$(kib "$PID_gateway" VmRSS)" "$(kib "$PID_gateway" VmHWM)"
    done_requests=0
    for ((chunk = 1; chunk <= MAX_CHUNKS && done_requests < REQUESTS; chunk++)); do
        out=$(taskset -c 0 wrk -t1 -c32 -d"$CHUNK" -H "Authorization: Bearer $token" \
            "http://127.0.0.1:18083/msw/vessels")
        grep -q Non-2xx <<<"$out" && die "$bin answered non-2xx responses"
        n=$(awk '/ requests in / { print $1 }' <<<"$out")
        done_requests=$((done_requests + n))
        printf '%-40s %12s %12s %12s\n' "$bin" "$done_requests" "$(kib "$PID_gateway" VmRSS)" "$(kib "$PID_gateway" VmHWM)"
    done
    stop gateway
done
