#!/usr/bin/env bash
# benches/rolling_update.sh: a rolling update rehearsed on loopback, under load.
#
# Starts, all on 127.0.0.1:
#   upstream   examples/upstream.rs (every request -> 200, 1 KiB JSON)
#   gateway a  sentinel run (benches/load/gateway.toml's route, policy and keys)
#   gateway b  the same on other ports
#   haproxy    in front of both: health check GET /readyz on each ops port
#              every 200 ms, retries (with redispatch) on connection failures,
#              like a Kubernetes Service plus an ingress would
# then runs wrk through haproxy for $DURATION seconds while it updates the
# gateways one after the other: SIGTERM (the graceful drain a Pod gets),
# wait for the process to exit, start it again, wait until /readyz answers
# 200, go on with the next. It prints the requests served, the failed ones
# (non-2xx answers and socket errors) and how long each drain took.
# Every process it starts is stopped on exit.
#
#   benches/rolling_update.sh                    # debug build, 20 s, 16 connections
#   PROFILE=release benches/rolling_update.sh    # the release binaries
#   SKIP_BUILD=1 DURATION=30 benches/rolling_update.sh
#   LB_RETRIES=0 benches/rolling_update.sh       # haproxy does not retry: what the LB's retries hide
#
# Needs haproxy and wrk (Debian: apt-get install haproxy wrk). Exit status 1
# when any request failed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TARGET_DIR=${CARGO_TARGET_DIR:-target}
PROFILE=${PROFILE:-debug}
DURATION=${DURATION:-20}
CONNECTIONS=${CONNECTIONS:-16}
SKIP_BUILD=${SKIP_BUILD:-0}
UPSTREAM_PORT=${UPSTREAM_PORT:-18181}
LB_PORT=${LB_PORT:-18180}
A_PROXY=${A_PROXY:-18183} A_OPS=${A_OPS:-18184}
B_PROXY=${B_PROXY:-18185} B_OPS=${B_OPS:-18186}
READY_TIMEOUT=${READY_TIMEOUT:-30}
LB_RETRIES=${LB_RETRIES:-1}

work=$(mktemp -d)
declare -A pid=()
note() { printf -- '-- %s\n' "$*" >&2; }
die() { printf 'rolling_update: %s\n' "$*" >&2; exit 2; }
stop() {  # name: SIGINT (fast stop), then SIGKILL after 5 s
    local p=${pid[$1]:-}
    [[ -n $p ]] || return 0
    kill -INT "$p" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
    pid[$1]=""
}
cleanup() {
    for name in "${!pid[@]}"; do stop "$name"; done
    rm -rf "$work"
}
trap cleanup EXIT

for tool in haproxy wrk curl; do
    command -v "$tool" >/dev/null || die "\`$tool\` is not installed"
done
if [[ $SKIP_BUILD != 1 ]]; then
    args=(build --bin sentinel --example upstream)
    [[ $PROFILE == release ]] && args+=(--release)
    if [[ -e /tmp/cargo-build.lock ]]; then
        flock /tmp/cargo-build.lock cargo "${args[@]}"
    else
        cargo "${args[@]}"
    fi
fi
BIN=$TARGET_DIR/$PROFILE
[[ -x $BIN/sentinel && -x $BIN/examples/upstream ]] || die "no binaries in $BIN (build them, or unset SKIP_BUILD)"

# Each gateway: benches/load/gateway.toml with its own ports, absolute paths,
# and a drain deadline well inside the run.
for gw in a b; do
    mkdir -p "$work/$gw"
    if [[ $gw == a ]]; then proxy=$A_PROXY ops=$A_OPS; else proxy=$B_PROXY ops=$B_OPS; fi
    sed -e "s|127.0.0.1:18083|127.0.0.1:$proxy|" \
        -e "s|127.0.0.1:18084|127.0.0.1:$ops|" \
        -e "s|127.0.0.1:18081|127.0.0.1:$UPSTREAM_PORT|" \
        -e "s|\.\./\.\./config/|$ROOT/config/|g" \
        -e "s|routes = \[\"routes.toml\"\]|routes = [\"$ROOT/benches/load/routes.toml\"]|" \
        -e "s|^threads = 1|threads = 1\ndrain_timeout = \"10s\"|" \
        benches/load/gateway.toml >"$work/$gw/sentinel.toml"
    "$BIN/sentinel" check --config "$work/$gw/sentinel.toml" >/dev/null ||
        die "the gateway config does not validate: $("$BIN/sentinel" check --config "$work/$gw/sentinel.toml")"
done

wait_ready() {  # url: until it answers 200
    local deadline=$((SECONDS + READY_TIMEOUT))
    until curl -fsS -o /dev/null "$1" 2>/dev/null; do
        ((SECONDS < deadline)) || die "\`$1\` not ready within ${READY_TIMEOUT}s"
        sleep 0.1
    done
}
start_gateway() {  # a|b
    SENTINEL_LOG=warn "$BIN/sentinel" run --log-format json --config "$work/$1/sentinel.toml" \
        >>"$work/$1/log" 2>&1 &
    pid[$1]=$!
}
ops_of() { if [[ $1 == a ]]; then echo "$A_OPS"; else echo "$B_OPS"; fi; }

"$BIN/examples/upstream" --listen "127.0.0.1:$UPSTREAM_PORT" >"$work/upstream.log" 2>&1 &
pid[upstream]=$!
for gw in a b; do start_gateway "$gw"; done
for gw in a b; do wait_ready "http://127.0.0.1:$(ops_of "$gw")/readyz"; done

cat >"$work/haproxy.cfg" <<CFG
global
    maxconn 2000
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
$(if [[ $LB_RETRIES == 1 ]]; then
    printf '    retries 3\n    option redispatch 1\n    retry-on all-retryable-errors\n'
else
    printf '    retries 0\n'
fi)
frontend lb
    bind 127.0.0.1:$LB_PORT
    default_backend gateways
backend gateways
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 200ms fall 1 rise 2
    server a 127.0.0.1:$A_PROXY check port $A_OPS
    server b 127.0.0.1:$B_PROXY check port $B_OPS
CFG
haproxy -q -db -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 &
pid[haproxy]=$!
sleep 1  # two health checks (rise 2, every 200 ms) mark both gateways up

token=$("$BIN/sentinel" demo-token)
url="http://127.0.0.1:$LB_PORT/msw/vessels"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "$url")
[[ $code == 200 ]] || die "a request through haproxy answered $code"

note "wrk: ${DURATION}s, $CONNECTIONS connections, through haproxy to gateways a and b ($PROFILE build)"
wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" -H "Authorization: Bearer $token" "$url" >"$work/wrk.txt" 2>&1 &
pid[wrk]=$!
sleep $((DURATION / 5))
for gw in a b; do
    t0=$(date +%s.%N)
    kill -TERM "${pid[$gw]}"
    wait "${pid[$gw]}" 2>/dev/null || true
    t1=$(date +%s.%N)
    pid[$gw]=""
    start_gateway "$gw"
    wait_ready "http://127.0.0.1:$(ops_of "$gw")/readyz"
    t2=$(date +%s.%N)
    note "gateway $gw: drained and exited in $(echo "$t1 - $t0" | bc) s, ready again $(echo "$t2 - $t1" | bc) s later"
    sleep $((DURATION / 5))
done
wait "${pid[wrk]}" || true
pid[wrk]=""

cat "$work/wrk.txt"
requests=$(awk '/requests in/ {print $1}' "$work/wrk.txt")
non2xx=$(awk -F': ' '/Non-2xx or 3xx responses/ {print $2}' "$work/wrk.txt")
socket=$(awk '/Socket errors/ {s=0; for (i=1;i<=NF;i++) if ($i ~ /^[0-9]+,?$/) s+=$i; print s}' "$work/wrk.txt")
failed=$(( ${non2xx:-0} + ${socket:-0} ))
echo "rolling update: ${requests:-0} requests, $failed failed (non-2xx ${non2xx:-0}, socket errors ${socket:-0})"
[[ $failed == 0 ]]
