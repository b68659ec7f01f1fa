//! The ops listener: `/healthz`, `/readyz`, `/metrics`, `/.well-known/jwks.json`.
//! Separate from the proxy listener so it is never exposed with it.
//!
//! ```text
//! curl -s 127.0.0.1:9090/readyz
//! ```

use crate::policy_store::PolicyStore;
use async_trait::async_trait;
use bytes::Bytes;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use std::sync::Arc;
use std::time::Duration;

pub struct Ops {
    pub policy: Arc<PolicyStore>,
    pub jwks: Bytes,
    /// The admin source's `max_age` (staleness alarm), if any.
    pub max_age: Option<Duration>,
    /// The rate limiter, if `[rate_limits]` is configured: its counters are
    /// read into `/metrics` at each scrape.
    pub limiter: Option<crate::ratelimit::Limiter>,
}

impl Ops {
    /// Seconds since the last successful check, and whether that is past `max_age`.
    fn staleness(&self) -> (Option<i64>, bool) {
        let age = self.policy.check_age_secs();
        let stale = match (age, self.max_age) {
            (Some(a), Some(max)) => a > max.as_secs() as i64,
            _ => false,
        };
        (age, stale)
    }
}

fn reply(status: u16, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::CONTENT_LENGTH, body.len())
        .header(http::header::CACHE_CONTROL, "no-store")
        .body(body)
        .unwrap_or_default()
}

#[async_trait]
impl ServeHttp for Ops {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let path = session.req_header().uri.path();
        match path {
            "/healthz" => reply(200, "application/json", br#"{"status":"ok"}"#.to_vec()),
            "/readyz" => {
                let (check_age, stale) = self.staleness();
                match (self.policy.load(), self.policy.current()) {
                    (Some(s), _) => reply(
                        200,
                        "application/json",
                        serde_json::to_vec(&serde_json::json!({
                            "status": "ready",
                            "snapshot_version": s.version(),
                            "snapshot_age_seconds": self.policy.age_secs(),
                            "snapshot_check_age_seconds": check_age,
                            "snapshot_publication_age_seconds": self.policy.publication_age_secs(),
                            "stale": stale,
                        }))
                        .unwrap_or_default(),
                    ),
                    (None, Some(s)) => reply(
                        503,
                        "application/json",
                        serde_json::to_vec(&serde_json::json!({
                            "status": "not ready",
                            "reason": "policy snapshot is older than `max_age` (on_stale = \"refuse\")",
                            "snapshot_version": s.version(),
                            "snapshot_check_age_seconds": check_age,
                        }))
                        .unwrap_or_default(),
                    ),
                    (None, None) => reply(
                        503,
                        "application/json",
                        br#"{"status":"not ready","reason":"no policy snapshot loaded"}"#.to_vec(),
                    ),
                }
            }
            "/metrics" => {
                if let Some(m) = crate::metrics::get() {
                    if let Some(age) = self.policy.age_secs() {
                        m.snapshot_age.set(age);
                    }
                    let (check_age, stale) = self.staleness();
                    if let Some(age) = check_age {
                        m.snapshot_check_age.set(age);
                    }
                    if let Some(age) = self.policy.publication_age_secs() {
                        m.snapshot_publication_age.set(age);
                    }
                    m.snapshot_stale.set(i64::from(stale));
                }
                if let Some(l) = &self.limiter {
                    crate::metrics::rate_limiter(&l.stats(), l.is_shared());
                }
                reply(200, "text/plain; version=0.0.4", crate::metrics::render())
            }
            "/.well-known/jwks.json" => reply(200, "application/json", self.jwks.to_vec()),
            _ => reply(404, "application/json", br#"{"error":{"code":"ROUTE_NOT_FOUND","message":"not found","details":{}},"request_id":""}"#.to_vec()),
        }
    }
}
