"""Monitoring › Associations: the open associations of every serving process, live.

The rows come from the status files the serving processes write once a second
(core.services.status), so the in-process console and an attached one show the same.
Each refresh reads them in a worker and updates the table in place by key: the cursor
stays where it is and typing never waits for a refresh.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from core.services.status import AssociationInfo, Snapshot, run_dir, snapshot
from tui import keymap
from tui.widgets.live import refresh_while_showing
from tui.widgets.table import matches, sync_rows
from tui.widgets.view import View

REFRESH_SECONDS = 1.0
COLUMNS = ("Local AE", "Remote AE", "Address", "Opened", "Duration", "Operations", "Process")


def duration(seconds: float) -> str:
    """A duration as htop shows times: 45s, 3m 05s, 2h 07m."""
    seconds = max(int(seconds), 0)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def _info(entry: dict[str, Any]) -> AssociationInfo:
    return AssociationInfo(
        id=int(entry.get("id", 0)),
        local_ae=str(entry.get("local_ae", "")),
        remote_ae=str(entry.get("remote_ae", "")),
        peer_host=str(entry.get("peer_host", "")),
        peer_port=int(entry.get("peer_port", 0)),
        # Written by the serving process in its local time (no zone): this host's.
        opened=datetime.fromisoformat(entry["opened"]),
        operations=dict(entry.get("operations", {})),
        failures=dict(entry.get("failures", {})),
    )


def rows(status: Snapshot, now: float) -> dict[str, tuple[str, ...]]:
    """Table rows by key (process and association number) from a status snapshot."""
    out = {}
    for entry in status.associations:
        info = _info(entry)
        pid = entry.get("pid", "")
        out[f"{pid}:{info.id}"] = (
            info.local_ae,
            info.remote_ae,
            f"{info.peer_host}:{info.peer_port}",
            f"{info.opened:%H:%M:%S}",
            duration(now - info.opened.timestamp()),
            info.summary(),
            str(pid),
        )
    return out


class AssociationsView(View):
    """Open associations (local and remote AE, address, opened at, duration, operations
    with counts, serving process), refreshed every second."""

    HELP = "Open associations of every serving process, refreshed every second."
    BINDINGS = keymap.bindings("associations", "pause")
    DEFAULT_CSS = """
    AssociationsView #associations-summary {
        height: 1;
        padding: 0 1;
        background: $panel;
    }
    """

    def __init__(self) -> None:
        super().__init__()
        self.text = ""
        self.paused = False
        self.latest: dict[str, tuple[str, ...]] = {}
        self.processes = 0
        self.read = ""
        self._fetching = False

    def compose(self) -> ComposeResult:
        yield Static("", id="associations-summary", markup=False)
        table: DataTable[str] = DataTable(
            id="associations-table", cursor_type="row", zebra_stripes=True
        )
        table.add_columns(*COLUMNS)
        yield table

    def on_mount(self) -> None:
        refresh_while_showing(self, REFRESH_SECONDS, paused=lambda: self.paused)

    def reload(self) -> None:
        if self._fetching:
            return  # a slow disk: let the running read finish instead of piling up
        self._fetching = True
        self.read_status(run_dir(self.services.config.storage.path), self.console.clock())

    @work(group="associations", exit_on_error=False)
    async def read_status(self, folder: Path, now: float) -> None:
        """Read the status files and show them."""
        try:
            status = await asyncio.to_thread(snapshot, folder, now=now)
        except Exception as exc:
            self.notify(f"Cannot read the status of the archive: {exc}", severity="error")
            return
        finally:
            self._fetching = False
        self.latest = rows(status, now)
        self.processes = status.processes
        self.read = self.read_at()
        self._show()

    def _show(self) -> None:
        shown = {key: cells for key, cells in self.latest.items() if matches(cells, self.text)}
        sync_rows(self.query_one(DataTable), shown)
        total = len(self.latest)
        text = f"{total} open association{'s' if total != 1 else ''}"
        if self.text:
            text += f", {len(shown)} shown (filter: {self.text})"
        text += f" · {self.processes} serving process{'es' if self.processes != 1 else ''}"
        text += f" · read at {self.read}"
        text += " · paused (z)" if self.paused else " · refresh 1 s"
        self.query_one("#associations-summary", Static).update(text)

    def filter(self, text: str) -> None:
        self.text = text.strip()
        self._show()

    def action_pause(self) -> None:
        """Stop or restart the live refresh (to read a busy list calmly)."""
        self.paused = not self.paused
        self._show()
