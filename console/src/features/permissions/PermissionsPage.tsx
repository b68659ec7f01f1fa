// Allow and deny rules of the tenant.
import { useState } from "react";
import { Anchor, Badge, Button, Group, Select, Table, TextInput } from "@mantine/core";
import { useDebouncedValue } from "@mantine/hooks";
import { Link, useNavigate } from "react-router";
import { unwrap } from "@/api/client";
import { listParams, usePagedList } from "@/api/lists";
import type { Permission } from "@/api/types";
import { useApi, useSession, useTenantId } from "@/app/session-context";
import { ListTable } from "@/ui/ListTable";
import { PermissionCells } from "./PermissionCells";
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
      <ListTable list={list} noun="permissions" minWidth={760} head={["Name", "Effect", "Resource", "Actions", "Conditions", "Tenant scope"]}>
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
            <PermissionCells p={p} />
            <Table.Td>{Array.isArray(p.conditions) ? p.conditions.length || "—" : "—"}</Table.Td>
            <Table.Td>{p.tenant_scope}</Table.Td>
          </Table.Tr>
        ))}
      </ListTable>
    </>
  );
}
