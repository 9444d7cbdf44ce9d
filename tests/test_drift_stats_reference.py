"""Reference summaries (building, serializing) and the nulls that calibrate the distances."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from udfs.drift_calibration import (
    NullDistribution,
    fit_generalized_pareto,
    jensenshannon_null,
    reference_quantile_steps,
)
from udfs.drift_stats import (
    CATEGORICAL,
    NUMERIC,
    STAT_TESTS,
    CategoricalReference,
    NumericReference,
    ReferenceSummary,
    compare_window,
)

REFERENCE_SIZE = 5000
WINDOW_SIZE = 500


def columns(generator, rows, shift=0.0):
    amounts = np.exp(generator.normal(10.0 + shift, 2.0, rows))
    balances = np.where(generator.random(rows) < 0.5, 0.0, np.exp(generator.normal(11, 2, rows)))
    return {
        "amount": amounts,
        "balance": balances,
        "step": generator.integers(1, 9, rows),
        "type": generator.choice(np.array(["CASH_OUT", "PAYMENT", "TRANSFER"]), rows),
    }


# --- building ----------------------------------------------------------------------------


def test_kinds_are_inferred_from_dtypes_and_can_be_overridden():
    data = columns(np.random.default_rng(1), 300)
    inferred = ReferenceSummary.from_columns(data)
    assert [inferred[name].kind for name in data] == [NUMERIC, NUMERIC, NUMERIC, CATEGORICAL]
    overridden = ReferenceSummary.from_columns(data, kinds={"step": CATEGORICAL})
    assert overridden["step"].categories == tuple(str(step) for step in range(1, 9))


def test_bad_columns_and_kinds_are_named():
    data = columns(np.random.default_rng(1), 30)
    with pytest.raises(ValueError, match="kinds names features that are not in columns: \\['x'\\]"):
        ReferenceSummary.from_columns(data, kinds={"x": NUMERIC})
    with pytest.raises(ValueError, match="kinds\\['amount'\\] must be one of"):
        ReferenceSummary.from_columns(data, kinds={"amount": "ordinal"})
    data["amount"][4] = np.nan
    with pytest.raises(ValueError, match="columns\\['amount'\\] must hold finite numbers"):
        ReferenceSummary.from_columns(data)
    with pytest.raises(ValueError, match="columns must be a non-empty mapping"):
        ReferenceSummary.from_columns({})
    with pytest.raises(KeyError, match="feature 'nope' is not in the reference"):
        ReferenceSummary.from_columns({"a": np.arange(3.0)})["nope"]


def test_ties_merge_bins_and_a_constant_reference_has_one_closed_bin():
    zero_inflated = NumericReference.from_values(np.r_[np.zeros(600), np.arange(1.0, 401.0)])
    assert zero_inflated.bin_edges[0] == 0.0 and zero_inflated.inner_bins < 10
    # Ranks 0 to 599 are all 0: the first edges merge, and the first bin holds the zeros and
    # 1 to 99, up to the edge at rank 699 (the value 100).
    assert zero_inflated.bin_edges.tolist() == [0.0, 100.0, 200.0, 300.0, 400.0]
    assert zero_inflated.bin_counts[1] == 600 + 99
    constant = NumericReference.from_values(np.full(50, 3.0))
    assert constant.bin_edges.tolist() == [3.0, 3.0] and constant.bin_counts.tolist() == [0, 50, 0]
    assert constant.histogram(np.array([2.0, 3.0, 3.0, 4.0])).tolist() == [1, 2, 1]


def test_categorical_reference_counts_categories():
    reference = CategoricalReference.from_values(np.array(["b", "a", "b", "c", "b"]))
    assert reference.categories == ("a", "b", "c") and reference.counts.tolist() == [1, 3, 1]
    many = np.array([f"c{index % 40}" for index in range(4000)])  # beyond the quick path
    assert CategoricalReference.from_values(many).counts.tolist() == [100] * 40


# --- serialization -----------------------------------------------------------------------


def test_summary_survives_a_round_trip_through_bytes():
    generator = np.random.default_rng(2)
    summary = ReferenceSummary.from_columns(columns(generator, REFERENCE_SIZE))
    restored = ReferenceSummary.from_bytes(summary.to_bytes())
    assert list(restored) == list(summary)
    for name, feature in summary.items():
        copy = restored[name]
        assert type(copy) is type(feature)
        if isinstance(feature, NumericReference):
            for part in ("sorted_values", "bin_edges", "bin_counts", "quantile_steps"):
                assert np.array_equal(getattr(copy, part), getattr(feature, part))
            assert copy.std == feature.std
        else:
            assert copy.categories == feature.categories
            assert np.array_equal(copy.counts, feature.counts)
    window = columns(generator, WINDOW_SIZE, shift=0.3)
    assert compare_window(restored, window).explain() == compare_window(summary, window).explain()


def test_serialized_summary_is_about_the_size_of_its_sorted_values():
    summary = ReferenceSummary.from_columns(columns(np.random.default_rng(3), REFERENCE_SIZE))
    numeric_bytes = 3 * REFERENCE_SIZE * 8  # three numeric features, float64
    assert numeric_bytes < len(summary.to_bytes()) < numeric_bytes + 8_000


@given(
    hnp.arrays(np.float64, st.integers(1, 50), elements=st.floats(-1e6, 1e6)),
    hnp.arrays(np.int64, st.integers(1, 50), elements=st.integers(0, 4)),
)
@settings(max_examples=50, deadline=None)
def test_any_summary_round_trips(values, codes):
    summary = ReferenceSummary.from_columns(
        {"x": values, "code": codes}, kinds={"code": CATEGORICAL}
    )
    restored = ReferenceSummary.from_bytes(summary.to_bytes())
    assert np.array_equal(restored["x"].sorted_values, np.sort(values))
    assert restored["code"].categories == summary["code"].categories


def test_foreign_or_truncated_bytes_are_refused():
    data = ReferenceSummary.from_columns({"x": np.arange(100.0)}).to_bytes()
    with pytest.raises(ValueError, match="data must start with"):
        ReferenceSummary.from_bytes(b"PK\x03\x04" + data[4:])
    with pytest.raises(ValueError, match="data is truncated"):
        ReferenceSummary.from_bytes(data[:-16])


# --- the nulls ---------------------------------------------------------------------------


def test_generalized_pareto_fit_recovers_known_tails():
    generator = np.random.default_rng(4)
    shape, scale = fit_generalized_pareto(generator.exponential(2.0, 20_000))
    assert shape == pytest.approx(0.0, abs=0.03) and scale == pytest.approx(2.0, rel=0.05)
    # numpy's Pareto II of index a is a generalized Pareto of shape 1 / a and scale 1 / a.
    pareto = generator.pareto(1 / 0.3, 20_000) * (1.5 / 0.3)  # shape 0.3, scale 1.5
    shape, scale = fit_generalized_pareto(pareto)
    assert shape == pytest.approx(0.3, abs=0.05) and scale == pytest.approx(1.5, rel=0.1)
    assert fit_generalized_pareto(np.zeros(10)) == (0.0, 0.0)


def test_null_p_values_are_exceedances_and_continue_into_a_tail():
    null = NullDistribution(np.arange(1.0, 1001.0))
    assert null.p_value(0.5) == 1.0
    assert null.p_value(500.0) == pytest.approx(502 / 1001)
    far = [null.p_value(value) for value in (950.0, 1000.0, 2000.0, 5000.0)]
    assert far == sorted(far, reverse=True) and 0.0 < far[-1] < 1 / 1001
    assert null.p_values(np.array([0.5, 500.0, 2000.0])).tolist() == [
        null.p_value(0.5),
        null.p_value(500.0),
        null.p_value(2000.0),
    ]


def test_jensenshannon_null_has_the_documented_noise_floor():
    # 10 quantile bins, 500 against 5000: median about 0.060, 99th percentile about 0.092.
    values = np.random.default_rng(8).lognormal(size=REFERENCE_SIZE)
    null = NumericReference.from_values(values).jensenshannon_null(WINDOW_SIZE)
    assert null.quantile(0.5) == pytest.approx(0.060, abs=0.004)
    assert null.quantile(0.99) == pytest.approx(0.092, abs=0.006)
    at_30 = NumericReference.from_values(values, bins=30).jensenshannon_null(WINDOW_SIZE)
    assert at_30.quantile(0.5) == pytest.approx(0.107, abs=0.005)
    # Every tie-free reference of a size shares one null.
    other = NumericReference.from_values(np.random.default_rng(9).normal(size=REFERENCE_SIZE))
    assert other.jensenshannon_null(WINDOW_SIZE) is null


def test_jensenshannon_null_follows_uneven_bins():
    # A window of one value in an ordinary bin is no evidence, whatever the other bins hold.
    generator = np.random.default_rng(10)
    reference = NumericReference.from_values(np.r_[np.zeros(3000), generator.lognormal(size=7000)])
    ordinary = reference.bin_edges[len(reference.bin_edges) // 2]
    assert STAT_TESTS["jensenshannon"](reference, [ordinary]).p_value > 0.5
    assert jensenshannon_null((1, 1), 10, 3) is jensenshannon_null((1, 1), 10, 3)


def test_quantile_steps_extend_past_the_reference_and_are_flat_on_ties():
    values = np.sort(np.r_[np.zeros(500), np.random.default_rng(5).lognormal(size=500)])
    steps = reference_quantile_steps(values)
    assert np.all(steps >= 0.0)
    assert steps.sum() > values[-1] - values[0]  # the fitted upper tail reaches past the maximum
    constant = reference_quantile_steps(np.full(200, 4.0))
    assert np.all(constant == 0.0)


@pytest.mark.parametrize("test_name", ["jensenshannon", "wasserstein"])
def test_calibrated_distances_are_rarely_significant_on_noise(test_name):
    # 400 same-distribution windows of a normal feature: p < 0.05 about 5 % of the time.
    # Binomial(400, 0.05) lies within [6, 36] with probability above 0.9999.
    generator = np.random.default_rng(6)
    reference = NumericReference.from_values(generator.normal(size=2000))
    reference.calibrate(200)
    p_values = [
        STAT_TESTS[test_name](reference, generator.normal(size=200)).p_value for _ in range(400)
    ]
    assert 6 <= sum(p < 0.05 for p in p_values) <= 36


def test_calibrated_distances_find_a_real_shift():
    generator = np.random.default_rng(7)
    reference = NumericReference.from_values(generator.lognormal(0.0, 2.0, REFERENCE_SIZE))
    shifted = generator.lognormal(1.0, 2.0, WINDOW_SIZE)  # 0.5 sd of log values
    assert STAT_TESTS["jensenshannon"](reference, shifted).p_value < 1e-3
    assert STAT_TESTS["wasserstein"](reference, shifted).p_value < 0.05
