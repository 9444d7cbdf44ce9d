"""A PaySim CSV file cut into chunks of whole lines, and the keys its transactions go to.

A backtest reads its file in Python, a chunk at a time, instead of line by line in the JVM: the
job's source holds only :class:`Chunk` descriptors, and each chunk crosses into Python once,
where Arrow splits and types all of its lines together (see
:func:`udfs.transactions.parse_csv_lines`). :func:`plan_chunks` finds the chunk boundaries and
the row each chunk starts at with one pass of byte counting over the file.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass

import numpy as np
import pandas as pd

from udfs.engine_config import SHARD_SEPARATOR

# About 20,000 PaySim lines: large enough that a chunk's fixed costs vanish, small enough that
# a key's windows start before the file is half read.
DEFAULT_CHUNK_BYTES = 1_500_000
NEWLINE = b"\n"


@dataclass(frozen=True)
class Chunk:
    """Bytes ``[start, end)`` of ``path``: whole lines, the first of them data row ``first_row``
    (0-based, header excluded)."""

    path: str
    start: int
    end: int
    first_row: int

    def lines(self):
        """The chunk's lines as strings, without line ends; a blank last line is dropped."""
        with open(self.path, "rb") as handle:
            handle.seek(self.start)
            data = handle.read(self.end - self.start)
        lines = data.decode("utf-8").replace("\r\n", "\n").split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        return lines


def plan_chunks(path, chunk_bytes=DEFAULT_CHUNK_BYTES):
    """The chunks of the CSV file ``path``, after its header line, in file order."""
    chunks = []
    with open(path, "rb") as handle:
        size = handle.seek(0, 2)
        if size == 0:
            return chunks
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            header_end = data.find(NEWLINE)
            start = size if header_end < 0 else header_end + 1
            first_row = 0
            while start < size:
                boundary = data.find(NEWLINE, min(start + chunk_bytes, size) - 1)
                end = size if boundary < 0 else boundary + 1
                chunks.append(Chunk(str(path), start, end, first_row))
                first_row += data[start:end].count(NEWLINE)
                if data[end - 1 : end] != NEWLINE:
                    first_row += 1  # a last line without a line end
                start = end
    return chunks


def account_shards(names, shards):
    """Shard of each account name: its number (the digits after PaySim's C or M) modulo
    ``shards``; 0 for a name without a number. The streaming job's SQL computes the same."""
    if shards == 1:
        return np.zeros(len(names), dtype=np.int64)
    numbers = pd.to_numeric(pd.Series(names, dtype=object).str.slice(1), errors="coerce")
    numbers = numbers.fillna(0).to_numpy(dtype=np.float64).astype(np.int64)
    # Remainder with the dividend's sign, then its size: SQL's ABS(MOD(x, n)).
    return np.abs(np.fmod(numbers, shards))


def key_names(types, names, shards):
    """The key of each transaction: its type, or ``TYPE/shard`` by origin account."""
    if shards == 1:
        return np.asarray(types)
    shard_names = account_shards(names, shards).astype(str)
    prefixes = np.char.add(np.asarray(types, dtype=str), SHARD_SEPARATOR)
    return np.char.add(prefixes, shard_names)
