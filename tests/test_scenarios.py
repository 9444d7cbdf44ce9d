"""Every shipped scenario, backtested by the real job, against its ground truth."""

import json
from pathlib import Path

import pytest

from scripts import evaluate_scenarios
from scripts.evaluate_scenarios import MAX_DETECTION_DELAY, SAMPLES_DIR
from udfs.transactions import KNOWN_TYPES

SCENARIOS = ("stationary", "sudden", "gradual", "new-category", "volume")
# After a sudden change of fraud strategy, recall is back within the tolerance by this window.
RECALL_RECOVERY_WINDOWS = 2
# Detection quality the default engine and shipped model reach on the generated traffic.
MIN_PRECISION = 0.98
MIN_F1 = 0.95


@pytest.fixture(scope="module", params=SCENARIOS)
def evaluation(request, tmp_path_factory):
    scenario_file = SAMPLES_DIR / f"{request.param}.csv.gz"
    return evaluate_scenarios.evaluate(scenario_file, tmp_path_factory.mktemp(request.param))


def test_verdicts_match_the_ground_truth(evaluation):
    assert not evaluation["false_alarms"]
    for change in evaluation["changes"]:
        for key, delay in change["detection_delay_windows"].items():
            assert delay is not None, f"{evaluation['scenario']}: no drift declared on {key}"
            assert delay <= MAX_DETECTION_DELAY
    assert evaluation["matches_truth"]
    if not evaluation["drift_expected"]:
        assert evaluation["report"]["drift_events"] == 0


def test_fraud_is_caught_precisely_through_the_change(evaluation):
    report = evaluation["report"]
    assert report["precision"] >= MIN_PRECISION
    assert report["f1"] >= MIN_F1
    for change in evaluation["changes"]:
        assert change["windows_to_recover"] is not None
        assert change["windows_to_recover"] <= RECALL_RECOVERY_WINDOWS


def test_the_report_counts_every_fraud_once_overall_per_type_and_per_window(evaluation):
    output_dir = Path(evaluation["output_dir"])
    truth = json.loads((SAMPLES_DIR / f"{evaluation['scenario']}.truth.json").read_text())
    report = json.loads((output_dir / "report.json").read_text())
    windows = [json.loads(line) for line in (output_dir / "windows.jsonl").open()]

    by_type = report["metrics_by_type"]
    assert report["frauds"] == truth["fraud_rows"]
    assert sum(metrics["frauds"] for metrics in by_type.values()) == report["frauds"]
    assert sum(window["metrics"]["frauds"] for window in windows) == report["frauds"]
    assert sum(window["metrics"]["flagged"] for window in windows) == report["flagged"]
    assert set(by_type) == set(KNOWN_TYPES)
    assert by_type["PAYMENT"]["frauds"] == 0 and by_type["PAYMENT"]["flagged"] == 0
    assert 0 < report["auprc"] <= 1


def test_the_ground_truth_files_describe_the_samples():
    for scenario in SCENARIOS:
        truth = json.loads((SAMPLES_DIR / f"{scenario}.truth.json").read_text())
        assert truth["scenario"] == scenario
        assert truth["drift_expected"] == bool(truth["changes"])
