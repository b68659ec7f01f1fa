// "Why was this request answered so?": every event of one request id
// (`GET /audit/requests/{request_id}`), oldest first, in full.
import { useState } from "react";
import { Button, Card, Group, Stack, TextInput, Title } from "@mantine/core";
import { useQuery } from "@tanstack/react-query";
import { unwrap } from "@/api/client";
import { useApi, useTenantId } from "@/app/session-context";
import { ErrorAlert } from "@/ui/ErrorAlert";
import { QueryView } from "@/ui/QueryView";
import { EventDetail } from "./EventDetail";

/**
 * `asked`: the request id looked up (the page owns it, so a row's detail can
 * ask too; the page remounts this card with `key={asked}` to show it).
 */
export function RequestLookup({ asked, onAsk }: { asked: string | null; onAsk: (id: string | null) => void }) {
  const api = useApi();
  const tenantId = useTenantId();
  const [draft, setDraft] = useState(asked ?? "");
  const found = useQuery({
    queryKey: [tenantId, "audit-request", asked],
    enabled: asked !== null,
    queryFn: () =>
      unwrap(
        api.GET("/api/v1/audit/requests/{request_id}", { params: { path: { request_id: asked as string } } }),
      ),
  });
  return (
    <Card withBorder mb="md" component="section" aria-labelledby="audit-lookup-title" id="audit-lookup">
      <Title order={3} size="h5" id="audit-lookup-title" mb="xs">
        Why was this request answered so?
      </Title>
      <form
        onSubmit={(ev) => {
          ev.preventDefault();
          const id = draft.trim();
          onAsk(id === "" ? null : id);
        }}
      >
        <Group align="flex-end">
          <TextInput
            label="Request id (X-Request-Id)"
            value={draft}
            onChange={(ev) => setDraft(ev.currentTarget.value)}
            w={360}
            styles={{ input: { fontFamily: "var(--mantine-font-family-monospace)" } }}
          />
          <Button type="submit" variant="default" disabled={draft.trim() === ""}>
            Look up
          </Button>
        </Group>
      </form>
      {asked !== null && (
        <Stack mt="sm" gap="sm" data-testid="audit-lookup-result" aria-live="polite">
          <QueryView query={found}>
            {(data) =>
              data.items.length === 0 ? (
                <ErrorAlert error={new Error("No events for this request id.")} />
              ) : (
                data.items.map((e) => (
                  <Card key={e.id} withBorder padding="sm">
                    <EventDetail event={e} />
                  </Card>
                ))
              )
            }
          </QueryView>
        </Stack>
      )}
    </Card>
  );
}
