//! The `fastrec` command line: a thin shell over the `recovery` and `workloads` libraries.

mod progress_ui;
mod trials;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use recovery::checkpoint::CheckpointKind;
use recovery::recover::{CheckpointOptions, SnapshotOptions};
use recovery::snapshot::{Compression, SnapshotKind};
use recovery::{
    DirectFallback, Executor, ImageIo, IoBackend, IoOptions, MmapAdvice, PinMode, RecoverOptions, RecoveryMode,
};
use workloads::{
    AddressDist, Cadence, CheckpointPlan, CheckpointStyle, CrashKind, GenParams, Policy, Preset, SnapshotPlan,
    Writeback,
};

/// Crash recovery for write-ahead journals, and the tools to prove it right.
///
/// A recovery directory holds an image file (the home location) and a journal of segment
/// files. `gen` makes a crash state with an independently computed expected image, `recover`
/// brings the image to exactly the committed state, `verify` checks it against the oracle.
#[derive(Parser)]
#[command(name = "fastrec", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a seeded crash state: image, journal, manifest and oracle digests.
    Gen(GenArgs),
    /// Run the lab: the experiment matrix, with results and provenance under
    /// results/runs/<date>-<host>-<sha>/, plots, the report page and the claims table.
    Lab(LabArgs),
    /// Recover a directory in place to its committed state.
    Recover(RecoverArgs),
    /// Compare the image with the oracle; exit 0 iff it matches, 1 naming the first bad block.
    Verify {
        /// The crash-state directory.
        dir: PathBuf,
    },
    /// Summarise segments, transactions and the crash point, without changing anything.
    Inspect {
        /// The directory (with --format jbd2: the ext4 image file).
        dir: PathBuf,
        /// fastrec (default) or jbd2 (an ext4 image: its journal's transactions, revokes and
        /// where the log ends and why, as `debugfs -R logdump` tells but summarised).
        #[arg(long, value_enum, default_value = "fastrec")]
        format: FormatArg,
        /// Damage handling while scanning (as for `recover`).
        #[arg(long, default_value = "tolerate-tail")]
        mode: ModeArg,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Flip random bits in the journal or the image (for testing bad input).
    Corrupt {
        /// The directory.
        dir: PathBuf,
        /// What to damage.
        #[arg(long)]
        target: TargetArg,
        /// How many bits to flip.
        #[arg(long, default_value_t = 1)]
        flips: usize,
        /// Seed choosing the bits.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Write a checkpoint record for a recovered directory (its image is durable whole), so
    /// the next recovery reads the journal only after it; prune old records (and, if asked,
    /// journal segments no kept record needs).
    Checkpoint(CheckpointArgs),
    /// Write a snapshot (a compressed backup of a recovered directory's image) that
    /// `recover --from-snapshot` can rebuild a lost or damaged image from, with the journal
    /// after it.
    Snapshot(SnapshotArgs),
    /// Run the simulated system as a real writer (image and journal written and synced as a
    /// running system would), logging what recovery must give at each moment. Meant to be
    /// killed: `fastrec trials --kind sigkill` does so.
    Writer(WriterArgs),
    /// Reliability trials: kill a live writer, simulate power-loss crash images, or kill
    /// recovery; recover and check each against its oracle (docs/RELIABILITY.md). Exits 1 if
    /// any trial found a violation.
    Trials(TrialsArgs),
    /// Generate a crash state, recover it and verify it, with a summary.
    Demo {
        /// Preset to generate.
        #[arg(long, default_value = "default")]
        preset: String,
        /// Seed.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Keep the crash state in this directory instead of a temporary one.
        #[arg(long)]
        keep: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
struct WriterArgs {
    #[command(flatten)]
    gen: GenArgs,
    /// The log: `base DIGEST`, then `c K TXID DIGEST` before each commit record is appended
    /// and `d K` after each journal sync (docs/RELIABILITY.md). Appended to.
    #[arg(long)]
    log: PathBuf,
    /// Continue a recovered directory (after its final checkpoint record) instead of making
    /// a new one.
    #[arg(long)]
    resume: bool,
}

#[derive(clap::Args)]
struct TrialsArgs {
    /// Which trials: sigkill (a live writer killed, recovered, resumed and killed again),
    /// images (simulated power-loss crash images), recovery-kill (recovery killed, then
    /// recovered again), exhaustive (every crash state of small writers).
    #[arg(long, value_enum)]
    kind: trials::TrialKind,
    /// Number of trials (for exhaustive: of writers, each with all its crash states).
    #[arg(long, default_value_t = 100)]
    trials: u64,
    /// Seed: the same seed and arguments give the same workloads and crash choices (kill
    /// timings are real time and vary); each trial's line names the seed of its workload.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Workload preset.
    #[arg(long, default_value = "small")]
    preset: String,
    /// Transactions per writer run (default: the preset's; exhaustive: 4).
    #[arg(long)]
    txns: Option<u64>,
    /// Scratch directory (default: a new folder under the system's temporary directory).
    #[arg(long)]
    work: Option<PathBuf>,
    /// Append one JSON line per trial to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Keep the directories of failing trials in the scratch directory.
    #[arg(long)]
    keep_failures: bool,
}

#[derive(clap::Args)]
struct CheckpointArgs {
    /// A directory recovered since its journal last changed.
    dir: PathBuf,
    /// Why it is taken: full (sharp), incremental, metadata or emergency. A recovered image
    /// is durable whole, so every type writes the same record (no dirty blocks, no open
    /// transactions); the type is recorded.
    #[arg(long = "type", default_value = "full")]
    kind: String,
    /// Checkpoint records to keep; older ones are removed.
    #[arg(long, default_value_t = recovery::checkpoint::RETAIN_DEFAULT)]
    retain: usize,
    /// Also remove journal segments wholly before the oldest kept record's redo start.
    #[arg(long)]
    recycle_journal: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct SnapshotArgs {
    /// A directory recovered since its journal last changed.
    dir: PathBuf,
    /// full: every block (except those freed and not logged since); incremental: blocks
    /// changed since the newest snapshot, chained to it.
    #[arg(long = "type", default_value = "full")]
    kind: String,
    /// Chunk compression: zstd, lz4 or none.
    #[arg(long, default_value = "zstd")]
    compression: String,
    /// Snapshots to keep; older ones go unless a kept chain needs them.
    #[arg(long, default_value_t = recovery::snapshot::RETAIN_DEFAULT)]
    retain: usize,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum ModeArg {
    TolerateTail,
    Absolute,
    SkipCorrupt,
}

impl From<ModeArg> for RecoveryMode {
    fn from(m: ModeArg) -> Self {
        match m {
            ModeArg::TolerateTail => RecoveryMode::TolerateTail,
            ModeArg::Absolute => RecoveryMode::Absolute,
            ModeArg::SkipCorrupt => RecoveryMode::SkipCorrupt,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum IoArg {
    Auto,
    Read,
    Pread,
    Mmap,
    Direct,
}

#[derive(Clone, Copy, ValueEnum)]
enum DirectFallbackArg {
    Read,
    Error,
}

#[derive(Clone, Copy, ValueEnum)]
enum ImageIoArg {
    Mmap,
    Pwrite,
}

#[derive(Clone, Copy, ValueEnum)]
enum PinArg {
    None,
    Cores,
    Numa,
}

#[derive(Clone, Copy, ValueEnum)]
enum ExecutorArg {
    Pinned,
    Rayon,
}

#[derive(Clone, Copy, ValueEnum)]
enum TargetArg {
    Journal,
    Image,
}

#[derive(clap::Args)]
struct GenArgs {
    /// Directory to create (must not hold a journal already); with --format jbd2, the image
    /// file to write.
    #[arg(long)]
    out: PathBuf,
    /// fastrec (default) or jbd2: an ext4 image made with mkfs.ext4 whose journal debugfs
    /// filled with seeded transactions (needs e2fsprogs; --seed picks block size, 64bit,
    /// checksums, transactions and revokes, --txns overrides the count, --jbd2-journal-mib and
    /// --jbd2-max-blocks make large journals for benchmarks).
    #[arg(long, value_enum, default_value = "fastrec")]
    format: FormatArg,
    /// With --format jbd2: journal size in MiB (the file system is made 4x as large).
    #[arg(long)]
    jbd2_journal_mib: Option<u64>,
    /// With --format jbd2: most blocks per transaction.
    #[arg(long)]
    jbd2_max_blocks: Option<usize>,
    /// Named parameter set: small, default, large, skewed, steal, cpu-bound, memory-bound, physical, deps.
    #[arg(long, default_value = "default")]
    preset: String,
    /// Seed; the same seed and parameters give byte-identical output.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Number of transactions.
    #[arg(long)]
    txns: Option<u64>,
    /// Buffer policy: no-steal (image holds only committed changes) or steal.
    #[arg(long)]
    policy: Option<String>,
    /// Crash kind: clean, cut, torn, zero-tail, garbage-tail.
    #[arg(long)]
    crash: Option<String>,
    /// Block address distribution: uniform, sequential, zipf:SKEW, hot:FRACTION:PROBABILITY.
    #[arg(long)]
    dist: Option<String>,
    /// Fraction of transactions that abort.
    #[arg(long)]
    abort_rate: Option<f64>,
    /// Transactions left in flight at the crash.
    #[arg(long)]
    inflight: Option<u32>,
    /// Transactions open at once.
    #[arg(long)]
    interleave: Option<u32>,
    /// Fraction of writes that cover a whole block.
    #[arg(long)]
    full_fraction: Option<f64>,
    /// Operations per transaction, as MIN-MAX.
    #[arg(long)]
    ops: Option<String>,
    /// Fraction of writes that are COPY records (cross-block dependencies), 0 to 1.
    #[arg(long = "deps", value_name = "RATE")]
    deps: Option<f64>,
    /// How far a copy's source is from its destination, in blocks (at least 1).
    #[arg(long, value_name = "N")]
    deps_reach: Option<u64>,
    /// Write checkpoint records as the system runs, at this cadence: N transactions (3000),
    /// journal bytes (64MiB), or simulated time at 10 transactions a second (5min, 300s;
    /// 5min@20 for another rate). "default" is 5min.
    #[arg(long, value_name = "CADENCE")]
    checkpoint_every: Option<String>,
    /// How those checkpoints are taken: incremental (fuzzy: the record carries the dirty block
    /// table; the default), full (sharp: every dirty block written back first), metadata (the
    /// metadata region written back, data fuzzy) or emergency (sharp).
    #[arg(long, value_name = "TYPE", default_value = "incremental")]
    checkpoint_type: String,
    /// Checkpoint records kept as the system runs.
    #[arg(long, default_value_t = recovery::checkpoint::RETAIN_DEFAULT)]
    checkpoint_retain: usize,
    /// Do not crash in the middle of a checkpoint (write-back half done, record half-written).
    #[arg(long)]
    no_torn_checkpoint: bool,
    /// Write snapshots (image backups) as the system runs, at this cadence (as for
    /// --checkpoint-every); a full one every 8, incrementals between.
    #[arg(long, value_name = "CADENCE")]
    snapshot_every: Option<String>,
    /// The background writer's pace: dirty blocks written back per operation, on average.
    #[arg(long, value_name = "BLOCKS")]
    flush_rate: Option<f64>,
    /// Which dirty blocks the background writer writes back first: oldest (by their oldest
    /// change not yet home) or random.
    #[arg(long)]
    writeback: Option<String>,
}

#[derive(clap::Args)]
struct LabArgs {
    /// A few minutes on 2 cores: 64 MiB I/O journals, 3 repetitions, three checkpoint
    /// cadences (the default).
    #[arg(long, conflicts_with = "full")]
    quick: bool,
    /// For real machines: 256 MiB I/O journals of two record sizes, 5 repetitions, six
    /// cadences, crashes after and before a checkpoint.
    #[arg(long)]
    full: bool,
    /// Run only these experiments (comma-separated): scaling, deps, io, checkpoint,
    /// progress, latency, bandwidth.
    #[arg(long)]
    only: Option<String>,
    /// Only re-render the report page, claims table and every run's summary and plots from
    /// the committed raw data.
    #[arg(long, conflicts_with_all = ["quick", "full", "only"])]
    render: bool,
    /// The results directory.
    #[arg(long, default_value = "results")]
    results: PathBuf,
    /// Where to generate journals (a temporary directory is made under it); its file system
    /// is recorded, and cold-cache figures mean little on tmpfs.
    #[arg(long)]
    work: Option<PathBuf>,
    /// Seed of every generated workload.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(clap::Args)]
struct RecoverArgs {
    /// The directory to recover (with --format jbd2: the ext4 image file).
    dir: PathBuf,
    /// fastrec (default): a fastrec directory. jbd2: an ext4 image file whose internal journal
    /// is replayed as e2fsck replays it, then reset, with needs_recovery cleared (only
    /// --workers and --report apply; docs/JBD2.md).
    #[arg(long, value_enum, default_value = "fastrec")]
    format: FormatArg,
    /// tolerate-tail (default): cut a torn tail; absolute: any damage is an error and the
    /// image is untouched; skip-corrupt: skip damaged records, leave out every transaction
    /// that may have lost one, and report what is in doubt (docs/DESIGN.md, "Skip-corrupt").
    #[arg(long, default_value = "tolerate-tail")]
    mode: ModeArg,
    /// Journal reader. auto (default): mmap (populated) for journals of at least
    /// --mmap-threshold, read below it or where the file system cannot map (the lab's rule:
    /// see docs/DESIGN.md). read: sequential read(2) of --io-buffer at a time. pread: --pread-depth
    /// positioned reads of --io-buffer in flight. mmap: a read-only mapping (see --mmap-*).
    /// direct: O_DIRECT reads that bypass the page cache (see --direct-fallback).
    #[arg(long, default_value = "auto")]
    io: IoArg,
    /// Bytes per read request of read, pread and direct, 4K to 4M.
    #[arg(long, default_value = "1M")]
    io_buffer: String,
    /// Positioned reads in flight per segment (--io pread).
    #[arg(long, default_value_t = 4)]
    pread_depth: usize,
    /// --io auto maps journals at least this large, e.g. 64M.
    #[arg(long, default_value = "1M")]
    mmap_threshold: String,
    /// mmap without MAP_POPULATE (fault pages in as they are read).
    #[arg(long)]
    mmap_no_populate: bool,
    /// madvise(MADV_SEQUENTIAL) on journal mappings.
    #[arg(long)]
    mmap_sequential: bool,
    /// madvise(MADV_WILLNEED) on journal mappings.
    #[arg(long)]
    mmap_willneed: bool,
    /// madvise(MADV_HUGEPAGE) on journal mappings.
    #[arg(long)]
    mmap_hugepage: bool,
    /// Where the file system refuses O_DIRECT (e.g. tmpfs): read (default: read through the
    /// page cache and say so in the report) or error.
    #[arg(long, default_value = "read")]
    direct_fallback: DirectFallbackArg,
    /// Image access: mmap (default: map the image, build changed blocks in memory, store back
    /// only those that differ, one fdatasync) or pwrite (read changed blocks into a cache
    /// bounded by --memory-budget, write them back with pwrite).
    #[arg(long, default_value = "mmap")]
    image_io: ImageIoArg,
    /// Memory for the pwrite block cache, e.g. 512M or 1G (more touched blocks than fit are
    /// recovered in several windows), and separately for journal segments read by read, pread
    /// or direct (segments beyond it are read again by later passes).
    #[arg(long, default_value = "1G")]
    memory_budget: String,
    /// Replay even if the journal is marked recovered.
    #[arg(long)]
    force: bool,
    /// Worker threads (default: one per available CPU, capped by --workers-max). 1 recovers
    /// serially; more than the CPUs is allowed but warned about.
    #[arg(long)]
    workers: Option<usize>,
    /// Upper bound on workers.
    #[arg(long, default_value_t = 16)]
    workers_max: usize,
    /// Placement of pinned workers (--executor pinned): none, cores (one CPU each, in order)
    /// or numa (spread over NUMA nodes, then CPUs within each node).
    #[arg(long, default_value = "numa")]
    pin: PinArg,
    /// Only use these NUMA nodes, e.g. 0,1 (an unknown node is an error).
    #[arg(long, value_delimiter = ',')]
    numa_nodes: Option<Vec<u32>>,
    /// Parallel executor: rayon (a rayon pool, unpinned; the default, it measured as fast or
    /// faster) or pinned (dedicated threads placed by --pin).
    #[arg(long, default_value = "rayon")]
    executor: ExecutorArg,
    /// Below this many durable records, replay stays serial.
    #[arg(long, default_value_t = 10_000)]
    parallel_threshold: u64,
    /// Records a replay worker applies between progress updates and cancellation checks.
    #[arg(long, default_value_t = 1024)]
    batch_ops: usize,
    /// Also compute the replay dependency graph's work and span (parallel replay only).
    #[arg(long)]
    dependency_stats: bool,
    /// Ignore checkpoint records and replay the whole journal (which must start at its first
    /// segment).
    #[arg(long)]
    no_checkpoints: bool,
    /// Rebuild the image (missing or damaged) from the newest valid snapshot chain and the
    /// journal after it, instead of starting from a checkpoint record.
    #[arg(long, conflicts_with = "no_checkpoints")]
    from_snapshot: bool,
    /// Do not write the checkpoint record at the journal's end that recovery writes after
    /// success (a writer resuming on the directory needs it: docs/DESIGN.md, "The writer after
    /// recovery").
    #[arg(long)]
    no_final_checkpoint: bool,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Print nothing on success.
    #[arg(long, short)]
    quiet: bool,
    /// Progress on stderr. auto: bars when stderr is a terminal, nothing otherwise. bar:
    /// bars. json: JSON Lines, one object per phase start and end and one per interval
    /// (docs/REPORT.md). none: nothing. Ctrl-C stops recovery at a safe point either way.
    #[arg(long, value_enum, default_value = "auto")]
    progress: progress_ui::ProgressArg,
    /// Time between progress updates, e.g. 250ms or 1s.
    #[arg(long, default_value = "1s")]
    progress_interval: String,
}

fn parse_bytes(s: &str) -> Result<u64> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 'K' | 'k')) => (&s[..i], 1u64 << 10),
        Some((i, 'M' | 'm')) => (&s[..i], 1 << 20),
        Some((i, 'G' | 'g')) => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    let n: u64 = num.parse().with_context(|| format!("invalid size `{s}` (expected e.g. 64M or 1G)"))?;
    n.checked_mul(mult).with_context(|| format!("size `{s}` is too large"))
}

fn parse_dist(s: &str) -> Result<AddressDist> {
    let parts: Vec<&str> = s.split(':').collect();
    let num = |i: usize| -> Result<f64> {
        parts
            .get(i)
            .with_context(|| format!("`{s}`: missing parameter"))?
            .parse::<f64>()
            .with_context(|| format!("`{s}`: not a number"))
    };
    Ok(match parts[0] {
        "uniform" => AddressDist::Uniform,
        "sequential" => AddressDist::Sequential,
        "zipf" => AddressDist::Zipf { skew: num(1)? },
        "hot" => AddressDist::HotSet { fraction: num(1)?, probability: num(2)? },
        other => bail!(
            "unknown distribution `{other}` (expected uniform, sequential, zipf:SKEW or hot:FRACTION:PROBABILITY)"
        ),
    })
}

fn gen_params(a: &GenArgs) -> Result<GenParams> {
    let preset: Preset = a.preset.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut p = preset.params(a.seed);
    if let Some(t) = a.txns {
        p.txns = t;
    }
    if let Some(s) = &a.policy {
        p.policy = s.parse::<Policy>().map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    if let Some(s) = &a.crash {
        p.crash = s.parse::<CrashKind>().map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    if let Some(s) = &a.dist {
        p.address = parse_dist(s)?;
    }
    if let Some(r) = a.abort_rate {
        p.abort_rate = r;
    }
    if let Some(n) = a.inflight {
        p.inflight = n;
    }
    if let Some(n) = a.interleave {
        p.interleave = n;
    }
    if let Some(f) = a.full_fraction {
        p.full_block_fraction = f;
    }
    if let Some(s) = &a.ops {
        let (lo, hi) = s.split_once('-').with_context(|| format!("--ops `{s}`: expected MIN-MAX"))?;
        p.ops_per_txn = (lo.parse().context("--ops MIN")?, hi.parse().context("--ops MAX")?);
    }
    if let Some(r) = a.deps {
        p.deps_rate = r;
    }
    let cadence = |c: &str| -> Result<Cadence> {
        if c == "default" {
            Ok(Cadence::DEFAULT)
        } else {
            c.parse().map_err(|e| anyhow::anyhow!("{e}"))
        }
    };
    if let Some(c) = &a.checkpoint_every {
        p.checkpoints = Some(CheckpointPlan {
            every: cadence(c)?,
            style: a.checkpoint_type.parse::<CheckpointStyle>().map_err(|e| anyhow::anyhow!("{e}"))?,
            retain: a.checkpoint_retain,
            torn_at_crash: !a.no_torn_checkpoint,
        });
    }
    if let Some(c) = &a.snapshot_every {
        p.snapshots = Some(SnapshotPlan { every: cadence(c)?, ..SnapshotPlan::default() });
    }
    if let Some(r) = a.flush_rate {
        p.flush_rate = r;
    }
    if let Some(w) = &a.writeback {
        p.writeback = w.parse::<Writeback>().map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    if let Some(n) = a.deps_reach {
        p.deps_reach = n;
    }
    Ok(p)
}

fn run_gen(a: &GenArgs) -> Result<()> {
    if a.format == FormatArg::Jbd2 {
        let mut p = workloads::jbd2gen::Jbd2Params::small(a.seed);
        if let Some(t) = a.txns {
            p.txns = usize::try_from(t).context("--txns is too large")?;
        }
        if let Some(m) = a.jbd2_journal_mib {
            p.journal_mib = m;
            p.fs_mib = p.fs_mib.max(m * 4);
            p.block_size = 4096;
            p.pool_blocks = usize::try_from(m * 256).context("--jbd2-journal-mib is too large")?;
            // A benchmark journal: checksums v3 (which debugfs writes only with 64bit and
            // metadata_csum), so that what is timed includes verifying every block.
            p.bit64 = true;
            p.metadata_csum = true;
            p.csum = workloads::jbd2gen::Jbd2Csum::V3;
            p.uncommitted_last = false;
        }
        if let Some(b) = a.jbd2_max_blocks {
            p.max_blocks = b;
        }
        let img = workloads::jbd2gen::generate(&a.out, &p).map_err(|e| anyhow::anyhow!(e))?;
        println!("{}", serde_json::to_string_pretty(&img)?);
        return Ok(());
    }
    let params = gen_params(a)?;
    let summary = workloads::generate(&a.out, &params).with_context(|| format!("generating {}", a.out.display()))?;
    println!("{}", summary);
    Ok(())
}

fn run_writer(a: &WriterArgs) -> Result<()> {
    let mut params = gen_params(&a.gen)?;
    // A live writer logs what recovery must give before it knows when it is killed: an
    // unlogged write's survival would depend on that moment.
    params.unlogged_write_rate = 0.0;
    let s = workloads::run_live(&a.gen.out, &params, &a.log, a.resume)
        .with_context(|| format!("writing {}", a.gen.out.display()))?;
    println!("writer: {} commits, {} journal syncs", s.commits, s.syncs);
    Ok(())
}

fn run_trials(a: &TrialsArgs) -> Result<bool> {
    let preset: Preset = a.preset.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    let (work, _guard) = match &a.work {
        Some(w) => (w.clone(), None),
        None => {
            let t =
                tempfile::Builder::new().prefix("fastrec-trials-").tempdir().context("creating a scratch directory")?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    let o = trials::TrialOptions {
        kind: a.kind,
        trials: a.trials,
        seed: a.seed,
        preset,
        txns: a.txns,
        work,
        out: a.out.clone(),
        keep_failures: a.keep_failures,
    };
    let t = std::time::Instant::now();
    let tally = trials::run(&o)?;
    println!(
        "trials {:?}: {} ok, {} trivial, {} violations ({} {}), {:.1} s",
        a.kind,
        tally.ok,
        tally.trivial,
        tally.violations,
        tally.extra,
        match a.kind {
            trials::TrialKind::Sigkill => "resumed and crashed again",
            trials::TrialKind::RecoveryKill => "kills landed during recovery",
            trials::TrialKind::Images => "extra",
            trials::TrialKind::Exhaustive => "crash points capped",
        },
        t.elapsed().as_secs_f64()
    );
    Ok(tally.violations == 0)
}

fn run_lab(a: &LabArgs) -> Result<()> {
    if a.render {
        let runs = lab::render::load_runs(&a.results).map_err(anyhow::Error::msg)?;
        for r in &runs {
            lab::render::render_run(&a.results.join("runs").join(&r.dir_name)).map_err(anyhow::Error::msg)?;
        }
        lab::render::render_site(&a.results).map_err(anyhow::Error::msg)?;
        println!(
            "rendered {} runs, {}/report/index.html and {}/CLAIMS.md",
            runs.len(),
            a.results.display(),
            a.results.display()
        );
        return Ok(());
    }
    let only = match &a.only {
        Some(list) => lab::run::parse_only(list).map_err(anyhow::Error::msg)?,
        None => lab::run::EXPERIMENTS.iter().map(|e| e.to_string()).collect(),
    };
    let o = lab::run::LabOptions { full: a.full, only, results: a.results.clone(), work: a.work.clone(), seed: a.seed };
    let t = std::time::Instant::now();
    let dir = lab::run::run(&o, &mut |line| eprintln!("[{:6.1} s] {line}", t.elapsed().as_secs_f64()))
        .map_err(anyhow::Error::msg)?;
    println!("{}", dir.display());
    Ok(())
}

/// Journal formats `recover` and `inspect` read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum FormatArg {
    /// A fastrec directory: image, journal segments, checkpoints.
    Fastrec,
    /// An ext4 image with an internal jbd2 journal.
    Jbd2,
}

fn run_recover_jbd2(a: &RecoverArgs) -> Result<()> {
    let r = recovery::jbd2::recover(&a.dir, a.workers)?;
    if let Some(path) = &a.report {
        std::fs::write(path, serde_json::to_vec_pretty(&r)?)
            .with_context(|| format!("{}: write report", path.display()))?;
    }
    println!("recovered {} (ext4 journal)", a.dir.display());
    print_jbd2_log(&r.log);
    println!(
        "  written    {} blocks by {} workers; journal reset at sequence {}",
        r.log.blocks, r.workers, r.new_sequence
    );
    println!("  time       read {:.1} ms, write {:.1} ms, finish {:.1} ms", r.read_ms, r.write_ms, r.finish_ms);
    Ok(())
}

fn print_jbd2_log(l: &recovery::jbd2::LogSummary) {
    println!(
        "  log        {} transactions, {} block tags, {} revoke records ({} tags revoked), {} bad data checksums",
        l.transactions, l.tags, l.revoke_records, l.revoked, l.bad_data_checksums
    );
    match &l.end {
        Some(e) => println!(
            "  end        log block {}, transaction {}: {}",
            e.block,
            e.transaction,
            if e.reason.is_empty() { "-" } else { &e.reason }
        ),
        None => println!("  end        the journal is empty (s_start = 0)"),
    }
    if let Some(t) = l.failed_commit {
        println!("  failed     transaction {t}'s commit block fails its checksum: replay stops before it");
    }
}

fn run_inspect_jbd2(path: &Path, json: bool) -> Result<()> {
    let j = recovery::jbd2::Jbd2::open(path)?;
    let log = j.inspect()?;
    if json {
        let v = serde_json::json!({ "fs": j.fs, "journal": j.sb, "log": log });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "{}: ext4, {} blocks of {} bytes, needs_recovery {}",
        path.display(),
        j.fs.blocks_count,
        j.fs.block_size,
        j.fs.needs_recovery
    );
    println!(
        "  journal    inode {}, v{}, {} blocks, first {}, start {}, sequence {}, features compat {:#x} incompat {:#x}",
        j.fs.journal_inum, j.sb.version, j.sb.maxlen, j.sb.first, j.sb.start, j.sb.sequence, j.sb.compat, j.sb.incompat
    );
    print_jbd2_log(&log);
    println!("  replay     would write {} blocks", log.blocks);
    Ok(())
}

fn run_recover(a: &RecoverArgs) -> Result<()> {
    if a.format == FormatArg::Jbd2 {
        return run_recover_jbd2(a);
    }
    let opts = RecoverOptions {
        mode: a.mode.into(),
        io: IoOptions {
            backend: match a.io {
                IoArg::Auto => IoBackend::Auto,
                IoArg::Read => IoBackend::Read,
                IoArg::Pread => IoBackend::Pread,
                IoArg::Mmap => IoBackend::Mmap,
                IoArg::Direct => IoBackend::Direct,
            },
            buffer_bytes: usize::try_from(parse_bytes(&a.io_buffer)?).context("--io-buffer is too large")?,
            pread_depth: a.pread_depth,
            mmap_threshold: parse_bytes(&a.mmap_threshold)?,
            mmap: MmapAdvice {
                populate: !a.mmap_no_populate,
                sequential: a.mmap_sequential,
                willneed: a.mmap_willneed,
                hugepage: a.mmap_hugepage,
            },
            direct_fallback: match a.direct_fallback {
                DirectFallbackArg::Read => DirectFallback::Read,
                DirectFallbackArg::Error => DirectFallback::Error,
            },
            cache_bytes: parse_bytes(&a.memory_budget)?,
            ..IoOptions::default()
        },
        image_io: match a.image_io {
            ImageIoArg::Mmap => ImageIo::Mmap,
            ImageIoArg::Pwrite => ImageIo::Pwrite,
        },
        memory_budget_bytes: parse_bytes(&a.memory_budget)?,
        force: a.force,
        workers: a.workers,
        workers_max: a.workers_max,
        pin: match a.pin {
            PinArg::None => PinMode::None,
            PinArg::Cores => PinMode::Cores,
            PinArg::Numa => PinMode::Numa,
        },
        numa_nodes_mask: match &a.numa_nodes {
            Some(nodes) => {
                let mut mask = 0u64;
                for &n in nodes {
                    if n >= 64 {
                        bail!("--numa-nodes: node {n} is beyond the 64 nodes this build supports");
                    }
                    mask |= 1 << n;
                }
                Some(mask)
            }
            None => None,
        },
        executor: match a.executor {
            ExecutorArg::Pinned => Executor::Pinned,
            ExecutorArg::Rayon => Executor::Rayon,
        },
        parallel_threshold: a.parallel_threshold,
        batch_ops: a.batch_ops,
        dependency_stats: a.dependency_stats,
        use_checkpoints: !a.no_checkpoints,
        from_snapshot: a.from_snapshot,
        final_checkpoint: !a.no_final_checkpoint,
        ..RecoverOptions::default()
    };
    let observer = progress_ui::observer(a.progress);
    progress_ui::install_cancel_handler();
    let monitor = recovery::Monitor {
        observer: observer.as_deref(),
        interval: progress_ui::parse_interval(&a.progress_interval)?,
        cancel: Some(&progress_ui::CANCEL),
    };
    let report = recovery::recover_with(&a.dir, &opts, &monitor)?;
    for w in &report.parallel.warnings {
        eprintln!("fastrec: warning: {w}");
    }
    if let Some(path) = &a.report {
        let json = serde_json::to_vec_pretty(&report)?;
        std::fs::write(path, json).with_context(|| format!("writing report {}", path.display()))?;
    }
    if !a.quiet {
        println!("{report}");
    }
    Ok(())
}

fn run_checkpoint(a: &CheckpointArgs) -> Result<()> {
    let o = CheckpointOptions {
        kind: a.kind.parse::<CheckpointKind>()?,
        retain: a.retain,
        recycle_journal: a.recycle_journal,
    };
    let r = recovery::recover::checkpoint_dir(&a.dir, &o)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!("{r}");
    }
    Ok(())
}

fn run_snapshot(a: &SnapshotArgs) -> Result<()> {
    let o = SnapshotOptions {
        kind: a.kind.parse::<SnapshotKind>()?,
        compression: a.compression.parse::<Compression>()?,
        retain: a.retain,
    };
    let r = recovery::recover::snapshot_dir(&a.dir, &o)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!("{r}");
    }
    Ok(())
}

/// Returns whether the image matched.
fn run_verify(dir: &Path) -> Result<bool> {
    let v = workloads::digest::verify_dir(dir)?;
    if v.matches {
        println!("{}: image matches the oracle ({} blocks)", dir.display(), v.blocks);
    } else {
        println!(
            "{}: image differs from the oracle in {} of {} blocks; first bad block {}",
            dir.display(),
            v.bad_blocks,
            v.blocks,
            v.first_bad_block.map_or("?".to_string(), |b| b.to_string())
        );
    }
    Ok(v.matches)
}

fn run_inspect(dir: &Path, mode: RecoveryMode, json: bool) -> Result<()> {
    let (layout, journal, outcome, analysis) = recovery::analyze_dir(dir, mode, &IoOptions::default())?;
    use recovery::analysis::TxnOutcome as T;
    let txns = serde_json::json!({
        "committed": analysis.count(T::Committed),
        "aborted": analysis.count(T::Aborted),
        "in_flight": analysis.count(T::InFlight),
        "damaged": analysis.count(T::Damaged),
    });
    let segments: Vec<_> = journal
        .segments
        .iter()
        .map(|s| {
            serde_json::json!({
                "file": s.path.file_name().map(|n| n.to_string_lossy().into_owned()),
                "seq": s.header.segment_seq,
                "bytes": s.len,
                "first_lsn": s.header.first_lsn,
                "salt": format!("{:#018x}", s.header.salt),
            })
        })
        .collect();
    let marker = std::fs::read(dir.join(recovery::dir::MARKER_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
    let v = serde_json::json!({
        "image": {
            "block_size": layout.geometry.block_size,
            "blocks": layout.geometry.block_count,
            "inodes": layout.geometry.inode_count,
            "image_id": format!("{:#018x}", layout.geometry.image_id),
            "data_start": layout.data_start(),
        },
        "policy": if journal.steal() { "steal" } else { "no-steal" },
        "segments": segments,
        "segment_notes": journal.notes,
        "records": outcome.records,
        "bytes_durable": outcome.bytes,
        "lsn_range": [outcome.first_lsn, outcome.last_lsn],
        "record_counts": analysis.counts,
        "txns": txns,
        "blocks_touched": analysis.touched.len(),
        "tail": outcome.tail,
        "skipped": outcome.skipped,
        "invalid": analysis.invalid,
        "recovered_marker": marker,
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("{}", dir.display());
    println!(
        "  image      {} blocks of {} bytes, {} inode slots, data from block {}, id {:#018x}",
        layout.geometry.block_count,
        layout.geometry.block_size,
        layout.geometry.inode_count,
        layout.data_start(),
        layout.geometry.image_id
    );
    println!("  policy     {}", v["policy"].as_str().unwrap_or("?"));
    println!("  segments   {} ({:.1} MiB)", journal.segments.len(), journal.bytes() as f64 / (1 << 20) as f64);
    for s in &journal.segments {
        println!("    {:>4}  {:>12} bytes  first LSN {}", s.header.segment_seq, s.len, s.header.first_lsn);
    }
    for n in &journal.notes {
        println!("    ignored {}: {} at offset {}", n.path.display(), n.kind, n.offset);
    }
    let c = &analysis.counts;
    println!("  records    {} durable, LSN {}..{}", outcome.records, outcome.first_lsn, outcome.last_lsn);
    println!(
        "             {} writes ({} full-block), {} bitmap, {} orphan, {} revokes, {} commits, {} aborts, {} compensation, {} optional",
        c.writes, c.full_writes, c.bitmap, c.orphan, c.revokes, c.commits, c.aborts, c.compensation, c.optional
    );
    println!(
        "  txns       {} committed, {} aborted, {} in flight at the crash, {} damaged",
        txns["committed"], txns["aborted"], txns["in_flight"], txns["damaged"]
    );
    match &outcome.tail {
        Some(t) => println!(
            "  crash      durable end at {} offset {} ({}); {} bytes after it",
            t.path.display(),
            t.offset,
            t.damage.as_ref().map_or("zero fill".to_string(), |k| k.to_string()),
            t.bytes_discarded
        ),
        None => println!("  crash      journal ends cleanly"),
    }
    for s in &outcome.skipped {
        println!("  damage     {} offset {}: {}", s.path.display(), s.offset, s.kind);
    }
    println!("  marker     {}", if marker.is_some() { "recovered.json present" } else { "not recovered yet" });
    Ok(())
}

fn run_corrupt(dir: &Path, target: TargetArg, flips: usize, seed: u64) -> Result<()> {
    let target = match target {
        TargetArg::Journal => workloads::corrupt::CorruptTarget::Journal,
        TargetArg::Image => workloads::corrupt::CorruptTarget::Image,
    };
    let done = workloads::corrupt::corrupt(dir, target, flips, seed)?;
    for f in &done {
        println!("flipped bit {} of byte {} in {}", f.bit, f.offset, f.path.display());
    }
    Ok(())
}

fn run_demo(preset: &str, seed: u64, keep: Option<&Path>) -> Result<bool> {
    let tmp;
    let dir = match keep {
        Some(d) => d.to_path_buf(),
        None => {
            tmp = tempfile::tempdir().context("creating a temporary directory")?;
            tmp.path().join("crash")
        }
    };
    let preset_v: Preset = preset.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    let params = preset_v.params(seed);
    println!("== 1. generate: preset {preset}, seed {seed} -> {}", dir.display());
    let t = std::time::Instant::now();
    let summary = workloads::generate(&dir, &params)?;
    println!("{summary}");
    println!("   ({:.1} s)", t.elapsed().as_secs_f64());
    println!("== 2. verify before recovery (expected to differ: this is a crash state)");
    run_verify(&dir)?;
    println!("== 3. recover");
    let observer = progress_ui::observer(progress_ui::ProgressArg::Auto);
    progress_ui::install_cancel_handler();
    let monitor = recovery::Monitor {
        observer: observer.as_deref(),
        cancel: Some(&progress_ui::CANCEL),
        ..recovery::Monitor::default()
    };
    let report = recovery::recover_with(&dir, &RecoverOptions::default(), &monitor)?;
    println!("{report}");
    println!("== 4. verify after recovery");
    let ok = run_verify(&dir)?;
    println!(
        "== {}",
        if ok {
            "PASS: recovered image equals the oracle's committed state"
        } else {
            "FAIL: recovered image differs from the oracle"
        }
    );
    Ok(ok)
}

fn main() -> ExitCode {
    // Like other Unix tools, end quietly when the reader of stdout goes away (`| head`),
    // instead of panicking on the failed write.
    // SAFETY: setting a signal's disposition to the default has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                e.exit();
            }
            // One line, like every other error: clap's first line without its "error: " prefix,
            // and a pointer to --help instead of the usage block.
            let text = e.to_string();
            let message: Vec<&str> = text
                .lines()
                .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with("tip:"))
                .collect();
            let message = message.join(" ");
            eprintln!("fastrec: error: {} (see fastrec --help)", message.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    let result = match &cli.command {
        Command::Gen(a) => run_gen(a).map(|()| true),
        Command::Lab(a) => run_lab(a).map(|()| true),
        Command::Recover(a) => run_recover(a).map(|()| true),
        Command::Verify { dir } => run_verify(dir),
        Command::Inspect { dir, format: FormatArg::Jbd2, json, .. } => run_inspect_jbd2(dir, *json).map(|()| true),
        Command::Inspect { dir, mode, json, .. } => run_inspect(dir, (*mode).into(), *json).map(|()| true),
        Command::Corrupt { dir, target, flips, seed } => run_corrupt(dir, *target, *flips, *seed).map(|()| true),
        Command::Checkpoint(a) => run_checkpoint(a).map(|()| true),
        Command::Snapshot(a) => run_snapshot(a).map(|()| true),
        Command::Demo { preset, seed, keep } => run_demo(preset, *seed, keep.as_deref()),
        Command::Writer(a) => run_writer(a).map(|()| true),
        Command::Trials(a) => run_trials(a),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("fastrec: error: {e:#}");
            // 128 + SIGINT, as shells report an interrupted command.
            let cancelled = e.chain().any(|c| matches!(c.downcast_ref(), Some(recovery::Error::Cancelled { .. })));
            ExitCode::from(if cancelled { 130 } else { 2 })
        }
    }
}
