//! e2fsck against fastrec on the same ext4 journal: an image made by `workloads::jbd2gen`,
//! recovered by `e2fsck -y -E journal_only` (a process, as users run it) and by
//! [`recovery::jbd2::recover`], taking turns, each from the same crash image restored in
//! between, both including their final flush to disk.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use workloads::jbd2gen::{self, Jbd2Csum, Jbd2Params};

/// A crash image and what restoring it takes.
pub struct Prepared {
    _tmp: tempfile::TempDir,
    /// The image recoveries run on.
    pub image: PathBuf,
    /// Blocks any recovery writes, with their crash-state bytes.
    saved: Vec<(u64, Vec<u8>)>,
    /// The same blocks as a recovery left them (see [`Prepared::capture`]).
    recovered: Vec<(u64, Vec<u8>)>,
    /// File system block size.
    pub block_size: u64,
    jsb_block: u64,
    /// Journal bytes the log holds (replayed transactions' blocks).
    pub log_bytes: u64,
    /// Home blocks recovery writes.
    pub blocks: u64,
    /// Transactions replayed.
    pub transactions: u64,
    /// The generator's parameters.
    pub params: Jbd2Params,
}

/// A benchmark journal of `journal_mib` MiB (checksums v3, 64bit, metadata_csum), filled to
/// about 90% by transactions of up to 1,200 blocks.
pub fn params(seed: u64, journal_mib: u64) -> Jbd2Params {
    Jbd2Params {
        seed,
        block_size: 4096,
        fs_mib: journal_mib * 4,
        journal_mib,
        bit64: true,
        metadata_csum: true,
        extents: true,
        csum: Jbd2Csum::V3,
        txns: 100_000,
        max_blocks: 1_200,
        revoke_rate: 0.0,
        uncommitted_last: false,
        pool_blocks: (journal_mib * 256) as usize,
    }
}

/// Generates the crash image under `parent` (a temporary directory there).
pub fn prepare(p: &Jbd2Params, parent: Option<&Path>) -> Result<Prepared, String> {
    let tmp = match parent {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .map_err(|e| e.to_string())?;
    let image = tmp.path().join("ext4.img");
    let made = jbd2gen::generate(&image, p)?;
    let j = recovery::jbd2::Jbd2::open(&image).map_err(|e| e.to_string())?;
    let log = j.inspect().map_err(|e| e.to_string())?;
    let bs = j.fs.block_size;
    let saved = read_blocks(&image, bs, j.blocks_written().map_err(|e| e.to_string())?)?;
    Ok(Prepared {
        _tmp: tmp,
        image,
        saved,
        recovered: Vec::new(),
        block_size: bs,
        jsb_block: j.journal_superblock_offset() / bs,
        log_bytes: (log.tags + log.transactions) * bs,
        blocks: log.blocks,
        transactions: log.transactions,
        params: made.params,
    })
}

/// Who recovers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// `e2fsck -y -E journal_only`.
    E2fsck,
    /// fastrec with this many workers.
    Fastrec(usize),
}

impl Prepared {
    /// Puts the crash state back (every block a recovery writes) and syncs it.
    pub fn restore(&self) -> Result<(), String> {
        write_blocks(&self.image, self.block_size, &self.saved)?.sync_all().map_err(|e| e.to_string())
    }

    /// One recovery from the restored crash state (evicted first when `cold`); seconds, and
    /// fastrec's report.
    pub fn run(&self, tool: Tool, cold: bool) -> Result<(f64, Option<recovery::jbd2::Jbd2Report>), String> {
        self.restore()?;
        if cold {
            recovery::io::cache::evict(&self.image).map_err(|e| e.to_string())?;
        }
        let t = Instant::now();
        let report = match tool {
            Tool::E2fsck => {
                let out = Command::new(jbd2gen::tool("e2fsck"))
                    .args(["-y", "-E", "journal_only"])
                    .arg(&self.image)
                    .output()
                    .map_err(|e| format!("e2fsck: {e}"))?;
                if out.status.code().is_none_or(|c| c > 1) {
                    return Err(format!("e2fsck: {}: {}", out.status, String::from_utf8_lossy(&out.stdout)));
                }
                None
            }
            Tool::Fastrec(w) => Some(recovery::jbd2::recover(&self.image, Some(w)).map_err(|e| e.to_string())?),
        };
        Ok((t.elapsed().as_secs_f64(), report))
    }

    /// Keeps the blocks as the last recovery left them, for [`Prepared::write_floor`].
    pub fn capture(&mut self) -> Result<(), String> {
        self.recovered = read_blocks(&self.image, self.block_size, self.saved.iter().map(|(b, _)| *b))?;
        Ok(())
    }

    /// The least any replayer must do, timed from the restored crash state: write the
    /// recovered blocks, already in memory, each once in ascending order, then `fdatasync`.
    /// No log is read and nothing is checked, so no recovery can be faster on this disk.
    pub fn write_floor(&self, cold: bool) -> Result<f64, String> {
        if self.recovered.is_empty() {
            return Err("write_floor before capture".into());
        }
        self.restore()?;
        if cold {
            recovery::io::cache::evict(&self.image).map_err(|e| e.to_string())?;
        }
        let t = Instant::now();
        write_blocks(&self.image, self.block_size, &self.recovered)?.sync_data().map_err(|e| e.to_string())?;
        Ok(t.elapsed().as_secs_f64())
    }

    /// The image's blocks a recovery wrote, hashed, superblock blocks left out: equal for the
    /// two tools when they agree.
    pub fn digest(&self) -> Result<u64, String> {
        let skip = [1024 / self.block_size, self.jsb_block];
        let blocks = self.saved.iter().map(|(b, _)| *b).filter(|b| !skip.contains(b));
        Ok(read_blocks(&self.image, self.block_size, blocks)?
            .iter()
            .fold(fnv::new(), |h, (b, buf)| fnv::add(h, *b, buf)))
    }
}

/// `blocks` of the image as they are now.
fn read_blocks(image: &Path, bs: u64, blocks: impl IntoIterator<Item = u64>) -> Result<Vec<(u64, Vec<u8>)>, String> {
    let f = std::fs::File::open(image).map_err(|e| format!("{}: {e}", image.display()))?;
    blocks
        .into_iter()
        .map(|b| {
            let mut buf = vec![0u8; bs as usize];
            std::os::unix::fs::FileExt::read_exact_at(&f, &mut buf, b * bs)
                .map(|()| (b, buf))
                .map_err(|e| format!("{}: block {b}: {e}", image.display()))
        })
        .collect()
}

/// Writes `blocks` into the image; returns the file for the caller's sync.
fn write_blocks(image: &Path, bs: u64, blocks: &[(u64, Vec<u8>)]) -> Result<std::fs::File, String> {
    let f = std::fs::OpenOptions::new().write(true).open(image).map_err(|e| format!("{}: {e}", image.display()))?;
    for (b, bytes) in blocks {
        std::os::unix::fs::FileExt::write_all_at(&f, bytes, b * bs)
            .map_err(|e| format!("{}: block {b}: {e}", image.display()))?;
    }
    Ok(f)
}

/// An order-sensitive 64-bit hash (FNV-1a) of (block, bytes) pairs.
mod fnv {
    pub fn new() -> u64 {
        0xcbf2_9ce4_8422_2325
    }
    pub fn add(mut h: u64, block: u64, bytes: &[u8]) -> u64 {
        for &x in block.to_le_bytes().iter().chain(bytes) {
            h ^= u64::from(x);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h
    }
}
