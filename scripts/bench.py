"""Measure the fraud and drift job on this machine: throughput, latency, memory and scaling.

    python scripts/bench.py                          # every section at its full size
    python scripts/bench.py --quick                  # every size 64 times smaller: a smoke run
    python scripts/bench.py --only backtest,latency --output out/bench.json

Five sections, each printing how it measured (data, sizes, what the clock covers):

``backtest``
    the job's backtest over generated stationary files of 1,000,000 and 6,362,620 rows (the
    size of the full PaySim data set), run as a subprocess and timed from its start to its
    ``report.json``, start-up included; then a plain pandas and scipy loop, written here in the
    style of the original script, over the first file, and the ratio of the two.
``e2e``
    2,000,000 rows into a fresh Kafka topic by several producer processes, the streaming job
    consuming them: once while the producers send, once from a topic loaded beforehand; then
    the full volume, 6,362,620 rows, while the producers send. The job's rate comes from the
    window records it writes to PostgreSQL.
``latency``
    a producer at a fixed offered rate stamps each record with its production time; a share of
    the records are drained-account frauds, and the time from production to the alert on
    ``alerts`` gives the latency percentiles, once with exactly-once alerts (committed on
    checkpoints) and once with at-least-once alerts.
``memory``
    resident memory of the Flink JVM and of the Python workers, and checkpoint bytes per key,
    in one streaming run over 10 times N rows (default 12,000,000) from a loaded topic: after
    every N rows, judged over the whole run and over its second half, where warm-up is over.
``scaling``
    the loaded-topic e2e figure at parallelism 1, and at parallelism 2 with 2 shards per type.

The streaming sections need the local stack (``scripts/stack.sh up``). Generated files are kept
in ``out/bench-data/`` so that a second run does not generate them again. The figures end in a
table with the targets beside them and go to a JSON file as well.
"""

from __future__ import annotations

import argparse
import logging
import math
import multiprocessing
import os
import platform
import queue
import shutil
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from threading import BrokenBarrierError

import numpy as np
import orjson
import pandas as pd
import psycopg
import yaml
from confluent_kafka import Producer
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic
from scipy import stats
from scipy.spatial.distance import jensenshannon

from jobs import settings
from jobs.streaming_runner import (
    latest_checkpoint,
    processed_rows,
    start_job,
    stop_job,
    uncommitted_records,
)
from udfs.transactions import LABEL_FIELDS, MONEY_FIELDS

if __package__ in (None, ""):
    # Run as a file, Python puts scripts/ on the path instead of the repository root that
    # ``python -m scripts.bench`` gives; the generator is imported as part of that package.
    sys.path.insert(0, str(settings.REPO_ROOT))
from scripts.generate import DEFAULT_SEED, generate, truth_path, write  # noqa: E402  (path fix)

logger = logging.getLogger("bench")

SECTIONS = ("backtest", "e2e", "latency", "memory", "scaling")

# --- sizes -----------------------------------------------------------------------------------

# The full PaySim data set has 6,362,620 rows; the smaller size is a round million.
# The size of the full PaySim data set.
FULL_VOLUME_ROWS = 6_362_620
DEFAULT_BACKTEST_ROWS = (1_000_000, FULL_VOLUME_ROWS)
DEFAULT_E2E_ROWS = 2_000_000
DEFAULT_LATENCY_RATE = 20_000
DEFAULT_LATENCY_SECONDS = 60.0
# The Python workers' memory rises for the first few million rows (the references fill, the
# allocator finds its level) and stays put after; twelve million show both parts of the curve.
DEFAULT_MEMORY_ROWS = 1_200_000
# Memory is compared between N rows and this many times N.
MEMORY_LENGTH_FACTOR = 10
# --quick divides every row count by this; the latency run shrinks by the same factor, its rate
# and its duration each by the square root, so that it still spans several checkpoints.
QUICK_DIVISOR = 64
SCENARIO = "stationary"
DEFAULT_DATA_DIR = settings.REPO_ROOT / "out" / "bench-data"
DEFAULT_OUTPUT = settings.REPO_ROOT / "out" / "bench.json"

# --- targets ---------------------------------------------------------------------------------

TARGET_BACKTEST_ROWS_PER_SECOND = 100_000
TARGET_BASELINE_RATIO = 10.0
TARGET_E2E_ROWS_PER_SECOND = 50_000
TARGET_LATENCY_P99_SECONDS = 2.0
TARGET_FULL_VOLUME_SECONDS = 180.0
# Memory counts as flat when the longer run needs at most this much more than the shorter one.
TARGET_MEMORY_RATIO = 1.2

# --- the baseline: a plain pandas and scipy loop in the style of the original script ---------

BASELINE_BATCH_ROWS = 500
BASELINE_REFERENCE_ROWS = 5000
NUMERIC_FEATURES = MONEY_FIELDS
BASELINE_HISTOGRAM_BINS = 30
# The original script's fixed thresholds: a distance at or above 0.1, a p-value below 0.05.
BASELINE_DISTANCE_THRESHOLD = 0.1
BASELINE_P_THRESHOLD = 0.05
# Statistics named after these tests are p-values; the others are distances.
P_VALUE_TESTS = ("/ks", "/chisquare")
# Wasserstein carries the feature's unit; it is divided by the reference's standard deviation,
# floored at one cent so that a reference of equal balances does not divide by zero.
WASSERSTEIN_SCALE_FLOOR = 0.01

# --- producing -------------------------------------------------------------------------------

# Large batches and a linger let each producer fill a request before it goes out.
THROUGHPUT_LINGER_MS = 50
# Producers read their rows from the file this many at a time.
MESSAGE_CHUNK_ROWS = 100_000
THROUGHPUT_BATCH_BYTES = 512 * 1024
METADATA_TIMEOUT_SECONDS = 30.0
FLUSH_TIMEOUT_SECONDS = 300.0
QUEUE_FULL_WAIT_SECONDS = 0.01
# A paced producer should hand each record over promptly: its linger adds to the latency.
LATENCY_LINGER_MS = 5
# The paced producer sleeps at most once every this many records.
PACING_STEP = 50
PRODUCED_AT_FIELD = "produced_at_ms"
NANOSECONDS_PER_MILLISECOND = 1_000_000
# One record in this many of the latency run is a drained-account fraud, which the job flags.
LATENCY_FRAUD_EVERY = 100
# Records sent flat out before the latency run, so that it starts with full references (a
# TRANSFER reference of 5000 needs about 60,000 rows of PaySim's mix) and a warmed-up job.
LATENCY_WARMUP_ROWS = 100_000
# The latency run ends when no alert has come for this long after the last record went out.
ALERT_DRAIN_IDLE_SECONDS = 15.0
ALERT_DRAIN_LIMIT_SECONDS = 180.0
ALERT_POLL_MS = 100

# --- running the job -------------------------------------------------------------------------

POLL_SECONDS = 1.0
REPORT_POLL_SECONDS = 0.05
RSS_SAMPLE_SECONDS = 1.0
PRODUCER_READY_TIMEOUT_SECONDS = 300.0
WORKER_START_TIMEOUT_SECONDS = 180.0
DEFAULT_JOB_TIMEOUT_SECONDS = 3600.0
DEFAULT_CHECKPOINT_INTERVAL = "1 s"
# The job's configuration keeps 2 s between checkpoints; alerts are committed on checkpoints, so
# the latency run lets them follow each other closely.
DEFAULT_CHECKPOINT_MIN_PAUSE = "200 ms"
# A Python operator holds its output until its bundle ends (a second by default, twice over):
# the latency run ends bundles sooner, at some cost in throughput.
DEFAULT_LATENCY_BUNDLE_MS = 100
# The job's choices for the alerts topic, each measured in a run of its own.
DELIVERY_NOTES = {
    "exactly-once": "alerts are committed on checkpoints",
    "at-least-once": "alerts are written at once, without transactions",
}
# The memory runs take checkpoints this often, to read the state's size from them.
MEMORY_CHECKPOINT_INTERVAL = "1 s"
PYTHON_WORKER_MARK = "pyflink.fn_execution"
# Checkpoints to wait for after a streaming run, so that its last Kafka transaction commits.
COMMIT_CHECKPOINTS = 2
# The job's Kafka transactions time out after 15 minutes (transaction.timeout.ms in
# jobs/fraud_drift_job.py); an open one left by a killed job is aborted by then.
OPEN_TRANSACTION_WAIT_SECONDS = 16 * 60.0
OPEN_TRANSACTION_POLL_SECONDS = 5.0
BYTES_PER_MEBIBYTE = 1024 * 1024
RUNS_FOLDER = "bench-runs"


# --- data ------------------------------------------------------------------------------------


def dataset_path(data_dir, rows, seed):
    return Path(data_dir) / f"{SCENARIO}-seed{seed}-{rows}.csv"


def cached_dataset(data_dir, rows, seed):
    """The generated stationary file of ``rows`` rows, generated only when not there yet.

    The file is written under a temporary name and renamed when complete, so that an
    interrupted run never leaves a partial file that a later run would take for the cache.
    """
    path = dataset_path(data_dir, rows, seed)
    if path.exists():
        return path
    frame, truth = generate(SCENARIO, rows, seed)
    partial = path.with_name(f"partial-{path.name}")
    write(frame, truth, partial)
    truth_path(partial).rename(truth_path(path))
    partial.rename(path)
    return path


def latency_dataset(data_dir, rows, seed):
    """A stationary file where one row in :data:`LATENCY_FRAUD_EVERY` drains its account."""
    path = Path(data_dir) / f"latency-seed{seed}-{rows}-fraud-every-{LATENCY_FRAUD_EVERY}.csv"
    if path.exists():
        return path
    frame, _ = generate(SCENARIO, rows, seed)
    frame = with_drained_frauds(frame, LATENCY_FRAUD_EVERY)
    partial = path.with_name(f"partial-{path.name}")
    partial.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(partial, index=False, lineterminator="\n")
    partial.rename(path)
    return path


def with_drained_frauds(frame, every):
    """A copy of ``frame`` where every ``every``-th row is a TRANSFER that empties its account.

    The account keeps its balance when it has one (otherwise the amount becomes it), the whole
    balance goes out and the origin is left at 0: the ``account_drained`` rule of
    ``udfs/scoring.py``, which flags a transaction on its own.
    """
    frame = frame.copy()
    rows = frame.index[::every]
    balance = frame.loc[rows, "oldbalanceOrg"].where(
        frame.loc[rows, "oldbalanceOrg"] > 0, frame.loc[rows, "amount"]
    )
    frame.loc[rows, "type"] = "TRANSFER"
    frame.loc[rows, "amount"] = balance
    frame.loc[rows, "oldbalanceOrg"] = balance
    frame.loc[rows, "newbalanceOrig"] = 0.0
    # A TRANSFER goes to a customer; PaySim's merchants (M...) only receive payments.
    frame.loc[rows, "nameDest"] = "C" + frame.loc[rows, "nameDest"].str[1:]
    frame.loc[rows, "isFraud"] = 1
    return frame


def read_transactions(csv_path, **read_options):
    """A PaySim CSV file with the column types of ``scripts/replay.py``'s records."""
    types = {name: "float64" for name in MONEY_FIELDS}
    types.update({name: "int64" for name in ("step", *LABEL_FIELDS)})
    return pd.read_csv(csv_path, dtype=types, **read_options)


def kafka_messages(frame, source_name, first_row=0):
    """Each row as a Kafka (key, value) pair in the record format of ``scripts/replay.py``.

    The value is the row as JSON with typed numbers and ``transaction_id`` = ``file:row``; the
    key is ``nameOrig``. ``first_row`` is the file row of the frame's first row.
    """
    messages = []
    for offset, record in enumerate(frame.to_dict("records")):
        record["transaction_id"] = f"{source_name}:{first_row + offset}"
        # orjson's bytes keep the capacity of its write buffer, about 4 KB a record; a copy
        # holds only the record, which matters with millions held before sending.
        value = bytes(memoryview(orjson.dumps(record)))
        messages.append((str(record["nameOrig"]).encode(), value))
    return messages


def file_messages(csv_path, source_name, first_row, stop_row):
    """:func:`kafka_messages` of rows ``first_row`` to ``stop_row`` of a file, read in chunks.

    Only the messages are held at once: a whole file of millions of rows as a frame, and its
    rows as dicts, would take several times its size in memory, once per producer process.
    """
    messages = []
    chunks = read_transactions(csv_path, chunksize=MESSAGE_CHUNK_ROWS)
    chunk_start = 0
    for chunk in chunks:
        chunk_stop = chunk_start + len(chunk)
        start, stop = max(first_row, chunk_start), min(stop_row, chunk_stop)
        if start < stop:
            part = chunk.iloc[start - chunk_start : stop - chunk_start]
            messages += kafka_messages(part, source_name, start)
        if chunk_stop >= stop_row:
            break
        chunk_start = chunk_stop
    return messages


def row_slices(first_row, stop_row, parts):
    """``parts`` consecutive (start, stop) slices covering ``first_row`` to ``stop_row``."""
    edges = np.linspace(first_row, stop_row, parts + 1).round().astype(int)
    return [(int(start), int(stop)) for start, stop in zip(edges[:-1], edges[1:], strict=True)]


def count_keys(csv_path, shards=1):
    """Keys of the job over this file: transaction types present, times shards."""
    return int(pd.read_csv(csv_path, usecols=["type"])["type"].nunique()) * shards


# --- the baseline ----------------------------------------------------------------------------


@dataclass(frozen=True)
class BaselineVerdict:
    """One batch of one transaction type compared with that type's preceding rows."""

    transaction_type: str
    first_row: int
    rows: int
    reference_rows: int
    statistics: dict
    drifted: bool


def destination_kind_pvalue(reference_kinds, batch_kinds):
    """Chi-square p-value of destination kinds, or None where the test cannot run.

    It cannot run on a single category, nor where a table has an expected count of zero
    (``chi2_contingency`` raises there).
    """
    categories = np.union1d(reference_kinds, batch_kinds)
    if categories.size < 2:
        return None
    table = np.array(
        [
            [np.count_nonzero(reference_kinds == kind) for kind in categories],
            [np.count_nonzero(batch_kinds == kind) for kind in categories],
        ]
    )
    if (stats.contingency.expected_freq(table) == 0).any():
        return None
    return float(stats.chi2_contingency(table).pvalue)


def numeric_statistics(reference_values, batch_values):
    """Jensen-Shannon distance, scaled Wasserstein distance and KS p-value of one feature."""
    edges = np.histogram_bin_edges(
        np.concatenate((reference_values, batch_values)), BASELINE_HISTOGRAM_BINS
    )
    distance = jensenshannon(
        np.histogram(reference_values, edges)[0], np.histogram(batch_values, edges)[0], base=2
    )
    scale = max(float(np.std(reference_values)), WASSERSTEIN_SCALE_FLOOR)
    wasserstein = stats.wasserstein_distance(reference_values, batch_values) / scale
    ks_pvalue = stats.ks_2samp(reference_values, batch_values).pvalue
    return {
        "jensenshannon": float(distance),
        "wasserstein": float(wasserstein),
        "ks": float(ks_pvalue),
    }


def baseline_drifted(statistics):
    """The original script's rule: any p-value below 0.05 or any distance at or above 0.1."""
    return any(
        value < BASELINE_P_THRESHOLD
        if name.endswith(P_VALUE_TESTS)
        else value >= BASELINE_DISTANCE_THRESHOLD
        for name, value in statistics.items()
    )


def baseline_verdicts(
    frame, batch_rows=BASELINE_BATCH_ROWS, reference_rows=BASELINE_REFERENCE_ROWS
):
    """Verdicts of the plain loop: each type's batches, in order, against its preceding rows.

    The reference is the last ``reference_rows`` rows of the type before the batch: it grows
    with the first batches, then slides. A type's first batch has nothing before it and gets
    no verdict. Each numeric feature goes through :func:`numeric_statistics`, the destination
    kind (C or M) through :func:`destination_kind_pvalue`; statistics are named
    ``feature/test``.
    """
    for transaction_type, group in frame.groupby("type", sort=True):
        numeric = {name: group[name].to_numpy(dtype=np.float64) for name in NUMERIC_FEATURES}
        destination_kinds = group["nameDest"].str[0].to_numpy()
        file_rows = group.index.to_numpy()
        for start in range(batch_rows, len(group), batch_rows):
            reference = slice(max(0, start - reference_rows), start)
            batch = slice(start, start + batch_rows)

            statistics = {}
            for feature, values in numeric.items():
                for test, value in numeric_statistics(values[reference], values[batch]).items():
                    statistics[f"{feature}/{test}"] = value
            chi_pvalue = destination_kind_pvalue(
                destination_kinds[reference], destination_kinds[batch]
            )
            if chi_pvalue is not None:
                statistics["destination_kind/chisquare"] = chi_pvalue

            yield BaselineVerdict(
                transaction_type=str(transaction_type),
                first_row=int(file_rows[start]),
                rows=len(file_rows[batch]),
                reference_rows=start - reference.start,
                statistics=statistics,
                drifted=baseline_drifted(statistics),
            )


def run_baseline(csv_path):
    """Time the baseline over a file, reading the CSV included."""
    started = time.perf_counter()
    frame = pd.read_csv(csv_path)
    read_seconds = time.perf_counter() - started
    verdicts = list(baseline_verdicts(frame))
    seconds = time.perf_counter() - started
    return {
        "rows": len(frame),
        "batches_judged": len(verdicts),
        "batches_drifted": sum(verdict.drifted for verdict in verdicts),
        "read_seconds": round(read_seconds, 2),
        "seconds": round(seconds, 2),
        "rows_per_second": rate(len(frame), seconds),
    }


# --- processes and their memory --------------------------------------------------------------


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    parent_pid: int
    name: str
    command_line: str


def read_processes():
    """Every process /proc lets us read, by pid."""
    processes = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", encoding="utf-8", errors="replace") as handle:
                stat = handle.read()
            with open(f"/proc/{entry.name}/cmdline", "rb") as handle:
                command_line = handle.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # it ended while we looked
        # The name sits in parentheses and may itself hold spaces or parentheses.
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        parent_pid = int(stat[stat.rindex(")") + 2 :].split()[1])
        processes[int(entry.name)] = ProcessInfo(
            int(entry.name), parent_pid, name, command_line.strip()
        )
    return processes


def process_tree(root_pid, processes):
    """The process ``root_pid`` and all its descendants among ``processes``."""
    children = {}
    for info in processes.values():
        children.setdefault(info.parent_pid, []).append(info)
    tree = [processes[root_pid]] if root_pid in processes else []
    pending = list(children.get(root_pid, ()))
    while pending:
        info = pending.pop()
        tree.append(info)
        pending.extend(children.get(info.pid, ()))
    return tree


def resident_bytes(pid):
    """Resident set size of ``pid``, or 0 once it has ended."""
    try:
        with open(f"/proc/{pid}/statm", encoding="ascii") as handle:
            resident_pages = int(handle.read().split()[1])
    except (OSError, IndexError, ValueError):
        return 0
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def is_flink_jvm(info):
    return info.name == "java"


def is_python_worker(info):
    return PYTHON_WORKER_MARK in info.command_line


FLINK_PROCESS_GROUPS = {"jvm": is_flink_jvm, "python_workers": is_python_worker}


def checkpoint_bytes(folder):
    """Bytes of the files of one checkpoint folder (0 if it was removed meanwhile)."""
    total = 0
    for path in Path(folder).rglob("*"):
        try:
            if path.is_file():
                total += path.stat().st_size
        except OSError:
            continue  # a newer checkpoint subsumed this one while we counted
    return total


class ResourceSampler(threading.Thread):
    """Sample, every interval, the resident memory of a process tree by group of processes.

    ``groups`` maps a name to a test of a :class:`ProcessInfo`; each sample sums the resident
    memory of the tree's processes that pass it, and :attr:`peak_bytes` keeps the highest sum
    per group.
    """

    def __init__(self, root_pid, groups, interval_seconds=RSS_SAMPLE_SECONDS):
        super().__init__(daemon=True)
        self.root_pid = root_pid
        self.groups = groups
        self.interval_seconds = interval_seconds
        self.peak_bytes = dict.fromkeys(groups, 0)
        self.latest_bytes = dict.fromkeys(groups, 0)
        self.samples = 0
        self._stopped = threading.Event()

    def sample(self):
        tree = process_tree(self.root_pid, read_processes())
        for name, belongs in self.groups.items():
            total = sum(resident_bytes(info.pid) for info in tree if belongs(info))
            self.latest_bytes[name] = total
            self.peak_bytes[name] = max(self.peak_bytes[name], total)
        self.samples += 1

    def run(self):
        self.sample()
        while not self._stopped.wait(self.interval_seconds):
            self.sample()

    def stop(self):
        self._stopped.set()
        self.join()


# --- statistics of the figures ---------------------------------------------------------------


def rate(count, seconds):
    """``count`` per second, or None when no time passed."""
    return round(count / seconds, 1) if seconds and seconds > 0 else None


def latency_summary(latencies_ms):
    """Count, median, 99th percentile and maximum of latencies in milliseconds.

    Percentiles are nearest-rank (the smallest value with at least that share of values at or
    below it), so that each is a latency that was actually observed.
    """
    values = np.asarray(latencies_ms, dtype=np.float64)
    if not values.size:
        return {"count": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    median, p99 = np.percentile(values, [50, 99], method="inverted_cdf")
    return {
        "count": int(values.size),
        "p50_ms": float(median),
        "p99_ms": float(p99),
        "max_ms": float(values.max()),
    }


def alert_latencies(arrivals, stamps, rows):
    """Milliseconds from each stamped record's production to the arrival of its alert.

    Parameters
    ----------
    arrivals
        Transaction id (``file:row``) to the arrival time of its alert, in milliseconds.
    stamps
        (first row, production times in milliseconds) of each producer's consecutive rows.
    rows
        Rows in the file; alerts of rows without a stamp (sent unstamped, to warm up) are left
        out.
    """
    produced_at_ms = np.zeros(rows, dtype=np.int64)
    for first_row, times in stamps:
        produced_at_ms[first_row : first_row + len(times)] = times
    latencies_ms = []
    for transaction_id, received_ms in arrivals.items():
        row = int(transaction_id.rpartition(":")[2])
        if produced_at_ms[row]:
            latencies_ms.append(received_ms - produced_at_ms[row])
    return latencies_ms


def flink_setting(dotted_key):
    """A value of ``flink-conf/config.yaml`` by its dotted key, or None."""
    with open(settings.FLINK_CONF_FILE, encoding="utf-8") as handle:
        tree = yaml.safe_load(handle) or {}
    for part in dotted_key.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return None
        tree = tree[part]
    return tree


# --- Kafka -----------------------------------------------------------------------------------


def create_topic(purpose, partitions=settings.TOPIC_PARTITIONS):
    name = f"bench-{purpose}-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS)
    try:
        admin.create_topics([NewTopic(name, partitions, replication_factor=1)])
    finally:
        admin.close()
    return name


def delete_topic(name):
    admin = KafkaAdminClient(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS)
    try:
        admin.delete_topics([name])
    finally:
        admin.close()


@dataclass(frozen=True)
class ProducerTask:
    """One producer process's share: rows ``first_row`` to ``stop_row`` of a file.

    ``rate`` is this process's records per second (None: flat out); with ``stamp`` each value
    carries :data:`PRODUCED_AT_FIELD`, the wall-clock millisecond it was handed to the producer.
    """

    topic: str
    csv_path: str
    first_row: int
    stop_row: int
    source_name: str
    rate: float | None = None
    stamp: bool = False
    linger_ms: int = THROUGHPUT_LINGER_MS


def _run_producer_task(task, start_barrier, results):
    # Reading and serialising happen before the barrier, so that the clock covers sending only.
    try:
        messages = file_messages(task.csv_path, task.source_name, task.first_row, task.stop_row)
        producer = Producer(
            {
                "bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS,
                "acks": "all",
                "linger.ms": task.linger_ms,
                "batch.size": THROUGHPUT_BATCH_BYTES,
                # The partitions Java clients and kafka-python (scripts/replay.py) pick for a key.
                "partitioner": "murmur2_random",
            }
        )
        producer.list_topics(task.topic, timeout=METADATA_TIMEOUT_SECONDS)  # metadata now
    except Exception as error:  # any failure must release the parent waiting at the barrier
        results.put({"error": f"{type(error).__name__}: {error}"})
        start_barrier.abort()
        return
    try:
        start_barrier.wait(timeout=PRODUCER_READY_TIMEOUT_SECONDS)
    except BrokenBarrierError:
        results.put({"error": "another producer failed before sending"})
        return

    failures = []

    def delivered(error, _message):
        if error is not None:
            failures.append(str(error))

    produced_at_ms = np.zeros(len(messages), dtype=np.int64) if task.stamp else None
    started_epoch = time.time()
    started = time.monotonic()
    for index, (key, value) in enumerate(messages):
        if task.rate and index % PACING_STEP == 0:
            ahead = index / task.rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
        if produced_at_ms is not None:
            now_ms = time.time_ns() // NANOSECONDS_PER_MILLISECOND
            produced_at_ms[index] = now_ms
            # The value is a JSON object: the stamp goes in right after its opening brace.
            value = b'{"%s":%d,' % (PRODUCED_AT_FIELD.encode(), now_ms) + value[1:]
        send(producer, task.topic, key, value, delivered)
    unsent = producer.flush(FLUSH_TIMEOUT_SECONDS)
    finished_epoch = time.time()
    if failures or unsent:
        results.put(
            {"error": f"{len(failures)} records failed and {unsent} were not sent: {failures[:3]}"}
        )
        return
    results.put(
        {
            "first_row": task.first_row,
            "sent": len(messages),
            "started": started_epoch,
            "finished": finished_epoch,
            "produced_at_ms": produced_at_ms,
        }
    )


def send(producer, topic, key, value, on_delivery):
    """Hand one record to the producer, waiting for room when its queue is full."""
    while True:
        try:
            producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
            break
        except BufferError:
            producer.poll(QUEUE_FULL_WAIT_SECONDS)
    producer.poll(0)  # serve delivery reports as they come


class ProducerGroup:
    """Producer processes that load their rows, wait for :meth:`release`, then send together.

    The processes are spawned, not forked, so that they inherit nothing from this process's
    threads and Kafka clients.
    """

    def __init__(self, tasks):
        context = multiprocessing.get_context("spawn")
        self.start_barrier = context.Barrier(len(tasks) + 1)
        self.results = context.Queue()
        self.processes = [
            context.Process(
                target=_run_producer_task, args=(task, self.start_barrier, self.results)
            )
            for task in tasks
        ]

    def start(self):
        for process in self.processes:
            process.start()
        return self

    def release(self):
        """Wait until every process has loaded its rows, then let them all send."""
        try:
            self.start_barrier.wait(timeout=PRODUCER_READY_TIMEOUT_SECONDS)
        except BrokenBarrierError:
            raise RuntimeError(f"producers failed to start: {self._errors()}") from None
        return time.monotonic()

    def join(self, timeout_seconds=DEFAULT_JOB_TIMEOUT_SECONDS):
        """Wait for every process; return what was sent, over how long, and the stamps."""
        try:
            outcomes = [self.results.get(timeout=timeout_seconds) for _ in self.processes]
        except queue.Empty:
            raise TimeoutError(f"producers still sending after {timeout_seconds:.0f} s") from None
        for process in self.processes:
            process.join()
        errors = [outcome["error"] for outcome in outcomes if "error" in outcome]
        if errors:
            raise RuntimeError(f"producers failed: {errors}")
        sent = sum(outcome["sent"] for outcome in outcomes)
        seconds = max(o["finished"] for o in outcomes) - min(o["started"] for o in outcomes)
        return {
            "processes": len(outcomes),
            "records": sent,
            "seconds": round(seconds, 2),
            "records_per_second": rate(sent, seconds),
            "stamps": [
                (outcome["first_row"], outcome["produced_at_ms"])
                for outcome in outcomes
                if outcome["produced_at_ms"] is not None
            ],
        }

    def terminate(self):
        for process in self.processes:
            if process.is_alive():
                process.terminate()

    def _errors(self):
        errors = []
        while not self.results.empty():
            errors.append(self.results.get().get("error"))
        return errors


def producer_tasks(topic, csv_path, first_row, stop_row, processes, **options):
    source_name = Path(csv_path).name
    return [
        ProducerTask(topic, str(csv_path), start, stop, source_name, **options)
        for start, stop in row_slices(first_row, stop_row, processes)
    ]


def produce(tasks):
    group = ProducerGroup(tasks).start()
    try:
        group.release()
        return group.join()
    finally:
        group.terminate()


class AlertListener(threading.Thread):
    """Read committed alerts of one source from the end of ``alerts``, noting when each came.

    ``arrivals`` maps a transaction id to this process's wall clock, in milliseconds, when the
    poll that returned its alert came back.
    """

    def __init__(self, source, id_prefix):
        super().__init__(daemon=True)
        self.source = source
        self.id_prefix = id_prefix
        self.arrivals = {}
        self.last_arrival = time.monotonic()
        self._stopped = threading.Event()
        self.consumer = KafkaConsumer(
            bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
            enable_auto_commit=False,
            isolation_level="read_committed",
            fetch_max_wait_ms=ALERT_POLL_MS,
        )
        partition_ids = self.consumer.partitions_for_topic(settings.ALERTS_TOPIC)
        if not partition_ids:
            raise RuntimeError(f"no topic {settings.ALERTS_TOPIC}: start the stack first")
        partitions = [
            TopicPartition(settings.ALERTS_TOPIC, partition) for partition in sorted(partition_ids)
        ]
        self.consumer.assign(partitions)
        self.consumer.seek_to_end(*partitions)
        for partition in partitions:
            self.consumer.position(partition)  # fix the start now, before anything is sent

    def run(self):
        try:
            while not self._stopped.is_set():
                batches = self.consumer.poll(timeout_ms=ALERT_POLL_MS)
                received_ms = time.time_ns() / NANOSECONDS_PER_MILLISECOND
                for messages in batches.values():
                    for message in messages:
                        alert = orjson.loads(message.value)
                        transaction_id = str(alert.get("transaction_id", ""))
                        if alert.get("source") != self.source:
                            continue
                        if not transaction_id.startswith(self.id_prefix):
                            continue
                        self.arrivals.setdefault(transaction_id, received_ms)
                        self.last_arrival = time.monotonic()
        finally:
            self.consumer.close()

    def stop(self):
        self._stopped.set()
        self.join()


# --- running the job -------------------------------------------------------------------------


def run_dir(output_path, name):
    folder = Path(output_path).parent / RUNS_FOLDER / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def run_backtest(csv_path, folder, timeout_seconds, extra_args=(), sampler=None):
    """Run the job's backtest as a subprocess; time it from its start to its report.

    Parameters
    ----------
    csv_path, folder
        The input file, and the folder for the job's output and its log.
    timeout_seconds
        How long the job may take before it is stopped and the run fails.
    extra_args
        More options of ``jobs.fraud_drift_job``.
    sampler
        A function of the job's pid returning a started :class:`ResourceSampler`, or None.
    """
    output_dir = Path(folder) / "output"
    log_path = Path(folder) / "job.log"
    command = [
        sys.executable,
        "-m",
        "jobs.fraud_drift_job",
        "--backtest",
        str(csv_path),
        "--output-dir",
        str(output_dir),
        *extra_args,
    ]
    report_path = output_dir / "report.json"
    with open(log_path, "w") as log:
        started = time.monotonic()
        job = subprocess.Popen(
            command,
            cwd=settings.REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    resources = sampler(job.pid) if sampler else None
    reported_after = None
    try:
        while reported_after is None:
            if report_path.exists():
                reported_after = time.monotonic() - started
            elif job.poll() is not None:
                raise RuntimeError(
                    f"the backtest exited with code {job.returncode} without a report; "
                    f"log {log_path}"
                )
            elif time.monotonic() - started > timeout_seconds:
                raise TimeoutError(
                    f"the backtest took over {timeout_seconds:.0f} s; log {log_path}"
                )
            else:
                time.sleep(REPORT_POLL_SECONDS)
        job.wait(timeout=timeout_seconds)
    finally:
        if resources is not None:
            resources.stop()
        stop_job(job)
    report = orjson.loads(report_path.read_bytes())
    return {
        "rows": report["rows_in"],
        "rows_valid": report["rows_valid"],
        "wall_seconds": round(reported_after, 2),
        "rows_per_second": rate(report["rows_in"], reported_after),
        "report_seconds": report["seconds"],
        "report_rows_per_second": report["rows_per_second"],
        "log": str(log_path),
        "resources": resources,
    }


def wait_for_python_worker(job, log_path, timeout_seconds=WORKER_START_TIMEOUT_SECONDS):
    """Wait until the job's Python worker runs: its tasks are deployed and it can consume."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if any(is_python_worker(info) for info in process_tree(job.pid, read_processes())):
            return
        if job.poll() is not None:
            raise RuntimeError(f"the job exited with code {job.returncode}; log {log_path}")
        time.sleep(POLL_SECONDS / 2)
    raise TimeoutError(f"no Python worker after {timeout_seconds:.0f} s; log {log_path}")


def wait_until_processed(job, source, expected_rows, timeout_seconds, log_path):
    """Wait until window records in PostgreSQL account for ``expected_rows`` of ``source``.

    Returns the monotonic time of the poll that saw them all (polls are a second apart).
    """
    deadline = time.monotonic() + timeout_seconds
    while True:
        processed = processed_rows(source)
        if processed >= expected_rows:
            return time.monotonic()
        if job.poll() is not None:
            raise RuntimeError(f"the job exited with code {job.returncode}; log {log_path}")
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"after {timeout_seconds:.0f} s the job had processed {processed:,} of "
                f"{expected_rows:,} rows; log {log_path}"
            )
        time.sleep(POLL_SECONDS)


def window_throughput(source):
    """Rows in the window records of ``source`` over the span of their evaluation times."""
    with psycopg.connect(settings.POSTGRES_DSN) as connection:
        rows, windows, span = connection.execute(
            "SELECT COALESCE(SUM(row_count), 0), COUNT(*),"
            " EXTRACT(EPOCH FROM MAX(evaluated_at) - MIN(evaluated_at))"
            " FROM window_stats WHERE source = %s",
            (source,),
        ).fetchone()
    span = float(span or 0.0)
    return {
        "rows": int(rows),
        "windows": int(windows),
        "span_seconds": round(span, 2),
        "rows_per_second": rate(int(rows), span),
    }


def job_options(
    checkpoint_interval, checkpoint_root, parallelism=1, shards=1, min_pause=None, bundle_ms=None
):
    pause = ("--checkpoint-min-pause", min_pause) if min_pause else ()
    bundle = ("--bundle-ms", str(bundle_ms)) if bundle_ms else ()
    return (
        *pause,
        *bundle,
        "--checkpoint-interval",
        checkpoint_interval,
        "--checkpoint-dir",
        Path(checkpoint_root).resolve().as_uri(),
        "--parallelism",
        str(parallelism),
        "--shards",
        str(shards),
    )


def completed_checkpoints(checkpoint_root):
    """The highest id of a completed checkpoint under ``checkpoint_root``, 0 before any."""
    folder = latest_checkpoint(checkpoint_root)
    return checkpoint_id(folder.name) if folder is not None else 0


def wait_for_commits(job, checkpoint_root, log_path, timeout_seconds):
    """Wait for two more checkpoints, so that the Kafka sinks commit what they last wrote.

    Stopping the job kills it: a Kafka transaction holding records written after its last
    checkpoint would stay open until the broker times it out, and until then it hides every
    later record of that partition from read_committed consumers, other runs' included. Of two
    checkpoints completed from now, the second began after everything written so far.
    """
    target = completed_checkpoints(checkpoint_root) + COMMIT_CHECKPOINTS
    deadline = time.monotonic() + timeout_seconds
    while completed_checkpoints(checkpoint_root) < target:
        if job.poll() is not None or time.monotonic() > deadline:
            logger.warning("no checkpoint committed the last output; log %s", log_path)
            return
        time.sleep(POLL_SECONDS)


def wait_for_open_transactions(topic, timeout_seconds):
    """Wait until read_committed consumers can read all of ``topic``; called with no job running.

    A job killed between two checkpoints leaves its Kafka transaction open; the broker aborts
    it after the job's transaction timeout. Until then nothing written after it on that
    partition can be read committed, and a latency measured meanwhile would measure the wait.
    Returns the seconds waited, or None when the timeout passed first.
    """
    blocked = uncommitted_records(topic)
    if not blocked:
        return 0.0
    print(
        f"   {blocked:,} records on `{topic}` are held by open transactions (a job killed "
        f"between checkpoints leaves one open until it times out): waiting up to "
        f"{timeout_seconds / 60:.0f} min"
    )
    started = time.monotonic()
    while time.monotonic() - started < timeout_seconds:
        time.sleep(OPEN_TRANSACTION_POLL_SECONDS)
        if not uncommitted_records(topic):
            return round(time.monotonic() - started, 1)
    return None


def run_streaming(csv_path, rows, options, *, preload, parallelism=1, shards=1):
    """One e2e run on a fresh topic: producers and the job together, or the topic loaded first.

    Returns the producers' own figures, the job's sustained rate from its window records and
    the wall time from the job's start until PostgreSQL accounts for every row.
    """
    topic = create_topic("e2e")
    group_id = f"bench-{uuid.uuid4().hex[:8]}"
    variant = "loaded" if preload else "concurrent"
    checkpoint_root = run_dir(options.output, f"e2e-{variant}-p{parallelism}") / "checkpoints"
    tasks = producer_tasks(topic, csv_path, 0, rows, options.producers)
    job = producers = None
    try:
        if preload:
            producer_figures = produce(tasks)
            sending_started = None
        else:
            # Producers read and serialise their rows while the job starts.
            producers = ProducerGroup(tasks).start()
        job_started = time.monotonic()
        job, log_path = start_job(
            topic,
            group_id,
            job_options(
                options.throughput_checkpoint_interval, checkpoint_root, parallelism, shards
            ),
        )
        if not preload:
            wait_for_python_worker(job, log_path)
            sending_started = producers.release()
        done = wait_until_processed(job, topic, rows, options.job_timeout, log_path)
        if not preload:
            producer_figures = producers.join()
        wait_for_commits(job, checkpoint_root, log_path, options.job_timeout)
    finally:
        if producers is not None:
            producers.terminate()
        if job is not None:
            stop_job(job)
        if not options.keep_topics:
            delete_topic(topic)
    producer_figures.pop("stamps")
    return {
        "variant": "loaded first" if preload else "produced while the job runs",
        "rows": rows,
        "parallelism": parallelism,
        "shards": shards,
        "topic": topic,
        "producer": producer_figures,
        "job": window_throughput(topic),
        "wall_seconds_from_job_start": round(done - job_started, 1),
        "wall_seconds_from_first_send": (
            round(done - sending_started, 1) if sending_started is not None else None
        ),
        "log": str(log_path),
    }


# --- the sections ----------------------------------------------------------------------------


def measure_backtest(options):
    sizes = options.backtest_rows
    print(f"== backtest: the job over generated {SCENARIO} files of {describe_sizes(sizes)} ==")
    print(
        f"   data: scripts/generate.py, seed {options.seed}, cached in {options.data_dir}; "
        "the clock runs from starting `python -m jobs.fraud_drift_job --backtest` to its "
        "report.json (start-up, reading, all operators, merging the output)"
    )
    figures = {"runs": [], "baseline": []}
    for rows in sizes:
        csv_path = cached_dataset(options.data_dir, rows, options.seed)
        run = run_backtest(
            csv_path, run_dir(options.output, f"backtest-{rows}"), options.job_timeout
        )
        run.pop("resources")
        figures["runs"].append(run)
        print(
            f"   {rows:>12,} rows: {run['wall_seconds']:8.1f} s wall -> "
            f"{run['rows_per_second']:>10,.0f} rows/s (the job's own clock: "
            f"{run['report_rows_per_second']:,.0f} rows/s)"
        )

    baseline_sizes = sizes if options.baseline_full else sizes[:1]
    print(
        f"   baseline: pandas read_csv, then per type batches of {BASELINE_BATCH_ROWS} against "
        f"the type's last {BASELINE_REFERENCE_ROWS} rows; JS (base 2, {BASELINE_HISTOGRAM_BINS} "
        "shared bins), Wasserstein and KS (scipy, method auto) on 5 numeric features, "
        "chi-square on destination kind; one core; the clock covers reading and the loop"
    )
    for rows in baseline_sizes:
        result = run_baseline(dataset_path(options.data_dir, rows, options.seed))
        job_rate = next(run["rows_per_second"] for run in figures["runs"] if run["rows"] == rows)
        result["job_over_baseline"] = round(job_rate / result["rows_per_second"], 2)
        figures["baseline"].append(result)
        print(
            f"   baseline {rows:>12,} rows: {result['seconds']:8.1f} s -> "
            f"{result['rows_per_second']:>10,.0f} rows/s, drift in {result['batches_drifted']:,} "
            f"of {result['batches_judged']:,} batches; job / baseline = "
            f"{result['job_over_baseline']:.3g}x"
        )
    if not options.baseline_full and len(sizes) > 1:
        print(
            f"   the baseline ran on {sizes[0]:,} rows only (--baseline-full runs it on every "
            "size); its rate is not extrapolated to the larger file"
        )
    return figures


def measure_e2e(options):
    rows = options.e2e_rows
    csv_path = cached_dataset(options.data_dir, rows, options.seed)
    print(f"== e2e: {rows:,} rows through Kafka into the streaming job ==")
    print(
        f"   a fresh topic of {settings.TOPIC_PARTITIONS} partitions; {options.producers} producer "
        "processes (confluent-kafka, librdkafka), each a slice of the file serialised before the "
        "clock starts, "
        f"batches of {THROUGHPUT_BATCH_BYTES // 1024} KiB, linger {THROUGHPUT_LINGER_MS} ms; "
        f"the job at parallelism 1, checkpoints every {options.throughput_checkpoint_interval}"
    )
    print(
        "   job rate = rows in its window records / (last evaluated_at - first evaluated_at) in "
        "PostgreSQL window_stats; wall = until those rows account for every row (polled each "
        "second)"
    )
    figures = {}
    for preload in (False, True):
        run = run_streaming(csv_path, rows, options, preload=preload)
        figures["loaded_first" if preload else "concurrent"] = run
        print_streaming_run(run)
    full_rows = options.full_volume_rows
    if full_rows:
        print(
            f"   the full volume: {full_rows:,} rows produced while the job runs; the target "
            f"is every row processed within {TARGET_FULL_VOLUME_SECONDS:g} s of the first sent"
        )
        full_path = cached_dataset(options.data_dir, full_rows, options.seed)
        run = run_streaming(full_path, full_rows, options, preload=False)
        figures["full_volume"] = run
        print_streaming_run(run)
    return figures


def print_streaming_run(run):
    producer, job = run["producer"], run["job"]
    after_send = (
        f", {run['wall_seconds_from_first_send']:.1f} s from the first record sent"
        if run["wall_seconds_from_first_send"] is not None
        else ""
    )
    print(
        f"   {run['variant']}, parallelism {run['parallelism']}, shards {run['shards']}: "
        f"producers {producer['records_per_second']:,.0f} records/s; job "
        f"{format_number(job['rows_per_second'])} rows/s sustained ({job['rows']:,} rows in "
        f"{job['windows']:,} windows over {job['span_seconds']:.1f} s); all processed "
        f"{run['wall_seconds_from_job_start']:.1f} s after the job started{after_send}"
    )


def measure_scaling(options, e2e_figures):
    rows = options.e2e_rows
    csv_path = cached_dataset(options.data_dir, rows, options.seed)
    print(f"== scaling: the loaded-topic e2e run of {rows:,} rows at parallelism 1 and 2 ==")
    print("   parallelism 2 runs with --shards 2, so each type is two keys (TYPE/0, TYPE/1)")
    figures = {}
    single = (e2e_figures or {}).get("loaded_first")
    if single is not None:
        print("   parallelism 1: the e2e section's loaded-topic run")
    else:
        single = run_streaming(csv_path, rows, options, preload=True)
    figures["parallelism_1"] = single
    print_streaming_run(single)
    double = run_streaming(csv_path, rows, options, preload=True, parallelism=2, shards=2)
    figures["parallelism_2_shards_2"] = double
    print_streaming_run(double)
    one, two = single["job"]["rows_per_second"], double["job"]["rows_per_second"]
    figures["speedup"] = round(two / one, 2) if one and two else None
    print(f"   speed-up from 1 to 2: {format_ratio(figures['speedup'])}")
    return figures


def measure_latency(options):
    """Alert latency once per delivery guarantee of the alerts named in the options."""
    return {delivery: latency_run(options, delivery) for delivery in options.alert_delivery}


def latency_run(options, delivery):
    offered_rate, seconds = options.latency_rate, options.latency_seconds
    timed_rows = int(offered_rate * seconds)
    warmup_rows = options.latency_warmup_rows
    csv_path = latency_dataset(options.data_dir, warmup_rows + timed_rows, options.seed)
    min_pause = options.checkpoint_min_pause
    print(f"== latency: {offered_rate:,.0f} records/s offered for {seconds:g} s, {delivery} ==")
    print(
        f"   one record in {LATENCY_FRAUD_EVERY} drains its account (TRANSFER of the whole "
        f"balance); each carries {PRODUCED_AT_FIELD}, stamped just before it is handed to the "
        f"producer; {warmup_rows:,} records sent first, flat out, and processed before the "
        "clock starts"
    )
    print(
        "   latency = wall clock when the poll returning the alert came back (consumer on "
        "`alerts`, read_committed, in this process) minus the record's stamp; one machine, one "
        f"clock; checkpoint interval {options.checkpoint_interval}, min-pause {min_pause}, "
        f"Python bundles of at most {options.bundle_ms} ms; {DELIVERY_NOTES[delivery]}"
    )
    waited = wait_for_open_transactions(settings.ALERTS_TOPIC, OPEN_TRANSACTION_WAIT_SECONDS)
    if waited is None:
        print(
            "   WARNING: records on `alerts` are still held by an open transaction; alerts "
            "behind it wait for it too, and so do these latencies"
        )
    topic = create_topic("latency")
    group_id = f"bench-{uuid.uuid4().hex[:8]}"
    source_name = Path(csv_path).name
    checkpoint_root = run_dir(options.output, "latency") / "checkpoints"
    job = listener = producers = None
    try:
        job, log_path = start_job(
            topic,
            group_id,
            job_options(
                options.checkpoint_interval,
                checkpoint_root,
                min_pause=options.checkpoint_min_pause,
                bundle_ms=options.bundle_ms,
            )
            + ("--alert-delivery", delivery),
        )
        listener = AlertListener(topic, f"{source_name}:")
        listener.start()
        wait_for_python_worker(job, log_path)
        produce(producer_tasks(topic, csv_path, 0, warmup_rows, options.producers))
        wait_until_processed(job, topic, warmup_rows, options.job_timeout, log_path)

        processes = options.producers
        producers = ProducerGroup(
            producer_tasks(
                topic,
                csv_path,
                warmup_rows,
                warmup_rows + timed_rows,
                processes,
                rate=offered_rate / processes,
                stamp=True,
                linger_ms=LATENCY_LINGER_MS,
            )
        ).start()
        producers.release()
        producer_figures = producers.join()
        sent_at = time.monotonic()
        while time.monotonic() - sent_at < ALERT_DRAIN_LIMIT_SECONDS:
            if time.monotonic() - max(listener.last_arrival, sent_at) > ALERT_DRAIN_IDLE_SECONDS:
                break
            time.sleep(POLL_SECONDS)
        processed = processed_rows(topic)
    finally:
        if listener is not None:
            listener.stop()
        if producers is not None:
            producers.terminate()
        if job is not None:
            stop_job(job)
        if not options.keep_topics:
            delete_topic(topic)

    stamps = producer_figures.pop("stamps")
    summary = latency_summary(alert_latencies(listener.arrivals, stamps, warmup_rows + timed_rows))
    first_fraud = -(-warmup_rows // LATENCY_FRAUD_EVERY) * LATENCY_FRAUD_EVERY
    injected = len(range(first_fraud, warmup_rows + timed_rows, LATENCY_FRAUD_EVERY))
    figures = {
        "alert_delivery": delivery,
        "offered_rate": offered_rate,
        "seconds": seconds,
        "checkpoint_interval": options.checkpoint_interval,
        "checkpoint_min_pause": min_pause,
        "clock": "consume time minus production stamp",
        "seconds_waited_for_open_transactions_on_alerts": waited,
        "producer": producer_figures,
        "drained_frauds_sent": injected,
        "rows_processed_by_job": processed,
        "rows_sent": warmup_rows + timed_rows,
        **summary,
        "log": str(log_path),
    }
    print(
        f"   producers reached {producer_figures['records_per_second']:,.0f} records/s; "
        f"{summary['count']:,} alerts on timed records ({injected:,} drained frauds sent); "
        f"p50 {format_seconds(summary['p50_ms'])}, p99 {format_seconds(summary['p99_ms'])}, "
        f"max {format_seconds(summary['max_ms'])}"
    )
    return figures


def measure_memory(options):
    early_rows = options.memory_rows
    total_rows = early_rows * MEMORY_LENGTH_FACTOR
    print(
        f"== memory: one streaming run of {total_rows:,} rows, at {early_rows:,} and at the end =="
    )
    print(
        f"   resident memory (/proc statm) of the job's descendants, sampled every "
        f"{RSS_SAMPLE_SECONDS:g} s: JVM = processes named java, Python workers = command lines "
        f"holding {PYTHON_WORKER_MARK}; the sums when PostgreSQL first accounts for "
        f"{early_rows:,} rows and when it accounts for all {total_rows:,}, and the peaks"
    )
    print(
        f"   state: the job checkpoints every {MEMORY_CHECKPOINT_INTERVAL}; the newest completed "
        "checkpoint's files (every operator's state, most of it the keyed drift state) divided "
        "by the keys (types in the file), at the same two moments; the topic is loaded first"
    )
    csv_path = cached_dataset(options.data_dir, total_rows, options.seed)
    keys = count_keys(csv_path)
    topic = create_topic("memory")
    group_id = f"bench-{uuid.uuid4().hex[:8]}"
    checkpoint_root = run_dir(options.output, "memory") / "checkpoints"
    job = sampler = None
    curve = []
    try:
        produce(producer_tasks(topic, csv_path, 0, total_rows, options.producers))
        job, log_path = start_job(
            topic, group_id, job_options(MEMORY_CHECKPOINT_INTERVAL, checkpoint_root)
        )
        sampler = ResourceSampler(job.pid, FLINK_PROCESS_GROUPS)
        sampler.start()
        started = time.monotonic()
        # A moment every N rows draws the curve: growth that levels off after the references
        # fill is warm-up, growth that goes on to the end is a leak.
        for step in range(1, MEMORY_LENGTH_FACTOR + 1):
            rows = early_rows * step
            wait_until_processed(job, topic, rows, options.job_timeout, log_path)
            # The state of these rows is in a checkpoint that began after they were processed;
            # one that was already under way may not hold it, nor may there be any yet.
            wait_for_commits(job, checkpoint_root, log_path, options.job_timeout)
            curve.append(
                memory_moment(sampler, checkpoint_root, keys, rows, time.monotonic() - started)
            )
    finally:
        if sampler is not None:
            sampler.stop()
        if job is not None:
            stop_job(job)
        if not options.keep_topics:
            delete_topic(topic)
    for moment in curve:
        print(
            f"   {moment['rows']:>10,} rows ({moment['seconds']:.1f} s): JVM "
            f"{moment['jvm_mib']:,.0f} MiB, Python workers {moment['python_workers_mib']:,.0f} "
            f"MiB, checkpoint bytes per key {format_number(moment['state_bytes_per_key'])}"
        )
    early, middle, end = curve[0], curve[len(curve) // 2 - 1], curve[-1]
    moments = {"early": early, "middle": middle, "end": end}
    ratios = {name: ratio(end[field], early[field]) for name, field in MEMORY_FIELDS.items()}
    second_half_ratios = {
        name: ratio(end[field], middle[field]) for name, field in MEMORY_FIELDS.items()
    }
    peaks = {
        name: round(sampler.peak_bytes[name] / BYTES_PER_MEBIBYTE, 1)
        for name in FLINK_PROCESS_GROUPS
    }
    print(
        f"   end over {early_rows:,} rows: JVM {format_ratio(ratios['jvm'])}, Python workers "
        f"{format_ratio(ratios['python_workers'])}, state per key "
        f"{format_ratio(ratios['state_per_key'])}; end over {middle['rows']:,} rows: JVM "
        f"{format_ratio(second_half_ratios['jvm'])}, Python workers "
        f"{format_ratio(second_half_ratios['python_workers'])}, state per key "
        f"{format_ratio(second_half_ratios['state_per_key'])}; peaks JVM {peaks['jvm']:,.0f} MiB, "
        f"Python workers {peaks['python_workers']:,.0f} MiB"
    )
    return {
        "keys": keys,
        "moments": moments,
        "curve": curve,
        "ratios": ratios,
        "second_half_ratios": second_half_ratios,
        "peak_mib": peaks,
    }


# What each memory figure is read from, in a moment of the run.
MEMORY_FIELDS = {
    "jvm": "jvm_mib",
    "python_workers": "python_workers_mib",
    "state_per_key": "state_bytes_per_key",
}


def memory_moment(sampler, checkpoint_root, keys, rows, seconds):
    """Resident memory as last sampled, and the newest checkpoint's bytes per key."""
    folder = latest_checkpoint(checkpoint_root)
    # Flink keeps one checkpoint and deletes the one before once the next completes.
    size = checkpoint_bytes(folder) if folder is not None else 0
    return {
        "rows": rows,
        "seconds": round(seconds, 1),
        "jvm_mib": round(sampler.latest_bytes["jvm"] / BYTES_PER_MEBIBYTE, 1),
        "python_workers_mib": round(sampler.latest_bytes["python_workers"] / BYTES_PER_MEBIBYTE, 1),
        "checkpoint": folder.name if size else None,
        "state_bytes_per_key": round(size / keys) if size else None,
    }


def checkpoint_id(folder_name):
    return int(folder_name.rpartition("-")[2])


def ratio(numerator, denominator):
    return round(numerator / denominator, 3) if numerator and denominator else None


# --- the table -------------------------------------------------------------------------------


def format_number(value, spec=",.0f"):
    return "n/a" if value is None else format(value, spec)


def format_ratio(value):
    return "n/a" if value is None else f"{value:.2f}x"


def format_seconds(milliseconds):
    return "n/a" if milliseconds is None else f"{milliseconds / 1000:.2f} s"


def describe_sizes(sizes):
    return " and ".join(f"{rows:,}" for rows in sizes)


def verdict(value, target, at_least):
    if value is None:
        return "n/a"
    return "yes" if (value >= target if at_least else value <= target) else "NO"


def backtest_rows(figures):
    rows = []
    largest = figures["runs"][-1]["rows"]
    for run in figures["runs"]:
        at_target_size = run["rows"] == largest
        rows.append(
            (
                f"backtest {run['rows']:,} rows, wall with start-up",
                f"{format_number(run['rows_per_second'])} rows/s",
                f">= {TARGET_BACKTEST_ROWS_PER_SECOND:,} rows/s" if at_target_size else "",
                verdict(run["rows_per_second"], TARGET_BACKTEST_ROWS_PER_SECOND, True)
                if at_target_size
                else "",
            )
        )
    for result in figures["baseline"]:
        note = "" if result["rows"] == largest else f" (not extrapolated to {largest:,})"
        rows.append(
            (
                f"baseline pandas+scipy, measured on {result['rows']:,} rows{note}",
                f"{format_number(result['rows_per_second'])} rows/s",
                "",
                "",
            )
        )
        rows.append(
            (
                f"job / baseline, both on the {result['rows']:,}-row file",
                f"{result['job_over_baseline']:.3g}x",
                f">= {TARGET_BASELINE_RATIO:g}x",
                verdict(result["job_over_baseline"], TARGET_BASELINE_RATIO, True),
            )
        )
    return rows


def streaming_rows(section, run):
    label = f"{section} {run['rows']:,} rows, {run['variant']}, p{run['parallelism']}"
    if run["shards"] > 1:
        label += f" shards {run['shards']}"
    measured = run["job"]["rows_per_second"]
    rows = [
        (
            f"{label}: job sustained",
            f"{format_number(measured)} rows/s",
            f">= {TARGET_E2E_ROWS_PER_SECOND:,} rows/s",
            verdict(measured, TARGET_E2E_ROWS_PER_SECOND, True),
        ),
        (
            f"{label}: producers / wall from job start",
            f"{format_number(run['producer']['records_per_second'])} rec/s / "
            f"{run['wall_seconds_from_job_start']:.0f} s",
            "",
            "",
        ),
    ]
    from_first_send = run["wall_seconds_from_first_send"]
    if from_first_send is not None and run["rows"] >= FULL_VOLUME_ROWS:
        rows.append(
            (
                f"{label}: wall from the first record sent to the last processed",
                f"{from_first_send:.1f} s",
                f"<= {TARGET_FULL_VOLUME_SECONDS:g} s",
                verdict(from_first_send, TARGET_FULL_VOLUME_SECONDS, False),
            )
        )
    return rows


def latency_rows(figures):
    rows = []
    for delivery, run in figures.items():
        p99_seconds = None if run["p99_ms"] is None else run["p99_ms"] / 1000
        rows.append(
            (
                f"latency p50 / p99 / max at {run['offered_rate']:,.0f}/s, {delivery} alerts, "
                f"checkpoint {run['checkpoint_interval']} (n={run['count']:,}, consume time)",
                f"{format_seconds(run['p50_ms'])} / {format_seconds(run['p99_ms'])} / "
                f"{format_seconds(run['max_ms'])}",
                f"p99 <= {TARGET_LATENCY_P99_SECONDS:g} s",
                verdict(p99_seconds, TARGET_LATENCY_P99_SECONDS, False),
            )
        )
    return rows


def memory_rows(figures):
    """Each memory figure over the whole run and over its second half, after the warm-up."""
    moments = figures["moments"]
    spans = (("early", "ratios"), ("middle", "second_half_ratios"))
    measured = (
        ("jvm", "JVM RSS", "MiB"),
        ("python_workers", "Python workers RSS", "MiB"),
        ("state_per_key", "checkpoint bytes per key", "B"),
    )
    rows = []
    for start, ratios_name in spans:
        first, last = moments[start], moments["end"]
        span = f"{last['rows']:,} over {first['rows']:,} rows of one run"
        for name, label, unit in measured:
            field = MEMORY_FIELDS[name]
            ratio_value = figures[ratios_name][name]
            rows.append(
                (
                    f"memory {label}, {span}",
                    f"{format_number(first[field])} -> {format_number(last[field])} {unit} = "
                    f"{format_ratio(ratio_value)}",
                    f"<= {TARGET_MEMORY_RATIO:g}x",
                    verdict(ratio_value, TARGET_MEMORY_RATIO, False),
                )
            )
    return rows


def summary_rows(sections):
    """(figure, measured, target, met) for every figure the sections measured."""
    measured = {name: figures for name, figures in sections.items() if "error" not in figures}
    rows = []
    if "backtest" in measured:
        rows += backtest_rows(measured["backtest"])
    e2e_runs = measured.get("e2e", {})
    for run in e2e_runs.values():
        rows += streaming_rows("e2e", run)
    if "scaling" in measured:
        scaling = measured["scaling"]
        if scaling["parallelism_1"] is not e2e_runs.get("loaded_first"):
            rows += streaming_rows("scaling", scaling["parallelism_1"])
        rows += streaming_rows("scaling", scaling["parallelism_2_shards_2"])
        rows.append(("scaling p2 / p1 (job sustained)", format_ratio(scaling["speedup"]), "", ""))
    if "latency" in measured:
        rows += latency_rows(measured["latency"])
    if "memory" in measured:
        rows += memory_rows(measured["memory"])
    for name, figures in sections.items():
        if "error" in figures:
            rows.append((f"{name}: FAILED", figures["error"][:60], "", ""))
    return rows


def print_table(rows, quick):
    headers = ("figure", "measured", "target", "met")
    widths = [max(len(str(row[column])) for row in (headers, *rows)) for column in range(4)]
    print()
    if quick:
        print("sizes shrunk by --quick: the targets are for the full sizes")
    for row in (headers, tuple("-" * width for width in widths), *rows):
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))


# --- command line ----------------------------------------------------------------------------


def parse_choices(text, choices):
    chosen = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in choices]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated list of {', '.join(choices)}; got {text!r}"
        )
    return chosen


def parse_sections(text):
    return parse_choices(text, SECTIONS)


def parse_deliveries(text):
    return parse_choices(text, tuple(DELIVERY_NOTES))


def parse_sizes(text):
    try:
        sizes = [int(part.replace("_", "")) for part in text.split(",")]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(
            f"expected row counts such as 1000000,6362620; got {text!r}"
        )
    return sizes


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Sizes not given are the full targets' sizes, or 64 times smaller with --quick.",
    )
    parser.add_argument(
        "--only", type=parse_sections, default=list(SECTIONS), help=f"of {','.join(SECTIONS)}"
    )
    parser.add_argument("--quick", action="store_true", help="shrink every size, a smoke run")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="the JSON file")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="of the generated data")
    parser.add_argument(
        "--backtest-rows", type=parse_sizes, help="default 1000000,6362620; the last is the target"
    )
    parser.add_argument(
        "--baseline-full", action="store_true", help="run the baseline on every backtest size"
    )
    parser.add_argument("--e2e-rows", type=int, help=f"default {DEFAULT_E2E_ROWS}")
    parser.add_argument(
        "--full-volume-rows",
        type=int,
        help=f"rows of the e2e full-volume run, default {FULL_VOLUME_ROWS}; 0 skips it",
    )
    parser.add_argument(
        "--producers", type=int, default=os.cpu_count() or 1, help="producer processes"
    )
    parser.add_argument("--latency-rate", type=float, help=f"default {DEFAULT_LATENCY_RATE}/s")
    parser.add_argument("--latency-seconds", type=float, help=f"default {DEFAULT_LATENCY_SECONDS}")
    parser.add_argument(
        "--checkpoint-interval",
        default=DEFAULT_CHECKPOINT_INTERVAL,
        help=f"of the latency run, default '{DEFAULT_CHECKPOINT_INTERVAL}'",
    )
    parser.add_argument(
        "--checkpoint-min-pause",
        default=DEFAULT_CHECKPOINT_MIN_PAUSE,
        help=f"of the latency run, default '{DEFAULT_CHECKPOINT_MIN_PAUSE}'",
    )
    parser.add_argument(
        "--bundle-ms",
        type=int,
        default=DEFAULT_LATENCY_BUNDLE_MS,
        help=f"Python bundle time of the latency run, default {DEFAULT_LATENCY_BUNDLE_MS}",
    )
    parser.add_argument(
        "--alert-delivery",
        type=parse_deliveries,
        default=list(DELIVERY_NOTES),
        help="the alert delivery guarantees whose latency to measure, comma separated",
    )
    parser.add_argument("--memory-rows", type=int, help=f"N, default {DEFAULT_MEMORY_ROWS}")
    parser.add_argument(
        "--job-timeout",
        type=float,
        default=DEFAULT_JOB_TIMEOUT_SECONDS,
        help="seconds one job run may take",
    )
    parser.add_argument("--keep-topics", action="store_true", help="do not delete bench topics")
    options = parser.parse_args(argv)

    # The job runs in the repository root: paths handed to it must not depend on our folder.
    options.output = options.output.resolve()
    options.data_dir = options.data_dir.resolve()
    divisor = QUICK_DIVISOR if options.quick else 1
    duration_divisor = math.sqrt(divisor)
    if options.backtest_rows is None:
        options.backtest_rows = [rows // divisor for rows in DEFAULT_BACKTEST_ROWS]
    if options.e2e_rows is None:
        options.e2e_rows = DEFAULT_E2E_ROWS // divisor
    if options.full_volume_rows is None:
        options.full_volume_rows = FULL_VOLUME_ROWS // divisor
    if options.latency_rate is None:
        options.latency_rate = DEFAULT_LATENCY_RATE / duration_divisor
    if options.latency_seconds is None:
        options.latency_seconds = DEFAULT_LATENCY_SECONDS / duration_divisor
    if options.memory_rows is None:
        options.memory_rows = DEFAULT_MEMORY_ROWS // divisor
    options.latency_warmup_rows = LATENCY_WARMUP_ROWS // divisor
    # Throughput runs checkpoint as a deployment does, at the interval of flink-conf/.
    options.throughput_checkpoint_interval = str(flink_setting("execution.checkpointing.interval"))
    if options.producers < 1:
        parser.error(f"--producers must be at least 1, got {options.producers}")
    return options


MEASURES = {
    "backtest": measure_backtest,
    "e2e": measure_e2e,
    "latency": measure_latency,
    "memory": measure_memory,
}


def main(argv=None):
    options = parse_arguments(argv)
    logging.basicConfig(level=logging.WARNING)
    started = time.monotonic()
    sections = {}
    for name in SECTIONS:
        if name not in options.only:
            continue
        section_started = time.monotonic()
        try:
            if name == "scaling":
                sections[name] = measure_scaling(options, sections.get("e2e"))
            else:
                sections[name] = MEASURES[name](options)
        except Exception as error:  # one failed section should not cost the others' figures
            logger.exception("section %s failed", name)
            sections[name] = {"error": f"{type(error).__name__}: {error}"}
        print(f"   [{name}: {time.monotonic() - section_started:.0f} s]")

    rows = summary_rows(sections)
    print_table(rows, options.quick)
    results = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "quick": options.quick,
        "settings": {
            "seed": options.seed,
            "backtest_rows": options.backtest_rows,
            "baseline_full": options.baseline_full,
            "e2e_rows": options.e2e_rows,
            "producers": options.producers,
            "latency_rate": options.latency_rate,
            "latency_seconds": options.latency_seconds,
            "latency_warmup_rows": options.latency_warmup_rows,
            "checkpoint_interval": options.checkpoint_interval,
            "throughput_checkpoint_interval": options.throughput_checkpoint_interval,
            "memory_rows": [options.memory_rows, options.memory_rows * MEMORY_LENGTH_FACTOR],
        },
        "sections": sections,
        "table": [
            dict(zip(("figure", "measured", "target", "met"), row, strict=True)) for row in rows
        ],
        "seconds": round(time.monotonic() - started, 1),
    }
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    print(f"\nwritten to {options.output} in {results['seconds']:.0f} s")
    failed = [name for name, figures in sections.items() if "error" in figures]
    if failed:
        print(f"sections that failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
