//! The crash-state generator: a simulated transactional writer over an image, with a buffer
//! pool (flushes), group commit (syncs), aborts, unlogged writes after revokes, and a crash.
//!
//! Three image copies live side by side: `mem` (the writer's in-memory state, uncommitted
//! changes included), `disk` (what the image file holds: base + flushes + unlogged writes) and
//! the oracle's (the committed state as far as it is durable). A checker watches the two rules
//! that make a crash state possible: write-ahead logging (no flushed content newer than the
//! durable LSN) and strict two-phase locking (no change to a block or bit another open
//! transaction changed or read).
//!
//! COPY records (`GenParams::deps_rate`) read their source block as it is in the copying
//! transaction's view and change their destination like a write. Three more rules keep a crash
//! state with copies recoverable by a blind-redo engine, which rebuilds a copy's source from the
//! crash image plus the logged changes below the copy's LSN:
//!
//! - a copy holds its source locked (exclusively, for simplicity) until its transaction ends;
//! - a block that has ever been a copy source is never freed and revoked, never reused by an
//!   unlogged write, and a copy never reads a block whose committed revoke is not yet settled
//!   (durable and written back);
//! - a block that has been a copy source is written back with a change newer than a copy that
//!   read it only once that copy lies before the redo start of the two newest checkpoint
//!   records: recovery replays copies only from there on (it refuses to start further back
//!   when the journal has copies), and the bytes a copy read that no logged change below it
//!   produced must still be in the crash image when it does.
//!
//! The buffer pool keeps, per dirty block, the LSN of its oldest change not yet home
//! (`rec_lsn`); a background writer writes back the oldest (or random) dirty blocks at a
//! configurable pace, and checkpoints are taken as a running system takes them (see
//! `recovery::checkpoint`): a record with the dirty block table and the open transactions,
//! after writing back everything (sharp styles) or nothing (fuzzy).

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

use recovery::dir::{IMAGE_FILE, JOURNAL_DIR, MANIFEST_FILE};
use recovery::format::record::{AllocTarget, Record};
use recovery::format::segment::parse_segment_file_name;
use recovery::format::writer::{segment_salt, Appended, JournalWriter, SegmentInfo, WriterConfig};
use recovery::image::{BitRegion, Geometry, Layout};
use serde::{Deserialize, Serialize};

use crate::crash::shape_journal;
use crate::digest::{block_digests, image_digest, write_expected, write_json, Expected};
use crate::dist::AddressSampler;
use crate::error::GenError;
use crate::oracle::{Event, Oracle};
use crate::params::{
    Cadence, CheckpointPlan, CheckpointStyle, CrashKind, GenParams, Policy, Preset, SnapshotPlan, Writeback,
};
use crate::rng::{derive, Filler, Rng};

/// The deliberately produced hard cases, counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardCases {
    /// Steal: an aborted transaction's change was flushed to the image before the abort, and
    /// a committed transaction later wrote an overlapping partial range of the block.
    pub aborted_flushed_then_overwritten: u64,
    /// Steal: (loser, data block) pairs where the loser's change is in the crash image.
    pub loser_changes_in_image: u64,
    /// The most committed transactions that wrote one data block (a hot block with
    /// overlapping partial writes makes it at least 8).
    pub max_txns_per_block: u64,
    /// Transactions with durable records whose later records and commit were lost at the
    /// crash (0 for a clean crash).
    pub straddling_txns: u64,
    /// Data blocks written by committed transactions whose final content is in the crash
    /// image.
    pub committed_blocks_flushed: u64,
    /// Data blocks written by committed transactions whose final content is not in the crash
    /// image.
    pub committed_blocks_unflushed: u64,
    /// Unlogged full-block writes to revoked blocks.
    pub unlogged_writes: u64,
    /// REVOKE records written (some belong to losers or aborted transactions, or are lost at
    /// the crash; recovery honours only those of committed transactions).
    pub revokes: u64,
    /// Inodes on the orphan list in the base image.
    pub orphans_in_base: u64,
    /// Steal: in-flight transactions caught mid-abort (compensation records, no ABORT).
    pub mid_abort_losers: u64,
    /// COPY records of transactions whose commit survives.
    pub copies: u64,
    /// Of `copies`, those whose source block had been changed by a logged write or copy
    /// earlier in the journal (of an earlier committed transaction or the copying one), so
    /// replay must apply those changes before it reads the source.
    pub copies_reading_recent_writes: u64,
}

/// What [`generate`] produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenSummary {
    /// The preset the parameters came from.
    pub preset: Option<Preset>,
    /// The seed.
    pub seed: u64,
    /// Buffer policy.
    pub policy: Policy,
    /// Crash kind.
    pub crash_kind: CrashKind,
    /// Crash position: global journal byte position; a record survives iff it ends there or
    /// earlier.
    pub crash_pos: u64,
    /// Global journal position made durable by the last sync before the tail.
    pub durable_pos: u64,
    /// LSN of the last record before `durable_pos`.
    pub durable_lsn: u64,
    /// LSN of the last record that survives the crash.
    pub last_surviving_lsn: u64,
    /// Journal bytes the writer produced (segment headers included).
    pub journal_bytes_written: u64,
    /// Journal bytes left on disk after the crash.
    pub journal_bytes: u64,
    /// Records written.
    pub records: u64,
    /// Segment files left.
    pub segments: u64,
    /// Transactions whose commit survives.
    pub txns_committed: u64,
    /// Transactions whose abort survives.
    pub txns_aborted: u64,
    /// Transactions with surviving records but neither commit nor abort.
    pub txns_in_flight: u64,
    /// Inodes freed by the oracle's orphan cleanup.
    pub orphans_freed: u64,
    /// Image block write-backs (flushes) before the crash.
    pub flushes: u64,
    /// Journal syncs (group commits) before the crash.
    pub syncs: u64,
    /// Image digest of the expected image.
    pub expected_digest: String,
    /// The hard cases.
    pub hard_cases: HardCases,
    /// Checkpoint records written (before retention removed any).
    #[serde(default)]
    pub checkpoints: u64,
    /// LSN of the newest checkpoint record (0: none).
    #[serde(default)]
    pub last_checkpoint_lsn: u64,
    /// Redo start of the newest checkpoint record (0: none).
    #[serde(default)]
    pub last_checkpoint_redo_start: u64,
    /// Journal position (bytes written, segment headers included) when the newest checkpoint
    /// record was written (0: none).
    #[serde(default)]
    pub last_checkpoint_pos: u64,
    /// Whether the crash came in the middle of a checkpoint (record half-written).
    #[serde(default)]
    pub torn_checkpoint: bool,
    /// Snapshots written (before retention pruned any).
    #[serde(default)]
    pub snapshots: u64,
    /// LSN of the newest snapshot (0: none).
    #[serde(default)]
    pub last_snapshot_lsn: u64,
    /// What writing back and checkpointing cost the simulated writer.
    #[serde(default)]
    pub writer: WriterCost,
}

/// What the simulated writer spent on its buffer pool and checkpoints.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WriterCost {
    /// Blocks the background writer wrote back.
    pub background_blocks: u64,
    /// Blocks checkpoints wrote back (sharp styles, and the metadata region).
    pub checkpoint_blocks: u64,
    /// Other write-backs: revoked blocks settled at a sync, losers' blocks flushed at the
    /// crash, and scripted cases.
    pub other_blocks: u64,
    /// Dirty blocks at the newest checkpoint (its table's length).
    pub last_checkpoint_dirty: u64,
    /// With `real_image_io`: seconds spent in checkpoints (their write-back, the image sync,
    /// the record's write and syncs), else `None` (nothing real to time).
    pub checkpoint_secs: Option<f64>,
    /// With `real_image_io`: seconds the background writer spent writing blocks back.
    pub background_secs: Option<f64>,
}

impl std::fmt::Display for GenSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let h = &self.hard_cases;
        let mib = |b: u64| b as f64 / f64::from(1u32 << 20);
        writeln!(
            f,
            "crash state: preset {}, seed {}, policy {}, crash {}",
            self.preset.map_or("custom", Preset::name),
            self.seed,
            self.policy,
            self.crash_kind
        )?;
        writeln!(
            f,
            "  journal    {:.1} MiB written, {:.1} MiB left in {} segments, {} records",
            mib(self.journal_bytes_written),
            mib(self.journal_bytes),
            self.segments,
            self.records
        )?;
        writeln!(
            f,
            "  crash      at byte {} (durable to {}, LSN {}; last surviving LSN {})",
            self.crash_pos, self.durable_pos, self.durable_lsn, self.last_surviving_lsn
        )?;
        writeln!(
            f,
            "  txns       {} committed, {} aborted, {} in flight; {} orphans to free",
            self.txns_committed, self.txns_aborted, self.txns_in_flight, self.orphans_freed
        )?;
        writeln!(f, "  writer     {} syncs, {} block flushes", self.syncs, self.flushes)?;
        writeln!(
            f,
            "  hard cases aborted-flushed-overwritten {}, loser changes in image {}, max txns per block {}, \
             straddling {}, committed blocks flushed/unflushed {}/{}, unlogged writes {}, revokes {}, \
             base orphans {}, mid-abort losers {}, copies {} ({} reading logged changes)",
            h.aborted_flushed_then_overwritten,
            h.loser_changes_in_image,
            h.max_txns_per_block,
            h.straddling_txns,
            h.committed_blocks_flushed,
            h.committed_blocks_unflushed,
            h.unlogged_writes,
            h.revokes,
            h.orphans_in_base,
            h.mid_abort_losers,
            h.copies,
            h.copies_reading_recent_writes
        )?;
        if self.checkpoints > 0 || self.torn_checkpoint {
            writeln!(
                f,
                "  checkpoints {} written, newest at LSN {}{}",
                self.checkpoints,
                self.last_checkpoint_lsn,
                if self.torn_checkpoint { "; one left half-written at the crash" } else { "" }
            )?;
        }
        write!(f, "  expected   image digest {}", self.expected_digest)
    }
}

#[derive(Serialize)]
struct Manifest<'a> {
    format: &'static str,
    seed: u64,
    preset: Option<Preset>,
    params: &'a GenParams,
    summary: &'a GenSummary,
}

/// Generates a crash state in `dir` (created if missing; must not already hold a journal)
/// and returns its summary.
pub fn generate(dir: &Path, params: &GenParams) -> Result<GenSummary, GenError> {
    generate_with_expected_image(dir, params).map(|(summary, _)| summary)
}

/// Like [`generate`], and also returns the oracle's expected image bytes (for tests that need
/// the expected content itself, not only its digests).
pub fn generate_with_expected_image(dir: &Path, params: &GenParams) -> Result<(GenSummary, Vec<u8>), GenError> {
    params.validate()?;
    let jdir = dir.join(JOURNAL_DIR);
    if jdir.exists() {
        let mut it = std::fs::read_dir(&jdir).map_err(|e| GenError::io(&jdir, "list journal", e))?;
        if it.next().is_some() {
            return Err(GenError::JournalExists { path: jdir });
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| GenError::io(dir, "create directory", e))?;
    let mut g = Gen::new(dir, params)?;
    g.run()?;
    let tail = g.crash_phase()?;
    g.finish(dir, tail)
}

/// Writes the journal's buffered bytes and lists its segments. Unlike
/// [`JournalWriter::finish`] it does not fsync: a generated crash state needs no durability
/// against real crashes, and tests generate hundreds of them.
fn close_journal(mut writer: JournalWriter, jdir: &Path, salt_seed: u64) -> Result<Vec<SegmentInfo>, GenError> {
    writer.flush()?;
    drop(writer);
    let mut found = Vec::new();
    for entry in std::fs::read_dir(jdir).map_err(|e| GenError::io(jdir, "list journal", e))? {
        let entry = entry.map_err(|e| GenError::io(jdir, "list journal", e))?;
        if let Some(seq) = parse_segment_file_name(&entry.file_name().to_string_lossy()) {
            let path = entry.path();
            let len = entry.metadata().map_err(|e| GenError::io(&path, "stat segment", e))?.len();
            found.push((seq, path, len));
        }
    }
    found.sort();
    let mut base = 0;
    Ok(found
        .into_iter()
        .map(|(seq, path, len)| {
            let info = SegmentInfo { seq, path, base, len, salt: segment_salt(salt_seed, seq) };
            base += len;
            info
        })
        .collect())
}

/// Retries when a random pick hits a block or bit another transaction holds.
const LOCK_RETRIES: usize = 8;
/// Retries for operations the crash phase must get done.
const FORCE_RETRIES: usize = 64;
/// Scripted transactions writing the hot block with overlapping partial ranges.
const HOT_WRITES: u64 = 24;
/// Dirty blocks the oldest-first background writer looks at per step before giving up.
const WRITEBACK_LOOK: usize = 64;

/// An operation of an open transaction. `before` holds the bytes a write or copy replaced.
#[derive(Debug)]
enum DoneOp {
    Write { block: u64, offset: u32, redo: Vec<u8>, before: Vec<u8>, full: bool, lsn: u64 },
    Copy { src: u64, src_offset: u32, dst: u64, dst_offset: u32, before: Vec<u8>, lsn: u64 },
    Bit { region: BitRegion, index: u64, set: bool, lsn: u64 },
    Revoke,
}

#[derive(Debug)]
struct Txn {
    id: u64,
    target_ops: u32,
    ops_done: u32,
    records: u32,
    ops: Vec<DoneOp>,
    /// Data blocks this transaction holds (wrote, copied to or from, allocated or freed).
    blocks: Vec<u64>,
    /// Inodes this transaction holds (inode or orphan bit changed).
    inodes: Vec<u64>,
    /// Data blocks freed (no further operation of this transaction touches them).
    freed: Vec<u64>,
    /// (block, REVOKE LSN).
    revokes: Vec<(u64, u64)>,
    /// Data blocks holding this transaction's write that were flushed while it was open.
    flushed: Vec<u64>,
    first_end: Option<u64>,
    /// LSN of its first record (what a checkpoint taken while it is open must keep).
    first_lsn: Option<u64>,
}

impl Txn {
    /// Whether a write or copy of this transaction changed data block `block`.
    fn wrote(&self, block: u64) -> bool {
        self.ops.iter().any(|op| op.data_block() == Some(block))
    }

    /// Writes and copies: the changes of data blocks.
    fn write_count(&self) -> usize {
        self.ops.iter().filter(|op| op.data_block().is_some()).count()
    }
}

impl DoneOp {
    /// The data block a write or copy changed.
    fn data_block(&self) -> Option<u64> {
        match self {
            DoneOp::Write { block, .. } => Some(*block),
            DoneOp::Copy { dst, .. } => Some(*dst),
            DoneOp::Bit { .. } | DoneOp::Revoke => None,
        }
    }
}

#[derive(Debug)]
struct PendingCommit {
    end: u64,
    /// (image block, LSN) of every change.
    changes: Vec<(u64, u64)>,
    revokes: Vec<(u64, u64)>,
}

/// Independent watch over strict 2PL: per block and per bit, the last transaction that
/// changed it, and per data block the last one that read it (as a copy source); a change by
/// another transaction while either is open, or a read of a block another open transaction
/// changed, is a violation.
#[derive(Debug)]
struct Checker {
    last: [Vec<u64>; 4],
    reader: Vec<u64>,
    open: HashSet<u64>,
}

const KEY_DATA: usize = 0;

fn key_of(region: BitRegion) -> usize {
    match region {
        BitRegion::Blocks => 1,
        BitRegion::Inodes => 2,
        BitRegion::Orphans => 3,
    }
}

impl Checker {
    fn held_by_other(&self, holder: u64, txid: u64) -> bool {
        holder != 0 && holder != txid && self.open.contains(&holder)
    }

    fn touch(&mut self, key: usize, index: u64, txid: u64) -> Result<(), GenError> {
        let i = index as usize;
        if self.held_by_other(self.last[key][i], txid) || (key == KEY_DATA && self.held_by_other(self.reader[i], txid))
        {
            return Err(GenError::Invariant { rule: "2pl", index, lsn: 0, durable_lsn: 0, txid });
        }
        self.last[key][i] = txid;
        Ok(())
    }

    /// Transaction `txid` reads data block `index` (a copy source).
    fn read(&mut self, index: u64, txid: u64) -> Result<(), GenError> {
        let i = index as usize;
        if self.held_by_other(self.last[KEY_DATA][i], txid) {
            return Err(GenError::Invariant { rule: "2pl read", index, lsn: 0, durable_lsn: 0, txid });
        }
        self.reader[i] = txid;
        Ok(())
    }
}

/// State of one crash phase, handed to [`Gen::finish`].
#[derive(Debug)]
struct Tail {
    crash_pos: u64,
    durable_pos: u64,
    durable_lsn: u64,
    last_surviving_lsn: u64,
    straddling: u64,
    mid_abort: u64,
    losers_in_image: u64,
    in_flight: u64,
    straddler_committed: bool,
}

/// The simulated system's checkpointing state.
#[derive(Default)]
struct Ckpt {
    /// Finished transactions and journal position at the last checkpoint.
    txns_at: u64,
    pos_at: u64,
    /// Records written.
    written: u64,
    /// The newest record's LSN, redo start and journal position.
    last_lsn: u64,
    last_redo_start: u64,
    last_pos: u64,
    /// Redo starts of the two newest records, oldest first: a copy before both is covered
    /// (recovery never replays it), so its source may go home with newer changes.
    starts: VecDeque<u64>,
    /// The crash came in the middle of a checkpoint.
    torn: bool,
}

impl Ckpt {
    /// Copies below this LSN are covered by the two newest checkpoint records.
    fn cover_lsn(&self) -> u64 {
        if self.starts.len() < 2 {
            0
        } else {
            self.starts.iter().copied().min().unwrap_or(0)
        }
    }
}

/// The simulated system's snapshot state.
#[derive(Default)]
struct Snap {
    /// Finished transactions and journal position at the last snapshot.
    txns_at: u64,
    pos_at: u64,
    /// Snapshots written, and since the last full one.
    written: u64,
    since_full: u32,
    /// The newest snapshot (a possible parent) and the committed image it captured, with the
    /// blocks its chain holds.
    parent: Option<u64>,
    image: Vec<u8>,
    chain_set: Vec<bool>,
    /// LSN of the newest snapshot.
    last_lsn: u64,
}

/// Why a block was written back (for [`WriterCost`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FlushCause {
    Background,
    Checkpoint,
    Other,
}

struct Gen<'p> {
    p: &'p GenParams,
    dir: std::path::PathBuf,
    ckpt: Ckpt,
    snap: Snap,
    layout: Layout,
    bs: usize,
    steal: bool,
    rng: Rng,
    filler: Filler,
    addr: AddressSampler,
    writer: JournalWriter,
    mem: Vec<u8>,
    disk: Vec<u8>,
    oracle: Oracle,
    /// With `exclude_txns`: a second oracle without those transactions, for the expected
    /// files. The simulation itself (flush sources, eligibility checks) follows `oracle`, so
    /// the journal and image are byte for byte those of the same parameters without them.
    excluded: Option<Oracle>,
    /// A live writer's log (see [`run_live`]).
    live: Option<LiveLog>,
    /// Per block: LSN of the newest logged change in `mem`, in `disk`, and in the durable
    /// committed state.
    mem_lsn: Vec<u64>,
    disk_lsn: Vec<u64>,
    committed_lsn: Vec<u64>,
    block_owner: Vec<u64>,
    inode_owner: Vec<u64>,
    /// Per block: LSN of the last logged write or ALLOC (ends unlogged-write eligibility).
    touch_lsn: Vec<u64>,
    eligible: Vec<bool>,
    eligible_list: Vec<u64>,
    /// Dirty blocks (changes not yet home), for random picks, and each one's place in it.
    dirty: Vec<u64>,
    dirty_pos: Vec<u32>,
    /// Per block: LSN of its oldest change not yet home (0: clean), and the dirty blocks
    /// ordered by it (the background writer's age order and the checkpoint's table).
    rec_lsn: Vec<u64>,
    dirty_order: BTreeSet<(u64, u64)>,
    /// Per block: LSNs of the copies that read it, ascending.
    reads: Vec<Vec<u64>>,
    cost: WriterCost,
    /// With `real_image_io`: the image file, written as blocks go home.
    image_file: Option<std::fs::File>,
    /// Steal: blocks whose flushed change was aborted, with the aborted byte range.
    aborted_flushed: HashMap<u64, (u32, u32)>,
    /// Per block: LSN of the first COPY that read it (0: never a copy source). A copy source
    /// is never freed and never reused unlogged.
    first_read_lsn: Vec<u64>,
    /// Per block: revokes of committed transactions not yet settled by a sync (a copy must not
    /// read such a block).
    unsettled_revokes: Vec<u32>,
    open: Vec<Txn>,
    pending: VecDeque<PendingCommit>,
    checker: Checker,
    next_txid: u64,
    commits_since_sync: u32,
    durable_pos: u64,
    durable_lsn: u64,
    in_tail: bool,
    tail_log: Vec<(Appended, u64)>,
    hot_block: u64,
    hard: HardCases,
    records: u64,
    commits: u64,
    aborts: u64,
    flushes: u64,
    syncs: u64,
}

fn bit_get(buf: &[u8], layout: &Layout, region: BitRegion, index: u64) -> bool {
    layout.bit(region, index).is_some_and(|p| buf[p.block as usize * layout.block_size() + p.byte] & p.mask != 0)
}

fn bit_put(buf: &mut [u8], layout: &Layout, region: BitRegion, index: u64, set: bool) {
    if let Some(p) = layout.bit(region, index) {
        let at = p.block as usize * layout.block_size() + p.byte;
        if set {
            buf[at] |= p.mask;
        } else {
            buf[at] &= !p.mask;
        }
    }
}

fn bit_block(layout: &Layout, region: BitRegion, index: u64) -> u64 {
    layout.bit(region, index).map_or(0, |p| p.block)
}

/// The base image: superblock, bitmaps about half full, a few orphans, random data.
fn build_base(layout: &Layout, rng: &mut Rng, filler: &Filler) -> (Vec<u8>, u64) {
    let bs = layout.block_size();
    let mut img = vec![0u8; layout.image_len() as usize];
    img[..bs].copy_from_slice(&layout.encode_superblock());
    for block in img[layout.data_start() as usize * bs..].chunks_exact_mut(bs) {
        filler.fill(rng, block);
    }
    for b in 0..layout.block_count() {
        if b < layout.data_start() || rng.next_u64() & 1 == 1 {
            bit_put(&mut img, layout, BitRegion::Blocks, b, true);
        }
    }
    let inodes = layout.geometry.inode_count;
    for i in 0..inodes {
        if rng.next_u64() & 1 == 1 {
            bit_put(&mut img, layout, BitRegion::Inodes, i, true);
        }
    }
    let want = 3 + rng.below(6);
    let mut orphans = 0;
    for _ in 0..want * 16 {
        if orphans == want {
            break;
        }
        let i = rng.below(inodes);
        if bit_get(&img, layout, BitRegion::Inodes, i) && !bit_get(&img, layout, BitRegion::Orphans, i) {
            bit_put(&mut img, layout, BitRegion::Orphans, i, true);
            orphans += 1;
        }
    }
    (img, orphans)
}

impl<'p> Gen<'p> {
    fn new(dir: &Path, p: &'p GenParams) -> Result<Gen<'p>, GenError> {
        Gen::create(dir, p, None)
    }

    fn create(dir: &Path, p: &'p GenParams, resume: Option<Resume>) -> Result<Gen<'p>, GenError> {
        let jdir = dir.join(JOURNAL_DIR);
        let jdir = jdir.as_path();
        let geometry = Geometry {
            block_size: p.block_size,
            block_count: p.block_count,
            inode_count: p.inode_count,
            image_id: resume.as_ref().map_or(derive(p.seed, 1), |r| r.image_id),
        };
        let layout = Layout::new(geometry)?;
        let steal = p.policy == Policy::Steal;
        let cfg = WriterConfig {
            block_size: p.journal_block_size,
            segment_blocks: p.segment_blocks,
            image_id: geometry.image_id,
            image_block_size: p.block_size,
            steal,
            salt_seed: derive(p.seed, 2),
        };
        let writer = match &resume {
            Some(r) => JournalWriter::resume(jdir, cfg, r.next_seq, r.next_lsn)?,
            None => JournalWriter::create(jdir, cfg)?,
        };
        let mut rng = Rng::new(derive(p.seed, 3));
        let filler = Filler::new(&mut rng);
        let (mut base, mut orphans) = build_base(&layout, &mut rng, &filler);
        let next_txid = resume.as_ref().map_or(1, |r| r.next_lsn);
        if let Some(r) = resume {
            base = r.base;
            orphans = 0;
        }
        let image_file = if next_txid > 1 {
            let path = dir.join(IMAGE_FILE);
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(|e| GenError::io(&path, "open image", e))?;
            Some(f)
        } else if p.real_image_io {
            let path = dir.join(IMAGE_FILE);
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)
                .map_err(|e| GenError::io(&path, "create image", e))?;
            f.write_all_at(&base, 0).map_err(|e| GenError::io(&path, "write image", e))?;
            f.sync_all().map_err(|e| GenError::io(&path, "fsync image", e))?;
            Some(f)
        } else {
            None
        };
        let data_blocks = layout.block_count() - layout.data_start();
        let addr = AddressSampler::new(p.address, layout.data_start(), data_blocks, &mut rng);
        let hot_block = layout.data_start() + rng.below(data_blocks);
        let blocks = layout.block_count() as usize;
        let inodes = p.inode_count as usize;
        Ok(Gen {
            p,
            dir: dir.to_path_buf(),
            ckpt: Ckpt::default(),
            snap: Snap::default(),
            bs: layout.block_size(),
            steal,
            addr,
            writer,
            mem: base.clone(),
            disk: base.clone(),
            excluded: if p.exclude_txns.is_empty() { None } else { Some(Oracle::new(layout.clone(), base.clone())?) },
            live: None,
            oracle: Oracle::new(layout.clone(), base)?,
            layout,
            rng,
            filler,
            mem_lsn: vec![0; blocks],
            disk_lsn: vec![0; blocks],
            committed_lsn: vec![0; blocks],
            block_owner: vec![0; blocks],
            inode_owner: vec![0; inodes],
            touch_lsn: vec![0; blocks],
            eligible: vec![false; blocks],
            eligible_list: Vec::new(),
            dirty: Vec::new(),
            dirty_pos: vec![u32::MAX; blocks],
            rec_lsn: vec![0; blocks],
            dirty_order: BTreeSet::new(),
            reads: vec![Vec::new(); blocks],
            cost: WriterCost::default(),
            image_file,
            aborted_flushed: HashMap::new(),
            first_read_lsn: vec![0; blocks],
            unsettled_revokes: vec![0; blocks],
            open: Vec::new(),
            pending: VecDeque::new(),
            checker: Checker {
                last: [vec![0; blocks], vec![0; blocks], vec![0; inodes], vec![0; inodes]],
                reader: vec![0; blocks],
                open: HashSet::new(),
            },
            next_txid,
            commits_since_sync: 0,
            durable_pos: 0,
            durable_lsn: 0,
            in_tail: false,
            tail_log: Vec::new(),
            hot_block,
            hard: HardCases { orphans_in_base: orphans, ..HardCases::default() },
            records: 0,
            commits: 0,
            aborts: 0,
            flushes: 0,
            syncs: 0,
        })
    }

    // ---- bookkeeping -------------------------------------------------------------------

    /// Block `b` holds a change at `lsn` that is not home yet.
    fn mark_dirty(&mut self, b: u64, lsn: u64) {
        let i = b as usize;
        if self.dirty_pos[i] == u32::MAX {
            self.dirty_pos[i] = self.dirty.len() as u32;
            self.dirty.push(b);
        }
        let old = self.rec_lsn[i];
        if old == 0 || lsn < old {
            if old != 0 {
                self.dirty_order.remove(&(old, b));
            }
            self.rec_lsn[i] = lsn;
            self.dirty_order.insert((lsn, b));
        }
    }

    fn unmark_dirty(&mut self, b: u64) {
        let pos = self.dirty_pos[b as usize];
        if pos != u32::MAX {
            self.dirty.swap_remove(pos as usize);
            if let Some(&moved) = self.dirty.get(pos as usize) {
                self.dirty_pos[moved as usize] = pos;
            }
            self.dirty_pos[b as usize] = u32::MAX;
        }
        let old = std::mem::take(&mut self.rec_lsn[b as usize]);
        if old != 0 {
            self.dirty_order.remove(&(old, b));
        }
    }

    fn block_range(&self, b: u64) -> std::ops::Range<usize> {
        b as usize * self.bs..(b as usize + 1) * self.bs
    }

    fn append(&mut self, ti: usize, record: &Record<'_>) -> Result<Appended, GenError> {
        let txid = self.open[ti].id;
        let a = self.writer.append(txid, record)?;
        self.records += 1;
        if self.in_tail {
            self.tail_log.push((a, txid));
        }
        let t = &mut self.open[ti];
        t.records += 1;
        t.first_end.get_or_insert(a.end);
        t.first_lsn.get_or_insert(a.lsn);
        Ok(a)
    }

    fn start_txn(&mut self) -> usize {
        let id = self.next_txid;
        self.next_txid += 1;
        let (lo, hi) = self.p.ops_per_txn;
        let target_ops = self.rng.range_inclusive(u64::from(lo), u64::from(hi)) as u32;
        self.checker.open.insert(id);
        self.open.push(Txn {
            id,
            target_ops,
            ops_done: 0,
            records: 0,
            ops: Vec::new(),
            blocks: Vec::new(),
            inodes: Vec::new(),
            freed: Vec::new(),
            revokes: Vec::new(),
            flushed: Vec::new(),
            first_end: None,
            first_lsn: None,
        });
        self.open.len() - 1
    }

    fn release(&mut self, t: &Txn) {
        for &b in &t.blocks {
            self.block_owner[b as usize] = 0;
        }
        for &i in &t.inodes {
            self.inode_owner[i as usize] = 0;
        }
        self.checker.open.remove(&t.id);
    }

    fn block_free_for(&self, ti: usize, b: u64) -> bool {
        let owner = self.block_owner[b as usize];
        (owner == 0 || owner == self.open[ti].id) && !self.open[ti].freed.contains(&b)
    }

    fn inode_free_for(&self, ti: usize, i: u64) -> bool {
        let owner = self.inode_owner[i as usize];
        owner == 0 || owner == self.open[ti].id
    }

    fn lock_block(&mut self, ti: usize, b: u64) {
        if self.block_owner[b as usize] == 0 {
            self.block_owner[b as usize] = self.open[ti].id;
            self.open[ti].blocks.push(b);
        }
    }

    fn lock_inode(&mut self, ti: usize, i: u64) {
        if self.inode_owner[i as usize] == 0 {
            self.inode_owner[i as usize] = self.open[ti].id;
            self.open[ti].inodes.push(i);
        }
    }

    // ---- logged changes ----------------------------------------------------------------

    #[expect(clippy::too_many_arguments, reason = "mirrors the WRITE record's fields")]
    fn log_write(
        &mut self,
        ti: usize,
        block: u64,
        offset: u32,
        redo: &[u8],
        undo: Option<&[u8]>,
        full: bool,
        compensation: bool,
    ) -> Result<Appended, GenError> {
        let a = self.append(ti, &Record::Write { block, offset, redo, undo, full, compensation })?;
        self.checker.touch(KEY_DATA, block, self.open[ti].id)?;
        let at = block as usize * self.bs + offset as usize;
        self.mem[at..at + redo.len()].copy_from_slice(redo);
        let b = block as usize;
        self.mem_lsn[b] = a.lsn;
        self.touch_lsn[b] = a.lsn;
        self.eligible[b] = false;
        if self.steal {
            self.mark_dirty(block, a.lsn);
        }
        Ok(a)
    }

    /// Logs a COPY and applies it to `mem`: `len` bytes of `src` at `src_offset` (as `mem`
    /// holds them now) to `dst` at `dst_offset`.
    #[expect(clippy::too_many_arguments, reason = "mirrors the COPY record's fields")]
    fn log_copy(
        &mut self,
        ti: usize,
        src: u64,
        src_offset: u32,
        dst: u64,
        dst_offset: u32,
        len: u32,
        undo: Option<&[u8]>,
    ) -> Result<Appended, GenError> {
        let a = self.append(ti, &Record::Copy { src, src_offset, dst, dst_offset, len, undo })?;
        let txid = self.open[ti].id;
        self.checker.read(src, txid)?;
        self.checker.touch(KEY_DATA, dst, txid)?;
        let from = src as usize * self.bs + src_offset as usize;
        let to = dst as usize * self.bs + dst_offset as usize;
        self.mem.copy_within(from..from + len as usize, to);
        let (s, d) = (src as usize, dst as usize);
        if self.first_read_lsn[s] == 0 {
            self.first_read_lsn[s] = a.lsn;
        }
        self.reads[s].push(a.lsn);
        self.eligible[s] = false;
        self.mem_lsn[d] = a.lsn;
        self.touch_lsn[d] = a.lsn;
        self.eligible[d] = false;
        if self.steal {
            self.mark_dirty(dst, a.lsn);
        }
        Ok(a)
    }

    fn log_bit(
        &mut self,
        ti: usize,
        region: BitRegion,
        index: u64,
        set: bool,
        compensation: bool,
    ) -> Result<Appended, GenError> {
        let record = match region {
            BitRegion::Blocks => Record::Bitmap { target: AllocTarget::Block, index, set, compensation },
            BitRegion::Inodes => Record::Bitmap { target: AllocTarget::Inode, index, set, compensation },
            BitRegion::Orphans => Record::Orphan { ino: index, add: set, compensation },
        };
        let a = self.append(ti, &record)?;
        self.checker.touch(key_of(region), index, self.open[ti].id)?;
        bit_put(&mut self.mem, &self.layout, region, index, set);
        let bb = bit_block(&self.layout, region, index);
        self.mem_lsn[bb as usize] = a.lsn;
        if self.steal {
            self.mark_dirty(bb, a.lsn);
        }
        if region == BitRegion::Blocks && set {
            self.touch_lsn[index as usize] = a.lsn;
            self.eligible[index as usize] = false;
        }
        Ok(a)
    }

    // ---- operations --------------------------------------------------------------------

    fn do_op(&mut self, ti: usize) -> Result<bool, GenError> {
        let m = self.p.mix;
        let total = u64::from(m.write) + u64::from(m.bitmap) + u64::from(m.orphan);
        let pick = self.rng.below(total);
        self.open[ti].ops_done += 1;
        if pick < u64::from(m.write) {
            // No draw at all without copies: a deps_rate of 0 gives the bytes it always gave.
            if self.p.deps_rate > 0.0 && self.rng.chance(self.p.deps_rate) {
                self.op_copy(ti)
            } else {
                self.op_write(ti, None, None)
            }
        } else if pick < u64::from(m.write) + u64::from(m.bitmap) {
            self.op_bitmap(ti, None)
        } else {
            self.op_orphan(ti)
        }
    }

    /// A write to `forced` (or a sampled block) of `range` (or a random shape). Returns
    /// false when every candidate block was held by another transaction.
    fn op_write(&mut self, ti: usize, forced: Option<u64>, range: Option<(u32, u32)>) -> Result<bool, GenError> {
        let mut block = None;
        for _ in 0..LOCK_RETRIES {
            let b = match forced {
                Some(b) => b,
                None => self.addr.sample(&mut self.rng),
            };
            if self.block_free_for(ti, b) {
                block = Some(b);
                break;
            }
            if forced.is_some() {
                break;
            }
        }
        let Some(block) = block else { return Ok(false) };
        let bs = self.bs as u32;
        let (offset, len, full) = match range {
            Some((o, l)) => (o, l, false),
            None if self.rng.chance(self.p.full_block_fraction) => (0, bs, true),
            None => {
                let (lo, hi) = self.p.partial_len;
                let len = self.rng.range_inclusive(u64::from(lo.min(bs)), u64::from(hi.min(bs))) as u32;
                let offset = self.rng.below(u64::from(bs - len) + 1) as u32;
                (offset, len, false)
            }
        };
        let at = block as usize * self.bs + offset as usize;
        let before = self.mem[at..at + len as usize].to_vec();
        let mut redo = vec![0u8; len as usize];
        self.filler.fill(&mut self.rng, &mut redo);
        let undo = self.steal.then_some(&before[..]);
        let a = self.log_write(ti, block, offset, &redo, undo, full, false)?;
        self.lock_block(ti, block);
        self.open[ti].ops.push(DoneOp::Write { block, offset, redo, before, full, lsn: a.lsn });
        Ok(true)
    }

    /// Whether transaction `ti` may read data block `b` as a copy source: nobody else holds it,
    /// and no committed revoke of it waits to be settled.
    fn copy_source_ok(&self, ti: usize, b: u64) -> bool {
        self.block_free_for(ti, b) && self.unsettled_revokes[b as usize] == 0
    }

    /// A COPY to a sampled destination from a source `1..=deps_reach` blocks away. Returns
    /// false when no candidate pair was free.
    fn op_copy(&mut self, ti: usize) -> Result<bool, GenError> {
        let start = self.layout.data_start();
        let data = self.layout.block_count() - start;
        if data < 2 {
            return self.op_write(ti, None, None);
        }
        let reach = self.p.deps_reach.min(data - 1);
        let mut pair = None;
        for _ in 0..LOCK_RETRIES {
            let dst = self.addr.sample(&mut self.rng);
            if !self.block_free_for(ti, dst) {
                continue;
            }
            let d = 1 + self.rng.below(reach);
            let rel = dst - start;
            let src = start + if self.rng.chance(0.5) { (rel + d) % data } else { (rel + data - d) % data };
            if self.copy_source_ok(ti, src) {
                pair = Some((src, dst));
                break;
            }
        }
        let Some((src, dst)) = pair else { return Ok(false) };
        let bs = self.bs as u32;
        let (lo, hi) = self.p.copy_len;
        let len = self.rng.range_inclusive(u64::from(lo.min(bs)), u64::from(hi.min(bs))) as u32;
        let src_offset = self.rng.below(u64::from(bs - len) + 1) as u32;
        let dst_offset = self.rng.below(u64::from(bs - len) + 1) as u32;
        let at = dst as usize * self.bs + dst_offset as usize;
        let before = self.mem[at..at + len as usize].to_vec();
        let undo = self.steal.then_some(&before[..]);
        let a = self.log_copy(ti, src, src_offset, dst, dst_offset, len, undo)?;
        self.lock_block(ti, dst);
        self.lock_block(ti, src);
        self.open[ti].ops.push(DoneOp::Copy { src, src_offset, dst, dst_offset, before, lsn: a.lsn });
        Ok(true)
    }

    /// ALLOC or FREE of a block or inode bit; `forced` = (data block, set). A data-block FREE
    /// is followed by a REVOKE of the block in the same transaction. A block that has been a
    /// copy source is never freed.
    fn op_bitmap(&mut self, ti: usize, forced: Option<(u64, bool)>) -> Result<bool, GenError> {
        let to_block = forced.is_some() || self.rng.chance(0.8);
        if to_block {
            let set = forced.map_or_else(|| self.rng.chance(0.5), |f| f.1);
            let data = self.layout.block_count() - self.layout.data_start();
            let mut pick = None;
            for _ in 0..LOCK_RETRIES {
                let b = forced.map_or_else(|| self.layout.data_start() + self.rng.below(data), |f| f.0);
                // A live writer under no-steal cannot put a block home durably before its
                // revoke commits if the same transaction wrote it (see `settle_revokes_live`).
                let live_own = self.live.is_some() && !self.steal && !set && self.open[ti].wrote(b);
                if self.block_free_for(ti, b)
                    && bit_get(&self.mem, &self.layout, BitRegion::Blocks, b) != set
                    && (set || self.first_read_lsn[b as usize] == 0)
                    && !live_own
                {
                    pick = Some(b);
                    break;
                }
                if forced.is_some() {
                    break;
                }
            }
            let Some(b) = pick else { return Ok(false) };
            let a = self.log_bit(ti, BitRegion::Blocks, b, set, false)?;
            self.lock_block(ti, b);
            self.open[ti].ops.push(DoneOp::Bit { region: BitRegion::Blocks, index: b, set, lsn: a.lsn });
            if !set {
                if self.first_read_lsn[b as usize] != 0 {
                    return Err(GenError::Invariant {
                        rule: "no revoke of a copy source",
                        index: b,
                        lsn: self.first_read_lsn[b as usize],
                        durable_lsn: self.durable_lsn,
                        txid: self.open[ti].id,
                    });
                }
                let r = self.append(ti, &Record::Revoke { block: b })?;
                self.hard.revokes += 1;
                let t = &mut self.open[ti];
                t.freed.push(b);
                t.revokes.push((b, r.lsn));
                t.ops.push(DoneOp::Revoke);
            }
            Ok(true)
        } else {
            let set = self.rng.chance(0.5);
            let n = self.p.inode_count;
            for _ in 0..LOCK_RETRIES {
                let i = self.rng.below(n);
                let allocated = bit_get(&self.mem, &self.layout, BitRegion::Inodes, i);
                let orphan = bit_get(&self.mem, &self.layout, BitRegion::Orphans, i);
                if self.inode_free_for(ti, i) && allocated != set && !orphan {
                    let a = self.log_bit(ti, BitRegion::Inodes, i, set, false)?;
                    self.lock_inode(ti, i);
                    self.open[ti].ops.push(DoneOp::Bit { region: BitRegion::Inodes, index: i, set, lsn: a.lsn });
                    return Ok(true);
                }
            }
            Ok(false)
        }
    }

    /// Adds an allocated inode to the orphan list or removes one from it.
    fn op_orphan(&mut self, ti: usize) -> Result<bool, GenError> {
        let add = self.rng.chance(0.5);
        let n = self.p.inode_count;
        for _ in 0..LOCK_RETRIES {
            let i = self.rng.below(n);
            let allocated = bit_get(&self.mem, &self.layout, BitRegion::Inodes, i);
            let orphan = bit_get(&self.mem, &self.layout, BitRegion::Orphans, i);
            let ok = if add { allocated && !orphan } else { orphan };
            if self.inode_free_for(ti, i) && ok {
                let a = self.log_bit(ti, BitRegion::Orphans, i, add, false)?;
                self.lock_inode(ti, i);
                self.open[ti].ops.push(DoneOp::Bit { region: BitRegion::Orphans, index: i, set: add, lsn: a.lsn });
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// A write the crash phase needs: retries random blocks until one is free.
    fn force_write(&mut self, ti: usize) -> Result<bool, GenError> {
        for _ in 0..FORCE_RETRIES {
            let b = self.addr.sample(&mut self.rng);
            if self.block_free_for(ti, b) {
                return self.op_write(ti, Some(b), None);
            }
        }
        Ok(false)
    }

    // ---- transaction ends ----------------------------------------------------------------

    fn commit(&mut self, ti: usize) -> Result<(), GenError> {
        let records = self.open[ti].records;
        if self.live.is_some() && !self.open[ti].revokes.is_empty() {
            self.settle_revokes_live(ti)?;
        }
        if self.live.is_some() {
            // Logged before the commit record is appended: the writer may push it to the
            // segment file as part of this append, and a kill right after must find the commit
            // in the log.
            let (id, events) = (self.open[ti].id, op_events(&self.open[ti].ops));
            let pos = self.writer.position();
            if let Some(live) = self.live.as_mut() {
                live.commit(id, events, pos)?;
            }
        }
        let a = self.append(ti, &Record::Commit { records })?;
        let t = self.open.swap_remove(ti);
        self.release(&t);
        let mut events = Vec::with_capacity(t.ops.len());
        let mut changes = Vec::with_capacity(t.ops.len());
        for op in t.ops {
            match op {
                DoneOp::Write { block, offset, redo, full, lsn, .. } => {
                    if !full && !self.in_tail {
                        let end = offset + redo.len() as u32;
                        if let Some(&(lo, hi)) = self.aborted_flushed.get(&block) {
                            if offset < hi && end > lo {
                                self.hard.aborted_flushed_then_overwritten += 1;
                                self.aborted_flushed.remove(&block);
                            }
                        }
                    }
                    changes.push((block, lsn));
                    events.push(Event::Write { block, offset, bytes: redo });
                }
                DoneOp::Copy { src, src_offset, dst, dst_offset, before, lsn } => {
                    changes.push((dst, lsn));
                    events.push(Event::Copy { src, src_offset, dst, dst_offset, len: before.len() as u32 });
                }
                DoneOp::Bit { region, index, set, lsn } => {
                    changes.push((bit_block(&self.layout, region, index), lsn));
                    events.push(Event::Bit { region, index, set });
                }
                DoneOp::Revoke => {}
            }
        }
        if let Some(ex) = self.excluded.as_mut().filter(|_| !self.p.exclude_txns.contains(&t.id)) {
            ex.commit(a.end, events.clone())?;
        }
        self.oracle.commit(a.end, events)?;
        for &(b, _) in &t.revokes {
            self.unsettled_revokes[b as usize] += 1;
        }
        self.pending.push_back(PendingCommit { end: a.end, changes, revokes: t.revokes });
        self.commits += 1;
        self.commits_since_sync += 1;
        if !self.in_tail && self.commits_since_sync >= self.p.sync_every {
            self.sync()?;
        }
        Ok(())
    }

    /// A live writer, before transaction `ti` commits its revokes: makes the journal durable,
    /// then writes the revoked blocks home and syncs the image. Recovery never replays a
    /// block's changes from before a durable revoke, so the block must hold them durably
    /// before the revoke can be durable: a power cut may lose any image write not yet synced.
    fn settle_revokes_live(&mut self, ti: usize) -> Result<(), GenError> {
        self.sync()?;
        let blocks: Vec<u64> = self.open[ti].revokes.iter().map(|&(b, _)| b).collect();
        for b in blocks {
            if self.can_flush(b) {
                self.flush_block(b, FlushCause::Other)?;
            }
        }
        self.sync_image()
    }

    /// fsyncs the image (with `real_image_io`) and records it in a live writer's trace.
    fn sync_image(&mut self) -> Result<(), GenError> {
        if let Some(f) = &self.image_file {
            let path = self.dir.join(IMAGE_FILE);
            f.sync_data().map_err(|e| GenError::io(&path, "fsync image", e))?;
        }
        let pos = self.writer.position();
        if let Some(trace) = self.live.as_mut().and_then(|l| l.trace.as_mut()) {
            trace.push(Traced { pos, event: TraceEvent::ImageSync });
        }
        Ok(())
    }

    /// Undoes the last `count` state-changing operations of transaction `ti` in reverse
    /// order: under steal by logging compensation records, under no-steal in memory only.
    /// Returns the number of compensation records written.
    fn compensate(&mut self, ti: usize, mut count: usize) -> Result<u32, GenError> {
        let mut written = 0;
        while count > 0 {
            let Some(op) = self.open[ti].ops.pop() else { break };
            match op {
                DoneOp::Revoke => continue,
                DoneOp::Write { block, offset, before, full, .. } => {
                    if self.steal {
                        self.log_write(ti, block, offset, &before, None, full, true)?;
                        written += 1;
                    } else {
                        let at = block as usize * self.bs + offset as usize;
                        self.mem[at..at + before.len()].copy_from_slice(&before);
                    }
                }
                DoneOp::Copy { dst, dst_offset, before, .. } => {
                    if self.steal {
                        // Like a write's: a redo-only write of the before-image.
                        let full = before.len() == self.bs;
                        self.log_write(ti, dst, dst_offset, &before, None, full, true)?;
                        written += 1;
                    } else {
                        let at = dst as usize * self.bs + dst_offset as usize;
                        self.mem[at..at + before.len()].copy_from_slice(&before);
                    }
                }
                DoneOp::Bit { region, index, set, .. } => {
                    if self.steal {
                        self.log_bit(ti, region, index, !set, true)?;
                        written += 1;
                    } else {
                        bit_put(&mut self.mem, &self.layout, region, index, !set);
                    }
                }
            }
            count -= 1;
        }
        Ok(written)
    }

    fn abort(&mut self, ti: usize) -> Result<(), GenError> {
        // Byte ranges of this transaction's flushed writes, for hard case (1).
        let mut flushed_ranges = Vec::new();
        for &b in &self.open[ti].flushed {
            let mut range: Option<(u32, u32)> = None;
            for op in &self.open[ti].ops {
                if let DoneOp::Write { block, offset, redo, .. } = op {
                    if *block == b {
                        let (lo, hi) = (*offset, offset + redo.len() as u32);
                        range = Some(range.map_or((lo, hi), |(a, z)| (a.min(lo), z.max(hi))));
                    }
                }
            }
            if let Some(r) = range {
                flushed_ranges.push((b, r));
            }
        }
        self.compensate(ti, usize::MAX)?;
        let records = self.open[ti].records;
        self.append(ti, &Record::Abort { records })?;
        let t = self.open.swap_remove(ti);
        self.release(&t);
        self.aborted_flushed.extend(flushed_ranges);
        self.aborts += 1;
        Ok(())
    }

    // ---- durability and the buffer pool ------------------------------------------------

    /// A journal sync: everything written so far is durable. Durable commits reach the
    /// oracle; blocks revoked by them are settled (written back, so that the content recovery
    /// keeps when it skips their earlier logged writes is the committed one) and become
    /// eligible for unlogged writes.
    fn sync(&mut self) -> Result<(), GenError> {
        if self.live.is_some() {
            // A live writer's group commit: the bytes reach the segment file and the device.
            // Logged at once: the write-backs below happen after it, and a crash between the
            // two must see the journal durable.
            self.writer.sync()?;
            let pos = self.writer.position();
            if let Some(live) = self.live.as_mut() {
                live.durable(pos)?;
            }
        }
        self.durable_pos = self.writer.position();
        self.durable_lsn = self.writer.next_lsn() - 1;
        self.syncs += 1;
        self.commits_since_sync = 0;
        self.oracle.make_durable(self.durable_pos);
        if let Some(ex) = self.excluded.as_mut() {
            ex.make_durable(self.durable_pos);
        }
        while self.pending.front().is_some_and(|pc| pc.end <= self.durable_pos) {
            let Some(pc) = self.pending.pop_front() else { break };
            for (b, lsn) in pc.changes {
                let slot = &mut self.committed_lsn[b as usize];
                *slot = (*slot).max(lsn);
                if !self.steal {
                    self.mark_dirty(b, lsn);
                }
            }
            for (b, r) in pc.revokes {
                self.unsettled_revokes[b as usize] -= 1;
                self.flush_block(b, FlushCause::Other)?;
                if self.touch_lsn[b as usize] < r && !self.eligible[b as usize] {
                    self.eligible[b as usize] = true;
                    self.eligible_list.push(b);
                }
            }
        }
        Ok(())
    }

    /// LSN of the newest change in what a write-back of `b` would write.
    fn flush_lsn(&self, b: u64) -> u64 {
        if self.steal {
            self.mem_lsn[b as usize]
        } else {
            self.committed_lsn[b as usize]
        }
    }

    /// Whether a write-back of `b` would put a change home that is newer than a copy which
    /// read `b` and which recovery may still replay (not before the redo start of the two
    /// newest checkpoint records).
    fn past_uncovered_read(&self, b: u64) -> bool {
        let reads = &self.reads[b as usize];
        let first = reads.partition_point(|&l| l < self.ckpt.cover_lsn());
        reads.get(first).is_some_and(|&l| self.flush_lsn(b) > l)
    }

    fn can_flush(&self, b: u64) -> bool {
        self.flush_lsn(b) <= self.durable_lsn && !self.past_uncovered_read(b)
    }

    /// Writes block `b` back to the image: the in-memory content under steal, the durable
    /// committed content under no-steal. Refuses (as an invariant violation) anything newer
    /// than the durable LSN, and a copy source's content with a change newer than a copy
    /// recovery may still replay.
    fn flush_block(&mut self, b: u64, cause: FlushCause) -> Result<(), GenError> {
        let src_lsn = self.flush_lsn(b);
        if self.past_uncovered_read(b) {
            return Err(GenError::Invariant {
                rule: "copy source written back with a change newer than an uncovered copy that read it",
                index: b,
                lsn: src_lsn,
                durable_lsn: self.durable_lsn,
                txid: 0,
            });
        }
        if src_lsn > self.durable_lsn {
            return Err(GenError::Invariant {
                rule: "wal",
                index: b,
                lsn: src_lsn,
                durable_lsn: self.durable_lsn,
                txid: 0,
            });
        }
        let r = self.block_range(b);
        if self.steal {
            self.disk[r.clone()].copy_from_slice(&self.mem[r.clone()]);
        } else {
            self.disk[r.clone()].copy_from_slice(&self.oracle.image()[r.clone()]);
        }
        if let Some(f) = &self.image_file {
            let path = self.dir.join(IMAGE_FILE);
            f.write_all_at(&self.disk[r.clone()], r.start as u64).map_err(|e| GenError::io(&path, "write image", e))?;
        }
        let pos = self.writer.position();
        if let Some(trace) = self.live.as_mut().and_then(|l| l.trace.as_mut()) {
            trace
                .push(Traced { pos, event: TraceEvent::ImageWrite { block: b, bytes: self.disk[r.clone()].to_vec() } });
        }
        self.disk_lsn[b as usize] = src_lsn;
        self.unmark_dirty(b);
        self.flushes += 1;
        match cause {
            FlushCause::Background => self.cost.background_blocks += 1,
            FlushCause::Checkpoint => self.cost.checkpoint_blocks += 1,
            FlushCause::Other => self.cost.other_blocks += 1,
        }
        if self.steal {
            let owner = self.block_owner[b as usize];
            if owner != 0 {
                if let Some(t) = self.open.iter_mut().find(|t| t.id == owner) {
                    if t.wrote(b) && !t.flushed.contains(&b) {
                        t.flushed.push(b);
                    }
                }
            }
        }
        Ok(())
    }

    /// The background writer: `flush_rate` blocks per step on average, the oldest dirty ones
    /// (or random ones) that write-ahead logging and the copy rule let go home.
    fn maybe_flush(&mut self) -> Result<(), GenError> {
        let rate = self.p.flush_rate;
        let mut n = rate.trunc() as u64 + u64::from(self.rng.chance(rate.fract()));
        if n == 0 || self.dirty.is_empty() {
            return Ok(());
        }
        let timer = self.image_file.is_some().then(Instant::now);
        match self.p.writeback {
            Writeback::Random => {
                while n > 0 && !self.dirty.is_empty() {
                    let b = self.dirty[self.rng.below(self.dirty.len() as u64) as usize];
                    if self.can_flush(b) {
                        self.flush_block(b, FlushCause::Background)?;
                    }
                    n -= 1;
                }
            }
            Writeback::Oldest => {
                // Blocks whose newest change is not durable yet, or a copy source held back,
                // are passed over; a bounded look keeps a step cheap.
                let picks: Vec<u64> = self
                    .dirty_order
                    .iter()
                    .take(WRITEBACK_LOOK)
                    .map(|&(_, b)| b)
                    .filter(|&b| self.can_flush(b))
                    .take(n as usize)
                    .collect();
                for b in picks {
                    self.flush_block(b, FlushCause::Background)?;
                }
            }
        }
        if let Some(t) = timer {
            *self.cost.background_secs.get_or_insert(0.0) += t.elapsed().as_secs_f64();
        }
        Ok(())
    }

    fn unlogged_write(&mut self, b: u64) -> Result<(), GenError> {
        if self.first_read_lsn[b as usize] != 0 {
            return Err(GenError::Invariant {
                rule: "no unlogged write to a copy source",
                index: b,
                lsn: self.first_read_lsn[b as usize],
                durable_lsn: self.durable_lsn,
                txid: 0,
            });
        }
        let mut bytes = vec![0u8; self.bs];
        self.filler.fill(&mut self.rng, &mut bytes);
        let r = self.block_range(b);
        self.mem[r.clone()].copy_from_slice(&bytes);
        self.disk[r].copy_from_slice(&bytes);
        let queued = self.oracle.pending();
        if let Some(ex) = self.excluded.as_mut() {
            ex.unlogged_write(b, bytes.clone())?;
        }
        self.oracle.unlogged_write(b, bytes)?;
        if self.oracle.pending() != queued {
            // A queued commit writes this block: the write would not be eligible.
            return Err(GenError::Invariant {
                rule: "unlogged write after a durable revoke",
                index: b,
                lsn: 0,
                durable_lsn: self.durable_lsn,
                txid: 0,
            });
        }
        self.hard.unlogged_writes += 1;
        Ok(())
    }

    fn maybe_unlogged(&mut self) -> Result<(), GenError> {
        if self.eligible_list.is_empty() || !self.rng.chance(self.p.unlogged_write_rate) {
            return Ok(());
        }
        let idx = self.rng.below(self.eligible_list.len() as u64) as usize;
        let b = self.eligible_list[idx];
        if !self.eligible[b as usize] {
            self.eligible_list.swap_remove(idx);
            return Ok(());
        }
        if self.block_owner[b as usize] != 0 {
            return Ok(());
        }
        self.unlogged_write(b)
    }

    // ---- scripted hard cases -------------------------------------------------------------

    fn quarter_range(&mut self) -> (u32, u32) {
        let q = (self.bs / 4) as u64;
        // offset < bs/2 <= offset + len <= bs: every such range covers byte bs/2 - 1.
        let offset = q + self.rng.below(q);
        let len = q + self.rng.below(q);
        (offset as u32, len as u32)
    }

    fn pick_unlocked_block(&mut self, allocated: Option<bool>) -> Option<u64> {
        let data = self.layout.block_count() - self.layout.data_start();
        for _ in 0..FORCE_RETRIES {
            let b = self.layout.data_start() + self.rng.below(data);
            let bit_ok = allocated.is_none_or(|a| bit_get(&self.mem, &self.layout, BitRegion::Blocks, b) == a);
            // The scenarios free or write back the block: no copy source.
            if self.block_owner[b as usize] == 0 && bit_ok && self.first_read_lsn[b as usize] == 0 {
                return Some(b);
            }
        }
        None
    }

    /// Hard case (3): one more committed, overlapping partial write of the hot block.
    fn scenario_hot(&mut self) -> Result<(), GenError> {
        let ti = self.start_txn();
        let range = self.quarter_range();
        let hot = self.hot_block;
        self.op_write(ti, Some(hot), Some(range))?;
        self.commit(ti)
    }

    /// Hard case (1), steal: A writes a range of B; the record is made durable and B is
    /// flushed with A's change; A aborts; C overwrites part of A's range and commits.
    fn scenario_abort_flushed(&mut self) -> Result<(), GenError> {
        let Some(b) = self.pick_unlocked_block(None) else {
            return Ok(());
        };
        let ta = self.start_txn();
        let (offset, len) = self.quarter_range();
        self.op_write(ta, Some(b), Some((offset, len)))?;
        self.sync()?;
        self.flush_block(b, FlushCause::Other)?;
        self.abort(ta)?;
        let tc = self.start_txn();
        let off2 = offset + len / 2;
        let len2 = len.min(self.bs as u32 - off2);
        self.op_write(tc, Some(b), Some((off2, len2)))?;
        self.commit(tc)
    }

    /// Revoke and reuse: R frees and revokes an allocated block and commits durably; then
    /// an unlogged write reuses the block.
    fn scenario_revoke_unlogged(&mut self) -> Result<(), GenError> {
        let Some(b) = self.pick_unlocked_block(Some(true)) else {
            return Ok(());
        };
        let tr = self.start_txn();
        self.op_bitmap(tr, Some((b, false)))?;
        self.commit(tr)?;
        self.sync()?;
        if self.eligible[b as usize] && self.block_owner[b as usize] == 0 {
            self.unlogged_write(b)?;
        }
        Ok(())
    }

    fn scenarios(&mut self, started: u64) -> Result<(), GenError> {
        let txns = self.p.txns;
        if started.is_multiple_of((txns / HOT_WRITES).max(1)) {
            self.scenario_hot()?;
        }
        if [txns / 4, txns / 2, 3 * txns / 4].contains(&started) {
            if self.steal {
                self.scenario_abort_flushed()?;
            }
            // A live writer logs what recovery must give before it knows when it dies: an
            // unlogged write's survival would depend on that moment.
            if self.live.is_none() {
                self.scenario_revoke_unlogged()?;
            }
        }
        Ok(())
    }

    // ---- the run -------------------------------------------------------------------------

    fn crash_open_needed(&self) -> usize {
        self.p.inflight as usize + 1 + usize::from(self.steal)
    }

    fn run(&mut self) -> Result<(), GenError> {
        let mut started = 0u64;
        let interleave = self.p.interleave as usize;
        let needed = self.crash_open_needed();
        loop {
            while self.open.len() < interleave && started < self.p.txns {
                self.start_txn();
                started += 1;
                self.scenarios(started)?;
            }
            if started >= self.p.txns && self.open.len() <= needed {
                return Ok(());
            }
            let ti = self.rng.below(self.open.len() as u64) as usize;
            if self.open[ti].ops_done >= self.open[ti].target_ops {
                if self.rng.chance(self.p.abort_rate) {
                    self.abort(ti)?;
                } else {
                    self.commit(ti)?;
                }
                self.maybe_checkpoint()?;
            } else {
                self.do_op(ti)?;
            }
            self.maybe_flush()?;
            self.maybe_unlogged()?;
        }
    }

    // ---- checkpoints and snapshots ---------------------------------------------------------

    fn due(every: Cadence, finished_since: u64, bytes_since: u64) -> bool {
        match every {
            Cadence::Txns(n) => finished_since >= n,
            Cadence::Bytes(n) => bytes_since >= n,
            Cadence::Interval { secs, txns_per_sec } => finished_since as f64 >= secs * txns_per_sec,
        }
    }

    fn maybe_checkpoint(&mut self) -> Result<(), GenError> {
        let finished = self.commits + self.aborts;
        let pos = self.writer.position();
        if let Some(plan) = self.p.checkpoints {
            if Self::due(plan.every, finished - self.ckpt.txns_at, pos - self.ckpt.pos_at) {
                self.checkpoint(&plan)?;
            }
        }
        if let Some(plan) = self.p.snapshots {
            if Self::due(plan.every, finished - self.snap.txns_at, pos - self.snap.pos_at) {
                self.snapshot(&plan)?;
            }
        }
        Ok(())
    }

    /// Dirty blocks a checkpoint of `style` writes back before its record, in block order:
    /// every one the rules let go home (sharp styles), the metadata region's (metadata), none
    /// (incremental).
    fn checkpoint_writeback(&self, style: CheckpointStyle) -> Vec<u64> {
        let data_start = self.layout.data_start();
        let mut v: Vec<u64> = match style {
            CheckpointStyle::Incremental => return Vec::new(),
            CheckpointStyle::Metadata => self.dirty.iter().copied().filter(|&b| b < data_start).collect(),
            CheckpointStyle::Full | CheckpointStyle::Emergency => self.dirty.clone(),
        };
        v.retain(|&b| self.can_flush(b));
        v.sort_unstable();
        v
    }

    /// The record a checkpoint taken now writes: the dirty block table and the open
    /// transactions, at the durable LSN.
    fn checkpoint_record(&self, style: CheckpointStyle) -> recovery::checkpoint::CheckpointRecord {
        use recovery::checkpoint::{CheckpointRecord, DirtyBlock, OpenTxn};
        let open =
            self.open.iter().filter_map(|t| t.first_lsn.map(|first_lsn| OpenTxn { txid: t.id, first_lsn })).collect();
        let dirty = self.dirty_order.iter().map(|&(rec_lsn, block)| DirtyBlock { block, rec_lsn }).collect();
        CheckpointRecord::new(&self.layout, style.kind(), self.durable_lsn, open, dirty)
    }

    /// Takes a checkpoint as a running system would: makes the journal durable, writes back
    /// what the style asks (syncing the image after), then writes the record with the dirty
    /// block table and the open transactions.
    fn checkpoint(&mut self, plan: &CheckpointPlan) -> Result<(), GenError> {
        self.sync()?;
        let t = Instant::now();
        for b in self.checkpoint_writeback(plan.style) {
            self.flush_block(b, FlushCause::Checkpoint)?;
        }
        // Every style: the record says which blocks are home, and a power cut may lose any
        // image write not yet synced (the background writer's too, under a fuzzy checkpoint).
        self.sync_image()?;
        let pos = self.writer.position();
        let record = self.checkpoint_record(plan.style);
        self.cost.last_checkpoint_dirty = record.dirty.len() as u64;
        let w = recovery::checkpoint::write(&self.dir, record)?;
        if let Some(trace) = self.live.as_mut().and_then(|l| l.trace.as_mut()) {
            let bytes = std::fs::read(&w.path).map_err(|e| GenError::io(&w.path, "read checkpoint record", e))?;
            trace.push(Traced { pos, event: TraceEvent::Checkpoint { seq: w.record.seq, bytes } });
        }
        recovery::checkpoint::prune(&self.dir, plan.retain, false)?;
        if self.image_file.is_some() {
            *self.cost.checkpoint_secs.get_or_insert(0.0) += t.elapsed().as_secs_f64();
        }
        let c = &mut self.ckpt;
        c.written += 1;
        c.last_lsn = w.record.lsn;
        c.last_redo_start = w.record.redo_start;
        c.last_pos = self.writer.position();
        c.starts.push_back(w.record.redo_start);
        if c.starts.len() > 2 {
            c.starts.pop_front();
        }
        c.txns_at = self.commits + self.aborts;
        c.pos_at = self.writer.position();
        Ok(())
    }

    /// Writes a snapshot of the committed state as a running system would: after a sync,
    /// from its committed image (the oracle's, which is the committed state by construction),
    /// every block (a backup keeps freed blocks too: it cannot know which of them the system
    /// reuses without logging).
    fn snapshot(&mut self, plan: &SnapshotPlan) -> Result<(), GenError> {
        use recovery::snapshot::{SnapshotKind, Spec};
        self.sync()?;
        let lsn = self.writer.next_lsn() - 1;
        let open_txns: Vec<u64> = self.open.iter().filter(|t| t.first_lsn.is_some()).map(|t| t.id).collect();
        let min_lsn = self.open.iter().filter_map(|t| t.first_lsn).min().unwrap_or(lsn + 1);
        let image = self.oracle.image();
        let bs = self.bs;
        let n = self.layout.block_count() as usize;
        fn blk(buf: &[u8], b: usize, bs: usize) -> &[u8] {
            &buf[b * bs..(b + 1) * bs]
        }
        let incremental = self.snap.parent.is_some() && self.snap.since_full + 1 < plan.full_every;
        let (kind, blocks): (SnapshotKind, Vec<u64>) = if incremental {
            (
                SnapshotKind::Incremental,
                (0..n)
                    .filter(|&b| !self.snap.chain_set[b] || blk(&self.snap.image, b, bs) != blk(image, b, bs))
                    .map(|b| b as u64)
                    .collect(),
            )
        } else {
            (SnapshotKind::Full, (0..n as u64).collect())
        };
        let spec = Spec {
            kind,
            lsn,
            min_lsn,
            open_txns,
            parent: if kind == SnapshotKind::Incremental { self.snap.parent } else { None },
            compression: plan.compression,
            blocks,
            dropped: Vec::new(),
            excluded: Vec::new(),
        };
        let w = recovery::snapshot::write(&self.dir, &self.layout, image, &spec)?;
        if kind == SnapshotKind::Incremental {
            self.snap.since_full += 1;
        } else {
            self.snap.since_full = 0;
            self.snap.chain_set = vec![false; n];
        }
        for &b in &spec.blocks {
            self.snap.chain_set[b as usize] = true;
        }
        self.snap.image.clear();
        self.snap.image.extend_from_slice(image);
        self.snap.parent = Some(w.manifest.seq);
        self.snap.written += 1;
        self.snap.last_lsn = lsn;
        self.snap.txns_at = self.commits + self.aborts;
        self.snap.pos_at = self.writer.position();
        recovery::snapshot::prune(&self.dir, plan.retain)?;
        Ok(())
    }

    fn index_of(&self, id: u64) -> Option<usize> {
        self.open.iter().position(|t| t.id == id)
    }

    /// Stops with transactions in flight: a final sync, loser flushes (steal), then a tail
    /// of records that are written but not durable, and the crash position.
    fn crash_phase(&mut self) -> Result<Tail, GenError> {
        if let Some(plan) = self.p.checkpoints.filter(|p| p.torn_at_crash) {
            // The next checkpoint was under way when the system crashed: part of its
            // write-back done (sharp styles), its record half-written.
            self.sync()?;
            let pending = self.checkpoint_writeback(plan.style);
            for b in pending {
                if self.rng.chance(0.5) && self.can_flush(b) {
                    self.flush_block(b, FlushCause::Checkpoint)?;
                }
            }
            let record = self.checkpoint_record(plan.style);
            let full = record.encode().len();
            let len = 1 + self.rng.below(full as u64 - 1) as usize;
            recovery::checkpoint::write_torn(&self.dir, &record, len)?;
            self.ckpt.torn = true;
        }
        while self.open.len() < self.crash_open_needed() {
            self.start_txn();
        }
        let mut ids: Vec<u64> = self.open.iter().map(|t| t.id).collect();
        let straddler = ids.swap_remove(self.rng.below(ids.len() as u64) as usize);
        let mid = if self.steal { Some(ids.swap_remove(self.rng.below(ids.len() as u64) as usize)) } else { None };
        let losers = ids;

        // Durable records for the transactions that need them.
        if let Some(si) = self.index_of(straddler) {
            if self.open[si].records == 0 {
                self.force_write(si)?;
            }
        }
        if let Some(m) = mid {
            for _ in 0..FORCE_RETRIES {
                match self.index_of(m) {
                    Some(mi) if self.open[mi].write_count() < 2 => {
                        self.force_write(mi)?;
                    }
                    _ => break,
                }
            }
        }
        if let Some(li) = losers.first().and_then(|&l| self.index_of(l)) {
            if self.open[li].write_count() == 0 {
                self.force_write(li)?;
            }
        }
        self.sync()?;
        let durable_pos = self.durable_pos;
        let durable_lsn = self.durable_lsn;

        // Steal: changes of transactions still open reach the image (hard case (2)).
        if self.steal {
            let order: Vec<u64> = losers.iter().copied().chain(mid).chain([straddler]).collect();
            for (k, id) in order.into_iter().enumerate() {
                let Some(ti) = self.index_of(id) else { continue };
                let blocks: Vec<u64> = self.open[ti].ops.iter().filter_map(DoneOp::data_block).collect();
                for b in blocks {
                    if (k == 0 || self.rng.chance(0.5)) && self.can_flush(b) {
                        self.flush_block(b, FlushCause::Other)?;
                    }
                }
            }
        }

        // The tail: written, never synced.
        self.in_tail = true;
        for &l in &losers {
            for _ in 0..self.rng.below(3) {
                if let Some(li) = self.index_of(l) {
                    self.do_op(li)?;
                }
            }
        }
        let mut mid_comp_end = None;
        if let Some(mi) = mid.and_then(|m| self.index_of(m)) {
            let n = self.open[mi].ops.iter().filter(|op| !matches!(op, DoneOp::Revoke)).count();
            let first_comp = self.tail_log.len();
            if self.compensate(mi, n.div_ceil(2).max(1))? > 0 {
                mid_comp_end = self.tail_log.get(first_comp).map(|(a, _)| a.end);
            }
        }
        let Some(si) = self.index_of(straddler) else {
            return Err(GenError::Invariant {
                rule: "straddler open",
                index: straddler,
                lsn: 0,
                durable_lsn,
                txid: straddler,
            });
        };
        self.force_write(si)?;
        for _ in 0..self.rng.below(3) {
            if let Some(si) = self.index_of(straddler) {
                self.do_op(si)?;
            }
            if !losers.is_empty() && self.rng.chance(0.5) {
                let l = losers[self.rng.below(losers.len() as u64) as usize];
                if let Some(li) = self.index_of(l) {
                    self.do_op(li)?;
                }
            }
        }
        let si = self.index_of(straddler).unwrap_or(0);
        let straddler_first_end = self.open[si].first_end;
        let straddler_flushed = self.open[si].flushed.len() as u64;
        self.commit(si)?;
        if let Some(&l) = losers.first() {
            if let Some(li) = self.index_of(l) {
                self.do_op(li)?;
            }
        }
        let end_pos = self.writer.position();

        // The crash position.
        let first = self.tail_log.iter().position(|(_, id)| *id == straddler);
        let commit_idx = self.tail_log.iter().rposition(|(_, id)| *id == straddler);
        let (Some(first), Some(commit_idx)) = (first, commit_idx) else {
            return Err(GenError::Invariant {
                rule: "straddler commit in the tail",
                index: straddler,
                lsn: 0,
                durable_lsn,
                txid: straddler,
            });
        };
        let crash = self.p.crash;
        let crash_pos = match crash {
            CrashKind::Clean => end_pos,
            CrashKind::Cut | CrashKind::ZeroTail | CrashKind::GarbageTail => {
                if first < commit_idx {
                    let j = first + self.rng.below((commit_idx - first) as u64) as usize;
                    self.tail_log[j].0.end
                } else if commit_idx > 0 {
                    self.tail_log[commit_idx - 1].0.end
                } else {
                    durable_pos
                }
            }
            CrashKind::Torn => {
                let j = first + self.rng.below((commit_idx - first + 1) as u64) as usize;
                let a = self.tail_log[j].0;
                a.start + 1 + self.rng.below(a.end - a.start - 1)
            }
        };
        let straddler_committed = self.tail_log[commit_idx].0.end <= crash_pos;
        if crash == CrashKind::Clean {
            // Nothing is lost: the tail counts as synced.
            self.sync()?;
        }
        let last_surviving_lsn =
            self.tail_log.iter().filter(|(a, _)| a.end <= crash_pos).map(|(a, _)| a.lsn).max().unwrap_or(durable_lsn);

        // WAL at the crash: no image block holds a change newer than what survives.
        if let Some(b) = (0..self.disk_lsn.len()).find(|&b| self.disk_lsn[b] > last_surviving_lsn) {
            return Err(GenError::Invariant {
                rule: "wal",
                index: b as u64,
                lsn: self.disk_lsn[b],
                durable_lsn: last_surviving_lsn,
                txid: 0,
            });
        }

        let survives = |end: Option<u64>| end.is_some_and(|e| e <= crash_pos);
        let mut in_flight = self.open.iter().filter(|t| survives(t.first_end)).count() as u64;
        let mut losers_in_image: u64 = self.open.iter().map(|t| t.flushed.len() as u64).sum();
        if !straddler_committed {
            in_flight += u64::from(survives(straddler_first_end));
            losers_in_image += straddler_flushed;
        }
        let straddling = u64::from(
            crash != CrashKind::Clean && !straddler_committed && straddler_first_end.is_some_and(|e| e <= durable_pos),
        );
        Ok(Tail {
            crash_pos,
            durable_pos,
            durable_lsn,
            last_surviving_lsn,
            straddling,
            mid_abort: u64::from(survives(mid_comp_end)),
            losers_in_image: if self.steal { losers_in_image } else { 0 },
            in_flight,
            straddler_committed,
        })
    }

    /// Writes the journal's crash shape, the crash image, the expected files and the
    /// manifest.
    fn finish(self, dir: &Path, tail: Tail) -> Result<(GenSummary, Vec<u8>), GenError> {
        let Gen {
            p,
            layout,
            writer,
            disk,
            oracle,
            excluded,
            mut rng,
            mut hard,
            records,
            commits,
            aborts,
            flushes,
            syncs,
            ckpt,
            snap,
            cost,
            ..
        } = self;
        let journal_bytes_written = writer.position();
        let segments = close_journal(writer, &dir.join(JOURNAL_DIR), derive(p.seed, 2))?;
        let shaped =
            shape_journal(&segments, p.crash, tail.crash_pos, p.journal_block_size, p.segment_blocks, &mut rng)?;

        let mut result = oracle.finish(tail.crash_pos);
        let bs = layout.block_size();
        for &b in &result.committed_blocks {
            let r = b as usize * bs..(b as usize + 1) * bs;
            if disk[r.clone()] == result.image[r] {
                hard.committed_blocks_flushed += 1;
            } else {
                hard.committed_blocks_unflushed += 1;
            }
        }
        hard.max_txns_per_block = u64::from(result.max_txns_per_block);
        hard.straddling_txns = tail.straddling;
        hard.mid_abort_losers = tail.mid_abort;
        hard.loser_changes_in_image = tail.losers_in_image;
        hard.copies = result.copies;
        hard.copies_reading_recent_writes = result.copies_reading_recent_writes;
        if let Some(ex) = excluded {
            let r = ex.finish(tail.crash_pos);
            result.image = r.image;
            result.committed_txns = r.committed_txns;
        }

        let ipath = dir.join(IMAGE_FILE);
        std::fs::write(&ipath, &disk).map_err(|e| GenError::io(&ipath, "write image", e))?;
        let expected_digests = block_digests(&result.image, bs);
        let expected_digest = image_digest(&expected_digests);
        write_expected(
            dir,
            &expected_digests,
            &Expected {
                block_size: p.block_size,
                block_count: p.block_count,
                image_digest: expected_digest.clone(),
                seed: p.seed,
                committed_txns: result.committed_txns,
                orphans_freed: result.orphans_freed,
                crash_pos: tail.crash_pos,
            },
        )?;
        // Commits of the main phase are all durable; only the straddler's can be lost.
        let lost = u64::from(!tail.straddler_committed);
        let summary = GenSummary {
            preset: p.preset,
            seed: p.seed,
            policy: p.policy,
            crash_kind: p.crash,
            crash_pos: tail.crash_pos,
            durable_pos: tail.durable_pos,
            durable_lsn: tail.durable_lsn,
            last_surviving_lsn: tail.last_surviving_lsn,
            journal_bytes_written,
            journal_bytes: shaped.bytes,
            records,
            segments: shaped.segments,
            txns_committed: commits - lost,
            txns_aborted: aborts,
            txns_in_flight: tail.in_flight,
            orphans_freed: result.orphans_freed,
            flushes,
            syncs,
            expected_digest,
            hard_cases: hard,
            checkpoints: ckpt.written,
            last_checkpoint_lsn: ckpt.last_lsn,
            last_checkpoint_redo_start: ckpt.last_redo_start,
            last_checkpoint_pos: ckpt.last_pos,
            torn_checkpoint: ckpt.torn,
            snapshots: snap.written,
            last_snapshot_lsn: snap.last_lsn,
            writer: cost,
        };
        // Left-out transactions never reach the oracle, so the counts differ by them.
        if p.exclude_txns.is_empty() && summary.txns_committed != result.committed_txns {
            return Err(GenError::Invariant {
                rule: "commit count agrees with the oracle",
                index: result.committed_txns,
                lsn: 0,
                durable_lsn: 0,
                txid: 0,
            });
        }
        write_json(
            &dir.join(MANIFEST_FILE),
            &Manifest { format: "fastrec-crash-state/1", seed: p.seed, preset: p.preset, params: p, summary: &summary },
        )?;
        Ok((summary, result.image))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small_gen(policy: Policy) -> (GenParams, tempfile::TempDir) {
        let p = GenParams { policy, ..Preset::Small.params(9) };
        (p, tempfile::tempdir().expect("tempdir"))
    }

    #[test]
    fn flushing_a_change_before_its_record_is_durable_is_refused() {
        let (p, dir) = small_gen(Policy::Steal);
        let mut g = Gen::new(&dir.path().join(JOURNAL_DIR), &p).expect("gen");
        let ti = g.start_txn();
        let b = g.layout.data_start();
        assert!(g.op_write(ti, Some(b), None).expect("write"));
        assert!(!g.can_flush(b));
        assert!(matches!(g.flush_block(b, FlushCause::Other), Err(GenError::Invariant { rule: "wal", .. })));
        g.sync().expect("sync");
        assert!(g.can_flush(b));
        g.flush_block(b, FlushCause::Other).expect("flush after the sync");
    }

    #[test]
    fn the_checker_catches_a_second_writer_of_a_held_block() {
        let (p, dir) = small_gen(Policy::NoSteal);
        let mut g = Gen::new(&dir.path().join(JOURNAL_DIR), &p).expect("gen");
        let t1 = g.start_txn();
        let t2 = g.start_txn();
        let b = g.layout.data_start() + 3;
        assert!(g.op_write(t1, Some(b), None).expect("write"));
        // The lock table refuses t2...
        assert!(!g.op_write(t2, Some(b), None).expect("locked"));
        // ...and the independent checker would catch a lock-table bug.
        let (id1, id2) = (g.open[t1].id, g.open[t2].id);
        assert!(g.checker.touch(KEY_DATA, b, id1).is_ok());
        assert!(matches!(g.checker.touch(KEY_DATA, b, id2), Err(GenError::Invariant { rule: "2pl", .. })));
        g.commit(t1).expect("commit");
        let t2 = g.index_of(id2).expect("still open");
        assert!(g.op_write(t2, Some(b), None).expect("free after commit"));
    }

    #[test]
    fn a_copy_source_is_read_locked_and_never_written_back_with_later_changes() {
        for policy in Policy::ALL {
            let (p, dir) = small_gen(policy);
            let p = GenParams { deps_rate: 1.0, deps_reach: 1, ..p };
            let mut g = Gen::new(&dir.path().join(JOURNAL_DIR), &p).expect("gen");
            let t1 = g.start_txn();
            assert!(g.op_copy(t1).expect("copy"), "{policy}");
            let Some(&DoneOp::Copy { src, dst, .. }) = g.open[t1].ops.last() else { panic!("{policy}: a copy") };
            assert_ne!(src, dst);
            let data = g.layout.block_count() - g.layout.data_start();
            assert!([1, data - 1].contains(&src.abs_diff(dst)), "{policy}: reach 1, wrapped");
            // Another transaction may not write the source while t1 is open (lock table and
            // checker)...
            let t2 = g.start_txn();
            assert!(!g.op_write(t2, Some(src), None).expect("locked"), "{policy}");
            let id2 = g.open[t2].id;
            assert!(matches!(g.checker.touch(KEY_DATA, src, id2), Err(GenError::Invariant { rule: "2pl", .. })));
            // ...and t1 may change it itself.
            assert!(g.op_write(t1, Some(src), Some((0, 16))).expect("own lock"), "{policy}");
            g.commit(t1).expect("commit");
            g.sync().expect("sync");
            assert!(g.checker.touch(KEY_DATA, src, id2).is_ok(), "{policy}: released at commit");
            // The write after the copy may never reach the image: a blind redo rebuilds the
            // source from the crash image when it replays the copy.
            assert!(!g.can_flush(src), "{policy}");
            assert!(
                matches!(g.flush_block(src, FlushCause::Other), Err(GenError::Invariant { rule, .. }) if rule.starts_with("copy source")),
                "{policy}"
            );
            assert!(g.can_flush(dst), "{policy}: the destination flushes like any written block");
            g.flush_block(dst, FlushCause::Other).expect("flush destination");
            // One checkpoint record whose redo start is past the copy is not enough (recovery
            // may fall back to the one before); two are.
            let plan = CheckpointPlan { style: CheckpointStyle::Incremental, ..CheckpointPlan::default() };
            g.checkpoint(&plan).expect("checkpoint");
            assert!(!g.can_flush(src), "{policy}: one covering record");
            g.checkpoint(&plan).expect("checkpoint");
            assert!(g.ckpt.cover_lsn() > g.first_read_lsn[src as usize], "{policy}: the copy is covered");
            assert!(g.can_flush(src), "{policy}: two covering records");
            g.flush_block(src, FlushCause::Other).expect("flush a covered copy's source");
            // Nor is the source ever freed or reused unlogged.
            let t3 = g.index_of(id2).expect("open");
            bit_put(&mut g.mem, &g.layout, BitRegion::Blocks, src, true);
            assert!(!g.op_bitmap(t3, Some((src, false))).expect("refused"), "{policy}");
            assert!(matches!(g.unlogged_write(src), Err(GenError::Invariant { .. })), "{policy}");
        }
    }
}

/// Where a resumed live writer continues: the recovered image, and the journal after it.
struct Resume {
    base: Vec<u8>,
    /// The journal's image identity (a resumed run keeps it, whatever its seed).
    image_id: u64,
    next_seq: u64,
    next_lsn: u64,
}

/// A live writer's log: one line per event, each written with one `write` call so a kill
/// leaves whole lines (a torn last line is ignored by readers).
///
/// - `base DIGEST RAW`: what recovery must give with no commit durable, and the image as
///   written before the first journal record (`RAW`: orphans not yet cleaned up);
/// - `c K TXID DIGEST`: commit number `K` (1-based, in commit order) of transaction `TXID`,
///   written before any byte of its commit record can reach the journal file; `DIGEST` is what
///   recovery must give with commits `1..=K` in the journal (the committed state after them,
///   then orphan cleanup), computed by an oracle that applies each commit as it happens;
/// - `d K`: the first `K` commits are durable (the journal was written and fdatasync'd).
///
/// A recovery after a kill is right only when its image's digest is that of some `c K` line
/// with `K` at least the last `d` line's (every acknowledged commit kept, each transaction
/// all or nothing, nothing uncommitted visible).
struct LiveLog {
    file: Option<(std::fs::File, std::path::PathBuf)>,
    /// For the crash simulator: every event, with the journal position at it.
    trace: Option<Vec<Traced>>,
    inorder: Oracle,
    commits: u64,
}

impl LiveLog {
    fn line(&mut self, text: &str) -> Result<(), GenError> {
        use std::io::Write as _;
        match self.file.as_mut() {
            Some((file, path)) => {
                file.write_all(format!("{text}\n").as_bytes()).map_err(|e| GenError::io(path.as_path(), "write log", e))
            }
            None => Ok(()),
        }
    }

    fn commit(&mut self, txid: u64, events: Vec<Event>, pos: u64) -> Result<(), GenError> {
        self.commits += 1;
        // Commit numbers stand in for journal ends: this oracle only needs them increasing.
        self.inorder.commit(self.commits, events)?;
        self.inorder.make_durable(self.commits);
        let digest = self.inorder.cleaned_digest();
        self.line(&format!("c {} {txid} {digest}", self.commits))?;
        if let Some(t) = self.trace.as_mut() {
            t.push(Traced { pos, event: TraceEvent::Commit { k: self.commits, digest } });
        }
        Ok(())
    }

    fn durable(&mut self, pos: u64) -> Result<(), GenError> {
        self.line(&format!("d {}", self.commits))?;
        if let Some(t) = self.trace.as_mut() {
            t.push(Traced { pos, event: TraceEvent::Durable { k: self.commits } });
        }
        Ok(())
    }
}

/// One I/O-relevant event of a traced live writer (see [`run_traced`]).
#[derive(Debug, Clone)]
pub enum TraceEvent {
    /// Commit number `k` is about to be appended; `digest` is recovery's result with commits
    /// `1..=k` (as a `c` line of the live log).
    Commit {
        /// Commit number (1-based, in commit order).
        k: u64,
        /// The image digest recovery must give with commits `1..=k`.
        digest: String,
    },
    /// The journal was fdatasync'd: commits `1..=k` are durable.
    Durable {
        /// Commits durable so far.
        k: u64,
    },
    /// A block went home (a `pwrite` of the image, not synced).
    ImageWrite {
        /// The block written.
        block: u64,
        /// Its new content (one image block).
        bytes: Vec<u8>,
    },
    /// The image was fsync'd: every earlier image write is durable.
    ImageSync,
    /// Checkpoint record `seq` was written (durable: the record and its directory are synced).
    Checkpoint {
        /// The record's sequence number.
        seq: u64,
        /// The record file's bytes (retention may delete the file later in the run).
        bytes: Vec<u8>,
    },
}

/// A [`TraceEvent`] with the journal's length (bytes appended, buffered or not) at it.
#[derive(Debug, Clone)]
pub struct Traced {
    /// Journal bytes appended before the event (global journal position).
    pub pos: u64,
    /// What happened.
    pub event: TraceEvent,
}

/// What a traced live writer did: enough to build the files any crash could have left (the
/// finished journal and checkpoint files hold every byte ever written to them).
#[derive(Debug, Clone)]
pub struct Trace {
    /// The image before the first event (durable).
    pub base_image: Vec<u8>,
    /// Recovery's result with no commit.
    pub base_digest: String,
    /// The image's block size.
    pub block_size: usize,
    /// The journal's block size (a segment's header block, fsync'd when it is created).
    pub journal_block_size: u32,
    /// Every event, in order.
    pub events: Vec<Traced>,
}

/// The events a transaction's operations make in the oracle.
fn op_events(ops: &[DoneOp]) -> Vec<Event> {
    ops.iter()
        .filter_map(|op| match op {
            DoneOp::Write { block, offset, redo, .. } => {
                Some(Event::Write { block: *block, offset: *offset, bytes: redo.clone() })
            }
            DoneOp::Copy { src, src_offset, dst, dst_offset, before, .. } => Some(Event::Copy {
                src: *src,
                src_offset: *src_offset,
                dst: *dst,
                dst_offset: *dst_offset,
                len: before.len() as u32,
            }),
            DoneOp::Bit { region, index, set, .. } => Some(Event::Bit { region: *region, index: *index, set: *set }),
            DoneOp::Revoke => None,
        })
        .collect()
}

/// What a live writer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LiveSummary {
    /// Transactions committed.
    pub commits: u64,
    /// Group commits (fdatasync of the journal).
    pub syncs: u64,
}

fn live_writer(
    dir: &Path,
    params: &GenParams,
    log: Option<&Path>,
    resume: bool,
    traced: bool,
) -> Result<(LiveSummary, Trace), GenError> {
    params.validate()?;
    if params.unlogged_write_rate != 0.0 {
        return Err(GenError::Params {
            what: "unlogged_write_rate (a live writer needs 0)",
            value: params.unlogged_write_rate.to_string(),
        });
    }
    let p = GenParams { real_image_io: true, ..params.clone() };
    std::fs::create_dir_all(dir).map_err(|e| GenError::io(dir, "create directory", e))?;
    let jdir = dir.join(JOURNAL_DIR);
    let from = if resume {
        // The image's own header names its identity, which the resumed journal keeps.
        let layout = Layout::read_from(&dir.join(IMAGE_FILE))?;
        let image_id = layout.geometry.image_id;
        let at = recovery::recover::resume_journal(dir, &layout)?;
        let ipath = dir.join(IMAGE_FILE);
        let base = std::fs::read(&ipath).map_err(|e| GenError::io(&ipath, "read image", e))?;
        Some(Resume { base, image_id, next_seq: at.next_seq, next_lsn: at.next_lsn })
    } else {
        if jdir.exists()
            && std::fs::read_dir(&jdir).map_err(|e| GenError::io(&jdir, "list journal", e))?.next().is_some()
        {
            return Err(GenError::JournalExists { path: jdir });
        }
        None
    };
    let file = match log {
        Some(log) => Some((
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .map_err(|e| GenError::io(log, "open log", e))?,
            log.to_path_buf(),
        )),
        None => None,
    };
    let mut g = Gen::create(dir, &p, from)?;
    // A real writer may lose unsynced journal writes in any order: it tells recovery where
    // the journal was durable.
    g.writer.enable_sync_markers();
    if g.mem.len() as u64 != g.layout.image_len() {
        return Err(GenError::Params { what: "image length of the resumed directory", value: g.mem.len().to_string() });
    }
    let mut live = LiveLog {
        file,
        trace: traced.then(Vec::new),
        inorder: Oracle::new(g.layout.clone(), g.mem.clone())?,
        commits: 0,
    };
    let base_digest = live.inorder.cleaned_digest();
    let raw = crate::digest::image_digest(&crate::digest::block_digests(&g.disk, g.bs));
    live.line(&format!("base {base_digest} {raw}"))?;
    let base_image = if traced { g.disk.clone() } else { Vec::new() };
    g.live = Some(live);
    g.run()?;
    g.sync()?;
    let summary = LiveSummary { commits: g.commits, syncs: g.syncs };
    let events = g.live.take().and_then(|l| l.trace).unwrap_or_default();
    Ok((summary, Trace { base_image, base_digest, block_size: g.bs, journal_block_size: p.journal_block_size, events }))
}

/// Runs the simulated system as a real writer in `dir`: the image written as blocks go home,
/// the journal appended and fdatasync'd at every group commit, checkpoint records as
/// planned, and a log at `log` saying what recovery must produce at any moment (see
/// [`LiveLog`]). Meant to be killed: `fastrec writer` and the SIGKILL trials run it. With
/// `resume`, `dir` must hold a recovered directory (its final checkpoint record written):
/// the writer continues the same image and journal, in new segments after the old ones.
///
/// Unlogged writes are not modelled here (`unlogged_write_rate` must be 0): whether one
/// survives depends on when the kill lands, which the log cannot say in advance.
pub fn run_live(dir: &Path, params: &GenParams, log: &Path, resume: bool) -> Result<LiveSummary, GenError> {
    live_writer(dir, params, Some(log), resume, false).map(|(s, _)| s)
}

/// Like [`run_live`] on a new directory, without a log, recording every event (commits,
/// journal syncs, image writes and syncs, checkpoints) for the crash simulator.
pub fn run_traced(dir: &Path, params: &GenParams) -> Result<(LiveSummary, Trace), GenError> {
    live_writer(dir, params, None, false, true)
}
