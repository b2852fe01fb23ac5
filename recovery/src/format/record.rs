//! Logical records: a 28-byte header (type, flags, length, LSN, transaction id, crc32c) and a
//! type-specific body.

use super::{le_u32, le_u64};
use crate::error::CorruptKind;

/// Encoded size of a record header.
pub const RECORD_HEADER_LEN: usize = 28;
/// Largest image block a record may carry (redo plus undo of a 64 KiB block fits the limit).
pub const IMAGE_BLOCK_SIZE_MAX: usize = 65536;
/// Largest record body the decoder accepts; bounds every allocation the decoder makes.
pub const RECORD_BODY_MAX: usize = 16 + 2 * IMAGE_BLOCK_SIZE_MAX;
/// Largest whole record (header plus body).
pub const RECORD_LEN_MAX: usize = RECORD_HEADER_LEN + RECORD_BODY_MAX;

/// Record type codes. Types with the high bit set are optional: readers that do not know them
/// skip them. Any other unknown type is an error.
pub mod types {
    /// Physical write of a byte range of one image block.
    pub const WRITE: u8 = 1;
    /// Set an allocation bit.
    pub const ALLOC: u8 = 2;
    /// Clear an allocation bit.
    pub const FREE: u8 = 3;
    /// Put an inode on the orphan list.
    pub const ORPHAN_ADD: u8 = 4;
    /// Take an inode off the orphan list.
    pub const ORPHAN_REMOVE: u8 = 5;
    /// Earlier logged writes of a block must not be replayed.
    pub const REVOKE: u8 = 6;
    /// The transaction committed.
    pub const COMMIT: u8 = 7;
    /// The transaction aborted (its compensation records precede this one).
    pub const ABORT: u8 = 8;
    /// Logical copy of a byte range from one image block to another (reads its source).
    pub const COPY: u8 = 9;
    /// Bit that marks a type as optional (skippable by readers that do not know it).
    pub const OPTIONAL_BIT: u8 = 0x80;
    /// Optional: the journal was durable up to a position when this record was appended
    /// (body: segment sequence u64, offset u64; transaction id [`super::SYNC_TXID`]).
    pub const SYNC: u8 = 0x81;
}

/// Record flag bits.
pub mod flags {
    /// A WRITE carries undo bytes after its redo bytes.
    pub const HAS_UNDO: u8 = 1;
    /// The record is a compensation record (redo-only, logged by an abort).
    pub const COMPENSATION: u8 = 2;
    /// A WRITE covers a whole image block.
    pub const FULL_BLOCK: u8 = 4;
}

/// Which allocation bitmap an ALLOC or FREE changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum AllocTarget {
    /// The block allocation bitmap.
    Block,
    /// The inode-slot allocation bitmap.
    Inode,
}

/// A decoded record body. Byte payloads borrow from the decoder's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record<'a> {
    /// Write `redo` at `offset` of image block `block`; `undo` holds the bytes it replaced.
    Write {
        /// Image block number.
        block: u64,
        /// Byte offset within the block.
        offset: u32,
        /// New bytes.
        redo: &'a [u8],
        /// Previous bytes (steal policy only).
        undo: Option<&'a [u8]>,
        /// The write covers the whole block.
        full: bool,
        /// The write is a compensation record.
        compensation: bool,
    },
    /// Set (`set == true`, ALLOC) or clear (FREE) one allocation bit.
    Bitmap {
        /// Which bitmap.
        target: AllocTarget,
        /// Bit index: block number or inode number.
        index: u64,
        /// ALLOC sets, FREE clears.
        set: bool,
        /// The record is a compensation record.
        compensation: bool,
    },
    /// Add (`add == true`) or remove an inode from the orphan list.
    Orphan {
        /// Inode number.
        ino: u64,
        /// ORPHAN_ADD adds, ORPHAN_REMOVE removes.
        add: bool,
        /// The record is a compensation record.
        compensation: bool,
    },
    /// Copy `len` bytes at `src_offset` of block `src` to `dst_offset` of block `dst`, reading
    /// the source as it is at this record's LSN. `undo` holds the destination bytes it replaced
    /// (steal policy only). A cross-block dependency: replay must apply everything below this
    /// LSN to `src` first, and nothing above it.
    Copy {
        /// Source block.
        src: u64,
        /// Byte offset in the source block.
        src_offset: u32,
        /// Destination block (`!= src`).
        dst: u64,
        /// Byte offset in the destination block.
        dst_offset: u32,
        /// Bytes copied.
        len: u32,
        /// Previous destination bytes (steal policy only).
        undo: Option<&'a [u8]>,
    },
    /// Logged writes of `block` below this record's LSN must not be replayed.
    Revoke {
        /// Image block number.
        block: u64,
    },
    /// The transaction committed; it wrote `records` records before this one.
    Commit {
        /// Number of the transaction's earlier records.
        records: u32,
    },
    /// The transaction aborted; it wrote `records` records before this one.
    Abort {
        /// Number of the transaction's earlier records.
        records: u32,
    },
    /// An optional record type this reader does not know.
    Optional {
        /// Its type code (high bit set).
        rec_type: u8,
    },
}

/// The transaction id of SYNC records (they belong to no transaction).
pub const SYNC_TXID: u64 = u64::MAX;

/// Encodes a SYNC record at `lsn`: the journal was durable up to `offset` of segment `seq`.
pub fn encode_sync(lsn: u64, seq: u64, offset: u64, out: &mut Vec<u8>) {
    let start = out.len();
    Record::Optional { rec_type: types::SYNC }.encode_into(lsn, SYNC_TXID, out);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&offset.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&16u32.to_le_bytes());
    let crc = crate::crc::crc32c_append(crate::crc::crc32c(&out[start..start + 24]), &out[start + RECORD_HEADER_LEN..]);
    out[start + 24..start + 28].copy_from_slice(&crc.to_le_bytes());
}

/// The durable position (segment sequence, offset) a SYNC record states, or `None` for any
/// other record (or a SYNC record whose body is too short).
pub fn sync_through(h: &RecordHeader, body: &[u8]) -> Option<(u64, u64)> {
    if h.rec_type != types::SYNC || body.len() < 16 {
        return None;
    }
    let mut a = [0u8; 8];
    a.copy_from_slice(&body[..8]);
    let mut b = [0u8; 8];
    b.copy_from_slice(&body[8..16]);
    Some((u64::from_le_bytes(a), u64::from_le_bytes(b)))
}

/// The fixed header of every record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// Type code ([`types`]).
    pub rec_type: u8,
    /// Flag bits ([`flags`]).
    pub flags: u8,
    /// Body length in bytes.
    pub body_len: u32,
    /// Log sequence number: 1 for the first record, then consecutive.
    pub lsn: u64,
    /// Transaction id (never 0).
    pub txid: u64,
}

impl Record<'_> {
    /// The type code this record encodes as.
    pub fn rec_type(&self) -> u8 {
        match self {
            Record::Write { .. } => types::WRITE,
            Record::Bitmap { set: true, .. } => types::ALLOC,
            Record::Bitmap { set: false, .. } => types::FREE,
            Record::Orphan { add: true, .. } => types::ORPHAN_ADD,
            Record::Orphan { add: false, .. } => types::ORPHAN_REMOVE,
            Record::Revoke { .. } => types::REVOKE,
            Record::Copy { .. } => types::COPY,
            Record::Commit { .. } => types::COMMIT,
            Record::Abort { .. } => types::ABORT,
            Record::Optional { rec_type } => *rec_type,
        }
    }

    /// True for compensation records.
    pub fn is_compensation(&self) -> bool {
        matches!(
            self,
            Record::Write { compensation: true, .. }
                | Record::Bitmap { compensation: true, .. }
                | Record::Orphan { compensation: true, .. }
        )
    }

    fn flags(&self) -> u8 {
        let comp = if self.is_compensation() { flags::COMPENSATION } else { 0 };
        match self {
            Record::Write { undo, full, .. } => {
                comp | if undo.is_some() { flags::HAS_UNDO } else { 0 } | if *full { flags::FULL_BLOCK } else { 0 }
            }
            Record::Copy { undo, .. } => {
                if undo.is_some() {
                    flags::HAS_UNDO
                } else {
                    0
                }
            }
            _ => comp,
        }
    }

    /// Appends the full encoded record (header and body) to `out`.
    ///
    /// Panics only on caller bugs that the writer rules out (a payload over the format's limit
    /// or redo and undo of different lengths); those are checked with `assert!` because a
    /// journal holding them could not be read back.
    pub fn encode_into(&self, lsn: u64, txid: u64, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[self.rec_type(), self.flags(), 0, 0]);
        out.extend_from_slice(&[0u8; 4]); // body length, patched below
        out.extend_from_slice(&lsn.to_le_bytes());
        out.extend_from_slice(&txid.to_le_bytes());
        out.extend_from_slice(&[0u8; 4]); // crc, patched below
        match self {
            Record::Write { block, offset, redo, undo, .. } => {
                assert!(redo.len() <= IMAGE_BLOCK_SIZE_MAX, "write payload over the format limit");
                if let Some(u) = undo {
                    assert_eq!(u.len(), redo.len(), "undo and redo lengths differ");
                }
                out.extend_from_slice(&block.to_le_bytes());
                out.extend_from_slice(&offset.to_le_bytes());
                out.extend_from_slice(&(redo.len() as u32).to_le_bytes());
                out.extend_from_slice(redo);
                if let Some(u) = undo {
                    out.extend_from_slice(u);
                }
            }
            Record::Bitmap { target, index, .. } => {
                let t = match target {
                    AllocTarget::Block => 0u8,
                    AllocTarget::Inode => 1u8,
                };
                out.extend_from_slice(&[t, 0, 0, 0, 0, 0, 0, 0]);
                out.extend_from_slice(&index.to_le_bytes());
            }
            Record::Orphan { ino, .. } => out.extend_from_slice(&ino.to_le_bytes()),
            Record::Revoke { block } => out.extend_from_slice(&block.to_le_bytes()),
            Record::Copy { src, src_offset, dst, dst_offset, len, undo } => {
                if let Some(u) = undo {
                    assert_eq!(u.len(), *len as usize, "copy undo length differs from its length");
                }
                out.extend_from_slice(&src.to_le_bytes());
                out.extend_from_slice(&dst.to_le_bytes());
                out.extend_from_slice(&src_offset.to_le_bytes());
                out.extend_from_slice(&dst_offset.to_le_bytes());
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(&[0u8; 4]);
                if let Some(u) = undo {
                    out.extend_from_slice(u);
                }
            }
            Record::Commit { records } | Record::Abort { records } => {
                out.extend_from_slice(&records.to_le_bytes());
                out.extend_from_slice(&[0u8; 4]);
            }
            Record::Optional { .. } => {}
        }
        let body_len = (out.len() - start - RECORD_HEADER_LEN) as u32;
        out[start + 4..start + 8].copy_from_slice(&body_len.to_le_bytes());
        let crc =
            crate::crc::crc32c_append(crate::crc::crc32c(&out[start..start + 24]), &out[start + RECORD_HEADER_LEN..]);
        out[start + 24..start + 28].copy_from_slice(&crc.to_le_bytes());
    }
}

/// Decodes the header of a whole record, verifying its checksum. Returns the header and the
/// body slice. Errors carry the offset within `bytes` where the problem is.
pub fn decode_header(bytes: &[u8]) -> Result<(RecordHeader, &[u8]), (usize, CorruptKind)> {
    decode_header_with(bytes, true)
}

/// Like [`decode_header`], verifying the record checksum only when `verify_crc` is set.
/// Callers skip it only for bytes whose every byte another checksum already verified (a
/// record carried in one FULL fragment, or a second pass over accepted bytes).
pub fn decode_header_with(bytes: &[u8], verify_crc: bool) -> Result<(RecordHeader, &[u8]), (usize, CorruptKind)> {
    if bytes.len() < RECORD_HEADER_LEN {
        return Err((0, CorruptKind::RecordTruncated));
    }
    let body_len = le_u32(bytes, 4);
    if body_len as usize > RECORD_BODY_MAX {
        return Err((4, CorruptKind::RecordTooLarge(u64::from(body_len))));
    }
    if bytes.len() != RECORD_HEADER_LEN + body_len as usize {
        return Err((4, CorruptKind::RecordTruncated));
    }
    if verify_crc {
        let stored = le_u32(bytes, 24);
        let computed = crate::crc::crc32c_append(crate::crc::crc32c(&bytes[..24]), &bytes[RECORD_HEADER_LEN..]);
        if stored != computed {
            return Err((24, CorruptKind::Checksum { stored, computed }));
        }
    }
    if bytes[2] != 0 || bytes[3] != 0 {
        return Err((2, CorruptKind::BadField("reserved")));
    }
    let header =
        RecordHeader { rec_type: bytes[0], flags: bytes[1], body_len, lsn: le_u64(bytes, 8), txid: le_u64(bytes, 16) };
    if header.lsn == 0 {
        return Err((8, CorruptKind::BadField("lsn")));
    }
    if header.txid == 0 {
        return Err((16, CorruptKind::BadField("txid")));
    }
    Ok((header, &bytes[RECORD_HEADER_LEN..]))
}

/// Decodes a record body according to its header. Errors carry the offset within the whole
/// record (header included).
pub fn decode_body<'a>(h: &RecordHeader, body: &'a [u8]) -> Result<Record<'a>, (usize, CorruptKind)> {
    let at = |off: usize| RECORD_HEADER_LEN + off;
    let comp = h.flags & flags::COMPENSATION != 0;
    let need = |n: usize| -> Result<(), (usize, CorruptKind)> {
        if body.len() == n {
            Ok(())
        } else {
            Err((at(0), CorruptKind::BadField("body length")))
        }
    };
    let only_flags = |allowed: u8| -> Result<(), (usize, CorruptKind)> {
        if h.flags & !allowed == 0 {
            Ok(())
        } else {
            Err((1, CorruptKind::BadField("flags")))
        }
    };
    match h.rec_type {
        types::WRITE => {
            only_flags(flags::HAS_UNDO | flags::COMPENSATION | flags::FULL_BLOCK)?;
            if body.len() < 16 {
                return Err((at(0), CorruptKind::BadField("body length")));
            }
            let block = le_u64(body, 0);
            let offset = le_u32(body, 8);
            let len = le_u32(body, 12) as usize;
            if len == 0 || len > IMAGE_BLOCK_SIZE_MAX {
                return Err((at(12), CorruptKind::BadField("write length")));
            }
            let has_undo = h.flags & flags::HAS_UNDO != 0;
            need(16 + len * if has_undo { 2 } else { 1 })?;
            let redo = &body[16..16 + len];
            let undo = has_undo.then(|| &body[16 + len..16 + 2 * len]);
            let full = h.flags & flags::FULL_BLOCK != 0;
            if full && offset != 0 {
                return Err((at(8), CorruptKind::BadField("offset of a full-block write")));
            }
            Ok(Record::Write { block, offset, redo, undo, full, compensation: comp })
        }
        types::ALLOC | types::FREE => {
            only_flags(flags::COMPENSATION)?;
            need(16)?;
            let target = match body[0] {
                0 => AllocTarget::Block,
                1 => AllocTarget::Inode,
                _ => return Err((at(0), CorruptKind::BadField("bitmap target"))),
            };
            if body[1..8].iter().any(|&b| b != 0) {
                return Err((at(1), CorruptKind::BadField("reserved")));
            }
            Ok(Record::Bitmap { target, index: le_u64(body, 8), set: h.rec_type == types::ALLOC, compensation: comp })
        }
        types::ORPHAN_ADD | types::ORPHAN_REMOVE => {
            only_flags(flags::COMPENSATION)?;
            need(8)?;
            Ok(Record::Orphan { ino: le_u64(body, 0), add: h.rec_type == types::ORPHAN_ADD, compensation: comp })
        }
        types::COPY => {
            only_flags(flags::HAS_UNDO)?;
            if body.len() < 32 {
                return Err((at(0), CorruptKind::BadField("body length")));
            }
            let len = le_u32(body, 24);
            if len == 0 || len as usize > IMAGE_BLOCK_SIZE_MAX {
                return Err((at(24), CorruptKind::BadField("copy length")));
            }
            if body[28..32].iter().any(|&b| b != 0) {
                return Err((at(28), CorruptKind::BadField("reserved")));
            }
            let has_undo = h.flags & flags::HAS_UNDO != 0;
            need(32 + if has_undo { len as usize } else { 0 })?;
            Ok(Record::Copy {
                src: le_u64(body, 0),
                dst: le_u64(body, 8),
                src_offset: le_u32(body, 16),
                dst_offset: le_u32(body, 20),
                len,
                undo: has_undo.then(|| &body[32..32 + len as usize]),
            })
        }
        types::REVOKE => {
            only_flags(0)?;
            need(8)?;
            Ok(Record::Revoke { block: le_u64(body, 0) })
        }
        types::COMMIT | types::ABORT => {
            only_flags(0)?;
            need(8)?;
            let records = le_u32(body, 0);
            if body[4..8].iter().any(|&b| b != 0) {
                return Err((at(4), CorruptKind::BadField("reserved")));
            }
            if h.rec_type == types::COMMIT {
                Ok(Record::Commit { records })
            } else {
                Ok(Record::Abort { records })
            }
        }
        t if t & types::OPTIONAL_BIT != 0 => Ok(Record::Optional { rec_type: t }),
        t => Err((0, CorruptKind::UnknownRecordType(t))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn roundtrip(rec: &Record<'_>) {
        let mut buf = Vec::new();
        rec.encode_into(77, 9, &mut buf);
        let (h, body) = decode_header(&buf).expect("header decodes");
        assert_eq!(h.lsn, 77);
        assert_eq!(h.txid, 9);
        assert_eq!(&decode_body(&h, body).expect("body decodes"), rec);
    }

    #[test]
    fn every_type_roundtrips() {
        let redo = [1u8, 2, 3];
        let undo = [4u8, 5, 6];
        for rec in [
            Record::Write { block: 5, offset: 10, redo: &redo, undo: Some(&undo), full: false, compensation: false },
            Record::Write { block: 5, offset: 0, redo: &redo, undo: None, full: true, compensation: true },
            Record::Bitmap { target: AllocTarget::Inode, index: 3, set: true, compensation: false },
            Record::Bitmap { target: AllocTarget::Block, index: 3, set: false, compensation: true },
            Record::Orphan { ino: 8, add: true, compensation: false },
            Record::Orphan { ino: 8, add: false, compensation: true },
            Record::Revoke { block: 99 },
            Record::Copy { src: 10, src_offset: 3, dst: 11, dst_offset: 7, len: 3, undo: Some(&undo) },
            Record::Copy { src: 10, src_offset: 3, dst: 11, dst_offset: 7, len: 30, undo: None },
            Record::Commit { records: 12 },
            Record::Abort { records: 1 },
            Record::Optional { rec_type: 0x91 },
        ] {
            roundtrip(&rec);
        }
    }

    #[test]
    fn errors_name_their_field() {
        let mut buf = Vec::new();
        Record::Revoke { block: 1 }.encode_into(1, 1, &mut buf);
        assert_eq!(decode_header(&buf[..10]), Err((0, CorruptKind::RecordTruncated)));
        let mut bad = buf.clone();
        bad[RECORD_HEADER_LEN] ^= 0xff;
        assert!(matches!(decode_header(&bad), Err((24, CorruptKind::Checksum { .. }))));
        let mut bad = buf.clone();
        bad[4..8].copy_from_slice(&(RECORD_BODY_MAX as u32 + 1).to_le_bytes());
        assert!(matches!(decode_header(&bad), Err((4, CorruptKind::RecordTooLarge(_)))));
        let h = RecordHeader { rec_type: 0x33, flags: 0, body_len: 0, lsn: 1, txid: 1 };
        assert_eq!(decode_body(&h, &[]), Err((0, CorruptKind::UnknownRecordType(0x33))));
        let h = RecordHeader { rec_type: types::REVOKE, flags: 0x40, body_len: 8, lsn: 1, txid: 1 };
        assert_eq!(decode_body(&h, &[0; 8]), Err((1, CorruptKind::BadField("flags"))));
        let h = RecordHeader { rec_type: types::REVOKE, flags: 0, body_len: 7, lsn: 1, txid: 1 };
        assert_eq!(decode_body(&h, &[0; 7]), Err((RECORD_HEADER_LEN, CorruptKind::BadField("body length"))));
    }

    proptest! {
        #[test]
        fn write_roundtrip(block in any::<u64>(), offset in 0u32..4096, redo in proptest::collection::vec(any::<u8>(), 1..512), with_undo in any::<bool>(), comp in any::<bool>()) {
            let undo: Vec<u8> = redo.iter().map(|b| b ^ 0x5a).collect();
            let rec = Record::Write { block, offset, redo: &redo, undo: with_undo.then_some(&undo[..]), full: false, compensation: comp };
            roundtrip(&rec);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok((h, body)) = decode_header(&bytes) {
                let _ = decode_body(&h, body);
            }
            // A header with a valid checksum over arbitrary content must not panic either.
            if bytes.len() >= RECORD_HEADER_LEN {
                let mut b = bytes.clone();
                let len = (b.len() - RECORD_HEADER_LEN) as u32;
                b[4..8].copy_from_slice(&len.to_le_bytes());
                b[2] = 0; b[3] = 0;
                let crc = crate::crc::crc32c_append(crate::crc::crc32c(&b[..24]), &b[RECORD_HEADER_LEN..]);
                b[24..28].copy_from_slice(&crc.to_le_bytes());
                if let Ok((h, body)) = decode_header(&b) {
                    let _ = decode_body(&h, body);
                }
            }
        }
    }
}

#[cfg(test)]
mod field_tests {
    use super::*;

    fn encoded(rec: &Record<'_>, lsn: u64, txid: u64) -> Vec<u8> {
        let mut buf = Vec::new();
        rec.encode_into(lsn, txid, &mut buf);
        buf
    }

    fn refix(buf: &mut [u8]) {
        let crc = crate::crc::crc32c_append(crate::crc::crc32c(&buf[..24]), &buf[RECORD_HEADER_LEN..]);
        buf[24..28].copy_from_slice(&crc.to_le_bytes());
    }

    #[test]
    fn header_field_errors() {
        let mut b = encoded(&Record::Revoke { block: 1 }, 0, 1);
        refix(&mut b);
        assert_eq!(decode_header(&b), Err((8, CorruptKind::BadField("lsn"))));
        let b = encoded(&Record::Revoke { block: 1 }, 1, 0);
        assert_eq!(decode_header(&b), Err((16, CorruptKind::BadField("txid"))));
        let mut b = encoded(&Record::Revoke { block: 1 }, 1, 1);
        b[2] = 1;
        refix(&mut b);
        assert_eq!(decode_header(&b), Err((2, CorruptKind::BadField("reserved"))));
        let b = encoded(&Record::Revoke { block: 1 }, 1, 1);
        assert_eq!(decode_header(&b[..b.len() - 1]), Err((4, CorruptKind::RecordTruncated)));
    }

    #[test]
    fn body_field_errors() {
        let h =
            |t: u8, flags: u8, len: usize| RecordHeader { rec_type: t, flags, body_len: len as u32, lsn: 1, txid: 1 };
        let mut w = vec![0u8; 16];
        assert_eq!(
            decode_body(&h(types::WRITE, 0, 16), &w),
            Err((RECORD_HEADER_LEN + 12, CorruptKind::BadField("write length")))
        );
        w[8..12].copy_from_slice(&5u32.to_le_bytes());
        w[12..16].copy_from_slice(&1u32.to_le_bytes());
        w.push(0);
        assert_eq!(
            decode_body(&h(types::WRITE, flags::FULL_BLOCK, 17), &w),
            Err((RECORD_HEADER_LEN + 8, CorruptKind::BadField("offset of a full-block write")))
        );
        assert_eq!(
            decode_body(&h(types::WRITE, flags::HAS_UNDO, 17), &w),
            Err((RECORD_HEADER_LEN, CorruptKind::BadField("body length")))
        );
        let mut bm = vec![0u8; 16];
        bm[0] = 7;
        assert_eq!(
            decode_body(&h(types::ALLOC, 0, 16), &bm),
            Err((RECORD_HEADER_LEN, CorruptKind::BadField("bitmap target")))
        );
        bm[0] = 0;
        bm[3] = 1;
        assert_eq!(
            decode_body(&h(types::FREE, 0, 16), &bm),
            Err((RECORD_HEADER_LEN + 1, CorruptKind::BadField("reserved")))
        );
        assert_eq!(
            decode_body(&h(types::COMMIT, flags::COMPENSATION, 8), &[0; 8]),
            Err((1, CorruptKind::BadField("flags")))
        );
    }
}
