"""Writing a dataset that arrives in blocks (consecutive pieces of it) as one file, holding one
block in memory at a time: what lets ``bilstm generate`` write millions of sequences.

The file is the one :func:`bilstm_cli.data.io.write_dataset` writes for the whole dataset at once:
CSV byte for byte (one header; the ``sequence`` numbers continue across blocks), Parquet the same
table, written with one row group per block. Like every write of the project it is atomic (a
temporary file beside the target, renamed at the end; removed on an error or Ctrl-C).
"""

from __future__ import annotations

import errno
import itertools
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..errors import DataError, first_line, os_error
from ..fileio import atomic
from .dataset import Dataset
from .formats import csv, parquet

BLOCKWISE_FORMATS = ("csv", "parquet", "parquet-long")  # the formats write_blocks writes


def write_blocks(blocks: Iterable[Dataset], path: str, fmt: str) -> None:
    """Write ``blocks``, consecutive pieces of one dataset, to the file ``path`` in format ``fmt``
    (one of BLOCKWISE_FORMATS), atomically. ``blocks`` may be a generator: each block is drawn
    when the previous one is written."""
    if fmt not in BLOCKWISE_FORMATS:
        raise ValueError(f"cannot write {fmt!r} block by block; one of {', '.join(BLOCKWISE_FORMATS)}")
    try:
        with atomic.atomic_path(path) as temporary:
            if fmt == "csv":
                _write_csv(blocks, temporary)
            else:
                _write_parquet(blocks, temporary, "long" if fmt == "parquet-long" else "rows")
    except OSError as exc:  # pyarrow's I/O errors are OSErrors too (with the errno)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            exc.filename = exc.filename or path
            raise os_error(exc) from None  # NoSpace: "no space left on the device holding ..."
        raise DataError(
            f"cannot write {path}: {exc.strerror or first_line(exc)}", "check that the folder exists and is writable"
        ) from None


def _write_csv(blocks: Iterable[Dataset], temporary: Path) -> None:
    with open(temporary, "wb") as handle:
        first = 0
        for block in blocks:
            handle.write(csv_block(block, first_sequence=first, header=first == 0))
            first += block.size


def csv_block(dataset: Dataset, first_sequence: int = 0, header: bool = True) -> bytes:
    """One block's CSV bytes: its sequences numbered from ``first_sequence``, the header only
    in the first block (tests/test_generate.py checks the blocks make ``csv.encode`` of the whole)."""
    return csv.encode(dataset, first_sequence, header)


def _write_parquet(blocks: Iterable[Dataset], temporary: Path, layout: str) -> None:
    pa, pq = parquet._pyarrow()  # a clear message when pyarrow is not installed
    tables = _parquet_tables(pa, blocks, layout)
    first = next(tables, None)
    if first is None:
        raise ValueError("no blocks to write")
    dictionary = _dictionary_columns(pa, first.schema)
    with pq.ParquetWriter(str(temporary), first.schema, use_dictionary=dictionary) as writer:
        for table in itertools.chain([first], tables):
            # row_group_size: one row group per block (pyarrow's default would split a long
            # block of more than 1 Mi rows)
            writer.write_table(table, row_group_size=max(1, table.num_rows))


def _parquet_tables(pa, blocks: Iterable[Dataset], layout: str) -> Iterator:
    """The pyarrow table of each block, as ``parquet.encode`` builds it for the whole dataset."""
    first = 0
    for block in blocks:
        yield parquet.to_table(block, layout, first_sequence=first)  # long form numbers sequences
        first += block.size


def _dictionary_columns(pa, schema) -> list[str]:
    """The Parquet columns worth dictionary-encoding: all but the features. pyarrow's default
    tries a dictionary for every column, and random feature values fill one (1 MiB) with
    distinct values before it gives up: in a row group of 65,536 sequences x 10 steps that
    makes the file ~20% larger and its writing ~50% slower than plain encoding."""
    columns = []
    for field in schema:
        if field.name == "x" or (field.name[:1] == "x" and field.name[1:].isdigit()):
            continue
        path, kind = field.name, field.type
        while pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
            path, kind = f"{path}.list.element", kind.value_type  # the leaf column's Parquet path
        columns.append(path)
    return columns
