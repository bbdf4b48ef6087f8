#!/usr/bin/env bash
# bitzel-cache tests that change file owners and so need root: layers
# materialised with CacheOptions::layer_owner (every entry, the layer root
# and implicitly created parents get the owner; symlinks themselves, not
# their targets) and existing layers re-owned on first use.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "$(id -u)" -ne 0 ]; then
  echo "FAIL: $0 needs root (it chowns files to other uids)" >&2
  exit 1
fi
cargo test -p bitzel-cache --locked --lib --test cache_api -- --ignored as_root_
