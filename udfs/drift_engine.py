"""Per-key windows, reference and verdicts, free of Flink so that it can be tested alone.

The Flink operator (:mod:`udfs.flink_functions`) keeps one :class:`KeyState` per key in keyed
state and hands each arriving batch of transactions to :func:`advance`, which cuts count windows
of ``window_size`` from what is pending, evaluates each against the key's reference and returns
what to emit. :func:`flush` evaluates a partial window when the time bound expires.

Evaluating a window means: a drift verdict against the reference (once the reference is full),
a risk score for every transaction, the window record, a drift event when the window drifted,
and an alert for every transaction whose risk reaches the key's flag threshold. Then the window
enters the reference or not, as the reference policy says.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field

import numpy as np

from udfs.drift_stats import CATEGORICAL, NUMERIC, ReferenceSummary, compare_window, tail_scores
from udfs.engine_config import APPEND_UNDRIFTED, FROZEN
from udfs.fraud_memory import FraudMemory
from udfs.metrics import ScoreCounts
from udfs.scoring import RuleContext, drift_scores, risk_scores, rule_scores
from udfs.transactions import DESTINATION_KIND, NO_PARTITION, NUMERIC_FEATURES, TransactionBatch

KIND_OF_FEATURE = {**{name: NUMERIC for name in NUMERIC_FEATURES}, DESTINATION_KIND: CATEGORICAL}
NO_MODEL_VERSION = "none"
# An alert names the model among its reasons when the model alone leans towards fraud.
MODEL_REASON_PROBABILITY = 0.5

WARMING_UP = "warming_up"
EVALUATED = "evaluated"
TOO_SMALL = "too_small"


@dataclass
class KeyState:
    """What one key keeps between batches: pending rows, the reference, and fraud labels learned.

    The parts live in separate pieces of Flink keyed state because they change at different
    rates: pending rows with every batch, the reference, its summary and the memory once a
    window.
    """

    pending: TransactionBatch = field(default_factory=TransactionBatch.empty)
    reference_rows: dict = field(default_factory=dict)
    summary: ReferenceSummary | None = None
    # Windows that entered the reference since its summary was built.
    summary_age: int = 0
    fraud_memory: FraudMemory = field(default_factory=FraudMemory)

    @property
    def reference_size(self):
        if not self.reference_rows:
            return 0
        return len(next(iter(self.reference_rows.values())))

    def reference_bytes(self):
        return pickle.dumps(self.reference_rows, protocol=pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def reference_from_bytes(data):
        return pickle.loads(data) if data else {}


@dataclass
class WindowOutcome:
    """What evaluating one window produced, ready to be written out."""

    window: dict
    drift_event: dict | None
    alerts: list


def advance(state, incoming, key, source, config, now_ms=0, model=None):
    """Add ``incoming`` to the key's pending rows and evaluate every full window.

    Returns
    -------
    list[WindowOutcome]
        One per full window, in order; ``state`` is updated in place.
    """
    pending = TransactionBatch.concatenate([state.pending, incoming])
    outcomes = []
    start = 0
    while len(pending) - start >= config.window_size:
        window = pending.take(slice(start, start + config.window_size))
        outcomes.append(evaluate(state, window, key, source, config, now_ms, model))
        start += config.window_size
    state.pending = pending.take(slice(start, None)) if start else pending
    return outcomes


def flush(state, key, source, config, now_ms=0, model=None):
    """Evaluate the pending rows as a partial window; None when nothing is pending."""
    if not len(state.pending):
        return None
    window, state.pending = state.pending, TransactionBatch.empty()
    return evaluate(state, window, key, source, config, now_ms, model)


def evaluate(state, window, key, source, config, now_ms=0, model=None):
    """Verdict, scores and outputs of one window; the reference is updated as configured.

    ``model`` is the :class:`udfs.fraud_model.FraudModel` to score with; without one the model
    term is 0 and alerts say so with the model version ``"none"``.
    """
    features = window.feature_columns()
    reference_full = state.reference_size >= config.reference_size
    status = WARMING_UP
    verdict = None
    if reference_full and len(window) >= config.min_verdict_rows:
        if state.summary is None:
            state.summary = summarise(state.reference_rows, config.window_size)
        verdict = compare_window(state.summary, features, config.drift)
        status = EVALUATED
    elif reference_full:
        status = TOO_SMALL

    # Score every transaction of the window.
    drifted_numeric = [
        name for name in (verdict.drifted_features if verdict else ()) if name in NUMERIC_FEATURES
    ]
    if drifted_numeric:
        tails = tail_scores(state.summary, features, tuple(drifted_numeric))
    else:
        tails = np.zeros((len(window), 0))
    drift = drift_scores(tails, config.tail_start)
    context = RuleContext(
        largest_reference_amount=float(state.reference_rows["amount"].max())
        if reference_full
        else None,
        fraud_memory=state.fraud_memory,
    )
    rules, fired = rule_scores(window.columns, context)
    probability = model.predict(window.columns) if model is not None else np.zeros(len(window))
    model_version = model.version if model is not None else NO_MODEL_VERSION
    risk = risk_scores(drift, probability, rules, config)
    flagged = risk >= config.flag_threshold_for(key)

    window_record = _window_record(window, key, source, state, config, status, verdict, now_ms)
    window_record["model_version"] = model_version
    counts = ScoreCounts.of(window.columns["isFraud"], risk, flagged)
    window_record["metrics"] = counts.metrics()
    window_record["score_counts"] = counts.to_dict()
    drift_event = None
    if verdict is not None and verdict.drifted:
        drift_event = {**window_record, "explanation": verdict.explain()}
        del drift_event["score_counts"]
    terms = {"risk": risk, "drift": drift, "model": probability, "rules": rules}
    alerts = [
        _alert(window, row, key, source, terms, fired, drifted_numeric, tails, config)
        for row in np.flatnonzero(flagged)
    ]
    for alert in alerts:
        alert["model_version"] = model_version
    window_record["flagged"] = len(alerts)

    _update_reference(state, features, verdict, config)
    state.fraud_memory.learn(window.columns)
    return WindowOutcome(window_record, drift_event, alerts)


def summarise(reference_rows, window_size):
    return ReferenceSummary.from_columns(
        reference_rows, kinds=KIND_OF_FEATURE, window_size=window_size
    )


def _update_reference(state, features, verdict, config):
    full = state.reference_size >= config.reference_size
    if full and config.reference_policy == FROZEN:
        return
    if full and config.reference_policy == APPEND_UNDRIFTED and verdict and verdict.drifted:
        return
    if state.reference_rows:
        combined = {
            name: np.concatenate([state.reference_rows[name], values])[-config.reference_size :]
            for name, values in features.items()
        }
    else:
        combined = {name: values[-config.reference_size :] for name, values in features.items()}
    state.reference_rows = combined
    state.summary_age += 1
    if state.summary_age >= config.summary_refresh_windows:
        state.summary = None
        state.summary_age = 0


def _position_fields(window):
    positions = window.columns["position"]
    partitions = window.columns["partition"]
    fields = {"first_row": int(positions[0]), "last_row": int(positions[-1])}
    if partitions[0] != NO_PARTITION:
        fields["first_partition"] = int(partitions[0])
        fields["last_partition"] = int(partitions[-1])
    return fields


def _window_record(window, key, source, state, config, status, verdict, now_ms):
    position = _position_fields(window)
    partition_mark = f"p{position['first_partition']}:" if "first_partition" in position else ""
    drifted_features = list(verdict.drifted_features) if verdict else []
    feature_count = len(verdict.features) if verdict else 0
    return {
        # Source, key and first position name a window uniquely and the same on every replay.
        "window_id": f"{source}|{key}@{partition_mark}{position['first_row']}",
        "key": key,
        "source": source,
        **position,
        "row_count": len(window),
        "status": status,
        "drifted": bool(verdict.drifted) if verdict else False,
        # The share of features that drifted: 0 for a quiet window, 1 when every feature moved.
        "drift_score": len(drifted_features) / feature_count if feature_count else 0.0,
        "drifted_features": drifted_features,
        "reference_size": state.reference_size,
        "config_version": config.version,
        "evaluated_at_ms": int(now_ms),
        "fraud_in_window": int((window.columns["isFraud"] == 1).sum()),
    }


def _alert(window, row, key, source, terms, fired, drifted_numeric, tails, config):
    columns = window.columns
    reasons = [name for name, marks in fired.items() if marks[row]]
    if terms["model"][row] >= MODEL_REASON_PROBABILITY:
        reasons.append("model")
    for column, feature in enumerate(drifted_numeric):
        if tails[row, column] >= config.tail_start:
            reasons.append(f"tail:{feature}")
    return {
        "transaction_id": str(columns["transaction_id"][row]),
        "key": key,
        "source": source,
        "row": int(columns["position"][row]),
        "partition": int(columns["partition"][row]),
        "type": str(columns["type"][row]),
        "amount": float(columns["amount"][row]),
        "nameOrig": str(columns["nameOrig"][row]),
        "nameDest": str(columns["nameDest"][row]),
        "risk_score": round(float(terms["risk"][row]), 6),
        "drift_score": round(float(terms["drift"][row]), 6),
        "model_probability": round(float(terms["model"][row]), 6),
        "rule_score": round(float(terms["rules"][row]), 6),
        "reasons": reasons,
        "config_version": config.version,
        "isFraud": int(columns["isFraud"][row]),
    }
