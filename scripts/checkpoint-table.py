#!/usr/bin/env python3
"""Renders the checkpoint-cadence sweep (scripts/checkpoint-sweep.sh, NDJSON) as Markdown.

usage: scripts/checkpoint-table.py [--out results/CHECKPOINT.md] [FILE.ndjson ...]
  FILES  default: every results/checkpoint/*.ndjson
  --out  default: results/CHECKPOINT.md ("-" for stdout)

Every number in the output, the verdicts on the "checkpoint-based recovery reduces the replayed
scope by 80-95%" claim and on the target at the default cadence included, is computed from the
NDJSON files named; nothing is typed in by hand.
"""
import glob
import json
import os
import sys

# The claim: "checkpoint-based recovery reduces the replayed scope by 80-95%".
CLAIM_LO, CLAIM_HI = 0.80, 0.95
# The target at the default cadence: at least this share of journal bytes not read ...
TARGET_BYTES = 0.90
# ... and recovery in at most this share of the time without checkpoints.
TARGET_TIME = 0.20
PHASE_TEXT = {
    "after": "crash just after a checkpoint",
    "before": "crash just before the next checkpoint",
}
MIB = 2 ** 20
# Above this share of the machine's CPU time taken by others during the sweep, say times are noisy.
OTHERS_NOISY = 0.10


def pct(x):
    return f"{x * 100:.1f}%"


def mib(b):
    return f"{b / MIB:,.1f}"


def ms(secs):
    return f"{secs * 1e3:,.1f}"


def load(path):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    prov = next((r for r in rows if r.get("experiment") == "checkpoint-provenance"), None)
    states = [r for r in rows if r.get("experiment") == "checkpoint-scope"]
    create = [r for r in rows if r.get("experiment") == "checkpoint-create"]
    timing = next((r for r in rows if r.get("experiment") == "checkpoint-sweep-time"), None)
    return prov, states, create, timing


def phase_ms(r, which, name):
    return r["phase_ms_median"][which].get(name)


def fmt_opt_ms(x):
    return "-" if x is None else f"{x:,.1f}"


def metrics(r):
    """The three readings of "replayed scope" the verdict looks at, as shares saved."""
    s = r["scope"]
    return {
        "journal bytes not read": s["bytes_not_read"],
        "records not replayed": s["records_not_replayed"],
        "recovery time saved (1 - with/without)": 1.0 - r["time_ratio_with_over_without"],
    }


def classify(x):
    if x < CLAIM_LO:
        return "below"
    if x > CLAIM_HI:
        return "above"
    return "inside"


def claim_verdict(states, phases):
    """One line per (metric, phase): which cadences fall inside, below and above the range."""
    lines = []
    points = {}
    with_ckpt = [r for r in states if r["every_txns"] is not None]
    if not with_ckpt:
        return ["no crash state with checkpoints in this file, so no verdict on the 80-95% claim."], {}
    for metric in metrics(with_ckpt[0]):
        for ph in phases:
            rows = [r for r in with_ckpt if r["phase"] == ph]
            if not rows:
                continue
            groups = {"inside": [], "below": [], "above": []}
            for r in rows:
                x = metrics(r)[metric]
                groups[classify(x)].append(f"{r['cadence']} {pct(x)}")
                points.setdefault(metric, []).append(classify(x))
            parts = [f"{k} at {', '.join(v)}" for k, v in groups.items() if v]
            lines.append(f"{metric}, {PHASE_TEXT.get(ph, ph)}: " + "; ".join(parts))
    return lines, points


def target_verdict(states, default_txns, phases):
    if default_txns is None:
        return ["the default cadence is not a transaction count in this file, so no verdict on the target."]
    lines = []
    for ph in phases:
        r = next((r for r in states if r["every_txns"] == default_txns and r["phase"] == ph), None)
        if r is None:
            lines.append(f"{PHASE_TEXT.get(ph, ph)}: the default cadence (every {default_txns:,} transactions) "
                         "was not measured.")
            continue
        b = r["scope"]["bytes_not_read"]
        t = r["time_ratio_with_over_without"]
        ok_b, ok_t = b >= TARGET_BYTES, t <= TARGET_TIME
        verdict = "**pass**" if ok_b and ok_t else "**fail**"
        lines.append(
            f"{PHASE_TEXT.get(ph, ph)} ({r['state']}): {verdict}: journal bytes not read {pct(b)} "
            f"(target >= {pct(TARGET_BYTES)}: {'met' if ok_b else 'missed'}); recovery "
            f"{ms(r['with_secs_median'])} ms with checkpoints against {ms(r['without_secs_median'])} ms without "
            f"= {t:.2f} of the time (target <= {TARGET_TIME:.2f}: {'met' if ok_t else 'missed'})")
        lines.append("  " + time_budget(r))
    return lines


REPLAY_PHASES = ("scan", "redo", "undo", "redo+undo")


def time_budget(r):
    """Why the time ratio is what it is: what the checkpoint costs against what it saves."""
    ph = r["phase_ms_median"]
    replay = {w: sum(ph[w].get(k, 0.0) for k in REPLAY_PHASES) for w in ("with", "without")}
    cost = ph["with"].get("choose checkpoint", 0.0) + ph["with"].get("load checkpoint", 0.0)
    flush = ph["with"].get("flush", 0.0)
    without_ms = r["without_secs_median"] * 1e3
    return (f"where the time goes: scan and replay take {replay['without']:,.1f} ms without checkpoints and "
            f"{replay['with']:,.1f} ms with them (saving {replay['without'] - replay['with']:,.1f} ms), while "
            f"choosing and loading the checkpoint chain costs {cost:,.1f} ms; the final image flush, "
            f"{flush:,.1f} ms with checkpoints, is paid either way and alone is {flush / without_ms:.2f} of the "
            f"time without them")


def section(path, out):
    prov, states, create, timing = load(path)
    if prov is None:
        out.append(f"## `{path}`\n\nNo provenance line: not a checkpoint_sweep output; skipped.\n")
        return
    p = prov["provenance"]
    params = prov["params"]
    plan = params["plan"]
    phases = [ph for ph in params["phases"] if any(r["phase"] == ph for r in states)]
    default_txns = params.get("default_cadence_txns")
    out.append(f"## `{os.path.basename(path)}`\n")
    out.append(f"- machine: {p['cpu']}, {p['cpus']} CPUs, {p['numa_nodes']} NUMA node(s), kernel {p['kernel']}, "
               f"host `{p['host']}`")
    out.append(f"- git {p['git_sha'][:12]} (dirty: {str(p['git_dirty']).lower()}); preset `{params['preset']}`, seed "
               f"{params['seed']}; {params['reps']} timed recoveries each way per crash state (with and without "
               f"checkpoints taking turns), medians; warm page cache; recovery with {params['workers']} workers "
               f"({', '.join(sorted({str(r['workers']) for r in states}))})")
    out.append(f"- checkpoint plan: every N finished transactions (swept), style {plan['style']} with a full one "
               f"every {plan['full_every']}, {plan['compression']}, {plan['retain']} kept, torn checkpoint at the "
               f"crash: {str(plan['torn_at_crash']).lower()}; the default cadence is every "
               f"{default_txns:,} transactions" if default_txns else "- default cadence: not a transaction count")
    pt = params.get("phase_txns")
    if pt:
        out.append(f"- crash phase: *after* generates the preset's {pt['after']:,} transactions (the generator "
                   f"finishes {pt['overshoot']} more than that, its scenarios adding some, so a cadence that divides "
                   f"{pt['after']:,} puts a checkpoint a few transactions before the crash); *before* generates "
                   f"{pt['before']:,} "
                   f"({pt['overshoot']} + 1 + {pt['margin']} fewer), so the crash comes just before the next "
                   f"checkpoint would have been due")
    fs = params.get("file_system") or {}
    out.append(f"- crash states generated under `{params['tmp']}` ({fs.get('type', '?')} on {fs.get('source', '?')}); "
               f"same-run single-thread memcpy {prov['memcpy_1t_bytes_per_s'] / 1e9:.2f} GB/s over "
               f"{mib(prov['memcpy_bytes'])} MiB")
    if timing:
        out.append(f"- sweep took {timing['wall_secs'] / 60:.1f} min ({timing['recoveries']} recoveries; generation "
                   f"{timing['generation_secs']:.0f} s, oracle checks {timing['verify_secs']:.0f} s, creation cost "
                   f"{timing['creation_secs']:.0f} s)")
    cpu = (timing or {}).get("cpu")
    if cpu:
        busy = cpu["others_share"] > OTHERS_NOISY
        out.append(f"- CPU time over the sweep: this sweep {pct(cpu['this_sweep_share'])} of the machine's, everything "
                   f"else (other processes, and kernel threads such as writeback) {pct(cpu['others_share'])}"
                   + (f": **more than {pct(OTHERS_NOISY)}, so the machine was shared and times are noisier than "
                      f"they would be alone**" if busy else ""))
    unverified = [r["state"] for r in states if not r.get("verified")]
    changed = [r["state"] for r in states if not r.get("checkpoints_unchanged_by_recovery")]
    disagree = [r["state"] for r in states if not r["scope"]["unread_agrees_with_report"]]
    out.append(f"- checks: every recovery's image matched the oracle once each way: "
               f"{'yes' if not unverified else 'no: ' + ', '.join(unverified)}; checkpoint directory unchanged by "
               f"the recoveries: {'yes' if not changed else 'no: ' + ', '.join(changed)}; unread segment bytes from "
               f"the segment headers equal the report's `journal_bytes_skipped`: "
               f"{'yes' if not disagree else 'no: ' + ', '.join(disagree)}")
    out.append("")

    out.append("### Verdicts\n")
    claim_lines, points = claim_verdict(states, phases)
    out.append(f"The claim \"checkpoint-based recovery reduces the replayed scope by "
               f"{CLAIM_LO * 100:.0f}-{CLAIM_HI * 100:.0f}%\", read three ways, per crash state with checkpoints "
               f"(inside: within {CLAIM_LO * 100:.0f}-{CLAIM_HI * 100:.0f}%):\n")
    for line in claim_lines:
        out.append(f"- {line}")
    if points:
        summary = "; ".join(f"{m}: inside at {v.count('inside')} of {len(v)}" for m, v in points.items())
        out.append(f"- **verdict on the claim:** {summary} (cadence x crash phase points).")
    out.append("")
    out.append(f"Target at the default cadence: at least {pct(TARGET_BYTES)} of journal bytes not read and recovery "
               f"in at most {TARGET_TIME:.2f} of the time without checkpoints:\n")
    for line in target_verdict(states, default_txns, phases):
        out.append(f"  - {line.strip()}" if line.startswith("  ") else f"- {line}")
    out.append("")

    out.append("### The curve\n")
    out.append("Per crash state: the newest checkpoint recovery used (sequence, kind, chain length), the share of "
               "the journal's records after its LSN, what recovery with it did not read or replay, and "
               "recovery time with and without it (medians, same crash image, same run). *chain MiB*: the files "
               "of the chain used, which choosing it reads whole. *choose* is the "
               "`choose checkpoint` phase (finding and loading the chain), *load* the `load checkpoint` phase "
               "(restoring its blocks into the image), *flush* the final image fsync (with / without).\n")
    head = ["cadence", "crash", "checkpoints written / kept", "newest used (seq, kind, chain)",
            "records after it", "journal bytes not read", "records not replayed", "recovery ms with",
            "recovery ms without", "with / without", "chain MiB", "choose ms", "load ms", "flush ms with / without",
            "checkpoints on disk MiB", "raw / stored"]
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + "|".join("---" if i < 2 else "---:" for i in range(len(head))) + "|")
    for ph in phases:
        for r in (r for r in states if r["phase"] == ph):
            s = r["scope"]
            ck = r["checkpoint_used"]
            disk = r["checkpoints_on_disk"]["total"]
            used = "none" if ck is None else f"{ck['seq']}, {ck['kind']}, {ck['chain_len']} (LSN {ck['lsn']:,})"
            ratio = r["time_ratio_with_over_without"]
            cad = r["cadence"] + (" (default)" if r["every_txns"] == default_txns else "")
            row = [
                cad, ph, f"{r['generation']['checkpoints_written']} / {disk['count']}", used,
                pct(s["records_after_checkpoint"]) if ck else "-",
                pct(s["bytes_not_read"]), pct(s["records_not_replayed"]),
                f"{ms(r['with_secs_median'])} ({ms(min(r['with_secs']))}-{ms(max(r['with_secs']))})",
                f"{ms(r['without_secs_median'])} ({ms(min(r['without_secs']))}-{ms(max(r['without_secs']))})",
                f"**{ratio:.2f}**",
                mib(ck["chain_file_bytes"]) if ck else "-",
                fmt_opt_ms(phase_ms(r, "with", "choose checkpoint")),
                fmt_opt_ms(phase_ms(r, "with", "load checkpoint")),
                f"{fmt_opt_ms(phase_ms(r, 'with', 'flush'))} / {fmt_opt_ms(phase_ms(r, 'without', 'flush'))}",
                mib(disk["file_bytes"]) if disk["count"] else "-",
                f"{disk['raw_bytes'] / disk['data_bytes']:.2f}" if disk["data_bytes"] else "-",
            ]
            out.append("| " + " | ".join(row) + " |")
    out.append("")
    aa = next((r for r in states if r["every_txns"] is None), None)
    if aa:
        out.append(f"Without checkpoints (`{aa['state']}`) both configurations recover the same way; their ratio, "
                   f"{aa['time_ratio_with_over_without']:.2f}, shows how far two identical configurations drift apart "
                   f"in this run (ranges in brackets: fastest-slowest of the timed runs).\n")

    out.append("Where the time goes with checkpoints (median ms per phase, with / without):\n")
    names = []
    for r in states:
        for which in ("with", "without"):
            for k in r["phase_ms_median"][which]:
                if k not in names:
                    names.append(k)
    out.append("| cadence | crash | " + " | ".join(names) + " |")
    out.append("|---|---|" + "|".join("---:" for _ in names) + "|")
    for ph in phases:
        for r in (r for r in states if r["phase"] == ph):
            cells = [f"{fmt_opt_ms(phase_ms(r, 'with', k))} / {fmt_opt_ms(phase_ms(r, 'without', k))}" for k in names]
            out.append(f"| {r['cadence']} | {ph} | " + " | ".join(cells) + " |")
    out.append("")

    out.append("### Checkpoints on disk, by kind\n")
    out.append("What retention kept at the crash (the torn temporary file not counted). raw / stored: raw block "
               "bytes over compressed chunk bytes.\n")
    out.append("| cadence | crash | kind | files | blocks | raw MiB | on disk MiB | raw / stored |")
    out.append("|---|---|---|---:|---:|---:|---:|---:|")
    for ph in phases:
        for r in (r for r in states if r["phase"] == ph and r["every_txns"] is not None):
            for kind, k in sorted(r["checkpoints_on_disk"]["by_kind"].items()):
                out.append(f"| {r['cadence']} | {ph} | {kind} | {k['count']} | {k['blocks']:,} | {mib(k['raw_bytes'])} "
                           f"| {mib(k['file_bytes'])} | {k['raw_bytes'] / max(k['data_bytes'], 1):.2f} |")
    out.append("")

    out.append("### Generation\n")
    base = {r["phase"]: r for r in states if r["every_txns"] is None}
    base_after = base.get("after")
    out.append("Seconds to generate each crash state: the whole simulated run (journal, oracle, and writing and "
               "pruning checkpoints), not the cost of checkpointing alone"
               + (f"; *vs none* is the difference from `{base_after['state']}` in the same run (same transaction "
                  f"count only)." if base_after
                  else "."))
    out.append("")
    out.append("| cadence | crash | transactions | journal MiB | records | checkpoints written | generation s | vs none |")
    out.append("|---|---|---:|---:|---:|---:|---:|---:|")
    for ph in phases:
        for r in (r for r in states if r["phase"] == ph):
            g = r["generation"]
            same = base_after and r["txns"] == base_after["txns"]
            diff = f"{g['secs'] - base_after['generation']['secs']:+.1f} s" if same else "-"
            out.append(f"| {r['cadence']} | {ph} | {r['txns']:,} | {mib(g['journal_bytes'])} | {g['records']:,} | "
                       f"{g['checkpoints_written']} | {g['secs']:.1f} | {diff} |")
    out.append("")

    if create:
        out.append("### Creation cost of one full checkpoint\n")
        src = create[0]["source"]
        out.append(f"`recovery::checkpoint::write` of every block of the recovered image ({src}), into a fresh "
                   f"directory each time: {create[0]['includes']}. Medians of {create[0]['reps']} writes, "
                   f"compressions taking turns; MB/s of raw block bytes (10^6 bytes), against the same run's "
                   f"single-thread memcpy.\n")
        out.append("| compression | blocks | raw MiB | file MiB | raw / file | ms (fastest-slowest) | raw MB/s | "
                   "/ memcpy 1t |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|")
        for c in create:
            out.append(f"| {c['compression']} | {c['blocks']:,} | {mib(c['raw_bytes'])} | {mib(c['file_bytes'])} | "
                       f"{c['compression_ratio']:.2f} | {ms(c['secs_median'])} ({ms(min(c['secs']))}-"
                       f"{ms(max(c['secs']))}) | {c['raw_bytes_per_s'] / 1e6:,.0f} | {c['ratio_vs_memcpy']:.3f}x |")
        out.append("")

    odd = [r for r in states if r["checkpoint_used"] and r["scope"]["report_records_scanned"] != r["scope"]["records_read"]]
    if odd:
        out.append("### Notes\n")
        examples = ", ".join(f"{r['state']}: {r['scope']['report_records_scanned']:,} reported, "
                             f"{r['scope']['records_read']:,} in the segments read"
                             for r in odd[:3])
        out.append(f"- The report's `records_scanned` with checkpoints is not the number of records read in "
                   f"{len(odd)} of {sum(1 for r in states if r['checkpoint_used'])} crash states ({examples}): the "
                   f"parallel scan counts only records the checkpoint does not cover. Records not replayed are "
                   f"therefore computed from the segment headers (records in unread segments) plus the report's "
                   f"`records_skipped`, not from `records_scanned`.")
        out.append("")


def main(argv):
    out_path = os.path.join("results", "CHECKPOINT.md")
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
        files = sorted(glob.glob(os.path.join("results", "checkpoint", "*.ndjson")))
    out = ["# Checkpoints and the replay scope they save (generated, do not edit)", "",
           "Generated by `scripts/checkpoint-table.py` from the NDJSON files named in each section, written by",
           "`scripts/checkpoint-sweep.sh`. For each checkpoint cadence (transactions between checkpoints) and",
           "crash phase, one crash state of the preset is generated; the same crash image is then recovered",
           "with its checkpoints and without them (`use_checkpoints: false`), taking turns, and every figure",
           "compares the two within the run. *Journal bytes not read*: segments recovery skipped because",
           "they lie wholly before the checkpoint's `min_lsn`, over all journal bytes. *Records not",
           "replayed*: records in those segments plus records read but covered by the checkpoint, over all",
           "durable records. Regenerate instead of editing.", ""]
    if not files:
        out.append("No results yet: run `scripts/checkpoint-sweep.sh`.\n")
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
