"""Query SCP over the network (pynetdicom as the SCU), on SQLite and PostgreSQL: both
information models at every level, response contents, A900 identifier errors as dcm4chee
words them, C-CANCEL, views per AE, and failures that leave the association working."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from pydicom import Dataset
from pydicom.uid import ImplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.dsutils import encode
from pynetdicom.pdu_primitives import SOPClassExtendedNegotiation
from sqlalchemy import update

from core.archive import Archive
from core.config import Config
from core.db.models import Instance
from core.dicom.uids import EXPLICIT_VR_LE
from core.dimse import messages
from core.dimse.scu import associate
from tests import dicomgen
from tests.conftest import archive_port, free_port
from tests.core.find_support import (
    PATIENT_ROOT,
    SERIES_A1,
    SERIES_A2,
    SERIES_B1,
    SERIES_C1,
    STUDY_A,
    STUDY_B,
    STUDY_C,
    STUDY_D,
    STUDY_ROOT,
    Corpus,
    c_find,
    connect,
    corpus,
    find_ae,
    query,
    store,
)

CT = "1.2.840.10008.5.1.4.1.1.2"
MR = "1.2.840.10008.5.1.4.1.1.4"


@pytest.fixture
def stored(archive: Archive) -> Corpus:
    data = corpus()
    store(archive_port(archive), data.datasets)
    return data


@pytest.fixture
def assoc(archive: Archive, stored: Corpus) -> Iterator:
    association = connect(find_ae(), archive_port(archive))
    yield association
    if association.is_established:
        association.release()


def _uids(matches: list[Dataset], keyword: str) -> set[str]:
    return {str(ds[keyword].value) for ds in matches}


def test_study_root_every_level(assoc, stored: Corpus) -> None:
    status, matches, _ = c_find(assoc, query(QueryRetrieveLevel="STUDY", StudyInstanceUID=None))
    assert status == 0x0000
    assert _uids(matches, "StudyInstanceUID") == {STUDY_A, STUDY_B, STUDY_C, STUDY_D}

    status, matches, _ = c_find(
        assoc, query(QueryRetrieveLevel="SERIES", StudyInstanceUID=STUDY_A, SeriesInstanceUID="")
    )
    assert status == 0x0000
    assert _uids(matches, "SeriesInstanceUID") == {SERIES_A1, SERIES_A2}

    status, matches, _ = c_find(
        assoc,
        query(
            QueryRetrieveLevel="IMAGE",
            StudyInstanceUID=STUDY_A,
            SeriesInstanceUID=SERIES_A1,
            SOPInstanceUID="",
            InstanceNumber="",
            SOPClassUID="",
            Rows=None,
        ),
    )
    assert status == 0x0000
    assert _uids(matches, "SOPInstanceUID") == stored.sop_uids(SERIES_A1)
    assert sorted(ds.InstanceNumber for ds in matches) == [1, 2]
    assert {(ds.SOPClassUID, ds.Rows) for ds in matches} == {(CT, 16)}  # UI, and US binary


def test_patient_root_every_level(assoc, stored: Corpus) -> None:
    status, matches, _ = c_find(
        assoc,
        query(QueryRetrieveLevel="PATIENT", PatientName="doe*", PatientID=""),
        PATIENT_ROOT,
    )
    assert status == 0x0000
    assert {(str(ds.PatientName), ds.PatientID) for ds in matches} == {
        ("Doe^John", "PID-1"),
        ("DOERING^Max", "PID-2"),
    }

    status, matches, _ = c_find(
        assoc,
        query(QueryRetrieveLevel="STUDY", PatientID="PID-1", StudyInstanceUID=""),
        PATIENT_ROOT,
    )
    assert (status, _uids(matches, "StudyInstanceUID")) == (0x0000, {STUDY_A})

    status, matches, _ = c_find(
        assoc,
        query(
            QueryRetrieveLevel="SERIES",
            PatientID="PID-1",
            StudyInstanceUID=STUDY_A,
            Modality="MR",
            SeriesInstanceUID="",
        ),
        PATIENT_ROOT,
    )
    assert (status, _uids(matches, "SeriesInstanceUID")) == (0x0000, {SERIES_A2})

    status, matches, _ = c_find(
        assoc,
        query(
            QueryRetrieveLevel="IMAGE",
            PatientID="PID-3",
            StudyInstanceUID=STUDY_C,
            SeriesInstanceUID=SERIES_C1,
            SOPInstanceUID="",
        ),
        PATIENT_ROOT,
    )
    assert (status, _uids(matches, "SOPInstanceUID")) == (0x0000, stored.sop_uids(SERIES_C1))


def test_responses_hold_the_requested_keys_only(assoc) -> None:
    identifier = query(
        QueryRetrieveLevel="STUDY",
        StudyInstanceUID=STUDY_B,
        StudyDate=None,
        StudyDescription=None,
        PatientBirthDate=None,
        PatientComments=None,  # not stored: returned empty
        SeriesDescription=None,  # a series key at study level: returned empty
        OtherPatientIDsSequence=[],
    )
    status, matches, _ = c_find(assoc, identifier)
    assert status == 0x0000
    (ds,) = matches
    requested = {elem.keyword for elem in identifier} | {"QueryRetrieveLevel"}
    assert {elem.keyword for elem in ds} == requested
    assert ds.StudyDate == "20260215"
    assert ds.StudyDescription == "MR Knee"
    assert ds.PatientBirthDate == "19851224"
    assert ds.QueryRetrieveLevel == "STUDY"
    assert ds["PatientComments"].is_empty
    assert ds["SeriesDescription"].is_empty
    assert ds.OtherPatientIDsSequence == []
    assert "SpecificCharacterSet" not in ds  # all values are ASCII


def test_computed_keys_retrieve_ae_and_availability(assoc) -> None:
    status, matches, _ = c_find(
        assoc,
        query(
            QueryRetrieveLevel="STUDY",
            StudyInstanceUID=STUDY_A,
            NumberOfStudyRelatedSeries=None,
            NumberOfStudyRelatedInstances=None,
            ModalitiesInStudy=None,
            SOPClassesInStudy=None,
            NumberOfPatientRelatedStudies=None,
            RetrieveAETitle=None,
            InstanceAvailability=None,
        ),
    )
    assert status == 0x0000
    (ds,) = matches
    assert ds.NumberOfStudyRelatedSeries == 2
    assert ds.NumberOfStudyRelatedInstances == 3
    assert list(ds.ModalitiesInStudy) == ["CT", "MR"]
    assert list(ds.SOPClassesInStudy) == [CT, MR]
    assert ds.NumberOfPatientRelatedStudies == 1
    assert ds.RetrieveAETitle == "DCM4CHEE"
    assert ds.InstanceAvailability == "ONLINE"

    status, matches, _ = c_find(
        assoc,
        query(
            QueryRetrieveLevel="PATIENT",
            PatientID="PID-1",
            NumberOfPatientRelatedStudies=None,
            NumberOfPatientRelatedSeries=None,
            NumberOfPatientRelatedInstances=None,
        ),
        PATIENT_ROOT,
    )
    (ds,) = matches
    assert (
        ds.NumberOfPatientRelatedStudies,
        ds.NumberOfPatientRelatedSeries,
        ds.NumberOfPatientRelatedInstances,
    ) == (1, 2, 3)

    status, matches, _ = c_find(
        assoc,
        query(
            QueryRetrieveLevel="SERIES",
            StudyInstanceUID=STUDY_A,
            SeriesInstanceUID=None,
            NumberOfSeriesRelatedInstances=None,
        ),
    )
    assert {(ds.SeriesInstanceUID, ds.NumberOfSeriesRelatedInstances) for ds in matches} == {
        (SERIES_A1, 2),
        (SERIES_A2, 1),
    }


def test_person_names_ignore_case_and_non_ascii_answers(assoc) -> None:
    identifier = query(
        QueryRetrieveLevel="STUDY",
        SpecificCharacterSet="ISO_IR 100",
        PatientName="müller*",
        StudyDescription=None,
    )
    status, matches, _ = c_find(assoc, identifier)
    assert status == 0x0000
    (ds,) = matches
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert str(ds.PatientName) == "Müller^Hans"
    assert ds.StudyDescription == "Röntgen Thorax"

    status, matches, _ = c_find(
        assoc, query(QueryRetrieveLevel="STUDY", PatientName="DOE", StudyInstanceUID=None)
    )
    assert _uids(matches, "StudyInstanceUID") == {STUDY_A}


def test_sequence_keys_return_the_stored_sequence(assoc) -> None:
    identifier = query(
        QueryRetrieveLevel="STUDY",
        StudyInstanceUID=f"{STUDY_A}\\{STUDY_B}",
        ProcedureCodeSequence=[Dataset()],
    )
    status, matches, _ = c_find(assoc, identifier)
    assert status == 0x0000
    by_uid = {ds.StudyInstanceUID: ds for ds in matches}
    (item,) = by_uid[STUDY_A].ProcedureCodeSequence
    assert (item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning) == (
        "CTCHEST",
        "99ACME",
        "CT of the chest",
    )
    assert by_uid[STUDY_B].ProcedureCodeSequence == []


@pytest.mark.parametrize(
    ("model", "identifier", "comment", "offending"),
    [
        (
            STUDY_ROOT,
            query(StudyInstanceUID=None),
            "Missing QueryRetrieveLevel (0008,0052)",
            0x00080052,
        ),
        (
            STUDY_ROOT,
            query(QueryRetrieveLevel="FOO"),
            "Invalid QueryRetrieveLevel (0008,0052) - FOO",
            0x00080052,
        ),
        (
            STUDY_ROOT,
            query(QueryRetrieveLevel="PATIENT", PatientID=None),
            "Invalid QueryRetrieveLevel (0008,0052) - PATIENT",
            0x00080052,
        ),
        (
            STUDY_ROOT,
            query(QueryRetrieveLevel="SERIES", SeriesInstanceUID=None),
            "Missing StudyInstanceUID (0020,000D)",
            0x0020000D,
        ),
        (
            STUDY_ROOT,
            query(QueryRetrieveLevel="IMAGE", StudyInstanceUID="1.2*", SeriesInstanceUID="1.3"),
            "Invalid StudyInstanceUID (0020,000D) - 1.2*",
            0x0020000D,
        ),
        (
            PATIENT_ROOT,
            query(QueryRetrieveLevel="STUDY", StudyInstanceUID=None),
            "Missing PatientID (0010,0020)",
            0x00100020,
        ),
        (
            STUDY_ROOT,
            query(QueryRetrieveLevel="STUDY", StudyDate="yesterday"),
            "Invalid StudyDate (0008,0020) - yesterday",
            0x00080020,
        ),
    ],
    ids=[
        "no-level",
        "unknown-level",
        "patient-level-in-study-root",
        "series-without-study",
        "wildcard-study-uid",
        "patient-root-study-without-patient-id",
        "invalid-date",
    ],
)
def test_bad_identifiers_get_a900(assoc, model, identifier, comment, offending) -> None:
    status, matches, final = c_find(assoc, identifier, model)
    assert (status, matches) == (0xA900, [])
    assert final.ErrorComment == comment
    assert final.OffendingElement == offending
    # The association goes on.
    status, matches, _ = c_find(assoc, query(QueryRetrieveLevel="STUDY", StudyID="S1"))
    assert (status, len(matches)) == (0x0000, 1)


def test_relational_queries_when_negotiated(archive: Archive, stored: Corpus) -> None:
    ae = find_ae()
    relational = SOPClassExtendedNegotiation()
    relational.sop_class_uid = STUDY_ROOT
    relational.service_class_application_information = b"\x01"
    assoc = connect(ae, archive_port(archive), ext_neg=[relational])
    try:
        status, matches, _ = c_find(
            assoc, query(QueryRetrieveLevel="SERIES", Modality="CT", SeriesInstanceUID=None)
        )
        assert (status, _uids(matches, "SeriesInstanceUID")) == (0x0000, {SERIES_A1, SERIES_C1})
        status, matches, _ = c_find(
            assoc, query(QueryRetrieveLevel="IMAGE", PatientName="DOERING*", SOPInstanceUID="")
        )
        assert (status, _uids(matches, "SOPInstanceUID")) == (0x0000, stored.sop_uids(SERIES_B1))
    finally:
        assoc.release()


def test_implicit_vr_identifiers(archive: Archive, stored: Corpus) -> None:
    ae = AE(ae_title="ACME1")
    ae.add_requested_context(STUDY_ROOT, [ImplicitVRLittleEndian])
    assoc = connect(ae, archive_port(archive))
    try:
        status, matches, _ = c_find(
            assoc,
            query(
                QueryRetrieveLevel="SERIES",
                StudyInstanceUID=STUDY_D,
                SeriesNumber="1",
                InstitutionName=None,
            ),
        )
        assert status == 0x0000
        (ds,) = matches
        assert ds.InstitutionName == "Praxis Süd"
    finally:
        assoc.release()


def test_c_cancel_stops_the_query(archive: Archive) -> None:
    """A C-CANCEL-RQ sent right behind the C-FIND-RQ (before any response is read, so
    the archive cannot have answered the whole query first) ends it with Cancel after
    fewer than all its matches; the association goes on, and the same query without a
    cancel is whole."""
    port = archive_port(archive)
    store(port, [dicomgen.ct(StudyDescription=f"Many {n}") for n in range(150)])
    data = encode(query(QueryRetrieveLevel="STUDY", StudyDescription="Many*"), False, True)
    assoc = associate("127.0.0.1", port, "ACME1", "DCM4CHEE", [(STUDY_ROOT, [EXPLICIT_VR_LE])])

    def answers(message_id: int) -> tuple[int, int]:
        """(final status, pending responses) of the C-FIND `message_id`."""
        pending = 0
        while True:
            _, response = assoc.receive_command()
            assert response.us(messages.MESSAGE_ID_BEING_RESPONDED_TO) == message_id
            if response.us(messages.STATUS) != 0xFF00:
                return response.us(messages.STATUS), pending
            assoc.receive_dataset()
            pending += 1

    try:
        (ctx_id,) = assoc.contexts
        find = messages.request(messages.C_FIND_RQ, STUDY_ROOT, 7, has_dataset=True)
        assoc.send_command(ctx_id, find)
        assoc.send_data(ctx_id, data)
        cancel = [
            (messages.COMMAND_FIELD, messages.C_CANCEL_RQ),
            (messages.MESSAGE_ID_BEING_RESPONDED_TO, 7),
            (messages.COMMAND_DATA_SET_TYPE, messages.NO_DATASET),
        ]
        assoc.send_command(ctx_id, messages.encode(cancel))
        status, pending = answers(7)
        assert status == 0xFE00 and pending < 150
        # The association goes on, and the query is whole without a cancel.
        assoc.send_command(
            ctx_id, messages.request(messages.C_FIND_RQ, STUDY_ROOT, 8, has_dataset=True)
        )
        assoc.send_data(ctx_id, data)
        assert answers(8) == (0x0000, 150)
    finally:
        assoc.release()


def test_undecodable_identifier_gets_c000(archive: Archive, stored: Corpus) -> None:
    assoc = associate(
        "127.0.0.1", archive_port(archive), "ACME1", "DCM4CHEE", [(STUDY_ROOT, [EXPLICIT_VR_LE])]
    )
    try:
        (ctx_id,) = assoc.contexts
        request = messages.request(messages.C_FIND_RQ, STUDY_ROOT, 3, has_dataset=True)
        # A sequence of undefined length whose "item" has no item tag.
        garbage = b"\x08\x00\x32\x10SQ\x00\x00\xff\xff\xff\xff\x12\x34\x56\x78\x04\x00\x00\x00abcd"
        assoc.send_command(ctx_id, request)
        assoc.send_data(ctx_id, garbage)
        _, response = assoc.receive_command()
        assert response.us(messages.STATUS) == 0xC000
        assert response.us(messages.MESSAGE_ID_BEING_RESPONDED_TO) == 3
        assert response.text(messages.ERROR_COMMENT).startswith("Cannot decode identifier")
        # Same association, a good query.
        good = Dataset()
        good.QueryRetrieveLevel = "STUDY"
        good.StudyID = "S2"
        assoc.send_command(ctx_id, request)
        assoc.send_data(ctx_id, encode(good, False, True))
        _, response = assoc.receive_command()
        assert response.us(messages.STATUS) == 0xFF00
        assert b"S2" in assoc.receive_dataset()
        _, response = assoc.receive_command()
        assert response.us(messages.STATUS) == 0x0000
    finally:
        assoc.release()


def test_database_failure_gives_c001_and_the_association_goes_on(archive: Archive, assoc) -> None:
    engine = archive.services.db.engine
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE study RENAME TO study_away")
    try:
        status, matches, final = c_find(assoc, query(QueryRetrieveLevel="STUDY", StudyID=None))
        assert (status, matches) == (0xC001, [])
        assert final.ErrorComment.startswith("Unable to process")
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE study_away RENAME TO study")
    status, matches, _ = c_find(assoc, query(QueryRetrieveLevel="STUDY", StudyID=None))
    assert (status, len(matches)) == (0x0000, 4)


def test_view_of_the_called_ae(stored_views: tuple[int, Corpus]) -> None:
    port, _ = stored_views
    ae = find_ae()
    expected = {
        "DCM4CHEE": {STUDY_A, STUDY_C, STUDY_D},
        "IOCM_QUALITY": {STUDY_B},
        "AS_RECEIVED": {STUDY_A, STUDY_B, STUDY_C, STUDY_D},
    }
    for title, studies in expected.items():
        assoc = connect(ae, port, title)
        try:
            status, matches, _ = c_find(
                assoc,
                query(QueryRetrieveLevel="STUDY", StudyInstanceUID=None, RetrieveAETitle=None),
            )
            assert (status, _uids(matches, "StudyInstanceUID")) == (0x0000, studies)
            assert {ds.RetrieveAETitle for ds in matches} == {title}
        finally:
            assoc.release()


@pytest.fixture
def stored_views(make_config: Callable[..., Config]) -> Iterator[tuple[int, Corpus]]:
    """An archive with the AEs IOCM_QUALITY and AS_RECEIVED on the port of DCM4CHEE, the
    corpus stored, and the instances of study B rejected for quality reasons."""
    port = free_port()
    extra = "".join(
        f'\n[[ae]]\ntitle = "{title}"\nhost = "127.0.0.1"\nport = {port}\nview = "{view}"\n'
        for title, view in (("IOCM_QUALITY", "iocm_quality"), ("AS_RECEIVED", "as_received"))
    )
    arc = Archive(make_config(extra, port=port))
    arc.start()
    try:
        data = corpus()
        store(port, data.datasets)
        with arc.services.db.write() as session:
            session.execute(
                update(Instance)
                .where(Instance.sop_iuid.in_(data.sop_uids(SERIES_B1)))
                .values(rejection_code="113001^DCM")
            )
        yield port, data
    finally:
        arc.stop(grace=5)


def test_long_value_lists_are_answered(assoc) -> None:
    """Value lists of a thousand values (modalities, wildcard names, accession numbers)
    and of five thousand UIDs are matched, not failed: SQLite refuses expressions nested
    more than 1000 deep, which a plain OR of the values would be."""
    fillers = [f"X{n:03d}" for n in range(999)]
    status, matches, final = c_find(
        assoc,
        query(
            QueryRetrieveLevel="STUDY",
            StudyInstanceUID=None,
            ModalitiesInStudy="\\".join([*fillers, "CR"]),
        ),
    )
    assert (status, final.get("ErrorComment")) == (0x0000, None)
    assert _uids(matches, "StudyInstanceUID") == {STUDY_D}

    names = "\\".join([*(f"NOBODY{n}*" for n in range(999)), "DOE*"])
    status, matches, _ = c_find(
        assoc, query(QueryRetrieveLevel="STUDY", StudyInstanceUID=None, PatientName=names)
    )
    assert status == 0x0000
    assert _uids(matches, "StudyInstanceUID") == {STUDY_A, STUDY_B}

    accessions = "\\".join([*fillers, "ACC_2", "ACC-1"])
    status, matches, _ = c_find(
        assoc,
        query(QueryRetrieveLevel="STUDY", StudyInstanceUID=None, AccessionNumber=accessions),
    )
    assert status == 0x0000
    assert _uids(matches, "StudyInstanceUID") == {STUDY_A, STUDY_B}

    uids = "\\".join([*(f"1.2.3.{n}" for n in range(4999)), STUDY_C])
    status, matches, _ = c_find(assoc, query(QueryRetrieveLevel="STUDY", StudyInstanceUID=uids))
    assert status == 0x0000
    assert _uids(matches, "StudyInstanceUID") == {STUDY_C}
