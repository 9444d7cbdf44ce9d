#!/usr/bin/env bash
# Starts, stops and reports the local stack, on loopback only:
#   Kafka (KRaft, 127.0.0.1:9092), PostgreSQL (127.0.0.1:5432, database frauddrift) and, with
#   --flink, a standalone Flink cluster from the pip install (Web UI on 127.0.0.1:8081).
# Usage: scripts/stack.sh up [--flink] | down | status
# Data and logs live under .stack/; `up` twice is harmless, `down` stops every process it started.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

KAFKA_DATA="$STACK_DIR/kafka/data"
KAFKA_PID_FILE="$STACK_DIR/kafka/kafka.pid"
KAFKA_CONFIG="$STACK_DIR/kafka/server.properties"
FLINK_CONF_DIR="$STACK_DIR/flink/conf"
FLINK_LOG_DIR="$LOG_DIR/flink"
FLINK_LIB_DIR="$STACK_DIR/flink/lib"
SERVICE_TIMEOUT_SECONDS="${FRAUDDRIFT_SERVICE_TIMEOUT:-90}"

# --- PostgreSQL --------------------------------------------------------------------------------------
# The server refuses to run as root, so when we are root it runs as the postgres system user, in
# a data folder that user can reach.
if [ "$(id -u)" -eq 0 ]; then
    PG_RUN_AS=(runuser -u postgres --)
    if runuser -u postgres -- test -x "$STACK_DIR" 2>/dev/null || ! [ -d "$STACK_DIR" ]; then
        PG_HOME="$STACK_DIR/postgres"
    else
        PG_HOME="/tmp/frauddrift-postgres-$(echo "$REPO_ROOT" | sha256sum | cut -c1-12)"
    fi
else
    PG_RUN_AS=()
    PG_HOME="$STACK_DIR/postgres"
fi
PG_DATA="$PG_HOME/data"
PG_SOCKET_DIR="$PG_HOME/run"
PG_LOG="$LOG_DIR/postgres.log"

pg() { "${PG_RUN_AS[@]}" "$(postgres_bin_dir)/$1" "${@:2}"; }
pg_running() { [ -n "$(postgres_bin_dir)" ] && pg pg_ctl -D "$PG_DATA" status >/dev/null 2>&1; }

postgres_up() {
    [ -n "$(postgres_bin_dir)" ] || fail "PostgreSQL is not installed: run scripts/setup.sh"
    mkdir -p "$PG_HOME" "$PG_SOCKET_DIR" "$LOG_DIR"
    touch "$PG_LOG"
    [ "$(id -u)" -eq 0 ] && chown postgres "$PG_HOME" "$PG_SOCKET_DIR" "$PG_LOG"
    if [ ! -f "$PG_DATA/PG_VERSION" ]; then
        say "initialising PostgreSQL in $PG_DATA"
        pg initdb -D "$PG_DATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
            --encoding=UTF8 >/dev/null
    fi
    if pg_running; then
        say "PostgreSQL is already running"
    else
        say "starting PostgreSQL on 127.0.0.1:5432"
        pg pg_ctl -D "$PG_DATA" -l "$PG_LOG" -w -t "$SERVICE_TIMEOUT_SECONDS" start \
            -o "-c listen_addresses=127.0.0.1 -p 5432 -k $PG_SOCKET_DIR" >/dev/null \
            || fail "PostgreSQL did not start; its log is $PG_LOG"
    fi
    local psql_admin=(pg psql -h "$PG_SOCKET_DIR" -p 5432 -U postgres -v ON_ERROR_STOP=1 -qtA)
    if [ -z "$("${psql_admin[@]}" -c "SELECT 1 FROM pg_roles WHERE rolname = 'frauddrift'")" ]; then
        "${psql_admin[@]}" -c "CREATE ROLE frauddrift LOGIN PASSWORD 'frauddrift'"
    fi
    if [ -z "$("${psql_admin[@]}" -c "SELECT 1 FROM pg_database WHERE datname = 'frauddrift'")" ]
    then
        "${psql_admin[@]}" -c "CREATE DATABASE frauddrift OWNER frauddrift"
    fi
    "$PYTHON" "$REPO_ROOT/scripts/stack_admin.py" migrate \
        || fail "could not apply the schema to PostgreSQL; its log is $PG_LOG"
}

postgres_down() {
    if pg_running; then
        say "stopping PostgreSQL"
        pg pg_ctl -D "$PG_DATA" -m fast -w stop >/dev/null
    fi
}

# --- Kafka -------------------------------------------------------------------------------------------
kafka_java() { java -Xms256m -Xmx1g -Dlog4j2.configurationFile="$STACK_DIR/kafka/log4j2.properties" \
    -cp "$KAFKA_HOME/libs/*" "$@"; }
kafka_running() { [ -f "$KAFKA_PID_FILE" ] && kill -0 "$(cat "$KAFKA_PID_FILE")" 2>/dev/null; }

write_kafka_config() {
    cat >"$KAFKA_CONFIG" <<PROPERTIES
# Written by scripts/stack.sh: one combined broker and controller in KRaft mode, on loopback.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:9093
listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093
advertised.listeners=PLAINTEXT://127.0.0.1:9092
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KAFKA_DATA
num.partitions=$FRAUDDRIFT_PARTITIONS
# A single broker can keep only one copy of anything.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# Flink's exactly-once sink keeps a transaction open across a checkpoint; allow up to an hour.
transaction.max.timeout.ms=3600000
auto.create.topics.enable=false
PROPERTIES
    cat >"$STACK_DIR/kafka/log4j2.properties" <<PROPERTIES
rootLogger.level=INFO
rootLogger.appenderRef.file.ref=file
appender.file.type=File
appender.file.name=file
appender.file.fileName=$LOG_DIR/kafka.log
appender.file.layout.type=PatternLayout
appender.file.layout.pattern=[%d] %p %m (%c)%n
logger.kafka.name=kafka
logger.kafka.level=WARN
logger.apache.name=org.apache.kafka
logger.apache.level=WARN
PROPERTIES
}

kafka_up() {
    ls "$KAFKA_HOME"/libs/kafka_2.13-*.jar >/dev/null 2>&1 \
        || fail "the Kafka broker jars are missing from $KAFKA_HOME/libs: run scripts/setup.sh"
    mkdir -p "$KAFKA_DATA" "$LOG_DIR"
    FRAUDDRIFT_PARTITIONS="$("$PYTHON" -c 'from jobs import settings; print(settings.TOPIC_PARTITIONS)')"
    write_kafka_config
    if [ ! -f "$KAFKA_DATA/meta.properties" ]; then
        say "formatting Kafka storage in $KAFKA_DATA"
        local cluster_id
        cluster_id=$(kafka_java kafka.tools.StorageTool random-uuid)
        kafka_java kafka.tools.StorageTool format -t "$cluster_id" -c "$KAFKA_CONFIG" >/dev/null \
            || fail "could not format Kafka storage; see $LOG_DIR/kafka.log"
    fi
    if kafka_running; then
        say "Kafka is already running"
    else
        say "starting Kafka on 127.0.0.1:9092"
        nohup java -Xms512m -Xmx1g -XX:+UseG1GC \
            -Dlog4j2.configurationFile="$STACK_DIR/kafka/log4j2.properties" \
            -cp "$KAFKA_HOME/libs/*" kafka.Kafka "$KAFKA_CONFIG" \
            >"$LOG_DIR/kafka.out" 2>&1 &
        echo $! >"$KAFKA_PID_FILE"
    fi
    "$PYTHON" "$REPO_ROOT/scripts/stack_admin.py" kafka-ready --timeout "$SERVICE_TIMEOUT_SECONDS" \
        || fail "Kafka did not come up; its logs are $LOG_DIR/kafka.log and $LOG_DIR/kafka.out"
    "$PYTHON" "$REPO_ROOT/scripts/stack_admin.py" create-topics \
        || fail "could not create the Kafka topics; see $LOG_DIR/kafka.log"
}

kafka_down() {
    if kafka_running; then
        say "stopping Kafka"
        local pid
        pid=$(cat "$KAFKA_PID_FILE")
        kill "$pid"
        # A controlled shutdown flushes the logs; give it a bounded time, then insist.
        for _ in $(seq 1 30); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 1
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$KAFKA_PID_FILE"
}

# --- Flink -------------------------------------------------------------------------------------------
# The TaskManager embeds CPython for the job's Python functions (thread mode); it finds the venv's
# packages and the project's own only through PYTHONPATH, as jobs/flink_setup.py explains.
flink_env() {
    local site_packages
    site_packages=$("$PYTHON" -c 'import site; print(site.getsitepackages()[0])')
    env FLINK_CONF_DIR="$FLINK_CONF_DIR" FLINK_LOG_DIR="$FLINK_LOG_DIR" FLINK_LIB_DIR="$FLINK_LIB_DIR" \
        PATH="$VENV_DIR/bin:$PATH" PYTHONPATH="$site_packages:$REPO_ROOT" "$@"
}

flink_running() { pgrep -f "FLINK_CONF_DIR=$FLINK_CONF_DIR|$FLINK_CONF_DIR" >/dev/null 2>&1; }

flink_up() {
    local flink_home
    flink_home="$(pyflink_home)"
    mkdir -p "$FLINK_CONF_DIR" "$FLINK_LOG_DIR"
    # The cluster takes the distribution's log settings and the project's config.yaml.
    cp "$flink_home"/conf/log4j*.properties "$FLINK_CONF_DIR/"
    cp "$REPO_ROOT/flink-conf/config.yaml" "$FLINK_CONF_DIR/config.yaml"
    printf '127.0.0.1:8081\n' >"$FLINK_CONF_DIR/masters"
    printf '127.0.0.1\n' >"$FLINK_CONF_DIR/workers"
    # The pip distribution keeps flink-python in opt/, where a cluster does not look: without it
    # the JobManager cannot load the operators of a Python job. Link lib/ and that jar together.
    rm -rf "$FLINK_LIB_DIR"
    mkdir -p "$FLINK_LIB_DIR"
    ln -s "$flink_home"/lib/*.jar "$flink_home"/opt/flink-python-*.jar "$FLINK_LIB_DIR/"
    if flink_running; then
        say "Flink is already running"
    else
        say "starting a standalone Flink cluster (Web UI on 127.0.0.1:8081)"
        flink_env "$flink_home/bin/jobmanager.sh" start >/dev/null
        flink_env "$flink_home/bin/taskmanager.sh" start >/dev/null
    fi
    "$PYTHON" "$REPO_ROOT/scripts/stack_admin.py" flink-ready --timeout "$SERVICE_TIMEOUT_SECONDS" \
        || fail "Flink did not report a TaskManager; its logs are in $FLINK_LOG_DIR"
}

flink_down() {
    [ -d "$FLINK_CONF_DIR" ] || return 0
    local flink_home
    flink_home="$(pyflink_home)"
    if flink_running; then
        say "stopping Flink"
        flink_env "$flink_home/bin/taskmanager.sh" stop-all >/dev/null 2>&1 || true
        flink_env "$flink_home/bin/jobmanager.sh" stop-all >/dev/null 2>&1 || true
        for _ in $(seq 1 30); do
            flink_running || break
            sleep 1
        done
        pkill -9 -f "$FLINK_CONF_DIR" 2>/dev/null || true
    fi
}

# --- Commands ----------------------------------------------------------------------------------------
status_line() {  # name, running?
    if "$2"; then say "$1: running"; else say "$1: stopped"; fi
}

[ -x "$PYTHON" ] || fail ".venv is missing: run scripts/setup.sh first"
command="${1:-}"
case "$command" in
    up)
        want_flink=false
        [ "${2:-}" = "--flink" ] && want_flink=true
        kafka_up
        postgres_up
        $want_flink && flink_up
        say "stack is up: Kafka 127.0.0.1:9092, PostgreSQL 127.0.0.1:5432/frauddrift$(
            $want_flink && echo ', Flink http://127.0.0.1:8081')"
        ;;
    down)
        flink_down
        kafka_down
        postgres_down
        say "stack is down"
        ;;
    status)
        status_line Kafka kafka_running
        status_line PostgreSQL pg_running
        status_line Flink flink_running
        ;;
    *)
        fail "usage: scripts/stack.sh up [--flink] | down | status"
        ;;
esac
