"""The Queues tab's bulk actions and live progress over PostgreSQL (the other tests of
tests/tui/test_queues.py run on SQLite): the same tests, collected here again with the
console's database in a private PostgreSQL schema."""

from __future__ import annotations

import pytest

from tests.tui.test_queues import (  # noqa: F401 - collected here with this module's database
    queued,
    test_cancel_all_matching,
    test_cancel_tagged_rows,
    test_progress_changes_in_place_and_the_cursor_stays,
    test_reschedule_a_failed_task,
)

pytestmark = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


@pytest.fixture
def console_db_url(db_url: str) -> str:
    return db_url
