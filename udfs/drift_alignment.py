"""A window's values, validated and placed against their references, ready for the tests.

A :class:`NumericWindow` holds one or more numeric features of a window as rows of one 2-D
array, sorted, with each row's ranks in its reference computed once and shared by every
test: the tests then make their numpy calls once for all features rather than once per
feature. A :class:`CategoricalWindow` holds one categorical feature's counts aligned with
its reference's categories.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from udfs.drift_reference import CategoricalReference, NumericReference, ReferenceStack
from udfs.drift_validation import category_counts, numeric_values


class NumericWindow:
    """Numeric features of one window, a row each, sorted and placed in their references.

    Parameters
    ----------
    stack
        The references of the rows, stacked.
    columns
        One 1-D array per reference, all of one length.
    arguments
        Names of the columns, quoted in error messages.

    Attributes
    ----------
    stack : ReferenceStack
        The rows' references.
    sorted_values : numpy.ndarray
        Shape ``(features, window size)``, each row ascending.
    """

    __slots__ = ("stack", "sorted_values", "_ranks_left", "_ranks_right")

    def __init__(self, stack: ReferenceStack, columns: Sequence[object], arguments: Sequence[str]):
        self.stack = stack
        self.sorted_values = np.sort(self._checked_rows(columns, arguments), axis=1)
        self._ranks_left: np.ndarray | None = None
        self._ranks_right: np.ndarray | None = None

    @staticmethod
    def _checked_rows(columns: Sequence[object], arguments: Sequence[str]) -> np.ndarray:
        """The columns as float64 rows, validated; a bad column is named in the error."""
        try:
            rows = np.stack([np.asarray(values) for values in columns])
        except ValueError:
            rows = None  # ragged or otherwise unstackable: the column checks below say why
        if (
            rows is not None
            and rows.ndim == 2
            and rows.shape[1] > 0
            and rows.dtype.kind in "iuf"
            and np.isfinite(rows).all()
        ):
            return rows.astype(np.float64, copy=False)
        # Something is wrong: check column by column for a message that names the culprit.
        checked = [
            numeric_values(values, argument)
            for values, argument in zip(columns, arguments, strict=True)
        ]
        lengths = {argument: row.size for argument, row in zip(arguments, checked, strict=True)}
        raise ValueError(f"window columns must all have the same length; got {lengths}")

    @classmethod
    def single(
        cls, reference: NumericReference, values: object, argument: str = "current"
    ) -> NumericWindow:
        """A window of one feature against one reference."""
        return cls(ReferenceStack((reference,)), [values], [argument])

    @property
    def references(self) -> tuple[NumericReference, ...]:
        return self.stack.references

    @property
    def size(self) -> int:
        """Rows of the window (values per feature)."""
        return int(self.sorted_values.shape[1])

    def _rank(self) -> None:
        stack = self.stack
        left = np.empty(self.sorted_values.shape, dtype=np.int64)
        for row in range(left.shape[0]):
            left[row] = stack.sorted_row(row).searchsorted(self.sorted_values[row], "left")
        # The ranks differ only where a value equals a reference value: there the tables say
        # how many reference values are at or below it. Values above the maximum (left == n)
        # are compared with the maximum, which they cannot equal.
        entry = np.minimum(left, stack.int_sizes[:, np.newaxis] - 1)
        entry += stack.offsets[:, np.newaxis]
        tied = stack.flat_sorted[entry] == self.sorted_values
        right = left.copy()
        right[tied] = stack.flat_at_or_below[entry[tied]]
        self._ranks_left, self._ranks_right = left, right

    def rank_counts(self, ranks: np.ndarray, bounds: np.ndarray) -> np.ndarray:
        """Per row, how many of ``ranks`` are at most each of ``bounds`` (same rows).

        Each row of ``ranks`` is sorted; shifted by a stride that keeps rows apart, they
        form one sorted array, so one ``searchsorted`` answers for every row.
        """
        rows = np.arange(ranks.shape[0])[:, np.newaxis]
        shift = rows * self.stack.rank_stride
        found = (ranks + shift).ravel().searchsorted((bounds + shift).ravel(), "right")
        return found.reshape(bounds.shape) - rows * ranks.shape[1]

    @property
    def ranks_left(self) -> np.ndarray:
        """For each value, how many of its reference's values are strictly below it."""
        if self._ranks_left is None:
            self._rank()
        return self._ranks_left

    @property
    def ranks_right(self) -> np.ndarray:
        """For each value, how many of its reference's values are at or below it."""
        if self._ranks_right is None:
            self._rank()
        return self._ranks_right


class CategoricalWindow:
    """One categorical feature of a window, its counts aligned with its reference's.

    Parameters
    ----------
    reference
        The feature's reference.
    values
        The window's 1-D values.
    argument
        Name of the column, quoted in error messages.

    Attributes
    ----------
    categories : tuple of str
        The reference's categories, then the window's unseen ones, sorted.
    reference_counts, current_counts : numpy.ndarray
        Counts over ``categories`` (int64).
    """

    __slots__ = ("reference", "categories", "reference_counts", "current_counts")

    def __init__(self, reference: CategoricalReference, values: object, argument: str = "current"):
        self.reference = reference
        categories, counts = category_counts(values, argument, expected=reference.categories)
        self.categories = categories
        self.current_counts = counts
        unseen = len(categories) - len(reference.categories)
        self.reference_counts = np.concatenate((reference.counts, np.zeros(unseen, dtype=np.int64)))

    @property
    def size(self) -> int:
        """Rows of the window."""
        return int(self.current_counts.sum())


FeatureWindow = NumericWindow | CategoricalWindow
