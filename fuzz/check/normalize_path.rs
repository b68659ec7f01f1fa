// The fuzz property check of request path normalization
// (`sentinel::request::normalize_path`), shared by the cargo-fuzz target
// (fuzz/fuzz_targets/normalize_path.rs) and the corpus replay in
// `cargo test` (tests/fuzz_corpus.rs), through `include!`.
//
// Input: the raw request path (lossy UTF-8). Checks: no panic; a path is
// refused as not absolute exactly when it does not start with `/`; an
// accepted path is the input with its escapes decoded (checked by a decoder
// of its own), no escape hides a separator, control character or `%`, it
// holds no `%`, `\`, control character, empty or dot segment, and it
// normalizes to itself (so a route matcher and an upstream that decode once
// more see the same path); a path this decoder finds clean is accepted.
use sentinel::request::{normalize_path, PathError};

/// Percent-decodes `raw`; `None` on a bad escape or a non-UTF-8 result.
/// The flag tells whether an escape decoded to a separator (`/`, `\`), a
/// control character or `%`: bytes a path may only carry unescaped.
fn decode(raw: &str) -> Option<(String, bool)> {
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut hidden = false;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            if !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
                return None;
            }
            let c = u8::from_str_radix(hex, 16).ok()?;
            hidden |= matches!(c, b'/' | b'\\' | b'%' | 0x7f) || c < 0x20;
            out.push(c);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok().map(|s| (s, hidden))
}

/// Whether a decoded path is one the gateway may route: absolute, no
/// backslash, control character or `%`, no empty or dot segment (one
/// trailing `/` allowed).
fn clean(p: &str) -> bool {
    let Some(inner) = p.strip_prefix('/') else {
        return false;
    };
    let inner = inner.strip_suffix('/').unwrap_or(inner);
    !p.bytes()
        .any(|b| b == b'\\' || b == b'%' || b < 0x20 || b == 0x7f)
        && (inner.is_empty()
            || inner
                .split('/')
                .all(|s| !s.is_empty() && s != "." && s != ".."))
}

/// Runs one fuzz input; panics on a violated property. Returns whether the
/// path was accepted.
pub fn check(data: &[u8]) -> bool {
    let raw = String::from_utf8_lossy(data);
    let result = normalize_path(&raw);
    assert_eq!(
        result == Err(PathError::NotAbsolute),
        !raw.starts_with('/'),
        "{raw:?}: {result:?}"
    );
    let decoded = decode(&raw);
    match result {
        Ok(p) => {
            let (d, hidden) = decoded.unwrap_or_else(|| panic!("{raw:?} has a bad escape"));
            assert_eq!(d, p, "{raw:?} decoded wrongly");
            assert!(!hidden, "{raw:?} hides a separator in an escape");
            assert!(clean(&p), "{raw:?} normalized to {p:?}");
            assert_eq!(normalize_path(&p).as_deref(), Ok(&*p), "not idempotent");
            if !raw.contains('%') {
                assert_eq!(p, raw, "a path without escapes is kept as sent");
            }
            true
        }
        Err(e) => {
            if let Some((d, hidden)) = decoded {
                assert!(hidden || !clean(&d), "{raw:?} refused: {e:?}");
            }
            false
        }
    }
}
