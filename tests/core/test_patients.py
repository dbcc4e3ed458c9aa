"""Patient management (core.services.patients): search, create, edit, supplement issuer,
merge, delete, and what C-FIND answers after each; the ingest of a merged patient's
objects. On a real SQLite file and on PostgreSQL."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from sqlalchemy import func, select, update

from core.archive import Archive
from core.config import Config
from core.db.matching import MatchingError
from core.db.models import Patient, Series, Study
from core.dicom import attributes
from core.dicom.part10 import file_meta
from core.services import patients, query
from core.services.context import ServiceContext
from core.services.ingest import Received, ingest
from core.services.patients import Demographics, PatientError, PatientSearch
from tests import dicomgen
from tests.conftest import archive_port
from tests.core.find_support import PATIENT_ROOT, c_find, connect, find_ae
from tests.core.find_support import query as identifier
from tests.core.find_support import store as c_store


@pytest.fixture
def services(make_config: Callable[..., Config]) -> Iterator[ServiceContext]:
    """An archive's database and storage, opened without listening."""
    archive = Archive(make_config())
    opened = archive.open()
    try:
        yield opened
    finally:
        archive.stop()


def store(services: ServiceContext, study_uid: str | None = None, **attrs: Any) -> int:
    """Ingest one CT instance (through the one ingest path); returns the status."""
    ds = dicomgen.ct(study_uid or generate_uid(), **attrs)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    raw = buffer.getvalue()
    incoming = services.storage.incoming()
    incoming.write(
        file_meta(ds.SOPClassUID, ds.SOPInstanceUID, ExplicitVRLittleEndian, "MODALITY1")
    )
    incoming.write(raw[144 + int.from_bytes(raw[140:144], "little") :])
    return ingest(services, Received(incoming, ExplicitVRLittleEndian, "MODALITY1")).status


DOE = dict(PatientID="PID-1", PatientName="Doe^John", PatientBirthDate="19700101")
DOERING = dict(PatientID="PID-2", PatientName="DOERING^Max", PatientBirthDate="19851224")
ROE = dict(PatientID="PID-3", PatientName="Roe^Jane", IssuerOfPatientID="HOSP_A")
STUDY_1, STUDY_2, STUDY_3, STUDY_4 = (generate_uid() for _ in range(4))


def populate(services: ServiceContext) -> None:
    """Doe (two studies), Doering (one), Roe with an issuer (one)."""
    for uid, attrs in ((STUDY_1, DOE), (STUDY_2, DOE), (STUDY_3, DOERING), (STUDY_4, ROE)):
        assert store(services, uid, **attrs) == 0


def pk_of(services: ServiceContext, patient_id: str) -> int:
    return patients.find_by_id(services, patient_id).pk


def cfind(services: ServiceContext, level: str, keys: dict[str, str], *returns: str) -> list:
    """What C-FIND answers (query.find, as the SCP calls it)."""
    return list(query.find(services, query.Query.of(level, keys, returns)))


def study_patients(services: ServiceContext, patient_id: str) -> dict[str, str]:
    """Patient Root STUDY level: StudyInstanceUID -> PatientName of the patient's studies."""
    found = cfind(
        services, "STUDY", {"PatientID": patient_id}, "StudyInstanceUID", "PatientName", "PatientID"
    )
    assert all(ds.PatientID == patient_id for ds in found)
    return {ds.StudyInstanceUID: str(ds.PatientName) for ds in found}


def orphans(services: ServiceContext) -> tuple[int, int]:
    """(studies without their patient, merged patients whose target is gone)."""
    target = Patient.__table__.alias("target")
    with services.db.read() as session:
        studies = session.execute(
            select(func.count())
            .select_from(Study)
            .outerjoin(Patient, Study.patient_fk == Patient.pk)
            .where(Patient.pk.is_(None))
        ).scalar_one()
        merged = session.execute(
            select(func.count())
            .select_from(Patient.__table__.outerjoin(target, Patient.merged_into_fk == target.c.pk))
            .where(Patient.merged_into_fk.is_not(None), target.c.pk.is_(None))
        ).scalar_one()
    return studies, merged


# -- search ------------------------------------------------------------------------------


def test_search_matches_like_cfind_and_pages_in_the_database(services: ServiceContext) -> None:
    """Names match case-insensitively with wildcards, IDs with `?`, issuer (a patient
    without issuer matches any), birth date ranges; patients without studies are listed;
    pages come in name order with the total."""
    populate(services)
    created = patients.create(services, Demographics(name="doe^jim", patient_id="PID-9"))

    page = patients.search(services, PatientSearch(name="doe*"))
    assert [r.name for r in page.rows] == ["doe^jim", "Doe^John", "DOERING^Max"]
    assert page.total == 3
    assert [r.studies for r in page.rows] == [0, 2, 1]
    assert page.rows[0].pk == created

    # "DOE" alone matches family name DOE with any given name (as C-FIND), not DOERING.
    assert [r.name for r in patients.search(services, PatientSearch(name="DOE")).rows] == [
        "doe^jim",
        "Doe^John",
    ]
    assert patients.search(services, PatientSearch(patient_id="PID-?")).total == 4
    by_issuer = patients.search(services, PatientSearch(issuer="HOSP_A")).rows
    assert {r.patient_id for r in by_issuer} == {"PID-1", "PID-2", "PID-3", "PID-9"}
    assert [r.issuer for r in by_issuer if r.patient_id == "PID-3"] == ["HOSP_A"]
    born = patients.search(services, PatientSearch(birth_date="19800101-19901231")).rows
    assert [r.patient_id for r in born] == ["PID-2"]

    first = patients.search(services, PatientSearch(patient_id="PID-*"), offset=0, limit=2)
    second = patients.search(services, PatientSearch(patient_id="PID-*"), offset=2, limit=2)
    assert (first.total, second.total, second.offset) == (4, 4, 2)
    assert [r.name for r in first.rows + second.rows] == [
        "doe^jim",
        "Doe^John",
        "DOERING^Max",
        "Roe^Jane",
    ]

    with pytest.raises(MatchingError, match="PatientBirthDate"):
        patients.search(services, PatientSearch(birth_date="1980-13"))


def test_patient_pages_seek_like_offsets_with_equal_names(services: ServiceContext) -> None:
    """Patients of one name (and some of no name) page by seeks from the page shown, next
    and previous, as an OFFSET read gives them: the primary key breaks the ties."""
    for n in range(11):
        name = "" if n % 4 == 0 else "SAME^NAME"
        patients.create(services, Demographics(name=name, patient_id=f"T{n % 3}-{n:02d}"))
    form = PatientSearch(patient_id="T*")
    whole = [r.pk for r in patients.search(services, form, limit=100).rows]
    assert len(whole) == 11
    expected = {o: whole[o : o + 3] for o in range(0, 11, 3)}
    page = patients.search(services, form, limit=3)
    for offset in (3, 6, 9, 6, 3, 0):
        page = patients.search(services, form, offset=offset, limit=3, total=11, near=page)
        assert [r.pk for r in page.rows] == expected[offset]
    assert [r.pk for r in patients.search(services, form, offset=9, limit=3).rows] == expected[9]


def test_studies_of_a_patient_come_from_the_study_level_query(services: ServiceContext) -> None:
    """A patient's studies, newest first, with modalities and counts, and only that
    patient's even when another patient has the same ID under another issuer."""
    populate(services)
    store(services, PatientID="PID-3", IssuerOfPatientID="HOSP_B", StudyDate="20300101")
    roe = patients.find_by_id(services, "PID-3^^^HOSP_A")
    page = patients.studies(services, roe.pk)
    assert page.total == 1
    assert [(s.study_iuid, s.modalities, s.series, s.instances) for s in page.rows] == [
        (STUDY_4, "CT", 1, 1)
    ]

    newest = generate_uid()
    store(services, newest, **DOE, StudyDate="20300101")
    doe = patients.studies(services, pk_of(services, "PID-1"), limit=2)
    assert doe.total == 3
    assert (len(doe.rows), doe.rows[0].study_iuid) == (2, newest)
    assert patients.studies(services, pk_of(services, "PID-1"), offset=2).rows[0].study_iuid in (
        STUDY_1,
        STUDY_2,
    )


# -- create --------------------------------------------------------------------------------


def test_created_patient_receives_later_objects_of_its_id(services: ServiceContext) -> None:
    """A created patient has no study; an object with its ID and issuer (or no issuer)
    is stored under it and C-FIND answers with the created demographics."""
    pk = patients.create(
        services,
        Demographics(
            name="Created^Carl", patient_id="PID-9", issuer="HOSP_A", birth_date="1990-05-17"
        ),
    )
    row = patients.get(services, pk)
    assert (row.name, row.issuer, row.birth_date, row.studies) == (
        "Created^Carl",
        "HOSP_A",
        "19900517",
        0,
    )
    # Not visible to C-FIND yet: a patient is found through its stored objects.
    assert cfind(services, "PATIENT", {"PatientID": "PID-9"}, "PatientName") == []

    assert store(services, PatientID="PID-9", IssuerOfPatientID="HOSP_A", PatientName="X^Y") == 0
    assert store(services, PatientID="PID-9", PatientName="Other^Name") == 0
    found = cfind(services, "PATIENT", {"PatientID": "PID-9"}, "PatientName", "PatientBirthDate")
    assert [(str(ds.PatientName), ds.PatientBirthDate) for ds in found] == [
        ("Created^Carl", "19900517")
    ]
    assert patients.get(services, pk).studies == 2
    assert patients.search(services, PatientSearch(patient_id="PID-9")).total == 1


def test_create_refuses_ids_the_indexer_could_not_tell_apart(services: ServiceContext) -> None:
    """Same ID and issuer, or an ID whose patient has no issuer: refused with the
    patient that uses it. Another issuer for an ID with issuers is fine."""
    populate(services)
    with pytest.raises(PatientError, match=r"PID-1 is already used by Doe\^John \(PID-1\)"):
        patients.create(services, Demographics(patient_id="PID-1"))
    with pytest.raises(PatientError, match=r"has no issuer, so it matches any"):
        patients.create(services, Demographics(patient_id="PID-1", issuer="HOSP_X"))
    with pytest.raises(PatientError, match=r"already used by Roe\^Jane \(PID-3\^\^\^HOSP_A\)"):
        patients.create(services, Demographics(patient_id="PID-3", issuer="HOSP_A"))
    with pytest.raises(PatientError, match="already used"):
        patients.create(services, Demographics(patient_id="PID-3"))
    other = patients.create(services, Demographics(patient_id="PID-3", issuer="HOSP_B"))
    assert patients.get(services, other).issuer == "HOSP_B"

    for bad, reason in (
        (Demographics(name="No^Id"), "needs a Patient ID"),
        (Demographics(patient_id="P", birth_date="19701301"), "Birth date '19701301' is no date"),
        (Demographics(patient_id="P", sex="X"), "Sex must be M, F or O"),
        (Demographics(patient_id="P" * 65), "Patient ID is too long"),
        (Demographics(patient_id="A\\B"), "backslash"),
    ):
        with pytest.raises(PatientError, match=reason):
            patients.create(services, bad)
    assert patients.search(services, PatientSearch()).total == 4


# -- edit ----------------------------------------------------------------------------------


def test_edit_changes_what_cfind_answers_at_patient_and_study_level(
    services: ServiceContext,
) -> None:
    """New name, birth date, sex, comments: columns, `attrs` and `edited` change together;
    C-FIND at PATIENT and STUDY level (Patient Root) answers with them, matching on them
    too; attributes not edited stay."""
    populate(services)
    pk = pk_of(services, "PID-1")
    before = patients.demographics(services, pk)
    assert (before.name, before.birth_date, before.sex) == ("Doe^John", "19700101", "M")
    patients.edit(
        services,
        pk,
        Demographics(
            name="Dupont^Jean", patient_id="PID-1", birth_date="19710202", sex="m", comments="VIP"
        ),
    )
    after = patients.demographics(services, pk)
    assert (after.name, after.birth_date, after.sex, after.comments) == (
        "Dupont^Jean",
        "19710202",
        "M",
        "VIP",
    )
    found = cfind(
        services,
        "PATIENT",
        {"PatientName": "dupont*"},
        "PatientName",
        "PatientBirthDate",
        "PatientSex",
        "PatientComments",
        "NumberOfPatientRelatedStudies",
    )
    assert [
        (str(d.PatientName), d.PatientBirthDate, d.PatientSex, d.PatientComments) for d in found
    ] == [("Dupont^Jean", "19710202", "M", "VIP")]
    assert found[0].NumberOfPatientRelatedStudies == 2
    assert cfind(services, "PATIENT", {"PatientName": "DOE^JOHN"}, "PatientID") == []
    assert study_patients(services, "PID-1") == {STUDY_1: "Dupont^Jean", STUDY_2: "Dupont^Jean"}

    with services.db.read() as session:
        patient = session.get(Patient, pk)
        assert patient is not None and patient.edited is not None
        assert patient.patient_name_upper == "DUPONT^JEAN" and patient.birth_date == "19710202"
        # Attributes the form does not edit (from the stored objects) stay.
        assert attributes.key(0x00100020) in attributes.loads(patient.attrs)

    # Non-ASCII names are answered in UTF-8.
    patients.edit(services, pk, Demographics(name="Müller^Jürgen", patient_id="PID-1"))
    (ds,) = cfind(services, "PATIENT", {"PatientID": "PID-1"}, "PatientName", "PatientSex")
    assert str(ds.PatientName) == "Müller^Jürgen" and ds.SpecificCharacterSet == "ISO_IR 192"
    assert ds.PatientSex == ""  # cleared by the edit


def test_edit_patient_id_refuses_another_patients_id(services: ServiceContext) -> None:
    """Changing Doering's ID to Doe's is refused; to a new ID it is what C-FIND finds."""
    populate(services)
    pk = pk_of(services, "PID-2")
    with pytest.raises(PatientError, match=r"PID-1 is already used by Doe\^John"):
        patients.edit(services, pk, Demographics(name="DOERING^Max", patient_id="PID-1"))
    with pytest.raises(PatientError, match="needs a Patient ID"):
        patients.edit(services, pk, Demographics(name="DOERING^Max"))
    assert patients.get(services, pk).patient_id == "PID-2"

    patients.edit(services, pk, Demographics(name="DOERING^Max", patient_id="PID-7"))
    assert study_patients(services, "PID-7") == {STUDY_3: "DOERING^Max"}
    assert study_patients(services, "PID-2") == {}
    # Objects of the study keep coming with the new ID.
    assert store(services, STUDY_3, PatientID="PID-7", PatientName="DOERING^Max") == 0


# -- supplement issuer ---------------------------------------------------------------------


def test_supplement_issuer(services: ServiceContext) -> None:
    """A patient without issuer gets one (C-FIND returns it); one with an issuer, or an
    ID and issuer another patient has, is refused."""
    populate(services)
    pk = pk_of(services, "PID-1")
    patients.supplement_issuer(services, pk, " HOSP_A ")
    (ds,) = cfind(services, "PATIENT", {"PatientID": "PID-1"}, "IssuerOfPatientID")
    assert ds.IssuerOfPatientID == "HOSP_A"
    with pytest.raises(PatientError, match="already has an issuer"):
        patients.supplement_issuer(services, pk, "HOSP_B")
    with pytest.raises(PatientError, match="Give the issuer"):
        patients.supplement_issuer(services, pk_of(services, "PID-2"), "  ")

    # Rows the console would refuse to make (an ID with and without issuer) may come
    # from elsewhere: supplementing must not make two patients of one ID and issuer.
    lone = patients.create(services, Demographics(patient_id="PID-8"))
    other = patients.create(services, Demographics(patient_id="PID-8X", issuer="HOSP_A"))
    with services.db.write() as session:
        session.execute(update(Patient).where(Patient.pk == other).values(patient_id="PID-8"))
    with pytest.raises(PatientError, match=r"PID-8\^\^\^HOSP_A is already used"):
        patients.supplement_issuer(services, lone, "HOSP_A")
    assert patients.get(services, lone).issuer == ""


# -- merge ---------------------------------------------------------------------------------


def test_merge_moves_studies_and_later_objects_follow(services: ServiceContext) -> None:
    """Doe into Doering: Doe's studies answer with Doering's ID and name, Doe remembers
    its target and has no studies, is hidden unless asked for; later objects with Doe's
    ID (a new study, or one of a moved study) land under Doering without changing it."""
    populate(services)
    doe, doering = pk_of(services, "PID-1"), pk_of(services, "PID-2")
    assert patients.merge(services, doe, doering) == 2

    assert study_patients(services, "PID-2") == {
        STUDY_1: "DOERING^Max",
        STUDY_2: "DOERING^Max",
        STUDY_3: "DOERING^Max",
    }
    assert study_patients(services, "PID-1") == {}
    assert cfind(services, "PATIENT", {"PatientID": "PID-1"}, "PatientName") == []
    shown = patients.search(services, PatientSearch(patient_id="PID-1"))
    assert shown.total == 0
    merged = patients.search(services, PatientSearch(patient_id="PID-1", merged=True)).rows
    assert [(r.studies, r.merged_into) for r in merged] == [(0, "PID-2")]
    with services.db.read() as session:
        target = session.get(Patient, doering)
        assert target is not None and target.edited is not None

    new_study = generate_uid()
    assert store(services, new_study, **DOE) == 0
    assert store(services, STUDY_1, **DOE) == 0
    assert set(study_patients(services, "PID-2")) == {STUDY_1, STUDY_2, STUDY_3, new_study}
    demographics = patients.demographics(services, doering)
    assert (demographics.name, demographics.birth_date) == ("DOERING^Max", "19851224")
    assert patients.get(services, doe).studies == 0
    # Another patient's ID is still a conflict for a moved study.
    assert store(services, STUDY_1, PatientID="PID-3", IssuerOfPatientID="HOSP_A") == 0xA778
    assert orphans(services) == (0, 0)


def test_merge_errors_and_no_circles(services: ServiceContext) -> None:
    """Into itself, a merged patient again, into a merged patient: refused; so a merge
    chain can never close a circle. Merging into a merged patient's target works."""
    populate(services)
    doe, doering, roe = (pk_of(services, p) for p in ("PID-1", "PID-2", "PID-3"))
    with pytest.raises(PatientError, match="into itself"):
        patients.merge(services, doe, doe)
    patients.merge(services, doe, doering)
    with pytest.raises(
        PatientError, match=r"Doe\^John \(PID-1\) was already merged into DOERING\^Max \(PID-2\)"
    ):
        patients.merge(services, doe, roe)
    with pytest.raises(PatientError, match=r"was merged into DOERING.*: merge into that patient"):
        patients.merge(services, roe, doe)
    with pytest.raises(PatientError, match="merge into that patient"):
        patients.merge(services, doering, doe)
    assert patients.merge(services, doering, roe) == 3
    # Doe -> Doering -> Roe: Doe's objects follow the chain.
    assert store(services, **DOE) == 0
    assert len(study_patients(services, "PID-3")) == 5
    assert orphans(services) == (0, 0)


def test_find_by_id_names_ambiguous_ids(services: ServiceContext) -> None:
    """`PID^^^ISSUER` picks one of two patients sharing an ID; the ID alone is refused
    with both named; an unknown ID is named."""
    populate(services)
    patients.create(services, Demographics(patient_id="PID-3", issuer="HOSP_B"))
    assert patients.find_by_id(services, "PID-3^^^HOSP_B").issuer == "HOSP_B"
    with pytest.raises(PatientError, match=r"names 2 patients: add the issuer"):
        patients.find_by_id(services, "PID-3")
    with pytest.raises(PatientError, match="No patient with ID PID-77"):
        patients.find_by_id(services, "PID-77")


# -- delete --------------------------------------------------------------------------------


def test_delete_only_without_studies(services: ServiceContext) -> None:
    """A patient with studies is refused, naming how many; a created one goes; a patient
    goes with those merged into it; nothing is left dangling."""
    populate(services)
    with pytest.raises(PatientError, match=r"Doe\^John \(PID-1\) has 2 studies"):
        patients.delete_patient(services, pk_of(services, "PID-1"))
    with pytest.raises(PatientError, match=r"has 1 study:"):
        patients.delete_patient(services, pk_of(services, "PID-2"))

    lone = patients.create(services, Demographics(patient_id="PID-8"))
    assert patients.delete_patient(services, lone) == 1
    with pytest.raises(PatientError, match="no longer exists"):
        patients.get(services, lone)

    a, b, c = (patients.create(services, Demographics(patient_id=f"M-{n}")) for n in "ABC")
    patients.merge(services, a, b)
    patients.merge(services, b, c)
    assert patients.delete_patient(services, c) == 3
    assert patients.search(services, PatientSearch(patient_id="M-*", merged=True)).total == 0

    # A merge target with studies stays, and so does the patient merged into it.
    patients.merge(services, pk_of(services, "PID-1"), pk_of(services, "PID-2"))
    with pytest.raises(PatientError, match="has 3 studies"):
        patients.delete_patient(services, pk_of(services, "PID-2"))
    assert orphans(services) == (0, 0)
    with services.db.read() as session:
        assert session.execute(select(func.count()).select_from(Patient)).scalar_one() == 3
        assert session.execute(select(func.count()).select_from(Series)).scalar_one() == 4


# -- over the network ----------------------------------------------------------------------


def test_merge_seen_by_cfind_and_cstore_peers(archive: Archive) -> None:
    """Over real associations: after a merge, Patient Root C-FIND answers the moved
    study under the target, and a C-STORE with the merged patient's ID lands there."""
    port = archive_port(archive)
    services = archive.services
    assert services is not None
    source = dicomgen.ct(generate_uid(), **DOE)
    target = dicomgen.ct(generate_uid(), **DOERING)
    c_store(port, [source, target])
    patients.merge(services, pk_of(services, "PID-1"), pk_of(services, "PID-2"))
    later = dicomgen.ct(generate_uid(), **DOE)
    c_store(port, [later])

    assoc = connect(find_ae(), port)
    try:
        status, found, _ = c_find(
            assoc,
            identifier(
                QueryRetrieveLevel="STUDY",
                PatientID="PID-2",
                StudyInstanceUID=None,
                PatientName=None,
            ),
            PATIENT_ROOT,
        )
        assert status == 0
        assert {(d.StudyInstanceUID, str(d.PatientName)) for d in found} == {
            (source.StudyInstanceUID, "DOERING^Max"),
            (target.StudyInstanceUID, "DOERING^Max"),
            (later.StudyInstanceUID, "DOERING^Max"),
        }
        status, found, _ = c_find(
            assoc,
            identifier(QueryRetrieveLevel="PATIENT", PatientID="PID-1", PatientName=None),
            PATIENT_ROOT,
        )
        assert (status, found) == (0, [])
    finally:
        assoc.release()
