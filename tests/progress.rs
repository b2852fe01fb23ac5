//! Live progress: the JSON Lines stream and the observer API report every phase in order,
//! with monotone counters, totals that agree with the report, and an ETA that ends at zero;
//! cancellation stops at a safe point and the next recovery completes to the oracle image.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use common::{generate, image, matches_oracle};
use recovery::progress::{Observer, Phase, Snapshot};
use recovery::{Monitor, RecoverOptions, RecoveryReport};
use serde_json::Value;
use workloads::{Cadence, CheckpointPlan, CheckpointStyle, GenParams, Policy, Preset};

fn fastrec(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fastrec")).args(args).output().expect("run fastrec")
}

/// The crash states the checks run on: serial and parallel, no-steal and steal, with and
/// without a checkpoint, with copies.
fn cases() -> Vec<(&'static str, GenParams, Vec<&'static str>)> {
    let steal = GenParams { txns: 1500, ..Preset::Steal.params(11) };
    let mut ckpt = GenParams { txns: 1200, ..Preset::Default.params(12) };
    ckpt.checkpoints =
        Some(CheckpointPlan { every: Cadence::Txns(300), style: CheckpointStyle::Full, ..CheckpointPlan::default() });
    let deps = GenParams { txns: 1500, ..Preset::Deps.params(13) };
    vec![
        ("no-steal serial", GenParams { policy: Policy::NoSteal, ..steal.clone() }, vec!["--workers", "1"]),
        ("steal parallel", steal.clone(), vec!["--workers", "2", "--parallel-threshold", "1"]),
        ("checkpoint", ckpt, vec!["--workers", "1"]),
        ("copies parallel", deps, vec!["--workers", "2", "--parallel-threshold", "1"]),
        ("steal pwrite", steal, vec!["--workers", "1", "--image-io", "pwrite", "--memory-budget", "1M"]),
    ]
}

fn num(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"))
}

fn phase_stat<'a>(report: &'a Value, phase: &str) -> &'a Value {
    report["stats"]["phases"]
        .as_array()
        .expect("stats.phases")
        .iter()
        .find(|p| p["phase"] == phase)
        .unwrap_or_else(|| panic!("no {phase} in the report's statistics"))
}

/// The stream's invariants, and its agreement with the report.
fn check_stream(case: &str, events: &[Value], report: &Value) {
    // Every phase, in order, started then finished; progress only inside its phase.
    let mut expect = Phase::ALL.iter().map(|p| p.name());
    let mut current: Option<String> = None;
    let mut last_done = 0u64;
    let mut last_elapsed = 0f64;
    let mut ends: Vec<&Value> = Vec::new();
    for e in events {
        let phase = e["phase"].as_str().expect("phase").to_string();
        let elapsed = e["elapsed_s"].as_f64().expect("elapsed_s");
        assert!(elapsed >= last_elapsed, "{case}: elapsed went back: {e}");
        last_elapsed = elapsed;
        assert_eq!(e["schema"], 1, "{case}");
        match e["event"].as_str().expect("event") {
            "phase-start" => {
                assert!(current.is_none(), "{case}: {phase} started inside {current:?}");
                assert_eq!(Some(phase.as_str()), expect.next(), "{case}: phases out of order");
                assert_eq!(num(e, "done"), 0, "{case}: {e}");
                current = Some(phase);
                last_done = 0;
            }
            "progress" => {
                assert_eq!(current.as_deref(), Some(phase.as_str()), "{case}: progress outside its phase: {e}");
                let (done, total) = (num(e, "done"), num(e, "total"));
                assert!(done >= last_done, "{case}: done went back in {phase}: {e}");
                assert!(total == 0 || done <= total, "{case}: done beyond total: {e}");
                if let Some(eta) = e["eta_s"].as_f64() {
                    assert!(eta >= 0.0 && eta.is_finite(), "{case}: {e}");
                }
                last_done = done;
            }
            "phase-end" => {
                assert_eq!(current.as_deref(), Some(phase.as_str()), "{case}: {e}");
                let (done, total) = (num(e, "done"), num(e, "total"));
                assert!(done >= last_done, "{case}: done went back at the end of {phase}: {e}");
                assert_eq!(done, total, "{case}: a finished phase did all its units: {e}");
                assert_eq!(e["eta_s"].as_f64(), Some(0.0), "{case}: {e}");
                current = None;
                ends.push(e);
            }
            "finished" => {
                assert!(current.is_none() && expect.next().is_none(), "{case}: finished early: {e}");
                assert_eq!(e["eta_s"].as_f64(), Some(0.0), "{case}: {e}");
            }
            other => panic!("{case}: unexpected event {other}: {e}"),
        }
    }
    assert_eq!(events.last().map(|e| e["event"].clone()), Some(Value::from("finished")), "{case}");

    // The final totals are the report's: its statistics, and its own independent fields.
    for e in &ends {
        let phase = e["phase"].as_str().expect("phase");
        if phase == "done" {
            continue;
        }
        let s = phase_stat(report, phase);
        assert_eq!((num(e, "done"), num(e, "ops"), num(e, "bytes")), (num(s, "units"), num(s, "ops"), num(s, "bytes")));
    }
    let end = |phase: &str| *ends.iter().find(|e| e["phase"] == phase).expect("phase end");
    let skipped = report["checkpoint"]["journal_bytes_skipped"].as_u64().unwrap_or(0);
    assert_eq!(num(end("scan"), "done"), num(report, "journal_bytes") - skipped, "{case}: scan bytes");
    assert_eq!(num(end("scan"), "ops"), num(report, "records_scanned"), "{case}: scan records");
    assert_eq!(num(end("redo"), "done"), num(report, "records_scanned") * num(report, "windows"), "{case}: redo");
    assert_eq!(num(end("redo"), "ops"), num(end("redo"), "done"), "{case}: redo ops are records considered");
    if report["policy"] == "no-steal" {
        assert_eq!(num(end("undo"), "total"), 0, "{case}: no-steal has nothing to undo");
    } else {
        assert!(num(end("undo"), "done") >= num(&report["replay"], "undo_applied"), "{case}: undo");
    }
    assert_eq!(num(end("orphan-cleanup"), "ops"), num(&report["replay"], "orphans_freed"), "{case}: orphans");
    assert_eq!(num(end("flush"), "ops"), num(&report["replay"], "blocks_written"), "{case}: flush");
    // A checkpoint restores nothing; only a rebuild from a snapshot does.
    assert_eq!(num(end("restore-snapshot"), "total"), 0, "{case}");
    if let Some(c) = report["checkpoint"].as_object() {
        assert!(c["journal_bytes_skipped"].as_u64().expect("bytes") > 0, "{case}: the checkpoint saved nothing");
        assert_eq!(num(end("load-checkpoint"), "ops"), 1, "{case}: one record read");
    }
}

#[test]
fn json_stream_has_every_phase_in_order_and_agrees_with_the_report() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut ticks = 0;
    for (i, (case, params, flags)) in cases().into_iter().enumerate() {
        let dir = tmp.path().join(format!("c{i}"));
        generate(&dir, &params);
        let d = dir.to_str().expect("utf-8");
        let report_path = dir.join("report.json");
        let mut args = vec!["recover", d, "--progress", "json", "--progress-interval", "1ms", "-q", "--report"];
        args.push(report_path.to_str().expect("utf-8"));
        args.extend(flags.iter().copied());
        let o = fastrec(&args);
        assert!(o.status.success(), "{case}: {}", String::from_utf8_lossy(&o.stderr));
        assert!(o.stdout.is_empty(), "{case}: progress goes to stderr, and -q prints nothing else");
        let events: Vec<Value> = String::from_utf8_lossy(&o.stderr)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{case}: not JSON ({e}): {l}")))
            .collect();
        let report: Value = serde_json::from_slice(&std::fs::read(&report_path).expect("report")).expect("json");
        assert_eq!(report["schema"], 3);
        check_stream(case, &events, &report);
        ticks += events.iter().filter(|e| e["event"] == "progress").count();
        assert!(matches_oracle(&dir), "{case}: recovered image differs from the oracle");
    }
    assert!(ticks > 0, "at a 1 ms interval some periodic snapshots must appear");
}

#[test]
fn progress_none_and_a_pipe_print_no_progress() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("c");
    generate(&dir, &Preset::Small.params(5));
    let d = dir.to_str().expect("utf-8");
    // stderr is a pipe here, so auto draws nothing; none never does.
    for mode in ["auto", "none"] {
        let o = fastrec(&["recover", d, "--force", "--progress", mode, "-q"]);
        assert!(o.status.success());
        assert!(o.stderr.is_empty(), "{mode}: {}", String::from_utf8_lossy(&o.stderr));
    }
    let o = fastrec(&["recover", d, "--progress-interval", "soon"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--progress-interval"));
}

/// Records what an observer is told, and on which thread.
#[derive(Default)]
struct Recording {
    events: Mutex<Vec<Value>>,
    threads: Mutex<Vec<String>>,
    /// Set this flag at the first snapshot in this phase or a later one.
    cancel_in: Option<(Phase, &'static AtomicBool)>,
}

impl Recording {
    fn push(&self, event: &str, s: &Snapshot) {
        let mut v = serde_json::to_value(s).expect("snapshot serialises");
        v["event"] = event.into();
        self.events.lock().expect("lock").push(v);
        let name = std::thread::current().name().unwrap_or("").to_string();
        self.threads.lock().expect("lock").push(name);
    }
}

impl Observer for Recording {
    fn phase_started(&self, s: &Snapshot) {
        self.push("phase-start", s);
    }
    fn progress(&self, s: &Snapshot) {
        if let Some((phase, flag)) = self.cancel_in {
            if s.phase >= phase && s.phase < Phase::Flush {
                flag.store(true, Ordering::Relaxed);
            }
        }
        self.push("progress", s);
    }
    fn phase_finished(&self, s: &Snapshot) {
        self.push("phase-end", s);
    }
    fn finished(&self, s: &Snapshot, error: Option<&str>) {
        self.push(if error.is_some() { "failed" } else { "finished" }, s);
    }
}

fn opts(workers: usize) -> RecoverOptions {
    RecoverOptions { workers: Some(workers), parallel_threshold: 1, ..RecoverOptions::default() }
}

#[test]
fn the_observer_sees_the_same_stream_on_the_progress_thread() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for (i, workers) in [1, 2].into_iter().enumerate() {
        let dir = tmp.path().join(format!("c{i}"));
        generate(&dir, &GenParams { txns: 1500, ..Preset::Steal.params(21) });
        let rec = Recording::default();
        let m = Monitor { observer: Some(&rec), interval: Duration::from_millis(1), cancel: None };
        let report: RecoveryReport = recovery::recover_with(&dir, &opts(workers), &m).expect("recovers");
        let report = serde_json::to_value(&report).expect("report serialises");
        let events = rec.events.into_inner().expect("lock");
        check_stream(&format!("observer, {workers} workers"), &events, &report);
        let threads = rec.threads.into_inner().expect("lock");
        assert!(threads.iter().all(|t| t == "fastrec-progress"), "callbacks ran on {threads:?}");
        let stats = &report["stats"];
        assert!(stats["batch_apply"]["count"].as_u64().expect("count") > 0);
        assert!(stats["segment_read"]["count"].as_u64().expect("count") > 0);
        let lat = &stats["batch_apply"];
        let q = |k: &str| lat[k].as_f64().expect("quantile");
        assert!(q("p50_us") <= q("p99_us") && q("p99_us") <= q("p999_us") && q("p999_us") <= q("max_us"));
        if workers == 2 {
            let busy = stats["workers"].as_array().expect("workers");
            assert!(busy.iter().any(|w| w["phase"] == "redo") && busy.iter().any(|w| w["phase"] == "scan"));
        }
        assert_eq!(report["config"]["workers"], workers);
        assert!(matches_oracle(&dir));
    }
}

/// How a test cancels.
#[derive(Clone, Copy, Debug)]
enum Cancel {
    /// The flag is set before recovery starts.
    Before,
    /// `FaultPoint::CancelIn`: as the phase starts, exactly as if the flag were set then.
    In(Phase),
    /// The flag is set by the observer, from the progress thread, at the first snapshot of
    /// this phase or a later one before the flush (the race a real Ctrl-C runs).
    Async(Phase),
}

fn cancel_then_complete(case: &str, params: &GenParams, o: &RecoverOptions, how: Cancel) {
    static FLAG: AtomicBool = AtomicBool::new(false);
    FLAG.store(matches!(how, Cancel::Before), Ordering::Relaxed);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("c");
    generate(&dir, params);
    let before = image(&dir);
    let o = match how {
        Cancel::In(p) => RecoverOptions { fault: Some(recovery::FaultPoint::CancelIn(p)), ..*o },
        _ => *o,
    };
    let rec = Recording {
        cancel_in: match how {
            Cancel::Async(p) => Some((p, &FLAG)),
            _ => None,
        },
        ..Recording::default()
    };
    let m = Monitor { observer: Some(&rec), interval: Duration::from_millis(1), cancel: Some(&FLAG) };
    let err = recovery::recover_with(&dir, &o, &m).err().unwrap_or_else(|| panic!("{case}: not cancelled"));
    let recovery::Error::Cancelled { image_changed, phase: stopped, .. } = &err else {
        panic!("{case}: expected a cancellation, got {err}");
    };
    assert!(err.to_string().contains("run recovery again"), "{err}");
    match how {
        Cancel::Before => {
            assert!(!image_changed && *stopped == "locate", "{case}: {err}");
            assert_eq!(image(&dir), before, "{case}: cancelled before anything, the image is untouched");
        }
        Cancel::In(p) => assert_eq!(*stopped, p.name(), "{case}: {err}"),
        Cancel::Async(p) => {
            let at = Phase::ALL.iter().position(|q| q.name() == *stopped).expect("a phase name");
            assert!(at >= p.index() && at < Phase::Flush.index(), "{case}: stopped in {stopped}");
        }
    }
    if !image_changed {
        assert_eq!(image(&dir), before, "{case}: the error says the image is untouched: {err}");
    }
    let events = rec.events.into_inner().expect("lock");
    assert_eq!(events.last().map(|e| e["event"].clone()), Some(Value::from("failed")), "{case}");
    assert!(!dir.join("recovered.json").exists(), "{case}: a cancelled recovery writes no marker");
    FLAG.store(false, Ordering::Relaxed);
    let o = RecoverOptions { fault: None, ..o };
    recovery::recover(&dir, &o).unwrap_or_else(|e| panic!("{case}: the second recovery fails: {e}"));
    assert!(matches_oracle(&dir), "{case}: after a cancellation the next recovery reaches the oracle");
}

#[test]
fn cancellation_stops_safely_and_the_next_recovery_completes() {
    let steal = GenParams { txns: 3000, ..Preset::Steal.params(31) };
    let deps = GenParams { txns: 3000, ..Preset::Deps.params(32) };
    let pwrite = RecoverOptions { image_io: recovery::ImageIo::Pwrite, ..opts(1) };
    // Many windows: each rescans the journal, so redo runs long enough for a flag set from
    // another thread to land in it.
    let windows = RecoverOptions { memory_budget_bytes: 1 << 20, ..pwrite };
    cancel_then_complete("before start", &steal, &opts(1), Cancel::Before);
    for (case, params, o) in [
        ("steal serial", &steal, opts(1)),
        ("steal parallel", &steal, opts(2)),
        ("copies serial", &deps, opts(1)),
        ("copies parallel", &deps, opts(2)),
        ("steal pwrite", &steal, pwrite),
        ("steal pwrite, windows", &steal, windows),
    ] {
        // With --image-io pwrite, orphan cleanup happens inside redo's windows: once they are
        // written back only the fsync is left, so the last safe point is in redo.
        let last = if o.image_io == recovery::ImageIo::Pwrite { Phase::Redo } else { Phase::OrphanCleanup };
        for phase in [Phase::Scan, Phase::Analyze, Phase::Redo, last] {
            cancel_then_complete(&format!("{case}, in {phase}"), params, &o, Cancel::In(phase));
        }
    }
    cancel_then_complete(
        "steal pwrite, windows, from the progress thread",
        &steal,
        &windows,
        Cancel::Async(Phase::Redo),
    );
}

#[test]
fn ctrl_c_cancels_the_cli_with_status_130_and_a_rerun_completes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("c");
    generate(&dir, &GenParams { txns: 4000, ..Preset::Steal.params(41) });
    let d = dir.to_str().expect("utf-8");
    let mut child = Command::new(env!("CARGO_BIN_EXE_fastrec"))
        // Windowed: redo rescans the journal once per window, long enough to interrupt.
        .args(["recover", d, "--workers", "1", "--image-io", "pwrite", "--memory-budget", "1M"])
        .args(["--progress", "json", "--progress-interval", "1ms"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let mut sent = false;
    let mut lines = Vec::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.expect("line");
        if !sent && line.contains("\"event\":\"progress\"") && line.contains("\"phase\":\"redo\"") {
            // SAFETY: kill(2) with a child's pid and SIGINT has no memory-safety preconditions.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
            sent = true;
        }
        lines.push(line);
    }
    let status = child.wait().expect("wait");
    assert!(sent, "no progress during redo to interrupt: {lines:?}");
    assert_eq!(status.code(), Some(130), "{lines:?}");
    let last = lines.last().expect("output");
    assert!(last.contains("recovery cancelled during") && last.contains("run recovery again"), "{last}");
    assert!(lines.iter().any(|l| l.contains("\"event\":\"failed\"")), "the stream says it stopped");
    let o = fastrec(&["recover", d, "-q"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(fastrec(&["verify", d]).status.code(), Some(0));
}
