"""Backtest each generator scenario and hold the drift verdicts against its ground truth.

    python scripts/evaluate_scenarios.py                     # the samples in data/scenarios
    python scripts/evaluate_scenarios.py out/sudden.csv.gz   # any generated file with its truth

For every scenario file it runs the backtest, then checks what the ground truth promises:

- a change is detected on every affected key within :data:`MAX_DETECTION_DELAY` windows of the
  window where it starts, counting that window as 0;
- no drift is declared before a change, on a key it does not affect, or anywhere in a scenario
  without change (``stationary``, ``volume``);
- after a change, recall on the affected keys returns to within :data:`RECALL_TOLERANCE` of its
  level before the change; the number of windows that takes is reported.

Prints one line per scenario and writes ``evaluation.json`` in the output folder; exits 1 when a
verdict does not match.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from udfs.engine_config import type_of_key
from udfs.metrics import ScoreCounts

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLES_DIR = REPO_ROOT / "data" / "scenarios"
MAX_DETECTION_DELAY = 2
RECALL_TOLERANCE = 0.05


def truth_of(scenario_path):
    """The ground truth written beside ``x.csv`` or ``x.csv.gz``, as ``x.truth.json``."""
    name = Path(scenario_path).name.removesuffix(".gz").removesuffix(".csv")
    return json.loads((Path(scenario_path).parent / f"{name}.truth.json").read_text())


def run_backtest(scenario_path, output_dir, extra_args=()):
    """Run the backtest job over ``scenario_path``; returns its report."""
    command = [
        sys.executable,
        "-m",
        "jobs.fraud_drift_job",
        "--backtest",
        str(scenario_path),
        "--output-dir",
        str(output_dir),
        *extra_args,
    ]
    completed = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    if completed.returncode != 0:
        raise RuntimeError(f"backtest of {scenario_path} failed:\n{completed.stderr[-3000:]}")
    return json.loads((Path(output_dir) / "report.json").read_text())


def read_windows(output_dir):
    with (Path(output_dir) / "windows.jsonl").open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def _type_of(window):
    return type_of_key(window["key"])


def detection_delays(change, windows):
    """Per affected key, how many windows after the one holding the change's first row drift
    was first declared; None when it never was."""
    delays = {}
    for key in change["keys"]:
        own = [w for w in windows if _type_of(w) == key and w["status"] == "evaluated"]
        after = [w for w in own if w["last_row"] >= change["start_row"]]
        drifted = [index for index, window in enumerate(after) if window["drifted"]]
        delays[key] = drifted[0] if drifted else None
    return delays


def false_alarms(truth, windows):
    """Drifted windows that no change explains: before the first change, or on other keys."""
    affected = {key for change in truth["changes"] for key in change["keys"]}
    first_change = min((change["start_row"] for change in truth["changes"]), default=None)
    alarms = []
    for window in windows:
        if not window["drifted"]:
            continue
        before_change = first_change is None or window["last_row"] < first_change
        if before_change or _type_of(window) not in affected:
            alarms.append(window["window_id"])
    return alarms


def recall_recovery(change, windows):
    """Recall on the change's keys before it, and the windows it takes to come back after it.

    Windows of the affected keys are taken in the order of their first row; recovery is the
    first window from which every later window's recall stays within
    :data:`RECALL_TOLERANCE` of the level before the change (windows without fraud skipped).
    """
    affected = [w for w in windows if _type_of(w) in change["keys"]]
    affected.sort(key=lambda window: window["first_row"])
    before = ScoreCounts()
    for window in affected:
        if window["last_row"] < change["start_row"]:
            before.add(ScoreCounts.from_dict(window["score_counts"]))
    level = before.metrics()["recall"]
    after = [w for w in affected if w["last_row"] >= change["start_row"]]
    recalls = [
        window["metrics"]["recall"] for window in after if window["metrics"]["recall"] is not None
    ]
    if level is None or not recalls:
        return {"recall_before": level, "windows_to_recover": None, "recalls_after": recalls}
    recovered_from = None
    for index in range(len(recalls)):
        if all(recall >= level - RECALL_TOLERANCE for recall in recalls[index:]):
            recovered_from = index
            break
    return {
        "recall_before": round(level, 4),
        "windows_to_recover": recovered_from,
        "recalls_after": [round(recall, 3) for recall in recalls],
    }


def evaluate(scenario_path, output_dir, extra_args=()):
    """Backtest one scenario file and judge its verdicts; returns the evaluation."""
    truth = truth_of(scenario_path)
    report = run_backtest(scenario_path, output_dir, extra_args)
    windows = read_windows(output_dir)
    changes = []
    for change in truth["changes"]:
        delays = detection_delays(change, windows)
        changes.append(
            {
                "kind": change["kind"],
                "start_row": change["start_row"],
                "detection_delay_windows": delays,
                "detected_in_time": all(
                    delay is not None and delay <= MAX_DETECTION_DELAY for delay in delays.values()
                ),
                **recall_recovery(change, windows),
            }
        )
    alarms = false_alarms(truth, windows)
    return {
        "scenario": truth["scenario"],
        "file": str(scenario_path),
        "output_dir": str(output_dir),
        "drift_expected": truth["drift_expected"],
        "changes": changes,
        "false_alarms": alarms,
        "matches_truth": not alarms and all(change["detected_in_time"] for change in changes),
        "report": {
            name: report[name]
            for name in ("rows_in", "drift_events", "precision", "recall", "f1", "auprc")
        },
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "scenarios",
        nargs="*",
        type=Path,
        default=sorted(SAMPLES_DIR.glob("*.csv.gz")),
        help="scenario files with their .truth.json beside them (default: the samples)",
    )
    parser.add_argument("--output-dir", type=Path, default=Path("out/scenarios"))
    args = parser.parse_args(argv)

    evaluations = []
    for scenario_path in args.scenarios:
        name = scenario_path.name.removesuffix(".gz").removesuffix(".csv")
        evaluation = evaluate(scenario_path, args.output_dir / name)
        evaluations.append(evaluation)
        delays = {
            change["kind"]: change["detection_delay_windows"] for change in evaluation["changes"]
        }
        recovery = [change["windows_to_recover"] for change in evaluation["changes"]]
        metrics = evaluation["report"]
        print(
            f"{evaluation['scenario']:13} {'ok  ' if evaluation['matches_truth'] else 'FAIL'} "
            f"detection delay {delays or '-'} false alarms {len(evaluation['false_alarms'])} "
            f"recall recovery {recovery or '-'} | precision {metrics['precision']} "
            f"recall {metrics['recall']} F1 {metrics['f1']} AUPRC {metrics['auprc']}"
        )
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "evaluation.json").write_text(json.dumps(evaluations, indent=2) + "\n")
    return 0 if all(evaluation["matches_truth"] for evaluation in evaluations) else 1


if __name__ == "__main__":
    sys.exit(main())
