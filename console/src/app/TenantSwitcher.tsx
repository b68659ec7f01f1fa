// Which tenant the pages act on (sent as X-Tenant-ID). Offered when the
// principal can see more than its own tenant: platform admins every tenant,
// others their direct sub-tenants (the API's rule).
import { Select } from "@mantine/core";
import { useQuery } from "@tanstack/react-query";
import { useLocation, useNavigate } from "react-router";
import { createApi, unwrap } from "@/api/client";
import { listParams } from "@/api/lists";
import { useMe, useSession, useTenantId } from "./session-context";

export function TenantSwitcher() {
  const session = useSession();
  const me = useMe();
  const tenantId = useTenantId();
  const navigate = useNavigate();
  const location = useLocation();
  const canList = session.can("tenant", "read");
  const tenants = useQuery({
    queryKey: [me.tenant_id, "tenant-switcher"],
    enabled: canList,
    queryFn: () =>
      unwrap(
        createApi(session, me.tenant_id).GET("/api/v1/tenants", {
          params: { query: listParams({ limit: 200, sort: "code" }) },
        }),
      ),
  });
  const items = tenants.data?.items ?? [];
  if (!canList || items.length < 2) return null;
  return (
    <Select
      aria-label="Acting on tenant"
      placeholder="Tenant"
      searchable
      w={{ base: 170, sm: 260 }}
      data={items.map((t) => ({ value: t.id, label: `${t.code} · ${t.name}` }))}
      value={tenantId}
      allowDeselect={false}
      onChange={(value) => {
        if (!value || value === tenantId) return;
        const rest = location.pathname.split("/").slice(3, 4).join("/") || "users";
        navigate(`/t/${value}/${rest}`);
      }}
      comboboxProps={{ withinPortal: true }}
      data-testid="tenant-switcher"
    />
  );
}
