// Groups: members get every role of the group.
import { useState } from "react";
import { Anchor, Button, Modal, MultiSelect, Stack, Table, TextInput, Textarea } from "@mantine/core";
import { useForm } from "@mantine/form";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { Link, useNavigate } from "react-router";
import { unwrap } from "@/api/client";
import { listParams, usePagedList } from "@/api/lists";
import { useRoleOptions, useUserOptions } from "@/api/options";
import type { Group as GroupT } from "@/api/types";
import { useApi, useSession, useTenantId } from "@/app/session-context";
import { ListTable } from "@/ui/ListTable";
import { PageHeader } from "@/ui/PageHeader";
import { FormActions } from "@/ui/FormActions";
import { reportToForm } from "@/ui/forms";
import { when } from "@/ui/format";

export function GroupsPage() {
  const api = useApi();
  const tenantId = useTenantId();
  const session = useSession();
  const [creating, setCreating] = useState(false);
  const list = usePagedList<GroupT>([tenantId, "groups", "list"], (cursor) =>
    unwrap(api.GET("/api/v1/groups", { params: { query: listParams({ limit: 100, cursor, sort: "name" }) } })),
  );
  return (
    <>
      <PageHeader
        title="Groups"
        description="Members of a group hold every role given to the group."
        actions={session.can("group", "admin") && <Button onClick={() => setCreating(true)}>New group</Button>}
      />
      <ListTable list={list} noun="groups" minWidth={500} head={["Name", "Description", "Created"]}>
        {list.items.map((g) => (
          <Table.Tr key={g.id}>
            <Table.Td>
              <Anchor component={Link} to={`/t/${tenantId}/groups/${g.id}`}>
                {g.name}
              </Anchor>
            </Table.Td>
            <Table.Td>{g.description}</Table.Td>
            <Table.Td>{when(g.created_at)}</Table.Td>
          </Table.Tr>
        ))}
      </ListTable>
      <CreateGroup opened={creating} onClose={() => setCreating(false)} />
    </>
  );
}

function CreateGroup({ opened, onClose }: { opened: boolean; onClose: () => void }) {
  const api = useApi();
  const tenantId = useTenantId();
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const roles = useRoleOptions();
  const users = useUserOptions();
  const [failure, setFailure] = useState<unknown>(null);
  const form = useForm({
    initialValues: { name: "", description: "", role_ids: [] as string[], user_ids: [] as string[] },
  });
  const create = useMutation({
    mutationFn: (v: typeof form.values) =>
      unwrap(
        api.POST("/api/v1/groups", {
          body: { name: v.name, description: v.description || null, role_ids: v.role_ids, user_ids: v.user_ids },
        }),
      ),
    onSuccess: (g) => {
      queryClient.invalidateQueries({ queryKey: [tenantId, "groups"] });
      form.reset();
      onClose();
      navigate(`/t/${tenantId}/groups/${g.id}`);
    },
    onError: (e) => setFailure(reportToForm(form, e)),
  });
  return (
    <Modal opened={opened} onClose={onClose} title="New group" size="lg">
      <form onSubmit={form.onSubmit((v) => (setFailure(null), create.mutate(v)))}>
        <Stack>
          <TextInput label="Name" required {...form.getInputProps("name")} />
          <Textarea label="Description" autosize minRows={1} {...form.getInputProps("description")} />
          <MultiSelect label="Roles" searchable data={roles.data ?? []} {...form.getInputProps("role_ids")} />
          <MultiSelect label="Members" searchable data={users.data ?? []} {...form.getInputProps("user_ids")} />
          <FormActions failure={failure} onCancel={onClose} submitLabel="Create group" busy={create.isPending} />
        </Stack>
      </form>
    </Modal>
  );
}
