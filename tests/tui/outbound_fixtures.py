"""Fixed outbound work for the Export, Retrieve and Storage commitments tabs' tests and
snapshots: export and retrieve tasks scheduled through core.services.tasks, then given the
statuses, times, messages and progress a queue shows after some work (no queue runs in
the console's archive, and the config pauses them anyway: rows stay as set), and storage
commitment results. A test module overrides `console_archive` with `outbound_archive`
(the console tests' archive with another exporter and peers)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import update

from core.archive import Archive
from core.config import RemoteAEConfig, parse
from core.db.models import StgCmtResult, StgCmtStatus, Task
from core.queue.claims import node_id
from core.queue.runner import Runner
from core.services import outbound
from core.services.context import ServiceContext
from core.services.tasks import TaskStatus
from tests.core.retrieve_support import Destination
from tests.tui import fixtures
from tests.tui.conftest import CONFIG

STUDIES = [study.uid for study in fixtures.STUDIES]
# Tasks were created in the minutes before the console's frozen clock (UTC noon).
START = datetime(2026, 1, 15, 11, 40, 0)
BATCH = "batch-export"
REFUSED = "Association rejected by STORESCP: called AE title not recognized (0x0007)"

# The Export tasks, oldest first: exporter, status, and what else differs.
EXPORTS: tuple[tuple[str, TaskStatus, dict[str, Any]], ...] = (
    ("STORESCP", TaskStatus.COMPLETED, {"completed": 3, "outcome_message": "Exported 3"}),
    ("STORESCP", TaskStatus.FAILED, {"num_failures": 10, "failed": 2, "error_message": REFUSED}),
    ("ORTHANC", TaskStatus.WARNING, {"completed": 1, "failed": 1, "outcome_message": "1 failed"}),
    ("STORESCP", TaskStatus.SCHEDULED_FOR_RETRY, {"num_failures": 2, "error_message": REFUSED}),
    ("ORTHANC", TaskStatus.SCHEDULED, {}),
    ("STORESCP", TaskStatus.SCHEDULED, {}),
    ("STORESCP", TaskStatus.SCHEDULED, {}),
)
RETRIEVES: tuple[tuple[str, TaskStatus, dict[str, Any]], ...] = (
    ("PACS2", TaskStatus.COMPLETED, {"completed": 4, "outcome_message": "Retrieved 4"}),
    ("PACS2", TaskStatus.IN_PROCESS, {"completed": 1, "remaining": 2}),
    ("PACS3", TaskStatus.SCHEDULED, {}),
)


# Another exporter, the peers retrieved from, and the queues paused (no queue runs in the
# console's archive anyway: a serving node on this config would leave the tasks be too).
MORE_CONFIG = """
[[remote_ae]]
title = "ORTHANC"
host = "127.0.0.1"
port = 4242

[[remote_ae]]
title = "PACS2"
host = "127.0.0.1"
port = 11114

[[remote_ae]]
title = "PACS3"
host = "127.0.0.1"
port = 11115

[[exporter]]
id = "ORTHANC"
kind = "dicom"
destination = "ORTHANC"

[[queue]]
name = "Export"
paused = true

[[queue]]
name = "Retrieve"
paused = true
"""


@contextmanager
def outbound_archive(folder: Path, db_url: str) -> Iterator[Archive]:
    """The console tests' archive (tests/tui/conftest.py) with MORE_CONFIG, in `folder`
    (the working folder)."""
    config_file = folder / "config.toml"
    config_file.write_text(CONFIG.format(root=folder, url=db_url) + MORE_CONFIG)
    config = parse(config_file.read_text(), source=str(config_file), base=folder)
    archive = Archive(config.model_copy(update={"source": config_file}))
    services = archive.open()
    fixtures.populate(services)
    try:
        yield archive
    finally:
        archive.stop()


@contextmanager
def exporting_to_a_peer(services: ServiceContext, delay: float) -> Iterator[Destination]:
    """The console's archive running its queue in this process, as the serving node does,
    with its remote AE STORESCP a pynetdicom storage SCP taking `delay` s for each store."""
    peer = Destination(delay=delay).start()
    services.config = services.config.model_copy(
        update={"remote_ae": (RemoteAEConfig(title="STORESCP", host="127.0.0.1", port=peer.port),)}
    )
    outbound.register(services)
    device = services.config.device.name
    runner = Runner(services.db, services.config.queues(), device, node_id(device), poll=0.1)
    runner.start()
    try:
        yield peer
    finally:
        runner.stop(30)
        peer.stop()


@dataclass(frozen=True)
class Outbound:
    """The pks of the tasks and results made, oldest first."""

    export: list[int]
    retrieve: list[int]
    results: list[int]


def _set(services: ServiceContext, pks: list[int], spec: tuple[tuple[Any, ...], ...], n0: int):
    with services.db.write() as session:
        for n, (pk, (_, status, more)) in enumerate(zip(pks, spec, strict=True)):
            created = START + timedelta(minutes=n0 + n)
            values = {
                "status": status,
                "created_time": created,
                "updated_time": created + timedelta(seconds=30),
                "scheduled_time": created,
                **more,
            }
            session.execute(update(Task).where(Task.pk == pk).values(**values))


def make_outbound(services: ServiceContext) -> Outbound:
    """Seven export tasks (two exporters, one batch) and three retrieve tasks, scheduled
    as the console and the export rules do (core.services.outbound), and six commitment
    results."""
    export_pks, retrieve_pks = [], []
    for n, (exporter, _, _) in enumerate(EXPORTS):
        entity = outbound.Entity(STUDIES[n % 5])
        export_pks += outbound.schedule_export(services, exporter, [entity], batch_id=BATCH)[1]
    for n, (remote, _, _) in enumerate(RETRIEVES):
        entity = outbound.Entity(STUDIES[n])
        retrieve_pks += outbound.schedule_retrieve(services, remote, [entity])[1]
    _set(services, export_pks, EXPORTS, 0)
    _set(services, retrieve_pks, RETRIEVES, len(EXPORTS))
    results = []
    statuses = (StgCmtStatus.COMPLETED, StgCmtStatus.FAILED, StgCmtStatus.WARNING)
    with services.db.write() as session:
        for n in range(6):
            at = START + timedelta(minutes=n)
            status = StgCmtStatus.PENDING if n == 5 else statuses[n % 3]
            found = StgCmtResult(
                transaction_uid=f"2.25.1000{n}",
                study_iuid=STUDIES[n % 2],
                local_aet="DCM4CHEE",
                remote_aet="ORTHANC" if n % 2 else "STORESCP",
                exporter_id="ORTHANC" if n % 2 else None,
                requested=6,
                failed={StgCmtStatus.FAILED: 6, StgCmtStatus.WARNING: 2}.get(status, 0),
                status=status,
                message="0110 processing failure" if status == StgCmtStatus.FAILED else None,
                created=at,
                updated=at + timedelta(seconds=5),
            )
            session.add(found)
            session.flush()
            results.append(found.pk)
    return Outbound(export_pks, retrieve_pks, results)
