"""Backtest mode: the same operators over a CSV file, on a Flink mini-cluster."""

import json

import numpy as np
import pytest

from jobs import fraud_drift_job
from tests.synthetic_paysim import TYPE_SHARES, transactions_csv
from udfs.drift_engine import KeyState, advance, flush
from udfs.transactions import parse_csv_lines

ROWS = 9000
CHANGE_ROW = 6000
WINDOW_SIZE = 200
REFERENCE_SIZE = 1000
BAD_LINES = {150: "not,a,transaction", 3001: "1,TRANSFER,abc,C1,1,0,C2,0,0,0,0"}
JOB_ARGUMENTS = ["--window-size", str(WINDOW_SIZE), "--reference-size", str(REFERENCE_SIZE)]


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def backtest(tmp_path_factory):
    folder = tmp_path_factory.mktemp("backtest")
    csv_path = transactions_csv(
        folder / "shift.csv",
        ROWS,
        seed=7,
        change_row=CHANGE_ROW,
        log_shift=1.0,
        bad_lines=BAD_LINES,
    )
    output_dir = folder / "out"
    fraud_drift_job.main(
        ["--backtest", str(csv_path), "--output-dir", str(output_dir), *JOB_ARGUMENTS]
    )
    return csv_path, output_dir


def test_report_reconciles_rows_and_names_every_figure(backtest):
    _, output_dir = backtest

    report = json.loads((output_dir / "report.json").read_text())

    assert report["rows_in"] == ROWS
    assert report["rows_dead_lettered"] == len(BAD_LINES)
    assert report["rows_valid"] == ROWS - len(BAD_LINES)
    assert report["reconciled"] is True
    for name in (
        "windows",
        "drift_events",
        "flagged",
        "accuracy",
        "precision",
        "recall",
        "f1",
        "seconds",
        "rows_per_second",
    ):
        assert name in report


def test_dead_letters_carry_line_position_and_reason(backtest):
    _, output_dir = backtest

    dead_letters = read_jsonl(output_dir / "dead_letter.jsonl")

    assert [letter["position"] for letter in dead_letters] == sorted(BAD_LINES)
    assert "expected 11 comma-separated fields" in dead_letters[0]["reason"]
    assert "'amount' must be a finite number" in dead_letters[1]["reason"]
    assert dead_letters[1]["payload"] == BAD_LINES[3001]


def test_drift_is_declared_on_the_shifted_key_after_the_change_and_nowhere_before(backtest):
    _, output_dir = backtest

    windows = read_jsonl(output_dir / "windows.jsonl")
    events = read_jsonl(output_dir / "drift_events.jsonl")

    transfer = [w for w in windows if w["key"] == "TRANSFER" and w["status"] == "evaluated"]
    before = [w for w in transfer if w["last_row"] < CHANGE_ROW]
    after = [w for w in transfer if w["first_row"] >= CHANGE_ROW]
    assert before and after
    assert not any(w["drifted"] for w in before)
    assert after[0]["drifted"] and "amount" in after[0]["drifted_features"]
    assert not any(w["drifted"] for w in windows if w["key"] != "TRANSFER")
    assert {event["window_id"] for event in events} == {
        w["window_id"] for w in windows if w["drifted"]
    }


def test_every_window_line_carries_its_key_verdict_and_row_range(backtest):
    _, output_dir = backtest

    windows = read_jsonl(output_dir / "windows.jsonl")
    flagged = read_jsonl(output_dir / "flagged.jsonl")

    for window in windows:
        assert {"key", "drifted", "first_row", "last_row"} <= set(window)
        assert window["first_row"] <= window["last_row"]
    assert sum(window["row_count"] for window in windows) == ROWS - len(BAD_LINES)
    for alert in flagged:
        assert {"row", "risk_score", "drift_score", "model_probability", "rule_score"} <= set(alert)


def test_backtest_windows_equal_the_engine_run_in_plain_python(backtest):
    csv_path, output_dir = backtest
    lines = csv_path.read_text().splitlines()[1:]
    batch, _ = parse_csv_lines(lines, np.arange(len(lines)), str(csv_path))
    args = fraud_drift_job.parse_arguments(
        ["--backtest", str(csv_path), "--output-dir", "unused", *JOB_ARGUMENTS]
    )
    config = fraud_drift_job.engine_config(args)

    expected = []
    for key in sorted(set(batch.columns["type"])):
        state = KeyState()
        rows = batch.take(batch.columns["type"] == key)
        outcomes = advance(state, rows, key, str(csv_path), config, model=args.fraud_model)
        last = flush(state, key, str(csv_path), config, model=args.fraud_model)
        expected += [
            (o.window["window_id"], o.window["drifted"], o.window["flagged"])
            for o in [*outcomes, *([last] if last else [])]
        ]
    actual = [
        (w["window_id"], w["drifted"], w["flagged"])
        for w in read_jsonl(output_dir / "windows.jsonl")
    ]

    assert sorted(actual) == sorted(expected)


def test_shards_split_each_type_by_origin_account(tmp_path):
    csv_path = transactions_csv(tmp_path / "sharded.csv", 4000, seed=11)
    output_dir = tmp_path / "out"

    fraud_drift_job.main(
        [
            "--backtest",
            str(csv_path),
            "--output-dir",
            str(output_dir),
            "--shards",
            "2",
            *JOB_ARGUMENTS,
        ]
    )

    windows = read_jsonl(output_dir / "windows.jsonl")
    keys = {window["key"] for window in windows}
    assert keys == {f"{kind}/{shard}" for kind in TYPE_SHARES for shard in (0, 1)}
    assert sum(window["row_count"] for window in windows) == 4000
