import { useState } from "react";
import { Button, Group, Select, Stack } from "@mantine/core";
import { notifications } from "@mantine/notifications";
import { useMutation } from "@tanstack/react-query";
import type { Option } from "@/api/options";
import { ErrorAlert } from "./ErrorAlert";

/**
 * Pick one of `options` (less those in `exclude`) and send it with `onAdd`:
 * assigning a role, adding a member, attaching a permission. The API's
 * refusal is shown below.
 */
export function PickAndAdd({
  label,
  action,
  options,
  exclude,
  onAdd,
  done,
}: {
  label: string;
  action: string;
  options: Option[] | undefined;
  exclude?: Set<string>;
  onAdd: (id: string) => Promise<unknown>;
  /** Said once the API accepted it, when the page shows no change by itself. */
  done?: string;
}) {
  const [pick, setPick] = useState<string | null>(null);
  const add = useMutation({
    mutationFn: onAdd,
    onSuccess: () => {
      setPick(null);
      if (done) notifications.show({ message: done });
    },
  });
  return (
    <Stack gap="xs">
      <Group align="flex-end" gap="xs">
        <Select
          label={label}
          searchable
          data={(options ?? []).filter((o) => !exclude?.has(o.value))}
          value={pick}
          onChange={setPick}
          style={{ flex: 1 }}
        />
        <Button variant="default" disabled={!pick} loading={add.isPending} onClick={() => pick && add.mutate(pick)}>
          {action}
        </Button>
      </Group>
      <ErrorAlert error={add.error} />
    </Stack>
  );
}
