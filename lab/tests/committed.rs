//! Re-renders every committed run (results/runs/*/) and the site files (results/report/index.html,
//! results/CLAIMS.md) in memory and compares them byte for byte with the committed files. Until a
//! run is committed, results/runs/ does not exist and there is nothing to compare.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

fn results_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("results")
}

/// The first line where `a` and `b` differ, for the failure message.
fn first_difference(a: &[u8], b: &[u8]) -> String {
    let (a, b) = (String::from_utf8_lossy(a), String::from_utf8_lossy(b));
    for (i, (x, y)) in a.lines().zip(b.lines()).enumerate() {
        if x != y {
            return format!("line {}:\n  committed: {x}\n  rendered:  {y}", i + 1);
        }
    }
    format!("lengths differ: committed {} lines, rendered {} lines", a.lines().count(), b.lines().count())
}

fn compare(path: &Path, rendered: &[u8]) {
    let committed = match fs::read(path) {
        Ok(c) => c,
        Err(e) => panic!("{}: {e}; re-render with `fastrec lab --render` and commit it", path.display()),
    };
    assert!(
        committed == rendered,
        "{} differs from its re-rendering ({}); re-render with `fastrec lab --render`",
        path.display(),
        first_difference(&committed, rendered)
    );
}

#[test]
fn committed_runs_rerender_byte_for_byte() {
    let results = results_dir();
    let runs_dir = results.join("runs");
    if !runs_dir.exists() {
        return;
    }
    let runs = lab::render::load_runs(&results).expect("load committed runs");
    assert!(!runs.is_empty(), "{} exists but holds no run with env.json and raw.ndjson", runs_dir.display());
    for run in &runs {
        let dir = runs_dir.join(&run.dir_name);
        let files =
            lab::render::render_run_files(&run.env, &run.records).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for (rel, bytes) in &files {
            compare(&dir.join(rel), bytes);
        }
        // no stale plot that the run no longer produces
        let produced: BTreeSet<PathBuf> = files.iter().map(|(rel, _)| dir.join(rel)).collect();
        if let Ok(entries) = fs::read_dir(dir.join("plots")) {
            for entry in entries {
                let path = entry.expect("read plots/").path();
                if path.extension().is_some_and(|e| e == "svg") {
                    assert!(produced.contains(&path), "{} is not produced by its run any more", path.display());
                }
            }
        }
    }
    for (rel, bytes) in lab::render::render_site_files(&runs).expect("render site files") {
        compare(&results.join(rel), &bytes);
    }
}
