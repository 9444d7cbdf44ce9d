"""The parts of the benchmark that need no Kafka, PostgreSQL or Flink.

The baseline loop is checked on a small generated file against scipy called directly, the
records against the format of ``scripts/replay.py``, the injected frauds against the rule that
should flag them, and the memory sampler against processes of this test.
"""

import csv
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from scripts import bench, replay
from scripts.generate import generate, write
from udfs.scoring import RULE_CHECKS, RuleContext

SEED = 5
ROWS = 20_000


@pytest.fixture(scope="module")
def generated_file(tmp_path_factory):
    frame, truth = generate("stationary", ROWS, SEED)
    path = tmp_path_factory.mktemp("bench") / "stationary.csv"
    write(frame, truth, path)
    return path


@pytest.fixture(scope="module")
def transactions(generated_file):
    return bench.read_transactions(generated_file)


@pytest.fixture(scope="module")
def verdicts(transactions):
    return list(bench.baseline_verdicts(transactions))


def test_the_baseline_judges_every_batch_of_a_type_after_its_first(transactions, verdicts):
    rows_per_type = transactions["type"].value_counts()
    batches = {
        name: math.ceil(count / bench.BASELINE_BATCH_ROWS) for name, count in rows_per_type.items()
    }
    expected = {name: count - 1 for name, count in batches.items() if count > 1}

    judged = {}
    for verdict in verdicts:
        judged[verdict.transaction_type] = judged.get(verdict.transaction_type, 0) + 1

    assert judged == expected
    batch_rows = bench.BASELINE_BATCH_ROWS
    assert sum(verdict.rows for verdict in verdicts) == sum(
        count - batch_rows for count in rows_per_type if count > batch_rows
    )


def test_the_baseline_reference_grows_then_slides(verdicts):
    by_type = {}
    for verdict in verdicts:
        by_type.setdefault(verdict.transaction_type, []).append(verdict.reference_rows)
    longest = max(by_type.values(), key=len)

    steps = np.arange(1, len(longest) + 1) * bench.BASELINE_BATCH_ROWS
    assert longest == np.minimum(steps, bench.BASELINE_REFERENCE_ROWS).tolist()
    assert len(longest) * bench.BASELINE_BATCH_ROWS > bench.BASELINE_REFERENCE_ROWS


def test_the_baseline_statistics_are_finite_and_decide_the_verdict(verdicts):
    for verdict in verdicts:
        values = np.array(list(verdict.statistics.values()))
        assert np.isfinite(values).all(), verdict
        assert len(values) >= 3 * len(bench.NUMERIC_FEATURES)
        assert verdict.drifted == bench.baseline_drifted(verdict.statistics)


def test_the_baseline_rule_fires_on_a_low_p_value_or_a_large_distance():
    quiet = {"amount/ks": 0.05, "amount/jensenshannon": 0.099, "destination_kind/chisquare": 0.9}

    assert not bench.baseline_drifted(quiet)
    assert bench.baseline_drifted({**quiet, "amount/ks": 0.049})
    assert bench.baseline_drifted({**quiet, "amount/wasserstein": 0.1})
    assert bench.baseline_drifted({**quiet, "destination_kind/chisquare": 0.01})


def test_the_baseline_statistics_equal_scipy_on_the_same_rows(transactions, verdicts):
    verdict = next(v for v in verdicts if v.reference_rows == bench.BASELINE_REFERENCE_ROWS)
    rows_of_type = transactions[transactions["type"] == verdict.transaction_type]
    position = rows_of_type.index.get_loc(verdict.first_row)
    reference = rows_of_type["amount"].to_numpy()[position - verdict.reference_rows : position]
    batch = rows_of_type["amount"].to_numpy()[position : position + verdict.rows]
    edges = np.histogram_bin_edges(np.concatenate((reference, batch)), 30)

    assert verdict.statistics["amount/ks"] == pytest.approx(stats.ks_2samp(reference, batch).pvalue)
    assert verdict.statistics["amount/jensenshannon"] == pytest.approx(
        jensenshannon(np.histogram(reference, edges)[0], np.histogram(batch, edges)[0], base=2)
    )
    assert verdict.statistics["amount/wasserstein"] == pytest.approx(
        stats.wasserstein_distance(reference, batch) / np.std(reference)
    )


def test_chi_square_is_skipped_on_one_category_and_run_on_two():
    customers = np.array(["C"] * 40)
    mixed = np.array(["C"] * 30 + ["M"] * 10)

    assert bench.destination_kind_pvalue(customers, customers) is None
    assert bench.destination_kind_pvalue(mixed, mixed[::-1]) == pytest.approx(
        stats.chi2_contingency([[30, 10], [30, 10]]).pvalue
    )


def test_percentiles_are_nearest_rank_on_known_numbers():
    summary = bench.latency_summary(np.arange(1, 101)[::-1])

    assert summary == {"count": 100, "p50_ms": 50.0, "p99_ms": 99.0, "max_ms": 100.0}
    assert bench.latency_summary([7.0])["p99_ms"] == 7.0
    assert bench.latency_summary([]) == {
        "count": 0,
        "p50_ms": None,
        "p99_ms": None,
        "max_ms": None,
    }


def test_a_rate_needs_time_to_have_passed():
    assert bench.rate(1000, 4.0) == 250.0
    assert bench.rate(1000, 0.0) is None


def test_records_are_those_replay_sends(generated_file, transactions):
    with open(generated_file, newline="") as handle:
        rows = list(csv.DictReader(handle))
    first_row = 17

    messages = bench.kafka_messages(transactions.iloc[first_row:], generated_file.name, first_row)

    for offset in (0, 1, len(messages) - 1):
        row = first_row + offset
        key, value = messages[offset]
        expected = replay.typed(rows[row])
        expected["transaction_id"] = f"{generated_file.name}:{row}"
        assert key == rows[row]["nameOrig"].encode()
        assert json.loads(value) == expected
        assert [type(v) for v in json.loads(value).values()] == [type(v) for v in expected.values()]


def test_a_slice_of_a_file_gives_the_messages_of_those_rows_only(
    generated_file, transactions, monkeypatch
):
    monkeypatch.setattr(bench, "MESSAGE_CHUNK_ROWS", 300)  # the slice spans several chunks
    first_row, stop_row = 250, 1111

    messages = bench.file_messages(generated_file, generated_file.name, first_row, stop_row)

    expected = bench.kafka_messages(
        transactions.iloc[first_row:stop_row], generated_file.name, first_row
    )
    assert messages == expected


def test_injected_frauds_drain_their_accounts_and_nothing_else_changes(transactions):
    every = 10

    changed = bench.with_drained_frauds(transactions, every)

    drained = changed.iloc[::every]
    columns = {name: drained[name].to_numpy() for name in drained.columns}
    assert (RULE_CHECKS["account_drained"](columns, RuleContext()) == 1.0).all()
    assert (drained["isFraud"] == 1).all()
    assert drained["nameDest"].str.startswith("C").all()
    untouched = np.ones(len(changed), dtype=bool)
    untouched[::every] = False
    assert changed[untouched].equals(transactions[untouched])


def test_producer_slices_cover_the_rows_once():
    slices = bench.row_slices(100, 1101, 3)

    assert slices[0][0] == 100 and slices[-1][1] == 1101
    assert all(stop == start for (_, stop), (start, _) in zip(slices, slices[1:], strict=False))
    assert max(b - a for a, b in slices) - min(b - a for a, b in slices) <= 1


def test_sections_and_sizes_are_checked_when_parsed():
    assert bench.parse_sections("memory, backtest") == ["memory", "backtest"]
    with pytest.raises(Exception, match="comma-separated list of backtest"):
        bench.parse_sections("backtest,speed")
    assert bench.parse_sizes("1000,2_000") == [1000, 2000]
    assert bench.parse_deliveries("at-least-once") == ["at-least-once"]
    with pytest.raises(Exception, match="comma-separated list of exactly-once"):
        bench.parse_deliveries("at-most-once")


def test_quick_shrinks_every_default_size_and_keeps_given_ones():
    full = bench.parse_arguments([])
    quick = bench.parse_arguments(["--quick", "--e2e-rows", "5000"])

    assert full.backtest_rows == list(bench.DEFAULT_BACKTEST_ROWS)
    assert quick.backtest_rows == [
        rows // bench.QUICK_DIVISOR for rows in bench.DEFAULT_BACKTEST_ROWS
    ]
    assert quick.e2e_rows == 5000
    assert quick.memory_rows == bench.DEFAULT_MEMORY_ROWS // bench.QUICK_DIVISOR
    offered = quick.latency_rate * quick.latency_seconds
    assert offered == pytest.approx(
        bench.DEFAULT_LATENCY_RATE * bench.DEFAULT_LATENCY_SECONDS / bench.QUICK_DIVISOR
    )


def test_the_process_tree_holds_this_process_and_its_children():
    marker = "bench-sampler-test-child"
    child = subprocess.Popen([sys.executable, "-c", "import sys, time; time.sleep(60)", marker])
    try:
        tree = bench.process_tree(os.getpid(), bench.read_processes())

        pids = {info.pid for info in tree}
        assert {os.getpid(), child.pid} <= pids
        assert any(marker in info.command_line for info in tree if info.pid == child.pid)
    finally:
        child.kill()
        child.wait()


def test_the_sampler_finds_the_current_process_and_its_memory():
    sampler = bench.ResourceSampler(
        os.getpid(), {"this": lambda info: info.pid == os.getpid(), "none": lambda info: False}
    )

    sampler.sample()

    own_rss = bench.resident_bytes(os.getpid())
    assert 0 < sampler.peak_bytes["this"] <= 2 * own_rss
    assert sampler.peak_bytes["none"] == 0
    assert sampler.latest_bytes["this"] == sampler.peak_bytes["this"]


def test_a_memory_moment_reads_the_newest_checkpoint_per_key(tmp_path):
    for name, size in (("chk-3", 1000), ("chk-12", 1234)):
        checkpoint = tmp_path / "job-id" / name
        checkpoint.mkdir(parents=True)
        (checkpoint / "_metadata").write_bytes(b"x" * size)
    sampler = bench.ResourceSampler(os.getpid(), bench.FLINK_PROCESS_GROUPS)
    sampler.latest_bytes = {"jvm": 3 * 2**20, "python_workers": 2**20}

    moment = bench.memory_moment(sampler, tmp_path, keys=2, rows=500, seconds=1.26)

    assert moment == {
        "rows": 500,
        "seconds": 1.3,
        "jvm_mib": 3.0,
        "python_workers_mib": 1.0,
        "checkpoint": "chk-12",
        "state_bytes_per_key": 617,
    }


def test_no_checkpoint_yet_leaves_the_state_unmeasured(tmp_path):
    sampler = bench.ResourceSampler(os.getpid(), bench.FLINK_PROCESS_GROUPS)

    moment = bench.memory_moment(sampler, tmp_path, keys=5, rows=500, seconds=1.0)

    assert moment["checkpoint"] is None
    assert moment["state_bytes_per_key"] is None


def test_resident_memory_of_an_ended_process_is_zero():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()

    assert bench.resident_bytes(child.pid) == 0


def test_the_table_compares_figures_with_their_targets(capsys):
    def latency(p99_ms):
        return {
            "offered_rate": 20000,
            "checkpoint_interval": "1 s",
            "count": 3,
            "p50_ms": 800.0,
            "p99_ms": p99_ms,
            "max_ms": 2600.0,
        }

    sections = {
        "latency": {"exactly-once": latency(2500.0), "at-least-once": latency(1500.0)},
        "memory": {"error": "RuntimeError: the backtest exited"},
    }

    rows = bench.summary_rows(sections)

    latency_rows = [row for row in rows if row[0].startswith("latency")]
    assert "exactly-once" in latency_rows[0][0] and "at-least-once" in latency_rows[1][0]
    assert latency_rows[0][1:] == ("0.80 s / 2.50 s / 2.60 s", "p99 <= 2 s", "NO")
    assert latency_rows[1][1:] == ("0.80 s / 1.50 s / 2.60 s", "p99 <= 2 s", "yes")
    assert rows[-1][0] == "memory: FAILED"
    bench.print_table(rows, quick=True)
    assert "targets are for the full sizes" in capsys.readouterr().out


def test_memory_is_judged_over_the_whole_run_and_over_its_second_half():
    def moment(rows, python_mib):
        return {
            "rows": rows,
            "jvm_mib": 1000.0,
            "python_workers_mib": python_mib,
            "state_bytes_per_key": 4000,
        }

    curve = [moment(rows, mib) for rows, mib in ((100, 300.0), (500, 450.0), (1000, 460.0))]
    early, middle, end = curve
    figures = {
        "moments": {"early": early, "middle": middle, "end": end},
        "ratios": {"jvm": 1.0, "python_workers": 1.533, "state_per_key": 1.0},
        "second_half_ratios": {"jvm": 1.0, "python_workers": 1.022, "state_per_key": 1.0},
    }

    rows = {row[0]: row[1:] for row in bench.memory_rows(figures)}

    whole = rows["memory Python workers RSS, 1,000 over 100 rows of one run"]
    second_half = rows["memory Python workers RSS, 1,000 over 500 rows of one run"]
    assert whole == ("300 -> 460 MiB = 1.53x", "<= 1.2x", "NO")
    assert second_half == ("450 -> 460 MiB = 1.02x", "<= 1.2x", "yes")
    assert len(rows) == 6


def test_latencies_are_taken_from_the_stamps_of_the_alerted_rows_only():
    stamps = [(2, np.array([1000, 1010])), (4, np.array([1020, 1030]))]
    arrivals = {"f.csv:0": 5000.0, "f.csv:3": 2010.0, "f.csv:4": 1520.0}

    latencies = bench.alert_latencies(arrivals, stamps, rows=6)

    assert sorted(latencies) == [500.0, 1000.0]
