//! Reliability trials at a size the test suite can afford (docs/RELIABILITY.md has the large
//! runs): a live writer killed with SIGKILL (and resumed and killed again), simulated
//! power-loss crash images, and recovery killed at random moments and at every phase. Each
//! trial is judged against the writer's log of commit digests or the generator's oracle,
//! never against another recovery.

use std::path::Path;
use std::process::Command;

fn trials(kind: &str, n: u64, seed: u64, out: &Path, extra: &[&str]) -> Vec<serde_json::Value> {
    let work = tempfile::tempdir().expect("scratch");
    let o = Command::new(env!("CARGO_BIN_EXE_fastrec"))
        .args(["trials", "--kind", kind, "--trials", &n.to_string(), "--seed", &seed.to_string()])
        .arg("--work")
        .arg(work.path())
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .expect("run fastrec trials");
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{kind} trials failed:\n{stdout}\n{stderr}");
    std::fs::read_to_string(out)
        .expect("read trials output")
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

fn count(lines: &[serde_json::Value], f: impl Fn(&serde_json::Value) -> bool) -> usize {
    lines.iter().filter(|l| f(l)).count()
}

#[test]
fn killed_writers_recover_every_acknowledged_commit_and_resume() {
    let dir = tempfile::tempdir().expect("scratch");
    let lines = trials("sigkill", 16, 3, &dir.path().join("t.ndjson"), &[]);
    assert_eq!(lines.len(), 16);
    assert_eq!(count(&lines, |l| l["verdict"] == "violation"), 0);
    // Trials that proved something: a recovery that kept durable commits.
    let proved = count(&lines, |l| l["verdict"] == "ok" && l["k_got"].as_u64().unwrap_or(0) > 0);
    assert!(proved >= 8, "only {proved} of 16 kills landed after the first commit");
    assert!(count(&lines, |l| l["detail"].as_str().unwrap_or("").contains("resumed")) > 0, "no resumed writer");
}

#[test]
fn simulated_power_cuts_recover_a_prefix_with_every_synced_commit() {
    let dir = tempfile::tempdir().expect("scratch");
    let lines = trials("images", 200, 8, &dir.path().join("t.ndjson"), &[]);
    assert_eq!(lines.len(), 200);
    assert_eq!(count(&lines, |l| l["verdict"] != "ok"), 0);
    // The states reach the interesting cases: unsynced commits lost and torn tails.
    assert!(count(&lines, |l| l["k_got"].as_u64() < l["k_max"].as_u64()) > 0, "no state lost an unsynced commit");
    assert!(count(&lines, |l| l["tail"] == "torn") > 0, "no torn tail");
}

#[test]
fn recovery_killed_anywhere_is_completed_by_the_next_run() {
    let dir = tempfile::tempdir().expect("scratch");
    // 30 trials: every tenth phase boundary once per third trial, the rest random kills.
    let lines = trials("recovery-kill", 30, 4, &dir.path().join("t.ndjson"), &[]);
    assert_eq!(lines.len(), 30);
    assert_eq!(count(&lines, |l| l["verdict"] != "ok"), 0);
    let interrupted = count(&lines, |l| {
        l["detail"].as_str().is_some_and(|d| !d.contains("had finished") && !d.contains("not reached"))
    });
    assert!(interrupted >= 15, "only {interrupted} of 30 recoveries were interrupted");
}

#[test]
fn every_crash_state_of_a_tiny_writer_recovers() {
    let dir = tempfile::tempdir().expect("scratch");
    let lines = trials("exhaustive", 1, 2, &dir.path().join("t.ndjson"), &["--txns", "2"]);
    let summary = lines.last().expect("a summary line");
    assert_eq!(summary["violations"], 0);
    assert!(summary["states"].as_u64().expect("states") > 100, "{summary}");
}

/// After a recovery and a resumed writer, the journal still holds the first crash's losers,
/// settled by that recovery: replaying the journal from its start would undo them again. The
/// normal recovery (from the checkpoint record recovery wrote) gives the writer's last commit.
#[test]
fn a_resumed_steal_journal_is_not_replayed_from_its_start() {
    use recovery::{recover, Error, RecoverOptions};
    use workloads::{GenParams, Policy, Preset};
    let tmp = tempfile::tempdir().expect("scratch");
    let dir = tmp.path().join("w");
    let mut p = Preset::Small.params(9);
    p.policy = Policy::Steal;
    p.unlogged_write_rate = 0.0;
    p.txns = 60;
    workloads::run_live(&dir, &p, &tmp.path().join("first.log"), false).expect("first writer");
    let first = recover(&dir, &RecoverOptions::default()).expect("first recovery");
    assert!(first.final_checkpoint.is_some(), "recovery wrote its record at the journal's end");
    let p2 = GenParams { seed: 10, ..p.clone() };
    let log = tmp.path().join("second.log");
    workloads::run_live(&dir, &p2, &log, true).expect("resumed writer");
    let image = dir.join("image.img");
    let before = std::fs::read(&image).expect("image");
    let opts = RecoverOptions { use_checkpoints: false, ..RecoverOptions::default() };
    match recover(&dir, &opts) {
        Err(Error::Checkpoint { reason, .. }) => assert!(reason.contains("settled"), "{reason}"),
        other => panic!("replaying a resumed steal journal from its start: {:?}", other.map(|_| ())),
    }
    assert_eq!(std::fs::read(&image).expect("image"), before, "a refused recovery left the image as it was");
    recover(&dir, &RecoverOptions::default()).expect("recovery from the checkpoint records");
    let text = std::fs::read_to_string(&log).expect("log");
    let last = text.lines().rev().find(|l| l.starts_with("c ")).expect("a commit");
    let want = last.split(' ').nth(3).expect("digest");
    let img = std::fs::read(&image).expect("image");
    let got = workloads::digest::image_digest(&workloads::digest::block_digests(&img, p.block_size as usize));
    assert_eq!(got, want, "the recovered image is the state after the resumed writer's last commit");
}
