//! The oracle: a deliberately simple model of what recovery must produce.
//!
//! It starts from the base image bytes and applies, in commit order, the changes of exactly the
//! transactions whose commit record survives the crash, plus unlogged writes at their point in
//! history. A copy ([`Event::Copy`]) reads its source from the oracle's own image at its place
//! in the transaction's event order, which under strict two-phase locking is the source's
//! content at the copy's point in history. Revokes change no state and are not modelled. At the end, orphan cleanup frees
//! every inode still on the orphan list. It shares nothing with the engine but the image
//! layout's bit positions ([`Layout::bit`]): no decoder, no scanner, no replay.
//!
//! Memory stays O(image): the caller hands over a transaction's changes at its commit
//! ([`Oracle::commit`]); they wait in a queue until a sync makes the commit durable
//! ([`Oracle::make_durable`]), and the crash position decides the rest ([`Oracle::finish`]).

use std::collections::VecDeque;

use recovery::image::{BitRegion, Layout};

use crate::error::GenError;

/// One state change of a committed transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Bytes written at `offset` of data block `block`.
    Write {
        /// Image block number (a data block).
        block: u64,
        /// Byte offset within the block.
        offset: u32,
        /// The new bytes.
        bytes: Vec<u8>,
    },
    /// `len` bytes at `src_offset` of data block `src` copied to `dst_offset` of data block
    /// `dst` (`src != dst`), reading `src` as it is at this point of history.
    Copy {
        /// Source image block (a data block).
        src: u64,
        /// Byte offset within the source block.
        src_offset: u32,
        /// Destination image block (a data block).
        dst: u64,
        /// Byte offset within the destination block.
        dst_offset: u32,
        /// Bytes copied.
        len: u32,
    },
    /// One bit of a bitmap set or cleared.
    Bit {
        /// Which bitmap.
        region: BitRegion,
        /// Bit index.
        index: u64,
        /// New value.
        set: bool,
    },
}

#[derive(Debug)]
enum Entry {
    Commit { end: u64, events: Vec<Event> },
    Unlogged { block: u64, bytes: Vec<u8> },
}

/// What the oracle concluded at the crash.
#[derive(Debug, Clone)]
pub struct OracleResult {
    /// The expected image after recovery.
    pub image: Vec<u8>,
    /// Transactions whose commit survived.
    pub committed_txns: u64,
    /// Inodes freed by orphan cleanup.
    pub orphans_freed: u64,
    /// The most committed transactions that wrote one data block.
    pub max_txns_per_block: u32,
    /// Data blocks written by at least one committed transaction, ascending.
    pub committed_blocks: Vec<u64>,
    /// Copies applied (those of transactions whose commit survived).
    pub copies: u64,
    /// Copies applied whose source block had been changed before by an applied write or copy
    /// (of an earlier committed transaction or earlier in the same one), and not overwritten by
    /// an unlogged write since: replaying them depends on the source's logged history.
    pub copies_reading_recent_writes: u64,
}

/// The expected-image model. See the module documentation.
#[derive(Debug)]
pub struct Oracle {
    layout: Layout,
    image: Vec<u8>,
    queue: VecDeque<Entry>,
    last_end: u64,
    committed_txns: u64,
    txns_per_block: Vec<u32>,
    /// Per block, the number (1-based) of the last committed transaction counted for it.
    counted_by: Vec<u64>,
    /// Per block: changed by an applied logged event since the start (or its last unlogged
    /// write).
    logged_change: Vec<bool>,
    copies: u64,
    copies_reading_recent_writes: u64,
}

impl Oracle {
    /// An oracle over `base`, the image bytes at the start of the journal.
    pub fn new(layout: Layout, base: Vec<u8>) -> Result<Oracle, GenError> {
        if base.len() as u64 != layout.image_len() {
            return Err(GenError::BadEvent { what: "base image length", value: base.len() as u64 });
        }
        let blocks = layout.block_count() as usize;
        Ok(Oracle {
            layout,
            image: base,
            queue: VecDeque::new(),
            last_end: 0,
            committed_txns: 0,
            txns_per_block: vec![0; blocks],
            counted_by: vec![0; blocks],
            logged_change: vec![false; blocks],
            copies: 0,
            copies_reading_recent_writes: 0,
        })
    }

    /// The committed state as far as it is known durable (plus unlogged writes).
    pub fn image(&self) -> &[u8] {
        &self.image
    }

    /// Entries (commits and unlogged writes) waiting for durability.
    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    /// A transaction committed; its commit record ends at global journal position
    /// `commit_end` (strictly after every earlier commit's). Its `events` are applied once that
    /// position is durable.
    pub fn commit(&mut self, commit_end: u64, events: Vec<Event>) -> Result<(), GenError> {
        if commit_end <= self.last_end {
            return Err(GenError::BadEvent { what: "commit end not increasing", value: commit_end });
        }
        let bs = self.layout.block_size() as u64;
        let data = self.layout.data_start()..self.layout.block_count();
        for e in &events {
            match e {
                Event::Copy { src, src_offset, dst, dst_offset, len } => {
                    if !data.contains(src) || !data.contains(dst) || src == dst {
                        return Err(GenError::BadEvent { what: "copy block", value: *dst });
                    }
                    let end = u64::from(*src_offset.max(dst_offset)) + u64::from(*len);
                    if *len == 0 || end > bs {
                        return Err(GenError::BadEvent { what: "copy range end", value: end });
                    }
                }
                Event::Write { block, offset, bytes } => {
                    if *block < self.layout.data_start() || *block >= self.layout.block_count() {
                        return Err(GenError::BadEvent { what: "write block", value: *block });
                    }
                    if bytes.is_empty() || u64::from(*offset) + bytes.len() as u64 > bs {
                        return Err(GenError::BadEvent {
                            what: "write range end",
                            value: u64::from(*offset) + bytes.len() as u64,
                        });
                    }
                }
                Event::Bit { region, index, .. } => {
                    if self.layout.bit(*region, *index).is_none() {
                        return Err(GenError::BadEvent { what: "bit index", value: *index });
                    }
                }
            }
        }
        self.last_end = commit_end;
        self.queue.push_back(Entry::Commit { end: commit_end, events });
        Ok(())
    }

    /// A full-block write that bypassed the journal (durable at once). Applied now unless a
    /// queued commit writes the same block (or copies from or to it), in which case it waits
    /// behind it, keeping history order.
    pub fn unlogged_write(&mut self, block: u64, bytes: Vec<u8>) -> Result<(), GenError> {
        if block < self.layout.data_start() || block >= self.layout.block_count() {
            return Err(GenError::BadEvent { what: "unlogged block", value: block });
        }
        if bytes.len() != self.layout.block_size() {
            return Err(GenError::BadEvent { what: "unlogged length", value: bytes.len() as u64 });
        }
        let behind = self.queue.iter().any(|e| match e {
            Entry::Commit { events, .. } => events.iter().any(|ev| match ev {
                Event::Write { block: b, .. } => *b == block,
                Event::Copy { src, dst, .. } => *src == block || *dst == block,
                Event::Bit { .. } => false,
            }),
            Entry::Unlogged { block: b, .. } => *b == block,
        });
        if behind {
            self.queue.push_back(Entry::Unlogged { block, bytes });
        } else {
            self.apply_unlogged(block, &bytes);
        }
        Ok(())
    }

    /// Everything up to global journal position `durable_pos` is durable: applies the queued
    /// commits that end there or earlier (and unlogged writes queued between them).
    pub fn make_durable(&mut self, durable_pos: u64) {
        while let Some(front) = self.queue.front() {
            if let Entry::Commit { end, .. } = front {
                if *end > durable_pos {
                    break;
                }
            }
            if let Some(e) = self.queue.pop_front() {
                self.apply(e);
            }
        }
    }

    /// The crash happened at global journal position `crash_pos`: commits ending there or
    /// earlier count, later ones do not; then orphan cleanup. Returns the expected image.
    pub fn finish(mut self, crash_pos: u64) -> OracleResult {
        while let Some(e) = self.queue.pop_front() {
            match e {
                Entry::Commit { end, .. } if end > crash_pos => {}
                e => self.apply(e),
            }
        }
        let mut orphans_freed = 0;
        for ino in 0..self.layout.geometry.inode_count {
            if self.get_bit(BitRegion::Orphans, ino) {
                self.set_bit(BitRegion::Orphans, ino, false);
                self.set_bit(BitRegion::Inodes, ino, false);
                orphans_freed += 1;
            }
        }
        let start = self.layout.data_start() as usize;
        let committed_blocks =
            (start..self.txns_per_block.len()).filter(|&b| self.txns_per_block[b] > 0).map(|b| b as u64).collect();
        OracleResult {
            max_txns_per_block: self.txns_per_block.iter().copied().max().unwrap_or(0),
            image: self.image,
            committed_txns: self.committed_txns,
            orphans_freed,
            committed_blocks,
            copies: self.copies,
            copies_reading_recent_writes: self.copies_reading_recent_writes,
        }
    }

    fn apply(&mut self, e: Entry) {
        match e {
            Entry::Unlogged { block, bytes } => self.apply_unlogged(block, &bytes),
            Entry::Commit { events, .. } => {
                self.committed_txns += 1;
                let n = self.committed_txns;
                let bs = self.layout.block_size();
                for ev in events {
                    match ev {
                        Event::Write { block, offset, bytes } => {
                            let at = block as usize * bs + offset as usize;
                            self.image[at..at + bytes.len()].copy_from_slice(&bytes);
                            self.count_change(block, n);
                        }
                        Event::Copy { src, src_offset, dst, dst_offset, len } => {
                            let from = src as usize * bs + src_offset as usize;
                            let to = dst as usize * bs + dst_offset as usize;
                            let bytes = self.image[from..from + len as usize].to_vec();
                            self.image[to..to + len as usize].copy_from_slice(&bytes);
                            self.copies += 1;
                            if self.logged_change[src as usize] {
                                self.copies_reading_recent_writes += 1;
                            }
                            self.count_change(dst, n);
                        }
                        Event::Bit { region, index, set } => self.set_bit(region, index, set),
                    }
                }
            }
        }
    }

    /// Committed transaction number `n` changed data block `block`.
    fn count_change(&mut self, block: u64, n: u64) {
        let b = block as usize;
        self.logged_change[b] = true;
        if self.counted_by[b] != n {
            self.counted_by[b] = n;
            self.txns_per_block[b] += 1;
        }
    }

    fn apply_unlogged(&mut self, block: u64, bytes: &[u8]) {
        let bs = self.layout.block_size();
        let at = block as usize * bs;
        self.image[at..at + bs].copy_from_slice(bytes);
        self.logged_change[block as usize] = false;
    }

    /// The digest (as [`crate::digest::image_digest`]) of what recovery must produce if the
    /// crash came now with every commit so far durable: the image after orphan cleanup.
    pub fn cleaned_digest(&self) -> String {
        let mut img = self.image.clone();
        let bs = self.layout.block_size();
        for ino in 0..self.layout.geometry.inode_count {
            let Some(o) = self.layout.bit(BitRegion::Orphans, ino) else { continue };
            let at = o.block as usize * bs + o.byte;
            if img[at] & o.mask != 0 {
                img[at] &= !o.mask;
                if let Some(i) = self.layout.bit(BitRegion::Inodes, ino) {
                    img[i.block as usize * bs + i.byte] &= !i.mask;
                }
            }
        }
        crate::digest::image_digest(&crate::digest::block_digests(&img, bs))
    }

    fn get_bit(&self, region: BitRegion, index: u64) -> bool {
        self.layout
            .bit(region, index)
            .is_some_and(|p| self.image[p.block as usize * self.layout.block_size() + p.byte] & p.mask != 0)
    }

    fn set_bit(&mut self, region: BitRegion, index: u64, set: bool) {
        if let Some(p) = self.layout.bit(region, index) {
            let at = p.block as usize * self.layout.block_size() + p.byte;
            if set {
                self.image[at] |= p.mask;
            } else {
                self.image[at] &= !p.mask;
            }
        }
    }
}
