//! Generation parameters, their enums, and the named presets.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::GenError;

/// Largest number of transactions a generation accepts.
pub const TXNS_MAX: u64 = 100_000_000;

/// How write operations pick their target data block.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum AddressDist {
    /// Every data block equally likely. The default.
    Uniform,
    /// Zipf over a fixed pseudo-random permutation of the data blocks: rank `k` (from 1) has
    /// weight `1 / k^skew`. `skew` must be positive; 1.1 is strongly skewed.
    Zipf {
        /// The exponent.
        skew: f64,
    },
    /// Consecutive data blocks, wrapping at the end of the image.
    Sequential,
    /// A hot set of `fraction` of the data blocks receives `probability` of the writes; the
    /// rest are uniform over all data blocks.
    HotSet {
        /// Share of data blocks in the hot set, in `(0, 1]`.
        fraction: f64,
        /// Probability that a write goes to the hot set, in `[0, 1]`.
        probability: f64,
    },
}

/// The buffer policy the simulated writer follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// The image only ever holds committed changes; records carry no undo bytes. The default.
    NoSteal,
    /// Uncommitted changes may reach the image (after their records are durable); writes carry
    /// undo bytes and aborts log compensation records.
    Steal,
}

impl Policy {
    /// Both policies.
    pub const ALL: [Policy; 2] = [Policy::NoSteal, Policy::Steal];

    /// The kebab-case name (`no-steal`, `steal`).
    pub fn name(self) -> &'static str {
        match self {
            Policy::NoSteal => "no-steal",
            Policy::Steal => "steal",
        }
    }
}

/// How the journal's tail looks at the crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CrashKind {
    /// Everything written survives; the tail counts as synced.
    Clean,
    /// The journal is cut at a record boundary inside the straddling transaction's tail.
    Cut,
    /// The crash position is inside a record; the rest of that journal block (at least a few
    /// hundred bytes) holds stale fragments of another salt mixed with random bytes. The
    /// default.
    Torn,
    /// Cut at a record boundary, followed by some KiB of zeros.
    ZeroTail,
    /// Cut at a record boundary, followed by some KiB of random bytes.
    GarbageTail,
}

impl CrashKind {
    /// Every crash kind.
    pub const ALL: [CrashKind; 5] =
        [CrashKind::Clean, CrashKind::Cut, CrashKind::Torn, CrashKind::ZeroTail, CrashKind::GarbageTail];

    /// The kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            CrashKind::Clean => "clean",
            CrashKind::Cut => "cut",
            CrashKind::Torn => "torn",
            CrashKind::ZeroTail => "zero-tail",
            CrashKind::GarbageTail => "garbage-tail",
        }
    }
}

/// Named parameter sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// 1024-block image of 2 KiB blocks, about 200 transactions, a 1-3 MiB journal in several
    /// small segments (16 blocks of 32 KiB); milliseconds to generate. What the tests use.
    Small,
    /// 64 MiB image (16384 blocks of 4 KiB), a journal of about 250-300 MiB.
    Default,
    /// 256 MiB image (65536 blocks), several GiB of journal. Benchmarks only.
    Large,
    /// Like `Default` with Zipf(1.1) addresses and about a third of its journal.
    Skewed,
    /// Like `Default` under the steal policy, with about a third of its journal.
    Steal,
    /// Per-record work dominates: 16384 blocks of 4 KiB, many small partial writes (16-256
    /// bytes), no full-block writes, a fifth of the writes COPY records (16-256 bytes, reach
    /// 64); a journal of about 125 MiB (about a million records). Nearly every block becomes a
    /// copy source early, and without checkpoints a copy source is never written back after a
    /// later change, so the crash image stays close to the base image and recovery replays
    /// nearly every record.
    CpuBound,
    /// Bytes dominate: 16384 blocks of 4 KiB, full-block writes only, no COPY records; a
    /// journal of about 250 MiB.
    MemoryBound,
    /// The shape of a physical journal such as jbd2's: per-record work as in `cpu-bound`
    /// (small partial writes, about a million records) but no COPY records and no bitmap or
    /// orphan-list operations, so no record depends on another block and no single block
    /// collects a large share of the changes. What parallel replay scales best on.
    Physical,
    /// Like `Small` with 30% of the writes COPY records from nearby blocks (reach 8):
    /// cross-block dependencies, quick to generate. For tests.
    Deps,
}

impl Preset {
    /// Every preset.
    pub const ALL: [Preset; 9] = [
        Preset::Small,
        Preset::Default,
        Preset::Large,
        Preset::Skewed,
        Preset::Steal,
        Preset::CpuBound,
        Preset::MemoryBound,
        Preset::Physical,
        Preset::Deps,
    ];

    /// The kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Small => "small",
            Preset::Default => "default",
            Preset::Large => "large",
            Preset::Skewed => "skewed",
            Preset::Steal => "steal",
            Preset::CpuBound => "cpu-bound",
            Preset::MemoryBound => "memory-bound",
            Preset::Physical => "physical",
            Preset::Deps => "deps",
        }
    }

    /// The parameters of this preset with `seed`.
    pub fn params(self, seed: u64) -> GenParams {
        let base = GenParams { seed, preset: Some(self), ..GenParams::default() };
        match self {
            Preset::Default => base,
            Preset::Small => small(base),
            Preset::Deps => GenParams { deps_rate: 0.3, deps_reach: 8, ..small(base) },
            Preset::Large => GenParams { txns: 288_000, block_count: 65_536, inode_count: 65_536, ..base },
            Preset::Skewed => GenParams { txns: 8_000, address: AddressDist::Zipf { skew: 1.1 }, ..base },
            // Steal records carry undo bytes too, so a third of the bytes takes a sixth of the
            // transactions.
            Preset::Steal => GenParams { txns: 4_000, policy: Policy::Steal, ..base },
            Preset::CpuBound => GenParams {
                txns: CPU_BOUND_TXNS,
                full_block_fraction: 0.0,
                partial_len: (16, 256),
                deps_rate: 0.2,
                copy_len: (16, 256),
                ..base
            },
            Preset::MemoryBound => {
                GenParams { txns: MEMORY_BOUND_TXNS, full_block_fraction: 1.0, deps_rate: 0.0, ..base }
            }
            Preset::Physical => GenParams {
                txns: CPU_BOUND_TXNS,
                full_block_fraction: 0.0,
                partial_len: (16, 256),
                deps_rate: 0.0,
                mix: OpMix { write: 100, bitmap: 0, orphan: 0 },
                ..base
            },
        }
    }
}

/// Transactions of the `cpu-bound` preset (about 0.85 KiB of journal each: about 125 MiB).
const CPU_BOUND_TXNS: u64 = 150_000;
/// Transactions of the `memory-bound` preset (about 19.5 KiB of journal each: about 250 MiB).
const MEMORY_BOUND_TXNS: u64 = 13_000;

/// The `small` shape over `base`. 2 KiB image blocks halve the hashing and filling a
/// generation costs, which keeps it well under 100 ms in debug builds.
fn small(base: GenParams) -> GenParams {
    GenParams {
        txns: 200,
        block_size: 2048,
        partial_len: (16, 1024),
        block_count: 1024,
        inode_count: 1024,
        segment_blocks: 16,
        ..base
    }
}

/// Relative weights of the kinds of operation a transaction performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpMix {
    /// Physical writes to data blocks. Default 80.
    pub write: u32,
    /// ALLOC/FREE of a block or inode bit (a data-block FREE is followed by a REVOKE).
    /// Default 15.
    pub bitmap: u32,
    /// Orphan-list add/remove. Default 5.
    pub orphan: u32,
}

impl Default for OpMix {
    fn default() -> Self {
        OpMix { write: 80, bitmap: 15, orphan: 5 }
    }
}

/// Everything a crash state is generated from. Same parameters, same bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GenParams {
    /// The preset these parameters came from, if any (recorded in the manifest). Default none.
    pub preset: Option<Preset>,
    /// The seed every random choice derives from. Default 0.
    pub seed: u64,
    /// Randomly shaped transactions to run before the crash phase (a few scripted hard-case
    /// transactions come on top). Default 24,000; minimum 1.
    pub txns: u64,
    /// Inclusive range of operations per transaction. Default (3, 9); the minimum must be at
    /// least 1 and at most the maximum.
    pub ops_per_txn: (u32, u32),
    /// Share of writes that cover a whole block. Default 0.5.
    pub full_block_fraction: f64,
    /// Inclusive range of partial-write lengths in bytes. Default (16, 2048); clamped to the
    /// block size; the minimum must be at least 1.
    pub partial_len: (u32, u32),
    /// Address distribution of writes. Default uniform.
    pub address: AddressDist,
    /// Transactions open at once. Default 8; minimum 1.
    pub interleave: u32,
    /// Probability that a finished transaction aborts instead of committing. Default 0.05.
    pub abort_rate: f64,
    /// Transactions still open (losers) at the crash, besides the straddling and (steal)
    /// mid-abort ones. Default 3.
    pub inflight: u32,
    /// Buffer policy. Default no-steal.
    pub policy: Policy,
    /// Shape of the journal tail at the crash. Default torn.
    pub crash: CrashKind,
    /// The background writer's pace: dirty blocks written back per operation step, on
    /// average (the whole part every step, the fraction as a probability), when write-ahead
    /// logging and the copy rule allow. Default 0.5 (a step changes at most one data block, so
    /// the pool absorbs repeated changes to dirty blocks and stays well short of catching up:
    /// on the `default` preset about a fifth of the image is dirty, and the oldest change not
    /// yet home lags about a third of a default checkpoint interval); at most 64.
    pub flush_rate: f64,
    /// Which dirty blocks the background writer writes back first. Default oldest (by the
    /// LSN of their oldest change not yet home).
    pub writeback: Writeback,
    /// Commits per journal sync (group commit). Default 1; minimum 1.
    pub sync_every: u32,
    /// Image block size in bytes (power of two, 512..=65536). Default 4096.
    pub block_size: u32,
    /// Image blocks, metadata included. Default 16,384 (64 MiB).
    pub block_count: u64,
    /// Inode slots. Default 16,384.
    pub inode_count: u64,
    /// Journal block size in bytes (power of two, 4 KiB..1 MiB). Default 32 KiB.
    pub journal_block_size: u32,
    /// Data blocks per journal segment. Default 512 (16 MiB segments).
    pub segment_blocks: u64,
    /// Relative weights of the operation kinds. Default 80/15/5.
    pub mix: OpMix,
    /// Probability, per operation step, of an unlogged full-block write to a block whose
    /// revoke has a durable commit (jbd2-style reuse). Default 0.05.
    pub unlogged_write_rate: f64,
    /// Share of write operations that are COPY records (a logical copy of a byte range from
    /// another data block, read as it is at that point of the transaction) instead of physical
    /// writes, in `[0, 1]`. Default 0.0: no copies, and the same bytes as before copies
    /// existed.
    pub deps_rate: f64,
    /// How far a copy's source is from its destination in block numbers: `dst +/- (1..=reach)`,
    /// wrapped into the data region. Default 64; minimum 1.
    pub deps_reach: u64,
    /// Inclusive range of copy lengths in bytes. Default (16, 512); clamped to the block size;
    /// the minimum must be at least 1 and at most the maximum.
    pub copy_len: (u32, u32),
    /// Checkpoint records the simulated system writes as it runs. Default none.
    pub checkpoints: Option<CheckpointPlan>,
    /// Snapshots (image backups) the simulated system writes as it runs. Default none.
    pub snapshots: Option<SnapshotPlan>,
    /// Write the image file as the simulated system runs (each write-back a positioned write,
    /// each sharp checkpoint an fdatasync), so the summary can time what checkpoints cost the
    /// writer. Default false: the image is written once at the crash (same bytes, faster).
    pub real_image_io: bool,
    /// Transactions the oracle leaves out, as skip-corrupt recovery does when damage takes one
    /// of their records (tests inject that damage after generating). The journal and image are
    /// the same as without; only the expected image changes. Default none.
    pub exclude_txns: Vec<u64>,
}

/// Which dirty blocks the background writer writes back first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Writeback {
    /// The block whose oldest change not yet home is oldest (age-based): keeps the
    /// checkpoints' redo start moving. The default.
    #[default]
    Oldest,
    /// A random dirty block.
    Random,
}

impl Writeback {
    /// Both orders.
    pub const ALL: [Writeback; 2] = [Writeback::Oldest, Writeback::Random];

    /// The kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            Writeback::Oldest => "oldest",
            Writeback::Random => "random",
        }
    }
}

/// When a checkpoint is due.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cadence {
    /// Every N finished (committed or aborted) transactions.
    Txns(u64),
    /// Every N bytes of journal written.
    Bytes(u64),
    /// Every `secs` of simulated time, the system finishing `txns_per_sec` transactions a
    /// second.
    Interval {
        /// Seconds between checkpoints.
        secs: f64,
        /// Simulated transaction rate.
        txns_per_sec: f64,
    },
}

impl Cadence {
    /// The default: every 5 minutes at 10 transactions a second (3,000 transactions).
    pub const DEFAULT: Cadence = Cadence::Interval { secs: 300.0, txns_per_sec: 10.0 };
}

impl Default for Cadence {
    fn default() -> Self {
        Cadence::DEFAULT
    }
}

impl std::str::FromStr for Cadence {
    type Err = GenError;
    /// `3000` or `3000txns` (transactions), `64MiB`/`64M`/`65536B` (journal bytes), or `5min`
    /// / `300s` (simulated time at 10 transactions a second), optionally `@RATE` (e.g.
    /// `5min@20`).
    fn from_str(s: &str) -> Result<Self, GenError> {
        let bad = || GenError::Params { what: "checkpoint cadence", value: s.to_string() };
        let (body, rate) = match s.split_once('@') {
            Some((b, r)) => (b, Some(r.parse::<f64>().map_err(|_| bad())?)),
            None => (s, None),
        };
        let num = |t: &str| t.trim().parse::<f64>().map_err(|_| bad());
        let time = |secs: f64| Cadence::Interval { secs, txns_per_sec: rate.unwrap_or(10.0) };
        let c = if let Some(t) = body.strip_suffix("min") {
            time(num(t)? * 60.0)
        } else if let Some(t) = body.strip_suffix('s').filter(|t| !t.ends_with("txn")) {
            time(num(t)?)
        } else if let Some(t) = body.strip_suffix("MiB").or_else(|| body.strip_suffix('M')) {
            Cadence::Bytes((num(t)? * (1u64 << 20) as f64) as u64)
        } else if let Some(t) = body.strip_suffix("KiB").or_else(|| body.strip_suffix('K')) {
            Cadence::Bytes((num(t)? * 1024.0) as u64)
        } else if let Some(t) = body.strip_suffix('B') {
            Cadence::Bytes(num(t)? as u64)
        } else {
            Cadence::Txns(num(body.strip_suffix("txns").unwrap_or(body))? as u64)
        };
        Ok(c)
    }
}

/// How the simulated system takes its checkpoints (see `recovery::checkpoint`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckpointStyle {
    /// Sharp: write back every dirty block, sync the image, then the record.
    Full,
    /// Fuzzy: no forced write-back; the record carries the dirty block table.
    Incremental,
    /// The metadata region written back sharply, data blocks fuzzy.
    Metadata,
    /// Sharp, as fast as the disk allows (written back in block order, one sync).
    Emergency,
}

impl CheckpointStyle {
    /// Every style.
    pub const ALL: [CheckpointStyle; 4] =
        [CheckpointStyle::Full, CheckpointStyle::Incremental, CheckpointStyle::Metadata, CheckpointStyle::Emergency];

    /// The kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            CheckpointStyle::Full => "full",
            CheckpointStyle::Incremental => "incremental",
            CheckpointStyle::Metadata => "metadata",
            CheckpointStyle::Emergency => "emergency",
        }
    }

    /// The record kind this style writes.
    pub fn kind(self) -> recovery::checkpoint::CheckpointKind {
        use recovery::checkpoint::CheckpointKind as K;
        match self {
            CheckpointStyle::Full => K::Full,
            CheckpointStyle::Incremental => K::Incremental,
            CheckpointStyle::Metadata => K::Metadata,
            CheckpointStyle::Emergency => K::Emergency,
        }
    }
}

/// How the simulated system checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CheckpointPlan {
    /// When. Default every 5 simulated minutes at 10 transactions a second.
    pub every: Cadence,
    /// How. Default incremental (fuzzy).
    pub style: CheckpointStyle,
    /// Records kept (older ones are removed). Default 64.
    pub retain: usize,
    /// The crash comes in the middle of the next checkpoint: its write-back half done (sharp
    /// styles) and its record half-written in a temporary file. Default true.
    pub torn_at_crash: bool,
}

impl Default for CheckpointPlan {
    fn default() -> Self {
        CheckpointPlan {
            every: Cadence::DEFAULT,
            style: CheckpointStyle::Incremental,
            retain: recovery::checkpoint::RETAIN_DEFAULT,
            torn_at_crash: true,
        }
    }
}

/// How the simulated system takes snapshots (image backups; see `recovery::snapshot`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SnapshotPlan {
    /// When. Default every 5 simulated minutes at 10 transactions a second.
    pub every: Cadence,
    /// A full snapshot every `full_every`, incrementals between (1: every one full). Default
    /// 8; minimum 1.
    pub full_every: u32,
    /// Compression. Default zstd.
    pub compression: recovery::snapshot::Compression,
    /// Snapshots kept (older ones are pruned, never breaking a kept chain). Default 64.
    pub retain: usize,
}

impl Default for SnapshotPlan {
    fn default() -> Self {
        SnapshotPlan {
            every: Cadence::DEFAULT,
            full_every: 8,
            compression: recovery::snapshot::Compression::Zstd,
            retain: recovery::snapshot::RETAIN_DEFAULT,
        }
    }
}

fn cadence_ok(c: &Cadence) -> bool {
    match *c {
        Cadence::Txns(n) | Cadence::Bytes(n) => n > 0,
        Cadence::Interval { secs, txns_per_sec } => {
            secs > 0.0 && txns_per_sec > 0.0 && (secs * txns_per_sec).is_finite() && secs * txns_per_sec >= 1.0
        }
    }
}

impl Default for GenParams {
    fn default() -> Self {
        GenParams {
            preset: None,
            seed: 0,
            txns: 24_000,
            ops_per_txn: (3, 9),
            full_block_fraction: 0.5,
            partial_len: (16, 2048),
            address: AddressDist::Uniform,
            interleave: 8,
            abort_rate: 0.05,
            inflight: 3,
            policy: Policy::NoSteal,
            crash: CrashKind::Torn,
            flush_rate: 0.5,
            writeback: Writeback::default(),
            sync_every: 1,
            block_size: 4096,
            block_count: 16_384,
            inode_count: 16_384,
            journal_block_size: 32_768,
            segment_blocks: 512,
            mix: OpMix::default(),
            unlogged_write_rate: 0.05,
            deps_rate: 0.0,
            deps_reach: 64,
            copy_len: (16, 512),
            checkpoints: None,
            snapshots: None,
            real_image_io: false,
            exclude_txns: Vec::new(),
        }
    }
}

impl GenParams {
    /// Checks the documented limits.
    pub fn validate(&self) -> Result<(), GenError> {
        let bad = |what: &'static str, value: String| Err(GenError::Params { what, value });
        let unit = |p: f64| (0.0..=1.0).contains(&p);
        // The upper bound keeps a typo from filling the disk: 100 million transactions is
        // tens of GiB of journal with the presets' shapes.
        if self.txns == 0 || self.txns > TXNS_MAX {
            return bad("txns", self.txns.to_string());
        }
        if self.ops_per_txn.0 == 0 || self.ops_per_txn.0 > self.ops_per_txn.1 {
            return bad("ops_per_txn", format!("{:?}", self.ops_per_txn));
        }
        if self.partial_len.0 == 0 || self.partial_len.0 > self.partial_len.1 {
            return bad("partial_len", format!("{:?}", self.partial_len));
        }
        if self.copy_len.0 == 0 || self.copy_len.0 > self.copy_len.1 {
            return bad("copy_len", format!("{:?}", self.copy_len));
        }
        if self.deps_reach == 0 {
            return bad("deps_reach", self.deps_reach.to_string());
        }
        if let Some(c) = &self.checkpoints {
            if !cadence_ok(&c.every) {
                return bad("checkpoints.every", format!("{:?}", c.every));
            }
            if c.retain == 0 {
                return bad("checkpoints.retain", c.retain.to_string());
            }
        }
        if let Some(c) = &self.snapshots {
            if !cadence_ok(&c.every) {
                return bad("snapshots.every", format!("{:?}", c.every));
            }
            if c.full_every == 0 || c.retain == 0 {
                return bad("snapshots", format!("full_every {} retain {}", c.full_every, c.retain));
            }
        }
        if !(0.0..=64.0).contains(&self.flush_rate) {
            return bad("flush_rate", self.flush_rate.to_string());
        }
        for (what, p) in [
            ("full_block_fraction", self.full_block_fraction),
            ("deps_rate", self.deps_rate),
            ("abort_rate", self.abort_rate),
            ("unlogged_write_rate", self.unlogged_write_rate),
        ] {
            if !unit(p) {
                return bad(what, p.to_string());
            }
        }
        match self.address {
            AddressDist::Zipf { skew } if !(skew > 0.0 && skew.is_finite()) => {
                return bad("address.skew", skew.to_string())
            }
            AddressDist::HotSet { fraction, probability }
                if !(fraction > 0.0 && fraction <= 1.0 && unit(probability)) =>
            {
                return bad("address.hot-set", format!("{fraction}/{probability}"))
            }
            _ => {}
        }
        if self.interleave == 0 {
            return bad("interleave", self.interleave.to_string());
        }
        if self.sync_every == 0 {
            return bad("sync_every", self.sync_every.to_string());
        }
        if u64::from(self.mix.write) + u64::from(self.mix.bitmap) + u64::from(self.mix.orphan) == 0 {
            return bad("mix", format!("{:?}", self.mix));
        }
        Ok(())
    }
}

macro_rules! kebab_enum {
    ($t:ty, $what:literal) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
        impl FromStr for $t {
            type Err = GenError;
            fn from_str(s: &str) -> Result<Self, GenError> {
                <$t>::ALL
                    .into_iter()
                    .find(|v| v.name() == s)
                    .ok_or_else(|| GenError::Params { what: $what, value: s.to_string() })
            }
        }
    };
}

kebab_enum!(Policy, "policy");
kebab_enum!(CrashKind, "crash");
kebab_enum!(Preset, "preset");
kebab_enum!(Writeback, "writeback");
kebab_enum!(CheckpointStyle, "checkpoint type");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_roundtrip() {
        for k in CrashKind::ALL {
            assert_eq!(k.to_string().parse::<CrashKind>().expect("parse"), k);
        }
        for p in Policy::ALL {
            assert_eq!(p.to_string().parse::<Policy>().expect("parse"), p);
        }
        for p in Preset::ALL {
            assert_eq!(p.to_string().parse::<Preset>().expect("parse"), p);
            p.params(1).validate().expect("preset validates");
        }
        assert!("zero_tail".parse::<CrashKind>().is_err());
        assert_eq!(serde_json::to_string(&CrashKind::GarbageTail).expect("json"), "\"garbage-tail\"");
    }

    #[test]
    fn params_roundtrip_through_json() {
        let p =
            GenParams { address: AddressDist::HotSet { fraction: 0.1, probability: 0.9 }, ..Preset::Small.params(3) };
        let json = serde_json::to_string(&p).expect("json");
        let back: GenParams = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, p);
        let partial: GenParams = serde_json::from_str("{\"seed\": 5}").expect("defaults fill in");
        assert_eq!(partial, GenParams { seed: 5, ..GenParams::default() });
    }
}
