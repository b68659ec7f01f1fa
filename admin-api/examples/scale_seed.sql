-- Synthetic policy at scale, to measure snapshot publishing
-- (`docs/admin-api.md`, "Live policy at scale").
--
-- Run as the migration role on a migrated database (after `bootstrap`):
--   psql "$DATABASE_URL" -v tenants=1000 -v users=100 -v roles=10 -v perms=1000 -f admin-api/examples/scale_seed.sql
-- (per tenant: `users` users, `roles` roles in chains of 5, `perms` permissions
-- spread over the roles; every user has 2 roles, every tenant 2 groups).
-- Then: time sentinel-admin publish
--
-- Triggers of migration 0002 fire once per transaction: this whole file is one.

\set ON_ERROR_STOP on
BEGIN;
SELECT set_config('sentinel.all_tenants', 'on', true);

CREATE TEMP TABLE scale_tenants ON COMMIT DROP AS
    SELECT gen_random_uuid() AS id, n FROM generate_series(1, :tenants) n;
INSERT INTO sentinel.tenants (id, code, name, type, settings)
    SELECT id, 'SCALE-' || n, 'Scale tenant ' || n, 'root', '{}'::jsonb FROM scale_tenants;

CREATE TEMP TABLE scale_roles ON COMMIT DROP AS
    SELECT gen_random_uuid() AS id, t.id AS tenant_id, r AS n
      FROM scale_tenants t, generate_series(1, :roles) r;
INSERT INTO sentinel.roles (id, tenant_id, name, scopes)
    SELECT id, tenant_id, 'role-' || n, '{}' FROM scale_roles;
-- Chains of five: role k inherits from role k-1 unless k is 1 mod 5.
UPDATE sentinel.roles r SET parent_role_id = p.id
  FROM scale_roles c JOIN scale_roles p ON p.tenant_id = c.tenant_id AND p.n = c.n - 1
 WHERE r.id = c.id AND c.n % 5 <> 1;

INSERT INTO sentinel.permissions (tenant_id, name, effect, resource_type, resource_pattern, actions, conditions, tenant_scope)
    SELECT t.id, 'perm-' || p,
           CASE WHEN p % 50 = 0 THEN 'deny' ELSE 'allow' END,
           'type_' || (p % 20),
           CASE WHEN p % 3 = 0 THEN '*' ELSE 'res-' || p || '-*' END,
           CASE WHEN p % 2 = 0 THEN '{read}'::text[] ELSE '{read,update}'::text[] END,
           CASE WHEN p % 10 = 0 THEN '[{"type": "mfa"}]'::jsonb ELSE '[]'::jsonb END,
           'own'
      FROM scale_tenants t, generate_series(1, :perms) p;
INSERT INTO sentinel.role_permissions (role_id, permission_id, tenant_id)
    SELECT r.id, p.id, p.tenant_id
      FROM sentinel.permissions p
      JOIN scale_roles r ON r.tenant_id = p.tenant_id
                        -- only the scale tenants' `perm-N` rows (the database may also hold the demo policy)
                        AND r.n = 1 + (CASE WHEN p.name ~ '^perm-[0-9]+$' THEN substring(p.name FROM 6)::int END % :roles);

CREATE TEMP TABLE scale_users ON COMMIT DROP AS
    SELECT gen_random_uuid() AS id, t.id AS tenant_id, u AS n
      FROM scale_tenants t, generate_series(1, :users) u;
INSERT INTO sentinel.users (id, tenant_id, email, name, attributes)
    SELECT id, tenant_id, 'user' || n || '@t' || tenant_id || '.example', 'User ' || n,
           jsonb_build_object('department', 'd' || (n % 7))
      FROM scale_users;
INSERT INTO sentinel.user_roles (user_id, role_id, tenant_id)
    SELECT u.id, r.id, u.tenant_id
      FROM scale_users u JOIN scale_roles r
        ON r.tenant_id = u.tenant_id AND (r.n = 1 + u.n % :roles OR r.n = 1 + (u.n * 7) % :roles)
    ON CONFLICT DO NOTHING;

INSERT INTO sentinel.groups (tenant_id, name)
    SELECT t.id, 'group-' || g FROM scale_tenants t, generate_series(1, 2) g;
INSERT INTO sentinel.group_roles (group_id, role_id, tenant_id)
    SELECT g.id, r.id, g.tenant_id
      FROM sentinel.groups g JOIN scale_roles r ON r.tenant_id = g.tenant_id AND r.n = 1
     WHERE g.name LIKE 'group-%';
INSERT INTO sentinel.user_groups (user_id, group_id, tenant_id)
    SELECT u.id, g.id, u.tenant_id
      FROM scale_users u JOIN sentinel.groups g ON g.tenant_id = u.tenant_id AND g.name = 'group-' || (1 + u.n % 2);

COMMIT;
