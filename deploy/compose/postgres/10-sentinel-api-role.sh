#!/bin/sh
# Runs once, when the postgres image initialises an empty data directory
# (/docker-entrypoint-initdb.d): creates the admin API's login role with a
# password. The first migration then finds the role and only grants to it
# (migrations/0001_schema.sql creates it, without a password, when missing).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  --set=pw="$SENTINEL_API_DB_PASSWORD" <<'SQL'
CREATE ROLE sentinel_api LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT PASSWORD :'pw';
SQL
