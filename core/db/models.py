"""The index: patient, study, series, instance and the file locations of instances.

Each level keeps the columns that queries match on, plus `attrs`: the level's attributes
(dcm4chee's attribute filter) as DICOM JSON, from which query responses are built.
Text columns have no length limit: objects are stored as received, even with values
longer than their VR allows. On PostgreSQL they use the "C" collation (set by the
migrations): prefix matches become range conditions (core.db.matching), which an index
serves only under byte order, the order SQLite compares in.
Values are stored as received (DA as YYYYMMDD, TM as HHMMSS.FFFFFF); `*_upper` columns
hold upper-cased person names for dcm4chee's case-insensitive PN matching.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets 64-bit keys.
BigPK = BigInteger().with_variant(Integer, "sqlite")


NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Patient(Base):
    __tablename__ = "patient"

    pk: Mapped[int] = mapped_column(BigPK, primary_key=True)
    patient_id: Mapped[str | None] = mapped_column(String)
    issuer: Mapped[str | None] = mapped_column(String)
    patient_name: Mapped[str | None] = mapped_column(String)
    patient_name_upper: Mapped[str | None] = mapped_column(String, index=True)
    birth_date: Mapped[str | None] = mapped_column(String)
    sex: Mapped[str | None] = mapped_column(String)
    attrs: Mapped[str] = mapped_column(Text, default="{}")
    # Set when the patient was merged into another one (it then has no studies).
    merged_into_fk: Mapped[int | None] = mapped_column(ForeignKey("patient.pk"), index=True)
    created: Mapped[datetime] = mapped_column(DateTime)
    updated: Mapped[datetime] = mapped_column(DateTime)
    # Set by edits (not by ingest): retrieved objects then get the index's attributes.
    edited: Mapped[datetime | None] = mapped_column(DateTime)

    studies: Mapped[list[Study]] = relationship(
        back_populates="patient", foreign_keys="Study.patient_fk"
    )

    __table_args__ = (Index("ix_patient_patient_id_issuer", "patient_id", "issuer"),)


class Study(Base):
    __tablename__ = "study"

    pk: Mapped[int] = mapped_column(BigPK, primary_key=True)
    patient_fk: Mapped[int] = mapped_column(ForeignKey("patient.pk"), index=True)
    study_iuid: Mapped[str] = mapped_column(String, unique=True)
    # Indexed with study_time (newest first paging): see __table_args__.
    study_date: Mapped[str | None] = mapped_column(String)
    study_time: Mapped[str | None] = mapped_column(String)
    accession_number: Mapped[str | None] = mapped_column(String, index=True)
    study_id: Mapped[str | None] = mapped_column(String)
    study_description: Mapped[str | None] = mapped_column(String)
    referring_physician: Mapped[str | None] = mapped_column(String)
    referring_physician_upper: Mapped[str | None] = mapped_column(String)
    # dcm4chee's study expiration date (DA) and access control ID.
    expiration_date: Mapped[str | None] = mapped_column(String, index=True)
    access_control_id: Mapped[str | None] = mapped_column(String)
    attrs: Mapped[str] = mapped_column(Text, default="{}")
    created: Mapped[datetime] = mapped_column(DateTime, index=True)
    updated: Mapped[datetime] = mapped_column(DateTime)
    edited: Mapped[datetime | None] = mapped_column(DateTime)

    patient: Mapped[Patient] = relationship(back_populates="studies")
    series: Mapped[list[Series]] = relationship(back_populates="study")

    # Matching on dates, and the newest-first sort key of the console's study list (no
    # value last, then arrival), which keyset paging seeks on (core.services.paging).
    __table_args__ = (
        Index("ix_study_study_date_study_time", "study_date", "study_time"),
        Index(
            "ix_study_newest",
            text("coalesce(study_date, '') DESC"),
            text("coalesce(study_time, '') DESC"),
            "pk",
        ),
    )


class Series(Base):
    __tablename__ = "series"

    pk: Mapped[int] = mapped_column(BigPK, primary_key=True)
    study_fk: Mapped[int] = mapped_column(ForeignKey("study.pk"))
    series_iuid: Mapped[str] = mapped_column(String, unique=True)
    modality: Mapped[str | None] = mapped_column(String, index=True)
    series_number: Mapped[int | None] = mapped_column(Integer)
    series_description: Mapped[str | None] = mapped_column(String)
    body_part: Mapped[str | None] = mapped_column(String)
    institution: Mapped[str | None] = mapped_column(String)
    station_name: Mapped[str | None] = mapped_column(String)
    source_aet: Mapped[str | None] = mapped_column(String)
    attrs: Mapped[str] = mapped_column(Text, default="{}")
    created: Mapped[datetime] = mapped_column(DateTime)
    updated: Mapped[datetime] = mapped_column(DateTime)
    edited: Mapped[datetime | None] = mapped_column(DateTime)

    study: Mapped[Study] = relationship(back_populates="series")
    instances: Mapped[list[Instance]] = relationship(back_populates="series")

    # A study's series, and whether it has one of a modality (ModalitiesInStudy), from
    # the index alone.
    __table_args__ = (Index("ix_series_study_modality", "study_fk", "modality"),)


class Instance(Base):
    """One SOP instance. `rejection_code` ("113001^DCM" ...) is set when IOCM rejects it;
    query/retrieve views filter on it (core.db.views)."""

    __tablename__ = "instance"

    pk: Mapped[int] = mapped_column(BigPK, primary_key=True)
    # Indexed with rejection_code (views read the index alone): see __table_args__.
    series_fk: Mapped[int] = mapped_column(ForeignKey("series.pk"))
    sop_iuid: Mapped[str] = mapped_column(String, unique=True)
    sop_cuid: Mapped[str] = mapped_column(String, index=True)
    instance_number: Mapped[int | None] = mapped_column(Integer)
    content_date: Mapped[str | None] = mapped_column(String)
    content_time: Mapped[str | None] = mapped_column(String)
    rejection_code: Mapped[str | None] = mapped_column(String)
    source_aet: Mapped[str | None] = mapped_column(String)
    attrs: Mapped[str] = mapped_column(Text, default="{}")
    created: Mapped[datetime] = mapped_column(DateTime)
    updated: Mapped[datetime] = mapped_column(DateTime)

    series: Mapped[Series] = relationship(back_populates="instances")
    locations: Mapped[list[Location]] = relationship(back_populates="instance")

    # Only rejected instances are indexed (with their series: the views find the series and
    # studies with a rejected instance here alone); the regular view's rejection_code IS
    # NULL is answered by the series_fk index, not by a walk over this one.
    __table_args__ = (
        Index("ix_instance_series_fk_rejection_code", "series_fk", "rejection_code"),
        Index(
            "ix_instance_rejected",
            "rejection_code",
            "series_fk",
            sqlite_where=text("rejection_code IS NOT NULL"),
            postgresql_where=text("rejection_code IS NOT NULL"),
        ),
    )


class LocationStatus:
    OK = "OK"
    # Replaced or deleted: its file is removed after the commit, then the row.
    TO_DELETE = "TO_DELETE"


class Location(Base):
    """Where an instance's file lives: storage, relative path, size, MD5 of the file,
    and the transfer syntax it was stored in (as received)."""

    __tablename__ = "location"

    pk: Mapped[int] = mapped_column(BigPK, primary_key=True)
    instance_fk: Mapped[int | None] = mapped_column(ForeignKey("instance.pk"), index=True)
    storage_id: Mapped[str] = mapped_column(String)
    storage_path: Mapped[str] = mapped_column(String)
    size: Mapped[int] = mapped_column(BigInteger)
    digest: Mapped[str] = mapped_column(String)
    transfer_syntax_uid: Mapped[str] = mapped_column(String)
    status: Mapped[str] = mapped_column(String, default=LocationStatus.OK, index=True)
    created: Mapped[datetime] = mapped_column(DateTime)

    instance: Mapped[Instance | None] = relationship(back_populates="locations")

    __table_args__ = (Index("ix_location_storage_id_storage_path", "storage_id", "storage_path"),)


class StgCmtStatus:
    """Outcome of a storage commitment the archive requested (dcm4chee's StgCmtResult)."""

    PENDING = "PENDING"
    COMPLETED = "COMPLETED"
    WARNING = "WARNING"
    FAILED = "FAILED"


class StgCmtResult(Base):
    """A storage commitment the archive requested of a remote AE: PENDING until its
    N-EVENT-REPORT arrives, then COMPLETED (no failures), WARNING (some) or FAILED (all,
    or the N-ACTION failed: `message` says why). Purged a day after its last update."""

    __tablename__ = "stgcmt_result"

    pk: Mapped[int] = mapped_column(BigPK, primary_key=True)
    transaction_uid: Mapped[str] = mapped_column(String, unique=True)
    study_iuid: Mapped[str] = mapped_column(String, index=True)
    series_iuid: Mapped[str | None] = mapped_column(String)
    sop_iuid: Mapped[str | None] = mapped_column(String)
    exporter_id: Mapped[str | None] = mapped_column(String)
    local_aet: Mapped[str] = mapped_column(String)
    remote_aet: Mapped[str] = mapped_column(String)
    requested: Mapped[int] = mapped_column(Integer)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String, index=True)
    message: Mapped[str | None] = mapped_column(String)
    created: Mapped[datetime] = mapped_column(DateTime)
    updated: Mapped[datetime] = mapped_column(DateTime, index=True)


class TaskStatus(StrEnum):
    """dcm4chee's task statuses; COMPLETED, WARNING, FAILED and CANCELED are done."""

    SCHEDULED = "SCHEDULED"
    IN_PROCESS = "IN PROCESS"
    COMPLETED = "COMPLETED"
    WARNING = "WARNING"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    SCHEDULED_FOR_RETRY = "SCHEDULED FOR RETRY"


class Task(Base):
    """One unit of deferred or outbound work (export, retrieve, commitment, IAN...): a row
    that survives restarts, run by a node of `device` that claims it (`claimed_by`, until
    `lease_until`, extended while it runs; once it ends, `claimed_by` still names the node
    that ran it last). `parameters` is JSON text read by the handler of `type`."""

    __tablename__ = "task"

    pk: Mapped[int] = mapped_column(BigPK, primary_key=True)
    queue: Mapped[str] = mapped_column(String)
    type: Mapped[str] = mapped_column(String)
    status: Mapped[str] = mapped_column(String)
    device: Mapped[str] = mapped_column(String)
    batch_id: Mapped[str | None] = mapped_column(String, index=True)
    study_iuid: Mapped[str | None] = mapped_column(String, index=True)
    local_aet: Mapped[str | None] = mapped_column(String)
    remote_aet: Mapped[str | None] = mapped_column(String)
    created_time: Mapped[datetime] = mapped_column(DateTime)
    updated_time: Mapped[datetime] = mapped_column(DateTime)
    scheduled_time: Mapped[datetime] = mapped_column(DateTime)
    started_time: Mapped[datetime | None] = mapped_column(DateTime)
    ended_time: Mapped[datetime | None] = mapped_column(DateTime)
    num_failures: Mapped[int] = mapped_column(Integer, default=0)
    error_message: Mapped[str | None] = mapped_column(Text)
    outcome_message: Mapped[str | None] = mapped_column(Text)
    parameters: Mapped[str] = mapped_column(Text, default="{}")
    completed: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    remaining: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime)

    # The next due task of a queue, and the counts per queue and status, are range scans
    # of the first index; a page of a queue's tasks newest first (by pk, which grows with
    # creation), with or without a status, walks the second or third backwards.
    __table_args__ = (
        Index("ix_task_queue_status_scheduled_time", "queue", "status", "scheduled_time"),
        Index("ix_task_queue_pk", "queue", "pk"),
        Index("ix_task_queue_status_pk", "queue", "status", "pk"),
    )


# -- Modality Worklist (issue 15, mwl) -------------------------------------------------------


class MWLItem(Base):
    """A requested procedure with one of its scheduled procedure steps (dcm4chee's
    mwl_item), of a patient. The columns are what C-FIND and the console match on;
    `attrs` holds the whole item (without the patient's attributes, which the patient row
    keeps) as DICOM JSON, the ScheduledProcedureStepSequence included, kept in step with
    the columns. `sps_status` is one of core.config.SPSStatus."""

    __tablename__ = "mwl_item"

    pk: Mapped[int] = mapped_column(BigPK, primary_key=True)
    patient_fk: Mapped[int] = mapped_column(ForeignKey("patient.pk"), index=True)
    accession_number: Mapped[str | None] = mapped_column(String, index=True)
    requested_procedure_id: Mapped[str | None] = mapped_column(String, index=True)
    requested_procedure_description: Mapped[str | None] = mapped_column(String)
    study_iuid: Mapped[str] = mapped_column(String)
    sps_id: Mapped[str] = mapped_column(String)
    modality: Mapped[str | None] = mapped_column(String)
    sps_start_date: Mapped[str | None] = mapped_column(String)
    sps_start_time: Mapped[str | None] = mapped_column(String)
    performing_physician: Mapped[str | None] = mapped_column(String)
    performing_physician_upper: Mapped[str | None] = mapped_column(String)
    sps_status: Mapped[str] = mapped_column(String)
    sps_description: Mapped[str | None] = mapped_column(String)
    attrs: Mapped[str] = mapped_column(Text, default="{}")
    created: Mapped[datetime] = mapped_column(DateTime)
    updated: Mapped[datetime] = mapped_column(DateTime)

    station_aets: Mapped[list[MWLStationAET]] = relationship(
        back_populates="item", cascade="all, delete-orphan", passive_deletes=True
    )

    # A modality's query: a date (and time) range with a modality and a status to hide,
    # served by the first index; the console's list sorts on the second.
    __table_args__ = (
        Index("uq_mwl_item_study_iuid_sps_id", "study_iuid", "sps_id", unique=True),
        Index("ix_mwl_item_sps_start", "sps_start_date", "sps_start_time", "modality"),
        Index("ix_mwl_item_modality_sps_start", "modality", "sps_start_date", "sps_start_time"),
        Index("ix_mwl_item_sps_status", "sps_status"),
    )


class MWLStationAET(Base):
    """A Scheduled Station AE Title (0040,0001) of an MWL item (dcm4chee's
    sps_station_aet: the attribute may have several values)."""

    __tablename__ = "mwl_station_aet"

    mwl_item_fk: Mapped[int] = mapped_column(
        ForeignKey("mwl_item.pk", ondelete="CASCADE"), primary_key=True
    )
    station_aet: Mapped[str] = mapped_column(String, primary_key=True)

    item: Mapped[MWLItem] = relationship(back_populates="station_aets")

    # The items scheduled for a station, from the index alone.
    __table_args__ = (Index("ix_mwl_station_aet_station_aet", "station_aet", "mwl_item_fk"),)


class IDSequence(Base):
    """The last value handed out by each of dcm4chee's ID generators (AccessionNumber,
    RequestedProcedureID, ScheduledProcedureStepID...): taken by one UPDATE ... RETURNING,
    whose row lock serialises concurrent takers on PostgreSQL."""

    __tablename__ = "id_sequence"

    name: Mapped[str] = mapped_column(String, primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


# -- UPS (issue 15, part "ups"): Unified Procedure Step work items and their subscribers --


class UPSState(StrEnum):
    """dcm4chee's UPSState: the Procedure Step State (0074,1000) of a work item."""

    SCHEDULED = "SCHEDULED"
    IN_PROGRESS = "IN PROGRESS"
    CANCELED = "CANCELED"
    COMPLETED = "COMPLETED"


class UPS(Base):
    """A Unified Procedure Step work item (dcm4chee's `ups`). The columns are what the
    UPS C-FIND and the console match and sort on; `attrs` holds the work item's
    attributes as DICOM JSON (input and output information, progress, performed
    procedure...), without the patient's when it is linked to a patient (`patient_fk`,
    whose attributes are the patient row's). A work item without a Scheduled Procedure
    Step Start DateTime (`start_date_time` NULL) is a template: it raises no events and
    C-FIND does not return it. `transaction_uid` is set while IN PROGRESS, with the AE
    that claimed it (`performer_aet`)."""

    __tablename__ = "ups"

    pk: Mapped[int] = mapped_column(BigPK, primary_key=True)
    ups_iuid: Mapped[str] = mapped_column(String, unique=True)
    patient_fk: Mapped[int | None] = mapped_column(ForeignKey("patient.pk"), index=True)
    state: Mapped[str] = mapped_column(String, index=True)
    transaction_uid: Mapped[str | None] = mapped_column(String)
    performer_aet: Mapped[str | None] = mapped_column(String)
    # DT as received (YYYYMMDDHHMMSS...), compared as text like dates and times.
    start_date_time: Mapped[str | None] = mapped_column(String, index=True)
    expected_end_date_time: Mapped[str | None] = mapped_column(String)
    expiration_date_time: Mapped[str | None] = mapped_column(String)
    priority: Mapped[str | None] = mapped_column(String, index=True)
    label: Mapped[str | None] = mapped_column(String)
    worklist_label: Mapped[str | None] = mapped_column(String, index=True)
    input_readiness_state: Mapped[str | None] = mapped_column(String)
    # The first item of Scheduled Workitem Code Sequence: DICOM_EXPORT^99DCM4CHEE...
    workitem_code: Mapped[str | None] = mapped_column(String, index=True)
    workitem_scheme: Mapped[str | None] = mapped_column(String)
    workitem_meaning: Mapped[str | None] = mapped_column(String)
    # The first item of Scheduled Station Name Code Sequence (its Code Value: a station,
    # or the AE that is to perform the work).
    station_name: Mapped[str | None] = mapped_column(String, index=True)
    # Study Instance UID, or the first Referenced Request's.
    study_iuid: Mapped[str | None] = mapped_column(String, index=True)
    accession_number: Mapped[str | None] = mapped_column(String)
    admission_id: Mapped[str | None] = mapped_column(String)
    attrs: Mapped[str] = mapped_column(Text, default="{}")
    created: Mapped[datetime] = mapped_column(DateTime)
    updated: Mapped[datetime] = mapped_column(DateTime, index=True)

    subscriptions: Mapped[list[UPSSubscription]] = relationship(
        back_populates="ups", cascade="all, delete-orphan", passive_deletes=True
    )


class UPSSubscription(Base):
    """A subscriber AE of one work item: it is sent that item's events. With
    `deletion_lock` the item is kept until the subscriber unsubscribes."""

    __tablename__ = "ups_subscription"

    pk: Mapped[int] = mapped_column(BigPK, primary_key=True)
    ups_fk: Mapped[int] = mapped_column(ForeignKey("ups.pk", ondelete="CASCADE"))
    subscriber_aet: Mapped[str] = mapped_column(String, index=True)
    deletion_lock: Mapped[bool] = mapped_column(Boolean, default=False)
    created: Mapped[datetime] = mapped_column(DateTime)

    ups: Mapped[UPS] = relationship(back_populates="subscriptions")

    __table_args__ = (UniqueConstraint("ups_fk", "subscriber_aet"),)


class UPSGlobalSubscription(Base):
    """A subscriber AE of every work item (the UPS Global Subscription instance), or of
    those that match `matching_keys` (the Filtered Global Subscription instance: the
    keys as DICOM JSON). New work items get a UPSSubscription of each that matches."""

    __tablename__ = "ups_global_subscription"

    pk: Mapped[int] = mapped_column(BigPK, primary_key=True)
    subscriber_aet: Mapped[str] = mapped_column(String, unique=True)
    deletion_lock: Mapped[bool] = mapped_column(Boolean, default=False)
    matching_keys: Mapped[str | None] = mapped_column(Text)
    created: Mapped[datetime] = mapped_column(DateTime)


# -- mpps: Modality Performed Procedure Steps (issue 15) ----------------------------------


class MPPSStatus(StrEnum):
    """The Performed Procedure Step Status of an MPPS, as dcm4chee's MPPS.Status."""

    IN_PROGRESS = "IN PROGRESS"
    COMPLETED = "COMPLETED"
    DISCONTINUED = "DISCONTINUED"


class MPPS(Base):
    """A Modality Performed Procedure Step received by N-CREATE and updated by N-SET while
    IN PROGRESS (dcm4chee's mpps table). The columns are what the console lists and
    searches (values as received, '' when absent); `attrs` is the whole data set as DICOM
    JSON, N-SETs merged in. The discontinuation reason is the first item of
    ProcedureStepDiscontinuationReasonCodeSequence."""

    __tablename__ = "mpps"

    pk: Mapped[int] = mapped_column(BigPK, primary_key=True)
    sop_iuid: Mapped[str] = mapped_column(String, unique=True)
    pps_id: Mapped[str] = mapped_column(String)
    status: Mapped[str] = mapped_column(String, index=True)
    reason_code: Mapped[str | None] = mapped_column(String)
    reason_scheme: Mapped[str | None] = mapped_column(String)
    reason_meaning: Mapped[str | None] = mapped_column(String)
    start_date: Mapped[str] = mapped_column(String)
    start_time: Mapped[str] = mapped_column(String)
    end_date: Mapped[str] = mapped_column(String)
    end_time: Mapped[str] = mapped_column(String)
    study_iuid: Mapped[str] = mapped_column(String, index=True)
    accession_number: Mapped[str] = mapped_column(String, index=True)
    station_aet: Mapped[str] = mapped_column(String)
    station_name: Mapped[str] = mapped_column(String)
    modality: Mapped[str] = mapped_column(String)
    patient_id: Mapped[str] = mapped_column(String)
    patient_name: Mapped[str] = mapped_column(String)
    calling_aet: Mapped[str] = mapped_column(String)
    called_aet: Mapped[str] = mapped_column(String)
    attrs: Mapped[str] = mapped_column(Text, default="{}")
    created: Mapped[datetime] = mapped_column(DateTime)
    updated: Mapped[datetime] = mapped_column(DateTime)

    # The console's list, newest start first, seeks on this (core.services.paging).
    __table_args__ = (Index("ix_mpps_start", "start_date", "start_time", "pk"),)
