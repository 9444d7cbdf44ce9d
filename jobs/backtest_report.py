"""Files of a backtest: the sinks' part files merged into one JSON-lines file each, and a report.

The job's file sinks write part files under ``DIR/.parts/<name>/``; when the job has finished,
:func:`finish` concatenates them into ``DIR/<name>.jsonl``, sorted by position in the input so
that two runs over the same file give the same files, and writes ``DIR/report.json``: counts
in and out, and accuracy, precision, recall, F1 and AUPRC over the whole run and per
transaction type (each window record carries its own).
"""

import gzip
import json
import shutil
from pathlib import Path

from udfs.engine_config import type_of_key
from udfs.metrics import METRIC_NAMES, ScoreCounts

PARTS_FOLDER = ".parts"
OUTPUT_FILES = {
    "windows": "windows.jsonl",
    "drift_events": "drift_events.jsonl",
    "flagged": "flagged.jsonl",
    "dead_letter": "dead_letter.jsonl",
}
SORT_FIELDS = {
    "windows": ("first_row", "key"),
    "drift_events": ("first_row", "key"),
    "flagged": ("row",),
    "dead_letter": ("position",),
}


def prepare(output_dir):
    """Create ``output_dir`` and remove what an earlier backtest left in it."""
    output_dir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(output_dir / PARTS_FOLDER, ignore_errors=True)
    for file_name in (*OUTPUT_FILES.values(), "report.json"):
        (output_dir / file_name).unlink(missing_ok=True)


def merged_records(parts_dir, sort_fields):
    records = []
    for part in sorted(Path(parts_dir).rglob("*")):
        # In-progress and pending files start with a dot; only finished parts count.
        if part.is_file() and not part.name.startswith("."):
            with part.open(encoding="utf-8") as handle:
                records.extend(json.loads(line) for line in handle if line.strip())
    records.sort(key=lambda record: tuple(record.get(name) for name in sort_fields))
    return records


def open_text_file(path):
    """A CSV file for reading, decompressed on the fly when its name ends in .gz (as Flink's
    file source does)."""
    if str(path).endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def count_data_rows(csv_path):
    with open_text_file(csv_path) as handle:
        lines = sum(1 for line in handle if line.strip())
    return max(lines - 1, 0)  # less the header


def detection_metrics(windows):
    """Metrics of the whole run and of each transaction type, from the windows' counts."""
    overall = ScoreCounts()
    by_type = {}
    for window in windows:
        counts = ScoreCounts.from_dict(window["score_counts"])
        overall.add(counts)
        by_type.setdefault(type_of_key(window["key"]), ScoreCounts()).add(counts)
    return overall.metrics(), {name: by_type[name].metrics() for name in sorted(by_type)}


def finish(output_dir, csv_path, seconds):
    """Merge the part files, write the report and return it."""
    output_dir = Path(output_dir)
    outputs = {}
    for name, file_name in OUTPUT_FILES.items():
        records = merged_records(output_dir / PARTS_FOLDER / name, SORT_FIELDS[name])
        with (output_dir / file_name).open("w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(record, sort_keys=True) + "\n" for record in records)
        outputs[name] = records
    shutil.rmtree(output_dir / PARTS_FOLDER, ignore_errors=True)

    rows_in = count_data_rows(csv_path)
    rows_valid = sum(window["row_count"] for window in outputs["windows"])
    overall, by_type = detection_metrics(outputs["windows"])
    model_versions = sorted({window["model_version"] for window in outputs["windows"]})
    report = {
        "input": str(csv_path),
        "rows_in": rows_in,
        "rows_valid": rows_valid,
        "rows_dead_lettered": len(outputs["dead_letter"]),
        "windows": len(outputs["windows"]),
        "windows_evaluated": sum(w["status"] == "evaluated" for w in outputs["windows"]),
        "drift_events": len(outputs["drift_events"]),
        "flagged": len(outputs["flagged"]),
        "frauds": overall["frauds"],
        "frauds_flagged": overall["true_positives"],
        **{name: overall[name] for name in METRIC_NAMES},
        "metrics_by_type": by_type,
        "model_versions": model_versions,
        "seconds": round(seconds, 3),
        "rows_per_second": round(rows_in / seconds, 1) if seconds > 0 else None,
        "reconciled": rows_in == rows_valid + len(outputs["dead_letter"]),
    }
    (output_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report
