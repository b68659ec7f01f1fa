import type { ReactNode } from "react";
import { Button, Group, Popover, Stack, Text } from "@mantine/core";
import { useDisclosure } from "@mantine/hooks";

/** A destructive action that asks once more before it calls the API. */
export function ConfirmButton({
  children,
  question,
  confirmLabel,
  onConfirm,
  loading,
}: {
  children: ReactNode;
  question: string;
  confirmLabel: string;
  onConfirm: () => void;
  loading?: boolean;
}) {
  const [opened, { toggle, close }] = useDisclosure(false);
  return (
    <Popover opened={opened} onChange={toggle} trapFocus position="bottom-end" withArrow shadow="md">
      <Popover.Target>
        <Button color="red" variant="light" loading={loading} onClick={toggle}>
          {children}
        </Button>
      </Popover.Target>
      <Popover.Dropdown role="dialog" aria-label={question}>
        <Stack gap="xs" maw={280}>
          <Text size="sm">{question}</Text>
          <Group justify="flex-end" gap="xs">
            <Button size="xs" variant="default" onClick={close}>
              Keep
            </Button>
            <Button
              size="xs"
              color="red"
              onClick={() => {
                close();
                onConfirm();
              }}
            >
              {confirmLabel}
            </Button>
          </Group>
        </Stack>
      </Popover.Dropdown>
    </Popover>
  );
}
