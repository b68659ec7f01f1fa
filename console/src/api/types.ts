// Names for the document's schemas, and the few answers the document of this
// API version leaves untyped (`{"type": "object"}`), written down here once
// from docs/admin-api.md so that every page reads them the same way.
import type { components } from "./schema";

type S = components["schemas"];
export type Tenant = S["Tenant"];
export type User = S["User"];
export type ServiceAccount = S["ServiceAccount"];
export type Role = S["Role"];
export type Group = S["Group"];
export type Permission = S["Permission"];
export type Resource = S["Resource"];
export type FieldDefinition = S["FieldDefinition"];
export type NavItem = S["NavItem"];
export type CheckRequest = S["CheckRequest"];
export type CheckResponse = S["CheckResponse"];
export type CreatePermission = S["CreatePermission"];
export type AuditEvent = S["Event"];

// ---- not (yet) described by the document -------------------------------

/** `GET /users/{id}`: the user with its roles and groups. */
export interface UserDetail extends User {
  roles: { id: string; name: string; is_active: boolean; valid_from: string | null; valid_until: string | null }[];
  groups: { id: string; name: string }[];
}

/** `GET /groups/{id}/members`. */
export interface GroupMembers {
  group_id: string;
  items: { id: string; email: string | null; name: string; is_service_account: boolean }[];
}

/** `GET /groups/{id}/roles`. */
export interface GroupRoles {
  group_id: string;
  items: Role[];
  effective_scopes: string[];
}

/** `GET /roles/{id}/permissions`. */
export interface RolePermissions {
  role_id: string;
  items: Permission[];
}

/** `GET /service-accounts/{id}/validate`. */
export interface KeyCheck {
  id: string;
  valid: boolean;
  problems: string[];
}

/** `GET /navigation/menu`. */
export interface MenuItem {
  id: string;
  label: string;
  path: string;
  icon: string | null;
  children: MenuItem[];
}

/** `GET /users/{id}/permissions`. */
export interface EffectivePermissions {
  user_id: string;
  roles: { id: string; name: string }[];
  scopes: string[];
  permissions: Permission[];
}

/** Reads an answer the document leaves untyped as the shape above. */
export function as<T>(value: unknown): T {
  return value as T;
}
