"""Replay the bundled PaySim sample into Kafka, run the streaming job over it, and summarise.

Called by scripts/demo.sh once the stack is up. The job runs on a local mini-cluster until every
record in the topic is in a window or in the dead-letter topic, then stops.
"""

import logging
import sys

import psycopg
from kafka import KafkaConsumer, TopicPartition

from jobs import settings
from jobs.streaming_runner import run_until_consumed, topic_records
from scripts import replay

SAMPLE = settings.REPO_ROOT / "data" / "paysim" / "paysim_head_29999_steps1-8.csv"
TOPIC = settings.TRANSACTIONS_TOPIC
GROUP_ID = "frauddrift-demo"
SHOWN_ALERTS = 5


def records_in_topic(topic):
    consumer = KafkaConsumer(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        return sum(consumer.end_offsets(partitions).values())
    finally:
        consumer.close()


def summarise(connection):
    print("\nPostgreSQL")
    for table in ("window_stats", "drift_events", "flagged_transactions", "fraud_metrics"):
        count = connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        print(f"  {table:22} {count:>8,} rows")
    print("\nDrift events per transaction type")
    for key, events, windows in connection.execute(
        "SELECT w.key, COUNT(d.window_id), COUNT(*) FROM window_stats w "
        "LEFT JOIN drift_events d USING (window_id) WHERE w.source = %s "
        "GROUP BY w.key ORDER BY w.key",
        (TOPIC,),
    ):
        print(f"  {key:10} {events:>4} of {windows:>4} windows")
    print("\nDetection against the labels (table fraud_metrics)")
    for scope, frauds, flagged, precision, recall, f1, auprc in connection.execute(
        "SELECT scope, frauds, flagged, precision, recall, f1, auprc FROM fraud_metrics "
        "WHERE source = %s AND (scope = 'all' OR frauds > 0) ORDER BY scope",
        (TOPIC,),
    ):
        figures = " ".join(
            f"{name} {'n/a' if value is None else f'{value:.3f}'}"
            for name, value in (
                ("precision", precision),
                ("recall", recall),
                ("F1", f1),
                ("AUPRC", auprc),
            )
        )
        print(f"  {scope:15} {frauds:>5} frauds {flagged:>5} flagged  {figures}")
    print(f"\nThe {SHOWN_ALERTS} highest-risk flagged transactions")
    for row in connection.execute(
        "SELECT transaction_id, type, amount, risk_score, model_probability, rule_score, "
        "reasons, model_version FROM flagged_transactions WHERE source = %s "
        "ORDER BY risk_score DESC, transaction_id LIMIT %s",
        (TOPIC, SHOWN_ALERTS),
    ):
        transaction_id, kind, amount, risk, model, rule, reasons, version = row
        print(
            f"  {transaction_id:34} {kind:9} {amount:>14,.2f}  risk {risk:.2f} "
            f"(model {model:.2f} {version}, rules {rule:.2f})  {', '.join(reasons)}"
        )


def main():
    logging.basicConfig(level=logging.WARNING)
    sent = replay.replay(SAMPLE, TOPIC).total()
    print(f"replayed {sent:,} transactions from {SAMPLE.name} into '{TOPIC}'")

    expected = records_in_topic(TOPIC)
    print(f"running the streaming job until all {expected:,} records in '{TOPIC}' are processed")
    counts = run_until_consumed(TOPIC, expected, group_id=GROUP_ID, timeout_seconds=600)
    print(
        f"processed {counts['processed']:,}, dead-lettered {counts['dead_lettered']:,} "
        f"in {counts['seconds']} s"
    )

    print("\nKafka")
    for topic in (settings.ALERTS_TOPIC, settings.DRIFT_EVENTS_TOPIC, settings.DEAD_LETTER_TOPIC):
        print(f"  {topic:22} {len(topic_records(topic, TOPIC)):>8,} records")
    with psycopg.connect(settings.POSTGRES_DSN) as connection:
        summarise(connection)

    print(
        "\nWhere to look next:\n"
        "  psql postgresql://frauddrift:frauddrift@127.0.0.1:5432/frauddrift\n"
        "    SELECT key, first_row, drifted_features, explanation FROM drift_events;\n"
        "  .venv/bin/python -m jobs.fraud_drift_job --backtest "
        "data/paysim/paysim_head_29999_steps1-8.csv --output-dir output/backtest\n"
        "  scripts/stack.sh down    # stop Kafka, PostgreSQL (and Flink)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
