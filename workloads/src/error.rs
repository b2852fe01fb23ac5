//! The generator's error type: typed, and located where a file is involved.

use std::path::PathBuf;

/// Everything generation, verification and corruption can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GenError {
    /// An error from the engine crate (journal writer, image layout).
    #[error(transparent)]
    Recovery(#[from] recovery::Error),
    /// An I/O error on a named file.
    #[error("{path}: {op}: {error}")]
    Io {
        /// The file the operation was on.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The underlying error (part of this error's message, so not repeated as a source).
        error: std::io::Error,
    },
    /// A JSON file could not be written or parsed.
    #[error("{path}: {error}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The underlying error (part of this error's message, so not repeated as a source).
        error: serde_json::Error,
    },
    /// A parameter is outside its documented range (or a name did not parse).
    #[error("invalid parameter `{what}`: {value}")]
    Params {
        /// Which parameter.
        what: &'static str,
        /// The value given.
        value: String,
    },
    /// The target directory already holds a journal.
    #[error("{path}: already holds a journal")]
    JournalExists {
        /// The journal directory found.
        path: PathBuf,
    },
    /// An input file of a crash directory is not what the generator writes.
    #[error("{path}: {what}")]
    BadInput {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        what: &'static str,
    },
    /// An oracle event describes an impossible change (hand-built histories only).
    #[error("oracle event out of range: {what} {value}")]
    BadEvent {
        /// Which field.
        what: &'static str,
        /// Its value.
        value: u64,
    },
    /// The generator caught itself breaking a rule that makes crash states possible
    /// (write-ahead logging, strict two-phase locking, or a rule that keeps copies
    /// recoverable). Always a generator bug.
    #[error("generator broke `{rule}` on block/bit {index} (LSN {lsn}, durable LSN {durable_lsn}, txn {txid})")]
    Invariant {
        /// The rule (`wal`, `2pl`, `2pl read`, or one about copy sources).
        rule: &'static str,
        /// Block number or bit index concerned.
        index: u64,
        /// LSN concerned (0 when not applicable).
        lsn: u64,
        /// Durable LSN at the time (0 when not applicable).
        durable_lsn: u64,
        /// Transaction concerned (0 when not applicable).
        txid: u64,
    },
}

impl GenError {
    /// Wraps an I/O error with the file and operation it happened on.
    pub fn io(path: impl Into<PathBuf>, op: &'static str, source: std::io::Error) -> Self {
        GenError::Io { path: path.into(), op, error: source }
    }
}
