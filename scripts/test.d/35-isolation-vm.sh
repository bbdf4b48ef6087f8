#!/usr/bin/env bash
# The sandbox isolation suite (crates/bitzel-sandbox/tests/isolation.rs, native + bubblewrap) run
# again inside the VM of 30-cgroup-v2-vm.sh: Debian's own (older) kernel with a pure cgroup v2
# hierarchy, as root and as an unprivileged user. It covers kernel paths this host's newer kernel
# never takes, e.g. overlayfs without `fsconfig lowerdir+` (before Linux 6.5 the legacy mount(2)
# fallback is the only way; 600-layer overlays included). Needs root.
set -euo pipefail
cd "$(dirname "$0")/../.."
log=$(cargo test -p bitzel-sandbox --test isolation --no-run 2>&1) || { echo "$log" >&2; exit 1; }
exe=$(printf '%s\n' "$log" | sed -n 's/.*Executable tests\/isolation.rs (\(.*\))$/\1/p' | tail -n1)
[ -x "$exe" ] || { echo "FAIL: could not find the isolation test binary in:" >&2; echo "$log" >&2; exit 1; }
helper="$(dirname "$exe")/../bitzel-sandbox-helper"
[ -x "$helper" ] || { echo "FAIL: helper binary $helper missing" >&2; exit 1; }
# ldd, ip and ls are host tools the isolation tests call inside their sandboxes. Two tests need
# what the VM's initramfs does not have (a C toolchain, perl and python3; a host /etc/shadow):
# they run on the host, as root (cargo test) and as a user (20-sandbox-unprivileged.sh).
CGROUP_VM_TEST_EXE="$exe" CGROUP_VM_HELPER="$helper" CGROUP_VM_EXTRA_BINS="ldd ip ls" \
  CGROUP_VM_TEST_ARGS="--test-threads=1 --skip toolchains_work_with_the_generated_etc --skip devshell_sees_no_host_secrets_and_maps_root_away" \
  exec bash scripts/test.d/30-cgroup-v2-vm.sh "$@"
