//! Skip-corrupt against an oracle: one record of a generated journal is damaged (a bit of its
//! first fragment's payload flipped, so exactly that record is lost), and recovery in
//! skip-corrupt mode must give the committed state *without the damaged record's transaction*
//! (the oracle computes it with that transaction left out) on every block, except blocks it
//! reports as unresolved and the block the lost record itself changed (nobody can know what it
//! held). The reported unresolved blocks must be blocks the dropped transactions changed, and
//! under steal there must be none (their changes are undone with their undo images).

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use recovery::analysis::target_block;
use recovery::format::fragment::FRAGMENT_HEADER_LEN;
use recovery::format::record::Record;
use recovery::image::Layout;
use recovery::{recover, ImageIo, IoBackend, IoOptions, RecoverOptions, RecoveryMode};
use workloads::{Cadence, CheckpointPlan, GenParams, Policy, Preset};

/// A record of the intact journal: where it is and what it changes.
struct Rec {
    path: std::path::PathBuf,
    start: u64,
    lsn: u64,
    txid: u64,
    block: Option<u64>,
    /// A copy's source.
    src: Option<u64>,
    revoke: bool,
}

/// Every record of the intact journal, with its transaction and target block.
fn records(dir: &Path) -> (Layout, Vec<Rec>) {
    let io = IoOptions::with(IoBackend::Read);
    let (layout, journal) = recovery::recover::open_dir(dir, RecoveryMode::TolerateTail, &io).expect("open");
    let mut out = Vec::new();
    recovery::scan::scan(&journal, RecoveryMode::TolerateTail, |ctx, h, rec| {
        let block = match rec {
            Record::Commit { .. } | Record::Abort { .. } | Record::Optional { .. } => None,
            Record::Revoke { block } => Some(*block),
            _ => target_block(&layout, rec),
        };
        let src = match rec {
            Record::Copy { src, .. } => Some(*src),
            _ => None,
        };
        out.push(Rec {
            path: journal.segments[ctx.segment].path.clone(),
            start: ctx.start,
            lsn: h.lsn,
            txid: h.txid,
            block,
            src,
            revoke: matches!(rec, Record::Revoke { .. }),
        });
        Ok(())
    })
    .expect("scan the intact journal");
    (layout, out)
}

/// Flips one bit of the first fragment's payload of `r` (its record header sits there, so the
/// fragment's checksum fails and the whole record is lost, nothing else).
fn damage(r: &Rec, salt: u64) {
    let mut bytes = std::fs::read(&r.path).expect("read segment");
    let at = r.start as usize + FRAGMENT_HEADER_LEN + (salt % 16) as usize;
    bytes[at] ^= 1 << (salt % 8);
    std::fs::write(&r.path, bytes).expect("write segment");
}

/// `blocks` and what recovery derives from them: copies carry them to their destinations, and
/// orphan cleanup reads the orphan bitmap to clear inode bits.
fn derived(layout: &Layout, recs: &[Rec], mut blocks: BTreeSet<u64>) -> BTreeSet<u64> {
    loop {
        let n = blocks.len();
        let carried: Vec<u64> =
            recs.iter().filter(|r| r.src.is_some_and(|s| blocks.contains(&s))).filter_map(|r| r.block).collect();
        blocks.extend(carried);
        if blocks.len() == n {
            break;
        }
    }
    if layout.orphan_bitmap.clone().any(|b| blocks.contains(&b)) {
        blocks.extend(layout.inode_bitmap.clone());
    }
    blocks
}

fn check(p: &GenParams, pick: u64, base: RecoverOptions) {
    let what = format!(
        "seed {} {:?} deps {} checkpoints {} pick {pick} workers {:?} image-io {:?} budget {}",
        p.seed,
        p.policy,
        p.deps_rate,
        p.checkpoints.is_some(),
        base.workers,
        base.image_io,
        base.memory_budget_bytes
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("crash");
    let summary = common::generate(&dir, p);
    let (layout, recs) = records(&dir);
    // A record recovery reads (at or after the newest checkpoint's redo start), from the first
    // three quarters of those: the damage has later records after it, so skip-corrupt (not
    // the torn-tail rule) must handle it.
    let read: Vec<&Rec> = recs.iter().filter(|r| r.lsn >= summary.last_checkpoint_redo_start).collect();
    let victim = read[(pick as usize * 7919) % (read.len() * 3 / 4)];
    let dropped_txid = victim.txid;
    // Starting from a checkpoint record, a transaction that ended by the checkpoint's LSN may
    // have begun before the redo start, so its record count cannot be checked; one that ends
    // after the damage may have lost a record there unseen, and is dropped too.
    let (redo_start, ck_lsn) = (summary.last_checkpoint_redo_start, summary.last_checkpoint_lsn);
    let mut excluded = vec![dropped_txid];
    if ck_lsn > 0 {
        let mut span: std::collections::BTreeMap<u64, (u64, u64)> = std::collections::BTreeMap::new();
        for r in recs.iter().filter(|r| r.lsn >= redo_start) {
            let e = span.entry(r.txid).or_insert((r.lsn, r.lsn));
            e.1 = e.1.max(r.lsn);
        }
        excluded.extend(
            span.iter().filter(|(&t, &(_, hi))| t != dropped_txid && hi <= ck_lsn && victim.lsn < hi).map(|(&t, _)| t),
        );
    }
    damage(victim, pick);

    // Tolerate-tail refuses mid-journal damage, with the image untouched.
    let before = common::image(&dir);
    recover(&dir, &RecoverOptions::default()).expect_err(&format!("{what}: tolerate-tail must refuse the damage"));
    assert_eq!(common::image(&dir), before, "{what}: a refused recovery changed the image");

    // Without the checkpoint record recovery writes at the journal's end, so that the rerun
    // below reads the same damaged journal again (with it, a rerun starts after the record).
    let opts = RecoverOptions { mode: RecoveryMode::SkipCorrupt, final_checkpoint: false, ..base };
    let report = recover(&dir, &opts).unwrap_or_else(|e| panic!("{what}: skip-corrupt failed: {e}"));
    let loss = report.loss.as_ref().unwrap_or_else(|| panic!("{what}: no loss reported"));
    assert!(!report.skipped.is_empty(), "{what}: the damage was not reported");
    let dropped: BTreeSet<u64> = loss.damaged_txns.iter().chain(&loss.maybe_committed_txns).copied().collect();

    // The oracle, with the transactions that damage may have taken a record of left out.
    let exp_dir = tmp.path().join("expected");
    let (_, expected) =
        workloads::generate_with_expected_image(&exp_dir, &GenParams { exclude_txns: excluded.clone(), ..p.clone() })
            .expect("generate the expected image");
    let got = common::image(&dir);
    let bs = layout.block_size();
    let unresolved: BTreeSet<u64> = loss.unresolved_blocks.iter().copied().collect();
    // The most the report may name: blocks the dropped transactions change or revoke, what
    // copies carry from them, and the inode bitmap when an orphan bitmap block is among them.
    let of_dropped = |r: &&Rec| dropped.contains(&r.txid) || excluded.contains(&r.txid);
    let blocks_of_dropped = derived(&layout, &recs, recs.iter().filter(of_dropped).filter_map(|r| r.block).collect());
    // Under steal, what undo must leave alone: blocks the dropped transactions freed, and
    // blocks they changed that a revoke frees later (maybe reused without logging since).
    let revoked_later = |r: &Rec| recs.iter().any(|v| v.revoke && v.block == r.block && v.lsn > r.lsn);
    // And a copy whose destination is revoked later is not replayed: the destination stays as
    // the crash image made it, perhaps from a source a dropped change touched.
    let touched_by_dropped =
        |b: u64, before: u64| recs.iter().filter(of_dropped).any(|r| r.block == Some(b) && r.lsn < before);
    let revoked_copies = recs
        .iter()
        .filter(|r| r.src.is_some_and(|s| touched_by_dropped(s, r.lsn)) && revoked_later(r))
        .filter_map(|r| r.block);
    let revoked_by_dropped = derived(
        &layout,
        &recs,
        recs.iter()
            .filter(of_dropped)
            .filter(|r| r.revoke || revoked_later(r))
            .filter_map(|r| r.block)
            .chain(revoked_copies)
            .collect(),
    );
    // Nobody can know what the lost record changed, nor what recovery derived from that; nor
    // what records before the start point changed for transactions recovery did not read
    // whole (it names them).
    let mut partly: BTreeSet<u64> = loss.partly_read_txns.iter().copied().collect();
    // The lost record may have been the only one read of its transaction (its end, the rest
    // before the start point): recovery never sees it, and its changes stay as they are home.
    if !dropped.contains(&dropped_txid)
        && recs.iter().filter(|r| r.txid == dropped_txid && r.lsn >= summary.last_checkpoint_redo_start).count() == 1
    {
        partly.insert(dropped_txid);
    }
    let unread = recs
        .iter()
        .filter(|r| r.lsn < summary.last_checkpoint_redo_start && partly.contains(&r.txid))
        .filter_map(|r| r.block);
    let lost = derived(&layout, &recs, victim.block.into_iter().chain(unread).collect());
    for b in 0..layout.block_count() {
        let range = b as usize * bs..(b as usize + 1) * bs;
        if got[range.clone()] == expected[range.clone()] {
            continue;
        }
        assert!(
            unresolved.contains(&b) || lost.contains(&b),
            "{what}: block {b} differs from the oracle without the dropped transactions {excluded:?}, and the report \
             does not say it may (unresolved {unresolved:?}, lost record LSN {} block {:?}; {loss:?})",
            victim.lsn,
            victim.block
        );
    }
    assert!(
        unresolved.is_subset(&blocks_of_dropped),
        "{what}: unresolved blocks {unresolved:?} beyond the blocks the dropped transactions change"
    );
    if p.policy == Policy::Steal {
        // Undone with their undo images, except on blocks they freed (maybe reused since).
        assert!(
            unresolved.is_subset(&revoked_by_dropped),
            "{what}: steal undoes what it drops, yet reports {unresolved:?} (revoked by them: {revoked_by_dropped:?})"
        );
    }
    // The victim's transaction is left out, as the oracle assumes (unless it never committed
    // anyway: then it is an ordinary loser).
    let committed_anyway = recs.iter().any(|r| r.txid == dropped_txid && r.lsn > victim.lsn);
    if committed_anyway {
        assert!(dropped.contains(&dropped_txid), "{what}: transaction {dropped_txid} lost a record but was kept");
    }

    // A second run over the recovered directory changes nothing the report does not name.
    let again = recover(&dir, &RecoverOptions { force: true, ..opts }).unwrap_or_else(|e| panic!("{what}: rerun: {e}"));
    assert_eq!(again.loss.as_ref().map(|l| &l.unresolved_blocks), Some(&loss.unresolved_blocks), "{what}");
    let second = common::image(&dir);
    // Blocks in doubt may come out otherwise (orphan cleanup acts on an orphan bit a dropped
    // transaction left, then the bit is gone), and only those.
    let changed: Vec<u64> = (0..layout.block_count())
        .filter(|&b| second[b as usize * bs..][..bs] != got[b as usize * bs..][..bs] && !unresolved.contains(&b))
        .collect();
    assert!(changed.is_empty(), "{what}: a second skip-corrupt run changed blocks {changed:?} (not in doubt)");
}

fn workers(n: usize) -> RecoverOptions {
    RecoverOptions { workers: Some(n), ..RecoverOptions::default() }
}

/// Seeds per test: `FASTREC_TRIALS` (e.g. 250 for a long run), else a CI-sized default.
fn seeds(default: u64) -> std::ops::RangeInclusive<u64> {
    1..=std::env::var("FASTREC_TRIALS").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[test]
fn one_lost_record_drops_its_transaction_and_nothing_else() {
    for seed in seeds(10) {
        for policy in [Policy::NoSteal, Policy::Steal] {
            let p = GenParams { policy, ..Preset::Small.params(seed) };
            for pick in [seed, seed * 31 + 5] {
                check(&p, pick, workers(1));
            }
        }
    }
}

#[test]
fn lost_records_with_copies_windows_and_checkpoints() {
    for seed in seeds(4) {
        for policy in [Policy::NoSteal, Policy::Steal] {
            let p = GenParams { policy, ..Preset::Deps.params(seed) };
            check(&p, seed * 17 + 3, workers(1));
            check(&p, seed * 5 + 1, workers(2));
            // Windows: a budget below the touched blocks (no copies, so more than one).
            let small = GenParams { policy, ..Preset::Small.params(seed + 20) };
            let windows = RecoverOptions {
                image_io: ImageIo::Pwrite,
                memory_budget_bytes: recovery::recover::MEMORY_BUDGET_MIN,
                ..workers(1)
            };
            check(&small, seed * 3 + 2, windows);
            // Starting from a checkpoint record: the dirty block table's "home" rule must not
            // skip a change that undoing a dropped transaction first put back.
            let ck = GenParams {
                policy,
                checkpoints: Some(CheckpointPlan { every: Cadence::Txns(60), ..CheckpointPlan::default() }),
                ..Preset::Small.params(seed + 40)
            };
            check(&ck, seed * 11 + 7, workers(1));
        }
    }
}
