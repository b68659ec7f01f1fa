-- Sharded snapshots with deltas: the policy is published as one global part
-- (tenants, field definitions, revoked tokens) and one shard per tenant
-- (principals, roles, groups, permissions); a signed manifest lists the
-- SHA-256 of every part. A change re-publishes only the parts it touched, so
-- the publisher must know which parts changed since the last publication:
-- `policy_dirty`, filled at commit by the triggers below.
--
-- Never edit a released migration: later changes go in 0004_*.sql.

-- ---------------------------------------------------------------- dirty parts
-- One row per (revision, part) a committed transaction changed. `revision`
-- is the value of `policy_revision.revision` that transaction set, so the
-- publisher, reading in one REPEATABLE READ snapshot, finds exactly the parts
-- changed since the manifest it extends with
-- `revision > <that manifest's source_revision>`: the counter update and the
-- dirty rows of a transaction commit together, and transactions take the
-- counter row lock in commit order, so a change committed while a publication
-- runs has a higher revision than the one the publication read and is picked
-- up by the next one. Nothing is consumed (deleted) by a publication;
-- `prune_policy_snapshots` drops rows no longer needed.
-- `part` is a tenant id (that tenant's shard) or 'global'.
CREATE TABLE sentinel.policy_dirty (
    revision  bigint NOT NULL,
    part      text NOT NULL,
    PRIMARY KEY (revision, part)
);
REVOKE INSERT, UPDATE, DELETE ON sentinel.policy_dirty FROM sentinel_api;

-- Replaces `bump_policy_revision` on the policy tables: the same revision bump
-- and NOTIFY (deferred to commit, once per transaction), plus the part the row
-- belongs to. Runs as the owner: the API role may read the table, never write it.
-- A bulk change of one tenant inserts one row: the last part marked is
-- remembered for the transaction.
CREATE FUNCTION sentinel.mark_policy_dirty() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, sentinel
    AS $$
DECLARE
    rev   bigint := nullif(current_setting('sentinel.policy_rev', true), '')::bigint;
    parts text[];
    p     text;
BEGIN
    IF rev IS NULL THEN
        UPDATE sentinel.policy_revision SET revision = revision + 1, changed_at = now()
         WHERE id RETURNING revision INTO rev;
        PERFORM set_config('sentinel.policy_rev', rev::text, true);
        PERFORM set_config('sentinel.policy_bumped', 'on', true);
        PERFORM pg_notify('sentinel_policy', TG_TABLE_NAME);
    END IF;
    IF TG_TABLE_NAME IN ('tenants', 'field_definitions', 'token_blacklist') THEN
        parts := ARRAY['global'];
    ELSIF TG_OP = 'INSERT' THEN
        parts := ARRAY[NEW.tenant_id::text];
    ELSIF TG_OP = 'DELETE' THEN
        parts := ARRAY[OLD.tenant_id::text];
    ELSIF OLD.tenant_id IS DISTINCT FROM NEW.tenant_id THEN
        parts := ARRAY[NEW.tenant_id::text, OLD.tenant_id::text];
    ELSE
        parts := ARRAY[NEW.tenant_id::text];
    END IF;
    FOREACH p IN ARRAY parts LOOP
        CONTINUE WHEN p IS NULL OR p = coalesce(current_setting('sentinel.policy_dirty_last', true), '');
        INSERT INTO sentinel.policy_dirty (revision, part) VALUES (rev, p) ON CONFLICT DO NOTHING;
        PERFORM set_config('sentinel.policy_dirty_last', p, true);
    END LOOP;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION sentinel.mark_policy_dirty() FROM PUBLIC;

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['tenants', 'roles', 'user_roles', 'groups', 'user_groups', 'group_roles',
                             'permissions', 'role_permissions', 'token_blacklist', 'field_definitions']
    LOOP
        EXECUTE format('DROP TRIGGER %I_policy_revision ON sentinel.%I', t, t);
        EXECUTE format('CREATE CONSTRAINT TRIGGER %I_policy_dirty AFTER INSERT OR UPDATE OR DELETE ON sentinel.%I
                            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION sentinel.mark_policy_dirty()', t, t);
    END LOOP;
END
$$;

-- Users: only the columns the policy carries (as in 0002).
DROP TRIGGER users_policy_revision_ins_del ON sentinel.users;
DROP TRIGGER users_policy_revision_upd ON sentinel.users;
CREATE CONSTRAINT TRIGGER users_policy_dirty_ins_del AFTER INSERT OR DELETE ON sentinel.users
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION sentinel.mark_policy_dirty();
CREATE CONSTRAINT TRIGGER users_policy_dirty_upd AFTER UPDATE ON sentinel.users
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
    EXECUTE FUNCTION sentinel.mark_policy_dirty();

-- Loading one tenant's shard reads these by tenant (the link tables had no
-- tenant index; at a million permission rows a scan costs a publication).
CREATE INDEX user_roles_tenant_idx ON sentinel.user_roles (tenant_id);
CREATE INDEX user_groups_tenant_idx ON sentinel.user_groups (tenant_id);
CREATE INDEX group_roles_tenant_idx ON sentinel.group_roles (tenant_id);
CREATE INDEX role_permissions_tenant_idx ON sentinel.role_permissions (tenant_id);
-- Every publication asks when the next role-assignment window opens or
-- closes, and which tenants' windows did since the last one: the few
-- time-bound assignments, not a scan of all of them.
CREATE INDEX user_roles_valid_from_idx ON sentinel.user_roles (valid_from)
    WHERE is_active AND valid_from IS NOT NULL;
CREATE INDEX user_roles_valid_until_idx ON sentinel.user_roles (valid_until)
    WHERE is_active AND valid_until IS NOT NULL;

-- ---------------------------------------------------------------- parts and manifests
-- Content-addressed part bytes (JSON of a `PolicySource`), shared by every
-- manifest that lists them.
CREATE TABLE sentinel.policy_parts (
    sha256      text PRIMARY KEY CONSTRAINT policy_parts_sha256_hex CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    body        bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
REVOKE UPDATE, DELETE ON sentinel.policy_parts FROM sentinel_api;

-- A sharded snapshot stores its manifest (exact bytes, signed) and leaves
-- `payload` NULL; `parts` repeats the SHA-256 of every part the manifest
-- lists, so that retention need not parse manifests. Whole-policy rows of
-- 0002 (payload, no manifest) stay for audit and keep versions monotonic, but
-- are never served again.
ALTER TABLE sentinel.policy_snapshots
    ADD COLUMN manifest bytea,
    ADD COLUMN parts text[],
    ADD CONSTRAINT policy_snapshots_manifest_signed CHECK (
        manifest IS NULL OR (payload IS NULL AND parts IS NOT NULL
                             AND signature IS NOT NULL AND kid IS NOT NULL AND sha256 IS NOT NULL));

-- Retention: keeps the newest `p_keep` (at least 1) snapshots; when some
-- went, also the parts no kept manifest lists; and the dirty rows the newest
-- manifest has absorbed. Parts are deleted under a lock that waits for
-- publications in flight (they insert parts), so a part a publication is
-- about to list again is never deleted under it.
DROP FUNCTION sentinel.prune_policy_snapshots(integer);
CREATE FUNCTION sentinel.prune_policy_snapshots(p_keep integer) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, sentinel
    AS $$
DECLARE
    gone bigint;
BEGIN
    WITH keep AS (
        SELECT version FROM sentinel.policy_snapshots ORDER BY version DESC LIMIT greatest(p_keep, 1)
    ), d AS (
        DELETE FROM sentinel.policy_snapshots
         WHERE version < (SELECT min(version) FROM keep)
        RETURNING 1
    )
    SELECT count(*) INTO gone FROM d;
    IF gone > 0 THEN
        LOCK TABLE sentinel.policy_parts IN SHARE ROW EXCLUSIVE MODE;
        DELETE FROM sentinel.policy_parts p
         WHERE p.sha256 NOT IN (SELECT unnest(s.parts) FROM sentinel.policy_snapshots s
                                 WHERE s.parts IS NOT NULL);
    END IF;
    DELETE FROM sentinel.policy_dirty
     WHERE revision <= (SELECT source_revision FROM sentinel.policy_snapshots
                         WHERE manifest IS NOT NULL ORDER BY version DESC LIMIT 1);
    RETURN gone;
END
$$;
REVOKE ALL ON FUNCTION sentinel.prune_policy_snapshots(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION sentinel.prune_policy_snapshots(integer) TO sentinel_api;
