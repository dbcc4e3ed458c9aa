"""Configuration › Exporters: where studies can be exported to."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import DataTable

from tui.widgets.table import filter_rows
from tui.widgets.view import View


class ExportersView(View):
    """The [[exporter]] entries of config.toml, with the peer each one reaches."""

    HELP = "Exporters from config.toml (the export queue comes with a later release)."

    def compose(self) -> ComposeResult:
        table: DataTable[str] = DataTable(
            id="exporters-table", cursor_type="row", zebra_stripes=True
        )
        table.add_columns("ID", "Kind", "Destination", "Reaches")
        yield table

    def on_mount(self) -> None:
        self.reload()

    def rows(self) -> list[tuple[str, ...]]:
        config = self.services.config
        out = []
        for exporter in config.exporter:
            remote = config.remote(exporter.destination)
            reaches = f"{remote.host}:{remote.port}" if remote else exporter.destination
            out.append((exporter.id, exporter.kind.value, exporter.destination, reaches))
        return out

    def reload(self) -> None:
        filter_rows(self.query_one(DataTable), self.rows(), "")

    def filter(self, text: str) -> None:
        filter_rows(self.query_one(DataTable), self.rows(), text)
