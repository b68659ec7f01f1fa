//! The gateway's own endpoints under `/.sentinel/` on the proxy listener
//! (SPEC "Behavioural telemetry"): `GET /.sentinel/telemetry.js` (the
//! collector, public, cacheable), `GET /.sentinel/telemetry/key` (the
//! caller's key-id secret), `POST /.sentinel/biometrics` (a batch,
//! answered with the session's status) and, with `[risk.biometrics]
//! demo_page` (`sentinel demo`), `GET /.sentinel/telemetry/demo`, a page
//! that runs the collector. Pingora glue only: the state and
//! the rules are `crate::risk::biometrics`.

use super::{Admission, Author, Ctx, Gateway};
use crate::auth;
use crate::clock::{now_ms, unix_now};
use crate::errors::{Denial, ErrorCode};
use crate::headers;
use crate::request::Credential;
use crate::risk::biometrics::BiometricStore;
use crate::risk::{TELEMETRY_DEMO_HTML, TELEMETRY_JS};
use bytes::Bytes;
use http::HeaderValue;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::ErrorType;

/// The collector's `ETag`: its length and a hash of it, fixed per build.
fn etag() -> &'static str {
    static TAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TAG.get_or_init(|| {
        use sha2::{Digest, Sha256};
        let d = Sha256::digest(TELEMETRY_JS.as_bytes());
        let hex: String = d[..8].iter().map(|b| format!("{b:02x}")).collect();
        format!("\"{hex}\"")
    })
}

impl Gateway {
    /// Serves `path` if it is one of the gateway's own endpoints; `None` for
    /// every other path (which goes on to the route table).
    pub(super) async fn own_endpoint(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        path: &str,
    ) -> Option<Result<Admission, Denial>> {
        if !path.starts_with("/.sentinel/") {
            return None;
        }
        let store = self.state.risk.as_ref().and_then(|r| r.biometrics.as_ref());
        let method = session.req_header().method.clone();
        let out = match (path, store) {
            (_, None) => Err(Denial::new(ErrorCode::RouteNotFound)),
            ("/.sentinel/telemetry.js", Some(_)) if is_get(&method) => {
                self.write_script(session, ctx).await
            }
            ("/.sentinel/telemetry/key", Some(store)) if is_get(&method) => {
                match self.user(session).await {
                    Ok((user, _)) => {
                        let body = serde_json::json!({"key": store.key_secret(&user)});
                        self.write_json(session, ctx, &body).await
                    }
                    Err(d) => Err(d),
                }
            }
            ("/.sentinel/telemetry/demo", Some(store)) if is_get(&method) && store.demo_page() => {
                self.write_demo_page(session, ctx).await
            }
            ("/.sentinel/biometrics", Some(store)) if method == http::Method::POST => {
                self.biometrics(session, ctx, store).await
            }
            (
                "/.sentinel/telemetry.js" | "/.sentinel/telemetry/key" | "/.sentinel/biometrics",
                _,
            ) => Err(Denial::with_message(
                ErrorCode::RouteNotFound,
                "method not served on this endpoint",
            )),
            _ => Err(Denial::new(ErrorCode::RouteNotFound)),
        };
        Some(out)
    }

    /// `POST /.sentinel/biometrics`: user, body, batch, answer.
    async fn biometrics(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        store: &BiometricStore,
    ) -> Result<Admission, Denial> {
        let req = session.req_header();
        let json = req
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        let declared = req
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<usize>().ok());
        // Who first: an unauthenticated caller learns nothing about bodies.
        let user = self.user(session).await?;
        let credential = match super::admit::read_credential(session.req_header()) {
            Credential::Bearer(t) => t.to_owned(),
            _ => return Err(Denial::new(ErrorCode::AuthInvalid)),
        };
        if !json {
            return Err(Denial::with_message(
                ErrorCode::BadRequest,
                "content-type must be application/json",
            ));
        }
        if declared.is_some_and(|n| n > store.max_body_bytes()) {
            return Err(Denial::new(ErrorCode::BodyTooLarge));
        }
        let body = read_body(session, store.max_body_bytes()).await?;
        let answer = store
            .post(user.0, user.1, &credential, &body, now_ms().max(0) as u64)
            .await?;
        let body =
            serde_json::to_value(&answer).map_err(|_| Denial::new(ErrorCode::InternalError))?;
        self.write_json(session, ctx, &body).await
    }

    /// The caller, who must be a user (service accounts: `403`), by the
    /// same authentication as every route.
    async fn user(&self, session: &Session) -> Result<(uuid::Uuid, uuid::Uuid), Denial> {
        let policy = self
            .state
            .policy
            .load()
            .ok_or_else(|| Denial::new(ErrorCode::PolicyUnavailable))?;
        let credential = super::admit::read_credential(session.req_header());
        let who = auth::authenticate(&self.state.verifier, &policy, credential, unix_now()).await?;
        if who.principal.service_account {
            return Err(Denial::with_message(
                ErrorCode::PermissionDenied,
                "behavioural telemetry is for users only",
            ));
        }
        Ok((who.principal.id, who.principal.tenant))
    }

    async fn write_script(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
    ) -> Result<Admission, Denial> {
        let tag = etag();
        let fresh = session
            .req_header()
            .headers
            .get(http::header::IF_NONE_MATCH)
            .is_some_and(|v| v.as_bytes() == tag.as_bytes());
        let status = if fresh { 304 } else { 200 };
        let body = Bytes::from_static(TELEMETRY_JS.as_bytes());
        let head = [
            (
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/javascript; charset=utf-8"),
            ),
            (
                http::header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
            (
                http::header::ETAG,
                HeaderValue::from_str(tag).unwrap_or(HeaderValue::from_static("\"0\"")),
            ),
        ];
        let body = (!fresh).then_some(body);
        self.write_own(session, ctx, status, &head, body).await
    }

    async fn write_demo_page(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
    ) -> Result<Admission, Denial> {
        let head = [
            (
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (
                http::header::CACHE_CONTROL,
                HeaderValue::from_static("no-store"),
            ),
        ];
        let body = Bytes::from_static(TELEMETRY_DEMO_HTML.as_bytes());
        self.write_own(session, ctx, 200, &head, Some(body)).await
    }

    async fn write_json(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        body: &serde_json::Value,
    ) -> Result<Admission, Denial> {
        let bytes = serde_json::to_vec(body).map_err(|_| Denial::new(ErrorCode::InternalError))?;
        let head = [
            (
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (
                http::header::CACHE_CONTROL,
                HeaderValue::from_static("no-store"),
            ),
        ];
        self.write_own(session, ctx, 200, &head, Some(Bytes::from(bytes)))
            .await
    }

    async fn write_own(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        status: u16,
        head: &[(http::HeaderName, HeaderValue)],
        body: Option<Bytes>,
    ) -> Result<Admission, Denial> {
        let internal = |_| Denial::new(ErrorCode::InternalError);
        let mut header = ResponseHeader::build(status, Some(head.len() + 2)).map_err(internal)?;
        let len = body.as_ref().map_or(0, Bytes::len);
        headers::edit_response(&mut header, head.len() + 1, |h| {
            for (n, v) in head {
                headers::insert(h, n.clone(), v.clone())?;
            }
            if status != 304 {
                headers::insert(h, http::header::CONTENT_LENGTH, HeaderValue::from(len))?;
            }
            Ok(())
        })
        .map_err(internal)?;
        self.finish_response(session.req_header(), &mut header, ctx, Author::Gateway)
            .map_err(internal)?;
        let head_only = session.req_header().method == http::Method::HEAD || body.is_none();
        // The answer is written: a client that went away has nothing left to hear.
        if session
            .write_response_header(Box::new(header), head_only)
            .await
            .is_ok()
            && !head_only
        {
            let _ = session.write_response_body(body, true).await;
        }
        Ok(Admission::Answered)
    }
}

fn is_get(m: &http::Method) -> bool {
    *m == http::Method::GET || *m == http::Method::HEAD
}

/// The whole request body, at most `limit` bytes (`413` beyond).
async fn read_body(session: &mut Session, limit: usize) -> Result<Vec<u8>, Denial> {
    let mut body = Vec::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > limit {
                    return Err(Denial::new(ErrorCode::BodyTooLarge));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => {
                let msg = match e.etype() {
                    ErrorType::ReadTimedout => "timed out reading the request body",
                    _ => "cannot read request body",
                };
                return Err(Denial::with_message(ErrorCode::BadRequest, msg));
            }
        }
    }
}
