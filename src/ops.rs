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

pub struct Ops {
    pub policy: Arc<PolicyStore>,
    pub jwks: Bytes,
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
            "/readyz" => match self.policy.load() {
                Some(s) => reply(
                    200,
                    "application/json",
                    serde_json::to_vec(&serde_json::json!({
                        "status": "ready",
                        "snapshot_version": s.version(),
                        "snapshot_age_seconds": self.policy.age_secs(),
                    }))
                    .unwrap_or_default(),
                ),
                None => reply(
                    503,
                    "application/json",
                    br#"{"status":"not ready","reason":"no policy snapshot loaded"}"#.to_vec(),
                ),
            },
            "/metrics" => {
                if let (Some(m), Some(age)) = (crate::metrics::get(), self.policy.age_secs()) {
                    m.snapshot_age.set(age);
                }
                reply(200, "text/plain; version=0.0.4", crate::metrics::render())
            }
            "/.well-known/jwks.json" => reply(200, "application/json", self.jwks.to_vec()),
            _ => reply(404, "application/json", br#"{"error":{"code":"ROUTE_NOT_FOUND","message":"not found","details":{}},"request_id":""}"#.to_vec()),
        }
    }
}
