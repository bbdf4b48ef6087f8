#!/usr/bin/env bash
# Remote execution on a real REAPI engine: BuildGrid (PyPI, pinned; PostgreSQL
# from Debian) and two `bitzel worker`s, all on 127.0.0.1.
#
# 1. checkout A, empty local cache: the example built through the engine
#    (--remote-executor, instance `main`); the engine ran the tasks (jobs
#    counted per worker from its database); `bitzel runqemu --check` boots it;
#    its artifacts are bit-identical to a local build's (checkout L); only the
#    outputs read here (deployed files, layers of local tasks) are downloaded:
#    the bytes are printed beside what an eager download would have been;
# 2. checkout B, empty local cache, same engine: executes 0 tasks (the
#    engine's action cache answers every key) and, again, downloads only the
#    outputs it reads (the deployed files), not every output of every hit;
# 3. instance `fresh` (its own CAS and action cache): one worker is SIGKILLed
#    while it holds a running lease of busybox up to do_configure; the build
#    still succeeds (the engine requeues the lease after the bot's keepalive);
# 4. a worker whose build root differs (--root-path) refuses work with a reason.
#
# Between 2 and 3, the engine is restarted under the two connected workers,
# which then run the tasks of a build made after the restart; then instance
# `secure` (TLS, a JWT on every call) runs a small build through a worker
# that also speaks TLS with a token, and a bad token is refused clearly.
#
# Stage B also builds a checkout with no downloads at all, which must execute
# 0 tasks and download nothing (fixed-output downloads are keyed by their
# declared checksums, so no task needs their bytes).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
. scripts/lib.sh
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
case $CARGO_TARGET_DIR in /*) tdir=$CARGO_TARGET_DIR ;; *) tdir=$root/$CARGO_TARGET_DIR ;; esac
bin=$tdir/debug/bitzel

work=$(mktemp -d /tmp/bitzel-rx.XXXXXX)
chmod 755 "$work" # PostgreSQL runs as `postgres` under it
bg=$work/buildgrid
port=$((50100 + RANDOM % 800))
engine=grpc://127.0.0.1:$port
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  scripts/buildgrid stop "$bg" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

fail() { echo "FAILED: $*" >&2; exit 1; }
field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
checkout() { # <dir> [nodl]
  mkdir -p "$1"
  git ls-files -z | tar --null -T - -cf - | tar -xf - -C "$1"
  mkdir -p "$1/build"
  [ "${2:-}" = nodl ] || cp -al "$work/downloads" "$1/build/downloads"
}
build() { # <checkout> <cache> <summary> [extra args]
  local dir=$1 cache=$2 sum=$3; shift 3
  (cd "$dir" && "$bin" build examples/busybox-qemux86-64.yml --cache-dir "$cache" \
      --summary-json "$sum" "$@")
}
worker() { # <name> [extra args]: starts a worker, records its pid in $work/<name>.pid
  local name=$1; shift
  setsid "$bin" -v worker --engine "${worker_engine:-$engine}" --cache-dir "$work/$name" --bot-id "$name" "$@" \
    > "$work/$name.log" 2>&1 < /dev/null &
  echo $! > "$work/$name.pid"
  pids+=("$!")
}

# (stage runs each step under `if`, where set -e does not apply: every
# command that may fail says `|| return`.)
setup() {
  scripts/buildgrid install || return
  cargo build --locked -p bitzel || return
  scripts/preseed-downloads "$work/downloads" || return
  scripts/buildgrid start "$bg" "$port" || return
  worker w1 --instance main
  worker w2 --instance main
}
stage "setup: BuildGrid, two workers, downloads" setup

on_demand() { # <checkout name>: downloaded bytes below what every output would be
  local lazy eager deployed
  lazy=$(field "$work/$1.json" remote_exec_bytes_downloaded)
  eager=$(field "$work/$1.json" remote_exec_bytes_eager)
  deployed=$(find "$work/$1/build/tmp/deploy" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')
  echo "checkout $1: bytes downloaded from the engine: $lazy (deployed files: $deployed; fetching every output eagerly: $eager)"
  [ "$lazy" -gt 0 ] && [ "$lazy" -lt "$eager" ] || fail "checkout $1: on-demand download ($lazy) should be less than eager ($eager)"
}

step_a() {
  checkout "$work/a" || return
  build "$work/a" "$work/cache-a" "$work/a.json" --remote-executor "$engine" --remote-instance main || return
  cat "$work/a.json"
  [ "$(field "$work/a.json" executed)" -gt 0 ] || fail "build A executed nothing"
  # Outputs stay on the engine until something local reads them: the
  # deployed files and the layers of tasks run here (Python tasks).
  on_demand a || return
  (cd "$work/a" && "$bin" runqemu --check examples/busybox-qemux86-64.yml) || return
  scripts/buildgrid jobs "$bg" | tee "$work/jobs"
  local n1 n2 # the engine records the bot id as the job's worker
  n1=$(awk '$1 == "w1" {print $2}' "$work/jobs"); n2=$(awk '$1 == "w2" {print $2}' "$work/jobs")
  echo "jobs run by the engine: w1 ${n1:-0}, w2 ${n2:-0}"
  [ "${n1:-0}" -gt 0 ] && [ "${n2:-0}" -gt 0 ] || fail "both workers should have run jobs (w1 ${n1:-0}, w2 ${n2:-0})"
}
stage "A: the example through the engine, runqemu --check" step_a

step_local() {
  checkout "$work/l" || return
  build "$work/l" "$work/cache-l" "$work/l.json" || return
  (cd "$work/a/build/tmp/deploy" && find . -type f | sort | xargs sha256sum) > "$work/a.sums"
  (cd "$work/l/build/tmp/deploy" && find . -type f | sort | xargs sha256sum) > "$work/l.sums"
  diff -u "$work/l.sums" "$work/a.sums" || fail "artifacts built remotely differ from a local build's"
  echo "artifacts bit-identical: $(wc -l < "$work/a.sums") files"
}
stage "L: a local build; artifacts bit-identical" step_local

step_b() {
  checkout "$work/b" || return
  build "$work/b" "$work/cache-b" "$work/b.json" --remote-executor "$engine" --remote-instance main || return
  [ "$(field "$work/b.json" executed)" -eq 0 ] || fail "checkout B executed $(field "$work/b.json" executed) tasks"
  # Hits in the engine's action cache leave the outputs there too: only
  # what is deployed here is downloaded.
  on_demand b || return
  checkout "$work/n" nodl
  build "$work/n" "$work/cache-n" "$work/n.json" --remote-executor "$engine" --remote-instance main || return
  [ "$(field "$work/n.json" executed)" -eq 0 ] || fail "the checkout without downloads executed tasks"
  [ "$(field "$work/n.json" downloads_done)" -eq 0 ] || fail "the checkout without downloads downloaded something"
}
stage "B: a second checkout, empty local cache: 0 tasks executed" step_b

step_restart() {
  local before after
  before=$(scripts/buildgrid jobs "$bg" | awk '$1 == "w1" || $1 == "w2" {s += $2} END {print s + 0}')
  scripts/buildgrid restart-engine "$bg" || return
  echo "engine restarted under workers w1 and w2"
  # testdata/verbs' app has never been built on this engine: its tasks run on
  # the workers, which must have found the restarted engine again.
  (cd "$work/a" && timeout 300 "$bin" build testdata/verbs/project.yml app --sandbox native \
      --cache-dir "$work/cache-restart" --summary-json "$work/restart.json" \
      --remote-executor "$engine" --remote-instance main) > "$work/restart.out" 2>&1 \
    || { tail -20 "$work/restart.out"; fail "the build after the engine restart failed"; }
  [ "$(field "$work/restart.json" executed)" -gt 0 ] || fail "the build after the restart executed nothing"
  after=$(scripts/buildgrid jobs "$bg" | awk '$1 == "w1" || $1 == "w2" {s += $2} END {print s + 0}')
  echo "jobs run by w1 and w2: $before before the restart, $after after"
  [ "$after" -gt "$before" ] || fail "no job ran on w1/w2 after the engine restarted"
}
stage "E: the engine restarts; the workers take work again" step_restart

step_secure() {
  # Instance `secure`: TLS only (a certificate from a CA made by
  # scripts/buildgrid, trusted through SSL_CERT_FILE) and a JWT in an `authorization` header on every call, the
  # worker's and the client's, each read from an environment variable.
  local tls=grpcs://127.0.0.1:$((port + 1)) token
  token=$(scripts/buildgrid token "$bg") || return
  export SSL_CERT_FILE=$bg/ca.crt
  BITZEL_TEST_REAPI_AUTH="Authorization: Bearer $token" worker_engine=$tls \
    worker s1 --instance secure --auth-header-env BITZEL_TEST_REAPI_AUTH
  checkout "$work/s" nodl || return
  printf 'bitzel:\n  remote_executor:\n    auth_header_env: BITZEL_TEST_REAPI_AUTH\n' >> "$work/s/testdata/verbs/project.yml"
  secure_build() { # <summary> <auth header value>
    (cd "$work/s" && BITZEL_TEST_REAPI_AUTH=$2 timeout 300 "$bin" build testdata/verbs/project.yml app \
        --sandbox native --cache-dir "$work/cache-s-$1" --summary-json "$work/$1.json" \
        --remote-executor "$tls" --remote-instance secure)
  }
  if secure_build s-bad "Authorization: Bearer not.a.token" > "$work/s-bad.out" 2>&1; then
    fail "a build with a bad token succeeded on instance secure"
  fi
  grep -qi "unauthenticated\|permission\|denied" "$work/s-bad.out" || { tail -20 "$work/s-bad.out"; fail "a bad token: no clear refusal"; }
  echo "bad token: $(grep -m1 -i "unauthenticated\|permission\|denied" "$work/s-bad.out")"
  secure_build s-good "Authorization: Bearer $token" > "$work/s-good.out" 2>&1 \
    || { tail -20 "$work/s-good.out"; tail -20 "$work/s1.log"; fail "the build over TLS with a token failed"; }
  [ "$(field "$work/s-good.json" executed)" -gt 0 ] || fail "the build over TLS executed nothing"
  local n
  n=$(scripts/buildgrid jobs "$bg" | awk '$1 == "s1" {print $2}')
  echo "over TLS with a token: $(field "$work/s-good.json" executed) tasks executed, ${n:-0} jobs by worker s1"
  [ "${n:-0}" -gt 0 ] || fail "worker s1 (TLS, token) ran no job"
  kill -TERM "$(cat "$work/s1.pid")" 2>/dev/null || true
  unset SSL_CERT_FILE
}
stage "T: TLS and an auth header on instance secure (client and worker)" step_secure

step_kill() {
  checkout "$work/k" || return
  kill -TERM "$(cat "$work/w1.pid")" "$(cat "$work/w2.pid")"; sleep 2
  worker k1 --instance fresh
  worker k2 --instance fresh
  # busybox up to do_configure: long enough tasks to kill a worker under.
  build "$work/k" "$work/cache-k" "$work/k.json" busybox -c configure \
    --remote-executor "$engine" --remote-instance fresh &
  local bpid=$! victim="" s
  for _ in $(seq 600); do
    for s in $(scripts/buildgrid executing "$bg"); do
      for w in k1 k2; do [ "$w" = "$s" ] && victim=$w; done
    done
    [ -n "$victim" ] && break
    sleep 0.2
  done
  [ -n "$victim" ] || fail "no worker was seen holding a running lease"
  kill -KILL "$(cat "$work/$victim.pid")"
  echo "SIGKILLed $victim while it held a running lease"
  wait "$bpid" || fail "the build did not survive the killed worker"
  [ "$(field "$work/k.json" executed)" -gt 0 ] || fail "build K executed nothing"
}
stage "K: a worker SIGKILLed mid-lease; the build still succeeds" step_kill

step_refuse() {
  for w in k1 k2; do kill -TERM "$(cat "$work/$w.pid")" 2>/dev/null || true; done
  sleep 2
  # Instance `fresh`: testdata/verbs was built on `main` (step E), so its
  # action cache there would answer without any worker.
  worker odd --instance fresh --root-path /usr
  if (cd "$work/a" && "$bin" build testdata/verbs/project.yml app --sandbox native \
      --cache-dir "$work/cache-odd" --remote-executor "$engine" --remote-instance fresh) > "$work/odd.out" 2>&1; then
    fail "a build on a worker with another build root succeeded"
  fi
  grep -q "refuses this action: it needs build root" "$work/odd.out" || { cat "$work/odd.out"; fail "no refusal reason shown"; }
  grep "refuses" "$work/odd.out" | head -1
}
stage "R: a worker with another build root refuses" step_refuse

summary
