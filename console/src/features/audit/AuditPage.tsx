// The audit trail of the tenant acted on (a platform principal on the
// platform tenant: every tenant's; the tenant switcher narrows it): search
// with filters, newest first, "Load more" by cursor, each row's detail, the
// events of one request id, and the export of what the filters select.
import { Fragment, useState } from "react";
import { Button, Group, Select, Table, Text, TextInput } from "@mantine/core";
import { useMutation } from "@tanstack/react-query";
import { listParams, usePagedList, type ListQuery } from "@/api/lists";
import { unwrap } from "@/api/client";
import type { AuditEvent } from "@/api/types";
import { useApi, useSession, useTenantId } from "@/app/session-context";
import { ErrorAlert } from "@/ui/ErrorAlert";
import { ListTable } from "@/ui/ListTable";
import { PageHeader } from "@/ui/PageHeader";
import { when } from "@/ui/format";
import { EventDetail, OutcomeBadge } from "./EventDetail";
import { downloadExport, type ExportFormat } from "./exportFile";
import { RequestLookup } from "./RequestLookup";

const OUTCOMES = ["allowed", "denied", "rate_limited", "step_up", "error"];
const TEXT_FILTERS = [
  ["principal_id", "Principal id"],
  ["action", "Action"],
  ["code", "Code"],
  ["route", "Route"],
  ["request_id", "Request id"],
] as const;

interface Filters {
  principal_id: string;
  action: string;
  code: string;
  route: string;
  request_id: string;
  outcome: string | null;
  source: string | null;
  /** `datetime-local` values, in the reader's time zone. */
  from: string;
  to: string;
}

const EMPTY: Filters = {
  principal_id: "",
  action: "",
  code: "",
  route: "",
  request_id: "",
  outcome: null,
  source: null,
  from: "",
  to: "",
};

/** A `datetime-local` value as RFC 3339 UTC, or undefined (empty or unreadable). */
function instant(local: string): string | undefined {
  if (!local) return undefined;
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

/** The filters as the API's query parameters (search and export alike). */
function toQuery(f: Filters): ListQuery {
  return {
    principal_id: f.principal_id.trim(),
    action: f.action.trim(),
    code: f.code.trim(),
    route: f.route.trim(),
    request_id: f.request_id.trim(),
    outcome: f.outcome ?? undefined,
    source: f.source ?? undefined,
    from: instant(f.from),
    to: instant(f.to),
  };
}

export function AuditPage() {
  const api = useApi();
  const tenantId = useTenantId();
  const session = useSession();
  const [draft, setDraft] = useState<Filters>(EMPTY);
  const [applied, setApplied] = useState<Filters>(EMPTY);
  const [open, setOpen] = useState<string | null>(null);
  const [asked, setAsked] = useState<string | null>(null);
  const query = toQuery(applied);
  const list = usePagedList<AuditEvent>([tenantId, "audit", query], (cursor) =>
    unwrap(api.GET("/api/v1/audit/events", { params: { query: listParams({ ...query, limit: 50, cursor }) } })),
  );
  const exporting = useMutation({ mutationFn: (format: ExportFormat) => downloadExport(api, format, query) });
  const set = (k: keyof Filters) => (v: string | null) => setDraft((d) => ({ ...d, [k]: v }));
  const lookUp = (id: string | null) => {
    setAsked(id);
    if (id) document.getElementById("audit-lookup")?.scrollIntoView({ block: "start" });
  };

  return (
    <>
      <PageHeader
        title="Audit"
        description="Decisions of the gateways and changes made through the admin API, newest first."
        actions={
          session.holds("audit:export") && (
            <>
              <Button variant="default" loading={exporting.isPending && exporting.variables === "csv"} onClick={() => exporting.mutate("csv")}>
                Export CSV
              </Button>
              <Button variant="default" loading={exporting.isPending && exporting.variables === "jsonl"} onClick={() => exporting.mutate("jsonl")}>
                Export JSON lines
              </Button>
            </>
          )
        }
      />
      {exporting.isError && <ErrorAlert error={exporting.error} title="Export refused" />}
      <RequestLookup key={asked ?? ""} asked={asked} onAsk={lookUp} />
      <form
        aria-label="Audit filters"
        onSubmit={(ev) => {
          ev.preventDefault();
          setOpen(null);
          // The same filters again: search again (new events may have come).
          if (JSON.stringify(draft) === JSON.stringify(applied)) void list.refetch();
          else setApplied(draft);
        }}
      >
        <Group mb="sm" align="flex-end" gap="sm">
          <Select
            label="Outcome"
            placeholder="any"
            clearable
            data={OUTCOMES.map((o) => ({ value: o, label: o.replace("_", " ") }))}
            value={draft.outcome}
            onChange={set("outcome")}
            w={150}
          />
          <Select
            label="Source"
            placeholder="any"
            clearable
            data={["gateway", "admin"]}
            value={draft.source}
            onChange={set("source")}
            w={130}
          />
          {TEXT_FILTERS.map(([k, label]) => (
            <TextInput key={k} label={label} value={draft[k]} onChange={(ev) => set(k)(ev.currentTarget.value)} w={170} />
          ))}
          <TextInput label="From" type="datetime-local" value={draft.from} onChange={(ev) => set("from")(ev.currentTarget.value)} w={210} />
          <TextInput label="To (before)" type="datetime-local" value={draft.to} onChange={(ev) => set("to")(ev.currentTarget.value)} w={210} />
          <Button type="submit">Search</Button>
          <Button
            variant="subtle"
            onClick={() => {
              setDraft(EMPTY);
              setApplied(EMPTY);
              setOpen(null);
            }}
          >
            Clear filters
          </Button>
        </Group>
      </form>
      <ListTable
        list={list}
        noun="events"
        minWidth={900}
        head={["Time", "Outcome", "Source", "Action", "Principal", "Route / path", "Code", ""]}
      >
        {list.items.map((e) => {
          const expanded = open === e.id;
          const detailId = `audit-detail-${e.id}`;
          return (
            <Fragment key={e.id}>
              <Table.Tr data-testid="audit-row" data-event-id={e.id}>
                <Table.Td style={{ whiteSpace: "nowrap" }}>{when(e.time)}</Table.Td>
                <Table.Td>
                  <OutcomeBadge outcome={e.outcome} />
                </Table.Td>
                <Table.Td>{e.source}</Table.Td>
                <Table.Td>{e.action ?? "—"}</Table.Td>
                <Table.Td>
                  <Text size="xs" ff="monospace">
                    {e.principal_id ?? "—"}
                  </Text>
                </Table.Td>
                <Table.Td>{e.route ?? e.path ?? "—"}</Table.Td>
                <Table.Td>{e.code ?? "—"}</Table.Td>
                <Table.Td>
                  <Button
                    size="compact-sm"
                    variant="subtle"
                    aria-expanded={expanded}
                    aria-controls={expanded ? detailId : undefined}
                    aria-label={`${expanded ? "Hide details" : "Details"} of ${e.action ?? e.outcome} at ${when(e.time)}`}
                    onClick={() => setOpen(expanded ? null : e.id)}
                  >
                    {expanded ? "Hide" : "Details"}
                  </Button>
                </Table.Td>
              </Table.Tr>
              {expanded && (
                <Table.Tr id={detailId}>
                  <Table.Td colSpan={8}>
                    <EventDetail event={e} onLookup={lookUp} />
                  </Table.Td>
                </Table.Tr>
              )}
            </Fragment>
          );
        })}
      </ListTable>
    </>
  );
}
