//! The claims of the source document, each judged on the newest committed run that can measure
//! it (docs/LAB.md, "Claims"), and `CLAIMS.md`.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::{checkpoint_record_of_current_shape, fmt, Run, CHECKPOINT_FIND};
use crate::record::Record;
use crate::run::SCALING_PRESETS;

/// Scaling claims need at least this many CPUs.
pub const SCALING_MIN_CPUS: usize = 8;
/// The speedup the parallel claim promises ...
pub const PARALLEL_MIN_SPEEDUP: f64 = 8.0;
/// ... needs at least this many CPUs: with 8 workers it would take perfect efficiency.
pub const PARALLEL_MIN_CPUS: usize = 16;
/// Every measured speedup must reach at least this fraction of its whole-recovery bound.
pub const WHOLE_BOUND_FRACTION_MIN: f64 = 0.8;
/// The default checkpoint cadence (transactions between checkpoints), unless a record says
/// `default_cadence: true`.
pub const DEFAULT_CADENCE_TXNS: f64 = 3000.0;
/// Checkpoints must save at least this fraction of the scope (journal bytes not read, records
/// not replayed) in the worst case.
pub const CHECKPOINT_SCOPE_MIN: f64 = 0.8;
/// ... and recovery with them must take at most this fraction of the time without.
pub const CHECKPOINT_TIME_RATIO_MAX: f64 = 0.2;
/// Finding the newest checkpoint record must take less than this many microseconds ...
pub const CHECKPOINT_FIND_MAX_US: f64 = 1000.0;
/// ... and with 1,024 records at most this many times what it takes with one.
pub const CHECKPOINT_FIND_GROWTH_MAX: f64 = 2.0;
/// The default progress interval, milliseconds.
pub const DEFAULT_PROGRESS_INTERVAL_MS: f64 = 1000.0;

/// A claim's verdict.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The measurement supports the claim.
    Holds,
    /// Only under the named conditions (e.g. the cells where it held).
    HoldsOnlyWhen(String),
    /// The measurement contradicts the claim.
    DoesNotHold,
    /// No committed run could measure it; says what would.
    NotMeasurable(String),
}

impl Verdict {
    /// `holds`, `holds only when ...`, `does not hold`, `not measurable: ...`.
    pub fn text(&self) -> String {
        match self {
            Verdict::Holds => "holds".into(),
            Verdict::HoldsOnlyWhen(w) => format!("holds only when {w}"),
            Verdict::DoesNotHold => "does not hold".into(),
            Verdict::NotMeasurable(why) => format!("not measurable: {why}"),
        }
    }

    /// CSS class of the report page.
    pub(crate) fn class(&self) -> &'static str {
        match self {
            Verdict::Holds => "v-holds",
            Verdict::HoldsOnlyWhen(_) => "v-only",
            Verdict::DoesNotHold => "v-not",
            Verdict::NotMeasurable(_) => "v-na",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text())
    }
}

/// One claim with what was measured, under which conditions, the verdict, and the run used.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    /// The claim, as the source document puts it.
    pub claim: String,
    /// The measured value(s).
    pub measured: String,
    /// Conditions of the measurement (machine, configuration, which run and why).
    pub conditions: String,
    /// The verdict.
    pub verdict: Verdict,
    /// Directory name of the run judged (`-` when none could).
    pub run: String,
    /// The plot of that run that shows the measurement (`plots/<name>.svg`), if one does.
    pub plot: Option<String>,
}

/// The claims, in the order of docs/LAB.md, each judged on the newest run (by `env.started`,
/// then directory name) that can measure it; `runs` may come in any order.
pub fn judge_claims(runs: &[Run]) -> Vec<Claim> {
    let mut runs: Vec<&Run> = runs.iter().collect();
    runs.sort_by(|a, b| b.env.started.cmp(&a.env.started).then_with(|| b.dir_name.cmp(&a.dir_name)));
    vec![
        parallel_8x(&runs),
        linear_scaling(&runs),
        within_whole_bound(&runs),
        mmap_3_5x(&runs),
        checkpoint_scope(&runs),
        checkpoint_find(&runs),
        jbd2_vs_e2fsck(&runs),
        progress_subsecond(&runs),
    ]
}

/// fastrec's speed over e2fsck's that the jbd2 front end is built to reach (docs/JBD2.md).
const JBD2_VS_E2FSCK_MIN: f64 = 5.0;

fn jbd2_vs_e2fsck(runs: &[&Run]) -> Claim {
    const CLAIM: &str = "ext4 (jbd2) journal recovery at least 5x faster than e2fsck, with the identical result";
    let base = "jbd2: an ext4 image made by mkfs.ext4 whose journal debugfs filled (checksums v3), recovered by \
                `e2fsck -y -E journal_only` and by fastrec taking turns from the same crash image, both including \
                their final flush to disk; the recovered blocks compared (equal, or the run fails); vs e2fsck = \
                e2fsck's median over fastrec's, with the most workers measured, warm and cold; >= 5x needed in both";
    let Some(run) = runs.iter().copied().find(|r| !of(r, "jbd2").is_empty()) else {
        return not_measurable(CLAIM, "no committed run measured the jbd2 front end", base);
    };
    let rs = of(run, "jbd2");
    let most = rs.iter().map(|r| workers(r)).fold(0.0, f64::max);
    let judged: Vec<&Record> =
        rs.iter().copied().filter(|r| workers(r) == most && r.get("vs_e2fsck").is_some()).collect();
    let mut measured = rs
        .iter()
        .map(|r| {
            format!(
                "{}, {}: {} ({} ms, e2fsck {} ms)",
                r.cache.state,
                workers_text(workers(r)),
                x(r.get("vs_e2fsck").unwrap_or(f64::NAN)),
                fmt::value(r.get("time_ms").unwrap_or(f64::NAN), "ms"),
                fmt::value(r.get("e2fsck_ms").unwrap_or(f64::NAN), "ms")
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    // Where writing the blocks alone leaves less than 5x, no replayer could reach it.
    let capped: Vec<String> = judged
        .iter()
        .filter_map(|r| r.get("e2fsck_over_floor").filter(|&f| f < JBD2_VS_E2FSCK_MIN).map(|f| (r, f)))
        .map(|(r, f)| format!("{} {}", r.cache.state, x(f)))
        .collect();
    if !capped.is_empty() {
        let _ = write!(
            measured,
            ". Writing the recovered blocks alone (in memory, once each, then fdatasync) leaves at most {} over \
             e2fsck: no replayer reaches 5x there on this disk",
            capped.join(", ")
        );
    }
    let states: BTreeSet<&str> = judged.iter().map(|r| r.cache.state.as_str()).collect();
    let verdict = if judged.iter().any(|r| r.get("vs_e2fsck").is_some_and(|v| v < JBD2_VS_E2FSCK_MIN)) {
        Verdict::DoesNotHold
    } else if !(states.contains("warm") && states.contains("cold")) {
        Verdict::NotMeasurable("needs warm and cold measurements".into())
    } else {
        Verdict::Holds
    };
    let journal = rs.first().and_then(|r| r.p_num("journal_mib")).map_or("-".into(), |m| fmt::grouped(m, 0));
    Claim {
        claim: CLAIM.into(),
        measured,
        conditions: format!("{base}; {journal} MiB journal; {}", machine(run)),
        verdict,
        run: run.dir_name.clone(),
        plot: None,
    }
}

fn of<'a>(run: &'a Run, experiment: &str) -> Vec<&'a Record> {
    super::of(&run.records, experiment)
}

fn machine(run: &Run) -> String {
    format!("{} CPUs ({}), {} run", run.env.cpus, fmt::short_cpu(&run.env.cpu_model), run.env.mode)
}

fn workers(r: &Record) -> f64 {
    r.p_num("workers").unwrap_or(0.0)
}

/// `1 worker`, `16 workers`.
fn workers_text(w: f64) -> String {
    if w == 1.0 {
        "1 worker".into()
    } else {
        format!("{} workers", fmt::axis(w))
    }
}

fn x(v: f64) -> String {
    format!("{}x", fmt::value(v, "x"))
}

fn pct(v: f64) -> String {
    format!("{}%", fmt::fixed(v * 100.0, 1))
}

/// The record of `preset` at the most workers (ties: the last label).
fn most_workers<'a>(records: &[&'a Record], preset: &str, metric: &str) -> Option<&'a Record> {
    records
        .iter()
        .copied()
        .filter(|r| r.p_str("preset") == Some(preset) && r.get(metric).is_some())
        .max_by(|a, b| workers(a).total_cmp(&workers(b)).then_with(|| a.label.cmp(&b.label)))
}

/// What a scaling claim needs: the newest run with its data, and how many CPUs it must have.
struct Needs<'a> {
    /// The data, for the message when no run has it: `scaling`, `scaling of the physical preset`.
    what: &'a str,
    /// CPUs the judged run must have.
    cpus: usize,
}

/// The runs a scaling claim uses: the newest run with its data (`has_data`) and the newest of
/// those with enough CPUs to judge it; or, when there is no such run, the claim as not
/// measurable (with the newest run's own values, `measure`, when it exists).
fn scaling_runs<'a>(
    runs: &[&'a Run],
    claim: &str,
    base: &str,
    needs: &Needs<'_>,
    has_data: impl Fn(&Run) -> bool,
    measure: &dyn Fn(&Run) -> Option<String>,
) -> Result<(&'a Run, &'a Run), Box<Claim>> {
    let Some(newest) = runs.iter().copied().find(|r| has_data(r)) else {
        return Err(Box::new(not_measurable(
            claim,
            &format!("no committed run measured {}; needs a run with >= {} CPUs", needs.what, needs.cpus),
            base,
        )));
    };
    let Some(judged) = runs.iter().copied().find(|r| has_data(r) && r.env.cpus >= needs.cpus) else {
        return Err(Box::new(Claim {
            claim: claim.into(),
            measured: measure(newest).unwrap_or_default(),
            conditions: format!("{base}; {}", machine(newest)),
            verdict: Verdict::NotMeasurable(format!("needs >= {} CPUs; this run had {}", needs.cpus, newest.env.cpus)),
            run: newest.dir_name.clone(),
            plot: None,
        }));
    };
    Ok((newest, judged))
}

fn not_measurable(claim: &str, why: &str, conditions: &str) -> Claim {
    Claim {
        claim: claim.into(),
        measured: "-".into(),
        conditions: conditions.into(),
        verdict: Verdict::NotMeasurable(why.into()),
        run: "-".into(),
        plot: None,
    }
}

/// The preset the speedup claim is judged on: per-record work without cross-block
/// dependencies, so that nothing in the workload itself caps the speedup.
const PARALLEL_PRESET: &str = "physical";

/// `8.50x at 16 workers; whole-recovery bound 9.44x at 16 workers, 12.0x with any number of
/// workers; replay-only bound 5.40x`: a scaling record's speedup and bounds.
fn speedup_and_bounds(r: &Record) -> Option<String> {
    let w = workers_text(workers(r));
    let mut s = format!("{} at {w}", x(r.get("speedup")?));
    if let Some(b) = r.get("whole_bound") {
        let _ = write!(s, "; whole-recovery bound {} at {w}", x(b));
        if let Some(any) = r.get("whole_bound_any") {
            let _ = write!(s, ", {} with any number of workers", x(any));
        }
    }
    if let Some(b) = r.get("bound") {
        let _ = write!(s, "; replay-only bound {}", x(b));
    }
    Some(s)
}

fn parallel_8x(runs: &[&Run]) -> Claim {
    const CLAIM: &str = "up to 8x faster through parallel processing";
    let measure = |run: &Run| -> Option<String> {
        let r = most_workers(&of(run, "scaling"), PARALLEL_PRESET, "speedup")?;
        let mut s = speedup_and_bounds(r)?;
        if r.get("whole_bound_any").is_some_and(|b| b < PARALLEL_MIN_SPEEDUP) {
            s.push_str(" (8x is beyond this workload's bound with any number of workers)");
        } else if r.get("whole_bound").is_some_and(|b| b < PARALLEL_MIN_SPEEDUP) {
            let _ = write!(s, " (8x is beyond the bound at {})", workers_text(workers(r)));
        }
        Some(s)
    };
    let has_data = |r: &Run| measure(r).is_some();
    let base = format!(
        "scaling, `{PARALLEL_PRESET}` preset (per-record work, no cross-block dependency: the fair test), most \
         workers measured, rayon, warm cache; speedup = the same run's 1-worker median over this median; 8x needs \
         >= {PARALLEL_MIN_CPUS} CPUs (with 8 workers it would take perfect efficiency)"
    );
    let what = format!("scaling of the `{PARALLEL_PRESET}` preset");
    let needs = Needs { what: &what, cpus: PARALLEL_MIN_CPUS };
    let (newest, run) = match scaling_runs(runs, CLAIM, &base, &needs, has_data, &measure) {
        Ok(r) => r,
        Err(c) if c.run == "-" => return with_cpu_bound_context(*c, runs),
        Err(c) => return *c,
    };
    let r = most_workers(&of(run, "scaling"), PARALLEL_PRESET, "speedup");
    let speedup = r.and_then(|r| r.get("speedup")).unwrap_or(f64::NAN);
    Claim {
        claim: CLAIM.into(),
        measured: measure(run).unwrap_or_default(),
        conditions: format!("{base}; {}{}", machine(run), newer_note(run, newest, needs.cpus, &measure)),
        verdict: if speedup >= PARALLEL_MIN_SPEEDUP { Verdict::Holds } else { Verdict::DoesNotHold },
        run: run.dir_name.clone(),
        plot: Some("scaling-speedup".into()),
    }
}

/// The speedup claim when no run measured the `physical` preset: what the newest run with the
/// most CPUs measured on `cpu-bound`, whose copies cap the speedup, for context; the claim stays
/// not measurable.
fn with_cpu_bound_context(mut c: Claim, runs: &[&Run]) -> Claim {
    let measured = |run: &Run| most_workers(&of(run, "scaling"), "cpu-bound", "speedup").and_then(speedup_and_bounds);
    let most_cpus = runs.iter().filter(|r| measured(r).is_some()).map(|r| r.env.cpus).max();
    let Some(run) = runs.iter().copied().find(|r| Some(r.env.cpus) == most_cpus && measured(r).is_some()) else {
        return c;
    };
    c.measured = format!(
        "not measured on `{PARALLEL_PRESET}`; `cpu-bound` (a fifth of the writes COPY records, which cap the \
         speedup) measured {}",
        measured(run).unwrap_or_default()
    );
    let _ = write!(c.conditions, "; the `cpu-bound` figure: {}", machine(run));
    c.run = run.dir_name.clone();
    c
}

/// When a scaling claim is judged on an older run: what the newest run had and measured.
fn newer_note(judged: &Run, newest: &Run, min_cpus: usize, measure: &dyn Fn(&Run) -> Option<String>) -> String {
    if judged.dir_name == newest.dir_name {
        return String::new();
    }
    format!(
        "; judged on this run because the newest run with scaling, {}, had {} CPUs (< {min_cpus}); it measured {}",
        newest.dir_name,
        newest.env.cpus,
        measure(newest).unwrap_or_else(|| "-".into())
    )
}

/// Scaling records with `metric`, per preset (the lab's presets first, in their order), each
/// by workers.
fn per_preset<'a>(run: &'a Run, metric: &str) -> Vec<(String, Vec<&'a Record>)> {
    let mut out: Vec<(String, Vec<&Record>)> = Vec::new();
    for r in of(run, "scaling").into_iter().filter(|r| r.get(metric).is_some()) {
        let p = r.p_str("preset").unwrap_or("-").to_string();
        match out.iter_mut().find(|(k, _)| *k == p) {
            Some((_, v)) => v.push(r),
            None => out.push((p, vec![r])),
        }
    }
    let rank = |p: &str| SCALING_PRESETS.iter().position(|x| *x == p).unwrap_or(SCALING_PRESETS.len());
    out.sort_by(|a, b| rank(&a.0).cmp(&rank(&b.0)).then_with(|| a.0.cmp(&b.0)));
    for (_, v) in &mut out {
        v.sort_by(|a, b| workers(a).total_cmp(&workers(b)).then_with(|| a.label.cmp(&b.label)));
    }
    out
}

/// A note in the conditions for each of the lab's presets that `presets` lacks.
fn missing_presets(presets: &[(String, Vec<&Record>)]) -> String {
    let mut out = String::new();
    for missing in SCALING_PRESETS.iter().filter(|p| !presets.iter().any(|(k, _)| k == *p)) {
        let _ = write!(out, "; `{missing}` not measured in this run");
    }
    out
}

fn linear_scaling(runs: &[&Run]) -> Claim {
    const CLAIM: &str = "linear scaling across cores";
    let measure = |run: &Run| -> Option<String> {
        let presets = per_preset(run, "efficiency");
        if presets.is_empty() {
            return None;
        }
        let parts: Vec<String> = presets
            .iter()
            .map(|(p, rs)| {
                let effs: Vec<f64> = rs.iter().filter_map(|r| r.get("efficiency")).collect();
                let lo = effs.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = effs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let ok = rs.iter().take_while(|r| r.get("efficiency").is_some_and(|e| e >= 0.8)).count();
                let at_max = rs.last().map(|r| {
                    format!(
                        "{} at {}",
                        fmt::value(r.get("efficiency").unwrap_or(f64::NAN), "fraction"),
                        workers_text(workers(r))
                    )
                });
                let through = if ok == rs.len() {
                    "all >= 0.8".to_string()
                } else if ok == 0 {
                    "below 0.8 from the fewest workers".to_string()
                } else {
                    format!(">= 0.8 up to {}", workers_text(workers(rs[ok - 1])))
                };
                format!(
                    "{p}: efficiency {}-{}, {}; {through}",
                    fmt::value(lo, "fraction"),
                    fmt::value(hi, "fraction"),
                    at_max.unwrap_or_default()
                )
            })
            .collect();
        Some(parts.join("; "))
    };
    let has_data = |r: &Run| !per_preset(r, "efficiency").is_empty();
    let base = "scaling, every preset measured, every worker count, rayon, warm cache; efficiency = speedup / workers";
    let needs = Needs { what: "scaling", cpus: SCALING_MIN_CPUS };
    let (newest, run) = match scaling_runs(runs, CLAIM, base, &needs, has_data, &measure) {
        Ok(r) => r,
        Err(c) => return *c,
    };
    let presets = per_preset(run, "efficiency");
    let all = presets.iter().all(|(_, rs)| rs.iter().all(|r| r.get("efficiency").is_some_and(|e| e >= 0.8)));
    let mut conditions = format!("{base}; {}", machine(run));
    conditions.push_str(&missing_presets(&presets));
    conditions.push_str(&newer_note(run, newest, needs.cpus, &measure));
    Claim {
        claim: CLAIM.into(),
        measured: measure(run).unwrap_or_default(),
        conditions,
        verdict: if all { Verdict::Holds } else { Verdict::DoesNotHold },
        run: run.dir_name.clone(),
        plot: None,
    }
}

fn within_whole_bound(runs: &[&Run]) -> Claim {
    const CLAIM: &str = "every measured point within 80% of the whole-recovery bound";
    // One worker is the baseline: its speedup and bound are 1 by definition.
    fn points(run: &Run) -> Vec<(String, Vec<&Record>)> {
        let mut v = per_preset(run, "whole_bound");
        for (_, rs) in &mut v {
            rs.retain(|r| workers(r) > 1.0 && r.get("speedup").is_some());
        }
        v.retain(|(_, rs)| !rs.is_empty());
        v
    }
    let of_bound = |r: &Record| -> f64 {
        match (r.get("speedup"), r.get("whole_bound")) {
            (Some(s), Some(b)) if b > 0.0 => s / b,
            _ => f64::NAN,
        }
    };
    let ok = |r: &Record| of_bound(r) >= WHOLE_BOUND_FRACTION_MIN;
    let measure = |run: &Run| -> Option<String> {
        let presets = points(run);
        if presets.is_empty() {
            return None;
        }
        let parts: Vec<String> = presets
            .iter()
            .map(|(p, rs)| {
                let lowest = rs
                    .iter()
                    .copied()
                    .min_by(|a, b| of_bound(a).total_cmp(&of_bound(b)).then_with(|| a.label.cmp(&b.label)));
                let hi = rs.iter().map(|r| of_bound(r)).fold(f64::NEG_INFINITY, f64::max);
                match lowest {
                    Some(r) => format!(
                        "{p}: {}-{} of the bound (lowest {} of {} at {})",
                        pct(of_bound(r)),
                        pct(hi),
                        x(r.get("speedup").unwrap_or(f64::NAN)),
                        x(r.get("whole_bound").unwrap_or(f64::NAN)),
                        workers_text(workers(r))
                    ),
                    None => format!("{p}: -"),
                }
            })
            .collect();
        Some(parts.join("; "))
    };
    let has_data = |r: &Run| !points(r).is_empty();
    let base =
        "scaling, every preset measured, every worker count above 1, rayon, warm cache; speedup / whole-recovery \
                bound >= 0.8 needed at every point; the bound is the whole recovery's work over its floor with that \
                many workers (every phase counted), from the run checked against the oracle";
    let needs = Needs { what: "the whole-recovery bound", cpus: SCALING_MIN_CPUS };
    let (newest, run) = match scaling_runs(runs, CLAIM, base, &needs, has_data, &measure) {
        Ok(r) => r,
        Err(c) => return *c,
    };
    let presets = points(run);
    let holding: Vec<&str> =
        presets.iter().filter(|(_, rs)| rs.iter().all(|r| ok(r))).map(|(p, _)| p.as_str()).collect();
    let verdict = if holding.len() == presets.len() {
        Verdict::Holds
    } else if holding.is_empty() {
        Verdict::DoesNotHold
    } else {
        Verdict::HoldsOnlyWhen(format!("the workload is {}", holding.join(" or ")))
    };
    let mut conditions = format!("{base}; {}", machine(run));
    conditions.push_str(&missing_presets(&presets));
    conditions.push_str(&newer_note(run, newest, needs.cpus, &measure));
    Claim {
        claim: CLAIM.into(),
        measured: measure(run).unwrap_or_default(),
        conditions,
        verdict,
        run: run.dir_name.clone(),
        plot: Some("scaling-speedup".into()),
    }
}

fn consumer_rank(c: &str) -> usize {
    ["scan", "recover"].iter().position(|x| *x == c).unwrap_or(2)
}

fn cache_rank(c: &str) -> usize {
    ["warm", "cold"].iter().position(|x| *x == c).unwrap_or(2)
}

fn mmap_3_5x(runs: &[&Run]) -> Claim {
    const CLAIM: &str = "3-5x faster journal access with mmap";
    fn cells(run: &Run) -> Vec<&Record> {
        let mut v: Vec<&Record> = of(run, "io")
            .into_iter()
            .filter(|r| r.p_str("backend") == Some("mmap") && r.get("vs_read").is_some())
            .collect();
        v.sort_by(|a, b| {
            let key = |r: &Record| {
                (
                    fmt::size_param(r, "record").0,
                    consumer_rank(r.p_str("consumer").unwrap_or("")),
                    cache_rank(&r.cache.state),
                    r.p_str("config").unwrap_or("").to_string(),
                )
            };
            key(a).cmp(&key(b)).then_with(|| a.label.cmp(&b.label))
        });
        v
    }
    let base = "io, `vs_read` of `mmap` = the best read(2)-family backend's median (read, pread) over mmap's, same \
                cache state and consumer";
    let Some(run) = runs.iter().copied().find(|r| !cells(r).is_empty()) else {
        return not_measurable(CLAIM, "no committed run measured io with the mmap backend", base);
    };
    let cells = cells(run);
    let distinct = |f: &dyn Fn(&Record) -> String| cells.iter().map(|r| f(r)).collect::<BTreeSet<_>>().len() > 1;
    let several_sizes = distinct(&|r: &Record| fmt::size_param(r, "record").1);
    let several_configs = distinct(&|r: &Record| r.p_str("config").unwrap_or("").to_string());
    let name = |r: &Record| -> String {
        let mut s = String::new();
        if several_configs {
            let _ = write!(s, "{} ", r.p_str("config").unwrap_or("mmap"));
        }
        let _ = write!(s, "{}, {} cache", r.p_str("consumer").unwrap_or("-"), r.cache.state);
        if several_sizes {
            let _ = write!(s, ", {} records", fmt::size_param(r, "record").1);
        }
        s
    };
    let values: Vec<f64> = cells.iter().filter_map(|r| r.get("vs_read")).collect();
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let list: Vec<String> =
        cells.iter().map(|r| format!("{} {}", name(r), x(r.get("vs_read").unwrap_or(f64::NAN)))).collect();
    let range = if fmt::value(lo, "x") == fmt::value(hi, "x") { x(lo) } else { format!("{}-{}", x(lo), x(hi)) };
    let measured = format!("{range} over {} cell(s): {}", cells.len(), list.join("; "));
    let holding: Vec<String> = cells
        .iter()
        .filter(|r| r.get("vs_read").is_some_and(|v| v >= 3.0))
        .map(|r| format!("{} ({})", name(r), x(r.get("vs_read").unwrap_or(f64::NAN))))
        .collect();
    let verdict = if holding.len() == cells.len() {
        Verdict::Holds
    } else if holding.is_empty() {
        Verdict::DoesNotHold
    } else {
        Verdict::HoldsOnlyWhen(holding.join("; "))
    };
    let mut conditions = format!("{base}; >= 3x needed in every cell; {}", machine(run));
    if let Some(r) = cells.first() {
        if !several_sizes {
            let _ = write!(conditions, "; {} records", fmt::size_param(r, "record").1);
        }
        if r.params.contains_key("journal_bytes") {
            let _ = write!(conditions, ", {} journal", fmt::rparam(r, "journal_bytes"));
        }
    }
    Claim { claim: CLAIM.into(), measured, conditions, verdict, run: run.dir_name.clone(), plot: None }
}

/// The checkpoint records at the default cadence: those marked `default_cadence: true` if any
/// record of the run is marked, else those with `every_txns == 3000`.
fn default_cadence(run: &Run) -> Vec<&Record> {
    let all = of(run, "checkpoint");
    let marked: Vec<&Record> = all
        .iter()
        .copied()
        .filter(|r| r.params.get("default_cadence").and_then(|v| v.as_bool()) == Some(true))
        .collect();
    let mut v = if marked.is_empty() {
        all.into_iter().filter(|r| r.p_num("every_txns") == Some(DEFAULT_CADENCE_TXNS)).collect()
    } else {
        marked
    };
    let crash_rank = |r: &Record| ["after", "before"].iter().position(|c| Some(*c) == r.p_str("crash")).unwrap_or(2);
    v.sort_by(|a, b| crash_rank(a).cmp(&crash_rank(b)).then_with(|| a.label.cmp(&b.label)));
    v
}

const CHECKPOINT_CLAIM: &str = "80-95% less recovery scope via checkpoints";

fn checkpoint_scope(runs: &[&Run]) -> Claim {
    // Judged on time as well as scope, on the newest run whose checkpoints are records; runs
    // from before (checkpoints as image snapshots) only when there is none.
    fn current(r: &Run) -> Vec<&Record> {
        default_cadence(r).into_iter().filter(|r| checkpoint_record_of_current_shape(r)).collect()
    }
    if let Some(run) = runs.iter().copied().find(|r| !current(r).is_empty()) {
        return checkpoint_scope_and_time(run, &current(run));
    }
    checkpoint_scope_legacy(runs)
}

fn crash_text(r: &Record) -> String {
    format!("crash {}, {} cache", r.p_str("crash").unwrap_or("-"), r.cache.state)
}

/// `checkpoint` records of the current shape at the default cadence (`rs`, crash after, then
/// before): the claim holds only if, in the worst case (the crash just before the next
/// checkpoint is due), warm and cold, checkpoints skip at least 80% of the scope and recovery
/// with them takes at most 0.2x the time without.
fn checkpoint_scope_and_time(run: &Run, rs: &[&Record]) -> Claim {
    let base = "checkpoint, `default` preset, checkpoint records at the default cadence; judged in the worst case, \
                the crash just before the next checkpoint is due, with a warm and a cold cache: journal bytes not \
                read and records not replayed both >= 80%, and recovery time with checkpoints <= 0.2x the time \
                without (80% less), on the same crash image, recoveries taking turns";
    let mut rs: Vec<&Record> = rs.to_vec();
    rs.sort_by(|a, b| {
        let crash = |r: &Record| ["after", "before"].iter().position(|c| Some(*c) == r.p_str("crash")).unwrap_or(2);
        crash(a)
            .cmp(&crash(b))
            .then_with(|| cache_rank(&a.cache.state).cmp(&cache_rank(&b.cache.state)))
            .then_with(|| a.label.cmp(&b.label))
    });
    let scope = |r: &Record| -> f64 {
        match (r.get("bytes_skipped"), r.get("records_skipped")) {
            (Some(b), Some(rec)) => b.min(rec),
            _ => f64::NAN,
        }
    };
    let ratio = |r: &Record| r.get("time_ratio").unwrap_or(f64::NAN);
    let scope_ok = |r: &Record| scope(r) >= CHECKPOINT_SCOPE_MIN;
    let time_ok = |r: &Record| ratio(r) <= CHECKPOINT_TIME_RATIO_MAX;
    let worst: Vec<&Record> = rs.iter().copied().filter(|r| r.p_str("crash") == Some("before")).collect();

    // What failed, first: the reader sees why before the numbers.
    let mut findings: Vec<String> = Vec::new();
    for r in &worst {
        let (sc, t) = (scope(r), ratio(r));
        if !scope_ok(r) {
            findings.push(format!("{}: only {} less scope", crash_text(r), pct(sc)));
        } else if t >= 1.0 {
            findings.push(format!(
                "{}: {} less scope but recovery got slower ({} the time without)",
                crash_text(r),
                pct(sc),
                x(t)
            ));
        } else if !time_ok(r) {
            let floor = match r.get("floor_ratio") {
                Some(f) => format!(
                    " (the flush of the blocks not home, which no start point avoids, alone takes {} the time without)",
                    x(f)
                ),
                None => String::new(),
            };
            findings.push(format!(
                "{}: {} less scope but only {} less time{floor}",
                crash_text(r),
                pct(sc),
                pct(1.0 - t)
            ));
        }
    }
    let cells: Vec<String> = rs
        .iter()
        .map(|r| {
            let f = |k: &str| r.get(k).map(pct).unwrap_or_else(|| "-".into());
            let ms = |k: &str| r.get(k).map(|v| fmt::value(v, "ms")).unwrap_or_else(|| "-".into());
            format!(
                "{}: {} of journal bytes and {} of records skipped, time ratio {} ({} ms with, {} ms without)",
                crash_text(r),
                f("bytes_skipped"),
                f("records_skipped"),
                r.get("time_ratio").map(x).unwrap_or_else(|| "-".into()),
                ms("time_with_ms"),
                ms("time_without_ms")
            )
        })
        .collect();
    let mut measured = findings.join("; ");
    if !measured.is_empty() {
        measured.push_str(". ");
    }
    measured.push_str(&cells.join("; "));
    let finds: Vec<f64> = rs.iter().filter_map(|r| r.get("find_ms")).filter(|v| v.is_finite()).collect();
    if !finds.is_empty() {
        let lo = finds.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = finds.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let range = if fmt::value(lo, "ms") == fmt::value(hi, "ms") {
            fmt::value(lo, "ms")
        } else {
            format!("{}-{}", fmt::value(lo, "ms"), fmt::value(hi, "ms"))
        };
        let _ = write!(measured, "; finding and reading the checkpoint record took {range} ms");
    }

    let states: BTreeSet<&str> = worst.iter().map(|r| r.cache.state.as_str()).collect();
    let missing: Vec<&str> = ["warm", "cold"].into_iter().filter(|c| !states.contains(c)).collect();
    let all_ok = worst.iter().all(|r| scope_ok(r) && time_ok(r));
    let verdict = if worst.is_empty() {
        Verdict::NotMeasurable("no record of the crash just before a checkpoint is due at the default cadence".into())
    } else if !all_ok {
        Verdict::DoesNotHold
    } else if !missing.is_empty() {
        Verdict::NotMeasurable(format!(
            "the worst case was not measured with a {} cache; it needs warm and cold",
            missing.join(" or ")
        ))
    } else {
        Verdict::Holds
    };
    let conditions = format!("{base}; checkpoint every {}; {}", cadences_text(&rs), machine(run));
    Claim {
        claim: CHECKPOINT_CLAIM.into(),
        measured,
        conditions,
        verdict,
        run: run.dir_name.clone(),
        plot: Some("checkpoint".into()),
    }
}

/// `3,000 transactions`: the cadences of `rs`.
fn cadences_text(rs: &[&Record]) -> String {
    let cadences: Vec<String> = rs
        .iter()
        .filter_map(|r| r.p_num("every_txns"))
        .map(|v| fmt::grouped(v, 0))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    format!("{} transactions", if cadences.is_empty() { "-".to_string() } else { cadences.join(", ") })
}

/// Runs whose checkpoints were image snapshots: scope skipped, and recovery not slower.
fn checkpoint_scope_legacy(runs: &[&Run]) -> Claim {
    const CLAIM: &str = CHECKPOINT_CLAIM;
    let base = "checkpoint, `default` preset, default cadence; scope skipped = journal bytes not read and durable \
                records not replayed, both >= 80% needed, and recovery not slower with checkpoints; time ratio = \
                recovery with / without checkpoints on the same crash image (< 1 is faster)";
    let Some(run) = runs.iter().copied().find(|r| !default_cadence(r).is_empty()) else {
        let why = if runs.iter().any(|r| !of(r, "checkpoint").is_empty()) {
            "no checkpoint record at the default cadence (every 3,000 transactions, or `default_cadence: true`)"
        } else {
            "no committed run measured checkpoints"
        };
        return not_measurable(CLAIM, why, base);
    };
    let rs = default_cadence(run);
    let scope_ok = |r: &Record| {
        r.get("bytes_skipped").is_some_and(|v| v >= CHECKPOINT_SCOPE_MIN)
            && r.get("records_skipped").is_some_and(|v| v >= CHECKPOINT_SCOPE_MIN)
    };
    // Scope saved while recovery got slower saved nothing: it does not count.
    let slower = |r: &Record| r.get("time_ratio").is_some_and(|t| t >= 1.0);
    let holds = |r: &Record| scope_ok(r) && !slower(r);
    let describe = |r: &Record| -> String {
        let f = |k: &str| r.get(k).map(pct).unwrap_or_else(|| "-".into());
        format!(
            "crash {}: {} of journal bytes and {} of records skipped, time ratio {}",
            r.p_str("crash").unwrap_or("-"),
            f("bytes_skipped"),
            f("records_skipped"),
            r.get("time_ratio").map(x).unwrap_or_else(|| "-".into())
        )
    };
    let mut measured = rs.iter().map(|r| describe(r)).collect::<Vec<_>>().join("; ");
    let slower_with_scope: Vec<&str> =
        rs.iter().filter(|r| scope_ok(r) && slower(r)).map(|r| r.p_str("crash").unwrap_or("-")).collect();
    if !slower_with_scope.is_empty() {
        let _ = write!(
            measured,
            "; the scope was skipped but recovery got slower with checkpoints (crash {})",
            slower_with_scope.join(", ")
        );
    }
    let holding: Vec<String> = rs
        .iter()
        .filter(|r| holds(r))
        .map(|r| format!("the crash comes {} a checkpoint", r.p_str("crash").unwrap_or("-")))
        .collect();
    let verdict = if holding.len() == rs.len() {
        Verdict::Holds
    } else if holding.is_empty() {
        Verdict::DoesNotHold
    } else {
        Verdict::HoldsOnlyWhen(holding.join("; "))
    };
    let conditions = format!("{base}; checkpoint every {}; {}", cadences_text(&rs), machine(run));
    Claim {
        claim: CLAIM.into(),
        measured,
        conditions,
        verdict,
        run: run.dir_name.clone(),
        plot: Some("checkpoint".into()),
    }
}

fn checkpoint_find(runs: &[&Run]) -> Claim {
    const CLAIM: &str = "finding the checkpoint takes under 1 ms and does not grow with the number retained";
    fn finds(run: &Run) -> Vec<&Record> {
        let mut v: Vec<&Record> = of(run, CHECKPOINT_FIND)
            .into_iter()
            .filter(|r| r.p_num("records").is_some() && r.get("find_us").is_some())
            .collect();
        v.sort_by(|a, b| {
            a.p_num("records").unwrap_or(0.0).total_cmp(&b.p_num("records").unwrap_or(0.0)).then(a.label.cmp(&b.label))
        });
        v
    }
    let base = "checkpoint-find: median time to find and read the newest checkpoint record in a directory holding 1, \
                64 or 1,024 of them; every time < 1 ms, and the time with 1,024 within 2x the time with 1, needed";
    let Some(run) = runs.iter().copied().find(|r| !finds(r).is_empty()) else {
        return not_measurable(CLAIM, "no committed run measured finding the checkpoint record", base);
    };
    let rs = finds(run);
    let us = |r: &Record| r.get("find_us").unwrap_or(f64::NAN);
    let at = |n: f64| rs.iter().copied().find(|r| r.p_num("records") == Some(n)).map(us);
    let list: Vec<String> = rs
        .iter()
        .map(|r| {
            let n = r.p_num("records").unwrap_or(0.0);
            let noun = if n == 1.0 { "record" } else { "records" };
            format!("{} {noun}: {} us", fmt::grouped(n, 0), fmt::value(us(r), "us"))
        })
        .collect();
    let mut measured = list.join("; ");
    let growth = match (at(1.0), at(1024.0)) {
        (Some(one), Some(many)) => Some(many / one),
        _ => None,
    };
    if let Some(g) = growth {
        let _ = write!(measured, " (1,024 records take {} the time of 1)", x(g));
    }
    let under = rs.iter().all(|r| us(r) < CHECKPOINT_FIND_MAX_US);
    let verdict = match growth {
        None if under => Verdict::NotMeasurable("needs find times with 1 and with 1,024 records".into()),
        Some(g) if under && g <= CHECKPOINT_FIND_GROWTH_MAX => Verdict::Holds,
        _ => Verdict::DoesNotHold,
    };
    Claim {
        claim: CLAIM.into(),
        measured,
        conditions: format!("{base}; {}", machine(run)),
        verdict,
        run: run.dir_name.clone(),
        plot: None,
    }
}

fn progress_subsecond(runs: &[&Run]) -> Claim {
    const CLAIM: &str = "sub-second progress updates";
    fn at_default(run: &Run) -> Vec<&Record> {
        let mut v: Vec<&Record> = of(run, "progress")
            .into_iter()
            .filter(|r| r.p_num("interval_ms") == Some(DEFAULT_PROGRESS_INTERVAL_MS) && r.get("gap_max_ms").is_some())
            .collect();
        v.sort_by(|a, b| a.label.cmp(&b.label));
        v
    }
    let base = "progress, default interval 1000 ms, gaps between consecutive observer callbacks (phase events \
                included); `gap_max_ms` < 1000 needed, judged only on recoveries lasting at least two intervals \
                (a shorter one has no gap longer than itself)";
    let Some(run) = runs.iter().copied().find(|r| !at_default(r).is_empty()) else {
        let why = if runs.iter().any(|r| !of(r, "progress").is_empty()) {
            "no progress record at the default interval (1000 ms)"
        } else {
            "no committed run measured progress"
        };
        return not_measurable(CLAIM, why, base);
    };
    let rs = at_default(run);
    let describe = |r: &Record| -> String {
        let mut s =
            format!("{}: longest gap {} ms", r.label, fmt::value(r.get("gap_max_ms").unwrap_or(f64::NAN), "ms"));
        if let Some(p50) = r.get("gap_p50_ms") {
            let _ = write!(s, ", median {} ms", fmt::value(p50, "ms"));
        }
        if let Some(n) = r.get("updates") {
            let _ = write!(s, ", {} updates", fmt::value(n, "count"));
        }
        if let Some(o) = r.get("overhead") {
            let _ = write!(s, ", overhead {}", x(o));
        }
        s
    };
    let measured = rs
        .iter()
        .map(|r| {
            let mut d = describe(r);
            if let Some(t) = r.get("time_ms") {
                let _ = write!(d, ", recovery {} ms", fmt::value(t, "ms"));
            }
            d
        })
        .collect::<Vec<_>>()
        .join("; ");
    let long_enough = |r: &&Record| r.get("time_ms").is_some_and(|t| t >= 2.0 * DEFAULT_PROGRESS_INTERVAL_MS);
    let evidence: Vec<&Record> = rs.iter().copied().filter(long_enough).collect();
    if evidence.is_empty() {
        return Claim {
            claim: CLAIM.into(),
            measured,
            conditions: format!("{base}; {}", machine(run)),
            verdict: Verdict::NotMeasurable(
                "every recovery measured was shorter than two intervals (2 s); the lab's slow shape measures this"
                    .into(),
            ),
            run: run.dir_name.clone(),
            plot: None,
        };
    }
    let rs = evidence;
    let holding: Vec<String> = rs
        .iter()
        .filter(|r| r.get("gap_max_ms").is_some_and(|g| g < 1000.0))
        .map(|r| format!("{} ({} ms)", r.label, fmt::value(r.get("gap_max_ms").unwrap_or(f64::NAN), "ms")))
        .collect();
    // Where the default interval fails, a shorter interval that passes on a recovery as long
    // says what it takes.
    let shorter: Vec<String> = of(run, "progress")
        .into_iter()
        .filter(|r| r.p_num("interval_ms").is_some_and(|i| i < DEFAULT_PROGRESS_INTERVAL_MS))
        .filter(long_enough)
        .filter(|r| r.get("gap_max_ms").is_some_and(|g| g < 1000.0))
        .map(|r| format!("{} ({} ms)", r.label, fmt::value(r.get("gap_max_ms").unwrap_or(f64::NAN), "ms")))
        .collect();
    let verdict = if holding.len() == rs.len() {
        Verdict::Holds
    } else if holding.is_empty() && shorter.is_empty() {
        Verdict::DoesNotHold
    } else if holding.is_empty() {
        Verdict::HoldsOnlyWhen(format!("--progress-interval is set below its 1 s default: {}", shorter.join("; ")))
    } else {
        Verdict::HoldsOnlyWhen(holding.join("; "))
    };
    let configs: Vec<String> = rs
        .iter()
        .map(|r| {
            format!(
                "{}: preset {}, {}, io {}, image io {}",
                r.label,
                fmt::rparam(r, "preset"),
                match fmt::rparam(r, "workers").as_str() {
                    "1" => "1 worker".to_string(),
                    w => format!("{w} workers"),
                },
                fmt::rparam(r, "io"),
                fmt::rparam(r, "image_io")
            )
        })
        .collect();
    let conditions = format!("{base}; {}; {}", configs.join("; "), machine(run));
    Claim { claim: CLAIM.into(), measured, conditions, verdict, run: run.dir_name.clone(), plot: None }
}

/// Markdown for a table cell.
fn md(s: &str) -> String {
    fmt::md_cell(s).replace('<', "&lt;")
}

/// `CLAIMS.md`.
pub(crate) fn render_claims_md(runs: &[Run], claims: &[Claim]) -> String {
    let mut out = String::new();
    out.push_str("# Claims\n\n");
    let names: Vec<String> = runs.iter().map(|r| format!("`{}`", r.dir_name.replace('`', ""))).collect();
    let _ = writeln!(
        out,
        "Generated by `fastrec lab --render` from results/runs/ ({} run(s){}{}); do not edit.\n",
        runs.len(),
        if names.is_empty() { "" } else { ": " },
        names.join(", ")
    );
    out.push_str(
        "Each claim of the source document is judged on the newest committed run that can measure it (newest by \
         `env.started`); scaling claims need a run with at least 8 CPUs (the 8x claim 16), and when an older run is \
         used the newest run's values are given beside it. Values are medians; ratios are against baselines measured in the same \
         run. The rules are in docs/LAB.md, \"Claims\".\n\n",
    );
    out.push_str("| claim | measured | conditions | verdict | run |\n|---|---|---|---|---|\n");
    for c in claims {
        let run = if c.run == "-" {
            "-".to_string()
        } else {
            let seg = fmt::url_segment(&c.run);
            let mut cell = format!("[`{}`](runs/{seg}/summary.md)", c.run.replace('`', ""));
            if let Some(p) = &c.plot {
                let _ = write!(cell, " · [plot](runs/{seg}/plots/{}.svg)", fmt::url_segment(p));
            }
            cell
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | **{}** | {} |",
            md(&c.claim),
            md(&c.measured),
            md(&c.conditions),
            md(&c.verdict.text()),
            run
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    fn run_of(cpus: usize, started: &str, records: Vec<Record>) -> Run {
        let mut e = env(cpus, "a94a590663e3aa", started);
        e.run = format!("{}-cpus{cpus}", &started[..10]);
        Run { dir_name: e.run.clone(), env: e, records }
    }

    fn claim<'a>(claims: &'a [Claim], prefix: &str) -> &'a Claim {
        claims.iter().find(|c| c.claim.starts_with(prefix)).expect("claim")
    }

    #[test]
    fn speedup_8_5_holds_and_3_1_does_not() {
        let claims = judge_claims(&[run_of(16, "2026-11-26T10:00:00Z", scaling(16, 8.5))]);
        let c = claim(&claims, "up to 8x");
        assert_eq!(c.verdict, Verdict::Holds);
        assert!(c.measured.starts_with("8.50x at 16 workers"), "{}", c.measured);
        assert_eq!(c.run, "2026-11-26-cpus16");

        let claims = judge_claims(&[run_of(16, "2026-11-26T10:00:00Z", scaling(16, 3.1))]);
        let c = claim(&claims, "up to 8x");
        assert_eq!(c.verdict, Verdict::DoesNotHold);
        assert!(c.measured.starts_with("3.10x at 16 workers"), "{}", c.measured);
        // efficiency falls well below 0.8
        assert_eq!(claim(&claims, "linear").verdict, Verdict::DoesNotHold);
    }

    #[test]
    fn linear_scaling_holds_at_full_efficiency() {
        let claims = judge_claims(&[run_of(8, "2026-11-26T10:00:00Z", scaling(8, 8.0))]);
        let c = claim(&claims, "linear");
        assert_eq!(c.verdict, Verdict::Holds, "{}", c.measured);
        assert!(c.measured.contains("cpu-bound: efficiency 1.000-1.000"), "{}", c.measured);
    }

    #[test]
    fn two_cpu_only_run_is_not_measurable() {
        let claims = judge_claims(&[run_of(2, "2026-11-26T10:00:00Z", scaling(2, 1.8))]);
        for (prefix, cpus) in [("up to 8x", 16), ("linear", 8), ("every measured point", 8)] {
            let c = claim(&claims, prefix);
            assert_eq!(c.verdict, Verdict::NotMeasurable(format!("needs >= {cpus} CPUs; this run had 2")));
            assert_eq!(c.run, "2026-11-26-cpus2");
        }
        assert!(claim(&claims, "up to 8x").measured.starts_with("1.80x at 2 workers"));
    }

    #[test]
    fn speedup_is_judged_on_the_physical_preset_with_its_bounds() {
        let mut records = scaling(16, 5.0);
        // cpu-bound would pass; the claim is judged on physical alone
        for r in records.iter_mut().filter(|r| r.p_str("preset") == Some("cpu-bound")) {
            let w = r.p_num("workers").unwrap_or(1.0);
            r.metric("speedup", if w == 16.0 { 9.0 } else { 1.0 }, "x");
        }
        let claims = judge_claims(&[run_of(16, "2026-11-26T10:00:00Z", records.clone())]);
        let c = claim(&claims, "up to 8x");
        assert_eq!(c.verdict, Verdict::DoesNotHold);
        assert_eq!(
            c.measured,
            "5.00x at 16 workers; whole-recovery bound 5.56x at 16 workers, 12.0x with any number of workers; \
             replay-only bound 5.40x (8x is beyond the bound at 16 workers)"
        );
        assert!(c.conditions.contains("`physical` preset"), "{}", c.conditions);
        assert!(c.conditions.contains("8x needs >= 16 CPUs"), "{}", c.conditions);
        assert_eq!(c.plot.as_deref(), Some("scaling-speedup"));

        // beyond the bound with any number of workers
        for r in records.iter_mut().filter(|r| r.p_str("preset") == Some("physical")) {
            if r.p_num("workers").is_some_and(|w| w > 1.0) {
                r.metric("whole_bound_any", 7.5, "x");
            }
        }
        let claims = judge_claims(&[run_of(16, "2026-11-26T10:00:00Z", records)]);
        let c = claim(&claims, "up to 8x");
        assert!(
            c.measured.ends_with("(8x is beyond this workload's bound with any number of workers)"),
            "{}",
            c.measured
        );

        // 8 CPUs: enough for the other scaling claims, not for 8x
        let claims = judge_claims(&[run_of(8, "2026-11-26T10:00:00Z", scaling(8, 8.0))]);
        assert_eq!(
            claim(&claims, "up to 8x").verdict,
            Verdict::NotMeasurable("needs >= 16 CPUs; this run had 8".into())
        );
        assert_eq!(claim(&claims, "linear").verdict, Verdict::Holds);
    }

    #[test]
    fn runs_without_the_physical_preset_leave_the_speedup_claim_open() {
        let runs = [run_of(16, "2026-11-26T10:00:00Z", scaling_before_whole(16, 2.2))];
        let claims = judge_claims(&runs);
        let c = claim(&claims, "up to 8x");
        assert_eq!(
            c.verdict,
            Verdict::NotMeasurable(
                "no committed run measured scaling of the `physical` preset; needs a run with >= 16 CPUs".into()
            )
        );
        assert!(
            c.measured.starts_with("not measured on `physical`; `cpu-bound` (a fifth of the writes COPY records")
                && c.measured.ends_with("measured 2.20x at 16 workers; replay-only bound 5.40x"),
            "{}",
            c.measured
        );
        assert_eq!(c.run, "2026-11-26-cpus16");
        // and no whole-recovery bound to be within
        let c = claim(&claims, "every measured point");
        assert!(matches!(c.verdict, Verdict::NotMeasurable(_)), "{:?}", c.verdict);
        assert_eq!(c.run, "-");
        // the linear claim names the preset the run lacks
        let c = claim(&claims, "linear");
        assert!(c.conditions.contains("`physical` not measured in this run"), "{}", c.conditions);
    }

    #[test]
    fn measured_points_within_the_whole_bound() {
        // every point at 0.9 of its bound
        let claims = judge_claims(&[run_of(16, "2026-11-26T10:00:00Z", scaling(16, 5.0))]);
        let c = claim(&claims, "every measured point");
        assert_eq!(c.verdict, Verdict::Holds, "{}", c.measured);
        assert!(
            c.measured.starts_with("physical: 90.0%-90.0% of the bound (lowest 5.00x of 5.56x at 16 workers)"),
            "{}",
            c.measured
        );
        assert_eq!(c.plot.as_deref(), Some("scaling-speedup"));

        // cpu-bound falls to 0.5 of its bound at 16 workers; exactly 0.8 still counts
        let mut records = scaling(16, 5.0);
        for r in &mut records {
            let (w, b) = (r.p_num("workers").unwrap_or(1.0), r.get("whole_bound").unwrap_or(1.0));
            match r.p_str("preset") {
                Some("cpu-bound") if w == 16.0 => r.metric("speedup", b * 0.5, "x"),
                Some("memory-bound") if w > 1.0 => r.metric("speedup", b * 0.8, "x"),
                _ => {}
            }
        }
        let claims = judge_claims(&[run_of(16, "2026-11-26T10:00:00Z", records.clone())]);
        let c = claim(&claims, "every measured point");
        assert_eq!(c.verdict, Verdict::HoldsOnlyWhen("the workload is physical or memory-bound".into()));
        assert!(c.measured.contains("cpu-bound: 50.0%-90.0% of the bound (lowest 2.78x of 5.56x at 16 workers)"));

        for r in records.iter_mut().filter(|r| r.p_num("workers").is_some_and(|w| w > 1.0)) {
            let b = r.get("whole_bound").unwrap_or(1.0);
            r.metric("speedup", b * 0.7, "x");
        }
        let claims = judge_claims(&[run_of(16, "2026-11-26T10:00:00Z", records)]);
        assert_eq!(claim(&claims, "every measured point").verdict, Verdict::DoesNotHold);
    }

    #[test]
    fn older_run_with_enough_cpus_is_used_and_named() {
        let runs =
            [run_of(2, "2026-11-27T10:00:00Z", scaling(2, 1.8)), run_of(16, "2026-11-25T10:00:00Z", scaling(16, 8.5))];
        let claims = judge_claims(&runs);
        let c = claim(&claims, "up to 8x");
        assert_eq!(c.verdict, Verdict::Holds);
        assert_eq!(c.run, "2026-11-25-cpus16");
        assert!(c.conditions.contains("the newest run with scaling, 2026-11-27-cpus2, had 2 CPUs"), "{}", c.conditions);
        assert!(c.conditions.contains("it measured 1.80x at 2 workers"), "{}", c.conditions);
        // input order does not matter
        let reversed = [runs[1].clone(), runs[0].clone()];
        assert_eq!(judge_claims(&reversed), claims);
    }

    #[test]
    fn mmap_in_some_cells_holds_only_there() {
        let claims = judge_claims(&[run_of(2, "2026-11-26T10:00:00Z", io(&[3.5, 1.2, 1.0, 1.0]))]);
        let c = claim(&claims, "3-5x");
        match &c.verdict {
            Verdict::HoldsOnlyWhen(w) => {
                assert_eq!(w, "scan, warm cache (3.50x)");
            }
            other => panic!("expected holds only when, got {other:?}"),
        }
        assert!(c.measured.starts_with("1.00x-3.50x over 4 cell(s)"), "{}", c.measured);
        assert!(c.measured.contains("scan, cold cache 1.20x"), "{}", c.measured);

        let all = judge_claims(&[run_of(2, "2026-11-26T10:00:00Z", io(&[3.5, 3.2, 4.0, 3.0]))]);
        assert_eq!(claim(&all, "3-5x").verdict, Verdict::Holds);
        let none = judge_claims(&[run_of(2, "2026-11-26T10:00:00Z", io(&[1.5, 1.2, 1.0, 1.0]))]);
        assert_eq!(claim(&none, "3-5x").verdict, Verdict::DoesNotHold);
    }

    #[test]
    fn checkpoint_default_cadence_of_an_older_shape() {
        // Checkpoints as image snapshots: after 94.3% / 99.3%; before at 3000: 1 - 0.1625 =
        // 83.8% / 88.8%, in scope, but recovery took 1.25x the time without: saved nothing.
        let claims = judge_claims(&[run_of(2, "2026-11-26T10:00:00Z", checkpoint())]);
        let c = claim(&claims, "80-95%");
        assert_eq!(c.verdict, Verdict::DoesNotHold, "{}", c.measured);
        assert!(c.measured.contains("crash after: 94.3% of journal bytes"), "{}", c.measured);
        assert!(c.measured.contains("time ratio 1.25x"), "{}", c.measured);
        assert!(c.measured.contains("recovery got slower with checkpoints (crash after, before)"), "{}", c.measured);
        assert!(c.conditions.contains("every 3,000 transactions"));
        assert_eq!(c.plot.as_deref(), Some("checkpoint"));

        // not slower: judged on scope as before
        let mut faster = checkpoint();
        for r in &mut faster {
            r.metric("time_ratio", 0.8, "x");
        }
        let claims = judge_claims(&[run_of(2, "2026-11-26T10:00:00Z", faster.clone())]);
        assert_eq!(claim(&claims, "80-95%").verdict, Verdict::Holds);

        // a record marked as the default cadence wins over every_txns == 3000
        for r in &mut faster {
            if r.p_num("every_txns") == Some(12000.0) {
                r.params.insert("default_cadence".into(), true.into());
            }
        }
        let claims = judge_claims(&[run_of(2, "2026-11-26T10:00:00Z", faster)]);
        let c = claim(&claims, "80-95%");
        assert_eq!(c.verdict, Verdict::HoldsOnlyWhen("the crash comes after a checkpoint".into()), "{}", c.measured);
        assert!(c.conditions.contains("every 12,000 transactions"));
    }

    #[test]
    fn checkpoint_records_hold_on_scope_and_time() {
        // worst case at the default cadence: 87.5% / 88.75% skipped, 0.15x the time, warm and cold
        let claims = judge_claims(&[run_of(2, "2026-11-26T10:00:00Z", checkpoint_records(0.15))]);
        let c = claim(&claims, "80-95%");
        assert_eq!(c.verdict, Verdict::Holds, "{}", c.measured);
        assert!(
            c.measured.starts_with(
                "crash after, warm cache: 99.8% of journal bytes and 99.8% of records skipped, time ratio 0.0500x \
                 (5.00 ms with, 100 ms without)"
            ),
            "{}",
            c.measured
        );
        assert!(
            c.measured.contains(
                "crash before, cold cache: 87.5% of journal bytes and 88.8% of records skipped, time ratio 0.15x \
                 (60.0 ms with, 400 ms without)"
            ),
            "{}",
            c.measured
        );
        assert!(
            c.measured.ends_with("finding and reading the checkpoint record took 0.0800-0.310 ms"),
            "{}",
            c.measured
        );
        assert!(c.conditions.contains("every 3,000 transactions"), "{}", c.conditions);
        assert!(c.conditions.contains("<= 0.2x the time without"), "{}", c.conditions);
        assert_eq!(c.plot.as_deref(), Some("checkpoint"));

        // exactly at the limits
        let edge = judge_claims(&[run_of(2, "2026-11-26T10:00:00Z", checkpoint_records(0.2))]);
        assert_eq!(claim(&edge, "80-95%").verdict, Verdict::Holds);
    }

    #[test]
    fn checkpoint_records_with_scope_but_not_time_do_not_hold() {
        let claims = judge_claims(&[run_of(2, "2026-11-26T10:00:00Z", checkpoint_records(0.5))]);
        let c = claim(&claims, "80-95%");
        assert_eq!(c.verdict, Verdict::DoesNotHold, "{}", c.measured);
        assert!(
            c.measured.starts_with(
                "crash before, warm cache: 87.5% less scope but only 50.0% less time (the flush of the blocks not \
                 home, which no start point avoids, alone takes 0.25x the time without); crash before, cold cache: \
                 87.5% less scope but only 50.0% less time (the flush of the blocks not home, which no start point \
                 avoids, alone takes 0.25x the time without). "
            ),
            "{}",
            c.measured
        );

        // only one cache state too slow is enough
        let mut records = checkpoint_records(0.15);
        for r in &mut records {
            if r.label == "every-3000-before cold" {
                r.metric("time_ratio", 0.3, "x");
            }
        }
        let claims = judge_claims(&[run_of(2, "2026-11-26T10:00:00Z", records)]);
        let c = claim(&claims, "80-95%");
        assert_eq!(c.verdict, Verdict::DoesNotHold);
        assert!(
            c.measured.starts_with(
                "crash before, cold cache: 87.5% less scope but only 70.0% less time (the flush of the blocks not \
                 home, which no start point avoids, alone takes 0.0750x the time without). "
            ),
            "{}",
            c.measured
        );
    }

    #[test]
    fn checkpoint_records_slower_than_without_do_not_hold() {
        let claims = judge_claims(&[run_of(2, "2026-11-26T10:00:00Z", checkpoint_records(1.5))]);
        let c = claim(&claims, "80-95%");
        assert_eq!(c.verdict, Verdict::DoesNotHold, "{}", c.measured);
        assert!(
            c.measured.starts_with(
                "crash before, warm cache: 87.5% less scope but recovery got slower (1.50x the time without)"
            ),
            "{}",
            c.measured
        );
    }

    #[test]
    fn checkpoint_records_short_of_scope_or_cold_do_not_hold() {
        let mut records = checkpoint_records(0.1);
        for r in &mut records {
            if r.label.starts_with("every-3000-before") {
                r.metric("bytes_skipped", 0.7, "fraction");
            }
        }
        let claims = judge_claims(&[run_of(2, "2026-11-26T10:00:00Z", records)]);
        let c = claim(&claims, "80-95%");
        assert_eq!(c.verdict, Verdict::DoesNotHold);
        assert!(c.measured.starts_with("crash before, warm cache: only 70.0% less scope"), "{}", c.measured);

        // without the cold worst case it cannot hold
        let mut warm_only = checkpoint_records(0.1);
        warm_only.retain(|r| r.label != "every-3000-before cold");
        let claims = judge_claims(&[run_of(2, "2026-11-26T10:00:00Z", warm_only)]);
        assert!(matches!(claim(&claims, "80-95%").verdict, Verdict::NotMeasurable(_)));
    }

    #[test]
    fn checkpoint_records_win_over_a_newer_run_of_the_older_shape() {
        let runs = [
            run_of(2, "2026-11-27T10:00:00Z", checkpoint()),
            run_of(16, "2026-11-25T10:00:00Z", checkpoint_records(0.15)),
        ];
        let c = claim(&judge_claims(&runs), "80-95%").clone();
        assert_eq!(c.run, "2026-11-25-cpus16");
        assert_eq!(c.verdict, Verdict::Holds);
    }

    #[test]
    fn finding_the_checkpoint() {
        let find = |us: [f64; 3]| {
            let claims = judge_claims(&[run_of(2, "2026-11-26T10:00:00Z", checkpoint_find_records(us))]);
            claim(&claims, "finding the checkpoint").clone()
        };
        let c = find([12.0, 13.5, 16.0]);
        assert_eq!(c.verdict, Verdict::Holds, "{}", c.measured);
        assert_eq!(
            c.measured,
            "1 record: 12.0 us; 64 records: 13.5 us; 1,024 records: 16.0 us (1,024 records take 1.33x the time of 1)"
        );
        assert_eq!(c.run, "2026-11-26-cpus2");
        // grows more than 2x with the records retained
        assert_eq!(find([12.0, 40.0, 30.0]).verdict, Verdict::DoesNotHold);
        // exactly 2x is within
        assert_eq!(find([12.0, 20.0, 24.0]).verdict, Verdict::Holds);
        // a millisecond or more
        assert_eq!(find([900.0, 950.0, 1000.0]).verdict, Verdict::DoesNotHold);
        // not measured
        let none = judge_claims(&[run_of(2, "2026-11-26T10:00:00Z", checkpoint())]);
        assert!(matches!(claim(&none, "finding the checkpoint").verdict, Verdict::NotMeasurable(_)));
    }

    #[test]
    fn progress_gaps() {
        let ok = judge_claims(&[run_of(2, "2026-11-26T10:00:00Z", progress(812.0, 905.0))]);
        let c = claim(&ok, "sub-second");
        assert_eq!(c.verdict, Verdict::Holds);
        // Both are shown; only the recovery lasting several intervals is evidence.
        assert!(c.measured.contains("fast 1000ms: longest gap 812 ms"), "{}", c.measured);
        assert!(c.measured.contains("slow 1000ms: longest gap 905 ms"), "{}", c.measured);
        let slow = judge_claims(&[run_of(2, "2026-11-26T10:00:00Z", progress(200.0, 1300.0))]);
        assert_eq!(
            claim(&slow, "sub-second").verdict,
            Verdict::HoldsOnlyWhen("--progress-interval is set below its 1 s default: slow 100ms (130 ms)".into()),
            "a short fast run proves nothing; the slow run at 100 ms does"
        );
        let mut none = progress(200.0, 1300.0);
        none.retain(|r| r.p_num("interval_ms") != Some(100.0));
        let none = judge_claims(&[run_of(2, "2026-11-26T10:00:00Z", none)]);
        assert_eq!(claim(&none, "sub-second").verdict, Verdict::DoesNotHold);
        let mut short = progress(200.0, 300.0);
        for r in &mut short {
            r.metric("time_ms", 500.0, "ms");
        }
        let short = judge_claims(&[run_of(2, "2026-11-26T10:00:00Z", short)]);
        assert!(matches!(claim(&short, "sub-second").verdict, Verdict::NotMeasurable(_)));
    }

    #[test]
    fn mmap_cells_of_several_record_sizes_are_named_with_the_size() {
        let mut records = io_sized("256B", &[1.3, 1.5, 1.2, 1.1]);
        records.extend(io_sized("4K", &[3.2, 1.6, 1.4, 1.2]));
        let claims = judge_claims(&[run_of(2, "2026-11-26T10:00:00Z", records)]);
        let c = claim(&claims, "3-5x");
        assert_eq!(c.verdict, Verdict::HoldsOnlyWhen("scan, warm cache, 4K records (3.20x)".into()));
        assert!(
            c.measured.starts_with("1.10x-3.20x over 8 cell(s): scan, warm cache, 256B records 1.30x"),
            "{}",
            c.measured
        );
    }

    fn jbd2_records(warm: f64, cold: f64) -> Vec<Record> {
        let mut out = Vec::new();
        for (cache, ratio) in [("warm", warm), ("cold", cold)] {
            for w in [1usize, 2] {
                let mut r = Record::new("jbd2", &format!("fastrec w={w} {cache}"), 1)
                    .param("workers", w)
                    .param("journal_mib", 128);
                r.cache = crate::record::Cache { state: cache.into(), resident_min: None, resident_max: None };
                // One worker is always slower; only the most workers are judged.
                let v = if w == 2 { ratio } else { 1.0 };
                r.metric("vs_e2fsck", v, "x");
                r.metric("time_ms", 100.0 / v, "ms");
                r.metric("e2fsck_ms", 100.0, "ms");
                r.metric("e2fsck_over_floor", if cache == "cold" { 2.0 } else { 9.0 }, "x");
                out.push(r);
            }
        }
        out
    }

    #[test]
    fn jbd2_claim_needs_5x_warm_and_cold_with_the_most_workers() {
        let verdict = |warm, cold| {
            let claims = judge_claims(&[run_of(2, "2026-11-26T10:00:00Z", jbd2_records(warm, cold))]);
            claim(&claims, "ext4 (jbd2)").verdict.clone()
        };
        assert_eq!(verdict(6.0, 5.0), Verdict::Holds);
        assert_eq!(verdict(6.0, 4.9), Verdict::DoesNotHold);
        assert_eq!(verdict(2.2, 1.4), Verdict::DoesNotHold);
        let mut warm_only = jbd2_records(6.0, 6.0);
        warm_only.retain(|r| r.cache.state == "warm");
        let claims = judge_claims(&[run_of(2, "2026-11-26T10:00:00Z", warm_only)]);
        assert!(matches!(claim(&claims, "ext4 (jbd2)").verdict, Verdict::NotMeasurable(_)));
        let c =
            claim(&judge_claims(&[run_of(2, "2026-11-26T10:00:00Z", jbd2_records(2.2, 1.4))]), "ext4 (jbd2)").clone();
        assert!(c.measured.contains("warm, 2 workers: 2.20x (45.5 ms, e2fsck 100 ms)"), "{}", c.measured);
        assert!(
            c.measured.ends_with("leaves at most cold 2.00x over e2fsck: no replayer reaches 5x there on this disk"),
            "{}",
            c.measured
        );
    }

    #[test]
    fn nothing_measured() {
        let claims = judge_claims(&[]);
        assert_eq!(claims.len(), 8);
        for c in &claims {
            assert!(matches!(c.verdict, Verdict::NotMeasurable(_)), "{c:?}");
            assert_eq!(c.run, "-");
        }
    }

    #[test]
    fn claims_md() {
        let (old, new) = two_runs();
        let runs = vec![new, old];
        let md = render_claims_md(&runs, &judge_claims(&runs));
        assert!(md.starts_with("# Claims\n\nGenerated by `fastrec lab --render` from results/runs/ (2 run(s): "));
        assert!(md.contains("do not edit"));
        assert!(md.contains("| claim | measured | conditions | verdict | run |"));
        assert_eq!(md.lines().filter(|l| l.starts_with("| ") && !l.starts_with("| claim")).count(), 8);
        assert!(
            md.contains(
                "[`2026-11-26-test2-70888f6`](runs/2026-11-26-test2-70888f6/summary.md) · \
                 [plot](runs/2026-11-26-test2-70888f6/plots/checkpoint.svg)"
            ),
            "{md}"
        );
        assert!(md.contains("[`2026-11-25-test16-a94a590`](runs/2026-11-25-test16-a94a590/summary.md)"));
        assert!(md.contains("**holds only when scan, warm cache (3.50x)**"), "{md}");
    }
}
