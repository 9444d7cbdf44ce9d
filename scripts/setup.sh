#!/usr/bin/env bash
# Sets up everything the project needs on a Linux machine with Python 3.11, Java 17 and Maven:
# the .venv with the project installed, the Flink connector jars, a Kafka broker and PostgreSQL.
# Safe to run again: each step is skipped when its result is already in place.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PYTHON_FOR_VENV="${FRAUDDRIFT_PYTHON:-python3.11}"

# --- Tools the set-up itself cannot install ------------------------------------------------------
command -v "$PYTHON_FOR_VENV" >/dev/null || fail "$PYTHON_FOR_VENV not found: install Python 3.11 \
(or point FRAUDDRIFT_PYTHON at one)"
command -v java >/dev/null || fail "java not found: install a Java 17 runtime (openjdk-17-jre-headless)"
command -v mvn >/dev/null || fail "mvn not found: install Maven (apt-get install maven)"
java_major=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n 1)
[ "${java_major:-0}" -ge 17 ] || fail "Java 17 or newer is needed, found major version $java_major"

# --- Python environment ---------------------------------------------------------------------------
if [ ! -x "$PYTHON" ]; then
    say "creating $VENV_DIR"
    "$PYTHON_FOR_VENV" -m venv "$VENV_DIR"
fi
stamp="$VENV_DIR/.installed-$(sha256sum "$REPO_ROOT/pyproject.toml" | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    say "installing the project and its dev extras into .venv (first time: a few minutes)"
    "$PYTHON" -m pip install --quiet --upgrade pip
    "$PYTHON" -m pip install --quiet -e "$REPO_ROOT[dev,train]"
    rm -f "$VENV_DIR"/.installed-*
    touch "$stamp"
else
    say ".venv is up to date"
fi

# --- Jars from Maven Central ----------------------------------------------------------------------
copy_jars() {  # pom, destination, what, extra Maven flags
    local pom="$1" dest="$2" what="$3" flags="${4:-}"
    local stamp="$dest/.copied-$(sha256sum "$pom" | cut -c1-16)"
    if [ -f "$stamp" ]; then
        say "$what jars are in place"
        return
    fi
    say "copying $what jars from Maven Central into $dest"
    rm -rf "$dest"
    mkdir -p "$dest"
    local maven_log="$dest.maven.log"
    if ! mvn --batch-mode -f "$pom" dependency:copy-dependencies \
        -DoutputDirectory="$dest" -DincludeScope=runtime $flags >"$maven_log" 2>&1; then
        tail -n 20 "$maven_log" >&2
        fail "Maven could not copy the $what jars named in $pom; its log is $maven_log"
    fi
    touch "$stamp"
}
# Only the named jars: what they depend on (flink-connector-base and the like) ships inside
# Flink itself, and a second, older copy on the job's class path would shadow it.
copy_jars "$REPO_ROOT/scripts/maven/flink-connectors.pom.xml" "$CONNECTOR_DIR" "Flink connector" \
    -DexcludeTransitive=true
copy_jars "$REPO_ROOT/scripts/maven/kafka-broker.pom.xml" "$KAFKA_HOME/libs" "Kafka broker"

# --- PostgreSQL -------------------------------------------------------------------------------------
if [ -z "$(postgres_bin_dir)" ]; then
    command -v apt-get >/dev/null || fail "PostgreSQL is missing and apt-get is not available: \
install the PostgreSQL server (15 or newer) by hand"
    say "installing PostgreSQL from Debian's packages"
    as_root=""
    [ "$(id -u)" -eq 0 ] || as_root="sudo"
    $as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq postgresql >/dev/null \
        || fail "apt-get could not install postgresql"
    [ -n "$(postgres_bin_dir)" ] || fail "postgresql installed but no pg_ctl under /usr/lib/postgresql"
fi
say "PostgreSQL server: $(postgres_bin_dir)"

say "set-up complete"
