#!/usr/bin/env bash
# The compose stack without Docker: the same files, the real binaries, on
# loopback ports (.ci/deploy runs it; docs/deploy.md, "What is verified").
#
#   deploy/tools/rehearse-compose.sh BIN_DIR PROMETHEUS_BIN
#
# BIN_DIR holds sentinel, sentinel-admin and examples/upstream (a cargo
# target directory's debug/). Needs PostgreSQL and Redis as .ci/run starts
# them (DATABASE_URL: a superuser URL; REDIS_URL). It
#   1. creates a database of its own and runs deploy/compose/init/bootstrap.sh
#      on it twice (the second run must change nothing),
#   2. starts `sentinel-admin serve` as sentinel_api, the stand-in upstream,
#      and two gateways on deploy/compose/gateway/sentinel.toml with only the
#      addresses moved to loopback (and the Redis key prefix made unique);
#      gateway 2's Redis address is a closed port (Redis down, for it),
#   3. checks both gateways get ready from the admin API's signed snapshots
#      with the init service's key and pinned JWKS, and answer an admin API
#      login's token and a demo token as the policy says,
#   4. starts Prometheus on deploy/compose/prometheus/prometheus.yml (moved
#      to loopback, 1 s intervals) with deploy/prometheus/alerts.yml, and
#      checks every target is up, every rule loads and evaluates, the only
#      alert is gateway 2's Redis one, and every query of the Grafana
#      dashboard runs without error,
#   5. stops the admin API and checks both gateways keep answering,
# then stops what it started and drops its database.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin="${1:?usage: rehearse-compose.sh BIN_DIR PROMETHEUS_BIN}"
prometheus="${2:?usage: rehearse-compose.sh BIN_DIR PROMETHEUS_BIN}"
py="${PYTHON:-python3}"
super_url="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
redis_url="${REDIS_URL:-redis://127.0.0.1:6379}"
work=$(mktemp -d)
db="sentinel_rehearsal_$$"
pids=()        # stopped with SIGTERM
gateway_pids=() # stopped with SIGINT: Pingora's fast shutdown (after SIGTERM
                # it waits out a 5-minute grace period today)
# Sends $1 to the other arguments, waits up to 10 s for them, then SIGKILL.
stop() {
  local sig=$1 pid; shift
  for pid in "$@"; do kill "-$sig" "$pid" 2>/dev/null || true; done
  for _ in $(seq 1 100); do
    local alive=0
    for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for pid in "$@"; do kill -KILL "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
}
cleanup() {
  stop INT "${gateway_pids[@]}"
  stop TERM "${pids[@]}"
  psql "$super_url" -q -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "rehearsal: $*" >&2; for f in "$work"/*.log; do echo "== $f" >&2; tail -n 20 "$f" >&2; done; exit 1; }
# Polls `cmd...` every 0.2 s for up to $1 seconds.
wait_for() { local secs=$1; shift; for _ in $(seq 1 $((secs * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done; return 1; }
get() { "$py" - "$@" <<'EOF'
import sys, urllib.request
url, *headers = sys.argv[1:]
req = urllib.request.Request(url, headers=dict(h.split(": ", 1) for h in headers))
try:
    with urllib.request.urlopen(req, timeout=10) as r:
        print(r.status); print(r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code); print(e.read().decode())
EOF
}

read -r admin_port up_port gw1 gw1_ops gw2 gw2_ops prom_port no_redis < <("$py" -c '
import socket
socks = [socket.socket() for _ in range(8)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])')
db_url="${super_url%/*}/$db"
# The API role is cluster-wide: it gets the password the test harnesses give
# it (admin-api/tests/api/common.rs), so clusters that ask TCP clients for a
# password work, and the tests find what they expect.
api_url=$(sed -E 's#^(postgres(ql)?://)[^@/]*@#\1sentinel_api:sentinel-api-test@#' <<<"$db_url")
platform_url=$(sed -E 's#^(postgres(ql)?://)[^@/]*@#\1sentinel_platform:sentinel-platform-test@#' <<<"$db_url")

# The compose file's SENTINEL_KEK, generated here: init and serve share it.
export SENTINEL_KEK="${SENTINEL_KEK:-$(head -c 32 /dev/urandom | base64)}"

# ---------------------------------------------------------------- 1. init
psql "$super_url" -q -c "CREATE DATABASE $db" >/dev/null
mkdir -p "$work/bootstrap"
for run in 1 2; do
  PATH="$bin:$PATH" DATABASE_URL="$db_url" SENTINEL_BOOTSTRAP_DIR="$work/bootstrap" \
    SENTINEL_BOOTSTRAP_EMAIL=admin@example.com SENTINEL_BOOTSTRAP_PASSWORD=Admin-Passw0rd \
    SENTINEL_ARGON2_M_KIB=256 SENTINEL_ARGON2_T=1 \
    sh deploy/compose/init/bootstrap.sh >"$work/init-$run.log" 2>&1 || fail "init run $run failed"
  cp "$work/bootstrap/gateway.key" "$work/gateway.key.$run"
done
psql "$db_url" -q -c "ALTER ROLE sentinel_api PASSWORD 'sentinel-api-test'" >/dev/null
psql "$db_url" -q -c "ALTER ROLE sentinel_platform PASSWORD 'sentinel-platform-test'" >/dev/null
cmp -s "$work/gateway.key.1" "$work/gateway.key.2" || fail "the second init run changed the gateway key"
[ "$(stat -c %a "$work/bootstrap/gateway.key")" = 600 ] || fail "gateway.key is not private (mode $(stat -c %a "$work/bootstrap/gateway.key"))"
grep -q '"kid"' "$work/bootstrap/snapshot-keys.jwks.json" || fail "no key in snapshot-keys.jwks.json"

# ---------------------------------------------------------------- 2. the stack
DATABASE_URL="$api_url" SENTINEL_PLATFORM_DATABASE_URL="$platform_url" SENTINEL_ARGON2_M_KIB=256 SENTINEL_ARGON2_T=1 \
  "$bin/sentinel-admin" serve --listen "127.0.0.1:$admin_port" >"$work/admin.log" 2>&1 &
pids+=($!)
"$bin/examples/upstream" --listen "127.0.0.1:$up_port" >"$work/upstream.log" 2>&1 &
pids+=($!)
wait_for 30 get "http://127.0.0.1:$admin_port/healthz" || fail "admin API not up"

prefix="sentinel:rehearsal-$$:rl"
# Gateway 2's Redis is a closed port: Redis down, as it sees it.
gw_redis=("$redis_url" "redis://127.0.0.1:$no_redis")
for n in 1 2; do
  port_var="gw$n"; ops_var="gw${n}_ops"
  dir="$work/gateway-$n"
  mkdir -p "$dir/cache"
  ln -s "$PWD/config/routes" "$dir/routes"
  ln -s "$PWD/config/keys" "$dir/keys"
  ln -s "$work/bootstrap" "$dir/bootstrap"
  sed -e "s#0.0.0.0:8080#127.0.0.1:${!port_var}#; s#0.0.0.0:9090#127.0.0.1:${!ops_var}#" \
      -e "s#172.30.89.10:7100#127.0.0.1:$up_port#g" \
      -e "s#http://admin:8081#http://127.0.0.1:$admin_port#g" \
      -e "s#redis://redis:6379/0#${gw_redis[$((n - 1))]}#; s#sentinel:compose:rl#$prefix#" \
      -e "s#/var/lib/sentinel/#$dir/cache/#" \
      deploy/compose/gateway/sentinel.toml >"$dir/sentinel.toml"
  for moved in 0.0.0.0 172.30.89 admin:8081 redis://redis /var/lib/sentinel/; do
    ! grep -qF "$moved" "$dir/sentinel.toml" || fail "gateway $n config still names $moved"
  done
  "$bin/sentinel" run --config "$dir/sentinel.toml" --upgrade-sock "$work/upgrade-$n.sock" >"$work/gateway-$n.log" 2>&1 &
  gateway_pids+=($!)
done
for ops in "$gw1_ops" "$gw2_ops"; do
  wait_for 60 deploy/docker/healthcheck "$ops" /readyz || fail "gateway on ops $ops not ready"
done

# ---------------------------------------------------------------- 3. requests
login() {
  "$py" - "$admin_port" "$1" <<'EOF'
import json, sys, urllib.request
port, email = sys.argv[1:]
body = json.dumps({"email": email, "password": "Demo-Passw0rd!", "tenant_code": "TEST-001"}).encode()
req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/auth/login", body, {"content-type": "application/json"})
print(json.load(urllib.request.urlopen(req, timeout=30))["access_token"])
EOF
}
victor=$(login victor@nordic.example) || fail "login as victor"
alice=$(login alice@nordic.example) || fail "login as alice"
demo_victor=$("$bin/sentinel" demo-token)
expect() { # gateway-port expected-status [header] -> body on stdout
  local port=$1 status=$2 out; shift 2
  out=$(get "http://127.0.0.1:$port/msw/vessels" "$@")
  [ "$(head -1 <<<"$out")" = "$status" ] || fail "GET /msw/vessels on :$port answered $(head -1 <<<"$out"), not $status: $(tail -n +2 <<<"$out")"
  tail -n +2 <<<"$out"
}
for port in "$gw1" "$gw2"; do
  body=$(expect "$port" 200 "Authorization: Bearer $victor")
  grep -q '"imo":"\*' <<<"$body" || fail "Victor (viewer) sees the imo unmasked on :$port: $body"
  body=$(expect "$port" 200 "Authorization: Bearer $alice")
  grep -q '"imo":"9395044"' <<<"$body" || fail "Alice (tenant admin) does not see the imo on :$port: $body"
  expect "$port" 200 "Authorization: Bearer $demo_victor" >/dev/null
  expect "$port" 401 >/dev/null
  expect "$port" 401 "Authorization: Bearer $victor.tampered" >/dev/null
done

# ---------------------------------------------------------------- 4. Prometheus
"$py" - "$work/prometheus.yml" "$PWD/deploy/prometheus/alerts.yml" "$gw1_ops" "$gw2_ops" "$admin_port" <<'EOF'
import sys, yaml
out, rules, gw1, gw2, admin = sys.argv[1:]
cfg = yaml.safe_load(open("deploy/compose/prometheus/prometheus.yml"))
cfg["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
cfg["rule_files"] = [rules]
moved = {"gateway-1:9090": f"127.0.0.1:{gw1}", "gateway-2:9090": f"127.0.0.1:{gw2}", "admin:8081": f"127.0.0.1:{admin}"}
jobs = []
for job in cfg["scrape_configs"]:
    targets = [moved[t] for sc in job["static_configs"] for t in sc["targets"] if t in moved]
    if targets:  # the demo service is not part of the rehearsal
        jobs.append({**job, "static_configs": [{"targets": targets}]})
cfg["scrape_configs"] = jobs
yaml.safe_dump(cfg, open(out, "w"))
EOF
"$prometheus" --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$prom_port" >"$work/prometheus.log" 2>&1 &
pids+=($!)
"$py" deploy/tools/dashboard.py --queries >"$work/queries.txt"
for _ in 1 2 3 4 5 6 7 8; do  # some traffic across a few scrapes, for rate()
  for port in "$gw1" "$gw2"; do expect "$port" 200 "Authorization: Bearer $victor" >/dev/null; done
  sleep 1
done
"$py" - "$prom_port" "$work/queries.txt" "$gw2_ops" <<'EOF' || fail "Prometheus checks"
import json, sys, time, urllib.parse, urllib.request
port, queries = sys.argv[1], sys.argv[2]
def api(path, **params):
    url = f"http://127.0.0.1:{port}/api/v1/{path}?" + urllib.parse.urlencode(params)
    return json.load(urllib.request.urlopen(url, timeout=10))
deadline = time.time() + 60
while True:
    try:
        up = api("query", query="up")["data"]["result"]
        rules = [r for g in api("rules")["data"]["groups"] for r in g["rules"]]
        if len(up) == 3 and all(r["value"][1] == "1" for r in up) and rules and all(r.get("lastEvaluation", "").startswith("2") and not r["lastEvaluation"].startswith("0001") for r in rules):
            break
    except Exception:
        pass
    if time.time() > deadline:
        sys.exit(f"targets or rules not ready: {up if 'up' in dir() else '-'}")
    time.sleep(0.5)
bad = [r["name"] for r in rules if r["health"] != "ok"]
if bad:
    sys.exit(f"rules not healthy: {bad}")
# Rules evaluated before the first scrape may have left an alert pending
# (absent(up...)); the evaluations after it must leave exactly one: gateway
# 2 rate-limiting without Redis.
gw2 = [t["labels"]["instance"] for t in api("targets")["data"]["activeTargets"] if t["scrapeUrl"].startswith(f"http://127.0.0.1:{sys.argv[3]}/")]
want = [("SentinelRateLimitRedisUnavailable", gw2[0] if gw2 else "?")]
deadline = time.time() + 20
while (alerts := sorted((a["labels"]["alertname"], a["labels"].get("instance", "")) for a in api("alerts")["data"]["alerts"])) != want:
    if time.time() > deadline:
        sys.exit(f"alerts: {alerts}, expected only {want}")
    time.sleep(0.5)
empty, n = [], 0
for line in open(queries):
    where, expr = line.rstrip("\n").split("\t", 1)
    r = api("query", query=expr)
    if r["status"] != "success":
        sys.exit(f"{where}: {r}")
    n += 1
    if not r["data"]["result"]:
        empty.append(where)
print(f"prometheus: 3 targets up, {len(rules)} rules healthy, alerts {alerts}, {n} dashboard queries ran, "
      f"{n - len(empty)} with data (no data yet: {', '.join(empty) or 'none'})")
EOF

# ---------------------------------------------------------------- 5. admin API down
stop TERM "${pids[0]}"
for port in "$gw1" "$gw2"; do
  expect "$port" 200 "Authorization: Bearer $victor" >/dev/null
  expect "$port" 200 "Authorization: Bearer $demo_victor" >/dev/null
done
echo "rehearsal ok: init twice, admin API, two gateways ready from signed snapshots, tokens of both issuers answered (gateway 2 without Redis), Prometheus with the rules and the dashboard's queries, gateways serving with the admin API down"
