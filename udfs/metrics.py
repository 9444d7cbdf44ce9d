"""Detection metrics against fraud labels, mergeable across windows, keys and jobs.

A bank reads a fraud engine by accuracy, precision, recall, F1 and the area under the
precision-recall curve (AUPRC, the average precision: the mean of the precision reached at each
fraud, ranking transactions by risk score). The streaming job cannot keep every score it ever
gave, so each window carries a :class:`ScoreCounts`: its confusion counts at the flag threshold
and how many frauds and legitimate transactions fell in each score bin of width
:data:`SCORE_RESOLUTION`. Counts add up; the metrics of any set of windows (a key, a type, the
whole run) come from the sum, and an AUPRC computed from bins equals the exact one on scores
rounded to the bin width.

Transactions without a label (see :data:`udfs.transactions.UNLABELLED`) count nowhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Risk scores are compared at a thousandth: finer differences carry no meaning for an analyst
# and would make the bins of a long run grow without bound.
SCORE_RESOLUTION = 1e-3
BIN_COUNT = int(round(1 / SCORE_RESOLUTION)) + 1

METRIC_NAMES = ("accuracy", "precision", "recall", "f1", "auprc")


def _ratio(numerator, denominator):
    return numerator / denominator if denominator else None


@dataclass
class ScoreCounts:
    """Confusion counts at the flag threshold and per-bin counts of frauds and legitimate rows.

    ``bins`` maps a score bin (``round(score / SCORE_RESOLUTION)``) to ``[legitimate, frauds]``.
    """

    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0
    true_negatives: int = 0
    bins: dict = field(default_factory=dict)

    @classmethod
    def of(cls, labels, scores, flagged):
        """Counts of one batch: ``labels`` 1, 0 or unlabelled, ``flagged`` the engine's flags."""
        labels = np.asarray(labels)
        labelled = (labels == 0) | (labels == 1)
        fraud = labels[labelled] == 1
        flagged = np.asarray(flagged, dtype=bool)[labelled]
        score_bins = np.clip(
            np.rint(np.asarray(scores)[labelled] / SCORE_RESOLUTION), 0, BIN_COUNT - 1
        ).astype(np.int64)
        legitimate_per_bin = np.bincount(score_bins[~fraud], minlength=BIN_COUNT)
        fraud_per_bin = np.bincount(score_bins[fraud], minlength=BIN_COUNT)
        occupied = np.flatnonzero(legitimate_per_bin + fraud_per_bin)
        return cls(
            true_positives=int((fraud & flagged).sum()),
            false_positives=int((~fraud & flagged).sum()),
            false_negatives=int((fraud & ~flagged).sum()),
            true_negatives=int((~fraud & ~flagged).sum()),
            bins={int(b): [int(legitimate_per_bin[b]), int(fraud_per_bin[b])] for b in occupied},
        )

    def add(self, other):
        """Add ``other``'s counts to these, in place; returns self."""
        self.true_positives += other.true_positives
        self.false_positives += other.false_positives
        self.false_negatives += other.false_negatives
        self.true_negatives += other.true_negatives
        for score_bin, (legitimate, frauds) in other.bins.items():
            counts = self.bins.setdefault(int(score_bin), [0, 0])
            counts[0] += legitimate
            counts[1] += frauds
        return self

    @property
    def labelled(self):
        return (
            self.true_positives + self.false_positives + self.false_negatives + self.true_negatives
        )

    @property
    def frauds(self):
        return self.true_positives + self.false_negatives

    def auprc(self):
        """Average precision over the score bins, highest score first; None without frauds."""
        if not self.frauds:
            return None
        ordered = sorted(self.bins.items(), key=lambda item: -int(item[0]))
        counts = np.array([pair for _, pair in ordered], dtype=np.float64).reshape(-1, 2)
        legitimate_above, frauds_above = np.cumsum(counts, axis=0).T
        precision = frauds_above / (frauds_above + legitimate_above)
        return float((counts[:, 1] / self.frauds * precision).sum())

    def metrics(self):
        """Accuracy, precision, recall, F1 and AUPRC, with the counts behind them.

        A ratio whose denominator is zero (precision with nothing flagged, recall without a
        fraud) is None rather than a made-up 0 or 1.
        """
        tp, fp, fn, tn = (
            self.true_positives,
            self.false_positives,
            self.false_negatives,
            self.true_negatives,
        )
        return {
            "labelled": self.labelled,
            "frauds": self.frauds,
            "flagged": tp + fp,
            "true_positives": tp,
            "false_positives": fp,
            "false_negatives": fn,
            "true_negatives": tn,
            "accuracy": _ratio(tp + tn, self.labelled),
            "precision": _ratio(tp, tp + fp),
            "recall": _ratio(tp, tp + fn),
            "f1": _ratio(2 * tp, 2 * tp + fp + fn),
            "auprc": self.auprc(),
        }

    def to_dict(self):
        return {
            "true_positives": self.true_positives,
            "false_positives": self.false_positives,
            "false_negatives": self.false_negatives,
            "true_negatives": self.true_negatives,
            "bins": {str(b): counts for b, counts in sorted(self.bins.items())},
        }

    @classmethod
    def from_dict(cls, data):
        return cls(
            true_positives=data["true_positives"],
            false_positives=data["false_positives"],
            false_negatives=data["false_negatives"],
            true_negatives=data["true_negatives"],
            bins={int(b): list(counts) for b, counts in data["bins"].items()},
        )


def classification_metrics(labels, scores, threshold):
    """The metrics of flagging every row whose score reaches ``threshold``."""
    scores = np.asarray(scores)
    return ScoreCounts.of(labels, scores, scores >= threshold).metrics()
