//! Names of the files in a recovery directory.
//!
//! ```text
//! DIR/image.img          the home location (see `image`)
//! DIR/journal/seg-*.wal  journal segments (see `format`)
//! DIR/checkpoints/ckpt-*.fcr  checkpoint records (see `checkpoint`)
//! DIR/snapshots/snap-*.fcp    snapshots, a backup of the image (see `snapshot`)
//! DIR/LOCK               exclusive lock held by a running recovery
//! DIR/recovered.json     written after a successful recovery (see `marker`)
//! DIR/recovery.cpl       what copies read, and the start point, of the last recovery of a
//!                        journal with copies or a rebuild (see `copylog`)
//! DIR/manifest.json      generator parameters and seed (crash states only)
//! DIR/expected.json      oracle: expected image digest (crash states only)
//! DIR/expected.digests   oracle: per-block xxh3-64 digests, little-endian u64 each
//! ```

/// The image file.
pub const IMAGE_FILE: &str = "image.img";
/// The journal directory.
pub const JOURNAL_DIR: &str = "journal";
/// The lock file.
pub const LOCK_FILE: &str = "LOCK";
/// The recovery marker.
pub const MARKER_FILE: &str = "recovered.json";
/// Generator manifest.
pub const MANIFEST_FILE: &str = "manifest.json";
/// Oracle summary.
pub const EXPECTED_FILE: &str = "expected.json";
/// Oracle per-block digests.
pub const EXPECTED_DIGESTS_FILE: &str = "expected.digests";
/// The checkpoint directory.
pub const CHECKPOINT_DIR: &str = "checkpoints";
/// The snapshot directory.
pub const SNAPSHOT_DIR: &str = "snapshots";

/// Makes `dir`'s entries durable (creations, renames, removals in it).
pub(crate) fn fsync_dir(dir: &std::path::Path) -> crate::Result<()> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| crate::Error::io(dir, "fsync directory", e))
}

/// Removes `name` from `dir` if it is there, durably.
pub(crate) fn remove_durably(dir: &std::path::Path, name: &str) -> crate::Result<()> {
    let path = dir.join(name);
    match std::fs::remove_file(&path) {
        Ok(()) => fsync_dir(dir),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(crate::Error::io(&path, "remove", e)),
    }
}
