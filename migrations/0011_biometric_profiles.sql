-- Behavioural biometrics (issue 20, docs/biometrics.md): one profile per
-- user, shared by every gateway replica and kept across restarts. Gateways
-- read and write it through the admin API with their key
-- (`/api/v1/gateway/biometrics/...`); people read, reset and delete it at
-- `/api/v1/users/{id}/biometrics`.
--
-- `profile` is the gateway's encoded profile (MessagePack of features and
-- fitted models, never raw events); NULL after a reset. `generation` is
-- new at every creation and reset: a gateway writes back only the
-- generation it loaded, so a reset or a deletion is never undone by a
-- gateway's cached copy. `version` counts writes within a generation (the
-- gateways' revalidation tag).
CREATE TABLE sentinel.biometric_profiles (
    tenant_id      uuid NOT NULL REFERENCES sentinel.tenants (id) ON DELETE CASCADE,
    user_id        uuid NOT NULL,
    status         text NOT NULL CONSTRAINT biometric_profiles_status_check
                   CHECK (status IN ('enrolling', 'ready')),
    samples        integer NOT NULL DEFAULT 0 CONSTRAINT biometric_profiles_samples_check CHECK (samples >= 0),
    mouse_actions  integer NOT NULL DEFAULT 0 CONSTRAINT biometric_profiles_mouse_check CHECK (mouse_actions >= 0),
    key_observations integer NOT NULL DEFAULT 0 CONSTRAINT biometric_profiles_keys_check CHECK (key_observations >= 0),
    generation     uuid NOT NULL DEFAULT gen_random_uuid(),
    version        bigint NOT NULL DEFAULT 1,
    profile        bytea CONSTRAINT biometric_profiles_size_check CHECK (octet_length(profile) <= 16777216),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, user_id),
    -- A profile goes with its account.
    CONSTRAINT biometric_profiles_user_fkey FOREIGN KEY (user_id, tenant_id)
        REFERENCES sentinel.users (id, tenant_id) ON DELETE CASCADE
);

CREATE TRIGGER biometric_profiles_touch BEFORE UPDATE ON sentinel.biometric_profiles
    FOR EACH ROW EXECUTE FUNCTION sentinel.touch_updated_at();

ALTER TABLE sentinel.biometric_profiles ENABLE ROW LEVEL SECURITY;
ALTER TABLE sentinel.biometric_profiles FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sentinel.biometric_profiles
    USING (sentinel.all_tenants() OR tenant_id = sentinel.current_tenant())
    WITH CHECK (sentinel.all_tenants() OR tenant_id = sentinel.current_tenant());
REVOKE TRUNCATE ON sentinel.biometric_profiles FROM sentinel_api;
-- No audit_capture trigger: the gateways' write-backs are not admin writes
-- (and the row carries a profile of up to a few MiB). A person's read,
-- reset and delete are recorded by their handlers (admin-api/src/biometrics/)
-- as `biometric_profile.*` events in the same transaction.
