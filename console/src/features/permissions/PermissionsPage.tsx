// Allow and deny rules of the tenant.
import { useState } from "react";
import { Anchor, Badge, Button, Group, Select, Table, TextInput } from "@mantine/core";
import { useDebouncedValue } from "@mantine/hooks";
import { Link, useNavigate } from "react-router";
import { unwrap } from "@/api/client";
import { listParams, usePagedList } from "@/api/lists";
import type { Permission } from "@/api/types";
import { useApi, useSession, useTenantId } from "@/app/session-context";
import { ErrorAlert } from "@/ui/ErrorAlert";
import { LoadMore } from "@/ui/LoadMore";
import { PageHeader } from "@/ui/PageHeader";

export function PermissionsPage() {
  const api = useApi();
  const tenantId = useTenantId();
  const session = useSession();
  const navigate = useNavigate();
  const [type, setType] = useState("");
  const [effect, setEffect] = useState<string | null>(null);
  const [debounced] = useDebouncedValue(type, 300);
  const list = usePagedList<Permission>([tenantId, "permissions", "list", debounced, effect], (cursor) =>
    unwrap(
      api.GET("/api/v1/permissions", {
        params: {
          query: listParams({ limit: 100, cursor, sort: "name", resource_type: debounced, effect: effect ?? undefined }),
        },
      }),
    ),
  );
  return (
    <>
      <PageHeader
        title="Permissions"
        description="Deny by default; a matching deny overrides every allow. Every write is compiled by the gateway's own policy compiler."
        actions={
          session.can("permission", "admin") && (
            <Button onClick={() => navigate(`/t/${tenantId}/permissions/new`)}>New permission</Button>
          )
        }
      />
      <Group mb="sm" align="flex-end">
        <TextInput label="Resource type" value={type} onChange={(e) => setType(e.currentTarget.value)} w={200} />
        <Select label="Effect" placeholder="any" clearable data={["allow", "deny"]} value={effect} onChange={setEffect} w={140} />
      </Group>
      {list.isError && <ErrorAlert error={list.error} />}
      <Table.ScrollContainer minWidth={760}>
        <Table striped highlightOnHover>
          <Table.Caption>{list.isPending ? "Loading…" : `${list.items.length} permissions`}</Table.Caption>
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Name</Table.Th>
              <Table.Th>Effect</Table.Th>
              <Table.Th>Resource</Table.Th>
              <Table.Th>Actions</Table.Th>
              <Table.Th>Conditions</Table.Th>
              <Table.Th>Tenant scope</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {list.items.map((p) => (
              <Table.Tr key={p.id}>
                <Table.Td>
                  <Anchor component={Link} to={`/t/${tenantId}/permissions/${p.id}`}>
                    {p.name}
                  </Anchor>
                  {!p.is_active && (
                    <Badge size="xs" color="gray" ml="xs">
                      inactive
                    </Badge>
                  )}
                </Table.Td>
                <Table.Td>
                  <Badge color={p.effect === "deny" ? "red" : "green"} variant="light">
                    {p.effect}
                  </Badge>
                </Table.Td>
                <Table.Td>
                  {p.resource_type}:{p.resource_pattern}
                </Table.Td>
                <Table.Td>{p.actions.join(", ")}</Table.Td>
                <Table.Td>{Array.isArray(p.conditions) ? p.conditions.length || "—" : "—"}</Table.Td>
                <Table.Td>{p.tenant_scope}</Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      </Table.ScrollContainer>
      <LoadMore hasNext={list.hasNextPage} loading={list.isFetchingNextPage} onClick={() => list.fetchNextPage()} />
    </>
  );
}
