//! Shaping the journal files at the crash position: truncation, torn blocks, zero and garbage
//! tails.

use std::fs::OpenOptions;
use std::io::Write;

use recovery::format::fragment::encode_fragment;
use recovery::format::writer::{locate, SegmentInfo};

use crate::error::GenError;
use crate::params::CrashKind;
use crate::rng::Rng;

/// Least number of stale bytes after a torn crash position.
const TORN_STALE_MIN_BYTES: u64 = 320;
/// Zero and garbage tails are this many KiB, at least...
const TAIL_KIB_MIN: u64 = 4;
/// ...and at most.
const TAIL_KIB_MAX: u64 = 16;

/// The journal files as they are left after the crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shaped {
    /// Total bytes of the segment files left.
    pub bytes: u64,
    /// Segment files left.
    pub segments: u64,
}

/// Cuts the journal in `segments` at global position `pos` as `kind` says. Segments after the
/// one holding `pos` are deleted.
pub(crate) fn shape_journal(
    segments: &[SegmentInfo],
    kind: CrashKind,
    pos: u64,
    journal_block_size: u32,
    segment_blocks: u64,
    rng: &mut Rng,
) -> Result<Shaped, GenError> {
    let total: u64 = segments.iter().map(|s| s.len).sum();
    if kind == CrashKind::Clean {
        return Ok(Shaped { bytes: total, segments: segments.len() as u64 });
    }
    let Some((i, off)) = locate(segments, pos) else {
        return Err(GenError::Invariant {
            rule: "crash position inside the journal",
            index: pos,
            lsn: 0,
            durable_lsn: 0,
            txid: 0,
        });
    };
    for s in &segments[i + 1..] {
        std::fs::remove_file(&s.path).map_err(|e| GenError::io(&s.path, "delete segment", e))?;
    }
    let seg = &segments[i];
    let jbs = u64::from(journal_block_size);
    let room = (jbs * (1 + segment_blocks)).saturating_sub(off);
    let tail: Vec<u8> = match kind {
        CrashKind::Clean | CrashKind::Cut => Vec::new(),
        CrashKind::Torn => {
            let block_end = (off / jbs + 1) * jbs;
            let len = (block_end - off).max(TORN_STALE_MIN_BYTES).min(room);
            let mut wrong = rng.next_u64();
            if wrong == seg.salt {
                wrong ^= 1;
            }
            stale_bytes(len as usize, wrong, rng)
        }
        CrashKind::ZeroTail => vec![0u8; (rng.range_inclusive(TAIL_KIB_MIN, TAIL_KIB_MAX) * 1024).min(room) as usize],
        CrashKind::GarbageTail => {
            let mut v = vec![0u8; (rng.range_inclusive(TAIL_KIB_MIN, TAIL_KIB_MAX) * 1024).min(room) as usize];
            rng.fill(&mut v);
            v
        }
    };
    let f = OpenOptions::new().write(true).open(&seg.path).map_err(|e| GenError::io(&seg.path, "open segment", e))?;
    f.set_len(off).map_err(|e| GenError::io(&seg.path, "truncate segment", e))?;
    drop(f);
    if !tail.is_empty() {
        let mut f =
            OpenOptions::new().append(true).open(&seg.path).map_err(|e| GenError::io(&seg.path, "open segment", e))?;
        f.write_all(&tail).map_err(|e| GenError::io(&seg.path, "write tail", e))?;
    }
    let before: u64 = segments[..i].iter().map(|s| s.len).sum();
    Ok(Shaped { bytes: before + off + tail.len() as u64, segments: i as u64 + 1 })
}

/// `len` bytes of what an earlier use of the file might have left: fragments framed with
/// another segment's salt, mixed with random bytes.
fn stale_bytes(len: usize, wrong_salt: u64, rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 1024);
    let mut payload = Vec::new();
    while out.len() < len {
        if rng.chance(0.6) {
            payload.resize(16 + rng.below(600) as usize, 0);
            rng.fill(&mut payload);
            let kind = 1 + rng.below(4) as u8;
            encode_fragment(wrong_salt, kind, &payload, &mut out);
        } else {
            let start = out.len();
            out.resize(start + 8 + rng.below(200) as usize, 0);
            rng.fill(&mut out[start..]);
        }
    }
    out.truncate(len);
    out
}
