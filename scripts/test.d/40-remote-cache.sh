#!/usr/bin/env bash
# Remote cache (Bazel HTTP protocol) against a real nginx WebDAV server.
#
# 1. crate level: the remote-cache integration tests of bitzel-cache
#    (round trips blake3/sha256/instance, read-only, auth, and the fault
#    tests: server stopped mid-build, blob deleted / corrupted on the server,
#    a server that never answers, 5xx retries, refused credentials);
# 2. end to end, once `bitzel build` accepts --remote-cache: build the example
#    from checkout A with an empty local cache, then from checkout B (another
#    directory) with another empty local cache and the same remote: zero tasks
#    may execute on the second build, and the boot check must pass from the
#    restored artifacts. BITZEL_REMOTE_E2E=1 forces step 2 (fails if it cannot
#    run); BITZEL_REMOTE_E2E=0 skips it.
set -euo pipefail
cd "$(dirname "$0")/../.."

command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || {
  echo "40-remote-cache: nginx is missing; run scripts/install-deps --test" >&2; exit 1; }
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
"$nginx_bin" -V 2>&1 | grep -q -- --with-http_dav_module || {
  echo "40-remote-cache: $nginx_bin has no WebDAV module (http_dav_module)" >&2; exit 1; }

echo "--- crate level: bitzel-cache remote tests against nginx"
cargo test -p bitzel-cache --locked --test remote_nginx --test remote_faults --test remote_stream -- --test-threads=4

echo "--- benchmark smoke run (small sizes; full run: scripts/bench remote)"
BITZEL_BENCH_QUICK=1 cargo test -p bitzel-benches --locked --bench remote -- --nocapture

echo "--- end to end (two checkouts, two empty local caches, one remote): scripts/test.d/50-example-e2e.sh"
