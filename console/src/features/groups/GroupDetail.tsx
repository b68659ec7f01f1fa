// One group: its members and its roles (with the API scopes they carry).
import { Anchor, Badge, Breadcrumbs, Card, CloseButton, Group, SimpleGrid, Stack, Table, Text } from "@mantine/core";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { Link, useParams } from "react-router";
import { unwrap } from "@/api/client";
import { useRoleOptions, useUserOptions } from "@/api/options";
import { as, type GroupMembers, type GroupRoles } from "@/api/types";
import { useApi, useSession, useTenantId } from "@/app/session-context";
import { ErrorAlert } from "@/ui/ErrorAlert";
import { PageHeader } from "@/ui/PageHeader";
import { PickAndAdd } from "@/ui/PickAndAdd";
import { QueryView } from "@/ui/QueryView";

export function GroupDetail() {
  const { id = "" } = useParams();
  const api = useApi();
  const tenantId = useTenantId();
  const group = useQuery({
    queryKey: [tenantId, "groups", id],
    queryFn: () => unwrap(api.GET("/api/v1/groups/{id}", { params: { path: { id } } })),
  });
  return (
    <QueryView query={group}>
      {(g) => (
        <>
          <Breadcrumbs mb="xs">
            <Anchor component={Link} to={`/t/${tenantId}/groups`}>
              Groups
            </Anchor>
            <Text>{g.name}</Text>
          </Breadcrumbs>
          <PageHeader title={g.name} description={g.description || undefined} />
          <SimpleGrid cols={{ base: 1, md: 2 }}>
            <Members groupId={id} />
            <Roles groupId={id} />
          </SimpleGrid>
        </>
      )}
    </QueryView>
  );
}

function Members({ groupId }: { groupId: string }) {
  const api = useApi();
  const tenantId = useTenantId();
  const session = useSession();
  const queryClient = useQueryClient();
  const users = useUserOptions();
  const key = [tenantId, "groups", groupId, "members"];
  const members = useQuery({
    queryKey: key,
    queryFn: async () =>
      as<GroupMembers>(await unwrap(api.GET("/api/v1/groups/{id}/members", { params: { path: { id: groupId } } }))),
  });
  const changed = () => {
    queryClient.invalidateQueries({ queryKey: key });
    queryClient.invalidateQueries({ queryKey: [tenantId, "users"] });
  };
  const remove = useMutation({
    mutationFn: (uid: string) =>
      unwrap(api.DELETE("/api/v1/groups/{id}/members/{user_id}", { params: { path: { id: groupId, user_id: uid } } })),
    onSuccess: changed,
  });
  const canEdit = session.can("group", "write");
  return (
    <Card withBorder>
      <Text fw={600} mb="xs">
        Members
      </Text>
      <QueryView query={members}>
        {(m) => {
          const inGroup = new Set(m.items.map((u) => u.id));
          return (
            <Stack gap="xs">
              <Table>
                <Table.Tbody>
                  {m.items.length === 0 && (
                    <Table.Tr>
                      <Table.Td c="dimmed">no members</Table.Td>
                    </Table.Tr>
                  )}
                  {m.items.map((u) => (
                    <Table.Tr key={u.id}>
                      <Table.Td>
                        <Anchor component={Link} to={`/t/${tenantId}/users/${u.id}`}>
                          {u.email ?? u.name}
                        </Anchor>
                        {u.is_service_account && (
                          <Badge size="xs" ml="xs" variant="outline">
                            service account
                          </Badge>
                        )}
                      </Table.Td>
                      <Table.Td w={40}>
                        {canEdit && (
                          <CloseButton aria-label={`Remove ${u.email ?? u.name}`} onClick={() => remove.mutate(u.id)} />
                        )}
                      </Table.Td>
                    </Table.Tr>
                  ))}
                </Table.Tbody>
              </Table>
              {canEdit && (
                <PickAndAdd
                  label="Add member"
                  action="Add"
                  options={users.data}
                  exclude={inGroup}
                  onAdd={(uid) =>
                    unwrap(
                      api.POST("/api/v1/groups/{id}/members", { params: { path: { id: groupId } }, body: { user_ids: [uid] } }),
                    ).then(changed)
                  }
                />
              )}
              <ErrorAlert error={remove.error} />
            </Stack>
          );
        }}
      </QueryView>
    </Card>
  );
}

function Roles({ groupId }: { groupId: string }) {
  const api = useApi();
  const tenantId = useTenantId();
  const session = useSession();
  const queryClient = useQueryClient();
  const roles = useRoleOptions();
  const key = [tenantId, "groups", groupId, "roles"];
  const held = useQuery({
    queryKey: key,
    queryFn: async () =>
      as<GroupRoles>(await unwrap(api.GET("/api/v1/groups/{id}/roles", { params: { path: { id: groupId } } }))),
  });
  const remove = useMutation({
    mutationFn: (rid: string) =>
      unwrap(api.DELETE("/api/v1/groups/{id}/roles/{role_id}", { params: { path: { id: groupId, role_id: rid } } })),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: key }),
  });
  const canEdit = session.can("group", "write");
  return (
    <Card withBorder>
      <Text fw={600} mb="xs">
        Roles
      </Text>
      <QueryView query={held}>
        {(r) => {
          const has = new Set(r.items.map((x) => x.id));
          return (
            <Stack gap="xs">
              <Group gap="xs">
                {r.items.length === 0 && (
                  <Text size="sm" c="dimmed">
                    none
                  </Text>
                )}
                {r.items.map((role) => (
                  <Badge
                    key={role.id}
                    variant="light"
                    rightSection={
                      canEdit && (
                        <CloseButton size="xs" aria-label={`Take role ${role.name}`} onClick={() => remove.mutate(role.id)} />
                      )
                    }
                  >
                    {role.name}
                  </Badge>
                ))}
              </Group>
              <Text size="xs" c="dimmed">
                API scopes through these roles: {r.effective_scopes.join(", ") || "none"}
              </Text>
              {canEdit && (
                <PickAndAdd
                  label="Give role"
                  action="Give"
                  options={roles.data}
                  exclude={has}
                  onAdd={(rid) =>
                    unwrap(
                      api.POST("/api/v1/groups/{id}/roles", { params: { path: { id: groupId } }, body: { role_ids: [rid] } }),
                    ).then(() => queryClient.invalidateQueries({ queryKey: key }))
                  }
                />
              )}
              <ErrorAlert error={remove.error} />
            </Stack>
          );
        }}
      </QueryView>
    </Card>
  );
}
