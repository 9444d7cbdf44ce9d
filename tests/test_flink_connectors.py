"""The pinned Flink runs the connector jars: Kafka in and out, and rows into PostgreSQL."""

import json
import uuid

from pyflink.common import Row, Types, WatermarkStrategy
from pyflink.common.serialization import SimpleStringSchema
from pyflink.datastream.connectors.base import DeliveryGuarantee
from pyflink.datastream.connectors.kafka import (
    KafkaOffsetsInitializer,
    KafkaRecordSerializationSchema,
    KafkaSink,
    KafkaSource,
)
from pyflink.table import StreamTableEnvironment

from jobs import settings
from jobs.flink_setup import create_environment
from jobs.postgres_sinks import SINK_TABLES
from tests.conftest import consume_all

# A broken connector should fail the test at once, not after the restart strategy's retries.
FAIL_FAST = {"restart-strategy.type": "none"}


def test_flink_reads_a_topic_with_kafka_source_and_writes_another_with_kafka_sink(
    make_topic, producer
):
    input_topic = make_topic("flink-in")
    output_topic = make_topic("flink-out")
    amounts = [round(10.0 + number * 1.25, 2) for number in range(40)]
    for amount in amounts:
        producer.send(input_topic, json.dumps({"amount": amount}).encode())
    producer.flush()

    env = create_environment(FAIL_FAST | {"execution.checkpointing.interval": "1 s"})
    source = (
        KafkaSource.builder()
        .set_bootstrap_servers(settings.KAFKA_BOOTSTRAP_SERVERS)
        .set_topics(input_topic)
        .set_group_id(f"test-{uuid.uuid4().hex[:8]}")
        .set_starting_offsets(KafkaOffsetsInitializer.earliest())
        .set_bounded(KafkaOffsetsInitializer.latest())
        .set_value_only_deserializer(SimpleStringSchema())
        .build()
    )
    sink = (
        KafkaSink.builder()
        .set_bootstrap_servers(settings.KAFKA_BOOTSTRAP_SERVERS)
        .set_record_serializer(
            KafkaRecordSerializationSchema.builder()
            .set_topic(output_topic)
            .set_value_serialization_schema(SimpleStringSchema())
            .build()
        )
        .set_delivery_guarantee(DeliveryGuarantee.AT_LEAST_ONCE)
        .build()
    )
    (
        env.from_source(source, WatermarkStrategy.no_watermarks(), "transactions source")
        .map(
            lambda value: json.dumps({"doubled": json.loads(value)["amount"] * 2}),
            output_type=Types.STRING(),
        )
        .sink_to(sink)
    )
    env.execute("kafka round trip")

    received = consume_all(output_topic, expected_count=len(amounts))
    doubled = sorted(json.loads(record.value)["doubled"] for record in received)
    assert doubled == sorted(amount * 2 for amount in amounts)


def test_flink_writes_a_datastream_to_postgres_through_the_jdbc_table_connector(postgres):
    run_marker = f"test-jdbc-{uuid.uuid4().hex[:8]}"
    windows = [
        (f"{run_marker}-{index}", "CASH_OUT", index * 500, index * 500 + 499, index % 2 == 0)
        for index in range(6)
    ]
    # The last row repeats the first key with new values: the sink must upsert, not duplicate.
    windows.append((f"{run_marker}-0", "CASH_OUT", 0, 499, False))

    env = create_environment(FAIL_FAST)
    table_env = StreamTableEnvironment.create(env)
    row_type = Types.ROW_NAMED(
        ["window_id", "key", "first_row", "last_row", "drifted"],
        [Types.STRING(), Types.STRING(), Types.LONG(), Types.LONG(), Types.BOOLEAN()],
    )
    stream = env.from_collection([Row(*window) for window in windows], type_info=row_type)
    # The job's own column list for the table, so that this test follows it.
    table_env.execute_sql(f"""
        CREATE TEMPORARY TABLE window_sink ({SINK_TABLES["window_stats"]}) WITH (
            'connector' = 'jdbc',
            'url' = '{settings.POSTGRES_JDBC_URL}?stringtype=unspecified',
            'table-name' = 'window_stats',
            'username' = '{settings.POSTGRES_USER}',
            'password' = '{settings.POSTGRES_PASSWORD}',
            'sink.buffer-flush.max-rows' = '2'
        )""")
    table_env.create_temporary_view("windows", table_env.from_data_stream(stream))
    statements = table_env.create_statement_set()
    statements.add_insert_sql("""
        INSERT INTO window_sink
        SELECT window_id, key, first_row, last_row, CAST(NULL AS INT), CAST(NULL AS INT),
               'test', 500, drifted, 0.25, 5000, 'test', CAST(CURRENT_TIMESTAMP AS TIMESTAMP(3)),
               '{"ks": 0.01}', 500, 1, 1, 1.0, 1.0, 1.0, 1.0, 1.0, 'none'
        FROM windows""")
    statements.attach_as_datastream()
    try:
        env.execute("jdbc sink")
        stored = postgres.execute(
            "SELECT window_id, drifted, statistics FROM window_stats WHERE window_id LIKE %s "
            "ORDER BY window_id",
            (f"{run_marker}-%",),
        ).fetchall()
    finally:
        postgres.execute("DELETE FROM window_stats WHERE window_id LIKE %s", (f"{run_marker}-%",))

    assert [row[0] for row in stored] == [f"{run_marker}-{index}" for index in range(6)]
    assert [row[1] for row in stored] == [False, False, True, False, True, False]
    assert all(row[2] == {"ks": 0.01} for row in stored)
