//! The instruction-count gate's judge: compares the `summary.json` files gungraun wrote for
//! the `gate` benches with the committed baseline, prints a table (benchmark, baseline Ir,
//! measured Ir, change, verdict) and exits non-zero when any bench costs more than the
//! tolerance above its baseline, or is missing on either side.
//!
//! Usage: `gate_check --baseline bench/gate/baseline.json --summaries target/gungraun
//! [--tolerance 3] [--update [REASON]]`. Run through `scripts/gate.sh` (see docs/GATE.md).
//!
//! `--update` rewrites the baseline from the measured summaries instead of judging them (the
//! table then shows what changed), with this machine's provenance and REASON. It goes last,
//! or is followed by its reason.

use std::path::PathBuf;

use bench::gate::{self, Baseline, Meta};

const KNOWN: [&str; 4] = ["--baseline", "--summaries", "--tolerance", "--update"];

fn main() -> Result<(), String> {
    let update = gate::update_request(&std::env::args().skip(1).collect::<Vec<_>>())?;
    let args = bench::args::Args::from_env(&KNOWN)?;
    let baseline_path = PathBuf::from(args.get("--baseline").ok_or("--baseline FILE is required")?);
    let summaries = PathBuf::from(args.get("--summaries").ok_or("--summaries DIR is required")?);
    let tolerance: f64 = args.parsed("--tolerance", gate::DEFAULT_TOLERANCE_PCT)?;
    if !(tolerance.is_finite() && tolerance >= 0.0) {
        return Err(format!("--tolerance {tolerance}: a percentage, 0 or more"));
    }
    let measured = gate::read_summaries(&summaries)?;

    if let Some(reason) = update {
        let old = baseline_path.exists().then(|| Baseline::read(&baseline_path)).transpose()?;
        let reason = if reason.is_empty() { "measured with scripts/gate.sh --update".to_string() } else { reason };
        let new = Baseline {
            schema: gate::SCHEMA,
            metric: gate::METRIC.into(),
            meta: Meta::collect(&reason),
            benches: measured.clone(),
        };
        if let Some(old) = &old {
            println!("changes from the previous baseline ({}, {}):", old.meta.date, old.meta.reason);
            print!("{}", gate::compare(&old.benches, &measured, tolerance).table());
        }
        new.write(&baseline_path)?;
        println!(
            "baseline {} updated: {} benchmarks ({}; {}; gungraun {}; {})",
            baseline_path.display(),
            new.benches.len(),
            new.meta.rustc,
            new.meta.valgrind,
            new.meta.gungraun,
            new.meta.cpu
        );
        println!("commit it with the reason for the change in the message");
        return Ok(());
    }

    let baseline = Baseline::read(&baseline_path)?;
    let now = Meta::collect("");
    println!(
        "instruction-count gate: {} benchmarks against {} (measured {} at {}, reason: {})",
        measured.len(),
        baseline_path.display(),
        baseline.meta.date,
        baseline.meta.git_sha,
        baseline.meta.reason
    );
    let differences = gate::meta_differences(&baseline.meta, &now);
    for d in &differences {
        println!("note: {d}; counts may differ for that reason alone (see docs/GATE.md)");
    }
    let c = gate::compare(&baseline.benches, &measured, tolerance);
    print!("{}", c.table());
    let strict = std::env::var("GATE_STRICT").is_ok_and(|v| v == "1");
    if c.passed() {
        Ok(())
    } else if !differences.is_empty() && !strict {
        // A new compiler or valgrind moves counts by itself: failing here would blame the
        // change under test for the toolchain. Measure a baseline with this toolchain.
        println!(
            "gate: NOT COMPARABLE: the baseline was measured with a different toolchain or CPU (above); \
             not failing. Run scripts/gate.sh --update \"new toolchain\" on this toolchain and commit the \
             baseline, or set GATE_STRICT=1 to fail anyway"
        );
        Ok(())
    } else {
        Err(format!(
            "instruction-count gate failed: {}",
            c.failures().iter().map(|r| format!("{} ({})", r.id, r.verdict.label())).collect::<Vec<_>>().join(", ")
        ))
    }
}
