# Shared by the scripts in this folder: where things live and how to say what happens.
# Sourced, not run.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK_DIR="${FRAUDDRIFT_STACK_DIR:-$REPO_ROOT/.stack}"
VENV_DIR="$REPO_ROOT/.venv"
PYTHON="$VENV_DIR/bin/python"
CONNECTOR_DIR="$STACK_DIR/lib/flink"
KAFKA_HOME="$STACK_DIR/kafka"
LOG_DIR="$STACK_DIR/logs"

say() { printf '[%s] %s\n' "$(basename "$0")" "$*"; }
fail() {
    printf '[%s] ERROR: %s\n' "$(basename "$0")" "$*" >&2
    exit 1
}

# The pip-installed Flink distribution (bin/, lib/, conf/) inside the venv.
pyflink_home() {
    "$PYTHON" -c 'import os, pyflink; print(os.path.dirname(os.path.abspath(pyflink.__file__)))'
}

# Directory of the PostgreSQL server binaries from Debian's packages (the newest major version).
postgres_bin_dir() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [ -n "$dir" ] && [ -x "$dir/pg_ctl" ] && echo "$dir"
}
