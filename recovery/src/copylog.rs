//! What copies read, kept so a recovery of a journal with COPY records can be repeated.
//!
//! A COPY reads its source block as redo reaches it. A recovery writes the image only at its
//! end (see [`crate::shadow`]), but once it has begun writing, a source may already hold its
//! final content, and a second run (after a crash during the write-back, or `recover --force`
//! on a recovered directory) would copy the wrong bytes. So before the first block is written,
//! the bytes every replayed copy read are made durable in `DIR/recovery.cpl`, with the journal
//! they belong to and the start point the run chose; a later run of the same journal starts
//! from the same point and gives every copy the bytes it read the first time. Every other
//! record is a blind write, so the rerun reproduces the same image whatever the first run left
//! in the file.
//!
//! This costs the bytes copies read (16-512 bytes each on the generator's presets), not a
//! doublewrite of every changed block. The file stays with the recovered directory until its
//! journal changes, so `recover --force` repeats the recovery exactly.
//!
//! File, little-endian: `MAGIC (8) | journal tag (u64) | start (u8 kind, u64 seq, u32 crc) |
//! count (u64) | count x (LSN u64, length u32, bytes) ascending by LSN | crc32c of everything
//! before (u32)`. Start kinds: 0 the journal's first record, 1 a checkpoint record, 2 a
//! snapshot chain.

use std::io::Write;
use std::path::Path;

use rustc_hash::FxHashMap;

use crate::dir::fsync_dir;
use crate::error::{Error, Result};

/// The file's name in the recovery directory.
pub const COPY_LOG_FILE: &str = "recovery.cpl";
const MAGIC: &[u8; 8] = b"FRCPYL01";
const HEADER: usize = 8 + 8 + 13 + 8;

/// A tag naming the journal a copy log belongs to, from its fingerprint.
pub fn tag(fingerprint: &impl serde::Serialize) -> u64 {
    let bytes = serde_json::to_vec(fingerprint).unwrap_or_default();
    u64::from(crate::crc::crc32c(&bytes)) << 32 | u64::from(crate::crc::crc32c_append(0x5eed, &bytes))
}

/// Where the recovery that wrote a copy log started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", tag = "from")]
pub enum Start {
    /// The journal's first record.
    Journal,
    /// Checkpoint record `seq`, whose bytes had crc32c `crc`.
    Checkpoint {
        /// Its sequence number.
        seq: u64,
        /// Its checksum.
        crc: u32,
    },
    /// Snapshot chain ending at `seq`, whose data had crc32c `crc`.
    Snapshot {
        /// Its sequence number.
        seq: u64,
        /// Its data checksum.
        crc: u32,
    },
}

impl Start {
    fn encode(self) -> [u8; 13] {
        let (kind, seq, crc) = match self {
            Start::Journal => (0u8, 0, 0),
            Start::Checkpoint { seq, crc } => (1, seq, crc),
            Start::Snapshot { seq, crc } => (2, seq, crc),
        };
        let mut b = [0u8; 13];
        b[0] = kind;
        b[1..9].copy_from_slice(&seq.to_le_bytes());
        b[9..13].copy_from_slice(&crc.to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<Start> {
        let seq = u64::from_le_bytes(b.get(1..9)?.try_into().ok()?);
        let crc = u32::from_le_bytes(b.get(9..13)?.try_into().ok()?);
        match b.first()? {
            0 => Some(Start::Journal),
            1 => Some(Start::Checkpoint { seq, crc }),
            2 => Some(Start::Snapshot { seq, crc }),
            _ => None,
        }
    }
}

/// A loaded copy log: the bytes each copy read, by the copy's LSN.
#[derive(Debug, Default)]
pub struct CopyLog {
    /// Where the run that wrote it started.
    pub start: Option<Start>,
    index: FxHashMap<u64, (usize, usize)>,
    data: Vec<u8>,
}

impl CopyLog {
    /// The bytes the copy at `lsn` read, if logged.
    pub fn get(&self, lsn: u64) -> Option<&[u8]> {
        self.index.get(&lsn).map(|&(at, n)| &self.data[at..at + n])
    }

    /// Copies logged.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether nothing is logged.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }
}

/// How one replay worker's copies read their sources: from an earlier run's log when there is
/// one, else from the image, recording what they read.
#[derive(Debug, Default)]
pub struct CopyReads {
    /// An earlier run's log, shared by all workers.
    pub log: Option<std::sync::Arc<CopyLog>>,
    /// What this run's copies read, back to back (one buffer, not one allocation per copy).
    data: Vec<u8>,
    /// (LSN, offset in `data`, length) of each copy this run recorded.
    index: Vec<(u64, usize, usize)>,
}

impl CopyReads {
    /// Reads for a run with `log` (an interrupted run's), or none.
    pub fn with(log: Option<std::sync::Arc<CopyLog>>) -> CopyReads {
        CopyReads { log, data: Vec::new(), index: Vec::new() }
    }

    /// Records that the copy at `lsn` read `bytes`.
    pub fn record(&mut self, lsn: u64, bytes: &[u8]) {
        self.index.push((lsn, self.data.len(), bytes.len()));
        self.data.extend_from_slice(bytes);
    }

    /// Copies recorded by this run.
    pub fn recorded(&self) -> usize {
        self.index.len()
    }
}

/// Loads `dir`'s copy log when it belongs to the journal `tag`; a torn, damaged or foreign one
/// is removed (a run that had begun writing the image made its log durable first, so such a
/// file never had anything in the image depend on it).
pub fn load(dir: &Path, tag: u64) -> Result<Option<CopyLog>> {
    let path = dir.join(COPY_LOG_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&path, "read copy log", e)),
    };
    match parse(&bytes, tag) {
        Some(log) => Ok(Some(log)),
        None => {
            remove(dir)?;
            Ok(None)
        }
    }
}

fn parse(bytes: &[u8], tag: u64) -> Option<CopyLog> {
    if bytes.len() < HEADER + 4 || &bytes[..8] != MAGIC {
        return None;
    }
    let (body, tail) = bytes.split_at(bytes.len() - 4);
    if crate::crc::crc32c(body).to_le_bytes() != tail {
        return None;
    }
    let u64_at = |at: usize| bytes.get(at..at + 8).and_then(|s| s.try_into().ok()).map(u64::from_le_bytes);
    if u64_at(8)? != tag {
        return None;
    }
    let start = Start::decode(&bytes[16..29])?;
    let count = u64_at(29)?;
    let mut log = CopyLog { start: Some(start), index: FxHashMap::default(), data: Vec::new() };
    let mut at = HEADER;
    for _ in 0..count {
        let lsn = u64_at(at)?;
        let n = u32::from_le_bytes(body.get(at + 8..at + 12)?.try_into().ok()?) as usize;
        let b = body.get(at + 12..at + 12 + n)?;
        log.index.insert(lsn, (log.data.len(), n));
        log.data.extend_from_slice(b);
        at += 12 + n;
    }
    (at == body.len()).then_some(log)
}

/// Writes the copy log of this run durably (temporary file, fsync, rename, directory fsync):
/// the journal's `tag`, where the run started, and what every copy read (this run's reads,
/// and those of an earlier run's log `existing`).
pub fn write(dir: &Path, tag: u64, start: Start, existing: Option<&CopyLog>, reads: &[CopyReads]) -> Result<u64> {
    let mut entries: Vec<(u64, &[u8])> =
        reads.iter().flat_map(|r| r.index.iter().map(|&(lsn, at, n)| (lsn, &r.data[at..at + n]))).collect();
    if let Some(old) = existing {
        entries.extend(old.index.iter().map(|(&lsn, &(at, n))| (lsn, &old.data[at..at + n])));
    }
    entries.sort_unstable_by_key(|e| e.0);
    entries.dedup_by_key(|e| e.0);
    let path = dir.join(COPY_LOG_FILE);
    let tmp = dir.join(format!("{COPY_LOG_FILE}.tmp"));
    // Streamed through a buffer with a running checksum: no second copy of every byte.
    let put = || -> std::io::Result<u64> {
        let mut out =
            Checksummed { w: std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp)?), crc: 0, len: 0 };
        out.put(MAGIC)?;
        out.put(&tag.to_le_bytes())?;
        out.put(&start.encode())?;
        out.put(&(entries.len() as u64).to_le_bytes())?;
        for (lsn, bytes) in &entries {
            out.put(&lsn.to_le_bytes())?;
            out.put(&(bytes.len() as u32).to_le_bytes())?;
            out.put(bytes)?;
        }
        let crc = out.crc;
        out.put(&crc.to_le_bytes())?;
        let f = out.w.into_inner().map_err(std::io::IntoInnerError::into_error)?;
        f.sync_all()?;
        Ok(out.len)
    };
    let len = put().map_err(|e| Error::io(&tmp, "write copy log", e))?;
    std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, "rename copy log into place", e))?;
    fsync_dir(dir)?;
    Ok(len)
}

/// A writer that keeps the CRC-32C of what went through it.
struct Checksummed<W: Write> {
    w: W,
    crc: u32,
    len: u64,
}

impl<W: Write> Checksummed<W> {
    fn put(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.crc = crate::crc::crc32c_append(self.crc, b);
        self.len += b.len() as u64;
        self.w.write_all(b)
    }
}

/// Removes the copy log (its journal changed: nothing can repeat that recovery any more).
pub fn remove(dir: &Path) -> Result<()> {
    crate::dir::remove_durably(dir, COPY_LOG_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage_is_discarded() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut a = CopyReads::default();
        a.record(42, &[1, 2, 3]);
        let mut b = CopyReads::default();
        b.record(7, &[9; 300]);
        let start = Start::Checkpoint { seq: 5, crc: 0xabcd };
        write(tmp.path(), 99, start, None, &[a, b]).expect("write");
        let log = load(tmp.path(), 99).expect("load").expect("present");
        assert_eq!((log.start, log.len()), (Some(start), 2));
        assert_eq!(log.get(42), Some(&[1u8, 2, 3][..]));
        assert_eq!(log.get(7).map(<[u8]>::len), Some(300));
        // Another journal's log is stale: removed.
        assert!(load(tmp.path(), 98).expect("load").is_none());
        assert!(!tmp.path().join(COPY_LOG_FILE).exists());
        // A torn one too.
        write(tmp.path(), 99, Start::Journal, None, &[]).expect("write");
        let p = tmp.path().join(COPY_LOG_FILE);
        let len = std::fs::metadata(&p).expect("stat").len();
        std::fs::OpenOptions::new().write(true).open(&p).expect("open").set_len(len - 1).expect("tear");
        assert!(load(tmp.path(), 99).expect("load").is_none());
    }
}
