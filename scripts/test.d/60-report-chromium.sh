#!/usr/bin/env bash
# Issue 19: the HTML timing report opens in a browser, offline, without a
# script error, and draws one timeline bar per task that ran.
#   1  build testdata/report (--sandbox none) with --timings
#   2  headless Debian `chromium` (no network use) dumps the DOM after the
#      report's script ran: its <svg> must hold exactly one rect.bar per task
#      the record says started, one rect.bar.crit per critical-path task,
#      and the page marks itself rendered
#   3  a screenshot of the page is taken (kept in $BITZEL_REPORT_SHOTS if set)
#      and the browser's log must hold no "Uncaught" script error
# Needs root (chromium runs with --no-sandbox) and `chromium`
# (scripts/install-deps --test).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
if [ "$(id -u)" -ne 0 ]; then
  echo "FAIL: $0 needs root: chromium runs with --no-sandbox" >&2
  exit 1
fi
command -v chromium >/dev/null || { echo "FAIL: chromium is missing (scripts/install-deps --test)" >&2; exit 1; }
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build --locked -p bitzel
case $CARGO_TARGET_DIR in /*) tdir=$CARGO_TARGET_DIR ;; *) tdir=$root/$CARGO_TARGET_DIR ;; esac
bin=$tdir/debug/bitzel

work=$(mktemp -d /tmp/bitzel-report.XXXXXX)
trap 'rm -rf "$work"' EXIT

echo "--- 1: build with --timings"
BITZEL_BUILD_RECORDS=5 "$bin" --color never build testdata/report/project.yml --sandbox none \
  --build-dir "$work/build" --cache-dir "$work/cache" --timings > "$work/build.log" 2>&1 \
  || { echo "FAILED: build:" >&2; tail -30 "$work/build.log" >&2; exit 1; }
html=$(sed -n 's/^timings: //p' "$work/build.log")
case $html in /*) ;; *) html=$root/$html ;; esac
[ -f "$html" ] || { echo "FAILED: no report printed (got '$html'):" >&2; cat "$work/build.log" >&2; exit 1; }
record=${html%.html}.json
counts() { python3 - "$record" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(sum(1 for t in r["tasks"] if t["start_us"] is not None), len(r["critical_path"]), r["executed"])
PY
}
read -r want_bars want_crit want_exec < <(counts)
[ "$want_bars" -gt 0 ] || { echo "FAILED: the record holds no task that ran" >&2; exit 1; }
echo "report $html: $want_bars tasks ran, $want_crit on the critical path"

chrome=(chromium --headless --no-sandbox --disable-gpu --disable-background-networking
  --disable-component-update --disable-sync --no-first-run --disable-default-apps
  --disable-extensions --user-data-dir="$work/profile" --enable-logging=stderr --v=0)

echo "--- 2: the DOM after the script ran"
timeout 60 "${chrome[@]}" --virtual-time-budget=5000 --dump-dom "file://$html" \
  > "$work/dom.html" 2> "$work/dom.log" \
  || { echo "FAILED: chromium --dump-dom:" >&2; tail -30 "$work/dom.log" >&2; exit 1; }
read -r bars crit rendered executed < <(python3 - "$work/dom.html" <<'PY'
import re, sys
dom = open(sys.argv[1]).read()
svg = dom[dom.find("<svg"):dom.find("</svg>")]
rects = re.findall(r'<rect[^>]*class="([^"]*)"', svg)
bars = [c.split() for c in rects if "bar" in c.split()]
m = re.search(r'<body[^>]*data-rendered="(\d+)"', dom)
print(len(bars), sum(1 for c in bars if "crit" in c), m.group(1) if m else "none",
      sum(1 for c in bars if "o-executed" in c))
PY
)
[ "$bars" = "$want_bars" ] || { echo "FAILED: $bars timeline bars, expected $want_bars" >&2; exit 1; }
[ "$crit" = "$want_crit" ] || { echo "FAILED: $crit critical-path bars, expected $want_crit" >&2; exit 1; }
[ "$executed" = "$want_exec" ] || { echo "FAILED: $executed bars of executed tasks, expected $want_exec" >&2; exit 1; }
[ "$rendered" = "$want_bars" ] || { echo "FAILED: the page says it rendered '$rendered' bars" >&2; exit 1; }
echo "timeline: $bars bars ($executed executed tasks), $crit on the critical path"

echo "--- 3: screenshot, no script errors"
timeout 60 "${chrome[@]}" --virtual-time-budget=5000 --window-size=1280,900 \
  --screenshot="$work/report.png" "file://$html" > "$work/shot.out" 2> "$work/shot.log" \
  || { echo "FAILED: chromium --screenshot:" >&2; tail -30 "$work/shot.log" >&2; exit 1; }
[ -s "$work/report.png" ] || { echo "FAILED: no screenshot written" >&2; exit 1; }
head -c 8 "$work/report.png" | od -An -tx1 | grep -q "89 50 4e 47" \
  || { echo "FAILED: the screenshot is not a PNG" >&2; exit 1; }
if grep -h "Uncaught\|SyntaxError\|TypeError\|ReferenceError" "$work/dom.log" "$work/shot.log"; then
  echo "FAILED: script errors in the report (above)" >&2
  exit 1
fi
if [ -n "${BITZEL_REPORT_SHOTS:-}" ]; then
  mkdir -p "$BITZEL_REPORT_SHOTS"
  cp "$work/report.png" "$html" "$BITZEL_REPORT_SHOTS/"
  echo "screenshot kept in $BITZEL_REPORT_SHOTS"
fi
echo "OK: the report renders offline with $bars bars and no script error"
