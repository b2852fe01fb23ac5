//! Rendering: what a run measured, as files a person reads. Everything here is derived,
//! deterministically, from each run's `env.json` and `raw.ndjson` (docs/LAB.md): the same
//! inputs give byte-identical outputs (no rendering time, no hash-map order, fixed float
//! formatting), so a test can re-render the committed runs and compare byte for byte.
//!
//! - per run: `summary.md` ([`summary`]) and `plots/<name>.svg` ([`plots`]);
//! - per results directory: `report/index.html` ([`html`]) and `CLAIMS.md` ([`claims`]).

mod claims;
mod fmt;
mod html;
mod plots;
mod summary;

use std::fs;
use std::path::{Path, PathBuf};

pub use claims::{judge_claims, Claim, Verdict};

use crate::record::{read_raw, Env, Record, RAW_SCHEMA};

/// The experiments, in the order every rendered file presents them (the order a run does them).
pub use crate::run::EXPERIMENTS;

/// One committed run: its directory name under `results/runs/`, and its two source files.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// Directory name under `results/runs/` (normally the run id).
    pub dir_name: String,
    /// `env.json`.
    pub env: Env,
    /// `raw.ndjson`.
    pub records: Vec<Record>,
}

/// The derived files of one run, paths relative to the run directory: `summary.md`, then
/// `plots/<name>.svg` for each plot whose experiment the run has.
pub fn render_run_files(env: &Env, records: &[Record]) -> Result<Vec<(PathBuf, Vec<u8>)>, String> {
    check_schema(env, records)?;
    let plots = plots::render_plots(env, records)?;
    let mut files = vec![(PathBuf::from("summary.md"), summary::render_summary(env, records, &plots).into_bytes())];
    for p in plots {
        files.push((PathBuf::from("plots").join(format!("{}.svg", p.name)), p.svg.into_bytes()));
    }
    Ok(files)
}

/// Reads `env.json` and `raw.ndjson` in `run_dir` and writes the run's derived files there.
/// SVG files in `plots/` that the run no longer produces are removed.
pub fn render_run(run_dir: &Path) -> Result<(), String> {
    let (env, records) = read_run(run_dir)?;
    let files = render_run_files(&env, &records)?;
    let plots_dir = run_dir.join("plots");
    fs::create_dir_all(&plots_dir).map_err(|e| format!("{}: {e}", plots_dir.display()))?;
    for (rel, bytes) in &files {
        write_file(&run_dir.join(rel), bytes)?;
    }
    let entries = fs::read_dir(&plots_dir).map_err(|e| format!("{}: {e}", plots_dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| format!("{}: {e}", plots_dir.display()))?.path();
        let produced = files.iter().any(|(rel, _)| run_dir.join(rel) == path);
        if path.extension().is_some_and(|e| e == "svg") && !produced {
            fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    Ok(())
}

/// The derived files of a results directory, paths relative to it: `report/index.html` and
/// `CLAIMS.md`. `runs` as [`load_runs`] orders them (newest first).
pub fn render_site_files(runs: &[Run]) -> Result<Vec<(PathBuf, Vec<u8>)>, String> {
    for run in runs {
        check_schema(&run.env, &run.records).map_err(|e| format!("run {}: {e}", run.dir_name))?;
    }
    let claims = judge_claims(runs);
    let newest_plots = match runs.first() {
        Some(run) => plots::render_plots(&run.env, &run.records)?,
        None => Vec::new(),
    };
    // The checkpoint plots of the newest run with checkpoint records of the current shape, when
    // that is not the newest run (whose plots the page shows anyway).
    let checkpoint = match runs.iter().position(|r| r.records.iter().any(checkpoint_record_of_current_shape)) {
        Some(i) if i > 0 => {
            let run = &runs[i];
            let plots = plots::render_plots(&run.env, &run.records)?;
            Some((run, plots.into_iter().filter(|p| p.experiment == "checkpoint").collect::<Vec<_>>()))
        }
        _ => None,
    };
    let html = html::render_index(runs, &claims, &newest_plots, checkpoint.as_ref().map(|(r, p)| (*r, p.as_slice())));
    Ok(vec![
        (PathBuf::from("report").join("index.html"), html.into_bytes()),
        (PathBuf::from("CLAIMS.md"), claims::render_claims_md(runs, &claims).into_bytes()),
    ])
}

/// Every run under `results/runs/` that has both `env.json` and `raw.ndjson`, newest first (by
/// `env.started`, then by directory name, both descending).
pub fn load_runs(results: &Path) -> Result<Vec<Run>, String> {
    let runs_dir = results.join("runs");
    let mut runs = Vec::new();
    if !runs_dir.is_dir() {
        return Ok(runs);
    }
    let entries = fs::read_dir(&runs_dir).map_err(|e| format!("{}: {e}", runs_dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", runs_dir.display()))?;
        let dir = entry.path();
        if !dir.is_dir() || !dir.join("env.json").is_file() || !dir.join("raw.ndjson").is_file() {
            continue;
        }
        let dir_name = entry.file_name().to_str().ok_or_else(|| format!("{}: not UTF-8", dir.display()))?.to_string();
        let (env, records) = read_run(&dir)?;
        runs.push(Run { dir_name, env, records });
    }
    sort_newest_first(&mut runs);
    Ok(runs)
}

/// Writes `report/index.html` and `CLAIMS.md` under `results` from every run there.
pub fn render_site(results: &Path) -> Result<(), String> {
    let runs = load_runs(results)?;
    for (rel, bytes) in render_site_files(&runs)? {
        let path = results.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        write_file(&path, &bytes)?;
    }
    Ok(())
}

/// Newest first: `env.started` (RFC 3339 UTC, so it sorts as text), then directory name.
fn sort_newest_first(runs: &mut [Run]) {
    runs.sort_by(|a, b| b.env.started.cmp(&a.env.started).then_with(|| b.dir_name.cmp(&a.dir_name)));
}

fn read_run(dir: &Path) -> Result<(Env, Vec<Record>), String> {
    let env_path = dir.join("env.json");
    let raw_path = dir.join("raw.ndjson");
    let env_text = fs::read_to_string(&env_path).map_err(|e| format!("{}: {e}", env_path.display()))?;
    let env: Env = serde_json::from_str(&env_text).map_err(|e| format!("{}: {e}", env_path.display()))?;
    let raw_text = fs::read_to_string(&raw_path).map_err(|e| format!("{}: {e}", raw_path.display()))?;
    let records = read_raw(&raw_text).map_err(|e| format!("{}: {e}", raw_path.display()))?;
    Ok((env, records))
}

fn check_schema(env: &Env, records: &[Record]) -> Result<(), String> {
    if env.schema != RAW_SCHEMA {
        return Err(format!("env.json has schema {}, this renderer reads schema {RAW_SCHEMA}", env.schema));
    }
    if let Some(r) = records.iter().find(|r| r.schema != RAW_SCHEMA) {
        return Err(format!(
            "record {}/{} has schema {}, this renderer reads schema {RAW_SCHEMA}",
            r.experiment, r.label, r.schema
        ));
    }
    Ok(())
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), String> {
    fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// The records of one experiment, in raw.ndjson order.
pub(crate) fn of<'a>(records: &'a [Record], experiment: &str) -> Vec<&'a Record> {
    records.iter().filter(|r| r.experiment == experiment).collect()
}

/// A `checkpoint` record of the current shape: checkpoints are small records (dirty block
/// table, open transactions, redo start), and the record says how far the crash came after the
/// newest one (`distance_bytes`), with the writer's cost. Runs from before have only scope,
/// time and `chain_len` (checkpoints were image snapshots then) and render as they always did.
pub(crate) fn checkpoint_record_of_current_shape(r: &Record) -> bool {
    r.experiment == "checkpoint" && r.metrics.contains_key("distance_bytes")
}

/// The experiment that finds the newest checkpoint record among many; the `checkpoint`
/// experiment writes it, and its records are shown with that experiment's.
pub(crate) const CHECKPOINT_FIND: &str = "checkpoint-find";

/// Experiments that have records, in [`EXPERIMENTS`] order, then any others by name.
pub(crate) fn experiments_present(records: &[Record]) -> Vec<String> {
    let mut out: Vec<String> =
        EXPERIMENTS.iter().filter(|e| records.iter().any(|r| r.experiment == **e)).map(|e| e.to_string()).collect();
    let mut others: Vec<String> = records
        .iter()
        .map(|r| r.experiment.clone())
        .filter(|e| !EXPERIMENTS.contains(&e.as_str()))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    out.append(&mut others);
    out
}

#[cfg(test)]
pub(crate) mod fixtures;

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    #[test]
    fn run_files_are_deterministic() {
        let (env, records) = full_run(16, "a94a590663e3aa");
        let a = render_run_files(&env, &records).expect("render");
        let b = render_run_files(&env, &records).expect("render");
        assert_eq!(a, b);
        let names: Vec<String> = a.iter().map(|(p, _)| p.display().to_string()).collect();
        assert_eq!(
            names,
            [
                "summary.md",
                "plots/scaling-throughput.svg",
                "plots/scaling-speedup.svg",
                "plots/scaling-efficiency.svg",
                "plots/deps.svg",
                "plots/io.svg",
                "plots/checkpoint.svg",
                "plots/progress.svg",
                "plots/latency.svg",
                "plots/bandwidth.svg",
            ]
        );
    }

    #[test]
    fn checkpoint_records_of_the_current_shape_add_the_writer_plot() {
        let (env, records) = full_run_current(16, "a94a590663e3aa");
        let files = render_run_files(&env, &records).expect("render");
        let names: Vec<String> = files.iter().map(|(p, _)| p.display().to_string()).collect();
        assert!(names.contains(&"plots/checkpoint.svg".to_string()));
        assert!(names.contains(&"plots/checkpoint-writer.svg".to_string()));
        assert_eq!(render_run_files(&env, &records).expect("render"), files);
    }

    #[test]
    fn site_files_are_deterministic() {
        let (old, new) = two_runs();
        let runs = vec![new, old];
        let a = render_site_files(&runs).expect("render");
        let b = render_site_files(&runs).expect("render");
        assert_eq!(a, b);
        let names: Vec<String> = a.iter().map(|(p, _)| p.display().to_string()).collect();
        assert_eq!(names, ["report/index.html", "CLAIMS.md"]);
    }

    #[test]
    fn absent_experiments_produce_no_plot() {
        let (env, records) = full_run(16, "a94a590663e3aa");
        let only_io: Vec<Record> = records.into_iter().filter(|r| r.experiment == "io").collect();
        let files = render_run_files(&env, &only_io).expect("render");
        let names: Vec<String> = files.iter().map(|(p, _)| p.display().to_string()).collect();
        assert_eq!(names, ["summary.md", "plots/io.svg"]);
        let summary = String::from_utf8(files[0].1.clone()).expect("utf-8");
        assert!(summary.contains("## scaling\n\nNot run"), "{summary}");
        assert!(summary.contains("## latency\n\nNot run"));
    }

    #[test]
    fn wrong_schema_is_refused() {
        let (mut env, records) = full_run(16, "a94a590663e3aa");
        env.schema = 2;
        assert!(render_run_files(&env, &records).is_err());
    }

    #[test]
    fn disk_round_trip_and_ordering() {
        let dir = tempfile::tempdir().expect("tempdir");
        let results = dir.path();
        let (old, new) = two_runs();
        for run in [&old, &new] {
            let d = results.join("runs").join(&run.dir_name);
            fs::create_dir_all(d.join("plots")).expect("mkdir");
            fs::write(d.join("env.json"), serde_json::to_string_pretty(&run.env).expect("json")).expect("write");
            let raw: String =
                run.records.iter().map(|r| serde_json::to_string(r).expect("json") + "\n").collect::<String>();
            fs::write(d.join("raw.ndjson"), raw).expect("write");
            fs::write(d.join("plots").join("stale.svg"), "<svg></svg>").expect("write");
            render_run(&d).expect("render run");
            assert!(!d.join("plots").join("stale.svg").exists());
        }
        fs::create_dir_all(results.join("runs").join("incomplete")).expect("mkdir");
        let runs = load_runs(results).expect("load");
        let names: Vec<&str> = runs.iter().map(|r| r.dir_name.as_str()).collect();
        assert_eq!(names, [new.dir_name.as_str(), old.dir_name.as_str()]);
        render_site(results).expect("render site");
        let files = render_site_files(&runs).expect("render");
        for (rel, bytes) in files {
            assert_eq!(fs::read(results.join(&rel)).expect("read"), bytes, "{}", rel.display());
        }
        let d = results.join("runs").join(&new.dir_name);
        for (rel, bytes) in render_run_files(&new.env, &new.records).expect("render") {
            assert_eq!(fs::read(d.join(&rel)).expect("read"), bytes, "{}", rel.display());
        }
    }

    #[test]
    fn no_runs_still_renders() {
        let files = render_site_files(&[]).expect("render");
        let html = String::from_utf8(files[0].1.clone()).expect("utf-8");
        assert!(html.contains("No committed run"));
        assert!(load_runs(Path::new("/nonexistent/results")).expect("load").is_empty());
    }
}
