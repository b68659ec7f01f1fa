// The permission form's values and their conversion to and from the API's
// shapes (docs/policy.md: conditions are `{"type": …}` objects; field rules
// are `{tier: {field: rule}}`). Pure: validation is the API's.
import type { Permission } from "@/api/types";

export const CONDITION_TYPES = [
  { value: "attribute", label: "Principal attribute" },
  { value: "client_ip", label: "Client IP in CIDRs" },
  { value: "mfa", label: "MFA presented" },
  { value: "time", label: "Time window (UTC)" },
  { value: "risk", label: "Risk score at most" },
  { value: "method", label: "HTTP method" },
] as const;
export type ConditionType = (typeof CONDITION_TYPES)[number]["value"];

export const ATTRIBUTE_OPS = ["eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "contains"];
export const WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
export const TIERS = ["core", "platform_dynamic", "tenant_specific"] as const;
export type Tier = (typeof TIERS)[number];
export const FIELD_RULES = ["read", "write", "masked", "hidden"];

export interface ConditionRow {
  type: ConditionType;
  name: string;
  op: string;
  /** A JSON value (`"finance"`, `3`, `["a","b"]`); bare text is taken as a string. */
  value: string;
  cidrs: string[];
  from: number | string;
  to: number | string;
  weekdays: string[];
  max: number | string;
  methods: string[];
}

export interface FieldRuleRow {
  tier: Tier;
  field: string;
  rule: string;
}

export interface PermissionValues {
  name: string;
  description: string;
  effect: string;
  resource_type: string;
  resource_pattern: string;
  actions: string[];
  tenant_scope: string;
  is_active: boolean;
  conditions: ConditionRow[];
  field_rules: FieldRuleRow[];
}

export function emptyCondition(type: ConditionType = "attribute"): ConditionRow {
  return { type, name: "", op: "eq", value: "", cidrs: [], from: "", to: "", weekdays: [], max: "", methods: [] };
}

export const EMPTY_PERMISSION: PermissionValues = {
  name: "",
  description: "",
  effect: "allow",
  resource_type: "",
  resource_pattern: "*",
  actions: [],
  tenant_scope: "own",
  is_active: true,
  conditions: [],
  field_rules: [],
};

function jsonOrText(text: string): unknown {
  const t = text.trim();
  if (t === "") return "";
  try {
    return JSON.parse(t);
  } catch {
    return t;
  }
}

const num = (v: number | string): number | undefined => (v === "" ? undefined : Number(v));

/** A condition row as the API reads it. */
export function conditionToApi(c: ConditionRow): Record<string, unknown> {
  switch (c.type) {
    case "attribute":
      return { type: "attribute", name: c.name, op: c.op, value: jsonOrText(c.value) };
    case "client_ip":
      return { type: "client_ip", cidrs: c.cidrs };
    case "mfa":
      return { type: "mfa" };
    case "time": {
      const out: Record<string, unknown> = { type: "time" };
      const from = num(c.from);
      const to = num(c.to);
      if (from !== undefined || to !== undefined) out.hours_utc = [from ?? 0, to ?? 24];
      if (c.weekdays.length) out.weekdays = c.weekdays;
      return out;
    }
    case "risk":
      return { type: "risk", max: num(c.max) ?? null };
    case "method":
      return { type: "method", methods: c.methods };
  }
}

/** A condition of the API as a form row (unknown keys are dropped by the API anyway). */
export function conditionFromApi(raw: unknown): ConditionRow {
  const c = (raw ?? {}) as Record<string, unknown>;
  const type = (CONDITION_TYPES.some((t) => t.value === c.type) ? c.type : "attribute") as ConditionType;
  const row = emptyCondition(type);
  if (type === "attribute") {
    row.name = String(c.name ?? "");
    row.op = String(c.op ?? "eq");
    row.value = typeof c.value === "string" ? c.value : JSON.stringify(c.value ?? "");
  }
  if (type === "client_ip") row.cidrs = Array.isArray(c.cidrs) ? c.cidrs.map(String) : [];
  if (type === "time") {
    const h = Array.isArray(c.hours_utc) ? c.hours_utc : [];
    row.from = h[0] ?? "";
    row.to = h[1] ?? "";
    row.weekdays = Array.isArray(c.weekdays) ? c.weekdays.map(String) : [];
  }
  if (type === "risk") row.max = typeof c.max === "number" ? c.max : "";
  if (type === "method") row.methods = Array.isArray(c.methods) ? c.methods.map(String) : [];
  return row;
}

export function fieldRulesToApi(rows: FieldRuleRow[]): Record<Tier, Record<string, string>> {
  const out: Record<Tier, Record<string, string>> = { core: {}, platform_dynamic: {}, tenant_specific: {} };
  for (const r of rows) if (r.field.trim()) out[r.tier][r.field.trim()] = r.rule;
  return out;
}

export function fieldRulesFromApi(raw: unknown): FieldRuleRow[] {
  const rows: FieldRuleRow[] = [];
  const byTier = (raw ?? {}) as Record<string, Record<string, string> | undefined>;
  for (const tier of TIERS)
    for (const [field, rule] of Object.entries(byTier[tier] ?? {})) rows.push({ tier, field, rule: String(rule) });
  return rows;
}

export function fromPermission(p: Permission): PermissionValues {
  return {
    name: p.name,
    description: p.description,
    effect: p.effect,
    resource_type: p.resource_type,
    resource_pattern: p.resource_pattern,
    actions: p.actions,
    tenant_scope: p.tenant_scope,
    is_active: p.is_active,
    conditions: Array.isArray(p.conditions) ? p.conditions.map(conditionFromApi) : [],
    field_rules: fieldRulesFromApi(p.field_rules),
  };
}

/** The request body of POST/PATCH /permissions. */
export function toApi(v: PermissionValues) {
  return {
    name: v.name,
    description: v.description,
    effect: v.effect,
    resource_type: v.resource_type.trim(),
    resource_pattern: v.resource_pattern.trim() || "*",
    actions: v.actions,
    tenant_scope: v.tenant_scope,
    is_active: v.is_active,
    conditions: v.conditions.map(conditionToApi),
    field_rules: fieldRulesToApi(v.field_rules),
  };
}
