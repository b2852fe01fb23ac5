//! Small synthetic runs for the renderer's unit tests. Fixtures only: nothing here is ever
//! written under results/.

use crate::record::{Cache, Env, Record, RAW_SCHEMA};

use super::Run;

/// An env.json for a synthetic machine.
pub(crate) fn env(cpus: usize, sha: &str, started: &str) -> Env {
    Env {
        schema: RAW_SCHEMA,
        run: format!("{}-test{cpus}-{}", &started[..10], &sha[..7]),
        mode: "quick".into(),
        experiments: super::EXPERIMENTS.iter().map(|e| e.to_string()).collect(),
        started: started.into(),
        duration_s: 192.4,
        host: format!("test{cpus}"),
        cpu_model: "Intel(R) Xeon(R) Processor @ 2.10GHz".into(),
        cpus,
        numa_nodes: 1,
        memory_bytes: 16 * 1024 * 1024 * 1024,
        kernel: "6.1.0-test".into(),
        rustc: "rustc 1.95.0 (59807616e 2026-04-14)".into(),
        git_sha: format!("{sha}0000000000000000000000000000000000000000")[..40].to_string(),
        git_dirty: false,
        work_dir: "/tmp/fastrec-lab".into(),
        work_fs: "ext4 /dev/vda".into(),
        notes: vec!["synthetic <fixture> & test".into()],
    }
}

fn warm() -> Cache {
    Cache { state: "warm".into(), resident_min: Some(1.0), resident_max: Some(1.0) }
}

fn cold() -> Cache {
    Cache { state: "cold".into(), resident_min: Some(0.0), resident_max: Some(0.013) }
}

fn worker_counts(cpus: usize) -> Vec<usize> {
    let mut w = vec![];
    let mut n = 1;
    while n <= cpus {
        w.push(n);
        n *= 2;
    }
    w
}

/// Scaling records of the lab's three presets: speedup grows geometrically to `top` at the
/// most workers, each at 0.9 of its whole-recovery bound (12x with any number of workers).
pub(crate) fn scaling(cpus: usize, top: f64) -> Vec<Record> {
    let mut out = scaling_presets(cpus, top, &[("physical", 520.0, 125_829_120.0)]);
    out.extend(scaling_before_whole(cpus, top));
    for r in &mut out {
        let w = r.p_num("workers").unwrap_or(1.0);
        let speedup = r.get("speedup").unwrap_or(1.0);
        if w > 1.0 {
            r.metric("whole_bound", speedup / 0.9, "x");
            r.metric("whole_bound_any", 12.0, "x");
        } else {
            r.metric("whole_bound", 1.0, "x");
        }
    }
    out
}

/// Scaling records as runs wrote them before the whole-recovery bound: `cpu-bound` and
/// `memory-bound`, the replay-only bound alone.
pub(crate) fn scaling_before_whole(cpus: usize, top: f64) -> Vec<Record> {
    scaling_presets(cpus, top, &[("cpu-bound", 450.0, 130_023_424.0), ("memory-bound", 121.0, 260_046_848.0)])
}

/// Scaling records of `presets` (name, 1-worker milliseconds, journal bytes).
fn scaling_presets(cpus: usize, top: f64, presets: &[(&str, f64, f64)]) -> Vec<Record> {
    let ws = worker_counts(cpus);
    let mut out = vec![];
    for &(preset, base_ms, bytes) in presets {
        for &w in &ws {
            let frac = if ws.len() > 1 { (w as f64).log2() / (*ws.last().unwrap_or(&1) as f64).log2() } else { 0.0 };
            let speedup = top.powf(frac);
            let ms = base_ms / speedup;
            let mut r = Record::new("scaling", &format!("{preset} w={w}"), 1)
                .param("preset", preset)
                .param("workers", w as u64)
                .param("executor", "rayon")
                .param("txns", 24_000u64)
                .param("journal_bytes", bytes as u64);
            r.cache = warm();
            r.samples_ms = vec![ms * 1.01, ms, ms * 0.99];
            r.metric("time_ms", ms, "ms");
            r.metric("throughput_mb_s", bytes / 1e6 / (ms / 1e3), "MB/s");
            r.metric("speedup", speedup, "x");
            r.metric("efficiency", speedup / w as f64, "fraction");
            r.metric("bound", if w == 1 { 1.0 } else { 1.0 + (w as f64).log2() * 1.1 }, "x");
            r.metric("scan_ms", ms * 0.4, "ms");
            r.metric("replay_ms", ms * 0.5, "ms");
            r.ceilings.insert("memcpy_1t_gb_s".into(), crate::record::Metric::new(9.91, "GB/s"));
            r.ceilings.insert("memcpy_all_gb_s".into(), crate::record::Metric::new(33.06, "GB/s"));
            out.push(r);
        }
    }
    out
}

/// Records of the `deps` experiment as run.rs writes them: the `cpu-bound` preset at each
/// dependency density, with 1 worker and with `cpus`; the speedup with `cpus` falls from `top`
/// at no copies, at 0.85 of the whole-recovery bound.
pub(crate) fn deps(cpus: usize, top: f64) -> Vec<Record> {
    let mut out = vec![];
    for rate in [0.0, 0.05, 0.1, 0.2, 0.4] {
        let base_ms = 180.0 * (1.0 + rate);
        for w in [1, cpus] {
            let speedup = if w == 1 { 1.0 } else { top / (1.0 + 4.0 * rate) };
            let ms = base_ms / speedup;
            let mut r = Record::new("deps", &format!("deps={rate} w={w}"), 1)
                .param("preset", "cpu-bound")
                .param("deps_rate", rate)
                .param("workers", w as u64)
                .param("executor", "rayon")
                .param("txns", 50_000u64)
                .param("journal_bytes", (40_000_000.0 * (1.0 + rate / 2.0)) as u64);
            r.cache = warm();
            r.samples_ms = vec![ms * 1.01, ms, ms * 0.98];
            r.metric("time_ms", ms, "ms");
            r.metric("speedup", speedup, "x");
            if w == 1 {
                r.metric("whole_bound", 1.0, "x");
                r.metric("bound", 1.0, "x");
            } else {
                r.metric("whole_bound", speedup / 0.85, "x");
                r.metric("whole_bound_any", 20.0 / (1.0 + 10.0 * rate), "x");
                r.metric("bound", w as f64 / (1.0 + 2.0 * rate), "x");
                r.metric("cross_worker_copies", (rate * 300_000.0).round(), "count");
            }
            out.push(r);
        }
    }
    out
}

/// Io records of one record size; `mmap` gets the given `vs_read` per (consumer, cache) cell, in
/// the order scan/warm, scan/cold, recover/warm, recover/cold (missing cells get 1.5).
pub(crate) fn io(mmap_vs_read: &[f64]) -> Vec<Record> {
    io_sized("4K", mmap_vs_read)
}

/// Io records of the record size `record` (as run.rs writes it: `256B`, `4K`).
pub(crate) fn io_sized(record: &str, mmap_vs_read: &[f64]) -> Vec<Record> {
    let mut out = vec![];
    let mut cell = 0;
    for consumer in ["scan", "recover"] {
        for cache in ["warm", "cold"] {
            let vs = mmap_vs_read.get(cell).copied().unwrap_or(1.5);
            cell += 1;
            let read_mb_s = if cache == "warm" { 1300.0 } else { 750.0 };
            for (backend, config, buffer) in [
                ("read", "read-1M", Some(1_048_576u64)),
                ("pread", "pread-1M", Some(1_048_576)),
                ("direct", "direct-1M", Some(1_048_576)),
                ("mmap", "mmap", None),
            ] {
                let mb_s = match backend {
                    "mmap" => read_mb_s * vs,
                    "direct" => read_mb_s * 0.6,
                    "pread" => read_mb_s * 0.98,
                    _ => read_mb_s,
                };
                let mut r = Record::new("io", &format!("{config} {consumer} {cache} {record}"), 1)
                    .param("backend", backend)
                    .param("config", config)
                    .param("buffer_bytes", buffer.map(serde_json::Value::from).unwrap_or(serde_json::Value::Null))
                    .param("consumer", consumer)
                    .param("record", record)
                    .param("journal_bytes", 16_777_216u64)
                    .param("resolved", backend);
                r.cache = if cache == "warm" { warm() } else { cold() };
                let ms = 16.777216 / mb_s * 1e3;
                r.samples_ms = vec![ms, ms * 1.02, ms * 0.97];
                r.metric("time_ms", ms, "ms");
                r.metric("throughput_mb_s", mb_s, "MB/s");
                r.metric("vs_read", mb_s / read_mb_s, "x");
                r.ceilings.insert("memcpy_1t_gb_s".into(), crate::record::Metric::new(9.7, "GB/s"));
                let seq = if cache == "warm" { 7.33 } else { 1.73 };
                r.ceilings.insert("seq_read_gb_s".into(), crate::record::Metric::new(seq, "GB/s"));
                out.push(r);
            }
        }
    }
    out
}

/// Checkpoint records at the cadences of the sweep, crash after and before.
pub(crate) fn checkpoint() -> Vec<Record> {
    let mut out = vec![];
    for every in [375u64, 750, 1500, 3000, 6000, 12000, 24000] {
        for crash in ["after", "before"] {
            let mut r = Record::new("checkpoint", &format!("every {every} {crash}"), 1)
                .param("every_txns", every)
                .param("crash", crash)
                .param("txns", 24_000u64);
            r.cache = warm();
            let skipped = if crash == "after" { 0.943 } else { 1.0 - every as f64 / 24_000.0 * 1.3 };
            let skipped = skipped.clamp(0.0, 1.0);
            r.samples_ms = vec![50.0, 51.0, 49.0];
            r.metric("time_with_ms", 50.0, "ms");
            r.metric("time_without_ms", 40.0, "ms");
            r.metric("time_ratio", 1.25, "x");
            r.metric("bytes_skipped", skipped, "fraction");
            r.metric("records_skipped", (skipped + 0.05).min(0.999), "fraction");
            r.metric("chain_len", 3.0, "count");
            out.push(r);
        }
    }
    out
}

/// Checkpoint records of the current shape (checkpoints as records), as run.rs writes them:
/// every 12,000, 3,000 (the default) and 750 transactions, the crash just after a checkpoint
/// and just before the next is due, each recovered warm and cold. The crash before a checkpoint
/// at the default cadence takes `before_ratio` of the time without, warm and cold; there the
/// crash is 12.5% of the journal after the newest checkpoint (87.5% of its bytes and 88.75% of
/// its records skipped).
pub(crate) fn checkpoint_records(before_ratio: f64) -> Vec<Record> {
    let journal = 64.0 * 1024.0 * 1024.0;
    let mut out = vec![];
    for every in [12_000u64, 3_000, 750] {
        for crash in ["after", "before"] {
            for cache in ["warm", "cold"] {
                let label = if crash == "after" {
                    format!("every-{every} {cache}")
                } else {
                    format!("every-{every}-before {cache}")
                };
                let mut r = Record::new("checkpoint", &label, 1)
                    .param("every_txns", every)
                    .param("crash", crash)
                    .param("txns", if crash == "after" { 24_000u64 } else { 24_000 - every + 10 })
                    .param("style", "incremental")
                    .param("default_cadence", every == 3_000);
                r.cache = if cache == "warm" { warm() } else { cold() };
                let frac = if crash == "after" { 0.002 } else { every as f64 / 24_000.0 };
                let without = if cache == "warm" { 100.0 } else { 400.0 };
                let ratio = match (crash, every) {
                    ("before", 3_000) => before_ratio,
                    ("before", _) => frac * 1.2 + 0.02,
                    _ if cache == "warm" => 0.05,
                    _ => 0.08,
                };
                let with = without * ratio;
                r.samples_ms = vec![with * 1.02, with, with * 0.99];
                r.baseline_samples_ms = vec![without * 1.01, without, without * 0.98];
                r.metric("time_with_ms", with, "ms");
                r.metric("time_without_ms", without, "ms");
                r.metric("time_ratio", ratio, "x");
                r.metric("floor_ratio", ratio * 0.5, "x");
                r.metric("bytes_skipped", 1.0 - frac, "fraction");
                r.metric("records_skipped", 1.0 - frac * 0.9, "fraction");
                r.metric("distance_bytes", (journal * frac).round(), "bytes");
                r.metric("journal_bytes", journal, "bytes");
                r.metric("blocks_written_with", (4000.0 * frac).round() + 12.0, "count");
                r.metric("blocks_written_without", 4000.0, "count");
                r.metric("find_ms", if cache == "warm" { 0.08 } else { 0.31 }, "ms");
                let checkpoints = (24_000 / every) as f64;
                r.metric("checkpoints_written", checkpoints, "count");
                r.metric("redo_lag_records", 500.0, "count");
                r.metric("dirty_at_checkpoint", 300.0, "count");
                r.metric("writer_checkpoint_blocks", checkpoints * 200.0, "count");
                r.metric("writer_background_blocks", 5000.0, "count");
                r.metric("writer_extra_blocks", checkpoints * 150.0, "count");
                r.metric("writer_checkpoint_ms", checkpoints * 1.5, "ms");
                out.push(r);
            }
        }
    }
    out
}

/// Checkpoint-find records: median microseconds to find the newest of 1, 64 and 1,024 records.
pub(crate) fn checkpoint_find_records(us: [f64; 3]) -> Vec<Record> {
    [1u64, 64, 1024]
        .into_iter()
        .zip(us)
        .map(|(n, t)| {
            let mut r = Record::new("checkpoint-find", &format!("{n} records"), 1).param("records", n);
            r.metric("find_us", t, "us");
            r
        })
        .collect()
}

/// Progress records as run.rs writes them: a fast and a slow recovery shape, each without an
/// observer and at 1000 ms (the default) and 100 ms; `gaps` are the longest gaps at 1000 ms.
pub(crate) fn progress(fast_gap: f64, slow_gap: f64) -> Vec<Record> {
    let mut out = vec![];
    for (shape, workers, io, gap) in [("fast", "all", "auto", fast_gap), ("slow", "1", "read", slow_gap)] {
        for interval in [None, Some(1000u64), Some(100)] {
            let label = format!("{shape} {}", interval.map_or("none".to_string(), |v| format!("{v}ms")));
            let mut r = Record::new("progress", &label, 1)
                .param("preset", "default")
                .param("shape", shape)
                .param("interval_ms", interval.map(serde_json::Value::from).unwrap_or(serde_json::Value::Null))
                .param("workers", workers)
                .param("io", io)
                .param("image_io", "pwrite");
            r.cache = warm();
            // The slow shape lasts several intervals; the fast one less than one.
            let t = if shape == "slow" { 4000.0 } else { 300.0 };
            r.samples_ms = vec![t, t + 1.0, t - 1.0];
            r.metric("time_ms", t, "ms");
            r.metric("overhead", if interval.is_some() { 1.01 } else { 1.0 }, "x");
            if let Some(i) = interval {
                r.metric("updates", 3000.0 / i as f64 + 4.0, "count");
                r.metric("gap_max_ms", if i == 1000 { gap } else { 130.0 }, "ms");
                r.metric("gap_p50_ms", i as f64 * 0.6, "ms");
            }
            out.push(r);
        }
    }
    out
}

/// Latency records of the default preset for 1 and `cpus` workers.
pub(crate) fn latency(cpus: usize) -> Vec<Record> {
    let mut out = vec![];
    for w in [1, cpus] {
        let mut r =
            Record::new("latency", &format!("default w={w}"), 1).param("preset", "default").param("workers", w as u64);
        for (name, base) in [("batch_apply", 12.0), ("segment_read", 800.0)] {
            for (p, f) in [("p50", 1.0), ("p99", 4.0), ("p999", 9.0), ("max", 40.0)] {
                r.metric(&format!("{name}_{p}_us"), base * f * (1.0 + w as f64 / 8.0), "us");
            }
            r.metric(&format!("{name}_count"), 1000.0, "count");
        }
        out.push(r);
    }
    out
}

/// Bandwidth records of the default preset per worker count.
pub(crate) fn bandwidth(cpus: usize) -> Vec<Record> {
    worker_counts(cpus)
        .into_iter()
        .map(|w| {
            let mut r = Record::new("bandwidth", &format!("default w={w}"), 1)
                .param("preset", "default")
                .param("workers", w as u64);
            r.cache = warm();
            r.samples_ms = vec![140.0 / w as f64];
            r.metric("time_ms", 140.0 / w as f64, "ms");
            r.metric("throughput_mb_s", 2000.0 * (w as f64).sqrt(), "MB/s");
            r.metric("of_memcpy", 0.21 / (w as f64).sqrt().max(1.0) * 1.5, "x");
            r.ceilings.insert("memcpy_1t_gb_s".into(), crate::record::Metric::new(9.91, "GB/s"));
            r.ceilings.insert("memcpy_all_gb_s".into(), crate::record::Metric::new(33.06, "GB/s"));
            r
        })
        .collect()
}

/// A run with every experiment.
pub(crate) fn full_run(cpus: usize, sha: &str) -> (Env, Vec<Record>) {
    let env = env(cpus, sha, "2026-11-26T10:00:00Z");
    let mut records = scaling(cpus, 3.1);
    records.extend(deps(cpus, 1.8));
    records.extend(io(&[3.5, 1.2]));
    records.extend(checkpoint());
    records.extend(progress(812.0, 905.0));
    records.extend(latency(cpus));
    records.extend(bandwidth(cpus));
    (env, records)
}

/// A run with every experiment, its checkpoint records of the current shape (checkpoints as
/// records) with checkpoint-find.
pub(crate) fn full_run_current(cpus: usize, sha: &str) -> (Env, Vec<Record>) {
    let (env, records) = full_run(cpus, sha);
    let mut out: Vec<Record> = Vec::new();
    for r in records {
        if r.experiment == "checkpoint" {
            if !out.iter().any(|o| o.experiment == "checkpoint") {
                out.extend(checkpoint_records(0.15));
                out.extend(checkpoint_find_records([12.0, 13.5, 16.0]));
            }
        } else {
            out.push(r);
        }
    }
    (env, out)
}

/// An older 16-CPU run and a newer 2-CPU run.
pub(crate) fn two_runs() -> (Run, Run) {
    let (old_env, old_records) = full_run(16, "a94a590663e3aa");
    let mut old_env = old_env;
    old_env.started = "2026-11-25T09:00:00Z".into();
    old_env.run = "2026-11-25-test16-a94a590".into();
    let (new_env, new_records) = full_run(2, "70888f678e1cbb");
    let old = Run { dir_name: old_env.run.clone(), env: old_env, records: old_records };
    let new = Run { dir_name: new_env.run.clone(), env: new_env, records: new_records };
    (old, new)
}
