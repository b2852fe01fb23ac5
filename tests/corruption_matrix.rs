//! The corruption matrix (docs/CORRUPTION.md): one bit flipped, one 512-byte sector zeroed, or
//! the file truncated, in each place a crash state has bytes (segment headers, a record in
//! mid-journal, the tail record, the newest checkpoint record, the image's metadata region),
//! recovered in every mode under both buffer policies. Every cell's outcome is classified
//! against the oracle and the report, and the whole table must equal the documented one:
//!
//! - `ok`: the oracle's image;
//! - `loss`: another image, and the report says what was lost (a tail cut, skipped damage, a
//!   checkpoint record passed over, an ignored segment);
//! - `refused`: an error naming the file and offset, the image byte for byte as before;
//! - `passes`: damage to the image outside what the journal rewrites stays as it was (the
//!   image carries no checksums), and only the damaged block differs from the oracle.
//!
//! Anything else (a different image with nothing reported, an error after the image changed)
//! is silent loss, and fails the test whatever the table says.

mod common;

use std::path::{Path, PathBuf};

use recovery::{recover, IoBackend, IoOptions, RecoverOptions, RecoveryMode};
use workloads::{Cadence, CheckpointPlan, GenParams, Policy, Preset};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Damage {
    Flip,
    Zero,
    Truncate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    FirstHeader,
    LastHeader,
    MidRecord,
    TailRecord,
    Checkpoint,
    ImageMeta,
}

const PLACES: [Place; 6] =
    [Place::FirstHeader, Place::LastHeader, Place::MidRecord, Place::TailRecord, Place::Checkpoint, Place::ImageMeta];
const DAMAGES: [Damage; 3] = [Damage::Flip, Damage::Zero, Damage::Truncate];
const MODES: [RecoveryMode; 3] = [RecoveryMode::Absolute, RecoveryMode::TolerateTail, RecoveryMode::SkipCorrupt];

/// The crash state: without checkpoint records, so that recovery reads the whole journal and
/// every journal cell is damage recovery meets; with them for the checkpoint row.
fn params(policy: Policy, checkpoints: bool) -> GenParams {
    let mut p = Preset::Small.params(17);
    p.policy = policy;
    p.crash = workloads::CrashKind::Clean;
    p.checkpoints = checkpoints.then(|| CheckpointPlan {
        every: Cadence::Txns(40),
        torn_at_crash: false,
        ..CheckpointPlan::default()
    });
    p
}

/// (file, offset) of the bytes `place` names in the crash state `dir`.
fn locate(dir: &Path, place: Place) -> (PathBuf, u64) {
    let io = IoOptions::with(IoBackend::Read);
    let (_, journal) =
        recovery::recover::open_dir(dir, RecoveryMode::TolerateTail, &io).expect("open the undamaged state");
    let segs: Vec<PathBuf> = journal.segments.iter().map(|s| s.path.clone()).collect();
    assert!(segs.len() >= 3, "the matrix needs three segments, found {}", segs.len());
    let mut records: Vec<(usize, u64, u64)> = Vec::new();
    recovery::scan::scan(&journal, RecoveryMode::TolerateTail, |ctx, _, _| {
        records.push((ctx.segment, ctx.start, ctx.end));
        Ok(())
    })
    .expect("scan the undamaged state");
    let middle = |r: &(usize, u64, u64)| (segs[r.0].clone(), r.1 + (r.2 - r.1) / 2);
    match place {
        Place::FirstHeader => (segs[0].clone(), 20),
        Place::LastHeader => (segs[segs.len() - 1].clone(), 20),
        Place::MidRecord => {
            let in_first: Vec<_> = records.iter().filter(|r| r.0 == 0).collect();
            middle(in_first[in_first.len() / 2])
        }
        Place::TailRecord => middle(records.last().expect("records")),
        Place::Checkpoint => {
            let newest = recovery::checkpoint::list(dir).expect("list checkpoints").pop().expect("a checkpoint record");
            let len = std::fs::metadata(&newest.1).expect("stat").len();
            (newest.1, len / 2)
        }
        // Block 1: the first bitmap block, past the image's own header block.
        Place::ImageMeta => {
            let layout = recovery::image::Layout::read_from(&dir.join("image.img")).expect("layout");
            (dir.join("image.img"), layout.block_size() as u64 + 100)
        }
    }
}

fn damage(path: &Path, offset: u64, how: Damage) {
    let mut bytes = std::fs::read(path).expect("read the file to damage");
    match how {
        Damage::Flip => bytes[offset as usize] ^= 0x10,
        Damage::Zero => {
            let s = (offset as usize / 512) * 512;
            let e = (s + 512).min(bytes.len());
            bytes[s..e].fill(0);
        }
        Damage::Truncate => bytes.truncate(offset as usize),
    }
    std::fs::write(path, bytes).expect("write the damaged file");
}

fn lost_something(r: &recovery::RecoveryReport) -> bool {
    r.tail.is_some()
        || r.loss.is_some()
        || !r.skipped.is_empty()
        || !r.checkpoints_rejected.is_empty()
        || !r.segment_notes.is_empty()
}

/// The cell's outcome (see the module's comment), or a description of a silent loss.
fn cell(base: &Path, policy: Policy, place: Place, how: Damage, mode: RecoveryMode) -> Result<&'static str, String> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("c");
    common::copy_dir(base, &dir);
    let (path, offset) = locate(&dir, place);
    damage(&path, offset, how);
    let before = std::fs::read(dir.join("image.img")).expect("image");
    let what = format!("{policy:?} {place:?} {how:?} {mode}");
    match recover(&dir, &RecoverOptions { mode, ..RecoverOptions::default() }) {
        Err(_) => {
            let after = std::fs::read(dir.join("image.img")).expect("image");
            if after == before {
                Ok("refused")
            } else {
                Err(format!("{what}: error after the image changed"))
            }
        }
        Ok(r) => {
            if common::matches_oracle(&dir) {
                return Ok("ok");
            }
            if lost_something(&r) {
                return Ok("loss");
            }
            let v = workloads::verify_dir(&dir).expect("verify");
            if place == Place::ImageMeta && v.bad_blocks == 1 && v.first_bad_block == Some(1) {
                return Ok("passes");
            }
            Err(format!(
                "{what}: silent loss, {} blocks differ (first {:?}), nothing reported",
                v.bad_blocks, v.first_bad_block
            ))
        }
    }
}

/// The documented table (docs/CORRUPTION.md): per place and damage, the outcome in absolute,
/// tolerate-tail and skip-corrupt mode; `no-steal/steal` where the policies differ.
const EXPECTED: &str = "\
FirstHeader Flip: refused refused ok/loss
FirstHeader Zero: refused refused ok/loss
FirstHeader Truncate: refused refused ok/loss
LastHeader Flip: refused refused loss
LastHeader Zero: refused refused loss
LastHeader Truncate: refused loss loss
MidRecord Flip: refused refused ok
MidRecord Zero: refused refused ok/loss
MidRecord Truncate: refused refused loss
TailRecord Flip: refused ok ok
TailRecord Zero: refused ok ok
TailRecord Truncate: refused ok ok
Checkpoint Flip: ok ok ok
Checkpoint Zero: ok ok ok
Checkpoint Truncate: ok ok ok
ImageMeta Flip: passes passes passes
ImageMeta Zero: passes passes passes
ImageMeta Truncate: refused refused refused
";

#[test]
fn every_cell_has_its_documented_outcome_and_none_is_silent_loss() {
    let mut silent = Vec::new();
    // outcomes[policy][row][mode]
    let mut outcomes: Vec<Vec<Vec<String>>> = Vec::new();
    let mut rows = Vec::new();
    for policy in [Policy::NoSteal, Policy::Steal] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let plain = tmp.path().join("plain");
        common::generate(&plain, &params(policy, false));
        let with_checkpoints = tmp.path().join("checkpoints");
        common::generate(&with_checkpoints, &params(policy, true));
        let mut table = Vec::new();
        rows.clear();
        for place in PLACES {
            let base = if place == Place::Checkpoint { &with_checkpoints } else { &plain };
            for how in DAMAGES {
                let mut row = Vec::new();
                for mode in MODES {
                    match cell(base, policy, place, how, mode) {
                        Ok(o) => row.push(o.to_string()),
                        Err(e) => {
                            row.push("SILENT".into());
                            silent.push(e);
                        }
                    }
                }
                rows.push(format!("{place:?} {how:?}"));
                table.push(row);
            }
        }
        outcomes.push(table);
    }
    assert!(silent.is_empty(), "silent loss:\n{}", silent.join("\n"));
    let mut table = String::new();
    for (r, name) in rows.iter().enumerate() {
        let cells: Vec<String> = (0..MODES.len())
            .map(|m| {
                let (a, b) = (&outcomes[0][r][m], &outcomes[1][r][m]);
                if a == b {
                    a.clone()
                } else {
                    format!("{a}/{b}")
                }
            })
            .collect();
        table.push_str(&format!("{name}: {}\n", cells.join(" ")));
    }
    assert_eq!(table, EXPECTED, "the table differs from docs/CORRUPTION.md:\n{table}");
}
