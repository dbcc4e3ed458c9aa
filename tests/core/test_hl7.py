"""HL7 v2 over MLLP (issue 15, outcome 8): ADT messages create, update and merge patients;
every message is acknowledged, errors with an ERR segment naming segment and field, as
dcm4chee answers; garbage and dropped connections leave the listener serving. Messages are
sent over a real socket to an archive on SQLite and on PostgreSQL."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import hl7
import pytest
from hl7.mllp.streams import CARRIAGE_RETURN, END_BLOCK, START_BLOCK

from core.archive import Archive
from core.config import Config
from core.net.server import StartupError
from core.services import patients
from tests.conftest import Served, free_port, make_config_text
from tests.core.hl7_support import ack_code, error, message, msh, peer, send


def _patient(archive: Archive, patient_id: str, issuer: str = "") -> patients.PatientRow:
    assert archive.services is not None
    found = patients.lookup(archive.services, patient_id, issuer)
    assert found is not None, f"no patient {patient_id}"
    return found


PID_DOE = "PID|1||P1^^^HOSP^MR||Doe^John^M^Jr^Dr||19700102|M"


def test_a01_creates_a_patient_and_is_acknowledged(hl7_archive: tuple[Archive, int]) -> None:
    """ADT^A01: PID-3 (ID and issuer), PID-5, PID-7, PID-8 make the patient; ACK AA
    echoes the message control ID, from the receiving application to the sender."""
    archive, port = hl7_archive
    ack = send(port, message(msh("ADT^A01^ADT_A01", "CTRL1"), "EVN|A01", PID_DOE))
    assert ack_code(ack) == "AA"
    assert str(ack["MSA.F2"]) == "CTRL1"
    assert str(ack.segment("MSH")(9)) == "ACK^A01^ACK"
    assert (str(ack["MSH.F3"]), str(ack["MSH.F5"])) == ("PACS", "RIS")
    row = _patient(archive, "P1", "HOSP")
    assert (row.name, row.birth_date, row.sex) == ("Doe^John^M^Dr^Jr", "19700102", "M")


def test_a04_and_a08_update_what_they_carry(hl7_archive: tuple[Archive, int]) -> None:
    """A second message for the same ID updates the patient: a field it carries is set,
    an absent field stays, `""` (HL7 null) removes the value; sex A maps to O."""
    archive, port = hl7_archive
    with peer(port) as ris:
        assert ack_code(ris.send(message(msh("ADT^A04"), PID_DOE))) == "AA"
        update = "PID|1||P1^^^HOSP||Roe^Jane||" + '""' + "|A"
        assert ack_code(ris.send(message(msh("ADT^A08"), update))) == "AA"
        row = _patient(archive, "P1", "HOSP")
        assert (row.name, row.birth_date, row.sex) == ("Roe^Jane", "", "O")
        assert ack_code(ris.send(message(msh("ADT^A08"), "PID|1||P1^^^HOSP||||19800101"))) == "AA"
    row = _patient(archive, "P1", "HOSP")
    assert (row.name, row.birth_date, row.sex) == ("Roe^Jane", "19800101", "O")


def test_a40_merges_the_prior_patient(hl7_archive: tuple[Archive, int]) -> None:
    """ADT^A40: the patient of MRG-1 is merged into the patient of PID-3; a prior patient
    the archive does not know is created merged, as dcm4chee does."""
    archive, port = hl7_archive
    assert archive.services is not None
    with peer(port) as ris:
        ris.send(message(msh("ADT^A01"), PID_DOE))
        ris.send(message(msh("ADT^A01"), "PID|1||OLD^^^HOSP||Doe^J"))
        ack = ris.send(message(msh("ADT^A40^ADT_A39"), PID_DOE, "MRG|OLD^^^HOSP"))
        assert ack_code(ack) == "AA"
        assert _patient(archive, "OLD", "HOSP").merged_into == "P1^^^HOSP"
        assert _patient(archive, "P1", "HOSP").merged_into is None
        unknown = ris.send(message(msh("ADT^A40"), PID_DOE, "MRG|GONE^^^HOSP||||||Gone^G"))
        assert ack_code(unknown) == "AA"
    gone = _patient(archive, "GONE", "HOSP")
    assert (gone.name, gone.merged_into) == ("Gone^G", "P1^^^HOSP")


def test_a47_changes_the_patient_id(hl7_archive: tuple[Archive, int]) -> None:
    """ADT^A47: the patient of MRG-1 takes the ID of PID-3; an ID another patient has is
    refused with 205 at PID^1^3."""
    archive, port = hl7_archive
    assert archive.services is not None
    with peer(port) as ris:
        ris.send(message(msh("ADT^A01"), "PID|1||TMP^^^HOSP||Doe^John"))
        pk = _patient(archive, "TMP", "HOSP").pk
        ack = ris.send(message(msh("ADT^A47^ADT_A30"), "PID|1||NEW^^^HOSP", "MRG|TMP^^^HOSP"))
        assert ack_code(ack) == "AA"
        assert _patient(archive, "NEW", "HOSP").pk == pk
        assert patients.lookup(archive.services, "TMP", "HOSP") is None
        ris.send(message(msh("ADT^A01"), "PID|1||OTHER^^^HOSP||Roe"))
        taken = ris.send(message(msh("ADT^A47"), "PID|1||OTHER^^^HOSP", "MRG|NEW^^^HOSP"))
    assert error(taken)[:3] == ("AR", "PID^1^3", "205")


def test_a_merged_patient_is_not_updated(hl7_archive: tuple[Archive, int]) -> None:
    """An update naming a merged patient is refused (dcm4chee's REJECT policy): AR 204 at
    PID^1^3, the reason names the patient it was merged with."""
    archive, port = hl7_archive
    with peer(port) as ris:
        ris.send(message(msh("ADT^A01"), PID_DOE))
        ris.send(message(msh("ADT^A40"), PID_DOE, "MRG|OLD^^^HOSP"))
        ack = ris.send(message(msh("ADT^A08"), "PID|1||OLD^^^HOSP||Renamed"))
    code, where, hl7_code, text = error(ack)
    assert (code, where, hl7_code) == ("AR", "PID^1^3", "204")
    assert "merged with P1^^^HOSP" in text
    assert _patient(archive, "OLD", "HOSP").name == ""


@pytest.mark.parametrize(
    ("segments", "expected"),
    [
        (["PID|1||^^^HOSP||Doe"], ("AE", "PID^1^3", "101", "Missing patient identifier")),
        (
            ["PID|1||P9||Doe||1970-01-02"],
            ("AE", "PID^1^7", "102", "Invalid birth date: 1970-01-02"),
        ),
        (
            ["PID|1||P9||" + "D" * 65 + "^John"],
            ("AE", "PID^1^5", "102", "Patient name is too long (PN allows 64 characters)"),
        ),
    ],
    ids=["no patient ID", "bad birth date", "name too long"],
)
def test_a_bad_adt_gets_an_error_ack_naming_the_field(
    hl7_archive: tuple[Archive, int], segments: list[str], expected: tuple[str, ...]
) -> None:
    """A field missing or malformed: AE, ERR-2 the segment and field, ERR-3 the HL7 error
    code, MSA-3 the reason; nothing is stored."""
    archive, port = hl7_archive
    assert archive.services is not None
    ack = send(port, message(msh("ADT^A01"), *segments))
    assert error(ack) == expected
    assert patients.lookup(archive.services, "P9") is None


def test_a40_without_mrg_names_mrg_1(hl7_archive: tuple[Archive, int]) -> None:
    """A merge without the prior patient's ID: AE 101 at MRG^1^1."""
    _, port = hl7_archive
    ack = send(port, message(msh("ADT^A40"), PID_DOE))
    assert error(ack) == ("AE", "MRG^1^1", "101", "Missing prior patient identifier")


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("QRY^A19", ("AR", "MSH^1^9^1^1", "200", "Message Type - Message Code not supported")),
        ("ADT^A99", ("AR", "MSH^1^9^1^2", "201", "Message Type - Trigger Event not supported")),
    ],
)
def test_an_unsupported_message_type_is_refused_as_dcm4che_does(
    hl7_archive: tuple[Archive, int], kind: str, expected: tuple[str, ...]
) -> None:
    """A message code the archive does not take: AR 200 at MSH-9.1; a trigger event of a
    code it takes: AR 201 at MSH-9.2 (dcm4che's HL7Application.validateMSH)."""
    _, port = hl7_archive
    assert error(send(port, message(msh(kind), PID_DOE))) == expected


def test_a_header_without_control_id_names_msh_10(hl7_archive: tuple[Archive, int]) -> None:
    """MSH-10 missing: AE 101 at MSH^1^10^1^1, "Missing Message Control ID"."""
    _, port = hl7_archive
    header = "MSH|^~\\&|RIS|HOSP|PACS|HOSP|20240102030405||ADT^A01||P|2.5"
    ack = send(port, message(header, PID_DOE))
    assert error(ack) == ("AE", "MSH^1^10^1^1", "101", "Missing Message Control ID")


def test_garbage_and_dropped_connections_leave_the_listener_serving(
    hl7_archive: tuple[Archive, int],
) -> None:
    """A frame that is no HL7 message gets an AR naming MSH and the connection goes on;
    bytes outside a frame are skipped; a connection dropped in the middle of a frame, or
    right after connecting, does not stop the listener."""
    archive, port = hl7_archive
    with peer(port) as ris:
        ris.send_raw(START_BLOCK + b"\x00\xffgarbage" + END_BLOCK + CARRIAGE_RETURN)
        code, where, hl7_code, text = error(hl7.parse(ris.read_block().decode("iso8859-1")))
        assert (code, where, hl7_code) == ("AR", "MSH^1", "100")
        assert text.startswith("Not an HL7 message")
        ris.send_raw(b"noise without a start block" + END_BLOCK + CARRIAGE_RETURN)
        assert ack_code(ris.send(message(msh("ADT^A01"), PID_DOE))) == "AA"
    with socket.create_connection(("127.0.0.1", port)) as dropped:
        dropped.sendall(START_BLOCK + message(msh("ADT^A01"), PID_DOE).encode()[:30])
    socket.create_connection(("127.0.0.1", port)).close()
    ack = send(port, message(msh("ADT^A08"), "PID|1||P1^^^HOSP||Doe^Jim"))
    assert ack_code(ack) == "AA"
    assert _patient(archive, "P1", "HOSP").name == "Doe^Jim"


def test_messages_sent_back_to_back_are_applied_and_acknowledged_in_order(
    hl7_archive: tuple[Archive, int],
) -> None:
    """Two blocks in one write, without waiting: two ACKs, in order, and the later
    message's values win."""
    archive, port = hl7_archive
    first = message(msh("ADT^A01", "FIRST"), "PID|1||B2B||First^Name")
    second = message(msh("ADT^A08", "SECOND"), "PID|1||B2B||Second^Name")
    with peer(port) as ris:
        ris.send_raw(
            b"".join(
                START_BLOCK + text.encode() + END_BLOCK + CARRIAGE_RETURN
                for text in (first, second)
            )
        )
        acks = [hl7.parse(ris.read_block().decode()) for _ in range(2)]
    assert [(ack_code(a), str(a["MSA.F2"])) for a in acks] == [("AA", "FIRST"), ("AA", "SECOND")]
    assert _patient(archive, "B2B").name == "Second^Name"


def test_character_sets(hl7_archive: tuple[Archive, int]) -> None:
    """MSH-18 `UNICODE UTF-8` is read as UTF-8; without MSH-18 a message is ISO 8859-1
    (dcm4chee's default)."""
    archive, port = hl7_archive
    with peer(port) as ris:
        utf8 = message(msh("ADT^A01", charset="UNICODE UTF-8"), "PID|1||U1||Müller^Jörg")
        assert ack_code(ris.send(utf8, encoding="utf-8")) == "AA"
        latin = message(msh("ADT^A01"), "PID|1||L1||Gärtner^Zoë")
        assert ack_code(ris.send(latin, encoding="iso8859-1")) == "AA"
    assert _patient(archive, "U1").name == "Müller^Jörg"
    assert _patient(archive, "L1").name == "Gärtner^Zoë"


def test_an_hl7_port_in_use_stops_the_start(make_config: Callable[..., Config]) -> None:
    """The HL7 port taken by another program: StartupError naming address, port and HL7;
    the DICOM port is released again."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        taken = other.getsockname()[1]
        dicom = free_port()
        archive = Archive(make_config(port=dicom, hl7_port=taken))
        with pytest.raises(StartupError, match=rf"127\.0\.0\.1:{taken} for HL7: .*in use"):
            archive.start()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", dicom))


def test_serve_refuses_an_hl7_port_in_use(tmp_path: Path) -> None:
    """`pacs-console serve` with the HL7 port taken: exit 2, one line naming it."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        taken = other.getsockname()[1]
        config = tmp_path / "config.toml"
        url = f"sqlite:///{tmp_path / 'a.db'}"
        config.write_text(make_config_text(tmp_path, url, free_port(), hl7_port=taken))
        result = subprocess.run(
            [sys.executable, "-m", "tui.cli", "serve", "--config", str(config)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"127.0.0.1:{taken} for HL7" in lines[0]
    assert not (tmp_path / "a.db").exists()


def _listening_sockets(port: int) -> int:
    """How many sockets listen on `port` (/proc/net/tcp: state 0A)."""
    lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(
        1
        for fields in (line.split() for line in lines)
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "0A"
    )


def test_serve_with_workers_listens_once_for_hl7(
    tmp_path: Path, serve: Callable[..., Served]
) -> None:
    """`pacs-console serve` with 2 worker processes: one HL7 listener (the serving
    process's, not one per worker), named at start; it applies messages, and SIGTERM
    stops it cleanly. (SQLite only: the database plays no part in who listens.)"""
    port, hl7_port = free_port(), free_port()
    url = f"sqlite:///{tmp_path / 'a.db'}"
    text = make_config_text(tmp_path, url, port, "[network]\nprocesses = 2\n", hl7_port)
    served = serve(text, port)
    assert _listening_sockets(hl7_port) == 1
    assert ack_code(send(hl7_port, message(msh("ADT^A01"), PID_DOE))) == "AA"
    code, log = served.stop()
    assert code == 0, log
    assert f"HL7 on 127.0.0.1:{hl7_port} (MLLP)" in served.stdout
    assert "HL7 ADT^A01" in log and ": AA" in log
