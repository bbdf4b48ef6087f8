#!/usr/bin/env bash
# The cgroup v2 suite (crates/bitzel-sandbox/tests/cgroup_v2.rs, `#[ignore]`d tests) run for real
# inside a QEMU VM: Debian's own kernel (the package linux-image-amd64 depends on) booted with a
# pure cgroup v2 hierarchy (cgroup_no_v1=all) and a generated initramfs (busybox-static, bwrap,
# util-linux's setpriv, the host's sh and bash, the test binary, the sandbox helper and their
# shared libraries; every other command is a busybox applet).
# The host may well be cgroup v1 for memory/pids; the VM never is.
#
# In the VM the suite runs twice, each time as the only process of a fresh cgroup with the memory
# and pids controllers available:
#   root                     in /sys/fs/cgroup/bitzel-root, shared with a sleeping process, so
#                            bitzel cannot adopt it and falls back to the root cgroup
#   bitzeltest (1000:1000)   in /sys/fs/cgroup/bitzel-user, delegated to that user (the directory
#                            and its cgroup.procs, cgroup.subtree_control, cgroup.threads), which
#                            bitzel adopts
# (BITZEL_CGROUP_V2_EXPECT_BASE tells the tests which base each run must end up with).
# with the environment BITZEL_SANDBOX_HELPER=/opt/t/bitzel-sandbox-helper, BITZEL_CGROUP_V2_VM=1,
# TMPDIR, HOME, PATH=/bin:/usr/bin, RUST_BACKTRACE=1 (RUST_LOG passed on when set). Each run ends
# with a line `BITZEL-VM root rc=N` / `BITZEL-VM user rc=N` on the serial console; this script
# fails unless both say rc=0.
#
# usage: scripts/test.d/30-cgroup-v2-vm.sh [TEST-ARGS...]    (needs root; from anywhere)
#   TEST-ARGS are appended to the test binary's arguments (e.g. a test name filter).
# environment:
#   CGROUP_VM_TEST_EXE=/path   run this executable instead of building the cgroup_v2 tests
#                              (any program; a `#!/bin/sh` script runs under the host's sh)
#   CGROUP_VM_HELPER=/path     the helper to ship (default: ../bitzel-sandbox-helper next to the
#                              test binary's deps/ directory; optional with CGROUP_VM_TEST_EXE)
#   CGROUP_VM_TEST_ARGS        the test binary's arguments (default: --ignored --test-threads=1)
#   CGROUP_VM_EXTRA_BINS       more host executables to ship, with their libraries (space-separated
#                              names or paths; e.g. "ldd ip ls" lets tests/isolation.rs run there).
#                              busybox sh (the VM's init) runs its own applets before PATH; the
#                              host's sh, which tasks and scripts use, does not
#   CGROUP_VM_CACHE            kernel/busybox cache (default: build/vm-cache); the last serial
#                              console log is kept there as last-run.log
#   CGROUP_VM_ACCEL            auto (default: KVM, falling back to TCG, when /dev/kvm is writable
#                              and the CPU flags show vmx or svm; else TCG), kvm or tcg
#   CGROUP_VM_TIMEOUT          seconds for the whole VM run (default: 600)
#   CGROUP_VM_MEM              guest memory in MiB (default: 1024)
#   CGROUP_VM_VERBOSE=1        stream the serial console while the VM runs
#   CGROUP_VM_APPEND           more kernel command line (e.g. loglevel=7 to undo `quiet`)
set -euo pipefail
cd "$(dirname "$0")/../.."

fail() { echo "FAIL: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || fail "$0 needs root (mknod, ownership in the initramfs, apt-get download)"
for tool in qemu-system-x86_64 cpio dpkg-deb apt-get apt-cache ldd bwrap setpriv timeout tar; do
  command -v "$tool" >/dev/null || fail "$tool missing; run scripts/install-deps --test"
done

# --- the test binary and the helper --------------------------------------------------------
if [ -n "${CGROUP_VM_TEST_EXE:-}" ]; then
  exe=$CGROUP_VM_TEST_EXE
  [ -x "$exe" ] || fail "CGROUP_VM_TEST_EXE=$exe is not executable"
  helper=${CGROUP_VM_HELPER:-$(dirname "$exe")/../bitzel-sandbox-helper}
  [ -x "$helper" ] || { echo "note: no sandbox helper at $helper; shipping none"; helper=; }
else
  log=$(cargo test -p bitzel-sandbox --test cgroup_v2 --no-run 2>&1) || { echo "$log" >&2; exit 1; }
  exe=$(printf '%s\n' "$log" | sed -n 's/.*Executable tests\/cgroup_v2.rs (\(.*\))$/\1/p' | tail -n1)
  [ -x "$exe" ] || { echo "FAIL: could not find the cgroup_v2 test binary in:" >&2; echo "$log" >&2; exit 1; }
  helper=${CGROUP_VM_HELPER:-$(dirname "$exe")/../bitzel-sandbox-helper}
  [ -x "$helper" ] || fail "helper binary $helper missing"
fi
test_args=${CGROUP_VM_TEST_ARGS-"--ignored --test-threads=1"}

# --- kernel and busybox from the Debian archive, cached ------------------------------------
cache=${CGROUP_VM_CACHE:-build/vm-cache}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/bitzel-vm.XXXXXX")
trap 'rm -rf "$work"' EXIT
scratch=$work/dl
mkdir "$scratch"
# apt-get download runs as _apt when it can: make the scratch dir usable by _apt too.
chmod 0755 "$work" "$scratch"
! id _apt >/dev/null 2>&1 || chown _apt "$scratch"

kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[^ ]*-amd64\)$/\1/p' | head -n1 || true)
kver=
[ -z "$kpkg" ] || kver=$(apt-cache show --no-all-versions "$kpkg" 2>/dev/null | sed -n 's/^Version: //p' | head -n1 || true)
kwant=${kpkg:+${kpkg}_${kver}}
have_kernel() { [ -f "$cache/vmlinuz" ] && [ -f "$cache/overlay.ko" ] && [ -f "$cache/kernel.pkg" ]; }
if have_kernel && { [ -z "$kwant" ] || [ "$(cat "$cache/kernel.pkg")" = "$kwant" ]; }; then
  [ -n "$kwant" ] || echo "note: apt-cache knows no linux-image-amd64 dependency; reusing the cached kernel"
else
  preseeded=build/downloads/linux-image-amd64.deb
  if [ -f "$preseeded" ] && { [ -z "$kwant" ] || [ "$(cat "$preseeded.pkg" 2>/dev/null)" = "$kwant" ]; }; then
    deb=$preseeded
    kstamp=$(cat "$preseeded.pkg" 2>/dev/null || echo "unknown (from $preseeded)")
  else
    [ -n "$kpkg" ] || fail "apt-cache knows no linux-image-amd64 dependency (apt-get update?) and nothing is cached"
    echo "downloading $kpkg $kver"
    (cd "$scratch" && apt-get download -qq "$kpkg")
    debs=("$scratch/${kpkg}"_*.deb)
    deb=${debs[0]}
    kstamp=$kwant
  fi
  mkdir "$work/k"
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work/k" --wildcards './boot/vmlinuz-*' '*/kernel/fs/overlayfs/overlay.ko'
  vmlinuzes=("$work"/k/boot/vmlinuz-*)
  vmlinuz=${vmlinuzes[0]}
  overlay_ko=$(find "$work/k" -name overlay.ko | head -n1)
  { [ -f "$vmlinuz" ] && [ -f "$overlay_ko" ]; } || fail "no boot/vmlinuz-* or overlay.ko in $deb"
  cp "$vmlinuz" "$cache/vmlinuz.tmp" && mv "$cache/vmlinuz.tmp" "$cache/vmlinuz"
  cp "$overlay_ko" "$cache/overlay.ko.tmp" && mv "$cache/overlay.ko.tmp" "$cache/overlay.ko"
  basename "$vmlinuz" | sed 's/^vmlinuz-//' >"$cache/kernel.release"
  echo "$kstamp" >"$cache/kernel.pkg"
fi

bver=$(apt-cache show --no-all-versions busybox-static 2>/dev/null | sed -n 's/^Version: //p' | head -n1 || true)
bwant=${bver:+busybox-static_${bver}}
if [ -x "$cache/busybox" ] && [ -f "$cache/busybox.pkg" ] && { [ -z "$bwant" ] || [ "$(cat "$cache/busybox.pkg")" = "$bwant" ]; }; then
  :
else
  [ -n "$bwant" ] || fail "apt-cache knows no busybox-static (apt-get update?) and nothing is cached"
  echo "downloading busybox-static $bver"
  (cd "$scratch" && apt-get download -qq busybox-static)
  mkdir "$work/bb"
  debs=("$scratch"/busybox-static_*.deb)
  dpkg-deb -x "${debs[0]}" "$work/bb"
  bb=$work/bb/bin/busybox
  [ -x "$bb" ] || bb=$work/bb/usr/bin/busybox
  [ -x "$bb" ] || fail "no bin/busybox in busybox-static"
  cp "$bb" "$cache/busybox.tmp" && mv "$cache/busybox.tmp" "$cache/busybox"
  echo "$bwant" >"$cache/busybox.pkg"
fi
rm -rf "$scratch" "$work/k" "$work/bb"

# --- the initramfs ---------------------------------------------------------------------------
root=$work/root
mkdir -p "$root"/usr/bin "$root"/usr/sbin "$root"/usr/lib
# The host's top-level layout (merged /usr or not), with relative symlinks only.
for d in bin sbin lib lib64; do
  if [ -L "/$d" ]; then
    t=$(readlink "/$d")
    ln -s "${t#/}" "$root/$d"
    mkdir -p "$root/${t#/}"
  elif [ -d "/$d" ]; then
    mkdir -p "$root/$d"
  fi
done
mkdir -p "$root"/{proc,sys,dev,tmp,run,root,newroot,etc,opt/t,home/bitzeltest/tmp,lib/modules}
chmod 1777 "$root/tmp"
chmod 0700 "$root/root"

# copy_file PATH: the host file at PATH into the same path of the root, symlinks as symlinks
# (and their targets too). Directories are resolved on the host; the top-level symlinks above
# make the resolved path reachable under its other names as well.
copy_file() {
  local p=$1 d t
  d=$(realpath "$(dirname "$p")")
  p=$d/$(basename "$p")
  if [ -e "$root$p" ] || [ -L "$root$p" ]; then return 0; fi
  mkdir -p "$root$d"
  if [ -L "$p" ]; then
    t=$(readlink "$p")
    ln -s "$t" "$root$p"
    case $t in
      /*) copy_file "$t" ;;
      *) copy_file "$d/$t" ;;
    esac
  else
    cp -p "$p" "$root$p"
  fi
}
# copy_libs EXE: the shared libraries and the dynamic loader ldd lists (nothing for static or
# script executables).
copy_libs() {
  local l
  for l in $( (ldd "$1" 2>/dev/null || true) | awk '/=>/ { if ($3 ~ /^\//) print $3; next } $1 ~ /^\// { print $1 }'); do
    copy_file "$l"
  done
}
ship() { copy_file "$1"; copy_libs "$1"; }

# The host's /bin/sh (dash on Debian) and bash: tasks run `sh -c`, and Debian's busybox-static
# shell would run its own applets in preference to any executable in PATH.
ship /bin/sh
[ ! -x /bin/bash ] || ship /bin/bash
ship "$(command -v bwrap)"
setpriv=$(command -v setpriv)
ship "$setpriv"
for b in ${CGROUP_VM_EXTRA_BINS:-}; do
  p=$(command -v "$b") || fail "CGROUP_VM_EXTRA_BINS: $b not found"
  ship "$p"
done
cp "$exe" "$root/opt/t/cgroup_v2"
copy_libs "$exe"
if [ -n "$helper" ]; then
  cp "$helper" "$root/opt/t/bitzel-sandbox-helper"
  copy_libs "$helper"
fi
chmod 0755 "$root"/opt/t/*

# busybox and its applets, where no host file was shipped under that name.
cp "$cache/busybox" "$root/bin/busybox"
for a in $("$cache/busybox" --list-full); do
  [ -e "$root/$a" ] || [ -L "$root/$a" ] || { mkdir -p "$root/$(dirname "$a")"; ln -s /bin/busybox "$root/$a"; }
done
cp "$cache/overlay.ko" "$root/lib/modules/overlay.ko"
ldconfig -r "$root" 2>/dev/null || true

cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
bitzeltest:x:1000:1000:bitzel test user:/home/bitzeltest:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
bitzeltest:x:1000:
nogroup:x:65534:
EOF
printf '127.0.0.1 localhost\n::1 localhost\n' >"$root/etc/hosts"
echo bitzel-vm >"$root/etc/hostname"
chown -R 1000:1000 "$root/home/bitzeltest"
mknod -m 0600 "$root/dev/console" c 5 1
mknod -m 0666 "$root/dev/null" c 1 3

sq() { printf "'%s'" "${1//\'/\'\\\'\'}"; }
args=$test_args
for a in "$@"; do args="$args $(sq "$a")"; done
{
  echo "TEST_ARGS=$(sq "$args")"
  echo "HAVE_HELPER=$([ -n "$helper" ] && echo 1 || echo 0)"
  echo "RUST_LOG_VALUE=$(sq "${RUST_LOG:-}")"
  echo "SETPRIV=$(sq "$setpriv")"
} >"$root/opt/t/vm.env"

# Stage 1: pivot_root(2) refuses the initramfs rootfs, and the sandbox pivots; so copy
# everything into a tmpfs and switch_root into it.
cat >"$root/init" <<'EOF'
#!/bin/busybox sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t tmpfs -o mode=0755 tmpfs /newroot || { echo "BITZEL-VM stage1: tmpfs mount failed"; exec sh; }
for f in /*; do
  case $f in /newroot|/proc|/sys|/dev) continue ;; esac
  cp -a "$f" /newroot/
done
mkdir -p /newroot/proc /newroot/sys /newroot/dev
exec switch_root /newroot /init2
EOF

# Stage 2: PID 1 on the tmpfs root. Debian's busybox-static prefers its own applets to
# executables found in PATH (its setpriv cannot change uids): util-linux's setpriv is called
# by its path.
cat >"$root/init2" <<'EOF'
#!/bin/busybox sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o mode=0620,ptmxmode=0666 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t cgroup2 none /sys/fs/cgroup
# Kernel messages (overlayfs complaints, OOM reports) stay out of the test output; a failing
# run prints the tail of dmesg after its marker line.
dmesg -n 1
echo "+memory +pids" >/sys/fs/cgroup/cgroup.subtree_control
hostname bitzel-vm
ip link set lo up
insmod /lib/modules/overlay.ko
if [ -e /proc/sys/kernel/unprivileged_userns_clone ]; then
  echo 1 >/proc/sys/kernel/unprivileged_userns_clone
fi
. /opt/t/vm.env

echo
hv=$(dmesg | sed -n 's/.*Hypervisor detected: *//p' | head -n1)
echo "BITZEL-VM kernel=$(uname -r) hypervisor=${hv:-none} cgroup.controllers=\"$(cat /sys/fs/cgroup/cgroup.controllers)\" subtree_control=\"$(cat /sys/fs/cgroup/cgroup.subtree_control)\""

helper_env=
[ "$HAVE_HELPER" = 1 ] && helper_env=BITZEL_SANDBOX_HELPER=/opt/t/bitzel-sandbox-helper
log_env=
[ -n "$RUST_LOG_VALUE" ] && log_env="RUST_LOG=$RUST_LOG_VALUE"

# run LABEL CGROUP DIR COMMAND...: COMMAND plus TEST_ARGS, from DIR, as the only process of
# /sys/fs/cgroup/CGROUP (the shell moves itself there, then execs COMMAND).
run() {
  label=$1 cg=$2 dir=$3
  shift 3
  echo "BITZEL-VM ---- $label run (cgroup /sys/fs/cgroup/$cg, $*) ----"
  t0=$(date +%s)
  eval "set -- \"\$@\" $TEST_ARGS"
  (cd "$dir" && sh -c 'echo $$ >"$0" && exec "$@"' "/sys/fs/cgroup/$cg/cgroup.procs" \
    "$@")
  rc=$?
  echo "BITZEL-VM $label took $(( $(date +%s) - t0 ))s"
  echo "BITZEL-VM $label rc=$rc"
  [ "$rc" = 0 ] || { echo "BITZEL-VM ---- dmesg (tail) ----"; dmesg | tail -n 40; }
}

# root shares its cgroup with another process, so bitzel cannot adopt it (cgroup v2's
# no-internal-process rule) and must fall back to the root cgroup, which enables the controllers.
mkdir /sys/fs/cgroup/bitzel-root
sleep 100000 &
sleeper=$!
echo "$sleeper" >/sys/fs/cgroup/bitzel-root/cgroup.procs
run root bitzel-root /root \
  env -i HOME=/root TMPDIR=/tmp PATH=/bin:/usr/bin RUST_BACKTRACE=1 BITZEL_CGROUP_V2_VM=1 \
  BITZEL_CGROUP_V2_EXPECT_BASE=/sys/fs/cgroup $helper_env $log_env /opt/t/cgroup_v2
kill "$sleeper"

mkdir /sys/fs/cgroup/bitzel-user
chown 1000:1000 /sys/fs/cgroup/bitzel-user /sys/fs/cgroup/bitzel-user/cgroup.procs \
  /sys/fs/cgroup/bitzel-user/cgroup.subtree_control /sys/fs/cgroup/bitzel-user/cgroup.threads
run user bitzel-user /home/bitzeltest \
  "$SETPRIV" --reuid=1000 --regid=1000 --clear-groups -- \
  env -i HOME=/home/bitzeltest USER=bitzeltest LOGNAME=bitzeltest TMPDIR=/home/bitzeltest/tmp \
  PATH=/bin:/usr/bin RUST_BACKTRACE=1 BITZEL_CGROUP_V2_VM=1 \
  BITZEL_CGROUP_V2_EXPECT_BASE=/sys/fs/cgroup/bitzel-user $helper_env $log_env /opt/t/cgroup_v2

echo "BITZEL-VM done"
sync
sleep 1
poweroff -f
sleep 10
EOF
chmod 0755 "$root/init" "$root/init2"

initrd=$work/initramfs.cpio
(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet) >"$initrd"
echo "initramfs: $(du -m "$initrd" | cut -f1) MiB; kernel $(cat "$cache/kernel.release" 2>/dev/null || echo '?') ($(cat "$cache/kernel.pkg")), $(cat "$cache/busybox.pkg")"

# --- boot ------------------------------------------------------------------------------------
# KVM needs a writable /dev/kvm and hardware virtualisation (vmx/svm): a /dev/kvm without them
# (e.g. a paravirtual kvm-pvm host inside a VM) opens fine but hangs a stock kernel's boot.
case ${CGROUP_VM_ACCEL:-auto} in
  auto)
    accel=(-accel tcg)
    if [ -w /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo; then accel=(-accel kvm -accel tcg); fi ;;
  kvm) accel=(-accel kvm) ;;
  tcg) accel=(-accel tcg) ;;
  *) fail "CGROUP_VM_ACCEL must be auto, kvm or tcg" ;;
esac
vmlog=$cache/last-run.log
qemu=(timeout "${CGROUP_VM_TIMEOUT:-600}" qemu-system-x86_64 -m "${CGROUP_VM_MEM:-1024}" -smp 2 -cpu max "${accel[@]}"
  -nographic -no-reboot -nic none -kernel "$cache/vmlinuz" -initrd "$initrd"
  -append "console=ttyS0 panic=-1 quiet rdinit=/init cgroup_no_v1=all${CGROUP_VM_APPEND:+ $CGROUP_VM_APPEND}")
echo "booting: ${qemu[*]}"
t0=$(date +%s.%N)
rc=0
if [ "${CGROUP_VM_VERBOSE:-0}" = 1 ]; then
  "${qemu[@]}" </dev/null 2>&1 | tee "$vmlog" || rc=$?
else
  "${qemu[@]}" </dev/null >"$vmlog" 2>&1 || rc=$?
fi
t1=$(date +%s.%N)
dt=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}')
sed -i 's/\r$//' "$vmlog"

hv=$(sed -n 's/.*BITZEL-VM kernel=.* hypervisor=\([^ ]*\) .*/\1/p' "$vmlog" | head -n1)
case $hv in
  KVM) used=kvm ;;
  '') used="unknown (the VM printed no info line)" ;;
  none) used=tcg ;;
  *) used="tcg? (guest sees hypervisor: $hv)" ;;
esac
ok=1
grep -qx 'BITZEL-VM root rc=0' "$vmlog" || ok=0
grep -qx 'BITZEL-VM user rc=0' "$vmlog" || ok=0
if [ "$ok" = 1 ]; then
  grep -E '^(BITZEL-VM |test result:)' "$vmlog" || true
  echo "cgroup v2 VM: both runs passed; accelerator $used; boot+tests ${dt}s (serial log: $vmlog)"
else
  [ "${CGROUP_VM_VERBOSE:-0}" = 1 ] || cat "$vmlog"
  [ "$rc" != 124 ] || echo "FAIL: the VM ran out of time (${CGROUP_VM_TIMEOUT:-600}s)" >&2
  echo "FAIL: cgroup v2 VM: $(grep -E '^BITZEL-VM (root|user) rc=' "$vmlog" | sed 's/^BITZEL-VM //' | tr '\n' ' ')(qemu exit $rc; accelerator $used; ${dt}s; serial log: $vmlog)" >&2
  exit 1
fi
