//! Row helpers shared by every area: one page of a tenant's list, and
//! deleting one row or link of the tenant acted on (404 when there is none).

use crate::auth::Caller;
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::pagination::{ListResponse, Page, Sortable};
use crate::state::AppState;
use axum::http::StatusCode;
use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

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
    let mut tx = db::begin(&state.pool, caller.ctx()).await?;
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
    let mut tx = db::begin(&state.pool, caller.ctx()).await?;
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
    let mut tx = db::begin(&state.pool, caller.ctx()).await?;
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
