//! The on-disk format checked against docs/FORMAT.md rather than against itself: the generator
//! and the engine share one encoder and decoder, so a format bug they share passes every round
//! trip. `spec/fastrec_spec.py` is a decoder written from the document alone (Python standard
//! library only); here it decodes generated crash states (both policies, every crash kind,
//! copies, every checkpoint style, odd block sizes, flipped bits, recovered directories) and must
//! agree with the engine's public API record for record, on where the durable journal ends and
//! why, and on the superblock, the segment headers, the checkpoint records and pointer, the copy
//! log and the recovered marker. docs/SPEC-CHECK.md says what this covers and what the document
//! got wrong.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use recovery::checkpoint::{self, CheckpointKind};
use recovery::format::record::{AllocTarget, Record, RecordHeader};
use recovery::image::Layout;
use recovery::journal::Journal;
use recovery::recover::open_dir;
use recovery::scan::{self, RecordCtx, ScanOutcome};
use recovery::{copylog, recover, Error, IoOptions, RecoverOptions, RecoveryMode};
use serde_json::{json, Value};
use workloads::{Cadence, CheckpointPlan, CheckpointStyle, CrashKind, GenParams, Policy, Preset};

/// What the independent decoder printed.
struct Spec {
    status: i32,
    lines: Vec<Value>,
}

impl Spec {
    fn all(&self, what: &str) -> Vec<&Value> {
        self.lines.iter().filter(|v| v["what"] == what).collect()
    }

    fn one(&self, what: &str) -> &Value {
        let all = self.all(what);
        assert_eq!(all.len(), 1, "the spec decoder printed {} `{what}` lines", all.len());
        all[0]
    }

    fn maybe(&self, what: &str) -> Option<&Value> {
        self.all(what).into_iter().next()
    }
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("spec").join(name)
}

/// The Python 3 interpreter itself: `python3` on PATH may be a wrapper script whose start-up
/// costs more than decoding a small journal.
fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let out = match Command::new("python3").args(["-c", "import sys; print(sys.executable)"]).output() {
            Ok(o) => o,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                panic!("python3 is not on PATH: the format spec check runs spec/*.py with Python 3 (standard library only)")
            }
            Err(e) => panic!("cannot run python3: {e}"),
        };
        let exe = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(out.status.success() && !exe.is_empty(), "python3 -c failed: {}", String::from_utf8_lossy(&out.stderr));
        PathBuf::from(exe)
    })
}

fn run_python(args: &[&std::ffi::OsStr]) -> (i32, Vec<Value>) {
    let out = Command::new(python()).args(args).output().unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let status = out.status.code().unwrap_or(-1);
    assert!(status == 0 || status == 1, "{args:?} failed ({status}):\n{stderr}");
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{args:?} printed `{l}`: {e}")))
        .collect();
    (status, lines)
}

fn spec(dir: &Path, mode: RecoveryMode) -> Spec {
    let script = script("fastrec_spec.py");
    let mode = mode.to_string();
    let (status, lines) = run_python(&[script.as_os_str(), dir.as_os_str(), "--mode".as_ref(), mode.as_ref()]);
    Spec { status, lines }
}

/// The spec decoder over many directories in one run, split per directory.
fn spec_many(dirs: &[PathBuf], mode: RecoveryMode) -> Vec<Spec> {
    let script = script("fastrec_spec.py");
    let mode = mode.to_string();
    let mut args = vec![script.as_os_str(), "--mode".as_ref(), mode.as_ref()];
    args.extend(dirs.iter().map(|d| d.as_os_str()));
    let (_, lines) = run_python(&args);
    let mut out: Vec<Spec> = Vec::new();
    for v in lines {
        match v["what"].as_str() {
            Some("dir") => out.push(Spec { status: -1, lines: Vec::new() }),
            Some("exit") => {
                if let Some(last) = out.last_mut() {
                    last.status = v["status"].as_i64().unwrap_or(-1) as i32;
                }
            }
            _ => out.last_mut().expect("a dir line first").lines.push(v),
        }
    }
    assert_eq!(out.len(), dirs.len(), "the spec decoder's output per directory");
    out
}

/// What the engine decodes, through its public API.
struct Engine {
    layout: Layout,
    journal: Journal,
    records: Vec<Value>,
    scan: Result<ScanOutcome, Error>,
}

fn engine(dir: &Path, mode: RecoveryMode) -> Result<Engine, Error> {
    let (layout, journal) = open_dir(dir, mode, &IoOptions::default())?;
    let seqs: Vec<u64> = journal.segments.iter().map(|s| s.header.segment_seq).collect();
    let mut records = Vec::new();
    let scan = scan::scan(&journal, mode, |ctx, h, r| {
        records.push(engine_record(seqs[ctx.segment], ctx, h, r));
        Ok(())
    });
    Ok(Engine { layout, journal, records, scan })
}

fn blob(b: &[u8]) -> Value {
    json!({ "len": b.len(), "crc32c": crc32c::crc32c(b) })
}

/// The engine's record in the spec decoder's terms: type codes, flag bits and body fields as
/// FORMAT.md section 4 names them, derived from the decoded variant rather than copied from the
/// header, so a variant decoded under the wrong code or flag shows.
fn engine_record(seq: u64, ctx: &RecordCtx, h: &RecordHeader, r: &Record<'_>) -> Value {
    const HAS_UNDO: u8 = 1;
    const COMPENSATION: u8 = 2;
    const FULL_BLOCK: u8 = 4;
    let comp = |c: bool| if c { COMPENSATION } else { 0 };
    let (code, flags, fields) = match *r {
        Record::Write { block, offset, redo, undo, full, compensation } => (
            1,
            comp(compensation) | if undo.is_some() { HAS_UNDO } else { 0 } | if full { FULL_BLOCK } else { 0 },
            json!({ "block": block, "offset": offset, "len": redo.len(), "redo": blob(redo), "undo": undo.map(blob) }),
        ),
        Record::Bitmap { target, index, set, compensation } => {
            let target = match target {
                AllocTarget::Block => 0,
                AllocTarget::Inode => 1,
            };
            (if set { 2 } else { 3 }, comp(compensation), json!({ "target": target, "index": index }))
        }
        Record::Orphan { ino, add, compensation } => {
            (if add { 4 } else { 5 }, comp(compensation), json!({ "inode": ino }))
        }
        Record::Revoke { block } => (6, 0, json!({ "block": block })),
        Record::Commit { records } => (7, 0, json!({ "records": records })),
        Record::Abort { records } => (8, 0, json!({ "records": records })),
        Record::Copy { src, src_offset, dst, dst_offset, len, undo } => (
            9,
            if undo.is_some() { HAS_UNDO } else { 0 },
            json!({ "src": src, "dst": dst, "src_offset": src_offset, "dst_offset": dst_offset, "len": len,
                    "undo": undo.map(blob) }),
        ),
        Record::Optional { rec_type } => (rec_type, h.flags, Value::Null),
    };
    json!({
        "segment": seq, "offset": ctx.start, "end": ctx.end, "lsn": h.lsn, "txid": h.txid,
        "type_code": code, "header_type": h.rec_type, "flags": flags, "header_flags": h.flags,
        "body_len": h.body_len, "fields": fields,
    })
}

/// The spec decoder's record with the same keys.
fn spec_record(v: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for k in ["segment", "offset", "end", "lsn", "txid", "type_code", "flags", "body_len", "fields"] {
        out.insert(k.to_string(), v.get(k).cloned().unwrap_or(Value::Null));
    }
    out.insert("header_type".into(), v["type_code"].clone());
    out.insert("header_flags".into(), v["flags"].clone());
    Value::Object(out)
}

/// Every record the spec decoder found, optional ones (skipped, with no fields) included.
fn spec_records(spec: &Spec) -> Vec<Value> {
    spec.lines.iter().filter(|v| v["what"] == "record" || v["what"] == "optional").map(spec_record).collect()
}

fn compare_records(what: &str, spec: &Spec, engine: &Engine) {
    let ours = spec_records(spec);
    for (i, (a, b)) in ours.iter().zip(&engine.records).enumerate() {
        assert_eq!(a, b, "{what}: record {i} differs (left: spec decoder, right: engine)");
    }
    assert_eq!(ours.len(), engine.records.len(), "{what}: record counts differ (spec decoder, engine)");
}

fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

fn seg_name(seq: u64) -> String {
    format!("seg-{seq:016x}.wal")
}

fn compare_image(what: &str, spec: &Spec, layout: &Layout) {
    let img = spec.one("image");
    assert_eq!(img["valid"], true, "{what}: superblock: {img}");
    let g = &layout.geometry;
    let got = json!({
        "block_size": g.block_size, "block_count": g.block_count, "inode_count": g.inode_count,
        "image_id": g.image_id,
        "block_bitmap_start": layout.block_bitmap.start, "block_bitmap_end": layout.block_bitmap.end,
        "inode_bitmap_start": layout.inode_bitmap.start, "inode_bitmap_end": layout.inode_bitmap.end,
        "orphan_bitmap_start": layout.orphan_bitmap.start, "orphan_bitmap_end": layout.orphan_bitmap.end,
    });
    for (k, v) in got.as_object().into_iter().flatten() {
        assert_eq!(&img[k], v, "{what}: superblock field {k}");
    }
}

fn compare_segments(what: &str, spec: &Spec, journal: &Journal) {
    let segs = spec.all("segment");
    let live: Vec<&&Value> = segs.iter().filter(|s| s["ignored"] == false).collect();
    assert_eq!(live.len(), journal.segments.len(), "{what}: segments read");
    for (s, m) in live.iter().zip(&journal.segments) {
        let h = &m.header;
        assert!(s.get("error").is_none(), "{what}: spec decoder refused a segment the engine read: {s}");
        let got = json!({
            "name": file_name(&m.path), "seq": h.segment_seq, "len": m.len, "flags": h.flags,
            "block_size": h.block_size, "salt": h.salt, "image_id": h.image_id, "first_lsn": h.first_lsn,
            "image_block_size": h.image_block_size, "segment_blocks": h.segment_blocks,
        });
        for (k, v) in got.as_object().into_iter().flatten() {
            assert_eq!(&s[k], v, "{what}: segment {} field {k}", h.segment_seq);
        }
    }
    let ignored: Vec<String> = segs.iter().filter(|s| s["ignored"] == true).map(|s| s["name"].to_string()).collect();
    let noted: Vec<String> = journal.notes.iter().map(|n| format!("\"{}\"", file_name(&n.path))).collect();
    assert_eq!(ignored, noted, "{what}: segments passed over (spec decoder, engine)");
}

/// Where the durable journal ends and why, in both readers' terms.
fn compare_end(what: &str, spec: &Spec, engine: &Engine) {
    let end = spec.one("end");
    let out = match &engine.scan {
        Ok(out) => out,
        Err(e) => panic!("{what}: the engine refused what the spec decoder made of it ({end}): {e}"),
    };
    assert_eq!(end["decoded"], true, "{what}: spec decoder refused what the engine read: {end}");
    // The engine's count includes the optional records it skipped.
    let records = end["records"].as_u64().unwrap_or_default() + end["optional_records"].as_u64().unwrap_or_default();
    assert_eq!(records, out.records, "{what}: records");
    assert_eq!(end["optional_records"], out.optional_records, "{what}: optional records");
    assert_eq!(end["first_lsn"], out.first_lsn, "{what}: first LSN");
    assert_eq!(end["last_lsn"], out.last_lsn, "{what}: last LSN");
    let seqs: Vec<u64> = engine.journal.segments.iter().map(|s| s.header.segment_seq).collect();
    let durable = out.end.map(|(i, off)| json!({ "segment": seqs[i], "offset": off })).unwrap_or(Value::Null);
    assert_eq!(end["durable_end"], durable, "{what}: durable end");
    match (&out.tail, end["reason"].as_str()) {
        (None, Some("eof")) => {}
        (Some(t), Some(reason @ ("zero" | "damage"))) => {
            let cut = &end["cut"];
            let seq = cut["segment"].as_u64().unwrap_or_default();
            assert_eq!(file_name(&t.path), seg_name(seq), "{what}: tail segment");
            assert_eq!(cut["offset"], t.offset, "{what}: tail offset ({end} vs {t:?})");
            assert_eq!(reason == "damage", t.damage.is_some(), "{what}: tail damage ({end} vs {t:?})");
            assert_eq!(end["bytes_after_cut"], t.bytes_discarded, "{what}: bytes discarded");
        }
        (t, r) => panic!("{what}: the engine's tail is {t:?}, the spec decoder stopped for {r:?}: {end}"),
    }
}

fn kind_code(k: CheckpointKind) -> u64 {
    match k {
        CheckpointKind::Full => 0,
        CheckpointKind::Incremental => 1,
        CheckpointKind::Metadata => 2,
        CheckpointKind::Emergency => 3,
    }
}

fn compare_checkpoints(what: &str, dir: &Path, spec: &Spec, engine: &Engine) -> usize {
    let cdir = dir.join("checkpoints");
    let records = spec.all("checkpoint");
    for c in &records {
        let file = c["file"].as_str().unwrap_or_default();
        match checkpoint::read(&cdir.join(file), &engine.layout) {
            Ok(r) => {
                assert_eq!(c["valid"], true, "{what}: engine accepts {file}, spec decoder does not: {c}");
                let open: Vec<[u64; 2]> = r.open.iter().map(|o| [o.txid, o.first_lsn]).collect();
                let dirty: Vec<[u64; 2]> = r.dirty.iter().map(|d| [d.block, d.rec_lsn]).collect();
                let got = json!({
                    "seq": r.seq, "kind": kind_code(r.kind), "lsn": r.lsn, "redo_start": r.redo_start,
                    "image_id": r.image_id, "block_size": r.block_size, "block_count": r.block_count,
                    "created": r.created_unix_ms, "open": open, "dirty": dirty,
                });
                for (k, v) in got.as_object().into_iter().flatten() {
                    assert_eq!(&c[k], v, "{what}: {file} field {k}");
                }
            }
            Err(rej) => assert_eq!(c["valid"], false, "{what}: engine refuses {file} ({rej:?}), spec decoder: {c}"),
        }
    }
    let (selected, _) =
        checkpoint::select(dir, &engine.layout, engine.journal.segments.first().map_or(1, |s| s.header.first_lsn))
            .expect("select");
    match (selected, spec.maybe("selected")) {
        (None, None) => {}
        (Some(s), Some(v)) => assert_eq!(v["seq"], s.record.seq, "{what}: checkpoint record chosen"),
        (None, Some(v)) => assert!(v["seq"].is_null(), "{what}: spec decoder chose {v}, the engine none"),
        (Some(s), None) => panic!("{what}: the engine chose checkpoint {}, the spec decoder saw none", s.record.seq),
    }
    if !records.is_empty() {
        let p = spec.one("pointer");
        assert_eq!(p["valid"], true, "{what}: pointer: {p}");
        let newest = records.iter().filter_map(|c| c["seq"].as_u64()).max();
        assert_eq!(p["seq"].as_u64(), newest, "{what}: the pointer names the newest record");
    }
    records.len()
}

/// Everything a crash state decodes to, compared.
fn check_state(what: &str, dir: &Path) -> (Spec, Engine) {
    let spec = spec(dir, RecoveryMode::TolerateTail);
    let engine = engine(dir, RecoveryMode::TolerateTail).unwrap_or_else(|e| panic!("{what}: open: {e}"));
    compare_image(what, &spec, &engine.layout);
    compare_segments(what, &spec, &engine.journal);
    compare_records(what, &spec, &engine);
    compare_end(what, &spec, &engine);
    compare_checkpoints(what, dir, &spec, &engine);
    assert_eq!(spec.status, 0, "{what}: spec decoder exit status");
    assert_eq!(spec.one("end")["invalid_records"], 0, "{what}: records Section 4 calls invalid");
    let notes = spec.all("note");
    assert!(notes.is_empty(), "{what}: spec decoder notes: {notes:?}");
    (spec, engine)
}

fn generate(dir: &Path, p: &GenParams) {
    workloads::generate(dir, p).unwrap_or_else(|e| panic!("seed {}: {e}", p.seed));
}

fn small(seed: u64, policy: Policy, crash: CrashKind) -> GenParams {
    GenParams { policy, crash, ..Preset::Small.params(seed) }
}

fn with_copies(p: GenParams) -> GenParams {
    GenParams { deps_rate: 0.3, deps_reach: 8, ..p }
}

fn with_checkpoints(p: GenParams, style: CheckpointStyle, every: Cadence) -> GenParams {
    GenParams { checkpoints: Some(CheckpointPlan { every, style, ..CheckpointPlan::default() }), ..p }
}

fn tmpdir() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("c");
    (tmp, dir)
}

/// Small-preset journals of several segments, one per crash kind and policy.
#[test]
fn every_crash_kind_under_both_policies_decodes_the_same_record_for_record() {
    for (i, crash) in CrashKind::ALL.into_iter().enumerate() {
        for policy in Policy::ALL {
            let seed = 300 + i as u64 * 2 + policy as u64;
            let p = small(seed, policy, crash);
            let what = format!("seed {seed} {} {}", policy.name(), crash.name());
            let (_tmp, dir) = tmpdir();
            generate(&dir, &p);
            let (spec, _) = check_state(&what, &dir);
            assert!(spec.all("record").len() > 500, "{what}: a real journal");
        }
    }
}

/// COPY records, and checkpoint records of every style with their pointer and the record
/// recovery would start from.
#[test]
fn copies_and_every_checkpoint_style_decode_the_same() {
    let cadences = [Cadence::Txns(37), Cadence::Bytes(48 << 10), Cadence::Txns(80), Cadence::Txns(60)];
    for (i, style) in CheckpointStyle::ALL.into_iter().enumerate() {
        let seed = 400 + i as u64;
        let crash = CrashKind::ALL[(i + 2) % CrashKind::ALL.len()];
        let policy = Policy::ALL[i % 2];
        let p = with_checkpoints(with_copies(small(seed, policy, crash)), style, cadences[i]);
        let what = format!("seed {seed} {} {} copies, {} checkpoints", policy.name(), crash.name(), style.name());
        let (_tmp, dir) = tmpdir();
        generate(&dir, &p);
        let (spec, _) = check_state(&what, &dir);
        assert!(spec.all("record").iter().any(|r| r["type_code"] == 9), "{what}: COPY records");
        assert!(spec.all("checkpoint").len() > 1, "{what}: checkpoint records");
        assert!(spec.one("selected")["seq"].is_u64(), "{what}: a usable checkpoint record");
    }
}

/// 4 KiB journal blocks under 4 KiB image blocks cut every full-block write into FIRST, MIDDLE
/// and LAST fragments and leave padding at block ends; 512-byte image blocks put many records
/// in a block and spread the bitmaps.
#[test]
fn small_journal_blocks_and_small_image_blocks_decode_the_same() {
    let shapes = [(4096u32, 4096u32, 512u64, 64u64), (512, 4096, 4096, 40), (8192, 16384, 1024, 24)];
    for (i, (block_size, journal_block_size, block_count, segment_blocks)) in shapes.into_iter().enumerate() {
        for policy in Policy::ALL {
            let seed = 500 + i as u64 * 2 + policy as u64;
            let crash = CrashKind::ALL[(i * 2 + policy as usize + 2) % CrashKind::ALL.len()];
            let p = GenParams {
                block_size,
                journal_block_size,
                block_count,
                inode_count: block_count,
                segment_blocks,
                txns: 120,
                ..with_copies(small(seed, policy, crash))
            };
            let what = format!(
                "seed {seed} {} {} image {block_size} journal {journal_block_size}",
                policy.name(),
                crash.name()
            );
            let (_tmp, dir) = tmpdir();
            generate(&dir, &p);
            let (spec, _) = check_state(&what, &dir);
            assert!(spec.all("segment").len() > 1, "{what}: several segments");
        }
    }
}

/// Recovery leaves a copy log and a marker: both are decoded from the document and must name
/// the journal as found, with the bytes the engine logged for each copy.
#[test]
fn the_copy_log_and_the_marker_of_a_recovered_directory_decode_the_same() {
    let states = [
        (with_copies(small(600, Policy::Steal, CrashKind::Torn)), 0u64),
        (
            with_checkpoints(
                with_copies(small(601, Policy::NoSteal, CrashKind::GarbageTail)),
                CheckpointStyle::Incremental,
                Cadence::Txns(50),
            ),
            1,
        ),
    ];
    for (p, start_kind) in states {
        let what = format!("seed {} recovered", p.seed);
        let (_tmp, dir) = tmpdir();
        generate(&dir, &p);
        // Without the record recovery writes at the journal's end: the spec decoder selects the
        // newest record, which must then be the one the copy log names.
        let opts = RecoverOptions { final_checkpoint: false, ..RecoverOptions::default() };
        let report = recover(&dir, &opts).unwrap_or_else(|e| panic!("{what}: recover: {e}"));
        assert!(report.copy_log.is_some(), "{what}: recovery wrote a copy log");
        let (spec, engine) = check_state(&what, &dir);
        let log = spec.one("copylog");
        assert_eq!(log["valid"], true, "{what}: copy log: {log}");
        assert_eq!(log["start_kind"], start_kind, "{what}: copy log start");
        if start_kind == 1 {
            let seq = &spec.one("selected")["seq"];
            assert_eq!(&log["start_seq"], seq, "{what}: the copy log names the checkpoint record used");
            let rec = spec.all("checkpoint").into_iter().find(|c| &c["seq"] == seq).expect("that record");
            assert_eq!(log["start_crc"], rec["crc32c"], "{what}: the copy log holds that record's checksum");
        }
        let tag = log["journal_tag_expected"].as_u64().expect("tag");
        assert_eq!(log["tag"], tag, "{what}: journal tag");
        let loaded =
            copylog::load(&dir, tag).expect("load").unwrap_or_else(|| panic!("{what}: engine refuses its log"));
        let entries = log["entries"].as_array().expect("entries");
        assert_eq!(entries.len(), loaded.len(), "{what}: copy log entries");
        assert!(!entries.is_empty(), "{what}: copies were logged");
        for e in entries {
            let lsn = e["lsn"].as_u64().expect("lsn");
            let bytes = loaded.get(lsn).unwrap_or_else(|| panic!("{what}: engine has no entry for LSN {lsn}"));
            assert_eq!(e["bytes"], blob(bytes), "{what}: copy log entry {lsn}");
            let rec = engine.records.iter().find(|r| r["lsn"] == lsn).expect("the entry's record");
            assert_eq!(rec["type_code"], 9, "{what}: entry {lsn} names a COPY");
            assert_eq!(rec["fields"]["len"], e["bytes"]["len"], "{what}: entry {lsn} length");
        }
        let marker = spec.one("marker");
        assert_eq!(marker["files_match"], true, "{what}: marker files: {marker}");
        assert_eq!(marker["last_lsn_match"], true, "{what}: marker last LSN: {marker}");
    }
}

/// Absolute mode refuses exactly what the document calls damage (a torn or garbage tail) and
/// accepts zero fill and clean ends.
#[test]
fn absolute_mode_refuses_the_same_tails() {
    for (i, crash) in CrashKind::ALL.into_iter().enumerate() {
        let seed = 700 + i as u64;
        let what = format!("seed {seed} {} absolute", crash.name());
        let (_tmp, dir) = tmpdir();
        generate(&dir, &small(seed, Policy::ALL[i % 2], crash));
        let spec = spec(&dir, RecoveryMode::Absolute);
        let engine = engine(&dir, RecoveryMode::Absolute).and_then(|e| e.scan.map(|_| ()));
        let end = spec.one("end");
        assert_eq!(end["decoded"] == true, engine.is_ok(), "{what}: spec decoder {end}, engine {engine:?}");
        let damaged = matches!(crash, CrashKind::Torn | CrashKind::GarbageTail);
        assert_eq!(engine.is_ok(), !damaged, "{what}: {engine:?}");
    }
}

/// Flipped bits inside the journal: both readers find the same damage, and agree on whether
/// valid records follow it (an error) or not (a torn tail), and on where the next one starts.
#[test]
fn flipped_bits_are_found_at_the_same_place() {
    let mut mid = 0;
    for seed in 0..10u64 {
        let crash = CrashKind::ALL[seed as usize % CrashKind::ALL.len()];
        let what = format!("seed {} {} flipped", 800 + seed, crash.name());
        let (_tmp, dir) = tmpdir();
        generate(&dir, &small(800 + seed, Policy::ALL[seed as usize % 2], crash));
        let flips = workloads::corrupt(&dir, workloads::CorruptTarget::Journal, 1, seed).expect("corrupt");
        let spec = spec(&dir, RecoveryMode::TolerateTail);
        let engine = engine(&dir, RecoveryMode::TolerateTail).unwrap_or_else(|e| panic!("{what}: open: {e}"));
        let end = spec.one("end");
        match &engine.scan {
            Err(Error::MidJournalCorruption { path, offset, next_path, next_offset, .. }) => {
                mid += 1;
                assert_eq!(end["decoded"], false, "{what}: {flips:?} spec decoder {end}");
                let at = &end["damage_at"];
                assert_eq!(seg_name(at["segment"].as_u64().unwrap_or_default()), file_name(path), "{what}: {end}");
                assert_eq!(at["offset"], *offset, "{what}: damage offset: {end}");
                let next = &end["valid_after"];
                assert_eq!(seg_name(next["segment"].as_u64().unwrap_or_default()), file_name(next_path), "{what}");
                assert_eq!(next["offset"], *next_offset, "{what}: next valid fragment: {end}");
                assert_eq!(spec_records(&spec), engine.records, "{what}: records before the damage");
            }
            Err(e) => panic!("{what}: {flips:?}: {e}"),
            Ok(_) => {
                compare_records(&what, &spec, &engine);
                compare_end(&what, &spec, &engine);
            }
        }
    }
    assert!(mid > 3, "only {mid} flips landed before the durable end");
}

/// How a reader ended a journal, in terms both readers share.
#[derive(Debug, Clone, PartialEq)]
enum End {
    /// The clean end of the last segment.
    Eof,
    /// Zero fill with nothing valid after it, where the non-durable bytes start.
    Zero(String, u64),
    /// Damage with nothing valid after it (a torn tail), where the non-durable bytes start.
    Cut(String, u64),
    /// MidJournalCorruption, naming where the next valid record starts.
    Mid(String, u64),
    /// Any other refusal.
    Refused,
}

fn engine_end(engine: &Result<Engine, Error>) -> End {
    match engine.as_ref().map(|e| &e.scan) {
        Ok(Ok(out)) => match &out.tail {
            None => End::Eof,
            Some(t) if t.damage.is_none() => End::Zero(file_name(&t.path), t.offset),
            Some(t) => End::Cut(file_name(&t.path), t.offset),
        },
        Ok(Err(Error::MidJournalCorruption { next_path, next_offset, .. })) => {
            End::Mid(file_name(next_path), *next_offset)
        }
        Ok(Err(_)) | Err(_) => End::Refused,
    }
}

fn spec_end(spec: &Spec) -> End {
    let end = spec.one("end");
    let at =
        |v: &Value| (seg_name(v["segment"].as_u64().unwrap_or_default()), v["offset"].as_u64().unwrap_or_default());
    if !end["valid_after"].is_null() {
        let (f, o) = at(&end["valid_after"]);
        return End::Mid(f, o);
    }
    match end["reason"].as_str() {
        Some("eof") => End::Eof,
        Some("zero") => {
            let (f, o) = at(&end["cut"]);
            End::Zero(f, o)
        }
        Some("damage") => {
            let (f, o) = at(&end["cut"]);
            End::Cut(f, o)
        }
        _ => End::Refused,
    }
}

fn lsns_invalid_by_spec(spec: &Spec) -> Vec<u64> {
    spec.all("record").into_iter().filter(|r| r.get("invalid").is_some()).filter_map(|r| r["lsn"].as_u64()).collect()
}

/// Where the document and the engine part ways, case by case (docs/SPEC-CHECK.md explains
/// each): what the engine does, then what the spec decoder does. Pinned, so that a fix on
/// either side, or a new disagreement, fails here and gets written down.
fn known(case: &str) -> Option<(End, End)> {
    let seg = |n: u64| seg_name(n);
    Some(match case {
        // Zero fill ends a non-last segment for the engine; Section 6 makes it MidJournalCorruption.
        "zero_fill_then_next_segment" => (End::Eof, End::Mid(seg(2), 4096)),
        // A segment whose first_lsn skips an LSN: the engine refuses even with nothing after it;
        // Section 6 makes it damage with nothing valid after, a torn tail.
        "empty_last_segment_lsn_gap" => (End::Refused, End::Cut(seg(2), 4096)),
        // The same with records after it: both refuse, the engine with a plain LSN error
        // rather than MidJournalCorruption.
        "segment_first_lsn_wrong" | "segment_lsn_gap" | "first_record_lsn_not_header" => {
            (End::Refused, End::Mid(seg(2), 4096))
        }
        // An unfinished record then zero fill: damage (RecordTruncated) for the engine, zero
        // fill for Section 6; both cut at the record.
        "first_then_zero" => (End::Cut(seg(1), 5836), End::Zero(seg(1), 5836)),
        // A torn record whose damage is in a later fragment: the engine's tail names the damaged
        // fragment, though the record's earlier fragments are not durable either; the spec
        // decoder cuts where the non-durable bytes start, at the record's FIRST fragment.
        "torn_last_fragment" => (End::Cut(seg(1), 8192), End::Cut(seg(1), 5836)),
        _ => return None,
    })
}

/// Invalid records (Section 4) where the engine and the document disagree: the engine's set
/// (None: it refuses in skip-corrupt mode), then the spec decoder's.
fn known_invalid(case: &str) -> Option<(Option<Vec<u64>>, Vec<u64>)> {
    Some(match case {
        // A record after the COMMIT of a transaction already a loser goes unreported.
        "stray_after_loser" => (Some(vec![16]), vec![16, 18]),
        // Skip-corrupt refuses the journal instead of reporting the COPY and going on.
        "copy_below_committed_revoke" => (None, vec![17]),
        _ => return None,
    })
}

/// Journals encoded from the document alone (spec/craft.py) for the corners generated crash
/// states never reach: every record type and flag, 1-byte fragments, every padding size,
/// optional and unknown types, each kind of damage with and without valid records after it,
/// short, empty and over-long segments, and records that decode but cannot be applied.
#[test]
fn crafted_corners_of_the_format_decode_the_same_or_as_documented() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let craft = script("craft.py");
    let (status, cases) = run_python(&[craft.as_os_str(), tmp.path().as_os_str()]);
    assert_eq!(status, 0, "craft.py");
    assert!(cases.len() > 40, "{} cases", cases.len());
    let dirs: Vec<PathBuf> = cases.iter().map(|c| tmp.path().join(c["case"].as_str().expect("case name"))).collect();
    let tolerant = spec_many(&dirs, RecoveryMode::TolerateTail);
    let absolute = spec_many(&dirs, RecoveryMode::Absolute);
    let mut disagreements = Vec::new();
    for (((c, dir), spec_tt), spec_abs) in cases.iter().zip(&dirs).zip(&tolerant).zip(&absolute) {
        let name = c["case"].as_str().expect("case name");
        let what = format!("{name} ({})", c["doc"].as_str().unwrap_or_default());

        let engine_tt = engine(dir, RecoveryMode::TolerateTail);
        let (e, s) = (engine_end(&engine_tt), spec_end(spec_tt));
        match known(name) {
            Some((ke, ks)) => {
                assert_eq!((&e, &s), (&ke, &ks), "{what}: a known disagreement changed (engine, spec decoder)");
                disagreements.push(name);
            }
            None => assert_eq!(e, s, "{what}: where the journal ends (left: engine, right: spec decoder)"),
        }
        if let Ok(engine) = &engine_tt {
            let ours = spec_records(spec_tt);
            let n = ours.len().min(engine.records.len());
            assert_eq!(ours[..n], engine.records[..n], "{what}: records (left: spec decoder, right: engine)");
            if known(name).is_none() {
                assert_eq!(ours.len(), engine.records.len(), "{what}: record counts (spec decoder, engine)");
                if engine.scan.is_ok() {
                    compare_end(&what, spec_tt, engine);
                }
            }
        }

        let engine_abs = engine(dir, RecoveryMode::Absolute).is_ok_and(|e| e.scan.is_ok());
        let spec_abs_ok = spec_abs.one("end")["decoded"] == true;
        // Both follow from the disagreements above: the engine calls an unfinished record before
        // zero fill damage, and reads on past zero fill at the end of a non-last segment.
        if let Some(k) = match name {
            "first_then_zero" => Some((false, true)),
            "zero_fill_then_next_segment" => Some((true, false)),
            _ => None,
        } {
            assert_eq!((engine_abs, spec_abs_ok), k, "{what}: absolute mode (engine, spec decoder)");
        } else {
            assert_eq!(engine_abs, spec_abs_ok, "{what}: absolute mode accepts (left: engine, right: spec decoder)");
        }

        if matches!(s, End::Eof | End::Zero(..) | End::Cut(..)) && known(name).is_none() {
            let theirs = recovery::analyze_dir(dir, RecoveryMode::SkipCorrupt, &IoOptions::default())
                .ok()
                .map(|(_, _, _, a)| a.invalid.iter().map(|i| i.lsn).collect::<Vec<u64>>());
            let ours = lsns_invalid_by_spec(spec_tt);
            match known_invalid(name) {
                Some(k) => {
                    assert_eq!((theirs, ours), k, "{what}: a known disagreement changed (engine, spec decoder)");
                    disagreements.push(name);
                }
                None => assert_eq!(theirs, Some(ours), "{what}: invalid records (left: engine, right: spec decoder)"),
            }
        }
        let notes =
            spec_tt.all("note").len() + spec_tt.all("segment").iter().filter(|s| s.get("note").is_some()).count();
        let noted = matches!(name, "nonzero_padding" | "header_block_not_zero");
        assert_eq!(notes > 0, noted, "{what}: the spec decoder's notes on bytes the document calls zero");
    }
    assert_eq!(disagreements.len(), 9, "known disagreements seen: {disagreements:?}");
}

/// The header of FORMAT.md says "initial value 0, no final masking". Read literally (register
/// preset 0, no final complement) no checksum in a generated state validates; the bytes carry
/// the standard CRC-32C (preset and final complement all ones), which is what the `crc32c`
/// crate computes when given 0 as the previous checksum.
#[test]
fn checksums_are_standard_crc32c_not_the_literal_reading_of_the_document() {
    assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
    let selftest = Command::new(python()).arg(script("fastrec_spec.py")).arg("--selftest").output().expect("run");
    assert!(selftest.status.success(), "selftest: {}", String::from_utf8_lossy(&selftest.stdout));
    let (_tmp, dir) = tmpdir();
    generate(&dir, &small(900, Policy::NoSteal, CrashKind::Clean));
    let script = script("fastrec_spec.py");
    let (status, lines) = run_python(&[script.as_os_str(), dir.as_os_str(), "--crc-literal".as_ref()]);
    let literal = Spec { status, lines };
    assert_eq!(literal.status, 1);
    assert!(literal.one("image")["error"].as_str().is_some_and(|e| e.contains("crc32c")), "{}", literal.one("image"));
    assert!(literal.all("segment").iter().all(|s| s["error"].as_str().is_some_and(|e| e.contains("crc32c"))));
    assert_eq!(spec(&dir, RecoveryMode::TolerateTail).status, 0);
}
