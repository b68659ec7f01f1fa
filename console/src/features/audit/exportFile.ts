// The export needs the bearer token, so a plain link cannot fetch it: the
// console fetches `/audit/export` through its client and saves the answer as
// a file (a blob URL, revoked once the download has started).
import type { Api } from "@/api/client";
import { unwrap } from "@/api/client";
import { listParams, type ListQuery } from "@/api/lists";

export type ExportFormat = "csv" | "jsonl";

export async function downloadExport(api: Api, format: ExportFormat, filters: ListQuery): Promise<void> {
  const blob = await unwrap(
    api.GET("/api/v1/audit/export", {
      params: { query: listParams({ ...filters, format }) },
      parseAs: "blob",
    }),
  );
  const url = URL.createObjectURL(blob as Blob);
  try {
    const a = document.createElement("a");
    a.href = url;
    a.download = `audit-${new Date().toISOString().replaceAll(":", "-").slice(0, 19)}.${format}`;
    document.body.append(a);
    a.click();
    a.remove();
  } finally {
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }
}
