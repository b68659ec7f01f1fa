// Resources the gateway protects (vessels, voyages, …), as a hierarchy.
import { useState } from "react";
import { Button, Code, Group, JsonInput, Modal, Select, Stack, Table, TextInput } from "@mantine/core";
import { useForm } from "@mantine/form";
import { useDebouncedValue } from "@mantine/hooks";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { unwrap } from "@/api/client";
import { listParams, usePagedList } from "@/api/lists";
import type { Resource } from "@/api/types";
import { useApi, useSession, useTenantId } from "@/app/session-context";
import { ListTable } from "@/ui/ListTable";
import { PageHeader } from "@/ui/PageHeader";
import { FormActions } from "@/ui/FormActions";
import { reportToForm } from "@/ui/forms";

export function ResourcesPage() {
  const api = useApi();
  const tenantId = useTenantId();
  const session = useSession();
  const [type, setType] = useState("");
  const [debounced] = useDebouncedValue(type, 300);
  const [creating, setCreating] = useState(false);
  const list = usePagedList<Resource>([tenantId, "resources", debounced], (cursor) =>
    unwrap(
      api.GET("/api/v1/resources", {
        params: { query: listParams({ limit: 100, cursor, sort: "external_id", resource_type: debounced }) },
      }),
    ),
  );
  const byId = new Map(list.items.map((r) => [r.id, r]));
  return (
    <>
      <PageHeader
        title="Resources"
        description="Objects permissions name by type and id (exact or prefix); parents form a hierarchy."
        actions={session.can("resource", "admin") && <Button onClick={() => setCreating(true)}>New resource</Button>}
      />
      <Group mb="sm">
        <TextInput label="Resource type" value={type} onChange={(e) => setType(e.currentTarget.value)} w={200} />
      </Group>
      <ListTable list={list} noun="resources" minWidth={640} head={["Type", "External id", "Name", "Parent", "Attributes"]}>
        {list.items.map((r) => (
          <Table.Tr key={r.id}>
            <Table.Td>{r.resource_type}</Table.Td>
            <Table.Td>
              <Code>{r.external_id}</Code>
            </Table.Td>
            <Table.Td>{r.name}</Table.Td>
            <Table.Td>{r.parent_id ? (byId.get(r.parent_id)?.external_id ?? "…") : "—"}</Table.Td>
            <Table.Td>
              <Code>{JSON.stringify(r.attributes)}</Code>
            </Table.Td>
          </Table.Tr>
        ))}
      </ListTable>
      <CreateResource opened={creating} onClose={() => setCreating(false)} parents={list.items} />
    </>
  );
}

function CreateResource({ opened, onClose, parents }: { opened: boolean; onClose: () => void; parents: Resource[] }) {
  const api = useApi();
  const tenantId = useTenantId();
  const queryClient = useQueryClient();
  const [failure, setFailure] = useState<unknown>(null);
  const form = useForm({
    initialValues: { resource_type: "", external_id: "", name: "", parent_id: null as string | null, attributes: "{}" },
    validate: {
      attributes: (v) => {
        try {
          JSON.parse(v || "{}");
          return null;
        } catch {
          return "must be a JSON object";
        }
      },
    },
  });
  const create = useMutation({
    mutationFn: (v: typeof form.values) =>
      unwrap(
        api.POST("/api/v1/resources", {
          body: {
            resource_type: v.resource_type,
            external_id: v.external_id,
            name: v.name || null,
            parent_id: v.parent_id,
            attributes: JSON.parse(v.attributes || "{}"),
          },
        }),
      ),
    onSuccess: () => {
      queryClient.invalidateQueries({ queryKey: [tenantId, "resources"] });
      form.reset();
      onClose();
    },
    onError: (e) => setFailure(reportToForm(form, e)),
  });
  return (
    <Modal opened={opened} onClose={onClose} title="New resource" size="lg">
      <form onSubmit={form.onSubmit((v) => (setFailure(null), create.mutate(v)))}>
        <Stack>
          <Group grow>
            <TextInput label="Resource type" required {...form.getInputProps("resource_type")} />
            <TextInput label="External id" required {...form.getInputProps("external_id")} />
          </Group>
          <TextInput label="Name" {...form.getInputProps("name")} />
          <Select
            label="Parent"
            clearable
            searchable
            data={parents.map((r) => ({ value: r.id, label: `${r.resource_type}:${r.external_id}` }))}
            {...form.getInputProps("parent_id")}
          />
          <JsonInput label="Attributes" autosize minRows={3} formatOnBlur {...form.getInputProps("attributes")} />
          <FormActions failure={failure} onCancel={onClose} submitLabel="Create resource" busy={create.isPending} />
        </Stack>
      </form>
    </Modal>
  );
}
