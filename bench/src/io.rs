//! The journal I/O matrix behind `io/scan`, `io/recover` and `scripts/io-sweep.sh`: read
//! backend x request size x record size x page-cache state x consumer.
//!
//! One crash state is generated per record-size shape, sized to a target journal length.
//! Every timed run measures one consumer reading that journal through one backend
//! configuration:
//!
//! - `scan`: open the journal and decode every fragment and record, verifying their crc32c,
//!   with a visitor that does nothing. Opening, reading, checksumming and dropping the
//!   segments (unmapping or freeing them) are timed; reading the image's superblock is not.
//! - `recover`: full recovery with the engine's defaults apart from the journal I/O options.
//!   Restoring the crash image beforehand is not timed.
//!
//! Cache states are set up untimed before every run and then measured, never assumed: `warm`
//! reads every segment once (and again whenever the page cache lost any of it), `cold` evicts
//! every segment (fdatasync + `POSIX_FADV_DONTNEED`). Either way the residency measured just
//! before the timed run is returned with the sample.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use recovery::io::cache::{self, Residency};
use recovery::{IoBackend, IoOptions, MmapAdvice, RecoverOptions, RecoveryMode};

use crate::scaling::Prepared;

/// The record-size shapes, in the order they are reported.
pub const RECORDS: [&str; 3] = ["256B", "4K", "64K"];

/// Generation parameters (transaction count not yet chosen) of record shape `record`.
///
/// - `256B`: partial writes of 192-320 bytes into 4 KiB blocks, no full-block writes.
/// - `4K`: full-block writes of 4 KiB blocks.
/// - `64K`: full-block writes of 64 KiB blocks, in a 2048-block (128 MiB) image so the image
///   does not grow with the block size.
pub fn record_params(record: &str, seed: u64) -> Result<workloads::GenParams, String> {
    let base = workloads::Preset::Default.params(seed);
    Ok(match record {
        "256B" => workloads::GenParams { block_size: 4096, full_block_fraction: 0.0, partial_len: (192, 320), ..base },
        "4K" => workloads::GenParams { block_size: 4096, full_block_fraction: 1.0, ..base },
        "64K" => workloads::GenParams {
            block_size: 65536,
            full_block_fraction: 1.0,
            block_count: 2048,
            inode_count: 2048,
            ..base
        },
        _ => return Err(format!("unknown record shape `{record}` (expected {})", RECORDS.join(", "))),
    })
}

/// A rough journal-bytes-per-transaction guess for `p`, used only to size the pilot
/// generation that measures the real figure.
fn guess_bytes_per_txn(p: &workloads::GenParams) -> f64 {
    let ops = f64::from(p.ops_per_txn.0 + p.ops_per_txn.1) / 2.0;
    let mix = &p.mix;
    let write_share = f64::from(mix.write) / f64::from((mix.write + mix.bitmap + mix.orphan).max(1));
    let partial = f64::from(p.partial_len.0 + p.partial_len.1.min(p.block_size)) / 2.0;
    let payload = p.full_block_fraction * f64::from(p.block_size) + (1.0 - p.full_block_fraction) * partial;
    // Headers, commit records and non-write operations: a few dozen bytes each.
    ops * (write_share * payload + 64.0) + 128.0
}

/// One record shape's crash state, ready for repeated runs.
pub struct IoJournal {
    /// The crash state (restored before every recovery).
    pub prepared: Prepared,
    /// Record shape name.
    pub record: String,
    /// The generation parameters, with the transaction count chosen.
    pub params: workloads::GenParams,
    /// Segment files, in journal order.
    pub segments: Vec<PathBuf>,
    /// Records a full scan finds (the reference every backend must reproduce).
    pub records: u64,
    /// LSN of the last durable record.
    pub last_lsn: u64,
    /// Seconds the pilot generation took (it measures journal bytes per transaction).
    pub pilot_secs: f64,
    /// Seconds the generation of this crash state took.
    pub gen_secs: f64,
    image_id: u64,
    block_size: u32,
}

/// Generates record shape `record` with a journal of about `target_bytes`, under `parent`
/// (the system temporary directory if `None`).
///
/// A pilot of about a sixteenth of the target measures journal bytes per transaction first,
/// because the shapes' per-transaction size depends on the generator's operation mix.
pub fn prepare(record: &str, seed: u64, target_bytes: u64, parent: Option<&Path>) -> Result<IoJournal, String> {
    let shape = record_params(record, seed)?;
    let pilot_txns = ((target_bytes as f64 / 16.0 / guess_bytes_per_txn(&shape)) as u64).max(20);
    let t = Instant::now();
    let pilot_dir = match parent {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .map_err(|e| format!("pilot directory: {e}"))?;
    let pilot =
        workloads::generate(&pilot_dir.path().join("crash"), &workloads::GenParams { txns: pilot_txns, ..shape })
            .map_err(|e| format!("pilot generation of {record}: {e}"))?;
    drop(pilot_dir);
    let pilot_secs = t.elapsed().as_secs_f64();
    let per_txn = pilot.journal_bytes.max(1) as f64 / pilot_txns as f64;
    let txns = ((target_bytes as f64 / per_txn).round() as u64).clamp(1, workloads::params::TXNS_MAX);
    let params = workloads::GenParams { txns, ..record_params(record, seed)? };
    let t = Instant::now();
    let prepared = crate::scaling::prepare_params(record, &params, parent)?;
    let gen_secs = t.elapsed().as_secs_f64();
    let io = IoOptions::with(IoBackend::Read);
    let (layout, journal) =
        recovery::recover::open_dir(&prepared.dir, RecoveryMode::TolerateTail, &io).map_err(|e| e.to_string())?;
    let segments = journal.segments.iter().map(|s| s.path.clone()).collect();
    let outcome =
        recovery::scan::scan(&journal, RecoveryMode::TolerateTail, |_, _, _| Ok(())).map_err(|e| e.to_string())?;
    Ok(IoJournal {
        record: record.into(),
        params,
        segments,
        records: outcome.records,
        last_lsn: outcome.last_lsn,
        pilot_secs,
        gen_secs,
        image_id: layout.geometry.image_id,
        block_size: layout.geometry.block_size,
        prepared,
    })
}

/// A labelled journal I/O configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Label used in benchmark ids, NDJSON and tables (`pread-1M`, `mmap-seq`, ...).
    pub label: String,
    /// The options it runs with.
    pub io: IoOptions,
}

fn size_label(bytes: usize) -> String {
    if bytes >= 1 << 20 {
        format!("{}M", bytes >> 20)
    } else {
        format!("{}K", bytes >> 10)
    }
}

/// Request sizes the buffered and direct backends are measured with.
pub const BUFFERS: [usize; 3] = [64 << 10, 1 << 20, 4 << 20];

/// Every configuration, in report order: read, pread and direct at each of [`BUFFERS`];
/// `mmap` (the default advice: populate); `mmap-seq` (no populate, sequential + willneed
/// advice); `auto` (all defaults).
pub fn configs() -> Vec<Config> {
    let mut v = Vec::new();
    for backend in [IoBackend::Read, IoBackend::Pread, IoBackend::Direct] {
        for &buffer_bytes in &BUFFERS {
            v.push(Config {
                label: format!("{}-{}", backend.name(), size_label(buffer_bytes)),
                io: IoOptions { buffer_bytes, ..IoOptions::with(backend) },
            });
        }
    }
    v.push(Config { label: "mmap".into(), io: IoOptions::with(IoBackend::Mmap) });
    v.push(Config {
        label: "mmap-seq".into(),
        io: IoOptions {
            mmap: MmapAdvice { populate: false, sequential: true, willneed: true, hugepage: false },
            ..IoOptions::with(IoBackend::Mmap)
        },
    });
    v.push(Config { label: "auto".into(), io: IoOptions::default() });
    v
}

/// The configurations named in the comma-separated `list` (`all` for every one), in report
/// order.
pub fn select_configs(list: &str) -> Result<Vec<Config>, String> {
    let all = configs();
    if list == "all" {
        return Ok(all);
    }
    let names: Vec<&str> = list.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    for n in &names {
        if !all.iter().any(|c| c.label == *n) {
            let labels: Vec<&str> = all.iter().map(|c| c.label.as_str()).collect();
            return Err(format!("unknown backend configuration `{n}` (expected one of {})", labels.join(", ")));
        }
    }
    Ok(all.into_iter().filter(|c| names.contains(&c.label.as_str())).collect())
}

/// What reads the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consumer {
    /// Decode and checksum every fragment and record, nothing else.
    Scan,
    /// Full recovery.
    Recover,
}

impl Consumer {
    /// Name in ids and reports.
    pub fn name(self) -> &'static str {
        match self {
            Consumer::Scan => "scan",
            Consumer::Recover => "recover",
        }
    }
}

impl std::str::FromStr for Consumer {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "scan" => Ok(Consumer::Scan),
            "recover" => Ok(Consumer::Recover),
            _ => Err(format!("unknown consumer `{s}` (expected scan or recover)")),
        }
    }
}

/// Page-cache state of the journal at the start of a timed run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheState {
    /// Every segment page resident.
    Warm,
    /// Segments evicted.
    Cold,
}

impl CacheState {
    /// Name in ids and reports.
    pub fn name(self) -> &'static str {
        match self {
            CacheState::Warm => "warm",
            CacheState::Cold => "cold",
        }
    }
}

impl std::str::FromStr for CacheState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "warm" => Ok(CacheState::Warm),
            "cold" => Ok(CacheState::Cold),
            _ => Err(format!("unknown cache state `{s}` (expected warm or cold)")),
        }
    }
}

/// Parses a comma-separated list with `T::from_str`.
pub fn parse_list<T: std::str::FromStr<Err = String>>(list: &str) -> Result<Vec<T>, String> {
    list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::parse).collect()
}

/// One timed run.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Timed seconds.
    pub secs: f64,
    /// Journal residency measured just before the timed part (after eviction when cold).
    pub residency: Residency,
    /// The backend actually used (`auto` resolved, a direct-I/O fallback applied).
    pub backend: IoBackend,
    /// How the backend was chosen, when it was not asked for directly.
    pub notes: Vec<String>,
    /// Records scanned.
    pub records: u64,
    /// Last durable LSN found.
    pub last_lsn: u64,
    /// Recovery's own scan-phase time in milliseconds (recover only).
    pub scan_ms: Option<f64>,
    /// Residency recovery itself measured after opening the journal (recover only). Differs
    /// from [`Sample::residency`] by what opening the segments read.
    pub resident_at_start: Option<Residency>,
    /// Workers recovery used (recover only).
    pub workers: Option<usize>,
    /// Minor page faults of the whole process during the timed part: fresh memory for segment
    /// copies and mapping faults both show here.
    pub minor_faults: u64,
    /// Major page faults during the timed part (a mapped page read from the device).
    pub major_faults: u64,
}

fn faults_since((minor, major): (u64, u64)) -> (u64, u64) {
    let (m, j) = crate::page_faults();
    (m.saturating_sub(minor), j.saturating_sub(major))
}

/// Reads every file in `paths` sequentially with read(2) into one reused 1 MiB buffer:
/// seconds taken and bytes read.
pub fn read_sequential(paths: &[PathBuf]) -> std::io::Result<(f64, u64)> {
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    let t = Instant::now();
    for p in paths {
        let mut f = std::fs::File::open(p)?;
        loop {
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => bytes += n as u64,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
    std::hint::black_box(&buf);
    Ok((t.elapsed().as_secs_f64(), bytes))
}

/// A sequential-read ceiling: median bytes per second, samples, and the residency range
/// measured before the reads.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SeqRead {
    /// Cache state the reads started from.
    pub cache: &'static str,
    /// Median bytes per second.
    pub bytes_per_s: f64,
    /// Every sample, bytes per second.
    pub samples: Vec<f64>,
    /// Smallest resident fraction measured before a read.
    pub residency_min: f64,
    /// Largest resident fraction measured before a read.
    pub residency_max: f64,
}

/// Residency fraction range of `samples`' measurements.
pub fn residency_range(residencies: impl IntoIterator<Item = Residency>) -> (f64, f64) {
    residencies
        .into_iter()
        .map(|r| r.fraction())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), f| (lo.min(f), hi.max(f)))
}

impl IoJournal {
    /// Total bytes of the segment files.
    pub fn journal_bytes(&self) -> u64 {
        self.prepared.journal_bytes
    }

    fn segment_refs(&self) -> Vec<&Path> {
        self.segments.iter().map(PathBuf::as_path).collect()
    }

    /// Residency of the segments now.
    pub fn residency(&self) -> Result<Residency, String> {
        cache::residency_all(&self.segment_refs()).map_err(|e| format!("residency: {e}"))
    }

    /// Reads every segment once so the page cache holds it.
    pub fn warm_up(&self) -> Result<(), String> {
        read_sequential(&self.segments).map(|_| ()).map_err(|e| format!("warm-up read: {e}"))
    }

    /// Puts the journal in `state` and returns the residency measured afterwards. Warm reads
    /// the segments again only when some page is missing, so the usual cost is one mincore
    /// pass.
    pub fn set_cache(&self, state: CacheState) -> Result<Residency, String> {
        match state {
            CacheState::Cold => cache::evict_all(&self.segment_refs()).map_err(|e| format!("evict: {e}")),
            CacheState::Warm => {
                let r = self.residency()?;
                if r.resident_pages == r.total_pages {
                    return Ok(r);
                }
                self.warm_up()?;
                self.residency()
            }
        }
    }

    /// The sequential read(2) ceiling from `state`: `reps` full reads of the journal.
    pub fn seq_read_ceiling(&self, state: CacheState, reps: usize) -> Result<SeqRead, String> {
        if state == CacheState::Warm {
            self.warm_up()?;
        }
        let mut samples = Vec::with_capacity(reps);
        let mut res = Vec::with_capacity(reps);
        for _ in 0..reps.max(1) {
            res.push(self.set_cache(state)?);
            let (secs, bytes) = read_sequential(&self.segments).map_err(|e| format!("sequential read: {e}"))?;
            samples.push(bytes as f64 / secs);
        }
        let (residency_min, residency_max) = residency_range(res);
        let mut s = samples.clone();
        Ok(SeqRead { cache: state.name(), bytes_per_s: crate::median(&mut s), samples, residency_min, residency_max })
    }

    /// One timed run of `consumer` through `cfg` from cache state `state`. `workers` overrides
    /// recovery's worker count (`None`: the engine's default).
    pub fn sample(
        &self,
        consumer: Consumer,
        state: CacheState,
        cfg: &Config,
        workers: Option<usize>,
    ) -> Result<Sample, String> {
        match consumer {
            Consumer::Scan => {
                let residency = self.set_cache(state)?;
                let jdir = self.prepared.dir.join(recovery::dir::JOURNAL_DIR);
                let faults = crate::page_faults();
                let t = Instant::now();
                let journal = recovery::journal::Journal::open(
                    &jdir,
                    self.image_id,
                    self.block_size,
                    RecoveryMode::TolerateTail,
                    &cfg.io,
                    false,
                )
                .map_err(|e| format!("{}: open journal: {e}", cfg.label))?;
                let outcome = recovery::scan::scan(&journal, RecoveryMode::TolerateTail, |_, _, _| Ok(()))
                    .map_err(|e| format!("{}: scan: {e}", cfg.label))?;
                let (backend, notes) = (journal.backend, journal.io_notes.clone());
                // Unmapping or freeing the segments is part of what a backend costs.
                drop(journal);
                let secs = t.elapsed().as_secs_f64();
                let (minor_faults, major_faults) = faults_since(faults);
                Ok(Sample {
                    secs,
                    residency,
                    backend,
                    notes,
                    records: outcome.records,
                    last_lsn: outcome.last_lsn,
                    scan_ms: None,
                    resident_at_start: None,
                    workers: None,
                    minor_faults,
                    major_faults,
                })
            }
            Consumer::Recover => {
                self.prepared.restore();
                let residency = self.set_cache(state)?;
                let opts = RecoverOptions { io: cfg.io, workers, ..RecoverOptions::default() };
                let faults = crate::page_faults();
                let t = Instant::now();
                let report =
                    recovery::recover(&self.prepared.dir, &opts).map_err(|e| format!("{}: recover: {e}", cfg.label))?;
                let secs = t.elapsed().as_secs_f64();
                let (minor_faults, major_faults) = faults_since(faults);
                if report.already_recovered {
                    return Err(format!("{}: recovery found its marker: the restore did not take", cfg.label));
                }
                Ok(Sample {
                    secs,
                    residency,
                    backend: report.io.backend,
                    notes: report.io.notes.clone(),
                    records: report.records_scanned,
                    last_lsn: report.lsn_range.1,
                    scan_ms: report.phases.iter().find(|p| p.phase == "scan").map(|p| p.ms),
                    resident_at_start: Some(report.io.resident_at_start),
                    workers: Some(report.parallel.workers),
                    minor_faults,
                    major_faults,
                })
            }
        }
    }

    /// Fails unless `s` found the same records as the reference scan.
    pub fn check_sample(&self, cfg: &Config, s: &Sample) -> Result<(), String> {
        if (s.records, s.last_lsn) != (self.records, self.last_lsn) {
            return Err(format!(
                "{} on {}: {} records up to LSN {}, the reference scan found {} up to {}",
                cfg.label, self.record, s.records, s.last_lsn, self.records, self.last_lsn
            ));
        }
        Ok(())
    }

    /// One untimed recovery through `cfg`, checked block by block against the oracle.
    pub fn verify(&self, cfg: &Config, workers: Option<usize>) -> Result<Sample, String> {
        let s = self.sample(Consumer::Recover, CacheState::Warm, cfg, workers)?;
        self.check_sample(cfg, &s)?;
        let v = workloads::digest::verify_dir(&self.prepared.dir).map_err(|e| e.to_string())?;
        if !v.matches {
            return Err(format!("{} on {}: recovered image does not match the oracle", cfg.label, self.record));
        }
        Ok(s)
    }
}

/// The file system holding `path`: (type, source, mount point) from /proc/self/mounts, by the
/// longest mount point that contains it. Cold-cache and direct-I/O figures mean nothing on
/// tmpfs, so results carry this.
pub fn file_system_of(path: &Path) -> Option<(String, String, String)> {
    let path = std::fs::canonicalize(path).ok()?;
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let (src, mnt, fstype) = (it.next()?, it.next()?, it.next()?);
            path.starts_with(mnt).then(|| (fstype.to_string(), src.to_string(), mnt.to_string()))
        })
        .max_by_key(|(_, _, mnt)| mnt.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_have_unique_labels_and_valid_options() {
        let all = configs();
        assert_eq!(all.len(), 12);
        for (i, c) in all.iter().enumerate() {
            assert!(c.io.validate().is_ok(), "{}", c.label);
            assert!(all[i + 1..].iter().all(|d| d.label != c.label), "{}", c.label);
        }
        assert_eq!(select_configs("auto,read-64K").map(|v| v.len()), Ok(2));
        assert!(select_configs("read-2M").is_err());
    }

    #[test]
    fn record_shapes_are_valid() {
        for r in RECORDS {
            let p = record_params(r, 1).expect("known shape");
            assert!(p.validate().is_ok(), "{r}");
            assert!(guess_bytes_per_txn(&p) > 0.0);
        }
        assert!(record_params("1K", 1).is_err());
    }
}
