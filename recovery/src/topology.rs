//! CPU and NUMA topology (read from sysfs, no libnuma) and the plan that pins recovery workers.

use std::path::Path;

use crate::error::{Error, Result};

/// How workers are placed on CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PinMode {
    /// Workers are not pinned; the scheduler places them.
    None,
    /// Worker `i` is pinned to the `i`-th usable CPU, in ascending CPU order.
    Cores,
    /// Workers are spread evenly over NUMA nodes, then pinned to CPUs within their node.
    /// Default (on a single-node machine it places workers exactly like `Cores`).
    #[default]
    Numa,
}

impl std::str::FromStr for PinMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "none" => Ok(PinMode::None),
            "cores" => Ok(PinMode::Cores),
            "numa" => Ok(PinMode::Numa),
            _ => Err(Error::Config(format!("unknown pin mode `{s}` (expected none, cores or numa)"))),
        }
    }
}

/// One NUMA node and its CPUs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Node {
    /// Node id (the N of /sys/devices/system/node/nodeN).
    pub id: usize,
    /// CPUs of the node that this process may run on.
    pub cpus: Vec<usize>,
}

/// The machine as recovery sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Topology {
    /// NUMA nodes with at least one usable CPU, by id. A machine without NUMA information is
    /// one node 0.
    pub nodes: Vec<Node>,
}

/// Parses a sysfs CPU list such as `0-3,8,10-11`.
pub fn parse_cpu_list(s: &str) -> Option<Vec<usize>> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
                if b < a || b - a > 1 << 16 {
                    return None;
                }
                out.extend(a..=b);
            }
            None => out.push(part.trim().parse().ok()?),
        }
    }
    Some(out)
}

impl Topology {
    /// Reads the topology from sysfs, restricted to the CPUs this process may use.
    pub fn detect() -> Topology {
        let usable: Vec<usize> = core_affinity::get_core_ids().unwrap_or_default().into_iter().map(|c| c.id).collect();
        Topology::from_sysfs(Path::new("/sys/devices/system/node"), &usable)
    }

    /// Reads node CPU lists under `root` (a /sys/devices/system/node directory), keeping only
    /// `usable` CPUs. Falls back to one node holding every usable CPU.
    pub fn from_sysfs(root: &Path, usable: &[usize]) -> Topology {
        let mut nodes = Vec::new();
        if let Ok(entries) = std::fs::read_dir(root) {
            for e in entries.flatten() {
                let name = e.file_name();
                let Some(id) = name.to_str().and_then(|n| n.strip_prefix("node")).and_then(|n| n.parse::<usize>().ok())
                else {
                    continue;
                };
                let Some(cpus) =
                    std::fs::read_to_string(e.path().join("cpulist")).ok().and_then(|s| parse_cpu_list(&s))
                else {
                    continue;
                };
                let cpus: Vec<usize> = cpus.into_iter().filter(|c| usable.is_empty() || usable.contains(c)).collect();
                if !cpus.is_empty() {
                    nodes.push(Node { id, cpus });
                }
            }
        }
        nodes.sort_by_key(|n| n.id);
        if nodes.is_empty() {
            let cpus = if usable.is_empty() {
                (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect()
            } else {
                usable.to_vec()
            };
            nodes.push(Node { id: 0, cpus });
        }
        Topology { nodes }
    }

    /// Usable CPUs in all nodes.
    pub fn cpu_count(&self) -> usize {
        self.nodes.iter().map(|n| n.cpus.len()).sum()
    }
}

/// Where one worker runs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WorkerPlacement {
    /// Worker index (also its partition: blocks whose hash maps to it).
    pub worker: usize,
    /// CPU it is pinned to, if pinned.
    pub cpu: Option<usize>,
    /// NUMA node of that CPU, if pinned.
    pub node: Option<usize>,
}

/// The pinning plan recovery reports.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PinPlan {
    /// Mode used.
    pub mode: PinMode,
    /// NUMA nodes on the machine (with usable CPUs).
    pub nodes_available: Vec<usize>,
    /// One entry per worker.
    pub workers: Vec<WorkerPlacement>,
    /// A sentence for the report, e.g. that the machine has one node.
    pub note: String,
}

/// Builds the plan for `workers` workers. `only_nodes` restricts placement to those node ids;
/// asking for a node the machine does not have is an error.
pub fn plan(topology: &Topology, workers: usize, mode: PinMode, only_nodes: Option<&[usize]>) -> Result<PinPlan> {
    let available: Vec<usize> = topology.nodes.iter().map(|n| n.id).collect();
    let nodes: Vec<&Node> = match only_nodes {
        Some([]) => return Err(Error::Config("no NUMA node selected".into())),
        Some(ids) => {
            let mut v = Vec::new();
            for id in ids {
                match topology.nodes.iter().find(|n| n.id == *id) {
                    Some(n) => v.push(n),
                    None => {
                        return Err(Error::Config(format!(
                            "NUMA node {id} does not exist here (nodes with usable CPUs: {available:?})"
                        )))
                    }
                }
            }
            v
        }
        None => topology.nodes.iter().collect(),
    };
    let note = if available.len() == 1 {
        "one NUMA node: placement by node is the same as by core".to_string()
    } else {
        format!("{} NUMA nodes", available.len())
    };
    let placements = match mode {
        PinMode::None => (0..workers).map(|w| WorkerPlacement { worker: w, cpu: None, node: None }).collect(),
        PinMode::Cores => {
            let mut cpus: Vec<(usize, usize)> =
                nodes.iter().flat_map(|n| n.cpus.iter().map(move |&c| (c, n.id))).collect();
            cpus.sort_unstable();
            (0..workers)
                .map(|w| {
                    let (c, n) = cpus[w % cpus.len()];
                    WorkerPlacement { worker: w, cpu: Some(c), node: Some(n) }
                })
                .collect()
        }
        PinMode::Numa => (0..workers)
            .map(|w| {
                let n = nodes[w % nodes.len()];
                let c = n.cpus[(w / nodes.len()) % n.cpus.len()];
                WorkerPlacement { worker: w, cpu: Some(c), node: Some(n.id) }
            })
            .collect(),
    };
    Ok(PinPlan { mode, nodes_available: available, workers: placements, note })
}

/// Makes memory the calling thread allocates (heap pages and page-cache pages its faults
/// create) come from NUMA node `node` when possible (`set_mempolicy(MPOL_PREFERRED)`).
/// Returns whether the kernel accepted it; refusal is harmless.
pub fn prefer_node(node: usize) -> bool {
    const MPOL_PREFERRED: libc::c_int = 1;
    const WORD_BITS: usize = 64;
    if node >= 1024 {
        return false;
    }
    let mut mask = vec![0u64; node / WORD_BITS + 1];
    mask[node / WORD_BITS] |= 1 << (node % WORD_BITS);
    let maxnode = (mask.len() * WORD_BITS + 1) as libc::c_ulong;
    // SAFETY: set_mempolicy reads `maxnode - 1` bits from `mask`, which holds exactly
    // `mask.len() * 64` bits and outlives the call; it changes only this thread's policy.
    let rc = unsafe { libc::syscall(libc::SYS_set_mempolicy, MPOL_PREFERRED, mask.as_ptr(), maxnode) };
    rc == 0
}

/// Pins the calling thread to `cpu`; returns whether the kernel accepted it.
pub fn pin_current(cpu: usize) -> bool {
    core_affinity::set_for_current(core_affinity::CoreId { id: cpu })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse() {
        assert_eq!(parse_cpu_list("0-3,8,10-11\n"), Some(vec![0, 1, 2, 3, 8, 10, 11]));
        assert_eq!(parse_cpu_list(""), Some(vec![]));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("x"), None);
    }

    fn two_nodes() -> Topology {
        Topology { nodes: vec![Node { id: 0, cpus: vec![0, 1, 2, 3] }, Node { id: 1, cpus: vec![4, 5, 6, 7] }] }
    }

    #[test]
    fn numa_plan_spreads_over_nodes_and_cores_plan_fills_in_order() {
        let p = plan(&two_nodes(), 4, PinMode::Numa, None).expect("plan");
        let cpus: Vec<_> = p.workers.iter().map(|w| (w.cpu, w.node)).collect();
        assert_eq!(cpus, vec![(Some(0), Some(0)), (Some(4), Some(1)), (Some(1), Some(0)), (Some(5), Some(1))]);
        let p = plan(&two_nodes(), 3, PinMode::Cores, None).expect("plan");
        assert_eq!(p.workers.iter().map(|w| w.cpu).collect::<Vec<_>>(), vec![Some(0), Some(1), Some(2)]);
        let p = plan(&two_nodes(), 2, PinMode::None, None).expect("plan");
        assert!(p.workers.iter().all(|w| w.cpu.is_none()));
    }

    #[test]
    fn restricting_to_a_missing_node_is_an_error() {
        let err = plan(&two_nodes(), 2, PinMode::Numa, Some(&[3])).expect_err("node 3");
        assert!(matches!(err, Error::Config(m) if m.contains("NUMA node 3")));
        let p = plan(&two_nodes(), 2, PinMode::Numa, Some(&[1])).expect("node 1");
        assert!(p.workers.iter().all(|w| w.node == Some(1)));
    }

    #[test]
    fn sysfs_fallback_is_one_node() {
        let t = Topology::from_sysfs(Path::new("/nonexistent"), &[0, 1]);
        assert_eq!(t.nodes, vec![Node { id: 0, cpus: vec![0, 1] }]);
        let here = Topology::detect();
        assert!(here.cpu_count() >= 1);
    }
}
