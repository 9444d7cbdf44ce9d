"""The streaming job end to end through real Kafka, PostgreSQL and a Flink mini-cluster."""

import json
import time
import uuid
from collections import Counter

import pytest

from jobs import settings
from jobs.streaming_runner import (
    latest_checkpoint,
    processed_rows,
    run_until_consumed,
    start_job,
    stop_job,
    topic_records,
)
from scripts import replay
from udfs.fraud_model import DEFAULT_MODEL_PATH, FraudModel
from udfs.transactions import KNOWN_TYPES

SAMPLE = settings.REPO_ROOT / "data" / "paysim" / "paysim_head_29999_steps1-8.csv"
SAMPLE_ROWS = 29999
# Enough rows for every type to fill its reference and be judged, few enough for a quick run.
REPLAYED_ROWS = 20000
VALID_RECORD = {
    "step": 1,
    "type": "TRANSFER",
    "amount": 5.0,
    "nameOrig": "C1",
    "oldbalanceOrg": 1.0,
    "newbalanceOrig": 0.0,
    "nameDest": "C2",
    "oldbalanceDest": 0.0,
    "newbalanceDest": 0.0,
    "isFraud": 0,
    "isFlaggedFraud": 0,
}
BAD_RECORDS = {
    b"{not json": "not valid JSON",
    b'{"step": 1, "type": "TRANSFER"}': "missing field 'amount'",
    json.dumps({**VALID_RECORD, "amount": -5.0}).encode(): "field 'amount' must not be negative",
    json.dumps({**VALID_RECORD, "type": "WIRE"}).encode(): "field 'type' must be one of",
}


def postgres_counts(postgres, topic):
    windows = postgres.execute(
        "SELECT COUNT(*), COALESCE(SUM(row_count), 0), COUNT(*) FILTER (WHERE drifted) "
        "FROM window_stats WHERE source = %s",
        (topic,),
    ).fetchone()
    drift_events = postgres.execute(
        "SELECT COUNT(*) FROM drift_events WHERE source = %s", (topic,)
    ).fetchone()[0]
    flagged = postgres.execute(
        "SELECT COUNT(*) FROM flagged_transactions WHERE source = %s", (topic,)
    ).fetchone()[0]
    return {
        "windows": windows[0],
        "rows": int(windows[1]),
        "drifted_windows": windows[2],
        "drift_events": drift_events,
        "flagged": flagged,
    }


@pytest.fixture(scope="module")
def replayed_topic(kafka_admin):
    from kafka import KafkaProducer
    from kafka.admin import NewTopic

    # One partition: the order of every key's records, and so its windows, is then fixed.
    topic = f"test-stream-{uuid.uuid4().hex[:8]}"
    kafka_admin.create_topics([NewTopic(topic, 1, replication_factor=1)])
    producer = KafkaProducer(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS, acks="all")
    sent = replay.replay(SAMPLE, topic, limit=REPLAYED_ROWS, producer=producer).total()
    for payload in BAD_RECORDS:
        producer.send(topic, payload)
    producer.flush()
    producer.close()
    yield topic, sent + len(BAD_RECORDS)
    kafka_admin.delete_topics([topic])


@pytest.fixture(scope="module")
def first_run(replayed_topic):
    topic, expected = replayed_topic
    return run_until_consumed(topic, expected, group_id=f"{topic}-first", timeout_seconds=240)


def test_records_in_reconcile_with_records_processed_and_dead_lettered(
    replayed_topic, first_run, postgres
):
    topic, expected = replayed_topic

    counts = postgres_counts(postgres, topic)

    assert first_run["dead_lettered"] == len(BAD_RECORDS)
    assert counts["rows"] == REPLAYED_ROWS
    assert counts["rows"] + first_run["dead_lettered"] == expected


def test_bad_records_reach_dead_letter_with_payload_reason_and_position(replayed_topic, first_run):
    topic, _ = replayed_topic

    dead_letters = topic_records(settings.DEAD_LETTER_TOPIC, topic)

    by_payload = {letter["payload"].encode(): letter for letter in dead_letters}
    assert set(by_payload) == set(BAD_RECORDS)
    for payload, reason in BAD_RECORDS.items():
        assert reason in by_payload[payload]["reason"]
        assert by_payload[payload]["partition"] == 0
        assert by_payload[payload]["position"] >= REPLAYED_ROWS  # sent after the good rows


def test_drift_events_and_alerts_match_between_kafka_and_postgres(
    replayed_topic, first_run, postgres
):
    topic, _ = replayed_topic

    kafka_events = topic_records(settings.DRIFT_EVENTS_TOPIC, topic)
    kafka_alerts = topic_records(settings.ALERTS_TOPIC, topic)
    counts = postgres_counts(postgres, topic)
    stored_alerts = postgres.execute(
        "SELECT transaction_id, risk_score FROM flagged_transactions "
        "WHERE transaction_id = ANY(%s)",
        ([alert["transaction_id"] for alert in kafka_alerts],),
    ).fetchall()

    assert counts["drift_events"] > 0
    assert len(kafka_events) == counts["drift_events"] == counts["drifted_windows"]
    assert kafka_alerts, "the sample holds drained accounts, which the model and rules flag"
    assert len(stored_alerts) == len({alert["transaction_id"] for alert in kafka_alerts})
    for event in kafka_events:
        assert event["drifted"] and event["drifted_features"]
        assert event["explanation"]["features"]
        assert event["config_version"]
    for alert in kafka_alerts:
        assert alert["risk_score"] >= 0.5
        assert alert["reasons"]
        assert alert["model_version"] == FraudModel.load(DEFAULT_MODEL_PATH).version


def test_detection_metrics_are_kept_current_in_postgres(replayed_topic, first_run, postgres):
    topic, _ = replayed_topic
    labels = [int(line.split(",")[9]) for line in SAMPLE.read_text().splitlines()[1:]]
    frauds_sent = sum(labels[:REPLAYED_ROWS])

    totals = postgres.execute(
        "SELECT scope, windows, labelled, frauds, flagged, true_positives, precision, recall, "
        "auprc FROM fraud_metrics WHERE source = %s",
        (topic,),
    ).fetchall()
    windows_stored = postgres.execute(
        "SELECT COUNT(*), SUM(flagged) FROM window_stats WHERE source = %s", (topic,)
    ).fetchone()
    frauds_flagged = postgres.execute(
        "SELECT COUNT(*) FILTER (WHERE is_fraud) FROM flagged_transactions WHERE source = %s",
        (topic,),
    ).fetchone()[0]

    by_scope = {row[0]: row[1:] for row in totals}
    windows, labelled, frauds, flagged, caught, precision, recall, auprc = by_scope["all"]
    assert (windows, flagged) == tuple(windows_stored)
    assert (labelled, frauds, caught) == (REPLAYED_ROWS, frauds_sent, frauds_flagged)
    assert precision > 0.9 and recall > 0.9 and auprc > 0.9
    type_scopes = {scope for scope in by_scope if scope.startswith("type:")}
    assert type_scopes == {f"type:{name}" for name in KNOWN_TYPES}
    assert sum(by_scope[scope][1] for scope in type_scopes) == REPLAYED_ROWS
    assert sum(by_scope[scope][2] for scope in type_scopes) == frauds_sent


# Runs over whole windows only, with the time bound out of reach: every window then closes on
# its count, the same on every run, whatever the pace of the job.
WHOLE_WINDOW_SIZE = 200
COUNT_WINDOWS_ONLY = (
    "--window-size",
    str(WHOLE_WINDOW_SIZE),
    "--reference-size",
    "1000",
    "--window-time-bound",
    "3600",
)


def whole_windows_csv(path, window_size):
    """The sample cut so that every type has a whole number of windows: with no time-bound
    window anywhere, every window of a run is a count window, the same on every run."""
    header, *lines = SAMPLE.read_text().splitlines()
    types = [line.split(",")[1] for line in lines]
    keep = {kind: types.count(kind) // window_size * window_size for kind in set(types)}
    kept = []
    for line, kind in zip(lines, types, strict=True):
        if keep[kind] > 0:
            kept.append(line)
            keep[kind] -= 1
    path.write_text("\n".join([header, *kept]) + "\n")
    return path


def test_replaying_the_same_input_upserts_the_same_rows(make_topic, producer, postgres, tmp_path):
    topic = make_topic("rerun")
    whole_windows = whole_windows_csv(tmp_path / "whole.csv", WHOLE_WINDOW_SIZE)
    sent = replay.replay(whole_windows, topic, producer=producer).total()
    run_until_consumed(
        topic, sent, group_id=f"{topic}-first", timeout_seconds=240, extra_args=COUNT_WINDOWS_ONLY
    )
    before = postgres_counts(postgres, topic)
    kafka_alerts_before = topic_records(settings.ALERTS_TOPIC, topic)

    # A new consumer group reads the whole topic again, as after a reset of the job; this run
    # writes its alerts without Kafka transactions.
    run_until_consumed(
        topic,
        sent,
        group_id=f"{topic}-second",
        timeout_seconds=240,
        extra_args=(*COUNT_WINDOWS_ONLY, "--alert-delivery", "at-least-once"),
        rerun=True,
    )

    assert before["rows"] == sent and before["flagged"] > 0
    assert postgres_counts(postgres, topic) == before
    # Kafka keeps both runs' alerts: the same transactions, each once per run.
    ids_before = Counter(alert["transaction_id"] for alert in kafka_alerts_before)
    ids_after = Counter(
        alert["transaction_id"] for alert in topic_records(settings.ALERTS_TOPIC, topic)
    )
    assert len(ids_before) == before["flagged"] and set(ids_before.values()) == {1}
    assert ids_after == ids_before + ids_before


def test_job_killed_mid_stream_resumes_from_its_checkpoint_without_loss_or_duplicates(
    make_topic, producer, postgres, tmp_path
):
    topic = make_topic("restart")
    whole_windows = whole_windows_csv(tmp_path / "whole.csv", WHOLE_WINDOW_SIZE)
    sent = replay.replay(whole_windows, topic, producer=producer).total()
    checkpoints = tmp_path / "checkpoints"
    job_arguments = ["--checkpoint-dir", checkpoints.as_uri(), *COUNT_WINDOWS_ONLY]

    # Run until part of the stream is processed and a checkpoint is complete, then kill the
    # job outright, as a crashed machine would.
    job, log_path = start_job(topic, topic, job_arguments)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if processed_rows(topic) >= 5000 and latest_checkpoint(checkpoints) is not None:
                break
            assert job.poll() is None, log_path.read_text()[-3000:]
            time.sleep(1)
    finally:
        stop_job(job, hard=True)
    checkpoint = latest_checkpoint(checkpoints)
    assert checkpoint is not None, log_path.read_text()[-3000:]

    run_until_consumed(
        topic,
        sent,
        group_id=topic,
        timeout_seconds=240,
        extra_args=[*job_arguments, "--restore-from", str(checkpoint)],
    )

    counts = postgres_counts(postgres, topic)
    alerts = topic_records(settings.ALERTS_TOPIC, topic)
    events = topic_records(settings.DRIFT_EVENTS_TOPIC, topic)
    stored = postgres.execute(
        "SELECT COUNT(*) FROM flagged_transactions WHERE transaction_id = ANY(%s)",
        ([alert["transaction_id"] for alert in alerts],),
    ).fetchone()[0]
    # Every transaction is in exactly one window: the rerun cut the same windows as the killed
    # run had, and PostgreSQL upserted them. Kafka holds each alert and drift event once: what
    # the killed job wrote after its last checkpoint was never committed.
    assert counts["rows"] == sent
    assert counts["drift_events"] == counts["drifted_windows"] > 0
    assert len(alerts) == len({alert["transaction_id"] for alert in alerts}) == stored
    assert len(events) == len({event["window_id"] for event in events})
    assert len(events) == counts["drifted_windows"]
