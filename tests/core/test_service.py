"""`pacs-console serve` as a service, driven by DCMTK: storing a folder (up to a stray
PNG), one log line per association, rejections at association (unknown called AE title,
too many associations), a clean stop on SIGTERM during a store burst, recovery after
kill -9, and parallel senders."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, Verification
from sqlalchemy import create_engine, func, select
from sqlalchemy.exc import DBAPIError

from core.db.models import Instance
from tests import dicomgen
from tests.conftest import Served, dcmtk_env, free_port, make_config_text, nodelay
from tests.core.test_storage import assert_files_match_index

Tool = Callable[[str], str]
Serve = Callable[..., Served]

# A 1x1 PNG, as a viewer leaves thumbnails next to exported DICOM files.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de"
    "0000000c49444154789c63f8cfc0000003010100c9fe92ef0000000049454e44ae426082"
)
BURST = 300


def indexed(db_url: str) -> set[str]:
    """SOP Instance UIDs in the index."""
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return set(conn.scalars(select(Instance.sop_iuid)))
    finally:
        engine.dispose()


def count_indexed(db_url: str) -> int:
    """Instances in the index; 0 while the service is still creating the schema."""
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return conn.scalar(select(func.count()).select_from(Instance)) or 0
    except DBAPIError:
        return 0
    finally:
        engine.dispose()


def echo(port: int) -> int:
    """C-ECHO the served AE; it is answered once start-up (and recovery) is complete."""
    ae = AE(ae_title="PROBE")
    ae.add_requested_context(Verification)
    assoc = nodelay(ae.associate("127.0.0.1", port, ae_title="DCM4CHEE"))
    assert assoc.is_established
    try:
        return assoc.send_c_echo().Status
    finally:
        assoc.release()


def wait_until(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def storescu(dcmtk: Tool, port: int, *args: str) -> list[str]:
    """The storescu command line against the served AE DCM4CHEE."""
    return [dcmtk("storescu"), "-aec", "DCM4CHEE", "127.0.0.1", str(port), *args]


def send_burst(
    dcmtk: Tool, port: int, folder: Path, tmp_path: Path
) -> tuple[subprocess.Popen[bytes], Path]:
    """Start `storescu -v +sd folder`; its output goes to a file (a pipe nobody reads
    until it ends would stall it once full). Returns (process, output file)."""
    output = tmp_path / "storescu.log"
    with output.open("wb") as sink:
        process = subprocess.Popen(
            storescu(dcmtk, port, "-v", "+sd", str(folder)),
            env=dcmtk_env(),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    return process, output


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, env=dcmtk_env(), capture_output=True, text=True, timeout=120)


def reported_stored(verbose_output: str) -> list[str]:
    """Names of the files storescu -v reported as stored (a Success response)."""
    names, sending = [], None
    for line in verbose_output.splitlines():
        if line.startswith("I: Sending file: "):
            sending = Path(line.removeprefix("I: Sending file: ")).name
        elif line.startswith("I: Received Store Response (Success)") and sending:
            names.append(sending)
    return names


def assoc_lines(stderr: str) -> list[str]:
    """The service's log lines about associations ("CALLING@HOST:PORT -> CALLED: ...")."""
    return re.findall(r" pacs\.assoc: (\S+@\S+ -> .*)", stderr)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """For behaviour that does not depend on the database."""
    return f"sqlite:///{tmp_path / 'archive.db'}"


@pytest.fixture(scope="module")
def burst(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A folder of BURST small CT files of one study; (folder, SOP Instance UID by name)."""
    folder = tmp_path_factory.mktemp("burst")
    study = generate_uid()
    series = [generate_uid() for _ in range(3)]
    uids = {}
    for i in range(BURST):
        ds = dicomgen.ct(study, series[i % 3], InstanceNumber=i, seed=i)
        name = f"ct{i:04d}.dcm"
        dicomgen.save(ds, folder / name)
        uids[name] = ds.SOPInstanceUID
    return folder, uids


def test_storescu_stops_at_a_png_and_what_it_sent_is_indexed(
    serve: Serve, dcmtk: Tool, tmp_path: Path, sqlite_url: str
) -> None:
    """`storescu +sd DIR -xs` with a PNG among the DICOM files stops at the PNG (it sends
    in directory order); everything it sent before is stored and indexed, nothing after,
    and the association's log line says how many were stored."""
    folder = tmp_path / "export"
    _, datasets = dicomgen.study(folder, series=2, instances=4)
    uid_of = {
        f"s{s}_i{i}.dcm": datasets[s * 4 + i].SOPInstanceUID for s in range(2) for i in range(4)
    }
    # Name the PNG so that it falls between DICOM files in directory order.
    for n in range(100):
        png = folder / f"thumb{n}.png"
        png.write_bytes(PNG)
        order = os.listdir(folder)
        if 0 < order.index(png.name) < len(order) - 1:
            break
        png.unlink()
    before = order[: order.index(png.name)]
    port = free_port()
    served = serve(make_config_text(tmp_path, sqlite_url, port), port)
    result = run(storescu(dcmtk, port, "+sd", str(folder), "-xs"))
    assert result.returncode != 0
    assert f"Bad DICOM file: {png}" in result.stderr
    assert indexed(sqlite_url) == {uid_of[name] for name in before}
    status, stderr = served.stop()
    assert status == 0
    [line] = assoc_lines(stderr)
    assert re.match(
        rf"STORESCU@127\.0\.0\.1:\d+ -> DCM4CHEE: C-STORE {len(before)}; aborted by the peer", line
    )
    assert_files_match_index(sqlite_url, tmp_path / "fs1")


def test_one_log_line_per_association(
    serve: Serve, dcmtk: Tool, tmp_path: Path, sqlite_url: str
) -> None:
    """Each association is logged once, naming the peer AE and address, the operations
    with counts (failed ones counted apart) and the outcome; a rejected association is
    logged with the reason, and DCMTK shows the rejection."""
    folder = tmp_path / "in"
    dicomgen.study(folder, series=1, instances=3)
    dicomgen.save(dicomgen.ct(StudyInstanceUID=None), folder / "broken.dcm")
    port = free_port()
    served = serve(make_config_text(tmp_path, sqlite_url, port), port)
    stored = run(storescu(dcmtk, port, "-nh", "-aet", "MODALITY1", "+sd", str(folder)))
    echoed = run([dcmtk("echoscu"), "-aet", "PING", "-aec", "DCM4CHEE", "127.0.0.1", str(port)])
    unknown = run([dcmtk("echoscu"), "-aet", "PING", "-aec", "NOBODY", "127.0.0.1", str(port)])
    status, stderr = served.stop()
    assert status == 0
    assert stored.returncode == 0  # -nh: go on after the failed store
    assert echoed.returncode == 0
    assert unknown.returncode != 0
    assert "Called AE Title Not Recognized" in unknown.stderr
    lines = assoc_lines(stderr)
    assert len(lines) == 3, lines
    peer = r"@127\.0\.0\.1:\d+ -> "
    assert re.fullmatch(
        rf"MODALITY1{peer}DCM4CHEE: C-STORE 4 \(1 failed\); released after \d+\.\ds", lines[0]
    )
    assert re.fullmatch(rf"PING{peer}DCM4CHEE: C-ECHO 1; released after \d+\.\ds", lines[1])
    assert re.fullmatch(
        rf"PING{peer}NOBODY: association rejected: called AE title 'NOBODY' not recognised",
        lines[2],
    )


def test_association_beyond_the_maximum_is_rejected_others_keep_working(
    serve: Serve, dcmtk: Tool, tmp_path: Path, sqlite_url: str
) -> None:
    """With max_associations = 2, a third concurrent association is rejected (transient,
    local limit exceeded) while the two open ones keep working; once one is released a
    new association is accepted again."""
    port = free_port()
    config = make_config_text(tmp_path, sqlite_url, port, "[network]\nmax_associations = 2\n")
    served = serve(config, port)
    ae = AE(ae_title="HOLDER")
    ae.add_requested_context(Verification)
    ae.add_requested_context(CTImageStorage)
    held = [nodelay(ae.associate("127.0.0.1", port, ae_title="DCM4CHEE")) for _ in range(2)]
    try:
        assert all(a.is_established for a in held)
        echoscu = [dcmtk("echoscu"), "-aec", "DCM4CHEE", "127.0.0.1", str(port)]
        third = run(echoscu)
        assert third.returncode != 0
        assert "Rejected Transient" in third.stderr
        assert "Local Limit Exceeded" in third.stderr
        assert [a.send_c_echo().Status for a in held] == [0, 0]
        assert held[0].send_c_store(dicomgen.ct()).Status == 0
        held.pop().release()
        # The slot is free once the archive has finished the released association.
        wait_until(lambda: run(echoscu).returncode == 0, timeout=10)
    finally:
        for assoc in held:
            assoc.release()
    status, stderr = served.stop()
    assert status == 0
    assert "association rejected: maximum of 2 associations reached" in stderr


def test_sigterm_during_a_store_burst_stops_cleanly(
    serve: Serve, dcmtk: Tool, tmp_path: Path, db_url: str, burst: tuple[Path, dict[str, str]]
) -> None:
    """SIGTERM while storescu sends: the service finishes the store in progress, releases
    the association, exits 0 within a few seconds and logs its stop; every instance
    storescu saw stored is indexed with its file, and no file lacks a row."""
    folder, uid_of = burst
    port = free_port()
    served = serve(make_config_text(tmp_path, db_url, port), port)
    sender, output_file = send_burst(dcmtk, port, folder, tmp_path)
    wait_until(lambda: count_indexed(db_url) >= 20)
    started = time.monotonic()
    status, stderr = served.stop(timeout=30)  # SIGTERM
    assert time.monotonic() - started < 5
    sender.wait(timeout=30)
    output = output_file.read_text()
    assert status == 0, stderr
    assert "stopping: finishing in-flight operations" in stderr
    assert stderr.rstrip().endswith("stopped")
    [line] = assoc_lines(stderr)
    assert "; released by the archive (shutting down) after " in line
    reported = {uid_of[name] for name in reported_stored(output)}
    assert len(reported) >= 20
    assert len(reported) < BURST, "storescu finished before the stop: nothing interrupted"
    assert reported <= indexed(db_url)
    assert_files_match_index(db_url, tmp_path / "fs1")


def test_kill_during_a_store_burst_then_restart_recovers(
    serve: Serve, dcmtk: Tool, tmp_path: Path, db_url: str, burst: tuple[Path, dict[str, str]]
) -> None:
    """kill -9 in the middle of a store burst, then start again: recovery leaves files and
    rows in agreement, and every instance storescu saw stored is there."""
    folder, uid_of = burst
    port = free_port()
    config = make_config_text(tmp_path, db_url, port)
    served = serve(config, port)
    sender, output_file = send_burst(dcmtk, port, folder, tmp_path)
    wait_until(lambda: count_indexed(db_url) >= 20)
    served.proc.kill()
    served.stop()
    sender.wait(timeout=30)
    output = output_file.read_text()
    reported = {uid_of[name] for name in reported_stored(output)}
    assert 20 <= len(reported) < BURST
    restarted = serve(config, port)
    assert echo(port) == 0
    assert reported <= indexed(db_url)
    assert_files_match_index(db_url, tmp_path / "fs1")
    status, _ = restarted.stop()
    assert status == 0


def test_parallel_storescu_all_succeed(
    serve: Serve, dcmtk: Tool, tmp_path: Path, db_url: str
) -> None:
    """Four storescu at once, each sending a study: all succeed, everything is indexed,
    each association is logged."""
    expected: set[str] = set()
    for n in range(4):
        _, datasets = dicomgen.study(tmp_path / f"study{n}", series=2, instances=15)
        expected |= {ds.SOPInstanceUID for ds in datasets}
    port = free_port()
    served = serve(make_config_text(tmp_path, db_url, port), port)
    senders = [
        subprocess.Popen(
            storescu(dcmtk, port, "-aet", f"MOD{n}", "+sd", str(tmp_path / f"study{n}")),
            env=dcmtk_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for n in range(4)
    ]
    outputs = [sender.communicate(timeout=120)[0] for sender in senders]
    assert [sender.returncode for sender in senders] == [0] * 4, outputs
    assert indexed(db_url) == expected
    status, stderr = served.stop()
    assert status == 0
    assert sorted(line.split("@")[0] for line in assoc_lines(stderr)) == [
        "MOD0",
        "MOD1",
        "MOD2",
        "MOD3",
    ]
    assert_files_match_index(db_url, tmp_path / "fs1")
