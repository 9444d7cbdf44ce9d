"""The registered drift tests: registry, known answers against scipy, properties, bad input."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats
from scipy.spatial.distance import jensenshannon

from udfs.drift_reference import ReferenceStack
from udfs.drift_stats import (
    CATEGORICAL,
    DISTANCE,
    NUMERIC,
    P_VALUE,
    STAT_TESTS,
    STD_FLOOR,
    CategoricalReference,
    NumericReference,
    NumericWindow,
    StatTest,
    UnknownStatTestError,
    prepare_window,
    signals_drift,
)

REFERENCE_SIZE = 2000
WINDOW_SIZE = 200
CATEGORIES = np.array(["CASH_IN", "CASH_OUT", "DEBIT", "PAYMENT", "TRANSFER"])

# Values drawn from a small pool make ties; the pool spans several orders of magnitude.
TIED_FLOATS = st.sampled_from([0.0, 0.0, 1.0, 2.5, 2.5, 3.0, 1e3, 1e6, -4.0, 0.125])
ANY_FLOATS = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False)
SAMPLE_VALUES = st.one_of(TIED_FLOATS, ANY_FLOATS)


def samples(min_size: int = 1, max_size: int = 60):
    return hnp.arrays(np.float64, st.integers(min_size, max_size), elements=SAMPLE_VALUES)


def same_and_shifted(test: StatTest, seed: int = 3):
    """A reference, a window of the same distribution, and a window far from it."""
    generator = np.random.default_rng(seed)
    if test.accepts(NUMERIC):
        reference = generator.normal(size=REFERENCE_SIZE)
        return reference, reference.copy(), generator.normal(loc=3.0, size=WINDOW_SIZE)
    shares = np.array([0.4, 0.3, 0.1, 0.1, 0.1])
    reference = generator.choice(CATEGORIES, size=REFERENCE_SIZE, p=shares)
    return (
        reference,
        reference.copy(),
        generator.choice(CATEGORIES, size=WINDOW_SIZE, p=shares[::-1]),
    )


def raw_statistic(test_name, reference, current):
    """A test's score without its simulated null (fast for arbitrary sizes)."""
    summary = NumericReference.from_values(reference)
    window = prepare_window(summary, current, "current")
    return STAT_TESTS[test_name].measure(window, calibrate=False)[0], summary, window


# --- the registry ------------------------------------------------------------------------


def test_registry_holds_the_four_required_tests():
    assert {"jensenshannon", "wasserstein", "ks", "chisquare"} <= set(STAT_TESTS)


@pytest.mark.parametrize("name", sorted(STAT_TESTS))
def test_registered_test_describes_itself(name):
    test = STAT_TESTS[name]
    assert test.name == name
    assert test.kind in (P_VALUE, DISTANCE)
    assert test.feature_kinds and test.feature_kinds <= {NUMERIC, CATEGORICAL}
    assert test.check_threshold(test.default_threshold) == test.default_threshold
    assert f"``{name}``" in type(test).__doc__  # the docstring is the test's card


@pytest.mark.parametrize("name", sorted(STAT_TESTS))
def test_registered_test_tells_same_from_shifted(name):
    test = STAT_TESTS[name]
    reference, same, shifted = same_and_shifted(test)
    quiet, loud = test(reference, same), test(reference, shifted)
    assert (quiet.drifted, loud.drifted) == (False, True)
    assert quiet.threshold == loud.threshold == test.default_threshold
    assert loud.drifted == signals_drift(test.kind, loud.score, loud.threshold)
    assert 0.0 <= loud.p_value < 0.001 and quiet.p_value > 0.05
    assert (loud.statistic is None) == (test.kind == DISTANCE)


@pytest.mark.parametrize("name", sorted(STAT_TESTS))
def test_registered_test_applies_the_threshold_given(name):
    test = STAT_TESTS[name]
    reference, _, shifted = same_and_shifted(test)
    score = test(reference, shifted).score
    # Thresholds on either side of the score flip the verdict, in the test's direction.
    below, above = score * 0.5, min(score * 2.0, 0.999) if test.kind == P_VALUE else score * 2.0
    assert test(reference, shifted, threshold=above).threshold == above
    drifted_below = test(reference, shifted, threshold=below).drifted
    drifted_above = test(reference, shifted, threshold=above).drifted
    assert (drifted_below, drifted_above) == (
        (False, True) if test.kind == P_VALUE else (True, False)
    )


@pytest.mark.parametrize("name", sorted(STAT_TESTS))
def test_registered_test_accepts_a_summary_as_reference(name):
    test = STAT_TESTS[name]
    reference, _, shifted = same_and_shifted(test)
    summary = (
        NumericReference.from_values(reference)
        if test.accepts(NUMERIC)
        else CategoricalReference.from_values(reference)
    )
    assert test(summary, shifted) == test(reference, shifted)


@pytest.mark.parametrize("name", sorted(STAT_TESTS))
def test_registered_test_refuses_a_feature_kind_it_does_not_accept(name):
    test = STAT_TESTS[name]
    wrong = (
        CategoricalReference.from_values(CATEGORIES)
        if not test.accepts(CATEGORICAL)
        else NumericReference.from_values(np.arange(10.0))
    )
    with pytest.raises(ValueError, match=f"test '{name}' accepts"):
        test(wrong, np.arange(3.0))


@pytest.mark.parametrize("name", sorted(STAT_TESTS))
@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), "0.1"])
def test_registered_test_refuses_a_threshold_out_of_range(name, bad):
    test = STAT_TESTS[name]
    reference, same, _ = same_and_shifted(test)
    if test.kind == DISTANCE and bad == 1.5:
        assert test(reference, same, threshold=bad).threshold == 1.5  # distances may exceed 1
        return
    with pytest.raises(ValueError, match="threshold"):
        test(reference, same, threshold=bad)


def test_unknown_test_names_list_the_known_ones():
    with pytest.raises(ValueError, match="registered tests: .*'chisquare'.*'ks'") as raised:
        STAT_TESTS["kolmogorov"]
    assert isinstance(raised.value, KeyError) and isinstance(raised.value, UnknownStatTestError)


def test_a_name_registers_once():
    with pytest.raises(ValueError, match="already registered"):
        STAT_TESTS.register(STAT_TESTS["ks"])


def test_direction_lives_in_signals_drift():
    assert signals_drift(P_VALUE, 0.049, 0.05) and not signals_drift(P_VALUE, 0.05, 0.05)
    assert signals_drift(DISTANCE, 0.1, 0.1) and not signals_drift(DISTANCE, 0.0999, 0.1)


# --- known answers against scipy ---------------------------------------------------------


@pytest.mark.parametrize(
    ("reference_size", "window_size", "seed"),
    [(5000, 500, 0), (300, 1, 1), (1, 40, 2), (7, 7, 3), (1000, 999, 4)],
)
def test_ks_equals_scipy_asymptotic(reference_size, window_size, seed):
    generator = np.random.default_rng(seed)
    reference = np.round(generator.lognormal(size=reference_size), 1)  # rounding makes ties
    current = np.round(generator.lognormal(0.2, size=window_size), 1)
    result = STAT_TESTS["ks"](reference, current)
    expected = stats.ks_2samp(reference, current, method="asymp")
    assert result.statistic == expected.statistic
    assert result.score == pytest.approx(expected.pvalue, rel=1e-12, abs=1e-300)


def test_ks_one_value_against_one_value_is_defined():
    # scipy's asymptotic p-value is NaN here (effective size rounds to 0); ours uses size 1.
    assert STAT_TESTS["ks"]([1.0], [1.0]).score == 1.0
    assert STAT_TESTS["ks"]([1.0], [2.0]).score == 0.0


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # scipy at one vs one
@given(samples(), samples())
@settings(max_examples=150, deadline=None)
def test_ks_statistic_is_scipys_on_any_sample(reference, current):
    measured, _, _ = raw_statistic("ks", reference, current)
    # Bit for bit with the asymptotic method; the exact one rounds D to its lattice i / lcm.
    assert measured.statistic == stats.ks_2samp(reference, current, method="asymp").statistic
    lattice = np.lcm(reference.size, current.size)
    assert measured.statistic == pytest.approx(round(measured.statistic * lattice) / lattice)


@given(samples(), samples())
@settings(max_examples=150, deadline=None)
def test_wasserstein_is_scipys_over_the_floored_std(reference, current):
    measured, _, _ = raw_statistic("wasserstein", reference, current)
    expected = stats.wasserstein_distance(reference, current) / max(np.std(reference), STD_FLOOR)
    assert measured.score == pytest.approx(expected, rel=1e-9, abs=1e-9 * (1 + expected))


@given(samples(), samples())
@settings(max_examples=150, deadline=None)
def test_jensenshannon_is_scipys_on_the_same_histograms(reference, current):
    measured, summary, window = raw_statistic("jensenshannon", reference, current)
    reference_counts = summary.bin_counts
    current_counts = summary.histogram(window.sorted_values[0])
    assert current_counts.sum() == current.size and reference_counts.sum() == reference.size
    expected = jensenshannon(reference_counts, current_counts, base=2)
    assert measured.score == pytest.approx(expected, abs=1e-12)
    assert 0.0 <= measured.score <= 1.0


@given(samples(min_size=2), samples())
@settings(max_examples=100, deadline=None)
def test_histogram_matches_numpy_plus_two_overflow_bins(reference, current):
    summary = NumericReference.from_values(reference)
    counts = summary.histogram(np.sort(current))
    edges = summary.bin_edges
    if edges[0] < edges[-1]:
        inner, _ = np.histogram(current, bins=edges)
        assert counts[1:-1].tolist() == inner.tolist()
    assert counts[0] == np.sum(current < edges[0]) and counts[-1] == np.sum(current > edges[-1])


def test_jensenshannon_bins_sit_at_reference_quantiles():
    summary = NumericReference.from_values(np.arange(1.0, 1001.0))
    assert summary.inner_bins == 10
    # Edges at ranks round(j * 999 / 10): the minimum, about every 100th value, the maximum.
    assert summary.bin_edges.tolist() == [1, 101, 201, 301, 401, 501, 600, 700, 800, 900, 1000]
    assert summary.bin_counts[0] == summary.bin_counts[-1] == 0  # the overflow bins
    assert summary.bin_counts[1:-1].tolist() == [100, 100, 100, 100, 100, 99, 100, 100, 100, 101]


def test_jensenshannon_counts_new_extremes():
    reference = np.linspace(0.0, 1.0, 1000)
    inside = STAT_TESTS["jensenshannon"](reference, np.linspace(0.0, 1.0, 100))
    beyond = STAT_TESTS["jensenshannon"](reference, np.linspace(0.0, 1.0, 100) + 5.0)
    assert inside.score < 0.05 and beyond.score == pytest.approx(1.0)


@pytest.mark.parametrize("seed", range(4))
def test_chisquare_equals_scipy_contingency(seed):
    generator = np.random.default_rng(seed)
    reference = generator.choice(CATEGORIES, size=3000, p=[0.4, 0.3, 0.1, 0.1, 0.1])
    current = generator.choice(CATEGORIES[:4], size=300, p=[0.3, 0.3, 0.2, 0.2])
    result = STAT_TESTS["chisquare"](reference, current)
    table = np.array(
        [[np.sum(reference == c) for c in CATEGORIES], [np.sum(current == c) for c in CATEGORIES]]
    )
    expected = stats.chi2_contingency(table, correction=False)
    assert result.statistic == pytest.approx(expected.statistic, rel=1e-12)
    assert result.score == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)
    shares = table / table.sum(axis=1, keepdims=True)
    assert result.effect_size == pytest.approx(0.5 * np.abs(shares[0] - shares[1]).sum())


def test_chisquare_treats_a_category_unseen_in_the_reference_as_evidence():
    reference = np.array(["A"] * 500 + ["B"] * 500)
    usual = np.array(["A"] * 50 + ["B"] * 50)
    with_new = np.array(["A"] * 45 + ["B"] * 45 + ["NEW"] * 10)
    quiet, loud = (
        STAT_TESTS["chisquare"](reference, usual),
        STAT_TESTS["chisquare"](reference, with_new),
    )
    assert quiet.score == pytest.approx(1.0) and loud.score < 1e-6
    table = np.array([[500, 500, 0], [45, 45, 10]])
    assert loud.statistic == pytest.approx(
        stats.chi2_contingency(table, correction=False).statistic
    )


def test_chisquare_on_a_single_category_is_not_drift():
    result = STAT_TESTS["chisquare"](np.array(["A"] * 20), np.array(["A"] * 3))
    assert (result.statistic, result.score, result.drifted) == (0.0, 1.0, False)


def test_chisquare_counts_integer_codes_as_categories():
    codes = np.array([1, 2, 2, 3] * 100)
    assert STAT_TESTS["chisquare"](codes, codes[:40]).statistic == pytest.approx(0.0, abs=1e-12)


# --- degenerate but valid input ----------------------------------------------------------


def test_constant_samples_work():
    constant = np.full(100, 7.0)
    assert STAT_TESTS["ks"](constant, constant[:5]).score == 1.0
    assert STAT_TESTS["wasserstein"](constant, constant[:5]).score == 0.0
    assert STAT_TESTS["jensenshannon"](constant, constant[:5]).score == 0.0
    moved = STAT_TESTS["wasserstein"](constant, np.full(5, 7.5))
    assert moved.score == pytest.approx(0.5 / STD_FLOOR)  # the floor keeps it finite


def test_single_value_windows_work():
    reference = np.arange(100.0)
    for name in ("ks", "wasserstein", "jensenshannon"):
        result = STAT_TESTS[name](reference, [49.5])
        assert np.isfinite(result.score) and 0.0 <= result.p_value <= 1.0
    assert STAT_TESTS["chisquare"](CATEGORIES, ["DEBIT"]).p_value == pytest.approx(
        stats.chi2_contingency([[1, 1, 1, 1, 1], [0, 0, 1, 0, 0]], correction=False).pvalue
    )


def test_a_window_of_several_features_matches_one_feature_at_a_time():
    generator = np.random.default_rng(9)
    references = [NumericReference.from_values(generator.lognormal(size=800)) for _ in range(3)]
    columns = [generator.lognormal(size=90) for _ in range(3)]
    together = NumericWindow(ReferenceStack(tuple(references)), columns, ["a", "b", "c"])
    for name in ("ks", "wasserstein", "jensenshannon"):
        batch = STAT_TESTS[name].measure(together)
        for reference, values, measured in zip(references, columns, batch, strict=True):
            (alone,) = STAT_TESTS[name].measure(NumericWindow.single(reference, values))
            assert measured.score == pytest.approx(alone.score, rel=1e-12)


# --- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ks", "wasserstein", "jensenshannon"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", ["reference", "current"])
def test_non_finite_values_are_refused_by_name(name, bad, where):
    values = np.arange(20.0)
    spoiled = values.copy()
    spoiled[3] = bad
    arguments = (spoiled, values) if where == "reference" else (values, spoiled)
    with pytest.raises(ValueError, match=rf"{where}.*finite numbers.*1 NaN or infinite.*index 3"):
        STAT_TESTS[name](*arguments)


@given(samples(min_size=1, max_size=30), st.integers(0, 29), st.sampled_from([np.nan, np.inf]))
@settings(max_examples=50, deadline=None)
def test_any_non_finite_value_gets_a_clear_error(values, position, bad):
    values[position % values.size] = bad
    with pytest.raises(ValueError, match="current must hold finite numbers"):
        STAT_TESTS["ks"](np.arange(5.0), values)


@pytest.mark.parametrize("name", sorted(STAT_TESTS))
def test_empty_arrays_are_refused(name):
    reference, same, _ = same_and_shifted(STAT_TESTS[name])
    with pytest.raises(ValueError, match="current must hold at least one value"):
        STAT_TESTS[name](reference, same[:0])
    with pytest.raises(ValueError, match="at least one value"):
        STAT_TESTS[name](reference[:0], same)


@pytest.mark.parametrize("name", sorted(STAT_TESTS))
def test_arrays_that_are_not_one_dimensional_are_refused(name):
    reference, same, _ = same_and_shifted(STAT_TESTS[name])
    with pytest.raises(ValueError, match=r"current must be a 1-D array.*2-D with shape \(2, 3\)"):
        STAT_TESTS[name](reference, same[:6].reshape(2, 3))


def test_strings_are_refused_by_numeric_tests_and_floats_by_chisquare():
    with pytest.raises(ValueError, match="accepts \\['numeric'\\].*must hold numbers.*<U"):
        STAT_TESTS["ks"](CATEGORIES, CATEGORIES)
    with pytest.raises(ValueError, match="must hold categories.*float64"):
        STAT_TESTS["chisquare"](np.arange(5.0), np.arange(5.0))


def test_missing_categories_are_refused():
    with pytest.raises(ValueError, match="must not hold missing categories; got None"):
        STAT_TESTS["chisquare"](np.array(["A", None, "B"], dtype=object), np.array(["A"]))
