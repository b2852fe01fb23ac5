#!/usr/bin/env bash
# Captures what `fastrec recover --progress bar` draws on a terminal, frame by frame, and
# writes docs/PROGRESS-CAPTURE.md (or prints its body with `-`).
#
#   scripts/capture-progress.sh [OUT.md | -]
#
# Builds the release binary, generates crash states into a mktemp directory, and runs each
# recovery in a detached tmux pane of COLS x ROWS (a real pseudo-terminal, so indicatif
# draws), capturing the pane every INTERVAL seconds and keeping the frames that differ.
# Three runs:
#   default-warm  preset default, journal in the page cache, default settings
#   default-cold  preset default, journal and image evicted from the page cache,
#                 --io read --io-buffer 4K --workers 1 --image-io pwrite
#                 --progress-interval 100ms (slower, so more frames are mid-phase)
#   large-cold    preset large (about 3.5 GiB of journal), evicted, --io read --io-buffer 4K
#                 --progress-interval 100ms with the default workers and image I/O: seconds
#                 per phase, so the bars and the workers line are seen mid-phase
#                 (LARGE=0 skips it)
# KEEP=1 keeps the work directory (every frame, as captured). REV=HEAD (or any commit)
# builds that commit from `git archive` instead of the working tree.
# Needs tmux and python3 (eviction is fsync + posix_fadvise(DONTNEED), which only works on
# a file system with a page cache behind a device: run it where mktemp is not tmpfs, or set
# TMPDIR).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$ROOT/docs/PROGRESS-CAPTURE.md}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
COLS=${COLS:-120}
ROWS=${ROWS:-30}
INTERVAL=${INTERVAL:-0.05}
MAX_FRAMES=${MAX_FRAMES:-6}
LARGE=${LARGE:-1}
SEED=1
COLD_ARGS=(--io read --io-buffer 4K --workers 1 --image-io pwrite --progress-interval 100ms)
LARGE_ARGS=(--io read --io-buffer 4K --progress-interval 100ms)

command -v tmux >/dev/null || { echo "capture-progress: tmux is not installed" >&2; exit 1; }
command -v python3 >/dev/null || { echo "capture-progress: python3 is not installed" >&2; exit 1; }

WORK=$(mktemp -d)
SOCK=fastrec-capture-$$
cleanup() {
    tmux -L "$SOCK" kill-server 2>/dev/null || true
    if [[ "${KEEP:-0}" != 0 ]]; then
        echo "capture-progress: kept $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

# The binary: from the working tree, or (REV=HEAD, REV=<commit>) from `git archive` of a commit.
if [[ -n "${REV:-}" ]]; then
    SRC=$WORK/src
    mkdir -p "$SRC"
    git -C "$ROOT" archive "$REV" | tar -x -C "$SRC"
    # git archive stamps files with the commit's time, which can look older than a build of
    # other sources in the same target directory: make cargo rebuild the workspace's crates.
    find "$SRC" -type f -exec touch {} +
    SHA=$(git -C "$ROOT" rev-parse --short "$REV")
    DIRTY=0
else
    SRC=$ROOT
    SHA=$(git -C "$ROOT" rev-parse --short HEAD)
    DIRTY=$(git -C "$ROOT" --no-optional-locks status --porcelain --untracked-files=no | wc -l)
fi
(cd "$SRC" && cargo build --release --quiet -p fastrec --bin fastrec)
BIN=$CARGO_TARGET_DIR/release/fastrec

# Writes every file under the given paths to disk and drops it from the page cache.
evict() {
    python3 - "$@" <<'EOF'
import os, sys
for root in sys.argv[1:]:
    for d, _, names in os.walk(root):
        for n in names:
            fd = os.open(os.path.join(d, n), os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
EOF
}

# capture NAME ARGS...: runs `fastrec recover NAME ARGS...` in $WORK in a fresh tmux pane
# and leaves frames in $WORK/frames-NAME/ (NNNN-MS.txt, MS = milliseconds since start) and
# the screen after it exited in $WORK/frames-NAME/final.txt.
capture() {
    local name=$1
    shift
    local frames=$WORK/frames-$name
    mkdir -p "$frames"
    local runner=$WORK/run-$name.sh
    {
        echo "cd $(printf %q "$WORK")"
        echo "while [ ! -e $(printf %q "$frames/go") ]; do sleep 0.01; done"
        printf 'echo %q\n' "\$ fastrec recover $name $*"
        printf '%q recover %q' "$BIN" "$name"
        printf ' %q' "$@"
        echo
        echo "echo \$? > $(printf %q "$frames/rc")"
        echo "exec sleep 3600"
    } >"$runner"
    tmux -L "$SOCK" -f /dev/null new-session -d -s "$name" -x "$COLS" -y "$ROWS" "bash --norc --noprofile $(printf %q "$runner")"
    tmux -L "$SOCK" set-option -t "$name" status off >/dev/null
    sleep 0.2
    local start n=0 last="" cur ms
    start=$(date +%s%N)
    touch "$frames/go"
    while :; do
        cur=$(tmux -L "$SOCK" capture-pane -p -t "$name")
        if [[ "$cur" != "$last" ]]; then
            ms=$((($(date +%s%N) - start) / 1000000))
            n=$((n + 1))
            printf '%s\n' "$cur" >"$frames/$(printf %04d "$n")-$ms.txt"
            last=$cur
        fi
        [[ -e "$frames/rc" ]] && break
        sleep "$INTERVAL"
    done
    sleep 0.3
    tmux -L "$SOCK" capture-pane -p -t "$name" >"$frames/final.txt"
    tmux -L "$SOCK" kill-session -t "$name"
}

gen() {
    "$BIN" gen --out "$WORK/$1" --preset "$2" --seed "$SEED" >"$WORK/gen-$1.txt"
}

gen default-warm default
capture default-warm --progress bar

gen default-cold default
evict "$WORK/default-cold"
capture default-cold --progress bar "${COLD_ARGS[@]}"
rm -rf "$WORK/default-cold" "$WORK/default-warm"

runs=(default-warm default-cold)
if [[ "$LARGE" != 0 ]]; then
    gen large-cold large
    evict "$WORK/large-cold"
    capture large-cold --progress bar "${LARGE_ARGS[@]}"
    rm -rf "$WORK/large-cold"
    runs+=(large-cold)
fi

CPU=$(grep -m1 '^model name' /proc/cpuinfo | sed 's/^model name[[:space:]]*:[[:space:]]*//')
body=$(
    WORK=$WORK COLS=$COLS ROWS=$ROWS INTERVAL=$INTERVAL MAX_FRAMES=$MAX_FRAMES SHA=$SHA CPU=$CPU \
        NPROC=$(nproc) TMUX_VERSION=$(tmux -V) COLD_ARGS="${COLD_ARGS[*]}" LARGE_ARGS="${LARGE_ARGS[*]}" \
        DIRTY=$DIRTY REV=${REV:-} \
        python3 - "${runs[@]}" <<'EOF'
import os, re, sys

env = os.environ
work, runs = env["WORK"], sys.argv[1:]
max_frames = int(env["MAX_FRAMES"])
bar_re = re.compile(r"\[(\d+)/\d+\] (\S+) +\[[^\]]*\] +(\d+)%")

def strip(text):
    lines = [l.rstrip() for l in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)

def pick(frames):
    """Up to max_frames frames with a bar, each of a different phase, the most mid-phase one
    of each (frames without a bar are the empty screen before the first draw, or the final
    screen, shown on its own)."""
    by_phase = {}
    for ms, text in frames:
        m = bar_re.search(text)
        if not m:
            continue
        key = (int(m.group(1)), m.group(2))
        score = abs(int(m.group(3)) - 50)
        if key not in by_phase or score < by_phase[key][0]:
            by_phase[key] = (score, ms, text)
    chosen = sorted(by_phase.values(), key=lambda c: (c[0], c[1]))[:max_frames]
    return sorted(((ms, text) for _, ms, text in chosen), key=lambda c: c[0])

titles = {
    "default-warm": "preset `default`, warm page cache, default settings",
    "default-cold": "preset `default`, journal and image evicted from the page cache, `" + env["COLD_ARGS"] + "`",
    "large-cold": "preset `large`, journal and image evicted from the page cache, `" + env["LARGE_ARGS"] + "`",
}

out = []
w = out.append
w("# Progress bars, captured")
w("")
w("What `fastrec recover DIR --progress bar` draws on a terminal, captured from a detached tmux pane")
w(f"({env['TMUX_VERSION']}) of {env['COLS']} columns by {env['ROWS']} rows, status line off, sampled with")
w(f"`tmux capture-pane -p` every {float(env['INTERVAL']) * 1000:.0f} ms while the recovery ran; frames that differ from the previous")
w("sample were kept. Each run recovers a freshly generated crash state (`fastrec gen --preset P --seed 1`).")
w(f"At most {max_frames} frames per run are shown: for each phase seen on the bar, the frame closest to 50%")
w("(when more phases were seen, those whose frame is nearest 50% are kept);")
w("the time is milliseconds from the start of the command to the sample. The `$ fastrec ...` line")
w("is printed by the capture script, not by fastrec. The bars redraw at most 15 times a second, and at least every 100 ms.")
w("")
w(f"- machine: {env['CPU']}, {env['NPROC']} CPUs (`nproc`)")
dirty = int(env["DIRTY"])
w(f"- commit: `{env['SHA']}`" + (f" (built from the working tree, which had {dirty} tracked files changed)" if dirty else ""))
rev = env.get("REV", "")
w("- regenerate: `" + (f"REV={rev} " if rev else "") + "scripts/capture-progress.sh` (writes this file)")
w("")
for run in runs:
    d = os.path.join(work, "frames-" + run)
    names = sorted(n for n in os.listdir(d) if re.fullmatch(r"\d{4}-\d+\.txt", n))
    frames = [(int(n[5:-4]), strip(open(os.path.join(d, n)).read())) for n in names]
    frames = [f for f in frames if f[1]]
    rc = open(os.path.join(d, "rc")).read().strip()
    final = strip(open(os.path.join(d, "final.txt")).read())
    shown = pick(frames)
    w(f"## `{run}`: {titles.get(run, run)}")
    w("")
    w(f"{len(frames)} distinct frames captured, {len(shown)} shown; exit status {rc}.")
    w("")
    for ms, text in shown:
        w(f"At {ms} ms:")
        w("")
        w("```text")
        w(text)
        w("```")
        w("")
    w("Final screen:")
    w("")
    w("```text")
    w(final)
    w("```")
    w("")
print("\n".join(out).rstrip("\n"))
EOF
)

if [[ "$OUT" == - ]]; then
    printf '%s\n' "$body"
else
    printf '%s\n' "$body" >"$OUT"
    echo "capture-progress: wrote $OUT" >&2
fi
