#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ (docs/FUZZING.md) one after another, one libFuzzer
# process each, and records every run in results/fuzz/runs.ndjson (date, git sha, target,
# seconds, executions, findings, the exact command), then rewrites results/fuzz/SUMMARY.md.
#
# usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#   SECONDS_PER_TARGET  fuzzing time per target (default 20: about a minute for the three)
#   TARGET              record, segment, recover_dir (default: all three)
#
# Environment: FUZZ_SANITIZER (address, the default, or none: about three times the
# executions on recover_dir, whose time goes to the kernel; other sanitizers as cargo-fuzz
# names them), FUZZ_RSS_MB (memory limit per process and per allocation, default 2048),
# FUZZ_TIMEOUT_S (a single input running longer is a finding, default 30), FUZZ_WORK (where
# the growing working corpus lives, default fuzz/target/work-corpus; the committed seeds in
# fuzz/corpus are read, never written), FUZZ_ARGS (more libFuzzer flags).
#
# Installs nothing. Needs a nightly toolchain (rustup toolchain install nightly) and cargo-fuzz
# (cargo install cargo-fuzz --locked); without them it prints a "skipped" line and exits 0, so
# CI passes where the toolchain does not allow fuzzing. Exits 1 when a target found something
# (the inputs are in fuzz/artifacts/<target>/), 2 on a usage or build error.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=20
if [ $# -gt 0 ] && [[ "$1" =~ ^[0-9]+$ ]]; then
  seconds="$1"
  shift
fi
case "${1:-}" in
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
esac
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(record segment recover_dir)
for t in "${targets[@]}"; do
  case "$t" in
    record|segment|recover_dir) ;;
    *) echo "fuzz.sh: unknown target \`$t\` (record, segment, recover_dir)" >&2; exit 2 ;;
  esac
done

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz: skipped: no nightly toolchain (rustup toolchain install nightly)"
  exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz: skipped: cargo-fuzz is not installed (cargo install cargo-fuzz --locked)"
  exit 0
fi

sanitizer="${FUZZ_SANITIZER:-address}"
san=()
# Each sanitizer builds into its own folder, so switching does not rebuild the other.
[ "$sanitizer" = address ] || san=(-s "$sanitizer" --target-dir "fuzz/target/san-$sanitizer")
rss_mb="${FUZZ_RSS_MB:-2048}"
timeout_s="${FUZZ_TIMEOUT_S:-30}"
work="${FUZZ_WORK:-fuzz/target/work-corpus}"
extra=()
if [ -n "${FUZZ_ARGS:-}" ]; then
  read -r -a extra <<<"$FUZZ_ARGS"
fi
# recover_dir builds its directories on a memory file system when there is one: recovery
# fsyncs, thousands of times a minute. A private folder, removed at the end, also takes the
# directory a crashing process could not remove.
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
  scratch="$(mktemp -d /dev/shm/fastrec-fuzz.XXXXXX)"
else
  scratch="$(mktemp -d)"
fi
trap 'rm -rf "$scratch"' EXIT
export FASTREC_FUZZ_DIR="$scratch"

results=results/fuzz
logs=fuzz/target/logs
mkdir -p "$results" "$logs"
sha="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
dirty=false
[ -z "$(git status --porcelain -- recovery fuzz 2>/dev/null)" ] || dirty=true
host="$(hostname 2>/dev/null || echo unknown)"

json_str() {
  local s="$1"
  s="${s//\\/\\\\}"
  s="${s//\"/\\\"}"
  printf '"%s"' "$s"
}

# Optimised, with debug assertions and overflow checks (cargo-fuzz's default), under
# AddressSanitizer: an arithmetic overflow on a crafted input is a finding too.
build=(cargo +nightly fuzz build "${san[@]}")
[ ${#targets[@]} -ne 1 ] || build+=("${targets[0]}")
echo "fuzz: building: ${build[*]}"
"${build[@]}" >"$logs/build.log" 2>&1 || {
  tail -n 30 "$logs/build.log" >&2
  echo "fuzz.sh: build failed (log: $logs/build.log)" >&2
  exit 2
}

status=0
for t in "${targets[@]}"; do
  mkdir -p "$work/$t" "fuzz/artifacts/$t"
  before="$(ls "fuzz/artifacts/$t")"
  flags=(-max_total_time="$seconds" -rss_limit_mb="$rss_mb" -malloc_limit_mb="$rss_mb" -timeout="$timeout_s"
    -print_final_stats=1 "${extra[@]}")
  # Whole recoveries end with threads still winding down (the rayon pool's workers, the
  # detached thread that unmaps the journal), whose memory LeakSanitizer's per-input check
  # reports as leaked; only recover_dir runs without it.
  [ "$t" != recover_dir ] || flags+=(-detect_leaks=0)
  cmd=(cargo +nightly fuzz run "${san[@]}" "$t" "$work/$t" "fuzz/corpus/$t" -- "${flags[@]}")
  log="$logs/$t-$(date -u +%Y%m%dT%H%M%SZ).log"
  echo "fuzz: $t for ${seconds}s: ${cmd[*]}"
  started="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  t0=$SECONDS
  rc=0
  "${cmd[@]}" >"$log" 2>&1 || rc=$?
  elapsed=$((SECONDS - t0))
  execs="$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)"
  if [ -z "$execs" ]; then
    # A crash ends the run before the final statistics: take the last status line.
    execs="$(grep -o '^#[0-9]*' "$log" | tail -n 1 | tr -d '#')"
  fi
  execs="${execs:-0}"
  new=()
  while IFS= read -r f; do
    [ -n "$f" ] || continue
    case "$f" in slow-unit-*) continue ;; esac
    grep -qxF -- "$f" <<<"$before" || new+=("$f")
  done < <(ls "fuzz/artifacts/$t")
  if [ ${#new[@]} -gt 0 ] || { [ "$rc" -ne 0 ] && [ "$execs" = 0 ]; }; then
    status=1
  fi
  if [ ${#new[@]} -eq 0 ] && [ "$rc" -ne 0 ]; then
    new=("exit status $rc, no artifact (log: $log)")
  fi
  findings="["
  for f in "${new[@]}"; do
    [ "$findings" = "[" ] || findings+=","
    findings+="$(json_str "$f")"
  done
  findings+="]"
  corpus="$(find "$work/$t" -type f | wc -l | tr -d ' ')"
  printf '{"date":%s,"git_sha":%s,"git_dirty":%s,"host":%s,"target":%s,"sanitizer":%s,"seconds":%s,"wall_seconds":%s,"executions":%s,"findings":%s,"corpus_files":%s,"command":%s}\n' \
    "$(json_str "$started")" "$(json_str "$sha")" "$dirty" "$(json_str "$host")" "$(json_str "$t")" "$(json_str "$sanitizer")" "$seconds" \
    "$elapsed" "$execs" "$findings" "$corpus" "$(json_str "FASTREC_FUZZ_DIR=<scratch> ${cmd[*]}")" >>"$results/runs.ndjson"
  if [ ${#new[@]} -gt 0 ]; then
    echo "fuzz: $t: $execs executions, FINDINGS: ${new[*]} (log: $log)"
  else
    echo "fuzz: $t: $execs executions, no findings"
  fi
done

# SUMMARY.md is derived from runs.ndjson alone, so it can be rebuilt from the committed lines.
awk -v out="$results/SUMMARY.md" '
  function field(line, key,   re, v) {
    re = "\"" key "\":"
    if (!match(line, re)) return ""
    v = substr(line, RSTART + RLENGTH)
    if (substr(v, 1, 1) == "\"") { v = substr(v, 2); sub(/".*/, "", v); return v }
    if (substr(v, 1, 1) == "[") { sub(/\].*/, "]", v); return v }
    sub(/[,}].*/, "", v)
    return v
  }
  {
    t = field($0, "target"); n = field($0, "executions") + 0; s = field($0, "seconds") + 0
    f = field($0, "findings")
    if (!(t in execs)) order[++count] = t
    execs[t] += n; secs[t] += s; runs[t]++; total += n
    if (f != "[]") { finds[t]++; list = list "\n| " field($0, "date") " | " t " | `" f "` | " field($0, "git_sha") " |" }
    last[t] = field($0, "date") " at " substr(field($0, "git_sha"), 1, 12)
    cmd[t] = field($0, "command")
  }
  END {
    print "# Fuzzing summary" > out
    print "" > out
    print "Generated by `scripts/fuzz.sh` from `runs.ndjson` (one line per run); do not edit by hand." > out
    print "See docs/FUZZING.md for the targets and how to run them." > out
    print "" > out
    print "| target | runs | seconds | executions | runs with findings | last run |" > out
    print "|---|---:|---:|---:|---:|---|" > out
    for (i = 1; i <= count; i++) {
      t = order[i]
      printf "| %s | %d | %d | %d | %d | %s |\n", t, runs[t], secs[t], execs[t], finds[t] + 0, last[t] > out
    }
    printf "| **total** | | | **%d** | | |\n", total > out
    print "" > out
    print "Reproduce a run (from the repository root; `<scratch>` is any empty folder, /dev/shm is fastest):" > out
    print "" > out
    for (i = 1; i <= count; i++) print "    " cmd[order[i]] > out
    print "" > out
    if (list == "") {
      print "No run found anything." > out
    } else {
      print "Runs with findings (inputs in `fuzz/artifacts/<target>/`; fixed ones are kept in `fuzz/regressions/<target>/`):" > out
      print "" > out
      print "| date | target | findings | git sha |" > out
      print "|---|---|---|---|" > out
      print substr(list, 2) > out
    }
  }
' "$results/runs.ndjson"
echo "fuzz: recorded in $results/runs.ndjson and $results/SUMMARY.md"
exit "$status"
