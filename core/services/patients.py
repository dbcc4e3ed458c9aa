"""Patients: the console's patient management, as dcm4chee's PatientService does it.

Search (with the matching module of C-FIND, in the database), the studies of a patient,
create, edit demographics, supplement the issuer of patient ID, merge one patient into
another, delete a patient without studies.

Edits keep the patient row's columns and its `attrs` JSON (what C-FIND answers from) in
step, and set `edited`: retrieved objects then carry the index's patient attributes.
Patients are told apart as the indexer tells them apart (core.index.rules): by
Patient ID, and by issuer where both sides have one. So a Patient ID may be shared only by
patients that all have issuers, all different; creating or changing an ID refuses anything
else, or a later C-STORE could not know its patient. A merged patient keeps its row with
`merged_into_fk` (and no studies): the indexer follows it, so a later object of the merged
patient lands under the patient it was merged into. Merged patients are hidden from
searches unless asked for, as dcm4chee hides them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.orm import Session

from core.db import matching
from core.db.columns import patient_columns
from core.db.models import MWLItem, MWLStationAET, Patient, Study
from core.dicom import attributes
from core.index.rules import LOCK
from core.services import paging, query, rows, ups
from core.services.context import ServiceContext, Target, reading, writing
from core.services.paging import Page
from core.services.rows import StudyRow
from core.services.studies import STUDY_ORDER
from core.services.typed_values import Field, ValueRefused, clean, entry_text, updated

_patient = Patient.__table__
_study = Study.__table__
_target = _patient.alias("target")


class PatientError(ValueError):
    """An operation refused, with the reason to show (duplicate ID, studies left...)."""


# -- demographics ------------------------------------------------------------------------


@dataclass(frozen=True)
class Demographics:
    """The patient attributes the console edits, as typed: PN as `Family^Given`, other
    names separated by backslashes, the birth date as YYYYMMDD (or YYYY-MM-DD), sex M, F
    or O. An empty value removes the attribute."""

    name: str = ""
    patient_id: str = ""
    issuer: str = ""
    birth_date: str = ""
    sex: str = ""
    other_names: str = ""
    comments: str = ""


# The fields of Demographics, as attributes.
FIELDS = {
    "name": Field("PatientName", "PN", "Patient name"),
    "patient_id": Field("PatientID", "LO", "Patient ID"),
    "issuer": Field("IssuerOfPatientID", "LO", "Issuer of patient ID"),
    "birth_date": Field("PatientBirthDate", "DA", "Birth date"),
    "sex": Field("PatientSex", "CS", "Sex"),
    "other_names": Field("OtherPatientNames", "PN", "Other patient names", multiple=True),
    "comments": Field("PatientComments", "LT", "Patient comments"),
}


def _clean(name: str, text: str) -> str:
    """The value of a field as stored, or PatientError naming the field and the problem."""
    field = FIELDS[name]
    if name == "sex" and text.strip().upper() not in ("", "M", "F", "O"):
        raise PatientError(f"{field.label} must be M, F or O, not {text!r}")
    try:
        return clean(field, text)
    except ValueRefused as exc:
        raise PatientError(str(exc)) from None


def demographics_of(attrs: dict[str, Any]) -> Demographics:
    """The editable attributes of a patient's `attrs`."""
    return Demographics(
        **{name: entry_text(attrs.get(attributes.key(f.tag))) for name, f in FIELDS.items()}
    )


def _apply(stored: dict[str, Any], values: dict[str, str]) -> dict[str, Any]:
    """`stored` attrs with the fields in `values` (already clean) set or removed."""
    return updated(stored, ((FIELDS[name], value) for name, value in values.items()))


def _cleaned(demographics: Demographics) -> dict[str, str]:
    return {f.name: _clean(f.name, getattr(demographics, f.name)) for f in fields(demographics)}


# -- reading -----------------------------------------------------------------------------


def label(patient_id: str | None, issuer: str | None, name: str | None = None) -> str:
    """A patient as messages name it: `Doe^John (PID-1^^^HOSP)`."""
    ident = f"{patient_id or '(no ID)'}^^^{issuer}" if issuer else patient_id or "(no ID)"
    return f"{name} ({ident})" if name else ident


@dataclass(frozen=True)
class PatientSearch:
    """The search form: matching values as C-FIND takes them (wildcards `*` `?`, person
    names ignoring case, a birth date range `19700101-19791231`); `merged` also lists
    merged patients."""

    name: str = ""
    patient_id: str = ""
    issuer: str = ""
    birth_date: str = ""
    merged: bool = False

    def keys(self) -> dict[str, str]:
        """The matching keys, by keyword."""
        pairs = (
            ("PatientName", self.name),
            ("PatientID", self.patient_id),
            ("IssuerOfPatientID", self.issuer),
            ("PatientBirthDate", self.birth_date),
        )
        return {keyword: value.strip() for keyword, value in pairs if value.strip()}


@dataclass(frozen=True)
class PatientRow:
    """A patient in a result list; `merged_into` names the patient it was merged into."""

    pk: int
    patient_id: str
    issuer: str
    name: str
    birth_date: str
    sex: str
    studies: int
    merged_into: str | None


def _search_where(search: PatientSearch) -> list[ColumnElement[bool]]:
    # The one matching module, through the query the C-FIND SCP builds.
    keys = query.Query.of("PATIENT", search.keys()).keys
    where = matching.conditions("PATIENT", keys)
    if not search.merged:
        where.append(_patient.c.merged_into_fk.is_(None))
    return where


def _row(row: Any) -> PatientRow:
    return PatientRow(
        pk=row.pk,
        patient_id=row.patient_id or "",
        issuer=row.issuer or "",
        name=row.patient_name or "",
        birth_date=row.birth_date or "",
        sex=row.sex or "",
        studies=row.studies,
        merged_into=label(row.target_id, row.target_issuer) if row.target_pk else None,
    )


def _patients_select() -> Any:
    studies = (
        select(func.count())
        .select_from(_study)
        .where(_study.c.patient_fk == _patient.c.pk)
        .correlate(_patient)
        .scalar_subquery()
    )
    return select(
        _patient.c.pk,
        _patient.c.patient_id,
        _patient.c.issuer,
        _patient.c.patient_name,
        _patient.c.birth_date,
        _patient.c.sex,
        studies.label("studies"),
        _target.c.pk.label("target_pk"),
        _target.c.patient_id.label("target_id"),
        _target.c.issuer.label("target_issuer"),
    ).select_from(_patient.outerjoin(_target, _patient.c.merged_into_fk == _target.c.pk))


# By name (family name first), then Patient ID: the sort code of every console list.
PATIENT_ORDER = ("PatientName", "PatientID")


def search(
    services: ServiceContext,
    search: PatientSearch,
    *,
    offset: int = 0,
    limit: int = 50,
    total: int | None = None,
    near: Page[PatientRow] | None = None,
) -> Page[PatientRow]:
    """One page of the patients matching `search` (with or without studies), by name,
    with the number of matches (counted unless `total` is given); paged as every console
    list (core.services.paging: `near`, the page shown before, makes the next a seek).
    Raises MatchingError for a value that cannot be matched (e.g. a birth date that is no
    date)."""
    listing = paging.Listing(
        _patient, tuple(_search_where(search)), query.sort_key("PATIENT", PATIENT_ORDER)
    )
    with services.db.read() as session:

        def found(pks: list[Any]) -> dict[Any, PatientRow]:
            statement = _patients_select().where(_patient.c.pk.in_(pks))
            return {r.pk: _row(r) for r in session.execute(statement)}

        return paging.read(
            session, listing, found, offset=offset, limit=limit, total=total, near=near
        )


def get(target: Target, pk: int) -> PatientRow:
    """One patient; PatientError when it is gone."""
    with reading(target) as session:
        row = session.execute(_patients_select().where(_patient.c.pk == pk)).first()
    if row is None:
        raise PatientError("The patient no longer exists (deleted meanwhile?)")
    return _row(row)


def demographics(target: Target, pk: int) -> Demographics:
    """The current editable attributes of a patient (to fill the edit form)."""
    with reading(target) as session:
        return demographics_of(attributes.loads(_patient_or_error(session, pk).attrs))


def find_by_id(services: ServiceContext, text: str) -> PatientRow:
    """The patient named by `PID` or `PID^^^ISSUER` (as dcm4chee writes them), matched as
    the indexer matches; PatientError when none or several match."""
    patient_id, _, issuer = text.strip().partition("^^^")
    with services.db.read() as session:
        return find_in(session, patient_id, issuer)


def find_in(session: Session, patient_id: str, issuer: str = "") -> PatientRow:
    """The patient of `patient_id` and `issuer` ("" for none), matched as the indexer
    matches, read in `session` (for use cases that write in the same transaction);
    PatientError when none or several match."""
    patient_id, issuer = patient_id.strip(), issuer.strip()
    if not patient_id:
        raise PatientError("Give a patient ID (PID, or PID^^^ISSUER)")
    found = lookup(session, patient_id, issuer)
    if found is None:
        raise PatientError(f"No patient with ID {label(patient_id, issuer)}")
    return found


def lookup(target: Target, patient_id: str, issuer: str = "") -> PatientRow | None:
    """As `find_in`, but None when no patient has the ID (merged patients included:
    `merged_into` says so); HL7 ADT creates the patient then."""
    patient_id, issuer = patient_id.strip(), issuer.strip()
    with reading(target) as session:
        rows = [
            r
            for r in session.execute(_patients_select().where(_patient.c.patient_id == patient_id))
            if not issuer or not r.issuer or r.issuer == issuer
        ]
    exact = [r for r in rows if (r.issuer or "") == issuer]
    if len(exact) == 1:
        return _row(exact[0])
    if len(rows) > 1:
        raise PatientError(
            f"Patient ID {patient_id} names {len(rows)} patients: add the issuer "
            f"({', '.join(label(r.patient_id, r.issuer) for r in rows)})"
        )
    return _row(rows[0]) if rows else None


def studies(
    services: ServiceContext,
    pk: int,
    *,
    offset: int = 0,
    limit: int = 50,
    near: Page[StudyRow] | None = None,
) -> Page[StudyRow]:
    """One page of the studies of a patient, as the Studies list shows them (newest
    first, the regular view as C-FIND answers), limited to this patient."""
    study_query = query.Query.of("STUDY", {}, patient_pk=pk)
    return rows.page(services, study_query, STUDY_ORDER, offset=offset, limit=limit, near=near)


# -- changes -----------------------------------------------------------------------------


def _lock(session: Session, patient_ids: Iterable[str | None]) -> None:
    """On PostgreSQL, serialise with stores of these Patient IDs (the indexer takes the
    same locks), in one order so that two edits cannot deadlock. SQLite has one writer."""
    if session.get_bind().dialect.name != "postgresql":
        return
    for patient_id in sorted({p for p in patient_ids if p}):
        session.execute(LOCK, {"k": "P" + patient_id})


def _patient_or_error(session: Session, pk: int) -> Patient:
    patient = session.get(Patient, pk)
    if patient is None:
        raise PatientError("The patient no longer exists (deleted meanwhile?)")
    return patient


def _name(patient: Patient) -> str:
    return label(patient.patient_id, patient.issuer, patient.patient_name)


def _check_unused(session: Session, patient_id: str, issuer: str, exclude: int | None) -> None:
    """Refuse an ID the indexer could not tell from another patient's: the same ID with
    the same issuer, or where either has no issuer."""
    statement = select(Patient).where(Patient.patient_id == patient_id)
    if issuer:
        statement = statement.where((Patient.issuer == issuer) | Patient.issuer.is_(None))
    if exclude is not None:
        statement = statement.where(Patient.pk != exclude)
    other = session.scalars(statement.limit(1)).first()
    if other is not None:
        why = "" if other.issuer or not issuer else " (it has no issuer, so it matches any)"
        raise PatientError(
            f"Patient ID {label(patient_id, issuer)} is already used by {_name(other)}{why}"
        )


def _store(patient: Patient, attrs: dict[str, Any], now: datetime) -> None:
    patient.attrs = attributes.dumps(attrs)
    for column, value in patient_columns(attrs).items():
        setattr(patient, column, value)
    patient.updated = now
    patient.edited = now


def create(target: Target, demographics: Demographics) -> int:
    """Create a patient without studies (dcm4chee's "create patient"); its primary key.
    A later object with this Patient ID (and issuer, or none) is stored under it."""
    values = _cleaned(demographics)
    if not values["patient_id"]:
        raise PatientError("A patient needs a Patient ID")
    now = datetime.now()
    with writing(target) as session:
        _lock(session, [values["patient_id"]])
        _check_unused(session, values["patient_id"], values["issuer"], None)
        patient = Patient(created=now)
        _store(patient, _apply({}, values), now)
        session.add(patient)
        session.flush()
        return patient.pk


def edit(target: Target, pk: int, demographics: Demographics) -> None:
    """Replace the editable attributes of a patient (others in `attrs` stay). A changed
    Patient ID or issuer must not name another patient."""
    values = _cleaned(demographics)
    if not values["patient_id"]:
        raise PatientError("A patient needs a Patient ID")
    with writing(target) as session:
        patient = _patient_or_error(session, pk)
        if patient.merged_into_fk is not None:
            raise PatientError(f"{_name(patient)} was merged: edit the patient it was merged into")
        _lock(session, [patient.patient_id, values["patient_id"]])
        if (values["patient_id"], values["issuer"]) != (patient.patient_id, patient.issuer or ""):
            _check_unused(session, values["patient_id"], values["issuer"], pk)
        _store(patient, _apply(attributes.loads(patient.attrs), values), datetime.now())


def supplement_issuer(services: ServiceContext, pk: int, issuer: str) -> None:
    """Give a patient without an issuer of patient ID one (dcm4chee's "supplement
    issuer"); refused when it has one, or another patient has this ID and issuer."""
    value = _clean("issuer", issuer)
    if not value:
        raise PatientError("Give the issuer of patient ID to supplement")
    with services.db.write() as session:
        patient = _patient_or_error(session, pk)
        if patient.issuer:
            raise PatientError(f"{_name(patient)} already has an issuer: edit it instead")
        if not patient.patient_id:
            raise PatientError(f"{_name(patient)} has no Patient ID to qualify")
        _lock(session, [patient.patient_id])
        other = session.scalars(
            select(Patient).where(Patient.patient_id == patient.patient_id, Patient.issuer == value)
        ).first()
        if other is not None:
            raise PatientError(
                f"Patient ID {label(patient.patient_id, value)} is already used by {_name(other)}"
            )
        _store(patient, _apply(attributes.loads(patient.attrs), {"issuer": value}), datetime.now())


def _merge_target(session: Session, patient: Patient) -> str:
    target = session.get(Patient, patient.merged_into_fk)
    return _name(target) if target is not None else "another patient"


def merge(on: Target, source_pk: int, target_pk: int) -> int:
    """Merge patient `source_pk` into `target_pk`: its studies move to the target, it
    keeps `merged_into_fk` and no studies. Returns how many studies moved. Merging a
    patient into itself, a merged patient, or into a merged patient is refused, so no
    merge chain can close a circle. In a transaction of its own, or `on` the caller's
    session (an HL7 merge creates the patients it names in the same one)."""
    if source_pk == target_pk:
        raise PatientError("A patient cannot be merged into itself")
    now = datetime.now()
    with writing(on) as session:
        source = _patient_or_error(session, source_pk)
        target = _patient_or_error(session, target_pk)
        _lock(session, [source.patient_id, target.patient_id])
        # Read again under the locks: a concurrent merge may have changed them.
        session.refresh(source, with_for_update=True)
        session.refresh(target, with_for_update=True)
        if source.merged_into_fk is not None:
            raise PatientError(
                f"{_name(source)} was already merged into {_merge_target(session, source)}"
            )
        if target.merged_into_fk is not None:
            target_of = _merge_target(session, target)
            raise PatientError(
                f"{_name(target)} was merged into {target_of}: merge into that patient"
            )
        moved = session.execute(
            update(Study).where(Study.patient_fk == source_pk).values(patient_fk=target_pk)
        ).rowcount
        # Its worklist items follow it, as dcm4chee moves them on merge.
        session.execute(
            update(MWLItem).where(MWLItem.patient_fk == source_pk).values(patient_fk=target_pk)
        )
        # Its work items follow it (dcm4chee's moveUPS).
        ups.move_patient(session, source_pk, target_pk)
        source.merged_into_fk = target_pk
        source.updated = now
        # The moved studies' objects are retrieved with the target's attributes.
        target.edited = now
        target.updated = now
        return int(moved or 0)


def delete_patient(services: ServiceContext, pk: int) -> int:
    """Delete a patient without studies, with the patients merged into it (they are its
    aliases, as dcm4chee deletes them along) and their worklist items. Returns how many
    patient rows went."""
    with services.db.write() as session:
        patient = _patient_or_error(session, pk)
        _lock(session, [patient.patient_id])
        # The patient and every patient merged into it, directly or along a chain.
        family = [pk]
        frontier = [pk]
        while frontier:
            frontier = list(
                session.scalars(select(Patient.pk).where(Patient.merged_into_fk.in_(frontier)))
            )
            family += [p for p in frontier if p not in family]
        studies = session.execute(
            select(func.count()).select_from(Study).where(Study.patient_fk.in_(family))
        ).scalar_one()
        if studies:
            raise PatientError(
                f"{_name(patient)} has {studies} stud{'y' if studies == 1 else 'ies'}: "
                "delete them or merge the patient instead"
            )
        # Their worklist items go along (dcm4chee's removeMPPSMWLUWLAndPatient).
        items = select(MWLItem.pk).where(MWLItem.patient_fk.in_(family))
        session.execute(delete(MWLStationAET).where(MWLStationAET.mwl_item_fk.in_(items)))
        session.execute(delete(MWLItem).where(MWLItem.patient_fk.in_(family)))
        # Its work items go with it, as dcm4chee deletes them along.
        ups.delete_of_patients(session, family)
        # Merged patients first: each row is referenced by those merged into it.
        for member in reversed(family):
            session.execute(delete(Patient).where(Patient.pk == member))
        return len(family)
