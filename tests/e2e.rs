//! End to end: generated crash states (with the oracle's expected image) recovered by the engine,
//! for hundreds of seeds across policies, crash kinds and address distributions; idempotence;
//! crashes during recovery; and bad input per mode.

mod common;
use common::generate;

use std::path::Path;

use recovery::{recover, Error, FaultPoint, ImageIo, IoBackend, IoOptions, RecoverOptions, RecoveryMode};
use workloads::{AddressDist, CrashKind, GenParams, Policy, Preset};

const DISTS: [AddressDist; 4] = [
    AddressDist::Uniform,
    AddressDist::Zipf { skew: 1.1 },
    AddressDist::Sequential,
    AddressDist::HotSet { fraction: 0.05, probability: 0.8 },
];

fn params(seed: u64) -> GenParams {
    let mut p = Preset::Small.params(seed);
    p.policy = Policy::ALL[(seed % 2) as usize];
    p.crash = CrashKind::ALL[((seed / 2) % CrashKind::ALL.len() as u64) as usize];
    p.address = DISTS[((seed / 10) % DISTS.len() as u64) as usize];
    p
}

fn assert_matches(dir: &Path, what: &str) {
    let v = workloads::digest::verify_dir(dir).expect("verify");
    assert!(v.matches, "{what}: {} of {} blocks differ, first {:?}", v.bad_blocks, v.blocks, v.first_bad_block);
}

#[test]
fn two_hundred_and_forty_seeds_recover_to_the_oracle_and_again_to_the_same_image() {
    for seed in 0..240u64 {
        let p = params(seed);
        let what = format!("seed {seed} ({} {:?} {:?})", p.policy.name(), p.crash, p.address);
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("c");
        generate(&dir, &p);
        let report = recover(&dir, &RecoverOptions::default()).unwrap_or_else(|e| panic!("{what}: recover: {e}"));
        assert!(report.records_scanned > 0, "{what}");
        assert_matches(&dir, &what);
        let first = std::fs::read(dir.join("image.img")).expect("read");
        let again =
            recover(&dir, &RecoverOptions { force: true, ..RecoverOptions::default() }).expect("second recovery");
        assert!(!again.already_recovered);
        assert_eq!(
            std::fs::read(dir.join("image.img")).expect("read"),
            first,
            "{what}: second recovery changed the image"
        );
    }
}

#[test]
fn the_read_backend_and_a_tiny_memory_budget_agree_with_the_oracle() {
    let mut several_windows = 0;
    for seed in 0..12u64 {
        let p = params(seed);
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("c");
        generate(&dir, &p);
        // The crash state's analysis: after recovery the journal starts at the checkpoint
        // record recovery writes at its end.
        let (layout, _, _, analysis) =
            recovery::analyze_dir(&dir, RecoveryMode::TolerateTail, &IoOptions::with(IoBackend::Read))
                .expect("analyze");
        let r = recover(
            &dir,
            &RecoverOptions {
                // No segment cache: every pass reads its segments again.
                io: IoOptions { backend: IoBackend::Read, cache_bytes: 0, ..IoOptions::default() },
                image_io: ImageIo::Pwrite,
                memory_budget_bytes: recovery::recover::MEMORY_BUDGET_MIN,
                ..RecoverOptions::default()
            },
        )
        .expect("recover");
        let cache_blocks = recovery::recover::MEMORY_BUDGET_MIN / (layout.geometry.block_size as u64 + 64);
        if analysis.touched.len() as u64 > cache_blocks {
            assert!(
                r.windows > 1,
                "seed {seed}: {} touched blocks, {cache_blocks} fit, yet one window",
                analysis.touched.len()
            );
            several_windows += 1;
        }
        assert_matches(&dir, &format!("seed {seed}, read backend, {} windows", r.windows));
    }
    assert!(several_windows > 0, "no seed exercised windowed recovery");
}

#[test]
fn crashes_during_recovery_are_repaired_by_the_next_one() {
    for seed in 0..20u64 {
        let p = params(seed);
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("c");
        generate(&dir, &p);
        let image_io = if seed % 2 == 0 { ImageIo::Mmap } else { ImageIo::Pwrite };
        for (i, fault) in [
            FaultPoint::AfterBlockWrites(1 + seed % 5),
            FaultPoint::AfterBlockWrites(17 + seed),
            FaultPoint::BeforeMarker,
        ]
        .into_iter()
        .enumerate()
        {
            match recover(&dir, &RecoverOptions { fault: Some(fault), image_io, ..RecoverOptions::default() }) {
                Err(Error::InjectedFault(_)) => {}
                // Fewer dirty blocks than the fault point: recovery finished first.
                Ok(_) if i < 2 => std::fs::remove_file(dir.join(recovery::dir::MARKER_FILE)).expect("remove marker"),
                other => panic!("seed {seed}: fault {fault:?}: {other:?}"),
            }
        }
        recover(&dir, &RecoverOptions::default()).expect("final recovery");
        assert_matches(&dir, &format!("seed {seed} after crashes during recovery"));
    }
}

#[test]
fn recovery_killed_with_sigkill_is_completed_by_the_next_run() {
    let bin = env!("CARGO_BIN_EXE_fastrec");
    let mut interrupted = 0;
    for (seed, delay_ms) in [(1u64, 2u64), (2, 5), (3, 10), (4, 20), (5, 40), (6, 80)] {
        let mut p = Preset::Small.params(seed);
        p.txns *= 20;
        p.policy = Policy::ALL[(seed % 2) as usize];
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("c");
        generate(&dir, &p);
        let mut child =
            std::process::Command::new(bin).args(["recover", "--quiet"]).arg(&dir).spawn().expect("spawn fastrec");
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL; it may already have finished
        let status = child.wait().expect("wait");
        // Killed before it wrote the marker: the run really was interrupted.
        if !status.success() && !dir.join(recovery::dir::MARKER_FILE).exists() {
            interrupted += 1;
        }
        recover(&dir, &RecoverOptions::default()).expect("recovery after SIGKILL");
        assert_matches(&dir, &format!("seed {seed} killed after {delay_ms} ms"));
    }
    assert!(interrupted > 0, "no kill landed during a recovery; the test proved nothing");
}

#[test]
fn flipped_bits_mid_journal_per_mode() {
    let p = params(4);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("c");
    generate(&dir, &p);
    let flips = workloads::corrupt::corrupt(&dir, workloads::corrupt::CorruptTarget::Journal, 3, 9).expect("corrupt");
    assert_eq!(flips.len(), 3);
    let before = std::fs::read(dir.join("image.img")).expect("read");
    let err = recover(&dir, &RecoverOptions { mode: RecoveryMode::Absolute, ..RecoverOptions::default() })
        .expect_err("absolute");
    match &err {
        Error::Corrupt { path, .. } => assert!(flips.iter().any(|f| &f.path == path), "{err}"),
        other => panic!("unexpected {other}"),
    }
    assert_eq!(std::fs::read(dir.join("image.img")).expect("read"), before, "absolute mode touched the image");
    // Tolerate-tail refuses, unless every flip landed in what it may cut as the tail.
    match recover(&dir, &RecoverOptions::default()) {
        Err(e) => {
            assert!(matches!(e, Error::MidJournalCorruption { .. }), "{e}");
            assert_eq!(std::fs::read(dir.join("image.img")).expect("read"), before);
        }
        Ok(r) => {
            let tail = r.tail.expect("accepting damage means cutting a tail");
            let last = flips.iter().map(|f| &f.path).max().expect("flips");
            assert!(
                flips.iter().all(|f| &f.path == last && f.offset >= tail.offset),
                "flips {flips:?} before the cut {tail:?}"
            );
            std::fs::remove_file(dir.join(recovery::dir::MARKER_FILE)).expect("marker");
        }
    }
    let r =
        recover(&dir, &RecoverOptions { mode: RecoveryMode::SkipCorrupt, force: true, ..RecoverOptions::default() })
            .expect("skip-corrupt");
    assert!(!r.skipped.is_empty() || r.tail.is_some(), "skip-corrupt must report the damage");
}

#[test]
fn image_damage_outside_the_journal_is_reported_by_verify() {
    let p = params(6);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("c");
    generate(&dir, &p);
    recover(&dir, &RecoverOptions::default()).expect("recover");
    assert_matches(&dir, "before damage");
    let flips = workloads::corrupt::corrupt(&dir, workloads::corrupt::CorruptTarget::Image, 1, 3).expect("corrupt");
    let v = workloads::digest::verify_dir(&dir).expect("verify");
    assert!(!v.matches);
    let bs = u64::from(p.block_size);
    assert_eq!(v.first_bad_block, Some(flips[0].offset / bs));
}
