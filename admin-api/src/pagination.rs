//! Keyset pagination shared by every list endpoint: `limit` (1-200, default
//! 50), an opaque `cursor` from the previous page, and `sort` (`created_at`,
//! `-created_at`, or the list's natural key such as `name`).

use crate::error::{ApiResult, FieldErrors};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

/// A sortable column of a list.
#[derive(Debug, Clone, Copy)]
pub struct SortKey {
    /// The name used in `?sort=`.
    pub param: &'static str,
    /// The SQL column (unqualified).
    pub column: &'static str,
    pub is_time: bool,
}

pub const CREATED_AT: SortKey = SortKey {
    param: "created_at",
    column: "created_at",
    is_time: true,
};

pub const fn text(param: &'static str) -> SortKey {
    SortKey {
        param,
        column: param,
        is_time: false,
    }
}

#[derive(Debug, Clone)]
pub struct Page {
    pub limit: i64,
    pub key: SortKey,
    pub desc: bool,
    after: Option<(String, Uuid)>,
}

/// One page of a list.
#[derive(Debug, Serialize)]
pub struct ListResponse<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
    pub limit: i64,
}

/// Rows that can be listed: they expose their id and the value of a sort column.
pub trait Sortable {
    fn id(&self) -> Uuid;
    fn created_at(&self) -> DateTime<Utc>;
    /// The text value of a non-time sort column.
    fn sort_text(&self, _column: &str) -> String {
        String::new()
    }
}

impl Page {
    pub fn parse(
        limit: Option<i64>,
        cursor: Option<&str>,
        sort: Option<&str>,
        allowed: &[SortKey],
    ) -> ApiResult<Page> {
        let mut errs = FieldErrors::new();
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            errs.add("limit", format!("must be between 1 and {MAX_LIMIT}"));
        }
        let sort = sort.unwrap_or("created_at");
        let (desc, name) = match sort.strip_prefix('-') {
            Some(n) => (true, n),
            None => (false, sort),
        };
        let key = allowed.iter().find(|k| k.param == name).copied();
        if key.is_none() {
            let names: Vec<_> = allowed.iter().map(|k| k.param).collect();
            errs.add(
                "sort",
                format!(
                    "must be one of {} (prefix `-` for descending)",
                    names.join(", ")
                ),
            );
        }
        let after = match cursor.filter(|c| !c.is_empty()) {
            None => None,
            Some(c) => match decode_cursor(c) {
                Some(v) => Some(v),
                None => {
                    errs.add("cursor", "is not a cursor this API returned");
                    None
                }
            },
        };
        errs.into_result()?;
        let key = key.ok_or_else(|| FieldErrors::one("sort", "unknown sort"))?;
        Ok(Page {
            limit,
            key,
            desc,
            after,
        })
    }

    /// Appends ` AND (col, id) > (…)` for the cursor, then `ORDER BY … LIMIT n+1`.
    /// The builder must end inside a `WHERE` clause.
    pub fn push_tail(&self, qb: &mut QueryBuilder<'_, Postgres>) {
        let col = self.key.column;
        let cmp = if self.desc { "<" } else { ">" };
        if let Some((v, id)) = &self.after {
            qb.push(format_args!(" AND ({col}, id) {cmp} ("));
            qb.push_bind(v.clone());
            if self.key.is_time {
                qb.push("::timestamptz");
            }
            qb.push(", ");
            qb.push_bind(*id);
            qb.push(")");
        }
        let dir = if self.desc { "DESC" } else { "ASC" };
        qb.push(format_args!(" ORDER BY {col} {dir}, id {dir} LIMIT "));
        qb.push_bind(self.limit + 1);
    }

    pub fn finish<T: Sortable>(&self, mut rows: Vec<T>) -> ListResponse<T> {
        let more = rows.len() as i64 > self.limit;
        rows.truncate(self.limit as usize);
        let next_cursor = if more {
            rows.last().map(|r| {
                let v = if self.key.is_time {
                    r.created_at().to_rfc3339_opts(SecondsFormat::Micros, true)
                } else {
                    r.sort_text(self.key.column)
                };
                encode_cursor(&v, r.id())
            })
        } else {
            None
        };
        ListResponse {
            items: rows,
            next_cursor,
            limit: self.limit,
        }
    }
}

fn encode_cursor(v: &str, id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(format!("{id}|{v}"))
}

fn decode_cursor(c: &str) -> Option<(String, Uuid)> {
    let raw = URL_SAFE_NO_PAD.decode(c).ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (id, v) = s.split_once('|')?;
    Some((v.to_owned(), Uuid::parse_str(id).ok()?))
}

/// Appends `AND <col> = $n` when the filter is present.
pub fn filter_eq<'a, T>(qb: &mut QueryBuilder<'a, Postgres>, column: &str, value: Option<T>)
where
    T: 'a + sqlx::Encode<'a, Postgres> + sqlx::Type<Postgres> + Send,
{
    if let Some(v) = value {
        qb.push(format_args!(" AND {column} = "));
        qb.push_bind(v);
    }
}

/// Appends a case-insensitive substring filter.
pub fn filter_contains<'a>(
    qb: &mut QueryBuilder<'a, Postgres>,
    column: &str,
    value: Option<String>,
) {
    if let Some(v) = value.filter(|v| !v.is_empty()) {
        let escaped = v
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        qb.push(format_args!(" AND {column} ILIKE "));
        qb.push_bind(format!("%{escaped}%"));
    }
}

/// Implements [`Sortable`] for a row type with `id` and `created_at` fields and
/// the given text sort columns.
#[macro_export]
macro_rules! sortable {
    ($t:ty $(, $col:literal => $field:ident)*) => {
        impl $crate::pagination::Sortable for $t {
            fn id(&self) -> uuid::Uuid {
                self.id
            }
            fn created_at(&self) -> chrono::DateTime<chrono::Utc> {
                self.created_at
            }
            #[allow(unused_variables)]
            fn sort_text(&self, column: &str) -> String {
                match column {
                    $($col => self.$field.to_string(),)*
                    _ => String::new(),
                }
            }
        }
    };
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn cursor_roundtrip() {
        let id = Uuid::new_v4();
        let c = encode_cursor("2026-01-01T00:00:00.000001Z", id);
        assert_eq!(
            decode_cursor(&c),
            Some(("2026-01-01T00:00:00.000001Z".to_owned(), id))
        );
        assert_eq!(decode_cursor("not-a-cursor"), None);
    }

    #[test]
    fn parse_validates() {
        let keys = [CREATED_AT, text("name")];
        assert!(Page::parse(Some(0), None, None, &keys).is_err());
        assert!(Page::parse(Some(10), None, Some("bogus"), &keys).is_err());
        assert!(Page::parse(Some(10), Some("%%%"), None, &keys).is_err());
        let p = Page::parse(None, None, Some("-name"), &keys).unwrap();
        assert!(p.desc);
        assert_eq!(p.key.column, "name");
    }
}
