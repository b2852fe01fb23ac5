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
//! Routing threads (one per four workers, each over a contiguous run of chunks) send operations
//! to workers in batches over bounded queues; a worker drains its routers' queues in router
//! order, which is LSN order. A COPY whose source and destination belong to
//! different workers becomes two tasks: the source's owner *publishes* the source bytes when its
//! stream reaches the copy's LSN (after every earlier change of the source, before every later
//! one), the destination's owner *consumes* them, waiting on a condition variable if they are
//! not there yet (spinning briefly first). Every wait is for an event at a lower-or-equal LSN
//! in another worker's stream, so waits never form a cycle, and a batch holding a consume is
//! sent only after every batch holding a pending publish, so an unsent batch never hides the
//! publish a worker waits for. Then each worker undoes its own blocks' loser changes.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, OnceLock};
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
    /// Worker count (>= 2).
    pub workers: usize,
    /// Where workers run.
    pub plan: PinPlan,
    /// Thread kind.
    pub executor: Executor,
    /// Operations per batch sent to a worker.
    pub batch_ops: usize,
    /// Batches a worker's queue holds before the router waits.
    pub queue_batches: usize,
    /// Bytes of journal per pass-1 chunk (rounded to whole journal blocks).
    pub chunk_bytes: u64,
    /// Compute the dependency graph's work and span while routing (costs a hash lookup per
    /// operation on the routing thread).
    pub dependency_stats: bool,
}

/// One durable record, as pass 2 routes it.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    lsn: u64,
    txid: u64,
    segment: u32,
    start: u64,
    kind: EntryKind,
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
) -> Result<ChunkOut<'a>> {
    let meta = &journal.segments[chunk.segment];
    let bytes = journal.load(chunk.segment)?;
    let mut dec = SegmentDecoder::new(&bytes, meta.header.block_size, meta.header.salt);
    // Fragments continuing a record that started before this chunk belong to the previous one.
    dec.seek(chunk.start, true);
    let mut out = ChunkOut {
        analyzer: Analyzer::new_partial(layout, journal).with_start(filter.clone()),
        entries: Vec::new(),
        first_lsn: None,
        last_lsn: 0,
        last_end: None,
        optional: 0,
        covered: 0,
        home: 0,
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
                out.entries.push(Entry {
                    lsn: h.lsn,
                    txid: h.txid,
                    segment: chunk.segment as u32,
                    start: start as u64,
                    kind,
                });
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

/// Runs `tasks` calls of `f(task, worker)` on the setup's workers (numbered from 1).
fn run_tasks<T: Send>(setup: &ParallelSetup, tasks: usize, f: &(dyn Fn(usize, usize) -> T + Sync)) -> Vec<T> {
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
    /// Durable records in LSN order, chunk by chunk.
    pub entries: Vec<Vec<Entry>>,
    /// Chunks decoded.
    pub chunks: usize,
    /// Records left unrouted because the checkpoint's dirty block table says they are home.
    pub home: u64,
}

/// Pass 1 in parallel. `Ok(None)` means "use the serial path" (see the module docs).
/// `need_touched` asks for [`Analysis::touched`] to hold every block records change (the
/// `pwrite` image path plans its windows with it); without it, only the metadata blocks.
/// Records of `entries` that pass 2 routes to a worker (the rest need no replay).
pub fn routed(entries: &[Vec<Entry>]) -> u64 {
    entries.iter().flatten().filter(|e| !matches!(e.kind, EntryKind::Other)).count() as u64
}

/// Workers count their chunks' records and bytes in `progress` and stop early on a
/// cancellation.
pub fn scan_parallel<'a>(
    layout: &'a Layout,
    journal: &'a Journal,
    mode: RecoveryMode,
    setup: &ParallelSetup,
    need_touched: bool,
    start: Option<Arc<StartFilter>>,
    progress: &Tracker<'_>,
) -> Result<Option<Pass1<'a>>> {
    if mode == RecoveryMode::SkipCorrupt {
        return Ok(None);
    }
    let chunks = plan_chunks(journal, setup.chunk_bytes);
    let outs = run_tasks(setup, chunks.len(), &|i, w| {
        if progress.cancelled() {
            return Err(Error::WorkerStopped);
        }
        let t = Instant::now();
        let c = &chunks[i];
        let r = decode_chunk(layout, journal, c, &start);
        let n = r.as_ref().map_or(0, |o| o.entries.len() as u64 + o.covered + o.home);
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
    let mut entries: Vec<Vec<Entry>> = Vec::new();
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
            if !out.entries.is_empty() {
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
        outcome.records += out.entries.len() as u64 + out.covered + out.home;
        home += out.home;
        outcome.optional_records += out.optional;
        entries.push(out.entries);
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
    if need_touched {
        let mut blocks: Vec<u64> = entries
            .iter()
            .flatten()
            .flat_map(|e| match e.kind {
                EntryKind::Change { block } => [Some(block), None],
                EntryKind::Copy { src, dst } => [Some(dst), Some(src)],
                EntryKind::Other => [None, None],
            })
            .flatten()
            .collect();
        blocks.sort_unstable();
        blocks.dedup();
        analyzer.add_touched(blocks);
    }
    Ok(Some(Pass1 { outcome, analyzer, entries, chunks: chunks.len(), home }))
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

enum Task {
    Apply { segment: u32, start: u64 },
    Publish { segment: u32, start: u64, slot: usize },
    Consume { segment: u32, start: u64, slot: usize },
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
    /// Replay counters, summed over workers and the router.
    pub stats: ReplayStats,
    /// The dependency graph's work and span, when asked for.
    pub deps: Option<DependencyStats>,
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
    rxs: Vec<mpsc::Receiver<Vec<Task>>>,
    progress: &Tracker<'_>,
) -> Result<ReplayStats> {
    let parts = Partitioner::new(setup.workers, layout.block_count());
    let mut img = OwnedView { view: StoreView { map, store }, parts, me };
    let owns = move |b: u64| parts.of(b) == me;
    let mut stats = ReplayStats::default();
    let mut cur: Option<(u32, SegmentBytes)> = None;
    // One queue per router, drained in router order: together they are this worker's stream
    // in LSN order.
    let mut batch_times = crate::progress::histogram();
    let slot = me + 1;
    for batch in rxs.into_iter().flatten() {
        if progress.cancelled() {
            return Err(Error::WorkerStopped);
        }
        let t0 = Instant::now();
        let n = batch.iter().filter(|t| !matches!(t, Task::Publish { .. })).count() as u64;
        for task in batch {
            if exchange.failed.load(Ordering::Relaxed) {
                return Err(Error::WorkerStopped);
            }
            let (Task::Apply { segment, start }
            | Task::Publish { segment, start, .. }
            | Task::Consume { segment, start, .. }) = task;
            if cur.as_ref().is_none_or(|(s, _)| *s != segment) {
                cur = Some((segment, journal.load(segment as usize)?));
            }
            let Some((_, bytes)) = cur.as_ref() else { continue };
            let (h, owned, borrowed) = load_record(journal, bytes, segment, start)?;
            let rec_bytes: &[u8] = if owned.is_empty() { borrowed } else { &owned };
            let body = &rec_bytes[crate::format::record::RECORD_HEADER_LEN..];
            let rec = decode_body(&h, body).map_err(|(o, k)| Error::Corrupt {
                path: journal.segments[segment as usize].path.clone(),
                offset: start + o as u64,
                kind: k,
            })?;
            let skip = analysis.rejected.contains(&h.lsn) || invalid_reason(layout, analysis.steal, &rec).is_some();
            match (task, rec) {
                (Task::Apply { .. }, rec) => redo_record(&mut img, layout, analysis, &owns, &h, &rec, &mut stats)?,
                // Both sides of a hand-off see the same record and skip it alike.
                (Task::Publish { .. } | Task::Consume { .. }, _) if skip => {}
                (Task::Publish { slot, .. }, Record::Copy { src, src_offset, len, .. }) => {
                    let bytes = img.copy_source(h.lsn, src, src_offset as usize, len as usize)?;
                    exchange.publish(slot, bytes);
                }
                (Task::Consume { slot, .. }, Record::Copy { dst, dst_offset, len, .. }) => {
                    if !analysis.redo_applies(h.txid) {
                        stats.redo_skipped_losers += 1;
                        continue;
                    }
                    if analysis.revoked_at(dst, h.lsn) {
                        stats.redo_skipped_revoked += 1;
                        continue;
                    }
                    if analysis.superseded(dst, h.lsn) {
                        stats.redo_skipped_superseded += 1;
                        continue;
                    }
                    let bytes = exchange.wait(slot)?;
                    let (o, n) = (dst_offset as usize, len as usize);
                    img.write_bytes(dst, o, &bytes[..n])?;
                    stats.redo_applied += 1;
                }
                _ => {
                    return Err(Error::Config(format!("worker {me}: a copy task met a record that is not a copy")));
                }
            }
        }
        let took = t0.elapsed();
        let _ = batch_times.record(took.as_nanos().max(1) as u64);
        progress.add_busy(slot, took);
        progress.add(slot, n, 0);
    }
    if analysis.steal {
        let t0 = Instant::now();
        undo_losers(&mut img, layout, journal, analysis, &owns, &mut stats, None)?;
        progress.add_busy(slot, t0.elapsed());
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

/// Routes the operations of `entries` (a contiguous run of chunks) to the workers' queues.
/// Copy hand-offs use slots from `first_slot` on.
fn route(
    setup: &ParallelSetup,
    parts: Partitioner,
    analysis: &Analysis,
    entries: &[Vec<Entry>],
    first_slot: usize,
    senders: Vec<mpsc::SyncSender<Vec<Task>>>,
) -> Option<DependencyStats> {
    let w = setup.workers;
    let mut batches: Vec<Vec<Task>> = (0..w).map(|_| Vec::with_capacity(setup.batch_ops)).collect();
    // Workers whose unsent batch holds a publish, and whether a worker's unsent batch holds a
    // consume: a batch with a consume is only sent after every pending publish, so no
    // consumer ever waits on a publish that is still sitting in an unsent batch.
    let mut publishes_pending = vec![false; w];
    let mut consumes_pending = vec![false; w];
    let mut deps = setup.dependency_stats.then(|| DepTracker { worker: vec![0; w], ..DepTracker::default() });
    let mut slot = first_slot;
    let mut alive = true;
    let mut send = |i: usize, batches: &mut Vec<Vec<Task>>, publishes: &mut Vec<bool>, consumes: &mut Vec<bool>| {
        if consumes[i] {
            for j in 0..w {
                if publishes[j] && alive {
                    let b = std::mem::replace(&mut batches[j], Vec::with_capacity(setup.batch_ops));
                    alive = senders[j].send(b).is_ok();
                    publishes[j] = false;
                    consumes[j] = false;
                }
            }
        }
        if alive && !batches[i].is_empty() {
            let b = std::mem::replace(&mut batches[i], Vec::with_capacity(setup.batch_ops));
            // A closed queue means its worker failed; its error is collected by the caller.
            alive = senders[i].send(b).is_ok();
        }
        publishes[i] = false;
        consumes[i] = false;
    };
    // Routing is kept to a partition hash and a push: deciding what to skip is the workers'
    // job (they run `redo_record`'s rules), so the one routing thread never limits them.
    for e in entries.iter().flatten() {
        let (dst, src) = match e.kind {
            EntryKind::Other => continue,
            EntryKind::Change { block } => (block, None),
            EntryKind::Copy { src, dst } => (dst, Some(src)),
        };
        let wd = parts.of(dst);
        if let Some(d) = deps.as_mut() {
            if analysis.redo_applies(e.txid) && !analysis.revoked_at(dst, e.lsn) && !analysis.superseded(dst, e.lsn) {
                d.apply(dst, wd, src.map(|s| (s, parts.of(s))));
            }
        }
        match src.map(|s| parts.of(s)) {
            Some(ws) if ws != wd => {
                if let Some(d) = deps.as_mut() {
                    d.stats.cross_worker_copies += 1;
                }
                batches[ws].push(Task::Publish { segment: e.segment, start: e.start, slot });
                publishes_pending[ws] = true;
                if batches[ws].len() >= setup.batch_ops {
                    send(ws, &mut batches, &mut publishes_pending, &mut consumes_pending);
                }
                batches[wd].push(Task::Consume { segment: e.segment, start: e.start, slot });
                consumes_pending[wd] = true;
                slot += 1;
            }
            _ => batches[wd].push(Task::Apply { segment: e.segment, start: e.start }),
        }
        if batches[wd].len() >= setup.batch_ops {
            send(wd, &mut batches, &mut publishes_pending, &mut consumes_pending);
        }
    }
    for i in 0..w {
        consumes_pending[i] = true; // flush publishes first, then everything
        send(i, &mut batches, &mut publishes_pending, &mut consumes_pending);
    }
    deps.map(|d| {
        let mut s = d.stats;
        s.bound_blocks = s.work as f64 / s.span_blocks.max(1) as f64;
        s.bound_workers = s.work as f64 / s.span_workers.max(1) as f64;
        s
    })
}

/// A worker's queues, one per router, taken by the worker when it starts.
type WorkerQueues = Mutex<Option<Vec<mpsc::Receiver<Vec<Task>>>>>;

/// One router's share: its run of chunks, its first hand-off slot, its queues (one per worker).
type RouterJob = (std::ops::Range<usize>, usize, Vec<mpsc::SyncSender<Vec<Task>>>);

fn spawn_routers<'scope, 'env>(
    s: &'scope std::thread::Scope<'scope, 'env>,
    jobs: Vec<RouterJob>,
    setup: &'env ParallelSetup,
    parts: Partitioner,
    analysis: &'env Analysis,
    entries: &'env [Vec<Entry>],
) -> Vec<std::thread::ScopedJoinHandle<'scope, Option<DependencyStats>>> {
    jobs.into_iter()
        .map(|(g, first, tx)| s.spawn(move || route(setup, parts, analysis, &entries[g], first, tx)))
        .collect()
}

fn join_routers(handles: Vec<std::thread::ScopedJoinHandle<'_, Option<DependencyStats>>>) -> Option<DependencyStats> {
    handles.into_iter().filter_map(|h| h.join().ok()).fold(None, |acc, d| acc.or(d))
}

/// Splits `entries` (chunks) into at most `n` contiguous runs of about equal operation counts.
fn split_runs(entries: &[Vec<Entry>], n: usize) -> Vec<std::ops::Range<usize>> {
    let total: usize = entries.iter().map(Vec::len).sum();
    let per = total.div_ceil(n.max(1)).max(1);
    let mut runs = Vec::with_capacity(n);
    let (mut start, mut acc) = (0, 0);
    for (i, e) in entries.iter().enumerate() {
        acc += e.len();
        if acc >= per && runs.len() + 1 < n {
            runs.push(start..i + 1);
            start = i + 1;
            acc = 0;
        }
    }
    runs.push(start..entries.len());
    runs
}

/// A worker's outcome: its counters.
type WorkerResult = Mutex<Option<Result<ReplayStats>>>;

/// Pass 2 (redo, then undo) in parallel: worker `w` replays the blocks partition `w` owns into
/// `stores[w]`, reading the rest of the image through `map`. Orphan cleanup and the
/// write-back stay with the caller.
#[expect(clippy::too_many_arguments, reason = "the pass's inputs are all distinct")]
pub fn replay_parallel(
    setup: &ParallelSetup,
    layout: &Layout,
    journal: &Journal,
    analysis: &Analysis,
    entries: &[Vec<Entry>],
    map: &ImageMap,
    stores: &mut [BlockStore],
    progress: &Tracker<'_>,
) -> Result<Pass2> {
    let w = setup.workers;
    if stores.len() != w {
        return Err(Error::Config(format!("{} block stores for {w} workers", stores.len())));
    }
    let parts = Partitioner::new(w, layout.block_count());
    let stores: Vec<Mutex<Option<&mut BlockStore>>> = stores.iter_mut().map(|s| Mutex::new(Some(s))).collect();
    let copies = entries.iter().flatten().filter(|e| matches!(e.kind, EntryKind::Copy { .. })).count();
    let exchange = Exchange {
        slots: (0..copies).map(|_| OnceLock::new()).collect(),
        lock: Mutex::new(()),
        ready: Condvar::new(),
        waiters: AtomicUsize::new(0),
        failed: AtomicBool::new(false),
    };
    // One routing thread keeps up with a few workers; more workers get more routers, each
    // over a contiguous run of chunks (dependency stats need the one router's global view).
    let routers = if setup.dependency_stats { 1 } else { w.div_ceil(4) }.clamp(1, entries.len().max(1));
    let groups = split_runs(entries, routers);
    let mut first_slots = Vec::with_capacity(groups.len());
    let mut slots_so_far = 0;
    for g in &groups {
        first_slots.push(slots_so_far);
        slots_so_far +=
            entries[g.clone()].iter().flatten().filter(|e| matches!(e.kind, EntryKind::Copy { .. })).count();
    }
    let mut senders: Vec<Vec<mpsc::SyncSender<Vec<Task>>>> = Vec::with_capacity(groups.len());
    let mut receivers: Vec<Vec<mpsc::Receiver<Vec<Task>>>> = (0..w).map(|_| Vec::with_capacity(groups.len())).collect();
    for _ in &groups {
        let (tx, rx): (Vec<_>, Vec<_>) = (0..w).map(|_| mpsc::sync_channel::<Vec<Task>>(setup.queue_batches)).unzip();
        senders.push(tx);
        for (worker, r) in rx.into_iter().enumerate() {
            receivers[worker].push(r);
        }
    }
    let receivers: Vec<WorkerQueues> = receivers.into_iter().map(|r| Mutex::new(Some(r))).collect();
    let results: Vec<WorkerResult> = (0..w).map(|_| Mutex::new(None)).collect();
    let run_worker = |me: usize| {
        let rxs = receivers[me].lock().unwrap_or_else(|e| e.into_inner()).take();
        let store = stores[me].lock().unwrap_or_else(|e| e.into_inner()).take();
        let r = match (rxs, store) {
            (Some(rxs), Some(store)) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                worker_loop(me, setup, layout, journal, analysis, map, store, &exchange, rxs, progress)
            }))
            // A panic is a bug, but it must not leave the other workers waiting forever.
            .unwrap_or_else(|_| Err(Error::Config(format!("recovery worker {me} panicked")))),
            _ => Err(Error::Config(format!("worker {me} started twice"))),
        };
        if r.is_err() {
            exchange.fail();
        }
        *results[me].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
    };
    let jobs: Vec<RouterJob> =
        groups.into_iter().zip(first_slots).zip(senders).map(|((g, f), tx)| (g, f, tx)).collect();
    let mut deps = None;
    match setup.executor {
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
            deps = join_routers(spawn_routers(s, jobs, setup, parts, analysis, entries));
        }),
        Executor::Rayon => {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(w)
                .build()
                .map_err(|e| Error::Config(format!("cannot build the rayon pool: {e}")))?;
            std::thread::scope(|s| {
                let routers = spawn_routers(s, jobs, setup, parts, analysis, entries);
                // broadcast runs exactly one call per pool thread, all at once: a worker that
                // waits for a publish never blocks the thread that would produce it.
                pool.broadcast(|ctx| run_worker(ctx.index()));
                deps = join_routers(routers);
            });
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
    Ok(Pass2 { stats, deps })
}
