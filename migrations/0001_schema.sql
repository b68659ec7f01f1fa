-- Sentinel admin schema: tenants, principals, RBAC/ABAC policy objects,
-- field definitions, navigation, tokens, signing keys and policy snapshots.
--
-- Two database roles:
--   * the migration role (whoever runs `sentinel-admin migrate`, DATABASE_URL)
--     owns every object below;
--   * `sentinel_api`, created here, is what `sentinel-admin serve` connects as:
--     it owns nothing, has no BYPASSRLS, and sees rows only through the
--     row-level security policies (tenant set per transaction with
--     `set_config('sentinel.tenant_id', ..., true)`).

CREATE SCHEMA IF NOT EXISTS sentinel;

-- The role is cluster-wide: create it only when missing (a migration role
-- without CREATEROLE then works when an operator created it beforehand).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sentinel_api') THEN
        CREATE ROLE sentinel_api LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL; -- created concurrently by a migration of another database
END
$$;

-- The tenant of the current transaction (NULL when unset: every tenant policy then matches nothing).
CREATE FUNCTION sentinel.current_tenant() RETURNS uuid
    LANGUAGE sql STABLE
    AS $$ SELECT nullif(current_setting('sentinel.tenant_id', true), '')::uuid $$;

-- Set only for platform superadmin work that spans tenants, and by the narrow lookup functions below.
CREATE FUNCTION sentinel.all_tenants() RETURNS boolean
    LANGUAGE sql STABLE
    AS $$ SELECT coalesce(current_setting('sentinel.all_tenants', true), '') = 'on' $$;

CREATE FUNCTION sentinel.touch_updated_at() RETURNS trigger
    LANGUAGE plpgsql
    AS $$ BEGIN NEW.updated_at := now(); RETURN NEW; END $$;

-- ---------------------------------------------------------------- tenants
CREATE TABLE sentinel.tenants (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    code        text NOT NULL CONSTRAINT tenants_code_key UNIQUE
                CONSTRAINT tenants_code_check CHECK (code ~ '^[A-Z0-9][A-Z0-9_-]{1,63}$'),
    name        text NOT NULL CONSTRAINT tenants_name_check CHECK (length(name) BETWEEN 1 AND 200),
    type        text NOT NULL DEFAULT 'root' CONSTRAINT tenants_type_check CHECK (type IN ('platform', 'root', 'sub')),
    parent_id   uuid CONSTRAINT tenants_parent_fkey REFERENCES sentinel.tenants (id) ON DELETE RESTRICT,
    status      text NOT NULL DEFAULT 'active' CONSTRAINT tenants_status_check CHECK (status IN ('active', 'suspended', 'inactive')),
    settings    jsonb NOT NULL DEFAULT '{}'::jsonb CONSTRAINT tenants_settings_check CHECK (jsonb_typeof(settings) = 'object'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tenants_parent_not_self CHECK (parent_id IS DISTINCT FROM id),
    CONSTRAINT tenants_sub_has_parent CHECK ((type = 'sub') = (parent_id IS NOT NULL))
);
CREATE INDEX tenants_parent_idx ON sentinel.tenants (parent_id);
CREATE INDEX tenants_created_idx ON sentinel.tenants (created_at, id);
CREATE INDEX tenants_name_idx ON sentinel.tenants (name, id);

-- ---------------------------------------------------------------- users and service accounts
CREATE TABLE sentinel.users (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id           uuid NOT NULL CONSTRAINT users_tenant_fkey REFERENCES sentinel.tenants (id) ON DELETE CASCADE,
    email               text,
    name                text NOT NULL DEFAULT '',
    password_hash       text,
    is_service_account  boolean NOT NULL DEFAULT false,
    api_key_prefix      text CONSTRAINT users_api_key_prefix_key UNIQUE,
    api_key_hash        text,
    api_key_expires_at  timestamptz,
    api_key_created_at  timestamptz,
    attributes          jsonb NOT NULL DEFAULT '{}'::jsonb CONSTRAINT users_attributes_check CHECK (jsonb_typeof(attributes) = 'object'),
    preferences         jsonb NOT NULL DEFAULT '{}'::jsonb,
    is_active           boolean NOT NULL DEFAULT true,
    is_locked           boolean NOT NULL DEFAULT false,
    failed_login_count  integer NOT NULL DEFAULT 0,
    locked_until        timestamptz,
    last_login          timestamptz,
    login_count         integer NOT NULL DEFAULT 0,
    password_changed_at timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_id_tenant_key UNIQUE (id, tenant_id),
    -- The seeds' check: a service account has a key and no password; a user has no key.
    CONSTRAINT check_service_account CHECK (
        (is_service_account AND api_key_hash IS NOT NULL AND api_key_prefix IS NOT NULL AND password_hash IS NULL)
        OR (NOT is_service_account AND api_key_hash IS NULL AND api_key_prefix IS NULL AND email IS NOT NULL)
    )
);
CREATE UNIQUE INDEX users_tenant_email_key ON sentinel.users (tenant_id, lower(email)) WHERE email IS NOT NULL;
CREATE UNIQUE INDEX users_tenant_sa_name_key ON sentinel.users (tenant_id, lower(name)) WHERE is_service_account;
CREATE INDEX users_tenant_created_idx ON sentinel.users (tenant_id, created_at, id);
CREATE INDEX users_tenant_email_idx ON sentinel.users (tenant_id, email, id);

CREATE TABLE sentinel.refresh_tokens (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL REFERENCES sentinel.tenants (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL,
    family_id   uuid NOT NULL,
    token_hash  text NOT NULL CONSTRAINT refresh_tokens_hash_key UNIQUE,
    expires_at  timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    used_at     timestamptz,
    revoked_at  timestamptz,
    FOREIGN KEY (user_id, tenant_id) REFERENCES sentinel.users (id, tenant_id) ON DELETE CASCADE
);
CREATE INDEX refresh_tokens_family_idx ON sentinel.refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON sentinel.refresh_tokens (user_id);

CREATE TABLE sentinel.token_blacklist (
    jti         text PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES sentinel.tenants (id) ON DELETE CASCADE,
    user_id     uuid,
    expires_at  timestamptz NOT NULL,
    reason      text NOT NULL DEFAULT 'logout',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX token_blacklist_expires_idx ON sentinel.token_blacklist (expires_at);
CREATE INDEX token_blacklist_tenant_idx ON sentinel.token_blacklist (tenant_id);

-- ---------------------------------------------------------------- roles, groups, permissions
CREATE TABLE sentinel.roles (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       uuid NOT NULL REFERENCES sentinel.tenants (id) ON DELETE CASCADE,
    name            text NOT NULL CONSTRAINT roles_name_check CHECK (length(name) BETWEEN 1 AND 100),
    description     text NOT NULL DEFAULT '',
    parent_role_id  uuid,
    scopes          text[] NOT NULL DEFAULT '{}',
    is_system       boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT roles_tenant_name_key UNIQUE (tenant_id, name),
    CONSTRAINT roles_id_tenant_key UNIQUE (id, tenant_id),
    CONSTRAINT roles_parent_not_self CHECK (parent_role_id IS DISTINCT FROM id),
    -- the parent lives in the same tenant
    CONSTRAINT roles_parent_fkey FOREIGN KEY (parent_role_id, tenant_id)
        REFERENCES sentinel.roles (id, tenant_id) ON DELETE SET NULL (parent_role_id)
);
CREATE INDEX roles_parent_idx ON sentinel.roles (parent_role_id);
CREATE INDEX roles_tenant_created_idx ON sentinel.roles (tenant_id, created_at, id);

CREATE TABLE sentinel.user_roles (
    user_id     uuid NOT NULL,
    role_id     uuid NOT NULL,
    tenant_id   uuid NOT NULL,
    is_active   boolean NOT NULL DEFAULT true,
    valid_from  timestamptz,
    valid_until timestamptz,
    granted_by  uuid,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, role_id),
    CONSTRAINT user_roles_user_fkey FOREIGN KEY (user_id, tenant_id) REFERENCES sentinel.users (id, tenant_id) ON DELETE CASCADE,
    CONSTRAINT user_roles_role_fkey FOREIGN KEY (role_id, tenant_id) REFERENCES sentinel.roles (id, tenant_id) ON DELETE CASCADE,
    CONSTRAINT user_roles_window_check CHECK (valid_until IS NULL OR valid_from IS NULL OR valid_until > valid_from)
);
CREATE INDEX user_roles_role_idx ON sentinel.user_roles (role_id);

CREATE TABLE sentinel.groups (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL REFERENCES sentinel.tenants (id) ON DELETE CASCADE,
    name        text NOT NULL CONSTRAINT groups_name_check CHECK (length(name) BETWEEN 1 AND 100),
    description text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT groups_tenant_name_key UNIQUE (tenant_id, name),
    CONSTRAINT groups_id_tenant_key UNIQUE (id, tenant_id)
);
CREATE INDEX groups_tenant_created_idx ON sentinel.groups (tenant_id, created_at, id);

CREATE TABLE sentinel.user_groups (
    user_id     uuid NOT NULL,
    group_id    uuid NOT NULL,
    tenant_id   uuid NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, group_id),
    CONSTRAINT user_groups_user_fkey FOREIGN KEY (user_id, tenant_id) REFERENCES sentinel.users (id, tenant_id) ON DELETE CASCADE,
    CONSTRAINT user_groups_group_fkey FOREIGN KEY (group_id, tenant_id) REFERENCES sentinel.groups (id, tenant_id) ON DELETE CASCADE
);
CREATE INDEX user_groups_group_idx ON sentinel.user_groups (group_id);

CREATE TABLE sentinel.group_roles (
    group_id    uuid NOT NULL,
    role_id     uuid NOT NULL,
    tenant_id   uuid NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, role_id),
    CONSTRAINT group_roles_group_fkey FOREIGN KEY (group_id, tenant_id) REFERENCES sentinel.groups (id, tenant_id) ON DELETE CASCADE,
    CONSTRAINT group_roles_role_fkey FOREIGN KEY (role_id, tenant_id) REFERENCES sentinel.roles (id, tenant_id) ON DELETE CASCADE
);
CREATE INDEX group_roles_role_idx ON sentinel.group_roles (role_id);

CREATE TABLE sentinel.permissions (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id         uuid NOT NULL REFERENCES sentinel.tenants (id) ON DELETE CASCADE,
    name              text NOT NULL CONSTRAINT permissions_name_check CHECK (length(name) BETWEEN 1 AND 150),
    description       text NOT NULL DEFAULT '',
    effect            text NOT NULL DEFAULT 'allow' CONSTRAINT permissions_effect_check CHECK (effect IN ('allow', 'deny')),
    resource_type     text NOT NULL,
    resource_pattern  text NOT NULL DEFAULT '*',
    actions           text[] NOT NULL CONSTRAINT permissions_actions_check CHECK (cardinality(actions) > 0),
    conditions        jsonb NOT NULL DEFAULT '[]'::jsonb CONSTRAINT permissions_conditions_check CHECK (jsonb_typeof(conditions) = 'array'),
    tenant_scope      text NOT NULL DEFAULT 'own' CONSTRAINT permissions_tenant_scope_check CHECK (tenant_scope IN ('own', 'own_and_children', 'any')),
    field_rules       jsonb NOT NULL DEFAULT '{}'::jsonb CONSTRAINT permissions_field_rules_check CHECK (jsonb_typeof(field_rules) = 'object'),
    is_active         boolean NOT NULL DEFAULT true,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT permissions_tenant_name_key UNIQUE (tenant_id, name),
    CONSTRAINT permissions_id_tenant_key UNIQUE (id, tenant_id)
);
CREATE INDEX permissions_tenant_created_idx ON sentinel.permissions (tenant_id, created_at, id);
CREATE INDEX permissions_tenant_type_idx ON sentinel.permissions (tenant_id, resource_type);

CREATE TABLE sentinel.role_permissions (
    role_id       uuid NOT NULL,
    permission_id uuid NOT NULL,
    tenant_id     uuid NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (role_id, permission_id),
    CONSTRAINT role_permissions_role_fkey FOREIGN KEY (role_id, tenant_id) REFERENCES sentinel.roles (id, tenant_id) ON DELETE CASCADE,
    CONSTRAINT role_permissions_permission_fkey FOREIGN KEY (permission_id, tenant_id) REFERENCES sentinel.permissions (id, tenant_id) ON DELETE CASCADE
);
CREATE INDEX role_permissions_permission_idx ON sentinel.role_permissions (permission_id);

-- ---------------------------------------------------------------- resources, fields, navigation
CREATE TABLE sentinel.resources (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id     uuid NOT NULL REFERENCES sentinel.tenants (id) ON DELETE CASCADE,
    resource_type text NOT NULL CONSTRAINT resources_type_check CHECK (resource_type ~ '^[a-z][a-z0-9_]{0,63}$'),
    external_id   text NOT NULL CONSTRAINT resources_external_id_check CHECK (length(external_id) BETWEEN 1 AND 200),
    name          text NOT NULL DEFAULT '',
    parent_id     uuid,
    attributes    jsonb NOT NULL DEFAULT '{}'::jsonb CONSTRAINT resources_attributes_check CHECK (jsonb_typeof(attributes) = 'object'),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT resources_tenant_type_external_key UNIQUE (tenant_id, resource_type, external_id),
    CONSTRAINT resources_id_tenant_key UNIQUE (id, tenant_id),
    CONSTRAINT resources_parent_not_self CHECK (parent_id IS DISTINCT FROM id),
    CONSTRAINT resources_parent_fkey FOREIGN KEY (parent_id, tenant_id)
        REFERENCES sentinel.resources (id, tenant_id) ON DELETE RESTRICT
);
CREATE INDEX resources_parent_idx ON sentinel.resources (parent_id);
CREATE INDEX resources_tenant_created_idx ON sentinel.resources (tenant_id, created_at, id);
CREATE INDEX resources_tenant_type_idx ON sentinel.resources (tenant_id, resource_type);

CREATE TABLE sentinel.field_definitions (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- NULL for `core` and `platform_dynamic` fields (platform-wide); the owning tenant for `tenant_specific`.
    tenant_id     uuid REFERENCES sentinel.tenants (id) ON DELETE CASCADE,
    entity_type   text NOT NULL CONSTRAINT field_definitions_entity_check CHECK (entity_type ~ '^[a-z][a-z0-9_]{0,63}$'),
    field_name    text NOT NULL CONSTRAINT field_definitions_field_check CHECK (field_name ~ '^[A-Za-z_][A-Za-z0-9_]{0,63}$'),
    tier          text NOT NULL CONSTRAINT field_definitions_tier_check CHECK (tier IN ('core', 'platform_dynamic', 'tenant_specific')),
    data_type     text NOT NULL DEFAULT 'string' CONSTRAINT field_definitions_data_type_check CHECK (data_type IN ('string', 'number', 'integer', 'boolean', 'date', 'datetime', 'object', 'array')),
    sensitivity   text NOT NULL DEFAULT 'internal' CONSTRAINT field_definitions_sensitivity_check CHECK (sensitivity IN ('public', 'internal', 'confidential', 'restricted')),
    mask_style    text NOT NULL DEFAULT 'full' CONSTRAINT field_definitions_mask_check CHECK (mask_style IN ('full', 'last', 'hash', 'null')),
    mask_keep     smallint CONSTRAINT field_definitions_mask_keep_check CHECK (mask_keep IS NULL OR mask_keep BETWEEN 0 AND 64),
    description   text NOT NULL DEFAULT '',
    is_active     boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT field_definitions_tier_tenant CHECK ((tier = 'tenant_specific') = (tenant_id IS NOT NULL))
);
CREATE UNIQUE INDEX field_definitions_entity_field_key
    ON sentinel.field_definitions (entity_type, field_name, coalesce(tenant_id, '00000000-0000-0000-0000-000000000000'::uuid));
CREATE INDEX field_definitions_tenant_idx ON sentinel.field_definitions (tenant_id);
CREATE INDEX field_definitions_created_idx ON sentinel.field_definitions (created_at, id);

CREATE TABLE sentinel.navigation_items (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id     uuid NOT NULL REFERENCES sentinel.tenants (id) ON DELETE CASCADE,
    parent_id     uuid,
    label         text NOT NULL CONSTRAINT navigation_items_label_check CHECK (length(label) BETWEEN 1 AND 100),
    path          text NOT NULL CONSTRAINT navigation_items_path_check CHECK (path ~ '^/'),
    icon          text,
    sort_order    integer NOT NULL DEFAULT 0,
    -- The permission the item needs: the caller must be allowed `action` on `resource_type` (NULL: always shown).
    resource_type text,
    action        text,
    is_active     boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT navigation_items_id_tenant_key UNIQUE (id, tenant_id),
    CONSTRAINT navigation_items_parent_fkey FOREIGN KEY (parent_id, tenant_id)
        REFERENCES sentinel.navigation_items (id, tenant_id) ON DELETE CASCADE,
    CONSTRAINT navigation_items_permission_check CHECK ((resource_type IS NULL) = (action IS NULL))
);
CREATE INDEX navigation_items_tenant_idx ON sentinel.navigation_items (tenant_id, sort_order, id);
CREATE INDEX navigation_items_parent_idx ON sentinel.navigation_items (parent_id);

-- ---------------------------------------------------------------- platform-wide: keys and snapshots
CREATE TABLE sentinel.signing_keys (
    kid          text PRIMARY KEY,
    alg          text NOT NULL CHECK (alg IN ('ES256')),
    private_pem  text NOT NULL,
    public_jwk   jsonb NOT NULL,
    status       text NOT NULL CHECK (status IN ('current', 'previous', 'retired')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    rotated_at   timestamptz
);
CREATE UNIQUE INDEX signing_keys_one_current ON sentinel.signing_keys (status) WHERE status = 'current';

CREATE TABLE sentinel.policy_snapshots (
    version     bigint PRIMARY KEY,
    body        jsonb NOT NULL,
    sha256      text NOT NULL,
    kid         text,
    signature   text,
    created_by  uuid,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- ---------------------------------------------------------------- updated_at triggers
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['tenants', 'users', 'roles', 'groups', 'permissions', 'resources', 'field_definitions', 'navigation_items']
    LOOP
        EXECUTE format('CREATE TRIGGER %I_touch BEFORE UPDATE ON sentinel.%I FOR EACH ROW EXECUTE FUNCTION sentinel.touch_updated_at()', t, t);
    END LOOP;
END
$$;

-- ---------------------------------------------------------------- row-level security
ALTER TABLE sentinel.tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE sentinel.tenants FORCE ROW LEVEL SECURITY;
-- A tenant sees itself and its direct sub-tenants.
CREATE POLICY tenant_isolation ON sentinel.tenants
    USING (sentinel.all_tenants() OR id = sentinel.current_tenant() OR parent_id = sentinel.current_tenant())
    WITH CHECK (sentinel.all_tenants() OR id = sentinel.current_tenant() OR parent_id = sentinel.current_tenant());

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['users', 'refresh_tokens', 'token_blacklist', 'roles', 'user_roles', 'groups', 'user_groups',
                             'group_roles', 'permissions', 'role_permissions', 'resources', 'navigation_items']
    LOOP
        EXECUTE format('ALTER TABLE sentinel.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE sentinel.%I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON sentinel.%I
                            USING (sentinel.all_tenants() OR tenant_id = sentinel.current_tenant())
                            WITH CHECK (sentinel.all_tenants() OR tenant_id = sentinel.current_tenant())', t);
    END LOOP;
END
$$;

-- Platform-wide field definitions (tenant_id NULL) are readable by every tenant, writable only across tenants.
ALTER TABLE sentinel.field_definitions ENABLE ROW LEVEL SECURITY;
ALTER TABLE sentinel.field_definitions FORCE ROW LEVEL SECURITY;
CREATE POLICY field_read ON sentinel.field_definitions FOR SELECT
    USING (sentinel.all_tenants() OR tenant_id IS NULL OR tenant_id = sentinel.current_tenant());
CREATE POLICY field_insert ON sentinel.field_definitions FOR INSERT
    WITH CHECK (sentinel.all_tenants() OR tenant_id = sentinel.current_tenant());
CREATE POLICY field_update ON sentinel.field_definitions FOR UPDATE
    USING (sentinel.all_tenants() OR tenant_id = sentinel.current_tenant())
    WITH CHECK (sentinel.all_tenants() OR tenant_id = sentinel.current_tenant());
CREATE POLICY field_delete ON sentinel.field_definitions FOR DELETE
    USING (sentinel.all_tenants() OR tenant_id = sentinel.current_tenant());

-- ---------------------------------------------------------------- narrow pre-authentication lookups
-- Login names a tenant by code and API keys carry no tenant: these two functions
-- see across tenants for exactly one row and return only what the caller needs
-- to set the tenant of its transaction. The SET clause ends with the function.
CREATE FUNCTION sentinel.tenant_by_code(p_code text) RETURNS TABLE (id uuid, status text)
    LANGUAGE sql STABLE
    SET sentinel.all_tenants = 'on'
    AS $$ SELECT t.id, t.status FROM sentinel.tenants t WHERE t.code = p_code $$;

CREATE FUNCTION sentinel.api_key_owner(p_prefix text) RETURNS TABLE (user_id uuid, tenant_id uuid)
    LANGUAGE sql STABLE
    SET sentinel.all_tenants = 'on'
    AS $$ SELECT u.id, u.tenant_id FROM sentinel.users u WHERE u.api_key_prefix = p_prefix AND u.is_service_account $$;

-- ---------------------------------------------------------------- grants to the API role
GRANT USAGE ON SCHEMA sentinel TO sentinel_api;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA sentinel TO sentinel_api;
REVOKE UPDATE, DELETE ON sentinel.policy_snapshots FROM sentinel_api;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA sentinel TO sentinel_api;
-- Tables of later migrations (run by the same migration role) get the same grants.
ALTER DEFAULT PRIVILEGES IN SCHEMA sentinel GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO sentinel_api;
ALTER DEFAULT PRIVILEGES IN SCHEMA sentinel GRANT USAGE ON SEQUENCES TO sentinel_api;
