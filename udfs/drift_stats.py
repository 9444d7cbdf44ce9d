"""Distribution-drift statistics for windows of payment transactions.

The public face of the ``udfs.drift_*`` modules: everything a streaming job needs is
importable from here.

What it does
------------
A job keyed by, say, transaction type keeps a reference sample per key (about 5000 rows) and
closes windows of about 500 rows. Once per reference it builds a :class:`ReferenceSummary`
(sorted values, quantile bins, category counts, standard deviations and the tail fits that
calibrate the distances), which serializes to bytes for keyed state. Once per window it calls
:func:`compare_window`, which runs every configured test on every feature in a few dozen
vectorized numpy calls and returns a :class:`WindowVerdict` with an explanation ready for
``json.dumps``. :func:`tail_scores` tells, row by row, how far into the reference's tails a
transaction lies, for a per-transaction risk score.

The tests (:data:`STAT_TESTS`)
------------------------------
========== ========= ========================= ========= ==========================
name       score     definition                default   effect size
========== ========= ========================= ========= ==========================
ks         p-value   two-sample KS, asymptotic 0.05      largest CDF gap ``D``
chisquare  p-value   chi-square homogeneity    0.05      share of traffic moved
wasserstein distance W1 / reference std        0.1       the distance
jensenshannon distance JS base 2, quantile bins 0.1      the distance
========== ========= ========================= ========= ==========================

Each is a small object with a name, a score kind, a default threshold and the feature kinds
it accepts; its docstring gives the exact definition and the scipy call it equals. A p-value
drifts when it is below its threshold, a distance when it is at or above it; that rule lives
in :func:`signals_drift` alone.

The verdict
-----------
A fixed distance threshold cries wolf: between two samples of one distribution, 500 rows
against 5000, the Jensen-Shannon distance over 30 quantile bins has a median of 0.107, and
the normalised Wasserstein distance of a lognormal feature exceeds 0.1 in a few percent of
windows. Testing 16 (feature, test) pairs at 0.05 each adds its own false alarms. So a pair
drifts only when its change is both

* real: its p-value, corrected for every pair of the window (Benjamini-Hochberg by default,
  Bonferroni or none by configuration), is below its significance level. The distances get
  p-values from simulated two-sample nulls at the live window size
  (:mod:`udfs.drift_calibration`), so they join the correction; and
* large enough: its effect size reaches a minimum, the distance threshold for distances and
  an effect-size floor for the p-value tests, so that a tiny change on a large window is not
  reported as drift.

A feature drifts when any of its pairs does, the window when at least one feature does.

Defaults and why
----------------
* 10 quantile bins for Jensen-Shannon, plus an overflow bin at each end: the noise floor at
  500 against 5000 is then a median of 0.060 and a 99th percentile of 0.092, under the
  threshold of 0.1, while ten bins still see changes of shape.
* Distance thresholds 0.1 and p-value thresholds 0.05: the defaults of the drift libraries
  users know (Evidently), so that a standalone test means what users expect.
* Effect floor 0.1 for the p-value tests: a 10-point gap between distribution functions, or
  10 % of traffic moving between categories.
* Significance 0.01 for the calibrated distances: their nulls are approximate in the far
  tail on heavy-tailed features, and their thresholds sit close to the noise there.
* Benjamini-Hochberg: it keeps the share of false discoveries among a window's alerts at the
  significance level without Bonferroni's loss of power when several features move together.

Measured with ``scripts/bench_stats.py`` on PaySim-like data (lognormal amounts with a log
standard deviation of 2, zero-inflated balances): about 0.4 % of same-distribution windows are
declared drifted, and a shift of 0.5 standard deviations in log(amount) is declared in the
first window after it in every trial. One comparison of 500 rows by six features takes under
a millisecond; a summary of 5000 rows, nulls included, about two.
"""

from __future__ import annotations

from udfs.drift_alignment import CategoricalWindow, NumericWindow
from udfs.drift_calibration import NullDistribution, ks_p_value
from udfs.drift_reference import (
    DEFAULT_BINS,
    STD_FLOOR,
    CategoricalReference,
    NumericReference,
    ReferenceSummary,
)
from udfs.drift_stat_tests import (
    DEFAULT_CALIBRATION_ALPHA,
    DEFAULT_DISTANCE_THRESHOLD,
    DEFAULT_MIN_EFFECT,
    DEFAULT_P_VALUE_THRESHOLD,
    DISTANCE,
    P_VALUE,
    STAT_TESTS,
    ChiSquare,
    JensenShannon,
    KolmogorovSmirnov,
    Measurement,
    StatResult,
    StatTest,
    UnknownStatTestError,
    Wasserstein,
    prepare_window,
    signals_drift,
)
from udfs.drift_validation import CATEGORICAL, FEATURE_KINDS, NUMERIC
from udfs.drift_window import (
    BENJAMINI_HOCHBERG,
    BONFERRONI,
    CORRECTIONS,
    DEFAULT_TESTS,
    NO_CORRECTION,
    DriftConfig,
    FeatureTestResult,
    FeatureVerdict,
    ThresholdTable,
    WindowVerdict,
    adjusted_p_values,
    compare_window,
    corrected_thresholds,
    tail_scores,
)

__all__ = [
    "BENJAMINI_HOCHBERG",
    "BONFERRONI",
    "CATEGORICAL",
    "CORRECTIONS",
    "DEFAULT_BINS",
    "DEFAULT_CALIBRATION_ALPHA",
    "DEFAULT_DISTANCE_THRESHOLD",
    "DEFAULT_MIN_EFFECT",
    "DEFAULT_P_VALUE_THRESHOLD",
    "DEFAULT_TESTS",
    "DISTANCE",
    "FEATURE_KINDS",
    "NO_CORRECTION",
    "NUMERIC",
    "P_VALUE",
    "STAT_TESTS",
    "STD_FLOOR",
    "CategoricalReference",
    "CategoricalWindow",
    "ChiSquare",
    "DriftConfig",
    "FeatureTestResult",
    "FeatureVerdict",
    "JensenShannon",
    "KolmogorovSmirnov",
    "Measurement",
    "NullDistribution",
    "NumericReference",
    "NumericWindow",
    "ReferenceSummary",
    "StatResult",
    "StatTest",
    "ThresholdTable",
    "UnknownStatTestError",
    "Wasserstein",
    "WindowVerdict",
    "adjusted_p_values",
    "compare_window",
    "corrected_thresholds",
    "ks_p_value",
    "prepare_window",
    "signals_drift",
    "tail_scores",
]
