"""Readiness checks and one-time set-up of the local stack's services.

Called by ``scripts/stack.sh``; each sub-command waits with a bounded retry and exits non-zero
with a message naming the service when it does not come up.

    python scripts/stack_admin.py kafka-ready --timeout 60
    python scripts/stack_admin.py create-topics
    python scripts/stack_admin.py migrate
    python scripts/stack_admin.py flink-ready --timeout 90
"""

import argparse
import json
import logging
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from jobs import settings

logger = logging.getLogger("stack_admin")

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "sql" / "migrations"
RETRY_PAUSE_SECONDS = 1.0


def wait_until(check, what, timeout_seconds):
    """Call ``check`` until it returns a true value or ``timeout_seconds`` pass."""
    deadline = time.monotonic() + timeout_seconds
    last_error = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as error:  # noqa: BLE001 - any failure means "not ready yet"
            last_error = error
        time.sleep(RETRY_PAUSE_SECONDS)
    raise TimeoutError(f"{what} did not become ready in {timeout_seconds} s: {last_error}")


def kafka_admin():
    return KafkaAdminClient(
        bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
        client_id="frauddrift-stack-admin",
        request_timeout_ms=5000,
    )


def kafka_ready(timeout_seconds):
    def brokers_answer():
        admin = kafka_admin()
        try:
            return admin.describe_cluster()["brokers"]
        finally:
            admin.close()

    wait_until(brokers_answer, f"Kafka at {settings.KAFKA_BOOTSTRAP_SERVERS}", timeout_seconds)


def create_topics():
    """Create the job's topics; topics that exist already are left as they are."""
    admin = kafka_admin()
    try:
        existing = set(admin.list_topics())
        missing = [name for name in settings.ALL_TOPICS if name not in existing]
        for name in missing:
            try:
                admin.create_topics(
                    [NewTopic(name, settings.TOPIC_PARTITIONS, replication_factor=1)]
                )
            except TopicAlreadyExistsError:
                continue
        logger.info(
            "topics: %s (created now: %s)", ", ".join(settings.ALL_TOPICS), missing or "none"
        )
    finally:
        admin.close()


def migrate():
    """Apply, in version order, every SQL file in sql/migrations not yet recorded as applied."""
    with psycopg.connect(settings.POSTGRES_DSN, autocommit=False) as connection:
        connection.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        applied = {row[0] for row in connection.execute("SELECT version FROM schema_migrations")}
        for path in sorted(MIGRATIONS_DIR.glob("V*.sql")):
            version = path.name.split("__", 1)[0]
            if version in applied:
                continue
            connection.execute(path.read_text())
            connection.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
            logger.info("applied %s", path.name)
        connection.commit()


def flink_ready(timeout_seconds):
    def taskmanager_registered():
        url = f"{settings.FLINK_REST_URL}/taskmanagers"
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.load(response)["taskmanagers"]

    wait_until(
        taskmanager_registered, f"Flink cluster at {settings.FLINK_REST_URL}", timeout_seconds
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "command", choices=["kafka-ready", "create-topics", "migrate", "flink-ready"]
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[stack_admin] %(message)s")
    logging.getLogger("kafka").setLevel(logging.CRITICAL)

    try:
        if args.command == "kafka-ready":
            kafka_ready(args.timeout)
        elif args.command == "create-topics":
            create_topics()
        elif args.command == "migrate":
            migrate()
        else:
            flink_ready(args.timeout)
    except (TimeoutError, KafkaError, psycopg.Error, urllib.error.URLError) as error:
        logger.error("%s", error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
