// Lists of the admin API: `limit` (1–200), `cursor` (from `next_cursor`),
// `sort`, per-list filters; answers `{items, next_cursor, limit}`.
import { useInfiniteQuery, type QueryKey } from "@tanstack/react-query";

export interface Page<T> {
  /** Optional in the document of this API version; always present in answers. */
  items?: T[];
  next_cursor?: string | null;
  limit?: number;
}

export type ListQuery = Record<string, string | number | boolean | undefined>;

/**
 * The query string of a list call. The API documents its list parameters in
 * docs/admin-api.md ("Lists"); the OpenAPI document of this version does not
 * declare them per operation yet, so this is the one place they are passed
 * untyped. When the document declares them, `npm run gen:api` types them and
 * this helper goes.
 */
export function listParams(q: ListQuery): never {
  const clean: Record<string, string | number | boolean> = {};
  for (const [k, v] of Object.entries(q)) if (v !== undefined && v !== "") clean[k] = v;
  return clean as never;
}

/** A list read page by page ("Load more"), newest query key per filter. */
export function usePagedList<T>(key: QueryKey, fetchPage: (cursor: string | undefined) => Promise<Page<T>>) {
  const q = useInfiniteQuery({
    queryKey: key,
    queryFn: ({ pageParam }) => fetchPage(pageParam),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (last) => last.next_cursor ?? undefined,
  });
  const items = q.data?.pages.flatMap((p) => p.items ?? []) ?? [];
  return { ...q, items };
}
