#!/usr/bin/env python3
"""Renders the journal I/O sweep (scripts/io-sweep.sh, NDJSON) as Markdown.

usage: scripts/io-table.py [--out results/IO.md] [FILE.ndjson ...]
  FILES  default: every results/io/*.ndjson
  --out  default: results/IO.md ("-" for stdout)

Every number in the output, the verdict on the "mmap gives 3-5x faster journal access" claim
included, is computed from the NDJSON files named; nothing is typed in by hand.
"""
import glob
import json
import os
import sys

CLAIM_LO, CLAIM_HI = 3.0, 5.0
# auto should be within this share of the best configuration of its row.
AUTO_SLACK = 0.05
# A cold run whose journal was more resident than this was not cold.
COLD_MAX_RESIDENCY = 0.05
FAMILIES = ["read", "pread", "direct"]


def fmt_mbs(x):
    return f"{x:,.0f}"


def fmt_ratio(x):
    return f"{x:.2f}x"


def family_of(label):
    head, _, buf = label.partition("-")
    return (head, buf) if head in FAMILIES and buf else (None, None)


def res_range(lo, hi):
    return f"{lo:.3f}" if abs(hi - lo) < 5e-4 else f"{lo:.3f}-{hi:.3f}"


def workers_of(cells, params):
    seen = sorted({x["workers"] for x in cells if x.get("workers")})
    how = "as asked (--workers)" if params.get("workers") else "the engine's default"
    return f"{'/'.join(map(str, seen)) or '?'} worker(s), {how}"


def load(path):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    prov = next((r for r in rows if r.get("experiment") == "io-provenance"), None)
    cells = [r for r in rows if r.get("experiment") == "io"]
    timing = next((r for r in rows if r.get("experiment") == "io-sweep-time"), None)
    return prov, cells, timing


def section(path, out):
    prov, cells, timing = load(path)
    if prov is None:
        out.append(f"## `{path}`\n\nNo provenance line: not an io_sweep output; skipped.\n")
        return
    p = prov["provenance"]
    c = prov["ceilings"]
    params = prov["params"]
    out.append(f"## `{os.path.basename(path)}`\n")
    out.append(f"- machine: {p['cpu']}, {p['cpus']} CPUs, {p['numa_nodes']} NUMA node(s), kernel {p['kernel']}, "
               f"host `{p['host']}`")
    out.append(f"- git {p['git_sha'][:12]} (dirty: {str(p['git_dirty']).lower()}); {params['reps']} timed runs per "
               f"configuration, medians; seed {params['seed']}; the scan consumer runs on one thread, recovery on "
               f"{workers_of(cells, params)}")
    fs = params.get("file_system") or {}
    out.append(f"- journals generated under `{params['tmp']}` ({fs.get('type', '?')} on {fs.get('source', '?')})")
    if fs.get("type") in ("tmpfs", "ramfs"):
        out.append(f"- **warning: {fs['type']} has no device: the cold and direct figures below do not measure a disk**")
    out.append(f"- same-run ceilings: single-thread memcpy {c['memcpy_1t_bytes_per_s'] / 1e9:.2f} GB/s; "
               f"{c['memcpy_all_threads']}-thread memcpy {c['memcpy_all_threads_bytes_per_s'] / 1e9:.2f} GB/s "
               f"(both over {c['memcpy_bytes'] / 2**20:.0f} MiB)")
    for rec, j in prov["journals"].items():
        sr = c["seqread"].get(rec, {})
        w, cd = sr.get("warm"), sr.get("cold")
        seq = ""
        if w and cd:
            seq = (f"; sequential read(2), 1 MiB buffer: warm {fmt_mbs(w['bytes_per_s'] / 1e6)} MB/s, "
                   f"cold {fmt_mbs(cd['bytes_per_s'] / 1e6)} MB/s (residency after eviction "
                   f"{res_range(cd['residency_min'], cd['residency_max'])})")
        out.append(f"- `{rec}`: {j['journal_bytes'] / 2**20:.0f} MiB journal in {j['segments']} segment(s), "
                   f"{j['records']:,} records, {j['block_size'] // 1024} KiB blocks, full-block share "
                   f"{j['full_block_fraction']:g}; generated in {j['gen_secs']:.1f} s{seq}")
    if timing:
        out.append(f"- sweep took {timing['wall_secs'] / 60:.1f} min ({timing['runs']} timed runs; generation "
                   f"{timing['generation_secs']:.0f} s, oracle checks {timing['verify_secs']:.0f} s)")
    out.append("")

    labels = params["backends"]
    records = [r for r in params["records"] if any(x["record"] == r for x in cells)]
    by = {(x["record"], x["consumer"], x["cache"], x["backend"]): x for x in cells}
    seqread = c["seqread"]

    def ceiling(rec, cache, bytes_per_s):
        sr = seqread.get(rec, {})
        if cache == "warm":
            return {"memcpy 1t": bytes_per_s / c["memcpy_1t_bytes_per_s"],
                    "seqread warm": bytes_per_s / sr["warm"]["bytes_per_s"]} if sr else {}
        return {"seqread cold": bytes_per_s / sr["cold"]["bytes_per_s"]} if sr else {}

    def scan_phase(x):
        ms = x.get("scan_phase_ms_median")
        return x["journal_bytes"] / (ms / 1e3) / 1e6 if ms else None

    def scan_phase_samples(x):
        return [x["journal_bytes"] / (ms / 1e3) / 1e6 for ms in x.get("scan_phase_ms", []) if ms]

    whole = (lambda x: x["mb_per_s"], lambda x: x.get("mb_per_s_samples", []))
    views = [
        ("scan", "scan", "scan: open, decode and checksum every record", whole),
        ("recover", "recover", "recover: full recovery (image restore untimed)", whole),
        ("recover scan phase", "recover",
         "recover, scan phase only: journal bytes / recovery's own scan-phase time (same runs as above)",
         (scan_phase, scan_phase_samples)),
    ]
    claim = []  # (view, record, cache, family, buffer, mmap/x)
    others = []  # mmap / every non-mmap configuration
    auto_bad = []
    cold_warm = []
    same = []  # auto / mmap where auto resolved to mmap: the same options twice, an A/A test
    for view, consumer, title, (value, samples_of) in views:
        if consumer not in params["consumers"]:
            continue
        rows = [(r, k) for r in records for k in params["caches"]
                if any((r, consumer, k, lab) in by for lab in labels)]
        if not rows:
            continue
        fams = [f for f in FAMILIES if any(family_of(lab)[0] == f for lab in labels)]
        have_mmap = "mmap" in labels
        own_rows = view == consumer
        head = ["record", "cache"] + [f"{lab} MB/s" for lab in labels]
        if have_mmap:
            head += [f"mmap / {f} (best buf / worst buf)" for f in fams]
            head += ["mmap / ceiling"]
        if own_rows:
            head += ["journal residency before runs"]
            if consumer == "recover":
                head += ["residency recovery saw after opening"]
        if "auto" in labels:
            head += ["auto / best", "auto ok"]
        out.append(f"### {title}\n")
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "|".join("---" if h in ("record", "cache") else "---:" for h in head) + "|")
        for rec, cache in rows:
            row = [f"`{rec}`", cache]
            mbs = {}
            for lab in labels:
                x = by.get((rec, consumer, cache, lab))
                v = value(x) if x else None
                if v:
                    mbs[lab] = v
            if not mbs:
                continue
            best = max(mbs.values())
            for lab in labels:
                v = mbs.get(lab)
                row.append("-" if v is None else (f"**{fmt_mbs(v)}**" if v == best else fmt_mbs(v)))
            if have_mmap and "mmap" in mbs:
                m = mbs["mmap"]
                for f in fams:
                    per_buf = [(m / v, lab.partition("-")[2]) for lab, v in mbs.items() if family_of(lab)[0] == f]
                    if not per_buf:
                        row.append("-")
                        continue
                    for ratio, buf in per_buf:
                        claim.append((view, rec, cache, f, buf, ratio))
                    lo, hi = min(per_buf), max(per_buf)
                    row.append(f"{fmt_ratio(lo[0])} ({lo[1]}) / {fmt_ratio(hi[0])} ({hi[1]})")
                for lab, v in mbs.items():
                    if not lab.startswith("mmap") and lab != "auto":
                        others.append((m / v, lab, view, rec, cache))
                row.append(", ".join(f"{fmt_ratio(v)} {k}" for k, v in ceiling(rec, cache, m * 1e6).items()) or "-")
            elif have_mmap:
                row += ["-"] * (len(fams) + 1)
            sel = [by[(rec, consumer, cache, lab)] for lab in mbs]
            if own_rows:
                lo = min(x["residency_min"] for x in sel)
                hi = max(x["residency_max"] for x in sel)
                cell = res_range(lo, hi)
                if cache == "cold" and hi > COLD_MAX_RESIDENCY:
                    cell += " **not cold**"
                    cold_warm.append((consumer, rec, hi))
                if cache == "warm" and lo < 1.0:
                    cell += " (not all resident)"
                row.append(cell)
                if consumer == "recover":
                    lo = min(x.get("resident_at_start_min", 0) for x in sel)
                    hi = max(x.get("resident_at_start_max", 0) for x in sel)
                    row.append(res_range(lo, hi))
            if "auto" in labels:
                if "auto" in mbs and len(mbs) > 1:
                    rest = {k: v for k, v in mbs.items() if k != "auto"}
                    best_lab = max(rest, key=rest.get)
                    worst_lab = min(rest, key=rest.get)
                    a = mbs["auto"]
                    ratio = a / rest[best_lab]
                    resolved = by[(rec, consumer, cache, "auto")]["resolved_backend"]
                    if resolved == "mmap" and "mmap" in mbs:
                        same.append(a / mbs["mmap"])
                    problems = []
                    if ratio < 1 - AUTO_SLACK:
                        problems.append(f"{fmt_ratio(ratio)} of {best_lab}")
                    if a <= rest[worst_lab]:
                        problems.append(f"slower than every configuration (slowest other: {worst_lab})")
                    row.append(f"{fmt_ratio(ratio)} (auto = {resolved}, best {best_lab})")
                    verdict_cell = "yes" if not problems else "**no: " + "; ".join(problems) + "**"
                    auto_s = samples_of(by[(rec, consumer, cache, "auto")])
                    best_s = samples_of(by[(rec, consumer, cache, best_lab)])
                    if problems and auto_s and best_s and max(auto_s) >= min(best_s):
                        verdict_cell += " (sample ranges overlap)"
                    row.append(verdict_cell)
                    if problems:
                        auto_bad.append(f"{view} `{rec}` {cache}")
                else:
                    row += ["-", "-"]
            out.append("| " + " | ".join(row) + " |")
        out.append("")
        if own_rows and any("minor_faults_median" in x for x in cells):
            out.append(f"Page faults per timed run of {consumer} (median, minor / major; whole process):\n")
            out.append("| record | cache | " + " | ".join(labels) + " |")
            out.append("|---|---|" + "---:|" * len(labels))
            for rec, cache in rows:
                row = [f"`{rec}`", cache]
                for lab in labels:
                    x = by.get((rec, consumer, cache, lab))
                    row.append(f"{x['minor_faults_median']:,.0f} / {x['major_faults_median']:,.0f}"
                               if x and "minor_faults_median" in x else "-")
                out.append("| " + " | ".join(row) + " |")
            out.append("")

    out.append("Ratios above 1 mean mmap was faster. The best configuration of each row is in bold.\n")
    if cold_warm:
        out.append("- **cold-cache rows where the journal was still resident:** "
                   + "; ".join(f"{c} `{r}` (up to {h:.3f})" for c, r, h in cold_warm))
    if "auto" in labels:
        out.append("- auto within 5% of the best and never the slowest: "
                   + ("yes, in every row" if not auto_bad else "**violated** in " + "; ".join(auto_bad)))
    if same:
        out.append(f"- run-to-run noise: in {len(same)} rows auto resolved to exactly the options of `mmap`, so the two "
                   f"columns measure the same thing twice; auto / mmap ranged {span(same)} there. Differences of "
                   f"that size between any two configurations are noise on this machine.")
    out.append("- " + verdict(claim, others))
    out.append("")


def span(xs):
    return f"{min(xs):.2f}x-{max(xs):.2f}x"


def verdict(claim, others):
    reads = [x for x in claim if x[3] == "read"]
    if not reads:
        return "verdict: no mmap and read measurements in this file, so no verdict on the 3-5x claim."
    ratios = [x[5] for x in reads]
    parts = []
    for cache in ("warm", "cold"):
        sub = [x[5] for x in reads if x[2] == cache]
        if sub:
            parts.append(f"{cache} {span(sub)}")
    inside = [x for x in reads if x[5] >= CLAIM_LO]
    if len(inside) == len(reads):
        within = sum(1 for x in reads if x[5] <= CLAIM_HI)
        holds = (f"the 3-5x claim holds on this machine (all {len(reads)} comparisons at least {CLAIM_LO:g}x, "
                 f"{within} of them within 3-5x)")
    elif inside:
        where = ", ".join(sorted({f"{x[0]} `{x[1]}` {x[2]}" for x in inside}))
        holds = (f"the 3-5x claim holds in only {len(inside)} of {len(reads)} comparisons ({where}) "
                 f"and not in general on this machine")
    else:
        holds = "the 3-5x claim does not hold on this machine"
    s = (f"**verdict:** mmap / read ranges {span(ratios)} ({', '.join(parts)}; over every table above, record "
         f"size and read buffer size); {holds}.")
    if others:
        lo = min(others)
        hi = max(others)
        s += (f" Against every non-mmap configuration mmap ranges {fmt_ratio(lo[0])} (vs {lo[1]}, {lo[2]} "
              f"`{lo[3]}` {lo[4]}) to {fmt_ratio(hi[0])} (vs {hi[1]}, {hi[2]} `{hi[3]}` {hi[4]}).")
    return s


def main(argv):
    out_path = os.path.join("results", "IO.md")
    files = []
    i = 0
    while i < len(argv):
        if argv[i] == "--out":
            out_path = argv[i + 1]
            i += 2
        else:
            files.append(argv[i])
            i += 1
    if not files:
        files = sorted(glob.glob(os.path.join("results", "io", "*.ndjson")))
    out = ["# Journal I/O backends (generated, do not edit)", "",
           "Generated by `scripts/io-table.py` from the NDJSON files named in each section, written by",
           "`scripts/io-sweep.sh`. Throughput is journal bytes per second (MB = 10^6 bytes), median of",
           "the timed runs; within a row the configurations ran interleaved. Ceilings are measured in",
           "the same run. Residency is the share of journal pages in the page cache, measured just",
           "before each timed run (after eviction for cold runs); cold evicts only the journal, so for",
           "recover the just-restored image is resident either way. Regenerate instead of editing.", ""]
    if not files:
        out.append("No results yet: run `scripts/io-sweep.sh`.\n")
    for f in files:
        section(f, out)
    text = "\n".join(out).rstrip() + "\n"
    if out_path == "-":
        sys.stdout.write(text)
    else:
        os.makedirs(os.path.dirname(out_path) or ".", exist_ok=True)
        with open(out_path, "w") as fh:
            fh.write(text)
        print(f"wrote {out_path}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
