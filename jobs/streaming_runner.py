"""Run the streaming job until every record of a topic is accounted for, then stop it.

A streaming job never ends by itself. The demo and the end-to-end tests need it to stop once it
has processed what was sent: this module starts the job on a local mini-cluster in a child
process, waits until the transactions in windows (PostgreSQL) plus the dead letters (Kafka)
reconcile with the records sent, lets one more checkpoint commit the Kafka transactions, and
stops the job.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
from kafka import KafkaConsumer

from jobs import settings

POLL_SECONDS = 2.0
# Checkpoints commit the exactly-once Kafka sinks; a short interval keeps runs short.
CHECKPOINT_INTERVAL = "2 s"
CHECKPOINT_INTERVAL_SECONDS = 2.0


def processed_rows(source):
    """Transactions of ``source`` that windows in PostgreSQL account for."""
    with psycopg.connect(settings.POSTGRES_DSN) as connection:
        row = connection.execute(
            "SELECT COALESCE(SUM(row_count), 0) FROM window_stats WHERE source = %s", (source,)
        ).fetchone()
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


def run_until_consumed(topic, expected_records, group_id, timeout_seconds=300, extra_args=()):
    """Run the job on ``topic`` until ``expected_records`` are processed or dead-lettered.

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
    job, log_path = start_job(topic, group_id, extra_args)
    try:
        counts = _wait_for_reconciliation(job, topic, expected_records, timeout_seconds)
        # Let one more checkpoint commit what the Kafka sinks wrote since the last one.
        time.sleep(2 * CHECKPOINT_INTERVAL_SECONDS)
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


def _wait_for_reconciliation(job, topic, expected_records, timeout_seconds):
    deadline = time.monotonic() + timeout_seconds
    processed = dead_lettered = 0
    while time.monotonic() < deadline:
        if job.poll() is not None:
            raise TimeoutError(f"the job exited early with code {job.returncode}")
        processed = processed_rows(topic)
        dead_lettered = len(topic_records(settings.DEAD_LETTER_TOPIC, topic, POLL_SECONDS))
        if processed + dead_lettered >= expected_records:
            return {"processed": processed, "dead_lettered": dead_lettered}
    raise TimeoutError(
        f"after {timeout_seconds} s the job had processed {processed} and dead-lettered "
        f"{dead_lettered} of {expected_records} records"
    )


def _tail(path, lines=40):
    with open(path, errors="replace") as handle:
        return "".join(handle.readlines()[-lines:])
