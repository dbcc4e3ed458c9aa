"""Configuration › Remote AEs: the peers the archive may connect to (move destinations,
exporters). Add, edit and delete them — saved to config.toml with its comments and order
kept, and used by the running archive at once — and verify one with C-ECHO."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.widgets import DataTable

from core.config import Config, RemoteAEConfig
from core.services import outbound, tasks
from core.services.config_edit import (
    add_remote_ae,
    apply_remote_aes,
    delete_remote_ae,
    update_remote_ae,
)
from core.services.context import ServiceContext
from core.services.verification import EchoResult, echo
from tui import keymap
from tui.screens.remote_form import RemoteAEForm
from tui.widgets.confirm import Confirm
from tui.widgets.form import FieldForm
from tui.widgets.table import filter_rows
from tui.widgets.view import View

NO_FILE = (
    "The console runs on the embedded defaults: there is no config file to save to. "
    "Start it with --config FILE (see config.toml.example) to edit remote AEs."
)


# How long an attached console waits for the serving node's C-ECHO.
ECHO_WAIT = 60.0


async def by_serving_node(services: ServiceContext, title: str) -> EchoResult:
    """Queue a C-ECHO of `title` for the serving node and wait for its answer."""
    started = time.monotonic()
    pk = await asyncio.to_thread(outbound.schedule_echo, services, title)
    while time.monotonic() - started < ECHO_WAIT:
        await asyncio.sleep(0.2)
        task = await asyncio.to_thread(tasks.get, services, pk)
        if task is None:
            return EchoResult(False, "the C-ECHO task was deleted", time.monotonic() - started)
        if task.status in ("COMPLETED", "FAILED", "CANCELED"):
            seconds = 0.0
            if task.ended_time and task.started_time:
                seconds = (task.ended_time - task.started_time).total_seconds()
            detail = task.outcome_message or task.error_message or str(task.status)
            return EchoResult(task.status == "COMPLETED", detail, seconds)
    waited = time.monotonic() - started
    return EchoResult(False, "the serving node did not run it (is `serve` running?)", waited)


class RemoteAEsView(View):
    """The [[remote_ae]] entries of config.toml, with the last C-ECHO result of each."""

    HELP = (
        "Remote AEs from config.toml. Changes are saved to the file (comments kept) and "
        "used at once by the running archive: no restart needed."
    )
    BINDINGS = keymap.bindings("remote", "create", "edit", "delete", "echo")

    def __init__(self) -> None:
        super().__init__()
        self.text = ""
        self.echoes: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        table: DataTable[str] = DataTable(id="remote-table", cursor_type="row", zebra_stripes=True)
        table.add_columns("AE title", "Host", "Port", "Used by", "Last C-ECHO")
        yield table

    def on_mount(self) -> None:
        self.reload()

    def rows(self) -> list[tuple[str, ...]]:
        config = self.services.config
        out = []
        for remote in config.remote_ae:
            users = [e.id for e in config.exporter if e.destination == remote.title]
            out.append(
                (
                    remote.title,
                    remote.host,
                    str(remote.port),
                    ", ".join(f"exporter {u}" for u in users),
                    self.echoes.get(remote.title, ""),
                )
            )
        return out

    def reload(self) -> None:
        table = self.query_one(DataTable)
        keep = self.selected()
        filter_rows(table, self.rows(), self.text)
        if keep is not None and keep.title in table.rows:
            table.move_cursor(row=table.get_row_index(keep.title))

    def filter(self, text: str) -> None:
        self.text = text
        filter_rows(self.query_one(DataTable), self.rows(), text)

    def selected(self) -> RemoteAEConfig | None:
        """The remote AE under the cursor."""
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self.services.config.remote(str(key))

    def _config_file(self) -> Path | None:
        path = self.services.config.source
        if path is None:
            self.notify(NO_FILE, title="Cannot save", severity="warning", timeout=10)
        return path

    # -- add / edit / delete -----------------------------------------------------------

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        # Enter on a row edits it, as enter opens the selected item everywhere.
        event.stop()
        self.action_edit()

    def action_create(self) -> None:
        """Open the form for a new remote AE."""
        path = self._config_file()
        if path is not None:
            self.app.push_screen(
                RemoteAEForm(
                    "Add remote AE",
                    {},
                    self._saver(lambda values: add_remote_ae(path, values), "added"),
                )
            )

    def action_edit(self) -> None:
        """Open the form on the selected remote AE."""
        remote = self.selected()
        if remote is None:
            self.notify("No remote AE selected", severity="warning")
            return
        path = self._config_file()
        if path is not None:
            values = {"title": remote.title, "host": remote.host, "port": str(remote.port)}
            self.app.push_screen(
                RemoteAEForm(
                    f"Edit remote AE {remote.title}",
                    values,
                    self._saver(
                        lambda values: update_remote_ae(path, remote.title, values), "saved"
                    ),
                )
            )

    def _saver(
        self, edit: Callable[[dict[str, str]], Config], verb: str
    ) -> Callable[[FieldForm, dict[str, str]], None]:
        def save(form: FieldForm, values: dict[str, str]) -> None:
            self.save_remote(form, edit, values, verb)

        return save

    @work(group="remote-save", exit_on_error=False)
    async def save_remote(
        self,
        form: FieldForm,
        edit: Callable[[dict[str, str]], Config],
        values: dict[str, str],
        verb: str,
    ) -> None:
        """Write the form's values to config.toml; a refusal stays in the form."""
        try:
            config = await asyncio.to_thread(edit, values)
        except Exception as exc:
            # The form is about this file: its name need not lead the reason.
            reason = str(exc) or type(exc).__name__
            form.refused(reason.removeprefix(f"{self.services.config.source}: "))
            return
        form.dismiss(None)
        self._applied(config, f"Remote AE {values['title'].strip()} {verb}")

    @work(group="remote-save", exit_on_error=False)
    async def action_delete(self) -> None:
        """Delete the selected remote AE, after confirmation."""
        remote = self.selected()
        if remote is None:
            self.notify("No remote AE selected", severity="warning")
            return
        path = self._config_file()
        if path is None:
            return

        ask = f"Delete remote AE {remote.title} ({remote.host}:{remote.port})?"
        if not await self.app.push_screen_wait(Confirm(ask, "Delete")):
            return
        config = await asyncio.to_thread(delete_remote_ae, path, remote.title)
        self._applied(config, f"Remote AE {remote.title} deleted")

    def _applied(self, saved: Config, what: str) -> None:
        apply_remote_aes(self.services, saved)
        self.reload()
        where = saved.source.name if saved.source else "config"
        # This process uses it now; serving processes elsewhere (worker processes, or the
        # `serve` an attached console works for) reload the file within seconds.
        if self.console.attached:
            tail = "the running serve applies it within seconds"
        elif self.services.config.network.processes > 0:
            tail = "applied (worker processes reload it within seconds)"
        else:
            tail = "applied"
        self.notify(f"{what}; saved to {where}; {tail}", title="Saved")

    # -- C-ECHO ------------------------------------------------------------------------

    def action_echo(self) -> None:
        """Send C-ECHO to the selected remote AE and show the answer."""
        remote = self.selected()
        if remote is None:
            self.notify("No remote AE selected", severity="warning")
            return
        config = self.services.config
        calling = config.ae[0].title
        attached = self.console.attached

        async def run() -> None:
            if attached:
                # The serving node sends it: the peer must answer the archive's host.
                result = await by_serving_node(self.services, remote.title)
            else:
                result = await asyncio.to_thread(
                    echo, remote.host, remote.port, remote.title, calling, config.network
                )
            ms = f"{result.seconds * 1000:.0f} ms"
            self.echoes[remote.title] = f"ok, {ms}" if result.ok else "failed"
            self.reload()
            if result.ok:
                self.notify(f"C-ECHO {remote.title}: success in {ms}", title="C-ECHO")
            else:
                self.notify(
                    f"C-ECHO {remote.title} failed: {result.detail}",
                    title="C-ECHO",
                    severity="error",
                )

        self.notify(f"C-ECHO {remote.title} at {remote.host}:{remote.port}…", timeout=2)
        # One echo per remote AE at a time; several remote AEs may be asked at once.
        self.run_worker(run(), group=f"remote-echo-{remote.title}", exit_on_error=False)
