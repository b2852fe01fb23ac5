//! The recovery pipeline: lock -> locate -> scan + analysis -> (per window) redo, undo,
//! orphan cleanup, write-back -> fsync -> mark recovered.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::analysis::{Analysis, Analyzer, InvalidNote, RecordCounts, StartFilter, TxnOutcome};
use crate::checkpoint;
use crate::dir::fsync_dir;
use crate::dir::{IMAGE_FILE, JOURNAL_DIR, LOCK_FILE, MARKER_FILE};
use crate::error::{Error, Result};
use crate::image::Layout;
use crate::io::cache::Residency;
use crate::io::{IoBackend, IoOptions};
use crate::journal::{Journal, LocateNote};
use crate::parallel::{self, DependencyStats, Executor, ParallelSetup};
use crate::progress::{self, Latency, Monitor, Phase, PhaseStat, Tracker, WorkerStat};
use crate::replay::{self, BlockCache, FaultPoint, ReplayStats};
use crate::scan::{self, SkippedRange, TailCut};
use crate::snapshot;
use crate::topology::{PinMode, PinPlan, Topology};

/// What recovery may do with damaged journal bytes. Each mode states exactly what it may
/// lose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecoveryMode {
    /// Default. Damage after which nothing valid follows is a torn tail: the journal is cut at
    /// the last valid record and what follows is treated as never written (it was never
    /// acknowledged as durable). A last segment with a short header is ignored the same way.
    /// Damage followed by valid records is an error: the image is left untouched.
    #[default]
    TolerateTail,
    /// Any damage, a torn tail included, is an error and the image is left byte-for-byte
    /// untouched. Zero fill after the last record (unwritten space) is not damage.
    Absolute,
    /// Damaged records and segment headers are skipped and each is reported. Loses the
    /// skipped records; a transaction that lost any record, or logged an impossible one, is
    /// treated as a loser (never half-applied), even if its commit survived.
    SkipCorrupt,
}

impl std::str::FromStr for RecoveryMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "tolerate-tail" => Ok(RecoveryMode::TolerateTail),
            "absolute" => Ok(RecoveryMode::Absolute),
            "skip-corrupt" => Ok(RecoveryMode::SkipCorrupt),
            _ => Err(Error::Config(format!(
                "unknown recovery mode `{s}` (expected tolerate-tail, absolute or skip-corrupt)"
            ))),
        }
    }
}

impl std::fmt::Display for RecoveryMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RecoveryMode::TolerateTail => "tolerate-tail",
            RecoveryMode::Absolute => "absolute",
            RecoveryMode::SkipCorrupt => "skip-corrupt",
        })
    }
}

/// How recovery reads and writes the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageIo {
    /// Map the image and build the changed blocks in anonymous memory (a shadow image, see
    /// [`crate::shadow`]); at the end store back through the mapping only the blocks that
    /// differ from the file, then one fdatasync. Default. Changed blocks that would not fit
    /// the memory budget are replayed in windows instead (journals with copies excepted).
    #[default]
    Mmap,
    /// Copy the changed blocks into an anonymous cache bounded by the memory budget (windows
    /// when they do not fit), then write them back with coalesced pwrite calls and fsync.
    Pwrite,
}

impl std::str::FromStr for ImageIo {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "mmap" => Ok(ImageIo::Mmap),
            "pwrite" => Ok(ImageIo::Pwrite),
            _ => Err(Error::Config(format!("unknown image I/O `{s}` (expected mmap or pwrite)"))),
        }
    }
}

/// Smallest accepted memory budget.
pub const MEMORY_BUDGET_MIN: u64 = 1 << 20;

/// Recovery settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RecoverOptions {
    /// Damage handling. Default [`RecoveryMode::TolerateTail`].
    pub mode: RecoveryMode,
    /// How journal segments are read. Default: [`IoBackend::Auto`] with the defaults of
    /// [`IoOptions`].
    pub io: IoOptions,
    /// How the image is changed. Default [`ImageIo::Mmap`].
    pub image_io: ImageIo,
    /// Bytes the image block cache may use; more touched blocks than fit are recovered in
    /// several windows. Default 1 GiB, minimum 1 MiB.
    pub memory_budget_bytes: u64,
    /// Replay even when the marker says this journal was already recovered. Default false.
    pub force: bool,
    /// Test hook: simulate a crash at a named point. Default none.
    pub fault: Option<FaultPoint>,
    /// Worker threads; `None` means one per available CPU. Capped at `workers_max`. 1 means
    /// serial recovery.
    pub workers: Option<usize>,
    /// Upper bound on workers. Default 16, minimum 1.
    pub workers_max: usize,
    /// Below this many durable records, replay stays serial (threads would cost more than
    /// they save). Default 10,000.
    pub parallel_threshold: u64,
    /// Where pinned workers run (with [`Executor::Pinned`]). Default [`PinMode::Numa`].
    pub pin: PinMode,
    /// Restrict workers to these NUMA node ids (bit N = node N); `None`: all nodes. Naming a
    /// node the machine does not have is an error.
    pub numa_nodes_mask: Option<u64>,
    /// Dedicated pinned threads or a rayon pool. Default [`Executor::Rayon`] (see its docs).
    pub executor: Executor,
    /// Records a replay worker applies between progress updates and cancellation checks (its
    /// "batch" in the latency histogram). Default 1024, minimum 1.
    pub batch_ops: usize,
    /// Journal bytes per parallel-scan chunk (rounded to whole journal blocks). Default 1 MiB.
    pub chunk_bytes: u64,
    /// Compute the replay dependency graph's work and span (routed replay only; a walk over
    /// the routed records after the redo phase) and, with several workers, the whole
    /// recovery's work/span bound ([`WholeBound`]). Default false.
    pub dependency_stats: bool,
    /// Start from the newest valid checkpoint record. Default true; false replays the whole
    /// journal (which must then begin at its first segment).
    pub use_checkpoints: bool,
    /// Rebuild the image from the newest valid snapshot chain plus the journal after it (the
    /// image may be missing or damaged), instead of starting from a checkpoint record. Default
    /// false.
    pub from_snapshot: bool,
    /// After a recovery that changed anything, write a checkpoint record at the journal's end
    /// (kind emergency, empty tables: the image is durable whole), so that a writer that
    /// resumes on this directory appends after it and no later recovery reads the old journal
    /// again: its losers are never undone twice, over blocks the resumed writer reused.
    /// Default true.
    pub final_checkpoint: bool,
}

impl Default for RecoverOptions {
    fn default() -> Self {
        RecoverOptions {
            mode: RecoveryMode::default(),
            io: IoOptions::default(),
            image_io: ImageIo::default(),
            memory_budget_bytes: 1 << 30,
            force: false,
            fault: None,
            workers: None,
            workers_max: 16,
            parallel_threshold: 10_000,
            pin: PinMode::default(),
            numa_nodes_mask: None,
            executor: Executor::default(),
            batch_ops: 1024,
            chunk_bytes: 1 << 20,
            dependency_stats: false,
            use_checkpoints: true,
            from_snapshot: false,
            final_checkpoint: true,
        }
    }
}

/// How a recovery used its workers.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ParallelReport {
    /// Workers used (1: serial).
    pub workers: usize,
    /// CPUs available to this process.
    pub cpus: usize,
    /// How pass 1 (scan and analysis) ran, and why.
    pub scan: String,
    /// How pass 2 (redo and undo) ran, and why.
    pub replay: String,
    /// Executor used for parallel passes.
    pub executor: Executor,
    /// The pinning plan, when workers > 1.
    pub plan: Option<PinPlan>,
    /// Work and span of the replay dependency graph, when replay ran in parallel.
    pub dependencies: Option<DependencyStats>,
    /// Chunks of the parallel scan (0: the scan ran serially).
    pub scan_chunks: usize,
    /// Work and span of the whole recovery, with `dependency_stats` (see [`WholeBound`]).
    pub whole: Option<WholeBound>,
    /// Things the operator should know (e.g. more workers than CPUs).
    pub warnings: Vec<String>,
}

/// Work and span of a whole recovery, measured in this run, milliseconds: the ceiling on the
/// speedup its worker count could give, with every phase counted, not replay alone.
///
/// A phase's *work* is the CPU time of every thread during it where that exceeds its wall
/// time (it ran on several threads), else its wall time (one thread, or waiting for I/O).
/// Its *floor* is the least wall time it could take on `workers` workers: work / workers for
/// the parallel scan (but at least one chunk's share: work / chunks), work / the replay
/// graph's bound with these partitions for redo (at least work / its per-block bound), and
/// the measured wall time for every phase that runs on one thread (locate, analysis merge,
/// orphans, the final fsync and marker: the flush phase counts whole). `bound` = work /
/// floor. Work measured with several workers includes their contention, so the bound is
/// optimistic where the machine slows threads down when they run together.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct WholeBound {
    /// Workers the floor assumes (this run's).
    pub workers: usize,
    /// Sum of the phases' work.
    pub work_ms: f64,
    /// Sum of the phases' parts no number of workers shortens.
    pub span_ms: f64,
    /// Sum of the phases' floors with `workers` workers.
    pub floor_ms: f64,
    /// work / floor: the speedup over one worker this run's worker count could reach at most.
    pub bound: f64,
    /// work / span: the speedup no number of workers could exceed.
    pub bound_any: f64,
}

impl WholeBound {
    /// The bound of a finished parallel recovery from its phase statistics.
    pub fn of(phases: &[PhaseStat], workers: usize, scan_chunks: usize, deps: Option<&DependencyStats>) -> WholeBound {
        let p = workers.max(1) as f64;
        let mut w = WholeBound { workers, ..WholeBound::default() };
        for ph in phases {
            let work = ph.wall_ms.max(ph.cpu_ms.min(ph.wall_ms * p));
            let (span, floor) = match ph.phase {
                Phase::Scan if scan_chunks > 1 => {
                    let span = work / scan_chunks as f64;
                    (span, (work / p).max(span))
                }
                Phase::Redo => match deps {
                    Some(d) if d.bound_blocks > 0.0 && d.bound_workers > 0.0 => {
                        let span = work / d.bound_blocks;
                        (span, (work / d.bound_workers.min(p)).max(span))
                    }
                    _ => (ph.wall_ms, ph.wall_ms),
                },
                _ => (ph.wall_ms, ph.wall_ms),
            };
            w.work_ms += work;
            w.span_ms += span;
            w.floor_ms += floor;
        }
        w.bound = if w.floor_ms > 0.0 { w.work_ms / w.floor_ms } else { 1.0 };
        w.bound_any = if w.span_ms > 0.0 { w.work_ms / w.span_ms } else { 1.0 };
        w
    }
}

/// Transactions by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TxnCounts {
    /// Committed: redone, completed where the image lacked their changes.
    pub committed: u64,
    /// Aborted before the crash: already compensated in the journal.
    pub aborted: u64,
    /// In flight at the crash and rolled back with undo images (steal).
    pub rolled_back: u64,
    /// In flight at the crash and discarded (no-steal: never in the image).
    pub discarded: u64,
    /// Lost records to skip-corrupt; treated as losers.
    pub damaged: u64,
}

/// Version of the [`RecoveryReport`] JSON (docs/REPORT.md describes it).
pub const REPORT_SCHEMA: u32 = 3;

/// Statistics of a recovery: per phase, per worker, and latency distributions.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Statistics {
    /// Wall and CPU time and counts of each phase, in order.
    pub phases: Vec<PhaseStat>,
    /// Busy and idle time of each worker of each parallel phase.
    pub workers: Vec<WorkerStat>,
    /// Time to apply one batch of redo work: a worker's batch (`batch_ops` operations) in
    /// parallel replay, 1024 records in serial replay.
    pub batch_apply: Latency,
    /// Time to read one journal segment through the backend (all of its read requests, or
    /// its mapping with populate).
    pub segment_read: Latency,
}

/// Wall time of one step of the pipeline (finer than [`Phase`]: map, unmark, mark).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PhaseTime {
    /// Phase name.
    pub phase: &'static str,
    /// Milliseconds spent in it.
    pub ms: f64,
}

/// How the journal was read.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct IoReport {
    /// The backend asked for (possibly `auto`).
    pub requested: IoBackend,
    /// The backend used.
    pub backend: IoBackend,
    /// Bytes per read request (read, pread, direct).
    pub buffer_bytes: usize,
    /// How the backend was chosen: auto's reason, a direct-I/O fallback.
    pub notes: Vec<String>,
    /// The journal's pages in the page cache before recovery read them (mincore).
    pub resident_at_start: Residency,
}

/// The checkpoint record a recovery started from, and what it saved.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CheckpointUse {
    /// Its sequence number.
    pub seq: u64,
    /// How the writer took it.
    pub kind: checkpoint::CheckpointKind,
    /// Its LSN (`C`).
    pub lsn: u64,
    /// Where recovery started reading the journal (`R`).
    pub redo_start: u64,
    /// Transactions open at `C`.
    pub open_txns: u64,
    /// Entries of its dirty block table.
    pub dirty_blocks: u64,
    /// Newer record files passed over (0: the newest was used).
    pub fallbacks: u64,
    /// Milliseconds spent finding and reading it (listing the directory, reading and checking
    /// the records tried).
    pub find_ms: f64,
    /// Journal bytes recovery did not read: segments wholly before `R` and the first
    /// segment's blocks before it.
    pub journal_bytes_skipped: u64,
    /// Records read (in the first journal block read) but before `R`.
    pub records_before_start: u64,
    /// Records between `R` and `C` that redo did not apply because the dirty block table says
    /// the home copy held them.
    pub records_home: u64,
}

/// The snapshot chain a rebuild (`--from-snapshot`) started from.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SnapshotUse {
    /// The snapshot (the chain's newest member).
    pub seq: u64,
    /// Its kind.
    pub kind: snapshot::SnapshotKind,
    /// The LSN its state is as of.
    pub lsn: u64,
    /// First LSN the rebuild needed from the journal.
    pub min_lsn: u64,
    /// Sequence numbers of the chain, root first.
    pub chain: Vec<u64>,
    /// Whether the image file was missing or had no valid superblock, and was created from
    /// the snapshot's.
    pub image_created: bool,
    /// Blocks written to the image from the chain (those the image did not already hold).
    pub blocks_restored: u64,
    /// Chain blocks the image already held with the snapshot's content.
    pub blocks_unchanged: u64,
    /// Blocks the snapshot left out (none for snapshots fastrec writes; the format allows
    /// leaving out blocks in revoked state): their content is what the image file holds, or
    /// zeros if it was created.
    pub blocks_not_in_snapshot: u64,
    /// Blocks a committed transaction freed (revoked) after the snapshot: their logged writes
    /// below the revoke are not replayed (the block may have been reused without logging), so
    /// they keep the snapshot's content, as a file system's free blocks may.
    pub blocks_freed_since: u64,
    /// Journal bytes the rebuild did not read.
    pub journal_bytes_skipped: u64,
    /// Records read but not replayed because the snapshot holds their effect.
    pub records_skipped: u64,
}

/// The copy log a recovery wrote before changing the image.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CopyLogUse {
    /// Copies whose source bytes this run read and logged.
    pub copies: u64,
    /// The file's length.
    pub bytes: u64,
}

/// What a skip-corrupt recovery could not keep (see docs/DESIGN.md, "Skip-corrupt").
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct LossReport {
    /// Transactions left out because damage took one of their records or one was invalid.
    pub damaged_txns: Vec<u64>,
    /// Transactions left out for lack of an end that began before the last damage: their
    /// end may have been in the damaged bytes.
    pub maybe_committed_txns: Vec<u64>,
    /// Blocks that may still hold changes of those transactions (no-steal: flushed changes
    /// of a transaction that may have committed cannot be undone). Every other block is the
    /// committed state without the transactions left out, except blocks that records before
    /// the start point of `partly_read_txns` changed.
    pub unresolved_blocks: Vec<u64>,
    /// Of the transactions left out, those that began before the start point (a checkpoint's
    /// redo start): their records before it were not read, so whatever those changed stays as
    /// the image holds it. Recovering with `--no-checkpoints` (when the journal still holds
    /// them) reads them too.
    pub partly_read_txns: Vec<u64>,
    /// Damaged ranges skipped (listed in `skipped`): what their records changed is unknown.
    pub damaged_ranges: u64,
}

/// Everything a recovery did, for people (`Display`) and programs (JSON).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RecoveryReport {
    /// Report schema version.
    pub schema: u32,
    /// The recovered directory.
    pub dir: PathBuf,
    /// Mode used.
    pub mode: RecoveryMode,
    /// How the journal was read.
    pub io: IoReport,
    /// The checkpoint record recovery started from, if any.
    pub checkpoint: Option<CheckpointUse>,
    /// The snapshot chain a rebuild started from (`--from-snapshot`).
    pub snapshot: Option<SnapshotUse>,
    /// The copy log this recovery wrote (journals with COPY records; see
    /// [`crate::copylog`]).
    pub copy_log: Option<CopyLogUse>,
    /// What skip-corrupt left out, when it met damage or an invalid record.
    pub loss: Option<LossReport>,
    /// The checkpoint record written at the journal's end after recovery (its sequence).
    pub final_checkpoint: Option<u64>,
    /// Checkpoint records (or, rebuilding, snapshots) newer than the one used (or all, when
    /// none was) that were passed over, and why.
    pub checkpoints_rejected: Vec<checkpoint::Rejected>,
    /// Image access used.
    pub image_io: ImageIo,
    /// Buffer policy the journal was written under.
    pub policy: &'static str,
    /// True when the marker showed this journal was already recovered and nothing was done.
    pub already_recovered: bool,
    /// Segments found (recovery reads those from the checkpoint's first needed one on).
    pub segments: u64,
    /// Total bytes of those segments.
    pub journal_bytes: u64,
    /// Bytes up to the durable end.
    pub bytes_scanned: u64,
    /// Durable records.
    pub records_scanned: u64,
    /// First and last durable LSN.
    pub lsn_range: (u64, u64),
    /// Record counts by type.
    pub record_counts: RecordCounts,
    /// Transactions by outcome.
    pub txns: TxnCounts,
    /// What replay did.
    pub replay: ReplayStats,
    /// ALLOC records of losers: undone (steal) or never applied (no-steal).
    pub loser_allocations_freed: u64,
    /// Where the torn tail was cut, if it was.
    pub tail: Option<TailCut>,
    /// Segments passed over while locating (torn last header, or skip-corrupt).
    pub segment_notes: Vec<LocateNote>,
    /// Damage skipped (skip-corrupt).
    pub skipped: Vec<SkippedRange>,
    /// Impossible records skipped (skip-corrupt).
    pub invalid: Vec<InvalidNote>,
    /// Cache windows (1 unless the memory budget forced more).
    pub windows: u64,
    /// Workers, pinning plan, and why each pass ran serially or in parallel.
    pub parallel: ParallelReport,
    /// Wall time per pipeline step (see [`Statistics::phases`] for the operator's phases).
    pub phases: Vec<PhaseTime>,
    /// Per-phase, per-worker and latency statistics.
    pub stats: Statistics,
    /// The settings recovery ran with.
    pub config: RecoverOptions,
    /// Total wall time in milliseconds.
    pub total_ms: f64,
    /// Journal bytes scanned per second of total time, in MB/s (10^6 bytes).
    pub throughput_mb_s: f64,
}

impl std::fmt::Display for RecoveryReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.already_recovered {
            return writeln!(
                f,
                "{}: already recovered (journal unchanged since); nothing to do. Use --force to replay anyway.",
                self.dir.display()
            );
        }
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        writeln!(
            f,
            "recovered {} ({} mode, {} policy, {} I/O)",
            self.dir.display(),
            self.mode,
            self.policy,
            self.io.backend
        )?;
        writeln!(
            f,
            "  journal io {} (asked for {}), {:.0}% of the journal in the page cache at start{}",
            self.io.backend,
            self.io.requested,
            self.io.resident_at_start.fraction() * 100.0,
            self.io.notes.iter().map(|n| format!("; {n}")).collect::<String>()
        )?;
        writeln!(
            f,
            "  scanned    {} records, {:.1} MiB of {:.1} MiB in {} segments, LSN {}..{}",
            self.records_scanned,
            mib(self.bytes_scanned),
            mib(self.journal_bytes),
            self.segments,
            self.lsn_range.0,
            self.lsn_range.1
        )?;
        if let Some(c) = &self.checkpoint {
            writeln!(
                f,
                "  checkpoint {} {} at LSN {} ({} open transactions, {} dirty blocks; found in {:.2} ms{}): redo from LSN {}, {:.1} MiB of journal not read, {} records home already",
                c.kind,
                c.seq,
                c.lsn,
                c.open_txns,
                c.dirty_blocks,
                c.find_ms,
                if c.fallbacks > 0 { format!(", {} newer passed over", c.fallbacks) } else { String::new() },
                c.redo_start,
                mib(c.journal_bytes_skipped),
                c.records_home
            )?;
        }
        if let Some(sn) = &self.snapshot {
            writeln!(
                f,
                "  snapshot   {} {} at LSN {} (chain {:?}){}: {} blocks restored, {} already current, {} not in the snapshot, {} freed since; {:.1} MiB of journal not read",
                sn.kind,
                sn.seq,
                sn.lsn,
                sn.chain,
                if sn.image_created { ", image created from it" } else { "" },
                sn.blocks_restored,
                sn.blocks_unchanged,
                sn.blocks_not_in_snapshot,
                sn.blocks_freed_since,
                mib(sn.journal_bytes_skipped)
            )?;
        }
        for r in &self.checkpoints_rejected {
            writeln!(f, "  passed over checkpoint {}: {}", r.path.display(), r.reason)?;
        }
        let t = &self.txns;
        writeln!(
            f,
            "  txns       {} committed (completed by redo), {} aborted, {} rolled back, {} discarded, {} damaged",
            t.committed, t.aborted, t.rolled_back, t.discarded, t.damaged
        )?;
        let r = &self.replay;
        writeln!(
            f,
            "  redo       {} applied, {} superseded by full-block writes, {} revoked, {} loser records not applied, {} home at the checkpoint",
            r.redo_applied, r.redo_skipped_superseded, r.redo_skipped_revoked, r.redo_skipped_losers, r.redo_skipped_home
        )?;
        writeln!(f, "  undo       {} changes restored", r.undo_applied)?;
        writeln!(
            f,
            "  orphans    {} freed; {} allocations by losers undone or never applied",
            r.orphans_freed, self.loser_allocations_freed
        )?;
        writeln!(
            f,
            "  image      {} blocks written in {} window(s), {} changed and changed back (not written); {:.1} MiB of memory for changed blocks",
            r.blocks_written,
            self.windows,
            r.blocks_unchanged,
            r.memory_bytes as f64 / (1 << 20) as f64
        )?;
        if let Some(c) = &self.copy_log {
            writeln!(
                f,
                "  copy log   {} copies' source bytes logged ({} bytes) before the image was written",
                c.copies, c.bytes
            )?;
        }
        match &self.tail {
            Some(t) => writeln!(
                f,
                "  tail       cut at {} offset {} ({}), {} bytes discarded{}",
                t.path.display(),
                t.offset,
                t.damage.as_ref().map_or("zero fill".to_string(), |k| k.to_string()),
                t.bytes_discarded,
                if t.unsynced_epoch {
                    "; valid records follow, written after the last sync marker (an unsynced tail)"
                } else {
                    ""
                }
            )?,
            None => writeln!(f, "  tail       clean")?,
        }
        for n in &self.segment_notes {
            writeln!(f, "  segment    {} ignored: {} at offset {}", n.path.display(), n.kind, n.offset)?;
        }
        for s in &self.skipped {
            writeln!(
                f,
                "  skipped    {} offset {}: {} (after LSN {})",
                s.path.display(),
                s.offset,
                s.kind,
                s.lsn_before
            )?;
        }
        for i in &self.invalid {
            writeln!(f, "  invalid    LSN {} (txn {}): {}", i.lsn, i.txid, i.reason)?;
        }
        if let Some(l) = &self.loss {
            writeln!(
                f,
                "  loss       {} damaged transaction(s) {:?} and {} without an end before the damage {:?} left out; \
                 {} block(s) may still hold their changes {:?}; {:?} began before the start point (what their \
                 records before it changed stays); what the {} damaged range(s) held is unknown",
                l.damaged_txns.len(),
                l.damaged_txns,
                l.maybe_committed_txns.len(),
                l.maybe_committed_txns,
                l.unresolved_blocks.len(),
                l.unresolved_blocks,
                l.partly_read_txns,
                l.damaged_ranges
            )?;
        }
        let par = &self.parallel;
        writeln!(f, "  workers    {} of {} CPUs; scan {}; replay {}", par.workers, par.cpus, par.scan, par.replay)?;
        if let Some(plan) = &par.plan {
            let cpus: Vec<String> =
                plan.workers.iter().map(|w| w.cpu.map_or("-".to_string(), |c| c.to_string())).collect();
            let mode = serde_json::to_value(plan.mode).ok().and_then(|v| v.as_str().map(str::to_string));
            writeln!(f, "  pinning    {}, CPUs [{}]; {}", mode.unwrap_or_default(), cpus.join(","), plan.note)?;
        }
        if let Some(d) = &par.dependencies {
            writeln!(
                f,
                "  deps       work {}, span {} per block ({:.1}x bound), {} with these partitions ({:.1}x); {} cross-worker copies",
                d.work, d.span_blocks, d.bound_blocks, d.span_workers, d.bound_workers, d.cross_worker_copies
            )?;
        }
        if let Some(w) = &par.whole {
            writeln!(
                f,
                "  whole      work {:.1} ms, span {:.1} ms, floor at {} workers {:.1} ms: speedup bound {:.2}x ({:.1}x with any number)",
                w.work_ms, w.span_ms, w.workers, w.floor_ms, w.bound, w.bound_any
            )?;
        }
        let phases: Vec<String> = self
            .stats
            .phases
            .iter()
            .filter(|p| p.wall_ms >= 0.05)
            .map(|p| format!("{} {:.1} (cpu {:.1})", p.phase, p.wall_ms, p.cpu_ms))
            .collect();
        writeln!(f, "  time (ms)  {}; total {:.1}", phases.join(", "), self.total_ms)?;
        let busy: Vec<String> = self
            .stats
            .workers
            .iter()
            .map(|w| format!("{}#{} {:.0}/{:.0}", w.phase, w.worker, w.busy_ms, w.idle_ms))
            .collect();
        if !busy.is_empty() {
            writeln!(f, "  workers    busy/idle ms: {}", busy.join(", "))?;
        }
        let lat = |name: &str, l: &Latency| {
            format!(
                "{name} p50 {:.0} us, p99 {:.0}, p99.9 {:.0}, max {:.0} ({} samples)",
                l.p50_us, l.p99_us, l.p999_us, l.max_us, l.count
            )
        };
        writeln!(
            f,
            "  latency    {}; {}",
            lat("batch apply", &self.stats.batch_apply),
            lat("segment read", &self.stats.segment_read)
        )?;
        write!(f, "  throughput {:.0} MB/s of journal", self.throughput_mb_s)
    }
}

/// The marker written after a successful recovery: which journal files, at which lengths,
/// were recovered.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Marker {
    version: u32,
    /// (file name, length, salt, first LSN) of every segment file seen; 0s for ignored ones.
    files: Vec<(String, u64, u64, u64)>,
    last_lsn: u64,
    /// Where the durable journal ended, when a tail was ignored: (file name, offset).
    #[serde(default)]
    tail: Option<(String, u64)>,
}

fn journal_fingerprint(journal: &Journal) -> Vec<(String, u64, u64, u64)> {
    let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut files: Vec<(String, u64, u64, u64)> = journal
        .segments
        .iter()
        .map(|s| (name(&s.path), s.len, s.header.salt, s.header.first_lsn))
        .chain(journal.notes.iter().map(|n| (name(&n.path), n.bytes, 0, 0)))
        .collect();
    files.sort();
    files.dedup();
    files
}

use crate::copylog::Start as PinnedStart;

fn write_json_atomic(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| Error::io(path, "encode", std::io::Error::other(e)))?;
    write_atomic(path, &bytes)
}

/// Records that the image is the recovered state of this journal. A copy log stays: with it a
/// later `--force` recovery of the same journal repeats this one exactly.
fn mark_recovered(
    dir: &Path,
    files: Vec<(String, u64, u64, u64)>,
    last_lsn: u64,
    tail: Option<(String, u64)>,
) -> Result<()> {
    write_json_atomic(&dir.join(MARKER_FILE), &Marker { version: 1, files, last_lsn, tail })
}

fn read_marker(path: &Path) -> Option<Marker> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Writes `bytes` to `path` atomically: temporary file, fsync, rename, directory fsync.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp).map_err(|e| Error::io(&tmp, "create", e))?;
        std::io::Write::write_all(&mut f, bytes).map_err(|e| Error::io(&tmp, "write", e))?;
        f.sync_all().map_err(|e| Error::io(&tmp, "fsync", e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, "rename", e))?;
    fsync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// The directory's exclusive recovery lock, released on drop.
#[derive(Debug)]
pub struct DirLock {
    file: File,
}

impl Drop for DirLock {
    fn drop(&mut self) {
        // Unlock explicitly rather than rely on close: a child forked by another thread of
        // this process holds a duplicate of the descriptor until it execs, and the lock lives
        // as long as any duplicate does.
        let _ = self.file.unlock();
    }
}

/// Takes the directory's exclusive recovery lock; released when the returned guard drops.
pub fn lock_dir(dir: &Path) -> Result<DirLock> {
    let path = dir.join(LOCK_FILE);
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(&path, "open lock file", e))?;
    match f.try_lock() {
        Ok(()) => Ok(DirLock { file: f }),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked { path }),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io(&path, "lock", e)),
    }
}

struct Timer {
    phases: Vec<PhaseTime>,
    at: Instant,
}

impl Timer {
    fn lap(&mut self, phase: &'static str) {
        crash_point(phase);
        let now = Instant::now();
        let ms = (now - self.at).as_secs_f64() * 1e3;
        match self.phases.iter_mut().find(|p| p.phase == phase) {
            Some(p) => p.ms += ms,
            None => self.phases.push(PhaseTime { phase, ms }),
        }
        self.at = now;
    }
}

fn check_dir(dir: &Path) -> Result<()> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(Error::io(dir, "open recovery directory", std::io::Error::other("not a directory")));
        }
        Err(e) => return Err(Error::io(dir, "open recovery directory", e)),
    }
    let image = dir.join(IMAGE_FILE);
    std::fs::metadata(&image).map(|_| ()).map_err(|e| Error::io(image, "open image", e))
}

/// Opens the image and journal of `dir` without changing anything. A journal whose first
/// segments are gone is accepted here when the directory has checkpoint records or snapshots
/// (whether one covers them is decided by [`start_point`]).
pub fn open_dir(dir: &Path, mode: RecoveryMode, io: &IoOptions) -> Result<(Layout, Journal)> {
    check_dir(dir)?;
    let layout = Layout::read_from(&dir.join(IMAGE_FILE))?;
    let late_start_ok = checkpoint::any(dir)? || !snapshot::list(dir)?.is_empty();
    let journal = Journal::open(
        &dir.join(JOURNAL_DIR),
        layout.geometry.image_id,
        layout.geometry.block_size,
        mode,
        io,
        late_start_ok,
    )?;
    Ok((layout, journal))
}

/// Where recovery may start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartFrom {
    /// The newest valid checkpoint record, else the journal's first record.
    Checkpoint,
    /// The journal's first record (checkpoint records ignored).
    Journal,
    /// The newest valid snapshot chain, restored into the image first.
    Snapshot,
}

impl StartFrom {
    /// What `opts` asks for.
    pub fn of(opts: &RecoverOptions) -> StartFrom {
        if opts.from_snapshot {
            StartFrom::Snapshot
        } else if opts.use_checkpoints {
            StartFrom::Checkpoint
        } else {
            StartFrom::Journal
        }
    }
}

/// Where recovery starts (see [`start_point`]).
pub struct StartPoint {
    /// The checkpoint record recovery starts from.
    pub checkpoint: Option<checkpoint::Selected>,
    /// The snapshot chain a rebuild starts from.
    pub snapshot: Option<snapshot::Chain>,
    /// What analysis and redo skip because of it.
    pub filter: Option<Arc<StartFilter>>,
    /// Newer records (or snapshots) passed over, and why.
    pub rejected: Vec<checkpoint::Rejected>,
    /// Journal bytes no pass reads.
    pub bytes_skipped: u64,
    /// Milliseconds spent listing and reading records (or snapshot manifests) to choose one.
    pub find_ms: f64,
}

impl StartPoint {
    /// Where a pinned rerun must start again.
    fn pinned(&self) -> PinnedStart {
        if let Some(c) = &self.checkpoint {
            PinnedStart::Checkpoint { seq: c.record.seq, crc: record_crc(&c.record) }
        } else if let Some(ch) = &self.snapshot {
            PinnedStart::Snapshot { seq: ch.head().seq, crc: ch.head().data_crc }
        } else {
            PinnedStart::Journal
        }
    }
}

fn record_crc(r: &checkpoint::CheckpointRecord) -> u32 {
    let bytes = r.encode();
    let n = bytes.len() - 4;
    u32::from_le_bytes([bytes[n], bytes[n + 1], bytes[n + 2], bytes[n + 3]])
}

fn from_snapshot_rejected(r: snapshot::Rejected) -> checkpoint::Rejected {
    checkpoint::Rejected { path: r.path, offset: r.offset, reason: r.reason }
}

/// The filter of a checkpoint record.
fn checkpoint_filter(sel: &checkpoint::Selected) -> Arc<StartFilter> {
    let r = &sel.record;
    Arc::new(StartFilter {
        source: sel.path.clone(),
        lsn: r.lsn,
        start: r.redo_start,
        open: r.open.iter().map(|t| t.txid).collect(),
        dirty: Some(r.dirty_map()),
    })
}

/// The filter of a snapshot chain.
fn snapshot_filter(chain: &snapshot::Chain) -> Arc<StartFilter> {
    let head = chain.head();
    Arc::new(StartFilter {
        source: chain.members[chain.members.len() - 1].path.clone(),
        lsn: head.lsn,
        start: head.min_lsn,
        open: head.open_txns.iter().copied().collect(),
        dirty: None,
    })
}

/// Where recovery starts: the newest valid checkpoint record (or, with [`StartFrom::Snapshot`],
/// the newest valid snapshot chain), the filter analysis and redo apply for it, and the records
/// passed over. Makes the journal begin there. Without a usable start point the journal must
/// begin at its first segment.
pub fn start_point(
    dir: &Path,
    layout: &Layout,
    journal: &mut Journal,
    mode: RecoveryMode,
    from: StartFrom,
) -> Result<StartPoint> {
    let first_lsn = journal.segments[0].header.first_lsn;
    let mut sp = StartPoint {
        checkpoint: None,
        snapshot: None,
        filter: None,
        rejected: Vec::new(),
        bytes_skipped: 0,
        find_ms: 0.0,
    };
    let found = Instant::now();
    match from {
        StartFrom::Snapshot => {
            let (chain, rejected) = snapshot::select(dir, layout, first_lsn)?;
            sp.find_ms = found.elapsed().as_secs_f64() * 1e3;
            sp.rejected = rejected.into_iter().map(from_snapshot_rejected).collect();
            let Some(chain) = chain else {
                let detail = if sp.rejected.is_empty() {
                    "there are none".to_string()
                } else {
                    sp.rejected
                        .iter()
                        .map(|r| format!("{}: {}", r.path.display(), r.reason))
                        .collect::<Vec<_>>()
                        .join("; ")
                };
                return Err(Error::Snapshot {
                    path: dir.join(crate::dir::SNAPSHOT_DIR),
                    offset: None,
                    reason: format!("no usable snapshot to rebuild from ({detail})"),
                });
            };
            let filter = snapshot_filter(&chain);
            sp.bytes_skipped = journal.start_at(filter.start);
            sp.filter = Some(filter);
            sp.snapshot = Some(chain);
            return Ok(sp);
        }
        StartFrom::Checkpoint => {
            let (sel, rejected) = checkpoint::select(dir, layout, first_lsn)?;
            sp.find_ms = found.elapsed().as_secs_f64() * 1e3;
            sp.rejected = rejected;
            if let Some(sel) = sel {
                let filter = checkpoint_filter(&sel);
                sp.bytes_skipped = journal.start_at(filter.start);
                sp.filter = Some(filter);
                sp.checkpoint = Some(sel);
                return Ok(sp);
            }
        }
        StartFrom::Journal => {}
    }
    let first = &journal.segments[0];
    if first.header.segment_seq != 1 && mode == RecoveryMode::SkipCorrupt {
        // Skip-corrupt goes on from what is left, and says what it lost.
        let note = LocateNote {
            path: first.path.clone(),
            offset: 16,
            kind: crate::error::CorruptKind::BadField(
                "segment_seq (the journal does not start at 1, and no valid checkpoint covers its start)",
            ),
            bytes: 0,
        };
        journal.notes.push(note);
    } else if first.header.segment_seq != 1 {
        let detail = if from == StartFrom::Journal {
            "checkpoints ignored as asked".to_string()
        } else if sp.rejected.is_empty() {
            "there are none".to_string()
        } else {
            sp.rejected.iter().map(|r| format!("{}: {}", r.path.display(), r.reason)).collect::<Vec<_>>().join("; ")
        };
        return Err(Error::JournalStartsLate { path: journal.dir.clone(), first_lsn: first.header.first_lsn, detail });
    }
    Ok(sp)
}

/// The start point an interrupted recovery pinned, which must still check out as the same.
fn start_point_pinned(dir: &Path, layout: &Layout, journal: &mut Journal, pin: PinnedStart) -> Result<StartPoint> {
    let first_lsn = journal.segments[0].header.first_lsn;
    let needed = |path: PathBuf, reason: String| Error::Checkpoint {
        path,
        offset: None,
        reason: format!(
            "an interrupted recovery started from here and replayed copies, so finishing needs it, but {reason}"
        ),
    };
    match pin {
        PinnedStart::Journal => start_point(dir, layout, journal, RecoveryMode::TolerateTail, StartFrom::Journal),
        PinnedStart::Checkpoint { seq, crc } => {
            let path = dir.join(crate::dir::CHECKPOINT_DIR).join(checkpoint::file_name(seq));
            let record = checkpoint::read(&path, layout).map_err(|r| needed(path.clone(), r.reason))?;
            if record_crc(&record) != crc {
                return Err(needed(path, "it is not the same checkpoint record any more".into()));
            }
            if record.redo_start < first_lsn {
                return Err(needed(path, "the journal no longer reaches back to it".into()));
            }
            let sel = checkpoint::Selected { path, record, index: 0 };
            let filter = checkpoint_filter(&sel);
            let bytes_skipped = journal.start_at(filter.start);
            Ok(StartPoint {
                checkpoint: Some(sel),
                snapshot: None,
                filter: Some(filter),
                rejected: Vec::new(),
                bytes_skipped,
                find_ms: 0.0,
            })
        }
        PinnedStart::Snapshot { seq, crc } => {
            let all: std::collections::BTreeMap<u64, PathBuf> = snapshot::list(dir)?.into_iter().collect();
            let path = all
                .get(&seq)
                .cloned()
                .unwrap_or_else(|| dir.join(crate::dir::SNAPSHOT_DIR).join(snapshot::file_name(seq)));
            let chain = snapshot::chain(layout, &all, seq)
                .map_err(|r| needed(path.clone(), format!("{}: {}", r.path.display(), r.reason)))?;
            if chain.head().data_crc != crc {
                return Err(needed(path, "it is not the same snapshot any more".into()));
            }
            if chain.head().min_lsn < first_lsn {
                return Err(needed(path, "the journal no longer reaches back to it".into()));
            }
            let filter = snapshot_filter(&chain);
            let bytes_skipped = journal.start_at(filter.start);
            Ok(StartPoint {
                checkpoint: None,
                snapshot: Some(chain),
                filter: Some(filter),
                rejected: Vec::new(),
                bytes_skipped,
                find_ms: 0.0,
            })
        }
    }
}

/// Refuses to replay COPY records from a start point more than one checkpoint record older
/// than the newest present. The writer may write a copy's source back with a change newer
/// than the copy once the copy lies before the redo start of both of its two newest
/// checkpoint records (DESIGN.md, "Logical operations"), so a replay from the newest or the
/// one before reads every source as the copy did, and a replay from further back might not.
/// Recovering from the journal's start (`--no-checkpoints`, or no usable record) under steal:
/// refuses when a transaction with no end began before a checkpoint record that lists no open
/// transaction. A writer's record lists every transaction open when it was taken, so such a
/// transaction was settled there by an earlier recovery (its changes undone, the record
/// written at the journal's end: DESIGN.md, "The writer after recovery"), and a writer resumed
/// after it may have reused its blocks: undoing it again would overwrite their later changes.
/// Only when the journal goes on after that record: a rerun over the journal the earlier
/// recovery saw repeats its history and its undo exactly.
fn check_settled_losers(dir: &Path, layout: &Layout, analysis: &Analysis, last_lsn: u64) -> Result<()> {
    if !analysis.steal {
        // No-steal losers are never applied, so reading them again changes nothing.
        return Ok(());
    }
    let records = checkpoint::list(dir)?;
    let Some((path, rec)) = records
        .iter()
        .rev()
        .filter_map(|(_, p)| checkpoint::read(p, layout).ok().map(|r| (p, r)))
        .find(|(_, r)| r.open.is_empty() && r.lsn < last_lsn)
    else {
        return Ok(());
    };
    let settled = analysis
        .txns
        .iter()
        .filter(|(_, t)| t.outcome == TxnOutcome::InFlight && t.first_seen() > 0 && t.first_seen() <= rec.lsn)
        .min_by_key(|(_, t)| t.first_seen());
    match settled {
        None => Ok(()),
        Some((txid, t)) => Err(Error::Checkpoint {
            path: path.clone(),
            offset: None,
            reason: format!(
                "transaction {txid} (first record LSN {}) has no end, yet this record (LSN {}) lists no open \
                 transaction: an earlier recovery settled it, and replaying the journal from its start would undo \
                 it again over later changes; recover from the checkpoint records (without --no-checkpoints)",
                t.first_seen(),
                rec.lsn
            ),
        }),
    }
}

fn check_copy_start(sp: &StartPoint, analysis: &Analysis, dir: &Path) -> Result<()> {
    if analysis.counts.copies == 0 || sp.snapshot.is_some() {
        return Ok(());
    }
    let back = match &sp.checkpoint {
        Some(c) => c.index,
        None => checkpoint::list(dir)?.len(),
    };
    if back <= 1 {
        return Ok(());
    }
    Err(Error::Checkpoint {
        path: dir.join(crate::dir::CHECKPOINT_DIR),
        offset: None,
        reason: format!(
            "the journal replayed holds {} COPY records, and recovery would start {back} checkpoint records before \
             the newest one present ({}); the writer may have written copy sources back with changes newer than \
             copies those records cover, so replaying them from here could give a wrong image. Repair the newer \
             records, or rebuild from a snapshot with --from-snapshot",
            analysis.counts.copies,
            if sp.checkpoint.is_some() { "the newer ones failed validation" } else { "none was used" }
        ),
    })
}

/// Scans and analyses the journal of `dir` without touching the image (used by `inspect`),
/// from the newest usable checkpoint record as recovery would.
pub fn analyze_dir(
    dir: &Path,
    mode: RecoveryMode,
    io: &IoOptions,
) -> Result<(Layout, Journal, scan::ScanOutcome, Analysis)> {
    let (layout, mut journal) = open_dir(dir, mode, io)?;
    let start = start_point(dir, &layout, &mut journal, mode, StartFrom::Checkpoint)?;
    journal.seek_start()?;
    let mut analyzer = Analyzer::new(&layout, &journal, mode).with_start(start.filter);
    let outcome = scan::scan(&journal, mode, |ctx, h, rec| analyzer.visit(ctx, h, rec))?;
    let analysis = analyzer.finish()?;
    Ok((layout, journal, outcome, analysis))
}

fn available_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Workers for a front end without the pinning plan (the jbd2 one): as asked, else one per
/// available CPU, capped as [`RecoverOptions::workers_max`] caps them by default.
pub(crate) fn default_workers(asked: Option<usize>) -> usize {
    asked.unwrap_or_else(available_cpus).min(RecoverOptions::default().workers_max).max(1)
}

/// Drops `value` on a thread of its own: unmapping and freeing hundreds of MiB costs
/// milliseconds of page-table work that nothing waits for. Only what is never read again
/// belongs here (a mapping is unmapped there, not read, so a file changed meanwhile cannot
/// fault); if no thread can be started it is dropped here.
pub(crate) fn drop_off_path<T: Send + 'static>(value: T) {
    let _ = std::thread::Builder::new().name("fastrec-drop".into()).spawn(move || drop(value));
}

/// Resolves the worker count and pinning plan. One worker runs the same chunked pipeline as
/// many (chunked scan, routed replay: it measured faster than replaying record by record in
/// the scan's order, because the routed replay skips moot changes unread and prefetches);
/// recovery still falls back to the serial path where the chunked one cannot decide (see
/// [`Run::scan`]) or does not apply (a small journal, windows, `--image-io pwrite`).
fn parallel_setup(opts: &RecoverOptions, report: &mut ParallelReport) -> Result<Option<ParallelSetup>> {
    if opts.workers == Some(0) || opts.workers_max == 0 || opts.batch_ops == 0 {
        return Err(Error::Config("workers, workers_max and batch_ops must be at least 1".into()));
    }
    let topology = Topology::detect();
    let cpus = topology.cpu_count().min(report.cpus).max(1);
    let workers = opts.workers.unwrap_or(cpus).min(opts.workers_max);
    if workers > cpus {
        report
            .warnings
            .push(format!("{workers} workers on {cpus} CPUs: workers share CPUs, so expect no speedup beyond {cpus}"));
    }
    if opts.workers.is_some_and(|w| w > opts.workers_max) {
        report.warnings.push(format!(
            "{} workers asked for, capped at {}",
            opts.workers.unwrap_or(0),
            opts.workers_max
        ));
    }
    report.workers = workers;
    let only_nodes: Option<Vec<usize>> =
        opts.numa_nodes_mask.map(|m| (0..64).filter(|b| m & (1u64 << b) != 0).collect());
    // Rayon threads are not pinned: the plan then only records the nodes (and still refuses
    // a node the machine does not have).
    let pin = if opts.executor == Executor::Rayon { PinMode::None } else { opts.pin };
    let mut plan = crate::topology::plan(&topology, workers.max(1), pin, only_nodes.as_deref())?;
    if opts.executor == Executor::Rayon {
        plan.note = format!("{}; rayon executor: threads are not pinned", plan.note);
    }
    report.plan = Some(plan.clone());
    Ok(Some(ParallelSetup {
        workers,
        plan,
        executor: opts.executor,
        batch_ops: opts.batch_ops,
        chunk_bytes: opts.chunk_bytes.max(1),
        dependency_stats: opts.dependency_stats,
    }))
}

/// Where a writer resuming on a recovered directory continues: the segment sequence number
/// and LSN of its first new record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResumePoint {
    /// Sequence number of the first new segment.
    pub next_seq: u64,
    /// LSN of the first new record.
    pub next_lsn: u64,
}

/// Prepares a recovered directory for a writer that continues it (DESIGN.md, "The writer
/// after recovery"): checks that recovery finished and wrote its checkpoint record at the
/// journal's end, then removes the journal's tail that recovery ignored (the last segment is
/// truncated where the durable records end; later and torn segments are deleted), so that no
/// later recovery, even one that reads the journal from its start, meets torn or unsynced
/// bytes followed by the new segments. Recovery itself leaves the journal as it found it: its
/// marker and copy log name the journal's files and lengths, and a rerun after a crash must
/// find them unchanged.
pub fn resume_journal(dir: &Path, layout: &Layout) -> Result<ResumePoint> {
    let mpath = dir.join(MARKER_FILE);
    let marker = read_marker(&mpath).ok_or_else(|| {
        Error::Config(format!(
            "{}: no readable recovery marker: recover the directory before resuming",
            mpath.display()
        ))
    })?;
    if marker.last_lsn > 0 {
        let newest = checkpoint::list(dir)?.into_iter().rev().find_map(|(_, p)| checkpoint::read(&p, layout).ok());
        if newest.is_none_or(|r| r.lsn < marker.last_lsn) {
            return Err(Error::Config(format!(
                "{}: the checkpoint record recovery writes at the journal's end (LSN {}) is missing: recover again \
                 (without --no-final-checkpoint) before resuming",
                dir.display(),
                marker.last_lsn
            )));
        }
    }
    let jdir = dir.join(JOURNAL_DIR);
    let seq_of = |name: &str| crate::format::segment::parse_segment_file_name(name);
    let valid_max = marker.files.iter().filter(|f| f.3 != 0).filter_map(|f| seq_of(&f.0)).max().unwrap_or(0);
    let keep_max = marker.tail.as_ref().and_then(|(n, _)| seq_of(n)).unwrap_or(valid_max);
    let entries = std::fs::read_dir(&jdir).map_err(|e| Error::io(&jdir, "list journal", e))?;
    for e in entries {
        let e = e.map_err(|e| Error::io(&jdir, "list journal", e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if seq_of(&name).is_some_and(|q| q > keep_max) || name.ends_with(".wal.tmp") {
            std::fs::remove_file(e.path()).map_err(|err| Error::io(e.path(), "remove segment after the tail", err))?;
        }
    }
    if let Some((name, offset)) = &marker.tail {
        let path = jdir.join(name);
        let f = std::fs::OpenOptions::new().write(true).open(&path).map_err(|e| Error::io(&path, "open segment", e))?;
        let len = f.metadata().map_err(|e| Error::io(&path, "stat segment", e))?.len();
        if len > *offset {
            f.set_len(*offset).map_err(|e| Error::io(&path, "cut the journal's tail", e))?;
            f.sync_all().map_err(|e| Error::io(&path, "fsync segment", e))?;
        }
    }
    fsync_dir(&jdir)?;
    Ok(ResumePoint { next_seq: keep_max + 1, next_lsn: marker.last_lsn + 1 })
}

/// The environment variable naming a recovery phase to crash at (`FASTREC_CRASH_AT=write-back`):
/// the process aborts as that phase ends, as a power cut or `kill -9` would end it, so that
/// tests can stop recovery at each phase boundary and check that the next run completes it.
pub const CRASH_AT_ENV: &str = "FASTREC_CRASH_AT";

fn crash_point(phase: &str) {
    static AT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    if AT.get_or_init(|| std::env::var(CRASH_AT_ENV).ok()).as_deref() == Some(phase) {
        std::process::abort();
    }
}

/// Recovers `dir` in place: afterwards its image holds exactly the committed state.
pub fn recover(dir: &Path, opts: &RecoverOptions) -> Result<RecoveryReport> {
    recover_with(dir, opts, &Monitor::default())
}

/// [`recover`], reporting progress to `monitor`'s observer and stopping at a safe point when
/// its cancel flag is set (with [`Error::Cancelled`]; the next recovery completes the work).
pub fn recover_with(dir: &Path, opts: &RecoverOptions, monitor: &Monitor<'_>) -> Result<RecoveryReport> {
    let slots = 1 + opts.workers_max.max(opts.workers.unwrap_or(1)).max(1);
    let cancel_in = match opts.fault {
        Some(FaultPoint::CancelIn(p)) => Some(p),
        _ => None,
    };
    progress::with_reporter(monitor, slots, cancel_in, |t| {
        let image_changed = std::cell::Cell::new(false);
        let r = recover_inner(dir, opts, t, &image_changed);
        match r {
            // A worker stopped by the flag reports a stop; the caller gets the reason. Any
            // other error is a real failure and keeps its message.
            Err(Error::WorkerStopped) if t.cancelled() => Err(Error::Cancelled {
                dir: dir.to_path_buf(),
                phase: t.phase().name(),
                image_changed: image_changed.get(),
            }),
            r => r,
        }
    })
}

/// Runs the phases from `from` to before `to` as empty ones, each with `note`.
fn skip_phases(t: &Tracker<'_>, from: Phase, to: Phase, note: &str) {
    for p in Phase::ALL.into_iter().filter(|p| *p >= from && *p < to) {
        t.skip(p, note);
    }
}

/// The pipeline, stage by stage (DESIGN.md, "Pipeline"). Each stage is a method of [`Run`]
/// that starts and finishes its operator phases; where a stage has a serial and a parallel
/// variant, both sit in that method.
fn recover_inner(
    dir: &Path,
    opts: &RecoverOptions,
    t: &Tracker<'_>,
    image_changed: &std::cell::Cell<bool>,
) -> Result<RecoveryReport> {
    let (mut run, mut inp) = Run::locate(dir, opts, t, image_changed)?;
    if run.already_recovered() {
        return Ok(run.done_early("already recovered; nothing to do"));
    }
    let mut start = run.start_point(&mut inp)?;
    let setup = parallel_setup(opts, &mut run.report.parallel)?;
    let pass1 = run.scan(&inp, &start, setup.as_ref())?;
    let analysis = run.analyze(&inp, &start, pass1.analyzer, &pass1.outcome)?;
    run.restore_snapshot(&inp, &mut start, &analysis)?;
    let image = run.open_image()?;
    let replayed =
        run.replay(&inp, &start, &analysis, &pass1.outcome, pass1.routed, pass1.home_unrouted, setup, &image)?;
    run.report.loss = loss_report(&inp, &analysis, &pass1.outcome)?;
    run.write_back(&inp, &start, &analysis, &image, replayed)?;
    run.mark(&inp, &pass1.outcome)?;
    run.final_checkpoint(&inp, &pass1.outcome)?;
    let report = run.report(&start, &analysis, pass1.outcome);
    drop_off_path((inp, analysis));
    Ok(report)
}

/// What skip-corrupt left out, when it met damage or an invalid record (`None` otherwise).
fn loss_report(inp: &Input, analysis: &Analysis, outcome: &scan::ScanOutcome) -> Result<Option<LossReport>> {
    if analysis.dropped.is_empty() && outcome.skipped.is_empty() && analysis.invalid.is_empty() {
        return Ok(None);
    }
    if outcome.skipped.is_empty() && analysis.invalid.is_empty() {
        // Only losers without an end at the tail: nothing was lost.
        return Ok(None);
    }
    // The newest LSN damage may have hidden an end behind. Damage after the last record read
    // is the crash's torn tail: nothing there was durable, so it hides no end.
    let mid = outcome.skipped.iter().filter(|r| r.lsn_before < outcome.last_lsn);
    if mid.clone().next().is_none() && analysis.invalid.is_empty() {
        return Ok(None);
    }
    let damage_lsn =
        mid.map(|r| r.lsn_before.saturating_add(1)).chain(analysis.invalid.iter().map(|i| i.lsn)).max().unwrap_or(0);
    let mut damaged = Vec::new();
    let mut maybe = Vec::new();
    for (&id, t) in &analysis.txns {
        match t.outcome {
            TxnOutcome::Damaged => damaged.push(id),
            TxnOutcome::InFlight if t.first_seen() < damage_lsn => maybe.push(id),
            _ => {}
        }
    }
    damaged.sort_unstable();
    maybe.sort_unstable();
    let mut partly: Vec<u64> = damaged
        .iter()
        .chain(&maybe)
        .copied()
        .filter(|id| analysis.txns.get(id).is_some_and(|t| t.truncated()))
        .collect();
    partly.sort_unstable();
    let mut unresolved = replay::suspect_blocks(&inp.layout, &inp.journal, analysis, damage_lsn)?;
    let maybe_committed: rustc_hash::FxHashSet<u64> = damaged.iter().chain(&maybe).copied().collect();
    unresolved.extend(analysis.dropped_revokes.iter().filter(|(id, _)| maybe_committed.contains(id)).map(|&(_, b)| b));
    let mut set: std::collections::BTreeSet<u64> = unresolved.into_iter().collect();
    // What redo derives from such a block is in doubt too: a copy carries it to its
    // destination (whatever the copy's LSN: the block's content at recovery is its latest), and
    // orphan cleanup frees the inodes an orphan bitmap lists.
    loop {
        let before = set.len();
        for &(src, dst, _) in &analysis.copy_edges {
            if set.contains(&src) {
                set.insert(dst);
            }
        }
        if set.len() == before {
            break;
        }
    }
    let layout = &inp.layout;
    if layout.orphan_bitmap.clone().any(|b| set.contains(&b)) {
        set.extend(layout.inode_bitmap.clone());
    }
    let unresolved: Vec<u64> = set.into_iter().collect();
    Ok(Some(LossReport {
        damaged_txns: damaged,
        maybe_committed_txns: maybe,
        unresolved_blocks: unresolved,
        partly_read_txns: partly,
        damaged_ranges: outcome.skipped.iter().filter(|r| r.lsn_before < outcome.last_lsn).count() as u64,
    }))
}

/// One recovery in progress: what every stage reads, and the report they fill in.
struct Run<'a, 't> {
    dir: &'a Path,
    opts: &'a RecoverOptions,
    t: &'a Tracker<'t>,
    image_changed: &'a std::cell::Cell<bool>,
    _lock: DirLock,
    started: Instant,
    timer: Timer,
    report: RecoveryReport,
    fingerprint: Vec<(String, u64, u64, u64)>,
    image_path: PathBuf,
    image_created: bool,
    /// The journal's copy log (an interrupted or earlier run's), which pins the start point.
    copy_log: Option<Arc<crate::copylog::CopyLog>>,
    stats: ReplayStats,
    windows: u64,
}

/// What a recovery reads: the image's layout and the journal.
struct Input {
    layout: Layout,
    journal: Journal,
}

/// What pass 1 produced.
struct Pass1<'a> {
    outcome: scan::ScanOutcome,
    analyzer: Analyzer<'a>,
    /// Each worker's tasks, from a parallel scan.
    routed: Option<parallel::Routed>,
    /// Records the parallel scan left unrouted because the home copy held them.
    home_unrouted: u64,
}

/// The image after redo, undo and orphan cleanup, before it is made durable.
enum Replayed {
    /// Changed blocks held in memory, written back by the write-back stage.
    Shadow(crate::shadow::ShadowImage),
    /// Written back window by window already (`--image-io pwrite`).
    Written,
}

impl<'a, 't> Run<'a, 't> {
    /// Stage 1, locate: check the settings, take the directory's lock, open the image (made
    /// from a snapshot's superblock when a rebuild finds none) and the journal's segments.
    fn locate(
        dir: &'a Path,
        opts: &'a RecoverOptions,
        t: &'a Tracker<'t>,
        image_changed: &'a std::cell::Cell<bool>,
    ) -> Result<(Run<'a, 't>, Input)> {
        t.begin(Phase::Locate, 0, 0);
        if opts.memory_budget_bytes < MEMORY_BUDGET_MIN {
            return Err(Error::Config(format!(
                "memory budget {} bytes is below the minimum {MEMORY_BUDGET_MIN}",
                opts.memory_budget_bytes
            )));
        }
        opts.io.validate()?;
        let started = Instant::now();
        let image_path = dir.join(IMAGE_FILE);
        let lock = if opts.from_snapshot {
            // A rebuild may find no image at all: the snapshot's superblock makes one, under
            // the lock.
            match std::fs::metadata(dir) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(Error::io(dir, "open recovery directory", std::io::Error::other("not a directory")))
                }
                Err(e) => return Err(Error::io(dir, "open recovery directory", e)),
            }
            lock_dir(dir)?
        } else {
            // Check the directory holds an image before creating the lock file in it.
            check_dir(dir)?;
            lock_dir(dir)?
        };
        let image_created = opts.from_snapshot && Layout::read_from(&image_path).is_err();
        if image_created {
            snapshot::create_image(dir, &image_path)?;
            image_changed.set(true);
        }
        let (layout, mut journal) = open_dir(dir, opts.mode, &opts.io)?;
        journal.read_times = Some(t.segment_read.clone());
        let fingerprint = journal_fingerprint(&journal);
        let report = RecoveryReport {
            schema: REPORT_SCHEMA,
            dir: dir.to_path_buf(),
            mode: opts.mode,
            io: IoReport {
                requested: opts.io.backend,
                backend: journal.backend,
                buffer_bytes: opts.io.buffer_bytes,
                notes: journal.io_notes.clone(),
                resident_at_start: Residency::default(),
            },
            checkpoint: None,
            snapshot: None,
            copy_log: None,
            loss: None,
            final_checkpoint: None,
            checkpoints_rejected: Vec::new(),
            image_io: opts.image_io,
            policy: if journal.steal() { "steal" } else { "no-steal" },
            already_recovered: false,
            segments: journal.segments.len() as u64,
            journal_bytes: journal.bytes(),
            bytes_scanned: 0,
            records_scanned: 0,
            lsn_range: (0, 0),
            record_counts: RecordCounts::default(),
            txns: TxnCounts::default(),
            replay: ReplayStats::default(),
            loser_allocations_freed: 0,
            tail: None,
            segment_notes: journal.notes.clone(),
            skipped: Vec::new(),
            invalid: Vec::new(),
            windows: 0,
            parallel: ParallelReport {
                workers: 1,
                cpus: available_cpus(),
                scan: "serial: one worker".into(),
                replay: "serial: one worker".into(),
                executor: opts.executor,
                plan: None,
                dependencies: None,
                scan_chunks: 0,
                whole: None,
                warnings: Vec::new(),
            },
            phases: Vec::new(),
            total_ms: 0.0,
            throughput_mb_s: 0.0,
            stats: Statistics::default(),
            config: *opts,
        };
        let mut timer = Timer { phases: Vec::new(), at: started };
        timer.lap("locate");
        let segments = journal.segments.len() as u64;
        t.finish(segments, segments, journal.bytes());
        t.check_cancel(dir, false)?;
        let run = Run {
            dir,
            opts,
            t,
            image_changed,
            _lock: lock,
            started,
            timer,
            report,
            fingerprint,
            image_path,
            image_created,
            copy_log: None,
            stats: ReplayStats::default(),
            windows: 0,
        };
        Ok((run, Input { layout, journal }))
    }

    /// Whether the marker says this journal was recovered already (and `--force` was not
    /// given).
    fn already_recovered(&self) -> bool {
        !self.opts.force && read_marker(&self.dir.join(MARKER_FILE)).is_some_and(|m| m.files == self.fingerprint)
    }

    /// The report of a recovery with nothing to do.
    fn done_early(mut self, why: &str) -> RecoveryReport {
        self.report.already_recovered = true;
        skip_phases(self.t, Phase::LoadCheckpoint, Phase::Done, why);
        self.report.phases = self.timer.phases;
        self.report.total_ms = self.started.elapsed().as_secs_f64() * 1e3;
        self.report.stats = statistics(self.t);
        self.report
    }

    /// Stage 2, start point: the newest valid checkpoint record (or, rebuilding, snapshot
    /// chain), unless the journal's copy log pins the start an earlier run chose; the journal
    /// then begins there.
    fn start_point(&mut self, inp: &mut Input) -> Result<StartPoint> {
        let (t, dir, opts) = (self.t, self.dir, self.opts);
        let tag = crate::copylog::tag(&self.fingerprint);
        let mut log = crate::copylog::load(dir, tag)?;
        if opts.from_snapshot && log.as_ref().is_some_and(|l| !matches!(l.start, Some(PinnedStart::Snapshot { .. }))) {
            // Rebuilding an image replaces whatever an earlier run of this journal wrote.
            crate::copylog::remove(dir)?;
            log = None;
        }
        let pinned = log.as_ref().and_then(|l| l.start);
        let from = StartFrom::of(opts);
        // Known at the start: the newest record (or snapshot chain) is read; fallbacks add.
        t.begin(Phase::LoadCheckpoint, u64::from(from != StartFrom::Journal || pinned.is_some()), 0);
        let mut start = match pinned {
            Some(p) => start_point_pinned(dir, &inp.layout, &mut inp.journal, p)?,
            None => start_point(dir, &inp.layout, &mut inp.journal, opts.mode, from)?,
        };
        // Measured, not assumed, and before any pass reads a segment: what the page cache held
        // of the segments this recovery reads decides whether it read a disk. (Only their
        // header blocks have been read so far.)
        let paths: Vec<&Path> = inp.journal.segments.iter().map(|s| s.path.as_path()).collect();
        self.report.io.resident_at_start = crate::io::cache::residency_all(&paths).unwrap_or_default();
        start.bytes_skipped += inp.journal.seek_start()?;
        if pinned.is_some() {
            self.report.parallel.warnings.push(
                "an earlier recovery of this journal replayed copies or restored a snapshot: recovering from the start point it chose, with the bytes its copies read".into(),
            );
        }
        self.report.checkpoints_rejected = start.rejected.clone();
        self.report.segment_notes = inp.journal.notes.clone();
        self.timer.lap("choose checkpoint");
        let tried = self.report.checkpoints_rejected.len() as u64;
        match (&start.checkpoint, &start.snapshot) {
            (Some(c), _) => t.note(format!("record {} (LSN {}), {tried} newer rejected", c.record.seq, c.record.lsn)),
            (_, Some(c)) => t.note(format!("snapshot chain {:?}, {tried} rejected", c.seqs())),
            _ if from == StartFrom::Journal => t.note("checkpoints ignored as asked"),
            _ if tried == 0 => t.note("no checkpoints"),
            _ => t.note(format!("none of {tried} usable")),
        }
        let used = u64::from(start.checkpoint.is_some() || start.snapshot.is_some());
        t.finish(tried + used, tried + used, 0);
        t.check_cancel(dir, self.image_changed.get())?;
        self.copy_log = log.map(Arc::new);
        Ok(start)
    }

    /// Stage 3, scan and analysis (pass 1): in parallel chunks, or serially when there is one
    /// worker, the journal fits one chunk, or the parallel scan met something only the serial
    /// rules judge.
    fn scan<'i>(&mut self, inp: &'i Input, start: &StartPoint, setup: Option<&ParallelSetup>) -> Result<Pass1<'i>> {
        let (t, dir, opts, journal, layout) = (self.t, self.dir, self.opts, &inp.journal, &inp.layout);
        // The first segment's blocks before the start point are not scanned.
        let first_skip = journal.start_offset - u64::from(journal.segments[0].header.block_size);
        let journal_bytes = journal.bytes() - first_skip;
        // Scan position: bytes of the segments before each one, less the first one's skip.
        let seg_base: Vec<u64> = journal
            .segments
            .iter()
            .scan(0u64, |acc, m| {
                let base = *acc;
                *acc += m.len;
                Some(base)
            })
            .collect();
        t.begin(Phase::Scan, journal_bytes, setup.map_or(0, |s| s.workers));
        let mut pass1 = None;
        match setup {
            Some(setup) if journal.bytes() > setup.chunk_bytes => {
                match parallel::scan_parallel(layout, journal, opts.mode, setup, start.filter.clone(), t)? {
                    Some(p1) => {
                        self.report.parallel.scan =
                            format!("parallel: {} chunks on {} workers", p1.chunks, setup.workers);
                        self.report.parallel.scan_chunks = p1.chunks;
                        pass1 = Some(Pass1 {
                            outcome: p1.outcome,
                            analyzer: p1.analyzer,
                            routed: Some(p1.routed),
                            home_unrouted: p1.home,
                        });
                    }
                    None => {
                        self.report.parallel.scan =
                            "serial: damage, skip-corrupt mode or an invalid record needs the serial scan's exact rules"
                                .into();
                        t.restart("rescanning serially: the parallel scan met something only the serial scan judges");
                    }
                }
            }
            Some(_) => self.report.parallel.scan = "serial: the journal fits in one chunk".into(),
            None => {}
        }
        let pass1 = match pass1 {
            Some(p) => p,
            None => {
                let mut analyzer = Analyzer::new(layout, journal, opts.mode).with_start(start.filter.clone());
                let mut n = 0u64;
                let outcome = scan::scan(journal, opts.mode, |ctx, h, rec| {
                    n += 1;
                    if n.is_multiple_of(SCAN_PROGRESS_RECORDS) {
                        t.set_main(n, (seg_base[ctx.segment] + ctx.end).saturating_sub(first_skip));
                        t.check_cancel(dir, false)?;
                    }
                    analyzer.visit(ctx, h, rec)
                })?;
                Pass1 { outcome, analyzer, routed: None, home_unrouted: 0 }
            }
        };
        t.note(format!("{} durable bytes, {} records", pass1.outcome.bytes, pass1.outcome.records));
        t.finish(journal_bytes, pass1.outcome.records, journal_bytes);
        t.check_cancel(dir, false)?;
        Ok(pass1)
    }

    /// Stage 3, analysis's end: every transaction's outcome, what redo skips and undo
    /// restores; then the checks that need the whole journal (it is unchanged, copies are
    /// replayed only from a start the writer keeps repeatable, the journal reaches the
    /// checkpoint).
    fn analyze(
        &mut self,
        inp: &Input,
        start: &StartPoint,
        mut analyzer: Analyzer<'_>,
        outcome: &scan::ScanOutcome,
    ) -> Result<Analysis> {
        let t = self.t;
        // After a parallel scan only the transactions that span chunks are left to settle; the
        // phase ends with every transaction of the journal, as the report counts them.
        t.begin(Phase::Analyze, analyzer.txn_count() as u64, 0);
        analyzer.note_damage(outcome.skipped.iter().map(|r| r.lsn_before.saturating_add(1)));
        let analysis = analyzer.finish()?;
        let txns = [TxnOutcome::Committed, TxnOutcome::Aborted, TxnOutcome::InFlight, TxnOutcome::Damaged]
            .into_iter()
            .map(|o| analysis.count(o))
            .sum::<u64>();
        t.finish(txns, txns, 0);
        // What the scan read must still be the journal before anything acts on it.
        inp.journal.check_unchanged()?;
        if self.copy_log.is_none() {
            check_copy_start(start, &analysis, self.dir)?;
        }
        if start.checkpoint.is_none() && start.snapshot.is_none() {
            check_settled_losers(self.dir, &inp.layout, &analysis, outcome.last_lsn)?;
        }
        if let Some(c) = &start.checkpoint {
            // A segment's header names the LSN its first record gets: records below it were
            // written before it, even when the scan (started in it) meets none at all (a
            // writer resumed after recovery and stopped before its first record).
            let floor = inp.journal.segments.first().map_or(0, |s| s.header.first_lsn.saturating_sub(1));
            let durable_end = outcome.last_lsn.max(floor);
            if durable_end < c.record.lsn && self.opts.mode != RecoveryMode::SkipCorrupt {
                return Err(Error::Checkpoint {
                    path: c.path.clone(),
                    offset: None,
                    reason: format!(
                        "every record up to LSN {} was durable when this checkpoint was taken, but the journal's \
                         durable end is LSN {}: records the checkpoint relies on are lost",
                        c.record.lsn, durable_end
                    ),
                });
            }
        }
        self.timer.lap("scan");
        t.check_cancel(self.dir, false)?;
        Ok(analysis)
    }

    /// From here on the image may change: a marker left from an earlier journal must not
    /// survive the first write.
    fn unmark(&mut self) -> Result<()> {
        let marker_path = self.dir.join(MARKER_FILE);
        if marker_path.exists() {
            std::fs::remove_file(&marker_path).map_err(|e| Error::io(&marker_path, "remove stale marker", e))?;
            fsync_dir(self.dir)?;
            self.timer.lap("unmark");
        }
        Ok(())
    }

    /// Stage 4, rebuild only: write the snapshot chain's blocks into the image. The start point
    /// is pinned first (in the copy log), because the image is then older than any checkpoint
    /// record says and no other start point would bring it back.
    fn restore_snapshot(&mut self, inp: &Input, start: &mut StartPoint, analysis: &Analysis) -> Result<()> {
        let t = self.t;
        let Some(chain) = &start.snapshot else {
            t.skip(Phase::RestoreSnapshot, "no snapshot: the image is the base");
            return Ok(());
        };
        t.begin(Phase::RestoreSnapshot, chain.sources.len() as u64, 0);
        if self.copy_log.is_none() {
            let tag = crate::copylog::tag(&self.fingerprint);
            crate::copylog::write(self.dir, tag, start.pinned(), None, &[])?;
        }
        self.unmark()?;
        self.image_changed.set(true);
        let image = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.image_path)
            .map_err(|e| Error::io(&self.image_path, "open image for writing", e))?;
        // Every block the chain holds: the image is lost or damaged, so its home copy is not
        // to be trusted over the snapshot, not even for blocks freed since.
        let restored = snapshot::restore(chain, &image, &self.image_path, &inp.layout, &|_| false, t)?;
        let head = chain.head();
        self.report.snapshot = Some(SnapshotUse {
            seq: head.seq,
            kind: head.kind,
            lsn: head.lsn,
            min_lsn: head.min_lsn,
            chain: chain.seqs(),
            image_created: self.image_created,
            blocks_restored: restored.blocks,
            blocks_unchanged: restored.unchanged,
            blocks_not_in_snapshot: head.excluded.iter().map(|r| r.1).sum(),
            blocks_freed_since: analysis.revoked.len() as u64,
            journal_bytes_skipped: start.bytes_skipped,
            records_skipped: analysis.counts.before_start,
        });
        self.timer.lap("restore snapshot");
        let n = restored.blocks + restored.unchanged + restored.skipped_revoked;
        t.note(format!("{} written, {} already current", restored.blocks, restored.unchanged));
        t.finish(n, n, n * inp.layout.block_size() as u64);
        t.check_cancel(self.dir, self.image_changed.get())
    }

    fn open_image(&self) -> Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.image_path)
            .map_err(|e| Error::io(&self.image_path, "open image for writing", e))
    }

    /// Stage 5, redo, undo and orphan cleanup. The default builds every changed block in
    /// memory (serially, or by partition on the workers); `--image-io pwrite`, or changed
    /// blocks that would not fit the memory budget, replay serially in windows that are
    /// written back as they finish.
    #[expect(clippy::too_many_arguments, reason = "the stage's inputs are all distinct")]
    fn replay(
        &mut self,
        inp: &Input,
        start: &StartPoint,
        analysis: &Analysis,
        outcome: &scan::ScanOutcome,
        routed: Option<parallel::Routed>,
        home_unrouted: u64,
        setup: Option<ParallelSetup>,
        image: &File,
    ) -> Result<Replayed> {
        let (t, dir, opts, layout, journal) = (self.t, self.dir, self.opts, &inp.layout, &inp.journal);
        let bs = layout.block_size() as u64;
        let copies = analysis.counts.copies > 0;
        let touched = analysis.touched.len() as u64;
        let fits = touched.saturating_mul(bs) <= opts.memory_budget_bytes;
        let use_shadow = opts.image_io == ImageIo::Mmap && (fits || copies);
        let parallel = match (&setup, &routed) {
            (Some(setup), Some(_)) if use_shadow && outcome.records >= opts.parallel_threshold => {
                self.report.parallel.replay = format!("parallel: {} partitions", setup.workers);
                setup.clone().into()
            }
            (Some(_), _) => {
                self.report.parallel.replay = if opts.image_io != ImageIo::Mmap {
                    "serial: --image-io pwrite replays serially".into()
                } else if !use_shadow {
                    format!(
                        "serial: {touched} changed blocks would not fit the {} MiB memory budget, so windows",
                        opts.memory_budget_bytes >> 20
                    )
                } else if routed.is_none() {
                    "serial: pass 1 ran serially".into()
                } else {
                    format!(
                        "serial: {} records, below the parallel threshold {}",
                        outcome.records, opts.parallel_threshold
                    )
                };
                None
            }
            (None, _) => None,
        };
        let orphan_blocks = layout.orphan_bitmap.end - layout.orphan_bitmap.start;
        let undo_total = analysis.undo.len() as u64;
        let reads = || crate::copylog::CopyReads::with(self.copy_log.clone());
        if !use_shadow {
            return self.replay_windows(inp, start, analysis, outcome, image).map(|()| Replayed::Written);
        }
        let map = crate::shadow::ImageMap::new(image, &self.image_path, layout)?;
        map.prefetch(&analysis.touched);
        self.timer.lap("map");
        let mut shadow = match (parallel, &routed) {
            (Some(setup), Some(routed)) => {
                let parts = parallel::Partitioner::new(setup.workers, layout.block_count());
                let stores = (0..setup.workers)
                    .map(|_| crate::shadow::BlockStore::new(layout.block_size(), layout.block_count(), reads()))
                    .collect();
                let mut shadow = crate::shadow::ShadowImage::partitioned(map, stores, parts);
                t.begin(Phase::Redo, outcome.records, setup.workers);
                // Records with nothing to route (commits, records the checkpoint's table says are
                // home) are done as soon as the phase starts.
                t.done_at_start(outcome.records.saturating_sub(routed.ops));
                t.note(format!(
                    "parallel: {} workers; each undoes its partition's losers after its redo",
                    setup.workers
                ));
                let (map, stores) = shadow.parts_mut();
                let p2 = parallel::replay_parallel(&setup, layout, journal, analysis, routed, map, stores, t)?;
                self.stats = p2.stats;
                self.stats.redo_skipped_home += home_unrouted;
                self.timer.lap("redo+undo");
                t.finish(outcome.records, outcome.records, 0);
                if setup.dependency_stats {
                    self.report.parallel.dependencies =
                        parallel::dependency_stats(routed, setup.workers, layout.block_count(), analysis);
                    self.timer.lap("dependency stats");
                }
                t.check_cancel(dir, self.image_changed.get())?;
                undo_inside_redo(t, analysis.steal, undo_total, "done by the workers inside the redo phase");
                shadow
            }
            _ => {
                let mut shadow = crate::shadow::ShadowImage::serial(map, reads());
                t.begin(Phase::Redo, outcome.records, 0);
                replay::redo_window(
                    &mut shadow,
                    layout,
                    journal,
                    opts.mode,
                    outcome,
                    analysis,
                    &(0..layout.block_count()),
                    &mut self.stats,
                    t,
                )?;
                self.timer.lap("redo");
                t.finish(outcome.records, outcome.records, 0);
                t.check_cancel(dir, self.image_changed.get())?;
                if analysis.restore_dropped {
                    undo_inside_redo(t, true, undo_total, UNDO_IN_REDO);
                } else if analysis.steal {
                    t.begin(Phase::Undo, undo_total, 0);
                    replay::undo_losers(&mut shadow, layout, journal, analysis, &|_| true, &mut self.stats, Some(t))?;
                    self.timer.lap("undo");
                    t.finish(undo_total, undo_total, 0);
                    t.check_cancel(dir, self.image_changed.get())?;
                } else {
                    t.skip(Phase::Undo, NO_STEAL_UNDO);
                }
                shadow
            }
        };
        t.begin(Phase::OrphanCleanup, orphan_blocks, 0);
        replay::clean_orphans(&mut shadow, layout, &mut self.stats)?;
        self.timer.lap("orphans");
        t.finish(orphan_blocks, self.stats.orphans_freed, 0);
        t.check_cancel(dir, self.image_changed.get())?;
        self.windows = 1;
        let _ = start;
        Ok(Replayed::Shadow(shadow))
    }

    /// Stage 5 and 6 in windows (`--image-io pwrite`, or a memory budget too small for every
    /// changed block): each window is a pass over the journal that reads its blocks, redoes,
    /// undoes, cleans orphans (the first window), and writes its blocks back.
    fn replay_windows(
        &mut self,
        inp: &Input,
        start: &StartPoint,
        analysis: &Analysis,
        outcome: &scan::ScanOutcome,
        image: &File,
    ) -> Result<()> {
        let (t, dir, opts, layout, journal) = (self.t, self.dir, self.opts, &inp.layout, &inp.journal);
        let bs = layout.block_size();
        let copies = analysis.counts.copies > 0;
        let orphan_blocks = layout.orphan_bitmap.end - layout.orphan_bitmap.start;
        let undo_total = analysis.undo.len() as u64;
        let blocks_max = (opts.memory_budget_bytes / (bs as u64 + 64)).max(1) as usize;
        // A copy reads its source as replay reaches it, so source and destination must be in
        // one window: with copies in the journal, one window holds every block.
        let blocks_max = if copies { usize::MAX } else { blocks_max };
        let windows = replay::plan_windows(&analysis.touched, blocks_max, layout);
        let nw = windows.len() as u64;
        // Each window is a pass of its own over the journal; the phases count all passes.
        t.begin(Phase::Redo, outcome.records * nw, 0);
        t.note(format!(
            "{nw} window(s): each reads its blocks, redoes, undoes{} and writes its blocks back",
            if nw > 1 { " (orphan cleanup with the first)" } else { "" }
        ));
        for (wi, window) in windows.iter().enumerate() {
            let in_window = analysis.touched.iter().filter(|b| window.contains(b)).count();
            let image_path = self.image_path.clone();
            let mut cache = BlockCache::new(image, &image_path, bs, in_window);
            cache.copies = crate::copylog::CopyReads::with(self.copy_log.clone());
            self.timer.lap("cache");
            replay::redo_window(&mut cache, layout, journal, opts.mode, outcome, analysis, window, &mut self.stats, t)?;
            self.timer.lap("redo");
            t.check_cancel(dir, self.image_changed.get())?;
            if analysis.steal && !analysis.restore_dropped {
                replay::undo_losers(
                    &mut cache,
                    layout,
                    journal,
                    analysis,
                    &|b| window.contains(&b),
                    &mut self.stats,
                    None,
                )?;
                self.timer.lap("undo");
            }
            if wi == 0 {
                replay::clean_orphans(&mut cache, layout, &mut self.stats)?;
                self.timer.lap("orphans");
            }
            self.stats.bytes_read += cache.bytes_read;
            if copies {
                self.write_copy_log(start, vec![std::mem::take(&mut cache.copies)])?;
            }
            self.unmark()?;
            self.image_changed.set(true);
            self.stats.blocks_written += cache.write_back(self.stats.blocks_written, opts.fault)?;
            self.timer.lap("write-back");
        }
        t.finish(outcome.records * nw, outcome.records * nw, 0);
        let how = if analysis.restore_dropped { UNDO_IN_REDO } else { "done window by window inside the redo phase" };
        undo_inside_redo(t, analysis.steal, undo_total, how);
        t.begin(Phase::OrphanCleanup, orphan_blocks, 0);
        t.note("done with the first window, inside the redo phase");
        t.finish(orphan_blocks, self.stats.orphans_freed, 0);
        self.windows = nw;
        Ok(())
    }

    /// Makes what copies read durable before the first block is written (a rerun that finds
    /// the image half written reads the same bytes), with the start point this run chose.
    fn write_copy_log(&mut self, start: &StartPoint, reads: Vec<crate::copylog::CopyReads>) -> Result<()> {
        let recorded: usize = reads.iter().map(crate::copylog::CopyReads::recorded).sum();
        if recorded == 0 && self.copy_log.is_some() {
            // Everything came from the earlier run's log, which is already durable.
            return Ok(());
        }
        let tag = crate::copylog::tag(&self.fingerprint);
        let start = self.copy_log.as_ref().and_then(|l| l.start).unwrap_or_else(|| start.pinned());
        let bytes = crate::copylog::write(self.dir, tag, start, self.copy_log.as_deref(), &reads)?;
        self.report.copy_log = Some(CopyLogUse { copies: recorded as u64, bytes });
        self.timer.lap("copy log");
        Ok(())
    }

    /// Stage 6, write-back: the copy log first when copies were replayed, then every changed
    /// block whose content differs from the file's (by store, in parallel after a parallel
    /// replay), then one fdatasync.
    fn write_back(
        &mut self,
        inp: &Input,
        start: &StartPoint,
        analysis: &Analysis,
        image: &File,
        replayed: Replayed,
    ) -> Result<()> {
        let (t, opts) = (self.t, self.opts);
        let bs = inp.layout.block_size() as u64;
        match replayed {
            Replayed::Shadow(mut shadow) => {
                let held = shadow.blocks_held();
                // Past this point recovery finishes: the flush is what makes stopping safe.
                t.begin(Phase::Flush, held * bs, 0);
                if analysis.counts.copies > 0 {
                    let reads = shadow.take_copy_reads();
                    self.write_copy_log(start, reads)?;
                }
                self.unmark()?;
                self.image_changed.set(true);
                let fail_after = match opts.fault {
                    Some(FaultPoint::AfterBlockWrites(n)) => Some(n),
                    _ => None,
                };
                let pool = (self.report.parallel.workers > 1)
                    .then(|| rayon::ThreadPoolBuilder::new().num_threads(self.report.parallel.workers).build().ok())
                    .flatten();
                let wb = shadow.write_back(pool.as_ref(), fail_after)?;
                self.stats.blocks_written = wb.written;
                self.stats.blocks_unchanged = wb.unchanged;
                self.stats.memory_bytes = wb.bytes_held;
                self.timer.lap("write-back");
                t.note(format!(
                    "{} blocks written, {} changed back to what the file held; one fdatasync",
                    wb.written, wb.unchanged
                ));
                image.sync_data().map_err(|e| Error::io(&self.image_path, "fdatasync image", e))?;
                // The image is durable by now: its stores and mapping are never used again.
                drop_off_path(shadow);
                self.timer.lap("flush");
            }
            Replayed::Written => {
                t.begin(Phase::Flush, 0, 0);
                t.note("the blocks were written back in the redo phase; this is the fdatasync and the marker");
                image.sync_data().map_err(|e| Error::io(&self.image_path, "fdatasync image", e))?;
                self.timer.lap("flush");
            }
        }
        Ok(())
    }

    /// Stage 7, mark: the journal must still be what was read; then the marker.
    fn mark(&mut self, inp: &Input, outcome: &scan::ScanOutcome) -> Result<()> {
        if self.opts.fault == Some(FaultPoint::BeforeMarker) {
            return Err(Error::InjectedFault("before-marker"));
        }
        inp.journal.check_unchanged()?;
        let tail = outcome
            .tail
            .as_ref()
            .map(|t| (t.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(), t.offset));
        mark_recovered(self.dir, self.fingerprint.clone(), outcome.last_lsn, tail)?;
        self.timer.lap("mark");
        let bs = inp.layout.block_size() as u64;
        let written = self.stats.blocks_written;
        self.t.finish(written * bs, written, written * bs);
        Ok(())
    }

    /// Stage 8, the checkpoint record a resumed writer starts after (see
    /// [`RecoverOptions::final_checkpoint`]).
    fn final_checkpoint(&mut self, inp: &Input, outcome: &scan::ScanOutcome) -> Result<()> {
        if !self.opts.final_checkpoint || outcome.records == 0 {
            return Ok(());
        }
        let record = checkpoint::CheckpointRecord::new(
            &inp.layout,
            checkpoint::CheckpointKind::Emergency,
            outcome.last_lsn,
            Vec::new(),
            Vec::new(),
        );
        let w = checkpoint::write(self.dir, record)?;
        checkpoint::prune(self.dir, checkpoint::RETAIN_DEFAULT, false)?;
        self.report.final_checkpoint = Some(w.record.seq);
        self.timer.lap("final checkpoint");
        Ok(())
    }

    /// The report, completed.
    fn report(mut self, start: &StartPoint, analysis: &Analysis, outcome: scan::ScanOutcome) -> RecoveryReport {
        let report = &mut self.report;
        let steal = analysis.steal;
        let losers = analysis.count(TxnOutcome::InFlight);
        report.txns = TxnCounts {
            committed: analysis.count(TxnOutcome::Committed),
            aborted: analysis.count(TxnOutcome::Aborted),
            rolled_back: if steal { losers } else { 0 },
            discarded: if steal { 0 } else { losers },
            damaged: analysis.count(TxnOutcome::Damaged),
        };
        report.loser_allocations_freed = analysis.loser_allocs();
        if let Some(c) = &start.checkpoint {
            report.checkpoint = Some(CheckpointUse {
                seq: c.record.seq,
                kind: c.record.kind,
                lsn: c.record.lsn,
                redo_start: c.record.redo_start,
                open_txns: c.record.open.len() as u64,
                dirty_blocks: c.record.dirty.len() as u64,
                fallbacks: c.index as u64,
                find_ms: start.find_ms,
                journal_bytes_skipped: start.bytes_skipped,
                records_before_start: analysis.counts.before_start,
                records_home: self.stats.redo_skipped_home,
            });
        }
        report.bytes_scanned = outcome.bytes;
        report.records_scanned = outcome.records;
        report.lsn_range = (outcome.first_lsn, outcome.last_lsn);
        report.record_counts = analysis.counts;
        report.replay = self.stats;
        report.tail = outcome.tail;
        report.skipped = outcome.skipped;
        report.invalid = analysis.invalid.clone();
        report.windows = self.windows;
        report.phases = std::mem::take(&mut self.timer.phases);
        report.total_ms = self.started.elapsed().as_secs_f64() * 1e3;
        report.throughput_mb_s = report.bytes_scanned as f64 / 1e6 / (report.total_ms / 1e3).max(1e-9);
        report.stats = statistics(self.t);
        if self.opts.dependency_stats && report.parallel.workers > 1 {
            let par = &report.parallel;
            report.parallel.whole =
                Some(WholeBound::of(&report.stats.phases, par.workers, par.scan_chunks, par.dependencies.as_ref()));
        }
        self.report
    }
}

/// The undo phase's note when skip-corrupt took the dropped transactions out during redo.
const UNDO_IN_REDO: &str = "skip-corrupt: the dropped transactions were taken out during redo";

/// The undo phase's note when there is nothing to undo.
const NO_STEAL_UNDO: &str = "no-steal: losers never reached the image";

/// Reports an undo that ran inside the redo phase (`how` says where): started and finished at
/// once with its records, or, under no-steal, as empty.
fn undo_inside_redo(t: &Tracker<'_>, steal: bool, total: u64, how: &str) {
    if steal {
        t.begin(Phase::Undo, total, 0);
        t.note(how);
        t.finish(total, total, 0);
    } else {
        t.skip(Phase::Undo, NO_STEAL_UNDO);
    }
}

/// Serial scan: records between progress updates and cancellation checks.
const SCAN_PROGRESS_RECORDS: u64 = 4096;

/// The report's statistics, from the tracker's counters so far.
fn statistics(t: &Tracker<'_>) -> Statistics {
    let (phases, workers) = t.stats();
    Statistics { phases, workers, batch_apply: t.batch_apply.summary(), segment_read: t.segment_read.summary() }
}

/// Settings of [`checkpoint_dir`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointOptions {
    /// The kind to record. A recovered image is durable whole, so every kind gives the same
    /// record (an empty dirty block table and no open transactions); the kind says why it
    /// was taken.
    pub kind: checkpoint::CheckpointKind,
    /// Records to keep afterwards. Default 64.
    pub retain: usize,
    /// Also remove journal segments no kept record needs. Default false.
    pub recycle_journal: bool,
}

impl Default for CheckpointOptions {
    fn default() -> Self {
        CheckpointOptions {
            kind: checkpoint::CheckpointKind::Full,
            retain: checkpoint::RETAIN_DEFAULT,
            recycle_journal: false,
        }
    }
}

/// What [`checkpoint_dir`] wrote and removed.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CheckpointReport {
    /// The record file.
    pub path: PathBuf,
    /// The record written.
    pub record: checkpoint::CheckpointRecord,
    /// File length.
    pub file_bytes: u64,
    /// Seconds spent (image fsync, record write and fsyncs).
    pub write_secs: f64,
    /// What retention removed.
    pub pruned: checkpoint::Pruned,
}

impl std::fmt::Display for CheckpointReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = &self.record;
        writeln!(
            f,
            "checkpoint {} ({}) at LSN {}: recovery will start at LSN {}; {} bytes, written in {:.3} s",
            r.seq, r.kind, r.lsn, r.redo_start, self.file_bytes, self.write_secs
        )?;
        write!(f, "  file {}", self.path.display())?;
        if !self.pruned.checkpoints.is_empty() || !self.pruned.segments.is_empty() {
            write!(
                f,
                "\n  retention removed {} checkpoint records and {} journal segments",
                self.pruned.checkpoints.len(),
                self.pruned.segments.len()
            )?;
        }
        Ok(())
    }
}

/// The recovered directory's marker, or `NotRecovered` when the journal changed since.
fn recovered_marker(dir: &Path, journal: &Journal) -> Result<Marker> {
    let fingerprint = journal_fingerprint(journal);
    read_marker(&dir.join(MARKER_FILE))
        .filter(|m| m.files == fingerprint)
        .ok_or_else(|| Error::NotRecovered { path: dir.to_path_buf() })
}

/// Writes a checkpoint record for a recovered directory: its image is the committed state as
/// of the last LSN its recovery replayed, durable whole, so the record has no dirty blocks
/// and no open transactions, and the next recovery starts after that LSN. Refuses a
/// directory whose journal changed since its last recovery.
pub fn checkpoint_dir(dir: &Path, o: &CheckpointOptions) -> Result<CheckpointReport> {
    check_dir(dir)?;
    let _lock = lock_dir(dir)?;
    let (layout, journal) = open_dir(dir, RecoveryMode::TolerateTail, &IoOptions::default())?;
    let marker = recovered_marker(dir, &journal)?;
    drop(journal);
    let t = Instant::now();
    // Recovery synced the image; syncing again costs nothing then, and covers an image that
    // was copied in by other means.
    let image_path = dir.join(IMAGE_FILE);
    File::open(&image_path).and_then(|f| f.sync_all()).map_err(|e| Error::io(&image_path, "fsync image", e))?;
    let record = checkpoint::CheckpointRecord::new(&layout, o.kind, marker.last_lsn, Vec::new(), Vec::new());
    let w = checkpoint::write(dir, record)?;
    let write_secs = t.elapsed().as_secs_f64();
    let pruned = checkpoint::prune(dir, o.retain, o.recycle_journal)?;
    if !pruned.segments.is_empty() {
        // The image is still the recovered state of what is left of the journal: say so, or
        // the next checkpoint would be refused and the next recovery would redo the work.
        let (_, rest) = open_dir(dir, RecoveryMode::TolerateTail, &IoOptions::default())?;
        write_json_atomic(
            &dir.join(MARKER_FILE),
            &Marker { version: 1, files: journal_fingerprint(&rest), last_lsn: marker.last_lsn, tail: marker.tail },
        )?;
    }
    Ok(CheckpointReport { path: w.path, file_bytes: w.file_bytes, record: w.record, write_secs, pruned })
}

/// Settings of [`snapshot_dir`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotOptions {
    /// What to write.
    pub kind: snapshot::SnapshotKind,
    /// Compression. Default zstd.
    pub compression: snapshot::Compression,
    /// Snapshots to keep afterwards (chains they need are kept too). Default 64.
    pub retain: usize,
}

impl Default for SnapshotOptions {
    fn default() -> Self {
        SnapshotOptions {
            kind: snapshot::SnapshotKind::Full,
            compression: snapshot::Compression::Zstd,
            retain: snapshot::RETAIN_DEFAULT,
        }
    }
}

/// What [`snapshot_dir`] wrote and removed.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SnapshotReport {
    /// The snapshot file.
    pub path: PathBuf,
    /// Its sequence number.
    pub seq: u64,
    /// Kind.
    pub kind: snapshot::SnapshotKind,
    /// The LSN its state is as of.
    pub lsn: u64,
    /// Parent (incremental).
    pub parent: Option<u64>,
    /// Compression.
    pub compression: snapshot::Compression,
    /// Blocks held.
    pub blocks: u64,
    /// Raw bytes of the blocks held.
    pub raw_bytes: u64,
    /// File length.
    pub file_bytes: u64,
    /// Seconds spent writing it (compression, write, fsync).
    pub write_secs: f64,
    /// What retention removed.
    pub pruned: snapshot::Pruned,
}

impl std::fmt::Display for SnapshotReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "snapshot {} ({}{}) at LSN {}: {} blocks ({:.1} MiB raw, {:.1} MiB {}, ratio {:.2}); written in {:.3} s",
            self.seq,
            self.kind,
            self.parent.map_or(String::new(), |p| format!(", parent {p}")),
            self.lsn,
            self.blocks,
            self.raw_bytes as f64 / (1 << 20) as f64,
            self.file_bytes as f64 / (1 << 20) as f64,
            self.compression,
            self.raw_bytes as f64 / self.file_bytes.max(1) as f64,
            self.write_secs
        )?;
        write!(f, "  file {}", self.path.display())?;
        if !self.pruned.snapshots.is_empty() {
            write!(f, "\n  retention removed {} snapshots", self.pruned.snapshots.len())?;
        }
        Ok(())
    }
}

/// Writes a snapshot (a backup of the image, see [`crate::snapshot`]) of a recovered
/// directory's image, as of the last LSN its recovery replayed. Refuses a directory whose
/// journal changed since its last recovery (the image is then not the committed state of any
/// LSN).
pub fn snapshot_dir(dir: &Path, o: &SnapshotOptions) -> Result<SnapshotReport> {
    use snapshot::SnapshotKind as K;
    check_dir(dir)?;
    let _lock = lock_dir(dir)?;
    let mode = RecoveryMode::TolerateTail;
    let (layout, journal) = open_dir(dir, mode, &IoOptions::default())?;
    let marker = recovered_marker(dir, &journal)?;
    let lsn = marker.last_lsn;
    let first_lsn = journal.segments[0].header.first_lsn;
    let (prev, _) = snapshot::select(dir, &layout, first_lsn)?;
    let n = layout.block_count();
    let image_path = dir.join(IMAGE_FILE);
    let image = std::fs::read(&image_path).map_err(|e| Error::io(&image_path, "read image", e))?;
    let bs = layout.block_size();
    let blk = |buf: &[u8], b: u64| buf[b as usize * bs..(b as usize + 1) * bs].to_vec();
    // Every block, freed ones included: a backup cannot know which of them the system
    // reused without logging, so it keeps them all.
    let (blocks, parent): (Vec<u64>, Option<u64>) = match o.kind {
        K::Full => ((0..n).collect(), None),
        K::Incremental => {
            let Some(chain) = &prev else {
                return Err(Error::Config(
                    "no valid snapshot to chain an incremental one to; write a full one first".into(),
                ));
            };
            let mut held = vec![0u8; image.len()];
            snapshot::materialize(chain, &layout, &mut held)?;
            let blocks =
                (0..n).filter(|&b| !chain.sources.contains_key(&b) || blk(&held, b) != blk(&image, b)).collect();
            (blocks, Some(chain.head().seq))
        }
    };
    let spec = snapshot::Spec {
        kind: o.kind,
        lsn,
        min_lsn: lsn + 1,
        open_txns: Vec::new(),
        parent,
        compression: o.compression,
        blocks,
        dropped: Vec::new(),
        excluded: Vec::new(),
    };
    let t = Instant::now();
    let w = snapshot::write(dir, &layout, &image, &spec)?;
    let write_secs = t.elapsed().as_secs_f64();
    let pruned = snapshot::prune(dir, o.retain)?;
    Ok(SnapshotReport {
        path: w.path,
        seq: w.manifest.seq,
        kind: o.kind,
        lsn,
        parent,
        compression: o.compression,
        blocks: w.manifest.blocks,
        raw_bytes: w.manifest.raw_bytes(),
        file_bytes: w.file_bytes,
        write_secs,
        pruned,
    })
}
