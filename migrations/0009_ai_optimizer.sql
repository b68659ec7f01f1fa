-- AI-assisted administration, part one (issue 23, docs/ai.md): the
-- permission optimizer's findings and the compliance monitor's results.
--
-- Both are advice: nothing here changes policy. A finding's `proposal` is a
-- list of admin-API calls that an admin applies with
-- `POST /api/v1/ai/optimizer/findings/{id}/apply`, which runs them through
-- the normal handlers (validated, audited, published) as that admin.
--
-- Tenant tables under forced row-level security like every tenant table.

-- ---------------------------------------------------------------- optimizer
CREATE TABLE sentinel.permission_optimizations (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id    uuid NOT NULL REFERENCES sentinel.tenants (id) ON DELETE CASCADE,
    -- unused_permission, unused_role, over_privileged, near_duplicate_roles,
    -- role_mining, sod_conflict (admin-api/src/ai/optimizer.rs).
    kind         text NOT NULL CONSTRAINT permission_optimizations_kind_check
                 CHECK (kind ~ '^[a-z][a-z_]{0,63}$'),
    -- What the finding is about, stable across runs (kind + subject ids):
    -- a later run refreshes the same finding instead of adding another.
    fingerprint  text NOT NULL CONSTRAINT permission_optimizations_fingerprint_check
                 CHECK (length(fingerprint) BETWEEN 1 AND 1000),
    status       text NOT NULL DEFAULT 'open' CONSTRAINT permission_optimizations_status_check
                 CHECK (status IN ('open', 'applied', 'dismissed')),
    summary      text NOT NULL,
    -- Counts, last use, the window and the audit query that backs the finding.
    evidence     jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- [{"method", "path", "body"}]: the admin-API calls that carry it out
    -- (empty: no call does; the summary says what to do instead).
    proposal     jsonb NOT NULL DEFAULT '[]'::jsonb CONSTRAINT permission_optimizations_proposal_check
                 CHECK (jsonb_typeof(proposal) = 'array'),
    window_from  timestamptz NOT NULL,
    window_to    timestamptz NOT NULL,
    first_seen   timestamptz NOT NULL DEFAULT now(),
    last_seen    timestamptz NOT NULL DEFAULT now(),
    decided_by   uuid,
    decided_at   timestamptz,
    decision_note text,
    -- Answers of the calls `apply` made (status and body per call).
    applied_result jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
-- One live (open or dismissed) finding per subject; applied ones are history.
CREATE UNIQUE INDEX permission_optimizations_live_key
    ON sentinel.permission_optimizations (tenant_id, fingerprint) WHERE status <> 'applied';
CREATE INDEX permission_optimizations_tenant_idx
    ON sentinel.permission_optimizations (tenant_id, status, kind, created_at, id);
CREATE TRIGGER permission_optimizations_touch BEFORE UPDATE ON sentinel.permission_optimizations
    FOR EACH ROW EXECUTE FUNCTION sentinel.touch_updated_at();
-- An admin applying or dismissing a finding is an admin write (entity
-- `permission_optimization`); the runs' own inserts carry no actor.
CREATE TRIGGER permission_optimizations_audit AFTER UPDATE ON sentinel.permission_optimizations
    FOR EACH ROW EXECUTE FUNCTION sentinel.audit_capture();

-- ---------------------------------------------------------------- compliance
-- One row per (run, regulation, check).
CREATE TABLE sentinel.compliance_monitoring (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id    uuid NOT NULL REFERENCES sentinel.tenants (id) ON DELETE CASCADE,
    run_id       uuid NOT NULL,
    -- `schedule` (the leader-elected worker) or `on_demand`.
    trigger      text NOT NULL CONSTRAINT compliance_monitoring_trigger_check
                 CHECK (trigger IN ('schedule', 'on_demand')),
    regulation   text NOT NULL CONSTRAINT compliance_monitoring_regulation_check
                 CHECK (regulation ~ '^[A-Z][A-Z0-9_]{0,31}$'),
    check_name   text NOT NULL CONSTRAINT compliance_monitoring_check_check
                 CHECK (check_name ~ '^[a-z][a-z0-9_]{0,63}$'),
    -- pass, fail, not_modelled (the data model cannot answer the check).
    status       text NOT NULL CONSTRAINT compliance_monitoring_status_check
                 CHECK (status IN ('pass', 'fail', 'not_modelled')),
    severity     text NOT NULL CONSTRAINT compliance_monitoring_severity_check
                 CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    summary      text NOT NULL,
    evidence     jsonb NOT NULL DEFAULT '{}'::jsonb,
    checked_at   timestamptz NOT NULL
);
CREATE INDEX compliance_monitoring_tenant_idx
    ON sentinel.compliance_monitoring (tenant_id, checked_at DESC, run_id);
CREATE INDEX compliance_monitoring_schedule_idx
    ON sentinel.compliance_monitoring (tenant_id, trigger, checked_at DESC);

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['permission_optimizations', 'compliance_monitoring']
    LOOP
        EXECUTE format('ALTER TABLE sentinel.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE sentinel.%I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON sentinel.%I
                            USING (sentinel.all_tenants() OR tenant_id = sentinel.current_tenant())
                            WITH CHECK (sentinel.all_tenants() OR tenant_id = sentinel.current_tenant())', t);
    END LOOP;
END
$$;
REVOKE TRUNCATE ON sentinel.permission_optimizations, sentinel.compliance_monitoring FROM sentinel_api;

-- ---------------------------------------------------------------- scopes
-- `ai:read` (see findings and reports, run the analyses) and `ai:apply`
-- (apply or dismiss a finding), admin-api/src/scopes.rs. The seeded tenant
-- administrators get both, the auditors `ai:read`.
SELECT set_config('sentinel.all_tenants', 'on', true);
UPDATE sentinel.roles
   SET scopes = scopes || ARRAY['ai:read', 'ai:apply']
 WHERE name = 'tenant_admin' AND is_system
   AND NOT ('ai:apply' = ANY (scopes));
UPDATE sentinel.roles
   SET scopes = array_append(scopes, 'ai:read')
 WHERE name = 'auditor'
   AND NOT ('ai:read' = ANY (scopes));
