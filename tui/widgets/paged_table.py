"""A result table paged in the database: the view fetches one page at a time (offset,
limit) in a worker and hands it to `show`; `]` and `[` ask for the next and previous page.
Without a configured page size, a page is as many rows as the table shows: a new height
asks for the page again. `space` tags the row under the cursor (tags stay across pages,
by row key): actions apply to the tagged rows when there are any.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual import events
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.coordinate import Coordinate
from textual.message import Message
from textual.widgets import DataTable, Static

from tui import keymap
from tui.widgets.table import matches, plain

Row = tuple[str, Sequence[object]]
# Before the first cell of a tagged row.
TAG_MARK = "✓ "


class PagedTable(Vertical):
    """A DataTable showing one page of a result list, and a line saying which rows of how
    many are shown. The table's row keys are the keys given to `show`."""

    DEFAULT_CSS = """
    PagedTable { height: 1fr; }
    PagedTable > DataTable { height: 1fr; }
    PagedTable > .pager { height: 1; background: $panel; color: $text-muted; padding: 0 1; }
    """

    BINDINGS = keymap.bindings("page", "next_page", "previous_page", "tag")

    class PageRequested(Message):
        """The user asked for the page starting at `offset`: fetch it and call `show`."""

        def __init__(self, table: PagedTable, offset: int) -> None:
            super().__init__()
            self.table = table
            self.offset = offset

        @property
        def control(self) -> PagedTable:
            return self.table

    def __init__(
        self,
        columns: Sequence[str],
        *,
        page_size: int = 50,
        fixed: bool = True,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self.columns = list(columns)
        self.page_size = page_size
        # False: the page size follows the height (page_size is the start until laid out).
        self.fixed = fixed
        # The page size of the pages asked for so far.
        self.asked = page_size
        self.read_at = ""
        # Not `offset`: Widget.offset is a style property (where the widget is drawn).
        self.page_offset = 0
        # The page last asked for: `]]` typed in a burst steps twice, before either page
        # has been fetched.
        self.asked_offset = 0
        self.total = 0
        self.rows: list[Row] = []
        self.filter_text = ""
        # The keys of the tagged rows, in the order they were tagged.
        self.tagged: dict[str, None] = {}

    def compose(self) -> ComposeResult:
        table: DataTable[object] = DataTable(cursor_type="row", zebra_stripes=True)
        table.add_columns(*self.columns)
        yield table
        yield Static("no results", classes="pager", markup=False)

    @property
    def table(self) -> DataTable[object]:
        return self.query_one(DataTable)

    def show(self, rows: Sequence[Row], total: int, offset: int, read_at: str = "") -> None:
        """Show one page: `rows` (key, cells) starting at `offset` of `total` matches,
        read at `read_at` (a time of day, said in the pager line)."""
        self.rows = list(rows)
        self.total = total
        self.page_offset = self.asked_offset = offset
        self.read_at = read_at
        self._fill()
        self._fit()
        # Wide rows bring a horizontal scrollbar, which takes a row's line: once laid out,
        # the page may have to shrink to what shows.
        self.call_after_refresh(self._follow_height)

    def on_resize(self, event: events.Resize) -> None:
        self._follow_height()

    def _follow_height(self) -> None:
        """The page size becomes the rows that fit (unless fixed); a page shown is asked
        for again at that size."""
        rows = self.rows_shown()
        if self.fixed or rows < 1 or rows == self.page_size:
            return
        self.page_size = rows
        if self.read_at:
            self._fit()

    def _fit(self) -> None:
        """Ask again for the page shown when the size changed since it was asked for (it
        was read before the table was laid out, or the window was resized); only once a
        page is shown, since a request while one runs would cancel it. The first row
        stays: the page starts where it did."""
        if self.page_size != self.asked:
            self.asked = self.page_size
            self.post_message(self.PageRequested(self, self.page_offset))

    def rows_shown(self) -> int:
        """How many rows fit: the height less the pager, the header and a scrollbar."""
        table = self.table
        return self.size.height - 1 - table.header_height - table.scrollbar_size_horizontal

    def _fill(self) -> None:
        table = self.table
        with self.app.batch_update():
            table.clear()
            for key, cells in self.rows:
                if matches(cells, self.filter_text):
                    table.add_row(*plain(self._marked(key, cells)), key=key)
        self._say()

    def _say(self) -> None:
        self.query_one(".pager", Static).update(self.summary())

    def _marked(self, key: str, cells: Sequence[object]) -> list[object]:
        """The cells of a row, the first marked when the row is tagged."""
        out = list(cells)
        if out and key in self.tagged:
            out[0] = f"{TAG_MARK}{out[0]}"
        return out

    def summary(self) -> str:
        """E.g. "51-100 of 1,234 · page 2/25 · ] next  [ previous"."""
        read = f" · read at {self.read_at}" if self.read_at else ""
        if not self.total:
            return "no matches" + read
        last = self.page_offset + len(self.rows)
        pages = -(-self.total // self.page_size)
        page = self.page_offset // self.page_size + 1
        text = f"{self.page_offset + 1:,}-{last:,} of {self.total:,} · page {page}/{pages}"
        if self.filter_text:
            text += f" · filter {self.filter_text!r}: {self.table.row_count} shown"
        if self.tagged:
            text += f" · {len(self.tagged):,} tagged"
        if pages > 1:
            text += " · ] next  [ previous"
        return text + read

    def filter(self, text: str) -> None:
        """Show the rows of this page that contain `text` (empty: all)."""
        self.filter_text = text.strip()
        self._fill()

    def selected_key(self) -> str | None:
        """The key of the row under the cursor, or None for an empty table."""
        table = self.table
        if table.row_count == 0:
            return None
        return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    def action_tag(self) -> None:
        """Tag the row under the cursor, or untag it; the cursor moves to the next row
        (so that `space space space` tags three rows)."""
        key = self.selected_key()
        if key is None:
            return
        if key in self.tagged:
            del self.tagged[key]
        else:
            self.tagged[key] = None
        table = self.table
        row = table.cursor_coordinate.row
        cells = dict(self.rows).get(key)
        if cells:
            table.update_cell_at(
                Coordinate(row, 0), plain(self._marked(key, cells))[0], update_width=True
            )
        table.move_cursor(row=row + 1)
        self._say()

    def clear_tags(self) -> None:
        """Untag every row (another search, another study opened)."""
        if self.tagged:
            self.tagged.clear()
            self._fill()

    def action_next_page(self) -> None:
        if self.asked_offset + self.page_size < self.total:
            self._ask(self.asked_offset + self.page_size)

    def action_previous_page(self) -> None:
        if self.asked_offset > 0:
            self._ask(max(0, self.asked_offset - self.page_size))

    def _ask(self, offset: int) -> None:
        self.asked_offset = offset
        self.post_message(self.PageRequested(self, offset))
