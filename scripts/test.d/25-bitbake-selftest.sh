#!/usr/bin/env bash
# BitBake's own datastore and parser tests (bb/tests/data.py, parse.py from
# the bitbake-setup wheel's BitBake library, installed by
# scripts/install-deps --test) run against bitzel's datastore and parser.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=/var/cache/bitzel-test/venv
lib=$(ls -d "$venv"/lib/python3*/site-packages 2>/dev/null | head -n1)
if [ -z "$lib" ] || [ ! -d "$lib/bb/tests" ]; then
  echo "FAIL: no BitBake library in $venv (run scripts/install-deps --test)" >&2
  exit 1
fi
scripts/bitbake-selftest "$lib"
