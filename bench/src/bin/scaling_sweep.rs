//! Worker-scaling sweep: prints one NDJSON line per configuration (and the provenance first).
//!
//! Usage: `scaling_sweep [--presets cpu-bound,memory-bound] [--seed N] [--reps N]
//! [--executors pinned,rayon] [--out FILE]`. Run through `scripts/scaling-sweep.sh`.

use std::io::Write;

use recovery::Executor;

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
