//! Snapshots: compressed copies of the committed image as of an LSN, kept as a backup. With
//! the journal after it (a base backup plus its WAL archive), a snapshot chain rebuilds an
//! image that is lost or damaged: `fastrec recover --from-snapshot`. Normal recovery never
//! reads them; it starts from a [checkpoint record](crate::checkpoint) and the image itself.
//!
//! A snapshot at LSN `C` holds block images of the committed state at `C` (transaction
//! consistent: changes of transactions still open at `C` are not in it), the ids of the
//! transactions open at `C`, and `min_lsn`, the first LSN a rebuild still needs (the first
//! record of the oldest transaction open at `C`, or `C + 1`). A rebuild writes the chain's
//! blocks, then scans the journal from `min_lsn`, ignoring records at or below `C` of
//! transactions that were not open at `C` (their effects are in the snapshot), and redoes and
//! undoes the rest as usual.
//!
//! Kinds:
//! - **full**: every block except blocks in revoked state at `C` (freed by a committed
//!   transaction and not logged since: the running system may write them without logging, so
//!   only the home image knows their content);
//! - **incremental**: the blocks whose content changed since its parent (or that entered the
//!   chain's set), and the blocks that left it (`dropped`); chained to a full one.
//!
//! File: `MAGIC (8) | manifest length (u32 LE) | crc32c of the manifest (u32 LE) | manifest
//! (JSON) | chunk data`. Each chunk holds whole blocks, compressed on its own; the manifest
//! records each chunk's blocks, stored and raw length and crc32c, and a crc32c over all chunk
//! data. Files are written atomically (temporary file, fsync, rename, directory fsync); a
//! temporary file left by a crash is ignored and removed by the next write.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::dir::fsync_dir;
use crate::dir::SNAPSHOT_DIR;
use crate::error::{Error, Result};
use crate::image::Layout;

/// File magic.
pub const MAGIC: &[u8; 8] = b"FRCKPT01";
/// Format version in the manifest.
pub const VERSION: u32 = 1;
/// Raw bytes per chunk (whole blocks; at least one block).
pub const CHUNK_BYTES: usize = 1 << 20;
/// Snapshots kept by default.
pub const RETAIN_DEFAULT: usize = 64;
/// Largest manifest accepted (a corrupt length must not allocate gigabytes).
const MANIFEST_MAX: u32 = 256 << 20;

/// What a snapshot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SnapshotKind {
    /// Every block but those in revoked state.
    Full,
    /// Changes since the parent.
    Incremental,
}

impl SnapshotKind {
    /// Every kind.
    pub const ALL: [SnapshotKind; 2] = [SnapshotKind::Full, SnapshotKind::Incremental];

    /// Command-line name.
    pub fn name(self) -> &'static str {
        match self {
            SnapshotKind::Full => "full",
            SnapshotKind::Incremental => "incremental",
        }
    }
}

impl std::fmt::Display for SnapshotKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for SnapshotKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        SnapshotKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| Error::Config(format!("unknown snapshot type `{s}` (expected full or incremental)")))
    }
}

/// Chunk compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Compression {
    /// zstd level 1.
    #[default]
    Zstd,
    /// lz4 (block format, size-prefixed).
    Lz4,
    /// Stored as is.
    None,
}

impl Compression {
    /// Every compression.
    pub const ALL: [Compression; 3] = [Compression::Zstd, Compression::Lz4, Compression::None];

    /// Command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Compression::Zstd => "zstd",
            Compression::Lz4 => "lz4",
            Compression::None => "none",
        }
    }

    fn compress(self, raw: &[u8]) -> std::io::Result<Vec<u8>> {
        match self {
            Compression::Zstd => zstd::bulk::compress(raw, 1),
            Compression::Lz4 => Ok(lz4_flex::compress_prepend_size(raw)),
            Compression::None => Ok(raw.to_vec()),
        }
    }

    fn decompress(self, stored: &[u8], raw_len: usize) -> std::result::Result<Vec<u8>, String> {
        let out = match self {
            Compression::Zstd => zstd::bulk::decompress(stored, raw_len).map_err(|e| e.to_string())?,
            Compression::Lz4 => {
                // The size prefix is data: check it against the manifest before trusting it
                // with an allocation.
                let (prefix, body) = stored.split_at_checked(4).ok_or("shorter than its size prefix")?;
                let declared = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
                if declared != raw_len {
                    return Err(format!("size prefix {declared} disagrees with the manifest's {raw_len}"));
                }
                lz4_flex::decompress(body, raw_len).map_err(|e| e.to_string())?
            }
            Compression::None => stored.to_vec(),
        };
        if out.len() != raw_len {
            return Err(format!("decompressed to {} bytes, the manifest says {raw_len}", out.len()));
        }
        Ok(out)
    }
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Compression {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Compression::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| Error::Config(format!("unknown compression `{s}` (expected zstd, lz4 or none)")))
    }
}

/// One chunk of block images.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChunkMeta {
    /// Blocks held, as `(first, count)` runs in ascending order.
    pub runs: Vec<(u64, u64)>,
    /// Offset of the chunk's stored bytes from the start of the data section.
    pub offset: u64,
    /// Stored (compressed) length.
    pub stored: u64,
    /// Raw length (blocks x block size).
    pub raw: u64,
    /// crc32c of the stored bytes.
    pub crc: u32,
}

/// Everything about a snapshot but its block images.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    /// Format version.
    pub version: u32,
    /// Sequence number (also in the file name); increases with every snapshot.
    pub seq: u64,
    /// Kind.
    pub kind: SnapshotKind,
    /// The LSN the state is as of (`C`).
    pub lsn: u64,
    /// First LSN recovery needs from the journal.
    pub min_lsn: u64,
    /// Transactions open at `C`.
    pub open_txns: Vec<u64>,
    /// The snapshot this one is a delta of (incremental only).
    pub parent: Option<u64>,
    /// Image identity.
    pub image_id: u64,
    /// Image block size.
    pub block_size: u32,
    /// Image blocks.
    pub block_count: u64,
    /// Chunk compression.
    pub compression: Compression,
    /// Blocks that leave the chain's set here (incremental only).
    pub dropped: Vec<u64>,
    /// Data blocks in revoked state at `C`, as `(first, count)` runs: left out of this and
    /// any later snapshot until the journal logs them again.
    pub excluded: Vec<(u64, u64)>,
    /// The chunks, in data order.
    pub chunks: Vec<ChunkMeta>,
    /// Bytes of the data section.
    pub data_bytes: u64,
    /// crc32c of the whole data section.
    pub data_crc: u32,
    /// Blocks held.
    pub blocks: u64,
    /// Wall-clock creation time, milliseconds since the Unix epoch (informative).
    pub created_unix_ms: u64,
}

impl Manifest {
    /// Raw bytes of the blocks held.
    pub fn raw_bytes(&self) -> u64 {
        self.chunks.iter().map(|c| c.raw).sum()
    }
}

/// What to write.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Kind.
    pub kind: SnapshotKind,
    /// `C`.
    pub lsn: u64,
    /// First LSN recovery needs.
    pub min_lsn: u64,
    /// Transactions open at `C`.
    pub open_txns: Vec<u64>,
    /// Parent (incremental only).
    pub parent: Option<u64>,
    /// Compression.
    pub compression: Compression,
    /// Blocks to store, ascending.
    pub blocks: Vec<u64>,
    /// Blocks leaving the chain's set (incremental only), ascending.
    pub dropped: Vec<u64>,
    /// Data blocks in revoked state at `C`, ascending.
    pub excluded: Vec<u64>,
}

/// A snapshot written.
#[derive(Debug, Clone)]
pub struct Written {
    /// Its file.
    pub path: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// File length.
    pub file_bytes: u64,
}

/// File name of snapshot `seq`.
pub fn file_name(seq: u64) -> String {
    format!("snap-{seq:016x}.fcp")
}

fn parse_file_name(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("snap-")?.strip_suffix(".fcp")?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// Snapshot files of `dir` (a recovery directory), ascending by sequence number. Temporary
/// files are not listed.
pub fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let cdir = dir.join(SNAPSHOT_DIR);
    let entries = match std::fs::read_dir(&cdir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(&cdir, "list snapshot directory", e)),
    };
    let mut v = Vec::new();
    for e in entries {
        let e = e.map_err(|e| Error::io(&cdir, "list snapshot directory", e))?;
        if let Some(seq) = e.file_name().to_str().and_then(parse_file_name) {
            v.push((seq, e.path()));
        }
    }
    v.sort();
    Ok(v)
}

fn runs_of(blocks: &[u64]) -> Vec<(u64, u64)> {
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for &b in blocks {
        match runs.last_mut() {
            Some((first, count)) if *first + *count == b => *count += 1,
            _ => runs.push((b, 1)),
        }
    }
    runs
}

/// The blocks of `(first, count)` runs.
pub fn blocks_of(runs: &[(u64, u64)]) -> impl Iterator<Item = u64> + '_ {
    runs.iter().flat_map(|&(first, count)| first..first + count)
}

/// A chunk ready to write: its block runs, stored bytes and raw length.
type CompressedChunk = (Vec<(u64, u64)>, Vec<u8>, u64);

/// Writes a snapshot of `spec.blocks` of `image` (the whole image's bytes) into `dir`
/// atomically, with the next sequence number. Chunks are compressed in parallel.
pub fn write(dir: &Path, layout: &Layout, image: &[u8], spec: &Spec) -> Result<Written> {
    let bs = layout.block_size();
    if image.len() as u64 != layout.image_len() {
        return Err(Error::Config(format!(
            "snapshot source is {} bytes, the image is {}",
            image.len(),
            layout.image_len()
        )));
    }
    if spec.blocks.windows(2).any(|w| w[0] >= w[1]) || spec.blocks.last().is_some_and(|&b| b >= layout.block_count()) {
        return Err(Error::Config("snapshot blocks must be ascending and inside the image".into()));
    }
    let cdir = dir.join(SNAPSHOT_DIR);
    if !cdir.is_dir() {
        std::fs::create_dir_all(&cdir).map_err(|e| Error::io(&cdir, "create snapshot directory", e))?;
        // The directory entry must be durable before anything (journal recycling) relies on
        // what it will hold.
        fsync_dir(dir)?;
    }
    remove_temporaries(&cdir)?;
    let seq = list(dir)?.last().map_or(1, |(s, _)| s + 1);
    let per_chunk = (CHUNK_BYTES / bs).max(1);
    let groups: Vec<&[u64]> = spec.blocks.chunks(per_chunk).collect();
    let compressed: Vec<std::io::Result<CompressedChunk>> = groups
        .par_iter()
        .map(|g| {
            let mut raw = Vec::with_capacity(g.len() * bs);
            for &b in *g {
                raw.extend_from_slice(&image[b as usize * bs..(b as usize + 1) * bs]);
            }
            let stored = spec.compression.compress(&raw)?;
            Ok((runs_of(g), stored, raw.len() as u64))
        })
        .collect();
    let mut chunks = Vec::with_capacity(compressed.len());
    let mut data: Vec<Vec<u8>> = Vec::with_capacity(compressed.len());
    let mut offset = 0u64;
    let mut data_crc = 0u32;
    for c in compressed {
        let (runs, stored, raw) = c.map_err(|e| Error::io(&cdir, "compress snapshot chunk", e))?;
        let crc = crate::crc::crc32c(&stored);
        data_crc = crate::crc::crc32c_append(data_crc, &stored);
        chunks.push(ChunkMeta { runs, offset, stored: stored.len() as u64, raw, crc });
        offset += stored.len() as u64;
        data.push(stored);
    }
    let manifest = Manifest {
        version: VERSION,
        seq,
        kind: spec.kind,
        lsn: spec.lsn,
        min_lsn: spec.min_lsn,
        open_txns: spec.open_txns.clone(),
        parent: spec.parent,
        image_id: layout.geometry.image_id,
        block_size: layout.geometry.block_size,
        block_count: layout.block_count(),
        compression: spec.compression,
        dropped: spec.dropped.clone(),
        excluded: runs_of(&spec.excluded),
        chunks,
        data_bytes: offset,
        data_crc,
        blocks: spec.blocks.len() as u64,
        created_unix_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
    };
    let json =
        serde_json::to_vec(&manifest).map_err(|e| Error::io(&cdir, "encode manifest", std::io::Error::other(e)))?;
    let path = cdir.join(file_name(seq));
    let tmp = cdir.join(format!("{}.tmp", file_name(seq)));
    let write_all = || -> std::io::Result<u64> {
        let mut f = std::io::BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
        f.write_all(MAGIC)?;
        f.write_all(&(json.len() as u32).to_le_bytes())?;
        f.write_all(&crate::crc::crc32c(&json).to_le_bytes())?;
        f.write_all(&json)?;
        for d in &data {
            f.write_all(d)?;
        }
        let f = f.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        Ok(16 + json.len() as u64 + offset)
    };
    let file_bytes = write_all().map_err(|e| Error::io(&tmp, "write snapshot", e))?;
    std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, "rename snapshot into place", e))?;
    fsync_dir(&cdir)?;
    Ok(Written { path, manifest, file_bytes })
}

/// Writes the first `len` bytes of a snapshot's temporary file and stops: what a crash in
/// the middle of writing one leaves behind (used by the generator and tests).
pub fn write_torn(dir: &Path, seq: u64, len: usize) -> Result<PathBuf> {
    let cdir = dir.join(SNAPSHOT_DIR);
    std::fs::create_dir_all(&cdir).map_err(|e| Error::io(&cdir, "create snapshot directory", e))?;
    let tmp = cdir.join(format!("{}.tmp", file_name(seq)));
    let mut bytes = MAGIC.to_vec();
    bytes.resize(len.max(MAGIC.len()), 0xA5);
    std::fs::write(&tmp, &bytes[..len]).map_err(|e| Error::io(&tmp, "write snapshot", e))?;
    Ok(tmp)
}

fn remove_temporaries(cdir: &Path) -> Result<()> {
    let entries = std::fs::read_dir(cdir).map_err(|e| Error::io(cdir, "list snapshot directory", e))?;
    for e in entries.flatten() {
        if e.file_name().to_str().is_some_and(|n| n.starts_with("snap-") && n.ends_with(".tmp")) {
            let p = e.path();
            std::fs::remove_file(&p).map_err(|e| Error::io(&p, "remove torn snapshot", e))?;
        }
    }
    Ok(())
}

/// A chunk's stored bytes; only for a manifest [`check_tables`] accepted against `data`.
fn chunk_bytes<'d>(data: &'d [u8], c: &ChunkMeta) -> &'d [u8] {
    let start = usize::try_from(c.offset).unwrap_or(usize::MAX);
    let end = usize::try_from(c.offset.saturating_add(c.stored)).unwrap_or(usize::MAX);
    data.get(start..end).unwrap_or(&[])
}

/// Checks a manifest's tables against each other and the image geometry, with arithmetic
/// that cannot overflow: chunks contiguous and inside `data_bytes`, each at most one chunk's
/// worth of raw blocks, runs non-empty, ascending and disjoint across the whole snapshot,
/// raw lengths equal to blocks x block size, block counts inside the image, and LSNs
/// coherent. On failure: the chunk concerned (if one) and why.
fn check_tables(m: &Manifest) -> std::result::Result<(), (Option<usize>, String)> {
    let bs = u64::from(m.block_size);
    if bs == 0 || !bs.is_power_of_two() {
        return Err((None, format!("block size {bs} is not a power of two")));
    }
    if m.min_lsn > m.lsn.saturating_add(1) || (m.open_txns.is_empty() != (m.min_lsn == m.lsn.saturating_add(1))) {
        return Err((
            None,
            format!("min LSN {} does not fit LSN {} and {} open transactions", m.min_lsn, m.lsn, m.open_txns.len()),
        ));
    }
    let raw_max = (CHUNK_BYTES as u64).max(bs);
    let mut next_offset = 0u64;
    let mut next_block = 0u64;
    let mut blocks = 0u64;
    for (i, c) in m.chunks.iter().enumerate() {
        let bad = |why: &str| Err((Some(i), format!("chunk {i}: {why}")));
        if c.offset != next_offset {
            return bad("not where the previous chunk ends");
        }
        next_offset = match c.offset.checked_add(c.stored) {
            Some(end) if end <= m.data_bytes => end,
            _ => return bad("runs past the data section"),
        };
        let mut in_chunk = 0u64;
        for &(first, count) in &c.runs {
            let end = first.checked_add(count);
            if count == 0 || first < next_block || end.is_none_or(|e| e > m.block_count) {
                return bad("block runs are empty, out of order, overlapping or outside the image");
            }
            next_block = first + count;
            in_chunk += count;
        }
        if in_chunk.checked_mul(bs) != Some(c.raw) || c.raw > raw_max || c.raw == 0 {
            return bad("raw length disagrees with its blocks or exceeds a chunk");
        }
        blocks += in_chunk;
    }
    if next_offset != m.data_bytes || blocks != m.blocks {
        return Err((None, "chunk table does not cover the data section or the block count".into()));
    }
    for list in [&m.dropped] {
        if list.windows(2).any(|w| w[0] >= w[1]) || list.last().is_some_and(|&b| b >= m.block_count) {
            return Err((None, "dropped blocks out of order or outside the image".into()));
        }
    }
    let mut prev_end = 0u64;
    for &(first, count) in &m.excluded {
        if count == 0 || first < prev_end || first.checked_add(count).is_none_or(|e| e > m.block_count) {
            return Err((None, "excluded block runs out of order or outside the image".into()));
        }
        prev_end = first + count;
    }
    Ok(())
}

/// A snapshot's manifest, checked, and the chunks read so far (each checked against its
/// own checksum when read).
pub struct Loaded {
    /// Its file.
    pub path: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    data_at: u64,
    chunks: Vec<Option<Vec<u8>>>,
}

impl Loaded {
    /// Chunk `ci`'s stored bytes, if they were read.
    pub fn chunk(&self, ci: usize) -> Option<&[u8]> {
        self.chunks.get(ci).and_then(|c| c.as_deref())
    }

    /// Reads chunk `ci` from the file and checks its checksum.
    fn read_chunk(&mut self, file: &File, ci: usize) -> std::result::Result<(), Rejected> {
        let c = &self.manifest.chunks[ci];
        let at = self.data_at + c.offset;
        let mut buf = vec![0u8; c.stored as usize];
        file.read_exact_at(&mut buf, at)
            .map_err(|e| reject(&self.path, Some(at), format!("cannot read chunk {ci}: {e}")))?;
        if crate::crc::crc32c(&buf) != c.crc {
            return Err(reject(&self.path, Some(at), "chunk checksum mismatch"));
        }
        self.chunks[ci] = Some(buf);
        Ok(())
    }
}

/// Why a snapshot was not used.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Rejected {
    /// The snapshot file.
    pub path: PathBuf,
    /// Byte offset of the problem, when it is about the file's bytes.
    pub offset: Option<u64>,
    /// What was wrong.
    pub reason: String,
}

fn reject(path: &Path, offset: Option<u64>, reason: impl Into<String>) -> Rejected {
    Rejected { path: path.to_path_buf(), offset, reason: reason.into() }
}

/// Reads `path` whole and checks everything that can be checked without other files: magic,
/// manifest checksum and shape, file length, data checksum and every chunk's checksum.
pub fn load(path: &Path) -> std::result::Result<Loaded, Rejected> {
    let (mut loaded, file) = open_lazy(path)?;
    let mut data = vec![0u8; loaded.manifest.data_bytes as usize];
    let at = loaded.data_at;
    file.read_exact_at(&mut data, at).map_err(|e| reject(path, Some(at), format!("cannot read data: {e}")))?;
    let m = &loaded.manifest;
    if crate::crc::crc32c(&data) != m.data_crc {
        // Name the first damaged chunk when there is one (the table is consistent by now).
        let bad = m.chunks.iter().find(|c| crate::crc::crc32c(chunk_bytes(&data, c)) != c.crc);
        return Err(reject(path, Some(at + bad.map_or(0, |c| c.offset)), "data checksum mismatch"));
    }
    if let Some(c) = m.chunks.iter().find(|c| crate::crc::crc32c(chunk_bytes(&data, c)) != c.crc) {
        return Err(reject(path, Some(at + c.offset), "chunk checksum mismatch"));
    }
    loaded.chunks = m.chunks.iter().map(|c| Some(chunk_bytes(&data, c).to_vec())).collect();
    Ok(loaded)
}

/// Reads and checks a snapshot file's header and manifest (magic, length bound, checksum,
/// version). Returns the manifest and where the data section starts.
fn read_head(file: &File, path: &Path) -> std::result::Result<(Manifest, u64), Rejected> {
    let mut head = [0u8; 16];
    file.read_exact_at(&mut head, 0).map_err(|_| reject(path, Some(0), "shorter than a header"))?;
    if &head[..8] != MAGIC {
        return Err(reject(path, Some(0), "bad magic"));
    }
    let mlen = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
    if mlen > MANIFEST_MAX {
        return Err(reject(path, Some(8), "manifest length out of range"));
    }
    let mut json = vec![0u8; mlen as usize];
    file.read_exact_at(&mut json, 16).map_err(|_| reject(path, Some(16), "manifest runs past the end of the file"))?;
    if crate::crc::crc32c(&json) != u32::from_le_bytes([head[12], head[13], head[14], head[15]]) {
        return Err(reject(path, Some(16), "manifest checksum mismatch"));
    }
    let manifest: Manifest =
        serde_json::from_slice(&json).map_err(|e| reject(path, Some(16), format!("manifest does not parse: {e}")))?;
    if manifest.version != VERSION {
        return Err(reject(path, Some(16), format!("unsupported version {}", manifest.version)));
    }
    Ok((manifest, 16 + u64::from(mlen)))
}

/// Reads and checks `path`'s manifest (header, tables, file length) without its data; chunks
/// are read, and checked, when a chain needs them.
fn open_lazy(path: &Path) -> std::result::Result<(Loaded, File), Rejected> {
    let file = File::open(path).map_err(|e| reject(path, None, format!("cannot read: {e}")))?;
    let (manifest, data_at) = read_head(&file, path)?;
    let len = file.metadata().map_err(|e| reject(path, None, format!("cannot stat: {e}")))?.len();
    let want = data_at.saturating_add(manifest.data_bytes);
    if len != want {
        return Err(reject(path, Some(len.min(want)), format!("file is {len} bytes, the manifest says {want}")));
    }
    check_tables(&manifest).map_err(|(chunk, why)| {
        let at = chunk.and_then(|i| manifest.chunks.get(i)).map_or(16, |c| data_at.saturating_add(c.offset));
        reject(path, Some(at), why)
    })?;
    let chunks = vec![None; manifest.chunks.len()];
    Ok((Loaded { path: path.to_path_buf(), manifest, data_at, chunks }, file))
}

/// A chain of snapshots, root (full, metadata or emergency) first, ending at the one
/// recovery starts from.
pub struct Chain {
    /// Members, root first.
    pub members: Vec<Loaded>,
    /// For each block the chain restores: (member, chunk) holding its newest image.
    pub sources: BTreeMap<u64, (usize, usize)>,
}

impl Chain {
    /// The snapshot recovery starts from.
    pub fn head(&self) -> &Manifest {
        // A chain always has at least its root.
        &self.members[self.members.len() - 1].manifest
    }

    /// Sequence numbers, root first.
    pub fn seqs(&self) -> Vec<u64> {
        self.members.iter().map(|m| m.manifest.seq).collect()
    }
}

/// Builds the chain ending at `head` from `all` (sequence -> path): reads and checks each
/// member's manifest (checksum, tables, file length, the image's geometry, parent order),
/// then reads and checks (crc32c) every chunk that holds some block's newest image. Chunks a
/// later member replaced are not read; [`load`] checks a whole file.
pub fn chain(layout: &Layout, all: &BTreeMap<u64, PathBuf>, head: u64) -> std::result::Result<Chain, Rejected> {
    let mut members: Vec<Loaded> = Vec::new();
    let mut files: Vec<File> = Vec::new();
    let mut next = Some(head);
    while let Some(seq) = next {
        let Some(path) = all.get(&seq) else {
            let child = members.last().map_or_else(PathBuf::new, |m| m.path.clone());
            return Err(reject(&child, None, format!("its parent snapshot {seq} is missing")));
        };
        let (l, file) = open_lazy(path)?;
        files.push(file);
        let m = &l.manifest;
        if m.seq != seq {
            return Err(reject(path, Some(16), format!("manifest says snapshot {}, the file name {seq}", m.seq)));
        }
        if m.image_id != layout.geometry.image_id
            || m.block_size != layout.geometry.block_size
            || m.block_count != layout.block_count()
        {
            return Err(reject(path, Some(16), "belongs to another image (identity or geometry differs)"));
        }
        if let Some(child) = members.last() {
            if m.lsn > child.manifest.lsn || m.seq >= child.manifest.seq {
                return Err(reject(&child.path, Some(16), "its parent is not older than itself"));
            }
        }
        next = match m.kind {
            SnapshotKind::Incremental => match m.parent {
                Some(p) => Some(p),
                None => return Err(reject(path, Some(16), "incremental snapshot without a parent")),
            },
            _ => None,
        };
        members.push(l);
    }
    members.reverse();
    files.reverse();
    let mut sources: BTreeMap<u64, (usize, usize)> = BTreeMap::new();
    for (mi, m) in members.iter().enumerate() {
        for b in &m.manifest.dropped {
            sources.remove(b);
        }
        for (ci, c) in m.manifest.chunks.iter().enumerate() {
            for b in blocks_of(&c.runs) {
                sources.insert(b, (mi, ci));
            }
        }
    }
    // Only chunks holding some block's newest image are read: an older member's chunks that
    // later members replaced are never needed, and reading and checking them would cost more
    // than the journal they save on a long chain of near-full incrementals.
    let needed: std::collections::BTreeSet<(usize, usize)> = sources.values().copied().collect();
    for &(mi, ci) in &needed {
        members[mi].read_chunk(&files[mi], ci)?;
    }
    Ok(Chain { members, sources })
}

/// What restoring a chain did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RestoreStats {
    /// Blocks written to the image (those whose content differed).
    pub blocks: u64,
    /// Blocks the image already held with the snapshot's content.
    pub unchanged: u64,
    /// Blocks the chain holds that a later committed revoke made the home copy's business.
    pub skipped_revoked: u64,
    /// Chunks decompressed.
    pub chunks: u64,
}

/// Writes the chain's blocks into `image` (positioned writes), except those `skip` names.
/// Chunks are decompressed in parallel on the rayon pool.
pub fn restore(
    chain: &Chain,
    image: &File,
    image_path: &Path,
    layout: &Layout,
    skip: &(dyn Fn(u64) -> bool + Sync),
    progress: &crate::progress::Tracker<'_>,
) -> Result<RestoreStats> {
    let bs = layout.block_size();
    let work: Vec<(usize, usize)> = chain
        .members
        .iter()
        .enumerate()
        .flat_map(|(mi, m)| (0..m.manifest.chunks.len()).map(move |ci| (mi, ci)))
        // Only chunks that are some block's newest image are worth decompressing.
        .filter(|&(mi, ci)| {
            blocks_of(&chain.members[mi].manifest.chunks[ci].runs).any(|b| chain.sources.get(&b) == Some(&(mi, ci)))
        })
        .collect();
    let results: Vec<Result<(u64, u64, u64)>> =
        work.par_iter()
            .map(|&(mi, ci)| {
                if progress.cancelled() {
                    return Err(Error::WorkerStopped);
                }
                let m = &chain.members[mi];
                let c = &m.manifest.chunks[ci];
                let stored = m.chunk(ci).unwrap_or(&[]);
                let raw = m.manifest.compression.decompress(stored, c.raw as usize).map_err(|reason| {
                    Error::Snapshot { path: m.path.clone(), offset: None, reason: format!("chunk {ci}: {reason}") }
                })?;
                // Most blocks of a crash image already hold their snapshot content (the system
                // wrote them back before the crash): reading and comparing is far cheaper than
                // writing, dirtying and later flushing them.
                let mut current = vec![0u8; c.raw as usize];
                let mut at = 0usize;
                for &(first, count) in &c.runs {
                    let n = count as usize * bs;
                    image
                        .read_exact_at(&mut current[at..at + n], first * bs as u64)
                        .map_err(|e| Error::io(image_path, "read image block", e))?;
                    at += n;
                }
                let (mut written, mut skipped, mut same) = (0, 0, 0);
                for (i, b) in blocks_of(&c.runs).enumerate() {
                    if chain.sources.get(&b) != Some(&(mi, ci)) {
                        continue;
                    }
                    if skip(b) {
                        skipped += 1;
                        continue;
                    }
                    let want = &raw[i * bs..(i + 1) * bs];
                    if current[i * bs..(i + 1) * bs] == *want {
                        same += 1;
                        continue;
                    }
                    image
                        .write_all_at(want, b * bs as u64)
                        .map_err(|e| Error::io(image_path, "restore snapshot block", e))?;
                    written += 1;
                }
                progress.add(0, written + skipped + same, (written + skipped + same) * bs as u64);
                Ok((written, skipped, same))
            })
            .collect();
    let mut stats = RestoreStats { chunks: work.len() as u64, ..RestoreStats::default() };
    for r in results {
        let (w, s, same) = r?;
        stats.blocks += w;
        stats.skipped_revoked += s;
        stats.unchanged += same;
    }
    Ok(stats)
}

/// Reconstructs the image bytes the chain holds into `out` (a whole image's bytes; blocks the
/// chain does not hold are left alone). Used to compute incremental snapshots.
pub fn materialize(chain: &Chain, layout: &Layout, out: &mut [u8]) -> Result<()> {
    let bs = layout.block_size();
    for (mi, m) in chain.members.iter().enumerate() {
        for (ci, c) in m.manifest.chunks.iter().enumerate() {
            let stored = m.chunk(ci).unwrap_or(&[]);
            let raw = m.manifest.compression.decompress(stored, c.raw as usize).map_err(|reason| Error::Snapshot {
                path: m.path.clone(),
                offset: None,
                reason: format!("chunk {ci}: {reason}"),
            })?;
            for (i, b) in blocks_of(&c.runs).enumerate() {
                if chain.sources.get(&b) == Some(&(mi, ci)) {
                    out[b as usize * bs..(b as usize + 1) * bs].copy_from_slice(&raw[i * bs..(i + 1) * bs]);
                }
            }
        }
    }
    Ok(())
}

/// Chooses the newest snapshot whose chain validates and whose `min_lsn` the journal still
/// reaches (`journal_first_lsn`: the first LSN of the oldest segment present). Returns it
/// with every newer snapshot passed over and why.
pub fn select(dir: &Path, layout: &Layout, journal_first_lsn: u64) -> Result<(Option<Chain>, Vec<Rejected>)> {
    let all: BTreeMap<u64, PathBuf> = list(dir)?.into_iter().collect();
    let mut rejected = Vec::new();
    for &seq in all.keys().rev() {
        match chain(layout, &all, seq) {
            Ok(c) => {
                let h = c.head();
                if h.min_lsn < journal_first_lsn {
                    rejected.push(reject(
                        &all[&seq],
                        None,
                        format!("needs the journal from LSN {}, but it starts at LSN {journal_first_lsn}", h.min_lsn),
                    ));
                    continue;
                }
                return Ok((Some(c), rejected));
            }
            Err(r) => {
                // Name the snapshot recovery tried, and the member that failed.
                let reason = if r.path == all[&seq] {
                    r.reason
                } else {
                    format!("its chain member {} is unusable: {}", r.path.display(), r.reason)
                };
                rejected.push(Rejected { path: all[&seq].clone(), offset: r.offset, reason });
            }
        }
    }
    Ok((None, rejected))
}

/// What retention removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Pruned {
    /// Snapshot files removed.
    pub snapshots: Vec<PathBuf>,
}

/// Keeps the newest `retain` snapshots and every snapshot a kept one's chain depends on;
/// removes the rest. A kept snapshot whose manifest cannot be read keeps everything older than
/// itself (it may depend on any of it). Snapshots never recycle the journal: a rebuild from
/// one needs the journal after it, and the checkpoint records decide what may go.
pub fn prune(dir: &Path, retain: usize) -> Result<Pruned> {
    if retain == 0 {
        return Err(Error::Config("retention must keep at least one snapshot".into()));
    }
    let all = list(dir)?;
    let manifests: BTreeMap<u64, Option<Manifest>> = all.iter().map(|(seq, p)| (*seq, read_manifest(p).ok())).collect();
    let mut keep: std::collections::BTreeSet<u64> = all.iter().rev().take(retain).map(|(s, _)| *s).collect();
    let mut frontier: Vec<u64> = keep.iter().copied().collect();
    // A kept snapshot whose manifest cannot be read may depend on anything older.
    let mut keep_below = 0u64;
    while let Some(seq) = frontier.pop() {
        match manifests.get(&seq) {
            Some(Some(m)) => {
                if let Some(p) = m.parent {
                    if keep.insert(p) {
                        frontier.push(p);
                    }
                }
            }
            _ => keep_below = keep_below.max(seq),
        }
    }
    let mut out = Pruned::default();
    for (seq, path) in &all {
        if !keep.contains(seq) && *seq >= keep_below {
            std::fs::remove_file(path).map_err(|e| Error::io(path, "remove old snapshot", e))?;
            out.snapshots.push(path.clone());
        }
    }
    if !out.snapshots.is_empty() {
        fsync_dir(&dir.join(SNAPSHOT_DIR))?;
    }
    Ok(out)
}

/// Reads only a snapshot's manifest (magic, length, checksum and version checked).
pub fn read_manifest(path: &Path) -> std::result::Result<Manifest, Rejected> {
    let file = File::open(path).map_err(|e| reject(path, None, format!("cannot read: {e}")))?;
    read_head(&file, path).map(|(m, _)| m)
}

/// Makes the image file `image_path` of `dir` usable for a rebuild when it is missing or its
/// superblock does not validate, from the newest snapshot that validates far enough to give
/// its superblock (block 0, read from the newest chain member holding it, its chunk's checksum
/// checked): the file gets the snapshot's length and block 0; the rest of an existing file is
/// kept (zeros where it grew), for the rebuild to fill. Returns the snapshot used.
pub fn create_image(dir: &Path, image_path: &Path) -> Result<PathBuf> {
    let all: BTreeMap<u64, PathBuf> = list(dir)?.into_iter().collect();
    let mut why = Vec::new();
    for &head in all.keys().rev() {
        let mut next = Some(head);
        let found = loop {
            let Some(seq) = next else { break Err(reject(&all[&head], None, "no chain member holds block 0")) };
            let Some(path) = all.get(&seq) else {
                break Err(reject(&all[&head], None, format!("its chain member {seq} is missing")));
            };
            let (mut l, file) = match open_lazy(path) {
                Ok(x) => x,
                Err(r) => break Err(r),
            };
            let holds_zero = l.manifest.chunks.first().and_then(|c| c.runs.first()).is_some_and(|r| r.0 == 0);
            if holds_zero {
                if let Err(r) = l.read_chunk(&file, 0) {
                    break Err(r);
                }
                break Ok(l);
            }
            next = match l.manifest.kind {
                SnapshotKind::Incremental => l.manifest.parent,
                SnapshotKind::Full => None,
            };
        };
        let l = match found {
            Ok(l) => l,
            Err(r) => {
                why.push(format!("{}: {}", r.path.display(), r.reason));
                continue;
            }
        };
        let m = &l.manifest;
        let c = &m.chunks[0];
        let raw = m.compression.decompress(l.chunk(0).unwrap_or(&[]), c.raw as usize).map_err(|reason| {
            Error::Snapshot { path: l.path.clone(), offset: None, reason: format!("chunk 0: {reason}") }
        })?;
        let bs = m.block_size as usize;
        let block0 = &raw[..bs.min(raw.len())];
        let layout = match Layout::decode_superblock(&l.path, block0) {
            Ok(layout) => layout,
            Err(e) => {
                why.push(format!("{}: block 0 is not a valid superblock: {e}", l.path.display()));
                continue;
            }
        };
        if layout.geometry.image_id != m.image_id || layout.block_count() != m.block_count {
            why.push(format!("{}: its superblock disagrees with its manifest", l.path.display()));
            continue;
        }
        // A damaged file keeps what it holds beyond block 0: the rebuild overwrites what the
        // snapshot holds and no more.
        let write = || -> std::io::Result<()> {
            let f = std::fs::OpenOptions::new().write(true).create(true).truncate(false).open(image_path)?;
            f.set_len(layout.image_len())?;
            f.write_all_at(block0, 0)?;
            f.sync_all()
        };
        write().map_err(|e| Error::io(image_path, "create image from a snapshot", e))?;
        fsync_dir(image_path.parent().unwrap_or(dir))?;
        return Ok(l.path.clone());
    }
    Err(Error::Snapshot {
        path: dir.join(SNAPSHOT_DIR),
        offset: None,
        reason: if why.is_empty() {
            "no snapshot to create the image from".into()
        } else {
            format!("no snapshot gives a valid superblock to create the image from ({})", why.join("; "))
        },
    })
}
