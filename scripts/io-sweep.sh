#!/usr/bin/env bash
# Builds and runs the journal I/O sweep on this machine (backends x request size x record size
# x cache state x consumer, same-run ceilings) and renders the Markdown table.
#
# usage: scripts/io-sweep.sh [--out FILE] [--table FILE.md] [--bin PREBUILT] [io_sweep args...]
#   --out    default results/io/<UTC date>-<short host>-<short sha>-<journal MiB>MiB.ndjson
#   --table  default results/IO.md (rendered from every results/io/*.ndjson) when --out is the
#            default; otherwise FILE.md beside --out, rendered from that file alone
#   --bin    a prebuilt io_sweep binary (for a machine without a Rust toolchain)
#   other arguments go to io_sweep unchanged: --journal-mib 256 --records 256B,4K,64K
#   --consumers scan,recover --caches warm,cold --backends all --reps 5 --seed 1 --workers N
#   --ceiling-reps N (default max(reps, 3)) --tmp DIR (where crash states are generated: a disk,
#   not tmpfs, for cold and direct figures to mean anything)
set -euo pipefail
cd "$(dirname "$0")/.."
SWEEP_BIN=io_sweep SWEEP_TABLE_SCRIPT=scripts/io-table.py
source scripts/sweep-lib.sh
sweep_parse "$@"
mib=256
for ((i = 0; i < ${#pass[@]}; i++)); do
  [ "${pass[$i]}" = --journal-mib ] && mib="${pass[$((i + 1))]}"
done
default_out="results/io/$stamp-${mib}MiB.ndjson"
default_table=results/IO.md
sweep_run
