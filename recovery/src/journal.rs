//! Locating a journal's segments and reading their bytes.
//!
//! All journal reads go through [`Journal::load`], the one seam where the I/O backend is
//! chosen.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::error::{CorruptKind, Error, Result};
use crate::format::segment::{parse_segment_file_name, SegmentHeader, SEGMENT_HEADER_LEN};
use crate::io::SegmentReader;
pub use crate::io::{IoBackend, IoOptions, SegmentBytes};
use crate::RecoveryMode;

/// One segment file of the journal, with its validated header.
#[derive(Debug, Clone)]
pub struct SegmentMeta {
    /// Path of the file.
    pub path: PathBuf,
    /// Decoded header.
    pub header: SegmentHeader,
    /// File length when the journal was opened.
    pub len: u64,
}

/// Something found while locating segments that the mode allowed recovery to pass over.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LocateNote {
    /// The file concerned.
    pub path: PathBuf,
    /// Offset of the problem.
    pub offset: u64,
    /// What was wrong.
    pub kind: CorruptKind,
    /// Bytes of the file that recovery ignores.
    pub bytes: u64,
}

/// The ordered, validated segments of a journal directory.
pub struct Journal {
    /// The journal directory.
    pub dir: PathBuf,
    /// Segments in sequence order.
    pub segments: Vec<SegmentMeta>,
    /// Segments passed over (a torn header of the last segment, or damaged headers in
    /// skip-corrupt mode).
    pub notes: Vec<LocateNote>,
    /// The backend segments are read with (never `auto`: that is resolved at open).
    pub backend: IoBackend,
    /// How the backend was chosen: auto's reason, a direct-I/O fallback.
    pub io_notes: Vec<String>,
    reader: Box<dyn SegmentReader>,
    /// Segments read so far, kept for later passes and other workers while the cache budget
    /// allows. The lock is held while a segment is read, so concurrent first readers of one
    /// segment wait for a single read.
    cache: Vec<Mutex<Cached>>,
    cache_left: AtomicU64,
    /// The last few segments read beyond the budget, held so that the parallel scan's chunks
    /// of one segment (read one after another by different workers) share one read.
    recent: Mutex<std::collections::VecDeque<SegmentBytes>>,
    /// Where the time of each segment read through the backend is recorded, if anywhere.
    pub read_times: Option<std::sync::Arc<crate::progress::Recorder>>,
    /// Where every pass begins decoding the first segment: a journal block boundary (its first
    /// data block unless [`start_at`](Self::start_at) moved it).
    pub start_offset: u64,
    /// LSN of the first record at or after `start_offset`.
    pub start_lsn: u64,
    /// The LSN [`seek_start`](Self::seek_start) moves to, once asked.
    seek_lsn: Option<u64>,
}

/// Segments beyond the cache budget held anyway, most recent first.
const RECENT_KEEP: usize = 4;

/// A cache slot: a segment kept, or one beyond the budget that is shared for as long as some
/// pass or worker still holds it (so parallel workers moving through the journal together read
/// each segment once even when the budget keeps none).
enum Cached {
    Empty,
    Kept(SegmentBytes),
    Shared(std::sync::Weak<crate::io::PageBuf>),
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("dir", &self.dir)
            .field("segments", &self.segments)
            .field("notes", &self.notes)
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl Journal {
    /// Lists, orders and validates the segments of `dir` against the image identity.
    pub fn open(
        dir: &Path,
        image_id: u64,
        image_block_size: u32,
        mode: RecoveryMode,
        io: &IoOptions,
        late_start_ok: bool,
    ) -> Result<Journal> {
        let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, "list journal directory", e))?;
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(dir, "list journal directory", e))?;
            let name = entry.file_name();
            if let Some(seq) = name.to_str().and_then(parse_segment_file_name) {
                found.push((seq, entry.path()));
            }
        }
        found.sort();
        if found.is_empty() {
            return Err(Error::NoSegments { path: dir.to_path_buf() });
        }
        let last_index = found.len() - 1;
        let mut segments: Vec<SegmentMeta> = Vec::with_capacity(found.len());
        let mut notes = Vec::new();
        for (i, (seq, path)) in found.into_iter().enumerate() {
            let mut file = File::open(&path).map_err(|e| Error::io(&path, "open segment", e))?;
            let len = file.metadata().map_err(|e| Error::io(&path, "stat segment", e))?.len();
            let mut head = vec![0u8; SEGMENT_HEADER_LEN.min(len as usize)];
            std::io::Read::read_exact(&mut file, &mut head).map_err(|e| Error::io(&path, "read segment header", e))?;
            let header = match SegmentHeader::decode(&head) {
                Ok(h) if h.segment_seq != seq => {
                    Err((16, CorruptKind::BadField("segment_seq (disagrees with the file name)")))
                }
                Ok(h) if (len as usize) < h.block_size as usize => Err((len, CorruptKind::TruncatedHeader)),
                Ok(h) if len > h.capacity_bytes() => {
                    Err((h.capacity_bytes(), CorruptKind::BadField("file length (longer than the segment's capacity)")))
                }
                other => other,
            };
            let header = match header {
                Ok(h) => h,
                Err((offset, kind)) => {
                    // A crash while creating the last segment leaves a short header: that is a
                    // torn tail, not damage, unless the mode forbids any loss.
                    let torn_last =
                        i == last_index && kind == CorruptKind::TruncatedHeader && mode != RecoveryMode::Absolute;
                    if torn_last || mode == RecoveryMode::SkipCorrupt {
                        notes.push(LocateNote { path, offset, kind, bytes: len });
                        continue;
                    }
                    return Err(Error::Corrupt { path, offset, kind });
                }
            };
            if header.image_id != image_id {
                return Err(Error::ImageMismatch { path, journal_image_id: header.image_id, image_id });
            }
            if header.image_block_size != image_block_size {
                return Err(Error::InconsistentSegments { path, what: "image block size (differs from the image's)" });
            }
            if segments.is_empty() && header.segment_seq != 1 && !late_start_ok {
                // Without a checkpoint saying where the journal starts, a journal that does not
                // begin at segment 1 has lost its beginning.
                if mode != RecoveryMode::SkipCorrupt {
                    return Err(Error::SegmentGap { path, expected: 1, found: header.segment_seq });
                }
                notes.push(LocateNote {
                    path: path.clone(),
                    offset: 16,
                    kind: CorruptKind::BadField("segment_seq (the journal does not start at 1)"),
                    bytes: 0,
                });
            }
            if header.segment_seq == 1 && header.first_lsn != 1 {
                let kind = CorruptKind::LsnSequence { expected: 1, found: header.first_lsn };
                if mode != RecoveryMode::SkipCorrupt {
                    return Err(Error::Corrupt { path, offset: 40, kind });
                }
                notes.push(LocateNote { path: path.clone(), offset: 40, kind, bytes: 0 });
            }
            if let Some(prev) = segments.last() {
                if header.steal() != prev.header.steal() {
                    return Err(Error::InconsistentSegments { path, what: "buffer policy" });
                }
                if header.block_size != prev.header.block_size {
                    return Err(Error::InconsistentSegments { path, what: "journal block size" });
                }
                let expected = prev.header.segment_seq + 1;
                if header.segment_seq != expected {
                    if mode != RecoveryMode::SkipCorrupt {
                        return Err(Error::SegmentGap { path, expected, found: header.segment_seq });
                    }
                    notes.push(LocateNote {
                        path: path.clone(),
                        offset: 16,
                        kind: CorruptKind::BadField("segment_seq (gap before this segment)"),
                        bytes: 0,
                    });
                }
            }
            segments.push(SegmentMeta { path, header, len });
        }
        if segments.is_empty() {
            return Err(Error::NoSegments { path: dir.to_path_buf() });
        }
        let bytes = segments.iter().map(|s| s.len).sum();
        let resolved = crate::io::resolve(io, bytes, &segments[0].path)?;
        let cache = segments.iter().map(|_| Mutex::new(Cached::Empty)).collect();
        let (start_offset, start_lsn) = (u64::from(segments[0].header.block_size), segments[0].header.first_lsn);
        Ok(Journal {
            dir: dir.to_path_buf(),
            segments,
            notes,
            backend: resolved.reader.backend(),
            io_notes: resolved.notes,
            reader: resolved.reader,
            cache,
            cache_left: AtomicU64::new(io.cache_bytes),
            recent: Mutex::new(std::collections::VecDeque::with_capacity(RECENT_KEEP)),
            read_times: None,
            start_offset,
            start_lsn,
            seek_lsn: None,
        })
    }

    /// Drops the segments wholly before `lsn` (every segment followed by one that starts at or
    /// below it), without reading any, and notes `lsn` for [`seek_start`](Self::seek_start).
    /// Returns the bytes dropped.
    pub fn start_at(&mut self, lsn: u64) -> u64 {
        let keep_from = self.segments.iter().rposition(|s| s.header.first_lsn <= lsn).unwrap_or(0);
        let dropped: u64 = self.segments[..keep_from].iter().map(|s| s.len).sum();
        self.segments.drain(..keep_from);
        self.cache.drain(..keep_from);
        let meta = &self.segments[0];
        (self.start_offset, self.start_lsn) = (u64::from(meta.header.block_size), meta.header.first_lsn);
        self.seek_lsn = Some(lsn);
        dropped
    }

    /// Makes every pass begin at the record with LSN given to [`start_at`](Self::start_at) (or
    /// a little before it): finds in the first segment the last journal block boundary where a
    /// record at or below that LSN starts, by a binary search over block boundaries (each is a
    /// resync point). Reads the first segment. Returns the first segment's bytes no pass reads.
    pub fn seek_start(&mut self) -> Result<u64> {
        let Some(lsn) = self.seek_lsn.take() else { return Ok(0) };
        let meta = &self.segments[0];
        let bs = u64::from(meta.header.block_size);
        if meta.header.first_lsn >= lsn {
            return Ok(0);
        }
        let bytes = self.load(0)?;
        let (salt, block_size) = (meta.header.salt, meta.header.block_size);
        let blocks = (bytes.len() as u64).div_ceil(bs);
        // The LSN of the first record starting at or after block `k`, if one does.
        let lsn_from = |k: u64| -> Option<u64> {
            let dec = crate::format::fragment::SegmentDecoder::new(&bytes, block_size, salt);
            let p = (k..blocks).find_map(|kk| dec.record_start_from((kk * bs) as usize))?;
            let mut d = crate::format::fragment::SegmentDecoder::new(&bytes, block_size, salt);
            d.seek(p, true);
            match d.next_step() {
                crate::format::fragment::Step::Record { bytes: rec, single, .. } => {
                    crate::format::record::decode_header_with(rec, !single).ok().map(|(h, _)| h.lsn)
                }
                _ => None,
            }
        };
        // Invariant: a record at or below `lsn` starts at or after block `lo`.
        let (mut lo, mut hi) = (1u64, blocks);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            match lsn_from(mid) {
                Some(l) if l <= lsn => lo = mid,
                _ => hi = mid,
            }
        }
        if let Some(l) = lsn_from(lo).filter(|&l| l <= lsn) {
            (self.start_offset, self.start_lsn) = (lo * bs, l);
        }
        Ok(self.start_offset - bs)
    }

    /// Total bytes of the segment files recovery reads.
    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.len).sum()
    }

    /// Whether the journal was written under the steal policy.
    pub fn steal(&self) -> bool {
        self.segments.first().is_some_and(|s| s.header.steal())
    }

    /// Loads the bytes of segment `index` through the configured backend, from the cache
    /// when an earlier pass kept them.
    pub fn load(&self, index: usize) -> Result<SegmentBytes> {
        let meta = &self.segments[index];
        let mut slot = self.cache[index].lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match &*slot {
            Cached::Kept(b) => return Ok(b.clone()),
            Cached::Shared(w) => {
                if let Some(b) = w.upgrade() {
                    return Ok(SegmentBytes::Copied(b));
                }
            }
            Cached::Empty => {}
        }
        let t = std::time::Instant::now();
        let bytes = self.reader.read_segment(meta)?;
        if let Some(r) = &self.read_times {
            r.record(t.elapsed());
        }
        if bytes.len() as u64 != meta.len {
            return Err(Error::io(
                &meta.path,
                "read segment",
                std::io::Error::other(format!(
                    "segment changed size during recovery ({} -> {} bytes)",
                    meta.len,
                    bytes.len()
                )),
            ));
        }
        let keep = match bytes {
            // A mapping costs address space, not heap.
            SegmentBytes::Mapped(_) => true,
            _ => self
                .cache_left
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| left.checked_sub(meta.len))
                .is_ok(),
        };
        *slot = match &bytes {
            _ if keep => Cached::Kept(bytes.clone()),
            SegmentBytes::Copied(b) => {
                let mut recent = self.recent.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if recent.len() == RECENT_KEEP {
                    recent.pop_back();
                }
                recent.push_front(bytes.clone());
                Cached::Shared(std::sync::Arc::downgrade(b))
            }
            SegmentBytes::Mapped(_) => Cached::Empty,
        };
        Ok(bytes)
    }

    /// Fails when a segment is no longer what recovery read: a file shorter than at open, or
    /// a mapped page lost to a truncation (see [`crate::io::sigbus`]). Recovery calls this
    /// after the scan and before its marker, so a journal truncated underneath it is an
    /// error and never a silently shorter replay.
    pub fn check_unchanged(&self) -> Result<()> {
        for (meta, slot) in self.segments.iter().zip(&self.cache) {
            let lost = match &*slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner) {
                Cached::Kept(SegmentBytes::Mapped(m)) => m.lost_pages(),
                _ => false,
            };
            let len = std::fs::metadata(&meta.path).map_err(|e| Error::io(&meta.path, "stat segment", e))?.len();
            if lost || len < meta.len {
                return Err(Error::io(
                    &meta.path,
                    "re-check segment",
                    std::io::Error::other(format!(
                        "segment shrank during recovery ({} -> {len} bytes); run recovery again",
                        meta.len
                    )),
                ));
            }
        }
        Ok(())
    }
}
