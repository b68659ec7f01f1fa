// Tenants the principal can see (platform admins: all; others: their own and
// its direct sub-tenants), creating root tenants and sub-tenants.
import { useState } from "react";
import { Anchor, Badge, Button, Group, Modal, Select, Stack, Table, TextInput } from "@mantine/core";
import { useForm } from "@mantine/form";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { Link } from "react-router";
import { unwrap } from "@/api/client";
import { listParams, usePagedList } from "@/api/lists";
import type { Tenant } from "@/api/types";
import { useApi, useMe, useSession, useTenantId } from "@/app/session-context";
import { ListTable } from "@/ui/ListTable";
import { PageHeader } from "@/ui/PageHeader";
import { FormActions } from "@/ui/FormActions";
import { reportToForm } from "@/ui/forms";
import { when } from "@/ui/format";

export function statusColor(status: string): string {
  return status === "active" ? "green" : status === "suspended" ? "red" : "gray";
}

export function TenantsPage() {
  const api = useApi();
  const tenantId = useTenantId();
  const session = useSession();
  const [status, setStatus] = useState<string | null>(null);
  const [creating, setCreating] = useState(false);
  const list = usePagedList<Tenant>([tenantId, "tenants", status], (cursor) =>
    unwrap(api.GET("/api/v1/tenants", { params: { query: listParams({ limit: 100, cursor, sort: "code", status: status ?? undefined }) } })),
  );
  const byId = new Map(list.items.map((t) => [t.id, t]));
  return (
    <>
      <PageHeader
        title="Tenants"
        description="Organisations and their sub-tenants. An object of a tenant you cannot see answers like a missing one."
        actions={
          session.can("tenant", "admin") && (
            <Button onClick={() => setCreating(true)}>New tenant</Button>
          )
        }
      />
      <Group mb="sm">
        <Select
          label="Status"
          placeholder="any"
          clearable
          data={["active", "suspended", "inactive"]}
          value={status}
          onChange={setStatus}
          w={180}
        />
      </Group>
      <ListTable list={list} noun="tenants" minWidth={640} head={["Code", "Name", "Type", "Parent", "Status", "Created"]}>
        {list.items.map((t) => (
          <Table.Tr key={t.id}>
            <Table.Td>
              <Anchor component={Link} to={`/t/${tenantId}/tenants/${t.id}`}>
                {t.code}
              </Anchor>
            </Table.Td>
            <Table.Td>{t.name}</Table.Td>
            <Table.Td>{t.type}</Table.Td>
            <Table.Td>{t.parent_id ? (byId.get(t.parent_id)?.code ?? "—") : "—"}</Table.Td>
            <Table.Td>
              <Badge color={statusColor(t.status)} variant="light">
                {t.status}
              </Badge>
            </Table.Td>
            <Table.Td>{when(t.created_at)}</Table.Td>
          </Table.Tr>
        ))}
      </ListTable>
      <CreateTenant opened={creating} onClose={() => setCreating(false)} parents={list.items} />
    </>
  );
}

/** A root tenant (platform admins) or a sub-tenant of a tenant the caller administers. */
function CreateTenant({ opened, onClose, parents }: { opened: boolean; onClose: () => void; parents: Tenant[] }) {
  const api = useApi();
  const me = useMe();
  const tenantId = useTenantId();
  const queryClient = useQueryClient();
  const [failure, setFailure] = useState<unknown>(null);
  const form = useForm({
    initialValues: { code: "", name: "", parent_id: me.platform_admin ? "" : tenantId },
  });
  const create = useMutation({
    mutationFn: (v: typeof form.values) =>
      v.parent_id
        ? unwrap(
            api.POST("/api/v1/tenants/{id}/sub-tenants", {
              params: { path: { id: v.parent_id } },
              body: { code: v.code, name: v.name },
            }),
          )
        : unwrap(api.POST("/api/v1/tenants", { body: { code: v.code, name: v.name } })),
    onSuccess: () => {
      queryClient.invalidateQueries({ queryKey: [tenantId, "tenants"] });
      queryClient.invalidateQueries({ queryKey: [me.tenant_id, "tenant-switcher"] });
      form.reset();
      onClose();
    },
    onError: (e) => setFailure(reportToForm(form, e)),
  });
  return (
    <Modal opened={opened} onClose={onClose} title="New tenant">
      <form onSubmit={form.onSubmit((v) => (setFailure(null), create.mutate(v)))}>
        <Stack>
          <TextInput label="Code" description="2–64 of A–Z, 0–9, - and _" required {...form.getInputProps("code")} />
          <TextInput label="Name" required {...form.getInputProps("name")} />
          <Select
            label="Parent tenant"
            description={me.platform_admin ? "Leave empty for a root tenant" : "Sub-tenants only"}
            clearable={me.platform_admin}
            data={parents.map((t) => ({ value: t.id, label: `${t.code} · ${t.name}` }))}
            {...form.getInputProps("parent_id")}
            value={form.values.parent_id || null}
            onChange={(v) => form.setFieldValue("parent_id", v ?? "")}
          />
          <FormActions failure={failure} onCancel={onClose} submitLabel="Create" busy={create.isPending} />
        </Stack>
      </form>
    </Modal>
  );
}
