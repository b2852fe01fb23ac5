#!/usr/bin/env bash
# Builds and runs the worker-scaling sweep on this machine (workers 1, 2, 4, 8, 16, capped at
# its CPUs; pinned and rayon executors; cpu-bound and memory-bound presets) and writes NDJSON:
# one provenance line, then one line per configuration.
#
# usage: scripts/scaling-sweep.sh [--out FILE] [--reps N] [--presets a,b] [--bin PREBUILT]
#                                 [--serial-preset default]
#   --out   default results/scaling/<date>-<host>-<short sha>.ndjson
#   --bin   a prebuilt scaling_sweep binary (for a machine without a Rust toolchain)
set -euo pipefail
cd "$(dirname "$0")/.."

out="" reps=5 presets="cpu-bound,memory-bound" bin="" serial=()""
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --reps) reps="$2"; shift 2 ;;
    --presets) presets="$2"; shift 2 ;;
    --bin) bin="$2"; shift 2 ;;
    --serial-preset) serial=(--serial-preset "$2"); shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
if [ -z "$bin" ]; then
  cargo build --release -p fastrec-bench --bin scaling_sweep
  bin=target/release/scaling_sweep
fi
if [ -z "$out" ]; then
  sha=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
  out="results/scaling/$(date -u +%Y-%m-%d)-$(hostname)-$sha.ndjson"
fi
mkdir -p "$(dirname "$out")"
"$bin" --presets "$presets" --reps "$reps" "${serial[@]}" --out "$out"
echo "wrote $out"
