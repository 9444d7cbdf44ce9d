"""Windows, reference policies and scoring of one key, without Flink."""

import numpy as np
import pytest

from tests.synthetic_paysim import transactions_csv
from udfs.drift_engine import EVALUATED, TOO_SMALL, WARMING_UP, KeyState, advance, flush
from udfs.engine_config import APPEND_UNDRIFTED, FROZEN, EngineConfig
from udfs.scoring import drift_scores
from udfs.transactions import parse_csv_lines

SMALL = {"window_size": 100, "reference_size": 300, "min_verdict_rows": 20}


def transfers(tmp_path, rows=3000, seed=3, **shift):
    path = transactions_csv(tmp_path / "t.csv", rows, seed=seed, **shift)
    lines = path.read_text().splitlines()[1:]
    batch, _ = parse_csv_lines(lines, np.arange(len(lines)), "t.csv")
    return batch.take(batch.columns["type"] == "TRANSFER")


def run(batch, config, chunk=70):
    state = KeyState()
    outcomes = []
    for start in range(0, len(batch), chunk):
        outcomes += advance(state, batch.take(slice(start, start + chunk)), "TRANSFER", "t", config)
    return state, outcomes


def test_windows_are_cut_at_the_count_whatever_the_batch_sizes(tmp_path):
    batch = transfers(tmp_path)
    config = EngineConfig(**SMALL)

    state, outcomes = run(batch, config, chunk=37)

    assert [o.window["row_count"] for o in outcomes] == [100] * (len(batch) // 100)
    assert len(state.pending) == len(batch) % 100
    first_rows = [o.window["first_row"] for o in outcomes]
    assert first_rows == batch.columns["position"][::100][: len(outcomes)].tolist()


def test_no_verdict_until_the_reference_is_full(tmp_path):
    config = EngineConfig(**SMALL)

    _, outcomes = run(transfers(tmp_path), config)

    statuses = [o.window["status"] for o in outcomes]
    assert statuses[:3] == [WARMING_UP] * 3
    assert set(statuses[3:]) == {EVALUATED}
    assert outcomes[3].window["reference_size"] == 300


def test_flush_evaluates_a_partial_window_and_marks_a_tiny_one(tmp_path):
    batch = transfers(tmp_path)
    config = EngineConfig(**SMALL)
    state, _ = run(batch.take(slice(0, 410)), config)

    tiny = flush(state, "TRANSFER", "t", config)

    assert tiny.window["row_count"] == 10
    assert tiny.window["status"] == TOO_SMALL
    assert flush(state, "TRANSFER", "t", config) is None


def test_shift_is_declared_and_tails_of_the_shifted_feature_are_flagged(tmp_path):
    # Sizes where the reference covers the heavy tail: against a reference of a few hundred
    # rows one extreme amount can move the Wasserstein distance past its calibrated null.
    batch = transfers(tmp_path, rows=12000, change_row=8000, log_shift=1.5)
    # A deployment that lets drift alone flag: the default weights never do.
    config = EngineConfig(
        window_size=200, reference_size=1000, min_verdict_rows=20, drift_weight=0.6
    )

    _, outcomes = run(batch, config)

    evaluated = [o for o in outcomes if o.window["status"] == EVALUATED]
    before = [o for o in evaluated if o.window["last_row"] < 8000]
    after = [o for o in evaluated if o.window["first_row"] >= 8000]
    assert not any(o.window["drifted"] for o in before)
    assert after[0].drift_event is not None
    assert "amount" in after[0].drift_event["drifted_features"]
    assert after[0].alerts, "rows far in the amount tail of a drifted window are flagged"
    assert all("tail:amount" in alert["reasons"] for alert in after[0].alerts)
    # Not every transaction of the drifted window is flagged: the drift term tells them apart.
    assert len(after[0].alerts) < after[0].window["row_count"]


@pytest.mark.parametrize("policy", [APPEND_UNDRIFTED, FROZEN])
def test_policies_that_keep_drift_out_of_the_reference_keep_declaring_it(tmp_path, policy):
    batch = transfers(tmp_path, rows=6000, change_row=2500, log_shift=1.5)
    appending = EngineConfig(**SMALL)
    guarded = EngineConfig(**SMALL, reference_policy=policy)

    _, appended = run(batch, appending)
    _, kept = run(batch, guarded)

    def drifted_after(outcomes):
        return sum(o.window["drifted"] for o in outcomes if o.window["first_row"] >= 2500)

    # Appending absorbs the new level into the reference after a few windows; the others do not.
    assert drifted_after(kept) > drifted_after(appended)


def test_drift_term_is_zero_inside_the_reference_and_one_at_its_extremes():
    tails = np.array([[0.5, 0.2], [0.95, 0.1], [1.0, 0.99]])

    assert drift_scores(tails, 0.9).tolist() == pytest.approx([0.0, 0.5, 1.0])
    assert drift_scores(np.zeros((3, 0)), 0.9).tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"window_size": 0}, "window_size must be a positive integer"),
        ({"reference_policy": "sometimes"}, "reference_policy must be one of"),
        ({"drift_weight": 1.5}, "drift_weight must lie in [0, 1]"),
        ({"flag_thresholds": {"TRANSFER": 0.0}}, "flag threshold for 'TRANSFER'"),
        ({"window_size": 10, "min_verdict_rows": 20}, "min_verdict_rows must not exceed"),
        ({"window_time_bound_seconds": 0}, "window_time_bound_seconds must be a positive"),
    ],
)
def test_bad_settings_are_named_in_the_error(settings, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        EngineConfig(**settings)


def test_flag_threshold_per_key_falls_back_to_type_then_global():
    config = EngineConfig(flag_thresholds={"TRANSFER": 0.4, "TRANSFER/1": 0.3})

    assert config.flag_threshold_for("TRANSFER/1") == 0.3
    assert config.flag_threshold_for("TRANSFER/0") == 0.4
    assert config.flag_threshold_for("PAYMENT") == 0.5
    assert EngineConfig().version == EngineConfig().version != config.version
