"""Stream a PaySim CSV file into Kafka as JSON, one record per transaction.

    python scripts/replay.py data/paysim/paysim_head_29999_steps1-8.csv
    python scripts/replay.py FILE.csv --rate 20000 --topic transactions

Records are keyed by ``nameOrig``, so that one account's transactions stay in order on one
partition, and carry a ``transaction_id`` made of the file name and the row, so that replaying
the same file again produces the same ids. The file is read line by line: memory stays flat
whatever its size. Prints what it sent when done.
"""

import argparse
import csv
import json
import logging
import sys
import time
from pathlib import Path

from kafka import KafkaProducer

from jobs import settings
from jobs.backtest_report import open_text_file
from udfs.transactions import FIELDS, LABEL_FIELDS, MONEY_FIELDS

PROGRESS_EVERY_ROWS = 100_000
# The rate limiter sleeps in steps of this many records, so that pacing costs little.
PACING_STEP = 500


def typed(row):
    """A CSV row as the JSON the job expects; cells that are not numbers stay strings."""
    record = dict(row)
    for name in (*MONEY_FIELDS, "step", *LABEL_FIELDS):
        value = record.get(name)
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        record[name] = (
            int(number) if name in ("step", *LABEL_FIELDS) and number.is_integer() else number
        )
    return record


def replay(csv_path, topic, rate=None, limit=None, producer=None):
    """Send the rows of ``csv_path`` to ``topic``; return the number of records sent."""
    own_producer = producer is None
    if own_producer:
        producer = KafkaProducer(
            bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
            acks="all",
            linger_ms=20,
            batch_size=256 * 1024,
            compression_type="lz4" if _has_lz4() else None,
        )
    source_name = Path(csv_path).name
    started = time.monotonic()
    sent = 0
    with open_text_file(csv_path) as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or list(reader.fieldnames) != list(FIELDS):
            raise ValueError(
                f"{csv_path} must start with the PaySim header {','.join(FIELDS)}; "
                f"got {reader.fieldnames}"
            )
        for row_number, row in enumerate(reader):
            if limit is not None and sent >= limit:
                break
            record = typed(row)
            record["transaction_id"] = f"{source_name}:{row_number}"
            producer.send(
                topic,
                key=str(record.get("nameOrig", "")).encode(),
                value=json.dumps(record).encode(),
            )
            sent += 1
            if rate and sent % PACING_STEP == 0:
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
            if sent % PROGRESS_EVERY_ROWS == 0:
                elapsed = time.monotonic() - started
                print(f"\rsent {sent:,} ({sent / elapsed:,.0f}/s)", end="", file=sys.stderr)
    producer.flush()
    if own_producer:
        producer.close()
    return sent


def _has_lz4():
    try:
        import lz4  # noqa: F401
    except ImportError:
        return False
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", help="a PaySim CSV file with its header")
    parser.add_argument("--topic", default=settings.TRANSACTIONS_TOPIC)
    parser.add_argument("--rate", type=float, default=None, help="records per second")
    parser.add_argument("--limit", type=int, default=None, help="send at most this many")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    started = time.monotonic()
    sent = replay(args.csv, args.topic, rate=args.rate, limit=args.limit)
    seconds = time.monotonic() - started
    print(
        f"\rsent {sent:,} records from {args.csv} to {args.topic} in {seconds:.1f} s "
        f"({sent / seconds:,.0f}/s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
