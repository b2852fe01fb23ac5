//! Block framing: records are cut into fragments that never cross a journal block boundary.
//!
//! A fragment is an 8-byte header (crc32c, payload length, kind, reserved) and its payload. The
//! checksum covers the segment's salt, the length, the kind and the payload. When 8 or fewer
//! bytes remain in a block, they are zero padding and the next fragment starts at the next
//! block. Every block that was written starts with a fragment header, which is what lets a
//! scanner resynchronise at any block boundary.

use super::{le_u16, le_u32};
use crate::error::CorruptKind;
use crate::format::record::RECORD_LEN_MAX;

/// Encoded size of a fragment header.
pub const FRAGMENT_HEADER_LEN: usize = 8;

/// Fragment kinds, as in the RocksDB WAL. Zero means "nothing written here".
pub mod kinds {
    /// A whole record.
    pub const FULL: u8 = 1;
    /// The first piece of a record.
    pub const FIRST: u8 = 2;
    /// A middle piece of a record.
    pub const MIDDLE: u8 = 3;
    /// The last piece of a record.
    pub const LAST: u8 = 4;
}

/// Checksum of a fragment: crc32c over salt (8 bytes LE), length (2 LE), kind, a zero byte and
/// the payload.
pub fn fragment_crc(salt: u64, len: u16, kind: u8, payload: &[u8]) -> u32 {
    let mut pre = [0u8; 12];
    pre[0..8].copy_from_slice(&salt.to_le_bytes());
    pre[8..10].copy_from_slice(&len.to_le_bytes());
    pre[10] = kind;
    crate::crc::crc32c_append(crate::crc::crc32c(&pre), payload)
}

/// Appends one encoded fragment to `out`. `payload` must be at most `u16::MAX` bytes; the
/// writer guarantees it (journal blocks are at most 1 MiB but fragments are cut to 32 KiB
/// pieces when the block is larger, see [`fragment_payload_max`]).
pub fn encode_fragment(salt: u64, kind: u8, payload: &[u8], out: &mut Vec<u8>) {
    let len = u16::try_from(payload.len()).unwrap_or(u16::MAX);
    debug_assert_eq!(usize::from(len), payload.len());
    let crc = fragment_crc(salt, len, kind, &payload[..usize::from(len)]);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.push(kind);
    out.push(0);
    out.extend_from_slice(&payload[..usize::from(len)]);
}

/// Largest payload a single fragment carries (the length field is 16 bits).
pub fn fragment_payload_max() -> usize {
    usize::from(u16::MAX)
}

/// One step of decoding a segment.
#[derive(Debug, PartialEq, Eq)]
pub enum Step<'s> {
    /// A whole record (header and body, not yet checksum-verified at the record level).
    Record {
        /// Offset of the record's first fragment in the segment file.
        start: usize,
        /// Offset just past its last fragment.
        end: usize,
        /// The record bytes.
        bytes: &'s [u8],
        /// The record came in one FULL fragment, whose checksum already covered every byte.
        single: bool,
    },
    /// Nothing more was written: end of file or a zero fragment header, at `offset`.
    End {
        /// Where the written part of the segment ends.
        offset: usize,
    },
    /// Damaged or incomplete bytes at `offset`.
    Damage {
        /// Offset of the damage in the segment file.
        offset: usize,
        /// What is wrong.
        kind: CorruptKind,
    },
}

/// Decodes the fragments of one segment held in memory (read or mapped) into whole records.
///
/// Never panics and never allocates more than [`RECORD_LEN_MAX`] bytes for reassembly,
/// whatever the input.
pub struct SegmentDecoder<'a> {
    data: &'a [u8],
    block_size: usize,
    salt: u64,
    pos: usize,
    asm: Vec<u8>,
    asm_start: Option<usize>,
    skip_continuations: bool,
    verify: bool,
}

impl<'a> SegmentDecoder<'a> {
    /// A decoder over a whole segment file's bytes; decoding starts at the first data block.
    pub fn new(data: &'a [u8], block_size: u32, salt: u64) -> Self {
        SegmentDecoder {
            data,
            block_size: block_size as usize,
            salt,
            pos: block_size as usize,
            asm: Vec::new(),
            asm_start: None,
            skip_continuations: false,
            verify: true,
        }
    }

    /// A decoder that does not verify fragment checksums, for re-reading bytes an earlier
    /// verifying pass already accepted (under the directory lock, so they cannot change).
    pub fn new_trusted(data: &'a [u8], block_size: u32, salt: u64) -> Self {
        SegmentDecoder { verify: false, ..SegmentDecoder::new(data, block_size, salt) }
    }

    /// Current position (the offset of the next fragment to decode).
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Moves to `offset`, dropping any partly assembled record. With `skip_continuations`,
    /// MIDDLE and LAST fragments found before the next FIRST or FULL are skipped silently
    /// (they belong to a record whose start was damaged and already reported).
    pub fn seek(&mut self, offset: usize, skip_continuations: bool) {
        self.pos = offset;
        self.asm.clear();
        self.asm_start = None;
        self.skip_continuations = skip_continuations;
    }

    fn block_end(&self, pos: usize) -> usize {
        (pos / self.block_size + 1) * self.block_size
    }

    /// Checks the fragment at `pos` without consuming it: its kind and payload length when
    /// its header is structurally valid and its checksum matches.
    pub fn valid_fragment_at(&self, pos: usize) -> Option<(u8, usize)> {
        let end = self.block_end(pos);
        if end - pos <= FRAGMENT_HEADER_LEN || pos + FRAGMENT_HEADER_LEN > self.data.len() {
            return None;
        }
        let h = &self.data[pos..pos + FRAGMENT_HEADER_LEN];
        let kind = h[6];
        let len = usize::from(le_u16(h, 4));
        if !(kinds::FULL..=kinds::LAST).contains(&kind) || h[7] != 0 || len == 0 {
            return None;
        }
        let payload_end = pos + FRAGMENT_HEADER_LEN + len;
        if payload_end > end || payload_end > self.data.len() {
            return None;
        }
        let payload = &self.data[pos + FRAGMENT_HEADER_LEN..payload_end];
        (le_u32(h, 0) == fragment_crc(self.salt, len as u16, kind, payload)).then_some((kind, len))
    }

    /// The first offset after damage at `damage` where a record starts: a valid FULL or FIRST
    /// fragment, found by walking valid fragments from the one right after the damaged one
    /// (when its length field is still plausible) and then from the start of every later
    /// block. Continuation fragments do not count: they may belong to the damaged record
    /// itself. `None` means no record starts after the damage in this segment.
    pub fn next_valid_after(&self, damage: usize) -> Option<usize> {
        if damage + FRAGMENT_HEADER_LEN <= self.data.len() && damage >= self.block_size {
            let len = usize::from(le_u16(&self.data[damage..], 4));
            let next = damage + FRAGMENT_HEADER_LEN + len;
            if len > 0 && next < self.block_end(damage) {
                if let Some(p) = self.record_start_from(next) {
                    return Some(p);
                }
            }
        }
        let mut b = self.block_end(damage.max(self.block_size));
        while b < self.data.len() {
            if let Some(p) = self.record_start_from(b) {
                return Some(p);
            }
            b += self.block_size;
        }
        None
    }

    /// Walks valid fragments from `pos` to the end of its block and returns the position of
    /// the first that starts a record (FULL or FIRST).
    pub fn record_start_from(&self, mut pos: usize) -> Option<usize> {
        let end = self.block_end(pos);
        while pos < end {
            let (kind, len) = self.valid_fragment_at(pos)?;
            if kind == kinds::FULL || kind == kinds::FIRST {
                return Some(pos);
            }
            pos += FRAGMENT_HEADER_LEN + len;
        }
        None
    }

    fn torn_record(&self) -> Step<'static> {
        Step::Damage { offset: self.asm_start.unwrap_or(self.pos), kind: CorruptKind::RecordTruncated }
    }

    /// Decodes the next step. After `Damage` the decoder does not move: the caller decides
    /// (stop, or [`seek`](Self::seek) past it).
    pub fn next_step(&mut self) -> Step<'_> {
        loop {
            let pos = self.pos;
            let block_end = self.block_end(pos);
            if block_end - pos <= FRAGMENT_HEADER_LEN {
                self.pos = block_end;
                continue;
            }
            if pos >= self.data.len() {
                if self.asm_start.is_some() {
                    return self.torn_record();
                }
                return Step::End { offset: self.data.len().min(pos) };
            }
            if pos + FRAGMENT_HEADER_LEN > self.data.len() {
                if self.asm_start.is_none() && self.data[pos..].iter().all(|&b| b == 0) {
                    return Step::End { offset: pos };
                }
                return Step::Damage { offset: self.asm_start.unwrap_or(pos), kind: CorruptKind::RecordTruncated };
            }
            let h = &self.data[pos..pos + FRAGMENT_HEADER_LEN];
            if h.iter().all(|&b| b == 0) {
                if self.asm_start.is_some() {
                    return self.torn_record();
                }
                return Step::End { offset: pos };
            }
            let kind = h[6];
            let len = usize::from(le_u16(h, 4));
            if !(kinds::FULL..=kinds::LAST).contains(&kind) || h[7] != 0 {
                return Step::Damage { offset: pos, kind: CorruptKind::BadField("fragment kind") };
            }
            if len == 0 {
                return Step::Damage { offset: pos, kind: CorruptKind::BadField("fragment length") };
            }
            let payload_end = pos + FRAGMENT_HEADER_LEN + len;
            if payload_end > block_end {
                return Step::Damage { offset: pos, kind: CorruptKind::FragmentOverrun };
            }
            if payload_end > self.data.len() {
                return Step::Damage { offset: self.asm_start.unwrap_or(pos), kind: CorruptKind::RecordTruncated };
            }
            let payload = &self.data[pos + FRAGMENT_HEADER_LEN..payload_end];
            if self.verify {
                let stored = le_u32(h, 0);
                let computed = fragment_crc(self.salt, len as u16, kind, payload);
                if stored != computed {
                    return Step::Damage { offset: pos, kind: CorruptKind::Checksum { stored, computed } };
                }
            }
            match kind {
                kinds::FULL | kinds::FIRST => {
                    if let Some(start) = self.asm_start {
                        // The record in progress never got its LAST fragment.
                        return Step::Damage { offset: start, kind: CorruptKind::FragmentSequence };
                    }
                    self.skip_continuations = false;
                    self.pos = payload_end;
                    if kind == kinds::FULL {
                        return Step::Record { start: pos, end: payload_end, bytes: payload, single: true };
                    }
                    self.asm.clear();
                    self.asm.extend_from_slice(payload);
                    self.asm_start = Some(pos);
                }
                _ => {
                    let Some(start) = self.asm_start else {
                        if self.skip_continuations {
                            self.pos = payload_end;
                            continue;
                        }
                        return Step::Damage { offset: pos, kind: CorruptKind::FragmentSequence };
                    };
                    if self.asm.len() + len > RECORD_LEN_MAX {
                        return Step::Damage {
                            offset: start,
                            kind: CorruptKind::RecordTooLarge((self.asm.len() + len) as u64),
                        };
                    }
                    self.asm.extend_from_slice(payload);
                    self.pos = payload_end;
                    if kind == kinds::LAST {
                        self.asm_start = None;
                        return Step::Record { start, end: payload_end, bytes: &self.asm, single: false };
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const BS: u32 = 4096;

    fn segment_with(fragments: &[(u8, Vec<u8>)], salt: u64) -> Vec<u8> {
        let mut data = vec![0u8; BS as usize];
        for (kind, payload) in fragments {
            encode_fragment(salt, *kind, payload, &mut data);
        }
        data
    }

    #[test]
    fn full_and_fragmented_records() {
        let data = segment_with(
            &[
                (kinds::FULL, vec![1; 30]),
                (kinds::FIRST, vec![2; 10]),
                (kinds::MIDDLE, vec![3; 5]),
                (kinds::LAST, vec![4; 7]),
            ],
            9,
        );
        let mut d = SegmentDecoder::new(&data, BS, 9);
        assert_eq!(d.next_step(), Step::Record { start: 4096, end: 4096 + 38, bytes: &[1; 30][..], single: true });
        match d.next_step() {
            Step::Record { start, bytes, .. } => {
                assert_eq!(start, 4096 + 38);
                assert_eq!(bytes.len(), 22);
                assert_eq!(&bytes[..10], &[2; 10]);
                assert_eq!(&bytes[15..], &[4; 7]);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(d.next_step(), Step::End { offset: data.len() });
    }

    #[test]
    fn wrong_salt_never_validates() {
        let data = segment_with(&[(kinds::FULL, vec![1; 30])], 1);
        let mut d = SegmentDecoder::new(&data, BS, 2);
        assert!(matches!(d.next_step(), Step::Damage { offset: 4096, kind: CorruptKind::Checksum { .. } }));
    }

    #[test]
    fn torn_and_sequence_errors_are_located() {
        let data = segment_with(&[(kinds::FIRST, vec![2; 10])], 3);
        let mut d = SegmentDecoder::new(&data, BS, 3);
        assert_eq!(d.next_step(), Step::Damage { offset: 4096, kind: CorruptKind::RecordTruncated });

        let data = segment_with(&[(kinds::LAST, vec![2; 10])], 3);
        let mut d = SegmentDecoder::new(&data, BS, 3);
        assert_eq!(d.next_step(), Step::Damage { offset: 4096, kind: CorruptKind::FragmentSequence });
        d.seek(4096, true);
        assert_eq!(d.next_step(), Step::End { offset: data.len() });

        let mut data = segment_with(&[(kinds::FULL, vec![2; 100])], 3);
        data.truncate(4096 + 50);
        let mut d = SegmentDecoder::new(&data, BS, 3);
        assert_eq!(d.next_step(), Step::Damage { offset: 4096, kind: CorruptKind::RecordTruncated });

        let mut data = segment_with(&[(kinds::FULL, vec![2; 100])], 3);
        data[4096 + 4..4096 + 6].copy_from_slice(&5000u16.to_le_bytes());
        let mut d = SegmentDecoder::new(&data, BS, 3);
        assert_eq!(d.next_step(), Step::Damage { offset: 4096, kind: CorruptKind::FragmentOverrun });

        let mut data = segment_with(&[(kinds::FULL, vec![2; 100])], 3);
        data[4096 + 6] = 9;
        let mut d = SegmentDecoder::new(&data, BS, 3);
        assert_eq!(d.next_step(), Step::Damage { offset: 4096, kind: CorruptKind::BadField("fragment kind") });
    }

    #[test]
    fn next_valid_after_finds_the_following_fragment() {
        let mut data = segment_with(&[(kinds::FULL, vec![1; 30]), (kinds::FULL, vec![2; 30])], 5);
        data[4096 + 10] ^= 1;
        let d = SegmentDecoder::new(&data, BS, 5);
        assert_eq!(d.next_valid_after(4096), Some(4096 + 38));
        let data = segment_with(&[(kinds::FULL, vec![1; 30])], 5);
        let d = SegmentDecoder::new(&data, BS, 5);
        assert_eq!(d.next_valid_after(4096), None);
    }

    proptest! {
        #[test]
        fn arbitrary_segment_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..20000), salt in any::<u64>()) {
            let mut d = SegmentDecoder::new(&bytes, BS, salt);
            for _ in 0..10_000 {
                match d.next_step() {
                    Step::Record { .. } => {}
                    Step::End { .. } => break,
                    Step::Damage { offset, .. } => {
                        prop_assert!(offset <= bytes.len().max(BS as usize));
                        match d.next_valid_after(offset) {
                            Some(next) => { prop_assert!(next > offset); d.seek(next, true) }
                            None => break,
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod more_tests {
    use super::*;

    #[test]
    fn zero_length_fragment_and_oversized_reassembly_are_damage() {
        let mut data = vec![0u8; 4096];
        data.extend_from_slice(&[1, 2, 3, 4, 0, 0, kinds::FULL, 0]);
        let mut d = SegmentDecoder::new(&data, 4096, 0);
        assert_eq!(d.next_step(), Step::Damage { offset: 4096, kind: CorruptKind::BadField("fragment length") });

        // A FIRST followed by MIDDLE fragments whose total exceeds RECORD_LEN_MAX.
        let bs = 65536u32;
        let mut data = vec![0u8; bs as usize];
        let piece = vec![9u8; bs as usize - 8 - 8];
        let mut kind = kinds::FIRST;
        while data.len() < bs as usize + RECORD_LEN_MAX + 2 * bs as usize {
            let start = data.len();
            encode_fragment(5, kind, &piece, &mut data);
            data.resize(start + bs as usize, 0);
            kind = kinds::MIDDLE;
        }
        let mut d = SegmentDecoder::new(&data, bs, 5);
        assert!(
            matches!(d.next_step(), Step::Damage { offset, kind: CorruptKind::RecordTooLarge(_) } if offset == bs as usize)
        );
    }
}
