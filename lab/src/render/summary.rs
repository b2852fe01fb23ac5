//! `summary.md`: the run's provenance, then one table per experiment (every record: label, key
//! parameters, cache state with residency, samples, metrics with units) and its plots.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::plots::Plot;
use super::{checkpoint_record_of_current_shape, experiments_present, fmt, of, CHECKPOINT_FIND, EXPERIMENTS};
use crate::record::{Env, Record};

/// What each experiment does, in one sentence (docs/LAB.md); `records` are the experiment's
/// (checkpoint records of the current shape are described as what they measure now).
pub(crate) fn describe(experiment: &str, records: &[&Record]) -> &'static str {
    match experiment {
        "checkpoint" if records.iter().any(|r| checkpoint_record_of_current_shape(r)) => {
            "The `default` preset with checkpoint records (dirty block table, open transactions, redo start) every \
             N transactions, the crash just after a checkpoint or just before the next one is due (the worst \
             case); the same crash image recovered with checkpoints (from the newest record's redo start) and \
             without (the whole journal), taking turns, warm and cold. Distance is the journal written after the \
             newest checkpoint record; writer extra blocks are blocks the writer wrote back beyond what the same \
             writer writes without checkpoints. The flush floor is the flush phase with checkpoints (writing back \
             the committed blocks that were not home at the crash, the fdatasync and the marker: the same work \
             both ways, which no start point avoids) over the time without: no checkpoint cadence can bring the \
             ratio below it on that crash image."
        }
        "checkpoint-find" => {
            "The time to find and read the newest checkpoint record in a directory holding 1, 64 or 1,024 of \
             them (median of repeated finds)."
        }
        "scaling" if records.iter().any(|r| r.metrics.contains_key("whole_bound")) => {
            "Recovery of the `physical` (per-record work, no cross-block dependency), `cpu-bound` and \
             `memory-bound` presets with 1, 2, 4, ... workers (rayon executor, warm cache, configurations \
             interleaved); speedup is the same run's 1-worker median over this median, efficiency is speedup / \
             workers. `whole_bound` is the whole recovery's work over its floor with these workers (every phase \
             counted: the ceiling on the speedup), `whole_bound_any` its work over span (no number of workers \
             does better); `bound` is the replay dependency graph's work / span for these partitions (replay \
             alone)."
        }
        "scaling" => {
            "Recovery of the `cpu-bound` and `memory-bound` presets with 1, 2, 4, ... workers (rayon executor, warm \
             cache, configurations interleaved); speedup is the same run's 1-worker median over this median, \
             efficiency is speedup / workers, bound is the replay graph's work / span for these partitions."
        }
        "deps" => {
            "The `cpu-bound` preset with a share of its writes COPY records (dependency density, `deps_rate`) from \
             0 to 0.4, same seed, recovered with 1 worker and with every CPU, taking turns (rayon executor, warm \
             cache); speedup is the 1-worker median of the same density over this median. `whole_bound` is the \
             whole recovery's work over its floor with these workers (the ceiling), `bound` the replay dependency \
             graph's work / span alone, `cross_worker_copies` the copies whose source another worker owns."
        }
        "io" => {
            "The journal read backends on one journal, as a scan only and as a whole recovery, warm and cold; \
             `vs_read` is the best read(2)-family backend's median (read, pread) in the same cache state and \
             consumer over this one."
        }
        "checkpoint" => {
            "The `default` preset with checkpoints every N transactions, the crash just after or just before a \
             checkpoint, the same crash image recovered with and without them (taking turns); `time_ratio` is \
             with / without."
        }
        "progress" => {
            "A recovery observed at a progress interval against the same recovery without an observer, \
             interleaved; `overhead` is this median over the no-observer median, gaps are between consecutive \
             callbacks (phase events included)."
        }
        "latency" => "The report's latency distributions of one recovery of the `default` preset.",
        "bandwidth" => {
            "Recovery throughput of the `default` preset over the same run's memcpy bandwidth with as many \
             threads as workers."
        }
        "jbd2" => {
            "An ext4 image (mkfs.ext4) whose journal debugfs filled with transactions (checksums v3), recovered \
             by `e2fsck -y -E journal_only` and by fastrec (`recover --format jbd2`) taking turns from the same \
             crash image, restored in between; both include their final flush to disk. Each cache state starts \
             with one untimed recovery by each, whose recovered blocks must be equal. `vs_e2fsck` is e2fsck's \
             median over fastrec's; `baseline` samples are e2fsck's. `floor_ms` is writing the recovered \
             blocks, already in memory, once each and the `fdatasync`, timed in the same turns: no replayer \
             can be faster, so `e2fsck_over_floor` is the most any could gain over e2fsck on this disk. \
             `speedup` is over fastrec with one worker."
        }
        _ => "An experiment this renderer does not know; its records are listed as they are.",
    }
}

/// Documented parameter keys, in the order the tables show them.
fn param_order(experiment: &str) -> &'static [&'static str] {
    match experiment {
        "scaling" => &["preset", "workers", "executor", "txns", "journal_bytes"],
        "deps" => &["preset", "deps_rate", "workers", "executor", "txns", "journal_bytes"],
        "io" => &["config", "backend", "buffer_bytes", "consumer", "record", "journal_bytes", "resolved"],
        "checkpoint" => &["every_txns", "crash", "txns", "default_cadence"],
        "progress" => &["preset", "shape", "interval_ms", "workers", "io", "image_io"],
        "latency" => &["preset", "workers", "batch_ops"],
        "bandwidth" => &["preset", "workers", "journal_bytes"],
        "jbd2" => &["workers", "journal_mib", "csum"],
        _ => &[],
    }
}

/// Documented metric names, in the order the tables show them.
fn metric_order(experiment: &str) -> &'static [&'static str] {
    match experiment {
        "scaling" => &[
            "time_ms",
            "throughput_mb_s",
            "speedup",
            "efficiency",
            "whole_bound",
            "whole_bound_any",
            "bound",
            "scan_ms",
            "replay_ms",
        ],
        "deps" => &["time_ms", "speedup", "whole_bound", "whole_bound_any", "bound", "cross_worker_copies"],
        "io" => &["time_ms", "throughput_mb_s", "vs_read"],
        "checkpoint" => {
            &["time_with_ms", "time_without_ms", "time_ratio", "bytes_skipped", "records_skipped", "chain_len"]
        }
        "progress" => &["time_ms", "overhead", "updates", "gap_max_ms", "gap_p50_ms"],
        "latency" => &[
            "batch_apply_p50_us",
            "batch_apply_p99_us",
            "batch_apply_p999_us",
            "batch_apply_max_us",
            "segment_read_p50_us",
            "segment_read_p99_us",
            "segment_read_p999_us",
            "segment_read_max_us",
            "batch_apply_count",
            "segment_read_count",
        ],
        "bandwidth" => &["time_ms", "throughput_mb_s", "of_memcpy"],
        "jbd2" => &[
            "time_ms",
            "e2fsck_ms",
            "vs_e2fsck",
            "floor_ms",
            "e2fsck_over_floor",
            "speedup",
            "throughput_mb_s",
            "read_ms",
            "write_ms",
            "finish_ms",
        ],
        _ => &[],
    }
}

/// Keys in `documented` order first, then the rest by name.
fn ordered_keys<'a>(documented: &[&str], present: impl Iterator<Item = &'a String>) -> Vec<String> {
    let present: BTreeSet<&String> = present.collect();
    let mut keys: Vec<String> =
        documented.iter().filter(|k| present.iter().any(|p| p.as_str() == **k)).map(|k| k.to_string()).collect();
    keys.extend(present.into_iter().filter(|p| !documented.contains(&p.as_str())).cloned());
    keys
}

/// The provenance rows of a run, shared with the report page: (field, value).
pub(crate) fn provenance(env: &Env) -> Vec<(&'static str, String)> {
    let memory = fmt::bytes(env.memory_bytes as f64);
    vec![
        ("run", env.run.clone()),
        ("mode", env.mode.clone()),
        ("started", format!("{} (UTC)", env.started)),
        ("duration", fmt::duration(env.duration_s)),
        (
            "machine",
            format!(
                "{}, {} CPUs, {} NUMA node(s), {memory} memory, host {}",
                env.cpu_model, env.cpus, env.numa_nodes, env.host
            ),
        ),
        ("kernel", env.kernel.clone()),
        ("rustc", env.rustc.clone()),
        ("git", format!("{} (dirty: {})", env.git_sha, env.git_dirty)),
        ("work dir", format!("{} ({})", env.work_dir, env.work_fs)),
        ("experiments", if env.experiments.is_empty() { "none".into() } else { env.experiments.join(", ") }),
    ]
}

/// Markdown text outside code spans: no raw HTML, no table breaks.
fn md_text(s: &str) -> String {
    fmt::md_cell(s).replace('<', "&lt;")
}

/// Markdown code span (for ids and paths), safe in a table cell.
fn md_code(s: &str) -> String {
    let s = s.replace(['\n', '\r'], " ").replace('|', "\\|");
    if s.contains('`') {
        format!("`` {s} ``")
    } else {
        format!("`{s}`")
    }
}

pub(crate) fn render_summary(env: &Env, records: &[Record], plots: &[Plot]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Lab run {}\n", md_code(&env.run));
    out.push_str(
        "Generated by `fastrec lab --render` from `env.json` and `raw.ndjson` in this directory; do not edit. \
         Metrics are medians over each record's samples (`samples_ms`, in the order taken); ratios compare with \
         baselines and ceilings measured in the same run. docs/LAB.md describes every field.\n\n",
    );
    out.push_str("| | |\n|---|---|\n");
    for (k, v) in provenance(env) {
        let v = match k {
            "run" => md_code(&env.run),
            "git" => format!("{} (dirty: {})", md_code(&env.git_sha), env.git_dirty),
            "work dir" => format!("{} ({})", md_code(&env.work_dir), md_text(&env.work_fs)),
            _ => md_text(&v),
        };
        let _ = writeln!(out, "| {k} | {v} |");
    }
    out.push('\n');
    if env.notes.is_empty() {
        out.push_str("Notes: none.\n");
    } else {
        out.push_str("Notes:\n\n");
        for n in &env.notes {
            let _ = writeln!(out, "- {}", md_text(n));
        }
    }

    let mut sections: Vec<String> = EXPERIMENTS.iter().map(|e| e.to_string()).collect();
    for e in experiments_present(records) {
        // shown with the checkpoint experiment's records
        if !sections.contains(&e) && e != CHECKPOINT_FIND {
            sections.push(e);
        }
    }
    for e in &sections {
        let _ = writeln!(out, "\n## {}\n", md_text(e));
        let rs = of(records, e);
        let find = if e == "checkpoint" { of(records, CHECKPOINT_FIND) } else { Vec::new() };
        if rs.is_empty() && find.is_empty() {
            if env.experiments.iter().any(|x| x == e) {
                out.push_str("Not run: the run lists it but wrote no records (see the notes).\n");
            } else {
                out.push_str("Not run in this run.\n");
            }
            continue;
        }
        let (current, other): (Vec<&Record>, Vec<&Record>) =
            rs.iter().copied().partition(|r| checkpoint_record_of_current_shape(r));
        if current.is_empty() {
            let _ = writeln!(out, "{}\n", describe(e, &rs));
            if !rs.is_empty() {
                table(&mut out, e, &rs);
            }
        } else {
            let _ = writeln!(out, "{}\n", describe(e, &current));
            checkpoint_tables(&mut out, &current);
            if !other.is_empty() {
                out.push_str("\nCheckpoint records of an older shape:\n\n");
                table(&mut out, e, &other);
            }
        }
        let mine: Vec<&Plot> = plots.iter().filter(|p| p.experiment == *e).collect();
        for p in mine {
            let _ = writeln!(out, "\n![{}](plots/{}.svg)", md_text(&p.title).replace(['[', ']'], ""), p.name);
        }
        if !find.is_empty() {
            find_table(&mut out, &find);
        }
    }
    out
}

/// A percentage of a fraction metric, one decimal, or `-`.
fn pct(r: &Record, metric: &str) -> String {
    r.get(metric).map(|v| fmt::fixed(v * 100.0, 1)).unwrap_or_else(|| "-".into())
}

/// A metric in its unit's format, or `-`.
fn val(r: &Record, metric: &str) -> String {
    r.metrics.get(metric).map(|m| fmt::value(m.value, &m.unit)).unwrap_or_else(|| "-".into())
}

/// Metrics of checkpoint records of the current shape shown in the first table.
const CHECKPOINT_MAIN: [&str; 12] = [
    "distance_bytes",
    "bytes_skipped",
    "records_skipped",
    "time_with_ms",
    "time_without_ms",
    "time_ratio",
    "floor_ratio",
    "blocks_written_with",
    "blocks_written_without",
    "find_ms",
    "writer_extra_blocks",
    "writer_checkpoint_ms",
];

/// Metrics of the second table, in this order; any other metric follows by name.
const CHECKPOINT_DETAIL: [&str; 6] = [
    "journal_bytes",
    "checkpoints_written",
    "redo_lag_records",
    "dirty_at_checkpoint",
    "writer_checkpoint_blocks",
    "writer_background_blocks",
];

/// Checkpoint records of the current shape: what recovery skipped and what it cost, then the
/// checkpoints and the writer in detail.
fn checkpoint_tables(out: &mut String, rs: &[&Record]) {
    out.push_str(
        "| cadence (txns) | crash | cache | n | distance (MiB) | journal bytes not read (%) | records not replayed \
         (%) | time with (ms) | time without (ms) | with / without (x) | flush floor (x) | blocks written with | \
         blocks written without | find (ms) | writer extra blocks | writer checkpoint (ms) |\n",
    );
    out.push_str("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in rs {
        let mut cadence = fmt::rparam(r, "every_txns");
        if r.params.get("default_cadence").and_then(|v| v.as_bool()) == Some(true) {
            cadence.push_str(" (default)");
        }
        let distance = r.get("distance_bytes").map(|b| fmt::sig3(b / (1024.0 * 1024.0))).unwrap_or_else(|| "-".into());
        let row = [
            md_text(&cadence),
            md_text(&fmt::rparam(r, "crash")),
            md_text(&fmt::cache(&r.cache)),
            r.samples_ms.len().to_string(),
            distance,
            pct(r, "bytes_skipped"),
            pct(r, "records_skipped"),
            val(r, "time_with_ms"),
            val(r, "time_without_ms"),
            val(r, "time_ratio"),
            val(r, "floor_ratio"),
            val(r, "blocks_written_with"),
            val(r, "blocks_written_without"),
            val(r, "find_ms"),
            val(r, "writer_extra_blocks"),
            val(r, "writer_checkpoint_ms"),
        ];
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }

    let mut metrics: Vec<String> = CHECKPOINT_DETAIL.iter().map(|m| m.to_string()).collect();
    let others = ordered_keys(&[], rs.iter().flat_map(|r| r.metrics.keys()));
    metrics.extend(
        others
            .into_iter()
            .filter(|m| !CHECKPOINT_MAIN.contains(&m.as_str()) && !CHECKPOINT_DETAIL.contains(&m.as_str())),
    );
    metrics.retain(|m| rs.iter().any(|r| r.metrics.contains_key(m)));
    let params = ordered_keys(&["txns", "style"], rs.iter().flat_map(|r| r.params.keys()))
        .into_iter()
        .filter(|p| !["every_txns", "crash", "default_cadence"].contains(&p.as_str()))
        .collect::<Vec<_>>();
    let seed_constant = constant(rs, |r| Some(r.seed)).flatten();
    let mut header: Vec<String> = vec!["label".into()];
    let mut align: Vec<&str> = vec!["---"];
    for p in &params {
        header.push(md_text(p));
        let numeric = rs.iter().all(|r| r.params.get(p).is_none_or(|v| v.is_number() || v.is_null()));
        align.push(if numeric { "---:" } else { "---" });
    }
    if seed_constant.is_none() {
        header.push("seed".into());
        align.push("---:");
    }
    header.push("samples with (ms)".into());
    header.push("samples without (ms)".into());
    align.extend(["---:", "---:"]);
    let units: Vec<String> = metrics
        .iter()
        .map(|m| rs.iter().find_map(|r| r.metrics.get(m).map(|x| x.unit.clone())).unwrap_or_default())
        .collect();
    for (m, u) in metrics.iter().zip(&units) {
        header.push(format!("{} ({})", md_text(m), md_text(u)));
        align.push("---:");
    }
    out.push_str("\nThe checkpoints and the writer, per record:\n\n");
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(out, "|{}|", align.join("|"));
    for r in rs {
        let mut row: Vec<String> = vec![md_text(&r.label)];
        for p in &params {
            row.push(md_text(&fmt::rparam(r, p)));
        }
        if seed_constant.is_none() {
            row.push(r.seed.to_string());
        }
        row.push(sample_range(&r.samples_ms));
        row.push(sample_range(&r.baseline_samples_ms));
        for (m, u) in metrics.iter().zip(&units) {
            row.push(match r.metrics.get(m) {
                Some(x) if x.unit == *u => fmt::value(x.value, &x.unit),
                Some(x) => format!("{} {}", fmt::value(x.value, &x.unit), md_text(&x.unit)),
                None => "-".into(),
            });
        }
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
    if let Some(seed) = seed_constant {
        let _ = writeln!(out, "\nSeed {seed}.");
    }
}

/// The checkpoint-find records: microseconds to find the newest of N records.
fn find_table(out: &mut String, rs: &[&Record]) {
    let _ = writeln!(out, "\n### {CHECKPOINT_FIND}\n\n{}\n", describe(CHECKPOINT_FIND, rs));
    out.push_str("| records in the directory | find (us) |\n|---:|---:|\n");
    let mut sorted: Vec<&Record> = rs.to_vec();
    sorted.sort_by(|a, b| a.p_num("records").unwrap_or(f64::MAX).total_cmp(&b.p_num("records").unwrap_or(f64::MAX)));
    for r in sorted {
        let _ = writeln!(out, "| {} | {} |", md_text(&fmt::rparam(r, "records")), val(r, "find_us"));
    }
}

/// The values of `f` over `rs`, if they are all the same.
fn constant<T: PartialEq + Clone>(rs: &[&Record], f: impl Fn(&Record) -> Option<T>) -> Option<Option<T>> {
    let first = f(rs.first()?);
    rs.iter().all(|r| f(r) == first).then_some(first)
}

fn table(out: &mut String, experiment: &str, rs: &[&Record]) {
    let params = ordered_keys(param_order(experiment), rs.iter().flat_map(|r| r.params.keys()));
    let metrics = ordered_keys(metric_order(experiment), rs.iter().flat_map(|r| r.metrics.keys()));
    let ceilings = ordered_keys(&[], rs.iter().flat_map(|r| r.ceilings.keys()));
    let (const_ceilings, varying_ceilings): (Vec<String>, Vec<String>) = ceilings
        .into_iter()
        .partition(|c| constant(rs, |r| r.ceilings.get(c).map(|m| (m.value.to_bits(), m.unit.clone()))).is_some());
    let seed_constant = constant(rs, |r| Some(r.seed)).flatten();
    let has_samples = rs.iter().any(|r| !r.samples_ms.is_empty());

    let unit_of =
        |pick: &dyn Fn(&Record) -> Option<String>| -> String { rs.iter().find_map(|r| pick(r)).unwrap_or_default() };

    let mut header: Vec<String> = vec!["label".into()];
    let mut align: Vec<&str> = vec!["---"];
    for p in &params {
        header.push(md_text(p));
        let numeric = rs.iter().all(|r| r.params.get(p).is_none_or(|v| v.is_number() || v.is_null()));
        align.push(if numeric { "---:" } else { "---" });
    }
    if seed_constant.is_none() {
        header.push("seed".into());
        align.push("---:");
    }
    header.push("cache".into());
    align.push("---");
    if has_samples {
        header.push("n".into());
        align.push("---:");
        header.push("samples (ms)".into());
        align.push("---:");
    }
    let metric_units: Vec<String> =
        metrics.iter().map(|m| unit_of(&|r: &Record| r.metrics.get(m).map(|x| x.unit.clone()))).collect();
    for (m, u) in metrics.iter().zip(&metric_units) {
        header.push(format!("{} ({})", md_text(m), md_text(u)));
        align.push("---:");
    }
    let ceiling_units: Vec<String> =
        varying_ceilings.iter().map(|c| unit_of(&|r: &Record| r.ceilings.get(c).map(|x| x.unit.clone()))).collect();
    for (c, u) in varying_ceilings.iter().zip(&ceiling_units) {
        header.push(format!("ceiling {} ({})", md_text(c), md_text(u)));
        align.push("---:");
    }
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(out, "|{}|", align.join("|"));

    for r in rs {
        let mut row: Vec<String> = vec![md_text(&r.label)];
        for p in &params {
            row.push(md_text(&fmt::rparam(r, p)));
        }
        if seed_constant.is_none() {
            row.push(r.seed.to_string());
        }
        row.push(md_text(&fmt::cache(&r.cache)));
        if has_samples {
            row.push(r.samples_ms.len().to_string());
            row.push(sample_range(&r.samples_ms));
        }
        for (m, u) in metrics.iter().zip(&metric_units) {
            row.push(match r.metrics.get(m) {
                Some(x) if x.unit == *u => fmt::value(x.value, &x.unit),
                Some(x) => format!("{} {}", fmt::value(x.value, &x.unit), md_text(&x.unit)),
                None => "-".into(),
            });
        }
        for (c, u) in varying_ceilings.iter().zip(&ceiling_units) {
            row.push(match r.ceilings.get(c) {
                Some(x) if x.unit == *u => fmt::value(x.value, &x.unit),
                Some(x) => format!("{} {}", fmt::value(x.value, &x.unit), md_text(&x.unit)),
                None => "-".into(),
            });
        }
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }

    let mut facts = Vec::new();
    if let Some(seed) = seed_constant {
        facts.push(format!("seed {seed}"));
    }
    if !const_ceilings.is_empty() {
        let list: Vec<String> = const_ceilings
            .iter()
            .filter_map(|c| {
                let m = rs.first()?.ceilings.get(c)?;
                Some(format!("`{}` {} {}", c.replace('`', ""), fmt::value(m.value, &m.unit), md_text(&m.unit)))
            })
            .collect();
        facts.push(format!("same-run ceilings: {}", list.join(", ")));
    }
    if !facts.is_empty() {
        let _ = writeln!(out, "\n{}.", capitalize(&facts.join("; ")));
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// `448-452`, the lowest and highest sample, or `-`.
fn sample_range(samples: &[f64]) -> String {
    let finite: Vec<f64> = samples.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.is_empty() {
        return "-".into();
    }
    let lo = finite.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if fmt::sig3(lo) == fmt::sig3(hi) {
        fmt::sig3(lo)
    } else {
        format!("{}-{}", fmt::sig3(lo), fmt::sig3(hi))
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::plots::render_plots;
    use super::*;

    fn summary() -> String {
        let (env, records) = full_run(16, "a94a590663e3aa");
        let plots = render_plots(&env, &records).expect("plots");
        render_summary(&env, &records, &plots)
    }

    #[test]
    fn has_provenance_tables_and_plot_links() {
        let s = summary();
        for needle in [
            "# Lab run `2026-11-26-test16-a94a590`",
            "| machine | Intel(R) Xeon(R) Processor @ 2.10GHz, 16 CPUs, 1 NUMA node(s), 16 GiB memory, host test16 |",
            "| git | `a94a590663e3aa",
            "(dirty: false)",
            "| duration | 3 min 12 s |",
            "- synthetic &lt;fixture> & test",
            "## scaling",
            "| label | preset | workers | executor | txns | journal_bytes | cache | n | samples (ms) | time_ms (ms) |",
            "| cpu-bound w=16 | cpu-bound | 16 | rayon | 24,000 | 124 MiB | warm (resident 1.000) | 3 |",
            "| mmap scan warm 4K | mmap | mmap | - | scan | 4K | 16 MiB | mmap | warm (resident 1.000) |",
            "| every 3000 before | 3,000 | before | 24,000 |",
            "![Scaling: speedup over the same run's 1-worker median, under the whole-recovery bound]\
             (plots/scaling-speedup.svg)",
            "| speedup (x) | efficiency (fraction) | whole_bound (x) | whole_bound_any (x) | bound (x) | scan_ms (ms) |",
            "| physical w=16 | physical | 16 | rayon | 24,000 | 120 MiB | warm (resident 1.000) | 3 |",
            "## deps",
            "| label | preset | deps_rate | workers | executor | txns | journal_bytes | cache | n | samples (ms) | \
             time_ms (ms) | speedup (x) | whole_bound (x) | whole_bound_any (x) | bound (x) | cross_worker_copies \
             (count) |",
            "| deps=0.05 w=16 | cpu-bound | 0.0500 | 16 | rayon | 50,000 | 39.1 MiB | warm (resident 1.000) | 3 |",
            "(plots/deps.svg)",
            "cold (resident 0.000-0.013)",
            "ceiling seq_read_gb_s (GB/s)",
            "Seed 1; same-run ceilings: `memcpy_1t_gb_s` 9.91 GB/s",
            "![I/O backends",
            "(plots/io.svg)",
            "(plots/checkpoint.svg)",
            "(plots/latency.svg)",
            "(plots/bandwidth.svg)",
            "| batch_apply_p50_us (us) |",
        ] {
            assert!(s.contains(needle), "summary lacks {needle:?}\n{s}");
        }
        // one section per experiment, in order
        let pos: Vec<usize> = EXPERIMENTS.iter().map(|e| s.find(&format!("\n## {e}\n")).expect("section")).collect();
        assert!(pos.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn checkpoint_records_get_their_own_tables() {
        let (env, records) = full_run_current(16, "a94a590663e3aa");
        let plots = render_plots(&env, &records).expect("plots");
        let s = render_summary(&env, &records, &plots);
        for needle in [
            "The `default` preset with checkpoint records (dirty block table",
            "| cadence (txns) | crash | cache | n | distance (MiB) | journal bytes not read (%) | records not replayed \
             (%) | time with (ms) | time without (ms) | with / without (x) | flush floor (x) |",
            "| 3,000 (default) | before | cold (resident 0.000-0.013) | 3 | 8.00 | 87.5 | 88.8 | 60.0 | 400 | 0.15 | \
             0.0750 | 512 | 4,000 | 0.310 | 1,200 | 12.0 |",
            "| 12,000 | after | warm (resident 1.000) | 3 | 0.128 | 99.8 | 99.8 | 5.00 | 100 | 0.0500 | 0.0250 |",
            "| label | txns | style | samples with (ms) | samples without (ms) | journal_bytes (bytes) | \
             checkpoints_written (count) |",
            "| every-3000-before cold | 21,010 | incremental | 59.4-61.2 | 392-404 | 67,108,864 | 8 | 500 | 300 |",
            "### checkpoint-find",
            "| records in the directory | find (us) |",
            "| 1,024 | 16.0 |",
            "(plots/checkpoint.svg)",
            "(plots/checkpoint-writer.svg)",
        ] {
            assert!(s.contains(needle), "summary lacks {needle:?}\n{s}");
        }
        assert!(!s.contains("\n## checkpoint-find"), "checkpoint-find has no section of its own");
        assert!(!s.contains("chain_len"));
    }

    #[test]
    fn is_deterministic() {
        assert_eq!(summary(), summary());
    }
}
