-- Approval chains and just-in-time access (issue 19, docs/approvals.md).
--
-- A chain says who approves an access request for (resource type, pattern,
-- action) of one tenant, level by level; a request walks its levels; the last
-- approval creates a time-bound grant, which the snapshot carries to every
-- gateway (so `access_grants` marks its tenant's shard dirty like any policy
-- table). Every table is tenant-scoped under forced row-level security and
-- captured by the audit triggers of 0004.
--
-- Never edit a released migration: later changes go in a new file.

-- ---------------------------------------------------------------- chains
CREATE TABLE sentinel.approval_chains (
    id                        uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id                 uuid NOT NULL REFERENCES sentinel.tenants (id) ON DELETE CASCADE,
    -- What routes name (`approval = "voyage-deletion"`) and grants carry.
    name                      text NOT NULL CONSTRAINT approval_chains_name_check CHECK (name ~ '^[a-z0-9][a-z0-9_.-]{0,99}$'),
    description               text NOT NULL DEFAULT '',
    resource_type             text NOT NULL,
    resource_pattern          text NOT NULL DEFAULT '*',
    action                    text NOT NULL,
    -- Ordered levels (1 to 5): approvers, required approvals, timeout, escalation target.
    levels                    jsonb NOT NULL CONSTRAINT approval_chains_levels_check
                              CHECK (jsonb_typeof(levels) = 'array' AND jsonb_array_length(levels) BETWEEN 1 AND 5),
    default_duration_seconds  integer NOT NULL DEFAULT 3600,
    max_duration_seconds      integer NOT NULL DEFAULT 28800,
    auto_approve_enabled      boolean NOT NULL DEFAULT false,
    auto_approve_conditions   jsonb NOT NULL DEFAULT '[]'::jsonb
                              CONSTRAINT approval_chains_auto_check CHECK (jsonb_typeof(auto_approve_conditions) = 'array'),
    is_active                 boolean NOT NULL DEFAULT true,
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT approval_chains_tenant_name_key UNIQUE (tenant_id, name),
    CONSTRAINT approval_chains_id_tenant_key UNIQUE (id, tenant_id),
    CONSTRAINT approval_chains_duration_check
        CHECK (default_duration_seconds > 0 AND default_duration_seconds <= max_duration_seconds)
);
CREATE INDEX approval_chains_tenant_created_idx ON sentinel.approval_chains (tenant_id, created_at, id);

-- ---------------------------------------------------------------- requests
CREATE TABLE sentinel.access_requests (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id         uuid NOT NULL REFERENCES sentinel.tenants (id) ON DELETE CASCADE,
    chain_id          uuid NOT NULL,
    requester_id      uuid NOT NULL,
    resource_type     text NOT NULL,
    resource_id       text NOT NULL,
    action            text NOT NULL,
    justification     text NOT NULL DEFAULT '',
    duration_seconds  integer NOT NULL CONSTRAINT access_requests_duration_check CHECK (duration_seconds > 0),
    -- The chain's levels when the request was opened: an edit of the chain
    -- never changes who decides a request already under way.
    levels            jsonb NOT NULL,
    status            text NOT NULL DEFAULT 'pending'
                      CONSTRAINT access_requests_status_check CHECK (status IN ('pending', 'approved', 'denied', 'cancelled', 'expired')),
    -- 1-based level awaiting decisions (meaningful while pending).
    current_level     smallint NOT NULL DEFAULT 1,
    level_started_at  timestamptz NOT NULL DEFAULT now(),
    -- The current level passed its timeout: its escalation target may decide too.
    escalated         boolean NOT NULL DEFAULT false,
    auto_approved     boolean NOT NULL DEFAULT false,
    grant_id          uuid,
    decided_at        timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT access_requests_id_tenant_key UNIQUE (id, tenant_id),
    CONSTRAINT access_requests_chain_fkey FOREIGN KEY (chain_id, tenant_id)
        REFERENCES sentinel.approval_chains (id, tenant_id) ON DELETE CASCADE,
    CONSTRAINT access_requests_requester_fkey FOREIGN KEY (requester_id, tenant_id)
        REFERENCES sentinel.users (id, tenant_id) ON DELETE CASCADE
);
-- One open request per requester, chain, resource and action.
CREATE UNIQUE INDEX access_requests_one_pending
    ON sentinel.access_requests (requester_id, chain_id, resource_id, action) WHERE status = 'pending';
CREATE INDEX access_requests_tenant_status_idx ON sentinel.access_requests (tenant_id, status, created_at, id);
CREATE INDEX access_requests_requester_idx ON sentinel.access_requests (requester_id, created_at, id);
CREATE INDEX access_requests_pending_idx ON sentinel.access_requests (level_started_at) WHERE status = 'pending';

-- ---------------------------------------------------------------- decisions
CREATE TABLE sentinel.approval_decisions (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id     uuid NOT NULL REFERENCES sentinel.tenants (id) ON DELETE CASCADE,
    request_id    uuid NOT NULL,
    level         smallint NOT NULL,
    approver_id   uuid NOT NULL,
    -- Set when a delegate decided in the named approver's place.
    on_behalf_of  uuid,
    decision      text NOT NULL CONSTRAINT approval_decisions_decision_check CHECK (decision IN ('approve', 'deny')),
    comment       text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT approval_decisions_request_fkey FOREIGN KEY (request_id, tenant_id)
        REFERENCES sentinel.access_requests (id, tenant_id) ON DELETE CASCADE,
    -- Nobody decides one request twice (at any level).
    CONSTRAINT approval_decisions_once UNIQUE (request_id, approver_id)
);
CREATE INDEX approval_decisions_approver_idx ON sentinel.approval_decisions (approver_id);

-- ---------------------------------------------------------------- delegations
CREATE TABLE sentinel.approval_delegations (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id     uuid NOT NULL REFERENCES sentinel.tenants (id) ON DELETE CASCADE,
    delegator_id  uuid NOT NULL,
    delegate_id   uuid NOT NULL,
    starts_at     timestamptz NOT NULL,
    ends_at       timestamptz NOT NULL,
    reason        text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT approval_delegations_window_check CHECK (ends_at > starts_at),
    CONSTRAINT approval_delegations_not_self CHECK (delegator_id <> delegate_id),
    CONSTRAINT approval_delegations_delegator_fkey FOREIGN KEY (delegator_id, tenant_id)
        REFERENCES sentinel.users (id, tenant_id) ON DELETE CASCADE,
    CONSTRAINT approval_delegations_delegate_fkey FOREIGN KEY (delegate_id, tenant_id)
        REFERENCES sentinel.users (id, tenant_id) ON DELETE CASCADE
);
CREATE INDEX approval_delegations_delegate_idx ON sentinel.approval_delegations (delegate_id, ends_at);

-- ---------------------------------------------------------------- grants
CREATE TABLE sentinel.access_grants (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       uuid NOT NULL REFERENCES sentinel.tenants (id) ON DELETE CASCADE,
    request_id      uuid,
    principal_id    uuid NOT NULL,
    resource_type   text NOT NULL,
    resource_id     text NOT NULL,
    actions         text[] NOT NULL CONSTRAINT access_grants_actions_check CHECK (cardinality(actions) > 0),
    -- The chain's name: a route naming this chain is satisfied by the grant.
    approval_chain  text NOT NULL,
    not_before      timestamptz,
    expires_at      timestamptz NOT NULL,
    status          text NOT NULL DEFAULT 'active'
                    CONSTRAINT access_grants_status_check CHECK (status IN ('active', 'revoked', 'expired')),
    revoked_at      timestamptz,
    revoked_by      uuid,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT access_grants_id_tenant_key UNIQUE (id, tenant_id),
    CONSTRAINT access_grants_window_check CHECK (not_before IS NULL OR expires_at > not_before),
    CONSTRAINT access_grants_principal_fkey FOREIGN KEY (principal_id, tenant_id)
        REFERENCES sentinel.users (id, tenant_id) ON DELETE CASCADE,
    CONSTRAINT access_grants_request_fkey FOREIGN KEY (request_id, tenant_id)
        REFERENCES sentinel.access_requests (id, tenant_id) ON DELETE CASCADE
);
CREATE INDEX access_grants_tenant_active_idx ON sentinel.access_grants (tenant_id, expires_at) WHERE status = 'active';
CREATE INDEX access_grants_principal_idx ON sentinel.access_grants (principal_id, created_at, id);

-- ---------------------------------------------------------------- updated_at, RLS, audit, live policy
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['approval_chains', 'access_requests', 'access_grants']
    LOOP
        EXECUTE format('CREATE TRIGGER %I_touch BEFORE UPDATE ON sentinel.%I FOR EACH ROW EXECUTE FUNCTION sentinel.touch_updated_at()', t, t);
    END LOOP;
    FOREACH t IN ARRAY ARRAY['approval_chains', 'access_requests', 'approval_decisions', 'approval_delegations', 'access_grants']
    LOOP
        EXECUTE format('ALTER TABLE sentinel.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE sentinel.%I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON sentinel.%I
                            USING (sentinel.all_tenants() OR tenant_id = sentinel.current_tenant())
                            WITH CHECK (sentinel.all_tenants() OR tenant_id = sentinel.current_tenant())', t);
        -- Admin writes become audit events (0004): entity `approval_chain`, `access_request`, ...
        EXECUTE format('CREATE TRIGGER %I_audit AFTER INSERT OR UPDATE OR DELETE ON sentinel.%I
                            FOR EACH ROW EXECUTE FUNCTION sentinel.audit_capture()', t, t);
    END LOOP;
END
$$;

-- Grants are policy: a change marks the tenant's shard dirty and wakes the publisher (0003).
CREATE CONSTRAINT TRIGGER access_grants_policy_dirty AFTER INSERT OR UPDATE OR DELETE ON sentinel.access_grants
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION sentinel.mark_policy_dirty();
