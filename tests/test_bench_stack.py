"""The benchmark run as a user runs it, through the real Kafka, PostgreSQL and Flink job."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
E2E_ROWS = 12_000
MEMORY_ROWS = 1_500
LENGTH_FACTOR = 10


@pytest.fixture(scope="module")
def bench_results(tmp_path_factory):
    work = tmp_path_factory.mktemp("bench")
    output = work / "bench.json"
    command = [
        sys.executable,
        "scripts/bench.py",
        "--only",
        "e2e,memory",
        "--e2e-rows",
        str(E2E_ROWS),
        "--full-volume-rows",
        "0",
        "--memory-rows",
        str(MEMORY_ROWS),
        "--data-dir",
        str(work / "data"),
        "--output",
        str(output),
    ]
    finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    return json.loads(output.read_text()), finished.stdout


@pytest.mark.parametrize("run", ["concurrent", "loaded_first"])
def test_every_produced_row_is_accounted_for_by_the_jobs_windows(bench_results, run):
    figures = bench_results[0]["sections"]["e2e"][run]

    assert figures["producer"]["records"] == E2E_ROWS
    assert figures["job"]["rows"] == E2E_ROWS
    # Windows hold at most 500 rows; the partial windows of quiet types add a few more.
    assert figures["job"]["windows"] >= E2E_ROWS // 500
    assert figures["job"]["rows_per_second"] > 0
    assert figures["wall_seconds_from_job_start"] > figures["job"]["span_seconds"]


def test_the_memory_of_a_real_job_is_read_at_three_moments_of_one_run(bench_results):
    memory = bench_results[0]["sections"]["memory"]
    moments = memory["moments"]

    assert [moments[name]["rows"] for name in ("early", "middle", "end")] == [
        MEMORY_ROWS,
        MEMORY_ROWS * LENGTH_FACTOR // 2,
        MEMORY_ROWS * LENGTH_FACTOR,
    ]
    for moment in moments.values():
        # A JVM and a Python worker each hold far more than 50 MiB once a job runs.
        assert moment["jvm_mib"] > 50
        assert moment["python_workers_mib"] > 50
        assert moment["state_bytes_per_key"] > 0
    assert memory["keys"] == 5
    assert len(memory["curve"]) == LENGTH_FACTOR


def test_the_printed_table_and_the_json_name_the_same_figures(bench_results):
    results, printed = bench_results
    figures = [row["figure"] for row in results["table"]]

    assert any(figure.startswith(f"e2e {E2E_ROWS:,} rows, loaded first") for figure in figures)
    assert any(figure.startswith("memory Python workers RSS") for figure in figures)
    for figure in figures:
        assert figure in printed
