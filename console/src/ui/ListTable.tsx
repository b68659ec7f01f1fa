import type { ReactNode } from "react";
import { Table } from "@mantine/core";
import { ErrorAlert } from "./ErrorAlert";
import { LoadMore } from "./LoadMore";

interface PagedList {
  items: unknown[];
  isPending: boolean;
  isError: boolean;
  error: unknown;
  hasNextPage: boolean;
  isFetchingNextPage: boolean;
  fetchNextPage: () => unknown;
}

/** A list page's table: headings, rows, a count caption, "Load more", the API's refusal. */
export function ListTable({
  list,
  noun,
  head,
  minWidth = 640,
  children,
}: {
  list: PagedList;
  noun: string;
  head: ReactNode[];
  minWidth?: number;
  children: ReactNode;
}) {
  return (
    <>
      {list.isError && <ErrorAlert error={list.error} />}
      <Table.ScrollContainer minWidth={minWidth}>
        <Table striped highlightOnHover>
          <Table.Caption>{list.isPending ? "Loading…" : `${list.items.length} ${noun}`}</Table.Caption>
          <Table.Thead>
            <Table.Tr>
              {head.map((h, i) => (
                <Table.Th key={i}>{h}</Table.Th>
              ))}
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>{children}</Table.Tbody>
        </Table>
      </Table.ScrollContainer>
      <LoadMore hasNext={list.hasNextPage} loading={list.isFetchingNextPage} onClick={() => list.fetchNextPage()} />
    </>
  );
}
