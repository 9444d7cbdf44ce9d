"""Run the streaming job until every record of a topic is accounted for, then stop it.

A streaming job never ends by itself. The demo and the end-to-end tests need it to stop once it
has processed what was sent: this module starts the job on a local mini-cluster in a child
process, waits until the transactions in windows (PostgreSQL) plus the dead letters (Kafka)
reconcile with the records sent, waits until checkpoints have committed every Kafka transaction
the job wrote, and stops the job.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from kafka import KafkaConsumer, TopicPartition

from jobs import settings

POLL_SECONDS = 2.0
# Checkpoints commit the exactly-once Kafka sinks; a short interval keeps runs short.
CHECKPOINT_INTERVAL = "2 s"
CHECKPOINT_INTERVAL_SECONDS = 2.0
# Every output of the job on Kafka; the alerts may be written with or without transactions.
OUTPUT_TOPICS = (settings.ALERTS_TOPIC, settings.DRIFT_EVENTS_TOPIC, settings.DEAD_LETTER_TOPIC)
# How long after the last record the job's output may take to be committed.
COMMIT_TIMEOUT_SECONDS = 60.0


def processed_rows(source, since=None):
    """Transactions of ``source`` that windows in PostgreSQL account for.

    With ``since``, a timezone-aware datetime, only windows evaluated from then on count: a
    second run over the same records rewrites the rows of the first, which would otherwise
    account for everything before the second run has begun.
    """
    query = "SELECT COALESCE(SUM(row_count), 0) FROM window_stats WHERE source = %s"
    parameters = [source]
    if since is not None:
        query += " AND evaluated_at >= %s"
        parameters.append(since)
    with psycopg.connect(settings.POSTGRES_DSN) as connection:
        row = connection.execute(query, parameters).fetchone()
    return int(row[0])


def topic_records(topic, source, timeout_seconds=3.0):
    """The committed JSON records of ``topic`` whose source is ``source``."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",
        consumer_timeout_ms=int(timeout_seconds * 1000),
    )
    try:
        records = [json.loads(message.value) for message in consumer]
    finally:
        consumer.close()
    return [record for record in records if record.get("source") == source]


def end_offsets(topic):
    """End offsets of ``topic`` per partition: ``(written, readable)``.

    ``written`` counts every record; ``readable`` stops at the first record of a Kafka
    transaction still open, beyond which read_committed consumers see nothing, not even
    records committed later by others.
    """
    ends = {}
    for isolation in ("read_uncommitted", "read_committed"):
        consumer = KafkaConsumer(
            bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
            enable_auto_commit=False,
            isolation_level=isolation,
        )
        try:
            partitions = [
                TopicPartition(topic, partition)
                for partition in sorted(consumer.partitions_for_topic(topic) or ())
            ]
            ends[isolation] = {
                partition.partition: offset
                for partition, offset in consumer.end_offsets(partitions).items()
            }
        finally:
            consumer.close()
    return ends["read_uncommitted"], ends["read_committed"]


def uncommitted_records(topic):
    """Records of ``topic`` that read_committed consumers cannot read yet."""
    written, readable = end_offsets(topic)
    return sum(end - readable[partition] for partition, end in written.items())


def start_job(topic, group_id, extra_args=()):
    """Start the streaming job on ``topic`` in a child process of its own process group.

    Returns the ``subprocess.Popen`` and the path of its log; :func:`stop_job` ends it.
    """
    command = [
        sys.executable,
        "-m",
        "jobs.fraud_drift_job",
        "--topic",
        topic,
        "--group-id",
        group_id,
        "--checkpoint-interval",
        CHECKPOINT_INTERVAL,
        *extra_args,
    ]
    log_path = settings.STACK_DIR / "logs" / f"job-{group_id}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as log:
        job = subprocess.Popen(
            command,
            cwd=settings.REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return job, log_path


def stop_job(job, hard=False):
    """End the job and the JVM it started; ``hard`` kills without a chance to clean up."""
    if job.poll() is None:
        os.killpg(job.pid, signal.SIGKILL if hard else signal.SIGTERM)
        try:
            job.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(job.pid, signal.SIGKILL)  # whatever the group still holds, such as the JVM


def run_until_consumed(
    topic, expected_records, group_id, timeout_seconds=300, extra_args=(), rerun=False
):
    """Run the job on ``topic`` until ``expected_records`` are processed or dead-lettered.

    ``rerun`` says that another job has processed these records before, from the start of
    the topic: only windows this run evaluates count then. A job resumed from a checkpoint is
    no rerun, as the windows before its checkpoint are not evaluated again.

    Returns
    -------
    dict
        ``processed`` and ``dead_lettered`` counts and the job's ``seconds``.

    Raises
    ------
    TimeoutError
        When the counts do not reconcile in time; the job's log tail is in the message.
    """
    started = time.monotonic()
    counted_from = datetime.now(UTC) if rerun else None
    job, log_path = start_job(topic, group_id, extra_args)
    try:
        counts = _wait_for_reconciliation(
            job, topic, expected_records, timeout_seconds, counted_from
        )
        # Two checkpoints flush what the at-least-once alerts writer holds. Stopping kills the
        # job: a transaction it left open would hide the rest of its partition from
        # read_committed readers until the broker timed it out, 15 minutes on.
        time.sleep(2 * CHECKPOINT_INTERVAL_SECONDS)
        _wait_for_committed_output(job)
    except TimeoutError as error:
        raise TimeoutError(f"{error}; job log {log_path}:\n{_tail(log_path)}") from None
    finally:
        stop_job(job)
    counts["seconds"] = round(time.monotonic() - started, 1)
    return counts


def latest_checkpoint(checkpoint_root):
    """The newest completed checkpoint folder under ``checkpoint_root``, or None."""
    completed = [metadata.parent for metadata in Path(checkpoint_root).glob("*/chk-*/_metadata")]
    if not completed:
        return None
    return max(completed, key=lambda folder: int(folder.name.split("-")[1]))


def _wait_for_reconciliation(job, topic, expected_records, timeout_seconds, counted_from):
    deadline = time.monotonic() + timeout_seconds
    processed = dead_lettered = 0
    while time.monotonic() < deadline:
        if job.poll() is not None:
            raise TimeoutError(f"the job exited early with code {job.returncode}")
        processed = processed_rows(topic, since=counted_from)
        # Every run over the same records dead-letters the same ones again.
        dead_letters = topic_records(settings.DEAD_LETTER_TOPIC, topic, POLL_SECONDS)
        dead_lettered = len(
            {(letter.get("partition"), letter["position"]) for letter in dead_letters}
        )
        if processed + dead_lettered >= expected_records:
            return {"processed": processed, "dead_lettered": dead_lettered}
    raise TimeoutError(
        f"after {timeout_seconds} s the job had processed {processed} and dead-lettered "
        f"{dead_lettered} of {expected_records} records"
    )


def _wait_for_committed_output(job):
    deadline = time.monotonic() + COMMIT_TIMEOUT_SECONDS
    while True:
        held = {topic: uncommitted_records(topic) for topic in OUTPUT_TOPICS}
        if not any(held.values()):
            return
        if job.poll() is not None or time.monotonic() > deadline:
            raise TimeoutError(
                f"records of the job's output are held by open Kafka transactions: {held}"
            )
        time.sleep(POLL_SECONDS)


def _tail(path, lines=40):
    with open(path, errors="replace") as handle:
        return "".join(handle.readlines()[-lines:])
