// Roles of the tenant: parent (inheritance), API scopes, permissions.
import { useState } from "react";
import { Anchor, Badge, Button, Modal, MultiSelect, Select, Stack, Table, TextInput, Textarea } from "@mantine/core";
import { useForm } from "@mantine/form";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { Link, useNavigate } from "react-router";
import { unwrap } from "@/api/client";
import { listParams, usePagedList } from "@/api/lists";
import { usePermissionOptions, useRoleOptions } from "@/api/options";
import type { Role } from "@/api/types";
import { useApi, useSession, useTenantId } from "@/app/session-context";
import { ListTable } from "@/ui/ListTable";
import { PageHeader } from "@/ui/PageHeader";
import { FormActions } from "@/ui/FormActions";
import { reportToForm } from "@/ui/forms";
import { SCOPE_OPTIONS } from "./scopes";

export function RolesPage() {
  const api = useApi();
  const tenantId = useTenantId();
  const session = useSession();
  const [creating, setCreating] = useState(false);
  const list = usePagedList<Role>([tenantId, "roles", "list"], (cursor) =>
    unwrap(api.GET("/api/v1/roles", { params: { query: listParams({ limit: 100, cursor, sort: "name" }) } })),
  );
  const byId = new Map(list.items.map((r) => [r.id, r]));
  return (
    <>
      <PageHeader
        title="Roles"
        description="A role inherits every permission and scope of its parent chain; users get roles directly and through groups."
        actions={session.can("role", "admin") && <Button onClick={() => setCreating(true)}>New role</Button>}
      />
      <ListTable list={list} noun="roles" minWidth={640} head={["Name", "Inherits from", "API scopes", "Description"]}>
        {list.items.map((r) => (
          <Table.Tr key={r.id}>
            <Table.Td>
              <Anchor component={Link} to={`/t/${tenantId}/roles/${r.id}`}>
                {r.name}
              </Anchor>{" "}
              {r.is_system && (
                <Badge size="xs" variant="outline">
                  system
                </Badge>
              )}
            </Table.Td>
            <Table.Td>{r.parent_role_id ? (byId.get(r.parent_role_id)?.name ?? "—") : "—"}</Table.Td>
            <Table.Td>{r.scopes.length}</Table.Td>
            <Table.Td>{r.description}</Table.Td>
          </Table.Tr>
        ))}
      </ListTable>
      <CreateRole opened={creating} onClose={() => setCreating(false)} />
    </>
  );
}

function CreateRole({ opened, onClose }: { opened: boolean; onClose: () => void }) {
  const api = useApi();
  const tenantId = useTenantId();
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const roles = useRoleOptions();
  const permissions = usePermissionOptions();
  const [failure, setFailure] = useState<unknown>(null);
  const form = useForm({
    initialValues: {
      name: "",
      description: "",
      parent_role_id: null as string | null,
      scopes: [] as string[],
      permission_ids: [] as string[],
    },
  });
  const create = useMutation({
    mutationFn: (v: typeof form.values) =>
      unwrap(
        api.POST("/api/v1/roles", {
          body: {
            name: v.name,
            description: v.description || null,
            parent_role_id: v.parent_role_id,
            scopes: v.scopes,
            permission_ids: v.permission_ids,
          },
        }),
      ),
    onSuccess: (role) => {
      queryClient.invalidateQueries({ queryKey: [tenantId, "roles"] });
      form.reset();
      onClose();
      navigate(`/t/${tenantId}/roles/${role.id}`);
    },
    onError: (e) => setFailure(reportToForm(form, e)),
  });
  return (
    <Modal opened={opened} onClose={onClose} title="New role" size="lg">
      <form onSubmit={form.onSubmit((v) => (setFailure(null), create.mutate(v)))}>
        <Stack>
          <TextInput label="Name" required {...form.getInputProps("name")} />
          <Textarea label="Description" autosize minRows={1} {...form.getInputProps("description")} />
          <Select
            label="Inherits from (parent role)"
            searchable
            clearable
            data={roles.data ?? []}
            {...form.getInputProps("parent_role_id")}
          />
          <MultiSelect
            label="API scopes"
            description="What the role may do in this admin API; you can only grant scopes you hold."
            searchable
            data={SCOPE_OPTIONS}
            {...form.getInputProps("scopes")}
          />
          <MultiSelect
            label="Permissions"
            description="What the gateway allows or denies holders of the role."
            searchable
            data={permissions.data ?? []}
            {...form.getInputProps("permission_ids")}
          />
          <FormActions failure={failure} onCancel={onClose} submitLabel="Create role" busy={create.isPending} />
        </Stack>
      </form>
    </Modal>
  );
}
