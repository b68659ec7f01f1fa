//! Entity bindings: where a route's entities sit in a JSON body (`$`,
//! `$.data[*]`, `$.items[*].vessel`), parsed once at config load.

use std::fmt;

/// The deepest binding accepted; deeper ones could never be reached under the
/// filter's nesting limit anyway.
pub const MAX_BINDING_STEPS: usize = 32;

/// One step from a JSON value towards the entities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The member with this (unescaped) key of an object.
    Key(Box<str>),
    /// Every element of an array.
    Each,
}

/// A parsed binding path. `$` alone binds the root value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    steps: Box<[Step]>,
}

/// Why a binding path is invalid. `column` is 1-based, in characters, within
/// the path string; add it to the string's own position for `path:line:col`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BindingError {
    pub column: usize,
    pub message: String,
}

impl Binding {
    /// The root object (`$`).
    pub fn root() -> Binding {
        Binding {
            steps: Box::new([]),
        }
    }

    /// Parses `$`, then any number of `.name`, `["name"]` (JSON string
    /// escapes allowed) and `[*]` steps.
    pub fn parse(src: &str) -> Result<Binding, BindingError> {
        let chars: Vec<(usize, char)> = src.chars().enumerate().collect();
        let err = |col: usize, message: String| BindingError {
            column: col + 1,
            message,
        };
        let mut i = 0;
        match chars.first() {
            Some((_, '$')) => i += 1,
            _ => return Err(err(0, "a binding path starts with `$`".into())),
        }
        let mut steps = Vec::new();
        while i < chars.len() {
            let c = chars[i].1;
            match c {
                '.' => {
                    let start = i + 1;
                    let mut j = start;
                    while j < chars.len() && is_name_char(chars[j].1) {
                        j += 1;
                    }
                    if j == start {
                        let found = chars
                            .get(start)
                            .map_or("the end".to_owned(), |(_, c)| format!("`{c}`"));
                        let hint = if matches!(chars.get(start), Some((_, '*'))) {
                            "; use `[*]` for every element of an array"
                        } else {
                            ""
                        };
                        return Err(err(
                            start,
                            format!("expected a field name after `.`, found {found}{hint}"),
                        ));
                    }
                    steps.push(Step::Key(
                        chars[start..j]
                            .iter()
                            .map(|(_, c)| c)
                            .collect::<String>()
                            .into(),
                    ));
                    i = j;
                }
                '[' => match chars.get(i + 1).map(|(_, c)| *c) {
                    Some('*') => {
                        if !matches!(chars.get(i + 2), Some((_, ']'))) {
                            return Err(err(i + 2, "expected `]` after `[*`".into()));
                        }
                        steps.push(Step::Each);
                        i += 3;
                    }
                    Some(q @ ('"' | '\'')) => {
                        let mut name = String::new();
                        let mut j = i + 2;
                        loop {
                            match chars.get(j).map(|(_, c)| *c) {
                                None => {
                                    return Err(err(j, "unterminated quoted field name".into()))
                                }
                                Some(c) if c == q => break,
                                Some('\\') => {
                                    match chars.get(j + 1).map(|(_, c)| *c) {
                                        Some(e @ ('\\' | '"' | '\'')) => name.push(e),
                                        _ => {
                                            return Err(err(
                                                j,
                                                "only `\\\\`, `\\\"` and `\\'` escapes are allowed in a quoted field name"
                                                    .into(),
                                            ))
                                        }
                                    }
                                    j += 2;
                                }
                                Some(c) => {
                                    name.push(c);
                                    j += 1;
                                }
                            }
                        }
                        if !matches!(chars.get(j + 1), Some((_, ']'))) {
                            return Err(err(
                                j + 1,
                                "expected `]` after the quoted field name".into(),
                            ));
                        }
                        steps.push(Step::Key(name.into()));
                        i = j + 2;
                    }
                    Some(d) if d.is_ascii_digit() => {
                        return Err(err(
                            i + 1,
                            "array indices are not supported; use `[*]`".into(),
                        ));
                    }
                    _ => {
                        return Err(err(
                            i + 1,
                            "expected `*` or a quoted field name after `[`".into(),
                        ))
                    }
                },
                c => {
                    return Err(err(
                        i,
                        format!("unexpected `{c}`; expected `.name`, `[*]` or `[\"name\"]`"),
                    ))
                }
            }
            if steps.len() > MAX_BINDING_STEPS {
                return Err(err(
                    i.min(chars.len().saturating_sub(1)),
                    format!("a binding path has at most {MAX_BINDING_STEPS} steps"),
                ));
            }
        }
        Ok(Binding {
            steps: steps.into_boxed_slice(),
        })
    }

    pub fn steps(&self) -> &[Step] {
        &self.steps
    }
}

fn is_name_char(c: char) -> bool {
    !matches!(c, '.' | '[' | ']' | '"' | '\'' | '*' | '\\' | '$')
        && !c.is_whitespace()
        && !c.is_control()
}

impl fmt::Display for Binding {
    /// The canonical spelling, parseable again by [`Binding::parse`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("$")?;
        for s in self.steps.iter() {
            match s {
                Step::Each => f.write_str("[*]")?,
                Step::Key(k) if !k.is_empty() && k.chars().all(is_name_char) => write!(f, ".{k}")?,
                Step::Key(k) => {
                    f.write_str("[\"")?;
                    for c in k.chars() {
                        if c == '"' || c == '\\' {
                            f.write_str("\\")?;
                        }
                        write!(f, "{c}")?;
                    }
                    f.write_str("\"]")?;
                }
            }
        }
        Ok(())
    }
}

impl std::str::FromStr for Binding {
    type Err = BindingError;
    fn from_str(s: &str) -> Result<Binding, BindingError> {
        Binding::parse(s)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn key(k: &str) -> Step {
        Step::Key(k.into())
    }

    #[test]
    fn parses_the_documented_forms() {
        let table: &[(&str, Vec<Step>)] = &[
            ("$", vec![]),
            ("$.data[*]", vec![key("data"), Step::Each]),
            (
                "$.items[*].vessel",
                vec![key("items"), Step::Each, key("vessel")],
            ),
            ("$.data", vec![key("data")]),
            ("$[*]", vec![Step::Each]),
            ("$[\"a.b\"][*]", vec![key("a.b"), Step::Each]),
            ("$['a b']", vec![key("a b")]),
            ("$[\"q\\\"x\"]", vec![key("q\"x")]),
            ("$.données", vec![key("données")]),
            ("$.a-b_c1", vec![key("a-b_c1")]),
        ];
        for (src, steps) in table {
            let b = Binding::parse(src).unwrap_or_else(|e| panic!("{src}: {e}"));
            assert_eq!(b.steps(), &steps[..], "{src}");
            assert_eq!(
                Binding::parse(&b.to_string()).unwrap(),
                b,
                "{src} round trip"
            );
        }
    }

    #[test]
    fn rejects_with_columns() {
        let table: &[(&str, usize, &str)] = &[
            ("", 1, "starts with `$`"),
            ("data", 1, "starts with `$`"),
            ("$.", 3, "expected a field name"),
            ("$.*", 3, "use `[*]`"),
            ("$.data[0]", 8, "indices are not supported"),
            ("$.data[*", 9, "expected `]`"),
            ("$.data[", 8, "expected `*`"),
            ("$.data x", 7, "unexpected ` `"),
            ("$[\"abc", 7, "unterminated"),
            ("$[\"abc\"", 8, "expected `]`"),
            ("$$", 2, "unexpected `$`"),
            ("$.é.", 5, "expected a field name"),
        ];
        for (src, col, msg) in table {
            let e = Binding::parse(src).expect_err(src);
            assert_eq!(e.column, *col, "{src}: {e}");
            assert!(e.message.contains(msg), "{src}: {e}");
        }
        let long = format!("${}", ".a".repeat(MAX_BINDING_STEPS + 1));
        assert!(Binding::parse(&long).is_err());
        let ok = format!("${}", ".a".repeat(MAX_BINDING_STEPS));
        assert!(Binding::parse(&ok).is_ok());
    }
}
