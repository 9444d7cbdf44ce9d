"""Null distributions that turn drift distances into p-values.

A distance between two samples of one distribution is not zero: between a window of 500 and
a reference of 5000, the Jensen-Shannon distance over 30 quantile bins has a median of about
0.107, above the customary threshold of 0.1. This module gives every distance the
distribution it has when nothing changed, at the live window size, so that it carries a
p-value that a multiple-testing correction can use beside the p-values of the classical tests.

Both nulls are two-sample nulls: the reference is a sample too, and its own noise is part of
what a window is compared against.

Jensen-Shannon over quantile bins
    With bins cut at the reference's own order statistics, the reference's bin counts are
    fixed by construction and the window's counts depend only on ranks, so for a continuous
    feature the null does not depend on the feature at all. The masses of the bins follow a
    Dirichlet distribution with one unit per gap between reference order statistics, and
    the window's counts are multinomial given those masses. Ties merge bins into uneven
    ones (a feature with 30 % zeros has a first bin of at least 30 %); their weights are
    then the reference's counts, the posterior of each bin's mass. The null is simulated
    once per (bin shares rounded to 1/400, reference size, window size) and cached, so all
    tie-free references of one size share one null.

Wasserstein
    The distance integrates ``|F_ref - F_cur|`` over the feature's axis. Written on the
    probability axis ``t`` it is ``sum |U_n(t) - V_m(t)| dQ(t)``, where ``U_n`` and ``V_m``
    are the empirical distribution functions of uniform samples and ``Q`` is the feature's
    quantile function. The first factor does not depend on the feature: it is simulated
    once per (reference size, window size) on a grid of probabilities, as a matrix of
    draws by grid cell. The second comes from the reference: its quantile increments over
    the grid, with generalized Pareto tails fitted to its extreme order statistics so that
    values beyond the reference's range, the main source of noise for heavy-tailed
    features, are part of the null. A null is then one matrix-vector product.

    The reference stands in for the true distribution, and its tails are estimated from a
    few dozen values, so the fitted tail shape is widened by ``TAIL_SHAPE_MARGIN`` (about
    1.5 standard errors). Checked by simulation against fresh same-distribution samples,
    500 against 5000: on PaySim-like data (lognormal, log standard deviation 2, up to 54 %
    zeros) 0.37 % of windows reach p < 0.003 and 0.08 % reach p < 0.0006 (nominal 0.3 % and
    0.06 %); on normal and lognormal (log sd 1) data the rates are at or below nominal.

p-values from a simulated null
    The empirical exceedance ``(1 + #{null >= d}) / (draws + 1)`` in the body, and beyond
    the null's 90th percentile a generalized Pareto tail fitted to the top tenth of the
    draws (widened the same way), so that p-values can fall below ``1 / (draws + 1)`` when
    a multiple-testing correction asks for them.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import special, stats

# Reference bin shares are rounded to multiples of 1 / SHARE_RESOLUTION before they key a
# cached Jensen-Shannon null, so that references whose bins differ by a few values share one.
SHARE_RESOLUTION = 400
# Draws of the Jensen-Shannon null; it is cached per shape, so it can afford many.
JENSENSHANNON_NULL_DRAWS = 10_000
# Draws of the Wasserstein design; each null costs draws x grid cells multiply-adds.
WASSERSTEIN_NULL_DRAWS = 4_000
# Seed of every simulated null, so that a verdict is reproducible run to run.
NULL_SEED = 20_240_601

# Share of a simulated null's largest draws that a generalized Pareto tail is fitted to.
NULL_TAIL_SHARE = 0.1
# A tail fit needs at least this many points to mean anything.
NULL_TAIL_MIN_POINTS = 20

# The probability grid of the Wasserstein null: uniform cells for the body, cells uniform on
# the logit scale for the tails, reaching out to 1 / (GRID_TAIL_REACH * (n + 1)) at each end,
# beyond which fewer than about one window in GRID_TAIL_REACH has any value. Against brute-
# force two-sample simulation (normal, lognormal and uniform data, 500 against 5000) the
# null's median and 99th percentile come out within 4 % at these sizes; twice as many cells
# change them by under 2 % and double the cost of every null.
GRID_UNIFORM_CELLS = 32
GRID_LOGIT_CELLS = 48
GRID_TAIL_REACH = 100

# Extreme order statistics that a reference's tail fit uses: about sqrt(n), a common choice
# for threshold selection in peaks-over-threshold estimation, within these bounds.
TAIL_FIT_MIN_POINTS = 10
TAIL_FIT_MAX_POINTS = 100
# Generalized Pareto shapes are clipped to [0, MAX_TAIL_SHAPE]: a negative shape (a bounded
# tail) is treated as exponential, which can only widen the null; shapes near 1 mean an
# infinite mean, for which a distance on the raw scale has no noise floor to speak of.
MAX_TAIL_SHAPE = 0.9
# The tail shape used for the null is the fitted one plus this margin: about one and a half
# standard errors of a probability-weighted-moment estimate from 70 points (the asymptotic
# variance is 4 / (3 k) at shape 0). The null's far tail is driven by window values beyond
# the reference's extremes, which the reference cannot pin down; a plausible upper bound of
# the tail's weight keeps heavy-tailed features from turning one large payment into drift.
TAIL_SHAPE_MARGIN = 0.2
# Hosking and Wallis' plotting position offset for probability-weighted moments.
PWM_PLOTTING_OFFSET = 0.35
# Below this magnitude a generalized Pareto shape is treated as exactly 0 (exponential).
SHAPE_EPSILON = 1e-9

_LOG_2 = math.log(2.0)


# --- generalized Pareto tails ------------------------------------------------------------


def fit_generalized_pareto(exceedances: np.ndarray) -> tuple[float, float]:
    """Fit a generalized Pareto distribution to exceedances over a threshold.

    Uses probability-weighted moments: for shape ``xi`` and scale ``sigma``,
    ``E[Y] = sigma / (1 - xi)`` and ``E[Y (1 - F(Y))] = sigma / (2 (2 - xi))``, solved for
    ``xi`` and ``sigma`` from their sample versions. The shape is clipped to
    ``[0, MAX_TAIL_SHAPE]`` and the scale then set to keep the mean excess.

    Parameters
    ----------
    exceedances
        Non-negative excesses over the threshold, in any order.

    Returns
    -------
    tuple of float
        ``(shape, scale)``; ``scale`` is 0 when every exceedance is 0.
    """
    ascending = np.sort(exceedances)
    count = ascending.size
    mean_excess = float(ascending.mean()) if count else 0.0
    if mean_excess <= 0.0:
        return 0.0, 0.0
    survival = 1.0 - (np.arange(1, count + 1) - PWM_PLOTTING_OFFSET) / count
    weighted_moment = float(np.mean(ascending * survival))
    ratio = mean_excess / (2.0 * weighted_moment)
    shape = 0.0 if ratio <= 2.0 else min((ratio - 2.0) / (ratio - 1.0), MAX_TAIL_SHAPE)
    return shape, mean_excess * (1.0 - shape)


def _widened_tail(shape: float, scale: float) -> tuple[float, float]:
    """The tail with its shape raised by ``TAIL_SHAPE_MARGIN``, keeping its mean excess."""
    widened = min(shape + TAIL_SHAPE_MARGIN, MAX_TAIL_SHAPE)
    return widened, scale / (1.0 - shape) * (1.0 - widened)


def _pareto_excess_quantile(tail_ratio: np.ndarray, shape: float, scale: float) -> np.ndarray:
    """Excess over the threshold at which the tail probability is divided by ``tail_ratio``."""
    if shape < SHAPE_EPSILON:
        return scale * np.log(tail_ratio)
    return scale / shape * np.expm1(shape * np.log(tail_ratio))


def _pareto_survival(excess: np.ndarray, shape: float, scale: float) -> np.ndarray:
    """Survival function of a generalized Pareto excess."""
    if shape < SHAPE_EPSILON:
        return np.exp(-excess / scale)
    return np.exp(-np.log1p(shape * excess / scale) / shape)


# --- p-values from a simulated null ------------------------------------------------------


class NullDistribution:
    """A simulated null distribution of a statistic that grows with drift.

    Parameters
    ----------
    draws
        Values of the statistic simulated under "no drift".

    Attributes
    ----------
    sorted_draws : numpy.ndarray
        The simulated values, ascending: a p-value is then one binary search, which reads a
        dozen cache lines rather than every draw.
    tail_start : float
        The value above which p-values come from the fitted tail.
    tail_share : float
        The p-value at ``tail_start``.
    tail_shape, tail_scale : float
        The generalized Pareto tail fitted to the draws above ``tail_start``, its shape
        widened by ``TAIL_SHAPE_MARGIN``.
    """

    __slots__ = ("sorted_draws", "tail_start", "tail_share", "tail_shape", "tail_scale")

    def __init__(self, draws: np.ndarray):
        self.sorted_draws = np.sort(np.asarray(draws, dtype=np.float64))
        total = self.sorted_draws.size
        tail_count = max(NULL_TAIL_MIN_POINTS, round(NULL_TAIL_SHARE * total))
        if tail_count >= total:
            # Too few draws for a tail: p-values stay empirical.
            self.tail_start = math.inf
            self.tail_share = 0.0
            self.tail_shape, self.tail_scale = 0.0, 0.0
            return
        split = total - tail_count - 1
        self.tail_start = float(self.sorted_draws[split])
        self.tail_share = tail_count / (total + 1)
        self.tail_shape, self.tail_scale = _widened_tail(
            *fit_generalized_pareto(self.sorted_draws[split + 1 :] - self.tail_start)
        )

    def p_value(self, statistic: float) -> float:
        """Probability under the null of a statistic at least as large as ``statistic``."""
        if statistic > self.tail_start and self.tail_scale > 0.0:
            excess, shape = (statistic - self.tail_start) / self.tail_scale, self.tail_shape
            if shape < SHAPE_EPSILON:
                return self.tail_share * math.exp(-excess)
            return self.tail_share * math.exp(-math.log1p(shape * excess) / shape)
        total = self.sorted_draws.size
        at_least = total - int(self.sorted_draws.searchsorted(statistic, side="left"))
        return (1 + at_least) / (total + 1)

    def p_values(self, statistics: np.ndarray) -> np.ndarray:
        """:meth:`p_value` of each of ``statistics`` (1-D)."""
        return np.array([self.p_value(statistic) for statistic in np.asarray(statistics).tolist()])

    def quantile(self, level: float) -> float:
        """The null's quantile at ``level`` (from the draws), for reports."""
        return float(np.quantile(self.sorted_draws, level))


# --- Jensen-Shannon ----------------------------------------------------------------------


def jensenshannon_base2(reference_shares: np.ndarray, current_shares: np.ndarray) -> np.ndarray:
    """Jensen-Shannon distance in base 2 between share vectors, along the last axis.

    ``sqrt((KL(p || m) + KL(q || m)) / 2)`` with ``m = (p + q) / 2`` and logarithms in base
    2, so that it lies in [0, 1]: the definition of
    ``scipy.spatial.distance.jensenshannon(p, q, base=2)``. Terms with a zero share are 0.
    """
    middle = 0.5 * (reference_shares + current_shares)
    divergence = special.rel_entr(reference_shares, middle).sum(axis=-1)
    divergence = divergence + special.rel_entr(current_shares, middle).sum(axis=-1)
    # Rounding can leave a divergence of -1e-17 for identical histograms.
    return np.sqrt(np.maximum(divergence / (2.0 * _LOG_2), 0.0))


def quantile_bin_positions(size: int, bins: int) -> np.ndarray:
    """Ranks (0-based) of the order statistics that cut ``size`` sorted values into bins.

    The first is the minimum and the last the maximum, so the bins span the reference and
    the overflow bins beyond them hold only new extremes.
    """
    return np.unique(np.round(np.linspace(0.0, size - 1.0, bins + 1)).astype(np.int64))


def quantized_shares(inner_counts: np.ndarray) -> tuple[int, ...]:
    """A reference's inner bin shares in units of ``1 / SHARE_RESOLUTION``: the null's key."""
    shares = inner_counts / inner_counts.sum()
    return tuple(np.round(shares * SHARE_RESOLUTION).astype(np.int64).tolist())


@functools.lru_cache(maxsize=256)
def jensenshannon_null(
    shares: tuple[int, ...],
    reference_size: int,
    window_size: int,
    draws: int = JENSENSHANNON_NULL_DRAWS,
) -> NullDistribution:
    """Null distribution of the Jensen-Shannon distance over a reference's quantile bins.

    Parameters
    ----------
    shares
        The reference's inner bin shares, from :func:`quantized_shares`.
    reference_size, window_size
        Sizes of the two samples.
    draws
        Number of simulated windows.

    Returns
    -------
    NullDistribution
        Cached per argument tuple.
    """
    inner_shares = np.array(shares, dtype=np.float64) / sum(shares)
    # Dirichlet weights: the reference values in each bin (at least one), and one gap below
    # the minimum and one above the maximum.
    gap_weights = np.concatenate(([1.0], np.maximum(inner_shares * reference_size, 1.0), [1.0]))
    generator = np.random.default_rng([NULL_SEED, reference_size, window_size, *shares, draws])
    masses = generator.dirichlet(gap_weights, size=draws)
    window_counts = generator.multinomial(window_size, masses)
    reference_shares = np.concatenate(([0.0], inner_shares, [0.0]))
    distances = jensenshannon_base2(reference_shares, window_counts / window_size)
    return NullDistribution(distances)


# --- Wasserstein -------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def probability_grid(reference_size: int) -> np.ndarray:
    """Probabilities at which a reference's quantile function is tabulated."""
    logit_reach = math.log(GRID_TAIL_REACH * (reference_size + 1))
    body = np.linspace(0.0, 1.0, GRID_UNIFORM_CELLS + 1)[1:-1]
    tails = special.expit(np.linspace(-logit_reach, logit_reach, GRID_LOGIT_CELLS + 1))
    grid = np.unique(np.concatenate((body, tails)))
    grid.setflags(write=False)
    return grid


def _tail_points(reference_size: int) -> int:
    """How many extreme order statistics a tail fit uses, 0 when there are too few."""
    wanted = min(max(round(math.sqrt(reference_size)), TAIL_FIT_MIN_POINTS), TAIL_FIT_MAX_POINTS)
    available = (reference_size - 1) // 2
    return min(wanted, available) if available >= 2 else 0


def reference_quantile_steps(sorted_values: np.ndarray) -> np.ndarray:
    """Increments of a reference's quantile function over the probability grid.

    Inside the reference, the quantile function interpolates the order statistics at
    plotting positions ``(i - 0.5) / n``. Beyond the ``k``-th most extreme value at each
    end (``k`` about ``sqrt(n)``), it follows a generalized Pareto tail fitted to the ``k``
    values further out, its shape widened by ``TAIL_SHAPE_MARGIN``, so that it extends past
    the reference's minimum and maximum.

    Parameters
    ----------
    sorted_values
        The reference, sorted ascending.

    Returns
    -------
    numpy.ndarray
        One increment per cell of :func:`probability_grid`, all non-negative.
    """
    size = sorted_values.size
    grid = probability_grid(size)
    # Linear interpolation between order statistics at plotting positions (i - 0.5) / n,
    # flat beyond the first and last (the tails below replace those stretches).
    position = np.clip(grid * size - 0.5, 0.0, size - 1.0)
    lower = position.astype(np.int64)
    upper = np.minimum(lower + 1, size - 1)
    quantiles = sorted_values[lower] + (position - lower) * (
        sorted_values[upper] - sorted_values[lower]
    )
    tail_points = _tail_points(size)
    if tail_points:
        tail_probability = (tail_points + 0.5) / size
        upper_start = sorted_values[size - 1 - tail_points]
        shape, scale = _widened_tail(
            *fit_generalized_pareto(sorted_values[size - tail_points :] - upper_start)
        )
        upper = grid > 1.0 - tail_probability
        quantiles[upper] = upper_start + _pareto_excess_quantile(
            tail_probability / (1.0 - grid[upper]), shape, scale
        )
        lower_start = sorted_values[tail_points]
        shape, scale = _widened_tail(
            *fit_generalized_pareto(lower_start - sorted_values[:tail_points])
        )
        lower = grid < tail_probability
        quantiles[lower] = lower_start - _pareto_excess_quantile(
            tail_probability / grid[lower], shape, scale
        )
    return np.maximum(np.diff(quantiles), 0.0)


@functools.lru_cache(maxsize=64)
def _wasserstein_design(reference_size: int, window_size: int, draws: int) -> np.ndarray:
    """Mean ``|U_n - V_m|`` over each grid cell, for ``draws`` pairs of uniform samples.

    Both samples are drawn as multinomial counts over the grid's cells (including the two
    beyond its ends); the mean over a cell is the trapezoid of the values at its ends,
    which is unbiased when a cell holds at most one jump.
    """
    grid = probability_grid(reference_size)
    cell_masses = np.diff(np.concatenate(([0.0], grid, [1.0])))
    generator = np.random.default_rng([NULL_SEED, reference_size, window_size, draws])
    reference_cdf = np.cumsum(generator.multinomial(reference_size, cell_masses, size=draws), 1)
    window_cdf = np.cumsum(generator.multinomial(window_size, cell_masses, size=draws), 1)
    gaps = np.abs(reference_cdf[:, :-1] / reference_size - window_cdf[:, :-1] / window_size)
    # Single precision halves the memory a null streams through; the draws need no more.
    design = (0.5 * (gaps[:, :-1] + gaps[:, 1:])).astype(np.float32)
    design.setflags(write=False)
    return design


def wasserstein_nulls(
    quantile_steps: np.ndarray,
    scales: np.ndarray,
    reference_size: int,
    window_size: int,
    draws: int = WASSERSTEIN_NULL_DRAWS,
) -> list[NullDistribution]:
    """Null distributions of the normalised Wasserstein distance, one per reference feature.

    Parameters
    ----------
    quantile_steps
        Shape ``(features, cells)``: each feature's :func:`reference_quantile_steps`, all
        from references of ``reference_size`` values.
    scales
        What each feature's distance is divided by (its floored standard deviation).
    reference_size, window_size
        Sizes of the two samples.
    draws
        Number of simulated windows.
    """
    design = _wasserstein_design(reference_size, window_size, draws)
    # einsum rather than the matrix product: BLAS would spread this small product over
    # threads, which stall when the job's other work holds the cores.
    distances = np.einsum("dc,fc->df", design, np.asarray(quantile_steps, dtype=np.float32))
    distances = distances / np.asarray(scales, dtype=np.float64)
    return [NullDistribution(column) for column in distances.T]


# --- Kolmogorov-Smirnov ------------------------------------------------------------------


def ks_effective_size(reference_size: int, window_size: int) -> int:
    """``round(n m / (n + m))``, rounded half to even as scipy's ``np.round`` does.

    One value against one value rounds 0.5 down to 0, where the distribution is undefined
    (scipy returns NaN); that case gets 1, the smallest size it has.
    """
    product = reference_size * window_size
    return max(round(product / (reference_size + window_size)), 1)


@functools.lru_cache(maxsize=16_384)
def _kolmogorov_survival(statistic: float, effective_size: int) -> float:
    return float(np.clip(stats.kstwo.sf(statistic, effective_size), 0.0, 1.0))


def ks_p_value(statistic: float, reference_size: int, window_size: int) -> float:
    """Asymptotic two-sided p-value of a two-sample Kolmogorov-Smirnov statistic.

    Exactly ``scipy.stats.ks_2samp(..., method='asymp').pvalue``: the survival function of
    the one-sample statistic's distribution ``kstwo`` at ``round(n m / (n + m))``. The
    statistic only takes values ``i / n - j / m``, so a stream of windows keeps meeting the
    same ones; each is computed once and remembered.
    """
    return _kolmogorov_survival(float(statistic), ks_effective_size(reference_size, window_size))
