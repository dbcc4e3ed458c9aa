"""No poison object: hostile values for every kind of element the index reads are stored
as received (columns take what they can hold), a store that fails fails alone, the index
writer survives any single bad job and is replaced when it stops making progress, and
start-up recovery that cannot index a file moves it to quarantine and carries on."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
from pydicom import Dataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE, _config
from pynetdicom.sop_class import (
    CTImageStorage,
    StudyRootQueryRetrieveInformationModelFind,
)
from sqlalchemy import create_engine, select

from core.archive import Archive
from core.config import Config
from core.db.engine import Database
from core.db.models import Instance, Patient, Series
from core.index.rules import IndexJob
from core.index.writer import BatchWriter
from core.storage.filesystem import QUARANTINE
from tests import dicomgen
from tests.conftest import Served, archive_port, dcmtk_env, free_port, make_config_text, nodelay
from tests.core.store_support import store
from tests.core.test_service import wait_until
from tests.core.test_storage import assert_files_match_index, part10, placed, settled
from tests.hostile import CORPUS, Hostile

PATIENT_ID = 0x00100020

Serve = Callable[..., Served]


@pytest.fixture
def raw_files() -> Iterator[None]:
    """pynetdicom sends files as they are, without decoding them."""
    before = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True
    yield
    _config.STORE_SEND_CHUNKED_DATASET = before


def _store_assoc(port: int, title: str = "HOSTILE"):
    ae = AE(ae_title=title)
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    ae.dimse_timeout = 30
    assoc = nodelay(ae.associate("127.0.0.1", port, ae_title="DCM4CHEE"))
    assert assoc.is_established
    return assoc


def _find(assoc, level: str, **keys: str) -> list[Dataset]:
    """C-FIND with every index column as a return key; asserts a Success final status."""
    identifier = Dataset()
    identifier.QueryRetrieveLevel = level
    for keyword in (
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "StudyInstanceUID",
        "StudyDate",
        "StudyTime",
        "AccessionNumber",
        "StudyID",
        "StudyDescription",
        "ReferringPhysicianName",
        "ModalitiesInStudy",
        "NumberOfStudyRelatedInstances",
    ):
        setattr(identifier, keyword, "")
    if level in ("SERIES", "IMAGE"):
        for keyword in ("SeriesInstanceUID", "Modality", "SeriesNumber", "BodyPartExamined"):
            setattr(identifier, keyword, "")
        identifier.InstitutionName = ""
        identifier.StationName = ""
        identifier.SeriesDescription = ""
    if level == "IMAGE":
        for keyword in ("SOPInstanceUID", "InstanceNumber", "ContentDate", "ContentTime"):
            setattr(identifier, keyword, "")
        identifier.Rows = None
        identifier.Columns = None
    for keyword, value in keys.items():
        setattr(identifier, keyword, value)
    found = []
    for status, ds in assoc.send_c_find(identifier, StudyRootQueryRetrieveInformationModelFind):
        assert status is not None and "Status" in status, "no C-FIND response"
        if status.Status == 0xFF00:
            found.append(ds)
        else:
            assert status.Status == 0, f"C-FIND {level} failed: 0x{status.Status:04X}"
    return found


def test_hostile_values_are_stored_and_the_archive_serves_on(
    serve: Serve,
    tmp_path: Path,
    db_url: str,
    dcmtk: Callable[[str], str],
    raw_files: None,
) -> None:
    """The issue's repro first (SeriesNumber 1e99 by DCMTK's storescu, then any other
    object), then every hostile object on one association while another stores valid
    objects all along: every hostile object is answered Success and stored as received;
    the valid ones are stored; queries at every level return them all; a restart finds
    nothing to recover and files and rows agree."""
    port = free_port()
    config = make_config_text(tmp_path, db_url, port)
    served = serve(config, port)
    repro = dicomgen.save(dicomgen.ct(), tmp_path / "repro.dcm")
    subprocess.run([dcmtk("dcmodify"), "-nb", "-m", "(0020,0011)=1e99", str(repro)], check=True)
    for path in (repro, dicomgen.save(dicomgen.ct(), tmp_path / "after-repro.dcm")):
        out = subprocess.run(
            [dcmtk("storescu"), "-aec", "DCM4CHEE", "127.0.0.1", str(port), str(path)],
            capture_output=True,
            text=True,
            timeout=30,
            env=dcmtk_env(),
        )
        assert out.returncode == 0, out.stderr

    valid: list[tuple[str, int]] = []
    hostile_done = threading.Event()

    def valid_stores() -> None:
        assoc = _store_assoc(port, "VALID")
        try:
            while not hostile_done.is_set() or not valid:
                ds = dicomgen.ct()
                valid.append((ds.SOPInstanceUID, assoc.send_c_store(ds).Status))
        finally:
            assoc.release()

    other = threading.Thread(target=valid_stores)
    other.start()
    study_uid = generate_uid()
    answers: dict[str, int] = {}
    in_study: set[str] = set()
    elsewhere: set[str] = set()
    assoc = _store_assoc(port)
    try:
        for item in CORPUS:
            # Another Patient ID in the same study would be a conflict (A778).
            own_study = PATIENT_ID in item.overrides
            path, sop_uid = item.part10(tmp_path, None if own_study else study_uid)
            status = assoc.send_c_store(path)
            answers[item.name] = status.Status if "Status" in status else -1
            (elsewhere if own_study else in_study).add(sop_uid)
        last = dicomgen.ct()
        assert assoc.send_c_store(last).Status == 0
    finally:
        hostile_done.set()
        other.join()
    assert {name: s for name, s in answers.items() if s != 0} == {}
    assert valid and all(status == 0 for _, status in valid)
    try:
        series = _find(assoc, "SERIES", StudyInstanceUID=study_uid)
        assert len(series) == len(in_study)  # one series each
        images = [
            image
            for one in series
            for image in _find(
                assoc,
                "IMAGE",
                StudyInstanceUID=study_uid,
                SeriesInstanceUID=one.SeriesInstanceUID,
            )
        ]
        assert len(_find(assoc, "STUDY")) >= len(elsewhere) + 1
        _find(assoc, "STUDY", PatientName="HOSTILE*", StudyDate="20260101-20261231")
        _find(assoc, "SERIES", StudyInstanceUID=study_uid, SeriesNumber="1")
    finally:
        assoc.release()
    assert {ds.SOPInstanceUID for ds in images} == in_study
    engine = create_engine(db_url)
    with engine.connect() as conn:
        indexed = set(conn.scalars(select(Instance.sop_iuid)))
        series_numbers = dict(conn.execute(select(Series.series_iuid, Series.series_number)).all())
    engine.dispose()
    assert in_study | elsewhere | {last.SOPInstanceUID} | {uid for uid, _ in valid} <= indexed
    assert None in series_numbers.values()  # 1e99 and the like: out of the column
    settled(tmp_path / "fs1")
    status, log = served.stop()
    assert status == 0
    assert "Traceback" not in log
    again = serve(config, port)
    status, log = again.stop()
    assert status == 0
    assert "recovered after an unclean stop" not in log
    assert_files_match_index(db_url, tmp_path / "fs1")


def _job(sop_iuid: str, **changes: object) -> IndexJob:
    values: dict[str, object] = dict(
        sop_iuid=sop_iuid,
        study_iuid=generate_uid(),
        series_iuid=generate_uid(),
        patient_id="PID-JOB",
        issuer=None,
        patient={},
        study={},
        series={},
        instance={"00080016": {"vr": "UI", "Value": [CTImageStorage]}},
        source_aet="JOBS",
        storage_id="fs1",
        storage_path=f"2026/01/01/{sop_iuid[-8:]}",
        size=10,
        digest="0" * 32,
        transfer_syntax=ExplicitVRLittleEndian,
        received=datetime.now(),
    )
    values.update(changes)
    return IndexJob(**values)  # type: ignore[arg-type]


def test_a_job_the_database_refuses_fails_alone(db: Database) -> None:
    """In one batch, a job with a value its column cannot hold (a file size past 64
    bits: SQLite's driver raises OverflowError, PostgreSQL a DataError) fails with
    0x0110 and a comment; the jobs before and after it are stored, and the writer goes
    on with the next batch."""
    writer = BatchWriter(db)
    first, bad, third, later = (generate_uid() for _ in range(4))
    results = writer.apply([_job(first), _job(bad, size=2**70), _job(third)])
    assert [r.outcome for r in results] == ["stored", "failed", "stored"]
    assert results[1].status == 0x0110 and results[1].comment
    assert writer.apply([_job(later)])[0].outcome == "stored"
    writer.close()
    with db.read() as session:
        assert set(session.scalars(select(Instance.sop_iuid))) == {first, third, later}


@pytest.fixture
def pooled(make_config: Callable[..., Config]) -> Iterator[Archive]:
    """An archive served by one worker process and an index writer process, whose
    supervisor replaces a writer silent for 3 s (90 s by default)."""
    config = make_config()
    config = config.model_copy(
        update={"network": config.network.model_copy(update={"processes": 1})}
    )
    arc = Archive(config, writer_stall_timeout=3)
    arc.start()
    try:
        yield arc
    finally:
        arc.stop(grace=5)


def test_the_index_writer_process_survives_a_bad_job(pooled: Archive) -> None:
    """A bad job sent to the index writer process fails alone; the process stays, and
    the next C-STORE is stored by it."""
    assert pooled.services is not None and pooled.pool is not None
    writer = pooled.pool.writer
    result = pooled.services.indexer.submit(_job(generate_uid(), size=2**70)).result()
    assert (result.status, result.outcome) == (0x0110, "failed")
    assoc = _store_assoc(archive_port(pooled))
    try:
        assert assoc.send_c_store(dicomgen.ct()).Status == 0
    finally:
        assoc.release()
    assert pooled.pool.writer is writer and writer is not None and writer.is_alive()


def test_a_writer_that_stops_making_progress_is_replaced(
    pooled: Archive, caplog: pytest.LogCaptureFixture
) -> None:
    """The index writer stops (SIGSTOP) with a store waiting on it: its supervisor
    notices the silence, replaces it, the waiting store fails alone with a status (its
    row, if committed, taken back with its file) and the next store succeeds."""
    assert pooled.pool is not None and pooled.pool.writer is not None
    stalled = pooled.pool.writer
    assert stalled.pid is not None
    assoc = _store_assoc(archive_port(pooled))
    try:
        assert assoc.send_c_store(dicomgen.ct()).Status == 0
        os.kill(stalled.pid, signal.SIGSTOP)
        started = time.monotonic()
        waiting = assoc.send_c_store(dicomgen.ct())
        assert "Status" in waiting, "the waiting store got no answer"
        assert waiting.Status == 0x0110
        assert time.monotonic() - started < 20
        wait_until(lambda: pooled.pool.writer is not stalled)  # type: ignore[union-attr]
        assert assoc.send_c_store(dicomgen.ct()).Status == 0
    finally:
        assoc.release()
    assert not stalled.is_alive()
    assert "index writer made no progress" in caplog.text
    settled(Path(pooled.config.storage.path))
    assert_files_match_index(pooled.config.database.url, pooled.config.storage.path)


@pytest.mark.parametrize("problem", ["unreadable", "conflicting-patient"])
def test_recovery_moves_what_it_cannot_index_to_quarantine(
    make_config: Callable[..., Config], problem: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A whole journaled file without a row that cannot be indexed again (no data set;
    or an object the rules now refuse, A778) is moved to `.quarantine` with one WARNING
    line naming it; the start goes on and the archive serves."""
    config = make_config()
    first = Archive(config)
    services = first.open()
    if problem == "unreadable":
        content = b"whole, but no data set"
    else:
        study = generate_uid()
        store(services, dicomgen.ct(study, PatientID="FIRST"))
        content = part10(dicomgen.ct(study, PatientID="OTHER"), "MODALITY")
    placement = placed(services, content)
    first.stop()
    second = Archive(config)
    second.start()
    try:
        root = Path(config.storage.path)
        [moved] = (root / QUARANTINE).iterdir()
        assert moved.read_bytes() == content
        assert not (root / placement.rel_path).exists()
        warnings = [r for r in caplog.records if "moved to" in r.getMessage()]
        assert len(warnings) == 1 and warnings[0].levelname == "WARNING"
        assert placement.rel_path in warnings[0].getMessage()
        assoc = _store_assoc(archive_port(second))
        try:
            assert assoc.send_c_store(dicomgen.ct()).Status == 0
        finally:
            assoc.release()
        assert_files_match_index(config.database.url, root)
        with second.services.db.read() as session:  # type: ignore[union-attr]
            ids = set(session.scalars(select(Patient.patient_id)))
        assert "OTHER" not in ids
    finally:
        second.stop()


BAD_UIDS = {
    "path": b"../../etc/passwd",
    "letters": b"1.2.840.abc",
    "200-characters": b"1." + b"2" * 198,
    "5000-characters": b"1." + b"3" * 4998,
    "two-values": b"1.2.3\\1.2.4",
}


@pytest.mark.parametrize(
    "keyword,tag",
    [
        ("StudyInstanceUID", 0x0020000D),
        ("SeriesInstanceUID", 0x0020000E),
        ("SOPInstanceUID", 0x00080018),
    ],
)
def test_unique_keys_that_are_no_uids_are_refused(
    archive: Archive,
    tmp_path: Path,
    raw_files: None,
    keyword: str,
    tag: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A Study, Series or SOP Instance UID that is no UID (a path, letters, 200 or 5000
    characters, two values) is refused with 0xA900, a comment naming the attribute and
    the offending element; nothing is stored and the association goes on."""
    # pynetdicom checks the Affected SOP Instance UID it sends; a careless peer does not.
    monkeypatch.setitem(_config.VALIDATORS, "UI", lambda _value: (True, ""))
    assoc = _store_assoc(archive_port(archive))
    try:
        for name, value in BAD_UIDS.items():
            padded = value + b"\0" if len(value) % 2 else value
            path, _ = Hostile(f"{keyword}-{name}", {tag: ("UI", padded)}).part10(tmp_path)
            status = assoc.send_c_store(path)
            assert status.Status == 0xA900, name
            assert status.ErrorComment.startswith(f"Invalid {keyword} ("), name
            assert status.OffendingElement == tag, name
        assert assoc.send_c_store(dicomgen.ct()).Status == 0
    finally:
        assoc.release()
    assert archive.services is not None
    with archive.services.db.read() as session:
        assert len(session.scalars(select(Instance.sop_iuid)).all()) == 1
    assert_files_match_index(archive.config.database.url, archive.config.storage.path)
