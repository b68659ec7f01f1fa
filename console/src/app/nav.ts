// The console's navigation: one entry per feature folder, shown when the
// principal holds the scope the feature's list endpoint needs (the API still
// decides every call). A new capability adds its folder, its route in
// routes.tsx and one entry here.
import type { Level, Session } from "@/api/session";

export interface NavEntry {
  /** Path under `/t/:tenantId/`. */
  path: string;
  label: string;
  /**
   * What the page's main endpoint needs: a scope area and level, or one
   * scope held as such (`audit:read`); `null`: any principal.
   */
  scope: { area: string; level: Level } | { exact: string } | null;
}

export interface NavSection {
  label: string;
  entries: NavEntry[];
}

export const NAV: NavSection[] = [
  {
    label: "Directory",
    entries: [
      { path: "tenants", label: "Tenants", scope: { area: "tenant", level: "read" } },
      { path: "users", label: "Users", scope: { area: "user", level: "read" } },
      {
        path: "service-accounts",
        label: "Service accounts",
        scope: { area: "service_account", level: "read" },
      },
      { path: "groups", label: "Groups", scope: { area: "group", level: "read" } },
    ],
  },
  {
    label: "Policy",
    entries: [
      { path: "roles", label: "Roles", scope: { area: "role", level: "read" } },
      { path: "permissions", label: "Permissions", scope: { area: "permission", level: "read" } },
      { path: "resources", label: "Resources", scope: { area: "resource", level: "read" } },
      {
        path: "field-definitions",
        label: "Field definitions",
        scope: { area: "field_definition", level: "read" },
      },
      { path: "navigation", label: "Navigation", scope: { area: "navigation", level: "read" } },
      { path: "access-check", label: "Can X do Y?", scope: null },
    ],
  },
  {
    label: "Operations",
    entries: [{ path: "audit", label: "Audit", scope: { exact: "audit:read" } }],
  },
  // The rest of Operations (approval inbox, risk dashboard, AI findings)
  // comes when the admin API serves /access-requests, risk and findings
  // endpoints: no page without an endpoint.
];

/** Whether the navigation offers `entry` to the principal of `session`. */
export function offered(session: Session, entry: NavEntry): boolean {
  const scope = entry.scope;
  if (scope === null) return true;
  return "exact" in scope ? session.holds(scope.exact) : session.can(scope.area, scope.level);
}
