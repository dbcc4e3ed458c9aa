"""A paged table read again every few seconds (the Queues tab's tasks): when a refresh
brings the same rows in the same order, their cells change in place (no flicker; the
cursor and scroll stay); and besides rows tagged with `space`, all rows matching the
view's filter can be tagged at once (`*`), on every page."""

from __future__ import annotations

from collections.abc import Sequence

from tui.widgets.paged_table import TAG_MARK, PagedTable
from tui.widgets.table import matches, sync_rows


class LivePagedTable(PagedTable):
    """PagedTable with rows updated in place and an "all matching" tag. `taggable`
    False: `space` does nothing (e.g. a table of counts)."""

    def __init__(self, *args: object, taggable: bool = True, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.taggable = taggable
        # Every row matching the filter is tagged, on every page.
        self.all_tagged = False

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return self.taggable or action != "tag"

    def _fill(self) -> None:
        shown = [
            (key, self._marked(key, cells))
            for key, cells in self.rows
            if matches(cells, self.filter_text)
        ]
        table = self.table
        if [str(key.value) for key in table.rows] != [key for key, _ in shown]:
            super()._fill()
            return
        sync_rows(table, dict(shown))
        self._say()

    def _marked(self, key: str, cells: Sequence[object]) -> list[object]:
        if self.all_tagged and cells:
            return [f"{TAG_MARK}{cells[0]}", *cells[1:]]
        return super()._marked(key, cells)

    def summary(self) -> str:
        text = super().summary()
        return f"all matching tagged · {text}" if self.all_tagged else text

    def action_tag(self) -> None:
        if self.all_tagged:
            self.notify("All matching are tagged: * untags them", severity="warning")
            return
        super().action_tag()

    def tag_all(self, tag: bool) -> None:
        """Tag every row matching the filter (True), or untag everything."""
        self.tagged.clear()
        self.all_tagged = tag
        self._fill()

    def clear_tags(self) -> None:
        if self.all_tagged:
            self.all_tagged = False
            self._fill()
        super().clear_tags()
