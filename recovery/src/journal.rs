//! Locating a journal's segments and reading their bytes.
//!
//! All journal reads go through [`Journal::load`], the one seam where the I/O backend is
//! chosen.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use crate::error::{CorruptKind, Error, Result};
use crate::format::segment::{parse_segment_file_name, SegmentHeader, SEGMENT_HEADER_LEN};
use crate::RecoveryMode;

/// How journal segments are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IoBackend {
    /// Map each segment read-only (memmap2). Default: no copy between page cache and decoder.
    #[default]
    Mmap,
    /// Read each segment whole into a buffer with read(2).
    Read,
}

impl std::str::FromStr for IoBackend {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "mmap" => Ok(IoBackend::Mmap),
            "read" => Ok(IoBackend::Read),
            _ => Err(Error::Config(format!("unknown I/O backend `{s}` (expected mmap or read)"))),
        }
    }
}

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

/// The bytes of one segment, mapped or read.
pub enum SegmentBytes {
    /// A read-only mapping, shared by every pass over the segment.
    Mapped(Arc<memmap2::Mmap>),
    /// A heap copy.
    Owned(Vec<u8>),
}

impl std::ops::Deref for SegmentBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            SegmentBytes::Mapped(m) => m,
            SegmentBytes::Owned(v) => v,
        }
    }
}

/// The ordered, validated segments of a journal directory.
#[derive(Debug, Clone)]
pub struct Journal {
    /// The journal directory.
    pub dir: PathBuf,
    /// Segments in sequence order.
    pub segments: Vec<SegmentMeta>,
    /// Segments passed over (a torn header of the last segment, or damaged headers in
    /// skip-corrupt mode).
    pub notes: Vec<LocateNote>,
    /// How segments are read.
    pub backend: IoBackend,
    /// Mappings made so far (mmap backend), kept so later passes do not map again.
    maps: Vec<OnceLock<Arc<memmap2::Mmap>>>,
}

impl Journal {
    /// Lists, orders and validates the segments of `dir` against the image identity.
    pub fn open(
        dir: &Path,
        image_id: u64,
        image_block_size: u32,
        mode: RecoveryMode,
        backend: IoBackend,
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
            if segments.is_empty() && header.segment_seq != 1 {
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
        let maps = segments.iter().map(|_| OnceLock::new()).collect();
        Ok(Journal { dir: dir.to_path_buf(), segments, notes, backend, maps })
    }

    /// Total bytes of the segment files recovery reads.
    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.len).sum()
    }

    /// Whether the journal was written under the steal policy.
    pub fn steal(&self) -> bool {
        self.segments.first().is_some_and(|s| s.header.steal())
    }

    /// Loads the bytes of segment `index` through the configured backend.
    pub fn load(&self, index: usize) -> Result<SegmentBytes> {
        let meta = &self.segments[index];
        if let Some(m) = self.maps[index].get() {
            return Ok(SegmentBytes::Mapped(Arc::clone(m)));
        }
        let file = File::open(&meta.path).map_err(|e| Error::io(&meta.path, "open segment", e))?;
        let bytes = match self.backend {
            IoBackend::Mmap => {
                let m = Arc::new(map_segment(&file, &meta.path, meta.len)?);
                SegmentBytes::Mapped(Arc::clone(self.maps[index].get_or_init(|| m)))
            }
            IoBackend::Read => {
                let mut buf = Vec::with_capacity(meta.len as usize);
                std::io::Read::read_to_end(&mut &file, &mut buf)
                    .map_err(|e| Error::io(&meta.path, "read segment", e))?;
                SegmentBytes::Owned(buf)
            }
        };
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
        Ok(bytes)
    }
}

/// Maps a segment read-only. This is the only place the engine maps a file.
///
/// Contract: the file must not be truncated or written while the mapping lives; a truncation
/// turns reads of the lost pages into SIGBUS. Recovery holds the directory's exclusive lock
/// (`LOCK`) for its whole run and never writes segments, and every cooperating writer takes
/// the same lock, so the contract holds for all fastrec processes. A process that ignores the
/// lock and truncates a segment mid-recovery is outside what the engine can defend against.
fn map_segment(file: &File, path: &Path, len: u64) -> Result<memmap2::Mmap> {
    let mut opts = memmap2::MmapOptions::new();
    // Populating page tables up front is cheaper than a fault per page, for segments of a
    // sensible size; a huge one is faulted in as it is read.
    if len <= POPULATE_BYTES_MAX {
        opts.populate();
    }
    // SAFETY: see the function's contract above: the file is opened read-only, the mapping
    // is private to this process, and the directory lock excludes cooperating writers for the
    // mapping's lifetime.
    unsafe { opts.map(file) }.map_err(|e| Error::io(path, "map segment", e))
}

/// Segments up to this size are mapped with `MAP_POPULATE`.
const POPULATE_BYTES_MAX: u64 = 256 << 20;
