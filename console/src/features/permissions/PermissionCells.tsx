// Effect, resource and actions of a permission, as table cells; shared by
// every page that lists permissions (permissions, a role's, a user's).
import { Badge, Table } from "@mantine/core";
import type { Permission } from "@/api/types";

export function PermissionCells({ p }: { p: Pick<Permission, "effect" | "resource_type" | "resource_pattern" | "actions"> }) {
  return (
    <>
      <Table.Td>
        <Badge color={p.effect === "deny" ? "red" : "green"} variant="light">
          {p.effect}
        </Badge>
      </Table.Td>
      <Table.Td>
        {p.resource_type}:{p.resource_pattern}
      </Table.Td>
      <Table.Td>{p.actions.join(", ")}</Table.Td>
    </>
  );
}
