// The three-tier field model: core and platform-dynamic fields (platform-wide,
// defined by platform admins) and the tenant's own tenant-specific fields.
import { useState } from "react";
import { Badge, Button, Group, Modal, NumberInput, Select, Stack, Table, Tabs, Text, TextInput } from "@mantine/core";
import { useForm } from "@mantine/form";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { unwrap } from "@/api/client";
import { listParams, usePagedList } from "@/api/lists";
import type { FieldDefinition } from "@/api/types";
import { useApi, useMe, useSession, useTenantId } from "@/app/session-context";
import { ErrorAlert } from "@/ui/ErrorAlert";
import { LoadMore } from "@/ui/LoadMore";
import { PageHeader } from "@/ui/PageHeader";
import { FormActions } from "@/ui/FormActions";
import { reportToForm } from "@/ui/forms";

const TIERS = [
  { value: "core", label: "Core", about: "Defined by the platform for every tenant." },
  { value: "platform_dynamic", label: "Platform dynamic", about: "Extensions the platform configures for every tenant." },
  { value: "tenant_specific", label: "Tenant specific", about: "This tenant's own custom fields." },
];
const DATA_TYPES = ["string", "number", "integer", "boolean", "date", "datetime", "object", "array"];
const SENSITIVITIES = ["public", "internal", "confidential", "restricted"];
const MASKS = ["full", "last", "hash", "null"];

export function FieldDefinitionsPage() {
  const session = useSession();
  const [tier, setTier] = useState<string>("core");
  const [creating, setCreating] = useState(false);
  return (
    <>
      <PageHeader
        title="Field definitions"
        description="Every field of an entity is in one tier; permissions give each field a rule (read, write, masked, hidden)."
        actions={session.can("field_definition", "admin") && <Button onClick={() => setCreating(true)}>New field</Button>}
      />
      <Tabs value={tier} onChange={(v) => v && setTier(v)} keepMounted={false}>
        <Tabs.List>
          {TIERS.map((t) => (
            <Tabs.Tab key={t.value} value={t.value}>
              {t.label}
            </Tabs.Tab>
          ))}
        </Tabs.List>
        {TIERS.map((t) => (
          <Tabs.Panel key={t.value} value={t.value} pt="sm">
            <Text size="sm" c="dimmed" mb="xs">
              {t.about}
            </Text>
            <TierTable tier={t.value} />
          </Tabs.Panel>
        ))}
      </Tabs>
      <CreateField opened={creating} onClose={() => setCreating(false)} tier={tier} />
    </>
  );
}

function TierTable({ tier }: { tier: string }) {
  const api = useApi();
  const tenantId = useTenantId();
  const list = usePagedList<FieldDefinition>([tenantId, "field-definitions", tier], (cursor) =>
    unwrap(api.GET("/api/v1/field-definitions", { params: { query: listParams({ limit: 200, cursor, tier, sort: "entity_type" }) } })),
  );
  return (
    <>
      {list.isError && <ErrorAlert error={list.error} />}
      <Table.ScrollContainer minWidth={640}>
        <Table striped>
          <Table.Caption>{list.isPending ? "Loading…" : `${list.items.length} fields`}</Table.Caption>
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Entity</Table.Th>
              <Table.Th>Field</Table.Th>
              <Table.Th>Data type</Table.Th>
              <Table.Th>Sensitivity</Table.Th>
              <Table.Th>Mask</Table.Th>
              <Table.Th>Description</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {list.items.map((f) => (
              <Table.Tr key={f.id}>
                <Table.Td>{f.entity_type}</Table.Td>
                <Table.Td>
                  {f.field_name}
                  {!f.is_active && (
                    <Badge size="xs" color="gray" ml="xs">
                      inactive
                    </Badge>
                  )}
                </Table.Td>
                <Table.Td>{f.data_type}</Table.Td>
                <Table.Td>
                  <Badge variant="light" color={f.sensitivity === "restricted" ? "red" : f.sensitivity === "confidential" ? "orange" : "gray"}>
                    {f.sensitivity}
                  </Badge>
                </Table.Td>
                <Table.Td>
                  {f.mask_style}
                  {f.mask_style === "last" && f.mask_keep != null ? ` (keep ${f.mask_keep})` : ""}
                </Table.Td>
                <Table.Td>{f.description}</Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      </Table.ScrollContainer>
      <LoadMore hasNext={list.hasNextPage} loading={list.isFetchingNextPage} onClick={() => list.fetchNextPage()} />
    </>
  );
}

function CreateField({ opened, onClose, tier }: { opened: boolean; onClose: () => void; tier: string }) {
  const api = useApi();
  const me = useMe();
  const tenantId = useTenantId();
  const queryClient = useQueryClient();
  const [failure, setFailure] = useState<unknown>(null);
  const form = useForm({
    initialValues: {
      entity_type: "",
      field_name: "",
      tier: me.platform_admin ? tier : "tenant_specific",
      data_type: "string",
      sensitivity: "internal",
      mask_style: "full",
      mask_keep: "" as number | string,
      description: "",
    },
  });
  const create = useMutation({
    mutationFn: (v: typeof form.values) =>
      unwrap(
        api.POST("/api/v1/field-definitions", {
          body: { ...v, mask_keep: v.mask_keep === "" ? null : Number(v.mask_keep), description: v.description || null },
        }),
      ),
    onSuccess: () => {
      queryClient.invalidateQueries({ queryKey: [tenantId, "field-definitions"] });
      form.reset();
      onClose();
    },
    onError: (e) => setFailure(reportToForm(form, e)),
  });
  return (
    <Modal opened={opened} onClose={onClose} title="New field definition" size="lg">
      <form onSubmit={form.onSubmit((v) => (setFailure(null), create.mutate(v)))}>
        <Stack>
          <Group grow>
            <TextInput label="Entity type" placeholder="vessel" required {...form.getInputProps("entity_type")} />
            <TextInput label="Field name" required {...form.getInputProps("field_name")} />
          </Group>
          <Select
            label="Tier"
            description="Core and platform-dynamic fields: platform administrators only"
            data={TIERS.map((t) => ({ value: t.value, label: t.label }))}
            allowDeselect={false}
            {...form.getInputProps("tier")}
          />
          <Group grow>
            <Select label="Data type" data={DATA_TYPES} allowDeselect={false} {...form.getInputProps("data_type")} />
            <Select label="Sensitivity" data={SENSITIVITIES} allowDeselect={false} {...form.getInputProps("sensitivity")} />
          </Group>
          <Group grow>
            <Select label="Mask style" data={MASKS} allowDeselect={false} {...form.getInputProps("mask_style")} />
            <NumberInput
              label="Characters kept visible"
              description="For mask style last"
              min={0}
              max={64}
              disabled={form.values.mask_style !== "last"}
              {...form.getInputProps("mask_keep")}
            />
          </Group>
          <TextInput label="Description" {...form.getInputProps("description")} />
          <FormActions failure={failure} onCancel={onClose} submitLabel="Define field" busy={create.isPending} />
        </Stack>
      </form>
    </Modal>
  );
}
