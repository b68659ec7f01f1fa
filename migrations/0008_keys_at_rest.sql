-- Secrets at rest (issue 17, item 10; docs/security.md, "Keys at rest").
--
-- 1. Private keys are sealed by the admin API with a key-encryption key that
--    never reaches the database (admin-api/src/sealing.rs). The database
--    refuses a new or changed row whose key is not sealed. `NOT VALID`: rows
--    written before this migration are sealed by the next `serve` start (or
--    `sentinel-admin seal-keys`), which needs the KEK this migration lacks.
ALTER TABLE sentinel.signing_keys
    ADD CONSTRAINT signing_keys_private_sealed CHECK (private_pem LIKE 'sealed:v1:%') NOT VALID;
ALTER TABLE sentinel.snapshot_signing_keys
    ADD CONSTRAINT snapshot_signing_keys_private_sealed CHECK (private_pem LIKE 'sealed:v1:%') NOT VALID;

-- 2. The platform-wide tables (signing keys, snapshot keys, snapshot
--    manifests and parts: every tenant's policy) are out of reach of a
--    transaction working for one tenant. Tenant requests run with
--    `sentinel.tenant_id` set (db.rs::begin); the publisher, the snapshot
--    endpoint and the key loaders run without it. A forgotten filter or an
--    injected subquery in a tenant's request finds these tables empty.
CREATE FUNCTION sentinel.outside_tenant() RETURNS boolean
    LANGUAGE sql STABLE
    AS $$ SELECT sentinel.current_tenant() IS NULL $$;

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['signing_keys', 'snapshot_signing_keys', 'policy_snapshots', 'policy_parts'] LOOP
        EXECUTE format('ALTER TABLE sentinel.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE sentinel.%I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY platform_only ON sentinel.%I
                            USING (sentinel.outside_tenant())
                            WITH CHECK (sentinel.outside_tenant())', t);
    END LOOP;
END
$$;
GRANT EXECUTE ON FUNCTION sentinel.outside_tenant() TO sentinel_api;
