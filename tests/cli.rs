//! The `fastrec` binary: exit codes, one-line errors, and the commands working together.

use std::process::Command;

fn fastrec(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fastrec")).args(args).output().expect("run fastrec")
}

fn text(o: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn gen_inspect_verify_recover_verify() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("c");
    let d = dir.to_str().expect("utf-8 path");
    let o = fastrec(&["gen", "--out", d, "--preset", "small", "--seed", "7", "--policy", "steal", "--crash", "torn"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = fastrec(&["inspect", d]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("in flight at the crash"), "{}", text(&o));
    let o = fastrec(&["verify", d]);
    assert_eq!(o.status.code(), Some(1), "a crash state must not verify: {}", text(&o));
    assert!(text(&o).contains("first bad block"), "{}", text(&o));
    let report = tmp.path().join("r.json");
    let o = fastrec(&["recover", d, "--report", report.to_str().expect("utf-8")]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("rolled back"), "{}", text(&o));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).expect("report")).expect("json");
    assert_eq!(json["schema"], 3);
    assert!(json["records_scanned"].as_u64().expect("records") > 0);
    let o = fastrec(&["verify", d]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = fastrec(&["recover", d]);
    assert!(text(&o).contains("already recovered"), "{}", text(&o));
}

#[test]
fn errors_are_one_line_and_exit_2() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path().to_str().expect("utf-8");
    let o = fastrec(&["recover", d]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("fastrec: error:") && err.contains("image.img"), "{err}");
    let o = fastrec(&["gen", "--out", d, "--preset", "nope"]);
    assert_eq!(o.status.code(), Some(2));
    let o = fastrec(&["recover", d, "--memory-budget", "12X"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn corrupt_then_absolute_recovery_fails_naming_the_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("c");
    let d = dir.to_str().expect("utf-8");
    assert!(fastrec(&["gen", "--out", d, "--preset", "small", "--seed", "3"]).status.success());
    // Recovered first: damaging the journal afterwards must still be noticed, not answered
    // with "already recovered".
    assert!(fastrec(&["recover", d]).status.success());
    let o = fastrec(&["corrupt", d, "--target", "journal", "--flips", "2", "--seed", "5"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("flipped bit"));
    let o = fastrec(&["recover", d, "--mode", "absolute"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains(".wal at offset"), "{}", text(&o));
}

#[test]
fn help_explains_every_command() {
    let o = fastrec(&["--help"]);
    assert!(o.status.success());
    let t = text(&o);
    for cmd in ["gen", "recover", "verify", "inspect", "corrupt", "demo"] {
        assert!(t.contains(cmd), "--help lacks {cmd}: {t}");
    }
    let o = fastrec(&["recover", "--help"]);
    assert!(text(&o).contains("tolerate-tail"));
}

#[test]
fn usage_errors_are_one_line_and_exit_2() {
    for args in [
        &["recover"][..],
        &["recover", "/tmp", "--mode", "nope"],
        &["gen", "--out", "/tmp/x", "--seed", "-1"],
        &["bogus"],
    ] {
        let o = fastrec(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("fastrec: error:"), "{err}");
    }
}

#[test]
fn every_io_backend_is_reachable_from_the_command_line() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("c");
    let d = dir.to_str().expect("utf-8");
    assert!(fastrec(&["gen", "--out", d, "--preset", "small", "--seed", "4"]).status.success());
    for io in ["auto", "read", "pread", "mmap", "direct"] {
        let report = tmp.path().join(format!("{io}.json"));
        let o = fastrec(&[
            "recover",
            d,
            "--force",
            "--io",
            io,
            "--io-buffer",
            "64K",
            "--mmap-no-populate",
            "--mmap-sequential",
            "--report",
            report.to_str().expect("utf-8"),
        ]);
        assert!(o.status.success(), "{io}: {}", text(&o));
        assert!(text(&o).contains("journal io"), "{}", text(&o));
        let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).expect("report")).expect("json");
        assert_eq!(json["io"]["requested"], io);
        assert_eq!(json["io"]["buffer_bytes"], 65536);
        assert!(json["io"]["resident_at_start"]["total_pages"].as_u64().expect("pages") > 0);
        assert_eq!(fastrec(&["verify", d]).status.code(), Some(0), "{io}");
    }
    // Out-of-range request sizes are refused up front, in one line.
    for bad in ["1K", "8M"] {
        let o = fastrec(&["recover", d, "--force", "--io", "read", "--io-buffer", bad]);
        assert_eq!(o.status.code(), Some(2), "{bad}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("I/O buffer"), "{err}");
    }
}

#[test]
fn checkpoints_from_the_command_line() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("c");
    let d = dir.to_str().expect("utf-8");
    let o = fastrec(&["gen", "--out", d, "--preset", "small", "--seed", "5", "--checkpoint-every", "50txns"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("checkpoints"), "{}", text(&o));
    let o = fastrec(&["checkpoint", d]);
    assert_eq!(o.status.code(), Some(2), "a crash state is not a recovered image: {}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("fastrec recover"), "{}", text(&o));
    let report = tmp.path().join("r.json");
    let o = fastrec(&["recover", d, "--report", report.to_str().expect("utf-8")]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("checkpoint"), "{}", text(&o));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).expect("report")).expect("json");
    assert!(json["checkpoint"]["seq"].as_u64().is_some(), "the generated checkpoint was used: {json}");
    assert_eq!(fastrec(&["verify", d]).status.code(), Some(0));
    for kind in ["full", "incremental", "metadata", "emergency"] {
        let o = fastrec(&["checkpoint", d, "--type", kind, "--json"]);
        assert!(o.status.success(), "{kind}: {}", text(&o));
        let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
        assert_eq!(j["record"]["kind"], kind);
    }
    let o = fastrec(&["checkpoint", d, "--retain", "2", "--recycle-journal"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = fastrec(&["recover", d, "--force"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(fastrec(&["verify", d]).status.code(), Some(0));
    let o = fastrec(&["recover", d, "--force", "--no-checkpoints"]);
    assert_eq!(o.status.code(), Some(2), "the journal's start is gone: {}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no valid checkpoint"), "{}", text(&o));
    let o = fastrec(&["checkpoint", d, "--type", "bogus"]);
    assert_eq!(o.status.code(), Some(2));
    // A snapshot of the recovered directory rebuilds it after the image is lost.
    let o = fastrec(&["snapshot", d, "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(j["kind"], "full");
    std::fs::remove_file(dir.join("image.img")).expect("lose the image");
    let o = fastrec(&["recover", d, "--from-snapshot", "--force"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("image created from it"), "{}", text(&o));
    assert_eq!(fastrec(&["verify", d]).status.code(), Some(0));
    let o = fastrec(&["snapshot", d, "--type", "metadata"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}
