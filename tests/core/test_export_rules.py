"""Export rules and the IAN of received studies (core.services.forwarding): what arrives
and meets a rule is exported to DCMTK's storescp, one task per entity, objects arriving
within the delay joining it; every received study is notified to the [ian] destinations
(a pynetdicom IAN SCP) after its quiet delay; bad rules are config errors naming them."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from pydicom import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE
from sqlalchemy import select

from core.archive import Archive
from core.config import ConfigError, load, parse
from core.db.engine import Database
from core.db.models import Task, TaskStatus
from core.queue.schedule import NewTask, schedule_or_postpone
from core.services import tasks
from core.services.tasks import TaskFilter, TaskRow
from tests import dicomgen
from tests.conftest import Served, archive_port, free_port, make_config_text
from tests.core.export_support import (
    StoreSCP,
    exporter,
    services_of,
    study_datasets,
)
from tests.core.retrieve_support import remote_ae
from tests.core.stgcmt_support import IANSCP
from tests.core.store_support import store as upload

ENDED = (TaskStatus.COMPLETED, TaskStatus.WARNING, TaskStatus.FAILED)


def rule(
    name: str, conditions: str, *, entity: str = "study", delay: str = "PT1S", **more: str
) -> str:
    """An [[export_rule]] to the exporter STORESCP; `conditions` as TOML inline table."""
    extra = "".join(f"{key} = {value}\n" for key, value in more.items())
    return (
        f'\n[[export_rule]]\nname = "{name}"\nentity = "{entity}"\nexporters = ["STORESCP"]\n'
        f'conditions = {conditions}\ndelay = "{delay}"\n{extra}'
    )


def send(port: int, datasets: Iterable[Dataset], called: str = "DCM4CHEE") -> None:
    """C-STORE `datasets` over one association to the archive AE `called`."""
    datasets = list(datasets)
    ae = AE(ae_title="MODALITY")
    for sop_class in {ds.SOPClassUID for ds in datasets}:
        ae.add_requested_context(sop_class, [str(datasets[0].file_meta.TransferSyntaxUID)])
    assoc = ae.associate("127.0.0.1", port, ae_title=called)
    assert assoc.is_established
    try:
        assert [assoc.send_c_store(ds).Status for ds in datasets] == [0] * len(datasets)
    finally:
        assoc.release()


def written(arc: Archive) -> list[TaskRow]:
    """Every task, once what the archive noted of stored objects is written."""
    assert arc.forwarder is not None
    assert arc.forwarder.flush()
    return tasks.page(services_of(arc), TaskFilter(), 100)


def wait_until(check: Callable[[], object], timeout: float = 20) -> object:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
    return result


def target(storescp: StoreSCP) -> str:
    return remote_ae("STORESCP", storescp.port) + exporter("STORESCP", "dicom", "STORESCP")


def test_a_rule_exports_a_study_in_one_task_across_two_associations(
    start_archive: Callable[..., Archive], storescp: Callable[..., StoreSCP]
) -> None:
    """Modality = CT: a CT study sent over two associations within the delay is one
    export task, postponed by the second, that sends every instance to storescp."""
    scp = storescp()
    arc = start_archive(target(scp) + rule("Forward CT", '{ Modality = "CT" }', delay="PT1.5S"))
    services = services_of(arc)
    datasets = study_datasets(series=2, instances=2)
    send(archive_port(arc), datasets[:2])
    (first,) = written(arc)
    assert (first.queue, first.type, first.status) == ("Export", "export", "SCHEDULED")
    assert first.parameters == {"exporter": "STORESCP", "study_uid": datasets[0].StudyInstanceUID}
    send(archive_port(arc), datasets[2:])
    (again,) = written(arc)
    assert again.pk == first.pk and again.scheduled_time > first.scheduled_time
    done = wait_until(lambda: (t := tasks.get(services, first.pk)) and t.status in ENDED and t)
    assert isinstance(done, TaskRow) and done.status == TaskStatus.COMPLETED
    assert (done.completed, done.failed) == (4, 0)
    assert done.started_time is not None and done.started_time >= again.scheduled_time
    assert set(scp.received()) == {str(ds.SOPInstanceUID) for ds in datasets}
    assert [t.pk for t in written(arc)] == [first.pk]


def test_negated_and_unmet_conditions_schedule_nothing(
    start_archive: Callable[..., Archive],
) -> None:
    """`!MR` keeps an MR study back and lets a CT study through; a rule on a value the
    object lacks, or has otherwise, matches nothing; a value matches whole (CT is not
    CTX), any one of several values matching."""
    arc = start_archive(
        remote_ae("STORESCP", free_port())
        + exporter("STORESCP", "dicom", "STORESCP")
        + rule("Not MR", '{ Modality = "!MR" }', delay="PT1M")
        + rule("Head", '{ Modality = "CT", BodyPartExamined = "HEAD" }', delay="PT1M")
        + rule("Prefix", '{ Modality = "C" }', delay="PT1M")
        + rule("Window", '{ ImageType = "AXIAL" }', delay="PT1M")
    )
    port = archive_port(arc)
    send(port, [dicomgen.ct(Modality="MR", BodyPartExamined="HEAD")])
    assert written(arc) == []
    ct = dicomgen.ct(ImageType=["ORIGINAL", "PRIMARY", "AXIAL"])
    send(port, [ct])
    rows = written(arc)
    # "Not MR" and "Window" (one value of three); one task each rule, same exporter and
    # study: they are one task.
    assert [(t.parameters["study_uid"], t.status) for t in rows] == [
        (ct.StudyInstanceUID, "SCHEDULED")
    ]


def test_entity_series_makes_one_task_per_series(start_archive: Callable[..., Archive]) -> None:
    arc = start_archive(
        remote_ae("STORESCP", free_port())
        + exporter("STORESCP", "dicom", "STORESCP")
        + rule("Series", "{}", entity="series", delay="PT1M")
    )
    datasets = study_datasets(series=2, instances=3)
    send(archive_port(arc), datasets)
    rows = written(arc)
    assert sorted(t.parameters["series_uid"] for t in rows) == sorted(
        {str(ds.SeriesInstanceUID) for ds in datasets}
    )
    assert {t.study_iuid for t in rows} == {datasets[0].StudyInstanceUID}
    assert all("sop_uid" not in t.parameters for t in rows)


def test_entity_instance_and_aes_restrict_to_the_receiving_ae(
    start_archive: Callable[..., Archive],
) -> None:
    """`aes` = ["OTHER"]: objects received by DCM4CHEE are not exported, those received
    by OTHER (same port) are, one task per instance."""
    port = free_port()
    extra = (
        f'\n[[ae]]\ntitle = "OTHER"\nhost = "127.0.0.1"\nport = {port}\n'
        + remote_ae("STORESCP", free_port())
        + exporter("STORESCP", "dicom", "STORESCP")
        + rule("Other only", "{}", entity="instance", delay="PT1M", aes='["OTHER"]')
    )
    arc = start_archive(extra, port=port)
    send(port, study_datasets(series=1, instances=2), called="DCM4CHEE")
    assert written(arc) == []
    datasets = study_datasets(series=1, instances=2)
    send(port, datasets, called="OTHER")
    assert sorted(t.parameters["sop_uid"] for t in written(arc)) == sorted(
        str(ds.SOPInstanceUID) for ds in datasets
    )


def test_console_uploads_meet_rules_without_aes(start_archive: Callable[..., Archive]) -> None:
    """What the console stores (core.services.upload's ingest) is forwarded too, by the
    rules for every receiving AE only: it was received by none."""
    arc = start_archive(
        remote_ae("STORESCP", free_port())
        + exporter("STORESCP", "dicom", "STORESCP")
        + rule("Any AE", "{}", delay="PT1M")
        + rule("By DCM4CHEE", "{}", entity="instance", delay="PT1M", aes='["DCM4CHEE"]')
    )
    ds = dicomgen.ct()
    upload(services_of(arc), ds)
    assert [t.parameters for t in written(arc)] == [
        {"exporter": "STORESCP", "study_uid": ds.StudyInstanceUID}
    ]


def test_ian_after_the_quiet_delay_postponed_by_later_objects(
    start_archive: Callable[..., Archive],
) -> None:
    """[ian]: one IAN per study per destination, sent once no object of the study came
    for `delay`; an object within the delay postpones it and is in it."""
    peer = IANSCP().start()
    try:
        arc = start_archive(
            remote_ae(peer.title, peer.port)
            + f'\n[ian]\ndestinations = ["{peer.title}"]\ndelay = "PT1S"\n'
        )
        datasets = study_datasets(series=2, instances=1)
        send(archive_port(arc), datasets[:1])
        (first,) = written(arc)
        assert (first.queue, first.type, first.remote_aet) == ("IANSCU", "ian", "IANSCP")
        before = datetime.now()
        send(archive_port(arc), datasets[1:])
        (again,) = written(arc)
        assert again.pk == first.pk and again.scheduled_time >= before + timedelta(seconds=1)
        wait_until(lambda: peer.received)
        time.sleep(0.3)
        assert len(peer.received) == 1
        _, calling, ds = peer.received[0]
        assert calling == "DCM4CHEE" and ds.StudyInstanceUID == datasets[0].StudyInstanceUID
        assert {item.SeriesInstanceUID for item in ds.ReferencedSeriesSequence} == {
            str(d.SeriesInstanceUID) for d in datasets
        }
        assert tasks.get(services_of(arc), first.pk).status == TaskStatus.COMPLETED
    finally:
        peer.stop()


def test_a_scheduled_task_is_postponed_never_brought_forward_nor_joined_once_running(
    db: Database,
) -> None:
    study = generate_uid()
    soon = datetime.now() + timedelta(minutes=1)
    task = NewTask("Export", "export", {"exporter": "X", "study_uid": study}, study, "A", "B", soon)
    assert schedule_or_postpone(db, [task], "dev") == (1, 0)
    later = NewTask(**{**task.__dict__, "scheduled_time": soon + timedelta(minutes=1)})
    earlier = NewTask(**{**task.__dict__, "scheduled_time": soon - timedelta(minutes=5)})
    assert schedule_or_postpone(db, [later], "dev") == (0, 1)
    assert schedule_or_postpone(db, [earlier], "dev") == (0, 1)
    with db.read() as session:
        (row,) = session.scalars(select(Task)).all()
        assert row.scheduled_time == soon + timedelta(minutes=1)
    other = NewTask(**{**task.__dict__, "parameters": {"exporter": "Y", "study_uid": study}})
    assert schedule_or_postpone(db, [other], "dev") == (1, 0)
    with db.write() as session:
        session.get(Task, row.pk).status = TaskStatus.IN_PROCESS
    assert schedule_or_postpone(db, [task], "dev") == (1, 0)
    with db.read() as session:
        assert len(session.scalars(select(Task)).all()) == 3


def test_a_waiting_series_export_is_widened_to_the_study_and_takes_series_in(
    db: Database,
) -> None:
    """As dcm4chee: the export of a study joins the waiting export of one of its series
    to the same exporter, which becomes the study's; a series' export then joins it."""
    study, series = generate_uid(), generate_uid()
    at = datetime.now() + timedelta(minutes=1)

    def export(**entity: str) -> NewTask:
        parameters = {"exporter": "X", "study_uid": study, **entity}
        return NewTask("Export", "export", parameters, study, "A", "B", at)

    assert schedule_or_postpone(db, [export(series_uid=series)], "dev") == (1, 0)
    assert schedule_or_postpone(db, [export(), export(series_uid=generate_uid())], "dev") == (
        0,
        2,
    )
    with db.read() as session:
        (row,) = session.scalars(select(Task)).all()
        assert json.loads(row.parameters) == {"exporter": "X", "study_uid": study}


def test_rules_and_ian_changed_in_the_file_apply_while_running(tmp_path: Path, db_url: str) -> None:
    """The running archive follows config.toml: a rule and an IAN destination added to
    the file apply to the next objects, without a restart."""
    port = free_port()
    peers = remote_ae("STORESCP", free_port()) + exporter("STORESCP", "dicom", "STORESCP")
    path = tmp_path / "config.toml"
    path.write_text(
        make_config_text(tmp_path, db_url, port, peers + "\n[network]\nprocesses = 0\n")
    )
    arc = Archive(load(path))
    arc.start()
    try:
        send(port, [dicomgen.ct()])
        assert written(arc) == []
        added = rule("Later", "{}", delay="PT1M") + '\n[ian]\ndestinations = ["STORESCP"]\n'
        path.write_text(path.read_text() + added)
        wait_until(lambda: services_of(arc).config.export_rule)
        ds = dicomgen.ct()
        send(port, [ds])
        rows = written(arc)
        assert sorted((t.type, t.study_iuid) for t in rows) == [
            ("export", ds.StudyInstanceUID),
            ("ian", ds.StudyInstanceUID),
        ]
    finally:
        arc.stop(grace=5)


BASE = (
    '[[remote_ae]]\ntitle = "P"\nhost = "h"\nport = 1\n'
    '[[exporter]]\nid = "E"\nkind = "dicom"\ndestination = "P"\n'
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[[export_rule]]\nname = "R"\nexporters = ["NOPE"]\n',
            "export_rule[0].exporters: 'NOPE' is not an exporter id (export rule 'R')",
        ),
        (
            '[[export_rule]]\nname = "R"\nexporters = ["E"]\nconditions = { Modalty = "CT" }\n',
            "export_rule[0].conditions.Modalty: not a DICOM attribute keyword (value 'CT') "
            "(export rule 'R')",
        ),
        (
            '[[export_rule]]\nname = "R"\nexporters = ["E"]\nconditions = { Modality = "!(CT" }\n',
            "export_rule[0].conditions.Modality: not a regular expression",
        ),
        (
            '[[export_rule]]\nname = "R"\nexporters = ["E"]\nentity = "patient"\n',
            "export_rule[0].entity: Input should be 'study', 'series' or 'instance' "
            "(value 'patient')",
        ),
        (
            '[[export_rule]]\nname = "R"\nexporters = ["E"]\naes = ["ELSEWHERE"]\n',
            "export_rule[0].aes: 'ELSEWHERE' is not an archive ae (export rule 'R')",
        ),
        (
            '[[export_rule]]\nname = "R"\nexporters = ["E"]\ndelay = "30s"\n',
            "export_rule[0].delay: not an ISO 8601 duration",
        ),
        (
            '[[export_rule]]\nname = "R"\nexporters = ["E"]\n'
            '[[export_rule]]\nname = "R"\nexporters = ["E"]\n',
            "export_rule[1].name: duplicate rule name 'R'",
        ),
        ('[ian]\ndestinations = ["NOBODY"]\n', "ian.destinations: 'NOBODY' is not a remote_ae"),
        ('[ian]\ndelay = "1m"\n', "ian.delay: not an ISO 8601 duration"),
    ],
)
def test_config_errors_name_the_rule_key_and_value(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse(BASE + text, source="c.toml")
    assert str(error.value).startswith(f"c.toml: {expected}"), str(error.value)


def test_worker_processes_of_serve_export_by_rule(
    serve: Callable[..., Served], storescp: Callable[..., StoreSCP], tmp_path: Path
) -> None:
    """`serve` with `processes = 2`: what the workers store is exported by the rule
    (scheduled by the workers, run by the serving node's queue); one task, on SQLite."""
    scp = storescp()
    db_url = f"sqlite:///{tmp_path / 'serving.db'}"
    port = free_port()
    extra = target(scp) + rule("All", "{}", delay="PT2S") + "\n[network]\nprocesses = 2\n"
    served = serve(make_config_text(tmp_path, db_url, port, extra), port)
    datasets = study_datasets(series=1, instances=3)
    send(port, datasets[:2])
    send(port, datasets[2:])
    db = Database(db_url)
    try:

        def ended() -> list[Task]:
            with db.read() as session:
                rows = session.scalars(select(Task)).all()
            return list(rows) if rows and all(r.status in ENDED for r in rows) else []

        rows = wait_until(ended)
        assert isinstance(rows, list)
        assert [(r.type, r.status, r.completed) for r in rows] == [("export", "COMPLETED", 3)]
        assert set(scp.received()) == {str(ds.SOPInstanceUID) for ds in datasets}
    finally:
        db.dispose()
    assert served.stop()[0] == 0
