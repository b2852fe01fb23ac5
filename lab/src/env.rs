//! The machine and checkout a run comes from.

use std::path::Path;

use crate::record::{Env, RAW_SCHEMA};

fn memory_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Collects the environment of a run starting now, with journals generated under `work`.
pub fn collect(mode: &str, experiments: &[String], work: &Path) -> Env {
    let p = bench::Provenance::collect();
    let (y, mo, d, h, mi, s) = bench::utc(bench::now_secs());
    let short: String = p.git_sha.chars().take(7).collect();
    let work_fs = bench::io::file_system_of(work)
        .map_or_else(|| "unknown".to_string(), |(t, src, mnt)| format!("{t} ({src} on {mnt})"));
    Env {
        schema: RAW_SCHEMA,
        run: format!("{y:04}-{mo:02}-{d:02}-{}-{short}", p.host),
        mode: mode.into(),
        experiments: experiments.to_vec(),
        started: format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z"),
        duration_s: 0.0,
        host: p.host,
        cpu_model: p.cpu,
        cpus: p.cpus,
        numa_nodes: p.numa_nodes,
        memory_bytes: memory_bytes(),
        kernel: p.kernel,
        rustc: std::env::var("FASTREC_RUSTC")
            .ok()
            .or_else(|| bench::command_output("rustc", &["--version"]))
            .unwrap_or_else(|| "unknown".into()),
        git_sha: p.git_sha,
        git_dirty: p.git_dirty,
        work_dir: work.display().to_string(),
        work_fs,
        notes: Vec::new(),
    }
}
