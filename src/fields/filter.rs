//! The streaming filter: one pass of a validating JSON tokenizer over the
//! body bytes, no tree. Bytes are copied lazily: output only happens where
//! something changes (a removed member, a mask), so unchanged runs are single
//! `memcpy`s and numbers, string escapes, key order and whitespace stay
//! exactly as sent. Only the members of entity objects (the objects at the
//! binding) are ever dropped or replaced.
//!
//! Fail closed: any error leaves `out` as it was before the call.
//!
//! Over 700 lines because the tokenizer and the copy-on-change writer share
//! one state machine; the masks are `mask.rs`, the paths `path.rs`.

use super::mask::{self, Raw};
use super::path::{Binding, Step};
use super::{Access, FieldPlan};
use std::collections::BTreeSet;

/// The deepest nesting of objects and arrays accepted (as serde_json).
pub const MAX_DEPTH: usize = 128;

/// Why a body cannot be filtered. Offsets are byte offsets into the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("malformed json at byte {offset}: {what}")]
    Syntax { offset: usize, what: &'static str },
    #[error("invalid utf-8 at byte {offset}")]
    Utf8 { offset: usize },
    #[error("duplicate key `{key}` at byte {offset}")]
    DuplicateKey { offset: usize, key: String },
    #[error("json nested deeper than {limit} at byte {offset}")]
    TooDeep { offset: usize, limit: usize },
    #[error("unexpected data after the json value at byte {offset}")]
    TrailingData { offset: usize },
    /// Streamed filter only: a key, a masked value or an entity's undefined
    /// keys hold more than `limit` bytes.
    #[error("more than {limit} bytes to hold at byte {offset}")]
    TooLong { offset: usize, limit: usize },
    #[error("expected {expected} at the binding path at byte {offset}")]
    Shape {
        offset: usize,
        expected: &'static str,
    },
}

impl FilterError {
    /// A short stable name for metrics labels and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            FilterError::Syntax { .. }
            | FilterError::Utf8 { .. }
            | FilterError::TrailingData { .. } => "malformed",
            FilterError::DuplicateKey { .. } => "duplicate_key",
            FilterError::TooDeep { .. } => "too_deep",
            FilterError::Shape { .. } => "unexpected_shape",
            FilterError::TooLong { .. } => "too_long",
        }
    }
}

/// What a filter pass did, for metrics and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FilterStats {
    /// Entity objects found at the binding.
    pub entities: u32,
    /// Members removed.
    pub removed: u32,
    /// Members masked.
    pub masked: u32,
}

/// The result of [`check_write`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteCheck {
    /// Top-level entity fields the caller may not write: sorted, deduplicated,
    /// unescaped. Empty: the write may go through.
    pub denied: Vec<String>,
    pub entities: u32,
}

impl WriteCheck {
    pub fn is_allowed(&self) -> bool {
        self.denied.is_empty()
    }
}

/// Filters a response body: appends to `out` the body with every entity at
/// `binding` reduced to the fields `plan` lets the caller read, masked ones
/// masked. Everything outside the entities is copied byte for byte.
///
/// An empty body (zero bytes) is passed as is. A body where the binding path
/// does not exist (a missing key, or `null` on the way) has no entity and is
/// copied unchanged; a value of the wrong type on the path (an array where
/// the binding names a key, a string where an entity should be) is an error.
pub fn filter_response(
    input: &[u8],
    binding: &Binding,
    plan: &FieldPlan,
    out: &mut Vec<u8>,
) -> Result<FilterStats, FilterError> {
    run(input, binding, plan, Mode::Response, out).map(|(s, _)| s)
}

/// Lists the top-level fields of every entity at `binding` in a request body
/// that the caller may not write.
pub fn check_write(
    input: &[u8],
    binding: &Binding,
    plan: &FieldPlan,
) -> Result<WriteCheck, FilterError> {
    let mut sink = Vec::new();
    let (stats, mut denied) = run(input, binding, plan, Mode::CheckWrite, &mut sink)?;
    denied.sort_unstable();
    denied.dedup();
    Ok(WriteCheck {
        denied,
        entities: stats.entities,
    })
}

/// Like [`filter_response`] for a request body: drops every top-level entity
/// field the caller may not write and keeps the rest byte for byte.
pub fn strip_unwritable(
    input: &[u8],
    binding: &Binding,
    plan: &FieldPlan,
    out: &mut Vec<u8>,
) -> Result<FilterStats, FilterError> {
    run(input, binding, plan, Mode::StripWrite, out).map(|(s, _)| s)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Response,
    CheckWrite,
    StripWrite,
}

fn run(
    input: &[u8],
    binding: &Binding,
    plan: &FieldPlan,
    mode: Mode,
    out: &mut Vec<u8>,
) -> Result<(FilterStats, Vec<String>), FilterError> {
    let start_len = out.len();
    let result = run_inner(input, binding, plan, mode, out);
    if result.is_err() {
        out.truncate(start_len);
    }
    result
}

fn run_inner(
    input: &[u8],
    binding: &Binding,
    plan: &FieldPlan,
    mode: Mode,
    out: &mut Vec<u8>,
) -> Result<(FilterStats, Vec<String>), FilterError> {
    if input.is_empty() {
        return Ok((FilterStats::default(), Vec::new()));
    }
    if let Err(e) = std::str::from_utf8(input) {
        return Err(FilterError::Utf8 {
            offset: e.valid_up_to(),
        });
    }
    if mode != Mode::CheckWrite {
        out.reserve(input.len());
    }
    let mut w = Walker {
        b: input,
        pos: 0,
        copied_to: 0,
        emit: mode != Mode::CheckWrite,
        out,
        plan,
        mode,
        stamps: vec![0; plan.len()],
        guess: vec![u32::MAX; plan.len() + 1],
        prev: plan.len(),
        generation: 0,
        unknown_arena: Vec::new(),
        unknown_spans: Vec::new(),
        key_buf: Vec::new(),
        mask_buf: Vec::new(),
        denied: Vec::new(),
        denied_defined: if mode == Mode::CheckWrite {
            vec![false; plan.len()]
        } else {
            Vec::new()
        },
        denied_unknown: BTreeSet::new(),
        stats: FilterStats::default(),
        shape: None,
    };
    w.walk(binding.steps(), 0)?;
    w.skip_ws();
    if w.pos != w.b.len() {
        return Err(FilterError::TrailingData { offset: w.pos });
    }
    if let Some(e) = w.shape {
        return Err(e);
    }
    w.flush(w.b.len());
    Ok((w.stats, w.denied))
}

/// What to do with one member of an entity object.
enum Verdict {
    Keep,
    Drop,
    Mask(super::Mask),
}

struct Walker<'a, 'o, 'p> {
    b: &'a [u8],
    pos: usize,
    /// Everything of `b` before this has been written to `out` (or skipped).
    copied_to: usize,
    emit: bool,
    out: &'o mut Vec<u8>,
    plan: &'p FieldPlan,
    mode: Mode,
    /// Per defined field: the generation of the entity where it was last seen.
    stamps: Vec<u32>,
    generation: u32,
    /// Per defined field (and one more slot for the start of an entity): the
    /// field that followed it last time, `u32::MAX` if none yet.
    guess: Vec<u32>,
    /// The last defined field seen in the current entity (`plan.len()` at its start).
    prev: usize,
    /// Unescaped undefined keys of the current entity, for duplicate checks.
    unknown_arena: Vec<u8>,
    unknown_spans: Vec<(usize, usize, usize)>,
    key_buf: Vec<u8>,
    mask_buf: Vec<u8>,
    denied: Vec<String>,
    /// Per defined field: already in `denied`.
    denied_defined: Vec<bool>,
    denied_unknown: BTreeSet<String>,
    stats: FilterStats,
    /// The first value of the wrong type on the binding path.
    shape: Option<FilterError>,
}

const fn syntax(offset: usize, what: &'static str) -> FilterError {
    FilterError::Syntax { offset, what }
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Does any byte of `w` need a look: `"`, `\` or a control character?
#[inline]
pub(super) fn special_in(w: u64) -> bool {
    let quote = w ^ (LO * b'"' as u64);
    let bslash = w ^ (LO * b'\\' as u64);
    let has_zero = |v: u64| v.wrapping_sub(LO) & !v & HI;
    // Bytes below 0x20 (the high bit test of `!w` excludes bytes ≥ 0x80).
    let ctrl = w.wrapping_sub(LO * 0x20) & !w & HI;
    (has_zero(quote) | has_zero(bslash) | ctrl) != 0
}

impl<'a> Walker<'a, '_, '_> {
    #[inline]
    fn flush(&mut self, to: usize) {
        if self.emit {
            if let Some(s) = self.b.get(self.copied_to..to) {
                self.out.extend_from_slice(s);
            }
        }
        self.copied_to = to;
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    #[inline]
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    #[inline]
    fn expect(&mut self, c: u8, what: &'static str) -> Result<(), FilterError> {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.unexpected(what))
        }
    }

    fn unexpected(&self, what: &'static str) -> FilterError {
        if self.pos >= self.b.len() {
            syntax(self.pos, "unexpected end of input")
        } else {
            syntax(self.pos, what)
        }
    }

    /// At a `"`: scans the string, returns its content span and whether it has escapes.
    #[inline]
    fn scan_string(&mut self) -> Result<(usize, usize, bool), FilterError> {
        let b = self.b;
        let start = self.pos + 1;
        let mut i = start;
        let mut escaped = false;
        loop {
            while let Some(chunk) = b.get(i..i + 8) {
                let mut w = [0u8; 8];
                w.copy_from_slice(chunk);
                if special_in(u64::from_le_bytes(w)) {
                    break;
                }
                i += 8;
            }
            loop {
                match b.get(i) {
                    None => return Err(syntax(i, "unterminated string")),
                    Some(b'"') => {
                        self.pos = i + 1;
                        return Ok((start, i, escaped));
                    }
                    Some(b'\\') => {
                        escaped = true;
                        i = self.check_escape(i)?;
                        break;
                    }
                    Some(0..=0x1F) => return Err(syntax(i, "control character in string")),
                    Some(_) => i += 1,
                }
            }
        }
    }

    /// At a `\` inside a string: validates the escape, returns the index after it.
    fn check_escape(&self, i: usize) -> Result<usize, FilterError> {
        match self.b.get(i + 1) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(i + 2),
            Some(b'u') => {
                let cp = self.hex4_at(i + 2)?;
                if (0xDC00..0xE000).contains(&cp) {
                    return Err(syntax(i, "lone low surrogate in string escape"));
                }
                if (0xD800..0xDC00).contains(&cp) {
                    if self.b.get(i + 6) != Some(&b'\\') || self.b.get(i + 7) != Some(&b'u') {
                        return Err(syntax(i, "lone high surrogate in string escape"));
                    }
                    let lo = self.hex4_at(i + 8)?;
                    if !(0xDC00..0xE000).contains(&lo) {
                        return Err(syntax(i, "lone high surrogate in string escape"));
                    }
                    return Ok(i + 12);
                }
                Ok(i + 6)
            }
            None => Err(syntax(i, "unterminated string")),
            Some(_) => Err(syntax(i, "invalid escape in string")),
        }
    }

    fn hex4_at(&self, at: usize) -> Result<u32, FilterError> {
        let Some(s) = self.b.get(at..at + 4) else {
            return Err(syntax(at, "truncated unicode escape"));
        };
        let mut v = 0u32;
        for &c in s {
            match mask::hex_val(c) {
                Some(d) => v = (v << 4) | d as u32,
                None => return Err(syntax(at, "invalid unicode escape")),
            }
        }
        Ok(v)
    }

    fn scan_number(&mut self) -> Result<(), FilterError> {
        let b = self.b;
        let mut i = self.pos;
        let digits = |mut i: usize| {
            while let Some(b'0'..=b'9') = b.get(i) {
                i += 1;
            }
            i
        };
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => i = digits(i + 1),
            _ => return Err(syntax(i, "invalid number")),
        }
        if b.get(i) == Some(&b'.') {
            let j = digits(i + 1);
            if j == i + 1 {
                return Err(syntax(j, "invalid number"));
            }
            i = j;
        }
        if let Some(b'e' | b'E') = b.get(i) {
            i += 1;
            if let Some(b'+' | b'-') = b.get(i) {
                i += 1;
            }
            let j = digits(i);
            if j == i {
                return Err(syntax(j, "invalid number"));
            }
            i = j;
        }
        self.pos = i;
        Ok(())
    }

    fn literal(&mut self, lit: &'static [u8]) -> Result<(), FilterError> {
        if self.b.get(self.pos..self.pos + lit.len()) == Some(lit) {
            self.pos += lit.len();
            Ok(())
        } else {
            Err(syntax(self.pos, "invalid literal"))
        }
    }

    fn enter(&self, depth: usize) -> Result<usize, FilterError> {
        if depth >= MAX_DEPTH {
            Err(FilterError::TooDeep {
                offset: self.pos,
                limit: MAX_DEPTH,
            })
        } else {
            Ok(depth + 1)
        }
    }

    /// Validates and skips one value (after optional whitespace). `depth`:
    /// containers around it.
    fn skip_value(&mut self, depth: usize) -> Result<(), FilterError> {
        self.skip_ws();
        match self.peek() {
            Some(b'"') => self.scan_string().map(|_| ()),
            Some(b'{') => {
                let depth = self.enter(depth)?;
                self.pos += 1;
                self.skip_ws();
                if self.peek() == Some(b'}') {
                    self.pos += 1;
                    return Ok(());
                }
                loop {
                    self.skip_ws();
                    if self.peek() != Some(b'"') {
                        return Err(self.unexpected("expected a key"));
                    }
                    self.scan_string()?;
                    self.expect(b':', "expected `:`")?;
                    self.skip_value(depth)?;
                    self.skip_ws();
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b'}') => {
                            self.pos += 1;
                            return Ok(());
                        }
                        _ => return Err(self.unexpected("expected `,` or `}`")),
                    }
                }
            }
            Some(b'[') => {
                let depth = self.enter(depth)?;
                self.pos += 1;
                self.skip_ws();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                    return Ok(());
                }
                loop {
                    self.skip_value(depth)?;
                    self.skip_ws();
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b']') => {
                            self.pos += 1;
                            return Ok(());
                        }
                        _ => return Err(self.unexpected("expected `,` or `]`")),
                    }
                }
            }
            Some(b'-' | b'0'..=b'9') => self.scan_number(),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            _ => Err(self.unexpected("expected a value")),
        }
    }

    /// Follows `steps` from the value at the cursor; `depth`: containers around it.
    fn walk(&mut self, steps: &[Step], depth: usize) -> Result<(), FilterError> {
        self.skip_ws();
        let c = self.peek();
        if c == Some(b'n') {
            // `null` on the path: no entity here.
            return self.literal(b"null");
        }
        match (steps.split_first(), c) {
            (None, Some(b'{')) => self.entity(depth),
            (Some((Step::Key(k), rest)), Some(b'{')) => self.path_object(k.as_bytes(), rest, depth),
            (Some((Step::Each, rest)), Some(b'[')) => self.path_array(rest, depth),
            (_, None) => Err(self.unexpected("expected a value")),
            (steps, Some(_)) => {
                // Fails the pass, but only once the whole body is validated:
                // a malformed body is reported as malformed.
                let at = self.pos;
                self.shape.get_or_insert(FilterError::Shape {
                    offset: at,
                    expected: match steps {
                        None => "an entity object",
                        Some((Step::Key(_), _)) => "an object",
                        Some((Step::Each, _)) => "an array",
                    },
                });
                self.skip_value(depth)
            }
        }
    }

    fn path_object(&mut self, key: &[u8], rest: &[Step], depth: usize) -> Result<(), FilterError> {
        let depth = self.enter(depth)?;
        self.pos += 1;
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        let mut seen = false;
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Err(self.unexpected("expected a key"));
            }
            let at = self.pos;
            let (ks, ke, esc) = self.scan_string()?;
            let matches = self.key_bytes(ks, ke, esc) == key;
            self.expect(b':', "expected `:`")?;
            if matches {
                if seen {
                    return Err(FilterError::DuplicateKey {
                        offset: at,
                        key: String::from_utf8_lossy(key).into_owned(),
                    });
                }
                seen = true;
                self.walk(rest, depth)?;
            } else {
                self.skip_value(depth)?;
            }
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.unexpected("expected `,` or `}`")),
            }
        }
    }

    fn path_array(&mut self, rest: &[Step], depth: usize) -> Result<(), FilterError> {
        let depth = self.enter(depth)?;
        self.pos += 1;
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.walk(rest, depth)?;
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.unexpected("expected `,` or `]`")),
            }
        }
    }

    /// The unescaped bytes of a key (borrowed from the body when it has no escapes).
    #[inline]
    fn key_bytes(&mut self, ks: usize, ke: usize, escaped: bool) -> &[u8] {
        if escaped {
            self.key_buf.clear();
            mask::unescape_into(self.b.get(ks..ke).unwrap_or_default(), &mut self.key_buf);
            &self.key_buf
        } else {
            self.b.get(ks..ke).unwrap_or_default()
        }
    }

    /// Filters the entity object at the cursor.
    fn entity(&mut self, depth: usize) -> Result<(), FilterError> {
        let depth = self.enter(depth)?;
        self.stats.entities = self.stats.entities.saturating_add(1);
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.stamps.fill(0);
            self.generation = 1;
        }
        self.unknown_arena.clear();
        self.unknown_spans.clear();
        self.prev = self.plan.len();

        let brace = self.pos;
        self.pos += 1;
        // The end of the last member written (or the `{`), and whether members
        // were dropped since: then the pending bytes must be cut there.
        let mut last_end = brace + 1;
        let mut gap = false;
        let mut emitted = false;
        let mut member_start = self.pos;
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Err(self.unexpected("expected a key"));
            }
            let key_at = self.pos;
            let (ks, ke, esc) = self.scan_string()?;
            let (idx, access) = self.entity_key(key_at, ks, ke, esc)?;
            self.expect(b':', "expected `:`")?;
            self.skip_ws();
            let value_start = self.pos;
            let first = self.peek();
            // The common scalars inline; containers and literals through `skip_value`.
            match first {
                Some(b'"') => {
                    self.scan_string()?;
                }
                Some(b'-' | b'0'..=b'9') => self.scan_number()?,
                _ => self.skip_value(depth)?,
            }
            let value_end = self.pos;

            let verdict = match self.mode {
                Mode::Response => match access {
                    Access::Read | Access::Write => Verdict::Keep,
                    Access::Hidden => Verdict::Drop,
                    Access::Masked(m) => Verdict::Mask(m),
                },
                Mode::StripWrite | Mode::CheckWrite if access.writable() => Verdict::Keep,
                Mode::StripWrite => Verdict::Drop,
                Mode::CheckWrite => {
                    self.deny(idx, ks, ke, esc);
                    Verdict::Keep
                }
            };
            match verdict {
                Verdict::Drop => {
                    self.stats.removed = self.stats.removed.saturating_add(1);
                    gap = true;
                }
                Verdict::Keep | Verdict::Mask(_) => {
                    if gap {
                        self.flush(last_end);
                        if emitted && self.emit {
                            self.out.push(b',');
                        }
                        self.copied_to = member_start;
                        gap = false;
                    }
                    emitted = true;
                    last_end = value_end;
                    if let Verdict::Mask(m) = verdict {
                        self.stats.masked = self.stats.masked.saturating_add(1);
                        self.flush(value_start);
                        let b = self.b;
                        let text = b.get(value_start..value_end).unwrap_or_default();
                        let raw = match first {
                            Some(b'"') => Raw::Str {
                                content: text
                                    .get(1..text.len().saturating_sub(1))
                                    .unwrap_or_default(),
                                escaped: text.contains(&b'\\'),
                            },
                            Some(b'n') => Raw::Null,
                            Some(b'-' | b'0'..=b'9') => Raw::Number(text),
                            _ => Raw::Other(text),
                        };
                        if self.emit {
                            mask::render(
                                m,
                                raw,
                                self.plan.hash_key(),
                                self.out,
                                &mut self.mask_buf,
                            );
                        }
                        self.copied_to = value_end;
                    }
                }
            }
            self.skip_ws();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    member_start = self.pos;
                }
                Some(b'}') => {
                    if gap {
                        self.flush(last_end);
                        self.copied_to = self.pos;
                    }
                    self.pos += 1;
                    break;
                }
                _ => return Err(self.unexpected("expected `,` or `}`")),
            }
        }
        self.check_unknown_duplicates()
    }

    /// Looks a key of an entity up in the plan and records it for duplicate detection.
    #[inline]
    fn entity_key(
        &mut self,
        key_at: usize,
        ks: usize,
        ke: usize,
        esc: bool,
    ) -> Result<(Option<usize>, Access), FilterError> {
        let plan = self.plan;
        let generation = self.generation;
        let guess = self.guess.get(self.prev).copied().unwrap_or(u32::MAX);
        let key = self.key_bytes(ks, ke, esc);
        let (idx, access) = plan.lookup_guessing(key, guess);
        if let Some(i) = idx {
            if let Some(g) = self.guess.get_mut(self.prev) {
                *g = i as u32;
            }
            self.prev = i;
        }
        match idx {
            Some(i) => {
                if let Some(stamp) = self.stamps.get_mut(i) {
                    if *stamp == generation {
                        return Err(FilterError::DuplicateKey {
                            offset: key_at,
                            key: String::from_utf8_lossy(plan_name(plan, i)).into_owned(),
                        });
                    }
                    *stamp = generation;
                }
            }
            None => {
                let from = self.unknown_arena.len();
                if esc {
                    let Walker {
                        key_buf,
                        unknown_arena,
                        ..
                    } = self;
                    unknown_arena.extend_from_slice(key_buf);
                } else {
                    let raw = self.b.get(ks..ke).unwrap_or_default();
                    self.unknown_arena.extend_from_slice(raw);
                }
                self.unknown_spans
                    .push((from, self.unknown_arena.len(), key_at));
            }
        }
        Ok((idx, access))
    }

    /// Records a field the caller may not write, allocating once per distinct name.
    fn deny(&mut self, idx: Option<usize>, ks: usize, ke: usize, esc: bool) {
        if let Some(i) = idx {
            match self.denied_defined.get_mut(i) {
                Some(seen) if !*seen => *seen = true,
                _ => return,
            }
            let name = String::from_utf8_lossy(plan_name(self.plan, i)).into_owned();
            self.denied.push(name);
            return;
        }
        let Walker {
            b,
            key_buf,
            denied_unknown,
            denied,
            ..
        } = self;
        let raw = b.get(ks..ke).unwrap_or_default();
        let bytes: &[u8] = if esc {
            key_buf.clear();
            mask::unescape_into(raw, key_buf);
            key_buf
        } else {
            raw
        };
        let key = String::from_utf8_lossy(bytes);
        if !denied_unknown.contains(key.as_ref()) {
            let key = key.into_owned();
            denied_unknown.insert(key.clone());
            denied.push(key);
        }
    }

    fn check_unknown_duplicates(&mut self) -> Result<(), FilterError> {
        let arena = &self.unknown_arena;
        let key = |s: &(usize, usize, usize)| arena.get(s.0..s.1).unwrap_or_default();
        let spans = &mut self.unknown_spans;
        if spans.len() < 2 {
            return Ok(());
        }
        let dup = if spans.len() <= 16 {
            spans.iter().enumerate().find_map(|(i, a)| {
                spans
                    .get(i + 1..)
                    .unwrap_or_default()
                    .iter()
                    .find(|b| key(a) == key(b))
                    .copied()
            })
        } else {
            spans.sort_unstable_by(|a, b| key(a).cmp(key(b)));
            spans
                .windows(2)
                .find(|w| key(&w[0]) == key(&w[1]))
                .map(|w| w[1])
        };
        match dup {
            Some(s) => Err(FilterError::DuplicateKey {
                offset: s.2,
                key: String::from_utf8_lossy(key(&s)).into_owned(),
            }),
            None => Ok(()),
        }
    }
}

fn plan_name(plan: &FieldPlan, i: usize) -> &[u8] {
    plan.table.name(i)
}
