// People of the tenant: list, filter, create (password checked by the API's
// policy, roles and groups at once).
import { useState } from "react";
import {
  Anchor,
  Badge,
  Button,
  Group,
  Modal,
  MultiSelect,
  PasswordInput,
  Select,
  Stack,
  Table,
  TextInput,
} from "@mantine/core";
import { useForm } from "@mantine/form";
import { useDebouncedValue } from "@mantine/hooks";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { Link, useNavigate } from "react-router";
import { unwrap } from "@/api/client";
import { listParams, usePagedList } from "@/api/lists";
import { useGroupOptions, useRoleOptions } from "@/api/options";
import type { User } from "@/api/types";
import { useApi, useSession, useTenantId } from "@/app/session-context";
import { ListTable } from "@/ui/ListTable";
import { PageHeader } from "@/ui/PageHeader";
import { FormActions } from "@/ui/FormActions";
import { reportToForm } from "@/ui/forms";
import { when } from "@/ui/format";

export function AccountState({ user }: { user: Pick<User, "is_active" | "is_locked" | "locked_until"> }) {
  if (!user.is_active) return <Badge color="gray">inactive</Badge>;
  if (user.is_locked) return <Badge color="red">locked</Badge>;
  if (user.locked_until && new Date(user.locked_until) > new Date())
    return <Badge color="orange">locked out until {when(user.locked_until)}</Badge>;
  return <Badge color="green">active</Badge>;
}

export function UsersPage() {
  const api = useApi();
  const tenantId = useTenantId();
  const session = useSession();
  const [email, setEmail] = useState("");
  const [active, setActive] = useState<string | null>(null);
  const [debounced] = useDebouncedValue(email, 300);
  const [creating, setCreating] = useState(false);
  const list = usePagedList<User>([tenantId, "users", debounced, active], (cursor) =>
    unwrap(
      api.GET("/api/v1/users", {
        params: { query: listParams({ limit: 50, cursor, sort: "email", email: debounced, is_active: active ?? undefined }) },
      }),
    ),
  );
  return (
    <>
      <PageHeader
        title="Users"
        description="People who log in with a password (service accounts have their own page)."
        actions={session.can("user", "admin") && <Button onClick={() => setCreating(true)}>New user</Button>}
      />
      <Group mb="sm" align="flex-end">
        <TextInput label="Email contains" value={email} onChange={(e) => setEmail(e.currentTarget.value)} w={260} />
        <Select
          label="Active"
          placeholder="any"
          clearable
          data={[
            { value: "true", label: "active" },
            { value: "false", label: "inactive" },
          ]}
          value={active}
          onChange={setActive}
          w={140}
        />
      </Group>
      <ListTable list={list} noun="users" minWidth={640} head={["Email", "Name", "State", "Last login"]}>
        {list.items.map((u) => (
          <Table.Tr key={u.id}>
            <Table.Td>
              <Anchor component={Link} to={`/t/${tenantId}/users/${u.id}`}>
                {u.email}
              </Anchor>
            </Table.Td>
            <Table.Td>{u.name}</Table.Td>
            <Table.Td>
              <AccountState user={u} />
            </Table.Td>
            <Table.Td>{when(u.last_login)}</Table.Td>
          </Table.Tr>
        ))}
      </ListTable>
      <CreateUser opened={creating} onClose={() => setCreating(false)} />
    </>
  );
}

function CreateUser({ opened, onClose }: { opened: boolean; onClose: () => void }) {
  const api = useApi();
  const tenantId = useTenantId();
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const roles = useRoleOptions();
  const groups = useGroupOptions();
  const [failure, setFailure] = useState<unknown>(null);
  const form = useForm({
    initialValues: { email: "", name: "", password: "", role_ids: [] as string[], group_ids: [] as string[] },
  });
  const create = useMutation({
    mutationFn: (v: typeof form.values) =>
      unwrap(
        api.POST("/api/v1/users", {
          body: {
            email: v.email,
            name: v.name || null,
            password: v.password || null,
            role_ids: v.role_ids,
            group_ids: v.group_ids,
          },
        }),
      ),
    onSuccess: (user) => {
      queryClient.invalidateQueries({ queryKey: [tenantId, "users"] });
      form.reset();
      onClose();
      navigate(`/t/${tenantId}/users/${user.id}`);
    },
    onError: (e) => setFailure(reportToForm(form, e)),
  });
  return (
    <Modal opened={opened} onClose={onClose} title="New user" size="lg">
      <form onSubmit={form.onSubmit((v) => (setFailure(null), create.mutate(v)))}>
        <Stack>
          <TextInput label="Email" type="email" required {...form.getInputProps("email")} />
          <TextInput label="Name" {...form.getInputProps("name")} />
          <PasswordInput
            label="Password"
            description="Optional (users of an external identity provider have none). 8–128 characters with an upper-case letter, a lower-case letter and a digit."
            autoComplete="new-password"
            {...form.getInputProps("password")}
          />
          <MultiSelect label="Roles" searchable data={roles.data ?? []} {...form.getInputProps("role_ids")} />
          <MultiSelect label="Groups" searchable data={groups.data ?? []} {...form.getInputProps("group_ids")} />
          <FormActions failure={failure} onCancel={onClose} submitLabel="Create user" busy={create.isPending} />
        </Stack>
      </form>
    </Modal>
  );
}
