"""The console's study use cases on SQLite and PostgreSQL, over studies stored by C-STORE:
search by every form field, paging newest first, series and instances, edits that C-FIND
returns and that retrieved and downloaded objects carry (unedited ones byte-identical),
expiration date, access control ID, permanent deletion that leaves nothing behind, CSV,
and attributes as JSON and text."""

from __future__ import annotations

import csv
import filecmp
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest
from pydicom import Dataset, dcmread
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import CTImageStorage, StudyRootQueryRetrieveInformationModelGet
from sqlalchemy import func, select, text, update

from core.archive import Archive
from core.config import Config
from core.db import matching
from core.db.models import Instance, Location, LocationStatus, Patient, Series, Study
from core.dicom import attributes
from core.dicom.part10 import dataset_offset
from core.services import query as q
from core.services import rows, studies
from core.services.context import ServiceContext
from core.services.study_delete import NothingToDelete, count_instances, delete_permanently
from core.services.study_edits import (
    EditError,
    edit_series,
    edit_study,
    series_values,
    set_access_control_id,
    set_expiration_date,
    study_details,
)
from core.services.study_files import (
    ARCHIVE_CREATOR,
    Target,
    attributes_of,
    download,
    file_names,
    instances,
    path_part,
    save_attributes,
)
from tests import dicomgen
from tests.conftest import archive_port, nodelay
from tests.core.retrieve_support import Destination, remote_ae, store

A, B, C = (f"1.2.826.0.1.3680043.8.498.5.{n}" for n in (1, 2, 3))
STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"


def _series(study: str, n: int) -> str:
    return f"{study}.{n}"


def _instance(study: str, s: int, i: int) -> str:
    return f"{study}.{s}.{i}"


def _corpus() -> list[Dataset]:
    """Study A (Doe^John, 2 CT series x 2), B (Doering^Max, 1 MR series x 2), C (Roe^Jane,
    1 CT series x 1), all of different dates."""
    specs = [
        (A, "PID-1", "Doe^John", "20260105", "101500", "ACC-1", "CT Chest", "Smith^Anna"),
        (B, "PID-2", "Doering^Max", "20251220", "090000", "ACC-2", "MR Knee", "Smith^Anna"),
        (C, "PID-3", "Roe^Jane", "20240301", "160000", "ACC-3", "CT Head", "Jones^Bob"),
    ]
    shapes = {A: ("CT", 2, 2), B: ("MR", 1, 2), C: ("CT", 1, 1)}
    out = []
    for uid, pid, name, date, time, acc, desc, ref in specs:
        modality, series, count = shapes[uid]
        for s in range(1, series + 1):
            for i in range(1, count + 1):
                out.append(
                    dicomgen.ct(
                        uid,
                        _series(uid, s),
                        SOPInstanceUID=_instance(uid, s, i),
                        PatientID=pid,
                        PatientName=name,
                        StudyDate=date,
                        StudyTime=time,
                        AccessionNumber=acc,
                        StudyDescription=desc,
                        ReferringPhysicianName=ref,
                        Modality=modality,
                        SeriesNumber=s,
                        SeriesDescription=f"{modality} series {s}",
                        InstanceNumber=i,
                        seed=s * 10 + i,
                    )
                )
    return out


@dataclass
class RawDestination(Destination):
    """The C-MOVE destination, keeping each data set's bytes as they arrived."""

    raw: dict[str, bytes] = field(default_factory=dict)

    def _on_store(self, event: evt.Event) -> int:
        self.raw[event.request.AffectedSOPInstanceUID] = event.request.DataSet.getvalue()
        return super()._on_store(event)


@pytest.fixture
def destination() -> Iterator[RawDestination]:
    dest = RawDestination().start()
    try:
        yield dest
    finally:
        dest.stop()


@pytest.fixture
def stored(
    make_config: Callable[..., Config], destination: RawDestination
) -> Iterator[tuple[Archive, ServiceContext]]:
    arc = Archive(make_config(remote_ae(destination.title, destination.port)))
    arc.start()
    try:
        assert set(store(archive_port(arc), _corpus())) == {0}
        assert arc.services is not None
        yield arc, arc.services
    finally:
        arc.stop(grace=5)


def found(services: ServiceContext, **form: str) -> list[str]:
    """The Study Instance UIDs of the first page of a search, newest first."""
    page = studies.search(services, studies.StudySearch(**form))
    assert page.total == len(page.rows)
    return [row.study_iuid for row in page.rows]


def _stored_bytes(services: ServiceContext, sop_iuid: str) -> bytes:
    """The data set of an instance's stored file (after the File Meta Information)."""
    with services.db.read() as session:
        path = session.execute(
            select(Location.storage_path)
            .join(Instance, Location.instance_fk == Instance.pk)
            .where(Instance.sop_iuid == sop_iuid)
        ).scalar_one()
    data = services.storage.path(path).read_bytes()
    return data[dataset_offset(data[:1024]) :]


# -- search ------------------------------------------------------------------------------


def test_search_by_each_field(stored) -> None:
    _, services = stored
    assert found(services) == [A, B, C]
    assert found(services, patient_name="doe*") == [A, B]
    assert found(services, patient_name="Doe") == [A]
    assert found(services, patient_name="*ane") == [C]
    assert found(services, patient_id="PID-3") == [C]
    assert found(services, accession_number="ACC-?") == [A, B, C]
    assert found(services, accession_number="ACC-2") == [B]
    assert found(services, study_date="20251201-20251231") == [B]
    assert found(services, study_date="20260101-") == [A]
    assert found(services, study_date="-20251231") == [B, C]
    assert found(services, study_date="2026-01-05") == [A]
    assert found(services, modality="MR") == [B]
    assert found(services, modality="ct") == [A, C]
    assert found(services, study_description="CT*") == [A, C]
    assert found(services, study_description="*knee") == []
    assert found(services, study_description="*KNEE") == [B]
    assert found(services, referring_physician="jones*") == [C]
    assert found(services, study_iuid=B) == [B]
    assert found(services, ae_title="dcm4chee", patient_id="PID-1") == [A]


def test_search_errors_name_the_problem(stored) -> None:
    _, services = stored
    with pytest.raises(matching.MatchingError, match=r"Invalid StudyDate \(0008,0020\)"):
        studies.search(services, studies.StudySearch(study_date="20261345-2027"))
    with pytest.raises(ValueError, match="no archive AE 'NOSUCH'"):
        studies.search(services, studies.StudySearch(ae_title="NOSUCH"))


def test_pages_newest_first_with_count(stored) -> None:
    _, services = stored
    form = studies.StudySearch()
    first = studies.search(services, form, limit=2)
    assert (first.total, [r.study_iuid for r in first.rows]) == (3, [A, B])
    second = studies.search(services, form, offset=2, limit=2, total=first.total)
    assert (second.offset, [r.study_iuid for r in second.rows]) == (2, [C])
    row = first.rows[0]
    assert (row.patient_name, row.patient_id, row.study_date, row.accession_number) == (
        "Doe^John",
        "PID-1",
        "20260105",
        "ACC-1",
    )
    assert (row.modalities, row.description, row.series, row.instances) == ("CT", "CT Chest", 2, 4)


def _ties(services: ServiceContext, n: int) -> None:
    """`n` studies (one series, one instance each) over three dates and no date, with equal
    times: the sort key ties everywhere but on the primary key."""
    now = datetime.now()
    with services.db.engine.begin() as conn:
        conn.execute(
            Patient.__table__.insert(),
            [{"pk": 900, "patient_id": "TIES", "attrs": "{}", "created": now, "updated": now}],
        )
        for s in range(1, n + 1):
            date = [None, "20200101", "20210101", "20220101"][s % 4]
            uid = f"1.2.3.999.{s}"
            conn.execute(
                Study.__table__.insert(),
                [
                    {
                        "pk": 1000 + s,
                        "patient_fk": 900,
                        "study_iuid": uid,
                        "study_date": date,
                        "study_time": None if s % 3 else "120000",
                        "attrs": "{}",
                        "created": now,
                        "updated": now,
                    }
                ],
            )
            conn.execute(
                Series.__table__.insert(),
                [
                    {
                        "pk": 1000 + s,
                        "study_fk": 1000 + s,
                        "series_iuid": uid + ".1",
                        "attrs": "{}",
                        "created": now,
                        "updated": now,
                    }
                ],
            )
            conn.execute(
                Instance.__table__.insert(),
                [
                    {
                        "pk": 1000 + s,
                        "series_fk": 1000 + s,
                        "sop_iuid": uid + ".1.1",
                        "sop_cuid": "1.2.840.10008.5.1.4.1.1.2",
                        "attrs": "{}",
                        "created": now,
                        "updated": now,
                    }
                ],
            )


def test_keyset_pages_equal_offset_pages_with_ties(archive: Archive) -> None:
    """Next, previous, last and middle pages (seeks, reads from the end, offsets) give the
    rows one read from the start gives, when the sort key ties but on the primary key."""
    services = archive.services
    assert services is not None
    _ties(services, 23)
    form = studies.StudySearch(patient_id="TIES")
    whole = [r.study_iuid for r in studies.search(services, form, limit=100).rows]
    assert len(whole) == 23
    # Newest first, no date last, equal keys in order of arrival.
    assert whole[:3] == ["1.2.3.999.3", "1.2.3.999.15", "1.2.3.999.7"]
    assert whole[-1] == "1.2.3.999.20"
    size = 5
    offsets = list(range(0, 23, size))
    expected = {o: whole[o : o + size] for o in offsets}
    page = studies.search(services, form, limit=size)
    for offset in offsets[1:]:
        page = studies.search(services, form, offset=offset, limit=size, total=23, near=page)
        assert [r.study_iuid for r in page.rows] == expected[offset]
    for offset in reversed(offsets[:-1]):
        page = studies.search(services, form, offset=offset, limit=size, total=23, near=page)
        assert [r.study_iuid for r in page.rows] == expected[offset]
    for offset in offsets:
        page = studies.search(services, form, offset=offset, limit=size, total=23)
        assert [r.study_iuid for r in page.rows] == expected[offset]


def test_study_pages_are_read_in_index_order(stored) -> None:
    """The newest-first list walks the index on its sort key (ix_study_newest), not a sort,
    and joins no patient when no patient key is matched."""
    _, services = stored
    listing = q.listing(studies.StudySearch().query(services.config), studies.STUDY_ORDER)
    statement = (
        select(*(c for c, _ in listing.sort))
        .select_from(listing.from_)
        .where(*listing.where)
        .order_by(*(c.desc() if d else c.asc() for c, d in listing.sort))
        .limit(50)
    )
    engine = services.db.engine
    with engine.connect() as conn:
        sql = str(statement.compile(conn, compile_kwargs={"literal_binds": True}))
        assert "patient" not in sql
        if engine.dialect.name == "sqlite":
            plan = " ".join(str(r[-1]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
            assert "SCAN study USING INDEX ix_study_newest" in plan, plan
            assert "TEMP B-TREE" not in plan, plan
        else:
            # Three rows are cheaper to sort: ask whether the index can give the order.
            conn.execute(text("SET LOCAL enable_seqscan = off"))
            conn.execute(text("SET LOCAL enable_sort = off"))
            plan = " ".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {sql}"))
            assert "Index Scan using ix_study_newest" in plan, plan


def test_impossible_dates_are_refused_as_invalid_values(stored) -> None:
    _, services = stored
    for value in ("20250230", "abc", "20250101-20251332"):
        with pytest.raises(matching.MatchingError) as refused:
            studies.search(services, studies.StudySearch(study_date=value))
        assert str(refused.value) == f"Invalid StudyDate (0008,0020) - {value}"


def test_studies_arrived_since(stored) -> None:
    _, services = stored
    assert studies.arrived_since(services, datetime(2000, 1, 1)) == 3
    assert studies.arrived_since(services, datetime.now()) == 0


def test_series_and_instances_of_a_study(stored) -> None:
    _, services = stored
    series = studies.series_of(services, A)
    assert series.total == 2
    assert [(r.series_iuid, r.number, r.modality, r.instances) for r in series.rows] == [
        (_series(A, 1), "1", "CT", 2),
        (_series(A, 2), "2", "CT", 2),
    ]
    page = studies.instances_of(services, A, _series(A, 2), limit=1, offset=1)
    assert page.total == 2
    assert [(r.sop_iuid, r.number, r.rows) for r in page.rows] == [(_instance(A, 2, 2), "2", "16")]
    assert studies.first_instance(services, A) == _instance(A, 1, 1)
    assert studies.first_instance(services, A, _series(A, 2)) == _instance(A, 2, 1)


# -- edits -------------------------------------------------------------------------------


def _find_study(services: ServiceContext, uid: str, *keywords: str) -> Dataset:
    query = q.Query.of("STUDY", {"StudyInstanceUID": uid}, keywords)
    (ds,) = list(q.find(services, query))
    return ds


def test_edit_study_is_what_cfind_returns(stored) -> None:
    _, services = stored
    changed = edit_study(
        services,
        A,
        {
            "StudyDescription": "CT Thorax",
            "AccessionNumber": "ACC-9",
            "ReferringPhysicianName": "Müller^Hans",
            "StudyDate": "2026-01-06",
            "StudyID": "",
        },
    )
    assert changed
    ds = _find_study(
        services,
        A,
        "StudyDescription",
        "AccessionNumber",
        "ReferringPhysicianName",
        "StudyDate",
        "StudyID",
    )
    assert (ds.StudyDescription, ds.AccessionNumber, ds.StudyDate) == (
        "CT Thorax",
        "ACC-9",
        "20260106",
    )
    assert str(ds.ReferringPhysicianName) == "Müller^Hans" and ds.StudyID == ""
    assert found(services, accession_number="ACC-9") == [A]
    assert found(services, accession_number="ACC-1") == []
    assert found(services, referring_physician="MÜLLER") == [A]
    assert study_details(services, A).values["StudyDescription"] == "CT Thorax"
    with services.db.read() as session:
        assert session.execute(select(Study.edited).where(Study.study_iuid == A)).scalar()
    # The same values again change nothing.
    assert not edit_study(services, A, {"StudyDescription": "CT Thorax"})


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"StudyDate": "20261345"}, "Study date '20261345' is no date"),
        ({"StudyTime": "2561"}, "Study time '2561' is no time"),
        ({"AccessionNumber": "X" * 17}, "Accession number is too long"),
        ({"StudyDescription": "a\\b"}, "backslash"),
        ({"PatientName": "X"}, "PatientName cannot be edited here"),
    ],
)
def test_bad_study_values_are_refused(stored, values: dict[str, str], message: str) -> None:
    _, services = stored
    with pytest.raises(EditError, match=message):
        edit_study(services, A, values)
    assert _find_study(services, A, "StudyDate").StudyDate == "20260105"


def test_edit_series_is_what_cfind_returns(stored) -> None:
    _, services = stored
    assert edit_series(
        services,
        _series(A, 2),
        {"SeriesDescription": "Lung", "SeriesNumber": "7", "Modality": "mr"},
    )
    assert series_values(services, _series(A, 2))["Modality"] == "MR"
    query = q.Query.of(
        "SERIES",
        {"StudyInstanceUID": A, "SeriesNumber": "7"},
        ["SeriesDescription", "Modality", "SeriesInstanceUID"],
    )
    (ds,) = list(q.find(services, query))
    assert (ds.SeriesInstanceUID, ds.SeriesDescription, ds.Modality) == (
        _series(A, 2),
        "Lung",
        "MR",
    )
    assert found(services, modality="MR") == [A, B]
    with pytest.raises(EditError, match="Series number 'seven' is no whole number"):
        edit_series(services, _series(A, 2), {"SeriesNumber": "seven"})


def _edit_patient(services: ServiceContext, patient_id: str, name: str) -> None:
    """What the Patients view's edit does to a patient row: attrs, columns, edited."""
    with services.db.write() as session:
        attrs = attributes.loads(
            session.execute(select(Patient.attrs).where(Patient.patient_id == patient_id)).scalar()
        )
        attrs["00100010"] = {"vr": "PN", "Value": [{"Alphabetic": name}]}
        session.execute(
            update(Patient)
            .where(Patient.patient_id == patient_id)
            .values(
                attrs=attributes.dumps(attrs),
                patient_name=name,
                patient_name_upper=name.upper(),
                edited=datetime.now(),
            )
        )


def _move(port: int, study: str) -> list[int]:
    ae = AE(ae_title="ACME1")
    ae.add_requested_context(STUDY_ROOT_MOVE)
    assoc = nodelay(ae.associate("127.0.0.1", port, ae_title="DCM4CHEE"))
    assert assoc.is_established
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.StudyInstanceUID = study
    try:
        return [s.Status for s, _ in assoc.send_c_move(identifier, "STORESCP", STUDY_ROOT_MOVE)]
    finally:
        assoc.release()


def _get(port: int, study: str) -> dict[str, Dataset]:
    received: dict[str, Dataset] = {}

    def on_store(event: evt.Event) -> int:
        received[event.request.AffectedSOPInstanceUID] = event.dataset
        return 0

    ae = AE(ae_title="ACME1")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(CTImageStorage)
    assoc = nodelay(
        ae.associate(
            "127.0.0.1",
            port,
            ae_title="DCM4CHEE",
            ext_neg=[build_role(CTImageStorage, scp_role=True)],
            evt_handlers=[(evt.EVT_C_STORE, on_store)],
        )
    )
    assert assoc.is_established
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.StudyInstanceUID = study
    try:
        statuses = [
            s.Status
            for s, _ in assoc.send_c_get(identifier, StudyRootQueryRetrieveInformationModelGet)
        ]
    finally:
        assoc.release()
    assert statuses[-1] == 0
    return received


def test_edits_reach_retrieved_objects_and_unedited_ones_go_as_stored(
    stored, destination: RawDestination
) -> None:
    arc, services = stored
    port = archive_port(arc)
    edit_study(
        services, A, {"StudyDescription": "CT Thorax", "ReferringPhysicianName": "Müller^Hans"}
    )
    edit_series(services, _series(A, 2), {"SeriesDescription": "Lung"})
    _edit_patient(services, "PID-1", "Doe^Johnny")
    unedited = {uid: _stored_bytes(services, uid) for uid in (_instance(C, 1, 1),)}

    assert _move(port, A)[-1] == 0 and _move(port, C)[-1] == 0
    moved = {r.dataset.SOPInstanceUID: r.dataset for r in destination.received}
    for s, i in ((1, 1), (1, 2), (2, 1), (2, 2)):
        ds = moved[_instance(A, s, i)]
        assert (ds.StudyDescription, str(ds.ReferringPhysicianName)) == ("CT Thorax", "Müller^Hans")
        assert str(ds.PatientName) == "Doe^Johnny" and ds.SpecificCharacterSet == "ISO_IR 192"
        assert ds.SeriesDescription == ("Lung" if s == 2 else "CT series 1")
        assert ds.PixelData == dicomgen.ct(seed=s * 10 + i).PixelData
    assert destination.raw[_instance(C, 1, 1)] == unedited[_instance(C, 1, 1)]

    got = _get(port, A)
    assert {uid: ds.StudyDescription for uid, ds in got.items()} == {
        _instance(A, s, i): "CT Thorax" for s in (1, 2) for i in (1, 2)
    }
    assert str(got[_instance(A, 1, 1)].PatientName) == "Doe^Johnny"


def test_download_writes_files_with_edits_and_unedited_as_stored(stored, tmp_path: Path) -> None:
    _, services = stored
    edit_study(services, A, {"StudyDescription": "CT Thorax"})
    progress: list[tuple[int, int]] = []
    result = download(
        services, Target("STUDY", A), tmp_path / "a", progress=lambda *p: progress.append(p)
    )
    assert (result.files, progress[-1], len(progress)) == (4, (4, 4), 4)
    files = sorted(p for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) == 4 and result.size == sum(p.stat().st_size for p in files)
    assert {dcmread(p).StudyDescription for p in files} == {"CT Thorax"}
    assert {dcmread(p).SOPInstanceUID for p in files} == {
        _instance(A, s, i) for s in (1, 2) for i in (1, 2)
    }

    one = download(services, Target("SERIES", C, _series(C, 1)), tmp_path / "c")
    (inst,) = instances(services, Target("STUDY", C), studies.StudySearch().view(services.config))
    name = file_names(services, [inst])[inst.sop_instance_uid]
    assert name == f"PID-3_Roe_Jane/20240301_CT_Head/1_CT/{_instance(C, 1, 1)}.dcm"
    written = tmp_path / "c" / name
    assert one.files == 1 and filecmp.cmp(written, inst.path, shallow=False)

    image = download(
        services, Target("IMAGE", B, _series(B, 1), _instance(B, 1, 2)), tmp_path / "b"
    )
    assert image.files == 1


# -- expiration and access control -------------------------------------------------------


def test_expiration_date_set_change_clear_and_invalid(stored) -> None:
    _, services = stored
    assert set_expiration_date(services, A, "2027-01-31") == "20270131"
    assert study_details(services, A).expiration_date == "20270131"
    assert set_expiration_date(services, A, "20280229") == "20280229"
    with pytest.raises(EditError, match="'20271331' is no date"):
        set_expiration_date(services, A, "20271331")
    assert study_details(services, A).expiration_date == "20280229"
    assert set_expiration_date(services, A, "") is None
    assert study_details(services, A).expiration_date == ""
    with pytest.raises(EditError, match="no study"):
        set_expiration_date(services, "1.2.3", "20270101")


def test_access_control_id(stored) -> None:
    _, services = stored
    assert set_access_control_id(services, B, " RADIOLOGY ") == "RADIOLOGY"
    assert study_details(services, B).access_control_id == "RADIOLOGY"
    assert set_access_control_id(services, B, "") is None
    assert study_details(services, B).access_control_id == ""
    with pytest.raises(EditError, match="at most 64"):
        set_access_control_id(services, B, "x" * 65)


# -- deletion ----------------------------------------------------------------------------


def _files(services: ServiceContext) -> set[str]:
    root = services.storage.root
    return {
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and not p.relative_to(root).parts[0].startswith(".")
    }


def _assert_consistent(services: ServiceContext) -> None:
    """Every file has an OK location of an instance and the other way round; no series
    without instances, no study without series."""
    with services.db.read() as session:
        locations = session.execute(
            select(Location.storage_path, Location.status, Location.instance_fk)
        ).all()
        assert all(r.status == LocationStatus.OK and r.instance_fk for r in locations)
        assert {r.storage_path for r in locations} == _files(services)
        empty_series = session.execute(
            select(func.count()).select_from(Series).where(~Series.instances.any())
        ).scalar()
        empty_studies = session.execute(
            select(func.count()).select_from(Study).where(~Study.series.any())
        ).scalar()
        assert (empty_series, empty_studies) == (0, 0)


def _counts(services: ServiceContext) -> tuple[int, ...]:
    with services.db.read() as session:
        return tuple(
            session.execute(select(func.count()).select_from(table)).scalar_one()
            for table in (Patient, Study, Series, Instance, Location)
        )


def test_delete_instance_series_and_study_leaves_nothing_behind(stored) -> None:
    _, services = stored
    assert _counts(services) == (3, 3, 4, 7, 7)
    assert count_instances(services, "STUDY", A) == 4

    deleted = delete_permanently(services, "IMAGE", _instance(A, 1, 1))
    assert (deleted.studies, deleted.series, deleted.instances, deleted.files) == (0, 0, 1, 1)
    assert _counts(services) == (3, 3, 4, 6, 6)
    _assert_consistent(services)

    deleted = delete_permanently(services, "SERIES", _series(A, 2))
    assert (deleted.studies, deleted.series, deleted.instances, deleted.files) == (0, 1, 2, 2)
    _assert_consistent(services)

    deleted = delete_permanently(services, "STUDY", A)
    assert (deleted.studies, deleted.series, deleted.instances, deleted.files) == (1, 1, 1, 1)
    # The patient stays, as dcm4chee keeps it.
    assert _counts(services) == (3, 2, 2, 3, 3)
    _assert_consistent(services)
    assert found(services) == [B, C]

    deleted = delete_permanently(services, "IMAGE", _instance(C, 1, 1))
    assert (deleted.studies, deleted.series, deleted.instances) == (1, 1, 1)
    assert _counts(services) == (3, 1, 1, 2, 2)
    _assert_consistent(services)
    with pytest.raises(NothingToDelete):
        delete_permanently(services, "STUDY", C)


def test_delete_in_batches_while_a_store_adds_to_the_study(stored) -> None:
    """Batches of one instance; after the first batch a C-STORE adds a new series to the
    study being deleted: it goes too, and nothing is left behind."""
    arc, services = stored
    progress: list[int] = []

    def store_meanwhile(done: int) -> None:
        progress.append(done)
        if done == 1:
            extra = dicomgen.ct(
                A, _series(A, 3), PatientID="PID-1", SOPInstanceUID=_instance(A, 3, 1)
            )
            assert store(archive_port(arc), [extra]) == [0]

    deleted = delete_permanently(services, "STUDY", A, batch=1, progress=store_meanwhile)
    assert progress == [1, 2, 3, 4, 5]
    assert (deleted.studies, deleted.series, deleted.instances, deleted.files) == (1, 3, 5, 5)
    assert _counts(services) == (3, 2, 2, 3, 3)
    _assert_consistent(services)


# -- CSV and attributes ------------------------------------------------------------------


def test_several_values_read_one_way() -> None:
    """Lists and CSV join several values of one attribute alike: `CT, MR`."""
    assert rows.text(["CT", "MR"]) == "CT, MR"
    assert rows.text([{"Alphabetic": "Doe^John", "Ideographic": "D^J"}]) == "Doe^John=D^J"
    assert rows.text([]) == ""


def test_path_parts_are_readable_and_safe() -> None:
    assert path_part("PID/1", "Doe^John") == "PID_1_Doe_John"
    assert path_part("..", "") == "_"
    assert path_part("../../etc") == "etc"
    assert path_part("Müller, Hans") == "M_ller_Hans"
    assert len(path_part("x" * 300)) == 64


def test_csv_holds_every_match_not_only_a_page(stored, tmp_path: Path) -> None:
    _, services = stored
    path = tmp_path / "out" / "studies.csv"
    set_expiration_date(services, A, "20300101")
    set_access_control_id(services, A, "RADIOLOGY")
    assert studies.save_csv(services, studies.StudySearch(patient_name="D*"), path) == 2
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(studies.CSV_COLUMNS)
    assert list(studies.CSV_COLUMNS)[-2:] == ["expiration_date", "access_control_id"]
    assert (rows[0]["expiration_date"], rows[0]["access_control_id"]) == ("20300101", "RADIOLOGY")
    assert sorted(r["study_iuid"] for r in rows) == [A, B]
    row = next(r for r in rows if r["study_iuid"] == A)
    assert (row["patient_name"], row["study_date"], row["modalities"], row["instances"]) == (
        "Doe^John",
        "20260105",
        "CT",
        "4",
    )
    assert not (tmp_path / "out" / "studies.csv.part").exists()


def test_attributes_as_json_and_text(stored, tmp_path: Path) -> None:
    _, services = stored
    study = attributes_of(services, Target("STUDY", A))
    assert (str(study.PatientName), study.StudyDescription) == ("Doe^John", "CT Chest")
    assert 0x77770010 not in study
    set_expiration_date(services, A, "20300101")
    set_access_control_id(services, A, "RADIOLOGY")
    block = attributes_of(services, Target("STUDY", A)).private_block(0x7777, ARCHIVE_CREATOR)
    assert (block[0x23].value, block[0x27].value) == ("20300101", "RADIOLOGY")
    assert (study.NumberOfStudyRelatedInstances, study.ModalitiesInStudy) == (4, "CT")
    series = attributes_of(services, Target("SERIES", A, _series(A, 2)))
    assert (series.SeriesDescription, series.NumberOfSeriesRelatedInstances) == ("CT series 2", 2)

    edit_study(services, A, {"StudyDescription": "CT Thorax"})
    image = attributes_of(services, Target("IMAGE", A, _series(A, 1), _instance(A, 1, 2)))
    assert (image.StudyDescription, image.InstanceNumber, image.Rows) == ("CT Thorax", 2, 16)
    assert "PixelData" not in image and image.file_meta.MediaStorageSOPInstanceUID == _instance(
        A, 1, 2
    )

    saved = save_attributes(image, tmp_path / "i.json", "json")
    data = json.loads(saved.read_text())
    assert data["00081030"] == {"vr": "LO", "Value": ["CT Thorax"]}
    assert data["00100010"]["Value"] == [{"Alphabetic": "Doe^John"}]
    text_file = save_attributes(study, tmp_path / "s.txt", "text")
    content = text_file.read_text()
    assert "(0010,0010) Patient's Name" in content and "CT Chest" in content
    with pytest.raises(ValueError, match="unknown format"):
        save_attributes(study, tmp_path / "s.xml", "xml")
