"""What the drift tests keep of a reference sample, computed once per reference.

A streaming job compares every window of a key against that key's reference. Sorting the
reference, cutting its quantile bins and fitting its tails are done once, when the reference
changes, and kept as a :class:`ReferenceSummary`: a mapping from feature name to a
:class:`NumericReference` or :class:`CategoricalReference`. The summary serializes to a
compact byte string (:meth:`ReferenceSummary.to_bytes`) that fits in one piece of Flink
keyed state and reads back without copying (:meth:`ReferenceSummary.from_bytes`).

The sorted values are kept whole, so that the Kolmogorov-Smirnov and Wasserstein results
are exact rather than read off a sketch; everything else is a few hundred numbers.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator, Mapping
from typing import ClassVar, NamedTuple

import numpy as np

from udfs.drift_calibration import (
    WASSERSTEIN_NULL_DRAWS,
    NullDistribution,
    jensenshannon_null,
    quantile_bin_positions,
    quantized_shares,
    reference_quantile_steps,
    wasserstein_nulls,
)
from udfs.drift_validation import (
    CATEGORICAL,
    NUMERIC,
    category_counts,
    feature_kind,
    numeric_values,
    positive_integer,
)

# Quantile bins between the reference's minimum and maximum, before the two overflow bins.
# Ten keeps the Jensen-Shannon noise floor of a 500-row window against a 5000-row reference
# (median 0.060, 99th percentile 0.092) below the default threshold of 0.1; at 30 bins the
# median alone is 0.107.
DEFAULT_BINS = 10
# Floor of the standard deviation that normalises the Wasserstein distance, in the feature's
# unit: the floor Evidently applies, so that a constant reference does not divide by zero.
STD_FLOOR = 0.001

_MAGIC = b"DRFTSUM1"
_HEADER_LENGTH = struct.Struct("<I")
# Arrays start on 8-byte boundaries so that numpy can view float64 data in place.
_ALIGNMENT = 8


def _histogram(sorted_values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts of sorted values in the bins of ``edges`` plus an overflow bin at each end.

    The inner bins follow ``numpy.histogram``: half-open ``[a, b)`` except the last, which is
    closed. The first count is of values below ``edges[0]``, the last of values above
    ``edges[-1]``.
    """
    below_edges = np.searchsorted(sorted_values, edges[:-1], side="left")
    up_to_top = np.searchsorted(sorted_values, edges[-1:], side="right")
    cumulative = np.concatenate(([0], below_edges, up_to_top, [sorted_values.size]))
    return np.diff(cumulative)


class ValueTables(NamedTuple):
    """Tables over a sorted reference ``r_0 <= ... <= r_(n-1)``, one entry per value.

    Attributes
    ----------
    integral : numpy.ndarray
        ``A(r_i)``, where ``A(x)`` is the integral of ``F_ref`` up to ``x`` (0 at ``r_0``).
        From ``r_i`` to the next value ``A(x) = A(r_i) + k / n (x - r_i)``, with ``k`` the
        number of reference values at or below ``x``.
    at_or_below : numpy.ndarray
        How many reference values are at or below ``r_i`` (more than ``i + 1`` under ties).
    """

    integral: np.ndarray
    at_or_below: np.ndarray


class NumericReference:
    """Summary of one numeric feature of a reference sample.

    Build with :meth:`from_values`; the constructor takes already computed parts.

    Attributes
    ----------
    sorted_values : numpy.ndarray
        The reference's values, ascending (float64).
    bin_edges : numpy.ndarray
        Distinct values at the reference's quantiles, from its minimum to its maximum. A
        constant reference has the two edges ``[c, c]``: one closed bin.
    bin_counts : numpy.ndarray
        Reference counts in the bins of ``bin_edges``, with the two overflow bins (always 0
        for the reference itself) first and last.
    std : float
        Population standard deviation (``ddof=0``).
    quantile_steps : numpy.ndarray
        Increments of the tail-extended quantile function over the probability grid of the
        Wasserstein null (see :mod:`udfs.drift_calibration`).
    """

    kind: ClassVar[str] = NUMERIC
    __slots__ = (
        "sorted_values",
        "bin_edges",
        "bin_counts",
        "std",
        "quantile_steps",
        "_wasserstein_nulls",
        "_value_tables",
        "_crossing_tables",
    )

    def __init__(
        self,
        sorted_values: np.ndarray,
        bin_edges: np.ndarray,
        bin_counts: np.ndarray,
        std: float,
        quantile_steps: np.ndarray,
    ):
        self.sorted_values = sorted_values
        self.bin_edges = bin_edges
        self.bin_counts = bin_counts
        self.std = float(std)
        self.quantile_steps = quantile_steps
        # Derived tables, built on first use and kept for as long as the reference lives
        # (those that depend on the window size, per size); they are not serialized.
        self._wasserstein_nulls: dict[tuple[int, int], NullDistribution] = {}
        self._value_tables: ValueTables | None = None
        self._crossing_tables: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    @classmethod
    def from_values(
        cls, values: object, bins: int = DEFAULT_BINS, argument: str = "reference"
    ) -> NumericReference:
        """Summarise a numeric reference sample.

        Parameters
        ----------
        values
            1-D array of finite numbers, at least one.
        bins
            Number of quantile bins between the minimum and the maximum. Ties can merge
            bins, and a reference with fewer distinct values gets fewer.
        argument
            Name quoted in error messages.
        """
        bins = positive_integer(bins, "bins")
        sorted_values = np.sort(numeric_values(values, argument))
        edges = np.unique(sorted_values[quantile_bin_positions(sorted_values.size, bins)])
        if edges.size == 1:
            edges = np.repeat(edges, 2)
        return cls(
            sorted_values=sorted_values,
            bin_edges=edges,
            bin_counts=_histogram(sorted_values, edges),
            std=float(sorted_values.std()),
            quantile_steps=reference_quantile_steps(sorted_values),
        )

    @property
    def size(self) -> int:
        """Number of reference values."""
        return int(self.sorted_values.size)

    @property
    def inner_bins(self) -> int:
        """Number of bins between the minimum and the maximum."""
        return int(self.bin_edges.size - 1)

    @property
    def scale(self) -> float:
        """Standard deviation floored at ``STD_FLOOR``: the Wasserstein normaliser."""
        return max(self.std, STD_FLOOR)

    def histogram(self, sorted_current: np.ndarray) -> np.ndarray:
        """Counts of sorted current values in this reference's bins, overflow included."""
        return _histogram(sorted_current, self.bin_edges)

    def jensenshannon_null(self, window_size: int) -> NullDistribution:
        """Null distribution of the Jensen-Shannon distance for windows of this size."""
        return jensenshannon_null(quantized_shares(self.bin_counts[1:-1]), self.size, window_size)

    def wasserstein_null(
        self, window_size: int, draws: int = WASSERSTEIN_NULL_DRAWS
    ) -> NullDistribution:
        """Null distribution of the normalised Wasserstein distance for this window size."""
        key = (window_size, draws)
        null = self._wasserstein_nulls.get(key)
        if null is None:
            (null,) = wasserstein_nulls(
                self.quantile_steps[np.newaxis],
                np.array([self.scale]),
                self.size,
                window_size,
                draws,
            )
            self._wasserstein_nulls[key] = null
        return null

    @property
    def value_tables(self) -> ValueTables:
        """Per-value tables of the sorted reference (see :class:`ValueTables`)."""
        if self._value_tables is None:
            values = self.sorted_values
            shares = np.arange(1, self.size) / self.size
            integral = np.concatenate(([0.0], np.cumsum(shares * np.diff(values))))
            # Where each run of equal values ends: the first index after a change, and n.
            run_starts = np.flatnonzero(values[1:] != values[:-1]) + 1
            run_ends = np.concatenate((run_starts, [self.size]))
            run_lengths = np.diff(np.concatenate(([0], run_ends)))
            self._value_tables = ValueTables(integral, np.repeat(run_ends, run_lengths))
        return self._value_tables

    def crossing_table(self, window_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Where the reference's distribution function reaches each level ``j / m``.

        For ``j = 1 .. m - 1`` (``m`` the window size): the level, the smallest reference
        value ``q`` with ``F_ref(q) >= j / m``, and ``A(q)`` (see :class:`ValueTables`).
        """
        table = self._crossing_tables.get(window_size)
        if table is None:
            steps = np.arange(1, window_size)
            # Smallest k with (k + 1) / n >= j / m, in integers: ceil(j n / m) - 1.
            crossings = (steps * self.size + window_size - 1) // window_size - 1
            integral = self.value_tables.integral
            table = (steps / window_size, self.sorted_values[crossings], integral[crossings])
            self._crossing_tables[window_size] = table
        return table

    def calibrate(self, window_size: int) -> None:
        """Compute the nulls for windows of ``window_size`` now rather than on first use."""
        window_size = positive_integer(window_size, "window_size")
        self.jensenshannon_null(window_size)
        self.wasserstein_null(window_size)

    def __repr__(self) -> str:
        return (
            f"NumericReference(size={self.size}, inner_bins={self.inner_bins}, std={self.std:.6g})"
        )


class CategoricalReference:
    """Summary of one categorical feature of a reference sample.

    Attributes
    ----------
    categories : tuple of str
        The categories seen, sorted.
    counts : numpy.ndarray
        How often each was seen (int64), aligned with ``categories``.
    """

    kind: ClassVar[str] = CATEGORICAL
    __slots__ = ("categories", "counts", "_index")

    def __init__(self, categories: tuple[str, ...], counts: np.ndarray):
        self.categories = tuple(categories)
        self.counts = counts
        self._index = {category: position for position, category in enumerate(self.categories)}

    @classmethod
    def from_values(cls, values: object, argument: str = "reference") -> CategoricalReference:
        """Summarise a categorical reference sample (strings, integer codes or booleans)."""
        categories, counts = category_counts(values, argument)
        return cls(categories, counts)

    @property
    def size(self) -> int:
        """Number of reference values."""
        return int(self.counts.sum())

    def position(self, category: str) -> int | None:
        """Index of ``category`` in :attr:`categories`, or None if it was never seen."""
        return self._index.get(category)

    def __repr__(self) -> str:
        return f"CategoricalReference(size={self.size}, categories={len(self.categories)})"


FeatureReference = NumericReference | CategoricalReference


class ReferenceStack:
    """Tables of several numeric references side by side, for tests run on all at once.

    Comparing a window's numeric features one by one costs a few dozen small numpy calls
    each; with the references' tables stacked (ragged ones flattened with row offsets, bin
    layouts padded with empty bins), every test makes its calls once for all features.

    Parameters
    ----------
    references
        The numeric references, in the order of the window's rows.

    Attributes
    ----------
    int_sizes, sizes : numpy.ndarray
        Reference sizes, one per row, as integers and as floats.
    offsets : numpy.ndarray
        Where each row's reference starts in the flat arrays.
    flat_sorted, flat_integral, flat_at_or_below : numpy.ndarray
        The rows' sorted values and :class:`ValueTables`, concatenated. The tests read the
        references from here only, so that a window touches as little memory as it can.
    reference_shares : numpy.ndarray
        Shape ``(rows, width)``: each row's bin shares laid out as ``[below the minimum,
        inner bins..., empty padding..., above the maximum]``.
    edge_ranks : numpy.ndarray
        Shape ``(rows, width - 2)``: for inner edge ``j`` of a row, how many reference values
        are below it; a window value is below the edge exactly when at most that many
        reference values are at or below it. Padding columns hold the reference size.
    padding : numpy.ndarray
        Boolean, same shape: which columns of ``edge_ranks`` are padding.
    """

    __slots__ = (
        "references",
        "int_sizes",
        "sizes",
        "offsets",
        "flat_sorted",
        "flat_integral",
        "flat_at_or_below",
        "last_values",
        "last_integrals",
        "reference_shares",
        "edge_ranks",
        "padding",
        "rank_stride",
        "_crossings",
        "_nulls",
    )

    def __init__(self, references: tuple[NumericReference, ...]):
        self.references = references
        int_sizes = np.array([reference.size for reference in references])
        self.int_sizes = int_sizes
        self.sizes = int_sizes.astype(np.float64)
        tables = [reference.value_tables for reference in references]
        self.offsets = np.concatenate(([0], np.cumsum(int_sizes[:-1])))
        self.flat_sorted = np.concatenate([reference.sorted_values for reference in references])
        self.flat_integral = np.concatenate([table.integral for table in tables])
        self.flat_at_or_below = np.concatenate([table.at_or_below for table in tables])
        self.last_values = np.array([reference.sorted_values[-1] for reference in references])
        self.last_integrals = np.array([table.integral[-1] for table in tables])
        # Ranks of different rows never meet when each row is shifted by this much.
        self.rank_stride = int(int_sizes.max()) + 2

        inner_width = max(reference.inner_bins for reference in references)
        self.reference_shares = np.zeros((len(references), inner_width + 2))
        self.edge_ranks = np.repeat(int_sizes[:, np.newaxis], inner_width, axis=1)
        self.padding = np.ones((len(references), inner_width), dtype=bool)
        for row, reference in enumerate(references):
            inner = reference.inner_bins
            self.reference_shares[row, 1 : inner + 1] = reference.bin_counts[1:-1] / reference.size
            self.edge_ranks[row, :inner] = reference.sorted_values.searchsorted(
                reference.bin_edges[:-1], "left"
            )
            self.padding[row, :inner] = False
        self._crossings: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._nulls: dict[tuple[str, int], tuple[NullDistribution, ...]] = {}

    def jensenshannon_nulls(self, window_size: int) -> tuple[NullDistribution, ...]:
        """Each row's :meth:`NumericReference.jensenshannon_null`, kept per window size."""
        return self._nulls_of(NumericReference.jensenshannon_null, window_size)

    def wasserstein_nulls(self, window_size: int) -> tuple[NullDistribution, ...]:
        """Each row's :meth:`NumericReference.wasserstein_null`, kept per window size."""
        return self._nulls_of(NumericReference.wasserstein_null, window_size)

    def _nulls_of(self, null_of, window_size: int) -> tuple[NullDistribution, ...]:
        key = (null_of.__name__, window_size)
        if key not in self._nulls:
            self._nulls[key] = tuple(null_of(row, window_size) for row in self.references)
        return self._nulls[key]

    def sorted_row(self, row: int) -> np.ndarray:
        """The sorted reference of ``row``, a view of :attr:`flat_sorted`."""
        start = self.offsets[row]
        return self.flat_sorted[start : start + self.int_sizes[row]]

    def crossings(self, window_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every reference's :meth:`NumericReference.crossing_table`, stacked by row."""
        table = self._crossings.get(window_size)
        if table is None:
            tables = [reference.crossing_table(window_size) for reference in self.references]
            table = (
                tables[0][0],
                np.stack([crossing for _, crossing, _ in tables]),
                np.stack([integral for _, _, integral in tables]),
            )
            self._crossings[window_size] = table
        return table


def _infer_kind(values: np.ndarray) -> str:
    """Numeric for integer and float columns, categorical for the rest."""
    return NUMERIC if values.dtype.kind in "iuf" else CATEGORICAL


class ReferenceSummary(Mapping[str, FeatureReference]):
    """Everything the drift tests need from one reference sample, by feature.

    Parameters
    ----------
    features
        Feature name to :class:`NumericReference` or :class:`CategoricalReference`.

    Examples
    --------
    >>> import numpy as np
    >>> summary = ReferenceSummary.from_columns(
    ...     {"amount": np.arange(100.0), "type": np.array(["A", "B"] * 50)}
    ... )
    >>> summary["amount"].size, summary["type"].categories
    (100, ('A', 'B'))
    >>> ReferenceSummary.from_bytes(summary.to_bytes())["type"].counts.tolist()
    [50, 50]
    """

    def __init__(self, features: Mapping[str, FeatureReference]):
        if not features:
            raise ValueError("features must name at least one feature; got none")
        self._features = dict(features)
        self._stacks: dict[tuple[str, ...], ReferenceStack] = {}

    @classmethod
    def from_columns(
        cls,
        columns: Mapping[str, object],
        kinds: Mapping[str, str] | None = None,
        bins: int = DEFAULT_BINS,
        window_size: int | None = None,
    ) -> ReferenceSummary:
        """Summarise a reference given as columns.

        Parameters
        ----------
        columns
            Feature name to a 1-D array. Columns may differ in length.
        kinds
            Feature name to ``"numeric"`` or ``"categorical"`` for columns whose kind should
            not be inferred; integer and float columns are otherwise numeric and all others
            categorical.
        bins
            Quantile bins per numeric feature (see :data:`DEFAULT_BINS`).
        window_size
            If given, the nulls for windows of this size are computed now, so that the cost
            lands where the reference changes rather than in the first comparison.
        """
        if not isinstance(columns, Mapping) or not columns:
            raise ValueError(
                f"columns must be a non-empty mapping of feature name to values; got {columns!r}"
            )
        kinds = dict(kinds or {})
        unknown = sorted(set(kinds) - set(columns))
        if unknown:
            raise ValueError(f"kinds names features that are not in columns: {unknown}")
        features: dict[str, FeatureReference] = {}
        for name, values in columns.items():
            array = np.asarray(values)
            kind = feature_kind(kinds.get(name, _infer_kind(array)), f"kinds[{name!r}]")
            argument = f"columns[{name!r}]"
            if kind == NUMERIC:
                features[name] = NumericReference.from_values(array, bins, argument)
            else:
                features[name] = CategoricalReference.from_values(array, argument)
        summary = cls(features)
        if window_size is not None:
            summary.calibrate(window_size)
        return summary

    def __getitem__(self, name: str) -> FeatureReference:
        try:
            return self._features[name]
        except KeyError:
            raise KeyError(
                f"feature {name!r} is not in the reference; known: {sorted(self._features)}"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._features)

    def __len__(self) -> int:
        return len(self._features)

    def numeric_stack(self, names: tuple[str, ...]) -> ReferenceStack:
        """The :class:`ReferenceStack` of the numeric features ``names``, kept for reuse."""
        stack = self._stacks.get(names)
        if stack is None:
            references = []
            for name in names:
                reference = self[name]
                if not isinstance(reference, NumericReference):
                    raise ValueError(f"names must all be numeric features; {name!r} is not")
                references.append(reference)
            stack = ReferenceStack(tuple(references))
            self._stacks[names] = stack
        return stack

    def calibrate(self, window_size: int) -> None:
        """Compute every feature's nulls for windows of ``window_size`` now.

        The Wasserstein nulls of numeric features with references of one size come from one
        matrix product.
        """
        window_size = positive_integer(window_size, "window_size")
        by_size: dict[int, list[NumericReference]] = {}
        for reference in self._features.values():
            if isinstance(reference, NumericReference):
                reference.jensenshannon_null(window_size)
                by_size.setdefault(reference.size, []).append(reference)
        for size, references in by_size.items():
            nulls = wasserstein_nulls(
                np.stack([reference.quantile_steps for reference in references]),
                np.array([reference.scale for reference in references]),
                size,
                window_size,
            )
            for reference, null in zip(references, nulls, strict=True):
                reference._wasserstein_nulls[(window_size, WASSERSTEIN_NULL_DRAWS)] = null

    def __repr__(self) -> str:
        described = ", ".join(f"{name}={feature!r}" for name, feature in self.items())
        return f"ReferenceSummary({described})"

    # --- serialization -------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """Serialize to bytes: a JSON header followed by the raw arrays.

        The layout is ``MAGIC``, a little-endian uint32 header length, the UTF-8 JSON
        header, padding to 8 bytes, then each array's bytes, each padded to 8 bytes. Nulls
        computed for window sizes are not kept; they are rebuilt on first use.
        """
        entries: list[dict[str, object]] = []
        blobs: list[bytes] = []
        offset = 0

        def add_array(array: np.ndarray) -> dict[str, object]:
            nonlocal offset
            data = np.ascontiguousarray(array).tobytes()
            padding = -len(data) % _ALIGNMENT
            blobs.append(data + b"\0" * padding)
            spec = {"dtype": array.dtype.str, "length": int(array.size), "offset": offset}
            offset += len(data) + padding
            return spec

        for name, feature in self._features.items():
            if isinstance(feature, NumericReference):
                entries.append(
                    {
                        "name": name,
                        "kind": NUMERIC,
                        "std": feature.std,
                        "sorted_values": add_array(feature.sorted_values),
                        "bin_edges": add_array(feature.bin_edges),
                        "bin_counts": add_array(feature.bin_counts),
                        "quantile_steps": add_array(feature.quantile_steps),
                    }
                )
            else:
                entries.append(
                    {
                        "name": name,
                        "kind": CATEGORICAL,
                        "categories": list(feature.categories),
                        "counts": add_array(feature.counts),
                    }
                )
        header = json.dumps({"features": entries}, separators=(",", ":")).encode()
        header += b" " * (-(len(_MAGIC) + _HEADER_LENGTH.size + len(header)) % _ALIGNMENT)
        return b"".join([_MAGIC, _HEADER_LENGTH.pack(len(header)), header, *blobs])

    @classmethod
    def from_bytes(cls, data: bytes) -> ReferenceSummary:
        """Read a summary written by :meth:`to_bytes`; arrays are read-only views of ``data``.

        Raises
        ------
        ValueError
            If ``data`` does not start with this format's magic bytes or is truncated.
        """
        view = memoryview(data)
        if bytes(view[: len(_MAGIC)]) != _MAGIC:
            raise ValueError(
                f"data must start with {_MAGIC!r} (a serialized ReferenceSummary); got "
                f"{bytes(view[: len(_MAGIC)])!r}"
            )
        start = len(_MAGIC) + _HEADER_LENGTH.size
        if len(view) < start:
            raise ValueError(f"data is truncated: {len(view)} bytes, header needs {start}")
        (header_length,) = _HEADER_LENGTH.unpack_from(view, len(_MAGIC))
        body_start = start + header_length
        header = json.loads(bytes(view[start:body_start]))

        def read_array(spec: dict[str, int | str]) -> np.ndarray:
            begin = body_start + int(spec["offset"])
            dtype = np.dtype(str(spec["dtype"]))
            end = begin + dtype.itemsize * int(spec["length"])
            if end > len(view):
                raise ValueError(f"data is truncated: {len(view)} bytes, an array ends at {end}")
            return np.frombuffer(view[begin:end], dtype=dtype)

        features: dict[str, FeatureReference] = {}
        for entry in header["features"]:
            if entry["kind"] == NUMERIC:
                features[entry["name"]] = NumericReference(
                    sorted_values=read_array(entry["sorted_values"]),
                    bin_edges=read_array(entry["bin_edges"]),
                    bin_counts=read_array(entry["bin_counts"]),
                    std=entry["std"],
                    quantile_steps=read_array(entry["quantile_steps"]),
                )
            else:
                features[entry["name"]] = CategoricalReference(
                    tuple(entry["categories"]), read_array(entry["counts"])
                )
        return cls(features)
