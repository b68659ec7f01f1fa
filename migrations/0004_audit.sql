-- Audit trail (issue 18, docs/audit.md): every gateway decision and every
-- admin API write, one row each in `sentinel.audit_logs`.
--
-- * Partitioned by month on `time`; partitions are created ahead by the
--   admin API (`audit_ensure_partitions`, on start and on a timer: this
--   month and the next two) and on demand for the months a batch names.
-- * Idempotent: the primary key is `(time, id)` (the producer's UUID v7 and
--   its time), so a replayed event is never stored twice.
-- * Tamper evident: one hash chain per (tenant, UTC day); events without a
--   tenant chain under the key ffffffff-ffff-ffff-ffff-ffffffffffff (the nil
--   UUID is the platform tenant). `chain_seq` counts
--   from 1 in each chain and `hash = SHA-256(previous hash || seq || the
--   row's canonical bytes)` (admin-api/src/audit/chain.rs);
--   `audit_chain_heads` holds the last link of every chain, so that a cut
--   end shows too. The API role may insert rows, never update or delete
--   them.
-- * RLS like every tenant table: a tenant sees its own events; events of
--   unauthenticated callers (tenant NULL) only across tenants.
--
-- Never edit a released migration: later changes go in 0005_*.sql.

-- The migration role is subject to the forced RLS of `roles` too.
SELECT set_config('sentinel.all_tenants', 'on', true);

CREATE TABLE sentinel.audit_logs (
    time              timestamptz NOT NULL,
    id                uuid NOT NULL,
    source            text NOT NULL CONSTRAINT audit_logs_source_check CHECK (source IN ('gateway', 'admin')),
    request_id        text,
    tenant_id         uuid,
    principal_id      text,
    principal_kind    text CONSTRAINT audit_logs_principal_kind_check CHECK (principal_kind IN ('user', 'service_account')),
    method            text,
    route             text,
    path              text,
    resource          text,
    resource_id       text,
    action            text,
    outcome           text NOT NULL CONSTRAINT audit_logs_outcome_check
                      CHECK (outcome IN ('allowed', 'denied', 'rate_limited', 'step_up', 'error')),
    code              text,
    reason            text,
    rules             text[] NOT NULL DEFAULT '{}',
    client_ip         text,
    user_agent        text,
    status            integer,
    latency_ms        double precision,
    risk_score        double precision,
    snapshot_version  bigint,
    -- The name of the gateway key that shipped the event (NULL for admin events).
    gateway           text,
    before            jsonb,
    after             jsonb,
    -- Hash chain per (coalesce(tenant_id, 'ffffffff-…'), UTC day of `time`).
    chain_seq         bigint NOT NULL CONSTRAINT audit_logs_chain_seq_check CHECK (chain_seq > 0),
    hash              bytea NOT NULL,
    ingested_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (time, id)
) PARTITION BY RANGE (time);

-- The query filters (admin-api/src/audit/query.rs), newest first with the
-- (time, id) keyset cursor: the primary key serves the platform-wide walk.
CREATE INDEX audit_logs_tenant_time_idx ON sentinel.audit_logs (tenant_id, time DESC, id DESC);
CREATE INDEX audit_logs_principal_time_idx ON sentinel.audit_logs (principal_id, time DESC, id DESC)
    WHERE principal_id IS NOT NULL;
-- Every index ends in (time, id): a page is always an ordered index walk
-- that stops at the limit, never a sort of all matches (query.rs).
CREATE INDEX audit_logs_request_idx ON sentinel.audit_logs (request_id, time DESC, id DESC)
    WHERE request_id IS NOT NULL;
-- "What was refused": the rare outcomes, per tenant and platform-wide,
-- without walking the allowed ones.
CREATE INDEX audit_logs_tenant_outcome_time_idx ON sentinel.audit_logs (tenant_id, outcome, time DESC, id DESC)
    WHERE outcome <> 'allowed';
CREATE INDEX audit_logs_outcome_time_idx ON sentinel.audit_logs (outcome, time DESC, id DESC)
    WHERE outcome <> 'allowed';
-- Admin writes, rare among gateway decisions.
CREATE INDEX audit_logs_admin_time_idx ON sentinel.audit_logs (time DESC, id DESC)
    WHERE source = 'admin';

ALTER TABLE sentinel.audit_logs ENABLE ROW LEVEL SECURITY;
ALTER TABLE sentinel.audit_logs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sentinel.audit_logs
    USING (sentinel.all_tenants() OR tenant_id = sentinel.current_tenant())
    WITH CHECK (sentinel.all_tenants() OR tenant_id = sentinel.current_tenant());
REVOKE UPDATE, DELETE, TRUNCATE ON sentinel.audit_logs FROM sentinel_api;

-- The last link of every chain. `chain_tenant` is ffffffff-ffff-ffff-ffff-ffffffffffff
-- for events without a tenant.
CREATE TABLE sentinel.audit_chain_heads (
    chain_tenant  uuid NOT NULL,
    chain_day     date NOT NULL,
    seq           bigint NOT NULL,
    hash          bytea NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (chain_tenant, chain_day)
);
ALTER TABLE sentinel.audit_chain_heads ENABLE ROW LEVEL SECURITY;
ALTER TABLE sentinel.audit_chain_heads FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sentinel.audit_chain_heads
    USING (sentinel.all_tenants() OR chain_tenant = sentinel.current_tenant())
    WITH CHECK (sentinel.all_tenants() OR chain_tenant = sentinel.current_tenant());
REVOKE DELETE, TRUNCATE ON sentinel.audit_chain_heads FROM sentinel_api;

-- ---------------------------------------------------------------- partitions
-- Creates the partition of the month holding `p_day` (idempotent; true when
-- it created one). Runs as the owner: the API role creates nothing itself.
-- The API role reaches partitions only through `audit_logs` (its grants and
-- policies); the partition itself is closed to it, and forces the same
-- policy should a grant ever be added.
CREATE FUNCTION sentinel.audit_ensure_partition(p_day date) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, sentinel
    AS $$
DECLARE
    lo date := date_trunc('month', p_day)::date;
    hi date := (date_trunc('month', p_day) + interval '1 month')::date;
    name text := format('audit_logs_p%s', to_char(lo, 'YYYYMM'));
BEGIN
    IF to_regclass(format('sentinel.%I', name)) IS NOT NULL THEN
        RETURN false;
    END IF;
    -- Serializes creators (two API replicas at start).
    PERFORM pg_advisory_xact_lock(hashtext('sentinel.audit_ensure_partition'));
    IF to_regclass(format('sentinel.%I', name)) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE sentinel.%I PARTITION OF sentinel.audit_logs
                        FOR VALUES FROM (%L) TO (%L)',
                   name, lo::timestamp AT TIME ZONE 'UTC', hi::timestamp AT TIME ZONE 'UTC');
    EXECUTE format('REVOKE ALL ON sentinel.%I FROM sentinel_api', name);
    EXECUTE format('ALTER TABLE sentinel.%I ENABLE ROW LEVEL SECURITY', name);
    EXECUTE format('ALTER TABLE sentinel.%I FORCE ROW LEVEL SECURITY', name);
    EXECUTE format('CREATE POLICY tenant_isolation ON sentinel.%I
                        USING (sentinel.all_tenants() OR tenant_id = sentinel.current_tenant())
                        WITH CHECK (sentinel.all_tenants() OR tenant_id = sentinel.current_tenant())', name);
    RETURN true;
END
$$;
REVOKE ALL ON FUNCTION sentinel.audit_ensure_partition(date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION sentinel.audit_ensure_partition(date) TO sentinel_api;

-- This month and the next `p_ahead`; returns how many were created.
CREATE FUNCTION sentinel.audit_ensure_partitions(p_ahead integer) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, sentinel
    AS $$
DECLARE
    n integer := 0;
    m integer;
BEGIN
    FOR m IN 0 .. greatest(p_ahead, 0) LOOP
        IF sentinel.audit_ensure_partition(((now() AT TIME ZONE 'UTC')::date + make_interval(months => m))::date) THEN
            n := n + 1;
        END IF;
    END LOOP;
    RETURN n;
END
$$;
REVOKE ALL ON FUNCTION sentinel.audit_ensure_partitions(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION sentinel.audit_ensure_partitions(integer) TO sentinel_api;

SELECT sentinel.audit_ensure_partitions(2);

-- ---------------------------------------------------------------- retention
-- A tenant keeps its events `settings.audit_retention_days` days (default
-- `p_default_days`). Whole UTC days go at once, so that a chain is either
-- complete or gone: a tenant's days past its retention are deleted, then
-- partitions whose every day is past the longest retention are dropped.
-- Events without a tenant keep `p_default_days`. Returns (rows deleted,
-- partitions dropped).
CREATE FUNCTION sentinel.audit_apply_retention(p_default_days integer,
                                               OUT deleted_rows bigint, OUT dropped_partitions integer)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, sentinel
    AS $$
DECLARE
    today date := (now() AT TIME ZONE 'UTC')::date;
    longest integer;
    part record;
    n bigint;
BEGIN
    PERFORM set_config('sentinel.all_tenants', 'on', true);
    deleted_rows := 0;
    dropped_partitions := 0;
    SELECT greatest(p_default_days, coalesce(max((settings->>'audit_retention_days')::integer), 0))
      INTO longest
      FROM sentinel.tenants
     WHERE settings ? 'audit_retention_days' AND settings->>'audit_retention_days' ~ '^[0-9]{1,6}$';
    longest := coalesce(longest, p_default_days);
    -- Partitions entirely older than the longest retention.
    FOR part IN
        SELECT c.relname AS name
          FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'sentinel.audit_logs'::regclass
           AND c.relname ~ '^audit_logs_p[0-9]{6}$'
           AND (to_date(substr(c.relname, 13), 'YYYYMM') + interval '1 month')::date <= today - longest
    LOOP
        EXECUTE format('DROP TABLE sentinel.%I', part.name);
        dropped_partitions := dropped_partitions + 1;
    END LOOP;
    -- Each tenant's (and the tenantless) days past its own retention.
    WITH keep AS (
        SELECT t.id AS tenant,
               CASE WHEN t.settings->>'audit_retention_days' ~ '^[0-9]{1,6}$'
                    THEN (t.settings->>'audit_retention_days')::integer ELSE p_default_days END AS days
          FROM sentinel.tenants t
    ), d AS (
        DELETE FROM sentinel.audit_logs a
         USING keep k
         WHERE a.tenant_id = k.tenant
           AND a.time < ((today - k.days)::timestamp AT TIME ZONE 'UTC')
        RETURNING 1
    )
    SELECT count(*) INTO n FROM d;
    deleted_rows := deleted_rows + n;
    WITH d AS (
        DELETE FROM sentinel.audit_logs a
         WHERE a.tenant_id IS NULL
           AND a.time < ((today - p_default_days)::timestamp AT TIME ZONE 'UTC')
        RETURNING 1
    )
    SELECT count(*) INTO n FROM d;
    deleted_rows := deleted_rows + n;
    -- Heads of chains that are gone.
    DELETE FROM sentinel.audit_chain_heads h
     WHERE h.chain_day < today - longest
        OR (h.chain_tenant = 'ffffffff-ffff-ffff-ffff-ffffffffffff' AND h.chain_day < today - p_default_days)
        OR EXISTS (SELECT 1 FROM sentinel.tenants t
                    WHERE t.id = h.chain_tenant
                      AND t.settings->>'audit_retention_days' ~ '^[0-9]{1,6}$'
                      AND h.chain_day < today - (t.settings->>'audit_retention_days')::integer)
        OR (NOT EXISTS (SELECT 1 FROM sentinel.tenants t WHERE t.id = h.chain_tenant
                         AND t.settings->>'audit_retention_days' ~ '^[0-9]{1,6}$')
            AND h.chain_day < today - p_default_days);
END
$$;
REVOKE ALL ON FUNCTION sentinel.audit_apply_retention(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION sentinel.audit_apply_retention(integer) TO sentinel_api;

-- ---------------------------------------------------------------- admin writes
-- Every write of an authenticated admin API request is recorded in its own
-- transaction (admin-api/src/audit/record.rs): `db::begin` names the actor
-- (`sentinel.audit_actor`), these triggers copy each changed row (secrets
-- redacted) into `audit_pending`, and the commit turns the rows of its
-- transaction into events. Writes without an actor (the operator commands,
-- logins) are not captured.
CREATE UNLOGGED TABLE sentinel.audit_pending (
    seq          bigserial PRIMARY KEY,
    xid          bigint NOT NULL DEFAULT txid_current(),
    tenant_id    uuid DEFAULT sentinel.current_tenant(),
    entity       text NOT NULL,
    action       text NOT NULL,
    resource_id  text,
    before       jsonb,
    after        jsonb
);
CREATE INDEX audit_pending_xid_idx ON sentinel.audit_pending (xid);
ALTER TABLE sentinel.audit_pending ENABLE ROW LEVEL SECURITY;
ALTER TABLE sentinel.audit_pending FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sentinel.audit_pending
    USING (sentinel.all_tenants() OR tenant_id = sentinel.current_tenant())
    WITH CHECK (sentinel.all_tenants() OR tenant_id = sentinel.current_tenant());

-- Secrets never enter the trail: these keys become "[redacted]" wherever a
-- row carries them (password and key hashes, token hashes, private keys).
CREATE FUNCTION sentinel.audit_redact(j jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE
    AS $$
    SELECT CASE WHEN j IS NULL THEN NULL ELSE
        (SELECT coalesce(jsonb_object_agg(k,
                    CASE WHEN k IN ('password_hash', 'api_key_hash', 'token_hash', 'private_pem', 'secret')
                              AND v <> 'null'::jsonb
                         THEN '"[redacted]"'::jsonb ELSE v END), '{}'::jsonb)
           FROM jsonb_each(j) AS e(k, v))
    END
$$;

CREATE FUNCTION sentinel.audit_capture() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, sentinel
    AS $$
DECLARE
    o jsonb;
    n jsonb;
    row jsonb;
    op text;
    ent text;
    act text;
    rid text;
BEGIN
    IF coalesce(current_setting('sentinel.audit_actor', true), '') = '' THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN o := sentinel.audit_redact(to_jsonb(OLD)); END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN n := sentinel.audit_redact(to_jsonb(NEW)); END IF;
    row := coalesce(n, o);
    op := CASE TG_OP WHEN 'INSERT' THEN 'create' WHEN 'UPDATE' THEN 'update' ELSE 'delete' END;
    CASE TG_TABLE_NAME
        WHEN 'user_roles' THEN
            ent := 'role'; rid := row->>'role_id';
            act := CASE op WHEN 'delete' THEN 'role.unassign' ELSE 'role.assign' END;
        WHEN 'user_groups' THEN
            ent := 'group'; rid := row->>'group_id';
            act := CASE op WHEN 'delete' THEN 'group.remove_member' ELSE 'group.add_member' END;
        WHEN 'group_roles' THEN
            ent := 'group'; rid := row->>'group_id';
            act := CASE op WHEN 'delete' THEN 'group.detach_role' ELSE 'group.attach_role' END;
        WHEN 'role_permissions' THEN
            ent := 'role'; rid := row->>'role_id';
            act := CASE op WHEN 'delete' THEN 'role.detach_permission' ELSE 'role.attach_permission' END;
        WHEN 'token_blacklist' THEN
            ent := 'token'; rid := row->>'jti';
            act := CASE op WHEN 'create' THEN 'token.revoke' ELSE 'token.' || op END;
        ELSE
            ent := CASE TG_TABLE_NAME
                       WHEN 'users' THEN CASE WHEN (row->>'is_service_account')::boolean
                                              THEN 'service_account' ELSE 'user' END
                       WHEN 'navigation_items' THEN 'navigation_item'
                       ELSE rtrim(TG_TABLE_NAME, 's')
                   END;
            rid := row->>'id';
            act := ent || '.' || op;
    END CASE;
    INSERT INTO sentinel.audit_pending (entity, action, resource_id, before, after)
    VALUES (ent, act, rid, o, n);
    RETURN NULL;
END
$$;

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['tenants', 'users', 'roles', 'user_roles', 'groups', 'user_groups', 'group_roles',
                             'permissions', 'role_permissions', 'resources', 'field_definitions',
                             'navigation_items', 'token_blacklist']
    LOOP
        EXECUTE format('CREATE TRIGGER %I_audit AFTER INSERT OR UPDATE OR DELETE ON sentinel.%I
                            FOR EACH ROW EXECUTE FUNCTION sentinel.audit_capture()', t, t);
    END LOOP;
END
$$;

-- ---------------------------------------------------------------- gateway keys
-- Gateways ship their events with the key they pull snapshots with: the
-- system role `sentinel-admin gateway-key create` grants (0001's
-- `snapshot-reader`) now carries `audit:write` too, for keys made before
-- this migration as well.
UPDATE sentinel.roles
   SET scopes = array_append(scopes, 'audit:write')
 WHERE tenant_id = '00000000-0000-0000-0000-000000000000'
   AND name = 'snapshot-reader' AND is_system
   AND NOT ('audit:write' = ANY (scopes));
