"""Dataset files read a chunk at a time, for files larger than the memory budget.

A chunk is a run of whole sequences that can be read on its own, any number of times, in any
order:

- CSV and JSONL: a byte range of whole lines, cut where a new sequence starts (CSV: a row
  whose ``sequence`` differs from the previous row's; JSONL: any line). Finding the cuts reads
  the file once; each chunk is then parsed by the format's own reader, so errors and numbers
  are those of a whole-file read (lines are numbered from the top of the file).
- Parquet: a row range: a row group (long form: the sequences that start in it), or a slice of a
  larger one (cut where a sequence starts).
- NPZ: a range of sequences of the memory-mapped arrays (the archive must be uncompressed, as
  ``numpy.savez`` writes it).

Other formats (``.ts``, UCR, ARFF) are read whole.
"""

from __future__ import annotations

import io
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from .dataset import Dataset

STREAMABLE_FORMATS = ("csv", "jsonl", "parquet", "parquet-long", "npz")
# Bytes a Parquet table's rows take while read into a Dataset, per byte of their decoded columns
# (measured: 10M sequences, 448 MB decoded, read whole with a 7.5 GB peak)
HELD_PER_DECODED_BYTE = 17.0
NEWLINE = 10


@dataclass(frozen=True)
class Chunk:
    """``start``/``stop``: bytes (CSV, JSONL), rows (Parquet) or sequences (NPZ);
    ``first_line``: the file line of a text chunk's first row (for messages)."""

    start: int
    stop: int
    first_line: int = 0


def open_reader(path: str, fmt: str, chunk_bytes: int):
    """The chunk reader of a file in a streamable format; ``chunk_bytes``: about how much of
    the file (text) or of its decoded arrays (NPZ) one chunk holds."""
    if fmt == "csv":
        return CsvChunks(path, chunk_bytes)
    if fmt == "jsonl":
        return JsonlChunks(path, chunk_bytes)
    if fmt in ("parquet", "parquet-long"):
        return ParquetChunks(path, chunk_bytes)
    if fmt == "npz":
        return NpzChunks(path, chunk_bytes)
    raise DataError(f"{path}: {fmt} files cannot be streamed", f"convert it to one of {', '.join(STREAMABLE_FORMATS)}")


# ---------------------------------------------------------------------------- text formats


class _TextChunks:
    """Byte ranges of whole lines, each starting at a sequence's first line."""

    header_lines = 0

    def __init__(self, path: str, chunk_bytes: int):
        self.path = path
        self.chunk_bytes = max(1, int(chunk_bytes))

    def _sequence_starts(self, header: bytes, lines: bytes, line_starts: np.ndarray, first_line: int) -> np.ndarray:
        """Indices of the lines of ``lines`` that start a sequence (the first one always does)."""
        raise NotImplementedError

    def chunks(self) -> Iterator[Chunk]:
        with open(self.path, "rb") as file:
            header = b"".join(file.readline() for _ in range(self.header_lines))
            start, line = len(header), self.header_lines + 1
            pending = b""  # whole lines read but not yet given to a chunk; starts a sequence
            while True:
                block = file.read(self.chunk_bytes)
                data = pending + block
                if not block:  # end of file: the rest is the last chunk
                    if data.strip():
                        yield Chunk(start, start + len(data), line)
                    return
                end = data.rfind(b"\n") + 1
                if end == 0:
                    pending = data  # no whole line yet
                    continue
                lines = data[:end]
                newlines = np.flatnonzero(np.frombuffer(lines, np.uint8) == NEWLINE)
                line_starts = np.concatenate([[0], newlines[:-1] + 1])
                starts = self._sequence_starts(header, lines, line_starts, line)
                cut = int(starts[-1])  # the last sequence may go on past this block
                if cut == 0:  # one sequence so far: read on until the next one starts
                    pending = data
                    continue
                offset = int(line_starts[cut])
                yield Chunk(start, start + offset, line)
                start, line, pending = start + offset, line + cut, data[offset:]

    def _text(self, chunk: Chunk) -> str:
        with open(self.path, "rb") as file:
            file.seek(chunk.start)
            raw = file.read(chunk.stop - chunk.start)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = chunk.first_line + raw[: exc.start].count(b"\n")
            raise DataError(f"{self.path}, line {line}: not UTF-8 text", "save the file as UTF-8") from None


class CsvChunks(_TextChunks):
    """Long-form CSV: a sequence's rows must be together (as ``bilstm generate`` writes them)."""

    header_lines = 1

    def __init__(self, path: str, chunk_bytes: int):
        super().__init__(path, chunk_bytes)
        with open(path, "rb") as file:
            self.header = file.readline().decode("utf-8-sig", errors="replace")

    def _sequence_starts(self, header, lines, line_starts, first_line):
        import pandas as pd

        try:
            frame = pd.read_csv(
                io.BytesIO(header + lines),
                usecols=lambda name: str(name).strip() == "sequence",
                dtype=str,
                keep_default_na=False,
                skip_blank_lines=False,
                skipinitialspace=True,
            )
        except (pd.errors.ParserError, ValueError) as exc:
            raise DataError(f"{self.path}, near line {first_line}: malformed CSV: {str(exc).strip()}") from None
        if frame.shape[1] != 1:
            raise DataError(
                f"{self.path}: no 'sequence' column (found: {self.header.strip()})",
                "the CSV header must be sequence,step,x,y or sequence,step,x0,x1,...,y",
            )
        ids = frame.iloc[:, 0].str.strip().to_numpy()
        if len(ids) != len(line_starts):
            raise DataError(
                f"{self.path}, near line {first_line}: {len(line_starts)} lines hold {len(ids)} rows",
                "a streamed CSV needs one row per line: no quoted line breaks",
            )
        return np.concatenate([[0], np.flatnonzero(ids[1:] != ids[:-1]) + 1])

    def read(self, chunk: Chunk, task: str | None) -> Dataset:
        from .formats import csv

        return csv.read(self.header + self._text(chunk), self.path, task, first_line=chunk.first_line)


class JsonlChunks(_TextChunks):
    """JSONL: every line is a sequence."""

    def _sequence_starts(self, header, lines, line_starts, first_line):
        return np.arange(len(line_starts))

    def read(self, chunk: Chunk, task: str | None) -> Dataset:
        from .formats import jsonl

        return jsonl.read(self._text(chunk), self.path, first_line=chunk.first_line)


# ---------------------------------------------------------------------------- Parquet


class ParquetChunks:
    """Row ranges of a Parquet file: row groups, or slices of a row group where reading one whole
    would take more than ``chunk_bytes`` (long form: cut only where a sequence starts)."""

    def __init__(self, path: str, chunk_bytes: int):
        self.path = path
        self.chunk_bytes = max(1, int(chunk_bytes))
        self._file = None
        self._lock = threading.Lock()  # one reader, shared by training's prefetch and validation

    def __getstate__(self):  # an open file does not travel to a worker process: it reopens
        return {"path": self.path, "chunk_bytes": self.chunk_bytes, "_file": None}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _open(self):
        if self._file is None:
            from .formats.parquet import _pyarrow

            _, pq = _pyarrow()
            try:
                self._file = pq.ParquetFile(self.path)
            except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a damaged file
                raise DataError(f"{self.path}: not a readable Parquet file ({exc})") from None
            rows = [self._file.metadata.row_group(i).num_rows for i in range(self._file.metadata.num_row_groups)]
            self._group_starts = np.concatenate([[0], np.cumsum(rows)]).astype(np.int64)
        return self._file

    def chunks(self) -> Iterator[Chunk]:
        file = self._open()
        names = file.schema_arrow.names
        long_form = "sequence" in names and "step" in names and not _is_list_column(file.schema_arrow, "x")
        starts = self._group_starts
        begin, previous_id = 0, None
        for group in range(len(starts) - 1):
            first, end = int(starts[group]), int(starts[group + 1])
            if end == first:
                continue
            meta = file.metadata.row_group(group)
            rows = max(
                1, int(self.chunk_bytes // max(1.0, HELD_PER_DECODED_BYTE * meta.total_byte_size / meta.num_rows))
            )
            if long_form:  # rows where a sequence starts (one may go on from the previous group)
                ids = file.read_row_group(group, columns=["sequence"]).column(0).to_numpy(zero_copy_only=False)
                change = np.flatnonzero(ids[1:] != ids[:-1]) + 1
                opens = ids[0] != previous_id if previous_id is not None else True
                starts_here = first + np.concatenate([[0] if opens else [], change]).astype(np.int64)
                previous_id = ids[-1]
            else:
                starts_here = np.arange(first, end, dtype=np.int64)
            while True:  # slices of about ``rows`` rows inside the group
                index = int(np.searchsorted(starts_here, begin + rows))
                if index >= len(starts_here):
                    break
                yield Chunk(begin, int(starts_here[index]))
                begin = int(starts_here[index])
            # end the chunk with the group (long form: where its last sequence starts, which may go on)
            cut = end if not long_form else (int(starts_here[-1]) if len(starts_here) else begin)
            if group == len(starts) - 2:
                cut = end
            if cut > begin:
                yield Chunk(begin, cut)
                begin = cut

    def read(self, chunk: Chunk, task: str | None) -> Dataset:
        from .formats import parquet

        with self._lock:
            file = self._open()
            first = int(np.searchsorted(self._group_starts, chunk.start, side="right") - 1)
            last = int(np.searchsorted(self._group_starts, chunk.stop, side="left"))
            table = file.read_row_groups(list(range(first, last)))
        table = table.slice(chunk.start - int(self._group_starts[first]), chunk.stop - chunk.start)
        return parquet.from_table(table, f"{self.path} (rows {chunk.start}..{chunk.stop - 1})", task)


def _is_list_column(schema, name: str) -> bool:
    import pyarrow as pa

    if name not in schema.names:
        return False
    kind = schema.field(name).type
    return pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)


# ---------------------------------------------------------------------------- NPZ


class NpzChunks:
    """Ranges of sequences of an uncompressed NPZ archive's arrays, memory-mapped."""

    def __init__(self, path: str, chunk_bytes: int):
        self.path = path
        self.chunk_bytes = max(1, int(chunk_bytes))
        self._arrays = None

    def __getstate__(self):
        return {"path": self.path, "chunk_bytes": self.chunk_bytes, "_arrays": None}

    def _open(self) -> dict[str, np.ndarray]:
        if self._arrays is None:
            self._arrays = _map_npz(self.path)
            if "X" not in self._arrays:
                raise DataError(f"{self.path}: NPZ has no array 'X' (found: {', '.join(self._arrays) or 'nothing'})")
        return self._arrays

    def chunks(self) -> Iterator[Chunk]:
        x = self._open()["X"]
        per_sequence = max(1, int(np.prod(x.shape[1:])) * 4)
        size = max(1, self.chunk_bytes // per_sequence)
        for start in range(0, x.shape[0], size):
            yield Chunk(start, min(start + size, x.shape[0]))

    def read(self, chunk: Chunk, task: str | None) -> Dataset:
        from .formats import npz

        arrays = self._open()
        part = {
            name: (array if name == "classes" else np.array(array[chunk.start : chunk.stop]))
            for name, array in arrays.items()
        }
        return npz.from_arrays(part, f"{self.path} (sequences {chunk.start}..{chunk.stop - 1})")


def _map_npz(path: str) -> dict[str, np.ndarray]:
    """Every array of an uncompressed NPZ archive as a read-only memory map (``classes``: read)."""
    arrays = {}
    try:
        with zipfile.ZipFile(path) as archive, open(path, "rb") as raw:
            for info in archive.infolist():
                name = Path(info.filename).stem
                if info.compress_type != zipfile.ZIP_STORED:
                    raise DataError(
                        f"{path}: array {name!r} is compressed, so it cannot be memory-mapped for streaming",
                        "save it with numpy.savez (not savez_compressed), or raise data.memory_limit to read it whole",
                    )
                raw.seek(info.header_offset)
                local = raw.read(30)
                name_length, extra_length = (
                    int.from_bytes(local[26:28], "little"),
                    int.from_bytes(local[28:30], "little"),
                )
                raw.seek(info.header_offset + 30 + name_length + extra_length)
                version = np.lib.format.read_magic(raw)
                read_header = (
                    np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                )
                shape, fortran, dtype = read_header(raw)
                if dtype.hasobject:
                    raise DataError(f"{path}: array {name!r} holds Python objects; bilstm reads only plain arrays")
                if name == "classes":
                    arrays[name] = np.fromfile(raw, dtype=dtype, count=int(np.prod(shape))).reshape(shape)
                    continue
                arrays[name] = np.memmap(
                    path, dtype=dtype, mode="r", offset=raw.tell(), shape=shape, order="F" if fortran else "C"
                )
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise DataError(f"{path}: not a readable NPZ archive ({type(exc).__name__}: {exc})") from None
    return arrays
