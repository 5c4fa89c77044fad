#!/usr/bin/env bash
# Runs the whole test suite.
#
#   test/run.sh [TEST...]
#
# Installs missing Debian packages (test/deps.sh), builds the extension, the core
# unit tests and their AddressSanitizer build, installs the extension into a
# relocatable copy of PostgreSQL in a temporary work directory (nothing goes to
# system directories), and then, as an unprivileged user, runs
#   - the pg_regress suite (make installcheck) against a throwaway cluster,
#   - the core unit-test binaries and every TAP test in test/t/*.t (test/harness.pl).
# Works as root (the tests then run as the user rnnlm_test, created if missing)
# and as a normal user, from any directory.
#
# TEST: a path relative to the repository root (test/t/000_harness.t,
# test/core/rnnlm_core_test) or "regress"; without any, everything runs.
# Environment: RNNLM_KEEP=1 keeps the work directory when something failed;
# RNNLM_TEST_TIMEOUT (seconds, default 600) limits each test file and the
# pg_regress run; RNNLM_JOBS runs that many test files at once (default 1).
#
# The last line of output is "N passed, M failed" (", K skipped" when some were),
# counting test points; the exit status is non-zero when anything failed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
# shellcheck source-path=SCRIPTDIR source=lib/cluster.sh
. "$here/lib/cluster.sh"

# Run a build step and record it as a test point in $W/build.tap.
build_step() {
  local name=$1; shift
  say "$name"
  nsteps=$((nsteps + 1))
  if "$@"; then
    echo "ok $nsteps - $name" >>"$W/build.tap"
  else
    echo "not ok $nsteps - $name" >>"$W/build.tap"
  fi
}

# Run make installcheck against a throwaway cluster; set REGRESS_ARGS for test/harness.pl.
run_regress() {
  local st=0
  say "pg_regress (make installcheck) against a throwaway cluster"
  cluster_start "$W/cluster"
  (cd "$RNNLM_REPO" &&
    timeout -k 10 "${RNNLM_TEST_TIMEOUT:-600}" \
      make --no-print-directory installcheck PG_CONFIG="$PG_CONFIG" TAP_TESTS=) 2>&1 |
    tee "$W/regress.out" || st=$?
  cluster_stop "$W/cluster"
  REGRESS_ARGS=(--regress="$W/regress.out" --regress-status="$st"
    --regress-diffs="$RNNLM_REPO/regression.diffs" --regress-log="$W/cluster/postgres.log")
}

# The test phase, run as the unprivileged user in the work directory.
inner() {
  W=$RNNLM_WORKDIR
  local want_regress=1 t
  local -a tests=() args=()
  REGRESS_ARGS=()
  if (( $# )); then
    want_regress=0
    args+=(--no-defaults)
    for t; do
      if [[ $t == regress ]]; then want_regress=1; else tests+=("$t"); fi
    done
  else
    args+=(--tap="build=$W/build.tap")
  fi
  trap 'cluster_stop "$W/cluster"' EXIT
  if (( want_regress )); then run_regress; fi
  say "core unit tests and TAP tests"
  perl "$RNNLM_REPO/test/harness.pl" "${args[@]}" "${REGRESS_ARGS[@]}" "${tests[@]}"
}

# Stop what is left, remove the work directory, and make sure the output ends with the count.
finish() {
  local status=$? summary=
  set +e
  [[ -n $W && -s $W/summary ]] && summary=$(<"$W/summary")
  remove_workdir "$status"
  if [[ -z $summary ]]; then
    (( status != 0 )) || status=1
    printf '0 passed, 1 failed\n'
  elif [[ ${RNNLM_KEEP:-0} == 1 && $status != 0 ]]; then
    printf '%s\n' "$summary"   # once more, below the note about the kept directory
  fi
  exit "$status"
}

if [[ ${1:-} == --inner ]]; then
  shift
  inner "$@"
  exit
fi

trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

bash "$here/deps.sh"
pg_paths
make_workdir
nsteps=0
say "make"
repo_make "$repo" -j"$(nproc)" || die "make failed"
echo "ok $((nsteps += 1)) - make" >"$W/build.tap"
build_step "make core-test" repo_make "$repo" core-test
build_step "make core-test-asan" repo_make "$repo" core-test-asan
echo "1..$nsteps" >>"$W/build.tap"
stage_all "$repo"
run_as_test_user "$TEST_USER" bash "$W/repo/test/run.sh" --inner "$@"
