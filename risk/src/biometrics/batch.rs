//! The telemetry batch a page posts (SPEC "Behavioural telemetry") and its
//! validation: every problem of a batch at once, with its location.
//!
//! The wire shape is checked from a parsed `serde_json::Value` rather than by
//! serde's derive, because a derive stops at the first wrong type and the
//! endpoint answers *every* problem (`422 VALIDATION_ERROR`, details per
//! field). A batch with any problem yields no [`Batch`]: nothing of it is
//! stored and no score moves.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;

/// At most this many events of each kind per batch (SPEC).
pub const MAX_EVENTS: usize = 1_000;
/// Coordinates are integer screen pixels in `[-MAX_COORD, MAX_COORD]` (SPEC).
pub const MAX_COORD: i32 = 65_535;
/// Timestamps are milliseconds since the page's session start; anything past
/// this (about 115 days) is a hostile or broken clock, not a session.
pub const MAX_TIME_MS: f64 = 1e10;
/// Longest `session_id`, `field` and `key` id.
pub const MAX_ID_LEN: usize = 64;
/// At most this many problems are listed; one more entry says how many were left out.
pub const MAX_PROBLEMS: usize = 100;

/// The mouse button of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Button {
    None,
    Left,
    Right,
    Middle,
    Scroll,
}

/// What the mouse did (`up`/`down` are scroll directions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MouseState {
    Move,
    Drag,
    Pressed,
    Released,
    Up,
    Down,
}

/// One mouse event: `t` in ms since the page's session start, screen pixels.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MouseEvent {
    pub t: f64,
    pub x: i32,
    pub y: i32,
    pub button: Button,
    pub state: MouseState,
}

/// One key press: opaque field and key ids (never the character), down/up in ms.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEvent {
    pub field: String,
    pub key: String,
    pub down: f64,
    pub up: f64,
}

/// A validated batch. Its `Serialize` form is exactly the SPEC request body,
/// so replay tools and tests build bodies from it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    pub session_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    #[serde(default)]
    pub mouse: Vec<MouseEvent>,
    #[serde(default)]
    pub keys: Vec<KeyEvent>,
}

/// One thing wrong with a batch: where (`mouse[3].t`) and what.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub field: String,
    pub message: String,
}

/// The last timestamps a session accepted, which the next batch may not go
/// back behind (SPEC: non-decreasing across every batch of a session).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Clock {
    /// Last mouse `t` accepted.
    pub mouse_t: Option<f64>,
    /// Last key `down` accepted.
    pub key_down: Option<f64>,
}

impl Clock {
    /// The clock after `batch` (already validated against `self`) is accepted.
    pub fn after(self, batch: &Batch) -> Clock {
        Clock {
            mouse_t: batch.mouse.last().map(|e| e.t).or(self.mouse_t),
            key_down: batch.keys.last().map(|k| k.down).or(self.key_down),
        }
    }
}

/// Collects problems, at most [`MAX_PROBLEMS`] of them plus a count of the rest.
#[derive(Default)]
struct Problems {
    list: Vec<Problem>,
    left_out: usize,
}

impl Problems {
    fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        if self.list.len() < MAX_PROBLEMS {
            self.list.push(Problem {
                field: field.into(),
                message: message.into(),
            });
        } else {
            self.left_out += 1;
        }
    }

    fn finish(mut self) -> Vec<Problem> {
        if self.left_out > 0 {
            self.list.push(Problem {
                field: String::new(),
                message: format!("{} more problems not listed", self.left_out),
            });
        }
        self.list
    }
}

/// `1..=64` characters of `[A-Za-z0-9._-]` (SPEC for `session_id`).
pub fn is_session_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Field and key ids are opaque: `1..=64` visible ASCII characters (so a
/// page may use base64 or hex digests, never a space or control character).
fn is_opaque_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_ID_LEN && s.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// Checks a parsed request body against the SPEC and against the session's
/// clock, and lowers it into a [`Batch`]. Returns every problem found.
pub fn validate(body: &Value, clock: &Clock) -> Result<Batch, Vec<Problem>> {
    let mut problems = Problems::default();
    let Some(obj) = body.as_object() else {
        problems.push("", "the body must be a JSON object");
        return Err(problems.finish());
    };
    for key in obj.keys() {
        if !matches!(key.as_str(), "session_id" | "seq" | "mouse" | "keys") {
            problems.push(key.clone(), format!("unknown field `{key}`"));
        }
    }
    let session_id = match obj.get("session_id") {
        Some(Value::String(s)) if is_session_id(s) => s.clone(),
        Some(Value::String(_)) => {
            problems.push(
                "session_id",
                "must be 1 to 64 characters of A-Z a-z 0-9 . _ -",
            );
            String::new()
        }
        Some(_) => {
            problems.push("session_id", "must be a string");
            String::new()
        }
        None => {
            problems.push("session_id", "is required");
            String::new()
        }
    };
    let seq = match obj.get("seq") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(n) => Some(n),
            None => {
                problems.push("seq", "must be a non-negative integer");
                None
            }
        },
    };
    let mouse = events(obj, "mouse", &mut problems, mouse_event);
    let keys = events(obj, "keys", &mut problems, key_event);

    // Order: non-decreasing within the batch and after the session's clock.
    let mut last = clock.mouse_t;
    for (i, e) in mouse.iter().enumerate() {
        if let Some(l) = last {
            if e.t < l {
                problems.push(
                    format!("mouse[{i}].t"),
                    format!("goes back in time ({} after {l})", e.t),
                );
            }
        }
        last = Some(last.map_or(e.t, |l| l.max(e.t)));
    }
    let mut last = clock.key_down;
    for (i, k) in keys.iter().enumerate() {
        if let Some(l) = last {
            if k.down < l {
                problems.push(
                    format!("keys[{i}].down"),
                    format!("goes back in time ({} after {l})", k.down),
                );
            }
        }
        last = Some(last.map_or(k.down, |l| l.max(k.down)));
    }
    let problems = problems.finish();
    if problems.is_empty() {
        Ok(Batch {
            session_id,
            seq,
            mouse,
            keys,
        })
    } else {
        Err(problems)
    }
}

/// Lowers the array `name` with `one`, reporting a missing array as empty.
fn events<T>(
    obj: &Map<String, Value>,
    name: &str,
    problems: &mut Problems,
    one: fn(&Value, At<'_>, &mut Problems) -> Option<T>,
) -> Vec<T> {
    match obj.get(name) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            if items.len() > MAX_EVENTS {
                problems.push(
                    name,
                    format!("at most {MAX_EVENTS} events per batch, got {}", items.len()),
                );
                return Vec::new();
            }
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                if let Some(e) = one(
                    item,
                    At {
                        array: name,
                        index: i,
                    },
                    problems,
                ) {
                    out.push(e);
                }
            }
            out
        }
        Some(_) => {
            problems.push(name, "must be an array");
            Vec::new()
        }
    }
}

/// Where an event sits (`mouse[3]`): formatted only when a problem is
/// reported, so a valid batch costs no string building (the endpoint's hot path).
#[derive(Clone, Copy)]
struct At<'a> {
    array: &'a str,
    index: usize,
}

impl fmt::Display for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.array, self.index)
    }
}

fn object<'a>(
    v: &'a Value,
    at: At<'_>,
    allowed: &[&str],
    problems: &mut Problems,
) -> Option<&'a Map<String, Value>> {
    let Some(obj) = v.as_object() else {
        problems.push(at.to_string(), "must be an object");
        return None;
    };
    for key in obj.keys() {
        if !allowed.contains(&key.as_str()) {
            problems.push(format!("{at}.{key}"), format!("unknown field `{key}`"));
        }
    }
    Some(obj)
}

/// A time in ms: a finite number in `[0, MAX_TIME_MS]`.
fn time(obj: &Map<String, Value>, at: At<'_>, name: &str, problems: &mut Problems) -> Option<f64> {
    let here = || format!("{at}.{name}");
    match obj.get(name) {
        None => problems.push(here(), "is required"),
        Some(v) => match v.as_f64() {
            Some(t) if t.is_finite() && (0.0..=MAX_TIME_MS).contains(&t) => return Some(t),
            Some(_) => problems.push(
                here(),
                format!("must be a time in ms in [0, {MAX_TIME_MS:e}]"),
            ),
            None => problems.push(here(), "must be a number"),
        },
    }
    None
}

fn coordinate(
    obj: &Map<String, Value>,
    at: At<'_>,
    name: &str,
    problems: &mut Problems,
) -> Option<i32> {
    let here = || format!("{at}.{name}");
    let bound = f64::from(MAX_COORD);
    match obj.get(name) {
        None => problems.push(here(), "is required"),
        Some(v) => match v.as_f64() {
            // INVARIANT: the range check comes first, so the cast is exact.
            Some(c) if c.is_finite() && c.fract() == 0.0 && (-bound..=bound).contains(&c) => {
                return Some(c as i32)
            }
            Some(_) => problems.push(
                here(),
                format!("must be an integer in [-{MAX_COORD}, {MAX_COORD}]"),
            ),
            None => problems.push(here(), "must be a number"),
        },
    }
    None
}

fn word<T>(
    obj: &Map<String, Value>,
    at: At<'_>,
    name: &str,
    allowed: &str,
    parse: fn(&str) -> Option<T>,
    problems: &mut Problems,
) -> Option<T> {
    let here = || format!("{at}.{name}");
    match obj.get(name) {
        None => problems.push(here(), "is required"),
        Some(Value::String(s)) => match parse(s) {
            Some(w) => return Some(w),
            None => problems.push(here(), format!("must be one of {allowed}")),
        },
        Some(_) => problems.push(here(), format!("must be one of {allowed}")),
    }
    None
}

fn button(s: &str) -> Option<Button> {
    Some(match s {
        "none" => Button::None,
        "left" => Button::Left,
        "right" => Button::Right,
        "middle" => Button::Middle,
        "scroll" => Button::Scroll,
        _ => return None,
    })
}

fn mouse_state(s: &str) -> Option<MouseState> {
    Some(match s {
        "move" => MouseState::Move,
        "drag" => MouseState::Drag,
        "pressed" => MouseState::Pressed,
        "released" => MouseState::Released,
        "up" => MouseState::Up,
        "down" => MouseState::Down,
        _ => return None,
    })
}

fn id(obj: &Map<String, Value>, at: At<'_>, name: &str, problems: &mut Problems) -> Option<String> {
    let here = || format!("{at}.{name}");
    match obj.get(name) {
        Some(Value::String(s)) if is_opaque_id(s) => return Some(s.clone()),
        Some(_) => problems.push(
            here(),
            "must be an opaque id of 1 to 64 visible ASCII characters",
        ),
        None => problems.push(here(), "is required"),
    }
    None
}

fn mouse_event(v: &Value, at: At<'_>, problems: &mut Problems) -> Option<MouseEvent> {
    let obj = object(v, at, &["t", "x", "y", "button", "state"], problems)?;
    let t = time(obj, at, "t", problems);
    let x = coordinate(obj, at, "x", problems);
    let y = coordinate(obj, at, "y", problems);
    let button = word(
        obj,
        at,
        "button",
        "none|left|right|middle|scroll",
        button,
        problems,
    );
    let state = word(
        obj,
        at,
        "state",
        "move|drag|pressed|released|up|down",
        mouse_state,
        problems,
    );
    if let (Some(b), Some(s)) = (button, state) {
        let scroll_state = matches!(s, MouseState::Up | MouseState::Down);
        if scroll_state != (b == Button::Scroll) {
            problems.push(
                format!("{at}.state"),
                "`up` and `down` go with button `scroll`, and only they do",
            );
            return None;
        }
    }
    Some(MouseEvent {
        t: t?,
        x: x?,
        y: y?,
        button: button?,
        state: state?,
    })
}

fn key_event(v: &Value, at: At<'_>, problems: &mut Problems) -> Option<KeyEvent> {
    let obj = object(v, at, &["field", "key", "down", "up"], problems)?;
    let field = id(obj, at, "field", problems);
    let key = id(obj, at, "key", problems);
    let down = time(obj, at, "down", problems);
    let up = time(obj, at, "up", problems);
    if let (Some(d), Some(u)) = (down, up) {
        if u < d {
            problems.push(
                format!("{at}.up"),
                format!("must not be before down ({u} < {d})"),
            );
            return None;
        }
    }
    Some(KeyEvent {
        field: field?,
        key: key?,
        down: down?,
        up: up?,
    })
}
