//! Live progress of a recovery: phases, counters, smoothed rates and ETAs, cancellation, and
//! the statistics that end up in the report.
//!
//! Workers never call the observer. Each worker adds to its own cache-line-sized slot of
//! atomic counters (relaxed adds, no sharing), and one reporter thread, started only when
//! there is an observer, sums the slots every [`Monitor::interval`] and calls the
//! [`Observer`]. Phase changes are queued by the recovery thread with exact final counts and
//! handed to the observer by the same reporter thread, in order, so an observer sees:
//! `phase_started(p)`, any number of `progress(p)`, `phase_finished(p)`, for every phase of
//! [`Phase::ALL`] in that order, then `finished`.
//!
//! Phases with nothing to do (no checkpoint, no-steal undo) are still started and finished,
//! with a total of zero and a note, so a follower can rely on the sequence.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::error::{Error, Result};

/// Progress snapshots' schema version (the JSON Lines stream of `fastrec recover --progress json`).
pub const PROGRESS_SCHEMA: u32 = 1;

/// The phases of a recovery, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Opening the segments, validating their headers, checking the marker.
    Locate,
    /// Finding the start point: the newest valid checkpoint record (or, rebuilding from a
    /// snapshot, the newest valid snapshot chain).
    LoadCheckpoint,
    /// Reading and decoding the journal up to its durable end; analysis runs inside it.
    Scan,
    /// Settling each transaction's outcome (and, in parallel, merging the chunks' tables).
    Analyze,
    /// Rebuilding from a snapshot (`--from-snapshot` only): writing the chain's blocks that the
    /// image does not already hold.
    RestoreSnapshot,
    /// Applying committed changes (in parallel replay, each worker also undoes its losers).
    Redo,
    /// Rolling back the changes of transactions in flight at the crash (steal only).
    Undo,
    /// Freeing the inodes left on the orphan list.
    OrphanCleanup,
    /// Making the image durable (the copy log, the write-back of the blocks that differ, one
    /// fdatasync) and writing the marker.
    Flush,
    /// Finished.
    Done,
}

impl Phase {
    /// Every phase, in order.
    pub const ALL: [Phase; 10] = [
        Phase::Locate,
        Phase::LoadCheckpoint,
        Phase::Scan,
        Phase::Analyze,
        Phase::RestoreSnapshot,
        Phase::Redo,
        Phase::Undo,
        Phase::OrphanCleanup,
        Phase::Flush,
        Phase::Done,
    ];

    /// The name shown to people and written in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Locate => "locate",
            Phase::LoadCheckpoint => "load-checkpoint",
            Phase::Scan => "scan",
            Phase::Analyze => "analyze",
            Phase::RestoreSnapshot => "restore-snapshot",
            Phase::Redo => "redo",
            Phase::Undo => "undo",
            Phase::OrphanCleanup => "orphan-cleanup",
            Phase::Flush => "flush",
            Phase::Done => "done",
        }
    }

    /// What `done` and `total` count in this phase.
    pub fn unit(self) -> &'static str {
        match self {
            Phase::Locate => "segments",
            Phase::LoadCheckpoint => "checkpoints",
            Phase::Scan | Phase::Flush => "bytes",
            Phase::Analyze => "transactions",
            Phase::RestoreSnapshot => "blocks",
            Phase::Redo | Phase::Undo => "records",
            Phase::OrphanCleanup => "bitmap-blocks",
            Phase::Done => "phases",
        }
    }

    /// Position in [`Phase::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Whether the primary counter is the byte counter (else the operation counter).
    fn counts_bytes(self) -> bool {
        self.unit() == "bytes"
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Counters of one worker in the current phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct WorkerProgress {
    /// Worker number (0 is the recovery thread itself).
    pub worker: usize,
    /// Operations it completed in this phase (records, blocks).
    pub ops: u64,
    /// Bytes it completed in this phase.
    pub bytes: u64,
}

/// Where a recovery stands. Every field is about the current phase except `elapsed_s`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Snapshot {
    /// [`PROGRESS_SCHEMA`].
    pub schema: u32,
    /// The phase.
    pub phase: Phase,
    /// Its position in [`Phase::ALL`].
    pub phase_index: usize,
    /// What `done` and `total` count ([`Phase::unit`]).
    pub unit: &'static str,
    /// Units done; never decreases within a phase.
    pub done: u64,
    /// Units the phase has in all; equals `done` when the phase finishes.
    pub total: u64,
    /// Operations done (records scanned or applied, blocks restored).
    pub ops: u64,
    /// Bytes done (journal bytes scanned, image bytes restored or flushed).
    pub bytes: u64,
    /// Smoothed units per second (exponentially weighted over the intervals so far, time
    /// constant 2 s, bias-corrected so the first intervals are not pulled towards zero); the
    /// phase's average in `phase_finished`.
    pub rate: f64,
    /// Smoothed operations per second.
    pub ops_per_s: f64,
    /// Smoothed bytes per second.
    pub bytes_per_s: f64,
    /// Seconds until the phase ends at the smoothed rate; `None` until a rate is known, 0
    /// when the phase has finished.
    pub eta_s: Option<f64>,
    /// Seconds since the phase started.
    pub phase_elapsed_s: f64,
    /// Seconds since recovery started.
    pub elapsed_s: f64,
    /// Per-worker counters, when the phase runs on workers.
    pub workers: Vec<WorkerProgress>,
    /// Why the phase has nothing to do, or how it ran.
    pub note: Option<String>,
}

/// Receives a recovery's progress.
///
/// Every callback runs on one thread, `fastrec-progress`, started by [`Monitor`] for the
/// recovery's duration: never on a worker, so a slow observer cannot slow replay down (it only
/// delays the next snapshot). Callbacks are called in order and never concurrently. All have
/// no-op defaults.
pub trait Observer: Sync {
    /// A phase began. `done` is 0 and `total` is known (or 0 for an empty phase).
    fn phase_started(&self, _s: &Snapshot) {}
    /// A periodic snapshot, every [`Monitor::interval`] while a phase runs.
    fn progress(&self, _s: &Snapshot) {}
    /// A phase ended: `done == total`, `eta_s == Some(0.0)`, rates are the phase's averages.
    fn phase_finished(&self, _s: &Snapshot) {}
    /// The recovery ended, successfully or not (`error` holds its message then).
    fn finished(&self, _s: &Snapshot, _error: Option<&str>) {}
}

/// The JSON Lines observer behind `fastrec recover --progress json` (docs/REPORT.md): one
/// object per callback, the [`Snapshot`] plus `event` (`phase-start`, `progress`, `phase-end`,
/// `finished` or `failed`, the last with `error`), written to `W` a line at a time.
pub struct JsonLines<W> {
    out: Mutex<W>,
}

impl<W: std::io::Write + Send> JsonLines<W> {
    /// Writes to `out`.
    pub fn new(out: W) -> Self {
        JsonLines { out: Mutex::new(out) }
    }

    fn emit(&self, event: &str, s: &Snapshot, error: Option<&str>) {
        let Ok(mut v) = serde_json::to_value(s) else { return };
        if let Some(o) = v.as_object_mut() {
            o.insert("event".into(), event.into());
            if let Some(e) = error {
                o.insert("error".into(), e.into());
            }
        }
        let mut out = self.out.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // A closed output must not fail the recovery: progress is best effort.
        let _ = writeln!(out, "{v}").and_then(|()| out.flush());
    }
}

impl<W: std::io::Write + Send> Observer for JsonLines<W> {
    fn phase_started(&self, s: &Snapshot) {
        self.emit("phase-start", s, None);
    }
    fn progress(&self, s: &Snapshot) {
        self.emit("progress", s, None);
    }
    fn phase_finished(&self, s: &Snapshot) {
        self.emit("phase-end", s, None);
    }
    fn finished(&self, s: &Snapshot, error: Option<&str>) {
        self.emit(if error.is_some() { "failed" } else { "finished" }, s, error);
    }
}

/// How a recovery reports progress and how it can be stopped.
#[derive(Clone, Copy)]
pub struct Monitor<'a> {
    /// Who receives progress; `None` starts no reporter thread.
    pub observer: Option<&'a dyn Observer>,
    /// Time between snapshots. Default 1 s.
    pub interval: Duration,
    /// Set to true to cancel: recovery stops at its next safe point with
    /// [`Error::Cancelled`], and leaves the directory for the next recovery to complete.
    pub cancel: Option<&'a AtomicBool>,
}

impl Default for Monitor<'_> {
    fn default() -> Self {
        Monitor { observer: None, interval: Duration::from_secs(1), cancel: None }
    }
}

impl std::fmt::Debug for Monitor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor")
            .field("observer", &self.observer.is_some())
            .field("interval", &self.interval)
            .field("cancel", &self.cancel.map(|c| c.load(Ordering::Relaxed)))
            .finish()
    }
}

/// A worker's counters, alone on their cache lines so that workers never share one.
#[repr(align(128))]
#[derive(Default)]
struct Slot {
    ops: AtomicU64,
    bytes: AtomicU64,
    /// Nanoseconds the worker spent working (not waiting) in this phase.
    busy_ns: AtomicU64,
}

/// Latency distribution summary, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Latency {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest sample.
    pub max_us: f64,
}

/// A latency histogram several threads record into (each usually through a local one merged
/// at the end).
pub struct Recorder(Mutex<Histogram<u64>>);

/// A fresh histogram of nanoseconds, 1 ns to 1 hour, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("constant bounds are valid")
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder(Mutex::new(histogram()))
    }
}

impl Recorder {
    /// Adds one sample.
    pub fn record(&self, d: Duration) {
        let ns = d.as_nanos().clamp(1, u64::MAX as u128) as u64;
        self.lock().saturating_record(ns);
    }

    /// Adds every sample of `h`.
    pub fn merge(&self, h: &Histogram<u64>) {
        // Same bounds by construction; a mismatch would only lose samples.
        let _ = self.lock().add(h);
    }

    fn lock(&self) -> MutexGuard<'_, Histogram<u64>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The distribution's summary.
    pub fn summary(&self) -> Latency {
        let h = self.lock();
        if h.is_empty() {
            return Latency::default();
        }
        let us = |ns: u64| ns as f64 / 1e3;
        Latency {
            count: h.len(),
            p50_us: us(h.value_at_quantile(0.5)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
        }
    }
}

/// Wall and CPU time of one phase, and what it counted.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PhaseStat {
    /// The phase.
    pub phase: Phase,
    /// What `units` counts.
    pub unit: &'static str,
    /// Units done (the phase's final `done`).
    pub units: u64,
    /// Operations done.
    pub ops: u64,
    /// Bytes done.
    pub bytes: u64,
    /// Wall time, milliseconds.
    pub wall_ms: f64,
    /// CPU time of the whole process (every thread) during the phase, milliseconds; above
    /// `wall_ms` when workers ran in parallel.
    pub cpu_ms: f64,
    /// Why the phase had nothing to do, or how it ran.
    pub note: Option<String>,
}

/// One worker's busy and idle time in one parallel phase.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WorkerStat {
    /// The phase.
    pub phase: Phase,
    /// Worker number (1 and up; 0 is the recovery thread).
    pub worker: usize,
    /// Time spent decoding chunks or applying batches, milliseconds.
    pub busy_ms: f64,
    /// The phase's wall time minus `busy_ms`: waiting for work or for other workers.
    pub idle_ms: f64,
    /// Operations it completed.
    pub ops: u64,
}

/// Process CPU time (every thread), in seconds.
fn cpu_now() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant the kernel knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

enum Event {
    Started(Snapshot),
    Finished(Snapshot),
}

/// A bias-corrected exponentially weighted rate: `sum / weight` of the per-interval rates,
/// each older interval's weight decaying by e^(-dt/TAU_S). Early on it is the (recency
/// weighted) average of the few intervals seen, not a decay from zero, so the ETA is usable
/// from the first snapshots; intervals before the phase's first progress are left out (a
/// phase that is still opening files has no speed yet, not a speed of zero).
#[derive(Debug, Clone, Copy, Default)]
struct Ewma {
    sum: f64,
    weight: f64,
}

impl Ewma {
    fn add(&mut self, rate: f64, dt: f64) {
        let keep = (-dt / TAU_S).exp();
        self.sum = self.sum * keep + rate * (1.0 - keep);
        self.weight = self.weight * keep + (1.0 - keep);
    }

    fn rate(&self) -> Option<f64> {
        (self.weight > 0.0).then(|| self.sum / self.weight)
    }
}

struct Smooth {
    at: Instant,
    ops: u64,
    bytes: u64,
    ops_rate: Ewma,
    bytes_rate: Ewma,
}

struct State {
    phase: Phase,
    total: u64,
    workers: usize,
    note: Option<String>,
    phase_start: Instant,
    cpu_start: f64,
    /// Last emitted values, so what an observer sees never goes backwards within a phase.
    shown: (u64, u64, u64),
    smooth: Smooth,
    events: Vec<Event>,
    ended: Option<Option<String>>,
    stats: Vec<PhaseStat>,
    worker_stats: Vec<WorkerStat>,
}

/// The counters of one recovery, shared by its threads. Created by [`Tracker::new`].
pub struct Tracker<'a> {
    start: Instant,
    slots: Box<[Slot]>,
    cancel: Option<&'a AtomicBool>,
    /// Set as the phase [`Tracker::cancel_in`] names starts.
    forced: AtomicBool,
    /// Iterations of the reporter loop (a test checks it waits between snapshots).
    report_loops: AtomicU64,
    cancel_in: Option<Phase>,
    state: Mutex<State>,
    wake: Condvar,
    /// Time to apply one batch of redo operations (a worker's batch, or 1024 serial records).
    pub batch_apply: Recorder,
    /// Time to read one journal segment through the backend (see docs/REPORT.md).
    pub segment_read: Arc<Recorder>,
}

/// Time constant of the smoothed rates.
const TAU_S: f64 = 2.0;

impl<'a> Tracker<'a> {
    /// Counters for a recovery that uses at most `slots - 1` worker threads.
    pub fn new(slots: usize, cancel: Option<&'a AtomicBool>) -> Tracker<'a> {
        let now = Instant::now();
        Tracker {
            start: now,
            slots: (0..slots.max(1)).map(|_| Slot::default()).collect(),
            cancel,
            forced: AtomicBool::new(false),
            report_loops: AtomicU64::new(0),
            cancel_in: None,
            state: Mutex::new(State {
                phase: Phase::Locate,
                total: 0,
                workers: 0,
                note: None,
                phase_start: now,
                cpu_start: cpu_now(),
                shown: (0, 0, 0),
                smooth: Smooth { at: now, ops: 0, bytes: 0, ops_rate: Ewma::default(), bytes_rate: Ewma::default() },
                events: Vec::new(),
                ended: None,
                stats: Vec::new(),
                worker_stats: Vec::new(),
            }),
            wake: Condvar::new(),
            batch_apply: Recorder::default(),
            segment_read: Arc::new(Recorder::default()),
        }
    }

    /// Cancels as `phase` starts (a test hook: see `FaultPoint::CancelIn`).
    pub fn cancel_in(mut self, phase: Option<Phase>) -> Self {
        self.cancel_in = phase;
        self
    }

    /// A tracker nobody watches (benches, tests of single passes).
    pub fn quiet() -> Tracker<'static> {
        Tracker::new(1, None)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Worker slots available (slot 0 is the recovery thread's).
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    /// Adds to slot `slot`'s counters (an out-of-range slot shares the last one).
    #[inline]
    pub fn add(&self, slot: usize, ops: u64, bytes: u64) {
        let s = &self.slots[slot.min(self.slots.len() - 1)];
        if ops != 0 {
            s.ops.fetch_add(ops, Ordering::Relaxed);
        }
        if bytes != 0 {
            s.bytes.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    /// Sets the recovery thread's counters outright (positions, not increments).
    pub fn set_main(&self, ops: u64, bytes: u64) {
        self.slots[0].ops.store(ops, Ordering::Relaxed);
        self.slots[0].bytes.store(bytes, Ordering::Relaxed);
    }

    /// Whether cancellation was asked for.
    #[inline]
    pub fn cancelled(&self) -> bool {
        self.cancel.is_some_and(|c| c.load(Ordering::Relaxed)) || self.forced.load(Ordering::Relaxed)
    }

    /// [`Error::Cancelled`] when cancellation was asked for. `image_changed` says whether
    /// the image may already hold part of this recovery's work.
    pub fn check_cancel(&self, dir: &std::path::Path, image_changed: bool) -> Result<()> {
        if self.cancelled() {
            return Err(Error::Cancelled { dir: dir.to_path_buf(), phase: self.phase().name(), image_changed });
        }
        Ok(())
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.lock().phase
    }

    fn sums(&self, workers: usize) -> (u64, u64, Vec<WorkerProgress>) {
        let mut ops = 0;
        let mut bytes = 0;
        let mut per = Vec::new();
        for (i, s) in self.slots.iter().enumerate() {
            let (o, b) = (s.ops.load(Ordering::Relaxed), s.bytes.load(Ordering::Relaxed));
            ops += o;
            bytes += b;
            if workers > 0 && i >= 1 && i <= workers {
                per.push(WorkerProgress { worker: i, ops: o, bytes: b });
            }
        }
        (ops, bytes, per)
    }

    fn snapshot(&self, st: &State, done: u64, ops: u64, bytes: u64, workers: Vec<WorkerProgress>) -> Snapshot {
        Snapshot {
            schema: PROGRESS_SCHEMA,
            phase: st.phase,
            phase_index: st.phase.index(),
            unit: st.phase.unit(),
            done,
            total: st.total,
            ops,
            bytes,
            rate: 0.0,
            ops_per_s: 0.0,
            bytes_per_s: 0.0,
            eta_s: None,
            phase_elapsed_s: st.phase_start.elapsed().as_secs_f64(),
            elapsed_s: self.start.elapsed().as_secs_f64(),
            workers,
            note: st.note.clone(),
        }
    }

    /// Starts `phase`, which has `total` units and runs on `workers` worker slots (0: only on
    /// the recovery thread). The previous phase must have been finished.
    pub fn begin(&self, phase: Phase, total: u64, workers: usize) {
        if self.cancel_in == Some(phase) {
            self.forced.store(true, Ordering::Relaxed);
        }
        for s in self.slots.iter() {
            s.ops.store(0, Ordering::Relaxed);
            s.bytes.store(0, Ordering::Relaxed);
            s.busy_ns.store(0, Ordering::Relaxed);
        }
        let mut st = self.lock();
        let now = Instant::now();
        st.phase = phase;
        st.total = total;
        st.workers = workers.min(self.slots.len() - 1);
        st.note = None;
        st.phase_start = now;
        st.cpu_start = cpu_now();
        st.shown = (0, 0, 0);
        st.smooth = Smooth { at: now, ops: 0, bytes: 0, ops_rate: Ewma::default(), bytes_rate: Ewma::default() };
        let snap = self.snapshot(&st, 0, 0, 0, Vec::new());
        st.events.push(Event::Started(snap));
        drop(st);
        self.wake.notify_all();
    }

    /// Counts `ops` operations as done at the start of the phase (work that needs nothing,
    /// such as records with nothing to replay) without counting them into its rate.
    pub fn done_at_start(&self, ops: u64) {
        let mut st = self.lock();
        self.slots[0].ops.store(ops, Ordering::Relaxed);
        st.smooth.ops = ops;
    }

    /// Starts the current phase's counting over (a parallel scan that falls back to the
    /// serial one): counters, worker times and rates are cleared, and `note` says why. The
    /// only case where `done` goes back within a phase.
    pub fn restart(&self, note: &str) {
        for s in self.slots.iter() {
            s.ops.store(0, Ordering::Relaxed);
            s.bytes.store(0, Ordering::Relaxed);
            s.busy_ns.store(0, Ordering::Relaxed);
        }
        let mut st = self.lock();
        let now = Instant::now();
        st.workers = 0;
        st.shown = (0, 0, 0);
        st.smooth = Smooth { at: now, ops: 0, bytes: 0, ops_rate: Ewma::default(), bytes_rate: Ewma::default() };
        st.note = Some(note.into());
    }

    /// Revises the current phase's total (a scan that learns its journal's size late).
    pub fn set_total(&self, total: u64) {
        self.lock().total = total;
    }

    /// Attaches a note to the current phase (shown from the next snapshot on).
    pub fn note(&self, note: impl Into<String>) {
        self.lock().note = Some(note.into());
    }

    /// Ends the current phase with its exact counts: `done` units, `ops` operations and
    /// `bytes` bytes. `total` becomes `done` (a scan that met the durable end early did all
    /// its work too).
    pub fn finish(&self, done: u64, ops: u64, bytes: u64) {
        let mut st = self.lock();
        let (_, _, per) = self.sums(st.workers);
        let wall = st.phase_start.elapsed().as_secs_f64();
        let cpu = (cpu_now() - st.cpu_start).max(0.0);
        st.total = done;
        let mut snap = self.snapshot(&st, done, ops, bytes, per);
        let per_s = |x: u64| if wall > 0.0 { x as f64 / wall } else { 0.0 };
        snap.rate = per_s(done);
        snap.ops_per_s = per_s(ops);
        snap.bytes_per_s = per_s(bytes);
        snap.eta_s = Some(0.0);
        snap.phase_elapsed_s = wall;
        let stat = PhaseStat {
            phase: st.phase,
            unit: st.phase.unit(),
            units: done,
            ops,
            bytes,
            wall_ms: wall * 1e3,
            cpu_ms: cpu * 1e3,
            note: st.note.clone(),
        };
        st.stats.push(stat);
        for (i, slot) in self.slots.iter().enumerate().take(st.workers + 1).skip(1) {
            let busy = slot.busy_ns.load(Ordering::Relaxed);
            if busy > 0 {
                let (phase, ops) = (st.phase, slot.ops.load(Ordering::Relaxed));
                st.worker_stats.push(WorkerStat { phase, worker: i, busy_ms: busy as f64 / 1e6, idle_ms: 0.0, ops });
            }
        }
        st.events.push(Event::Finished(snap));
        drop(st);
        self.wake.notify_all();
    }

    /// An empty phase: started and finished at once, with `note` saying why.
    pub fn skip(&self, phase: Phase, note: &str) {
        self.begin(phase, 0, 0);
        self.note(note);
        self.finish(0, 0, 0);
    }

    /// Adds `busy` to slot `slot`'s working time in this phase; the phase's end turns each
    /// worker's time and operations into a [`WorkerStat`] (idle is the rest of the wall time).
    #[inline]
    pub fn add_busy(&self, slot: usize, busy: Duration) {
        let s = &self.slots[slot.min(self.slots.len() - 1)];
        s.busy_ns.fetch_add(busy.as_nanos().min(u128::from(u64::MAX)) as u64, Ordering::Relaxed);
    }

    /// Ends the recovery: runs the `done` phase and tells the reporter to stop after it.
    /// `error` is the failure's message, if the recovery failed.
    pub fn end(&self, error: Option<String>) {
        if self.lock().ended.is_some() {
            return;
        }
        if error.is_none() {
            self.begin(Phase::Done, 0, 0);
            self.finish(0, 0, 0);
        }
        self.lock().ended = Some(error);
        self.wake.notify_all();
    }

    /// Per-phase statistics so far, and per-worker statistics with idle time filled in.
    pub fn stats(&self) -> (Vec<PhaseStat>, Vec<WorkerStat>) {
        let st = self.lock();
        let mut workers = st.worker_stats.clone();
        for w in &mut workers {
            let wall = st.stats.iter().find(|p| p.phase == w.phase).map_or(0.0, |p| p.wall_ms);
            w.idle_ms = (wall - w.busy_ms).max(0.0);
        }
        (st.stats.clone(), workers)
    }

    /// A periodic snapshot of the running phase, with smoothed rates.
    fn tick(&self, st: &mut State) -> Snapshot {
        let (ops, bytes, per) = self.sums(st.workers);
        let now = Instant::now();
        let bytes_primary = st.phase.counts_bytes();
        let raw_done = if bytes_primary { bytes } else { ops };
        // Monotone and within the total, whatever order the workers' adds land in.
        let cap = |x: u64| if st.total > 0 { x.min(st.total) } else { x };
        let done = cap(raw_done).max(st.shown.0);
        let ops = ops.max(st.shown.1);
        let bytes = bytes.max(st.shown.2);
        st.shown = (done, ops, bytes);
        let dt = (now - st.smooth.at).as_secs_f64();
        if dt > 0.0 {
            let (d_ops, d_bytes) = (ops.saturating_sub(st.smooth.ops), bytes.saturating_sub(st.smooth.bytes));
            if d_ops > 0 || st.smooth.ops_rate.weight > 0.0 {
                st.smooth.ops_rate.add(d_ops as f64 / dt, dt);
            }
            if d_bytes > 0 || st.smooth.bytes_rate.weight > 0.0 {
                st.smooth.bytes_rate.add(d_bytes as f64 / dt, dt);
            }
            st.smooth.at = now;
            st.smooth.ops = ops;
            st.smooth.bytes = bytes;
        }
        let mut snap = self.snapshot(st, done, ops, bytes, per);
        snap.ops_per_s = st.smooth.ops_rate.rate().unwrap_or(0.0);
        snap.bytes_per_s = st.smooth.bytes_rate.rate().unwrap_or(0.0);
        snap.rate = if bytes_primary { snap.bytes_per_s } else { snap.ops_per_s };
        snap.eta_s = if st.total > 0 && snap.rate > 0.0 {
            Some(st.total.saturating_sub(done) as f64 / snap.rate)
        } else if st.total > 0 && done >= st.total {
            Some(0.0)
        } else {
            None
        };
        snap
    }

    /// The reporter loop: delivers queued phase events and a snapshot every `interval`
    /// until [`Tracker::end`].
    pub fn report(&self, observer: &dyn Observer, interval: Duration) {
        let mut next = Instant::now() + interval;
        loop {
            let mut st = self.lock();
            loop {
                if !st.events.is_empty() || st.ended.is_some() {
                    break;
                }
                let now = Instant::now();
                if now >= next {
                    break;
                }
                st = self.wake.wait_timeout(st, next - now).unwrap_or_else(std::sync::PoisonError::into_inner).0;
            }
            let events = std::mem::take(&mut st.events);
            let ended = st.ended.clone();
            // A tick only while a phase runs (after its start event, before its end event).
            let running = match events.last() {
                Some(Event::Finished(_)) => false,
                Some(Event::Started(_)) => true,
                None => !st.stats.iter().any(|p| p.phase == st.phase),
            };
            let due = Instant::now() >= next;
            let tick = (due && running && ended.is_none()).then(|| self.tick(&mut st));
            if due {
                // Also when no phase runs: a deadline left in the past would make the wait
                // above return at once, and this thread spin until the next phase.
                next = Instant::now() + interval;
            }
            self.report_loops.fetch_add(1, Ordering::Relaxed);
            let last = if ended.is_some() {
                Some(self.snapshot(&st, st.shown.0, st.shown.1, st.shown.2, Vec::new()))
            } else {
                None
            };
            drop(st);
            for e in &events {
                match e {
                    Event::Started(s) => observer.phase_started(s),
                    Event::Finished(s) => observer.phase_finished(s),
                }
            }
            if let Some(t) = tick {
                observer.progress(&t);
            }
            if let (Some(error), Some(mut last)) = (ended, last) {
                if error.is_none() {
                    last.eta_s = Some(0.0);
                }
                observer.finished(&last, error.as_deref());
                return;
            }
        }
    }
}

/// Runs `work` with a reporter thread feeding `monitor.observer`, if there is one. The
/// tracker gets `slots` counter slots.
pub fn with_reporter<T>(
    monitor: &Monitor<'_>,
    slots: usize,
    cancel_in: Option<Phase>,
    work: impl FnOnce(&Tracker<'_>) -> Result<T>,
) -> Result<T> {
    let tracker = Tracker::new(slots, monitor.cancel).cancel_in(cancel_in);
    let Some(observer) = monitor.observer else {
        let r = work(&tracker);
        tracker.end(r.as_ref().err().map(|e| e.to_string()));
        return r;
    };
    /// Ends the tracker if `work` panics: the scope waits for the reporter before it passes
    /// the panic on, and the reporter only stops when told the recovery ended.
    struct EndOnPanic<'t, 'a>(&'t Tracker<'a>);
    impl Drop for EndOnPanic<'_, '_> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                self.0.end(Some("recovery panicked".into()));
            }
        }
    }
    std::thread::scope(|s| {
        let t = &tracker;
        let interval = monitor.interval.max(Duration::from_millis(1));
        let reporter = std::thread::Builder::new()
            .name("fastrec-progress".into())
            .spawn_scoped(s, move || t.report(observer, interval));
        let guard = EndOnPanic(&tracker);
        let r = work(&tracker);
        drop(guard);
        tracker.end(r.as_ref().err().map(|e| e.to_string()));
        if let Ok(h) = reporter {
            // An observer that panicked loses its progress, not the recovery.
            let _ = h.join();
        }
        r
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Log(Mutex<Vec<(String, Snapshot)>>);
    impl Observer for Log {
        fn phase_started(&self, s: &Snapshot) {
            self.0.lock().unwrap_or_else(|e| e.into_inner()).push(("start".into(), s.clone()));
        }
        fn progress(&self, s: &Snapshot) {
            self.0.lock().unwrap_or_else(|e| e.into_inner()).push(("tick".into(), s.clone()));
        }
        fn phase_finished(&self, s: &Snapshot) {
            self.0.lock().unwrap_or_else(|e| e.into_inner()).push(("end".into(), s.clone()));
        }
        fn finished(&self, s: &Snapshot, e: Option<&str>) {
            assert!(e.is_none());
            self.0.lock().unwrap_or_else(|e| e.into_inner()).push(("finished".into(), s.clone()));
        }
    }

    #[test]
    fn ticks_are_monotone_smoothed_and_end_exact() {
        let log = Log::default();
        let m = Monitor { observer: Some(&log), interval: Duration::from_millis(5), cancel: None };
        with_reporter(&m, 3, None, |t| {
            t.begin(Phase::Scan, 1000, 2);
            for i in 0..20u64 {
                t.add(1 + (i as usize % 2), 1, 40);
                std::thread::sleep(Duration::from_millis(2));
            }
            t.finish(1000, 20, 1000);
            t.end(None);
            Ok(())
        })
        .expect("runs");
        let log = log.0.into_inner().unwrap_or_else(|e| e.into_inner());
        assert_eq!(log.first().map(|(k, _)| k.as_str()), Some("start"));
        let ticks: Vec<&Snapshot> = log.iter().filter(|(k, _)| k == "tick").map(|(_, s)| s).collect();
        assert!(ticks.len() >= 2, "expected several ticks in 40 ms at 5 ms, got {}", ticks.len());
        assert!(ticks.windows(2).all(|w| w[0].done <= w[1].done));
        assert!(ticks.iter().all(|s| s.done <= 1000 && s.workers.len() == 2));
        assert!(ticks.iter().any(|s| s.eta_s.is_some_and(|e| e > 0.0)), "a running phase has an ETA");
        let end = log.iter().find(|(k, _)| k == "end").map(|(_, s)| s).expect("end event");
        assert_eq!((end.done, end.total, end.eta_s), (1000, 1000, Some(0.0)));
        let kinds: Vec<&str> = log.iter().map(|(k, _)| k.as_str()).filter(|k| *k != "tick").collect();
        assert_eq!(kinds, ["start", "end", "start", "end", "finished"], "scan, then done");
    }

    #[test]
    fn smoothed_rate_starts_usable_and_follows_a_speed_change() {
        let t = Tracker::quiet();
        t.begin(Phase::Redo, 1_000_000, 0);
        let back = |t: &Tracker<'_>, secs: u64| t.lock().smooth.at -= Duration::from_secs(secs);
        // A second of opening files: no progress, no rate, no ETA (not an ETA of forever).
        back(&t, 1);
        let s0 = t.tick(&mut t.lock());
        assert_eq!((s0.rate, s0.eta_s), (0.0, None));
        // Then 1000/s: the very first measured interval gives the rate, not a fraction of it.
        back(&t, 1);
        t.set_main(1000, 0);
        let s1 = t.tick(&mut t.lock());
        assert!((s1.rate - 1000.0).abs() < 50.0, "first interval: {}", s1.rate);
        assert!(s1.eta_s.is_some_and(|e| (e - 999.0).abs() < 60.0), "{:?}", s1.eta_s);
        // Ten more seconds at 1000/s, then one at 100,000/s: the rate moves part of the way.
        back(&t, 10);
        t.set_main(11_000, 0);
        t.tick(&mut t.lock());
        back(&t, 1);
        t.set_main(111_000, 0);
        let s2 = t.tick(&mut t.lock());
        // keep = e^(-1/2) = 0.61: about 0.39 of the way from 1,000 to 100,000.
        assert!(s2.rate > 30_000.0 && s2.rate < 50_000.0, "smoothed: {}", s2.rate);
        // Work counted as done at the start adds to done, not to the rate.
        t.begin(Phase::Undo, 100, 0);
        t.done_at_start(90);
        back(&t, 1);
        t.set_main(95, 0);
        let s3 = t.tick(&mut t.lock());
        assert_eq!(s3.done, 95);
        assert!((s3.rate - 5.0).abs() < 0.5, "{}", s3.rate);
    }

    #[test]
    fn the_reporter_waits_between_phases_instead_of_spinning() {
        struct Nothing;
        impl Observer for Nothing {}
        let m = Monitor { observer: Some(&Nothing), interval: Duration::from_millis(5), cancel: None };
        let loops = with_reporter(&m, 1, None, |t| {
            t.begin(Phase::Scan, 10, 0);
            t.finish(10, 10, 0);
            // 200 ms with no phase running: about 40 intervals.
            std::thread::sleep(Duration::from_millis(200));
            Ok(t.report_loops.load(Ordering::Relaxed))
        })
        .expect("runs");
        assert!(loops < 200, "the reporter looped {loops} times in 200 ms at a 5 ms interval");
    }

    #[test]
    fn a_panicking_recovery_does_not_leave_the_reporter_waiting() {
        struct Nothing;
        impl Observer for Nothing {}
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let m = Monitor { observer: Some(&Nothing), interval: Duration::from_millis(5), cancel: None };
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                with_reporter(&m, 2, None, |t| -> Result<()> {
                    t.begin(Phase::Scan, 10, 0);
                    panic!("a bug in a recovery pass")
                })
            }));
            let _ = tx.send(r.is_err());
        });
        let panicked = rx.recv_timeout(Duration::from_secs(20)).expect("with_reporter returned (no hang)");
        assert!(panicked, "the panic reaches the caller");
    }

    #[test]
    fn a_restarted_phase_counts_from_zero() {
        let t = Tracker::new(3, None);
        t.begin(Phase::Scan, 1000, 2);
        t.add(1, 10, 900);
        t.add_busy(1, Duration::from_millis(5));
        t.restart("rescanning serially");
        t.set_main(1, 100);
        let s = t.tick(&mut t.lock());
        assert_eq!((s.done, s.ops, s.workers.len()), (100, 1, 0));
        assert_eq!(s.note.as_deref(), Some("rescanning serially"));
        t.finish(1000, 5, 1000);
        assert!(t.stats().1.is_empty(), "the abandoned pass's worker time is dropped");
    }

    #[test]
    fn cancel_flag_is_seen() {
        let flag = AtomicBool::new(false);
        let t = Tracker::new(1, Some(&flag));
        assert!(t.check_cancel(std::path::Path::new("/x"), false).is_ok());
        flag.store(true, Ordering::Relaxed);
        let e = t.check_cancel(std::path::Path::new("/x"), true).expect_err("cancelled");
        assert!(matches!(e, Error::Cancelled { image_changed: true, .. }), "{e}");
    }
}
