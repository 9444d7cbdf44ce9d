#!/usr/bin/env bash
# Sets everything up, starts the local stack, replays the bundled PaySim sample into Kafka and
# runs the streaming job over it end to end, then prints a summary of what it found.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

bash "$REPO_ROOT/scripts/setup.sh"
bash "$REPO_ROOT/scripts/stack.sh" up

cd "$REPO_ROOT"
"$PYTHON" -m scripts.demo
say "done: the stack is still up; stop it with scripts/stack.sh down"
