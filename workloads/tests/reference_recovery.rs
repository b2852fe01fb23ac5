//! Cross-check: a minimal recovery written straight from `RECOVERY-RULES.md` (scan to the first
//! damage, analysis, redo with the revoke rule, undo of losers under steal, orphan cleanup)
//! must turn every generated crash state into exactly the oracle's expected image.
//!
//! Redo runs over the whole journal in LSN order on one image, so a COPY reads its source from
//! the replayed image exactly at its LSN. It skips nothing as superseded by a later full-block
//! write: that optimisation is the engine's, and with copies it needs care (a copy may read the
//! block in between).
//!
//! This validates the generator's crash states (write-ahead logging, 2PL, revoke settling,
//! mid-abort losers, torn tails) independently of the engine being built. It uses the
//! engine's format decoder, which the oracle itself never does.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use recovery::dir::{IMAGE_FILE, JOURNAL_DIR};
use recovery::format::fragment::{SegmentDecoder, Step};
use recovery::format::record::{decode_body, decode_header, AllocTarget, Record};
use recovery::format::segment::{parse_segment_file_name, SegmentHeader};
use recovery::image::{BitRegion, Layout};
use workloads::{generate_with_expected_image, CrashKind, GenParams, Policy, Preset};

#[derive(Debug, Clone)]
enum Rec {
    Write { block: u64, offset: u32, redo: Vec<u8>, undo: Option<Vec<u8>>, comp: bool },
    Copy { src: u64, src_offset: u32, dst: u64, dst_offset: u32, len: u32, undo: Option<Vec<u8>> },
    Bit { region: BitRegion, index: u64, set: bool, comp: bool },
    Revoke { block: u64 },
    Commit,
    Abort,
}

struct Scanned {
    records: Vec<(u64, u64, Rec)>,
    steal: bool,
}

fn last_lsn(dir: &Path) -> u64 {
    scan(&dir.join(JOURNAL_DIR)).records.last().map_or(0, |r| r.0)
}

fn scan(jdir: &Path) -> Scanned {
    let mut segs: Vec<(u64, std::path::PathBuf)> = std::fs::read_dir(jdir)
        .expect("list")
        .filter_map(|e| {
            let e = e.expect("entry");
            parse_segment_file_name(&e.file_name().to_string_lossy()).map(|s| (s, e.path()))
        })
        .collect();
    segs.sort();
    let mut records = Vec::new();
    let mut steal = false;
    let mut next_lsn = 1;
    'segments: for (_, path) in segs {
        let data = std::fs::read(&path).expect("read segment");
        let h = SegmentHeader::decode(&data).expect("segment header");
        steal = h.steal();
        let mut d = SegmentDecoder::new(&data, h.block_size, h.salt);
        loop {
            match d.next_step() {
                Step::Record { bytes, .. } => {
                    let Ok((rh, body)) = decode_header(bytes) else {
                        break 'segments;
                    };
                    let Ok(rec) = decode_body(&rh, body) else {
                        break 'segments;
                    };
                    assert_eq!(rh.lsn, next_lsn, "LSNs are dense");
                    next_lsn += 1;
                    let r = match rec {
                        Record::Write { block, offset, redo, undo, compensation, .. } => Rec::Write {
                            block,
                            offset,
                            redo: redo.to_vec(),
                            undo: undo.map(<[u8]>::to_vec),
                            comp: compensation,
                        },
                        Record::Bitmap { target, index, set, compensation } => Rec::Bit {
                            region: match target {
                                AllocTarget::Block => BitRegion::Blocks,
                                AllocTarget::Inode => BitRegion::Inodes,
                            },
                            index,
                            set,
                            comp: compensation,
                        },
                        Record::Orphan { ino, add, compensation } => {
                            Rec::Bit { region: BitRegion::Orphans, index: ino, set: add, comp: compensation }
                        }
                        Record::Copy { src, src_offset, dst, dst_offset, len, undo } => {
                            Rec::Copy { src, src_offset, dst, dst_offset, len, undo: undo.map(<[u8]>::to_vec) }
                        }
                        Record::Revoke { block } => Rec::Revoke { block },
                        Record::Commit { .. } => Rec::Commit,
                        Record::Abort { .. } => Rec::Abort,
                        Record::Optional { .. } => continue,
                    };
                    records.push((rh.lsn, rh.txid, r));
                }
                Step::End { .. } => continue 'segments,
                Step::Damage { .. } => break 'segments,
            }
        }
    }
    Scanned { records, steal }
}

fn put_bit(img: &mut [u8], layout: &Layout, region: BitRegion, index: u64, set: bool) {
    let p = layout.bit(region, index).expect("bit in range");
    let at = p.block as usize * layout.block_size() + p.byte;
    if set {
        img[at] |= p.mask;
    } else {
        img[at] &= !p.mask;
    }
}

fn get_bit(img: &[u8], layout: &Layout, region: BitRegion, index: u64) -> bool {
    let p = layout.bit(region, index).expect("bit in range");
    img[p.block as usize * layout.block_size() + p.byte] & p.mask != 0
}

fn reference_recover(dir: &Path) -> Vec<u8> {
    let layout = Layout::read_from(&dir.join(IMAGE_FILE)).expect("layout");
    let mut img = std::fs::read(dir.join(IMAGE_FILE)).expect("image");
    let bs = layout.block_size();
    let Scanned { records, steal } = scan(&dir.join(JOURNAL_DIR));
    let winners: HashSet<u64> =
        records.iter().filter(|(_, _, r)| matches!(r, Rec::Commit)).map(|(_, t, _)| *t).collect();
    let finished: HashSet<u64> =
        records.iter().filter(|(_, _, r)| matches!(r, Rec::Abort | Rec::Commit)).map(|(_, t, _)| *t).collect();
    let mut revoked: HashMap<u64, u64> = HashMap::new();
    for (lsn, txid, r) in &records {
        if let Rec::Revoke { block } = r {
            if winners.contains(txid) {
                let e = revoked.entry(*block).or_insert(0);
                *e = (*e).max(*lsn);
            }
        }
    }
    // Redo.
    for (lsn, txid, r) in &records {
        if !steal && !winners.contains(txid) {
            continue;
        }
        match r {
            Rec::Write { block, offset, redo, .. } => {
                if revoked.get(block).is_some_and(|&rl| *lsn < rl) {
                    continue;
                }
                let at = *block as usize * bs + *offset as usize;
                img[at..at + redo.len()].copy_from_slice(redo);
            }
            Rec::Copy { src, src_offset, dst, dst_offset, len, .. } => {
                // The generator never revokes a copy source after the copy: its content at this
                // LSN could not be rebuilt.
                assert!(
                    revoked.get(src).is_none_or(|&rl| *lsn > rl),
                    "copy at LSN {lsn} reads block {src}, revoked later at LSN {:?}",
                    revoked.get(src)
                );
                if revoked.get(dst).is_some_and(|&rl| *lsn < rl) {
                    continue;
                }
                let from = *src as usize * bs + *src_offset as usize;
                let to = *dst as usize * bs + *dst_offset as usize;
                img.copy_within(from..from + *len as usize, to);
            }
            Rec::Bit { region, index, set, .. } => put_bit(&mut img, &layout, *region, *index, *set),
            _ => {}
        }
    }
    // Undo of in-flight losers (steal).
    if steal {
        for (_, txid, r) in records.iter().rev() {
            if finished.contains(txid) {
                continue;
            }
            match r {
                Rec::Write { block, offset, undo, comp: false, .. } => {
                    let undo = undo.as_ref().expect("steal writes carry undo");
                    let at = *block as usize * bs + *offset as usize;
                    img[at..at + undo.len()].copy_from_slice(undo);
                }
                Rec::Copy { dst, dst_offset, undo, .. } => {
                    let undo = undo.as_ref().expect("steal copies carry undo");
                    let at = *dst as usize * bs + *dst_offset as usize;
                    img[at..at + undo.len()].copy_from_slice(undo);
                }
                Rec::Bit { region, index, set, comp: false } => put_bit(&mut img, &layout, *region, *index, !*set),
                _ => {}
            }
        }
    }
    // Orphans.
    for ino in 0..layout.geometry.inode_count {
        if get_bit(&img, &layout, BitRegion::Orphans, ino) {
            put_bit(&mut img, &layout, BitRegion::Orphans, ino, false);
            put_bit(&mut img, &layout, BitRegion::Inodes, ino, false);
        }
    }
    img
}

fn check(params: &GenParams) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (summary, expected) = generate_with_expected_image(dir.path(), params).expect("generate");
    assert_eq!(
        last_lsn(dir.path()),
        summary.last_surviving_lsn,
        "seed {}: a record survives iff it ends at or before the crash position",
        params.seed
    );
    let got = reference_recover(dir.path());
    let bs = params.block_size as usize;
    let bad: Vec<usize> =
        (0..expected.len() / bs).filter(|&b| got[b * bs..(b + 1) * bs] != expected[b * bs..(b + 1) * bs]).collect();
    assert!(
        bad.is_empty(),
        "seed {} policy {} crash {}: reference recovery differs from the oracle in {} blocks, first {:?}; summary {summary:?}",
        params.seed,
        params.policy,
        params.crash,
        bad.len(),
        bad.first()
    );
}

#[test]
fn reference_recovery_reaches_the_oracle_image_for_every_policy_and_crash_kind() {
    for seed in 0..12u64 {
        for policy in Policy::ALL {
            for crash in CrashKind::ALL {
                check(&GenParams { policy, crash, ..Preset::Small.params(seed) });
            }
        }
    }
}

#[test]
fn reference_recovery_agrees_under_other_shapes() {
    let shapes = [
        GenParams { sync_every: 4, ..Preset::Small.params(100) },
        GenParams { sync_every: 3, policy: Policy::Steal, abort_rate: 0.3, ..Preset::Small.params(101) },
        GenParams {
            address: workloads::AddressDist::Zipf { skew: 1.1 },
            policy: Policy::Steal,
            ..Preset::Small.params(102)
        },
        GenParams { address: workloads::AddressDist::Sequential, crash: CrashKind::Cut, ..Preset::Small.params(103) },
        GenParams {
            address: workloads::AddressDist::HotSet { fraction: 0.02, probability: 0.9 },
            policy: Policy::Steal,
            interleave: 16,
            inflight: 6,
            ..Preset::Small.params(104)
        },
        GenParams {
            mix: workloads::OpMix { write: 1, bitmap: 3, orphan: 2 },
            unlogged_write_rate: 0.5,
            ..Preset::Small.params(105)
        },
        GenParams {
            mix: workloads::OpMix { write: 1, bitmap: 3, orphan: 2 },
            unlogged_write_rate: 0.5,
            policy: Policy::Steal,
            sync_every: 5,
            ..Preset::Small.params(106)
        },
        GenParams { interleave: 1, inflight: 0, policy: Policy::Steal, ..Preset::Small.params(107) },
        GenParams { block_size: 4096, flush_rate: 1.0, policy: Policy::Steal, ..Preset::Small.params(108) },
        GenParams { flush_rate: 0.0, crash: CrashKind::GarbageTail, ..Preset::Small.params(109) },
    ];
    for p in &shapes {
        check(p);
    }
}

#[test]
fn reference_recovery_agrees_with_copies_for_every_policy_and_crash_kind() {
    for seed in 0..8u64 {
        for policy in Policy::ALL {
            for crash in CrashKind::ALL {
                check(&GenParams { policy, crash, ..Preset::Deps.params(seed) });
            }
        }
    }
}

#[test]
fn reference_recovery_agrees_under_deps_heavy_shapes() {
    let deps = |seed| Preset::Deps.params(seed);
    let shapes = [
        // Nearly every write a copy, sources next door: long chains of copies.
        GenParams { deps_rate: 0.9, deps_reach: 1, ..deps(200) },
        GenParams { deps_rate: 0.9, deps_reach: 2, policy: Policy::Steal, ..deps(201) },
        // Group commit and many aborts: revokes wait unsettled, compensated copies.
        GenParams { deps_rate: 0.5, sync_every: 4, abort_rate: 0.3, policy: Policy::Steal, ..deps(202) },
        GenParams { deps_rate: 0.5, sync_every: 3, abort_rate: 0.3, ..deps(203) },
        // Whole-block copies (full compensation writes) mixed with full-block writes.
        GenParams { copy_len: (2048, 2048), full_block_fraction: 0.8, policy: Policy::Steal, ..deps(204) },
        GenParams { copy_len: (1, 2048), full_block_fraction: 0.8, crash: CrashKind::Cut, ..deps(205) },
        // A hot set: copies between few blocks, written over and over, flushed often.
        GenParams {
            address: workloads::AddressDist::HotSet { fraction: 0.02, probability: 0.9 },
            deps_reach: 1024,
            flush_rate: 1.0,
            policy: Policy::Steal,
            interleave: 16,
            inflight: 6,
            ..deps(206)
        },
        GenParams { deps_reach: 1_000_000, flush_rate: 1.0, ..deps(207) },
        // Revokes and unlogged reuse next to copies.
        GenParams {
            mix: workloads::OpMix { write: 2, bitmap: 3, orphan: 1 },
            unlogged_write_rate: 0.5,
            deps_rate: 0.7,
            policy: Policy::Steal,
            sync_every: 5,
            ..deps(208)
        },
        GenParams {
            mix: workloads::OpMix { write: 2, bitmap: 3, orphan: 1 },
            unlogged_write_rate: 0.5,
            deps_rate: 0.7,
            ..deps(209)
        },
        GenParams { interleave: 1, inflight: 0, policy: Policy::Steal, ..deps(210) },
    ];
    for p in &shapes {
        check(p);
    }
}
