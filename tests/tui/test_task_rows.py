"""The Queues filter form and reschedule prompt read what an administrator types:
statuses by the start of their name, created-time ranges, times to run; what cannot be
read is refused saying what is expected."""

from __future__ import annotations

from datetime import datetime

import pytest

from core.services.tasks import TaskStatus
from tui.screens.task_rows import TaskSearch, describe, parse_at, parse_created, parse_status

NOW = datetime(2026, 1, 15, 12, 0, 0)


@pytest.mark.parametrize(
    ("typed", "status"),
    [
        ("", None),
        ("failed", TaskStatus.FAILED),
        ("sched", TaskStatus.SCHEDULED),
        ("SCHEDULED FOR", TaskStatus.SCHEDULED_FOR_RETRY),
        ("retry", TaskStatus.SCHEDULED_FOR_RETRY),
        (" in  proc ", TaskStatus.IN_PROCESS),
        ("c", None),  # COMPLETED or CANCELED: refused below
    ],
)
def test_statuses_by_the_start_of_their_name(typed: str, status: TaskStatus | None) -> None:
    if typed == "c":
        with pytest.raises(ValueError, match="one of SCHEDULED"):
            parse_status(typed)
    else:
        assert parse_status(typed) == status


def test_created_ranges() -> None:
    day = datetime(2026, 1, 15)
    assert parse_created("20260115", NOW) == (day, datetime(2026, 1, 16))
    assert parse_created("20260114-20260115", NOW) == (datetime(2026, 1, 14), datetime(2026, 1, 16))
    assert parse_created("-202601151130", NOW) == (None, datetime(2026, 1, 15, 11, 31))
    assert parse_created("20260115103000-", NOW) == (datetime(2026, 1, 15, 10, 30), None)
    assert parse_created("2h", NOW) == (datetime(2026, 1, 15, 10, 0), None)
    assert parse_created("", NOW) == (None, None)
    for bad, said in (("20261315", "not a date"), ("yesterday", "YYYYMMDD"), ("-", "a start")):
        with pytest.raises(ValueError, match=said):
            parse_created(bad, NOW)


def test_times_to_run() -> None:
    assert parse_at("", NOW) is None
    assert parse_at("30m", NOW) == datetime(2026, 1, 15, 12, 30)
    assert parse_at("+1d", NOW) == datetime(2026, 1, 16, 12, 0)
    assert parse_at("202601151400", NOW) == datetime(2026, 1, 15, 14, 0)
    with pytest.raises(ValueError, match="give the time too"):
        parse_at("20260116", NOW)


def test_a_filter_and_how_questions_name_it() -> None:
    where = TaskSearch(status="failed", batch_id=" b1 ", created="20260115").task_filter(
        "Export", NOW
    )
    assert (where.queue, where.status, where.batch_id) == ("Export", "FAILED", "b1")
    assert describe(where) == (
        "status FAILED, batch b1, created 2026-01-15 00:00 to 2026-01-16 00:00"
    )
