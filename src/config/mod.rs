//! Gateway configuration: loads `sentinel.toml` and its route files, and lowers
//! the file format ([`file`]) into internal types ([`types`]) in one step
//! ([`lowering`], with [`policy_source`], [`ratelimits`], [`risk`], [`route`],
//! [`audit`] and [`observe`] for their sections) that collects *every* problem as
//! `path:line:col: message` ([`problems`]).

mod audit;
pub mod file;
mod lowering;
mod observe;
mod policy_source;
mod problems;
mod ratelimits;
mod risk;
mod route;
mod types;

pub use lowering::{expand_pattern, load, parse_duration};
pub use policy_source::{read_pinned_keys, MAX_WAIT};
pub use problems::{line_col, Problem, SourceText};
pub use risk::{BiometricsSettings, RiskConfig};
pub use types::*;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("2").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("1y").is_err());
    }

    #[test]
    fn line_cols() {
        let t = "a\nbc\néx";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 3), (2, 2));
        assert_eq!(line_col(t, 7), (3, 2));
        assert_eq!(line_col(t, 6), (3, 1));
        assert_eq!(line_col(t, 8), (3, 3));
        assert_eq!(line_col(t, 99), (3, 3));
    }
}
