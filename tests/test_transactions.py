"""Parsing and validation of transactions, one rule at a time."""

import json

import numpy as np
import pytest

from udfs.transactions import (
    FIELDS,
    KNOWN_TYPES,
    NO_PARTITION,
    UNLABELLED,
    TransactionBatch,
    parse_csv_lines,
    parse_json_records,
)

VALID = {
    "step": 1,
    "type": "TRANSFER",
    "amount": 181.0,
    "nameOrig": "C1305486145",
    "oldbalanceOrg": 181.0,
    "newbalanceOrig": 0.0,
    "nameDest": "C553264065",
    "oldbalanceDest": 0.0,
    "newbalanceDest": 0.0,
    "isFraud": 1,
    "isFlaggedFraud": 0,
}
VALID_LINE = "1,PAYMENT,9839.64,C1231006815,170136.0,160296.36,M1979787155,0.0,0.0,0,0"


def parse_one(record):
    payload = record if isinstance(record, str) else json.dumps(record)
    return parse_json_records([payload], [42], [1], "transactions")


def with_field(name, value):
    return {**VALID, name: value}


def without_field(name):
    return {key: value for key, value in VALID.items() if key != name}


def test_valid_json_record_becomes_one_row_with_derived_id():
    batch, dead_letters = parse_one(VALID)

    assert dead_letters == []
    assert len(batch) == 1
    assert batch.columns["transaction_id"].tolist() == ["transactions-1-42"]
    assert batch.columns["amount"].tolist() == [181.0]
    assert batch.columns["isFraud"].tolist() == [1]


def test_transaction_id_given_by_the_producer_wins():
    batch, _ = parse_one(with_field("transaction_id", "bank-7"))

    assert batch.columns["transaction_id"].tolist() == ["bank-7"]


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ("{oops", "not valid JSON"),
        ("[1, 2]", "expected a JSON object, got list"),
        (without_field("nameDest"), "missing field 'nameDest'"),
        (with_field("type", "WIRE"), "field 'type' must be one of"),
        (with_field("amount", "12a"), "field 'amount' must be a finite number"),
        (with_field("amount", True), "field 'amount' must be a finite number"),
        (with_field("oldbalanceOrg", -1.0), "field 'oldbalanceOrg' must not be negative"),
        (with_field("step", 1.5), "field 'step' must be a non-negative integer"),
        (with_field("nameOrig", ""), "field 'nameOrig' must be a non-empty string"),
        (with_field("isFraud", 2), "field 'isFraud' must be 0 or 1"),
    ],
)
def test_invalid_json_record_is_dead_lettered_with_its_reason(record, reason):
    batch, dead_letters = parse_one(record)

    assert len(batch) == 0
    assert len(dead_letters) == 1
    assert reason in dead_letters[0].reason
    assert (dead_letters[0].position, dead_letters[0].partition) == (42, 1)


def test_infinite_amount_in_json_is_rejected():
    # JSON itself has no infinity; a CSV cell can spell it.
    batch, dead_letters = parse_csv_lines([VALID_LINE.replace("9839.64", "inf")], [0], "f.csv")

    assert len(batch) == 0
    assert "field 'amount' must be a finite number" in dead_letters[0].reason


def test_csv_lines_keep_their_row_and_reject_wrong_column_counts():
    batch, dead_letters = parse_csv_lines([VALID_LINE, "a,b", VALID_LINE], [0, 1, 2], "f.csv")

    assert batch.columns["position"].tolist() == [0, 2]
    assert batch.columns["transaction_id"].tolist() == ["f.csv:0", "f.csv:2"]
    assert batch.columns["partition"].tolist() == [NO_PARTITION] * 2
    assert dead_letters[0].position == 1
    assert dead_letters[0].reason == f"expected {len(FIELDS)} comma-separated fields, got 2"
    assert dead_letters[0].to_dict("f.csv") == {
        "source": "f.csv",
        "position": 1,
        "reason": dead_letters[0].reason,
        "payload": "a,b",
    }


def test_batch_comes_out_in_source_order_whatever_order_it_came_in():
    records = [json.dumps(VALID)] * 3
    batch, _ = parse_json_records(records, [7, 5, 6], [0, 0, 0], "t")

    assert batch.columns["position"].tolist() == [5, 6, 7]


def test_every_known_type_is_accepted():
    records = [json.dumps(with_field("type", name)) for name in KNOWN_TYPES]

    batch, dead_letters = parse_json_records(records, range(5), [0] * 5, "t")

    assert dead_letters == []
    assert sorted(batch.columns["type"].tolist()) == sorted(KNOWN_TYPES)


def test_batch_round_trips_through_bytes_and_concatenates():
    batch, _ = parse_csv_lines([VALID_LINE, VALID_LINE], [0, 1], "f.csv")

    restored = TransactionBatch.from_bytes(batch.to_bytes())
    doubled = TransactionBatch.concatenate([restored, TransactionBatch.empty(), restored])

    assert len(doubled) == 4
    assert np.array_equal(doubled.columns["amount"], np.repeat(9839.64, 4))
    assert doubled.feature_columns()["dest_kind"].tolist() == ["M"] * 4
    assert len(TransactionBatch.from_bytes(b"")) == 0


def csv_line_with(name, cell):
    cells = VALID_LINE.split(",")
    cells[FIELDS.index(name)] = cell
    return ",".join(cells)


def test_one_unreadable_csv_cell_costs_only_its_own_line():
    lines = [VALID_LINE, csv_line_with("amount", "12;5"), VALID_LINE]
    lines.append(csv_line_with("oldbalanceOrg", ""))
    lines.append(csv_line_with("step", '"3"'))  # no quoting in PaySim files: a quote is a cell

    batch, dead_letters = parse_csv_lines(lines, range(5), "f.csv")

    assert batch.columns["position"].tolist() == [0, 2]
    assert [letter.reason for letter in dead_letters] == [
        "field 'amount' must be a finite number",
        "field 'oldbalanceOrg' must be a finite number",
        "field 'step' must be a non-negative integer",
    ]


def test_labels_are_optional_but_must_be_0_or_1_when_given():
    lines = [csv_line_with("isFraud", ""), csv_line_with("isFraud", "2")]
    lines.append(csv_line_with("isFraud", "yes"))
    records = [json.dumps({k: v for k, v in VALID.items() if k != "isFraud"})]

    csv_batch, csv_dead_letters = parse_csv_lines(lines, range(3), "f.csv")
    json_batch, json_dead_letters = parse_json_records(records, [0], [0], "t")

    assert csv_batch.columns["isFraud"].tolist() == [UNLABELLED]
    assert [letter.position for letter in csv_dead_letters] == [1, 2]
    assert all(letter.reason == "field 'isFraud' must be 0 or 1" for letter in csv_dead_letters)
    assert json_batch.columns["isFraud"].tolist() == [UNLABELLED]
    assert json_dead_letters == []
