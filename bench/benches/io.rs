//! `io/scan` and `io/recover`: journal throughput of every read backend configuration (read,
//! pread and direct at 64 KiB, 1 MiB and 4 MiB requests; mmap with populate; mmap with
//! sequential + willneed advice; auto) for three record sizes (about 256 B, 4 KiB and 64 KiB
//! of payload), from a warm and from a cold page cache. `scan` only decodes and checksums;
//! `recover` is full recovery. Ids read `RECORD/CACHE/CONFIG`, e.g. `256B/cold/pread-1M`.
//!
//! Eviction, warm-up and image restores happen outside the timed part (`iter_custom`); each
//! sample's residency is measured and the range printed after each benchmark.
//!
//! Environment: `FASTREC_IO_BENCH_MIB` (journal size, default 256: well above auto's 1 MiB
//! mmap threshold), `FASTREC_IO_RECORDS` (default `256B,4K,64K`), `FASTREC_IO_CACHES`
//! (default `warm,cold`), `FASTREC_IO_BACKENDS` (default `all`), `FASTREC_BENCH_SEED`,
//! `FASTREC_IO_TMP` (where crash states are generated; must not be tmpfs for cold figures to
//! mean anything). The full matrix is 144 benchmarks of 10 samples; `scripts/io-sweep.sh` is
//! the faster way to the whole table.

#![expect(missing_docs, reason = "criterion_group! generates an undocumented pub fn")]

use std::time::Duration;

use bench::io::{CacheState, Consumer};
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.into())
}

fn io(c: &mut Criterion) {
    let mib: u64 = env_or("FASTREC_IO_BENCH_MIB", "256").parse().expect("FASTREC_IO_BENCH_MIB is a number of MiB");
    let seed: u64 = env_or("FASTREC_BENCH_SEED", "1").parse().expect("FASTREC_BENCH_SEED is a number");
    let records = env_or("FASTREC_IO_RECORDS", &bench::io::RECORDS.join(","));
    let caches: Vec<CacheState> = bench::io::parse_list(&env_or("FASTREC_IO_CACHES", "warm,cold")).expect("cache list");
    let cfgs = bench::io::select_configs(&env_or("FASTREC_IO_BACKENDS", "all")).expect("backend list");
    let tmp = std::env::var_os("FASTREC_IO_TMP").map(std::path::PathBuf::from);
    let journals: Vec<_> = records
        .split(',')
        .map(|r| {
            let j = bench::io::prepare(r, seed, mib << 20, tmp.as_deref()).expect("generate crash state");
            println!(
                "{r}: {:.1} MiB journal, {} segments, {} records (generated in {:.1} s)",
                j.journal_bytes() as f64 / f64::from(1 << 20),
                j.segments.len(),
                j.records,
                j.gen_secs
            );
            j
        })
        .collect();
    for consumer in [Consumer::Scan, Consumer::Recover] {
        let mut g = c.benchmark_group(format!("io/{}", consumer.name()));
        // Runs take hundreds of milliseconds: flat sampling keeps it to one run per sample.
        g.sample_size(10).sampling_mode(SamplingMode::Flat).warm_up_time(Duration::from_millis(500));
        for j in &journals {
            g.throughput(Throughput::Bytes(j.journal_bytes()));
            for &cache in &caches {
                if cache == CacheState::Warm {
                    j.warm_up().expect("warm-up read");
                }
                for cfg in &cfgs {
                    let mut residency = Vec::new();
                    g.bench_function(format!("{}/{}/{}", j.record, cache.name(), cfg.label), |b| {
                        b.iter_custom(|iters| {
                            let mut total = Duration::ZERO;
                            for _ in 0..iters {
                                let s = j.sample(consumer, cache, cfg, None).expect("timed run");
                                j.check_sample(cfg, &s).expect("same records as the reference scan");
                                residency.push(s.residency);
                                total += Duration::from_secs_f64(s.secs);
                            }
                            total
                        })
                    });
                    let (lo, hi) = bench::io::residency_range(residency);
                    println!("  journal residency before the timed runs: {lo:.3}-{hi:.3}");
                }
            }
        }
        g.finish();
    }
}

criterion_group!(benches, io);
criterion_main!(benches);
