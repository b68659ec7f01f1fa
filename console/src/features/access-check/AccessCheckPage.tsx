// "Can X do Y on Z?": POST /permissions/check, decided by the gateway's own
// evaluator, with the decision's reason and the rules that decided it.
import { useState } from "react";
import {
  Alert,
  Anchor,
  Badge,
  Button,
  Card,
  Code,
  Fieldset,
  Group,
  NumberInput,
  Select,
  SimpleGrid,
  Stack,
  Switch,
  Table,
  Text,
  TextInput,
  Title,
} from "@mantine/core";
import { useForm } from "@mantine/form";
import { useMutation } from "@tanstack/react-query";
import { Link } from "react-router";
import { unwrap } from "@/api/client";
import { usePermissionOptions, useUserOptions } from "@/api/options";
import type { CheckResponse } from "@/api/types";
import { useApi, useSession, useTenantId } from "@/app/session-context";
import { ErrorAlert } from "@/ui/ErrorAlert";
import { PageHeader } from "@/ui/PageHeader";
import { reportToForm } from "@/ui/forms";

const ACTIONS = ["read", "create", "update", "delete"];

export function AccessCheckPage() {
  const api = useApi();
  const session = useSession();
  const users = useUserOptions();
  const [failure, setFailure] = useState<unknown>(null);
  const form = useForm({
    initialValues: {
      user_id: null as string | null,
      resource_type: "",
      resource_id: "",
      action: "read",
      client_ip: "",
      method: null as string | null,
      mfa: false,
      risk_score: "" as number | string,
    },
  });
  const check = useMutation({
    mutationFn: (v: typeof form.values) => {
      const context: Record<string, unknown> = {};
      if (v.client_ip.trim()) context.client_ip = v.client_ip.trim();
      if (v.method) context.method = v.method;
      if (v.mfa) context.mfa = true;
      if (v.risk_score !== "") context.risk_score = Number(v.risk_score);
      return unwrap(
        api.POST("/api/v1/permissions/check", {
          body: {
            user_id: v.user_id,
            resource_type: v.resource_type.trim(),
            resource_id: v.resource_id.trim() || null,
            action: v.action.trim(),
            context,
          },
        }),
      );
    },
    onError: (e) => setFailure(reportToForm(form, e, { client_ip: "client_ip", risk_score: "risk_score" })),
  });
  return (
    <>
      <PageHeader
        title="Can X do Y on Z?"
        description="Asks the admin API to decide a request with the gateway's own evaluator on the tenant's current policy."
      />
      <SimpleGrid cols={{ base: 1, lg: 2 }}>
        <Card withBorder>
          <form aria-label="Access check" onSubmit={form.onSubmit((v) => (setFailure(null), check.mutate(v)))}>
            <Stack>
              <Select
                label="Principal"
                description={session.can("permission", "read") ? "Empty: yourself" : "Yourself (others need permission:read)"}
                searchable
                clearable
                data={users.data ?? []}
                {...form.getInputProps("user_id")}
              />
              <Group grow align="flex-start">
                <TextInput label="Resource type" placeholder="vessel" required {...form.getInputProps("resource_type")} />
                <TextInput label="Resource id" placeholder="v-a1 (empty: any)" {...form.getInputProps("resource_id")} />
              </Group>
              <Select label="Action" data={ACTIONS} searchable allowDeselect={false} {...form.getInputProps("action")} />
              <Fieldset legend="Request context (for ABAC conditions)">
                <Stack gap="xs">
                  <Group grow align="flex-start">
                    <TextInput label="Client IP" placeholder="10.1.2.3" {...form.getInputProps("client_ip")} />
                    <Select
                      label="Method"
                      clearable
                      data={["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]}
                      {...form.getInputProps("method")}
                    />
                  </Group>
                  <Group grow align="flex-end">
                    <NumberInput label="Risk score" min={0} max={1} step={0.05} decimalScale={2} {...form.getInputProps("risk_score")} />
                    <Switch label="MFA presented" {...form.getInputProps("mfa", { type: "checkbox" })} />
                  </Group>
                </Stack>
              </Fieldset>
              <ErrorAlert error={failure} />
              <Group justify="flex-end">
                <Button type="submit" loading={check.isPending}>
                  Decide
                </Button>
              </Group>
            </Stack>
          </form>
        </Card>
        {check.data ? <Decision result={check.data} /> : null}
      </SimpleGrid>
    </>
  );
}

function Decision({ result }: { result: CheckResponse }) {
  const tenantId = useTenantId();
  const perms = usePermissionOptions();
  const names = new Map((perms.data ?? []).map((o) => [o.value, o.label]));
  const fieldRules = (result.field_rules ?? {}) as Record<string, Record<string, string>>;
  const rows = Object.entries(fieldRules).flatMap(([tier, m]) => Object.entries(m).map(([field, rule]) => ({ tier, field, rule })));
  return (
    <Card withBorder aria-live="polite" data-testid="decision">
      <Stack>
        <Group>
          <Title order={3}>Decision</Title>
          <Badge size="xl" color={result.allowed ? "green" : "red"} data-testid="decision-outcome">
            {result.allowed ? "allowed" : "denied"}
          </Badge>
        </Group>
        <Alert color={result.allowed ? "green" : "red"} variant="light" title={<Code>{result.reason}</Code>}>
          <span data-testid="decision-reason">{result.reason_text}</span>
        </Alert>
        <div>
          <Text fw={600} size="sm">
            Deciding rules
          </Text>
          {result.rule_ids.length === 0 ? (
            <Text size="sm" c="dimmed">
              none (deny by default)
            </Text>
          ) : (
            <Stack gap={2} data-testid="decision-rules">
              {result.rule_ids.map((id) => (
                <Anchor key={id} component={Link} to={`/t/${tenantId}/permissions/${id}`} size="sm">
                  {names.get(id) ?? id}
                </Anchor>
              ))}
            </Stack>
          )}
        </div>
        {rows.length > 0 && (
          <Table>
            <Table.Caption>Field rules of the deciding allow rules</Table.Caption>
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Tier</Table.Th>
                <Table.Th>Field</Table.Th>
                <Table.Th>Rule</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {rows.map((r) => (
                <Table.Tr key={`${r.tier}.${r.field}`}>
                  <Table.Td>{r.tier}</Table.Td>
                  <Table.Td>{r.field}</Table.Td>
                  <Table.Td>{r.rule}</Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        )}
      </Stack>
    </Card>
  );
}
