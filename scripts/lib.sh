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

# usage: executed_tasks <file of `bitzel build --json` output>
# The labels of the tasks that executed, sorted, on one line.
executed_tasks() {
  python3 - "$1" <<'PY'
import json, sys
ran = []
for line in open(sys.argv[1]):
    line = line.strip()
    if line.startswith("{"):
        e = json.loads(line)
        if e.get("event") == "task_finished" and e.get("outcome") == "executed":
            ran.append(e["task"])
print(" ".join(sorted(ran)))
PY
}

# usage: task_outcome <file of `bitzel build --json` output> <pn:do_task>
# The task's outcome (executed, cached, noexec, failed), or nothing.
task_outcome() {
  python3 - "$1" "$2" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    line = line.strip()
    if line.startswith("{"):
        e = json.loads(line)
        if e.get("event") in ("task_finished", "task_failed") and e.get("task") == sys.argv[2]:
            print(e.get("outcome", "failed"))
PY
}
