//! The instruction-count gate: compares the instruction counts (callgrind's `Ir`) that the
//! `gate` benches measured with the committed baseline `bench/gate/baseline.json`, and fails
//! when any bench costs more than the tolerance above its baseline. See docs/GATE.md.
//!
//! gungraun (run with `--save-summary=json`, or `GUNGRAUN_SAVE_SUMMARY=json`) writes one
//! `summary.json` per bench under `target/gungraun/PACKAGE/BENCH_FILE/GROUP/FUNCTION.ID/`;
//! [`read_summaries`] collects them, [`compare`] judges them, [`Comparison::table`] prints
//! the verdicts.
//!
//! ```
//! use std::collections::BTreeMap;
//! let baseline = BTreeMap::from([("gate::hot_paths::scan.small".to_string(), 1_000_000u64)]);
//! let measured = BTreeMap::from([("gate::hot_paths::scan.small".to_string(), 1_100_000u64)]);
//! let c = bench::gate::compare(&baseline, &measured, bench::gate::DEFAULT_TOLERANCE_PCT);
//! assert!(!c.passed());
//! println!("{}", c.table());
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Tolerance, in percent above the baseline, that a bench may cost before the gate fails.
pub const DEFAULT_TOLERANCE_PCT: f64 = 3.0;

/// The gungraun version the benches are pinned to (`=0.20.0` in bench/Cargo.toml); its runner
/// must be the same version.
pub const GUNGRAUN_VERSION: &str = "0.20.0";

/// The metric gated: callgrind's instructions executed.
pub const METRIC: &str = "Ir";

/// Version of the baseline file's layout.
pub const SCHEMA: u32 = 1;

/// Where and with what the baseline was measured. Counts move with the toolchain, so a
/// comparison across different versions says so.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Meta {
    /// gungraun-runner's version (`gungraun-runner --version`).
    pub gungraun: String,
    /// `valgrind --version`.
    pub valgrind: String,
    /// `rustc --version`.
    pub rustc: String,
    /// CPU model from /proc/cpuinfo.
    pub cpu: String,
    /// UTC date of the measurement, `YYYY-MM-DD`.
    pub date: String,
    /// Git revision measured (`git rev-parse HEAD`; the change being committed sits on top).
    pub git_sha: String,
    /// Why the baseline was (re)measured.
    pub reason: String,
}

/// The committed baseline: instruction counts per benchmark id, and their provenance.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Baseline {
    /// Layout version ([`SCHEMA`]).
    pub schema: u32,
    /// The metric of `benches` ([`METRIC`]).
    pub metric: String,
    /// Provenance.
    pub meta: Meta,
    /// Benchmark id (`MODULE_PATH.ID`, e.g. `gate::hot_paths::scan.small`) to its count.
    pub benches: BTreeMap<String, u64>,
}

impl Baseline {
    /// Reads and checks a baseline file.
    pub fn read(path: &Path) -> Result<Baseline, String> {
        let s = std::fs::read_to_string(path).map_err(|e| format!("baseline {}: {e}", path.display()))?;
        let b: Baseline = serde_json::from_str(&s).map_err(|e| format!("baseline {}: {e}", path.display()))?;
        if b.schema != SCHEMA || b.metric != METRIC {
            return Err(format!(
                "baseline {}: schema {} metric {}, expected schema {SCHEMA} metric {METRIC}",
                path.display(),
                b.schema,
                b.metric
            ));
        }
        Ok(b)
    }

    /// Writes the baseline as pretty JSON with a final newline.
    pub fn write(&self, path: &Path) -> Result<(), String> {
        let mut s = serde_json::to_string_pretty(self).map_err(|e| format!("encode baseline: {e}"))?;
        s.push('\n');
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        std::fs::write(path, s).map_err(|e| format!("write baseline {}: {e}", path.display()))
    }
}

/// The benchmark id and callgrind `Ir` count of one gungraun `summary.json`.
pub fn parse_summary(json: &str) -> Result<(String, u64), String> {
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| format!("not JSON: {e}"))?;
    let module = v.get("module_path").and_then(|m| m.as_str()).ok_or("no `module_path`")?;
    let id = match v.get("id").and_then(|i| i.as_str()) {
        Some(id) => format!("{module}.{id}"),
        None => module.to_string(),
    };
    let profiles = v.get("profiles").and_then(|p| p.as_array()).ok_or_else(|| format!("{id}: no `profiles`"))?;
    let callgrind = profiles
        .iter()
        .find(|p| p.get("tool").and_then(|t| t.as_str()) == Some("Callgrind"))
        .ok_or_else(|| format!("{id}: no Callgrind profile"))?;
    let metrics = callgrind
        .pointer("/data/total/metrics")
        .ok_or_else(|| format!("{id}: no `data.total.metrics` in the Callgrind profile"))?;
    // The metrics are callgrind's own; accept them wrapped in the tool's name too.
    let ir = metrics.get(METRIC).or_else(|| metrics.pointer(&format!("/Callgrind/{METRIC}")));
    let new = ir.and_then(|m| m.pointer("/values/new")).ok_or_else(|| {
        format!("{id}: no measured (`new`) {METRIC} value: was callgrind's {METRIC} event collected?")
    })?;
    let count = new.as_u64().ok_or_else(|| format!("{id}: {METRIC} is not a count: {new}"))?;
    Ok((id, count))
}

/// Every `summary.json` under `dir` (recursively): benchmark id to `Ir`. Two summaries with
/// the same id are an error.
pub fn read_summaries(dir: &Path) -> Result<BTreeMap<String, u64>, String> {
    let mut files = Vec::new();
    collect_summaries(dir, &mut files).map_err(|e| format!("summaries {}: {e}", dir.display()))?;
    files.sort();
    let mut out = BTreeMap::new();
    for f in files {
        let s = std::fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
        let (id, ir) = parse_summary(&s).map_err(|e| format!("{}: {e}", f.display()))?;
        if out.insert(id.clone(), ir).is_some() {
            return Err(format!("{}: a second summary for benchmark {id}", f.display()));
        }
    }
    if out.is_empty() {
        return Err(format!(
            "no summary.json under {}: were the benches run with GUNGRAUN_SAVE_SUMMARY=json (scripts/gate.sh does)?",
            dir.display()
        ));
    }
    Ok(out)
}

fn collect_summaries(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let p = e.path();
        if e.file_type()?.is_dir() {
            collect_summaries(&p, out)?;
        } else if e.file_name() == "summary.json" {
            out.push(p);
        }
    }
    Ok(())
}

/// What the gate says of one benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the tolerance.
    Ok,
    /// Cheaper than the baseline by more than the tolerance: passes, flagged.
    Faster,
    /// Costlier than the baseline by more than the tolerance: fails.
    Regressed,
    /// In the baseline, not measured: fails.
    NotMeasured,
    /// Measured, not in the baseline: fails.
    NotInBaseline,
}

impl Verdict {
    /// Whether this verdict fails the gate.
    pub fn fails(self) -> bool {
        matches!(self, Verdict::Regressed | Verdict::NotMeasured | Verdict::NotInBaseline)
    }

    /// The verdict as the table shows it.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Faster => "faster: consider updating the baseline",
            Verdict::Regressed => "REGRESSION",
            Verdict::NotMeasured => "MISSING: in the baseline, not measured",
            Verdict::NotInBaseline => "MISSING: measured, not in the baseline",
        }
    }
}

/// One benchmark's comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Benchmark id.
    pub id: String,
    /// Baseline count, if the baseline has the bench.
    pub baseline: Option<u64>,
    /// Measured count, if it was measured.
    pub measured: Option<u64>,
    /// Change from the baseline in percent, when both exist.
    pub change_pct: Option<f64>,
    /// The verdict.
    pub verdict: Verdict,
}

/// The whole comparison, one row per benchmark id on either side, sorted by id.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// The rows.
    pub rows: Vec<Row>,
    /// The tolerance applied, in percent.
    pub tolerance_pct: f64,
}

/// Change from `base` to `new` in percent (a measured count over a baseline of 0 is an
/// infinite increase).
pub fn change_pct(base: u64, new: u64) -> f64 {
    if base == 0 {
        return if new == 0 { 0.0 } else { f64::INFINITY };
    }
    (new as f64 - base as f64) / base as f64 * 100.0
}

/// Compares `measured` with `baseline` (id to count): a bench fails when it costs more than
/// `tolerance_pct` percent above its baseline, or is missing on either side.
pub fn compare(baseline: &BTreeMap<String, u64>, measured: &BTreeMap<String, u64>, tolerance_pct: f64) -> Comparison {
    let ids: std::collections::BTreeSet<&String> = baseline.keys().chain(measured.keys()).collect();
    let rows = ids
        .into_iter()
        .map(|id| {
            let (b, m) = (baseline.get(id).copied(), measured.get(id).copied());
            let (change, verdict) = match (b, m) {
                (Some(b), Some(m)) => {
                    let c = change_pct(b, m);
                    let v = if c > tolerance_pct {
                        Verdict::Regressed
                    } else if c < -tolerance_pct {
                        Verdict::Faster
                    } else {
                        Verdict::Ok
                    };
                    (Some(c), v)
                }
                (Some(_), None) => (None, Verdict::NotMeasured),
                _ => (None, Verdict::NotInBaseline),
            };
            Row { id: id.clone(), baseline: b, measured: m, change_pct: change, verdict }
        })
        .collect();
    Comparison { rows, tolerance_pct }
}

/// `n` with thousands separators.
pub fn grouped(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl Comparison {
    /// Whether every bench passed.
    pub fn passed(&self) -> bool {
        !self.rows.iter().any(|r| r.verdict.fails())
    }

    /// The rows that fail the gate.
    pub fn failures(&self) -> Vec<&Row> {
        self.rows.iter().filter(|r| r.verdict.fails()).collect()
    }

    /// The readable table (benchmark, baseline Ir, measured Ir, change, verdict), then one
    /// line per problem and a closing verdict line.
    pub fn table(&self) -> String {
        let head = ["benchmark", "baseline Ir", "measured Ir", "change", "verdict"];
        let cells: Vec<[String; 5]> = self
            .rows
            .iter()
            .map(|r| {
                [
                    r.id.clone(),
                    r.baseline.map_or_else(|| "-".into(), grouped),
                    r.measured.map_or_else(|| "-".into(), grouped),
                    r.change_pct.map_or_else(|| "-".into(), |c| format!("{c:+.3}%")),
                    r.verdict.label().to_string(),
                ]
            })
            .collect();
        let width = |i: usize| cells.iter().map(|c| c[i].len()).chain([head[i].len()]).max().unwrap_or(0);
        let w = [width(0), width(1), width(2), width(3)];
        let mut out = String::new();
        let line = |out: &mut String, c: [&str; 5]| {
            let _ = writeln!(
                out,
                "{:<w0$}  {:>w1$}  {:>w2$}  {:>w3$}  {}",
                c[0],
                c[1],
                c[2],
                c[3],
                c[4],
                w0 = w[0],
                w1 = w[1],
                w2 = w[2],
                w3 = w[3]
            );
        };
        line(&mut out, head);
        let rule = w.iter().map(|&n| "-".repeat(n)).chain(["-".repeat(7)]).collect::<Vec<_>>();
        line(&mut out, [&rule[0], &rule[1], &rule[2], &rule[3], &rule[4]]);
        for c in &cells {
            line(&mut out, [&c[0], &c[1], &c[2], &c[3], &c[4]]);
        }
        for r in &self.rows {
            match r.verdict {
                Verdict::Regressed => {
                    let _ = writeln!(
                        out,
                        "regression: {} costs {:+.3}% instructions (limit +{}%)",
                        r.id,
                        r.change_pct.unwrap_or(0.0),
                        self.tolerance_pct
                    );
                }
                Verdict::NotMeasured => {
                    let _ = writeln!(
                        out,
                        "missing: {} is in the baseline but was not measured (bench renamed or removed? if so, \
                         update the baseline: scripts/gate.sh --update)",
                        r.id
                    );
                }
                Verdict::NotInBaseline => {
                    let _ = writeln!(
                        out,
                        "missing: {} was measured but has no baseline (a new bench? add it: scripts/gate.sh --update)",
                        r.id
                    );
                }
                Verdict::Faster => {
                    let _ = writeln!(
                        out,
                        "faster: {} costs {:+.3}% instructions: consider updating the baseline (scripts/gate.sh \
                         --update) so the gain is kept",
                        r.id,
                        r.change_pct.unwrap_or(0.0)
                    );
                }
                Verdict::Ok => {}
            }
        }
        let failed = self.failures().len();
        if failed == 0 {
            let _ = writeln!(out, "gate: PASSED ({} benchmarks, tolerance {}%)", self.rows.len(), self.tolerance_pct);
        } else {
            let _ = writeln!(
                out,
                "gate: FAILED ({failed} of {} benchmarks, tolerance {}%)",
                self.rows.len(),
                self.tolerance_pct
            );
        }
        out
    }
}

/// Where the current measurement's provenance differs from the baseline's, one line each
/// (instruction counts move with the compiler, valgrind and gungraun; the CPU model only
/// matters through code that picks instructions at run time).
pub fn meta_differences(baseline: &Meta, now: &Meta) -> Vec<String> {
    [
        ("gungraun", &baseline.gungraun, &now.gungraun),
        ("valgrind", &baseline.valgrind, &now.valgrind),
        ("rustc", &baseline.rustc, &now.rustc),
        ("cpu", &baseline.cpu, &now.cpu),
    ]
    .into_iter()
    .filter(|(_, b, n)| b != n)
    .map(|(what, b, n)| format!("{what}: baseline measured with `{b}`, this run with `{n}`"))
    .collect()
}

fn first_line_of(cmd: &str, args: &[&str]) -> String {
    crate::command_output(cmd, args)
        .and_then(|o| o.lines().next().map(|l| l.trim().to_string()))
        .unwrap_or_else(|| "unknown".into())
}

/// `YYYY-MM-DD` of `days` since 1970-01-01 (proleptic Gregorian calendar).
pub fn date_of_days(days: i64) -> String {
    let (y, m, d, ..) = crate::utc(days.max(0) as u64 * 86_400);
    format!("{y:04}-{m:02}-{d:02}")
}

impl Meta {
    /// This machine's and toolchain's provenance now, with `reason`. `GUNGRAUN_RUNNER` and
    /// `RUSTC` name the runner and compiler when set, as for cargo and gungraun.
    pub fn collect(reason: &str) -> Meta {
        let runner = std::env::var("GUNGRAUN_RUNNER").unwrap_or_else(|_| "gungraun-runner".into());
        let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
        let gungraun = first_line_of(&runner, &["--version"]);
        let days = (crate::now_secs() / 86_400) as i64;
        let prov = crate::Provenance::collect();
        Meta {
            gungraun: gungraun.strip_prefix("gungraun-runner ").map_or(gungraun.clone(), str::to_string),
            valgrind: first_line_of("valgrind", &["--version"]),
            rustc: first_line_of(&rustc, &["--version"]),
            cpu: prov.cpu,
            date: date_of_days(days),
            git_sha: prov.git_sha,
            reason: reason.to_string(),
        }
    }
}

/// How `gate_check` was asked to update: `None` to compare; `Some(reason)` to rewrite the
/// baseline. `--update` takes no value when it is the last argument, else the next argument is
/// the reason (which must not start with `--`).
pub fn update_request(args: &[String]) -> Result<Option<String>, String> {
    let Some(i) = args.iter().position(|a| a == "--update") else {
        return Ok(None);
    };
    match args.get(i + 1) {
        None => Ok(Some(String::new())),
        Some(r) if !r.starts_with("--") => Ok(Some(r.clone())),
        Some(_) => Err("--update goes last, or is followed by the reason for the update: --update 'why'".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs.iter().map(|&(k, v)| (k.to_string(), v)).collect()
    }

    /// A summary.json as gungraun 0.20 writes it (trimmed to what the gate reads and a little
    /// around it).
    fn summary_json(module_path: &str, id: &str, ir: u64) -> String {
        serde_json::json!({
            "baselines": [null, null],
            "function_name": module_path.rsplit("::").next(),
            "group": "hot_paths",
            "id": id,
            "kind": "LibraryBenchmark",
            "module_path": module_path,
            "profiles": [{
                "data": {
                    "parts": [{
                        "metrics": {"Ir": {"values": {"new": ir}}},
                        "tool_run": {"new": {"command": "x", "part": 1, "pid": 1, "thread": 1}}
                    }],
                    "total": {"metrics": {"Ir": {"values": {"new": ir}}}, "regressions": []}
                },
                "tool": "Callgrind"
            }],
            "version": "7"
        })
        .to_string()
    }

    /// Writes one summary per bench as gungraun lays them out; returns the directory.
    fn write_summaries(measured: &BTreeMap<String, u64>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        for (full, &ir) in measured {
            let (module, id) = full.rsplit_once('.').expect("MODULE.ID");
            let func = module.rsplit("::").next().expect("function");
            let d = dir.path().join("fastrec-bench/gate/hot_paths").join(format!("{func}.{id}"));
            std::fs::create_dir_all(&d).expect("mkdir");
            std::fs::write(d.join("summary.json"), summary_json(module, id, ir)).expect("write");
        }
        dir
    }

    fn committed() -> Baseline {
        serde_json::from_str(include_str!("../gate/baseline.json")).expect("bench/gate/baseline.json parses")
    }

    #[test]
    fn identical_counts_pass() {
        let base = committed().benches;
        let dir = write_summaries(&base);
        let measured = read_summaries(dir.path()).expect("read");
        assert_eq!(measured, base);
        let c = compare(&base, &measured, DEFAULT_TOLERANCE_PCT);
        assert!(c.passed(), "{}", c.table());
        assert!(c.rows.iter().all(|r| r.verdict == Verdict::Ok && r.change_pct == Some(0.0)));
        assert!(c.table().contains("gate: PASSED"));
    }

    #[test]
    fn two_percent_more_passes() {
        let base = committed().benches;
        let measured: BTreeMap<String, u64> = base.iter().map(|(k, &v)| (k.clone(), v * 102 / 100)).collect();
        let c = compare(&base, &measured, DEFAULT_TOLERANCE_PCT);
        assert!(c.passed(), "{}", c.table());
    }

    #[test]
    fn ten_percent_regression_fails_and_is_named() {
        let base = committed().benches;
        assert!(base.len() >= 3, "the committed baseline has the three hot paths");
        for victim in base.keys() {
            let mut measured = base.clone();
            let v = measured.get_mut(victim).expect("victim");
            *v = (*v as f64 * 1.10).round() as u64;
            // Through the files, as the gate reads them.
            let dir = write_summaries(&measured);
            let measured = read_summaries(dir.path()).expect("read");
            let c = compare(&base, &measured, DEFAULT_TOLERANCE_PCT);
            assert!(!c.passed(), "{}", c.table());
            let failed: Vec<&str> = c.failures().iter().map(|r| r.id.as_str()).collect();
            assert_eq!(failed, [victim.as_str()]);
            let table = c.table();
            let row = table.lines().find(|l| l.starts_with(victim.as_str())).expect("row of the victim");
            assert!(row.contains("REGRESSION") && row.contains("+10.000%"), "{table}");
            assert!(table.contains(&format!("regression: {victim}")), "{table}");
            assert!(table.contains("gate: FAILED (1 of"), "{table}");
        }
    }

    #[test]
    fn missing_bench_fails_either_way() {
        let base = ids(&[("g::a.x", 100), ("g::b.y", 200)]);
        let c = compare(&base, &ids(&[("g::a.x", 100)]), 3.0);
        assert!(!c.passed());
        assert_eq!(c.failures()[0].verdict, Verdict::NotMeasured);
        assert!(c.table().contains("missing: g::b.y is in the baseline but was not measured"), "{}", c.table());

        let c = compare(&base, &ids(&[("g::a.x", 100), ("g::b.y", 200), ("g::c.z", 5)]), 3.0);
        assert!(!c.passed());
        assert_eq!(c.failures()[0].verdict, Verdict::NotInBaseline);
        assert!(c.table().contains("missing: g::c.z was measured but has no baseline"), "{}", c.table());
    }

    #[test]
    fn faster_beyond_tolerance_passes_flagged() {
        let base = ids(&[("g::a.x", 1000)]);
        let c = compare(&base, &ids(&[("g::a.x", 900)]), 3.0);
        assert!(c.passed());
        assert_eq!(c.rows[0].verdict, Verdict::Faster);
        assert!(c.table().contains("consider updating the baseline"));
    }

    #[test]
    fn tolerance_is_inclusive_and_configurable() {
        let base = ids(&[("g::a.x", 1000)]);
        assert!(compare(&base, &ids(&[("g::a.x", 1030)]), 3.0).passed());
        assert!(!compare(&base, &ids(&[("g::a.x", 1031)]), 3.0).passed());
        assert!(compare(&base, &ids(&[("g::a.x", 1031)]), 5.0).passed());
        assert!(!compare(&base, &ids(&[("g::a.x", 1001)]), 0.0).passed());
        assert!(!compare(&ids(&[("g::a.x", 0)]), &ids(&[("g::a.x", 1)]), 3.0).passed());
    }

    #[test]
    fn summary_parses_and_errors_are_named() {
        let (id, ir) = parse_summary(&summary_json("gate::hot_paths::scan", "small", 1234)).expect("parse");
        assert_eq!((id.as_str(), ir), ("gate::hot_paths::scan.small", 1234));
        let err = parse_summary(r#"{"module_path": "m", "profiles": []}"#).expect_err("no callgrind");
        assert!(err.contains("no Callgrind profile"), "{err}");
        let empty = tempfile::tempdir().expect("tempdir");
        let err = read_summaries(empty.path()).expect_err("empty");
        assert!(err.contains("GUNGRAUN_SAVE_SUMMARY"), "{err}");
    }

    #[test]
    fn baseline_round_trips() {
        let b = committed();
        assert_eq!(b.schema, SCHEMA);
        assert_eq!(b.meta.gungraun, GUNGRAUN_VERSION);
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("sub/baseline.json");
        b.write(&p).expect("write");
        assert_eq!(Baseline::read(&p).expect("read"), b);
    }

    #[test]
    fn meta_differences_name_the_tool() {
        let a = committed().meta;
        assert!(meta_differences(&a, &a).is_empty());
        let b = Meta { rustc: "rustc 9.99.0".into(), ..a.clone() };
        let d = meta_differences(&a, &b);
        assert_eq!(d.len(), 1);
        assert!(d[0].starts_with("rustc:"));
    }

    #[test]
    fn dates_and_grouping() {
        assert_eq!(date_of_days(0), "1970-01-01");
        assert_eq!(date_of_days(11_016), "2000-02-29");
        assert_eq!(date_of_days(20_000), "2024-10-04");
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_000), "1,000");
        assert_eq!(grouped(1_498_991), "1,498,991");
    }

    #[test]
    fn update_flag() {
        let a = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(update_request(&a(&["--baseline", "b"])), Ok(None));
        assert_eq!(update_request(&a(&["--baseline", "b", "--update"])), Ok(Some(String::new())));
        assert_eq!(update_request(&a(&["--update", "zstd bump", "--baseline", "b"])), Ok(Some("zstd bump".into())));
        assert!(update_request(&a(&["--update", "--baseline", "b"])).is_err());
    }
}
