//! Problems in configuration and policy files, placed as `path:line:col`.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in a configuration or policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.col,
            self.message
        )
    }
}

/// A file's text, for turning byte offsets into `line:col`.
pub struct SourceText<'a> {
    pub path: &'a Path,
    pub text: &'a str,
}

impl SourceText<'_> {
    pub fn problem(&self, offset: usize, message: impl Into<String>) -> Problem {
        let (line, col) = line_col(self.text, offset);
        Problem {
            file: self.path.to_path_buf(),
            line,
            col,
            message: message.into(),
        }
    }

    pub fn toml_error(&self, e: &toml::de::Error) -> Problem {
        let offset = e.span().map_or(0, |s| s.start);
        self.problem(offset, e.message().trim_end_matches('\n').to_owned())
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The line of a byte offset in a file read again (for "first at" notes).
pub(super) fn route_line(file: &Path, offset: usize) -> usize {
    std::fs::read_to_string(file).map_or(1, |t| line_col(&t, offset).0)
}

pub(super) fn route_problem(file: &Path, offset: usize, message: String) -> Problem {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    SourceText {
        path: file,
        text: &text,
    }
    .problem(offset, message)
}
