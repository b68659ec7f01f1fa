#!/usr/bin/env bash
# benches/load.sh: what the gateway costs over a bare Pingora passthrough.
#
# Starts, all on 127.0.0.1:
#   upstream     examples/upstream.rs: every request -> 200, 1024-byte JSON
#   passthrough  examples/passthrough.rs: bare Pingora ProxyHttp -> upstream
#   gateway      target/release/sentinel run --config "$GATEWAY_CONFIG"
# then runs wrk against passthrough and gateway with the same settings,
# alternating the order each round (ABBA...) to cancel drift, and prints
# requests/s, the throughput ratio gateway/passthrough, p99 of each and the
# added p99. Every process it starts is stopped on exit.
#
# Without "$GATEWAY_CONFIG" it says so and compares passthrough with the
# upstream called directly (what Pingora itself costs).
#
#   benches/load.sh                               # defaults: 3 rounds of 10 s each, -t1 -c32
#   ROUNDS=1 DURATION=5s benches/load.sh          # quicker
#   SKIP_BUILD=1 benches/load.sh                  # reuse the release binaries
#   NO_GATEWAY=1 benches/load.sh                  # passthrough vs upstream only
#   FIELDS=1 benches/load.sh                      # field filter: bound vs unbound route
#   AUDIT=1 benches/load.sh                       # audit trail: gateway without vs with it
#   PIN=1 benches/load.sh                         # proxies on CPU 1, upstream and wrk on CPU 0
#
# Besides requests/s it prints, per run, the CPU time the proxy under test
# spent per request (user + system of every thread, from /proc/PID/stat) and
# how busy it kept a core: requests/s moves with how the three processes
# share the two cores, CPU per request much less. With PIN=1 (needs taskset)
# each proxy has a core of its own and the upstream and wrk share the other;
# the throughput ratio then measures the proxies only if both are near 100 %
# busy (otherwise CPU 0 is the bottleneck, and the script says so).
#
# FIELDS=1 compares two routes of one gateway (benches/load/gateway-fields.toml):
# $UNBOUND_PATH proxied as is and $BOUND_PATH bound to the `vessel` entity
# (buffered, filtered, re-framed), both to the same upstream answer. The
# passthrough is not measured then.
#
# AUDIT=1 compares two gateways on the same route: "$GATEWAY_CONFIG" (no
# audit trail) and "$AUDIT_CONFIG" (benches/load/gateway-audit.toml: the same
# plus a spool-only `[audit]`, default fsync policy). The passthrough is not
# measured then. The spool ($AUDIT_SPOOL) is emptied before and after.
#
# The gateway config must route "$REQUEST_PATH" to the upstream at
# 127.0.0.1:$UPSTREAM_PORT, listen (`[listen] proxy`) on 127.0.0.1 and should
# set `threads = 1` like the passthrough; "$TOKEN_FILE" holds a bearer token
# the policy lets read that route. The gateway is reached at the address in
# the config's `[listen] proxy` (override: GATEWAY_ADDR).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

FIELDS=${FIELDS:-0}
AUDIT=${AUDIT:-0}
AUDIT_CONFIG=${AUDIT_CONFIG:-benches/load/gateway-audit.toml}
AUDIT_SPOOL=${AUDIT_SPOOL:-/tmp/sentinel-load-audit-spool}
if [[ $FIELDS == 1 ]]; then
    GATEWAY_CONFIG=${GATEWAY_CONFIG:-benches/load/gateway-fields.toml}
else
    GATEWAY_CONFIG=${GATEWAY_CONFIG:-benches/load/gateway.toml}
fi
BOUND_PATH=${BOUND_PATH:-/bound/vessels}
UNBOUND_PATH=${UNBOUND_PATH:-/unbound/vessels}
TOKEN_FILE=${TOKEN_FILE:-benches/load/token.txt}
UPSTREAM_PORT=${UPSTREAM_PORT:-18081}
PASSTHROUGH_PORT=${PASSTHROUGH_PORT:-18082}
PASSTHROUGH_THREADS=${PASSTHROUGH_THREADS:-1}
REQUEST_PATH=${REQUEST_PATH:-/msw/vessels}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-1}          # wrk threads (the machine has 2 cores)
CONNECTIONS=${CONNECTIONS:-32}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
READY_TIMEOUT=${READY_TIMEOUT:-20}  # seconds to wait for each listener
SKIP_BUILD=${SKIP_BUILD:-0}
PIN=${PIN:-0}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
WRK=${WRK:-wrk}

die() { echo "load.sh: $*" >&2; exit 1; }
note() { echo "load.sh: $*" >&2; }

command -v "$WRK" >/dev/null || die "wrk not found (set WRK=/path/to/wrk)"
# Prefixes that put a command on CPU 0 (load) or CPU 1 (proxies) with PIN=1.
ON_LOAD_CPU=() ON_PROXY_CPU=()
if [[ $PIN == 1 ]]; then
    command -v taskset >/dev/null || die "PIN=1 needs taskset (util-linux)"
    (($(nproc) >= 2)) || die "PIN=1 needs two CPUs"
    ON_LOAD_CPU=(taskset -c 0) ON_PROXY_CPU=(taskset -c 1)
fi
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive number, not \`$ROUNDS\`"
[[ $DURATION =~ ^[0-9]+[smh]?$ && $WARMUP =~ ^[0-9]+[smh]?$ ]] ||
    die "DURATION and WARMUP take wrk durations such as 10s"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sentinel-load.XXXXXX")
# shellcheck source=support/procs.sh
source "$ROOT/benches/support/procs.sh"

# Stops what this script started (stop_all: SIGINT, SIGKILL after 3 s).
cleanup() {
    if [[ -n ${WRK_PID:-} ]]; then
        { kill -KILL "$WRK_PID" && wait "$WRK_PID"; } 2>/dev/null || true
    fi
    stop_all
    rm -rf "$WORK"
    if [[ $AUDIT == 1 ]]; then rm -rf "$AUDIT_SPOOL"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

need_free_port() {
    if port_open "$1"; then
        die "127.0.0.1:$1 is already in use; set ${2}_PORT to a free port"
    fi
}

# Reads `proxy = "ADDR"` from the [listen] table of the gateway config.
config_proxy_addr() {
    awk '
        /^[[:space:]]*\[/ { in_listen = ($0 ~ /^[[:space:]]*\[listen\][[:space:]]*(#.*)?$/); next }
        in_listen && /^[[:space:]]*proxy[[:space:]]*=/ {
            if (match($0, /"[^"]*"/)) { print substr($0, RSTART + 1, RLENGTH - 2); exit }
        }
    ' "$1"
}

# ---- what to compare ------------------------------------------------------

if [[ ${NO_GATEWAY:-0} != 1 && -f $GATEWAY_CONFIG ]]; then
    MODE=gateway
    # No token file: a fresh demo-issuer token is minted after the build.
    TOKEN=""
    if [[ -f $TOKEN_FILE ]]; then
        TOKEN=$(tr -d '[:space:]' <"$TOKEN_FILE")
        [[ -n $TOKEN ]] || die "token file \`$TOKEN_FILE\` is empty"
    fi
    GATEWAY_ADDR=${GATEWAY_ADDR:-$(config_proxy_addr "$GATEWAY_CONFIG")}
    [[ $GATEWAY_ADDR =~ ^127\.0\.0\.1:([0-9]+)$ ]] ||
        die "gateway must listen on 127.0.0.1:PORT, found \`${GATEWAY_ADDR:-nothing}\` (set GATEWAY_ADDR)"
    GATEWAY_PORT=${BASH_REMATCH[1]}
    grep -q "127\.0\.0\.1:$UPSTREAM_PORT\b" "$GATEWAY_CONFIG" ||
        note "warning: \`$GATEWAY_CONFIG\` does not mention the upstream 127.0.0.1:$UPSTREAM_PORT"
    BASE_NAME=passthrough SUBJ_NAME=gateway
    BASE_PORT=$PASSTHROUGH_PORT SUBJ_PORT=$GATEWAY_PORT
    BASE_PATH=$REQUEST_PATH SUBJ_PATH=$REQUEST_PATH
    if [[ $FIELDS == 1 ]]; then
        BASE_NAME=unbound SUBJ_NAME=bound
        BASE_PORT=$GATEWAY_PORT
        BASE_PATH=$UNBOUND_PATH SUBJ_PATH=$BOUND_PATH
    elif [[ $AUDIT == 1 ]]; then
        [[ -f $AUDIT_CONFIG ]] || die "no audited gateway config at \`$AUDIT_CONFIG\`"
        AUDITED_ADDR=$(config_proxy_addr "$AUDIT_CONFIG")
        [[ $AUDITED_ADDR =~ ^127\.0\.0\.1:([0-9]+)$ ]] ||
            die "the audited gateway must listen on 127.0.0.1:PORT, found \`${AUDITED_ADDR:-nothing}\`"
        BASE_NAME=gateway SUBJ_NAME=audited
        BASE_PORT=$GATEWAY_PORT SUBJ_PORT=${BASH_REMATCH[1]}
    fi
    BUILD_ARGS=(--examples --bin sentinel)
else
    MODE=pingora
    if [[ ${NO_GATEWAY:-0} == 1 ]]; then
        note "NO_GATEWAY=1: comparing passthrough with the upstream called directly"
    else
        note "no gateway config at \`$GATEWAY_CONFIG\`: comparing passthrough with the upstream called directly"
    fi
    BASE_NAME=upstream SUBJ_NAME=passthrough
    BASE_PORT=$UPSTREAM_PORT SUBJ_PORT=$PASSTHROUGH_PORT
    BASE_PATH=$REQUEST_PATH SUBJ_PATH=$REQUEST_PATH
    BUILD_ARGS=(--example passthrough --example upstream)
fi

# ---- build and start ------------------------------------------------------

if [[ $SKIP_BUILD != 1 ]]; then
    note "building: cargo build --release ${BUILD_ARGS[*]}"
    cargo build --release "${BUILD_ARGS[@]}" >&2
fi
for bin in examples/upstream examples/passthrough; do
    [[ -x $TARGET_DIR/release/$bin ]] || die "missing $TARGET_DIR/release/$bin (build it, or unset SKIP_BUILD)"
done
if [[ $MODE == gateway && -z $TOKEN ]]; then
    TOKEN=$("$TARGET_DIR/release/sentinel" demo-token) || die "cannot mint a demo token"
fi

need_free_port "$UPSTREAM_PORT" UPSTREAM
need_free_port "$PASSTHROUGH_PORT" PASSTHROUGH
start upstream "${ON_LOAD_CPU[@]}" "$TARGET_DIR/release/examples/upstream" --listen "127.0.0.1:$UPSTREAM_PORT"
wait_ready upstream "$UPSTREAM_PORT"
start passthrough "${ON_PROXY_CPU[@]}" "$TARGET_DIR/release/examples/passthrough" \
    --listen "127.0.0.1:$PASSTHROUGH_PORT" --upstream "127.0.0.1:$UPSTREAM_PORT" \
    --threads "$PASSTHROUGH_THREADS"
wait_ready passthrough "$PASSTHROUGH_PORT"
if [[ $MODE == gateway ]]; then
    [[ -x $TARGET_DIR/release/sentinel ]] || die "missing $TARGET_DIR/release/sentinel"
    need_free_port "$GATEWAY_PORT" GATEWAY
    start gateway "${ON_PROXY_CPU[@]}" "$TARGET_DIR/release/sentinel" run --config "$GATEWAY_CONFIG"
    wait_ready gateway "$GATEWAY_PORT"
    if [[ $AUDIT == 1 ]]; then
        if port_open "$SUBJ_PORT"; then
            die "127.0.0.1:$SUBJ_PORT (\`[listen] proxy\` of $AUDIT_CONFIG) is already in use"
        fi
        rm -rf "$AUDIT_SPOOL"
        start audited "${ON_PROXY_CPU[@]}" "$TARGET_DIR/release/sentinel" run --config "$AUDIT_CONFIG"
        wait_ready audited "$SUBJ_PORT"
    fi
fi

# Checks one request answers 200 before measuring anything (only the gateway
# gets the token).
# path_of NAME: the request path for that target.
path_of() { if [[ $1 == "$SUBJ_NAME" ]]; then echo "$SUBJ_PATH"; else echo "$BASE_PATH"; fi; }

smoke() {
    local name=$1 port=$2 status path
    path=$(path_of "$name")
    local -a hdr=()
    # Both targets get the same request (the passthrough forwards the token unread).
    [[ $MODE == gateway ]] && hdr=(-H "Authorization: Bearer $TOKEN")
    status=$(curl -s -o "$WORK/smoke.$name" -w '%{http_code}' --max-time 5 "${hdr[@]}" \
        "http://127.0.0.1:$port$path") || status=000
    if [[ $status != 200 ]]; then
        head -c 600 "$WORK/smoke.$name" >&2 2>/dev/null || true
        echo >&2
        die "$name answered $status for GET $path (expected 200)"
    fi
}
smoke "$BASE_NAME" "$BASE_PORT"
smoke "$SUBJ_NAME" "$SUBJ_PORT"

# ---- measure --------------------------------------------------------------

# run_wrk NAME PORT DURATION OUT
run_wrk() {
    local name=$1 port=$2 duration=$3 out=$4 path
    local -a hdr=()
    path=$(path_of "$name")
    # Both targets get the same request (the passthrough forwards the token unread).
    [[ $MODE == gateway ]] && hdr=(-H "Authorization: Bearer $TOKEN")
    # In the background so a signal to this script interrupts `wait` at once.
    "${ON_LOAD_CPU[@]}" "$WRK" -t"$THREADS" -c"$CONNECTIONS" -d"$duration" --latency "${hdr[@]}" \
        "http://127.0.0.1:$port$path" >"$out" &
    WRK_PID=$!
    wait "$WRK_PID"
    WRK_PID=
}

# pid_of NAME: the process that answers for that target.
pid_of() {
    case $1 in
        bound | unbound) echo "$PID_gateway" ;;
        *) local v="PID_$1"; echo "${!v}" ;;
    esac
}
CLK_TCK=$(getconf CLK_TCK)
now() { date +%s.%N; }

# Prints "RPS P99_MS NON2XX ERRORS REQUESTS" from a wrk --latency report.
parse_wrk() {
    awk '
        function ms(v) {
            if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
            if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
            if (v ~ /s$/)  return substr(v, 1, length(v) - 1) * 1000
            return v + 0
        }
        /^Requests\/sec:/            { rps = $2 }
        /^[[:space:]]+99%/          { p99 = ms($2) }
        /Non-2xx or 3xx responses:/ { non2xx = $NF }
        /Socket errors:/            { errs = $4 + $6 + $8 + $10 }  # "connect 0, read 0, ..."
        / requests in /             { n = $1 }
        END { printf "%s %s %d %d %d\n", rps, p99, non2xx, errs, n }
    ' "$1"
}

note "warming up ($WARMUP each)"
run_wrk "$BASE_NAME" "$BASE_PORT" "$WARMUP" "$WORK/warmup.base"
run_wrk "$SUBJ_NAME" "$SUBJ_PORT" "$WARMUP" "$WORK/warmup.subj"

LOAD=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo '?')
echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency http://127.0.0.1:PORT{$BASE_PATH,$SUBJ_PATH}, $ROUNDS round(s), $(nproc) CPUs, load average $LOAD before measuring"
if awk -v l="$LOAD" -v n="$(nproc)" 'BEGIN { exit !(l + 0 > n / 2) }'; then
    note "warning: the machine is busy (load average $LOAD on $(nproc) CPUs): expect noisy figures"
fi
printf '%-6s %-12s %12s %10s %12s %6s %8s %8s\n' round target "requests/s" "p99 ms" "CPU µs/req" busy non2xx errors
BASE_RPS=() BASE_P99=() SUBJ_RPS=() SUBJ_P99=() BASE_CPU=() SUBJ_CPU=() BASE_BUSY=() SUBJ_BUSY=()
for ((round = 1; round <= ROUNDS; round++)); do
    if ((round % 2 == 1)); then order=(base subj); else order=(subj base); fi
    for which in "${order[@]}"; do
        if [[ $which == base ]]; then name=$BASE_NAME port=$BASE_PORT; else name=$SUBJ_NAME port=$SUBJ_PORT; fi
        out="$WORK/round$round.$which"
        pid=$(pid_of "$name")
        t0=$(now) c0=$(cpu_ticks "$pid")
        run_wrk "$name" "$port" "$DURATION" "$out"
        c1=$(cpu_ticks "$pid") t1=$(now)
        read -r rps p99 non2xx errs requests < <(parse_wrk "$out")
        [[ -n $rps && -n $p99 && ${requests:-0} -gt 0 ]] || { cat "$out" >&2; die "cannot read wrk's report for $name"; }
        read -r cpu busy < <(awk -v c=$((c1 - c0)) -v hz="$CLK_TCK" -v n="$requests" -v t0="$t0" -v t1="$t1" \
            'BEGIN { printf "%.1f %.0f\n", c / hz / n * 1e6, c / hz / (t1 - t0) * 100 }')
        printf '%-6s %-12s %12.0f %10.3f %12s %5s%% %8d %8d\n' "$round" "$name" "$rps" "$p99" "$cpu" "$busy" "$non2xx" "$errs"
        ((non2xx == 0)) || note "warning: $name answered $non2xx non-2xx responses in round $round"
        if [[ $which == base ]]; then
            BASE_RPS+=("$rps") BASE_P99+=("$p99") BASE_CPU+=("$cpu") BASE_BUSY+=("$busy")
        else
            SUBJ_RPS+=("$rps") SUBJ_P99+=("$p99") SUBJ_CPU+=("$cpu") SUBJ_BUSY+=("$busy")
        fi
    done
done

mean() { printf '%s\n' "$@" | awk '{ s += $1 } END { printf "%.3f", s / NR }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { printf "%.3f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# Each round measures both targets back to back, so its ratio is little
# moved by drift; the median of the rounds' ratios is little moved by one
# disturbed round (on a shared machine the mean of the rounds can be).
ROUND_RATIOS=()
for ((i = 0; i < ROUNDS; i++)); do
    ROUND_RATIOS+=("$(awk -v s="${SUBJ_RPS[i]}" -v b="${BASE_RPS[i]}" 'BEGIN { printf "%.4f", (b > 0 ? s / b : 0) }')")
done
b_rps=$(mean "${BASE_RPS[@]}") s_rps=$(mean "${SUBJ_RPS[@]}")
b_p99=$(mean "${BASE_P99[@]}") s_p99=$(mean "${SUBJ_P99[@]}")
b_cpu=$(mean "${BASE_CPU[@]}") s_cpu=$(mean "${SUBJ_CPU[@]}")
b_busy=$(mean "${BASE_BUSY[@]}") s_busy=$(mean "${SUBJ_BUSY[@]}")
echo
awk -v bn="$BASE_NAME" -v sn="$SUBJ_NAME" -v br="$b_rps" -v sr="$s_rps" -v bp="$b_p99" -v sp="$s_p99" \
    -v bc="$b_cpu" -v sc="$s_cpu" -v bb="$b_busy" -v sb="$s_busy" -v mr="$(median "${ROUND_RATIOS[@]}")" 'BEGIN {
    printf "%-12s %10.0f req/s   p99 %7.3f ms   %6.1f µs CPU/req   %3.0f %% busy   (mean of rounds)\n", bn, br, bp, bc, bb
    printf "%-12s %10.0f req/s   p99 %7.3f ms   %6.1f µs CPU/req   %3.0f %% busy   (mean of rounds)\n", sn, sr, sp, sc, sb
    printf "throughput ratio %s/%s: %.3f (median of the rounds: %.3f)\n", sn, bn, (br > 0 ? sr / br : 0), mr
    printf "CPU per request ratio %s/%s: %.3f\n", bn, sn, (sc > 0 ? bc / sc : 0)
    printf "added p99: %+.3f ms\n", sp - bp
}'
if [[ $PIN == 1 ]] && awk -v a="$b_busy" -v b="$s_busy" 'BEGIN { exit !(a < 90 || b < 90) }'; then
    note "warning: a proxy was under 90 % busy on its own CPU: CPU 0 (upstream and wrk) limited it, so the throughput ratio is not the proxies' alone"
fi
