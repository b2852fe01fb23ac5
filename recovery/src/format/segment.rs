//! Segment header: the first block of every segment file.

use super::{le_u16, le_u32, le_u64};
use crate::error::CorruptKind;

/// Magic bytes at offset 0 of every segment.
pub const SEGMENT_MAGIC: [u8; 8] = *b"FRECJNL1";
/// The format version this crate writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// Encoded size of the header fields; the rest of the header block is zero.
pub const SEGMENT_HEADER_LEN: usize = 64;
/// Smallest allowed journal block size.
pub const BLOCK_SIZE_MIN: u32 = 4096;
/// Largest allowed journal block size.
pub const BLOCK_SIZE_MAX: u32 = 1 << 20;
/// Header flag: the writer used the steal buffer policy (records carry undo images).
pub const FLAG_STEAL: u16 = 1;
/// Header flag: the writer appends a SYNC record after every journal sync, fsyncs each
/// segment's header when it creates the segment and the whole segment before the next one
/// (FORMAT.md, "Sync markers"): damage followed by valid records that no later SYNC record
/// covers is then the unsynced tail.
pub const FLAG_SYNC_MARKERS: u16 = 2;

/// Decoded segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Header flags ([`FLAG_STEAL`]).
    pub flags: u16,
    /// Journal block size in bytes (a power of two in `BLOCK_SIZE_MIN..=BLOCK_SIZE_MAX`).
    pub block_size: u32,
    /// Position of this segment in the journal, starting at 1, consecutive.
    pub segment_seq: u64,
    /// Random per-segment value mixed into every fragment checksum, so bytes left from an
    /// earlier use of the file never validate.
    pub salt: u64,
    /// Identity of the image this journal belongs to.
    pub image_id: u64,
    /// LSN of the first record that starts in this segment.
    pub first_lsn: u64,
    /// Block size of the image, for validating full-block writes.
    pub image_block_size: u32,
    /// Data blocks the segment may hold: its file is at most `(1 + segment_blocks) *
    /// block_size` bytes, which bounds what a reader maps or reads.
    pub segment_blocks: u32,
}

/// Largest segment file the format allows (header block included).
pub const SEGMENT_BYTES_MAX: u64 = 4 << 30;

impl SegmentHeader {
    /// Largest length this segment's file may have.
    pub fn capacity_bytes(&self) -> u64 {
        (1 + u64::from(self.segment_blocks)) * u64::from(self.block_size)
    }
}

impl SegmentHeader {
    /// True when the writer used the steal policy.
    pub fn steal(&self) -> bool {
        self.flags & FLAG_STEAL != 0
    }

    /// True when the writer used sync markers ([`FLAG_SYNC_MARKERS`]).
    pub fn sync_markers(&self) -> bool {
        self.flags & FLAG_SYNC_MARKERS != 0
    }

    /// Encodes the header into a full header block of `block_size` bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.block_size as usize];
        out[0..8].copy_from_slice(&SEGMENT_MAGIC);
        out[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out[10..12].copy_from_slice(&self.flags.to_le_bytes());
        out[12..16].copy_from_slice(&self.block_size.to_le_bytes());
        out[16..24].copy_from_slice(&self.segment_seq.to_le_bytes());
        out[24..32].copy_from_slice(&self.salt.to_le_bytes());
        out[32..40].copy_from_slice(&self.image_id.to_le_bytes());
        out[40..48].copy_from_slice(&self.first_lsn.to_le_bytes());
        out[48..52].copy_from_slice(&self.image_block_size.to_le_bytes());
        out[52..56].copy_from_slice(&self.segment_blocks.to_le_bytes());
        let crc = crate::crc::crc32c(&out[0..60]);
        out[60..64].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes a header from the first bytes of a segment file. Returns the offset and kind of
    /// the first problem found.
    pub fn decode(bytes: &[u8]) -> Result<SegmentHeader, (u64, CorruptKind)> {
        if bytes.len() < SEGMENT_HEADER_LEN {
            return Err((bytes.len() as u64, CorruptKind::TruncatedHeader));
        }
        if bytes[0..8] != SEGMENT_MAGIC {
            return Err((0, CorruptKind::BadMagic));
        }
        let stored = le_u32(bytes, 60);
        let computed = crate::crc::crc32c(&bytes[0..60]);
        if stored != computed {
            return Err((60, CorruptKind::Checksum { stored, computed }));
        }
        let version = le_u16(bytes, 8);
        if version != FORMAT_VERSION {
            return Err((8, CorruptKind::UnsupportedVersion(version)));
        }
        let flags = le_u16(bytes, 10);
        if flags & !(FLAG_STEAL | FLAG_SYNC_MARKERS) != 0 {
            return Err((10, CorruptKind::BadField("flags")));
        }
        let block_size = le_u32(bytes, 12);
        if !block_size.is_power_of_two() || !(BLOCK_SIZE_MIN..=BLOCK_SIZE_MAX).contains(&block_size) {
            return Err((12, CorruptKind::BadField("block_size")));
        }
        let segment_seq = le_u64(bytes, 16);
        if segment_seq == 0 {
            return Err((16, CorruptKind::BadField("segment_seq")));
        }
        let first_lsn = le_u64(bytes, 40);
        if first_lsn == 0 {
            return Err((40, CorruptKind::BadField("first_lsn")));
        }
        let image_block_size = le_u32(bytes, 48);
        if !image_block_size.is_power_of_two() || !(512..=65536).contains(&image_block_size) {
            return Err((48, CorruptKind::BadField("image_block_size")));
        }
        let segment_blocks = le_u32(bytes, 52);
        if segment_blocks == 0 || (1 + u64::from(segment_blocks)) * u64::from(block_size) > SEGMENT_BYTES_MAX {
            return Err((52, CorruptKind::BadField("segment_blocks")));
        }
        if bytes[56..60].iter().any(|&b| b != 0) {
            return Err((56, CorruptKind::BadField("reserved")));
        }
        Ok(SegmentHeader {
            segment_blocks,
            flags,
            block_size,
            segment_seq,
            salt: le_u64(bytes, 24),
            image_id: le_u64(bytes, 32),
            first_lsn,
            image_block_size,
        })
    }
}

/// File name of the segment with sequence number `seq`.
pub fn segment_file_name(seq: u64) -> String {
    format!("seg-{seq:016x}.wal")
}

/// Parses a segment file name back into its sequence number.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("seg-")?.strip_suffix(".wal")?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> SegmentHeader {
        SegmentHeader {
            flags: FLAG_STEAL,
            block_size: 32768,
            segment_seq: 7,
            salt: 0xdead_beef_1234_5678,
            image_id: 42,
            first_lsn: 1000,
            image_block_size: 4096,
            segment_blocks: 64,
        }
    }

    #[test]
    fn roundtrip() {
        let h = header();
        let bytes = h.encode();
        assert_eq!(bytes.len(), 32768);
        assert_eq!(SegmentHeader::decode(&bytes), Ok(h));
    }

    #[test]
    fn every_error_is_located() {
        let good = header().encode();
        assert_eq!(SegmentHeader::decode(&good[..10]), Err((10, CorruptKind::TruncatedHeader)));
        let mut bad = good.clone();
        bad[0] ^= 1;
        assert_eq!(SegmentHeader::decode(&bad), Err((0, CorruptKind::BadMagic)));
        let mut bad = good.clone();
        bad[20] ^= 1;
        assert!(matches!(SegmentHeader::decode(&bad), Err((60, CorruptKind::Checksum { .. }))));
        let mut h = header();
        h.block_size = 1000;
        assert_eq!(SegmentHeader::decode(&h.encode_unchecked_size()), Err((12, CorruptKind::BadField("block_size"))));
    }

    impl SegmentHeader {
        fn encode_unchecked_size(&self) -> Vec<u8> {
            let mut h = *self;
            let bs = h.block_size;
            h.block_size = 4096;
            let mut out = h.encode();
            out[12..16].copy_from_slice(&bs.to_le_bytes());
            let crc = crate::crc::crc32c(&out[0..60]);
            out[60..64].copy_from_slice(&crc.to_le_bytes());
            out
        }
    }

    #[test]
    fn file_names_roundtrip() {
        assert_eq!(parse_segment_file_name(&segment_file_name(0x1234)), Some(0x1234));
        assert_eq!(parse_segment_file_name("seg-12.wal"), None);
        assert_eq!(parse_segment_file_name("other"), None);
    }
}

#[cfg(test)]
mod field_tests {
    use super::*;

    fn patched(at: usize, bytes: &[u8]) -> Vec<u8> {
        let mut out = SegmentHeader {
            flags: 0,
            block_size: 4096,
            segment_seq: 1,
            salt: 1,
            image_id: 1,
            first_lsn: 1,
            image_block_size: 4096,
            segment_blocks: 16,
        }
        .encode();
        out[at..at + bytes.len()].copy_from_slice(bytes);
        let crc = crate::crc::crc32c(&out[0..60]);
        out[60..64].copy_from_slice(&crc.to_le_bytes());
        out
    }

    #[test]
    fn each_field_error_names_its_offset() {
        let cases: [(usize, &[u8], CorruptKind); 8] = [
            (8, &2u16.to_le_bytes(), CorruptKind::UnsupportedVersion(2)),
            (10, &4u16.to_le_bytes(), CorruptKind::BadField("flags")),
            (12, &1000u32.to_le_bytes(), CorruptKind::BadField("block_size")),
            (16, &0u64.to_le_bytes(), CorruptKind::BadField("segment_seq")),
            (40, &0u64.to_le_bytes(), CorruptKind::BadField("first_lsn")),
            (48, &100u32.to_le_bytes(), CorruptKind::BadField("image_block_size")),
            (52, &0u32.to_le_bytes(), CorruptKind::BadField("segment_blocks")),
            (56, &[1u8], CorruptKind::BadField("reserved")),
        ];
        for (at, bytes, kind) in cases {
            assert_eq!(SegmentHeader::decode(&patched(at, bytes)), Err((at as u64, kind)));
        }
    }
}
