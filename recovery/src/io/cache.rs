//! Page-cache control for experiments: make a file cold, and measure how much of it is
//! resident.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

/// How much of a file the page cache holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Residency {
    /// Pages in the page cache.
    pub resident_pages: u64,
    /// Pages the file spans.
    pub total_pages: u64,
}

impl Residency {
    /// Resident share in `[0, 1]` (1 for an empty file).
    pub fn fraction(&self) -> f64 {
        if self.total_pages == 0 {
            1.0
        } else {
            self.resident_pages as f64 / self.total_pages as f64
        }
    }

    /// Sums two measurements.
    pub fn plus(self, other: Residency) -> Residency {
        Residency {
            resident_pages: self.resident_pages + other.resident_pages,
            total_pages: self.total_pages + other.total_pages,
        }
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

/// Writes back `path`'s dirty pages and asks the kernel to drop its cached pages
/// (fdatasync + `posix_fadvise(POSIX_FADV_DONTNEED)`). Pages mapped by a live process stay;
/// measure with [`residency`] rather than assume.
pub fn evict(path: &Path) -> std::io::Result<()> {
    let file = File::open(path)?;
    file.sync_data()?;
    // SAFETY: the descriptor is open for the duration of the call; offset 0 and length 0
    // mean the whole file.
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if rc != 0 {
        return Err(std::io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// `cachestat(2)`'s range argument (Linux 6.5 and later).
#[repr(C)]
struct CachestatRange {
    off: u64,
    len: u64,
}

/// `cachestat(2)`'s result: page counts.
#[repr(C)]
#[derive(Default)]
struct Cachestat {
    nr_cache: u64,
    nr_dirty: u64,
    nr_writeback: u64,
    nr_evicted: u64,
    nr_recently_evicted: u64,
}

/// `cachestat` on x86_64 and aarch64 (the same number on both).
const SYS_CACHESTAT: libc::c_long = 451;

/// Resident pages of `file` from `cachestat(2)`, or `None` where the kernel does not have it.
/// It counts in the kernel without copying a byte per page out, several times faster than
/// mincore over a mapping.
fn cachestat_pages(file: &File, len: u64) -> Option<u64> {
    if !cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
        return None;
    }
    let range = CachestatRange { off: 0, len };
    let mut st = Cachestat::default();
    // SAFETY: `range` and `st` are live, correctly laid out for the syscall (linux/mman.h),
    // and the descriptor is open; the kernel only reads `range` and writes `st`.
    let rc = unsafe {
        libc::syscall(SYS_CACHESTAT, file.as_raw_fd(), &range as *const CachestatRange, &mut st as *mut Cachestat, 0u32)
    };
    (rc == 0).then_some(st.nr_cache)
}

/// Counts `path`'s pages in the page cache: with cachestat(2) where the kernel has it, else
/// with mincore(2) over a mapping that is never touched (so measuring faults nothing in).
pub fn residency(path: &Path) -> std::io::Result<Residency> {
    let file = File::open(path)?;
    let len = file.metadata()?.len() as usize;
    let page = page_size();
    let total = len.div_ceil(page);
    if total == 0 {
        return Ok(Residency::default());
    }
    if let Some(n) = cachestat_pages(&file, len as u64) {
        return Ok(Residency { resident_pages: n.min(total as u64), total_pages: total as u64 });
    }
    // SAFETY: a read-only shared mapping of a file we hold open; its pages are never read
    // (mincore only inspects the page cache), so a concurrent truncation cannot fault here.
    let map = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED, file.as_raw_fd(), 0) };
    if map == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    let mut vec = vec![0u8; total];
    // SAFETY: `map` is a live mapping of `len` bytes and `vec` has one byte per page of it.
    let rc = unsafe { libc::mincore(map, len, vec.as_mut_ptr()) };
    let err = std::io::Error::last_os_error();
    // SAFETY: unmapping exactly the mapping made above.
    unsafe { libc::munmap(map, len) };
    if rc != 0 {
        return Err(err);
    }
    let resident = vec.iter().filter(|&&b| b & 1 != 0).count() as u64;
    Ok(Residency { resident_pages: resident, total_pages: total as u64 })
}

/// [`evict`] then [`residency`] for every file in `paths`: the residency left after eviction,
/// summed.
pub fn evict_all(paths: &[&Path]) -> std::io::Result<Residency> {
    let mut r = Residency::default();
    for p in paths {
        evict(p)?;
    }
    for p in paths {
        r = r.plus(residency(p)?);
    }
    Ok(r)
}

/// [`residency`] summed over `paths`.
pub fn residency_all(paths: &[&Path]) -> std::io::Result<Residency> {
    paths.iter().try_fold(Residency::default(), |acc, p| Ok(acc.plus(residency(p)?)))
}

/// [`residency`] summed over the segment files of the journal directory `dir`; files that
/// cannot be measured count as absent (the report is informative, recovery does not depend
/// on it), and so do files longer than any segment may be (recovery refuses them; measuring a
/// sparse terabyte would take a minute).
pub fn residency_of_journal(dir: &Path) -> Residency {
    let Ok(entries) = std::fs::read_dir(dir) else { return Residency::default() };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_str().and_then(crate::format::segment::parse_segment_file_name).is_some())
        .filter(|e| e.metadata().is_ok_and(|m| m.len() <= crate::format::segment::SEGMENT_BYTES_MAX))
        .filter_map(|e| residency(&e.path()).ok())
        .fold(Residency::default(), Residency::plus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cachestat_and_mincore_agree() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("f");
        std::fs::write(&path, vec![7u8; 1 << 20]).expect("write");
        let file = File::open(&path).expect("open");
        let Some(n) = cachestat_pages(&file, 1 << 20) else { return };
        // Just written: every page cached, as mincore sees it too.
        assert_eq!(n, 256);
        let page = page_size();
        // SAFETY: a read-only mapping of the open file, only inspected by mincore.
        let map = unsafe {
            libc::mmap(std::ptr::null_mut(), 1 << 20, libc::PROT_READ, libc::MAP_SHARED, file.as_raw_fd(), 0)
        };
        assert_ne!(map, libc::MAP_FAILED);
        let mut vec = vec![0u8; (1 << 20) / page];
        // SAFETY: `map` is a live mapping of that length, `vec` one byte per page.
        assert_eq!(unsafe { libc::mincore(map, 1 << 20, vec.as_mut_ptr()) }, 0);
        // SAFETY: unmapping the mapping made above.
        unsafe { libc::munmap(map, 1 << 20) };
        assert_eq!(vec.iter().filter(|&&b| b & 1 != 0).count() as u64, n);
    }
}
