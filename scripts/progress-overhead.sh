#!/usr/bin/env bash
# Builds and runs the progress-overhead measurement on this machine: recovery of one crash state
# with no observer, with the JSON observer at the default 1 s interval and at 10 ms, and a
# second no-observer control (the noise floor), interleaved round by round, on 1 worker and on
# all CPUs, warm page cache. Writes NDJSON: one provenance line, then one line per (workers,
# variant). results/PROGRESS.md is written by hand from it.
#
# usage: scripts/progress-overhead.sh [--out FILE] [--bin PREBUILT] [progress_overhead args...]
#   --out    default results/progress/<UTC date>-<short host>-<short sha>-<preset>-<reps>reps.ndjson
#   --bin    a prebuilt progress_overhead binary (for a machine without a Rust toolchain)
#   other arguments go to progress_overhead unchanged: --preset default --seed 1 --reps 15
#   --workers 1,all --tmp DIR (where the crash state is generated)
set -euo pipefail
cd "$(dirname "$0")/.."
SWEEP_BIN=progress_overhead
source scripts/sweep-lib.sh
sweep_parse "$@"
[ -z "$table" ] || echo "--table ignored: there is no table script for this measurement" >&2
preset=default reps=15
for ((i = 0; i < ${#pass[@]}; i++)); do
  case "${pass[$i]}" in
    --preset) preset="${pass[$((i + 1))]}" ;;
    --reps) reps="${pass[$((i + 1))]}" ;;
  esac
done
out="${out:-results/progress/$stamp-$preset-${reps}reps.ndjson}"
mkdir -p "$(dirname "$out")"
"$bin" "${pass[@]}" --out "$out"
echo "wrote $out"
