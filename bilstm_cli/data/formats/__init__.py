"""Dataset files: NPZ, CSV (long form), JSONL, Parquet and the UEA/UCR archive's formats.

Formats (documented in the README):

- NPZ: ``X`` float32 ``(N, T, F)`` (or ``(N, T)`` for one feature), ``y`` integer ``(N, T)``
  per step or ``(N,)`` per sequence, optional ``lengths`` ``(N,)`` for variable length and
  optional ``classes`` (text label names; ``y`` then holds indices into it).
- CSV: one row per (sequence, step): ``sequence,step,x,y`` (one feature) or
  ``sequence,step,x0,...,x{F-1},y``. Per-sequence labels repeat the label on every row.
- JSONL: one sequence per line, ``{"x": [...], "y": [...]}``; ``x`` is a list of numbers
  (one feature) or of lists (F features), ``y`` a list (per step) or a single label.
- Parquet (needs pyarrow): one row per sequence with list columns (as JSONL; ``parquet``) or
  long form (as CSV; ``parquet-long``), see :mod:`bilstm_cli.data.formats.parquet`.
- ``.ts``: read only, see :mod:`bilstm_cli.data.formats.ts`.
- UCR text (``ucr``): read only, ``.tsv`` and ``.txt`` files (the label, then the values, one
  series per line), see :mod:`bilstm_cli.data.formats.ucr`.
- ARFF (``arff``): read only, the archive's univariate and multivariate (relational) ``.arff``
  files, see :mod:`bilstm_cli.data.formats.arff`.

Every reader validates and raises :class:`DataError` naming the file, the line or row, and
what is wrong. ``-`` means standard input / output. Reading and writing: :mod:`bilstm_cli.data.io`;
this package module stays light (names only), for a fast ``--help``.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import UsageError

STDIN = "-"  # the file name that means standard input / output
FORMATS = ("csv", "npz", "jsonl", "ts", "parquet", "ucr", "arff")
# parquet-long: Parquet one row per step (reading tells the two Parquet layouts apart by the columns)
WRITABLE_FORMATS = ("csv", "npz", "jsonl", "parquet", "parquet-long")
BINARY_FORMATS = ("npz", "parquet", "parquet-long")  # never written to a terminal
PREDICTION_FORMATS = ("csv", "jsonl")  # what predict writes
_EXTENSIONS = {
    ".csv": "csv",
    ".npz": "npz",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".ts": "ts",
    ".parquet": "parquet",
    ".tsv": "ucr",  # the UCR archive's files; a .tsv that is not one is refused with a hint (ucr.HINT)
    ".txt": "ucr",
    ".arff": "arff",
}


def source_label(path: str) -> str:
    """How messages name a data source: the path, or ``<stdin>`` for ``-``."""
    return "<stdin>" if path == STDIN else path


def format_from_name(path: str, explicit: str | None = None) -> str | None:
    """The format given explicitly, else from the file extension; None for '-' (sniff)."""
    if explicit:
        return explicit
    if path == STDIN:
        return None
    suffix = Path(path).suffix.lower()
    if suffix not in _EXTENSIONS:
        raise UsageError(
            f"cannot tell the format of {path!r} from its extension",
            "use a name ending in .csv, .npz, .jsonl, .parquet, .ts, .tsv, .txt or .arff, "
            f"or pass --format ({'|'.join(FORMATS)})",
        )
    return _EXTENSIONS[suffix]


def sniff_format(head: bytes) -> str:
    if head.startswith(b"PK\x03\x04"):
        return "npz"
    if head.startswith(b"PAR1"):
        return "parquet"
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip()  # a UTF-8 byte-order mark is not content
    if text.startswith(b"{"):
        return "jsonl"
    if text.startswith((b"@", b"#", b"%")):
        # both archive formats start with comments and '@' lines: ARFF's first is @relation
        for line in text.splitlines():
            line = line.strip()
            if line and not line.startswith((b"#", b"%")):
                return "arff" if line.lower().startswith(b"@relation") else "ts"
        return "ts"
    if _all_numbers(text.split(b"\n", 1)[0]):
        return "ucr"  # a first line of numbers only: a label and values (CSV starts with its header)
    return "csv"


def _all_numbers(line: bytes) -> bool:
    fields = line.split(b",") if b"," in line else line.split()
    if len(fields) < 2:
        return False
    for field in fields[:-1]:  # the last may be cut off where the head ends
        try:
            float(field)
        except ValueError:
            return False
    return True
