//! The on-disk journal format (specified byte by byte in `docs/FORMAT.md`).
//!
//! A journal is a directory of segment files. Each segment starts with a header block
//! ([`segment`]) followed by fixed-size data blocks. Logical records ([`record`]) are cut into
//! fragments ([`fragment`]) that never cross a block boundary, so every block boundary is a
//! resync point. [`writer::JournalWriter`] produces journals; [`fragment::SegmentDecoder`] reads
//! them back without panicking or allocating unboundedly on any input.

pub mod fragment;
pub mod record;
pub mod segment;
pub mod writer;

/// Reads a little-endian `u16` at `at`; the caller guarantees the bounds.
pub(crate) fn le_u16(bytes: &[u8], at: usize) -> u16 {
    let mut b = [0u8; 2];
    b.copy_from_slice(&bytes[at..at + 2]);
    u16::from_le_bytes(b)
}

/// Reads a little-endian `u32` at `at`; the caller guarantees the bounds.
pub(crate) fn le_u32(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

/// Reads a little-endian `u64` at `at`; the caller guarantees the bounds.
pub(crate) fn le_u64(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}
