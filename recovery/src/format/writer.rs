//! Journal writer: appends records to segment files, cutting them into fragments.
//!
//! Used by the workload generator and by tests; recovery itself never writes the journal.
//! Records never span segments: when a record does not fit in the rest of the current
//! segment, a new segment is started.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::fragment::{encode_fragment, fragment_payload_max, kinds, FRAGMENT_HEADER_LEN};
use super::record::{Record, RECORD_LEN_MAX};
use super::segment::{segment_file_name, SegmentHeader, BLOCK_SIZE_MAX, BLOCK_SIZE_MIN, FLAG_STEAL, FLAG_SYNC_MARKERS};
use crate::error::{Error, Result};

/// Settings of a journal being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterConfig {
    /// Journal block size in bytes (power of two, 4 KiB to 1 MiB). Default 32 KiB.
    pub block_size: u32,
    /// Data blocks per segment (the header block comes on top). Default 512 (16 MiB).
    pub segment_blocks: u64,
    /// Identity of the image the journal belongs to.
    pub image_id: u64,
    /// Image block size, recorded in every segment header.
    pub image_block_size: u32,
    /// Steal policy: records carry undo images.
    pub steal: bool,
    /// Seed from which each segment's salt is derived.
    pub salt_seed: u64,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            block_size: 32768,
            segment_blocks: 512,
            image_id: 0,
            image_block_size: 4096,
            steal: false,
            salt_seed: 0,
        }
    }
}

/// Where one appended record landed, in global journal positions (the byte offset within the
/// concatenation of all segment files, headers included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The record's LSN.
    pub lsn: u64,
    /// Global position of its first fragment.
    pub start: u64,
    /// Global position just past its last fragment.
    pub end: u64,
}

/// A segment file the writer produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Segment sequence number.
    pub seq: u64,
    /// Path of the file.
    pub path: PathBuf,
    /// Global position of the file's first byte.
    pub base: u64,
    /// File length in bytes.
    pub len: u64,
    /// The segment's salt.
    pub salt: u64,
}

/// Maps a global position to (segment index, offset in that file). Positions at the very end
/// of a segment map to that segment.
pub fn locate(segments: &[SegmentInfo], pos: u64) -> Option<(usize, u64)> {
    segments.iter().position(|s| pos >= s.base && pos <= s.base + s.len).map(|i| (i, pos - segments[i].base))
}

/// Salt of segment `seq` for a journal written with `salt_seed` (splitmix64 of both).
pub fn segment_salt(salt_seed: u64, seq: u64) -> u64 {
    let mut z = salt_seed ^ seq.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

struct OpenSegment {
    file: File,
    info: SegmentInfo,
    /// Bytes appended but not yet written to the file.
    pending: Vec<u8>,
    /// Length of the segment including pending bytes.
    len: u64,
}

/// Appends records to a journal directory.
pub struct JournalWriter {
    dir: PathBuf,
    cfg: WriterConfig,
    current: Option<OpenSegment>,
    done: Vec<SegmentInfo>,
    next_lsn: u64,
    next_seq: u64,
    next_base: u64,
    scratch: Vec<u8>,
    /// Sync markers on ([`JournalWriter::enable_sync_markers`]).
    markers: bool,
    /// With markers: where the journal was durable at the last sync, and whether the next
    /// append must first say so.
    synced: (u64, u64),
    sync_due: bool,
}

/// Flush pending bytes once this many accumulate.
const PENDING_FLUSH_BYTES: usize = 4 << 20;

impl JournalWriter {
    /// Starts a new journal in `dir` (created if missing; must hold no segments).
    pub fn create(dir: &Path, cfg: WriterConfig) -> Result<Self> {
        if !cfg.block_size.is_power_of_two() || !(BLOCK_SIZE_MIN..=BLOCK_SIZE_MAX).contains(&cfg.block_size) {
            return Err(Error::Config(format!(
                "journal block size {} is not a power of two in 4 KiB..1 MiB",
                cfg.block_size
            )));
        }
        let usable = cfg.segment_blocks.saturating_mul(u64::from(cfg.block_size) - FRAGMENT_HEADER_LEN as u64 * 2);
        if usable < RECORD_LEN_MAX as u64 {
            return Err(Error::Config(format!(
                "segment of {} blocks of {} bytes cannot hold a record of the maximum size",
                cfg.segment_blocks, cfg.block_size
            )));
        }
        if cfg.segment_blocks > u64::from(u32::MAX)
            || (1 + cfg.segment_blocks) * u64::from(cfg.block_size) > super::segment::SEGMENT_BYTES_MAX
        {
            return Err(Error::Config(format!(
                "segments of {} blocks of {} bytes exceed the format's {} byte limit",
                cfg.segment_blocks,
                cfg.block_size,
                super::segment::SEGMENT_BYTES_MAX
            )));
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, "create journal directory", e))?;
        Ok(JournalWriter {
            dir: dir.to_path_buf(),
            cfg,
            current: None,
            done: Vec::new(),
            next_lsn: 1,
            next_seq: 1,
            next_base: 0,
            scratch: Vec::with_capacity(RECORD_LEN_MAX),
            markers: false,
            synced: (0, 0),
            sync_due: false,
        })
    }

    /// Continues a journal in `dir` after a recovery: new segments start at sequence
    /// `next_seq` (after every existing one) and LSN `next_lsn` (right after the last durable
    /// record), so a torn tail of the old last segment is never appended to.
    pub fn resume(dir: &Path, cfg: WriterConfig, next_seq: u64, next_lsn: u64) -> Result<Self> {
        let mut w = Self::create(dir, cfg)?;
        w.next_seq = next_seq;
        w.next_lsn = next_lsn;
        Ok(w)
    }

    /// Makes the journal tell recovery where it was durable (FORMAT.md, "Sync markers"):
    /// segments get [`FLAG_SYNC_MARKERS`](super::segment::FLAG_SYNC_MARKERS), each segment's
    /// header is fsync'd when it is created and the whole segment before the next one, and
    /// the first append after every [`sync`](Self::sync) is preceded by a SYNC record. A
    /// writer that may lose unsynced writes in any order (a power cut) needs it: recovery can
    /// then end the journal at damage that only unsynced data follows.
    pub fn enable_sync_markers(&mut self) {
        self.markers = true;
    }

    /// The LSN the next record will get.
    pub fn next_lsn(&self) -> u64 {
        self.next_lsn
    }

    /// Global position of the next byte to be written.
    pub fn position(&self) -> u64 {
        match &self.current {
            Some(s) => s.info.base + s.len,
            None => self.next_base,
        }
    }

    /// Where a record of `len` bytes that starts at `offset` ends, after fragmenting.
    fn end_after(&self, mut offset: u64, len: usize) -> u64 {
        let bs = u64::from(self.cfg.block_size);
        let mut rem = len;
        loop {
            let space = bs - offset % bs;
            if space <= FRAGMENT_HEADER_LEN as u64 {
                offset += space;
                continue;
            }
            let take = rem.min(space as usize - FRAGMENT_HEADER_LEN).min(fragment_payload_max());
            offset += (FRAGMENT_HEADER_LEN + take) as u64;
            rem -= take;
            if rem == 0 {
                return offset;
            }
        }
    }

    fn open_segment(&mut self) -> Result<()> {
        let seq = self.next_seq;
        let salt = segment_salt(self.cfg.salt_seed, seq);
        let header = SegmentHeader {
            flags: if self.cfg.steal { FLAG_STEAL } else { 0 } | if self.markers { FLAG_SYNC_MARKERS } else { 0 },
            block_size: self.cfg.block_size,
            segment_seq: seq,
            salt,
            image_id: self.cfg.image_id,
            first_lsn: self.next_lsn,
            image_block_size: self.cfg.image_block_size,
            segment_blocks: self.cfg.segment_blocks as u32,
        };
        let path = self.dir.join(segment_file_name(seq));
        let mut pending = header.encode();
        let len = pending.len() as u64;
        let file = if self.markers {
            // The segment appears whole-headered or not at all: written and synced under a
            // temporary name, then renamed into place.
            let tmp = self.dir.join(format!("{}.tmp", segment_file_name(seq)));
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)
                .map_err(|e| Error::io(&tmp, "create segment", e))?;
            f.write_all(&pending).map_err(|e| Error::io(&tmp, "write segment header", e))?;
            f.sync_data().map_err(|e| Error::io(&tmp, "fsync segment", e))?;
            if path.exists() {
                return Err(Error::io(&path, "create segment", std::io::ErrorKind::AlreadyExists.into()));
            }
            std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, "rename segment into place", e))?;
            let d = File::open(&self.dir).map_err(|e| Error::io(&self.dir, "open journal directory", e))?;
            d.sync_all().map_err(|e| Error::io(&self.dir, "fsync journal directory", e))?;
            pending.clear();
            f
        } else {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(|e| Error::io(&path, "create segment", e))?
        };
        self.current = Some(OpenSegment {
            file,
            info: SegmentInfo { seq, path, base: self.next_base, len: 0, salt },
            pending,
            len,
        });
        self.next_seq += 1;
        Ok(())
    }

    fn close_segment(&mut self) -> Result<()> {
        if let Some(mut seg) = self.current.take() {
            Self::write_pending(&mut seg)?;
            if self.markers {
                seg.file.sync_data().map_err(|e| Error::io(&seg.info.path, "fsync segment", e))?;
            }
            seg.info.len = seg.len;
            self.next_base = seg.info.base + seg.len;
            self.done.push(seg.info);
        }
        Ok(())
    }

    fn write_pending(seg: &mut OpenSegment) -> Result<()> {
        if !seg.pending.is_empty() {
            seg.file.write_all(&seg.pending).map_err(|e| Error::io(&seg.info.path, "write segment", e))?;
            seg.pending.clear();
        }
        Ok(())
    }

    /// Appends one record of transaction `txid` and returns where it landed.
    pub fn append(&mut self, txid: u64, record: &Record<'_>) -> Result<Appended> {
        if self.markers && self.sync_due {
            self.sync_due = false;
            let mut scratch = std::mem::take(&mut self.scratch);
            scratch.clear();
            super::record::encode_sync(self.next_lsn, self.synced.0, self.synced.1, &mut scratch);
            let r = self.append_encoded(&scratch);
            self.scratch = scratch;
            r?;
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        record.encode_into(self.next_lsn, txid, &mut scratch);
        let result = self.append_encoded(&scratch);
        self.scratch = scratch;
        result
    }

    fn append_encoded(&mut self, rec: &[u8]) -> Result<Appended> {
        let bs = u64::from(self.cfg.block_size);
        let capacity = bs * (1 + self.cfg.segment_blocks);
        if let Some(seg) = &self.current {
            if self.end_after(seg.len, rec.len()) > capacity {
                self.close_segment()?;
            }
        }
        if self.current.is_none() {
            self.open_segment()?;
        }
        let salt = segment_salt(self.cfg.salt_seed, self.next_seq - 1);
        let seg = self.current.as_mut().ok_or(Error::Config("no open segment".into()))?;
        let mut start = None;
        let mut rest = rec;
        let mut first = true;
        while !rest.is_empty() {
            let space = bs - seg.len % bs;
            if space <= FRAGMENT_HEADER_LEN as u64 {
                seg.pending.extend(std::iter::repeat_n(0u8, space as usize));
                seg.len += space;
                continue;
            }
            let take = rest.len().min(space as usize - FRAGMENT_HEADER_LEN).min(fragment_payload_max());
            let last = take == rest.len();
            let kind = match (first, last) {
                (true, true) => kinds::FULL,
                (true, false) => kinds::FIRST,
                (false, false) => kinds::MIDDLE,
                (false, true) => kinds::LAST,
            };
            start.get_or_insert(seg.info.base + seg.len);
            encode_fragment(salt, kind, &rest[..take], &mut seg.pending);
            seg.len += (FRAGMENT_HEADER_LEN + take) as u64;
            rest = &rest[take..];
            first = false;
        }
        let end = seg.info.base + seg.len;
        if seg.pending.len() >= PENDING_FLUSH_BYTES {
            Self::write_pending(seg)?;
        }
        let lsn = self.next_lsn;
        self.next_lsn += 1;
        Ok(Appended { lsn, start: start.unwrap_or(end), end })
    }

    /// Writes buffered bytes to the current segment file (no fsync).
    pub fn flush(&mut self) -> Result<()> {
        match self.current.as_mut() {
            Some(seg) => Self::write_pending(seg),
            None => Ok(()),
        }
    }

    /// Writes buffered bytes and fsyncs the current segment.
    pub fn sync(&mut self) -> Result<()> {
        if let Some(seg) = self.current.as_mut() {
            Self::write_pending(seg)?;
            seg.file.sync_data().map_err(|e| Error::io(&seg.info.path, "fsync segment", e))?;
            self.synced = (seg.info.seq, seg.len);
            self.sync_due = true;
        }
        Ok(())
    }

    /// Finishes the journal: writes everything, fsyncs, and returns the segments written.
    pub fn finish(mut self) -> Result<Vec<SegmentInfo>> {
        self.sync()?;
        self.close_segment()?;
        let dir = File::open(&self.dir).map_err(|e| Error::io(&self.dir, "open journal directory", e))?;
        dir.sync_all().map_err(|e| Error::io(&self.dir, "fsync journal directory", e))?;
        Ok(std::mem::take(&mut self.done))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::fragment::{SegmentDecoder, Step};
    use crate::format::record::{decode_body, decode_header};

    #[test]
    fn records_roundtrip_across_blocks_and_segments() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = WriterConfig { block_size: 4096, segment_blocks: 80, ..WriterConfig::default() };
        let mut w = JournalWriter::create(dir.path(), cfg).expect("create");
        let payload: Vec<u8> = (0..4096u32).map(|i| (i * 7) as u8).collect();
        let mut appended = Vec::new();
        for i in 0..300u64 {
            let len = 1 + (i as usize * 37) % 4096;
            let rec = Record::Write {
                block: i,
                offset: 0,
                redo: &payload[..len],
                undo: None,
                full: false,
                compensation: false,
            };
            appended.push(w.append(i + 1, &rec).expect("append"));
        }
        let segs = w.finish().expect("finish");
        assert!(segs.len() > 1, "expected several segments, got {}", segs.len());
        let mut lsn = 1;
        for seg in &segs {
            let data = std::fs::read(&seg.path).expect("read");
            assert_eq!(data.len() as u64, seg.len);
            let h = SegmentHeader::decode(&data).expect("header");
            assert_eq!(h.first_lsn, lsn);
            let mut d = SegmentDecoder::new(&data, h.block_size, h.salt);
            loop {
                match d.next_step() {
                    Step::Record { start, end, bytes, .. } => {
                        let (rh, body) = decode_header(bytes).expect("record");
                        assert_eq!(rh.lsn, lsn);
                        let a = appended[(lsn - 1) as usize];
                        assert_eq!((a.start, a.end), (seg.base + start as u64, seg.base + end as u64));
                        let Record::Write { block, redo, .. } = decode_body(&rh, body).expect("body") else {
                            panic!("not a write")
                        };
                        assert_eq!(block, lsn - 1);
                        assert_eq!(redo, &payload[..redo.len()]);
                        lsn += 1;
                    }
                    Step::End { .. } => break,
                    Step::Damage { offset, kind } => panic!("damage at {offset}: {kind}"),
                }
            }
        }
        assert_eq!(lsn, 301);
        assert_eq!(locate(&segs, segs[1].base + 5), Some((1, 5)));
    }
}
