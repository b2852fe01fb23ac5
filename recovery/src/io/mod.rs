//! Journal read backends: one [`SegmentReader`] trait, four implementations, and the rule
//! that picks one when the user asks for `auto`.
//!
//! Every backend delivers a whole segment as one contiguous byte slice ([`SegmentBytes`]),
//! because the decoder, the parallel scan's chunks and replay all address records by their
//! offset in the segment. What differs is how the bytes get there:
//!
//! - `read`: sequential read(2) calls of `buffer_bytes` each, straight into the segment's
//!   memory (one copy, page cache to user memory).
//! - `pread`: the segment is cut into `buffer_bytes` pieces and `pread_depth` threads issue
//!   positioned reads of them concurrently (one copy, several requests in flight).
//! - `mmap`: a read-only shared mapping, optionally populated and advised (no copy; page
//!   faults or populate instead).
//! - `direct`: O_DIRECT reads of `buffer_bytes` into page-aligned memory, `pread_depth` in
//!   flight, bypassing the page cache (one DMA, no page-cache pollution, always a device
//!   read).
//!
//! Copies live in anonymous memory populated in one system call ([`PageBuf`]).

pub mod cache;
pub mod sigbus;

use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::journal::SegmentMeta;

/// How journal segments are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IoBackend {
    /// Choose by journal size, mapping where the file system allows; see [`choose`].
    #[default]
    Auto,
    /// Sequential read(2) into the segment's memory.
    Read,
    /// Concurrent positioned reads.
    Pread,
    /// A read-only mapping (memmap2).
    Mmap,
    /// O_DIRECT reads into aligned memory, bypassing the page cache.
    Direct,
}

impl IoBackend {
    /// Every backend, `auto` first.
    pub const ALL: [IoBackend; 5] =
        [IoBackend::Auto, IoBackend::Read, IoBackend::Pread, IoBackend::Mmap, IoBackend::Direct];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            IoBackend::Auto => "auto",
            IoBackend::Read => "read",
            IoBackend::Pread => "pread",
            IoBackend::Mmap => "mmap",
            IoBackend::Direct => "direct",
        }
    }
}

impl std::fmt::Display for IoBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for IoBackend {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        IoBackend::ALL.into_iter().find(|b| b.name() == s).ok_or_else(|| {
            Error::Config(format!("unknown I/O backend `{s}` (expected auto, read, pread, mmap or direct)"))
        })
    }
}

/// What to do when the filesystem refuses O_DIRECT (tmpfs, some FUSE and network
/// filesystems).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DirectFallback {
    /// Read through the page cache with the `read` backend and say so in the report.
    #[default]
    Read,
    /// Fail with [`Error::DirectIoUnsupported`].
    Error,
}

/// Mapping options of the `mmap` backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MmapAdvice {
    /// Map with `MAP_POPULATE` (segments up to 256 MiB): one fault-in pass up front instead of
    /// a fault per page. Default true.
    pub populate: bool,
    /// `madvise(MADV_SEQUENTIAL)`: aggressive read-ahead, early reclaim. Default false.
    pub sequential: bool,
    /// `madvise(MADV_WILLNEED)`: start reading the whole segment now. Default false.
    pub willneed: bool,
    /// `madvise(MADV_HUGEPAGE)`: ask for huge pages (only file systems with large folios
    /// honour it for file mappings). Default false.
    pub hugepage: bool,
}

impl Default for MmapAdvice {
    fn default() -> Self {
        MmapAdvice { populate: true, sequential: false, willneed: false, hugepage: false }
    }
}

/// Journal read settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IoOptions {
    /// The backend, or `auto`. Default auto.
    pub backend: IoBackend,
    /// Bytes per read request of `read`, `pread` and `direct` (4 KiB..=4 MiB; `direct` rounds
    /// up to 4 KiB). Default 1 MiB.
    pub buffer_bytes: usize,
    /// Reads in flight per segment (`pread`, `direct`). Default 4, minimum 1.
    pub pread_depth: usize,
    /// `auto` maps journals at least this large. Default 1 MiB (see [`choose`]).
    pub mmap_threshold: u64,
    /// `mmap` options.
    pub mmap: MmapAdvice,
    /// What `direct` does where O_DIRECT is refused. Default: fall back to `read`.
    pub direct_fallback: DirectFallback,
    /// Bytes of segment copies (`read`, `pread`, `direct`) kept in memory so later passes and
    /// workers do not read them again; segments beyond it are read again when needed.
    /// Mappings cost no heap and are always kept. Default 1 GiB.
    pub cache_bytes: u64,
    /// Test hook: behave as if the file system refused O_DIRECT, so the fallback can be
    /// tested where every file system at hand serves it (tmpfs does since Linux 6.6).
    /// Default false.
    pub simulate_direct_refusal: bool,
}

/// Smallest accepted read request.
pub const BUFFER_BYTES_MIN: usize = 4 << 10;
/// Largest accepted read request.
pub const BUFFER_BYTES_MAX: usize = 4 << 20;
/// Alignment of O_DIRECT buffers, offsets and lengths. 4 KiB satisfies every common device's
/// logical block size.
pub const DIRECT_ALIGN: usize = 4096;

impl Default for IoOptions {
    fn default() -> Self {
        IoOptions {
            backend: IoBackend::Auto,
            buffer_bytes: 1 << 20,
            pread_depth: 4,
            mmap_threshold: 1 << 20,
            mmap: MmapAdvice::default(),
            direct_fallback: DirectFallback::Read,
            cache_bytes: 1 << 30,
            simulate_direct_refusal: false,
        }
    }
}

impl IoOptions {
    /// Options with `backend` and every other setting at its default.
    pub fn with(backend: IoBackend) -> IoOptions {
        IoOptions { backend, ..IoOptions::default() }
    }

    /// Checks the ranges documented on the fields.
    pub fn validate(&self) -> Result<()> {
        if !(BUFFER_BYTES_MIN..=BUFFER_BYTES_MAX).contains(&self.buffer_bytes) {
            return Err(Error::Config(format!(
                "I/O buffer of {} bytes is outside {BUFFER_BYTES_MIN}..={BUFFER_BYTES_MAX}",
                self.buffer_bytes
            )));
        }
        if self.pread_depth == 0 {
            return Err(Error::Config("pread depth must be at least 1".into()));
        }
        Ok(())
    }
}

/// The bytes of one segment. Cloning is cheap: every variant is shared.
#[derive(Clone)]
pub enum SegmentBytes {
    /// A read-only mapping of the segment file.
    Mapped(Arc<Mapping>),
    /// A copy in anonymous memory (read, pread, direct).
    Copied(Arc<PageBuf>),
}

impl std::ops::Deref for SegmentBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            SegmentBytes::Mapped(m) => m.bytes(),
            SegmentBytes::Copied(b) => b,
        }
    }
}

/// A read-only mapping registered with the SIGBUS guard for its whole life.
pub struct Mapping {
    // Declared first so it drops first: the range leaves the guard before it is unmapped.
    guard: sigbus::Guard,
    map: memmap2::Mmap,
}

impl Mapping {
    /// The mapped bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// Whether a page of this mapping faulted because the file shrank underneath it (the page
    /// then reads as zeros).
    pub fn lost_pages(&self) -> bool {
        self.guard.hit()
    }
}

/// Page-aligned anonymous memory for a segment copy, populated when it is made and handed
/// back to its reader's pool when dropped.
///
/// Populating costs one system call where first touches would cost a page fault per 4 KiB,
/// and fresh pages, not the copy, dominated the copying backends on large journals; reusing a
/// dropped buffer avoids fresh pages altogether. Page alignment also satisfies O_DIRECT.
pub struct PageBuf {
    map: Option<memmap2::MmapMut>,
    len: usize,
    pool: Option<Arc<BufPool>>,
}

impl PageBuf {
    fn slice_mut(&mut self, from: usize, to: usize) -> &mut [u8] {
        match self.map.as_mut() {
            Some(m) => &mut m[from..to],
            None => &mut [],
        }
    }
}

impl Drop for PageBuf {
    fn drop(&mut self) {
        if let (Some(pool), Some(map)) = (self.pool.take(), self.map.take()) {
            pool.put(map);
        }
    }
}

impl std::ops::Deref for PageBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.map.as_ref().map_or(&[], |m| &m[..self.len])
    }
}

/// Segment buffers dropped by one journal's readers, for its next segment reads.
#[derive(Default)]
pub struct BufPool {
    free: std::sync::Mutex<Vec<memmap2::MmapMut>>,
}

/// Free buffers a pool keeps; enough for the concurrent readers of a parallel scan.
const POOL_KEEP: usize = 8;

impl BufPool {
    /// A buffer of at least `cap` bytes (reused when one is free), of which the first `len`
    /// are visible once filled.
    fn take(self: &Arc<Self>, cap: usize, len: usize, path: &Path) -> Result<PageBuf> {
        let reused = {
            let mut free = self.free.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            free.iter().position(|m| m.len() >= cap).map(|i| free.swap_remove(i))
        };
        let map = match reused {
            Some(m) => m,
            None => memmap2::MmapOptions::new()
                .len(cap.max(1))
                .populate()
                .map_anon()
                .map_err(|e| Error::io(path, "allocate segment buffer", e))?,
        };
        Ok(PageBuf { map: Some(map), len, pool: Some(Arc::clone(self)) })
    }

    fn put(&self, map: memmap2::MmapMut) {
        let mut free = self.free.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if free.len() < POOL_KEEP {
            free.push(map);
        }
    }
}

/// Reads whole segments. Implementations must return exactly `meta.len` bytes or an error.
pub trait SegmentReader: Send + Sync {
    /// The backend this reader implements.
    fn backend(&self) -> IoBackend;
    /// Reads segment `meta` whole.
    fn read_segment(&self, meta: &SegmentMeta) -> Result<SegmentBytes>;
}

fn shrank(path: &Path, expected: u64, got: u64) -> Error {
    Error::io(
        path,
        "read segment",
        std::io::Error::other(format!("segment shrank during recovery ({expected} -> {got} bytes)")),
    )
}

fn open(path: &Path) -> Result<File> {
    File::open(path).map_err(|e| Error::io(path, "open segment", e))
}

/// `read`: sequential read(2) requests of `buffer` bytes.
pub struct ReadReader {
    /// Bytes per request.
    pub buffer: usize,
    /// Where segment buffers come from.
    pub pool: Arc<BufPool>,
}

impl SegmentReader for ReadReader {
    fn backend(&self) -> IoBackend {
        IoBackend::Read
    }

    fn read_segment(&self, meta: &SegmentMeta) -> Result<SegmentBytes> {
        let mut file = open(&meta.path)?;
        let len = meta.len as usize;
        let mut buf = self.pool.take(len, len, &meta.path)?;
        let mut at = 0;
        while at < len {
            let end = (at + self.buffer).min(len);
            match std::io::Read::read(&mut file, buf.slice_mut(at, end)) {
                Ok(0) => return Err(shrank(&meta.path, meta.len, at as u64)),
                Ok(n) => at += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io(&meta.path, "read segment", e)),
            }
        }
        Ok(SegmentBytes::Copied(Arc::new(buf)))
    }
}

/// `pread`: `depth` threads issue positioned reads of `buffer`-byte pieces concurrently.
pub struct PreadReader {
    /// Bytes per request.
    pub buffer: usize,
    /// Requests in flight.
    pub depth: usize,
    /// Where segment buffers come from.
    pub pool: Arc<BufPool>,
}

fn pread_exact(file: &File, path: &Path, seg_len: u64, buf: &mut [u8], offset: u64) -> Result<()> {
    let mut at = 0;
    while at < buf.len() {
        match file.read_at(&mut buf[at..], offset + at as u64) {
            Ok(0) => return Err(shrank(path, seg_len, offset + at as u64)),
            Ok(n) => at += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(path, "read segment", e)),
        }
    }
    Ok(())
}

/// Reads `buf` from `file` in `piece`-byte positioned reads, `depth` of them in flight.
/// `read_piece` reads one piece at an offset; it may stop short only at the end of the file.
fn read_concurrently(
    buf: &mut [u8],
    piece: usize,
    depth: usize,
    read_piece: &(dyn Fn(&mut [u8], u64) -> Result<()> + Sync),
) -> Result<()> {
    let pieces: Vec<(u64, &mut [u8])> =
        buf.chunks_mut(piece).enumerate().map(|(i, c)| ((i * piece) as u64, c)).collect();
    let depth = depth.min(pieces.len()).max(1);
    if depth == 1 {
        return pieces.into_iter().try_for_each(|(off, p)| read_piece(p, off));
    }
    // Plain scoped threads, not rayon: the caller may be a rayon worker holding the segment
    // cache's lock, and work stealing inside it could re-enter that lock. Pieces are dealt
    // round-robin, so the threads move through the file together.
    let mut groups: Vec<Vec<(u64, &mut [u8])>> = (0..depth).map(|_| Vec::new()).collect();
    for (i, p) in pieces.into_iter().enumerate() {
        groups[i % depth].push(p);
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = groups
            .into_iter()
            .map(|group| s.spawn(move || group.into_iter().try_for_each(|(off, p)| read_piece(p, off))))
            .collect();
        handles.into_iter().try_for_each(|h| h.join().unwrap_or(Err(Error::WorkerStopped)))
    })
}

impl SegmentReader for PreadReader {
    fn backend(&self) -> IoBackend {
        IoBackend::Pread
    }

    fn read_segment(&self, meta: &SegmentMeta) -> Result<SegmentBytes> {
        let file = open(&meta.path)?;
        let len = meta.len as usize;
        let mut buf = self.pool.take(len, len, &meta.path)?;
        read_concurrently(buf.slice_mut(0, len), self.buffer, self.depth, &|p, off| {
            pread_exact(&file, &meta.path, meta.len, p, off)
        })?;
        Ok(SegmentBytes::Copied(Arc::new(buf)))
    }
}

/// `mmap`: a read-only mapping with the configured advice.
pub struct MmapReader {
    /// Populate and madvise settings.
    pub advice: MmapAdvice,
}

/// Segments up to this size are mapped with `MAP_POPULATE` when populate is on.
const POPULATE_BYTES_MAX: u64 = 256 << 20;

impl SegmentReader for MmapReader {
    fn backend(&self) -> IoBackend {
        IoBackend::Mmap
    }

    fn read_segment(&self, meta: &SegmentMeta) -> Result<SegmentBytes> {
        let file = open(&meta.path)?;
        let len = file.metadata().map_err(|e| Error::io(&meta.path, "stat segment", e))?.len();
        if len < meta.len {
            return Err(shrank(&meta.path, meta.len, len));
        }
        match map_file(&file, &meta.path, meta.len, self.advice)? {
            Some(map) => Ok(SegmentBytes::Mapped(Arc::new(map))),
            // Every guard slot is taken (thousands of segments mapped at once): an unguarded
            // mapping could crash on a truncation, so read this segment instead.
            None => ReadReader { buffer: 1 << 20, pool: Arc::new(BufPool::default()) }.read_segment(meta),
        }
    }
}

/// Maps the first `len` bytes of `file` read-only. This is the only place the engine maps a
/// journal file.
///
/// Contract: the file must not shrink while the mapping lives. Recovery holds the directory's
/// exclusive lock (`LOCK`) for its whole run and never writes segments, and every cooperating
/// writer takes the same lock, so no fastrec process truncates a mapped segment. A process
/// that ignores the lock and truncates one anyway does not crash recovery: the mapping is
/// registered with [`sigbus`], whose handler replaces the lost page with zeros and records the
/// loss, and recovery checks for that ([`crate::journal::Journal::check_unchanged`]) before it
/// trusts what it read and before it writes its marker, so it fails with an I/O error and a
/// later run starts over. Returns `None`, mapping nothing, when the guard's table is full.
pub fn map_file(file: &File, path: &Path, len: u64, advice: MmapAdvice) -> Result<Option<Mapping>> {
    let mut opts = memmap2::MmapOptions::new();
    opts.len(len as usize);
    if advice.populate && len <= POPULATE_BYTES_MAX {
        opts.populate();
    }
    let map = {
        // SAFETY: the function's contract: a read-only mapping, no cooperating writer while it
        // lives (directory lock), and a truncation by anyone else becomes zero pages and an
        // error (SIGBUS guard), not undefined behaviour.
        unsafe { opts.map(file) }
    }
    .map_err(|e| Error::io(path, "map segment", e))?;
    // A truncation racing MAP_POPULATE only leaves pages unpopulated; the first fault on one
    // comes after the guard below exists.
    let Some(guard) = sigbus::Guard::new(map.as_ptr() as usize, map.len()) else { return Ok(None) };
    for (on, a) in [
        (advice.sequential, memmap2::Advice::Sequential),
        (advice.willneed, memmap2::Advice::WillNeed),
        (advice.hugepage, memmap2::Advice::HugePage),
    ] {
        // Advice is a hint; a kernel that rejects one (hugepage on a file system without
        // large folios) still maps correctly.
        if on {
            let _ = map.advise(a);
        }
    }
    Ok(Some(Mapping { guard, map }))
}

/// `direct`: O_DIRECT reads of `buffer` bytes (rounded up to [`DIRECT_ALIGN`]) into aligned
/// memory, `depth` of them in flight (with no page cache, nothing reads ahead for it).
pub struct DirectReader {
    /// Bytes per request.
    pub buffer: usize,
    /// Requests in flight.
    pub depth: usize,
    /// Where segment buffers come from.
    pub pool: Arc<BufPool>,
}

fn open_direct(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new().read(true).custom_flags(libc::O_DIRECT).open(path)
}

/// One O_DIRECT piece: whole alignment units, except that the file may end inside the last.
fn read_direct_piece(file: &File, path: &Path, seg_len: u64, buf: &mut [u8], offset: u64) -> Result<()> {
    let mut at = 0;
    while at < buf.len() {
        match file.read_at(&mut buf[at..], offset + at as u64) {
            Ok(0) => break,
            Ok(n) => at += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(path, "read segment with O_DIRECT", e)),
        }
        if at % DIRECT_ALIGN != 0 {
            break;
        }
    }
    let end = offset + at as u64;
    if at < buf.len() && end < seg_len {
        return Err(shrank(path, seg_len, end));
    }
    Ok(())
}

impl SegmentReader for DirectReader {
    fn backend(&self) -> IoBackend {
        IoBackend::Direct
    }

    fn read_segment(&self, meta: &SegmentMeta) -> Result<SegmentBytes> {
        let file = open_direct(&meta.path).map_err(|e| Error::io(&meta.path, "open segment with O_DIRECT", e))?;
        let len = meta.len as usize;
        let cap = len.div_ceil(DIRECT_ALIGN) * DIRECT_ALIGN;
        let piece = self.buffer.div_ceil(DIRECT_ALIGN) * DIRECT_ALIGN;
        let mut buf = self.pool.take(cap, len, &meta.path)?;
        read_concurrently(buf.slice_mut(0, cap), piece, self.depth, &|p, off| {
            read_direct_piece(&file, &meta.path, meta.len, p, off)
        })?;
        Ok(SegmentBytes::Copied(Arc::new(buf)))
    }
}

/// Whether `path`'s file system serves O_DIRECT reads: opens it with O_DIRECT and reads its
/// first aligned block.
pub fn direct_supported(path: &Path) -> std::io::Result<bool> {
    let file = match open_direct(path) {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok(false),
        Err(e) => return Err(e),
    };
    let mut buf = Arc::new(BufPool::default())
        .take(DIRECT_ALIGN, DIRECT_ALIGN, path)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    match file.read_at(buf.slice_mut(0, DIRECT_ALIGN), 0) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Which backend `auto` uses, and why.
///
/// The rule, from the lab (results/IO.md, docs/DESIGN.md): journals of at least
/// `mmap_threshold` bytes (default 1 MiB) are mapped with `MAP_POPULATE`; smaller ones are read
/// with read(2). Mapping matched or beat every copying backend at 1, 16 and 256 MiB, warm and
/// cold, by up to 4x on scans; populate beat sequential/willneed advice from a cold cache and
/// was within noise of it warm. Below 1 MiB nothing was measured to be worth a mapping's
/// setup and teardown. Where a journal cannot be mapped (some FUSE and network file systems),
/// [`resolve`] reads it instead.
pub fn choose(opts: &IoOptions, journal_bytes: u64) -> (IoBackend, String) {
    if journal_bytes >= opts.mmap_threshold {
        (IoBackend::Mmap, format!("auto: {journal_bytes} journal bytes >= mmap threshold {}", opts.mmap_threshold))
    } else {
        (IoBackend::Read, format!("auto: {journal_bytes} journal bytes < mmap threshold {}", opts.mmap_threshold))
    }
}

/// Whether `path` can be mapped (maps its first page without populating it).
fn map_supported(path: &Path) -> Result<bool> {
    let file = open(path)?;
    let len = file.metadata().map_err(|e| Error::io(path, "stat segment", e))?.len().min(4096);
    let advice = MmapAdvice { populate: false, ..MmapAdvice::default() };
    match map_file(&file, path, len.max(1), advice) {
        Ok(_) => Ok(true),
        Err(Error::Io { error, .. })
            if matches!(error.raw_os_error(), Some(libc::ENODEV | libc::EACCES | libc::EINVAL | libc::EOPNOTSUPP)) =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// The reader recovery uses, with the backend it resolved to and notes on how it got there.
pub struct Resolved {
    /// The reader.
    pub reader: Box<dyn SegmentReader>,
    /// How it was chosen (auto's reason, a direct-I/O fallback); empty when asked for directly.
    pub notes: Vec<String>,
}

/// Builds the reader for `opts` over a journal of `journal_bytes` whose first segment is
/// `probe` (used to test O_DIRECT support).
pub fn resolve(opts: &IoOptions, journal_bytes: u64, probe: &Path) -> Result<Resolved> {
    opts.validate()?;
    let mut notes = Vec::new();
    let mut backend = opts.backend;
    if backend == IoBackend::Auto {
        let (b, why) = choose(opts, journal_bytes);
        notes.push(why);
        backend = b;
        if backend == IoBackend::Mmap && !map_supported(probe)? {
            notes.push(format!("auto: {} cannot be mapped here; reading it instead", probe.display()));
            backend = IoBackend::Read;
        }
    }
    if backend == IoBackend::Direct {
        let ok = !opts.simulate_direct_refusal
            && direct_supported(probe).map_err(|e| Error::io(probe, "probe O_DIRECT", e))?;
        if !ok {
            match opts.direct_fallback {
                DirectFallback::Error => return Err(Error::DirectIoUnsupported { path: probe.to_path_buf() }),
                DirectFallback::Read => {
                    notes.push(format!(
                        "direct: the file system of {} refuses O_DIRECT; reading through the page cache instead",
                        probe.display()
                    ));
                    backend = IoBackend::Read;
                }
            }
        }
    }
    let pool = Arc::new(BufPool::default());
    let (buffer, depth) = (opts.buffer_bytes, opts.pread_depth);
    let reader: Box<dyn SegmentReader> = match backend {
        IoBackend::Read | IoBackend::Auto => Box::new(ReadReader { buffer, pool }),
        IoBackend::Pread => Box::new(PreadReader { buffer, depth, pool }),
        IoBackend::Mmap => Box::new(MmapReader { advice: opts.mmap }),
        IoBackend::Direct => Box::new(DirectReader { buffer, depth, pool }),
    };
    Ok(Resolved { reader, notes })
}
