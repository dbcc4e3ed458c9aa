"""`pacs-console console --attach`: a console in its own process on the database and
storage of a running `pacs-console serve` (with its worker processes) sees what the
serving node stores and its open associations, and its edits reach the serving node."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, evt
from pynetdicom.sop_class import (
    CTImageStorage,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)
from textual.widgets import Input

from core.archive import Archive
from core.config import load
from core.services import tasks
from core.services.context import ServiceContext
from core.services.tasks import TaskFilter
from tests import dicomgen
from tests.conftest import Served, free_port, make_config_text, nodelay
from tests.test_cli import pacs_console
from tests.tui.pilot import settle
from tui.app import PacsConsole
from tui.screens.patients import PatientsView
from tui.screens.studies import StudiesView
from tui.screens.study_form import EditForm
from tui.widgets.paged_table import PagedTable

Serve = Callable[..., Served]


@pytest.fixture
def served(serve: Serve, tmp_path: Path) -> Served:
    """`serve` with two worker processes, and one study of three CT images stored."""
    port = free_port()
    extra = "\n[network]\nprocesses = 2\n"
    url = f"sqlite:///{tmp_path / 'archive.db'}"
    running = serve(make_config_text(tmp_path, url, port, extra), port)
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(CTImageStorage)
    assoc = nodelay(ae.associate("127.0.0.1", port, ae_title="DCM4CHEE"))
    assert assoc.is_established
    study, series = generate_uid(), generate_uid()
    for i in range(3):
        ds = dicomgen.ct(study, series, PatientID="ATT-1", PatientName="Attach^Ann", seed=i)
        assert assoc.send_c_store(ds).Status == 0
    assoc.release()
    running.study = study  # type: ignore[attr-defined]
    return running


@pytest.fixture
def attached(served: Served) -> Iterator[ServiceContext]:
    """The services of an attached console (this test process): no listeners."""
    archive = Archive(load(served.config))
    services = archive.attach()
    try:
        yield services
    finally:
        archive.stop()


def test_attach_refuses_a_database_without_the_schema(tmp_path: Path) -> None:
    """Nothing serving there: one line naming the database, exit status 2."""
    config = tmp_path / "config.toml"
    config.write_text(make_config_text(tmp_path, f"sqlite:///{tmp_path / 'none.db'}", free_port()))
    result = pacs_console("console", "--attach", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "none.db" in lines[0] and "schema" in lines[0]


async def test_attached_console_shows_open_associations_of_the_worker_processes(
    served: Served, attached: ServiceContext
) -> None:
    """An association held open on a worker process of `serve` shows in the attached
    console's Associations tab, and leaves it when released."""
    ae = AE(ae_title="HOLDER")
    ae.add_requested_context(Verification)
    assoc = nodelay(ae.associate("127.0.0.1", served.port, ae_title="DCM4CHEE"))
    assert assoc.is_established
    app = PacsConsole(attached, None, start_view="associations")
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            view = app.current_view()
            assert view is not None

            async def shown() -> str:
                await pilot.pause(0.3)
                from textual.widgets import DataTable

                table = view.query_one(DataTable)
                return " ".join(str(cell) for key in table.rows for cell in table.get_row(key))

            deadline = time.monotonic() + 15
            while "HOLDER" not in await shown():
                assert time.monotonic() < deadline, "the association never showed"
            assert app.attached and app.sub_title == "attached"
            assoc.release()
            deadline = time.monotonic() + 15
            while "HOLDER" in await shown():
                assert time.monotonic() < deadline, "the released association stayed"
    finally:
        if assoc.is_established:
            assoc.release()


async def test_remote_ae_added_in_the_attached_console_is_a_move_destination_of_serve(
    served: Served, attached: ServiceContext
) -> None:
    """A remote AE added in the attached console's Remote AEs tab is saved to the
    serving node's config.toml, and its worker processes take it as a C-MOVE destination
    without a restart: A801 before, every instance moved after."""
    received: list[str] = []
    peer = AE(ae_title="NEWPEER")
    peer.add_supported_context(CTImageStorage)

    def on_store(event: Any) -> int:
        received.append(event.request.AffectedSOPInstanceUID)
        return 0

    peer_port = free_port()
    server = peer.start_server(
        ("127.0.0.1", peer_port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)]
    )
    try:
        assert move(served, "NEWPEER") == [0xA801]
        app = PacsConsole(attached, None, start_view="remote")
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause(0.5)
            await pilot.press("n")
            await pilot.pause()
            await pilot.press(*"NEWPEER", "enter", *"127.0.0.1", "enter", *str(peer_port))
            await pilot.press("enter")
            for _ in range(50):
                await pilot.pause(0.1)
                if "NEWPEER" in served.config.read_text():
                    break
        assert f"port = {peer_port}" in served.config.read_text()
        # Each worker process polls the file every 2 s: its next move finds NEWPEER.
        deadline = time.monotonic() + 20
        while (statuses := move(served, "NEWPEER"))[-1] != 0:
            assert statuses[-1] == 0xA801, statuses
            assert time.monotonic() < deadline, "serve never took the new remote AE"
            time.sleep(0.5)
        assert len(set(received)) == 3
    finally:
        server.shutdown()


async def test_an_attached_consoles_echo_is_sent_by_the_serving_node(
    serve: Serve, tmp_path: Path
) -> None:
    """`p` in the attached console's Remote AEs tab queues a C-ECHO task (queue
    Verification) that `serve` runs: the peer sees the serving node's association and
    the console says the answer; a peer that is down fails at once, without retries."""
    callers: list[int] = []
    peer = AE(ae_title="ECHOSCP")
    peer.add_supported_context(Verification)

    def on_echo(event: Any) -> int:
        callers.append(event.assoc.requestor.port)
        return 0

    peer_port, down_port, port = free_port(), free_port(), free_port()
    server = peer.start_server(
        ("127.0.0.1", peer_port), block=False, evt_handlers=[(evt.EVT_C_ECHO, on_echo)]
    )
    extra = (
        f'\n[[remote_ae]]\ntitle = "ECHOSCP"\nhost = "127.0.0.1"\nport = {peer_port}\n'
        f'\n[[remote_ae]]\ntitle = "DOWN"\nhost = "127.0.0.1"\nport = {down_port}\n'
    )
    url = f"sqlite:///{tmp_path / 'archive.db'}"
    running = serve(make_config_text(tmp_path, url, port, extra), port)
    archive = Archive(load(running.config))
    services = archive.attach()
    try:
        app = PacsConsole(services, None, start_view="remote")
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press("p")
            await settle(pilot)
            await pilot.press("down", "p")
            await settle(pilot)
            said = [n.message for n in app._notifications]
        assert any(m.startswith("C-ECHO ECHOSCP: success in") for m in said), said
        assert any(m.startswith("C-ECHO DOWN failed:") for m in said), said
        assert len(callers) == 1
        rows = tasks.page(services, TaskFilter(queue="Verification"), 10)
        assert {(t.remote_aet, str(t.status), t.num_failures) for t in rows} == {
            ("ECHOSCP", "COMPLETED", 0),
            ("DOWN", "FAILED", 1),
        }
        # Run by the serving node's process, not this one.
        assert all(str(running.proc.pid) in (t.claimed_by or "") for t in rows)
    finally:
        archive.stop()
        server.shutdown()


def move(served: Served, destination: str) -> list[int]:
    """C-MOVE the served study to `destination`; the statuses of the responses."""
    ae = AE(ae_title="MOVER")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
    assoc = nodelay(ae.associate("127.0.0.1", served.port, ae_title="DCM4CHEE"))
    assert assoc.is_established
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.StudyInstanceUID = served.study  # type: ignore[attr-defined]
    try:
        return [
            status.Status
            for status, _ in assoc.send_c_move(
                identifier, destination, StudyRootQueryRetrieveInformationModelMove
            )
            if status
        ]
    finally:
        assoc.release()


async def test_attached_console_shows_the_studies_and_patients_of_serve_and_edits_reach_it(
    served: Served, attached: ServiceContext
) -> None:
    """The study stored through `serve` is in the attached console's Studies and
    Patients tabs; a description edited there is what `serve` answers to C-FIND."""
    app = PacsConsole(attached, None, start_view="studies")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        studies = app.current_view()
        assert isinstance(studies, StudiesView)
        table = studies.current_table.table
        assert [str(table.get_row_at(i)[0]) for i in range(table.row_count)] == ["Attach^Ann"]
        await pilot.press("e")
        await settle(pilot)
        assert isinstance(app.screen, EditForm)
        app.screen.query_one("#edit-form-StudyDescription", Input).value = "Edited attached"
        await pilot.press("ctrl+s")
        await settle(pilot)
        await pilot.press("colon", *"patients", "enter")
        await settle(pilot)
        patients = app.current_view()
        assert isinstance(patients, PatientsView)
        rows = patients.query_one(PagedTable).table
        assert [str(rows.get_row_at(i)[1]) for i in range(rows.row_count)] == ["ATT-1"]
    assert find_description(served) == "Edited attached"


def find_description(served: Served) -> str:
    """StudyDescription of the served study, by C-FIND to `serve`."""
    ae = AE(ae_title="FINDER")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    assoc = nodelay(ae.associate("127.0.0.1", served.port, ae_title="DCM4CHEE"))
    assert assoc.is_established
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.StudyInstanceUID = served.study  # type: ignore[attr-defined]
    identifier.StudyDescription = ""
    try:
        found = [
            ds.StudyDescription
            for status, ds in assoc.send_c_find(
                identifier, StudyRootQueryRetrieveInformationModelFind
            )
            if status and status.Status in (0xFF00, 0xFF01)
        ]
    finally:
        assoc.release()
    assert len(found) == 1
    return str(found[0])
