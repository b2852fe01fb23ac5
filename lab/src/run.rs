//! The experiment matrix: generates each workload from its seed, sets the cache state, runs
//! recoveries, and appends one [`Record`] per measurement to the run's `raw.ndjson`.
//!
//! Every configuration is checked against the oracle once (untimed) before it is timed;
//! configurations compared with each other are interleaved, so drift on a shared machine lands
//! on all of them alike; ceilings (memcpy, sequential read) are measured in the same run.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bench::io::{CacheState, Consumer, IoJournal};
use recovery::progress::{JsonLines, Observer, Snapshot};
use recovery::{Executor, ImageIo, IoBackend, IoOptions, Monitor, RecoverOptions, RecoveryReport};

use crate::record::{Cache, Env, Record};

/// Every experiment, in the order a run does them.
pub const EXPERIMENTS: [&str; 8] = ["scaling", "deps", "io", "checkpoint", "jbd2", "progress", "latency", "bandwidth"];

/// Presets of the scaling experiment: `physical` has per-record work and no cross-block
/// dependency (what parallel replay scales best on, so the fair test of the speedup claim),
/// `cpu-bound` the same work with a fifth of the writes COPY records, `memory-bound` bytes.
pub const SCALING_PRESETS: [&str; 3] = ["physical", "cpu-bound", "memory-bound"];

/// Shares of COPY records the `deps` experiment sweeps (`GenParams::deps_rate`); 0.2 is the
/// `cpu-bound` preset's own.
pub const DEPS_RATES: [f64; 5] = [0.0, 0.05, 0.1, 0.2, 0.4];

/// What to run.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// `--full`: larger journals and more repetitions, for real machines.
    pub full: bool,
    /// Experiments to run (a subset of [`EXPERIMENTS`], in their order).
    pub only: Vec<String>,
    /// The results directory (`results/`): the run goes to `runs/<id>/` under it.
    pub results: PathBuf,
    /// Where journals are generated (a temporary directory under it); default: the system's
    /// temporary directory.
    pub work: Option<PathBuf>,
    /// Generator seed of every workload.
    pub seed: u64,
}

/// Parses `--only`: comma-separated experiment names.
pub fn parse_only(list: &str) -> Result<Vec<String>, String> {
    let names: Vec<&str> = list.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    if names.is_empty() {
        return Err("--only: no experiments named".into());
    }
    for n in &names {
        if !EXPERIMENTS.contains(n) {
            return Err(format!("--only: unknown experiment `{n}` (expected {})", EXPERIMENTS.join(", ")));
        }
    }
    Ok(EXPERIMENTS.iter().filter(|e| names.contains(e)).map(|e| e.to_string()).collect())
}

/// Sizes and repetitions of one mode.
#[derive(Debug, Clone, Copy)]
struct Plan {
    reps: usize,
    io_journal_bytes: u64,
    io_records: &'static [&'static str],
    cadences: &'static [u64],
    crashes: &'static [bench::checkpoint::Phase],
    /// Transactions of each `deps` workload; `None`: the `cpu-bound` preset's own.
    deps_txns: Option<u64>,
    /// Journal size of the `jbd2` experiment's ext4 image, MiB.
    jbd2_journal_mib: u64,
}

const QUICK: Plan = Plan {
    reps: 3,
    io_journal_bytes: 64 << 20,
    io_records: &["4K"],
    cadences: &[12_000, 3_000, 750],
    crashes: &[bench::checkpoint::Phase::After, bench::checkpoint::Phase::Before],
    // A third of the preset's transactions: five workloads of the full size would double the
    // quick lab's time on 2 cores, which cannot show what the density does to many workers.
    deps_txns: Some(50_000),
    jbd2_journal_mib: 128,
};

const FULL: Plan = Plan {
    reps: 5,
    io_journal_bytes: 256 << 20,
    io_records: &["256B", "4K"],
    cadences: &[24_000, 12_000, 6_000, 3_000, 1_500, 750],
    crashes: &[bench::checkpoint::Phase::After, bench::checkpoint::Phase::Before],
    deps_txns: None,
    jbd2_journal_mib: 512,
};

/// Same-run ceilings.
#[derive(Debug, Clone, Copy)]
struct Ceilings {
    memcpy_1t: f64,
    memcpy_all: f64,
}

impl Ceilings {
    fn measure(cpus: usize) -> Ceilings {
        let (one, _) = bench::memcpy_bandwidth(128 << 20, 5);
        let (all, _) = bench::memcpy_bandwidth_threads(cpus, (128 << 20) / cpus.max(1), 5);
        Ceilings { memcpy_1t: one, memcpy_all: all }
    }

    fn add(&self, r: &mut Record) {
        r.ceilings.insert("memcpy_1t_gb_s".into(), crate::record::Metric::new(self.memcpy_1t / 1e9, "GB/s"));
        r.ceilings.insert("memcpy_all_gb_s".into(), crate::record::Metric::new(self.memcpy_all / 1e9, "GB/s"));
    }
}

/// The run in progress: where records go.
struct Sink {
    file: std::fs::File,
    path: PathBuf,
    count: usize,
}

impl Sink {
    fn push(&mut self, r: &Record) -> Result<(), String> {
        let line = serde_json::to_string(r).map_err(|e| e.to_string())?;
        // One line at a time, flushed: an interrupted run keeps what it measured.
        writeln!(self.file, "{line}")
            .and_then(|()| self.file.flush())
            .map_err(|e| format!("{}: {e}", self.path.display()))?;
        self.count += 1;
        Ok(())
    }
}

fn median(v: &[f64]) -> f64 {
    bench::median(&mut v.to_vec())
}

fn ms(secs: &[f64]) -> Vec<f64> {
    secs.iter().map(|s| (s * 1e6).round() / 1e3).collect()
}

/// Runs the experiments of `o`, writing `results/runs/<id>/` (env.json, raw.ndjson, then the
/// rendered summary and plots) and re-rendering the report page and claims table. `log`
/// receives one line per step. Returns the run directory.
pub fn run(o: &LabOptions, log: &mut dyn FnMut(&str)) -> Result<PathBuf, String> {
    let started = Instant::now();
    let work_parent = o.work.clone().unwrap_or_else(std::env::temp_dir);
    let work = tempfile::Builder::new()
        .prefix("fastrec-lab-")
        .tempdir_in(&work_parent)
        .map_err(|e| format!("{}: {e}", work_parent.display()))?;
    let mut env = crate::env::collect(if o.full { "full" } else { "quick" }, &o.only, &work_parent);
    let runs = o.results.join("runs");
    let mut dir = runs.join(&env.run);
    let mut n = 2;
    while dir.exists() {
        dir = runs.join(format!("{}-{n}", env.run));
        n += 1;
    }
    env.run = dir.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let raw = dir.join("raw.ndjson");
    let file = std::fs::File::create(&raw).map_err(|e| format!("{}: {e}", raw.display()))?;
    let mut sink = Sink { file, path: raw, count: 0 };
    write_env(&dir, &env)?;
    log(&format!("run {} ({} mode) -> {}", env.run, env.mode, dir.display()));
    let plan = if o.full { FULL } else { QUICK };
    log("ceilings: memcpy, one thread and all");
    let ceil = Ceilings::measure(env.cpus);
    let mut shared: Option<bench::scaling::Prepared> = None;
    for exp in &o.only {
        let t = Instant::now();
        log(&format!("{exp}: start"));
        let r = match exp.as_str() {
            "scaling" => scaling(o, &plan, &ceil, work.path(), env.cpus, &mut sink, log),
            "deps" => deps(o, &plan, work.path(), env.cpus, &mut sink, log),
            "io" => io(o, &plan, &ceil, work.path(), &mut sink, log),
            "checkpoint" => checkpoint(o, &plan, work.path(), &mut sink, log),
            "jbd2" => jbd2(o, &plan, work.path(), env.cpus, &mut sink, log),
            "progress" | "latency" | "bandwidth" => {
                if shared.is_none() {
                    log("generating the default preset");
                    shared = Some(bench::scaling::prepare("default", o.seed, Some(work.path()))?);
                }
                let p = shared.as_ref().ok_or("default preset missing")?;
                match exp.as_str() {
                    "progress" => progress(o, &plan, p, &mut sink, log),
                    "latency" => latency(o, &plan, p, env.cpus, &mut sink, log),
                    _ => bandwidth(o, &plan, &ceil, p, env.cpus, &mut sink, log),
                }
            }
            other => Err(format!("unknown experiment {other}")),
        };
        if let Err(e) = r {
            // Keep what the other experiments measure; the run says what failed.
            env.notes.push(format!("{exp} failed: {e}"));
            log(&format!("{exp}: FAILED: {e}"));
        }
        log(&format!("{exp}: done in {:.0} s", t.elapsed().as_secs_f64()));
    }
    env.duration_s = (started.elapsed().as_secs_f64() * 10.0).round() / 10.0;
    write_env(&dir, &env)?;
    log(&format!("{} records; rendering", sink.count));
    crate::render::render_run(&dir)?;
    crate::render::render_site(&o.results)?;
    Ok(dir)
}

fn write_env(dir: &Path, env: &Env) -> Result<(), String> {
    let path = dir.join("env.json");
    let mut text = serde_json::to_string_pretty(env).map_err(|e| e.to_string())?;
    text.push('\n');
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
}

fn residency_of(dir: &Path) -> Option<f64> {
    let r = recovery::io::cache::residency_of_journal(&dir.join(recovery::dir::JOURNAL_DIR));
    (r.total_pages > 0).then(|| r.fraction())
}

/// e2fsck against fastrec on one ext4 journal (docs/JBD2.md): e2fsck, fastrec with 1, 2, 4,
/// ... workers and the write floor take turns on the same crash image, restored in between,
/// warm and cold; all finish with their flush to disk. The recovered blocks are compared once
/// per cache state: the tools must agree.
fn jbd2(
    o: &LabOptions,
    plan: &Plan,
    work: &Path,
    cpus: usize,
    sink: &mut Sink,
    log: &mut dyn FnMut(&str),
) -> Result<(), String> {
    use bench::jbd2::Tool;
    let params = bench::jbd2::params(o.seed, plan.jbd2_journal_mib);
    log(&format!("jbd2: generating an ext4 image with a {} MiB journal", plan.jbd2_journal_mib));
    let mut p = bench::jbd2::prepare(&params, Some(work))?;
    let (ws, _) = bench::scaling::worker_counts(cpus);
    let tools: Vec<Tool> = std::iter::once(Tool::E2fsck).chain(ws.iter().map(|&w| Tool::Fastrec(w))).collect();
    for cold in [false, true] {
        let cache = if cold { "cold" } else { "warm" };
        // Untimed: each tool once (which also warms the cache), and their results compared.
        let mut digests = Vec::new();
        for &t in &tools {
            p.run(t, false)?;
            digests.push(p.digest()?);
        }
        if digests.iter().any(|d| *d != digests[0]) {
            return Err(format!("jbd2: fastrec's recovered blocks differ from e2fsck's ({digests:x?})"));
        }
        p.capture()?;
        // Slot tools.len() is the write floor.
        let n = tools.len() + 1;
        let mut secs: Vec<Vec<f64>> = vec![Vec::new(); n];
        let mut reports: Vec<Vec<recovery::jbd2::Jbd2Report>> = vec![Vec::new(); n];
        // A repetition takes about a second: five even in a quick run, for the medians.
        for rep in 0..plan.reps.max(5) {
            // The order turns every repetition, so drift lands on every tool alike.
            for k in 0..n {
                let i = (k + rep) % n;
                if i == tools.len() {
                    secs[i].push(p.write_floor(cold)?);
                    continue;
                }
                let (s, r) = p.run(tools[i], cold)?;
                secs[i].push(s);
                reports[i].extend(r);
            }
        }
        let e2fsck = median(&secs[0]);
        let floor = median(&secs[tools.len()]);
        for (i, &w) in ws.iter().enumerate() {
            let k = i + 1;
            let m = median(&secs[k]);
            let mut r = Record::new("jbd2", &format!("fastrec w={w} {cache}"), o.seed)
                .param("workers", w)
                .param("journal_mib", plan.jbd2_journal_mib)
                .param("csum", "v3");
            r.cache = Cache { state: cache.into(), resident_min: None, resident_max: None };
            r.samples_ms = ms(&secs[k]);
            r.baseline_samples_ms = ms(&secs[0]);
            r.metric("time_ms", m * 1e3, "ms");
            r.metric("e2fsck_ms", e2fsck * 1e3, "ms");
            r.metric("vs_e2fsck", e2fsck / m, "x");
            r.metric("floor_ms", floor * 1e3, "ms");
            r.metric("e2fsck_over_floor", e2fsck / floor, "x");
            r.metric("speedup", median(&secs[1]) / m, "x");
            r.metric("log_bytes", p.log_bytes as f64, "bytes");
            r.metric("blocks_written", p.blocks as f64, "count");
            r.metric("transactions", p.transactions as f64, "count");
            r.metric("throughput_mb_s", p.log_bytes as f64 / m / 1e6, "MB/s");
            for (name, f) in [
                ("read_ms", (|x: &recovery::jbd2::Jbd2Report| x.read_ms) as fn(&recovery::jbd2::Jbd2Report) -> f64),
                ("write_ms", |x| x.write_ms),
                ("finish_ms", |x| x.finish_ms),
            ] {
                let v: Vec<f64> = reports[k].iter().map(f).collect();
                r.metric(name, median(&v), "ms");
            }
            log(&format!(
                "jbd2: {cache}, {w} worker(s): {:.1} ms, e2fsck {:.1} ms ({:.2}x); writing the blocks alone {:.1} ms",
                m * 1e3,
                e2fsck * 1e3,
                e2fsck / m,
                floor * 1e3
            ));
            sink.push(&r)?;
        }
    }
    Ok(())
}

fn warm_cache(res: &[Option<f64>]) -> Cache {
    let vals: Vec<f64> = res.iter().flatten().copied().collect();
    let lo = vals.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Cache {
        state: "warm".into(),
        resident_min: lo.is_finite().then_some(lo),
        resident_max: hi.is_finite().then_some(hi),
    }
}

fn timed(p: &bench::scaling::Prepared, opts: &RecoverOptions) -> Result<(f64, RecoveryReport, Option<f64>), String> {
    p.restore();
    let res = residency_of(&p.dir);
    let t = Instant::now();
    let report = recovery::recover(&p.dir, opts).map_err(|e| e.to_string())?;
    Ok((t.elapsed().as_secs_f64(), report, res))
}

fn checked(p: &bench::scaling::Prepared, opts: &RecoverOptions) -> Result<RecoveryReport, String> {
    let (_, report) = p.run(opts, true)?;
    Ok(report)
}

fn phase_wall(r: &RecoveryReport, phases: &[&str]) -> f64 {
    r.stats.phases.iter().filter(|s| phases.contains(&s.phase.name())).map(|s| s.wall_ms).sum()
}

/// What the untimed, checked run with `dependency_stats` says a worker count could reach.
struct Bounds {
    /// The whole recovery's work over its floor with these workers (every phase counted);
    /// `None` where the report has no bound (a parallel run that did not compute one).
    whole: Option<f64>,
    /// The whole recovery's work over its span: what no number of workers exceeds.
    whole_any: Option<f64>,
    /// The replay dependency graph's work over its span with these partitions (replay alone).
    replay: f64,
    /// Copies whose source and destination belong to different workers.
    cross_worker_copies: Option<u64>,
}

impl Bounds {
    fn of(report: &RecoveryReport, workers: usize) -> Bounds {
        if workers == 1 {
            // One worker is the baseline every speedup is measured against.
            return Bounds { whole: Some(1.0), whole_any: None, replay: 1.0, cross_worker_copies: None };
        }
        let deps = report.parallel.dependencies.as_ref();
        Bounds {
            whole: report.parallel.whole.map(|w| w.bound),
            whole_any: report.parallel.whole.map(|w| w.bound_any),
            replay: deps.map_or(1.0, |d| d.bound_workers),
            cross_worker_copies: deps.map(|d| d.cross_worker_copies),
        }
    }

    fn add(&self, r: &mut Record) {
        if let Some(b) = self.whole {
            r.metric("whole_bound", b, "x");
        }
        if let Some(b) = self.whole_any {
            r.metric("whole_bound_any", b, "x");
        }
        r.metric("bound", self.replay, "x");
    }
}

fn scaling(
    o: &LabOptions,
    plan: &Plan,
    ceil: &Ceilings,
    work: &Path,
    cpus: usize,
    sink: &mut Sink,
    log: &mut dyn FnMut(&str),
) -> Result<(), String> {
    let (workers, _) = bench::scaling::worker_counts(cpus);
    for preset in SCALING_PRESETS {
        log(&format!("scaling: generating {preset}"));
        let p = bench::scaling::prepare(preset, o.seed, Some(work))?;
        let opts: Vec<RecoverOptions> = workers.iter().map(|&w| bench::scaling::options(w, Executor::Rayon)).collect();
        // Checked against the oracle, and the bounds computed, outside the timing.
        let mut bounds = Vec::new();
        for (op, &w) in opts.iter().zip(&workers) {
            let r = checked(&p, &RecoverOptions { dependency_stats: true, ..*op })?;
            bounds.push(Bounds::of(&r, w));
        }
        let mut secs: Vec<Vec<f64>> = vec![Vec::new(); opts.len()];
        let mut res: Vec<Vec<Option<f64>>> = vec![Vec::new(); opts.len()];
        let mut scan: Vec<Vec<f64>> = vec![Vec::new(); opts.len()];
        let mut replay: Vec<Vec<f64>> = vec![Vec::new(); opts.len()];
        for _ in 0..plan.reps {
            for (i, op) in opts.iter().enumerate() {
                let (s, r, rs) = timed(&p, op)?;
                secs[i].push(s);
                res[i].push(rs);
                scan[i].push(phase_wall(&r, &["scan", "analyze"]));
                replay[i].push(phase_wall(&r, &["redo", "undo"]));
            }
        }
        let base = median(&secs[0]);
        for (i, &w) in workers.iter().enumerate() {
            let m = median(&secs[i]);
            let mut r = Record::new("scaling", &format!("{preset} w={w}"), o.seed)
                .param("preset", preset)
                .param("workers", w)
                .param("executor", "rayon")
                .param("txns", preset.parse::<workloads::Preset>().map_err(|e| format!("{e}"))?.params(o.seed).txns)
                .param("journal_bytes", p.journal_bytes);
            r.cache = warm_cache(&res[i]);
            r.samples_ms = ms(&secs[i]);
            r.metric("time_ms", m * 1e3, "ms");
            r.metric("throughput_mb_s", p.journal_bytes as f64 / m / 1e6, "MB/s");
            r.metric("speedup", base / m, "x");
            r.metric("efficiency", base / m / w as f64, "fraction");
            bounds[i].add(&mut r);
            r.metric("scan_ms", median(&scan[i]), "ms");
            r.metric("replay_ms", median(&replay[i]), "ms");
            ceil.add(&mut r);
            log(&format!(
                "scaling: {} {:.1} ms, {:.2}x (whole-recovery bound {})",
                r.label,
                m * 1e3,
                base / m,
                bounds[i].whole.map_or("-".to_string(), |b| format!("{b:.2}x"))
            ));
            sink.push(&r)?;
        }
    }
    Ok(())
}

/// The `cpu-bound` preset at each share of COPY records in [`DEPS_RATES`] (same seed), each
/// recovered with one worker and with every CPU: what cross-block dependencies cost parallel
/// recovery, beside what the bounds say they should cost. Each speedup compares two medians
/// taken in turn on the same workload, so drift between the rates cancels out of it.
fn deps(
    o: &LabOptions,
    plan: &Plan,
    work: &Path,
    cpus: usize,
    sink: &mut Sink,
    log: &mut dyn FnMut(&str),
) -> Result<(), String> {
    let workers = serial_and_all(cpus);
    let base_params = workloads::Preset::CpuBound.params(o.seed);
    let txns = plan.deps_txns.unwrap_or(base_params.txns);
    for rate in DEPS_RATES {
        let params = workloads::GenParams { deps_rate: rate, txns, ..base_params.clone() };
        log(&format!("deps: generating cpu-bound with {txns} transactions, deps {rate}"));
        let p = bench::scaling::prepare_params(&format!("cpu-bound deps={rate}"), &params, Some(work))?;
        let opts: Vec<RecoverOptions> = workers.iter().map(|&w| bench::scaling::options(w, Executor::Rayon)).collect();
        let mut bounds = Vec::new();
        for (op, &w) in opts.iter().zip(&workers) {
            let r = checked(&p, &RecoverOptions { dependency_stats: true, ..*op })?;
            bounds.push(Bounds::of(&r, w));
        }
        let mut secs: Vec<Vec<f64>> = vec![Vec::new(); opts.len()];
        let mut res: Vec<Vec<Option<f64>>> = vec![Vec::new(); opts.len()];
        for _ in 0..plan.reps {
            for (i, op) in opts.iter().enumerate() {
                let (s, _, rs) = timed(&p, op)?;
                secs[i].push(s);
                res[i].push(rs);
            }
        }
        let base = median(&secs[0]);
        for (i, &w) in workers.iter().enumerate() {
            let m = median(&secs[i]);
            let mut r = Record::new("deps", &format!("deps={rate} w={w}"), o.seed)
                .param("preset", "cpu-bound")
                .param("deps_rate", rate)
                .param("workers", w)
                .param("executor", "rayon")
                .param("txns", txns)
                .param("journal_bytes", p.journal_bytes);
            r.cache = warm_cache(&res[i]);
            r.samples_ms = ms(&secs[i]);
            r.metric("time_ms", m * 1e3, "ms");
            r.metric("speedup", base / m, "x");
            bounds[i].add(&mut r);
            if let Some(c) = bounds[i].cross_worker_copies {
                r.metric("cross_worker_copies", c as f64, "count");
            }
            log(&format!(
                "deps: {} {:.1} ms, {:.2}x (whole-recovery bound {})",
                r.label,
                m * 1e3,
                base / m,
                bounds[i].whole.map_or("-".to_string(), |b| format!("{b:.2}x"))
            ));
            sink.push(&r)?;
        }
    }
    Ok(())
}

fn io(
    o: &LabOptions,
    plan: &Plan,
    ceil: &Ceilings,
    work: &Path,
    sink: &mut Sink,
    log: &mut dyn FnMut(&str),
) -> Result<(), String> {
    let configs = bench::io::select_configs("read-1M,pread-1M,direct-1M,mmap,auto")?;
    for record in plan.io_records {
        log(&format!("io: generating a {} MiB journal of {record} records", plan.io_journal_bytes >> 20));
        let j: IoJournal = bench::io::prepare(record, o.seed, plan.io_journal_bytes, Some(work))?;
        for cfg in &configs {
            j.verify(cfg, None)?;
        }
        for state in [CacheState::Warm, CacheState::Cold] {
            let seq = j.seq_read_ceiling(state, plan.reps)?;
            for consumer in [Consumer::Scan, Consumer::Recover] {
                let mut samples: Vec<Vec<bench::io::Sample>> = vec![Vec::new(); configs.len()];
                for _ in 0..plan.reps {
                    for (i, cfg) in configs.iter().enumerate() {
                        let s = j.sample(consumer, state, cfg, None)?;
                        j.check_sample(cfg, &s)?;
                        samples[i].push(s);
                    }
                }
                let medians: Vec<f64> =
                    samples.iter().map(|v| median(&v.iter().map(|s| s.secs).collect::<Vec<_>>())).collect();
                let best_read = configs
                    .iter()
                    .zip(&medians)
                    .filter(|(c, _)| matches!(c.io.backend, IoBackend::Read | IoBackend::Pread))
                    .map(|(_, m)| *m)
                    .fold(f64::INFINITY, f64::min);
                for (i, cfg) in configs.iter().enumerate() {
                    let m = medians[i];
                    let (lo, hi) = bench::io::residency_range(samples[i].iter().map(|s| s.residency));
                    let buffer =
                        (!matches!(cfg.io.backend, IoBackend::Mmap | IoBackend::Auto)).then_some(cfg.io.buffer_bytes);
                    let mut r = Record::new(
                        "io",
                        &format!("{} {} {} {record}", cfg.label, consumer.name(), state.name()),
                        o.seed,
                    )
                    .param("backend", cfg.io.backend.name())
                    .param("config", cfg.label.as_str())
                    .param("buffer_bytes", buffer)
                    .param("consumer", consumer.name())
                    .param("record", *record)
                    .param("journal_bytes", j.journal_bytes())
                    .param("resolved", samples[i].first().map_or("?".to_string(), |s| s.backend.name().to_string()));
                    r.cache = Cache { state: state.name().into(), resident_min: Some(lo), resident_max: Some(hi) };
                    r.samples_ms = ms(&samples[i].iter().map(|s| s.secs).collect::<Vec<_>>());
                    r.metric("time_ms", m * 1e3, "ms");
                    r.metric("throughput_mb_s", j.journal_bytes() as f64 / m / 1e6, "MB/s");
                    r.metric("vs_read", best_read / m, "x");
                    r.ceilings
                        .insert("memcpy_1t_gb_s".into(), crate::record::Metric::new(ceil.memcpy_1t / 1e9, "GB/s"));
                    r.ceilings
                        .insert("seq_read_gb_s".into(), crate::record::Metric::new(seq.bytes_per_s / 1e9, "GB/s"));
                    sink.push(&r)?;
                }
                log(&format!("io: {record} {} {} done", consumer.name(), state.name()));
            }
        }
    }
    Ok(())
}

fn checkpoint(
    o: &LabOptions,
    plan: &Plan,
    work: &Path,
    sink: &mut Sink,
    log: &mut dyn FnMut(&str),
) -> Result<(), String> {
    use bench::checkpoint::{Cache as C, Phase};
    let before = if plan.crashes.contains(&Phase::Before) {
        Some(bench::checkpoint::phase_txns("default", o.seed, Some(work))?.before)
    } else {
        None
    };
    let default_every = bench::checkpoint::default_cadence_txns();
    // The writer without checkpoints, for what checkpoints add to its work: the same
    // transactions as each crash phase runs.
    let mut base_blocks = std::collections::BTreeMap::new();
    for &crash in plan.crashes {
        log(&format!("checkpoint: the writer without checkpoints, crash {}", crash.name()));
        let txns = if crash == Phase::Before { before } else { None };
        let none = bench::checkpoint::prepare("default", o.seed, None, crash, txns, Some(work))?;
        let w = &none.summary.writer;
        base_blocks.insert(crash.name(), (w.background_blocks + w.other_blocks) as f64);
    }
    for &every in plan.cadences {
        for &crash in plan.crashes {
            let txns = if crash == Phase::Before { before } else { None };
            let base_blocks = base_blocks.get(crash.name()).copied().unwrap_or(0.0);
            log(&format!("checkpoint: every {every}, crash {}", crash.name()));
            let p = bench::checkpoint::prepare("default", o.seed, Some(every), crash, txns, Some(work))?;
            let g = &p.summary;
            for cache in [C::Warm, C::Cold] {
                let m = bench::checkpoint::measure(&p, plan.reps, cache)?;
                let s = bench::checkpoint::scope(&p, &m.with, &m.without);
                let label = format!("{} {}", bench::checkpoint::state_label(Some(every), crash), cache.name());
                let mut r = Record::new("checkpoint", &label, o.seed)
                    .param("every_txns", every)
                    .param("crash", crash.name())
                    .param("txns", p.txns)
                    .param("style", "incremental")
                    .param("default_cadence", default_every == Some(every));
                let (lo, hi) =
                    m.resident.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
                r.cache = Cache { state: cache.name().into(), resident_min: Some(lo), resident_max: Some(hi) };
                r.samples_ms = ms(&m.with_secs);
                r.baseline_samples_ms = ms(&m.without_secs);
                let (with, without) = (m.with_median(), m.without_median());
                r.metric("time_with_ms", with * 1e3, "ms");
                r.metric("time_without_ms", without * 1e3, "ms");
                r.metric("time_ratio", with / without, "x");
                r.metric("bytes_skipped", s.bytes_not_read, "fraction");
                r.metric("records_skipped", s.records_not_replayed, "fraction");
                r.metric("distance_bytes", s.distance_bytes as f64, "bytes");
                r.metric("journal_bytes", s.journal_bytes as f64, "bytes");
                r.metric("blocks_written_with", s.blocks_written_with as f64, "count");
                r.metric("blocks_written_without", s.blocks_written_without as f64, "count");
                r.metric("find_ms", s.find_ms, "ms");
                r.metric("checkpoints_written", g.checkpoints as f64, "count");
                r.metric(
                    "redo_lag_records",
                    g.last_checkpoint_lsn.saturating_sub(g.last_checkpoint_redo_start) as f64,
                    "count",
                );
                r.metric("dirty_at_checkpoint", g.writer.last_checkpoint_dirty as f64, "count");
                r.metric("writer_checkpoint_blocks", g.writer.checkpoint_blocks as f64, "count");
                r.metric("writer_background_blocks", g.writer.background_blocks as f64, "count");
                r.metric(
                    "writer_extra_blocks",
                    (g.writer.background_blocks + g.writer.other_blocks + g.writer.checkpoint_blocks) as f64
                        - base_blocks,
                    "count",
                );
                if let Some(secs) = g.writer.checkpoint_secs {
                    r.metric("writer_checkpoint_ms", secs * 1e3, "ms");
                }
                // The flush with checkpoints (writing back the blocks not home, the fdatasync and
                // the marker) is work no start point can avoid: over the time without, it is the
                // lowest ratio any checkpoint could reach on this crash image.
                if let Some(flush_ms) = m.with_phase_ms.get("flush") {
                    r.metric("floor_ratio", flush_ms / (without * 1e3), "x");
                }
                // Where the time goes, both ways (medians of the operator's phases).
                for (way, phases) in [("with", &m.with_phase_ms), ("without", &m.without_phase_ms)] {
                    for (phase, v) in phases.iter().filter(|(_, v)| **v >= 0.05) {
                        r.metric(&format!("phase_{way}_{}_ms", phase.replace('-', "_")), *v, "ms");
                    }
                }
                log(&format!(
                    "checkpoint: {label}: {:.1} ms with, {:.1} ms without ({:.2}x); {:.1}% of the journal not read",
                    with * 1e3,
                    without * 1e3,
                    with / without,
                    s.bytes_not_read * 100.0
                ));
                sink.push(&r)?;
            }
        }
    }
    log("checkpoint: finding the newest record among 1 to 1,024");
    for (n, us) in bench::checkpoint::find_cost(&[1, 64, 1024], 51)? {
        let mut r = Record::new("checkpoint-find", &format!("{n} records"), o.seed).param("records", n);
        r.metric("find_us", us, "us");
        sink.push(&r)?;
    }
    Ok(())
}

/// Counts callbacks and the gaps between them, and does what `--progress json` does with
/// each snapshot, into a sink.
struct GapObserver {
    json: JsonLines<std::io::Sink>,
    last: Mutex<Option<Instant>>,
    gaps_ns: Mutex<Vec<u64>>,
    updates: AtomicU64,
}

impl GapObserver {
    fn new() -> GapObserver {
        GapObserver {
            json: JsonLines::new(std::io::sink()),
            last: Mutex::new(None),
            gaps_ns: Mutex::new(Vec::new()),
            updates: AtomicU64::new(0),
        }
    }

    fn seen(&self) {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(l) = *last {
            self.gaps_ns.lock().unwrap_or_else(|e| e.into_inner()).push((now - l).as_nanos() as u64);
        }
        *last = Some(now);
        self.updates.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Observer for GapObserver {
    fn phase_started(&self, s: &Snapshot) {
        self.json.phase_started(s);
        self.seen();
    }
    fn progress(&self, s: &Snapshot) {
        self.json.progress(s);
        self.seen();
    }
    fn phase_finished(&self, s: &Snapshot) {
        self.json.phase_finished(s);
        self.seen();
    }
    fn finished(&self, s: &Snapshot, error: Option<&str>) {
        self.json.finished(s, error);
        self.seen();
    }
}

fn progress(
    o: &LabOptions,
    plan: &Plan,
    p: &bench::scaling::Prepared,
    sink: &mut Sink,
    log: &mut dyn FnMut(&str),
) -> Result<(), String> {
    // A fast recovery (the defaults, warm) and a slow one (serial, small reads, windowed
    // pwrite image, cold journal): only the slow one shows what an operator waits through.
    // The slow shape lasts several seconds (its 1 MiB block cache makes redo a few dozen
    // windows), so the default 1 s interval fires several times.
    let slow = RecoverOptions {
        workers: Some(1),
        io: IoOptions { buffer_bytes: 64 << 10, ..IoOptions::with(IoBackend::Read) },
        image_io: ImageIo::Pwrite,
        memory_budget_bytes: 1 << 20,
        ..RecoverOptions::default()
    };
    let shapes = [("fast", RecoverOptions::default(), false), ("slow", slow, true)];
    let intervals: [Option<u64>; 3] = [None, Some(1000), Some(100)];
    for (shape, opts, cold) in shapes {
        checked(p, &opts)?;
        let mut secs: Vec<Vec<f64>> = vec![Vec::new(); intervals.len()];
        let mut res: Vec<Vec<Option<f64>>> = vec![Vec::new(); intervals.len()];
        let mut gaps: Vec<Vec<u64>> = vec![Vec::new(); intervals.len()];
        let mut updates: Vec<Vec<f64>> = vec![Vec::new(); intervals.len()];
        // More than the plan's repetitions: the no-observer control is the baseline of two
        // ratios, and cold recoveries on a shared disk vary by 2x between runs. A multiple of
        // the variants, so each goes first equally often.
        let reps = if cold { plan.reps * 2 } else { plan.reps * 3 };
        for rep in 0..reps {
            // Rotate the order so no variant always runs first after the restore.
            for k in 0..intervals.len() {
                let i = (k + rep) % intervals.len();
                p.restore();
                if cold {
                    evict_journal(&p.dir)?;
                }
                res[i].push(residency_of(&p.dir));
                let obs = GapObserver::new();
                let m = Monitor {
                    observer: intervals[i].map(|_| &obs as &dyn Observer),
                    interval: Duration::from_millis(intervals[i].unwrap_or(1000)),
                    cancel: None,
                };
                let t = Instant::now();
                recovery::recover_with(&p.dir, &opts, &m).map_err(|e| e.to_string())?;
                secs[i].push(t.elapsed().as_secs_f64());
                gaps[i].extend(obs.gaps_ns.into_inner().unwrap_or_else(|e| e.into_inner()));
                updates[i].push(obs.updates.into_inner() as f64);
            }
        }
        let base = median(&secs[0]);
        for (i, iv) in intervals.iter().enumerate() {
            let label = format!("{shape} {}", iv.map_or("none".to_string(), |v| format!("{v}ms")));
            let mut r = Record::new("progress", &label, o.seed)
                .param("preset", "default")
                .param("shape", shape)
                .param("interval_ms", *iv)
                .param("workers", opts.workers.map_or("all".to_string(), |w| w.to_string()))
                .param("io", opts.io.backend.name())
                .param("image_io", format!("{:?}", opts.image_io).to_lowercase());
            r.cache = if cold {
                let v: Vec<f64> = res[i].iter().flatten().copied().collect();
                Cache {
                    state: "cold".into(),
                    resident_min: v.iter().copied().reduce(f64::min),
                    resident_max: v.iter().copied().reduce(f64::max),
                }
            } else {
                warm_cache(&res[i])
            };
            r.samples_ms = ms(&secs[i]);
            let m = median(&secs[i]);
            r.metric("time_ms", m * 1e3, "ms");
            r.metric("overhead", m / base, "x");
            if iv.is_some() {
                let mut g: Vec<f64> = gaps[i].iter().map(|&n| n as f64 / 1e6).collect();
                g.sort_by(f64::total_cmp);
                r.metric("updates", median(&updates[i]), "count");
                r.metric("gap_max_ms", g.last().copied().unwrap_or(0.0), "ms");
                r.metric("gap_p50_ms", median(&g), "ms");
            }
            log(&format!("progress: {label} {:.1} ms ({:.3}x)", m * 1e3, m / base));
            sink.push(&r)?;
        }
    }
    Ok(())
}

/// Worker counts of the serial-against-parallel experiments: 1, and every CPU (at most the
/// engine's default cap of 16).
fn serial_and_all(cpus: usize) -> Vec<usize> {
    let all = cpus.min(RecoverOptions::default().workers_max);
    if all > 1 {
        vec![1, all]
    } else {
        vec![1]
    }
}

fn evict_journal(dir: &Path) -> Result<(), String> {
    let jdir = dir.join(recovery::dir::JOURNAL_DIR);
    let paths: Vec<PathBuf> = std::fs::read_dir(&jdir)
        .map_err(|e| format!("{}: {e}", jdir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    let refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    recovery::io::cache::evict_all(&refs).map(|_| ()).map_err(|e| format!("evict: {e}"))
}

fn latency(
    o: &LabOptions,
    plan: &Plan,
    p: &bench::scaling::Prepared,
    cpus: usize,
    sink: &mut Sink,
    log: &mut dyn FnMut(&str),
) -> Result<(), String> {
    let ws = serial_and_all(cpus);
    for w in ws {
        let opts = bench::scaling::options(w, Executor::Rayon);
        checked(p, &opts)?;
        let mut runs: Vec<(f64, RecoveryReport, Option<f64>)> =
            (0..plan.reps).map(|_| timed(p, &opts)).collect::<Result<_, _>>()?;
        runs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let secs: Vec<f64> = runs.iter().map(|r| r.0).collect();
        let res: Vec<Option<f64>> = runs.iter().map(|r| r.2).collect();
        // The distributions of the median run.
        let (_, report, _) = &runs[runs.len() / 2];
        let mut r = Record::new("latency", &format!("default w={w}"), o.seed)
            .param("preset", "default")
            .param("workers", w)
            .param("batch_ops", opts.batch_ops);
        r.cache = warm_cache(&res);
        r.samples_ms = ms(&secs);
        for (name, l) in [("batch_apply", &report.stats.batch_apply), ("segment_read", &report.stats.segment_read)] {
            r.metric(&format!("{name}_p50_us"), l.p50_us, "us");
            r.metric(&format!("{name}_p99_us"), l.p99_us, "us");
            r.metric(&format!("{name}_p999_us"), l.p999_us, "us");
            r.metric(&format!("{name}_max_us"), l.max_us, "us");
            r.metric(&format!("{name}_count"), l.count as f64, "count");
        }
        log(&format!("latency: w={w} batch p99 {:.0} us", report.stats.batch_apply.p99_us));
        sink.push(&r)?;
    }
    Ok(())
}

fn bandwidth(
    o: &LabOptions,
    plan: &Plan,
    ceil: &Ceilings,
    p: &bench::scaling::Prepared,
    cpus: usize,
    sink: &mut Sink,
    log: &mut dyn FnMut(&str),
) -> Result<(), String> {
    let ws = serial_and_all(cpus);
    let opts: Vec<RecoverOptions> = ws.iter().map(|&w| bench::scaling::options(w, Executor::Rayon)).collect();
    for op in &opts {
        checked(p, op)?;
    }
    let mut secs: Vec<Vec<f64>> = vec![Vec::new(); opts.len()];
    let mut res: Vec<Vec<Option<f64>>> = vec![Vec::new(); opts.len()];
    for _ in 0..plan.reps {
        for (i, op) in opts.iter().enumerate() {
            let (s, _, rs) = timed(p, op)?;
            secs[i].push(s);
            res[i].push(rs);
        }
    }
    for (i, &w) in ws.iter().enumerate() {
        let m = median(&secs[i]);
        let bw = p.journal_bytes as f64 / m;
        let mut r = Record::new("bandwidth", &format!("default w={w}"), o.seed)
            .param("preset", "default")
            .param("workers", w)
            .param("journal_bytes", p.journal_bytes);
        r.cache = warm_cache(&res[i]);
        r.samples_ms = ms(&secs[i]);
        r.metric("time_ms", m * 1e3, "ms");
        r.metric("throughput_mb_s", bw / 1e6, "MB/s");
        let memcpy = if w == 1 { ceil.memcpy_1t } else { ceil.memcpy_all };
        r.metric("of_memcpy", bw / memcpy, "x");
        ceil.add(&mut r);
        log(&format!("bandwidth: w={w} {:.0} MB/s = {:.2}x memcpy", bw / 1e6, bw / memcpy));
        sink.push(&r)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_is_checked_and_ordered() {
        assert_eq!(parse_only("io,scaling"), Ok(vec!["scaling".to_string(), "io".to_string()]));
        assert!(parse_only("scaling,warp").expect_err("unknown").contains("warp"));
        assert!(parse_only(" , ").is_err());
    }
}
