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
  cargo build --release -p fastrec-bench --bin io_sweep
  bin="${CARGO_TARGET_DIR:-target}/release/io_sweep"
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
  mib=256
  for ((i = 0; i < ${#pass[@]}; i++)); do
    [ "${pass[$i]}" = --journal-mib ] && mib="${pass[$((i + 1))]}"
  done
  out="results/io/$(date -u +%Y-%m-%d)-$(hostname -s)-$sha-${mib}MiB.ndjson"
  table="${table:-results/IO.md}"
else
  table="${table:-${out%.ndjson}.md}"
  inputs=("$out")
fi
mkdir -p "$(dirname "$out")"
"$bin" "${pass[@]}" --out "$out"
echo "wrote $out"
python3 scripts/io-table.py --out "$table" "${inputs[@]}"
