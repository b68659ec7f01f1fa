-- AI-assisted administration, part 2 (issue 23, docs/ai.md): questions in
-- plain language and predictive access. Every table is tenant-scoped under
-- forced row-level security, like every tenant table (0001).

-- ---------------------------------------------------------------- questions
-- One row per question asked at `POST /api/v1/ai/query`: what was asked,
-- whether it was understood, the typed query it was mapped to (the one it
-- ran), and how big the answer was. `tenant_id` is the tenant the question
-- ran against (a platform admin may name one).
CREATE TABLE sentinel.nlp_query_logs (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id     uuid NOT NULL REFERENCES sentinel.tenants (id) ON DELETE CASCADE,
    user_id       uuid NOT NULL,
    question      text NOT NULL CONSTRAINT nlp_query_logs_question_check CHECK (length(question) <= 1000),
    understood    boolean NOT NULL,
    query         jsonb,
    problem       text,
    answer_count  integer,
    duration_ms   double precision NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX nlp_query_logs_tenant_created_idx ON sentinel.nlp_query_logs (tenant_id, created_at, id);

-- ---------------------------------------------------------------- predictions
-- The latest suggestion per (user, resource type, action) that passed the
-- confidence threshold at `GET /api/v1/ai/predictions`. A suggestion is
-- never applied here: an admin turns it into a role assignment or an
-- access request through the ordinary endpoints.
CREATE TABLE sentinel.permission_predictions (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id      uuid NOT NULL REFERENCES sentinel.tenants (id) ON DELETE CASCADE,
    user_id        uuid NOT NULL,
    resource_type  text NOT NULL,
    action         text NOT NULL,
    confidence     double precision NOT NULL CONSTRAINT permission_predictions_confidence_check
                   CHECK (confidence >= 0 AND confidence <= 1),
    peers          integer NOT NULL,
    evidence       jsonb NOT NULL DEFAULT '{}'::jsonb,
    computed_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT permission_predictions_key UNIQUE (tenant_id, user_id, resource_type, action)
);

-- ---------------------------------------------------------------- decisions
-- What each AI feature produced and from which inputs (issue 23): the
-- feature, its inputs (the question, the user and window, the threshold),
-- and a digest of its output. Append-only for the API role.
CREATE TABLE sentinel.ai_decision_logs (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL REFERENCES sentinel.tenants (id) ON DELETE CASCADE,
    feature     text NOT NULL CONSTRAINT ai_decision_logs_feature_check CHECK (feature ~ '^[a-z][a-z0-9_]{0,63}$'),
    actor_id    uuid,
    inputs      jsonb NOT NULL,
    output      jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ai_decision_logs_tenant_created_idx ON sentinel.ai_decision_logs (tenant_id, created_at, id);

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['nlp_query_logs', 'permission_predictions', 'ai_decision_logs']
    LOOP
        EXECUTE format('ALTER TABLE sentinel.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE sentinel.%I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON sentinel.%I
                            USING (sentinel.all_tenants() OR tenant_id = sentinel.current_tenant())
                            WITH CHECK (sentinel.all_tenants() OR tenant_id = sentinel.current_tenant())', t);
    END LOOP;
END
$$;
-- Logs are append-only for the API role (0001's default privileges granted more).
REVOKE UPDATE, DELETE, TRUNCATE ON sentinel.nlp_query_logs, sentinel.ai_decision_logs FROM sentinel_api;
REVOKE TRUNCATE ON sentinel.permission_predictions FROM sentinel_api;
