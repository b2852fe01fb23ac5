//! Checkpoint-cadence sweep: prints NDJSON, one provenance line, one line per cadence (replay
//! scope saved, recovery time with and without checkpoints, checkpoints on disk), one line per
//! compression for the cost of writing a full checkpoint, and a closing line with the sweep's
//! own timings.
//!
//! Usage: `checkpoint_sweep [--cadences none,24000,12000,6000,3000,1500,750,375]
//! [--phases after,before] [--reps 5] [--seed 1] [--preset default] [--create-reps N]
//! [--compressions zstd,lz4,none] [--tmp DIR] [--out FILE]`. Run through
//! `scripts/checkpoint-sweep.sh`.
//!
//! Each cadence is generated once per crash phase (`none` only once: without checkpoints the
//! phase means nothing); see `bench::checkpoint` for what the phases are.

use std::time::Instant;

use recovery::checkpoint::Compression;

const KNOWN: [&str; 9] =
    ["--cadences", "--phases", "--reps", "--seed", "--preset", "--create-reps", "--compressions", "--tmp", "--out"];

/// The 1, 5 and 15 minute load averages.
fn loadavg() -> Option<Vec<f64>> {
    let s = std::fs::read_to_string("/proc/loadavg").ok()?;
    s.split_whitespace().take(3).map(|x| x.parse().ok()).collect()
}

/// CPU time so far, in clock ticks: (busy, total) of the whole machine from /proc/stat, and
/// this process's own (user + system, waited-for children included). A small machine shared
/// with other work gives noisy times; the difference between the machine's busy time and this
/// process's over the sweep says how much of it others took.
fn cpu_ticks() -> Option<(u64, u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let f: Vec<u64> = stat.lines().next()?.split_whitespace().skip(1).map(|x| x.parse().ok()).collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total: u64 = f.iter().take(8).sum();
    let idle = f.get(3)? + f.get(4)?;
    let me = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime is field 14 of the whole line.
    let rest: Vec<u64> =
        me.rsplit_once(')')?.1.split_whitespace().skip(11).take(4).filter_map(|x| x.parse().ok()).collect();
    Some((total - idle, total, rest.iter().sum()))
}

fn main() -> Result<(), String> {
    let started = Instant::now();
    let ticks_at_start = cpu_ticks();
    let args = bench::args::Args::from_env(&KNOWN)?;
    let cadences = bench::checkpoint::parse_cadences(
        &args.get("--cadences").unwrap_or_else(|| bench::checkpoint::CADENCES_DEFAULT.into()),
    )?;
    let phases = bench::checkpoint::parse_phases(
        &args.get("--phases").unwrap_or_else(|| bench::checkpoint::PHASES_DEFAULT.into()),
    )?;
    let reps: usize = args.parsed("--reps", 5)?;
    let create_reps: usize = args.parsed("--create-reps", reps)?;
    let seed: u64 = args.parsed("--seed", 1)?;
    let preset = args.get("--preset").unwrap_or_else(|| "default".into());
    let compressions: Vec<Compression> = args
        .get("--compressions")
        .unwrap_or_else(|| "zstd,lz4,none".into())
        .split(',')
        .map(|s| s.parse::<Compression>().map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    if reps == 0 {
        return Err("--reps must be at least 1".into());
    }
    let tmp = args.get("--tmp").map(std::path::PathBuf::from);
    if let Some(t) = &tmp {
        std::fs::create_dir_all(t).map_err(|e| format!("--tmp {}: {e}", t.display()))?;
    }
    let tmp_dir = tmp.clone().unwrap_or_else(std::env::temp_dir);
    let fs = bench::io::file_system_of(&tmp_dir);
    let mut out = bench::args::Ndjson::create(args.get("--out"))?;

    let mut gen_secs = 0.0;
    let phase_txns = if phases.contains(&bench::checkpoint::Phase::Before) {
        eprintln!("finding the transaction count that puts the crash just before a checkpoint...");
        let t = Instant::now();
        let pt = bench::checkpoint::phase_txns(&preset, seed, tmp.as_deref())?;
        gen_secs += t.elapsed().as_secs_f64();
        Some(pt)
    } else {
        None
    };
    let base = bench::checkpoint::params(&preset, seed, None, None)?;
    let image_bytes = base.block_count as usize * base.block_size as usize;
    let prov = bench::Provenance::collect();
    eprintln!("memcpy ceiling over {} MiB...", image_bytes >> 20);
    let (memcpy, memcpy_samples) = bench::memcpy_bandwidth(image_bytes, reps.max(3));
    out.line(&serde_json::json!({
        "schema": 1,
        "experiment": "checkpoint-provenance",
        "provenance": prov,
        "seed": seed,
        "params": {
            "preset": preset,
            "seed": seed,
            "reps": reps,
            "create_reps": create_reps,
            "cadences": cadences.iter().map(|&c| bench::checkpoint::label(c)).collect::<Vec<_>>(),
            "phases": phases,
            "txns": base.txns,
            "phase_txns": phase_txns.as_ref().map(|p| serde_json::json!({
                "after": p.after,
                "overshoot": p.overshoot,
                "margin": bench::checkpoint::BEFORE_MARGIN_TXNS,
                "before": p.before,
            })),
            "image_bytes": image_bytes,
            "default_cadence_txns": bench::checkpoint::default_cadence_txns(),
            "default_cadence": workloads::params::Cadence::DEFAULT,
            "plan": workloads::params::CheckpointPlan::default(),
            "compressions": compressions,
            "workers": "the engine's default",
            "tmp": tmp_dir,
            "file_system": fs.as_ref().map(|(t, s, m)| serde_json::json!({ "type": t, "source": s, "mount": m })),
        },
        "memcpy_1t_bytes_per_s": memcpy,
        "memcpy_1t_samples": memcpy_samples,
        "memcpy_bytes": image_bytes,
        "loadavg_at_start": loadavg(),
    }))?;

    let (mut verify_secs, mut create_secs, mut recoveries) = (0.0, 0.0, 0usize);
    let mut created = false;
    for &phase in &phases {
        for &every in &cadences {
            if every.is_none() && phase != bench::checkpoint::Phase::After {
                continue;
            }
            let name = bench::checkpoint::state_label(every, phase);
            let txns = match phase {
                bench::checkpoint::Phase::After => None,
                bench::checkpoint::Phase::Before => phase_txns.as_ref().map(|p| p.before),
            };
            eprintln!("{name}: generating {preset} (seed {seed})...");
            let p = bench::checkpoint::prepare(&preset, seed, every, phase, txns, tmp.as_deref())?;
            gen_secs += p.gen_secs;
            let m = bench::checkpoint::measure(&p, reps)?;
            verify_secs += m.verify_secs;
            recoveries += 2 * reps + 2;
            let line = bench::checkpoint::record(&p, &m, reps)?;
            out.line(&line)?;
            let s = bench::checkpoint::scope_of(&p, &m.with, &m.without)?;
            eprintln!(
                "{name}: generated in {:.1} s ({} checkpoints); {:.1}% of journal bytes not read, {:.1}% of records \
                 not replayed; recovery {:.1} ms with, {:.1} ms without (ratio {:.2})",
                p.gen_secs,
                p.summary.checkpoints,
                s.bytes_not_read * 100.0,
                s.records_not_replayed * 100.0,
                m.with_median() * 1e3,
                m.without_median() * 1e3,
                m.with_median() / m.without_median()
            );
            if !p.checkpoints_unchanged() {
                eprintln!("{name}: warning: the checkpoint directory changed during recovery");
            }
            if !s.unread_agrees_with_report {
                eprintln!("{name}: warning: the unread segments' bytes differ from the report's");
            }
            if !created {
                // The image every cadence recovers to is the preset's committed state; one
                // verified recovery puts it in place for the writes to copy from.
                let t = Instant::now();
                p.run(true, true)?;
                recoveries += 1;
                let cs = bench::checkpoint::creation(&p.dir, &tmp_dir, &compressions, create_reps)?;
                create_secs = t.elapsed().as_secs_f64();
                for c in &cs {
                    let line = bench::checkpoint::creation_record(c, &format!("{preset} seed {seed}, {name}"), memcpy);
                    out.line(&line)?;
                    let med = bench::median(&mut c.secs.clone());
                    eprintln!(
                        "create full {}: {:.1} ms, {:.0} MB/s raw, ratio {:.2}",
                        c.compression,
                        med * 1e3,
                        c.raw_bytes as f64 / med / 1e6,
                        c.raw_bytes as f64 / c.file_bytes.max(1) as f64
                    );
                }
                created = true;
            }
        }
    }
    out.line(&serde_json::json!({
        "schema": 1,
        "experiment": "checkpoint-sweep-time",
        "wall_secs": started.elapsed().as_secs_f64(),
        "generation_secs": gen_secs,
        "verify_secs": verify_secs,
        "creation_secs": create_secs,
        "recoveries": recoveries,
        "loadavg_at_end": loadavg(),
        "cpu": match (ticks_at_start, cpu_ticks()) {
            (Some((b0, t0, m0)), Some((b1, t1, m1))) if t1 > t0 => {
                let total = (t1 - t0) as f64;
                let this = (m1 - m0) as f64;
                serde_json::json!({
                    "machine_busy_share": (b1 - b0) as f64 / total,
                    "this_sweep_share": this / total,
                    "others_share": ((b1 - b0) as f64 - this).max(0.0) / total,
                })
            }
            _ => serde_json::Value::Null,
        },
    }))?;
    Ok(())
}
