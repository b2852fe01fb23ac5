//! Parallel recovery: a chunked scan and a partitioned replay on pinned workers.
//!
//! **Pass 1.** The journal is cut into chunks of whole journal blocks (block boundaries are
//! resync points). Each worker decodes chunks, verifies checksums and analyses them into a
//! partial transaction table ([`Analyzer::new_partial`]); the tables merge in journal order
//! ([`Analyzer::absorb`]), so the result does not depend on the number of workers or on
//! scheduling. Anything only the serial scan can judge exactly (damage followed by valid data,
//! skip-corrupt mode, an invalid record, an LSN gap) sends recovery back to the serial path; a
//! torn tail is handled here exactly as the serial scan handles it.
//!
//! **Pass 2.** Image blocks are partitioned (extents of neighbouring blocks, hashed to
//! workers: [`Partitioner`]); worker `w` owns partition `w` and replays its blocks in LSN order.
//! Pass 1 already routed every record to the workers that need it ([`Routed`]): each chunk
//! keeps one task list per worker (where the record starts, and for writes and copies its LSN
//! and target block), so a worker walks its lists chunk after chunk, which is LSN order, with
//! no routing thread or queue between scan and replay. A task whose change a committed revoke
//! or a later full-block write makes moot is skipped without reading the journal. A COPY whose
//! source and destination belong to different workers becomes two tasks: the source's owner
//! *publishes* the source bytes when its stream reaches the copy's LSN (after every earlier
//! change of the source, before every later one), the destination's owner *consumes* them,
//! waiting on a condition variable if they are not there yet (spinning briefly first). Every
//! wait is for an event at a lower-or-equal LSN in another worker's stream, and every worker's
//! list is complete before pass 2 starts, so waits never form a cycle. Then each worker undoes
//! its own blocks' loser changes.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Instant;

use rustc_hash::FxHashMap;

use crate::analysis::{invalid_reason, target_block, Analysis, Analyzer, StartFilter};
use crate::error::{CorruptKind, Error, Result};
use crate::format::fragment::{SegmentDecoder, Step};
use crate::format::record::{decode_body, decode_header_with, Record};
use crate::image::Layout;
use crate::journal::{Journal, SegmentBytes};
use crate::progress::Tracker;
use crate::replay::{redo_record, undo_losers, ImageBlocks, ReplayStats};
use crate::scan::{torn_tail, valid_data_after, RecordCtx, ScanOutcome, TailCut};
use crate::shadow::{BlockStore, ImageMap, StoreView};
use crate::topology::{pin_current, PinPlan};
use crate::RecoveryMode;

/// Which threads run parallel recovery.
///
/// The default is rayon because it measured as fast or faster: on the 16-CPU, one-node
/// machine of `results/scaling/`, equal within noise up to 8 workers and clearly ahead at 16
/// (a pinned thread cannot leave a CPU the host is busy with; an unpinned one can). Pinning is
/// what a multi-node machine needs for placement by node, which no machine here could test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Executor {
    /// Dedicated threads, one per worker, pinned by the [`PinPlan`].
    Pinned,
    /// A rayon thread pool of the same size, unpinned. Default.
    #[default]
    Rayon,
}

impl std::str::FromStr for Executor {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "pinned" => Ok(Executor::Pinned),
            "rayon" => Ok(Executor::Rayon),
            _ => Err(Error::Config(format!("unknown executor `{s}` (expected pinned or rayon)"))),
        }
    }
}

/// Settings of one parallel run (resolved from `RecoverOptions`).
#[derive(Debug, Clone)]
pub struct ParallelSetup {
    /// Worker count (1 runs the chunked pipeline on the recovery thread).
    pub workers: usize,
    /// Where workers run.
    pub plan: PinPlan,
    /// Thread kind.
    pub executor: Executor,
    /// Records a worker applies between progress updates and cancellation checks.
    pub batch_ops: usize,
    /// Bytes of journal per pass-1 chunk (rounded to whole journal blocks).
    pub chunk_bytes: u64,
    /// Keep each routed record's block and LSN for [`dependency_stats`].
    pub dependency_stats: bool,
}

/// One routed record, kept only to compute dependency statistics.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    lsn: u64,
    txid: u64,
    kind: EntryKind,
}

/// What pass 1 routed for pass 2: per chunk, per worker, the tasks in LSN order (a worker
/// replays chunk after chunk, so its stream is in LSN order with no routing thread between the
/// passes), and the hand-off slots each chunk's cross-worker copies use.
pub struct Routed {
    /// `tasks[chunk][worker]`.
    tasks: Vec<Vec<Vec<Task>>>,
    /// First hand-off slot of each chunk.
    slot_base: Vec<u32>,
    /// Hand-off slots in all.
    slots: usize,
    /// Records routed to a worker (a cross-worker copy counts once).
    pub ops: u64,
    /// The routed records, per chunk, when dependency statistics were asked for.
    entries: Option<Vec<Vec<Entry>>>,
}

#[derive(Debug, Clone, Copy)]
enum EntryKind {
    Change { block: u64 },
    Copy { src: u64, dst: u64 },
    Other,
}

struct Chunk {
    segment: usize,
    start: usize,
    end: usize,
}

enum Stop {
    Damage { offset: usize, kind: CorruptKind, resume: Option<usize> },
    End { offset: usize },
}

struct ChunkOut<'a> {
    analyzer: Analyzer<'a>,
    /// Tasks per worker, in LSN order.
    tasks: Vec<Vec<Task>>,
    /// Cross-worker copies (hand-off slots used).
    copies: u32,
    /// Records routed.
    routed: u64,
    /// Blocks records change or copies read.
    touched: crate::analysis::BlockSet,
    /// Routed records, for dependency statistics.
    entries: Vec<Entry>,
    first_lsn: Option<u64>,
    last_lsn: u64,
    last_end: Option<usize>,
    optional: u64,
    /// Records before the start point (or a snapshot covers): scanned, not analysed, with no
    /// entry to route.
    covered: u64,
    /// Records the checkpoint's dirty block table says are home: analysed, not routed.
    home: u64,
    /// Records that change no block (commits, aborts, revokes, optional ones).
    other: u64,
    stop: Option<Stop>,
}

fn plan_chunks(journal: &Journal, chunk_bytes: u64) -> Vec<Chunk> {
    let mut chunks = Vec::new();
    for (si, meta) in journal.segments.iter().enumerate() {
        let bs = meta.header.block_size as u64;
        let step = (chunk_bytes / bs).max(1) * bs;
        let mut at = if si == 0 { journal.start_offset } else { bs };
        while at < meta.len {
            let end = (at + step).min(meta.len);
            chunks.push(Chunk { segment: si, start: at as usize, end: end as usize });
            at = end;
        }
    }
    chunks
}

fn entry_kind(layout: &Layout, rec: &Record<'_>) -> EntryKind {
    match *rec {
        Record::Copy { src, dst, .. } => EntryKind::Copy { src, dst },
        _ => match target_block(layout, rec) {
            Some(block) => EntryKind::Change { block },
            None => EntryKind::Other,
        },
    }
}

fn decode_chunk<'a>(
    layout: &'a Layout,
    journal: &'a Journal,
    chunk: &Chunk,
    filter: &Option<Arc<StartFilter>>,
    parts: Partitioner,
    keep_entries: bool,
) -> Result<ChunkOut<'a>> {
    let meta = &journal.segments[chunk.segment];
    let bytes = journal.load(chunk.segment)?;
    let mut dec = SegmentDecoder::new(&bytes, meta.header.block_size, meta.header.salt);
    // Fragments continuing a record that started before this chunk belong to the previous one.
    dec.seek(chunk.start, true);
    let mut out = ChunkOut {
        analyzer: Analyzer::new_partial(layout, journal).with_start(filter.clone()),
        tasks: (0..parts.workers()).map(|_| Vec::new()).collect(),
        copies: 0,
        routed: 0,
        touched: crate::analysis::BlockSet::for_chunk(layout.block_count()),
        entries: Vec::new(),
        first_lsn: None,
        last_lsn: 0,
        last_end: None,
        optional: 0,
        covered: 0,
        home: 0,
        other: 0,
        stop: None,
    };
    loop {
        match dec.next_step() {
            Step::Record { start, end, bytes: rec, single } => {
                if start >= chunk.end {
                    break;
                }
                // The same order of checks as the serial scan: header, LSN, body.
                let expected = out.first_lsn.map(|_| out.last_lsn + 1);
                let decoded = decode_header_with(rec, !single).and_then(|(h, body)| match expected {
                    Some(e) if h.lsn != e => Err((8, CorruptKind::LsnSequence { expected: e, found: h.lsn })),
                    _ => decode_body(&h, body).map(|r| (h, r)),
                });
                let (h, r) = match decoded {
                    Ok(x) => x,
                    Err((o, kind)) => {
                        out.stop = Some(Stop::Damage { offset: start + o, kind, resume: Some(end) });
                        break;
                    }
                };
                let ctx = RecordCtx { segment: chunk.segment, start: start as u64, end: end as u64 };
                out.analyzer.visit(&ctx, &h, &r)?;
                if let Record::Optional { .. } = r {
                    out.optional += 1;
                }
                out.first_lsn.get_or_insert(h.lsn);
                out.last_lsn = h.lsn;
                out.last_end = Some(end);
                if out.analyzer.ignores(&h) {
                    out.covered += 1;
                    continue;
                }
                let kind = entry_kind(layout, &r);
                let block = match kind {
                    EntryKind::Change { block } | EntryKind::Copy { dst: block, .. } => Some(block),
                    EntryKind::Other => None,
                };
                if block.is_some_and(|b| out.analyzer.home(&h, b)) {
                    // The home copy holds it already: nothing for replay to route.
                    out.home += 1;
                    continue;
                }
                let (segment, at) = (chunk.segment as u32, start as u32);
                match kind {
                    EntryKind::Other => {
                        out.other += 1;
                        continue;
                    }
                    EntryKind::Change { block } => {
                        out.touched.insert(block);
                        let (known, line) = match r {
                            Record::Write { offset, .. } => (task_block(block), task_line(offset)),
                            _ => (NO_BLOCK, 0),
                        };
                        out.tasks[parts.of(block)].push(Task::Apply {
                            segment,
                            start: at,
                            block: known,
                            line,
                            lsn: h.lsn,
                        });
                    }
                    EntryKind::Copy { src, dst } => {
                        out.touched.insert(src);
                        out.touched.insert(dst);
                        let (ws, wd) = (parts.of(src), parts.of(dst));
                        if ws == wd {
                            let line = match r {
                                Record::Copy { dst_offset, .. } => task_line(dst_offset),
                                _ => 0,
                            };
                            out.tasks[wd].push(Task::Apply {
                                segment,
                                start: at,
                                block: task_block(dst),
                                line,
                                lsn: h.lsn,
                            });
                        } else {
                            let slot = out.copies;
                            out.copies += 1;
                            out.tasks[ws].push(Task::Publish { segment, start: at, slot });
                            out.tasks[wd].push(Task::Consume { segment, start: at, slot });
                        }
                    }
                }
                out.routed += 1;
                if keep_entries {
                    out.entries.push(Entry { lsn: h.lsn, txid: h.txid, kind });
                }
            }
            Step::End { offset } => {
                if offset < chunk.end {
                    out.stop = Some(Stop::End { offset });
                }
                break;
            }
            Step::Damage { offset, kind } => {
                // Reported even past the chunk's end: the next chunk starts by skipping
                // continuation fragments, so a stray one between here and the next record start
                // is only visible to this decoder (the serial scan calls it damage).
                out.stop = Some(Stop::Damage { offset, kind, resume: None });
                break;
            }
        }
    }
    Ok(out)
}

/// The cache line of a block offset, as a task carries it.
fn task_line(offset: impl Into<u64>) -> u16 {
    u16::try_from(offset.into() / 64).unwrap_or(u16::MAX)
}

/// A block number as a task carries it.
fn task_block(block: u64) -> u32 {
    u32::try_from(block).ok().filter(|&b| b != NO_BLOCK).unwrap_or(NO_BLOCK)
}

/// Runs `tasks` calls of `f(task, worker)` on the setup's workers (numbered from 1).
fn run_tasks<T: Send>(setup: &ParallelSetup, tasks: usize, f: &(dyn Fn(usize, usize) -> T + Sync)) -> Vec<T> {
    if setup.workers <= 1 {
        // One worker runs on the recovery thread: no thread to start, and nothing pinned
        // that would stay pinned after the phase.
        return (0..tasks).map(|i| f(i, 1)).collect();
    }
    match setup.executor {
        Executor::Pinned => {
            let next = AtomicUsize::new(0);
            let slots: Vec<Mutex<Option<T>>> = (0..tasks).map(|_| Mutex::new(None)).collect();
            std::thread::scope(|s| {
                for w in &setup.plan.workers {
                    let (next, slots) = (&next, &slots);
                    s.spawn(move || {
                        if let Some(cpu) = w.cpu {
                            pin_current(cpu);
                        }
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            if i >= tasks {
                                break;
                            }
                            let r = f(i, w.worker + 1);
                            *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
                        }
                    });
                }
            });
            slots.into_iter().filter_map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner())).collect()
        }
        Executor::Rayon => {
            use rayon::prelude::*;
            let worker = || rayon::current_thread_index().map_or(1, |i| i + 1);
            match rayon::ThreadPoolBuilder::new().num_threads(setup.workers).build() {
                Ok(pool) => pool.install(|| (0..tasks).into_par_iter().map(|i| f(i, worker())).collect()),
                Err(_) => (0..tasks).map(|i| f(i, 1)).collect(),
            }
        }
    }
}

/// Result of the parallel pass 1: what the serial scan and analysis would have produced, and
/// the routing entries of pass 2.
pub struct Pass1<'a> {
    /// As from `scan::scan`.
    pub outcome: ScanOutcome,
    /// The merged transaction table; [`Analyzer::finish`] gives what the serial analysis
    /// would.
    pub analyzer: Analyzer<'a>,
    /// The records pass 2 replays, routed to the workers.
    pub routed: Routed,
    /// Chunks decoded.
    pub chunks: usize,
    /// Records left unrouted because the checkpoint's dirty block table says they are home.
    pub home: u64,
}

/// Pass 1 in parallel. `Ok(None)` means "use the serial path" (see the module docs). The
/// records replay needs are routed to the workers as they are decoded (see [`Routed`]), and
/// [`Analysis::touched`] holds every block they change or read.
///
/// Workers count their chunks' records and bytes in `progress` and stop early on a
/// cancellation.
pub fn scan_parallel<'a>(
    layout: &'a Layout,
    journal: &'a Journal,
    mode: RecoveryMode,
    setup: &ParallelSetup,
    start: Option<Arc<StartFilter>>,
    progress: &Tracker<'_>,
) -> Result<Option<Pass1<'a>>> {
    if mode == RecoveryMode::SkipCorrupt {
        return Ok(None);
    }
    let chunks = plan_chunks(journal, setup.chunk_bytes);
    let parts = Partitioner::new(setup.workers, layout.block_count());
    let outs = run_tasks(setup, chunks.len(), &|i, w| {
        if progress.cancelled() {
            return Err(Error::WorkerStopped);
        }
        let t = Instant::now();
        let c = &chunks[i];
        let r = decode_chunk(layout, journal, c, &start, parts, setup.dependency_stats);
        let n = r.as_ref().map_or(0, |o| o.routed + o.other + o.covered + o.home);
        let w = w.min(setup.workers);
        progress.add_busy(w, t.elapsed());
        progress.add(w, n, (c.end - c.start) as u64);
        r
    });
    if progress.cancelled() {
        return Err(Error::WorkerStopped);
    }
    let mut merged: Option<Analyzer<'_>> = None;
    let mut outcome = ScanOutcome::default();
    let mut routed = Routed {
        tasks: Vec::new(),
        slot_base: Vec::new(),
        slots: 0,
        ops: 0,
        entries: setup.dependency_stats.then(Vec::new),
    };
    let mut touched = crate::analysis::BlockSet::new(layout.block_count());
    let mut expected = journal.start_lsn;
    let mut seg_end: FxHashMap<usize, u64> = FxHashMap::default();
    let mut done_segment: Option<usize> = None;
    let mut cut = false;
    let outs: Vec<ChunkOut<'_>> = outs.into_iter().collect::<Result<_>>()?;
    let txns_total: usize = outs.iter().map(|o| o.analyzer.txn_count()).sum();
    let mut next_segment = 0usize;
    let mut home = 0u64;
    for (chunk, out) in chunks.iter().zip(outs) {
        let si = chunk.segment;
        // Segments with no chunk (header only) before this one: their first LSN must follow too.
        if !cut && (next_segment..si).any(|sj| sj > 0 && journal.segments[sj].header.first_lsn != expected) {
            return Ok(None);
        }
        next_segment = next_segment.max(si + 1);
        if cut || done_segment == Some(si) {
            if out.routed + out.other > 0 {
                return Ok(None);
            }
            continue;
        }
        let meta = &journal.segments[si];
        if chunk.start == meta.header.block_size as usize && si > 0 && meta.header.first_lsn != expected {
            return Ok(None);
        }
        if let Some(f) = out.first_lsn {
            if f != expected {
                return Ok(None);
            }
            expected = out.last_lsn + 1;
            if outcome.records == 0 {
                outcome.first_lsn = f;
            }
            outcome.last_lsn = out.last_lsn;
        }
        if let Some(e) = out.last_end {
            seg_end.insert(si, e as u64);
            outcome.end = Some((si, e as u64));
        }
        outcome.records += out.routed + out.other + out.covered + out.home;
        home += out.home;
        outcome.optional_records += out.optional;
        routed.slot_base.push(routed.slots as u32);
        routed.slots += out.copies as usize;
        routed.ops += out.routed;
        routed.tasks.push(out.tasks);
        touched.union(&out.touched);
        if let Some(e) = routed.entries.as_mut() {
            e.push(out.entries);
        }
        let m = merged.get_or_insert_with(|| {
            // Every chunk, the first included, goes through `absorb`'s checks.
            let mut empty = Analyzer::new_partial(layout, journal).with_start(start.clone());
            empty.reserve_txns(txns_total);
            empty
        });
        if !m.absorb(out.analyzer) {
            return Ok(None);
        }
        match out.stop {
            None => {}
            Some(Stop::End { offset }) => {
                let bytes = journal.load(si)?;
                let dec = SegmentDecoder::new(&bytes, meta.header.block_size, meta.header.salt);
                if dec.next_valid_after(offset).is_some() {
                    return Ok(None);
                }
                seg_end.insert(si, offset as u64);
                if si + 1 == journal.segments.len() && (offset as u64) < meta.len {
                    outcome.tail = Some(TailCut {
                        path: meta.path.clone(),
                        offset: offset as u64,
                        damage: None,
                        bytes_discarded: meta.len - offset as u64,
                        unsynced_epoch: false,
                    });
                }
                done_segment = Some(si);
            }
            Some(Stop::Damage { offset, kind, resume }) => {
                let bytes: SegmentBytes = journal.load(si)?;
                let mut dec = SegmentDecoder::new(&bytes, meta.header.block_size, meta.header.salt);
                if let Some(r) = resume {
                    dec.seek(r, false);
                }
                if valid_data_after(journal, si, &dec, offset, resume.is_some())?.is_some() {
                    return Ok(None);
                }
                if mode == RecoveryMode::Absolute {
                    return Err(Error::Corrupt { path: meta.path.clone(), offset: offset as u64, kind });
                }
                outcome.tail = Some(torn_tail(journal, si, offset as u64, kind));
                seg_end.insert(si, offset as u64);
                cut = true;
            }
        }
    }
    if !cut
        && (next_segment..journal.segments.len()).any(|sj| sj > 0 && journal.segments[sj].header.first_lsn != expected)
    {
        return Ok(None);
    }
    let last_seg = if cut {
        outcome.tail.as_ref().and_then(|t| journal.segments.iter().position(|s| s.path == t.path))
    } else {
        None
    };
    for (si, meta) in journal.segments.iter().enumerate() {
        if last_seg.is_some_and(|l| si > l) {
            break;
        }
        outcome.bytes += seg_end.get(&si).copied().unwrap_or(meta.len).min(meta.len);
    }
    let Some(mut analyzer) = merged else { return Ok(None) };
    if analyzer.partial_failed() || !analyzer.partial_ids_unique() {
        return Ok(None);
    }
    analyzer.add_touched(touched.sorted());
    Ok(Some(Pass1 { outcome, analyzer, routed, chunks: chunks.len(), home }))
}

/// Maps image blocks to partitions (one per worker): extents of neighbouring blocks are
/// hashed to workers. Extents keep short-reach copies inside one partition (no hand-off);
/// hashing them spreads hot regions over all workers.
#[derive(Debug, Clone, Copy)]
pub struct Partitioner {
    workers: usize,
    extent_shift: u32,
}

impl Partitioner {
    /// Workers (partitions).
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Extents hold up to 256 blocks, small enough that every worker gets at least 16 of them
    /// on an image of `block_count` blocks.
    pub fn new(workers: usize, block_count: u64) -> Partitioner {
        let target = (block_count / (workers as u64 * 16)).clamp(1, 256);
        Partitioner { workers: workers.max(1), extent_shift: 63 - target.leading_zeros() }
    }

    /// The partition (and owning worker) of `block`.
    pub fn of(&self, block: u64) -> usize {
        let extent = block >> self.extent_shift;
        ((extent.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) % self.workers as u64) as usize
    }
}

/// A record for a worker: where it starts (segment, offset), and for a cross-worker copy the
/// chunk-local hand-off slot. An `Apply` of a write or copy also carries its LSN and target
/// block (or [`NO_BLOCK`]), so a worker skips revoked and superseded changes without reading
/// the journal, and the cache line of the block it changes (`line`, offset / 64), which the
/// worker prefetches. 24 bytes: a million records route in 24 MiB.
#[derive(Debug, Clone, Copy)]
enum Task {
    Apply { segment: u32, start: u32, block: u32, line: u16, lsn: u64 },
    Publish { segment: u32, start: u32, slot: u32 },
    Consume { segment: u32, start: u32, slot: u32 },
}

/// `Task::Apply::block` of a record whose target is not known from the task alone.
const NO_BLOCK: u32 = u32::MAX;

impl Task {
    /// Redo's verdict on an `Apply` from its block and LSN alone: `Some` when the change is
    /// skipped (as revoked: true; as superseded: false), in the same order of checks as
    /// [`redo_record`].
    #[inline]
    fn skipped(self, analysis: &Analysis) -> Option<bool> {
        let Task::Apply { block, lsn, .. } = self else { return None };
        if block == NO_BLOCK {
            return None;
        }
        let b = u64::from(block);
        if analysis.revoked_at(b, lsn) {
            Some(true)
        } else if analysis.superseded(b, lsn) {
            Some(false)
        } else {
            None
        }
    }

    /// Where the record starts: segment, offset.
    fn at(self) -> (u32, u32) {
        match self {
            Task::Apply { segment, start, .. }
            | Task::Publish { segment, start, .. }
            | Task::Consume { segment, start, .. } => (segment, start),
        }
    }
}

struct Exchange {
    slots: Vec<OnceLock<Vec<u8>>>,
    lock: Mutex<()>,
    ready: Condvar,
    /// Consumers blocked (or about to block) on `ready`; publishers skip the wake-up when 0.
    waiters: AtomicUsize,
    failed: AtomicBool,
}

/// Spins a consumer makes, checking its slot, before it blocks: a publish usually lands within
/// a few microseconds, far less than a sleep and wake-up costs.
const SPINS_BEFORE_BLOCKING: u32 = 4096;

impl Exchange {
    fn publish(&self, slot: usize, bytes: Vec<u8>) {
        let _ = self.slots[slot].set(bytes);
        // Orders the slot's store before the `waiters` load (a consumer does the mirror image:
        // SeqCst increment, then re-reads the slot under the lock), so one of them sees the other.
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) > 0 {
            let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.ready.notify_all();
        }
    }

    fn wait(&self, slot: usize) -> Result<&[u8]> {
        for i in 0..SPINS_BEFORE_BLOCKING {
            if let Some(b) = self.slots[slot].get() {
                return Ok(b);
            }
            if i % 256 == 255 {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        let mut g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let result = loop {
            // Checked under the lock after announcing the wait: a publisher that set the slot
            // before seeing `waiters > 0` is caught here; one that sets it later takes the lock
            // and wakes us.
            if let Some(b) = self.slots[slot].get() {
                break Ok(b.as_slice());
            }
            if self.failed.load(Ordering::Acquire) {
                break Err(Error::WorkerStopped);
            }
            g = self.ready.wait(g).unwrap_or_else(|e| e.into_inner());
        };
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        drop(g);
        result
    }

    fn fail(&self) {
        self.failed.store(true, Ordering::Release);
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.ready.notify_all();
    }
}

/// Work and span of the replay dependency graph: nodes are applied changes, edges are
/// per-block LSN order and copy reads (a copy follows its source's earlier changes and
/// precedes its later ones). Each operation costs one unit.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct DependencyStats {
    /// Operations applied (a copy counts once).
    pub work: u64,
    /// Longest chain when every block is its own partition (the workload's own limit).
    pub span_blocks: u64,
    /// Longest chain with the partitioning used (chains per worker).
    pub span_workers: u64,
    /// work / span_blocks: the speedup no number of workers can exceed.
    pub bound_blocks: f64,
    /// work / span_workers: the speedup this partitioning can reach.
    pub bound_workers: f64,
    /// Copies whose source and destination have different owners.
    pub cross_worker_copies: u64,
}

#[derive(Default)]
struct DepTracker {
    block: FxHashMap<u64, u64>,
    worker: Vec<u64>,
    stats: DependencyStats,
}

impl DepTracker {
    /// One applied change of `dst` (owned by worker `wd`); a copy also reads `src` (owned by
    /// `ws`): it follows the source's earlier changes and precedes its later ones, and when
    /// the owners differ the source's owner spends one step publishing the bytes.
    fn apply(&mut self, dst: u64, wd: usize, src: Option<(u64, usize)>) {
        let mut start = self.block.get(&dst).copied().unwrap_or(0);
        let mut wstart = self.worker[wd];
        if let Some((s, ws)) = src {
            start = start.max(self.block.get(&s).copied().unwrap_or(0));
            if ws != wd {
                let p = self.worker[ws] + 1;
                self.worker[ws] = p;
                wstart = wstart.max(p);
                self.stats.span_workers = self.stats.span_workers.max(p);
            }
            let e = self.block.entry(s).or_insert(0);
            *e = (*e).max(start + 1);
        }
        self.block.insert(dst, start + 1);
        self.worker[wd] = wstart + 1;
        self.stats.work += 1;
        self.stats.span_blocks = self.stats.span_blocks.max(start + 1);
        self.stats.span_workers = self.stats.span_workers.max(wstart + 1);
    }
}

/// What the parallel replay did.
pub struct Pass2 {
    /// Replay counters, summed over workers.
    pub stats: ReplayStats,
}

fn load_record<'b>(
    journal: &Journal,
    bytes: &'b SegmentBytes,
    segment: u32,
    start: u64,
) -> Result<(crate::format::record::RecordHeader, Vec<u8>, &'b [u8])> {
    let meta = &journal.segments[segment as usize];
    let mut dec = SegmentDecoder::new_trusted(bytes, meta.header.block_size, meta.header.salt);
    dec.seek(start as usize, false);
    let changed = |offset: u64, kind| Error::Corrupt { path: meta.path.clone(), offset, kind };
    match dec.next_step() {
        Step::Record { bytes: rec, single: true, .. } => {
            // Borrow straight from the mapping when the record is one fragment.
            let (h, _) = decode_header_with(rec, false).map_err(|(o, k)| changed(start + o as u64, k))?;
            let off = start as usize + crate::format::fragment::FRAGMENT_HEADER_LEN;
            Ok((h, Vec::new(), &bytes[off..off + rec.len()]))
        }
        Step::Record { bytes: rec, .. } => {
            let (h, _) = decode_header_with(rec, false).map_err(|(o, k)| changed(start + o as u64, k))?;
            Ok((h, rec.to_vec(), &[]))
        }
        Step::Damage { offset, kind } => Err(changed(offset as u64, kind)),
        Step::End { offset } => Err(changed(offset as u64, CorruptKind::RecordTruncated)),
    }
}

/// How many tasks ahead a worker prefetches the journal record and the bytes it changes.
const PREFETCH_AHEAD: usize = 16;

#[expect(clippy::too_many_arguments, reason = "a worker's inputs are all distinct")]
fn worker_loop(
    me: usize,
    setup: &ParallelSetup,
    layout: &Layout,
    journal: &Journal,
    analysis: &Analysis,
    map: &ImageMap,
    store: &mut BlockStore,
    exchange: &Exchange,
    routed: &Routed,
    progress: &Tracker<'_>,
) -> Result<ReplayStats> {
    let parts = Partitioner::new(setup.workers, layout.block_count());
    let mut img = OwnedView { view: StoreView { map, store }, parts, me };
    let owns = move |b: u64| parts.of(b) == me;
    let mut stats = ReplayStats::default();
    let mut cur: Option<(u32, SegmentBytes)> = None;
    let mut batch_times = crate::progress::histogram();
    let slot_of = me + 1;
    // Records of the current batch (a publish is its consumer's record, not counted here).
    let (mut in_batch, mut batch_t0) = (0u64, Instant::now());
    let batch_ops = setup.batch_ops.max(1) as u64;
    // This worker's stream: its tasks of every chunk, chunk after chunk, which is LSN order.
    for (chunk, tasks) in routed.tasks.iter().enumerate() {
        let tasks = &tasks[me];
        let t0 = Instant::now();
        let base = routed.slot_base[chunk] as usize;
        for (i, &task) in tasks.iter().enumerate() {
            if exchange.failed.load(Ordering::Relaxed) {
                return Err(Error::WorkerStopped);
            }
            if !matches!(task, Task::Publish { .. }) {
                in_batch += 1;
                if in_batch == batch_ops {
                    let now = Instant::now();
                    let _ = batch_times.record((now - batch_t0).as_nanos().max(1) as u64);
                    progress.add(slot_of, in_batch, 0);
                    (in_batch, batch_t0) = (0, now);
                    if progress.cancelled() {
                        return Err(Error::WorkerStopped);
                    }
                }
            }
            let (segment, start) = task.at();
            if cur.as_ref().is_none_or(|(s, _)| *s != segment) {
                cur = Some((segment, journal.load(segment as usize)?));
            }
            // A worker reads only its own records, an irregular stride the hardware
            // prefetcher follows poorly: ask for a record a few tasks ahead.
            if let (Some(&next), Some((s, bytes))) = (tasks.get(i + PREFETCH_AHEAD), cur.as_ref()) {
                let (ns, nstart) = next.at();
                if ns == *s && next.skipped(analysis).is_none() {
                    crate::shadow::prefetch(bytes, nstart as usize);
                    if let Task::Apply { block, line, .. } = next {
                        if block != NO_BLOCK {
                            img.view.store.prefetch(map, u64::from(block), usize::from(line) * 64);
                        }
                    }
                }
            }
            match task.skipped(analysis) {
                Some(true) => {
                    stats.redo_skipped_revoked += 1;
                    continue;
                }
                Some(false) => {
                    stats.redo_skipped_superseded += 1;
                    continue;
                }
                None => {}
            }
            let Some((_, bytes)) = cur.as_ref() else { continue };
            let start = u64::from(start);
            let (h, owned, borrowed) = load_record(journal, bytes, segment, start)?;
            let rec_bytes: &[u8] = if owned.is_empty() { borrowed } else { &owned };
            let body = &rec_bytes[crate::format::record::RECORD_HEADER_LEN..];
            let rec = decode_body(&h, body).map_err(|(o, k)| Error::Corrupt {
                path: journal.segments[segment as usize].path.clone(),
                offset: start + o as u64,
                kind: k,
            })?;
            // Both sides of a hand-off see the same record and skip it alike.
            let skip = |rec: &Record<'_>| {
                analysis.rejected.contains(&h.lsn) || invalid_reason(layout, analysis.steal, rec).is_some()
            };
            match (task, rec) {
                (Task::Apply { .. }, rec) => redo_record(&mut img, layout, analysis, &owns, &h, &rec, &mut stats)?,
                (Task::Publish { .. } | Task::Consume { .. }, ref rec) if skip(rec) => {}
                (Task::Publish { slot, .. }, Record::Copy { src, src_offset, len, .. }) => {
                    let bytes = img.copy_source(h.lsn, src, src_offset as usize, len as usize)?;
                    exchange.publish(base + slot as usize, bytes);
                }
                (Task::Consume { slot, .. }, Record::Copy { dst, dst_offset, len, .. }) => {
                    if analysis.revoked_at(dst, h.lsn) {
                        stats.redo_skipped_revoked += 1;
                        continue;
                    }
                    if analysis.superseded(dst, h.lsn) {
                        stats.redo_skipped_superseded += 1;
                        continue;
                    }
                    if !analysis.redo_applies(h.txid) {
                        stats.redo_skipped_losers += 1;
                        continue;
                    }
                    let bytes = exchange.wait(base + slot as usize)?;
                    let (o, n) = (dst_offset as usize, len as usize);
                    img.write_bytes(dst, o, &bytes[..n])?;
                    stats.redo_applied += 1;
                }
                _ => {
                    return Err(Error::Config(format!("worker {me}: a copy task met a record that is not a copy")));
                }
            }
        }
        progress.add_busy(slot_of, t0.elapsed());
    }
    if in_batch > 0 {
        let _ = batch_times.record(batch_t0.elapsed().as_nanos().max(1) as u64);
        progress.add(slot_of, in_batch, 0);
    }
    if analysis.steal {
        let t0 = Instant::now();
        undo_losers(&mut img, layout, journal, analysis, &owns, &mut stats, None)?;
        progress.add_busy(slot_of, t0.elapsed());
    }
    progress.batch_apply.merge(&batch_times);
    Ok(stats)
}

/// A worker's view of the image: its own store, and a check that it only changes blocks its
/// partition owns (disjoint ownership is what lets workers replay without locks).
struct OwnedView<'a> {
    view: StoreView<'a>,
    parts: Partitioner,
    me: usize,
}

impl ImageBlocks for OwnedView<'_> {
    fn block_mut(&mut self, block: u64, overwrite: bool) -> Result<&mut [u8]> {
        if self.parts.of(block) != self.me {
            return Err(Error::Config(format!("worker {} changed block {block}, which it does not own", self.me)));
        }
        self.view.block_mut(block, overwrite)
    }

    fn block(&mut self, block: u64) -> Result<&[u8]> {
        if self.parts.of(block) != self.me {
            return Err(Error::Config(format!("worker {} read block {block}, which it does not own", self.me)));
        }
        self.view.block(block)
    }

    fn write_bytes(&mut self, block: u64, offset: usize, bytes: &[u8]) -> Result<bool> {
        if self.parts.of(block) != self.me {
            return Err(Error::Config(format!("worker {} changed block {block}, which it does not own", self.me)));
        }
        self.view.write_bytes(block, offset, bytes)
    }

    fn copy_reads(&mut self) -> Option<&mut crate::copylog::CopyReads> {
        self.view.copy_reads()
    }
}

/// The replay graph's work and span over the routed records, under the final analysis's
/// rules (asked for with `dependency_stats`: it walks every record once more, serially).
///
/// Recovery calls it after the redo phase, so its walk is not counted as replay time.
pub fn dependency_stats(
    routed: &Routed,
    workers: usize,
    block_count: u64,
    analysis: &Analysis,
) -> Option<DependencyStats> {
    let parts = Partitioner::new(workers, block_count);
    let entries = routed.entries.as_ref()?;
    let mut d = DepTracker { worker: vec![0; parts.workers()], ..DepTracker::default() };
    for e in entries.iter().flatten() {
        let (dst, src) = match e.kind {
            EntryKind::Other => continue,
            EntryKind::Change { block } => (block, None),
            EntryKind::Copy { src, dst } => (dst, Some(src)),
        };
        let wd = parts.of(dst);
        if let Some(ws) = src.map(|s| parts.of(s)).filter(|&ws| ws != wd) {
            let _ = ws;
            d.stats.cross_worker_copies += 1;
        }
        if analysis.redo_applies(e.txid) && !analysis.revoked_at(dst, e.lsn) && !analysis.superseded(dst, e.lsn) {
            d.apply(dst, wd, src.map(|s| (s, parts.of(s))));
        }
    }
    let mut s = d.stats;
    s.bound_blocks = s.work as f64 / s.span_blocks.max(1) as f64;
    s.bound_workers = s.work as f64 / s.span_workers.max(1) as f64;
    Some(s)
}

/// A worker's outcome: its counters.
type WorkerResult = Mutex<Option<Result<ReplayStats>>>;

/// Pass 2 (redo, then undo) in parallel: worker `w` replays the blocks partition `w` owns into
/// `stores[w]`, reading the rest of the image through `map`, from the tasks pass 1 routed to
/// it. Orphan cleanup and the write-back stay with the caller.
#[expect(clippy::too_many_arguments, reason = "the pass's inputs are all distinct")]
pub fn replay_parallel(
    setup: &ParallelSetup,
    layout: &Layout,
    journal: &Journal,
    analysis: &Analysis,
    routed: &Routed,
    map: &ImageMap,
    stores: &mut [BlockStore],
    progress: &Tracker<'_>,
) -> Result<Pass2> {
    let w = setup.workers;
    if stores.len() != w || routed.tasks.first().is_some_and(|t| t.len() != w) {
        return Err(Error::Config(format!("{} block stores and routing for {w} workers", stores.len())));
    }
    let stores: Vec<Mutex<Option<&mut BlockStore>>> = stores.iter_mut().map(|s| Mutex::new(Some(s))).collect();
    let exchange = Exchange {
        slots: (0..routed.slots).map(|_| OnceLock::new()).collect(),
        lock: Mutex::new(()),
        ready: Condvar::new(),
        waiters: AtomicUsize::new(0),
        failed: AtomicBool::new(false),
    };
    let results: Vec<WorkerResult> = (0..w).map(|_| Mutex::new(None)).collect();
    let run_worker = |me: usize| {
        let store = stores[me].lock().unwrap_or_else(|e| e.into_inner()).take();
        let r = match store {
            Some(store) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                worker_loop(me, setup, layout, journal, analysis, map, store, &exchange, routed, progress)
            }))
            // A panic is a bug, but it must not leave the other workers waiting forever.
            .unwrap_or_else(|_| Err(Error::Config(format!("recovery worker {me} panicked")))),
            None => Err(Error::Config(format!("worker {me} started twice"))),
        };
        if r.is_err() {
            exchange.fail();
        }
        *results[me].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
    };
    match setup.executor {
        // As in `run_tasks`: one worker runs on the recovery thread.
        _ if w == 1 => run_worker(0),
        Executor::Pinned => std::thread::scope(|s| {
            for p in &setup.plan.workers {
                let run_worker = &run_worker;
                s.spawn(move || {
                    if let Some(cpu) = p.cpu {
                        pin_current(cpu);
                        if setup.plan.nodes_available.len() > 1 {
                            if let Some(node) = p.node {
                                crate::topology::prefer_node(node);
                            }
                        }
                    }
                    run_worker(p.worker);
                });
            }
        }),
        Executor::Rayon => {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(w)
                .build()
                .map_err(|e| Error::Config(format!("cannot build the rayon pool: {e}")))?;
            // broadcast runs exactly one call per pool thread, all at once: a worker that
            // waits for a publish never blocks the thread that would produce it.
            pool.broadcast(|ctx| run_worker(ctx.index()));
        }
    }
    let mut stats = ReplayStats::default();
    let mut first_err: Option<Error> = None;
    for r in results {
        match r.into_inner().unwrap_or_else(|e| e.into_inner()) {
            Some(Ok(st)) => {
                stats.redo_applied += st.redo_applied;
                stats.redo_skipped_losers += st.redo_skipped_losers;
                stats.redo_skipped_revoked += st.redo_skipped_revoked;
                stats.redo_skipped_superseded += st.redo_skipped_superseded;
                stats.redo_skipped_home += st.redo_skipped_home;
                stats.undo_applied += st.undo_applied;
            }
            Some(Err(Error::WorkerStopped)) => {}
            Some(Err(e)) => {
                first_err.get_or_insert(e);
            }
            None => {
                first_err.get_or_insert(Error::Config("a recovery worker did not run".into()));
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    Ok(Pass2 { stats })
}
