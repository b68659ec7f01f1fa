//! Upstream pools: round-robin over an upstream's addresses, skipping those
//! marked down by a failed connection (passive) or by the health checker
//! (active), and the one retry policy both proxy paths follow.

use crate::clock::{Clock, SystemClock};
use crate::config::Upstream;
use pingora::upstreams::peer::HttpPeer;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;

/// How long an address that refused a connection is skipped (passive health).
const PASSIVE_DOWN_MS: i64 = 5_000;

/// An upstream pool: round-robin over its addresses, skipping those marked
/// down by a failed connection (passive) or by the health checker (active).
/// When every address is down, all are tried: better a slow failure than none.
pub struct Pool {
    pub upstream: Upstream,
    next: AtomicUsize,
    /// Per address: Unix milliseconds until which it counts as down.
    down_until: Box<[AtomicI64]>,
    clock: Arc<dyn Clock>,
}

impl Pool {
    pub fn new(upstream: Upstream) -> Pool {
        Pool::with_clock(upstream, Arc::new(SystemClock))
    }

    /// A pool whose health marks expire by `clock` (tests).
    pub fn with_clock(upstream: Upstream, clock: Arc<dyn Clock>) -> Pool {
        let down_until = upstream
            .addresses
            .iter()
            .map(|_| AtomicI64::new(0))
            .collect();
        Pool {
            upstream,
            next: AtomicUsize::new(0),
            down_until,
            clock,
        }
    }

    /// The next address to try, preferring healthy ones.
    pub fn pick(&self) -> Option<(usize, SocketAddr)> {
        let n = self.upstream.addresses.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let now = self.clock.unix_ms();
        let idx = (0..n)
            .map(|i| (start + i) % n)
            .find(|&i| self.down_until[i].load(Ordering::Relaxed) <= now)
            .unwrap_or(start % n);
        Some((idx, self.upstream.addresses[idx]))
    }

    pub fn mark_down(&self, idx: usize, for_ms: i64) {
        if let Some(d) = self.down_until.get(idx) {
            d.store(self.clock.unix_ms() + for_ms, Ordering::Relaxed);
        }
    }

    pub fn mark_up(&self, idx: usize) {
        if let Some(d) = self.down_until.get(idx) {
            d.store(0, Ordering::Relaxed);
        }
    }

    /// The retry policy of both proxy paths: connecting to the address at
    /// `idx` failed on try number `tries`. The address is skipped for a while;
    /// the answer says whether another address may be tried (each at most once).
    pub fn connect_failed(&self, idx: usize, tries: usize) -> bool {
        self.mark_down(idx, PASSIVE_DOWN_MS);
        tries < self.upstream.addresses.len()
    }

    /// The Pingora peer for one of this pool's addresses.
    pub fn peer(&self, addr: SocketAddr) -> HttpPeer {
        let up = &self.upstream;
        let mut peer = HttpPeer::new(addr, up.tls, up.sni.clone());
        peer.options.connection_timeout = Some(up.connect_timeout);
        peer.options.read_timeout = Some(up.read_timeout);
        peer.options.write_timeout = Some(up.write_timeout);
        peer.options.idle_timeout = Some(up.idle_timeout);
        peer.options.verify_cert = up.verify;
        peer.options.verify_hostname = up.verify;
        peer
    }

    /// Active health check: a TCP connect to every address each `interval`.
    pub async fn check_forever(&self, interval: std::time::Duration) {
        loop {
            for (i, addr) in self.upstream.addresses.iter().enumerate() {
                let ok = tokio::time::timeout(
                    self.upstream.connect_timeout,
                    tokio::net::TcpStream::connect(addr),
                )
                .await
                .is_ok_and(|r| r.is_ok());
                let was_down = self.down_until[i].load(Ordering::Relaxed) > self.clock.unix_ms();
                if ok {
                    self.mark_up(i);
                } else {
                    self.mark_down(i, interval.as_millis() as i64 * 2);
                }
                if ok == was_down {
                    tracing::warn!(upstream = %self.upstream.name, address = %addr, healthy = ok, "upstream address health changed");
                }
            }
            tokio::time::sleep(interval).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::time::Duration;

    fn upstream(n: u16) -> Upstream {
        Upstream {
            name: "app".into(),
            addresses: (0..n)
                .map(|i| SocketAddr::from(([127, 0, 0, 1], 7000 + i)))
                .collect(),
            tls: false,
            sni: String::new(),
            verify: false,
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            write_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            health_interval: None,
        }
    }

    #[test]
    fn a_refused_address_is_skipped_until_its_mark_expires() {
        let clock = Arc::new(ManualClock::at(1_000_000));
        let pool = Pool::with_clock(upstream(2), clock.clone());
        assert!(pool.connect_failed(0, 1), "a second address is left to try");
        for _ in 0..4 {
            assert_eq!(pool.pick().map(|p| p.0), Some(1));
        }
        clock.advance_ms(PASSIVE_DOWN_MS);
        let picked: Vec<usize> = (0..4).filter_map(|_| pool.pick().map(|p| p.0)).collect();
        assert!(picked.contains(&0), "back in rotation: {picked:?}");
    }

    #[test]
    fn each_address_is_tried_once_and_all_when_all_are_down() {
        let clock = Arc::new(ManualClock::at(0));
        let pool = Pool::with_clock(upstream(2), clock);
        assert!(pool.connect_failed(0, 1));
        assert!(
            !pool.connect_failed(1, 2),
            "no third try with two addresses"
        );
        assert!(pool.pick().is_some(), "all down: still an address");
    }
}
