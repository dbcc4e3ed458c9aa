"""UPS on store: objects arriving make work items, as dcm4chee's UPSOnStore rules.

Each object kept by the ingest path (`InstanceStored`) is matched against the
`[[ups_on_store]]` rules (conditions as export rules: keyword = regex, ! negates; and the
receiving AEs). A match makes a SCHEDULED work item whose UID is derived from the rule's
id and `instance_uid_based_on_name` (e.g. one per study), with the rule's Scheduled
Workitem Code, Destination AE, station, labels, priority and Scope of Accumulation, the
patient of the object, and the object in its Input Information Sequence (study, series,
referenced instance, the AE to retrieve it from), due `start_delay` after it arrived.
When that work item exists already, `include_input_information` says what happens
(dcm4chee's createOrUpdateOnStore): APPEND adds the object to it while it is SCHEDULED
(postponing its start), APPEND_OR_CREATE makes the next work item once it is not, SINGLE
and NO leave it, SINGLE_OR_CREATE makes a new work item for every object.

As every follower of stored objects (core.services.store_follower), the store thread
only notes what it found; a thread writes the notes every `interval` in a few
transactions (the objects of a whole association to one work item each), and at stop.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from pydicom import Dataset
from pydicom.datadict import tag_for_keyword
from pydicom.sequence import Sequence as DicomSequence

from core.config import Config, IncludeInputInformation, UPSOnStoreConfig, UPSScope
from core.db.models import UPSState
from core.dicom.status import DUPLICATE_SOP_INSTANCE, UPS_DOES_NOT_EXIST
from core.events import Event, InstanceStored
from core.index.rules import LOCK
from core.services import ups
from core.services.context import ServiceContext
from core.services.forwarding import Condition, compile_conditions
from core.services.status import run_dir
from core.services.store_follower import StoreFollower
from core.services.ups import UPSError
from core.services.ups_items import (
    SCHEME,
    code_item,
    dt,
    output_destination,
    scope_parameter,
    workitem_code,
)

log = logging.getLogger(__name__)

# The patient's attributes a work item made on store carries (dcm4chee's includePatient).
PATIENT_KEYWORDS = (
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientSex",
)
SOP_CLASS_UID = 0x00080016


@dataclass(frozen=True)
class _Rule:
    """An `[[ups_on_store]]` rule ready to match."""

    config: UPSOnStoreConfig
    conditions: tuple[Condition, ...]
    # The keywords its UID is based on, with their tags.
    name_tags: tuple[tuple[str, int], ...]

    def matches(self, event: InstanceStored) -> bool:
        if self.config.aes and event.called_aet not in self.config.aes:
            return False
        return all(condition.holds(event) for condition in self.conditions)

    def name_of(self, event: InstanceStored) -> str:
        """The rule's `instance_uid_based_on_name` with the object's values."""
        name = self.config.instance_uid_based_on_name
        for keyword, tag in self.name_tags:
            value = event.value(tag) if event.value is not None else None
            name = name.replace(f"{{{keyword}}}", value or "")
        return name


def _compile(config: Config) -> tuple[_Rule, ...]:
    rules = []
    for rule in config.ups_on_store:
        keywords = {
            part.partition("}")[0]
            for part in rule.instance_uid_based_on_name.split("{")[1:]
            if "}" in part
        }
        rules.append(
            _Rule(
                rule,
                compile_conditions(rule.conditions),
                tuple((k, int(tag_for_keyword(k) or 0)) for k in sorted(keywords)),
            )
        )
    return tuple(rules)


@dataclass(frozen=True)
class Stored:
    """One object as a work item's input: study, series, SOP class and instance."""

    study_iuid: str
    series_iuid: str
    sop_cuid: str
    sop_iuid: str


@dataclass
class Noted:
    """What one rule's matches since the last write bring to one work item: the objects
    in order, the patient and receiving AE of the first, when the last arrived."""

    rule_id: str
    name: str
    objects: list[Stored] = field(default_factory=list)
    patient: dict[str, str] = field(default_factory=dict)
    called_aet: str = ""
    last: datetime = field(default_factory=datetime.now)


class UPSOnStore(StoreFollower[tuple[str, str], Noted, tuple[_Rule, ...]]):
    """Follows the objects one process stores (`services.events`) and makes or extends
    the work items of the `[[ups_on_store]]` rules they match. `start` subscribes it;
    `stop` writes what is still noted and unsubscribes. Reads `services.config` at each
    object, so changed rules apply at once."""

    thread_name = "ups-on-store"
    lost_what = "work items"

    def on_event(self, event: Event) -> None:
        """Note the work items a stored object calls for (in the store's thread: no I/O)."""
        if not isinstance(event, InstanceStored) or not self.services.config.ups_on_store:
            return
        matched = [rule for rule in self._current_rules() if rule.matches(event)]
        if not matched:
            return
        value = event.value or (lambda _tag: None)
        stored = Stored(
            event.study_iuid, event.series_iuid, value(SOP_CLASS_UID) or "", event.sop_iuid
        )
        patient = {
            keyword: text
            for keyword in PATIENT_KEYWORDS
            if (text := value(int(tag_for_keyword(keyword) or 0))) is not None
        }
        now = datetime.now()
        with self._lock:
            for rule in matched:
                key = (rule.config.id, rule.name_of(event))
                noted = self._pending.get(key)
                if noted is None:
                    noted = self._pending[key] = Noted(
                        *key, patient=patient, called_aet=event.called_aet
                    )
                noted.objects.append(stored)
                noted.last = now
        self._wake.set()

    def _current_rules(self) -> tuple[_Rule, ...]:
        config = self.services.config
        return self._rules_for(config.ups_on_store, lambda: _compile(config))

    def flush(self) -> bool:
        """Write the noted work items. Returns False when the database could not take
        some: they stay noted (and are tried again at the next round). One the UPS
        service refuses is logged and dropped."""
        with self._lock:
            batch, self._pending = self._pending, {}
        failed: list[Noted] = []
        for noted in batch.values():
            rule = self.services.config.ups_on_store_rule(noted.rule_id)
            if rule is None:
                continue
            try:
                apply(self.services, rule, noted)
            except UPSError as exc:
                # Refused for good (trying again would be refused again).
                log.warning("UPS on store %r: no work item for %s: %s", rule.id, noted.name, exc)
            except Exception as exc:
                log.warning("UPS on store %r: work item not written yet (%s)", rule.id, exc)
                failed.append(noted)
        if failed:
            with self._lock:
                for noted in failed:
                    known = self._pending.get((noted.rule_id, noted.name))
                    if known is not None:
                        noted.objects += known.objects
                        noted.last = known.last
                    self._pending[(noted.rule_id, noted.name)] = noted
            return False
        return True


def name_based_uid(name: str) -> str:
    """dcm4che's UIDUtils.createNameBasedUID: `2.25.` and the name-based (MD5, version 3)
    UUID of `name` as an integer."""
    digest = bytearray(hashlib.md5(name.encode(), usedforsecurity=False).digest())
    digest[6] = (digest[6] & 0x0F) | 0x30
    digest[8] = (digest[8] & 0x3F) | 0x80
    return f"2.25.{int.from_bytes(digest, 'big')}"


def name_uid(rule_id: str, name: str) -> str:
    """The work item UID of a rule and name: the same for every object of, say, one
    study (the rule's id is part of the name: two rules never share a work item)."""
    return name_based_uid(f"{rule_id}:{name}")


def _next_uid(uid: str) -> str:
    """The UID of the work item that follows `uid` once that is no longer SCHEDULED
    (dcm4chee's: name-based on the previous UID)."""
    return name_based_uid(uid)


def _reference(stored: Stored) -> Dataset:
    ref = Dataset()
    ref.ReferencedSOPClassUID = stored.sop_cuid
    ref.ReferencedSOPInstanceUID = stored.sop_iuid
    return ref


def add_input(sequence: list[Dataset], objects: list[Stored], retrieve_aet: str) -> bool:
    """Add `objects` to an Input Information Sequence (dcm4chee's refSOPSequence: one
    item per series, with the AE to retrieve it from); returns whether any was new."""
    added = False
    for stored in objects:
        item = next(
            (
                i
                for i in sequence
                if i.get("StudyInstanceUID") == stored.study_iuid
                and i.get("SeriesInstanceUID") == stored.series_iuid
            ),
            None,
        )
        if item is None:
            item = Dataset()
            item.StudyInstanceUID = stored.study_iuid
            item.SeriesInstanceUID = stored.series_iuid
            item.TypeOfInstances = "DICOM"
            retrieval = Dataset()
            retrieval.RetrieveAETitle = retrieve_aet
            item.DICOMRetrievalSequence = DicomSequence([retrieval])
            item.ReferencedSOPSequence = DicomSequence([])
            sequence.append(item)
        refs = item.get("ReferencedSOPSequence")
        if refs is None:
            refs = item.ReferencedSOPSequence = DicomSequence([])
        if all(r.get("ReferencedSOPInstanceUID") != stored.sop_iuid for r in refs):
            refs.append(_reference(stored))
            added = True
    return added


def new_item(rule: UPSOnStoreConfig, noted: Noted, retrieve_aet: str) -> Dataset:
    """The attributes of the work item a rule makes (dcm4chee's createOnStore)."""
    ds = Dataset()
    for keyword, value in noted.patient.items():
        setattr(ds, keyword, value)
    ds.StudyInstanceUID = noted.objects[0].study_iuid
    ds.ProcedureStepState = UPSState.SCHEDULED
    ds.ScheduledProcedureStepPriority = str(rule.priority)
    ds.ScheduledProcedureStepStartDateTime = dt(noted.last + rule.start_delay)
    ds.ProcedureStepLabel = rule.procedure_step_label or rule.id
    # dcm4chee: the rule's label, else the receiving AE's title.
    worklist_label = rule.worklist_label or noted.called_aet
    if worklist_label:
        ds.WorklistLabel = worklist_label
    ds.InputReadinessState = "READY"
    ds.ScheduledWorkitemCodeSequence = DicomSequence([workitem_code(rule.scheduled_workitem_code)])
    if rule.scheduled_station_name:
        station = rule.scheduled_station_name
        ds.ScheduledStationNameCodeSequence = DicomSequence([code_item(station, SCHEME, station)])
    if rule.destination:
        ds.OutputDestinationSequence = DicomSequence([output_destination(rule.destination)])
    ds.ReferencedRequestSequence = DicomSequence([])
    if rule.include_input_information != IncludeInputInformation.NO:
        inputs: list[Dataset] = []
        add_input(inputs, noted.objects, retrieve_aet)
        ds.InputInformationSequence = DicomSequence(inputs)
    if rule.scope_of_accumulation != UPSScope.NONE:
        ds.ScheduledProcessingParametersSequence = DicomSequence(
            [scope_parameter(rule.scope_of_accumulation)]
        )
    return ds


# The modes that add later objects to a SCHEDULED work item.
_APPENDING = (IncludeInputInformation.APPEND, IncludeInputInformation.APPEND_OR_CREATE)
# Work items followed (the next UIDs of a study's work items no longer SCHEDULED, a
# creation raced by another process) before giving up.
ATTEMPTS = 1000


def apply(services: ServiceContext, rule: UPSOnStoreConfig, noted: Noted) -> str | None:
    """Create the work item of `noted`, or add its objects to the existing one, as
    `rule.include_input_information` says (dcm4chee's createOrUpdateOnStore); returns
    the UID of the work item written (None when it was left as it was). Several
    processes storing objects of one work item at once add them one after the other."""
    config = services.config
    retrieve_aet = noted.called_aet or config.ae[0].title
    mode = rule.include_input_information
    iuid = name_uid(rule.id, noted.name)
    with _item_lock(services, rule.id, noted.name):
        for _ in range(ATTEMPTS):
            try:
                item = ups.get(services, iuid)
            except UPSError as exc:
                if exc.status != UPS_DOES_NOT_EXIST:
                    raise
                try:
                    return ups.create(services, new_item(rule, noted, retrieve_aet), iuid=iuid)
                except UPSError as created:
                    if created.status != DUPLICATE_SOP_INSTANCE:
                        raise
                    continue
            scheduled = item.row.state == UPSState.SCHEDULED
            if mode == IncludeInputInformation.SINGLE_OR_CREATE or (
                not scheduled and mode == IncludeInputInformation.APPEND_OR_CREATE
            ):
                iuid = _next_uid(iuid)
                continue
            if not scheduled or mode not in _APPENDING:
                return None
            changes = Dataset()
            inputs = list(item.attributes.get("InputInformationSequence") or [])
            if add_input(inputs, noted.objects, retrieve_aet):
                changes.InputInformationSequence = DicomSequence(inputs)
            changes.ScheduledProcedureStepStartDateTime = dt(noted.last + rule.start_delay)
            try:
                ups.update(services, iuid, changes)
            except UPSError:
                # Claimed or canceled meanwhile: look at it again.
                continue
            return iuid
    log.warning(
        "UPS on store %r: no work item for %s after %d tries", rule.id, noted.name, ATTEMPTS
    )
    return None


_THREAD_LOCK = threading.Lock()


@contextmanager
def _item_lock(services: ServiceContext, rule_id: str, name: str) -> Iterator[None]:
    """Serialise the read-and-update of one work item between processes: a PostgreSQL
    advisory lock held by a transaction of its own; with SQLite, an flock of a file in
    the run folder (one for all work items: a rare wait)."""
    with _THREAD_LOCK:
        if not services.db.is_sqlite:
            with services.db.read() as session:
                session.execute(LOCK, {"k": f"UPS-on-store:{rule_id}:{name}"})
                yield
            return
        folder = run_dir(services.config.storage.path)
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / "ups-on-store.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)
