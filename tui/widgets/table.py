"""Helpers for DataTables: fill from rows with a filter, update in place by key."""

from __future__ import annotations

from collections.abc import Sequence

from rich.markup import escape
from textual.widgets import DataTable


def plain(cells: Sequence[object]) -> list[object]:
    """The cells as a DataTable must be given them to show their text as it is: it reads
    a string as markup, so `MPPS[uid=...]` or a description `Chest [PA]` lost its
    brackets and what was between them."""
    return [escape(cell) if isinstance(cell, str) else cell for cell in cells]


def matches(cells: Sequence[object], text: str) -> bool:
    """True when any cell contains `text`, ignoring case (empty text matches all)."""
    needle = text.strip().lower()
    return not needle or any(needle in str(cell).lower() for cell in cells)


def filter_rows(table: DataTable, rows: Sequence[Sequence[object]], text: str) -> None:
    """Show the `rows` that match `text` (the first cell is the row key)."""
    table.clear()
    for row in rows:
        if matches(row, text):
            table.add_row(*plain(row), key=str(row[0]))


def sync_rows(table: DataTable, rows: dict[str, Sequence[object]]) -> None:
    """Bring `table` to `rows` (key -> cells) in place: update changed cells, add new rows,
    remove gone ones; a live table never flickers or loses its cursor. A column widens
    when a value outgrows it (a growing count is never cut)."""
    columns = list(table.columns)
    current = {str(key.value) for key in table.rows}
    with table.app.batch_update():
        for key in current - rows.keys():
            table.remove_row(key)
        for key, cells in rows.items():
            if key in current:
                for column, value in zip(columns, plain(cells), strict=False):
                    if table.get_cell(key, column) != value:
                        table.update_cell(key, column, value, update_width=True)
            else:
                table.add_row(*plain(cells), key=key)
