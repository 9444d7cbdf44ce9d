"""Fixtures for tests that run through the real local stack (scripts/stack.sh up)."""

import uuid

import psycopg
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError

from jobs import settings

STACK_HINT = "start the local stack first: scripts/stack.sh up (scripts/test.sh does it for you)"


@pytest.fixture(scope="session")
def kafka_admin():
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS, request_timeout_ms=10000
        )
    except KafkaError:
        pytest.fail(f"no Kafka broker at {settings.KAFKA_BOOTSTRAP_SERVERS}: {STACK_HINT}")
    yield admin
    admin.close()


@pytest.fixture
def make_topic(kafka_admin):
    """Create topics with unique names for one test and delete them afterwards."""
    created = []

    def make(purpose, partitions=1):
        name = f"test-{purpose}-{uuid.uuid4().hex[:8]}"
        kafka_admin.create_topics([NewTopic(name, partitions, replication_factor=1)])
        created.append(name)
        return name

    yield make
    if created:
        kafka_admin.delete_topics(created)


@pytest.fixture
def producer():
    client = KafkaProducer(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS, acks="all")
    yield client
    client.close()


def consume_all(topic, expected_count, timeout_seconds=30.0, isolation_level="read_committed"):
    """Read ``topic`` from the beginning until ``expected_count`` records or the timeout."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level=isolation_level,
        consumer_timeout_ms=int(timeout_seconds * 1000),
    )
    records = []
    try:
        for record in consumer:
            records.append(record)
            if len(records) >= expected_count:
                break
    finally:
        consumer.close()
    return records


@pytest.fixture
def postgres():
    try:
        connection = psycopg.connect(settings.POSTGRES_DSN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        pytest.fail(
            f"no PostgreSQL at {settings.POSTGRES_HOST}:{settings.POSTGRES_PORT} "
            f"({error}): {STACK_HINT}"
        )
    yield connection
    connection.close()
