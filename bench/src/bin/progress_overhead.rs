//! Overhead of live progress on recovery: prints NDJSON, one provenance line, then one line per
//! (worker count, variant) with every sample and its ratios to `none` measured in the same
//! rounds.
//!
//! Usage: `progress_overhead [--preset default] [--seed 1] [--reps 15] [--workers 1,all]
//! [--out FILE] [--tmp DIR]`. Run through `scripts/progress-overhead.sh`.
//!
//! Variants: `none` (no observer, so no reporter thread: `--progress none`),
//! `default-interval` (an observer that serialises every snapshot to JSON and writes it to
//! `std::io::sink()`, as `--progress json` does to stderr, every 1 s), `interval-10ms` (the same
//! observer every 10 ms, a deliberately aggressive worst case) and `none-again` (identical to
//! `none`: its ratio to `none` is the measurement's noise floor).
//!
//! One crash state is generated once; every recovery starts from it (the crash image put back
//! and made durable, the marker removed; neither is timed). Each worker count gets one untimed
//! run per variant first (the `none` one checked against the oracle), which also warms the page
//! cache: every timed run is warm-cache. Then `--reps` rounds, each recovering once per
//! variant, the order starting one place later every round, so drift on a shared machine lands
//! on every variant alike. A variant's ratio to `none` is taken per round (the pair measured
//! closest together), then summarised: median, a distribution-free 95% interval of that median,
//! quartiles and min..max.
//!
//! Besides wall time, each recovery records the CPU time of the process, of the recovery
//! (calling) thread and of the reporter thread, the time spent inside the observer's callbacks,
//! and the wall time spent between phases: the direct accounting that wall time on a noisy
//! machine cannot resolve. `results/PROGRESS.md` reports a run.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use recovery::progress::JsonLines;
use recovery::{Monitor, Observer, RecoverOptions, Snapshot};

const KNOWN: [&str; 6] = ["--preset", "--seed", "--reps", "--workers", "--out", "--tmp"];

/// The CLI's `--progress json` observer, writing to a sink instead of stderr, and counting.
struct JsonSink {
    json: JsonLines<std::io::Sink>,
    /// Callbacks of every kind.
    calls: AtomicU64,
    /// Periodic snapshots (`progress`) among them.
    ticks: AtomicU64,
    /// Nanoseconds spent inside the callbacks (on the reporter thread).
    busy_ns: AtomicU64,
    /// CPU time of the reporter thread over its whole life, read in `finished` (its last
    /// callback), in nanoseconds.
    reporter_cpu_ns: AtomicU64,
}

impl JsonSink {
    fn new() -> JsonSink {
        JsonSink {
            json: JsonLines::new(std::io::sink()),
            calls: AtomicU64::new(0),
            ticks: AtomicU64::new(0),
            busy_ns: AtomicU64::new(0),
            reporter_cpu_ns: AtomicU64::new(0),
        }
    }

    /// Times `emit`, the JSON work of one callback.
    fn timed(&self, emit: impl FnOnce(&JsonLines<std::io::Sink>)) {
        let t = Instant::now();
        emit(&self.json);
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.busy_ns.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }

    fn take(&self) -> (u64, u64, u64, u64) {
        (
            self.calls.swap(0, Ordering::Relaxed),
            self.ticks.swap(0, Ordering::Relaxed),
            self.busy_ns.swap(0, Ordering::Relaxed),
            self.reporter_cpu_ns.swap(0, Ordering::Relaxed),
        )
    }
}

impl Observer for JsonSink {
    fn phase_started(&self, s: &Snapshot) {
        self.timed(|j| j.phase_started(s));
    }
    fn progress(&self, s: &Snapshot) {
        self.ticks.fetch_add(1, Ordering::Relaxed);
        self.timed(|j| j.progress(s));
    }
    fn phase_finished(&self, s: &Snapshot) {
        self.timed(|j| j.phase_finished(s));
    }
    fn finished(&self, s: &Snapshot, error: Option<&str>) {
        self.timed(|j| j.finished(s, error));
        let ns = (cpu_now(libc::CLOCK_THREAD_CPUTIME_ID) * 1e9) as u64;
        self.reporter_cpu_ns.store(ns, Ordering::Relaxed);
    }
}

/// One way of running recovery.
struct Variant {
    name: &'static str,
    /// `None`: no observer (`--progress none`).
    interval: Option<Duration>,
}

const VARIANTS: [Variant; 4] = [
    Variant { name: "none", interval: None },
    Variant { name: "default-interval", interval: Some(Duration::from_secs(1)) },
    Variant { name: "interval-10ms", interval: Some(Duration::from_millis(10)) },
    Variant { name: "none-again", interval: None },
];

/// What one timed recovery measured.
#[derive(Default, Clone, Copy)]
struct Sample {
    wall_s: f64,
    /// `wall_s` less the report's `flush` phase (msync/fsync of the image: disk-bound, and
    /// progress does nothing during it but wait).
    no_flush_s: f64,
    /// CPU time of the whole process (all threads) during the recovery.
    cpu_s: f64,
    /// CPU time of the thread that called recovery (the whole serial recovery, or the
    /// recovery thread of a parallel one); never the reporter's.
    caller_cpu_s: f64,
    /// CPU time of the reporter thread (0 without an observer).
    reporter_cpu_s: f64,
    /// `wall_s` less the wall time of every phase in the report: work between phases.
    between_phases_s: f64,
    calls: u64,
    ticks: u64,
    observer_busy_s: f64,
}

/// CPU time of `clock` (`CLOCK_PROCESS_CPUTIME_ID`: every thread; `CLOCK_THREAD_CPUTIME_ID`:
/// this one), in seconds.
fn cpu_now(clock: libc::clockid_t) -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; the clock ids passed are constants the kernel knows.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    if rc != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

fn run_once(
    p: &bench::scaling::Prepared,
    opts: &RecoverOptions,
    v: &Variant,
    sink: &JsonSink,
    verify: bool,
) -> Result<Sample, String> {
    let monitor = match v.interval {
        None => Monitor::default(),
        Some(interval) => Monitor { observer: Some(sink), interval, cancel: None },
    };
    p.restore();
    sink.take();
    let (t, c, ct) = (Instant::now(), cpu_now(libc::CLOCK_PROCESS_CPUTIME_ID), cpu_now(libc::CLOCK_THREAD_CPUTIME_ID));
    let report = recovery::recover_with(&p.dir, opts, &monitor).map_err(|e| e.to_string())?;
    let wall_s = t.elapsed().as_secs_f64();
    let (cpu_s, caller_cpu_s) =
        (cpu_now(libc::CLOCK_PROCESS_CPUTIME_ID) - c, cpu_now(libc::CLOCK_THREAD_CPUTIME_ID) - ct);
    if report.already_recovered {
        return Err("recovery found the marker and did nothing: the restore did not remove it".into());
    }
    if verify && !workloads::digest::verify_dir(&p.dir).map_err(|e| e.to_string())?.matches {
        return Err(format!("{} ({}) does not match the oracle", p.preset, v.name));
    }
    let flush_s = report.phases.iter().filter(|ph| ph.phase == "flush").map(|ph| ph.ms / 1e3).sum::<f64>();
    let phases_s = report.stats.phases.iter().map(|ph| ph.wall_ms / 1e3).sum::<f64>();
    let (calls, ticks, busy_ns, reporter_ns) = sink.take();
    Ok(Sample {
        wall_s,
        no_flush_s: wall_s - flush_s,
        cpu_s,
        caller_cpu_s,
        reporter_cpu_s: reporter_ns as f64 / 1e9,
        between_phases_s: (wall_s - phases_s).max(0.0),
        calls,
        ticks,
        observer_busy_s: busy_ns as f64 / 1e9,
    })
}

/// The 1, 5 and 15 minute load averages (/proc/loadavg), to show how busy the machine was.
fn loadavg() -> Option<[f64; 3]> {
    let s = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = s.split_whitespace().map(|x| x.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

/// Value at quantile `q` of sorted `xs` (nearest rank).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// Distribution-free confidence interval of the median of `n` samples: the 1-based ranks
/// `(k, n + 1 - k)` with the largest `k` such that P(Binomial(n, 1/2) < k) <= 0.025, and the
/// interval's actual coverage. `None` when `n` is too small for 95%.
fn median_ci_ranks(n: usize) -> Option<(usize, usize, f64)> {
    let total = 2f64.powi(n as i32);
    let mut cum = 0.0;
    let mut coef = 1.0; // C(n, i)
    let mut best = None;
    for i in 0..n {
        cum += coef / total; // P(X <= i)
        if cum > 0.025 {
            break;
        }
        best = Some((i + 1, n - i, 1.0 - 2.0 * cum));
        coef = coef * (n - i) as f64 / (i + 1) as f64;
    }
    best.filter(|&(k, hi, _)| k <= hi)
}

/// Median, 95% interval of the median, quartiles and range of `xs`.
fn summary(xs: &[f64]) -> serde_json::Value {
    let mut s = xs.to_vec();
    let median = bench::median(&mut s);
    let ci = median_ci_ranks(s.len()).map(|(lo, hi, cov)| serde_json::json!([s[lo - 1], s[hi - 1], cov]));
    serde_json::json!({
        "median": median,
        "median_ci95": ci,
        "p25": quantile(&s, 0.25),
        "p75": quantile(&s, 0.75),
        "min": s.first().copied().unwrap_or(0.0),
        "max": s.last().copied().unwrap_or(0.0),
    })
}

fn median_of(samples: &[Sample], f: impl Fn(&Sample) -> f64) -> f64 {
    bench::median(&mut samples.iter().map(f).collect::<Vec<_>>())
}

fn main() -> Result<(), String> {
    let started = Instant::now();
    let args = bench::args::Args::from_env(&KNOWN)?;
    let preset = args.get("--preset").unwrap_or_else(|| "default".into());
    let seed: u64 = args.parsed("--seed", 1)?;
    let reps: usize = args.parsed("--reps", 15)?;
    let prov = bench::Provenance::collect();
    let workers: Vec<usize> = args
        .get("--workers")
        .unwrap_or_else(|| "1,all".into())
        .split(',')
        .map(|w| if w == "all" { Ok(prov.cpus) } else { w.parse().map_err(|e| format!("--workers {w}: {e}")) })
        .collect::<Result<_, _>>()?;
    if reps == 0 || workers.is_empty() || workers.contains(&0) {
        return Err("nothing to measure: --reps and every worker count must be at least 1".into());
    }
    let tmp = args.get("--tmp").map(std::path::PathBuf::from);
    if let Some(t) = &tmp {
        std::fs::create_dir_all(t).map_err(|e| format!("--tmp {}: {e}", t.display()))?;
    }
    let mut out = bench::args::Ndjson::create(args.get("--out"))?;

    eprintln!("generating {preset} (seed {seed})...");
    let p = bench::scaling::prepare(&preset, seed, tmp.as_deref())?;
    out.line(&serde_json::json!({
        "schema": 1,
        "experiment": "progress-overhead-provenance",
        "provenance": prov,
        "preset": preset,
        "seed": seed,
        "journal_bytes": p.journal_bytes,
        "reps": reps,
        "workers": workers,
        "cache": "warm",
        "loadavg_start": loadavg(),
        "variants": VARIANTS.iter().map(|v| serde_json::json!({
            "name": v.name,
            "observer": v.interval.map(|_| "json-to-sink"),
            "interval_ms": v.interval.map(|d| d.as_secs_f64() * 1e3),
        })).collect::<Vec<_>>(),
        "method": "one crash state; crash image restored (durable) and marker removed before every recovery, \
                   untimed; one untimed warm-up run per variant and worker count; then reps rounds of one \
                   recovery per variant, order rotated by one each round; ratios are per round against none",
    }))?;

    let sink = JsonSink::new();
    for &w in &workers {
        let opts = RecoverOptions { workers: Some(w), ..RecoverOptions::default() };
        for (i, v) in VARIANTS.iter().enumerate() {
            run_once(&p, &opts, v, &sink, i == 0)?;
        }
        let mut samples: Vec<Vec<Sample>> = vec![Vec::with_capacity(reps); VARIANTS.len()];
        for round in 0..reps {
            for k in 0..VARIANTS.len() {
                let i = (round + k) % VARIANTS.len();
                samples[i].push(run_once(&p, &opts, &VARIANTS[i], &sink, false)?);
            }
        }
        let load = loadavg();
        let none = &samples[0];
        let none_med = median_of(none, |s| s.wall_s);
        eprintln!("{w} worker(s): none median {:.1} ms", none_med * 1e3);
        for (v, ss) in VARIANTS.iter().zip(&samples) {
            let ratio = |f: fn(&Sample) -> f64| -> Vec<f64> { ss.iter().zip(none).map(|(a, b)| f(a) / f(b)).collect() };
            let wall_ratio = ratio(|s| s.wall_s);
            let med = median_of(ss, |s| s.wall_s);
            let mut wr = wall_ratio.clone();
            eprintln!(
                "  {:<17} median {:.1} ms, ratio to none: median of pairs {:.4}, {} progress ticks per run",
                v.name,
                med * 1e3,
                bench::median(&mut wr),
                median_of(ss, |s| s.ticks as f64)
            );
            out.line(&serde_json::json!({
                "schema": 1,
                "experiment": "progress-overhead",
                "preset": p.preset,
                "seed": p.seed,
                "cache": "warm",
                "journal_bytes": p.journal_bytes,
                "workers": w,
                "variant": v.name,
                "observer": v.interval.map(|_| "json-to-sink"),
                "interval_ms": v.interval.map(|d| d.as_secs_f64() * 1e3),
                "reps": reps,
                "loadavg_after": load,
                "wall_s_median": med,
                "bytes_per_s_median": p.journal_bytes as f64 / med,
                "no_flush_s_median": median_of(ss, |s| s.no_flush_s),
                "cpu_s_median": median_of(ss, |s| s.cpu_s),
                "caller_cpu_s_median": median_of(ss, |s| s.caller_cpu_s),
                "reporter_cpu_s_median": median_of(ss, |s| s.reporter_cpu_s),
                "between_phases_s_median": median_of(ss, |s| s.between_phases_s),
                "ratio_of_medians": med / none_med,
                "pair_ratio_wall": summary(&wall_ratio),
                "pair_ratio_no_flush": summary(&ratio(|s| s.no_flush_s)),
                "pair_ratio_cpu": summary(&ratio(|s| s.cpu_s)),
                "pair_ratio_caller_cpu": summary(&ratio(|s| s.caller_cpu_s)),
                "callbacks_median": median_of(ss, |s| s.calls as f64),
                "ticks_median": median_of(ss, |s| s.ticks as f64),
                "observer_busy_s_median": median_of(ss, |s| s.observer_busy_s),
                "samples_wall_s": ss.iter().map(|s| s.wall_s).collect::<Vec<_>>(),
                "samples_no_flush_s": ss.iter().map(|s| s.no_flush_s).collect::<Vec<_>>(),
                "samples_cpu_s": ss.iter().map(|s| s.cpu_s).collect::<Vec<_>>(),
                "samples_caller_cpu_s": ss.iter().map(|s| s.caller_cpu_s).collect::<Vec<_>>(),
                "samples_reporter_cpu_s": ss.iter().map(|s| s.reporter_cpu_s).collect::<Vec<_>>(),
            }))?;
        }
    }
    eprintln!("done in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_interval_ranks() {
        // n = 15: P(X <= 3) = 576/32768 = 0.0176, P(X <= 4) = 0.059, so ranks 4 and 12.
        let (lo, hi, cov) = median_ci_ranks(15).expect("15 is enough");
        assert_eq!((lo, hi), (4, 12));
        assert!((cov - (1.0 - 2.0 * 576.0 / 32768.0)).abs() < 1e-12);
        assert_eq!(median_ci_ranks(5), None, "5 samples cannot give 95%");
        assert_eq!(median_ci_ranks(6).map(|r| (r.0, r.1)), Some((1, 6)));
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let s = [1.0, 2.0, 3.0, 4.0];
        assert_eq!((quantile(&s, 0.25), quantile(&s, 0.75), quantile(&s, 1.0)), (1.0, 3.0, 4.0));
    }
}
