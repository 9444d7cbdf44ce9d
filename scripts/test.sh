#!/usr/bin/env bash
# Sets everything up, starts the local stack with a Flink cluster, runs the whole test suite and
# the linter, then stops the stack and checks that nothing it started is left running.
# Exits non-zero on any failure. FRAUDDRIFT_KEEP_STACK=1 leaves the stack up afterwards;
# extra arguments go to pytest (for example -k kafka).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

bash "$REPO_ROOT/scripts/setup.sh"
bash "$REPO_ROOT/scripts/stack.sh" up --flink

status=0
cd "$REPO_ROOT"
say "running the test suite"
"$VENV_DIR/bin/pytest" "$@" || status=$?
say "running ruff"
"$VENV_DIR/bin/ruff" check . || status=1
"$VENV_DIR/bin/ruff" format --check . || status=1

if [ "${FRAUDDRIFT_KEEP_STACK:-0}" != "1" ]; then
    bash "$REPO_ROOT/scripts/stack.sh" down
    # Every process the stack starts names a path under the stack folder on its command line.
    if leftovers=$(pgrep -af -- "$STACK_DIR" | grep -v pgrep); then
        printf '%s\n' "$leftovers" >&2
        fail "processes of the stack are still running after 'stack.sh down'"
    fi
fi

[ "$status" -eq 0 ] && say "all checks passed" || say "FAILED (exit $status)"
exit "$status"
