//! `sentinel.ai_decision_logs`: what an AI feature produced and from which
//! inputs, one row per answer, in the caller's transaction.

use crate::db::Tx;
use serde_json::Value;
use uuid::Uuid;

/// Appends one row (the table is append-only for the API role).
pub async fn decision_log(
    tx: &mut Tx,
    tenant: Uuid,
    feature: &str,
    actor: Uuid,
    inputs: Value,
    output: Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO sentinel.ai_decision_logs (tenant_id, feature, actor_id, inputs, output)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(tenant)
    .bind(feature)
    .bind(actor)
    .bind(inputs)
    .bind(output)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
