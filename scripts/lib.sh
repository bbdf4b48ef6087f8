# Shared helpers for scripts/*: timed stages and a summary.
# shellcheck shell=bash
STAGES=()
stage() {
  local name=$1; shift
  local t0=$(date +%s.%N)
  echo "==> [$name] $*"
  if "$@"; then
    local t1=$(date +%s.%N)
    local dt=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}')
    echo "<== [$name] ok in ${dt}s"
    STAGES+=("$(printf '%-40s %8ss  ok' "$name" "$dt")")
  else
    local rc=$?
    local t1=$(date +%s.%N)
    local dt=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}')
    echo "<== [$name] FAILED (exit $rc) after ${dt}s"
    STAGES+=("$(printf '%-40s %8ss  FAILED' "$name" "$dt")")
    summary
    exit "$rc"
  fi
}
summary() {
  echo
  echo "stage timings:"
  printf '  %s\n' "${STAGES[@]}"
}
