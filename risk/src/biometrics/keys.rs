//! Keystroke dynamics: turns key presses into timing observations — dwell
//! (hold) time per key, and for two keys in a row in one field the digraph's
//! down-down latency and flight (up-down) time — each tagged with an opaque
//! feature id. A [`KeyTracker`] keeps only the previous key, so a digraph
//! split across two batches is still seen.

use super::batch::KeyEvent;
use serde::{Deserialize, Serialize};

/// Two keys further apart than this (ms, down to down) are not a digraph.
pub const DIGRAPH_GAP_MS: f64 = 1_500.0;

/// What a timing observation measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Timing {
    /// Hold time of one key: up − down.
    Dwell,
    /// Digraph down-down latency.
    DownDown,
    /// Digraph flight time: next down − previous up (may be negative).
    Flight,
}

/// One timing observation: a feature id (timing kind and key ids hashed
/// together) and the transformed value the model compares.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyObs {
    pub feature: u32,
    pub value: f32,
}

/// The previous key of a session's key stream.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyTracker {
    last: Option<LastKey>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct LastKey {
    field: u32,
    key: u32,
    down: f64,
    up: f64,
}

/// FNV-1a, 32 bits: a stable hash (the ids it builds are stored in profiles,
/// so it must never change between versions or platforms).
pub fn fnv1a(parts: &[&[u8]]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for part in parts {
        for &b in *part {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x0100_0193);
        }
        // Separator, so ("ab","c") and ("a","bc") differ.
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// The feature id of a timing over one key (dwell) or a digraph.
pub fn feature_id(timing: Timing, a: u32, b: u32) -> u32 {
    let tag: &[u8] = match timing {
        Timing::Dwell => b"H",
        Timing::DownDown => b"DD",
        Timing::Flight => b"UD",
    };
    fnv1a(&[tag, &a.to_le_bytes(), &b.to_le_bytes()])
}

/// The value the model compares: log milliseconds for dwell and down-down
/// (their spread grows with their size), tenths of a second for flight
/// (which may be negative when keys overlap).
fn transform(timing: Timing, ms: f64) -> f32 {
    let v = match timing {
        Timing::Dwell | Timing::DownDown => ms.max(0.0).ln_1p(),
        Timing::Flight => (ms / 100.0).clamp(-20.0, 20.0),
    };
    if v.is_finite() {
        v as f32
    } else {
        0.0
    }
}

impl KeyTracker {
    /// Feeds key presses (validated, in `down` order) and appends their observations.
    pub fn absorb(&mut self, keys: &[KeyEvent], out: &mut Vec<KeyObs>) {
        for k in keys {
            let field = fnv1a(&[k.field.as_bytes()]);
            let key = fnv1a(&[k.key.as_bytes()]);
            out.push(KeyObs {
                feature: feature_id(Timing::Dwell, key, 0),
                value: transform(Timing::Dwell, k.up - k.down),
            });
            if let Some(prev) = &self.last {
                let dd = k.down - prev.down;
                if prev.field == field && dd <= DIGRAPH_GAP_MS {
                    out.push(KeyObs {
                        feature: feature_id(Timing::DownDown, prev.key, key),
                        value: transform(Timing::DownDown, dd),
                    });
                    out.push(KeyObs {
                        feature: feature_id(Timing::Flight, prev.key, key),
                        value: transform(Timing::Flight, k.down - prev.up),
                    });
                }
            }
            self.last = Some(LastKey {
                field,
                key,
                down: k.down,
                up: k.up,
            });
        }
    }
}
