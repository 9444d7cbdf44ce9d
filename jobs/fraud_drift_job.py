"""The fraud and drift job: transactions in, window verdicts, drift events and alerts out.

Streaming, against Kafka and PostgreSQL (the local stack by default):

    python -m jobs.fraud_drift_job
    scripts/submit.sh --detached jobs/fraud_drift_job.py        # on the standalone cluster

Backtest over a PaySim CSV file, the same operators with a file source and file sinks:

    python -m jobs.fraud_drift_job --backtest data/paysim/sample.csv --output-dir out/

Where the work runs: parsing the text, keying and cutting micro-batches happen in the JVM (SQL);
each micro-batch of one key crosses into Python once, through Arrow, where it is validated and
packed; a keyed process function cuts count windows from the micro-batches, keeps the
reference in keyed state and runs the vectorized statistics and scoring once per window.
"""

import argparse
import gzip
import json
import logging
import shutil
import sys
import time
from pathlib import Path

from pyflink.common import Types
from pyflink.common.serialization import Encoder, SimpleStringSchema
from pyflink.datastream.connectors.base import DeliveryGuarantee
from pyflink.datastream.connectors.file_system import FileSink, OutputFileConfig
from pyflink.datastream.connectors.kafka import KafkaRecordSerializationSchema, KafkaSink
from pyflink.table import StreamTableEnvironment

from jobs import backtest_report, postgres_sinks, settings
from jobs.flink_setup import create_environment
from udfs.csv_chunks import plan_chunks
from udfs.engine_config import REFERENCE_POLICIES, SHARD_SEPARATOR, EngineConfig
from udfs.flink_functions import (
    ALERTS_TAG,
    DEAD_LETTER_TAG,
    DRIFT_EVENTS_TAG,
    CsvChunkParser,
    DriftWindowFunction,
    MetricsTotals,
    pack_json_transactions,
)
from udfs.fraud_model import DEFAULT_MODEL_PATH, FraudModel, ModelArtifactError

logger = logging.getLogger("fraud_drift_job")

# How long the JVM gathers one key's transactions before handing them to Python as a batch.
# Shorter means lower alert latency and more, smaller crossings into Python.
DEFAULT_MICRO_BATCH_MS = 200
# The consumer group of the streaming job; offsets are also kept in its checkpoints.
CONSUMER_GROUP = "frauddrift-job"
OUTPUT_NAMES = ("windows", "drift_events", "flagged", "dead_letter")
NO_MODEL = "none"
EXACTLY_ONCE = "exactly-once"
ALERT_DELIVERY = {
    EXACTLY_ONCE: DeliveryGuarantee.EXACTLY_ONCE,
    "at-least-once": DeliveryGuarantee.AT_LEAST_ONCE,
}


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backtest", metavar="FILE.csv", help="run over a PaySim CSV file")
    parser.add_argument("--output-dir", metavar="DIR", help="where a backtest writes its files")
    parser.add_argument("--window-size", type=int, default=EngineConfig.window_size)
    parser.add_argument(
        "--window-time-bound",
        type=float,
        default=EngineConfig.window_time_bound_seconds,
        help="seconds a partial window waits before it is evaluated",
    )
    parser.add_argument("--reference-size", type=int, default=EngineConfig.reference_size)
    parser.add_argument(
        "--reference-policy", choices=REFERENCE_POLICIES, default=EngineConfig.reference_policy
    )
    parser.add_argument("--shards", type=int, default=1, help="shards per transaction type")
    parser.add_argument("--flag-threshold", type=float, default=EngineConfig.flag_threshold)
    parser.add_argument(
        "--key-flag-threshold",
        type=key_threshold,
        action="append",
        default=[],
        metavar="KEY=THRESHOLD",
        help="a flag threshold for one key or transaction type, for example TRANSFER=0.4",
    )
    parser.add_argument("--drift-weight", type=float, default=EngineConfig.drift_weight)
    parser.add_argument("--model-weight", type=float, default=EngineConfig.model_weight)
    parser.add_argument("--rule-weight", type=float, default=EngineConfig.rule_weight)
    parser.add_argument(
        "--model",
        default=str(DEFAULT_MODEL_PATH),
        help="the fraud model artifact (.npz), or 'none' to score without a model",
    )
    parser.add_argument("--parallelism", type=int, default=None)
    parser.add_argument("--micro-batch-ms", type=int, default=DEFAULT_MICRO_BATCH_MS)
    parser.add_argument("--checkpoint-interval", default=None, help="for example '5 s'")
    parser.add_argument(
        "--checkpoint-min-pause",
        default=None,
        help="least time between checkpoints, for example '200 ms'; alerts on Kafka are "
        "committed on checkpoints, so interval and pause bound how soon readers see them",
    )
    parser.add_argument("--checkpoint-dir", default=None, help="a URI, for example file:///...")
    parser.add_argument(
        "--restore-from",
        metavar="CHECKPOINT",
        default=None,
        help="a retained checkpoint or savepoint folder to resume from",
    )
    parser.add_argument(
        "--python-execution-mode",
        choices=("thread", "process"),
        default=None,
        help="where the Python functions run; flink-conf/config.yaml decides when not given",
    )
    parser.add_argument(
        "--bundle-ms",
        type=int,
        default=None,
        help="longest time a Python operator holds its output; lower means faster alerts and "
        "lower throughput (flink-conf/config.yaml decides when not given)",
    )
    parser.add_argument(
        "--alert-delivery",
        choices=tuple(ALERT_DELIVERY),
        default=EXACTLY_ONCE,
        help="exactly-once alerts reach read_committed readers when a checkpoint commits them; "
        "at-least-once alerts reach readers at once and may repeat after a restart (dedupe by "
        "transaction_id)",
    )
    parser.add_argument("--topic", default=settings.TRANSACTIONS_TOPIC)
    parser.add_argument("--group-id", default=CONSUMER_GROUP)
    args = parser.parse_args(argv)
    if args.backtest and not args.output_dir:
        parser.error("--backtest needs --output-dir")
    if args.backtest and not Path(args.backtest).is_file():
        parser.error(f"--backtest names {args.backtest}, which is not a file")
    try:
        args.fraud_model = None if args.model == NO_MODEL else FraudModel.load(args.model)
    except ModelArtifactError as error:
        parser.error(str(error))
    return args


def key_threshold(text):
    """``KEY=THRESHOLD`` from the command line as a (key, threshold) pair."""
    key, separator, threshold = text.partition("=")
    try:
        if key and separator:
            return key, float(threshold)
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"expected KEY=THRESHOLD, such as TRANSFER=0.4; got {text!r}")


def engine_config(args):
    return EngineConfig(
        window_size=args.window_size,
        window_time_bound_seconds=args.window_time_bound,
        reference_size=args.reference_size,
        reference_policy=args.reference_policy,
        shards=args.shards,
        flag_threshold=args.flag_threshold,
        flag_thresholds=dict(args.key_flag_threshold),
        drift_weight=args.drift_weight,
        model_weight=args.model_weight,
        rule_weight=args.rule_weight,
    )


def key_expression(type_column, name_column, shards):
    """SQL for the key: the transaction type, or type and shard of the origin account (the
    same shard as :func:`udfs.csv_chunks.account_shards` gives)."""
    if shards == 1:
        return type_column
    account_number = f"COALESCE(TRY_CAST(SUBSTRING({name_column}, 2) AS BIGINT), 0)"
    shard = f"CAST(ABS(MOD({account_number}, {shards})) AS STRING)"
    return f"CONCAT({type_column}, '{SHARD_SEPARATOR}', {shard})"


def interval(milliseconds):
    """A SQL interval of whole milliseconds (SQL has no millisecond unit for intervals)."""
    return f"INTERVAL '{milliseconds / 1000:.3f}' SECOND(6, 3)"


def kafka_micro_batches(table_env, args):
    """Micro-batches of Kafka records per key, cut by processing time."""
    table_env.execute_sql(f"""
        CREATE TEMPORARY TABLE kafka_transactions (
            payload STRING,
            `topic` STRING METADATA VIRTUAL,
            `partition` INT METADATA VIRTUAL,
            `offset` BIGINT METADATA VIRTUAL,
            proctime AS PROCTIME()
        ) WITH (
            'connector' = 'kafka',
            'topic' = '{args.topic}',
            'properties.bootstrap.servers' = '{settings.KAFKA_BOOTSTRAP_SERVERS}',
            'properties.group.id' = '{args.group_id}',
            'properties.auto.offset.reset' = 'earliest',
            'scan.startup.mode' = 'group-offsets',
            'value.format' = 'raw'
        )""")
    table_env.create_temporary_function("pack_json_transactions", pack_json_transactions)
    # A record whose type cannot be read still gets a key, so that validation in Python can
    # dead-letter it with its reason instead of SQL dropping it.
    type_column = "COALESCE(JSON_VALUE(payload, '$.type'), '?')"
    name_column = "COALESCE(JSON_VALUE(payload, '$.nameOrig'), '')"
    key = key_expression(type_column, name_column, args.shards)
    return table_env.sql_query(f"""
        SELECT {key} AS key, '{args.topic}' AS source,
               pack_json_transactions(`topic`, `partition`, `offset`, payload) AS packed
        FROM kafka_transactions
        GROUP BY {key}, TUMBLE(proctime, {interval(args.micro_batch_ms)})""")


def file_micro_batches(env, csv_path, source, shards):
    """Batches per key of a CSV file, a chunk of whole lines at a time, in file order.

    The source holds only chunk descriptors; each chunk crosses into Python once, where it is
    parsed, validated and split by key. One parser keeps the file's order, which the count
    windows of every key follow.
    """
    chunks = [
        (chunk.path, chunk.start, chunk.end, chunk.first_row) for chunk in plan_chunks(csv_path)
    ]
    chunk_type = Types.TUPLE([Types.STRING(), Types.LONG(), Types.LONG(), Types.LONG()])
    return (
        env.from_collection(chunks, type_info=chunk_type)
        .name("file chunks")
        .flat_map(
            CsvChunkParser(source, shards),
            output_type=Types.TUPLE(
                [Types.STRING(), Types.STRING(), Types.PRIMITIVE_ARRAY(Types.BYTE())]
            ),
        )
        .set_parallelism(1)
        .name("parse and validate chunks")
    )


def readable_copy(csv_path, work_dir):
    """``csv_path`` itself, or for a .gz file its decompressed copy in ``work_dir``: chunks are
    byte ranges, which a compressed file does not have."""
    csv_path = Path(csv_path)
    if csv_path.suffix != ".gz":
        return csv_path
    Path(work_dir).mkdir(parents=True, exist_ok=True)
    copy = Path(work_dir) / csv_path.name.removesuffix(".gz")
    with gzip.open(csv_path, "rb") as compressed, copy.open("wb") as plain:
        shutil.copyfileobj(compressed, plain)
    return copy


def kafka_sink(topic, name, job_name, guarantee=DeliveryGuarantee.EXACTLY_ONCE):
    """A sink to ``topic``; ``job_name`` keeps its transactions apart from other jobs'.

    Kafka fences a producer whose transactional id another producer took over, and a job
    resuming from a checkpoint aborts what its own earlier run left open under its prefix: two
    jobs that shared a prefix would fence and abort each other. The consumer group names the
    job and stays the same when it resumes, so it goes into the prefix. An at-least-once sink
    writes without transactions and flushes on every checkpoint, so nothing is lost either.
    """
    builder = (
        KafkaSink.builder()
        .set_bootstrap_servers(settings.KAFKA_BOOTSTRAP_SERVERS)
        .set_record_serializer(
            KafkaRecordSerializationSchema.builder()
            .set_topic(topic)
            .set_value_serialization_schema(SimpleStringSchema())
            .build()
        )
        .set_delivery_guarantee(guarantee)
    )
    if guarantee == DeliveryGuarantee.EXACTLY_ONCE:
        builder = (
            builder.set_transactional_id_prefix(f"frauddrift-{job_name}-{name}")
            # Must not exceed the broker's transaction.max.timeout.ms (one hour on the stack).
            .set_property("transaction.timeout.ms", str(15 * 60 * 1000))
        )
    return builder.build()


def file_sink(directory):
    return (
        FileSink.for_row_format(str(directory), Encoder.simple_string_encoder())
        .with_output_file_config(OutputFileConfig.builder().with_part_suffix(".jsonl").build())
        .build()
    )


def build(env, table_env, args, config):
    """Lay out the whole pipeline; returns nothing, ``env.execute`` runs it."""
    # Source, parsing and micro-batching (JVM), validation and packing (Python, per batch).
    if args.backtest:
        output_dir = Path(args.output_dir).resolve()
        readable = readable_copy(args.backtest, output_dir / backtest_report.PARTS_FOLDER)
        source = str(Path(args.backtest).resolve())
        micro_batches = file_micro_batches(env, str(readable), source, args.shards)
    else:
        micro_batches = table_env.to_data_stream(kafka_micro_batches(table_env, args))

    # Keying, count windows, reference state, verdicts and scores.
    windows = (
        micro_batches.key_by(lambda batch: batch[0], key_type=Types.STRING())
        .process(
            DriftWindowFunction(config, args.fraud_model, wall_clock_bound=not args.backtest),
            output_type=Types.STRING(),
        )
        .name("drift windows and scoring")
        .uid("drift-windows")
    )
    outputs = {
        "windows": windows,
        "drift_events": windows.get_side_output(DRIFT_EVENTS_TAG),
        "flagged": windows.get_side_output(ALERTS_TAG),
        "dead_letter": windows.get_side_output(DEAD_LETTER_TAG),
    }

    # Sinks.
    if args.backtest:
        parts = Path(args.output_dir).resolve() / backtest_report.PARTS_FOLDER
        for name, stream in outputs.items():
            stream.sink_to(file_sink(parts / name)).name(f"{name} files")
        return
    exactly_once = DeliveryGuarantee.EXACTLY_ONCE
    kafka_outputs = (
        ("flagged", settings.ALERTS_TOPIC, "alerts", ALERT_DELIVERY[args.alert_delivery]),
        ("drift_events", settings.DRIFT_EVENTS_TOPIC, "drift events", exactly_once),
        ("dead_letter", settings.DEAD_LETTER_TOPIC, "dead letters", exactly_once),
    )
    for stream_name, topic, label, guarantee in kafka_outputs:
        sink = kafka_sink(topic, topic, args.group_id, guarantee)
        outputs[stream_name].sink_to(sink).name(f"{label} to Kafka")

    # Running detection metrics, rewritten in PostgreSQL after every window.
    outputs["metric_totals"] = (
        windows.key_by(lambda record: json.loads(record)["source"], key_type=Types.STRING())
        .process(MetricsTotals(), output_type=Types.STRING())
        .name("detection metrics")
        .uid("metrics-totals")
    )
    postgres_sinks.attach(table_env, outputs)


def main(argv=None):
    args = parse_arguments(argv)
    config = engine_config(args)
    overrides = {}
    if args.parallelism:
        overrides["parallelism.default"] = str(args.parallelism)
    if args.checkpoint_dir:
        overrides["execution.checkpointing.dir"] = args.checkpoint_dir
    if args.restore_from:
        overrides["execution.state-recovery.path"] = args.restore_from
    if args.python_execution_mode:
        overrides["python.execution-mode"] = args.python_execution_mode
    if args.checkpoint_interval:
        overrides["execution.checkpointing.interval"] = args.checkpoint_interval
    if args.bundle_ms:
        overrides["python.fn-execution.bundle.time"] = str(args.bundle_ms)
    if args.checkpoint_min_pause:
        overrides["execution.checkpointing.min-pause"] = args.checkpoint_min_pause
    if args.backtest:
        output_dir = Path(args.output_dir)
        backtest_report.prepare(output_dir)

    started = time.monotonic()
    env = create_environment(overrides)
    table_env = StreamTableEnvironment.create(env)
    build(env, table_env, args, config)
    logger.info("configuration %s: %s", config.version, config)
    env.execute("frauddrift backtest" if args.backtest else "frauddrift streaming")

    if args.backtest:
        report = backtest_report.finish(output_dir, args.backtest, time.monotonic() - started)
        logger.info("backtest report: %s", report)
    return 0


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    sys.exit(main())
