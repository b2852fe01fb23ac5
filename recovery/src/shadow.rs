//! The image as recovery changes it: blocks read through a shared mapping of the image, every
//! changed block built in anonymous memory, and only the blocks whose final content differs
//! from the file's written back, once, by a copy into the mapping, then one fdatasync.
//!
//! Why not change blocks in place as redo goes: every page stored to is then written to disk,
//! even when later records restore its bytes (on the `default` preset 60% of the blocks a
//! whole-journal redo changes end as they began), and a crash during redo leaves a half-redone
//! image. Building changed blocks in memory costs a 4 KiB copy per block; at the end one
//! compare decides whether the block is written at all, and nothing reaches the file before
//! then. Why the write-back copies into the mapping rather than `pwrite`s: measured on this
//! project's machines (ext4, Linux 6.18), 3,467 scattered 4 KiB blocks took 16 ms to `pwrite`
//! and 34 ms to fdatasync after, against 3.5 ms to store through a shared mapping and 16 ms to
//! fdatasync after (the page cache keeps large folios, and a `pwrite` into one dirties more of
//! it than the page a store faults).
//!
//! A [`BlockStore`] holds one worker's blocks (parallel replay gives each worker its own, for
//! the blocks its partition owns); a [`ShadowImage`] is the mapping plus the stores, which is
//! what orphan cleanup and the write-back work on.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use rustc_hash::FxHashMap;

use crate::copylog::CopyReads;
use crate::error::{Error, Result};
use crate::image::Layout;
use crate::parallel::Partitioner;
use crate::replay::{Arena, ImageBlocks};

/// Bytes of one allocation of block slots (4 KiB pages: see [`Arena`] on huge pages).
const CHUNK_BYTES: usize = 2 << 20;

/// Largest image, in blocks, whose block-to-slot index is a dense array (16 MiB of index at
/// most); larger ones use a hash map.
const DENSE_INDEX_BLOCKS: u64 = 1 << 22;

/// The image file mapped shared: recovery reads blocks through it, and stores only the
/// changed blocks into it, once, at the write-back.
pub struct ImageMap {
    map: memmap2::MmapMut,
    ptr: *mut u8,
    block_size: usize,
    block_count: u64,
}

// SAFETY: the mapping lives as long as the value; blocks are read and stored only through
// `block` and `store`, which form slices of one block at a time, and the write-back stores each
// block from exactly one thread (blocks are partitioned between stores), with no slice of a
// block being stored held by any other thread.
unsafe impl Send for ImageMap {}
// SAFETY: as above.
unsafe impl Sync for ImageMap {}

impl ImageMap {
    /// Maps `image` (opened read-write, `layout.image_len()` bytes long), shared.
    ///
    /// Contract, as for journal segments: the file must not be truncated while mapped. The
    /// caller holds the directory lock and checked the length; a process that ignores the lock
    /// and truncates the image mid-recovery is outside what the engine can defend against.
    pub fn new(image: &File, path: &Path, layout: &Layout) -> Result<ImageMap> {
        let mut opts = memmap2::MmapOptions::new();
        opts.len(layout.image_len() as usize);
        // SAFETY: see the contract above; the mapping is only accessed one block at a time,
        // within its length.
        let mut map = unsafe { opts.map_mut(image) }.map_err(|e| Error::io(path, "map image", e))?;
        let ptr = map.as_mut_ptr();
        Ok(ImageMap { map, ptr, block_size: layout.block_size(), block_count: layout.block_count() })
    }

    fn offset(&self, b: u64) -> Result<usize> {
        if b >= self.block_count || (b as usize + 1) * self.block_size > self.map.len() {
            return Err(Error::Config(format!("image block {b} beyond the image's {} blocks", self.block_count)));
        }
        Ok(b as usize * self.block_size)
    }

    /// Block `b` as the file holds it (until [`store`](Self::store) changes it).
    pub fn block(&self, b: u64) -> Result<&[u8]> {
        let at = self.offset(b)?;
        // SAFETY: `at..at + block_size` lies inside the mapping (checked); bytes of a block are
        // stored only by the write-back, after every read of that block that could overlap.
        Ok(unsafe { std::slice::from_raw_parts(self.ptr.add(at), self.block_size) })
    }

    /// Asks the kernel to start reading `blocks` (ascending) into the page cache now, all at
    /// once: replay would otherwise fault them in one at a time, one disk read per block, when
    /// the image is not cached. Best effort: a refusal only loses the overlap.
    pub fn prefetch(&self, blocks: &[u64]) {
        let bs = self.block_size as u64;
        for (first, last) in block_ranges(blocks.iter().copied().filter(|&b| b < self.block_count)) {
            let _ = self.map.advise_range(
                memmap2::Advice::WillNeed,
                (first * bs) as usize,
                ((last - first + 1) * bs) as usize,
            );
        }
    }

    /// Stores `bytes` (one block) as block `b`.
    ///
    /// Callers store each block from one thread only, and hold no slice of it from
    /// [`block`](Self::block) meanwhile (the write-back compares, then stores, in turn).
    pub fn store(&self, b: u64, bytes: &[u8]) -> Result<()> {
        let at = self.offset(b)?;
        if bytes.len() != self.block_size {
            return Err(Error::Config(format!("a block store of {} bytes", bytes.len())));
        }
        // SAFETY: the destination lies inside the mapping (checked), the source is a distinct
        // buffer of the same length, and by the contract above no other thread reads or writes
        // this block now.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr.add(at), self.block_size) };
        Ok(())
    }

    /// The image's block size.
    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// The image's block count.
    pub fn block_count(&self) -> u64 {
        self.block_count
    }
}

/// Ascending `blocks` as inclusive ranges, nearby blocks joined: reading a short gap along
/// costs less than another request.
fn block_ranges(blocks: impl Iterator<Item = u64>) -> Vec<(u64, u64)> {
    const GAP_BLOCKS: u64 = 8;
    let mut out: Vec<(u64, u64)> = Vec::new();
    for b in blocks {
        match out.last_mut() {
            Some((_, last)) if b <= *last + GAP_BLOCKS => *last = (*last).max(b),
            _ => out.push((b, b)),
        }
    }
    out
}

enum SlotIndex {
    Dense(Vec<u32>),
    Sparse(FxHashMap<u64, u32>),
}

const NO_SLOT: u32 = u32::MAX;

/// Hints the CPU to load the cache line at `bytes[offset]` (no effect where unsupported, or
/// when `offset` is out of range).
#[inline]
pub fn prefetch(bytes: &[u8], offset: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(b) = bytes.get(offset) {
        // SAFETY: a prefetch has no architectural effect; the address is inside `bytes`.
        unsafe { std::arch::x86_64::_mm_prefetch(std::ptr::from_ref(b).cast::<i8>(), std::arch::x86_64::_MM_HINT_T0) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (bytes, offset);
}

/// Changed blocks held in anonymous memory: a slot per block, in chunks allocated as they
/// fill.
pub struct BlockStore {
    block_size: usize,
    per_chunk: usize,
    index: SlotIndex,
    chunks: Vec<Arena>,
    /// Slot to block.
    blocks: Vec<u64>,
    /// How copies read their sources: from an interrupted run's log, or recorded for it.
    pub copies: CopyReads,
}

impl BlockStore {
    /// An empty store for an image of `block_count` blocks of `block_size` bytes.
    pub fn new(block_size: usize, block_count: u64, copies: CopyReads) -> BlockStore {
        let index = if block_count <= DENSE_INDEX_BLOCKS {
            SlotIndex::Dense(vec![NO_SLOT; block_count as usize])
        } else {
            SlotIndex::Sparse(FxHashMap::default())
        };
        BlockStore {
            block_size,
            per_chunk: (CHUNK_BYTES / block_size).max(1),
            index,
            chunks: Vec::new(),
            blocks: Vec::new(),
            copies,
        }
    }

    fn slot(&self, b: u64) -> Option<usize> {
        let s = match &self.index {
            SlotIndex::Dense(v) => v.get(b as usize).copied().unwrap_or(NO_SLOT),
            SlotIndex::Sparse(m) => m.get(&b).copied().unwrap_or(NO_SLOT),
        };
        (s != NO_SLOT).then_some(s as usize)
    }

    fn slot_bytes(&self, s: usize) -> &[u8] {
        let bs = self.block_size;
        let at = (s % self.per_chunk) * bs;
        &self.chunks[s / self.per_chunk].as_slice()[at..at + bs]
    }

    fn slot_bytes_mut(&mut self, s: usize) -> &mut [u8] {
        let bs = self.block_size;
        let at = (s % self.per_chunk) * bs;
        &mut self.chunks[s / self.per_chunk].as_mut_slice()[at..at + bs]
    }

    /// Block `b` if this store holds it.
    pub fn get(&self, b: u64) -> Option<&[u8]> {
        self.slot(b).map(|s| self.slot_bytes(s))
    }

    /// Block `b` for changing: its slot, filled from `current` the first time.
    pub fn get_mut(&mut self, b: u64, current: &[u8]) -> Result<&mut [u8]> {
        if let Some(s) = self.slot(b) {
            return Ok(self.slot_bytes_mut(s));
        }
        let s = self.blocks.len();
        if s >= NO_SLOT as usize {
            return Err(Error::Config("more changed blocks than a store can index".into()));
        }
        if s / self.per_chunk >= self.chunks.len() {
            let arena = Arena::new(self.per_chunk * self.block_size)
                .ok_or_else(|| Error::Config("cannot allocate memory for changed image blocks".into()))?;
            self.chunks.push(arena);
        }
        match &mut self.index {
            SlotIndex::Dense(v) => {
                if let Some(x) = v.get_mut(b as usize) {
                    *x = s as u32;
                }
            }
            SlotIndex::Sparse(m) => {
                m.insert(b, s as u32);
            }
        }
        self.blocks.push(b);
        let slot = self.slot_bytes_mut(s);
        slot.copy_from_slice(current);
        Ok(slot)
    }

    /// Writes `bytes` at `offset` of block `b`: straight into its slot when it has one (the
    /// final compare decides what is written back), else only if the file's block differs
    /// there (a write of what the block holds takes no slot).
    #[inline]
    pub fn write(&mut self, map: &ImageMap, b: u64, offset: usize, bytes: &[u8]) -> Result<bool> {
        if let Some(s) = self.slot(b) {
            self.slot_bytes_mut(s)[offset..offset + bytes.len()].copy_from_slice(bytes);
            return Ok(true);
        }
        let current = map.block(b)?;
        if current[offset..offset + bytes.len()] == *bytes {
            return Ok(false);
        }
        self.get_mut(b, current)?[offset..offset + bytes.len()].copy_from_slice(bytes);
        Ok(true)
    }

    /// Hints the CPU to load the bytes at `offset` of block `b` (its slot, else the file's
    /// block), which a later write will touch.
    #[inline]
    pub fn prefetch(&self, map: &ImageMap, b: u64, offset: usize) {
        match self.slot(b) {
            Some(s) => prefetch(self.slot_bytes(s), offset),
            None => {
                if let Ok(block) = map.block(b) {
                    prefetch(block, offset);
                }
            }
        }
    }

    /// Blocks held.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// Whether the store holds no block.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Anonymous memory the store holds, in bytes.
    pub fn bytes_held(&self) -> u64 {
        (self.chunks.len() * self.per_chunk * self.block_size) as u64
    }

    /// The held blocks whose content differs from the file's, as slots in ascending block
    /// order, and how many held blocks do not differ (the write-back's preparation: all CPU,
    /// no I/O).
    pub fn changed(&self, map: &ImageMap) -> Result<(Vec<usize>, u64)> {
        let mut order: Vec<usize> = (0..self.blocks.len()).collect();
        order.sort_unstable_by_key(|&s| self.blocks[s]);
        let mut unchanged = 0u64;
        let mut changed = Vec::with_capacity(order.len());
        for s in order {
            if self.slot_bytes(s) == map.block(self.blocks[s])? {
                unchanged += 1;
            } else {
                changed.push(s);
            }
        }
        Ok((changed, unchanged))
    }

    /// Stores into the mapping, in ascending block order, every held block whose content
    /// differs from the file's; returns (written, held unchanged). `written_total` counts
    /// blocks written by every store, for the `AfterBlockWrites` fault point.
    pub fn write_back(&self, map: &ImageMap, written_total: &AtomicU64, fail_after: Option<u64>) -> Result<(u64, u64)> {
        let (changed, unchanged) = self.changed(map)?;
        let mut written = 0u64;
        for s in changed {
            if let Some(limit) = fail_after {
                // A simulated crash in the middle of the write-back: some blocks home, some not.
                if written_total.fetch_add(1, Ordering::Relaxed) >= limit {
                    return Err(Error::InjectedFault("after-block-writes"));
                }
            }
            map.store(self.blocks[s], self.slot_bytes(s))?;
            written += 1;
        }
        Ok((written, unchanged))
    }
}

/// One store seen with the mapping behind it: what a worker (or the serial replay) reads and
/// changes blocks through.
pub struct StoreView<'a> {
    /// The image as the file holds it.
    pub map: &'a ImageMap,
    /// The changed blocks.
    pub store: &'a mut BlockStore,
}

impl ImageBlocks for StoreView<'_> {
    fn block_mut(&mut self, block: u64, _overwrite: bool) -> Result<&mut [u8]> {
        let current = self.map.block(block)?;
        self.store.get_mut(block, current)
    }

    fn write_bytes(&mut self, block: u64, offset: usize, bytes: &[u8]) -> Result<bool> {
        self.store.write(self.map, block, offset, bytes)
    }

    fn block(&mut self, block: u64) -> Result<&[u8]> {
        match self.store.get(block) {
            Some(b) => Ok(b),
            None => self.map.block(block),
        }
    }

    fn copy_reads(&mut self) -> Option<&mut CopyReads> {
        Some(&mut self.store.copies)
    }
}

/// The mapping and every store: the whole image as recovery has changed it.
pub struct ShadowImage {
    map: ImageMap,
    stores: Vec<BlockStore>,
    parts: Option<Partitioner>,
}

/// What [`ShadowImage::write_back`] did.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteBack {
    /// Blocks written (their content differed from the file's).
    pub written: u64,
    /// Blocks recovery changed and changed back: held, not written.
    pub unchanged: u64,
    /// Anonymous memory the stores held, in bytes.
    pub bytes_held: u64,
}

impl ShadowImage {
    /// One store for serial replay.
    pub fn serial(map: ImageMap, copies: CopyReads) -> ShadowImage {
        let store = BlockStore::new(map.block_size, map.block_count, copies);
        ShadowImage { map, stores: vec![store], parts: None }
    }

    /// The stores of parallel replay's workers, store `w` holding the blocks `parts` gives
    /// worker `w`.
    pub fn partitioned(map: ImageMap, stores: Vec<BlockStore>, parts: Partitioner) -> ShadowImage {
        ShadowImage { map, stores, parts: Some(parts) }
    }

    fn owner(&self, block: u64) -> usize {
        self.parts.map_or(0, |p| p.of(block))
    }

    /// The mapping.
    pub fn map(&self) -> &ImageMap {
        &self.map
    }

    /// Every store, for the caller to hand to its workers.
    pub fn parts_mut(&mut self) -> (&ImageMap, &mut [BlockStore]) {
        (&self.map, &mut self.stores)
    }

    /// Blocks held in all stores.
    pub fn blocks_held(&self) -> u64 {
        self.stores.iter().map(|s| s.len() as u64).sum()
    }

    /// What copies read, from every store, for the copy log.
    pub fn take_copy_reads(&mut self) -> Vec<CopyReads> {
        self.stores.iter_mut().map(|s| std::mem::take(&mut s.copies)).collect()
    }

    /// The write-back's preparation for every store (see [`BlockStore::changed`]): blocks that
    /// would be written, and held blocks that would not.
    pub fn changed(&self) -> Result<(u64, u64)> {
        self.stores.iter().try_fold((0, 0), |(c, u), s| {
            let (changed, unchanged) = s.changed(&self.map)?;
            Ok((c + changed.len() as u64, u + unchanged))
        })
    }

    /// Writes back every held block whose content differs from the file's: one task per store
    /// on `pool` when given (each store's blocks in ascending order), else serially. The
    /// caller syncs the file.
    pub fn write_back(&self, pool: Option<&rayon::ThreadPool>, fail_after: Option<u64>) -> Result<WriteBack> {
        let total = AtomicU64::new(0);
        let one = |s: &BlockStore| s.write_back(&self.map, &total, fail_after);
        let results: Vec<Result<(u64, u64)>> = match pool {
            Some(pool) if self.stores.len() > 1 => {
                use rayon::prelude::*;
                pool.install(|| self.stores.par_iter().map(one).collect())
            }
            _ => self.stores.iter().map(one).collect(),
        };
        let mut wb =
            WriteBack { bytes_held: self.stores.iter().map(BlockStore::bytes_held).sum(), ..WriteBack::default() };
        let mut first_err = None;
        for r in results {
            match r {
                Ok((w, u)) => {
                    wb.written += w;
                    wb.unchanged += u;
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(wb),
        }
    }
}

impl ImageBlocks for ShadowImage {
    fn block_mut(&mut self, block: u64, _overwrite: bool) -> Result<&mut [u8]> {
        let w = self.owner(block);
        let current = self.map.block(block)?;
        self.stores[w].get_mut(block, current)
    }

    fn write_bytes(&mut self, block: u64, offset: usize, bytes: &[u8]) -> Result<bool> {
        let w = self.owner(block);
        self.stores[w].write(&self.map, block, offset, bytes)
    }

    fn block(&mut self, block: u64) -> Result<&[u8]> {
        let w = self.owner(block);
        match self.stores[w].get(block) {
            Some(b) => Ok(b),
            None => self.map.block(block),
        }
    }

    fn copy_reads(&mut self) -> Option<&mut CopyReads> {
        // Serial replay has one store; after a parallel replay only orphan cleanup runs here,
        // which copies nothing.
        self.stores.first_mut().map(|s| &mut s.copies)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Geometry;

    #[test]
    fn prefetch_ranges_join_near_blocks_only() {
        assert_eq!(block_ranges([].into_iter()), vec![]);
        assert_eq!(block_ranges([5].into_iter()), vec![(5, 5)]);
        // A gap of up to 8 blocks is read along; a longer one starts a new range.
        assert_eq!(block_ranges([1, 2, 10, 19, 30].into_iter()), vec![(1, 10), (19, 19), (30, 30)]);
        assert_eq!(block_ranges([3, 3, 4].into_iter()), vec![(3, 4)]);
    }

    #[test]
    fn only_blocks_that_end_different_are_written() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let layout = Layout::new(Geometry { block_size: 4096, block_count: 1024, inode_count: 64, image_id: 3 })
            .expect("layout");
        let path = tmp.path().join("img");
        let original: Vec<u8> = (0..layout.image_len()).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &original).expect("write");
        let file = std::fs::OpenOptions::new().read(true).write(true).open(&path).expect("open");
        let mut img = ShadowImage::serial(ImageMap::new(&file, &path, &layout).expect("map"), CopyReads::default());
        // Changed and kept; changed and changed back; only read.
        assert!(img.write_bytes(700, 10, &[1, 2, 3]).expect("write"));
        let old = img.block(701).expect("read")[0..2].to_vec();
        img.write_bytes(701, 0, &[9, 9]).expect("write");
        img.write_bytes(701, 0, &old).expect("write back");
        let _ = img.block(702).expect("read");
        assert!(!img.write_bytes(703, 5, &original[703 * 4096 + 5..703 * 4096 + 9]).expect("same bytes"));
        assert_eq!(img.blocks_held(), 2, "a read or a write of the bytes a block holds takes no slot");
        let wb = img.write_back(None, None).expect("write back");
        drop(img);
        assert_eq!((wb.written, wb.unchanged), (1, 1));
        let now = std::fs::read(&path).expect("read");
        assert_eq!(&now[700 * 4096 + 10..700 * 4096 + 13], &[1, 2, 3]);
        let mut expect = original.clone();
        expect[700 * 4096 + 10..700 * 4096 + 13].copy_from_slice(&[1, 2, 3]);
        assert!(now == expect, "nothing else changed");
    }

    #[test]
    fn a_write_back_stopped_by_the_fault_point_writes_a_prefix() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let layout = Layout::new(Geometry { block_size: 4096, block_count: 1024, inode_count: 64, image_id: 3 })
            .expect("layout");
        let path = tmp.path().join("img");
        std::fs::write(&path, vec![0u8; layout.image_len() as usize]).expect("write");
        let file = std::fs::OpenOptions::new().read(true).write(true).open(&path).expect("open");
        let mut img = ShadowImage::serial(ImageMap::new(&file, &path, &layout).expect("map"), CopyReads::default());
        for b in [100u64, 101, 102, 300, 301] {
            img.write_bytes(b, 0, &[7]).expect("write");
        }
        let err = img.write_back(None, Some(4)).expect_err("stopped");
        drop(img);
        assert!(matches!(err, Error::InjectedFault(_)), "{err}");
        let now = std::fs::read(&path).expect("read");
        let home = [100u64, 101, 102, 300, 301].iter().filter(|&&b| now[b as usize * 4096] == 7).count();
        assert_eq!(home, 4);
    }
}
