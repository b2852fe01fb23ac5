//! `recovery/progress`: the cost of live progress. Recovery of the `default` preset (seed 1,
//! warm page cache, all CPUs) with no observer (`none`, as `--progress none`), with an observer
//! that serialises every snapshot to JSON and writes it to `std::io::sink()` at the default 1 s
//! interval (`default-interval`, as `--progress json` minus the terminal), and with the same
//! observer every 10 ms (`interval-10ms`, a deliberately aggressive worst case).
//!
//! Every recovery starts from the same crash state: the crash image is put back (durable) and
//! the marker removed before each one, outside the timed region. Criterion measures the three
//! one after another in one process; `progress_overhead` (`scripts/progress-overhead.sh`)
//! interleaves them round by round with a `none` control, which is what resolves 1%.
//!
//! Set `FASTREC_BENCH_PRESET` (default `default`) and `FASTREC_BENCH_SEED` to change the input.

#![expect(missing_docs, reason = "criterion_group! generates an undocumented pub fn")]

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, SamplingMode, Throughput};
use recovery::progress::JsonLines;
use recovery::{recover_with, Monitor, RecoverOptions};

fn progress(c: &mut Criterion) {
    let preset = std::env::var("FASTREC_BENCH_PRESET").unwrap_or_else(|_| "default".into());
    let seed = std::env::var("FASTREC_BENCH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let p = bench::scaling::prepare(&preset, seed, None).expect("generate the crash state");
    let opts = RecoverOptions::default();
    // The CLI's `--progress json` observer, writing to a sink instead of stderr.
    let sink = JsonLines::new(std::io::sink());
    let variants: [(&str, Monitor<'_>); 3] = [
        ("none", Monitor::default()),
        ("default-interval", Monitor { observer: Some(&sink), interval: Duration::from_secs(1), cancel: None }),
        ("interval-10ms", Monitor { observer: Some(&sink), interval: Duration::from_millis(10), cancel: None }),
    ];
    // Warm the page cache and check each variant once: the bench measures correct recoveries.
    for (name, m) in &variants {
        p.restore();
        let r = recover_with(&p.dir, &opts, m).expect("recover");
        assert!(!r.already_recovered, "the restore must remove the marker");
        assert!(
            workloads::digest::verify_dir(&p.dir).expect("verify").matches,
            "{name}: recovery does not match the oracle"
        );
    }

    let mut g = c.benchmark_group("recovery/progress");
    g.sample_size(10);
    g.sampling_mode(SamplingMode::Flat);
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Bytes(p.journal_bytes));
    for (name, m) in &variants {
        g.bench_function(format!("{preset}/{name}"), |b| {
            b.iter_batched(
                || p.restore(),
                |()| recover_with(&p.dir, &opts, m).expect("recover"),
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();

    // Same-run, interleaved summary: medians of 7 rounds, one recovery per variant each.
    let mut secs: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    for round in 0..7 {
        for k in 0..variants.len() {
            let i = (round + k) % variants.len();
            p.restore();
            let t = Instant::now();
            recover_with(&p.dir, &opts, &variants[i].1).expect("recover");
            secs[i].push(t.elapsed().as_secs_f64());
        }
    }
    let med: Vec<f64> = secs.iter_mut().map(|s| bench::median(s)).collect();
    println!("\nrecovery/progress summary ({preset}, seed {seed}, warm cache, all CPUs, interleaved medians of 7):");
    for ((name, _), m) in variants.iter().zip(&med) {
        println!("  {name:<17} {:.1} ms, {:.4}x none", m * 1e3, m / med[0]);
    }
    let by_name = |f: &dyn Fn(f64) -> f64| -> std::collections::BTreeMap<&str, f64> {
        variants.iter().zip(&med).map(|((n, _), m)| (*n, f(*m))).collect()
    };
    let line = serde_json::json!({
        "bench": "recovery/progress",
        "preset": preset,
        "seed": seed,
        "cache": "warm",
        "journal_bytes": p.journal_bytes,
        "seconds_median": by_name(&|m| m),
        "ratio_to_none": by_name(&|m| m / med[0]),
        "provenance": bench::Provenance::collect(),
    });
    println!("NDJSON {line}");
}

criterion_group!(benches, progress);
criterion_main!(benches);
