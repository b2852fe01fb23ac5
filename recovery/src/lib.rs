//! fastrec's recovery engine: turns a crashed image and its write-ahead journal into exactly
//! the committed state.
//!
//! Data flows through these modules, in order:
//!
//! - [`format`]: the on-disk journal format (segments, fragments, records) and its writer.
//! - [`image`]: the home location's layout (superblock, bitmaps, orphan list, data).
//! - [`journal`]: locating and validating segments; the single seam for reading them.
//! - [`io`]: the read backends behind that seam (read, pread, mmap, direct) and page-cache
//!   control for experiments.
//! - [`scan`]: walking records in LSN order, finding the durable end, applying the
//!   [`RecoveryMode`] to damage.
//! - [`analysis`]: the transaction table (winners, aborted, losers) and what redo may skip.
//! - [`replay`]: redo, undo and orphan cleanup over a windowed block cache, then write-back.
//! - [`progress`]: live progress (phases, rates, ETAs), cancellation, and the report's
//!   statistics.
//! - [`checkpoint`]: checkpoint records (how far the home image is durable, with the dirty
//!   block table), so recovery reads and replays only the journal after a point.
//! - [`snapshot`]: compressed copies of the image, a backup that rebuilds a lost image with
//!   the journal after it.
//! - [`recover`]: the pipeline that ties them together under an exclusive lock, and the
//!   [`RecoveryReport`].
//!
//! ```no_run
//! use recovery::{recover, RecoverOptions};
//! let report = recover(std::path::Path::new("/tmp/crash"), &RecoverOptions::default())?;
//! println!("{report}");
//! # Ok::<(), recovery::Error>(())
//! ```

pub mod analysis;
pub mod checkpoint;
pub mod copylog;
pub mod crc;
pub mod dir;
pub mod error;
pub mod format;
pub mod image;
pub mod io;
pub mod jbd2;
pub mod journal;
pub mod parallel;
pub mod progress;
pub mod recover;
pub mod replay;
pub mod scan;
pub mod shadow;
pub mod snapshot;
pub mod topology;

pub use error::{CorruptKind, Error, Result};
pub use io::{DirectFallback, IoBackend, IoOptions, MmapAdvice};
pub use parallel::Executor;
pub use progress::{Monitor, Observer, Phase, Snapshot};
pub use recover::{analyze_dir, recover, recover_with, ImageIo, RecoverOptions, RecoveryMode, RecoveryReport};
pub use replay::FaultPoint;
pub use topology::PinMode;
