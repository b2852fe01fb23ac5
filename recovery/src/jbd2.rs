//! ext4's journal (jbd2): found inside an ext4 image, read as e2fsck and the kernel's
//! fs/jbd2/recovery.c read it, replayed in parallel, and finished as e2fsck finishes.
//!
//! The log is read in the three passes of `do_one_pass` (scan: where the log ends; revoke:
//! which blocks transactions revoked; replay: which log block is each home block's newest
//! copy), with the same end-of-log rules: a block without the journal magic, a sequence other
//! than the one expected, a commit block whose checksum fails (the transaction is not
//! replayed), stale blocks of an earlier pass over the circular log. A physical journal has no
//! cross-block dependencies: once the passes have named each home block's newest copy, the
//! copies are independent, so they are written by as many workers as asked, in any order.
//!
//! Layout references: the ext4 disk layout (superblock, group descriptors, inodes, extent
//! tree) and jbd2's `journal_superblock_t`, `journal_header_t`, block tags, revoke and commit
//! blocks, all big-endian in the journal, little-endian in the file system.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

const EXT4_MAGIC: u16 = 0xEF53;
const SB_OFFSET: u64 = 1024;
const SB_LEN: usize = 1024;
const COMPAT_HAS_JOURNAL: u32 = 0x4;
const INCOMPAT_RECOVER: u32 = 0x4;
const INCOMPAT_JOURNAL_DEV: u32 = 0x8;
const INCOMPAT_64BIT: u32 = 0x80;
const RO_COMPAT_METADATA_CSUM: u32 = 0x400;
const STATE_VALID: u16 = 0x1;
const STATE_ERROR: u16 = 0x2;
const INODE_FLAG_EXTENTS: u32 = 0x80000;
const EXTENT_MAGIC: u16 = 0xF30A;

const JBD2_MAGIC: u32 = 0xC03B_3998;
const BT_DESCRIPTOR: u32 = 1;
const BT_COMMIT: u32 = 2;
const BT_SUPERBLOCK_V1: u32 = 3;
const BT_SUPERBLOCK_V2: u32 = 4;
const BT_REVOKE: u32 = 5;

const J_COMPAT_CHECKSUM: u32 = 0x1;
const J_INCOMPAT_REVOKE: u32 = 0x1;
const J_INCOMPAT_64BIT: u32 = 0x2;
const J_INCOMPAT_ASYNC_COMMIT: u32 = 0x4;
const J_INCOMPAT_CSUM_V2: u32 = 0x8;
const J_INCOMPAT_CSUM_V3: u32 = 0x10;
const J_INCOMPAT_FAST_COMMIT: u32 = 0x20;
const J_INCOMPAT_KNOWN: u32 = J_INCOMPAT_REVOKE
    | J_INCOMPAT_64BIT
    | J_INCOMPAT_ASYNC_COMMIT
    | J_INCOMPAT_CSUM_V2
    | J_INCOMPAT_CSUM_V3
    | J_INCOMPAT_FAST_COMMIT;

const TAG_ESCAPE: u32 = 0x1;
const TAG_SAME_UUID: u32 = 0x2;
const TAG_LAST: u32 = 0x8;

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn be64(b: &[u8], at: usize) -> u64 {
    (u64::from(be32(b, at)) << 32) | u64::from(be32(b, at + 4))
}

/// The kernel's `crc32c(seed, data)`: CRC-32C without the final inversion, continued from
/// `seed` (jbd2 and ext4 checksums are defined this way).
fn crc_raw(seed: u32, data: &[u8]) -> u32 {
    !crate::crc::crc32c_append(!seed, data)
}

/// The kernel's `crc32_be(seed, data)` (polynomial 0x04C11DB7, most significant bit first, no
/// inversions): version 1 journal checksums (compat `CHECKSUM`) sum a transaction's
/// descriptor and data blocks with it.
fn crc32_be(mut crc: u32, data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, e) in t.iter_mut().enumerate() {
            let mut c = (i as u32) << 24;
            for _ in 0..8 {
                c = if c & 0x8000_0000 != 0 { (c << 1) ^ 0x04C1_1DB7 } else { c << 1 };
            }
            *e = c;
        }
        t
    });
    for &b in data {
        crc = (crc << 8) ^ table[((crc >> 24) as u8 ^ b) as usize];
    }
    crc
}

/// Reads fixed-size pieces of the image at file offsets, with errors naming the offset.
struct Image {
    path: PathBuf,
    len: u64,
    /// The whole file, read-only (`None` when it is empty): everything is read through it,
    /// log blocks without a copy or a system call each (the image is not truncated while
    /// recovery holds it open, as for journal segments).
    map: Option<memmap2::Mmap>,
}

impl Image {
    fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        self.slice(offset, len).map(<[u8]>::to_vec)
    }

    fn slice(&self, offset: u64, len: usize) -> Result<&[u8]> {
        match &self.map {
            Some(m) if offset.checked_add(len as u64).is_some_and(|end| end <= self.len) => {
                Ok(&m[offset as usize..offset as usize + len])
            }
            _ => Err(bad(
                &self.path,
                Some(offset),
                format!("{len} bytes wanted past the image's end ({} bytes)", self.len),
            )),
        }
    }

    /// Asks the kernel to start reading this byte range now (best effort).
    fn prefetch(&self, offset: u64, len: u64) {
        if let Some(m) = &self.map {
            if offset.saturating_add(len) <= self.len {
                let _ = m.advise_range(memmap2::Advice::WillNeed, offset as usize, len as usize);
            }
        }
    }
}

fn bad(path: &Path, offset: Option<u64>, reason: impl Into<String>) -> Error {
    Error::Jbd2 { path: path.to_path_buf(), offset, reason: reason.into() }
}

/// What recovery needs of the ext4 superblock.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Ext4Super {
    /// File system block size in bytes.
    pub block_size: u64,
    /// Blocks in the file system.
    pub blocks_count: u64,
    /// The journal's inode.
    pub journal_inum: u32,
    /// Whether the superblock says the journal needs recovery.
    pub needs_recovery: bool,
    /// Whether metadata checksums are on (the superblock carries a checksum).
    pub metadata_csum: bool,
    first_data_block: u64,
    inodes_per_group: u32,
    inode_size: u64,
    desc_size: u64,
}

fn ext4_super(img: &Image) -> Result<Ext4Super> {
    let sb = img.read(SB_OFFSET, SB_LEN)?;
    let at = |o: usize| Some(SB_OFFSET + o as u64);
    if le16(&sb, 0x38) != EXT4_MAGIC {
        return Err(bad(&img.path, at(0x38), "no ext2/3/4 superblock (magic 0xEF53 missing)"));
    }
    let log = le32(&sb, 0x18);
    if log > 6 {
        return Err(bad(&img.path, at(0x18), format!("block size 2^{} is out of range", 10 + log)));
    }
    let incompat = le32(&sb, 0x60);
    let ro_compat = le32(&sb, 0x64);
    let is64 = incompat & INCOMPAT_64BIT != 0;
    let blocks_count = u64::from(le32(&sb, 0x04)) | if is64 { u64::from(le32(&sb, 0x150)) << 32 } else { 0 };
    if le32(&sb, 0x5C) & COMPAT_HAS_JOURNAL == 0 {
        return Err(bad(&img.path, at(0x5C), "the file system has no journal (has_journal is off)"));
    }
    if incompat & INCOMPAT_JOURNAL_DEV != 0 {
        return Err(bad(&img.path, at(0x60), "this is an external journal device, not a file system"));
    }
    let journal_inum = le32(&sb, 0xE0);
    if journal_inum == 0 {
        return Err(bad(&img.path, at(0xE0), "the journal is on an external device, which is not supported"));
    }
    let inodes_per_group = le32(&sb, 0x28);
    let inode_size = u64::from(le16(&sb, 0x58));
    if inodes_per_group == 0 || inode_size < 128 {
        return Err(bad(&img.path, at(0x28), "inodes per group or inode size out of range"));
    }
    let desc_size = if is64 { u64::from(le16(&sb, 0xFE)).max(32) } else { 32 };
    Ok(Ext4Super {
        block_size: 1024 << log,
        blocks_count,
        journal_inum,
        needs_recovery: incompat & INCOMPAT_RECOVER != 0,
        metadata_csum: ro_compat & RO_COMPAT_METADATA_CSUM != 0,
        first_data_block: u64::from(le32(&sb, 0x14)),
        inodes_per_group,
        inode_size,
        desc_size,
    })
}

/// The journal inode's blocks: physical block of each logical block.
fn journal_blocks(img: &Image, sb: &Ext4Super) -> Result<Vec<u64>> {
    let bs = sb.block_size;
    let ino = u64::from(sb.journal_inum);
    let group = (ino - 1) / u64::from(sb.inodes_per_group);
    let index = (ino - 1) % u64::from(sb.inodes_per_group);
    let desc_at = (sb.first_data_block + 1) * bs + group * sb.desc_size;
    let desc = img.read(desc_at, sb.desc_size as usize)?;
    let mut table = u64::from(le32(&desc, 0x8));
    if sb.desc_size >= 64 {
        table |= u64::from(le32(&desc, 0x28)) << 32;
    }
    let inode_at = table * bs + index * sb.inode_size;
    let inode = img.read(inode_at, 128)?;
    let size = u64::from(le32(&inode, 0x4)) | (u64::from(le32(&inode, 0x6C)) << 32);
    let count = size / bs;
    if count == 0 {
        return Err(bad(&img.path, Some(inode_at), "the journal inode is empty"));
    }
    let i_block = &inode[0x28..0x28 + 60];
    let mut map = vec![u64::MAX; count as usize];
    if le32(&inode, 0x20) & INODE_FLAG_EXTENTS != 0 {
        extents(img, bs, i_block, inode_at + 0x28, &mut map, 0)?;
    } else {
        for (i, slot) in map.iter_mut().take(12).enumerate() {
            *slot = u64::from(le32(i_block, i * 4));
        }
        let mut next = 12u64;
        for (level, ptr) in [(1u32, 12usize), (2, 13), (3, 14)] {
            let root = u64::from(le32(i_block, ptr * 4));
            if next >= count {
                break;
            }
            indirect(img, bs, root, level, &mut next, &mut map)?;
        }
    }
    if let Some(i) = map.iter().position(|&p| p == u64::MAX || p == 0 || p >= sb.blocks_count) {
        return Err(bad(
            &img.path,
            Some(inode_at),
            format!("the journal inode does not map its block {i} to a block inside the file system"),
        ));
    }
    Ok(map)
}

fn indirect(img: &Image, bs: u64, block: u64, level: u32, next: &mut u64, map: &mut [u64]) -> Result<()> {
    if block == 0 {
        return Err(bad(&img.path, None, "the journal inode has a hole in its block map"));
    }
    let b = img.read(block * bs, bs as usize)?;
    for i in 0..(bs / 4) as usize {
        if *next >= map.len() as u64 {
            return Ok(());
        }
        let p = u64::from(le32(&b, i * 4));
        if level == 1 {
            map[*next as usize] = p;
            *next += 1;
        } else {
            indirect(img, bs, p, level - 1, next, map)?;
        }
    }
    Ok(())
}

fn extents(img: &Image, bs: u64, node: &[u8], at: u64, map: &mut [u64], depth_seen: u32) -> Result<()> {
    if le16(node, 0) != EXTENT_MAGIC || depth_seen > 5 {
        return Err(bad(&img.path, Some(at), "bad extent tree node in the journal inode"));
    }
    let entries = le16(node, 2) as usize;
    let depth = le16(node, 6);
    if 12 + entries * 12 > node.len() {
        return Err(bad(&img.path, Some(at), "extent node lists more entries than it holds"));
    }
    for e in 0..entries {
        let o = 12 + e * 12;
        if depth == 0 {
            let logical = u64::from(le32(node, o));
            let mut len = u64::from(le16(node, o + 4));
            if len > 32768 {
                len -= 32768;
            }
            let start = (u64::from(le16(node, o + 6)) << 32) | u64::from(le32(node, o + 8));
            for k in 0..len {
                if let Some(slot) = map.get_mut((logical + k) as usize) {
                    *slot = start + k;
                }
            }
        } else {
            let leaf = (u64::from(le16(node, o + 8)) << 32) | u64::from(le32(node, o + 4));
            let child = img.read(leaf * bs, bs as usize)?;
            extents(img, bs, &child, leaf * bs, map, depth_seen + 1)?;
        }
    }
    Ok(())
}

/// The journal superblock.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JournalSuper {
    /// 1 or 2.
    pub version: u32,
    /// Blocks of the log (`s_maxlen`).
    pub maxlen: u64,
    /// First log block after the superblock (`s_first`).
    pub first: u64,
    /// Sequence of the first transaction in the log (`s_sequence`).
    pub sequence: u32,
    /// First block of the log (`s_start`); 0 when the journal is empty.
    pub start: u64,
    /// Feature flags.
    pub compat: u32,
    /// Feature flags.
    pub incompat: u32,
    /// Whether block tags carry checksums version 2 or 3.
    pub csum: bool,
    /// The journal's recorded error (`s_errno`).
    pub errno: i32,
}

impl JournalSuper {
    fn has(&self, f: u32) -> bool {
        self.incompat & f != 0
    }
    fn tag_bytes(&self) -> usize {
        if self.has(J_INCOMPAT_CSUM_V3) {
            return 16;
        }
        let mut sz = 12;
        if self.has(J_INCOMPAT_CSUM_V2) {
            sz += 2;
        }
        if self.has(J_INCOMPAT_64BIT) {
            sz
        } else {
            sz - 4
        }
    }
}

/// An ext4 image with its journal located and its superblock read.
pub struct Jbd2 {
    img: Image,
    /// The file system superblock.
    pub fs: Ext4Super,
    /// The journal superblock.
    pub sb: JournalSuper,
    raw_sb: Vec<u8>,
    map: Vec<u64>,
    seed: u32,
}

/// Why the scan stopped where it did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogEnd {
    /// Log block where the scan stopped.
    pub block: u64,
    /// The first transaction not replayed.
    pub transaction: u32,
    /// In words.
    pub reason: String,
}

/// One home block's newest copy in the log.
#[derive(Debug, Clone, Copy)]
struct Copy {
    target: u64,
    log_block: u64,
    escape: bool,
}

/// What the three passes found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LogSummary {
    /// Transactions replayed (committed, before the end).
    pub transactions: u64,
    /// Descriptor tags read in replayed transactions.
    pub tags: u64,
    /// Revoke records read.
    pub revoke_records: u64,
    /// Tags skipped because a revoke of the same or a later transaction names their block.
    pub revoked: u64,
    /// Tags whose data block checksum failed (not written; e2fsck skips them too and marks
    /// the file system as having errors).
    pub bad_data_checksums: u64,
    /// Distinct home blocks written.
    pub blocks: u64,
    /// Where and why the log ended.
    pub end: Option<LogEnd>,
    /// A commit block that failed its checksum, when one ended the log.
    pub failed_commit: Option<u32>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Pass {
    Scan,
    Revoke,
    Replay,
}

struct PassState {
    end_transaction: Option<u32>,
    failed_commit: Option<u32>,
    revokes: HashMap<u64, u32>,
    copies: HashMap<u64, Copy>,
    summary: LogSummary,
}

impl Jbd2 {
    /// Opens `path`, finds the journal and reads its superblock.
    pub fn open(path: &Path) -> Result<Jbd2> {
        let file = File::open(path).map_err(|e| Error::io(path, "open", e))?;
        let len = file.metadata().map_err(|e| Error::io(path, "stat", e))?.len();
        // SAFETY: read-only; see `Image::map`.
        let map = if len > 0 {
            Some(unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, "map", e))?)
        } else {
            None
        };
        let img = Image { path: path.to_path_buf(), len, map };
        let fs = ext4_super(&img)?;
        let map = journal_blocks(&img, &fs)?;
        let raw_sb = img.read(map[0] * fs.block_size, 1024)?;
        let at = Some(map[0] * fs.block_size);
        if be32(&raw_sb, 0) != JBD2_MAGIC {
            return Err(bad(&img.path, at, "the journal superblock has no jbd2 magic"));
        }
        let version = match be32(&raw_sb, 4) {
            BT_SUPERBLOCK_V1 => 1,
            BT_SUPERBLOCK_V2 => 2,
            t => return Err(bad(&img.path, at, format!("journal superblock of unknown type {t}"))),
        };
        let (compat, incompat) = if version == 2 { (be32(&raw_sb, 36), be32(&raw_sb, 40)) } else { (0, 0) };
        let sb = JournalSuper {
            version,
            maxlen: u64::from(be32(&raw_sb, 16)),
            first: u64::from(be32(&raw_sb, 20)),
            sequence: be32(&raw_sb, 24),
            start: u64::from(be32(&raw_sb, 28)),
            compat,
            incompat,
            csum: incompat & (J_INCOMPAT_CSUM_V2 | J_INCOMPAT_CSUM_V3) != 0,
            errno: be32(&raw_sb, 32) as i32,
        };
        if u64::from(be32(&raw_sb, 12)) != fs.block_size {
            return Err(bad(&img.path, at.map(|a| a + 12), "journal block size differs from the file system's"));
        }
        if sb.maxlen > map.len() as u64 || sb.first == 0 || sb.first >= sb.maxlen {
            return Err(bad(&img.path, at.map(|a| a + 16), "journal length or first block out of range"));
        }
        if sb.start != 0 && (sb.start < sb.first || sb.start >= sb.maxlen) {
            return Err(bad(&img.path, at.map(|a| a + 28), "journal start block out of range"));
        }
        if incompat & !J_INCOMPAT_KNOWN != 0 {
            return Err(bad(&img.path, at.map(|a| a + 40), format!("unknown journal features {incompat:#x}")));
        }
        if incompat & J_INCOMPAT_FAST_COMMIT != 0 {
            return Err(bad(&img.path, at.map(|a| a + 40), "fast-commit journals are not supported"));
        }
        let seed = crc_raw(!0, &raw_sb[48..64]);
        if sb.csum {
            let mut copy = raw_sb.clone();
            copy[0xFC..0x100].fill(0);
            if crc_raw(!0, &copy) != be32(&raw_sb, 0xFC) {
                return Err(bad(&img.path, at.map(|a| a + 0xFC), "journal superblock checksum mismatch"));
            }
        }
        Ok(Jbd2 { img, fs, sb, raw_sb, map, seed })
    }

    /// Byte offset of the journal superblock in the image.
    pub fn journal_superblock_offset(&self) -> u64 {
        self.map[0] * self.fs.block_size
    }

    fn log_block(&self, n: u64) -> Result<&[u8]> {
        let bs = self.fs.block_size;
        self.img.slice(self.map[n as usize] * bs, bs as usize)
    }

    /// Starts reading log blocks `from..from + count` (wrapping), joined into physical runs.
    fn prefetch_log(&self, from: u64, count: u64) {
        let bs = self.fs.block_size;
        let mut run: Option<(u64, u64)> = None;
        let mut n = from;
        for _ in 0..count {
            let p = self.map[n as usize];
            run = match run {
                Some((start, len)) if start + len == p => Some((start, len + 1)),
                Some((start, len)) => {
                    self.img.prefetch(start * bs, len * bs);
                    Some((p, 1))
                }
                None => Some((p, 1)),
            };
            n = self.wrap(n + 1);
        }
        if let Some((start, len)) = run {
            self.img.prefetch(start * bs, len * bs);
        }
    }

    fn wrap(&self, n: u64) -> u64 {
        if n >= self.sb.maxlen {
            self.sb.first + (n - self.sb.first) % (self.sb.maxlen - self.sb.first)
        } else {
            n
        }
    }

    fn tail_csum_ok(&self, b: &[u8]) -> bool {
        if !self.sb.csum {
            return true;
        }
        let n = b.len();
        let mut copy = b.to_vec();
        copy[n - 4..].fill(0);
        crc_raw(self.seed, &copy) == be32(b, n - 4)
    }

    fn commit_csum_ok(&self, b: &[u8]) -> bool {
        if !self.sb.csum {
            return true;
        }
        let mut copy = b.to_vec();
        copy[16..20].fill(0);
        crc_raw(self.seed, &copy) == be32(b, 16)
    }

    fn tag_csum_ok(&self, tag: &[u8], data: &[u8], sequence: u32) -> bool {
        if !self.sb.csum {
            return true;
        }
        let c = crc_raw(crc_raw(self.seed, &sequence.to_be_bytes()), data);
        if self.sb.has(J_INCOMPAT_CSUM_V3) {
            be32(tag, 12) == c
        } else {
            u16::from_be_bytes([tag[4], tag[5]]) == (c & 0xFFFF) as u16
        }
    }

    /// The tags of a descriptor block: (target, flags, tag bytes).
    fn tags<'a>(&self, b: &'a [u8]) -> Vec<(u64, u32, &'a [u8])> {
        let tb = self.sb.tag_bytes();
        let csum_size = if self.sb.csum { 4 } else { 0 };
        let mut out = Vec::new();
        let mut at = 12;
        while at + tb <= b.len() - csum_size {
            let tag = &b[at..at + tb];
            let (flags, high) = if self.sb.has(J_INCOMPAT_CSUM_V3) {
                (be32(tag, 4), if self.sb.has(J_INCOMPAT_64BIT) { be32(tag, 8) } else { 0 })
            } else {
                (
                    u32::from(u16::from_be_bytes([tag[6], tag[7]])),
                    if self.sb.has(J_INCOMPAT_64BIT) { be32(tag, 8) } else { 0 },
                )
            };
            out.push(((u64::from(high) << 32) | u64::from(be32(tag, 0)), flags, tag));
            at += tb;
            if flags & TAG_SAME_UUID == 0 {
                at += 16;
            }
            if flags & TAG_LAST != 0 {
                break;
            }
        }
        out
    }

    /// One pass over the log, as `do_one_pass`.
    fn pass(&self, pass: Pass, st: &mut PassState) -> Result<()> {
        let mut next_commit = self.sb.sequence;
        let mut next = self.sb.start;
        let mut need_check_commit_time = false;
        let mut last_commit_time = 0u64;
        let mut end_reason = String::new();
        let mut end_block = next;
        let v1_csum = self.sb.compat & J_COMPAT_CHECKSUM != 0 && !self.sb.csum;
        let mut crc_sum = !0u32;
        // A log can be visited at most once around; more means a loop in damaged metadata.
        let mut budget = self.sb.maxlen * 2;
        // The scan asks for the log ahead of itself, a window at a time: cold, the reads then
        // proceed while it checks what came in. Later passes find the log cached.
        let window = (8u64 << 20) / self.fs.block_size;
        let log_len = self.sb.maxlen - self.sb.first;
        let mut asked = 0u64;
        loop {
            let walked = if next >= self.sb.start { next - self.sb.start } else { next + log_len - self.sb.start };
            if pass == Pass::Scan && walked + window / 2 >= asked && asked < log_len {
                let count = window.min(log_len - asked);
                self.prefetch_log(self.wrap(self.sb.start + asked), count);
                asked += count;
            }
            if pass != Pass::Scan && st.end_transaction.is_some_and(|e| tid_geq(next_commit, e)) {
                break;
            }
            budget = budget.saturating_sub(1);
            if budget == 0 {
                return Err(bad(&self.img.path, None, "the journal log does not end"));
            }
            end_block = next;
            let b = self.log_block(next)?;
            next = self.wrap(next + 1);
            if be32(b, 0) != JBD2_MAGIC {
                end_reason = "no journal magic".into();
                break;
            }
            let blocktype = be32(b, 4);
            let sequence = be32(b, 8);
            if sequence != next_commit {
                end_reason = format!("sequence {sequence}, expected {next_commit}");
                break;
            }
            match blocktype {
                BT_DESCRIPTOR => {
                    if !self.tail_csum_ok(b) {
                        if pass != Pass::Scan {
                            return Err(bad(
                                &self.img.path,
                                Some(self.map[end_block as usize] * self.fs.block_size),
                                format!("descriptor block checksum mismatch in transaction {next_commit}"),
                            ));
                        }
                        need_check_commit_time = true;
                    }
                    let tags = self.tags(b);
                    if pass != Pass::Replay {
                        if pass == Pass::Scan && v1_csum && !need_check_commit_time && st.end_transaction.is_none() {
                            crc_sum = crc32_be(crc_sum, b);
                            for _ in 0..tags.len() {
                                crc_sum = crc32_be(crc_sum, self.log_block(next)?);
                                next = self.wrap(next + 1);
                            }
                            continue;
                        }
                        next = self.wrap(next + tags.len() as u64);
                        continue;
                    }
                    for (target, flags, tag) in tags {
                        let io_block = next;
                        next = self.wrap(next + 1);
                        st.summary.tags += 1;
                        if st.revokes.get(&target).is_some_and(|&r| !tid_gt(next_commit, r)) {
                            st.summary.revoked += 1;
                            continue;
                        }
                        let data = self.log_block(io_block)?;
                        if !self.tag_csum_ok(tag, data, sequence) {
                            st.summary.bad_data_checksums += 1;
                            continue;
                        }
                        st.copies.insert(target, Copy { target, log_block: io_block, escape: flags & TAG_ESCAPE != 0 });
                    }
                }
                BT_COMMIT => {
                    let commit_time = be64(b, 48);
                    let mut v1_bad = false;
                    if pass == Pass::Scan && v1_csum {
                        if st.end_transaction.is_some() {
                            st.failed_commit = st.end_transaction;
                            end_reason = "a commit after a transaction whose checksum failed".into();
                            break;
                        }
                        let found = be32(b, 16);
                        let (kind, size) = (b[12], b[13]);
                        if (crc_sum == found && kind == 1 && size == 4) || (kind == 0 && size == 0 && found == 0) {
                            crc_sum = !0;
                        } else {
                            v1_bad = true;
                        }
                    }
                    if v1_bad || (pass == Pass::Scan && !self.commit_csum_ok(b)) {
                        // recovery.c compares the time of the commit before this one with
                        // itself here, so a bad commit checksum always ends the log.
                        st.end_transaction = Some(next_commit);
                        if !self.sb.has(J_INCOMPAT_ASYNC_COMMIT) {
                            st.failed_commit = Some(next_commit);
                            end_reason = format!("commit block of transaction {next_commit} fails its checksum");
                            break;
                        }
                    }
                    if pass == Pass::Scan {
                        if need_check_commit_time {
                            if commit_time >= last_commit_time {
                                return Err(bad(
                                    &self.img.path,
                                    Some(self.map[end_block as usize] * self.fs.block_size),
                                    format!("invalid checksum in transaction {next_commit}"),
                                ));
                            }
                            end_reason = "stale descriptor or revoke block (bad checksum, older commit)".into();
                            break;
                        }
                        last_commit_time = commit_time;
                    }
                    if pass == Pass::Replay {
                        st.summary.transactions += 1;
                    }
                    next_commit = next_commit.wrapping_add(1);
                }
                BT_REVOKE => {
                    if pass == Pass::Scan && !self.tail_csum_ok(b) {
                        need_check_commit_time = true;
                    }
                    if pass != Pass::Revoke {
                        continue;
                    }
                    let count = be32(b, 12) as usize;
                    let csum_size = if self.sb.csum { 4 } else { 0 };
                    if count > b.len() - csum_size {
                        return Err(bad(
                            &self.img.path,
                            Some(self.map[end_block as usize] * self.fs.block_size + 12),
                            "revoke block count larger than the block",
                        ));
                    }
                    let rl = if self.sb.has(J_INCOMPAT_64BIT) { 8 } else { 4 };
                    let mut at = 16;
                    while at + rl <= count {
                        let block = if rl == 8 { be64(b, at) } else { u64::from(be32(b, at)) };
                        at += rl;
                        st.summary.revoke_records += 1;
                        let e = st.revokes.entry(block).or_insert(sequence);
                        if tid_gt(sequence, *e) {
                            *e = sequence;
                        }
                    }
                }
                _ => {
                    end_reason = format!("block of unknown type {blocktype}");
                    break;
                }
            }
        }
        if pass == Pass::Scan {
            if st.end_transaction.is_none() {
                st.end_transaction = Some(next_commit);
            }
            st.summary.end = Some(LogEnd {
                block: end_block,
                transaction: st.end_transaction.unwrap_or(next_commit),
                reason: end_reason,
            });
        }
        Ok(())
    }

    /// The three passes. Nothing is written.
    fn read_log(&self) -> Result<PassState> {
        let mut st = PassState {
            end_transaction: None,
            failed_commit: None,
            revokes: HashMap::new(),
            copies: HashMap::new(),
            summary: LogSummary::default(),
        };
        if self.sb.start == 0 {
            return Ok(st);
        }
        self.pass(Pass::Scan, &mut st)?;
        self.pass(Pass::Revoke, &mut st)?;
        self.pass(Pass::Replay, &mut st)?;
        st.summary.failed_commit = st.failed_commit;
        st.summary.blocks = st.copies.len() as u64;
        Ok(st)
    }

    /// What recovery would do, without writing.
    pub fn inspect(&self) -> Result<LogSummary> {
        self.read_log().map(|s| s.summary)
    }

    /// Every block recovery writes, ascending: the journal's home blocks, the journal
    /// superblock's block and the file system superblock's.
    pub fn blocks_written(&self) -> Result<Vec<u64>> {
        let st = self.read_log()?;
        let mut v: Vec<u64> = st.copies.keys().copied().collect();
        v.push(self.map[0]);
        v.push(SB_OFFSET / self.fs.block_size);
        v.sort_unstable();
        v.dedup();
        Ok(v)
    }
}

fn tid_gt(x: u32, y: u32) -> bool {
    (x.wrapping_sub(y) as i32) > 0
}

fn tid_geq(x: u32, y: u32) -> bool {
    (x.wrapping_sub(y) as i32) >= 0
}

/// What [`recover`] did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Jbd2Report {
    /// The image.
    pub path: PathBuf,
    /// Whether the journal held anything to replay.
    pub replayed: bool,
    /// What the log held.
    pub log: LogSummary,
    /// Workers that wrote the blocks.
    pub workers: usize,
    /// The new journal sequence (`s_sequence`).
    pub new_sequence: u32,
    /// Milliseconds: reading the log (three passes), writing the blocks, the fsync and the
    /// superblocks.
    pub read_ms: f64,
    /// See `read_ms`.
    pub write_ms: f64,
    /// See `read_ms`.
    pub finish_ms: f64,
}

/// Recovers the ext4 image at `path` in place: replays its journal with `workers` threads
/// (`None`: one per CPU, as the engine's default), then resets the journal and clears
/// `needs_recovery` as e2fsck does.
pub fn recover(path: &Path, workers: Option<usize>) -> Result<Jbd2Report> {
    let t0 = std::time::Instant::now();
    let j = Jbd2::open(path)?;
    let st = j.read_log()?;
    let read_ms = t0.elapsed().as_secs_f64() * 1e3;
    let t1 = std::time::Instant::now();
    let file =
        OpenOptions::new().read(true).write(true).open(path).map_err(|e| Error::io(path, "open for writing", e))?;
    let bs = j.fs.block_size;
    let mut copies: Vec<Copy> = st.copies.values().copied().collect();
    copies.sort_unstable_by_key(|c| c.target);
    if let Some(c) = copies.iter().find(|c| c.target >= j.fs.blocks_count) {
        return Err(bad(
            path,
            None,
            format!("the journal writes block {}, beyond the file system's {} blocks", c.target, j.fs.blocks_count),
        ));
    }
    // A copy whose home is itself a journal block would change a log block another copy may
    // still read: then every copy is read before any is written.
    let journal_set: std::collections::HashSet<u64> = j.map.iter().copied().collect();
    let staged = copies.iter().any(|c| journal_set.contains(&c.target));
    let workers = crate::recover::default_workers(workers);
    let write_one = |c: &Copy, data: Option<&[u8]>| -> Result<()> {
        let src = match data {
            Some(d) => d,
            None => j.log_block(c.log_block)?,
        };
        let at = c.target * bs;
        if c.escape {
            let mut buf = src.to_vec();
            buf[..4].copy_from_slice(&JBD2_MAGIC.to_be_bytes());
            file.write_all_at(&buf, at)
        } else {
            file.write_all_at(src, at)
        }
        .map_err(|e| Error::io(path, "write block", e))
    };
    if staged {
        let data: Vec<Vec<u8>> =
            copies.iter().map(|c| j.log_block(c.log_block).map(<[u8]>::to_vec)).collect::<Result<_>>()?;
        for (c, d) in copies.iter().zip(&data) {
            write_one(c, Some(d))?;
        }
    } else if workers == 1 || copies.len() < 64 {
        for c in &copies {
            write_one(c, None)?;
        }
    } else {
        use rayon::prelude::*;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(workers)
            .build()
            .map_err(|e| Error::Config(format!("thread pool: {e}")))?;
        let chunk = copies.len().div_ceil(workers * 8).max(1);
        pool.install(|| copies.par_chunks(chunk).try_for_each(|cs| cs.iter().try_for_each(|c| write_one(c, None))))?;
    }
    file.sync_data().map_err(|e| Error::io(path, "fdatasync", e))?;
    let write_ms = t1.elapsed().as_secs_f64() * 1e3;
    let t2 = std::time::Instant::now();
    // Finish as e2fsck: the log restarts after the last transaction seen, empty.
    let new_sequence = match st.end_transaction {
        Some(e) => e.wrapping_add(1),
        None => j.sb.sequence,
    };
    let mut jsb = j.raw_sb.clone();
    jsb[24..28].copy_from_slice(&new_sequence.to_be_bytes());
    jsb[28..32].fill(0);
    // A failed commit: e2fsck records EINVAL as the journal's error, then moves it into the
    // file system's state (ERROR_FS) and clears it again; the journal keeps no error.
    jsb[32..36].fill(0);
    if j.sb.csum {
        jsb[0xFC..0x100].fill(0);
        let c = crc_raw(!0, &jsb);
        jsb[0xFC..0x100].copy_from_slice(&c.to_be_bytes());
    }
    file.write_all_at(&jsb, j.map[0] * bs).map_err(|e| Error::io(path, "write journal superblock", e))?;
    // The file system superblock is read again: the journal may have rewritten its block.
    let mut sb = vec![0u8; SB_LEN];
    file.read_exact_at(&mut sb, SB_OFFSET).map_err(|e| Error::io(path, "read superblock", e))?;
    let incompat = le32(&sb, 0x60) & !INCOMPAT_RECOVER;
    sb[0x60..0x64].copy_from_slice(&incompat.to_le_bytes());
    let mut state = le16(&sb, 0x3A);
    if st.failed_commit.is_some() || j.sb.errno != 0 {
        state |= STATE_ERROR;
    }
    if st.summary.bad_data_checksums > 0 {
        // Recovery returned an error to e2fsck: the file system is no longer marked valid.
        state &= !STATE_VALID;
    }
    sb[0x3A..0x3C].copy_from_slice(&state.to_le_bytes());
    if le32(&sb, 0x64) & RO_COMPAT_METADATA_CSUM != 0 {
        let c = crc_raw(!0, &sb[..0x3FC]);
        sb[0x3FC..0x400].copy_from_slice(&c.to_le_bytes());
    }
    file.write_all_at(&sb, SB_OFFSET).map_err(|e| Error::io(path, "write superblock", e))?;
    file.sync_all().map_err(|e| Error::io(path, "fsync", e))?;
    Ok(Jbd2Report {
        path: path.to_path_buf(),
        replayed: j.sb.start != 0,
        log: st.summary,
        workers,
        new_sequence,
        read_ms,
        write_ms,
        finish_ms: t2.elapsed().as_secs_f64() * 1e3,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_match_their_published_check_values() {
        // CRC-32/MPEG-2 (the kernel's crc32_be from all ones) of "123456789".
        assert_eq!(crc32_be(!0, b"123456789"), 0x0376_E6E7);
        // The kernel's crc32c from all ones leaves the final inversion out of CRC-32C's
        // 0xE3069283.
        assert_eq!(crc_raw(!0, b"123456789"), !0xE306_9283);
        // Continuing a raw sum equals summing the whole.
        assert_eq!(crc_raw(crc_raw(7, b"1234"), b"56789"), crc_raw(7, b"123456789"));
    }

    #[test]
    fn sequence_comparisons_wrap() {
        assert!(tid_gt(5, 4) && !tid_gt(4, 4) && tid_geq(4, 4));
        assert!(tid_gt(1, u32::MAX), "1 follows 2^32 - 1");
        assert!(!tid_geq(u32::MAX, 1));
    }
}
