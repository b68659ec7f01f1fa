// The console's navigation: one entry per feature folder, shown when the
// principal holds the scope the feature's list endpoint needs (the API still
// decides every call). A new capability adds its folder, its route in
// routes.tsx and one entry here.
import type { Level } from "@/api/session";

export interface NavEntry {
  /** Path under `/t/:tenantId/`. */
  path: string;
  label: string;
  /** Scope area and level the page's main endpoint needs; `null`: any principal. */
  scope: { area: string; level: Level } | null;
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
  // Operations (approval inbox, audit search, risk dashboard, AI findings)
  // gets its section when the admin API serves /access-requests,
  // /audit/events, risk and findings endpoints: no page without an endpoint.
];
