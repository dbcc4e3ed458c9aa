"""Monitoring › Storage systems: each storage with its path, the space of its file system
and what the archive keeps there (object count and size, from the index)."""

from __future__ import annotations

import asyncio

from textual import work
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from core.services.storage_info import StorageInfo, storages
from tui import keymap
from tui.paths import short_path
from tui.widgets.live import refresh_while_showing
from tui.widgets.table import matches, sync_rows
from tui.widgets.view import View

REFRESH_SECONDS = 5.0
COLUMNS = ("ID", "Path", "Objects", "Archive size", "Used", "Free", "Total")


def size(n: int) -> str:
    """Bytes in the largest unit that keeps a number below 1000 (decimal, as df -H)."""
    units = ("B", "kB", "MB", "GB", "TB", "PB")
    value, unit = float(n), 0
    while value >= 1000 and unit < len(units) - 1:
        value /= 1000
        unit += 1
    return f"{n} B" if unit == 0 else f"{value:.1f} {units[unit]}"


def row(info: StorageInfo) -> tuple[str, ...]:
    return (
        info.id,
        short_path(info.path),
        f"{info.objects:,}",
        size(info.bytes),
        f"{size(info.used)} ({info.used_percent:.0f}%)",
        size(info.free),
        size(info.total),
    )


class StorageView(View):
    """The archive's storage systems, refreshed every few seconds."""

    HELP = "Storage systems: file system space and the objects the archive keeps there."
    BINDINGS = keymap.bindings("storage", "refresh", refresh="refresh now")
    DEFAULT_CSS = """
    StorageView #storage-summary { height: 1; padding: 0 1; background: $panel; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.text = ""
        self.latest: dict[str, tuple[str, ...]] = {}
        self.read = ""

    def compose(self) -> ComposeResult:
        yield Static("", id="storage-summary", markup=False)
        table: DataTable[str] = DataTable(id="storage-table", cursor_type="row", zebra_stripes=True)
        table.add_columns(*COLUMNS)
        yield table

    def on_mount(self) -> None:
        refresh_while_showing(self, REFRESH_SECONDS)

    @work(exclusive=True, group="storage", exit_on_error=False)
    async def reload(self) -> None:
        infos = await asyncio.to_thread(storages, self.services)
        self.latest = {info.id: row(info) for info in infos}
        self.read = self.read_at()
        self._show()

    def _show(self) -> None:
        shown = {key: cells for key, cells in self.latest.items() if matches(cells, self.text)}
        sync_rows(self.query_one(DataTable), shown)
        total = len(self.latest)
        text = f"{total} storage system{'s' if total != 1 else ''}"
        if self.text:
            text += f", {len(shown)} shown (filter: {self.text})"
        text += f" · read at {self.read} · refresh {REFRESH_SECONDS:.0f} s"
        self.query_one("#storage-summary", Static).update(text)

    def filter(self, text: str) -> None:
        self.text = text.strip()
        self._show()

    def action_refresh(self) -> None:
        """Read space and object counts again now."""
        self.reload()
