#!/usr/bin/env bash
# The instruction-count gate (docs/GATE.md): runs the `gate` benches under valgrind (callgrind,
# through gungraun) with their summaries saved, then compares the instruction counts with the
# committed baseline bench/gate/baseline.json. Exits non-zero when a bench costs more than the
# tolerance above its baseline, or is missing on either side.
#
# usage: scripts/gate.sh [--tolerance PCT] [--update [REASON]]
#   --tolerance  percent a bench may exceed its baseline (default $GATE_TOLERANCE, else 3)
#   --update     rewrite bench/gate/baseline.json from this run instead of judging it, recording
#                REASON; commit the file with the reason (docs/GATE.md says when)
#
# Installs nothing. Needs valgrind (Debian: apt-get install -y valgrind) and gungraun-runner
# 0.20.0, the exact version of the gungraun library the benches use
# (cargo install gungraun-runner --version 0.20.0 --locked). Honours CARGO_TARGET_DIR (default
# ./target; the summaries land in its gungraun/ folder) and GUNGRAUN_HOME.
set -euo pipefail
cd "$(dirname "$0")/.."
GUNGRAUN_VERSION=0.20.0
BASELINE=bench/gate/baseline.json

tolerance="${GATE_TOLERANCE:-3}"
update=()
while [ $# -gt 0 ]; do
  case "$1" in
    --tolerance) tolerance="$2"; shift 2 ;;
    --update)
      update=(--update); shift
      if [ $# -gt 0 ] && [[ "$1" != --* ]]; then update+=("$1"); shift; fi ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "gate.sh: unknown argument \`$1\` (see scripts/gate.sh --help)" >&2; exit 2 ;;
  esac
done

missing=0
if ! command -v valgrind >/dev/null 2>&1; then
  echo "gate.sh: valgrind is not installed (Debian: apt-get install -y valgrind)" >&2
  missing=1
fi
runner="${GUNGRAUN_RUNNER:-gungraun-runner}"
if ! have="$("$runner" --version 2>/dev/null)"; then
  echo "gate.sh: $runner is not installed: cargo install gungraun-runner --version $GUNGRAUN_VERSION --locked" >&2
  missing=1
elif [ "$have" != "gungraun-runner $GUNGRAUN_VERSION" ]; then
  echo "gate.sh: found \`$have\`, the benches need gungraun-runner $GUNGRAUN_VERSION exactly:" \
    "cargo install gungraun-runner --version $GUNGRAUN_VERSION --locked --force" >&2
  missing=1
fi
[ "$missing" = 0 ] || exit 1

# Absolute: cargo runs benches from the package's folder, and gungraun puts its output under
# $CARGO_TARGET_DIR/gungraun, which must be the folder gate_check reads.
target="${CARGO_TARGET_DIR:-target}"
[[ "$target" = /* ]] || target="$PWD/$target"
export CARGO_TARGET_DIR="$target"
summaries="${GUNGRAUN_HOME:-$target/gungraun}"
[[ "$summaries" = /* ]] || summaries="$PWD/$summaries"
[ -z "${GUNGRAUN_HOME:-}" ] || export GUNGRAUN_HOME="$summaries"

started=$SECONDS
# A summary left by a bench since renamed or removed would read as measured.
if [ -d "$summaries" ]; then find "$summaries" -name summary.json -delete; fi
echo "== gate: building and running the gate benches under valgrind"
GUNGRAUN_SAVE_SUMMARY=json cargo bench -p fastrec-bench --features gate --bench gate
echo "== gate: comparing with $BASELINE"
status=0
# Same profile and features as the benches: reuses their build of the bench library.
cargo run --profile bench --quiet -p fastrec-bench --features gate --bin gate_check -- \
  --baseline "$BASELINE" --summaries "$summaries" --tolerance "$tolerance" "${update[@]}" || status=$?
echo "== gate: $((SECONDS - started)) s"
exit "$status"
