"""The transaction record: its fields, its validation, and the columnar batch the job moves.

Transactions reach the job as text, one JSON object per Kafka record or one line of a PaySim
CSV file. :func:`parse_json_records` and :func:`parse_csv_lines` turn a batch of them into a
:class:`TransactionBatch` of numpy columns and a list of :class:`DeadLetter` for the records
that fail validation, each with the reason. Validation runs column by column over the batch;
the only loop per record is the text parsing itself.

A valid transaction has every PaySim field, of the right type: ``step`` a non-negative
integer, ``type`` one of :data:`KNOWN_TYPES`, amounts and balances finite numbers not below
zero, account names non-empty strings, and the two labels 0 or 1. The labels are the only
optional fields: live traffic rarely knows yet whether a transaction was fraud, so a missing or
empty label reads as :data:`UNLABELLED`, while a label that is present must be 0 or 1.
"""

from __future__ import annotations

import contextlib
import io
import pickle
from dataclasses import dataclass

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
from pyarrow import csv as pa_csv

KNOWN_TYPES = ("CASH_IN", "CASH_OUT", "DEBIT", "PAYMENT", "TRANSFER")

# PaySim's column order, which the CSV files follow.
FIELDS = (
    "step",
    "type",
    "amount",
    "nameOrig",
    "oldbalanceOrg",
    "newbalanceOrig",
    "nameDest",
    "oldbalanceDest",
    "newbalanceDest",
    "isFraud",
    "isFlaggedFraud",
)
MONEY_FIELDS = ("amount", "oldbalanceOrg", "newbalanceOrig", "oldbalanceDest", "newbalanceDest")
NAME_FIELDS = ("nameOrig", "nameDest")
LABEL_FIELDS = ("isFraud", "isFlaggedFraud")
REQUIRED_FIELDS = tuple(name for name in FIELDS if name not in LABEL_FIELDS)
# A label that did not come with the transaction.
UNLABELLED = -1
# An optional field: a transaction id given by the producer wins over the derived one.
TRANSACTION_ID_FIELD = "transaction_id"

# The numeric features drift is measured on, and the categorical one: whether the money goes
# to a customer (C...) or a merchant (M...), which varies within every transaction type.
NUMERIC_FEATURES = MONEY_FIELDS
DESTINATION_KIND = "dest_kind"

# Marks a position that has no Kafka partition, such as a row of a file.
NO_PARTITION = -1


@dataclass(frozen=True)
class DeadLetter:
    """A record that failed validation, with what is needed to find and fix it."""

    payload: str
    reason: str
    position: int
    partition: int = NO_PARTITION

    def to_dict(self, source):
        record = {"source": source, "position": self.position, "reason": self.reason}
        if self.partition != NO_PARTITION:
            record["partition"] = self.partition
        record["payload"] = self.payload
        return record


@dataclass
class TransactionBatch:
    """Valid transactions as columns, in arrival order.

    ``columns`` maps every name of :data:`FIELDS` to a numpy array, plus ``position`` (row of
    the file or Kafka offset), ``partition`` and ``transaction_id``.
    """

    columns: dict

    def __len__(self):
        return len(self.columns["position"])

    @classmethod
    def empty(cls):
        return cls(_empty_columns())

    def take(self, rows):
        """The batch restricted to ``rows`` (a slice, an index array or a boolean mask)."""
        return TransactionBatch({name: values[rows] for name, values in self.columns.items()})

    @classmethod
    def concatenate(cls, batches):
        batches = [batch for batch in batches if len(batch)]
        if not batches:
            return cls.empty()
        if len(batches) == 1:
            return batches[0]
        names = batches[0].columns
        return cls({name: np.concatenate([b.columns[name] for b in batches]) for name in names})

    def feature_columns(self):
        """The columns drift is measured on."""
        features = {name: self.columns[name] for name in NUMERIC_FEATURES}
        features[DESTINATION_KIND] = destination_kinds(self.columns["nameDest"])
        return features

    def to_bytes(self):
        """The batch as bytes, text columns in one byte a character where they are ASCII
        (numpy holds text in four): batches cross between processes and sit in keyed state,
        and the text is most of their size."""
        packed = {}
        for name, values in self.columns.items():
            # Text that is not ASCII stays as it is, and is restored as it is.
            if values.dtype.kind == "U":
                with contextlib.suppress(UnicodeEncodeError):
                    values = values.astype(bytes)
            packed[name] = values
        return pickle.dumps(packed, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def from_bytes(cls, data):
        if not data:
            return cls.empty()
        packed = pickle.loads(data)
        return cls(
            {
                name: values.astype(str) if values.dtype.kind == "S" else values
                for name, values in packed.items()
            }
        )


def destination_kinds(destination_names):
    """'C' for a customer account, 'M' for a merchant: PaySim's first letter of the name."""
    return np.asarray(destination_names, dtype=str).astype("<U1")


def _empty_columns():
    columns = {
        "position": np.empty(0, dtype=np.int64),
        "partition": np.empty(0, dtype=np.int32),
        "transaction_id": np.empty(0, dtype=str),
        "step": np.empty(0, dtype=np.int64),
        "type": np.empty(0, dtype=str),
    }
    for name in MONEY_FIELDS:
        columns[name] = np.empty(0, dtype=np.float64)
    for name in NAME_FIELDS:
        columns[name] = np.empty(0, dtype=str)
    for name in LABEL_FIELDS:
        columns[name] = np.empty(0, dtype=np.int8)
    return columns


# --- Parsing ----------------------------------------------------------------------------------


def parse_json_records(payloads, positions, partitions, source):
    """Parse and validate Kafka record values holding one JSON object each.

    Parameters
    ----------
    payloads
        The record values as strings.
    positions, partitions
        Each record's Kafka offset and partition.
    source
        The topic; with partition and offset it forms the id of a record that has none.

    Returns
    -------
    (TransactionBatch, list[DeadLetter])
    """
    payloads = list(payloads)
    raw = {name: [None] * len(payloads) for name in (*FIELDS, TRANSACTION_ID_FIELD)}
    early_reasons = [None] * len(payloads)
    for row, payload in enumerate(payloads):
        try:
            record = orjson.loads(payload)
        except orjson.JSONDecodeError as error:
            early_reasons[row] = f"not valid JSON: {error}"
            continue
        if not isinstance(record, dict):
            early_reasons[row] = f"expected a JSON object, got {type(record).__name__}"
            continue
        for name, values in raw.items():
            values[row] = record.get(name)

    positions = np.asarray(positions, dtype=np.int64)
    partitions = np.asarray(partitions, dtype=np.int32)
    derived_ids = [
        f"{source}-{partition}-{offset}"
        for partition, offset in zip(partitions.tolist(), positions.tolist(), strict=True)
    ]
    given_ids = raw.pop(TRANSACTION_ID_FIELD)
    transaction_ids = [
        given if isinstance(given, str) and given else derived
        for given, derived in zip(given_ids, derived_ids, strict=True)
    ]
    fields = _ParsedFields(
        present={name: np.array([v is not None for v in raw[name]], dtype=bool) for name in FIELDS},
        numbers={
            name: _numbers(
                [int(v) if isinstance(v, bool) and name in LABEL_FIELDS else v for v in raw[name]]
            )
            for name in NUMBER_FIELDS
        },
        strings={
            name: np.array([v if isinstance(v, str) else "" for v in raw[name]], dtype=str)
            for name in STRING_FIELDS
        },
        blank_labels={
            name: np.array([v == "" for v in raw[name]], dtype=bool) for name in LABEL_FIELDS
        },
    )
    return _validated(fields, early_reasons, payloads, positions, partitions, transaction_ids)


def parse_csv_lines(lines, rows, source):
    """Parse and validate lines of a PaySim CSV file (without its header).

    Parameters
    ----------
    lines
        The lines as strings, without line ends.
    rows
        Each line's 0-based position among the file's data rows.
    source
        The file; with the row it forms the transaction id.

    Returns
    -------
    (TransactionBatch, list[DeadLetter])
    """
    lines = list(lines)
    separators = np.fromiter((line.count(",") for line in lines), np.int64, len(lines))
    well_formed = separators == len(FIELDS) - 1
    early_reasons = [None] * len(lines)
    for row in np.flatnonzero(~well_formed):
        early_reasons[row] = (
            f"expected {len(FIELDS)} comma-separated fields, got {separators[row] + 1}"
        )
    fields = _split_csv([lines[row] for row in np.flatnonzero(well_formed)], well_formed)

    rows = np.asarray(rows, dtype=np.int64)
    partitions = np.full(len(lines), NO_PARTITION, dtype=np.int32)
    transaction_ids = [f"{source}:{row}" for row in rows.tolist()]
    return _validated(fields, early_reasons, lines, rows, partitions, transaction_ids)


@dataclass
class _ParsedFields:
    """Every field of a batch as an array, before validation: whether it was there, and its
    value read as a number or as a string (NaN or "" where it cannot be read so)."""

    present: dict
    numbers: dict
    strings: dict
    blank_labels: dict


# Columns read as numbers and as strings; a CSV is read by Arrow with these types.
NUMBER_FIELDS = ("step", *MONEY_FIELDS, *LABEL_FIELDS)
STRING_FIELDS = ("type", *NAME_FIELDS)
_CSV_PARSING = pa_csv.ParseOptions(quote_char=False, double_quote=False)


def _split_csv(lines, well_formed):
    """The cells of well-formed CSV ``lines``, spread back over every row of the batch."""
    count = len(well_formed)
    fields = _ParsedFields(
        present={name: well_formed.copy() for name in FIELDS},
        numbers={name: np.full(count, np.nan) for name in NUMBER_FIELDS},
        strings={name: np.full(count, "", dtype=object) for name in STRING_FIELDS},
        blank_labels={name: np.zeros(count, dtype=bool) for name in LABEL_FIELDS},
    )
    if lines:
        table = _read_csv_cells(lines)
        for name in NUMBER_FIELDS:
            column = table.column(name)
            if pa.types.is_string(column.type):
                # The rare batch with a cell that is not a number: read it cell by cell.
                values = column.to_numpy(zero_copy_only=False)
                fields.numbers[name][well_formed] = pd.to_numeric(values, errors="coerce")
                if name in LABEL_FIELDS:
                    fields.blank_labels[name][well_formed] = values == ""
            else:
                fields.numbers[name][well_formed] = column.to_numpy(zero_copy_only=False)
                if name in LABEL_FIELDS:
                    fields.blank_labels[name][well_formed] = column.is_null().to_numpy(
                        zero_copy_only=False
                    )
        for name in STRING_FIELDS:
            fields.strings[name][well_formed] = table.column(name).to_numpy(zero_copy_only=False)
    fields.strings = {name: values.astype(str) for name, values in fields.strings.items()}
    return fields


def _read_csv_cells(lines):
    """An Arrow table of ``lines``: numbers typed where every cell of a column is one."""
    data = "\n".join(lines).encode()
    numeric = {name: pa.float64() for name in NUMBER_FIELDS}
    for column_types in (numeric, {}):
        options = pa_csv.ConvertOptions(
            column_types={**{name: pa.string() for name in FIELDS}, **column_types},
            strings_can_be_null=False,
        )
        try:
            return pa_csv.read_csv(
                io.BytesIO(data),
                read_options=pa_csv.ReadOptions(column_names=FIELDS),
                parse_options=_CSV_PARSING,
                convert_options=options,
            )
        except pa.ArrowInvalid:
            continue
    raise AssertionError("a CSV of strings always reads")


# --- Validation -------------------------------------------------------------------------------


def _numbers(values):
    """Values as float64, NaN where a value is missing, not a number, or a boolean."""
    if {type(value) for value in values} <= {int, float}:
        return np.array(values, dtype=np.float64)
    numbers = np.full(len(values), np.nan)
    for row, value in enumerate(values):
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int | float):
            numbers[row] = value
        elif isinstance(value, str):
            try:
                numbers[row] = float(value)
            except ValueError:
                continue
    return numbers


def _first_reason(reasons, failed, message):
    """Record ``message`` for every failed row that has no reason yet."""
    for row in np.flatnonzero(failed):
        if reasons[row] is None:
            reasons[row] = message


def _validated(fields, reasons, payloads, positions, partitions, transaction_ids):
    count = len(payloads)
    for name in REQUIRED_FIELDS:
        _first_reason(reasons, ~fields.present[name], f"missing field {name!r}")

    step = fields.numbers["step"]
    _first_reason(
        reasons,
        ~(np.isfinite(step) & (step >= 0) & (step == np.floor(step))),
        "field 'step' must be a non-negative integer",
    )
    types = fields.strings["type"]
    _first_reason(
        reasons,
        ~np.isin(types, KNOWN_TYPES),
        f"field 'type' must be one of {', '.join(KNOWN_TYPES)}",
    )
    money = {}
    for name in MONEY_FIELDS:
        money[name] = fields.numbers[name]
        _first_reason(
            reasons,
            ~np.isfinite(money[name]),
            f"field {name!r} must be a finite number",
        )
        _first_reason(reasons, money[name] < 0, f"field {name!r} must not be negative")
    names = {}
    for name in NAME_FIELDS:
        names[name] = fields.strings[name]
        _first_reason(reasons, names[name] == "", f"field {name!r} must be a non-empty string")
    labels = {}
    for name in LABEL_FIELDS:
        absent = ~fields.present[name] | fields.blank_labels[name]
        numbers = fields.numbers[name]
        _first_reason(
            reasons, ~absent & ~np.isin(numbers, (0, 1)), f"field {name!r} must be 0 or 1"
        )
        labels[name] = np.where(absent, UNLABELLED, np.nan_to_num(numbers)).astype(np.int8)

    valid = np.array([reason is None for reason in reasons], dtype=bool)
    dead_letters = [
        DeadLetter(str(payloads[row]), reasons[row], int(positions[row]), int(partitions[row]))
        for row in np.flatnonzero(~valid)
    ]
    columns = {
        "position": positions[valid],
        "partition": partitions[valid],
        "transaction_id": np.array(transaction_ids, dtype=str)[valid]
        if count
        else np.empty(0, dtype=str),
        "step": np.nan_to_num(step[valid]).astype(np.int64),
        "type": types[valid],
    }
    columns.update({name: values[valid] for name, values in money.items()})
    columns.update({name: values[valid] for name, values in names.items()})
    columns.update({name: values[valid] for name, values in labels.items()})
    # Flink hands a micro-batch over in no promised order; windows are cut in input order.
    in_order = np.lexsort((columns["position"], columns["partition"]))
    return TransactionBatch(columns).take(in_order), dead_letters
