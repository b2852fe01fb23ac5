#!/usr/bin/env bash
# The scaling evidence on a machine with 16 or more CPUs, in one short, bounded call: builds the
# release binary, runs `fastrec lab --full --only scaling,deps` (the `physical`, `cpu-bound` and
# `memory-bound` presets at 1, 2, 4, 8, 16 workers with the whole-recovery bound; the `cpu-bound`
# preset at dependency densities 0 to 0.4 with 1 worker and every CPU), renders it, and prints
# one summary line. Such machines are lent rarely and briefly, so the whole call keeps within
# a wall-time budget (default 480 s, the build included): the lab gets what the build left,
# less a margin for rendering, and is stopped when that runs out; what it measured by then is
# rendered all the same (raw.ndjson is written a record at a time).
#
# On 16 CPUs the lab part takes about 2-3 minutes (five repetitions of each configuration), and
# a clean release build about as long again.
#
# usage: scripts/device-scaling.sh [--budget SECONDS] [--bin PREBUILT] [--quick] [--only LIST]
#                                  [--dry-run] [--summary-of RUN_DIR]
#   --budget      wall seconds for the whole call, build included (default 480)
#   --bin         a prebuilt fastrec binary: no build
#   --quick       the quick plan instead of --full (fewer repetitions, smaller deps journals)
#   --only        experiments (default scaling,deps, and jbd2 where e2fsprogs is installed)
#   --dry-run     print the commands it would run, run nothing
#   --summary-of  print the summary line of an existing run directory and exit
#
# Output: the run goes to "$OUT/results/runs/<date>-<host>-<sha>/" when OUT is set (with that
# results directory's report page and claims table, judged on this run alone), else to
# results/runs/ of this checkout. To keep a run measured elsewhere, copy its directory into
# results/runs/ and run `fastrec lab --render`. A copy of the tree without its git directory
# records the revision only when FASTREC_GIT_SHA (and FASTREC_GIT_DIRTY=0/1) are passed in.
# Journals are generated under TMPDIR (default /tmp), not under OUT.
set -euo pipefail
cd "$(dirname "$0")/.."

budget_s=480 bin="" mode=--full only="scaling,deps" dry=0 summary_of=""
# The ext4 journal experiment scales on a physical journal (no cross-block dependency); it
# needs e2fsprogs, which such a machine may lack and cannot fetch.
if command -v e2fsck >/dev/null 2>&1 || [ -x /usr/sbin/e2fsck ] || [ -x /sbin/e2fsck ]; then
  only="scaling,deps,jbd2"
fi
while [ $# -gt 0 ]; do
  case "$1" in
    --budget) budget_s="$2"; shift 2 ;;
    --bin) bin="$2"; shift 2 ;;
    --quick) mode=--quick; shift ;;
    --only) only="$2"; shift 2 ;;
    --dry-run) dry=1; shift ;;
    --summary-of) summary_of="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "device-scaling.sh: unknown argument \`$1\` (see --help)" >&2; exit 2 ;;
  esac
done

# Renders, from a run directory's CLAIMS.md (next to runs/) and summary.md, one line: the
# speedup claim and the within-the-bound claim (verdict, then what was measured), and the
# deps experiment's speedup with every CPU over its whole-recovery bound at each density.
summary_line() {
  local run_dir="$1" claims
  claims="$(dirname "$(dirname "$run_dir")")/CLAIMS.md"
  local claim_part="" deps_part
  if [ -f "$claims" ]; then
    claim_part="$(awk -F' [|] ' '
      /^[|] up to 8x / || /^[|] every measured point within 80% / {
        verdict = $4; gsub(/\*/, "", verdict)
        name = ($0 ~ /^[|] up to 8x /) ? "8x claim" : "within 80% of the whole bound"
        printf "%s%s: %s (%s)", sep, name, verdict, $2; sep = "; "
      }' "$claims")"
  fi
  deps_part="$(awk -F' *[|] *' '
    /^## / { section = $0 }
    section == "## deps" && /^[|] label / {
      for (i = 1; i <= NF; i++) {
        if ($i == "deps_rate") d = i; if ($i == "workers") w = i
        if ($i == "speedup (x)") s = i; if ($i == "whole_bound (x)") b = i
      }
    }
    section == "## deps" && /^[|] deps=/ && d && w && s && $w != "1" {
      printf "%s%s: %sx of %sx", sep, $d, $s, (b ? $b : "-"); sep = ", "
    }' "$run_dir/summary.md")"
  echo "device-scaling: $run_dir; ${claim_part:-no claims table}; deps (speedup of bound, by density): ${deps_part:--}"
}

if [ -n "$summary_of" ]; then
  summary_line "${summary_of%/}"
  exit 0
fi

run() {
  echo "+ $*" >&2
  if [ "$dry" = 0 ]; then "$@"; fi
}

start=$SECONDS
if [ -z "$bin" ]; then
  run cargo build --release --bin fastrec
  bin="${CARGO_TARGET_DIR:-target}/release/fastrec"
fi
if [ -z "${FASTREC_GIT_SHA:-}" ] && sha_full=$(git rev-parse HEAD 2>/dev/null); then
  export FASTREC_GIT_SHA="$sha_full"
  if [ -n "$(git status --porcelain 2>/dev/null)" ]; then export FASTREC_GIT_DIRTY=1; else export FASTREC_GIT_DIRTY=0; fi
fi
results="${OUT:+$OUT/results}"
results="${results:-results}"
run mkdir -p "$results"

# Rendering every run of a results directory takes seconds; the margin keeps it, and the
# summary, inside the budget.
margin_s=30
left_s=$((budget_s - (SECONDS - start) - margin_s))
if [ "$left_s" -lt 60 ]; then
  echo "device-scaling.sh: the build left ${left_s} s of the ${budget_s} s budget; not starting the lab" >&2
  exit 1
fi
existing="$(ls -1 "$results/runs" 2>/dev/null || true)"
status=0
# The lab's own output (its log, and the run directory on success) goes to stderr: stdout
# carries the summary line alone.
run timeout --kill-after=5 "$left_s" "$bin" lab "$mode" --only "$only" --results "$results" >&2 || status=$?
if [ "$dry" = 1 ]; then
  exit 0
fi
# This run's directory: the one that was not there before (a stopped lab prints none).
run_dir=""
for d in $(ls -1 "$results/runs" 2>/dev/null || true); do
  if ! grep -qxF "$d" <<<"$existing"; then run_dir="$results/runs/$d"; fi
done
if [ "$status" != 0 ]; then
  echo "device-scaling.sh: the lab stopped (exit $status) after $((SECONDS - start)) s; rendering what it measured" >&2
  if [ -n "$run_dir" ] && [ -f "$run_dir/raw.ndjson" ]; then
    "$bin" lab --render --results "$results" >&2 || true
  fi
fi
if [ -z "$run_dir" ]; then
  echo "device-scaling.sh: no run directory under $results/runs" >&2
  exit 1
fi
echo "$(summary_line "$run_dir") [$((SECONDS - start)) s, lab exit $status]"
exit "$status"
