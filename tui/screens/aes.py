"""Configuration › Archive AEs: the AE titles this archive answers to."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import DataTable

from tui.widgets.restart_notice import RestartNotice
from tui.widgets.table import filter_rows
from tui.widgets.view import View


class ArchiveAEsView(View):
    """Each archive AE with its address, view and services. Changing them needs a restart
    (ports are bound at start): edit config.toml."""

    HELP = (
        "The archive's own AEs. Edit config.toml to change them; a line here says when "
        "the archive must be restarted to apply a change."
    )

    def compose(self) -> ComposeResult:
        yield RestartNotice(markup=False)
        table: DataTable[str] = DataTable(id="aes-table", cursor_type="row", zebra_stripes=True)
        table.add_columns("AE title", "Host", "Port", "View", "Services")
        yield table

    def on_mount(self) -> None:
        self.reload()

    def rows(self) -> list[tuple[str, ...]]:
        return [
            (
                ae.title,
                ae.host,
                str(ae.port),
                ae.view.value,
                ", ".join(s.value for s in ae.services),
            )
            for ae in self.services.config.ae
        ]

    def reload(self) -> None:
        filter_rows(self.query_one(DataTable), self.rows(), "")

    def filter(self, text: str) -> None:
        filter_rows(self.query_one(DataTable), self.rows(), text)
