//! Checkpoint records: a small file saying how far the home image is durable, so recovery
//! replays only the journal after a point and restores nothing.
//!
//! The writer makes the image durable and the record says so (ARIES's fuzzy checkpoint with a
//! dirty block table; jbd2's checkpoint that advances the log tail). A record taken at LSN `C`
//! (every record up to `C` was durable when it was written) holds:
//!
//! - the **dirty block table**: every block whose home copy lacked some change at `C`, with
//!   its `rec_lsn`, the LSN of the oldest such change. A block not in the table held every
//!   change up to `C` at home;
//! - the **open transactions** at `C`, each with the LSN of its first record: recovery must see
//!   them whole, to redo the ones that commit later and (steal) to undo the losers, whose
//!   changes may be home;
//! - the **redo start** `R`: the smallest of every `rec_lsn`, every open transaction's first
//!   LSN and `C + 1`. Recovery reads the journal from `R` on, nothing before it.
//!
//! Redo from `R` applies a record at LSN `L <= C` of a transaction not open at `C` only when its
//! block is in the table with `rec_lsn <= L`: otherwise the home copy already holds it. Records
//! after `C`, and records of the open transactions, follow the usual redo rules.
//!
//! Kinds say how the writer took it, not what the record holds (every kind holds the same
//! fields): **full** (sharp: every dirty block written back and the image synced first, so
//! the table is empty or nearly), **incremental** (fuzzy: no forced write-back, the default),
//! **metadata** (the metadata region written back sharply, data blocks fuzzy) and
//! **emergency** (sharp, on demand and at clean shutdown).
//!
//! File `DIR/checkpoints/ckpt-<seq as 16 hex digits>.fcr`, little-endian:
//!
//! ```text
//! 0   8  magic "FRCKREC1"        40  8  image_id
//! 8   4  version (1)             48  4  image block size
//! 12  4  kind (0..=3)            52  4  reserved (0)
//! 16  8  seq                     56  8  image block count
//! 24  8  lsn (C)                 64  8  created, ms since the Unix epoch
//! 32  8  redo start (R)          72  4  open transactions N    76  4  dirty blocks M
//! 80  16 x N  (txid, first LSN), ascending by txid
//! ..  16 x M  (block, rec_lsn), ascending by block
//! end 4  crc32c of everything before it
//! ```
//!
//! Written atomically (temporary file, fsync, rename, directory fsync), then the pointer
//! `DIR/checkpoints/latest` (`FRCKPTR1`, the sequence number, crc32c) is replaced with the new
//! sequence number. Recovery reads the pointer, checks that no record follows it (one stat:
//! the pointer may lag by the record a crash interrupted), and reads that one record: the cost
//! does not grow with the number retained. A record that fails validation, or a missing or
//! damaged pointer, sends it to the directory listing, newest first; records passed over are
//! named.

use std::path::{Path, PathBuf};

use crate::dir::{fsync_dir, CHECKPOINT_DIR};
use crate::error::{Error, Result};
use crate::image::Layout;

/// File magic.
pub const MAGIC: &[u8; 8] = b"FRCKREC1";
/// Format version.
pub const VERSION: u32 = 1;
/// Records kept by default.
pub const RETAIN_DEFAULT: usize = 64;
/// Bytes before the tables.
pub const HEADER_LEN: usize = 80;
/// Largest record file accepted: a corrupt count must not allocate gigabytes. A table entry
/// per block of a 2^24-block image fits.
pub const RECORD_BYTES_MAX: u64 = 16 << 24;
/// The pointer to the newest record, in the checkpoint directory.
pub const POINTER_FILE: &str = "latest";
/// The pointer's magic.
pub const POINTER_MAGIC: &[u8; 8] = b"FRCKPTR1";
/// Records a pointer may lag behind (a crash between a record's rename and the pointer's
/// replacement leaves it one behind); beyond this the directory is listed.
const POINTER_LAG_MAX: u64 = 4;

/// How the writer took a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckpointKind {
    /// Sharp: every dirty block written back and the image synced before the record.
    Full,
    /// Fuzzy: no forced write-back; the record carries the dirty block table.
    Incremental,
    /// The metadata region written back sharply, data blocks fuzzy.
    Metadata,
    /// Sharp, on demand (after a recovery, at a clean shutdown).
    Emergency,
}

impl CheckpointKind {
    /// Every kind, in code order.
    pub const ALL: [CheckpointKind; 4] =
        [CheckpointKind::Full, CheckpointKind::Incremental, CheckpointKind::Metadata, CheckpointKind::Emergency];

    /// Command-line name.
    pub fn name(self) -> &'static str {
        match self {
            CheckpointKind::Full => "full",
            CheckpointKind::Incremental => "incremental",
            CheckpointKind::Metadata => "metadata",
            CheckpointKind::Emergency => "emergency",
        }
    }

    fn code(self) -> u32 {
        match self {
            CheckpointKind::Full => 0,
            CheckpointKind::Incremental => 1,
            CheckpointKind::Metadata => 2,
            CheckpointKind::Emergency => 3,
        }
    }

    /// Whether the writer wrote every dirty block back before the record.
    pub fn sharp(self) -> bool {
        matches!(self, CheckpointKind::Full | CheckpointKind::Emergency)
    }
}

impl std::fmt::Display for CheckpointKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for CheckpointKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        CheckpointKind::ALL.into_iter().find(|k| k.name() == s).ok_or_else(|| {
            Error::Config(format!("unknown checkpoint type `{s}` (expected full, incremental, metadata or emergency)"))
        })
    }
}

/// A transaction open at the checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct OpenTxn {
    /// Its id.
    pub txid: u64,
    /// LSN of its first record.
    pub first_lsn: u64,
}

/// A block whose home copy lacked some change at the checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct DirtyBlock {
    /// The image block.
    pub block: u64,
    /// LSN of its oldest change not yet home.
    pub rec_lsn: u64,
}

/// A checkpoint record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CheckpointRecord {
    /// Sequence number (also in the file name); increases with every record written.
    pub seq: u64,
    /// How the writer took it.
    pub kind: CheckpointKind,
    /// `C`: every journal record up to here was durable when the record was written.
    pub lsn: u64,
    /// `R`: where recovery starts reading the journal.
    pub redo_start: u64,
    /// The image's identity.
    pub image_id: u64,
    /// The image's block size.
    pub block_size: u32,
    /// The image's block count.
    pub block_count: u64,
    /// Wall-clock creation time, milliseconds since the Unix epoch (informative).
    pub created_unix_ms: u64,
    /// Transactions open at `C`, ascending by id.
    pub open: Vec<OpenTxn>,
    /// The dirty block table, ascending by block.
    pub dirty: Vec<DirtyBlock>,
}

impl CheckpointRecord {
    /// A record for `layout`'s image at `lsn`, with `redo_start` computed from the tables (the
    /// smallest `rec_lsn`, first LSN of an open transaction, or `lsn + 1`). The tables are
    /// sorted here; `seq` is set when the record is written.
    pub fn new(
        layout: &Layout,
        kind: CheckpointKind,
        lsn: u64,
        mut open: Vec<OpenTxn>,
        mut dirty: Vec<DirtyBlock>,
    ) -> CheckpointRecord {
        open.sort_unstable_by_key(|t| t.txid);
        dirty.sort_unstable_by_key(|d| d.block);
        let redo_start = open
            .iter()
            .map(|t| t.first_lsn)
            .chain(dirty.iter().map(|d| d.rec_lsn))
            .fold(lsn.saturating_add(1), u64::min);
        CheckpointRecord {
            seq: 0,
            kind,
            lsn,
            redo_start,
            image_id: layout.geometry.image_id,
            block_size: layout.geometry.block_size,
            block_count: layout.block_count(),
            created_unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            open,
            dirty,
        }
    }

    /// The record's bytes, checksum included.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(HEADER_LEN + 16 * (self.open.len() + self.dirty.len()) + 4);
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&VERSION.to_le_bytes());
        b.extend_from_slice(&self.kind.code().to_le_bytes());
        for v in [self.seq, self.lsn, self.redo_start, self.image_id] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&self.block_size.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&self.block_count.to_le_bytes());
        b.extend_from_slice(&self.created_unix_ms.to_le_bytes());
        b.extend_from_slice(&(self.open.len() as u32).to_le_bytes());
        b.extend_from_slice(&(self.dirty.len() as u32).to_le_bytes());
        for t in &self.open {
            b.extend_from_slice(&t.txid.to_le_bytes());
            b.extend_from_slice(&t.first_lsn.to_le_bytes());
        }
        for d in &self.dirty {
            b.extend_from_slice(&d.block.to_le_bytes());
            b.extend_from_slice(&d.rec_lsn.to_le_bytes());
        }
        let crc = crate::crc::crc32c(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and checks a record's bytes: magic, checksum, version, length, kind, and the
    /// tables' order and coherence with `lsn` and `redo_start`. On failure: the offset of the
    /// problem and why.
    pub fn decode(bytes: &[u8]) -> std::result::Result<CheckpointRecord, (u64, String)> {
        let bad = |at: usize, why: &str| Err((at as u64, why.to_string()));
        if bytes.len() < HEADER_LEN + 4 {
            return bad(0, "shorter than a checkpoint record");
        }
        if &bytes[..8] != MAGIC {
            return bad(0, "bad magic");
        }
        let body = &bytes[..bytes.len() - 4];
        let stored = u32_at(bytes, bytes.len() - 4);
        let computed = crate::crc::crc32c(body);
        if stored != computed {
            return Err((
                (bytes.len() - 4) as u64,
                format!("checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"),
            ));
        }
        if u32_at(bytes, 8) != VERSION {
            return bad(8, "unsupported version");
        }
        let kind = match u32_at(bytes, 12) {
            0 => CheckpointKind::Full,
            1 => CheckpointKind::Incremental,
            2 => CheckpointKind::Metadata,
            3 => CheckpointKind::Emergency,
            _ => return bad(12, "unknown kind"),
        };
        if u32_at(bytes, 52) != 0 {
            return bad(52, "reserved field is not zero");
        }
        let n_open = u32_at(bytes, 72) as usize;
        let n_dirty = u32_at(bytes, 76) as usize;
        if (HEADER_LEN as u64 + 16 * (n_open as u64 + n_dirty as u64) + 4) != bytes.len() as u64 {
            return bad(72, "table counts disagree with the file length");
        }
        let r = CheckpointRecord {
            seq: u64_at(bytes, 16),
            kind,
            lsn: u64_at(bytes, 24),
            redo_start: u64_at(bytes, 32),
            image_id: u64_at(bytes, 40),
            block_size: u32_at(bytes, 48),
            block_count: u64_at(bytes, 56),
            created_unix_ms: u64_at(bytes, 64),
            open: (0..n_open)
                .map(|i| {
                    let at = HEADER_LEN + 16 * i;
                    OpenTxn { txid: u64_at(bytes, at), first_lsn: u64_at(bytes, at + 8) }
                })
                .collect(),
            dirty: (0..n_dirty)
                .map(|i| {
                    let at = HEADER_LEN + 16 * (n_open + i);
                    DirtyBlock { block: u64_at(bytes, at), rec_lsn: u64_at(bytes, at + 8) }
                })
                .collect(),
        };
        if r.redo_start == 0 || r.redo_start > r.lsn.saturating_add(1) {
            return bad(32, "redo start is not in 1..=lsn+1");
        }
        let open_at = |i: usize| HEADER_LEN + 16 * i;
        for (i, t) in r.open.iter().enumerate() {
            if t.txid == 0 || i > 0 && r.open[i - 1].txid >= t.txid {
                return bad(open_at(i), "open transactions are not ascending, nonzero ids");
            }
            if t.first_lsn < r.redo_start || t.first_lsn > r.lsn {
                return bad(open_at(i) + 8, "an open transaction's first LSN is outside redo start..=lsn");
            }
        }
        let dirty_at = |i: usize| HEADER_LEN + 16 * (n_open + i);
        for (i, d) in r.dirty.iter().enumerate() {
            if d.block >= r.block_count || i > 0 && r.dirty[i - 1].block >= d.block {
                return bad(dirty_at(i), "dirty blocks are not ascending or lie outside the image");
            }
            if d.rec_lsn < r.redo_start || d.rec_lsn > r.lsn {
                return bad(dirty_at(i) + 8, "a dirty block's rec_lsn is outside redo start..=lsn");
            }
        }
        let smallest = r.open.iter().map(|t| t.first_lsn).chain(r.dirty.iter().map(|d| d.rec_lsn)).min();
        if smallest.unwrap_or(r.lsn.saturating_add(1)).min(r.lsn.saturating_add(1)) != r.redo_start {
            return bad(32, "redo start is not the smallest LSN the tables need");
        }
        Ok(r)
    }

    /// The dirty block table as a map, for lookups during redo.
    pub fn dirty_map(&self) -> rustc_hash::FxHashMap<u64, u64> {
        self.dirty.iter().map(|d| (d.block, d.rec_lsn)).collect()
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// File name of record `seq`.
pub fn file_name(seq: u64) -> String {
    format!("ckpt-{seq:016x}.fcr")
}

fn parse_file_name(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("ckpt-")?.strip_suffix(".fcr")?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// Checkpoint record files of `dir` (a recovery directory), ascending by sequence number.
/// Temporary files are not listed.
pub fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let cdir = dir.join(CHECKPOINT_DIR);
    let entries = match std::fs::read_dir(&cdir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(&cdir, "list checkpoint directory", e)),
    };
    let mut v = Vec::new();
    for e in entries {
        let e = e.map_err(|e| Error::io(&cdir, "list checkpoint directory", e))?;
        if let Some(seq) = e.file_name().to_str().and_then(parse_file_name) {
            v.push((seq, e.path()));
        }
    }
    v.sort();
    Ok(v)
}

/// Why a checkpoint record was not used.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Rejected {
    /// The record file.
    pub path: PathBuf,
    /// Byte offset of the problem, when it is about the file's bytes.
    pub offset: Option<u64>,
    /// What was wrong.
    pub reason: String,
}

fn reject(path: &Path, offset: Option<u64>, reason: impl Into<String>) -> Rejected {
    Rejected { path: path.to_path_buf(), offset, reason: reason.into() }
}

/// Reads and checks the record at `path` (everything [`CheckpointRecord::decode`] checks,
/// its sequence number against the file name, and its image against `layout`).
pub fn read(path: &Path, layout: &Layout) -> std::result::Result<CheckpointRecord, Rejected> {
    let len = std::fs::metadata(path).map_err(|e| reject(path, None, format!("cannot read: {e}")))?.len();
    if len > RECORD_BYTES_MAX {
        return Err(reject(path, None, format!("{len} bytes, more than any checkpoint record")));
    }
    let bytes = std::fs::read(path).map_err(|e| reject(path, None, format!("cannot read: {e}")))?;
    let r = CheckpointRecord::decode(&bytes).map_err(|(at, why)| reject(path, Some(at), why))?;
    let name_seq = path.file_name().and_then(|n| n.to_str()).and_then(parse_file_name);
    if name_seq != Some(r.seq) {
        return Err(reject(path, Some(16), format!("record says checkpoint {}, the file name differs", r.seq)));
    }
    if r.image_id != layout.geometry.image_id
        || r.block_size != layout.geometry.block_size
        || r.block_count != layout.block_count()
    {
        return Err(reject(path, Some(40), "belongs to another image (identity or geometry differs)"));
    }
    Ok(r)
}

/// A record written.
#[derive(Debug, Clone)]
pub struct Written {
    /// Its file.
    pub path: PathBuf,
    /// The record, with its sequence number.
    pub record: CheckpointRecord,
    /// File length.
    pub file_bytes: u64,
}

/// Writes `record` into `dir` atomically with the next sequence number (after the newest
/// record present), and removes any temporary file a crash left.
pub fn write(dir: &Path, mut record: CheckpointRecord) -> Result<Written> {
    let cdir = dir.join(CHECKPOINT_DIR);
    if !cdir.is_dir() {
        std::fs::create_dir_all(&cdir).map_err(|e| Error::io(&cdir, "create checkpoint directory", e))?;
        // The directory entry must be durable before anything (journal recycling) relies on
        // what it will hold.
        fsync_dir(dir)?;
    }
    remove_temporaries(&cdir)?;
    record.seq = list(dir)?.last().map_or(1, |(s, _)| s + 1);
    let bytes = record.encode();
    let path = cdir.join(file_name(record.seq));
    let tmp = cdir.join(format!("{}.tmp", file_name(record.seq)));
    let write = || -> std::io::Result<()> {
        let f = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut &f, &bytes)?;
        f.sync_all()
    };
    write().map_err(|e| Error::io(&tmp, "write checkpoint record", e))?;
    std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, "rename checkpoint record into place", e))?;
    fsync_dir(&cdir)?;
    write_pointer(&cdir, record.seq)?;
    Ok(Written { path, file_bytes: bytes.len() as u64, record })
}

/// Replaces the pointer with `seq`. Not synced: a pointer lost or torn by a crash only sends
/// the next recovery to the directory listing, and one left behind is caught by probing the
/// next sequence number.
fn write_pointer(cdir: &Path, seq: u64) -> Result<()> {
    let mut b = POINTER_MAGIC.to_vec();
    b.extend_from_slice(&seq.to_le_bytes());
    let crc = crate::crc::crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    let tmp = cdir.join(format!("{POINTER_FILE}.tmp"));
    std::fs::write(&tmp, &b).map_err(|e| Error::io(&tmp, "write checkpoint pointer", e))?;
    let path = cdir.join(POINTER_FILE);
    std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, "replace checkpoint pointer", e))
}

/// The sequence number the pointer names, if it reads and checks.
fn read_pointer(cdir: &Path) -> Option<u64> {
    let b = std::fs::read(cdir.join(POINTER_FILE)).ok()?;
    if b.len() != 20 || &b[..8] != POINTER_MAGIC || crate::crc::crc32c(&b[..16]) != u32_at(&b, 16) {
        return None;
    }
    Some(u64_at(&b, 8))
}

/// Whether `dir` has any checkpoint record (or temporary) file, without listing them all.
pub fn any(dir: &Path) -> Result<bool> {
    let cdir = dir.join(CHECKPOINT_DIR);
    match std::fs::read_dir(&cdir) {
        Ok(mut e) => Ok(e.any(|e| e.is_ok_and(|e| e.file_name().to_str().and_then(parse_file_name).is_some()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(&cdir, "list checkpoint directory", e)),
    }
}

/// Writes the first `len` bytes of `record`'s encoding as the next record's temporary file and
/// stops: what a crash in the middle of writing one leaves (the generator and tests use it).
pub fn write_torn(dir: &Path, record: &CheckpointRecord, len: usize) -> Result<PathBuf> {
    let cdir = dir.join(CHECKPOINT_DIR);
    std::fs::create_dir_all(&cdir).map_err(|e| Error::io(&cdir, "create checkpoint directory", e))?;
    let seq = list(dir)?.last().map_or(1, |(s, _)| s + 1);
    let tmp = cdir.join(format!("{}.tmp", file_name(seq)));
    let bytes = CheckpointRecord { seq, ..record.clone() }.encode();
    std::fs::write(&tmp, &bytes[..len.min(bytes.len())]).map_err(|e| Error::io(&tmp, "write checkpoint record", e))?;
    Ok(tmp)
}

fn remove_temporaries(cdir: &Path) -> Result<()> {
    let entries = std::fs::read_dir(cdir).map_err(|e| Error::io(cdir, "list checkpoint directory", e))?;
    for e in entries.flatten() {
        if e.file_name().to_str().is_some_and(|n| n.starts_with("ckpt-") && n.ends_with(".tmp")) {
            let p = e.path();
            std::fs::remove_file(&p).map_err(|e| Error::io(&p, "remove torn checkpoint record", e))?;
        }
    }
    Ok(())
}

/// The record recovery starts from.
#[derive(Debug, Clone)]
pub struct Selected {
    /// Its file.
    pub path: PathBuf,
    /// The record.
    pub record: CheckpointRecord,
    /// Its place among the record files present, newest first (0: the newest; 1: one newer
    /// record was passed over; ...).
    pub index: usize,
}

/// Chooses the newest record that validates and whose redo start the journal still reaches
/// (`journal_first_lsn`: the first LSN of the oldest segment present). Returns it with every
/// newer record passed over and why, and the number of records read.
///
/// The pointer names the newest record, which is read alone when it validates; otherwise the
/// directory is listed and records are read newest first, stopping at the first good one.
pub fn select(dir: &Path, layout: &Layout, journal_first_lsn: u64) -> Result<(Option<Selected>, Vec<Rejected>)> {
    let cdir = dir.join(CHECKPOINT_DIR);
    let usable = |path: &Path| -> std::result::Result<CheckpointRecord, Rejected> {
        let record = read(path, layout)?;
        if record.redo_start < journal_first_lsn {
            return Err(reject(
                path,
                None,
                format!("needs the journal from LSN {}, but it starts at LSN {journal_first_lsn}", record.redo_start),
            ));
        }
        Ok(record)
    };
    if let Some(mut seq) = read_pointer(&cdir) {
        // A crash after a record's rename and before the pointer's replacement leaves the
        // pointer behind: the records after it are newer.
        let mut lag = 0;
        while lag <= POINTER_LAG_MAX && cdir.join(file_name(seq + 1)).exists() {
            seq += 1;
            lag += 1;
        }
        let path = cdir.join(file_name(seq));
        if lag <= POINTER_LAG_MAX {
            if let Ok(record) = usable(&path) {
                return Ok((Some(Selected { path, record, index: 0 }), Vec::new()));
            }
        }
    }
    let all = list(dir)?;
    let mut rejected = Vec::new();
    for (index, (_, path)) in all.iter().rev().enumerate() {
        match usable(path) {
            Ok(record) => return Ok((Some(Selected { path: path.clone(), record, index }), rejected)),
            Err(r) => rejected.push(r),
        }
    }
    Ok((None, rejected))
}

/// What retention removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Pruned {
    /// Record files removed.
    pub checkpoints: Vec<PathBuf>,
    /// Journal segments removed (only when asked to recycle).
    pub segments: Vec<PathBuf>,
}

/// Keeps the newest `retain` records and removes the rest. With `recycle_journal`, also removes
/// the journal segments wholly before the oldest redo start of a kept record, when every kept
/// record validates (one that does not might be all a later recovery has, so it keeps the
/// whole journal).
pub fn prune(dir: &Path, retain: usize, recycle_journal: bool) -> Result<Pruned> {
    if retain == 0 {
        return Err(Error::Config("retention must keep at least one checkpoint".into()));
    }
    let all = list(dir)?;
    let mut out = Pruned::default();
    let drop = all.len().saturating_sub(retain);
    for (_, path) in &all[..drop] {
        std::fs::remove_file(path).map_err(|e| Error::io(path, "remove old checkpoint record", e))?;
        out.checkpoints.push(path.clone());
    }
    if !out.checkpoints.is_empty() {
        fsync_dir(&dir.join(CHECKPOINT_DIR))?;
    }
    if recycle_journal {
        let layout = Layout::read_from(&dir.join(crate::dir::IMAGE_FILE))?;
        let floor =
            all[drop..].iter().try_fold(u64::MAX, |acc, (_, p)| read(p, &layout).ok().map(|r| acc.min(r.redo_start)));
        if let Some(floor) = floor.filter(|&f| f != u64::MAX) {
            out.segments = recycle_segments(dir, floor)?;
        }
    }
    Ok(out)
}

/// Removes journal segments all of whose records lie below `floor`: every segment followed
/// by one that starts at or below `floor`.
fn recycle_segments(dir: &Path, floor: u64) -> Result<Vec<PathBuf>> {
    use std::os::unix::fs::FileExt;
    let jdir = dir.join(crate::dir::JOURNAL_DIR);
    let mut segs: Vec<(u64, PathBuf)> = Vec::new();
    let entries = std::fs::read_dir(&jdir).map_err(|e| Error::io(&jdir, "list journal directory", e))?;
    for e in entries.flatten() {
        if let Some(seq) = e.file_name().to_str().and_then(crate::format::segment::parse_segment_file_name) {
            segs.push((seq, e.path()));
        }
    }
    segs.sort();
    let mut first_lsns = Vec::with_capacity(segs.len());
    for (_, p) in &segs {
        let mut head = vec![0u8; crate::format::segment::SEGMENT_HEADER_LEN];
        let ok = std::fs::File::open(p).and_then(|f| f.read_exact_at(&mut head, 0)).is_ok();
        first_lsns
            .push(ok.then(|| crate::format::segment::SegmentHeader::decode(&head).ok()).flatten().map(|h| h.first_lsn));
    }
    let mut removed = Vec::new();
    for i in 0..segs.len().saturating_sub(1) {
        // A segment can go only if the next one is readable and starts at or below the floor.
        match first_lsns[i + 1] {
            Some(next_first) if next_first <= floor => {
                let p = &segs[i].1;
                std::fs::remove_file(p).map_err(|e| Error::io(p, "recycle journal segment", e))?;
                removed.push(p.clone());
            }
            _ => break,
        }
    }
    if !removed.is_empty() {
        fsync_dir(&jdir)?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Geometry;

    fn layout() -> Layout {
        Layout::new(Geometry { block_size: 4096, block_count: 1024, inode_count: 64, image_id: 7 }).expect("layout")
    }

    fn sample() -> CheckpointRecord {
        CheckpointRecord::new(
            &layout(),
            CheckpointKind::Incremental,
            500,
            vec![OpenTxn { txid: 9, first_lsn: 420 }, OpenTxn { txid: 4, first_lsn: 470 }],
            vec![DirtyBlock { block: 300, rec_lsn: 450 }, DirtyBlock { block: 12, rec_lsn: 401 }],
        )
    }

    #[test]
    fn redo_start_is_the_smallest_needed_lsn_and_tables_are_sorted() {
        let r = sample();
        assert_eq!(r.redo_start, 401);
        assert_eq!(r.open[0].txid, 4);
        assert_eq!(r.dirty[0].block, 12);
        let empty = CheckpointRecord::new(&layout(), CheckpointKind::Full, 500, Vec::new(), Vec::new());
        assert_eq!(empty.redo_start, 501);
    }

    #[test]
    fn encode_decode_round_trip_and_every_byte_is_checked() {
        let r = sample();
        let bytes = r.encode();
        assert_eq!(bytes.len(), HEADER_LEN + 16 * 4 + 4);
        assert_eq!(CheckpointRecord::decode(&bytes).expect("decodes"), r);
        for i in 0..bytes.len() {
            for bit in [0x01u8, 0x80] {
                let mut b = bytes.clone();
                b[i] ^= bit;
                assert!(CheckpointRecord::decode(&b).is_err(), "flip of bit {bit:#x} at byte {i} accepted");
            }
        }
        for len in 0..bytes.len() {
            assert!(CheckpointRecord::decode(&bytes[..len]).is_err(), "truncated to {len} accepted");
        }
    }

    #[test]
    fn incoherent_tables_are_refused_even_with_a_good_checksum() {
        let reseal = |r: &CheckpointRecord| {
            let mut b = r.encode();
            let n = b.len() - 4;
            let crc = crate::crc::crc32c(&b[..n]);
            b[n..].copy_from_slice(&crc.to_le_bytes());
            b
        };
        let mut r = sample();
        r.redo_start = 402;
        assert!(CheckpointRecord::decode(&reseal(&r)).is_err(), "redo start above a rec_lsn");
        let mut r = sample();
        r.dirty[0].rec_lsn = 600;
        assert!(CheckpointRecord::decode(&reseal(&r)).is_err(), "rec_lsn after the checkpoint");
        let mut r = sample();
        r.dirty.swap(0, 1);
        assert!(CheckpointRecord::decode(&reseal(&r)).is_err(), "unsorted table");
        let mut r = sample();
        r.dirty[1].block = 5000;
        assert!(CheckpointRecord::decode(&reseal(&r)).is_err(), "block outside the image");
    }

    #[test]
    fn select_reads_the_newest_valid_record_and_names_the_ones_passed_over() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let l = layout();
        for lsn in [100, 200, 300] {
            write(tmp.path(), CheckpointRecord::new(&l, CheckpointKind::Full, lsn, Vec::new(), Vec::new()))
                .expect("write");
        }
        let (s, rejected) = select(tmp.path(), &l, 1).expect("select");
        let s = s.expect("one chosen");
        assert_eq!((s.record.lsn, s.index, rejected.len()), (300, 0, 0));
        let newest = list(tmp.path()).expect("list").pop().expect("newest").1;
        let mut b = std::fs::read(&newest).expect("read");
        b[30] ^= 4;
        std::fs::write(&newest, &b).expect("write");
        let (s, rejected) = select(tmp.path(), &l, 1).expect("select");
        assert_eq!(s.map(|s| (s.record.lsn, s.index)), Some((200, 1)));
        assert_eq!(rejected[0].path, newest);
        // A journal that no longer reaches a record's redo start rules it out.
        let (s, rejected) = select(tmp.path(), &l, 250).expect("select");
        assert!(s.is_none());
        assert_eq!(rejected.len(), 3);
        let pruned = prune(tmp.path(), 1, false).expect("prune");
        assert_eq!(pruned.checkpoints.len(), 2);
        assert_eq!(list(tmp.path()).expect("list").len(), 1);
    }

    #[test]
    fn the_pointer_finds_the_newest_record_even_when_it_lags_or_is_lost() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let l = layout();
        let cdir = tmp.path().join(CHECKPOINT_DIR);
        for lsn in [100, 200, 300] {
            write(tmp.path(), CheckpointRecord::new(&l, CheckpointKind::Full, lsn, Vec::new(), Vec::new()))
                .expect("write");
        }
        assert_eq!(read_pointer(&cdir), Some(3));
        // A crash between the newest record's rename and the pointer's replacement.
        write_pointer(&cdir, 2).expect("pointer");
        let (s, rejected) = select(tmp.path(), &l, 1).expect("select");
        assert_eq!((s.map(|s| s.record.lsn), rejected.len()), (Some(300), 0));
        // A torn pointer, and none: the listing.
        std::fs::write(cdir.join(POINTER_FILE), b"FRCKPTR1 torn").expect("tear");
        assert_eq!(select(tmp.path(), &l, 1).expect("select").0.map(|s| s.record.lsn), Some(300));
        std::fs::remove_file(cdir.join(POINTER_FILE)).expect("remove");
        assert_eq!(select(tmp.path(), &l, 1).expect("select").0.map(|s| s.record.lsn), Some(300));
        // A pointer naming a damaged record: the listing names it and falls back.
        write_pointer(&cdir, 3).expect("pointer");
        std::fs::write(cdir.join(file_name(3)), b"damaged").expect("damage");
        let (s, rejected) = select(tmp.path(), &l, 1).expect("select");
        assert_eq!(s.map(|s| (s.record.lsn, s.index)), Some((200, 1)));
        assert_eq!(rejected.len(), 1);
        assert!(any(tmp.path()).expect("any"));
    }
}
