"""Rules on hand-built transactions, the fraud model's artifact, and the detection metrics."""

import dataclasses
import json

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from udfs.drift_engine import KeyState, advance
from udfs.engine_config import EngineConfig
from udfs.fraud_memory import FraudMemory
from udfs.fraud_model import DEFAULT_MODEL_PATH, FraudModel, ModelArtifactError
from udfs.metrics import ScoreCounts, classification_metrics
from udfs.scoring import RuleContext, rule_scores
from udfs.transactions import UNLABELLED, TransactionBatch


def transactions(*rows):
    """Columns from (type, amount, old origin, new origin, destination, old dest, new dest)."""
    names = ("type", "amount", "oldbalanceOrg", "newbalanceOrig", "nameDest")
    names += ("oldbalanceDest", "newbalanceDest")
    columns = {name: np.array([row[i] for row in rows]) for i, name in enumerate(names)}
    for name in names[1:4] + names[5:]:
        columns[name] = columns[name].astype(np.float64)
    return columns


# --- rules ------------------------------------------------------------------------------------


def test_account_drained_fires_on_transfers_and_cash_outs_that_empty_the_origin():
    columns = transactions(
        ("TRANSFER", 181.0, 181.0, 0.0, "C1", 0.0, 0.0),
        ("CASH_OUT", 500.0, 500.005, 0.0, "C2", 10.0, 510.0),  # a rounding cent is no matter
        ("PAYMENT", 100.0, 100.0, 0.0, "M3", 0.0, 0.0),  # payments are never drains
        ("TRANSFER", 181.0, 1000.0, 819.0, "C4", 0.0, 181.0),  # leaves money behind
        ("CASH_OUT", 0.0, 0.0, 0.0, "C5", 0.0, 0.0),  # nothing moved
    )

    _, fired = rule_scores(columns)

    assert fired["account_drained"].tolist() == [True, True, False, False, False]


def test_destination_unchanged_fires_when_a_customer_balance_does_not_move():
    columns = transactions(
        ("TRANSFER", 900.0, 5000.0, 4100.0, "C1", 0.0, 0.0),
        ("CASH_OUT", 900.0, 5000.0, 4100.0, "C2", 250.0, 250.0),
        ("TRANSFER", 900.0, 5000.0, 4100.0, "C3", 0.0, 900.0),  # the money arrived
        ("PAYMENT", 900.0, 5000.0, 4100.0, "M4", 0.0, 0.0),  # merchants keep no balance
        ("CASH_IN", 900.0, 5000.0, 5900.0, "C5", 0.0, 0.0),  # money coming in
    )

    score, fired = rule_scores(columns)

    assert fired["destination_unchanged"].tolist() == [True, True, False, False, False]
    assert score.tolist() == [0.5, 0.5, 0.0, 0.0, 0.0]


def test_amount_beyond_history_needs_a_reference_and_an_amount_above_all_of_it():
    columns = transactions(
        ("PAYMENT", 120.0, 500.0, 380.0, "M1", 0.0, 0.0),
        ("PAYMENT", 99.0, 500.0, 401.0, "M2", 0.0, 0.0),
    )

    _, without_history = rule_scores(columns)
    _, with_history = rule_scores(columns, RuleContext(largest_reference_amount=100.0))

    assert not without_history["amount_beyond_history"].any()
    assert with_history["amount_beyond_history"].tolist() == [True, False]


def test_the_rule_score_is_the_strongest_rule_that_fired():
    drained_and_unmoved = ("TRANSFER", 181.0, 181.0, 0.0, "C1", 0.0, 0.0)

    score, fired = rule_scores(transactions(drained_and_unmoved))

    assert fired["account_drained"][0] and fired["destination_unchanged"][0]
    assert score.tolist() == [1.0]


# --- the model artifact ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def model():
    return FraudModel.load(DEFAULT_MODEL_PATH)


def test_the_shipped_model_loads_with_a_version_that_matches_its_trees(model):
    assert model.version.startswith("gbt-")
    assert model.card["held_out"]["frauds"] > 0
    assert set(model.scored_types) == {"TRANSFER", "CASH_OUT"}


def test_the_model_scores_a_drain_high_and_ordinary_traffic_low(model):
    columns = transactions(
        ("TRANSFER", 181_000.0, 181_000.0, 0.0, "C1", 0.0, 0.0),
        ("CASH_OUT", 20_000.0, 350_000.0, 330_000.0, "C2", 80_000.0, 100_000.0),
        ("PAYMENT", 181_000.0, 181_000.0, 0.0, "M3", 0.0, 0.0),
    )

    probability = model.predict(columns)

    assert probability[0] > 0.9
    assert probability[1] < 0.05
    assert probability[2] == 0.0  # a type the model was never trained to judge


def test_the_model_version_is_on_every_alert_and_window(model):
    drained = ("TRANSFER", 181_000.0, 181_000.0, 0.0, "C1", 0.0, 0.0)
    config = EngineConfig(window_size=4, reference_size=8, min_verdict_rows=4)

    (outcome,) = advance(KeyState(), fraud_batch([drained] * 4), "TRANSFER", "t", config, 0, model)

    assert len(outcome.alerts) == 4
    assert {alert["model_version"] for alert in outcome.alerts} == {model.version}
    assert outcome.window["model_version"] == model.version
    assert "model" in outcome.alerts[0]["reasons"]


def fraud_batch(rows):
    """A batch of ``rows`` (see :func:`transactions`), every one labelled fraud."""
    columns = transactions(*rows)
    count = len(rows)
    columns.update(
        position=np.arange(count),
        partition=np.full(count, -1, dtype=np.int32),
        transaction_id=np.array([f"t:{i}" for i in range(count)]),
        step=np.ones(count, dtype=np.int64),
        nameOrig=np.array([f"C9{i}" for i in range(count)]),
        isFraud=np.ones(count, dtype=np.int8),
        isFlaggedFraud=np.zeros(count, dtype=np.int8),
    )
    return TransactionBatch(columns)


def test_a_missing_artifact_names_the_file(tmp_path):
    missing = tmp_path / "nowhere.npz"

    with pytest.raises(ModelArtifactError, match="nowhere.npz does not exist"):
        FraudModel.load(missing)


def test_a_truncated_artifact_names_the_file(tmp_path):
    broken = tmp_path / "broken.npz"
    broken.write_bytes(DEFAULT_MODEL_PATH.read_bytes()[:300])

    with pytest.raises(ModelArtifactError, match="broken.npz is not readable"):
        FraudModel.load(broken)


def test_an_artifact_whose_trees_were_changed_is_refused(tmp_path, model):
    tampered = tmp_path / "tampered.npz"
    threshold = model.threshold.copy()
    threshold[0] += 1.0
    dataclasses.replace(model, threshold=threshold).save(tampered)

    with pytest.raises(ModelArtifactError, match="tampered.npz does not match its version"):
        FraudModel.load(tampered)


def test_an_artifact_of_another_format_is_refused(tmp_path, model):
    other = tmp_path / "other.npz"
    dataclasses.replace(model, card={**model.card, "format": "someone-else/9"}).save(other)

    with pytest.raises(ModelArtifactError, match="other.npz has format 'someone-else/9'"):
        FraudModel.load(other)


# --- metrics ---------------------------------------------------------------------------------


def test_metrics_match_their_definitions_and_sklearn():
    generator = np.random.default_rng(5)
    labels = (generator.random(2000) < 0.05).astype(np.int8)
    scores = np.round(np.clip(0.4 * labels + generator.random(2000) * 0.7, 0, 1), 3)

    metrics = classification_metrics(labels, scores, 0.5)

    flagged = scores >= 0.5
    tp = int((flagged & (labels == 1)).sum())
    assert metrics["true_positives"] == tp
    assert metrics["precision"] == pytest.approx(tp / flagged.sum())
    assert metrics["recall"] == pytest.approx(tp / labels.sum())
    assert metrics["auprc"] == pytest.approx(average_precision_score(labels, scores))


def test_counts_of_parts_add_up_to_the_counts_of_the_whole():
    generator = np.random.default_rng(6)
    labels = (generator.random(3000) < 0.1).astype(np.int8)
    scores = generator.random(3000)
    flagged = scores > 0.8

    whole = ScoreCounts.of(labels, scores, flagged)
    parts = ScoreCounts()
    for part in np.array_split(np.arange(3000), 7):
        piece = ScoreCounts.of(labels[part], scores[part], flagged[part])
        parts.add(ScoreCounts.from_dict(json.loads(json.dumps(piece.to_dict()))))

    assert parts.metrics() == whole.metrics()


def test_unlabelled_transactions_count_nowhere_and_undefined_ratios_are_none():
    labels = np.array([UNLABELLED, 0, 0, UNLABELLED])
    scores = np.array([0.9, 0.1, 0.2, 0.95])

    metrics = classification_metrics(labels, scores, 0.5)

    assert metrics["labelled"] == 2
    assert metrics["accuracy"] == 1.0
    assert metrics["precision"] is None  # nothing labelled was flagged
    assert metrics["recall"] is None and metrics["auprc"] is None  # no fraud to find


# --- what a key learns from labels -----------------------------------------------------------


def labelled(rows, label):
    columns = transactions(*rows)
    columns["isFraud"] = np.full(len(rows), label, dtype=np.int8)
    return columns


PARTIAL_DRAIN = ("TRANSFER", 40_000_000.0, 60_000_000.0, 20_000_000.0, "C1", 0.0, 4e7)
ORDINARY = ("TRANSFER", 40_000.0, 60_000.0, 20_000.0, "C2", 0.0, 4e4)


def test_memory_marks_a_pattern_once_labelled_frauds_dominate_it():
    memory = FraudMemory()
    assert not memory.marks(transactions(PARTIAL_DRAIN)).any()

    memory.learn(labelled([PARTIAL_DRAIN] * 5, 1))

    assert memory.marks(transactions(PARTIAL_DRAIN)).all()
    assert not memory.marks(transactions(ORDINARY)).any()  # another amount decade


def test_memory_ignores_a_cell_where_legitimate_traffic_dominates_or_labels_are_missing():
    memory = FraudMemory()
    memory.learn(labelled([PARTIAL_DRAIN] * 5, 1))
    memory.learn(labelled([PARTIAL_DRAIN] * 10, 0))
    memory.learn(labelled([ORDINARY] * 50, UNLABELLED))

    assert not memory.marks(transactions(PARTIAL_DRAIN, ORDINARY)).any()


def test_memory_forgets_a_pattern_that_stops_being_fraud():
    memory = FraudMemory()
    memory.learn(labelled([PARTIAL_DRAIN] * 4, 1))

    for _ in range(5):
        memory.learn(labelled([ORDINARY], 0))

    assert not memory.marks(transactions(PARTIAL_DRAIN)).any()


def test_a_window_is_scored_before_its_own_labels_are_learned():
    # Rules alone decide here: a rule that fires reaches the threshold.
    config = EngineConfig(
        window_size=5, reference_size=5, min_verdict_rows=5, model_weight=0.0, flag_threshold=0.3
    )

    first, second = advance(KeyState(), fraud_batch([PARTIAL_DRAIN] * 10), "TRANSFER", "t", config)

    assert not first.alerts  # nothing learned yet
    assert len(second.alerts) == 5
    assert all(alert["reasons"] == ["like_recent_fraud"] for alert in second.alerts)
