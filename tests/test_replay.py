"""Replaying CSV files into the real Kafka broker."""

import gzip
import json

import pytest

from scripts import replay
from tests.conftest import consume_all
from udfs.transactions import FIELDS

SCENARIO = replay.Path(__file__).resolve().parent.parent / "data" / "scenarios" / "sudden.csv.gz"
ROWS = 3000


@pytest.fixture(scope="module")
def scenario_lines():
    with gzip.open(SCENARIO, "rt") as handle:
        return [next(handle).rstrip("\n") for _ in range(ROWS + 1)]


def test_a_compressed_file_arrives_as_typed_json_keyed_by_origin(
    make_topic, producer, scenario_lines
):
    topic = make_topic("replay")

    sent_per_type = replay.replay(SCENARIO, topic, limit=ROWS, producer=producer)

    records = consume_all(topic, ROWS)
    first = json.loads(records[0].value)
    expected = dict(zip(FIELDS, scenario_lines[1].split(","), strict=True))
    assert len(records) == ROWS == sent_per_type.total()
    assert first["transaction_id"] == "sudden.csv.gz:0"
    assert records[0].key.decode() == expected["nameOrig"]
    assert first["amount"] == float(expected["amount"])
    assert first["isFraud"] == int(expected["isFraud"])
    types = [line.split(",")[1] for line in scenario_lines[1:]]
    assert dict(sent_per_type) == {name: types.count(name) for name in set(types)}


def test_the_progress_bar_follows_the_file_to_its_end(
    make_topic, producer, scenario_lines, tmp_path, capsys
):
    small = tmp_path / "small.csv.gz"
    with gzip.open(small, "wt") as handle:
        handle.write("\n".join(scenario_lines) + "\n")

    replay.replay(small, make_topic("replay-progress"), producer=producer, show_progress=True)

    bar = capsys.readouterr().err.rstrip().split("\r")[-1]
    assert bar.startswith("[" + "#" * replay.PROGRESS_BAR_WIDTH + "] 100%")
    assert f"{ROWS:,} sent" in bar


def test_a_file_without_the_paysim_header_is_refused(make_topic, producer, tmp_path):
    headless = tmp_path / "headless.csv"
    headless.write_text("1,PAYMENT,9.0,C1,10.0,1.0,M2,0.0,0.0,0,0\n")

    with pytest.raises(ValueError, match="must start with the PaySim header"):
        replay.replay(headless, make_topic("replay-bad"), producer=producer)
