//! Bit flips in a crash directory, for bad-input tests: journal flips land only in segment
//! data areas (never in a segment's header block), image flips only in data blocks.

use std::collections::BTreeSet;
use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use recovery::dir::{IMAGE_FILE, JOURNAL_DIR};
use recovery::format::segment::{parse_segment_file_name, SegmentHeader, SEGMENT_HEADER_LEN};
use recovery::image::Layout;
use serde::Serialize;

use crate::error::GenError;
use crate::rng::Rng;

/// Which file(s) of a crash directory to damage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CorruptTarget {
    /// The journal segments' data areas.
    Journal,
    /// The image's data blocks.
    Image,
}

/// One flipped bit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flip {
    /// The file changed.
    pub path: PathBuf,
    /// Byte offset within it.
    pub offset: u64,
    /// Bit number within the byte (0 = least significant).
    pub bit: u8,
}

/// Flips `flips` distinct random bits of `target` in crash directory `dir`, chosen by `seed`.
/// Returns them in the order applied.
///
/// Damaging the journal also removes the recovered marker (`recovered.json`): the damaged
/// journal is new input, and a later `recover` must read it rather than report the earlier
/// recovery.
pub fn corrupt(dir: &Path, target: CorruptTarget, flips: usize, seed: u64) -> Result<Vec<Flip>, GenError> {
    // (path, first corruptible offset, file length)
    let mut areas: Vec<(PathBuf, u64, u64)> = Vec::new();
    match target {
        CorruptTarget::Image => {
            let path = dir.join(IMAGE_FILE);
            let layout = Layout::read_from(&path)?;
            let start = layout.data_start() * layout.block_size() as u64;
            areas.push((path, start, layout.image_len()));
        }
        CorruptTarget::Journal => {
            let jdir = dir.join(JOURNAL_DIR);
            let mut names = Vec::new();
            for entry in std::fs::read_dir(&jdir).map_err(|e| GenError::io(&jdir, "list journal", e))? {
                let entry = entry.map_err(|e| GenError::io(&jdir, "list journal", e))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if let Some(seq) = parse_segment_file_name(&name) {
                    names.push((seq, entry.path()));
                }
            }
            names.sort();
            for (_, path) in names {
                let mut f = std::fs::File::open(&path).map_err(|e| GenError::io(&path, "open segment", e))?;
                let mut head = vec![0u8; SEGMENT_HEADER_LEN];
                f.read_exact(&mut head).map_err(|e| GenError::io(&path, "read segment header", e))?;
                let header = SegmentHeader::decode(&head)
                    .map_err(|_| GenError::BadInput { path: path.clone(), what: "segment header does not decode" })?;
                let len = f.metadata().map_err(|e| GenError::io(&path, "stat segment", e))?.len();
                areas.push((path, u64::from(header.block_size), len));
            }
        }
    }
    if target == CorruptTarget::Journal {
        let marker = dir.join(recovery::dir::MARKER_FILE);
        if marker.exists() {
            std::fs::remove_file(&marker).map_err(|e| GenError::io(&marker, "remove recovered marker", e))?;
        }
    }
    areas.retain(|(_, start, len)| len > start);
    let total: u64 = areas.iter().map(|(_, s, l)| l - s).sum();
    if total == 0 {
        return Err(GenError::BadInput { path: dir.to_path_buf(), what: "nothing to corrupt" });
    }
    let bits = total.saturating_mul(8);
    if flips as u64 > bits {
        return Err(GenError::BadInput {
            path: dir.to_path_buf(),
            what: "more flips asked for than the target has bits",
        });
    }
    let mut rng = Rng::new(seed);
    let mut chosen = BTreeSet::new();
    let mut out = Vec::with_capacity(flips);
    let bound = flips.saturating_mul(64).max(64);
    for _ in 0..bound {
        if out.len() == flips {
            break;
        }
        let mut at = rng.below(total);
        let bit = rng.below(8) as u8;
        for (i, (path, start, len)) in areas.iter().enumerate() {
            let size = len - start;
            if at < size {
                let offset = start + at;
                if chosen.insert((i, offset, bit)) {
                    flip_bit(path, offset, bit)?;
                    out.push(Flip { path: path.clone(), offset, bit });
                }
                break;
            }
            at -= size;
        }
    }
    Ok(out)
}

fn flip_bit(path: &Path, offset: u64, bit: u8) -> Result<(), GenError> {
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| GenError::io(path, "open for corruption", e))?;
    let mut b = [0u8; 1];
    f.seek(SeekFrom::Start(offset)).map_err(|e| GenError::io(path, "seek", e))?;
    f.read_exact(&mut b).map_err(|e| GenError::io(path, "read", e))?;
    b[0] ^= 1 << bit;
    f.seek(SeekFrom::Start(offset)).map_err(|e| GenError::io(path, "seek", e))?;
    f.write_all(&b).map_err(|e| GenError::io(path, "write", e))?;
    Ok(())
}
