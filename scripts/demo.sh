#!/usr/bin/env bash
# Sets everything up, starts the local stack and runs the main job end to end.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

bash "$REPO_ROOT/scripts/setup.sh"
bash "$REPO_ROOT/scripts/stack.sh" up

cd "$REPO_ROOT"
say "running the smoke job on a local Flink mini-cluster"
"$PYTHON" -m jobs.smoke_job --topic transactions --count 10
say "done: the stack is still up; stop it with scripts/stack.sh down"
