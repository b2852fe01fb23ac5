//! Every journal read backend recovers every preset's shape to the oracle image; a direct-I/O
//! request where the file system refuses O_DIRECT behaves as documented; a truncated journal
//! gives the same documented outcome under every backend; a journal that shrinks while it is
//! mapped gives an error, not a SIGBUS.

mod common;
use common::{copy_dir, generate};

use std::path::{Path, PathBuf};

use recovery::io::cache;
use recovery::{
    recover, CorruptKind, DirectFallback, Error, IoBackend, IoOptions, MmapAdvice, RecoverOptions, RecoveryMode,
};
use workloads::Preset;

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> =
        std::fs::read_dir(dir.join("journal")).expect("journal").map(|e| e.expect("entry").path()).collect();
    v.sort();
    v
}

/// The configurations each preset is recovered with: every backend at the default request
/// size, the small and large ends of the request range with no segment cache (every pass
/// reads again), the mmap advice variants, and auto on both sides of its threshold.
fn configurations() -> Vec<(String, RecoverOptions)> {
    let mut v = Vec::new();
    for backend in IoBackend::ALL {
        v.push((backend.name().to_string(), IoOptions::with(backend)));
        if matches!(backend, IoBackend::Read | IoBackend::Pread | IoBackend::Direct) {
            for buffer_bytes in [recovery::io::BUFFER_BYTES_MIN, recovery::io::BUFFER_BYTES_MAX] {
                let io = IoOptions { backend, buffer_bytes, cache_bytes: 0, pread_depth: 3, ..IoOptions::default() };
                v.push((format!("{backend}-{buffer_bytes}-uncached"), io));
            }
        }
    }
    let advised = MmapAdvice { populate: false, sequential: true, willneed: true, hugepage: true };
    v.push(("mmap-advised".into(), IoOptions { backend: IoBackend::Mmap, mmap: advised, ..IoOptions::default() }));
    v.push(("auto-maps".into(), IoOptions { mmap_threshold: 0, ..IoOptions::default() }));
    v.push(("auto-reads".into(), IoOptions { mmap_threshold: u64::MAX, ..IoOptions::default() }));
    let mut out = Vec::new();
    for (name, io) in v {
        out.push((format!("{name} serial"), RecoverOptions { io, workers: Some(1), ..RecoverOptions::default() }));
        out.push((
            format!("{name} 2 workers"),
            RecoverOptions {
                io,
                workers: Some(2),
                parallel_threshold: 0,
                chunk_bytes: 64 << 10,
                ..RecoverOptions::default()
            },
        ));
    }
    out
}

#[test]
fn every_backend_recovers_every_preset_to_the_oracle() {
    let configs = configurations();
    for preset in Preset::ALL {
        let mut p = preset.params(7);
        // Each preset's shape (mix, policy, block and segment sizes) with few transactions
        // and a small image, so the test stays fast.
        p.txns = p.txns.min(if preset == Preset::Deps { 1_000 } else { 300 });
        p.block_count = p.block_count.min(2048);
        p.inode_count = p.inode_count.min(2048);
        let tmp = tempfile::tempdir().expect("tempdir");
        let origin = tmp.path().join("origin");
        generate(&origin, &p);
        for (name, opts) in &configs {
            let d = tmp.path().join("run");
            copy_dir(&origin, &d);
            let r = recover(&d, opts).unwrap_or_else(|e| panic!("{preset} {name}: {e}"));
            assert_ne!(r.io.backend, IoBackend::Auto, "{preset} {name}: auto must resolve");
            if opts.io.backend != IoBackend::Auto {
                assert_eq!(r.io.backend, opts.io.backend, "{preset} {name}: ext4 and friends serve O_DIRECT");
            }
            let v = workloads::digest::verify_dir(&d).expect("verify");
            assert!(v.matches, "{preset} {name}: {} of {} blocks differ from the oracle", v.bad_blocks, v.blocks);
            std::fs::remove_dir_all(&d).expect("clean");
        }
    }
}

#[test]
fn auto_maps_at_the_threshold_and_reads_below_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let origin = tmp.path().join("origin");
    generate(&origin, &Preset::Small.params(3));
    let bytes: u64 = segments(&origin).iter().map(|p| std::fs::metadata(p).expect("stat").len()).sum();
    for (threshold, expected) in [(bytes, IoBackend::Mmap), (bytes + 1, IoBackend::Read)] {
        let d = tmp.path().join(format!("t{threshold}"));
        copy_dir(&origin, &d);
        let io = IoOptions { mmap_threshold: threshold, ..IoOptions::default() };
        let r = recover(&d, &RecoverOptions { io, ..RecoverOptions::default() }).expect("recover");
        assert_eq!(r.io.backend, expected, "threshold {threshold}, journal {bytes} bytes");
        assert_eq!(r.io.requested, IoBackend::Auto);
        assert!(r.io.notes.iter().any(|n| n.contains("threshold")), "{:?}", r.io.notes);
    }
}

/// A directory on /dev/shm when its tmpfs refuses O_DIRECT (kernels before 6.6).
fn refusing_tmpfs() -> Option<tempfile::TempDir> {
    let d = tempfile::tempdir_in("/dev/shm").ok()?;
    let probe = d.path().join("probe");
    std::fs::write(&probe, vec![0u8; 8192]).ok()?;
    match recovery::io::direct_supported(&probe) {
        Ok(false) => Some(d),
        _ => None,
    }
}

fn check_direct_refusal(parent: &Path, simulate: bool) {
    let origin = parent.join("origin");
    generate(&origin, &Preset::Small.params(11));
    let first = segments(&origin).remove(0);
    let refused = |direct_fallback| IoOptions {
        backend: IoBackend::Direct,
        direct_fallback,
        simulate_direct_refusal: simulate,
        ..IoOptions::default()
    };

    let before = std::fs::read(origin.join("image.img")).expect("image");
    let opts = RecoverOptions { io: refused(DirectFallback::Error), ..RecoverOptions::default() };
    let err = recover(&origin, &opts).expect_err("must refuse");
    match &err {
        Error::DirectIoUnsupported { path } => assert_eq!(path, &first),
        other => panic!("expected DirectIoUnsupported, got {other}"),
    }
    assert!(err.to_string().contains("O_DIRECT"), "{err}");
    assert_eq!(std::fs::read(origin.join("image.img")).expect("image"), before, "refusal must not touch the image");

    let opts = RecoverOptions { io: refused(DirectFallback::Read), ..RecoverOptions::default() };
    let r = recover(&origin, &opts).expect("fallback");
    assert_eq!(r.io.backend, IoBackend::Read);
    assert_eq!(r.io.requested, IoBackend::Direct);
    assert!(r.io.notes.iter().any(|n| n.contains("refuses O_DIRECT")), "{:?}", r.io.notes);
    assert!(workloads::digest::verify_dir(&origin).expect("verify").matches);
}

#[test]
fn direct_io_where_the_file_system_refuses_it_falls_back_or_fails_as_asked() {
    // tmpfs serves O_DIRECT since Linux 6.6, so the refusal is simulated at the probe; the
    // rest of the path (error, fallback, report) is the real one.
    let tmp = tempfile::tempdir().expect("tempdir");
    check_direct_refusal(tmp.path(), true);
    if let Some(shm) = refusing_tmpfs() {
        check_direct_refusal(shm.path(), false);
    }
}

fn backends() -> Vec<IoOptions> {
    let mut v: Vec<IoOptions> = IoBackend::ALL.into_iter().map(IoOptions::with).collect();
    v.push(IoOptions {
        backend: IoBackend::Mmap,
        mmap: MmapAdvice { populate: false, ..MmapAdvice::default() },
        ..IoOptions::default()
    });
    v
}

#[test]
fn a_truncated_journal_gives_the_same_documented_outcome_under_every_backend() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let origin = tmp.path().join("origin");
    let mut p = Preset::Small.params(5);
    p.crash = workloads::CrashKind::Clean;
    generate(&origin, &p);
    let segs = segments(&origin);
    let last = segs.last().expect("segments").clone();
    let last_len = std::fs::metadata(&last).expect("stat").len();
    // Cut the last segment in the middle of its data: a tail lost to the crash.
    let cut = last_len - last_len / 3;
    let rel = last.strip_prefix(&origin).expect("inside").to_path_buf();
    let mut tolerated = Vec::new();
    for io in backends() {
        let what = format!("{} populate={}", io.backend, io.mmap.populate);
        // Absolute mode: the truncation is damage, reported with the file and offset; the
        // image is left untouched.
        let d = tmp.path().join("abs");
        copy_dir(&origin, &d);
        std::fs::OpenOptions::new().write(true).open(d.join(&rel)).expect("open").set_len(cut).expect("truncate");
        let before = std::fs::read(d.join("image.img")).expect("image");
        let opts = RecoverOptions { io, mode: RecoveryMode::Absolute, ..RecoverOptions::default() };
        match recover(&d, &opts) {
            Err(Error::Corrupt { path, offset, .. }) => {
                assert_eq!(path, d.join(&rel), "{what}");
                assert!(offset <= cut, "{what}: offset {offset} beyond the cut {cut}");
            }
            other => panic!("{what}: expected a Corrupt error, got {other:?}"),
        }
        assert_eq!(std::fs::read(d.join("image.img")).expect("image"), before, "{what}: absolute touched the image");
        std::fs::remove_dir_all(&d).expect("clean");

        // Tolerate-tail: the tail is cut at the last whole record, the same place whatever
        // read it.
        let d = tmp.path().join("tol");
        copy_dir(&origin, &d);
        std::fs::OpenOptions::new().write(true).open(d.join(&rel)).expect("open").set_len(cut).expect("truncate");
        let r = recover(&d, &RecoverOptions { io, ..RecoverOptions::default() }).expect("tolerate");
        let tail = r.tail.as_ref().expect("a tail cut");
        tolerated.push((tail.offset, r.lsn_range, std::fs::read(d.join("image.img")).expect("image")));
        std::fs::remove_dir_all(&d).expect("clean");

        // A segment cut inside its header, not the last one: damage in any mode but
        // skip-corrupt.
        let d = tmp.path().join("hdr");
        copy_dir(&origin, &d);
        let first = segments(&d).remove(0);
        std::fs::OpenOptions::new().write(true).open(&first).expect("open").set_len(20).expect("truncate");
        match recover(&d, &RecoverOptions { io, ..RecoverOptions::default() }) {
            Err(Error::Corrupt { path, kind: CorruptKind::TruncatedHeader, .. }) => assert_eq!(path, first, "{what}"),
            other => panic!("{what}: expected a truncated-header error, got {other:?}"),
        }
        std::fs::remove_dir_all(&d).expect("clean");
    }
    assert!(tolerated.windows(2).all(|w| w[0] == w[1]), "backends disagree on a truncated journal");
}

#[test]
fn a_journal_that_shrinks_while_mapped_is_an_error_not_a_crash() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("c");
    generate(&dir, &Preset::Small.params(9));
    let (_, journal) = recovery::recover::open_dir(
        &dir,
        RecoveryMode::TolerateTail,
        &IoOptions {
            backend: IoBackend::Mmap,
            mmap: MmapAdvice { populate: false, ..MmapAdvice::default() },
            ..IoOptions::default()
        },
    )
    .expect("open");
    let seg = &journal.segments[0];
    let bytes = journal.load(0).expect("load");
    assert!(bytes.len() > 8192);
    journal.check_unchanged().expect("nothing changed yet");
    std::fs::OpenOptions::new().write(true).open(&seg.path).expect("open").set_len(4096).expect("truncate");
    // Without the guard this read of a page past the new end of file raises SIGBUS and kills
    // the test process.
    let last = bytes[bytes.len() - 1];
    assert_eq!(last, 0, "a lost page reads as zeros");
    let err = journal.check_unchanged().expect_err("must notice");
    assert!(matches!(&err, Error::Io { path, .. } if path == &seg.path), "{err}");
    assert!(err.to_string().contains("shrank"), "{err}");
}

#[test]
fn eviction_empties_the_page_cache_and_residency_measures_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("c");
    generate(&dir, &Preset::Small.params(2));
    let segs = segments(&dir);
    let paths: Vec<&Path> = segs.iter().map(PathBuf::as_path).collect();
    for p in &paths {
        std::fs::read(p).expect("warm");
    }
    let warm = cache::residency_all(&paths).expect("residency");
    assert!(warm.total_pages > 0);
    assert_eq!(warm.resident_pages, warm.total_pages, "a file just read is resident");
    let cold = cache::evict_all(&paths).expect("evict");
    assert_eq!(cold.total_pages, warm.total_pages);
    // The kernel may keep a page it cannot drop; it must drop most.
    assert!(cold.fraction() < 0.5, "still {:.0}% resident after eviction", cold.fraction() * 100.0);
    let r = recover(&dir, &RecoverOptions::default()).expect("recover");
    assert_eq!(r.io.resident_at_start.total_pages, warm.total_pages);
    assert!(r.io.resident_at_start.fraction() < 0.5, "the report measures residency before reading");
}
