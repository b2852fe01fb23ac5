//! The checkpoint-cadence sweep behind `checkpoint/scope` and the lab's `checkpoint`
//! experiment: how much of the journal recovery no longer reads or replays when the simulated
//! system takes a checkpoint every N transactions, what that saves in recovery time (warm and
//! cold cache), what the checkpoints cost the writer, and what finding the newest record costs.
//!
//! For each cadence one crash state is generated (checkpoints are part of generation), then
//! the same crash image is recovered with and without its checkpoint records, taking turns,
//! and the medians are compared within the run.
//!
//! Where the crash falls between two checkpoints decides most of the answer: the journal
//! after the newest checkpoint is what recovery still replays. Checkpoints come every N
//! finished transactions, and the generator finishes a few more transactions than the preset
//! names (its scenarios add some), so with every cadence that divides the preset's count the
//! crash comes just *after* a checkpoint: the best case. [`Phase::Before`] generates a few
//! transactions fewer so that the crash comes just before the next checkpoint would have been
//! due: the worst case, with the journal's length all but unchanged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use recovery::{recover, RecoverOptions, RecoveryReport};
use workloads::params::{Cadence, CheckpointPlan};

/// Cadences swept by default (`none`: the simulated system never checkpoints).
pub const CADENCES_DEFAULT: &str = "none,24000,12000,6000,3000,1500,750,375";

/// Crash phases swept by default.
pub const PHASES_DEFAULT: &str = "after,before";

/// Transactions the generator runs fewer than the crash just after a checkpoint needs, for
/// [`Phase::Before`]: slack for the extra transactions the generator's scenarios add, which
/// move a little with the transaction count.
pub const BEFORE_MARGIN_TXNS: u64 = 10;

/// Where the crash falls between two checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// The preset as it is: with cadences dividing its transaction count, just after one.
    After,
    /// A few transactions fewer: just before the next one would have been due.
    Before,
}

impl Phase {
    /// Name in arguments, ids and tables.
    pub fn name(self) -> &'static str {
        match self {
            Phase::After => "after",
            Phase::Before => "before",
        }
    }
}

impl std::str::FromStr for Phase {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [Phase::After, Phase::Before]
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| format!("unknown crash phase `{s}` (expected after or before)"))
    }
}

/// Parses `after,before`.
pub fn parse_phases(list: &str) -> Result<Vec<Phase>, String> {
    let v: Vec<Phase> =
        list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::parse).collect::<Result<_, _>>()?;
    if v.is_empty() {
        return Err("no crash phases given".into());
    }
    Ok(v)
}

/// Transactions between checkpoints at [`Cadence::DEFAULT`] (its simulated interval times its
/// simulated rate), so tables find the default row without restating the constant.
pub fn default_cadence_txns() -> Option<u64> {
    match Cadence::DEFAULT {
        Cadence::Txns(n) => Some(n),
        Cadence::Interval { secs, txns_per_sec } => Some((secs * txns_per_sec).round() as u64),
        Cadence::Bytes(_) => None,
    }
}

/// Parses `none,24000,3000`: `None` for no checkpoints, else transactions between them.
pub fn parse_cadences(list: &str) -> Result<Vec<Option<u64>>, String> {
    let v: Vec<Option<u64>> = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| match s {
            "none" => Ok(None),
            _ => match s.parse::<u64>() {
                Ok(0) | Err(_) => Err(format!("cadence `{s}`: expected `none` or a positive transaction count")),
                Ok(n) => Ok(Some(n)),
            },
        })
        .collect::<Result<_, _>>()?;
    if v.is_empty() {
        return Err("no cadences given".into());
    }
    Ok(v)
}

/// Label of a cadence in ids and tables: `none` or `every-N`.
pub fn label(every: Option<u64>) -> String {
    every.map_or_else(|| "none".into(), |n| format!("every-{n}"))
}

/// Label of a crash state: the cadence's, with `-before` for [`Phase::Before`].
pub fn state_label(every: Option<u64>, phase: Phase) -> String {
    match phase {
        Phase::After => label(every),
        Phase::Before => format!("{}-before", label(every)),
    }
}

/// The preset's parameters with checkpoints every `every` transactions (the rest of the plan
/// at its defaults: incremental), or none; `txns` overrides the preset's transaction count.
/// The writer writes the image file as it goes (`real_image_io`), so what the checkpoints
/// cost it is timed.
pub fn params(preset: &str, seed: u64, every: Option<u64>, txns: Option<u64>) -> Result<workloads::GenParams, String> {
    let p: workloads::Preset = preset.parse().map_err(|e| format!("{e}"))?;
    let mut params = p.params(seed);
    params.checkpoints = every.map(|n| CheckpointPlan { every: Cadence::Txns(n), ..CheckpointPlan::default() });
    params.real_image_io = true;
    if let Some(t) = txns {
        params.txns = t;
    }
    Ok(params)
}

/// Transaction counts for each phase of `preset`: what [`Phase::After`] runs (the preset's
/// own), and what [`Phase::Before`] runs, found by generating the preset once without
/// checkpoints (under `parent`) to see how many transactions past its count it finishes.
pub struct PhaseTxns {
    /// The preset's transaction count.
    pub after: u64,
    /// Transactions finished beyond it (scenario transactions, less those left in flight).
    pub overshoot: u64,
    /// The count [`Phase::Before`] generates.
    pub before: u64,
}

/// See [`PhaseTxns`].
pub fn phase_txns(preset: &str, seed: u64, parent: Option<&Path>) -> Result<PhaseTxns, String> {
    let params = params(preset, seed, None, None)?;
    let tmp = match parent {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .map_err(|e| e.to_string())?;
    let g = workloads::generate(&tmp.path().join("crash"), &params).map_err(|e| e.to_string())?;
    let overshoot = (g.txns_committed + g.txns_aborted).saturating_sub(params.txns);
    let before = params.txns.checked_sub(overshoot + 1 + BEFORE_MARGIN_TXNS).filter(|&t| t > 0).ok_or_else(|| {
        format!("{preset} has too few transactions ({}) for a crash before a checkpoint", params.txns)
    })?;
    Ok(PhaseTxns { after: params.txns, overshoot, before })
}

/// One crash state, generated with a cadence, prepared for repeated recoveries.
pub struct Prepared {
    _tmp: tempfile::TempDir,
    /// The crash-state directory.
    pub dir: PathBuf,
    crash_image: Vec<u8>,
    checkpoints: crate::CheckpointState,
    /// What generation reported.
    pub summary: workloads::GenSummary,
    /// Seconds generation took (the whole simulated run, checkpoints included).
    pub gen_secs: f64,
    /// Seconds spent afterwards making every generated file durable (see [`settle`]).
    pub settle_secs: f64,
    /// Transactions between checkpoints; `None`: no checkpoints.
    pub every: Option<u64>,
    /// Where the crash falls between two checkpoints.
    pub phase: Phase,
    /// Transactions generated (the preset's count, or fewer for [`Phase::Before`]).
    pub txns: u64,
    /// Preset name.
    pub preset: String,
    /// Seed.
    pub seed: u64,
    checkpoints_at_start: Vec<(String, u64)>,
}

fn listing(dir: &Path) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = std::fs::read_dir(dir.join(recovery::dir::CHECKPOINT_DIR))
        .map(|d| {
            d.filter_map(|e| {
                let e = e.ok()?;
                Some((e.file_name().to_string_lossy().into_owned(), e.metadata().ok()?.len()))
            })
            .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Fsyncs every file under `dir`. The generator leaves its journal to background writeback,
/// and hundreds of MiB of it reaching the disk during timed recoveries (whose final image
/// flush waits on the same disk) would land on whichever run came first; a smoke run saw one
/// recovery take twice as long as its neighbours right after generation.
pub fn settle(dir: &Path) -> Result<(), String> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).map_err(|e| format!("{}: {e}", d.display()))? {
            let path = e.map_err(|e| format!("{}: {e}", d.display()))?.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                std::fs::File::open(&path)
                    .and_then(|f| f.sync_all())
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
        }
    }
    Ok(())
}

/// Generates `preset` with `seed`, checkpoints every `every` transactions and `txns`
/// transactions (`None`: the preset's; `phase` names what that count is for) into a temporary
/// directory (under `parent` if given), timing the generation.
pub fn prepare(
    preset: &str,
    seed: u64,
    every: Option<u64>,
    phase: Phase,
    txns: Option<u64>,
    parent: Option<&Path>,
) -> Result<Prepared, String> {
    let params = params(preset, seed, every, txns)?;
    let tmp = match parent {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .map_err(|e| e.to_string())?;
    let dir = tmp.path().join("crash");
    let t = Instant::now();
    let summary = workloads::generate(&dir, &params).map_err(|e| e.to_string())?;
    let gen_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    settle(&dir)?;
    let settle_secs = t.elapsed().as_secs_f64();
    let crash_image = std::fs::read(dir.join(recovery::dir::IMAGE_FILE)).map_err(|e| e.to_string())?;
    let checkpoints_at_start = listing(&dir);
    let checkpoints = crate::CheckpointState::of(&dir);
    Ok(Prepared {
        _tmp: tmp,
        dir,
        crash_image,
        checkpoints,
        summary,
        gen_secs,
        settle_secs,
        every,
        phase,
        txns: params.txns,
        preset: preset.into(),
        seed,
        checkpoints_at_start,
    })
}

/// Options of the two recoveries compared.
pub fn options(with_checkpoints: bool) -> RecoverOptions {
    RecoverOptions { use_checkpoints: with_checkpoints, ..RecoverOptions::default() }
}

/// Page-cache state a timed recovery starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cache {
    /// The journal and image as the previous recovery left them in the page cache.
    Warm,
    /// The journal's segments and the image evicted (fdatasync, then POSIX_FADV_DONTNEED)
    /// just before.
    Cold,
}

impl Cache {
    /// Name in ids and tables.
    pub fn name(self) -> &'static str {
        match self {
            Cache::Warm => "warm",
            Cache::Cold => "cold",
        }
    }
}

impl Prepared {
    /// Puts the crash image back, durable, and forgets any earlier recovery (its marker, and
    /// the checkpoint record it wrote at the journal's end).
    pub fn restore(&self) -> Result<(), String> {
        self.checkpoints.restore(&self.dir)?;
        let path = self.dir.join(recovery::dir::IMAGE_FILE);
        std::fs::write(&path, &self.crash_image).map_err(|e| format!("{}: {e}", path.display()))?;
        std::fs::File::open(&path).and_then(|f| f.sync_all()).map_err(|e| format!("{}: {e}", path.display()))?;
        let marker = self.dir.join(recovery::dir::MARKER_FILE);
        match std::fs::remove_file(&marker) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(format!("{}: {e}", marker.display())),
            _ => Ok(()),
        }
    }

    /// Evicts the journal's segments and the image from the page cache; returns the journal's
    /// residency after (mincore).
    pub fn evict(&self) -> Result<f64, String> {
        let jdir = self.dir.join(recovery::dir::JOURNAL_DIR);
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&jdir)
            .map_err(|e| format!("{}: {e}", jdir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        paths.push(self.dir.join(recovery::dir::IMAGE_FILE));
        let refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
        recovery::io::cache::evict_all(&refs).map_err(|e| format!("evict: {e}"))?;
        Ok(recovery::io::cache::residency_of_journal(&jdir).fraction())
    }

    /// One recovery from the crash state (restored first, untimed; evicted first when
    /// `cache` is cold); checks the image against the oracle when `verify` (untimed). Returns
    /// seconds, the report and the journal's residency when the recovery began.
    pub fn run(
        &self,
        with_checkpoints: bool,
        verify: bool,
        cache: Cache,
    ) -> Result<(f64, RecoveryReport, f64), String> {
        self.restore()?;
        let resident = match cache {
            Cache::Cold => self.evict()?,
            Cache::Warm => {
                recovery::io::cache::residency_of_journal(&self.dir.join(recovery::dir::JOURNAL_DIR)).fraction()
            }
        };
        let t = Instant::now();
        let report = recover(&self.dir, &options(with_checkpoints)).map_err(|e| e.to_string())?;
        let secs = t.elapsed().as_secs_f64();
        if verify {
            let v = workloads::digest::verify_dir(&self.dir).map_err(|e| e.to_string())?;
            if !v.matches {
                return Err(format!(
                    "{} {} {} checkpoints: {} blocks differ from the oracle (first {:?})",
                    self.preset,
                    state_label(self.every, self.phase),
                    if with_checkpoints { "with" } else { "without" },
                    v.bad_blocks,
                    v.first_bad_block
                ));
            }
        }
        Ok((secs, report, resident))
    }

    /// Whether the checkpoint directory, restored, holds exactly the files (names and lengths)
    /// generation left: recoveries add their record at the journal's end, and nothing else.
    pub fn checkpoints_unchanged(&self) -> bool {
        self.restore().is_ok() && listing(&self.dir) == self.checkpoints_at_start
    }

    /// Journal bytes written after the newest checkpoint record was: how far the crash came
    /// after it.
    pub fn distance_bytes(&self) -> u64 {
        match self.summary.checkpoints {
            0 => self.summary.journal_bytes_written,
            _ => self.summary.journal_bytes_written.saturating_sub(self.summary.last_checkpoint_pos),
        }
    }
}

/// What [`measure`] found for one cadence and cache state: the two recoveries taking turns.
pub struct Measured {
    /// The cache state.
    pub cache: Cache,
    /// Seconds per recovery with checkpoints, in run order.
    pub with_secs: Vec<f64>,
    /// Seconds per recovery without checkpoints, in run order.
    pub without_secs: Vec<f64>,
    /// Journal residency at the start of each timed recovery, both ways.
    pub resident: Vec<f64>,
    /// Median milliseconds per phase, with checkpoints.
    pub with_phase_ms: BTreeMap<String, f64>,
    /// Median milliseconds per phase, without checkpoints.
    pub without_phase_ms: BTreeMap<String, f64>,
    /// Report of the verified run with checkpoints.
    pub with: RecoveryReport,
    /// Report of the verified run without checkpoints.
    pub without: RecoveryReport,
    /// Seconds spent checking images against the oracle.
    pub verify_secs: f64,
}

impl Measured {
    /// Median seconds with checkpoints.
    pub fn with_median(&self) -> f64 {
        crate::median(&mut self.with_secs.clone())
    }

    /// Median seconds without checkpoints.
    pub fn without_median(&self) -> f64 {
        crate::median(&mut self.without_secs.clone())
    }
}

fn phase_medians(runs: &[RecoveryReport]) -> BTreeMap<String, f64> {
    let mut phases: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for r in runs {
        for ph in &r.stats.phases {
            phases.entry(ph.phase.name().to_string()).or_default().push(ph.wall_ms);
        }
    }
    phases.iter_mut().map(|(k, v)| (k.clone(), crate::median(v))).collect()
}

/// One verified, untimed recovery each way (which also warms the page cache), then `reps`
/// timed recoveries each way from `cache`, taking turns and swapping which goes first every
/// repetition so drift on a shared machine lands on both alike.
pub fn measure(p: &Prepared, reps: usize, cache: Cache) -> Result<Measured, String> {
    let mut verify_secs = 0.0;
    let mut checked = Vec::new();
    for with in [true, false] {
        let (secs, report, _) = p.run(with, false, Cache::Warm)?;
        let t = Instant::now();
        let v = workloads::digest::verify_dir(&p.dir).map_err(|e| e.to_string())?;
        verify_secs += t.elapsed().as_secs_f64();
        if !v.matches {
            return Err(format!(
                "{} {} {} checkpoints: {} blocks differ from the oracle (first {:?}; recovery took {secs:.3} s)",
                p.preset,
                state_label(p.every, p.phase),
                if with { "with" } else { "without" },
                v.bad_blocks,
                v.first_bad_block
            ));
        }
        checked.push(report);
    }
    let without = checked.pop().ok_or("no verified run without checkpoints")?;
    let with = checked.pop().ok_or("no verified run with checkpoints")?;
    let (mut with_secs, mut without_secs, mut resident) = (Vec::new(), Vec::new(), Vec::new());
    let (mut with_runs, mut without_runs) = (Vec::new(), Vec::new());
    for rep in 0..reps {
        let order = if rep % 2 == 0 { [true, false] } else { [false, true] };
        for w in order {
            let (secs, report, res) = p.run(w, false, cache)?;
            resident.push(res);
            if w {
                with_secs.push(secs);
                with_runs.push(report);
            } else {
                without_secs.push(secs);
                without_runs.push(report);
            }
        }
    }
    Ok(Measured {
        cache,
        with_secs,
        without_secs,
        resident,
        with_phase_ms: phase_medians(&with_runs),
        without_phase_ms: phase_medians(&without_runs),
        with,
        without,
        verify_secs,
    })
}

/// The replay scope a checkpoint saved, from a recovery with and one without it.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Scope {
    /// Journal bytes on disk.
    pub journal_bytes: u64,
    /// Of those, bytes recovery with checkpoints did not read, as its report says.
    pub journal_bytes_skipped: u64,
    /// Journal bytes written after the newest checkpoint record (the crash's distance from it).
    pub distance_bytes: u64,
    /// Records the recovery without checkpoints scanned: every durable record.
    pub records_total: u64,
    /// Records the recovery with checkpoints scanned.
    pub records_read: u64,
    /// Of those, records the dirty block table said were home already.
    pub records_home: u64,
    /// Records the recovery with checkpoints left for redo and undo to consider.
    pub records_replayed: u64,
    /// Image blocks each recovery changed and flushed.
    pub blocks_written_with: u64,
    /// See `blocks_written_with`.
    pub blocks_written_without: u64,
    /// `journal_bytes_skipped / journal_bytes`.
    pub bytes_not_read: f64,
    /// Records not replayed (not read, or read and home) over all records.
    pub records_not_replayed: f64,
    /// Milliseconds finding and reading the record (the report's).
    pub find_ms: f64,
}

/// The scope saved by `with` compared with `without` (the same crash state).
pub fn scope(p: &Prepared, with: &RecoveryReport, without: &RecoveryReport) -> Scope {
    let ck = with.checkpoint.as_ref();
    let frac = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let total = without.records_scanned;
    let home = ck.map_or(0, |c| c.records_home);
    let before = ck.map_or(0, |c| c.records_before_start);
    let read = with.records_scanned;
    let replayed = read.saturating_sub(home + before);
    let skipped = ck.map_or(0, |c| c.journal_bytes_skipped);
    Scope {
        journal_bytes: without.journal_bytes,
        journal_bytes_skipped: skipped,
        distance_bytes: p.distance_bytes(),
        records_total: total,
        records_read: read,
        records_home: home,
        records_replayed: replayed,
        blocks_written_with: with.replay.blocks_written,
        blocks_written_without: without.replay.blocks_written,
        bytes_not_read: frac(skipped, without.journal_bytes),
        records_not_replayed: frac(total.saturating_sub(replayed), total),
        find_ms: ck.map_or(0.0, |c| c.find_ms),
    }
}

/// Median microseconds [`recovery::checkpoint::select`] takes to find the newest of `n`
/// records in a directory (one per `n` of `counts`), over `reps` calls each: the cost of
/// finding the start point as retention grows. Records are real ones of a 64 MiB image with
/// a 4,096-entry dirty block table.
pub fn find_cost(counts: &[usize], reps: usize) -> Result<Vec<(usize, f64)>, String> {
    use recovery::checkpoint::{CheckpointKind, CheckpointRecord, DirtyBlock};
    let layout = recovery::image::Layout::new(recovery::image::Geometry {
        block_size: 4096,
        block_count: 16_384,
        inode_count: 16_384,
        image_id: 1,
    })
    .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for &n in counts {
        let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
        let cdir = tmp.path().join(recovery::dir::CHECKPOINT_DIR);
        std::fs::create_dir_all(&cdir).map_err(|e| e.to_string())?;
        for i in 0..n as u64 {
            let lsn = 10_000 * (i + 1);
            let dirty = (0..4096u64).map(|b| DirtyBlock { block: 64 + b, rec_lsn: lsn - 4096 + b }).collect();
            let r = CheckpointRecord::new(&layout, CheckpointKind::Incremental, lsn, Vec::new(), dirty);
            if i + 1 == n as u64 {
                // The newest through the writer's own path, which leaves the pointer to it.
                recovery::checkpoint::write(tmp.path(), r).map_err(|e| e.to_string())?;
            } else {
                // The older ones written directly, without the fsyncs: only finding the
                // newest is measured.
                let r = CheckpointRecord { seq: i + 1, ..r };
                let path = cdir.join(recovery::checkpoint::file_name(r.seq));
                std::fs::write(&path, r.encode()).map_err(|e| format!("{}: {e}", path.display()))?;
            }
        }
        let mut us = Vec::with_capacity(reps);
        for _ in 0..reps {
            let t = Instant::now();
            let (sel, _) = recovery::checkpoint::select(tmp.path(), &layout, 1).map_err(|e| e.to_string())?;
            us.push(t.elapsed().as_secs_f64() * 1e6);
            if sel.is_none_or(|s| s.index != 0) {
                return Err(format!("{n} records: the newest was not chosen"));
            }
        }
        out.push((n, crate::median(&mut us)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cadences_parse() {
        assert_eq!(parse_cadences("none,3000, 375"), Ok(vec![None, Some(3000), Some(375)]));
        assert!(parse_cadences("0").is_err());
        assert!(parse_cadences("often").is_err());
        assert!(parse_cadences("").is_err());
        assert_eq!(label(Some(3000)), "every-3000");
        assert_eq!(label(None), "none");
        assert_eq!(state_label(Some(3000), Phase::Before), "every-3000-before");
        assert_eq!(parse_phases("after,before"), Ok(vec![Phase::After, Phase::Before]));
        assert!(parse_phases("during").is_err());
    }

    #[test]
    fn default_cadence_is_a_transaction_count() {
        assert!(default_cadence_txns().is_some_and(|n| n > 0));
    }

    #[test]
    fn small_preset_round_trip() {
        let p = prepare("small", 3, Some(50), Phase::After, None, None).expect("generate");
        assert!(p.summary.checkpoints > 0);
        assert!(p.summary.writer.checkpoint_secs.is_some(), "the writer's checkpoints are timed");
        for cache in [Cache::Warm, Cache::Cold] {
            let m = measure(&p, 1, cache).expect("measure");
            let s = scope(&p, &m.with, &m.without);
            assert!(m.with.checkpoint.is_some());
            assert!(s.records_read < s.records_total, "{s:?}");
            assert!(s.records_not_replayed > 0.0 && s.records_not_replayed <= 1.0, "{s:?}");
            assert!(s.distance_bytes > 0 && s.distance_bytes < s.journal_bytes, "{s:?}");
        }
        assert!(p.checkpoints_unchanged(), "{:?} against {:?}", listing(&p.dir), p.checkpoints_at_start);
        let f = find_cost(&[1, 4], 3).expect("find");
        assert_eq!(f.len(), 2);
        assert!(f.iter().all(|&(_, us)| us > 0.0));
    }
}
