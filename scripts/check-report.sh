#!/usr/bin/env bash
# Checks results/report/index.html in a real headless browser (Debian's chromium):
#   - chromium loads it, dumps the DOM and takes a 1280x4000 screenshot, exiting 0;
#   - the DOM has the title, the claims table (a row per claim) and at least as many <svg>
#     elements as the newest run has plots (results/runs/<newest>/plots/*.svg), each in its
#     <figure id="plot-NAME">;
#   - the screenshot exists, has the requested size, and is not almost one colour (a small
#     standard-library PNG decoder counts the pixels that differ from the background).
#
# usage: scripts/check-report.sh [--render] [--results DIR] [--screenshot PATH]
#   --render        first re-render every run and the report with
#                   `cargo run --release --bin fastrec -- lab --render --results DIR`
#   --results DIR   the results directory (default: results/ of this checkout)
#   --screenshot P  where to keep the screenshot (default: DIR/report/screenshot.png when it is
#                   under 300 KB, else /tmp/fastrec-report-screenshot.png)
# Environment: CHROMIUM (the browser binary; default chromium), CHECK_TIMEOUT (seconds, 120).
# Install the browser on Debian with: apt-get install -y chromium
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
results="$root/results"
render=0
screenshot=""
while [ $# -gt 0 ]; do
    case "$1" in
        --render) render=1 ;;
        --results) results="$(cd "$2" && pwd)"; shift ;;
        --screenshot) screenshot="$2"; shift ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "check-report: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

fail() { echo "check-report: FAIL: $*" >&2; exit 1; }

if [ "$render" = 1 ]; then
    (cd "$root" && cargo run -q --release --bin fastrec -- lab --render --results "$results") || fail "rendering failed"
fi

page="$results/report/index.html"
[ -f "$page" ] || fail "$page does not exist (render it with --render or \`fastrec lab --render\`)"

browser="${CHROMIUM:-chromium}"
command -v "$browser" >/dev/null || fail "no $browser (apt-get install -y chromium, or set CHROMIUM)"
limit="${CHECK_TIMEOUT:-120}"

work="$(mktemp -d /tmp/check-report.XXXXXX)"
trap 'rm -rf "$work"' EXIT
flags=(--headless=new --no-sandbox --disable-gpu --hide-scrollbars --no-first-run --no-default-browser-check
       --user-data-dir="$work/profile")
url="file://$page"
start=$(date +%s%N)

rc=0
timeout "$limit" "$browser" "${flags[@]}" --dump-dom "$url" >"$work/dom.html" 2>"$work/dom.err" || rc=$?
[ "$rc" = 0 ] || { tail -5 "$work/dom.err" >&2; fail "chromium --dump-dom exited $rc"; }
rc=0
timeout "$limit" "$browser" "${flags[@]}" --screenshot="$work/shot.png" --window-size=1280,4000 "$url" \
    >"$work/shot.out" 2>"$work/shot.err" || rc=$?
[ "$rc" = 0 ] || { tail -5 "$work/shot.err" >&2; fail "chromium --screenshot exited $rc"; }
browser_ms=$(( ($(date +%s%N) - start) / 1000000 ))

python3 - "$results" "$work/dom.html" "$work/shot.png" <<'PY' || exit 1
import html.parser, json, os, struct, sys, zlib

results, dom_path, png_path = sys.argv[1:4]

def fail(msg):
    print(f"check-report: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)

# --- the newest run and its plots (the order of load_runs: env.started, then dir name) ---
runs_dir = os.path.join(results, "runs")
runs = []
if os.path.isdir(runs_dir):
    for d in os.listdir(runs_dir):
        p = os.path.join(runs_dir, d)
        if os.path.isfile(os.path.join(p, "env.json")) and os.path.isfile(os.path.join(p, "raw.ndjson")):
            with open(os.path.join(p, "env.json")) as f:
                runs.append((json.load(f).get("started", ""), d))
runs.sort(reverse=True)
plots = []
if runs:
    pdir = os.path.join(runs_dir, runs[0][1], "plots")
    if os.path.isdir(pdir):
        plots = sorted(f[:-4] for f in os.listdir(pdir) if f.endswith(".svg"))

# --- the DOM ---
class Dom(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.title = ""
        self.in_title = False
        self.svg = 0
        self.ids = set()
        self.table_stack = []
        self.claim_rows = 0
        self.claim_cells = 0
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "title":
            self.in_title = True
        elif tag == "svg":
            self.svg += 1
        elif tag == "table":
            self.table_stack.append(a.get("id", ""))
        elif tag == "tr" and self.table_stack and self.table_stack[-1] == "claims-table":
            self.claim_rows += 1
        elif tag == "td" and self.table_stack and self.table_stack[-1] == "claims-table":
            self.claim_cells += 1
    def handle_endtag(self, tag):
        if tag == "title":
            self.in_title = False
        elif tag == "table" and self.table_stack:
            self.table_stack.pop()
    def handle_data(self, data):
        if self.in_title:
            self.title += data

with open(dom_path, encoding="utf-8", errors="replace") as f:
    dom_text = f.read()
dom = Dom()
dom.feed(dom_text)
if "fastrec lab report" not in dom.title:
    fail(f"title is {dom.title!r}, expected 'fastrec lab report'")
if "claims-table" not in dom.ids:
    fail("no claims table (table#claims-table)")
if dom.claim_rows < 6 or dom.claim_cells < 25:
    fail(f"claims table has {dom.claim_rows} rows / {dom.claim_cells} cells; expected a header and 5 claims")
if dom.svg < len(plots):
    fail(f"{dom.svg} <svg> elements, the newest run has {len(plots)} plots")
missing = [p for p in plots if f"plot-{p}" not in dom.ids]
if missing:
    fail(f"plots not on the page: {', '.join(missing)}")
if runs and "runs-table" not in dom.ids:
    fail("no table of committed runs")

# --- the screenshot: a minimal PNG decoder (8-bit greyscale/RGB/RGBA, no interlace) ---
with open(png_path, "rb") as f:
    png = f.read()
if len(png) < 20_000:
    fail(f"screenshot is only {len(png)} bytes")
if png[:8] != b"\x89PNG\r\n\x1a\n":
    fail("screenshot is not a PNG")
pos, idat, ihdr = 8, [], None
while pos < len(png):
    (length,) = struct.unpack(">I", png[pos:pos + 4])
    kind = png[pos + 4:pos + 8]
    body = png[pos + 8:pos + 8 + length]
    if kind == b"IHDR":
        ihdr = struct.unpack(">IIBBBBB", body)
    elif kind == b"IDAT":
        idat.append(body)
    elif kind == b"IEND":
        break
    pos += 12 + length
if ihdr is None:
    fail("screenshot has no IHDR")
width, height, depth, ctype, _, _, interlace = ihdr
channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(ctype)
if depth != 8 or channels is None or interlace != 0:
    fail(f"unsupported PNG (depth {depth}, colour type {ctype}, interlace {interlace})")
if (width, height) != (1280, 4000):
    fail(f"screenshot is {width}x{height}, expected 1280x4000")
raw = zlib.decompress(b"".join(idat))
stride = width * channels
if len(raw) != height * (stride + 1):
    fail("screenshot data has the wrong length")

def add_bytes(a, b):
    """Bytewise (a + b) mod 256 of two equal-length byte strings, via big-int SWAR."""
    n = len(a)
    x, y = int.from_bytes(a, "big"), int.from_bytes(b, "big")
    low, high = int.from_bytes(b"\x7f" * n, "big"), int.from_bytes(b"\x80" * n, "big")
    return (((x & low) + (y & low)) ^ ((x ^ y) & high)).to_bytes(n, "big")

prev = bytes(stride)
bg = None
differing = 0
for r in range(height):
    ftype = raw[r * (stride + 1)]
    line = raw[r * (stride + 1) + 1:(r + 1) * (stride + 1)]
    if ftype == 0:
        cur = line
    elif ftype == 2:
        cur = add_bytes(line, prev)
    elif ftype in (1, 3, 4):
        cur = bytearray(line)
        bpp = channels
        for i in range(stride):
            left = cur[i - bpp] if i >= bpp else 0
            if ftype == 1:
                cur[i] = (cur[i] + left) & 0xFF
            elif ftype == 3:
                cur[i] = (cur[i] + ((left + prev[i]) >> 1)) & 0xFF
            else:
                up = prev[i]
                ul = prev[i - bpp] if i >= bpp else 0
                p = left + up - ul
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - ul)
                pred = left if pa <= pb and pa <= pc else (up if pb <= pc else ul)
                cur[i] = (cur[i] + pred) & 0xFF
        cur = bytes(cur)
    else:
        fail(f"bad PNG filter {ftype} in row {r}")
    if bg is None:
        bg = cur[:channels]  # the page's background, top left
        bg_row = bg * width
    if cur != bg_row:
        # per pixel: does any channel differ from the background?
        mask = 0
        for c in range(channels):
            table = bytes(0 if v == bg[c] else 1 for v in range(256))
            mask |= int.from_bytes(cur[c::channels].translate(table), "big")
        differing += bin(mask).count("1")
    prev = cur
frac = differing / (width * height)
print(f"check-report: screenshot {width}x{height}, {len(png)} bytes, {frac:.1%} of pixels differ from the background")
if frac < 0.02:
    fail(f"screenshot is almost uniformly one colour ({frac:.2%} non-background pixels)")
print(f"check-report: DOM: title {dom.title!r}, claims table with {dom.claim_rows - 1} claims, "
      f"{dom.svg} <svg> for {len(plots)} plots of {runs[0][1] if runs else 'no run'}")
PY

size=$(stat -c %s "$work/shot.png")
if [ -z "$screenshot" ]; then
    if [ "$size" -lt 307200 ]; then
        screenshot="$results/report/screenshot.png"
    else
        screenshot="/tmp/fastrec-report-screenshot.png"
    fi
fi
cp "$work/shot.png" "$screenshot"
echo "check-report: screenshot ($size bytes) at $screenshot; chromium took ${browser_ms} ms"
echo "check-report: OK"
