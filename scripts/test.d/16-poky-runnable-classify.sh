#!/usr/bin/env bash
# scripts/poky-runnable's classifier on recorded failures
# (testdata/poky-runnable): classes come from what a task said, never
# from its name. Needs no poky checkout and no build.
set -euo pipefail
cd "$(dirname "$0")/../.."
python3 testdata/poky-runnable/check-classify.py
