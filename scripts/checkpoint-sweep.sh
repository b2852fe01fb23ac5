#!/usr/bin/env bash
# Builds and runs the checkpoint-cadence sweep on this machine (checkpoints every N transactions
# on the default preset, crash just after and just before a checkpoint, recovery with and without
# them, checkpoint sizes and the cost of writing one) and renders the Markdown table.
#
# usage: scripts/checkpoint-sweep.sh [--out FILE] [--table FILE.md] [--bin PREBUILT] [checkpoint_sweep args...]
#   --out    default results/checkpoint/<UTC date>-<short host>-<short sha>.ndjson
#   --table  default results/CHECKPOINT.md (rendered from every results/checkpoint/*.ndjson) when
#            --out is the default; otherwise FILE.md beside --out, rendered from that file alone
#   --bin    a prebuilt checkpoint_sweep binary (for a machine without a Rust toolchain)
#   other arguments go to checkpoint_sweep unchanged: --cadences none,24000,12000,6000,3000,1500,750,375
#   --phases after,before --reps 5 --seed 1 --preset default --create-reps N
#   --compressions zstd,lz4,none --tmp DIR (where crash states are generated)
set -euo pipefail
cd "$(dirname "$0")/.."
SWEEP_BIN=checkpoint_sweep SWEEP_TABLE_SCRIPT=scripts/checkpoint-table.py
source scripts/sweep-lib.sh
sweep_parse "$@"
default_out="results/checkpoint/$stamp.ndjson"
default_table=results/CHECKPOINT.md
sweep_run
