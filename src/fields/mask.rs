//! Rendering masked values.
//!
//! - `null` stays `null` under every style (there is nothing to hide).
//! - `null` style: `null`.
//! - `full`: the string `"********"` (fixed length: the length is not leaked),
//!   whatever the type of the value.
//! - `last` (keep N): strings and numbers (as their JSON text) become `"****"`
//!   followed by their last N characters; a value of N characters or fewer,
//!   N = 0, booleans, objects and arrays are masked as `full`.
//! - `hash`: the first 16 hex digits of SHA-256 over the unescaped string
//!   (or the JSON text of any other value, as sent), optionally keyed.

use super::{Mask, MaskStyle};
use sha2::{Digest, Sha256};

pub(crate) const FULL: &[u8] = b"\"********\"";
const LAST_PREFIX: &[u8] = b"****";
/// Hex digits of the digest kept by the `hash` style (64 bits).
pub(crate) const HASH_HEX: usize = 16;

/// A value about to be masked: its raw JSON text, and for strings the content
/// between the quotes and whether it holds escapes.
#[derive(Clone, Copy)]
pub(crate) enum Raw<'a> {
    Str {
        content: &'a [u8],
        escaped: bool,
    },
    Null,
    /// A number: its exact text.
    Number(&'a [u8]),
    /// `true`, `false`, an object or an array: its exact text.
    Other(&'a [u8]),
}

/// Appends the masked form of `value` to `out`; `scratch` is a reusable buffer.
pub(crate) fn render(
    mask: Mask,
    value: Raw<'_>,
    hash_key: Option<&[u8; 32]>,
    out: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
) {
    if matches!(value, Raw::Null) || mask.style == MaskStyle::Null {
        out.extend_from_slice(b"null");
        return;
    }
    match mask.style {
        MaskStyle::Null => out.extend_from_slice(b"null"),
        MaskStyle::Full => out.extend_from_slice(FULL),
        MaskStyle::Last => {
            let text: &[u8] = match value {
                Raw::Str {
                    content,
                    escaped: false,
                } => content,
                Raw::Str {
                    content,
                    escaped: true,
                } => {
                    scratch.clear();
                    unescape_into(content, scratch);
                    scratch
                }
                Raw::Number(t) => t,
                Raw::Null | Raw::Other(_) => FULL,
            };
            let keep = mask.keep as usize;
            match (matches!(value, Raw::Other(_)), tail_chars(text, keep)) {
                (false, Some(start)) if keep > 0 => {
                    out.push(b'"');
                    out.extend_from_slice(LAST_PREFIX);
                    escape_into(text.get(start..).unwrap_or_default(), out);
                    out.push(b'"');
                }
                _ => out.extend_from_slice(FULL),
            }
        }
        MaskStyle::Hash => {
            let mut h = Sha256::new();
            if let Some(k) = hash_key {
                h.update(k);
            }
            match value {
                Raw::Str {
                    content,
                    escaped: false,
                } => h.update(content),
                Raw::Str {
                    content,
                    escaped: true,
                } => {
                    scratch.clear();
                    unescape_into(content, scratch);
                    h.update(&scratch[..]);
                }
                Raw::Number(t) | Raw::Other(t) => h.update(t),
                Raw::Null => {}
            }
            let digest = h.finalize();
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push(b'"');
            for b in digest.iter().take(HASH_HEX / 2) {
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 15) as usize]);
            }
            out.push(b'"');
        }
    }
}

/// The byte offset where the last `n` characters of UTF-8 `text` start, if
/// `text` has more than `n` characters.
fn tail_chars(text: &[u8], n: usize) -> Option<usize> {
    let mut seen = 0;
    for (i, &b) in text.iter().enumerate().rev() {
        if b & 0xC0 != 0x80 {
            if seen == n {
                // `i` starts the character before the tail: the tail starts after it.
                return Some(i + utf8_len(b));
            }
            seen += 1;
        }
    }
    None
}

fn utf8_len(first: u8) -> usize {
    match first {
        0..=0x7F => 1,
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    }
}

/// Decodes the content of a valid JSON string (escapes already checked).
pub(crate) fn unescape_into(content: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < content.len() {
        let b = content[i];
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        let e = content.get(i + 1).copied().unwrap_or(b'\\');
        i += 2;
        let c = match e {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = hex4(content.get(i..i + 4));
                i += 4;
                let cp = if (0xD800..0xDC00).contains(&hi) {
                    // INVARIANT: the scanner only accepts a high surrogate followed by `\u` and a low one.
                    let lo = hex4(content.get(i + 2..i + 6));
                    i += 6;
                    0x10000 + ((hi - 0xD800) << 10) + (lo.wrapping_sub(0xDC00) & 0x3FF)
                } else {
                    hi
                };
                char::from_u32(cp).unwrap_or('\u{FFFD}')
            }
            _ => '\u{FFFD}',
        };
        let mut buf = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    }
}

pub(crate) fn hex4(s: Option<&[u8]>) -> u32 {
    let Some(s) = s else { return 0xFFFD };
    s.iter()
        .fold(0, |acc, &b| (acc << 4) | hex_val(b).unwrap_or(0) as u32)
}

pub(crate) fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Writes UTF-8 `text` as JSON string content.
fn escape_into(text: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &b in text {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0..=0x1F => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 15) as usize]);
            }
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn m(style: MaskStyle, keep: u8, v: Raw<'_>) -> String {
        let mut out = Vec::new();
        render(Mask { style, keep }, v, None, &mut out, &mut Vec::new());
        String::from_utf8(out).unwrap()
    }

    fn s(c: &str) -> Raw<'_> {
        Raw::Str {
            content: c.as_bytes(),
            escaped: c.contains('\\'),
        }
    }

    #[test]
    fn mask_table() {
        use MaskStyle::*;
        let rows: Vec<(MaskStyle, u8, Raw<'_>, &str)> = vec![
            (Full, 0, s("secret"), r#""********""#),
            (Full, 0, s(""), r#""********""#),
            (Full, 0, Raw::Number(b"12.50"), r#""********""#),
            (Full, 0, Raw::Other(b"{\"a\":1}"), r#""********""#),
            (Full, 0, Raw::Other(b"true"), r#""********""#),
            (Full, 0, Raw::Null, "null"),
            (Null, 0, s("x"), "null"),
            (Null, 0, Raw::Other(b"[1]"), "null"),
            (Last, 4, s("4111111111111111"), r#""****1111""#),
            (Last, 4, s("1234"), r#""********""#),
            (Last, 4, s("123"), r#""********""#),
            (Last, 0, s("12345"), r#""********""#),
            (Last, 2, s("h\u{e9}llo w\u{f6}"), "\"****w\u{f6}\""),
            (Last, 2, s(r"ab\u00e9\u00e8"), "\"****\u{e9}\u{e8}\""),
            (Last, 3, s(r#"ab\"c\\"#), r#""****\"c\\""#),
            (Last, 2, s(r"abc\n"), r#""****c\u000a""#),
            (Last, 2, s(r"abc\ud83d\ude00"), "\"****c\u{1F600}\""),
            (Last, 3, Raw::Number(b"123456"), r#""****456""#),
            (Last, 3, Raw::Other(b"{\"abcd\":1}"), r#""********""#),
            (Last, 3, Raw::Null, "null"),
            (Hash, 0, s("abc"), r#""ba7816bf8f01cfea""#),
            (Hash, 0, s(r"\u0061bc"), r#""ba7816bf8f01cfea""#),
            (Hash, 0, Raw::Number(b"1"), r#""6b86b273ff34fce1""#),
            (Hash, 0, Raw::Null, "null"),
        ];
        for (style, keep, v, want) in rows {
            assert_eq!(m(style, keep, v), want, "{style:?} {keep}");
        }
    }

    #[test]
    fn keyed_hash_differs() {
        let mut a = Vec::new();
        render(
            Mask {
                style: MaskStyle::Hash,
                keep: 0,
            },
            s("abc"),
            Some(&[7; 32]),
            &mut a,
            &mut Vec::new(),
        );
        assert_ne!(a, br#""ba7816bf8f01cfea""#);
        assert_eq!(a.len(), HASH_HEX + 2);
    }
}
