//! Scan: walk every segment in order, verify checksums and LSN sequence, find the durable end,
//! and apply the recovery mode to damage.
//!
//! The same scan runs once per pass (analysis, then redo); it is deterministic, so every pass
//! sees exactly the same records.

use std::path::PathBuf;

use crate::error::{CorruptKind, Error, Result};
use crate::format::fragment::{SegmentDecoder, Step};
use crate::format::record::{decode_body, decode_header_with, Record, RecordHeader};
use crate::journal::Journal;
use crate::RecoveryMode;

/// Where a record lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordCtx {
    /// Index of its segment in [`Journal::segments`].
    pub segment: usize,
    /// Offset of its first fragment in the segment file.
    pub start: u64,
    /// Offset just past its last fragment.
    pub end: u64,
}

/// Where the durable journal ended and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TailCut {
    /// Segment file where the durable part ends.
    pub path: PathBuf,
    /// Offset in that file where the non-durable bytes start.
    pub offset: u64,
    /// What was found there (`None`: zero fill, i.e. unwritten space).
    pub damage: Option<CorruptKind>,
    /// Bytes from there to the end of the journal that recovery ignores.
    pub bytes_discarded: u64,
    /// Valid records follow the damage, but no sync marker after it says the journal was
    /// durable past it: the unsynced tail of a writer with sync markers, reordered by a crash.
    pub unsynced_epoch: bool,
}

/// A damaged region that skip-corrupt mode passed over.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SkippedRange {
    /// The damaged file.
    pub path: PathBuf,
    /// Offset of the damage.
    pub offset: u64,
    /// What was wrong.
    pub kind: CorruptKind,
    /// The last good LSN before the damage (0 if none).
    pub lsn_before: u64,
}

/// What a scan found.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ScanOutcome {
    /// Records decoded and passed to the visitor.
    pub records: u64,
    /// Journal bytes up to the durable end (headers included).
    pub bytes: u64,
    /// LSN of the first record (0 if none).
    pub first_lsn: u64,
    /// LSN of the last durable record (0 if none).
    pub last_lsn: u64,
    /// Optional records of unknown types that were skipped.
    pub optional_records: u64,
    /// Where the durable journal ends, when it is not the clean end of the last segment.
    pub tail: Option<TailCut>,
    /// Damage passed over (skip-corrupt only).
    pub skipped: Vec<SkippedRange>,
    /// Just past the last durable record: (segment index, offset). `None` if no record.
    pub end: Option<(usize, u64)>,
}

enum Flow {
    Continue,
    NextSegment,
    Stop,
}

/// Scans the whole journal, calling `visit` for every durable record in LSN order.
/// An error from `visit` stops the scan and is returned.
pub fn scan<F>(journal: &Journal, mode: RecoveryMode, mut visit: F) -> Result<ScanOutcome>
where
    F: FnMut(&RecordCtx, &RecordHeader, &Record<'_>) -> Result<()>,
{
    let mut out = ScanOutcome::default();
    let mut expected_lsn = journal.start_lsn;
    // After skip-corrupt passes over damage, the next record may be any later LSN.
    let mut allow_jump = false;
    'segments: for (si, meta) in journal.segments.iter().enumerate() {
        if si > 0 && meta.header.first_lsn != expected_lsn {
            let kind = CorruptKind::LsnSequence { expected: expected_lsn, found: meta.header.first_lsn };
            let gap_is_backwards = meta.header.first_lsn < expected_lsn;
            match mode {
                RecoveryMode::SkipCorrupt if !gap_is_backwards => {
                    out.skipped.push(SkippedRange {
                        path: meta.path.clone(),
                        offset: 40,
                        kind,
                        lsn_before: out.last_lsn,
                    });
                    expected_lsn = meta.header.first_lsn;
                    allow_jump = false;
                }
                RecoveryMode::SkipCorrupt => {
                    out.skipped.push(SkippedRange {
                        path: meta.path.clone(),
                        offset: 40,
                        kind,
                        lsn_before: out.last_lsn,
                    });
                    continue 'segments;
                }
                _ => return Err(Error::Corrupt { path: meta.path.clone(), offset: 40, kind }),
            }
        }
        let bytes = journal.load(si)?;
        let mut dec = SegmentDecoder::new(&bytes, meta.header.block_size, meta.header.salt);
        if si == 0 && journal.start_offset > u64::from(meta.header.block_size) {
            // Continuations of a record that began before the start point belong to it.
            dec.seek(journal.start_offset as usize, true);
        }
        let mut segment_end = meta.len;
        loop {
            let (offset, kind, record_level) = match dec.next_step() {
                Step::Record { start, end, bytes: rec, single } => {
                    let ctx = RecordCtx { segment: si, start: start as u64, end: end as u64 };
                    match decode_record(rec, !single, expected_lsn, allow_jump) {
                        Ok((h, r)) => {
                            allow_jump = false;
                            if let Record::Optional { .. } = r {
                                out.optional_records += 1;
                            }
                            visit(&ctx, &h, &r)?;
                            if out.records == 0 {
                                out.first_lsn = h.lsn;
                            }
                            out.records += 1;
                            out.last_lsn = h.lsn;
                            out.end = Some((si, end as u64));
                            expected_lsn = h.lsn + 1;
                            segment_end = end as u64;
                            continue;
                        }
                        Err((off, kind)) => (start + off, kind, true),
                    }
                }
                Step::End { offset } => {
                    if dec.next_valid_after(offset).is_none() {
                        if offset < bytes.len() && si + 1 == journal.segments.len() {
                            let discarded = meta.len - offset as u64;
                            out.tail = Some(TailCut {
                                path: meta.path.clone(),
                                offset: offset as u64,
                                damage: None,
                                bytes_discarded: discarded,
                                unsynced_epoch: false,
                            });
                        }
                        segment_end = segment_end.max(offset as u64);
                        break;
                    }
                    (offset, CorruptKind::Hole, false)
                }
                Step::Damage { offset, kind } => (offset, kind, false),
            };
            let flow = on_damage(journal, mode, si, &mut dec, &mut out, offset, kind, record_level)?;
            allow_jump = true;
            match flow {
                Flow::Continue => {}
                Flow::NextSegment => break,
                Flow::Stop => {
                    out.bytes += offset as u64;
                    break 'segments;
                }
            }
        }
        out.bytes += segment_end.min(meta.len);
    }
    Ok(out)
}

fn decode_record(
    rec: &[u8],
    verify_crc: bool,
    expected_lsn: u64,
    allow_jump: bool,
) -> std::result::Result<(RecordHeader, Record<'_>), (usize, CorruptKind)> {
    let (h, body) = decode_header_with(rec, verify_crc)?;
    if h.lsn != expected_lsn && !(allow_jump && h.lsn > expected_lsn) {
        return Err((8, CorruptKind::LsnSequence { expected: expected_lsn, found: h.lsn }));
    }
    let r = decode_body(&h, body)?;
    Ok((h, r))
}

/// The tail cut at `offset` of segment `si` for damage `kind`: everything from there to the
/// end of the journal is discarded.
pub(crate) fn torn_tail(journal: &Journal, si: usize, offset: u64, kind: CorruptKind) -> TailCut {
    let meta = &journal.segments[si];
    let later: u64 = journal.segments[si + 1..].iter().map(|s| s.len).sum();
    TailCut {
        path: meta.path.clone(),
        offset,
        damage: Some(kind),
        bytes_discarded: meta.len.saturating_sub(offset) + later,
        unsynced_epoch: false,
    }
}

/// The first valid fragment at or after the damage, in this segment or a later one.
pub(crate) fn valid_data_after(
    journal: &Journal,
    si: usize,
    dec: &SegmentDecoder<'_>,
    offset: usize,
    record_level: bool,
) -> Result<Option<(usize, u64)>> {
    let here = if record_level {
        // The damaged record's fragments were intact; anything valid after it counts.
        let p = dec.position();
        dec.record_start_from(p).or_else(|| dec.next_valid_after(p))
    } else {
        dec.next_valid_after(offset)
    };
    if let Some(p) = here {
        return Ok(Some((si, p as u64)));
    }
    for sj in si + 1..journal.segments.len() {
        let meta = &journal.segments[sj];
        let bytes = journal.load(sj)?;
        let d = SegmentDecoder::new(&bytes, meta.header.block_size, meta.header.salt);
        let first = meta.header.block_size as usize;
        if d.record_start_from(first).is_some() {
            return Ok(Some((sj, first as u64)));
        }
    }
    Ok(None)
}

/// With sync markers: whether a valid SYNC record after the damage at `offset` of segment
/// `si` (the first valid data after it being at `next` of segment `sj`) says the journal was
/// durable past the damage. If one does, the damaged bytes had been synced: corruption, not a
/// torn tail. If none does, everything after the damage was written after the last sync the
/// journal records, and a power cut may have kept any subset of it: the journal ends there.
fn later_sync_covers(journal: &Journal, si: usize, offset: u64, sj: usize, next: u64) -> Result<bool> {
    let damaged = (journal.segments[si].header.segment_seq, offset);
    for sk in sj..journal.segments.len() {
        let meta = &journal.segments[sk];
        let bytes = journal.load(sk)?;
        let mut dec = SegmentDecoder::new(&bytes, meta.header.block_size, meta.header.salt);
        dec.seek(if sk == sj { next as usize } else { meta.header.block_size as usize }, false);
        loop {
            match dec.next_step() {
                Step::Record { bytes: rec, .. } => {
                    if let Ok((h, body)) = crate::format::record::decode_header(rec) {
                        if crate::format::record::sync_through(&h, body).is_some_and(|t| t > damaged) {
                            return Ok(true);
                        }
                    }
                }
                Step::Damage { offset, .. } => match dec.next_valid_after(offset) {
                    Some(p) => dec.seek(p, false),
                    None => break,
                },
                Step::End { .. } => break,
            }
        }
    }
    Ok(false)
}

#[expect(clippy::too_many_arguments, reason = "one call site; the state is the scan's own locals")]
fn on_damage(
    journal: &Journal,
    mode: RecoveryMode,
    si: usize,
    dec: &mut SegmentDecoder<'_>,
    out: &mut ScanOutcome,
    offset: usize,
    kind: CorruptKind,
    record_level: bool,
) -> Result<Flow> {
    let meta = &journal.segments[si];
    match mode {
        RecoveryMode::Absolute => Err(Error::Corrupt { path: meta.path.clone(), offset: offset as u64, kind }),
        RecoveryMode::TolerateTail => match valid_data_after(journal, si, dec, offset, record_level)? {
            Some((sj, next))
                if meta.header.sync_markers() && !later_sync_covers(journal, si, offset as u64, sj, next)? =>
            {
                let mut cut = torn_tail(journal, si, offset as u64, kind);
                cut.unsynced_epoch = true;
                out.tail = Some(cut);
                Ok(Flow::Stop)
            }
            Some((sj, next)) => Err(Error::MidJournalCorruption {
                path: meta.path.clone(),
                offset: offset as u64,
                kind,
                next_path: journal.segments[sj].path.clone(),
                next_offset: next,
            }),
            None => {
                out.tail = Some(torn_tail(journal, si, offset as u64, kind));
                Ok(Flow::Stop)
            }
        },
        RecoveryMode::SkipCorrupt => {
            out.skipped.push(SkippedRange {
                path: meta.path.clone(),
                offset: offset as u64,
                kind,
                lsn_before: out.last_lsn,
            });
            let next = if record_level { Some(dec.position()) } else { dec.next_valid_after(offset) };
            match next {
                Some(p) => {
                    dec.seek(p, true);
                    Ok(Flow::Continue)
                }
                None => Ok(Flow::NextSegment),
            }
        }
    }
}

/// Whether a second pass may use [`scan_trusted`]: the first pass skipped nothing, so the
/// durable records are exactly the valid records before its end.
pub fn trusted_rescan_possible(first: &ScanOutcome) -> bool {
    first.skipped.is_empty()
}

/// Re-reads the records a verifying [`scan`] accepted, up to its `end`, without verifying
/// checksums again. Damage found here means the journal changed since the first pass.
pub fn scan_trusted<F>(journal: &Journal, end: Option<(usize, u64)>, mut visit: F) -> Result<()>
where
    F: FnMut(&RecordCtx, &RecordHeader, &Record<'_>) -> Result<()>,
{
    let Some((last_segment, end_offset)) = end else {
        return Ok(());
    };
    for si in 0..=last_segment {
        let meta = &journal.segments[si];
        let bytes = journal.load(si)?;
        let mut dec = SegmentDecoder::new_trusted(&bytes, meta.header.block_size, meta.header.salt);
        if si == 0 && journal.start_offset > u64::from(meta.header.block_size) {
            dec.seek(journal.start_offset as usize, true);
        }
        let changed = |offset: usize, kind| Error::Corrupt { path: meta.path.clone(), offset: offset as u64, kind };
        loop {
            match dec.next_step() {
                Step::Record { start, end, bytes: rec, .. } => {
                    if si == last_segment && end as u64 > end_offset {
                        break;
                    }
                    let (h, body) = decode_header_with(rec, false).map_err(|(o, k)| changed(start + o, k))?;
                    let r = decode_body(&h, body).map_err(|(o, k)| changed(start + o, k))?;
                    visit(&RecordCtx { segment: si, start: start as u64, end: end as u64 }, &h, &r)?;
                    if si == last_segment && end as u64 == end_offset {
                        break;
                    }
                }
                Step::End { .. } => break,
                Step::Damage { offset, kind } => {
                    if si == last_segment && offset as u64 >= end_offset {
                        break;
                    }
                    return Err(changed(offset, kind));
                }
            }
        }
    }
    Ok(())
}
