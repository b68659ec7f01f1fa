#!/bin/sh
# Runs once, when the postgres image initialises an empty data directory
# (/docker-entrypoint-initdb.d): creates the admin API's two login roles with
# their passwords. The migrations then find the roles and only grant to them
# (migrations/0001_schema.sql and 0013_platform_role.sql create them, without
# a password, when missing). `sentinel_api` serves tenant requests;
# `sentinel_platform` does the platform-wide work (docs/admin-api.md).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  --set=pw="$SENTINEL_API_DB_PASSWORD" --set=ppw="$SENTINEL_PLATFORM_DB_PASSWORD" <<'SQL'
CREATE ROLE sentinel_api LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT PASSWORD :'pw';
CREATE ROLE sentinel_platform LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT PASSWORD :'ppw';
SQL
