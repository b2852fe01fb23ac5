//! Checkpoints: recovery from every checkpoint type and cadence matches the oracle; a damaged
//! newest checkpoint (bit flip, truncation, a missing chain member) makes recovery fall back
//! and still match; a crash in the middle of writing one is harmless; retention never breaks
//! a chain; `fastrec checkpoint` on a recovered directory, with the journal recycled, is used
//! by the next recovery.

mod common;
use common::{copy_dir, generate, matches_oracle};

use std::path::{Path, PathBuf};

use recovery::checkpoint::{self, CheckpointKind, Compression};
use recovery::recover::{checkpoint_dir, CheckpointOptions};
use recovery::{recover, Error, ImageIo, RecoverOptions};
use workloads::{Cadence, CheckpointPlan, CheckpointStyle, GenParams, Policy, Preset};

fn checkpoints(dir: &Path) -> Vec<PathBuf> {
    checkpoint::list(dir).expect("list").into_iter().map(|(_, p)| p).collect()
}

fn params(seed: u64, policy: Policy, style: CheckpointStyle, every: Cadence) -> GenParams {
    let mut p = Preset::Small.params(seed);
    p.txns = 400;
    p.policy = policy;
    p.checkpoints = Some(CheckpointPlan { every, style, full_every: 3, ..CheckpointPlan::default() });
    p
}

#[test]
fn every_checkpoint_type_and_cadence_recovers_to_the_oracle() {
    let cadences = [
        Cadence::Txns(37),
        Cadence::Txns(150),
        Cadence::Bytes(48 << 10),
        Cadence::Interval { secs: 6.0, txns_per_sec: 10.0 },
    ];
    let mut used = 0;
    for (i, every) in cadences.into_iter().enumerate() {
        for style in [CheckpointStyle::Full, CheckpointStyle::Incremental, CheckpointStyle::Metadata] {
            for policy in Policy::ALL {
                let seed = 100 + i as u64;
                let what = format!("{every:?} {style:?} {policy:?}");
                let tmp = tempfile::tempdir().expect("tempdir");
                let origin = tmp.path().join("o");
                let s = generate(&origin, &params(seed, policy, style, every));
                assert!(s.checkpoints > 0, "{what}: no checkpoint written");
                assert!(s.torn_checkpoint, "{what}: the crash leaves a half-written checkpoint");
                for (workers, image_io) in [(1, ImageIo::Mmap), (2, ImageIo::Mmap), (1, ImageIo::Pwrite)] {
                    let d = tmp.path().join(format!("w{workers}-{image_io:?}"));
                    copy_dir(&origin, &d);
                    let opts = RecoverOptions {
                        workers: Some(workers),
                        image_io,
                        memory_budget_bytes: recovery::recover::MEMORY_BUDGET_MIN,
                        parallel_threshold: 0,
                        chunk_bytes: 16 << 10,
                        ..RecoverOptions::default()
                    };
                    let r = recover(&d, &opts).unwrap_or_else(|e| panic!("{what}: {e}"));
                    let c = r
                        .checkpoint
                        .as_ref()
                        .unwrap_or_else(|| panic!("{what}: no checkpoint used: {:?}", r.checkpoints_rejected));
                    assert!(r.checkpoints_rejected.is_empty(), "{what}: {:?}", r.checkpoints_rejected);
                    assert_eq!(c.lsn, s.last_checkpoint_lsn, "{what}: the newest checkpoint is used");
                    assert!(c.records_skipped > 0 || c.journal_bytes_skipped > 0, "{what}: nothing skipped");
                    assert!(matches_oracle(&d), "{what}, {workers} workers: differs from the oracle");
                    used += 1;
                }
                // The same crash state without checkpoints: the same image.
                let d = tmp.path().join("full");
                copy_dir(&origin, &d);
                recover(&d, &RecoverOptions { use_checkpoints: false, ..RecoverOptions::default() }).expect("no ckpt");
                assert!(matches_oracle(&d), "{what}: the whole journal differs from the oracle");
            }
        }
    }
    assert!(used > 0);
}

/// A crash state with one full checkpoint and incremental ones chained to it.
fn chained(tmp: &Path) -> (PathBuf, workloads::GenSummary) {
    let origin = tmp.join("o");
    let mut p = params(7, Policy::Steal, CheckpointStyle::Incremental, Cadence::Txns(60));
    if let Some(c) = p.checkpoints.as_mut() {
        c.full_every = 1000;
    }
    let s = generate(&origin, &p);
    assert!(s.checkpoints >= 4, "{} checkpoints", s.checkpoints);
    (origin, s)
}

fn recover_expecting_fallback(d: &Path, what: &str) -> recovery::RecoveryReport {
    let r = recover(d, &RecoverOptions::default()).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(!r.checkpoints_rejected.is_empty(), "{what}: the damaged checkpoint was not reported");
    assert!(matches_oracle(d), "{what}: fell back but differs from the oracle");
    r
}

#[test]
fn a_damaged_newest_checkpoint_falls_back_to_an_older_one() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (origin, s) = chained(tmp.path());
    let newest = checkpoints(&origin).pop().expect("a checkpoint");
    let rel = newest.strip_prefix(&origin).expect("inside").to_path_buf();
    let len = std::fs::metadata(&newest).expect("stat").len();

    // A flipped bit in the data section.
    let d = tmp.path().join("flip");
    copy_dir(&origin, &d);
    let mut bytes = std::fs::read(d.join(&rel)).expect("read");
    let at = bytes.len() - 10;
    bytes[at] ^= 0x10;
    std::fs::write(d.join(&rel), &bytes).expect("write");
    let r = recover_expecting_fallback(&d, "bit flip");
    assert!(r.checkpoint.as_ref().is_some_and(|c| c.lsn < s.last_checkpoint_lsn), "an older checkpoint is used");
    assert!(r.checkpoints_rejected[0].reason.contains("checksum"), "{:?}", r.checkpoints_rejected);

    // A flipped bit in the manifest.
    let d = tmp.path().join("manifest");
    copy_dir(&origin, &d);
    let mut bytes = std::fs::read(d.join(&rel)).expect("read");
    bytes[40] ^= 0x01;
    std::fs::write(d.join(&rel), &bytes).expect("write");
    recover_expecting_fallback(&d, "manifest flip");

    // Truncated.
    let d = tmp.path().join("trunc");
    copy_dir(&origin, &d);
    std::fs::OpenOptions::new().write(true).open(d.join(&rel)).expect("open").set_len(len / 2).expect("truncate");
    recover_expecting_fallback(&d, "truncated");

    // A missing member in the middle of the newest chain: every checkpoint chained through it
    // is unusable, and an older complete chain (or the whole journal) is used instead.
    let d = tmp.path().join("missing");
    copy_dir(&origin, &d);
    let all = checkpoint::list(&d).expect("list");
    let head = checkpoint::read_manifest(&all.last().expect("newest").1).expect("manifest");
    let parent = head.parent.expect("the newest is an incremental");
    let parent_path = all.iter().find(|(s, _)| *s == parent).expect("parent present").1.clone();
    std::fs::remove_file(&parent_path).expect("remove");
    let r = recover_expecting_fallback(&d, "missing incremental");
    assert!(r.checkpoints_rejected.iter().any(|x| x.reason.contains("missing")), "{:?}", r.checkpoints_rejected);

    // Every checkpoint damaged: the whole journal, still there, still gives the oracle.
    let d = tmp.path().join("all");
    copy_dir(&origin, &d);
    for p in checkpoints(&d) {
        std::fs::write(&p, b"garbage").expect("write");
    }
    let r = recover_expecting_fallback(&d, "all damaged");
    assert!(r.checkpoint.is_none());
}

#[test]
fn a_crash_while_writing_a_checkpoint_is_harmless() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (origin, s) = chained(tmp.path());
    assert!(s.torn_checkpoint);
    let torn: Vec<_> = std::fs::read_dir(origin.join("checkpoints"))
        .expect("dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert_eq!(torn.len(), 1, "the generator leaves one torn temporary file");
    let r = recover(&origin, &RecoverOptions::default()).expect("recover");
    assert_eq!(r.checkpoint.as_ref().map(|c| c.lsn), Some(s.last_checkpoint_lsn));
    assert!(r.checkpoints_rejected.is_empty(), "a temporary file is not a checkpoint: {:?}", r.checkpoints_rejected);
    assert!(matches_oracle(&origin));
    // The next checkpoint written clears it away.
    checkpoint_dir(&origin, &CheckpointOptions::default()).expect("checkpoint");
    let left = std::fs::read_dir(origin.join("checkpoints"))
        .expect("dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .count();
    assert_eq!(left, 0);
}

#[test]
fn retention_never_breaks_a_chain() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let origin = tmp.path().join("o");
    let mut p = params(3, Policy::NoSteal, CheckpointStyle::Incremental, Cadence::Txns(20));
    if let Some(c) = p.checkpoints.as_mut() {
        c.retain = 3;
        c.full_every = 4;
    }
    let s = generate(&origin, &p);
    assert!(s.checkpoints > 6, "{} checkpoints", s.checkpoints);
    let all = checkpoint::list(&origin).expect("list");
    assert!(all.len() < s.checkpoints as usize, "retention removed none");
    let by_seq: std::collections::BTreeMap<u64, PathBuf> = all.iter().cloned().collect();
    let layout = recovery::image::Layout::read_from(&origin.join("image.img")).expect("layout");
    for (seq, _) in all.iter().rev().take(3) {
        let c = checkpoint::chain(&layout, &by_seq, *seq).unwrap_or_else(|r| panic!("kept {seq}: {}", r.reason));
        assert_eq!(c.head().seq, *seq);
    }
    // Pruning harder keeps the newest and everything its chain needs.
    let pruned = checkpoint::prune(&origin, 1, false).expect("prune");
    let left: std::collections::BTreeMap<u64, PathBuf> = checkpoint::list(&origin).expect("list").into_iter().collect();
    let newest = *left.keys().last().expect("one left");
    let c = checkpoint::chain(&layout, &left, newest).unwrap_or_else(|r| panic!("{}", r.reason));
    assert_eq!(left.len(), c.members.len(), "only the newest chain is kept; removed {:?}", pruned.checkpoints);
    let r = recover(&origin, &RecoverOptions::default()).expect("recover");
    assert_eq!(r.checkpoint.as_ref().map(|c| c.seq), Some(newest));
    assert!(matches_oracle(&origin));
}

#[test]
fn checkpoints_of_a_recovered_directory_are_used_and_let_the_journal_be_recycled() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("d");
    let mut p = Preset::Small.params(12);
    p.txns = 300;
    p.policy = Policy::Steal;
    generate(&dir, &p);

    let err = checkpoint_dir(&dir, &CheckpointOptions::default()).expect_err("not recovered yet");
    assert!(matches!(err, Error::NotRecovered { .. }), "{err}");
    let err =
        checkpoint_dir(&dir, &CheckpointOptions { kind: CheckpointKind::Incremental, ..CheckpointOptions::default() });
    assert!(err.is_err());

    recover(&dir, &RecoverOptions::default()).expect("recover");
    assert!(matches_oracle(&dir));
    let err =
        checkpoint_dir(&dir, &CheckpointOptions { kind: CheckpointKind::Incremental, ..CheckpointOptions::default() })
            .expect_err("nothing to chain to");
    assert!(err.to_string().contains("full one first"), "{err}");
    for (kind, compression) in [
        (CheckpointKind::Full, Some(Compression::Zstd)),
        (CheckpointKind::Incremental, Some(Compression::Lz4)),
        (CheckpointKind::Metadata, Some(Compression::None)),
        (CheckpointKind::Emergency, None),
    ] {
        let c = checkpoint_dir(&dir, &CheckpointOptions { kind, compression, ..CheckpointOptions::default() })
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(c.kind, kind);
        if kind == CheckpointKind::Emergency {
            assert_eq!(c.compression, Compression::Lz4, "emergency checkpoints favour speed");
        }
        let r = recover(&dir, &RecoverOptions { force: true, ..RecoverOptions::default() }).expect("recover again");
        let used = r.checkpoint.as_ref().unwrap_or_else(|| panic!("{kind}: not used"));
        assert_eq!(used.seq, c.seq, "{kind}");
        assert!(matches_oracle(&dir), "{kind}: differs from the oracle");
    }

    // Recycle: segments before the newest checkpoint go; recovery still works from it.
    let before = std::fs::read_dir(dir.join("journal")).expect("journal").count();
    let c =
        checkpoint_dir(&dir, &CheckpointOptions { retain: 1, recycle_journal: true, ..CheckpointOptions::default() })
            .expect("checkpoint");
    assert!(!c.pruned.segments.is_empty(), "nothing recycled from {before} segments");
    assert_eq!(checkpoint::list(&dir).expect("list").len(), 1);
    let r = recover(&dir, &RecoverOptions { force: true, ..RecoverOptions::default() }).expect("after recycling");
    assert_eq!(r.checkpoint.as_ref().map(|x| x.seq), Some(c.seq));
    assert!(matches_oracle(&dir));

    // With the only checkpoint damaged and the journal's start gone, recovery stops clearly
    // and leaves the image alone.
    let image = std::fs::read(dir.join("image.img")).expect("image");
    std::fs::write(&c.path, b"no longer a checkpoint").expect("damage");
    let err = recover(&dir, &RecoverOptions { force: true, ..RecoverOptions::default() }).expect_err("must stop");
    assert!(matches!(err, Error::JournalStartsLate { .. }), "{err}");
    assert!(err.to_string().contains("bad magic"), "{err}");
    assert_eq!(std::fs::read(dir.join("image.img")).expect("image"), image);
    let err = recover(&dir, &RecoverOptions { force: true, use_checkpoints: false, ..RecoverOptions::default() })
        .expect_err("must stop");
    assert!(matches!(err, Error::JournalStartsLate { .. }), "{err}");
}

#[test]
fn many_seeds_crash_kinds_and_shapes_recover_from_checkpoints_to_the_oracle() {
    let styles = [CheckpointStyle::Full, CheckpointStyle::Incremental, CheckpointStyle::Metadata];
    let crashes = workloads::CrashKind::ALL;
    for seed in 0..48u64 {
        let style = styles[seed as usize % styles.len()];
        let policy = Policy::ALL[(seed / 3) as usize % Policy::ALL.len()];
        let every = Cadence::Txns(15 + (seed * 37) % 120);
        let mut p = params(1000 + seed, policy, style, every);
        p.crash = crashes[seed as usize % crashes.len()];
        p.deps_rate = if seed % 4 == 0 { 0.3 } else { 0.0 };
        let what = format!("seed {seed} {style:?} {policy:?} {every:?} {:?}", p.crash);
        let tmp = tempfile::tempdir().expect("tempdir");
        let d = tmp.path().join("d");
        generate(&d, &p);
        let workers = Some(1 + (seed as usize % 2));
        let r = recover(
            &d,
            &RecoverOptions { workers, parallel_threshold: 0, chunk_bytes: 16 << 10, ..RecoverOptions::default() },
        )
        .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(r.checkpoint.is_some(), "{what}: no checkpoint used");
        assert!(matches_oracle(&d), "{what}: differs from the oracle");
    }
}

/// A journal with copies, and checkpoints: a crash state in which replaying from a different
/// start point after an interrupted recovery would read copy sources at the wrong content.
fn copies_and_checkpoints(tmp: &Path, seed: u64) -> PathBuf {
    let d = tmp.join("d");
    let mut p = Preset::Deps.params(seed);
    p.txns = 400;
    p.deps_rate = 0.6;
    p.policy = Policy::ALL[seed as usize % 2];
    p.checkpoints =
        Some(CheckpointPlan { every: Cadence::Txns(150), style: CheckpointStyle::Full, ..CheckpointPlan::default() });
    generate(&d, &p);
    d
}

#[test]
fn an_interrupted_recovery_with_copies_is_finished_from_the_start_point_it_chose() {
    for seed in 0..6u64 {
        let tmp = tempfile::tempdir().expect("tempdir");
        let d = copies_and_checkpoints(tmp.path(), seed);
        // Run 1 restores the checkpoint, replays part of the journal and dies before writing its
        // result (which, with copies, it keeps private until then).
        let crashed = RecoverOptions {
            workers: Some(1),
            image_io: ImageIo::Mmap,
            fault: Some(recovery::FaultPoint::AfterBlockWrites(40)),
            ..RecoverOptions::default()
        };
        let err = recover(&d, &crashed).expect_err("injected fault");
        assert!(matches!(err, Error::InjectedFault(_)), "{err}");
        assert!(d.join("recovering.json").exists(), "seed {seed}: the start point is pinned");
        // Run 2 asks for the whole journal; the pin wins, and the result is right.
        let r = recover(&d, &RecoverOptions { use_checkpoints: false, ..RecoverOptions::default() }).expect("rerun");
        assert!(r.checkpoint.is_some(), "seed {seed}: the pinned checkpoint is used");
        assert!(matches_oracle(&d), "seed {seed}: differs from the oracle");
        assert!(!d.join("recovering.json").exists(), "seed {seed}: the pin goes with success");
    }
    // The pinned checkpoint damaged between the runs: a clear error, not a wrong image.
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = copies_and_checkpoints(tmp.path(), 9);
    let crashed = RecoverOptions {
        image_io: ImageIo::Mmap,
        fault: Some(recovery::FaultPoint::AfterBlockWrites(40)),
        ..RecoverOptions::default()
    };
    recover(&d, &crashed).expect_err("injected fault");
    let newest = checkpoints(&d).pop().expect("a checkpoint");
    std::fs::write(&newest, b"damaged").expect("damage");
    let err = recover(&d, &RecoverOptions::default()).expect_err("must refuse");
    assert!(matches!(err, Error::Checkpoint { .. }), "{err}");
    assert!(err.to_string().contains("finishing needs it"), "{err}");
}

#[test]
fn hostile_manifests_are_rejected_not_trusted() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (origin, _) = chained(tmp.path());
    let newest = checkpoints(&origin).pop().expect("a checkpoint");
    let bytes = std::fs::read(&newest).expect("read");
    let mlen = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
    let manifest: serde_json::Value = serde_json::from_slice(&bytes[16..16 + mlen]).expect("manifest");
    let rewrite = |edit: &dyn Fn(&mut serde_json::Value)| -> Vec<u8> {
        let mut m = manifest.clone();
        edit(&mut m);
        let json = serde_json::to_vec(&m).expect("json");
        let mut out = bytes[..8].to_vec();
        out.extend_from_slice(&(json.len() as u32).to_le_bytes());
        out.extend_from_slice(&crc32c::crc32c(&json).to_le_bytes());
        out.extend_from_slice(&json);
        out.extend_from_slice(&bytes[16 + mlen..]);
        out
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "chunk runs past the data",
            rewrite(&|m| {
                let last = m["chunks"].as_array().map_or(0, |c| c.len() - 1);
                let stored = m["chunks"][last]["stored"].as_u64().unwrap_or(0);
                m["chunks"][last]["stored"] = (stored + 1).into();
            }),
        ),
        (
            "huge raw length",
            rewrite(&|m| {
                m["chunks"][0]["runs"] = serde_json::json!([[0, 1u64 << 40]]);
                m["chunks"][0]["raw"] = (1u64 << 52).into();
            }),
        ),
        (
            "overlapping runs",
            rewrite(&|m| {
                m["chunks"][0]["runs"] = serde_json::json!([[0, 2], [1, 2]]);
            }),
        ),
        (
            "overflowing run",
            rewrite(&|m| {
                m["chunks"][0]["runs"] = serde_json::json!([[u64::MAX, 2]]);
            }),
        ),
    ];
    for (what, bad) in cases {
        std::fs::write(&newest, &bad).expect("write");
        match checkpoint::load(&newest) {
            Err(r) => assert!(r.offset.is_some(), "{what}: {}", r.reason),
            Ok(_) => panic!("{what}: accepted"),
        }
        let d = tmp.path().join("run");
        copy_dir(&origin, &d);
        std::fs::write(d.join("checkpoints").join(newest.file_name().expect("name")), &bad).expect("write");
        let r = recover(&d, &RecoverOptions::default()).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(!r.checkpoints_rejected.is_empty(), "{what}");
        assert!(matches_oracle(&d), "{what}");
        std::fs::remove_dir_all(&d).expect("clean");
    }
}

fn copy_heavy(tmp: &Path, seed: u64) -> PathBuf {
    let d = tmp.join("d");
    let mut p = Preset::Deps.params(seed);
    p.txns = 400;
    p.deps_rate = 0.6;
    p.policy = Policy::ALL[seed as usize % 2];
    generate(&d, &p);
    d
}

#[test]
fn a_crash_during_recovery_of_a_journal_with_copies_is_repaired_by_the_next_run() {
    for seed in 0..6u64 {
        for n in [1u64, 50, 200, 800] {
            for image_io in [ImageIo::Mmap, ImageIo::Pwrite] {
                let what = format!("seed {seed}, crash after {n} blocks, {image_io:?}");
                let tmp = tempfile::tempdir().expect("tempdir");
                let d = copy_heavy(tmp.path(), seed);
                let crashed = RecoverOptions {
                    workers: Some(1),
                    image_io,
                    fault: Some(recovery::FaultPoint::AfterBlockWrites(n)),
                    ..RecoverOptions::default()
                };
                match recover(&d, &crashed) {
                    Err(Error::InjectedFault(_)) => {}
                    Ok(_) => {} // fewer blocks to write than the fault point
                    Err(e) => panic!("{what}: {e}"),
                }
                let r = recover(&d, &RecoverOptions { workers: Some(2), ..RecoverOptions::default() })
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                assert!(matches_oracle(&d), "{what}: differs from the oracle ({:?})", r.resumed_from_doublewrite);
                assert!(!d.join("recovery.dwb").exists(), "{what}: the doublewrite file goes with success");
            }
        }
    }
}

#[test]
fn an_interrupted_in_place_write_is_finished_from_the_doublewrite_file_and_a_torn_one_is_ignored() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = copy_heavy(tmp.path(), 3);
    let crashed = RecoverOptions {
        image_io: ImageIo::Pwrite,
        fault: Some(recovery::FaultPoint::AfterBlockWrites(20)),
        ..RecoverOptions::default()
    };
    recover(&d, &crashed).expect_err("injected fault");
    assert!(d.join("recovery.dwb").exists());
    let r = recover(&d, &RecoverOptions::default()).expect("finish");
    assert!(r.resumed_from_doublewrite.is_some_and(|n| n > 20), "{:?}", r.resumed_from_doublewrite);
    assert!(matches_oracle(&d));
    assert!(r.to_string().contains("doublewrite"), "{r}");
    let again = recover(&d, &RecoverOptions::default()).expect("again");
    assert!(again.already_recovered);

    // A doublewrite file torn while it was written (the in-place writes never began) is
    // discarded, and recovery starts over.
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = copy_heavy(tmp.path(), 4);
    std::fs::write(d.join("recovery.dwb"), b"FRDWB001 torn").expect("write");
    let r = recover(&d, &RecoverOptions::default()).expect("recover");
    assert!(r.resumed_from_doublewrite.is_none());
    assert!(matches_oracle(&d));
    assert!(!d.join("recovery.dwb").exists());
}
