//! Parallel recovery equals serial recovery: for every policy, crash kind and worker count the
//! image is identical and matches the oracle; a failing worker fails the whole recovery, and a
//! second recovery completes it.

mod common;
use common::{copy_dir, generate, image};

use recovery::{recover, Error, Executor, FaultPoint, PinMode, RecoverOptions};
use workloads::{CrashKind, GenParams, Policy, Preset};

fn parallel_opts(workers: usize) -> RecoverOptions {
    RecoverOptions {
        workers: Some(workers),
        parallel_threshold: 0,
        chunk_bytes: 64 << 10, // many chunks even on small journals
        batch_ops: 7,
        ..RecoverOptions::default()
    }
}

fn check_all_worker_counts(p: &GenParams, what: &str) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let origin = tmp.path().join("origin");
    generate(&origin, p);
    let serial_dir = tmp.path().join("serial");
    copy_dir(&origin, &serial_dir);
    recover(&serial_dir, &RecoverOptions { workers: Some(1), ..RecoverOptions::default() }).expect("serial");
    assert!(
        workloads::digest::verify_dir(&serial_dir).expect("verify").matches,
        "{what}: serial differs from the oracle"
    );
    let serial = image(&serial_dir);
    for workers in [2, 3, 4, 8, 13] {
        for executor in [Executor::Pinned, Executor::Rayon] {
            let d = tmp.path().join(format!("w{workers}-{executor:?}"));
            copy_dir(&origin, &d);
            let r = recover(&d, &RecoverOptions { executor, ..parallel_opts(workers) })
                .unwrap_or_else(|e| panic!("{what}: {workers} workers ({executor:?}): {e}"));
            assert_eq!(r.parallel.workers, workers);
            assert!(
                image(&d) == serial,
                "{what}: {workers} workers ({executor:?}) differ from serial; {}",
                r.parallel.scan
            );
            std::fs::remove_dir_all(&d).expect("cleanup");
        }
    }
}

#[test]
fn every_policy_and_crash_kind_recovers_identically_with_1_2_3_4_and_8_workers() {
    for (i, crash) in CrashKind::ALL.iter().enumerate() {
        for policy in Policy::ALL {
            let mut p = Preset::Small.params(100 + i as u64);
            p.policy = policy;
            p.crash = *crash;
            check_all_worker_counts(&p, &format!("small {} {crash:?}", policy.name()));
        }
    }
}

#[test]
fn parallel_scan_and_replay_really_ran() {
    let p = Preset::Small.params(7);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("c");
    generate(&dir, &p);
    let r = recover(&dir, &RecoverOptions { dependency_stats: true, ..parallel_opts(2) }).expect("recover");
    assert!(r.parallel.scan.starts_with("parallel"), "{}", r.parallel.scan);
    assert!(r.parallel.replay.starts_with("parallel"), "{}", r.parallel.replay);
    let deps = r.parallel.dependencies.expect("dependency stats");
    assert!(deps.work > 0 && deps.span_blocks > 0 && deps.span_blocks <= deps.span_workers);
    assert!(deps.bound_blocks >= deps.bound_workers);
    let plan = r.parallel.plan.expect("plan");
    assert_eq!(plan.workers.len(), 2);
}

#[test]
fn a_failing_worker_fails_the_recovery_and_a_second_recovery_completes_it() {
    for policy in Policy::ALL {
        let mut p = Preset::Small.params(11);
        p.policy = policy;
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("c");
        generate(&dir, &p);
        for n in [1, 10, 50] {
            let err =
                recover(&dir, &RecoverOptions { fault: Some(FaultPoint::AfterBlockWrites(n)), ..parallel_opts(3) })
                    .expect_err("the injected fault must fail the whole recovery");
            assert!(matches!(err, Error::InjectedFault(_)), "{err}");
            assert!(!dir.join("recovered.json").exists());
        }
        recover(&dir, &parallel_opts(3)).expect("second recovery");
        assert!(workloads::digest::verify_dir(&dir).expect("verify").matches, "{}", policy.name());
    }
}

#[test]
fn more_workers_than_cpus_warns_and_a_missing_numa_node_is_an_error() {
    let p = Preset::Small.params(3);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("c");
    generate(&dir, &p);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let r = recover(&dir, &RecoverOptions { workers: Some(cpus + 1), force: true, ..parallel_opts(cpus + 1) })
        .expect("recover");
    assert!(r.parallel.warnings.iter().any(|w| w.contains("CPUs")), "{:?}", r.parallel.warnings);
    let err = recover(&dir, &RecoverOptions { numa_nodes_mask: Some(1 << 63), force: true, ..parallel_opts(2) })
        .expect_err("node 63");
    assert!(matches!(&err, Error::Config(m) if m.contains("NUMA node 63")), "{err}");
    let r = recover(&dir, &RecoverOptions { pin: PinMode::None, force: true, ..parallel_opts(2) }).expect("unpinned");
    assert!(r.parallel.plan.expect("plan").workers.iter().all(|w| w.cpu.is_none()));
    let r = recover(
        &dir,
        &RecoverOptions { executor: Executor::Pinned, pin: PinMode::Cores, force: true, ..parallel_opts(2) },
    )
    .expect("pinned");
    assert!(r.parallel.plan.expect("plan").workers.iter().all(|w| w.cpu.is_some()));
}

#[test]
fn every_preset_shape_and_the_dependency_heavy_one_recover_identically() {
    for preset in Preset::ALL {
        // Small is covered above with every crash kind; large is default's shape with a
        // 256 MiB image, which only makes this test slow.
        if preset == Preset::Small || preset == Preset::Large {
            continue;
        }
        let mut p = preset.params(21);
        // Keep each preset's shape (mix, distribution, policy, journal geometry) but few
        // transactions and at most a 16 MiB image, so nine copies of it stay cheap.
        p.txns = p.txns.min(if preset == Preset::Deps { 2_000 } else { 400 });
        p.block_count = p.block_count.min(4096);
        p.inode_count = p.inode_count.min(4096);
        check_all_worker_counts(&p, &format!("{}", preset));
    }
    for policy in Policy::ALL {
        let mut p = Preset::Deps.params(5);
        p.policy = policy;
        p.deps_rate = 0.6;
        p.deps_reach = 3;
        check_all_worker_counts(&p, &format!("copy-heavy {}", policy.name()));
    }
}
