//! Lowering of `[audit]` (docs/audit-gateway.md): where the spool lives, its
//! cap and segment size, batching and the fsync policy.

use super::file::AuditFile;
use super::lowering::Lowering;
use super::types::{AuditConfig, Fsync, PolicyConfig};
use std::path::PathBuf;
use std::time::Duration;
use toml::Spanned;

pub const DEFAULT_MAX_SPOOL_BYTES: u64 = 1 << 30;
pub const DEFAULT_SEGMENT_BYTES: u64 = 16 << 20;
pub const DEFAULT_BATCH_EVENTS: usize = 1000;
pub const DEFAULT_FLUSH_MS: u64 = 200;
/// The admin API takes at most this many events per batch.
pub const MAX_BATCH_EVENTS: usize = 10_000;

/// `None` when there is no audit trail: `enabled = false`, or neither an
/// `[audit]` section nor an admin API. The default spool is `audit/` beside
/// the snapshot cache file (a writable volume in the shipped deployments),
/// else `audit-spool/` beside `sentinel.toml`.
pub(super) fn lower_audit(
    lw: &mut Lowering,
    file: &Option<Spanned<AuditFile>>,
    policy: &PolicyConfig,
) -> Option<AuditConfig> {
    let empty = AuditFile::default();
    let a = file.as_ref().map_or(&empty, |a| a.get_ref());
    let enabled = a
        .enabled
        .unwrap_or(file.is_some() || policy.admin.is_some());
    let spool_dir = match &a.spool_dir {
        Some(d) if d.get_ref().trim().is_empty() => {
            lw.err(d.span(), "`spool_dir` must not be empty");
            PathBuf::new()
        }
        Some(d) => lw.path(d.get_ref()),
        None => match policy.admin.as_ref().and_then(|a| a.cache_file.as_ref()) {
            Some(cache) => cache
                .parent()
                .map_or_else(|| lw.path("audit"), |p| p.join("audit")),
            None => lw.path("audit-spool"),
        },
    };
    let max_spool_bytes = a
        .max_spool_bytes
        .as_ref()
        .map_or(DEFAULT_MAX_SPOOL_BYTES, |v| *v.get_ref());
    let segment_bytes = match &a.segment_bytes {
        Some(v) if *v.get_ref() < 4096 => {
            lw.err(v.span(), "`segment_bytes` must be at least 4096");
            DEFAULT_SEGMENT_BYTES
        }
        Some(v) => *v.get_ref(),
        None => DEFAULT_SEGMENT_BYTES.min(max_spool_bytes / 4).max(4096),
    };
    if let Some(v) = &a.max_spool_bytes {
        // Acknowledged bytes are freed a segment at a time, and the segment
        // being written is never freed: the cap must hold at least two.
        if *v.get_ref() < 2 * segment_bytes {
            lw.err(
                v.span(),
                format!(
                    "`max_spool_bytes` must be at least twice `segment_bytes` ({segment_bytes})"
                ),
            );
        }
    } else if let Some(s) = &a.segment_bytes {
        if 2 * *s.get_ref() > max_spool_bytes {
            lw.err(
                s.span(),
                format!(
                    "`segment_bytes` must be at most half of `max_spool_bytes` ({max_spool_bytes})"
                ),
            );
        }
    }
    let batch_events = match &a.batch_events {
        Some(v) if *v.get_ref() == 0 || *v.get_ref() > MAX_BATCH_EVENTS => {
            lw.err(
                v.span(),
                format!("`batch_events` must be between 1 and {MAX_BATCH_EVENTS}"),
            );
            DEFAULT_BATCH_EVENTS
        }
        Some(v) => *v.get_ref(),
        None => DEFAULT_BATCH_EVENTS,
    };
    let flush = match &a.flush_ms {
        Some(v) if *v.get_ref() == 0 || *v.get_ref() > 60_000 => {
            lw.err(v.span(), "`flush_ms` must be between 1 and 60000");
            Duration::from_millis(DEFAULT_FLUSH_MS)
        }
        Some(v) => Duration::from_millis(*v.get_ref()),
        None => Duration::from_millis(DEFAULT_FLUSH_MS),
    };
    let fsync = match a.fsync.as_ref().map(|f| (f.get_ref().as_str(), f.span())) {
        None | Some(("interval", _)) => Fsync::Interval,
        Some(("always", _)) => Fsync::Always,
        Some(("never", _)) => Fsync::Never,
        Some((other, span)) => {
            lw.err(
                span,
                format!("unknown `fsync` `{other}` (use `interval`, `always` or `never`)"),
            );
            Fsync::Interval
        }
    };
    enabled.then_some(AuditConfig {
        spool_dir,
        max_spool_bytes,
        segment_bytes,
        batch_events,
        flush,
        fsync,
    })
}
