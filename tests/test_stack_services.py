"""The local stack's services answer as the job expects: Kafka topics and PostgreSQL schema."""

import json
import subprocess
import uuid

from kafka import KafkaConsumer

from jobs import settings
from tests.conftest import consume_all


def test_job_topics_exist(kafka_admin):
    assert set(settings.ALL_TOPICS) <= set(kafka_admin.list_topics())


def test_kafka_round_trip_keeps_order_keys_and_values(make_topic, producer):
    topic = make_topic("round-trip")
    sent = [{"sequence": number, "amount": number * 10.5} for number in range(50)]
    for message in sent:
        producer.send(topic, key=b"CASH_OUT", value=json.dumps(message).encode())
    producer.flush()

    received = consume_all(topic, expected_count=len(sent))

    assert [json.loads(record.value) for record in received] == sent
    assert {record.key for record in received} == {b"CASH_OUT"}


def test_kafka_consumer_group_resumes_after_committed_offset(make_topic, producer):
    topic = make_topic("resume")
    for number in range(10):
        producer.send(topic, value=str(number).encode())
    producer.flush()
    group = f"test-group-{uuid.uuid4().hex[:8]}"

    def read(limit):
        consumer = KafkaConsumer(
            topic,
            bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            max_poll_records=limit,
            consumer_timeout_ms=10000,
        )
        values = []
        for record in consumer:
            values.append(int(record.value))
            if len(values) == limit:
                break
        consumer.commit()
        consumer.close()
        return values

    assert read(4) == [0, 1, 2, 3]
    assert read(6) == [4, 5, 6, 7, 8, 9]


def test_postgres_schema_is_migrated(postgres):
    versions = [row[0] for row in postgres.execute("SELECT version FROM schema_migrations")]
    tables = {
        row[0]
        for row in postgres.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
    }
    assert "V001" in versions
    assert {"window_stats", "drift_events", "flagged_transactions"} <= tables


def test_postgres_write_read_and_upsert(postgres):
    transaction_id = f"test-{uuid.uuid4().hex}"
    upsert = (
        "INSERT INTO flagged_transactions (transaction_id, key, source, type, amount, name_orig, "
        "name_dest, risk_score, drift_score, model_probability, rule_score, reasons, "
        "model_version, is_fraud, flagged_at) "
        "VALUES (%s, 'TRANSFER', 'test', 'TRANSFER', 181.0, 'C1', 'C2', %s, 0.1, 0.0, 1.0, %s, "
        "'none', true, now()) "
        "ON CONFLICT (transaction_id) DO UPDATE SET risk_score = EXCLUDED.risk_score"
    )
    try:
        postgres.execute(upsert, (transaction_id, 0.7, json.dumps(["account_drained"])))
        postgres.execute(upsert, (transaction_id, 0.9, json.dumps(["account_drained"])))
        rows = postgres.execute(
            "SELECT risk_score, reasons FROM flagged_transactions WHERE transaction_id = %s",
            (transaction_id,),
        ).fetchall()
    finally:
        postgres.execute(
            "DELETE FROM flagged_transactions WHERE transaction_id = %s", (transaction_id,)
        )

    assert rows == [(0.9, ["account_drained"])]


def test_stack_up_twice_is_harmless_and_status_reports_every_service():
    stack_script = str(settings.REPO_ROOT / "scripts" / "stack.sh")

    again = subprocess.run(
        ["bash", stack_script, "up"], capture_output=True, text=True, timeout=120
    )
    status = subprocess.run(
        ["bash", stack_script, "status"], capture_output=True, text=True, timeout=30
    )

    assert again.returncode == 0, again.stderr
    assert "Kafka is already running" in again.stdout
    assert "PostgreSQL is already running" in again.stdout
    assert "Kafka: running" in status.stdout
    assert "PostgreSQL: running" in status.stdout
