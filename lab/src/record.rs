//! What a lab run writes: `env.json` (the machine and checkout) and `raw.ndjson` (one
//! [`Record`] per measurement). docs/LAB.md is the reference.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Version of [`Record`] and [`Env`].
pub const RAW_SCHEMA: u32 = 1;

/// A value with its unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// The value (a median when the record has several samples).
    pub value: f64,
    /// Its unit: `ms`, `MB/s` (10^6 bytes), `GB/s`, `x` (a ratio), `fraction`, `us`, `bytes`,
    /// `count`.
    pub unit: String,
}

impl Metric {
    /// A metric.
    pub fn new(value: f64, unit: &str) -> Metric {
        Metric { value, unit: unit.to_string() }
    }
}

/// Page-cache state of the measured input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cache {
    /// `warm` (read just before) or `cold` (evicted just before with fdatasync and
    /// POSIX_FADV_DONTNEED), or `n/a`.
    pub state: String,
    /// Fraction of the input's pages resident when the measurement started (mincore), lowest
    /// over the samples; `None` when not measured.
    pub resident_min: Option<f64>,
    /// Highest over the samples.
    pub resident_max: Option<f64>,
}

/// One measurement: one configuration of one experiment, measured `samples.len()` times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// [`RAW_SCHEMA`].
    pub schema: u32,
    /// `scaling`, `deps`, `io`, `checkpoint`, `checkpoint-find`, `progress`, `latency` or `bandwidth`.
    pub experiment: String,
    /// Short configuration label, unique within the experiment (e.g. `cpu-bound w=2`).
    pub label: String,
    /// The configuration (strings and numbers; each experiment documents its keys).
    pub params: BTreeMap<String, serde_json::Value>,
    /// Generator seed.
    pub seed: u64,
    /// Cache state of the journal.
    pub cache: Cache,
    /// Wall times of each repetition, milliseconds, in the order taken.
    pub samples_ms: Vec<f64>,
    /// Wall times of the same-run baseline this record's ratios compare against, taken in
    /// turn with `samples_ms` (e.g. recovery without checkpoints), when there is one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub baseline_samples_ms: Vec<f64>,
    /// What was measured.
    pub metrics: BTreeMap<String, Metric>,
    /// Ceilings measured in the same run (memcpy, sequential read), for ratios.
    pub ceilings: BTreeMap<String, Metric>,
}

impl Record {
    /// A record with no metrics yet.
    pub fn new(experiment: &str, label: &str, seed: u64) -> Record {
        Record {
            schema: RAW_SCHEMA,
            experiment: experiment.into(),
            label: label.into(),
            params: BTreeMap::new(),
            seed,
            cache: Cache { state: "n/a".into(), resident_min: None, resident_max: None },
            samples_ms: Vec::new(),
            baseline_samples_ms: Vec::new(),
            metrics: BTreeMap::new(),
            ceilings: BTreeMap::new(),
        }
    }

    /// Sets a parameter.
    pub fn param(mut self, k: &str, v: impl Into<serde_json::Value>) -> Record {
        self.params.insert(k.into(), v.into());
        self
    }

    /// Sets a metric.
    pub fn metric(&mut self, k: &str, value: f64, unit: &str) {
        self.metrics.insert(k.into(), Metric::new(value, unit));
    }

    /// A metric's value, if present.
    pub fn get(&self, k: &str) -> Option<f64> {
        self.metrics.get(k).map(|m| m.value)
    }

    /// A ceiling's value, if present.
    pub fn ceiling(&self, k: &str) -> Option<f64> {
        self.ceilings.get(k).map(|m| m.value)
    }

    /// A string parameter.
    pub fn p_str(&self, k: &str) -> Option<&str> {
        self.params.get(k).and_then(|v| v.as_str())
    }

    /// A numeric parameter.
    pub fn p_num(&self, k: &str) -> Option<f64> {
        self.params.get(k).and_then(|v| v.as_f64())
    }
}

/// The machine and checkout a run came from (`env.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Env {
    /// [`RAW_SCHEMA`].
    pub schema: u32,
    /// Run id: `<date>-<host>-<short sha>`.
    pub run: String,
    /// `quick` or `full`.
    pub mode: String,
    /// Experiments run.
    pub experiments: Vec<String>,
    /// UTC start, RFC 3339.
    pub started: String,
    /// Seconds the run took.
    pub duration_s: f64,
    /// Host name.
    pub host: String,
    /// CPU model.
    pub cpu_model: String,
    /// Logical CPUs available to the process.
    pub cpus: usize,
    /// NUMA nodes.
    pub numa_nodes: usize,
    /// Physical memory, bytes.
    pub memory_bytes: u64,
    /// Kernel release.
    pub kernel: String,
    /// `rustc --version`.
    pub rustc: String,
    /// Full git sha.
    pub git_sha: String,
    /// Uncommitted changes in the checkout.
    pub git_dirty: bool,
    /// Work directory of the generated journals.
    pub work_dir: String,
    /// Its file system (type and device, from /proc/self/mountinfo).
    pub work_fs: String,
    /// Anything the reader should know about the run (e.g. experiments that could not run).
    pub notes: Vec<String>,
}

/// Reads a run's `raw.ndjson`.
pub fn read_raw(text: &str) -> Result<Vec<Record>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| format!("raw.ndjson line {}: {e}", i + 1)))
        .collect()
}
