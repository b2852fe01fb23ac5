# Shared by the sweep scripts (sourced, not run): argument handling, building the sweep
# binary, provenance for builds without a git directory, and the run-and-render step.
#
# A script sets SWEEP_BIN (binary name) and SWEEP_TABLE_SCRIPT, calls sweep_parse "$@",
# sets default_out / default_table for when no --out was given, then calls sweep_run.

sweep_parse() {
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
    cargo build --release -p fastrec-bench --bin "$SWEEP_BIN"
    bin="${CARGO_TARGET_DIR:-target}/release/$SWEEP_BIN"
  fi
  # Provenance reads these when set, so a copy of the tree without its git directory still
  # records the revision it was built from.
  if [ -z "${FASTREC_GIT_SHA:-}" ] && sha_full=$(git rev-parse HEAD 2>/dev/null); then
    export FASTREC_GIT_SHA="$sha_full"
    if [ -n "$(git status --porcelain 2>/dev/null)" ]; then export FASTREC_GIT_DIRTY=1; else export FASTREC_GIT_DIRTY=0; fi
  fi
  short_sha="${FASTREC_GIT_SHA:-unknown}"
  [ "$short_sha" = unknown ] || short_sha="${short_sha:0:7}"
  stamp="$(date -u +%Y-%m-%d)-$(hostname -s)-$short_sha"
}

# With --out given, renders the table beside it from that file alone; otherwise writes
# default_out and renders default_table from every file of the results directory.
sweep_run() {
  local inputs=()
  if [ -z "$out" ]; then
    out="$default_out"
    table="${table:-$default_table}"
  else
    table="${table:-${out%.ndjson}.md}"
    inputs=("$out")
  fi
  mkdir -p "$(dirname "$out")"
  "$bin" "${pass[@]}" --out "$out"
  echo "wrote $out"
  python3 "$SWEEP_TABLE_SCRIPT" --out "$table" "${inputs[@]}"
}
