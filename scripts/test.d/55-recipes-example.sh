#!/usr/bin/env bash
# The recipe suite (issue 14): real upstream projects through the core layer's
# classes, from Debian's source archive, with the native sandbox.
#   A  cold build of examples/recipes-qemux86-64.yml: GNU Hello (autotools),
#      cJSON (cmake + Ninja), GNU FriBidi (meson), embedfile-native (a build
#      tool of this layer) run by greeter's do_compile, whose binary holds
#      what it generated and links cJSON and FriBidi through pkg-config; the
#      image as tar.gz, cpio.gz and ext4. The image holds hello, greeter and
#      the libraries, never the -native tool; the ext4 image reads back.
#   B  the same again: nothing executes
#   N  embedfile.c changed (its binary changes, its output does not):
#      embedfile-native re-runs from do_unpack on, greeter re-runs the tasks
#      whose inputs changed (its native sysroot), and nothing else runs: not
#      the image, whose key holds no native layer
#   R  do_rootfs forced: the same image bytes (reproducible tar/cpio/ext4)
#   P  an unknown IMAGE_FSTYPES fails the parse naming the recipe and value
#   M  bitzel show: class-native/class-target in OVERRIDES, STAGING_BINDIR_NATIVE
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
source scripts/lib.sh
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build --locked -p bitzel
case $CARGO_TARGET_DIR in /*) tdir=$CARGO_TARGET_DIR ;; *) tdir=$root/$CARGO_TARGET_DIR ;; esac
bin=$tdir/debug/bitzel
for t in cmake ninja meson pkg-config mke2fs debugfs; do
  PATH=$PATH:/usr/sbin:/sbin command -v "$t" >/dev/null \
    || { echo "FAILED: $t is not installed (scripts/install-deps --test)" >&2; exit 1; }
done
# HOSTTOOLS are resolved in bitzel's PATH: the system's, where mke2fs lives.
export PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin

work=$(mktemp -d /tmp/bitzel-recipes.XXXXXX)
trap 'rm -rf "$work"' EXIT
t_start=$(date +%s)
lap() { echo "    ($(( $(date +%s) - t_start )) s so far)"; }

echo "--- downloads: Debian's orig tarballs, checked against the recipes' sha256"
scripts/preseed-downloads --recipes "$work/downloads"
mkdir -p "$work/a"
git ls-files -z | tar --null -T - -cf - | tar -xf - -C "$work/a"
mkdir -p "$work/a/build"
cp -al "$work/downloads" "$work/a/build/downloads"
yml=examples/recipes-qemux86-64.yml
field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
build() { # <summary> [args]: build in checkout A
  local sum=$1; shift
  (cd "$work/a" && "$bin" build "$yml" --cache-dir "$work/cache" --summary-json "$sum" "$@")
}
deploy="$work/a/build/tmp/deploy/images/qemux86-64"

echo "--- A: cold build"
build "$work/a.json" --json > "$work/a.events"
cat "$work/a.json"
ran=$(executed_tasks "$work/a.events")
for t in hello:do_configure hello:do_compile cjson:do_compile fribidi:do_compile \
         embedfile-native:do_compile greeter:do_compile example-image:do_rootfs; do
  case " $ran " in *" $t "*) ;; *) echo "FAILED: $t did not run in the cold build" >&2; exit 1 ;; esac
done
case " $ran " in *" embedfile:"*) echo "FAILED: the target embedfile was built; only embedfile-native is needed" >&2; exit 1 ;; esac
grep -q "Hello from bitzel's recipe suite (cJSON 1.7.15, FriBidi 1.0.8)" "$work/a/build/tmp/work/greeter/temp/log.do_compile" \
  || { echo "FAILED: greeter did not run against the sysroot's libraries:" >&2; cat "$work/a/build/tmp/work/greeter/temp/log.do_compile" >&2; exit 1; }
lap
for f in tar.gz cpio.gz ext4; do
  [ -s "$deploy/example-image-qemux86-64.$f" ] || { echo "FAILED: no example-image-qemux86-64.$f in $deploy" >&2; ls -la "$deploy" >&2; exit 1; }
done
tar -tzf "$deploy/example-image-qemux86-64.tar.gz" | sort > "$work/tar.list"
for f in ./usr/bin/hello ./usr/bin/greeter ./usr/include/cjson/cJSON.h ./usr/include/fribidi/fribidi.h ./etc/passwd; do
  grep -qx "$f" "$work/tar.list" || { echo "FAILED: $f is not in the tar.gz image" >&2; exit 1; }
done
grep -q '^./usr/lib/libcjson.so' "$work/tar.list" && grep -q '^./usr/lib/libfribidi.so' "$work/tar.list" \
  || { echo "FAILED: the libraries are not in the image" >&2; exit 1; }
if grep -q embedfile "$work/tar.list"; then
  echo "FAILED: the -native tool is inside the image:" >&2; grep embedfile "$work/tar.list" >&2; exit 1
fi
(cd "$work" && gzip -dc "$deploy/example-image-qemux86-64.cpio.gz" | cpio -it --quiet 2>/dev/null | sed 's|^\./||' | sort) > "$work/cpio.list"
# (cpio -t stops at the first trailer; /dev/console is a second archive after it)
grep -qx usr/bin/greeter "$work/cpio.list" && gzip -dc "$deploy/example-image-qemux86-64.cpio.gz" | grep -aq 'dev/console' \
  || { echo "FAILED: the cpio.gz image lacks usr/bin/greeter or dev/console" >&2; exit 1; }
/usr/sbin/debugfs -R 'ls -p /usr/bin' "$deploy/example-image-qemux86-64.ext4" 2>/dev/null | grep -q '/greeter/' \
  || { echo "FAILED: the ext4 image has no /usr/bin/greeter" >&2; exit 1; }
/usr/sbin/debugfs -R 'cat /usr/bin/hello' "$deploy/example-image-qemux86-64.ext4" 2>/dev/null > "$work/hello.from-ext4"
tar -xzf "$deploy/example-image-qemux86-64.tar.gz" -C "$work" ./usr/bin/hello
cmp "$work/hello.from-ext4" "$work/usr/bin/hello" || { echo "FAILED: hello in the ext4 image differs from the tar's" >&2; exit 1; }
echo "images: $(wc -l < "$work/tar.list") entries; hello, greeter and the libraries inside, embedfile not"

echo "--- B: again, nothing to do"
build "$work/b.json"
[ "$(field "$work/b.json" executed)" = 0 ] || { echo "FAILED: the second build executed tasks" >&2; cat "$work/b.json" >&2; exit 1; }
echo "no-op build: $(field "$work/b.json" total_s) s"
lap

echo "--- N: the -native tool's source changes (its binary does, its output does not)"
src="$work/a/examples/meta-recipes-example/recipes-devtools/embedfile/files/embedfile.c"
sha256sum "$deploy"/example-image-qemux86-64.* > "$work/images.before"
sed -i 's|usage: embedfile NAME < input > output.h|usage: embedfile NAME <input >output.h|' "$src"
(cd "$work/a" && "$bin" explain "$yml" --cache-dir "$work/cache") > "$work/n.explain"
grep -q '^embedfile-native:do_unpack' "$work/n.explain" \
  || { echo "FAILED: explain does not say embedfile-native:do_unpack would run:" >&2; cat "$work/n.explain" >&2; exit 1; }
if grep -q '^example-image:do_rootfs would run:' "$work/n.explain"; then
  echo "FAILED: explain says the image would run because of its own inputs" >&2; cat "$work/n.explain" >&2; exit 1
fi
build "$work/n.json" --json > "$work/n.events"
ran=$(executed_tasks "$work/n.events")
echo "re-ran: $ran"
for t in $ran; do
  case "$t" in
    embedfile-native:*|greeter:do_configure|greeter:do_compile|greeter:do_install|greeter:do_populate_sysroot) ;;
    *) echo "FAILED: $t re-ran after a change of embedfile.c only" >&2; exit 1 ;;
  esac
done
for t in embedfile-native:do_unpack embedfile-native:do_compile embedfile-native:do_populate_sysroot greeter:do_compile; do
  case " $ran " in *" $t "*) ;; *) echo "FAILED: $t did not re-run" >&2; exit 1 ;; esac
done
outcome=$(task_outcome "$work/n.events" example-image:do_rootfs)
[ "$outcome" = cached ] || { echo "FAILED: example-image:do_rootfs was '$outcome', not cached" >&2; exit 1; }
sha256sum "$deploy"/example-image-qemux86-64.* | cmp - "$work/images.before" \
  || { echo "FAILED: the images changed" >&2; exit 1; }
lap

echo "--- R: do_rootfs forced: the same bytes again"
build "$work/r.json" -c rootfs -f example-image
[ "$(field "$work/r.json" executed)" -ge 1 ] || { echo "FAILED: the forced do_rootfs did not run" >&2; exit 1; }
sha256sum "$deploy"/example-image-qemux86-64.* | cmp - "$work/images.before" \
  || { echo "FAILED: a second do_rootfs wrote other bytes:" >&2; sha256sum "$deploy"/example-image-qemux86-64.* "$work/images.before" >&2; exit 1; }
echo "images reproducible: $(cut -c1-12 "$work/images.before" | tr '\n' ' ')"

echo "--- P: an unknown image type is refused at parse time"
img="$work/a/examples/meta-recipes-example/recipes-core/images/example-image.bb"
cp "$img" "$work/img.orig"
sed -i 's|^IMAGE_FSTYPES = .*|IMAGE_FSTYPES = "tar.gz squashfs-xz"|' "$img"
set +e
(cd "$work/a" && "$bin" build "$yml" --cache-dir "$work/cache" --summary-json "$work/p.json") > "$work/p.log" 2>&1
rc=$?
set -e
[ "$rc" -ne 0 ] || { echo "FAILED: IMAGE_FSTYPES squashfs-xz was accepted" >&2; exit 1; }
grep -q "example-image: IMAGE_FSTYPES has 'squashfs-xz'" "$work/p.log" \
  || { echo "FAILED: the error does not name the recipe and the value:" >&2; cat "$work/p.log" >&2; exit 1; }
if grep -q 'task_started\|do_rootfs' "$work/p.log"; then
  echo "FAILED: tasks ran before the unknown type was refused:" >&2; cat "$work/p.log" >&2; exit 1
fi
echo "refused: $(grep -m1 "IMAGE_FSTYPES has" "$work/p.log")"
cp "$work/img.orig" "$img"

echo "--- M: the metadata a native variant sees"
(cd "$work/a" && "$bin" show "$yml" embedfile-native) > "$work/native.env"
(cd "$work/a" && "$bin" show "$yml" greeter) > "$work/target.env"
grep -q '^OVERRIDES=".*:class-native:' "$work/native.env" && grep -q '^OVERRIDES=".*:class-target:' "$work/target.env" \
  || { echo "FAILED: OVERRIDES lacks class-native / class-target" >&2; grep '^OVERRIDES=' "$work/native.env" "$work/target.env" >&2; exit 1; }
grep -q '^STAGING_BINDIR_NATIVE="/bitzel/sysroot-native/usr/bin"' "$work/target.env" \
  && grep -q '^bindir="/bitzel/sysroot-native/usr/bin"' "$work/native.env" \
  || { echo "FAILED: native paths" >&2; exit 1; }
echo "recipe suite: ok in $(( $(date +%s) - t_start )) s"
