#!/usr/bin/env bash
# Issue 12: in `host` build-root mode a task's key covers what it can read
# from the host root. A real header under /usr/include, which only the
# compiler finds (the recipe never names it), is edited IN PLACE with its
# mtime restored (`touch -r`, as a careless package or tool might leave it):
#   1  cold build of testdata/hostroot (compiles against the header)
#   2  again -> nothing executed
#   3  header edited, mtime restored -> hostkey:do_compile re-ran, its log
#      shows the new value, and --explain names the input host-root
#   4  again -> nothing executed
# Needs root (writes /usr/include; removed again on exit).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib.sh
root=$PWD
if [ "$(id -u)" -ne 0 ]; then
  echo "FAIL: $0 needs root: it writes a header under /usr/include" >&2
  exit 1
fi
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build --locked -p bitzel
case $CARGO_TARGET_DIR in /*) tdir=$CARGO_TARGET_DIR ;; *) tdir=$root/$CARGO_TARGET_DIR ;; esac
bin=$tdir/debug/bitzel

header=/usr/include/bitzel-hostkey-test.h
[ ! -e "$header" ] || { echo "FAIL: $header already exists (left over? remove it by hand)" >&2; exit 1; }
work=$(mktemp -d /tmp/bitzel-hostroot.XXXXXX)
cleanup() { rm -f "$header"; rm -rf "$work"; }
trap cleanup EXIT
printf '#define BITZEL_HOSTKEY_VALUE 1111\n' > "$header"

field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
expect_eq() { [ "$1" = "$2" ] || { echo "FAILED: $3: got $1, expected $2" >&2; exit 1; }; }
build() { # <name> [extra args]: build the fixture, summary in $work/<name>.json
  local name=$1; shift
  "$bin" build testdata/hostroot/hostkey.yml --build-dir "$work/build" --cache-dir "$work/cache" \
    --summary-json "$work/$name.json" "$@" > "$work/$name.log" 2>&1 \
    || { echo "FAILED: build $name:" >&2; tail -30 "$work/$name.log" >&2; exit 1; }
  echo "build $name: executed $(field "$work/$name.json" executed), $(field "$work/$name.json" total_s) s"
}
compile_log=$work/build/tmp/work/hostkey/temp/log.do_compile

echo "--- 1: cold build"
build cold
grep -q "hostkey compiled: 1111" "$compile_log" \
  || { echo "FAILED: do_compile did not see the header:" >&2; cat "$compile_log" >&2; exit 1; }

echo "--- 2: nothing changed"
build noop1
expect_eq "$(field "$work/noop1.json" executed)" 0 "second build: tasks executed"

echo "--- 3: the header edited in place, its mtime restored"
touch -r "$header" "$work/mtime.ref"
ino=$(stat -c %i "$header")
# Same inode, same size, same mtime afterwards: only the content and ctime move.
printf '#define BITZEL_HOSTKEY_VALUE 2222\n' | dd of="$header" conv=notrunc status=none
touch -r "$work/mtime.ref" "$header"
expect_eq "$(stat -c %i "$header")" "$ino" "the header's inode (edited in place)"
expect_eq "$(stat -c %s "$header")" 34 "the header's size (unchanged)"
expect_eq "$(stat -c %y "$header")" "$(stat -c %y "$work/mtime.ref")" "the header's mtime (restored)"
grep -q 2222 "$header" || { echo "FAILED: the header was not edited" >&2; exit 1; }
build edited --explain --json
ran=$(executed_tasks "$work/edited.log")
echo "re-ran: $ran"
case " $ran " in *" hostkey:do_compile "*) ;; *) echo "FAILED: hostkey:do_compile did not re-run" >&2; exit 1 ;; esac
grep -q "hostkey compiled: 2222" "$compile_log" \
  || { echo "FAILED: the re-run did not compile against the edited header:" >&2; cat "$compile_log" >&2; exit 1; }
grep -q "input host-root changed" "$work/edited.log" \
  || { echo "FAILED: --explain did not name the host-root input:" >&2; tail -30 "$work/edited.log" >&2; exit 1; }

echo "--- 4: nothing changed since"
build noop2
expect_eq "$(field "$work/noop2.json" executed)" 0 "build after the edit: tasks executed"
echo "host root key: ok"
