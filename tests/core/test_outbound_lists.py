"""What the console's Export and Storage commitments lists read: export tasks of one
exporter (a filter on the task's parameters, also after a reschedule to another exporter),
commitment results page by page and deleted by pk, pks or filter, and the names of the
studies tasks are about; on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from core.archive import Archive
from core.config import Config
from core.db.models import StgCmtResult, StgCmtStatus
from core.services import commitment, outbound, studies, task_csv, tasks
from core.services.commitment import ResultFilter
from core.services.context import ServiceContext
from core.services.tasks import NewTask, TaskFilter
from tests.tui import fixtures

PEERS = """
[[remote_ae]]
title = "STORESCP"
host = "127.0.0.1"
port = 11113

[[exporter]]
id = "STORESCP"
kind = "dicom"
destination = "STORESCP"
"""


@pytest.fixture
def ctx(make_config: Callable[..., Config]) -> Iterator[ServiceContext]:
    """The services of an archive that is opened but runs no queue and no listener."""
    archive = Archive(make_config(PEERS))
    try:
        yield archive.open()
    finally:
        archive.stop()


def _export(exporter: str, study: str) -> NewTask:
    return NewTask("Export", "export", {"exporter": exporter, "study_uid": study}, study)


def test_export_tasks_of_one_exporter(ctx: ServiceContext) -> None:
    _, pks = tasks.schedule(ctx, [_export("A", "1.1"), _export("B", "1.2"), _export("A", "1.3")])
    assert tasks.count(ctx, TaskFilter(queue="Export", exporter="A")) == 2
    page = tasks.page(ctx, TaskFilter(exporter="B"), 10)
    assert [row.pk for row in page] == [pks[1]]
    # Rescheduled to another exporter: the filter follows the parameters.
    assert tasks.reschedule(ctx, pks[0], parameters={"exporter": "B"}, remote_aet="PEER_B") == 1
    assert tasks.get(ctx, pks[0]).remote_aet == "PEER_B"  # type: ignore[union-attr]
    assert [r.pk for r in tasks.page(ctx, TaskFilter(exporter="B"), 10)] == [pks[1], pks[0]]
    assert tasks.cancel(ctx, TaskFilter(queue="Export", exporter="A")) == 1
    assert tasks.get(ctx, pks[2]).status == "CANCELED"  # type: ignore[union-attr]
    assert tasks.count(ctx, TaskFilter(exporter="nobody")) == 0


def test_reschedule_export_to_another_exporter(ctx: ServiceContext) -> None:
    """The exporter's ID in the parameters and its destination on the row; an unknown
    exporter is refused by name and changes nothing."""
    exporter = ctx.config.exporter[0]
    _, (pk,) = tasks.schedule(ctx, [NewTask("Export", "export", {"exporter": "OLD"}, "1.1")])
    assert outbound.reschedule_export(ctx, pk, exporter.id) == 1
    row = tasks.get(ctx, pk)
    assert row is not None and row.parameters == {"exporter": exporter.id}
    assert row.remote_aet == exporter.destination and row.local_aet == ctx.config.ae[0].title
    with pytest.raises(ValueError, match="unknown exporter 'NOPE'"):
        outbound.reschedule_export(ctx, pk, "NOPE")
    assert tasks.get(ctx, pk).parameters == {"exporter": exporter.id}  # type: ignore[union-attr]


def test_tasks_as_csv(ctx: ServiceContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every matching task, newest first, across chunks; parameters as JSON."""
    monkeypatch.setattr(task_csv, "CHUNK", 2)
    _, pks = tasks.schedule(ctx, [_export("A" if n % 2 else "B", f"1.{n}") for n in range(5)])
    path = tmp_path / "out" / "export.csv"
    assert task_csv.save_csv(ctx, TaskFilter(queue="Export", exporter="B"), path) == 3
    lines = list(csv.DictReader(path.open(encoding="utf-8")))
    assert [int(line["pk"]) for line in lines] == [pks[4], pks[2], pks[0]]
    assert json.loads(lines[0]["parameters"]) == {"exporter": "B", "study_uid": "1.4"}
    assert lines[0]["status"] == "SCHEDULED" and lines[0]["error_message"] == ""
    assert not list(path.parent.glob("*.part"))


def _results(ctx: ServiceContext) -> None:
    start = datetime(2026, 1, 15, 11, 0)
    statuses = (StgCmtStatus.COMPLETED, StgCmtStatus.FAILED, StgCmtStatus.PENDING) * 2
    with ctx.db.write() as session:
        for n, status in enumerate(statuses):
            session.add(
                StgCmtResult(
                    transaction_uid=f"2.25.{n}",
                    study_iuid=f"1.{n % 2}",
                    local_aet="DCM4CHEE",
                    remote_aet="ORTHANC" if n < 3 else "STORESCP",
                    exporter_id="ORTHANC" if n < 3 else None,
                    requested=4,
                    failed=4 if status == StgCmtStatus.FAILED else 0,
                    status=status,
                    created=start + timedelta(minutes=n),
                    updated=start + timedelta(minutes=n),
                )
            )


def test_commitment_results_page_count_and_delete(ctx: ServiceContext) -> None:
    _results(ctx)
    everything = ResultFilter()
    assert commitment.count(ctx, everything) == 6
    first = commitment.page(ctx, everything, 4)
    assert [row.transaction_uid for row in first] == ["2.25.5", "2.25.4", "2.25.3", "2.25.2"]
    assert [row.transaction_uid for row in commitment.page(ctx, everything, 4, offset=4)] == [
        "2.25.1",
        "2.25.0",
    ]
    failed = ResultFilter(status="FAILED")
    assert [(r.failed, r.requested) for r in commitment.page(ctx, failed, 10)] == [(4, 4)] * 2
    assert commitment.count(ctx, ResultFilter(remote_aet="STORESCP", study_iuid="1.1")) == 2
    assert commitment.count(ctx, ResultFilter(exporter_id="ORTHANC")) == 3
    assert commitment.delete_results(ctx, first[0].pk) == 1
    assert commitment.delete_results(ctx, [first[1].pk, first[2].pk]) == 2
    assert commitment.delete_results(ctx, ResultFilter(status="PENDING")) == 1
    left = commitment.page(ctx, everything, 10)
    assert [row.transaction_uid for row in left] == ["2.25.1", "2.25.0"]


def test_study_labels_name_patient_and_description(ctx: ServiceContext) -> None:
    fixtures.populate(ctx)
    ct_chest, knee = fixtures.STUDIES[0], fixtures.STUDIES[2]
    found = studies.labels(ctx, [ct_chest.uid, knee.uid, "9.9.9"])
    assert found == {ct_chest.uid: "Doe^John · CT Chest", knee.uid: "Roe^Jane · MR Knee"}
    assert studies.labels(ctx, []) == {}
