//! The local append-only spool: numbered segment files of ndjson
//! (`00000001.ndjson`, …) in `spool_dir`, a total cap, and the `committed`
//! position (segment and byte) up to which the admin API acknowledged.
//!
//! The request path only [`append`](Spool::append)s: one `write(2)` of a whole
//! line under a mutex, into the page cache (fsync per policy). The shipper
//! reads complete lines from the committed position on
//! ([`read_batch`](Spool::read_batch)), and [`commit`](Spool::commit)s after an
//! acknowledgement: the position file is replaced atomically (write, rename)
//! and segments wholly before it are deleted.
//!
//! A process that starts never appends to an old segment: it opens a new one,
//! so a line torn by a crash can only be the last bytes of a sealed segment,
//! where the reader skips it and counts it.

pub use crate::config::Fsync;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Debug, Clone)]
pub struct SpoolOptions {
    pub dir: PathBuf,
    /// Cap on the bytes of every segment on disk; past it appends are refused.
    pub max_bytes: u64,
    /// A segment is closed once the next line would take it past this.
    pub segment_bytes: u64,
    pub fsync: Fsync,
}

/// A place in the spool: a segment and a byte offset in it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
}

/// Why a line was not appended.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("the spool is full")]
    Full,
    #[error("cannot write the spool: {0}")]
    Io(#[from] io::Error),
}

/// Complete lines read from the spool.
#[derive(Debug, Default)]
pub struct Batch {
    /// ndjson, each line ending with `\n`.
    pub body: Vec<u8>,
    pub events: usize,
    /// Where the next read starts once this batch is acknowledged.
    pub end: Position,
    /// Torn or unreadable lines skipped.
    pub torn: u64,
}

struct Writer {
    file: Arc<File>,
    segment: u64,
    len: u64,
    /// A write failed part way: the next append starts a new segment, so
    /// the torn line stays the last bytes of a sealed one.
    broken: bool,
}

pub struct Spool {
    opts: SpoolOptions,
    writer: Mutex<Writer>,
    /// Bytes of the segment files on disk.
    bytes: AtomicU64,
    /// Appended since the last interval fsync.
    dirty: AtomicBool,
    committed: Mutex<Position>,
}

const COMMITTED: &str = "committed";
const EXT: &str = ".ndjson";

pub fn segment_name(segment: u64) -> String {
    format!("{segment:08}{EXT}")
}

/// The segment numbers in `dir`, sorted.
pub fn segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(n) = name.to_str().and_then(|n| n.strip_suffix(EXT)) else {
            continue;
        };
        if let Ok(n) = n.parse::<u64>() {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Spool {
    /// Opens (creating) the spool directory, reads the committed position
    /// and starts a new segment after every existing one.
    pub fn open(opts: SpoolOptions) -> io::Result<Spool> {
        fs::create_dir_all(&opts.dir)?;
        fs::create_dir_all(opts.dir.join("rejected"))?;
        let existing = segments(&opts.dir)?;
        let mut bytes = 0;
        for s in &existing {
            bytes += fs::metadata(opts.dir.join(segment_name(*s)))?.len();
        }
        let committed = read_committed(&opts.dir).unwrap_or(Position {
            segment: existing.first().copied().unwrap_or(0),
            offset: 0,
        });
        let segment = existing.last().copied().unwrap_or(0).max(committed.segment) + 1;
        let file = create_segment(&opts.dir, segment)?;
        Ok(Spool {
            writer: Mutex::new(Writer {
                file: Arc::new(file),
                segment,
                len: 0,
                broken: false,
            }),
            opts,
            bytes: AtomicU64::new(bytes),
            dirty: AtomicBool::new(false),
            committed: Mutex::new(committed),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.opts.dir
    }

    /// Bytes of the segment files on disk.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Appends one whole line (ending with `\n`) in one `write(2)`.
    pub fn append(&self, line: &[u8]) -> Result<(), AppendError> {
        let n = line.len() as u64;
        let mut w = lock(&self.writer);
        if self.bytes.load(Ordering::Relaxed) + n > self.opts.max_bytes {
            return Err(AppendError::Full);
        }
        if w.broken || (w.len > 0 && w.len + n > self.opts.segment_bytes) {
            self.rotate(&mut w)?;
        }
        if let Err(e) = (&*w.file).write_all(line) {
            w.broken = true;
            return Err(e.into());
        }
        w.len += n;
        self.bytes.fetch_add(n, Ordering::Relaxed);
        match self.opts.fsync {
            // The line is written (in the page cache) either way; a failed
            // sync closes the segment so the next one starts on a fresh file.
            Fsync::Always => {
                if w.file.sync_data().is_err() {
                    w.broken = true;
                }
            }
            Fsync::Interval => self.dirty.store(true, Ordering::Relaxed),
            Fsync::Never => {}
        }
        Ok(())
    }

    /// Closes the current segment (synced unless `fsync = "never"`) and opens the next.
    fn rotate(&self, w: &mut Writer) -> io::Result<()> {
        if self.opts.fsync != Fsync::Never {
            // A failed sync leaves the data in the page cache; the new segment goes on.
            let _ = w.file.sync_data();
        }
        let file = create_segment(&self.opts.dir, w.segment + 1)?;
        w.file = Arc::new(file);
        w.segment += 1;
        w.len = 0;
        w.broken = false;
        Ok(())
    }

    /// `fsync = "interval"`: syncs the current segment if lines were
    /// appended since the last call (outside the writer's lock).
    pub fn sync_if_dirty(&self) -> io::Result<()> {
        if !self.dirty.swap(false, Ordering::Relaxed) {
            return Ok(());
        }
        let file = lock(&self.writer).file.clone();
        file.sync_data()
    }

    /// Where the writer is: lines before this are complete.
    pub fn head(&self) -> Position {
        let w = lock(&self.writer);
        Position {
            segment: w.segment,
            offset: w.len,
        }
    }

    pub fn committed(&self) -> Position {
        *lock(&self.committed)
    }

    /// Up to `max_events` complete lines (and about `max_bytes`) from `from`.
    /// A sealed segment's tail without a newline, or a line that is not a
    /// JSON object, is skipped and counted in `torn`.
    pub fn read_batch(
        &self,
        from: Position,
        max_events: usize,
        max_bytes: usize,
    ) -> io::Result<Batch> {
        let head = self.head();
        let mut batch = Batch {
            end: from,
            ..Batch::default()
        };
        let mut chunk = Vec::new();
        'segments: while batch.events < max_events && batch.body.len() < max_bytes {
            let pos = batch.end;
            let live = pos.segment >= head.segment;
            let mut file = match File::open(self.opts.dir.join(segment_name(pos.segment))) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound && !live => {
                    batch.end = self.next_segment(pos.segment, head)?;
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(e) => return Err(e),
            };
            let limit = if live {
                head.offset
            } else {
                file.metadata()?.len()
            };
            if pos.offset >= limit {
                if live {
                    break;
                }
                batch.end = self.next_segment(pos.segment, head)?;
                continue;
            }
            let want = (limit - pos.offset).min(max_bytes.max(64 * 1024) as u64) as usize;
            chunk.clear();
            file.seek(SeekFrom::Start(pos.offset))?;
            (&mut file).take(want as u64).read_to_end(&mut chunk)?;
            let mut used = 0;
            let mut full = false;
            while let Some(nl) = chunk[used..].iter().position(|b| *b == b'\n') {
                let line = &chunk[used..used + nl + 1];
                if batch.events > 0 && batch.body.len() + line.len() > max_bytes {
                    full = true;
                    break;
                }
                used += nl + 1;
                if line.len() > 1 {
                    if is_json_object(line) {
                        batch.body.extend_from_slice(line);
                        batch.events += 1;
                    } else {
                        batch.torn += 1;
                    }
                }
                if batch.events >= max_events {
                    full = true;
                    break;
                }
            }
            batch.end.offset = pos.offset + used as u64;
            if full {
                break;
            }
            if used == 0 {
                let at_end = pos.offset + chunk.len() as u64 >= limit;
                match (at_end, live) {
                    // The live segment's tail is not written yet.
                    (true, true) => break 'segments,
                    // A sealed segment that ends without a newline: torn.
                    (true, false) => {
                        batch.torn += 1;
                        batch.end = self.next_segment(pos.segment, head)?;
                    }
                    // A line longer than a whole read: skip what was read of it.
                    (false, _) => {
                        batch.torn += 1;
                        batch.end.offset = pos.offset + chunk.len() as u64;
                    }
                }
            }
            // Otherwise the loop goes on: the rest of this segment (a torn
            // tail is found on the next pass), or the next segment.
        }
        Ok(batch)
    }

    /// The first segment after `segment` (the writer's, if none is older).
    fn next_segment(&self, segment: u64, head: Position) -> io::Result<Position> {
        let next = segments(&self.opts.dir)?
            .into_iter()
            .find(|s| *s > segment)
            .unwrap_or(head.segment);
        Ok(Position {
            segment: next,
            offset: 0,
        })
    }

    /// Records `to` as acknowledged (written to a temporary file, renamed
    /// over `committed`) and deletes the segments wholly before it.
    pub fn commit(&self, to: Position) -> io::Result<()> {
        let tmp = self.opts.dir.join("committed.tmp");
        {
            let mut f = File::create(&tmp)?;
            writeln!(f, "{} {}", to.segment, to.offset)?;
            if self.opts.fsync != Fsync::Never {
                f.sync_data()?;
            }
        }
        fs::rename(&tmp, self.opts.dir.join(COMMITTED))?;
        *lock(&self.committed) = to;
        for s in segments(&self.opts.dir)? {
            if s >= to.segment {
                break;
            }
            let path = self.opts.dir.join(segment_name(s));
            let len = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            fs::remove_file(&path)?;
            self.bytes.fetch_sub(
                len.min(self.bytes.load(Ordering::Relaxed)),
                Ordering::Relaxed,
            );
        }
        Ok(())
    }

    /// Keeps a batch the admin API refused for good in `rejected/`.
    pub fn reject(&self, batch: &Batch, from: Position) -> io::Result<PathBuf> {
        let path = self
            .opts
            .dir
            .join("rejected")
            .join(format!("{:08}-{:012}{EXT}", from.segment, from.offset));
        fs::write(&path, &batch.body)?;
        Ok(path)
    }
}

fn create_segment(dir: &Path, segment: u64) -> io::Result<File> {
    OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(dir.join(segment_name(segment)))
}

fn read_committed(dir: &Path) -> Option<Position> {
    let text = fs::read_to_string(dir.join(COMMITTED)).ok()?;
    let mut parts = text.split_whitespace();
    let segment = parts.next()?.parse().ok()?;
    let offset = parts.next()?.parse().ok()?;
    Some(Position { segment, offset })
}

/// A complete JSON object (what the admin API will parse).
fn is_json_object(line: &[u8]) -> bool {
    line.first() == Some(&b'{') && serde_json::from_slice::<serde::de::IgnoredAny>(line).is_ok()
}

/// The last `n` lines of the spool in `dir`, oldest first (`sentinel audit tail`).
pub fn tail(dir: &Path, n: usize) -> io::Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for s in segments(dir)?.into_iter().rev() {
        if out.len() >= n {
            break;
        }
        let text = fs::read(dir.join(segment_name(s)))?;
        let lines: Vec<&[u8]> = text
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        let take = (n - out.len()).min(lines.len());
        let mut these: Vec<String> = lines[lines.len() - take..]
            .iter()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect();
        these.append(&mut out);
        out = these;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(dir: &Path, max: u64, seg: u64) -> SpoolOptions {
        SpoolOptions {
            dir: dir.to_path_buf(),
            max_bytes: max,
            segment_bytes: seg,
            fsync: Fsync::Never,
        }
    }

    fn line(i: usize) -> Vec<u8> {
        format!("{{\"n\":{i:>4}}}\n").into_bytes()
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "sentinel-spool-{name}-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn numbers(b: &Batch) -> Vec<usize> {
        b.body
            .split(|c| *c == b'\n')
            .filter(|l| !l.is_empty())
            .filter_map(|l| serde_json::from_slice::<serde_json::Value>(l).ok())
            .filter_map(|v| v["n"].as_u64())
            .map(|n| n as usize)
            .collect()
    }

    #[test]
    fn rotates_reads_in_order_and_deletes_acked_segments() -> io::Result<()> {
        let dir = tmp("rotate");
        // Each line is 11 bytes: three per 40-byte segment.
        let spool = Spool::open(opts(&dir, 1 << 20, 40))?;
        for i in 0..10 {
            spool.append(&line(i)).map_err(io::Error::other)?;
        }
        assert_eq!(segments(&dir)?.len(), 4);
        assert_eq!(spool.bytes(), 110);
        let from = spool.committed();
        let b = spool.read_batch(from, 4, 1 << 20)?;
        assert_eq!(numbers(&b), vec![0, 1, 2, 3]);
        spool.commit(b.end)?;
        assert_eq!(
            segments(&dir)?.len(),
            3,
            "the first segment was acked whole"
        );
        assert_eq!(spool.bytes(), 77);
        let b = spool.read_batch(spool.committed(), 100, 1 << 20)?;
        assert_eq!(numbers(&b), (4..10).collect::<Vec<_>>());
        assert_eq!(b.torn, 0);
        spool.commit(b.end)?;
        // Nothing more until something is appended.
        let c = spool.read_batch(spool.committed(), 100, 1 << 20)?;
        assert_eq!(c.events, 0);
        spool.append(&line(10)).map_err(io::Error::other)?;
        let c = spool.read_batch(spool.committed(), 100, 1 << 20)?;
        assert_eq!(numbers(&c), vec![10]);
        let _ = fs::remove_dir_all(&dir);
        Ok(())
    }

    #[test]
    fn a_full_spool_refuses_until_acked() -> io::Result<()> {
        let dir = tmp("cap");
        let spool = Spool::open(opts(&dir, 33, 1 << 20))?;
        for i in 0..3 {
            spool.append(&line(i)).map_err(io::Error::other)?;
        }
        assert!(matches!(spool.append(&line(3)), Err(AppendError::Full)));
        assert_eq!(spool.bytes(), 33);
        // Acked bytes free room only once their segment is deleted: a
        // restart seals the segment, and the commit past it deletes it.
        drop(spool);
        let spool = Spool::open(opts(&dir, 33, 1 << 20))?;
        let b = spool.read_batch(spool.committed(), 100, 1 << 20)?;
        assert_eq!(numbers(&b), vec![0, 1, 2]);
        spool.commit(b.end)?;
        let b = spool.read_batch(spool.committed(), 100, 1 << 20)?;
        spool.commit(b.end)?;
        assert_eq!(spool.bytes(), 0);
        spool.append(&line(3)).map_err(io::Error::other)?;
        let _ = fs::remove_dir_all(&dir);
        Ok(())
    }

    #[test]
    fn a_torn_last_line_is_skipped_and_counted() -> io::Result<()> {
        let dir = tmp("torn");
        {
            let spool = Spool::open(opts(&dir, 1 << 20, 1 << 20))?;
            for i in 0..3 {
                spool.append(&line(i)).map_err(io::Error::other)?;
            }
            // Garbage that ends with a newline (not sent), then a crash in
            // the middle of a write: half a line, no newline.
            let mut f = OpenOptions::new()
                .append(true)
                .open(dir.join(segment_name(1)))?;
            f.write_all(b"\0\0\0\n{\"n\":00")?;
        }
        let spool = Spool::open(opts(&dir, 1 << 20, 1 << 20))?;
        spool.append(&line(3)).map_err(io::Error::other)?;
        let b = spool.read_batch(spool.committed(), 100, 1 << 20)?;
        assert_eq!(numbers(&b), vec![0, 1, 2, 3]);
        assert_eq!(b.torn, 2);
        let _ = fs::remove_dir_all(&dir);
        Ok(())
    }

    #[test]
    fn a_restart_resumes_from_the_committed_offset() -> io::Result<()> {
        let dir = tmp("resume");
        {
            let spool = Spool::open(opts(&dir, 1 << 20, 1 << 20))?;
            for i in 0..5 {
                spool.append(&line(i)).map_err(io::Error::other)?;
            }
            let b = spool.read_batch(spool.committed(), 2, 1 << 20)?;
            assert_eq!(numbers(&b), vec![0, 1]);
            spool.commit(b.end)?;
            // Read but never acknowledged: replayed after the restart.
            let b = spool.read_batch(b.end, 2, 1 << 20)?;
            assert_eq!(numbers(&b), vec![2, 3]);
        }
        let spool = Spool::open(opts(&dir, 1 << 20, 1 << 20))?;
        assert_eq!(
            spool.committed(),
            Position {
                segment: 1,
                offset: 22
            }
        );
        spool.append(&line(5)).map_err(io::Error::other)?;
        let b = spool.read_batch(spool.committed(), 100, 1 << 20)?;
        assert_eq!(numbers(&b), vec![2, 3, 4, 5]);
        // A broken position file: everything on disk is sent again (the
        // admin API skips what it already has).
        fs::write(dir.join(COMMITTED), "garbage")?;
        let spool = Spool::open(opts(&dir, 1 << 20, 1 << 20))?;
        let b = spool.read_batch(spool.committed(), 100, 1 << 20)?;
        assert_eq!(numbers(&b), vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(tail(&dir, 2)?.len(), 2);
        let _ = fs::remove_dir_all(&dir);
        Ok(())
    }

    #[test]
    fn batches_stop_at_the_byte_budget() -> io::Result<()> {
        let dir = tmp("budget");
        let spool = Spool::open(opts(&dir, 1 << 20, 1 << 20))?;
        for i in 0..10 {
            spool.append(&line(i)).map_err(io::Error::other)?;
        }
        let b = spool.read_batch(spool.committed(), 100, 25)?;
        assert_eq!(numbers(&b), vec![0, 1]);
        let b = spool.read_batch(b.end, 100, 25)?;
        assert_eq!(numbers(&b), vec![2, 3]);
        assert_eq!(b.torn, 0);
        let _ = fs::remove_dir_all(&dir);
        Ok(())
    }
}
