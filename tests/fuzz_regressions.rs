//! Replays every saved fuzz input through the same harness the cargo-fuzz targets run
//! (`fuzz/src/harness.rs`, included by path), on the stable toolchain: the inputs of past
//! findings under `fuzz/regressions/<target>/` and the committed seed corpus under
//! `fuzz/corpus/<target>/`. Any panic fails the test with the input's path.
//!
//! The seed corpus is written by the ignored test `write_seed_corpus` (see docs/FUZZING.md):
//! small crash states from the workload generator, encoded for each target.

#[path = "../fuzz/src/harness.rs"]
mod harness;

use std::path::{Path, PathBuf};

use recovery::format::fragment::{encode_fragment, kinds, SegmentDecoder, Step, FRAGMENT_HEADER_LEN};
use recovery::format::segment::{segment_file_name, SegmentHeader};
use workloads::{CheckpointPlan, CheckpointStyle, CrashKind, GenParams, Policy, SnapshotPlan};

/// The harness function of a fuzz target.
fn harness_of(target: &str) -> fn(&[u8]) {
    match target {
        "record" => harness::record,
        "segment" => harness::segment,
        "recover_dir" => harness::recover_dir,
        _ => panic!("unknown fuzz target {target}"),
    }
}

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.expect("list inputs").path()).filter(|p| p.is_file()).collect(),
        Err(_) => Vec::new(),
    };
    out.sort();
    out
}

fn replay(target: &str) {
    let run = harness_of(target);
    let regressions = files_under(&fuzz_dir().join("regressions").join(target));
    let seeds = files_under(&fuzz_dir().join("corpus").join(target));
    assert!(!seeds.is_empty(), "no seed corpus for {target}: run write_seed_corpus");
    for path in regressions.iter().chain(&seeds) {
        let data = std::fs::read(path).expect("read input");
        let r = std::panic::catch_unwind(|| run(&data));
        assert!(
            r.is_ok(),
            "{target}: {} panicked (replay: cargo fuzz run {target} {})",
            path.display(),
            path.display()
        );
    }
    println!("{target}: {} regression inputs, {} seeds", regressions.len(), seeds.len());
}

#[test]
fn record_inputs_do_not_panic() {
    replay("record");
}

#[test]
fn segment_inputs_do_not_panic() {
    replay("segment");
}

#[test]
fn recover_dir_inputs_do_not_panic() {
    replay("recover_dir");
}

#[test]
fn a_dir_input_round_trips_through_its_encoding() {
    let input = harness::DirInput {
        options: harness::options::FORCE,
        files: vec![
            harness::DirFile { kind: harness::FileKind::Image, fix: true, arg: 0, len: 4096, content: vec![1, 2] },
            harness::DirFile { kind: harness::FileKind::Segment, fix: false, arg: 1, len: 0, content: vec![3; 70] },
        ],
    };
    assert_eq!(harness::DirInput::parse(&input.encode()), input);
    // A cut-off last entry keeps the bytes that are there.
    let cut = &input.encode()[..input.encode().len() - 10];
    assert_eq!(harness::DirInput::parse(cut).files[1].content.len(), 60);
}

/// Seed shapes: tiny images and journals (a corpus file must stay well under 64 KiB), every
/// crash kind under both policies, with copies, checkpoints and snapshots in some.
fn seed_params() -> Vec<(String, GenParams)> {
    let base = GenParams {
        txns: 6,
        ops_per_txn: (1, 4),
        block_size: 512,
        block_count: 24,
        inode_count: 64,
        journal_block_size: 4096,
        // The smallest segment that holds a record of the largest size, with 4 KiB blocks.
        segment_blocks: 33,
        partial_len: (8, 128),
        full_block_fraction: 0.2,
        interleave: 3,
        inflight: 1,
        copy_len: (8, 64),
        deps_reach: 4,
        ..GenParams::default()
    };
    let mut out = Vec::new();
    for (i, crash) in CrashKind::ALL.into_iter().enumerate() {
        for policy in Policy::ALL {
            let seed = i as u64 * 2 + u64::from(policy == Policy::Steal);
            let p = GenParams {
                seed,
                crash,
                policy,
                deps_rate: if seed.is_multiple_of(3) { 0.3 } else { 0.0 },
                ..base.clone()
            };
            out.push((format!("{}-{}-s{seed}", policy.name(), crash.name()), p));
        }
    }
    for (i, style) in CheckpointStyle::ALL.into_iter().enumerate() {
        let checkpoints =
            Some(CheckpointPlan { every: workloads::Cadence::Txns(2), style, retain: 2, torn_at_crash: i % 2 == 0 });
        let seed = 20 + i as u64;
        let crash = [CrashKind::Clean, CrashKind::Torn][i % 2];
        let p = GenParams { seed, checkpoints, crash, txns: 8, policy: Policy::ALL[i % 2], ..base.clone() };
        out.push((format!("ckpt-{}-s{seed}", style.name()), p));
    }
    let snapshots =
        Some(SnapshotPlan { every: workloads::Cadence::Txns(3), full_every: 2, retain: 2, ..Default::default() });
    out.push(("snapshots-s30".into(), GenParams { seed: 30, snapshots, txns: 8, ..base.clone() }));
    out.push(("copies-s31".into(), GenParams { seed: 31, deps_rate: 0.5, txns: 8, ..base }));
    out
}

const SEED_BYTES_MAX: usize = 64 << 10;

fn write_seed(target: &str, name: &str, bytes: &[u8]) {
    assert!(bytes.len() <= SEED_BYTES_MAX, "{target}/{name}: {} bytes", bytes.len());
    let dir = fuzz_dir().join("corpus").join(target);
    std::fs::create_dir_all(&dir).expect("corpus directory");
    std::fs::write(dir.join(name), bytes).expect("write seed");
}

/// Every record of a segment file, whole.
fn records_of(segment: &[u8]) -> Vec<Vec<u8>> {
    let Ok(h) = SegmentHeader::decode(segment) else {
        return Vec::new();
    };
    let mut dec = SegmentDecoder::new(segment, h.block_size, h.salt);
    let mut out = Vec::new();
    while let Step::Record { bytes, .. } = dec.next_step() {
        out.push(bytes.to_vec());
    }
    out
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("list") {
        let e = e.expect("entry");
        let dst = to.join(e.file_name());
        if e.path().is_dir() {
            copy_tree(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).expect("copy");
        }
    }
}

/// Regenerates `fuzz/corpus/`: `cargo test --release --test fuzz_regressions -- --ignored
/// write_seed_corpus`. Same generator, same bytes.
#[test]
#[ignore = "writes the committed seed corpus"]
fn write_seed_corpus() {
    for target in ["record", "segment", "recover_dir"] {
        let _ = std::fs::remove_dir_all(fuzz_dir().join("corpus").join(target));
    }
    let mut by_shape: std::collections::BTreeMap<(u8, u8, bool), Vec<u8>> = Default::default();
    let mut segments_written = 0;
    for (name, p) in seed_params() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let crash = tmp.path().join("crash");
        workloads::generate(&crash, &p).unwrap_or_else(|e| panic!("{name}: {e}"));
        if matches!(p.crash, CrashKind::Clean | CrashKind::Cut | CrashKind::ZeroTail) {
            split_journal(&crash.join("journal"), 2 + (p.seed % 2) as usize);
        }

        let input = harness::DirInput::from_dir(&crash, 0).expect("encode the crash state");
        write_seed("recover_dir", &name, &input.encode());

        // The same crash state recovered once: a rerun with `force` repeats it from the marker
        // and copy log, and one without finds the marker.
        let recovered = tmp.path().join("recovered");
        copy_tree(&crash, &recovered);
        if recovery::recover(&recovered, &recovery::RecoverOptions::default()).is_ok() {
            let input = harness::DirInput::from_dir(&recovered, harness::options::FORCE).expect("encode");
            write_seed("recover_dir", &format!("{name}-recovered"), &input.encode());
        }

        let mut segs = files_under(&crash.join("journal"));
        segs.truncate(2);
        for seg in segs {
            let bytes = std::fs::read(&seg).expect("read segment");
            for rec in records_of(&bytes) {
                let single = rec.len() < 4096;
                by_shape.entry((rec[0], rec[1], single)).or_insert(rec);
            }
            if segments_written < 16 {
                let bs = SegmentHeader::decode(&bytes).map_or(4096, |h| h.block_size as usize);
                let mut seed = vec![0u8];
                seed.extend_from_slice(&bytes[..64.min(bytes.len())]);
                seed.extend_from_slice(bytes.get(bs..).unwrap_or(&[]));
                // Ask for checksum repair only where it changes nothing (a torn tail's stale
                // fragments would become valid), and for the trusted comparison always.
                seed[0] = 4 | 3;
                let fixed = seed.clone();
                let mut probe = seed.clone();
                probe[0] = 4;
                if segment_fix_changes(&fixed) {
                    seed = probe;
                }
                let file = seg.file_name().expect("name").to_string_lossy().into_owned();
                write_seed("segment", &format!("{name}-{file}"), &seed);
                segments_written += 1;
            }
        }
    }
    for ((rec_type, flags, _), rec) in &by_shape {
        let mut seed = vec![0u8];
        seed.extend_from_slice(rec);
        write_seed("record", &format!("type{rec_type}-flags{flags}-{}", rec.len()), &seed);
    }
    // An optional record type, which readers skip, with its checksum left to the harness.
    let mut optional = vec![1u8];
    optional.extend_from_slice(&by_shape.values().next().expect("some record")[..28]);
    optional[1] = 0x85;
    optional[5..9].copy_from_slice(&0u32.to_le_bytes());
    write_seed("record", "type133-optional", &optional);
}

/// Rewrites a journal held in one segment file as `parts` segments (a segment that holds a
/// record of the largest size is too big for a seed, so the generator writes one): the same
/// records, split between segments at record boundaries, each segment with its own salt. Only
/// for journals whose tail holds no stale bytes (those would need the original layout).
fn split_journal(jdir: &Path, parts: usize) {
    let segs = files_under(jdir);
    let [only] = segs.as_slice() else {
        return;
    };
    let bytes = std::fs::read(only).expect("read segment");
    let header = SegmentHeader::decode(&bytes).expect("generated header");
    let records = records_of(&bytes);
    if records.len() < parts * 2 {
        return;
    }
    std::fs::remove_file(only).expect("remove segment");
    let per = records.len().div_ceil(parts);
    for (i, chunk) in records.chunks(per).enumerate() {
        let seq = i as u64 + 1;
        let first_lsn = u64::from_le_bytes(chunk[0][8..16].try_into().expect("lsn"));
        let salt = header.salt ^ seq.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let h = SegmentHeader { segment_seq: seq, salt, first_lsn, ..header };
        let bs = h.block_size as usize;
        let mut out = h.encode();
        for rec in chunk {
            let mut left: &[u8] = rec;
            let mut first = true;
            while !left.is_empty() {
                let room = bs - out.len() % bs;
                if room <= FRAGMENT_HEADER_LEN {
                    out.resize(out.len() + room, 0);
                    continue;
                }
                let take = left.len().min(room - FRAGMENT_HEADER_LEN).min(usize::from(u16::MAX));
                let last = take == left.len();
                let kind = match (first, last) {
                    (true, true) => kinds::FULL,
                    (true, false) => kinds::FIRST,
                    (false, false) => kinds::MIDDLE,
                    (false, true) => kinds::LAST,
                };
                encode_fragment(salt, kind, &left[..take], &mut out);
                left = &left[take..];
                first = false;
            }
        }
        std::fs::write(jdir.join(segment_file_name(seq)), out).expect("write segment");
    }
}

/// Whether the segment harness's checksum repair would change this segment seed.
fn segment_fix_changes(seed: &[u8]) -> bool {
    let bytes: Vec<u8> = seed[1..].to_vec();
    let Ok(h) = SegmentHeader::decode(&bytes) else {
        return true;
    };
    let mut file = bytes[..64].to_vec();
    file.resize(h.block_size as usize, 0);
    file.extend_from_slice(&bytes[64..]);
    let mut dec = SegmentDecoder::new(&file, h.block_size, h.salt);
    // A segment that decodes to its end with no damage has nothing the repair would change
    // except stale bytes after that end, which only a torn or garbage tail leaves.
    loop {
        match dec.next_step() {
            Step::Record { .. } => {}
            Step::End { offset } => return file[offset..].iter().any(|b| *b != 0),
            Step::Damage { .. } => return true,
        }
    }
}

/// Writes the directory a `recover_dir` input describes, to run `fastrec` on it:
/// `FUZZ_INPUT=<file> FUZZ_OUT=<dir> cargo test --release --test fuzz_regressions -- --ignored
/// materialise_recover_dir_input`.
#[test]
#[ignore = "a tool for reading findings"]
fn materialise_recover_dir_input() {
    let input = std::env::var_os("FUZZ_INPUT").expect("FUZZ_INPUT names a recover_dir input");
    let out = std::env::var_os("FUZZ_OUT").expect("FUZZ_OUT names the directory to write");
    harness::write_input_dir(&std::fs::read(input).expect("read input"), Path::new(&out));
}
