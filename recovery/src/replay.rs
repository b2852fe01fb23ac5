//! Redo, undo and orphan cleanup over an in-memory cache of the image blocks they change,
//! then write-back.
//!
//! The cache holds one window of blocks at a time (see `plan_windows`), so a journal that
//! touches more of the image than the memory budget allows is recovered in several passes.

use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;

use rustc_hash::FxHashMap;

use crate::analysis::{invalid_reason, Analysis};
use crate::error::{Error, Result};
use crate::format::fragment::{SegmentDecoder, Step};
use crate::format::record::{decode_body, decode_header, AllocTarget, Record, RecordHeader};
use crate::image::{BitRegion, Layout};
use crate::journal::{Journal, SegmentBytes};
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultPoint {
    /// Fail after writing this many image blocks back.
    AfterBlockWrites(u64),
    /// Fail after the image is flushed, before the recovered marker is written.
    BeforeMarker,
}

/// A set of image blocks held in memory while they are being recovered.
pub struct BlockCache<'f> {
    image: &'f File,
    path: &'f Path,
    block_size: usize,
    slots: FxHashMap<u64, usize>,
    arena: Vec<u8>,
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
            arena: Vec::with_capacity(capacity_blocks * block_size),
            blocks: Vec::with_capacity(capacity_blocks),
            dirty: Vec::with_capacity(capacity_blocks),
            bytes_read: 0,
        }
    }

    /// The cached block, loading it from the image unless `overwrite` says every byte is about
    /// to be replaced.
    pub fn block_mut(&mut self, block: u64, overwrite: bool) -> Result<&mut [u8]> {
        let bs = self.block_size;
        let slot = match self.slots.get(&block) {
            Some(&s) => s,
            None => {
                let s = self.blocks.len();
                self.arena.resize((s + 1) * bs, 0);
                if !overwrite {
                    let buf = &mut self.arena[s * bs..(s + 1) * bs];
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
        Ok(&mut self.arena[slot * bs..(slot + 1) * bs])
    }

    /// Reads a block into the cache without marking it dirty.
    pub fn block(&mut self, block: u64) -> Result<&[u8]> {
        let was = self.slots.get(&block).map(|&s| self.dirty[s]);
        self.block_mut(block, false)?;
        let s = self.slots[&block];
        self.dirty[s] = was.unwrap_or(false);
        let bs = self.block_size;
        Ok(&self.arena[s * bs..(s + 1) * bs])
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
                run.extend_from_slice(&self.arena[s * bs..(s + 1) * bs]);
                j += 1;
            }
            if j > i {
                self.image
                    .write_all_at(&run, first * bs as u64)
                    .map_err(|e| Error::io(self.path, "write image", e))?;
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

fn set_bit(cache: &mut BlockCache<'_>, layout: &Layout, region: BitRegion, index: u64, value: bool) -> Result<()> {
    if let Some(p) = layout.bit(region, index) {
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
    cache: &mut BlockCache<'_>,
    layout: &Layout,
    analysis: &Analysis,
    window: &Range<u64>,
    h: &RecordHeader,
    rec: &Record<'_>,
    stats: &mut ReplayStats,
) -> Result<()> {
    let Some(block) = crate::analysis::target_block(layout, rec) else {
        return Ok(());
    };
    if !window.contains(&block) || invalid_reason(layout, analysis.steal, rec).is_some() {
        return Ok(());
    }
    if !analysis.redo_applies(h.txid) {
        stats.redo_skipped_losers += 1;
        return Ok(());
    }
    match *rec {
        Record::Write { block, offset, redo, full, .. } => {
            if analysis.revoked.get(&block).is_some_and(|&r| h.lsn < r) {
                stats.redo_skipped_revoked += 1;
                return Ok(());
            }
            if analysis.last_full.get(&block).is_some_and(|&f| h.lsn < f) {
                stats.redo_skipped_superseded += 1;
                return Ok(());
            }
            let b = cache.block_mut(block, full)?;
            b[offset as usize..offset as usize + redo.len()].copy_from_slice(redo);
        }
        Record::Bitmap { target, index, set, .. } => set_bit(cache, layout, region_of(target), index, set)?,
        Record::Orphan { ino, add, .. } => set_bit(cache, layout, BitRegion::Orphans, ino, add)?,
        _ => return Ok(()),
    }
    stats.redo_applied += 1;
    Ok(())
}

/// Restores the before-images of losers' changes in `window`, newest first.
///
/// Undo is a blind write of before-image bytes, so changes an interrupted abort already
/// compensated are simply restored again, to the same bytes.
pub fn undo_losers(
    cache: &mut BlockCache<'_>,
    layout: &Layout,
    journal: &Journal,
    analysis: &Analysis,
    window: &Range<u64>,
    stats: &mut ReplayStats,
) -> Result<()> {
    let mut loaded: Option<(u32, SegmentBytes)> = None;
    for loc in &analysis.undo {
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
        let Some(block) = crate::analysis::target_block(layout, &rec) else { continue };
        if !window.contains(&block) {
            continue;
        }
        match rec {
            Record::Write { offset, undo: Some(undo), full, .. } => {
                let b = cache.block_mut(block, full)?;
                b[offset as usize..offset as usize + undo.len()].copy_from_slice(undo);
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
pub fn clean_orphans(cache: &mut BlockCache<'_>, layout: &Layout, stats: &mut ReplayStats) -> Result<()> {
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

/// Redo pass over one window: feeds every durable record to [`redo_record`].
pub fn redo_window(
    cache: &mut BlockCache<'_>,
    layout: &Layout,
    journal: &Journal,
    mode: crate::RecoveryMode,
    analysis: &Analysis,
    window: &Range<u64>,
    stats: &mut ReplayStats,
) -> Result<crate::scan::ScanOutcome> {
    crate::scan::scan(journal, mode, |_ctx: &RecordCtx, h, rec| redo_record(cache, layout, analysis, window, h, rec, stats))
}
