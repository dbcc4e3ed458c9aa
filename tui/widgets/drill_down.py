"""The base of list views that drill down level by level (study → series → instances;
patients): one paged table per level, the level in view, filter, reload and paging of
the table in view, the cursor kept on its row across a reload."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from tui.widgets.paged_table import PagedTable
from tui.widgets.view import View


class DrillDownView(View):
    """Subclasses name their levels in LEVELS (level -> id of its table, top level
    first), yield `paged_table(...)` for each and implement `fetch(level, offset)`."""

    LEVELS: ClassVar[dict[str, str]] = {}

    def __init__(self) -> None:
        super().__init__()
        self.level = next(iter(self.LEVELS))

    def paged_table(self, level: str, columns: Sequence[str]) -> PagedTable:
        """The table of `level`: pages of [console] page_size rows when the config sets
        it, else as many rows as the table shows."""
        console = self.services.config.console
        fixed = "page_size" in console.model_fields_set
        return PagedTable(columns, page_size=console.page_size, fixed=fixed, id=self.LEVELS[level])

    def table_of(self, level: str) -> PagedTable:
        """The table of a level."""
        return self.query_one(f"#{self.LEVELS[level]}", PagedTable)

    @property
    def current_table(self) -> PagedTable:
        return self.table_of(self.level)

    def show_level(self) -> None:
        """Show the table of the level in view (the others hidden); its keys apply."""
        for level in self.LEVELS:
            self.table_of(level).display = level == self.level
        self.refresh_bindings()

    def fetch(self, level: str, offset: int) -> None:
        """Read the page of `level` at `offset` (in a worker) and show it."""
        raise NotImplementedError

    def focus_default(self) -> None:
        self.current_table.table.focus()

    def filter(self, text: str) -> None:
        self.current_table.filter(text)

    def reload(self) -> None:
        self.fetch(self.level, self.current_table.page_offset)

    def on_paged_table_page_requested(self, event: PagedTable.PageRequested) -> None:
        level = next(name for name, id in self.LEVELS.items() if id == event.table.id)
        self.fetch(level, event.offset)

    @staticmethod
    def keep_cursor(table: PagedTable, key: str | None) -> None:
        """Put the cursor back on the row of `key` when the page shown has it."""
        if key is not None and key in table.table.rows:
            table.table.move_cursor(row=table.table.get_row_index(key))
