//! The streamed field filter: the same filter as `filter.rs` (same output
//! byte for byte, same errors up to their order), fed the body in chunks of
//! any size and holding a bounded amount of state whatever the body's size.
//!
//! A push tokenizer: [`StreamFilter::push`] takes the next chunk and appends
//! whatever output is final to `out`; [`StreamFilter::finish`] checks that
//! the body ended where a JSON text may end. Bytes are copied in runs: the
//! tokenizer only records where the current run started and sends the run to
//! one of four places (the output, the pending separator of an entity member
//! whose fate is not known yet, a masked value, nowhere) when the place
//! changes or the chunk ends.
//!
//! What is held between chunks: the container stack (at most [`MAX_DEPTH`]
//! frames), the entity's member separator and key (until the key decides
//! whether the member stays), a masked value (to render its mask), the
//! current key, and the undefined keys of the current entity (duplicate
//! detection). Each is capped at [`MAX_HELD`] bytes; past that the body is
//! refused (`too_long`), which the buffered filter would have accepted.
//!
//! Differences from the buffered filter, all on bodies it refuses too: a
//! value of the wrong type on the binding path fails at once
//! (`unexpected_shape`) even if the body is malformed further on, and output
//! already appended stays appended (the caller aborts the response).
//!
//! No crate does this: `struson` and `actson` tokenize, but writing their
//! events back out re-serializes (whitespace, number text and escapes
//! change), and the filter's contract is byte-for-byte output.
//!
//! Over 700 lines because the tokenizer, the entity writer and the path
//! walker share one state machine.

use super::filter::{FilterError, FilterStats, MAX_DEPTH};
use super::mask::{self, Raw};
use super::path::{Binding, Step};
use super::{Access, FieldPlan, Mask};

/// The most bytes held for one purpose (a key with the whitespace around
/// it, one masked value, the undefined keys of one entity).
pub const MAX_HELD: usize = 1 << 20;

/// Where the bytes of the current run go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dest {
    Out,
    /// The separator and key of an entity member, until the key is known.
    Pending,
    /// A masked value, rendered at its end.
    Mask,
    Discard,
}

/// A container being read, and what it is to the binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frame {
    SkipObj,
    SkipArr,
    /// An object on the binding path; `step` is the `Step::Key` it answers.
    PathObj {
        step: usize,
        seen: bool,
    },
    /// An array on the binding path (`Step::Each` at `step`).
    PathArr {
        step: usize,
    },
    Entity,
}

impl Frame {
    fn is_obj(self) -> bool {
        matches!(self, Frame::SkipObj | Frame::PathObj { .. } | Frame::Entity)
    }
}

/// What the next value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// To be walked with the binding steps from this index.
    Path(usize),
    /// Validated and copied (or dropped) as it is.
    Skip,
    /// An entity member value to be masked.
    Mask(Mask),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Num {
    Minus,
    Zero,
    Int,
    Dot,
    Frac,
    E,
    ESign,
    Exp,
}

impl Num {
    fn may_end(self) -> bool {
        matches!(self, Num::Zero | Num::Int | Num::Frac | Num::Exp)
    }
}

/// Inside a string: where in an escape the tokenizer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Esc {
    None,
    /// After `\`.
    Start,
    /// `n` hex digits of a `\u` read so far, value `v`; `low`: the second half
    /// of a surrogate pair.
    Hex {
        n: u8,
        v: u32,
        low: bool,
    },
    /// After a high surrogate: `\` of the low one expected.
    LowSlash,
    /// After a high surrogate's `\`: `u` expected.
    LowU,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// A value is expected (whitespace first); `StreamFilter::role` says what it is.
    Value,
    /// Inside a string; `key`: an object key.
    Str {
        key: bool,
        esc: Esc,
    },
    Num(Num),
    Lit {
        lit: &'static [u8],
        n: u8,
    },
    /// After `{`: a key or `}`.
    KeyOrEnd,
    /// After `,` in an object: a key.
    Key,
    Colon,
    /// After `[`: a value or `]`.
    ElemOrEnd,
    /// After a value in a container: `,` or the closing bracket.
    AfterValue,
    /// After the root value: whitespace only.
    AfterRoot,
}

/// The entity being filtered (entities never nest: a member of an entity is
/// never walked).
struct Entity {
    /// Members were dropped since the last member written.
    gap: bool,
    /// A member was written.
    emitted: bool,
    pending: Vec<u8>,
    /// Whether the current member is masked.
    masking: Option<Mask>,
    /// Per defined field: the generation of the entity where it was last seen.
    stamps: Vec<u32>,
    generation: u32,
    /// As in the buffered filter: the defined field that followed each one last time.
    guess: Vec<u32>,
    prev: usize,
    unknown_arena: Vec<u8>,
    /// (start, end, offset of the key) in `unknown_arena`.
    unknown_spans: Vec<(usize, usize, usize)>,
}

/// The streamed response filter for one body. See the module docs.
pub struct StreamFilter<'p> {
    steps: &'p [Step],
    plan: &'p FieldPlan,
    stack: Vec<Frame>,
    state: State,
    role: Role,
    dest: Dest,
    /// Bytes of the body before the current chunk (error offsets).
    consumed: usize,
    /// An incomplete UTF-8 sequence at the end of the last chunk.
    utf8: [u8; 4],
    utf8_len: usize,
    /// Copying the current key's raw content to `key`.
    capture: bool,
    key: Vec<u8>,
    key_escaped: bool,
    /// The offset of the current key's `"`.
    key_at: usize,
    unescaped: Vec<u8>,
    ent: Entity,
    mask_buf: Vec<u8>,
    scratch: Vec<u8>,
    stats: FilterStats,
    failed: Option<FilterError>,
}

const fn syntax(offset: usize, what: &'static str) -> FilterError {
    FilterError::Syntax { offset, what }
}

/// The index of the first `"`, `\` or control character at or after `i`.
#[inline]
fn plain_end(b: &[u8], mut i: usize) -> usize {
    while let Some(w) = b.get(i..i + 8) {
        let mut a = [0u8; 8];
        a.copy_from_slice(w);
        if super::filter::special_in(u64::from_le_bytes(a)) {
            break;
        }
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if c == b'"' || c == b'\\' || c < 0x20 {
            return i;
        }
        i += 1;
    }
    i
}

#[inline]
fn ws_end(b: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = b.get(i) {
        i += 1;
    }
    i
}

/// One chunk being consumed: the bytes and the start of the unsent run.
struct Cursor<'c> {
    b: &'c [u8],
    run: usize,
    /// Start of the key bytes not yet copied to `StreamFilter::key`.
    cap: usize,
}

impl<'p> StreamFilter<'p> {
    pub fn new(binding: &'p Binding, plan: &'p FieldPlan) -> StreamFilter<'p> {
        StreamFilter {
            steps: binding.steps(),
            plan,
            stack: Vec::new(),
            state: State::Value,
            role: Role::Path(0),
            dest: Dest::Out,
            consumed: 0,
            utf8: [0; 4],
            utf8_len: 0,
            capture: false,
            key: Vec::new(),
            key_escaped: false,
            key_at: 0,
            unescaped: Vec::new(),
            ent: Entity {
                gap: false,
                emitted: false,
                pending: Vec::new(),
                masking: None,
                stamps: vec![0; plan.len()],
                generation: 0,
                guess: vec![u32::MAX; plan.len() + 1],
                prev: plan.len(),
                unknown_arena: Vec::new(),
                unknown_spans: Vec::new(),
            },
            mask_buf: Vec::new(),
            scratch: Vec::new(),
            stats: FilterStats::default(),
            failed: None,
        }
    }

    /// Bytes of memory the filter holds between chunks (its buffers'
    /// capacities), for tests of its bound.
    pub fn held(&self) -> usize {
        self.stack.capacity() * std::mem::size_of::<Frame>()
            + self.key.capacity()
            + self.unescaped.capacity()
            + self.ent.pending.capacity()
            + self.ent.unknown_arena.capacity()
            + self.ent.unknown_spans.capacity() * std::mem::size_of::<(usize, usize, usize)>()
            + self.mask_buf.capacity()
            + self.scratch.capacity()
    }

    /// The counts so far (final after [`StreamFilter::finish`]).
    pub fn stats(&self) -> FilterStats {
        self.stats
    }

    /// Filters the next chunk of the body, appending the output that is final
    /// to `out`. After an error every later call fails with it.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), FilterError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let r = self.push_inner(chunk, out);
        self.consumed += chunk.len();
        if let Err(e) = &r {
            self.failed = Some(e.clone());
        }
        r
    }

    /// Ends the body: fails unless it ended where a JSON text may end. An
    /// empty body (no bytes at all) is passed as is.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<FilterStats, FilterError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let r = self.finish_inner(out);
        if let Err(e) = &r {
            self.failed = Some(e.clone());
        }
        r
    }

    fn finish_inner(&mut self, out: &mut Vec<u8>) -> Result<FilterStats, FilterError> {
        let at = self.consumed;
        if at == 0 {
            return Ok(self.stats);
        }
        if self.utf8_len > 0 {
            return Err(FilterError::Utf8 {
                offset: at - self.utf8_len,
            });
        }
        let mut c = Cursor {
            b: &[],
            run: 0,
            cap: 0,
        };
        if let State::Num(n) = self.state {
            if !n.may_end() {
                return Err(syntax(at, "invalid number"));
            }
            self.value_done(&mut c, 0, out)?;
        }
        if self.state != State::AfterRoot {
            return Err(syntax(at, "unexpected end of input"));
        }
        Ok(self.stats)
    }

    fn check_utf8(&mut self, chunk: &[u8]) -> Result<usize, FilterError> {
        let mut from = 0;
        if self.utf8_len > 0 {
            let want = match self.utf8.first() {
                Some(0xC0..=0xDF) => 2,
                Some(0xE0..=0xEF) => 3,
                _ => 4,
            };
            while self.utf8_len < want {
                let Some(&c) = chunk.get(from) else {
                    return Ok(from);
                };
                if let Some(slot) = self.utf8.get_mut(self.utf8_len) {
                    *slot = c;
                }
                self.utf8_len += 1;
                from += 1;
            }
            let seq = self.utf8.get(..want).unwrap_or_default();
            if std::str::from_utf8(seq).is_err() {
                return Err(FilterError::Utf8 {
                    offset: self.consumed - (want - from),
                });
            }
            self.utf8_len = 0;
        }
        let rest = chunk.get(from..).unwrap_or_default();
        if let Err(e) = std::str::from_utf8(rest) {
            let valid = e.valid_up_to();
            if e.error_len().is_some() {
                return Err(FilterError::Utf8 {
                    offset: self.consumed + from + valid,
                });
            }
            let tail = rest.get(valid..).unwrap_or_default();
            self.utf8_len = tail.len();
            if let Some(slot) = self.utf8.get_mut(..tail.len()) {
                slot.copy_from_slice(tail);
            }
        }
        Ok(from)
    }

    /// Sends the run up to `at` to the current place and starts a new run there for `dest`.
    #[inline]
    fn switch(
        &mut self,
        c: &mut Cursor<'_>,
        at: usize,
        dest: Dest,
        out: &mut Vec<u8>,
    ) -> Result<(), FilterError> {
        let run = c.b.get(c.run..at).unwrap_or_default();
        self.sink(run, out)?;
        c.run = at;
        self.dest = dest;
        Ok(())
    }

    #[inline]
    fn sink(&mut self, s: &[u8], out: &mut Vec<u8>) -> Result<(), FilterError> {
        let held = match self.dest {
            Dest::Out => {
                out.extend_from_slice(s);
                return Ok(());
            }
            Dest::Discard => return Ok(()),
            Dest::Pending => &mut self.ent.pending,
            Dest::Mask => &mut self.mask_buf,
        };
        if held.len() + s.len() > MAX_HELD {
            return Err(FilterError::TooLong {
                offset: self.consumed,
                limit: MAX_HELD,
            });
        }
        held.extend_from_slice(s);
        Ok(())
    }

    fn too_deep(&self, at: usize) -> Result<(), FilterError> {
        if self.stack.len() >= MAX_DEPTH {
            Err(FilterError::TooDeep {
                offset: at,
                limit: MAX_DEPTH,
            })
        } else {
            Ok(())
        }
    }

    fn push_inner(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), FilterError> {
        self.check_utf8(chunk)?;
        let base = self.consumed;
        let mut c = Cursor {
            b: chunk,
            run: 0,
            cap: 0,
        };
        let b = chunk;
        let mut i = 0;
        while let Some(&ch) = b.get(i) {
            match self.state {
                State::Str {
                    key,
                    esc: Esc::None,
                } => {
                    i = plain_end(b, i);
                    match b.get(i) {
                        None => break,
                        Some(b'"') => {
                            if key && self.capture {
                                self.key
                                    .extend_from_slice(b.get(c.cap..i).unwrap_or_default());
                                self.capture = false;
                            }
                            i += 1;
                            if key {
                                self.key_done(&mut c, i, out)?;
                            } else {
                                self.value_done(&mut c, i, out)?;
                            }
                        }
                        Some(b'\\') => {
                            if key {
                                self.key_escaped = true;
                            }
                            self.state = State::Str {
                                key,
                                esc: Esc::Start,
                            };
                            i += 1;
                        }
                        Some(_) => return Err(syntax(base + i, "control character in string")),
                    }
                }
                State::Str { key, esc } => {
                    let next = match (esc, ch) {
                        (Esc::Start, b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                            Esc::None
                        }
                        (Esc::Start, b'u') => Esc::Hex {
                            n: 0,
                            v: 0,
                            low: false,
                        },
                        (Esc::Start, _) => {
                            return Err(syntax(base + i, "invalid escape in string"))
                        }
                        (Esc::Hex { n, v, low }, _) => {
                            let Some(d) = mask::hex_val(ch) else {
                                return Err(syntax(base + i, "invalid unicode escape"));
                            };
                            let v = (v << 4) | d as u32;
                            if n < 3 {
                                Esc::Hex { n: n + 1, v, low }
                            } else if low {
                                if !(0xDC00..0xE000).contains(&v) {
                                    return Err(syntax(
                                        base + i,
                                        "lone high surrogate in string escape",
                                    ));
                                }
                                Esc::None
                            } else if (0xDC00..0xE000).contains(&v) {
                                return Err(syntax(
                                    base + i,
                                    "lone low surrogate in string escape",
                                ));
                            } else if (0xD800..0xDC00).contains(&v) {
                                Esc::LowSlash
                            } else {
                                Esc::None
                            }
                        }
                        (Esc::LowSlash, b'\\') => Esc::LowU,
                        (Esc::LowU, b'u') => Esc::Hex {
                            n: 0,
                            v: 0,
                            low: true,
                        },
                        (Esc::LowSlash | Esc::LowU, _) => {
                            return Err(syntax(base + i, "lone high surrogate in string escape"))
                        }
                        (Esc::None, _) => Esc::None,
                    };
                    self.state = State::Str { key, esc: next };
                    i += 1;
                }
                State::Num(n) => {
                    let next = match (n, ch) {
                        (Num::Minus, b'0') => Some(Num::Zero),
                        (Num::Minus, b'1'..=b'9') => Some(Num::Int),
                        (Num::Int, b'0'..=b'9') => Some(Num::Int),
                        (Num::Zero | Num::Int, b'.') => Some(Num::Dot),
                        (Num::Dot | Num::Frac, b'0'..=b'9') => Some(Num::Frac),
                        (Num::Zero | Num::Int | Num::Frac, b'e' | b'E') => Some(Num::E),
                        (Num::E, b'+' | b'-') => Some(Num::ESign),
                        (Num::E | Num::ESign | Num::Exp, b'0'..=b'9') => Some(Num::Exp),
                        _ => None,
                    };
                    match next {
                        Some(Num::Int | Num::Frac | Num::Exp) if next == Some(n) => {
                            // A run of digits.
                            i += 1;
                            while let Some(b'0'..=b'9') = b.get(i) {
                                i += 1;
                            }
                        }
                        Some(s) => {
                            self.state = State::Num(s);
                            i += 1;
                        }
                        None if n.may_end() => self.value_done(&mut c, i, out)?,
                        None => return Err(syntax(base + i, "invalid number")),
                    }
                }
                State::Lit { lit, n } => {
                    if lit.get(n as usize) != Some(&ch) {
                        return Err(syntax(base + i, "invalid literal"));
                    }
                    i += 1;
                    if n as usize + 1 == lit.len() {
                        self.value_done(&mut c, i, out)?;
                    } else {
                        self.state = State::Lit { lit, n: n + 1 };
                    }
                }
                State::Value => {
                    i = ws_end(b, i);
                    if i < b.len() {
                        // Every value's first byte is consumed by its start.
                        self.value_start(&mut c, i, out)?;
                        i += 1;
                    }
                }
                State::KeyOrEnd | State::Key => {
                    i = ws_end(b, i);
                    match b.get(i) {
                        None => break,
                        Some(b'"') => {
                            self.key_start(&mut c, i);
                            i += 1;
                        }
                        Some(b'}') if self.state == State::KeyOrEnd => {
                            self.close(&mut c, i, out)?;
                            i += 1;
                        }
                        Some(_) => return Err(syntax(base + i, "expected a key")),
                    }
                }
                State::Colon => {
                    i = ws_end(b, i);
                    match b.get(i) {
                        None => break,
                        Some(b':') => {
                            self.state = State::Value;
                            i += 1;
                        }
                        Some(_) => return Err(syntax(base + i, "expected `:`")),
                    }
                }
                State::ElemOrEnd => {
                    i = ws_end(b, i);
                    match b.get(i) {
                        None => break,
                        Some(b']') => {
                            self.close(&mut c, i, out)?;
                            i += 1;
                        }
                        Some(_) => {
                            self.role = self.element_role();
                            self.state = State::Value;
                        }
                    }
                }
                State::AfterValue => {
                    i = ws_end(b, i);
                    let Some(&ch) = b.get(i) else { break };
                    let top = self.stack.last().copied();
                    match (top, ch) {
                        (Some(f), b',') => {
                            i += 1;
                            if f == Frame::Entity {
                                self.switch(&mut c, i, Dest::Pending, out)?;
                            }
                            if f.is_obj() {
                                self.state = State::Key;
                            } else {
                                self.role = self.element_role();
                                self.state = State::Value;
                            }
                        }
                        (Some(f), b'}') if f.is_obj() => {
                            self.close(&mut c, i, out)?;
                            i += 1;
                        }
                        (Some(f), b']') if !f.is_obj() => {
                            self.close(&mut c, i, out)?;
                            i += 1;
                        }
                        (Some(f), _) if f.is_obj() => {
                            return Err(syntax(base + i, "expected `,` or `}`"))
                        }
                        _ => return Err(syntax(base + i, "expected `,` or `]`")),
                    }
                }
                State::AfterRoot => {
                    i = ws_end(b, i);
                    if i < b.len() {
                        return Err(FilterError::TrailingData { offset: base + i });
                    }
                }
            }
        }
        if self.capture {
            self.key
                .extend_from_slice(b.get(c.cap..).unwrap_or_default());
            if self.key.len() > MAX_HELD {
                return Err(FilterError::TooLong {
                    offset: base + b.len(),
                    limit: MAX_HELD,
                });
            }
        }
        let end = b.len();
        let dest = self.dest;
        self.switch(&mut c, end, dest, out)
    }

    /// The role of an element of the array on top of the stack.
    fn element_role(&self) -> Role {
        match self.stack.last() {
            Some(Frame::PathArr { step }) => Role::Path(step + 1),
            _ => Role::Skip,
        }
    }

    /// At the first byte `b[i]` of a value (not whitespace). Sets the state;
    /// the caller consumes the byte unless the state is `Value` again (never).
    fn value_start(
        &mut self,
        c: &mut Cursor<'_>,
        i: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), FilterError> {
        let ch = c.b.get(i).copied().unwrap_or(0);
        let at = self.consumed + i;
        let mut role = self.role;
        if let Role::Mask(_) = role {
            self.mask_buf.clear();
            self.switch(c, i, Dest::Mask, out)?;
            role = Role::Skip;
        }
        if let Role::Path(k) = role {
            let step = self.steps.get(k);
            match (step, ch) {
                (_, b'n') => {}
                (None, b'{') => {
                    self.too_deep(at)?;
                    self.stack.push(Frame::Entity);
                    self.entity_open();
                    // The `{` is output; what follows waits for the first key.
                    self.switch(c, i + 1, Dest::Pending, out)?;
                    self.state = State::KeyOrEnd;
                    return Ok(());
                }
                (Some(Step::Key(_)), b'{') => {
                    self.too_deep(at)?;
                    self.stack.push(Frame::PathObj {
                        step: k,
                        seen: false,
                    });
                    self.state = State::KeyOrEnd;
                    return Ok(());
                }
                (Some(Step::Each), b'[') => {
                    self.too_deep(at)?;
                    self.stack.push(Frame::PathArr { step: k });
                    self.state = State::ElemOrEnd;
                    return Ok(());
                }
                (_, b'"' | b'{' | b'[' | b'-' | b'0'..=b'9' | b't' | b'f') => {
                    return Err(FilterError::Shape {
                        offset: at,
                        expected: match step {
                            None => "an entity object",
                            Some(Step::Key(_)) => "an object",
                            Some(Step::Each) => "an array",
                        },
                    })
                }
                _ => return Err(syntax(at, "expected a value")),
            }
        }
        self.state = match ch {
            b'"' => State::Str {
                key: false,
                esc: Esc::None,
            },
            b'{' => {
                self.too_deep(at)?;
                self.stack.push(Frame::SkipObj);
                State::KeyOrEnd
            }
            b'[' => {
                self.too_deep(at)?;
                self.stack.push(Frame::SkipArr);
                State::ElemOrEnd
            }
            b'-' => State::Num(Num::Minus),
            b'0' => State::Num(Num::Zero),
            b'1'..=b'9' => State::Num(Num::Int),
            b't' => State::Lit { lit: b"true", n: 1 },
            b'f' => State::Lit {
                lit: b"false",
                n: 1,
            },
            b'n' => State::Lit { lit: b"null", n: 1 },
            _ => return Err(syntax(at, "expected a value")),
        };
        Ok(())
    }

    fn entity_open(&mut self) {
        let e = &mut self.ent;
        self.stats.entities = self.stats.entities.saturating_add(1);
        e.generation = e.generation.wrapping_add(1);
        if e.generation == 0 {
            e.stamps.fill(0);
            e.generation = 1;
        }
        e.unknown_arena.clear();
        e.unknown_spans.clear();
        e.prev = self.plan.len();
        e.gap = false;
        e.emitted = false;
        e.pending.clear();
        e.masking = None;
    }

    fn key_start(&mut self, c: &mut Cursor<'_>, i: usize) {
        self.key_at = self.consumed + i;
        self.key.clear();
        self.key_escaped = false;
        self.capture = !matches!(self.stack.last(), Some(Frame::SkipObj) | None);
        c.cap = i + 1;
        self.state = State::Str {
            key: true,
            esc: Esc::None,
        };
    }

    /// The current key, unescaped.
    fn key_bytes(&mut self) -> &[u8] {
        if self.key_escaped {
            self.unescaped.clear();
            mask::unescape_into(&self.key, &mut self.unescaped);
            &self.unescaped
        } else {
            &self.key
        }
    }

    /// After the closing `"` of a key (`i`: the index after it).
    fn key_done(
        &mut self,
        c: &mut Cursor<'_>,
        i: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), FilterError> {
        self.state = State::Colon;
        match self.stack.last().copied() {
            Some(Frame::Entity) => {
                self.switch(c, i, Dest::Out, out)?;
                let access = self.entity_key()?;
                let e = &mut self.ent;
                match access {
                    Access::Hidden => {
                        self.stats.removed = self.stats.removed.saturating_add(1);
                        e.pending.clear();
                        e.gap = true;
                        e.masking = None;
                        self.dest = Dest::Discard;
                        self.role = Role::Skip;
                    }
                    Access::Read | Access::Write | Access::Masked(_) => {
                        if e.gap && e.emitted {
                            out.push(b',');
                        }
                        out.extend_from_slice(&e.pending);
                        e.pending.clear();
                        e.gap = false;
                        e.emitted = true;
                        self.role = Role::Skip;
                        e.masking = None;
                        if let Access::Masked(m) = access {
                            self.stats.masked = self.stats.masked.saturating_add(1);
                            e.masking = Some(m);
                            self.role = Role::Mask(m);
                        }
                    }
                }
            }
            Some(Frame::PathObj { step, seen }) => {
                let steps = self.steps;
                let want = match steps.get(step) {
                    Some(Step::Key(k)) => k.as_bytes(),
                    _ => &[],
                };
                let key_at = self.key_at;
                let matches = self.key_bytes() == want;
                self.role = Role::Skip;
                if matches {
                    if seen {
                        return Err(FilterError::DuplicateKey {
                            offset: key_at,
                            key: String::from_utf8_lossy(want).into_owned(),
                        });
                    }
                    if let Some(f) = self.stack.last_mut() {
                        *f = Frame::PathObj { step, seen: true };
                    }
                    self.role = Role::Path(step + 1);
                }
            }
            _ => self.role = Role::Skip,
        }
        Ok(())
    }

    /// Looks the current entity key up and records it for duplicate detection.
    fn entity_key(&mut self) -> Result<Access, FilterError> {
        let plan = self.plan;
        let key_at = self.key_at;
        let guess = self
            .ent
            .guess
            .get(self.ent.prev)
            .copied()
            .unwrap_or(u32::MAX);
        let escaped = self.key_escaped;
        let key: &[u8] = if escaped {
            self.unescaped.clear();
            mask::unescape_into(&self.key, &mut self.unescaped);
            &self.unescaped
        } else {
            &self.key
        };
        let (idx, access) = plan.lookup_guessing(key, guess);
        let e = &mut self.ent;
        match idx {
            Some(i) => {
                if let Some(g) = e.guess.get_mut(e.prev) {
                    *g = i as u32;
                }
                e.prev = i;
                if let Some(stamp) = e.stamps.get_mut(i) {
                    if *stamp == e.generation {
                        return Err(FilterError::DuplicateKey {
                            offset: key_at,
                            key: String::from_utf8_lossy(plan.table.name(i)).into_owned(),
                        });
                    }
                    *stamp = e.generation;
                }
            }
            None => {
                if e.unknown_arena.len() + key.len() > MAX_HELD {
                    return Err(FilterError::TooLong {
                        offset: key_at,
                        limit: MAX_HELD,
                    });
                }
                let from = e.unknown_arena.len();
                e.unknown_arena.extend_from_slice(key);
                e.unknown_spans.push((from, e.unknown_arena.len(), key_at));
            }
        }
        Ok(access)
    }

    /// A value ended just before `i`.
    fn value_done(
        &mut self,
        c: &mut Cursor<'_>,
        i: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), FilterError> {
        match self.stack.last().copied() {
            None => {
                self.state = State::AfterRoot;
                return Ok(());
            }
            Some(Frame::Entity) => {
                if let Some(m) = self.ent.masking.take() {
                    self.switch(c, i, Dest::Out, out)?;
                    let text = &self.mask_buf;
                    let raw = match text.first() {
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
                    mask::render(m, raw, self.plan.hash_key(), out, &mut self.scratch);
                }
                // The separator after a member waits for the next key (or `}`).
                let next = if self.ent.gap {
                    Dest::Discard
                } else {
                    Dest::Pending
                };
                self.switch(c, i, next, out)?;
            }
            Some(_) => {}
        }
        self.state = State::AfterValue;
        Ok(())
    }

    /// At the closing bracket `b[i]` of the container on top of the stack.
    fn close(
        &mut self,
        c: &mut Cursor<'_>,
        i: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), FilterError> {
        let top = self.stack.pop();
        if top == Some(Frame::Entity) {
            self.switch(c, i, Dest::Out, out)?;
            if !self.ent.gap {
                out.extend_from_slice(&self.ent.pending);
            }
            self.ent.pending.clear();
            self.check_unknown_duplicates()?;
        }
        self.value_done(c, i + 1, out)
    }

    fn check_unknown_duplicates(&mut self) -> Result<(), FilterError> {
        let arena = &self.ent.unknown_arena;
        let key = |s: &(usize, usize, usize)| arena.get(s.0..s.1).unwrap_or_default();
        let spans = &mut self.ent.unknown_spans;
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

/// Filters `input` as chunks of `chunk` bytes (tests and benches): the
/// streamed filter's answer for a whole body.
pub fn filter_chunked(
    input: &[u8],
    chunk: usize,
    binding: &Binding,
    plan: &FieldPlan,
    out: &mut Vec<u8>,
) -> Result<FilterStats, FilterError> {
    let mut f = StreamFilter::new(binding, plan);
    for c in input.chunks(chunk.max(1)) {
        f.push(c, out)?;
    }
    f.finish(out)
}
