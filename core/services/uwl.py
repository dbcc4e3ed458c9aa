"""The Work Items tab's use cases (dcm4chee's UWL page) on top of core.services.ups, which
keeps the work items, their states' rules and their subscribers' events: the list with
each work item's progress; the form's values of a work item and the work item made from
them (create, from a template or a copy, edit); clone, reschedule, cancel, change state,
subscribe and unsubscribe a remote AE, delete, on a list of work items or on all that
match a search; the CSV of the list.

The console acts as the archive: it claims, completes and cancels work items as the
archive AE that offers UPS (the performer of what it claims), and edits them without a
Transaction UID, as dcm4chee's UI does."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from pathlib import Path

from pydicom import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import generate_uid
from sqlalchemy import select

from core.config import Service
from core.db.models import UPS, UPSState
from core.dicom.status import SUCCESS
from core.services import patients, ups
from core.services.context import ServiceContext
from core.services.paging import Page
from core.services.ups import UPSError, UPSRow, UPSSearch
from core.services.uwl_form import (
    WorkItemValues,
    code_item,
    edit_attributes,
    new_attributes,
    values_from,
)

_ups = UPS.__table__

# The states a console may move a work item to (dcm4chee's "Change UPS state" dialog).
TARGET_STATES = (UPSState.IN_PROGRESS.value, UPSState.COMPLETED.value, UPSState.CANCELED.value)
STATES = tuple(s.value for s in UPSState)


def state_of(text: str) -> str:
    """A state as typed: its name or the start of it, any case (`sched`, `in p`)."""
    typed = " ".join(text.split()).upper()
    found = [s for s in STATES if s.startswith(typed)]
    if not typed or len(found) != 1:
        raise ValueError(f"State {text.strip()!r}: one of {', '.join(STATES)}")
    return found[0]


# -- the list ----------------------------------------------------------------------------


def _progress(attrs: Dataset) -> str:
    """Procedure Step Progress (0074,1004) in percent, as `40%` ("" when not reported)."""
    info = attrs.get("ProcedureStepProgressInformationSequence")
    value = info[0].get("ProcedureStepProgress") if info else None
    return f"{float(value):g}%" if value not in (None, "") else ""


def progress_of(services: ServiceContext, iuids: list[str]) -> dict[str, str]:
    """The progress of each of the work items `iuids` (those that reported one)."""
    if not iuids:
        return {}
    statement = select(_ups.c.ups_iuid, _ups.c.attrs).where(_ups.c.ups_iuid.in_(iuids))
    with services.db.read() as session:
        found = {
            iuid: _progress(Dataset.from_json(attrs) if attrs and attrs != "{}" else Dataset())
            for iuid, attrs in session.execute(statement)
        }
    return {iuid: text for iuid, text in found.items() if text}


@dataclass(frozen=True)
class ListPage:
    """A page of the list: the work items (ups' rows) and their progress by UID."""

    page: Page[UPSRow]
    progress: dict[str, str]


def search(
    services: ServiceContext,
    criteria: UPSSearch,
    *,
    offset: int = 0,
    limit: int = 50,
    near: Page[UPSRow] | None = None,
) -> ListPage:
    """One page of the work items (or templates) matching `criteria`, newest start first
    (ups.search), with their progress. The state may be typed as the start of its name.
    Raises ValueError for a value that cannot be matched."""
    if criteria.state.strip():
        criteria = _with_state(criteria)
    page = ups.search(services, criteria, offset=offset, limit=limit, near=near)
    return ListPage(page, progress_of(services, [r.iuid for r in page.rows]))


def _with_state(criteria: UPSSearch) -> UPSSearch:
    return replace(criteria, state=state_of(criteria.state))


def count(services: ServiceContext, criteria: UPSSearch) -> int:
    """How many work items (or templates) match `criteria`."""
    return search(services, criteria, limit=0).page.total


# Work items read per statement when going through all that match.
CHUNK = 500


def every(services: ServiceContext, criteria: UPSSearch) -> Iterator[UPSRow]:
    """Every work item matching `criteria`, in the list's order, a chunk at a time."""
    offset, near = 0, None
    while True:
        page = search(services, criteria, offset=offset, limit=CHUNK, near=near).page
        yield from page.rows
        if len(page.rows) < CHUNK:
            return
        offset, near = offset + len(page.rows), page


def templates(services: ServiceContext) -> list[UPSRow]:
    """Every template, by label."""
    rows = list(every(services, UPSSearch(templates=True)))
    return sorted(rows, key=lambda r: (r.label.lower(), r.iuid))


def attributes_of(services: ServiceContext, iuid: str) -> Dataset:
    """All attributes of a work item, as N-GET answers them."""
    return ups.attributes_of(services, iuid)


# -- what an action is about and what it did ---------------------------------------------

# The work items of an action: their UIDs, or all that match a search.
Target = list[str] | UPSSearch


def iuids_of(services: ServiceContext, target: Target) -> list[str]:
    """The UIDs of the work items of `target`: all matching are read before any is
    changed, so that a change cannot move one out of the set or into it."""
    if isinstance(target, UPSSearch):
        return [row.iuid for row in every(services, target)]
    return list(target)


@dataclass
class Outcome:
    """What an action on several work items did: how many of each result (`canceled`,
    `cancellation requested`...), and how many were refused, by reason (ups' comments:
    "The UPS is already COMPLETED.")."""

    done: dict[str, int] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)

    def count(self, result: str) -> None:
        self.done[result] = self.done.get(result, 0) + 1

    def refuse(self, reason: str) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1

    @property
    def changed(self) -> int:
        return sum(self.done.values())

    def said(self, what: str) -> str:
        """One line: `Cancel: 3 canceled, 1 cancellation requested; not 2: The UPS is
        already COMPLETED.`"""
        parts = [f"{n:,} {result}" for result, n in self.done.items()] or ["none changed"]
        text = f"{what}: {', '.join(parts)}"
        for reason, n in self.refused.items():
            text += f"; not {n:,}: {reason}"
        return text


def _each(services: ServiceContext, target: Target, act: Callable[[str], str | None]) -> Outcome:
    """Run `act` on each work item of `target`; it returns what it did (None: nothing to
    count) or raises UPSError/ValueError, counted by its reason."""
    outcome = Outcome()
    for iuid in iuids_of(services, target):
        try:
            result = act(iuid)
        except (UPSError, ValueError) as exc:
            outcome.refuse(str(exc).strip() or type(exc).__name__)
            continue
        if result:
            outcome.count(result)
    return outcome


def _work_item(services: ServiceContext, iuid: str) -> UPSRow:
    """The row of work item `iuid`; ValueError for a template (it has no state to change:
    the console makes work items from it)."""
    row = ups.get(services, iuid).row
    if row.template:
        raise ValueError("a template has no state to change (n makes a work item of it)")
    return row


def console_aet(services: ServiceContext) -> str:
    """The archive AE the console acts as: the first offering UPS (ups' default)."""
    offering = [ae.title for ae in services.config.ae if Service.UPS in ae.services]
    return (offering or [services.config.ae[0].title])[0]


# -- the form ----------------------------------------------------------------------------


def values_of(services: ServiceContext, iuid: str) -> WorkItemValues:
    """The form's values of work item `iuid`."""
    return values_from(ups.attributes_of(services, iuid))


def create(services: ServiceContext, values: WorkItemValues, base: str | None = None) -> str:
    """Create a SCHEDULED work item (a template without start) from the form's values,
    over the attributes of work item or template `base` when given (clone, create from a
    template: ups.clone); returns its UID. Refusals: ValueError naming the field,
    PatientError (no such patient), UPSError (ups' N-CREATE checks)."""
    patient = patients.find_by_id(services, values.patient) if values.patient.strip() else None
    ds = new_attributes(values, patient, console_aet(services), over=base is not None)
    start = ds.get("ScheduledProcedureStepStartDateTime")
    if base is None:
        return ups.create(services, ds, template=not start)
    return ups.clone(services, base, start=start, template=not start, changes=ds)


def edit(services: ServiceContext, iuid: str, values: WorkItemValues) -> bool:
    """Save the form's values of work item `iuid` (N-SET as the console: without
    Transaction UID); False when nothing changed. Refusals as uwl_form.edit_attributes
    says, and ups' (UPSError)."""
    changes = edit_attributes(ups.attributes_of(services, iuid), values, console_aet(services))
    if not len(changes):
        return False
    ups.update(services, iuid, changes, without_transaction=True)
    return True


# -- the actions -------------------------------------------------------------------------


def clone(services: ServiceContext, target: Target) -> list[str]:
    """Copy each work item of `target` as a new SCHEDULED one (a template stays a
    template); returns the new UIDs."""
    return [
        ups.clone(services, iuid, template=ups.get(services, iuid).row.template)
        for iuid in iuids_of(services, target)
    ]


def reschedule(services: ServiceContext, target: Target, at: datetime) -> Outcome:
    """Start each work item of `target` at `at`: a SCHEDULED one moves (N-SET of its
    start); any other is replaced by a new SCHEDULED work item naming it (dcm4chee's
    reschedule); a template gives a new work item."""
    start = at.strftime("%Y%m%d%H%M%S")

    def act(iuid: str) -> str:
        row = ups.get(services, iuid).row
        if row.template:
            ups.clone(services, iuid, start=start)
            return "created from templates"
        if row.state == UPSState.SCHEDULED:
            ds = Dataset()
            ds.ScheduledProcedureStepStartDateTime = start
            ups.update(services, iuid, ds)
            return "moved"
        ups.reschedule(services, iuid, start)
        return "replaced by new work items"

    return _each(services, target, act)


def cancel(services: ServiceContext, target: Target, *, now: bool = False) -> Outcome:
    """Cancel each work item of `target` (dcm4chee's "Cancel UWL": Request Cancel as the
    archive): a SCHEDULED one is CANCELED; for one IN PROGRESS its performer is asked to
    cancel, or, with `now`, the archive cancels it (change state, without Transaction
    UID). COMPLETED ones are refused, CANCELED ones left as they are."""
    requester = console_aet(services)

    def act(iuid: str) -> str | None:
        row = _work_item(services, iuid)
        if now and row.state == UPSState.IN_PROGRESS:
            ups.change_state(
                services,
                iuid,
                UPSState.CANCELED.value,
                None,
                requester=requester,
                without_transaction=True,
            )
            return "canceled"
        if ups.request_cancel(services, iuid, requester=requester) != SUCCESS:
            return "already canceled"
        return "cancellation requested" if row.state == UPSState.IN_PROGRESS else "canceled"

    return _each(services, target, act)


def _performed(services: ServiceContext, ds: Dataset, now: str) -> Dataset | None:
    """What completing as the archive adds when the performer did not say it: the
    performed procedure's start (now), end (now), station (the archive AE) and workitem
    code (the scheduled one); None when it is there."""
    performed = (ds.get("UnifiedProcedureStepPerformedProcedureSequence") or [Dataset()])[0]
    item = Dataset()
    item.update(performed)
    if not item.get("PerformedProcedureStepStartDateTime"):
        item.PerformedProcedureStepStartDateTime = now
    if not item.get("PerformedProcedureStepEndDateTime"):
        item.PerformedProcedureStepEndDateTime = now
    if not item.get("PerformedStationNameCodeSequence"):
        item.PerformedStationNameCodeSequence = DicomSequence(
            [code_item(console_aet(services), "Station")]
        )
    if not item.get("PerformedWorkitemCodeSequence"):
        scheduled = ds.get("ScheduledWorkitemCodeSequence")
        if scheduled:
            item.PerformedWorkitemCodeSequence = DicomSequence([scheduled[0]])
    if item == performed:
        return None
    changes = Dataset()
    changes.UnifiedProcedureStepPerformedProcedureSequence = DicomSequence([item])
    return changes


def change_state(services: ServiceContext, target: Target, state: str) -> Outcome:
    """Move each work item of `target` to `state` as the archive (dcm4chee's "Change UPS
    state"): IN PROGRESS claims it with a new Transaction UID; COMPLETED and CANCELED
    need no Transaction UID, and COMPLETED fills in the performed procedure where the
    performer left it out. ups refuses what the states do not allow."""
    requester = console_aet(services)
    now = datetime.now().strftime("%Y%m%d%H%M%S")

    def act(iuid: str) -> str | None:
        row = _work_item(services, iuid)
        if state == UPSState.IN_PROGRESS:
            ups.change_state(services, iuid, state, generate_uid(), requester=requester)
            return "claimed"
        merge = None
        if state == UPSState.COMPLETED and row.state == UPSState.IN_PROGRESS:
            merge = _performed(services, ups.attributes_of(services, iuid), now)
        status = ups.change_state(
            services,
            iuid,
            state,
            None,
            requester=requester,
            without_transaction=True,
            merge=merge,
        )
        return f"already {state}" if status != SUCCESS else state.lower()

    return _each(services, target, act)


def subscribe(
    services: ServiceContext, target: Target, aet: str, *, deletion_lock: bool = False
) -> Outcome:
    """Subscribe remote AE `aet` to each work item of `target` (templates take none)."""

    def act(iuid: str) -> str:
        if ups.get(services, iuid).row.template:
            raise ValueError("templates take no subscribers")
        ups.subscribe(services, iuid, aet, deletion_lock=deletion_lock)
        return "subscribed"

    return _each(services, target, act)


def unsubscribe(services: ServiceContext, target: Target, aet: str) -> Outcome:
    """Unsubscribe `aet` from each work item of `target`."""

    def act(iuid: str) -> str | None:
        return "unsubscribed" if ups.unsubscribe(services, iuid, aet) else None

    return _each(services, target, act)


def subscribers(services: ServiceContext, target: Target) -> list[str]:
    """The AEs subscribed to any work item of `target`, by title."""
    found = {
        s.aet for iuid in iuids_of(services, target) for s in ups.get(services, iuid).subscribers
    }
    return sorted(found)


def delete(services: ServiceContext, target: Target) -> Outcome:
    """Delete each work item of `target` with its subscriptions; one a subscriber holds
    a deletion lock on is refused (ups)."""

    def act(iuid: str) -> str:
        ups.delete_item(services, iuid)
        return "deleted"

    return _each(services, target, act)


# -- CSV ---------------------------------------------------------------------------------

CSV_COLUMNS = (*(f.name for f in fields(UPSRow)), "progress")


def save_csv(services: ServiceContext, criteria: UPSSearch, path: str | Path) -> int:
    """Write every work item (or template) matching `criteria` as CSV (dcm4chee's
    "Download UPS Workitems as CSV"), one line each in the list's order; returns how
    many."""
    target = Path(path)
    written = 0
    with target.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        chunk: list[UPSRow] = []

        def flush() -> None:
            progress = progress_of(services, [r.iuid for r in chunk])
            for row in chunk:
                values = [getattr(row, name) for name in CSV_COLUMNS[:-1]]
                writer.writerow([*values, progress.get(row.iuid, "")])
            chunk.clear()

        for row in every(services, criteria):
            chunk.append(row)
            written += 1
            if len(chunk) == CHUNK:
                flush()
        flush()
    return written
