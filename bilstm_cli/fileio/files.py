"""JSON and CSV files written atomically, with the project's number formatting."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from . import atomic
from .jsonable import jsonable


def write_json(path: Path, data: Any) -> None:
    atomic.write_text(path, json.dumps(jsonable(data), indent=2, allow_nan=False) + "\n")


def write_csv(path: Path, header: tuple[str, ...] | list[str], rows: list[tuple]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if isinstance(v, float) and math.isnan(v) else _short(v) for v in row])
    atomic.write_text(path, buffer.getvalue())


def _short(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value
