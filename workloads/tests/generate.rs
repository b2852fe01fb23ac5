//! Generation: determinism, hard cases per policy and crash kind, crash shapes, the expected
//! files, verify_dir and corrupt.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use recovery::dir::{EXPECTED_DIGESTS_FILE, IMAGE_FILE, JOURNAL_DIR, MANIFEST_FILE};
use recovery::format::segment::SegmentHeader;
use recovery::image::Layout;
use workloads::digest::{block_digests, image_digest, read_expected, verify_dir};
use workloads::{
    corrupt, generate, generate_with_expected_image, CorruptTarget, CrashKind, GenError, GenParams, Policy, Preset,
};

/// xxh3 digest of every file under `dir`, by relative path.
fn tree_digests(dir: &Path) -> BTreeMap<PathBuf, u64> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("list") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).expect("read");
                out.insert(p.strip_prefix(dir).expect("prefix").to_path_buf(), xxhash_rust::xxh3::xxh3_64(&bytes));
            }
        }
    }
    out
}

fn gen(params: &GenParams) -> (tempfile::TempDir, workloads::GenSummary) {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = generate(dir.path(), params).unwrap_or_else(|e| panic!("seed {}: {e}", params.seed));
    (dir, s)
}

#[test]
fn same_seed_same_bytes_different_seed_different_bytes() {
    for policy in Policy::ALL {
        for crash in [CrashKind::Torn, CrashKind::GarbageTail] {
            let p = GenParams { policy, crash, ..Preset::Small.params(11) };
            let (a, sa) = gen(&p);
            let (b, sb) = gen(&p);
            assert_eq!(sa, sb, "{policy} {crash}");
            let (da, db) = (tree_digests(a.path()), tree_digests(b.path()));
            assert!(da.keys().any(|k| k.starts_with(JOURNAL_DIR)));
            assert_eq!(da, db, "{policy} {crash}: every file is byte-identical");

            let (c, _) = gen(&GenParams { seed: 12, ..p.clone() });
            let dc = tree_digests(c.path());
            let image = PathBuf::from(IMAGE_FILE);
            assert_ne!(da[&image], dc[&image]);
            let seg = PathBuf::from(JOURNAL_DIR).join("seg-0000000000000001.wal");
            assert_ne!(da[&seg], dc[&seg]);
        }
    }
}

#[test]
fn hard_cases_are_produced_for_every_policy_and_crash_kind() {
    for seed in [1u64, 2, 3] {
        for policy in Policy::ALL {
            for crash in CrashKind::ALL {
                let p = GenParams { policy, crash, ..Preset::Small.params(seed) };
                let (_dir, s) = gen(&p);
                let h = &s.hard_cases;
                let what = format!("seed {seed} {policy} {crash}: {h:?}");
                match policy {
                    Policy::Steal => {
                        assert!(h.aborted_flushed_then_overwritten > 0, "{what}");
                        assert!(h.loser_changes_in_image > 0, "{what}");
                        assert_eq!(h.mid_abort_losers, 1, "{what}");
                    }
                    Policy::NoSteal => {
                        assert_eq!(h.aborted_flushed_then_overwritten, 0, "{what}");
                        assert_eq!(h.loser_changes_in_image, 0, "{what}");
                        assert_eq!(h.mid_abort_losers, 0, "{what}");
                    }
                }
                assert!(h.max_txns_per_block >= 8, "{what}");
                if crash == CrashKind::Clean {
                    assert_eq!(h.straddling_txns, 0, "{what}");
                    assert_eq!(s.crash_pos, s.journal_bytes_written, "{what}");
                } else {
                    assert_eq!(h.straddling_txns, 1, "{what}");
                    assert!(s.crash_pos > s.durable_pos && s.crash_pos < s.journal_bytes_written, "{what}");
                }
                assert!(h.committed_blocks_flushed > 0 && h.committed_blocks_unflushed > 0, "{what}");
                assert!(h.unlogged_writes > 0 && h.revokes > 0 && h.orphans_in_base > 0, "{what}");
                assert!(s.txns_in_flight >= u64::from(p.inflight), "{what}");
                assert!(s.segments > 1, "{what}: small journals still span several segments");
                assert!(
                    (1 << 20..3 << 20).contains(&s.journal_bytes_written),
                    "{what}: journal {}",
                    s.journal_bytes_written
                );
            }
        }
    }
}

/// Global position `pos` as (segment file, offset), from the segment files left on disk.
fn segment_files(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut segs: Vec<PathBuf> =
        std::fs::read_dir(dir.join(JOURNAL_DIR)).expect("list").map(|e| e.expect("entry").path()).collect();
    segs.sort();
    segs.into_iter()
        .map(|p| {
            let len = std::fs::metadata(&p).expect("stat").len();
            (p, len)
        })
        .collect()
}

#[test]
fn crash_kinds_shape_the_journal_tail() {
    for seed in 0..4u64 {
        let mut written = None;
        for crash in CrashKind::ALL {
            let p = GenParams { crash, ..Preset::Small.params(seed) };
            let (dir, s) = gen(&p);
            // Everything before the crash is identical whatever the crash kind.
            let w = *written.get_or_insert(s.journal_bytes_written);
            assert_eq!(w, s.journal_bytes_written);
            let segs = segment_files(dir.path());
            assert_eq!(segs.len() as u64, s.segments);
            let total: u64 = segs.iter().map(|s| s.1).sum();
            assert_eq!(total, s.journal_bytes);
            let (last, last_len) = segs.last().cloned().expect("a segment");
            let base = total - last_len;
            assert!(s.crash_pos >= base, "{crash}: crash position in the last segment");
            let off = (s.crash_pos - base) as usize;
            let data = std::fs::read(&last).expect("read");
            let after = &data[off..];
            match crash {
                CrashKind::Clean => assert!(after.is_empty()),
                CrashKind::Cut => assert!(after.is_empty(), "{crash}: cut exactly at the crash position"),
                CrashKind::ZeroTail => assert!(!after.is_empty() && after.iter().all(|&b| b == 0)),
                CrashKind::GarbageTail => assert!(after.len() >= 1024 && after.iter().any(|&b| b != 0)),
                CrashKind::Torn => {
                    let jbs = SegmentHeader::decode(&data).expect("header").block_size as usize;
                    let at_capacity = off + after.len() == jbs * (1 + p.segment_blocks as usize);
                    assert!(after.len() >= 300 || at_capacity, "{crash}: at least a few hundred stale bytes");
                    assert!(
                        off % jbs + after.len() >= jbs || at_capacity,
                        "{crash}: stale bytes reach the end of the journal block"
                    );
                    assert!(after.iter().any(|&b| b != 0));
                    assert_ne!(off as u64 + base, s.journal_bytes_written);
                }
            }
        }
    }
}

#[test]
fn expected_files_and_manifest_describe_the_state() {
    let p = Preset::Small.params(5);
    let dir = tempfile::tempdir().expect("tempdir");
    let (s, expected_image) = generate_with_expected_image(dir.path(), &p).expect("generate");
    let e = read_expected(dir.path()).expect("expected.json");
    assert_eq!((e.block_size, e.block_count, e.seed), (p.block_size, p.block_count, p.seed));
    let digests = block_digests(&expected_image, p.block_size as usize);
    assert_eq!(e.image_digest, image_digest(&digests));
    assert_eq!(e.image_digest, s.expected_digest);
    let raw = std::fs::read(dir.path().join(EXPECTED_DIGESTS_FILE)).expect("digests");
    assert_eq!(raw.len() as u64, p.block_count * 8);
    assert_eq!(&raw[..8], &digests[0].to_le_bytes());
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join(MANIFEST_FILE)).expect("manifest")).expect("json");
    assert_eq!(m["seed"], 5);
    assert_eq!(m["preset"], "small");
    assert_eq!(m["params"]["crash"], "torn");
    assert_eq!(m["params"]["policy"], "no-steal");
    assert_eq!(m["summary"]["crash_pos"], s.crash_pos);
    assert!(m["summary"]["hard_cases"]["max_txns_per_block"].as_u64().expect("count") >= 8);
    let back: GenParams = serde_json::from_value(m["params"].clone()).expect("params parse back");
    assert_eq!(back, p);
    // The image is a valid image of the right geometry.
    let layout = Layout::read_from(&dir.path().join(IMAGE_FILE)).expect("layout");
    assert_eq!(layout.block_count(), p.block_count);
}

#[test]
fn verify_dir_tells_crash_image_from_expected_image() {
    for policy in Policy::ALL {
        let p = GenParams { policy, ..Preset::Small.params(21) };
        let dir = tempfile::tempdir().expect("tempdir");
        let (_, expected_image) = generate_with_expected_image(dir.path(), &p).expect("generate");
        let v = verify_dir(dir.path()).expect("verify");
        assert!(!v.matches, "{policy}: the crash image is not the recovered image");
        assert!(v.bad_blocks > 0 && v.first_bad_block.is_some());
        assert_eq!(v.blocks, p.block_count);

        std::fs::write(dir.path().join(IMAGE_FILE), &expected_image).expect("write");
        let v = verify_dir(dir.path()).expect("verify");
        assert!(v.matches, "{policy}: {v:?}");
        assert_eq!((v.bad_blocks, v.first_bad_block), (0, None));

        let flips = corrupt(dir.path(), CorruptTarget::Image, 1, 3).expect("corrupt");
        let v = verify_dir(dir.path()).expect("verify");
        assert!(!v.matches);
        assert_eq!(v.bad_blocks, 1);
        assert_eq!(v.first_bad_block, Some(flips[0].offset / u64::from(p.block_size)));

        // A short image is a mismatch, not an error.
        let f = std::fs::OpenOptions::new().write(true).open(dir.path().join(IMAGE_FILE)).expect("open");
        f.set_len(u64::from(p.block_size) * 10).expect("truncate");
        let v = verify_dir(dir.path()).expect("verify");
        assert!(!v.matches);
        assert!(v.bad_blocks >= p.block_count - 10);
    }
}

#[test]
fn corrupt_flips_only_data_areas_and_is_seeded() {
    let p = Preset::Small.params(8);
    let (dir, _) = gen(&p);
    let before = std::fs::read(dir.path().join(IMAGE_FILE)).expect("image");
    let layout = Layout::read_from(&dir.path().join(IMAGE_FILE)).expect("layout");
    let flips = corrupt(dir.path(), CorruptTarget::Image, 20, 1).expect("corrupt");
    assert_eq!(flips.len(), 20);
    let after = std::fs::read(dir.path().join(IMAGE_FILE)).expect("image");
    for f in &flips {
        assert!(f.offset >= layout.data_start() * u64::from(p.block_size), "{f:?}");
        let i = f.offset as usize;
        assert_eq!(before[i] ^ after[i], 1 << f.bit);
    }

    let journal_before: Vec<(PathBuf, Vec<u8>)> = segment_files(dir.path())
        .into_iter()
        .map(|(p, _)| {
            let b = std::fs::read(&p).expect("read");
            (p, b)
        })
        .collect();
    let flips = corrupt(dir.path(), CorruptTarget::Journal, 50, 2).expect("corrupt");
    assert_eq!(flips.len(), 50);
    for f in &flips {
        let (_, bytes) = journal_before.iter().find(|(p, _)| *p == f.path).expect("a segment");
        let jbs = SegmentHeader::decode(bytes).expect("header").block_size;
        assert!(f.offset >= u64::from(jbs) && f.offset < bytes.len() as u64, "{f:?}");
    }

    // Same seed, same flips.
    let (d1, _) = gen(&p);
    let (d2, _) = gen(&p);
    let f1 = corrupt(d1.path(), CorruptTarget::Journal, 5, 9).expect("corrupt");
    let f2 = corrupt(d2.path(), CorruptTarget::Journal, 5, 9).expect("corrupt");
    let rel = |fs: &[workloads::Flip], d: &Path| {
        fs.iter().map(|f| (f.path.strip_prefix(d).expect("prefix").to_path_buf(), f.offset, f.bit)).collect::<Vec<_>>()
    };
    assert_eq!(rel(&f1, d1.path()), rel(&f2, d2.path()));
}

#[test]
fn refuses_a_directory_with_a_journal_and_bad_parameters() {
    let p = Preset::Small.params(1);
    let (dir, _) = gen(&p);
    assert!(matches!(generate(dir.path(), &p), Err(GenError::JournalExists { .. })));
    let fresh = tempfile::tempdir().expect("tempdir");
    let bad = GenParams { ops_per_txn: (5, 2), ..p.clone() };
    assert!(matches!(generate(fresh.path(), &bad), Err(GenError::Params { what: "ops_per_txn", .. })));
    let bad = GenParams { block_size: 1000, ..p };
    assert!(matches!(generate(fresh.path(), &bad), Err(GenError::Recovery(_))));
}

#[test]
fn many_seeds_generate_cleanly() {
    // Every generation runs the WAL and 2PL checkers; any violation is an error.
    for seed in 0..100u64 {
        let policy = Policy::ALL[(seed % 2) as usize];
        let crash = CrashKind::ALL[(seed % 5) as usize];
        let p = GenParams { policy, crash, ..Preset::Small.params(1000 + seed) };
        let _ = gen(&p);
    }
}

#[test]
fn the_summary_prints_for_people() {
    let (_dir, s) = gen(&Preset::Small.params(4));
    let text = s.to_string();
    assert!(text.contains("preset small, seed 4, policy no-steal, crash torn"), "{text}");
    assert!(text.contains(&s.expected_digest));
}

#[test]
fn copies_are_deterministic_and_seeded() {
    for policy in Policy::ALL {
        let p = GenParams { policy, ..Preset::Deps.params(31) };
        let (a, sa) = gen(&p);
        let (b, sb) = gen(&p);
        assert_eq!(sa, sb, "{policy}");
        assert!(sa.hard_cases.copies > 0, "{policy}: {:?}", sa.hard_cases);
        let da = tree_digests(a.path());
        assert_eq!(da, tree_digests(b.path()), "{policy}: every file is byte-identical");
        let (c, _) = gen(&GenParams { seed: 32, ..p.clone() });
        let dc = tree_digests(c.path());
        let seg = PathBuf::from(JOURNAL_DIR).join("seg-0000000000000001.wal");
        assert_ne!(da[&seg], dc[&seg], "{policy}");
        // The copies are what changes the bytes: the same seed without them differs.
        let (d, _) = gen(&GenParams { deps_rate: 0.0, ..p.clone() });
        assert_ne!(da[&seg], tree_digests(d.path())[&seg], "{policy}");
    }
}

#[test]
fn copy_parameters_are_validated() {
    let fresh = tempfile::tempdir().expect("tempdir");
    for (bad, what) in [
        (GenParams { deps_rate: 1.5, ..Preset::Deps.params(1) }, "deps_rate"),
        (GenParams { deps_reach: 0, ..Preset::Deps.params(1) }, "deps_reach"),
        (GenParams { copy_len: (0, 10), ..Preset::Deps.params(1) }, "copy_len"),
        (GenParams { copy_len: (20, 10), ..Preset::Deps.params(1) }, "copy_len"),
    ] {
        match generate(fresh.path(), &bad) {
            Err(GenError::Params { what: w, .. }) => assert_eq!(w, what),
            other => panic!("{what}: {other:?}"),
        }
    }
}

#[test]
fn the_deps_preset_produces_copies_and_the_usual_hard_cases() {
    for seed in [1u64, 2, 3] {
        for policy in Policy::ALL {
            for crash in CrashKind::ALL {
                let p = GenParams { policy, crash, ..Preset::Deps.params(seed) };
                let (_dir, s) = gen(&p);
                let h = &s.hard_cases;
                let what = format!("seed {seed} {policy} {crash}: {h:?}");
                assert!(h.copies > 0, "{what}");
                assert!(h.copies_reading_recent_writes > 0 && h.copies_reading_recent_writes <= h.copies, "{what}");
                if policy == Policy::Steal {
                    assert!(h.aborted_flushed_then_overwritten > 0 && h.loser_changes_in_image > 0, "{what}");
                    assert_eq!(h.mid_abort_losers, 1, "{what}");
                }
                assert!(h.max_txns_per_block >= 8, "{what}");
                assert_eq!(h.straddling_txns, u64::from(crash != CrashKind::Clean), "{what}");
                assert!(h.committed_blocks_flushed > 0 && h.committed_blocks_unflushed > 0, "{what}");
                assert!(h.unlogged_writes > 0 && h.revokes > 0 && h.orphans_in_base > 0, "{what}");
            }
        }
    }
}

#[test]
fn many_seeds_with_copies_generate_cleanly() {
    // The WAL, 2PL (read locks included) and copy-source checkers run on every generation.
    for seed in 0..60u64 {
        let policy = Policy::ALL[(seed % 2) as usize];
        let crash = CrashKind::ALL[(seed % 5) as usize];
        let p = GenParams {
            policy,
            crash,
            deps_rate: [0.1, 0.3, 0.7, 1.0][(seed % 4) as usize],
            deps_reach: [1, 8, 100, 5000][(seed / 4 % 4) as usize],
            sync_every: 1 + (seed % 3) as u32,
            ..Preset::Deps.params(2000 + seed)
        };
        let (_dir, s) = gen(&p);
        assert!(s.hard_cases.copies > 0, "seed {}: {:?}", p.seed, s.hard_cases);
    }
}
