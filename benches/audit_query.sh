#!/usr/bin/env bash
# Audit query latency at scale: fills `sentinel.audit_logs` of a scratch
# database with N events (default 10,000,000: 100 tenants, 58 days, 4 %
# denied) with generate_series, then times the queries the admin API runs
# (admin-api/src/audit/query.rs, with its settings: enable_sort and jit off)
# with EXPLAIN (ANALYZE, BUFFERS), as the API role under row-level
# security, as a tenant and as the platform.
#
#   benches/audit_query.sh [ROWS]          # needs psql (and uses target/debug/sentinel-admin migrate if built)
#
# PGURL (default postgres://postgres:postgres@127.0.0.1:5432) names the
# cluster; the database `sentinel_audit_bench` is created and kept (drop it
# yourself). The rows carry dummy hashes: `audit verify` is not meant to pass
# on them. Results: docs/PERFORMANCE.md, "Audit".
set -euo pipefail
ROWS=${1:-10000000}
PGURL=${PGURL:-postgres://postgres:postgres@127.0.0.1:5432}
DB=sentinel_audit_bench
BIN=${SENTINEL_ADMIN:-target/debug/sentinel-admin}
TENANT=11111111-1111-1111-1111-111111111111

q() { psql "$PGURL/$DB" -v ON_ERROR_STOP=1 -qAt "$@"; }
if [ -z "${SKIP_FILL:-}" ]; then # SKIP_FILL=1: time the queries of the database filled before
psql "$PGURL/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
if [ -x "$BIN" ]; then
  DATABASE_URL="$PGURL/$DB" "$BIN" migrate >/dev/null
else # no binary built: the same migrations, one transaction each
  for f in migrations/0*.sql; do psql "$PGURL/$DB" -qX -v ON_ERROR_STOP=1 --single-transaction -f "$f" >/dev/null; done
fi

echo "filling $ROWS events ..."
start=$(date +%s)
q <<SQL
SELECT set_config('sentinel.all_tenants', 'on', false);
SELECT sentinel.audit_ensure_partition((now() - interval '1 month')::date);
SELECT sentinel.audit_ensure_partition((now() - interval '2 months')::date);
INSERT INTO sentinel.audit_logs (time, id, source, request_id, tenant_id, principal_id, principal_kind,
       method, route, path, resource, resource_id, action, outcome, code, reason, rules, client_ip,
       user_agent, status, latency_ms, risk_score, snapshot_version, gateway, chain_seq, hash)
SELECT now() - (i * interval '500 milliseconds') - interval '1 minute',
       md5(i::text)::uuid,
       'gateway',
       'req-' || i,
       CASE WHEN i % 100 = 0 THEN '$TENANT'::uuid
            ELSE md5('tenant-' || (i % 100))::uuid END,
       'user-' || (i % 5000),
       'user',
       CASE WHEN i % 25 = 0 THEN 'DELETE' ELSE 'GET' END,
       CASE i % 4 WHEN 0 THEN 'msw-vessels' WHEN 1 THEN 'port-calls' WHEN 2 THEN 'fleet' ELSE 'echo' END,
       '/api/msw/vessels/' || (i % 1000),
       'vessel', (i % 1000)::text,
       CASE WHEN i % 25 = 0 THEN 'delete' ELSE 'read' END,
       CASE WHEN i % 25 = 0 THEN 'denied' WHEN i % 97 = 0 THEN 'rate_limited' ELSE 'allowed' END,
       CASE WHEN i % 25 = 0 THEN 'PERMISSION_DENIED' WHEN i % 97 = 0 THEN 'RATE_LIMITED' END,
       'reason ' || (i % 10), ARRAY['perm-' || (i % 50)],
       '203.0.113.' || (i % 250), 'Mozilla/5.0 bench', 200, 0.4, 0.05, 42, 'gw-' || (i % 2),
       1, '\x00'
  FROM generate_series(1, $ROWS) AS i;
ANALYZE sentinel.audit_logs;
SQL
echo "filled in $(( $(date +%s) - start )) s"
fi
echo "$(q -c "SELECT count(*) FROM sentinel.audit_logs") events, $(q -c "SELECT pg_size_pretty(sum(pg_total_relation_size(c.oid))) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'sentinel.audit_logs'::regclass") with indexes"

# The API role, with the password the test harness gives it (or trust).
psql "$PGURL/$DB" -qc "ALTER ROLE sentinel_api PASSWORD 'sentinel-api-test'"
API=${PGURL/\/\/postgres:postgres@/\/\/sentinel_api:sentinel-api-test@}
# Platform-wide queries run as the platform role (migration 0013): the API
# role is not believed when it asks for every tenant.
psql "$PGURL/$DB" -qc "ALTER ROLE sentinel_platform PASSWORD 'sentinel-platform-test'"
PLATFORM=${PGURL/\/\/postgres:postgres@/\/\/sentinel_platform:sentinel-platform-test@}
COLS="id, time, source, request_id, tenant_id, principal_id, principal_kind, method, route, path, resource, resource_id, action, outcome, code, reason, rules, client_ip, user_agent, status, latency_ms, risk_score, snapshot_version, gateway, before, after"
CURSOR=$(q -c "SELECT time || '|' || id FROM sentinel.audit_logs WHERE tenant_id = '$TENANT' ORDER BY time DESC, id DESC OFFSET 5000 LIMIT 1")
CT=${CURSOR%%|*}; CID=${CURSOR##*|}

time_query() { # name, context setting, where clause
  local ms
  local url=$API
  [ "$2" = "$A" ] && url=$PLATFORM
  ms=$(psql "$url/$DB" -qAt -v ON_ERROR_STOP=1 <<SQL | grep -o 'Execution Time: [0-9.]*' | grep -o '[0-9.]*$'
BEGIN;
SELECT set_config($2, true), set_config('enable_sort', 'off', true), set_config('jit', 'off', true) \g /dev/null
EXPLAIN (ANALYZE, BUFFERS) SELECT $COLS FROM sentinel.audit_logs WHERE $3;
COMMIT;
SQL
)
  printf '%-44s %8s ms\n' "$1" "$ms"
}
T="'sentinel.tenant_id', '$TENANT'"
A="'sentinel.all_tenants', 'on'"
PAGE="ORDER BY time DESC, id DESC LIMIT 51"
for run in 1 2; do
  echo "run $run (tenant: as sentinel_api, platform: as sentinel_platform; EXPLAIN ANALYZE execution time)"
  time_query "tenant: newest page"                 "$T" "tenant_id = '$TENANT' $PAGE"
  time_query "tenant: page after 5,000 (cursor)"   "$T" "tenant_id = '$TENANT' AND (time, id) < ('$CT', '$CID') $PAGE"
  time_query "tenant: denied, newest page"         "$T" "tenant_id = '$TENANT' AND outcome = 'denied' $PAGE"
  time_query "tenant: one day, route=fleet"        "$T" "tenant_id = '$TENANT' AND route = 'fleet' AND time >= now() - interval '3 days' AND time < now() - interval '2 days' $PAGE"
  time_query "tenant: by principal"                "$T" "tenant_id = '$TENANT' AND principal_id = 'user-100' $PAGE"
  time_query "platform: newest page"               "$A" "true $PAGE"
  time_query "platform: denied, PERMISSION_DENIED" "$A" "outcome = 'denied' AND code = 'PERMISSION_DENIED' $PAGE"
  time_query "platform: admin writes"               "$A" "source = 'admin' AND action = 'role.update' $PAGE"
  time_query "platform: by principal"              "$A" "principal_id = 'user-4242' $PAGE"
  time_query "platform: request id"                "$A" "request_id = 'req-4242400' ORDER BY time, id LIMIT 1000"
  time_query "tenant: request id of another tenant" "$T" "request_id = 'req-4242401' ORDER BY time, id LIMIT 1000"
done
