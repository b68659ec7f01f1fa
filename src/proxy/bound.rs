//! The buffered exchange of routes with a field-security binding. Pingora
//! writes the response header downstream before any body filter runs, so a
//! body that turns out to be unfilterable could only be cut off after a
//! `200`. These routes are therefore answered by `request_filter` itself
//! ([`Gateway::bound_exchange`]): it reads and checks the request body, talks
//! to the upstream through Pingora's own connector (same peers and timeouts,
//! the pool's retry policy), buffers, decodes and filters the answer, and
//! only then writes the header: a `502` is always possible until the
//! filtered body is known.

use super::identity;
use super::{Author, Ctx, Gateway};
use crate::config::Upstream;
use crate::errors::{self, Denial, ErrorCode};
use crate::fields::{FieldPlan, WriteDenied};
use crate::headers;
use crate::routes::Route;
use bytes::Bytes;
use http::HeaderValue;
use pingora::connectors::http::Connector;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
pub(super) use pingora::protocols::http::client::HttpSession as UpstreamSession;
use pingora::protocols::http::compression::Algorithm;
use pingora::proxy::Session;
use std::sync::LazyLock;

/// Pingora's HTTP client, shared by every bound-route exchange (it keeps the
/// connection pools).
static CONNECTOR: LazyLock<Connector> = LazyLock::new(|| Connector::new(None));

/// Why a bound route's upstream answer was refused (the metric label and the
/// `details.reason` of the 502).
#[derive(Debug)]
pub(super) enum Unfilterable {
    NotJson,
    TooLarge,
    UnsupportedEncoding,
    BadEncoding,
    /// The answer's header cannot be rewritten (too many headers).
    BadHeader,
    Filter(crate::fields::FilterError),
}

impl Unfilterable {
    pub(super) fn reason(&self) -> &'static str {
        match self {
            Unfilterable::NotJson => "not_json",
            Unfilterable::TooLarge => "too_large",
            Unfilterable::UnsupportedEncoding => "unsupported_encoding",
            Unfilterable::BadEncoding => "bad_encoding",
            Unfilterable::BadHeader => "bad_header",
            Unfilterable::Filter(e) => e.reason(),
        }
    }
}

/// Why the exchange with the upstream failed.
enum ExchangeError {
    /// Connecting failed: the address is marked down and another may be tried.
    Connect(Box<Error>),
    /// The exchange failed on a reused connection before an answer arrived:
    /// the upstream had closed it; retry once on a fresh one.
    Stale(Box<Error>),
    Failed(Box<Error>),
    Unfilterable(Unfilterable),
}

/// The upstream's answer, buffered and decoded.
struct Answer {
    header: ResponseHeader,
    body: Vec<u8>,
}

/// How a bound exchange ends when it does not answer normally.
pub(super) enum BoundFailure {
    /// Nothing was sent yet: the denial is the answer.
    Denied(Denial),
    /// A streamed answer was cut off after its status was sent; the
    /// downstream connection is shut down (see `bound_stream.rs`).
    Aborted,
}

impl From<Denial> for BoundFailure {
    fn from(d: Denial) -> BoundFailure {
        BoundFailure::Denied(d)
    }
}

pub(super) fn is_json(header: &ResponseHeader) -> bool {
    let Some(ct) = header
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mime = ct.split(';').next().unwrap_or("").trim();
    let Some((kind, sub)) = mime.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (sub.eq_ignore_ascii_case("json")
            || sub.len() > 5 && sub[sub.len() - 5..].eq_ignore_ascii_case("+json"))
}

/// A bound route's request body after the write check: what to forward.
fn checked_write(body: Vec<u8>, route: &Route, plan: &FieldPlan) -> Result<Vec<u8>, Denial> {
    let Some(fb) = &route.fields else {
        return Ok(body);
    };
    let malformed = |e: crate::fields::FilterError| {
        Denial::with_message(ErrorCode::BadRequest, format!("request body: {e}"))
            .details(serde_json::json!({ "reason": e.reason() }))
    };
    let check = crate::fields::check_write(&body, &fb.binding, plan).map_err(malformed)?;
    if check.is_allowed() {
        return Ok(body);
    }
    let outcome = match fb.on_write_denied {
        WriteDenied::Reject => "denied",
        WriteDenied::Drop => "dropped",
    };
    if let Some(m) = crate::metrics::get() {
        m.field_writes
            .with_label_values(&[&*route.id, outcome])
            .inc();
    }
    match fb.on_write_denied {
        WriteDenied::Reject => Err(Denial::new(ErrorCode::FieldWriteDenied)
            .details(serde_json::json!({ "fields": check.denied }))),
        WriteDenied::Drop => {
            let mut out = Vec::with_capacity(body.len());
            crate::fields::strip_unwritable(&body, &fb.binding, plan, &mut out)
                .map_err(malformed)?;
            Ok(out)
        }
    }
}

/// Filters a buffered answer and builds the header the client gets.
fn filtered_answer(
    answer: Answer,
    route: &Route,
    plan: &FieldPlan,
    head: bool,
) -> Result<(ResponseHeader, Bytes), Unfilterable> {
    let Answer { mut header, body } = answer;
    let status = header.status.as_u16();
    if head || status == 204 || status == 304 {
        // No body: nothing to filter, and the upstream's length would be the
        // unfiltered one.
        headers::edit_response(&mut header, 0, |h| {
            headers::remove_hop_by_hop(h);
            h.remove(http::header::CONTENT_ENCODING);
            h.remove(http::header::CONTENT_LENGTH);
            h.remove(http::header::ETAG);
            Ok(())
        })
        .map_err(|_| Unfilterable::BadHeader)?;
        return Ok((header, Bytes::new()));
    }
    let out = if body.is_empty() {
        Vec::new()
    } else {
        if !is_json(&header) {
            return Err(Unfilterable::NotJson);
        }
        let Some(fb) = &route.fields else {
            return Err(Unfilterable::NotJson);
        };
        let mut out = Vec::with_capacity(body.len());
        crate::fields::filter_response(&body, &fb.binding, plan, &mut out)
            .map_err(Unfilterable::Filter)?;
        out
    };
    client_header(&mut header, Framing::Length(out.len()))?;
    Ok((header, Bytes::from(out)))
}

/// How the filtered body is framed for the client.
pub(super) enum Framing {
    Length(usize),
    /// `transfer-encoding: chunked` (HTTP/1.1 clients): a cut-off body is
    /// recognisable as one.
    Chunked,
    /// Framed by the protocol (HTTP/2) or by closing the connection (HTTP/1.0).
    Open,
}

/// The header of a filtered answer: the upstream's, without what described
/// the unfiltered body or would let shared caches keep a per-caller view.
pub(super) fn client_header(
    header: &mut ResponseHeader,
    framing: Framing,
) -> Result<(), Unfilterable> {
    headers::edit_response(header, 2, |h| {
        headers::remove_hop_by_hop(h);
        h.remove(http::header::CONTENT_ENCODING);
        h.remove(http::header::CONTENT_LENGTH);
        // The body now depends on the caller: its validator must not be shared
        // with other callers' views, nor may shared caches keep it.
        h.remove(http::header::ETAG);
        let cacheable_shared = h
            .get(http::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| {
                let v = v.to_ascii_lowercase();
                !v.contains("no-store") && !v.contains("private")
            });
        if cacheable_shared {
            headers::insert(
                h,
                http::header::CACHE_CONTROL,
                HeaderValue::from_static("private"),
            )?;
        }
        match framing {
            Framing::Length(n) => {
                headers::insert(h, http::header::CONTENT_LENGTH, HeaderValue::from(n))
            }
            Framing::Chunked => headers::insert(
                h,
                http::header::TRANSFER_ENCODING,
                HeaderValue::from_static("chunked"),
            ),
            Framing::Open => Ok(()),
        }
    })
    .map_err(|_| Unfilterable::BadHeader)
}

/// Decodes `content-encoding` (identity, gzip, br) into at most `limit` bytes.
pub(super) struct Decoder {
    inner: Option<Box<dyn pingora::protocols::http::compression::Encode + Send + Sync>>,
    out: Vec<u8>,
    limit: usize,
}

impl Decoder {
    pub(super) fn for_header(
        header: &ResponseHeader,
        limit: usize,
    ) -> Result<Decoder, Unfilterable> {
        let coding = header
            .headers
            .get(http::header::CONTENT_ENCODING)
            .map(|v| v.to_str().map(str::trim));
        let inner = match coding {
            None => None,
            Some(Ok(c)) if c.is_empty() || c.eq_ignore_ascii_case("identity") => None,
            Some(Ok(c)) if c.eq_ignore_ascii_case("x-gzip") => Algorithm::Gzip.decompressor(true),
            Some(Ok(c)) => match Algorithm::from(c) {
                a @ (Algorithm::Gzip | Algorithm::Brotli) => a.decompressor(true),
                _ => return Err(Unfilterable::UnsupportedEncoding),
            },
            Some(Err(_)) => return Err(Unfilterable::UnsupportedEncoding),
        };
        if header
            .headers
            .get_all(http::header::CONTENT_ENCODING)
            .iter()
            .count()
            > 1
        {
            return Err(Unfilterable::UnsupportedEncoding);
        }
        Ok(Decoder {
            inner,
            out: Vec::new(),
            limit,
        })
    }

    /// Decodes the next chunk without keeping it (streamed answers).
    pub(super) fn decode(&mut self, chunk: Bytes, end: bool) -> Result<Bytes, Unfilterable> {
        match &mut self.inner {
            None => Ok(chunk),
            Some(d) => d.encode(&chunk, end).map_err(|_| Unfilterable::BadEncoding),
        }
    }

    fn push(&mut self, chunk: &[u8], end: bool) -> Result<(), Unfilterable> {
        match &mut self.inner {
            None => {
                if self.out.len() + chunk.len() > self.limit {
                    return Err(Unfilterable::TooLarge);
                }
                self.out.extend_from_slice(chunk);
            }
            Some(d) => {
                let decoded = d
                    .encode(chunk, end)
                    .map_err(|_| Unfilterable::BadEncoding)?;
                if self.out.len() + decoded.len() > self.limit {
                    return Err(Unfilterable::TooLarge);
                }
                self.out.extend_from_slice(&decoded);
            }
        }
        Ok(())
    }
}

impl Gateway {
    /// Serves a request on a bound route end to end (see the module docs):
    /// request body check → upstream exchange → filter → answer. Every
    /// failure is a denial; nothing of the upstream's body reaches the client
    /// unless it was filtered.
    pub(super) async fn bound_exchange(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
    ) -> Result<(), BoundFailure> {
        let internal = || Denial::new(ErrorCode::InternalError);
        let route = ctx.route.clone().ok_or_else(internal)?;
        let fb = route.fields.as_ref().ok_or_else(internal)?;
        let plan = ctx.fields.take().ok_or_else(internal)?;

        // 1. The whole request body, checked before any byte goes upstream.
        let body = self.read_request_body(session).await?;
        let method = session.req_header().method.clone();
        let body = if matches!(
            method,
            http::Method::POST | http::Method::PUT | http::Method::PATCH
        ) {
            if session
                .req_header()
                .headers
                .get(http::header::CONTENT_ENCODING)
                .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"))
            {
                return Err(Denial::with_message(
                    ErrorCode::BadRequest,
                    "encoded request bodies are not accepted on this route",
                )
                .into());
            }
            checked_write(body, &route, &plan)?
        } else {
            body
        };
        let body = Bytes::from(body);

        // 2. The upstream request.
        let mut req = session.req_header().clone();
        req.set_version(http::Version::HTTP_11);
        let content_length = (!body.is_empty()
            || !matches!(method, http::Method::GET | http::Method::HEAD))
        .then(|| HeaderValue::from(body.len()));
        let pool = self.state.pools.get(route.upstream).ok_or_else(internal)?;
        if let Some(t) = ctx.trace.as_mut() {
            t.upstream_start(&pool.upstream.name);
        }
        headers::edit_request(&mut req, identity::room(ctx) + 2, |h| {
            headers::remove_hop_by_hop(h);
            identity::apply(h, ctx)?;
            // Identity is what the filter reads; gzip and br are decoded if sent anyway.
            headers::insert(
                h,
                http::header::ACCEPT_ENCODING,
                HeaderValue::from_static("identity"),
            )?;
            match content_length {
                Some(len) => headers::insert(h, http::header::CONTENT_LENGTH, len)?,
                None => {
                    h.remove(http::header::CONTENT_LENGTH);
                }
            }
            Ok(())
        })
        .map_err(|_| internal())?;
        let limit = fb
            .max_response_bytes
            .unwrap_or(self.state.limits.max_body_bytes);

        // 3. The exchange: another address after a refused connection (the
        // pool's retry policy, as for streamed routes), a fresh connection
        // after a stale pooled one.
        let mut stale_retried = false;
        let mut tries = 0;
        let (upstream, header, peer) = loop {
            let (idx, addr) = pool.pick().ok_or_else(internal)?;
            tries += 1;
            let peer = pool.peer(addr);
            match exchange(&peer, &pool.upstream, &req, &body).await {
                Ok((s, h)) => break (s, h, peer),
                Err(ExchangeError::Connect(e)) => {
                    if pool.connect_failed(idx, tries) {
                        continue;
                    }
                    return Err(self.upstream_failure(&route, &e).into());
                }
                Err(ExchangeError::Stale(e)) => {
                    if !stale_retried {
                        stale_retried = true;
                        continue;
                    }
                    return Err(self.upstream_failure(&route, &e).into());
                }
                Err(ExchangeError::Failed(e)) => {
                    return Err(self.upstream_failure(&route, &e).into())
                }
                Err(ExchangeError::Unfilterable(u)) => {
                    return Err(self.unfilterable(ctx, &route, u).into())
                }
            }
        };

        if let Some(t) = ctx.trace.as_mut() {
            t.upstream_end(Some(header.status.as_u16()));
        }
        let head = method == http::Method::HEAD;
        let status = header.status.as_u16();
        if fb.stream && !head && status != 204 && status != 304 && is_json(&header) {
            return Box::pin(self.streamed_answer(
                session,
                ctx,
                &route,
                &plan,
                (upstream, header),
                (&peer, &pool.upstream),
            ))
            .await;
        }
        let answer = match read_buffered(upstream, header, &peer, &pool.upstream, limit).await {
            Ok(a) => a,
            Err(ExchangeError::Unfilterable(u)) => {
                return Err(self.unfilterable(ctx, &route, u).into())
            }
            Err(ExchangeError::Connect(e) | ExchangeError::Stale(e) | ExchangeError::Failed(e)) => {
                return Err(self.upstream_failure(&route, &e).into())
            }
        };

        // 4. Filter, then answer.
        let started = ctx.phase_start();
        let filtered = filtered_answer(answer, &route, &plan, head);
        let (mut header, out) = match filtered {
            Ok(x) => {
                ctx.phase_end("field_filter", started, None);
                x
            }
            Err(u) => {
                let denial = self.unfilterable(ctx, &route, u);
                ctx.phase_end("field_filter", started, Some(&denial));
                return Err(denial.into());
            }
        };
        self.finish_response(session.req_header(), &mut header, ctx, Author::Upstream)
            .map_err(|_| internal())?;
        let empty = out.is_empty();
        // Errors from here on are the client's connection going away.
        if session
            .write_response_header(Box::new(header), empty)
            .await
            .is_ok()
            && !empty
        {
            let _ = session.write_response_body(Some(out), true).await;
        }
        Ok(())
    }

    /// Reads the whole request body, at most `limits.max_body_bytes`.
    async fn read_request_body(&self, session: &mut Session) -> Result<Vec<u8>, Denial> {
        let limit = self.state.limits.max_body_bytes;
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
                    return Err(match e.etype() {
                        ErrorType::ReadTimedout => Denial::new(ErrorCode::BadRequest),
                        _ => {
                            Denial::with_message(ErrorCode::BadRequest, "cannot read request body")
                        }
                    })
                }
            }
        }
    }

    pub(super) fn upstream_failure(&self, route: &Route, e: &Error) -> Denial {
        let code = errors::upstream_code(e);
        self.count_upstream_error(route, code);
        Denial::new(code)
    }

    /// Counts, logs (once, without body bytes) and answers an unfilterable upstream answer.
    pub(super) fn unfilterable(&self, ctx: &Ctx, route: &Route, u: Unfilterable) -> Denial {
        let reason = u.reason();
        if let Some(m) = crate::metrics::get() {
            m.field_filter_failures
                .with_label_values(&[&*route.id, reason])
                .inc();
        }
        match &u {
            Unfilterable::Filter(e) => {
                tracing::warn!(request_id = ctx.request_id(), route = %route.id, reason, error = %e, "upstream answer on a bound route cannot be filtered; answering 502")
            }
            _ => {
                tracing::warn!(request_id = ctx.request_id(), route = %route.id, reason, "upstream answer on a bound route cannot be filtered; answering 502")
            }
        }
        Denial::with_message(
            ErrorCode::UpstreamUnavailable,
            "the upstream answer cannot be filtered",
        )
        .details(serde_json::json!({ "reason": reason }))
    }
}

/// Sends the request to one upstream address through the shared connector
/// and reads the answer's header; the body is left to read.
async fn exchange(
    peer: &HttpPeer,
    up: &Upstream,
    req: &RequestHeader,
    body: &Bytes,
) -> Result<(UpstreamSession, ResponseHeader), ExchangeError> {
    let (mut s, reused) = CONNECTOR
        .get_http_session(peer)
        .await
        .map_err(ExchangeError::Connect)?;
    s.set_read_timeout(Some(up.read_timeout));
    s.set_write_timeout(Some(up.write_timeout));
    let early = |e: Box<Error>| {
        if reused
            && !matches!(
                e.etype(),
                ErrorType::ReadTimedout | ErrorType::WriteTimedout
            )
        {
            ExchangeError::Stale(e)
        } else {
            ExchangeError::Failed(e)
        }
    };
    s.write_request_header(Box::new(req.clone()))
        .await
        .map_err(early)?;
    if !body.is_empty() {
        s.write_request_body(body.clone(), true)
            .await
            .map_err(early)?;
    }
    s.finish_request_body().await.map_err(early)?;
    loop {
        s.read_response_header().await.map_err(early)?;
        match s.response_header() {
            // 100 Continue and other interim answers: wait for the final one.
            Some(h) if h.status.is_informational() && h.status.as_u16() != 101 => continue,
            _ => break,
        }
    }
    let header = s
        .response_header()
        .cloned()
        .ok_or_else(|| ExchangeError::Failed(Error::new(ErrorType::InvalidHTTPHeader)))?;
    Ok((s, header))
}

/// Reads the answer's body, buffered and decoded (bounded), and gives the
/// connection back to the pool when the exchange completed.
async fn read_buffered(
    mut s: UpstreamSession,
    header: ResponseHeader,
    peer: &HttpPeer,
    up: &Upstream,
    limit: usize,
) -> Result<Answer, ExchangeError> {
    let mut decoder = Decoder::for_header(&header, limit).map_err(ExchangeError::Unfilterable)?;
    loop {
        match s.read_response_body().await {
            Ok(Some(chunk)) => decoder
                .push(&chunk, false)
                .map_err(ExchangeError::Unfilterable)?,
            Ok(None) => break,
            Err(e) => return Err(ExchangeError::Failed(e)),
        }
    }
    decoder
        .push(&[], true)
        .map_err(ExchangeError::Unfilterable)?;
    release(s, peer, up).await;
    Ok(Answer {
        header,
        body: decoder.out,
    })
}

/// Pools the upstream connection if its exchange completed, else closes it.
pub(super) async fn release(mut s: UpstreamSession, peer: &HttpPeer, up: &Upstream) {
    if s.response_done() {
        CONNECTOR
            .release_http_session(s, peer, Some(up.idle_timeout))
            .await;
    } else {
        s.shutdown().await;
    }
}
