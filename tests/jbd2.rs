//! The jbd2 front end against e2fsck: seeded ext4 images whose journals debugfs wrote are
//! recovered by `e2fsck -y -E journal_only` and by fastrec, and must end identical block for
//! block outside the two superblocks, whose recovery-relevant fields must match; `e2fsck -fn`
//! must then find fastrec's image clean. Needs e2fsprogs (.ci/run installs it); without it the
//! tests fail rather than pass unchecked.

use std::path::{Path, PathBuf};
use std::process::Command;

use recovery::jbd2;
use workloads::jbd2gen::{self, Jbd2Csum, Jbd2Params};

fn e2fsck(args: &[&str], img: &Path) -> (i32, String) {
    let out =
        Command::new(jbd2gen::tool("e2fsck")).args(args).arg(img).output().expect("run e2fsck (install e2fsprogs)");
    (
        out.status.code().unwrap_or(-1),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

struct Case {
    /// The directory the images are in, when the case owns it.
    _dir: Option<tempfile::TempDir>,
    reference: PathBuf,
    ours: PathBuf,
    jsb_offset: u64,
    block_size: u64,
}

/// Generates `p`, recovers one copy with e2fsck and one with fastrec (`workers`).
fn case(p: &Jbd2Params, workers: usize) -> (Case, jbd2::Jbd2Report) {
    let dir = tempfile::tempdir().expect("tempdir");
    let img = dir.path().join("crash.img");
    jbd2gen::generate(&img, p).unwrap_or_else(|e| panic!("seed {}: {e}", p.seed));
    let reference = dir.path().join("e2fsck.img");
    let ours = dir.path().join("fastrec.img");
    std::fs::copy(&img, &reference).expect("copy");
    std::fs::copy(&img, &ours).expect("copy");
    let j = jbd2::Jbd2::open(&img).unwrap_or_else(|e| panic!("seed {}: {e}", p.seed));
    assert!(j.fs.needs_recovery, "seed {}: the generated image does not need recovery", p.seed);
    let (jsb_offset, block_size) = (j.journal_superblock_offset(), j.fs.block_size);
    let (rc, out) = e2fsck(&["-y", "-E", "journal_only"], &reference);
    assert!(rc == 0 || rc == 1, "seed {}: e2fsck exit {rc}: {out}", p.seed);
    let report = jbd2::recover(&ours, Some(workers)).unwrap_or_else(|e| panic!("seed {} ({p:?}): {e}", p.seed));
    (Case { _dir: Some(dir), reference, ours, jsb_offset, block_size }, report)
}

/// Block-for-block equality outside the superblocks, and their recovery fields.
fn assert_same(c: &Case, what: &str) {
    let a = std::fs::read(&c.reference).expect("read");
    let b = std::fs::read(&c.ours).expect("read");
    assert_eq!(a.len(), b.len(), "{what}: image lengths");
    let bs = c.block_size as usize;
    let sb_block = 1024 / bs;
    let jsb_block = (c.jsb_offset as usize) / bs;
    let differing: Vec<usize> = (0..a.len() / bs)
        .filter(|&k| k != sb_block && k != jsb_block && a[k * bs..(k + 1) * bs] != b[k * bs..(k + 1) * bs])
        .collect();
    assert!(
        differing.is_empty(),
        "{what}: {} blocks differ from e2fsck's, first {:?}",
        differing.len(),
        &differing[..differing.len().min(8)]
    );
    // The file system superblock: features (needs_recovery cleared) and state.
    let (sa, sb) = (&a[1024..2048], &b[1024..2048]);
    for (off, name) in [(0x5C, "feature_compat"), (0x60, "feature_incompat"), (0x64, "feature_ro_compat")] {
        assert_eq!(le32(sa, off), le32(sb, off), "{what}: superblock {name}");
    }
    assert_eq!(sa[0x3A..0x3C], sb[0x3A..0x3C], "{what}: superblock s_state");
    assert_eq!(le32(sb, 0x60) & 0x4, 0, "{what}: needs_recovery still set");
    // The journal superblock: sequence, start, errno, features, checksum.
    let j = c.jsb_offset as usize;
    let (ja, jb) = (&a[j..j + 1024], &b[j..j + 1024]);
    for (off, name) in
        [(24, "s_sequence"), (28, "s_start"), (32, "s_errno"), (36, "compat"), (40, "incompat"), (0xFC, "s_checksum")]
    {
        assert_eq!(be32(ja, off), be32(jb, off), "{what}: journal superblock {name}");
    }
    let (rc, out) = e2fsck(&["-fn"], &c.ours);
    assert_eq!(rc, 0, "{what}: e2fsck -fn on fastrec's image: {out}");
}

#[test]
fn seeded_images_recover_like_e2fsck() {
    let mut covered = std::collections::BTreeSet::new();
    for seed in 1..=24u64 {
        let p = Jbd2Params::small(seed);
        let workers = 1 + (seed as usize % 3);
        let (c, r) = case(&p, workers);
        assert_same(&c, &format!("seed {seed} ({p:?}), {workers} workers"));
        covered.insert(format!("{:?}", p.csum));
        covered.insert(format!("64bit={}", p.bit64));
        covered.insert(format!("bs={}", p.block_size));
        covered.insert(format!("extents={}", p.extents));
        let j = jbd2::Jbd2::open(&c.ours).expect("reopen");
        if j.sb.compat & 1 != 0 {
            covered.insert("csum v1".into());
        }
        if r.log.revoked > 0 {
            covered.insert("revoke hit".into());
        }
        if r.log.transactions > 0 {
            covered.insert("replayed".into());
        }
    }
    // The seeds must exercise what they are meant to, or this test proves less than it says.
    for want in [
        "None",
        "V2",
        "V3",
        "csum v1",
        "64bit=true",
        "64bit=false",
        "bs=1024",
        "bs=4096",
        "extents=true",
        "extents=false",
        "revoke hit",
        "replayed",
    ] {
        assert!(covered.contains(want), "no seed covered {want}: {covered:?}");
    }
}

#[test]
fn a_large_transaction_with_every_feature() {
    let p = Jbd2Params {
        seed: 99,
        block_size: 4096,
        fs_mib: 128,
        journal_mib: 32,
        bit64: true,
        metadata_csum: true,
        extents: true,
        csum: Jbd2Csum::V3,
        txns: 6,
        max_blocks: 1500,
        revoke_rate: 0.3,
        uncommitted_last: true,
        pool_blocks: 3000,
    };
    let (c, r) = case(&p, 2);
    assert!(r.log.tags > 1000, "{r:?}");
    assert_same(&c, "large, csum v3, 2 workers");
}

/// Damage to the journal, each with its pinned outcome (docs/JBD2.md, "Damaged journals"):
/// the same image as e2fsck's, or a refusal that leaves the image untouched where e2fsck
/// discards or half-applies the journal.
#[test]
fn damaged_journals_match_e2fsck_or_refuse() {
    for (seed, damage) in [(3u64, "descriptor"), (4, "commit"), (5, "jsb"), (6, "data"), (7, "torn commit")] {
        let mut p = Jbd2Params::small(seed);
        p.csum = Jbd2Csum::V3;
        p.bit64 = true;
        p.txns = 6;
        p.uncommitted_last = false;
        p.revoke_rate = 0.0;
        let dir = tempfile::tempdir().expect("tempdir");
        let img = dir.path().join("crash.img");
        jbd2gen::generate(&img, &p).expect("generate");
        let j = jbd2::Jbd2::open(&img).expect("open");
        let bs = j.fs.block_size;
        let jsb = j.journal_superblock_offset();
        let mut bytes = std::fs::read(&img).expect("read");
        // mkfs allocates these small journals in one extent, so log block n is at jsb + n
        // blocks; the log starts at block 1 with transaction 1's descriptor.
        let log = |n: u64| (jsb + n * bs) as usize;
        let is = |bytes: &[u8], n: u64, kind: u32| {
            be32(&bytes[log(n)..], 0) == 0xC03B_3998 && be32(&bytes[log(n)..], 4) == kind
        };
        assert!(is(&bytes, 1, 1), "{damage}: log block 1 is not a descriptor");
        let target = match damage {
            "descriptor" => log(1) + 40,
            "data" => log(2) + 100,
            "jsb" => jsb as usize + 16,
            _ => log((2..400).find(|&n| is(&bytes, n, 2)).expect("a commit block")) + 60,
        };
        if damage == "torn commit" {
            // The commit block never reached the disk: its sector is zeros.
            let at = target - 60;
            bytes[at..at + 512].fill(0);
        } else {
            bytes[target] ^= 0x5A;
        }
        std::fs::write(&img, &bytes).expect("write");
        let reference = dir.path().join("e2fsck.img");
        let ours = dir.path().join("fastrec.img");
        std::fs::copy(&img, &reference).expect("copy");
        std::fs::copy(&img, &ours).expect("copy");
        let (rc, out) = e2fsck(&["-y", "-E", "journal_only"], &reference);
        assert!(rc <= 1, "{damage}: e2fsck exit {rc}: {out}");
        let result = jbd2::recover(&ours, Some(2));
        let c = Case { _dir: None, reference, ours: ours.clone(), jsb_offset: jsb, block_size: bs };
        match damage {
            // e2fsck drops the whole journal (a bad descriptor checksum in a transaction that
            // commits; a journal superblock out of range); fastrec keeps it for a decision.
            "descriptor" | "jsb" => {
                let e = result.expect_err("refused");
                assert_eq!(e.kind_name(), "jbd2", "{damage}: {e}");
                assert_eq!(std::fs::read(&ours).expect("read"), bytes, "{damage}: refused ({e}) but changed the image");
            }
            // Without its commit the first transaction is not replayed, nor anything after it.
            "torn commit" => {
                let r = result.expect("recovered");
                assert_eq!((r.log.transactions, r.log.failed_commit), (0, None), "{r:?}");
                assert_same(&c, "torn commit");
            }
            // The log ends before the transaction whose commit fails: as e2fsck.
            "commit" => {
                let r = result.expect("recovered");
                assert_eq!(r.log.failed_commit, Some(1), "{r:?}");
                assert_same(&c, "damaged commit");
            }
            // The bad block is skipped, the others written, the file system marked not valid,
            // as e2fsck; but e2fsck then restarts the log at its old sequence, where stale
            // blocks of the old log could pass for new ones, and fastrec after the last seen.
            _ => {
                let r = result.expect("recovered");
                assert_eq!(r.log.bad_data_checksums, 1, "{r:?}");
                let a = std::fs::read(&c.reference).expect("read");
                let mut b = std::fs::read(&c.ours).expect("read");
                let j = jsb as usize;
                assert!(be32(&b[j..], 24) > be32(&a[j..], 24), "fastrec's sequence is after e2fsck's");
                assert_eq!(be32(&a[j..], 24), 1, "e2fsck keeps the old sequence");
                // With e2fsck's sequence (and so its checksum) the images must be the same.
                b[j + 24..j + 28].copy_from_slice(&a[j + 24..j + 28]);
                b[j + 0xFC..j + 0x100].copy_from_slice(&a[j + 0xFC..j + 0x100]);
                std::fs::write(&c.ours, &b).expect("write");
                assert_same(&c, "damaged data block");
            }
        }
    }
}

/// Random damage anywhere in the superblocks, the journal inode's table block and the log
/// gives a result or a typed error, never a panic.
#[test]
fn random_damage_never_panics() {
    use std::os::unix::fs::FileExt;
    let mut p = Jbd2Params::small(8);
    p.fs_mib = 16;
    p.journal_mib = 4;
    p.block_size = 4096;
    p.txns = 8;
    let dir = tempfile::tempdir().expect("tempdir");
    let img = dir.path().join("crash.img");
    jbd2gen::generate(&img, &p).expect("generate");
    let j = jbd2::Jbd2::open(&img).expect("open");
    let jsb = j.journal_superblock_offset();
    let f = std::fs::OpenOptions::new().read(true).write(true).open(&img).expect("open rw");
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut ok, mut refused) = (0, 0);
    for _ in 0..300 {
        // Half in the log's first 64 KiB, the rest in the superblock and group descriptors.
        let at = if next() % 2 == 0 { jsb + next() % 65536 } else { 1024 + next() % 8192 };
        let mut old = [0u8; 1];
        f.read_exact_at(&mut old, at).expect("read");
        f.write_all_at(&[old[0] ^ (1 << (next() % 8))], at).expect("write");
        match jbd2::Jbd2::open(&img).and_then(|j| j.inspect()) {
            Ok(_) => ok += 1,
            Err(e) => {
                assert!(matches!(e.kind_name(), "jbd2" | "io"), "{e}");
                refused += 1;
            }
        }
        f.write_all_at(&old, at).expect("restore");
    }
    assert!(
        ok > 0 && refused > 0,
        "damage that is never refused or always refused tests nothing: {ok} ok, {refused} refused"
    );
}

/// The CLI end to end: gen, inspect, recover, then e2fsck -fn finds the image clean.
#[test]
fn cli_gen_inspect_recover() {
    let dir = tempfile::tempdir().expect("tempdir");
    let img = dir.path().join("x.img");
    let bin = env!("CARGO_BIN_EXE_fastrec");
    let run = |args: &[&str]| {
        let out = Command::new(bin).args(args).output().expect("run fastrec");
        assert!(out.status.success(), "fastrec {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let p = img.to_str().expect("utf-8 path");
    run(&["gen", "--format", "jbd2", "--seed", "5", "--txns", "6", "--out", p]);
    let inspected = run(&["inspect", p, "--format", "jbd2"]);
    assert!(inspected.contains("needs_recovery true") && inspected.contains("would write"), "{inspected}");
    let recovered = run(&["recover", p, "--format", "jbd2", "--workers", "2"]);
    assert!(recovered.contains("journal reset at sequence"), "{recovered}");
    let again = run(&["inspect", p, "--format", "jbd2"]);
    assert!(again.contains("needs_recovery false") && again.contains("the journal is empty"), "{again}");
    let (rc, out) = e2fsck(&["-fn"], &img);
    assert_eq!(rc, 0, "{out}");
}
