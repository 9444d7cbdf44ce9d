"""The standalone cluster of `scripts/stack.sh up --flink` runs jobs sent by scripts/submit.sh."""

import json
import subprocess
import time
import urllib.request

import pytest
from kafka import KafkaProducer

from jobs import settings
from jobs.streaming_runner import processed_rows
from scripts import replay
from tests.conftest import consume_all

SUBMIT_TIMEOUT_SECONDS = 300
SAMPLE = settings.REPO_ROOT / "data" / "paysim" / "paysim_head_29999_steps1-8.csv"
CLUSTER_ROWS = 8000
SUBMITTED_LINE = "Job has been submitted with JobID"

pytestmark = pytest.mark.flink_cluster


def flink_rest(path, method="GET"):
    request = urllib.request.Request(f"{settings.FLINK_REST_URL}{path}", method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()
    return json.loads(body) if body else None


def submit(*job_arguments):
    """Send a job with scripts/submit.sh; return the job id the client reports."""
    completed = subprocess.run(
        ["bash", str(settings.REPO_ROOT / "scripts" / "submit.sh"), *job_arguments],
        cwd=settings.REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=SUBMIT_TIMEOUT_SECONDS,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return next(
        line.split()[-1]
        for line in completed.stdout.splitlines()
        if line.startswith(SUBMITTED_LINE)
    )


def test_cluster_reports_a_taskmanager_with_free_slots():
    taskmanagers = flink_rest("/taskmanagers")["taskmanagers"]
    assert len(taskmanagers) >= 1
    assert sum(manager["slotsNumber"] for manager in taskmanagers) >= 2


def test_job_submitted_with_flink_run_py_finishes_on_the_cluster(make_topic):
    topic = make_topic("cluster-smoke")
    count = 25

    job_id = submit("jobs/smoke_job.py", "--topic", topic, "--count", str(count))

    assert flink_rest(f"/jobs/{job_id}")["state"] == "FINISHED"
    records = [json.loads(record.value) for record in consume_all(topic, expected_count=count)]
    assert sorted(record["sequence"] for record in records) == list(range(count))
    assert all(record["square"] == record["sequence"] ** 2 for record in records)


def test_streaming_job_runs_on_the_cluster_with_readable_operator_names(make_topic):
    topic = make_topic("cluster-stream")
    producer = KafkaProducer(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS)
    sent = replay.replay(SAMPLE, topic, limit=CLUSTER_ROWS, producer=producer).total()
    producer.close()

    job_id = submit(
        "--detached",
        "jobs/fraud_drift_job.py",
        "--topic",
        topic,
        "--group-id",
        topic,
        "--checkpoint-interval",
        "2 s",
    )
    try:
        deadline = time.monotonic() + SUBMIT_TIMEOUT_SECONDS
        while processed_rows(topic) < sent and time.monotonic() < deadline:
            time.sleep(2)
        vertices = [vertex["name"] for vertex in flink_rest(f"/jobs/{job_id}")["vertices"]]
    finally:
        flink_rest(f"/jobs/{job_id}?mode=cancel", method="PATCH")

    assert processed_rows(topic) == sent
    assert any("drift windows and scoring" in name for name in vertices)
    assert any("alerts to Kafka" in name for name in vertices)
