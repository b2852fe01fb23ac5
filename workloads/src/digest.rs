//! Per-block digests of an image, the expected files, and [`verify_dir`].
//!
//! `expected.digests` holds one xxh3-64 per image block, little-endian. The image digest is the
//! hex xxh3-128 of those digest bytes concatenated, so two images have the same image digest
//! exactly when (barring collisions) every block matches.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use recovery::dir::{EXPECTED_DIGESTS_FILE, EXPECTED_FILE, IMAGE_FILE};
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::{xxh3_128, xxh3_64};

use crate::error::GenError;

/// The xxh3-64 of every `block_size` block of `bytes` (a short last block is hashed as is).
pub fn block_digests(bytes: &[u8], block_size: usize) -> Vec<u64> {
    bytes.chunks(block_size.max(1)).map(xxh3_64).collect()
}

/// Hex xxh3-128 over the little-endian bytes of `digests`.
pub fn image_digest(digests: &[u64]) -> String {
    let bytes: Vec<u8> = digests.iter().flat_map(|d| d.to_le_bytes()).collect();
    format!("{:032x}", xxh3_128(&bytes))
}

/// Contents of `expected.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expected {
    /// Image block size in bytes.
    pub block_size: u32,
    /// Image blocks.
    pub block_count: u64,
    /// [`image_digest`] of the expected image.
    pub image_digest: String,
    /// The generation seed.
    pub seed: u64,
    /// Transactions the oracle counted as committed.
    pub committed_txns: u64,
    /// Inodes the oracle freed in orphan cleanup.
    pub orphans_freed: u64,
    /// Crash position (global journal byte position).
    pub crash_pos: u64,
}

/// Writes `expected.digests` and `expected.json` for `digests` into `dir`.
pub(crate) fn write_expected(dir: &Path, digests: &[u64], expected: &Expected) -> Result<(), GenError> {
    let path = dir.join(EXPECTED_DIGESTS_FILE);
    let bytes: Vec<u8> = digests.iter().flat_map(|d| d.to_le_bytes()).collect();
    std::fs::write(&path, bytes).map_err(|e| GenError::io(&path, "write", e))?;
    write_json(&dir.join(EXPECTED_FILE), expected)
}

/// Writes `value` as pretty JSON to `path`.
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), GenError> {
    let mut text =
        serde_json::to_string_pretty(value).map_err(|error| GenError::Json { path: path.to_path_buf(), error })?;
    text.push('\n');
    std::fs::write(path, text).map_err(|e| GenError::io(path, "write", e))
}

/// Reads `expected.json` from a crash directory.
pub fn read_expected(dir: &Path) -> Result<Expected, GenError> {
    let path = dir.join(EXPECTED_FILE);
    let text = std::fs::read(&path).map_err(|e| GenError::io(&path, "read", e))?;
    serde_json::from_slice(&text).map_err(|error| GenError::Json { path, error })
}

/// Result of comparing a directory's image with its expected digests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct VerifyOutcome {
    /// Every block matches and the image has exactly the expected length.
    pub matches: bool,
    /// Blocks compared (the expected block count).
    pub blocks: u64,
    /// Blocks that differ or are missing.
    pub bad_blocks: u64,
    /// The first block that differs or is missing.
    pub first_bad_block: Option<u64>,
}

/// Bytes read from the image per read call (a whole number of blocks, at least one).
const VERIFY_CHUNK_BYTES: usize = 4 << 20;

/// Compares `DIR/image.img` with `DIR/expected.digests`, streaming the image in chunks.
pub fn verify_dir(dir: &Path) -> Result<VerifyOutcome, GenError> {
    let expected = read_expected(dir)?;
    let dpath = dir.join(EXPECTED_DIGESTS_FILE);
    let raw = std::fs::read(&dpath).map_err(|e| GenError::io(&dpath, "read", e))?;
    if raw.len() as u64 != expected.block_count * 8 {
        return Err(GenError::BadInput { path: dpath, what: "digest count disagrees with expected.json" });
    }
    let digests: Vec<u64> = raw
        .chunks_exact(8)
        .map(|c| {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            u64::from_le_bytes(b)
        })
        .collect();
    let bs = expected.block_size as usize;
    if bs == 0 {
        return Err(GenError::BadInput { path: dir.join(EXPECTED_FILE), what: "block_size is 0" });
    }
    let ipath = dir.join(IMAGE_FILE);
    let mut file = File::open(&ipath).map_err(|e| GenError::io(&ipath, "open", e))?;
    let chunk_blocks = (VERIFY_CHUNK_BYTES / bs).max(1);
    let mut buf = vec![0u8; chunk_blocks * bs];
    let mut block = 0u64;
    let mut bad_blocks = 0u64;
    let mut first_bad_block = None;
    let mut extra = false;
    loop {
        let n = read_full(&mut file, &mut buf).map_err(|e| GenError::io(&ipath, "read", e))?;
        if n == 0 {
            break;
        }
        for piece in buf[..n].chunks(bs) {
            let good = match digests.get(block as usize) {
                Some(&d) => piece.len() == bs && xxh3_64(piece) == d,
                None => {
                    extra = true;
                    false
                }
            };
            if !good && (block as usize) < digests.len() {
                bad_blocks += 1;
                first_bad_block.get_or_insert(block);
            }
            block += 1;
        }
        if n < buf.len() {
            break;
        }
    }
    if block < expected.block_count {
        bad_blocks += expected.block_count - block;
        first_bad_block.get_or_insert(block);
    }
    Ok(VerifyOutcome { matches: bad_blocks == 0 && !extra, blocks: expected.block_count, bad_blocks, first_bad_block })
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn read_full(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_per_block() {
        let mut img = vec![0u8; 4096 * 3];
        let a = block_digests(&img, 4096);
        assert_eq!(a.len(), 3);
        assert_eq!(a[0], a[1]);
        img[4096 + 5] = 1;
        let b = block_digests(&img, 4096);
        assert_eq!((a[0], a[2]), (b[0], b[2]));
        assert_ne!(a[1], b[1]);
        assert_ne!(image_digest(&a), image_digest(&b));
        assert_eq!(image_digest(&a).len(), 32);
    }
}
