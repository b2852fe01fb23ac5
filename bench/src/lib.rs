//! Measurement helpers shared by fastrec's benches: a counting allocator for peak heap
//! (anonymous) memory, same-run hardware ceilings (memcpy bandwidth, single-thread and
//! all-thread), medians, and the provenance every result carries.
//!
//! ```no_run
//! let (bytes_per_s, _) = bench::memcpy_bandwidth(64 << 20, 5);
//! println!("memcpy {:.2} GB/s", bytes_per_s / 1e9);
//! ```

pub mod args;
pub mod checkpoint;
pub mod gate;
pub mod io;
pub mod jbd2;
pub mod scaling;

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// A global allocator that tracks current and peak live heap bytes.
pub struct CountingAlloc;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to the system allocator with the caller's arguments unchanged;
// the counters are bookkeeping only and never affect the memory handed out.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged; the caller upholds `GlobalAlloc::alloc`'s contract.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged; `ptr` came from this allocator with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged; the caller upholds `GlobalAlloc::realloc`'s contract.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                let now = CURRENT.fetch_add(new_size - layout.size(), Ordering::Relaxed) + new_size - layout.size();
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                CURRENT.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

/// Resets the peak to the current live heap and returns the current value.
pub fn reset_peak_heap() -> usize {
    let now = CURRENT.load(Ordering::Relaxed);
    PEAK.store(now, Ordering::Relaxed);
    now
}

/// Peak live heap bytes since the last [`reset_peak_heap`] (only when [`CountingAlloc`] is the
/// global allocator).
pub fn peak_heap() -> usize {
    PEAK.load(Ordering::Relaxed)
}

/// Peak resident set size of this process in bytes (getrusage). Includes file-backed pages
/// that were mapped and touched, so it overstates anonymous memory when the journal is mapped.
pub fn max_rss_bytes() -> u64 {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `ru` points to writable memory of the right type; getrusage only writes it.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) };
    if rc != 0 {
        return 0;
    }
    // SAFETY: getrusage returned 0, so it initialised the struct (and zeroed() already had).
    let ru = unsafe { ru.assume_init() };
    ru.ru_maxrss as u64 * 1024
}

/// Minor and major page faults of this process so far, all threads (getrusage); zeros when
/// the call fails.
pub fn page_faults() -> (u64, u64) {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `ru` points to writable memory of the right type; getrusage only writes it.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) };
    if rc != 0 {
        return (0, 0);
    }
    // SAFETY: getrusage returned 0, so it initialised the struct (and zeroed() already had).
    let ru = unsafe { ru.assume_init() };
    (ru.ru_minflt as u64, ru.ru_majflt as u64)
}

/// Median of `xs` (sorts in place); 0 for an empty slice.
pub fn median(xs: &mut [f64]) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// Single-thread memcpy bandwidth over buffers of `bytes` bytes: median bytes per second of
/// `reps` copies, and all samples.
pub fn memcpy_bandwidth(bytes: usize, reps: usize) -> (f64, Vec<f64>) {
    let src: Vec<u8> = (0..bytes).map(|i| (i.wrapping_mul(31)) as u8).collect();
    let mut dst = vec![0u8; bytes];
    dst.copy_from_slice(&src); // fault the pages in before timing
    let mut samples = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        dst.copy_from_slice(std::hint::black_box(&src));
        std::hint::black_box(&dst);
        samples.push(bytes as f64 / t.elapsed().as_secs_f64());
    }
    let mut s = samples.clone();
    (median(&mut s), samples)
}

/// Aggregate memcpy bandwidth of `threads` threads, each copying its own buffer of
/// `bytes_per_thread` bytes at the same time: median bytes per second of `reps` rounds, and all
/// samples.
pub fn memcpy_bandwidth_threads(threads: usize, bytes_per_thread: usize, reps: usize) -> (f64, Vec<f64>) {
    let threads = threads.max(1);
    // Each round starts all copies together at a barrier; the copiers time themselves and a
    // round spans the earliest start to the latest end. Timing from a coordinating thread
    // instead would undercount whenever that thread is descheduled while every CPU copies.
    let start = std::sync::Barrier::new(threads);
    let spans: Vec<Vec<(Instant, Instant)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let start = &start;
                s.spawn(move || {
                    let src: Vec<u8> = (0..bytes_per_thread).map(|j| (j.wrapping_mul(31) ^ i) as u8).collect();
                    let mut dst = vec![0u8; bytes_per_thread];
                    dst.copy_from_slice(&src); // fault the pages in before timing
                    (0..reps)
                        .map(|_| {
                            start.wait();
                            let t = Instant::now();
                            dst.copy_from_slice(std::hint::black_box(&src));
                            std::hint::black_box(&dst);
                            (t, Instant::now())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let samples: Vec<f64> = (0..reps)
        .filter_map(|r| {
            let first = spans.iter().filter_map(|v| v.get(r)).map(|x| x.0).min()?;
            let last = spans.iter().filter_map(|v| v.get(r)).map(|x| x.1).max()?;
            Some((spans.len() * bytes_per_thread) as f64 / (last - first).as_secs_f64())
        })
        .collect();
    let mut s = samples.clone();
    (median(&mut s), samples)
}

/// Where a measurement was taken: git revision, machine, kernel.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Provenance {
    /// `git rev-parse HEAD`, or "unknown".
    pub git_sha: String,
    /// Uncommitted changes present.
    pub git_dirty: bool,
    /// Host name.
    pub host: String,
    /// CPU model from /proc/cpuinfo.
    pub cpu: String,
    /// Logical CPUs available to this process.
    pub cpus: usize,
    /// NUMA nodes in /sys/devices/system/node.
    pub numa_nodes: usize,
    /// Kernel release.
    pub kernel: String,
}

/// The trimmed standard output of `cmd args`, when it runs and succeeds.
pub fn command_output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(cmd).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Seconds since the epoch as a UTC civil date and time: (year, month, day, hour, minute,
/// second), proleptic Gregorian calendar.
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

impl Provenance {
    /// Reads the provenance of the current process and checkout.
    pub fn collect() -> Provenance {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|s| s.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let numa_nodes = std::fs::read_dir("/sys/devices/system/node")
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| {
                        let n = e.file_name();
                        let n = n.to_string_lossy();
                        n.starts_with("node") && n[4..].chars().all(|c| c.is_ascii_digit())
                    })
                    .count()
            })
            .unwrap_or(0);
        Provenance {
            // A copy of the tree without its git directory (another machine) passes these in.
            git_sha: std::env::var("FASTREC_GIT_SHA")
                .ok()
                .or_else(|| command_output("git", &["rev-parse", "HEAD"]))
                .unwrap_or_else(|| "unknown".into()),
            git_dirty: match std::env::var("FASTREC_GIT_DIRTY") {
                Ok(v) => v == "1" || v == "true",
                Err(_) => command_output("git", &["status", "--porcelain"]).is_some_and(|s| !s.is_empty()),
            },
            host: command_output("hostname", &[]).unwrap_or_else(|| "unknown".into()),
            cpu,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            numa_nodes: numa_nodes.max(1),
            kernel: command_output("uname", &["-r"]).unwrap_or_else(|| "unknown".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(utc(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(utc(1_795_961_899), (2026, 11, 29, 14, 18, 19));
        // A leap day, noon.
        assert_eq!(utc(1_709_208_000), (2024, 2, 29, 12, 0, 0));
    }

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&mut []), 0.0);
    }

    #[test]
    fn memcpy_bandwidth_threads_is_positive() {
        let (bw, samples) = memcpy_bandwidth_threads(2, 1 << 20, 3);
        assert_eq!(samples.len(), 3);
        assert!(bw > 0.0);
    }

    #[test]
    fn memcpy_bandwidth_is_positive() {
        let (bw, samples) = memcpy_bandwidth(1 << 20, 3);
        assert_eq!(samples.len(), 3);
        assert!(bw > 0.0);
    }
}

/// The checkpoint directory of a crash state as generated, so that repeated measured
/// recoveries each start from it: every successful recovery writes a checkpoint record at the
/// journal's end (through a temporary file that may replace one a generated crash left torn,
/// and repointing the pointer file), after which a recovery of the restored crash image would
/// start past all the work.
#[derive(Debug, Clone, Default)]
pub struct CheckpointState {
    files: Vec<(std::ffi::OsString, Vec<u8>)>,
}

impl CheckpointState {
    /// Records `dir`'s checkpoint directory (every file's name and bytes: records are small).
    pub fn of(dir: &Path) -> CheckpointState {
        let cdir = dir.join(recovery::dir::CHECKPOINT_DIR);
        let files = std::fs::read_dir(&cdir)
            .map(|it| {
                it.filter_map(|e| {
                    let e = e.ok()?;
                    Some((e.file_name(), std::fs::read(e.path()).ok()?))
                })
                .collect()
            })
            .unwrap_or_default();
        CheckpointState { files }
    }

    /// Removes what recoveries added since and puts back what they replaced.
    pub fn restore(&self, dir: &Path) -> Result<(), String> {
        let cdir = dir.join(recovery::dir::CHECKPOINT_DIR);
        let Ok(entries) = std::fs::read_dir(&cdir) else { return Ok(()) };
        for e in entries.filter_map(|e| e.ok()) {
            if !self.files.iter().any(|(n, _)| *n == e.file_name()) {
                std::fs::remove_file(e.path()).map_err(|err| format!("{}: {err}", e.path().display()))?;
            }
        }
        for (name, bytes) in &self.files {
            let path = cdir.join(name);
            if std::fs::read(&path).ok().as_ref() != Some(bytes) {
                std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
            }
        }
        Ok(())
    }
}
