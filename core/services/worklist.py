"""Modality Worklist items: the one use-case module for them (the console's MWL tab, the
MWL SCP, MPPS and HL7 orders all come here), as dcm4chee's ProcedureService keeps them.

An item is a requested procedure with one scheduled procedure step (SPS), of a patient.
Its attributes (without the patient's, which the patient row keeps) are stored whole as
DICOM JSON, the ScheduledProcedureStepSequence included, and the columns that matching
needs are derived from them (core.db.columns.mwl_columns) on every change. Items are
unique by (Study Instance UID, SPS ID), the key MPPS and HL7 find them by. IDs left
blank are generated as dcm4chee's default generators do (`A-%08d`, `RP-%08d`,
`SPS-%08d`), a Study Instance UID left blank gets a new UID, a status left blank is
SCHEDULED.

Functions that change items, and the lookups MPPS and HL7 need, take a ServiceContext
(a transaction of their own) or a Session (the caller's transaction, e.g. an MPPS
N-CREATE that records the MPPS and moves its steps together).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from pydicom import Dataset
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.uid import generate_uid
from sqlalchemy import ColumnElement, bindparam, delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from core.config import SPSStatus
from core.db import matching
from core.db.columns import SPS_SEQUENCE, mwl_columns, scheduled_step, station_aets
from core.db.models import IDSequence, MWLItem, MWLStationAET, Patient, Study
from core.dicom import attributes
from core.dicom.uids import is_uid
from core.services import paging, patients
from core.services.context import ServiceContext, Target
from core.services.context import reading as _reading
from core.services.context import writing as _writing
from core.services.csv_file import write_csv
from core.services.paging import Page
from core.services.patients import PatientError
from core.services.studies import dicom_date
from core.services.typed_values import Field, ValueRefused, clean, entry_text, updated

_item = MWLItem.__table__
_station = MWLStationAET.__table__
_patient = Patient.__table__
_sequence = IDSequence.__table__


class WorklistError(ValueError):
    """An operation refused, with the reason to show (unknown patient, duplicate step,
    a value that is not valid for its attribute...)."""


# -- the form -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemForm:
    """An MWL item as typed (console) or received (HL7): the patient by ID and issuer,
    then the requested procedure and its scheduled step. Blank IDs are generated; several
    station AE titles are separated by backslashes; dates YYYYMMDD (or YYYY-MM-DD), times
    HHMMSS. `extra` and `sps_extra` are further attributes of the item and of its step as
    DICOM JSON entries by tag ("00401001": {...}), e.g. the codes of an HL7 order; the
    form's own fields win over them."""

    patient_id: str = ""
    issuer: str = ""
    accession_number: str = ""
    requested_procedure_id: str = ""
    requested_procedure_description: str = ""
    study_iuid: str = ""
    sps_id: str = ""
    station_aets: str = ""
    modality: str = ""
    sps_start_date: str = ""
    sps_start_time: str = ""
    performing_physician: str = ""
    sps_status: str = SPSStatus.SCHEDULED.value
    sps_description: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)
    sps_extra: Mapping[str, Any] = field(default_factory=dict, compare=False)


# The form's attributes of the item, then of its scheduled procedure step.
ITEM_FIELDS = {
    "accession_number": Field("AccessionNumber", "SH", "Accession number"),
    "requested_procedure_id": Field("RequestedProcedureID", "SH", "Requested procedure ID"),
    "requested_procedure_description": Field(
        "RequestedProcedureDescription", "LO", "Requested procedure description"
    ),
    "study_iuid": Field("StudyInstanceUID", "UI", "Study Instance UID"),
}
SPS_FIELDS = {
    "sps_id": Field("ScheduledProcedureStepID", "SH", "SPS ID"),
    "station_aets": Field("ScheduledStationAETitle", "AE", "Station AE title", multiple=True),
    "modality": Field("Modality", "CS", "Modality"),
    "sps_start_date": Field("ScheduledProcedureStepStartDate", "DA", "SPS start date"),
    "sps_start_time": Field("ScheduledProcedureStepStartTime", "TM", "SPS start time"),
    "performing_physician": Field(
        "ScheduledPerformingPhysicianName", "PN", "Scheduled performing physician"
    ),
    "sps_status": Field("ScheduledProcedureStepStatus", "CS", "SPS status"),
    "sps_description": Field("ScheduledProcedureStepDescription", "LO", "SPS description"),
}

# dcm4chee's default ID generators (ArchiveDeviceFactory): sequence name and format.
GENERATORS = {
    "accession_number": ("AccessionNumber", "A-%08d"),
    "requested_procedure_id": ("RequestedProcedureID", "RP-%08d"),
    "sps_id": ("ScheduledProcedureStepID", "SPS-%08d"),
}
_SPECIFIC_CHARACTER_SET = attributes.key(attributes.SPECIFIC_CHARACTER_SET)


def _status(text: str) -> SPSStatus:
    value = text.strip().upper() or SPSStatus.SCHEDULED.value
    try:
        return SPSStatus(value)
    except ValueError:
        names = ", ".join(s.value for s in SPSStatus)
        raise WorklistError(f"SPS status must be one of {names}, not {text!r}") from None


def _cleaned(form: ItemForm) -> dict[str, str]:
    """The form's values as stored, or WorklistError naming the field and the problem."""
    values: dict[str, str] = {}
    for name, spec in (*ITEM_FIELDS.items(), *SPS_FIELDS.items()):
        text = getattr(form, name)
        if name == "sps_start_date":
            text = dicom_date(text.strip())
        try:
            values[name] = clean(spec, text)
        except ValueRefused as exc:
            raise WorklistError(str(exc)) from None
    if values["study_iuid"] and not is_uid(values["study_iuid"]):
        raise WorklistError(f"Study Instance UID {values['study_iuid']!r} is no UID")
    values["sps_status"] = _status(values["sps_status"]).value
    return values


def _item_attrs(stored: dict[str, Any], values: dict[str, str], form: ItemForm) -> dict[str, Any]:
    """`stored` item attributes with the form's extra attributes and values applied (an
    empty value removes its attribute)."""
    base = {k: v for k, v in stored.items() if k != SPS_SEQUENCE}
    base.update(form.extra)
    sps = {**scheduled_step(stored), **form.sps_extra}
    sps = updated(sps, ((SPS_FIELDS[n], values[n]) for n in SPS_FIELDS))
    # The character set belongs to the item, not to its step.
    charset = sps.pop(_SPECIFIC_CHARACTER_SET, None)
    attrs = updated(base, ((ITEM_FIELDS[n], values[n]) for n in ITEM_FIELDS))
    if charset is not None:
        attrs[_SPECIFIC_CHARACTER_SET] = charset
    attrs[SPS_SEQUENCE] = {"vr": "SQ", "Value": [sps]}
    return attrs


# -- sessions and generated IDs ------------------------------------------------------------


def next_id(target: Target, name: str, template: str) -> str:
    """The next value of the ID generator `name`, formatted by `template` (`A-%08d`).
    One UPDATE ... RETURNING takes it: on PostgreSQL its row lock makes concurrent takers
    wait for this transaction, so no value is handed out twice; SQLite has one writer."""
    with _writing(target) as session:
        take = (
            update(_sequence)
            .where(_sequence.c.name == name)
            .values(value=_sequence.c.value + 1)
            .returning(_sequence.c.value)
        )
        value = session.execute(take).scalar()
        if value is None:
            # The generator's first use; a concurrent first use inserts nothing more.
            dialect = session.get_bind().dialect.name
            new = (pg_insert if dialect == "postgresql" else sqlite_insert)(_sequence)
            session.execute(
                new.values(name=name, value=0).on_conflict_do_nothing(index_elements=["name"])
            )
            value = session.execute(take).scalar_one()
        return template % value


# -- rows ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class MWLRow:
    """An MWL item as lists show it, with its patient."""

    pk: int
    patient_pk: int
    patient_id: str
    issuer: str
    patient_name: str
    birth_date: str
    sex: str
    accession_number: str
    requested_procedure_id: str
    requested_procedure_description: str
    study_iuid: str
    sps_id: str
    station_aets: tuple[str, ...]
    modality: str
    sps_start_date: str
    sps_start_time: str
    performing_physician: str
    sps_status: SPSStatus
    sps_description: str
    created: datetime
    updated: datetime


def _select() -> Any:
    return select(
        _item,
        _patient.c.patient_id,
        _patient.c.issuer,
        _patient.c.patient_name,
        _patient.c.birth_date,
        _patient.c.sex,
    ).select_from(_item.join(_patient, _item.c.patient_fk == _patient.c.pk))


def _rows(session: Session, where: ColumnElement[bool]) -> list[MWLRow]:
    found = list(session.execute(_select().where(where)))
    stations: dict[int, list[str]] = {}
    if found:
        pks = [r.pk for r in found]
        for pk, title in session.execute(
            select(_station.c.mwl_item_fk, _station.c.station_aet).where(
                _station.c.mwl_item_fk.in_(pks)
            )
        ):
            stations.setdefault(pk, []).append(title)
    return [_row(r, stations.get(r.pk, [])) for r in found]


def _row(r: Any, titles: list[str]) -> MWLRow:
    return MWLRow(
        pk=r.pk,
        patient_pk=r.patient_fk,
        patient_id=r.patient_id or "",
        issuer=r.issuer or "",
        patient_name=r.patient_name or "",
        birth_date=r.birth_date or "",
        sex=r.sex or "",
        accession_number=r.accession_number or "",
        requested_procedure_id=r.requested_procedure_id or "",
        requested_procedure_description=r.requested_procedure_description or "",
        study_iuid=r.study_iuid,
        sps_id=r.sps_id,
        station_aets=tuple(sorted(titles)),
        modality=r.modality or "",
        sps_start_date=r.sps_start_date or "",
        sps_start_time=r.sps_start_time or "",
        performing_physician=r.performing_physician or "",
        sps_status=SPSStatus(r.sps_status),
        sps_description=r.sps_description or "",
        created=r.created,
        updated=r.updated,
    )


def get(target: Target, pk: int) -> MWLRow:
    """One item; WorklistError when it is gone."""
    with _reading(target) as session:
        found = _rows(session, _item.c.pk == pk)
    if not found:
        raise WorklistError("The MWL item no longer exists (deleted meanwhile?)")
    return found[0]


def form_of(target: Target, pk: int) -> ItemForm:
    """The form of a stored item (to fill the edit form)."""
    with _reading(target) as session:
        item = _item_or_error(session, pk)
        patient = session.get(Patient, item.patient_fk)
        attrs = attributes.loads(item.attrs)
    sps = scheduled_step(attrs)
    values = {
        name: entry_text(attrs.get(attributes.key(spec.tag))) for name, spec in ITEM_FIELDS.items()
    }
    values |= {
        name: entry_text(sps.get(attributes.key(spec.tag))) for name, spec in SPS_FIELDS.items()
    }
    return ItemForm(
        patient_id=(patient.patient_id or "") if patient else "",
        issuer=(patient.issuer or "") if patient else "",
        **values,
    )


def find_item(target: Target, study_iuid: str, sps_id: str) -> MWLRow | None:
    """The item of a Study Instance UID and SPS ID (the key MPPS references it by)."""
    with _reading(target) as session:
        found = _rows(session, (_item.c.study_iuid == study_iuid) & (_item.c.sps_id == sps_id))
    return found[0] if found else None


def find_by_accession(target: Target, accession_number: str) -> list[MWLRow]:
    """The items of an accession number (an order's steps), in order of creation."""
    with _reading(target) as session:
        found = _rows(session, _item.c.accession_number == accession_number)
    return sorted(found, key=lambda r: r.pk)


def find_by_study(target: Target, study_iuid: str) -> list[MWLRow]:
    """The items (steps) of a requested procedure's Study Instance UID, in order of
    creation."""
    with _reading(target) as session:
        found = _rows(session, _item.c.study_iuid == study_iuid)
    return sorted(found, key=lambda r: r.pk)


def item_attributes(target: Target, pk: int) -> dict[str, Any]:
    """The whole item as DICOM JSON, its patient's attributes included (as C-FIND
    returns it and the console's attribute view shows it)."""
    with _reading(target) as session:
        item = _item_or_error(session, pk)
        patient = session.get(Patient, item.patient_fk)
        return merged(patient.attrs if patient else "{}", item.attrs)


def merged(patient_attrs: str, item_attrs: str) -> dict[str, Any]:
    """An item's attributes (JSON text) with its patient's, ordered by tag."""
    attrs = {**attributes.loads(patient_attrs), **attributes.loads(item_attrs)}
    return dict(sorted(attrs.items()))


def to_dataset(attrs: dict[str, Any]) -> Dataset:
    """DICOM JSON as a Dataset (an item's, for C-FIND responses)."""
    return Dataset.from_json(attrs)


# -- changes ------------------------------------------------------------------------------


def _item_or_error(session: Session, pk: int) -> MWLItem:
    item = session.get(MWLItem, pk)
    if item is None:
        raise WorklistError("The MWL item no longer exists (deleted meanwhile?)")
    return item


def _patient_of(session: Session, form: ItemForm) -> patients.PatientRow:
    try:
        return patients.find_in(session, form.patient_id, form.issuer)
    except PatientError as exc:
        raise WorklistError(str(exc)) from None


def _check_unique(session: Session, study_iuid: str, sps_id: str, exclude: int | None) -> None:
    statement = select(_item.c.pk).where(_item.c.study_iuid == study_iuid, _item.c.sps_id == sps_id)
    if exclude is not None:
        statement = statement.where(_item.c.pk != exclude)
    if session.execute(statement.limit(1)).first() is not None:
        raise WorklistError(
            f"An MWL item with Study Instance UID {study_iuid} and SPS ID {sps_id} already exists"
        )


def _store(
    session: Session, item: MWLItem, attrs: dict[str, Any], now: datetime, *, new: bool
) -> list[str]:
    """Write `attrs` and the columns and station AE titles derived from them; returns the
    titles."""
    item.attrs = attributes.dumps(attrs)
    for column, value in mwl_columns(attrs).items():
        setattr(item, column, value)
    item.updated = now
    session.flush()
    if not new:
        session.execute(delete(_station).where(_station.c.mwl_item_fk == item.pk))
    titles = station_aets(attrs)
    if titles:
        session.execute(
            insert(_station), [{"mwl_item_fk": item.pk, "station_aet": t} for t in titles]
        )
    return titles


def _generate(session: Session, values: dict[str, str]) -> None:
    for name, (sequence, template) in GENERATORS.items():
        if not values[name]:
            values[name] = next_id(session, sequence, template)
    if not values["study_iuid"]:
        values["study_iuid"] = generate_uid()


def create_item(target: Target, form: ItemForm) -> MWLRow:
    """Create an item for the patient the form names (who must exist), generating the
    IDs and Study Instance UID left blank; WorklistError when the patient is unknown, a
    value is invalid, or an item with its Study Instance UID and SPS ID exists."""
    values = _cleaned(form)
    now = datetime.now()
    with _writing(target) as session:
        patient = _patient_of(session, form)
        _generate(session, values)
        _check_unique(session, values["study_iuid"], values["sps_id"], None)
        item = MWLItem(patient_fk=patient.pk, created=now)
        session.add(item)
        titles = _store(session, item, _item_attrs({}, values, form), now, new=True)
        # The row as a list reads it, from what was written (no second read).
        written = {c.name: getattr(item, c.name) for c in _item.c}
        return _row(
            SimpleNamespace(
                **written,
                patient_id=patient.patient_id,
                issuer=patient.issuer,
                patient_name=patient.name,
                birth_date=patient.birth_date,
                sex=patient.sex,
            ),
            titles,
        )


def update_item(target: Target, pk: int, form: ItemForm) -> MWLRow:
    """Replace the form's attributes of an item (its other attributes stay); the patient
    may change. IDs and the Study Instance UID left blank keep their stored values;
    WorklistError as for create_item."""
    values = _cleaned(form)
    now = datetime.now()
    with _writing(target) as session:
        item = _item_or_error(session, pk)
        item.patient_fk = _patient_of(session, form).pk
        for name in (*GENERATORS, "study_iuid"):
            values[name] = values[name] or getattr(item, name) or ""
        _generate(session, values)
        _check_unique(session, values["study_iuid"], values["sps_id"], pk)
        attrs = _item_attrs(attributes.loads(item.attrs), values, form)
        _store(session, item, attrs, now, new=False)
        return _rows(session, _item.c.pk == pk)[0]


def save_item(target: Target, form: ItemForm) -> tuple[MWLRow, bool]:
    """Create the item of the form's Study Instance UID and SPS ID, or update it when it
    exists (an HL7 order sent again); returns the item and whether it was created."""
    with _writing(target) as session:
        existing = None
        if form.study_iuid.strip() and form.sps_id.strip():
            existing = find_item(session, form.study_iuid.strip(), form.sps_id.strip())
        if existing is None:
            return create_item(session, form), True
        return update_item(session, existing.pk, form), False


def delete_items(target: Target, ids: Iterable[int]) -> int:
    """Delete items (their station AE titles go along); returns how many went."""
    pks = list(ids)
    if not pks:
        return 0
    with _writing(target) as session:
        session.execute(delete(_station).where(_station.c.mwl_item_fk.in_(pks)))
        return int(session.execute(delete(_item).where(_item.c.pk.in_(pks))).rowcount or 0)


def _set_status(session: Session, where: ColumnElement[bool], status: SPSStatus) -> int:
    """Set the SPS status of the items matching `where` whose status differs, in their
    column and their attributes; returns how many changed."""
    now = datetime.now()
    changed = 0
    key = attributes.key(int(tag_for_keyword("ScheduledProcedureStepStatus")))  # type: ignore[arg-type]
    statement = select(_item.c.pk, _item.c.attrs).where(where, _item.c.sps_status != status.value)
    rows = list(session.execute(statement))
    for chunk in range(0, len(rows), 500):
        params = []
        for pk, text in rows[chunk : chunk + 500]:
            attrs = attributes.loads(text)
            sps = scheduled_step(attrs)
            sps[key] = {"vr": "CS", "Value": [status.value]}
            attrs[SPS_SEQUENCE] = {"vr": "SQ", "Value": [sps]}
            params.append({"b_pk": pk, "b_attrs": attributes.dumps(attrs)})
        session.connection().execute(
            update(_item)
            .where(_item.c.pk == bindparam("b_pk"))
            .values(sps_status=status.value, attrs=bindparam("b_attrs"), updated=now),
            params,
        )
        changed += len(params)
    return changed


def set_status(target: Target, ids: Iterable[int], status: SPSStatus | str) -> int:
    """Set the SPS status of items (by pk); returns how many changed (those that had it
    already are left as they are)."""
    pks = list(ids)
    value = _status(str(status))
    if not pks:
        return 0
    with _writing(target) as session:
        return _set_status(session, _item.c.pk.in_(pks), value)


def set_status_matching(
    services: ServiceContext, search: WorklistSearch, status: SPSStatus | str
) -> int:
    """Set the SPS status of every item matching `search` (dcm4chee's "Change SPS status
    on matching MWL"); returns how many changed."""
    value = _status(str(status))
    where = _search_where(services, search)
    with services.db.write() as session:
        matches = select(_item.c.pk).select_from(_listing_from()).where(*where)
        return _set_status(session, _item.c.pk.in_(matches.scalar_subquery()), value)


def set_step_status(target: Target, study_iuid: str, sps_id: str, status: SPSStatus | str) -> bool:
    """Set the status of the step of (Study Instance UID, SPS ID), as MPPS and HL7 orders
    do (dcm4chee's updateSPSStatus: written only when it differs); False when no such
    item exists."""
    value = _status(str(status))
    with _writing(target) as session:
        where = (_item.c.study_iuid == study_iuid) & (_item.c.sps_id == sps_id)
        exists = session.execute(select(_item.c.pk).where(where)).first()
        if exists is None:
            return False
        _set_status(session, where, value)
        return True


# -- search -------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorklistSearch:
    """The MWL search form: matching values as C-FIND takes them (wildcards `*` `?`,
    person names ignoring case, ranges of dates `20260101-20260131` or `2026-01-05`, of
    times `0800-1200`, several modalities as `CT\\MR`). Items whose status is in the
    configuration's `[mwl] hide_statuses` are left out unless `sps_status` is given, as
    dcm4chee's MWL-RS does; `*` shows every status."""

    patient_name: str = ""
    patient_id: str = ""
    issuer: str = ""
    accession_number: str = ""
    requested_procedure_id: str = ""
    study_iuid: str = ""
    sps_id: str = ""
    sps_start_date: str = ""
    sps_start_time: str = ""
    modality: str = ""
    station_aet: str = ""
    performing_physician: str = ""
    sps_status: str = ""

    def keys(self) -> dict[int, str]:
        """The matching keys by tag (empty fields are universal matching)."""
        keywords = {
            "patient_name": "PatientName",
            "patient_id": "PatientID",
            "issuer": "IssuerOfPatientID",
            "accession_number": "AccessionNumber",
            "requested_procedure_id": "RequestedProcedureID",
            "study_iuid": "StudyInstanceUID",
            "sps_id": "ScheduledProcedureStepID",
            "sps_start_date": "ScheduledProcedureStepStartDate",
            "sps_start_time": "ScheduledProcedureStepStartTime",
            "modality": "Modality",
            "station_aet": "ScheduledStationAETitle",
            "performing_physician": "ScheduledPerformingPhysicianName",
            "sps_status": "ScheduledProcedureStepStatus",
        }
        out = {}
        for name, keyword in keywords.items():
            value = getattr(self, name).strip()
            if value:
                if name == "sps_start_date":
                    value = dicom_date(value)
                out[int(tag_for_keyword(keyword))] = value  # type: ignore[arg-type]
        return out


def _listing_from() -> Any:
    return _item.join(_patient, _item.c.patient_fk == _patient.c.pk)


def _search_where(services: ServiceContext, search: WorklistSearch) -> list[ColumnElement[bool]]:
    hidden = [s.value for s in services.config.mwl.hide_statuses]
    return matching.worklist_conditions(search.keys(), hidden)


# Newest scheduled first (steps without a date last), then the newest created.
SORT = (
    (func.coalesce(_item.c.sps_start_date, ""), True),
    (func.coalesce(_item.c.sps_start_time, ""), True),
    (_item.c.pk, True),
)


def _listing(services: ServiceContext, search: WorklistSearch) -> paging.Listing:
    return paging.Listing(_listing_from(), tuple(_search_where(services, search)), SORT)


def search(
    services: ServiceContext,
    search: WorklistSearch,
    *,
    offset: int = 0,
    limit: int = 50,
    total: int | None = None,
    near: Page[MWLRow] | None = None,
) -> Page[MWLRow]:
    """One page of the items matching `search`, newest scheduled first, with the number
    of matches (counted unless `total` is given), paged as every console list
    (core.services.paging: `near`, the page shown before, makes the next a seek). Raises
    MatchingError for a value that cannot be matched (a date that is no date)."""
    listing = _listing(services, search)
    with services.db.read() as session:

        def found(pks: list[Any]) -> dict[Any, MWLRow]:
            return {r.pk: r for r in _rows(session, _item.c.pk.in_(pks))}

        return paging.read(
            session, listing, found, offset=offset, limit=limit, total=total, near=near
        )


def count(services: ServiceContext, search: WorklistSearch) -> int:
    """How many items match `search` (for "all matching" actions)."""
    with services.db.read() as session:
        return paging.count(session, _listing(services, search))


# -- CSV ----------------------------------------------------------------------------------

CSV_COLUMNS = tuple(f.name for f in fields(MWLRow))
# Items read per page while writing.
_CHUNK = 1000


def _every(services: ServiceContext, form: WorklistSearch) -> Iterator[MWLRow]:
    page: Page[MWLRow] | None = None
    offset = 0
    while True:
        total = page.total if page is not None else None
        page = search(services, form, offset=offset, limit=_CHUNK, total=total, near=page)
        yield from page.rows
        offset += len(page.keys)
        if not page.keys or offset >= page.total:
            return


def save_csv(services: ServiceContext, search: WorklistSearch, path: str | Path) -> int:
    """Write every item matching `search` as CSV (dcm4chee's "Download MWL as CSV"), one
    line per item in list order, to `path`; returns the number of items."""
    lines = ([getattr(row, name) for name in CSV_COLUMNS] for row in _every(services, search))
    return write_csv(path, CSV_COLUMNS, lines)


def statuses() -> Sequence[SPSStatus]:
    """The SPS statuses an item may be given, in dcm4chee's order."""
    return tuple(SPSStatus)


# -- Modality Worklist C-FIND ---------------------------------------------------------------

# A return key: its tag, VR, and for a sequence the keys of its item (None: whole items).
ReturnKey = tuple[int, str, "tuple[ReturnKey, ...] | None"]

_TIMEZONE_OFFSET = 0x00080201
_NUMBER_OF_PATIENT_RELATED_STUDIES = 0x00201200


def _return_keys(ds: Dataset) -> tuple[ReturnKey, ...]:
    out: list[ReturnKey] = []
    # keys(), not the Dataset itself: iterating converts every value.
    for tag in sorted(ds.keys()):
        if tag.element == 0 or tag == attributes.SPECIFIC_CHARACTER_SET:
            continue
        elem = ds.get_item(tag)
        vr = (elem.VR if elem is not None else None) or _dictionary_vr(tag)
        nested: tuple[ReturnKey, ...] | None = None
        if vr == "SQ":
            items = ds[tag].value
            if items:
                nested = _return_keys(items[0])
        out.append((int(tag), vr, nested))
    return tuple(out)


def _dictionary_vr(tag: int) -> str:
    try:
        return dictionary_VR(tag).split(" or ")[0]
    except KeyError:
        return "UN"


@dataclass(frozen=True)
class WorklistQuery:
    """A Modality Worklist C-FIND: the matching values (the item's keys and those in its
    ScheduledProcedureStepSequence, core.db.matching) and the return keys, as requested."""

    keys: Mapping[int, str]
    returns: tuple[ReturnKey, ...]

    @classmethod
    def from_identifier(cls, identifier: Dataset) -> WorklistQuery:
        """The query of a C-FIND identifier of the Modality Worklist Information Model.
        Raises MatchingError (A900, "Invalid <keyword> (gggg,eeee) - <value>") for a value
        that cannot be matched or decoded."""
        return cls(matching.worklist_identifier_keys(identifier), _return_keys(identifier))


def _selected(attrs: Mapping[str, Any], returns: tuple[ReturnKey, ...]) -> dict[str, Any]:
    """The return keys of a match (dcm4che's addSelected then supplementEmpty): the stored
    value of each, its items narrowed to the keys asked for in the sequence's item, and
    an empty value for a key without one."""
    out: dict[str, Any] = {}
    for tag, vr, nested in returns:
        key = attributes.key(tag)
        entry = attrs.get(key)
        if entry is None or entry.get("vr") != vr:
            # Absent, or kept as received in another VR: only valid values are returned.
            out[key] = {"vr": vr}
        elif vr == "SQ" and nested is not None:
            items = [i for i in entry.get("Value") or [] if isinstance(i, dict)]
            out[key] = {"vr": "SQ", "Value": [_selected(i, nested) for i in items]}
        else:
            out[key] = entry
    return out


def response(
    patient_attrs: str, item_attrs: str, returns: tuple[ReturnKey, ...], studies: int | None
) -> Dataset:
    """One C-FIND response: the return keys of the item with its patient's attributes,
    plus Specific Character Set and Timezone Offset From UTC, as dcm4chee adds them (UTF-8
    when a value is not ASCII)."""
    attrs = merged(patient_attrs, item_attrs)
    if studies is not None:
        attrs[attributes.key(_NUMBER_OF_PATIENT_RELATED_STUDIES)] = {"vr": "IS", "Value": [studies]}
    out = _selected(attrs, returns)
    out.setdefault(attributes.key(_TIMEZONE_OFFSET), {"vr": "SH"})
    text = attributes.dumps(out)
    charset: dict[str, Any] = {"vr": "CS"}
    if not text.isascii():
        charset["Value"] = ["ISO_IR 192"]
    out[_SPECIFIC_CHARACTER_SET] = charset
    return to_dataset(dict(sorted(out.items())))


def find(services: ServiceContext, query: WorklistQuery, *, chunk: int = 100) -> Iterator[Dataset]:
    """The responses of a Modality Worklist query, read `chunk` rows at a time; items
    whose SPS status is in `[mwl] hide_statuses` are left out unless the query asks for
    a status. Raises MatchingError at once (before any response) for a value that cannot
    be matched. Close the iterator when stopping early (C-CANCEL)."""
    hidden = [s.value for s in services.config.mwl.hide_statuses]
    where = matching.worklist_conditions(query.keys, hidden)
    wants_studies = any(tag == _NUMBER_OF_PATIENT_RELATED_STUDIES for tag, _, _ in query.returns)
    columns: list[Any] = [_item.c.attrs, _patient.c.attrs.label("patient_attrs")]
    if wants_studies:
        columns.append(
            select(func.count())
            .select_from(Study.__table__)
            .where(Study.__table__.c.patient_fk == _patient.c.pk)
            .correlate(_patient)
            .scalar_subquery()
            .label("studies")
        )
    statement = (
        select(*columns)
        .select_from(_listing_from())
        .where(*where)
        .execution_options(yield_per=chunk)
    )

    def stream() -> Iterator[Dataset]:
        with services.db.read() as session:
            for row in session.execute(statement):
                studies = row.studies if wants_studies else None
                yield response(row.patient_attrs, row.attrs, query.returns, studies)

    return stream()
