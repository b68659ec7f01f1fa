import { Alert, Text } from "@mantine/core";
import { ApiFailure } from "@/api/errors";

/** An API refusal as the API worded it, with its code and request id. */
export function ErrorAlert({ error, title }: { error: unknown; title?: string }) {
  if (!error) return null;
  const f = error instanceof ApiFailure ? error : null;
  return (
    <Alert color="red" title={title ?? "Refused"} role="alert">
      <Text size="sm">
        {f ? f.message : error instanceof Error ? error.message : String(error)}
        {f && <Text span c="dimmed" size="xs" ff="monospace">{` ${f.code}`}</Text>}
      </Text>
      {f?.requestId && (
        <Text size="xs" c="dimmed">
          request id {f.requestId}
        </Text>
      )}
    </Alert>
  );
}
