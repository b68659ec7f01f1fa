// The API's scope vocabulary (docs/admin-api.md "Scopes"): `<area>:<level>`.
export const AREAS = [
  "tenant",
  "user",
  "service_account",
  "role",
  "group",
  "permission",
  "resource",
  "field_definition",
  "navigation",
  "policy",
  "webhook",
] as const;

// Approvals name their levels for what they allow (docs/approvals.md).
export const APPROVALS = ["approvals:request", "approvals:decide", "approvals:admin"];

export const SCOPE_OPTIONS = [
  ...AREAS.map((area) => ({
    group: area,
    items: (["read", "write", "admin"] as const).map((l) => `${area}:${l}`),
  })),
  { group: "approvals", items: APPROVALS },
];
