//! The worker-scaling sweep behind `recovery/scaling` and `scripts/scaling-sweep.sh`.
//!
//! For each preset, one crash state is generated from its seed; then every configuration
//! (worker count x executor) recovers a fresh copy of the crash image several times, and the
//! median is compared with the 1-worker median measured in the same run.

use std::path::{Path, PathBuf};
use std::time::Instant;

use recovery::{recover, Executor, RecoverOptions, RecoveryReport};

/// One preset prepared for repeated recoveries.
pub struct Prepared {
    _tmp: tempfile::TempDir,
    /// The crash-state directory.
    pub dir: PathBuf,
    crash_image: Vec<u8>,
    checkpoints: crate::CheckpointState,
    /// Journal bytes.
    pub journal_bytes: u64,
    /// Preset name.
    pub preset: String,
    /// Seed.
    pub seed: u64,
}

/// Generates `preset` with `seed` into a temporary directory (under `parent` if given).
pub fn prepare(preset: &str, seed: u64, parent: Option<&Path>) -> Result<Prepared, String> {
    let p: workloads::Preset = preset.parse().map_err(|e| format!("{e}"))?;
    prepare_params(preset, &p.params(seed), parent)
}

/// Generates a crash state from explicit `params` into a temporary directory (under `parent`
/// if given); `name` labels it where a preset name would.
pub fn prepare_params(name: &str, params: &workloads::GenParams, parent: Option<&Path>) -> Result<Prepared, String> {
    let tmp = match parent {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .map_err(|e| e.to_string())?;
    let dir = tmp.path().join("crash");
    workloads::generate(&dir, params).map_err(|e| e.to_string())?;
    let crash_image = std::fs::read(dir.join(recovery::dir::IMAGE_FILE)).map_err(|e| e.to_string())?;
    let journal_bytes = std::fs::read_dir(dir.join(recovery::dir::JOURNAL_DIR))
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    let checkpoints = crate::CheckpointState::of(&dir);
    Ok(Prepared { _tmp: tmp, dir, crash_image, checkpoints, journal_bytes, preset: name.into(), seed: params.seed })
}

impl Prepared {
    /// Puts the crash image back, durable, and forgets any earlier recovery.
    pub fn restore(&self) {
        let path = self.dir.join(recovery::dir::IMAGE_FILE);
        if std::fs::write(&path, &self.crash_image).is_ok() {
            let _ = std::fs::File::open(&path).and_then(|f| f.sync_all());
        }
        let _ = std::fs::remove_file(self.dir.join(recovery::dir::MARKER_FILE));
        let _ = self.checkpoints.restore(&self.dir);
    }

    /// One recovery from the crash state with `opts`; checks the result against the oracle
    /// when `verify`.
    pub fn run(&self, opts: &RecoverOptions, verify: bool) -> Result<(f64, RecoveryReport), String> {
        self.restore();
        let t = Instant::now();
        let report = recover(&self.dir, opts).map_err(|e| e.to_string())?;
        let secs = t.elapsed().as_secs_f64();
        if verify && !workloads::digest::verify_dir(&self.dir).map_err(|e| e.to_string())?.matches {
            return Err(format!("{} with {:?} workers does not match the oracle", self.preset, opts.workers));
        }
        Ok((secs, report))
    }
}

/// Options for one sweep configuration.
pub fn options(workers: usize, executor: Executor) -> RecoverOptions {
    RecoverOptions { workers: Some(workers), executor, ..RecoverOptions::default() }
}

/// Worker counts to sweep on this machine: 1, 2, 4, 8, 16 capped at the CPUs, with the CPU
/// count itself added when it is not a power of two. Returns the list and whether it was capped.
pub fn worker_counts(cpus: usize) -> (Vec<usize>, bool) {
    let mut v: Vec<usize> = [1, 2, 4, 8, 16].into_iter().filter(|&w| w <= cpus).collect();
    if !v.contains(&cpus.min(16)) {
        v.push(cpus.min(16));
    }
    (v, cpus < 16)
}

/// What [`measure`] found for one configuration.
pub struct Measured {
    /// Median seconds per recovery.
    pub secs: f64,
    /// Median milliseconds per phase.
    pub phase_ms: Vec<(String, f64)>,
    /// Report of the untimed run that was verified and computed dependency stats.
    pub report: RecoveryReport,
    /// Timed repetitions.
    pub reps: usize,
}

/// Medians of `reps` recoveries with `opts`: seconds, per-phase milliseconds, and the report of
/// an extra, untimed run that was verified against the oracle and computed dependency stats.
pub fn measure(p: &Prepared, opts: &RecoverOptions, reps: usize) -> Result<Measured, String> {
    // One untimed run checks the result against the oracle and computes the dependency graph
    // (which costs the routing thread a lookup per operation); the timed runs do neither.
    let (_, checked) = p.run(&RecoverOptions { dependency_stats: true, ..*opts }, true)?;
    let mut secs = Vec::new();
    let mut phases: std::collections::BTreeMap<&'static str, Vec<f64>> = Default::default();
    for _ in 0..reps {
        let (s, r) = p.run(opts, false)?;
        secs.push(s);
        for ph in &r.phases {
            phases.entry(ph.phase).or_default().push(ph.ms);
        }
    }
    let phase_ms = phases.iter_mut().map(|(k, v)| (k.to_string(), crate::median(v))).collect();
    Ok(Measured { secs: crate::median(&mut secs), phase_ms, report: checked, reps })
}

/// One line of the sweep's NDJSON output: `m` measured with `workers` and `executor`, against
/// the 1-worker median `base_secs`.
pub fn record(
    p: &Prepared,
    workers: usize,
    executor: Executor,
    m: &Measured,
    base_secs: f64,
    capped: bool,
) -> serde_json::Value {
    let speedup = base_secs / m.secs;
    let report = &m.report;
    serde_json::json!({
        "schema": 1,
        "experiment": "scaling",
        "preset": p.preset,
        "seed": p.seed,
        "cache": "warm",
        "journal_bytes": p.journal_bytes,
        "records": report.records_scanned,
        "workers": workers,
        "executor": executor,
        "reps": m.reps,
        "seconds_median": m.secs,
        "bytes_per_s": p.journal_bytes as f64 / m.secs,
        "speedup_vs_1_worker": speedup,
        "efficiency": speedup / workers as f64,
        "phase_ms_median": m.phase_ms.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
        "scan_mode": report.parallel.scan,
        "replay_mode": report.parallel.replay,
        "dependencies": report.parallel.dependencies,
        "plan": report.parallel.plan,
        "capped_at_cpus": capped,
    })
}
