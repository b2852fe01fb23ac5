//! `recovery/scaling`: recovery time against worker count (1, 2, 4, 8, 16, capped at the
//! machine's CPUs) on a CPU-bound preset (small partial writes and copies: checksums and
//! per-record work dominate) and a memory-bound preset (full-block writes), for the pinned
//! pool and the rayon executor. The summary reports speedup and efficiency against the
//! 1-worker run of the same process, and the dependency graph's work/span bound.
//!
//! `FASTREC_SCALING_PRESETS` (default `cpu-bound,memory-bound`) and `FASTREC_BENCH_SEED`.

#![expect(missing_docs, reason = "criterion_group! generates an undocumented pub fn")]

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use recovery::Executor;

fn scaling(c: &mut Criterion) {
    let presets = std::env::var("FASTREC_SCALING_PRESETS").unwrap_or_else(|_| "cpu-bound,memory-bound".into());
    let seed = std::env::var("FASTREC_BENCH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (counts, capped) = bench::scaling::worker_counts(cpus);
    if capped {
        println!("note: worker counts capped at this machine's {cpus} CPUs: {counts:?}");
    }
    for preset in presets.split(',') {
        let p = bench::scaling::prepare(preset, seed, None).expect("prepare preset");
        let mut g = c.benchmark_group(format!("recovery/scaling/{preset}"));
        g.sample_size(10);
        g.throughput(Throughput::Bytes(p.journal_bytes));
        for &w in &counts {
            for ex in [Executor::Pinned, Executor::Rayon] {
                if w == 1 && ex == Executor::Rayon {
                    continue;
                }
                let opts = bench::scaling::options(w, ex);
                g.bench_function(format!("{w}-workers/{ex:?}"), |b| {
                    b.iter_batched(
                        || p.restore(),
                        |()| recovery::recover(&p.dir, &opts).expect("recover"),
                        BatchSize::PerIteration,
                    )
                });
            }
        }
        g.finish();
        // Same-run medians, with speedup against the 1-worker run just measured.
        let reps = 5;
        let base = bench::scaling::measure(&p, &bench::scaling::options(1, Executor::Pinned), reps).expect("measure");
        println!("\n{preset}: 1 worker {:.1} ms (phases {:?})", base.secs * 1e3, base.phase_ms);
        println!("NDJSON {}", bench::scaling::record(&p, 1, Executor::Pinned, &base, base.secs, capped));
        for &w in counts.iter().filter(|&&w| w > 1) {
            for ex in [Executor::Pinned, Executor::Rayon] {
                let m = bench::scaling::measure(&p, &bench::scaling::options(w, ex), reps).expect("measure");
                let bound = m.report.parallel.dependencies.map_or("n/a".to_string(), |d| {
                    format!("{:.1} (per block) {:.1} (these partitions)", d.bound_blocks, d.bound_workers)
                });
                println!(
                    "{preset}: {w} workers {ex:?}: {:.1} ms, speedup {:.2}x, efficiency {:.2}; work/span bound {bound}",
                    m.secs * 1e3,
                    base.secs / m.secs,
                    base.secs / m.secs / w as f64,
                );
                println!("NDJSON {}", bench::scaling::record(&p, w, ex, &m, base.secs, capped));
            }
        }
    }
}

criterion_group!(benches, scaling);
criterion_main!(benches);
