//! Journal I/O sweep: prints NDJSON, one provenance line (machine, same-run ceilings, the
//! journals generated), one line per (record, consumer, cache, backend configuration), and a
//! closing line with the sweep's own timings.
//!
//! Usage: `io_sweep [--journal-mib 256] [--records 256B,4K,64K] [--consumers scan,recover]
//! [--caches warm,cold] [--backends all|read-1M,mmap,...] [--reps 5] [--seed 1]
//! [--workers N] [--ceiling-reps N] [--out FILE] [--tmp DIR]`. Run through `scripts/io-sweep.sh`.
//!
//! Within one (record, consumer, cache) cell the configurations take turns, one run each per
//! repetition, starting one place later every repetition: drift on a shared machine then
//! lands on every configuration alike instead of on whichever ran last.

use std::collections::BTreeSet;
use std::time::Instant;

use bench::io::{CacheState, Config, Consumer, IoJournal, Sample, SeqRead};

const KNOWN: [&str; 11] = [
    "--journal-mib",
    "--records",
    "--consumers",
    "--caches",
    "--backends",
    "--reps",
    "--seed",
    "--workers",
    "--out",
    "--tmp",
    "--ceiling-reps",
];

fn mb_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / secs / 1e6
}

fn main() -> Result<(), String> {
    let started = Instant::now();
    let args = bench::args::Args::from_env(&KNOWN)?;
    let journal_mib: u64 = args.parsed("--journal-mib", 256)?;
    let records: Vec<String> =
        args.get("--records").unwrap_or_else(|| bench::io::RECORDS.join(",")).split(',').map(String::from).collect();
    for r in &records {
        bench::io::record_params(r, 0)?;
    }
    let consumers: Vec<Consumer> = bench::io::parse_list(&args.get("--consumers").unwrap_or("scan,recover".into()))?;
    let caches: Vec<CacheState> = bench::io::parse_list(&args.get("--caches").unwrap_or("warm,cold".into()))?;
    let cfgs = bench::io::select_configs(&args.get("--backends").unwrap_or_else(|| "all".into()))?;
    let reps: usize = args.parsed("--reps", 5)?;
    let ceiling_reps: usize = args.parsed("--ceiling-reps", reps.max(3))?;
    let seed: u64 = args.parsed("--seed", 1)?;
    let workers: Option<usize> =
        args.get("--workers").map(|s| s.parse()).transpose().map_err(|e| format!("--workers: {e}"))?;
    if reps == 0 || cfgs.is_empty() || consumers.is_empty() || caches.is_empty() || records.is_empty() {
        return Err("nothing to measure: reps, backends, consumers, caches and records must be non-empty".into());
    }
    let tmp = args.get("--tmp").map(std::path::PathBuf::from);
    if let Some(t) = &tmp {
        std::fs::create_dir_all(t).map_err(|e| format!("--tmp {}: {e}", t.display()))?;
    }
    let tmp_dir = tmp.clone().unwrap_or_else(std::env::temp_dir);
    let fs = bench::io::file_system_of(&tmp_dir);
    if let Some((fstype, _, _)) = &fs {
        if fstype == "tmpfs" || fstype == "ramfs" {
            eprintln!(
                "warning: {} is on {fstype}: cold-cache and direct-I/O figures will mean nothing",
                tmp_dir.display()
            );
        }
    }
    let mut out = bench::args::Ndjson::create(args.get("--out"))?;

    let prov = bench::Provenance::collect();
    let target = journal_mib << 20;
    eprintln!("ceilings: memcpy over {journal_mib} MiB, single thread and {} threads...", prov.cpus);
    let t = Instant::now();
    let (memcpy_1t, memcpy_1t_samples) = bench::memcpy_bandwidth(target as usize, ceiling_reps);
    // Each thread copies its share of the journal size, but at least 16 MiB so no buffer
    // fits in a cache and the figure stays a memory bandwidth.
    let per_thread = (target as usize / prov.cpus).max(16 << 20);
    let (memcpy_nt, memcpy_nt_samples) = bench::memcpy_bandwidth_threads(prov.cpus, per_thread, ceiling_reps);
    let mut ceilings_secs = t.elapsed().as_secs_f64();

    let mut journals: Vec<IoJournal> = Vec::new();
    let mut seqread: Vec<(SeqRead, SeqRead)> = Vec::new();
    let t_gen = Instant::now();
    for r in &records {
        eprintln!("generating {r} (seed {seed}, about {journal_mib} MiB of journal)...");
        let j = bench::io::prepare(r, seed, target, tmp.as_deref())?;
        eprintln!(
            "  {r}: {} txns, {:.1} MiB journal in {} segments, {} records; pilot {:.1} s, generation {:.1} s",
            j.params.txns,
            j.journal_bytes() as f64 / f64::from(1 << 20),
            j.segments.len(),
            j.records,
            j.pilot_secs,
            j.gen_secs
        );
        journals.push(j);
    }
    let gen_secs = t_gen.elapsed().as_secs_f64();
    let t = Instant::now();
    for j in &journals {
        let warm = j.seq_read_ceiling(CacheState::Warm, ceiling_reps)?;
        let cold = j.seq_read_ceiling(CacheState::Cold, ceiling_reps)?;
        eprintln!(
            "  {} sequential read(2), 1 MiB buffer: warm {:.0} MB/s, cold {:.0} MB/s (residency after eviction {:.3}-{:.3})",
            j.record,
            warm.bytes_per_s / 1e6,
            cold.bytes_per_s / 1e6,
            cold.residency_min,
            cold.residency_max
        );
        seqread.push((warm, cold));
    }
    ceilings_secs += t.elapsed().as_secs_f64();

    let header = serde_json::json!({
        "schema": 1,
        "experiment": "io-provenance",
        "provenance": prov,
        "ceilings": {
            "memcpy_bytes": target,
            "memcpy_1t_bytes_per_s": memcpy_1t,
            "memcpy_1t_samples": memcpy_1t_samples,
            "memcpy_all_threads": prov.cpus,
            "memcpy_all_threads_bytes_per_thread": per_thread,
            "memcpy_all_threads_bytes_per_s": memcpy_nt,
            "memcpy_all_threads_samples": memcpy_nt_samples,
            "seqread": journals.iter().zip(&seqread).map(|(j, (w, c))| {
                (j.record.clone(), serde_json::json!({ "warm": w, "cold": c }))
            }).collect::<serde_json::Map<_, _>>(),
        },
        "params": {
            "journal_mib": journal_mib,
            "records": records,
            "consumers": consumers.iter().map(|c| c.name()).collect::<Vec<_>>(),
            "caches": caches.iter().map(|c| c.name()).collect::<Vec<_>>(),
            "backends": cfgs.iter().map(|c| c.label.clone()).collect::<Vec<_>>(),
            "reps": reps,
            "ceiling_reps": ceiling_reps,
            "seed": seed,
            "workers": workers,
            "tmp": tmp_dir,
            "file_system": fs.as_ref().map(|(t, s, m)| serde_json::json!({ "type": t, "source": s, "mount": m })),
        },
        "configs": cfgs.iter().map(|c| serde_json::json!({ "label": c.label, "io": c.io })).collect::<Vec<_>>(),
        "journals": journals.iter().map(|j| (j.record.clone(), serde_json::json!({
            "journal_bytes": j.journal_bytes(),
            "segments": j.segments.len(),
            "records": j.records,
            "last_lsn": j.last_lsn,
            "txns": j.params.txns,
            "block_size": j.params.block_size,
            "block_count": j.params.block_count,
            "full_block_fraction": j.params.full_block_fraction,
            "partial_len": j.params.partial_len,
            "journal_block_size": j.params.journal_block_size,
            "pilot_secs": j.pilot_secs,
            "gen_secs": j.gen_secs,
        }))).collect::<serde_json::Map<_, _>>(),
    });
    out.line(&header)?;

    let t_cells = Instant::now();
    let mut verify_secs = 0.0;
    let mut verified: BTreeSet<(String, String)> = BTreeSet::new();
    for (j, (warm_read, cold_read)) in journals.iter().zip(&seqread) {
        for &consumer in &consumers {
            for &cache in &caches {
                if consumer == Consumer::Recover {
                    // Every configuration's recovery is checked against the oracle once,
                    // untimed, before any of its runs count.
                    let t = Instant::now();
                    for cfg in &cfgs {
                        if verified.insert((j.record.clone(), cfg.label.clone())) {
                            j.verify(cfg, workers)?;
                        }
                    }
                    verify_secs += t.elapsed().as_secs_f64();
                }
                if cache == CacheState::Warm {
                    j.warm_up()?;
                }
                let n = cfgs.len();
                let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); n];
                for rep in 0..reps {
                    let t = Instant::now();
                    for k in 0..n {
                        let i = (k + rep) % n;
                        let s = j.sample(consumer, cache, &cfgs[i], workers)?;
                        j.check_sample(&cfgs[i], &s)?;
                        samples[i].push(s);
                    }
                    eprintln!(
                        "{} {} {} rep {}/{reps}: {:.1} s",
                        j.record,
                        consumer.name(),
                        cache.name(),
                        rep + 1,
                        t.elapsed().as_secs_f64()
                    );
                }
                eprintln!("{} {} {}, median of {reps}:", j.record, consumer.name(), cache.name());
                for (cfg, ss) in cfgs.iter().zip(&samples) {
                    let line = cell_line(j, consumer, cache, cfg, ss, memcpy_1t, warm_read, cold_read);
                    eprintln!(
                        "  {:<10} {:>8.0} MB/s  residency {:.3}-{:.3}",
                        cfg.label,
                        line["mb_per_s"].as_f64().unwrap_or(0.0),
                        line["residency_min"].as_f64().unwrap_or(0.0),
                        line["residency_max"].as_f64().unwrap_or(0.0)
                    );
                    out.line(&line)?;
                }
            }
        }
    }
    let cells_secs = t_cells.elapsed().as_secs_f64();
    out.line(&serde_json::json!({
        "schema": 1,
        "experiment": "io-sweep-time",
        "wall_secs": started.elapsed().as_secs_f64(),
        "ceilings_secs": ceilings_secs,
        "generation_secs": gen_secs,
        "verify_secs": verify_secs,
        "cells_secs": cells_secs,
        "runs": records.len() * consumers.len() * caches.len() * cfgs.len() * reps,
    }))?;
    eprintln!(
        "done in {:.0} s: generation {gen_secs:.0} s, ceilings {ceilings_secs:.0} s, verification {verify_secs:.0} s, \
         timed cells {cells_secs:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[expect(clippy::too_many_arguments, reason = "one NDJSON line gathers everything a cell measured")]
fn cell_line(
    j: &IoJournal,
    consumer: Consumer,
    cache: CacheState,
    cfg: &Config,
    ss: &[Sample],
    memcpy_1t: f64,
    warm_read: &SeqRead,
    cold_read: &SeqRead,
) -> serde_json::Value {
    let bytes = j.journal_bytes();
    let secs: Vec<f64> = ss.iter().map(|s| s.secs).collect();
    let median = bench::median(&mut secs.clone());
    let bytes_per_s = bytes as f64 / median;
    let resolved: BTreeSet<&str> = ss.iter().map(|s| s.backend.name()).collect();
    let resolved: Vec<&str> = resolved.into_iter().collect();
    let notes: BTreeSet<&String> = ss.iter().flat_map(|s| &s.notes).collect();
    let buffered = ss.iter().all(|s| s.backend != recovery::IoBackend::Mmap);
    let (res_min, res_max) = bench::io::residency_range(ss.iter().map(|s| s.residency));
    let ceiling = match cache {
        CacheState::Warm => serde_json::json!({
            "memcpy_1t": bytes_per_s / memcpy_1t,
            "seqread_warm": bytes_per_s / warm_read.bytes_per_s,
        }),
        CacheState::Cold => serde_json::json!({ "seqread_cold": bytes_per_s / cold_read.bytes_per_s }),
    };
    let mut line = serde_json::json!({
        "schema": 1,
        "experiment": "io",
        "record": j.record,
        "consumer": consumer.name(),
        "cache": cache.name(),
        "backend": cfg.label,
        "resolved_backend": resolved.join(","),
        "buffer_bytes": if buffered { Some(cfg.io.buffer_bytes) } else { None },
        "journal_bytes": bytes,
        "records": j.records,
        "reps": ss.len(),
        "seconds_median": median,
        "seconds": secs,
        "mb_per_s": bytes_per_s / 1e6,
        "mb_per_s_samples": ss.iter().map(|s| mb_s(bytes, s.secs)).collect::<Vec<_>>(),
        "ceiling_fraction": ceiling,
        "minor_faults_median": bench::median(&mut ss.iter().map(|s| s.minor_faults as f64).collect::<Vec<_>>()),
        "major_faults_median": bench::median(&mut ss.iter().map(|s| s.major_faults as f64).collect::<Vec<_>>()),
        "residency_min": res_min,
        "residency_max": res_max,
        "notes": notes,
    });
    if consumer == Consumer::Recover {
        let mut scan: Vec<f64> = ss.iter().filter_map(|s| s.scan_ms).collect();
        let (at_start_min, at_start_max) = bench::io::residency_range(ss.iter().filter_map(|s| s.resident_at_start));
        line["scan_phase_ms"] = scan.clone().into();
        line["scan_phase_ms_median"] = if scan.is_empty() { None } else { Some(bench::median(&mut scan)) }.into();
        line["resident_at_start_min"] = at_start_min.into();
        line["resident_at_start_max"] = at_start_max.into();
        line["workers"] = ss.first().and_then(|s| s.workers).into();
    }
    line
}
