#!/usr/bin/env bash
# The rootfs build root (issue 17) on the shipped example, end to end:
#   doctor   `bitzel doctor --build-root rootfs` says rootfs mode can work here
#   A  checkout A, empty cache A: `bitzel rootfs lock` (CI makes its own lock), then a cold
#      build in rootfs mode; the build leaves the lock as it was; runqemu --check boots it
#   I  isolation, in busybox:do_compile's sandbox (devshell, native and bwrap): a marker
#      file put into the host's /usr is not visible; the root's own dpkg database (the
#      locked packages, which the host does not have) is
#   B  checkout B elsewhere, empty cache B, A's lock checked in: the root is built again
#      from the locked versions and the example cold again -> the same root digest, the
#      same action keys, a bit-identical BusyBox binary and cpio.gz
#   C  checkout A copied to another directory, cache A -> 100% hits
#   E  a lock pinning a version the archive lacks -> a clear error naming the lock
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
scripts/install-deps --test
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build --locked -p bitzel
case $CARGO_TARGET_DIR in /*) tdir=$CARGO_TARGET_DIR ;; *) tdir=$root/$CARGO_TARGET_DIR ;; esac
bin=$tdir/debug/bitzel
yml=examples/busybox-qemux86-64-rootfs.yml
lockname=examples/busybox-qemux86-64-rootfs.rootfs.lock

work=$(mktemp -d /tmp/bitzel-rootfs.XXXXXX)
# A copy: a rebuild of target/ while the suite runs must not pull the binary (and the
# sandbox helper beside it, which links no libpython, so it starts inside the root)
# from under a running build.
cp "$bin" "$work/bitzel"
cp "$tdir/debug/bitzel-helper" "$work/bitzel-helper"
bin=$work/bitzel
marker=/usr/share/bitzel-rootfs-marker.$$
cleanup() { rm -f "$marker"; rm -rf "$work"; }
trap cleanup EXIT
t0=$SECONDS
lap() { echo "    ($1: $((SECONDS - t0)) s so far)"; }

echo "--- doctor: can rootfs mode work here?"
"$bin" doctor --build-root rootfs

scripts/preseed-downloads "$work/downloads"
checkout() { # <dir>: the tracked files of this repository (no lock), plus the downloads
  mkdir -p "$1"
  git ls-files -z | tar --null -T - -cf - | tar -xf - -C "$1"
  rm -f "$1/$lockname"
  mkdir -p "$1/build"
  cp -al "$work/downloads" "$1/build/downloads"
}
field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
expect_eq() { [ "$1" = "$2" ] || { echo "FAILED: $3: got $1, expected $2" >&2; exit 1; }; }
keys() { find "$1/v1/ac" -type f -printf '%f\n' | sort; }
busybox_of() { # <cpio.gz> <out>: the BusyBox binary inside the image
  local d; d=$(mktemp -d "$work/cpio.XXXX")
  (cd "$d" && zcat "$1" | cpio -id --quiet bin/busybox) && cp "$d/bin/busybox" "$2"
}
image=build/tmp/deploy/images/qemux86-64/core-image-busybox-qemux86-64.cpio.gz

checkout "$work/a"
echo "--- A: lock, then a cold build on the locked root"
(cd "$work/a" && "$bin" rootfs lock "$yml" --cache-dir "$work/cache-a")
lock_sum=$(sha256sum < "$work/a/$lockname")
(cd "$work/a" && "$bin" rootfs show "$yml" --cache-dir "$work/cache-a")
(cd "$work/a" && "$bin" build "$yml" --cache-dir "$work/cache-a" --summary-json "$work/a.json")
cat "$work/a.json"
[ "$(field "$work/a.json" executed)" -gt 0 ] || { echo "FAILED: build A executed nothing" >&2; exit 1; }
expect_eq "$(sha256sum < "$work/a/$lockname")" "$lock_sum" "the lock after a build"
(cd "$work/a" && "$bin" runqemu --check "$yml")
lap A

echo "--- I: a task sees the root and nothing of the host's filesystem"
touch "$marker"
for sb in native bwrap; do
  printf '%s\n' \
    "test -e $marker && echo ROOTFS-MARKER-VISIBLE || echo ROOTFS-MARKER-HIDDEN" \
    'echo "ROOTFS-PACKAGES $(grep -c "^Package: " /var/lib/dpkg/status)"' \
    'test -e /usr/lib/x86_64-linux-gnu/perl-base && echo ROOTFS-ROOT-FILE-VISIBLE' \
    'test "$(readlink /bitzel/hosttools/gcc)" = /usr/bin/gcc && echo ROOTFS-TOOLS-IN-ROOT' \
    'exit' \
    | (cd "$work/a" && "$bin" devshell "$yml" busybox --cache-dir "$work/cache-a" --sandbox "$sb") \
    > "$work/devshell-$sb.log" 2>&1
  grep -q ROOTFS-MARKER-HIDDEN "$work/devshell-$sb.log" && grep -q ROOTFS-TOOLS-IN-ROOT "$work/devshell-$sb.log" \
    || { echo "FAILED: isolation ($sb):" >&2; cat "$work/devshell-$sb.log" >&2; exit 1; }
  locked=$(grep -c '^package ' "$work/a/$lockname")
  inside=$(grep -ao 'ROOTFS-PACKAGES [0-9]*' "$work/devshell-$sb.log" | tail -n1 | cut -d' ' -f2)
  host=$(grep -c '^Package: ' /var/lib/dpkg/status)
  expect_eq "$inside" "$locked" "packages in the task's /var/lib/dpkg/status ($sb)"
  [ "$inside" != "$host" ] || { echo "FAILED: the task's dpkg database looks like the host's ($host packages)" >&2; exit 1; }
  echo "isolation ($sb): host marker hidden; the task's dpkg database lists the $inside locked packages (the host has $host); tools link into the root"
done
rm -f "$marker"

echo "--- B: another checkout, another cache, A's lock checked in: everything cold again"
checkout "$work/b"
cp "$work/a/$lockname" "$work/b/$lockname"
(cd "$work/b" && "$bin" rootfs build "$yml" --cache-dir "$work/cache-b") | tee "$work/b-root.txt"
(cd "$work/b" && "$bin" build "$yml" --cache-dir "$work/cache-b" --summary-json "$work/b.json")
expect_eq "$(field "$work/b.json" executed)" "$(field "$work/a.json" executed)" "build B: tasks executed"
(cd "$work/a" && "$bin" rootfs show "$yml" --cache-dir "$work/cache-a") | grep '^root:' > "$work/a-root.txt"
(cd "$work/b" && "$bin" rootfs show "$yml" --cache-dir "$work/cache-b") | grep '^root:' > "$work/b-root2.txt"
expect_eq "$(cat "$work/b-root2.txt")" "$(cat "$work/a-root.txt")" "the root digest of build B"
keys "$work/cache-a" > "$work/a.keys"
keys "$work/cache-b" > "$work/b.keys"
diff "$work/a.keys" "$work/b.keys" || { echo "FAILED: the action keys of A and B differ" >&2; exit 1; }
cmp "$work/a/$image" "$work/b/$image" || { echo "FAILED: the cpio.gz of A and B differ" >&2; exit 1; }
busybox_of "$work/a/$image" "$work/a.busybox"
busybox_of "$work/b/$image" "$work/b.busybox"
cmp "$work/a.busybox" "$work/b.busybox" || { echo "FAILED: the BusyBox binaries of A and B differ" >&2; exit 1; }
echo "reproducible: $(wc -l < "$work/a.keys") action keys equal; cpio.gz $(sha256sum < "$work/a/$image" | cut -c1-16); busybox $(sha256sum < "$work/a.busybox" | cut -c1-16)"
lap B

echo "--- C: checkout A copied to another directory, cache A: 100% hits"
cp -a "$work/a" "$work/c"
rm -rf "$work/c/build/tmp"
(cd "$work/c" && "$bin" build "$yml" --cache-dir "$work/cache-a" --summary-json "$work/c.json")
expect_eq "$(field "$work/c.json" executed)" 0 "relocated build: tasks executed"

echo "--- E: a lock pinning a version the archive does not have"
cp "$work/a/$yml" "$work/a/examples/missing-version.yml"
sed 's/^package bc .*/package bc 0.0-bitzel-none/' "$work/a/$lockname" > "$work/a/examples/missing-version.rootfs.lock"
if (cd "$work/a" && "$bin" rootfs build examples/missing-version.yml --cache-dir "$work/cache-e") > "$work/e.log" 2>&1; then
  echo "FAILED: a lock with a missing version built" >&2; exit 1
fi
grep -q "a locked package version is not in the archive" "$work/e.log" \
  || { echo "FAILED: unclear error for a missing locked version:" >&2; cat "$work/e.log" >&2; exit 1; }
echo "missing version: $(grep -m1 'failed' "$work/e.log")"
lap E
echo "rootfs suite: ok in $((SECONDS - t0)) s"
