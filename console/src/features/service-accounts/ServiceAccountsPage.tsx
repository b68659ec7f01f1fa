// Machine principals: an API key each, shown once at creation and rotation.
import { useState } from "react";
import { Badge, Button, Menu, Modal, MultiSelect, NumberInput, Stack, Table, Text, TextInput, VisuallyHidden } from "@mantine/core";
import { useForm } from "@mantine/form";
import { notifications } from "@mantine/notifications";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { unwrap } from "@/api/client";
import { listParams, usePagedList } from "@/api/lists";
import { useRoleOptions } from "@/api/options";
import { as, type KeyCheck, type ServiceAccount } from "@/api/types";
import { useApi, useSession, useTenantId } from "@/app/session-context";
import { ErrorAlert } from "@/ui/ErrorAlert";
import { LoadMore } from "@/ui/LoadMore";
import { PageHeader } from "@/ui/PageHeader";
import { ShownOnce } from "@/ui/ShownOnce";
import { FormActions } from "@/ui/FormActions";
import { reportToForm } from "@/ui/forms";
import { when } from "@/ui/format";

export function ServiceAccountsPage() {
  const api = useApi();
  const tenantId = useTenantId();
  const session = useSession();
  const queryClient = useQueryClient();
  const [creating, setCreating] = useState(false);
  const [secret, setSecret] = useState<{ title: string; key: string } | null>(null);
  const list = usePagedList<ServiceAccount>([tenantId, "service-accounts"], (cursor) =>
    unwrap(api.GET("/api/v1/service-accounts", { params: { query: listParams({ limit: 50, cursor, sort: "name" }) } })),
  );
  const refresh = () => queryClient.invalidateQueries({ queryKey: [tenantId, "service-accounts"] });
  const rotate = useMutation({
    mutationFn: (sa: ServiceAccount) =>
      unwrap(api.POST("/api/v1/service-accounts/{id}/rotate-credentials", { params: { path: { id: sa.id } }, body: {} })),
    onSuccess: (r) => {
      setSecret({ title: `New API key of ${r.name}`, key: r.api_key });
      refresh();
    },
  });
  const setActive = useMutation({
    mutationFn: ({ sa, active }: { sa: ServiceAccount; active: boolean }) =>
      unwrap(api.PATCH("/api/v1/service-accounts/{id}", { params: { path: { id: sa.id } }, body: { is_active: active } })),
    onSuccess: refresh,
  });
  const validate = useMutation({
    mutationFn: async (sa: ServiceAccount) => ({
      sa,
      result: as<KeyCheck>(
        await unwrap(api.GET("/api/v1/service-accounts/{id}/validate", { params: { path: { id: sa.id } } })),
      ),
    }),
    onSuccess: ({ sa, result }) =>
      notifications.show({
        color: result.valid ? "green" : "red",
        title: sa.name,
        message: result.valid ? "The key works now." : `The key does not work: ${result.problems.join("; ")}`,
      }),
  });
  const admin = session.can("service_account", "admin");
  return (
    <>
      <PageHeader
        title="Service accounts"
        description="Machine clients authenticate with an API key (Authorization: ApiKey … or X-API-Key). Only the key's hash is stored."
        actions={admin && <Button onClick={() => setCreating(true)}>New service account</Button>}
      />
      {list.isError && <ErrorAlert error={list.error} />}
      <ErrorAlert error={rotate.error ?? setActive.error ?? validate.error} />
      <Table.ScrollContainer minWidth={700}>
        <Table striped highlightOnHover>
          <Table.Caption>{list.isPending ? "Loading…" : `${list.items.length} service accounts`}</Table.Caption>
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Name</Table.Th>
              <Table.Th>Key prefix</Table.Th>
              <Table.Th>Key expires</Table.Th>
              <Table.Th>State</Table.Th>
              <Table.Th>Last used</Table.Th>
              <Table.Th>
                <VisuallyHidden>Actions</VisuallyHidden>
              </Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {list.items.map((sa) => (
              <Table.Tr key={sa.id}>
                <Table.Td>{sa.name}</Table.Td>
                <Table.Td>
                  <Text ff="monospace" size="sm">
                    {sa.api_key_prefix ? `sk_${sa.api_key_prefix}_…` : "—"}
                  </Text>
                </Table.Td>
                <Table.Td>{sa.api_key_expires_at ? when(sa.api_key_expires_at) : "never"}</Table.Td>
                <Table.Td>
                  {!sa.is_active ? (
                    <Badge color="gray">inactive</Badge>
                  ) : sa.is_locked ? (
                    <Badge color="red">locked</Badge>
                  ) : (
                    <Badge color="green">active</Badge>
                  )}
                </Table.Td>
                <Table.Td>{when(sa.last_login)}</Table.Td>
                <Table.Td>
                  {admin && (
                    <Menu position="bottom-end">
                      <Menu.Target>
                        <Button variant="subtle" size="xs" aria-label={`Actions for ${sa.name}`}>
                          Actions
                        </Button>
                      </Menu.Target>
                      <Menu.Dropdown>
                        <Menu.Item onClick={() => rotate.mutate(sa)}>Rotate key</Menu.Item>
                        <Menu.Item onClick={() => validate.mutate(sa)}>Check key</Menu.Item>
                        <Menu.Item onClick={() => setActive.mutate({ sa, active: !sa.is_active })}>
                          {sa.is_active ? "Deactivate" : "Activate"}
                        </Menu.Item>
                      </Menu.Dropdown>
                    </Menu>
                  )}
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      </Table.ScrollContainer>
      <LoadMore hasNext={list.hasNextPage} loading={list.isFetchingNextPage} onClick={() => list.fetchNextPage()} />
      <CreateServiceAccount
        opened={creating}
        onClose={() => setCreating(false)}
        onCreated={(name, key) => {
          refresh();
          setSecret({ title: `API key of ${name}`, key });
        }}
      />
      <ShownOnce title={secret?.title ?? ""} secret={secret?.key ?? null} onClose={() => setSecret(null)} />
    </>
  );
}

function CreateServiceAccount({
  opened,
  onClose,
  onCreated,
}: {
  opened: boolean;
  onClose: () => void;
  onCreated: (name: string, key: string) => void;
}) {
  const api = useApi();
  const roles = useRoleOptions();
  const [failure, setFailure] = useState<unknown>(null);
  const form = useForm({
    initialValues: { name: "", role_ids: [] as string[], expires_in_days: "" as number | string },
  });
  const create = useMutation({
    mutationFn: (v: typeof form.values) =>
      unwrap(
        api.POST("/api/v1/service-accounts", {
          body: {
            name: v.name,
            role_ids: v.role_ids,
            expires_in_days: v.expires_in_days === "" ? null : Number(v.expires_in_days),
          },
        }),
      ),
    onSuccess: (r) => {
      form.reset();
      onClose();
      onCreated(r.name, r.api_key);
    },
    onError: (e) => setFailure(reportToForm(form, e)),
  });
  return (
    <Modal opened={opened} onClose={onClose} title="New service account">
      <form onSubmit={form.onSubmit((v) => (setFailure(null), create.mutate(v)))}>
        <Stack>
          <TextInput label="Name" required {...form.getInputProps("name")} />
          <MultiSelect label="Roles" searchable data={roles.data ?? []} {...form.getInputProps("role_ids")} />
          <NumberInput
            label="Key lifetime (days)"
            description="Empty: the API's default; 0: no expiry"
            min={0}
            allowDecimal={false}
            {...form.getInputProps("expires_in_days")}
          />
          <FormActions failure={failure} onCancel={onClose} submitLabel="Create and show key" busy={create.isPending} />
        </Stack>
      </form>
    </Modal>
  );
}
