import { Button, Group } from "@mantine/core";
import { ErrorAlert } from "./ErrorAlert";

/** The foot of a form: what the API refused outside the fields, Cancel and submit. */
export function FormActions({
  failure,
  onCancel,
  submitLabel,
  busy,
}: {
  failure: unknown;
  onCancel: () => void;
  submitLabel: string;
  busy: boolean;
}) {
  return (
    <>
      <ErrorAlert error={failure} />
      <Group justify="flex-end">
        <Button variant="default" onClick={onCancel}>
          Cancel
        </Button>
        <Button type="submit" loading={busy}>
          {submitLabel}
        </Button>
      </Group>
    </>
  );
}
