// One role: where it sits in the inheritance chain (and changing its parent:
// the API refuses cycles at the field), its scopes, permissions and holders.
import { useState } from "react";
import {
  Anchor,
  Badge,
  Breadcrumbs,
  Button,
  Card,
  CloseButton,
  Group,
  Select,
  SimpleGrid,
  Stack,
  Table,
  Text,
  Timeline,
  VisuallyHidden,
} from "@mantine/core";
import { useForm } from "@mantine/form";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { Link, useParams } from "react-router";
import { unwrap } from "@/api/client";
import { listParams } from "@/api/lists";
import { usePermissionOptions, useRoleOptions, useUserOptions } from "@/api/options";
import { as, type RolePermissions } from "@/api/types";
import { useApi, useSession, useTenantId } from "@/app/session-context";
import { ErrorAlert } from "@/ui/ErrorAlert";
import { PermissionCells } from "@/features/permissions/PermissionCells";
import { PageHeader } from "@/ui/PageHeader";
import { PickAndAdd } from "@/ui/PickAndAdd";
import { QueryView } from "@/ui/QueryView";
import { reportToForm } from "@/ui/forms";

export function RoleDetail() {
  const { id = "" } = useParams();
  const api = useApi();
  const tenantId = useTenantId();
  const hierarchy = useQuery({
    queryKey: [tenantId, "roles", id, "hierarchy"],
    queryFn: () => unwrap(api.GET("/api/v1/roles/{id}/hierarchy", { params: { path: { id } } })),
  });
  return (
    <QueryView query={hierarchy}>
      {(h) => (
        <>
          <Breadcrumbs mb="xs">
            <Anchor component={Link} to={`/t/${tenantId}/roles`}>
              Roles
            </Anchor>
            <Text>{h.role.name}</Text>
          </Breadcrumbs>
          <PageHeader title={h.role.name} description={h.role.description || undefined} />
          <SimpleGrid cols={{ base: 1, md: 2 }}>
            <Card withBorder>
              <Text fw={600} mb="sm">
                Inheritance
              </Text>
              <Timeline active={h.ancestors.length} bulletSize={14} lineWidth={2} aria-label="Inheritance chain, root first">
                {[...h.ancestors].reverse().map((r) => (
                  <Timeline.Item key={r.id} title={<RoleLink id={r.id} name={r.name} />} />
                ))}
                <Timeline.Item title={<Text fw={700}>{h.role.name}</Text>} />
                {h.descendants.map((r) => (
                  <Timeline.Item key={r.id} title={<RoleLink id={r.id} name={r.name} />} lineVariant="dashed">
                    <Text size="xs" c="dimmed">
                      inherits from this role
                    </Text>
                  </Timeline.Item>
                ))}
              </Timeline>
              <ParentForm roleId={h.role.id} parent={h.role.parent_role_id ?? null} />
            </Card>
            <Card withBorder>
              <Text fw={600} mb="xs">
                API scopes
              </Text>
              <Group gap={4}>
                {h.role.scopes.length === 0 && (
                  <Text size="sm" c="dimmed">
                    none of its own
                  </Text>
                )}
                {h.role.scopes.map((s) => (
                  <Badge key={s} variant="light">
                    {s}
                  </Badge>
                ))}
              </Group>
              <RoleHolders roleId={h.role.id} />
            </Card>
          </SimpleGrid>
          <RolePermissionsCard roleId={h.role.id} />
        </>
      )}
    </QueryView>
  );
}

function RoleLink({ id, name }: { id: string; name: string }) {
  const tenantId = useTenantId();
  return (
    <Anchor component={Link} to={`/t/${tenantId}/roles/${id}`}>
      {name}
    </Anchor>
  );
}

function ParentForm({ roleId, parent }: { roleId: string; parent: string | null }) {
  const api = useApi();
  const tenantId = useTenantId();
  const session = useSession();
  const queryClient = useQueryClient();
  const roles = useRoleOptions();
  const [failure, setFailure] = useState<unknown>(null);
  const form = useForm({ initialValues: { parent_role_id: parent } });
  const save = useMutation({
    mutationFn: (v: typeof form.values) =>
      unwrap(api.PATCH("/api/v1/roles/{id}", { params: { path: { id: roleId } }, body: { parent_role_id: v.parent_role_id } })),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: [tenantId, "roles"] }),
    onError: (e) => setFailure(reportToForm(form, e)),
  });
  if (!session.can("role", "write")) return null;
  return (
    <form onSubmit={form.onSubmit((v) => (setFailure(null), save.mutate(v)))}>
      <Group align="flex-end" gap="xs" mt="md">
        <Select
          label="Parent role"
          searchable
          clearable
          data={(roles.data ?? []).filter((o) => o.value !== roleId)}
          style={{ flex: 1 }}
          {...form.getInputProps("parent_role_id")}
        />
        <Button type="submit" variant="default" loading={save.isPending}>
          Save parent
        </Button>
      </Group>
      <ErrorAlert error={failure} />
    </form>
  );
}

/** Who holds the role directly (not through groups or children), assigning and removing. */
function RoleHolders({ roleId }: { roleId: string }) {
  const api = useApi();
  const tenantId = useTenantId();
  const session = useSession();
  const queryClient = useQueryClient();
  const users = useUserOptions();
  const key = [tenantId, "users", "holders", roleId];
  const holders = useQuery({
    queryKey: key,
    enabled: session.can("user", "read"),
    queryFn: () =>
      unwrap(api.GET("/api/v1/users", { params: { query: listParams({ limit: 200, sort: "email", role_id: roleId }) } })),
  });
  const changed = () => queryClient.invalidateQueries({ queryKey: [tenantId, "users"] });
  const remove = useMutation({
    mutationFn: (uid: string) =>
      unwrap(api.DELETE("/api/v1/roles/{id}/assign/{user_id}", { params: { path: { id: roleId, user_id: uid } } })),
    onSuccess: changed,
  });
  const canEdit = session.can("role", "write");
  const items = holders.data?.items ?? [];
  return (
    <Stack gap="xs" mt="md">
      <Text fw={600}>Held directly by</Text>
      <Group gap="xs">
        {items.length === 0 && (
          <Text size="sm" c="dimmed">
            nobody
          </Text>
        )}
        {items.map((u) => (
          <Badge
            key={u.id}
            variant="outline"
            rightSection={
              canEdit && <CloseButton size="xs" aria-label={`Take the role from ${u.email}`} onClick={() => remove.mutate(u.id)} />
            }
          >
            {u.email}
          </Badge>
        ))}
      </Group>
      {canEdit && (
        <PickAndAdd
          label="Assign to user"
          action="Assign"
          options={users.data}
          exclude={new Set(items.map((u) => u.id))}
          onAdd={(uid) =>
            unwrap(api.POST("/api/v1/roles/{id}/assign", { params: { path: { id: roleId } }, body: { user_ids: [uid] } })).then(
              changed,
            )
          }
        />
      )}
      <ErrorAlert error={remove.error} />
    </Stack>
  );
}

function RolePermissionsCard({ roleId }: { roleId: string }) {
  const api = useApi();
  const tenantId = useTenantId();
  const session = useSession();
  const queryClient = useQueryClient();
  const options = usePermissionOptions();
  const key = [tenantId, "roles", roleId, "permissions"];
  const perms = useQuery({
    queryKey: key,
    queryFn: async () =>
      as<RolePermissions>(await unwrap(api.GET("/api/v1/roles/{id}/permissions", { params: { path: { id: roleId } } }))),
  });
  const detach = useMutation({
    mutationFn: (pid: string) =>
      unwrap(
        api.DELETE("/api/v1/roles/{id}/permissions/{permission_id}", { params: { path: { id: roleId, permission_id: pid } } }),
      ),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: key }),
  });
  const canEdit = session.can("role", "write");
  return (
    <Card withBorder mt="md">
      <Text fw={600} mb="xs">
        Permissions of this role (inherited ones come from the parent chain)
      </Text>
      <QueryView query={perms}>
        {(p) => {
          const held = new Set(p.items.map((x) => x.id));
          return (
            <Stack gap="xs">
              <Table.ScrollContainer minWidth={500}>
                <Table>
                  <Table.Thead>
                    <Table.Tr>
                      <Table.Th>Permission</Table.Th>
                      <Table.Th>Effect</Table.Th>
                      <Table.Th>Resource</Table.Th>
                      <Table.Th>Actions</Table.Th>
                      <Table.Th>
                        <VisuallyHidden>Detach</VisuallyHidden>
                      </Table.Th>
                    </Table.Tr>
                  </Table.Thead>
                  <Table.Tbody>
                    {p.items.map((x) => (
                      <Table.Tr key={x.id}>
                        <Table.Td>{x.name}</Table.Td>
                        <PermissionCells p={x} />
                        <Table.Td>
                          {canEdit && <CloseButton aria-label={`Detach ${x.name}`} onClick={() => detach.mutate(x.id)} />}
                        </Table.Td>
                      </Table.Tr>
                    ))}
                  </Table.Tbody>
                </Table>
              </Table.ScrollContainer>
              {canEdit && (
                <PickAndAdd
                  label="Attach permission"
                  action="Attach"
                  options={options.data}
                  exclude={held}
                  onAdd={(pid) =>
                    unwrap(
                      api.POST("/api/v1/roles/{id}/permissions", {
                        params: { path: { id: roleId } },
                        body: { permission_ids: [pid] },
                      }),
                    ).then(() => queryClient.invalidateQueries({ queryKey: key }))
                  }
                />
              )}
              <ErrorAlert error={detach.error} />
            </Stack>
          );
        }}
      </QueryView>
    </Card>
  );
}
