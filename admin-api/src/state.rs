//! Shared state of the running API.

use crate::config::Config;
use crate::db::{self, TenantCtx, Tx};
use crate::keys::KeyStore;
use crate::metrics::Metrics;
use sqlx::PgPool;
use std::ops::Deref;
use std::sync::Arc;

pub struct Inner {
    /// Connected as the API role (`sentinel_api`): subject to row-level
    /// security, never believed when it asks to see every tenant.
    pub pool: PgPool,
    /// Connected as the platform role (`sentinel_platform`, migration 0013):
    /// platform-wide transactions, the snapshot store and publisher, the
    /// signing keys. Only [`Inner::begin`] and the platform tasks use it.
    pub platform: PgPool,
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

impl Inner {
    /// The pool a transaction of `ctx` runs on: the platform role's for
    /// [`TenantCtx::All`], the API role's otherwise.
    pub fn pool_for(&self, ctx: TenantCtx) -> &PgPool {
        match ctx {
            TenantCtx::All => &self.platform,
            TenantCtx::One(_) => &self.pool,
        }
    }

    /// [`db::begin`] on the pool of `ctx`.
    pub async fn begin(&self, ctx: TenantCtx) -> Result<Tx, sqlx::Error> {
        db::begin(self.pool_for(ctx), ctx).await
    }
}

impl AppState {
    /// Builds the state and loads the signing keys (creating one if there
    /// is none). `pool` is the API role's, `platform` the platform role's.
    pub async fn new(pool: PgPool, platform: PgPool, config: Config) -> anyhow::Result<Self> {
        let keys = KeyStore::default();
        let sealed = crate::keys::seal_all(&platform, false).await?;
        if sealed > 0 {
            tracing::info!(
                sealed,
                "sealed private keys stored in clear or under the previous KEK"
            );
        }
        crate::keys::ensure_key(&platform).await?;
        keys.reload(&platform).await?;
        crate::snapshot_keys::ensure_key(&platform).await?;
        let live = crate::live::Live::default();
        live.reload_jwks(&platform).await?;
        let dummy_hash = crate::password::hash_async(&config, "dummy-Passw0rd".to_owned()).await?;
        Ok(AppState(Arc::new(Inner {
            pool,
            platform,
            keys,
            metrics: Metrics::new()?,
            live,
            dummy_hash,
            throttle: crate::throttle::Throttle::new(&config),
            config,
        })))
    }
}
