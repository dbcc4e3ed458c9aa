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

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
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
    study_fk: Mapped[int] = mapped_column(ForeignKey("study.pk"), index=True)
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
