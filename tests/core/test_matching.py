"""Matching keys to SQL (core.db.matching) through the query service, on SQLite and
PostgreSQL, over studies stored by C-STORE: every matching type of PS3.4 C.2.2.2 as
dcm4chee does it, views, computed keys, paging, and index use of prefix patterns."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select, text, update

from core.archive import Archive
from core.config import View
from core.db import matching
from core.db.models import Instance, Patient
from core.services import query as q
from core.services.context import ServiceContext
from tests.conftest import archive_port
from tests.core.find_support import (
    SERIES_A1,
    SERIES_A2,
    SERIES_B1,
    SERIES_C1,
    SERIES_D1,
    STUDY_A,
    STUDY_B,
    STUDY_C,
    STUDY_D,
    Corpus,
    corpus,
    store,
)

ALL = {STUDY_A, STUDY_B, STUDY_C, STUDY_D}
UNIQUE = {
    "PATIENT": "PatientID",
    "STUDY": "StudyInstanceUID",
    "SERIES": "SeriesInstanceUID",
    "IMAGE": "SOPInstanceUID",
}


@pytest.fixture
def stored(archive: Archive) -> Iterator[tuple[ServiceContext, Corpus]]:
    data = corpus()
    store(archive_port(archive), data.datasets)
    assert archive.services is not None
    yield archive.services, data


def found(services: ServiceContext, level: str = "STUDY", view: View = View.REGULAR, **match):
    """The unique keys of the matches, checked against count()."""
    query = q.Query.of(level, match, [UNIQUE[level]], view=view)
    values = [str(ds[UNIQUE[level]].value) for ds in q.find(services, query)]
    assert len(values) == len(set(values)) == q.count(services, query)
    return set(values)


def test_universal_and_single_value(stored) -> None:
    services, _ = stored
    assert found(services) == ALL
    assert found(services, PatientID="") == ALL
    assert found(services, PatientID="*") == ALL
    assert found(services, PatientID="PID-2") == {STUDY_B}
    assert found(services, PatientID="pid-2") == set()  # case-sensitive
    assert found(services, AccessionNumber="ACC_2") == {STUDY_B}
    assert found(services, StudyID="S3") == {STUDY_C}
    assert found(services, StudyDescription="CT Chest") == {STUDY_A}
    assert found(services, PatientSex="f") == {STUDY_B}  # CS keys are upper-cased
    assert found(services, IssuerOfPatientID="HOSP_A") == {STUDY_A, STUDY_C, STUDY_D}


def test_wildcards_escape_like_characters(stored) -> None:
    services, _ = stored
    assert found(services, AccessionNumber="ACC*") == ALL
    assert found(services, AccessionNumber="ACC_*") == {STUDY_B}  # `_` is no wildcard
    assert found(services, AccessionNumber="ACC%*") == {STUDY_C}  # nor is `%`
    assert found(services, AccessionNumber="ACC?2") == {STUDY_B, STUDY_D}
    assert found(services, AccessionNumber="*2") == {STUDY_B, STUDY_D}
    assert found(services, AccessionNumber="A*C-?") == {STUDY_A}
    assert found(services, AccessionNumber="acc*") == set()
    assert found(services, PatientID="PID-[1]*") == set()  # `[` is literal, also in GLOB
    assert found(services, StudyDescription="*Knee") == {STUDY_B}


def test_person_names_ignore_case(stored) -> None:
    services, _ = stored
    assert found(services, PatientName="DOE*") == {STUDY_A, STUDY_B}
    assert found(services, PatientName="doe*") == {STUDY_A, STUDY_B}
    assert found(services, PatientName="Doe^John") == {STUDY_A}
    # Components left out match any: "doe" is family name DOE, not DOERING.
    assert found(services, PatientName="doe") == {STUDY_A}
    assert found(services, PatientName="^hans") == {STUDY_D}
    assert found(services, PatientName="müller*") == {STUDY_D}
    assert found(services, PatientName="o'brien^s?an") == {STUDY_C}
    assert found(services, PatientName="Doe^Jane") == set()
    assert found(services, ReferringPhysicianName="SMITH*") == {STUDY_A, STUDY_C}
    assert found(services, ReferringPhysicianName="smith^anna") == {STUDY_A}


def test_descriptions_ignore_case_for_upper_case_values(stored) -> None:
    services, _ = stored
    # dcm4chee: an upper-case value matches any case, a mixed-case one only itself.
    assert found(services, StudyDescription="CT*") == {STUDY_A, STUDY_C}
    assert found(services, StudyDescription="ct*") == {STUDY_C}
    assert found(services, "SERIES", SeriesDescription="AXIAL") == {SERIES_A1, SERIES_C1}
    assert found(services, "SERIES", SeriesDescription="Axial") == {SERIES_A1}
    assert found(services, "SERIES", InstitutionName="CITY*") == {SERIES_B1, SERIES_C1}
    assert found(services, "SERIES", StationName="ct01") == set()
    assert found(services, "SERIES", StationName="CT01") == {SERIES_A1, SERIES_C1}


def test_date_ranges(stored) -> None:
    services, _ = stored
    assert found(services, StudyDate="20260101") == {STUDY_A}
    assert found(services, StudyDate="2026.01.01") == {STUDY_A}  # ACR-NEMA form
    assert found(services, StudyDate="20260101-20260131") == {STUDY_A}
    assert found(services, StudyDate="20251231-20260101") == {STUDY_A, STUDY_C}
    assert found(services, StudyDate="-20251231") == {STUDY_C, STUDY_D}
    assert found(services, StudyDate="20260201-") == {STUDY_B}
    assert found(services, StudyDate="20260101\\20240610") == {STUDY_A, STUDY_D}
    assert found(services, PatientBirthDate="19700101-19900101") == {STUDY_A, STUDY_B}
    assert found(services, "IMAGE", ContentDate="20260215") == {
        ds.SOPInstanceUID for ds in stored[1].datasets if ds.SeriesInstanceUID == SERIES_B1
    }


def test_time_ranges(stored) -> None:
    services, _ = stored
    assert found(services, StudyTime="1015") == {STUDY_A}  # the whole minute
    assert found(services, StudyTime="10") == {STUDY_A}  # the whole hour
    assert found(services, StudyTime="101500") == {STUDY_A}
    assert found(services, StudyTime="1016") == set()
    assert found(services, StudyTime="2300-") == {STUDY_B}
    assert found(services, StudyTime="-0100") == {STUDY_C}
    assert found(services, StudyTime="10:00-12:00") == {STUDY_A, STUDY_D}
    assert found(services, StudyTime="2300-0100") == {STUDY_B, STUDY_C}  # across midnight
    images = found(services, "IMAGE", StudyInstanceUID=STUDY_A, ContentTime="10")
    assert len(images) == 2  # instance 1 of each series of study A


def test_list_of_uids(stored) -> None:
    services, data = stored
    assert found(services, StudyInstanceUID=f"{STUDY_A}\\{STUDY_C}") == {STUDY_A, STUDY_C}
    assert found(services, StudyInstanceUID=STUDY_B) == {STUDY_B}
    assert found(services, StudyInstanceUID=STUDY_B + ".9") == set()
    # No wildcards in UIDs: `*` inside one is a literal character.
    assert found(services, StudyInstanceUID=STUDY_B[:-1] + "*") == set()
    assert found(services, "SERIES", SeriesInstanceUID=f"{SERIES_A2}\\{SERIES_D1}") == {
        SERIES_A2,
        SERIES_D1,
    }
    wanted = sorted(data.sop_uids(SERIES_A1))
    assert found(services, "IMAGE", SOPInstanceUID="\\".join(wanted)) == set(wanted)
    mr = "1.2.840.10008.5.1.4.1.1.4"
    assert found(services, "IMAGE", SOPClassUID=mr) == data.sop_uids(SERIES_A2, SERIES_B1)


def test_study_level_keys_on_series_and_instances(stored) -> None:
    services, data = stored
    assert found(services, ModalitiesInStudy="MR") == {STUDY_A, STUDY_B}
    assert found(services, ModalitiesInStudy="cr") == {STUDY_D}
    assert found(services, ModalitiesInStudy="CT\\CR") == {STUDY_A, STUDY_C, STUDY_D}
    assert found(services, ModalitiesInStudy="M?") == {STUDY_A, STUDY_B}
    assert found(services, SOPClassesInStudy="1.2.840.10008.5.1.4.1.1.4") == {STUDY_A, STUDY_B}
    assert found(services, "SERIES", Modality="ct") == {SERIES_A1, SERIES_C1}
    assert found(services, "SERIES", SeriesNumber="2") == {SERIES_A2}
    assert found(services, "SERIES", BodyPartExamined="chest") == {SERIES_A1, SERIES_D1}
    assert found(services, "IMAGE", InstanceNumber="2") == {
        ds.SOPInstanceUID for ds in data.datasets if ds.InstanceNumber == 2
    }


def test_keys_of_higher_levels_filter_lower_levels(stored) -> None:
    services, data = stored
    assert found(services, "SERIES", PatientName="doe*", Modality="MR") == {
        SERIES_A2,
        SERIES_B1,
    }
    assert found(services, "SERIES", StudyDate="20260101-", SeriesNumber="1") == {
        SERIES_A1,
        SERIES_B1,
    }
    assert found(services, "IMAGE", PatientID="PID-1") == data.sop_uids(SERIES_A1, SERIES_A2)
    assert found(services, "PATIENT", PatientName="DOE*") == {"PID-1", "PID-2"}
    # Keys of lower levels do not filter: a study query ignores Modality.
    assert found(services, "STUDY", Modality="XA") == ALL


def test_invalid_values_are_matching_errors(stored) -> None:
    services, _ = stored
    for keyword, value in (
        ("StudyDate", "2026-13-45x"),
        ("StudyDate", "yesterday"),
        ("StudyTime", "25h"),
        ("SeriesNumber", "one"),
        ("SeriesNumber", "99999999999"),
    ):
        with pytest.raises(matching.MatchingError) as error:
            q.find(services, q.Query.of("SERIES", {keyword: value}, ["SeriesInstanceUID"]))
        tag = error.value.tag
        assert error.value.comment == (
            f"Invalid {keyword} ({tag >> 16:04X},{tag & 0xFFFF:04X}) - {value}"
        )


def _reject(services: ServiceContext, sop_uids: set[str], code: str) -> None:
    # What IOCM rejection will do: set the code, nothing else.
    with services.db.write() as session:
        session.execute(
            update(Instance).where(Instance.sop_iuid.in_(sop_uids)).values(rejection_code=code)
        )


def test_views_follow_rejection_codes(stored) -> None:
    services, data = stored
    a2 = data.sop_uids(SERIES_A2)
    b1 = data.sop_uids(SERIES_B1)
    _reject(services, a2, "113001^DCM")
    _reject(services, b1, "113039^DCM")
    assert found(services) == {STUDY_A, STUDY_C, STUDY_D}
    assert found(services, "SERIES", StudyInstanceUID=STUDY_A) == {SERIES_A1}
    assert found(services, "PATIENT") == {"PID-1", "PID-3", "PID-4"}
    assert found(services, view=View.AS_RECEIVED) == ALL
    assert found(services, view=View.IOCM_QUALITY) == {STUDY_A}
    assert found(services, "SERIES", view=View.IOCM_QUALITY) == {SERIES_A2}
    assert found(services, "IMAGE", view=View.IOCM_QUALITY) == a2
    assert found(services, view=View.IOCM_EXPIRED) == {STUDY_B}
    assert found(services, "PATIENT", view=View.IOCM_EXPIRED) == {"PID-2"}
    assert found(services, view=View.IOCM_PAT_SAFETY) == set()
    assert found(services, view=View.IOCM_WRONG_MWL) == set()
    # The modality of a hidden series no longer makes its study match.
    assert found(services, ModalitiesInStudy="MR") == set()
    assert found(services, ModalitiesInStudy="MR", view=View.IOCM_QUALITY) == {STUDY_A}


def test_computed_keys_count_what_the_view_shows(stored) -> None:
    services, data = stored
    returns = [
        "StudyInstanceUID",
        "NumberOfStudyRelatedSeries",
        "NumberOfStudyRelatedInstances",
        "ModalitiesInStudy",
        "SOPClassesInStudy",
        "NumberOfPatientRelatedStudies",
        "NumberOfPatientRelatedSeries",
        "NumberOfPatientRelatedInstances",
    ]

    def study_a(view: View) -> dict[str, object]:
        query = q.Query.of("STUDY", {"StudyInstanceUID": STUDY_A}, returns, view=view)
        (ds,) = q.find(services, query)
        return {k: ds[k].value for k in returns[1:]}

    assert study_a(View.REGULAR) == {
        "NumberOfStudyRelatedSeries": 2,
        "NumberOfStudyRelatedInstances": 3,
        "ModalitiesInStudy": ["CT", "MR"],
        "SOPClassesInStudy": ["1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.4"],
        "NumberOfPatientRelatedStudies": 1,
        "NumberOfPatientRelatedSeries": 2,
        "NumberOfPatientRelatedInstances": 3,
    }
    # Keys of the study and patient computed on rows of lower levels, whose tables the
    # subqueries repeat.
    images = q.Query.of(
        "IMAGE",
        {"SeriesInstanceUID": SERIES_A1},
        ["NumberOfStudyRelatedSeries", "ModalitiesInStudy", "NumberOfPatientRelatedInstances"],
    )
    assert [
        (
            ds.NumberOfStudyRelatedSeries,
            list(ds.ModalitiesInStudy),
            ds.NumberOfPatientRelatedInstances,
        )
        for ds in q.find(services, images)
    ] == [(2, ["CT", "MR"], 3)] * 2
    _reject(services, data.sop_uids(SERIES_A2), "113001^DCM")
    regular = study_a(View.REGULAR)
    assert regular["NumberOfStudyRelatedSeries"] == 1
    assert regular["NumberOfStudyRelatedInstances"] == 2
    assert regular["ModalitiesInStudy"] == "CT"
    assert regular["SOPClassesInStudy"] == "1.2.840.10008.5.1.4.1.1.2"
    assert regular["NumberOfPatientRelatedInstances"] == 2
    quality = study_a(View.IOCM_QUALITY)
    assert quality["NumberOfStudyRelatedInstances"] == 1
    assert quality["ModalitiesInStudy"] == "MR"
    series = q.Query.of("SERIES", {"StudyInstanceUID": STUDY_A}, ["NumberOfSeriesRelatedInstances"])
    assert [ds.NumberOfSeriesRelatedInstances for ds in q.find(services, series)] == [2]
    images = q.Query.of(
        "IMAGE",
        {"SeriesInstanceUID": SERIES_A1},
        ["NumberOfSeriesRelatedInstances", "NumberOfStudyRelatedSeries"],
    )
    assert [
        (ds.NumberOfSeriesRelatedInstances, ds.NumberOfStudyRelatedSeries)
        for ds in q.find(services, images)
    ] == [(2, 1), (2, 1)]


def test_count_page_and_order(stored) -> None:
    services, _ = stored
    query = q.Query.of("STUDY", {}, ["StudyInstanceUID", "StudyDate"])
    assert q.count(services, query) == 4
    newest = q.page(services, query, order=["-StudyDate"], limit=3)
    assert [ds.StudyInstanceUID for ds in newest] == [STUDY_B, STUDY_A, STUDY_C]
    rest = q.page(services, query, order=["-StudyDate"], offset=3, limit=3)
    assert [ds.StudyInstanceUID for ds in rest] == [STUDY_D]
    by_name = q.page(services, q.Query.of("PATIENT", {}, ["PatientID"]), order=["PatientName"])
    assert [ds.PatientID for ds in by_name] == ["PID-1", "PID-2", "PID-4", "PID-3"]
    with pytest.raises(ValueError):
        q.page(services, query, order=["SeriesNumber"])


def test_prefix_patterns_use_the_index(stored) -> None:
    services, _ = stored
    patient = Patient.__table__
    condition = matching.key_condition(0x00100010, "DOE*")
    statement = select(patient.c.pk).where(condition)
    engine = services.db.engine
    with engine.connect() as conn:
        sql = str(statement.compile(conn, compile_kwargs={"literal_binds": True}))
        if engine.dialect.name == "sqlite":
            plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}").all()
            detail = " ".join(str(row[-1]) for row in plan)
            assert "SEARCH patient USING" in detail, detail
            assert (
                "ix_patient_patient_name_upper (patient_name_upper>? AND patient_name_upper<?)"
                in detail
            ), detail
        else:
            # Four rows are cheaper to scan: ask whether the index can serve the range.
            conn.execute(text("SET LOCAL enable_seqscan = off"))
            detail = " ".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN {sql}"))
            assert "ix_patient_patient_name_upper" in detail, detail
            assert "Index Cond" in detail, detail
    assert found(services, PatientName="DOE*") == {STUDY_A, STUDY_B}
