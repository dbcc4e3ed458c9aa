"""The console's MPPS list: search with C-FIND matching, newest start first, paged."""

from __future__ import annotations

import pytest
from pydicom.uid import generate_uid

from core.archive import Archive
from core.db.matching import MatchingError
from core.services import mpps
from core.services.context import ServiceContext
from tests.core.mpps_support import final, in_progress


def _kept(services: ServiceContext, date: str, station: str, pps_id: str) -> str:
    ds = in_progress(generate_uid(), pps_id=pps_id, station_aet=station)
    ds.PerformedProcedureStepStartDate = date
    uid = generate_uid()
    mpps.create(services, uid, ds, calling_aet="MODALITY", called_aet="DCM4CHEE")
    return uid


def test_search_matches_and_pages_newest_first(archive: Archive) -> None:
    services = archive.services
    assert services is not None
    first = _kept(services, "20261201", "CT_ROOM1", "PPS-1")
    second = _kept(services, "20261203", "CT_ROOM2", "PPS-2")
    third = _kept(services, "20261205", "MR_ROOM1", "PPS-3")
    mpps.update(services, second, final("COMPLETED"))

    page = mpps.search(services, mpps.MPPSSearch(), limit=2)
    assert (page.total, [r.sop_iuid for r in page.rows]) == (3, [third, second])
    rest = mpps.search(services, mpps.MPPSSearch(), offset=2, limit=2, total=3, near=page)
    assert [r.sop_iuid for r in rest.rows] == [first]

    def found(**form: str) -> list[str]:
        return [r.pps_id for r in mpps.search(services, mpps.MPPSSearch(**form)).rows]

    assert found(status="COMPLETED") == ["PPS-2"]
    assert found(status="IN PROGRESS") == ["PPS-3", "PPS-1"]
    assert found(station_aet="CT*") == ["PPS-2", "PPS-1"]
    assert found(start_date="2026-12-02 - 2026-12-05") == ["PPS-3", "PPS-2"]
    assert found(pps_id="PPS-1", modality="ct") == ["PPS-1"]
    row = mpps.search(services, mpps.MPPSSearch(pps_id="PPS-2")).rows[0]
    assert (row.end_date, row.end_time, row.accession_number, row.station_name) == (
        "20261205",
        "083000",
        "A-1",
        "CT room 1",
    )
    with pytest.raises(MatchingError, match="PerformedProcedureStepStartDate"):
        mpps.search(services, mpps.MPPSSearch(start_date="2026-13-45"))
