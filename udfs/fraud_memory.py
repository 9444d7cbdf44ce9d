"""What a key has recently learned from fraud labels, for the rule that recognises repeat fraud.

The offline model knows the fraud of its training data; when fraudsters change strategy it can
miss the new pattern for as long as it takes to retrain. Labels close that gap in the stream:
confirmed frauds arrive with (or after) their transactions, and :class:`FraudMemory` keeps, per
key, how many labelled frauds and legitimate transactions fell into each coarse cell of amount
and share of the origin's balance taken. A cell where recent labelled traffic was mostly fraud
marks new transactions in it. Counts fade by :data:`FADE_PER_WINDOW` with every window, so a
pattern that stops being fraud stops being marked.

A window is scored with what was learned before it and learned from afterwards, so a label
never marks its own transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Cells: the amount's decade (PaySim amounts stay below 10^10) times how much of the origin's
# balance it took: no balance to take from, under half, half to 90%, 90% to almost all, all of
# it (to a cent of rounding either side), more than there was.
AMOUNT_DECADES = 10
SHARE_EDGES = (0.5, 0.9, 0.999, 1.001)
NO_BALANCE = 0
SHARE_BUCKETS = len(SHARE_EDGES) + 2
CELLS = AMOUNT_DECADES * SHARE_BUCKETS

# A memory of about ten windows: after that a count has faded to a third.
FADE_PER_WINDOW = 0.9
# A cell marks transactions once it holds this many (faded) frauds, and they are the majority
# of its labelled traffic; one pseudo-transaction of legitimate traffic damps small counts.
MIN_FRAUDS = 3.0
MIN_FRAUD_SHARE = 0.5
LEGITIMATE_PRIOR = 1.0


def cells_of(columns):
    """Each transaction's cell, from its amount and the share of its origin's balance."""
    amount = columns["amount"]
    old_balance = columns["oldbalanceOrg"]
    decade = np.clip(np.floor(np.log10(amount + 1.0)), 0, AMOUNT_DECADES - 1).astype(np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(old_balance > 0, amount / old_balance, 0.0)
    share_bucket = np.where(old_balance > 0, 1 + np.searchsorted(SHARE_EDGES, share), NO_BALANCE)
    return decade * SHARE_BUCKETS + share_bucket


@dataclass
class FraudMemory:
    """Faded counts of labelled legitimate transactions and frauds per cell of one key."""

    legitimate: np.ndarray = field(default_factory=lambda: np.zeros(CELLS))
    frauds: np.ndarray = field(default_factory=lambda: np.zeros(CELLS))

    def marks(self, columns):
        """Whether each transaction falls in a cell that recent labels say is mostly fraud."""
        share = self.frauds / (self.frauds + self.legitimate + LEGITIMATE_PRIOR)
        fraud_cell = (self.frauds >= MIN_FRAUDS) & (share >= MIN_FRAUD_SHARE)
        return fraud_cell[cells_of(columns)]

    def learn(self, columns):
        """Fade what is known by one window and add the labelled transactions of ``columns``."""
        self.legitimate *= FADE_PER_WINDOW
        self.frauds *= FADE_PER_WINDOW
        labels = columns["isFraud"]
        cells = cells_of(columns)
        self.legitimate += np.bincount(cells[labels == 0], minlength=CELLS)
        self.frauds += np.bincount(cells[labels == 1], minlength=CELLS)
