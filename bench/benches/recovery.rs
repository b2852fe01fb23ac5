//! `recovery/serial`: serial recovery of the `default` preset with a warm page cache, as journal
//! bytes per second, beside the same run's single-thread memcpy bandwidth over a buffer of the
//! journal's size. Also prints the peak heap (anonymous) memory of one recovery.
//!
//! Set `FASTREC_BENCH_PRESET` (default `default`) and `FASTREC_BENCH_SEED` to change the input.

#![expect(missing_docs, reason = "criterion_group! generates an undocumented pub fn")]

use std::path::Path;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use recovery::{recover, RecoverOptions};

#[global_allocator]
static ALLOC: bench::CountingAlloc = bench::CountingAlloc;

struct Input {
    _tmp: tempfile::TempDir,
    dir: std::path::PathBuf,
    crash_image: Vec<u8>,
    journal_bytes: u64,
    preset: String,
    seed: u64,
}

fn input() -> Input {
    let preset = std::env::var("FASTREC_BENCH_PRESET").unwrap_or_else(|_| "default".into());
    let seed = std::env::var("FASTREC_BENCH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("crash");
    let p: workloads::Preset = preset.parse().expect("preset");
    let summary = workloads::generate(&dir, &p.params(seed)).expect("generate");
    let crash_image = std::fs::read(dir.join(recovery::dir::IMAGE_FILE)).expect("read image");
    let _ = summary;
    let journal_bytes = std::fs::read_dir(dir.join(recovery::dir::JOURNAL_DIR))
        .expect("journal dir")
        .map(|e| e.expect("entry").metadata().expect("stat").len())
        .sum();
    Input { _tmp: tmp, dir, crash_image, journal_bytes, preset, seed }
}

/// Puts the crash image back and makes it durable, so the measured recovery's fsync writes
/// only what recovery changed (as after a real crash, where the image is on disk).
fn restore(dir: &Path, image: &[u8]) {
    let path = dir.join(recovery::dir::IMAGE_FILE);
    std::fs::write(&path, image).expect("restore image");
    std::fs::File::open(&path).and_then(|f| f.sync_all()).expect("fsync restored image");
    let _ = std::fs::remove_file(dir.join(recovery::dir::MARKER_FILE));
}

fn serial(c: &mut Criterion) {
    let inp = input();
    // One worker: this bench measures the serial engine (recovery/scaling measures workers).
    let serial = RecoverOptions { workers: Some(1), ..RecoverOptions::default() };
    let bytes = inp.journal_bytes;
    // Warm the page cache and check the input once: the bench measures a correct recovery.
    restore(&inp.dir, &inp.crash_image);
    recover(&inp.dir, &serial).expect("recover");
    assert!(workloads::digest::verify_dir(&inp.dir).expect("verify").matches, "recovery does not match the oracle");

    let mut g = c.benchmark_group("recovery/serial");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function(format!("{}/recover", inp.preset), |b| {
        b.iter_batched(
            || restore(&inp.dir, &inp.crash_image),
            |()| recover(&inp.dir, &serial).expect("recover"),
            BatchSize::PerIteration,
        )
    });
    let src = vec![7u8; bytes as usize];
    let mut dst = vec![0u8; bytes as usize];
    g.bench_function(format!("{}/memcpy", inp.preset), |b| b.iter(|| dst.copy_from_slice(std::hint::black_box(&src))));
    g.finish();
    drop((src, dst));

    // Same-run summary with medians, so the ratio compares numbers from one moment.
    let mut rec = Vec::new();
    let mut peak = 0usize;
    let mut phases: std::collections::BTreeMap<&'static str, Vec<f64>> = Default::default();
    for _ in 0..7 {
        restore(&inp.dir, &inp.crash_image);
        let base = bench::reset_peak_heap();
        let t = Instant::now();
        let report = recover(&inp.dir, &serial).expect("recover");
        rec.push(bytes as f64 / t.elapsed().as_secs_f64());
        peak = peak.max(bench::peak_heap() - base);
        for p in report.phases {
            phases.entry(p.phase).or_default().push(p.ms);
        }
    }
    let rec_bw = bench::median(&mut rec);
    let phase_ms: std::collections::BTreeMap<&str, f64> =
        phases.iter_mut().map(|(k, v)| (*k, bench::median(v))).collect();
    let flush_ms = phase_ms.get("flush").copied().unwrap_or(0.0);
    let total_ms = bytes as f64 / rec_bw * 1e3;
    let cpu_bw = bytes as f64 / ((total_ms - flush_ms).max(1e-3) / 1e3);
    let (mem_bw, _) = bench::memcpy_bandwidth(bytes as usize, 7);
    let prov = bench::Provenance::collect();
    let line = serde_json::json!({
        "bench": "recovery/serial",
        "preset": inp.preset,
        "seed": inp.seed,
        "cache": "warm",
        "journal_bytes": bytes,
        "recover_bytes_per_s_median": rec_bw,
        "memcpy_bytes_per_s_median": mem_bw,
        "ratio_vs_memcpy": rec_bw / mem_bw,
        "phase_ms_median": phase_ms,
        "bytes_per_s_without_flush": cpu_bw,
        "ratio_vs_memcpy_without_flush": cpu_bw / mem_bw,
        "peak_heap_bytes": peak,
        "max_rss_bytes": bench::max_rss_bytes(),
        "provenance": prov,
    });
    println!("\nrecovery/serial summary ({} preset, seed {}, warm cache, medians of 7):", inp.preset, inp.seed);
    println!(
        "  journal {:.1} MiB; recovery {:.2} GB/s; memcpy {:.2} GB/s; ratio {:.2}x",
        bytes as f64 / (1 << 20) as f64,
        rec_bw / 1e9,
        mem_bw / 1e9,
        rec_bw / mem_bw
    );
    println!("  phases (median ms): {phase_ms:?}");
    println!(
        "  without the final msync+fsync of the image ({flush_ms:.0} ms, disk-bound): {:.2} GB/s, ratio {:.2}x",
        cpu_bw / 1e9,
        cpu_bw / mem_bw
    );
    println!(
        "  peak heap during one recovery {:.1} MiB (max RSS {:.1} MiB, includes mapped journal pages)",
        peak as f64 / (1 << 20) as f64,
        bench::max_rss_bytes() as f64 / (1 << 20) as f64
    );
    println!("NDJSON {line}");
}

criterion_group!(benches, serial);
criterion_main!(benches);
