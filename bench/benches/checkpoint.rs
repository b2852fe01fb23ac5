//! `checkpoint/scope`: recovery of one crash state with and without its checkpoint records,
//! for each checkpoint cadence (transactions between checkpoints; default style: incremental,
//! the crash in the middle of the next checkpoint) and crash phase (just after a checkpoint:
//! the preset as it is; just before the next: a few transactions fewer; see
//! `bench::checkpoint`), warm page cache. Ids read `STATE/with` and `STATE/without`, e.g.
//! `every-3000/with` and `every-3000-before/with`; `none/*` is a crash state without
//! checkpoints, where the two should agree. After each state the share of journal bytes not
//! read and of records not replayed is printed, with the same-run median ratio of the two
//! times. `checkpoint/find` times finding the newest of 1 to 1,024 records.
//!
//! Image restores happen outside the timed part (`iter_custom`). Each cadence's result is
//! checked against the oracle once, untimed, each way.
//!
//! Environment: `FASTREC_CKPT_CADENCES` (default `none,24000,12000,6000,3000,1500,750,375`),
//! `FASTREC_CKPT_PHASES` (default `after,before`), `FASTREC_CKPT_PRESET` (default `default`), `FASTREC_BENCH_SEED` (default 1),
//! `FASTREC_CKPT_TMP` (where crash states are generated). `fastrec lab --only checkpoint` is
//! the faster way to the whole table, with cold-cache runs and the writer's cost.

#![expect(missing_docs, reason = "criterion_group! generates an undocumented pub fn")]

use std::time::Duration;

use bench::checkpoint::Phase;
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.into())
}

fn scope(c: &mut Criterion) {
    let cadences =
        bench::checkpoint::parse_cadences(&env_or("FASTREC_CKPT_CADENCES", bench::checkpoint::CADENCES_DEFAULT))
            .expect("FASTREC_CKPT_CADENCES: none or transaction counts, comma-separated");
    let preset = env_or("FASTREC_CKPT_PRESET", "default");
    let seed: u64 = env_or("FASTREC_BENCH_SEED", "1").parse().expect("FASTREC_BENCH_SEED is a number");
    let phases = bench::checkpoint::parse_phases(&env_or("FASTREC_CKPT_PHASES", bench::checkpoint::PHASES_DEFAULT))
        .expect("FASTREC_CKPT_PHASES: after and/or before, comma-separated");
    let tmp = std::env::var_os("FASTREC_CKPT_TMP").map(std::path::PathBuf::from);
    let before_txns = phases.contains(&Phase::Before).then(|| {
        bench::checkpoint::phase_txns(&preset, seed, tmp.as_deref()).expect("find the crash-before count").before
    });
    let mut g = c.benchmark_group("checkpoint/scope");
    // Runs take hundreds of milliseconds: flat sampling keeps it to one run per sample.
    g.sample_size(10).sampling_mode(SamplingMode::Flat).warm_up_time(Duration::from_millis(500));
    let states = phases.iter().flat_map(|&ph| cadences.iter().map(move |&c| (ph, c)));
    for (phase, every) in states.filter(|&(ph, c)| c.is_some() || ph == Phase::After) {
        let name = bench::checkpoint::state_label(every, phase);
        let txns = if phase == Phase::Before { before_txns } else { None };
        // One crash state at a time: each holds a full journal and image.
        let p = bench::checkpoint::prepare(&preset, seed, every, phase, txns, tmp.as_deref())
            .expect("generate crash state");
        println!(
            "{name}: {preset} seed {seed}, {} checkpoints written, {:.1} MiB journal (generated in {:.1} s, checkpoints \
             included)",
            p.summary.checkpoints,
            p.summary.journal_bytes as f64 / f64::from(1 << 20),
            p.gen_secs
        );
        // Verified, untimed runs each way; their reports give the scope.
        let warm = bench::checkpoint::Cache::Warm;
        let (_, with, _) = p.run(true, true, warm).expect("recovery with checkpoints matches the oracle");
        let (_, without, _) = p.run(false, true, warm).expect("recovery without checkpoints matches the oracle");
        g.throughput(Throughput::Bytes(without.journal_bytes));
        let mut medians = [0.0; 2];
        for (i, use_checkpoints) in [true, false].into_iter().enumerate() {
            let mut samples = Vec::new();
            let id = format!("{name}/{}", if use_checkpoints { "with" } else { "without" });
            g.bench_function(id, |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let (secs, _, _) = p.run(use_checkpoints, false, warm).expect("timed recovery");
                        samples.push(secs);
                        total += Duration::from_secs_f64(secs);
                    }
                    total
                })
            });
            medians[i] = bench::median(&mut samples);
        }
        let s = bench::checkpoint::scope(&p, &with, &without);
        let used = with.checkpoint.as_ref().map_or_else(
            || "no checkpoint used".to_string(),
            |ck| format!("checkpoint {} ({}) at LSN {}, redo from {}", ck.seq, ck.kind, ck.lsn, ck.redo_start),
        );
        println!(
            "{name}: {used}; {:.1}% of journal bytes not read ({} of {}), {:.1}% of records not replayed; median \
             {:.1} ms with / {:.1} ms without = {:.2}",
            s.bytes_not_read * 100.0,
            s.journal_bytes_skipped,
            s.journal_bytes,
            s.records_not_replayed * 100.0,
            medians[0] * 1e3,
            medians[1] * 1e3,
            medians[0] / medians[1]
        );
        if !p.checkpoints_unchanged() {
            println!("{name}: warning: recovery changed the checkpoint directory beyond its final record");
        }
    }
    g.finish();
}

fn find(c: &mut Criterion) {
    use recovery::checkpoint::{CheckpointKind, CheckpointRecord};
    let layout = recovery::image::Layout::new(recovery::image::Geometry {
        block_size: 4096,
        block_count: 16_384,
        inode_count: 16_384,
        image_id: 1,
    })
    .expect("layout");
    let mut g = c.benchmark_group("checkpoint/find");
    for n in [1u64, 64, 1024] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cdir = tmp.path().join(recovery::dir::CHECKPOINT_DIR);
        std::fs::create_dir_all(&cdir).expect("mkdir");
        for i in 0..n {
            let r = CheckpointRecord::new(&layout, CheckpointKind::Full, 100 * (i + 1), Vec::new(), Vec::new());
            if i + 1 == n {
                recovery::checkpoint::write(tmp.path(), r).expect("write the newest record and its pointer");
            } else {
                let r = CheckpointRecord { seq: i + 1, ..r };
                std::fs::write(cdir.join(recovery::checkpoint::file_name(r.seq)), r.encode()).expect("write record");
            }
        }
        g.bench_function(format!("{n}-records"), |b| {
            b.iter(|| recovery::checkpoint::select(tmp.path(), &layout, 1).expect("select"))
        });
    }
    g.finish();
}

criterion_group!(benches, scope, find);
criterion_main!(benches);
