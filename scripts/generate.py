"""Generate PaySim-like transactions, with or without a known change, and their ground truth.

    python scripts/generate.py --scenario sudden --rows 1000000 --seed 7 --output out/sudden.csv
    python scripts/generate.py --scenario volume --rows 120000 --output out/volume.csv.gz
    python scripts/generate.py --help

The base traffic is a smoothed bootstrap of a real PaySim file, by default the sample in
``data/paysim``. Every generated row copies one row of that file, its template, and multiplies
the template's amount and four balances by one common random factor close to 1. Copying whole
rows keeps together what PaySim ties together: the mix of types, the amounts of each type,
empty accounts, the balance arithmetic of each type, merchants that show no balance, and frauds
that empty the origin account. Legitimate and fraudulent templates are drawn apart, so that the
fraud rate is a setting.

A scenario then changes the base traffic from ``change_row`` on, or leaves it alone:

``stationary``
    the base traffic alone.
``sudden``
    a fraud campaign: a share of TRANSFER and CASH_OUT rows become frauds that take part of
    balances far larger than any the calibration frauds drew on.
``gradual``
    legitimate TRANSFER amounts grow by a factor, row by row with a probability that rises
    linearly over a ramp, then for every row.
``new-category``
    a share of legitimate TRANSFER rows pay merchants, which PaySim TRANSFERs never do.
``volume``
    a few steps carry several times the usual number of rows, drawn from the same traffic: a
    change of volume that is not a drift.

Beside the CSV goes a JSON file with the ground truth: where each change is, which transaction
types it touches, and every setting needed to generate the same bytes again. Rows are counted
from 0 in data order, header excluded, and intervals include their start and exclude their end.
The scenarios share their random streams so that, for one seed, rows a scenario leaves alone
are the rows of ``stationary``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import time
from dataclasses import dataclass
from numbers import Integral, Real
from pathlib import Path

import numpy as np
import pandas as pd

from udfs.transactions import FIELDS, KNOWN_TYPES, MONEY_FIELDS

DEFAULT_CALIBRATION = (
    Path(__file__).resolve().parent.parent / "data" / "paysim" / "paysim_head_29999_steps1-8.csv"
)
# The full PaySim data set: 6,362,620 rows over 743 steps of one simulated hour each.
PAYSIM_ROWS_PER_STEP = 8_563
# The seed of the samples shipped in data/scenarios.
DEFAULT_SEED = 7
DEFAULT_ROWS = 100_000

# Log-scale standard deviation of the factor common to a row's money: about 10 %, enough to
# fill the gaps between the calibration's values without blurring the amounts of a type.
AMOUNT_JITTER_LOG_SD = 0.1
# Distinct customer destinations per generated row. The calibration sample has 3,264 distinct
# customer destinations over 29,999 rows, so destinations repeat about as often as there.
CUSTOMER_DESTINATION_POOL_SHARE = 0.11
# PaySim's account numbers are non-negative 32-bit integers, up to 10 digits after the letter.
ACCOUNT_NUMBER_LIMIT = 2**31
CUSTOMER_LETTER = "C"
MERCHANT_LETTER = "M"
CENTS_PER_UNIT = 100
# In the calibration sample, a balance that moves by the amount is off by one cent in about one
# case out of seven (2,729 of 18,668), and never by two to five cents.
PAYSIM_ROUNDING_CENTS = 1
# PaySim's fraudsters transfer money out of an account and cash it out, and do nothing else.
FRAUD_TYPES = ("TRANSFER", "CASH_OUT")

SCENARIOS = ("stationary", "sudden", "gradual", "new-category", "volume")
DRIFT_EXPECTED = {
    "stationary": False,
    "sudden": True,
    "gradual": True,
    "new-category": True,
    "volume": False,
}
# The arguments each scenario reads; giving one to another scenario is an error.
SCENARIO_ARGUMENTS = {
    "stationary": (),
    "sudden": ("change_row", "campaign_share"),
    "gradual": ("change_row", "change_end_row", "gradual_factor"),
    "new-category": ("change_row", "new_category_share"),
    "volume": ("change_row", "burst_steps", "burst_factor"),
}

DEFAULT_CAMPAIGN_SHARE = 0.2
# The campaign's origin balances, drawn log-uniformly. The calibration sample's largest fraud
# drew on a balance of 12.9 million (PaySim caps one transfer at 10 million); a lower bound
# this far above it stays out of reach of the jitter, so that the campaign is new ground.
CAMPAIGN_BALANCE_RANGE = (3e7, 3e8)
# The part of that balance one campaign fraud takes: never all of it, unlike PaySim's frauds.
CAMPAIGN_DRAIN_FRACTION_RANGE = (0.5, 0.95)

DEFAULT_GRADUAL_FACTOR = 4.0
# Unless given, the gradual ramp lasts this fraction of all rows.
DEFAULT_RAMP_FRACTION_OF_ROWS = 1 / 8
GRADUAL_TYPE = "TRANSFER"

DEFAULT_NEW_CATEGORY_SHARE = 0.2
NEW_CATEGORY_TYPE = "TRANSFER"

DEFAULT_BURST_STEPS = 3
DEFAULT_BURST_FACTOR = 5.0

# zlib's own default: nearly the size of level 9 at a fraction of the time.
GZIP_LEVEL = 6


# --- Calibration ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Calibration:
    """The rows of a PaySim file, held as the columns templates are drawn from.

    Money is held in integer cents so that balance arithmetic stays exact; ``type_codes``
    index :data:`KNOWN_TYPES`.
    """

    name: str
    sha256: str
    type_codes: np.ndarray
    money: dict
    destination_is_merchant: np.ndarray
    is_fraud: np.ndarray
    is_flagged_fraud: np.ndarray
    fraud_rows: np.ndarray
    legitimate_rows: np.ndarray

    def __len__(self):
        return len(self.type_codes)

    @property
    def fraud_share(self):
        return len(self.fraud_rows) / len(self)


def load_calibration(path=DEFAULT_CALIBRATION):
    """Read a PaySim CSV file with its header into a :class:`Calibration`."""
    path = Path(path)
    frame = pd.read_csv(path)
    if list(frame.columns) != list(FIELDS):
        raise ValueError(
            f"calibration file {path} must have the PaySim header {','.join(FIELDS)}; "
            f"got {','.join(map(str, frame.columns))}"
        )
    if frame.empty:
        raise ValueError(f"calibration file {path} must hold at least one row; it has none")
    type_codes = pd.Categorical(frame["type"], categories=KNOWN_TYPES).codes
    if (type_codes < 0).any():
        unknown = sorted(set(frame["type"][type_codes < 0].astype(str)))
        raise ValueError(
            f"calibration file {path} has types {unknown}; expected only {', '.join(KNOWN_TYPES)}"
        )
    money = {}
    for name in MONEY_FIELDS:
        values = frame[name].to_numpy(dtype=np.float64)
        if not (np.isfinite(values) & (values >= 0)).all():
            raise ValueError(
                f"calibration file {path} column {name} must hold finite amounts not below 0"
            )
        money[name] = np.rint(values * CENTS_PER_UNIT).astype(np.int64)
    is_fraud = frame["isFraud"].to_numpy(dtype=np.int8)
    destination_is_merchant = frame["nameDest"].astype(str).str.startswith(MERCHANT_LETTER)
    return Calibration(
        name=path.name,
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        type_codes=type_codes.astype(np.int8),
        money=money,
        destination_is_merchant=destination_is_merchant.to_numpy(),
        is_fraud=is_fraud,
        is_flagged_fraud=frame["isFlaggedFraud"].to_numpy(dtype=np.int8),
        fraud_rows=np.flatnonzero(is_fraud == 1),
        legitimate_rows=np.flatnonzero(is_fraud != 1),
    )


def jittered_money(template_money, scale):
    """Scale a template's amount and balances by ``scale``, rounded to the cent.

    Each balance is rounded on its own, except that a balance that moved by the amount in the
    template moves by the rounded amount here, off by the same cent as in the template if it
    was: ``new = old - amount`` (or ``+ amount``) stays true to the cent, a drained account
    stays drained, and zero stays zero.

    Parameters
    ----------
    template_money
        Each name of :data:`MONEY_FIELDS` mapped to integer cents, one value per row.
    scale
        The factor of each row.

    Returns
    -------
    dict
        The same names mapped to the scaled integer cents.
    """
    amount = template_money["amount"]
    scaled = {
        name: np.rint(values * scale).astype(np.int64) for name, values in template_money.items()
    }
    for old_name, new_name in (
        ("oldbalanceOrg", "newbalanceOrig"),
        ("oldbalanceDest", "newbalanceDest"),
    ):
        old, new = template_money[old_name], template_money[new_name]
        scaled_old, scaled_amount = scaled[old_name], scaled["amount"]
        # PaySim's own rounding leaves some balance moves off by a cent; that offset
        # is noise, not money, so it is kept as it is rather than scaled.
        offset_from_debit = new - (old - amount)
        offset_from_credit = new - (old + amount)
        moved = np.select(
            [
                np.abs(offset_from_debit) <= PAYSIM_ROUNDING_CENTS,
                np.abs(offset_from_credit) <= PAYSIM_ROUNDING_CENTS,
            ],
            [
                scaled_old - scaled_amount + offset_from_debit,
                scaled_old + scaled_amount + offset_from_credit,
            ],
            default=scaled[new_name],
        )
        scaled[new_name] = np.maximum(moved, 0)
    return scaled


# --- Base traffic -----------------------------------------------------------------------------


@dataclass
class Traffic:
    """Generated rows as columns, before they become text; scenarios edit them in place.

    ``template`` is each row's calibration row and ``jitter`` its money factor; money is in
    integer cents and accounts are numbers without their letter.
    """

    template: np.ndarray
    jitter: np.ndarray
    step: np.ndarray
    type_codes: np.ndarray
    money: dict
    origin_numbers: np.ndarray
    destination_numbers: np.ndarray
    destination_is_merchant: np.ndarray
    customer_pool: np.ndarray
    is_fraud: np.ndarray
    is_flagged_fraud: np.ndarray

    def __len__(self):
        return len(self.template)

    def rescale(self, rows, factor, calibration):
        """Money of ``rows`` recomputed from their templates with their jitter times ``factor``."""
        template_money = {
            name: values[self.template[rows]] for name, values in calibration.money.items()
        }
        scaled = jittered_money(template_money, self.jitter[rows] * factor)
        for name, values in scaled.items():
            self.money[name][rows] = values

    def to_frame(self):
        """The rows as a data frame in PaySim's column order, money in currency units."""
        destination_letters = np.where(
            self.destination_is_merchant, MERCHANT_LETTER, CUSTOMER_LETTER
        )
        columns = {
            "step": self.step,
            "type": pd.Categorical.from_codes(self.type_codes, categories=KNOWN_TYPES),
            "amount": self.money["amount"] / CENTS_PER_UNIT,
            "nameOrig": np.char.add(CUSTOMER_LETTER, self.origin_numbers.astype(str)),
            "oldbalanceOrg": self.money["oldbalanceOrg"] / CENTS_PER_UNIT,
            "newbalanceOrig": self.money["newbalanceOrig"] / CENTS_PER_UNIT,
            "nameDest": np.char.add(destination_letters, self.destination_numbers.astype(str)),
            "oldbalanceDest": self.money["oldbalanceDest"] / CENTS_PER_UNIT,
            "newbalanceDest": self.money["newbalanceDest"] / CENTS_PER_UNIT,
            "isFraud": self.is_fraud,
            "isFlaggedFraud": self.is_flagged_fraud,
        }
        return pd.DataFrame(columns, columns=list(FIELDS))


def base_traffic(calibration, rows, fraud_rate, rows_per_step, generator):
    """Draw ``rows`` rows of the smoothed bootstrap of ``calibration``, in consecutive steps."""
    is_fraud_row = generator.random(rows) < fraud_rate
    template = np.empty(rows, dtype=np.int64)
    for chosen, candidates in (
        (is_fraud_row, calibration.fraud_rows),
        (~is_fraud_row, calibration.legitimate_rows),
    ):
        # Drawing nothing from an empty set of candidates is fine; numpy refuses the bounds.
        if chosen.any():
            template[chosen] = candidates[generator.integers(0, len(candidates), chosen.sum())]
    jitter = generator.lognormal(0.0, AMOUNT_JITTER_LOG_SD, rows)
    money = jittered_money(
        {name: values[template] for name, values in calibration.money.items()}, jitter
    )

    origin_numbers = generator.integers(0, ACCOUNT_NUMBER_LIMIT, rows)
    pool_size = max(1, int(np.ceil(rows * CUSTOMER_DESTINATION_POOL_SHARE)))
    customer_pool = generator.integers(0, ACCOUNT_NUMBER_LIMIT, pool_size)
    destination_is_merchant = calibration.destination_is_merchant[template]
    destination_numbers = np.where(
        destination_is_merchant,
        generator.integers(0, ACCOUNT_NUMBER_LIMIT, rows),
        customer_pool[generator.integers(0, pool_size, rows)],
    )
    return Traffic(
        template=template,
        jitter=jitter,
        step=1 + np.arange(rows, dtype=np.int64) // rows_per_step,
        type_codes=calibration.type_codes[template],
        money=money,
        origin_numbers=origin_numbers,
        destination_numbers=destination_numbers,
        destination_is_merchant=destination_is_merchant,
        customer_pool=customer_pool,
        is_fraud=calibration.is_fraud[template],
        is_flagged_fraud=calibration.is_flagged_fraud[template],
    )


def _type_mask(traffic, type_names):
    codes = [KNOWN_TYPES.index(name) for name in type_names]
    return np.isin(traffic.type_codes, codes)


# --- Scenarios --------------------------------------------------------------------------------


def _launch_campaign(traffic, change_row, campaign_share, generator):
    """From ``change_row`` on, a share of TRANSFER and CASH_OUT rows become partial drains.

    The fraudsters change strategy rather than add one: the base frauds after the change are
    rewritten the same way, so every fraud from ``change_row`` on is a campaign fraud.
    """
    rows = len(traffic)
    after_change = np.arange(rows) >= change_row
    joins_campaign = (generator.random(rows) < campaign_share) | (traffic.is_fraud == 1)
    campaign = after_change & _type_mask(traffic, FRAUD_TYPES) & joins_campaign
    count = int(campaign.sum())

    low, high = np.log(CAMPAIGN_BALANCE_RANGE)
    balance = np.rint(np.exp(generator.uniform(low, high, count)) * CENTS_PER_UNIT).astype(np.int64)
    fraction = generator.uniform(*CAMPAIGN_DRAIN_FRACTION_RANGE, count)
    amount = np.rint(balance * fraction).astype(np.int64)
    # Mules are ordinary customers: they come from the same pool as other destinations.
    mule = traffic.customer_pool[generator.integers(0, len(traffic.customer_pool), count)]

    money = traffic.money
    money["amount"][campaign] = amount
    money["oldbalanceOrg"][campaign] = balance
    money["newbalanceOrig"][campaign] = balance - amount
    money["newbalanceDest"][campaign] = money["oldbalanceDest"][campaign] + amount
    traffic.destination_numbers[campaign] = mule
    traffic.destination_is_merchant[campaign] = False
    traffic.is_fraud[campaign] = 1

    low_balance, high_balance = CAMPAIGN_BALANCE_RANGE
    low_fraction, high_fraction = CAMPAIGN_DRAIN_FRACTION_RANGE
    return {
        "kind": "sudden",
        "keys": list(FRAUD_TYPES),
        "start_row": change_row,
        "end_row": change_row,
        "description": (
            f"from row {change_row}, a fraud campaign: {campaign_share:g} of TRANSFER and "
            f"CASH_OUT rows are frauds taking {low_fraction:g} to {high_fraction:g} of an "
            f"origin balance of {low_balance:.0f} to {high_balance:.0f} into a customer "
            f"account, whose balance grows by the amount; base frauds take this form too"
        ),
    }


def _raise_transfers(traffic, calibration, change_row, change_end_row, factor, generator):
    """Scale legitimate TRANSFER money by ``factor``, more and more often over the ramp."""
    row = np.arange(len(traffic))
    ramp_rows = change_end_row - change_row
    if ramp_rows:
        probability = np.clip((row - change_row) / ramp_rows, 0.0, 1.0)
    else:
        probability = (row >= change_row).astype(np.float64)
    legitimate_transfer = _type_mask(traffic, (GRADUAL_TYPE,)) & (traffic.is_fraud == 0)
    raised = legitimate_transfer & (generator.random(len(traffic)) < probability)
    traffic.rescale(raised, factor, calibration)
    return {
        "kind": "gradual",
        "keys": [GRADUAL_TYPE],
        "start_row": change_row,
        "end_row": change_end_row,
        "description": (
            f"legitimate {GRADUAL_TYPE} amounts and balances times {factor:g}: each row with "
            f"a probability rising linearly from 0 at row {change_row} to 1 at row "
            f"{change_end_row}, every row from there on"
        ),
    }


def _open_new_category(traffic, change_row, share, generator):
    """From ``change_row`` on, a share of legitimate TRANSFER rows go to merchants."""
    rows = len(traffic)
    after_change = np.arange(rows) >= change_row
    legitimate_transfer = _type_mask(traffic, (NEW_CATEGORY_TYPE,)) & (traffic.is_fraud == 0)
    to_merchant = after_change & legitimate_transfer & (generator.random(rows) < share)
    traffic.destination_numbers[to_merchant] = generator.integers(
        0, ACCOUNT_NUMBER_LIMIT, int(to_merchant.sum())
    )
    traffic.destination_is_merchant[to_merchant] = True
    return {
        "kind": "new-category",
        "keys": [NEW_CATEGORY_TYPE],
        "start_row": change_row,
        "end_row": change_row,
        "description": (
            f"from row {change_row}, {share:g} of legitimate {NEW_CATEGORY_TYPE} rows pay a "
            f"merchant account (nameDest starting with {MERCHANT_LETTER}), balances as before"
        ),
    }


def _burst(traffic, rows_per_step, change_row, burst_steps, burst_factor):
    """Renumber steps so that the steps from the one holding ``change_row`` hold more rows."""
    rows = len(traffic)
    first_burst_step = change_row // rows_per_step
    burst_rows_per_step = max(1, round(rows_per_step * burst_factor))
    start_row = first_burst_step * rows_per_step
    # A burst longer than the rows left is cut at the last row, and the truth says so.
    full_end_row = start_row + burst_steps * burst_rows_per_step
    end_row = min(rows, full_end_row)

    row = np.arange(rows, dtype=np.int64)
    steps_after_burst = first_burst_step + burst_steps
    step_index = np.select(
        [row < start_row, row < end_row],
        [row // rows_per_step, first_burst_step + (row - start_row) // burst_rows_per_step],
        default=steps_after_burst + (row - end_row) // rows_per_step,
    )
    traffic.step = 1 + step_index
    steps_in_burst = -(-(end_row - start_row) // burst_rows_per_step)
    return {
        "start_row": int(start_row),
        "end_row": int(end_row),
        "start_step": int(1 + first_burst_step),
        "end_step": int(1 + first_burst_step + steps_in_burst),
        "factor": burst_factor,
        "truncated": bool(end_row < full_end_row),
    }


# --- Validation -------------------------------------------------------------------------------


def _check_integer(name, value, low, high=None):
    within = isinstance(value, Integral) and value >= low and (high is None or value <= high)
    if not within or isinstance(value, bool):
        expected = f"an integer from {low}" + (f" to {high}" if high is not None else " up")
        raise ValueError(f"{name} must be {expected}, got {value!r}")


def _check_share(name, value):
    if not isinstance(value, Real) or not 0 < value <= 1:
        raise ValueError(f"{name} must be a share in (0, 1], got {value!r}")


def _check_factor(name, value, low, low_included):
    above = value >= low if low_included else value > low
    if not isinstance(value, Real) or not (above and np.isfinite(value)):
        bound = f"at least {low:g}" if low_included else f"above {low:g}"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")


# --- Generation -------------------------------------------------------------------------------


def generate(
    scenario,
    rows,
    seed=DEFAULT_SEED,
    *,
    calibration=None,
    fraud_rate=None,
    rows_per_step=PAYSIM_ROWS_PER_STEP,
    change_row=None,
    change_end_row=None,
    campaign_share=None,
    gradual_factor=None,
    new_category_share=None,
    burst_steps=None,
    burst_factor=None,
):
    """Generate the rows of a scenario and its ground truth.

    Parameters
    ----------
    scenario
        One of :data:`SCENARIOS`.
    rows
        How many rows, at least 1.
    seed
        Seed of :func:`numpy.random.default_rng`; the same arguments give the same rows.
    calibration
        A :class:`Calibration`, or the path of a PaySim CSV file; ``None`` means the bundled
        sample, :data:`DEFAULT_CALIBRATION`.
    fraud_rate
        The share of base rows drawn from fraud templates; ``None`` means the calibration's.
    rows_per_step
        Rows in each step; PaySim's average by default.
    change_row
        The first row the change touches; ``None`` means ``rows // 2``. Scenarios other than
        ``stationary`` need ``0 < change_row < rows``.
    change_end_row
        ``gradual``: the row where the ramp ends; ``None`` means ``rows // 8`` after
        ``change_row``, at most ``rows``.
    campaign_share
        ``sudden``: the share of TRANSFER and CASH_OUT rows the campaign takes.
    gradual_factor
        ``gradual``: the factor on the money of raised TRANSFER rows.
    new_category_share
        ``new-category``: the share of legitimate TRANSFER rows that pay a merchant.
    burst_steps, burst_factor
        ``volume``: how many steps burst, and how many times the usual rows each holds.

    Returns
    -------
    (pandas.DataFrame, dict)
        The rows, in PaySim's columns, and the ground truth that :func:`write` stores.
    """
    if scenario not in SCENARIOS:
        raise ValueError(f"scenario must be one of {', '.join(SCENARIOS)}; got {scenario!r}")
    given = {
        "change_row": change_row,
        "change_end_row": change_end_row,
        "campaign_share": campaign_share,
        "gradual_factor": gradual_factor,
        "new_category_share": new_category_share,
        "burst_steps": burst_steps,
        "burst_factor": burst_factor,
    }
    for name, value in given.items():
        if value is not None and name not in SCENARIO_ARGUMENTS[scenario]:
            raise ValueError(
                f"{name} does not apply to scenario {scenario!r}, got {value!r}; "
                f"it takes {', '.join(SCENARIO_ARGUMENTS[scenario]) or 'no arguments'}"
            )
    _check_integer("rows", rows, 1)
    _check_integer("seed", seed, 0)
    _check_integer("rows_per_step", rows_per_step, 1)
    if not isinstance(calibration, Calibration):
        calibration = load_calibration(calibration or DEFAULT_CALIBRATION)
    if fraud_rate is None:
        fraud_rate = calibration.fraud_share
    if not isinstance(fraud_rate, Real) or not 0 <= fraud_rate <= 1:
        raise ValueError(f"fraud_rate must be a share in [0, 1], got {fraud_rate!r}")
    if fraud_rate > 0 and not len(calibration.fraud_rows):
        raise ValueError(
            f"fraud_rate must be 0 with calibration {calibration.name}, which has no frauds; "
            f"got {fraud_rate!r}"
        )
    if fraud_rate < 1 and not len(calibration.legitimate_rows):
        raise ValueError(
            f"fraud_rate must be 1 with calibration {calibration.name}, which has only frauds; "
            f"got {fraud_rate!r}"
        )

    parameters = {}
    if scenario != "stationary":
        change_row = rows // 2 if change_row is None else change_row
        _check_integer("change_row", change_row, 1, rows - 1)
        parameters["change_row"] = change_row
    if scenario == "sudden":
        campaign_share = DEFAULT_CAMPAIGN_SHARE if campaign_share is None else campaign_share
        _check_share("campaign_share", campaign_share)
        parameters.update(
            campaign_share=campaign_share,
            campaign_balance_range=list(CAMPAIGN_BALANCE_RANGE),
            campaign_drain_fraction_range=list(CAMPAIGN_DRAIN_FRACTION_RANGE),
        )
    elif scenario == "gradual":
        if change_end_row is None:
            change_end_row = min(rows, change_row + int(rows * DEFAULT_RAMP_FRACTION_OF_ROWS))
        _check_integer("change_end_row", change_end_row, change_row, rows)
        gradual_factor = DEFAULT_GRADUAL_FACTOR if gradual_factor is None else gradual_factor
        _check_factor("gradual_factor", gradual_factor, 0.0, low_included=False)
        parameters.update(change_end_row=change_end_row, gradual_factor=gradual_factor)
    elif scenario == "new-category":
        new_category_share = (
            DEFAULT_NEW_CATEGORY_SHARE if new_category_share is None else new_category_share
        )
        _check_share("new_category_share", new_category_share)
        parameters["new_category_share"] = new_category_share
    elif scenario == "volume":
        burst_steps = DEFAULT_BURST_STEPS if burst_steps is None else burst_steps
        _check_integer("burst_steps", burst_steps, 1)
        burst_factor = DEFAULT_BURST_FACTOR if burst_factor is None else burst_factor
        _check_factor("burst_factor", burst_factor, 1.0, low_included=True)
        parameters.update(burst_steps=burst_steps, burst_factor=burst_factor)

    # Two streams: the base rows come out the same whatever the scenario does to them.
    base_generator, change_generator = np.random.default_rng(seed).spawn(2)
    traffic = base_traffic(calibration, rows, fraud_rate, rows_per_step, base_generator)
    changes, bursts = [], []
    if scenario == "sudden":
        changes.append(_launch_campaign(traffic, change_row, campaign_share, change_generator))
    elif scenario == "gradual":
        changes.append(
            _raise_transfers(
                traffic, calibration, change_row, change_end_row, gradual_factor, change_generator
            )
        )
    elif scenario == "new-category":
        changes.append(
            _open_new_category(traffic, change_row, new_category_share, change_generator)
        )
    elif scenario == "volume":
        bursts.append(_burst(traffic, rows_per_step, change_row, burst_steps, burst_factor))

    truth = {
        "scenario": scenario,
        "seed": seed,
        "rows": rows,
        "fraud_rows": int(traffic.is_fraud.sum()),
        "rows_per_step": rows_per_step,
        "parameters": parameters,
        "settings": {
            "fraud_rate": float(fraud_rate),
            "amount_jitter_log_sd": AMOUNT_JITTER_LOG_SD,
            "customer_destination_pool_share": CUSTOMER_DESTINATION_POOL_SHARE,
            "customer_destination_pool_size": len(traffic.customer_pool),
        },
        "calibration": {
            "file": calibration.name,
            "sha256": calibration.sha256,
            "rows": len(calibration),
            "fraud_rows": len(calibration.fraud_rows),
        },
        "drift_expected": DRIFT_EXPECTED[scenario],
        "changes": changes,
        "bursts": bursts,
        "intervals": "rows count from 0 in data order; start included, end excluded",
    }
    return traffic.to_frame(), truth


def truth_path(output_path):
    """The ground truth's file beside ``output_path``: ``x.truth.json`` for ``x.csv[.gz]``."""
    output_path = Path(output_path)
    stem = output_path.name
    for suffix in (".gz", ".csv"):
        stem = stem.removesuffix(suffix)
    return output_path.with_name(f"{stem}.truth.json")


def write(frame, truth, output_path):
    """Write ``frame`` as CSV to ``output_path`` (gzip if it ends in ``.gz``), ``truth`` beside.

    The gzip header carries no time, so that the same rows always give the same bytes.
    """
    output_path = Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    compression = (
        {"method": "gzip", "compresslevel": GZIP_LEVEL, "mtime": 0}
        if output_path.suffix == ".gz"
        else None
    )
    frame.to_csv(output_path, index=False, lineterminator="\n", compression=compression)
    truth_file = truth_path(output_path)
    truth_file.write_text(json.dumps(truth, indent=2) + "\n", encoding="utf-8")
    return truth_file


# --- Command line -----------------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], epilog="Scenario options apply to their scenario only."
    )
    parser.add_argument("--scenario", required=True, choices=SCENARIOS)
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help=f"default {DEFAULT_ROWS}")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"default {DEFAULT_SEED}")
    parser.add_argument("--output", required=True, help="the .csv or .csv.gz file to write")
    parser.add_argument(
        "--calibration",
        default=str(DEFAULT_CALIBRATION),
        help="the PaySim CSV file to bootstrap from (default: the bundled sample)",
    )
    parser.add_argument(
        "--fraud-rate", type=float, help="share of fraud rows (default: the calibration's)"
    )
    parser.add_argument(
        "--rows-per-step",
        type=int,
        default=PAYSIM_ROWS_PER_STEP,
        help=f"default {PAYSIM_ROWS_PER_STEP}, PaySim's average",
    )
    parser.add_argument("--change-row", type=int, help="first changed row (default: rows // 2)")
    parser.add_argument(
        "--change-end-row", type=int, help="gradual: end of the ramp (default: rows // 8 later)"
    )
    parser.add_argument(
        "--campaign-share",
        type=float,
        help=f"sudden: share of TRANSFER and CASH_OUT rows (default {DEFAULT_CAMPAIGN_SHARE})",
    )
    parser.add_argument(
        "--gradual-factor",
        type=float,
        help=f"gradual: factor on TRANSFER money (default {DEFAULT_GRADUAL_FACTOR})",
    )
    parser.add_argument(
        "--new-category-share",
        type=float,
        help=f"new-category: share of TRANSFER rows to merchants "
        f"(default {DEFAULT_NEW_CATEGORY_SHARE})",
    )
    parser.add_argument(
        "--burst-steps",
        type=int,
        help=f"volume: steps in the burst (default {DEFAULT_BURST_STEPS})",
    )
    parser.add_argument(
        "--burst-factor",
        type=float,
        help=f"volume: rows per burst step over the usual (default {DEFAULT_BURST_FACTOR:g})",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    started = time.monotonic()
    try:
        frame, truth = generate(
            args.scenario,
            args.rows,
            args.seed,
            calibration=args.calibration,
            fraud_rate=args.fraud_rate,
            rows_per_step=args.rows_per_step,
            change_row=args.change_row,
            change_end_row=args.change_end_row,
            campaign_share=args.campaign_share,
            gradual_factor=args.gradual_factor,
            new_category_share=args.new_category_share,
            burst_steps=args.burst_steps,
            burst_factor=args.burst_factor,
        )
    except ValueError as error:
        parser.error(str(error))
    write(frame, truth, args.output)
    seconds = time.monotonic() - started
    print(
        f"{truth['rows']:,} rows, {truth['fraud_rows']:,} frauds in {seconds:.1f} s "
        f"({truth['rows'] / seconds:,.0f} rows/s) -> {args.output}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
