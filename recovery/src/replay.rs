//! Redo, undo and orphan cleanup over an in-memory cache of the image blocks they change,
//! then write-back.
//!
//! The cache holds one window of blocks at a time (see `plan_windows`), so a journal that
//! touches more of the image than the memory budget allows is recovered in several passes.

use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

use rustc_hash::FxHashMap;

use crate::analysis::{invalid_reason, Analysis};
use crate::error::{Error, Result};
use crate::format::fragment::{SegmentDecoder, Step};
use crate::format::record::{decode_body, decode_header, AllocTarget, Record, RecordHeader};
use crate::image::{BitRegion, Layout};
use crate::journal::{Journal, SegmentBytes};
use crate::progress::Tracker;
use crate::scan::RecordCtx;

/// Counters of what replay did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReplayStats {
    /// Records whose change redo applied.
    pub redo_applied: u64,
    /// Writes skipped because a later full-block write replaces them.
    pub redo_skipped_superseded: u64,
    /// Writes skipped because a committed revoke forbids them.
    pub redo_skipped_revoked: u64,
    /// Records of losers that no-steal redo did not apply.
    pub redo_skipped_losers: u64,
    /// Records the checkpoint's dirty block table says the home copy already held.
    pub redo_skipped_home: u64,
    /// Changes undo restored.
    pub undo_applied: u64,
    /// Inodes freed from the orphan list.
    pub orphans_freed: u64,
    /// Image blocks written back.
    pub blocks_written: u64,
    /// Image bytes read into the cache.
    pub bytes_read: u64,
}

/// Test hooks that stop recovery at a named point, simulating a crash there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum FaultPoint {
    /// Fail after writing this many image blocks back.
    AfterBlockWrites(u64),
    /// Fail after the image is flushed, before the recovered marker is written.
    BeforeMarker,
    /// Act as if cancellation was asked for as this phase starts (the same checks and the
    /// same stop as a real cancel flag, without the race of setting one from another thread).
    CancelIn(crate::progress::Phase),
}

/// Zeroed anonymous memory for the block cache, populated up front.
///
/// Faulting a large buffer in page by page costs far more than copying into it (one trap per
/// 4 KiB page, expensive under virtualisation), so the arena asks for transparent huge pages
/// and is populated in one call (`MADV_POPULATE_WRITE`) where the kernel allows.
struct Arena {
    ptr: *mut u8,
    len: usize,
}

impl Arena {
    fn new(len: usize) -> Option<Arena> {
        if len == 0 {
            return None;
        }
        // SAFETY: an anonymous private mapping with no address hint has no preconditions;
        // the result is checked against MAP_FAILED below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return None;
        }
        // SAFETY: `ptr..ptr+len` is the mapping just created; madvise only changes paging
        // policy. Both calls are advice: when a kernel refuses them, pages fault in lazily.
        unsafe {
            libc::madvise(ptr, len, libc::MADV_HUGEPAGE);
            libc::madvise(ptr, len, libc::MADV_POPULATE_WRITE);
        }
        Some(Arena { ptr: ptr.cast(), len })
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: the mapping is `len` bytes, readable and writable, zero-initialised by the
        // kernel, owned by this value, and `&mut self` guarantees exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping created in `Arena::new`, which no slice outlives
        // (slices borrow `self`).
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// Cache storage: one populated mapping when the window's size is known, else a growable
/// vector (a fallback when the mapping cannot be made).
enum Storage {
    Mapped(Arena),
    Heap(Vec<u8>),
}

impl Storage {
    fn slice_mut(&mut self, at: usize, len: usize) -> &mut [u8] {
        match self {
            Storage::Mapped(a) => &mut a.as_mut_slice()[at..at + len],
            Storage::Heap(v) => {
                if v.len() < at + len {
                    v.resize(at + len, 0);
                }
                &mut v[at..at + len]
            }
        }
    }

    fn capacity(&self) -> usize {
        match self {
            Storage::Mapped(a) => a.len,
            Storage::Heap(_) => usize::MAX,
        }
    }
}

/// Where redo, undo and orphan cleanup read and change image blocks.
pub trait ImageBlocks {
    /// The block for changing, read from the image unless `overwrite` says every byte is
    /// about to be replaced.
    fn block_mut(&mut self, block: u64, overwrite: bool) -> Result<&mut [u8]>;
    /// The block for reading only.
    fn block(&mut self, block: u64) -> Result<&[u8]>;

    /// Writes `bytes` at `offset` of `block`, unless the block already holds them: a write of
    /// the bytes a block holds is a no-op, and skipping it keeps the block clean (no page
    /// made dirty, nothing to flush), which is what a redo from a checkpoint mostly meets.
    /// Returns whether the block changed.
    fn write_bytes(&mut self, block: u64, offset: usize, bytes: &[u8]) -> Result<bool> {
        if self.block(block)?[offset..offset + bytes.len()] == *bytes {
            return Ok(false);
        }
        self.block_mut(block, false)?[offset..offset + bytes.len()].copy_from_slice(bytes);
        Ok(true)
    }
}

/// The image mapped shared and writable: changes go straight into the page cache, with no
/// copy in or out and no fresh memory to fault in.
///
/// The kernel may write changed pages back at any moment, which is harmless: recovery gives
/// the same image from any intermediate state (see DESIGN.md), exactly as after a crash.
pub struct MappedImage {
    map: memmap2::MmapMut,
    block_size: usize,
    block_count: u64,
    dirty: rustc_hash::FxHashSet<u64>,
    fail_after_blocks: Option<u64>,
}

impl MappedImage {
    /// Maps `image` (opened read-write, `layout.image_len()` bytes long), shared: changes
    /// reach the file as the kernel writes pages back.
    ///
    /// Contract, as for journal segments: the file must not be truncated while mapped. The
    /// caller holds the directory lock and checked the length; a process that ignores the lock
    /// and truncates the image mid-recovery is outside what the engine can defend against.
    pub fn map(image: &File, path: &Path, layout: &Layout, fault: Option<FaultPoint>) -> Result<MappedImage> {
        Self::map_as(image, path, layout, fault, false)
    }

    /// Maps `image` privately (copy on write): changes stay in this process until
    /// [`commit`](Self::commit) writes them, so a crash leaves the file untouched. Used when
    /// the journal has copies (see [`crate::doublewrite`]). Same contract as [`map`](Self::map).
    pub fn map_private(image: &File, path: &Path, layout: &Layout, fault: Option<FaultPoint>) -> Result<MappedImage> {
        Self::map_as(image, path, layout, fault, true)
    }

    fn map_as(
        image: &File,
        path: &Path,
        layout: &Layout,
        fault: Option<FaultPoint>,
        private: bool,
    ) -> Result<MappedImage> {
        let mut opts = memmap2::MmapOptions::new();
        opts.len(layout.image_len() as usize);
        // SAFETY: see `map`'s contract; the mapping is only accessed through bounds-checked
        // slices of `block_size` bytes within `block_count` blocks, and a private one never
        // writes to the file.
        let map = unsafe {
            if private {
                opts.map_copy(image)
            } else {
                opts.map_mut(image)
            }
        }
        .map_err(|e| Error::io(path, "map image", e))?;
        Ok(MappedImage {
            map,
            block_size: layout.block_size(),
            block_count: layout.block_count(),
            dirty: rustc_hash::FxHashSet::default(),
            fail_after_blocks: match fault {
                Some(FaultPoint::AfterBlockWrites(n)) => Some(n),
                _ => None,
            },
        })
    }

    /// The whole mapping, for workers that split it by block ownership.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.map
    }

    /// Records blocks changed through [`as_mut_slice`](Self::as_mut_slice).
    pub fn note_dirty(&mut self, blocks: impl IntoIterator<Item = u64>) {
        self.dirty.extend(blocks);
    }

    /// Blocks changed so far.
    pub fn blocks_dirty(&self) -> u64 {
        self.dirty.len() as u64
    }

    /// Makes every changed page durable: one `fdatasync` of the file. On Linux a page changed
    /// through a shared mapping is a dirty page-cache page of the file (the first store marks
    /// it), so `fdatasync` writes it like any other; an `msync` first would only add a second
    /// device flush. The image's length never changes, so no metadata needs the full `fsync`.
    pub fn flush(&self, image: &File, path: &Path) -> Result<()> {
        image.sync_data().map_err(|e| Error::io(path, "fdatasync image", e))
    }

    /// For a private mapping: writes the changed blocks through the doublewrite file into
    /// `image`.
    pub fn commit(&self, dir: &Path, image: &File, path: &Path, tag: u64, last_lsn: u64) -> Result<()> {
        let mut blocks: Vec<u64> = self.dirty.iter().copied().collect();
        blocks.sort_unstable();
        let bs = self.block_size;
        let refs: Vec<(u64, &[u8])> =
            blocks.iter().map(|&b| (b, &self.map[b as usize * bs..(b as usize + 1) * bs])).collect();
        let t = crate::doublewrite::Target { dir, image, image_path: path, tag, last_lsn, block_size: bs };
        crate::doublewrite::commit(&t, &refs, None)
    }

    fn range(&self, block: u64, path_hint: &'static str) -> Result<std::ops::Range<usize>> {
        let at = (block as usize)
            .checked_mul(self.block_size)
            .filter(|&a| block < self.block_count && a + self.block_size <= self.map.len());
        match at {
            Some(at) => Ok(at..at + self.block_size),
            None => Err(Error::Config(format!("{path_hint}: block {block} beyond the image"))),
        }
    }
}

impl ImageBlocks for MappedImage {
    fn block_mut(&mut self, block: u64, _overwrite: bool) -> Result<&mut [u8]> {
        let r = self.range(block, "mapped image")?;
        if self.dirty.insert(block) {
            if let Some(n) = self.fail_after_blocks {
                // A simulated crash in the middle of redo: everything changed so far is in the
                // page cache, as if the kernel had written it back before the crash.
                if self.dirty.len() as u64 > n {
                    return Err(Error::InjectedFault("after-block-writes"));
                }
            }
        }
        Ok(&mut self.map[r])
    }

    fn block(&mut self, block: u64) -> Result<&[u8]> {
        let r = self.range(block, "mapped image")?;
        Ok(&self.map[r])
    }
}

/// A set of image blocks held in memory while they are being recovered.
pub struct BlockCache<'f> {
    image: &'f File,
    path: &'f Path,
    block_size: usize,
    slots: FxHashMap<u64, usize>,
    arena: Storage,
    blocks: Vec<u64>,
    dirty: Vec<bool>,
    /// Bytes read from the image.
    pub bytes_read: u64,
}

impl<'f> BlockCache<'f> {
    /// An empty cache over `image`.
    pub fn new(image: &'f File, path: &'f Path, block_size: usize, capacity_blocks: usize) -> Self {
        BlockCache {
            image,
            path,
            block_size,
            slots: FxHashMap::with_capacity_and_hasher(capacity_blocks, Default::default()),
            arena: match Arena::new(capacity_blocks * block_size) {
                Some(a) => Storage::Mapped(a),
                None => Storage::Heap(Vec::new()),
            },
            blocks: Vec::with_capacity(capacity_blocks),
            dirty: Vec::with_capacity(capacity_blocks),
            bytes_read: 0,
        }
    }

    fn cached_mut(&mut self, block: u64, overwrite: bool) -> Result<&mut [u8]> {
        let bs = self.block_size;
        let slot = match self.slots.get(&block) {
            Some(&s) => s,
            None => {
                let s = self.blocks.len();
                if (s + 1) * bs > self.arena.capacity() {
                    // More blocks than planned: move to the heap rather than fail.
                    let mut v = Vec::with_capacity((s + 1) * bs);
                    v.extend_from_slice(self.arena.slice_mut(0, s * bs));
                    self.arena = Storage::Heap(v);
                }
                if !overwrite {
                    let buf = self.arena.slice_mut(s * bs, bs);
                    self.image
                        .read_exact_at(buf, block * bs as u64)
                        .map_err(|e| Error::io(self.path, "read image block", e))?;
                    self.bytes_read += bs as u64;
                }
                self.blocks.push(block);
                self.dirty.push(false);
                self.slots.insert(block, s);
                s
            }
        };
        self.dirty[slot] = true;
        Ok(self.arena.slice_mut(slot * bs, bs))
    }

    fn cached(&mut self, block: u64) -> Result<&[u8]> {
        let was = self.slots.get(&block).map(|&s| self.dirty[s]);
        self.cached_mut(block, false)?;
        let s = self.slots[&block];
        self.dirty[s] = was.unwrap_or(false);
        let bs = self.block_size;
        Ok(self.arena.slice_mut(s * bs, bs))
    }

    /// Writes every changed block through the doublewrite file into the image (one window
    /// only: with copies every touched block is in it). Returns the blocks written.
    pub fn commit(&mut self, dir: &Path, tag: u64, last_lsn: u64, fault: Option<FaultPoint>) -> Result<u64> {
        let bs = self.block_size;
        let mut order: Vec<usize> = (0..self.blocks.len()).filter(|&s| self.dirty[s]).collect();
        order.sort_unstable_by_key(|&s| self.blocks[s]);
        let copies: Vec<(u64, Vec<u8>)> =
            order.iter().map(|&s| (self.blocks[s], self.arena.slice_mut(s * bs, bs).to_vec())).collect();
        let refs: Vec<(u64, &[u8])> = copies.iter().map(|(b, d)| (*b, d.as_slice())).collect();
        let fail_after = match fault {
            Some(FaultPoint::AfterBlockWrites(n)) => Some(n),
            _ => None,
        };
        let t =
            crate::doublewrite::Target { dir, image: self.image, image_path: self.path, tag, last_lsn, block_size: bs };
        crate::doublewrite::commit(&t, &refs, fail_after)?;
        Ok(refs.len() as u64)
    }

    /// Writes dirty blocks back in ascending order, coalescing neighbours into one write.
    /// `fault` simulates a crash after a number of block writes.
    pub fn write_back(&mut self, written_before: u64, fault: Option<FaultPoint>) -> Result<u64> {
        let bs = self.block_size;
        let mut order: Vec<usize> = (0..self.blocks.len()).filter(|&s| self.dirty[s]).collect();
        order.sort_unstable_by_key(|&s| self.blocks[s]);
        let limit = match fault {
            Some(FaultPoint::AfterBlockWrites(n)) => Some(n.saturating_sub(written_before)),
            _ => None,
        };
        let mut written = 0u64;
        let mut run: Vec<u8> = Vec::new();
        let mut i = 0;
        while i < order.len() {
            let first = self.blocks[order[i]];
            let mut j = i;
            run.clear();
            while j < order.len() && self.blocks[order[j]] == first + (j - i) as u64 && run.len() < (8 << 20) {
                if limit.is_some_and(|l| written + (j - i) as u64 >= l) {
                    break;
                }
                let s = order[j];
                run.extend_from_slice(self.arena.slice_mut(s * bs, bs));
                j += 1;
            }
            if j > i {
                self.image.write_all_at(&run, first * bs as u64).map_err(|e| Error::io(self.path, "write image", e))?;
                written += (j - i) as u64;
            }
            if limit.is_some_and(|l| written >= l) {
                return Err(Error::InjectedFault("after-block-writes"));
            }
            i = j;
        }
        Ok(written)
    }
}

impl ImageBlocks for BlockCache<'_> {
    fn block_mut(&mut self, block: u64, overwrite: bool) -> Result<&mut [u8]> {
        self.cached_mut(block, overwrite)
    }

    fn block(&mut self, block: u64) -> Result<&[u8]> {
        self.cached(block)
    }
}

/// Splits the touched blocks into windows of at most `blocks_max` blocks each, as block-number
/// ranges. The first window always holds every metadata block (orphan cleanup needs them
/// together).
pub fn plan_windows(touched: &[u64], blocks_max: usize, layout: &Layout) -> Vec<Range<u64>> {
    let mut windows = Vec::new();
    let mut lo = 0u64;
    let mut count = 0usize;
    for &b in touched {
        if count >= blocks_max && b >= layout.data_start() {
            windows.push(lo..b);
            lo = b;
            count = 0;
        }
        count += 1;
    }
    windows.push(lo..layout.block_count());
    windows
}

fn set_bit(cache: &mut impl ImageBlocks, layout: &Layout, region: BitRegion, index: u64, value: bool) -> Result<()> {
    if let Some(p) = layout.bit(region, index) {
        if (cache.block(p.block)?[p.byte] & p.mask != 0) == value {
            return Ok(());
        }
        let b = cache.block_mut(p.block, false)?;
        if value {
            b[p.byte] |= p.mask;
        } else {
            b[p.byte] &= !p.mask;
        }
    }
    Ok(())
}

fn region_of(target: AllocTarget) -> BitRegion {
    match target {
        AllocTarget::Block => BitRegion::Blocks,
        AllocTarget::Inode => BitRegion::Inodes,
    }
}

/// Applies one record during redo, if the rules say so.
pub fn redo_record(
    cache: &mut impl ImageBlocks,
    layout: &Layout,
    analysis: &Analysis,
    owns: &dyn Fn(u64) -> bool,
    h: &RecordHeader,
    rec: &Record<'_>,
    stats: &mut ReplayStats,
) -> Result<()> {
    let Some(block) = crate::analysis::target_block(layout, rec) else {
        return Ok(());
    };
    if !owns(block) || analysis.rejected.contains(&h.lsn) || invalid_reason(layout, analysis.steal, rec).is_some() {
        return Ok(());
    }
    if let Some(start) = &analysis.start {
        // The parallel scan routes neither kind of record.
        if start.ignores(h.txid, h.lsn) {
            // Counted by analysis (`before_start`).
            return Ok(());
        }
        if start.home(h.txid, h.lsn, block) {
            stats.redo_skipped_home += 1;
            return Ok(());
        }
    }
    if !analysis.redo_applies(h.txid) {
        stats.redo_skipped_losers += 1;
        return Ok(());
    }
    match *rec {
        Record::Write { block, offset, redo, .. } => {
            if analysis.revoked_at(block, h.lsn) {
                stats.redo_skipped_revoked += 1;
                return Ok(());
            }
            if analysis.superseded(block, h.lsn) {
                stats.redo_skipped_superseded += 1;
                return Ok(());
            }
            cache.write_bytes(block, offset as usize, redo)?;
        }
        Record::Copy { src, src_offset, dst, dst_offset, len, .. } => {
            if analysis.revoked_at(dst, h.lsn) {
                stats.redo_skipped_revoked += 1;
                return Ok(());
            }
            if analysis.superseded(dst, h.lsn) {
                stats.redo_skipped_superseded += 1;
                return Ok(());
            }
            let (so, d, n) = (src_offset as usize, dst_offset as usize, len as usize);
            let bytes = cache.block(src)?[so..so + n].to_vec();
            cache.write_bytes(dst, d, &bytes)?;
        }
        Record::Bitmap { target, index, set, .. } => set_bit(cache, layout, region_of(target), index, set)?,
        Record::Orphan { ino, add, .. } => set_bit(cache, layout, BitRegion::Orphans, ino, add)?,
        _ => return Ok(()),
    }
    stats.redo_applied += 1;
    Ok(())
}

/// Restores the before-images of losers' changes to the blocks `owns` accepts, newest first.
///
/// Undo is a blind write of before-image bytes, so changes an interrupted abort already
/// compensated are simply restored again, to the same bytes.
pub fn undo_losers(
    cache: &mut impl ImageBlocks,
    layout: &Layout,
    journal: &Journal,
    analysis: &Analysis,
    owns: &dyn Fn(u64) -> bool,
    stats: &mut ReplayStats,
    progress: Option<&Tracker<'_>>,
) -> Result<()> {
    let mut loaded: Option<(u32, SegmentBytes)> = None;
    for (i, loc) in analysis.undo.iter().enumerate() {
        if let Some(p) = progress.filter(|_| i % 256 == 0 && i > 0) {
            p.add(0, 256, 0);
        }
        if loaded.as_ref().is_none_or(|(s, _)| *s != loc.segment) {
            loaded = Some((loc.segment, journal.load(loc.segment as usize)?));
        }
        let Some((_, bytes)) = loaded.as_ref() else { continue };
        let meta = &journal.segments[loc.segment as usize];
        let mut dec = SegmentDecoder::new(bytes, meta.header.block_size, meta.header.salt);
        dec.seek(loc.start as usize, false);
        let corrupt = |offset: u64, kind| Error::Corrupt { path: meta.path.clone(), offset, kind };
        let rec_bytes = match dec.next_step() {
            Step::Record { bytes, .. } => bytes,
            Step::Damage { offset, kind } => return Err(corrupt(offset as u64, kind)),
            Step::End { offset } => return Err(corrupt(offset as u64, crate::error::CorruptKind::RecordTruncated)),
        };
        let (h, body) = decode_header(rec_bytes).map_err(|(o, k)| corrupt(loc.start + o as u64, k))?;
        let rec = decode_body(&h, body).map_err(|(o, k)| corrupt(loc.start + o as u64, k))?;
        let Some(block) = crate::analysis::target_block(layout, &rec) else {
            continue;
        };
        if !owns(block) {
            continue;
        }
        match rec {
            Record::Write { offset, undo: Some(undo), .. } => {
                cache.write_bytes(block, offset as usize, undo)?;
            }
            Record::Copy { dst_offset, undo: Some(undo), .. } => {
                cache.write_bytes(block, dst_offset as usize, undo)?;
            }
            Record::Bitmap { target, index, set, .. } => set_bit(cache, layout, region_of(target), index, !set)?,
            Record::Orphan { ino, add, .. } => set_bit(cache, layout, BitRegion::Orphans, ino, !add)?,
            _ => continue,
        }
        stats.undo_applied += 1;
    }
    Ok(())
}

/// Frees every inode left on the orphan list and empties the list. Needs the metadata blocks
/// in the cache's window.
pub fn clean_orphans(cache: &mut impl ImageBlocks, layout: &Layout, stats: &mut ReplayStats) -> Result<()> {
    let per_block = layout.block_size() as u64 * 8;
    for (i, block) in layout.orphan_bitmap.clone().enumerate() {
        let bits = cache.block(block)?.to_vec();
        for (byte_index, &byte) in bits.iter().enumerate() {
            if byte == 0 {
                continue;
            }
            for bit in 0..8 {
                if byte & (1 << bit) == 0 {
                    continue;
                }
                let ino = i as u64 * per_block + byte_index as u64 * 8 + bit;
                if ino >= layout.geometry.inode_count {
                    continue;
                }
                set_bit(cache, layout, BitRegion::Inodes, ino, false)?;
                set_bit(cache, layout, BitRegion::Orphans, ino, false)?;
                stats.orphans_freed += 1;
            }
        }
    }
    Ok(())
}

/// Redo pass over one window: feeds every durable record to [`redo_record`]. `first` is the
/// analysis pass's outcome: when it skipped nothing, this pass re-reads the same records
/// without verifying checksums again.
#[expect(clippy::too_many_arguments, reason = "the pass's inputs are all distinct")]
pub fn redo_window(
    cache: &mut impl ImageBlocks,
    layout: &Layout,
    journal: &Journal,
    mode: crate::RecoveryMode,
    first: &crate::scan::ScanOutcome,
    analysis: &Analysis,
    window: &Range<u64>,
    stats: &mut ReplayStats,
    progress: &Tracker<'_>,
) -> Result<()> {
    let mut seen = 0u64;
    let mut batch_start = Instant::now();
    let mut apply = |_ctx: &RecordCtx, h: &RecordHeader, rec: &Record<'_>| {
        seen += 1;
        if seen.is_multiple_of(REDO_BATCH) {
            // The serial engine's "batch" for the latency histogram and the progress counter.
            let now = Instant::now();
            progress.batch_apply.record(now - batch_start);
            batch_start = now;
            progress.add(0, REDO_BATCH, 0);
            if progress.cancelled() {
                return Err(Error::WorkerStopped);
            }
        }
        redo_record(cache, layout, analysis, &|b| window.contains(&b), h, rec, stats)
    };
    if crate::scan::trusted_rescan_possible(first) {
        crate::scan::scan_trusted(journal, first.end, &mut apply)
    } else {
        crate::scan::scan(journal, mode, &mut apply).map(|_| ())
    }?;
    progress.add(0, seen % REDO_BATCH, 0);
    Ok(())
}

/// Records per batch of the serial redo (progress and latency granularity).
pub const REDO_BATCH: u64 = 1024;
