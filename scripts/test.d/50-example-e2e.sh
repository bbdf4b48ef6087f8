#!/usr/bin/env bash
# End to end on the shipped example (issues 7 and 8), with a real nginx WebDAV
# remote cache:
#   A  cold build from checkout A, empty local cache A, remote attached
#      -> builds everything, uploads; runqemu --check boots it; `bitzel report`
#      renders its record: every task present, the critical path is the longest
#      path this script computes from the recorded durations and the graph
#   A' the same again -> zero tasks executed, time printed (target < 1 s)
#      bitzel devshell opens busybox:do_compile's sandbox (tree and PATH checked)
#   C  checkout A copied to another directory, cache A -> zero tasks executed
#   B  checkout B without any DL_DIR, empty local cache B, same remote,
#      BB_NO_NETWORK -> zero tasks executed, everything from the remote, no
#      download made or even read (fixed-output downloads: the keys hold the
#      declared checksums); runqemu --check boots the restored artifacts
#   E  checkout A with an empty DL_DIR, warm local cache -> zero tasks
#      executed, nothing downloaded
#   G  `bitzel fetch` in checkout B (no DL_DIR) with PREMIRRORS at a file://
#      directory fills DL_DIR; then, without the mirror, a forced unpack of
#      every recipe that has downloads succeeds offline
#   F  the BusyBox config fragment changed in A -> only busybox's tasks from
#      do_configure on re-run, and --explain names the changed input
#   X  bad paths, each a clear message and a non-zero exit, and the next good
#      build reuses everything that had completed: a failing compile (which
#      also shows that a task flag limit reaches the task), a malformed limit,
#      a broken patch, a missing download with BB_NO_NETWORK (an error only
#      once a task that reads it runs), a wrong sha256
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib.sh
root=$PWD
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build --locked -p bitzel
case $CARGO_TARGET_DIR in /*) tdir=$CARGO_TARGET_DIR ;; *) tdir=$root/$CARGO_TARGET_DIR ;; esac
bin=$tdir/debug/bitzel

work=$(mktemp -d /tmp/bitzel-e2e.XXXXXX)
dav="$work/nginx"
cleanup() { scripts/nginx-dav stop "$dav" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

echo "--- downloads (pre-seeded once, shared by every checkout)"
scripts/preseed-downloads "$work/downloads"
url=$(scripts/nginx-dav start "$dav")
echo "remote cache: $url"

checkout() { # <dir> [--no-downloads]: the tracked files of this repository, plus the downloads
  mkdir -p "$1"
  git ls-files -z | tar --null -T - -cf - | tar -xf - -C "$1"
  mkdir -p "$1/build"
  [ "${2:-}" = --no-downloads ] || cp -al "$work/downloads" "$1/build/downloads"
}
field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
build() { # <checkout> <cache> <summary> [extra args]
  local dir=$1 cache=$2 sum=$3; shift 3
  (cd "$dir" && "$bin" build examples/busybox-qemux86-64.yml --cache-dir "$cache" \
      --summary-json "$sum" "$@")
}
expect_eq() { [ "$1" = "$2" ] || { echo "FAILED: $3: got $1, expected $2" >&2; exit 1; }; }

checkout "$work/a"
echo "--- A: cold build with the remote attached"
build "$work/a" "$work/cache-a" "$work/a.json" --remote-cache "$url"
cat "$work/a.json"
[ "$(field "$work/a.json" executed)" -gt 0 ] || { echo "FAILED: build A executed nothing" >&2; exit 1; }
[ "$(field "$work/a.json" uploads)" -gt 0 ] || { echo "FAILED: build A uploaded nothing" >&2; exit 1; }
(cd "$work/a" && "$bin" runqemu --check examples/busybox-qemux86-64.yml)

echo "--- report: the record of build A and its HTML (every task; the critical path is the longest path)"
(cd "$work/a" && "$bin" report examples/busybox-qemux86-64.yml -o "$work/a-report.html") \
  || { echo "FAILED: bitzel report" >&2; exit 1; }
python3 - "$work/a/build/tmp/buildstats" "$work/a-report.html" <<'PY'
import json, os, sys
d, html_path = sys.argv[1], sys.argv[2]
records = sorted(f for f in os.listdir(d) if f.endswith(".json"))
# build A is the first build of checkout A: the oldest record.
rec = json.load(open(os.path.join(d, records[0])))
tasks = rec["tasks"]
dur = [(t["end_us"] - t["start_us"]) if t.get("start_us") is not None and t.get("end_us") is not None else 0 for t in tasks]
memo = {}
def best(i):
    if i not in memo:
        memo[i] = dur[i] + max([best(x) for x in tasks[i]["deps"]] or [0])
    return memo[i]
length = max(best(i) for i in range(len(tasks)))
path = rec["critical_path"]
assert rec["critical_path_us"] == length, (rec["critical_path_us"], length)
assert sum(dur[i] for i in path) == length, "the recorded path has the longest length"
for a, b in zip(path, path[1:]):
    assert a in tasks[b]["deps"], f"{tasks[a]['label']} -> {tasks[b]['label']} is not an edge"
html = open(html_path).read()
for t in tasks:
    row = f"<tr data-task><td>{t['label']}</td>"
    assert html.count(row) == 1, f"{t['label']} missing from the report"
print(f"report: {len(tasks)} tasks, critical path {length/1e6:.1f} s through {len(path)} tasks:",
      " -> ".join(tasks[i]["label"] for i in path))
PY

echo "--- A again: nothing to do"
build "$work/a" "$work/cache-a" "$work/a2.json"
cat "$work/a2.json"
expect_eq "$(field "$work/a2.json" executed)" 0 "second build of A: tasks executed"
echo "no-op build of the example: $(field "$work/a2.json" total_s) s in all (target < 1 s)"

echo "--- cache stats after the example build: one copy per blob on disk (layers hard-link the CAS)"
"$bin" cache stats --cache-dir "$work/cache-a"
"$bin" cache stats --json --cache-dir "$work/cache-a" > "$work/stats.json"
python3 - "$work/stats.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
mb = lambda b: f"{b / 1e6:.1f} MB"
print(f"example cache: blobs {mb(s['blob_bytes'])}, layers {mb(s['layer_bytes'])} (logical), "
      f"on disk {mb(s['disk_bytes'])}, disk per blob {s['disk_per_blob']:.3f}")
if s["disk_per_blob"] > 1.1:
    sys.exit(f"FAILED: on-disk size is {s['disk_per_blob']:.3f}x the distinct blobs (want <= 1.1)")
PY

echo "--- devshell: a shell in busybox:do_compile's sandbox (work tree, hermetic PATH, no host secrets, not host root)"
# /etc/shadow must be absent or unreadable, and the shell's uid 0 must map to a non-zero host
# uid (this suite runs as root in CI: the sandbox maps root to an unprivileged range).
printf '%s\n' \
  'test -f .config && test -f Makefile && echo DEVSHELL-TREE-OK' \
  'test "$PATH" = /bitzel/sysroot-native/usr/bin:/bitzel/sysroot-native/usr/sbin:/bitzel/hosttools && ! command -v curl && ! command -v apt-get && echo DEVSHELL-PATH-OK' \
  'test ! -r /etc/shadow && echo DEVSHELL-SHADOW-OK' \
  'read inside outside count < /proc/self/uid_map; echo "DEVSHELL-UIDMAP $inside $outside"' \
  'exit' \
  | (cd "$work/a" && "$bin" devshell examples/busybox-qemux86-64.yml busybox --cache-dir "$work/cache-a") > "$work/devshell.log" 2>&1
grep -q DEVSHELL-TREE-OK "$work/devshell.log" && grep -q DEVSHELL-PATH-OK "$work/devshell.log" \
  && grep -q DEVSHELL-SHADOW-OK "$work/devshell.log" \
  || { echo "FAILED: devshell:" >&2; cat "$work/devshell.log" >&2; exit 1; }
# (the shell's prompt, on stderr, may precede the line)
read -r _ inside outside <<<"$(grep -ao 'DEVSHELL-UIDMAP [0-9]* [0-9]*' "$work/devshell.log" | tail -n1)"
[ "$inside" = 0 ] && [ -n "$outside" ] && [ "$outside" != 0 ] \
  || { echo "FAILED: devshell uid 0 maps to host uid '${outside}' (want non-zero):" >&2; cat "$work/devshell.log" >&2; exit 1; }
echo "devshell: ok (uid 0 inside is host uid $outside)"

echo "--- C: checkout A copied elsewhere, same cache"
cp -a "$work/a" "$work/c"
rm -rf "$work/c/build/tmp"
build "$work/c" "$work/cache-a" "$work/c.json"
expect_eq "$(field "$work/c.json" executed)" 0 "build of the copied checkout: tasks executed"

echo "--- E: checkout A with an empty DL_DIR, warm local cache"
mv "$work/a/build/downloads" "$work/a-downloads.saved"
mkdir "$work/a/build/downloads"
build "$work/a" "$work/cache-a" "$work/e.json"
expect_eq "$(field "$work/e.json" executed)" 0 "build with an empty DL_DIR: tasks executed"
expect_eq "$(field "$work/e.json" downloads_done)" 0 "build with an empty DL_DIR: downloads"
[ "$(field "$work/e.json" downloads_avoided)" -ge 2 ] || { echo "FAILED: build E avoided fewer than 2 downloads" >&2; exit 1; }
[ -z "$(ls -A "$work/a/build/downloads")" ] || { echo "FAILED: build E put something into DL_DIR:" >&2; ls -A "$work/a/build/downloads" >&2; exit 1; }
rmdir "$work/a/build/downloads"
mv "$work/a-downloads.saved" "$work/a/build/downloads"

echo "--- B: second checkout without DL_DIR, empty local cache, same remote (BB_NO_NETWORK)"
checkout "$work/b" --no-downloads
grep -q '^    BB_NO_NETWORK = "1"$' "$work/b/examples/busybox-qemux86-64.yml" \
  || { echo "FAILED: the example no longer sets BB_NO_NETWORK" >&2; exit 1; }
build "$work/b" "$work/cache-b" "$work/b.json" --remote-cache "$url"
cat "$work/b.json"
expect_eq "$(field "$work/b.json" executed)" 0 "build B: tasks executed"
expect_eq "$(field "$work/b.json" downloads_done)" 0 "build B: downloads"
[ "$(field "$work/b.json" downloads_avoided)" -ge 2 ] || { echo "FAILED: build B avoided fewer than 2 downloads" >&2; exit 1; }
[ ! -e "$work/b/build/downloads" ] || [ -z "$(ls -A "$work/b/build/downloads")" ] \
  || { echo "FAILED: build B put something into DL_DIR:" >&2; ls -A "$work/b/build/downloads" >&2; exit 1; }
[ "$(field "$work/b.json" remote_hits)" -gt 0 ] || { echo "FAILED: build B had no remote hits" >&2; exit 1; }
echo "remote-only no-op build of the example (empty local cache, no DL_DIR): $(field "$work/b.json" total_s) s in all, $(field "$work/b.json" bytes_downloaded) bytes downloaded (target < 2 s)"
(cd "$work/b" && "$bin" runqemu --check examples/busybox-qemux86-64.yml)

echo "--- G: bitzel fetch fills an empty DL_DIR from a file:// premirror; an offline build then uses it"
yml="$work/b/examples/busybox-qemux86-64.yml"
cp "$yml" "$work/yml.orig"
printf '    PREMIRRORS = "https?://.*/.* file://%s/ file://.* file://%s/"\n' "$work/downloads" "$work/downloads" >> "$yml"
(cd "$work/b" && "$bin" fetch examples/busybox-qemux86-64.yml) 2> "$work/fetch.log" \
  || { echo "FAILED: bitzel fetch:" >&2; cat "$work/fetch.log" >&2; exit 1; }
cat "$work/fetch.log"
for f in busybox-1.35.0.tar.bz2 linux-image-amd64.deb; do
  cmp "$work/downloads/$f" "$work/b/build/downloads/$f" || { echo "FAILED: bitzel fetch did not bring $f" >&2; exit 1; }
done
cp "$work/yml.orig" "$yml"
(cd "$work/b" && "$bin" build examples/busybox-qemux86-64.yml busybox linux-debian -c unpack -f \
    --cache-dir "$work/cache-b" --summary-json "$work/g.json") > "$work/g.log" 2>&1 \
  || { echo "FAILED: offline unpack after bitzel fetch:" >&2; tail -20 "$work/g.log" >&2; exit 1; }
expect_eq "$(field "$work/g.json" downloads_done)" 0 "offline build after bitzel fetch: downloads"
[ "$(field "$work/g.json" executed)" -ge 2 ] || { echo "FAILED: the forced unpacks did not run" >&2; exit 1; }
echo "bitzel fetch then offline unpack: ok"

echo "--- F: change only the BusyBox config fragment"
frag="$work/a/examples/meta-busybox-example/recipes-core/busybox/files/static.cfg"
printf '# CONFIG_CAL is not set\n' >> "$frag"
build "$work/a" "$work/cache-a" "$work/f.json" --explain --json > "$work/f.events"
ran=$(executed_tasks "$work/f.events")
echo "re-ran: $ran"
for t in $ran; do
  case "$t" in
    busybox:do_configure|busybox:do_compile|busybox:do_install|busybox:do_populate_sysroot|core-image-busybox:*) ;;
    *) echo "FAILED: $t re-ran after a change of the config fragment only" >&2; exit 1 ;;
  esac
done
case " $ran " in *" busybox:do_configure "*) ;; *) echo "FAILED: busybox:do_configure did not re-run" >&2; exit 1 ;; esac
grep -q "file:static.cfg" "$work/f.events" || { echo "FAILED: --explain did not name file:static.cfg" >&2; exit 1; }

bb="$work/a/examples/meta-busybox-example/recipes-core/busybox/busybox_1.35.0.bb"
cp "$bb" "$work/bb.orig"
expect_fail() { # <name> <pattern>: build A must fail and its output match
  set +e
  (cd "$work/a" && "$bin" build examples/busybox-qemux86-64.yml --cache-dir "$work/cache-a") > "$work/$1.log" 2>&1
  local rc=$?
  set -e
  [ "$rc" -ne 0 ] || { echo "FAILED: $1 did not fail the build" >&2; exit 1; }
  grep -q -- "$2" "$work/$1.log" || { echo "FAILED: $1: no '$2' in:" >&2; tail -20 "$work/$1.log" >&2; exit 1; }
  echo "$1: exit $rc; $(grep -m1 -- "$2" "$work/$1.log")"
}
good_again() { # the restored recipe builds with zero tasks executed
  cp "$work/bb.orig" "$bb"
  build "$work/a" "$work/cache-a" "$work/good.json"
  expect_eq "$(field "$work/good.json" executed)" 0 "good build after $1: tasks executed"
}

echo "--- X1: a failing compile (under a task limit, which the task sees)"
printf 'do_compile[nofile] = "333"\ndo_compile:append() {\n    echo "nofile=$(ulimit -n)"\n    echo "deliberate failure" >&2; false\n}\n' >> "$bb"
expect_fail failing-compile "task busybox:do_compile failed"
grep -q "deliberate failure" "$work/failing-compile.log" \
  || { echo "FAILED: the failing task's log tail was not shown" >&2; exit 1; }
grep -qF 'of run.do_compile: `echo "deliberate failure" >&2; false`; run script: ' "$work/failing-compile.log" \
  || { echo "FAILED: the failure did not name the failing command" >&2; tail -20 "$work/failing-compile.log" >&2; exit 1; }
grep -q "nofile=333" "$work/failing-compile.log" \
  || { echo "FAILED: do_compile[nofile] did not reach the task" >&2; tail -20 "$work/failing-compile.log" >&2; exit 1; }
good_again failing-compile

echo "--- X1b: a malformed task limit names the flag"
printf 'do_compile[memory-max] = "lots"\n' >> "$bb"
expect_fail bad-limit 'do_compile\[memory-max\] = "lots"'
good_again bad-limit

echo "--- X2: a broken patch"
mkdir -p "$(dirname "$bb")/files"
printf -- '--- a/Makefile\n+++ b/Makefile\n@@ -1,3 +1,3 @@\n-this line is not in the file\n+neither is this one\n context\n' \
  > "$(dirname "$bb")/files/broken.patch"
sed -i 's|^SRC_URI = "\(.*\)"$|SRC_URI = "\1 file://broken.patch"|' "$bb"
expect_fail broken-patch "do_patch: broken.patch does not apply"
good_again broken-patch

echo "--- X3: a missing download with BB_NO_NETWORK: no error while every task reading it is cached"
mv "$work/a/build/downloads/busybox-1.35.0.tar.bz2" "$work/tarball.saved"
good_again missing-download-cached
set +e
(cd "$work/a" && "$bin" build examples/busybox-qemux86-64.yml busybox -c unpack -f --cache-dir "$work/cache-a") > "$work/missing-download.log" 2>&1
rc=$?
set -e
[ "$rc" -ne 0 ] || { echo "FAILED: a forced unpack without its download did not fail" >&2; exit 1; }
grep -q "busybox:do_unpack: .*BB_NO_NETWORK is set and it is not in DL_DIR" "$work/missing-download.log" \
  || { echo "FAILED: missing download: no BB_NO_NETWORK message naming do_unpack:" >&2; tail -20 "$work/missing-download.log" >&2; exit 1; }
echo "missing-download: exit $rc; $(grep -m1 "BB_NO_NETWORK is set" "$work/missing-download.log")"
mv "$work/tarball.saved" "$work/a/build/downloads/busybox-1.35.0.tar.bz2"
good_again missing-download

echo "--- X: a wrong sha256 stops the build with a clear message"
recipe="$work/b/examples/meta-busybox-example/recipes-core/busybox/busybox_1.35.0.bb"
sed -i 's/^SRC_URI\[sha256sum\] = "f/SRC_URI[sha256sum] = "0/' "$recipe"
rm -f "$work/b/build/downloads/busybox-1.35.0.tar.bz2.done"
set +e
(cd "$work/b" && "$bin" build examples/busybox-qemux86-64.yml --cache-dir "$work/cache-b") > "$work/x.log" 2>&1
rc=$?
set -e
[ "$rc" -ne 0 ] || { echo "FAILED: a wrong sha256 did not fail the build" >&2; exit 1; }
grep -q "checksum mismatch.*expected sha256 0aeeb244" "$work/x.log" \
  || { echo "FAILED: no checksum message naming the expected sum:" >&2; cat "$work/x.log" >&2; exit 1; }
grep -m1 "checksum mismatch" "$work/x.log"
echo "example end to end: ok"
