//! Checkpoint records: recovery from every checkpoint style, cadence, policy and crash kind
//! matches the oracle, reads only the journal after the record's redo start and restores
//! nothing; a crash in the middle of a checkpoint (write-back half done, record half-written)
//! recovers; a damaged newest record falls back to the previous one, named in the report;
//! copies are replayed only from where the writer's obligation makes them repeatable;
//! `fastrec checkpoint` on a recovered directory is used by the next recovery and lets the
//! journal be recycled; snapshots rebuild a deleted image.

mod common;
use common::{copy_dir, generate, matches_oracle};

use std::path::{Path, PathBuf};

use recovery::checkpoint::{self, CheckpointKind, CheckpointRecord};
use recovery::recover::{checkpoint_dir, snapshot_dir, CheckpointOptions, SnapshotOptions};
use recovery::{recover, Error, ImageIo, RecoverOptions};
use workloads::{Cadence, CheckpointPlan, CheckpointStyle, CrashKind, GenParams, Policy, Preset, SnapshotPlan};

fn records(dir: &Path) -> Vec<PathBuf> {
    checkpoint::list(dir).expect("list").into_iter().map(|(_, p)| p).collect()
}

fn params(seed: u64, policy: Policy, style: CheckpointStyle, every: Cadence) -> GenParams {
    let mut p = Preset::Small.params(seed);
    p.txns = 400;
    p.policy = policy;
    p.checkpoints = Some(CheckpointPlan { every, style, ..CheckpointPlan::default() });
    p
}

fn opts(workers: usize, image_io: ImageIo) -> RecoverOptions {
    RecoverOptions {
        workers: Some(workers),
        image_io,
        memory_budget_bytes: recovery::recover::MEMORY_BUDGET_MIN,
        parallel_threshold: 0,
        chunk_bytes: 16 << 10,
        ..RecoverOptions::default()
    }
}

/// Every style, policy and crash kind over many seeds and cadences, serially, in parallel and
/// through the windowed block cache: the image matches the oracle, the newest record is used,
/// and recovery read and replayed less than the whole journal. The same crash state without
/// checkpoints matches too.
#[test]
fn every_style_policy_and_crash_kind_recovers_from_its_checkpoint_to_the_oracle() {
    let cadences = [
        Cadence::Txns(37),
        Cadence::Txns(150),
        Cadence::Bytes(48 << 10),
        Cadence::Interval { secs: 6.0, txns_per_sec: 10.0 },
    ];
    let mut runs = 0;
    for seed in 0..20u64 {
        for style in CheckpointStyle::ALL {
            for policy in Policy::ALL {
                let every = cadences[seed as usize % cadences.len()];
                let mut p = params(100 + seed, policy, style, every);
                p.crash = CrashKind::ALL[(seed as usize + style as usize) % CrashKind::ALL.len()];
                let what = format!("seed {seed} {style:?} {policy:?} {every:?} {:?}", p.crash);
                let tmp = tempfile::tempdir().expect("tempdir");
                let origin = tmp.path().join("o");
                let s = generate(&origin, &p);
                assert!(s.checkpoints > 1, "{what}: {} checkpoints", s.checkpoints);
                assert!(s.torn_checkpoint, "{what}: the crash comes in the middle of a checkpoint");
                let (workers, image_io) =
                    [(1, ImageIo::Mmap), (2, ImageIo::Mmap), (1, ImageIo::Pwrite)][seed as usize % 3];
                let d = tmp.path().join("d");
                copy_dir(&origin, &d);
                let r = recover(&d, &opts(workers, image_io)).unwrap_or_else(|e| panic!("{what}: {e}"));
                let c = r.checkpoint.as_ref().unwrap_or_else(|| panic!("{what}: no checkpoint used"));
                assert!(r.checkpoints_rejected.is_empty(), "{what}: {:?}", r.checkpoints_rejected);
                assert_eq!((c.lsn, c.redo_start), (s.last_checkpoint_lsn, s.last_checkpoint_redo_start), "{what}");
                assert_eq!(c.fallbacks, 0, "{what}");
                assert!(c.journal_bytes_skipped > 0, "{what}: the whole journal was read");
                assert!(r.lsn_range.0 <= c.redo_start, "{what}: started after the redo start");
                assert!(r.records_scanned < s.records, "{what}: every record was read");
                assert!(r.snapshot.is_none(), "{what}: nothing is restored");
                if style.kind().sharp() {
                    assert!(c.dirty_blocks <= 1, "{what}: a sharp checkpoint leaves {} dirty", c.dirty_blocks);
                }
                assert!(matches_oracle(&d), "{what}, {workers} workers {image_io:?}: differs from the oracle");
                runs += 1;
                if seed % 4 == 0 {
                    let full = tmp.path().join("full");
                    copy_dir(&origin, &full);
                    let r = recover(&full, &RecoverOptions { use_checkpoints: false, ..opts(workers, image_io) })
                        .unwrap_or_else(|e| panic!("{what}: without checkpoints: {e}"));
                    assert!(r.checkpoint.is_none());
                    assert!(matches_oracle(&full), "{what}: the whole journal differs from the oracle");
                }
            }
        }
    }
    assert_eq!(runs, 20 * 4 * 2);
}

/// The crash comes in the middle of the next checkpoint: part of its write-back done and its
/// record half-written in a temporary file, which recovery ignores and the next record
/// written removes.
#[test]
fn a_crash_in_the_middle_of_a_checkpoint_recovers_from_the_previous_one() {
    for (seed, style) in [(1, CheckpointStyle::Full), (2, CheckpointStyle::Emergency), (3, CheckpointStyle::Metadata)] {
        for policy in Policy::ALL {
            let what = format!("{style:?} {policy:?}");
            let tmp = tempfile::tempdir().expect("tempdir");
            let d = tmp.path().join("d");
            let s = generate(&d, &params(seed, policy, style, Cadence::Txns(60)));
            assert!(s.torn_checkpoint);
            let torn: Vec<_> = std::fs::read_dir(d.join("checkpoints"))
                .expect("dir")
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
                .collect();
            assert_eq!(torn.len(), 1, "{what}: one half-written record");
            let r = recover(&d, &RecoverOptions::default()).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(r.checkpoint.as_ref().map(|c| c.lsn), Some(s.last_checkpoint_lsn), "{what}");
            assert!(r.checkpoints_rejected.is_empty(), "{what}: a temporary file is not a record");
            assert!(matches_oracle(&d), "{what}");
            checkpoint_dir(&d, &CheckpointOptions::default()).expect("checkpoint");
            let left = std::fs::read_dir(d.join("checkpoints"))
                .expect("dir")
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
                .count();
            assert_eq!(left, 0, "{what}: the next record removes it");
        }
    }
}

fn recover_expecting_fallback(d: &Path, what: &str) -> recovery::RecoveryReport {
    let r = recover(d, &RecoverOptions::default()).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(!r.checkpoints_rejected.is_empty(), "{what}: the damaged record was not reported");
    assert!(matches_oracle(d), "{what}: fell back but differs from the oracle");
    r
}

#[test]
fn a_damaged_newest_record_falls_back_to_the_previous_one_and_is_named() {
    for policy in Policy::ALL {
        let tmp = tempfile::tempdir().expect("tempdir");
        let origin = tmp.path().join("o");
        let s = generate(&origin, &params(7, policy, CheckpointStyle::Incremental, Cadence::Txns(60)));
        assert!(s.checkpoints >= 4, "{} checkpoints", s.checkpoints);
        let newest = records(&origin).pop().expect("a record");
        let rel = newest.strip_prefix(&origin).expect("inside").to_path_buf();
        let len = std::fs::metadata(&newest).expect("stat").len() as usize;
        type Damage = Box<dyn Fn(&mut Vec<u8>)>;
        let damage: Vec<(&str, Damage)> = vec![
            ("bit flip in the header", Box::new(|b: &mut Vec<u8>| b[26] ^= 0x10)),
            ("bit flip in the table", Box::new(move |b: &mut Vec<u8>| b[len - 10] ^= 0x01)),
            ("truncated", Box::new(move |b: &mut Vec<u8>| b.truncate(len / 2))),
            ("zeroed", Box::new(|b: &mut Vec<u8>| b.iter_mut().for_each(|x| *x = 0))),
            ("empty", Box::new(|b: &mut Vec<u8>| b.clear())),
        ];
        for (what, f) in damage {
            let what = format!("{policy:?}: {what}");
            let d = tmp.path().join("d");
            copy_dir(&origin, &d);
            let mut bytes = std::fs::read(d.join(&rel)).expect("read");
            f(&mut bytes);
            std::fs::write(d.join(&rel), &bytes).expect("write");
            let r = recover_expecting_fallback(&d, &what);
            let c = r.checkpoint.as_ref().expect("the previous record is used");
            assert_eq!(c.fallbacks, 1, "{what}");
            assert!(c.lsn < s.last_checkpoint_lsn, "{what}");
            assert_eq!(r.checkpoints_rejected[0].path, d.join(&rel), "{what}");
            assert!(r.to_string().contains("passed over checkpoint"), "{what}: {r}");
            std::fs::remove_dir_all(&d).expect("clean");
        }
        // A record for another image is refused the same way.
        let d = tmp.path().join("foreign");
        copy_dir(&origin, &d);
        let layout = recovery::image::Layout::new(recovery::image::Geometry {
            block_size: 2048,
            block_count: 1024,
            inode_count: 1024,
            image_id: 42,
        })
        .expect("layout");
        let seq = checkpoint::list(&d).expect("list").last().expect("one").0 + 1;
        let foreign =
            CheckpointRecord { seq, ..CheckpointRecord::new(&layout, CheckpointKind::Full, 1, Vec::new(), Vec::new()) };
        std::fs::write(d.join("checkpoints").join(checkpoint::file_name(seq)), foreign.encode()).expect("write");
        let r = recover_expecting_fallback(&d, "foreign record");
        assert!(r.checkpoints_rejected[0].reason.contains("another image"), "{:?}", r.checkpoints_rejected);
        // Every record damaged: the whole journal, still right.
        let d = tmp.path().join("all");
        copy_dir(&origin, &d);
        for p in records(&d) {
            std::fs::write(p, b"damaged").expect("damage");
        }
        let r = recover_expecting_fallback(&d, "all damaged");
        assert!(r.checkpoint.is_none());
    }
}

/// The record says every record up to its LSN was durable: a journal that ends before it has
/// lost records the record relies on, which recovery refuses rather than cut.
#[test]
fn a_journal_that_ends_before_its_checkpoint_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path().join("d");
    let s = generate(&d, &params(5, Policy::NoSteal, CheckpointStyle::Full, Cadence::Txns(60)));
    let layout = recovery::image::Layout::read_from(&d.join("image.img")).expect("layout");
    let last = s.last_surviving_lsn;
    let seq = checkpoint::list(&d).expect("list").last().expect("one").0 + 1;
    let ahead = CheckpointRecord {
        seq,
        ..CheckpointRecord::new(&layout, CheckpointKind::Full, last + 50, Vec::new(), Vec::new())
    };
    std::fs::write(d.join("checkpoints").join(checkpoint::file_name(seq)), ahead.encode()).expect("write");
    let image = std::fs::read(d.join("image.img")).expect("image");
    let err = recover(&d, &RecoverOptions::default()).expect_err("refused");
    assert!(matches!(err, Error::Checkpoint { .. }), "{err}");
    assert!(err.to_string().contains("lost"), "{err}");
    assert_eq!(std::fs::read(d.join("image.img")).expect("image"), image, "the image is untouched");
}

/// Redo from a start point inside a segment, with small segments and large ones: the scan
/// begins at the journal block holding the redo start (serially and in parallel chunks), and
/// what it skips is counted.
#[test]
fn recovery_starts_inside_a_segment_at_the_redo_start() {
    for (segment_blocks, workers) in [(64, 1), (64, 2), (16, 2)] {
        let mut p = params(11, Policy::Steal, CheckpointStyle::Full, Cadence::Txns(150));
        p.segment_blocks = segment_blocks;
        let tmp = tempfile::tempdir().expect("tempdir");
        let d = tmp.path().join("d");
        let s = generate(&d, &p);
        let r = recover(&d, &opts(workers, ImageIo::Mmap)).expect("recover");
        let c = r.checkpoint.as_ref().expect("used");
        let segment_bytes = (segment_blocks + 1) * u64::from(p.journal_block_size);
        assert!(
            !c.journal_bytes_skipped.is_multiple_of(segment_bytes),
            "{segment_blocks}: only whole segments skipped ({})",
            c.journal_bytes_skipped
        );
        assert!(
            r.lsn_range.0 <= c.redo_start && c.redo_start - r.lsn_range.0 < 200,
            "{:?} {}",
            r.lsn_range,
            c.redo_start
        );
        assert_eq!(c.records_before_start, c.redo_start - r.lsn_range.0);
        assert!(matches_oracle(&d), "{segment_blocks} blocks per segment, {workers} workers");
        assert!(s.records > r.records_scanned);
    }
}

#[test]
fn retention_keeps_the_newest_records() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path().join("d");
    let mut p = params(3, Policy::NoSteal, CheckpointStyle::Incremental, Cadence::Txns(20));
    if let Some(c) = p.checkpoints.as_mut() {
        c.retain = 3;
    }
    let s = generate(&d, &p);
    assert!(s.checkpoints > 6, "{} checkpoints", s.checkpoints);
    let kept = checkpoint::list(&d).expect("list");
    assert_eq!(kept.len(), 3);
    assert_eq!(kept.last().map(|k| k.0), Some(s.checkpoints));
    let r = recover(&d, &RecoverOptions::default()).expect("recover");
    assert_eq!(r.checkpoint.as_ref().map(|c| c.seq), Some(s.checkpoints));
    assert!(matches_oracle(&d));
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

    let first = recover(&dir, &RecoverOptions::default()).expect("recover");
    assert!(matches_oracle(&dir));
    for kind in CheckpointKind::ALL {
        let c = checkpoint_dir(&dir, &CheckpointOptions { kind, ..CheckpointOptions::default() })
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(c.record.kind, kind);
        assert!(c.record.dirty.is_empty() && c.record.open.is_empty(), "{kind}: a recovered image is durable whole");
        assert_eq!(c.record.lsn, first.lsn_range.1, "{kind}");
        assert_eq!(c.record.redo_start, first.lsn_range.1 + 1, "{kind}");
        let r = recover(&dir, &RecoverOptions { force: true, ..RecoverOptions::default() }).expect("recover again");
        let used = r.checkpoint.as_ref().unwrap_or_else(|| panic!("{kind}: not used"));
        assert_eq!(used.seq, c.record.seq, "{kind}");
        assert_eq!(r.replay.redo_applied, 0, "{kind}: nothing after the record to replay");
        assert!(matches_oracle(&dir), "{kind}: differs from the oracle");
    }

    // Recycle: segments wholly before the kept record's redo start go; recovery still works.
    let before = std::fs::read_dir(dir.join("journal")).expect("journal").count();
    let c =
        checkpoint_dir(&dir, &CheckpointOptions { retain: 1, recycle_journal: true, ..CheckpointOptions::default() })
            .expect("checkpoint");
    assert!(!c.pruned.segments.is_empty(), "nothing recycled from {before} segments");
    assert_eq!(checkpoint::list(&dir).expect("list").len(), 1);
    // (No final checkpoint record here: the one kept record must stay the only one.)
    let once = RecoverOptions { force: true, final_checkpoint: false, ..RecoverOptions::default() };
    let r = recover(&dir, &once).expect("after recycling");
    assert_eq!(r.checkpoint.as_ref().map(|x| x.seq), Some(c.record.seq));
    assert!(matches_oracle(&dir));

    // With the only record damaged and the journal's start gone, recovery stops clearly and
    // leaves the image alone.
    let image = std::fs::read(dir.join("image.img")).expect("image");
    std::fs::write(&c.path, b"no longer a checkpoint").expect("damage");
    let err = recover(&dir, &once).expect_err("must stop");
    assert!(matches!(err, Error::JournalStartsLate { .. }), "{err}");
    assert!(err.to_string().contains(&c.path.display().to_string()), "{err}");
    assert_eq!(std::fs::read(dir.join("image.img")).expect("image"), image);
    let err = recover(&dir, &RecoverOptions { use_checkpoints: false, ..once }).expect_err("must stop");
    assert!(matches!(err, Error::JournalStartsLate { .. }), "{err}");
}

/// A journal with copies under checkpoints whose writer wrote copy sources back once two
/// records covered the copies: recovery from the newest record, or the one before, matches
/// the oracle; from further back (two records damaged, or checkpoints ignored) it refuses
/// with a clear error instead of replaying copies against newer sources.
#[test]
fn copies_are_replayed_only_from_where_the_writer_keeps_them_repeatable() {
    let mut refused = 0;
    for seed in 0..8u64 {
        let tmp = tempfile::tempdir().expect("tempdir");
        let origin = tmp.path().join("o");
        let mut p = Preset::Deps.params(seed);
        p.txns = 600;
        p.deps_rate = 0.5;
        p.flush_rate = 1.0;
        p.policy = Policy::ALL[seed as usize % 2];
        let style = [CheckpointStyle::Incremental, CheckpointStyle::Full][seed as usize % 2];
        p.checkpoints = Some(CheckpointPlan { every: Cadence::Txns(60), style, ..CheckpointPlan::default() });
        let s = generate(&origin, &p);
        assert!(s.hard_cases.copies > 0 && s.checkpoints >= 4, "seed {seed}");
        let what = format!("seed {seed} {style:?} {:?}", p.policy);
        for workers in [1, 2] {
            let d = tmp.path().join(format!("w{workers}"));
            copy_dir(&origin, &d);
            recover(&d, &opts(workers, ImageIo::Mmap)).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert!(matches_oracle(&d), "{what}, {workers} workers");
        }
        // One record damaged: the previous one, still repeatable.
        let d = tmp.path().join("one");
        copy_dir(&origin, &d);
        let mut all = records(&d);
        std::fs::write(all.pop().expect("newest"), b"damaged").expect("damage");
        let r = recover(&d, &RecoverOptions::default()).unwrap_or_else(|e| panic!("{what}: one damaged: {e}"));
        assert_eq!(r.checkpoint.as_ref().map(|c| c.fallbacks), Some(1));
        assert!(matches_oracle(&d), "{what}: one damaged");
        // Two damaged, and checkpoints ignored: refused, image untouched.
        for how in ["two damaged", "ignored"] {
            let d = tmp.path().join(how);
            copy_dir(&origin, &d);
            let o = if how == "ignored" {
                RecoverOptions { use_checkpoints: false, ..RecoverOptions::default() }
            } else {
                let mut all = records(&d);
                for _ in 0..2 {
                    std::fs::write(all.pop().expect("record"), b"damaged").expect("damage");
                }
                RecoverOptions::default()
            };
            let image = std::fs::read(d.join("image.img")).expect("image");
            match recover(&d, &o) {
                Err(e @ Error::Checkpoint { .. }) => {
                    assert!(e.to_string().contains("COPY records"), "{what}: {how}: {e}");
                    assert_eq!(std::fs::read(d.join("image.img")).expect("image"), image, "{what}: {how}");
                    refused += 1;
                }
                Err(e) => panic!("{what}: {how}: {e}"),
                Ok(_) => panic!("{what}: {how}: replayed copies from too far back"),
            }
        }
    }
    assert_eq!(refused, 16);
}

/// A snapshot chain plus the journal after it rebuilds an image that was deleted, or damaged,
/// to the committed state, except what no backup or journal holds: unlogged writes after the
/// snapshot, and writes to blocks freed since (which keep the snapshot's content), both
/// bounded here by what the generator counted and the report says.
#[test]
fn a_snapshot_rebuilds_a_deleted_or_damaged_image() {
    for policy in Policy::ALL {
        for full_every in [1, 4] {
            let what = format!("{policy:?}, a full snapshot every {full_every}");
            let tmp = tempfile::tempdir().expect("tempdir");
            let origin = tmp.path().join("o");
            let mut p = params(21, policy, CheckpointStyle::Incremental, Cadence::Txns(80));
            p.unlogged_write_rate = 0.0;
            p.snapshots = Some(SnapshotPlan { every: Cadence::Txns(50), full_every, ..SnapshotPlan::default() });
            let s = generate(&origin, &p);
            assert!(s.snapshots >= 3, "{what}");
            for how in ["deleted", "superblock damaged", "data damaged", "truncated"] {
                let d = tmp.path().join(how);
                copy_dir(&origin, &d);
                let img = d.join("image.img");
                let mut b = std::fs::read(&img).expect("read");
                match how {
                    "deleted" => std::fs::remove_file(&img).expect("delete"),
                    "truncated" => std::fs::write(&img, &b[..b.len() / 3]).expect("truncate"),
                    _ => {
                        let from = if how == "data damaged" { 64 << 10 } else { 0 };
                        for x in b[from..].iter_mut().step_by(97) {
                            *x ^= 0x5a;
                        }
                        std::fs::write(&img, &b).expect("damage");
                    }
                }
                let r = recover(&d, &RecoverOptions { from_snapshot: true, ..RecoverOptions::default() })
                    .unwrap_or_else(|e| panic!("{what}, {how}: {e}"));
                let sn = r.snapshot.as_ref().unwrap_or_else(|| panic!("{what}, {how}: no snapshot used"));
                assert_eq!(sn.image_created, how != "data damaged", "{what}, {how}");
                assert_eq!(sn.lsn, s.last_snapshot_lsn, "{what}, {how}");
                assert_eq!(sn.blocks_not_in_snapshot, 0, "{what}, {how}");
                assert!(r.checkpoint.is_none(), "{what}, {how}: a rebuild does not start from a checkpoint");
                let v = workloads::digest::verify_dir(&d).expect("verify");
                let bound = sn.blocks_freed_since + s.hard_cases.unlogged_writes;
                assert!(v.bad_blocks <= bound, "{what}, {how}: {} blocks differ, at most {bound} may", v.bad_blocks);
                if bound == 0 {
                    assert!(v.matches, "{what}, {how}");
                }
            }
        }
    }
    // No snapshot at all: a clear error, and nothing created.
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path().join("d");
    generate(&d, &params(22, Policy::NoSteal, CheckpointStyle::Full, Cadence::Txns(80)));
    std::fs::remove_file(d.join("image.img")).expect("delete");
    let err = recover(&d, &RecoverOptions { from_snapshot: true, ..RecoverOptions::default() }).expect_err("none");
    assert!(matches!(err, Error::Snapshot { .. }), "{err}");
    assert!(!d.join("image.img").exists());
}

/// `fastrec snapshot` of a recovered directory, then the image lost: the snapshot and the
/// journal after it bring it back.
#[test]
fn a_snapshot_of_a_recovered_directory_restores_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path().join("d");
    let mut p = Preset::Small.params(31);
    p.unlogged_write_rate = 0.0;
    generate(&d, &p);
    let err = snapshot_dir(&d, &SnapshotOptions::default()).expect_err("not recovered");
    assert!(matches!(err, Error::NotRecovered { .. }), "{err}");
    recover(&d, &RecoverOptions::default()).expect("recover");
    let s = snapshot_dir(&d, &SnapshotOptions::default()).expect("snapshot");
    assert!(s.blocks > 0);
    let inc = snapshot_dir(
        &d,
        &SnapshotOptions { kind: recovery::snapshot::SnapshotKind::Incremental, ..SnapshotOptions::default() },
    )
    .expect("incremental");
    assert_eq!(inc.parent, Some(s.seq));
    assert_eq!(inc.blocks, 0, "nothing changed since the full one");
    std::fs::remove_file(d.join("image.img")).expect("lose the image");
    let r = recover(&d, &RecoverOptions { from_snapshot: true, force: true, ..RecoverOptions::default() })
        .expect("rebuild");
    assert_eq!(r.snapshot.as_ref().map(|x| x.chain.clone()), Some(vec![s.seq, inc.seq]));
    assert!(matches_oracle(&d));
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
        // Run 1 replays part of the journal and dies before writing its result (which, with
        // copies, it keeps private until then).
        let crashed = RecoverOptions {
            workers: Some(1),
            image_io: ImageIo::Mmap,
            fault: Some(recovery::FaultPoint::AfterBlockWrites(10)),
            ..RecoverOptions::default()
        };
        match recover(&d, &crashed) {
            Err(Error::InjectedFault(_)) => {}
            Err(e) => panic!("seed {seed}: {e}"),
            Ok(_) => continue, // fewer blocks changed than the fault point
        }
        assert!(d.join("recovery.cpl").exists(), "seed {seed}: the copy log pins the start point");
        // Run 2 asks for the whole journal; the pin wins, and the result is right.
        let r = recover(&d, &RecoverOptions { use_checkpoints: false, ..RecoverOptions::default() }).expect("rerun");
        assert!(r.checkpoint.is_some(), "seed {seed}: the pinned record is used");
        assert!(matches_oracle(&d), "seed {seed}: differs from the oracle");
        assert!(d.join("recovery.cpl").exists(), "seed {seed}: the log stays for --force");
    }
    // The pinned record damaged between the runs: a clear error, not a wrong image.
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = copies_and_checkpoints(tmp.path(), 9);
    let crashed = RecoverOptions {
        image_io: ImageIo::Mmap,
        fault: Some(recovery::FaultPoint::AfterBlockWrites(10)),
        ..RecoverOptions::default()
    };
    recover(&d, &crashed).expect_err("injected fault");
    let newest = records(&d).pop().expect("a record");
    std::fs::write(&newest, b"damaged").expect("damage");
    let err = recover(&d, &RecoverOptions::default()).expect_err("must refuse");
    assert!(matches!(err, Error::Checkpoint { .. }), "{err}");
    assert!(err.to_string().contains("finishing needs it"), "{err}");
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
                    Err(Error::InjectedFault(_)) => {
                        assert!(d.join("recovery.cpl").exists(), "{what}: the log is durable before any write");
                    }
                    Ok(_) => {} // fewer blocks to write than the fault point
                    Err(e) => panic!("{what}: {e}"),
                }
                recover(&d, &RecoverOptions { workers: Some(2), ..RecoverOptions::default() })
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                assert!(matches_oracle(&d), "{what}: differs from the oracle");
            }
        }
    }
}

/// `recover --force` on a directory already recovered, and a recovery repeated after its copy
/// log is damaged: copies whose sources now hold their final content read what they read the
/// first time (the log), so the image stays the oracle's.
#[test]
fn a_recovered_journal_with_copies_recovers_again_to_the_same_image() {
    for seed in 0..6u64 {
        for workers in [1, 2] {
            let what = format!("seed {seed}, {workers} workers");
            let tmp = tempfile::tempdir().expect("tempdir");
            let d = copy_heavy(tmp.path(), seed);
            let o = RecoverOptions { workers: Some(workers), parallel_threshold: 0, ..RecoverOptions::default() };
            let r = recover(&d, &o).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert!(r.copy_log.is_some_and(|c| c.copies > 0), "{what}: copies logged");
            assert!(matches_oracle(&d), "{what}");
            for _ in 0..2 {
                let r = recover(&d, &RecoverOptions { force: true, ..o }).unwrap_or_else(|e| panic!("{what}: {e}"));
                assert!(!r.parallel.warnings.is_empty(), "{what}: the repeat says it used the log");
                assert!(matches_oracle(&d), "{what}: --force changed the image");
            }
        }
    }
}

#[test]
fn a_torn_copy_log_is_discarded_and_the_recovery_starts_over() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = copy_heavy(tmp.path(), 4);
    let image = std::fs::read(d.join("image.img")).expect("image");
    std::fs::write(d.join("recovery.cpl"), b"FRCPYL01 torn").expect("write");
    recover(&d, &RecoverOptions::default()).expect("recover");
    assert!(matches_oracle(&d));
    assert_ne!(std::fs::read(d.join("image.img")).expect("image"), image);
    // The log this recovery wrote replaced the torn one.
    assert!(std::fs::metadata(d.join("recovery.cpl")).expect("log").len() > 100);
}
