//! Atomic image updates for recoveries that replay COPY records.
//!
//! A copy reads its source block as redo reaches it, so a rerun after a crash is only correct
//! if the first run left no later change of a copy source in the image. Such recoveries keep
//! every change in memory (a private mapping or the block cache), then write the changed
//! blocks to `DIR/recovery.dwb`, make it durable, and only then write them in place. A rerun
//! that finds a complete file for the same journal finishes by writing its blocks again; a
//! torn or foreign file means the in-place writes never began, and it is discarded.
//!
//! File: `MAGIC (8) | journal tag (u64) | last LSN (u64) | block size (u32) | count (u64) |
//! count x (block number u64, block bytes) | crc32c of everything before (u32)`, little-endian.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::dir::fsync_dir;
use crate::error::{Error, Result};

/// The file's name in the recovery directory.
pub const DOUBLEWRITE_FILE: &str = "recovery.dwb";
const MAGIC: &[u8; 8] = b"FRDWB001";
const HEADER: usize = 8 + 8 + 8 + 4 + 8;

/// A tag naming the journal a doublewrite file belongs to, from its fingerprint.
pub fn tag(fingerprint: &impl serde::Serialize) -> u64 {
    let bytes = serde_json::to_vec(fingerprint).unwrap_or_default();
    u64::from(crc32c::crc32c(&bytes)) << 32 | u64::from(crc32c::crc32c_append(0x5eed, &bytes))
}

/// Where and for which journal a recovery's result is committed.
pub struct Target<'a> {
    /// The recovery directory.
    pub dir: &'a Path,
    /// The image, open for writing.
    pub image: &'a File,
    /// Its path, for errors.
    pub image_path: &'a Path,
    /// The journal's tag ([`tag`]).
    pub tag: u64,
    /// The last durable LSN the result reflects (for the marker a rerun writes).
    pub last_lsn: u64,
    /// Image block size.
    pub block_size: usize,
}

/// Writes `blocks` (number, bytes; ascending) durably to the doublewrite file, then in place
/// into the image. `fail_after` simulates a crash after that many in-place block writes.
pub fn commit(t: &Target<'_>, blocks: &[(u64, &[u8])], fail_after: Option<u64>) -> Result<()> {
    let Target { dir, image, image_path, tag, last_lsn, block_size } = *t;
    let path = dir.join(DOUBLEWRITE_FILE);
    let mut crc = 0u32;
    let mut write = || -> std::io::Result<()> {
        let mut f = std::io::BufWriter::with_capacity(1 << 20, File::create(&path)?);
        let mut put = |bytes: &[u8], f: &mut std::io::BufWriter<File>| -> std::io::Result<()> {
            crc = crc32c::crc32c_append(crc, bytes);
            f.write_all(bytes)
        };
        put(MAGIC, &mut f)?;
        put(&tag.to_le_bytes(), &mut f)?;
        put(&last_lsn.to_le_bytes(), &mut f)?;
        put(&(block_size as u32).to_le_bytes(), &mut f)?;
        put(&(blocks.len() as u64).to_le_bytes(), &mut f)?;
        for (b, bytes) in blocks {
            put(&b.to_le_bytes(), &mut f)?;
            put(bytes, &mut f)?;
        }
        f.write_all(&crc.to_le_bytes())?;
        let f = f.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()
    };
    write().map_err(|e| Error::io(&path, "write doublewrite file", e))?;
    fsync_dir(dir)?;
    // In place, neighbours coalesced into one write (blocks arrive in ascending order).
    let mut run: Vec<u8> = Vec::new();
    let mut run_start = 0u64;
    let mut done = 0u64;
    let flush = |run: &mut Vec<u8>, start: u64, done: &mut u64| -> Result<()> {
        if run.is_empty() {
            return Ok(());
        }
        image
            .write_all_at(run, start * block_size as u64)
            .map_err(|e| Error::io(image_path, "write recovered block", e))?;
        *done += (run.len() / block_size) as u64;
        run.clear();
        Ok(())
    };
    for (b, bytes) in blocks {
        if fail_after.is_some_and(|n| done + (run.len() / block_size) as u64 >= n) {
            flush(&mut run, run_start, &mut done)?;
            return Err(Error::InjectedFault("after-doublewrite"));
        }
        let next = run_start + (run.len() / block_size) as u64;
        if run.is_empty() || *b != next || run.len() >= 8 << 20 {
            flush(&mut run, run_start, &mut done)?;
            run_start = *b;
        }
        run.extend_from_slice(bytes);
    }
    flush(&mut run, run_start, &mut done)
}

/// If `dir` holds a complete doublewrite file for the journal `tag`, writes its blocks into
/// `image` again and returns (blocks, last LSN); a torn or foreign file is removed and `None`
/// returned.
pub fn finish_interrupted(
    dir: &Path,
    image: &File,
    image_path: &Path,
    tag: u64,
    block_size: usize,
) -> Result<Option<(u64, u64)>> {
    let path = dir.join(DOUBLEWRITE_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&path, "read doublewrite file", e)),
    };
    let valid = bytes.len() >= HEADER + 4 && &bytes[..8] == MAGIC && {
        let (body, tail) = bytes.split_at(bytes.len() - 4);
        crc32c::crc32c(body).to_le_bytes() == tail
    };
    let field =
        |at: usize, n: usize| bytes.get(at..at + n).map(|s| s.iter().rev().fold(0u64, |a, &x| a << 8 | u64::from(x)));
    let ok = valid
        && field(8, 8) == Some(tag)
        && field(24, 4) == Some(block_size as u64)
        && field(28, 8).is_some_and(|n| {
            (n as usize).checked_mul(8 + block_size).and_then(|x| x.checked_add(HEADER + 4)) == Some(bytes.len())
        });
    if !ok {
        std::fs::remove_file(&path).map_err(|e| Error::io(&path, "remove torn doublewrite file", e))?;
        fsync_dir(dir)?;
        return Ok(None);
    }
    let count = field(28, 8).unwrap_or(0);
    let last_lsn = field(16, 8).unwrap_or(0);
    let mut at = HEADER;
    for _ in 0..count {
        let b = field(at, 8).unwrap_or(0);
        let data = &bytes[at + 8..at + 8 + block_size];
        image
            .write_all_at(data, b * block_size as u64)
            .map_err(|e| Error::io(image_path, "write recovered block", e))?;
        at += 8 + block_size;
    }
    Ok(Some((count, last_lsn)))
}

/// Removes the doublewrite file once the marker says the recovery is complete.
pub fn remove(dir: &Path) -> Result<()> {
    crate::dir::remove_durably(dir, DOUBLEWRITE_FILE)
}
