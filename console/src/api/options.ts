// Pick-lists for forms (the first 200 of a list, sorted by name): roles,
// groups, users, permissions of the tenant a page acts on.
import { useQuery } from "@tanstack/react-query";
import { unwrap } from "./client";
import { listParams } from "./lists";
import { useApi, useSession, useTenantId } from "@/app/session-context";

export interface Option {
  value: string;
  label: string;
}

export function useRoleOptions() {
  const api = useApi();
  const tenant = useTenantId();
  const enabled = useSession().can("role", "read");
  return useQuery({
    queryKey: [tenant, "roles", "options"],
    enabled,
    queryFn: () => unwrap(api.GET("/api/v1/roles", { params: { query: listParams({ limit: 200, sort: "name" }) } })),
    select: (p): Option[] => (p.items ?? []).map((r) => ({ value: r.id, label: r.name })),
  });
}

export function useGroupOptions() {
  const api = useApi();
  const tenant = useTenantId();
  const enabled = useSession().can("group", "read");
  return useQuery({
    queryKey: [tenant, "groups", "options"],
    enabled,
    queryFn: () => unwrap(api.GET("/api/v1/groups", { params: { query: listParams({ limit: 200, sort: "name" }) } })),
    select: (p): Option[] => (p.items ?? []).map((g) => ({ value: g.id, label: g.name })),
  });
}

export function useUserOptions() {
  const api = useApi();
  const tenant = useTenantId();
  const enabled = useSession().can("user", "read");
  return useQuery({
    queryKey: [tenant, "users", "options"],
    enabled,
    queryFn: () => unwrap(api.GET("/api/v1/users", { params: { query: listParams({ limit: 200, sort: "email" }) } })),
    select: (p): Option[] => (p.items ?? []).map((u) => ({ value: u.id, label: u.email || u.name })),
  });
}

export function usePermissionOptions() {
  const api = useApi();
  const tenant = useTenantId();
  const enabled = useSession().can("permission", "read");
  return useQuery({
    queryKey: [tenant, "permissions", "options"],
    enabled,
    queryFn: () =>
      unwrap(api.GET("/api/v1/permissions", { params: { query: listParams({ limit: 200, sort: "name" }) } })),
    select: (p): Option[] => (p.items ?? []).map((x) => ({ value: x.id, label: `${x.name} (${x.effect} ${x.resource_type})` })),
  });
}
