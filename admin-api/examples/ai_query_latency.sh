#!/usr/bin/env bash
# Latency of POST /api/v1/ai/query on the demo tenant (docs/PERFORMANCE.md,
# "Questions in plain language"): a throwaway database, migrated, bootstrapped
# and seeded, `serve` as sentinel_api on an ephemeral port, 50 questions of
# each kind as alice (TEST-001 admin). Needs psql, curl, python3, a built
# target/debug/sentinel-admin, and PostgreSQL at postgres://postgres:postgres@127.0.0.1:5432.
#
#   admin-api/examples/ai_query_latency.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=target/debug/sentinel-admin
base=${DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432/postgres}
db="sentinel_aiq_$$"
server_url="${base%/*}/$db"
host=${base#*@}; host=${host%%/*}
api_url="postgres://sentinel_api:sentinel-st@$host/$db"
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; psql "$base" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true; }
trap cleanup EXIT
psql "$base" -qc "CREATE DATABASE $db" >/dev/null
export SENTINEL_ARGON2_M_KIB=256 SENTINEL_ARGON2_T=1 RUST_LOG=warn
SENTINEL_KEK="$(head -c 32 /dev/urandom | base64)"
export SENTINEL_KEK
DATABASE_URL=$server_url "$bin" migrate >/dev/null
psql "$server_url" -qc "ALTER ROLE sentinel_api PASSWORD 'sentinel-st'" >/dev/null
psql "$server_url" -qc "ALTER ROLE sentinel_platform PASSWORD 'sentinel-st'" >/dev/null
DATABASE_URL=$server_url SENTINEL_BOOTSTRAP_PASSWORD='Root-Passw0rd!' "$bin" bootstrap --email root@x.example >/dev/null
DATABASE_URL=$server_url SENTINEL_DEMO_PASSWORD='Demo-Passw0rd!' "$bin" seed-demo >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
DATABASE_URL=$api_url SENTINEL_PLATFORM_DATABASE_URL=${api_url/sentinel_api:/sentinel_platform:} SENTINEL_AUTH_RATE_PER_MINUTE=100000 SENTINEL_AUTH_RATE_BURST=100000 "$bin" serve --listen "127.0.0.1:$port" >"${TMPDIR:-/tmp}/sentinel-aiq-$$.log" 2>&1 &
pid=$!
for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
python3 - "$port" <<'PY'
import json, sys, time, urllib.request
port = sys.argv[1]
url = f"http://127.0.0.1:{port}/api/v1"
def post(path, body, token=None):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), headers={"content-type": "application/json", **({"authorization": "Bearer " + token} if token else {})})
    return json.load(urllib.request.urlopen(req))
tok = None
for p in ["Demo-Passw0rd!"]:
    try:
        tok = post("/auth/login", {"email": "alice@nordic.example", "password": p, "tenant_code": "TEST-001"})["access_token"]
    except Exception as e:
        print("login failed", e); sys.exit(1)
qs = ["who can delete vessels in Nordic Shipping", "what can victor do on port calls", "how many requests did alice make last week", "which service accounts have keys older than 90 days", "make me a sandwich"]
for q in qs:
    post("/ai/query", {"question": q}, tok)
for q in qs:
    ts = []
    for _ in range(50):
        t = time.perf_counter(); post("/ai/query", {"question": q}, tok); ts.append((time.perf_counter() - t) * 1000)
    ts.sort()
    print(f"{q:55s} p50 {ts[25]:6.1f} ms  p95 {ts[47]:6.1f} ms")
PY
