"""Export rules and the IAN of received studies: what arrives is scheduled onward.

As dcm4chee's ExportScheduler and IANScheduler (trigger STUDY_RECEIVED): each object
kept by the ingest path (`InstanceStored`) is matched against the `[[export_rule]]`s;
a match makes one export task per exporter and entity (study, series or instance), due
`delay` after the object arrived, and every study received makes one IAN task per
`[ian]` destination, due after its quiet `delay`. An object of an entity whose task is
still SCHEDULED joins it: the task is postponed, never doubled (and a waiting export of
a series becomes its study's when a rule exports the study to the same exporter).

Storing must stay as fast as it is, so the store thread only notes the (task, due time)
pairs in memory; a thread writes them every `interval` (and when the process stops) in
one transaction (core.queue.schedule.schedule_or_postpone), the objects of a whole
association making a handful of rows. The crash window: a process killed (kill -9,
power loss) loses what it noted in the last `interval` before it could write it; those
objects are stored but not forwarded (an administrator exports them from the console).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydicom.datadict import tag_for_keyword

from core.config import Config, ExportEntity
from core.events import Event, InstanceStored
from core.queue import wakeup
from core.queue.schedule import NewTask, schedule_or_postpone
from core.services.outbound import EXPORT, Entity, export_task, ian_task
from core.services.status import run_dir
from core.services.store_follower import StoreFollower

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Condition:
    """One condition of a rule on stored objects: an attribute's value matches (or, with
    `negated`, does not match) a regular expression."""

    tag: int
    pattern: re.Pattern[str]
    negated: bool

    def holds(self, event: InstanceStored) -> bool:
        # As dcm4chee's Conditions: the whole of any one value matches; an absent
        # attribute matches nothing, so only a negated condition holds for it.
        value = event.value(self.tag) if event.value is not None else None
        values = value.split("\\") if value is not None else ()
        return any(self.pattern.fullmatch(v) for v in values) != self.negated


@dataclass(frozen=True)
class _Rule:
    """An `[[export_rule]]` ready to match."""

    name: str
    entity: ExportEntity
    exporters: tuple[str, ...]
    conditions: tuple[Condition, ...]
    delay: timedelta
    aes: frozenset[str]

    def matches(self, event: InstanceStored) -> bool:
        if self.aes and event.called_aet not in self.aes:
            return False
        return all(condition.holds(event) for condition in self.conditions)

    def entity_of(self, event: InstanceStored) -> Entity:
        if self.entity == ExportEntity.STUDY:
            return Entity(event.study_iuid)
        if self.entity == ExportEntity.SERIES:
            return Entity(event.study_iuid, event.series_iuid)
        return Entity(event.study_iuid, event.series_iuid, event.sop_iuid)


def compile_conditions(conditions: dict[str, str]) -> tuple[Condition, ...]:
    """Conditions as export rules (and UPS on store rules) give them, keyword = regex
    with a leading ! negating, ready to match (validated by the config)."""
    return tuple(
        Condition(
            int(tag_for_keyword(keyword) or 0),
            re.compile(pattern.removeprefix("!")),
            pattern.startswith("!"),
        )
        for keyword, pattern in conditions.items()
    )


def _compile(config: Config) -> tuple[_Rule, ...]:
    """The export rules of `config` (validated: keywords are known, patterns compile)."""
    return tuple(
        _Rule(
            rule.name,
            rule.entity,
            rule.exporters,
            compile_conditions(rule.conditions),
            rule.delay,
            frozenset(rule.aes),
        )
        for rule in config.export_rule
    )


# What a noted task is: (task type, exporter id or IAN destination, entity, local AE).
_Key = tuple[str, str, Entity, str | None]


class Forwarder(StoreFollower[_Key, datetime, tuple[_Rule, ...]]):
    """Follows the objects one process stores (`services.events`) and schedules the
    export and IAN tasks they call for. `start` subscribes it; `stop` writes what is
    still noted and unsubscribes. It reads `services.config` at each object, so changed
    rules apply at once (core.config.ConfigWatcher)."""

    thread_name = "forwarding"
    lost_what = "export or IAN tasks"

    def on_event(self, event: Event) -> None:
        """Note the tasks a stored object calls for (in the store's thread: no I/O)."""
        if not isinstance(event, InstanceStored):
            return
        config = self.services.config
        if not config.export_rule and not config.ian.destinations:
            return
        now = datetime.now()
        noted: list[tuple[_Key, datetime]] = []
        for rule in self._current_rules(config):
            if rule.matches(event):
                entity = rule.entity_of(event)
                due = now + rule.delay
                noted += [((EXPORT, exporter, entity, None), due) for exporter in rule.exporters]
        if config.ian.destinations:
            study = Entity(event.study_iuid)
            due = now + config.ian.delay
            local = event.called_aet or None
            noted += [(("ian", title, study, local), due) for title in config.ian.destinations]
        if noted:
            self._note(noted)

    def _current_rules(self, config: Config) -> tuple[_Rule, ...]:
        return self._rules_for(config.export_rule, lambda: _compile(config))

    def _note(self, noted: list[tuple[_Key, datetime]]) -> None:
        with self._lock:
            for key, due in noted:
                known = self._pending.get(key)
                if known is None or known < due:
                    self._pending[key] = due
        self._wake.set()

    def flush(self) -> bool:
        """Write the noted tasks: schedule each, or postpone the same task still
        SCHEDULED. Returns False when the database refused them: they stay noted (and
        are tried again at the next round)."""
        with self._lock:
            batch, self._pending = self._pending, {}
        if not batch:
            return True
        config = self.services.config
        tasks: list[NewTask] = []
        for (type_, target, entity, local), due in batch.items():
            try:
                if type_ == EXPORT:
                    tasks.append(export_task(config, target, entity, due))
                else:
                    tasks.append(ian_task(config, target, entity, local, due))
            except ValueError as exc:
                # The exporter or destination went with a reload in between.
                log.warning("not scheduled for study %s: %s", entity.study_uid, exc)
        try:
            added, postponed = schedule_or_postpone(self.services.db, tasks, config.device.name)
        except Exception as exc:
            log.warning("export/IAN tasks not scheduled yet (%s): trying again", exc)
            self._note(list(batch.items()))
            return False
        log.debug("export rules and IAN: %d tasks scheduled, %d postponed", added, postponed)
        if any(task.scheduled_time and task.scheduled_time <= datetime.now() for task in tasks):
            # Due already (no delay): the runner need not wait for its next poll.
            wakeup.wake(wakeup.address(run_dir(config.storage.path)))
        return True
