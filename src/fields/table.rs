//! A small, read-only open-addressing table from field names to indices,
//! looked up with raw key bytes straight from the body (no allocation, no
//! `String`), with a cheap multiplicative hash: field names are chosen by
//! policy authors, not by the upstream, so hash flooding is not a concern
//! (and a lookup miss costs at most a probe run at load factor ≤ 1/2).

#[derive(Debug, Clone, Default)]
pub(crate) struct KeyTable {
    /// Every name, back to back (one allocation, for locality).
    arena: Box<[u8]>,
    /// `(start, end)` of each name in `arena`.
    spans: Box<[(u32, u32)]>,
    /// `EMPTY` or an index into `spans`.
    slots: Box<[u32]>,
    mask: usize,
}

const EMPTY: u32 = u32::MAX;
const K: u64 = 0x517c_c1b7_2722_0a95;

/// One multiply over the length and five sampled bytes: field names of one
/// entity type almost always differ there, and a collision only costs a probe.
#[inline]
fn hash(key: &[u8]) -> u64 {
    let n = key.len();
    let first = key.first().copied().unwrap_or(0) as u64;
    let last = key.last().copied().unwrap_or(0) as u64;
    let at = |i: usize| key.get(i).copied().unwrap_or(0) as u64;
    let x = (n as u64)
        | first << 8
        | at(n / 4) << 16
        | at(n / 2) << 24
        | at(3 * n / 4) << 32
        | last << 40;
    // The high bits of the product are the well-mixed ones.
    x.wrapping_mul(K) >> 32
}

/// Byte equality without a `memcmp` call for the short keys that dominate.
#[inline]
fn eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let n = a.len();
    if n <= 8 {
        let mut x = [0u8; 8];
        let mut y = [0u8; 8];
        x[..n].copy_from_slice(a);
        y[..n].copy_from_slice(b);
        return x == y;
    }
    if n <= 16 {
        // Two overlapping 8-byte words cover the whole key.
        let word = |s: &[u8], at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(s.get(at..at + 8).unwrap_or(&[0; 8]));
            u64::from_ne_bytes(w)
        };
        return word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8);
    }
    a == b
}

impl KeyTable {
    /// Builds a table over distinct `names`; index `i` answers for `names[i]`.
    pub(crate) fn new(names: Vec<Box<[u8]>>) -> KeyTable {
        let cap = (names.len() * 2).next_power_of_two().max(8);
        let mask = cap - 1;
        let mut slots = vec![EMPTY; cap].into_boxed_slice();
        let mut arena = Vec::with_capacity(names.iter().map(|n| n.len()).sum());
        let mut spans = Vec::with_capacity(names.len());
        for (i, n) in names.iter().enumerate() {
            let mut s = hash(n) as usize & mask;
            // INVARIANT: cap ≥ 2 × len, so a free slot always exists.
            while slots[s] != EMPTY {
                s = (s + 1) & mask;
            }
            slots[s] = i as u32;
            let start = arena.len() as u32;
            arena.extend_from_slice(n);
            spans.push((start, arena.len() as u32));
        }
        KeyTable {
            arena: arena.into_boxed_slice(),
            spans: spans.into_boxed_slice(),
            slots,
            mask,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.spans.len()
    }

    /// Is `key` the name at `idx`?
    #[inline]
    pub(crate) fn is(&self, idx: usize, key: &[u8]) -> bool {
        eq(self.name(idx), key)
    }

    #[inline]
    pub(crate) fn get(&self, key: &[u8]) -> Option<usize> {
        let mut s = hash(key) as usize & self.mask;
        loop {
            let idx = *self.slots.get(s)?;
            if idx == EMPTY {
                return None;
            }
            let idx = idx as usize;
            if self.is(idx, key) {
                return Some(idx);
            }
            s = (s + 1) & self.mask;
        }
    }

    #[inline]
    pub(crate) fn name(&self, idx: usize) -> &[u8] {
        self.spans
            .get(idx)
            .and_then(|&(s, e)| self.arena.get(s as usize..e as usize))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn finds_every_name_and_nothing_else() {
        let names: Vec<String> = (0..300).map(|i| format!("field_{i}")).collect();
        let t = KeyTable::new(names.iter().map(|n| n.as_bytes().into()).collect());
        for (i, n) in names.iter().enumerate() {
            assert_eq!(t.get(n.as_bytes()), Some(i));
            assert_eq!(t.name(i), n.as_bytes());
        }
        for miss in ["", "field_", "field_300", "x", "field_1 "] {
            assert_eq!(t.get(miss.as_bytes()), None, "{miss}");
        }
        // Equal lengths, different bytes, at every length the comparison special-cases.
        let long: Vec<String> = (1..40).map(|n| "k".repeat(n)).collect();
        let t = KeyTable::new(long.iter().map(|n| n.as_bytes().into()).collect());
        for (i, n) in long.iter().enumerate() {
            assert_eq!(t.get(n.as_bytes()), Some(i));
            for at in [0, n.len() / 2, n.len() - 1] {
                let mut other = n.clone().into_bytes();
                other[at] = b'x';
                assert_eq!(t.get(&other), None, "{n} with x at {at}");
            }
        }
        let empty = KeyTable::new(vec![]);
        assert_eq!(empty.get(b"a"), None);
        assert_eq!(empty.len(), 0);
    }
}
