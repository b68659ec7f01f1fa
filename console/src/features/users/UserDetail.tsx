// One user: state (lock, unlock, reset password), roles, groups, and the
// effective permissions the API computes for them.
import { useState } from "react";
import {
  Anchor,
  Badge,
  Breadcrumbs,
  Button,
  Card,
  CloseButton,
  Code,
  Group,
  JsonInput,
  Modal,
  PasswordInput,
  SimpleGrid,
  Stack,
  Switch,
  Table,
  Text,
  TextInput,
} from "@mantine/core";
import { useForm } from "@mantine/form";
import { notifications } from "@mantine/notifications";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { Link, useParams } from "react-router";
import { unwrap } from "@/api/client";
import { useGroupOptions, useRoleOptions } from "@/api/options";
import { as, type EffectivePermissions, type UserDetail as Detail } from "@/api/types";
import { useApi, useSession, useTenantId } from "@/app/session-context";
import { ErrorAlert } from "@/ui/ErrorAlert";
import { PermissionCells } from "@/features/permissions/PermissionCells";
import { PageHeader } from "@/ui/PageHeader";
import { PickAndAdd } from "@/ui/PickAndAdd";
import { QueryView } from "@/ui/QueryView";
import { FormActions } from "@/ui/FormActions";
import { reportToForm } from "@/ui/forms";
import { when } from "@/ui/format";
import { AccountState } from "./UsersPage";

export function UserDetail() {
  const { id = "" } = useParams();
  const api = useApi();
  const tenantId = useTenantId();
  const session = useSession();
  const queryClient = useQueryClient();
  const [resetting, setResetting] = useState(false);
  const [editing, setEditing] = useState(false);
  const key = [tenantId, "users", id];
  const user = useQuery({
    queryKey: key,
    queryFn: async () => as<Detail>(await unwrap(api.GET("/api/v1/users/{id}", { params: { path: { id } } }))),
  });
  const refresh = () => queryClient.invalidateQueries({ queryKey: [tenantId, "users"] });
  const lock = useMutation({
    mutationFn: (locked: boolean) =>
      unwrap(
        locked
          ? api.POST("/api/v1/users/{id}/lock", { params: { path: { id } } })
          : api.POST("/api/v1/users/{id}/unlock", { params: { path: { id } } }),
      ),
    onSuccess: refresh,
  });
  return (
    <QueryView query={user}>
      {(u) => {
        const lockedOut = u.is_locked || (u.locked_until != null && new Date(u.locked_until) > new Date());
        return (
          <>
            <Breadcrumbs mb="xs">
              <Anchor component={Link} to={`/t/${tenantId}/users`}>
                Users
              </Anchor>
              <Text>{u.email}</Text>
            </Breadcrumbs>
            <PageHeader
              title={u.email}
              description={<AccountState user={u} />}
              actions={
                session.can("user", "admin") && (
                  <>
                    {lockedOut ? (
                      <Button variant="default" loading={lock.isPending} onClick={() => lock.mutate(false)}>
                        Unlock
                      </Button>
                    ) : (
                      <Button variant="default" color="red" loading={lock.isPending} onClick={() => lock.mutate(true)}>
                        Lock
                      </Button>
                    )}
                    <Button variant="default" onClick={() => setResetting(true)}>
                      Reset password
                    </Button>
                    <Button variant="default" onClick={() => setEditing(true)}>
                      Edit
                    </Button>
                  </>
                )
              }
            />
            <ErrorAlert error={lock.error} />
            <SimpleGrid cols={{ base: 1, md: 2 }}>
              <Card withBorder>
                <Text fw={600} mb="xs">
                  Account
                </Text>
                <Stack gap={4}>
                  <Text size="sm">Name: {u.name || "—"}</Text>
                  <Text size="sm">Last login: {when(u.last_login)} ({u.login_count} logins)</Text>
                  <Text size="sm">Failed logins in a row: {u.failed_login_count}</Text>
                  <Text size="sm">Created: {when(u.created_at)}</Text>
                  <Text size="sm">Attributes (read by ABAC conditions):</Text>
                  <Code block>{JSON.stringify(u.attributes, null, 2)}</Code>
                </Stack>
              </Card>
              <Stack>
                <UserRoles user={u} onChange={refresh} />
                <UserGroups user={u} onChange={refresh} />
              </Stack>
            </SimpleGrid>
            <Effective id={id} />
            <ResetPassword id={id} opened={resetting} onClose={() => setResetting(false)} />
            {editing && <EditUser user={u} onClose={() => setEditing(false)} onSaved={refresh} />}
          </>
        );
      }}
    </QueryView>
  );
}

function UserRoles({ user, onChange }: { user: Detail; onChange: () => void }) {
  const api = useApi();
  const session = useSession();
  const roles = useRoleOptions();
  const remove = useMutation({
    mutationFn: (role_id: string) =>
      unwrap(api.DELETE("/api/v1/users/{id}/roles/{role_id}", { params: { path: { id: user.id, role_id } } })),
    onSuccess: onChange,
  });
  const held = new Set(user.roles.map((r) => r.id));
  const canEdit = session.can("role", "write");
  return (
    <Card withBorder>
      <Text fw={600} mb="xs">
        Roles (direct)
      </Text>
      <Group gap="xs" mb="xs">
        {user.roles.length === 0 && (
          <Text size="sm" c="dimmed">
            none
          </Text>
        )}
        {user.roles.map((r) => (
          <Badge
            key={r.id}
            variant="light"
            rightSection={
              canEdit && (
                <CloseButton size="xs" aria-label={`Remove role ${r.name}`} onClick={() => remove.mutate(r.id)} />
              )
            }
          >
            {r.name}
            {r.valid_until ? ` until ${when(r.valid_until)}` : ""}
          </Badge>
        ))}
      </Group>
      {canEdit && (
        <PickAndAdd
          label="Assign role"
          action="Assign"
          options={roles.data}
          exclude={held}
          onAdd={(role_id) =>
            unwrap(api.POST("/api/v1/users/{id}/roles", { params: { path: { id: user.id } }, body: { role_id } })).then(onChange)
          }
        />
      )}
      <ErrorAlert error={remove.error} />
    </Card>
  );
}

function UserGroups({ user, onChange }: { user: Detail; onChange: () => void }) {
  const api = useApi();
  const session = useSession();
  const groups = useGroupOptions();
  const remove = useMutation({
    mutationFn: (gid: string) =>
      unwrap(api.DELETE("/api/v1/groups/{id}/members/{user_id}", { params: { path: { id: gid, user_id: user.id } } })),
    onSuccess: onChange,
  });
  const member = new Set(user.groups.map((g) => g.id));
  const canEdit = session.can("group", "write");
  return (
    <Card withBorder>
      <Text fw={600} mb="xs">
        Groups
      </Text>
      <Group gap="xs" mb="xs">
        {user.groups.length === 0 && (
          <Text size="sm" c="dimmed">
            none
          </Text>
        )}
        {user.groups.map((g) => (
          <Badge
            key={g.id}
            variant="outline"
            rightSection={
              canEdit && (
                <CloseButton size="xs" aria-label={`Remove from group ${g.name}`} onClick={() => remove.mutate(g.id)} />
              )
            }
          >
            {g.name}
          </Badge>
        ))}
      </Group>
      {canEdit && (
        <PickAndAdd
          label="Add to group"
          action="Add"
          options={groups.data}
          exclude={member}
          onAdd={(gid) =>
            unwrap(
              api.POST("/api/v1/groups/{id}/members", { params: { path: { id: gid } }, body: { user_ids: [user.id] } }),
            ).then(onChange)
          }
        />
      )}
      <ErrorAlert error={remove.error} />
    </Card>
  );
}

function Effective({ id }: { id: string }) {
  const api = useApi();
  const tenantId = useTenantId();
  const eff = useQuery({
    queryKey: [tenantId, "users", id, "permissions"],
    queryFn: async () =>
      as<EffectivePermissions>(await unwrap(api.GET("/api/v1/users/{id}/permissions", { params: { path: { id } } }))),
  });
  return (
    <Card withBorder mt="md">
      <Text fw={600} mb="xs">
        Effective access (direct, through groups and inherited)
      </Text>
      <QueryView query={eff}>
        {(e) => (
          <Stack gap="xs">
            <Text size="sm">Roles: {e.roles.map((r) => r.name).join(", ") || "none"}</Text>
            <Text size="sm">API scopes: {e.scopes.join(", ") || "none"}</Text>
            <Table.ScrollContainer minWidth={500}>
              <Table>
                <Table.Thead>
                  <Table.Tr>
                    <Table.Th>Permission</Table.Th>
                    <Table.Th>Effect</Table.Th>
                    <Table.Th>Resource</Table.Th>
                    <Table.Th>Actions</Table.Th>
                  </Table.Tr>
                </Table.Thead>
                <Table.Tbody>
                  {e.permissions.map((p) => (
                    <Table.Tr key={p.id}>
                      <Table.Td>{p.name}</Table.Td>
                      <PermissionCells p={p} />
                    </Table.Tr>
                  ))}
                </Table.Tbody>
              </Table>
            </Table.ScrollContainer>
          </Stack>
        )}
      </QueryView>
    </Card>
  );
}

function ResetPassword({ id, opened, onClose }: { id: string; opened: boolean; onClose: () => void }) {
  const api = useApi();
  const [failure, setFailure] = useState<unknown>(null);
  const form = useForm({ initialValues: { new_password: "" } });
  const reset = useMutation({
    mutationFn: (v: typeof form.values) =>
      unwrap(api.POST("/api/v1/users/{id}/reset-password", { params: { path: { id } }, body: v })),
    onSuccess: () => {
      notifications.show({ message: "Password set; the account's sessions were ended." });
      form.reset();
      onClose();
    },
    onError: (e) => setFailure(reportToForm(form, e)),
  });
  return (
    <Modal opened={opened} onClose={onClose} title="Reset password">
      <form onSubmit={form.onSubmit((v) => (setFailure(null), reset.mutate(v)))}>
        <Stack>
          <PasswordInput
            label="New password"
            description="The API's policy: 8–128 characters, an upper-case letter, a lower-case letter and a digit."
            autoComplete="new-password"
            required
            {...form.getInputProps("new_password")}
          />
          <FormActions failure={failure} onCancel={onClose} submitLabel="Set password" busy={reset.isPending} />
        </Stack>
      </form>
    </Modal>
  );
}

/** Name, active flag and the attributes ABAC conditions read (`department`, …). */
function EditUser({ user, onClose, onSaved }: { user: Detail; onClose: () => void; onSaved: () => void }) {
  const api = useApi();
  const [failure, setFailure] = useState<unknown>(null);
  const form = useForm({
    initialValues: { name: user.name, is_active: user.is_active, attributes: JSON.stringify(user.attributes ?? {}, null, 2) },
    validate: {
      attributes: (v) => {
        try {
          JSON.parse(v);
          return null;
        } catch {
          return "must be JSON";
        }
      },
    },
  });
  const save = useMutation({
    mutationFn: (v: typeof form.values) =>
      unwrap(
        api.PATCH("/api/v1/users/{id}", {
          params: { path: { id: user.id } },
          body: { name: v.name, is_active: v.is_active, attributes: JSON.parse(v.attributes) },
        }),
      ),
    onSuccess: () => (onSaved(), onClose()),
    onError: (e) => setFailure(reportToForm(form, e)),
  });
  return (
    <Modal opened onClose={onClose} title={`Edit ${user.email}`} size="lg">
      <form onSubmit={form.onSubmit((v) => (setFailure(null), save.mutate(v)))}>
        <Stack>
          <TextInput label="Name" {...form.getInputProps("name")} />
          <Switch label="Active (may log in)" {...form.getInputProps("is_active", { type: "checkbox" })} />
          <JsonInput
            label="Attributes"
            description="Read by attribute conditions of permissions, e.g. {&quot;department&quot;: &quot;port-ops&quot;}"
            autosize
            minRows={4}
            formatOnBlur
            {...form.getInputProps("attributes")}
          />
          <FormActions failure={failure} onCancel={onClose} submitLabel="Save" busy={save.isPending} />
        </Stack>
      </form>
    </Modal>
  );
}
