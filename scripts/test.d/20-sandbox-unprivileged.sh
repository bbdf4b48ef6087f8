#!/usr/bin/env bash
# The sandbox isolation suite (native + bubblewrap backends) again, as an unprivileged user.
# Creates the user `bitzeltest` if missing, builds the test binary as root, copies it and the
# helper to a directory that user can read, and runs them with runuser. Needs root.
set -euo pipefail
cd "$(dirname "$0")/../.."
user=bitzeltest
if [ "$(id -u)" -ne 0 ]; then
  echo "FAIL: $0 needs root to create and switch to the user $user" >&2
  exit 1
fi
for tool in useradd runuser bwrap; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool missing; run scripts/install-deps --test" >&2; exit 1; }
done
id -u "$user" >/dev/null 2>&1 || useradd --system --create-home --shell /bin/sh "$user"

log=$(cargo test -p bitzel-sandbox --test isolation --no-run 2>&1) || { echo "$log" >&2; exit 1; }
exe=$(printf '%s\n' "$log" | sed -n 's/.*Executable tests\/isolation.rs (\(.*\))$/\1/p' | tail -n1)
[ -x "$exe" ] || { echo "FAIL: could not find the isolation test binary in:" >&2; echo "$log" >&2; exit 1; }
helper="$(dirname "$exe")/../bitzel-sandbox-helper"
[ -x "$helper" ] || { echo "FAIL: helper binary $helper missing" >&2; exit 1; }

dir=$(mktemp -d /tmp/bitzel-unpriv.XXXXXX)
trap 'rm -rf "$dir"' EXIT
cp "$exe" "$dir/isolation"
cp "$helper" "$dir/bitzel-sandbox-helper"
chmod 755 "$dir" "$dir/isolation" "$dir/bitzel-sandbox-helper"

echo "running the isolation suite as $user ($(id -u "$user"))"
cd "$dir"
runuser -u "$user" -- env -i \
  PATH=/usr/local/bin:/usr/bin:/bin \
  HOME="$(getent passwd "$user" | cut -d: -f6)" \
  TMPDIR=/tmp \
  BITZEL_SANDBOX_HELPER="$dir/bitzel-sandbox-helper" \
  RUST_BACKTRACE=1 \
  "$dir/isolation" --test-threads=2
