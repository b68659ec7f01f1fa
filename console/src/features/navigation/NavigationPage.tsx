// The tenant's app menu: items name the permission they need; each principal
// gets only the items the evaluator allows (a hidden parent hides its children).
import { useState } from "react";
import { Button, Card, CloseButton, Code, Group, List, Modal, NumberInput, Select, SimpleGrid, Stack, Table, Text, TextInput, VisuallyHidden } from "@mantine/core";
import { useForm } from "@mantine/form";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { unwrap } from "@/api/client";
import { listParams } from "@/api/lists";
import { as, type MenuItem, type NavItem } from "@/api/types";
import { useApi, useMe, useSession, useTenantId } from "@/app/session-context";
import { ErrorAlert } from "@/ui/ErrorAlert";
import { PageHeader } from "@/ui/PageHeader";
import { QueryView } from "@/ui/QueryView";
import { FormActions } from "@/ui/FormActions";
import { reportToForm } from "@/ui/forms";

/** Items in tree order with their depth. */
function treeOrder(items: NavItem[]): { item: NavItem; depth: number }[] {
  const children = new Map<string | null, NavItem[]>();
  for (const i of items) {
    const k = i.parent_id ?? null;
    children.set(k, [...(children.get(k) ?? []), i]);
  }
  for (const list of children.values()) list.sort((a, b) => a.sort_order - b.sort_order || a.label.localeCompare(b.label));
  const out: { item: NavItem; depth: number }[] = [];
  const walk = (parent: string | null, depth: number) => {
    for (const i of children.get(parent) ?? []) {
      out.push({ item: i, depth });
      walk(i.id, depth + 1);
    }
  };
  walk(null, 0);
  return out;
}

export function NavigationPage() {
  const api = useApi();
  const tenantId = useTenantId();
  const session = useSession();
  const queryClient = useQueryClient();
  const [creating, setCreating] = useState(false);
  const items = useQuery({
    queryKey: [tenantId, "navigation", "items"],
    queryFn: () => unwrap(api.GET("/api/v1/navigation", { params: { query: listParams({ limit: 200, sort: "created_at" }) } })),
  });
  const remove = useMutation({
    mutationFn: (id: string) => unwrap(api.DELETE("/api/v1/navigation/{id}", { params: { path: { id } } })),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: [tenantId, "navigation"] }),
  });
  const admin = session.can("navigation", "admin");
  return (
    <>
      <PageHeader
        title="Navigation"
        description="The menu your apps render from GET /navigation/menu, filtered per principal by the gateway's evaluator."
        actions={admin && <Button onClick={() => setCreating(true)}>New menu item</Button>}
      />
      <ErrorAlert error={remove.error} />
      <SimpleGrid cols={{ base: 1, lg: 3 }}>
        <Card withBorder style={{ gridColumn: "span 2" }}>
          <QueryView query={items}>
            {(page) => (
              <Table.ScrollContainer minWidth={560}>
                <Table>
                  <Table.Thead>
                    <Table.Tr>
                      <Table.Th>Label</Table.Th>
                      <Table.Th>Path</Table.Th>
                      <Table.Th>Needs</Table.Th>
                      <Table.Th>Order</Table.Th>
                      <Table.Th>
                        <VisuallyHidden>Delete</VisuallyHidden>
                      </Table.Th>
                    </Table.Tr>
                  </Table.Thead>
                  <Table.Tbody>
                    {treeOrder(page.items ?? []).map(({ item, depth }) => (
                      <Table.Tr key={item.id}>
                        <Table.Td style={{ paddingLeft: 12 + depth * 20 }}>{item.label}</Table.Td>
                        <Table.Td>
                          <Code>{item.path}</Code>
                        </Table.Td>
                        <Table.Td>{item.resource_type ? `${item.action ?? "read"} on ${item.resource_type}` : "—"}</Table.Td>
                        <Table.Td>{item.sort_order}</Table.Td>
                        <Table.Td>
                          {admin && (
                            <CloseButton aria-label={`Delete ${item.label} and its children`} onClick={() => remove.mutate(item.id)} />
                          )}
                        </Table.Td>
                      </Table.Tr>
                    ))}
                  </Table.Tbody>
                </Table>
              </Table.ScrollContainer>
            )}
          </QueryView>
        </Card>
        <MyMenu />
      </SimpleGrid>
      <CreateItem opened={creating} onClose={() => setCreating(false)} items={items.data?.items ?? []} />
    </>
  );
}

function MenuTree({ items }: { items: MenuItem[] }) {
  return (
    <List size="sm" withPadding>
      {items.map((i) => (
        <List.Item key={i.id}>
          {i.label} <Code>{i.path}</Code>
          {i.children.length > 0 && <MenuTree items={i.children} />}
        </List.Item>
      ))}
    </List>
  );
}

function MyMenu() {
  const api = useApi();
  const me = useMe();
  const tenantId = useTenantId();
  const menu = useQuery({
    queryKey: [tenantId, "navigation", "menu"],
    enabled: tenantId === me.tenant_id,
    queryFn: async () => as<{ items: MenuItem[] }>(await unwrap(api.GET("/api/v1/navigation/menu"))),
  });
  return (
    <Card withBorder>
      <Text fw={600} mb="xs">
        Your menu
      </Text>
      {tenantId !== me.tenant_id ? (
        <Text size="sm" c="dimmed">
          Shown in your own tenant only.
        </Text>
      ) : (
        <QueryView query={menu}>
          {(m) =>
            m.items.length ? (
              <MenuTree items={m.items} />
            ) : (
              <Text size="sm" c="dimmed">
                empty
              </Text>
            )
          }
        </QueryView>
      )}
    </Card>
  );
}

function CreateItem({ opened, onClose, items }: { opened: boolean; onClose: () => void; items: NavItem[] }) {
  const api = useApi();
  const tenantId = useTenantId();
  const queryClient = useQueryClient();
  const [failure, setFailure] = useState<unknown>(null);
  const form = useForm({
    initialValues: {
      label: "",
      path: "",
      icon: "",
      sort_order: 0 as number | string,
      parent_id: null as string | null,
      resource_type: "",
      action: "",
    },
  });
  const create = useMutation({
    mutationFn: (v: typeof form.values) =>
      unwrap(
        api.POST("/api/v1/navigation", {
          body: {
            label: v.label,
            path: v.path,
            icon: v.icon || null,
            sort_order: v.sort_order === "" ? null : Number(v.sort_order),
            parent_id: v.parent_id,
            resource_type: v.resource_type || null,
            action: v.action || null,
          },
        }),
      ),
    onSuccess: () => {
      queryClient.invalidateQueries({ queryKey: [tenantId, "navigation"] });
      form.reset();
      onClose();
    },
    onError: (e) => setFailure(reportToForm(form, e)),
  });
  return (
    <Modal opened={opened} onClose={onClose} title="New menu item" size="lg">
      <form onSubmit={form.onSubmit((v) => (setFailure(null), create.mutate(v)))}>
        <Stack>
          <Group grow>
            <TextInput label="Label" required {...form.getInputProps("label")} />
            <TextInput label="Path" placeholder="/vessels" required {...form.getInputProps("path")} />
          </Group>
          <Group grow>
            <Select
              label="Parent item"
              clearable
              data={items.map((i) => ({ value: i.id, label: i.label }))}
              {...form.getInputProps("parent_id")}
            />
            <NumberInput label="Order" {...form.getInputProps("sort_order")} />
          </Group>
          <Group grow>
            <TextInput label="Needs resource type" description="Shown only to principals allowed…" {...form.getInputProps("resource_type")} />
            <TextInput label="…this action" placeholder="read" {...form.getInputProps("action")} />
          </Group>
          <TextInput label="Icon name" {...form.getInputProps("icon")} />
          <FormActions failure={failure} onCancel={onClose} submitLabel="Add item" busy={create.isPending} />
        </Stack>
      </form>
    </Modal>
  );
}
