-- The anomaly model registry (issues 21 and 23; docs/anomaly.md, "Registry").
--
-- Platform-level, not per tenant: every gateway scores every tenant's
-- requests with one model, so a model belongs to the platform like the
-- snapshot keys and manifests do. Both tables follow 0008's pattern for
-- platform tables: forced row-level security with `platform_only`, so a
-- transaction working for one tenant (`sentinel.tenant_id` set) finds them
-- empty; the registry's endpoints (platform scopes only) and the publisher
-- run without a tenant.
--
-- `ai_models` holds what a model is (name and version from the file's own
-- metadata, SHA-256, size, metrics, status); the bytes sit in
-- `ai_model_blobs` by hash, so the audit trigger (which copies whole rows)
-- never copies a model file into the trail. Statuses: `staged` (uploaded,
-- validated), `active` (the one the snapshot names; at most one), `retired`
-- (was active). `previous_id` is the model that was active when this one was
-- activated: what a roll back returns to.
CREATE TABLE sentinel.ai_model_blobs (
    sha256      text PRIMARY KEY CONSTRAINT ai_model_blobs_sha256_check CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    bytes       bytea NOT NULL,
    CONSTRAINT ai_model_blobs_hash_check CHECK (encode(sha256(bytes), 'hex') = sha256)
);

CREATE TABLE sentinel.ai_models (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name          text NOT NULL CONSTRAINT ai_models_name_check CHECK (length(name) BETWEEN 1 AND 200),
    version       text NOT NULL CONSTRAINT ai_models_version_check CHECK (length(version) BETWEEN 1 AND 100),
    sha256        text NOT NULL REFERENCES sentinel.ai_model_blobs (sha256),
    size          bigint NOT NULL CONSTRAINT ai_models_size_check CHECK (size > 0),
    metrics       jsonb NOT NULL DEFAULT '{}'::jsonb,
    status        text NOT NULL DEFAULT 'staged'
                  CONSTRAINT ai_models_status_check CHECK (status IN ('staged', 'active', 'retired')),
    previous_id   uuid REFERENCES sentinel.ai_models (id),
    created_by    uuid,
    created_at    timestamptz NOT NULL DEFAULT now(),
    activated_at  timestamptz,
    CONSTRAINT ai_models_sha256_key UNIQUE (sha256),
    CONSTRAINT ai_models_name_version_key UNIQUE (name, version)
);
-- At most one active model.
CREATE UNIQUE INDEX ai_models_one_active ON sentinel.ai_models ((true)) WHERE status = 'active';

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['ai_models', 'ai_model_blobs'] LOOP
        EXECUTE format('ALTER TABLE sentinel.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE sentinel.%I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY platform_only ON sentinel.%I
                            USING (sentinel.outside_tenant())
                            WITH CHECK (sentinel.outside_tenant())', t);
    END LOOP;
END
$$;
-- Models are never deleted through the API (a retired model stays for roll
-- back and for the trail); blobs are written once.
REVOKE DELETE, TRUNCATE ON sentinel.ai_models FROM sentinel_api;
REVOKE UPDATE, DELETE, TRUNCATE ON sentinel.ai_model_blobs FROM sentinel_api;

-- Audited like every admin table (0004): `ai_model.create`, `ai_model.update`.
CREATE TRIGGER ai_models_audit AFTER INSERT OR UPDATE OR DELETE ON sentinel.ai_models
    FOR EACH ROW EXECUTE FUNCTION sentinel.audit_capture();

-- A change of the active model is a policy change: the manifest names the
-- active model, so the revision is bumped (and `sentinel_policy` notified) at
-- commit, like 0003's `mark_policy_dirty`, marking the global part (always
-- rebuilt) so the publisher builds the next version.
CREATE FUNCTION sentinel.mark_model_changed() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, sentinel
    AS $$
DECLARE
    rev bigint := nullif(current_setting('sentinel.policy_rev', true), '')::bigint;
BEGIN
    IF rev IS NULL THEN
        UPDATE sentinel.policy_revision SET revision = revision + 1, changed_at = now()
         WHERE id RETURNING revision INTO rev;
        PERFORM set_config('sentinel.policy_rev', rev::text, true);
        PERFORM set_config('sentinel.policy_bumped', 'on', true);
        PERFORM pg_notify('sentinel_policy', TG_TABLE_NAME);
    END IF;
    INSERT INTO sentinel.policy_dirty (revision, part) VALUES (rev, 'global') ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION sentinel.mark_model_changed() FROM PUBLIC;

CREATE CONSTRAINT TRIGGER ai_models_policy_dirty AFTER UPDATE ON sentinel.ai_models
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION sentinel.mark_model_changed();
