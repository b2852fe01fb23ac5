//! Typed, located errors. Corruption always names the file and the byte offset where it was
//! found, so an operator (or a caller) can act on it without parsing a message.

use std::path::PathBuf;

/// What is wrong with a journal fragment, record or segment header.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub enum CorruptKind {
    /// A checksum did not match.
    Checksum {
        /// The checksum stored in the file.
        stored: u32,
        /// The checksum computed over the bytes.
        computed: u32,
    },
    /// The segment header does not start with the journal magic.
    BadMagic,
    /// The segment was written by a format version this reader does not know.
    UnsupportedVersion(u16),
    /// A header or record field holds a value outside its documented range.
    BadField(&'static str),
    /// A fragment claims more bytes than its block holds.
    FragmentOverrun,
    /// A fragment arrived out of sequence (e.g. MIDDLE without FIRST).
    FragmentSequence,
    /// A record claims a length above the format's maximum.
    RecordTooLarge(u64),
    /// A record ended before its declared length.
    RecordTruncated,
    /// A record's LSN does not follow its predecessor's.
    LsnSequence {
        /// The LSN that should have come next.
        expected: u64,
        /// The LSN found.
        found: u64,
    },
    /// A record type this reader does not know and may not skip.
    UnknownRecordType(u8),
    /// The file is shorter than a segment header.
    TruncatedHeader,
    /// Zero-filled bytes where records should be, with valid records after them.
    Hole,
}

impl std::fmt::Display for CorruptKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CorruptKind::Checksum { stored, computed } => {
                write!(f, "checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")
            }
            CorruptKind::BadMagic => write!(f, "bad magic"),
            CorruptKind::UnsupportedVersion(v) => write!(f, "unsupported format version {v}"),
            CorruptKind::BadField(name) => write!(f, "invalid field `{name}`"),
            CorruptKind::FragmentOverrun => write!(f, "fragment overruns its block"),
            CorruptKind::FragmentSequence => write!(f, "fragment out of sequence"),
            CorruptKind::RecordTooLarge(n) => write!(f, "record length {n} exceeds the maximum"),
            CorruptKind::RecordTruncated => write!(f, "record truncated"),
            CorruptKind::LsnSequence { expected, found } => {
                write!(f, "LSN out of sequence (expected {expected}, found {found})")
            }
            CorruptKind::UnknownRecordType(t) => write!(f, "unknown mandatory record type {t:#04x}"),
            CorruptKind::TruncatedHeader => write!(f, "truncated segment header"),
            CorruptKind::Hole => write!(f, "zero-filled bytes followed by valid records"),
        }
    }
}

/// Every error the engine reports.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O error on a named file.
    #[error("{path}: {op}: {error}")]
    Io {
        /// The file the operation was on.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The underlying error (part of this error's message, so not repeated as a source).
        error: std::io::Error,
    },
    /// Damaged bytes in the journal or image.
    #[error("{path} at offset {offset}: {kind}")]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Byte offset of the damage within the file.
        offset: u64,
        /// What is wrong.
        kind: CorruptKind,
    },
    /// Corruption found before the journal's durable end, where tolerate-tail may not cut.
    #[error("{path} at offset {offset}: {kind}; valid records follow (next at {next_path} offset {next_offset}), so this is not a torn tail")]
    MidJournalCorruption {
        /// The damaged file.
        path: PathBuf,
        /// Byte offset of the damage.
        offset: u64,
        /// What is wrong.
        kind: CorruptKind,
        /// File of the next valid fragment after the damage.
        next_path: PathBuf,
        /// Offset of the next valid fragment.
        next_offset: u64,
    },
    /// The journal directory holds no segments.
    #[error("{path}: no journal segments found")]
    NoSegments {
        /// The journal directory.
        path: PathBuf,
    },
    /// Segment sequence numbers are not consecutive.
    #[error("{path}: segment sequence gap (expected {expected}, found {found})")]
    SegmentGap {
        /// The segment found after the gap.
        path: PathBuf,
        /// The sequence number expected.
        expected: u64,
        /// The sequence number found.
        found: u64,
    },
    /// The journal was written for another image.
    #[error("{path}: journal belongs to image {journal_image_id:#018x}, but the image is {image_id:#018x}")]
    ImageMismatch {
        /// The segment that disagrees.
        path: PathBuf,
        /// The image id stored in the segment header.
        journal_image_id: u64,
        /// The image id stored in the image superblock.
        image_id: u64,
    },
    /// Segments disagree on a journal-wide setting (buffer policy, block size).
    #[error("{path}: segment disagrees with the first segment on {what}")]
    InconsistentSegments {
        /// The segment that disagrees.
        path: PathBuf,
        /// Which setting.
        what: &'static str,
    },
    /// The image file is not a valid image.
    #[error("{path} at offset {offset}: invalid image: {reason}")]
    BadImage {
        /// The image file.
        path: PathBuf,
        /// Byte offset of the problem.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A record is well-formed but describes an impossible operation (e.g. a block outside the
    /// image).
    #[error("{path} at offset {offset}: record LSN {lsn}: {reason}")]
    InvalidRecord {
        /// The segment holding the record.
        path: PathBuf,
        /// Offset of the record's first fragment.
        offset: u64,
        /// The record's LSN.
        lsn: u64,
        /// What is impossible about it.
        reason: String,
    },
    /// Another process holds the directory's recovery lock.
    #[error("{path}: locked by another recovery")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// A checkpoint failed validation or could not be applied.
    #[error("{}{}: {reason}", path.display(), offset.map_or(String::new(), |o| format!(" at offset {o}")))]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// Offset of the problem, when it is about the file's bytes.
        offset: Option<u64>,
        /// What was wrong.
        reason: String,
    },
    /// A snapshot failed validation or could not be applied.
    #[error("{}{}: {reason}", path.display(), offset.map_or(String::new(), |o| format!(" at offset {o}")))]
    Snapshot {
        /// The snapshot file.
        path: PathBuf,
        /// Offset of the problem, when it is about the file's bytes.
        offset: Option<u64>,
        /// What was wrong.
        reason: String,
    },
    /// A checkpoint or snapshot was asked of a directory whose image is not a recovered state.
    #[error("{path}: not recovered since its journal last changed; run `fastrec recover` first (a checkpoint or snapshot of this directory records a recovered image)")]
    NotRecovered {
        /// The directory.
        path: PathBuf,
    },
    /// The journal's oldest segments are gone and no valid checkpoint covers what they held.
    #[error("{path}: the journal starts at LSN {first_lsn} (older segments were recycled or lost) and no valid checkpoint covers the LSNs before it{}", if detail.is_empty() { String::new() } else { format!(" ({detail})") })]
    JournalStartsLate {
        /// The journal directory.
        path: PathBuf,
        /// First LSN of the oldest segment present.
        first_lsn: u64,
        /// Why each checkpoint was passed over.
        detail: String,
    },
    /// Direct I/O was required (`--direct-fallback error`) and the file system refuses it.
    #[error("{path}: the file system refuses O_DIRECT reads (tmpfs and some network or FUSE file systems do); use --io read or --direct-fallback read")]
    DirectIoUnsupported {
        /// The segment probed.
        path: PathBuf,
    },
    /// An ext4 image or its jbd2 journal that cannot be recovered as it is.
    #[error("{}{}: ext4 journal: {reason}", path.display(), offset.map_or(String::new(), |o| format!(" at offset {o}")))]
    Jbd2 {
        /// The image.
        path: PathBuf,
        /// Byte offset in the image, when the problem is at one place.
        offset: Option<u64>,
        /// What is wrong.
        reason: String,
    },
    /// An invalid configuration value.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Recovery was cancelled (Ctrl-C, or a [`crate::progress::Monitor`]'s flag) and stopped
    /// at a safe point. Nothing committed is lost: the journal is untouched and no marker was
    /// written, so the next recovery starts over and completes.
    #[error(
        "{}: recovery cancelled during {phase}; {}; run recovery again to complete it",
        dir.display(),
        if *image_changed { "the image is partly recovered" } else { "the image is untouched" }
    )]
    Cancelled {
        /// The directory being recovered.
        dir: PathBuf,
        /// The phase it stopped in.
        phase: &'static str,
        /// Whether the image may already hold part of this recovery's work.
        image_changed: bool,
    },
    /// A fault injected by a test through a fault point.
    #[error("injected fault at `{0}`")]
    InjectedFault(&'static str),
    /// A parallel worker stopped because another one failed (never the error recovery
    /// returns: it returns the failure that caused it).
    #[error("stopped because another recovery worker failed")]
    WorkerStopped,
}

impl Error {
    /// Wraps an I/O error with the file and operation it happened on.
    pub fn io(path: impl Into<PathBuf>, op: &'static str, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), op, error: source }
    }

    /// A short, stable name of the error kind, for reports and tests.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Error::Io { .. } => "io",
            Error::Corrupt { .. } => "corrupt",
            Error::MidJournalCorruption { .. } => "mid-journal-corruption",
            Error::NoSegments { .. } => "no-segments",
            Error::SegmentGap { .. } => "segment-gap",
            Error::ImageMismatch { .. } => "image-mismatch",
            Error::InconsistentSegments { .. } => "inconsistent-segments",
            Error::BadImage { .. } => "bad-image",
            Error::InvalidRecord { .. } => "invalid-record",
            Error::Locked { .. } => "locked",
            Error::DirectIoUnsupported { .. } => "direct-io-unsupported",
            Error::Checkpoint { .. } => "checkpoint",
            Error::Snapshot { .. } => "snapshot",
            Error::NotRecovered { .. } => "not-recovered",
            Error::JournalStartsLate { .. } => "journal-starts-late",
            Error::Jbd2 { .. } => "jbd2",
            Error::Config(_) => "config",
            Error::Cancelled { .. } => "cancelled",
            Error::InjectedFault(_) => "injected-fault",
            Error::WorkerStopped => "worker-stopped",
        }
    }
}

/// The engine's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
