//! Row helpers shared by every area: one page of a tenant's list, one row
//! by id, and deleting one row or link of the tenant acted on (404 when
//! there is none). The `GET /{id}` and plain `DELETE /{id}` handlers of
//! every area are [`fetch`] and [`remove`] over the area's [`TenantRow`].

use crate::auth::Caller;
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::extract::Path;
use crate::pagination::{ListResponse, Page, SortKey, Sortable};
use crate::scopes::Level;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

/// A row type an area serves by id: the area of its scopes, its table, and
/// how one row of a tenant is read.
pub trait TenantRow:
    for<'r> sqlx::FromRow<'r, PgRow> + serde::Serialize + Send + Unpin + 'static
{
    /// The scope area (`webhook`, `group`, …).
    const AREA: &'static str;
    /// The table in schema `sentinel`.
    const TABLE: &'static str;
    /// `SELECT … WHERE id = $1 AND tenant_id = $2 …`: one row of a tenant.
    fn by_id() -> String;
}

/// `tenant_row!(Type, "area", "table", "SELECT … WHERE id = $1 AND tenant_id = $2")`:
/// the [`TenantRow`] of `Type` (the query is a `format!` string, so it may
/// name the module's `COLS`).
#[macro_export]
macro_rules! tenant_row {
    ($t:ty, $area:literal, $table:literal, $sql:literal) => {
        impl $crate::domain::rows::TenantRow for $t {
            const AREA: &'static str = $area;
            const TABLE: &'static str = $table;
            fn by_id() -> String {
                format!($sql)
            }
        }
    };
}

/// The row `id` of `tenant`, or 404.
pub async fn one<T: TenantRow>(tx: &mut db::Tx, tenant: Uuid, id: Uuid) -> ApiResult<T> {
    sqlx::query_as(&T::by_id())
        .bind(id)
        .bind(tenant)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(ApiError::NotFound)
}

/// `GET /{id}`: the area's read scope, then the row of the target tenant.
pub async fn fetch<T: TenantRow>(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<T>> {
    caller.require(T::AREA, Level::Read)?;
    let mut tx = state.begin(caller.ctx()).await?;
    let row = one::<T>(&mut tx, caller.target, id).await?;
    tx.commit().await?;
    Ok(axum::Json(row))
}

/// `DELETE /{id}` of an area whose rows go without further checks: the
/// area's admin scope, then [`delete_row`].
pub async fn remove<T: TenantRow>(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    caller.require(T::AREA, Level::Admin)?;
    delete_row(&state, &caller, T::TABLE, id).await
}

/// `?limit=&cursor=&sort=` of a list request.
pub type Paging<'a> = (Option<i64>, Option<&'a str>, Option<&'a str>);

/// A list endpoint: the read scope of `area`, the page asked for (sorted by
/// one of `sorts`), then [`list_page`].
pub async fn list<T>(
    (state, caller): (&AppState, &Caller),
    (area, paging): (&str, Paging<'_>),
    sorts: &[SortKey],
    head: String,
    filter: impl FnOnce(&mut QueryBuilder<'static, Postgres>),
) -> ApiResult<axum::Json<ListResponse<T>>>
where
    T: for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin + Sortable,
{
    caller.require(area, Level::Read)?;
    let (limit, cursor, sort) = paging;
    let page = Page::parse(limit, cursor, sort, sorts)?;
    list_page(state, caller, &page, head, filter).await
}

/// One page of the caller's target tenant: `head` is the query up to the
/// tenant (`SELECT … WHERE tenant_id = `), the target is bound after it, then
/// `filter` appends its clauses (each ` AND …`) and the page its tail.
pub async fn list_page<T>(
    state: &AppState,
    caller: &Caller,
    page: &Page,
    head: String,
    filter: impl FnOnce(&mut QueryBuilder<'static, Postgres>),
) -> ApiResult<axum::Json<ListResponse<T>>>
where
    T: for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin + Sortable,
{
    let mut qb = QueryBuilder::new(head);
    qb.push_bind(caller.target);
    filter(&mut qb);
    page.push_tail(&mut qb);
    let mut tx = state.begin(caller.ctx()).await?;
    let rows: Vec<T> = qb.build_query_as().fetch_all(&mut *tx).await?;
    tx.commit().await?;
    Ok(axum::Json(page.finish(rows)))
}

/// Deletes the link `(a, b)` of the target tenant from `sentinel.{table}`
/// (columns `a_col`, `b_col`); `204`, or `404` when there was none.
pub async fn unlink(
    state: &AppState,
    caller: &Caller,
    table: &str,
    (a_col, a): (&str, Uuid),
    (b_col, b): (&str, Uuid),
) -> ApiResult<StatusCode> {
    let mut tx = state.begin(caller.ctx()).await?;
    unlink_in(&mut tx, caller, table, (a_col, a), (b_col, b)).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// [`unlink`] inside a transaction the caller checks before and after.
pub async fn unlink_in(
    tx: &mut db::Tx,
    caller: &Caller,
    table: &str,
    (a_col, a): (&str, Uuid),
    (b_col, b): (&str, Uuid),
) -> ApiResult<()> {
    let n = sqlx::query(&format!(
        "DELETE FROM sentinel.{table} WHERE {a_col} = $1 AND {b_col} = $2 AND tenant_id = $3"
    ))
    .bind(a)
    .bind(b)
    .bind(caller.target)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if n == 0 {
        return Err(ApiError::NotFound);
    }
    Ok(())
}

/// Deletes the row `id` of the target tenant from `sentinel.{table}`;
/// `204`, or `404` when there was none.
pub async fn delete_row(
    state: &AppState,
    caller: &Caller,
    table: &str,
    id: Uuid,
) -> ApiResult<StatusCode> {
    let mut tx = state.begin(caller.ctx()).await?;
    let n = sqlx::query(&format!(
        "DELETE FROM sentinel.{table} WHERE id = $1 AND tenant_id = $2"
    ))
    .bind(id)
    .bind(caller.target)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n == 0 {
        return Err(ApiError::NotFound);
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Whether a row `id` of `sentinel.{table}` is visible in the transaction.
pub async fn exists(tx: &mut db::Tx, table: &str, id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(&format!(
        "SELECT EXISTS (SELECT 1 FROM sentinel.{table} WHERE id = $1)"
    ))
    .bind(id)
    .fetch_one(&mut **tx)
    .await
}
