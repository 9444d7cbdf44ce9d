"""Stream a PaySim CSV file into Kafka as JSON, one record per transaction.

    python scripts/replay.py data/paysim/paysim_head_29999_steps1-8.csv
    python scripts/replay.py FILE.csv --rate 20000 --topic transactions

Records are keyed by ``nameOrig``, so that one account's transactions stay in order on one
partition, and carry a ``transaction_id`` made of the file name and the row, so that replaying
the same file again produces the same ids. The file is read line by line: memory stays flat
whatever its size; a ``.csv.gz`` file is read through gzip. A progress bar on stderr shows how
much of the file has gone out, and a summary of what was sent per type ends the run.
"""

import argparse
import collections
import csv
import gzip
import io
import json
import logging
import sys
import time
from pathlib import Path

from kafka import KafkaProducer

from jobs import settings
from udfs.transactions import FIELDS, LABEL_FIELDS, MONEY_FIELDS

# The progress bar redraws at most this often, so that drawing costs nothing next to sending.
PROGRESS_INTERVAL_SECONDS = 0.5
PROGRESS_BAR_WIDTH = 30
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


class ProgressBar:
    """A one-line progress bar on a terminal stream, by bytes of the file read."""

    def __init__(self, total_bytes, stream=None):
        self.total_bytes = max(total_bytes, 1)
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self.drawn_at = 0.0

    def update(self, sent, bytes_read, force=False):
        now = time.monotonic()
        if not force and now - self.drawn_at < PROGRESS_INTERVAL_SECONDS:
            return
        self.drawn_at = now
        done = min(bytes_read / self.total_bytes, 1.0)
        filled = int(done * PROGRESS_BAR_WIDTH)
        rate = sent / max(now - self.started, 1e-9)
        bar = "#" * filled + "." * (PROGRESS_BAR_WIDTH - filled)
        print(f"\r[{bar}] {done:4.0%} {sent:,} sent, {rate:,.0f}/s", end="", file=self.stream)

    def close(self):
        print(file=self.stream)


def replay(csv_path, topic, rate=None, limit=None, producer=None, show_progress=False):
    """Send the rows of ``csv_path`` to ``topic``; return the number of records sent per type."""
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
    progress = ProgressBar(Path(csv_path).stat().st_size) if show_progress else None
    started = time.monotonic()
    sent_per_type = collections.Counter()
    sent = 0
    with open(csv_path, "rb") as raw:
        # Progress counts bytes of the file itself, compressed or not.
        data = gzip.GzipFile(fileobj=raw) if str(csv_path).endswith(".gz") else raw
        reader = csv.DictReader(io.TextIOWrapper(data, encoding="utf-8", newline=""))
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
            sent_per_type[str(record.get("type"))] += 1
            if rate and sent % PACING_STEP == 0:
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
            if progress is not None:
                progress.update(sent, raw.tell())
        if progress is not None:
            progress.update(sent, raw.tell(), force=True)
            progress.close()
    producer.flush()
    if own_producer:
        producer.close()
    return sent_per_type


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
    sent_per_type = replay(
        args.csv, args.topic, rate=args.rate, limit=args.limit, show_progress=sys.stderr.isatty()
    )
    seconds = time.monotonic() - started
    sent = sum(sent_per_type.values())
    print(
        f"sent {sent:,} records from {args.csv} to {args.topic} in {seconds:.1f} s "
        f"({sent / seconds:,.0f}/s)"
    )
    for type_name, count in sorted(sent_per_type.items()):
        print(f"  {type_name:10} {count:>12,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
