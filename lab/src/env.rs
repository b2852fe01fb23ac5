//! The machine and checkout a run comes from.

use std::path::Path;

use crate::record::{Env, RAW_SCHEMA};

/// Seconds since the epoch as a UTC civil date and time: (y, m, d, hh, mm, ss).
pub fn utc(secs: u64) -> (i64, u32, u32, u32, u32, u32) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, (rem / 3600) as u32, (rem % 3600 / 60) as u32, (rem % 60) as u32)
}

/// Now, as seconds since the epoch.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn command(cmd: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(cmd).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

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
    let start = now_secs();
    let (y, mo, d, h, mi, s) = utc(start);
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
            .or_else(|| command("rustc", &["--version"]))
            .unwrap_or_else(|| "unknown".into()),
        git_sha: p.git_sha,
        git_dirty: p.git_dirty,
        work_dir: work.display().to_string(),
        work_fs,
        notes: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(utc(0), (1970, 1, 1, 0, 0, 0));
        // 2026-11-29T14:18:19Z
        assert_eq!(utc(1_795_961_899), (2026, 11, 29, 14, 18, 19));
        // 2024-02-29 (a leap day), noon.
        assert_eq!(utc(1_709_208_000), (2024, 2, 29, 12, 0, 0));
    }
}
