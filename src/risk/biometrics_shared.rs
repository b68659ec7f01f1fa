//! Live session scores shared by gateways through Redis (`[risk.biometrics]
//! redis_url`), as cluster rate limits are: every accepted telemetry batch
//! writes its credential's session score (`SET key score PX ttl`, before the
//! batch is answered), and a request on a route with a `risk` slot reads it
//! (`GET`), so a credential posting to one gateway is scored on every
//! gateway. Keys are `{prefix}c:{128 bits of SHA-256 of the credential, hex}`
//! (the token itself never leaves the gateway); values are the score, or
//! `-` for "no score yet".
//!
//! One multiplexed, self-reconnecting `ConnectionManager`; each call is
//! bounded by `timeout`. A failed read is an error the caller fails closed
//! on (the route's slot then answers as for an unknown risk); while Redis is
//! down one probe per [`PROBE_INTERVAL`] tries it, the other reads fail at
//! once. A failed write is counted and logged; the score stays local.

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::AsyncCommands;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// While Redis is down, how often one call tries it again.
const PROBE_INTERVAL: Duration = Duration::from_millis(500);

pub struct SharedScores {
    client: redis::Client,
    config: ConnectionManagerConfig,
    /// Made on first use: the manager's driver task needs the serving runtime.
    conn: tokio::sync::OnceCell<ConnectionManager>,
    prefix: String,
    timeout: Duration,
    ttl: Duration,
    epoch: Instant,
    down: AtomicBool,
    /// Milliseconds since `epoch` before which no call tries Redis while it is down.
    next_probe: AtomicU64,
}

/// Redis did not answer (or answered nonsense): the score is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unavailable;

impl SharedScores {
    /// A lazy client: a Redis that is down at startup is a degraded state.
    pub fn new(url: &str, prefix: &str, timeout: Duration, ttl: Duration) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| e.to_string())?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout.max(Duration::from_millis(250))))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(PROBE_INTERVAL);
        Ok(SharedScores {
            client,
            config,
            conn: tokio::sync::OnceCell::new(),
            prefix: prefix.to_owned(),
            timeout,
            ttl,
            epoch: Instant::now(),
            down: AtomicBool::new(false),
            next_probe: AtomicU64::new(0),
        })
    }

    fn key(&self, credential: u128) -> String {
        format!("{}c:{credential:032x}", self.prefix)
    }

    /// The managed connection (made on first use, then reused).
    async fn conn(&self) -> Result<ConnectionManager, Unavailable> {
        self.conn
            .get_or_try_init(|| async {
                ConnectionManager::new_lazy_with_config(self.client.clone(), self.config.clone())
            })
            .await
            .cloned()
            .map_err(|e| {
                self.failed(&e.to_string());
                Unavailable
            })
    }

    /// Whether a call may try Redis now (always while up; one probe per
    /// interval while down).
    fn may_try(&self) -> bool {
        if !self.down.load(Ordering::Relaxed) {
            return true;
        }
        let now = self.epoch.elapsed().as_millis() as u64;
        let next = self.next_probe.load(Ordering::Relaxed);
        now >= next
            && self
                .next_probe
                .compare_exchange(
                    next,
                    now + PROBE_INTERVAL.as_millis() as u64,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    fn outcome<T>(
        &self,
        r: Result<Result<T, redis::RedisError>, tokio::time::error::Elapsed>,
    ) -> Result<T, Unavailable> {
        match r {
            Ok(Ok(v)) => {
                if self.down.swap(false, Ordering::Relaxed) {
                    tracing::info!("biometric session scores shared through redis again");
                }
                Ok(v)
            }
            Ok(Err(e)) => {
                self.failed(&e.to_string());
                Err(Unavailable)
            }
            Err(_) => {
                self.failed("timed out");
                Err(Unavailable)
            }
        }
    }

    fn failed(&self, why: &str) {
        if let Some(m) = crate::metrics::get() {
            m.risk
                .biometric_shared_errors
                .with_label_values(&["redis"])
                .inc();
        }
        if !self.down.swap(true, Ordering::Relaxed) {
            let now = self.epoch.elapsed().as_millis() as u64;
            self.next_probe
                .store(now + PROBE_INTERVAL.as_millis() as u64, Ordering::Relaxed);
            tracing::warn!(error = %why, "redis unreachable: biometric session scores are not shared; routes with a risk slot fail closed");
        }
    }

    /// The credential's shared session score: `Ok(None)` when no gateway
    /// scored it (or its key expired), `Err` when Redis cannot say.
    pub async fn get(&self, credential: u128) -> Result<Option<f32>, Unavailable> {
        if !self.may_try() {
            return Err(Unavailable);
        }
        let mut conn = self.conn().await?;
        let key = self.key(credential);
        let r =
            tokio::time::timeout(self.timeout, conn.get::<_, Option<String>>(key.as_str())).await;
        let v = self.outcome(r)?;
        match v.as_deref() {
            None | Some("-") => Ok(None),
            Some(s) => match s.parse::<f32>() {
                Ok(f) if f.is_finite() => Ok(Some(f.clamp(0.0, 1.0))),
                // Not ours: unknown, not low.
                _ => Err(Unavailable),
            },
        }
    }

    /// Publishes the credential's session score (`None`: no score yet).
    pub async fn set(&self, credential: u128, score: Option<f64>) -> Result<(), Unavailable> {
        if !self.may_try() {
            return Err(Unavailable);
        }
        let mut conn = self.conn().await?;
        let key = self.key(credential);
        let value = score.map_or_else(|| "-".to_owned(), |s| format!("{:.6}", s.clamp(0.0, 1.0)));
        let ttl = self.ttl.as_millis().max(1) as u64;
        let r = tokio::time::timeout(
            self.timeout,
            conn.pset_ex::<_, _, ()>(key.as_str(), value, ttl),
        )
        .await;
        self.outcome(r)
    }
}
