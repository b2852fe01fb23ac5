//! How `fastrec recover` shows progress: indicatif bars on a terminal, JSON Lines for
//! programs, or nothing; and Ctrl-C as a clean cancellation.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use recovery::progress::{JsonLines, Observer, Phase, Snapshot};

/// What `--progress` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressArg {
    /// Bars when stderr is a terminal, nothing otherwise.
    Auto,
    /// Bars on stderr (drawn only if it is a terminal).
    Bar,
    /// One JSON object per line on stderr: every phase start and end, and one per interval.
    Json,
    /// Nothing.
    None,
}

/// Parses `250ms`, `2s` or a bare number of milliseconds.
pub fn parse_interval(s: &str) -> anyhow::Result<Duration> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else {
        (s, 1e-3)
    };
    let v: f64 =
        num.trim().parse().map_err(|_| anyhow::anyhow!("--progress-interval `{s}`: expected e.g. 250ms or 1s"))?;
    let secs = v * scale;
    if !(0.001..=3600.0).contains(&secs) {
        anyhow::bail!("--progress-interval `{s}`: must be between 1ms and 1h");
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The observer `--progress` asks for, if any.
pub fn observer(arg: ProgressArg) -> Option<Box<dyn Observer>> {
    match arg {
        ProgressArg::None => None,
        ProgressArg::Json => Some(Box::new(JsonLines::new(std::io::stderr()))),
        ProgressArg::Bar => Some(Box::new(Bars::new())),
        ProgressArg::Auto if std::io::stderr().is_terminal() => Some(Box::new(Bars::new())),
        ProgressArg::Auto => None,
    }
}

/// Two lines on stderr: the phase's bar, and the workers' counters when it runs on workers.
/// Finished phases are printed above them, one line each.
struct Bars {
    multi: indicatif::MultiProgress,
    bar: ProgressBar,
    workers: ProgressBar,
    /// Phases shown so far, to number them.
    shown: Mutex<usize>,
}

fn amount(unit: &str, n: f64) -> String {
    if unit == "bytes" {
        format!("{}", HumanBytes(n as u64))
    } else if n >= 1e6 {
        format!("{:.2}M {unit}", n / 1e6)
    } else if n >= 1e4 {
        format!("{:.1}k {unit}", n / 1e3)
    } else {
        format!("{n:.0} {unit}")
    }
}

impl Bars {
    fn new() -> Bars {
        let multi = indicatif::MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(15));
        let style = ProgressStyle::with_template("{prefix:>24} [{bar:30}] {percent:>3}% {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let bar = multi.add(ProgressBar::new(0).with_style(style));
        let wstyle = ProgressStyle::with_template("{prefix:>24} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let workers = multi.add(ProgressBar::new(0).with_style(wstyle));
        // Redraws are rate-limited: without a steady tick, an update that falls inside the
        // limit stays undrawn until the next one, up to a whole progress interval later.
        bar.enable_steady_tick(Duration::from_millis(100));
        workers.enable_steady_tick(Duration::from_millis(100));
        Bars { multi, bar, workers, shown: Mutex::new(0) }
    }

    fn update(&self, s: &Snapshot, finished: bool) {
        // An empty phase reads 100% from its start (it has nothing to do); only locate, whose
        // total is learnt at its end, reads 0% until then.
        let (len, pos) = match (s.total, finished) {
            (0, false) if s.phase == Phase::Locate => (1, 0),
            (0, _) => (1, 1),
            (t, _) => (t, s.done.min(t)),
        };
        let eta = match s.eta_s {
            Some(e) => format!("ETA {}", eta_text(e)),
            None => "ETA --".into(),
        };
        let rate = if s.rate > 0.0 { format!("{}/s", amount(s.unit, s.rate)) } else { "--/s".into() };
        // The message first: setting the position may draw, and must not draw an old message.
        self.bar.set_message(format!(
            "{} of {}  {rate}  {eta}",
            amount(s.unit, s.done as f64),
            amount(s.unit, s.total as f64)
        ));
        self.bar.set_length(len);
        self.bar.set_position(pos);
        if s.workers.is_empty() {
            self.workers.set_prefix("");
            self.workers.set_message(s.note.clone().unwrap_or_default());
        } else {
            let per: Vec<String> =
                s.workers.iter().map(|w| format!("#{} {}", w.worker, amount("", w.ops as f64))).collect();
            self.workers.set_prefix("workers");
            self.workers.set_message(per.join("  "));
        }
    }
}

impl Observer for Bars {
    fn phase_started(&self, s: &Snapshot) {
        let n = {
            let mut shown = self.shown.lock().unwrap_or_else(|e| e.into_inner());
            *shown += 1;
            *shown
        };
        // No reset(): the steady tick could draw the reset bar with the old phase's prefix and
        // message. Prefix, message and position are replaced in that order instead.
        if s.phase == Phase::Done {
            return;
        }
        self.bar.set_prefix(format!("[{n}/{}] {}", Phase::ALL.len() - 1, s.phase));
        self.update(s, false);
    }
    fn progress(&self, s: &Snapshot) {
        self.update(s, false);
    }
    fn phase_finished(&self, s: &Snapshot) {
        if s.phase == Phase::Done {
            return;
        }
        self.update(s, true);
        let note = s.note.as_deref().map(|n| format!("  ({n})")).unwrap_or_default();
        let line = if s.total == 0 && s.ops == 0 {
            format!("{:>24}  -{note}", s.phase.name())
        } else {
            format!(
                "{:>24}  {} in {:.2} s, {}/s{note}",
                s.phase.name(),
                amount(s.unit, s.done as f64),
                s.phase_elapsed_s,
                amount(s.unit, s.rate)
            )
        };
        let _ = self.multi.println(line);
    }
    fn finished(&self, s: &Snapshot, error: Option<&str>) {
        let line = match error {
            None => format!("{:>24}  in {:.2} s", "recovered", s.elapsed_s),
            Some(_) => format!("{:>24}  after {:.2} s in {}", "stopped", s.elapsed_s, s.phase),
        };
        // Printed above the bars while they still exist, then the bars are removed: the
        // other order can leave a stale bar on the screen.
        let _ = self.multi.println(line);
        self.workers.finish_and_clear();
        self.bar.finish_and_clear();
        let _ = self.multi.clear();
    }
}

/// An ETA for people: "<1 s", "42 s", "3 min 05 s", "2 h 10 min".
fn eta_text(secs: f64) -> String {
    if secs <= 0.0 {
        return "0 s".into();
    }
    if secs < 1.0 {
        return "<1 s".into();
    }
    let s = secs.round() as u64;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {:02} s", s / 60, s % 60),
        _ => format!("{} h {:02} min", s / 3600, s % 3600 / 60),
    }
}

/// Set by the first Ctrl-C (SIGINT) or SIGTERM; recovery polls it at its safe points.
pub static CANCEL: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    CANCEL.store(true, Ordering::Relaxed);
}

/// Makes the first SIGINT or SIGTERM set [`CANCEL`]; the handler resets itself, so a second
/// one ends the process at once (which the next recovery also repairs).
pub fn install_cancel_handler() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction is a valid starting value; the handler only stores to an
        // atomic, and SA_RESETHAND restores the default action after the first delivery.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            sa.sa_flags = libc::SA_RESETHAND;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_parse_and_bad_ones_say_why() {
        assert_eq!(parse_interval("250ms").ok(), Some(Duration::from_millis(250)));
        assert_eq!(parse_interval("2s").ok(), Some(Duration::from_secs(2)));
        assert_eq!(parse_interval("100").ok(), Some(Duration::from_millis(100)));
        let e = parse_interval("soon").expect_err("not a duration");
        assert!(e.to_string().contains("--progress-interval"), "{e}");
        assert!(parse_interval("0ms").is_err());
    }

    #[test]
    fn etas_read_well() {
        assert_eq!(eta_text(0.0), "0 s");
        assert_eq!(eta_text(0.4), "<1 s");
        assert_eq!(eta_text(42.4), "42 s");
        assert_eq!(eta_text(185.0), "3 min 05 s");
        assert_eq!(eta_text(7800.0), "2 h 10 min");
    }
}
