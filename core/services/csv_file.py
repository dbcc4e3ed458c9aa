"""Lists written as CSV files (the console's "Download CSV" of its lists, as dcm4chee's):
a header of column names, then a line per row, through a temporary file so that a
failure leaves no half-written file under the name asked for."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from pathlib import Path


def cell(value: object) -> object:
    """A value as a CSV cell: mappings as JSON, None as empty, tuples and lists of text
    joined by backslashes (as DICOM joins several values)."""
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, tuple | list):
        return "\\".join(str(v) for v in value)
    return "" if value is None else value


def write_csv(path: str | Path, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> int:
    """Write `columns` as the header, then each of `rows` (its cells through `cell`), to
    `path` (its folder created); returns the number of rows written."""
    target = Path(path).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    count = 0
    try:
        with partial.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(columns)
            for row in rows:
                writer.writerow([cell(value) for value in row])
                count += 1
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return count
