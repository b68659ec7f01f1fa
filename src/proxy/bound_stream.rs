//! Streamed answers of bound routes (`fields.stream = true`): the upstream's
//! body is decoded and filtered chunk by chunk ([`StreamFilter`]) and sent on
//! as it comes, in bounded memory and with no size limit.
//!
//! The status is held back until [`COMMIT_BYTES`] of filtered output are
//! ready or the body has ended: until then a body that cannot be filtered is
//! still answered `502` (as on buffered routes), and a small answer goes out
//! with its `content-length`. After that the answer is chunked (HTTP/1.1),
//! and a body that breaks (bad JSON, a duplicate key, a bad encoding, the
//! upstream going away) aborts the downstream connection without the
//! terminating chunk (HTTP/2: `RST_STREAM`), so that no client can take the
//! cut-off body for a whole one. Each abort is counted in
//! `sentinel_field_stream_aborts_total{route, reason}`.

use super::bound::{
    client_header, release, BoundFailure, Decoder, Framing, Unfilterable, UpstreamSession,
};
use super::{Author, Ctx, Gateway};
use crate::config::Upstream;
use crate::errors::{Denial, ErrorCode};
use crate::fields::{FieldPlan, StreamFilter};
use crate::routes::Route;
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::proxy::Session;

/// Filtered output held before the status is sent.
pub const COMMIT_BYTES: usize = 64 * 1024;

/// What ended a streamed answer early.
enum Broken {
    Filter(Unfilterable),
    /// Reading the upstream's body failed.
    Upstream(Box<Error>),
}

impl Broken {
    fn reason(&self) -> &'static str {
        match self {
            Broken::Filter(u) => u.reason(),
            Broken::Upstream(_) => "upstream",
        }
    }
}

/// The filter over the upstream's body: one chunk in, its output out.
struct Pipe<'p> {
    decoder: Decoder,
    filter: StreamFilter<'p>,
    ended: bool,
}

impl Pipe<'_> {
    /// Reads, decodes and filters the next chunk into `out`; at the body's
    /// end, finishes the filter and sets `ended`.
    async fn next(&mut self, up: &mut UpstreamSession, out: &mut Vec<u8>) -> Result<(), Broken> {
        let filter_err = |e| Broken::Filter(Unfilterable::Filter(e));
        match up.read_response_body().await {
            Ok(Some(chunk)) => {
                let decoded = self.decoder.decode(chunk, false).map_err(Broken::Filter)?;
                self.filter.push(&decoded, out).map_err(filter_err)
            }
            Ok(None) => {
                let rest = self
                    .decoder
                    .decode(Bytes::new(), true)
                    .map_err(Broken::Filter)?;
                self.filter.push(&rest, out).map_err(filter_err)?;
                self.filter.finish(out).map_err(filter_err)?;
                self.ended = true;
                Ok(())
            }
            Err(e) => Err(Broken::Upstream(e)),
        }
    }
}

impl Gateway {
    /// Answers a bound route whose upstream answered `header` with a JSON
    /// body, streaming the filtered body (see the module docs).
    pub(super) async fn streamed_answer(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        route: &Route,
        plan: &FieldPlan,
        (mut up, mut header): (UpstreamSession, ResponseHeader),
        (peer, upstream): (&HttpPeer, &Upstream),
    ) -> Result<(), BoundFailure> {
        let internal = || Denial::new(ErrorCode::InternalError);
        let fb = route.fields.as_ref().ok_or_else(internal)?;
        let decoder = Decoder::for_header(&header, usize::MAX)
            .map_err(|u| self.unfilterable(ctx, route, u))?;
        let mut pipe = Pipe {
            decoder,
            filter: StreamFilter::new(&fb.binding, plan),
            ended: false,
        };
        let started = ctx.phase_start();

        // 1. Until the status is sent, a failure is a 502.
        let mut out = Vec::new();
        while !pipe.ended && out.len() < COMMIT_BYTES {
            if let Err(b) = pipe.next(&mut up, &mut out).await {
                up.shutdown().await;
                let denial = match b {
                    Broken::Filter(u) => self.unfilterable(ctx, route, u),
                    Broken::Upstream(e) => self.upstream_failure(route, &e),
                };
                ctx.phase_end("field_filter", started, Some(&denial));
                return Err(denial.into());
            }
        }
        let framing = if pipe.ended {
            Framing::Length(out.len())
        } else if session.req_header().version == http::Version::HTTP_11 {
            Framing::Chunked
        } else {
            Framing::Open
        };
        if let Err(u) = client_header(&mut header, framing) {
            up.shutdown().await;
            return Err(self.unfilterable(ctx, route, u).into());
        }
        self.finish_response(session.req_header(), &mut header, ctx, Author::Upstream)
            .map_err(|_| internal())?;
        let ended = pipe.ended;
        let wrote = session
            .write_response_header(Box::new(header), out.is_empty() && ended)
            .await
            .is_ok()
            && (out.is_empty()
                || session
                    .write_response_body(Some(Bytes::from(std::mem::take(&mut out))), ended)
                    .await
                    .is_ok());
        if !wrote {
            // The client went away.
            release(up, peer, upstream).await;
            return Ok(());
        }

        // 2. Streaming: a failure from here on aborts the connection.
        while !pipe.ended {
            if let Err(b) = pipe.next(&mut up, &mut out).await {
                up.shutdown().await;
                ctx.phase_end("field_filter", started, None);
                return Err(self.abort(session, ctx, route, b).await);
            }
            if out.is_empty() && !pipe.ended {
                continue;
            }
            let chunk = Bytes::from(std::mem::take(&mut out));
            let sent = if chunk.is_empty() {
                session.write_response_body(None, true).await
            } else {
                session.write_response_body(Some(chunk), pipe.ended).await
            };
            if sent.is_err() {
                // The client went away.
                up.shutdown().await;
                return Ok(());
            }
        }
        ctx.phase_end("field_filter", started, None);
        release(up, peer, upstream).await;
        Ok(())
    }

    /// Counts and logs a streamed answer that broke after its status was
    /// sent, and shuts the downstream connection (or HTTP/2 stream) down.
    async fn abort(
        &self,
        session: &mut Session,
        ctx: &Ctx,
        route: &Route,
        b: Broken,
    ) -> BoundFailure {
        let reason = b.reason();
        if let Some(m) = crate::metrics::get() {
            m.field_stream_aborts
                .with_label_values(&[&*route.id, reason])
                .inc();
        }
        match &b {
            Broken::Filter(Unfilterable::Filter(e)) => {
                tracing::warn!(request_id = ctx.request_id(), route = %route.id, reason, error = %e, "streamed answer on a bound route broke after its status was sent; aborting the connection")
            }
            Broken::Upstream(e) => {
                tracing::warn!(request_id = ctx.request_id(), route = %route.id, reason, error = %e, "streamed answer on a bound route broke after its status was sent; aborting the connection")
            }
            Broken::Filter(_) => {
                tracing::warn!(request_id = ctx.request_id(), route = %route.id, reason, "streamed answer on a bound route broke after its status was sent; aborting the connection")
            }
        }
        session.downstream_session.shutdown().await;
        BoundFailure::Aborted
    }
}
