//! Worker-scaling sweep: prints one NDJSON line per configuration (and the provenance first).
//!
//! Usage: `scaling_sweep [--presets cpu-bound,memory-bound] [--seed N] [--reps N]
//! [--executors pinned,rayon] [--serial-preset default] [--out FILE]`. Run through
//! `scripts/scaling-sweep.sh`. `--serial-preset` also measures serial recovery of that preset
//! against the same run's single-thread memcpy bandwidth and prints its peak heap.

use std::io::Write;

use recovery::Executor;

#[global_allocator]
static ALLOC: bench::CountingAlloc = bench::CountingAlloc;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let presets = arg(&args, "--presets").unwrap_or_else(|| "cpu-bound,memory-bound".into());
    let seed: u64 = arg(&args, "--seed").map_or(Ok(1), |s| s.parse()).map_err(|e| format!("--seed: {e}"))?;
    let reps: usize = arg(&args, "--reps").map_or(Ok(5), |s| s.parse()).map_err(|e| format!("--reps: {e}"))?;
    let executors: Vec<Executor> = arg(&args, "--executors")
        .unwrap_or_else(|| "pinned,rayon".into())
        .split(',')
        .map(|s| s.parse::<Executor>().map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let mut out: Box<dyn Write> = match arg(&args, "--out") {
        Some(p) => Box::new(std::fs::File::create(&p).map_err(|e| format!("{p}: {e}"))?),
        None => Box::new(std::io::stdout()),
    };
    let prov = bench::Provenance::collect();
    let cpus = prov.cpus;
    let (counts, capped) = bench::scaling::worker_counts(cpus);
    let (memcpy, _) = bench::memcpy_bandwidth(256 << 20, 5);
    let header = serde_json::json!({
        "schema": 1,
        "experiment": "scaling-provenance",
        "provenance": prov,
        "memcpy_single_thread_bytes_per_s": memcpy,
        "worker_counts": counts,
        "capped_at_cpus": capped,
        "note": if capped { format!("worker counts capped at this machine's {cpus} CPUs") } else { String::new() },
    });
    writeln!(out, "{header}").map_err(|e| e.to_string())?;
    if let Some(preset) = arg(&args, "--serial-preset") {
        eprintln!("generating {preset} for the serial measurement...");
        let p = bench::scaling::prepare(&preset, seed, None)?;
        let opts = bench::scaling::options(1, Executor::Pinned);
        let m = bench::scaling::measure(&p, &opts, reps)?;
        p.restore();
        let before = bench::reset_peak_heap();
        recovery::recover(&p.dir, &opts).map_err(|e| e.to_string())?;
        let peak = bench::peak_heap() - before;
        let (mem, _) = bench::memcpy_bandwidth(p.journal_bytes as usize, reps);
        let bw = p.journal_bytes as f64 / m.secs;
        let flush_ms = m.phase_ms.iter().find(|(k, _)| k == "flush").map_or(0.0, |x| x.1);
        let line = serde_json::json!({
            "schema": 1,
            "experiment": "serial",
            "preset": preset,
            "seed": seed,
            "cache": "warm",
            "journal_bytes": p.journal_bytes,
            "reps": reps,
            "seconds_median": m.secs,
            "recover_bytes_per_s": bw,
            "memcpy_bytes_per_s_same_size": mem,
            "ratio_vs_memcpy": bw / mem,
            "ratio_vs_memcpy_without_flush": p.journal_bytes as f64 / (m.secs - flush_ms / 1e3) / mem,
            "phase_ms_median": m.phase_ms.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
            "peak_heap_bytes": peak,
        });
        writeln!(out, "{line}").map_err(|e| e.to_string())?;
        eprintln!(
            "{preset} serial: {:.2} GB/s, memcpy {:.2} GB/s, ratio {:.2}, peak heap {} MiB",
            bw / 1e9,
            mem / 1e9,
            bw / mem,
            peak >> 20
        );
    }
    for preset in presets.split(',') {
        eprintln!("generating {preset} (seed {seed})...");
        let p = bench::scaling::prepare(preset, seed, None)?;
        let base = bench::scaling::measure(&p, &bench::scaling::options(1, Executor::Pinned), reps)?;
        let line = bench::scaling::record(&p, 1, Executor::Pinned, &base, base.secs, capped);
        writeln!(out, "{line}").map_err(|e| e.to_string())?;
        eprintln!("{preset}: 1 worker {:.3} s", base.secs);
        for &w in counts.iter().filter(|&&w| w > 1) {
            for &ex in &executors {
                let m = bench::scaling::measure(&p, &bench::scaling::options(w, ex), reps)?;
                let line = bench::scaling::record(&p, w, ex, &m, base.secs, capped);
                writeln!(out, "{line}").map_err(|e| e.to_string())?;
                eprintln!("{preset}: {w} workers {ex:?} {:.3} s, speedup {:.2}x", m.secs, base.secs / m.secs);
            }
        }
    }
    Ok(())
}
