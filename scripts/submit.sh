#!/usr/bin/env bash
# Submits a job file of this project to the standalone cluster of `scripts/stack.sh up --flink`
# with `flink run -py`, and waits for a bounded job to finish (add --detached to return at once).
# Usage: scripts/submit.sh [--detached] JOB_FILE [job arguments...]
#   e.g. scripts/submit.sh jobs/fraud_drift_job.py --detached
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

detached=()
if [ "${1:-}" = "--detached" ]; then
    detached=(--detached)
    shift
fi
job_file="${1:-}"
[ -n "$job_file" ] || fail "usage: scripts/submit.sh [--detached] JOB_FILE [job arguments...]"
[ -f "$job_file" ] || fail "no job file at $job_file"
shift
[ -x "$PYTHON" ] || fail ".venv is missing: run scripts/setup.sh first"
"$PYTHON" "$REPO_ROOT/scripts/stack_admin.py" flink-ready --timeout 5 \
    || fail "no Flink cluster answers: start one with scripts/stack.sh up --flink"

flink_home="$(pyflink_home)"
rest_address="${FRAUDDRIFT_FLINK_REST:-http://127.0.0.1:8081}"
rest_address="${rest_address#http://}"
say "submitting $job_file to $rest_address"
# -pyfs ships the project's packages with the job, so a TaskManager on another machine imports
# the same code; -pyexec names the interpreter that has pyflink and numpy installed.
cd "$REPO_ROOT"
PYTHONPATH="$REPO_ROOT" FLINK_CONF_DIR="$STACK_DIR/flink/conf" "$flink_home/bin/flink" run \
    "${detached[@]}" \
    --jobmanager "$rest_address" \
    --python "$job_file" \
    --pyFiles "$REPO_ROOT/jobs,$REPO_ROOT/udfs" \
    --pyExecutable "$PYTHON" \
    --pyClientExecutable "$PYTHON" \
    "$@"
