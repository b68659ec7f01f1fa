-- The platform role (issue 17, item 10; docs/security.md, "Database roles").
--
-- Until now every row-level-security policy trusted the setting
-- `sentinel.all_tenants = on`, and the API role (`sentinel_api`) could set it
-- itself: one injected `set_config` in a tenant's request, or one bug that
-- began the wrong kind of transaction, and every tenant's rows were visible.
-- The platform-wide work (platform superadmin requests, the snapshot
-- publisher, the signing keys, the audit ingest from gateways, the workers)
-- now runs as a second login role, `sentinel_platform`, on a pool of its own
-- (`SENTINEL_PLATFORM_DATABASE_URL`), and the setting is honoured only for
-- that role and for the owner of the schema (migrations, the operator
-- commands, and the SECURITY DEFINER functions, which run as the owner).
--
-- 1. The role, created like `sentinel_api` in 0001: only when missing.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sentinel_platform') THEN
        CREATE ROLE sentinel_platform LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL; -- created concurrently by a migration of another database
END
$$;

-- 2. Its privileges are those of the API role (copied object by object, so
--    that the append-only tables stay append-only for it too), plus the
--    platform-only tables below. Tables of later migrations get both roles'
--    grants by default.
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT c.relname, c.relkind, a.privilege_type
               FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace
               CROSS JOIN LATERAL aclexplode(c.relacl) a
              WHERE n.nspname = 'sentinel' AND a.grantee = 'sentinel_api'::regrole
    LOOP
        EXECUTE format('GRANT %s ON %s sentinel.%I TO sentinel_platform', r.privilege_type,
                       CASE WHEN r.relkind = 'S' THEN 'SEQUENCE' ELSE 'TABLE' END, r.relname);
    END LOOP;
    FOR r IN SELECT p.oid::regprocedure AS f
               FROM pg_proc p
               JOIN pg_namespace n ON n.oid = p.pronamespace
               CROSS JOIN LATERAL aclexplode(p.proacl) a
              WHERE n.nspname = 'sentinel' AND a.grantee = 'sentinel_api'::regrole
                AND a.privilege_type = 'EXECUTE'
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO sentinel_platform', r.f);
    END LOOP;
END
$$;
GRANT USAGE ON SCHEMA sentinel TO sentinel_platform;
ALTER DEFAULT PRIVILEGES IN SCHEMA sentinel GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO sentinel_platform;
ALTER DEFAULT PRIVILEGES IN SCHEMA sentinel GRANT USAGE ON SEQUENCES TO sentinel_platform;

-- 3. Who may work across tenants: the platform role and the schema's owner
--    (the role running this migration; written into the function so that
--    the check stays one comparison the planner inlines into every policy).
DO $$
BEGIN
    EXECUTE format(
        'CREATE FUNCTION sentinel.platform_role() RETURNS boolean
             LANGUAGE sql STABLE
             AS $f$ SELECT current_user IN (''sentinel_platform'', %L) $f$',
        current_user);
END
$$;

-- Every tenant policy calls these two: redefined, they stop trusting a
-- setting the API role can set.
CREATE OR REPLACE FUNCTION sentinel.all_tenants() RETURNS boolean
    LANGUAGE sql STABLE
    AS $$ SELECT coalesce(current_setting('sentinel.all_tenants', true), '') = 'on'
                 AND sentinel.platform_role() $$;

-- Signing keys, snapshot keys, snapshot manifests and parts: platform only.
CREATE OR REPLACE FUNCTION sentinel.outside_tenant() RETURNS boolean
    LANGUAGE sql STABLE
    AS $$ SELECT sentinel.current_tenant() IS NULL AND sentinel.platform_role() $$;

-- 4. The API role loses the platform-only tables altogether (an injected
--    query now fails with "permission denied" instead of finding them empty).
REVOKE ALL ON sentinel.signing_keys, sentinel.snapshot_signing_keys,
              sentinel.policy_snapshots, sentinel.policy_parts FROM sentinel_api;
REVOKE EXECUTE ON FUNCTION sentinel.prune_policy_snapshots(integer) FROM sentinel_api;

-- 5. The two pre-authentication lookups (login by tenant code, API key by
--    prefix) see across tenants for one row: they run as the owner now, the
--    only way a function the API role calls can still see across tenants.
ALTER FUNCTION sentinel.tenant_by_code(text) SECURITY DEFINER SET search_path = pg_catalog, sentinel;
ALTER FUNCTION sentinel.api_key_owner(text) SECURITY DEFINER SET search_path = pg_catalog, sentinel;
REVOKE ALL ON FUNCTION sentinel.tenant_by_code(text), sentinel.api_key_owner(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION sentinel.tenant_by_code(text), sentinel.api_key_owner(text)
    TO sentinel_api, sentinel_platform;

-- 6. Failed-login backoff shared by every replica (issue 17, item 9; it was
--    kept in each process's memory, so an attacker spreading guesses over
--    the replicas behind a load balancer got one budget per replica). One
--    row per (tenant, account, client address); the account is the SHA-256
--    of the lower-cased email, so that typed names of unknown accounts are
--    not kept in clear. Rows are forgotten an hour after their last failure
--    (admin-api/src/throttle.rs).
CREATE TABLE sentinel.login_failures (
    tenant_id    uuid NOT NULL CONSTRAINT login_failures_tenant_fkey
                 REFERENCES sentinel.tenants (id) ON DELETE CASCADE,
    account      bytea NOT NULL CONSTRAINT login_failures_account_check CHECK (length(account) = 32),
    address      text NOT NULL CONSTRAINT login_failures_address_check CHECK (length(address) <= 64),
    failures     integer NOT NULL CONSTRAINT login_failures_failures_check CHECK (failures > 0),
    last_failure timestamptz NOT NULL,
    locked_until timestamptz,
    PRIMARY KEY (tenant_id, account, address)
);
CREATE INDEX login_failures_last_idx ON sentinel.login_failures (tenant_id, last_failure);
ALTER TABLE sentinel.login_failures ENABLE ROW LEVEL SECURITY;
ALTER TABLE sentinel.login_failures FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sentinel.login_failures
    USING (sentinel.all_tenants() OR tenant_id = sentinel.current_tenant())
    WITH CHECK (sentinel.all_tenants() OR tenant_id = sentinel.current_tenant());
REVOKE TRUNCATE ON sentinel.login_failures FROM sentinel_api, sentinel_platform;
