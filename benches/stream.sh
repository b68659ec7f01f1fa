#!/usr/bin/env bash
# benches/stream.sh: 100 MB through a streamed bound route of the release
# gateway (`fields.stream = true`): peak RSS growth and MB/s per CPU-second.
#
# Starts, all on 127.0.0.1:
#   bulk upstream  a small Python server: GET /stream/vessels -> SIZE_MB of
#                  `{"data":[vessel, …],"count":N}`, chunked, 64 KiB chunks
#   gateway        target/release/sentinel run --config benches/load/gateway-stream.toml
# then fetches the route ROUNDS times with curl (as a demo viewer: the
# filter removes and masks fields of every entity) and prints per round the
# bytes in and out, wall time, the gateway's CPU time (user + system, from
# /proc/PID/stat), MB/s per CPU-second (input MB over gateway CPU seconds),
# and the gateway's resident memory before the round and at its peak
# (VmHWM, reset before each round via /proc/PID/clear_refs).
#
#   benches/stream.sh                       # 100 MB, 3 rounds
#   SIZE_MB=20 ROUNDS=1 benches/stream.sh   # quicker
#   SKIP_BUILD=1 benches/stream.sh          # reuse target/release/sentinel
#
# The aim (issue 26): >= 500 MB/s per core, RSS growth under 16 MiB.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

SIZE_MB=${SIZE_MB:-100}
ROUNDS=${ROUNDS:-3}
UPSTREAM_PORT=${UPSTREAM_PORT:-18091}
GATEWAY_CONFIG=${GATEWAY_CONFIG:-benches/load/gateway-stream.toml}
GATEWAY_PORT=${GATEWAY_PORT:-18093}
READY_TIMEOUT=${READY_TIMEOUT:-20}
SKIP_BUILD=${SKIP_BUILD:-0}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
PYTHON=${PYTHON:-python3}

die() { echo "stream.sh: $*" >&2; exit 1; }
note() { echo "stream.sh: $*" >&2; }

command -v curl >/dev/null || die "curl not found"
command -v "$PYTHON" >/dev/null || die "python3 not found (set PYTHON)"
[[ $SIZE_MB =~ ^[1-9][0-9]*$ ]] || die "SIZE_MB must be a positive number"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive number"
grep -q "127\.0\.0\.1:$UPSTREAM_PORT\b" "$GATEWAY_CONFIG" ||
    die "\`$GATEWAY_CONFIG\` does not route to 127.0.0.1:$UPSTREAM_PORT"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sentinel-stream.XXXXXX")
# shellcheck source=support/procs.sh
source "$ROOT/benches/support/procs.sh"
cleanup() {
    stop_all
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for port in "$UPSTREAM_PORT" "$GATEWAY_PORT"; do
    if port_open "$port"; then die "127.0.0.1:$port is already in use"; fi
done

if [[ $SKIP_BUILD != 1 ]]; then
    note "building: cargo build --release --bin sentinel"
    cargo build --release --bin sentinel >&2
fi
GATEWAY_BIN=$TARGET_DIR/release/sentinel
[[ -x $GATEWAY_BIN ]] || die "missing $GATEWAY_BIN (build it, or unset SKIP_BUILD)"
TOKEN=$("$GATEWAY_BIN" demo-token) || die "cannot mint a demo token"

# The upstream: one entity block generated once, repeated until SIZE_MB.
cat >"$WORK/upstream.py" <<'PY'
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, SIZE = int(sys.argv[1]), int(sys.argv[2]) * 1_000_000
VESSEL = (b'{"id":"v-lab","tenant_id":"11111111-1111-1111-1111-111111111111",'
          b'"name":"Lab Vessel","imo":"9395044","flag":"NO","vessel_type":"container",'
          b'"gross_tonnage":54214,"eco_score":78.5,"crew_count":22,'
          b'"charter_rate_usd":28500,"crew_salary_budget":"SECRET-1450000"}')
PER_BLOCK = 200
BLOCK = b",".join([VESSEL] * PER_BLOCK)

def chunk(w, data):
    w.write(b"%x\r\n%s\r\n" % (len(data), data))

class Bulk(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def do_GET(self):
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        chunk(self.wfile, b'{"data":[')
        sent, n = 0, 0
        while sent < SIZE:
            data = BLOCK if n == 0 else b"," + BLOCK
            chunk(self.wfile, data)
            sent += len(data)
            n += 1
        chunk(self.wfile, b'],"count":%d}' % (n * PER_BLOCK))
        self.wfile.write(b"0\r\n\r\n")

ThreadingHTTPServer(("127.0.0.1", PORT), Bulk).serve_forever()
PY

start upstream "$PYTHON" "$WORK/upstream.py" "$UPSTREAM_PORT" "$SIZE_MB"
wait_ready upstream "$UPSTREAM_PORT"
start gateway "$GATEWAY_BIN" run --config "$GATEWAY_CONFIG"
wait_ready gateway "$GATEWAY_PORT"

CLK_TCK=$(getconf CLK_TCK)
kib() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status"; }
now() { date +%s.%N; }

# Upstream alone (what the source can deliver), for reference.
up=$(curl -sS -o /dev/null -w '%{size_download} %{time_total}' "http://127.0.0.1:$UPSTREAM_PORT/stream/vessels")
note "upstream direct: $up (bytes, seconds)"
in_bytes=${up%% *}

# One warm-up request so that first-request allocations are not counted.
curl -sS -o /dev/null -H "authorization: Bearer $TOKEN" "http://127.0.0.1:$GATEWAY_PORT/stream/vessels"

printf '%-6s %12s %12s %8s %8s %12s %10s %10s %10s\n' \
    round in_bytes out_bytes wall_s cpu_s 'MB/s/cpu-s' rss_kib peak_kib growth_kib
for ((r = 1; r <= ROUNDS; r++)); do
    echo 5 >"/proc/$PID_gateway/clear_refs" 2>/dev/null || note "cannot reset VmHWM (peak is since start)"
    rss0=$(kib "$PID_gateway" VmRSS)
    c0=$(cpu_ticks "$PID_gateway") t0=$(now)
    read -r out_bytes code < <(curl -sS -o "$WORK/body.json" -w '%{size_download} %{http_code}\n' \
        -H "authorization: Bearer $TOKEN" "http://127.0.0.1:$GATEWAY_PORT/stream/vessels")
    t1=$(now) c1=$(cpu_ticks "$PID_gateway")
    peak=$(kib "$PID_gateway" VmHWM)
    [[ $code == 200 ]] || die "gateway answered $code: $(head -c 300 "$WORK/body.json")"
    ! grep -q SECRET-1450000 "$WORK/body.json" || die "hidden field in the output"
    awk -v r="$r" -v i="$in_bytes" -v o="$out_bytes" -v t0="$t0" -v t1="$t1" \
        -v c=$((c1 - c0)) -v hz="$CLK_TCK" -v rss="$rss0" -v peak="$peak" 'BEGIN {
        cpu = c / hz; if (cpu <= 0) cpu = 1 / hz
        printf "%-6d %12d %12d %8.2f %8.2f %12.0f %10d %10d %10d\n",
            r, i, o, t1 - t0, cpu, i / 1e6 / cpu, rss, peak, peak - rss
    }'
done
