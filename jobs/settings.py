"""Where the job and the scripts find Kafka, PostgreSQL and the connector jars.

Every value has a default that matches the local stack of ``scripts/stack.sh`` and can be
overridden with the environment variable named beside it, which is how a deployment points the
same code at its own brokers and database.
"""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
STACK_DIR = Path(os.environ.get("FRAUDDRIFT_STACK_DIR", REPO_ROOT / ".stack"))
FLINK_CONF_FILE = REPO_ROOT / "flink-conf" / "config.yaml"
CONNECTOR_JAR_DIR = Path(os.environ.get("FRAUDDRIFT_CONNECTOR_DIR", STACK_DIR / "lib" / "flink"))

KAFKA_BOOTSTRAP_SERVERS = os.environ.get("FRAUDDRIFT_KAFKA_BOOTSTRAP", "127.0.0.1:9092")

TRANSACTIONS_TOPIC = "transactions"
ALERTS_TOPIC = "alerts"
DRIFT_EVENTS_TOPIC = "drift-events"
DEAD_LETTER_TOPIC = "dead-letter"
ALL_TOPICS = (TRANSACTIONS_TOPIC, ALERTS_TOPIC, DRIFT_EVENTS_TOPIC, DEAD_LETTER_TOPIC)

# Partitions of the input topic bound the source parallelism; two matches the reference machine.
TOPIC_PARTITIONS = int(os.environ.get("FRAUDDRIFT_TOPIC_PARTITIONS", "2"))

POSTGRES_HOST = os.environ.get("FRAUDDRIFT_PG_HOST", "127.0.0.1")
POSTGRES_PORT = int(os.environ.get("FRAUDDRIFT_PG_PORT", "5432"))
POSTGRES_DB = os.environ.get("FRAUDDRIFT_PG_DB", "frauddrift")
POSTGRES_USER = os.environ.get("FRAUDDRIFT_PG_USER", "frauddrift")
POSTGRES_PASSWORD = os.environ.get("FRAUDDRIFT_PG_PASSWORD", "frauddrift")

POSTGRES_DSN = (
    f"host={POSTGRES_HOST} port={POSTGRES_PORT} dbname={POSTGRES_DB} "
    f"user={POSTGRES_USER} password={POSTGRES_PASSWORD}"
)
POSTGRES_JDBC_URL = f"jdbc:postgresql://{POSTGRES_HOST}:{POSTGRES_PORT}/{POSTGRES_DB}"

FLINK_REST_URL = os.environ.get("FRAUDDRIFT_FLINK_REST", "http://127.0.0.1:8081")


def connector_jars():
    """Return the ``file://`` URLs of the connector jars that ``scripts/setup.sh`` copied.

    Raises
    ------
    FileNotFoundError
        When the folder holds no jar, naming the folder and the command that fills it.
    """
    jars = sorted(CONNECTOR_JAR_DIR.glob("*.jar"))
    if not jars:
        raise FileNotFoundError(
            f"no connector jars in {CONNECTOR_JAR_DIR}: run scripts/setup.sh to copy them"
        )
    return [jar.resolve().as_uri() for jar in jars]
