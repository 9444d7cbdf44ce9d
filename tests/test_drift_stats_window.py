"""Whole-window comparisons: corrections, configuration, verdicts, explanations, streams."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from udfs.drift_stats import (
    CATEGORICAL,
    DEFAULT_CALIBRATION_ALPHA,
    DEFAULT_MIN_EFFECT,
    NUMERIC,
    P_VALUE,
    STAT_TESTS,
    DriftConfig,
    ReferenceSummary,
    ThresholdTable,
    UnknownStatTestError,
    adjusted_p_values,
    compare_window,
    corrected_thresholds,
    tail_scores,
)

REFERENCE_SIZE = 5000
WINDOW_SIZE = 500
NUMERIC_FEATURES = ("amount", "oldbalanceOrg", "newbalanceOrig", "oldbalanceDest", "newbalanceDest")
TYPES = np.array(["PAYMENT", "CASH_OUT", "CASH_IN", "TRANSFER", "DEBIT"])
TYPE_SHARES = np.array([0.4846, 0.2176, 0.1843, 0.0958, 0.0177])
LOG_SD = 2.0  # log(amount) in PaySim has a standard deviation of about 2
ZERO_SHARES = np.array([0.0, 0.28, 0.47, 0.53, 0.54])  # exact zeros per column, as in PaySim


def paysim_like(generator, rows, log_shift=0.0, type_shares=TYPE_SHARES):
    """Correlated lognormal amounts and zero-inflated balances, and a transaction type."""
    covariance = np.full((5, 5), 0.5) + 0.5 * np.eye(5)
    logs = 11.0 + LOG_SD * generator.multivariate_normal(np.zeros(5), covariance, size=rows)
    logs[:, 0] += log_shift
    values = np.exp(logs)
    values[generator.random(values.shape) < ZERO_SHARES] = 0.0
    window = {name: values[:, index] for index, name in enumerate(NUMERIC_FEATURES)}
    window["type"] = generator.choice(TYPES, size=rows, p=type_shares / type_shares.sum())
    return window


@pytest.fixture(scope="module")
def summary():
    return ReferenceSummary.from_columns(
        paysim_like(np.random.default_rng(100), REFERENCE_SIZE), window_size=WINDOW_SIZE
    )


def builtins_only(value):
    """Whether a structure holds nothing but JSON's builtin types."""
    if isinstance(value, dict):
        return all(isinstance(key, str) and builtins_only(item) for key, item in value.items())
    if isinstance(value, list):
        return all(builtins_only(item) for item in value)
    return value is None or type(value) in (bool, int, float, str)


# --- multiple-testing correction ---------------------------------------------------------


def test_benjamini_hochberg_by_hand():
    # Sorted: 0.005 (rank 1), 0.01 (2), 0.03 (3), 0.04 (4); M p / rank = .02, .02, .04, .04.
    p_values = [0.01, 0.04, 0.03, 0.005]
    assert adjusted_p_values(p_values, "bh").tolist() == pytest.approx([0.02, 0.04, 0.04, 0.02])
    # Step-up at 0.05: cut-offs .0125, .025, .0375, .05; every rank passes, so k = 4.
    assert corrected_thresholds(p_values, 0.05, "bh").tolist() == [0.05] * 4
    # 0.001 and 0.02 pass (.0125, .025); 0.04 fails .0375 and 0.5 fails .05: k = 2.
    assert corrected_thresholds([0.001, 0.02, 0.04, 0.5], 0.05, "bh").tolist() == [0.025] * 4
    assert corrected_thresholds([0.3, 0.6], 0.05, "bh").tolist() == [0.025, 0.025]


def test_bonferroni_and_none_by_hand():
    p_values = [0.001, 0.02, 0.04, 0.5]
    assert adjusted_p_values(p_values, "bonferroni").tolist() == pytest.approx(
        [0.004, 0.08, 0.16, 1]
    )
    assert corrected_thresholds(p_values, 0.05, "bonferroni").tolist() == [0.0125] * 4
    assert adjusted_p_values(p_values, "none").tolist() == p_values
    assert corrected_thresholds(p_values, [0.05, 0.01, 0.05, 0.05], "none").tolist() == [
        0.05,
        0.01,
        0.05,
        0.05,
    ]


def test_benjamini_hochberg_matches_scipy():
    p_values = np.random.default_rng(8).uniform(0, 0.2, size=30) ** 2
    assert np.allclose(adjusted_p_values(p_values), stats.false_discovery_control(p_values))


@given(
    st.lists(st.floats(0.0, 1.0), min_size=1, max_size=40),
    st.lists(st.sampled_from([0.01, 0.05, 0.1]), min_size=40, max_size=40),
    st.sampled_from(["bh", "bonferroni", "none"]),
)
@settings(max_examples=200, deadline=None)
def test_threshold_and_adjusted_p_value_agree(p_values, alphas, method):
    alphas, p_values = np.array(alphas[: len(p_values)]), np.array(p_values)
    adjusted = adjusted_p_values(p_values, method)
    thresholds = corrected_thresholds(p_values, alphas, method)
    # The two forms agree except where rounding decides (a p-value on its cut-off).
    on_the_edge = np.isclose(p_values, thresholds, rtol=1e-12, atol=0.0)
    agree = (p_values < thresholds) == (adjusted < alphas)
    assert np.all(agree | on_the_edge)
    assert np.all(adjusted >= p_values) and np.all(adjusted <= 1.0)


def test_corrections_refuse_bad_input():
    with pytest.raises(ValueError, match="method must be one of \\['bh', 'bonferroni', 'none'\\]"):
        adjusted_p_values([0.1], "holm")
    with pytest.raises(ValueError, match="p_values must be a 1-D array of numbers in \\[0, 1\\]"):
        adjusted_p_values([0.1, 1.5])


# --- configuration -----------------------------------------------------------------------


def test_thresholds_resolve_feature_then_kind_then_overall_then_default(summary):
    config = DriftConfig(
        thresholds=ThresholdTable(
            per_feature={"amount": {"wasserstein": 0.4}},
            per_kind={NUMERIC: {"wasserstein": 0.3, "jensenshannon": 0.25}},
            overall={"wasserstein": 0.2, "jensenshannon": 0.15, "chisquare": 0.02},
        ),
        min_effects=ThresholdTable(per_feature={"type": {"chisquare": 0.2}}),
        calibration_alphas=ThresholdTable(overall={"jensenshannon": 0.001}),
    )
    verdict = compare_window(summary, paysim_like(np.random.default_rng(9), WINDOW_SIZE), config)
    amount, balance = verdict.features["amount"], verdict.features["oldbalanceOrg"]
    assert amount.result("wasserstein").threshold == 0.4  # per feature
    assert balance.result("wasserstein").threshold == 0.3  # per kind beats overall
    assert balance.result("jensenshannon").threshold == 0.25
    assert balance.result("jensenshannon").alpha == 0.001  # overall
    assert balance.result("wasserstein").alpha == DEFAULT_CALIBRATION_ALPHA  # the default
    assert balance.result("ks").alpha == STAT_TESTS["ks"].default_threshold
    assert balance.result("ks").effect_threshold == DEFAULT_MIN_EFFECT
    chisquare = verdict.features["type"].result("chisquare")
    assert (chisquare.alpha, chisquare.effect_threshold) == (0.02, 0.2)


def test_each_result_carries_the_threshold_applied_after_correction(summary):
    verdict = compare_window(summary, paysim_like(np.random.default_rng(10), WINDOW_SIZE))
    results = verdict.results()
    assert verdict.corrected_pairs == len(results) == 16
    p_values = np.array([result.p_value for result in results])
    alphas = np.array([result.alpha for result in results])
    expected = corrected_thresholds(p_values, alphas, "bh")
    assert [result.p_threshold for result in results] == expected.tolist()
    for result in results:
        assert result.significant == (result.p_value < result.p_threshold)
        assert result.large == (result.effect_size >= result.effect_threshold)
        assert result.drifted == (result.significant and result.large)
        if result.kind == P_VALUE:
            assert result.threshold == result.p_threshold
        else:
            assert result.threshold == result.effect_threshold


@pytest.mark.parametrize("method", ["bh", "bonferroni", "none"])
def test_the_configured_correction_is_applied(summary, method):
    window = paysim_like(np.random.default_rng(11), WINDOW_SIZE)
    results = compare_window(summary, window, DriftConfig(correction=method)).results()
    p_values = [result.p_value for result in results]
    assert [r.adjusted_p_value for r in results] == adjusted_p_values(p_values, method).tolist()


def test_without_calibration_distances_decide_on_their_threshold_alone(summary):
    window = paysim_like(np.random.default_rng(12), WINDOW_SIZE)
    verdict = compare_window(summary, window, DriftConfig(calibrate=False))
    distances = [result for result in verdict.results() if result.kind != P_VALUE]
    assert distances and all(result.p_value is None for result in distances)
    assert all(result.drifted == (result.score >= result.threshold) for result in distances)
    assert verdict.corrected_pairs == 6  # five KS and one chi-square


def test_config_errors_name_what_is_wrong(summary):
    with pytest.raises(UnknownStatTestError, match="unknown test 'kss'"):
        DriftConfig(tests={NUMERIC: ("kss",)})
    with pytest.raises(ValueError, match="tests\\['categorical'\\] runs 'ks', which accepts"):
        DriftConfig(tests={CATEGORICAL: ("ks",)})
    with pytest.raises(ValueError, match="min_effects applies to p_value tests"):
        DriftConfig(min_effects=ThresholdTable(overall={"wasserstein": 0.2}))
    with pytest.raises(ValueError, match="thresholds.overall\\['ks'\\] must lie strictly between"):
        DriftConfig(thresholds=ThresholdTable(overall={"ks": 1.5}))
    with pytest.raises(ValueError, match="correction must be one of"):
        DriftConfig(correction="holm")
    window = paysim_like(np.random.default_rng(13), WINDOW_SIZE)
    with pytest.raises(ValueError, match="feature_tests\\['type'\\] runs 'ks'"):
        compare_window(summary, window, DriftConfig(feature_tests={"type": ("ks",)}))
    with pytest.raises(ValueError, match="names features \\['amout'\\] that the reference"):
        thresholds = ThresholdTable(per_feature={"amout": {"ks": 0.01}})
        compare_window(summary, window, DriftConfig(thresholds=thresholds))


def test_feature_tests_replace_the_tests_of_one_feature(summary):
    window = paysim_like(np.random.default_rng(14), WINDOW_SIZE)
    verdict = compare_window(summary, window, DriftConfig(feature_tests={"amount": ("ks",)}))
    assert [result.test for result in verdict.features["amount"].results] == ["ks"]
    assert len(verdict.features["oldbalanceOrg"].results) == 3


# --- the window --------------------------------------------------------------------------


def test_window_input_errors_are_named(summary):
    window = paysim_like(np.random.default_rng(15), WINDOW_SIZE)
    with pytest.raises(ValueError, match="current_columns lacks reference features \\['type'\\]"):
        compare_window(summary, {key: value for key, value in window.items() if key != "type"})
    short = dict(window, type=window["type"][:10])
    with pytest.raises(ValueError, match="must all have the same length"):
        compare_window(summary, short)
    spoiled = dict(window, amount=np.where(np.arange(WINDOW_SIZE) == 7, np.nan, window["amount"]))
    with pytest.raises(ValueError, match="current_columns\\['amount'\\] must hold finite numbers"):
        compare_window(summary, spoiled)
    with pytest.raises(ValueError, match="current_columns\\['oldbalanceOrg'\\] must hold numbers"):
        compare_window(summary, dict(window, oldbalanceOrg=window["type"]))
    with pytest.raises(
        ValueError, match="current_columns\\['amount'\\] must hold at least one value"
    ):
        compare_window(summary, {key: value[:0] for key, value in window.items()})


def test_extra_columns_are_ignored_and_raw_references_accepted():
    generator = np.random.default_rng(16)
    reference = {"x": generator.normal(size=400), "y": generator.normal(size=400)}
    window = {"x": generator.normal(size=50), "y": generator.normal(size=50), "id": np.arange(50)}
    verdict = compare_window(reference, window)
    assert set(verdict.features) == {"x", "y"} and verdict.window_size == 50


def test_a_single_row_window_gets_a_verdict(summary):
    verdict = compare_window(summary, paysim_like(np.random.default_rng(17), 1))
    assert verdict.window_size == 1 and verdict.drifted is False
    assert all(0.0 <= result.p_value <= 1.0 for result in verdict.results())


def test_min_drifted_features_sets_the_window_rule(summary):
    window = paysim_like(np.random.default_rng(18), WINDOW_SIZE, log_shift=2.0)
    verdict = compare_window(summary, window)
    assert verdict.drifted and verdict.drifted_features[0] == "amount"
    strict = DriftConfig(min_drifted_features=len(verdict.drifted_features) + 1)
    assert not compare_window(summary, window, strict).drifted


def test_explanation_is_plain_json_and_says_why(summary):
    shares = np.array([0.2, 0.2, 0.2, 0.4, 0.0])  # TRANSFER up, DEBIT gone
    window = paysim_like(np.random.default_rng(19), WINDOW_SIZE, log_shift=1.0, type_shares=shares)
    window["type"][:5] = "REFUND"  # a category the reference never saw
    explanation = compare_window(summary, window).explain()
    assert builtins_only(explanation)
    json.dumps(explanation, allow_nan=False)
    assert explanation["drifted"] and "amount" in explanation["drifted_features"]
    amount = explanation["features"]["amount"]
    assert [test["test"] for test in amount["tests"]] == ["jensenshannon", "wasserstein", "ks"]
    assert amount["quantiles"]["current"][3] > amount["quantiles"]["reference"][3]  # median up
    moved = amount["moved_bins"]
    assert len(moved) == 3 and abs(moved[0]["change"]) >= abs(moved[-1]["change"])
    kinds = explanation["features"]["type"]
    assert kinds["unseen_in_reference"] == ["REFUND"]
    top_two = {moved["category"] for moved in kinds["moved_categories"][:2]}
    assert top_two == {"TRANSFER", "PAYMENT"}  # up from 10 % to 40 %, down from 48 % to 20 %


# --- streams with known change points ----------------------------------------------------


@pytest.mark.parametrize("seed", [21, 22, 23])
def test_drift_is_found_at_the_change_window_and_not_before(summary, seed):
    generator = np.random.default_rng(seed)
    change_at = 12
    verdicts = [
        compare_window(
            summary,
            paysim_like(
                generator, WINDOW_SIZE, log_shift=0.5 * LOG_SD if index >= change_at else 0
            ),
        ).drifted
        for index in range(change_at + 3)
    ]
    assert verdicts.index(True) == change_at and all(verdicts[change_at:])


def test_a_sliding_reference_finds_the_change_then_absorbs_it():
    generator = np.random.default_rng(24)
    rows = paysim_like(generator, REFERENCE_SIZE)
    change_at, first_drift, drifted = 4, None, []
    for index in range(change_at + 16):
        window = paysim_like(generator, WINDOW_SIZE, log_shift=LOG_SD if index >= change_at else 0)
        verdict = compare_window(ReferenceSummary.from_columns(rows), window)
        drifted.append(verdict.drifted)
        if verdict.drifted and first_drift is None:
            first_drift = index
        rows = {name: np.r_[rows[name], window[name]][-REFERENCE_SIZE:] for name in rows}
    assert first_drift == change_at
    # Once the reference is mostly the new distribution (after 10 windows), drift stops.
    assert not any(drifted[change_at + 12 :])


# --- the figures, at test size -----------------------------------------------------------


def test_same_distribution_windows_are_rarely_declared_drifted():
    # The benchmark measures about 0.4 % over 10,000 windows. At a true rate of 1 %, more
    # than 12 of 300 windows happen with probability below 0.001.
    generator = np.random.default_rng(25)
    drifted = 0
    for _ in range(3):
        reference = ReferenceSummary.from_columns(
            paysim_like(generator, REFERENCE_SIZE), window_size=WINDOW_SIZE
        )
        drifted += sum(
            compare_window(reference, paysim_like(generator, WINDOW_SIZE)).drifted
            for _ in range(100)
        )
    assert drifted <= 12


def test_a_half_sd_shift_of_log_amount_is_declared_at_once():
    # The benchmark finds every one of 1,000; at a true rate of 95 %, fewer than 88 of 100
    # happen with probability below 0.005.
    generator = np.random.default_rng(26)
    detected = 0
    for _ in range(100):
        reference = ReferenceSummary.from_columns(paysim_like(generator, REFERENCE_SIZE))
        shifted = paysim_like(generator, WINDOW_SIZE, log_shift=0.5 * LOG_SD)
        detected += compare_window(reference, shifted).drifted
    assert detected >= 88


# --- tail scores -------------------------------------------------------------------------


def test_tail_scores_place_rows_in_the_reference():
    reference = ReferenceSummary.from_columns(
        {"x": np.arange(1.0, 101.0), "z": np.r_[np.zeros(50), np.arange(1.0, 51.0)]}
    )
    rows = {"x": np.array([50.5, 1.0, 100.0, 1000.0, -5.0]), "z": np.zeros(5)}
    scores = tail_scores(reference, rows)
    assert scores.shape == (5, 2)
    assert scores[:, 0].tolist() == pytest.approx([0.0, 0.99, 0.99, 1.0, 1.0])
    assert scores[:, 1].tolist() == [0.5] * 5  # the zeros are half the reference: mid-rank 0.25


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=50))
@settings(max_examples=50, deadline=None)
def test_tail_scores_stay_between_0_and_1(values):
    reference = ReferenceSummary.from_columns({"x": np.linspace(-10.0, 10.0, 200)})
    scores = tail_scores(reference, {"x": np.array(values)})
    assert np.all((scores >= 0.0) & (scores <= 1.0))


def test_tail_scores_refuse_categorical_features(summary):
    with pytest.raises(ValueError, match="features names 'type', which is categorical"):
        tail_scores(summary, paysim_like(np.random.default_rng(27), 5), ["type"])
