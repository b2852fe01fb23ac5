//! Analysis: the transaction table (committed, aborted, in flight), the validity of every
//! record against the image layout, and the facts redo needs: the last full-block write and the
//! newest committed revoke of every block.

use rustc_hash::{FxHashMap, FxHashSet};

use crate::error::{Error, Result};
use crate::format::record::{AllocTarget, Record, RecordHeader};
use crate::image::{BitRegion, Layout};
use crate::journal::Journal;
use crate::scan::RecordCtx;
use crate::RecoveryMode;

/// What became of a transaction by the durable end of the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TxnOutcome {
    /// Its commit record is durable: a winner, redone.
    Committed,
    /// Its abort record is durable: its compensation records already undid it.
    Aborted,
    /// Neither: a loser, rolled back (steal) or discarded (no-steal).
    InFlight,
    /// Skip-corrupt lost some of its records: treated as a loser, never half-applied.
    Damaged,
}

/// Where an undoable record of a possible loser lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UndoLoc {
    /// The record's LSN.
    pub lsn: u64,
    /// Its segment index.
    pub segment: u32,
    /// Offset of its first fragment.
    pub start: u64,
}

/// A set of transaction ids: a bitmap when the ids are dense (as writers allocate them),
/// else a hash set.
#[derive(Debug, Clone)]
enum TxnSet {
    Bits { base: u64, words: Vec<u64> },
    Hash(FxHashSet<u64>),
}

impl TxnSet {
    fn build(ids: impl Iterator<Item = u64> + Clone, count: usize) -> TxnSet {
        let (lo, hi) = ids.clone().fold((u64::MAX, 0), |(lo, hi), id| (lo.min(id), hi.max(id)));
        if count > 0 && hi - lo < (count as u64).saturating_mul(8).max(1 << 16) {
            let mut words = vec![0u64; ((hi - lo) / 64 + 1) as usize];
            for id in ids {
                let i = id - lo;
                words[(i / 64) as usize] |= 1 << (i % 64);
            }
            TxnSet::Bits { base: lo, words }
        } else {
            TxnSet::Hash(ids.collect())
        }
    }

    fn contains(&self, id: u64) -> bool {
        match self {
            TxnSet::Bits { base, words } => id
                .checked_sub(*base)
                .and_then(|i| words.get((i / 64) as usize).map(|w| w & (1 << (i % 64)) != 0))
                .unwrap_or(false),
            TxnSet::Hash(h) => h.contains(&id),
        }
    }
}

/// An LSN per image block: a dense array for images of up to 2^22 blocks (32 MiB of table at
/// most; redo looks blocks up once or twice per record, and a hash lookup there costed more
/// than the rest of the lookup's work), else a hash map. 0 means none (LSNs start at 1).
#[derive(Debug, Clone)]
pub enum BlockTable {
    /// Indexed by block.
    Dense(Vec<u64>),
    /// Only the blocks that have an LSN.
    Sparse(FxHashMap<u64, u64>),
}

/// Largest image, in blocks, whose per-block tables are dense arrays.
const DENSE_BLOCKS_MAX: u64 = 1 << 22;

impl BlockTable {
    /// An empty table for an image of `block_count` blocks.
    pub fn new(block_count: u64) -> BlockTable {
        if block_count <= DENSE_BLOCKS_MAX {
            BlockTable::Dense(vec![0; block_count as usize])
        } else {
            BlockTable::Sparse(FxHashMap::default())
        }
    }

    /// The block's LSN, if it has one.
    #[inline]
    pub fn get(&self, block: u64) -> Option<u64> {
        match self {
            BlockTable::Dense(v) => v.get(block as usize).copied().filter(|&l| l != 0),
            BlockTable::Sparse(m) => m.get(&block).copied(),
        }
    }

    /// Raises the block's LSN to `lsn` (keeps the larger). Blocks outside a dense table's range
    /// are ignored (analysis refuses records naming them before they get here).
    pub fn raise(&mut self, block: u64, lsn: u64) {
        match self {
            BlockTable::Dense(v) => {
                if let Some(x) = v.get_mut(block as usize) {
                    *x = (*x).max(lsn);
                }
            }
            BlockTable::Sparse(m) => {
                let e = m.entry(block).or_insert(lsn);
                *e = (*e).max(lsn);
            }
        }
    }

    /// Whether the block has an LSN.
    pub fn contains(&self, block: u64) -> bool {
        self.get(block).is_some()
    }

    /// Blocks that have an LSN.
    pub fn len(&self) -> usize {
        match self {
            BlockTable::Dense(v) => v.iter().filter(|&&l| l != 0).count(),
            BlockTable::Sparse(m) => m.len(),
        }
    }

    /// Whether no block has an LSN.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A set of image blocks: a bitmap for images of up to 2^27 blocks (16 MiB of bits at most),
/// else a hash set.
#[derive(Debug, Clone)]
pub enum BlockSet {
    /// One bit per block.
    Bits(Vec<u64>),
    /// The blocks in the set.
    Hash(FxHashSet<u64>),
}

impl BlockSet {
    /// An empty set for the blocks one scan chunk touches: a bitmap while the image is small
    /// enough that one per chunk costs little, a hash set otherwise.
    pub fn for_chunk(block_count: u64) -> BlockSet {
        if block_count <= 1 << 20 {
            BlockSet::Bits(vec![0; block_count.div_ceil(64) as usize])
        } else {
            BlockSet::Hash(FxHashSet::default())
        }
    }

    /// Adds every block of `other`.
    pub fn union(&mut self, other: &BlockSet) {
        match (self, other) {
            (BlockSet::Bits(a), BlockSet::Bits(b)) if a.len() == b.len() => {
                for (x, y) in a.iter_mut().zip(b) {
                    *x |= y;
                }
            }
            (me, BlockSet::Bits(b)) => {
                for (i, &word) in b.iter().enumerate() {
                    let mut w = word;
                    while w != 0 {
                        let bit = w.trailing_zeros() as u64;
                        me.insert(i as u64 * 64 + bit);
                        w &= w - 1;
                    }
                }
            }
            (me, BlockSet::Hash(h)) => {
                for &b in h {
                    me.insert(b);
                }
            }
        }
    }

    /// An empty set for an image of `block_count` blocks.
    pub fn new(block_count: u64) -> BlockSet {
        if block_count <= 1 << 27 {
            BlockSet::Bits(vec![0; block_count.div_ceil(64) as usize])
        } else {
            BlockSet::Hash(FxHashSet::default())
        }
    }

    /// Adds `block` (ignored when outside a bitmap's range).
    #[inline]
    pub fn insert(&mut self, block: u64) {
        match self {
            BlockSet::Bits(w) => {
                if let Some(word) = w.get_mut((block / 64) as usize) {
                    *word |= 1 << (block % 64);
                }
            }
            BlockSet::Hash(h) => {
                h.insert(block);
            }
        }
    }

    /// The blocks, ascending.
    pub fn sorted(&self) -> Vec<u64> {
        match self {
            BlockSet::Bits(w) => w
                .iter()
                .enumerate()
                .flat_map(|(i, &word)| (0..64u64).filter(move |b| word & (1 << b) != 0).map(move |b| i as u64 * 64 + b))
                .collect(),
            BlockSet::Hash(h) => {
                let mut v: Vec<u64> = h.iter().copied().collect();
                v.sort_unstable();
                v
            }
        }
    }
}

/// One transaction's entry in the table.
#[derive(Debug, Clone)]
pub struct TxnEntry {
    /// Outcome so far (final once the scan ends).
    pub outcome: TxnOutcome,
    /// Records seen before its commit or abort.
    pub records: u32,
    /// ALLOC records it logged (not compensation).
    pub allocs: u32,
    full_writes: Vec<(u64, u64)>,
    revokes: Vec<(u64, u64)>,
    /// Copy sources it read: (source block, LSN, location).
    reads: Vec<(u64, UndoLoc)>,
    /// Skip-corrupt only: (source, destination, LSN) of its copies.
    copies: Vec<(u64, u64, u64)>,
    undo: Vec<UndoLoc>,
    /// In a partial (per-chunk) analysis: the record count its COMMIT or ABORT claimed,
    /// checked when chunks are merged.
    claimed: Option<u32>,
    /// It may have begun before the checkpoint's redo start (see [`StartFilter::truncated`]):
    /// its record count is not checked, and it must have ended by the checkpoint's LSN.
    truncated: bool,
    /// LSN of its first record read (for the error when a truncated one never ended).
    first_seen: u64,
    /// LSN of its last record read, its end included.
    last_seen: u64,
}

impl TxnEntry {
    /// LSN of its first record read (0 when first met as damage).
    pub fn first_seen(&self) -> u64 {
        self.first_seen
    }

    /// Whether it may have begun before the start point (only a suffix of it was read).
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    fn new() -> Self {
        TxnEntry {
            outcome: TxnOutcome::InFlight,
            records: 0,
            allocs: 0,
            full_writes: Vec::new(),
            revokes: Vec::new(),
            reads: Vec::new(),
            copies: Vec::new(),
            undo: Vec::new(),
            claimed: None,
            truncated: false,
            first_seen: 0,
            last_seen: 0,
        }
    }
}

/// Transactions a partial (per-chunk) analysis saw begin and end within its chunk, reduced to
/// what `finish` needs, so merging chunks costs nothing per such transaction.
#[derive(Debug, Default)]
struct Done {
    /// Their ids (checked for duplicates across chunks when merging).
    ids: Vec<u64>,
    committed: Vec<u64>,
    aborted: u64,
    /// Full-block writes of redone ones (all under steal, committed under no-steal).
    full_writes: Vec<(u64, u64)>,
    /// Revokes of committed ones.
    revokes: Vec<(u64, u64)>,
    /// Copy reads of redone ones.
    reads: Vec<(u64, UndoLoc)>,
}

/// A record skip-corrupt passed over because it describes an impossible operation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InvalidNote {
    /// Its LSN.
    pub lsn: u64,
    /// Its transaction.
    pub txid: u64,
    /// Why it is invalid.
    pub reason: String,
}

/// Counts of records by type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RecordCounts {
    /// WRITE records (compensation included).
    pub writes: u64,
    /// Of which full-block.
    pub full_writes: u64,
    /// ALLOC and FREE records.
    pub bitmap: u64,
    /// ORPHAN_ADD and ORPHAN_REMOVE records.
    pub orphan: u64,
    /// REVOKE records.
    pub revokes: u64,
    /// COPY records (cross-block dependencies).
    pub copies: u64,
    /// COMMIT records.
    pub commits: u64,
    /// ABORT records.
    pub aborts: u64,
    /// Compensation records of any type.
    pub compensation: u64,
    /// Optional records of unknown type.
    pub optional: u64,
    /// Records read but not analysed: before the start point (in the first journal block
    /// read), or covered by the snapshot a rebuild restored.
    pub before_start: u64,
}

/// Checks a record against the layout; `Some(reason)` when it cannot be applied.
pub fn invalid_reason(layout: &Layout, steal: bool, rec: &Record<'_>) -> Option<String> {
    let bs = layout.block_size();
    let data = layout.data_start()..layout.block_count();
    match *rec {
        Record::Write { block, offset, redo, undo, full, compensation } => {
            if !data.contains(&block) {
                return Some(format!("write to block {block} outside the data region {data:?}"));
            }
            if offset as usize + redo.len() > bs {
                return Some(format!("write of {} bytes at offset {offset} overruns a {bs}-byte block", redo.len()));
            }
            if full && redo.len() != bs {
                return Some(format!("full-block write of {} bytes to {bs}-byte blocks", redo.len()));
            }
            if steal && !compensation && undo.is_none() {
                return Some("write without undo bytes in a steal-policy journal".into());
            }
            None
        }
        Record::Copy { src, src_offset, dst, dst_offset, len, undo } => {
            if !data.contains(&src) || !data.contains(&dst) {
                return Some(format!("copy {src} -> {dst} outside the data region {data:?}"));
            }
            if src == dst {
                return Some(format!("copy within block {src}"));
            }
            if src_offset as usize + len as usize > bs || dst_offset as usize + len as usize > bs {
                return Some(format!(
                    "copy of {len} bytes at offsets {src_offset}/{dst_offset} overruns a {bs}-byte block"
                ));
            }
            if steal && undo.is_none() {
                return Some("copy without undo bytes in a steal-policy journal".into());
            }
            None
        }
        Record::Bitmap { target: AllocTarget::Block, index, .. } | Record::Revoke { block: index } => {
            (!data.contains(&index)).then(|| format!("block {index} outside the data region {data:?}"))
        }
        Record::Bitmap { target: AllocTarget::Inode, index, .. } | Record::Orphan { ino: index, .. } => (index
            >= layout.geometry.inode_count)
            .then(|| format!("inode {index} beyond the {} inode slots", layout.geometry.inode_count)),
        Record::Commit { .. } | Record::Abort { .. } | Record::Optional { .. } => None,
    }
}

/// The image blocks a record changes (at most one).
pub fn target_block(layout: &Layout, rec: &Record<'_>) -> Option<u64> {
    match *rec {
        Record::Write { block, .. } => Some(block),
        Record::Copy { dst, .. } => Some(dst),
        Record::Bitmap { target, index, .. } => {
            let region = match target {
                AllocTarget::Block => BitRegion::Blocks,
                AllocTarget::Inode => BitRegion::Inodes,
            };
            layout.bit(region, index).map(|p| p.block)
        }
        Record::Orphan { ino, .. } => layout.bit(BitRegion::Orphans, ino).map(|p| p.block),
        _ => None,
    }
}

/// Where recovery starts, and what that start point makes unnecessary, as analysis and redo
/// need it.
///
/// From a **checkpoint record** (`dirty` is its dirty block table): records below `start` (the
/// redo start) are not read; records at or below the checkpoint's LSN of transactions not
/// open then are analysed (their transaction may have begun before `start`, so its record
/// count is not checked) but redone only when their block is in the table with a `rec_lsn` at
/// or below them: otherwise the home copy already holds them.
///
/// From a **snapshot** (`dirty` is `None`): records at or below the snapshot's LSN of
/// transactions not open then are ignored entirely (the restored snapshot holds their
/// effects), as are records below `start` (its `min_lsn`).
#[derive(Debug, Clone, Default)]
pub struct StartFilter {
    /// The checkpoint record or snapshot the start point comes from.
    pub source: std::path::PathBuf,
    /// Its LSN.
    pub lsn: u64,
    /// The first LSN recovery needs.
    pub start: u64,
    /// Transactions open at that LSN.
    pub open: FxHashSet<u64>,
    /// The dirty block table (block to `rec_lsn`) of a checkpoint record; `None` for a
    /// snapshot.
    pub dirty: Option<FxHashMap<u64, u64>>,
}

impl StartFilter {
    /// Whether the record is not analysed at all: below the start, or (snapshot) covered by
    /// the restored image.
    pub fn ignores(&self, txid: u64, lsn: u64) -> bool {
        lsn < self.start || self.dirty.is_none() && lsn <= self.lsn && !self.open.contains(&txid)
    }

    /// Whether the record's transaction may have begun before the start point (checkpoint
    /// record only): it ended by the checkpoint's LSN, and only a suffix of it is read.
    pub fn truncated(&self, txid: u64, lsn: u64) -> bool {
        self.dirty.is_some() && lsn <= self.lsn && !self.open.contains(&txid)
    }

    /// Whether the home copy of `block` already holds this change (checkpoint record only),
    /// so redo need not apply it.
    pub fn home(&self, txid: u64, lsn: u64, block: u64) -> bool {
        match &self.dirty {
            Some(d) => lsn <= self.lsn && !self.open.contains(&txid) && d.get(&block).is_none_or(|&r| lsn < r),
            None => false,
        }
    }
}

/// Builds the transaction table during the first scan.
pub struct Analyzer<'a> {
    layout: &'a Layout,
    start: Option<std::sync::Arc<StartFilter>>,
    journal: &'a Journal,
    mode: RecoveryMode,
    steal: bool,
    txns: FxHashMap<u64, TxnEntry>,
    touched: BlockSet,
    invalid: Vec<InvalidNote>,
    rejected: FxHashSet<u64>,
    counts: RecordCounts,
    /// Analysing one chunk of a parallel scan: end-record counts are checked at merge time,
    /// and any invalid record just marks the chunk as needing the serial path.
    partial: bool,
    partial_failed: bool,
    done: Done,
    /// Ids of the transactions compacted into `done` by a serial analysis, so a record that
    /// comes after its transaction's end is still recognised as a stray.
    finished: FxHashSet<u64>,
    /// Skip-corrupt: LSNs where damage was skipped (see [`note_damage`](Self::note_damage)).
    damage: Vec<u64>,
}

impl RecordCounts {
    fn add(&mut self, o: &RecordCounts) {
        self.writes += o.writes;
        self.full_writes += o.full_writes;
        self.bitmap += o.bitmap;
        self.orphan += o.orphan;
        self.revokes += o.revokes;
        self.copies += o.copies;
        self.commits += o.commits;
        self.aborts += o.aborts;
        self.compensation += o.compensation;
        self.optional += o.optional;
        self.before_start += o.before_start;
    }
}

/// The finished analysis.
pub struct Analysis {
    /// Where recovery started (a checkpoint record or a snapshot), if not at the journal's
    /// beginning.
    pub start: Option<std::sync::Arc<StartFilter>>,
    /// The transaction table (after a parallel scan: without the transactions it resolved
    /// within one chunk, which [`count`](Self::count) still counts).
    pub txns: FxHashMap<u64, TxnEntry>,
    /// Committed transaction ids, in a form redo can test once per record without touching
    /// the (large) table.
    committed: TxnSet,
    /// Committed and aborted transactions a parallel scan resolved within one chunk; they
    /// are not in `txns` (only their effects are, in the maps below).
    done_committed: u64,
    done_aborted: u64,
    /// Journal written under the steal policy.
    pub steal: bool,
    /// Every image block some record changes, plus the bitmaps orphan cleanup reads.
    pub touched: Vec<u64>,
    /// Newest full-block write to each block among the records redo applies.
    pub last_full: BlockTable,
    /// For blocks copies read before their newest full-block write: the newest such read.
    /// Writes at or below it must be replayed even though a full-block write follows.
    pub read_floor: BlockTable,
    /// Newest revoke of each block by a committed transaction.
    pub revoked: BlockTable,
    /// Undoable records of losers, newest first (steal only).
    pub undo: Vec<UndoLoc>,
    /// Skip-corrupt only: transactions left out of the recovered state, as losers are: those
    /// that lost a record to damage or an invalid record, and those without an end; under
    /// steal also the aborted ones (taken out rather than redone with their compensation
    /// records, whose bytes are earlier states that may hold a dropped change). Under steal
    /// redo takes them out as it goes (see [`restore_dropped`](Self::restore_dropped)).
    pub dropped: FxHashSet<u64>,
    /// Skip-corrupt under steal: redo takes the dropped transactions out as it walks history
    /// (see `replay::redo_window`), instead of undoing them after redo: a damaged transaction
    /// may have committed, and later winners may have changed its blocks after its locks were
    /// released.
    pub restore_dropped: bool,
    /// Skip-corrupt under no-steal: the records of dropped transactions (newest first). They
    /// cannot be undone (no-steal records carry no undo images), so the blocks they change
    /// are reported as possibly holding a dropped transaction's flushed changes.
    pub suspects: Vec<(UndoLoc, u64)>,
    /// Skip-corrupt: revokes logged by dropped transactions, as (transaction, block). Not
    /// honoured (a transaction left out freed nothing), but if it did commit, the block may
    /// have been reused without logging, so the report names it.
    pub dropped_revokes: Vec<(u64, u64)>,
    /// Skip-corrupt: (source, destination, LSN) of the copies redo applies. A copy from a
    /// block that may hold a dropped transaction's change carries it to its destination.
    pub copy_edges: Vec<(u64, u64, u64)>,
    /// Records skip-corrupt passed over as invalid.
    pub invalid: Vec<InvalidNote>,
    /// LSNs of those records: redo and undo never apply them.
    pub rejected: FxHashSet<u64>,
    /// Record counts by type.
    pub counts: RecordCounts,
}

impl Analysis {
    /// Whether a change to `block` at `lsn` is made irrelevant by a later full-block write.
    #[inline]
    pub fn superseded(&self, block: u64, lsn: u64) -> bool {
        self.last_full.get(block).is_some_and(|f| lsn < f) && self.read_floor.get(block).is_none_or(|r| lsn > r)
    }

    /// Whether a change to `block` at `lsn` lies below a committed revoke of the block.
    #[inline]
    pub fn revoked_at(&self, block: u64, lsn: u64) -> bool {
        self.revoked.get(block).is_some_and(|r| lsn < r)
    }

    /// Whether redo applies the records of transaction `txid` (records the start point makes
    /// unnecessary never reach redo: see [`home`](Self::home)).
    pub fn redo_applies(&self, txid: u64) -> bool {
        if self.steal {
            // Repeat history: winners, losers and compensation records alike (but not what
            // skip-corrupt drops: it is undone before redo).
            self.dropped.is_empty() || !self.dropped.contains(&txid)
        } else {
            self.committed.contains(txid)
        }
    }

    /// Whether the start point makes this change to `block` unnecessary to redo: a snapshot
    /// holds it, or the checkpoint record says the home copy does.
    pub fn home(&self, txid: u64, lsn: u64, block: u64) -> bool {
        self.start.as_ref().is_some_and(|c| c.ignores(txid, lsn) || c.home(txid, lsn, block))
    }

    /// Whether transaction `txid` committed.
    pub fn is_committed(&self, txid: u64) -> bool {
        self.committed.contains(txid)
    }

    /// Number of transactions with the given outcome.
    pub fn count(&self, outcome: TxnOutcome) -> u64 {
        let done = match outcome {
            TxnOutcome::Committed => self.done_committed,
            TxnOutcome::Aborted => self.done_aborted,
            _ => 0,
        };
        done + self.txns.values().filter(|t| t.outcome == outcome).count() as u64
    }

    /// ALLOC records logged by losers (rolled back under steal, never applied under no-steal).
    pub fn loser_allocs(&self) -> u64 {
        self.txns
            .values()
            .filter(|t| matches!(t.outcome, TxnOutcome::InFlight | TxnOutcome::Damaged))
            .map(|t| u64::from(t.allocs))
            .sum()
    }
}

impl<'a> Analyzer<'a> {
    /// A new, empty analysis for `journal` against `layout`.
    pub fn new(layout: &'a Layout, journal: &'a Journal, mode: RecoveryMode) -> Self {
        Analyzer::with_touched(layout, journal, mode, BlockSet::new(layout.block_count()))
    }

    fn with_touched(layout: &'a Layout, journal: &'a Journal, mode: RecoveryMode, touched: BlockSet) -> Self {
        Analyzer {
            layout,
            start: None,
            journal,
            mode,
            steal: journal.steal(),
            txns: FxHashMap::default(),
            touched,
            invalid: Vec::new(),
            rejected: FxHashSet::default(),
            counts: RecordCounts::default(),
            partial: false,
            partial_failed: false,
            done: Done::default(),
            finished: FxHashSet::default(),
            damage: Vec::new(),
        }
    }

    /// Skip-corrupt: where the scan skipped damage (the LSN the next record would have had).
    /// A transaction that may have begun before the start point has no record count to check,
    /// so one that ends after such a point may have lost a record there unseen (even its first
    /// one read): it counts as damaged.
    pub fn note_damage(&mut self, lsns: impl IntoIterator<Item = u64>) {
        self.damage.extend(lsns);
    }

    /// Starts from `start` (see [`StartFilter`]).
    pub fn with_start(mut self, start: Option<std::sync::Arc<StartFilter>>) -> Self {
        self.start = start;
        self
    }

    /// Whether the start point makes analysis skip the record (counted in `before_start`).
    pub fn ignores(&self, h: &RecordHeader) -> bool {
        self.start.as_ref().is_some_and(|c| c.ignores(h.txid, h.lsn))
    }

    /// Whether the start point makes redo of this change to `block` unnecessary.
    pub fn home(&self, h: &RecordHeader, block: u64) -> bool {
        self.start.as_ref().is_some_and(|c| c.home(h.txid, h.lsn, block))
    }

    /// An analysis of one chunk of the journal, to be merged in order with [`absorb`](Self::absorb).
    pub fn new_partial(layout: &'a Layout, journal: &'a Journal) -> Self {
        // A chunk's analysis keeps no touched set (the parallel scan derives it from its
        // routing entries), so it allocates none.
        let mut a =
            Analyzer::with_touched(layout, journal, RecoveryMode::Absolute, BlockSet::Hash(FxHashSet::default()));
        a.partial = true;
        a
    }

    /// After the last [`absorb`](Self::absorb): false when a transaction id that began and
    /// ended inside one chunk also appears anywhere else (the serial path rejects that).
    pub fn partial_ids_unique(&mut self) -> bool {
        let ids = &mut self.done.ids;
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return false;
        }
        !self.txns.keys().any(|id| ids.binary_search(id).is_ok())
    }

    /// Transactions in the table so far.
    pub fn txn_count(&self) -> usize {
        self.txns.len()
    }

    /// Makes room for `n` transactions in all.
    pub fn reserve_txns(&mut self, n: usize) {
        self.txns.reserve(n.saturating_sub(self.txns.len()));
    }

    /// Adds blocks to the touched set (a parallel scan supplies them after merging).
    pub fn add_touched(&mut self, blocks: impl IntoIterator<Item = u64>) {
        for b in blocks {
            self.touched.insert(b);
        }
    }

    /// Whether a partial analysis met something only the serial path can judge exactly.
    pub fn partial_failed(&self) -> bool {
        self.partial_failed
    }

    /// Appends the analysis of the next chunk (`next` covers the records right after this
    /// one's). Returns false when the merge finds something only the serial path can judge
    /// (a record after its transaction ended, a wrong record count, an invalid record).
    pub fn absorb(&mut self, next: Analyzer<'a>) -> bool {
        if next.partial_failed || self.partial_failed {
            return false;
        }
        self.counts.add(&next.counts);
        let d = &mut self.done;
        d.ids.extend_from_slice(&next.done.ids);
        d.committed.extend_from_slice(&next.done.committed);
        d.aborted += next.done.aborted;
        d.full_writes.extend_from_slice(&next.done.full_writes);
        d.revokes.extend_from_slice(&next.done.revokes);
        d.reads.extend_from_slice(&next.done.reads);
        for (txid, b) in next.txns {
            match self.txns.get_mut(&txid) {
                Some(a) => {
                    if a.outcome != TxnOutcome::InFlight {
                        return false;
                    }
                    a.records += b.records;
                    a.allocs += b.allocs;
                    a.full_writes.extend_from_slice(&b.full_writes);
                    a.revokes.extend_from_slice(&b.revokes);
                    a.reads.extend_from_slice(&b.reads);
                    match b.claimed {
                        Some(claimed) => {
                            if claimed != a.records && !a.truncated {
                                return false;
                            }
                            a.outcome = b.outcome;
                            a.undo = Vec::new();
                        }
                        None => a.undo.extend_from_slice(&b.undo),
                    }
                }
                None => {
                    if b.claimed.is_some_and(|c| c != b.records) && !b.truncated {
                        return false;
                    }
                    self.txns.insert(txid, b);
                }
            }
        }
        true
    }

    /// Refuses a record: an error, or in skip-corrupt mode a skipped record (never replayed)
    /// that makes its transaction a loser when `damages_txn`.
    fn reject(&mut self, ctx: &RecordCtx, h: &RecordHeader, reason: String, damages_txn: bool) -> Result<()> {
        if self.partial {
            self.partial_failed = true;
            return Ok(());
        }
        if self.mode == RecoveryMode::SkipCorrupt {
            if damages_txn {
                self.txns.entry(h.txid).or_insert_with(TxnEntry::new).outcome = TxnOutcome::Damaged;
            }
            self.rejected.insert(h.lsn);
            self.invalid.push(InvalidNote { lsn: h.lsn, txid: h.txid, reason });
            return Ok(());
        }
        Err(Error::InvalidRecord {
            path: self.journal.segments[ctx.segment].path.clone(),
            offset: ctx.start,
            lsn: h.lsn,
            reason,
        })
    }

    /// Takes one record, in LSN order.
    pub fn visit(&mut self, ctx: &RecordCtx, h: &RecordHeader, rec: &Record<'_>) -> Result<()> {
        if self.ignores(h) {
            self.counts.before_start += 1;
            return Ok(());
        }
        let c = &mut self.counts;
        match rec {
            Record::Write { full, .. } => {
                c.writes += 1;
                c.full_writes += u64::from(*full);
            }
            Record::Bitmap { .. } => c.bitmap += 1,
            Record::Orphan { .. } => c.orphan += 1,
            Record::Revoke { .. } => c.revokes += 1,
            Record::Copy { .. } => c.copies += 1,
            Record::Commit { .. } => c.commits += 1,
            Record::Abort { .. } => c.aborts += 1,
            Record::Optional { .. } => {
                c.optional += 1;
                return Ok(());
            }
        }
        c.compensation += u64::from(rec.is_compensation());
        if let Some(reason) = invalid_reason(self.layout, self.steal, rec) {
            return self.reject(ctx, h, reason, true);
        }
        if !self.finished.is_empty() && self.finished.contains(&h.txid) {
            let reason = format!("record of transaction {} after its commit or abort", h.txid);
            return self.reject(ctx, h, reason, false);
        }
        let truncated = self.start.as_ref().is_some_and(|c| c.truncated(h.txid, h.lsn));
        let entry =
            self.txns.entry(h.txid).or_insert_with(|| TxnEntry { truncated, first_seen: h.lsn, ..TxnEntry::new() });
        if matches!(entry.outcome, TxnOutcome::Committed | TxnOutcome::Aborted) {
            // A stray record after the end: skipped; the transaction's outcome stands (its
            // records up to the end matched the count its end record claimed).
            let reason = format!("record of transaction {} after its commit or abort", h.txid);
            return self.reject(ctx, h, reason, false);
        }
        entry.last_seen = h.lsn;
        match *rec {
            Record::Commit { records } | Record::Abort { records } => {
                if entry.outcome == TxnOutcome::Damaged {
                    // Half of it is gone: it stays a loser, whatever its end record says.
                    return Ok(());
                }
                if self.partial {
                    entry.claimed = Some(records);
                } else if records != entry.records && !entry.truncated {
                    let reason = format!(
                        "transaction {} ends claiming {records} records, the journal holds {}",
                        h.txid, entry.records
                    );
                    return self.reject(ctx, h, reason, true);
                }
                entry.outcome =
                    if matches!(rec, Record::Commit { .. }) { TxnOutcome::Committed } else { TxnOutcome::Aborted };
                // Only losers are undone; a finished transaction's locations are not needed
                // (skip-corrupt keeps them: damage may yet make it a transaction to drop).
                if self.mode != RecoveryMode::SkipCorrupt {
                    entry.undo = Vec::new();
                }
                // Skip-corrupt keeps finished transactions whole: an invalid record that comes
                // later still damages the transaction it names.
                let compact = self.partial || self.mode != RecoveryMode::SkipCorrupt;
                if compact && entry.records == records && !entry.truncated {
                    // Begun and ended here (in a valid journal; a duplicate id elsewhere is
                    // caught when chunks merge, or by `finished` serially): keep only what
                    // `finish` needs.
                    if !self.partial {
                        self.finished.insert(h.txid);
                    }
                    if let Some(t) = self.txns.remove(&h.txid) {
                        let committed = t.outcome == TxnOutcome::Committed;
                        let d = &mut self.done;
                        d.ids.push(h.txid);
                        if committed {
                            d.committed.push(h.txid);
                            d.revokes.extend_from_slice(&t.revokes);
                        } else {
                            d.aborted += 1;
                        }
                        if committed || self.steal {
                            d.full_writes.extend_from_slice(&t.full_writes);
                            d.reads.extend_from_slice(&t.reads);
                        }
                    }
                }
                return Ok(());
            }
            Record::Revoke { block } => entry.revokes.push((block, h.lsn)),
            Record::Copy { src, dst, .. } => {
                entry.reads.push((src, UndoLoc { lsn: h.lsn, segment: ctx.segment as u32, start: ctx.start }));
                if self.mode == RecoveryMode::SkipCorrupt {
                    entry.copies.push((src, dst, h.lsn));
                }
                if !self.partial {
                    self.touched.insert(src);
                }
            }
            Record::Write { block, full, .. } if full => entry.full_writes.push((block, h.lsn)),
            Record::Bitmap { set: true, compensation: false, .. } => entry.allocs += 1,
            _ => {}
        }
        entry.records += 1;
        if (self.steal || self.mode == RecoveryMode::SkipCorrupt)
            && !rec.is_compensation()
            && !matches!(rec, Record::Revoke { .. })
        {
            entry.undo.push(UndoLoc { lsn: h.lsn, segment: ctx.segment as u32, start: ctx.start });
        }
        // A parallel scan derives the touched set from its routing entries, only when needed.
        if !self.partial {
            if let Some(b) = target_block(self.layout, rec) {
                self.touched.insert(b);
            }
        }
        Ok(())
    }

    /// Finishes the table: decides what redo skips and what undo restores.
    ///
    /// Fails when a copy reads a block at an LSN below a committed revoke of that block: redo
    /// cannot reconstruct the source's content there (its earlier writes are not replayed).
    pub fn finish(self) -> Result<Analysis> {
        let steal = self.steal;
        let blocks = self.layout.block_count();
        let mut last_full = BlockTable::new(blocks);
        let mut revoked = BlockTable::new(blocks);
        let mut reads: Vec<(u64, UndoLoc)> = Vec::new();
        let skip_corrupt = self.mode == RecoveryMode::SkipCorrupt;
        let mut txns = self.txns;
        if skip_corrupt {
            for t in txns.values_mut() {
                if t.truncated && t.outcome != TxnOutcome::Damaged && self.damage.iter().any(|&d| d <= t.last_seen) {
                    t.outcome = TxnOutcome::Damaged;
                }
            }
        }
        let mut undo = Vec::new();
        // Skip-corrupt drops such a transaction instead (damage may have taken its end).
        if let Some(start) = self.start.as_ref().filter(|_| !skip_corrupt) {
            let unfinished = txns
                .iter()
                .filter(|(_, t)| t.truncated && !matches!(t.outcome, TxnOutcome::Committed | TxnOutcome::Aborted))
                .min_by_key(|(_, t)| t.first_seen);
            if let Some((id, t)) = unfinished {
                return Err(Error::Checkpoint {
                    path: start.source.clone(),
                    offset: None,
                    reason: format!(
                        "transaction {id} logged LSN {} at or before the checkpoint's LSN {} but is not among its \
                         open transactions, and the journal holds no end for it by then: the journal lost records \
                         the checkpoint saw durable, or the record is wrong",
                        t.first_seen, start.lsn
                    ),
                });
            }
        }
        // Under steal, aborted transactions are undone first too, rather than redone with their
        // compensation records: a compensation record's bytes are an earlier state of the
        // block, which may hold a dropped transaction's change.
        let dropped: FxHashSet<u64> = if skip_corrupt {
            txns.iter()
                .filter(|(_, t)| {
                    matches!(t.outcome, TxnOutcome::InFlight | TxnOutcome::Damaged)
                        || steal && t.outcome == TxnOutcome::Aborted
                })
                .map(|(&id, _)| id)
                .collect()
        } else {
            FxHashSet::default()
        };
        let mut suspects = Vec::new();
        let mut dropped_revokes = Vec::new();
        let mut copy_edges = Vec::new();
        for (&id, t) in &txns {
            if dropped.contains(&id) {
                dropped_revokes.extend(t.revokes.iter().map(|&(b, _)| (id, b)));
            } else if t.outcome == TxnOutcome::Committed || steal {
                copy_edges.extend_from_slice(&t.copies);
            }
            let redone = t.outcome == TxnOutcome::Committed || steal && !dropped.contains(&id);
            if redone {
                for &(b, lsn) in &t.full_writes {
                    last_full.raise(b, lsn);
                }
                reads.extend_from_slice(&t.reads);
            }
            // jbd2 honours only revokes of committed transactions: a loser never freed the
            // block, so nobody can have reused it.
            if t.outcome == TxnOutcome::Committed {
                for &(b, lsn) in &t.revokes {
                    revoked.raise(b, lsn);
                }
            }
            if matches!(t.outcome, TxnOutcome::InFlight | TxnOutcome::Damaged) || dropped.contains(&id) {
                if steal {
                    undo.extend_from_slice(&t.undo);
                } else if skip_corrupt {
                    suspects.extend(t.undo.iter().map(|&u| (u, t.first_seen)));
                }
            }
        }
        suspects.sort_unstable_by_key(|(u, _)| std::cmp::Reverse(u.lsn));
        let done = self.done;
        for &(b, lsn) in &done.full_writes {
            last_full.raise(b, lsn);
        }
        for &(b, lsn) in &done.revokes {
            revoked.raise(b, lsn);
        }
        reads.extend_from_slice(&done.reads);
        undo.sort_unstable_by_key(|u| std::cmp::Reverse(u.lsn));
        // A copy reads its source as of its LSN, so a full-block write may only make earlier
        // writes of that block irrelevant when no copy reads the block in between.
        let mut read_floor = BlockTable::new(blocks);
        for &(src, loc) in &reads {
            if let Some(r) = revoked.get(src) {
                if loc.lsn < r {
                    return Err(Error::InvalidRecord {
                        path: self.journal.segments[loc.segment as usize].path.clone(),
                        offset: loc.start,
                        lsn: loc.lsn,
                        reason: format!("copy reads block {src}, which a committed transaction revokes later (LSN {r}): its content here cannot be replayed"),
                    });
                }
            }
            if last_full.get(src).is_some_and(|f| loc.lsn < f) {
                read_floor.raise(src, loc.lsn);
            }
        }
        let mut touched = self.touched;
        // Orphan cleanup reads the whole orphan bitmap and may clear inode bits anywhere.
        for b in self.layout.orphan_bitmap.clone().chain(self.layout.inode_bitmap.clone()) {
            touched.insert(b);
        }
        let touched = touched.sorted();
        let committed_ids = txns
            .iter()
            .filter(|(_, t)| t.outcome == TxnOutcome::Committed)
            .map(|(id, _)| *id)
            .chain(done.committed.iter().copied());
        let committed = TxnSet::build(committed_ids.clone(), committed_ids.count());
        Ok(Analysis {
            start: self.start,
            committed,
            done_committed: done.committed.len() as u64,
            done_aborted: done.aborted,
            txns,
            steal,
            touched,
            last_full,
            read_floor,
            revoked,
            restore_dropped: skip_corrupt && steal,
            undo,
            dropped,
            suspects,
            dropped_revokes,
            copy_edges,
            invalid: self.invalid,
            rejected: self.rejected,
            counts: self.counts,
        })
    }
}
