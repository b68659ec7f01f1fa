#!/bin/sh
# The compose stack's one-shot `init` service (compose.yaml): brings the
# database to the current schema, creates the platform superuser and the demo
# data, and hands the gateways what they need to pull policy (an API key and
# the pinned snapshot JWKS) through the `bootstrap` volume. Every step is
# idempotent: `docker compose up` runs it on every start.
#
# Runs as the migration (owner) role: DATABASE_URL, SENTINEL_BOOTSTRAP_EMAIL,
# SENTINEL_BOOTSTRAP_PASSWORD; SENTINEL_BOOTSTRAP_DIR (default
# /var/lib/sentinel-admin) is where the two files go.
set -eu
out="${SENTINEL_BOOTSTRAP_DIR:-/var/lib/sentinel-admin}"
umask 077

sentinel-admin migrate
sentinel-admin bootstrap --email "$SENTINEL_BOOTSTRAP_EMAIL"
sentinel-admin seed-demo

# The gateways' service account (scope snapshot:read): created once, its key
# kept in the volume. When the account exists but the key file is gone (the
# volume was removed, the database was not), the key is rotated instead.
if [ ! -s "$out/gateway.key" ]; then
  if ! sentinel-admin gateway-key create --name compose-gateways >"$out/gateway.key.new"; then
    sentinel-admin gateway-key rotate --name compose-gateways >"$out/gateway.key.new"
  fi
  mv "$out/gateway.key.new" "$out/gateway.key"
fi

# The snapshot keys the gateways pin, exported from the database rather than
# fetched from the running admin API (docs/operations.md). Rewritten on every
# start, so a rotation reaches the gateways: they re-read keys_file on change.
sentinel-admin snapshot-jwks >"$out/snapshot-keys.jwks.json.new"
mv "$out/snapshot-keys.jwks.json.new" "$out/snapshot-keys.jwks.json"
echo "init: database migrated, superuser and demo data in place, gateway key and snapshot JWKS in $out"
