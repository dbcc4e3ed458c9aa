"""A full disk loses nothing, on a real filesystem: a small ext4 image mounted for the
test holds the storage and, as in the default layout, the SQLite database. Below
`[storage] min_free_space` objects are refused with 0xA700 before the disk is full
(logged once per shortage); with no minimum, writes that meet the full disk fail their
store alone and leave no row without its file nor file without its row, before and
after a restart."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage
from sqlalchemy import create_engine, select

from core.db.models import Instance
from tests import dicomgen
from tests.conftest import Served, _missing, free_port, nodelay
from tests.core.test_storage import assert_files_match_index, settled

Serve = Callable[..., Served]
DISK_MB = 64


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 MiB ext4 filesystem (no blocks reserved for root), mounted for the test."""
    image, mount = tmp_path / "disk.img", tmp_path / "disk"
    mount.mkdir()
    with image.open("wb") as file:
        file.truncate(DISK_MB << 20)
    try:
        subprocess.run(["mkfs.ext4", "-q", "-m", "0", str(image)], check=True)
        subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        _missing(f"cannot mount a small ext4 filesystem (needs root and mkfs.ext4): {exc}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _free(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _fill(disk: Path, leave: int) -> Path:
    """A filler file taking all but about `leave` bytes of the disk."""
    filler = disk / "filler"
    with filler.open("wb") as file:
        file.write(bytes(max(_free(disk) - leave, 0)))
        file.flush()
        os.fsync(file.fileno())
    return filler


def _config(disk: Path, db_url: str, port: int, min_free: str) -> str:
    url = f"sqlite:///{disk / 'archive.db'}" if db_url.startswith("sqlite") else db_url
    return f"""
[database]
url = "{url}"

[storage]
path = "{disk / "fs1"}"
min_free_space = "{min_free}"

[network]
processes = 1

[hl7]
port = 0

[[ae]]
title = "DCM4CHEE"
host = "127.0.0.1"
port = {port}
"""


def _sender(port: int):
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(CTImageStorage)
    assoc = nodelay(ae.associate("127.0.0.1", port, ae_title="DCM4CHEE"))
    assert assoc.is_established
    return assoc


def _indexed(db_url: str) -> set[str]:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return set(conn.scalars(select(Instance.sop_iuid)))
    finally:
        engine.dispose()


def _db(disk: Path, db_url: str) -> str:
    return f"sqlite:///{disk / 'archive.db'}" if db_url.startswith("sqlite") else db_url


def test_below_the_minimum_free_space_objects_are_refused_before_the_disk_is_full(
    serve: Serve, small_disk: Path, db_url: str
) -> None:
    """With 20 MiB to be kept free: once less is free, each object is refused with
    0xA700 and a comment saying why, while the disk still has room (the database keeps
    its); the shortage is logged once however many are refused, and its end once; every
    object acknowledged before is kept, and objects are taken again once space is
    freed."""
    port = free_port()
    served = serve(_config(small_disk, db_url, port, "20MiB"), port)
    filler = _fill(small_disk, 28 << 20)
    accepted, statuses = set(), []
    assoc = _sender(port)
    try:
        for n in range(30):
            ds = dicomgen.ct(size=512, seed=n)  # 512 KB of pixel data
            status = assoc.send_c_store(ds)
            statuses.append(status.Status)
            if status.Status == 0:
                accepted.add(ds.SOPInstanceUID)
            else:
                assert status.Status == 0xA700
                assert status.ErrorComment == "storage fs1 has less than 20 MiB free"
        assert 0 < len(accepted) < 30
        assert statuses == sorted(statuses)  # accepted until the minimum, then refused
        assert _free(small_disk) > 10 << 20  # refused well before the disk is full
        filler.unlink()
        again = dicomgen.ct()
        assert assoc.send_c_store(again).Status == 0
        accepted.add(again.SOPInstanceUID)
    finally:
        assoc.release()
    settled(small_disk / "fs1")
    status, log = served.stop()
    assert status == 0
    assert log.count("objects are refused (0xA700)") == 1
    assert log.count("objects are accepted") == 1
    assert _indexed(_db(small_disk, db_url)) == accepted
    assert_files_match_index(_db(small_disk, db_url), small_disk / "fs1")


@pytest.mark.parametrize(
    "pixels,leave,count",
    [(512, 3 << 20, 12), (16, 160 << 10, 200)],
    ids=["large-objects", "small-objects"],
)
def test_writes_that_meet_a_full_disk_fail_alone_and_leave_nothing_behind(
    serve: Serve, small_disk: Path, db_url: str, pixels: int, leave: int, count: int
) -> None:
    """No minimum, and the disk filled up to its last bytes: stores meet the full disk
    (with large objects their files; with small ones, on SQLite, the database beside
    them first). Each is answered: Success with its row and its file, or 0xA700 with
    neither. A restart after space is freed finds files and rows agreeing, and stores
    again."""
    port = free_port()
    config = _config(small_disk, db_url, port, "0")
    served = serve(config, port)
    filler = _fill(small_disk, leave)
    outcomes: dict[str, int] = {}
    comments: set[str] = set()
    assoc = _sender(port)
    try:
        for n in range(count):
            ds = dicomgen.ct(size=pixels, seed=n)
            status = assoc.send_c_store(ds)
            assert "Status" in status, "a store was not answered"
            outcomes[ds.SOPInstanceUID] = status.Status
            comments.add(status.get("ErrorComment", ""))
    finally:
        assoc.release()
    assert set(outcomes.values()) == {0x0000, 0xA700}
    assert comments - {""} <= {"storage is full", "Out of resources: database is full"}
    settled(small_disk / "fs1")
    status, log = served.stop()
    assert status == 0
    # Each shortage is logged once, not per failed store.
    assert log.count("a write failed: No space left on device") <= 1
    assert log.count("the database is full") <= 1
    stored = {uid for uid, status in outcomes.items() if status == 0}
    db = _db(small_disk, db_url)
    assert _indexed(db) == stored
    assert_files_match_index(db, small_disk / "fs1")
    filler.unlink()
    again = serve(config, port)
    assoc = _sender(port)
    try:
        assert assoc.send_c_store(dicomgen.ct()).Status == 0
    finally:
        assoc.release()
    settled(small_disk / "fs1")
    status, log = again.stop()
    assert status == 0
    assert "recovered after an unclean stop" not in log
    assert stored < _indexed(db)
    assert_files_match_index(db, small_disk / "fs1")
