"""Configuration › Remote AEs by keys: add, edit (a refused value keeps what was typed),
delete (after confirmation) — each saved to config.toml with its comments and used by the
running archive at once — and C-ECHO to a real peer and to a closed port."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from pynetdicom import AE
from pynetdicom.sop_class import Verification
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static

from core.config import ConfigWatcher, load
from tests.conftest import free_port
from tui.app import PacsConsole
from tui.screens.remote_form import RemoteAEForm
from tui.widgets.confirm import Confirm

Console = Callable[..., PacsConsole]


def rows(app: PacsConsole) -> dict[str, list[str]]:
    """The Remote AEs table: cells by AE title."""
    view = app.current_view()
    assert view is not None
    table = view.query_one(DataTable)
    return {str(key.value): [str(c) for c in table.get_row(key)] for key in table.rows}


def messages(app: PacsConsole) -> list[str]:
    return [n.message for n in app._notifications]


async def settle(pilot: Pilot, condition: Callable[[], bool], timeout: float = 10) -> None:
    """Let workers finish until `condition` holds."""
    for _ in range(int(timeout / 0.05)):
        await pilot.pause(0.05)
        if condition():
            return
    raise AssertionError("condition not met in time")


async def type_field(pilot: Pilot, text: str) -> None:
    """Replace the focused field's text, as a user would (ctrl+u clears it)."""
    await pilot.press("ctrl+u", *text)


@pytest.fixture
def peer() -> Iterator[int]:
    """A Verification SCP (pynetdicom) with AE title PEER on 127.0.0.1."""
    ae = AE(ae_title="PEER")
    ae.add_supported_context(Verification)
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False)
    try:
        yield port
    finally:
        server.shutdown()


async def test_add_edit_delete_by_keys_save_the_file_and_apply_at_once(
    make_console: Console,
) -> None:
    """`a` opens the form; title, host, port and enter save: the new [[remote_ae]] is in
    config.toml (the rest of the file as it was), the running archive knows it, and a
    config watcher of another serving process loads it. `e` changes the port; `d` then
    `y` deletes it."""
    app = make_console(start_view="remote")
    path = app.services.config.source
    assert path is not None
    original = path.read_text()
    before = app.services.config
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, lambda: "STORESCP" in rows(app))
        await pilot.press("n")
        await pilot.pause()
        assert isinstance(app.screen, RemoteAEForm)
        await pilot.press(*"PACS2", "enter", *"127.0.0.1", "enter", *"4242", "enter")
        await settle(pilot, lambda: "PACS2" in rows(app))
        assert not isinstance(app.screen, RemoteAEForm)
        added = '[[remote_ae]]\ntitle = "PACS2"\nhost = "127.0.0.1"\nport = 4242\n'
        assert path.read_text() == original.replace("\n[[exporter]]", f"\n{added}\n[[exporter]]")
        assert app.services.config.remote("PACS2").port == 4242  # type: ignore[union-attr]
        assert any(
            "Remote AE PACS2 added; saved to config.toml; applied" in m for m in messages(app)
        )
        # A worker process follows the file with its own watcher.
        elsewhere = [before]
        ConfigWatcher(lambda: elsewhere[0], lambda c: elsewhere.__setitem__(0, c)).check()
        assert [r.title for r in elsewhere[0].remote_ae] == ["STORESCP", "PACS2"]

        # Edit: the cursor on PACS2, a new port.
        await pilot.press("down")
        await pilot.press("e")
        await pilot.pause()
        form = app.screen
        assert isinstance(form, RemoteAEForm)
        assert form.values() == {"title": "PACS2", "host": "127.0.0.1", "port": "4242"}
        await pilot.press("tab", "tab")
        await type_field(pilot, "4243")
        await pilot.press("ctrl+s")
        await settle(pilot, lambda: rows(app).get("PACS2", [""])[2:3] == ["4243"])
        assert "port = 4243\n" in path.read_text()
        assert app.services.config.remote("PACS2").port == 4243  # type: ignore[union-attr]

        # Delete after confirmation.
        await pilot.press("delete")
        await pilot.pause()
        assert isinstance(app.screen, Confirm)
        await pilot.press("y")
        await settle(pilot, lambda: "PACS2" not in rows(app))
        assert path.read_text() == original
        assert app.services.config.remote("PACS2") is None


async def test_a_refused_value_keeps_the_form_and_what_was_typed(make_console: Console) -> None:
    """Port 70000: the form stays open with the reason naming the key, the typed values
    are still there, the file is untouched; correcting the port saves."""
    app = make_console(start_view="remote")
    path = app.services.config.source
    assert path is not None
    original = path.read_text()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, lambda: "STORESCP" in rows(app))
        await pilot.press("n", *"PACS2", "tab", *"10.0.0.9", "tab", *"70000", "enter")
        form = app.screen
        assert isinstance(form, RemoteAEForm)
        error = form.query_one("#remote-form-error", Static)
        await settle(pilot, lambda: "remote_ae[1].port" in str(error.render()))
        assert "less than or equal to 65535" in str(error.render())
        assert form.values() == {"title": "PACS2", "host": "10.0.0.9", "port": "70000"}
        assert path.read_text() == original
        assert app.services.config.remote("PACS2") is None
        assert form.query_one("#remote-form-port", Input).value == "70000"
        form.query_one("#remote-form-port", Input).focus()
        await type_field(pilot, "104")
        await pilot.press("enter")
        await settle(pilot, lambda: "PACS2" in rows(app))
        assert 'host = "10.0.0.9"\nport = 104\n' in path.read_text()


async def test_without_a_config_file_edits_say_that_a_file_is_needed(
    make_console: Console,
) -> None:
    """On the embedded defaults (no config file) `a` opens no form and says to start
    with --config FILE."""
    app = make_console(start_view="remote")
    app.services.config = app.services.config.model_copy(update={"source": None})
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, lambda: "STORESCP" in rows(app))
        await pilot.press("n")
        await pilot.pause()
        assert not isinstance(app.screen, RemoteAEForm)
        assert any("--config FILE" in m for m in messages(app))


async def test_echo_shows_success_with_round_trip_and_failure_with_reason(
    make_console: Console, peer: int
) -> None:
    """`c` on a remote AE that answers: success and milliseconds, in a notification and
    in the table; on a closed port: failure with the reason."""
    closed = free_port()
    app = make_console(start_view="remote")
    path = app.services.config.source
    assert path is not None
    text = path.read_text().replace("port = 11113", f"port = {closed}")
    text += f'\n[[remote_ae]]\ntitle = "PEER"\nhost = "127.0.0.1"\nport = {peer}\n'
    path.write_text(text)
    app.services.config = load(path)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, lambda: "PEER" in rows(app))
        await pilot.press("down", "p")
        await settle(pilot, lambda: rows(app)["PEER"][4].startswith("ok, "))
        assert rows(app)["PEER"][4].endswith(" ms")
        assert any(m.startswith("C-ECHO PEER: success in ") for m in messages(app))
        await pilot.press("up", "p")
        await settle(pilot, lambda: rows(app)["STORESCP"][4] == "failed")
        failure = next(m for m in messages(app) if m.startswith("C-ECHO STORESCP failed: "))
        assert f"127.0.0.1:{closed}" in failure and "refused" in failure.lower(), failure
