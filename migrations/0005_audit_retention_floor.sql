-- Audit (issue 18): the API role may call the maintenance functions of
-- 0004, so they must not be a way to empty the trail or flood the catalog:
-- no retention is shorter than 30 days, whatever a tenant's
-- `audit_retention_days` or the caller's default says, and partitions are
-- made at most 24 months ahead. Grants and owners stay as 0004 set them.

CREATE OR REPLACE FUNCTION sentinel.audit_ensure_partitions(p_ahead integer) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, sentinel
    AS $$
DECLARE
    n integer := 0;
    m integer;
BEGIN
    FOR m IN 0 .. least(greatest(p_ahead, 0), 24) LOOP
        IF sentinel.audit_ensure_partition(((now() AT TIME ZONE 'UTC')::date + make_interval(months => m))::date) THEN
            n := n + 1;
        END IF;
    END LOOP;
    RETURN n;
END
$$;

CREATE OR REPLACE FUNCTION sentinel.audit_apply_retention(p_default_days integer,
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
    p_default_days := greatest(p_default_days, 30);
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
                    THEN greatest((t.settings->>'audit_retention_days')::integer, 30)
                    ELSE p_default_days END AS days
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
                      AND h.chain_day < today - greatest((t.settings->>'audit_retention_days')::integer, 30))
        OR (NOT EXISTS (SELECT 1 FROM sentinel.tenants t WHERE t.id = h.chain_tenant
                         AND t.settings->>'audit_retention_days' ~ '^[0-9]{1,6}$')
            AND h.chain_day < today - p_default_days);
END
$$;
