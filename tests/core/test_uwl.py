"""core.services.uwl and uwl_form, the Work Items tab's use cases, on SQLite and
PostgreSQL: what the console does to work items reaches their subscribers as UPS events
(queued tasks, as ups queues them), templates have no state to change, the form's values
read back from the attributes they make, an edit sets only what changed (emptied fields
empty)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime

import pytest
from pydicom import Dataset
from sqlalchemy import select

from core.archive import Archive
from core.config import Config, QueueName
from core.db.models import Task
from core.services import ups, uwl
from core.services.context import ServiceContext
from core.services.ups import UPSSearch
from core.services.uwl_form import WorkItemValues, values_from
from tests.tui.uwl_fixtures import ITEMS, LISTED, TEMPLATE, make_items

SCHEDULED_CT, SCHEDULED_MR, IN_PROGRESS, COMPLETED, CANCELED = LISTED
REMOTE = '[[remote_ae]]\ntitle = "WATCHER"\nhost = "127.0.0.1"\nport = 11199\n'


@pytest.fixture
def services(make_config: Callable[..., Config]) -> Iterator[ServiceContext]:
    """An archive's database (not listening) with the fixed work items; WATCHER is a
    remote AE."""
    archive = Archive(make_config(REMOTE))
    opened = archive.open()
    make_items(opened)
    try:
        yield opened
    finally:
        archive.stop()


def reported_states(services: ServiceContext, aet: str) -> list[tuple[str, str]]:
    """The state reports queued for `aet`: (work item, state), in order."""
    with services.db.read() as session:
        rows = session.execute(
            select(Task.parameters)
            .where(Task.queue == QueueName.UPS_EVENT, Task.remote_aet == aet)
            .order_by(Task.pk)
        ).scalars()
        out = []
        for parameters in rows:
            found = json.loads(parameters)
            for report in found["reports"]:
                if report["event_type"] == 1:
                    info = Dataset.from_json(report["info"])
                    out.append((found["ups_iuid"], str(info.ProcedureStepState)))
    return out


def test_console_changes_reach_the_subscribers(services: ServiceContext) -> None:
    """Subscribed with the console, WATCHER is told the current state, then what the
    console's cancel, claim and completion make of the work items."""
    outcome = uwl.subscribe(services, [SCHEDULED_CT, SCHEDULED_MR], "WATCHER")
    assert outcome.done == {"subscribed": 2}
    assert uwl.cancel(services, [SCHEDULED_CT]).done == {"canceled": 1}
    assert uwl.change_state(services, [SCHEDULED_MR], "IN PROGRESS").done == {"claimed": 1}
    assert uwl.change_state(services, [SCHEDULED_MR], "COMPLETED").done == {"completed": 1}
    assert reported_states(services, "WATCHER") == [
        (SCHEDULED_CT, "SCHEDULED"),
        (SCHEDULED_MR, "SCHEDULED"),
        (SCHEDULED_CT, "IN PROGRESS"),
        (SCHEDULED_CT, "CANCELED"),
        (SCHEDULED_MR, "IN PROGRESS"),
        (SCHEDULED_MR, "COMPLETED"),
    ]
    row = ups.get(services, SCHEDULED_MR).row
    assert (row.performer_aet, row.transaction_uid) == ("DCM4CHEE", "")


def test_templates_have_no_state_to_change(services: ServiceContext) -> None:
    for outcome in (
        uwl.cancel(services, [TEMPLATE.iuid]),
        uwl.change_state(services, [TEMPLATE.iuid], "IN PROGRESS"),
        uwl.subscribe(services, [TEMPLATE.iuid], "WATCHER"),
    ):
        assert outcome.done == {}
        assert list(outcome.refused) and "template" in next(iter(outcome.refused))
    assert ups.get(services, TEMPLATE.iuid).row.state == "SCHEDULED"


def test_all_matching_and_the_reasons_of_refusals(services: ServiceContext) -> None:
    """Cancel of all work items: each counted by what happened or why not."""
    outcome = uwl.cancel(services, UPSSearch())
    assert outcome.done == {"canceled": 2, "already canceled": 1}
    assert outcome.refused == {
        "The performer cannot be contacted": 1,
        "The UPS is already COMPLETED.": 1,
    }
    assert outcome.said("Cancel") == (
        "Cancel: 2 canceled, 1 already canceled; not 1: The performer cannot be contacted; "
        "not 1: The UPS is already COMPLETED."
    )


def test_reschedule_a_template_makes_a_work_item(services: ServiceContext) -> None:
    outcome = uwl.reschedule(services, [TEMPLATE.iuid], datetime(2026, 2, 1, 9, 30))
    assert outcome.done == {"created from templates": 1}
    found = ups.search(services, UPSSearch(start="20260201"), limit=10).rows
    assert [(r.label, r.start, r.state) for r in found] == [
        (TEMPLATE.label, "20260201093000", "SCHEDULED")
    ]
    assert [r.iuid for r in uwl.templates(services)] == [TEMPLATE.iuid]


def test_form_values_read_back(services: ServiceContext) -> None:
    """Codes with their own scheme and meaning, dates, the patient with issuer: what
    the form creates reads back as typed (the scheme 99DCM4CHEE left out)."""
    typed = WorkItemValues(
        label="Read back",
        worklist_label="WL",
        priority="LOW",
        start="202602010930",
        expected_end="202602011030",
        workitem_code="110005^DCM^Interpretation",
        station="STORESCP",
        input_readiness="INCOMPLETE",
        patient="PID-1",
        study_iuid="1.2.3.4",
        accession_number="ACC-9",
        comments="first line",
    )
    iuid = uwl.create(services, typed)
    assert values_from(ups.attributes_of(services, iuid)) == typed
    assert uwl.values_of(services, iuid) == typed


def test_edit_sets_what_changed_and_empties_what_was_emptied(services: ServiceContext) -> None:
    iuid = uwl.create(services, WorkItemValues(label="Edit me", start="202602010930", comments="x"))
    same = uwl.values_of(services, iuid)
    assert uwl.edit(services, iuid, same) is False
    assert uwl.edit(services, iuid, WorkItemValues(**{**same.__dict__, "comments": ""})) is True
    ds = ups.attributes_of(services, iuid)
    assert not ds.get("CommentsOnTheScheduledProcedureStep")
    with pytest.raises(ValueError, match="a work item needs one"):
        uwl.edit(services, iuid, WorkItemValues(**{**same.__dict__, "start": ""}))


def test_state_as_typed() -> None:
    assert uwl.state_of("in p") == "IN PROGRESS"
    assert uwl.state_of("Sched") == "SCHEDULED"
    with pytest.raises(ValueError, match="one of SCHEDULED, IN PROGRESS, CANCELED, COMPLETED"):
        uwl.state_of("c")


def test_csv_of_templates(services: ServiceContext, tmp_path) -> None:
    assert uwl.save_csv(services, UPSSearch(templates=True), tmp_path / "t.csv") == 1
    lines = (tmp_path / "t.csv").read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("pk,iuid,state,label")
    assert TEMPLATE.label in lines[1] and len(lines) == 2
    assert len(ITEMS) == uwl.count(services, UPSSearch())
