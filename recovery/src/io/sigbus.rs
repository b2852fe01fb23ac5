//! Turns a SIGBUS from a shrunken journal mapping into zero pages and a recorded loss, so
//! recovery can fail with an error instead of dying.
//!
//! Reading a mapped page whose file offset no longer exists (another process truncated the
//! file) raises SIGBUS. The handler installed here looks the faulting address up in a fixed
//! table of registered mappings. On a hit it maps an anonymous zero page over the faulting
//! page (mmap is async-signal-safe), marks the mapping, and returns, so the read completes
//! with zeros; the owner then sees [`Guard::hit`] and reports the shrink. A fault outside
//! every registered range restores the previous disposition and returns, so the fault repeats
//! and is handled exactly as it would have been without this module.
//!
//! The table is a fixed array of atomics because a signal handler may not allocate or lock.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Mappings that can be guarded at once. A mapping that finds the table full is not made:
/// the caller reads the segment instead.
pub const SLOTS: usize = 4096;

struct Slot {
    claimed: AtomicBool,
    start: AtomicUsize,
    len: AtomicUsize,
    hit: AtomicBool,
}

#[expect(clippy::declare_interior_mutable_const, reason = "used only to initialise the static table")]
const EMPTY: Slot = Slot {
    claimed: AtomicBool::new(false),
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    hit: AtomicBool::new(false),
};

static TABLE: [Slot; SLOTS] = [EMPTY; SLOTS];
static PAGE: AtomicUsize = AtomicUsize::new(4096);
static PREVIOUS: OnceLock<Option<libc::sigaction>> = OnceLock::new();

extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // The interrupted code may be between a failing call and its read of errno.
    // SAFETY: __errno_location returns this thread's errno slot, valid for the thread's life.
    let errno = unsafe { *libc::__errno_location() };
    handle(sig, info, ctx);
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}

fn handle(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for a handler installed with SA_SIGINFO.
    let addr = unsafe { (*info).si_addr() } as usize;
    let page = PAGE.load(Ordering::Relaxed);
    for slot in &TABLE {
        let start = slot.start.load(Ordering::Acquire);
        if start == 0 || addr < start || addr >= start + slot.len.load(Ordering::Acquire) {
            continue;
        }
        let at = addr & !(page - 1);
        // SAFETY: `at` is a page inside a live read-only mapping this process registered;
        // replacing that one page with anonymous zero memory changes no other mapping.
        let r = unsafe {
            libc::mmap(
                at as *mut libc::c_void,
                page,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if r != libc::MAP_FAILED {
            slot.hit.store(true, Ordering::Release);
            return;
        }
    }
    // Not ours (or the page could not be replaced): put back whatever handled SIGBUS before
    // and let the fault happen again under it.
    let previous = PREVIOUS.get().copied().flatten();
    // SAFETY: sigaction is async-signal-safe; a zeroed sigaction is SIG_DFL with no flags.
    unsafe {
        let act = previous.unwrap_or_else(|| std::mem::zeroed());
        libc::sigaction(libc::SIGBUS, &act, std::ptr::null_mut());
    }
}

fn install() {
    PREVIOUS.get_or_init(|| {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if page > 0 {
            PAGE.store(page as usize, Ordering::Relaxed);
        }
        // SAFETY: a zeroed sigaction is a valid starting point; the handler has the
        // SA_SIGINFO signature and touches only atomics and async-signal-safe calls.
        unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = on_sigbus as *const () as usize;
            act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut act.sa_mask);
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGBUS, &act, &mut old) == 0 {
                Some(old)
            } else {
                None
            }
        }
    });
}

/// A registered mapping range; unregisters on drop (which must happen before the unmap).
pub struct Guard {
    slot: usize,
}

impl Guard {
    /// Registers `[start, start + len)`; `None` when the table is full.
    pub fn new(start: usize, len: usize) -> Option<Guard> {
        install();
        let slot = TABLE
            .iter()
            .position(|s| s.claimed.compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed).is_ok())?;
        let s = &TABLE[slot];
        s.hit.store(false, Ordering::Release);
        s.len.store(len, Ordering::Release);
        s.start.store(start, Ordering::Release);
        Some(Guard { slot })
    }

    /// Whether a page of the range was lost to a truncation.
    pub fn hit(&self) -> bool {
        TABLE[self.slot].hit.load(Ordering::Acquire)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let s = &TABLE[self.slot];
        s.start.store(0, Ordering::Release);
        s.len.store(0, Ordering::Release);
        s.claimed.store(false, Ordering::Release);
    }
}
