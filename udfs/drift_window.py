"""One window against one reference: every feature, every test, one verdict.

:func:`compare_window` runs the configured tests on each feature of a window, corrects the
p-values for the number of (feature, test) pairs, and returns a :class:`WindowVerdict` that
carries, for every pair, the thresholds it was held to after correction, and that explains
itself as plain JSON-ready data (:meth:`WindowVerdict.explain`).

A pair drifts when its change is both *real* and *large enough*:

* real: its p-value is below its significance level after the correction across all pairs
  of the window (Benjamini-Hochberg by default). For Kolmogorov-Smirnov and chi-square the
  p-value is the test's own and the level is its threshold (``DriftConfig.thresholds``,
  0.05); for the distances the p-value comes from their simulated null and the level is
  ``DriftConfig.calibration_alphas`` (0.01).
* large enough: its effect size reaches a minimum. For the distances the effect size is the
  distance and the minimum is its threshold (0.1); for the p-value tests it is their
  statistic's effect size (the largest gap between distribution functions, the share of
  traffic that moved between categories) and the minimum is ``DriftConfig.min_effects``
  (0.1).

A feature drifts when any of its pairs drifts, and the window when at least
``min_drifted_features`` features do (one by default). Numeric features that run the same
tests are compared as rows of one 2-D window, so each test makes its numpy calls once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple

import numpy as np

from udfs.drift_alignment import CategoricalWindow, FeatureWindow, NumericWindow
from udfs.drift_reference import (
    CategoricalReference,
    NumericReference,
    ReferenceSummary,
)
from udfs.drift_stat_tests import (
    DISTANCE,
    P_VALUE,
    STAT_TESTS,
    Measurement,
    StatTest,
    signals_drift,
)
from udfs.drift_validation import (
    CATEGORICAL,
    NUMERIC,
    feature_kind,
    non_negative,
    numeric_values,
    one_of,
    open_unit_interval,
    positive_integer,
)

logger = logging.getLogger(__name__)

BENJAMINI_HOCHBERG = "bh"
BONFERRONI = "bonferroni"
NO_CORRECTION = "none"
CORRECTIONS = (BENJAMINI_HOCHBERG, BONFERRONI, NO_CORRECTION)

# Jensen-Shannon for the shape, Wasserstein for the size of a shift, Kolmogorov-Smirnov for
# a p-value that needs no simulation; chi-square for categories.
DEFAULT_TESTS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {NUMERIC: ("jensenshannon", "wasserstein", "ks"), CATEGORICAL: ("chisquare",)}
)
# Quantile levels an explanation reports for numeric features.
EXPLANATION_QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
# Bins or categories an explanation lists per feature, those whose share moved most.
EXPLANATION_MOVED_BINS = 3


# --- multiple-testing correction ---------------------------------------------------------


def _correct(
    p_values: list[float], alphas: list[float], method: str
) -> tuple[list[float], list[float]]:
    """Adjusted p-values and corrected thresholds (see the two public functions).

    Plain Python: a window has a few dozen pairs, where numpy's per-call cost dominates.
    """
    count = len(p_values)
    if method == NO_CORRECTION or count == 0:
        return list(p_values), list(alphas)
    if method == BONFERRONI:
        return [min(p_value * count, 1.0) for p_value in p_values], [a / count for a in alphas]
    order = sorted(range(count), key=p_values.__getitem__)
    sorted_p_values = [p_values[index] for index in order]
    rank_levels = [rank / count for rank in range(1, count + 1)]
    adjusted = [0.0] * count
    smallest_after = 1.0
    for rank in range(count, 0, -1):
        smallest_after = min(smallest_after, sorted_p_values[rank - 1] / rank_levels[rank - 1])
        adjusted[order[rank - 1]] = smallest_after
    # The step-up cut-off, once per distinct level: alpha times the level of the largest rank
    # whose p-value is below alpha times its level. The cut-off is that same product, so a
    # p-value passes it exactly when its rank is at most the largest passing one.
    cutoffs = {}
    for alpha in set(alphas):
        passing = (
            rank
            for rank in range(count, 0, -1)
            if sorted_p_values[rank - 1] < alpha * rank_levels[rank - 1]
        )
        cutoffs[alpha] = alpha * rank_levels[next(passing, 1) - 1]
    return adjusted, [cutoffs[alpha] for alpha in alphas]


def adjusted_p_values(p_values: object, method: str = BENJAMINI_HOCHBERG) -> np.ndarray:
    """p-values adjusted for testing them all at once.

    Parameters
    ----------
    p_values
        1-D array of p-values in [0, 1].
    method
        ``"bh"`` (Benjamini-Hochberg: ``min_{j >= i} M p_(j) / j``, capped at 1),
        ``"bonferroni"`` (``min(M p, 1)``) or ``"none"``.

    Returns
    -------
    numpy.ndarray
        Adjusted p-values, aligned with the input. A pair is significant at level ``alpha``
        when its adjusted p-value is below ``alpha``.

    Examples
    --------
    >>> adjusted_p_values([0.01, 0.04, 0.03, 0.005]).tolist()
    [0.02, 0.04, 0.04, 0.02]
    """
    p_values = _p_value_array(p_values, "p_values").tolist()
    adjusted, _ = _correct(p_values, [1.0] * len(p_values), one_of(method, CORRECTIONS, "method"))
    return np.array(adjusted, dtype=np.float64)


def corrected_thresholds(
    p_values: object, alphas: object, method: str = BENJAMINI_HOCHBERG
) -> np.ndarray:
    """The threshold each raw p-value is held to after correction.

    With ``M`` p-values and each pair's own level ``alpha_i``:

    * ``"none"``: ``alpha_i``;
    * ``"bonferroni"``: ``alpha_i / M``;
    * ``"bh"``: ``alpha_i k / M``, where ``k`` is the largest rank ``j`` with
      ``p_(j) < alpha_i j / M`` (1 when there is none): the step-up cut-off.

    ``p_i < threshold_i`` exactly when the adjusted p-value of :func:`adjusted_p_values` is
    below ``alpha_i``; the threshold is what an alert reports as applied.

    Examples
    --------
    >>> corrected_thresholds([0.001, 0.02, 0.04, 0.5], 0.05).tolist()
    [0.025, 0.025, 0.025, 0.025]
    """
    p_values = _p_value_array(p_values, "p_values")
    alphas = np.broadcast_to(np.asarray(alphas, dtype=np.float64), p_values.shape).tolist()
    _, thresholds = _correct(p_values.tolist(), alphas, one_of(method, CORRECTIONS, "method"))
    return np.array(thresholds, dtype=np.float64)


def _p_value_array(values: object, argument: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or not np.all((array >= 0.0) & (array <= 1.0)):
        raise ValueError(f"{argument} must be a 1-D array of numbers in [0, 1]; got {values!r}")
    return array


# --- configuration -----------------------------------------------------------------------


def _frozen_levels(levels: Mapping[str, object], argument: str) -> Mapping[str, float]:
    """Check a test-name to number mapping; numbers are checked later against each test."""
    if not isinstance(levels, Mapping):
        raise ValueError(f"{argument} must map test names to numbers; got {levels!r}")
    for test_name in levels:
        STAT_TESTS[test_name]  # raises UnknownStatTestError listing the registered names
    return MappingProxyType(dict(levels))


@dataclass(frozen=True)
class ThresholdTable:
    """Values per test, given per feature, per feature kind or for all features.

    The most specific value given wins: per feature, then per feature kind, then overall;
    when none is given the test's own default applies (see :meth:`resolve`).

    Parameters
    ----------
    per_feature
        Feature name to {test name: value}.
    per_kind
        ``"numeric"`` / ``"categorical"`` to {test name: value}.
    overall
        {test name: value} for every feature.

    Examples
    --------
    >>> table = ThresholdTable(per_feature={"amount": {"ks": 0.01}}, overall={"ks": 0.02})
    >>> table.resolve("ks", "amount", "numeric"), table.resolve("ks", "balance", "numeric")
    (0.01, 0.02)
    >>> table.resolve("wasserstein", "amount", "numeric") is None
    True
    """

    per_feature: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    per_kind: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    overall: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for argument, table in (("per_feature", self.per_feature), ("per_kind", self.per_kind)):
            if not isinstance(table, Mapping):
                raise ValueError(f"{argument} must be a mapping; got {table!r}")
        per_kind = {}
        for kind, levels in self.per_kind.items():
            feature_kind(kind, "per_kind key")
            per_kind[kind] = _frozen_levels(levels, f"per_kind[{kind!r}]")
        per_feature = {
            name: _frozen_levels(levels, f"per_feature[{name!r}]")
            for name, levels in self.per_feature.items()
        }
        object.__setattr__(self, "per_feature", MappingProxyType(per_feature))
        object.__setattr__(self, "per_kind", MappingProxyType(per_kind))
        object.__setattr__(self, "overall", _frozen_levels(self.overall, "overall"))

    def resolve(self, test_name: str, feature: str, kind: str) -> float | None:
        """The most specific value given for ``test_name`` on ``feature``, or None."""
        for levels in (
            self.per_feature.get(feature, {}),
            self.per_kind.get(kind, {}),
            self.overall,
        ):
            if test_name in levels:
                return float(levels[test_name])
        return None

    def entries(self) -> list[tuple[str, str, object]]:
        """Every (where, test name, value) given, for validation."""
        found: list[tuple[str, str, object]] = []
        for name, levels in self.per_feature.items():
            found += [(f"per_feature[{name!r}]", test, value) for test, value in levels.items()]
        for kind, levels in self.per_kind.items():
            found += [(f"per_kind[{kind!r}]", test, value) for test, value in levels.items()]
        found += [("overall", test, value) for test, value in self.overall.items()]
        return found


@dataclass(frozen=True)
class DriftConfig:
    """How a window is compared with its reference. Every field has a default.

    Parameters
    ----------
    tests
        Feature kind to the names of the tests run on features of that kind; defaults to
        :data:`DEFAULT_TESTS` for a kind not given.
    feature_tests
        Feature name to the names of the tests run on it, replacing ``tests`` for it.
    thresholds
        Threshold on each test's own score: the significance level of a p-value test, the
        minimum distance of a distance test. Default: the test's ``default_threshold``.
    min_effects
        Effect size a p-value test must also reach (p-value tests only). Default: the test's
        ``default_min_effect`` (0.1).
    calibration_alphas
        Significance level a distance's calibrated p-value must reach after correction
        (distance tests only). Default: the test's ``default_alpha`` (0.01).
    correction
        ``"bh"`` (Benjamini-Hochberg, the default), ``"bonferroni"`` or ``"none"``, across
        every (feature, test) pair of the window that has a p-value.
    calibrate
        Whether distances get a p-value from their simulated null. Without it a distance
        drifts on its threshold alone, as in most drift libraries, and stays out of the
        correction.
    min_drifted_features
        How many features must drift for the window to drift.
    """

    tests: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    feature_tests: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    thresholds: ThresholdTable = field(default_factory=ThresholdTable)
    min_effects: ThresholdTable = field(default_factory=ThresholdTable)
    calibration_alphas: ThresholdTable = field(default_factory=ThresholdTable)
    correction: str = BENJAMINI_HOCHBERG
    calibrate: bool = True
    min_drifted_features: int = 1

    def __post_init__(self) -> None:
        tests = dict(DEFAULT_TESTS)
        for kind, names in self.tests.items():
            kind = feature_kind(kind, "tests key")
            tests[kind] = self._test_names(names, f"tests[{kind!r}]", kind)
        object.__setattr__(self, "tests", MappingProxyType(tests))
        feature_tests = {
            name: self._test_names(names, f"feature_tests[{name!r}]", None)
            for name, names in self.feature_tests.items()
        }
        object.__setattr__(self, "feature_tests", MappingProxyType(feature_tests))
        one_of(self.correction, CORRECTIONS, "correction")
        positive_integer(self.min_drifted_features, "min_drifted_features")
        if not isinstance(self.calibrate, bool):
            raise ValueError(f"calibrate must be True or False; got {self.calibrate!r}")
        self._check_table("thresholds", self.thresholds, None)
        self._check_table("min_effects", self.min_effects, P_VALUE)
        self._check_table("calibration_alphas", self.calibration_alphas, DISTANCE)
        if not self.calibrate:
            logger.warning(
                "calibrate=False: distances drift on their thresholds alone, which same-"
                "distribution windows cross often (their noise floor is near 0.1)"
            )
        if self.correction == NO_CORRECTION:
            logger.warning(
                "correction='none': each (feature, test) pair is held to its own level, so a "
                "window's false-alarm rate grows with the number of pairs"
            )
        # Resolved levels by (test, feature, kind): a job asks for the same ones every window.
        object.__setattr__(self, "_resolved_levels", {})
        object.__setattr__(self, "_resolved_tests", {})
        object.__setattr__(self, "_plans", {})

    @staticmethod
    def _test_names(names: object, argument: str, kind: str | None) -> tuple[str, ...]:
        if isinstance(names, str) or not isinstance(names, tuple | list) or not names:
            raise ValueError(f"{argument} must be a non-empty tuple of test names; got {names!r}")
        for name in names:
            test = STAT_TESTS[name]
            if kind is not None and not test.accepts(kind):
                raise ValueError(
                    f"{argument} runs {name!r}, which accepts {sorted(test.feature_kinds)} "
                    f"features; expected tests for {kind} features"
                )
        return tuple(names)

    @staticmethod
    def _check_table(argument: str, table: object, applies_to: str | None) -> None:
        if not isinstance(table, ThresholdTable):
            raise ValueError(f"{argument} must be a ThresholdTable; got {table!r}")
        for where, test_name, value in table.entries():
            test = STAT_TESTS[test_name]
            place = f"{argument}.{where}[{test_name!r}]"
            if applies_to is not None and test.kind != applies_to:
                raise ValueError(
                    f"{place} is set, but {argument} applies to {applies_to} tests and "
                    f"{test_name!r} is a {test.kind} test"
                )
            if argument == "thresholds":
                test.check_threshold(value, place)
            elif argument == "min_effects":
                non_negative(value, place)
            else:
                open_unit_interval(value, place)

    def tests_for(self, feature: str, kind: str) -> tuple[StatTest, ...]:
        """The tests run on ``feature`` of ``kind``; raises if one does not accept the kind."""
        key = (feature, kind)
        tests = self._resolved_tests.get(key)
        if tests is not None:
            return tests
        names = self.feature_tests.get(feature, self.tests[kind])
        tests = tuple(STAT_TESTS[name] for name in names)
        for test in tests:
            if not test.accepts(kind):
                raise ValueError(
                    f"feature_tests[{feature!r}] runs {test.name!r}, which accepts "
                    f"{sorted(test.feature_kinds)} features; feature {feature!r} is {kind}"
                )
        self._resolved_tests[key] = tests
        return tests

    def levels_for(self, test: StatTest, feature: str, kind: str) -> tuple[float, float, float]:
        """``(threshold, alpha, min_effect)`` for ``test`` on ``feature``, defaults filled in.

        ``threshold`` is on the test's score; ``alpha`` is the significance its p-value must
        reach after correction; ``min_effect`` the effect size it must reach. For a p-value
        test ``alpha`` is its threshold; for a distance, ``min_effect`` is.
        """
        key = (test.name, feature, kind)
        resolved = self._resolved_levels.get(key)
        if resolved is None:
            resolved = self._resolve_levels(test, feature, kind)
            self._resolved_levels[key] = resolved
        return resolved

    def _resolve_levels(
        self, test: StatTest, feature: str, kind: str
    ) -> tuple[float, float, float]:
        threshold = self.thresholds.resolve(test.name, feature, kind)
        if threshold is None:
            threshold = test.default_threshold
        if test.kind == P_VALUE:
            min_effect = self.min_effects.resolve(test.name, feature, kind)
            return (
                threshold,
                threshold,
                test.default_min_effect if min_effect is None else min_effect,
            )
        alpha = self.calibration_alphas.resolve(test.name, feature, kind)
        return threshold, test.default_alpha if alpha is None else alpha, threshold


_DEFAULT_CONFIG = DriftConfig()


# --- results -----------------------------------------------------------------------------


class FeatureTestResult(NamedTuple):
    """One test on one feature of a window, with every threshold it was held to.

    Attributes
    ----------
    feature, test : str
        The feature and the registered test name.
    kind : str
        ``"p_value"`` or ``"distance"``: what ``score`` is.
    score : float
        The test's score (p-value or distance).
    threshold : float
        The threshold applied to ``score``: the corrected significance level for a p-value
        test, the minimum distance for a distance test.
    p_value, adjusted_p_value : float or None
        The raw and the corrected p-value (the calibrated one for a distance); None for an
        uncalibrated distance.
    alpha : float or None
        The significance level before correction.
    p_threshold : float or None
        The threshold the raw p-value was held to after correction.
    effect_size, effect_threshold : float
        The effect size and the minimum it had to reach.
    statistic : float or None
        The statistic behind a p-value test's score.
    significant, large, drifted : bool
        ``p_value < p_threshold`` (True without a p-value), ``effect_size >=
        effect_threshold``, and both.
    """

    feature: str
    test: str
    kind: str
    score: float
    threshold: float
    p_value: float | None
    adjusted_p_value: float | None
    alpha: float | None
    p_threshold: float | None
    effect_size: float
    effect_threshold: float
    statistic: float | None
    significant: bool
    large: bool
    drifted: bool

    def to_dict(self) -> dict[str, object]:
        """The result as builtins, with the effect size's meaning."""
        return {
            "test": self.test,
            "kind": self.kind,
            "score": self.score,
            "threshold": self.threshold,
            "drifted": self.drifted,
            "p_value": self.p_value,
            "adjusted_p_value": self.adjusted_p_value,
            "alpha": self.alpha,
            "p_threshold": self.p_threshold,
            "significant": self.significant,
            "effect_size": self.effect_size,
            "effect_name": STAT_TESTS[self.test].effect_name,
            "effect_threshold": self.effect_threshold,
            "large": self.large,
            "statistic": self.statistic,
        }


class FeatureVerdict(NamedTuple):
    """Every test on one feature of a window; the feature drifts when any test drifts."""

    feature: str
    kind: str
    drifted: bool
    results: tuple[FeatureTestResult, ...]

    def result(self, test_name: str) -> FeatureTestResult:
        """The result of ``test_name`` on this feature."""
        for result in self.results:
            if result.test == test_name:
                return result
        raise ValueError(
            f"test_name {test_name!r} was not run on feature {self.feature!r}; run: "
            f"{[result.test for result in self.results]}"
        )


def _rounded(values: np.ndarray) -> list[float]:
    return [float(value) for value in values]


def _explain_numeric(
    reference: NumericReference, sorted_current: np.ndarray, moved_bins: int
) -> dict[str, object]:
    levels = np.asarray(EXPLANATION_QUANTILES)
    reference_shares = reference.bin_counts / reference.size
    current_shares = reference.histogram(sorted_current) / sorted_current.size
    changes = current_shares - reference_shares
    # Bin i spans edges[i - 1] to edges[i]; the overflow bins are open at their outer end.
    lower_edges = [None, *_rounded(reference.bin_edges)]
    upper_edges = [*_rounded(reference.bin_edges), None]
    most_moved = np.argsort(-np.abs(changes), kind="stable")[:moved_bins]
    return {
        "quantiles": {
            "levels": _rounded(levels),
            "reference": _rounded(np.quantile(reference.sorted_values, levels)),
            "current": _rounded(np.quantile(sorted_current, levels)),
        },
        "moved_bins": [
            {
                "lower": lower_edges[index],
                "upper": upper_edges[index],
                "reference_share": float(reference_shares[index]),
                "current_share": float(current_shares[index]),
                "change": float(changes[index]),
            }
            for index in most_moved.tolist()
        ],
    }


def _explain_categorical(window: CategoricalWindow, moved_bins: int) -> dict[str, object]:
    reference_shares = window.reference_counts / window.reference_counts.sum()
    current_shares = window.current_counts / window.size
    changes = current_shares - reference_shares
    most_moved = np.argsort(-np.abs(changes), kind="stable")[:moved_bins]
    return {
        "unseen_in_reference": [
            category
            for category, count in zip(
                window.categories, window.reference_counts.tolist(), strict=True
            )
            if count == 0
        ],
        "moved_categories": [
            {
                "category": window.categories[index],
                "reference_share": float(reference_shares[index]),
                "current_share": float(current_shares[index]),
                "change": float(changes[index]),
            }
            for index in most_moved.tolist()
        ],
    }


@dataclass(frozen=True)
class WindowVerdict:
    """The verdict on one window: per feature, per test, and for the window as a whole.

    Attributes
    ----------
    drifted : bool
        Whether at least ``min_drifted_features`` features drifted.
    drifted_features : tuple of str
        The features that drifted, in the reference's order.
    features : Mapping[str, FeatureVerdict]
        Every feature's verdict.
    correction : str
        The multiple-testing correction applied.
    corrected_pairs : int
        How many (feature, test) p-values the correction spanned.
    window_size : int
        Rows in the window.
    min_drifted_features : int
        The rule the window was judged by.
    """

    drifted: bool
    drifted_features: tuple[str, ...]
    features: Mapping[str, FeatureVerdict]
    correction: str
    corrected_pairs: int
    window_size: int
    min_drifted_features: int
    placed: Mapping[str, tuple[FeatureWindow, int]] = field(repr=False, compare=False)

    def results(self) -> list[FeatureTestResult]:
        """Every (feature, test) result, feature by feature."""
        return [result for verdict in self.features.values() for result in verdict.results]

    def explain(self, moved_bins: int = EXPLANATION_MOVED_BINS) -> dict[str, object]:
        """The verdict and its reasons as builtins, ready for ``json.dumps``.

        Per feature: every test's scores and applied thresholds; for numeric features the
        reference's and the window's quantiles and the ``moved_bins`` bins whose share moved
        most (``lower`` / ``upper`` are None where a bin is open); for categorical features
        the categories whose share moved most and those never seen in the reference.
        """
        moved_bins = positive_integer(moved_bins, "moved_bins")
        features: dict[str, object] = {}
        for name, verdict in self.features.items():
            window, row = self.placed[name]
            if isinstance(window, NumericWindow):
                feature_reference = window.references[row]
                detail = _explain_numeric(feature_reference, window.sorted_values[row], moved_bins)
            else:
                feature_reference = window.reference
                detail = _explain_categorical(window, moved_bins)
            features[name] = {
                "kind": verdict.kind,
                "drifted": verdict.drifted,
                "reference_size": feature_reference.size,
                "tests": [result.to_dict() for result in verdict.results],
                **detail,
            }
        return {
            "drifted": self.drifted,
            "drifted_features": list(self.drifted_features),
            "min_drifted_features": self.min_drifted_features,
            "correction": self.correction,
            "corrected_pairs": self.corrected_pairs,
            "window_size": self.window_size,
            "features": features,
        }


# --- the comparison ----------------------------------------------------------------------


class _Plan(NamedTuple):
    """How a config compares windows with references of one feature layout."""

    # Numeric features that run the same tests, compared as one 2-D window each.
    numeric_groups: tuple[tuple[tuple[str, ...], tuple[StatTest, ...]], ...]
    categorical: tuple[tuple[str, tuple[StatTest, ...]], ...]
    # (threshold, alpha, min_effect) of every pair, in the order the pairs are measured.
    levels: tuple[tuple[float, float, float], ...]


def _plan(config: DriftConfig, reference: ReferenceSummary) -> _Plan:
    """Group the reference's features by the tests the config runs on them (cached)."""
    layout = tuple((name, feature.kind) for name, feature in reference.items())
    plan = config._plans.get(layout)
    if plan is not None:
        return plan
    for argument, named in (
        ("feature_tests", config.feature_tests),
        ("thresholds.per_feature", config.thresholds.per_feature),
        ("min_effects.per_feature", config.min_effects.per_feature),
        ("calibration_alphas.per_feature", config.calibration_alphas.per_feature),
    ):
        # Settings for features the reference does not have are typos; say so.
        unknown = sorted(set(named) - set(reference))
        if unknown:
            raise ValueError(
                f"config.{argument} names features {unknown} that the reference does not "
                f"have; reference features: {list(reference)}"
            )
    numeric_groups: dict[tuple[StatTest, ...], list[str]] = {}
    categorical = []
    for name, kind in layout:
        tests = config.tests_for(name, kind)
        if kind == NUMERIC:
            numeric_groups.setdefault(tests, []).append(name)
        else:
            categorical.append((name, tests))
    groups = tuple((tuple(names), tests) for tests, names in numeric_groups.items())
    pairs = [(name, test, NUMERIC) for names, tests in groups for test in tests for name in names]
    pairs += [(name, test, CATEGORICAL) for name, tests in categorical for test in tests]
    plan = _Plan(
        numeric_groups=groups,
        categorical=tuple(categorical),
        levels=tuple(config.levels_for(test, name, kind) for name, test, kind in pairs),
    )
    config._plans[layout] = plan
    return plan


def _check_columns(reference: ReferenceSummary, current_columns: Mapping[str, object]) -> None:
    if not isinstance(current_columns, Mapping):
        raise ValueError(
            f"current_columns must map feature names to arrays; got {type(current_columns)}"
        )
    missing = [name for name in reference if name not in current_columns]
    if missing:
        raise ValueError(
            f"current_columns lacks reference features {missing}; got {sorted(current_columns)}"
        )


def compare_window(
    reference: ReferenceSummary | Mapping[str, object],
    current_columns: Mapping[str, object],
    config: DriftConfig | None = None,
) -> WindowVerdict:
    """Compare every feature of one window with one reference.

    Parameters
    ----------
    reference
        A :class:`ReferenceSummary`, or reference columns to summarise now.
    current_columns
        Feature name to the window's 1-D values; every reference feature must be present,
        all with the same length. Other columns are ignored.
    config
        How to compare; None means :class:`DriftConfig` defaults.

    Returns
    -------
    WindowVerdict

    Raises
    ------
    ValueError
        On a missing or malformed column, columns of different lengths, a test that does not
        accept a feature's kind, or settings that name features the reference does not have.
    """
    config = _DEFAULT_CONFIG if config is None else config
    if not isinstance(reference, ReferenceSummary):
        reference = ReferenceSummary.from_columns(reference)
    plan = _plan(config, reference)
    _check_columns(reference, current_columns)

    # Validate and place the window's columns: numeric features as rows of shared windows.
    placed: dict[str, tuple[FeatureWindow, int]] = {}
    measured: list[tuple[str, StatTest, Measurement]] = []
    for names, tests in plan.numeric_groups:
        window = NumericWindow(
            reference.numeric_stack(names),
            [current_columns[name] for name in names],
            [f"current_columns[{name!r}]" for name in names],
        )
        placed.update((name, (window, row)) for row, name in enumerate(names))
        for test in tests:
            measurements = test.measure(window, calibrate=config.calibrate)
            measured += [(name, test, m) for name, m in zip(names, measurements, strict=True)]
    for name, tests in plan.categorical:
        window = CategoricalWindow(
            reference[name], current_columns[name], f"current_columns[{name!r}]"
        )
        placed[name] = (window, 0)
        measured += [(name, test, test.measure(window, config.calibrate)[0]) for test in tests]
    sizes = {name: window.size for name, (window, _) in placed.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"current_columns must all have the same length; got {sizes}")

    # Correct the p-values of all pairs that have one, each at its own level.
    levels = plan.levels
    with_p_value = [index for index, (_, _, m) in enumerate(measured) if m.p_value is not None]
    p_values = [measured[index][2].p_value for index in with_p_value]
    alphas = [levels[index][1] for index in with_p_value]
    adjusted, thresholds = _correct(p_values, alphas, config.correction)
    corrected = dict(zip(with_p_value, zip(adjusted, thresholds, strict=True), strict=True))

    # Decide each pair, then each feature, then the window.
    by_feature: dict[str, list[FeatureTestResult]] = {name: [] for name in reference}
    for index, ((name, test, m), (threshold, alpha, min_effect)) in enumerate(
        zip(measured, levels, strict=True)
    ):
        adjusted_p, p_threshold = corrected.get(index, (None, None))
        significant = p_threshold is None or signals_drift(P_VALUE, m.p_value, p_threshold)
        large = signals_drift(DISTANCE, m.effect_size, min_effect)
        by_feature[name].append(
            FeatureTestResult(
                name,
                test.name,
                test.kind,
                m.score,
                p_threshold if test.kind == P_VALUE else threshold,
                m.p_value,
                adjusted_p,
                None if p_threshold is None else alpha,
                p_threshold,
                m.effect_size,
                min_effect,
                m.statistic,
                significant,
                large,
                significant and large,
            )
        )
    features = {
        name: FeatureVerdict(
            name,
            reference[name].kind,
            any(result.drifted for result in results),
            tuple(results),
        )
        for name, results in by_feature.items()
    }
    drifted_features = tuple(name for name, verdict in features.items() if verdict.drifted)
    return WindowVerdict(
        drifted=len(drifted_features) >= config.min_drifted_features,
        drifted_features=drifted_features,
        features=MappingProxyType(features),
        correction=config.correction,
        corrected_pairs=len(with_p_value),
        window_size=next(iter(sizes.values())),
        min_drifted_features=config.min_drifted_features,
        placed=MappingProxyType(placed),
    )


def tail_scores(
    reference: ReferenceSummary,
    columns: Mapping[str, object],
    features: tuple[str, ...] | list[str] | None = None,
) -> np.ndarray:
    """How far into the reference's tails each row lies, per numeric feature.

    For a value ``x`` the mid-rank position ``u = (#{ref < x} + #{ref <= x}) / (2 n)`` is the
    reference's empirical distribution function with ties split evenly, and the score is
    ``|2 u - 1|``: 0 at the reference's median, 1 at or beyond its minimum or maximum. Two
    ``searchsorted`` calls per feature, whatever the number of rows.

    Parameters
    ----------
    reference
        The reference summary.
    columns
        Feature name to 1-D arrays of one length (the rows to score).
    features
        Numeric features to score, in the column order wanted; default: every numeric
        feature of the reference.

    Returns
    -------
    numpy.ndarray
        Shape ``(rows, len(features))``, values in [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> summary = ReferenceSummary.from_columns({"amount": np.arange(1.0, 100.0)})
    >>> tail_scores(summary, {"amount": np.array([50.0, 1.0, 500.0])}).ravel().tolist()
    [0.0, 0.98989898989899, 1.0]
    """
    if features is None:
        features = [name for name, feature in reference.items() if feature.kind == NUMERIC]
    scores = []
    row_count = None
    for name in features:
        feature = reference[name]
        if isinstance(feature, CategoricalReference):
            raise ValueError(
                f"features names {name!r}, which is categorical; tail scores need numeric "
                f"features: {[n for n, f in reference.items() if f.kind == NUMERIC]}"
            )
        if name not in columns:
            raise ValueError(f"columns lacks feature {name!r}; got {sorted(columns)}")
        values = numeric_values(columns[name], f"columns[{name!r}]")
        if row_count is not None and values.size != row_count:
            raise ValueError(
                f"columns[{name!r}] has {values.size} rows; expected {row_count} like the others"
            )
        row_count = values.size
        below = np.searchsorted(feature.sorted_values, values, side="left")
        at_or_below = np.searchsorted(feature.sorted_values, values, side="right")
        scores.append(np.abs(below + at_or_below - feature.size) / feature.size)
    if not scores:
        raise ValueError("features must name at least one numeric feature; got none")
    return np.column_stack(scores)
