//! Lowering of the sections about the gateway itself: `[logging]`.

use super::file::LoggingFile;
use super::lowering::Lowering;
use crate::logging::LogFormat;

impl Lowering<'_> {
    /// `[logging] format`: `json` or `pretty`; `None` when not set.
    pub(super) fn log_format(&mut self, file: &LoggingFile) -> Option<LogFormat> {
        let format = file.format.as_ref()?;
        match format.get_ref().parse() {
            Ok(f) => Some(f),
            Err(e) => {
                self.err(format.span(), format!("{e}"));
                None
            }
        }
    }
}
