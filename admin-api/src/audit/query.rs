//! Reading the audit trail: `GET /audit/events` (filters, newest first,
//! keyset cursor on `(time, id)`), `GET /audit/requests/{request_id}` (why
//! was this request answered so) and `GET /audit/export` (CSV or JSON
//! lines, streamed page by page).
//!
//! Who sees what: a tenant's principals holding `audit:read` see their
//! target tenant's events (row-level security, the same wall as every
//! tenant table); principals of the platform tenant see every tenant's
//! (and the events of unauthenticated callers) unless they name one with
//! `X-Tenant-ID`.

use super::event::{format_time, Event, COLS, OUTCOMES, SOURCES};
use crate::auth::Caller;
use crate::db::{self, TenantCtx};
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::extract::{Path, Query};
use crate::state::AppState;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use sentinel_policy::PLATFORM_TENANT;
use serde::{Deserialize, Serialize};
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 1000;
/// Rows per database round trip of an export.
const EXPORT_PAGE: i64 = 1000;

/// Filters of the search and the export.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub tenant_id: Option<Uuid>,
    pub principal_id: Option<String>,
    /// Inclusive.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive.
    pub to: Option<DateTime<Utc>>,
    pub outcome: Option<String>,
    pub code: Option<String>,
    pub route: Option<String>,
    pub resource: Option<String>,
    pub action: Option<String>,
    pub request_id: Option<String>,
    pub source: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    /// Export only: `csv` or `jsonl`.
    pub format: Option<String>,
}

/// One page of events, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventPage {
    pub items: Vec<Event>,
    /// Pass as `cursor` for the next (older) page; null on the last.
    pub next_cursor: Option<String>,
}

/// The events of one request.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RequestEvents {
    pub items: Vec<Event>,
}

/// The rows the caller may see: platform principals all (unless they
/// target a tenant), everyone else the target tenant only.
fn visibility(caller: &Caller) -> TenantCtx {
    if caller.tenant_id == PLATFORM_TENANT && caller.target == PLATFORM_TENANT {
        TenantCtx::All
    } else {
        TenantCtx::One(caller.target)
    }
}

fn encode_cursor(t: &DateTime<Utc>, id: &Uuid) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{id}", t.timestamp_micros()))
}

fn decode_cursor(c: &str) -> ApiResult<(DateTime<Utc>, Uuid)> {
    let bad = || FieldErrors::one("cursor", "not a cursor of this list");
    let text = URL_SAFE_NO_PAD.decode(c).map_err(|_| bad())?;
    let text = String::from_utf8(text).map_err(|_| bad())?;
    let (t, id) = text.split_once(':').ok_or_else(bad)?;
    let t = t
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(bad)?;
    Ok((t, Uuid::parse_str(id).map_err(|_| bad())?))
}

/// Checked filters.
struct Filter {
    p: Params,
    after: Option<(DateTime<Utc>, Uuid)>,
}

impl Filter {
    fn parse(p: Params) -> ApiResult<Filter> {
        let mut errs = FieldErrors::new();
        if let Some(o) = &p.outcome {
            if !OUTCOMES.contains(&o.as_str()) {
                errs.add("outcome", format!("must be one of {}", OUTCOMES.join(", ")));
            }
        }
        if let Some(s) = &p.source {
            if !SOURCES.contains(&s.as_str()) {
                errs.add("source", "must be `gateway` or `admin`");
            }
        }
        if p.limit.is_some_and(|l| !(1..=MAX_LIMIT).contains(&l)) {
            errs.add("limit", format!("must be 1-{MAX_LIMIT}"));
        }
        if let (Some(f), Some(t)) = (p.from, p.to) {
            if t <= f {
                errs.add("to", "must be after `from`");
            }
        }
        errs.into_result()?;
        let after = p.cursor.as_deref().map(decode_cursor).transpose()?;
        Ok(Filter { p, after })
    }

    /// `SELECT … WHERE <filters> AND (time, id) < cursor ORDER BY … LIMIT n`.
    fn query(&self, limit: i64) -> QueryBuilder<'static, Postgres> {
        let p = &self.p;
        let mut qb =
            QueryBuilder::new(format!("SELECT {COLS} FROM sentinel.audit_logs WHERE true"));
        if let Some(t) = p.tenant_id {
            qb.push(" AND tenant_id = ").push_bind(t);
        }
        let texts = [
            ("principal_id", &p.principal_id),
            ("outcome", &p.outcome),
            ("code", &p.code),
            ("route", &p.route),
            ("resource", &p.resource),
            ("action", &p.action),
            ("request_id", &p.request_id),
            ("source", &p.source),
        ];
        for (col, v) in texts {
            if let Some(v) = v {
                qb.push(format!(" AND {col} = ")).push_bind(v.clone());
            }
        }
        if let Some(f) = p.from {
            qb.push(" AND time >= ").push_bind(f);
        }
        if let Some(t) = p.to {
            qb.push(" AND time < ").push_bind(t);
        }
        if let Some((t, id)) = self.after {
            qb.push(" AND (time, id) < (")
                .push_bind(t)
                .push(", ")
                .push_bind(id)
                .push(")");
        }
        qb.push(" ORDER BY time DESC, id DESC LIMIT ")
            .push_bind(limit);
        qb
    }
}

/// The row-level-security predicate is opaque to the planner, which then
/// guesses far too few matches and sorts every one of them (seconds at 10 M
/// rows, docs/PERFORMANCE.md). Every filter has an index ending in
/// (time, id) (migration 0004), so a page is an ordered index walk that
/// stops at the limit; JIT only adds compile time to such short queries.
async fn ordered_walks(tx: &mut db::Tx) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT set_config('enable_sort', 'off', true), set_config('jit', 'off', true)")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// One page; `next` is the cursor after it, when there is more.
async fn page(
    state: &AppState,
    ctx: TenantCtx,
    f: &Filter,
    limit: i64,
) -> ApiResult<(Vec<Event>, Option<String>)> {
    let mut tx = state.begin(ctx).await?;
    ordered_walks(&mut tx).await?;
    let mut items: Vec<Event> = f
        .query(limit + 1)
        .build_query_as()
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    let next = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|e| encode_cursor(&e.time, &e.id))
    } else {
        None
    };
    Ok((items, next))
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<Params>,
) -> ApiResult<axum::Json<EventPage>> {
    if !caller.scopes.can_read_audit() {
        return Err(ApiError::denied("scope `audit:read` required"));
    }
    if q.format.is_some() {
        return Err(FieldErrors::one("format", "only the export takes a format"));
    }
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    let f = Filter::parse(q)?;
    let (items, next_cursor) = page(&state, visibility(&caller), &f, limit).await?;
    Ok(axum::Json(EventPage { items, next_cursor }))
}

pub async fn by_request(
    State(state): State<AppState>,
    caller: Caller,
    Path(request_id): Path<String>,
) -> ApiResult<axum::Json<RequestEvents>> {
    if !caller.scopes.can_read_audit() {
        return Err(ApiError::denied("scope `audit:read` required"));
    }
    let mut tx = state.begin(visibility(&caller)).await?;
    ordered_walks(&mut tx).await?;
    let items: Vec<Event> = sqlx::query_as(&format!(
        "SELECT {COLS} FROM sentinel.audit_logs WHERE request_id = $1 ORDER BY time, id LIMIT 1000"
    ))
    .bind(&request_id)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    if items.is_empty() {
        return Err(ApiError::NotFound);
    }
    Ok(axum::Json(RequestEvents { items }))
}

/// The CSV header: every field of [`Event`], in order.
pub const CSV_HEADER: &[&str] = &[
    "id",
    "time",
    "source",
    "request_id",
    "tenant_id",
    "principal_id",
    "principal_kind",
    "method",
    "route",
    "path",
    "resource",
    "resource_id",
    "action",
    "outcome",
    "code",
    "reason",
    "rules",
    "client_ip",
    "user_agent",
    "status",
    "latency_ms",
    "risk_score",
    "snapshot_version",
    "gateway",
    "before",
    "after",
];

/// RFC 4180: quoted when it holds a comma, quote, CR or LF; quotes doubled.
fn csv_cell(out: &mut String, v: &str) {
    if v.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&v.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(v);
    }
}

fn csv_row(out: &mut String, cells: &[String]) {
    for (i, c) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        csv_cell(out, c);
    }
    out.push_str("\r\n");
}

/// An event as CSV cells (arrays and objects as JSON text, null as empty).
fn csv_cells(e: &Event) -> Vec<String> {
    fn o<T: ToString>(v: &Option<T>) -> String {
        v.as_ref().map(ToString::to_string).unwrap_or_default()
    }
    let json =
        |v: &Option<serde_json::Value>| v.as_ref().map(|v| v.to_string()).unwrap_or_default();
    vec![
        e.id.to_string(),
        format_time(&e.time),
        e.source.clone(),
        o(&e.request_id),
        o(&e.tenant_id),
        o(&e.principal_id),
        o(&e.principal_kind),
        o(&e.method),
        o(&e.route),
        o(&e.path),
        o(&e.resource),
        o(&e.resource_id),
        o(&e.action),
        e.outcome.clone(),
        o(&e.code),
        o(&e.reason),
        serde_json::to_string(&e.rules).unwrap_or_default(),
        o(&e.client_ip),
        o(&e.user_agent),
        o(&e.status),
        o(&e.latency_ms),
        o(&e.risk_score),
        o(&e.snapshot_version),
        o(&e.gateway),
        json(&e.before),
        json(&e.after),
    ]
}

#[derive(Clone, Copy, PartialEq)]
enum Format {
    Csv,
    Jsonl,
}

/// Where an export stands between two pages.
struct Export {
    state: AppState,
    ctx: TenantCtx,
    filter: Filter,
    format: Format,
    header_done: bool,
    done: bool,
}

async fn next_chunk(mut x: Export) -> Option<(Result<Bytes, ApiError>, Export)> {
    if x.done {
        return None;
    }
    let mut out = String::new();
    if !x.header_done && x.format == Format::Csv {
        let header: Vec<String> = CSV_HEADER.iter().map(|s| (*s).to_owned()).collect();
        csv_row(&mut out, &header);
    }
    x.header_done = true;
    match page(&x.state, x.ctx, &x.filter, EXPORT_PAGE).await {
        Err(e) => {
            // The stream ends early: the client sees a cut-off body.
            tracing::warn!(error = %e, "audit export failed part way");
            x.done = true;
            Some((Err(e), x))
        }
        Ok((items, next)) => {
            for e in &items {
                match x.format {
                    Format::Csv => csv_row(&mut out, &csv_cells(e)),
                    Format::Jsonl => {
                        out.push_str(&serde_json::to_string(e).unwrap_or_default());
                        out.push('\n');
                    }
                }
            }
            match next {
                Some(c) => x.filter.after = decode_cursor(&c).ok(),
                None => x.done = true,
            }
            Some((Ok(Bytes::from(out)), x))
        }
    }
}

pub async fn export(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<Params>,
) -> ApiResult<Response> {
    if !caller.scopes.can_export_audit() {
        return Err(ApiError::denied("scope `audit:export` required"));
    }
    let format = match q.format.as_deref() {
        Some("csv") => Format::Csv,
        Some("jsonl") | None => Format::Jsonl,
        Some(_) => return Err(FieldErrors::one("format", "must be `csv` or `jsonl`")),
    };
    if q.limit.is_some() {
        return Err(FieldErrors::one("limit", "the export has no pages"));
    }
    let filter = Filter::parse(q)?;
    let x = Export {
        state,
        ctx: visibility(&caller),
        filter,
        format,
        header_done: false,
        done: false,
    };
    let (media, name) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "audit.csv"),
        Format::Jsonl => ("application/x-ndjson", "audit.jsonl"),
    };
    let body = Body::from_stream(futures_util::stream::unfold(x, next_chunk));
    Ok((
        [
            (header::CONTENT_TYPE, media.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        body,
    )
        .into_response())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let t = Utc::now();
        let id = crate::audit::event::new_v7();
        let (t2, id2) = decode_cursor(&encode_cursor(&t, &id)).unwrap();
        assert_eq!(t2.timestamp_micros(), t.timestamp_micros());
        assert_eq!(id2, id);
        assert!(decode_cursor("nope!").is_err());
        assert!(decode_cursor(&URL_SAFE_NO_PAD.encode("1:x")).is_err());
    }

    /// RFC 4180 read back (the test's own reader).
    fn read_csv(text: &str) -> Vec<Vec<String>> {
        let (mut rows, mut row, mut cell, mut quoted) =
            (Vec::new(), Vec::new(), String::new(), false);
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match (quoted, c) {
                (true, '"') if chars.peek() == Some(&'"') => {
                    chars.next();
                    cell.push('"');
                }
                (true, '"') => quoted = false,
                (true, c) => cell.push(c),
                (false, '"') => quoted = true,
                (false, ',') => row.push(std::mem::take(&mut cell)),
                (false, '\r') if chars.peek() == Some(&'\n') => {}
                (false, '\n') => {
                    row.push(std::mem::take(&mut cell));
                    rows.push(std::mem::take(&mut row));
                }
                (false, c) => cell.push(c),
            }
        }
        rows
    }

    proptest::proptest! {
        /// Any cells, with commas, quotes, CR and LF, read back as written.
        #[test]
        fn csv_rows_read_back_as_written(cells in proptest::collection::vec("[a-z,\"\r\n ]{0,12}", 1..6)) {
            let mut out = String::new();
            csv_row(&mut out, &cells);
            csv_row(&mut out, &cells);
            proptest::prop_assert_eq!(read_csv(&out), vec![cells.clone(), cells]);
        }
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let mut out = String::new();
        csv_row(
            &mut out,
            &[
                "plain".into(),
                "a,b".into(),
                "say \"hi\"".into(),
                "two\nlines".into(),
            ],
        );
        assert_eq!(out, "plain,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\"\r\n");
    }
}
