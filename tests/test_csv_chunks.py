"""Chunks of a CSV file for the backtest, and the keys its transactions go to."""

import numpy as np
import pytest
from pyflink.table import EnvironmentSettings, TableEnvironment

from jobs.fraud_drift_job import key_expression
from udfs.csv_chunks import Chunk, key_names, plan_chunks

HEADER = "step,type,amount"


@pytest.mark.parametrize("line_end", ["\n", "\r\n"])
@pytest.mark.parametrize("final_line_end", [True, False])
def test_chunks_hold_every_line_once_in_order_with_its_row(tmp_path, line_end, final_line_end):
    lines = [f"{row},TRANSFER,{row * 1.5}" for row in range(1000)]
    text = line_end.join([HEADER, *lines]) + (line_end if final_line_end else "")
    path = tmp_path / "file.csv"
    path.write_bytes(text.encode())

    chunks = plan_chunks(path, chunk_bytes=700)

    assert len(chunks) > 10
    read = [line for chunk in chunks for line in chunk.lines()]
    assert read == lines
    for chunk in chunks:
        assert chunk.lines()[0].split(",")[0] == str(chunk.first_row)
    assert chunks[0].start == len(HEADER) + len(line_end)
    assert chunks[-1].end == len(text.encode())


def test_a_file_with_a_header_alone_or_nothing_has_no_chunks(tmp_path):
    header_only, empty = tmp_path / "header.csv", tmp_path / "empty.csv"
    header_only.write_text(HEADER + "\n")
    empty.write_text("")

    assert plan_chunks(header_only) == []
    assert plan_chunks(empty) == []


def test_a_blank_line_inside_the_file_is_a_row_of_its_own(tmp_path):
    path = tmp_path / "blank.csv"
    path.write_text(f"{HEADER}\n0,A,1\n\n2,C,3\n")

    (chunk,) = plan_chunks(path)

    assert chunk == Chunk(str(path), len(HEADER) + 1, path.stat().st_size, 0)
    assert chunk.lines() == ["0,A,1", "", "2,C,3"]


def test_the_backtest_and_the_streaming_sql_shard_accounts_alike():
    names = ["C1231006815", "C84083671", "M1979787155", "C-7", "Cabc", "C", "C2147483647"]
    types = ["TRANSFER"] * len(names)
    table_env = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
    values = ", ".join(f"('{name}')" for name in names)

    for shards in (2, 3, 7):
        expression = key_expression("'TRANSFER'", "name", shards)
        rows = table_env.execute_sql(
            f"SELECT {expression} FROM (VALUES {values}) AS accounts(name)"
        ).collect()
        with rows:
            streaming_keys = [row[0] for row in rows]

        assert streaming_keys == key_names(np.array(types), np.array(names), shards).tolist()
