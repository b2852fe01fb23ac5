//! Seeded crash-state generator for fastrec, with an independent oracle.
//!
//! A *crash state* is a directory that looks like the moment after a crash of a transactional
//! writer: an image file, a journal, and files describing what recovery must produce.
//!
//! ```text
//! GenParams (or Preset::params(seed))
//!     |
//!     v
//! generate::generate ---------------------------------------------+
//!   simulated writer: interleaved transactions under strict 2PL,   |
//!   group commit (syncs), buffer-pool flushes under the no-steal   |
//!   or steal policy, aborts (with compensation records under       |
//!   steal), frees with revokes and unlogged reuse, COPY records    |
//!   (cross-block dependencies), a crash tail                       |
//!     |                          |                       |         |
//!     v                          v                       v         v
//! DIR/journal/seg-*.wal     DIR/image.img           oracle::Oracle  DIR/manifest.json
//! (recovery::format::writer (base + flushes +       (committed state,   (params, summary,
//!  shaped by crash kind)     unlogged writes)        orphan cleanup)     HardCases)
//!                                                        |
//!                                                        v
//!                                    DIR/expected.digests, DIR/expected.json (digest module)
//! ```
//!
//! - [`params`]: [`GenParams`] and its enums ([`Policy`], [`CrashKind`], [`AddressDist`],
//!   [`OpMix`]) and the named [`Preset`]s.
//! - [`mod@generate`]: the simulated writer ([`generate()`]); returns a [`GenSummary`] with
//!   the [`HardCases`] it produced on purpose (aborted-then-overwritten flushed changes, losers' changes in the
//!   image, a hot block written by many transactions, a transaction straddling the crash,
//!   committed changes flushed and not, unlogged writes after revokes, orphans, copies reading
//!   logged changes of their source).
//! - [`oracle`]: the expected-image model. It applies exactly the transactions whose commit
//!   survives the crash, in commit order (a copy reads its source from the oracle's own image at
//!   its place in that order), then orphan cleanup. It never uses the engine's
//!   decoder or replay code, so the engine is checked against something independent.
//! - [`digest`]: per-block xxh3 digests, the expected files, and [`digest::verify_dir`],
//!   which compares a (recovered) image with them.
//! - [`mod@corrupt`]: seeded bit flips in a crash directory's journal or image, for bad-input tests.
//! - [`rng`]: the pinned xoshiro256** generator every choice comes from: a seed reproduces the
//!   same bytes forever.
//!
//! ```
//! use workloads::{generate, digest::verify_dir, Preset};
//!
//! let dir = tempfile::tempdir()?;
//! let summary = generate(dir.path(), &Preset::Small.params(7))?;
//! assert!(summary.hard_cases.max_txns_per_block >= 8);
//! // The crash image is not yet the expected image: that is recovery's job.
//! assert!(!verify_dir(dir.path())?.matches);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod corrupt;
mod crash;
pub mod digest;
pub mod dist;
pub mod error;
pub mod generate;
pub mod jbd2gen;
pub mod oracle;
pub mod params;
pub mod rng;

pub use corrupt::{corrupt, CorruptTarget, Flip};
pub use digest::{verify_dir, VerifyOutcome};
pub use error::GenError;
pub use generate::{
    generate, generate_with_expected_image, run_live, run_traced, GenSummary, HardCases, LiveSummary, Trace,
    TraceEvent, Traced,
};
pub use params::{
    AddressDist, Cadence, CheckpointPlan, CheckpointStyle, CrashKind, GenParams, OpMix, Policy, Preset, SnapshotPlan,
    Writeback,
};
