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

use crate::analysis::{invalid_reason, Analysis, UndoLoc};
use crate::copylog::CopyReads;
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
    /// Image blocks written back (their content differed from the file's).
    pub blocks_written: u64,
    /// Blocks redo or undo changed whose final content was what the file held: not written.
    pub blocks_unchanged: u64,
    /// Anonymous memory that held changed blocks, in bytes (the default image I/O).
    pub memory_bytes: u64,
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
/// 4 KiB page, expensive under virtualisation), so the arena is populated in one call
/// (`MADV_POPULATE_WRITE`) where the kernel allows.
pub(crate) struct Arena {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the arena owns its mapping outright (nothing else holds the pointer), so moving it to
// another thread moves that ownership; access goes through `&self`/`&mut self` slices, which
// the borrow rules keep exclusive for writes.
unsafe impl Send for Arena {}
// SAFETY: `&Arena` only gives out shared slices of memory nobody writes through a `&`.
unsafe impl Sync for Arena {}

impl Arena {
    pub(crate) fn new(len: usize) -> Option<Arena> {
        Arena::with_pages(len, false)
    }

    /// `huge`: ask for transparent huge pages. Only worth it where the arena is reused: on
    /// these VMs (`defrag=madvise`) the first fault of a huge page can stall on compaction,
    /// measured at 3-140 ms for 64 MiB against 25-35 ms for 4 KiB pages populated at once.
    pub(crate) fn with_pages(len: usize, huge: bool) -> Option<Arena> {
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
            if huge {
                libc::madvise(ptr, len, libc::MADV_HUGEPAGE);
            }
            libc::madvise(ptr, len, libc::MADV_POPULATE_WRITE);
        }
        Some(Arena { ptr: ptr.cast(), len })
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: the mapping is `len` bytes, readable and writable, zero-initialised by the
        // kernel, owned by this value, and `&mut self` guarantees exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        // SAFETY: as for `as_mut_slice`; `&self` rules out a concurrent `&mut` slice.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
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

    /// Where copies read their sources from and record what they read (see
    /// [`crate::copylog`]); `None`: straight from the blocks, unrecorded.
    fn copy_reads(&mut self) -> Option<&mut CopyReads> {
        None
    }

    /// The `len` bytes at `offset` of `src` that the copy at `lsn` reads: an interrupted
    /// run's logged bytes when there are some, else the block's, recorded for the log.
    fn copy_source(&mut self, lsn: u64, src: u64, offset: usize, len: usize) -> Result<Vec<u8>> {
        if let Some(logged) = self.copy_reads().and_then(|c| c.log.as_ref()).and_then(|l| l.get(lsn)) {
            return Ok(logged.to_vec());
        }
        let bytes = self.block(src)?[offset..offset + len].to_vec();
        if let Some(c) = self.copy_reads() {
            c.record(lsn, &bytes);
        }
        Ok(bytes)
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
    /// How copies read their sources (see [`crate::copylog`]).
    pub copies: CopyReads,
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
            copies: CopyReads::default(),
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

    fn copy_reads(&mut self) -> Option<&mut CopyReads> {
        Some(&mut self.copies)
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
    if !owns(block)
        || (!analysis.rejected.is_empty() && analysis.rejected.contains(&h.lsn))
        || invalid_reason(layout, analysis.steal, rec).is_some()
    {
        return Ok(());
    }
    if let Some(start) = &analysis.start {
        // The parallel scan routes neither kind of record.
        if start.ignores(h.txid, h.lsn) {
            // Counted by analysis (`before_start`).
            return Ok(());
        }
        // Taking dropped transactions out may put older bytes in a block the checkpoint saw
        // home: every change is redone then.
        if !analysis.restore_dropped && start.home(h.txid, h.lsn, block) {
            stats.redo_skipped_home += 1;
            return Ok(());
        }
    }
    // A change below a committed revoke or a later full-block write is skipped whoever wrote
    // it; these two come first because a parallel worker judges them from its task alone,
    // before it reads the record.
    if let Record::Write { block, .. } | Record::Copy { dst: block, .. } = *rec {
        if analysis.revoked_at(block, h.lsn) {
            stats.redo_skipped_revoked += 1;
            return Ok(());
        }
        if analysis.superseded(block, h.lsn) {
            stats.redo_skipped_superseded += 1;
            return Ok(());
        }
    }
    if !analysis.redo_applies(h.txid) {
        stats.redo_skipped_losers += 1;
        return Ok(());
    }
    match *rec {
        Record::Write { block, offset, redo, .. } => {
            cache.write_bytes(block, offset as usize, redo)?;
        }
        Record::Copy { src, src_offset, dst, dst_offset, len, .. } => {
            let (so, d, n) = (src_offset as usize, dst_offset as usize, len as usize);
            let bytes = cache.copy_source(h.lsn, src, so, n)?;
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
        // A block a committed transaction revoked later was freed and may have been reused
        // (unlogged): its content is no longer the loser's to restore.
        if !owns(block) || analysis.revoked_at(block, h.lsn) {
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

/// Skip-corrupt: the blocks that may still hold changes of a dropped transaction that may
/// have committed (it lost a record, or it has no end and began before `damage_lsn`, the last
/// damage's LSN), so that the report can name them. Under no-steal those changes cannot be
/// removed (no undo images): every block such a change touched is listed unless a later
/// full-block write that redo applies replaces it. Under steal they were undone, except on
/// blocks a committed transaction revoked later: the block was freed and may have been reused
/// (unlogged), so undo leaves it alone, and it is listed. A block revoked later is listed
/// under no-steal too: redo leaves it alone, whatever it holds.
pub fn suspect_blocks(layout: &Layout, journal: &Journal, analysis: &Analysis, damage_lsn: u64) -> Result<Vec<u64>> {
    let mut blocks = std::collections::BTreeSet::new();
    let mut first_dropped: std::collections::BTreeMap<u64, u64> = std::collections::BTreeMap::new();
    let locs: Vec<UndoLoc> =
        if analysis.steal { analysis.undo.clone() } else { analysis.suspects.iter().map(|&(u, _)| u).collect() };
    for_each_record(journal, &locs, |h, rec| {
        let maybe_committed = analysis.dropped.contains(&h.txid)
            && match analysis.txns.get(&h.txid) {
                Some(t) if t.outcome == crate::analysis::TxnOutcome::Damaged => true,
                Some(t) if t.outcome == crate::analysis::TxnOutcome::InFlight => t.first_seen() < damage_lsn,
                _ => false,
            };
        let Some(block) = crate::analysis::target_block(layout, rec) else { return };
        let revoked = analysis.revoked_at(block, h.lsn);
        let left = if analysis.steal { revoked } else { revoked || !analysis.superseded(block, h.lsn) };
        if maybe_committed && left {
            blocks.insert(block);
        }
        if maybe_committed {
            let first = first_dropped.entry(block).or_insert(h.lsn);
            *first = (*first).min(h.lsn);
        }
    })?;
    // A copy redo does not apply (its destination is revoked later) leaves the destination as
    // the crash image has it: made, perhaps, from a source a dropped change had touched.
    for &(src, dst, lsn) in &analysis.copy_edges {
        if first_dropped.get(&src).is_some_and(|&f| f < lsn) && analysis.revoked_at(dst, lsn) {
            blocks.insert(dst);
        }
    }
    Ok(blocks.into_iter().collect())
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
    let mut dropping = if analysis.restore_dropped { Some(DropRestore::new(layout, journal, analysis)?) } else { None };
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
        let owns = |b: u64| window.contains(&b);
        if let Some(d) = dropping.as_mut() {
            return redo_dropping(d, cache, layout, analysis, &owns, h, rec, stats);
        }
        redo_record(cache, layout, analysis, &owns, h, rec, stats)
    };
    if crate::scan::trusted_rescan_possible(first) {
        crate::scan::scan_trusted(journal, first.end, &mut apply)
    } else {
        crate::scan::scan(journal, mode, &mut apply).map(|_| ())
    }?;
    progress.add(0, seen % REDO_BATCH, 0);
    Ok(())
}

/// Redo of one record when skip-corrupt takes dropped transactions out (see [`DropRestore`]).
/// Out of line: the common path's loop stays as small as it was without skip-corrupt.
#[inline(never)]
#[expect(clippy::too_many_arguments, reason = "redo_record's arguments and the drop state")]
fn redo_dropping(
    d: &mut DropRestore,
    cache: &mut impl ImageBlocks,
    layout: &Layout,
    analysis: &Analysis,
    owns: &dyn Fn(u64) -> bool,
    h: &RecordHeader,
    rec: &Record<'_>,
    stats: &mut ReplayStats,
) -> Result<()> {
    if analysis.dropped.contains(&h.txid) {
        return d.restore(cache, layout, analysis, owns, h, rec, stats);
    }
    let applied = stats.redo_applied;
    redo_record(cache, layout, analysis, owns, h, rec, stats)?;
    if stats.redo_applied != applied {
        d.mark(layout, rec);
    }
    Ok(())
}

/// Skip-corrupt under steal: takes the dropped transactions out during the redo pass itself.
///
/// Undoing them after redo (ARIES's order for losers) would overwrite later winners' changes:
/// a damaged transaction may have committed and released its locks. Undoing them before redo
/// would put back before-images that hold *later* history wherever a copy reads the block
/// first. So, walking history in LSN order, each dropped change is replaced by its undo image
/// on exactly the bits this pass has not written yet: those still hold whatever the crash
/// image had, which the undo image corrects to the state before the change; bits the pass
/// wrote already hold the right state (an earlier winner's, or an earlier dropped change's
/// undo). Compensation records of dropped transactions are ignored (their originals are not
/// applied). Bits are tracked only in blocks some dropped change touches.
struct DropRestore {
    /// Per tracked block: one bit per image bit, set once the pass has written it.
    written: rustc_hash::FxHashMap<u64, Vec<u8>>,
}

impl DropRestore {
    fn new(layout: &Layout, journal: &Journal, analysis: &Analysis) -> Result<DropRestore> {
        let mut written = rustc_hash::FxHashMap::default();
        let bs = layout.block_size();
        for_each_record(journal, &analysis.undo, |_, rec| {
            if let Some(b) = crate::analysis::target_block(layout, rec) {
                written.entry(b).or_insert_with(|| vec![0u8; bs]);
            }
        })?;
        Ok(DropRestore { written })
    }

    /// Marks what an applied record wrote.
    fn mark(&mut self, layout: &Layout, rec: &Record<'_>) {
        match *rec {
            Record::Write { block, offset, redo, .. } => self.mark_bytes(block, offset as usize, redo.len()),
            Record::Copy { dst, dst_offset, len, .. } => self.mark_bytes(dst, dst_offset as usize, len as usize),
            Record::Bitmap { target, index, .. } => self.mark_bit(layout, region_of(target), index),
            Record::Orphan { ino, .. } => self.mark_bit(layout, BitRegion::Orphans, ino),
            _ => {}
        }
    }

    fn mark_bytes(&mut self, block: u64, offset: usize, len: usize) {
        if let Some(m) = self.written.get_mut(&block) {
            for b in m.iter_mut().skip(offset).take(len) {
                *b = 0xff;
            }
        }
    }

    fn mark_bit(&mut self, layout: &Layout, region: BitRegion, index: u64) {
        if let Some(p) = layout.bit(region, index) {
            if let Some(m) = self.written.get_mut(&p.block) {
                m[p.byte] |= p.mask;
            }
        }
    }

    /// A dropped transaction's record, at its place in history.
    #[expect(clippy::too_many_arguments, reason = "the redo pass's context")]
    fn restore(
        &mut self,
        cache: &mut impl ImageBlocks,
        layout: &Layout,
        analysis: &Analysis,
        owns: &dyn Fn(u64) -> bool,
        h: &RecordHeader,
        rec: &Record<'_>,
        stats: &mut ReplayStats,
    ) -> Result<()> {
        if rec.is_compensation() || analysis.rejected.contains(&h.lsn) {
            return Ok(());
        }
        let Some(block) = crate::analysis::target_block(layout, rec) else { return Ok(()) };
        // Freed by a committed transaction later (maybe reused unlogged): left as it is, and
        // reported (`suspect_blocks`).
        if !owns(block) || analysis.revoked_at(block, h.lsn) {
            return Ok(());
        }
        let (offset, undo) = match *rec {
            Record::Write { offset, undo: Some(undo), .. } => (offset as usize, undo),
            Record::Copy { dst_offset, undo: Some(undo), .. } => (dst_offset as usize, undo),
            Record::Bitmap { target, index, set, .. } => {
                return self.restore_bit(cache, layout, region_of(target), index, !set, stats)
            }
            Record::Orphan { ino, add, .. } => {
                return self.restore_bit(cache, layout, BitRegion::Orphans, ino, !add, stats)
            }
            _ => return Ok(()),
        };
        let Some(mask) = self.written.get_mut(&block) else { return Ok(()) };
        // Runs of bytes the pass has not written yet get the undo image's bytes.
        let mut i = 0;
        let mut restored = false;
        while i < undo.len() {
            if mask[offset + i] == 0xff {
                i += 1;
                continue;
            }
            let start = i;
            while i < undo.len() && mask[offset + i] != 0xff {
                i += 1;
            }
            cache.write_bytes(block, offset + start, &undo[start..i])?;
            restored = true;
        }
        for b in mask.iter_mut().skip(offset).take(undo.len()) {
            *b = 0xff;
        }
        stats.undo_applied += u64::from(restored);
        Ok(())
    }

    fn restore_bit(
        &mut self,
        cache: &mut impl ImageBlocks,
        layout: &Layout,
        region: BitRegion,
        index: u64,
        value: bool,
        stats: &mut ReplayStats,
    ) -> Result<()> {
        let Some(p) = layout.bit(region, index) else { return Ok(()) };
        let Some(mask) = self.written.get_mut(&p.block) else { return Ok(()) };
        if mask[p.byte] & p.mask == 0 {
            mask[p.byte] |= p.mask;
            set_bit(cache, layout, region, index, value)?;
            stats.undo_applied += 1;
        }
        Ok(())
    }
}

/// Decodes the records at `locs` (locations analysis recorded) and calls `f` with each.
fn for_each_record(journal: &Journal, locs: &[UndoLoc], mut f: impl FnMut(&RecordHeader, &Record<'_>)) -> Result<()> {
    let mut loaded: Option<(u32, SegmentBytes)> = None;
    for loc in locs {
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
        f(&h, &rec);
    }
    Ok(())
}

/// Records per batch of the serial redo (progress and latency granularity).
pub const REDO_BATCH: u64 = 1024;
