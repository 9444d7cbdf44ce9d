"""Transaction-level fraud evidence and the risk score that combines it with drift.

Each rule is a named, documented check on the transaction's own fields, computed for a whole
window at once; an alert lists the rules that fired as its reasons. The risk score is

    risk = drift_weight * drift_score + model_weight * model_probability + rule_weight * rule_score

with every term in [0, 1]. The drift term tells transactions apart: it is how far a
transaction lies in the tails of its key's reference on the features that drifted in its
window, so that in a drifted window the unusual transactions score high and the ordinary ones
do not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Amounts are in PaySim's currency with two decimals; a cent either way is rounding.
BALANCE_TOLERANCE = 0.01
DRAINABLE_TYPES = ("TRANSFER", "CASH_OUT")
# PaySim names customers C... and merchants M...; a merchant's balance is never tracked.
CUSTOMER_PREFIX = "C"


@dataclass(frozen=True)
class RuleContext:
    """What a rule may know beyond the transactions themselves.

    ``largest_reference_amount`` is the largest amount among the key's reference transactions,
    its recent history; None while the key has no reference yet. ``fraud_memory`` is what the
    key learned from recent fraud labels (:class:`udfs.fraud_memory.FraudMemory`), if anything.
    """

    largest_reference_amount: float | None = None
    fraud_memory: object = None


@dataclass(frozen=True)
class Rule:
    """A named check that marks transactions with a score in [0, 1]: its weight where it fires."""

    name: str
    description: str
    weight: float

    def __call__(self, columns, context):
        return RULE_CHECKS[self.name](columns, context) * self.weight


def _money_leaving(columns):
    return np.isin(columns["type"], DRAINABLE_TYPES) & (columns["amount"] > 0)


def _account_drained(columns, context):
    whole_balance = np.abs(columns["amount"] - columns["oldbalanceOrg"]) <= BALANCE_TOLERANCE
    emptied = columns["newbalanceOrig"] <= BALANCE_TOLERANCE
    return (_money_leaving(columns) & whole_balance & emptied).astype(np.float64)


def _destination_unchanged(columns, context):
    to_customer = np.char.startswith(columns["nameDest"].astype(str), CUSTOMER_PREFIX)
    unchanged = np.abs(columns["newbalanceDest"] - columns["oldbalanceDest"]) <= BALANCE_TOLERANCE
    return (_money_leaving(columns) & to_customer & unchanged).astype(np.float64)


def _amount_beyond_history(columns, context):
    if context.largest_reference_amount is None:
        return np.zeros(len(columns["amount"]))
    return (columns["amount"] > context.largest_reference_amount).astype(np.float64)


def _like_recent_fraud(columns, context):
    if context.fraud_memory is None:
        return np.zeros(len(columns["amount"]))
    return context.fraud_memory.marks(columns).astype(np.float64)


RULE_CHECKS = {
    "account_drained": _account_drained,
    "destination_unchanged": _destination_unchanged,
    "amount_beyond_history": _amount_beyond_history,
    "like_recent_fraud": _like_recent_fraud,
}

# Weights are each rule's evidence on its own. On the bundled PaySim sample, drained accounts
# are 79 of the 84 frauds and no legitimate transaction; an unmoved customer balance marks 37
# of the 41 fraudulent transfers but also 35 legitimate transfers and cash-outs; an amount
# beyond the key's history is rare by construction (about one transaction in the reference
# size) and says only that the amount is new; a cell of mostly labelled fraud is strong evidence
# that fraudsters are repeating a pattern, whether or not the model knows it.
DEFAULT_RULES = (
    Rule(
        "account_drained",
        "TRANSFER or CASH_OUT of the origin's whole balance, leaving it at zero",
        1.0,
    ),
    Rule(
        "destination_unchanged",
        "TRANSFER or CASH_OUT to a customer whose balance did not move: the books do not show "
        "where the money went",
        0.5,
    ),
    Rule(
        "amount_beyond_history",
        "amount larger than any in the key's reference, the transactions it saw most recently",
        0.5,
    ),
    Rule(
        "like_recent_fraud",
        "amount and share of the origin's balance like those of the key's recently labelled "
        "frauds, where frauds outnumber legitimate transactions",
        1.0,
    ),
)


def rule_scores(columns, context=None, rules=DEFAULT_RULES):
    """Per transaction, the highest score of any rule, and which rules fired.

    Returns
    -------
    (numpy.ndarray, dict[str, numpy.ndarray])
        The rule score per row, and each rule's name mapped to a boolean mask of the rows
        where it fired.
    """
    context = context or RuleContext()
    row_count = len(columns["amount"])
    score = np.zeros(row_count)
    fired = {}
    for rule in rules:
        marks = rule(columns, context)
        fired[rule.name] = marks > 0
        score = np.maximum(score, marks)
    return score, fired


def drift_scores(tail_scores, tail_start):
    """The drift term per row from its tail scores on the drifted features.

    Parameters
    ----------
    tail_scores
        Shape ``(rows, features)``: each row's tail score in [0, 1] on each drifted numeric
        feature (see :func:`udfs.drift_window.tail_scores`); no columns when none drifted.
    tail_start
        Tail score below which a row counts as ordinary (0); above it the term rises
        linearly to 1 at the reference's extremes.
    """
    if tail_scores.shape[1] == 0:
        return np.zeros(tail_scores.shape[0])
    deepest = tail_scores.max(axis=1)
    return np.clip((deepest - tail_start) / (1.0 - tail_start), 0.0, 1.0)


def risk_scores(drift, model, rules, config):
    """Combine the three terms with the weights of ``config`` (an EngineConfig)."""
    return config.drift_weight * drift + config.model_weight * model + config.rule_weight * rules
