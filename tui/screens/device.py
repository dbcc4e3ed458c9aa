"""Configuration › Device: what this archive is and where its data lives."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import DataTable

from tui.paths import short_path, short_url
from tui.widgets.restart_notice import RestartNotice
from tui.widgets.table import filter_rows
from tui.widgets.view import View


class DeviceView(View):
    """The device's settings as the running archive uses them (read from config.toml)."""

    HELP = "The device: its name, database, storage and network settings."

    def compose(self) -> ComposeResult:
        yield RestartNotice(markup=False)
        table: DataTable[str] = DataTable(id="device-table", cursor_type="row", zebra_stripes=True)
        table.add_columns("Setting", "Value")
        yield table

    def on_mount(self) -> None:
        self.reload()

    def rows(self) -> list[tuple[str, str]]:
        config = self.services.config
        net = config.network
        rows = [
            ("Device name", config.device.name),
            ("Config file", short_path(config.source) if config.source else "(embedded defaults)"),
            ("Console", "attached to a running serve" if self.console.attached else "in-process"),
            ("Database", short_url(config.database.url)),
            ("Storage", f"{config.storage.id} at {short_path(config.storage.path)}"),
            ("Worker processes", str(net.processes)),
            ("Max associations", str(net.max_associations)),
            ("Max PDU length", f"{net.max_pdu_length} bytes"),
            ("ACSE timeout", f"{net.acse_timeout:g} s"),
            ("DIMSE timeout", f"{net.dimse_timeout:g} s"),
            ("Idle timeout", f"{net.idle_timeout:g} s"),
            ("Log level", config.log.level),
        ]
        return rows

    def reload(self) -> None:
        filter_rows(self.query_one(DataTable), self.rows(), "")

    def filter(self, text: str) -> None:
        filter_rows(self.query_one(DataTable), self.rows(), text)
