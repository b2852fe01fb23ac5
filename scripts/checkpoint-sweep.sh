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

out="" table="" bin="" pass=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --table) table="$2"; shift 2 ;;
    --bin) bin="$2"; shift 2 ;;
    *) pass+=("$1"); shift ;;
  esac
done
if [ -z "$bin" ]; then
  cargo build --release -p fastrec-bench --bin checkpoint_sweep
  bin="${CARGO_TARGET_DIR:-target}/release/checkpoint_sweep"
fi
# Provenance reads these when set, so a copy of the tree without its git directory still
# records the revision it was built from.
if [ -z "${FASTREC_GIT_SHA:-}" ] && sha_full=$(git rev-parse HEAD 2>/dev/null); then
  export FASTREC_GIT_SHA="$sha_full"
  if [ -n "$(git status --porcelain 2>/dev/null)" ]; then export FASTREC_GIT_DIRTY=1; else export FASTREC_GIT_DIRTY=0; fi
fi
inputs=()
if [ -z "$out" ]; then
  sha="${FASTREC_GIT_SHA:-unknown}"
  [ "$sha" = unknown ] || sha="${sha:0:7}"
  out="results/checkpoint/$(date -u +%Y-%m-%d)-$(hostname -s)-$sha.ndjson"
  table="${table:-results/CHECKPOINT.md}"
else
  table="${table:-${out%.ndjson}.md}"
  inputs=("$out")
fi
mkdir -p "$(dirname "$out")"
"$bin" "${pass[@]}" --out "$out"
echo "wrote $out"
python3 scripts/checkpoint-table.py --out "$table" "${inputs[@]}"
