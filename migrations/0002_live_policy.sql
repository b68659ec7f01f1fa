-- Live policy: every committed policy change bumps a revision counter and
-- announces it; the admin API's publisher turns revisions into signed
-- snapshots (exact payload bytes) that gateways pull.
--
-- Never edit a released migration: later changes go in 0003_*.sql.

-- ---------------------------------------------------------------- the revision counter
-- One row. Bumped at commit time (deferred constraint triggers below) by every
-- transaction that changed a table the policy is built from, so that the
-- publisher can tell "changed since the last snapshot" from one read, in the
-- same MVCC snapshot it loads the policy from.
CREATE TABLE sentinel.policy_revision (
    id          boolean PRIMARY KEY DEFAULT true CONSTRAINT policy_revision_one_row CHECK (id),
    revision    bigint NOT NULL,
    changed_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO sentinel.policy_revision (id, revision) VALUES (true, 1);

-- Runs as the owner: the API role may read the counter, never set it.
-- Deferred to commit, so the counter row is the last lock a transaction takes
-- (no lock-order deadlock with the data rows), and at most once per
-- transaction (a transaction-local flag), so a cascade of 100,000 rows costs
-- one update. NOTIFY is delivered at commit, and only if the transaction
-- commits; duplicates inside one transaction are folded by PostgreSQL.
CREATE FUNCTION sentinel.bump_policy_revision() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, sentinel
    AS $$
BEGIN
    IF coalesce(current_setting('sentinel.policy_bumped', true), '') = 'on' THEN
        RETURN NULL;
    END IF;
    PERFORM set_config('sentinel.policy_bumped', 'on', true);
    UPDATE sentinel.policy_revision SET revision = revision + 1, changed_at = now() WHERE id;
    PERFORM pg_notify('sentinel_policy', TG_TABLE_NAME);
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION sentinel.bump_policy_revision() FROM PUBLIC;

-- Every table `admin-api/src/snapshot.rs` reads. (`resources`, `navigation_items`
-- and `refresh_tokens` are not part of the gateway policy.)
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['tenants', 'roles', 'user_roles', 'groups', 'user_groups', 'group_roles',
                             'permissions', 'role_permissions', 'token_blacklist', 'field_definitions']
    LOOP
        EXECUTE format('CREATE CONSTRAINT TRIGGER %I_policy_revision AFTER INSERT OR UPDATE OR DELETE ON sentinel.%I
                            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION sentinel.bump_policy_revision()', t, t);
    END LOOP;
END
$$;

-- Users: logins write `last_login`, `login_count` and `failed_login_count` on
-- every attempt; only the columns the policy carries count as a change.
CREATE CONSTRAINT TRIGGER users_policy_revision_ins_del AFTER INSERT OR DELETE ON sentinel.users
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION sentinel.bump_policy_revision();
CREATE CONSTRAINT TRIGGER users_policy_revision_upd AFTER UPDATE ON sentinel.users
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    WHEN (OLD.tenant_id IS DISTINCT FROM NEW.tenant_id
          OR OLD.email IS DISTINCT FROM NEW.email
          OR OLD.name IS DISTINCT FROM NEW.name
          OR OLD.is_service_account IS DISTINCT FROM NEW.is_service_account
          OR OLD.is_active IS DISTINCT FROM NEW.is_active
          OR OLD.is_locked IS DISTINCT FROM NEW.is_locked
          OR OLD.locked_until IS DISTINCT FROM NEW.locked_until
          OR OLD.attributes IS DISTINCT FROM NEW.attributes
          OR OLD.api_key_prefix IS DISTINCT FROM NEW.api_key_prefix
          OR OLD.api_key_hash IS DISTINCT FROM NEW.api_key_hash
          OR OLD.api_key_expires_at IS DISTINCT FROM NEW.api_key_expires_at)
    EXECUTE FUNCTION sentinel.bump_policy_revision();

REVOKE INSERT, UPDATE, DELETE ON sentinel.policy_revision FROM sentinel_api;

-- ---------------------------------------------------------------- snapshots: exact bytes
-- `body jsonb` does not keep bytes (key order, whitespace), and the signature
-- covers exact bytes: new snapshots store `payload` (the JSON bytes served to
-- gateways) and leave `body` NULL. Rows of the old `publish` (no payload) are
-- never served.
ALTER TABLE sentinel.policy_snapshots
    ALTER COLUMN body DROP NOT NULL,
    ADD COLUMN payload bytea,
    -- `policy_revision.revision` the payload was built from.
    ADD COLUMN source_revision bigint,
    -- When a time window (role assignment `valid_from`/`valid_until`) opens or
    -- closes: the payload goes stale then even without a write.
    ADD COLUMN refresh_after timestamptz,
    ADD CONSTRAINT policy_snapshots_signed CHECK (
        payload IS NULL OR (signature IS NOT NULL AND kid IS NOT NULL AND sha256 IS NOT NULL));
ALTER TABLE sentinel.policy_snapshots
    ADD CONSTRAINT policy_snapshots_version_positive CHECK (version > 0);

-- Retention: keeps the newest `p_keep` (at least 1) snapshots. The API role
-- still may not UPDATE or DELETE snapshot rows itself.
CREATE FUNCTION sentinel.prune_policy_snapshots(p_keep integer) RETURNS bigint
    LANGUAGE sql SECURITY DEFINER
    SET search_path = pg_catalog, sentinel
    AS $$
    WITH keep AS (
        SELECT version FROM sentinel.policy_snapshots ORDER BY version DESC LIMIT greatest(p_keep, 1)
    ), gone AS (
        DELETE FROM sentinel.policy_snapshots
         WHERE version < (SELECT min(version) FROM keep)
        RETURNING 1
    )
    SELECT count(*) FROM gone
$$;
REVOKE ALL ON FUNCTION sentinel.prune_policy_snapshots(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION sentinel.prune_policy_snapshots(integer) TO sentinel_api;

-- ---------------------------------------------------------------- snapshot signing keys
-- Separate from the access-token keys (`signing_keys`): a stolen token key
-- cannot sign policy. `next` is published in the JWKS before it signs (so
-- gateways with a pinned key file can be given it ahead of a rotation);
-- `current` signs; `previous` still verifies until the next rotation.
CREATE TABLE sentinel.snapshot_signing_keys (
    kid          text PRIMARY KEY,
    alg          text NOT NULL CONSTRAINT snapshot_signing_keys_alg_check CHECK (alg IN ('ES256', 'EdDSA')),
    private_pem  text NOT NULL,
    public_jwk   jsonb NOT NULL,
    status       text NOT NULL CONSTRAINT snapshot_signing_keys_status_check CHECK (status IN ('next', 'current', 'previous', 'retired')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    rotated_at   timestamptz
);
CREATE UNIQUE INDEX snapshot_signing_keys_one_current ON sentinel.snapshot_signing_keys (status) WHERE status = 'current';
CREATE UNIQUE INDEX snapshot_signing_keys_one_next ON sentinel.snapshot_signing_keys (status) WHERE status = 'next';
