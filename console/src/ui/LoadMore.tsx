import { Button, Center } from "@mantine/core";

export function LoadMore({
  hasNext,
  loading,
  onClick,
}: {
  hasNext: boolean;
  loading: boolean;
  onClick: () => void;
}) {
  if (!hasNext) return null;
  return (
    <Center mt="sm">
      <Button variant="default" loading={loading} onClick={onClick}>
        Load more
      </Button>
    </Center>
  );
}
