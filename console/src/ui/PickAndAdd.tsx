import { useState } from "react";
import { Button, Group, Select, Stack } from "@mantine/core";
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
}: {
  label: string;
  action: string;
  options: Option[] | undefined;
  exclude?: Set<string>;
  onAdd: (id: string) => Promise<unknown>;
}) {
  const [pick, setPick] = useState<string | null>(null);
  const add = useMutation({ mutationFn: onAdd, onSuccess: () => setPick(null) });
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
