//! What the fuzz targets do with their input, shared by the cargo-fuzz binaries
//! (`fuzz/fuzz_targets/*.rs`) and the stable test `tests/fuzz_regressions.rs`, which includes
//! this file by path so that a saved input replays through exactly the code that found it.
//!
//! - [`record`]: the record decoder (`recovery::format::record`) over arbitrary bytes.
//! - [`segment`]: the segment header decoder and the fragment scanner
//!   (`recovery::format::fragment::SegmentDecoder`) over an arbitrary segment file, walked the
//!   way the engine's scan walks it (resynchronising after damage).
//! - [`recover_dir`]: a whole recovery directory built from the input ([`DirInput`]),
//!   recovered in every mode with one and two workers.
//!
//! Every harness accepts any input: an `Err` from the engine is a correct answer, a panic is a
//! finding. Besides the engine's own panics, each harness asserts properties the format and
//! the design promise (a re-encoded record equals its bytes; the decoder always moves forward;
//! parallel recovery equals serial; a mode that loses less never loses more; a failed recovery
//! leaves the image untouched; recovering a recovered directory again changes nothing).
//!
//! Random bytes rarely carry valid checksums, so inputs can ask the harness to recompute them
//! (a control bit, or a per-file flag in [`DirInput`]): mutations of valid seeds then reach the
//! code behind the checksums instead of stopping at the first check.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use recovery::crc::{crc32c, crc32c_append};
use recovery::format::fragment::{fragment_crc, kinds, SegmentDecoder, Step, FRAGMENT_HEADER_LEN};
use recovery::format::record::{decode_body, decode_header, decode_header_with, Record, RECORD_HEADER_LEN};
use recovery::format::record::{RECORD_BODY_MAX, RECORD_LEN_MAX};
use recovery::format::segment::{SegmentHeader, BLOCK_SIZE_MAX, BLOCK_SIZE_MIN, SEGMENT_BYTES_MAX, SEGMENT_HEADER_LEN};
use recovery::{Error, ImageIo, IoBackend, IoOptions, RecoverOptions, RecoveryMode};

fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

// ---------------------------------------------------------------------------------------------
// record

/// Input: a control byte, then the bytes of one whole record. Control bit 0 recomputes the
/// record checksum first.
pub fn record(data: &[u8]) {
    let Some((&ctrl, rest)) = data.split_first() else {
        return;
    };
    let mut bytes = rest.to_vec();
    if ctrl & 1 != 0 {
        fix_record_crc(&mut bytes);
    }
    check_record(&bytes);
}

fn record_crc(rec: &[u8]) -> u32 {
    crc32c_append(crc32c(&rec[..24]), &rec[RECORD_HEADER_LEN..])
}

fn fix_record_crc(rec: &mut [u8]) {
    if rec.len() >= RECORD_HEADER_LEN {
        let crc = record_crc(rec);
        rec[24..28].copy_from_slice(&crc.to_le_bytes());
    }
}

/// Decodes `bytes` as one record with and without checksum verification and checks that the
/// two agree, that every error is located inside the record, and that a decoded record
/// encodes back to the same bytes (the format has one encoding per record).
fn check_record(bytes: &[u8]) {
    let verified = decode_header(bytes);
    let unverified = decode_header_with(bytes, false);
    let crc_ok = bytes.len() >= RECORD_HEADER_LEN && le_u32(bytes, 24) == record_crc(bytes);
    if crc_ok || verified.is_ok() {
        assert_eq!(verified, unverified, "verification changed more than the checksum check");
    } else if verified != unverified {
        assert!(
            matches!(verified, Err((24, recovery::CorruptKind::Checksum { .. }))),
            "verified {verified:?}, unverified {unverified:?}"
        );
    }
    let (header, body) = match unverified {
        Ok(ok) => ok,
        Err((at, kind)) => {
            assert!(at <= bytes.len(), "header error {kind:?} at {at} outside a {}-byte record", bytes.len());
            return;
        }
    };
    assert_eq!(body.len(), header.body_len as usize);
    assert!(body.len() <= RECORD_BODY_MAX);
    assert!(header.lsn != 0 && header.txid != 0);
    match decode_body(&header, body) {
        Err((at, kind)) => {
            assert!(at <= bytes.len(), "body error {kind:?} at {at} outside a {}-byte record", bytes.len())
        }
        Ok(Record::Optional { rec_type }) => assert_eq!(rec_type, header.rec_type),
        Ok(rec) => {
            assert_eq!(rec.rec_type(), header.rec_type);
            let mut again = Vec::with_capacity(bytes.len());
            rec.encode_into(header.lsn, header.txid, &mut again);
            assert_eq!(again.len(), bytes.len(), "{rec:?} re-encodes to another length");
            assert!(
                again[..24] == bytes[..24] && again[28..] == bytes[28..],
                "{rec:?} re-encodes to other bytes (flags {:#04x})",
                header.flags
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// segment

/// Input: a control byte, the 64-byte segment header, then the segment's data blocks. The
/// header block is zero-padded to the header's block size (4096 when the header does not
/// decode), so that inputs reach the fragment scanner without carrying the padding. Control
/// bits: 0 recomputes the header checksum, 1 the fragment and record checksums, 2 compares a
/// clean verified walk with the trusted (checksum-free) decoder.
pub fn segment(data: &[u8]) {
    let Some((&ctrl, rest)) = data.split_first() else {
        return;
    };
    let head_len = rest.len().min(SEGMENT_HEADER_LEN);
    let mut file = rest[..head_len].to_vec();
    if ctrl & 1 != 0 && head_len == SEGMENT_HEADER_LEN {
        let crc = crc32c(&file[..60]);
        file[60..64].copy_from_slice(&crc.to_le_bytes());
    }
    let header = SegmentHeader::decode(&file);
    let (block_size, salt) = match &header {
        Ok(h) => {
            check_header(h);
            (h.block_size as usize, h.salt)
        }
        Err((at, kind)) => {
            assert!(*at <= SEGMENT_HEADER_LEN as u64, "header error {kind:?} at {at}");
            (BLOCK_SIZE_MIN as usize, 0)
        }
    };
    if rest.len() > SEGMENT_HEADER_LEN {
        file.resize(block_size, 0);
        file.extend_from_slice(&rest[SEGMENT_HEADER_LEN..]);
    }
    if ctrl & 2 != 0 {
        fix_fragments(&mut file, block_size, salt);
    }
    let accepted = walk_segment(&file, block_size, salt);
    if ctrl & 4 != 0 {
        if let Some(records) = accepted {
            assert_eq!(trusted_records(&file, block_size, salt), records, "the trusted decoder read other records");
        }
    }
}

fn check_header(h: &SegmentHeader) {
    assert!(h.block_size.is_power_of_two() && (BLOCK_SIZE_MIN..=BLOCK_SIZE_MAX).contains(&h.block_size));
    assert!(h.image_block_size.is_power_of_two() && (512..=65536).contains(&h.image_block_size));
    assert!(h.segment_seq >= 1 && h.first_lsn >= 1 && h.segment_blocks >= 1);
    assert!(h.capacity_bytes() <= SEGMENT_BYTES_MAX);
}

type Accepted = Vec<(usize, usize, Vec<u8>)>;

/// Walks the segment as the scan does in skip-corrupt mode: records are checked, damage is
/// passed over to the next record start. Returns the records when the walk met no damage and
/// nothing valid follows its end (the case where a trusted re-read must see the same).
fn walk_segment(file: &[u8], block_size: usize, salt: u64) -> Option<Accepted> {
    let mut dec = SegmentDecoder::new(file, block_size as u32, salt);
    for b in (block_size..file.len()).step_by(block_size) {
        if let Some((kind, len)) = dec.valid_fragment_at(b) {
            assert!((kinds::FULL..=kinds::LAST).contains(&kind) && len > 0);
            assert!(b + FRAGMENT_HEADER_LEN + len <= file.len().min(b + block_size));
        }
        if let Some(p) = dec.record_start_from(b) {
            assert!(p >= b && p < b + block_size && p < file.len());
        }
    }
    // Every step moves the position forward, so twice the length bounds a terminating walk.
    let steps_max = 2 * file.len() + 64;
    let mut clean = true;
    let mut accepted = Vec::new();
    for _ in 0..steps_max {
        let before = dec.position();
        let damage_at = match dec.next_step() {
            Step::Record { start, end, bytes, single } => {
                assert!(start >= block_size && start < end && end <= file.len(), "record {start}..{end}");
                assert!(end > before, "a record ending at {end} from position {before}");
                assert!(bytes.len() <= RECORD_LEN_MAX);
                if single {
                    assert_eq!(bytes.len() + FRAGMENT_HEADER_LEN, end - start);
                }
                check_record(bytes);
                if clean {
                    accepted.push((start, end, bytes.to_vec()));
                }
                continue;
            }
            Step::End { offset } => {
                assert!(offset <= file.len(), "end at {offset} past {}", file.len());
                offset
            }
            Step::Damage { offset, kind } => {
                assert!(offset < file.len().max(block_size + 1), "{kind:?} at {offset} past {}", file.len());
                clean = false;
                offset
            }
        };
        match dec.next_valid_after(damage_at) {
            Some(p) => {
                assert!(p > damage_at && p < file.len(), "resync from {damage_at} to {p}");
                clean = false;
                dec.seek(p, true);
            }
            None => return clean.then_some(accepted),
        }
    }
    panic!("the segment decoder made no progress in {steps_max} steps (at {})", dec.position());
}

fn trusted_records(file: &[u8], block_size: usize, salt: u64) -> Accepted {
    let mut dec = SegmentDecoder::new_trusted(file, block_size as u32, salt);
    let mut out = Vec::new();
    for _ in 0..2 * file.len() + 64 {
        match dec.next_step() {
            Step::Record { start, end, bytes, .. } => out.push((start, end, bytes.to_vec())),
            Step::End { .. } => return out,
            Step::Damage { offset, kind } => {
                panic!("the trusted decoder found {kind:?} at {offset} in a clean segment")
            }
        }
    }
    panic!("the trusted decoder made no progress");
}

/// Fragment headers that are structurally valid, as the decoder would meet them; `None` marks
/// a break (zero fill or a bad header) after which the walk goes on at the next block.
fn walk_fragments(file: &[u8], block_size: usize) -> Vec<Option<(usize, u8, usize)>> {
    let mut out = Vec::new();
    let mut pos = block_size;
    while pos < file.len() {
        let block_end = (pos / block_size + 1) * block_size;
        if block_end - pos <= FRAGMENT_HEADER_LEN {
            pos = block_end;
            continue;
        }
        if pos + FRAGMENT_HEADER_LEN > file.len() {
            break;
        }
        let kind = file[pos + 6];
        let len = usize::from(le_u16(file, pos + 4));
        let end = pos + FRAGMENT_HEADER_LEN + len;
        if (kinds::FULL..=kinds::LAST).contains(&kind)
            && file[pos + 7] == 0
            && len > 0
            && end <= block_end.min(file.len())
        {
            out.push(Some((pos, kind, len)));
            pos = end;
        } else {
            out.push(None);
            pos = block_end;
        }
    }
    out
}

/// Recomputes the record checksum of every complete record and then every fragment checksum
/// of a segment file, under `salt`.
fn fix_fragments(file: &mut [u8], block_size: usize, salt: u64) {
    let frags = walk_fragments(file, block_size);
    let mut pieces: Vec<(usize, usize)> = Vec::new();
    let mut open = false;
    for f in &frags {
        let Some((pos, kind, len)) = *f else {
            open = false;
            continue;
        };
        let payload = (pos + FRAGMENT_HEADER_LEN, len);
        match kind {
            kinds::FULL => {
                fix_record_in(file, &[payload]);
                open = false;
            }
            kinds::FIRST => {
                pieces.clear();
                pieces.push(payload);
                open = true;
            }
            kinds::MIDDLE if open => pieces.push(payload),
            kinds::LAST if open => {
                pieces.push(payload);
                fix_record_in(file, &pieces);
                open = false;
            }
            _ => open = false,
        }
    }
    for (pos, kind, len) in frags.into_iter().flatten() {
        let body = pos + FRAGMENT_HEADER_LEN;
        let crc = fragment_crc(salt, len as u16, kind, &file[body..body + len]);
        file[pos..pos + 4].copy_from_slice(&crc.to_le_bytes());
    }
}

/// Fixes the checksum of the record whose bytes are the concatenation of `pieces` (offset,
/// length) of `file`.
fn fix_record_in(file: &mut [u8], pieces: &[(usize, usize)]) {
    let total: usize = pieces.iter().map(|p| p.1).sum();
    if !(RECORD_HEADER_LEN..=RECORD_LEN_MAX).contains(&total) {
        return;
    }
    let mut rec = Vec::with_capacity(total);
    for &(at, len) in pieces {
        rec.extend_from_slice(&file[at..at + len]);
    }
    let crc = record_crc(&rec).to_le_bytes();
    for (i, byte) in crc.into_iter().enumerate() {
        let mut off = 24 + i;
        for &(at, len) in pieces {
            if off < len {
                file[at + off] = byte;
                break;
            }
            off -= len;
        }
    }
}

/// Recomputes the header checksum of a segment file, then (when the header decodes) its
/// fragment and record checksums.
fn fix_segment(file: &mut [u8]) {
    if file.len() < SEGMENT_HEADER_LEN {
        return;
    }
    let crc = crc32c(&file[..60]);
    file[60..64].copy_from_slice(&crc.to_le_bytes());
    if let Ok(h) = SegmentHeader::decode(file) {
        fix_fragments(file, h.block_size as usize, h.salt);
    }
}

// ---------------------------------------------------------------------------------------------
// recover_dir

/// Largest file a [`DirInput`] creates: keeps every execution small whatever lengths it asks.
pub const FILE_BYTES_MAX: usize = 1 << 20;
/// Files a [`DirInput`] creates at most; entries after these are ignored.
pub const FILES_MAX: usize = 12;

/// The files a recovery directory may hold, as [`DirInput`] entries name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// `image.img`. Fix: superblock checksum, and the file length made `block_count *
    /// block_size` when that is at most [`FILE_BYTES_MAX`].
    Image,
    /// `journal/seg-<arg>.wal`. Fix: header, record and fragment checksums.
    Segment,
    /// `checkpoints/ckpt-<arg>.fcr`. Fix: the trailing checksum.
    Checkpoint,
    /// `checkpoints/latest`. Fix: its checksum.
    Pointer,
    /// `recovered.json`. Fix: replaced by a marker naming the journal as written, with the
    /// content's first 8 bytes as `last_lsn`.
    Marker,
    /// `recovery.cpl`. Fix: the journal tag (of the journal as written) and the checksum.
    CopyLog,
    /// `checkpoints/ckpt-<arg>.fcr.tmp`, a half-written record recovery must never read.
    CheckpointTmp,
    /// `snapshots/snap-<arg>.fcp`. Fix: the manifest checksum.
    Snapshot,
}

impl FileKind {
    const ALL: [FileKind; 8] = [
        FileKind::Image,
        FileKind::Segment,
        FileKind::Checkpoint,
        FileKind::Pointer,
        FileKind::Marker,
        FileKind::CopyLog,
        FileKind::CheckpointTmp,
        FileKind::Snapshot,
    ];

    fn code(self) -> u8 {
        FileKind::ALL.iter().position(|k| *k == self).unwrap_or(0) as u8
    }

    fn path(self, arg: u16) -> String {
        let seq = u64::from(arg);
        match self {
            FileKind::Image => "image.img".into(),
            FileKind::Segment => format!("journal/seg-{seq:016x}.wal"),
            FileKind::Checkpoint => format!("checkpoints/ckpt-{seq:016x}.fcr"),
            FileKind::Pointer => "checkpoints/latest".into(),
            FileKind::Marker => "recovered.json".into(),
            FileKind::CopyLog => "recovery.cpl".into(),
            FileKind::CheckpointTmp => format!("checkpoints/ckpt-{seq:016x}.fcr.tmp"),
            FileKind::Snapshot => format!("snapshots/snap-{seq:016x}.fcp"),
        }
    }
}

/// One file of a [`DirInput`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirFile {
    /// Which file.
    pub kind: FileKind,
    /// Recompute what a mutation breaks (see [`FileKind`]).
    pub fix: bool,
    /// Sequence number in the file name (segments, checkpoint records, snapshots).
    pub arg: u16,
    /// File length: the content is zero-extended to it (capped at [`FILE_BYTES_MAX`]).
    pub len: u32,
    /// The file's leading bytes.
    pub content: Vec<u8>,
}

/// The input of [`recover_dir`]: an options byte, then entries `kind u8 | arg u16 | len u32 |
/// content length u32 | content`, little-endian, until the input ends. The low three bits of
/// `kind` pick the [`FileKind`], bit 3 asks for the fix-up. A short last entry keeps what is
/// there. The options byte: bit 0 `force`, bit 1 `--image-io pwrite`, bit 2 no checkpoints,
/// bit 3 `--from-snapshot`, bits 4-5 the read backend (mmap, read, pread, direct), bit 6 the
/// smallest memory budget (windows), bit 7 dependency statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirInput {
    /// The options byte.
    pub options: u8,
    /// The files, in input order (a later file with the same path replaces an earlier one).
    pub files: Vec<DirFile>,
}

/// Option bits of [`DirInput::options`].
pub mod options {
    /// Recover even when the marker says the journal was recovered.
    pub const FORCE: u8 = 1;
    /// Write the image with pwrite instead of through a mapping.
    pub const PWRITE: u8 = 2;
    /// Ignore checkpoint records.
    pub const NO_CHECKPOINTS: u8 = 4;
    /// Rebuild the image from the newest snapshot chain.
    pub const FROM_SNAPSHOT: u8 = 8;
}

const ENTRY_HEADER_LEN: usize = 11;

impl DirInput {
    /// Parses any bytes; never fails.
    pub fn parse(data: &[u8]) -> DirInput {
        let Some((&options, mut rest)) = data.split_first() else {
            return DirInput { options: 0, files: Vec::new() };
        };
        let mut files = Vec::new();
        while rest.len() >= ENTRY_HEADER_LEN && files.len() < FILES_MAX {
            let kind = FileKind::ALL[usize::from(rest[0] & 7)];
            let fix = rest[0] & 8 != 0;
            let arg = le_u16(rest, 1);
            let len = le_u32(rest, 3);
            let content_len = (le_u32(rest, 7) as usize).min(rest.len() - ENTRY_HEADER_LEN).min(FILE_BYTES_MAX);
            let content = rest[ENTRY_HEADER_LEN..ENTRY_HEADER_LEN + content_len].to_vec();
            rest = &rest[ENTRY_HEADER_LEN + content_len..];
            files.push(DirFile { kind, fix, arg, len, content });
        }
        DirInput { options, files }
    }

    /// The bytes [`parse`](Self::parse) reads back as `self`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.options];
        for f in &self.files {
            out.push(f.kind.code() | if f.fix { 8 } else { 0 });
            out.extend_from_slice(&f.arg.to_le_bytes());
            out.extend_from_slice(&f.len.to_le_bytes());
            out.extend_from_slice(&(f.content.len() as u32).to_le_bytes());
            out.extend_from_slice(&f.content);
        }
        out
    }

    /// The input that recreates the recovery files of `dir` (image, journal, checkpoints,
    /// snapshots, marker, copy log), with trailing zeros left to the length field and the
    /// fix-up asked for every file it leaves unchanged.
    pub fn from_dir(dir: &Path, options: u8) -> std::io::Result<DirInput> {
        let mut files = Vec::new();
        let mut add = |kind: FileKind, arg: u16, bytes: Vec<u8>| {
            let trimmed = bytes.len() - bytes.iter().rev().take_while(|b| **b == 0).count();
            let len = bytes.len() as u32;
            let content = bytes[..trimmed].to_vec();
            files.push(DirFile { kind, fix: false, arg, len, content });
        };
        add(FileKind::Image, 0, std::fs::read(dir.join("image.img"))?);
        for (sub, kind, prefix, suffix) in [
            ("journal", FileKind::Segment, "seg-", ".wal"),
            ("checkpoints", FileKind::Checkpoint, "ckpt-", ".fcr"),
            ("snapshots", FileKind::Snapshot, "snap-", ".fcp"),
        ] {
            let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
                continue;
            };
            let mut found = Vec::new();
            for e in entries {
                let e = e?;
                let name = e.file_name().to_string_lossy().into_owned();
                let seq = name.strip_prefix(prefix).and_then(|n| n.strip_suffix(suffix));
                if let Some(seq) = seq.and_then(|s| u16::from_str_radix(s, 16).ok()) {
                    found.push((seq, e.path()));
                }
            }
            found.sort();
            for (seq, path) in found {
                add(kind, seq, std::fs::read(path)?);
            }
        }
        for (kind, rel) in [
            (FileKind::Pointer, "checkpoints/latest"),
            (FileKind::Marker, "recovered.json"),
            (FileKind::CopyLog, "recovery.cpl"),
        ] {
            if let Ok(bytes) = std::fs::read(dir.join(rel)) {
                add(kind, 0, bytes);
            }
        }
        let mut input = DirInput { options, files };
        let fingerprint = input.fingerprint();
        for f in &mut input.files {
            let plain = f.bytes(false, &fingerprint);
            f.fix = f.kind != FileKind::Marker && f.bytes(true, &fingerprint) == plain;
        }
        Ok(input)
    }

    /// The journal as the engine lists it in its marker and copy-log tag: every segment file
    /// with its length, salt and first LSN (zeros when its header does not decode).
    fn fingerprint(&self) -> Vec<(String, u64, u64, u64)> {
        let mut segs: Vec<(String, Vec<u8>)> = Vec::new();
        for f in self.files.iter().filter(|f| f.kind == FileKind::Segment) {
            let name = f.kind.path(f.arg).trim_start_matches("journal/").to_string();
            let bytes = f.bytes(f.fix, &[]);
            segs.retain(|(n, _)| *n != name);
            segs.push((name, bytes));
        }
        let mut out: Vec<(String, u64, u64, u64)> = segs
            .into_iter()
            .map(|(name, bytes)| {
                let len = bytes.len() as u64;
                match SegmentHeader::decode(&bytes[..bytes.len().min(SEGMENT_HEADER_LEN)]) {
                    Ok(h) => (name, len, h.salt, h.first_lsn),
                    Err(_) => (name, len, 0, 0),
                }
            })
            .collect();
        out.sort();
        out
    }
}

impl DirInput {
    /// Whether a fix-up changes a checksum in a journal, checkpoint, copy-log or snapshot file.
    fn forges(&self) -> bool {
        let fingerprint = self.fingerprint();
        self.files.iter().any(|f| {
            f.fix
                && matches!(f.kind, FileKind::Segment | FileKind::Checkpoint | FileKind::CopyLog | FileKind::Snapshot)
                && f.bytes(true, &fingerprint) != f.bytes(false, &fingerprint)
        })
    }
}

impl DirFile {
    /// The file's bytes, fixed up when `fix` is set.
    fn bytes(&self, fix: bool, fingerprint: &[(String, u64, u64, u64)]) -> Vec<u8> {
        let len = (self.len as usize).min(FILE_BYTES_MAX).max(self.content.len());
        let mut b = self.content.clone();
        b.resize(len, 0);
        if !fix {
            return b;
        }
        match self.kind {
            FileKind::Image => {
                if b.len() >= 128 {
                    let (bs, count) = (le_u32(&b, 12) as usize, le_u64(&b, 16));
                    let want = count.checked_mul(bs as u64).filter(|n| *n >= 128 && *n <= FILE_BYTES_MAX as u64);
                    if let Some(n) = want {
                        b.resize(n as usize, 0);
                    }
                    let crc = crc32c(&b[..124]);
                    b[124..128].copy_from_slice(&crc.to_le_bytes());
                }
            }
            FileKind::Segment => fix_segment(&mut b),
            FileKind::Checkpoint | FileKind::CheckpointTmp | FileKind::CopyLog => {
                if self.kind == FileKind::CopyLog && b.len() >= 16 {
                    let tag = recovery::copylog::tag(&fingerprint);
                    b[8..16].copy_from_slice(&tag.to_le_bytes());
                }
                if b.len() >= 4 {
                    let end = b.len() - 4;
                    let crc = crc32c(&b[..end]);
                    b[end..].copy_from_slice(&crc.to_le_bytes());
                }
            }
            FileKind::Pointer => {
                if b.len() >= 20 {
                    let crc = crc32c(&b[..16]);
                    b[16..20].copy_from_slice(&crc.to_le_bytes());
                }
            }
            FileKind::Marker => {
                let mut lsn = [0u8; 8];
                let n = b.len().min(8);
                lsn[..n].copy_from_slice(&b[..n]);
                let files: Vec<String> =
                    fingerprint.iter().map(|(n, len, salt, first)| format!("[\"{n}\",{len},{salt},{first}]")).collect();
                b = format!(
                    "{{\"version\":1,\"files\":[{}],\"last_lsn\":{}}}",
                    files.join(","),
                    u64::from_le_bytes(lsn)
                )
                .into_bytes();
            }
            FileKind::Snapshot => {
                if b.len() >= 16 {
                    let m = le_u32(&b, 8) as usize;
                    if let Some(manifest) = b.get(16..16 + m) {
                        let crc = crc32c(manifest);
                        b[12..16].copy_from_slice(&crc.to_le_bytes());
                    }
                }
            }
        }
        b
    }
}

static DIRS: AtomicU64 = AtomicU64::new(0);

/// A scratch directory on a memory file system where there is one: recovery fsyncs, and the
/// fuzzer runs it thousands of times a second. `FASTREC_FUZZ_DIR` overrides the place.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        let base = std::env::var_os("FASTREC_FUZZ_DIR").map(PathBuf::from).unwrap_or_else(|| {
            let shm = Path::new("/dev/shm");
            if shm.is_dir() {
                shm.to_path_buf()
            } else {
                std::env::temp_dir()
            }
        });
        let n = DIRS.fetch_add(1, Ordering::Relaxed);
        Scratch(base.join(format!("fastrec-fuzz-{}-{n}", std::process::id())))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The directory's files, fixed up, by path.
fn materialise(input: &DirInput) -> Vec<(String, Vec<u8>)> {
    let fingerprint = input.fingerprint();
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    for f in &input.files {
        let path = f.kind.path(f.arg);
        let bytes = f.bytes(f.fix, &fingerprint);
        out.retain(|(p, _)| *p != path);
        out.push((path, bytes));
    }
    out
}

/// Writes the directory a [`recover_dir`] input describes to `dir` (replacing it), for
/// reading a finding with the `fastrec` command line.
pub fn write_input_dir(data: &[u8], dir: &Path) {
    write_dir(dir, &materialise(&DirInput::parse(data)));
}

fn write_dir(dir: &Path, files: &[(String, Vec<u8>)]) {
    let _ = std::fs::remove_dir_all(dir);
    for sub in ["journal", "checkpoints", "snapshots"] {
        std::fs::create_dir_all(dir.join(sub)).expect("create the scratch directory");
    }
    for (rel, bytes) in files {
        std::fs::write(dir.join(rel), bytes).expect("write a scratch file");
    }
}

fn read_image(dir: &Path) -> Option<Vec<u8>> {
    std::fs::read(dir.join("image.img")).ok()
}

fn recover_options(o: u8, mode: RecoveryMode, workers: usize) -> RecoverOptions {
    let backend = [IoBackend::Mmap, IoBackend::Read, IoBackend::Pread, IoBackend::Direct][usize::from((o >> 4) & 3)];
    RecoverOptions {
        mode,
        workers: Some(workers),
        workers_max: 2,
        // Tiny thresholds send inputs of a few KiB through the chunked and parallel paths.
        parallel_threshold: 0,
        chunk_bytes: 4096,
        batch_ops: 16,
        force: o & options::FORCE != 0,
        image_io: if o & options::PWRITE != 0 { ImageIo::Pwrite } else { ImageIo::Mmap },
        use_checkpoints: o & options::NO_CHECKPOINTS == 0,
        from_snapshot: o & options::FROM_SNAPSHOT != 0,
        memory_budget_bytes: if o & 64 != 0 { recovery::recover::MEMORY_BUDGET_MIN } else { 64 << 20 },
        dependency_stats: o & 128 != 0,
        io: IoOptions { backend, buffer_bytes: 4096, cache_bytes: 64 << 10, ..IoOptions::default() },
        ..RecoverOptions::default()
    }
}

/// What one recovery left: the image after it, or the error.
type Outcome = Result<Option<Vec<u8>>, String>;

/// Builds the directory described by [`DirInput::parse`] of `data` and recovers it in every
/// mode with one and two workers, each from a fresh copy, then checks:
/// - parallel equals serial: same success and, on success, the same image;
/// - absolute succeeding implies tolerate-tail succeeds, and tolerate-tail succeeding implies
///   skip-corrupt does (each accepts whatever the stricter one accepts), with the same image
///   when the input forges no checksums of journal, checkpoint, copy-log or snapshot files;
/// - a failed recovery (other than an I/O error, or a rebuild from a snapshot) leaves the
///   image byte-for-byte as it was;
/// - recovering the recovered directory again with `force` gives the same image.
pub fn recover_dir(data: &[u8]) {
    let input = DirInput::parse(data);
    let files = materialise(&input);
    if trace() {
        for (path, bytes) in &files {
            eprintln!("{path}: {} bytes", bytes.len());
        }
    }
    let scratch = Scratch::new();
    let dir = &scratch.0;
    let original = files.iter().find(|(p, _)| p == "image.img").map(|(_, b)| b.clone());
    let modes = [RecoveryMode::Absolute, RecoveryMode::TolerateTail, RecoveryMode::SkipCorrupt];
    let mut outcomes: Vec<[Outcome; 2]> = Vec::new();
    let mut trusted_home = false;
    for mode in modes {
        let mut pair: [Outcome; 2] = [Ok(None), Ok(None)];
        for (slot, workers) in [1usize, 2].into_iter().enumerate() {
            write_dir(dir, &files);
            let opts = recover_options(input.options, mode, workers);
            let what = format!("{mode} with {workers} worker(s), options {:#04x}", input.options);
            pair[slot] = match recovery::recover(dir, &opts) {
                Ok(report) => {
                    trusted_home |= report.checkpoint.as_ref().is_some_and(|c| c.records_home > 0);
                    let image = read_image(dir);
                    if mode == RecoveryMode::TolerateTail && workers == 1 && !report.already_recovered {
                        let again = recovery::recover(dir, &RecoverOptions { force: true, ..opts })
                            .unwrap_or_else(|e| panic!("{what}: recovering the recovered directory failed: {e}"));
                        assert!(!again.already_recovered);
                        let after = read_image(dir);
                        assert!(
                            after == image,
                            "{what}: recovering it again changed the image: {}",
                            diff(&image, &after)
                        );
                    }
                    Ok(image)
                }
                Err(e) => {
                    let exempt = matches!(e, Error::Io { .. }) || opts.from_snapshot;
                    if !exempt {
                        assert!(read_image(dir) == original, "{what}: failed ({e}) but changed the image");
                    }
                    Err(e.to_string())
                }
            };
        }
        if trace() {
            eprintln!("{mode}: one worker {}, two workers {}", describe(&pair[0]), describe(&pair[1]));
        }
        let [serial, parallel] = &pair;
        match (serial, parallel) {
            (Ok(a), Ok(b)) => assert!(a == b, "{mode}: two workers recovered another image than one: {}", diff(a, b)),
            (Err(_), Err(_)) => {}
            (a, b) => panic!("{mode}: one worker {}, two workers {}", describe(a), describe(b)),
        }
        outcomes.push(pair);
    }
    // Modes may treat what a writer never logs differently (skip-corrupt never replays a
    // loser's records, the others replay and then undo them: the same image only while undo
    // images agree with the history before them). Forged checksums let the fuzzer write such
    // journals, so images are compared across modes only for inputs without them: inputs whose
    // fix-ups change nothing (a valid seed) or touch only the image and the pointer. Nor when a
    // recovery skipped changes because a checkpoint's dirty block table says they were home:
    // an image the fuzzer changed breaks that claim (a writer's image keeps it), and a mode
    // that redoes them anyway (skip-corrupt taking transactions out) then differs from one
    // that trusts it, on blocks whose content no recovery can check.
    let forged = input.forges() || trusted_home;
    for (i, pair) in outcomes.windows(2).enumerate() {
        let (strict, tolerant) = (modes[i], modes[i + 1]);
        if let (Ok(stricter), next) = (&pair[0][0], &pair[1][0]) {
            match next {
                Ok(_) if forged => {}
                Ok(image) => {
                    assert!(
                        image == stricter,
                        "{tolerant} recovered another image than {strict}: {}",
                        diff(stricter, image)
                    )
                }
                Err(e) => panic!("{strict} succeeded where {tolerant} failed: {e}"),
            }
        }
    }
}

/// Where two recovered images first differ, for the panic message.
fn diff(a: &Option<Vec<u8>>, b: &Option<Vec<u8>>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if a.len() == b.len() => {
            let first = a.iter().zip(b).position(|(x, y)| x != y).unwrap_or(a.len());
            let bs = if a.len() >= 16 { (le_u32(a, 12) as usize).max(1) } else { 1 };
            let differ = a.iter().zip(b).filter(|(x, y)| x != y).count();
            format!("{differ} bytes differ, the first at offset {first} (block {} of {bs} bytes)", first / bs)
        }
        (Some(a), Some(b)) => format!("lengths {} and {}", a.len(), b.len()),
        _ => "an image is missing".into(),
    }
}

/// `FASTREC_FUZZ_TRACE=1` prints what each recovery of an input did, for reading a finding.
fn trace() -> bool {
    std::env::var_os("FASTREC_FUZZ_TRACE").is_some()
}

fn describe(o: &Outcome) -> String {
    match o {
        Ok(_) => "succeeded".into(),
        Err(e) => format!("failed: {e}"),
    }
}
