"""Unified Procedure Step work items (PS3.4 Annex CC) as dcm4chee's UPSService keeps them:
create, update (N-SET), change state (claim with a Transaction UID, complete, cancel),
request cancel, subscribe and unsubscribe (one work item, every one, or those matching a
filter; with deletion lock), search, get, reschedule, delete and purge. The UPS SCP
(core.net.ups_scp) and the console's Work Items tab both call these.

Refusals raise UPSError with the DIMSE status of Annex CC and dcm4chee's comment. A work
item without Scheduled Procedure Step Start DateTime is a template: it raises no events,
takes no subscriptions and is not found by C-FIND. Events for subscribers are queued in
the transaction of the change that raises them (core.services.ups_events), so a change
and its events are committed together or not at all.

Datasets go in and out as pydicom Datasets; the work item's attributes are kept as DICOM
JSON, the patient's with the patient (found by Patient ID and issuer, or created, as
dcm4chee does) when the work item names one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydicom import Dataset
from pydicom.dataelem import DataElement
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import generate_uid
from sqlalchemy import ColumnElement, delete, exists, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.config import Service
from core.db import matching
from core.db.columns import patient_columns
from core.db.matching import MatchingError
from core.db.models import UPS, Patient, UPSGlobalSubscription, UPSState, UPSSubscription
from core.dicom import attributes
from core.dicom.status import (
    DUPLICATE_SOP_INSTANCE,
    INVALID_ARGUMENT_VALUE,
    INVALID_ATTRIBUTE_VALUE,
    MISSING_ATTRIBUTE_VALUE,
    SUCCESS,
    UPS_ACTION_NOT_APPROPRIATE,
    UPS_ALREADY_COMPLETED,
    UPS_ALREADY_IN_PROGRESS,
    UPS_ALREADY_IN_REQUESTED_STATE_OF_CANCELED,
    UPS_ALREADY_IN_REQUESTED_STATE_OF_COMPLETED,
    UPS_DOES_NOT_EXIST,
    UPS_MAY_NO_LONGER_BE_UPDATED,
    UPS_NOT_MET_FINAL_STATE_REQUIREMENTS,
    UPS_NOT_SCHEDULED,
    UPS_NOT_YET_IN_PROGRESS,
    UPS_PERFORMER_CANNOT_BE_CONTACTED,
    UPS_STATE_MAY_NOT_CHANGED_TO_SCHEDULED,
    UPS_TRANSACTION_UID_NOT_CORRECT,
    UPS_UNKNOWN_RECEIVING_AET,
)
from core.dicom.uids import (
    UPS_FILTERED_GLOBAL_SUBSCRIPTION_INSTANCE,
    UPS_GLOBAL_SUBSCRIPTION_INSTANCE,
    UPS_PUSH,
)
from core.index.rules import LOCK
from core.services import paging, ups_events
from core.services.context import ServiceContext
from core.services.paging import Page
from core.services.ups_attributes import (
    CREATE_REQUIRED,
    INCONSISTENT,
    INPUT_READINESS,
    NOT_ALLOWED_ON_CREATE,
    NOT_ALLOWED_ON_SET,
    NOT_KEPT,
    NOT_REPLACED,
    PERFORMERS,
    PROGRESS,
    START,
    STATION_NAMES,
    WORKLIST_LABEL,
    UPSError,
    assigned_infos,
    column_value,
    columns_of,
    dataset_of,
    dt_of,
    final_state_met,
    has_value,
    in_progress_report,
    kept_json,
    progress_item,
    progress_report,
    refuse,
    state_report,
    supplement_cancellation,
    tags_of,
    validate,
)

# Part of this module's API: the values the console offers.
from core.services.ups_attributes import INPUT_READINESS_STATES as INPUT_READINESS_STATES
from core.services.ups_attributes import PRIORITIES as PRIORITIES
from core.services.ups_events import EventType, Report

_ups = UPS.__table__
_patient = Patient.__table__
_subscription = UPSSubscription.__table__

GLOBAL_INSTANCES = (UPS_GLOBAL_SUBSCRIPTION_INSTANCE, UPS_FILTERED_GLOBAL_SUBSCRIPTION_INSTANCE)
STATES = tuple(UPSState)
# -- rows ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class UPSRow:
    """A work item in a result list. `start` is empty for a template."""

    pk: int
    iuid: str
    state: str
    label: str
    priority: str
    worklist_label: str
    start: str
    workitem_code: str
    workitem_scheme: str
    workitem_meaning: str
    station_name: str
    input_readiness_state: str
    performer_aet: str
    transaction_uid: str
    study_iuid: str
    accession_number: str
    patient_id: str
    patient_name: str
    created: datetime
    updated: datetime

    @property
    def template(self) -> bool:
        """True for a template: a work item without start date/time."""
        return not self.start


@dataclass(frozen=True)
class Subscriber:
    """An AE subscribed to a work item."""

    aet: str
    deletion_lock: bool


@dataclass(frozen=True)
class GlobalSubscriber:
    """An AE subscribed to every work item, or to those matching `matching_keys`."""

    aet: str
    deletion_lock: bool
    matching_keys: Dataset | None


@dataclass(frozen=True)
class UPSItem:
    """One work item: its row, all its attributes (the patient's included, with SOP
    Class and Instance UID and modification date/time, as N-GET answers) and its
    subscribers."""

    row: UPSRow
    attributes: Dataset
    subscribers: list[Subscriber]


@dataclass(frozen=True)
class UPSSearch:
    """The console's search form, as matching values (wildcards, DT ranges such as
    `20261205-20261206`). `templates` lists templates instead of work items."""

    state: str = ""
    priority: str = ""
    label: str = ""
    worklist_label: str = ""
    workitem_code: str = ""
    station_name: str = ""
    start: str = ""
    study_iuid: str = ""
    accession_number: str = ""
    patient_id: str = ""
    patient_name: str = ""
    iuid: str = ""
    templates: bool = False

    def keys(self) -> dict[tuple[int, ...], str]:
        """The matching keys, as paths of tags (core.db.matching.UPS_KEYS)."""
        pairs = (
            ("ProcedureStepState", self.state),
            ("ScheduledProcedureStepPriority", self.priority),
            ("ProcedureStepLabel", self.label),
            ("WorklistLabel", self.worklist_label),
            ("ScheduledWorkitemCodeSequence>CodeValue", self.workitem_code),
            ("ScheduledStationNameCodeSequence>CodeValue", self.station_name),
            ("ScheduledProcedureStepStartDateTime", self.start),
            ("StudyInstanceUID", self.study_iuid),
            ("ReferencedRequestSequence>AccessionNumber", self.accession_number),
            ("PatientID", self.patient_id),
            ("PatientName", self.patient_name),
            ("SOPInstanceUID", self.iuid),
        )
        return {tags_of(*path.split(">")): value.strip() for path, value in pairs if value.strip()}


def _text(value: Any) -> str:
    return value or ""


def _row(r: Any) -> UPSRow:
    return UPSRow(
        pk=r.pk,
        iuid=r.ups_iuid,
        state=r.state,
        label=_text(r.label),
        priority=_text(r.priority),
        worklist_label=_text(r.worklist_label),
        start=_text(r.start_date_time),
        workitem_code=_text(r.workitem_code),
        workitem_scheme=_text(r.workitem_scheme),
        workitem_meaning=_text(r.workitem_meaning),
        station_name=_text(r.station_name),
        input_readiness_state=_text(r.input_readiness_state),
        performer_aet=_text(r.performer_aet),
        transaction_uid=_text(r.transaction_uid),
        study_iuid=_text(r.study_iuid),
        accession_number=_text(r.accession_number),
        patient_id=_text(r.patient_id),
        patient_name=_text(r.patient_name),
        created=r.created,
        updated=r.updated,
    )


_FROM = _ups.outerjoin(_patient, _ups.c.patient_fk == _patient.c.pk)


def _select() -> Any:
    return select(
        _ups,
        _patient.c.patient_id,
        _patient.c.patient_name,
        _patient.c.attrs.label("patient_attrs"),
    ).select_from(_FROM)


# -- attributes ---------------------------------------------------------------------------


def _attributes(r: Any) -> Dataset:
    """All attributes of a work item, as N-GET and C-FIND answer: the patient's and its
    own, SOP Class UID (UPS Push), SOP Instance UID and modification date/time."""
    ds = dataset_of(r.patient_attrs) if r.patient_fk is not None else Dataset()
    ds.update(dataset_of(r.attrs))
    ds.SOPClassUID = UPS_PUSH
    ds.SOPInstanceUID = r.ups_iuid
    ds.ScheduledProcedureStepModificationDateTime = dt_of(r.updated)
    return ds


# -- patients -------------------------------------------------------------------------------


def _patient_pk(session: Session, ds: Dataset) -> int | None:
    """The patient the work item names (by Patient ID and issuer, followed through
    merges, as the indexer finds one), created when there is none; None without ID."""
    patient_id = column_value(ds, "PatientID")
    if not patient_id:
        return None
    issuer = column_value(ds, "IssuerOfPatientID")
    if session.get_bind().dialect.name == "postgresql":
        # Serialised with stores and edits of this Patient ID (core.index.rules).
        session.execute(LOCK, {"k": "P" + patient_id})
    candidates = session.execute(
        select(_patient.c.pk, _patient.c.issuer, _patient.c.merged_into_fk).where(
            _patient.c.patient_id == patient_id
        )
    ).all()
    match = next((c for c in candidates if c.issuer == issuer), None) or next(
        (c for c in candidates if not c.issuer or not issuer), None
    )
    seen: set[int] = set()
    while match is not None and match.merged_into_fk is not None and match.pk not in seen:
        seen.add(match.pk)
        match = session.execute(
            select(_patient.c.pk, _patient.c.issuer, _patient.c.merged_into_fk).where(
                _patient.c.pk == match.merged_into_fk
            )
        ).first()
    if match is not None:
        return int(match.pk)
    attrs = attributes.to_json(ds, attributes.PATIENT)
    now = datetime.now()
    return int(
        session.execute(
            insert(_patient).values(
                attrs=attributes.dumps(attrs), created=now, updated=now, **patient_columns(attrs)
            )
        ).inserted_primary_key[0]  # type: ignore[index]
    )


# -- events -----------------------------------------------------------------------------------


def _subscribers(session: Session, ups_pk: int) -> list[str]:
    return list(
        session.execute(
            select(_subscription.c.subscriber_aet).where(_subscription.c.ups_fk == ups_pk)
        ).scalars()
    )


def _local_aet(ctx: ServiceContext, aet: str | None) -> str:
    """The archive AE that sends events: the one the request came to, else the first
    offering UPS."""
    if aet:
        return aet
    offering = [ae.title for ae in ctx.config.ae if Service.UPS in ae.services]
    return (offering or [ctx.config.ae[0].title])[0]


class _Events:
    """The events of one change, queued in its transaction; `wake` after the commit."""

    def __init__(self, ctx: ServiceContext, aet: str | None) -> None:
        self.ctx = ctx
        self.aet = _local_aet(ctx, aet)
        self.queued = False

    def add(
        self, session: Session, iuid: str, reports: Sequence[Report], subscribers: Sequence[str]
    ) -> None:
        if reports and subscribers:
            ups_events.schedule(session, self.ctx.config, iuid, reports, subscribers, self.aet)
            self.queued = True

    def wake(self) -> None:
        if self.queued:
            ups_events.wake(self.ctx)


# -- reading ------------------------------------------------------------------------------------


def _find(session: Session, iuid: str, *, lock: bool = False) -> Any:
    statement = _select().where(_ups.c.ups_iuid == iuid)
    if lock:
        statement = statement.with_for_update(of=_ups)
    found = session.execute(statement).first()
    if found is None:
        raise UPSError(UPS_DOES_NOT_EXIST, "Specified SOP Instance UID does not exist")
    return found


def get(ctx: ServiceContext, iuid: str) -> UPSItem:
    """One work item with its attributes and subscribers; UPSError C307 when there is
    none."""
    with ctx.db.read() as session:
        r = _find(session, iuid)
        subscribers = [
            Subscriber(s.subscriber_aet, bool(s.deletion_lock))
            for s in session.execute(
                select(_subscription.c.subscriber_aet, _subscription.c.deletion_lock)
                .where(_subscription.c.ups_fk == r.pk)
                .order_by(_subscription.c.subscriber_aet)
            )
        ]
        return UPSItem(_row(r), _attributes(r), subscribers)


def attributes_of(ctx: ServiceContext, iuid: str) -> Dataset:
    """All attributes of a work item, as N-GET answers; UPSError C307 when there is
    none."""
    with ctx.db.read() as session:
        return _attributes(_find(session, iuid))


# Newest scheduled first (templates, without start, last), then newest created.
_ORDER: tuple[tuple[ColumnElement[Any], bool], ...] = (
    (func.coalesce(_ups.c.start_date_time, ""), True),
    (_ups.c.pk, True),
)


def _where(keys: dict[tuple[int, ...], str], templates: bool) -> list[ColumnElement[bool]]:
    where = matching.ups_conditions(keys)
    where.append(
        _ups.c.start_date_time.is_(None) if templates else _ups.c.start_date_time.is_not(None)
    )
    return where


def search(
    ctx: ServiceContext,
    search: UPSSearch,
    *,
    offset: int = 0,
    limit: int = 50,
    total: int | None = None,
    near: Page[UPSRow] | None = None,
) -> Page[UPSRow]:
    """One page of the work items (or templates) matching `search`, newest scheduled
    first, with the number of matches (counted unless `total` is given; `near` as in
    core.services.paging). Raises MatchingError for a value that cannot be matched."""
    listing = paging.Listing(_FROM, tuple(_where(search.keys(), search.templates)), _ORDER)
    with ctx.db.read() as session:

        def found(pks: list[Any]) -> dict[Any, UPSRow]:
            statement = _select().where(_ups.c.pk.in_(pks))
            return {r.pk: _row(r) for r in session.execute(statement)}

        return paging.read(
            session, listing, found, offset=offset, limit=limit, total=total, near=near
        )


def _returned(full: Dataset, keys: Dataset) -> Dataset:
    """The return keys of `keys` with their values in `full` (empty when it has none);
    a sequence key with item keys returns each item narrowed to them."""
    out = Dataset()
    for elem in keys:
        if elem.tag in full:
            value = full[elem.tag]
            if elem.VR == "SQ" and elem.value and len(elem.value[0]) and value.VR == "SQ":
                item_keys = elem.value[0]
                out[elem.tag] = DataElement(
                    elem.tag, "SQ", DicomSequence([_returned(i, item_keys) for i in value.value])
                )
            else:
                out[elem.tag] = value
        else:
            out[elem.tag] = DataElement(elem.tag, elem.VR, [] if elem.VR == "SQ" else None)
    return out


def find(ctx: ServiceContext, identifier: Dataset) -> Iterator[Dataset]:
    """The C-FIND answers of the UPS information model to `identifier`: each matching
    work item (templates never) with the return keys asked for, SOP Class and Instance
    UID always. Raises MatchingError for a key that cannot be matched (before the first
    answer)."""
    where = _where(matching.ups_identifier_keys(identifier), templates=False)
    keys = Dataset()
    for elem in identifier:
        keys.add(elem)
    keys.SOPClassUID = ""
    keys.SOPInstanceUID = ""
    if "SpecificCharacterSet" not in keys:
        keys.SpecificCharacterSet = ""

    def answers() -> Iterator[Dataset]:
        with ctx.db.read() as session:
            statement = _select().where(*where).order_by(_ups.c.pk)
            for r in session.execute(statement.execution_options(yield_per=100)):
                answer = _returned(_attributes(r), keys)
                if not answer.get("SpecificCharacterSet"):
                    del answer.SpecificCharacterSet
                yield answer

    return answers()


def global_subscribers(ctx: ServiceContext) -> list[GlobalSubscriber]:
    """The AEs subscribed to every work item (or to those their keys match)."""
    with ctx.db.read() as session:
        return [
            GlobalSubscriber(
                g.subscriber_aet,
                g.deletion_lock,
                dataset_of(g.matching_keys) if g.matching_keys else None,
            )
            for g in session.scalars(
                select(UPSGlobalSubscription).order_by(UPSGlobalSubscription.subscriber_aet)
            )
        ]


# -- changes -------------------------------------------------------------------------------------


def _matches(session: Session, ups_pk: int, keys: str | None) -> bool:
    """Whether a filtered global subscription's keys match the work item (the one
    matching module, in the database)."""
    if not keys:
        return True
    where = matching.ups_conditions(matching.ups_identifier_keys(dataset_of(keys)))
    statement = select(_ups.c.pk).select_from(_FROM).where(_ups.c.pk == ups_pk, *where)
    return session.execute(statement).first() is not None


def create(
    ctx: ServiceContext,
    attrs: Dataset,
    *,
    iuid: str | None = None,
    template: bool = False,
    aet: str | None = None,
) -> str:
    """Create a work item from `attrs` (N-CREATE; `aet` is the archive AE asked, whose
    title is the default Worklist Label), SCHEDULED, with the UID `iuid` or a new one;
    returns its UID. A `template` has no start date/time (refused if given) and raises no
    events. Global subscribers whose keys match become its subscribers and get a state
    report (and Assigned events). Raises UPSError: 0105/0120/0121/0106 for attributes
    not allowed, missing, empty or not enumerated, 0111 for a global subscription
    instance or an existing work item, C309 when the state is not SCHEDULED."""
    ds = Dataset()
    ds.update(attrs)
    if template and START in ds:
        raise UPSError(
            INVALID_ATTRIBUTE_VALUE,
            "UPS Template workitem shall not contain Scheduled Procedure Step Start DateTime",
            [START],
        )
    required = [t for t in CREATE_REQUIRED if not (template and t == START)]
    validate(ds, NOT_ALLOWED_ON_CREATE, required)
    iuid = iuid or generate_uid()
    if iuid in GLOBAL_INSTANCES:
        raise UPSError(DUPLICATE_SOP_INSTANCE, "Cannot create UPS Global Subscription SOP Instance")
    if ds.get("ProcedureStepState") != UPSState.SCHEDULED:
        raise UPSError(UPS_NOT_SCHEDULED, "The provided value of UPS State was not SCHEDULED")
    events = _Events(ctx, aet)
    if not has_value(ds, WORKLIST_LABEL):
        ds.WorklistLabel = events.aet
    now = datetime.now()
    try:
        with ctx.db.write() as session:
            patient_fk = _patient_pk(session, ds)
            pk = session.execute(
                insert(_ups).values(
                    ups_iuid=iuid,
                    patient_fk=patient_fk,
                    attrs=kept_json(ds, patient_fk is not None),
                    created=now,
                    updated=now,
                    **columns_of(ds),
                )
            ).inserted_primary_key[0]  # type: ignore[index]
            if not template:
                _subscribe_globals(session, pk, now)
                subscribers = _subscribers(session, pk)
                reports = [Report(EventType.STATE_REPORT, state_report(ds))]
                reports += [Report(EventType.ASSIGNED, info) for info in assigned_infos(ds)]
                events.add(session, iuid, reports, subscribers)
    except IntegrityError:
        with ctx.db.read() as session:
            if session.execute(select(_ups.c.pk).where(_ups.c.ups_iuid == iuid)).first():
                raise UPSError(DUPLICATE_SOP_INSTANCE, "The UPS already exists.") from None
        raise
    events.wake()
    return iuid


def _subscribe_globals(session: Session, ups_pk: int, now: datetime) -> None:
    for g in session.scalars(select(UPSGlobalSubscription)):
        if _matches(session, ups_pk, g.matching_keys):
            session.execute(
                insert(_subscription).values(
                    ups_fk=ups_pk,
                    subscriber_aet=g.subscriber_aet,
                    deletion_lock=g.deletion_lock,
                    created=now,
                )
            )


def _check_transaction(state: str, given: str | None, held: str | None, without: bool) -> None:
    """N-SET's Transaction UID rules (dcm4chee's updateUPS)."""
    if state == UPSState.SCHEDULED:
        if given:
            raise UPSError(UPS_NOT_YET_IN_PROGRESS, INCONSISTENT)
    elif state == UPSState.IN_PROGRESS:
        if not given:
            if not without:
                raise UPSError(UPS_TRANSACTION_UID_NOT_CORRECT, "The Transaction UID is missing.")
        elif given != held:
            raise UPSError(UPS_TRANSACTION_UID_NOT_CORRECT, "The Transaction UID is incorrect.")
    else:
        raise UPSError(UPS_MAY_NO_LONGER_BE_UPDATED, INCONSISTENT)


def _store(session: Session, pk: int, ds: Dataset, linked: bool, **extra: Any) -> datetime:
    now = datetime.now()
    session.execute(
        _ups.update()
        .where(_ups.c.pk == pk)
        .values(
            attrs=kept_json(ds, linked),
            updated=now,
            **columns_of(ds),
            **extra,
        )
    )
    return now


def update(
    ctx: ServiceContext,
    iuid: str,
    attrs: Dataset,
    *,
    aet: str | None = None,
    without_transaction: bool = False,
) -> None:
    """Set attributes of a work item (N-SET): a SCHEDULED one without Transaction UID, an
    IN PROGRESS one with the Transaction UID it was claimed with (or without any, when
    `without_transaction`: the console, as dcm4chee's upsUpdateWithoutTransactionUID).
    Subscribers get a state report when the Input Readiness State changes, a progress
    report when the progress information does, Assigned events when the performers or
    station names do. Raises UPSError: C307, C310, C301, C300 (state rules), 0105 and 0106
    for attributes that may not be set or are not enumerated, 0106 for a start date/time
    given to a template."""
    validate(attrs, NOT_ALLOWED_ON_SET, ())
    given = str(attrs.get("TransactionUID", "") or "") or None
    events = _Events(ctx, aet)
    with ctx.db.write() as session:
        r = _find(session, iuid, lock=True)
        template = r.start_date_time is None
        if template and has_value(attrs, START):
            raise UPSError(
                INVALID_ATTRIBUTE_VALUE,
                "UPS Template workitem update shall not contain Scheduled Procedure Step "
                "Start DateTime",
                [START],
            )
        if not template and START in attrs and not has_value(attrs, START):
            # It would make the work item a template.
            raise refuse(MISSING_ATTRIBUTE_VALUE, "Missing Value of Attribute", [START])
        _check_transaction(r.state, given, r.transaction_uid, without_transaction)
        ds = dataset_of(r.attrs)
        before = {t: ds.get(t) for t in (INPUT_READINESS, PROGRESS, PERFORMERS, STATION_NAMES)}
        for elem in attrs:
            if elem.tag not in NOT_KEPT:
                ds[elem.tag] = elem
        _store(session, r.pk, ds, r.patient_fk is not None)
        if template:
            return
        changed = {t for t, old in before.items() if t in attrs and attrs[t] != old}
        reports = []
        if INPUT_READINESS in changed:
            reports.append(Report(EventType.STATE_REPORT, state_report(ds)))
        if PROGRESS in changed and has_value(ds, PROGRESS):
            reports.append(Report(EventType.PROGRESS_REPORT, progress_report(ds)))
        if changed & {PERFORMERS, STATION_NAMES}:
            reports += [Report(EventType.ASSIGNED, info) for info in assigned_infos(ds)]
        events.add(session, iuid, reports, _subscribers(session, r.pk))
    events.wake()


def change_state(
    ctx: ServiceContext,
    iuid: str,
    state: str | None,
    transaction_uid: str | None,
    *,
    requester: str,
    aet: str | None = None,
    without_transaction: bool = False,
    merge: Dataset | None = None,
) -> int:
    """Change the state of a work item (N-ACTION Change State): IN PROGRESS claims it
    for `requester` with `transaction_uid`; COMPLETED and CANCELED need that Transaction
    UID (unless `without_transaction`: the console). `merge` is set over the work item's
    attributes first (dcm4chee's merge attributes: the performed procedure a processing
    rule completes with, the progress information with the reason it cancels with).
    Subscribers get a state report.
    Returns SUCCESS, or the warning B304/B306 when it already was CANCELED/COMPLETED.
    Raises UPSError: 0115 (state or Transaction UID missing or invalid), C303 (to
    SCHEDULED), C307, C302, C300, C310, C301, C304 (final state requirements)."""
    if not state:
        raise UPSError(INVALID_ARGUMENT_VALUE, "The Procedure Step State is missing.")
    if state not in STATES:
        raise UPSError(INVALID_ARGUMENT_VALUE, "The Procedure Step State is invalid.")
    if state == UPSState.SCHEDULED:
        raise UPSError(UPS_STATE_MAY_NOT_CHANGED_TO_SCHEDULED, INCONSISTENT)
    if not transaction_uid and (state == UPSState.IN_PROGRESS or not without_transaction):
        raise UPSError(INVALID_ARGUMENT_VALUE, "The Transaction UID is missing.")
    events = _Events(ctx, aet)
    with ctx.db.write() as session:
        r = _find(session, iuid, lock=True)
        ds = dataset_of(r.attrs)
        if merge is not None:
            ds.update(merge)
        current = r.state
        extra: dict[str, Any] = {}
        if state == UPSState.IN_PROGRESS:
            if current == UPSState.IN_PROGRESS:
                raise UPSError(UPS_ALREADY_IN_PROGRESS, INCONSISTENT)
            if current != UPSState.SCHEDULED:
                raise UPSError(UPS_MAY_NO_LONGER_BE_UPDATED, INCONSISTENT)
            extra = {"transaction_uid": transaction_uid, "performer_aet": requester}
        else:
            done = state == UPSState.COMPLETED
            if current == UPSState.SCHEDULED:
                raise UPSError(UPS_NOT_YET_IN_PROGRESS, INCONSISTENT)
            if current == state:
                return (
                    UPS_ALREADY_IN_REQUESTED_STATE_OF_COMPLETED
                    if done
                    else UPS_ALREADY_IN_REQUESTED_STATE_OF_CANCELED
                )
            if current != UPSState.IN_PROGRESS:
                raise UPSError(UPS_MAY_NO_LONGER_BE_UPDATED, INCONSISTENT)
            if transaction_uid and transaction_uid != r.transaction_uid:
                raise UPSError(UPS_TRANSACTION_UID_NOT_CORRECT, "The Transaction UID is incorrect.")
            if done and not final_state_met(ds):
                raise UPSError(UPS_NOT_MET_FINAL_STATE_REQUIREMENTS, INCONSISTENT)
            if not done:
                supplement_cancellation(progress_item(ds))
            extra = {"transaction_uid": None}
        ds.ProcedureStepState = state
        _store(session, r.pk, ds, r.patient_fk is not None, **extra)
        if r.start_date_time is not None:
            report = Report(EventType.STATE_REPORT, state_report(ds))
            events.add(session, iuid, [report], _subscribers(session, r.pk))
    events.wake()
    return SUCCESS


_CANCEL_INFO = (
    "ContactURI",
    "ContactDisplayName",
    "ProcedureStepDiscontinuationReasonCodeSequence",
    "ReasonForCancellation",
)


def request_cancel(
    ctx: ServiceContext,
    iuid: str,
    info: Dataset | None = None,
    *,
    requester: str,
    aet: str | None = None,
) -> int:
    """Ask for a work item to be canceled (N-ACTION Request Cancel; `info` may hold the
    Reason For Cancellation, a Discontinuation Reason Code, Contact URI and Display
    Name). A SCHEDULED one is CANCELED at once (subscribers get IN PROGRESS, then
    CANCELED, as dcm4chee reports it); for one IN PROGRESS its subscribers, the performer
    among them, get a Cancel Requested event. Returns SUCCESS, or B304 when it already
    was CANCELED. Raises UPSError: C307, C311 (COMPLETED), C312 (the performer is no
    subscriber the archive can reach)."""
    info = info or Dataset()
    events = _Events(ctx, aet)
    with ctx.db.write() as session:
        r = _find(session, iuid, lock=True)
        template = r.start_date_time is None
        if r.state == UPSState.CANCELED:
            return UPS_ALREADY_IN_REQUESTED_STATE_OF_CANCELED
        if r.state == UPSState.COMPLETED:
            raise UPSError(UPS_ALREADY_COMPLETED, "The UPS is already COMPLETED.")
        subscribers = _subscribers(session, r.pk)
        if r.state == UPSState.IN_PROGRESS:
            if template:
                return SUCCESS
            reachable = [s for s in subscribers if ctx.config.remote(s) is not None]
            if r.performer_aet not in reachable:
                raise UPSError(
                    UPS_PERFORMER_CANNOT_BE_CONTACTED, "The performer cannot be contacted"
                )
            event = Dataset()
            for keyword in _CANCEL_INFO:
                if keyword in info:
                    event[keyword] = info[keyword]
            event.RequestingAE = requester
            events.add(session, iuid, [Report(EventType.CANCEL_REQUESTED, event)], reachable)
        else:
            ds = dataset_of(r.attrs)
            progress = progress_item(ds)
            for keyword in _CANCEL_INFO[2:]:
                if keyword in info:
                    progress[keyword] = info[keyword]
            contact = Dataset()
            for keyword in _CANCEL_INFO[:2]:
                if keyword in info:
                    contact[keyword] = info[keyword]
            if len(contact):
                progress.ProcedureStepCommunicationsURISequence = DicomSequence([contact])
            supplement_cancellation(progress)
            ds.ProcedureStepState = UPSState.CANCELED
            _store(session, r.pk, ds, r.patient_fk is not None)
            if not template:
                reports = [
                    Report(EventType.STATE_REPORT, in_progress_report(ds)),
                    Report(EventType.STATE_REPORT, state_report(ds)),
                ]
                events.add(session, iuid, reports, subscribers)
    events.wake()
    return SUCCESS


def _check_subscriber(ctx: ServiceContext, subscriber: str) -> None:
    if ctx.config.remote(subscriber) is None:
        raise UPSError(UPS_UNKNOWN_RECEIVING_AET, f"Unknown Receiving AE: {subscriber}")


def subscribe(
    ctx: ServiceContext,
    iuid: str,
    subscriber: str,
    *,
    deletion_lock: bool = False,
    matching_keys: Dataset | None = None,
    aet: str | None = None,
) -> None:
    """Subscribe `subscriber` (a configured remote AE) to the events of work item `iuid`,
    or of every work item (the Global Subscription instance), or of those matching
    `matching_keys` (the Filtered Global Subscription instance); subscribing again
    updates the deletion lock (and keys). A work item's new subscriber gets its current
    state at once; a global subscriber is subscribed to the work items there are (not
    templates), and gets their states when it asks for a deletion lock (dcm4chee).
    Subscribing to a template does nothing. Raises UPSError: C308 (unknown AE), C307,
    0115 (a filtered subscription without keys, or keys that cannot be matched)."""
    _check_subscriber(ctx, subscriber)
    events = _Events(ctx, aet)
    now = datetime.now()
    with ctx.db.write() as session:
        if iuid in GLOBAL_INSTANCES:
            _subscribe_global(session, events, subscriber, deletion_lock, matching_keys, iuid, now)
        else:
            r = _find(session, iuid, lock=True)
            if r.start_date_time is None:
                return
            _upsert_subscription(session, r.pk, subscriber, deletion_lock, now)
            report = Report(EventType.STATE_REPORT, state_report(dataset_of(r.attrs)))
            events.add(session, iuid, [report], [subscriber])
    events.wake()


def _upsert_subscription(
    session: Session, ups_pk: int, subscriber: str, deletion_lock: bool, now: datetime
) -> None:
    updated = session.execute(
        _subscription.update()
        .where(_subscription.c.ups_fk == ups_pk, _subscription.c.subscriber_aet == subscriber)
        .values(deletion_lock=deletion_lock)
    ).rowcount
    if not updated:
        session.execute(
            insert(_subscription).values(
                ups_fk=ups_pk, subscriber_aet=subscriber, deletion_lock=deletion_lock, created=now
            )
        )


def _subscribe_global(
    session: Session,
    events: _Events,
    subscriber: str,
    deletion_lock: bool,
    matching_keys: Dataset | None,
    iuid: str,
    now: datetime,
) -> None:
    keys = None
    where: list[ColumnElement[bool]] = []
    if iuid == UPS_FILTERED_GLOBAL_SUBSCRIPTION_INSTANCE:
        if matching_keys is None or not len(matching_keys):
            raise UPSError(INVALID_ARGUMENT_VALUE, "Matching Keys are missing.")
        keys = attributes.dumps(matching_keys.to_json_dict())
        try:
            where = matching.ups_conditions(matching.ups_identifier_keys(matching_keys))
        except MatchingError as exc:
            raise UPSError(INVALID_ARGUMENT_VALUE, exc.comment) from None
    existing = session.scalars(
        select(UPSGlobalSubscription).where(UPSGlobalSubscription.subscriber_aet == subscriber)
    ).first()
    if existing is None:
        session.add(
            UPSGlobalSubscription(
                subscriber_aet=subscriber,
                deletion_lock=deletion_lock,
                matching_keys=keys,
                created=now,
            )
        )
    else:
        existing.deletion_lock = deletion_lock
        existing.matching_keys = keys
    subscribed = exists().where(
        _subscription.c.ups_fk == _ups.c.pk, _subscription.c.subscriber_aet == subscriber
    )
    statement = (
        select(_ups.c.pk, _ups.c.ups_iuid, _ups.c.attrs)
        .select_from(_FROM)
        .where(*where, _ups.c.start_date_time.is_not(None), ~subscribed)
    )
    for r in session.execute(statement).all():
        _upsert_subscription(session, r.pk, subscriber, deletion_lock, now)
        if deletion_lock:
            report = Report(EventType.STATE_REPORT, state_report(dataset_of(r.attrs)))
            events.add(session, r.ups_iuid, [report], [subscriber])


def unsubscribe(ctx: ServiceContext, iuid: str, subscriber: str) -> int:
    """Unsubscribe `subscriber` from work item `iuid`, or (a global subscription
    instance) from every work item, its global subscription ended; returns how many
    subscriptions ended (none is no error, as in dcm4chee)."""
    with ctx.db.write() as session:
        if iuid in GLOBAL_INSTANCES:
            session.execute(
                delete(UPSGlobalSubscription).where(
                    UPSGlobalSubscription.subscriber_aet == subscriber
                )
            )
            return int(
                session.execute(
                    delete(_subscription).where(_subscription.c.subscriber_aet == subscriber)
                ).rowcount
            )
        ups_pk = select(_ups.c.pk).where(_ups.c.ups_iuid == iuid).scalar_subquery()
        return int(
            session.execute(
                delete(_subscription).where(
                    _subscription.c.ups_fk == ups_pk, _subscription.c.subscriber_aet == subscriber
                )
            ).rowcount
        )


def suspend(ctx: ServiceContext, iuid: str, subscriber: str) -> int:
    """Suspend a global subscription (N-ACTION 5): new work items no longer get
    `subscriber`, the subscriptions it has stay. For a work item's UID, unsubscribe from
    it. Returns how many subscriptions ended."""
    if iuid not in GLOBAL_INSTANCES:
        return unsubscribe(ctx, iuid, subscriber)
    with ctx.db.write() as session:
        return int(
            session.execute(
                delete(UPSGlobalSubscription).where(
                    UPSGlobalSubscription.subscriber_aet == subscriber
                )
            ).rowcount
        )


def _copy(ctx: ServiceContext, iuid: str) -> Dataset:
    """The attributes of work item `iuid` for a new one: SCHEDULED, without its UIDs,
    progress, performed procedure and the work item it replaced."""
    ds = Dataset()
    for elem in get(ctx, iuid).attributes:
        if elem.tag not in NOT_KEPT and elem.tag not in NOT_REPLACED:
            ds.add(elem)
    ds.ProcedureStepState = UPSState.SCHEDULED
    return ds


def clone(
    ctx: ServiceContext,
    iuid: str,
    *,
    start: str | None = None,
    template: bool = False,
    changes: Dataset | None = None,
    new_iuid: str | None = None,
    aet: str | None = None,
) -> str:
    """A new SCHEDULED work item (or a `template`) with the attributes of `iuid` (a work
    item or a template), `changes` set over them, starting at `start` (DT) when given,
    else when `iuid` starts (now for a template's clone that is no template). This is
    "create from a template" and the console's clone. Returns the new UID; UPSError as
    `create`."""
    ds = _copy(ctx, iuid)
    if changes is not None:
        ds.update(changes)
    if template:
        if START in ds:
            del ds[START]
    elif start or not has_value(ds, START):
        ds.ScheduledProcedureStepStartDateTime = start or dt_of(datetime.now())
    return create(ctx, ds, iuid=new_iuid, template=template, aet=aet)


def reschedule(
    ctx: ServiceContext,
    iuid: str,
    start: str | None = None,
    *,
    new_iuid: str | None = None,
    aet: str | None = None,
) -> str:
    """A new SCHEDULED work item replacing `iuid` (dcm4chee's reschedule): its attributes
    without progress and performed procedure, starting at `start` (DT; now if None),
    with a Replaced Procedure Step Sequence naming the old one. Returns the new UID."""
    ds = _copy(ctx, iuid)
    ds.ScheduledProcedureStepStartDateTime = start or dt_of(datetime.now())
    replaced = Dataset()
    replaced.ReferencedSOPClassUID = UPS_PUSH
    replaced.ReferencedSOPInstanceUID = iuid
    ds.ReplacedProcedureStepSequence = DicomSequence([replaced])
    return create(ctx, ds, iuid=new_iuid, aet=aet)


def _locked(session: Session, ups_pk: int) -> list[str]:
    return list(
        session.execute(
            select(_subscription.c.subscriber_aet).where(
                _subscription.c.ups_fk == ups_pk, _subscription.c.deletion_lock.is_(True)
            )
        ).scalars()
    )


def delete_item(ctx: ServiceContext, iuid: str, *, force: bool = False) -> None:
    """Delete a work item and its subscriptions. Refused (UPSError C314) while a
    subscriber holds a deletion lock, unless `force`; C307 when there is none."""
    with ctx.db.write() as session:
        r = _find(session, iuid, lock=True)
        holders = _locked(session, r.pk)
        if holders and not force:
            raise UPSError(
                UPS_ACTION_NOT_APPROPRIATE, f"Deletion locked by {', '.join(sorted(holders))}"
            )
        session.execute(delete(_subscription).where(_subscription.c.ups_fk == r.pk))
        session.execute(delete(_ups).where(_ups.c.pk == r.pk))


def purge(
    ctx: ServiceContext,
    *,
    completed_after: timedelta = timedelta(days=1),
    canceled_after: timedelta = timedelta(days=7),
    limit: int = 1000,
) -> int:
    """Delete COMPLETED work items not updated for `completed_after` and CANCELED ones
    for `canceled_after` (dcm4chee's defaults), unless a subscriber holds a deletion
    lock; returns how many."""
    now = datetime.now()
    locked = exists().where(
        _subscription.c.ups_fk == _ups.c.pk, _subscription.c.deletion_lock.is_(True)
    )
    due = ((_ups.c.state == UPSState.COMPLETED) & (_ups.c.updated < now - completed_after)) | (
        (_ups.c.state == UPSState.CANCELED) & (_ups.c.updated < now - canceled_after)
    )
    with ctx.db.write() as session:
        pks = list(session.execute(select(_ups.c.pk).where(due, ~locked).limit(limit)).scalars())
        if pks:
            session.execute(delete(_subscription).where(_subscription.c.ups_fk.in_(pks)))
            session.execute(delete(_ups).where(_ups.c.pk.in_(pks)))
        return len(pks)


def move_patient(session: Session, source_pk: int, target_pk: int) -> int:
    """In a merge's transaction: the work items of patient `source_pk` become
    `target_pk`'s (dcm4chee's moveUPS). Returns how many."""
    return int(
        session.execute(
            _ups.update().where(_ups.c.patient_fk == source_pk).values(patient_fk=target_pk)
        ).rowcount
    )


def delete_of_patients(session: Session, patient_pks: Sequence[int]) -> int:
    """In a patient deletion's transaction: delete the work items of those patients
    with their subscriptions (dcm4chee deletes them along). Returns how many."""
    pks = select(_ups.c.pk).where(_ups.c.patient_fk.in_(patient_pks))
    session.execute(delete(_subscription).where(_subscription.c.ups_fk.in_(pks)))
    return int(session.execute(delete(_ups).where(_ups.c.patient_fk.in_(patient_pks))).rowcount)
