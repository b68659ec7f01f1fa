//! Service-account API keys: `sk_<8 alphanumerics>_<40 alphanumerics>`,
//! stored only as the SHA-256 the gateway checks (`sentinel_policy::apikey`).

use crate::auth;
use crate::db::{self, TenantCtx, Tx};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use chrono::{DateTime, Utc};
use rand::distributions::{Alphanumeric, DistString};
use sentinel_policy::apikey::{hash_api_key, key_prefix};
use subtle::ConstantTimeEq;
use uuid::Uuid;

/// A new key: (key, prefix, sha256).
pub fn new_key() -> (String, String, String) {
    let mut rng = rand::rngs::OsRng;
    let prefix = Alphanumeric.sample_string(&mut rng, 8);
    let secret = Alphanumeric.sample_string(&mut rng, 40);
    let key = format!("sk_{prefix}_{secret}");
    let hash = hash_api_key(&key);
    (key, prefix, hash)
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    api_key_hash: Option<String>,
    api_key_expires_at: Option<DateTime<Utc>>,
}

/// A service-account API key, verified: its owner and an open transaction
/// under the owner's tenant, with the account's status already checked.
/// Shared by the token exchange and the snapshot endpoint.
pub async fn verify(state: &AppState, key: &str) -> ApiResult<(Uuid, Uuid, Tx)> {
    let prefix = key_prefix(key).map_err(|_| ApiError::AuthInvalid)?;
    let owner: Option<(Uuid, Uuid)> =
        sqlx::query_as("SELECT user_id, tenant_id FROM sentinel.api_key_owner($1)")
            .bind(prefix)
            .fetch_optional(&state.pool)
            .await?;
    let Some((user_id, tenant_id)) = owner else {
        return Err(ApiError::AuthInvalid);
    };
    let mut tx = db::begin(&state.pool, TenantCtx::One(tenant_id)).await?;
    let row: Option<KeyRow> = sqlx::query_as(
        "SELECT api_key_hash, api_key_expires_at FROM sentinel.users WHERE id = $1 AND is_service_account",
    )
    .bind(user_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Err(ApiError::AuthInvalid);
    };
    let presented = hash_api_key(key);
    let matches = row
        .api_key_hash
        .as_deref()
        .is_some_and(|h| bool::from(h.as_bytes().ct_eq(presented.as_bytes())));
    if !matches {
        return Err(ApiError::AuthInvalid);
    }
    if row.api_key_expires_at.is_some_and(|e| e <= Utc::now()) {
        return Err(ApiError::TokenExpired);
    }
    auth::principal_status(&mut tx, user_id)
        .await?
        .ok_or(ApiError::AuthInvalid)?
        .check()?;
    Ok((user_id, tenant_id, tx))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_gateway_format() {
        let (key, prefix, hash) = new_key();
        assert_eq!(
            sentinel_policy::apikey::key_prefix(&key),
            Ok(prefix.as_str())
        );
        assert_eq!(hash, hash_api_key(&key));
        assert_eq!(hash.len(), 64);
    }
}
