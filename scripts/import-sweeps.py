#!/usr/bin/env python3
"""Converts the NDJSON of scripts/scaling-sweep.sh and scripts/io-sweep.sh, measured on one
machine at one commit, into a lab run directory (env.json + raw.ndjson, docs/LAB.md schema 1),
so the report and the claims table can use measurements from a machine the lab itself has not
run on. Nothing is re-measured or re-computed beyond renaming fields and the same-run ratio
`vs_read`; the run's mode is `imported` and its notes name the source files.

usage: scripts/import-sweeps.py --scaling FILE --io FILE --out results/runs/<id>
then:  fastrec lab --render
"""

import argparse
import json
import os
import sys


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def metric(value, unit):
    return {"value": value, "unit": unit}


def base_record(experiment, label, seed, params):
    return {
        "schema": 1,
        "experiment": experiment,
        "label": label,
        "params": params,
        "seed": seed,
        "cache": {"state": "warm", "resident_min": None, "resident_max": None},
        "samples_ms": [],
        "metrics": {},
        "ceilings": {},
    }


def scaling_records(rows, memcpy_1t):
    out = []
    # The lab's scaling experiment uses the rayon executor; the sweep's 1-worker row (serial,
    # executor irrelevant) is the baseline of both.
    keep = [r for r in rows if r.get("experiment") == "scaling" and (r["executor"] == "rayon" or r["workers"] == 1)]
    for r in sorted(keep, key=lambda r: (r["preset"], r["workers"])):
        deps = r.get("dependencies") or {}
        phases = r.get("phase_ms_median") or {}
        rec = base_record(
            "scaling",
            f"{r['preset']} w={r['workers']}",
            r["seed"],
            {
                "preset": r["preset"],
                "workers": r["workers"],
                "executor": "rayon" if r["workers"] > 1 else "serial",
                "txns": None,
                "journal_bytes": r["journal_bytes"],
            },
        )
        rec["cache"]["state"] = r.get("cache", "warm")
        rec["metrics"] = {
            "time_ms": metric(r["seconds_median"] * 1e3, "ms"),
            "throughput_mb_s": metric(r["bytes_per_s"] / 1e6, "MB/s"),
            "speedup": metric(r["speedup_vs_1_worker"], "x"),
            "efficiency": metric(r["efficiency"], "fraction"),
            "bound": metric(deps.get("bound_workers", 1.0) if r["workers"] > 1 else 1.0, "x"),
            "scan_ms": metric(phases.get("scan", 0.0), "ms"),
            "replay_ms": metric(phases.get("redo+undo", phases.get("redo", 0.0) + phases.get("undo", 0.0)), "ms"),
        }
        if memcpy_1t:
            rec["ceilings"]["memcpy_1t_gb_s"] = metric(memcpy_1t / 1e9, "GB/s")
        out.append(rec)
    return out


def io_records(rows):
    prov = next(r for r in rows if r.get("experiment") == "io-provenance")
    ceil = prov["ceilings"]
    cells = [r for r in rows if r.get("experiment") == "io"]
    best = {}
    for r in cells:
        if r["backend"].split("-")[0] in ("read", "pread"):
            key = (r["record"], r["cache"], r["consumer"])
            best[key] = min(best.get(key, float("inf")), r["seconds_median"])
    out = []
    for r in cells:
        config = r["backend"]
        backend = config.split("-")[0]
        rec = base_record(
            "io",
            f"{config} {r['consumer']} {r['cache']} {r['record']}",
            prov.get("params", {}).get("seed", 1),
            {
                "backend": backend,
                "config": config,
                "buffer_bytes": r.get("buffer_bytes") if backend not in ("mmap", "auto") else None,
                "consumer": r["consumer"],
                "record": r["record"],
                "journal_bytes": r["journal_bytes"],
                "resolved": r.get("resolved_backend"),
            },
        )
        rec["cache"] = {"state": r["cache"], "resident_min": r.get("residency_min"), "resident_max": r.get("residency_max")}
        rec["samples_ms"] = [round(s * 1e3, 3) for s in r.get("seconds", [])]
        m = r["seconds_median"]
        rec["metrics"] = {
            "time_ms": metric(m * 1e3, "ms"),
            "throughput_mb_s": metric(r["journal_bytes"] / m / 1e6, "MB/s"),
            "vs_read": metric(best[(r["record"], r["cache"], r["consumer"])] / m, "x"),
        }
        rec["ceilings"]["memcpy_1t_gb_s"] = metric(ceil["memcpy_1t_bytes_per_s"] / 1e9, "GB/s")
        seq = ceil.get("seqread", {}).get(r["record"], {}).get(r["cache"])
        if seq:
            rec["ceilings"]["seq_read_gb_s"] = metric(seq["bytes_per_s"] / 1e9, "GB/s")
        out.append(rec)
    return out, prov


def fs_of(iprov):
    fs = iprov.get("params", {}).get("file_system")
    if not fs:
        return "unknown"
    return f"{fs['type']} ({fs['source']} on {fs['mount']})"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scaling", required=True)
    ap.add_argument("--io", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--date", required=True, help="UTC date the sweeps ran, YYYY-MM-DD")
    a = ap.parse_args()
    srows = load(a.scaling)
    sprov = next(r for r in srows if r.get("experiment") == "scaling-provenance")
    irecs, iprov = io_records(load(a.io))
    p = sprov["provenance"]
    ip = iprov.get("provenance", p)
    if (ip.get("git_sha"), ip.get("cpus")) != (p["git_sha"], p["cpus"]):
        sys.exit(f"the two sweeps come from different commits or machines: {ip} vs {p}")
    records = scaling_records(srows, sprov.get("memcpy_single_thread_bytes_per_s")) + irecs
    env = {
        "schema": 1,
        "run": os.path.basename(a.out.rstrip("/")),
        "mode": "imported",
        "experiments": ["scaling", "io"],
        "started": f"{a.date}T00:00:00Z",
        "duration_s": 0.0,
        "host": p["host"],
        "cpu_model": p["cpu"],
        "cpus": p["cpus"],
        "numa_nodes": p["numa_nodes"],
        "memory_bytes": 0,
        "kernel": p["kernel"],
        "rustc": "unknown",
        "git_sha": p["git_sha"],
        "git_dirty": p["git_dirty"],
        "work_dir": iprov.get("params", {}).get("tmp", "unknown"),
        "work_fs": fs_of(iprov),
        "notes": [
            f"imported by scripts/import-sweeps.py from {a.scaling} and {a.io} (scaling_sweep and io_sweep "
            f"at commit {p['git_sha'][:7]}); not a `fastrec lab` run: scaling and io only, the start time is "
            "the date alone, memory size and rustc were not recorded",
            "scaling: rayon rows and the 1-worker baseline; the sweep's pinned rows are in the source file",
        ],
    }
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "env.json"), "w") as f:
        f.write(json.dumps(env, indent=2) + "\n")
    with open(os.path.join(a.out, "raw.ndjson"), "w") as f:
        for r in records:
            f.write(json.dumps(r, separators=(",", ":")) + "\n")
    print(f"{len(records)} records -> {a.out}")


if __name__ == "__main__":
    main()
