//! The checkpoint-cadence sweep behind `checkpoint/scope` and `scripts/checkpoint-sweep.sh`:
//! how much of the journal recovery no longer reads or replays when the simulated system
//! checkpoints every N transactions, what that saves in recovery time, and what the
//! checkpoints cost on disk and to write.
//!
//! For each cadence one crash state is generated (checkpoints are part of generation), then
//! the same crash image is recovered with and without checkpoints, taking turns, and the
//! medians are compared within the run.
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

use recovery::checkpoint::{CheckpointKind, Compression};
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
/// at its defaults), or none; `txns` overrides the preset's transaction count.
pub fn params(preset: &str, seed: u64, every: Option<u64>, txns: Option<u64>) -> Result<workloads::GenParams, String> {
    let p: workloads::Preset = preset.parse().map_err(|e| format!("{e}"))?;
    let mut params = p.params(seed);
    params.checkpoints = every.map(|n| CheckpointPlan { every: Cadence::Txns(n), ..CheckpointPlan::default() });
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
    /// What generation reported.
    pub summary: workloads::GenSummary,
    /// Seconds generation took (the whole simulated run, checkpoint writing included).
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
    Ok(Prepared {
        _tmp: tmp,
        dir,
        crash_image,
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

impl Prepared {
    /// Puts the crash image back, durable, and forgets any earlier recovery. The checkpoint
    /// directory stays as generated: recovery only reads it.
    pub fn restore(&self) -> Result<(), String> {
        let path = self.dir.join(recovery::dir::IMAGE_FILE);
        std::fs::write(&path, &self.crash_image).map_err(|e| format!("{}: {e}", path.display()))?;
        std::fs::File::open(&path).and_then(|f| f.sync_all()).map_err(|e| format!("{}: {e}", path.display()))?;
        let marker = self.dir.join(recovery::dir::MARKER_FILE);
        match std::fs::remove_file(&marker) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(format!("{}: {e}", marker.display())),
            _ => Ok(()),
        }
    }

    /// One recovery from the crash state (restored first, untimed); checks the image against
    /// the oracle when `verify` (untimed).
    pub fn run(&self, with_checkpoints: bool, verify: bool) -> Result<(f64, RecoveryReport), String> {
        self.restore()?;
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
        Ok((secs, report))
    }

    /// Whether the checkpoint directory still holds exactly the files (names and lengths)
    /// generation left.
    pub fn checkpoints_unchanged(&self) -> bool {
        listing(&self.dir) == self.checkpoints_at_start
    }

    /// The generated checkpoint files, read through their manifests.
    pub fn on_disk(&self) -> Result<OnDisk, String> {
        on_disk(&self.dir)
    }

    /// What a recovery starting at `min_lsn` leaves unread: see [`segments_before`].
    pub fn segments_before(&self, min_lsn: u64) -> Result<Unread, String> {
        segments_before(&self.dir, min_lsn)
    }
}

/// Journal segments recovery does not read when it needs the journal from some LSN on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Unread {
    /// Segments.
    pub segments: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Records starting in them (LSNs are dense, so the first kept segment's first LSN less
    /// the journal's first).
    pub records: u64,
}

/// The segments of `dir`'s journal wholly before `min_lsn`, by the rule recovery applies:
/// every segment before the last one whose first LSN is at or below `min_lsn`. Read from the
/// segment headers, independently of the recovery report, so the two can be checked against
/// each other.
pub fn segments_before(dir: &Path, min_lsn: u64) -> Result<Unread, String> {
    use recovery::format::segment::{parse_segment_file_name, SegmentHeader, SEGMENT_HEADER_LEN};
    use std::os::unix::fs::FileExt;
    let jdir = dir.join(recovery::dir::JOURNAL_DIR);
    let mut segs: Vec<(u64, u64, u64)> = Vec::new();
    for e in std::fs::read_dir(&jdir).map_err(|e| format!("{}: {e}", jdir.display()))? {
        let e = e.map_err(|e| format!("{}: {e}", jdir.display()))?;
        let Some(seq) = e.file_name().to_str().and_then(parse_segment_file_name) else { continue };
        let path = e.path();
        let f = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut head = vec![0u8; SEGMENT_HEADER_LEN];
        f.read_exact_at(&mut head, 0).map_err(|e| format!("{}: {e}", path.display()))?;
        let h = SegmentHeader::decode(&head).map_err(|(o, k)| format!("{}: header at {o}: {k:?}", path.display()))?;
        let len = f.metadata().map_err(|e| format!("{}: {e}", path.display()))?.len();
        segs.push((seq, h.first_lsn, len));
    }
    segs.sort();
    let keep_from = segs.iter().rposition(|s| s.1 <= min_lsn).unwrap_or(0);
    Ok(Unread {
        segments: keep_from as u64,
        bytes: segs[..keep_from].iter().map(|s| s.2).sum(),
        records: segs.get(keep_from).map_or(0, |k| k.1) - segs.first().map_or(0, |f| f.1),
    })
}

/// Checkpoints of one kind on disk.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct KindTotals {
    /// Files.
    pub count: u64,
    /// File bytes.
    pub file_bytes: u64,
    /// Raw bytes of the blocks held.
    pub raw_bytes: u64,
    /// Stored (compressed) chunk bytes.
    pub data_bytes: u64,
    /// Blocks held.
    pub blocks: u64,
}

impl KindTotals {
    fn add(&mut self, file_bytes: u64, m: &recovery::checkpoint::Manifest) {
        self.count += 1;
        self.file_bytes += file_bytes;
        self.raw_bytes += m.raw_bytes();
        self.data_bytes += m.data_bytes;
        self.blocks += m.blocks;
    }
}

/// What a crash directory's checkpoints take on disk.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct OnDisk {
    /// Every kept checkpoint.
    pub total: KindTotals,
    /// By kind name.
    pub by_kind: BTreeMap<String, KindTotals>,
    /// Files whose manifest did not read, with the reason.
    pub unreadable: Vec<String>,
    /// Other files in the checkpoint directory (a torn temporary), with their lengths.
    pub other_files: Vec<(String, u64)>,
}

/// Reads every checkpoint manifest of `dir`.
pub fn on_disk(dir: &Path) -> Result<OnDisk, String> {
    let mut out = OnDisk::default();
    let files = recovery::checkpoint::list(dir).map_err(|e| e.to_string())?;
    let listed: Vec<String> =
        files.iter().filter_map(|(_, p)| p.file_name().map(|n| n.to_string_lossy().into_owned())).collect();
    for (_, path) in &files {
        let len = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?.len();
        match recovery::checkpoint::read_manifest(path) {
            Ok(m) => {
                out.total.add(len, &m);
                out.by_kind.entry(m.kind.name().to_string()).or_default().add(len, &m);
            }
            Err(r) => out.unreadable.push(format!("{}: {}", path.display(), r.reason)),
        }
    }
    out.other_files = listing(dir).into_iter().filter(|(n, _)| !listed.contains(n)).collect();
    Ok(out)
}

/// What [`measure`] found for one cadence: the two recoveries taking turns.
pub struct Measured {
    /// Seconds per recovery with checkpoints, in run order.
    pub with_secs: Vec<f64>,
    /// Seconds per recovery without checkpoints, in run order.
    pub without_secs: Vec<f64>,
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
        // A phase can run more than once in a recovery (windows); its time is the sum.
        let mut once: BTreeMap<&str, f64> = BTreeMap::new();
        for ph in &r.phases {
            *once.entry(ph.phase).or_default() += ph.ms;
        }
        for (k, v) in once {
            phases.entry(k.to_string()).or_default().push(v);
        }
    }
    phases.iter_mut().map(|(k, v)| (k.clone(), crate::median(v))).collect()
}

/// One verified, untimed recovery each way (which also warms the page cache), then `reps`
/// timed recoveries each way, taking turns and swapping which goes first every repetition so
/// drift on a shared machine lands on both alike.
pub fn measure(p: &Prepared, reps: usize) -> Result<Measured, String> {
    let mut verify_secs = 0.0;
    let mut checked = Vec::new();
    for with in [true, false] {
        let (secs, report) = p.run(with, false)?;
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
    let (mut with_secs, mut without_secs) = (Vec::new(), Vec::new());
    let (mut with_runs, mut without_runs) = (Vec::new(), Vec::new());
    for rep in 0..reps {
        let order = if rep % 2 == 0 { [true, false] } else { [false, true] };
        for w in order {
            let (secs, report) = p.run(w, false)?;
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
        with_secs,
        without_secs,
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
    /// Of those, bytes recovery with checkpoints did not read (segments wholly before the
    /// checkpoint's `min_lsn`), as its report says.
    pub journal_bytes_skipped: u64,
    /// The segments those bytes are, from their headers.
    pub unread: Unread,
    /// Whether `unread.bytes` equals the report's `journal_bytes_skipped`.
    pub unread_agrees_with_report: bool,
    /// Records the recovery without checkpoints scanned: every durable record.
    pub records_total: u64,
    /// Records in the segments recovery with checkpoints read.
    pub records_read: u64,
    /// Of those, records neither redone nor undone because the checkpoint holds their effect.
    pub records_skipped: u64,
    /// Records left for redo and undo to consider.
    pub records_replayed: u64,
    /// The report's `records_scanned` with checkpoints, kept to check against `records_read`
    /// (they disagreed while the parallel scan left out the records a checkpoint covers).
    pub report_records_scanned: u64,
    /// `journal_bytes_skipped / journal_bytes`.
    pub bytes_not_read: f64,
    /// Records not replayed (in unread segments, or read and skipped) over all records.
    pub records_not_replayed: f64,
    /// Records after the newest checkpoint's LSN (to the last durable one) over all records:
    /// what a checkpoint at record granularity would leave; 1 without a checkpoint.
    pub records_after_checkpoint: f64,
}

/// The scope saved by `with` compared with `without` (the same crash state); `unread` is what
/// [`segments_before`] says of the checkpoint's `min_lsn` (zero without a checkpoint).
pub fn scope(with: &RecoveryReport, without: &RecoveryReport, unread: Unread) -> Scope {
    let ck = with.checkpoint.as_ref();
    let journal_bytes = without.journal_bytes;
    let skipped = ck.map_or(0, |c| c.journal_bytes_skipped);
    let total = without.records_scanned;
    let records_read = total.saturating_sub(unread.records);
    let records_skipped = ck.map_or(0, |c| c.records_skipped);
    let frac = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let last = without.lsn_range.1;
    Scope {
        journal_bytes,
        journal_bytes_skipped: skipped,
        unread,
        unread_agrees_with_report: unread.bytes == skipped,
        records_total: total,
        records_read,
        records_skipped,
        records_replayed: records_read.saturating_sub(records_skipped),
        report_records_scanned: with.records_scanned,
        bytes_not_read: frac(skipped, journal_bytes),
        records_not_replayed: frac(unread.records + records_skipped, total),
        records_after_checkpoint: ck.map_or(1.0, |c| frac(last.saturating_sub(c.lsn), total)),
    }
}

/// [`scope`] of a prepared crash state, reading its segment headers.
pub fn scope_of(p: &Prepared, with: &RecoveryReport, without: &RecoveryReport) -> Result<Scope, String> {
    let unread = match &with.checkpoint {
        Some(c) => p.segments_before(c.min_lsn)?,
        None => Unread::default(),
    };
    Ok(scope(with, without, unread))
}

/// One NDJSON line for a cadence.
pub fn record(p: &Prepared, m: &Measured, reps: usize) -> Result<serde_json::Value, String> {
    let s = scope_of(p, &m.with, &m.without)?;
    let (with_med, without_med) = (m.with_median(), m.without_median());
    let disk = p.on_disk()?;
    let ck = m.with.checkpoint.as_ref();
    let g = &p.summary;
    // Choosing a checkpoint reads every member of its chain whole, so their size is what that
    // phase's time should be read against.
    let mut chain_file_bytes = 0;
    if let Some(c) = ck {
        for (seq, path) in recovery::checkpoint::list(&p.dir).map_err(|e| e.to_string())? {
            if c.chain.contains(&seq) {
                chain_file_bytes += std::fs::metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?.len();
            }
        }
    }
    Ok(serde_json::json!({
        "schema": 1,
        "experiment": "checkpoint-scope",
        "preset": p.preset,
        "seed": p.seed,
        "cadence": label(p.every),
        "every_txns": p.every,
        "phase": p.phase,
        "state": state_label(p.every, p.phase),
        "txns": p.txns,
        "cache": "warm",
        "reps": reps,
        "generation": {
            "secs": p.gen_secs,
            "includes": "the whole simulated run: journal, oracle, and writing and pruning checkpoints",
            "settle_secs": p.settle_secs,
            "checkpoints_written": g.checkpoints,
            "last_checkpoint_lsn": g.last_checkpoint_lsn,
            "torn_checkpoint": g.torn_checkpoint,
            "journal_bytes": g.journal_bytes,
            "records": g.records,
            "segments": g.segments,
            "durable_lsn": g.durable_lsn,
            "last_surviving_lsn": g.last_surviving_lsn,
            "txns_committed": g.txns_committed,
            "txns_aborted": g.txns_aborted,
            "txns_in_flight": g.txns_in_flight,
        },
        "checkpoints_on_disk": disk,
        "checkpoints_unchanged_by_recovery": p.checkpoints_unchanged(),
        "checkpoint_used": ck.map(|c| serde_json::json!({
            "seq": c.seq,
            "kind": c.kind,
            "lsn": c.lsn,
            "min_lsn": c.min_lsn,
            "chain": c.chain,
            "chain_len": c.chain.len(),
            "chain_file_bytes": chain_file_bytes,
            "blocks_restored": c.blocks_restored,
            "blocks_skipped_revoked": c.blocks_skipped_revoked,
            "journal_bytes_skipped": c.journal_bytes_skipped,
            "records_skipped": c.records_skipped,
        })),
        "checkpoints_rejected": m.with.checkpoints_rejected.iter()
            .map(|r| format!("{}: {}", r.path.display(), r.reason)).collect::<Vec<_>>(),
        "scope": s,
        "segments_read": { "with": m.without.segments.saturating_sub(s.unread.segments), "without": m.without.segments },
        // The report counts every segment found, read or not.
        "report_segments": { "with": m.with.segments, "without": m.without.segments },
        "bytes_scanned": { "with": m.with.bytes_scanned, "without": m.without.bytes_scanned },
        "lsn_range": { "with": m.with.lsn_range, "without": m.without.lsn_range },
        "txn_outcomes": { "with": m.with.txns, "without": m.without.txns },
        "workers": m.with.parallel.workers,
        "scan_mode": { "with": m.with.parallel.scan, "without": m.without.parallel.scan },
        "replay_mode": { "with": m.with.parallel.replay, "without": m.without.parallel.replay },
        "verified": true,
        "with_secs_median": with_med,
        "without_secs_median": without_med,
        "with_secs": m.with_secs,
        "without_secs": m.without_secs,
        "time_ratio_with_over_without": with_med / without_med,
        "phase_ms_median": { "with": m.with_phase_ms, "without": m.without_phase_ms },
    }))
}

/// Median timing of writing one full checkpoint of an image with one compression.
pub struct Creation {
    /// Compression.
    pub compression: Compression,
    /// Blocks written.
    pub blocks: u64,
    /// Raw bytes of those blocks.
    pub raw_bytes: u64,
    /// File length.
    pub file_bytes: u64,
    /// Seconds per write, in run order.
    pub secs: Vec<f64>,
}

/// Times [`recovery::checkpoint::write`] of a full checkpoint of every block of the recovered
/// image in `dir`, `reps` times per compression (taking turns), each into a fresh directory
/// under `scratch`. The file is fsynced and renamed as always, so the time includes the disk.
pub fn creation(
    dir: &Path,
    scratch: &Path,
    compressions: &[Compression],
    reps: usize,
) -> Result<Vec<Creation>, String> {
    let image_path = dir.join(recovery::dir::IMAGE_FILE);
    let layout = recovery::image::Layout::read_from(&image_path).map_err(|e| e.to_string())?;
    let image = std::fs::read(&image_path).map_err(|e| format!("{}: {e}", image_path.display()))?;
    let mut out: Vec<Creation> = compressions
        .iter()
        .map(|&c| Creation { compression: c, blocks: 0, raw_bytes: 0, file_bytes: 0, secs: Vec::new() })
        .collect();
    // A write at LSN 1 with no open transactions: the LSN is metadata only and does not change
    // the work; every block, because which blocks are in revoked state is the journal's to say
    // and this measures the write itself.
    let spec = |compression| recovery::checkpoint::Spec {
        kind: CheckpointKind::Full,
        lsn: 1,
        min_lsn: 2,
        open_txns: Vec::new(),
        parent: None,
        compression,
        blocks: (0..layout.block_count()).collect(),
        dropped: Vec::new(),
        excluded: Vec::new(),
    };
    for _ in 0..reps {
        for c in &mut out {
            let tmp = tempfile::tempdir_in(scratch).map_err(|e| e.to_string())?;
            let s = spec(c.compression);
            let t = Instant::now();
            let w = recovery::checkpoint::write(tmp.path(), &layout, &image, &s).map_err(|e| e.to_string())?;
            c.secs.push(t.elapsed().as_secs_f64());
            c.blocks = w.manifest.blocks;
            c.raw_bytes = w.manifest.raw_bytes();
            c.file_bytes = w.file_bytes;
        }
    }
    Ok(out)
}

/// One NDJSON line for a compression's creation cost; `source` names the crash state the
/// image came from.
pub fn creation_record(c: &Creation, source: &str, memcpy_bytes_per_s: f64) -> serde_json::Value {
    let med = crate::median(&mut c.secs.clone());
    let raw_bps = c.raw_bytes as f64 / med;
    serde_json::json!({
        "schema": 1,
        "experiment": "checkpoint-create",
        "kind": CheckpointKind::Full,
        "compression": c.compression,
        "source": source,
        "blocks": c.blocks,
        "raw_bytes": c.raw_bytes,
        "file_bytes": c.file_bytes,
        "compression_ratio": c.raw_bytes as f64 / c.file_bytes.max(1) as f64,
        "reps": c.secs.len(),
        "secs_median": med,
        "secs": c.secs,
        "raw_bytes_per_s": raw_bps,
        "ratio_vs_memcpy": raw_bps / memcpy_bytes_per_s,
        "includes": "compression (parallel chunks), write, fsync, rename, directory fsync",
    })
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
        let m = measure(&p, 1).expect("measure");
        let s = scope_of(&p, &m.with, &m.without).expect("scope");
        assert!(s.unread_agrees_with_report);
        assert!(m.with.checkpoint.is_some());
        assert!(s.records_not_replayed > 0.0 && s.records_not_replayed <= 1.0);
        assert!(p.checkpoints_unchanged());
        let disk = p.on_disk().expect("manifests");
        assert!(disk.total.count > 0 && disk.unreadable.is_empty());
        let scratch = tempfile::tempdir().expect("scratch");
        let c = creation(&p.dir, scratch.path(), &[Compression::Lz4], 1).expect("creation");
        assert_eq!(c[0].secs.len(), 1);
        assert!(c[0].raw_bytes > 0);
    }
}
