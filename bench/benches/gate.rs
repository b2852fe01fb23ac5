//! The instruction-count gate's benches (gungraun + callgrind): four hot paths, each on one thread at a time,
//! over fixed inputs, each measured once under valgrind. `scripts/gate.sh` runs them and
//! compares the counts with `bench/gate/baseline.json` (see docs/GATE.md).
//!
//! - `scan`: decode and checksum every record of a fixed journal ([`recovery::scan::scan`]
//!   with a visitor that only counts), segments read through the default `auto` backend
//!   (mapped: the journal is over 1 MiB).
//! - `redo`: serial redo of a fixed workload as recovery's default image I/O does it (changed
//!   blocks built in memory over a read-only mapping): redo pass, undo of losers (when the
//!   journal is steal), orphan cleanup, and the write-back's preparation (comparing every held
//!   block with the file). Analysis is setup; the writes and the fdatasync are not measured
//!   (they are syscalls).
//! - `routed`: the pipeline recovery runs by default on a journal larger than a chunk, with
//!   one worker: the chunked scan that decodes, checks and analyses each chunk and routes
//!   every record to its worker's task list ([`recovery::parallel::scan_parallel`], chunks of
//!   256 KiB here so the small journal makes several), the analysis merge, then the routed
//!   replay ([`recovery::parallel::replay_parallel`]) and the write-back's preparation. Its
//!   one worker is a thread of its own; callgrind counts every thread.
//! - `record`: reading a checkpoint record as recovery does once it has its bytes: decode and
//!   validate a record with a 4,096-entry dirty block table
//!   ([`recovery::checkpoint::CheckpointRecord::decode`]) and build the table redo looks blocks
//!   up in.
//!
//! Inputs: the `small` preset with a fixed seed, generated in each bench's setup (not
//! measured) into a temporary directory under `/tmp` (gungraun clears the environment, so
//! `TMPDIR` never moves it) whose name always has the same length. Needs valgrind and
//! `gungraun-runner` 0.20.0: `cargo bench -p fastrec-bench --features gate --bench gate`.

#![expect(missing_docs, reason = "gungraun's macros generate undocumented pub modules, constants and functions")]

use std::hint::black_box;
use std::path::Path;

use gungraun::{library_benchmark, library_benchmark_group, main, Callgrind, LibraryBenchmarkConfig};
use recovery::analysis::Analysis;
use recovery::checkpoint::{CheckpointKind, CheckpointRecord, DirtyBlock, OpenTxn};
use recovery::image::Layout;
use recovery::journal::Journal;
use recovery::progress::Tracker;
use recovery::replay::{self, ReplayStats};
use recovery::scan::ScanOutcome;
use recovery::shadow::{ImageMap, ShadowImage};
use recovery::{IoBackend, IoOptions, RecoveryMode};
use tempfile::TempDir;
use workloads::Preset;

/// The fixed crash state: the `small` preset (about 200 transactions, a 1-3 MiB journal, a
/// 2 MiB image) with this seed. Changing either changes every count: update the baseline.
const SEED: u64 = 7;
const MODE: RecoveryMode = RecoveryMode::TolerateTail;

fn io() -> IoOptions {
    IoOptions::with(IoBackend::Auto)
}

/// Generates the fixed crash state into a fresh temporary directory.
fn crash_state() -> TempDir {
    // A fixed prefix and tempfile's fixed-length random suffix: paths of the same length on
    // every run, so path handling costs the same.
    let dir = tempfile::Builder::new()
        .prefix("fastrec-gate-")
        .rand_bytes(8)
        .tempdir_in("/tmp")
        .expect("create a temporary directory under /tmp");
    workloads::generate(dir.path(), &Preset::Small.params(SEED)).expect("generate the fixed crash state");
    dir
}

fn open(dir: &Path) -> (Layout, Journal) {
    recovery::recover::open_dir(dir, MODE, &io()).expect("open the fixed crash state")
}

/// `scan`'s input: the journal opened (segment headers located and checked), no segment read.
fn setup_scan() -> (TempDir, Journal) {
    let dir = crash_state();
    let (_, journal) = open(dir.path());
    (dir, journal)
}

#[library_benchmark]
#[bench::small(setup = setup_scan)]
fn scan((dir, journal): (TempDir, Journal)) -> (TempDir, Journal, ScanOutcome) {
    let mut bytes = 0usize;
    let outcome = recovery::scan::scan(&journal, MODE, |ctx, h, _rec| {
        bytes += (ctx.end - ctx.start) as usize;
        black_box(h);
        Ok(())
    })
    .expect("scan the fixed journal");
    black_box(bytes);
    // Returned, so their drops (the segment buffers freed, the directory removed) happen
    // outside the measurement.
    (dir, journal, outcome)
}

/// `redo`'s input: the crash state analysed (its journal's segments read and kept, as after
/// recovery's first pass), and its image opened for mapping.
struct Redo {
    dir: TempDir,
    layout: Layout,
    journal: Journal,
    outcome: ScanOutcome,
    analysis: Analysis,
    image: std::fs::File,
    /// Made here: a tracker's latency histograms cost more to zero than this redo does.
    tracker: Tracker<'static>,
}

fn setup_redo() -> Redo {
    let dir = crash_state();
    let (layout, journal, outcome, analysis) =
        recovery::analyze_dir(dir.path(), MODE, &io()).expect("analyse the fixed crash state");
    // Read-write, as recovery maps it (it stores changed blocks only at the write-back, which
    // the bench does not run).
    let image = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.path().join(recovery::dir::IMAGE_FILE))
        .expect("open the image");
    Redo { dir, layout, journal, outcome, analysis, image, tracker: Tracker::quiet() }
}

#[library_benchmark]
#[bench::small(setup = setup_redo)]
fn redo(r: Redo) -> (Redo, ShadowImage, ReplayStats) {
    let path = r.dir.path().join(recovery::dir::IMAGE_FILE);
    // As recovery's default image I/O: changed blocks built in memory, the file only read.
    let map = ImageMap::new(&r.image, &path, &r.layout).expect("map the image");
    let mut img = ShadowImage::serial(map, recovery::copylog::CopyReads::default());
    let mut stats = ReplayStats::default();
    replay::redo_window(
        &mut img,
        &r.layout,
        &r.journal,
        MODE,
        &r.outcome,
        &r.analysis,
        &(0..r.layout.block_count()),
        &mut stats,
        &r.tracker,
    )
    .expect("redo");
    if r.analysis.steal {
        replay::undo_losers(&mut img, &r.layout, &r.journal, &r.analysis, &|_| true, &mut stats, None).expect("undo");
    }
    replay::clean_orphans(&mut img, &r.layout, &mut stats).expect("orphan cleanup");
    // The write-back's preparation: which held blocks differ from the file (no I/O).
    let (changed, unchanged) = img.changed().expect("compare");
    stats.blocks_written = changed;
    stats.blocks_unchanged = unchanged;
    black_box(&stats);
    // Returned: the unmapping and freeing happen outside the measurement.
    (r, img, stats)
}

/// `routed`'s input: the crash state's journal opened, no segment read, and its image opened
/// for mapping.
struct Routed {
    dir: TempDir,
    layout: Layout,
    journal: Journal,
    image: std::fs::File,
    setup: recovery::parallel::ParallelSetup,
    tracker: Tracker<'static>,
}

fn setup_routed() -> Routed {
    let dir = crash_state();
    let (layout, journal) = open(dir.path());
    let image = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.path().join(recovery::dir::IMAGE_FILE))
        .expect("open the image");
    let plan = recovery::topology::plan(&recovery::topology::Topology::detect(), 1, recovery::PinMode::None, None)
        .expect("a one-worker plan");
    let setup = recovery::parallel::ParallelSetup {
        workers: 1,
        plan,
        // Dedicated scoped threads: no pool to build inside the measurement.
        executor: recovery::Executor::Pinned,
        batch_ops: 1024,
        chunk_bytes: 256 << 10,
        dependency_stats: false,
    };
    Routed { dir, layout, journal, image, setup, tracker: Tracker::quiet() }
}

#[library_benchmark]
#[bench::small(setup = setup_routed)]
fn routed(r: Routed) -> (Routed, ShadowImage, ReplayStats) {
    let p1 = recovery::parallel::scan_parallel(&r.layout, &r.journal, MODE, &r.setup, None, &r.tracker)
        .expect("chunked scan")
        .expect("the fixed journal needs no serial rescan");
    let analysis = p1.analyzer.finish().expect("analysis");
    let path = r.dir.path().join(recovery::dir::IMAGE_FILE);
    let map = ImageMap::new(&r.image, &path, &r.layout).expect("map the image");
    let parts = recovery::parallel::Partitioner::new(1, r.layout.block_count());
    let store = recovery::shadow::BlockStore::new(
        r.layout.block_size(),
        r.layout.block_count(),
        recovery::copylog::CopyReads::default(),
    );
    let mut img = ShadowImage::partitioned(map, vec![store], parts);
    let (map, stores) = img.parts_mut();
    let p2 = recovery::parallel::replay_parallel(
        &r.setup, &r.layout, &r.journal, &analysis, &p1.routed, map, stores, &r.tracker,
    )
    .expect("routed replay");
    let mut stats = p2.stats;
    replay::clean_orphans(&mut img, &r.layout, &mut stats).expect("orphan cleanup");
    let (changed, unchanged) = img.changed().expect("compare");
    stats.blocks_written = changed;
    stats.blocks_unchanged = unchanged;
    black_box(&stats);
    drop(analysis);
    (r, img, stats)
}

/// `record`'s input: the bytes of a checkpoint record of the crash image's geometry with 8
/// open transactions and a 4,096-entry dirty block table.
fn setup_record() -> Vec<u8> {
    let dir = crash_state();
    let layout = Layout::read_from(&dir.path().join(recovery::dir::IMAGE_FILE)).expect("read the layout");
    let lsn = 100_000u64;
    let open = (1..=8u64).map(|t| OpenTxn { txid: t, first_lsn: lsn - 1000 + t }).collect();
    let dirty = (0..4096u64)
        .map(|i| DirtyBlock { block: i % layout.block_count(), rec_lsn: lsn - 5000 + i })
        .take(layout.block_count().min(4096) as usize)
        .collect();
    CheckpointRecord { seq: 1, ..CheckpointRecord::new(&layout, CheckpointKind::Incremental, lsn, open, dirty) }
        .encode()
}

#[library_benchmark]
#[bench::dirty_4096(setup = setup_record)]
fn record(bytes: Vec<u8>) -> Vec<u8> {
    let r = CheckpointRecord::decode(black_box(&bytes)).expect("a valid record");
    black_box(r.dirty_map());
    bytes
}

library_benchmark_group!(name = hot_paths; benchmarks = scan, redo, routed, record);

main!(
    // Only instruction counts are gated: no cache simulation (it only slows the runs down).
    config = LibraryBenchmarkConfig::default().tool(Callgrind::with_args(["--cache-sim=no"]));
    library_benchmark_groups = hot_paths
);
