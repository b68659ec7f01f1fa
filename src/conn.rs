//! Connection limits Pingora does not have: a total deadline for reading a
//! request head, and a cap on concurrent connections per client address.
//!
//! Pingora times each read of a request head (60 s) but not the whole head,
//! so a client sending one byte every few seconds holds a connection for as
//! long as it likes (slowloris). [`Guarded`] wraps the proxy app: every
//! accepted connection becomes a [`GuardedStream`], whose reads fail with
//! `TimedOut` once a request head has taken longer than
//! `limits.request_header_timeout` (Envoy's `request_headers_timeout`; nginx's
//! `client_header_timeout`). The clock runs from the accept for the first
//! request and from the first byte of each later one on a kept-alive
//! connection; it stops when the proxy has the head (`request_filter` calls
//! [`RequestMark::head_read`]) and the connection waits for a next request
//! again when that request is done ([`RequestMark`] dropped with the
//! request's context). Between requests a kept-alive connection may stay
//! silent for `limits.client_idle_timeout`, then it is closed like a client
//! that hung up (Pingora would wait for ever: a reused HTTP/1.1 connection
//! has no read timeout). Bodies are not covered (per-read timeouts apply);
//! neither are HTTP/2 connections, whose frames the `h2` crate reads.
//!
//! The same wrapper counts open connections per client address and closes
//! a connection at once when its address holds `max_connections_per_client`
//! already. Trusted proxies (`[client_ip] trusted_proxies`) are not capped:
//! every client behind them shares their address.

use crate::drain::InFlight;
use async_trait::async_trait;
use dashmap::DashMap;
use ipnet::IpNet;
use pingora::apps::ServerApp;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::TlsRef;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use pingora::proxy::Session;
use pingora::server::ShutdownWatch;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

// A connection's state is one word: the phase in the low two bits, the
// number of requests whose head was read above them, so that a deadline
// armed in one phase (or one idle period) never fires in another.
/// Reading a request head: the head deadline runs.
const HEAD: u32 = 0;
/// The head is read; the request is being served.
const SERVING: u32 = 1;
/// Between requests on a kept-alive connection: the idle deadline runs and
/// the next byte starts a head.
const IDLE: u32 = 2;
const PHASE: u32 = 3;

/// The limits every proxy connection is held to.
#[derive(Debug)]
pub struct ConnLimits {
    /// Total time for one request head.
    pub header_timeout: Duration,
    /// Silence allowed between two requests on a kept-alive connection.
    pub idle_timeout: Duration,
    /// Concurrent connections per client address.
    pub per_client: usize,
    /// Addresses that are never capped.
    pub trusted: Vec<IpNet>,
    open: DashMap<IpAddr, usize>,
}

impl ConnLimits {
    pub fn new(
        header_timeout: Duration,
        idle_timeout: Duration,
        per_client: usize,
        trusted: Vec<IpNet>,
    ) -> ConnLimits {
        ConnLimits {
            header_timeout,
            idle_timeout,
            per_client,
            trusted,
            open: DashMap::new(),
        }
    }

    /// A slot for a connection from `ip`, or `None` when its address holds
    /// the maximum already.
    fn admit(self: &Arc<Self>, ip: Option<IpAddr>) -> Option<Slot> {
        let capped = ip.filter(|ip| !self.trusted.iter().any(|n| n.contains(ip)));
        if let Some(ip) = capped {
            let mut open = self.open.entry(ip).or_insert(0);
            if *open >= self.per_client {
                return None;
            }
            *open += 1;
        }
        Some(Slot {
            limits: Arc::clone(self),
            ip: capped,
        })
    }

    /// Connections open from `ip` (for tests).
    pub fn open_from(&self, ip: IpAddr) -> usize {
        self.open.get(&ip).map_or(0, |n| *n)
    }
}

/// One counted connection; uncounted when dropped.
#[derive(Debug)]
struct Slot {
    limits: Arc<ConnLimits>,
    ip: Option<IpAddr>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(ip) = self.ip {
            if let Some(mut n) = self.limits.open.get_mut(&ip) {
                *n = n.saturating_sub(1);
            }
            self.limits.open.remove_if(&ip, |_, n| *n == 0);
        }
    }
}

/// The proxy app behind the connection limits.
pub struct Guarded<A> {
    pub app: Arc<A>,
    pub limits: Arc<ConnLimits>,
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Guarded<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        // A kept-alive connection comes back here for its next request:
        // already guarded (and counted).
        if (*stream).as_any().is::<GuardedStream>() {
            return self.app.process_new(stream, shutdown).await;
        }
        let ip = stream
            .get_socket_digest()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip()));
        let slot = self.limits.admit(ip)?;
        // HTTP/2 frames are read by the h2 crate, not request by request.
        let timeout =
            (stream.selected_alpn_proto() != Some(ALPN::H2)).then_some(self.limits.header_timeout);
        let guarded = GuardedStream {
            deadline: timeout.map(|t| (HEAD, Box::pin(tokio::time::sleep(t)))),
            timeout,
            idle_timeout: self.limits.idle_timeout,
            state: Arc::new(AtomicU32::new(HEAD)),
            inner: stream,
            _slot: slot,
        };
        self.app.process_new(Box::new(guarded), shutdown).await
    }

    async fn cleanup(&self) {
        self.app.cleanup().await;
    }
}

/// A client connection with a deadline on request heads.
#[derive(Debug)]
pub struct GuardedStream {
    inner: Stream,
    /// Head deadline; `None` (HTTP/2) turns every limit of the stream off.
    timeout: Option<Duration>,
    idle_timeout: Duration,
    /// [`HEAD`], [`SERVING`] or [`IDLE`] and the requests served; shared
    /// with the request's [`RequestMark`].
    state: Arc<AtomicU32>,
    /// The deadline of the head being read, or of the idle wait, with the
    /// state it was armed in (it counts only in that very state).
    deadline: Option<(u32, Pin<Box<Sleep>>)>,
    _slot: Slot,
}

/// What a request's context holds of its connection: it counts the request
/// in flight (graceful stop waits for it) and, dropped with the context when
/// the request is done, lets the connection's next head be timed.
#[derive(Debug, Default)]
pub struct RequestMark {
    state: Option<Arc<AtomicU32>>,
    _in_flight: InFlight,
}

impl RequestMark {
    /// The proxy has the request head: its deadline stops.
    pub fn head_read(&mut self, session: &Session) {
        let guarded = session
            .stream()
            .and_then(|s| (**s).as_any().downcast_ref::<GuardedStream>());
        if let Some(g) = guarded {
            let _ = g
                .state
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                    Some(((s >> 2).wrapping_add(1) << 2) | SERVING)
                });
            self.state = Some(Arc::clone(&g.state));
        }
    }
}

impl Drop for RequestMark {
    fn drop(&mut self) {
        if let Some(state) = &self.state {
            let _ = state.fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                Some((s & !PHASE) | IDLE)
            });
        }
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(timeout) = this.timeout else {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        };
        let state = this.state.load(Ordering::Acquire);
        match state & PHASE {
            HEAD => {
                if let Some((armed, sleep)) = &mut this.deadline {
                    if *armed == state && sleep.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "request head not received in time",
                        )));
                    }
                }
                Pin::new(&mut this.inner).poll_read(cx, buf)
            }
            IDLE => {
                if !matches!(&this.deadline, Some((armed, _)) if *armed == state) {
                    let idle = Box::pin(tokio::time::sleep(this.idle_timeout));
                    this.deadline = Some((state, idle));
                }
                if let Some((_, sleep)) = &mut this.deadline {
                    if sleep.as_mut().poll(cx).is_ready() {
                        // Silent for too long: read as the client hanging up.
                        return Poll::Ready(Ok(()));
                    }
                }
                let before = buf.filled().len();
                let read = Pin::new(&mut this.inner).poll_read(cx, buf);
                if matches!(read, Poll::Ready(Ok(()))) && buf.filled().len() > before {
                    // The first byte of the next request: its head is timed.
                    let head = (state & !PHASE) | HEAD;
                    this.state.store(head, Ordering::Release);
                    this.deadline = Some((head, Box::pin(tokio::time::sleep(timeout))));
                }
                read
            }
            _ => {
                this.deadline = None;
                Pin::new(&mut this.inner).poll_read(cx, buf)
            }
        }
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for GuardedStream {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await;
    }
}

impl UniqueID for GuardedStream {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for GuardedStream {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<pingora::protocols::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for GuardedStream {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for GuardedStream {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest);
    }
}

impl GetSocketDigest for GuardedStream {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest);
    }
}

#[async_trait]
impl Peek for GuardedStream {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_counts_per_address_and_spares_trusted_proxies() {
        let limits = Arc::new(ConnLimits::new(
            Duration::from_secs(1),
            Duration::from_secs(1),
            2,
            vec!["10.0.0.0/8".parse().unwrap()],
        ));
        let a: IpAddr = "203.0.113.1".parse().unwrap();
        let b: IpAddr = "203.0.113.2".parse().unwrap();
        let first = limits.admit(Some(a)).unwrap();
        let second = limits.admit(Some(a)).unwrap();
        assert!(limits.admit(Some(a)).is_none());
        assert!(limits.admit(Some(b)).is_some());
        drop(first);
        assert_eq!(limits.open_from(a), 1);
        let third = limits.admit(Some(a)).unwrap();
        drop((second, third));
        assert_eq!(limits.open_from(a), 0);
        assert!(limits.open.is_empty());
        let proxy: IpAddr = "10.1.1.1".parse().unwrap();
        let held: Vec<_> = (0..5).map(|_| limits.admit(Some(proxy)).unwrap()).collect();
        assert_eq!(held.len(), 5);
        assert_eq!(limits.open_from(proxy), 0);
    }
}
