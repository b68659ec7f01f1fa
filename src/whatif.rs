//! `sentinel what-if`: loads a proposed policy (and optionally the current
//! one) from policy files, streams a JSONL log through
//! `sentinel_policy::whatif::Replay` and prints the flipped decisions,
//! grouped by rule and principal (docs/policy.md, "What-if").
//!
//! ```text
//! sentinel what-if --policy proposed/*.toml --against audit.jsonl
//! sentinel what-if --policy proposed/*.toml --current config/policy/*.toml --against requests.jsonl --json
//! ```

use crate::live::files::load_policy;
use sentinel_policy::whatif::{Replay, Report};
use sentinel_policy::Snapshot;
use std::fmt::Write as _;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What `run` prints, and how long the replay took.
pub struct Outcome {
    pub text: String,
    pub lines: u64,
    pub seconds: f64,
}

/// Replays `against` through the policy of `proposed`, compared with the
/// policy of `current` (when given) or each line's recorded decision.
/// `Err`: every problem of the policy files, or the log that cannot be read.
pub fn run(
    proposed: &[PathBuf],
    current: &[PathBuf],
    against: &Path,
    json: bool,
) -> Result<Outcome, Vec<String>> {
    let problems = |ps: Vec<crate::config::Problem>| -> Vec<String> {
        ps.iter().map(ToString::to_string).collect()
    };
    let proposed = load_policy(proposed).map_err(problems)?;
    let current = if current.is_empty() {
        None
    } else {
        Some(load_policy(current).map_err(problems)?)
    };
    let file = std::fs::File::open(against)
        .map_err(|e| vec![format!("{}: cannot read: {e}", against.display())])?;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let started = Instant::now();
    let mut replay = Replay::new(&proposed, current.as_ref());
    let mut line = Vec::with_capacity(1024);
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => replay.line(&line),
            Err(e) => return Err(vec![format!("{}: cannot read: {e}", against.display())]),
        }
    }
    let report = replay.finish();
    let seconds = started.elapsed().as_secs_f64();
    let names = [Some(&proposed), current.as_ref()];
    let text = if json {
        as_json(&report, &names)
    } else {
        as_text(&report, &names)
    };
    Ok(Outcome {
        text,
        lines: report.lines,
        seconds,
    })
}

fn name_of(names: &[Option<&Snapshot>], id: &uuid::Uuid) -> String {
    names
        .iter()
        .flatten()
        .find_map(|s| s.principal(id))
        .map_or_else(String::new, |p| p.name.to_string())
}

fn as_text(r: &Report, names: &[Option<&Snapshot>]) -> String {
    let mut out = String::new();
    let mut skipped: Vec<_> = r.skipped.iter().collect();
    skipped.sort();
    let _ = writeln!(
        out,
        "{} lines, {} replayed, {} flipped, {} skipped",
        r.lines,
        r.replayed,
        r.flipped(),
        skipped.iter().map(|(_, n)| **n).sum::<u64>()
    );
    for (why, n) in skipped {
        let _ = writeln!(out, "  skipped {n}: {}", why.as_str());
    }
    for (group, count, principals) in r.groups() {
        let _ = writeln!(
            out,
            "{}  rules={}  reason={}  {count}",
            group.flip.as_str(),
            group.rules,
            group.reason
        );
        for (p, n) in principals {
            let name = name_of(names, &p);
            if name.is_empty() {
                let _ = writeln!(out, "    {p}  {n}");
            } else {
                let _ = writeln!(out, "    {p} ({name})  {n}");
            }
        }
    }
    out
}

fn as_json(r: &Report, names: &[Option<&Snapshot>]) -> String {
    r.to_json(|p| name_of(names, p)).to_string()
}
