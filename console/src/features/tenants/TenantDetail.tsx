// One tenant: its place in the hierarchy, status changes, acting on it.
import { Anchor, Badge, Breadcrumbs, Button, Card, Group, List, SimpleGrid, Stack, Text } from "@mantine/core";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { Link, useNavigate, useParams } from "react-router";
import { unwrap } from "@/api/client";
import type { Tenant } from "@/api/types";
import { useApi, useSession, useTenantId } from "@/app/session-context";
import { ErrorAlert } from "@/ui/ErrorAlert";
import { PageHeader } from "@/ui/PageHeader";
import { QueryView } from "@/ui/QueryView";
import { when } from "@/ui/format";
import { statusColor } from "./TenantsPage";

export function TenantDetail() {
  const { id = "" } = useParams();
  const api = useApi();
  const tenantId = useTenantId();
  const session = useSession();
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const hierarchy = useQuery({
    queryKey: [tenantId, "tenants", id, "hierarchy"],
    queryFn: () => unwrap(api.GET("/api/v1/tenants/{id}/hierarchy", { params: { path: { id } } })),
  });
  const setStatus = useMutation({
    mutationFn: (active: boolean) =>
      unwrap(
        active
          ? api.POST("/api/v1/tenants/{id}/activate", { params: { path: { id } } })
          : api.POST("/api/v1/tenants/{id}/deactivate", { params: { path: { id } } }),
      ),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: [tenantId, "tenants"] }),
  });
  return (
    <QueryView query={hierarchy}>
      {(h) => (
        <>
          <Breadcrumbs mb="xs">
            <Anchor component={Link} to={`/t/${tenantId}/tenants`}>
              Tenants
            </Anchor>
            <Text>{h.tenant.code}</Text>
          </Breadcrumbs>
          <PageHeader
            title={h.tenant.name}
            description={`${h.tenant.code} · ${h.tenant.type} tenant`}
            actions={
              <>
                {session.can("tenant", "admin") &&
                  (h.tenant.status === "active" ? (
                    <Button variant="default" color="red" loading={setStatus.isPending} onClick={() => setStatus.mutate(false)}>
                      Deactivate
                    </Button>
                  ) : (
                    <Button variant="default" loading={setStatus.isPending} onClick={() => setStatus.mutate(true)}>
                      Activate
                    </Button>
                  ))}
                <Button onClick={() => navigate(`/t/${h.tenant.id}/users`)}>Act on this tenant</Button>
              </>
            }
          />
          <ErrorAlert error={setStatus.error} />
          <SimpleGrid cols={{ base: 1, sm: 3 }} mt="md">
            <Card withBorder>
              <Text fw={600} mb="xs">
                Tenant
              </Text>
              <Stack gap={4}>
                <Group gap="xs">
                  <Text size="sm">Status</Text>
                  <Badge color={statusColor(h.tenant.status)} variant="light">
                    {h.tenant.status}
                  </Badge>
                </Group>
                <Text size="sm">Created {when(h.tenant.created_at)}</Text>
                <Text size="sm" style={{ wordBreak: "break-all" }}>
                  Id {h.tenant.id}
                </Text>
              </Stack>
            </Card>
            <TenantLinks title="Ancestors" tenants={h.ancestors} none="none visible" />
            <TenantLinks title="Sub-tenants" tenants={h.descendants} none="none" />
          </SimpleGrid>
        </>
      )}
    </QueryView>
  );
}

function TenantLinks({ title, tenants, none }: { title: string; tenants: Tenant[]; none: string }) {
  const tenantId = useTenantId();
  return (
    <Card withBorder>
      <Text fw={600} mb="xs">
        {title}
      </Text>
      {tenants.length === 0 ? (
        <Text size="sm" c="dimmed">
          {none}
        </Text>
      ) : (
        <List size="sm">
          {tenants.map((t) => (
            <List.Item key={t.id}>
              <Anchor component={Link} to={`/t/${tenantId}/tenants/${t.id}`}>
                {t.code}
              </Anchor>{" "}
              {t.name}
            </List.Item>
          ))}
        </List>
      )}
    </Card>
  );
}
