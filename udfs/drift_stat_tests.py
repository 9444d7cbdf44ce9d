"""The registered drift tests: small named objects that compare a window with a reference.

Each test in :data:`STAT_TESTS` knows its name, whether its score is a p-value or a distance,
its default threshold, the feature kinds it accepts and what its effect size means. Called as
``test(reference, current, threshold=None)`` on 1-D arrays (or with a reference summary from
:mod:`udfs.drift_reference`), it returns a :class:`StatResult`. Whether a score signals drift
is decided in one place, :func:`signals_drift`: a p-value drifts when it is *below* its
threshold, a distance when it is *at or above* it.

Every test also reports an effect size, so that a tiny but significant change on a large
sample can be told from a large one, and every distance also reports a p-value from a
simulated null (see :mod:`udfs.drift_calibration`), so that distances can join a
multiple-testing correction.

Examples
--------
>>> import numpy as np
>>> from udfs.drift_stat_tests import STAT_TESTS
>>> generator = np.random.default_rng(7)
>>> reference = generator.normal(size=5000)
>>> result = STAT_TESTS["ks"](reference, generator.normal(loc=0.5, size=500))
>>> result.drifted, result.threshold
(True, 0.05)
>>> STAT_TESTS["wasserstein"](reference, reference[::10]).drifted
False
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import numpy as np
from scipy import special

from udfs.drift_alignment import CategoricalWindow, FeatureWindow, NumericWindow
from udfs.drift_calibration import NullDistribution, jensenshannon_base2, ks_p_value
from udfs.drift_reference import CategoricalReference, FeatureReference, NumericReference
from udfs.drift_validation import CATEGORICAL, NUMERIC, non_negative, open_unit_interval

P_VALUE = "p_value"
DISTANCE = "distance"
SCORE_KINDS = (P_VALUE, DISTANCE)

# The customary significance level of a single test (scipy's examples, Evidently, Alibi Detect).
DEFAULT_P_VALUE_THRESHOLD = 0.05
# The customary distance threshold of Evidently's Wasserstein and Jensen-Shannon tests.
DEFAULT_DISTANCE_THRESHOLD = 0.1
# Smallest effect a p-value test must also show before its feature counts as drifted: a gap
# of 10 percentage points, between the two distribution functions for Kolmogorov-Smirnov and
# in the share of traffic that moved between categories for chi-square.
DEFAULT_MIN_EFFECT = 0.1
# Significance a distance's calibrated p-value must reach, after correction, in a window
# comparison. Stricter than the p-value tests' 0.05 because a distance on heavy-tailed data
# has a noise floor near its threshold and its simulated null is approximate in the far tail;
# at 0.01 a window of same-distribution data is declared drifted well under 1 % of the time.
DEFAULT_CALIBRATION_ALPHA = 0.01


def signals_drift(score_kind: str, score: float, threshold: float) -> bool:
    """Whether ``score`` signals drift against ``threshold``: the one place that says so.

    A p-value signals drift when it is strictly below its threshold; a distance or an effect
    size when it is at or above its threshold.
    """
    if score_kind == P_VALUE:
        return score < threshold
    return score >= threshold


class UnknownStatTestError(KeyError, ValueError):
    """A test name that is not registered; the message lists the registered ones."""

    def __str__(self) -> str:
        return str(self.args[0])


class Measurement(NamedTuple):
    """What a test measured, before any threshold is applied.

    Attributes
    ----------
    score : float
        The p-value (p-value tests) or the distance (distance tests).
    p_value : float or None
        The score itself for p-value tests; for distance tests the calibrated p-value, or
        None when no null was computed.
    statistic : float or None
        The test statistic behind a p-value; None for distance tests.
    effect_size : float
        The size of the change: the distance itself for distance tests.
    """

    score: float
    p_value: float | None
    statistic: float | None
    effect_size: float


@dataclass(frozen=True)
class StatResult:
    """The outcome of one test on one feature.

    Attributes
    ----------
    test : str
        Registered name of the test.
    kind : str
        ``"p_value"`` or ``"distance"``: what ``score`` is.
    score : float
        The p-value or the distance.
    threshold : float
        The threshold that was applied to ``score``.
    drifted : bool
        ``signals_drift(kind, score, threshold)``.
    statistic : float or None
        The test statistic where the score is a p-value, else None.
    effect_size : float
        See the test's ``effect_name``.
    p_value : float or None
        The score of a p-value test, or the calibrated p-value of a distance.
    """

    test: str
    kind: str
    score: float
    threshold: float
    drifted: bool
    statistic: float | None
    effect_size: float
    p_value: float | None


@functools.lru_cache(maxsize=64)
def _window_steps(window_size: int) -> tuple[np.ndarray, np.ndarray]:
    """``F_cur`` just before and at each value of a sorted window: ``i / m``, ``(i + 1) / m``."""
    steps = np.arange(window_size + 1) / window_size
    steps.setflags(write=False)
    return steps[:-1], steps[1:]


def prepare_window(reference: FeatureReference, values: object, argument: str) -> FeatureWindow:
    """Validate one feature's window ``values`` and place them against ``reference``."""
    if isinstance(reference, NumericReference):
        return NumericWindow.single(reference, values, argument)
    return CategoricalWindow(reference, values, argument)


class StatTest:
    """Base of the registered drift tests.

    Subclasses set the class attributes and implement :meth:`measure`. An instance is
    callable as ``test(reference, current, threshold=None)``.

    Attributes
    ----------
    name : str
        Registry key.
    kind : str
        ``"p_value"`` or ``"distance"``.
    default_threshold : float
        Threshold on the score when none is given.
    feature_kinds : frozenset of str
        Feature kinds the test accepts (``"numeric"``, ``"categorical"``).
    effect_name : str
        What :attr:`Measurement.effect_size` measures.
    default_min_effect : float
        Effect size a window comparison requires beside a significant p-value (p-value
        tests); for distance tests, the default threshold itself.
    default_alpha : float
        Significance a window comparison requires of the p-value after correction: the
        default threshold for p-value tests, :data:`DEFAULT_CALIBRATION_ALPHA` for the
        calibrated p-value of distance tests.
    """

    name: ClassVar[str]
    kind: ClassVar[str]
    default_threshold: ClassVar[float]
    feature_kinds: ClassVar[frozenset[str]]
    effect_name: ClassVar[str]

    @property
    def default_min_effect(self) -> float:
        if self.kind == DISTANCE:
            return self.default_threshold
        return DEFAULT_MIN_EFFECT

    @property
    def default_alpha(self) -> float:
        if self.kind == P_VALUE:
            return self.default_threshold
        return DEFAULT_CALIBRATION_ALPHA

    def accepts(self, feature_kind: str) -> bool:
        """Whether the test applies to features of ``feature_kind``."""
        return feature_kind in self.feature_kinds

    def is_drift(self, score: float, threshold: float) -> bool:
        """Whether ``score`` signals drift against ``threshold`` (see :func:`signals_drift`)."""
        return signals_drift(self.kind, score, threshold)

    def check_threshold(self, threshold: object, argument: str = "threshold") -> float:
        """Return a valid threshold for this test's score, or raise naming ``argument``."""
        if self.kind == P_VALUE:
            return open_unit_interval(threshold, argument)
        return non_negative(threshold, argument)

    def measure(self, window: FeatureWindow, calibrate: bool = True) -> list[Measurement]:
        """Compare a prepared window with its references, no threshold applied.

        Parameters
        ----------
        window
            A :class:`NumericWindow` (one or more features) or :class:`CategoricalWindow`.
        calibrate
            Whether distances get a p-value from their simulated null; without it their
            p-value is None.

        Returns
        -------
        list of Measurement
            One per feature of the window, in its order.
        """
        raise NotImplementedError

    def _reference(self, reference: object) -> FeatureReference:
        """Accept a feature summary or raw values; check the feature kind."""
        if isinstance(reference, NumericReference | CategoricalReference):
            summary = reference
        else:
            values = np.asarray(reference)
            argument = f"reference (test {self.name!r} accepts {sorted(self.feature_kinds)})"
            numbers = values.dtype.kind in "iuf"
            if self.accepts(NUMERIC) and (numbers or not self.accepts(CATEGORICAL)):
                summary = NumericReference.from_values(values, argument=argument)
            else:
                summary = CategoricalReference.from_values(values, argument=argument)
        if not self.accepts(summary.kind):
            raise ValueError(
                f"test {self.name!r} accepts {sorted(self.feature_kinds)} features; the "
                f"reference is {summary.kind}"
            )
        return summary

    def __call__(
        self, reference: object, current: object, threshold: float | None = None
    ) -> StatResult:
        """Test ``current`` against ``reference``.

        Parameters
        ----------
        reference
            1-D array, or a :class:`NumericReference` / :class:`CategoricalReference`.
        current
            1-D array of the window's values.
        threshold
            Threshold on the score; None means :attr:`default_threshold`.
        """
        applied = self.default_threshold if threshold is None else self.check_threshold(threshold)
        summary = self._reference(reference)
        (measured,) = self.measure(prepare_window(summary, current, "current"))
        return StatResult(
            test=self.name,
            kind=self.kind,
            score=measured.score,
            threshold=applied,
            drifted=self.is_drift(measured.score, applied),
            statistic=measured.statistic,
            effect_size=measured.effect_size,
            p_value=measured.p_value,
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, kind={self.kind!r}, "
            f"default_threshold={self.default_threshold})"
        )


class KolmogorovSmirnov(StatTest):
    """Two-sample Kolmogorov-Smirnov test.

    name ``ks``; score: p-value; numeric features; default threshold 0.05.

    Statistic: ``D = sup_x |F_ref(x) - F_cur(x)|`` over the two empirical distribution
    functions, identical to ``scipy.stats.ks_2samp``. Against the sorted reference it is two
    ``searchsorted`` calls: the largest gap with the window ahead is reached at a window
    value, the largest with the reference ahead just before one.

    p-value: always the asymptotic one, equal to ``scipy.stats.ks_2samp(reference, current,
    method='asymp').pvalue``, that is ``kstwo.sf(D, round(n m / (n + m)))``. scipy's
    ``'auto'`` would run the exact test at these sizes, three times slower for p-values that
    differ in the third decimal. Ties (such as many zero balances) make it conservative.

    Effect size: ``D`` itself, the largest gap between the distribution functions.
    """

    name = "ks"
    kind = P_VALUE
    default_threshold = DEFAULT_P_VALUE_THRESHOLD
    feature_kinds = frozenset({NUMERIC})
    effect_name = "largest gap between the distribution functions"

    def measure(self, window: NumericWindow, calibrate: bool = True) -> list[Measurement]:
        sizes = window.stack.sizes[:, np.newaxis]
        window_below, window_upto = _window_steps(window.size)
        window_ahead = np.max(window_upto - window.ranks_right / sizes, axis=1)
        reference_ahead = np.max(window.ranks_left / sizes - window_below, axis=1)
        statistics = np.maximum(np.maximum(window_ahead, reference_ahead), 0.0).tolist()
        measurements = []
        for reference, statistic in zip(window.references, statistics, strict=True):
            p_value = ks_p_value(statistic, reference.size, window.size)
            measurements.append(Measurement(p_value, p_value, statistic, statistic))
        return measurements


def _wasserstein_raw(window: NumericWindow) -> np.ndarray:
    """First Wasserstein distance of each row, in the feature's unit, to its reference.

    ``W = integral |F_ref - F_cur| dx``. Between consecutive window values ``F_cur`` is a
    constant level ``t``, and with ``q`` the point where ``F_ref`` reaches ``t``,
    ``integral_a^b |F_ref - t| = integral_a^b (F_ref - t) + 2 integral_min(a,q)^min(b,q)
    (t - F_ref)``. Every term is a difference of ``A``, the running integral of ``F_ref``
    tabulated once per reference; ``A`` never decreases, so ``A(min(x, q)) = min(A(x),
    A(q))``. That is a handful of operations on window-sized arrays, whatever the size of
    the reference.
    """
    stack = window.stack
    values = window.sorted_values
    at_or_below = window.ranks_right
    # A(x) from the reference value just below x (its entry also serves when none is: the
    # slope k / n is then 0).
    flat_index = np.maximum(at_or_below - 1, 0) + stack.offsets[:, np.newaxis]
    slopes = at_or_below / stack.sizes[:, np.newaxis]
    integral_at_window = stack.flat_integral[flat_index] + slopes * (
        values - stack.flat_sorted[flat_index]
    )
    # Below the first window value F_cur is 0: the integral of F_ref up to there.
    distances = integral_at_window[:, 0].copy()
    if window.size > 1:
        levels, crossings, integral_at_crossings = stack.crossings(window.size)
        upper_values, lower_values = values[:, 1:], values[:, :-1]
        upper_integral, lower_integral = integral_at_window[:, 1:], integral_at_window[:, :-1]
        span_below = np.minimum(upper_values, crossings) - np.minimum(lower_values, crossings)
        integral_below = np.minimum(upper_integral, integral_at_crossings) - np.minimum(
            lower_integral, integral_at_crossings
        )
        distances += (
            (integral_at_window[:, -1] - integral_at_window[:, 0])
            - (upper_values - lower_values) @ levels
            + 2.0 * (span_below @ levels - integral_below.sum(axis=1))
        )
    # Above the last window value F_cur is 1: the integral of 1 - F_ref from there on.
    distances += (stack.last_values - values[:, -1]) - (
        stack.last_integrals - integral_at_window[:, -1]
    )
    return distances


def _distance_measurements(
    distances: list[float], nulls: tuple[NullDistribution, ...] | None
) -> list[Measurement]:
    """Measurements of distances, with p-values from their nulls when there are nulls."""
    if nulls is None:
        return [Measurement(distance, None, None, distance) for distance in distances]
    return [
        Measurement(distance, null.p_value(distance), None, distance)
        for distance, null in zip(distances, nulls, strict=True)
    ]


class Wasserstein(StatTest):
    """Normalised first Wasserstein (earth mover's) distance.

    name ``wasserstein``; score: distance (unitless, 0 and up); numeric features; default
    threshold 0.1.

    Definition: ``scipy.stats.wasserstein_distance(reference, current)`` divided by the
    reference's population standard deviation floored at 0.001, so that it reads in
    standard deviations of the reference, whatever the feature's unit.

    p-value: from the simulated two-sample null of :mod:`udfs.drift_calibration`, at the
    window's size; approximate in the far tail on heavy-tailed data.
    """

    name = "wasserstein"
    kind = DISTANCE
    default_threshold = DEFAULT_DISTANCE_THRESHOLD
    feature_kinds = frozenset({NUMERIC})
    effect_name = "distance in reference standard deviations"

    def measure(self, window: NumericWindow, calibrate: bool = True) -> list[Measurement]:
        scales = np.array([reference.scale for reference in window.references])
        distances = (_wasserstein_raw(window) / scales).tolist()
        return _distance_measurements(
            distances, window.stack.wasserstein_nulls(window.size) if calibrate else None
        )


class JensenShannon(StatTest):
    """Jensen-Shannon distance over the reference's quantile bins.

    name ``jensenshannon``; score: distance in base 2 (0 for identical histograms, 1 for
    disjoint ones); numeric features; default threshold 0.1.

    Bins: cut at the reference's quantiles (10 by default, from its minimum to its maximum;
    ties merge bins), plus an overflow bin below the minimum and one above the maximum, so
    that new extremes count rather than vanish. The reference's own overflow bins are empty.

    Definition: ``scipy.spatial.distance.jensenshannon(p, q, base=2)`` of the two histograms.

    p-value: from the simulated two-sample null of :mod:`udfs.drift_calibration`, exact (up
    to simulation) for a tie-free feature.
    """

    name = "jensenshannon"
    kind = DISTANCE
    default_threshold = DEFAULT_DISTANCE_THRESHOLD
    feature_kinds = frozenset({NUMERIC})
    effect_name = "Jensen-Shannon distance, base 2"

    def measure(self, window: NumericWindow, calibrate: bool = True) -> list[Measurement]:
        stack = window.stack
        # Values below each inner edge (padding columns: at or below the maximum), then
        # values at or below the maximum; bins are the differences.
        at_or_below_top = window.rank_counts(
            window.ranks_left, (stack.int_sizes - 1)[:, np.newaxis]
        )
        below_edges = window.rank_counts(window.ranks_right, stack.edge_ranks)
        below_edges = np.where(stack.padding, at_or_below_top, below_edges)
        cumulative = np.concatenate(
            (below_edges, at_or_below_top, np.full_like(at_or_below_top, window.size)), axis=1
        )
        current_counts = cumulative.copy()
        current_counts[:, 1:] -= cumulative[:, :-1]
        distances = jensenshannon_base2(stack.reference_shares, current_counts / window.size)
        return _distance_measurements(
            distances.tolist(), stack.jensenshannon_nulls(window.size) if calibrate else None
        )


class ChiSquare(StatTest):
    """Chi-square test that the window's categories come in the reference's proportions.

    name ``chisquare``; score: p-value; categorical features; default threshold 0.05.

    Definition: Pearson's chi-square test of homogeneity on the 2 x K table of reference and
    window counts over every category seen in either, without Yates' correction: equal to
    ``scipy.stats.chi2_contingency(table, correction=False)``. Expected counts are pooled
    (``row total x column total / grand total``), which accounts for the reference's own
    sampling noise and needs no rule for zeros: a category never seen in the reference has a
    positive expected count and contributes drift evidence rather than raising. A single
    category in both samples gives a statistic of 0 and a p-value of 1.

    Effect size: the total variation distance between the two category distributions,
    ``0.5 sum |p_ref - p_cur|``: the share of traffic that would have to move between
    categories to turn one into the other.
    """

    name = "chisquare"
    kind = P_VALUE
    default_threshold = DEFAULT_P_VALUE_THRESHOLD
    feature_kinds = frozenset({CATEGORICAL})
    effect_name = "share of traffic that moved between categories"

    def measure(self, window: CategoricalWindow, calibrate: bool = True) -> list[Measurement]:
        # A handful of categories: plain floats are faster here than numpy's per-call cost.
        reference_counts = window.reference_counts.tolist()
        current_counts = window.current_counts.tolist()
        reference_size, window_size = sum(reference_counts), sum(current_counts)
        total = reference_size + window_size
        statistic = moved_share = 0.0
        for reference_count, current_count in zip(reference_counts, current_counts, strict=True):
            pooled_share = (reference_count + current_count) / total
            expected_reference = reference_size * pooled_share
            expected_current = window_size * pooled_share
            statistic += (reference_count - expected_reference) ** 2 / expected_reference
            statistic += (current_count - expected_current) ** 2 / expected_current
            moved_share += abs(reference_count / reference_size - current_count / window_size)
        degrees_of_freedom = len(window.categories) - 1
        p_value = 1.0
        if degrees_of_freedom:
            p_value = float(special.chdtrc(degrees_of_freedom, statistic))
        return [Measurement(p_value, p_value, statistic, 0.5 * moved_share)]


class StatTestRegistry(Mapping[str, StatTest]):
    """Registered tests by name; an unknown name raises an error listing the known ones."""

    def __init__(self) -> None:
        self._tests: dict[str, StatTest] = {}

    def register(self, test: StatTest) -> StatTest:
        """Add ``test`` under ``test.name``; a name can be registered once."""
        if test.name in self._tests:
            raise ValueError(f"test name {test.name!r} is already registered; names are unique")
        if test.kind not in SCORE_KINDS:
            raise ValueError(f"test kind must be one of {list(SCORE_KINDS)}; got {test.kind!r}")
        self._tests[test.name] = test
        return test

    def __getitem__(self, name: str) -> StatTest:
        try:
            return self._tests[name]
        except KeyError:
            raise UnknownStatTestError(
                f"unknown test {name!r}; registered tests: {sorted(self._tests)}"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._tests)

    def __len__(self) -> int:
        return len(self._tests)


STAT_TESTS = StatTestRegistry()
for _test in (JensenShannon(), Wasserstein(), KolmogorovSmirnov(), ChiSquare()):
    STAT_TESTS.register(_test)
