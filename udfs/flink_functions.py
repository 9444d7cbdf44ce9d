"""The Python functions the Flink job runs: batch packing and the per-key drift operator.

Transactions cross from the JVM into Python in batches, never one at a time. From Kafka, the
job groups them per key into short micro-batches in SQL, and a pandas aggregate function (Arrow
transfer) parses and validates each micro-batch at once and packs it into one binary value. From
a file, :class:`CsvChunkParser` reads a chunk of whole lines, parses and validates them together
and packs one batch per key. The keyed process function then sees one element per batch, cuts
count windows from it with :mod:`udfs.drift_engine`, and keeps the key's pending rows, reference
and label memory in keyed state; :class:`MetricsTotals` keeps the running detection metrics.
"""

from __future__ import annotations

import json
import pickle

import numpy as np
from pyflink.common import Types
from pyflink.datastream import FlatMapFunction, KeyedProcessFunction, OutputTag
from pyflink.datastream.state import ValueStateDescriptor
from pyflink.table import DataTypes
from pyflink.table.udf import udaf

from udfs import drift_engine
from udfs.csv_chunks import Chunk, key_names
from udfs.engine_config import type_of_key
from udfs.fraud_memory import FraudMemory
from udfs.metrics import ScoreCounts
from udfs.transactions import TransactionBatch, parse_csv_lines, parse_json_records

DRIFT_EVENTS_TAG = OutputTag("drift-events", Types.STRING())
ALERTS_TAG = OutputTag("alerts", Types.STRING())
DEAD_LETTER_TAG = OutputTag("dead-letter", Types.STRING())

# Invalid lines of a file have no trustworthy key; they travel under this one.
DEAD_LETTER_KEY = "?"

# The scope of the running totals over every key; a type's totals are "type:" and its name.
ALL_SCOPE = "all"

# Event time never reaches this except through the watermark that closes a bounded input.
END_OF_INPUT_MS = 2**63 - 2


def _packed(batch, dead_letters, source):
    return pickle.dumps(
        (batch.to_bytes(), [letter.to_dict(source) for letter in dead_letters]),
        protocol=pickle.HIGHEST_PROTOCOL,
    )


def unpack(packed):
    """The (TransactionBatch, dead-letter dicts) that a packing function produced."""
    batch_bytes, dead_letters = pickle.loads(packed)
    return TransactionBatch.from_bytes(batch_bytes), dead_letters


@udaf(result_type=DataTypes.BYTES(), func_type="pandas")
def pack_json_transactions(topic, partition, offset, payload):
    """Parse and validate one micro-batch of Kafka JSON records of one key."""
    source = str(topic.iloc[0]) if len(topic) else ""
    batch, dead_letters = parse_json_records(
        payload.tolist(), offset.to_numpy(), partition.to_numpy(), source
    )
    return _packed(batch, dead_letters, source)


class CsvChunkParser(FlatMapFunction):
    """Parse and validate one chunk of a CSV file, and split it into one batch per key.

    Input elements are :class:`udfs.csv_chunks.Chunk` fields ``(path, start, end, first_row)``;
    output elements are ``(key, source, packed batch)`` as the packing functions give, plus one
    element under :data:`DEAD_LETTER_KEY` carrying the chunk's invalid lines.
    """

    def __init__(self, source, shards):
        self.source = source
        self.shards = shards

    def flat_map(self, value):
        chunk = Chunk(*value)
        lines = chunk.lines()
        rows = np.arange(chunk.first_row, chunk.first_row + len(lines))
        batch, dead_letters = parse_csv_lines(lines, rows, self.source)
        if dead_letters:
            yield (
                DEAD_LETTER_KEY,
                self.source,
                _packed(TransactionBatch.empty(), dead_letters, self.source),
            )
        keys = key_names(batch.columns["type"], batch.columns["nameOrig"], self.shards)
        for key in np.unique(keys):
            key_batch = batch.take(keys == key)
            yield str(key), self.source, _packed(key_batch, [], self.source)


class DriftWindowFunction(KeyedProcessFunction):
    """Count windows with a time bound, keyed reference state, verdicts and scores.

    Input elements are ``(key, source, packed micro-batch)``. The main output carries window
    records as JSON; drift events, alerts and dead letters leave through the side outputs
    :data:`DRIFT_EVENTS_TAG`, :data:`ALERTS_TAG` and :data:`DEAD_LETTER_TAG`.

    :param config: the :class:`udfs.engine_config.EngineConfig` to apply.
    :param model: the :class:`udfs.fraud_model.FraudModel` to score with, or None. It travels
        to the workers inside this function, so they need no access to the artifact's file.
    :param wall_clock_bound: whether a partial window is evaluated once it has waited
        ``config.window_time_bound_seconds`` of processing time. A backtest turns it off: there
        time is the position in the file, and windows must not depend on how fast it runs.
    """

    def __init__(self, config, model=None, wall_clock_bound=True):
        self.config = config
        self.model = model
        self.wall_clock_bound = wall_clock_bound

    def open(self, runtime_context):
        self.pending = runtime_context.get_state(
            ValueStateDescriptor("pending-rows", Types.PICKLED_BYTE_ARRAY())
        )
        self.reference = runtime_context.get_state(
            ValueStateDescriptor("reference-rows", Types.PICKLED_BYTE_ARRAY())
        )
        self.summary = runtime_context.get_state(
            ValueStateDescriptor("reference-summary", Types.PICKLED_BYTE_ARRAY())
        )
        self.summary_age = runtime_context.get_state(
            ValueStateDescriptor("reference-summary-age", Types.INT())
        )
        self.memory = runtime_context.get_state(
            ValueStateDescriptor("fraud-memory", Types.PICKLED_BYTE_ARRAY())
        )
        self.source = runtime_context.get_state(ValueStateDescriptor("source", Types.STRING()))
        self.deadline = runtime_context.get_state(
            ValueStateDescriptor("window-deadline-ms", Types.LONG())
        )
        metrics = runtime_context.get_metrics_group()
        self.windows_counter = metrics.counter("windows_evaluated")
        self.drift_counter = metrics.counter("drift_events")
        self.alert_counter = metrics.counter("alerts")
        self.dead_letter_counter = metrics.counter("dead_letters")
        self.rows_counter = metrics.counter("transactions_valid")

    # --- keyed state ---------------------------------------------------------------------

    def _load(self):
        summary_bytes = self.summary.value()
        memory_bytes = self.memory.value()
        return drift_engine.KeyState(
            pending=TransactionBatch.from_bytes(self.pending.value()),
            reference_rows=drift_engine.KeyState.reference_from_bytes(self.reference.value()),
            summary=drift_engine.ReferenceSummary.from_bytes(summary_bytes)
            if summary_bytes
            else None,
            summary_age=self.summary_age.value() or 0,
            fraud_memory=pickle.loads(memory_bytes) if memory_bytes else FraudMemory(),
        )

    def _store(self, state, windows_evaluated):
        if len(state.pending):
            self.pending.update(state.pending.to_bytes())
        else:
            self.pending.clear()
        # Only an evaluated window changes the reference and its summary; a batch that merely
        # adds pending rows leaves the large part of the state untouched.
        if windows_evaluated:
            self.reference.update(state.reference_bytes())
            if state.summary is not None:
                self.summary.update(state.summary.to_bytes())
            else:
                self.summary.clear()
            self.summary_age.update(state.summary_age)
            self.memory.update(pickle.dumps(state.fraud_memory, protocol=pickle.HIGHEST_PROTOCOL))

    # --- elements and timers -------------------------------------------------------------

    def process_element(self, value, ctx):
        key, source, packed = value[0], value[1], value[2]
        batch, dead_letters = unpack(packed)
        for letter in dead_letters:
            self.dead_letter_counter.inc()
            yield DEAD_LETTER_TAG, json.dumps({"key": key, **letter})
        if not len(batch):
            return
        self.rows_counter.inc(len(batch))
        self.source.update(source)

        state = self._load()
        now_ms = ctx.timer_service().current_processing_time()
        outcomes = drift_engine.advance(state, batch, key, source, self.config, now_ms, self.model)
        deadline = self.deadline.value()
        if outcomes:
            # The rows that started the deadline are in a full window now; what is left
            # starts a deadline of its own.
            self.deadline.clear()
        elif self.wall_clock_bound and deadline is not None and now_ms >= deadline:
            # The time bound has passed and its timer has not fired (see _arm_timers): close
            # the partial window now rather than wait for a timer that may never come.
            outcomes.append(drift_engine.flush(state, key, source, self.config, now_ms, self.model))
            self.deadline.clear()
        yield from self._emit(outcomes)
        self._store(state, windows_evaluated=bool(outcomes))
        self._arm_timers(state, ctx, now_ms)

    def on_timer(self, timestamp, ctx):
        deadline = self.deadline.value()
        end_of_input = timestamp >= END_OF_INPUT_MS
        if not end_of_input and (deadline is None or timestamp < deadline):
            return  # a timer of a window that has been evaluated since
        state = self._load()
        now_ms = ctx.timer_service().current_processing_time()
        source = self.source.value() or ""
        outcome = drift_engine.flush(
            state, ctx.get_current_key(), source, self.config, now_ms, self.model
        )
        self.deadline.clear()
        if outcome is None:
            return
        yield from self._emit([outcome])
        self._store(state, windows_evaluated=True)

    def _arm_timers(self, state, ctx, now_ms):
        if not len(state.pending):
            self.deadline.clear()
            return
        deadline = self.deadline.value()
        if deadline is None:
            deadline = now_ms + int(self.config.window_time_bound_seconds * 1000)
            self.deadline.update(deadline)
            # Processing-time timers are dropped when a bounded input ends; the final watermark
            # fires this one instead, so that the last partial window is evaluated too.
            ctx.timer_service().register_event_time_timer(END_OF_INPUT_MS)
        if self.wall_clock_bound:
            # Registered again with every batch (Flink keeps one timer per key and time).
            # A timer registered from Python reaches the Java timer service later, through
            # the task's mailbox, and Flink 2.2 snapshots at a barrier without waiting for it:
            # a timer set in the last bundle before a checkpoint is missing from it while its
            # deadline is saved. A job resumed from that checkpoint closes such a key's partial
            # window when the key's next rows arrive (the check in process_element), not on
            # time.
            ctx.timer_service().register_processing_time_timer(deadline)

    def _emit(self, outcomes):
        for outcome in outcomes:
            self.windows_counter.inc()
            yield json.dumps(outcome.window)
            if outcome.drift_event is not None:
                self.drift_counter.inc()
                yield DRIFT_EVENTS_TAG, json.dumps(outcome.drift_event)
            for alert in outcome.alerts:
                self.alert_counter.inc()
                yield ALERTS_TAG, json.dumps(alert)


class MetricsTotals(KeyedProcessFunction):
    """Running detection metrics of a source and of each transaction type in it.

    Input elements are window records as JSON, keyed by their source (topic or file): the
    totals are a handful of counters, and a few window records a second are little traffic.
    After each window it emits the updated rows of the scopes the window touched, as JSON, for
    an upsert by source and scope.
    """

    def open(self, runtime_context):
        self.totals = runtime_context.get_state(
            ValueStateDescriptor("metrics-totals", Types.PICKLED_BYTE_ARRAY())
        )

    def process_element(self, value, ctx):
        window = json.loads(value)
        totals = pickle.loads(self.totals.value()) if self.totals.value() else {}
        counts = ScoreCounts.from_dict(window["score_counts"])
        type_name = type_of_key(window["key"])
        for scope in (ALL_SCOPE, f"type:{type_name}"):
            scope_counts, windows = totals.get(scope, (ScoreCounts(), 0))
            scope_counts.add(counts)
            totals[scope] = (scope_counts, windows + 1)
            yield json.dumps(
                {
                    "source": window["source"],
                    "scope": scope,
                    "windows": windows + 1,
                    **scope_counts.metrics(),
                    "model_version": window["model_version"],
                    "config_version": window["config_version"],
                    "evaluated_at_ms": window["evaluated_at_ms"],
                }
            )
        self.totals.update(pickle.dumps(totals, protocol=pickle.HIGHEST_PROTOCOL))
