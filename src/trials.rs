//! Reliability trials (docs/RELIABILITY.md): real crashes of a live writer (`kill -9` at a
//! random moment, then recovery, then optionally the writer resumed and killed again),
//! simulated power-loss crash images built from a traced writer (unsynced journal sectors and
//! image writes kept, lost, torn or reordered), and crashes during recovery (a random kill,
//! or an abort at a named phase, then a second recovery). Every trial is judged against an
//! oracle that is not the engine: the live writer's log of commit digests, or the generator's
//! expected image. One NDJSON line per trial; reproducible from the seed.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use recovery::dir::{CHECKPOINT_DIR, IMAGE_FILE, JOURNAL_DIR};
use recovery::format::segment::parse_segment_file_name;
use recovery::RecoverOptions;
use serde::Serialize;
use workloads::digest::{block_digests, image_digest};
use workloads::rng::Rng;
use workloads::{GenParams, Policy, Preset, TraceEvent};

/// Which trials to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TrialKind {
    /// Kill a live writer with SIGKILL, recover, check; half the time resume and crash again.
    Sigkill,
    /// Simulated power-loss crash images of a traced writer.
    Images,
    /// Kill recovery (SIGKILL at a random moment, or an abort at each phase), recover again.
    RecoveryKill,
    /// Every crash state of small traced writers: each crash point, and under it every way
    /// the unsynced journal sectors and image writes may have landed (up to a cap per point).
    Exhaustive,
}

/// Options of [`run`].
pub struct TrialOptions {
    pub kind: TrialKind,
    pub trials: u64,
    pub seed: u64,
    pub preset: Preset,
    pub txns: Option<u64>,
    pub work: PathBuf,
    pub out: Option<PathBuf>,
    pub keep_failures: bool,
}

/// One trial's line in the NDJSON output.
#[derive(Debug, Serialize)]
struct Line {
    kind: &'static str,
    trial: u64,
    seed: u64,
    preset: String,
    policy: &'static str,
    checkpoints: bool,
    workers: usize,
    #[serde(flatten)]
    outcome: Outcome,
    ms: f64,
}

/// What a trial's recovery gave, judged.
#[derive(Debug, Serialize)]
struct Outcome {
    /// ok: the recovered image is an allowed one; trivial: nothing to recover (killed before
    /// the writer began); violation: anything else.
    verdict: &'static str,
    detail: String,
    /// Allowed commit counts (every durable commit kept, at most every logged one) and the
    /// count the recovered image matched.
    k_min: u64,
    k_max: u64,
    k_got: Option<u64>,
    /// How the recovered journal ended: clean, torn (damage or zero fill, nothing valid
    /// after), unsynced (valid records after damage that no sync marker covers); none when
    /// recovery did not run or failed.
    tail: &'static str,
}

/// The tally [`run`] returns.
#[derive(Debug, Default)]
pub struct Tally {
    pub ok: u64,
    pub trivial: u64,
    pub violations: u64,
    /// Sigkill: trials with a resumed second crash; recovery-kill: kills that landed before
    /// recovery finished.
    pub extra: u64,
}

struct Ctx<'a> {
    o: &'a TrialOptions,
    exe: PathBuf,
    out: Option<std::fs::File>,
    tally: Tally,
}

impl Ctx<'_> {
    fn emit(&mut self, line: Line) -> Result<()> {
        match line.outcome.verdict {
            "ok" => self.tally.ok += 1,
            "trivial" => self.tally.trivial += 1,
            _ => {
                self.tally.violations += 1;
                eprintln!("fastrec trials: VIOLATION {}", serde_json::to_string(&line)?);
            }
        }
        if let Some(f) = self.out.as_mut() {
            writeln!(f, "{}", serde_json::to_string(&line)?)?;
        }
        Ok(())
    }
}

/// Runs the trials and returns the tally; violations are printed and written, not errors.
pub fn run(o: &TrialOptions) -> Result<Tally> {
    std::fs::create_dir_all(&o.work).with_context(|| format!("creating {}", o.work.display()))?;
    let out = match &o.out {
        Some(p) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("opening {}", p.display()))?,
        ),
        None => None,
    };
    let exe = std::env::current_exe().context("finding the fastrec executable")?;
    let mut cx = Ctx { o, exe, out, tally: Tally::default() };
    match o.kind {
        TrialKind::Sigkill => sigkill(&mut cx)?,
        TrialKind::Images => images(&mut cx)?,
        TrialKind::RecoveryKill => recovery_kill(&mut cx)?,
        TrialKind::Exhaustive => exhaustive(&mut cx)?,
    }
    Ok(cx.tally)
}

fn params(o: &TrialOptions, seed: u64, rng: &mut Rng) -> (GenParams, bool) {
    let mut p = o.preset.params(seed);
    if let Some(t) = o.txns {
        p.txns = t;
    }
    p.policy = if rng.chance(0.5) { Policy::Steal } else { Policy::NoSteal };
    p.unlogged_write_rate = 0.0;
    // Group commit: several commits per journal sync, so a crash can lose acknowledged-looking
    // but unsynced commits, and reorder a longer unsynced tail.
    p.sync_every = 1 + rng.below(8) as u32;
    let checkpoints = rng.chance(0.5);
    p.checkpoints = checkpoints.then(|| workloads::CheckpointPlan {
        every: workloads::Cadence::Txns(1 + rng.below(40)),
        ..workloads::CheckpointPlan::default()
    });
    (p, checkpoints)
}

fn policy_name(p: &GenParams) -> &'static str {
    match p.policy {
        Policy::Steal => "steal",
        Policy::NoSteal => "no-steal",
    }
}

fn fresh_dir(path: &Path) -> Result<()> {
    if path.exists() {
        std::fs::remove_dir_all(path).with_context(|| format!("removing {}", path.display()))?;
    }
    std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))
}

fn digest_of_image(dir: &Path, block_size: usize) -> Result<String> {
    let path = dir.join(IMAGE_FILE);
    let img = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(image_digest(&block_digests(&img, block_size)))
}

fn segment_count(dir: &Path) -> usize {
    std::fs::read_dir(dir.join(JOURNAL_DIR))
        .map(|it| {
            it.filter_map(|e| e.ok())
                .filter(|e| parse_segment_file_name(&e.file_name().to_string_lossy()).is_some())
                .count()
        })
        .unwrap_or(0)
}

fn tail_kind(r: &recovery::RecoveryReport) -> &'static str {
    match &r.tail {
        None => "clean",
        Some(t) if t.unsynced_epoch => "unsynced",
        Some(_) => "torn",
    }
}

fn recover_opts(workers: usize) -> RecoverOptions {
    RecoverOptions { workers: Some(workers), ..RecoverOptions::default() }
}

// ---- the live writer's log ---------------------------------------------------------------

/// What a live writer's log says (whole lines only: a kill may tear the last one).
#[derive(Debug, Default)]
struct LogView {
    /// `digests[k]`: recovery's result with commits `1..=k` (`digests[0]`: the base).
    digests: Vec<String>,
    /// The image as the writer made it before its first journal record.
    raw_base: String,
    durable: u64,
}

fn read_log(path: &Path) -> Result<LogView> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(LogView::default()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let whole = match text.rfind('\n') {
        Some(i) => &text[..i],
        None => "",
    };
    let mut v = LogView::default();
    for line in whole.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        match f.as_slice() {
            ["base", d, raw] => {
                v.digests = vec![d.to_string()];
                v.raw_base = raw.to_string();
            }
            ["c", k, _txid, d] => {
                let k: u64 = k.parse().with_context(|| format!("{}: bad line `{line}`", path.display()))?;
                if k as usize != v.digests.len() {
                    bail!("{}: commit {k} out of order", path.display());
                }
                v.digests.push(d.to_string());
            }
            ["d", k] => v.durable = k.parse().with_context(|| format!("{}: bad line `{line}`", path.display()))?,
            _ => bail!("{}: unexpected line `{line}`", path.display()),
        }
    }
    Ok(v)
}

/// The commit count in `k_min..=k_max` whose digest `got` is, if any.
fn match_k(digests: &[String], k_min: u64, k_max: u64, got: &str) -> Option<u64> {
    (k_min..=k_max).rev().find(|&k| digests.get(k as usize).is_some_and(|d| d == got))
}

// ---- SIGKILL trials --------------------------------------------------------------------------

/// Runs `fastrec writer` with `args` and kills it with SIGKILL after `delay`; returns whether
/// it was still running (the kill landed).
fn spawn_and_kill(exe: &Path, args: &[String], delay: Duration) -> Result<bool> {
    let mut child = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting fastrec")?;
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            if !status.success() {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    use std::io::Read as _;
                    let _ = e.read_to_string(&mut err);
                }
                bail!("`fastrec {}` failed ({status}): {}", args.join(" "), err.trim());
            }
            return Ok(false);
        }
        if start.elapsed() >= delay {
            child.kill()?;
            child.wait()?;
            return Ok(true);
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Recovers `dir` after a kill of the writer that logged to `log`, and judges the result.
fn check_round(dir: &Path, log: &Path, workers: usize, block_size: usize) -> Result<Outcome> {
    let v = read_log(log)?;
    let mut r = Outcome { verdict: "ok", detail: String::new(), k_min: v.durable, k_max: 0, k_got: None, tail: "none" };
    if v.digests.is_empty() {
        r.verdict = "trivial";
        r.detail = "killed before the writer logged its base".into();
        return Ok(r);
    }
    r.k_max = v.digests.len() as u64 - 1;
    if segment_count(dir) == 0 {
        // Nothing logged yet, so nothing may have gone home either (write-ahead logging).
        if digest_of_image(dir, block_size)? != v.raw_base {
            r.verdict = "violation";
            r.detail = "no journal, yet the image is not the base".into();
        } else {
            r.verdict = "trivial";
            r.detail = "killed before the first journal segment".into();
        }
        return Ok(r);
    }
    match recovery::recover(dir, &recover_opts(workers)) {
        Ok(rep) => r.tail = tail_kind(&rep),
        Err(e) => {
            r.verdict = "violation";
            r.detail = format!("recovery failed: {e}");
            return Ok(r);
        }
    }
    let got = digest_of_image(dir, block_size)?;
    r.k_got = match_k(&v.digests, r.k_min, r.k_max, &got);
    if r.k_got.is_none() {
        r.verdict = "violation";
        r.detail = match match_k(&v.digests, 0, r.k_max, &got) {
            Some(k) => format!("recovered {k} commits, but {} were durable", r.k_min),
            None => "the recovered image is no prefix of the committed history".into(),
        };
    }
    Ok(r)
}

fn writer_args(dir: &Path, log: &Path, p: &GenParams, resume: bool) -> Vec<String> {
    let mut a = vec![
        "writer".to_string(),
        "--out".into(),
        dir.display().to_string(),
        "--log".into(),
        log.display().to_string(),
        "--preset".into(),
        p.preset.map_or("default", |x| x.name()).to_string(),
        "--seed".into(),
        p.seed.to_string(),
        "--txns".into(),
        p.txns.to_string(),
        "--policy".into(),
        policy_name(p).to_string(),
    ];
    if let Some(plan) = p.checkpoints {
        if let workloads::Cadence::Txns(n) = plan.every {
            a.extend(["--checkpoint-every".into(), n.to_string()]);
        }
    }
    if resume {
        a.push("--resume".into());
    }
    a
}

fn sigkill(cx: &mut Ctx<'_>) -> Result<()> {
    let o = cx.o;
    // How long an uninterrupted writer runs: kills land uniformly over that time (and a
    // little after, so some trials see a finished writer).
    let mut rng = Rng::new(o.seed);
    let (p, _) = params(o, o.seed, &mut rng);
    let dir = o.work.join("calibrate");
    fresh_dir(&dir)?;
    let log = o.work.join("calibrate.log");
    let _ = std::fs::remove_file(&log);
    let t = Instant::now();
    spawn_and_kill(&cx.exe, &writer_args(&dir, &log, &p, false), Duration::from_secs(3600))?;
    let full = t.elapsed();
    std::fs::remove_dir_all(&dir).ok();
    eprintln!(
        "fastrec trials: an uninterrupted writer runs {:.0} ms; kills land in [0, {:.0}] ms",
        ms(full),
        ms(full) * 1.1
    );
    for i in 0..o.trials {
        let seed = o.seed.wrapping_add(i + 1);
        let mut rng = Rng::new(seed);
        let (p, checkpoints) = params(o, seed, &mut rng);
        let workers = 1 + rng.below(2) as usize;
        let dir = o.work.join(format!("kill-{i}"));
        fresh_dir(&dir)?;
        let log = o.work.join(format!("kill-{i}.log"));
        let _ = std::fs::remove_file(&log);
        let t = Instant::now();
        let delay = Duration::from_secs_f64(full.as_secs_f64() * 1.1 * rng.unit());
        let landed = spawn_and_kill(&cx.exe, &writer_args(&dir, &log, &p, false), delay)?;
        let mut r = check_round(&dir, &log, workers, p.block_size as usize)?;
        r.detail =
            format!("kill at {:.1} ms{}; {}", ms(delay), if landed { "" } else { " (writer had finished)" }, r.detail);
        // Resume on the recovered directory and crash again: the second recovery must not
        // reach back into the first journal (its losers are settled).
        if r.verdict == "ok" && rng.chance(0.5) {
            cx.tally.extra += 1;
            let p2 = GenParams { seed: seed.wrapping_add(1 << 32), ..p.clone() };
            let log2 = o.work.join(format!("kill-{i}.resumed.log"));
            let _ = std::fs::remove_file(&log2);
            let delay2 = Duration::from_secs_f64(full.as_secs_f64() * 1.1 * rng.unit());
            let landed2 = spawn_and_kill(&cx.exe, &writer_args(&dir, &log2, &p2, true), delay2)?;
            let r2 = check_round(&dir, &log2, workers, p.block_size as usize)?;
            r.detail = format!(
                "{}; resumed, killed at {:.1} ms{}: {} {}",
                r.detail,
                ms(delay2),
                if landed2 { "" } else { " (writer had finished)" },
                r2.verdict,
                r2.detail
            );
            if r2.verdict == "violation" {
                r.verdict = "violation";
            }
        }
        let keep = r.verdict == "violation" && o.keep_failures;
        cx.emit(Line {
            kind: "sigkill",
            trial: i,
            seed,
            preset: o.preset.name().into(),
            policy: policy_name(&p),
            checkpoints,
            workers,
            outcome: r,
            ms: ms(t.elapsed()),
        })?;
        if !keep {
            std::fs::remove_dir_all(&dir).ok();
            std::fs::remove_file(&log).ok();
            std::fs::remove_file(o.work.join(format!("kill-{i}.resumed.log"))).ok();
        }
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

// ---- simulated crash images --------------------------------------------------------------

const SECTOR: usize = 512;

/// One journal segment of the finished traced run, in journal-position space.
struct Segment {
    name: String,
    base: u64,
    bytes: Vec<u8>,
}

/// How a crash state treats what was written but not synced.
#[derive(Clone, Copy, Debug)]
enum Fate {
    /// Journal sectors persisted in order up to a random sector, image writes each kept,
    /// lost or torn at sector granularity.
    Prefix,
    /// Journal sectors each persisted or not (reordered within the unsynced epoch).
    Reorder,
    /// A device that acknowledged syncs it never made: as [`Fate::Prefix`], but synced
    /// journal bytes may be lost too. Recovery cannot keep what the device lost, so the check
    /// must report it (the harness's own test).
    #[cfg_attr(not(test), allow(dead_code))]
    LyingFsync,
}

fn load_segments(dir: &Path) -> Result<Vec<Segment>> {
    let jdir = dir.join(JOURNAL_DIR);
    let mut found = Vec::new();
    for e in std::fs::read_dir(&jdir).with_context(|| format!("listing {}", jdir.display()))? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(seq) = parse_segment_file_name(&name) {
            found.push((seq, name, std::fs::read(e.path())?));
        }
    }
    found.sort_by_key(|f| f.0);
    let mut base = 0;
    Ok(found
        .into_iter()
        .map(|(_, name, bytes)| {
            let s = Segment { name, base, bytes };
            base += s.bytes.len() as u64;
            s
        })
        .collect())
}

/// Writes into `dst` the files a power cut right before event `at` of `trace` may have left,
/// deciding each unsynced sector and image write with `pick` (called with the number of
/// choices, returns one of them). Returns the allowed commit range.
#[allow(clippy::too_many_arguments)]
fn build_state(
    trace: &workloads::Trace,
    segments: &[Segment],
    at: usize,
    fate: Fate,
    pick: &mut dyn FnMut(u64) -> u64,
    dst: &Path,
) -> Result<(u64, u64, String)> {
    let events = &trace.events[..at];
    let total: u64 = segments.iter().map(|s| s.bytes.len() as u64).sum();
    let written = trace.events.get(at).map_or(total, |e| e.pos);
    let (mut durable, mut k_min, mut k_max) = (0u64, 0u64, 0u64);
    let mut last_sync = None;
    let mut ckpts = Vec::new();
    for (i, e) in events.iter().enumerate() {
        match &e.event {
            TraceEvent::Durable { k } => {
                durable = e.pos;
                k_min = *k;
            }
            TraceEvent::Commit { k, .. } => k_max = *k,
            TraceEvent::ImageSync => last_sync = Some(i),
            TraceEvent::Checkpoint { seq, bytes } => ckpts.push((*seq, bytes)),
            TraceEvent::ImageWrite { .. } => {}
        }
    }
    fresh_dir(dst)?;
    let bs = trace.block_size;
    // The image: durable up to the last image sync, then each later write kept, lost, or torn.
    let mut img = trace.base_image.clone();
    let (mut kept, mut lost, mut torn) = (0, 0, 0);
    for (i, e) in events.iter().enumerate() {
        let TraceEvent::ImageWrite { block, bytes } = &e.event else { continue };
        let at_block = *block as usize * bs;
        let synced = last_sync.is_some_and(|s| i < s);
        let choice = if synced { 0 } else { pick(3) };
        match choice {
            0 => {
                img[at_block..at_block + bs].copy_from_slice(bytes);
                kept += 1;
            }
            1 => lost += 1,
            _ => {
                for s in (0..bs).step_by(SECTOR) {
                    if pick(2) == 1 {
                        let end = (s + SECTOR).min(bs);
                        img[at_block + s..at_block + end].copy_from_slice(&bytes[s..end]);
                    }
                }
                torn += 1;
            }
        }
    }
    std::fs::write(dst.join(IMAGE_FILE), &img)?;
    // The journal: durable bytes as written; unsynced sectors new or still zero.
    let jdir = dst.join(JOURNAL_DIR);
    std::fs::create_dir_all(&jdir)?;
    let (mut new_sectors, mut old_sectors) = (0, 0);
    for s in segments {
        let len = s.bytes.len() as u64;
        let w = written.saturating_sub(s.base).min(len) as usize;
        if w == 0 {
            continue;
        }
        // The writer fsyncs a segment's header block when it creates the segment, and the
        // whole segment before it starts the next one.
        let closed = written > s.base + len;
        let header = (trace.journal_block_size as usize).min(w);
        let d = match fate {
            Fate::LyingFsync => header,
            _ if closed => len as usize,
            _ => (durable.saturating_sub(s.base).min(len) as usize).max(header),
        };
        let mut bytes = s.bytes[..w].to_vec();
        let first = d / SECTOR;
        let sectors = w.div_ceil(SECTOR);
        let cut = match fate {
            Fate::Prefix | Fate::LyingFsync => first + pick((sectors - first + 1) as u64) as usize,
            Fate::Reorder => sectors,
        };
        for k in first..sectors {
            let keep_new = match fate {
                Fate::Prefix | Fate::LyingFsync => k < cut,
                Fate::Reorder => pick(2) == 1,
            };
            if keep_new {
                new_sectors += 1;
                continue;
            }
            old_sectors += 1;
            let lo = (k * SECTOR).max(d);
            let hi = ((k + 1) * SECTOR).min(w);
            if lo < hi {
                bytes[lo..hi].fill(0);
            }
        }
        std::fs::write(jdir.join(&s.name), &bytes)?;
    }
    // Checkpoint records are durable once written (file and directory synced). Retention
    // deletes the oldest as the writer goes on; a crash may keep a deleted one (the unlink not
    // yet durable), which changes nothing: recovery reads the newest valid record.
    if !ckpts.is_empty() {
        let cdir = dst.join(CHECKPOINT_DIR);
        std::fs::create_dir_all(&cdir)?;
        for (seq, bytes) in &ckpts {
            std::fs::write(cdir.join(recovery::checkpoint::file_name(*seq)), bytes)?;
        }
    }
    let desc = format!(
        "crash before event {at} of {} ({fate:?}): journal durable {durable} written {written}, unsynced sectors {new_sectors} kept {old_sectors} lost; unsynced image writes {kept} kept {lost} lost {torn} torn",
        trace.events.len()
    );
    Ok((k_min, k_max, desc))
}

fn images(cx: &mut Ctx<'_>) -> Result<()> {
    let o = cx.o;
    // A new traced writer every 100 states: many histories, each cut at many points.
    const STATES_PER_RUN: u64 = 100;
    let mut i = 0;
    let mut run = 0;
    while i < o.trials {
        let seed = o.seed.wrapping_add(run);
        run += 1;
        let mut rng = Rng::new(seed);
        let (p, checkpoints) = params(o, seed, &mut rng);
        let src = o.work.join(format!("traced-{seed}"));
        fresh_dir(&src)?;
        let (_, trace) = workloads::run_traced(&src, &p).with_context(|| format!("traced writer, seed {seed}"))?;
        let segments = load_segments(&src)?;
        let digests = commit_digests(&trace);
        for _ in 0..STATES_PER_RUN.min(o.trials - i) {
            let t = Instant::now();
            let at = rng.below(trace.events.len() as u64 + 1) as usize;
            let fate = if rng.chance(0.5) { Fate::Prefix } else { Fate::Reorder };
            let workers = 1 + rng.below(2) as usize;
            let dst = o.work.join(format!("image-{i}"));
            let mut pick = |n: u64| rng.below(n);
            let (k_min, k_max, desc) = build_state(&trace, &segments, at, fate, &mut pick, &dst)?;
            let (verdict, detail, k_got, tail) =
                judge_state(&dst, &digests, k_min, k_max, workers, trace.block_size, desc)?;
            let keep = verdict == "violation" && o.keep_failures;
            cx.emit(Line {
                kind: "images",
                trial: i,
                seed,
                preset: o.preset.name().into(),
                policy: policy_name(&p),
                checkpoints,
                workers,
                outcome: Outcome { verdict, detail, k_min, k_max, k_got, tail },
                ms: ms(t.elapsed()),
            })?;
            if !keep {
                std::fs::remove_dir_all(&dst).ok();
            }
            i += 1;
        }
        std::fs::remove_dir_all(&src).ok();
    }
    Ok(())
}

/// Crash states enumerated per crash point at most; past it the point counts as capped.
const EXHAUSTIVE_CAP: u64 = 256;

/// Recovers the crash state in `dst` and judges it against the traced history.
fn judge_state(
    dst: &Path,
    digests: &[String],
    k_min: u64,
    k_max: u64,
    workers: usize,
    block_size: usize,
    desc: String,
) -> Result<(&'static str, String, Option<u64>, &'static str)> {
    Ok(match recovery::recover(dst, &recover_opts(workers)) {
        Err(e) => ("violation", format!("{desc}; recovery failed: {e}"), None, "none"),
        Ok(rep) => {
            let tail = tail_kind(&rep);
            let got = digest_of_image(dst, block_size)?;
            match match_k(digests, k_min, k_max, &got) {
                Some(k) => ("ok", desc, Some(k), tail),
                None => match match_k(digests, 0, k_max, &got) {
                    Some(k) => {
                        ("violation", format!("{desc}; recovered {k} commits, {k_min} were durable"), None, tail)
                    }
                    None => ("violation", format!("{desc}; the image is no prefix of the history"), None, tail),
                },
            }
        }
    })
}

fn commit_digests(trace: &workloads::Trace) -> Vec<String> {
    let mut digests = vec![trace.base_digest.clone()];
    for e in &trace.events {
        if let TraceEvent::Commit { digest, .. } = &e.event {
            digests.push(digest.clone());
        }
    }
    digests
}

/// Small traced writers (a few transactions), every crash point, and under each one every
/// decision tree path of [`build_state`] (journal sectors kept or lost, image writes kept,
/// lost or torn sector by sector) up to [`EXHAUSTIVE_CAP`] states, in depth-first order.
/// `trials` counts writers.
fn exhaustive(cx: &mut Ctx<'_>) -> Result<()> {
    let o = cx.o;
    let mut n = 0u64;
    for w in 0..o.trials {
        let seed = o.seed.wrapping_add(w);
        let mut rng = Rng::new(seed);
        let (mut p, checkpoints) = params(o, seed, &mut rng);
        p.txns = o.txns.unwrap_or(4);
        p.interleave = p.interleave.min(2);
        p.inflight = 0;
        p.ops_per_txn = (1, 3);
        let src = o.work.join(format!("traced-x-{seed}"));
        fresh_dir(&src)?;
        let (_, trace) = workloads::run_traced(&src, &p).with_context(|| format!("traced writer, seed {seed}"))?;
        let segments = load_segments(&src)?;
        let digests = commit_digests(&trace);
        let (mut states, mut capped, mut bad) = (0u64, 0u64, 0u64);
        let t = Instant::now();
        for at in 0..=trace.events.len() {
            for fate in [Fate::Prefix, Fate::Reorder] {
                // Depth-first over the decision tree: `digits` fixes the first choices, the
                // rest default to 0; `radix` records how many options each choice had.
                let mut digits: Vec<u64> = Vec::new();
                let mut count = 0u64;
                loop {
                    let mut radix: Vec<u64> = Vec::new();
                    let dst = o.work.join("exhaustive-state");
                    let (k_min, k_max, desc) = {
                        let mut pick = |r: u64| {
                            let i = radix.len();
                            radix.push(r);
                            digits.get(i).copied().unwrap_or(0)
                        };
                        build_state(&trace, &segments, at, fate, &mut pick, &dst)?
                    };
                    let workers = 1 + (count % 2) as usize;
                    let (verdict, detail, _, _) = judge_state(
                        &dst,
                        &digests,
                        k_min,
                        k_max,
                        workers,
                        trace.block_size,
                        format!("{desc}; path {digits:?}"),
                    )?;
                    count += 1;
                    states += 1;
                    if verdict != "ok" {
                        bad += 1;
                        cx.tally.violations += 1;
                        eprintln!("fastrec trials: VIOLATION seed {seed}: {detail}");
                        if let Some(f) = cx.out.as_mut() {
                            writeln!(
                                f,
                                "{}",
                                serde_json::json!({"kind": "exhaustive", "seed": seed, "verdict": verdict, "detail": detail})
                            )?;
                        }
                    }
                    // Next path: the deepest choice that has an option left.
                    digits.resize(radix.len(), 0);
                    while let Some(&r) = radix.get(digits.len().wrapping_sub(1)) {
                        let last = digits.len() - 1;
                        if digits[last] + 1 < r {
                            digits[last] += 1;
                            break;
                        }
                        digits.pop();
                        radix.pop();
                    }
                    if digits.is_empty() {
                        break;
                    }
                    if count >= EXHAUSTIVE_CAP {
                        capped += 1;
                        break;
                    }
                }
            }
        }
        n += states;
        cx.tally.ok += states - bad;
        cx.tally.extra += capped;
        if let Some(f) = cx.out.as_mut() {
            writeln!(
                f,
                "{}",
                serde_json::json!({"kind": "exhaustive", "seed": seed, "policy": policy_name(&p), "checkpoints": checkpoints, "txns": p.txns, "events": trace.events.len(), "states": states, "violations": bad, "capped_points": capped, "ms": ms(t.elapsed())})
            )?;
        }
        std::fs::remove_dir_all(&src).ok();
    }
    std::fs::remove_dir_all(o.work.join("exhaustive-state")).ok();
    eprintln!("fastrec trials: {n} crash states enumerated");
    Ok(())
}

// ---- crashes during recovery ---------------------------------------------------------------

/// Phases recovery may crash after (`FASTREC_CRASH_AT`): those of a recovery from a
/// checkpoint record or from the journal's start, serial or parallel.
const PHASES: &[&str] = &[
    "locate",
    "choose checkpoint",
    "scan",
    "redo",
    "undo",
    "redo+undo",
    "orphans",
    "write-back",
    "mark",
    "final checkpoint",
];

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let target = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &target)?;
        } else {
            std::fs::copy(e.path(), &target)?;
        }
    }
    Ok(())
}

fn recovery_kill(cx: &mut Ctx<'_>) -> Result<()> {
    let o = cx.o;
    // A few crash states, each recovered many times: copies make every trial start alike.
    let mut sources: HashMap<u64, (PathBuf, GenParams, bool, Duration)> = HashMap::new();
    const SOURCES: u64 = 8;
    for i in 0..o.trials {
        let s = i % SOURCES;
        if let std::collections::hash_map::Entry::Vacant(slot) = sources.entry(s) {
            let seed = o.seed.wrapping_add(s);
            let mut rng = Rng::new(seed);
            let (mut p, checkpoints) = params(o, seed, &mut rng);
            p.unlogged_write_rate = o.preset.params(seed).unlogged_write_rate;
            p.deps_rate = if s.is_multiple_of(2) { 0.2 } else { p.deps_rate };
            let src = o.work.join(format!("rk-src-{s}"));
            fresh_dir(&src)?;
            workloads::generate(&src, &p).with_context(|| format!("generating seed {seed}"))?;
            // Time one uninterrupted recovery (as a child process) to place the kills.
            let probe = o.work.join("rk-probe");
            fresh_dir(&probe)?;
            copy_dir(&src, &probe)?;
            let t = Instant::now();
            spawn_and_kill(
                &cx.exe,
                &["recover".into(), probe.display().to_string(), "--quiet".into()],
                Duration::from_secs(3600),
            )?;
            slot.insert((src, p, checkpoints, t.elapsed()));
        }
        let (src, p, checkpoints, full) = &sources[&s];
        let seed = o.seed.wrapping_add(1000 + i);
        let mut rng = Rng::new(seed);
        let workers = 1 + rng.below(2) as usize;
        let dir = o.work.join(format!("rk-{i}"));
        fresh_dir(&dir)?;
        copy_dir(src, &dir)?;
        let t = Instant::now();
        // A third of the trials abort at a named phase boundary, the rest take a SIGKILL at a
        // random moment of an uninterrupted recovery's duration.
        let mut args = vec!["recover".to_string(), dir.display().to_string(), "--quiet".into()];
        args.extend(["--workers".into(), workers.to_string()]);
        let how = if i % 3 == 0 {
            let phase = PHASES[(i / 3) as usize % PHASES.len()];
            let status = Command::new(&cx.exe)
                .args(&args)
                .env(recovery::recover::CRASH_AT_ENV, phase)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()?;
            if !status.success() {
                cx.tally.extra += 1;
            }
            format!("abort after phase `{phase}`{}", if status.success() { " (phase not reached)" } else { "" })
        } else {
            let delay = Duration::from_secs_f64(full.as_secs_f64() * rng.unit());
            let landed = spawn_and_kill(&cx.exe, &args, delay)?;
            if landed {
                cx.tally.extra += 1;
            }
            format!("SIGKILL at {:.1} ms{}", ms(delay), if landed { "" } else { " (recovery had finished)" })
        };
        let second = recovery::recover(&dir, &recover_opts(workers));
        let tail = second.as_ref().map_or("none", tail_kind);
        let (verdict, detail) = match second {
            Err(e) => ("violation", format!("{how}; second recovery failed: {e}")),
            Ok(_) => match workloads::verify_dir(&dir) {
                Ok(v) if v.matches => ("ok", how),
                Ok(v) => (
                    "violation",
                    format!("{how}; {} blocks differ from the oracle, first {:?}", v.bad_blocks, v.first_bad_block),
                ),
                Err(e) => ("violation", format!("{how}; verify failed: {e}")),
            },
        };
        let keep = verdict == "violation" && o.keep_failures;
        cx.emit(Line {
            kind: "recovery-kill",
            trial: i,
            seed: p.seed,
            preset: o.preset.name().into(),
            policy: policy_name(p),
            checkpoints: *checkpoints,
            workers,
            outcome: Outcome { verdict, detail, k_min: 0, k_max: 0, k_got: None, tail },
            ms: ms(t.elapsed()),
        })?;
        if !keep {
            std::fs::remove_dir_all(&dir).ok();
        }
    }
    if !(o.keep_failures && cx.tally.violations > 0) {
        for (src, ..) in sources.values() {
            std::fs::remove_dir_all(src).ok();
        }
    }
    std::fs::remove_dir_all(o.work.join("rk-probe")).ok();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_last_log_line_is_ignored_and_commits_are_numbered() {
        let dir = tempfile::tempdir().expect("test step");
        let log = dir.path().join("log");
        std::fs::write(&log, "base b0 r0\nc 1 7 d1\nd 1\nc 2 9 d2\nc 3 1").expect("test step");
        let v = read_log(&log).expect("test step");
        assert_eq!(v.digests, vec!["b0", "d1", "d2"]);
        assert_eq!(v.durable, 1);
        assert_eq!(v.raw_base, "r0");
        assert_eq!(match_k(&v.digests, 1, 2, "d2"), Some(2));
        assert_eq!(match_k(&v.digests, 1, 2, "b0"), None, "a durable commit missing must not match");
        std::fs::write(&log, "base b0 r0\nc 2 7 d1\n").expect("test step");
        assert!(read_log(&log).is_err(), "commits out of order are an error");
    }

    /// The check is not vacuous: a device that loses synced journal bytes loses acknowledged
    /// commits, and the judge must say so.
    #[test]
    fn a_lying_device_is_reported_as_a_violation() {
        let dir = tempfile::tempdir().expect("test step");
        let mut p = Preset::Small.params(5);
        p.txns = 30;
        p.sync_every = 1;
        p.unlogged_write_rate = 0.0;
        let src = dir.path().join("src");
        let (summary, trace) = workloads::run_traced(&src, &p).expect("test step");
        assert!(summary.commits > 0);
        let segments = load_segments(&src).expect("test step");
        let digests = commit_digests(&trace);
        let dst = dir.path().join("state");
        let end = trace.events.len();
        // Honest: every synced commit survives.
        let mut keep_all = |n: u64| n - 1;
        let (k_min, k_max, desc) =
            build_state(&trace, &segments, end, Fate::Prefix, &mut keep_all, &dst).expect("test step");
        assert!(k_min > 0 && k_min <= k_max, "{desc}");
        let (verdict, detail, k, _) =
            judge_state(&dst, &digests, k_min, k_max, 1, trace.block_size, desc).expect("test step");
        assert_eq!(verdict, "ok", "{detail}");
        assert_eq!(k, Some(k_max));
        // Lying: the journal after its first segment's header is gone.
        let mut lose_all = |_: u64| 0;
        let (k_min, k_max, desc) =
            build_state(&trace, &segments, end, Fate::LyingFsync, &mut lose_all, &dst).expect("test step");
        let (verdict, detail, _, _) =
            judge_state(&dst, &digests, k_min, k_max, 1, trace.block_size, desc).expect("test step");
        assert_eq!(verdict, "violation", "{detail}");
    }
}
