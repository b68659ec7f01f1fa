import { Alert, Button, Code, CopyButton, Group, Modal, Stack, Text } from "@mantine/core";

/**
 * A secret the API shows once (a service account's API key). Kept only in
 * this dialog's props: closing it forgets the key.
 */
export function ShownOnce({
  title,
  secret,
  onClose,
}: {
  title: string;
  secret: string | null;
  onClose: () => void;
}) {
  return (
    <Modal opened={secret !== null} onClose={onClose} title={title} size="lg" closeOnClickOutside={false}>
      <Stack>
        <Alert color="yellow" title="Shown once">
          Copy the key now. The API stores only its hash: it cannot be shown again, only rotated.
        </Alert>
        <Code block data-testid="shown-once-secret" style={{ wordBreak: "break-all" }}>
          {secret}
        </Code>
        <Group justify="flex-end">
          <CopyButton value={secret ?? ""}>
            {({ copied, copy }) => (
              <Button variant="light" onClick={copy}>
                {copied ? "Copied" : "Copy key"}
              </Button>
            )}
          </CopyButton>
          <Button onClick={onClose}>I have stored it</Button>
        </Group>
        <Text size="xs" c="dimmed">
          Use it as <Code>Authorization: ApiKey &lt;key&gt;</Code> or <Code>X-API-Key</Code>.
        </Text>
      </Stack>
    </Modal>
  );
}
