"""C-STORE into the archive: stored once, indexed, file and row agree."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

import pytest
from pydicom import dcmread
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage
from sqlalchemy import select

from core.archive import Archive
from core.db.models import Instance, Location, LocationStatus, Series, Study
from tests import dicomgen
from tests.conftest import archive_port, nodelay


def _store(port: int, datasets, calling: str = "ACME1") -> list[int]:
    ae = AE(ae_title=calling)
    ae.add_requested_context(CTImageStorage)
    assoc = nodelay(ae.associate("127.0.0.1", port, ae_title="DCM4CHEE"))
    assert assoc.is_established
    statuses = [assoc.send_c_store(ds).Status for ds in datasets]
    assoc.release()
    return statuses


@pytest.mark.parametrize("size", [16, 512, 1100])
def test_store_indexes_and_keeps_file(archive: Archive, size: int) -> None:
    """Small objects, and large ones (512 KB; 2.4 MB, more than the write buffer) that
    are written past the page cache: indexed, kept with their size and MD5, pixel data
    byte for byte."""
    study_uid = "1.2.826.0.1.3680043.8.498.1"
    datasets = [
        dicomgen.ct(study_uid, "1.2.826.0.1.3680043.8.498.2", size=size, InstanceNumber=i, seed=i)
        for i in range(3)
    ]
    assert _store(archive_port(archive), datasets) == [0, 0, 0]
    services = archive.services
    assert services is not None
    with services.db.read() as session:
        study = session.scalars(select(Study)).one()
        assert study.study_iuid == study_uid
        assert study.study_description == "CT Chest"
        assert session.scalars(select(Series)).one().modality == "CT"
        rows = session.execute(
            select(Instance.sop_iuid, Location.storage_path, Location.digest, Location.size).join(
                Location, Location.instance_fk == Instance.pk
            )
        ).all()
    assert sorted(r.sop_iuid for r in rows) == sorted(ds.SOPInstanceUID for ds in datasets)
    sent = {ds.SOPInstanceUID: ds for ds in datasets}
    for row in rows:
        path = services.storage.path(row.storage_path)
        data = path.read_bytes()
        assert len(data) == row.size
        assert hashlib.md5(data).hexdigest() == row.digest
        assert study_uid not in row.storage_path
        assert dcmread(path).PixelData == sent[row.sop_iuid].PixelData
    assert list(services.storage.tmp.iterdir()) == []


def test_rows_written_on_the_driver_read_back_through_the_orm(archive: Archive) -> None:
    """The index writer runs its inserts on the driver (core.db.direct): the values,
    datetimes included, are what SQLAlchemy reads back."""
    before = datetime.now()
    ds = dicomgen.ct("1.2.826.0.1.3680043.8.498.11", "1.2.826.0.1.3680043.8.498.12")
    ds.InstanceNumber = 7
    assert _store(archive_port(archive), [ds]) == [0]
    services = archive.services
    assert services is not None
    with services.db.read() as session:
        instance = session.scalars(select(Instance)).one()
        location = session.scalars(select(Location)).one()
    assert instance.sop_iuid == ds.SOPInstanceUID
    assert instance.sop_cuid == CTImageStorage
    assert instance.instance_number == 7
    assert instance.source_aet == "ACME1"
    assert json.loads(instance.attrs)["00200013"] == {"vr": "IS", "Value": [7]}
    assert isinstance(instance.created, datetime)
    assert instance.created == instance.updated == location.created
    assert before <= instance.created <= datetime.now()
    assert location.instance_fk == instance.pk
    assert location.status == LocationStatus.OK
    assert location.size == services.storage.path(location.storage_path).stat().st_size
