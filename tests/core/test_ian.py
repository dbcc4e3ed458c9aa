"""Instance Availability Notification: the archive's N-CREATE as a pynetdicom IAN SCP
receives it."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydicom.uid import generate_uid

from core.archive import Archive
from core.config import Config
from core.dicom.uids import is_uid
from core.services import ian
from core.services.references import NothingToReference
from tests import dicomgen
from tests.core.retrieve_support import remote_ae
from tests.core.stgcmt_support import IANSCP
from tests.core.store_support import store


def test_a_study_series_and_instance_are_notified_online(
    make_config: Callable[..., Config],
) -> None:
    peer = IANSCP().start()
    arc = Archive(make_config(remote_ae(peer.title, peer.port)))
    arc.start()
    try:
        services = arc.services
        assert services is not None
        study_uid = generate_uid()
        series = [generate_uid(), generate_uid()]
        stored: dict[str, list[str]] = {uid: [] for uid in series}
        for s, series_uid in enumerate(series):
            for i in range(2):
                ds = dicomgen.ct(
                    study_uid, series_uid, SeriesNumber=s + 1, InstanceNumber=i + 1, seed=i
                )
                stored[series_uid].append(store(services, ds))

        outcome = ian.send_ian(services, {"remote_aet": "IANSCP", "study_uid": study_uid})
        assert outcome == f"Sent IAN of 4 instances of Study {study_uid} to AE: IANSCP"
        (instance_uid, calling, ds) = peer.received[0]
        assert is_uid(instance_uid) and calling == "DCM4CHEE"
        assert ds.StudyInstanceUID == study_uid
        assert "ReferencedPerformedProcedureStepSequence" in ds
        assert len(ds.ReferencedPerformedProcedureStepSequence) == 0
        got = {
            item.SeriesInstanceUID: [
                (
                    ref.ReferencedSOPClassUID,
                    ref.ReferencedSOPInstanceUID,
                    ref.InstanceAvailability,
                    ref.RetrieveAETitle,
                )
                for ref in item.ReferencedSOPSequence
            ]
            for item in ds.ReferencedSeriesSequence
        }
        ct = "1.2.840.10008.5.1.4.1.1.2"
        assert got == {
            uid: [(ct, iuid, "ONLINE", "DCM4CHEE") for iuid in iuids]
            for uid, iuids in stored.items()
        }

        ian.send_ian(
            services,
            {"remote_aet": "IANSCP", "study_uid": study_uid, "sop_uid": stored[series[1]][0]},
        )
        (_, _, one) = peer.received[1]
        (item,) = one.ReferencedSeriesSequence
        assert item.SeriesInstanceUID == series[1]
        assert [r.ReferencedSOPInstanceUID for r in item.ReferencedSOPSequence] == [
            stored[series[1]][0]
        ]

        with pytest.raises(NothingToReference, match="not found"):
            ian.send_ian(services, {"remote_aet": "IANSCP", "study_uid": generate_uid()})
        with pytest.raises(ian.IANFailed, match="Unknown AE: NOBODY"):
            ian.send_ian(services, {"remote_aet": "NOBODY", "study_uid": study_uid})
    finally:
        arc.stop(grace=5)
        peer.stop()
