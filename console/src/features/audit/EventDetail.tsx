// One audit event in full: why it was answered so (reason, rules), the
// request it belongs to, and for admin writes the entity before and after.
import type { ReactNode } from "react";
import { Badge, Button, Code, Group, SimpleGrid, Stack, Text } from "@mantine/core";
import type { AuditEvent } from "@/api/types";
import { when } from "@/ui/format";

const OUTCOME_COLOR: Record<string, string> = {
  allowed: "green",
  denied: "red",
  rate_limited: "orange",
  step_up: "yellow",
  error: "gray",
};

export function OutcomeBadge({ outcome }: { outcome: string }) {
  return <Badge color={OUTCOME_COLOR[outcome] ?? "gray"}>{outcome.replace("_", " ")}</Badge>;
}

function Field({ label, children }: { label: string; children: ReactNode }) {
  return (
    <div>
      <Text size="xs" c="dimmed" fw={700}>
        {label}
      </Text>
      <Text size="sm" component="div" style={{ overflowWrap: "anywhere" }}>
        {children ?? "—"}
      </Text>
    </div>
  );
}

function Json({ label, value }: { label: string; value: unknown }) {
  return (
    <div>
      <Text size="xs" c="dimmed" fw={700}>
        {label}
      </Text>
      {value == null ? (
        <Text size="sm">—</Text>
      ) : (
        <Code block aria-label={label}>
          {JSON.stringify(value, null, 2)}
        </Code>
      )}
    </div>
  );
}

export function EventDetail({
  event: e,
  onLookup,
}: {
  event: AuditEvent;
  /** Offered when the event has a request id: show every event of that request. */
  onLookup?: (requestId: string) => void;
}) {
  return (
    <Stack gap="xs" data-testid="audit-event-detail">
      <Group gap="xs">
        <OutcomeBadge outcome={e.outcome} />
        <Text size="sm" fw={600}>
          {e.action ?? "—"}
        </Text>
        <Text size="sm" c="dimmed">
          {when(e.time)} · {e.source}
        </Text>
      </Group>
      <SimpleGrid cols={{ base: 1, sm: 2, lg: 4 }} spacing="xs">
        <Field label="Reason">{e.reason}</Field>
        <Field label="Rules">{e.rules.length > 0 ? e.rules.join(", ") : null}</Field>
        <Field label="Code">{e.code}</Field>
        <Field label="Status">{e.status}</Field>
        <Field label="Principal">{e.principal_id && `${e.principal_id} (${e.principal_kind ?? "?"})`}</Field>
        <Field label="Request">{e.method || e.path ? `${e.method ?? ""} ${e.path ?? ""}` : null}</Field>
        <Field label="Route">{e.route}</Field>
        <Field label="Resource">{e.resource && `${e.resource}${e.resource_id ? ` ${e.resource_id}` : ""}`}</Field>
        <Field label="Client IP">{e.client_ip}</Field>
        <Field label="Risk score">{e.risk_score}</Field>
        <Field label="Latency (ms)">{e.latency_ms}</Field>
        <Field label="Gateway">{e.gateway}</Field>
        <Field label="Request id">
          {e.request_id && (
            <Group gap={4}>
              <Text span size="sm" ff="monospace">
                {e.request_id}
              </Text>
              {onLookup && (
                <Button size="compact-xs" variant="subtle" onClick={() => onLookup(e.request_id as string)}>
                  All events of this request
                </Button>
              )}
            </Group>
          )}
        </Field>
        <Field label="Event id">
          <Text span size="sm" ff="monospace">
            {e.id}
          </Text>
        </Field>
      </SimpleGrid>
      {e.source === "admin" && (
        <SimpleGrid cols={{ base: 1, md: 2 }} spacing="xs">
          <Json label="Before" value={e.before} />
          <Json label="After" value={e.after} />
        </SimpleGrid>
      )}
    </Stack>
  );
}
