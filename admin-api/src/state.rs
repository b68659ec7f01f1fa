//! Shared state of the running API.

use crate::config::Config;
use crate::keys::KeyStore;
use crate::metrics::Metrics;
use sqlx::PgPool;
use std::ops::Deref;
use std::sync::Arc;

pub struct Inner {
    /// Connected as the API role (`sentinel_api`): subject to row-level security.
    pub pool: PgPool,
    pub config: Config,
    pub keys: KeyStore,
    pub metrics: Metrics,
    /// Latest signed snapshot, the publisher's wake-up, the snapshot JWKS.
    pub live: crate::live::Live,
    /// A hash verified against when the account does not exist, so that a
    /// missing account costs as much time as a wrong password.
    pub dummy_hash: String,
    /// Auth endpoints' rate limit and failed-login backoff.
    pub throttle: crate::throttle::Throttle,
}

#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Builds the state and loads the signing keys (creating one if there is none).
    pub async fn new(pool: PgPool, config: Config) -> anyhow::Result<Self> {
        let keys = KeyStore::default();
        let sealed = crate::keys::seal_all(&pool, false).await?;
        if sealed > 0 {
            tracing::info!(
                sealed,
                "sealed private keys stored in clear or under the previous KEK"
            );
        }
        crate::keys::ensure_key(&pool).await?;
        keys.reload(&pool).await?;
        crate::snapshot_keys::ensure_key(&pool).await?;
        let live = crate::live::Live::default();
        live.reload_jwks(&pool).await?;
        let dummy_hash = crate::password::hash_async(&config, "dummy-Passw0rd".to_owned()).await?;
        Ok(AppState(Arc::new(Inner {
            pool,
            keys,
            metrics: Metrics::new()?,
            live,
            dummy_hash,
            throttle: crate::throttle::Throttle::new(&config),
            config,
        })))
    }
}
