//! The per-principal and per-address state the features are computed from:
//! fixed-size, serde-serializable, and meaningful after any sequence of
//! updates (including a state read back from another gateway).

use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Slices of the window: each counts `window_ttl / SLOTS` seconds.
pub(crate) const SLOTS: usize = 6;
/// Networks remembered per principal (the least used is replaced).
pub(crate) const MAX_NETWORKS: usize = 8;
/// Time constant of the fast request rate, in seconds (a per-minute rate).
pub(crate) const FAST_TAU: f32 = 60.0;
/// Bits of a slot's distinct-resource sketch.
const RESOURCE_BITS: u32 = 128;
/// Bits of an address slot's distinct-principal sketch.
const PRINCIPAL_BITS: u32 = 64;

/// A stable 64-bit hash (FNV-1a): gateways that share state through Redis and
/// the offline feature tool must agree on it, so no per-process seed.
pub(crate) fn stable_hash(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // A separator so that ("ab", "c") and ("a", "bc") differ.
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // Final mix: FNV's low bits are weak for short keys.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h
}

/// The principal's "network": the /24 of an IPv4 address, the /64 of an IPv6
/// one (SPEC); an IPv4-mapped IPv6 address counts as its IPv4 address.
pub(crate) fn network_key(ip: IpAddr) -> u32 {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let h = match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            stable_hash(&[b"v4", &o[..3]])
        }
        IpAddr::V6(v6) => {
            let o = v6.octets();
            stable_hash(&[b"v6", &o[..8]])
        }
    };
    (h >> 32) as u32
}

/// Linear counting: the number of distinct keys behind a bitmap with `zeros`
/// of its `bits` bits unset. Saturates at `bits · ln(bits)`.
pub(crate) fn linear_count(zeros: u32, bits: u32) -> f32 {
    let m = bits as f32;
    let z = zeros.max(1) as f32;
    m * (m / z).ln()
}

/// One slice of a principal's window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Slot {
    /// Which slice (`now / slice_len`) these counts belong to; a slot whose
    /// epoch is not among the live ones counts nothing.
    pub epoch: u64,
    pub requests: u16,
    pub denials: u16,
    pub auth_failures: u16,
    pub writes: u16,
    pub sensitive: u16,
    /// Distinct-resource sketch (one bit per resource hash).
    pub resources: [u64; 2],
}

/// What the window of a principal adds up to now.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct WindowTotals {
    pub requests: u32,
    pub denials: u32,
    pub auth_failures: u32,
    pub writes: u32,
    pub sensitive: u32,
    pub breadth: f32,
}

pub(crate) fn slice_len(window_ttl: u64) -> u64 {
    (window_ttl / SLOTS as u64).max(1)
}

fn is_live(epoch: u64, current: u64) -> bool {
    epoch <= current && current - epoch < SLOTS as u64
}

/// A remembered network of a principal.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct Network {
    pub key: u32,
    pub count: u16,
    pub last: u64,
}

/// What the principal usually does, learned only from served, unsuspicious
/// requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Baseline {
    /// Requests learned (saturating).
    pub learned: u32,
    /// Requests per hour of the week (`[weekday][hour]`, Monday = 0, UTC),
    /// halved together when one saturates.
    pub hours: [[u8; 24]; 7],
    pub networks: Vec<Network>,
    /// Bloom filter (2 bits per route) of the routes used.
    pub routes: [u64; 4],
    /// Window samples taken (at most one per window slice, from the first
    /// learned request in it) and the slice of the last one.
    pub samples: u32,
    pub sampled_epoch: u64,
    /// Moving averages over those samples: requests and distinct resources
    /// in the window. Sampled per slice, not per request, so that a burst
    /// of requests weighs as much as a quiet stretch of the same length.
    pub rate: f32,
    pub breadth: f32,
    /// Moving averages over learned requests: share of writes and of
    /// sensitive routes.
    pub write_share: f32,
    pub sensitive_share: f32,
}

impl Default for Baseline {
    fn default() -> Self {
        Self {
            learned: 0,
            hours: [[0; 24]; 7],
            networks: Vec::new(),
            routes: [0; 4],
            samples: 0,
            sampled_epoch: 0,
            rate: 0.0,
            breadth: 0.0,
            write_share: 0.0,
            sensitive_share: 0.0,
        }
    }
}

/// Hour of the week (Monday 00:00 UTC = 0) of a Unix time.
pub(crate) fn hour_of_week(now: u64) -> usize {
    let day = now / 86_400;
    // 1970-01-01 was a Thursday (weekday 3 with Monday = 0).
    let weekday = (day + 3) % 7;
    let hour = (now % 86_400) / 3600;
    (weekday * 24 + hour) as usize
}

fn route_bits(route_hash: u64) -> [(usize, u64); 2] {
    let a = (route_hash & 255) as usize;
    let b = ((route_hash >> 8) & 255) as usize;
    [(a / 64, 1 << (a % 64)), (b / 64, 1 << (b % 64))]
}

impl Baseline {
    pub(crate) fn hour_count(&self, how: usize) -> u32 {
        let how = how % 168;
        self.hours
            .get(how / 24)
            .and_then(|d| d.get(how % 24))
            .map_or(0, |&c| u32::from(c))
    }

    /// Shares of learned requests within ±1 h of this hour of the week, and
    /// of this hour of the day (any weekday); neighbours count half.
    pub(crate) fn hour_shares(&self, how: usize) -> (f32, f32) {
        let total: u32 = self.hours.iter().flatten().map(|&c| u32::from(c)).sum();
        if total == 0 {
            return (0.0, 0.0);
        }
        let around = |h: usize| {
            0.5 * (self.hour_count(h + 167) + self.hour_count(h + 1)) as f32
                + self.hour_count(h) as f32
        };
        let week = around(how);
        let hod = how % 24;
        let day: f32 = (0..7).map(|d| around(d * 24 + hod)).sum();
        let total = total as f32;
        ((week / total).min(1.0), (day / total).min(1.0))
    }

    pub(crate) fn add_hour(&mut self, how: usize) {
        let (d, h) = ((how % 168) / 24, how % 24);
        if let Some(c) = self.hours.get_mut(d).and_then(|day| day.get_mut(h)) {
            if *c == u8::MAX {
                for c in self.hours.iter_mut().flatten() {
                    *c /= 2;
                }
            }
        }
        if let Some(c) = self.hours.get_mut(d).and_then(|day| day.get_mut(h)) {
            *c = c.saturating_add(1);
        }
    }

    pub(crate) fn knows_network(&self, key: u32) -> bool {
        self.networks
            .iter()
            .take(MAX_NETWORKS)
            .any(|n| n.key == key)
    }

    pub(crate) fn add_network(&mut self, key: u32, now: u64) {
        self.networks.truncate(MAX_NETWORKS);
        if let Some(n) = self.networks.iter_mut().find(|n| n.key == key) {
            n.count = n.count.saturating_add(1);
            n.last = now;
            return;
        }
        let fresh = Network {
            key,
            count: 1,
            last: now,
        };
        if self.networks.len() < MAX_NETWORKS {
            self.networks.push(fresh);
        } else if let Some(victim) = self.networks.iter_mut().min_by_key(|n| (n.count, n.last)) {
            // The least used (then the oldest) network makes room.
            *victim = fresh;
        }
    }

    pub(crate) fn knows_route(&self, route_hash: u64) -> bool {
        route_bits(route_hash)
            .iter()
            .all(|&(w, bit)| self.routes.get(w).is_some_and(|x| x & bit != 0))
    }

    pub(crate) fn add_route(&mut self, route_hash: u64) {
        for (w, bit) in route_bits(route_hash) {
            if let Some(x) = self.routes.get_mut(w) {
                *x |= bit;
            }
        }
    }
}

/// Everything the anomaly features remember about one principal (a user or a
/// service account, across all its credentials: a stolen token used beside
/// its owner shares the owner's baseline).
///
/// Fixed size: 6 window slots, 168 hour counts, at most 8 networks, a 256-bit
/// route filter and a few numbers — under 600 bytes in any serde format,
/// whatever the traffic.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PrincipalState {
    /// Unix time (s) of the last request or failed authentication.
    pub(crate) last_seen: u64,
    pub(crate) slots: [Slot; SLOTS],
    /// Exponentially decayed request count (time constant [`FAST_TAU`]): the
    /// requests of about the last minute.
    pub(crate) fast: f32,
    pub(crate) fast_at: u64,
    pub(crate) baseline: Baseline,
}

impl PrincipalState {
    /// Unix time after which this state is to be dropped (nothing of it would
    /// count any more): the store's TTL.
    pub fn expires_at(&self, config: &crate::anomaly::AnomalyConfig) -> u64 {
        self.last_seen.saturating_add(config.profile_ttl)
    }

    /// Requests this principal's baseline has learned.
    pub fn learned(&self) -> u32 {
        self.baseline.learned
    }

    /// The state as seen at `now`: a fresh one once the profile expired, the
    /// window emptied once it is older than `window_ttl`.
    pub(crate) fn aged(mut self, now: u64, config: &crate::anomaly::AnomalyConfig) -> Self {
        let idle = now.saturating_sub(self.last_seen);
        if self.last_seen != 0 && idle > config.profile_ttl {
            return Self::default();
        }
        if idle > config.window_ttl {
            self.slots = [Slot::default(); SLOTS];
            self.fast = 0.0;
        }
        if !self.fast.is_finite() || self.fast < 0.0 {
            self.fast = 0.0;
        }
        self
    }

    pub(crate) fn slot_mut(&mut self, now: u64, window_ttl: u64) -> &mut Slot {
        let epoch = now / slice_len(window_ttl);
        let ix = (epoch % SLOTS as u64) as usize;
        // INVARIANT: ix < SLOTS, the length of `slots`.
        let slot = &mut self.slots[ix];
        if slot.epoch != epoch {
            *slot = Slot {
                epoch,
                ..Slot::default()
            };
        }
        slot
    }

    pub(crate) fn window(&self, now: u64, window_ttl: u64) -> WindowTotals {
        let current = now / slice_len(window_ttl);
        let mut t = WindowTotals::default();
        let mut sketch = [0u64; 2];
        for s in self.slots.iter().filter(|s| is_live(s.epoch, current)) {
            t.requests += u32::from(s.requests);
            t.denials += u32::from(s.denials);
            t.auth_failures += u32::from(s.auth_failures);
            t.writes += u32::from(s.writes);
            t.sensitive += u32::from(s.sensitive);
            sketch[0] |= s.resources[0];
            sketch[1] |= s.resources[1];
        }
        let ones = sketch[0].count_ones() + sketch[1].count_ones();
        t.breadth = if ones == 0 {
            0.0
        } else {
            linear_count(RESOURCE_BITS - ones, RESOURCE_BITS)
        };
        t
    }

    /// The fast rate decayed to `now` (without counting a new request).
    pub(crate) fn decayed_fast(&self, now: u64) -> f32 {
        let dt = now.saturating_sub(self.fast_at) as f32;
        self.fast * (-dt / FAST_TAU).exp()
    }
}

pub(crate) fn resource_bit(resource_hash: u64) -> (usize, u64) {
    let b = (resource_hash % u64::from(RESOURCE_BITS)) as usize;
    (b / 64, 1 << (b % 64))
}

/// One slice of an address's window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct AddressSlot {
    pub epoch: u64,
    pub auth_failures: u16,
    /// Distinct-principal sketch (one bit per principal hash).
    pub principals: u64,
}

/// What one client address did in the last window: failed authentications
/// and the principals that authenticated from it. Keyed by the full address
/// (SPEC: "failed authentications from an address raise the risk of that
/// address's next authenticated requests"); about 100 bytes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AddressState {
    pub(crate) last_seen: u64,
    pub(crate) slots: [AddressSlot; SLOTS],
}

/// What an address's window says about the request at hand.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct AddressSignals {
    /// Failed authentications from the address in the window.
    pub auth_failures: u32,
    /// Distinct principals that made authenticated requests from it in the
    /// window (an estimate; saturates near 260).
    pub principals: f32,
}

impl AddressState {
    /// Unix time after which this state is to be dropped.
    pub fn expires_at(&self, config: &crate::anomaly::AnomalyConfig) -> u64 {
        self.last_seen.saturating_add(config.window_ttl)
    }

    fn slot_mut(&mut self, now: u64, window_ttl: u64) -> &mut AddressSlot {
        let epoch = now / slice_len(window_ttl);
        let ix = (epoch % SLOTS as u64) as usize;
        // INVARIANT: ix < SLOTS, the length of `slots`.
        let slot = &mut self.slots[ix];
        if slot.epoch != epoch {
            *slot = AddressSlot {
                epoch,
                ..AddressSlot::default()
            };
        }
        slot
    }

    /// Counts a failed authentication from this address.
    pub fn record_auth_failure(mut self, now: u64, config: &crate::anomaly::AnomalyConfig) -> Self {
        let slot = self.slot_mut(now, config.window_ttl);
        slot.auth_failures = slot.auth_failures.saturating_add(1);
        self.last_seen = self.last_seen.max(now);
        self
    }

    /// Counts an authenticated request of `principal` from this address and
    /// says what the window holds (this request's principal included).
    pub fn observe(
        mut self,
        principal: &str,
        now: u64,
        config: &crate::anomaly::AnomalyConfig,
    ) -> (Self, AddressSignals) {
        let bit = stable_hash(&[principal.as_bytes()]) % u64::from(PRINCIPAL_BITS);
        let slot = self.slot_mut(now, config.window_ttl);
        slot.principals |= 1 << bit;
        self.last_seen = self.last_seen.max(now);
        let signals = self.signals(now, config);
        (self, signals)
    }

    /// What the window holds at `now`, without counting anything.
    pub fn signals(&self, now: u64, config: &crate::anomaly::AnomalyConfig) -> AddressSignals {
        let current = now / slice_len(config.window_ttl);
        let mut failures = 0u32;
        let mut sketch = 0u64;
        for s in self.slots.iter().filter(|s| is_live(s.epoch, current)) {
            failures += u32::from(s.auth_failures);
            sketch |= s.principals;
        }
        let ones = sketch.count_ones();
        AddressSignals {
            auth_failures: failures,
            principals: if ones == 0 {
                0.0
            } else {
                linear_count(PRINCIPAL_BITS - ones, PRINCIPAL_BITS)
            },
        }
    }
}
