#!/usr/bin/env bash
# Sharded snapshots at scale, admin side (docs/PERFORMANCE.md, "Deltas: admin
# publish"): seeds the 1,000-tenant policy, times the first full publication,
# then one change at a time through the running API (API call returned →
# the long-poll of a gateway holding the previous version answers), with the
# bytes of that `since=<previous>` answer.
#
#   cargo build --release -p sentinel-admin
#   admin-api/examples/scale_delta.sh            # TENANTS=1000 USERS=100 ROLES=10 PERMS=1000
#   SKIP_SEED=1 admin-api/examples/scale_delta.sh   # again on the seeded database
#
# Needs psql, curl, python3; PostgreSQL at $BASE (trust or password auth for
# the owner role). Drops and recreates the database $DB.
set -euo pipefail

BASE=${BASE:-postgres://postgres@127.0.0.1:5432}
DB=${DB:-sentinel_scale_deltas}
TENANTS=${TENANTS:-1000} USERS=${USERS:-100} ROLES=${ROLES:-10} PERMS=${PERMS:-1000}
PORT=${PORT:-18181}
BIN=${BIN:-target/release/sentinel-admin}
OWNER="$BASE/$DB"
# The API role (`sentinel_api`) logs in with trust auth here; else set API_URL.
API_URL=${API_URL:-"${BASE/\/\/*@/\/\/sentinel_api@}/$DB"}
# The platform role (`sentinel_platform`, migration 0013) likewise; else set PLATFORM_URL.
PLATFORM_URL=${PLATFORM_URL:-"${BASE/\/\/*@/\/\/sentinel_platform@}/$DB"}
A="http://127.0.0.1:$PORT"
ROOT_EMAIL=root@platform.example.com
export SENTINEL_BOOTSTRAP_PASSWORD=Scale-Passw0rd!
export RUST_LOG=${RUST_LOG:-sentinel_admin=info}

now() { date +%s.%N; }
ms() { python3 -c "print(round(($2 - $1) * 1000))"; }

if [ -z "${SKIP_SEED:-}" ]; then
    psql "$BASE/postgres" -qc "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
    DATABASE_URL=$OWNER $BIN migrate >/dev/null
    DATABASE_URL=$OWNER $BIN bootstrap --email $ROOT_EMAIL >/dev/null
    echo "seeding $TENANTS tenants × ($USERS users, $ROLES roles, $PERMS permissions)"
    t0=$(now)
    psql "$OWNER" -q -v tenants="$TENANTS" -v users="$USERS" -v roles="$ROLES" -v perms="$PERMS" \
        -f admin-api/examples/scale_seed.sql
    echo "seed: $(ms "$t0" "$(now)") ms"
else
    # Reuse the seeded database: forget every publication, so that the next
    # one is a first publication again.
    psql "$OWNER" -qc "TRUNCATE sentinel.policy_snapshots, sentinel.policy_parts"
fi
DATABASE_URL=$OWNER $BIN gateway-key create --name gw-scale >/dev/null 2>&1 || true
KEY=$(DATABASE_URL=$OWNER $BIN gateway-key rotate --name gw-scale)

echo "== first publication (every part)"
DATABASE_URL=$OWNER RUST_LOG=error /usr/bin/time -f "wall %e s, max RSS %M KiB" $BIN publish
echo "== forced publication, nothing changed"
DATABASE_URL=$OWNER RUST_LOG=error /usr/bin/time -f "wall %e s, max RSS %M KiB" $BIN publish
echo "== --rebuild: every shard loaded and compiled again (nothing new to store)"
DATABASE_URL=$OWNER RUST_LOG=error /usr/bin/time -f "wall %e s, max RSS %M KiB" $BIN publish --rebuild
echo "== one user locked (or unlocked) by SQL, then publish (CLI, incl. process start)"
psql "$OWNER" -qc "SELECT set_config('sentinel.all_tenants', 'on', false);
    UPDATE sentinel.users SET is_locked = NOT is_locked
     WHERE id = (SELECT id FROM sentinel.users WHERE email LIKE 'user7@%' ORDER BY id LIMIT 1)"
DATABASE_URL=$OWNER RUST_LOG=error /usr/bin/time -f "wall %e s, max RSS %M KiB" $BIN publish

echo "== through the API"
DATABASE_URL=$API_URL SENTINEL_PLATFORM_DATABASE_URL=$PLATFORM_URL SENTINEL_SNAPSHOT_TICK_SECONDS=3600 $BIN serve --listen 127.0.0.1:$PORT \
    > /tmp/scale_delta_serve.log 2>&1 &
SERVE=$!
trap 'kill $SERVE 2>/dev/null' EXIT
for _ in $(seq 1 100); do curl -sf $A/healthz >/dev/null && break; sleep 0.2; done
login() {
    curl -sf $A/api/v1/auth/login -H 'content-type: application/json' \
        -d "{\"email\":\"$ROOT_EMAIL\",\"password\":\"$SENTINEL_BOOTSTRAP_PASSWORD\",\"tenant_code\":\"PLATFORM\"}" \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}
TOKEN=$(login)

full() {
    curl -s -o /tmp/scale_full.json -D /tmp/scale_full.h \
        -w "full fetch: HTTP %{http_code}, %{size_download} bytes, %{time_total} s\n" \
        -H "x-api-key: $KEY" "$A/api/v1/snapshots/latest"
    V=$(grep -i '^x-sentinel-snapshot-version' /tmp/scale_full.h | tr -dc '0-9')
}
full   # cold: parts read from PostgreSQL into the cache
full   # warm
echo "version $V"

# change NAME METHOD PATH TENANT BODY [TOKEN]: the API call, then the delta long-poll.
change() {
    local name=$1 method=$2 path=$3 tenant=$4 body=$5 token=${6:-$TOKEN}
    curl -s -o /tmp/scale_delta.json -D /tmp/scale_delta.h \
        -w "%{http_code} %{size_download}\n" -H "x-api-key: $KEY" -H "if-none-match: \"$V\"" \
        "$A/api/v1/snapshots/latest?since=$V&wait=30" > /tmp/scale_delta.out &
    local poll=$!
    sleep 0.5
    local t1 t2
    curl -sf -o /dev/null -X "$method" "$A$path" -H "authorization: Bearer $token" \
        -H "x-tenant-id: $tenant" -H 'content-type: application/json' -d "$body"
    t1=$(now)
    wait $poll
    t2=$(now)
    local nv
    nv=$(grep -i '^x-sentinel-snapshot-version' /tmp/scale_delta.h | tr -dc '0-9')
    echo "$name: API call returned → delta answered in $(ms "$t1" "$t2") ms;" \
        "HTTP $(cut -d' ' -f1 /tmp/scale_delta.out), version $V → $nv," \
        "$(cut -d' ' -f2 /tmp/scale_delta.out) bytes," \
        "parts: $(python3 -c 'import json; print(len(json.load(open("/tmp/scale_delta.json"))["parts"]))')"
    V=$nv
}

q() { psql "$OWNER" -Atc "SELECT set_config('sentinel.all_tenants', 'on', false)" -c "$1" | tail -1; }
T=$(q "SELECT id FROM sentinel.tenants WHERE code = 'SCALE-500'")
U=$(q "SELECT id FROM sentinel.users WHERE tenant_id = '$T' ORDER BY id LIMIT 1")
R=$(q "SELECT id FROM sentinel.roles WHERE tenant_id = '$T' AND name = 'role-1'")
P=$(q "SELECT id FROM sentinel.permissions WHERE tenant_id = '$T' AND name = 'perm-2'")

for i in 1 2 3; do
    change "lock one user (run $i)" POST "/api/v1/users/$U/lock" "$T" '{}'
    change "unlock it (run $i)" POST "/api/v1/users/$U/unlock" "$T" '{}'
done
for i in 1 2 3; do
    change "add a permission to a role (run $i)" POST "/api/v1/roles/$R/permissions" "$T" "{\"permission_ids\":[\"$P\"]}"
    change "remove it (run $i)" DELETE "/api/v1/roles/$R/permissions/$P" "$T" '{}'
done
PLATFORM=00000000-0000-0000-0000-000000000000
for i in 1 2 3; do
    change "suspend a tenant (run $i)" PATCH "/api/v1/tenants/$T" "$PLATFORM" '{"status":"suspended"}'
    change "activate it (run $i)" POST "/api/v1/tenants/$T/activate" "$PLATFORM" '{}'
    OTHER=$(login)
    change "logout (run $i)" POST /api/v1/auth/logout "$PLATFORM" '{}' "$OTHER"
done
grep 'policy snapshot published' /tmp/scale_delta_serve.log | tail -21 | sed 's/\x1b\[[0-9;]*m//g' || true
ps -o rss= -p $SERVE | awk '{print "serve resident: " int($1/1024) " MiB"}'
