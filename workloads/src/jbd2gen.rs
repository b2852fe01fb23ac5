//! Seeded ext4 images with a journal that needs recovery, made with Debian's e2fsprogs:
//! `mkfs.ext4` makes the file system, `debugfs` finds free blocks (`ffb`, so that no logged
//! block is the journal's own or file system metadata) and writes transactions into the
//! journal (`jo`, `jw -b BLOCKS FILE`, `jw -r BLOCKS`, `jc`). The reference recovery is
//! e2fsck's (`e2fsck -fy -E journal_only`), run by the tests, never by this module.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::rng::Rng;

/// Journal checksum format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Jbd2Csum {
    /// No journal checksums.
    None,
    /// Checksum version 2 (16-bit tag checksums).
    V2,
    /// Checksum version 3.
    V3,
}

/// What to make.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Jbd2Params {
    /// Seed of every choice below that is left to it and of the block contents.
    pub seed: u64,
    /// File system block size: 1024 or 4096.
    pub block_size: u64,
    /// File system size in MiB.
    pub fs_mib: u64,
    /// Journal size in MiB (at least 1024 blocks).
    pub journal_mib: u64,
    /// ext4's 64bit feature (the journal follows it).
    pub bit64: bool,
    /// ext4's metadata_csum feature.
    pub metadata_csum: bool,
    /// ext4's extent feature (without it the journal inode has a block map, as on ext3).
    pub extents: bool,
    /// Journal checksums asked of debugfs (`jo -c -v 2|3`); debugfs writes versions 2 and 3
    /// only on file systems with metadata_csum (and 64bit for 3), version 1 otherwise.
    pub csum: Jbd2Csum,
    /// Transactions to write.
    pub txns: usize,
    /// Most blocks one transaction writes.
    pub max_blocks: usize,
    /// Chance that a transaction is a revoke of blocks written earlier.
    pub revoke_rate: f64,
    /// Leave the last transaction without its commit block.
    pub uncommitted_last: bool,
    /// Distinct home blocks the transactions choose from (rewrites make revokes and
    /// last-copy-wins matter).
    pub pool_blocks: usize,
}

impl Jbd2Params {
    /// A small image whose features are drawn from `seed`.
    pub fn small(seed: u64) -> Jbd2Params {
        let mut rng = Rng::new(crate::rng::derive(seed, 0x1bd2));
        let csum = match rng.below(3) {
            0 => Jbd2Csum::None,
            1 => Jbd2Csum::V2,
            _ => Jbd2Csum::V3,
        };
        let block_size = if rng.chance(0.3) { 1024 } else { 4096 };
        // mkfs.ext4 refuses 64bit without extents.
        let extents = rng.chance(0.75);
        let bit64 = extents && rng.chance(0.5);
        Jbd2Params {
            seed,
            block_size,
            fs_mib: 64,
            journal_mib: if block_size == 1024 { 4 } else { 8 },
            bit64,
            metadata_csum: rng.chance(0.6),
            extents,
            csum,
            txns: rng.range_inclusive(1, 24) as usize,
            max_blocks: rng.range_inclusive(1, 40) as usize,
            revoke_rate: if rng.chance(0.7) { 0.2 } else { 0.0 },
            uncommitted_last: rng.chance(0.4),
            pool_blocks: rng.range_inclusive(16, 400) as usize,
        }
    }
}

/// What was made.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Jbd2Image {
    /// The image file.
    pub path: PathBuf,
    /// The parameters.
    pub params: Jbd2Params,
    /// Blocks written to the journal, over all transactions.
    pub logged_blocks: u64,
    /// Blocks revoked.
    pub revoked_blocks: u64,
    /// Logged blocks whose first four bytes are the journal magic (escaped in the log).
    pub escaped_blocks: u64,
}

/// Longest block list one `jw` command carries (debugfs's line limit is 8 KiB).
const LINE_MAX: usize = 7_600;

fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e} (is e2fsprogs installed?)"))?;
    if !out.status.success() {
        return Err(format!("{cmd:?}: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr)));
    }
    Ok(format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// Where e2fsprogs' programs are (Debian puts them in /sbin and /usr/sbin, which a user's PATH
/// may lack).
pub fn tool(name: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/sbin", "/usr/bin", "/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    PathBuf::from(name)
}

/// Makes the image at `path` (replaced if present); scratch files go next to it.
pub fn generate(path: &Path, p: &Jbd2Params) -> Result<Jbd2Image, String> {
    let bs = p.block_size;
    let mut rng = Rng::new(crate::rng::derive(p.seed, 0x1bd3));
    let _ = std::fs::remove_file(path);
    let features = format!(
        "{},{},{}",
        if p.bit64 { "64bit" } else { "^64bit" },
        if p.metadata_csum { "metadata_csum" } else { "^metadata_csum" },
        if p.extents { "extent" } else { "^extent" }
    );
    let uuid = format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        rng.next_u64() as u32,
        rng.next_u64() as u16,
        rng.below(0x1000),
        rng.below(0x1000),
        rng.next_u64() & 0xFFFF_FFFF_FFFF
    );
    run(Command::new(tool("mkfs.ext4"))
        .env("E2FSPROGS_FAKE_TIME", (1_700_000_000 + p.seed % 1_000_000).to_string())
        .args(["-q", "-F", "-t", "ext4", "-b", &bs.to_string(), "-O", &features, "-U", &uuid])
        .args(["-J", &format!("size={}", p.journal_mib), "-E", "lazy_itable_init=0,lazy_journal_init=0"])
        .arg(path)
        .arg(format!("{}M", p.fs_mib)))?;

    // Free blocks from a random goal: never metadata nor the journal's own.
    let fs_blocks = p.fs_mib * 1024 * 1024 / bs;
    let goal = rng.below(fs_blocks / 2).max(1);
    let listed = run(Command::new(tool("debugfs")).args(["-R", &format!("ffb {} {goal}", p.pool_blocks)]).arg(path))?;
    let pool: Vec<u64> =
        listed.split(':').nth(1).unwrap_or("").split_whitespace().filter_map(|w| w.parse().ok()).collect();
    if pool.is_empty() {
        return Err(format!("debugfs found no free blocks in {}: {listed}", path.display()));
    }

    let scratch = path.with_extension("jbd2gen");
    std::fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let mut cmds = String::from("jo");
    match p.csum {
        Jbd2Csum::None => {}
        Jbd2Csum::V2 => cmds.push_str(" -c -v 2"),
        Jbd2Csum::V3 => cmds.push_str(" -c -v 3"),
    }
    cmds.push('\n');
    let (mut logged, mut revoked, mut escaped) = (0u64, 0u64, 0u64);
    let mut written: Vec<u64> = Vec::new();
    // The log must not wrap over itself: debugfs would overwrite the oldest transactions.
    let journal_blocks = p.journal_mib * 1024 * 1024 / bs;
    let room = journal_blocks * 9 / 10;
    let mut txns = p.txns;
    for t in 0..p.txns {
        if logged + logged / 50 + 3 * t as u64 + p.max_blocks as u64 + 8 > room {
            txns = t;
            break;
        }
        let last = t + 1 == p.txns;
        let commit_flag = if last && p.uncommitted_last { " -c" } else { "" };
        if !written.is_empty() && rng.chance(p.revoke_rate) {
            let n = rng.range_inclusive(1, written.len().min(8) as u64) as usize;
            let mut rv: Vec<u64> = (0..n).map(|_| written[rng.below(written.len() as u64) as usize]).collect();
            rv.sort_unstable();
            rv.dedup();
            revoked += rv.len() as u64;
            let list: Vec<String> = rv.iter().map(u64::to_string).collect();
            cmds.push_str(&format!("jw -r {}{commit_flag} /dev/null\n", list.join(",")));
            continue;
        }
        let n = rng.range_inclusive(1, p.max_blocks as u64) as usize;
        let mut blocks: Vec<u64> = Vec::with_capacity(n);
        let mut line = 0;
        for _ in 0..n {
            let b = pool[rng.below(pool.len() as u64) as usize];
            // debugfs reads commands of at most 8 KiB: a longer block list is lost.
            line += b.to_string().len() + 1;
            if line > LINE_MAX {
                break;
            }
            blocks.push(b);
        }
        blocks.dedup();
        let mut data = vec![0u8; blocks.len() * bs as usize];
        rng.fill(&mut data);
        for chunk in data.chunks_mut(bs as usize) {
            if rng.chance(0.1) {
                chunk[..4].copy_from_slice(&0xC03B_3998u32.to_be_bytes());
                escaped += 1;
            }
        }
        let file = scratch.join(format!("t{t}.bin"));
        std::fs::write(&file, &data).map_err(|e| format!("{}: {e}", file.display()))?;
        logged += blocks.len() as u64;
        written.extend(&blocks);
        let list: Vec<String> = blocks.iter().map(u64::to_string).collect();
        cmds.push_str(&format!("jw -b {}{commit_flag} {}\n", list.join(","), file.display()));
    }
    cmds.push_str("jc\n");
    let cmd_file = scratch.join("cmds");
    std::fs::write(&cmd_file, &cmds).map_err(|e| format!("{}: {e}", cmd_file.display()))?;
    let out = run(Command::new(tool("debugfs")).arg("-w").arg("-f").arg(&cmd_file).arg(path))?;
    if let Some(line) = out.lines().find(|l| l.contains("not found") || l.contains("rror")) {
        return Err(format!("debugfs on {}: {line}", path.display()));
    }
    let _ = std::fs::remove_dir_all(&scratch);
    let mut params = p.clone();
    params.txns = txns;
    Ok(Jbd2Image {
        path: path.to_path_buf(),
        params,
        logged_blocks: logged,
        revoked_blocks: revoked,
        escaped_blocks: escaped,
    })
}
