"""MPPS SCP: pynetdicom as the modality's MPPS SCU (N-CREATE, N-SET), with dcm4chee's
statuses for a duplicate, an unknown instance, a step no longer IN PROGRESS and missing
or invalid attributes; on SQLite and PostgreSQL."""

from __future__ import annotations

import struct
from collections.abc import Callable

from pydicom import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE
from sqlalchemy import select

from core.archive import Archive
from core.config import Config
from core.db.models import MPPS
from core.dicom.status import (
    DUPLICATE_SOP_INSTANCE,
    INVALID_ATTRIBUTE_VALUE,
    MAY_NO_LONGER_BE_UPDATED_ERROR_ID,
    MISSING_ATTRIBUTE,
    MISSING_ATTRIBUTE_VALUE,
    NO_SUCH_OBJECT_INSTANCE,
    PROCESSING_FAILURE,
    SUCCESS,
)
from core.dimse import messages, n_scu
from core.services import mpps
from tests.conftest import archive_port, free_port
from tests.core.mpps_support import MPPS_CLASS, final, in_progress, mpps_scu


def _row(arc: Archive, sop_iuid: str) -> MPPS:
    assert arc.services is not None
    with arc.services.db.read() as session:
        row = session.scalars(select(MPPS).where(MPPS.sop_iuid == sop_iuid)).one()
        session.expunge(row)
        return row


def test_a_step_is_created_updated_and_completed(archive: Archive) -> None:
    study = generate_uid()
    uid = generate_uid()
    with mpps_scu(archive_port(archive)) as assoc:
        status, _ = assoc.send_n_create(in_progress(study, "SPS-7"), MPPS_CLASS, uid)
        assert status.Status == SUCCESS
        row = _row(archive, uid)
        assert (row.status, row.pps_id, row.study_iuid, row.accession_number) == (
            "IN PROGRESS",
            "PPS-1",
            study,
            "A-1",
        )
        assert (row.station_aet, row.station_name, row.modality) == ("MODALITY", "CT room 1", "CT")
        assert (row.start_date, row.start_time, row.end_date) == ("20261205", "081500", "")
        assert (row.calling_aet, row.called_aet, row.patient_id) == (
            "MODALITY",
            "DCM4CHEE",
            "PID-1",
        )

        # An N-SET while IN PROGRESS overwrites what it names, and keeps the rest.
        change = Dataset()
        change.PerformedProcedureStepDescription = "CT chest and abdomen"
        status, _ = assoc.send_n_set(change, MPPS_CLASS, uid)
        assert status.Status == SUCCESS
        assert _row(archive, uid).status == "IN PROGRESS"

        series = generate_uid()
        ct = "1.2.840.10008.5.1.4.1.1.2"
        status, _ = assoc.send_n_set(final("COMPLETED", {series: [(ct, "1.2.3")]}), MPPS_CLASS, uid)
        assert status.Status == SUCCESS
        row = _row(archive, uid)
        assert (row.status, row.end_date, row.end_time) == ("COMPLETED", "20261205", "083000")

        assert archive.services is not None
        attrs = mpps.attributes_of(archive.services, uid)
        assert attrs.PerformedProcedureStepDescription == "CT chest and abdomen"
        assert attrs.ScheduledStepAttributesSequence[0].ScheduledProcedureStepID == "SPS-7"
        assert attrs.PerformedSeriesSequence[0].SeriesInstanceUID == series
        assert attrs.PatientName == "Doe^Jane"

        # Once COMPLETED, it may no longer be updated (dcm4che: 0110, Error ID A710).
        status, _ = assoc.send_n_set(final("DISCONTINUED"), MPPS_CLASS, uid)
        assert status.Status == PROCESSING_FAILURE
        assert status.ErrorComment == "Performed Procedure Step Object may no longer be updated"
        assert status.ErrorID == MAY_NO_LONGER_BE_UPDATED_ERROR_ID
        assert _row(archive, uid).status == "COMPLETED"


def test_discontinued_keeps_its_reason_and_is_final(archive: Archive) -> None:
    uid = generate_uid()
    reason = ("110514", "DCM", "Incorrect worklist entry selected")
    with mpps_scu(archive_port(archive)) as assoc:
        assert assoc.send_n_create(in_progress(generate_uid()), MPPS_CLASS, uid)[0].Status == 0
        status, _ = assoc.send_n_set(final("DISCONTINUED", reason=reason), MPPS_CLASS, uid)
        assert status.Status == SUCCESS
        row = _row(archive, uid)
        assert (row.status, row.reason_code, row.reason_scheme, row.reason_meaning) == (
            "DISCONTINUED",
            *reason,
        )
        status, _ = assoc.send_n_set(final("COMPLETED"), MPPS_CLASS, uid)
        assert (status.Status, status.ErrorID) == (PROCESSING_FAILURE, 0xA710)


def test_duplicate_unknown_and_bad_attributes_are_refused(archive: Archive) -> None:
    uid = generate_uid()
    with mpps_scu(archive_port(archive)) as assoc:
        assert assoc.send_n_create(in_progress(generate_uid()), MPPS_CLASS, uid)[0].Status == 0
        status, _ = assoc.send_n_create(in_progress(generate_uid()), MPPS_CLASS, uid)
        assert (status.Status, status.ErrorComment) == (
            DUPLICATE_SOP_INSTANCE,
            "duplicate SOP Instance",
        )

        unknown = generate_uid()
        status, _ = assoc.send_n_set(final("COMPLETED"), MPPS_CLASS, unknown)
        assert status.Status == NO_SUCH_OBJECT_INSTANCE
        assert status.ErrorComment == "No such SOP Instance"

        no_steps = in_progress(generate_uid())
        del no_steps.ScheduledStepAttributesSequence
        status, _ = assoc.send_n_create(no_steps, MPPS_CLASS, generate_uid())
        assert (status.Status, status.ErrorComment) == (
            MISSING_ATTRIBUTE,
            "Missing Attribute: (0040,0270)",
        )

        no_study = in_progress("")
        status, _ = assoc.send_n_create(no_study, MPPS_CLASS, generate_uid())
        assert (status.Status, status.ErrorComment) == (
            MISSING_ATTRIBUTE_VALUE,
            "Missing Value of Attribute: (0020,000D)",
        )

        no_start = in_progress(generate_uid())
        no_start.PerformedProcedureStepStartDate = None
        status, _ = assoc.send_n_create(no_start, MPPS_CLASS, generate_uid())
        assert (status.Status, status.ErrorComment) == (
            MISSING_ATTRIBUTE_VALUE,
            "Missing Value of Attribute: (0040,0244)",
        )

        wrong = in_progress(generate_uid())
        wrong.PerformedProcedureStepStatus = "STARTED"
        status, _ = assoc.send_n_create(wrong, MPPS_CLASS, generate_uid())
        assert (status.Status, status.ErrorComment) == (
            INVALID_ATTRIBUTE_VALUE,
            "Invalid Attribute: (0040,0252)",
        )

        # An N-SET to a status that is none of the three changes nothing.
        bad = final("FINISHED")
        status, _ = assoc.send_n_set(bad, MPPS_CLASS, uid)
        assert (status.Status, status.ErrorComment, status.AttributeIdentifierList) == (
            INVALID_ATTRIBUTE_VALUE,
            "Invalid Attribute: (0040,0252)",
            0x00400252,
        )
        assert _row(archive, uid).status == "IN PROGRESS"
        # The association is still good.
        assert assoc.send_n_set(final("COMPLETED"), MPPS_CLASS, uid)[0].Status == SUCCESS

    assert archive.services is not None
    with archive.services.db.read() as session:
        assert session.scalar(select(MPPS.status).where(MPPS.sop_iuid == uid)) == "COMPLETED"
        # Only the two good steps were kept.
        assert len(session.scalars(select(MPPS.pk)).all()) == 1


def test_the_archive_names_a_step_created_without_a_uid(archive: Archive) -> None:
    with mpps_scu(archive_port(archive)) as assoc:
        status, _ = assoc.send_n_create(in_progress(generate_uid()), MPPS_CLASS, None)
        assert status.Status == SUCCESS
    assert archive.services is not None
    with archive.services.db.read() as session:
        (uid,) = session.scalars(select(MPPS.sop_iuid)).all()
    assert uid.startswith("1.2.826.0.1.3680043")


def test_an_ae_without_mpps_refuses_the_context(make_config: Callable[..., Config]) -> None:
    port = free_port()
    extra = (
        f'[[ae]]\ntitle = "STOREONLY"\nhost = "127.0.0.1"\nport = {port}\nservices = ["storage"]'
    )
    arc = Archive(make_config("\n" + extra + "\n", port=port))
    arc.start()
    try:
        ae = AE(ae_title="MODALITY")
        ae.add_requested_context(MPPS_CLASS)
        assoc = ae.associate("127.0.0.1", port, ae_title="STOREONLY")
        try:
            assert not assoc.accepted_contexts
        finally:
            if assoc.is_established:
                assoc.abort()
    finally:
        arc.stop(grace=5)


def test_an_unreadable_attribute_list_is_answered_and_the_association_goes_on(
    archive: Archive,
) -> None:
    """An N-CREATE whose data set cannot be parsed gets 0110 with the reason; the next
    request on the same association is served."""
    config = archive.config
    assoc, ctx = n_scu.open_association(
        "127.0.0.1", archive_port(archive), "MODALITY", "DCM4CHEE", MPPS_CLASS, config.network
    )
    try:
        # A US value of three bytes.
        garbage = struct.pack("<HH2sH", 0x0028, 0x0010, b"US", 3) + b"abc"
        assoc.send_command(
            ctx.id,
            messages.request(
                messages.N_CREATE_RQ, MPPS_CLASS, 1, sop_instance=generate_uid(), has_dataset=True
            ),
        )
        assoc.send_data(ctx.id, garbage)
        response = n_scu.receive(assoc)
        assert response.command.us(messages.STATUS) == PROCESSING_FAILURE
        assert response.command.text(messages.ERROR_COMMENT).startswith("Cannot parse data set")

        uid = generate_uid()
        good = n_scu.request(
            assoc, ctx, messages.N_CREATE_RQ, uid, dataset=in_progress(generate_uid())
        )
        assert good.command.us(messages.STATUS) == SUCCESS
    finally:
        assoc.release()
    assert _row(archive, uid).status == "IN PROGRESS"
