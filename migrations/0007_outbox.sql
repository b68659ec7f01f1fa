-- Notifications (issue 19): a transactional outbox delivered to per-tenant
-- webhooks (admin-api/src/outbox/, docs/webhooks.md).
--
-- A domain write that should notify calls `outbox::enqueue` inside its own
-- transaction: the event row commits (or rolls back) with the change it
-- announces. The delivery worker claims due rows with FOR UPDATE SKIP LOCKED,
-- so several admin API replicas share the work without sending a row twice
-- at the same time.

-- ---------------------------------------------------------------- webhooks
-- `secret` keys the HMAC of every delivery: stored sealed with the
-- key-encryption key like the signing keys (admin-api/src/sealing.rs, the
-- row's id as associated data), never returned by the API, and redacted in
-- the audit trail (0004's `audit_redact`). `events` empty means every event.
CREATE TABLE sentinel.webhooks (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL REFERENCES sentinel.tenants (id) ON DELETE CASCADE,
    name        text NOT NULL DEFAULT '' CONSTRAINT webhooks_name_check CHECK (length(name) <= 200),
    url         text NOT NULL CONSTRAINT webhooks_url_check CHECK (url ~ '^https?://' AND length(url) <= 2048),
    secret      text NOT NULL CONSTRAINT webhooks_secret_sealed CHECK (secret LIKE 'sealed:v1:%' AND length(secret) <= 1024),
    events      text[] NOT NULL DEFAULT '{}',
    enabled     boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_tenant_created_idx ON sentinel.webhooks (tenant_id, created_at, id);
CREATE TRIGGER webhooks_touch BEFORE UPDATE ON sentinel.webhooks
    FOR EACH ROW EXECUTE FUNCTION sentinel.touch_updated_at();
-- Admin writes are audited like every other policy object (entity `webhook`).
CREATE TRIGGER webhooks_audit AFTER INSERT OR UPDATE OR DELETE ON sentinel.webhooks
    FOR EACH ROW EXECUTE FUNCTION sentinel.audit_capture();

-- ---------------------------------------------------------------- outbox
-- One row per event. `idempotency_key` (per tenant) makes a second enqueue of
-- the same event a no-op and is sent to receivers so they can deduplicate.
-- `delivered_to` lists the webhooks that already accepted the event: a retry
-- goes only to the others. A row ends delivered (`delivered_at`) or, after
-- the last retry, failed (`failed_at`: the dead letter).
CREATE TABLE sentinel.outbox (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id        uuid NOT NULL REFERENCES sentinel.tenants (id) ON DELETE CASCADE,
    event            text NOT NULL CONSTRAINT outbox_event_check CHECK (event ~ '^[a-z][a-z0-9_.]{0,63}$'),
    subject_id       uuid NOT NULL,
    payload          jsonb NOT NULL,
    idempotency_key  text NOT NULL CONSTRAINT outbox_key_check CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    delivered_to     uuid[] NOT NULL DEFAULT '{}',
    delivered_at     timestamptz,
    failed_at        timestamptz,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT outbox_tenant_key UNIQUE (tenant_id, idempotency_key)
);
-- The worker's scan: due rows that are neither delivered nor failed.
CREATE INDEX outbox_due_idx ON sentinel.outbox (next_attempt_at)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
CREATE INDEX outbox_tenant_created_idx ON sentinel.outbox (tenant_id, created_at, id);
-- An admin resending a dead letter (`POST /webhooks/events/{id}/retry`) is an
-- admin write and audited (entity `outbox`); inserts are not: they are part
-- of the audited write that caused the event, and the worker has no actor.
CREATE TRIGGER outbox_audit AFTER UPDATE ON sentinel.outbox
    FOR EACH ROW EXECUTE FUNCTION sentinel.audit_capture();

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['webhooks', 'outbox']
    LOOP
        EXECUTE format('ALTER TABLE sentinel.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE sentinel.%I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON sentinel.%I
                            USING (sentinel.all_tenants() OR tenant_id = sentinel.current_tenant())
                            WITH CHECK (sentinel.all_tenants() OR tenant_id = sentinel.current_tenant())', t);
    END LOOP;
END
$$;
-- 0001's default privileges grant the API role SELECT, INSERT, UPDATE, DELETE
-- on both tables; it never needs to empty them wholesale.
REVOKE TRUNCATE ON sentinel.webhooks, sentinel.outbox FROM sentinel_api;

-- ---------------------------------------------------------------- scopes
-- Webhooks are an area of their own (`webhook:read|write|admin`,
-- admin-api/src/scopes.rs); the seeded tenant administrators, who hold
-- every area's admin scope, hold this one too.
UPDATE sentinel.roles
   SET scopes = array_append(scopes, 'webhook:admin')
 WHERE name = 'tenant_admin' AND is_system
   AND NOT ('webhook:admin' = ANY (scopes));
