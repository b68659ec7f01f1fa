/** A timestamp of the API (RFC 3339) in the reader's locale, or a dash. */
export function when(ts: string | null | undefined): string {
  if (!ts) return "—";
  const d = new Date(ts);
  return Number.isNaN(d.getTime()) ? ts : d.toLocaleString();
}
