"""Filesystem storage: dcm4chee's path layout, crash safety of placement + commit (each
interrupted step is finished or undone by recovery), and a full disk failing a C-STORE
with A700 and leaving nothing behind.

`assert_files_match_index` is the invariant the other storage tests check after every
test: files and rows agree."""

from __future__ import annotations

import hashlib
import io
import itertools
import os
import random
import re
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
from pydicom import Dataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage
from sqlalchemy import create_engine, select, update

from core.archive import Archive
from core.config import Config
from core.db.models import Instance, Location, LocationStatus, Patient, Series, Study
from core.dicom.part10 import dataset_offset, file_meta
from core.services.context import ServiceContext
from core.services.recovery import recover
from core.services.status import RUN
from core.storage.filesystem import (
    ALIGN,
    DIRECT_FROM,
    QUARANTINE,
    STAGE_BYTES,
    TMP,
    IncomingFile,
    Placement,
    layout,
    uid_hash,
)
from tests import dicomgen
from tests.conftest import archive_port, free_port, make_config_text, nodelay

LAYOUT = re.compile(r"^\d{4}/\d{2}/\d{2}/[0-9A-F]{8}/[0-9A-F]{8}/[0-9A-F]{8}(-\d+)?$")


def settled(root: Path, timeout: float = 5) -> None:
    """Wait until a serving archive has dropped the journal entries of its last stores
    (once the index writer has flushed their commits, some milliseconds after Success)."""
    deadline = time.monotonic() + timeout
    while any(p.name.endswith(".placing") for p in (root / TMP).iterdir()):
        assert time.monotonic() < deadline, "journal entries left after their stores"
        time.sleep(0.02)


def assert_files_match_index(db_url: str, root: Path | str, storage_id: str = "fs1") -> None:
    """Files and rows agree: every location's file exists with the recorded size and MD5,
    every file under the storage root has a location, `.tmp` is empty, and no path holds
    a UID or the patient's name."""
    root = Path(root)
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(
                    Location.storage_path,
                    Location.size,
                    Location.digest,
                    Location.status,
                    Instance.sop_iuid,
                    Series.series_iuid,
                    Study.study_iuid,
                    Patient.patient_name,
                    Patient.patient_id,
                )
                .where(Location.storage_id == storage_id)
                .outerjoin(Instance, Location.instance_fk == Instance.pk)
                .outerjoin(Series, Instance.series_fk == Series.pk)
                .outerjoin(Study, Series.study_fk == Study.pk)
                .outerjoin(Patient, Study.patient_fk == Patient.pk)
            ).all()
    finally:
        engine.dispose()
    for row in rows:
        assert row.status == LocationStatus.OK, f"{row.storage_path} left {row.status}"
        data = (root / row.storage_path).read_bytes()
        assert len(data) == row.size, row.storage_path
        assert hashlib.md5(data).hexdigest() == row.digest, row.storage_path
        assert LAYOUT.match(row.storage_path), row.storage_path
        for value in (row.sop_iuid, row.series_iuid, row.study_iuid, row.patient_id):
            assert not value or value not in row.storage_path
        for part in re.split(r"[\^=]", row.patient_name or ""):
            assert not part or part not in row.storage_path
    files = {
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        # .tmp is checked below; .run holds the serving processes' status files;
        # .quarantine what recovery could not index (not in the index by design).
        if p.is_file() and p.relative_to(root).parts[0] not in (TMP, RUN, QUARANTINE)
    }
    assert files == {row.storage_path for row in rows}
    assert list((root / TMP).iterdir()) == []


def test_uid_hash_is_java_string_hashcode() -> None:
    """dcm4chee hashes with Java's String.hashCode, printed as 8 upper-case hex digits
    (two's complement for negative hashes)."""
    assert uid_hash("") == "00000000"
    assert uid_hash("hello") == "05E918D2"  # 99162322
    assert uid_hash("Aa") == uid_hash("BB") == "00000840"  # the classic collision, 2112
    assert uid_hash("polygenelubricants") == "80000000"  # Integer.MIN_VALUE


def test_layout_is_date_then_hashes_of_study_series_instance() -> None:
    """{yyyy}/{MM}/{dd}/{study hash}/{series hash}/{instance hash}, no raw UID."""
    study, series, sop = "1.2.3", "1.2.3.4", "1.2.3.4.5"
    path = layout(datetime(2026, 3, 7, 23, 59), study, series, sop)
    assert path == f"2026/03/07/{uid_hash(study)}/{uid_hash(series)}/{uid_hash(sop)}"
    assert LAYOUT.match(path)


def test_stored_instance_path_follows_the_layout(archive: Archive) -> None:
    """A C-STORE lands at the layout path of its UIDs and the day it was received."""
    ds = dicomgen.ct()
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(CTImageStorage)
    assoc = nodelay(ae.associate("127.0.0.1", archive_port(archive), ae_title="DCM4CHEE"))
    assert assoc.send_c_store(ds).Status == 0
    assoc.release()
    services = archive.services
    assert services is not None
    with services.db.read() as session:
        location = session.scalars(select(Location)).one()
    assert location.storage_path == layout(
        location.created, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID
    )
    assert_files_match_index(archive.config.database.url, archive.config.storage.path)


# -- writing -----------------------------------------------------------------------------


def _resident_bytes(path: Path) -> int:
    """Bytes of `path` in the page cache (util-linux fincore)."""
    out = subprocess.run(
        ["fincore", "--bytes", "--noheadings", "--output", "RES", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout)


def _takes_direct_io(folder: Path) -> bool:
    probe = folder / "direct-io-probe"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o644))
    except OSError:
        return False
    finally:
        probe.unlink(missing_ok=True)
    return True


@pytest.mark.parametrize("direct", [True, False])
def test_large_object_in_pieces_is_kept_byte_for_byte(opened: ServiceContext, direct: bool) -> None:
    """An object larger than the write buffer, arriving in pieces of odd sizes (one of
    them larger than the buffer), is kept exactly, with its size and MD5: written past the
    page cache but for its last partial block where the filesystem allows it, through the
    page cache where it does not."""
    if direct and not _takes_direct_io(opened.storage.tmp):
        pytest.skip(f"{opened.storage.tmp}: the filesystem refuses O_DIRECT")
    content = random.Random(7).randbytes(2 * STAGE_BYTES + 12345)
    opened.storage.direct_io.supported = direct
    file = opened.storage.incoming()
    cuts = [0, 1, 4096, 70001, 70001 + STAGE_BYTES + 3, len(content)]
    for start, end in itertools.pairwise(cuts):
        file.write(memoryview(content)[start:end])
    file.sync()
    assert file.size == len(content)
    assert file.digest() == hashlib.md5(content).hexdigest()
    resident = _resident_bytes(file.path)
    if direct:
        assert resident <= 2 * ALIGN
    else:
        assert resident > len(content) // 2
    assert opened.storage.direct_io.supported is direct
    assert file.path.read_bytes() == content
    file.discard()


def test_small_object_is_written_once_through_the_page_cache(opened: ServiceContext) -> None:
    """Below the size for direct writes the object stays in the buffer until it is
    finished, then goes to the file (through the page cache) in one write."""
    content = b"x" * (DIRECT_FROM - 1)
    file = opened.storage.incoming()
    file.write(content[:100])
    file.write(content[100:])
    assert file.path.stat().st_size == 0
    file.finish()
    assert file.path.read_bytes() == content
    file.discard()


# -- crash safety ------------------------------------------------------------------------


@pytest.fixture
def opened(make_config: Callable[..., Config]) -> Iterator[ServiceContext]:
    """Database and storage of an archive, opened without listening."""
    archive = Archive(make_config())
    services = archive.open()
    try:
        yield services
    finally:
        archive.stop()


def received(services: ServiceContext, content: bytes) -> IncomingFile:
    """An incoming file in `.tmp`, written but not yet placed, as the Storage SCP has it
    when the data set has arrived."""
    file = services.storage.incoming()
    file.write(content)
    return file


def placed(services: ServiceContext, content: bytes) -> Placement:
    """A received file placed durably at a layout path, its row not yet committed."""
    rel = layout(datetime.now(), generate_uid(), generate_uid(), generate_uid())
    placement = services.storage.place(received(services, content), rel)
    placement.make_durable()
    return placement


def commit_row(services: ServiceContext, rel_path: str, content: bytes) -> None:
    """Commit the patient/study/series/instance/location rows of a placed file."""
    now = datetime.now()
    with services.db.write() as session:
        patient = Patient(patient_id="PID-1", created=now, updated=now)
        study = Study(patient=patient, study_iuid=generate_uid(), created=now, updated=now)
        series = Series(study=study, series_iuid=generate_uid(), created=now, updated=now)
        instance = Instance(
            series=series,
            sop_iuid=generate_uid(),
            sop_cuid=CTImageStorage,
            created=now,
            updated=now,
        )
        session.add(
            Location(
                instance=instance,
                storage_id=services.storage.id,
                storage_path=rel_path,
                size=len(content),
                digest=hashlib.md5(content).hexdigest(),
                transfer_syntax_uid="1.2.840.10008.1.2.1",
                status=LocationStatus.OK,
                created=now,
            )
        )


def location_paths(services: ServiceContext) -> list[str]:
    with services.db.read() as session:
        return list(session.scalars(select(Location.storage_path)))


def recovered(services: ServiceContext) -> None:
    """Run start-up recovery, then check the invariant."""
    recover(services)
    assert_files_match_index(services.db.url, services.storage.root, services.storage.id)


def test_crash_while_receiving_leaves_no_part_file(opened: ServiceContext) -> None:
    """Killed while receiving: the `.part` file in `.tmp` is removed."""
    file = received(opened, b"half an object")
    assert [p.suffix for p in opened.storage.tmp.iterdir()] == [".part"]
    recovered(opened)
    assert location_paths(opened) == []
    file.discard()  # the crashed process's descriptor


def test_journal_entry_names_the_whole_file(opened: ServiceContext) -> None:
    """A journal entry's name says the size and MD5 of the whole file, so that recovery
    can tell a whole file from one the crash cut short without a row to ask."""
    content = b"placed, size and digest in the journal name"
    placement = placed(opened, content)
    [entry] = opened.storage.pending()
    assert (entry.rel_path, entry.journal) == (placement.rel_path, placement.journal)
    assert entry.whole == (len(content), hashlib.md5(content).hexdigest())


def test_crash_after_placing_before_commit_removes_what_is_no_object(
    opened: ServiceContext,
) -> None:
    """Killed after the file got its final name but before its row was committed, and
    the file is whole but no data set: it cannot be indexed again, so it leaves the
    layout for the quarantine folder, with its journal entry."""
    placement = placed(opened, b"placed, never indexed")
    assert opened.storage.path(placement.rel_path).exists()
    recovered(opened)
    assert not opened.storage.path(placement.rel_path).exists()
    assert location_paths(opened) == []
    quarantined = list((opened.storage.root / QUARANTINE).iterdir())
    assert [p.read_bytes() for p in quarantined] == [b"placed, never indexed"]


def part10(ds: Dataset, source_aet: str) -> bytes:
    """`ds` as the Storage SCP writes it: the archive's File Meta Information (with the
    calling AE), then the data set as received."""
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    raw = buffer.getvalue()
    meta = file_meta(ds.SOPClassUID, ds.SOPInstanceUID, ExplicitVRLittleEndian, source_aet)
    return meta + raw[dataset_offset(raw) :]


def test_whole_file_whose_row_was_lost_is_indexed_again(opened: ServiceContext) -> None:
    """The peer got Success, then the machine went down before the index writer flushed
    the commit of the row: the file is whole and journaled, its row is gone. Recovery
    indexes it again from its content, with the calling AE from its meta information."""
    ds = dicomgen.ct(generate_uid(), generate_uid(), PatientID="LOST-ROW")
    content = part10(ds, "MODALITY1")
    placement = placed(opened, content)
    recovered(opened)
    assert location_paths(opened) == [placement.rel_path]
    assert opened.storage.path(placement.rel_path).read_bytes() == content
    with opened.db.read() as session:
        row = session.execute(
            select(Instance.sop_iuid, Instance.source_aet, Location.size, Location.digest).join(
                Location, Location.instance_fk == Instance.pk
            )
        ).one()
        patient_ids = list(session.scalars(select(Patient.patient_id)))
    assert row.sop_iuid == ds.SOPInstanceUID
    assert row.source_aet == "MODALITY1"
    assert (row.size, row.digest) == (len(content), hashlib.md5(content).hexdigest())
    assert patient_ids == ["LOST-ROW"]


def test_journaled_file_cut_short_without_row_is_removed(opened: ServiceContext) -> None:
    """Killed while the file was being fsynced, before its row was committed: what is on
    disk is shorter than its journal entry says (the peer never got Success), so it is
    not indexed, even though its header still reads."""
    ds = dicomgen.ct(generate_uid(), generate_uid(), size=64)
    placement = placed(opened, part10(ds, "MODALITY1"))
    os.truncate(placement.journal, 2000)  # the header reads, Pixel Data is cut short
    recovered(opened)
    assert location_paths(opened) == []
    assert not opened.storage.path(placement.rel_path).exists()


def test_crash_after_commit_before_confirm_keeps_the_file(opened: ServiceContext) -> None:
    """Killed after the commit but before the journal entry was dropped: the file stays,
    the journal entry goes."""
    placement = placed(opened, b"indexed, journal left")
    commit_row(opened, placement.rel_path, b"indexed, journal left")
    recovered(opened)
    assert opened.storage.path(placement.rel_path).read_bytes() == b"indexed, journal left"
    assert location_paths(opened) == [placement.rel_path]


def test_committed_row_whose_final_name_was_lost_is_relinked(opened: ServiceContext) -> None:
    """The row is committed but the final name did not survive (only the journal entry
    did): recovery gives the file its final name back."""
    placement = placed(opened, b"journal only, row committed")
    commit_row(opened, placement.rel_path, b"journal only, row committed")
    opened.storage.path(placement.rel_path).unlink()
    recovered(opened)
    assert opened.storage.path(placement.rel_path).read_bytes() == b"journal only, row committed"


def test_journal_entry_without_final_name_or_row_is_removed(opened: ServiceContext) -> None:
    """Killed between renaming to the journal entry and linking the final name: nothing
    is left."""
    placement = placed(opened, b"renamed, not linked")
    opened.storage.path(placement.rel_path).unlink()
    recovered(opened)
    assert location_paths(opened) == []


def test_committed_row_of_a_file_that_is_not_whole_is_taken_back(
    opened: ServiceContext,
) -> None:
    """The row was committed while the file was being fsynced and the crash came first:
    the file on disk is not what the row records, so the peer never got Success. Row,
    file and the patient/study/series made for it all go."""
    placement = placed(opened, b"half written")
    commit_row(opened, placement.rel_path, b"the whole object as received")
    recovered(opened)
    assert location_paths(opened) == []
    assert not opened.storage.path(placement.rel_path).exists()
    with opened.db.read() as session:
        for model in (Instance, Series, Study, Patient):
            assert session.scalars(select(model)).all() == [], model.__name__


def test_unfinished_replacement_brings_the_replaced_file_back(opened: ServiceContext) -> None:
    """A replacement committed (old location marked TO_DELETE) but its new file not whole:
    the new location goes and the replaced one is current again, file and all."""
    old = placed(opened, b"first version")
    commit_row(opened, old.rel_path, b"first version")
    old.confirm()
    new = placed(opened, b"second ver")
    now = datetime.now()
    with opened.db.write() as session:
        location = session.scalars(select(Location)).one()
        location.status = LocationStatus.TO_DELETE
        session.add(
            Location(
                instance_fk=location.instance_fk,
                storage_id=opened.storage.id,
                storage_path=new.rel_path,
                size=len(b"second version"),
                digest=hashlib.md5(b"second version").hexdigest(),
                transfer_syntax_uid="1.2.840.10008.1.2.1",
                status=LocationStatus.OK,
                created=now,
            )
        )
    recovered(opened)
    assert location_paths(opened) == [old.rel_path]
    with opened.db.read() as session:
        assert session.scalars(select(Location.status)).one() == LocationStatus.OK
        assert len(session.scalars(select(Instance)).all()) == 1
    assert opened.storage.path(old.rel_path).read_bytes() == b"first version"
    assert not opened.storage.path(new.rel_path).exists()


@pytest.mark.parametrize("file_left", [True, False])
def test_location_marked_to_delete_is_finished(opened: ServiceContext, file_left: bool) -> None:
    """Killed after a replacement was committed but before the replaced file and row
    were removed: recovery removes both (or just the row when the file already went)."""
    placement = placed(opened, b"replaced by a newer object")
    commit_row(opened, placement.rel_path, b"replaced by a newer object")
    placement.confirm()
    with opened.db.write() as session:
        session.execute(update(Location).values(status=LocationStatus.TO_DELETE))
    if not file_left:
        opened.storage.delete(placement.rel_path)
    recovered(opened)
    assert location_paths(opened) == []
    assert not opened.storage.path(placement.rel_path).exists()


def test_archive_start_runs_recovery(make_config: Callable[..., Config]) -> None:
    """Starting the archive after a crash finishes recovery before it serves."""
    config = make_config()
    first = Archive(config)
    services = first.open()
    orphan = placed(services, b"orphan")
    kept = placed(services, b"kept")
    commit_row(services, kept.rel_path, b"kept")
    first.stop()
    second = Archive(config)
    second.start(listen=False)
    try:
        assert not services.storage.path(orphan.rel_path).exists()
        assert services.storage.path(kept.rel_path).read_bytes() == b"kept"
        assert_files_match_index(config.database.url, config.storage.path)
    finally:
        second.stop()


# -- a full disk -------------------------------------------------------------------------

FILE_SIZE_LIMIT = 4 * 1024 * 1024


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, FILE_SIZE_LIMIT))


@pytest.fixture
def serve_with_small_disk(tmp_path: Path, db_url: str) -> Iterator[tuple[int, Path]]:
    """`pacs-console serve` that cannot write files larger than 4 MiB (RLIMIT_FSIZE: the
    write fails as it does on a full disk). Yields (port, storage root)."""
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(make_config_text(tmp_path, db_url, port))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tui.cli", "serve", "--config", str(config)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_limit_file_size,
    )
    try:
        deadline = time.monotonic() + 30
        while not _listening(port):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "serve did not listen within 30 s"
            time.sleep(0.05)
        yield port, tmp_path / "fs1"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err


def test_full_disk_fails_the_store_with_a700_and_leaves_nothing(
    serve_with_small_disk: tuple[int, Path], db_url: str
) -> None:
    """An object the storage cannot hold: A700 with an error comment, no file, no row, an
    empty `.tmp`; the same association then stores a small object."""
    port, root = serve_with_small_disk
    big = dicomgen.ct(size=1600)  # 5 MB of pixel data
    small = dicomgen.ct()
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(CTImageStorage)
    assoc = nodelay(ae.associate("127.0.0.1", port, ae_title="DCM4CHEE"))
    try:
        failed = assoc.send_c_store(big)
        assert failed.Status == 0xA700
        assert failed.ErrorComment.startswith("storage ")  # "storage error: File too large"
        assert_files_match_index(db_url, root)
        assert not any(p.is_file() for p in root.rglob("*"))
        assert assoc.send_c_store(small).Status == 0
    finally:
        assoc.release()
    settled(root)
    assert_files_match_index(db_url, root)
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            assert list(conn.scalars(select(Instance.sop_iuid))) == [small.SOPInstanceUID]
    finally:
        engine.dispose()
